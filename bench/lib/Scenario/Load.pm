package Scenario::Load;
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

use strict;
use warnings;

use BenchKit;
use BenchRun;
use Time::HiRes qw(time sleep);

# What makes a renewal due every 5-10 s (60 s responses), for the peers that
# have a setting for it; mod_ssl gets its cache timeout instead
# (ssl_cache_timeout => 5), nginx has none.
my %LOAD_SETTING = (ocspstaple => 'OCSPStaplingRenewWindow 50s',
                    md => 'MDStaplingRenewWindow 50s');

sub run {
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

1;
