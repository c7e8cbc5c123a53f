# A response the CA has replaced must not come back through new child
# processes. The responder answers good at startup, then (the --switch file
# created) "revoked"; the renewal 5 s later (OCSPStaplingRenewWindow 2d with
# one-day responses: at once, but never sooner than 5 s after a fetch)
# staples the revocation (OCSPSTAPLE0004, crit). The server recycles children after every
# connection (prefork, MaxConnectionsPerChild 1), so nearly every handshake
# meets a child forked after the revocation was fetched.
#
# A new child takes what was renewed since the parent's startup from the
# (local, shmcb) shared cache in child_init, before its first handshake.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe);

plan tests => 5;
OCSPServer::deadline(120);

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
unlink $switch;
$resp->start(switch => $switch);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', mpm => 'prefork',
    mpm_conf => { StartServers => 3, MinSpareServers => 3, MaxSpareServers => 6,
                  MaxConnectionsPerChild => 1 },
    global => [ 'OCSPStaplingRenewWindow 2d' ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa',
                  extra => 'OCSPStaplingForceURL ' . $pki->url('switch/revoked') } ]);
ok($h->start, 'httpd starts (prefork, a new child for every connection)') or BAIL_OUT('no server');
my $offset = $h->log_size;
open my $sw, '>', $switch or die "$switch: $!";
close $sw;

my $url = $pki->url('switch/revoked');
my $revoked = $h->wait_for_log(qr/\[ocspstaple:crit\].*OCSPSTAPLE0004: cert "CN=rsa\.test".*REVOKED according to \Q$url\E \(it was good until now\)/,
                               30, $offset);
ok($revoked, 'the renewal finds the certificate revoked (OCSPSTAPLE0004, crit)');

# The children running now may have been forked before the revocation was
# published: they take it at their next background tick (each second), so
# one of them may still staple the good response for that long. Every child
# forked from now on must staple the revocation from its first handshake.
# Handshakes (0.3 s apart; each child serves one, then exits) until 12 have
# been served by children forked after this point; those of the children
# running now are kept apart.
my %running = map { $_ => 1 } $h->children;
my (@hs, @fresh);
OCSPServer::wait_until(60, sub {
    my $r = $h->handshake_pid('rsa.test');
    push @hs, $r;
    push @fresh, $r if defined $r->{pid} && !$running{$r->{pid}};
    @fresh >= 12;
}, 0.3);
my @early = grep { !defined $_->{pid} || $running{$_->{pid}} } @hs;
ok(@fresh >= 12 && !grep({ !$_->{connected} || !$_->{stapled} } @hs),
   scalar(@hs) . ' handshakes afterwards, all stapled, ' . scalar(@fresh)
   . ' of them by children forked after the revocation')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @hs);
my @good = grep { ($_->{cert_status} // '') eq 'good' } @fresh;
is(scalar @good, 0, 'none of those staples the superseded good response')
    or diag(scalar(@good) . ' of ' . scalar(@fresh) . ' handshakes by new children stapled "good" '
            . 'after the revocation: ' . describe($good[0]));
note(scalar(@early) . ' handshake(s) by children running at the revocation: '
     . join(', ', map { $_->{cert_status} // 'none' } @early));
ok($h->alive, 'server still running');
$h->stop;
$resp->stop;
