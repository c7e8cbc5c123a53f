# Where the module is off it declines the certificate, so mod_ssl's own
# stapling (SSLUseStapling on, as an admin may keep on some vhosts) still
# works there: the module does not break the alternatives it replaces.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 4;

my $r = handshake(vhost => 'ocsp_sni', servername => 'modssl.test');
is($r->{peer_serial}, cert_serial('offvhost'), 'presents its certificate');
ok($r->{stapled}, 'stapled by mod_ssl') or diag(OCSPTest::describe($r));
is($r->{cert_status}, 'good', 'cert status');
is($r->{serial}, $r->{peer_serial}, 'staple serial == certificate serial');
