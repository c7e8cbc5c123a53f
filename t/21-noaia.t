# A certificate without an OCSP URL (Let's Encrypt since 2025) is a quiet
# no-op: TLS works, nothing is stapled, one info line, no error.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 6;

my $r = handshake(vhost => 'ocsp_cases', servername => 'noaia.test');
is($r->{peer_serial}, cert_serial('noaia'), 'server presents the no-AIA certificate');
is($r->{verify}, '0', 'TLS works, chain verifies');
ok(!$r->{stapled}, 'no staple') or diag(OCSPTest::describe($r));
ok($r->{output} =~ /^OCSP response: no response sent/m, 's_client: "no response sent"');
my @info = error_log_lines(qr/\[ocspstaple:info\].*OCSPSTAPLE0001\b.*CN=noaia\.test/);
is(scalar @info, 1, 'logged once at info');
my @bad = error_log_lines(qr/\[[\w:]*(?:warn|error|crit|alert|emerg)\].*noaia/);
ok(!@bad, 'no warning or error about it') or diag(@bad);
