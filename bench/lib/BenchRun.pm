package BenchRun;
# What bench/bench.pl's scenarios (bench/lib/Scenario/*.pm) share: the
# run-wide state, the peers, and the helpers more than one scenario uses
# (statistics, formatting, servers, warming up, start-up timing).
#
# The run-wide state is a handful of package variables, exported with the
# helpers: bench.pl imports them (`use BenchRun;`), sets each once before
# the first scenario runs (the options, the sizes %P, bench/out, the PKI,
# the responders' first port, the AIA ports, the run's start), and nothing
# changes them afterwards; a scenario module reads them by the same names
# (`use BenchRun;` too). No context object to pass around: there is only
# ever one run per process.
#
#   %OPT    the options: quick, sequential, only
#   %P      the sizes of the run (bench.pl: full or --quick)
#   $OUT    bench/out, where everything a run makes goes
#   $PKI    the PKI directory (scripts/mkpki.sh plus the bench's leaves)
#   $PORT0  the port of the responder named by the PKI's AIA URLs
#   %AIA    leaf name => port of its own responder (sick, load)
#   $T0     the run's start (note() prints the seconds since)
use strict;
use warnings;

use BenchKit;
use Exporter qw(import);
use JSON::PP ();
use Time::HiRes qw(time sleep);

our (%OPT, %P, $OUT, $PKI, $PORT0, %AIA, $T0);

# The stapling configurations compared (the peers), in the order of the
# tables' columns, and the baselines: no stapling on Apache (mod_ssl alone)
# and on nginx (ssl_stapling off), each peer's CPU ratio taken to its own.
our @PEERS = qw(ocspstaple modssl md nginx);
our %CFG_NAME = (none => 'no stapling', modssl => 'mod_ssl SSLUseStapling',
                 md => 'mod_md MDStapling', nginx => 'nginx ssl_stapling',
                 'nginx-none' => 'nginx, no stapling', ocspstaple => 'mod_ocspstaple');
my %BASELINE = (nginx => 'nginx-none', 'nginx-none' => 'nginx-none');
sub baseline_of { $BASELINE{ $_[0] } // 'none' }
our $THREADS = 8;              # client connections at once in CPU rounds
my $DISTURBED = 0.2;           # a CPU round with more of core 0 going elsewhere is left out

our @EXPORT = (qw(%OPT %P $OUT $PKI $PORT0 %AIA $T0 @PEERS %CFG_NAME $THREADS),
               qw(baseline_of note median min_max pct mb ms met_max yn ratio_str pct_set
                  undisturbed disturbed_note foreign_share server warm_until_stapled
                  start_served wait_all_stapled scale_vhosts));

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

sub mb { sprintf('%.0f MB', $_[0] / 1024) }    # of KB

sub ms { sprintf($_[0] >= 100 ? '%.0f' : $_[0] >= 10 ? '%.1f' : '%.2f', $_[0]) }

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

# n, p50, p99, p99.9 and max of a list of latencies.
sub pct_set {
    my (@v) = @_;
    return { n => scalar @v, map { $_->[0] => pct($_->[1], @v) }
             [p50 => 0.5], [p99 => 0.99], [p999 => 0.999], [max => 1] };
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

1;
