# Name-based (SNI) vhosts on one port with different certificates each staple
# the response for their own certificate. rsa.test reuses ocsp_main's
# certificate: one certificate in two vhosts works in both.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

my @cases = (['rsa.test', 'rsa'], ['sni2.test', 'sni2']);
plan tests => 4 * @cases;

for my $c (@cases) {
    my ($sni, $leaf) = @$c;
    my $r = handshake(vhost => 'ocsp_sni', servername => $sni);
    is($r->{peer_serial}, cert_serial($leaf), "$sni: server presents the $leaf certificate");
    ok($r->{stapled}, "$sni: stapled") or diag(OCSPTest::describe($r));
    is($r->{cert_status}, 'good', "$sni: cert status");
    is($r->{serial}, $r->{peer_serial}, "$sni: staple serial == certificate serial");
}
