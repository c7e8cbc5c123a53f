# "OCSPUseStapling off" in one vhost leaves it unstapled (and its certificate
# untouched, so mod_md or mod_ssl could take it), while its name-based
# neighbour with "on" on the same port still staples.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 6;

my $off = handshake(vhost => 'ocsp_sni', servername => 'offvhost.test');
is($off->{peer_serial}, cert_serial('offvhost'), 'off vhost presents its certificate');
is($off->{verify}, '0', 'off vhost: TLS works, chain verifies');
ok(!$off->{stapled}, 'off vhost: no staple') or diag(OCSPTest::describe($off));
ok(!error_log_lines(qr/OCSPSTAPLE\d+.*CN=offvhost\.test/),
   'off vhost: the module left its certificate alone');

my $on = handshake(vhost => 'ocsp_sni', servername => 'sni2.test');
ok($on->{stapled}, 'on vhost beside it: stapled') or diag(OCSPTest::describe($on));
is($on->{serial}, cert_serial('sni2'), 'on vhost: staple for its certificate');
