package Scenario::Scale;
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
#
# Then, in the same scenario, one wildcard certificate in as many virtual
# hosts (scenario_wildcard, below). run() returns the two sections: scale,
# then wildcard.
use strict;
use warnings;

use BenchKit;
use BenchRun;
use File::Path qw(make_path);
use Time::HiRes qw(time sleep);

# The other peers' cells in the scale rows: the scenario runs mod_ocspstaple
# and no stapling only (10,000 vhosts per peer would not fit the run's 20
# minutes); the reload scenario has every peer at scale_certs vhosts.
use constant SCALE_ONLY => 'not run at this size (see Scale; Reload has it at 1000 vhosts)';

sub run { return (scenario_scale(), scenario_wildcard()) }

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

1;
