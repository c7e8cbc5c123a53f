# The background refresh survives child recycling: with prefork and
# MaxConnectionsPerChild 1 every child, including the one running the
# refresh, exits after one connection; another child takes the refresh over,
# the 60 s response is still renewed on time, every handshake meanwhile is
# stapled, and the responder still sees one request per renewal.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 6;
OCSPServer::deadline(150);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork', store => 'off',
    mpm_conf => { StartServers => 3, MinSpareServers => 2, MaxSpareServers => 6,
                  MaxConnectionsPerChild => 1 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd (prefork, MaxConnectionsPerChild 1) starts') or BAIL_OUT('no server');

# Handshakes every ~0.5 s until the renewal is logged (due at ~30 s), at
# the latest until the first response is about to expire.
my $ok_re = update_ok_re('rsa');
my $first = handshake($h->port, 'rsa.test');
my $expires = $first->{next_update} // time + 60;
my @hs = ($first);
while (time < $expires - 1 && $h->log_lines($ok_re) < 2) {
    push @hs, handshake($h->port, 'rsa.test');
    sleep 0.5;
}
my @bad = grep { !$_->{stapled} } @hs;
ok(@hs >= 20 && !@bad, scalar(@hs) . ' handshakes (a new child for each): all stapled')
    or diag(map { describe($_) . "\n" } @bad);
my @owners = $h->log_lines(qr/OCSPSTAPLE0040: background refresh runs in process/);
cmp_ok(scalar(@owners), '>=', 2, 'the refresh moved to another child when its child exited')
    or diag(@owners);
ok($h->log_lines($ok_re) >= 2, 'the response was renewed before it expired (second OCSPSTAPLE0002)')
    or diag("first response expires ", scalar(gmtime $expires), " GMT; module log lines:\n",
            $h->log_lines(qr/OCSPSTAPLE(?!0040)/), scalar(@owners), " OCSPSTAPLE0040 lines (refresh owner changes)");

my $later;
OCSPServer::wait_until(5, sub {
    $later = handshake($h->port, 'rsa.test');
    $later->{stapled} && $later->{this_update} > ($first->{this_update} // 0);
}, 0.2);
ok($later->{stapled} && $later->{this_update} > ($first->{this_update} // 0),
   'handshakes staple the renewed response') or diag(describe($later));
is($resp->requests, scalar($h->log_lines(qr/OCSPSTAPLE000[2345]: /)),
   'one responder request per update for the whole server');

$h->stop;
$resp->stop;
