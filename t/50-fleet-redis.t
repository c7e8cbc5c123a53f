# A fleet: three Apache servers behind a load balancer share one Redis
# (`OCSPStaplingCache redis:host:port`). Together they ask the CA's responder
# about once per renewal period, not three times: the first server fetches
# at startup, the other two take its verified response from Redis, and at
# each renewal one server fetches while the others find the new response in
# the cache. Visitors get the same response from every server.
#
# 60 s responses (`openssl ocsp -nmin 1`): renewed every ~27-30 s; the test
# watches two renewals (about 70-80 s).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;

plan tests => 18;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my $key = $redis->key_for($pki->cert_id('rsa'));

# Three servers, different MPMs, each with its own port and files.
my %mpm = (a => 'event', b => 'prefork', c => 'event');
my @h = map { OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => $_,
                                      mpm => $mpm{$_}) } qw(a b c);
my ($ha, $hb, $hc) = @h;

# --- startup: one fetch for the whole fleet ---------------------------------
ok($ha->start, 'server a starts') or BAIL_OUT('no server a');
my $sa = $ha->summary;
ok($sa && $sa->{fetched} == 1, 'a fetched the response itself (nobody had it yet)')
    or diag($sa ? $sa->{line} : 'no OCSPSTAPLE0012');

# What a wrote into Redis: a record under "ocspstaple:<sha1 of the cert>".
my $rec = OCSPCacheServer::parse_record($redis->get($key));
ok($rec && $rec->{cert_status} == 0 && length $rec->{der}
   && (OCSPCacheServer::origin_pid($rec) // 0) == $ha->pid,
   "a stored its response in Redis under $key")
    or diag('keys: ', join(' ', $redis->keys), "\nrecord origin: ",
            $rec ? $rec->{origin} : 'none', ', a pid ', $ha->pid);

for my $h ($hb, $hc) {
    my $n = $h->{name};
    ok($h->start, "server $n starts") or BAIL_OUT("no server $n");
    my $s = $h->summary;
    ok($s && $s->{shared} == 1 && $s->{fetched} == 0,
       "$n took the response from the shared cache at startup, no fetch")
        or diag($s ? $s->{line} : 'no OCSPSTAPLE0012');
}
is($resp->requests, 1, 'the responder was asked once for three servers');

my $first = OCSPCacheServer::same_staple(\@h, 'after startup');

# --- renewals: one request per period for all three -------------------------
# The server that fetched plans its renewal first; the others plan theirs a
# little later (2 s plus jitter) and then find its new response in Redis.
# Each server staples the renewed response only once it has looked (in the
# cache, or at the responder: a request the responder logs as read before
# it answers): wait for all three to staple it, then count the requests.
my $t_first = (OCSPCacheServer::request_times($resp))[0];
ok(wait_until(60, sub { $resp->requests >= 2 }, 0.2), 'first renewal')
    or diag($ha->log_lines(qr/OCSPSTAPLE/));
my $renewed = OCSPCacheServer::same_staple(\@h, 'after the first renewal (later thisUpdate)', $first->{this_update} // 0);
ok(($renewed->{this_update} // 0) > ($first->{this_update} // 0),
   'and it is the renewed one (later thisUpdate)')
    or diag(describe($first), "\n", describe($renewed));

ok(wait_until(60, sub { $resp->requests >= 3 }, 0.2), 'second renewal');
OCSPCacheServer::same_staple(\@h, 'after the second renewal (later thisUpdate)', $renewed->{this_update} // 0);

# The times the responder READ the requests: also any request still being
# answered.
my @times = OCSPCacheServer::received_times($resp);
my $periods = int((time - $t_first) / 27);     # renewals at >= 27 s intervals
ok(@times <= 1 + $periods + 1,
   sprintf('%d responder requests in %.0f s (%d renew periods) for three servers',
           scalar @times, time - $t_first, $periods))
    or diag('request times: ', join(' ', map { sprintf '%.1f', $_ - $t_first } @times));
# The whole fleet asked once per renewal: no two requests close together.
my @close = grep { $times[$_] - $times[$_ - 1] < 10 } 1 .. $#times;
ok(!@close, 'each renewal was fetched by one server only')
    or diag('request times: ', join(' ', map { sprintf '%.1f', $_ - $t_first } @times),
            "\n", map { ("$_->{name}: ", $_->log_lines(qr/OCSPSTAPLE000[2-5]/)) } @h);

# The record in Redis is still a verified good one, and nobody complained.
$rec = OCSPCacheServer::parse_record($redis->get($key));
ok($rec && $rec->{cert_status} == 0 && $rec->{fetched_at} > $t_first + 20,
   'Redis holds the renewed response');
my @complaints = map { $_->log_lines(qr/OCSPSTAPLE002[2-5]|scache_rd|AH0347\d/) } @h;
ok(!@complaints, 'no cache warnings in the error logs') or diag(@complaints);

$_->stop for @h;
$redis->stop;
$resp->stop;
