# A shared cache that hangs instead of failing: Redis accepts connections
# but never answers (SIGSTOP: a hung, swapping or overloaded cache server).
# A slow cache never holds a handshake longer than a small bound, and a
# server still starts without it.
#  - a server with nothing to staple yet (its responder was down at
#    startup) meets handshakes: they do not hang on the cache, also while
#    the server's background refresh is waiting on it;
#  - a new server starts within the start-up bound (the longest
#    OCSPStaplingResponderTimeout plus 5 s: the root parent stops waiting
#    for its start-up helper, which is stuck in the cache).
# `RedisTimeout 1` is set: the cache's own read timeout, one second.
# About 30 s.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;

plan tests => 8;
OCSPServer::deadline(180);
$OCSPServer::S_CLIENT_TIMEOUT = 6;    # a handshake that hangs gives up then

my ($w, $pki, $resp) = setup();
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my @opts = (dir => $w, pki => $pki, global => ['RedisTimeout 1']);
my $ha = OCSPCacheServer::httpd($redis, @opts, name => 'a');
my $hb = OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => 'b',
    global => ['RedisTimeout 1', 'OCSPStaplingResponderTimeout 3']);

# a starts while its responder is down: nothing to staple yet.
ok($ha->start, 'server a starts (responder down)') or BAIL_OUT('no server');
my $s = $ha->summary;
ok($s && $s->{missing} == 1, 'a has no response yet') or diag($s ? $s->{line} : 'no summary');
$resp->start(nmin => 1);

$redis->freeze;
my $t_freeze = time;

# Handshakes never read the shared cache: each process staples its own copy
# (here: nothing yet), whatever the cache does. One right away ...
my $r = handshake($ha->port, 'rsa.test');
ok($r->{connected} && $r->{elapsed} < 3,
   sprintf('a handshake with a cold certificate completes in %.1f s with Redis hung',
           $r->{elapsed}))
    or diag(describe($r));
# ... and one while a's background refresh waits on the hung cache: the
# retry of the failed startup fetch (due 5 to 6.25 s after it) looks into
# Redis first, for another server's response, and waits there. Seen from
# outside: a request sits unread at the stopped Redis.
my $stuck = wait_until(30, sub { $redis->waiting_requests > 0 }, 0.2);
my $t_stuck = time - $t_freeze;
my $r2 = handshake($ha->port, 'rsa.test');
ok($stuck && $r2->{connected} && $r2->{elapsed} < 3,
   sprintf('and so does one while the refresh waits on the hung cache (%.1f s; %s)',
           $r2->{elapsed}, $stuck ? sprintf('a request waits at Redis %.1f s after the freeze', $t_stuck)
                                  : 'no request seen waiting at Redis'))
    or diag(describe($r2), "\n", $ha->log_lines(qr/ocspstaple/));

# A new server of the fleet starts without the cache's help: its start-up
# helper looks into the shared cache first (for another server's response)
# and is stuck there, so the root parent stops waiting for it after the
# start-up bound, OCSPStaplingResponderTimeout (3 s here) plus 5 s, and
# says so (OCSPSTAPLE0017).
my $BOUND = 3 + 5;
my $t_b = time;
my $up = $hb->start(timeout => $BOUND + 30);
my $waited = $hb->log_lines(qr/OCSPSTAPLE0017: the start-up helper \(pid \d+\) is still fetching/);
ok($up && $waited, sprintf('server b starts with Redis hung (%.1f s; the start-up bound is %d s), '
                           . 'without waiting for its start-up helper any longer', time - $t_b, $BOUND))
    or diag($hb->log_lines(qr/ocspstaple/));

# Known limit: nothing is fetched while the cache hangs. The helper, and
# then b's own background refresh, look into the shared cache before they
# fetch, and mod_socache_redis turns RedisTimeout into a far longer wait
# (apr-util multiplies the microseconds it is given by a million again,
# README "Running a fleet"): b has nothing to staple until Redis answers.
# Were the cache's read bounded by RedisTimeout, b's refresh would fetch
# within a few seconds.
my $rb = { output => '', elapsed => 0, stapled => 0 };
TODO: {
    local $TODO = 'a hung Redis holds every fetch (mod_socache_redis RedisTimeout)';
    wait_until(6, sub {
        $rb = $up ? handshake($hb->port, 'rsa.test') : $rb;
        $rb->{stapled} && ($rb->{cert_status} // '') eq 'good';
    }, 0.5) if $up;
    ok($rb->{stapled} && ($rb->{cert_status} // '') eq 'good',
       'b staples a good response while Redis hangs') or diag(describe($rb));
}

$redis->thaw;
# Once the cache answers again everything gets going: b's helper and
# refresh, and a, fetch; both staple.
wait_until(30, sub { $hb->alive }, 0.2) unless $up;
ok(wait_until(40, sub { handshake($ha->port, 'rsa.test')->{stapled} }, 0.5),
   'a staples once Redis answers again');
ok(wait_until(40, sub { handshake($hb->port, 'rsa.test')->{stapled} }, 0.5),
   'b staples once Redis answers again');
diag(sprintf 'Redis was hung for %.0f s', time - $t_freeze);

OCSPCacheServer::stop_httpd($_) for $hb, $ha;
$redis->stop;
$resp->stop;
