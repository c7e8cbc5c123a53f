# A good, verified response is stapled for the RSA and the ECDSA certificate
# of one vhost, over TLS 1.2 and TLS 1.3, and each staple is for the
# certificate actually served.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
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
    is($r->{protocol}, "TLSv$opt{tls}", "$name: protocol");
    is($r->{peer_serial}, cert_serial($leaf), "$name: server presents the $leaf certificate");
    ok($r->{stapled}, "$name: stapled") or diag(OCSPTest::describe($r));
    is($r->{resp_status}, 'successful', "$name: response status");
    is($r->{cert_status}, 'good', "$name: cert status");
    is($r->{serial}, $r->{peer_serial}, "$name: staple serial == certificate serial");
}
