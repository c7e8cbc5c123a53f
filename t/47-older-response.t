# Only a verified, NEWER response replaces the stapled one. A certificate is
# stapled with a `revoked` response; at its renewal the responder answers
# with an older (earlier thisUpdate), correctly signed, still valid `good`
# response for it: replayed from a file signed before the revocation was
# ever fetched (scripts/ocsp_responder.pl's replay/<name> mode). Going back
# in time would un-revoke the certificate for every visitor. So:
#  - the renewal is a failure for the schedule: an OCSPSTAPLE0003 line, no
#    "update ok", and the next try follows the backoff (5 s, +25% jitter);
#  - every handshake meanwhile and afterwards still staples the revoked
#    response, the same one (same thisUpdate).
# Responses of 60 s (--nmin 1), renewed 50 s before their nextUpdate (so
# 5 to 10 s after the fetch). About 30 s.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until update_failed_re);
use OCSPFaults qw(have_faketime);
use OCSPOrder;

plan tests => 11;
OCSPServer::deadline(170);
my $T0 = time;

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
my $fmt = sub { OCSPOrder::fmt($_[0], $T0) };

# The older response: `good` for the certificate the PKI's index has as
# revoked, signed now (ten minutes in the past with faketime), valid a day.
my $old = OCSPOrder::sign_response($pki, 'revoked', status => 'good',
                                   have_faketime() ? (faketime => '-10m') : ());
my $old_info = OCSPOrder::response_info($old);
OCSPOrder::replay_file($pki, 'old-good', $old);
# Without faketime: the revoked response must come at least a second later.
wait_until(5, sub { time >= $old_info->{this_update} + 2 }, 0.1);

$resp->start(nmin => 1, switch => $switch);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'older', store => 'off',
    mpm_conf => { ServerLimit => 2, StartServers => 2, ThreadsPerChild => 25,
                  MaxRequestWorkers => 50, MinSpareThreads => 25, MaxSpareThreads => 75 },
    global => [ 'OCSPStaplingRenewWindow 50s' ],
    vhosts => [ { name => 'revoked.test', cert => 'revoked',
                  extra => 'OCSPStaplingForceURL ' . $pki->url('switch/replay/old-good') } ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

# ---- stapled: the revocation --------------------------------------------------
ok(scalar $h->wait_for_log(qr/OCSPSTAPLE0004: cert "CN=revoked\.test"/, 10),
   'the start-up fetch got the revocation (OCSPSTAPLE0004)')
    or diag($h->log_lines(qr/OCSPSTAPLE/));
my $rev = handshake($h->port, 'revoked.test');
ok($rev->{stapled} && ($rev->{cert_status} // '') eq 'revoked'
   && ($rev->{this_update} // 0) > $old_info->{this_update},
   sprintf('the revoked response is stapled (thisUpdate %s, the older good one %s)',
           $fmt->($rev->{this_update}), $fmt->($old_info->{this_update})))
    or diag(describe($rev));
my $offset = $h->log_size;
my $t_switch = OCSPOrder::switch_on($switch);
my $fetched_at = (OCSPOrder::requests($resp))[-1]{time};
note(sprintf 'revoked response fetched at %s, switch at %s',
             $fmt->($fetched_at), $fmt->($t_switch));

# ---- the renewal meets the older response -----------------------------------
# Handshakes all along: not one may carry anything but that revocation.
my @seen;
sub watch {
    my ($timeout, $cond) = @_;
    return wait_until($timeout, sub {
        push @seen, handshake($h->port, 'revoked.test');
        return $cond->();
    }, 0.3);
}
my $replays = sub { scalar OCSPOrder::requests($resp, mode => 'replay') };
ok(watch(30, sub { $replays->() >= 1 }),
   'the renewal asked the responder and got the older good response')
    or diag(OCSPServer::slurp($resp->log_file));
my $failed_re = update_failed_re('revoked');
ok(watch(10, sub { $h->log_lines($failed_re, $offset) >= 1 }),
   'the older response counts as a failed update (OCSPSTAPLE0003)')
    or diag($h->log_lines(qr/OCSPSTAPLE/, $offset));
my @ok_lines = $h->log_lines(qr/OCSPSTAPLE000[245]: cert "CN=revoked\.test"/, $offset);
ok(!@ok_lines, 'and not as an update (no OCSPSTAPLE0002/0004/0005 after the switch)')
    or diag(@ok_lines);

# The retry follows the backoff: 5 s after the failure (+25% jitter, the
# background refresh looks once a second, the responder logs whole seconds).
ok(watch(15, sub { $replays->() >= 2 }), 'the responder is asked again (a retry)')
    or diag(OCSPServer::slurp($resp->log_file));
my @rt = map { $_->{time} } OCSPOrder::requests($resp, mode => 'replay');
my @bad = @rt >= 2 ? OCSPOrder::backoff_violations([@rt[0, 1]], base => 5) : ('no retry');
ok(!@bad, sprintf('the retry came after the first backoff step (%s s)',
                  join(', ', OCSPOrder::gaps(\@rt))))
    or diag(join "\n", @bad);
# Both answers seen by every process: one more second of ticks, then look.
my $t_end = time + 2.5;
watch(4, sub { time >= $t_end });
ok($h->log_lines($failed_re, $offset) >= 2, 'the retry is refused too (a second OCSPSTAPLE0003)')
    or diag($h->log_lines(qr/OCSPSTAPLE/, $offset));

# ---- every handshake: the same revocation ------------------------------------
my @wrong = grep { !$_->{stapled} || ($_->{cert_status} // '') ne 'revoked'
                   || ($_->{this_update} // 0) != ($rev->{this_update} // -1) } @seen;
ok(@seen >= 10 && !@wrong,
   sprintf('all %d handshakes after the switch stapled the same revoked response', scalar @seen))
    or diag(join "\n", map { describe($_) } @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]);
my @crash = $h->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/);
ok(!@crash, 'no child process crashed') or diag(@crash);

$h->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
