# Unit tests of the on-disk store (ocsp_store.c): planted symlinks, FIFOs,
# directories and sockets are refused without blocking, writes are atomic
# and 0600, leftovers of interrupted writes are removed, the store directory
# is made with the right modes (and owner, as root). Built by `make unit`;
# their TAP goes straight to prove.
use strict;
use warnings FATAL => 'all';

my $root = $ENV{OCSP_ROOT} or die "OCSP_ROOT is not set: run the suite with t/run-tests.sh\n";
# OCSP_UNIT_DIR, OCSP_UNIT_WRAPPER: as in t/00-unit.t.
my $bin  = ($ENV{OCSP_UNIT_DIR} || "$root/t/unit") . "/test_ocsp_store";
my @wrap = split ' ', ($ENV{OCSP_UNIT_WRAPPER} || '');

-x $bin or do { print "1..1\nnot ok 1 - $bin missing: run 'make unit'\n"; exit 0 };
exec @wrap, $bin or do { print "1..1\nnot ok 1 - exec $bin: $!\n"; exit 0 };
