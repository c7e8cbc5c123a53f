# Many certificates: 200 name-based TLS vhosts on one port are all fetched
# at startup (concurrently) and all stapled, also from a busy responder that
# drops every 20th connection unanswered (one dropped connection is not a
# dead responder: the round goes on, the dropped fetch is tried again); with a responder that hangs,
# startup is delayed by about ONE timeout, not one per certificate; and a
# cache too small for all of them is reported at startup with a size to set;
# the store files that startup round wrote (synced once, at its end) are
# whole: a new start with the responder down staples every one from them.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe hanging_listener);
use OCSPLoad ();

my $N = 200;
my $TIMEOUT = 2;
plan tests => 20;
OCSPServer::deadline(420);      # three starts of 200 vhosts: past 240 s under make test-asan on a busy machine

my ($w, $pki, $resp) = setup();
my $SERIAL0 = 0x300000;

# ---- 200 ECDSA P-256 leaves from the test PKI's intermediate --------------
my $made = eval { OCSPLoad::make_leaves($pki, $w, n => $N, prefix => 'm',
                                        serial0 => $SERIAL0) };
ok(defined $made, sprintf('%d certificates made in %.1f s', $N, $made // -1))
    or BAIL_OUT($@);
is($pki->serial('m1'), sprintf('%X', $SERIAL0 + 1), 'index.txt serials match the certificates');

my @vhosts = map { { name => "m$_.test", cert => "m$_" } } 1 .. $N;
my @sample = (1, 2, $N, map { 1 + int rand $N } 1 .. 17);

# ---- all fetched, all stapled, though some connections are dropped -------
my $DROP_EVERY = 20;
$resp->start(drop_every => $DROP_EVERY);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
                               vhosts => \@vhosts);
my $took = $h->start(timeout => 120);
my $took_healthy = $took // 0;
ok($took, sprintf('httpd with %d TLS vhosts starts (%.1f s)', $N, $took // -1))
    or BAIL_OUT('no server');
# The start waits for the round at most the timeout + 5 s (a slow loopback
# responder may need longer for 200 answers): the helper's summary line
# comes when the round is done, in the background if need be.
$h->wait_for_log(qr/OCSPSTAPLE0012: /, 120);
my $sum = $h->summary // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), "$N 0 $N 0",
   "startup summary: $N certificates, $N fetched") or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
is($resp->requests('good'), $N, "one answered request per certificate");
my $dropped = grep { $_->{status} eq 'dropped' } $resp->log_records;
ok($dropped >= int($N / $DROP_EVERY),
   "the responder dropped $dropped connections (every ${DROP_EVERY}th) and yet all were fetched");
# Every process takes what the helper published within its next tick (1 s).
my $stapled_ok = sub { $_[0]{stapled} && ($_[0]{cert_status} // '') eq 'good'
                       && ($_[0]{serial} // '') eq sprintf('%X', $SERIAL0 + $_[0]{i}) };
my @bad;
OCSPServer::wait_until(10, sub {
    @bad = grep { !$stapled_ok->($_) }
           map { my $r = handshake($h->port, "m$_.test"); $r->{i} = $_; $r } @sample;
    !@bad;
}, 0.5);
ok(!@bad, scalar(@sample) . ' sampled vhosts: each staples the response for its own certificate')
    or diag(map { "m$_->{i}: " . describe($_) . "\n" } @bad);
ok(!$h->log_lines(qr/OCSPSTAPLE0033/), 'the default cache is large enough (no OCSPSTAPLE0033)');
$h->stop;

# ---- the round's store files (written unsynced, one sync at its end) --------
# A round of 16 or more certificates syncs the store once at its end instead
# of once per file: the files must still be whole. The responder is down,
# so a new start can staple only from them.
my @files = grep { -s } map { "$w/store/" . $pki->cert_id("m$_") . '.der' } 1 .. $N;
is(scalar @files, $N, "the startup round left a store file for each of the $N certificates");
$resp->stop;
my $off = $h->log_size;
ok($h->start(timeout => 120), 'httpd starts again, responder down') or BAIL_OUT('no server');
$h->wait_for_log(qr/OCSPSTAPLE0012: /, 60, $off);
$sum = $h->summary($off) // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), "$N $N 0 0",
   "startup summary: all $N from the store") or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
OCSPServer::wait_until(10, sub {
    @bad = grep { !$stapled_ok->($_) }
           map { my $r = handshake($h->port, "m$_.test"); $r->{i} = $_; $r } @sample;
    !@bad;
}, 0.5);
ok(!@bad, scalar(@sample) . ' sampled vhosts staple their own response, from the store')
    or diag(map { "m$_->{i}: " . describe($_) . "\n" } @bad);
ok(!$h->log_lines(qr/OCSPSTAPLE003[18]/, $off), 'no store file refused, no failed sync');
$h->stop;
$resp->start;

# ---- a cache too small: said at startup, with a size --------------------------
# 32 KB: about the smallest shmcb accepts with the module's size hints (2 KB
# per response; 8 KB is refused outright: "shared memory segment too small").
my $small = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd-small',
    store => 'off', global => [ "OCSPStaplingCache shmcb:$w/small(32768)" ],
    vhosts => \@vhosts);
ok($small->start(timeout => 120), 'httpd starts with a 32 KB cache') or BAIL_OUT('no server');
my $warn = $small->wait_for_log(qr/OCSPSTAPLE0033/, 120);
my ($size) = ($warn // '') =~ /OCSPStaplingCache shmcb:\S*\((\d+)\)/;
ok($warn && $warn =~ /\[ocspstaple:warn\].*kept only \d+ of $N\b/ && $size && $size >= $N * 2048,
   'OCSPSTAPLE0033 warns that the cache is too small and suggests a size')
    or diag($warn // 'no OCSPSTAPLE0033 line');
$small->stop;
$resp->stop;

# ---- a hanging responder: about one timeout in total -------------------------
my ($hang, $hang_port) = hanging_listener();
my $slow = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd-hang',
    store => 'off',
    global => [ "OCSPStaplingResponderTimeout $TIMEOUT",
                "OCSPStaplingForceURL http://127.0.0.1:$hang_port/good" ],
    vhosts => \@vhosts);
$took = $slow->start(timeout => 120);
ok($took, 'httpd starts with a responder that never answers') or BAIL_OUT('no server');
# Against the same server's start with a healthy responder, measured just
# before on the same (possibly busy) machine: one timeout per certificate
# would add 400 s, a round that gives up on the dead responder one or two.
cmp_ok($took, '<', $took_healthy + 3 * $TIMEOUT,
       sprintf('startup took %.1f s (%.1f s with a healthy responder): about one %d s timeout, '
               . 'not one per certificate', $took, $took_healthy, $TIMEOUT));
$slow->wait_for_log(qr/OCSPSTAPLE0012: /, 30);
$sum = $slow->summary // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), "$N 0 0 $N",
   "startup summary: $N certificates without a response") or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
ok(scalar($slow->log_lines(qr/OCSPSTAPLE0003: .*timed out/i)) >= 1
   && scalar($slow->log_lines(qr/OCSPSTAPLE0003: .*not tried/)) >= 1,
   'the first fetches time out, the rest of the round skips the dead responder')
    or diag(($slow->log_lines(qr/OCSPSTAPLE0003/))[0 .. 2]);
my $r = handshake($slow->port, 'm7.test');
ok($r->{connected} && $r->{elapsed} < $TIMEOUT + 1, sprintf('handshakes still work (%.2f s)', $r->{elapsed}))
    or diag(describe($r));
$slow->stop;
close $hang;
