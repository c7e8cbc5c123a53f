# The fuzz harnesses (fuzz/fuzz_*.c) built as plain programs by `make unit`
# (t/unit/replay_fuzz_*) replay the committed seed corpus and every
# regression input once: no crash, no harness assertion (under ASAN in
# `make test-asan`, under valgrind in `make valgrind`). The seed responses
# must also still verify the way fuzz/make-corpus.sh made them, or the
# fuzzer would start from inputs that stop early.
use strict;
use warnings FATAL => 'all';
use Test::More;

my $root = $ENV{OCSP_ROOT} or die "OCSP_ROOT is not set: run the suite with t/run-tests.sh\n";
my $dir  = $ENV{OCSP_UNIT_DIR} || "$root/t/unit";
my @wrap = split ' ', ($ENV{OCSP_UNIT_WRAPPER} || '');

# What each seed response must come to, verified at FUZZ_NOW.
my %verify = (
    'good'              => qr/^verified good$/,
    'good-certs'        => qr/^verified good$/,
    'good-keyid'        => qr/^verified good$/,
    'good-nonce'        => qr/^verified good$/,
    'nonext'            => qr/^verified good$/,
    'nonext-old'        => qr/^refused: no nextUpdate and older than the maximum age/,
    'delegated'         => qr/^verified good$/,
    'delegated-ec'      => qr/^verified good$/,
    'revoked'           => qr/^verified revoked$/,
    'unknown'           => qr/^verified unknown$/,
    'expired'           => qr/^refused: expired/,
    'badsig'            => qr/^refused: signature not made/,
    'delegated-nocert'  => qr/^refused: signature not made/,
    'delegated-noeku'   => qr/^refused: signature not made.*ocspsigning usage/i,
    'wrongsigner'       => qr/^refused: signature not made/,
    'wrongserial'       => qr/^refused: no response for this certificate/,
    'good-sha256id'     => qr/^refused: no response for this certificate/,
    'multi'             => qr/^refused: 2 single responses/,
    'nobody'            => qr/^refused: not a basic OCSP response/,
    'status4'           => qr/^refused: invalid OCSP response status 4/,
    'malformedrequest'  => qr/^responder error: .*malformedRequest/,
    'internalerror'     => qr/^responder error: .*internalError/,
    'trylater'          => qr/^responder error: .*tryLater/,
    'sigrequired'       => qr/^responder error: .*sigRequired/,
    'unauthorized'      => qr/^responder error: .*unauthorized/,
);

for my $t (qw(fuzz_verify fuzz_record fuzz_cert)) {
    my $bin = "$dir/replay_$t";
    ok(-x $bin, "$bin built") or next;
    my @inputs = grep { -d } ("$root/fuzz/corpus/$t", "$root/fuzz/regressions/$t");
    open my $out, '-|', @wrap, $bin, @inputs or die "run $bin: $!";
    my (%outcome, $n);
    while (my $line = <$out>) {
        next unless $line =~ m{^ok \d+ - (\S+): (.*)$};
        my ($path, $what) = ($1, $2);
        $outcome{join '/', (split m{/}, $path)[-2, -1]} = $what;
        $n++;
    }
    close $out;
    is($?, 0, "$t: every input replayed without a failure (exit status)");
    my @seeds = grep { !/^\./ && !/^README/ } map { s{.*/}{}r } glob("$root/fuzz/corpus/$t/*");
    is(scalar(grep { $outcome{"$t/$_"} } @seeds), scalar(@seeds),
       "$t: all " . scalar(@seeds) . " seeds replayed");
    if ($t eq 'fuzz_record') {
        is(join(' ', grep { ($outcome{"$t/$_"} // '') !~ /^decoded/ } @seeds), '',
           'every seed record decodes');
    }
    if ($t eq 'fuzz_cert') {
        like($outcome{'fuzz_cert/chain.pem'} // '', qr/^parsed: .*the fixed response verifies/,
             'chain.pem parses and the fixed response verifies against it');
    }
    next unless $t eq 'fuzz_verify';
    for my $name (sort keys %verify) {
        like($outcome{"fuzz_verify/$name.der"} // '(not replayed)', $verify{$name},
             "seed $name.der");
    }
    cmp_ok(scalar(grep { /^verified / } map { $outcome{"fuzz_verify/$_"} // '' } @seeds),
           '>=', 9, 'at least nine seed responses verify');
}
done_testing();
