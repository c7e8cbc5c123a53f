# A response signed by a delegated OCSP responder (a certificate the issuer
# gave id-kp-OCSPSigning) is valid and stapled.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 4;

my $r = handshake(vhost => 'ocsp_cases', servername => 'delegated.test');
is($r->{peer_serial}, cert_serial('delegated'), 'server presents its certificate');
ok($r->{stapled}, 'stapled') or diag(OCSPTest::describe($r));
is($r->{cert_status}, 'good', 'cert status');
is($r->{serial}, $r->{peer_serial}, 'staple serial == certificate serial');
