# The fleet of t/50-fleet-redis.t with memcached instead of Redis
# (`OCSPStaplingCache memcache:host:port`): three servers, one responder
# request at startup and one per renewal for all of them, the same response
# stapled everywhere. One renewal period (about 40 s).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;

plan tests => 14;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $mc = OCSPCacheServer::Memcached->new(dir => $w);
$mc->start;
my $key = $mc->key_for($pki->cert_id('rsa'));

my %mpm = (a => 'event', b => 'worker', c => 'prefork');
my @h = map { OCSPCacheServer::httpd($mc, dir => $w, pki => $pki, name => $_,
                                      mpm => $mpm{$_}) } qw(a b c);
my ($ha, $hb, $hc) = @h;

# --- startup: one fetch for the whole fleet ---------------------------------
ok($ha->start, 'server a starts') or BAIL_OUT('no server a');
my $sa = $ha->summary;
ok($sa && $sa->{fetched} == 1, 'a fetched the response itself')
    or diag($sa ? $sa->{line} : 'no OCSPSTAPLE0012');
my $rec = OCSPCacheServer::parse_record($mc->get($key));
ok($rec && $rec->{cert_status} == 0 && length $rec->{der}
   && (OCSPCacheServer::origin_pid($rec) // 0) == $ha->pid,
   "a stored its response in memcached under $key")
    or diag('keys: ', join(' ', $mc->keys));

for my $h ($hb, $hc) {
    my $n = $h->{name};
    ok($h->start, "server $n starts") or BAIL_OUT("no server $n");
    my $s = $h->summary;
    ok($s && $s->{shared} == 1 && $s->{fetched} == 0,
       "$n took the response from memcached at startup, no fetch")
        or diag($s ? $s->{line} : 'no OCSPSTAPLE0012');
}
is($resp->requests, 1, 'the responder was asked once for three servers');

my $first = OCSPCacheServer::same_staple(\@h, 'after startup');

# --- one renewal: one request ------------------------------------------------
# The other servers look 2-5 s after the fetching one. Each staples the
# renewed response only once it has looked (in memcached, or at the
# responder: a request the responder logs as read before it answers): wait
# until all three staple it, then count what the responder read.
ok(wait_until(60, sub { $resp->requests >= 2 }, 0.2), 'the response is renewed')
    or diag($ha->log_lines(qr/OCSPSTAPLE/));
my $renewed = OCSPCacheServer::same_staple(\@h, 'after the renewal (later thisUpdate)', $first->{this_update} // 0);
ok(($renewed->{this_update} // 0) > ($first->{this_update} // 0),
   'and it is the renewed one (later thisUpdate)')
    or diag(describe($first), "\n", describe($renewed));
ok($resp->requests == 2 && $resp->received == 2,
   'two responder requests for three servers: startup and one renewal')
    or diag('answered ', $resp->requests, ', read ', $resp->received, "\n",
            map { ("$_->{name}: ", $_->log_lines(qr/OCSPSTAPLE000[2-5]/)) } @h);

my @complaints = map { $_->log_lines(qr/OCSPSTAPLE002[2-5]|scache_mc/) } @h;
ok(!@complaints, 'no cache warnings in the error logs') or diag(@complaints);

$_->stop for @h;
$mc->stop;
$resp->stop;
