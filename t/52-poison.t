# Whatever sits in a shared cache is not trusted: anyone who can write to
# the Redis of a fleet could put anything under a certificate's key. Every
# response read from it is verified against the issuer before it is stapled
# or stored, so a poisoned entry never reaches a visitor:
#  - a server starting against a poisoned entry fetches for itself and
#    staples the responder's answer (OCSPSTAPLE0023 says why it ignored the
#    cache), for: random bytes; a well-formed record around random DER; a
#    well-formed record around a correctly signed response for ANOTHER
#    certificate (sni2.test's);
#  - a running server meeting a poisoned entry at its renewal keeps its own
#    good staple, fetches for itself and writes a good entry back, logging
#    OCSPSTAPLE0023 once per process at most;
#  - a record with a genuine response but a forged far-future fetch time and
#    plan does not stop the server from renewing in time.
# About 60-90 s (two renewals of 60 s responses).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until update_ok_re);
use OCSPCacheServer;

plan tests => 25;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my $key = $redis->key_for($pki->cert_id('rsa'));
my $rsa_serial = $pki->serial('rsa');
my $ok_re = update_ok_re('rsa');

# A response, correctly signed by the same issuer, for another certificate.
my $sni2_der = do {
    my $req = OCSPServer::slurp($pki->dir . '/requests/sni2.der');
    my $res = HTTP::Tiny->new(timeout => 20)->post($pki->url('good'), {
        headers => { 'Content-Type' => 'application/ocsp-request' },
        content => $req });
    $res->{success} ? $res->{content} : die "no sni2 response: $res->{status}\n";
};
sub random_bytes { join '', map { chr int rand 256 } 1 .. $_[0] }

# The staple of a handshake is the rsa certificate's own good response.
sub right_staple {
    my ($r) = @_;
    return $r->{stapled} && ($r->{serial} // '') eq $rsa_serial
        && ($r->{cert_status} // '') eq 'good' && ($r->{resp_status} // '') eq 'successful';
}

# The server that keeps running through it all.
my $ha = OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => 'a');
ok($ha->start, 'server a starts') or BAIL_OUT('no server');
ok(right_staple(handshake($ha->port, 'rsa.test')), 'a staples the rsa response');
my $good = OCSPCacheServer::parse_record($redis->get($key));
ok($good && length $good->{der}, 'a stored its record in Redis')
    or BAIL_OUT('nothing in Redis under ' . $key . ': ' . join(' ', $redis->keys));

my %poison = (
    'random bytes' => random_bytes(600),
    'a record around random DER' => OCSPCacheServer::record(
        der => "\x30\x82\x01\xf0" . random_bytes(496)),
    "a record around sni2's correctly signed response" => OCSPCacheServer::record(
        der => $sni2_der),
);

# --- a new server starting against a poisoned entry --------------------------
my $n = 0;
for my $what (sort keys %poison) {
    $n++;
    $redis->set($key, $poison{$what}, 3600);
    my $x = OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => "x$n");
    ok($x->start, "new server x$n starts against $what") or next;
    my $s = $x->summary;
    ok($s && $s->{shared} == 0 && $s->{fetched} == 1,
       "x$n did not take it and fetched for itself")
        or diag($s ? $s->{line} : 'no OCSPSTAPLE0012');
    my $r = handshake($x->port, 'rsa.test');
    ok(right_staple($r), "x$n staples the rsa response") or diag(describe($r));
    my @warn = $x->log_lines(qr/OCSPSTAPLE002[345]/);
    ok(@warn == 1 && $warn[0] =~ /OCSPSTAPLE0023: cert "CN=rsa\.test"/,
       "x$n logged once that it ignored an unverifiable cache entry (OCSPSTAPLE0023)")
        or diag(@warn ? @warn : "no OCSPSTAPLE0023\n");
    $x->stop;
}
my $healed = OCSPCacheServer::parse_record($redis->get($key));
ok($healed && $healed->{cert_status} == 0 && length $healed->{der}
   && $healed->{der} ne $sni2_der, 'the servers wrote a good record back');

# --- the running server meets poison at its renewal --------------------------
# Handshakes every ~0.3 s from here on: not one may miss or carry anything
# but the rsa certificate's good response.
my @seen;
sub watch {
    my ($timeout, $cond) = @_;
    return wait_until($timeout, sub {
        push @seen, handshake($ha->port, 'rsa.test');
        return $cond->();
    }, 0.3);
}
my $before = $seen[0] // handshake($ha->port, 'rsa.test');
$redis->set($key, $poison{"a record around sni2's correctly signed response"}, 3600);
ok(watch(60, sub { $ha->log_lines($ok_re) >= 2 }),
   'a renewed its response by itself at its renewal time')
    or diag($ha->log_lines(qr/OCSPSTAPLE/));
my $last_fetch = time;
watch(3, sub { ($seen[-1]{this_update} // 0) > ($before->{this_update} // 0) });
ok(($seen[-1]{this_update} // 0) > ($before->{this_update} // 0),
   'a staples its renewed response') or diag(describe($seen[-1]));
my $back = OCSPCacheServer::parse_record($redis->get($key));
ok($back && $back->{der} ne $sni2_der && (OCSPCacheServer::origin_pid($back) // 0) == $ha->pid,
   'a wrote its good response over the poisoned entry');
my %per_pid;
$per_pid{$_}++ for map { /\[pid (\d+)/ ? $1 : 0 } $ha->log_lines(qr/OCSPSTAPLE0023/);
ok(%per_pid && !grep({ $_ > 1 } values %per_pid),
   'a logged OCSPSTAPLE0023, at most once per process')
    or diag($ha->log_lines(qr/OCSPSTAPLE002/));
my @a24 = $ha->log_lines(qr/OCSPSTAPLE002[45]/);
ok(!@a24, 'a poisoned entry is not reported as a cache failure (no OCSPSTAPLE0024/0025)')
    or diag(@a24);

# --- a genuine response with a forged plan -----------------------------------
# The current response's bytes, but "fetched" and "to be renewed" in ten
# years: the server must still renew within its own renew window (about 30
# s after its last fetch), not wait for the response to expire.
my $cur = $back;
my $decade = time + 10 * 365 * 86400;
$redis->set($key, OCSPCacheServer::record(
    der => $cur->{der}, this_update => $cur->{this_update},
    next_update => $cur->{next_update}, expires => $decade,
    fetched_at => $decade, next_attempt => $decade, origin => 'forger.invalid/1'), 3600);
ok(watch($cur->{next_update} - time + 5, sub { $ha->log_lines($ok_re) >= 3 }),
   'a renewed again');
my $renewed_at = time;
ok($renewed_at < $cur->{next_update} - 10,
   sprintf('within its renew window: %.0f s after the last fetch, %.0f s before expiry',
           $renewed_at - $last_fetch, $cur->{next_update} - $renewed_at))
    or diag($ha->log_lines(qr/OCSPSTAPLE/));
watch(3, sub { 0 });

my @bad = grep { !right_staple($_) } @seen;
ok(!@bad, sprintf('all %d handshakes with a stapled the rsa response, never the poison', scalar @seen))
    or diag(join "\n", map { describe($_) } @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
# A sanity bound: handshakes never read the cache, and the suite runs
# scenarios in parallel on a busy machine.
my @slow = grep { $_->{elapsed} > 5 } @seen;
ok(!@slow, 'and none took over 5 s') or diag(join "\n", map { describe($_) } @slow);

$ha->stop;
$redis->stop;
$resp->stop;
