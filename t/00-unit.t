# Unit tests of ocsp_fetch.c (request building; verification of saved good,
# revoked, wrong-signer, wrong-serial, expired... responses), built by
# `make unit`. Their TAP is passed straight to prove, so every case counts.
# Never talks to httpd (01-first.t must make the first handshake).
use strict;
use warnings FATAL => 'all';

my $root = $ENV{OCSP_ROOT} or die "OCSP_ROOT is not set: run the suite with t/run-tests.sh\n";
my $pki  = $ENV{OCSP_PKI}  or die "OCSP_PKI is not set\n";
# OCSP_UNIT_DIR: where the binaries are (make test-asan: its sanitizer build);
# OCSP_UNIT_WRAPPER: a command line to run them under (make valgrind).
my $bin  = ($ENV{OCSP_UNIT_DIR} || "$root/t/unit") . "/test_ocsp_fetch";
my @wrap = split ' ', ($ENV{OCSP_UNIT_WRAPPER} || '');
my $fix  = "$root/t/logs/unit-fixtures";

sub bail { print "1..1\nnot ok 1 - $_[0]\n"; exit 0 }

-x $bin or bail("$bin missing: run 'make unit' (make test builds it)");
system("$root/t/unit/mkfixtures.sh", $pki, $fix) == 0
    or bail("t/unit/mkfixtures.sh $pki $fix failed: $?");
exec @wrap, $bin, $fix, $pki, $ENV{OCSP_PORT} or bail("exec @wrap $bin: $!");
