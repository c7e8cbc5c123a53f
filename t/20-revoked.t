# A REVOKED answer is the CA's signed truth: it is stapled (clients must see
# it) and logged at crit naming the certificate, so the admin notices.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 5;

my $r = handshake(vhost => 'ocsp_cases', servername => 'revoked.test');
is($r->{peer_serial}, cert_serial('revoked'), 'server presents the revoked certificate');
ok($r->{stapled}, 'stapled') or diag(OCSPTest::describe($r));
is($r->{cert_status}, 'revoked', 'cert status');
is($r->{serial}, $r->{peer_serial}, 'staple serial == certificate serial');
ok(wait_for_log(qr/\[ocspstaple:crit\].*OCSPSTAPLE0004\b.*CN=revoked\.test.*REVOKED/),
   'crit line naming CN=revoked.test');
