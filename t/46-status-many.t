# The status page and mod_status's summary at scale: 300 certificates in
# 300 SNI virtual hosts, a shared Redis cache. A status request reads only
# the serving process's own state: it sends no read to the shared cache at
# all (neither the JSON page nor `server-status?auto`), however many
# certificates there are, and it still lists every one of them.
#
# (Before, each status request read and verified again every certificate's
# record from the shared cache: one GET per certificate per request to Redis.
# 300 certificates tell "none" from "one per certificate" as well as 1000
# did, at a third of the suite's CPU; `make bench` measures 1000 and more.)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;
use OCSPOps;
use OCSPLoad;

my $N = 300;
my $ROUNDS = 3;
my $SANE = $ENV{OCSP_SANITIZE} ? 10 : 5;   # seconds: a sanity bound, not a benchmark

plan tests => 15;
OCSPServer::deadline(540);

my ($w, $pki, $resp) = setup();

# ---- N ECDSA P-256 leaves (as t/36-many.t makes its 200) -----------------------
my $made = OCSPLoad::make_leaves($pki, $w, n => $N, prefix => 'm', parallel => 4);
diag(sprintf '%d certificates made in %.1f s', $N, $made);

$resp->start;
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;

# One child process: the page shows the state of the process that serves it,
# so every request here is served by the same, fully loaded process.
my $moddir = $OCSPServer::MODDIR;
my $h = OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => 'httpd',
    mpm => 'event',
    mpm_conf => { StartServers => 1, ServerLimit => 1, ThreadsPerChild => 25,
                  MaxRequestWorkers => 25, MinSpareThreads => 1, MaxSpareThreads => 50 },
    global => [ "LoadModule status_module $moddir/mod_status.so",
                "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>",
                "<Location /server-status>\n    SetHandler server-status\n</Location>" ],
    vhosts => [ map { { name => "m$_.test", cert => "m$_" } } 1 .. $N ]);
my $took = $h->start(timeout => 240);
ok($took, sprintf('httpd with %d TLS vhosts and a Redis cache starts (%.1f s)', $N, $took // -1))
    or BAIL_OUT('no server');

# ---- wait until every certificate is fetched and stapled ---------------------------
my $t0 = time;
my $keys = 0;
wait_until(240, sub {
    $keys = scalar grep { /^ocspstaple:/ } $redis->keys;
    return $keys >= $N && $resp->requests('good') >= $N;
}, 1);
diag(sprintf '%d records in Redis, %d responder requests, %.1f s after the start',
     $keys, $resp->requests('good'), time - $t0 + ($took // 0));
my $json;
my $stapling = 0;
wait_until(180, sub {
    $json = OCSPOps::status_json($h->port) or return 0;
    $stapling = grep { $_->{stapling} } @{ $json->{certificates} // [] };
    return $stapling >= $N;
}, 2);
is($stapling, $N, "the status page says all $N certificates are stapling")
    or diag($h->summary ? $h->summary->{line} : 'no OCSPSTAPLE0012 line');
my $rows = scalar @{ $json->{certificates} // [] };
is($rows, $N, "the JSON lists $N certificates");
my %cn = map { (($_->{subject} // '') =~ /CN=(m\d+)\.test/ ? $1 : '') => 1 }
         @{ $json->{certificates} // [] };
is(scalar(grep { $cn{"m$_"} } 1 .. $N), $N, "one row for each of m1.test .. m$N.test");
my @sample = (1, $N, 1 + int rand $N);
my @bad = grep { !$_->{stapled} } map { handshake($h->port, "m$_.test") } @sample;
ok(!@bad, "handshakes to m$sample[0], m$sample[1], m$sample[2] are stapled")
    or diag(map { describe($_) . "\n" } @bad);

# ---- what one status request costs the shared cache -------------------------------
# Redis counts every command it executes (INFO commandstats). Read around ONE
# request, immediately before and after it, how many reads (GET, MGET, ...)
# the server sent.
#
# Why "each delta < N/10 and the smallest delta 0", over 3 rounds:
#  - it must fail on the old code: there every status request reads every
#    certificate's record, so each delta is about N, far above N/10,
#    and never 0;
#  - it must not be flaky on the new code: the request itself reads nothing,
#    but the background refresh of the child may read a record from the cache
#    now and then (a renewal window opening, a record to look at again), and
#    such a read can fall into a window by chance. It reads a handful at a
#    time, never anything near N/10 within the fraction of a second a window
#    lasts, and all responses here are valid for a day (their renewal is
#    hours away), so at least one of 3 windows is quiet: the smallest delta
#    is 0. A status page that read even a tenth of the records per request
#    would break the first bound; one that read a single record per request
#    would never give a quiet window and break the second.
sub measure {
    my ($what, $get) = @_;
    my (@delta, @secs, @res);
    for (1 .. $ROUNDS) {
        my %before = OCSPLoad::redis_calls($redis);
        my $t = time;
        my $res = $get->();
        my $secs = time - $t;
        my %after = OCSPLoad::redis_calls($redis);
        push @delta, OCSPLoad::reads(%after) - OCSPLoad::reads(%before);
        push @secs, $secs;
        push @res, $res;
        my %moved = map { $_ => ($after{$_} // 0) - ($before{$_} // 0) }
                    grep { $_ ne 'info' && ($after{$_} // 0) != ($before{$_} // 0) } keys %after;
        diag(sprintf '%s: %.3f s, Redis commands meanwhile: %s', $what, $secs,
             join(', ', map { "$_ $moved{$_}" } sort keys %moved) || 'none');
    }
    return (\@delta, \@secs, \@res);
}

my ($jd, $js, $jr) = measure('GET /ocsp-status?format=json',
                             sub { OCSPOps::https_get($h->port, '/ocsp-status?format=json') });
ok(!grep({ $_->{code} != 200 } @$jr), "$ROUNDS JSON status requests answered 200");
ok(!grep({ $_ >= $N / 10 } @$jd), sprintf('each JSON status request: fewer than %d reads from '
   . 'Redis (reads: %s)', $N / 10, join(' ', @$jd)));
is((sort { $a <=> $b } @$jd)[0], 0, 'and at least one went by without any read from Redis');
my $jrows = eval { scalar @{ JSON::PP->new->decode($jr->[-1]{body})->{certificates} } } // -1;
is($jrows, $N, "the last one still lists $N certificates");
cmp_ok((sort { $a <=> $b } @$js)[0], '<', $SANE,
       sprintf('JSON status request times (sanity bound %d s): %s', $SANE,
               join(' ', map { sprintf '%.3f s', $_ } @$js)));

my ($sd, $ss, $sr) = measure('GET /server-status?auto',
                             sub { OCSPOps::https_get($h->port, '/server-status?auto') });
ok(!grep({ $_->{code} != 200 } @$sr), "$ROUNDS server-status?auto requests answered 200");
ok(!grep({ $_ >= $N / 10 } @$sd), sprintf('each server-status?auto: fewer than %d reads from '
   . 'Redis (reads: %s)', $N / 10, join(' ', @$sd)));
is((sort { $a <=> $b } @$sd)[0], 0, 'and at least one went by without any read from Redis');
my $auto = $sr->[-1]{body} // '';
ok($auto =~ /^OCSPStaplingCertificates: \Q$N\E$/m
   && $auto =~ /^OCSPStaplingStapled: \Q$N\E$/m,
   "server-status?auto: OCSPStaplingCertificates: $N, OCSPStaplingStapled: $N")
    or diag(join "\n", grep { /OCSP/ } split /\n/, $auto);
cmp_ok((sort { $a <=> $b } @$ss)[0], '<', $SANE,
       sprintf('server-status?auto times (sanity bound %d s): %s', $SANE,
               join(' ', map { sprintf '%.3f s', $_ } @$ss)));

$h->stop;
$redis->stop;
$resp->stop;
