# The shared cache of a fleet goes away (Redis stopped) and comes back.
# Nothing visible happens to visitors: every handshake keeps its staple from
# the server's own copy and stays fast; each server says once that the cache
# fails (OCSPSTAPLE0024), not per handshake, and renews for itself while it
# is gone; when Redis is back each server says so (OCSPSTAPLE0025) and the
# fleet again asks the responder once per renewal, not once per server.
# Two servers, 60 s responses; about 70-100 s.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until update_ok_re);
use OCSPCacheServer;

plan tests => 17;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my $ok_re = update_ok_re('rsa');
my $rsa_serial = $pki->serial('rsa');

my @h = map { OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => $_) } qw(a b);
my ($ha, $hb) = @h;
ok($ha->start && $hb->start, 'servers a and b start') or BAIL_OUT('no servers');
my $s = $hb->summary;
ok($s && $s->{shared} == 1, 'b took the response a fetched from Redis')
    or diag($s ? $s->{line} : 'no OCSPSTAPLE0012');

# Handshakes with a and b in turn, every ~0.3 s, while waiting for things.
my @seen;
sub watch {
    my ($timeout, $cond) = @_;
    my $i = 0;
    return wait_until($timeout, sub {
        my $h = $h[$i++ % 2];
        push @seen, { %{ handshake($h->port, 'rsa.test') }, server => $h->{name} };
        return $cond->();
    }, 0.3);
}
sub fetches { my ($h, $off) = @_; scalar $h->log_lines($ok_re, $off) }

# --- Redis stops --------------------------------------------------------------
watch(2, sub { 0 });
my %off = map { ($_->{name} => $_->log_size) } @h;
$redis->stop;
my $t_down = time;
# Nothing happens until the renewal; then each server finds the cache gone
# and fetches for itself.
ok(watch(70, sub { fetches($ha, $off{a}) >= 1 && fetches($hb, $off{b}) >= 1 }),
   'with Redis down, a and b both renew by themselves')
    or diag(map { $_->log_lines(qr/OCSPSTAPLE/) } @h);
watch(8, sub { 0 });     # any further (per-process) fetches of this round
for my $h (@h) {
    my $n = $h->{name};
    my @w24 = $h->log_lines(qr/OCSPSTAPLE0024/, $off{$n});
    ok(@w24 == 1, "$n warned once that the cache fails (OCSPSTAPLE0024)")
        or diag(@w24 ? @w24 : "no OCSPSTAPLE0024\n");
    my @w25 = $h->log_lines(qr/OCSPSTAPLE0025/, $off{$n});
    ok(!@w25, "$n does not claim the cache works while Redis is down")
        or diag(@w25);
    # Without the cache, processes cannot share a fetched response: each
    # child (2 here) may fetch for itself, but never more than once.
    my $f = fetches($h, $off{$n});
    ok($f >= 1 && $f <= 2, "$n fetched at most once per child process for the renewal ($f)")
        or diag($h->log_lines(qr/OCSPSTAPLE000[2-5]/, $off{$n}));
}

# --- Redis is back (empty, same port) ----------------------------------------
%off = map { ($_->{name} => $_->log_size) } @h;
$redis->start;
my $t_up = time;
my $n_up = $resp->requests;

# The next renewal: a server looks into Redis, which works again, and one of
# them fetches; the other takes its response. Allow one renewal to settle,
# then a renewal must be a single request for both servers.
my @clusters;
for my $round (1 .. 2) {
    my $n0 = $resp->requests;
    last unless watch(45, sub { $resp->requests > $n0 });
    watch(10, sub { 0 });
    push @clusters, $resp->requests - $n0;
    last if $clusters[-1] == 1;
}
ok(@clusters && $clusters[-1] == 1,
   'after Redis is back a renewal is one request for both servers again')
    or diag('requests per renewal since Redis is back: ', join(' ', @clusters),
            "\n", map { ("$_->{name}: ", $_->log_lines(qr/OCSPSTAPLE/, $off{$_->{name}})) } @h);
for my $h (@h) {
    my $n = $h->{name};
    my @w25 = $h->log_lines(qr/OCSPSTAPLE0025/, $off{$n});
    ok(@w25 == 1, "$n logged once that the cache works again (OCSPSTAPLE0025)")
        or diag(@w25 ? @w25 : "no OCSPSTAPLE0025 since Redis is back\n");
}
my $rec = OCSPCacheServer::parse_record($redis->get($redis->key_for($pki->cert_id('rsa'))));
ok($rec && $rec->{cert_status} == 0 && $rec->{fetched_at} > $t_up,
   'Redis holds the fleet\'s response again');

# --- what visitors saw ----------------------------------------------------------
my @bad = grep { !$_->{stapled} || ($_->{serial} // '') ne $rsa_serial
                 || ($_->{cert_status} // '') ne 'good' } @seen;
ok(!@bad, sprintf('all %d handshakes (a and b, cache up, down, back) were stapled',
                  scalar @seen))
    or diag(join "\n", map { "$_->{server}: " . describe($_) } @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
# A sanity bound (handshakes never touch the cache; the suite runs scenarios
# in parallel on a busy machine).
my @slow = grep { $_->{elapsed} > 5 } @seen;
ok(!@slow, 'none took over 5 s') or diag(join "\n", map { describe($_) } @slow);
my $max = 0;
$_->{elapsed} > $max and $max = $_->{elapsed} for @seen;
diag(sprintf 'slowest handshake %.3f s; Redis down %.0f s', $max, $t_up - $t_down);

# One warning per outage, not one per handshake or process.
for my $h (@h) {
    my $n = $h->{name};
    my @all = $h->log_lines(qr/OCSPSTAPLE002[45]/);
    ok(@all <= 2, "$n: at most one OCSPSTAPLE0024 and one OCSPSTAPLE0025 in all")
        or diag(@all);
}

$_->stop for @h;
$redis->stop;
$resp->stop;
