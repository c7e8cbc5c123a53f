# A good, verified response is stapled for the RSA and the ECDSA certificate
# of one vhost, over TLS 1.2 and TLS 1.3, and each staple is for the
# certificate actually served.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use OCSPTest;

my @cases = (
    # name, expected leaf, handshake options
    ['RSA, TLS 1.2',   'rsa',   tls => '1.2', sigalgs => 'RSA-PSS+SHA256:RSA+SHA256'],
    ['RSA, TLS 1.3',   'rsa',   tls => '1.3', sigalgs => 'RSA-PSS+SHA256'],
    ['ECDSA, TLS 1.2', 'ecdsa', tls => '1.2', sigalgs => 'ECDSA+SHA256',
                                cipher => 'ECDHE-ECDSA-AES128-GCM-SHA256'],
    ['ECDSA, TLS 1.3', 'ecdsa', tls => '1.3', sigalgs => 'ECDSA+SHA256'],
);

plan tests => 6 * @cases;

for my $c (@cases) {
    my ($name, $leaf, %opt) = @$c;
    my $r = handshake(vhost => 'ocsp_main', servername => 'rsa.test', %opt);
    ok(t_cmp($r->{protocol}, "TLSv$opt{tls}", "$name: protocol"));
    ok(t_cmp($r->{peer_serial}, cert_serial($leaf), "$name: server presents the $leaf certificate"));
    ok($r->{stapled}, "$name: stapled") or diag(OCSPTest::describe($r));
    ok(t_cmp($r->{resp_status}, 'successful', "$name: response status"));
    ok(t_cmp($r->{cert_status}, 'good', "$name: cert status"));
    ok(t_cmp($r->{serial}, $r->{peer_serial}, "$name: staple serial == certificate serial"));
}
