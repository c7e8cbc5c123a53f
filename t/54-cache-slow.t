# A shared cache that hangs instead of failing: Redis accepts connections
# but never answers (SIGSTOP: a hung, swapping or overloaded cache server).
# A slow cache never holds a handshake longer than a small bound, and a
# server still starts and staples without it.
#  - a server with nothing to staple yet (its responder was down at
#    startup) meets a handshake: the handshake does not hang on the cache;
#  - a new server starts within a bound and staples (it fetches for itself).
# `RedisTimeout 1` is set: the cache's own read timeout, one second.
# About 20 s when the bounds hold, 35 s when they do not.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;

plan tests => 7;
OCSPServer::deadline(180);
$OCSPServer::S_CLIENT_TIMEOUT = 6;    # a handshake that hangs gives up then

my ($w, $pki, $resp) = setup();
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my @opts = (dir => $w, pki => $pki, global => ['RedisTimeout 1']);
my $ha = OCSPCacheServer::httpd($redis, @opts, name => 'a');
my $hb = OCSPCacheServer::httpd($redis, @opts, name => 'b');

# a starts while its responder is down: nothing to staple yet.
my $t_start = time;
ok($ha->start, 'server a starts (responder down)') or BAIL_OUT('no server');
my $s = $ha->summary;
ok($s && $s->{missing} == 1, 'a has no response yet') or diag($s ? $s->{line} : 'no summary');
$resp->start(nmin => 1);

$redis->freeze;
my $t_freeze = time;

# A handshake with nothing to staple may look into the cache (once a second
# at most) and fetch when a retry is due (5 s after the failed start), both
# bounded; it must not wait for the hung cache. One handshake of each kind.
sleep 1.5;
my $r = handshake($ha->port, 'rsa.test');
ok($r->{connected} && $r->{elapsed} < 3,
   sprintf('a handshake with a cold certificate completes in %.1f s with Redis hung',
           $r->{elapsed}))
    or diag(describe($r));
sleep 1 while time < $t_start + 7;
my $r2 = handshake($ha->port, 'rsa.test');
ok($r2->{connected} && $r2->{elapsed} < 3,
   sprintf('and so does one when a fetch is due (%.1f s)', $r2->{elapsed}))
    or diag(describe($r2));

# A new server of the fleet starts without the cache's help. Known limit:
# startup reads the shared cache (to take another server's response), and
# mod_socache_redis turns RedisTimeout into a far longer wait (apr-util
# multiplies the microseconds it is given by a million again), so a HUNG
# (not a stopped) Redis holds the start until it answers.
my ($up, $rb);
TODO: {
    local $TODO = 'a hung Redis holds the start (mod_socache_redis RedisTimeout)';
    $up = $hb->start(timeout => 10);
    ok($up, sprintf('server b starts with Redis hung (%.1f s)', $up || 10));
    $rb = $up ? handshake($hb->port, 'rsa.test') : { output => '', elapsed => 0, stapled => 0 };
    ok($rb->{stapled} && ($rb->{cert_status} // '') eq 'good', 'b staples a good response')
        or diag(describe($rb));
}

$redis->thaw;
# Once the cache answers again everything gets going: b finishes starting
# if it was stuck, and a staples.
wait_until(30, sub { $hb->alive }, 0.2) unless $up;
ok(wait_until(40, sub { handshake($ha->port, 'rsa.test')->{stapled} }, 0.5),
   'a staples once Redis answers again');
diag(sprintf 'Redis was hung for %.0f s', time - $t_freeze);

OCSPCacheServer::stop_httpd($_) for $hb, $ha;
$redis->stop;
$resp->stop;
