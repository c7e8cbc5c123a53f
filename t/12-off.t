# "OCSPUseStapling off" in one vhost leaves it unstapled (and its certificate
# untouched, so mod_md or mod_ssl could take it), while its name-based
# neighbour with "on" on the same port still staples. Not setting the
# directive at all means off.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 9;

for my $sni ('offvhost.test', 'defaultoff.test') {
    my $r = handshake(vhost => 'ocsp_sni', servername => $sni);
    is($r->{peer_serial}, cert_serial('offvhost'), "$sni: presents its certificate");
    is($r->{verify}, '0', "$sni: TLS works, chain verifies");
    ok(!$r->{stapled}, "$sni: no staple") or diag(OCSPTest::describe($r));
}
ok(!error_log_lines(qr/OCSPSTAPLE\d+.*CN=offvhost\.test/),
   'the module left the certificate of the off vhosts alone');

my $on = handshake(vhost => 'ocsp_sni', servername => 'sni2.test');
ok($on->{stapled}, 'on vhost beside them: stapled') or diag(OCSPTest::describe($on));
ok($on->{serial} && $on->{serial} eq cert_serial('sni2'), 'on vhost: staple for its certificate')
    or diag(OCSPTest::describe($on));
