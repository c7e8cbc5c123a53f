# A correctly signed response for ANOTHER certificate is rejected: never
# stapled, and an error names the certificate, the responder and why.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 4;

my $r = handshake(vhost => 'ocsp_cases', servername => 'wrongserial.test');
is($r->{peer_serial}, cert_serial('wrongserial'), 'server presents its certificate');
ok(!$r->{stapled}, 'no staple') or diag(OCSPTest::describe($r));
my $line = wait_for_log(qr/\[ocspstaple:error\].*OCSPSTAPLE0003\b.*CN=wrongserial\.test/);
ok($line, 'error naming CN=wrongserial.test');
like($line // '', qr{update failed: http://127\.0\.0\.1:\d+/wrongserial: .*(?i:no response for this certificate|serial|cert ?id)},
     'the error names the responder and the missing CertID');
