package Scenario::Sick;
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

use strict;
use warnings;

use BenchKit;
use BenchRun;
use Time::HiRes qw(time sleep);
use Time::Local qw(timelocal);

my $SICK_DELAY = 5;            # seconds the sick responder takes to answer
my $SICK_RATE = 400;           # handshakes per second in the latency windows
# What makes a renewal due 5 s after a fetch of a 60 s response, for the
# peers that have a setting for it; mod_ssl gets its cache timeout instead
# (ssl_cache_timeout => 5), nginx has none.
my %SICK_SETTING = (ocspstaple => 'OCSPStaplingRenewWindow 55s',
                    md => 'MDStaplingRenewWindow 55s');

sub run {
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

1;
