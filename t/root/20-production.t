# Production mode, continued (see t/root/10-privileges.t): Apache started by
# root with `User ocspstaple-test`, root's umask 027 (a hardened default:
# what the module creates must not depend on 022). Checked through real
# handshakes, what the responder sees, and owners and modes (stat):
#  (A) no OCSPStaplingStore line: the built-in default
#      /var/cache/apache2/ocspstaple (OCSP_DEFAULT_STORE for a build with
#      another -DOCSPSTAPLE_DEFAULT_STORE), in a private mount namespace
#      (unshare -m: an empty directory of ours is bound over /var/cache, so
#      the machine's /var/cache is never touched). The module creates it
#      0700 for the server user, its missing parent 0755 root's; the file
#      is the server user's; after a full stop and start the first handshake
#      is stapled from it with no request to the responder.
#  (C) OCSPStaplingStore off, a graceful restart under load: no handshake
#      blocks, the server keeps serving, the new generation (whose shared
#      memory starts empty) fetches at once and staples again within a few
#      seconds.
#  (B) OCSPStaplingCache dbm:, made by the root parent, and
#      `Mutex flock:DIR` (lock files that stay, reopened by every child as
#      the server user): the children renew (responses of 60 s, renewed
#      every 5 s) and write the dbm: a handshake shows a later thisUpdate,
#      and after a full stop and start with the responder down and the
#      store off, the first handshake staples the renewed response from the
#      dbm. The dbm and lock files belong to the server user.
# Runs as root only (make test runs it so); skipped otherwise. On its own:
#   prove -v -I t/lib t/root/20-production.t      (as root; user
#   ocspstaple-test must exist, or OCSP_TEST_USER names another)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Basename qw(dirname);
use Time::HiRes qw(time);
use OCSPServer qw(:root setup handshake describe wait_until);
use OCSPLoad;

my $USER = $ENV{OCSP_TEST_USER} // 'ocspstaple-test';
plan skip_all => 'production mode: runs as root (make test runs it so)' if $> != 0;
my @pw = getpwnam($USER)
    or plan skip_all => "no user $USER (t/run-tests.sh creates it)";
my ($UID, $GID) = @pw[2, 3];

plan tests => 38;
OCSPServer::deadline(300);      # may first wait for t/root/30-package.t (machine_lock)
umask 027;

my $SLOW = $ENV{OCSP_SANITIZE} ? 2 : 1;
my $DEFAULT_STORE = $ENV{OCSP_DEFAULT_STORE} // '/var/cache/apache2/ocspstaple';
my $HS_LIMIT = 5 * $SLOW;       # no handshake may take this long

sub owner { my @s = lstat $_[0]; @s ? (getpwuid($s[4]))[0] // $s[4] : 'missing' }
sub mode  { my @s = lstat $_[0]; @s ? sprintf('%04o', $s[2] & 07777) : 'missing' }
sub stapled_good { $_[0]{stapled} && ($_[0]{cert_status} // '') eq 'good' }
sub root_dir {                  # a directory of ours the server user may traverse
    my ($d) = @_;
    mkdir $d or die "$d: $!";
    chmod 0755, $d or die "$d: $!";
    return $d;
}
# The module's warnings and worse, as lines of an error log (after OFFSET).
sub complaints { $_[0]->log_lines(qr/\[ocspstaple:(?:warn|error|crit|alert|emerg)\]/, $_[1]) }

my ($w, $pki, $resp) = setup();
my $machine = OCSPServer::machine_lock();    # no package install meanwhile
$resp->start;                   # responses valid for a day (A, C); B restarts it
my $rsa_id = $pki->cert_id('rsa');

# ---- (A) the built-in default store, in a private mount namespace ----------
SKIP: {
    my $top = dirname(dirname($DEFAULT_STORE));      # /var/cache
    my $ns = OCSPTest::run_capture('unshare', '--mount', '--propagation', 'private',
                                   '--', 'true');
    skip "no private mount namespace here (unshare --mount: $ns)", 14 if $? != 0;
    skip "$top does not exist here", 14 unless -d $top;

    my $fake = root_dir("$w/fake-top");              # bound over $top
    my $store = $fake . substr($DEFAULT_STORE, length $top);
    my $parent = dirname($store);
    my $real_before = -e $DEFAULT_STORE;
    my $hA = OCSPServer::Httpd->new(dir => $w, name => 'httpdA', pki => $pki,
        user => $USER, store => 'unset',
        wrap => [ 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
                  'mount --bind "$0" "$1" && shift && exec "$@"', $fake, $top ],
        vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
    ok($hA->start(timeout => 40), "(A) root starts httpd without OCSPStaplingStore "
       . "(its default $DEFAULT_STORE on an empty $top)") or BAIL_OUT('no server');
    my $r = handshake($hA->port, 'rsa.test');
    ok(stapled_good($r), '(A) first handshake stapled (good)') or diag(describe($r));
    ok(-d $store && !-l $store, "(A) the default store directory was created "
       . "($DEFAULT_STORE, seen from outside as $store)")
        or diag($hA->log_lines(qr/OCSPSTAPLE00(?:12|3\d)/));
    is(join(' ', owner($store), mode($store)), "$USER 0700",
       "(A) the store directory: ${USER}'s, mode 0700");
    is(join(' ', owner($parent), mode($parent)), 'root 0755',
       "(A) its missing parent " . dirname($DEFAULT_STORE) . ": root's, mode 0755 "
       . '(umask 027 notwithstanding)');
    is(join(' ', owner($fake), mode($fake)), 'root 0755',
       "(A) $top itself untouched (root 0755)");
    my $file = "$store/$rsa_id.der";
    ok(wait_until(10, sub { -f $file }, 0.1), "(A) rsa.test's response written: <cert id>.der")
        or diag('in the store: ', join(' ', glob "$store/*"));
    is(join(' ', owner($file), mode($file)), "$USER 0600", "(A) the response file: ${USER}'s, 0600");
    is(-e $DEFAULT_STORE ? 1 : 0, $real_before ? 1 : 0,
       "(A) the machine's own $DEFAULT_STORE was not touched");

    # A full stop and start: the new start must staple from the store alone.
    ok($hA->stop && !$hA->alive, '(A) stopped');
    my $before = $resp->requests;
    my $tu = $r->{this_update} // 0;
    ok($hA->start(timeout => 40), '(A) started again') or BAIL_OUT('no server');
    my $r2 = handshake($hA->port, 'rsa.test');
    ok(stapled_good($r2) && ($r2->{this_update} // -1) == $tu,
       '(A) the first handshake after the start staples the stored response (same thisUpdate)')
        or diag('before: ', describe($r), "\nafter: ", describe($r2));
    is($resp->requests - $before, 0, '(A) ... and the responder was not asked');
    my @c = complaints($hA);
    ok(!@c, '(A) no warning or error from the module') or diag(@c);
    $hA->stop;
}

# ---- (C) graceful restart with the store off, under load --------------------
my $hC = OCSPServer::Httpd->new(dir => $w, name => 'httpdC', pki => $pki, user => $USER,
    store => 'off', vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($hC->start(timeout => 40), '(C) root starts httpd with OCSPStaplingStore off')
    or BAIL_OUT('no server');
my $r = handshake($hC->port, 'rsa.test');
ok(stapled_good($r), '(C) stapled at once after the start') or diag(describe($r));
my $load = OCSPLoad::Clients->new(dir => $w, name => 'clientsC', port => $hC->port,
    servername => 'rsa.test', n => 2, pause => 0.3, seconds => 90, max => 300);
$load->start;
wait_until(20, sub { $load->results >= 4 }, 0.3);
my $req_before = $resp->requests;
my $t_usr1 = time;
my $g = $hC->graceful(timeout => 40);
my $t_new = time;
ok($g, sprintf('(C) graceful restart: the new generation serves after %.2f s', $g // -1))
    or BAIL_OUT('no server');
my $back;
wait_until(15 * $SLOW, sub {
    $back = handshake($hC->port, 'rsa.test');
    stapled_good($back);
}, 0.3);
my $t_back = time;
ok(stapled_good($back), sprintf('(C) stapled again %.2f s after the new generation served '
   . '(bound %d s)', $t_back - $t_new, 15 * $SLOW)) or diag(describe($back));
# The load goes on a little after that (every child has the response a
# second after one has it; 2.5 s for a loaded machine), then its numbers.
wait_until(15, sub { grep { $_->{time} > $t_back + 2.5 } $load->results }, 0.3);
$load->stop;
my @all = $load->results;
my @across = grep { $_->{time} >= $t_usr1 } @all;
my $s = OCSPLoad::stats(@all);
my @bare = grep { !$_->{stapled} } @across;
diag('(C) load: ' . OCSPLoad::describe_stats($s));
diag(sprintf '(C) after the restart signal: %d handshakes, %d without a staple%s',
     scalar @across, scalar @bare, @bare ? sprintf(' (begun %.2f to %.2f s after it)',
     $bare[0]{time} - $t_usr1, $bare[-1]{time} - $t_usr1) : '');
ok(@across >= 2, sprintf '(C) handshakes went on across the restart (%d)', scalar @across);
is($s->{connected}, $s->{n}, "(C) every handshake of the load connected ($s->{n})");
cmp_ok($s->{max}, '<', $HS_LIMIT, sprintf('(C) none took %d s or more (max %.3f s)',
                                          $HS_LIMIT, $s->{max}));
my @late = grep { $_->{time} > $t_back + 2.5 } @all;
ok(@late && !grep({ !$_->{stapled} } @late),
   sprintf('(C) the load is stapled again: %d handshake(s) from 2.5 s after that on, all stapled',
           scalar @late))
    or diag(map { sprintf "%+.2f s: stapled %d\n", $_->{time} - $t_usr1, $_->{stapled} } @across);
my $fetched = $resp->requests - $req_before;
ok($fetched >= 1 && $fetched <= 2, "(C) the new generation fetched the response "
   . "(nothing stored to load): $fetched request(s) to the responder");
ok($hC->alive, '(C) server still running');
$hC->stop;

# ---- (B) a dbm cache and flock mutexes made by root; renewals by the children
$resp->restart(nmin => 1);          # responses valid for 60 s
my $dbmdir = root_dir("$w/dbm");
my $lockdir = root_dir("$w/locks");
my $hB = OCSPServer::Httpd->new(dir => $w, name => 'httpdB', pki => $pki, user => $USER,
    store => 'off',
    global => [ "LoadModule socache_dbm_module $OCSPServer::MODDIR/mod_socache_dbm.so",
                "OCSPStaplingCache dbm:$dbmdir/ocsp",
                "Mutex flock:$lockdir ocspstaple-cache ocspstaple-fetch",
                # a duration longer than the response: renew 5 s after each fetch
                'OCSPStaplingRenewWindow 100s' ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
my $reqB = $resp->requests;
ok($hB->start(timeout => 40),
   "(B) root starts httpd with OCSPStaplingCache dbm: and Mutex flock:$lockdir")
    or BAIL_OUT('no server');
my $b1 = handshake($hB->port, 'rsa.test');
ok(stapled_good($b1), '(B) stapled at once after the start') or diag(describe($b1));
my $tu1 = $b1->{this_update} // 0;
my $b2;
wait_until(25 * $SLOW, sub {
    $b2 = handshake($hB->port, 'rsa.test');
    stapled_good($b2) && ($b2->{this_update} // 0) > $tu1;
}, 0.5);
ok(stapled_good($b2) && ($b2->{this_update} // 0) > $tu1,
   '(B) renewed by the children: a handshake shows a later thisUpdate')
    or diag('first: ', describe($b1), "\nlater: ", describe($b2));
cmp_ok($resp->requests - $reqB, '>=', 2, '(B) the responder saw the start-up fetch and a renewal');
my @dbm = grep { -f } glob "$dbmdir/ocsp*";
ok(@dbm >= 1, '(B) the dbm file(s) exist: ' . join(' ', map { s{.*/}{}r } @dbm));
my @bad = grep { (lstat $_)[4] != $UID || !((lstat $_)[2] & 0200) } @dbm;
ok(@dbm && !@bad, "(B) every dbm file is ${USER}'s and writable for it")
    or diag(map { sprintf "%s %s %s\n", $_, owner($_), mode($_) } @dbm);
my @locks = glob "$lockdir/*";
ok(scalar(grep { m{/ocspstaple-cache[^/]*$} } @locks)
   && scalar(grep { m{/ocspstaple-fetch[^/]*$} } @locks),
   "(B) the flock mutexes' lock files are in $lockdir: "
   . join(' ', map { s{.*/}{}r } @locks)) or diag("@locks");
@bad = grep { (lstat $_)[4] != $UID } @locks;
ok(@locks && !@bad, "(B) every lock file is ${USER}'s (children reopen them)")
    or diag(map { sprintf "%s %s %s\n", $_, owner($_), mode($_) } @locks);
my @rootowned = grep { (lstat $_)[4] == 0 }
                (grep { m{/[^/]*ocspstaple[^/]*$} } glob "$w/httpdB.run/*"), @dbm, @locks;
ok(!@rootowned, "(B) nothing of the module left to root where the children write "
   . '(runtime dir, dbm, lock files)')
    or diag("@rootowned");
my @c = complaints($hB);
ok(!@c, '(B) no warning or error from the module (mutexes reattached, dbm written)')
    or diag(@c);

# Down with the responder, a full stop and start: the store is off, so what
# the first handshake staples can only come from the dbm, written by a child.
$resp->stop;
my $tu2 = $b2->{this_update} // 0;
ok($hB->stop && !$hB->alive, '(B) stopped');
ok($hB->start(timeout => 40), '(B) started again (responder down, store off)')
    or BAIL_OUT('no server');
my $b3 = handshake($hB->port, 'rsa.test');
ok(stapled_good($b3) && ($b3->{this_update} // 0) >= $tu2,
   '(B) the first handshake staples the renewed response from the dbm')
    or diag('renewed: ', describe($b2), "\nnow: ", describe($b3));
my $sum = $hB->summary;
is($sum && $sum->{shared}, 1, '(B) the start-up took it from the dbm (the shared cache)')
    or diag($sum ? $sum->{line} : 'no OCSPSTAPLE0012 line');
$hB->stop;
