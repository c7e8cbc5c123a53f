# A response signed by a key the issuer never authorised is rejected: never
# stapled, and an error names the certificate, the responder and why.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 4;

my $r = handshake(vhost => 'ocsp_cases', servername => 'wrongsigner.test');
is($r->{peer_serial}, cert_serial('wrongsigner'), 'server presents its certificate');
ok(!$r->{stapled}, 'no staple') or diag(OCSPTest::describe($r));
my $line = wait_for_log(qr/\[ocspstaple:error\].*OCSPSTAPLE0003\b.*CN=wrongsigner\.test/);
ok($line, 'error naming CN=wrongsigner.test');
like($line // '', qr{update failed: http://127\.0\.0\.1:\d+/wrongsigner: .*(?i:sign|verif)},
     'the error names the responder and a signature reason');
