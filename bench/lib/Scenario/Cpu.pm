package Scenario::Cpu;
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

use strict;
use warnings;

use BenchKit;
use BenchRun;
use Time::HiRes qw(time sleep);

# The servers: no stapling (Apache and nginx) and every peer.
my @CPU_CFGS = ('none', 'nginx-none', @PEERS);

sub run {
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
            push @rounds, $OPT{sequential} ? map { cpu_round(\%srv, $c, $pass, $_) } @order
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
    my $how = $OPT{sequential}
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

1;
