# A child that exits while its background refresh is fetching (prefork,
# MaxConnectionsPerChild 1: its one connection ends it) finishes that fetch
# first: the renewal the responder answered is published and logged, and
# no other child asks the responder again for it.
#
# (Before, the child's exit cut the fetch off after the responder had read
# the request: the answer was lost, no OCSPSTAPLE0002 was logged, and the
# next child fetched the same renewal again.)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_ok_re wait_until);

plan tests => 5;
OCSPServer::deadline(180);

my $DELAY = 4;              # the responder answers the renewal this late

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
# One child at a time: the one that fetches is the one a handshake ends.
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork', store => 'off',
    mpm_conf => { StartServers => 1, MinSpareServers => 1, MaxSpareServers => 1,
                  MaxConnectionsPerChild => 1 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd (prefork, one child, MaxConnectionsPerChild 1) starts')
    or BAIL_OUT('no server');
my $first = handshake($h->port, 'rsa.test');
my $tu1 = $first->{this_update} // 0;
ok($first->{stapled}, 'the start-up response is stapled') or diag(describe($first));

# From now on the responder takes $DELAY s per answer. The renewal is due
# half way through the 60 s response.
$resp->restart(nmin => 1, delay => $DELAY);
ok(wait_until(60, sub { $resp->received('good') >= 2 }, 0.2),   # start-up + renewal
   'the renewal request reached the slow responder') or BAIL_OUT('no renewal');

# The fetching child serves one connection now, and so exits, while the
# responder still holds its request.
my $mid = handshake($h->port, 'rsa.test');
diag(sprintf 'handshake %.1f s after the renewal request, %d request(s) in flight',
             $mid->{elapsed}, $resp->in_flight);

# The renewed response reaches the next child, and nobody asked twice.
my $r;
wait_until(30, sub {
    $r = handshake($h->port, 'rsa.test');
    $r->{stapled} && ($r->{this_update} // 0) > $tu1;
}, 0.5);
ok($r->{stapled} && ($r->{this_update} // 0) > $tu1, 'a later child staples the renewed response')
    or diag(describe($r));
wait_until(2 * $DELAY + 5, sub { $resp->in_flight == 0 }, 0.2);
is($resp->received('good'), 2, 'the slow responder was asked once for the renewal (and once at the start)')
    or diag("module log:\n", $h->log_lines(qr/OCSPSTAPLE000[2-5]/));

$h->stop;
$resp->stop;
