# Clients nobody here wrote check the staple. Every other stapling verdict
# in the suite comes from `openssl s_client` (or our own OpenSSL-based
# code); here the verdicts come from:
#   - gnutls-cli (GnuTLS: another TLS library, another OCSP parser and
#     verifier, and it enforces Must-Staple, RFC 7633, on its own), and
#   - curl --cert-status (Debian's curl is built on OpenSSL, but its OCSP
#     check is curl's code: it fails with exit 91 when the staple is missing,
#     unverifiable, not good or not for the certificate), and
#   - NSS (Firefox's TLS and certificate library) through its test client
#     tstclnt (Debian ships it in libnss3-tools, as /usr/bin/tstclnt), run as
#     `tstclnt -T -F -O -M 1`: it asks for a status, caches what was stapled
#     as OCSP data for the server's certificate (NSS accepts a staple only
#     if it is correctly signed, current and about that certificate) and
#     verifies the certificate with revocation checking from that alone
#     (network fetching forbidden). Its exit code is the verdict: 0 good,
#     2 no usable revocation data, 3 revoked. (tstclnt does not enforce
#     Must-Staple: Firefox does that above NSS.)
# One private server (loopback, own PKI and responder) with one vhost per
# case:
#   1. rsa.test        good staple (gnutls over TLS 1.3 and TLS 1.2, curl)
#   2. ecdsa.test      good staple, ECDSA leaf
#   3. revoked.test    revoked staple: both clients refuse the site
#   4. muststaple.test Must-Staple leaf stapled good: gnutls accepts it;
#      muststaple_off.test  Must-Staple leaf (stapling stays on for it,
#                      despite its name) whose responder is unreachable from
#                      the start (OCSPStaplingForceURL to a closed port, store
#                      off): nothing stapled, gnutls refuses the certificate
#   5. offvhost.test   OCSPUseStapling off: curl --cert-status fails,
#                      gnutls-cli without --ocsp connects, NSS has no data
#
# gnutls-cli --ocsp falls back to asking the certificate's responder itself
# when nothing was stapled (and then succeeds for a good certificate). So a
# gnutls-cli success alone does not prove a staple: every success here also
# requires the saved staple (--save-ocsp) and that the responder saw no
# request from the client.
#
# Needs gnutls-bin (gnutls-cli) and curl; skips when gnutls-cli is missing;
# skips only the NSS checks when tstclnt is missing (libnss3-tools).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(time);
use OCSPServer qw(setup free_port update_ok_re update_failed_re);
use OCSPTest ();
use OCSPClients ();

my $CLIENT_TIMEOUT = $OCSPClients::TIMEOUT;   # seconds for one client run

plan skip_all => 'gnutls-cli not installed (Debian package gnutls-bin)'
    unless OCSPClients::have('gnutls-cli');
plan skip_all => 'curl not installed' unless OCSPClients::have('curl');

plan tests => 101;
OCSPServer::deadline(120);
my $t_start = time;

my ($w, $pki, $resp) = setup();
$resp->start;
my $closed = free_port();           # nobody listens there: connection refused
make_path("$w/htdocs");
open my $fh, '>', "$w/htdocs/index.html" or die "$w/htdocs/index.html: $!";
print $fh "hello from the other clients\n";
close $fh;

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    vhosts => [
        { name => 'rsa.test',        cert => 'rsa' },
        { name => 'ecdsa.test',      cert => 'ecdsa' },
        { name => 'revoked.test',    cert => 'revoked' },
        { name => 'muststaple.test', cert => 'muststaple' },
        # mkpki.sh's second Must-Staple leaf (its name is about t/62's
        # OCSPUseStapling-off vhost; here stapling stays on, but its
        # responder can never be reached).
        { name => 'muststaple_off.test', cert => 'muststaple_off',
          extra => "OCSPStaplingForceURL http://127.0.0.1:$closed/" },
        { name => 'offvhost.test',   cert => 'offvhost', stapling => 0 },
    ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');
my $port = $h->port;

# Startup fetched what it could: one good answer per stapled leaf with a
# reachable responder, one failure for the Must-Staple leaf whose responder
# is down. (Fails if a fetch never happened, so that a later "no staple"
# verdict could not be blamed on the module having nothing to staple.)
ok(scalar($h->wait_for_log(update_ok_re($_), 30)), "startup: response for $_ fetched")
    for qw(rsa ecdsa muststaple);
ok(scalar($h->wait_for_log(qr/OCSPSTAPLE0004: cert "CN=revoked\.test".*REVOKED/, 30)),
   'startup: the revocation of revoked.test fetched (OCSPSTAPLE0004)');
ok(scalar($h->wait_for_log(update_failed_re('muststaple_off'), 30)),
   'startup: fetch for the Must-Staple leaf behind the closed port failed');
my $baseline = $resp->requests;

# ---- the clients ------------------------------------------------------------

# gnutls(NAME, ocsp => 0|1, tls12 => 0|1): OCSPClients::gnutls with the
# vhost NAME, trusting only our root, the staple saved to a file.
sub gnutls {
    my ($name, %o) = @_;
    return OCSPClients::gnutls($port, $name, ca => $pki->root,
                               save => "$w/gnutls-$name.der",
                               signer => $pki->dir . '/intermediate.crt', %o);
}

# curl(NAME): curl --cert-status GET https://NAME:PORT/index.html (our root
# only). Returns rc, out (curl's error line), body.
sub curl {
    my ($name) = @_;
    my $body = "$w/curl-$name.body";
    unlink $body;
    my @cmd = ('timeout', $CLIENT_TIMEOUT, 'curl', '-sS', '--cert-status',
               '--max-time', $CLIENT_TIMEOUT - 5, '--cacert', $pki->root,
               '--resolve', "$name:$port:127.0.0.1", '-o', $body,
               "https://$name:$port/index.html");
    my $out = OCSPTest::run_capture(@cmd);
    return { rc => $? >> 8, out => $out, body => OCSPServer::slurp($body),
             cmd => "@cmd" };
}

sub show { my ($r) = @_; "$r->{cmd}\nexit $r->{rc}\n$r->{out}" . ($r->{staple_text} // '') }

# ---- 1, 2, 4a: good staples ------------------------------------------------

# Each fails if: gnutls does not verify the chain or the staple (rc, no
# "Handshake was completed"); the vhost serves another certificate
# (peer_serial); nothing was stapled (no saved staple: gnutls --ocsp would
# then have asked the responder itself, caught by the request count); the
# staple is for another certificate (staple_serial) or not good.
for my $c (['rsa.test', 'rsa', 'TLS1.3'], ['rsa.test', 'rsa', 'TLS1.2', tls12 => 1],
           ['ecdsa.test', 'ecdsa', 'TLS1.3'], ['muststaple.test', 'muststaple', 'TLS1.3']) {
    my ($name, $leaf, $proto, %o) = @$c;
    my $serial = $pki->serial($leaf);
    my $before = $resp->requests;
    my $r = gnutls($name, ocsp => 1, %o);
    ok($r->{rc} == 0 && $r->{completed}, "gnutls-cli --ocsp $name ($proto): handshake completed, exit 0")
        or diag(show($r));
    is($r->{protocol} // '', $proto, "gnutls-cli $name: protocol $proto");
    is($r->{peer_serial} // '', $serial, "gnutls-cli $name: got the $leaf certificate");
    ok($r->{staple} && $r->{options_ocsp}, "gnutls-cli $name: the server stapled a response")
        or diag(show($r));
    is($r->{staple_serial} // '', $serial, "gnutls-cli $name: the staple is for serial $serial");
    is($r->{staple_status} // '', 'good', "gnutls-cli $name: the staple says good");
    ok($r->{staple_verified}, "ocsptool --verify-response: the staple of $name is signed by its issuer")
        or diag(show($r));
    is($resp->requests, $before, "gnutls-cli $name: the client never asked the responder itself");
}

# curl --cert-status fails (91) without a staple, with one it cannot verify,
# one for another certificate or one not good; the body proves the GET went
# through.
for my $name (qw(rsa.test ecdsa.test muststaple.test)) {
    my $r = curl($name);
    ok($r->{rc} == 0 && $r->{body} eq "hello from the other clients\n",
       "curl --cert-status $name: staple verified, page fetched") or diag(show($r));
}

# ---- 3: revoked ---------------------------------------------------------------

# Fails if gnutls accepts the revoked certificate (exit 0 or a completed
# handshake), if it fails for another reason (connection refused, chain:
# then there is no "revoked" verdict), or if the saved staple is not the
# revoked answer for this certificate.
{
    my $serial = $pki->serial('revoked');
    my $r = gnutls('revoked.test', ocsp => 1);
    ok($r->{rc} != 0 && !$r->{completed}, 'gnutls-cli --ocsp revoked.test: refused (non-zero exit, no handshake)')
        or diag(show($r));
    is($r->{peer_serial} // '', $serial, 'gnutls-cli revoked.test: it got the revoked certificate');
    # The whole verdict line: revocation must be the only reason.
    like($r->{out}, qr/^- Status: The certificate is NOT trusted\. The certificate chain is revoked\. ?$/m,
         'gnutls-cli revoked.test: refused only because the certificate is revoked');
    is($r->{staple_serial} // '', $serial, 'gnutls-cli revoked.test: staple for the revoked serial');
    is($r->{staple_status} // '', 'revoked', 'gnutls-cli revoked.test: the staple says revoked');
    note("gnutls-cli revoked.test printed:\n", join "\n", grep { /revoked|Fatal|failed/ } split /\n/, $r->{out});

    my $c = curl('revoked.test');
    is($c->{rc}, 91, 'curl --cert-status revoked.test: exit 91 (SSL invalid certificate status)')
        or diag(show($c));
    like($c->{out}, qr/revocation reason|revoked/i, 'curl revoked.test: says the certificate is revoked');
    is($c->{body}, '', 'curl revoked.test: no page fetched');
    note("curl revoked.test printed: $c->{out}");
}

# ---- 4b: Must-Staple, nothing to staple ----------------------------------------

# The test that shows the staple matters to a real client: gnutls refuses a
# Must-Staple certificate that comes without a staple, with or without
# --ocsp (the library enforces the TLS Feature itself). Fails if the module
# staples something gnutls accepts (it can have nothing valid: its responder
# was never reachable), or if gnutls fails for another reason (the message
# is the Must-Staple one, and the certificate did arrive).
for my $ocsp (1, 0) {
    my $flag = $ocsp ? ' --ocsp' : '';
    my $before = $resp->requests;
    my $r = gnutls('muststaple_off.test', ocsp => $ocsp);
    ok($r->{rc} != 0 && !$r->{completed}, "gnutls-cli$flag muststaple_off.test: refused (non-zero exit, no handshake)")
        or diag(show($r));
    is($r->{peer_serial} // '', $pki->serial('muststaple_off'),
       "gnutls-cli$flag muststaple_off.test: it got the Must-Staple certificate");
    # The whole verdict line: the missing status must be the only reason
    # (not also a name mismatch, an untrusted chain, ...).
    like($r->{out}, $OCSPClients::GNUTLS_MUST_STAPLE_RE,
         "gnutls-cli$flag muststaple_off.test: refused only because the OCSP status is missing");
    ok(!$r->{staple}, "gnutls-cli$flag muststaple_off.test: nothing stapled") or diag(show($r));
    is($resp->requests, $before, "gnutls-cli$flag muststaple_off.test: no fallback to the responder");
    note("gnutls-cli$flag muststaple_off.test printed:\n", join "\n", grep { /OCSP|Fatal|failed/ } split /\n/, $r->{out});
}
{
    my $c = curl('muststaple_off.test');
    is($c->{rc}, 91, 'curl --cert-status muststaple_off.test: exit 91') or diag(show($c));
    like($c->{out}, qr/No OCSP response received/, 'curl muststaple_off.test: "No OCSP response received"');
    note("curl muststaple_off.test printed: $c->{out}");
}

# ---- 5: OCSPUseStapling off -----------------------------------------------------

# curl fails if nothing is stapled (fails here if the module stapled for a
# vhost where stapling is off); gnutls without --ocsp connects (fails if the
# vhost broke TLS), and gets no staple.
{
    my $c = curl('offvhost.test');
    is($c->{rc}, 91, 'curl --cert-status offvhost.test (stapling off): exit 91') or diag(show($c));
    like($c->{out}, qr/No OCSP response received/, 'curl offvhost.test: "No OCSP response received"');
    note("curl offvhost.test printed: $c->{out}");

    my $r = gnutls('offvhost.test', ocsp => 0);
    ok($r->{rc} == 0 && $r->{completed}, 'gnutls-cli offvhost.test (no --ocsp): handshake completed, exit 0')
        or diag(show($r));
    is($r->{peer_serial} // '', $pki->serial('offvhost'), 'gnutls-cli offvhost.test: got the offvhost certificate');
    ok(!$r->{staple} && !$r->{options_ocsp}, 'gnutls-cli offvhost.test: nothing stapled') or diag(show($r));
}

# ---- NSS: tstclnt -T -F ----------------------------------------------------------

# Each verdict needs the right staple: exit 0 only when NSS accepted a
# stapled response as current, correctly signed and about this very
# certificate, with status good (a missing staple, one for another
# certificate, an expired one or one NSS cannot verify all give 2); 3 only
# for a valid staple saying revoked. The certificate's subject and serial
# show which certificate the vhost served, `Received N Cert Status items`
# how many responses were stapled.
SKIP: {
    skip 'tstclnt not installed (Debian package libnss3-tools)', 33
        unless OCSPClients::have('tstclnt') && OCSPClients::have('certutil');
    my $db = eval { OCSPClients::nss_db("$w/nssdb", $pki->root) };
    ok($db, 'NSS database with the test root as the only trust anchor') or diag($@);
    sub nss_show { my ($r) = @_; "$r->{cmd}\nexit $r->{rc}\n$r->{out}" }
    for my $c (['rsa.test', 'rsa', 'TLS1.3'], ['rsa.test', 'rsa', 'TLS1.2', tls12 => 1],
               ['ecdsa.test', 'ecdsa', 'TLS1.3'], ['muststaple.test', 'muststaple', 'TLS1.3']) {
        my ($name, $leaf, $proto, %o) = @$c;
        my $before = $resp->requests;
        my $r = OCSPClients::tstclnt($port, $name, db => $db, %o);
        is($r->{verdict}, 'good', "tstclnt -T -F $name ($proto): exit 0, the staple verifies as good for the certificate")
            or diag(nss_show($r));
        is($r->{received} // '', 1, "tstclnt $name: one stapled response received");
        is($r->{subject} // '', "CN=$name", "tstclnt $name: certificate CN=$name");
        is($r->{peer_serial} // '', $pki->serial($leaf), "tstclnt $name: the $leaf certificate");
        is($r->{protocol} // '', $proto, "tstclnt $name: protocol $proto");
        is($resp->requests, $before, "tstclnt $name: the client never asked the responder itself");
    }
    {
        my $r = OCSPClients::tstclnt($port, 'revoked.test', db => $db);
        is($r->{verdict}, 'revoked', 'tstclnt -T -F revoked.test: exit 3, the staple says revoked')
            or diag(nss_show($r));
        is($r->{received} // '', 1, 'tstclnt revoked.test: one stapled response received');
        is($r->{peer_serial} // '', $pki->serial('revoked'), 'tstclnt revoked.test: the revoked certificate');
    }
    {
        my $r = OCSPClients::tstclnt($port, 'offvhost.test', db => $db);
        is($r->{verdict}, 'nodata', 'tstclnt -T -F offvhost.test (stapling off): exit 2, no revocation data')
            or diag(nss_show($r));
        is($r->{received} // '', 0, 'tstclnt offvhost.test: no stapled response');
        is($r->{subject} // '', 'CN=offvhost.test', 'tstclnt offvhost.test: the handshake got to the certificate');
    }
    {
        my $r = OCSPClients::tstclnt($port, 'muststaple_off.test', db => $db);
        is($r->{verdict}, 'nodata', 'tstclnt -T -F muststaple_off.test (responder unreachable): exit 2')
            or diag(nss_show($r));
        is($r->{received} // '', 0, 'tstclnt muststaple_off.test: no stapled response');
    }
}

# Clients never made the module fetch (handshakes never wait on the
# responder) and no child crashed.
is($resp->requests, $baseline, 'the responder saw no request since startup');
my @crash = $h->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/);
ok(!@crash, 'no child process crashed') or diag(@crash);

$h->stop;
$resp->stop;
note(sprintf 'took %.1f s', time - $t_start);
