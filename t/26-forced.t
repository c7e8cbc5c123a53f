# OCSPStaplingForceURL overrides the certificate's own responder URL (here
# one that would answer for the wrong certificate).
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 5;

my $r = handshake(vhost => 'ocsp_cases', servername => 'forced.test');
is($r->{peer_serial}, cert_serial('forced'), 'server presents its certificate');
ok($r->{stapled}, 'stapled') or diag(OCSPTest::describe($r));
is($r->{cert_status}, 'good', 'cert status');
ok(wait_for_log(qr{OCSPSTAPLE0002\b.*CN=forced\.test.*update ok from http://127\.0\.0\.1:$ENV{OCSP_PORT}/good}),
   'update ok from the forced URL');
ok(!error_log_lines(qr{CN=forced\.test.*/wrongserial}), 'the certificate\'s own URL was never used');
