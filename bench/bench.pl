#!/usr/bin/perl
# bench/bench.pl: mod_ocspstaple side by side with the peers an Apache admin
# would pick instead: mod_ssl's SSLUseStapling, mod_md's MDStapling (with
# MDStapleOthers), nginx's ssl_stapling, and no stapling at all, on the same
# certificates and the same loopback responder (`make bench` runs it).
#
#   bench/bench.pl [--quick] [--sequential] [--only cpu,sick,load,cold,scale,reload]
#
# Everything runs on 127.0.0.1 in bench/out/ (wiped first): a throw-away PKI
# (scripts/mkpki.sh plus the leaves made here), loopback OCSP responders
# (scripts/ocsp_responder.pl), private Apache servers pinned to core 0 and
# the handshake client bench/hsclient pinned to core 1. What is measured:
#
#   cpu    server CPU time per full handshake, ratio to no stapling (nginx:
#          to nginx without stapling), for a
#          CA-signed staple without certificates and a delegated signer's
#          staple with its certificate, RSA-2048 and ECDSA P-256 leaves;
#          connections interleaved ABCABC... within every round (or, with
#          --sequential, rounds ABC CBA ...), median of the paired ratios
#   sick   handshake latency while renewals are due and the responder takes
#          5 s, some clients not asking for a staple; healthy vs sick
#   load   responder requests per certificate and renewal with 1, 4 and 16
#          prefork children (nginx: worker processes)
#   cold   share of the first 100 handshakes after `apache2 -k start` that
#          carry a staple
#   scale  1,000 and 10,000 certificates in as many SNI virtual hosts,
#          against bench/fastocsp (pre-signed responses from memory): cold
#          and warm start, time until all are stapled, memory per
#          certificate, CPU per handshake vs one certificate, responder
#          connections per 1,000 fetches; a wildcard certificate in 1,000
#          and 10,000 virtual hosts (start and memory must grow linearly)
#   reload the same 1000 virtual hosts, all stapled, handshakes going on: one
#          graceful restart (SIGUSR1); handshake p99.9 and max across it,
#          handshakes/s, for every peer and no stapling (nginx: a reload,
#          SIGHUP)
#
# A full run should take less than 20 minutes on 2 cores, --quick less than
# 5 (each scenario's time is printed and written down); far longer on a
# machine busy with other work. It prints a table (figure, one column per
# peer, target, met?) and writes it with the details, the machine, the
# versions and the git commit to bench/RESULTS.md; --quick and --only runs,
# and runs from a tree with uncommitted changes, write bench/out/RESULTS.md,
# never the published one.
use strict;
use warnings;

# The scenarios are in bench/lib/Scenario/ (one module each, whose run()
# returns its sections of RESULTS.md), what they share in
# bench/lib/BenchRun.pm (the run-wide state set below, the peers, the
# helpers), the summary table and RESULTS.md in bench/lib/BenchReport.pm,
# servers, responders and the client in bench/lib/BenchKit.pm.
use FindBin;
use lib "$FindBin::Bin/lib";
use BenchKit;
use BenchReport;
use BenchRun;
use File::Path qw(make_path remove_tree);
use Getopt::Long qw(GetOptions);
use POSIX qw(strftime);
use Scenario::Cold;
use Scenario::Cpu;
use Scenario::Load;
use Scenario::Reload;
use Scenario::Scale;
use Scenario::Sick;
use Time::HiRes qw(time sleep);

my $ROOT = $BenchKit::ROOT;
$OUT = "$ROOT/bench/out";
my @ALL = qw(cpu sick load cold scale reload);      # in the order they run
my %SCENARIO = (cpu => \&Scenario::Cpu::run, sick => \&Scenario::Sick::run,
                load => \&Scenario::Load::run, cold => \&Scenario::Cold::run,
                scale => \&Scenario::Scale::run, reload => \&Scenario::Reload::run);

%OPT = (quick => 0, sequential => 0, only => join(',', @ALL));
GetOptions('quick' => \$OPT{quick}, 'only=s' => \$OPT{only},
           'sequential' => \$OPT{sequential})
    or die "usage: $0 [--quick] [--sequential] [--only " . join(',', @ALL) . "]\n";
my %WANT = map { $_ => 1 } split /,/, $OPT{only};
for my $w (keys %WANT) {
    die "bench: unknown scenario '$w' (known: @ALL)\n" unless grep { $_ eq $w } @ALL;
}
my $FULL = !$OPT{quick} && keys(%WANT) == @ALL;

# Sizes of the run. --quick is for working on the bench itself: the same
# steps, too short to mean anything.
# Budget of a full run (2 cores, quiet), as measured: cpu 20 passes x 4
# rounds of 1.5 s over 6 servers (~2.3 min), sick 3 windows x 4 peers of
# 11 s (~2.6 min), load one 30 s window for all peers at once (~0.7 min),
# cold 3 starts x 4 peers (~0.2 min), scale: 6 servers of 1,000 and of
# 10,000 vhosts, 12 CPU rounds of 2 s each, the wildcard (~10-12 min: a
# 10,000-vhost Apache took 29 s to load here, and 49 s an hour later),
# reload 6 servers of scale_certs vhosts (~1.3 min).
%P = $OPT{quick} ? (
    cpu_secs => 0.5, cpu_passes => 2, sick_secs => 6, sick_windows => 1, load_secs => 20,
    cold_reps => 1, scale_certs => 100, scale_sizes => [100], scale_passes => 2, scale_secs => 0.5,
    reload_pre => 2, reload_post => 2,
) : (
    cpu_secs => 1.5, cpu_passes => 20, sick_secs => 11, sick_windows => 3, load_secs => 30,
    cold_reps => 3, scale_certs => 1000, scale_sizes => [1000, 10000], scale_passes => 12,
    scale_secs => 2,
    reload_pre => 3, reload_post => 3,
);
my $DEADLINE = 30 * 60;        # a stuck run ends, and stops what it started

$| = 1;
$SIG{INT}  = sub { print STDERR "bench: interrupted\n"; exit 130 };
$SIG{TERM} = sub { print STDERR "bench: terminated\n";  exit 143 };
$SIG{ALRM} = sub { print STDERR "bench: deadline of $DEADLINE s passed\n"; exit 124 };
alarm $DEADLINE;

-x $BenchKit::HSCLIENT or die "bench: $BenchKit::HSCLIENT missing (make bench builds it)\n";
-f $BenchKit::MODULE   or die "bench: $BenchKit::MODULE missing (make bench builds it)\n";

$T0 = time;
my %machine = BenchReport::machine();
# Uncommitted changes when the run starts (what runs is what was on disk).
my $dirty = dirty_tree();
remove_tree($OUT);
make_path($OUT);
note("mod_ocspstaple bench: $machine{cpu}, $machine{nproc} cores; results in bench/out/");
$PORT0 = BenchKit::free_port();
# BENCH_SCALE=N,N...: other sizes for the scale scenario (e.g. 1000 only).
$P{scale_sizes} = [ split /,/, $ENV{BENCH_SCALE} ] if $ENV{BENCH_SCALE};
my $LEAVES = $WANT{scale} ? (sort { $b <=> $a } @{ $P{scale_sizes} }, $P{scale_certs})[0]
           : $WANT{reload} ? $P{scale_certs} : 0;
$PKI = make_pki($PORT0, $LEAVES);
# Leaves whose AIA URL names a responder of their own (sick: the healthy
# and the sick one; load: one per peer and process count), so that every
# peer, mod_md included (it has no setting to override the URL), asks the
# responder meant for it with its default settings.
%AIA = aia_leaves(($WANT{sick} ? qw(sick-a sick-b) : ()),
              ($WANT{load} ? map { my $c = $_; map { "load-$c-$_" } 1, 4, 16 } @PEERS : ()));

my (@sections, @durations);
for my $name (@ALL) {
    next unless $WANT{$name};
    my $t = time;
    push @sections, $SCENARIO{$name}->();
    push @durations, [ $name, time - $t ];
    note(sprintf('%s: done in %.0f s', $name, time - $t));
}

my $duration = time - $T0;
my $table = BenchReport::summary_table(map { @{ $_->{rows} } } @sections);
print "\n$table\n";
note('scenario durations: ' . join(', ', map { sprintf('%s %.0f s', @$_) } @durations));
my $file = $FULL && !@$dirty ? "$ROOT/bench/RESULTS.md" : "$OUT/RESULTS.md";
BenchKit::spit($file, BenchReport::results_md(table => $table, duration => $duration,
    durations => \@durations, dirty => $dirty, machine => \%machine, full => $FULL,
    sections => \@sections));
note('the tree has uncommitted changes (' . join(', ', @$dirty[0 .. ($#$dirty > 4 ? 4 : $#$dirty)])
     . (@$dirty > 5 ? ', ...' : '') . '): not writing bench/RESULTS.md') if $FULL && @$dirty;
note(sprintf('done in %.0f s; written to %s', $duration, $file =~ s{^\Q$ROOT\E/}{}r));
exit 0;

# ============================================================================
# PKI: scripts/mkpki.sh (root, intermediate, rsa, ecdsa, delegated, ...) plus
# the leaves only the bench needs, all listed as valid in the responder's
# index.txt: "ecdel" (ECDSA, delegated responder) and m1..mN (ECDSA, CA-signed
# responses) for the scale scenario.

sub make_pki {
    my ($port, $n) = @_;
    my $dir = "$OUT/pki";
    BenchKit::run_logged("$OUT/mkpki.out", 'timeout', 120, "$ROOT/scripts/mkpki.sh",
                         $dir, $port) == 0
        or die "bench: mkpki.sh failed:\n" . BenchKit::slurp("$OUT/mkpki.out");
    my $t = time;
    # "wild" (*.w.bench): the scale scenario's certificate shared by all
    # the vhosts of a server.
    my @leaves = ([ 'ecdel', 'delegated.test', 'delegated', 0x4FFFFF ],
                  [ 'wild', '*.w.bench', 'good', 0x4FFFFE ],
                  map { [ "m$_", "m$_.bench", 'good', 0x500000 + $_ ] } 1 .. $n);
    make_leaves($dir, $port, @leaves);
    note(sprintf('PKI: mkpki.sh and %d more ECDSA leaves (%.1f s)', scalar @leaves, time - $t));
    return $dir;
}

# make_leaves(DIR, PORT, [NAME, DNS, MODE, SERIAL]...): bench/mkleaves signs
# them all in one go, one ECDSA P-256 key shared by every leaf (10,000
# leaves in seconds; a process and a key per leaf took minutes), as many
# workers as there are cores.
sub make_leaves {
    my ($dir, $port, @leaves) = @_;
    my $list = join '', map { sprintf "%s %s %s %X\n", @$_ } @leaves;
    BenchKit::spit("$OUT/leaves.list", $list);
    local $ENV{LIST} = "$OUT/leaves.list";
    BenchKit::run_logged("$OUT/leaves.out", 'sh', '-c', 'exec "$0" "$@" < "$LIST"',
        $BenchKit::MKLEAVES, '-c', "$dir/intermediate.crt", '-k', "$dir/intermediate.key",
        '-K', "$dir/bench-leaf.key", '-u', "http://127.0.0.1:$port/", '-o', $dir,
        '-d', 30, '-j', $machine{nproc}) == 0
        or die "bench: making leaves failed: " . BenchKit::slurp("$OUT/leaves.out");
    index_leaves($dir, @leaves);
}

# Each leaf valid in index.txt (openssl ocsp and bench/fastocsp look the
# status up by serial).
sub index_leaves {
    my ($dir, @leaves) = @_;
    my $expiry = strftime('%y%m%d%H%M%SZ', gmtime(time + 30 * 86400));
    open my $idx, '>>', "$dir/index.txt" or die "bench: index.txt: $!\n";
    for my $l (@leaves) {
        my ($name, $dns, undef, $serial) = @$l;
        printf $idx "V\t%s\t\t%X\tunknown\t/CN=%s\n", $expiry, $serial, $dns;
    }
    close $idx or die "bench: index.txt: $!\n";
}

# aia_leaves(NAME...): an ECDSA leaf NAME (DNS NAME.test, CA-signed
# responses) per name, each with an AIA URL of its own port (the kernel's
# choice, free now; its responder is started there when needed); returns
# NAME => PORT.
sub aia_leaves {
    my (@names) = @_;
    my %port;
    my $serial = 0x400000;
    for my $name (@names) {
        $port{$name} = BenchKit::free_port();
        make_leaves($PKI, $port{$name}, [ $name, "$name.test", 'good', $serial++ ]);
    }
    return %port;
}

# Files with uncommitted changes (git status --porcelain), bench/out and
# bench/RESULTS.md left out: a published table must come from a commit.
sub dirty_tree {
    my @lines = grep { length } split /\n/,
        `git -C '$ROOT' status --porcelain -- . ':!bench/out' ':!bench/RESULTS.md' 2>/dev/null`;
    return [ map { substr($_, 3) } @lines ];
}
