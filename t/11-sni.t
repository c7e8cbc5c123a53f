# Name-based (SNI) vhosts on one port with different certificates each staple
# the response for their own certificate. rsa.test reuses ocsp_main's
# certificate: one certificate in two vhosts works in both.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use OCSPTest;

my @cases = (['rsa.test', 'rsa'], ['sni2.test', 'sni2']);
plan tests => 4 * @cases;

for my $c (@cases) {
    my ($sni, $leaf) = @$c;
    my $r = handshake(vhost => 'ocsp_sni', servername => $sni);
    ok(t_cmp($r->{peer_serial}, cert_serial($leaf), "$sni: server presents the $leaf certificate"));
    ok($r->{stapled}, "$sni: stapled") or diag(OCSPTest::describe($r));
    ok(t_cmp($r->{cert_status}, 'good', "$sni: cert status"));
    ok(t_cmp($r->{serial}, $r->{peer_serial}, "$sni: staple serial == certificate serial"));
}
