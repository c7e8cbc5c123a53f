# The very first handshake after httpd starts already carries a good staple:
# the module fetches at startup, so no visitor ever sees an unstapled (or
# blocked) first connection. Runs first among the handshake tests (00-unit.t
# never talks to httpd); nothing may handshake with ocsp_main before it.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

plan tests => 7;

my $port = vhost_port('ocsp_main');
# mod_ssl logs every TLS connection at info (AH01964): there was none yet.
is(scalar error_log_lines(qr/AH01964: .*\(server [^)]*:$port\)/), 0,
   'no earlier TLS connection to ocsp_main');

# Fetched at startup: the update line is already there, no waiting.
ok(scalar error_log_lines(qr/OCSPSTAPLE0002\b.*CN=rsa\.test.*update ok/),
   'startup logged the update of CN=rsa.test');

# rsa.test's URL is /good (background retries of other certificates use
# other paths, 00-unit.t is done). Counted in the responder's log of
# requests READ (OCSP_RESPONDER_RECEIVED): it writes a request there before
# it answers, so a fetch the handshake waited for is there before the
# handshake ends and the check below cannot miss it. (Its log of requests
# answered is written after the answer has gone out: a fetch whose answer
# had just been sent could still be missing there.) A fetch the handshake
# only set off, without waiting for it, could come any time later: no
# bounded wait rules that out, and it is not what this test is about.
my $before = responder_received('good');
my $r = handshake(vhost => 'ocsp_main', servername => 'rsa.test', sigalgs => 'RSA-PSS+SHA256:RSA+SHA256');
ok($r->{stapled}, 'first handshake is stapled') or diag(OCSPTest::describe($r));
is($r->{resp_status}, 'successful', 'response status');
is($r->{cert_status}, 'good', 'cert status');
is($r->{serial}, cert_serial('rsa'), 'staple is for the RSA certificate');
# The handshake itself must not have gone to the responder.
is(responder_received('good'), $before, 'no OCSP request during the handshake');
