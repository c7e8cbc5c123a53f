package Scenario::Wildcard;
# 5b. Scale: one wildcard certificate (*.w.bench) served by N virtual hosts
# (w1.w.bench .. wN.w.bench), N = each of scale_sizes: the start time and
# the parent's peak memory (VmHWM) must grow linearly with N (one entry,
# its list of vhosts appended to), not quadratically. The same without
# stapling, for what Apache itself does. Run by Scenario::Scale, after it.
use strict;
use warnings;

use BenchKit;
use BenchRun;

sub run {
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
        others => 'not measured: a check of mod_ocspstaple\'s own start-up (the vhosts it '
                  . 'keeps per certificate); the peers keep nothing per vhost',
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
