# Unit tests of ocsp_fetch.c (request building; verification of saved good,
# revoked, wrong-signer, wrong-serial, expired... responses), built by
# `make unit`. Their TAP is passed straight to prove, so every case counts.
# Never talks to httpd (01-first.t must make the first handshake).
use strict;
use warnings FATAL => 'all';

my $root = $ENV{OCSP_ROOT} or die "OCSP_ROOT is not set: run the suite with t/run-tests.sh\n";
my $pki  = $ENV{OCSP_PKI}  or die "OCSP_PKI is not set\n";
my $bin  = "$root/t/unit/test_ocsp_fetch";
my $fix  = "$root/t/logs/unit-fixtures";

sub bail { print "1..1\nnot ok 1 - $_[0]\n"; exit 0 }

-x $bin or bail("$bin missing: run 'make unit' (make test builds it)");
system("$root/t/unit/mkfixtures.sh", $pki, $fix) == 0
    or bail("t/unit/mkfixtures.sh $pki $fix failed: $?");
exec $bin, $fix, $pki, $ENV{OCSP_PORT} or bail("exec $bin: $!");
