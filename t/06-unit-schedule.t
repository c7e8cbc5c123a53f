# Unit tests of the per-process schedule (ocspstaple_schedule.c, a heap on
# wake_at): due entries come out earliest first, moves keep one place each.
# Built by `make unit`; their TAP goes straight to prove.
use strict;
use warnings FATAL => 'all';

my $root = $ENV{OCSP_ROOT} or die "OCSP_ROOT is not set: run the suite with t/run-tests.sh\n";
# OCSP_UNIT_DIR, OCSP_UNIT_WRAPPER: as in t/00-unit.t.
my $bin  = ($ENV{OCSP_UNIT_DIR} || "$root/t/unit") . "/test_schedule";
my @wrap = split ' ', ($ENV{OCSP_UNIT_WRAPPER} || '');

-x $bin or do { print "1..1\nnot ok 1 - $bin missing: run 'make unit'\n"; exit 0 };
exec @wrap, $bin or do { print "1..1\nnot ok 1 - exec $bin: $!\n"; exit 0 };
