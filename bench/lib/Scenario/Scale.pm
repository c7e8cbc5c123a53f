package Scenario::Scale;
# 5. Scale: N certificates in N SNI virtual hosts (ECDSA, CA-signed staples),
#    for each N of scale_sizes (1,000 and 10,000), every peer and no
#    stapling, against bench/fastocsp (responses signed once, served from
#    memory: it measures the servers, not the responder).
#
# Per N, the servers of N vhosts start one after the other, each alone in
# its start (the ones started before idle meanwhile):
#  - mod_ocspstaple, cold (empty store): from `apache2 -k start` until the
#    first handshake is served (connections wait in the backlog meanwhile),
#    and until every certificate is stapling (the start-up summary
#    OCSPSTAPLE0012 says none is left without a response, or else the status
#    page says so); then a sweep (below); its memory; then stopped and
#    started again from its store (warm), and a sweep again;
#  - the peers, which staple on demand (mod_ssl: in the handshake; nginx:
#    each worker, after its first handshake of a certificate) or in the
#    background (mod_md's watchdog): until serving, then sweeps until one
#    finds every vhost stapled or stapled_bound() has passed since the
#    start; their memory; mod_md, which keeps its responses in a store too,
#    stopped and started again (warm) the same way, when its cold start
#    stapled them all. mod_ssl and nginx keep
#    responses in memory only: their restart is a cold start;
#  - no stapling (Apache; nginx for nginx's figures): until serving, one
#    sweep (the same handshakes as the others had: what serving them costs
#    is the server's), memory.
# A sweep: one handshake to each vhost (hsclient: names handed out in
# turn, -n N -N N), every staple verified (signature by the issuer, CertID
# of the served certificate); a vhost counts as stapled when its handshake
# carried a staple that verified.
# Memory: Pss_Anon of all the server's processes (heap and copied pages;
# the libraries' file pages left out, since their Pss depends on how many
# other servers are running) plus the shared mappings of its parent (shmcb
# caches, scoreboard), per certificate beyond the same server without
# stapling.
# Then a server of 1 certificate per configuration (answering every name,
# `*.bench`), and CPU rounds: server CPU per handshake with N certificates
# against 1 (paired rounds, all the servers side by side, the client's
# connections to each in turn, the names rotating through all N).
#
# The wildcard part (Scenario::Wildcard) runs after; run() returns the two
# sections. The rows and the detail are Scenario::ScaleReport's.
use strict;
use warnings;

use BenchKit;
use BenchRun;
use File::Path qw(make_path);
use Scenario::ScaleReport;
use Scenario::Wildcard;
use Time::HiRes qw(time);

# The servers of each size, in the order they start: mod_ocspstaple first
# (its cold start is the one with the goal), mod_md last: its watchdog goes
# on fetching in the background after its bound (10,000 take it minutes),
# and the responder's requests of a start are counted by time, so they
# would be counted for the servers started after it.
my @SCALE_CFGS = ('ocspstaple', 'none', 'modssl', 'nginx-none', 'nginx', 'md');

sub run { return (scenario_scale(), Scenario::Wildcard::run()) }

sub scenario_scale {
    my @sizes = @{ $P{scale_sizes} };
    note("scale: @sizes certificates in as many SNI virtual hosts, "
         . scalar(@SCALE_CFGS) . ' servers each, bench/fastocsp');
    my $resp = BenchKit::FastResponder->new(dir => $OUT, name => 'responder-scale',
                                            port => $PORT0, pki => $PKI);
    $resp->start;
    my @res = map { scale_one($resp, $_) } @sizes;
    $resp->stop;
    return Scenario::ScaleReport::results(@res);
}

# How long the peers get, from their start, for a sweep to find every vhost
# stapled: 30 s plus 4 ms per certificate (1,000: 34 s; 10,000: 70 s, of
# which loading the certificates takes 15-50 s): beyond the 60 s goal
# mod_ocspstaple has at 10,000, and bounded, so that a peer that never gets
# there (nginx: a worker that never saw a vhost's handshake never fetches
# for it) does not hold the run up.
sub stapled_bound { return 30 + 0.004 * $_[0] }

sub scale_one {
    my ($resp, $n) = @_;
    my %s = (n => $n, cfgs => [ @SCALE_CFGS ]);
    my %srv;
    for my $cfg (@SCALE_CFGS) {
        $srv{"$cfg/$n"} = $cfg eq 'ocspstaple' ? ours_cold_warm(\%s, $resp, $n)
                                               : peer_cold_warm(\%s, $resp, $n, $cfg);
        log_start($n, $cfg, $s{cold}{$cfg}, 'cold');
        log_start($n, $cfg, $s{warm}{$cfg}, 'warm') if $s{warm}{$cfg};
    }
    for my $cfg (@SCALE_CFGS) {
        my $h = $srv{"$cfg/1"} = server($cfg, "scale-$n-1-$cfg",
                                        vhosts => [ [ 'm1.bench|*.bench', 'm1' ] ]);
        start_served($h, 'm1.bench');
        warm_until_stapled($h, sni => 'm1.bench') unless $cfg =~ /none$/;
        scale_memory(\%s, "$cfg/1", $h);
    }
    $s{cpu} = scale_cpu(\%srv, $n);
    $_->stop for values %srv;
    return \%s;
}

sub log_start {
    my ($n, $cfg, $r, $how) = @_;
    my $sw = $r->{sweeps}[-1];
    note(sprintf('scale %d: %-10s %s start: serving after %.1f s, all stapled after %s; '
                 . 'last sweep at %.1f s: %d of %d stapled (verified), %d bad; %d responder '
                 . 'requests', $n, $cfg, $how, $r->{serving},
                 defined $r->{all} ? sprintf('%.1f s', $r->{all}) : 'never',
                 $sw->{at}, $sw->{names_stapled}, $n, $sw->{badstaple}, $r->{requests}));
}

# mod_ocspstaple with a store of its own: a cold start, a sweep, its memory,
# then a warm start from that store and a sweep. Returns the server, running.
sub ours_cold_warm {
    my ($s, $resp, $n) = @_;
    my $store = "$OUT/scale-$n-store";
    make_path($store);
    chown((getpwnam('www-data'))[2, 3], $store) if $> == 0;
    my $h = server('ocspstaple', "scale-$n-ocspstaple", vhosts => scale_vhosts($n),
                   extra => [ "OCSPStaplingStore $store" ]);
    $s->{cold}{ocspstaple} = ours_start($h, $resp, $n);
    scale_memory($s, "ocspstaple/$n", $h);
    $h->stop;
    $s->{warm}{ocspstaple} = ours_start($h, $resp, $n);
    return $h;
}

# Starts H (cold or warm, as its store is): seconds until it serves and
# until all N are stapling (by its own account), a sweep; the responder's
# requests and connections in that time; what OCSPSTAPLE0012 said.
sub ours_start {
    my ($h, $resp, $n) = @_;
    my $offset = -s $h->errorlog // 0;
    my $t0 = time;
    my %r = (serving => start_served($h, 'm1.bench'));
    $r{all} = wait_all_stapled($h, $n, $offset) ? time - $t0 : undef;
    $r{sweeps} = [ sweep($h, $n, $t0) ];
    ($r{summary}) = $h->log_since($offset) =~ /OCSPSTAPLE0012: ([^\n]*)/;
    $r{lost} = () = $h->log_since($offset) =~ /OCSPSTAPLE0033/g;
    return { %r, responder_use($resp, $t0) };
}

# A peer (or no stapling) of N vhosts: a cold start with its sweeps, its
# memory; mod_md, which keeps responses in its store, a warm start too,
# when its cold start stapled them all (else its store is partial, and its
# warm start would be a cold start continued: minutes at 10,000).
# Returns the server, running.
sub peer_cold_warm {
    my ($s, $resp, $n, $cfg) = @_;
    my $h = server($cfg, "scale-$n-$cfg", vhosts => scale_vhosts($n));
    $s->{cold}{$cfg} = peer_start($h, $resp, $n, $cfg);
    scale_memory($s, "$cfg/$n", $h);
    if ($cfg eq 'md' && defined $s->{cold}{$cfg}{all}) {
        $h->stop;
        $s->{warm}{$cfg} = peer_start($h, $resp, $n, $cfg);
    }
    return $h;
}

# Starts H: seconds until it serves, then sweeps until one finds every
# vhost stapled or stapled_bound() has passed (no stapling: one sweep);
# all: when the sweep that found them all ended.
sub peer_start {
    my ($h, $resp, $n, $cfg) = @_;
    my $t0 = time;
    my %r = (serving => start_served($h, 'm1.bench'));
    my $staples = $cfg !~ /none$/;
    do {
        push @{ $r{sweeps} }, sweep($h, $n, $t0);
    } while ($staples && $r{sweeps}[-1]{names_stapled} < $n && time - $t0 < stapled_bound($n));
    $r{all} = $r{sweeps}[-1]{at} if $staples && $r{sweeps}[-1]{names_stapled} == $n;
    return { %r, responder_use($resp, $t0) };
}

# The responder's requests and the connections that carried them, since T0.
sub responder_use {
    my ($resp, $t0) = @_;
    return (requests => scalar(() = $resp->times($t0, time + 1)),
            connections => $resp->connections($t0, time + 1));
}

# One handshake to each vhost of H (m1..mN.bench), every staple verified:
# hsclient's totals, the vhosts whose staple verified (from its raw lines,
# a name each), and when the sweep ended, in seconds since T0.
sub sweep {
    my ($h, $n, $t0) = @_;
    my $raw = $h->dir . '.sweep';
    my $r = BenchKit::client(port => $h->port, sni => 'm%d.bench', names => $n, count => $n,
                             threads => 4, key => 'ecdsa', cafile => "$PKI/intermediate.crt",
                             raw => $raw)->{all};
    # "WANT LATENCY START PORT NAME VERIFIED" per handshake.
    my %ok = map { (split ' ')[4] => 1 } grep { (split ' ')[5] } split /\n/, BenchKit::slurp($raw);
    return { %$r, names_stapled => scalar keys %ok, at => time - $t0 };
}

sub scale_memory {
    my ($s, $k, $h) = @_;
    my @pids = $h->pids;
    $s->{mem}{$k} = $h->memory;
    $s->{shm}{$k} = shared_bytes($pids[0]);
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

# Paired rounds: N certificates / 1 certificate, every configuration; in
# each round the connections go to all the servers in turn, every name
# (m1..mN.bench) to each of them (order reversed every other round).
# Returns per configuration the ratios of the undisturbed rounds, the µs
# per handshake, and the handshakes and staples of all rounds.
sub scale_cpu {
    my ($srv, $n) = @_;
    my @keys = map { ("$_/1", "$_/$n") } @SCALE_CFGS;
    my (@rounds, %seen);
    for my $pass (1 .. $P{scale_passes}) {
        my @order = $pass % 2 ? @keys : reverse @keys;
        my %before = map { $_ => $srv->{$_}->cpu } @order;
        my $core0 = BenchKit::core_time(0);
        my $r = BenchKit::client(port => join(',', map { $srv->{$_}->port } @order),
                                 key => 'ecdsa', secs => $P{scale_secs}, threads => $THREADS,
                                 sni => 'm%d.bench', names => $n);
        my %ns = map { $_ => $srv->{$_}->cpu->{ns} - $before{$_}{ns} } @order;
        my %us;
        for my $k (@order) {
            my $got = BenchKit::port_result($r, $srv->{$k}->port);
            $us{$k} = $ns{$k} / 1000 / ($got->{handshakes} || 1);
            $seen{$k}{$_} += $got->{$_} // 0 for qw(handshakes stapled);
        }
        $rounds[$pass] = { us => \%us, foreign => foreign_share($core0, values %ns) };
    }
    my @passes = undisturbed([ 1 .. $P{scale_passes} ], sub { $rounds[$_[0]]{foreign} });
    my %cpu = (kept => scalar @passes, seen => \%seen,
               foreign => [ map { $rounds[$_]{foreign} } 1 .. $P{scale_passes} ]);
    for my $p (@passes) {
        my $us = $rounds[$p]{us};
        push @{ $cpu{ratio}{$_} }, $us->{"$_/$n"} / $us->{"$_/1"} for @SCALE_CFGS;
        push @{ $cpu{us}{$_} }, $us->{$_} for @keys;
    }
    return \%cpu;
}

1;
