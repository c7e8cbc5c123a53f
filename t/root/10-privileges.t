# Production mode: Apache started by root with `User ocspstaple-test`, the
# way production runs. The root parent never talks to an OCSP responder and
# never reads or writes the store: the start-up helper and the children do,
# with the server user's privileges. Checked from what the OS shows (who
# holds the TCP connection to a responder while the start-up fetch is in
# flight, who owns the store, its parents and its files) and with real
# handshakes:
#  (a) start-up fetch to a hanging responder: held by the server user only;
#  (b) rsa.test stapled at once; a missing store dir is created 0700 for the
#      server user, its missing parents 0755 root, the file 0600 the user's;
#  (d) a graceful restart works, does not wait on the hanging responder, and
#      rsa.test is still stapled;
#  (c) a store dir root owns (0755) is left alone (not chowned), the module
#      says it cannot use it, and rsa.test is still stapled from the
#      responder.
# Runs as root only (make test runs it so); skipped otherwise. On its own:
#   prove -v -I t/lib t/root/10-privileges.t      (as root; user
#   ocspstaple-test must exist, or OCSP_TEST_USER names another)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use OCSPServer qw(:root setup handshake describe wait_until hanging_listener);

my $USER = $ENV{OCSP_TEST_USER} // 'ocspstaple-test';
plan skip_all => 'production mode: runs as root (make test runs it so)' if $> != 0;
my @pw = getpwnam($USER)
    or plan skip_all => "no user $USER (t/run-tests.sh creates it)";
my ($UID, $GID) = @pw[2, 3];

plan tests => 24;
OCSPServer::deadline(240);
umask 022;                    # root's usual umask; the module sets its own modes

my $TIMEOUT = 6;              # hang.test's OCSPStaplingResponderTimeout

# ---- who holds connections to a port: a sampler process -------------------
# Every 50 ms: `ss -tnp` for established connections to 127.0.0.1:PORT...,
# and for each process holding one, its ids from /proc/PID/status. One line
# per process and sample: time, port, pid, name, Uid (real, effective,
# saved, fs), Gid (same), Groups.
package ConnWatch;
use Time::HiRes qw(time sleep);

sub new {
    my ($class, $file, @ports) = @_;
    my $filter = '( ' . join(' or ', map { "dport = :$_" } @ports) . ' )';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{$_} = sub { POSIX::_exit(0) } for qw(TERM INT);   # no END blocks here
        open my $out, '>>', $file or POSIX::_exit(1);
        $out->autoflush(1);
        # Samples every 50 ms until the test stops it (TERM) or, orphaned,
        # its parent is gone; 200 s at most.
        OCSPServer::wait_until(200, sub {
            my $now = time;
            for my $l (`ss -Htnp state established '$filter' 2>&1`) {
                my ($port) = $l =~ /\S+:\d+\s+127\.0\.0\.1:(\d+)\s/ or next;
                for my $p ($l =~ /pid=(\d+)/g) {
                    my $st = OCSPServer::slurp("/proc/$p/status");
                    my ($name) = $st =~ /^Name:\s*(\S+)/m or next;
                    my ($u) = $st =~ /^Uid:[ \t]*([^\n]*)/m;
                    my ($g) = $st =~ /^Gid:[ \t]*([^\n]*)/m;
                    my ($gs) = $st =~ /^Groups:[ \t]*([^\n]*)/m;
                    printf $out "%.3f\t%s\t%s\t%s\t%s\t%s\t%s\n", $now, $port, $p,
                        $name, join(',', split ' ', $u), join(',', split ' ', $g),
                        join(',', split ' ', $gs // '');
                }
            }
            return getppid() == 1;
        }, 0.05);
        POSIX::_exit(0);
    }
    my $self = bless { pid => $pid, file => $file }, $class;
    OCSPServer::track($self);
    return $self;
}

sub stop {
    my ($self) = @_;
    OCSPServer::untrack($self);
    OCSPServer::stop_child(delete $self->{pid}) if $self->{pid};
    return 1;
}

# Samples so far: [time, port, pid, name, [uids], [gids], [groups]].
sub samples {
    my ($self, %o) = @_;
    my @s;
    for (split /\n/, OCSPServer::slurp($self->{file})) {
        my @f = split /\t/, $_, -1;
        next unless @f == 7;
        next if defined $o{port} && $f[1] != $o{port};
        next if defined $o{since} && $f[0] < $o{since};
        push @s, [ @f[0 .. 3], map { [ split /,/ ] } @f[4 .. 6] ];
    }
    return @s;
}

# Diagnostics: one line per process and ids seen, with how often.
sub show {
    my (%n, @order);
    for my $s (@_) {
        my $k = sprintf 'port %s pid %s %s uid=%s gid=%s groups=%s',
            @$s[1 .. 3], map { join ',', @$_ } @$s[4 .. 6];
        push @order, $k unless $n{$k}++;
    }
    return join '', map { "  $_ ($n{$_} samples)\n" } @order;
}

package main;

# A sample of a process with root anywhere in its ids.
sub rootish {
    my ($s) = @_;
    return grep({ $_ == 0 } @{ $s->[4] }, @{ $s->[5] }, @{ $s->[6] }) ? 1 : 0;
}
# A sample of a process that is the server user through and through.
sub server_user {
    my ($s) = @_;
    return !grep({ $_ != $UID } @{ $s->[4] }) && !grep({ $_ != $GID } @{ $s->[5] })
        && !rootish($s);
}
sub owner { my @s = lstat $_[0]; @s ? (getpwuid($s[4]))[0] // $s[4] : 'missing' }
sub mode  { my @s = lstat $_[0]; @s ? sprintf('%04o', $s[2] & 07777) : 'missing' }

my ($w, $pki, $resp) = setup();
$resp->start;
my ($hang, $hang_port) = hanging_listener();     # accepts (kernel), never answers
my $var = "$w/var";
my $store = "$var/cache/ocspstaple";               # nothing of it exists yet
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, user => $USER, store => $store,
    vhosts => [
        { name => 'hang.test', cert => 'sni2',
          extra => "OCSPStaplingForceURL http://127.0.0.1:$hang_port/\n"
                 . "OCSPStaplingResponderTimeout $TIMEOUT" },
        { name => 'rsa.test', cert => 'rsa' },
    ]);

# ---- (a) the start-up fetch runs as the server user -------------------------
my $watch = ConnWatch->new("$w/connections.txt", $hang_port, $pki->port);
ok(wait_until(10, sub { -e "$w/connections.txt" }), 'connection sampler running');
my $t_start = time;
my $started = $h->start(timeout => 40);
ok($started, "root starts httpd with User $USER") or BAIL_OUT('no server');
# The fetch to hang.test lasts its timeout; whoever makes it, it is seen.
wait_until(2 * $TIMEOUT, sub { scalar $watch->samples(port => $hang_port) }, 0.1);
my @start = $watch->samples(port => $hang_port);
ok(scalar @start, "start-up: a connection to hang.test's responder seen (ss -tnp)")
    or diag("nothing in ss -tnp for 127.0.0.1:$hang_port during "
            . sprintf('%.1f s', time - $t_start));
my @root = grep { rootish($_) } $watch->samples;
ok(!@root, 'start-up: no connection to a responder held by a process with uid/gid 0')
    or diag("held by root:\n", ConnWatch::show(@root));
my @other = grep { !server_user($_) } @start;
ok(@start && !@other, "start-up: every holder runs as $USER (uid $UID, gid $GID: "
                      . 'real, effective, saved, fs)')
    or diag("holders:\n", ConnWatch::show(@start));

# ---- (b) stapled at once; the store, its parents, its file -----------------
my $r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good',
   'rsa.test: first handshake after the start stapled (good)') or diag(describe($r));
ok(-d $store && !-l $store, 'the missing store directory was created');
is(owner($store), $USER, "store directory owned by $USER (the module created it)");
is(mode($store), '0700', 'store directory mode 0700');
for my $d ($var, "$var/cache") {
    is(join(' ', owner($d), mode($d)), 'root 0755',
       "missing parent $d created by root, mode 0755");
}
my $file = "$store/" . $pki->cert_id('rsa') . '.der';
ok(wait_until(10, sub { -f $file }), "rsa.test's store file <cert id>.der written")
    or diag(join ' ', glob "$store/*");
is(owner($file), $USER, "store file owned by $USER");
is(mode($file), '0600', 'store file mode 0600');
my @tmp = glob "$store/*.der.*";
ok(!@tmp, 'no temporary *.der.* file left') or diag("@tmp");

# ---- (d) graceful restart as root -----------------------------------------
my $t_graceful = time;
my $g = $h->graceful(timeout => 40);
ok($g, 'graceful restart under root works') or BAIL_OUT('no server');
ok($g && $g < $TIMEOUT, sprintf('graceful restart does not wait on the hanging responder '
   . '(%.1f s < its %d s timeout)', $g || -1, $TIMEOUT));
$r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good',
   'rsa.test still stapled after the graceful restart') or diag(describe($r));
@root = grep { rootish($_) } $watch->samples(since => $t_graceful);
ok(!@root, 'graceful restart: no connection to a responder held by root')
    or diag("held by root:\n", ConnWatch::show(@root));
$watch->stop;
$h->stop;

# ---- (c) a store directory root owns is not taken over ---------------------
my $rstore = "$w/root-owned-store";
mkdir $rstore or die "$rstore: $!";
chmod 0755, $rstore or die "$rstore: $!";
my $h2 = OCSPServer::Httpd->new(dir => $w, name => 'httpd2', pki => $pki,
    user => $USER, store => $rstore, vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h2->start(timeout => 40), 'starts with a store directory owned by root, 0755')
    or BAIL_OUT('no server');
$r = handshake($h2->port, 'rsa.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good',
   'rsa.test stapled from the responder all the same') or diag(describe($r));
is(join(' ', owner($rstore), mode($rstore)), 'root 0755',
   'the root-owned store directory was not chowned (still root, 0755)');
my $warn = $h2->wait_for_log(
    qr/\[ocspstaple:(?:warn|error)\].*OCSPSTAPLE\d{4}: .*OCSPStaplingStore/, 10);
ok($warn, 'the module warns that it cannot use (write) the OCSPStaplingStore')
    or diag($h2->log_lines(qr/ocspstaple:(?:warn|error|crit)/));
my @rootfiles = grep { (lstat $_)[4] == 0 } glob "$rstore/* $rstore/.*[!.]*";
ok(!@rootfiles, 'no file written into it as root') or diag("@rootfiles");
$h2->stop;
