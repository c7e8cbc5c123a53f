package OCSPClients;
# TLS clients nobody here wrote, for tests whose verdicts must not come from
# OpenSSL's s_client (t/16-other-clients.t, t/62-muststaple.t):
#
#   OCSPClients::have('gnutls-cli')            # in PATH?
#   my $r = OCSPClients::gnutls(PORT, 'rsa.test', ca => ROOT, save => DER,
#                               ocsp => 1, tls12 => 1);
#       # rc, out, cmd, completed, protocol, peer_serial, options_ocsp,
#       # staple (DER file), staple_text, staple_serial, staple_status
#   my $db = OCSPClients::nss_db(DIR, ROOT);   # NSS database trusting ROOT
#   my $n = OCSPClients::tstclnt(PORT, 'rsa.test', db => $db, tls12 => 1);
#       # rc, out, cmd, verdict, received, subject, peer_serial, protocol
#
# Each run is bounded (timeout) and reads nothing from stdin.
use strict;
use warnings FATAL => 'all';

use OCSPTest ();

our $TIMEOUT = 20;          # seconds for one client run

sub have {
    my ($prog) = @_;
    return scalar grep { -x "$_/$prog" } split /:/, $ENV{PATH} // '';
}

# gnutls(PORT, NAME, ca => ROOT, save => FILE, ocsp => 0|1, tls12 => 0|1,
#        signer => ISSUER.crt):
# one gnutls-cli handshake with 127.0.0.1:PORT for the vhost NAME (SNI and
# hostname check), trusting only ROOT; it exits after the handshake (stdin
# closed). Returns rc, out, cmd, completed, protocol, peer_serial (of the
# certificate gnutls got), options_ocsp (gnutls says it got a status
# response), staple (FILE, when gnutls saved a staple there) and, read from
# it by GnuTLS's ocsptool, staple_text, staple_serial, staple_status and,
# with signer, staple_verified (ocsptool --verify-response: the staple's
# signature checks out against ISSUER).
sub gnutls {
    my ($port, $name, %o) = @_;
    my $der = $o{save};
    unlink $der if defined $der;
    my @cmd = ('timeout', $TIMEOUT, 'gnutls-cli', "--x509cafile=$o{ca}",
               '--port', $port, '--sni-hostname', $name,
               '--verify-hostname', $name);
    push @cmd, "--save-ocsp=$der" if defined $der;
    push @cmd, '--ocsp' if $o{ocsp};
    push @cmd, '--priority', 'NORMAL:-VERS-TLS1.3' if $o{tls12};
    push @cmd, '127.0.0.1';
    my $out = OCSPTest::run_capture(@cmd);
    my %r = (rc => $? >> 8, out => $out, cmd => "@cmd");
    $r{completed} = $out =~ /^- Handshake was completed/m ? 1 : 0;
    ($r{protocol}) = $out =~ /^- Description: \((TLS1\.\d)-/m;
    $r{peer_serial} = OCSPTest::norm_serial($1)
        if $out =~ /^- Certificate\[0\] info:\n - subject `[^']*', issuer `[^']*', serial 0x([0-9a-fA-F]+)/m;
    $r{options_ocsp} = $out =~ /^- Options:.*OCSP status request/m ? 1 : 0;
    if (defined $der && -s $der) {
        $r{staple} = $der;
        my $txt = OCSPTest::run_capture('ocsptool', '--response-info', '--infile', $der);
        $r{staple_text} = $txt;
        $r{staple_serial} = OCSPTest::norm_serial($1)
            if $txt =~ /Certificate ID:.*?Serial Number: ([0-9A-Fa-f]+)/s;
        ($r{staple_status}) = $txt =~ /Certificate Status: (\w+)/;
        if (defined $o{signer}) {
            my $v = OCSPTest::run_capture('ocsptool', '--verify-response', '--infile', $der,
                                          '--load-signer', $o{signer});
            $r{staple_verified} = $v =~ /^Verifying OCSP Response: Success\.$/m ? 1 : 0;
            $r{staple_text} .= $v;
        }
    }
    return \%r;
}

# The verdict line gnutls-cli prints for a Must-Staple certificate that came
# without a staple (and nothing else wrong with it).
our $GNUTLS_MUST_STAPLE_RE = qr/^- Status: The certificate is NOT trusted\. The certificate requires the server to include an OCSP status in its response, but the OCSP status is missing\. ?$/m;

# nss_db(DIR, ROOT): a new NSS database in DIR (sql format, no password)
# whose only trust anchor is ROOT (trusted for TLS servers). Returns
# "sql:DIR"; dies when certutil fails.
sub nss_db {
    my ($dir, $root) = @_;
    require File::Path;
    File::Path::remove_tree($dir);
    File::Path::make_path($dir);
    for my $cmd (['certutil', '-N', '-d', "sql:$dir", '--empty-password'],
                 ['certutil', '-A', '-d', "sql:$dir", '-n', 'test-root', '-t', 'C,,',
                  '-i', $root]) {
        my $out = OCSPTest::run_capture('timeout', $TIMEOUT, @$cmd);
        die "@$cmd failed (exit " . ($? >> 8) . "): $out\n" if $?;
    }
    return "sql:$dir";
}

# tstclnt(PORT, NAME, db => 'sql:DIR', tls12 => 0|1): one NSS tstclnt
# handshake with 127.0.0.1:PORT, SNI NAME, asking for a status (-T) and
# judging the server certificate by what was stapled only (-F -O -M 1: NSS's
# CERT_PKIXVerifyCert with the stapled OCSP response cached for that very
# certificate, OCSP only, network fetching forbidden). Its exit code is the
# verdict: 0 fresh, valid revocation data, status good; 1 the certificate
# fails to verify before revocation checking; 2 missing, old or invalid
# revocation data (nothing stapled, or a staple NSS does not accept for the
# certificate); 3 valid data, status revoked. Returns rc, out, cmd, verdict
# (good / badcert / nodata / revoked / other), received (the number of
# "Cert Status items" NSS got), subject (DN of the server certificate),
# peer_serial (its serial, as s_client prints serials), protocol (TLS1.x).
my %VERDICT = (0 => 'good', 1 => 'badcert', 2 => 'nodata', 3 => 'revoked');

sub tstclnt {
    my ($port, $name, %o) = @_;
    my @cmd = ('timeout', $TIMEOUT, 'tstclnt', '-h', '127.0.0.1', '-p', $port,
               '-a', $name, '-d', $o{db}, '-T', '-F', '-O', '-M', '1', '-Q',
               '-C', '-v');
    push @cmd, '-V', 'tls1.2:tls1.2' if $o{tls12};
    my $out = OCSPTest::run_capture(@cmd);
    my %r = (rc => $? >> 8, out => $out, cmd => "@cmd");
    $r{verdict} = $VERDICT{$r{rc}} // 'other';
    ($r{received}) = $out =~ /^Received (\d+) Cert Status items/m;
    ($r{subject}) = $out =~ /^subject DN: (.*?)\s*$/m;
    if ($out =~ /==== certificate\(s\) sent by server: ====\nCertificate:\n\s*Data:\n\s*Serial Number:\s*(.*?)\s*$/m) {
        my $s = $1;
        $r{peer_serial} = OCSPTest::norm_serial($s =~ /\(0x([0-9a-fA-F]+)\)/ ? $1
                                                : do { (my $h = $s) =~ s/://g; $h });
    }
    if ($out =~ /SSL version 3\.(\d)/) {
        $r{protocol} = 'TLS1.' . ($1 - 1);
    }
    return \%r;
}

1;
