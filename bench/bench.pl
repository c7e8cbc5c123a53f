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

use FindBin;
use lib "$FindBin::Bin/lib";
use BenchKit;
use File::Path qw(make_path remove_tree);
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Time::Local qw(timelocal);

my $ROOT = $BenchKit::ROOT;
my $OUT  = "$ROOT/bench/out";
my @ALL  = qw(cpu sick load cold scale reload);

my %opt = (quick => 0, sequential => 0, only => join(',', @ALL));
GetOptions('quick' => \$opt{quick}, 'only=s' => \$opt{only},
           'sequential' => \$opt{sequential})
    or die "usage: $0 [--quick] [--sequential] [--only " . join(',', @ALL) . "]\n";
my %WANT = map { $_ => 1 } split /,/, $opt{only};
for my $w (keys %WANT) {
    die "bench: unknown scenario '$w' (known: @ALL)\n" unless grep { $_ eq $w } @ALL;
}
my $FULL = !$opt{quick} && keys(%WANT) == @ALL;

# Sizes of the run. --quick is for working on the bench itself: the same
# steps, too short to mean anything.
# Budget of a full run (2 cores, quiet): cpu 24 passes x 4 rounds of 1.5 s
# over 6 servers (~3.5 min), sick 4 windows x 4 peers of 11 s (~4 min), load
# one 30 s window for all peers at once (~1 min), cold 3 starts x 4 peers
# (~0.5 min), reload 6 servers of scale_certs vhosts (~3 min), leaving the
# rest of 20 minutes to the PKI and scale.
my %P = $opt{quick} ? (
    cpu_secs => 0.5, cpu_passes => 2, sick_secs => 6, sick_windows => 1, load_secs => 20,
    cold_reps => 1, scale_certs => 100, scale_sizes => [100], scale_passes => 2, scale_secs => 0.5,
    reload_pre => 2, reload_post => 2,
) : (
    cpu_secs => 1.5, cpu_passes => 24, sick_secs => 11, sick_windows => 4, load_secs => 30,
    cold_reps => 3, scale_certs => 1000, scale_sizes => [1000, 10000], scale_passes => 12,
    scale_secs => 1.5,
    reload_pre => 3, reload_post => 3,
);
my $THREADS = 8;               # client connections at once in CPU rounds
my $SICK_DELAY = 5;            # seconds the sick responder takes to answer
my $SICK_RATE = 400;           # handshakes per second in the latency windows
# The stapling configurations compared (the peers), in the order of the
# tables' columns, and the baselines: no stapling on Apache (mod_ssl alone)
# and on nginx (ssl_stapling off), each peer's CPU ratio taken to its own.
my @PEERS = qw(ocspstaple modssl md nginx);
my @CFGS = ('none', @PEERS);
my %CFG_NAME = (none => 'no stapling', modssl => 'mod_ssl SSLUseStapling',
                md => 'mod_md MDStapling', nginx => 'nginx ssl_stapling',
                'nginx-none' => 'nginx, no stapling', ocspstaple => 'mod_ocspstaple');
my %BASELINE = (nginx => 'nginx-none', 'nginx-none' => 'nginx-none');
sub baseline_of { $BASELINE{ $_[0] } // 'none' }
# The servers of each scenario (see there).
my @CPU_CFGS = ('none', 'nginx-none', @PEERS);
my @RELOAD_CFGS = ('none', 'nginx-none', @PEERS);
my @SUMMARY_COLS = (@PEERS, 'none');
# What makes a renewal due within the sick scenario's windows (5 s after a
# fetch of a 60 s response) and the load scenario's (every 5-10 s), for the
# peers that have a setting for it; mod_ssl gets its cache timeout instead
# (ssl_cache_timeout => 5), nginx has none.
my %SICK_SETTING = (ocspstaple => 'OCSPStaplingRenewWindow 55s',
                    md => 'MDStaplingRenewWindow 55s');
my %LOAD_SETTING = (ocspstaple => 'OCSPStaplingRenewWindow 50s',
                    md => 'MDStaplingRenewWindow 50s');
my $DEADLINE = 30 * 60;        # a stuck run ends, and stops what it started
my $DISTURBED = 0.2;           # a CPU round with more of core 0 going elsewhere is left out
my $RELOAD_RATE = 300;         # handshakes per second across a graceful restart
my $RELOAD_THREADS = 16;       # over this many connections at once
my $RELOAD_NAMES = 8;          # to the vhosts m1..m8.bench

$| = 1;
$SIG{INT}  = sub { print STDERR "bench: interrupted\n"; exit 130 };
$SIG{TERM} = sub { print STDERR "bench: terminated\n";  exit 143 };
$SIG{ALRM} = sub { print STDERR "bench: deadline of $DEADLINE s passed\n"; exit 124 };
alarm $DEADLINE;

-x $BenchKit::HSCLIENT or die "bench: $BenchKit::HSCLIENT missing (make bench builds it)\n";
-f $BenchKit::MODULE   or die "bench: $BenchKit::MODULE missing (make bench builds it)\n";

my $T0 = time;
my %machine = machine();
# Uncommitted changes when the run starts (what runs is what was on disk).
my $dirty = dirty_tree();
remove_tree($OUT);
make_path($OUT);
note("mod_ocspstaple bench: $machine{cpu}, $machine{nproc} cores; results in bench/out/");
my $PORT0 = BenchKit::free_port();
# BENCH_SCALE=N,N...: other sizes for the scale scenario (e.g. 1000 only).
$P{scale_sizes} = [ split /,/, $ENV{BENCH_SCALE} ] if $ENV{BENCH_SCALE};
my $LEAVES = $WANT{scale} ? (sort { $b <=> $a } @{ $P{scale_sizes} }, $P{scale_certs})[0]
           : $WANT{reload} ? $P{scale_certs} : 0;
my $PKI = make_pki($PORT0, $LEAVES);
# Leaves whose AIA URL names a responder of their own (sick: the healthy
# and the sick one; load: one per peer and process count), so that every
# peer, mod_md included (it has no setting to override the URL), asks the
# responder meant for it with its default settings.
my %AIA = aia_leaves(($WANT{sick} ? qw(sick-a sick-b) : ()),
                     ($WANT{load} ? map { my $c = $_; map { "load-$c-$_" } 1, 4, 16 } @PEERS : ()));

my (@sections, @durations);
for my $s ([ cpu => \&scenario_cpu ], [ sick => \&scenario_sick ], [ load => \&scenario_load ],
           [ cold => \&scenario_cold ], [ scale => sub { (scenario_scale(), scenario_wildcard()) } ],
           [ reload => \&scenario_reload ]) {
    my ($name, $code) = @$s;
    next unless $WANT{$name};
    my $t = time;
    push @sections, $code->();
    push @durations, [ $name, time - $t ];
    note(sprintf('%s: done in %.0f s', $name, time - $t));
}

my $duration = time - $T0;
my $table = summary_table(map { @{ $_->{rows} } } @sections);
print "\n$table\n";
note('scenario durations: ' . join(', ', map { sprintf('%s %.0f s', @$_) } @durations));
my $file = $FULL && !@$dirty ? "$ROOT/bench/RESULTS.md" : "$OUT/RESULTS.md";
BenchKit::spit($file, results_md($table, $duration, \@durations, $dirty, @sections));
note('the tree has uncommitted changes (' . join(', ', @$dirty[0 .. ($#$dirty > 4 ? 4 : $#$dirty)])
     . (@$dirty > 5 ? ', ...' : '') . '): not writing bench/RESULTS.md') if $FULL && @$dirty;
note(sprintf('done in %.0f s; written to %s', $duration, $file =~ s{^\Q$ROOT\E/}{}r));
exit 0;

# ============================================================================
# helpers

sub note { printf "[%4.0f s] %s\n", time - $T0, join('', @_) }

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub min_max {
    my @v = sort { $a <=> $b } @_;
    return ($v[0], $v[-1]);
}

# Nearest-rank percentile of a list (not necessarily sorted).
sub pct {
    my ($p, @v) = @_;
    return 0 unless @v;
    @v = sort { $a <=> $b } @v;
    my $rank = int($p * @v + 0.999999);
    $rank = 1 if $rank < 1;
    return $v[($rank > @v ? scalar @v : $rank) - 1];
}

sub ms { sprintf($_[0] >= 100 ? '%.0f' : $_[0] >= 10 ? '%.1f' : '%.2f', $_[0]) }

sub first_line {
    my (@cmd) = @_;
    open my $fh, '-|', @cmd or return '?';
    my $l = <$fh> // '?';
    close $fh;
    chomp $l;
    return $l;
}

sub machine {
    my $cpuinfo = BenchKit::slurp('/proc/cpuinfo');
    my ($model) = $cpuinfo =~ /^model name\s*:\s*(.+)$/m;
    my $nproc = () = $cpuinfo =~ /^processor\s*:/mg;
    my ($mem) = BenchKit::slurp('/proc/meminfo') =~ /^MemTotal:\s+(\d+)/m;
    my $git = first_line('git', '-C', $ROOT, 'describe', '--always', '--dirty', '--abbrev=12');
    return (cpu => $model // '?', nproc => $nproc,
            mem => sprintf('%.1f GiB', ($mem // 0) / 1048576),
            kernel => first_line('uname', '-sr'),
            apache => first_line($BenchKit::HTTPD, '-v') =~ s/^Server version:\s*//r,
            openssl => first_line('openssl', 'version'),
            commit => $git,
            load0 => (split ' ', BenchKit::slurp('/proc/loadavg'))[0],
            date => strftime('%Y-%m-%d %H:%M:%S UTC', gmtime));
}

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

# Whether a figure meets an upper LIMIT, given the values of its paired
# rounds (or windows): "yes" only when all of them do, "no" when none does;
# when the spread (min-max) crosses the limit the answer is noise, whatever
# the median says.
sub met_max {
    my ($limit, @v) = @_;
    return 'no (no data)' unless @v;
    my ($lo, $hi) = min_max(@v);
    return 'yes' if $hi <= $limit;
    return 'no' if $lo > $limit;
    return 'within noise (median ' . (median(@v) <= $limit ? 'meets' : 'misses') . ' it)';
}

# A BenchKit server (Apache or nginx) of configuration CFG in bench/out.
sub server {
    my ($cfg, $label, %a) = @_;
    return BenchKit::server(dir => $OUT, label => $label, flavour => $cfg, pki => $PKI, %a);
}

# Handshakes to NAMES until every one of a sweep is stapled (bounded):
# mod_md's watchdog fetches in the background after the start, nginx in the
# background after a worker's first handshake of a certificate (each worker
# for itself), mod_ssl in the first handshake. Returns whether it happened.
sub warm_until_stapled {
    my ($h, %o) = @_;
    my $names = $o{names} // 1;
    my $sni = $o{sni} // ($names > 1 ? 'm%d.bench' : 'ecdsa.test');
    return BenchKit::wait_until($o{timeout} // 30, sub {
        my $c = BenchKit::client(port => $h->port, sni => $sni, names => $names > 1 ? $names : 0,
                                 key => $o{key} // 'ecdsa', count => 8 * $names,
                                 threads => 4)->{all};
        return $c->{handshakes} && $c->{stapled} == $c->{handshakes};
    }, 0.2) ? 1 : 0;
}
# ============================================================================
# 1. Server CPU per full handshake, ratio to no stapling.
#
# Six servers run side by side on core 0: no stapling (Apache with mod_ssl
# alone, and nginx with ssl_stapling off) and the peers (mod_ocspstaple,
# mod_ssl with a warm cache, mod_md, nginx), all with their defaults and the
# same certificates. A round is one client run of cpu_secs; its figure per
# server is the server's CPU time (all its processes, /proc) divided by the
# handshakes it served. Interleaving is as fine as it gets: in every round
# the client sends its connections to all the servers in turn (A B C ...,
# order reversed every other round), so they share every moment of the
# round, and whatever else the machine does meanwhile hits them alike. Each
# round gives one paired ratio per peer (to its own baseline in the same
# round: nginx's is nginx without stapling, the others' Apache without);
# the figure is their median. With --sequential a round serves one server
# only and rounds go ABC CBA ... (ABBA): fair against slow drifts only; on a
# busy machine the ratios then spread far wider.

sub scenario_cpu {
    note('cpu: server CPU per handshake, ' . scalar(@CPU_CFGS) . ' servers side by side');
    my $resp = BenchKit::Responder->new(dir => $OUT, name => 'responder-cpu',
                                        port => $PORT0, pki => $PKI);
    $resp->start;
    # One vhost per response shape, an RSA and an ECDSA certificate in each:
    # the client's signature algorithms pick one.
    my @vhosts = ([ 'rsa.test', 'rsa', 'ecdsa' ],
                  [ 'delegated.test', 'delegated', 'ecdel' ]);
    my %srv = map { $_ => server($_, "cpu-$_", vhosts => \@vhosts) } @CPU_CFGS;
    $_->start for values %srv;
    my @combos = map { my $s = $_; map { { shape => $s, key => $_ } } qw(rsa ecdsa) }
                 qw(good delegated);
    my @problems = cpu_warm(\%srv, @combos);
    my @rounds;
    for my $pass (1 .. $P{cpu_passes}) {
        my @order = $pass % 2 ? @CPU_CFGS : reverse @CPU_CFGS;
        for my $c (@combos) {
            push @rounds, $opt{sequential} ? map { cpu_round(\%srv, $c, $pass, $_) } @order
                                           : cpu_round(\%srv, $c, $pass, @order);
        }
        note("cpu: pass $pass of $P{cpu_passes}") if $pass % 4 == 0;
    }
    $_->stop for values %srv;
    $resp->stop;
    return cpu_results(\@rounds, \@combos, \@problems);
}

sub sni_of { $_[0]{shape} eq 'good' ? 'rsa.test' : 'delegated.test' }

# Brings every server to stapling (mod_ssl fetches in its first handshake,
# mod_md's watchdog after the start, each nginx worker after its first
# handshake) and checks that each server staples (or not) as it should;
# returns the problems found.
sub cpu_warm {
    my ($srv, @combos) = @_;
    my @problems;
    for my $c (@combos) {
        for my $cfg (@CPU_CFGS) {
            my $stapling = $cfg !~ /none$/;
            warm_until_stapled($srv->{$cfg}, sni => sni_of($c), key => $c->{key}, timeout => 20)
                if $stapling;
            my $r = BenchKit::client(port => $srv->{$cfg}->port, sni => sni_of($c),
                                     key => $c->{key}, count => 40, threads => 2)->{all};
            my $want = $stapling ? $r->{handshakes} : 0;
            push @problems, "$cfg $c->{shape}/$c->{key}: $r->{stapled} of "
                . "$r->{handshakes} stapled, $r->{errors} errors, $r->{keymismatch} wrong key"
                if $r->{stapled} != $want || $r->{errors} || $r->{keymismatch}
                   || $r->{badstaple} || $r->{handshakes} != 40;
            $c->{staple_bytes} = $r->{staple_bytes} if $r->{staple_bytes} && $cfg eq 'ocspstaple';
            $c->{"staple_bytes/$cfg"} = $r->{staple_bytes};
        }
    }
    return @problems;
}

# One round of the client against the servers of ORDER (connections to each
# in turn when there are several); returns one record per server.
sub cpu_round {
    my ($srv, $c, $pass, @order) = @_;
    my %before = map { $_ => $srv->{$_}->cpu } @order;
    my $core0 = BenchKit::core_time(0);
    my $r = BenchKit::client(port => join(',', map { $srv->{$_}->port } @order),
                             sni => sni_of($c), key => $c->{key},
                             secs => $P{cpu_secs}, threads => $THREADS);
    my %after = map { $_ => $srv->{$_}->cpu } @order;
    my $foreign = foreign_share($core0, map { $after{$_}{ns} - $before{$_}{ns} } @order);
    return map {
        my ($cfg, $b, $a) = ($_, $before{$_}, $after{$_});
        my $x = BenchKit::port_result($r, $srv->{$cfg}->port);
        my $n = $x->{handshakes} || 1;
        { pass => $pass, cfg => $cfg, combo => "$c->{shape}/$c->{key}",
          us => ($a->{ns} - $b->{ns}) / 1000 / $n,
          tick_us => ($a->{ticks} - $b->{ticks}) * 1e6 / 100 / $n,
          ticks => $a->{ticks} - $b->{ticks}, ns => $a->{ns} - $b->{ns},
          handshakes => $x->{handshakes}, stapled => $x->{stapled},
          errors => $x->{errors}, same_pids => $b->{pids} eq $a->{pids},
          foreign => $foreign }
    } @order;
}

# The share of core 0 that went to something else than our servers since
# BEFORE (other processes, the hypervisor), given our servers' CPU in ns.
sub foreign_share {
    my ($before, @ns) = @_;
    my $now = BenchKit::core_time(0);
    my $total = $now->{total} - $before->{total} or return 0;
    my $ours = 0;
    $ours += $_ / 1e9 for @ns;
    my $share = ($now->{busy} - $before->{busy} - $ours) / $total;
    return $share < 0 ? 0 : $share;
}

sub cpu_results {
    my ($rounds, $combos, $problems) = @_;
    my (@rows, @detail);
    BenchKit::spit("$OUT/cpu-rounds.tsv", join '', map { join("\t", @$_{
        qw(pass combo cfg handshakes stapled errors us tick_us foreign)}) . "\n" } @$rounds);
    push @$problems, 'a server process started or exited during a round'
        if grep { !$_->{same_pids} } @$rounds;
    push @$problems, 'handshakes failed during the rounds'
        if grep { $_->{errors} } @$rounds;
    push @detail, '| Shape, key | staple | ' . join(' | ', map { "$CFG_NAME{$_} µs/hs" } @CPU_CFGS)
        . ' | ' . join(' | ', map { "$CFG_NAME{$_} ratio" } @PEERS) . ' |',
        '|---|---|' . ('---|' x (@CPU_CFGS + @PEERS));
    my ($kept_all, $all) = (0, 0);
    for my $c (@$combos) {
        my $k = "$c->{shape}/$c->{key}";
        my %by = map { my $cfg = $_; $cfg => { map { $_->{pass} => $_ }
                     grep { $_->{combo} eq $k && $_->{cfg} eq $cfg } @$rounds } } @CPU_CFGS;
        my @passes = undisturbed([ sort { $a <=> $b } keys %{ $by{none} } ],
                                 sub { my ($p) = @_; map { $by{$_}{$p}{foreign} } @CPU_CFGS });
        $kept_all += @passes;
        $all += keys %{ $by{none} };
        my %ratio = map { my $cfg = $_; my $base = baseline_of($cfg);
                          $cfg => [ map { $by{$cfg}{$_}{us} / $by{$base}{$_}{us} } @passes ] } @PEERS;
        my %med = map { my $cfg = $_; $cfg => median(map { $by{$cfg}{$_}{us} } @passes) } @CPU_CFGS;
        my $label = ($c->{shape} eq 'good' ? 'CA-signed staple' : 'delegated signer + cert')
            . ', ' . ($c->{key} eq 'rsa' ? 'RSA-2048' : 'ECDSA P-256');
        push @rows, { figure => "Server CPU per handshake vs no stapling: $label"
                               . " (staple " . ($c->{staple_bytes} // '?') . ' B)',
                      cols => { (map { $_ => ratio_str($ratio{$_})
                                           . ($_ eq 'nginx' ? ' vs nginx without stapling' : '') }
                                     @PEERS),
                                none => sprintf('1 (%.0f µs/hs; nginx: %.0f µs/hs)',
                                                $med{none}, $med{'nginx-none'}) },
                      target => '≤ 1.03',
                      met => @$problems ? 'no (invalid run)' : met_max(1.03, @{ $ratio{ocspstaple} }) };
        push @detail, sprintf('| %s | %s B | %s | %s |', $label, $c->{staple_bytes} // '?',
            join(' | ', map { sprintf('%.0f', $med{$_} // 0) } @CPU_CFGS),
            join(' | ', map { ratio_str($ratio{$_}) } @PEERS));
    }
    push @detail, '', 'Staple sizes in bytes, as each peer sends them: '
        . join('; ', map { my $cfg = $_; "$CFG_NAME{$cfg} " . join(', ', map {
              "$_->{shape}/$_->{key} " . ($_->{"staple_bytes/$cfg"} // '?') } @$combos) } @PEERS) . '.';
    push @detail, '', disturbed_note($kept_all, $all, map { $_->{foreign} }
                                     grep { $_->{cfg} eq 'none' } @$rounds),
        '', cpu_crosscheck($rounds), cpu_method();
    push @detail, '', '**Problems:** ' . join('; ', @$problems) if @$problems;
    return { title => 'Server CPU per full handshake', rows => \@rows,
             detail => join("\n", @detail) };
}

# The passes whose rounds had core 0 to themselves, or nearly: those where
# other processes or the hypervisor took more than $DISTURBED of it are left
# out (the client's and the servers' own work is not counted against them).
# When more than half would go, all are kept: the machine was busy
# throughout and the spread will show it.
sub undisturbed {
    my ($passes, $foreign_of) = @_;
    my @kept = grep { my $p = $_; !grep { $_ > $DISTURBED } $foreign_of->($p) } @$passes;
    return @kept * 2 >= @$passes ? @kept : @$passes;
}

sub disturbed_note {
    my ($kept, $all, @foreign) = @_;
    return sprintf('Rounds in which something else (other processes, the hypervisor) took '
        . 'more than %d %% of core 0 are not counted, unless that would leave out more '
        . 'than half of those of a figure: %d of %d left out%s.', 100 * $DISTURBED,
        $all - $kept, $all, @foreign ? sprintf('; other work took a median %.0f %% of '
        . 'core 0 during the rounds', 100 * median(@foreign)) : '');
}

sub ratio_str {
    my ($r) = @_;
    return 'n/a' unless $r && @$r;
    my ($lo, $hi) = min_max(@$r);
    return sprintf('%.3f (%.3f–%.3f)', median(@$r), $lo, $hi);
}

sub yn { $_[0] ? 'yes' : 'no' }

# The precise figure (scheduler nanoseconds per thread) against the coarse
# one (utime+stime in 10 ms ticks per process): totals over all rounds must
# agree, or some thread's time went missing.
sub cpu_crosscheck {
    my ($rounds) = @_;
    my ($ns, $ticks) = (0, 0);
    $ns += $_->{ns} for @$rounds;
    $ticks += $_->{ticks} for @$rounds;
    my $tick_ns = $ticks * 1e7;
    return sprintf('Cross-check: CPU time of all rounds %.2f s from the scheduler '
        . '(/proc/PID/task/TID/schedstat), %.2f s from utime+stime (/proc/PID/stat): '
        . '%+.1f %%.', $ns / 1e9, $tick_ns / 1e9, $ns ? 100 * ($tick_ns - $ns) / $ns : 0);
}


sub cpu_method {
    my $n = @CPU_CFGS;
    my $how = $opt{sequential}
        ? "every shape and key type gets one round of $P{cpu_secs} s per server, "
          . 'in one order, then the reverse in the next pass'
        : "every shape and key type gets one round of $P{cpu_secs} s in which the "
          . "client sends its connections to the $n servers in turn (in one order, then "
          . 'the reverse in the next pass)';
    return "\nMethod: $P{cpu_passes} passes; in each, $how; ratio = µs/handshake of the "
        . 'peer / µs/handshake of its baseline in the same pass (nginx: nginx without '
        . 'stapling; the Apache peers: Apache with mod_ssl and no stapling); shown: median '
        . '(min–max) over the passes; "Met?" says yes only when the largest ratio meets the '
        . 'target, "within noise" when the spread crosses it. µs/handshake columns: medians. '
        . 'Every peer with its default settings, all warmed first (each of them stapling '
        . 'every handshake before the rounds). Server CPU: all threads of all processes of '
        . 'the server, from /proc; the Apache servers run 2 event processes, nginx 2 '
        . "workers. Client: $THREADS connections, TLS 1.3, one full handshake per connection, "
        . 'status_request sent. Raw rounds: bench/out/cpu-rounds.tsv.';
}
# ============================================================================
# 2. Latency while a renewal is due and the responder is sick (5 s per answer).
#
# Responses live 60 s (--nmin 1). With their defaults no peer would renew
# one within a window of seconds (mod_ocspstaple halfway, mod_md with 33 %
# left, mod_ssl when its cache entry ages out after an hour, nginx 5 minutes
# before nextUpdate and never sooner than 5 minutes after a fetch), so each
# peer that has a setting for it gets the one that makes a renewal due 5 s
# after a fetch, and nothing else changed: mod_ocspstaple
# `OCSPStaplingRenewWindow 55s`, mod_md `MDStaplingRenewWindow 55s`, mod_ssl
# `SSLStaplingStandardCacheTimeout 5` (it drops its cached response and
# fetches again in a handshake). nginx has no such setting: it is started
# cold instead, so that its fetches (each worker's, on its first handshake)
# are due when the window begins.
#
# Healthy and sick are measured side by side, like the CPU figures: each
# window starts two fresh servers of one peer, each with a responder of its
# own (the leaves sick-a and sick-b name one each in their AIA URL; the
# roles swap every window); both responders are healthy while the servers
# start and warm up, then one of them turns sick. The client sends its
# connections to the two servers in turn, 400 handshakes/s over 16
# connections, 4 of which never ask for a staple. Every peer gets
# sick_windows windows, the peers taking turns; percentiles are over the
# pooled handshakes of a peer's windows.

sub scenario_sick {
    note("sick: latency with a responder taking $SICK_DELAY s, renewals due, "
         . "$P{sick_windows} window(s) per peer");
    my %runs;
    for my $i (1 .. $P{sick_windows}) {
        my @order = $i % 2 ? @PEERS : reverse @PEERS;
        push @{ $runs{$_} }, sick_window($_, $i) for @order;
    }
    return sick_results(\%runs);
}

# One window: returns { healthy => {...}, sick => {...} } with the latencies
# of each server's handshakes and what the client and responders saw.
sub sick_window {
    my ($cfg, $i) = @_;
    my @conds = $i % 2 ? qw(healthy sick) : qw(sick healthy);    # port order
    my %leaf = $i % 2 ? (healthy => 'sick-a', sick => 'sick-b')
                      : (healthy => 'sick-b', sick => 'sick-a');
    my (%resp, %srv);
    for my $cond (@conds) {
        my $label = "sick-$cfg-$i-$cond";
        $resp{$cond} = BenchKit::Responder->new(dir => $OUT, name => "responder-$label",
                           port => $AIA{ $leaf{$cond} }, pki => $PKI);
        $resp{$cond}->start(nmin => 1);
        $srv{$cond} = server($cfg, $label, vhosts => [ [ 'sick.test', $leaf{$cond} ] ],
                             ssl_cache_timeout => 5,
                             extra => [ grep { defined } $SICK_SETTING{$cfg} ]);
        $srv{$cond}->start;
    }
    my $ports = join ',', map { $srv{$_}->port } @conds;
    # Stapling before the responder turns sick (nginx: left cold, above).
    my %warm = map { $_ => $cfg eq 'nginx' ? 1 : warm_until_stapled($srv{$_}, sni => 'sick.test',
                                                                    timeout => 15) } @conds;
    $resp{sick}->start(nmin => 1, delay => $SICK_DELAY);
    my $raw = "$OUT/sick-$cfg-$i.latencies";
    my $t0 = time;
    my $c = BenchKit::client(port => $ports, sni => 'sick.test', key => 'ecdsa',
                             secs => $P{sick_secs}, threads => 16, rate => $SICK_RATE,
                             nostatus_pct => 25, raw => $raw);
    my $t1 = time;
    # A renewal still waiting for the sick responder is let finish: its
    # "update ok" line tells when it was in flight (see in_flight).
    BenchKit::wait_until($SICK_DELAY + 2, sub {
        grep { log_time($_) > $t0 + $SICK_DELAY } $srv{sick}->log_lines(qr/OCSPSTAPLE0002: /) })
        if $cfg eq 'ocspstaple';
    $_->stop for values %srv;
    $_->stop for values %resp;
    # "STATUS LATENCY_US START_US PORT_INDEX" per handshake.
    my @lat = map { [ split ' ' ] } split /\n/, BenchKit::slurp($raw);
    my %w;
    for my $ix (0 .. $#conds) {
        my $cond = $conds[$ix];
        my @mine = grep { $_->[3] == $ix } @lat;
        my $p = BenchKit::port_result($c, $srv{$cond}->port);
        $w{$cond} = { lat => \@mine, handshakes => $p->{handshakes}, stapled => $p->{stapled},
                      errors => $p->{errors}, asked => scalar(grep { $_->[0] } @mine),
                      warm => $warm{$cond},
                      requests => scalar $resp{$cond}->times(int($t0) + 1, int($t1) + 1),
                      inflight => $cond eq 'sick' && $cfg eq 'ocspstaple'
                                  ? in_flight($srv{sick}, $t0, \@mine) : [] };
    }
    note(sprintf('sick: %-10s window %d: p99.9 healthy %s ms, sick %s ms; stapled %d of %d '
                 . 'asking (sick)', $cfg, $i, (map { ms(pooled([ $w{$_} ])->{p999}) }
                 qw(healthy sick)), $w{sick}{stapled} // 0, $w{sick}{asked}));
    return \%w;
}
# Latencies (ms) of the handshakes that started while a renewal was waiting
# for the sick responder: the $SICK_DELAY s before each "update ok" line
# (OCSPSTAPLE0002, time to the microsecond) after the window began at T0.
sub in_flight {
    my ($h, $t0, $lat) = @_;
    my @done = grep { $_ > $t0 + $SICK_DELAY } map { log_time($_) }
               $h->log_lines(qr/OCSPSTAPLE0002: /);
    return [ map { $_->[1] / 1000 } grep { my $at = $t0 + $_->[2] / 1e6;
                 grep { $at >= $_ - $SICK_DELAY && $at < $_ } @done } @$lat ];
}

# "[Sat Nov 21 00:58:55.312292 2026] ..." (httpd's local time) -> epoch.
sub log_time {
    my ($line) = @_;
    my %MON = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
               Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);
    my ($mon, $d, $h, $m, $sec, $frac, $y) =
        $line =~ /^\[\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d)\.(\d+) (\d{4})\]/ or return 0;
    return timelocal($sec, $m, $h, $d, $MON{$mon}, $y) + "0.$frac";
}

sub pct_set {
    my (@v) = @_;
    return { n => scalar @v, map { $_->[0] => pct($_->[1], @v) }
             [p50 => 0.5], [p99 => 0.99], [p999 => 0.999], [max => 1] };
}

# Percentiles (ms) of the pooled handshakes of the window records W; CLASS
# 1: those that asked for a staple, 0: those that did not, undef: all.
sub pooled {
    my ($w, $class) = @_;
    return pct_set(map { $_->[1] / 1000 } grep { !defined $class || $_->[0] == $class }
                   map { @{ $_->{lat} } } @$w);
}

sub sick_results {
    my ($runs) = @_;
    my (%s, %quiet, %wratio);
    for my $cfg (@PEERS) {
        for my $cond (qw(healthy sick)) {
            my @w = map { $_->{$cond} } @{ $runs->{$cfg} };
            my $k = "$cfg/$cond";
            $s{$k} = pooled(\@w);
            $quiet{$k} = pooled(\@w, 0);
            for my $f (qw(errors requests asked stapled)) {
                $s{$k}{$f} += $_->{$f} // 0 for @w;
            }
            $s{$k}{windows} = @w;
            $s{$k}{unwarm} = grep { !$_->{warm} } @w;
        }
        # Per window: p99.9 sick / p99.9 healthy, for the spread.
        $wratio{$cfg} = [ map { my $h = pooled([ $_->{healthy} ])->{p999};
                                $h ? pooled([ $_->{sick} ])->{p999} / $h : () } @{ $runs->{$cfg} } ];
    }
    my $fl = pct_set(map { @{ $_->{sick}{inflight} } } @{ $runs->{ocspstaple} });
    my $lat = sub { my ($x) = @_; join(' / ', map { ms($x->{$_}) } qw(p50 p99 p999 max)) };
    my %p999 = map { my ($h, $k) = @s{"$_/healthy", "$_/sick"};
        $_ => sprintf('%s → %s ms (%s)', ms($h->{p999}), ms($k->{p999}),
                      ratio_str($wratio{$_}) =~ s/^(\S+)/$1x/r) } @PEERS;
    $p999{nginx} .= '; its first fetches, not a renewal (see below)';
    my $o = $s{'ocspstaple/sick'};
    my @rows = (
        { figure => "Handshake p99.9, responder answering in $SICK_DELAY s while renewals are "
                    . 'due (healthy → sick; ratio per window: median (min–max))',
          cols => \%p999, target => '≤ 1.5x healthy',
          met => $o->{errors} || $o->{stapled} != $o->{asked} ? 'no (errors or missing staples)'
                 : met_max(1.5, @{ $wratio{ocspstaple} }) },
        { figure => 'Handshake p50 / p99 / p99.9 / max with the sick responder (ms)',
          cols => { map { $_ => $lat->($s{"$_/sick"}) } @PEERS }, target => '—', met => '—' },
        { figure => 'Handshakes stapled with the sick responder (of those asking for a staple)',
          cols => { map { my $x = $s{"$_/sick"};
                          $_ => sprintf('%.1f %% (%d of %d)', $x->{asked} ? 100 * $x->{stapled} / $x->{asked} : 0,
                                        $x->{stapled}, $x->{asked}) } @PEERS },
          target => '100 %', met => yn($o->{asked} && $o->{stapled} == $o->{asked}) },
    );
    my @detail = ('| Server, responder | windows | handshakes | staples (of those asking) | errors '
        . '| responder requests | p50 | p99 | p99.9 | max (ms) | without status_request: p99.9 / max |',
        '|---|---|---|---|---|---|---|---|---|---|---|');
    for my $cfg (@PEERS) {
        for my $cond (qw(healthy sick)) {
            my $key = "$cfg/$cond";
            my $x = $s{$key} or next;
            push @detail, sprintf('| %s, %s | %d%s | %d | %d of %d | %d | %d | %s | %s | %s | %s | %s / %s |',
                $CFG_NAME{$cfg}, $cond, $x->{windows},
                $x->{unwarm} && $cfg ne 'nginx' ? " ($x->{unwarm} not stapling before)" : '',
                $x->{n}, $x->{stapled}, $x->{asked}, $x->{errors}, $x->{requests},
                (map { ms($x->{$_}) } qw(p50 p99 p999 max)),
                ms($quiet{$key}{p999}), ms($quiet{$key}{max}));
        }
    }
    push @detail, '', sprintf('mod_ocspstaple, only the %d handshakes that started while a '
        . "renewal was waiting for the sick responder (the $SICK_DELAY s before each "
        . 'OCSPSTAPLE0002 line): p50 %s, p99 %s, p99.9 %s, max %s ms.', $fl->{n},
        map { ms($fl->{$_}) } qw(p50 p99 p999 max));
    push @detail, '', 'Method: responses valid 60 s. Every peer with its default settings, but '
        . 'for the one that makes a renewal due 5 s after a fetch, which none of them would '
        . 'do within a window of seconds by default: mod_ocspstaple '
        . '`OCSPStaplingRenewWindow 55s`, mod_md `MDStaplingRenewWindow 55s`, mod_ssl '
        . '`SSLStaplingStandardCacheTimeout 5` (its cache entry ages out and the next '
        . 'handshake fetches). nginx has no such setting (it refreshes 5 minutes before '
        . 'nextUpdate, never sooner than 5 minutes after a fetch): its servers start cold '
        . 'instead, so that the fetch each worker makes after its first handshake is due when '
        . 'the window begins; for nginx the sick figures are those of a first fetch, not of a '
        . "renewal. Per $P{sick_secs} s window two fresh servers of one peer side by side, "
        . 'each with a responder of its own (named by its certificate\'s AIA URL, no override); '
        . 'both responders healthy while the servers start and until they staple (all but '
        . "nginx), then one turns sick (answers after $SICK_DELAY s), so that a renewal "
        . "(mod_ssl: a cache miss) waits for it during about $SICK_DELAY s of the window. "
        . "The client sends its connections to the two servers in turn: $SICK_RATE "
        . 'handshakes/s in all (ECDSA, TLS 1.3) over 16 connections, 4 of them without '
        . "status_request. Every peer: $P{sick_windows} window(s), the peers taking turns; "
        . 'percentiles over the pooled handshakes of a peer\'s windows; the ratio\'s spread is '
        . 'that of the windows. Latency: from connect() to the end of the handshake. '
        . '"responder requests": answered during the windows.';
    return { title => 'Latency with a sick responder', rows => \@rows,
             detail => join("\n", @detail) };
}
# ============================================================================
# 3. Responder requests per certificate and renewal, 1, 4 and 16 processes.
#
# For every peer, three servers with 1, 4 and 16 fixed processes (Apache:
# prefork children; nginx: worker_processes), all twelve at once, each with
# a certificate of its own whose AIA URL names a responder of its own
# (60 s responses). A renewal every 5-10 s, given the same way to every peer
# that has a setting for it: mod_ocspstaple `OCSPStaplingRenewWindow 50s`,
# mod_md `MDStaplingRenewWindow 50s`, mod_ssl
# `SSLStaplingStandardCacheTimeout 5`; nginx has none (5 minutes at the
# earliest), so its window shows the fetches its workers make after their
# first handshakes (each worker fetches for itself). Light traffic reaches
# every server. Over load_secs the responder logs are read: requests for the
# one certificate, grouped into renewals (requests less than 3 s apart
# belong to the same renewal; renewals are at least 5 s apart).

sub scenario_load {
    note("load: responder requests per renewal, 1/4/16 processes, $P{load_secs} s, "
         . scalar(@PEERS) . ' peers at once');
    my @n = (1, 4, 16);
    my (%resp, %srv);
    for my $cfg (@PEERS) {
        for my $n (@n) {
            my $k = "load-$cfg-$n";
            $resp{"$cfg/$n"} = BenchKit::Responder->new(dir => $OUT, name => "responder-$k",
                                   port => $AIA{$k}, pki => $PKI);
            $resp{"$cfg/$n"}->start(nmin => 1);
            $srv{"$cfg/$n"} = server($cfg, $k, mpm => 'prefork', workers => $n,
                mpm_conf => BenchKit::Httpd::prefork_conf($n), ssl_cache_timeout => 5,
                vhosts => [ [ "$k.test", $k ] ], extra => [ grep { defined } $LOAD_SETTING{$cfg} ]);
            $srv{"$cfg/$n"}->start;
        }
    }
    my $t0 = int(time) + 1;
    sleep($t0 - time);
    my %bg = map { $_ => BenchKit::client_start(port => $srv{$_}->port, sni => 'x.test',
                        key => 'ecdsa', secs => $P{load_secs}, threads => 4, rate => 20) }
             keys %srv;
    my %traffic = map { $_ => eval { $bg{$_}->result } // {} } keys %bg;
    my $t1 = $t0 + $P{load_secs};
    sleep($t1 - time) if $t1 > time;
    my %procs = map { my @p = $srv{$_}->pids; $_ => @p - 1 } keys %srv;
    $_->stop for values %srv;
    $_->stop for values %resp;
    return load_results(\@n, \%resp, \%traffic, \%procs, $t0, $t1);
}

# Requests less than 3 s apart: one renewal.
sub renewals {
    my @t = sort { $a <=> $b } @_;
    my $n = 0;
    for my $i (0 .. $#t) {
        $n++ if $i == 0 || $t[$i] - $t[$i - 1] >= 3;
    }
    return $n;
}

sub load_results {
    my ($ns, $resp, $traffic, $procs, $t0, $t1) = @_;
    my (%per, @detail, $ok);
    $ok = 1;
    push @detail, '| Server | processes (seen) | requests | renewals | requests per renewal | '
        . 'handshakes (stapled) |', '|---|---|---|---|---|---|';
    for my $cfg (@PEERS) {
        for my $n (@$ns) {
            my $k = "$cfg/$n";
            my @t = $resp->{$k}->times($t0, $t1);
            my $r = renewals(@t);
            my $per = $r ? @t / $r : 0;
            my $a = $traffic->{$k}{all} // {};
            $ok &&= $r >= 2 && $per == 1 && ($a->{stapled} // -1) == ($a->{handshakes} // 0)
                    && ($procs->{$k} // 0) == $n if $cfg eq 'ocspstaple';
            push @{ $per{$cfg} }, $cfg eq 'nginx' ? scalar(@t) : sprintf('%.2f', $per);
            push @detail, sprintf('| %s | %d (%d) | %d | %d | %.2f | %d (%d) |', $CFG_NAME{$cfg},
                $n, $procs->{$k} // 0, scalar @t, $r, $per, $a->{handshakes} // 0,
                $a->{stapled} // 0);
        }
    }
    my %cols = map { $_ => join(' / ', @{ $per{$_} }) } @PEERS;
    $cols{nginx} .= ' requests in the window, no renewal: each worker fetches for itself after '
        . 'its first handshake; nginx renews 5 minutes before nextUpdate at the earliest';
    push @detail, '', "Method: window of " . ($t1 - $t0) . " s; 60 s responses; every peer's "
        . 'servers at once, each with a certificate and a responder of its own (the AIA URL). '
        . 'A renewal every 5-10 s, the same way for every peer that has a setting for it: '
        . 'mod_ocspstaple `OCSPStaplingRenewWindow 50s`, mod_md `MDStaplingRenewWindow 50s`, '
        . 'mod_ssl `SSLStaplingStandardCacheTimeout 5` (a fetch in the first handshake after '
        . 'the cache entry aged out); nginx has none, and the servers start cold, so its '
        . 'figure is the requests of the first fetches. Apache: prefork with StartServers = '
        . 'MinSpareServers = ServerLimit = N; nginx: worker_processes N. 20 handshakes/s to '
        . 'each server meanwhile (4 connections); a renewal = the responder requests less than '
        . '3 s apart.';
    return { title => 'Responder load', detail => join("\n", @detail),
             rows => [ { figure => 'Responder requests per certificate per renewal, '
                             . '1 / 4 / 16 processes (nginx: workers)',
                         cols => \%cols, target => '1', met => yn($ok) } ] };
}
# ============================================================================
# 4. Cold start: the first 100 handshakes after the server's start.
#
# No store, nothing cached, every peer with its defaults: mod_ocspstaple
# fetches while starting; mod_ssl in the first handshake that asks; mod_md's
# watchdog in the background once a child runs; nginx in the background
# after each worker's first handshake. The client starts the moment the
# port accepts (retrying refused connections).

sub scenario_cold {
    note("cold: first 100 handshakes after the start, $P{cold_reps} start(s) per peer");
    my $resp = BenchKit::Responder->new(dir => $OUT, name => 'responder-cold',
                                        port => $PORT0, pki => $PKI);
    $resp->start;
    my %runs;
    for my $rep (1 .. $P{cold_reps}) {
        my @order = $rep % 2 ? @PEERS : reverse @PEERS;
        for my $cfg (@order) {
            my $h = server($cfg, "cold-$rep-$cfg", vhosts => [ [ 'rsa.test', 'rsa', 'ecdsa' ] ]);
            my $start = $h->start;
            my $c = BenchKit::client(port => $h->port, sni => 'rsa.test', key => 'ecdsa',
                                     count => 100, threads => 4, wait => 10)->{all};
            $h->stop;
            push @{ $runs{$cfg} }, { %$c, start => $start };
        }
    }
    $resp->stop;
    return cold_results(\%runs);
}

sub cold_results {
    my ($runs) = @_;
    my (%share, %min);
    for my $cfg (@PEERS) {
        my @r = @{ $runs->{$cfg} };
        my ($lo, $hi) = min_max(map { $_->{stapled} / 100 } @r);
        my (undef, $worst) = min_max(map { $_->{max_ms} } @r);
        $share{$cfg} = sprintf('%.0f %%%s (worst of %d start(s); slowest handshake %s ms)',
                               100 * $lo, $hi > $lo ? sprintf(', best %.0f %%', 100 * $hi) : '',
                               scalar @r, ms($worst));
        $min{$cfg} = $lo;
    }
    my @detail = ('| Server | start | stapled of 100 | errors | p50 | max (ms) | port open after (s) |',
                  '|---|---|---|---|---|---|---|');
    for my $cfg (@PEERS) {
        my $i = 0;
        push @detail, map { sprintf('| %s | %d | %d | %d | %s | %s | %.2f |', $CFG_NAME{$cfg},
            ++$i, $_->{stapled}, $_->{errors}, ms($_->{p50_ms}), ms($_->{max_ms}), $_->{start}) }
            @{ $runs->{$cfg} };
    }
    push @detail, '', 'Method: no store, empty caches, every peer with its defaults; '
        . '`apache2 -k start` (nginx: `nginx -c`), then 100 handshakes (4 connections at once, '
        . 'ECDSA, TLS 1.3) from the moment the port accepts. mod_ocspstaple fetches before it '
        . 'serves; mod_ssl in the first handshake that asks (the others wait for it); mod_md '
        . 'in its watchdog once a child runs; nginx after the first handshake of each worker, '
        . 'in the background (that handshake and those until the answer go without).';
    return { title => 'Cold start', detail => join("\n", @detail),
             rows => [ { figure => 'Cold start: share of the first 100 handshakes stapled',
                         cols => \%share, target => '100 %', met => yn($min{ocspstaple} == 1) } ] };
}
# ============================================================================
# 5. Scale: N certificates in N SNI virtual hosts (ECDSA, CA-signed staples),
#    for each N of scale_sizes (1,000 and 10,000), against bench/fastocsp
#    (responses signed once, served from memory: it measures the server).
#
# Per N, one after the other:
#  - cold start of mod_ocspstaple (empty store): from `apache2 -k start`
#    until the first handshake is served (connections wait in the backlog
#    meanwhile), and until every certificate is stapling (the start-up
#    summary OCSPSTAPLE0012 says none is left without a response, or else
#    the status page says so); the responder's requests and connections of
#    that time (connections per 1,000 fetches: keep-alive);
#  - one handshake to each vhost, every staple verified by hsclient
#    (signature by the issuer, CertID of the served certificate);
#  - memory: Pss of all processes plus the shared mappings, against the
#    same server without stapling;
#  - a warm start: the same server started again, its store filled by the
#    cold start: until it serves, until all are stapling, responder requests;
#  - CPU per handshake against one certificate (paired rounds, four servers
#    side by side), as before.
# mod_ssl's SSLUseStapling is not in this scenario (its cache fills on
# demand, in the handshakes): the reload scenario has it at 1,000.

# The other peers' cells in the scale rows: the scenario runs mod_ocspstaple
# and no stapling only (10,000 vhosts per peer would not fit the run's 20
# minutes); the reload scenario has every peer at scale_certs vhosts.
use constant SCALE_ONLY => 'not run at this size (see Scale; Reload has it at 1000 vhosts)';

sub scenario_scale {
    my @sizes = @{ $P{scale_sizes} };
    note("scale: @sizes certificates in as many SNI virtual hosts, bench/fastocsp");
    my $resp = BenchKit::FastResponder->new(dir => $OUT, name => 'responder-scale',
                                            port => $PORT0, pki => $PKI);
    $resp->start;
    my @res = map { scale_one($resp, $_) } @sizes;
    $resp->stop;
    return scale_results(@res);
}

sub scale_one {
    my ($resp, $n) = @_;
    my %s = (n => $n);
    my $store = "$OUT/scale-$n-store";
    make_path($store);
    chown((getpwnam('www-data'))[2, 3], $store) if $> == 0;
    my $big = BenchKit::Httpd->new(dir => $OUT, label => "scale-$n-ocspstaple",
        flavour => 'ocspstaple', pki => $PKI, vhosts => scale_vhosts($n),
        extra => [ "OCSPStaplingStore $store" ]);
    $s{cold} = scale_start($big, $resp, $n);
    $s{sweep} = BenchKit::client(port => $big->port, sni => 'm%d.bench', names => $n,
                                 count => $n, threads => 4, key => 'ecdsa',
                                 cafile => "$PKI/intermediate.crt")->{all};
    scale_memory(\%s, "ocspstaple/$n", $big);
    note(sprintf('scale %d: cold start serving after %.1f s, all stapled after %s s, '
                 . '%d of %d stapled (verified), %d bad', $n, $s{cold}{serving},
                 defined $s{cold}{all} ? sprintf('%.1f', $s{cold}{all}) : 'never',
                 $s{sweep}{stapled}, $n, $s{sweep}{badstaple}));
    $big->stop;
    $s{warm} = scale_start($big, $resp, $n);
    note(sprintf('scale %d: warm start serving after %.1f s, all stapled after %s s, '
                 . '%d responder requests', $n, $s{warm}{serving},
                 defined $s{warm}{all} ? sprintf('%.1f', $s{warm}{all}) : 'never',
                 $s{warm}{requests}));
    my %srv = ("ocspstaple/$n" => $big);
    for my $cfg (qw(ocspstaple none)) {
        $srv{"$cfg/1"} = BenchKit::Httpd->new(dir => $OUT, label => "scale-$n-1-$cfg",
            flavour => $cfg, pki => $PKI, vhosts => [ [ 'm1.bench|*.bench', 'm1' ] ]);
    }
    $srv{"none/$n"} = BenchKit::Httpd->new(dir => $OUT, label => "scale-$n-none",
        flavour => 'none', pki => $PKI, vhosts => scale_vhosts($n));
    for my $k (grep { $_ ne "ocspstaple/$n" } sort keys %srv) {
        $s{start}{$k} = start_served($srv{$k}, 'm1.bench');
        # The same handshakes as the server with stapling before its
        # memory was taken: what serving them costs is Apache's, not ours.
        BenchKit::client(port => $srv{$k}->port, sni => 'm%d.bench', names => $n,
                         count => $n, threads => 4, key => 'ecdsa') if $k eq "none/$n";
        scale_memory(\%s, $k, $srv{$k});
    }
    $s{ratios} = scale_cpu(\%srv, $n);
    $_->stop for values %srv;
    return \%s;
}

# Starts H (cold or warm, as its store is): seconds until it serves and
# until all N are stapling; the responder's requests and connections in
# that time; what OCSPSTAPLE0012 said.
sub scale_start {
    my ($h, $resp, $n) = @_;
    my $offset = -s $h->errorlog // 0;
    my $t0 = time;
    my %r = (serving => start_served($h, 'm1.bench'));
    my $all = wait_all_stapled($h, $n, $offset);
    $r{all} = $all ? time - $t0 : undef;
    $r{requests} = () = $resp->times($t0, time + 1);
    $r{connections} = $resp->connections($t0, time + 1);
    ($r{summary}) = $h->log_since($offset) =~ /OCSPSTAPLE0012: ([^\n]*)/;
    $r{lost} = () = $h->log_since($offset) =~ /OCSPSTAPLE0033/g;
    return \%r;
}

sub scale_memory {
    my ($s, $k, $h) = @_;
    my @pids = $h->pids;
    $s->{mem}{$k} = $h->memory;
    $s->{shm}{$k} = shared_bytes($pids[0]);
    $s->{procs}{$k} = scalar @pids;
}

# m1.bench .. mN.bench, each with its own certificate (ECDSA, CA-signed
# responses): the PKI's leaves m1 .. mN.
sub scale_vhosts {
    my ($n) = @_;
    return [ map { [ "m$_.bench", "m$_" ] } 1 .. $n ];
}

# Starts H and returns the seconds until its first handshake is done.
sub start_served {
    my ($h, $sni) = @_;
    my $t0 = time;
    $h->start;
    my $r = BenchKit::client(port => $h->port, sni => $sni, count => 1, threads => 1,
                             wait => 60, timeout => 60)->{all};
    die "bench: $h->{label}: no handshake after start\n" unless $r->{handshakes};
    return time - $t0;
}

# Until every certificate is stapling (bounded). The start-up summary
# (OCSPSTAPLE0012: once the start-up helper is done, before the server
# serves or, when the helper takes longer than the parent waits, after)
# says how many were left without a response; none: that is the answer.
# Otherwise the status page (JSON: about 1 KB per certificate, so not
# polled often).
sub wait_all_stapled {
    my ($h, $n, $offset) = @_;
    my $left;
    BenchKit::wait_until(240, sub {
        ($left) = $h->log_since($offset // 0) =~ /OCSPSTAPLE0012: .* (\d+) without a response/;
        return defined $left;
    }, 0.25);
    return 1 if defined $left && $left == 0;
    return BenchKit::wait_until(240, sub {
        my $json = `curl -sk --max-time 20 https://127.0.0.1:${\ $h->port}/ocsp-status?format=json`;
        my $j = eval { JSON::PP->new->decode($json) } or return 0;
        my $on = grep { $_->{stapling} } @{ $j->{certificates} // [] };
        return $on >= $n;
    }, $n > 2000 ? 2 : 0.25);
}

# Bytes of shared memory mapped by PID (shmcb caches, scoreboard, counters).
sub shared_bytes {
    my ($pid) = @_;
    no warnings 'portable';        # 64-bit addresses
    my $sum = 0;
    for (split /\n/, BenchKit::slurp("/proc/$pid/maps")) {
        my ($lo, $hi, $perm) = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
        $sum += hex($hi) - hex($lo) if substr($perm, 3, 1) eq 's';
    }
    return $sum;
}

# Paired rounds: N certificates / 1 certificate, with and without stapling;
# in each round the connections go to the four servers in turn, every name
# (m1..mN.bench) to each of them.
sub scale_cpu {
    my ($srv, $n) = @_;
    my @keys = ("ocspstaple/1", "ocspstaple/$n", "none/1", "none/$n");
    my @rounds;
    for my $pass (1 .. $P{scale_passes}) {
        my @order = $pass % 2 ? @keys : reverse @keys;
        my %before = map { $_ => $srv->{$_}->cpu } @order;
        my $core0 = BenchKit::core_time(0);
        my $r = BenchKit::client(port => join(',', map { $srv->{$_}->port } @order),
                                 key => 'ecdsa', secs => $P{scale_secs}, threads => $THREADS,
                                 sni => 'm%d.bench', names => $n);
        my %ns = map { $_ => $srv->{$_}->cpu->{ns} - $before{$_}{ns} } @order;
        my %us = map { $_ => $ns{$_} / 1000 / (BenchKit::port_result($r, $srv->{$_}->port)
                                                   ->{handshakes} || 1) } @order;
        $rounds[$pass] = { us => \%us, foreign => foreign_share($core0, values %ns) };
    }
    my @passes = undisturbed([ 1 .. $P{scale_passes} ], sub { $rounds[$_[0]]{foreign} });
    my %ratios = (kept => scalar @passes,
                  foreign => [ map { $rounds[$_]{foreign} } 1 .. $P{scale_passes} ]);
    for my $p (@passes) {
        my $us = $rounds[$p]{us};
        push @{ $ratios{$_} }, $us->{"$_/$n"} / $us->{"$_/1"} for qw(ocspstaple none);
        push @{ $ratios{"us/$_"} }, $us->{$_} for @keys;
    }
    return \%ratios;
}

# The whole server's memory per certificate beyond the same server without
# stapling: Pss of all processes plus the shared mappings, in KB.
sub kb_per_cert {
    my ($s) = @_;
    my $n = $s->{n};
    my $tot = sub { $s->{mem}{$_[0]}{pss_kb} + $s->{shm}{$_[0]} / 1024 };
    return ($tot->("ocspstaple/$n") - $tot->("none/$n")) / $n;
}

# The same without what the module costs once (1-certificate servers
# subtracted): what one more certificate costs.
sub kb_marginal {
    my ($s) = @_;
    my $n = $s->{n};
    my $tot = sub { $s->{mem}{$_[0]}{pss_kb} + $s->{shm}{$_[0]} / 1024 };
    return (($tot->("ocspstaple/$n") - $tot->('ocspstaple/1'))
            - ($tot->("none/$n") - $tot->('none/1'))) / ($n - 1 || 1);
}

sub scale_results {
    my (@all) = @_;
    my (@rows, @detail);
    for my $s (@all) {
        push @rows, scale_rows($s);
        push @detail, scale_detail($s);
    }
    push @detail, 'Goals (10,000 certificates): serving within 5 s of a warm start (of the '
        . 'module\'s share: Apache itself, without stapling, takes longer than that to load '
        . '10,000 certificates here; the start without stapling is beside it), every '
        . 'certificate stapled within 60 s of a cold start, at most 20 KB per certificate '
        . 'for the whole server beyond the same server without stapling (Pss of all its '
        . 'processes plus its shared mappings). The loopback responder is bench/fastocsp '
        . '(responses signed once at its start and served from memory, HTTP/1.1 keep-alive); '
        . 'connections per 1,000 fetches: the connections it accepted during the cold start '
        . 'that carried requests, per 1,000 requests. mod_ssl `SSLUseStapling` is not in this '
        . 'scenario (it fetches in the handshakes, on demand): see the graceful restart.';
    return { title => 'Scale: ' . join(' and ', map { $_->{n} } @all) . ' certificates',
             rows => \@rows, detail => join("\n\n", @detail) };
}

sub scale_rows {
    my ($s) = @_;
    my $n = $s->{n};
    my $big = $n >= 10000;             # the goals are set for 10,000
    my ($c, $w, $sw) = @$s{qw(cold warm sweep)};
    my $secs = sub { defined $_[0] ? sprintf('%.1f s', $_[0]) : 'never' };
    my $kb = kb_per_cert($s);
    my $per1000 = $c->{requests} ? 1000 * $c->{connections} / $c->{requests} : 0;
    my $verified = defined $c->{all} && $sw->{stapled} == $n && !$sw->{badstaple}
                   && !$sw->{errors};
    return map { +{ others => SCALE_ONLY, %$_ } } (
        { figure => "$n SNI vhosts, cold start (empty store): serving after / all stapled after",
          ours => sprintf('%s / %s; then %d of %d vhosts stapled, one handshake each, every '
                          . 'staple verified (%d bad)', $secs->($c->{serving}),
                          $secs->($c->{all}), $sw->{stapled}, $n, $sw->{badstaple}),
          none => sprintf('serving after %.1f s', $s->{start}{"none/$n"}),
          target => $big ? 'all stapled ≤ 60 s' : 'all',
          met => yn($verified && (!$big || $c->{all} <= 60)) },
        { figure => "$n SNI vhosts, warm start (the store of the cold start): serving after / "
                    . 'all stapled after',
          ours => sprintf('%s / %s (%+.1f s against no stapling); %d responder requests',
                          $secs->($w->{serving}), $secs->($w->{all}),
                          $w->{serving} - $s->{start}{"none/$n"}, $w->{requests}),
          none => sprintf('serving after %.1f s', $s->{start}{"none/$n"}),
          # Apache alone takes longer than 5 s to load 10,000 certificates:
          # the goal is on the module's share of the start.
          target => $big ? 'serving ≤ 5 s later than no stapling' : '—',
          met => $big ? yn($w->{serving} - $s->{start}{"none/$n"} <= 5) : '—' },
        { figure => "$n SNI vhosts: memory per certificate beyond no stapling "
                    . '(Pss of all processes + shared memory)',
          ours => sprintf('%.1f KB; %.1f KB without the module\'s fixed cost (%s + %s shared; '
                          . 'no stapling: %s + %s shared)', $kb, kb_marginal($s),
                          mb($s->{mem}{"ocspstaple/$n"}{pss_kb}), mb($s->{shm}{"ocspstaple/$n"} / 1024),
                          mb($s->{mem}{"none/$n"}{pss_kb}), mb($s->{shm}{"none/$n"} / 1024)),
          none => '(the baseline)', target => $big ? '≤ 20 KB' : '—', met => $big ? yn($kb <= 20) : '—' },
        { figure => "$n SNI vhosts: server CPU per handshake vs 1 certificate",
          ours => ratio_str($s->{ratios}{ocspstaple}),
          none => ratio_str($s->{ratios}{none}),
          target => '—', met => '—' },
        { figure => "$n SNI vhosts: responder connections per 1,000 fetches (cold start)",
          ours => sprintf('%.1f (%d connections, %d requests)', $per1000, $c->{connections},
                          $c->{requests}),
          none => '—', target => '—', met => '—' },
    );
}

sub mb { sprintf('%.0f MB', $_[0] / 1024) }

sub scale_detail {
    my ($s) = @_;
    my $n = $s->{n};
    my ($c, $w, $sw, $mem) = @$s{qw(cold warm sweep mem)};
    my $each = sub { my ($k) = @_; my ($p, @ch) = @{ $mem->{$k}{each} };
        sprintf('parent %s, %d children %s', mb($p->{pss_kb}), scalar @ch,
                join(', ', map { mb($_->{pss_kb}) } @ch)) };
    return sprintf("### %d certificates\n\n", $n)
        . sprintf('Cold start: %s (start-up summary: "%s")%s. After all were stapled: %d '
        . 'handshakes, one to each vhost, %d stapled, %d errors, %d staples that failed '
        . 'verification. Warm start: start-up summary "%s". Memory (both N-certificate servers '
        . 'after one handshake to each vhost), Pss: %s with mod_ocspstaple; '
        . '%s without stapling; shared mappings %s and %s. CPU: %d rounds of %s s, in each '
        . 'the client sending its connections to four servers in turn (mod_ocspstaple and no '
        . 'stapling, 1 and %d certificates; the 1-certificate servers answer every name with '
        . '`ServerAlias *.bench`), the names rotating through all %d; µs/handshake medians: %s.',
        $c->{requests} . ' responder requests over ' . $c->{connections} . ' connections',
        $c->{summary} // '-', $c->{lost} ? " ($c->{lost} OCSPSTAPLE0033: the cache lost some)" : '',
        $sw->{handshakes}, $sw->{stapled}, $sw->{errors}, $sw->{badstaple},
        $w->{summary} // '-', $each->("ocspstaple/$n"), $each->("none/$n"),
        mb($s->{shm}{"ocspstaple/$n"} / 1024), mb($s->{shm}{"none/$n"} / 1024),
        $P{scale_passes}, $P{scale_secs}, $n, $n,
        join(', ', map { sprintf('%s %.0f', $_, median(@{ $s->{ratios}{"us/$_"} }) // 0) }
                   ("ocspstaple/1", "ocspstaple/$n", "none/1", "none/$n")))
        . ' ' . disturbed_note($s->{ratios}{kept}, $P{scale_passes}, @{ $s->{ratios}{foreign} });
}

# ----------------------------------------------------------------------------
# One wildcard certificate (*.w.bench) served by N virtual hosts
# (w1.w.bench .. wN.w.bench), N = each of scale_sizes: the start time and
# the parent's peak memory (VmHWM) must grow linearly with N (one entry,
# its list of vhosts appended to), not quadratically. The same without
# stapling, for what Apache itself does.

sub scenario_wildcard {
    my @sizes = @{ $P{scale_sizes} };
    note("scale: one wildcard certificate in @sizes virtual hosts");
    my $resp = BenchKit::FastResponder->new(dir => $OUT, name => 'responder-wild',
                                            port => $PORT0, pki => $PKI);
    $resp->start;
    my %r;
    for my $n (@sizes) {
        for my $cfg (qw(ocspstaple none)) {
            my $h = BenchKit::Httpd->new(dir => $OUT, label => "wild-$n-$cfg", flavour => $cfg,
                pki => $PKI, vhosts => [ map { [ "w$_.w.bench", 'wild' ] } 1 .. $n ]);
            my $secs = start_served($h, 'w1.w.bench');
            my ($hwm) = BenchKit::slurp("/proc/" . ($h->pids)[0] . '/status') =~ /^VmHWM:\s+(\d+)/m;
            $r{$n}{$cfg} = { start => $secs, hwm_kb => $hwm // 0 };
            $h->stop;
        }
        note(sprintf('scale: wildcard in %d vhosts: start %.1f s, parent VmHWM %s '
                     . '(no stapling: %.1f s, %s)', $n, $r{$n}{ocspstaple}{start},
                     mb($r{$n}{ocspstaple}{hwm_kb}), $r{$n}{none}{start}, mb($r{$n}{none}{hwm_kb})));
    }
    $resp->stop;
    return wildcard_results(\%r, @sizes);
}

sub wildcard_results {
    my ($r, @sizes) = @_;
    my ($lo, $hi) = ($sizes[0], $sizes[-1]);
    my $x = sub { my ($cfg, $k) = @_; $r->{$lo}{$cfg}{$k} ? $r->{$hi}{$cfg}{$k} / $r->{$lo}{$cfg}{$k} : 0 };
    my $f = $hi / ($lo || 1);
    my @rows = ({
        others => SCALE_ONLY,
        figure => "One wildcard certificate in $lo and $hi vhosts: start (until served) and "
                  . "parent VmHWM, $hi vs $lo",
        ours => sprintf('%.1f s → %.1f s (%.1fx), %s → %s (%.1fx)',
                        $r->{$lo}{ocspstaple}{start}, $r->{$hi}{ocspstaple}{start},
                        $x->('ocspstaple', 'start'), mb($r->{$lo}{ocspstaple}{hwm_kb}),
                        mb($r->{$hi}{ocspstaple}{hwm_kb}), $x->('ocspstaple', 'hwm_kb')),
        none => sprintf('%.1fx, %.1fx', $x->('none', 'start'), $x->('none', 'hwm_kb')),
        target => sprintf('not quadratic: ≤ 1.5 × %g (no stapling\'s own growth aside)', $f),
        met => $lo == $hi ? '—'
             : yn($x->('ocspstaple', 'start') <= 1.5 * $f && $x->('ocspstaple', 'hwm_kb') <= 1.5 * $f),
    });
    my @d = ('| vhosts | mod_ocspstaple start (s) | parent VmHWM | no stapling start (s) | parent VmHWM |',
             '|---|---|---|---|---|');
    push @d, sprintf('| %d | %.1f | %s | %.1f | %s |', $_, $r->{$_}{ocspstaple}{start},
                     mb($r->{$_}{ocspstaple}{hwm_kb}), $r->{$_}{none}{start}, mb($r->{$_}{none}{hwm_kb}))
        for @sizes;
    push @d, '', 'Method: one ECDSA certificate (*.w.bench) in every vhost (w1.w.bench .. '
        . 'wN.w.bench), each server started alone; start: `apache2 -k start` until the first '
        . 'handshake is served; VmHWM: the parent\'s peak resident memory after the start. '
        . 'Quadratic work (a list of vhost names rebuilt for each vhost) would show as '
        . sprintf('%gx for %gx the vhosts.', $f * $f, $f);
    return { title => 'Scale: one wildcard certificate in many virtual hosts',
             rows => \@rows, detail => join("\n", @d) };
}

# ============================================================================
# 6. Reload: a graceful restart of N certificates in N SNI virtual hosts
#    while handshakes go on.
#
# The scale scenario's virtual hosts (m1..mN.bench), one server per
# configuration, every peer with its defaults (mod_ocspstaple: its store on;
# mod_ssl: SSLUseStapling with its shmcb cache; mod_md: MDStapling with its
# store; nginx: ssl_stapling) and no stapling (Apache, and nginx for nginx's
# ratio), all on one healthy loopback responder. Once a server is stapling
# (mod_ocspstaple: its status page says so for every certificate; the
# others fetch on demand or in the background, so the names the client uses
# get handshakes until every one of them is stapled), the client runs
# handshakes against several of its vhosts (m1..m8, status_request, full
# handshakes, $RELOAD_RATE/s over $RELOAD_THREADS connections), and after
# reload_pre seconds the parent gets SIGUSR1 (`apache2 -k graceful`; nginx's
# master SIGHUP, `nginx -s reload`). The client goes on until reload_post
# seconds after the new generation serves (Apache: the parent logged
# AH00489 "resuming normal operations" again and a child of the new
# generation is running; nginx: a worker of the new generation runs), then
# stops (SIGUSR1 to hsclient). Figures over all the handshakes of that
# window: p50, p99.9, max, rate, staples. A handshake that arrives while no
# process accepts waits in the listen backlog: its latency is the time the
# restart kept the server from serving; the paced client does not make up
# for the handshakes it could not start meanwhile, so handshakes/s shows
# that time too. The servers get their windows one after the other, so that
# one server's restart never slows another's; each server runs alone on
# core 0 during its window.
#
# The Apache servers' MPM has room for a whole new generation beside the
# old one (ServerLimit 4 for 2 processes): the new children start at once,
# without waiting for the old ones to leave their slots.

sub scenario_reload {
    my $n = $P{scale_certs};
    note("reload: a graceful restart of $n SNI virtual hosts under handshakes, "
         . scalar(@RELOAD_CFGS) . ' servers');
    # Pre-signed responses from memory: the servers' cold starts before the
    # windows (1,000 fetches each) wait on the server, not on the responder.
    my $resp = BenchKit::FastResponder->new(dir => $OUT, name => 'responder-reload',
                                            port => $PORT0, pki => $PKI);
    $resp->start;
    my %r;
    for my $cfg (@RELOAD_CFGS) {
        # mod_ocspstaple as installed: its store on (the default), which is
        # what a reload serves the responses from.
        my @store = $cfg eq 'ocspstaple' ? ("OCSPStaplingStore $OUT/reload-store") : ();
        my $h = server($cfg, "reload-$n-$cfg", vhosts => scale_vhosts($n), extra => \@store,
            mpm_conf => [ 'ServerLimit 4', 'StartServers 2', 'ThreadsPerChild 32',
                          'ThreadLimit 32', 'MaxRequestWorkers 64', 'MinSpareThreads 1',
                          'MaxSpareThreads 64' ]);
        my $t0 = time;
        $r{$cfg}{start} = start_served($h, 'm1.bench');
        $r{$cfg}{ready} = reload_ready($h, $cfg, $n);
        $r{$cfg}{ready_secs} = time - $t0;
        $r{$cfg} = { %{ $r{$cfg} }, %{ reload_window($h, $resp, $cfg) } };
        $h->stop;
        note(sprintf('reload: %-10s p99.9 %s ms, max %s ms, %.0f handshakes/s, %d of %d '
                     . 'stapled, serving again %s s after the signal', $cfg,
                     ms($r{$cfg}{p999_ms} // 0), ms($r{$cfg}{max_ms} // 0), $r{$cfg}{rate} // 0,
                     $r{$cfg}{stapled} // 0, $r{$cfg}{handshakes} // 0,
                     defined $r{$cfg}{back} ? sprintf('%.1f', $r{$cfg}{back}) : 'never'));
    }
    $resp->stop;
    return reload_results(\%r, $n);
}

# Before the window, everything stapling: mod_ocspstaple's status page says
# so for every certificate; the others fetch on demand (mod_ssl, nginx per
# worker) or in the background (mod_md), so the client's names get
# handshakes until every one of a sweep is stapled. Returns whether that
# worked out.
sub reload_ready {
    my ($h, $cfg, $n) = @_;
    return 1 if $cfg =~ /none$/;
    # mod_ocspstaple: its start-up round is done (every certificate has a
    # response), and, like the others, the handshakes show it: each child
    # takes the round's responses at its next tick, up to a second later.
    return 0 if $cfg eq 'ocspstaple' && !wait_all_stapled($h, $n);
    return warm_until_stapled($h, names => $RELOAD_NAMES, timeout => $h->start_bound);
}

# Whether the generation started by the signal serves: Apache's parent
# logged AH00489 again (after OFFSET in its log) and runs a new child;
# nginx runs a new worker. OLD: the PIDs of the old generation.
sub new_generation {
    my ($h, $offset, $old) = @_;
    return scalar grep { !$old->{$_} } $h->workers if $h->isa('BenchKit::Nginx');
    return 0 unless $h->log_since($offset) =~ /AH00489/;
    my (undef, @kids) = $h->pids;
    return scalar grep { !$old->{$_} } @kids;
}

# One server's window: handshakes, the signal after reload_pre s, on until
# reload_post s after the new generation serves.
sub reload_window {
    my ($h, $resp, $cfg) = @_;
    my $bound = $h->start_bound;          # a restart loads everything again
    my $raw = "$OUT/reload-$cfg.latencies";
    my $offset = -s $h->errorlog // 0;
    my ($parent, @old) = $h->pids;
    my %old = map { $_ => 1 } @old;
    my $c = BenchKit::client_start(port => $h->port, sni => 'm%d.bench', names => $RELOAD_NAMES,
        key => 'ecdsa', tls => '1.3', threads => $RELOAD_THREADS, rate => $RELOAD_RATE,
        secs => $P{reload_pre} + $bound + $P{reload_post} + 5, timeout => $bound + 5, raw => $raw);
    sleep($P{reload_pre} - (time - $c->t0)) if time - $c->t0 < $P{reload_pre};
    my $t_sig = time;
    $h->graceful;
    my $back = BenchKit::wait_until($bound, sub { new_generation($h, $offset, \%old) }, 0.05);
    my $t_back = time;
    sleep($P{reload_post}) if $back;
    $c->end;
    my $res = eval { $c->result } // {};
    my $t_end = time;
    my $all = $res->{all} // {};
    # "STATUS LATENCY_US START_US PORT_INDEX" per handshake; START_US from
    # the client's start, about $c->t0 in the driver's clock.
    my @lat = map { [ split ' ' ] } split /\n/, BenchKit::slurp($raw);
    my $sig_us = ($t_sig - $c->t0) * 1e6;
    my @after = map { $_->[1] / 1000 } grep { $_->[2] >= $sig_us } @lat;
    my @done = sort { $a <=> $b } map { ($_->[2] + $_->[1]) / 1e6 } @lat;
    my $pause = 0;
    for my $i (1 .. $#done) {
        $pause = $done[$i] - $done[$i - 1] if $done[$i] - $done[$i - 1] > $pause;
    }
    return { %$all, back => $back ? $t_back - $t_sig : undef, window => $t_end - $c->t0,
             pause => $pause, after => pct_set(@after),
             requests => scalar($resp->times($c->t0, $t_end)),
             requests_reload => scalar($resp->times($t_sig, $t_back)),
             requests_after => scalar($resp->times($t_back, $t_end + 1)),
             log_errors => scalar(() = $h->log_since($offset)
                                       =~ /(?::|\[)(?:error|crit|alert|emerg)\]/g) };
}

sub reload_results {
    my ($r, $n) = @_;
    my $ratio = sub { my ($cfg, $k) = @_; my $z = $r->{ baseline_of($cfg) };
                      ($z->{$k} // 0) > 0 ? ($r->{$cfg}{$k} // 0) / $z->{$k} : 0 };
    my $lat = sub { my ($x) = @_; sprintf('%s / %s ms', ms($x->{p999_ms} // 0), ms($x->{max_ms} // 0)) };
    my $back = sub { my ($x) = @_; defined $x->{back} ? sprintf('%.1f', $x->{back}) : 'never' };
    # Served again, no errors, and every handshake stapled (none: none).
    my $clean = sub { my ($x, $staples) = @_;
        $x->{ready} && defined $x->{back} && $x->{handshakes} && !$x->{errors}
        && ($x->{stapled} // 0) == ($staples ? $x->{handshakes} : 0) };
    my %lat = map { my $cfg = $_;
        $cfg => sprintf('%s (%.2fx / %.2fx%s); %d of %d stapled', $lat->($r->{$cfg}),
                        $ratio->($cfg, 'p999_ms'), $ratio->($cfg, 'max_ms'),
                        $cfg eq 'nginx' ? ' of nginx without stapling' : '',
                        $r->{$cfg}{stapled} // 0, $r->{$cfg}{handshakes} // 0) } @PEERS;
    $lat{none} = $lat->($r->{none}) . '; nginx without stapling: ' . $lat->($r->{'nginx-none'});
    my ($rp, $rm) = ($ratio->('ocspstaple', 'p999_ms'), $ratio->('ocspstaple', 'max_ms'));
    my @rows = (
        { figure => "Graceful restart (nginx: reload), $n SNI vhosts, all stapled, handshakes "
                    . 'going on: handshake p99.9 / max across it (ratio to no stapling), staples',
          cols => \%lat,
          target => 'p99.9 across a graceful restart within 2x of no stapling; '
                    . 'no handshake waits on a responder',
          met => yn($rp && $rp <= 2 && $rm <= 2 && $clean->($r->{ocspstaple}, 1)
                    && $clean->($r->{none}, 0)) },
        { figure => "Graceful restart, $n SNI vhosts: handshakes/s across it "
                    . '(serving again after the signal)',
          cols => { map { $_ => sprintf('%.0f/s (%s s)', $r->{$_}{rate} // 0, $back->($r->{$_})) }
                    @PEERS, 'none' },
          target => '—', met => '—' },
    );
    $rows[1]{cols}{none} .= sprintf('; nginx without stapling: %.0f/s (%s s)',
                                    $r->{'nginx-none'}{rate} // 0, $back->($r->{'nginx-none'}));
    my @detail = ('| Server | ready before (s) | window (s) | serving again after the signal (s) '
        . '| longest time without a handshake done (s) | handshakes | stapled | errors '
        . '| handshakes/s | p50 | p99.9 | max (ms) | started after the signal: n, p50 / max (ms) '
        . '| responder requests: during the restart / after it |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for my $cfg (@RELOAD_CFGS) {
        my $x = $r->{$cfg};
        push @detail, sprintf('| %s | %.1f%s | %.1f | %s | %.2f | %d | %d | %d | %.0f | %s | %s | %s '
            . '| %d, %s / %s | %d / %d |', $CFG_NAME{$cfg}, $x->{ready_secs},
            $x->{ready} ? '' : ' (not all stapled)', $x->{window} // 0,
            defined $x->{back} ? sprintf('%.2f', $x->{back}) : 'never', $x->{pause} // 0,
            $x->{handshakes} // 0, $x->{stapled} // 0, $x->{errors} // 0, $x->{rate} // 0,
            (map { ms($x->{$_} // 0) } qw(p50_ms p999_ms max_ms)),
            $x->{after}{n}, ms($x->{after}{p50}), ms($x->{after}{max}),
            $x->{requests_reload} // 0, $x->{requests_after} // 0);
    }
    my @logerr = grep { $r->{$_}{log_errors} } @RELOAD_CFGS;
    push @detail, '', 'Error log lines at level error or worse during the window: '
        . join(', ', map { "$CFG_NAME{$_} $r->{$_}{log_errors}" } @logerr) . '.' if @logerr;
    push @detail, '', "Method: the scale scenario's $n virtual hosts (m1..m$n.bench, ECDSA "
        . 'certificates, CA-signed responses from one healthy loopback responder), one server '
        . 'per configuration, each measured alone, every peer with its defaults: '
        . 'mod_ocspstaple (the store on), mod_ssl `SSLUseStapling on` with `SSLStaplingCache '
        . 'shmcb`, mod_md `MDStapling on` (its store on), nginx `ssl_stapling on` (2 workers), '
        . 'and no stapling (Apache, and nginx for nginx\'s ratio). Once a server staples '
        . "(mod_ocspstaple: every one of the $n certificates, from its status page; the others: "
        . "the client's names, handshakes until all of them are stapled, as they fetch on "
        . 'demand or in the background) the client runs full handshakes (ECDSA, TLS 1.3, '
        . "status_request, no resumption) to m1..m$RELOAD_NAMES.bench, $RELOAD_RATE/s over "
        . "$RELOAD_THREADS connections; $P{reload_pre} s later the parent gets SIGUSR1 "
        . '(`apache2 -k graceful`; nginx: SIGHUP, `nginx -s reload`); the window ends '
        . "$P{reload_post} s after the new generation serves (Apache: the parent logged "
        . 'AH00489 again and a new child runs; nginx: a new worker runs). Percentiles and max: '
        . 'every handshake of the window, from connect() to the end of the handshake; a '
        . 'connection made while no process accepts waits in the listen backlog, so the time '
        . 'the restart kept the server from serving is in its latency. The client is paced '
        . 'and does not make up for handshakes it could not start, so handshakes/s (over the '
        . 'whole window) shows that time too. "Met" asks for p99.9 and max both within 2x of '
        . 'no stapling, no errors and every handshake stapled: a handshake held up by a '
        . 'responder during or after the restart shows in the max. Responder requests: during '
        . 'the restart (the signal until the new generation serves) and after it (until the '
        . 'window ends).';
    return { title => "Graceful restart: $n certificates", rows => \@rows,
             detail => join("\n", @detail) };
}
# ============================================================================
# Report

# One column per peer, then no stapling, the target and whether it is met.
# A row gives its columns in cols => { CFG => text } (a peer a figure does
# not apply to says why in its cell); or ours => mod_ocspstaple's text,
# none => no stapling's and others => the other peers' (the scale rows).
sub summary_table {
    my (@rows) = @_;
    my @t = ('| Figure | ' . join(' | ', map { $CFG_NAME{$_} } @SUMMARY_COLS) . ' | Target | Met? |',
             '|---|' . ('---|' x (@SUMMARY_COLS + 2)));
    for my $r (@rows) {
        my %c = $r->{cols} ? %{ $r->{cols} }
                           : (ocspstaple => $r->{ours}, none => $r->{none},
                              map { $_ => $r->{others} } grep { $_ ne 'ocspstaple' } @PEERS);
        push @t, join(' | ', "| $r->{figure}", (map { $c{$_} // '—' } @SUMMARY_COLS),
                      $r->{target}, "$r->{met} |");
    }
    return join("\n", @t) . "\n";
}

sub results_md {
    my ($table, $duration, $durations, $dirty, @sections) = @_;
    my @args = (($opt{quick} ? '--quick' : ()), ($FULL ? () : "--only $opt{only}"));
    my $cmd = !$ENV{MAKELEVEL} ? join(' ', 'bench/bench.pl', @args)
            : @args ? "make bench BENCH_ARGS='@args'" : 'make bench';
    my $load1 = (split ' ', BenchKit::slurp('/proc/loadavg'))[0];
    my $nginx = `$BenchKit::Nginx::NGINX -v 2>&1` =~ s/\s+\z//r;      # nginx -v writes to stderr
    my $md = "# mod_ocspstaple benchmark results\n\n";
    $md .= "**DIRTY TREE: these figures come from uncommitted changes (" . join(', ', @$dirty)
        . "); they are not the published ones.**\n\n" if @$dirty;
    $md .= "Generated by `$cmd` (bench/bench.pl); do not edit by hand.\n\n"
        . "| | |\n|---|---|\n"
        . "| Date | $machine{date} |\n"
        . "| Command | `$cmd` (run time " . sprintf('%.0f s', $duration) . ") |\n"
        . "| Scenarios | " . join(', ', map { sprintf('%s %.0f s', @$_) } @$durations) . " |\n"
        . "| Machine | $machine{nproc} × $machine{cpu}, $machine{mem} RAM, $machine{kernel} |\n"
        . "| Load average (1 min) | $machine{load0} at the start, $load1 at the end |\n"
        . "| Pinning | " . ($BenchKit::PIN ? 'servers on core 0, client on core 1 (taskset)'
                                              : 'none (fewer than 2 cores)') . " |\n"
        . "| Apache | $machine{apache} |\n"
        . "| nginx | $nginx |\n"
        . "| OpenSSL | $machine{openssl} |\n"
        . "| mod_ocspstaple | git $machine{commit}" . (@$dirty ? ' (**dirty**)' : '') . " |\n\n"
        . "## Summary\n\n$table\n"
        . "Each peer with its defaults unless a section's Method says otherwise. \"Met?\" is "
        . "mod_ocspstaple's; it says \"within noise\" when the spread of the paired rounds "
        . "(or windows) crosses the target.\n\n";
    $md .= "## $_->{title}\n\n$_->{detail}\n\n" for @sections;
    return $md;
}
