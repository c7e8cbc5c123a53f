# With several OCSP URLs in the certificate, a dead first one does not stop
# stapling: the next URL is tried and its answer stapled.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 4;

my $r = handshake(vhost => 'ocsp_cases', servername => 'twourls.test');
is($r->{peer_serial}, cert_serial('twourls'), 'server presents its certificate');
ok($r->{stapled}, 'stapled') or diag(OCSPTest::describe($r));
is($r->{cert_status}, 'good', 'cert status');
ok(wait_for_log(qr{OCSPSTAPLE0002\b.*CN=twourls\.test.*update ok from http://127\.0\.0\.1:$ENV{OCSP_PORT}/good}),
   'update ok from the second URL');
