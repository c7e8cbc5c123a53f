# A response without nextUpdate is valid for a maximum age counted from its
# thisUpdate (1 hour; mod_ssl's SSLStaplingResponseMaxAge is the
# precedent), not from when it was fetched: one signed two days ago
# (scripts/ocsp_responder.pl's nonext-old mode: `openssl ocsp` without
# -nmin/-ndays under faketime -2d) is refused like an expired response:
#  - not stapled;
#  - an OCSPSTAPLE0003 line whose reason says so ("older than", "max age");
#  - retried with backoff, refused again.
# Control: a fresh response without nextUpdate (nonext mode) is stapled.
# About 15 s.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until update_failed_re update_ok_re);
use OCSPFaults qw(have_faketime);
use OCSPOrder;

plan skip_all => 'faketime is not installed (scripts/deps.sh installs it)'
    unless have_faketime();
plan tests => 9;
OCSPServer::deadline(120);
my $T0 = time;

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'nonext', store => 'off',
    mpm_conf => { ServerLimit => 2, StartServers => 2, ThreadsPerChild => 25,
                  MaxRequestWorkers => 50, MinSpareThreads => 25, MaxSpareThreads => 75 },
    vhosts => [
        { name => 'rsa.test', cert => 'rsa',
          extra => 'OCSPStaplingForceURL ' . $pki->url('nonext-old') },
        { name => 'sni2.test', cert => 'sni2',
          extra => 'OCSPStaplingForceURL ' . $pki->url('nonext') },
    ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

# ---- two days old, no nextUpdate: refused -----------------------------------
my @old = OCSPOrder::requests($resp, mode => 'nonext-old');
ok(@old >= 1 && $old[0]{status} == 200,
   'the start-up fetch got the old response without nextUpdate')
    or diag(OCSPServer::slurp($resp->log_file));
my $failed = $h->wait_for_log(update_failed_re('rsa'), 10);
ok($failed && $failed =~ /older than|max(?:imum)?[ -]age/i,
   'it is refused with the reason in the log (OCSPSTAPLE0003 ... older than the maximum age)')
    or diag($failed // $h->log_lines(qr/OCSPSTAPLE/));
ok($failed && $failed =~ /\[ocspstaple:error\]/,
   'at error: nothing valid is stapled') or diag($failed // 'no OCSPSTAPLE0003');
my @ok = $h->log_lines(update_ok_re('rsa'));
ok(!@ok, 'not an update ok (no OCSPSTAPLE0002)') or diag(@ok);

my $r = handshake($h->port, 'rsa.test');
ok($r->{connected} && !$r->{stapled}, 'not stapled') or diag(describe($r));

# ---- the retry (backoff 5 s): refused again, still nothing stapled -----------
ok(wait_until(15, sub { $h->log_lines(update_failed_re('rsa')) >= 2 }, 0.2),
   'retried with backoff and refused again')
    or diag(OCSPServer::slurp($resp->log_file), $h->log_lines(qr/OCSPSTAPLE/));
# Handshakes for 2.5 s more (every process has the outcome after its next
# tick): none may staple it.
my @seen;
my $t_end = time + 2.5;
wait_until(10, sub { push @seen, handshake($h->port, 'rsa.test'); time >= $t_end }, 0.2);
my @stapled = grep { $_->{stapled} || !$_->{connected} } @seen;
ok(@seen >= 3 && !@stapled, sprintf('still not stapled (%d handshakes)', scalar @seen))
    or diag(join "\n", map { describe($_) } @stapled[0 .. ($#stapled < 3 ? $#stapled : 3)]);

# ---- control: a fresh response without nextUpdate is stapled -----------------
my $c = handshake($h->port, 'sni2.test');
ok($c->{stapled} && ($c->{cert_status} // '') eq 'good' && !defined $c->{next_update}
   && abs(($c->{this_update} // 0) - time) < 120,
   'a fresh response without nextUpdate is stapled')
    or diag(describe($c));

$h->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
