package Scenario::Cold;
# 4. Cold start: the first 100 handshakes after the server's start.
#
# No store, nothing cached, every peer with its defaults: mod_ocspstaple
# fetches while starting; mod_ssl in the first handshake that asks; mod_md's
# watchdog in the background once a child runs; nginx in the background
# after each worker's first handshake. The client starts the moment the
# port accepts (retrying refused connections).

use strict;
use warnings;

use BenchKit;
use BenchRun;
use Time::HiRes qw(time sleep);

sub run {
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

1;
