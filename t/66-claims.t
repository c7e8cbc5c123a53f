# README claims no other test checks, each through a real handshake with
# private servers:
#   - the dbm cache (`OCSPStaplingCache dbm:`, "on disk", a fleet cache whose
#     records are looked into at startup): stapled from the first handshake,
#     and after a full stop and start with the responder down and the store
#     off, stapled from the cache;
#   - `Mutex file:DIR ocspstaple-fetch` / `ocspstaple-cache`: the server
#     starts, staples, and the lock files are made in DIR;
#   - `OCSPUseStapling on` in the server config applies to a virtual host
#     that does not say otherwise;
#   - one certificate in two virtual hosts: fetched once, stapled in both;
#   - a missing issuer: the virtual host still serves, without a staple
#     (mod_ssl does not offer the certificate to the module); the issuer in SSLCACertificateFile
#     instead ("or the issuer is in SSLCACertificateFile"): stapled;
#   - several OCSPStaplingFile lines in one virtual host: each certificate
#     gets its own file's response.
# An IPv6 responder (OCSPStaplingForceURL http://[::1]:PORT/) is not covered:
# scripts/ocsp_responder.pl binds 127.0.0.1 only.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe free_port);

plan tests => 25;
OCSPServer::deadline(150);

my ($w, $pki, $resp) = setup();
$resp->start;
my $d = $pki->dir;
my $rport = $pki->port;
my $MODDIR = $OCSPServer::MODDIR;

# Responder requests (log lines) whose path is PATH.
sub requests_for {
    my ($path) = @_;
    return scalar grep { ((split ' ')[5] // '') eq $path }
        split /\n/, OCSPServer::slurp($resp->log_file);
}

sub staple_ok {
    my ($r, $name) = @_;
    return $r->{stapled} && ($r->{cert_status} // '') eq 'good'
        && ($r->{serial} // '') eq $pki->serial($name) && $r->{this_update};
}

# ---- server A: dbm cache, Mutex directory, server-level OCSPUseStapling,
# ---- one certificate in two virtual hosts ---------------------------------
my $mutexdir = "$w/mutexdir";
mkdir $mutexdir or die "$mutexdir: $!";
my $aport = free_port();
my $shared_url = "http://127.0.0.1:$rport/good/shared";
my $hA = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpdA', port => $aport,
    store => 'off',
    global => [
        "LoadModule socache_dbm_module $MODDIR/mod_socache_dbm.so",
        "OCSPStaplingCache dbm:$w/ocsp-cache",
        "Mutex file:$mutexdir ocspstaple-fetch",
        "Mutex file:$mutexdir ocspstaple-cache",
        "OCSPUseStapling on",
        # No OCSPUseStapling here: inherited from the server config.
        "<VirtualHost 127.0.0.1:$aport>\n    ServerName rsa.test\n    SSLEngine on\n"
        . "    SSLCertificateFile \"" . $pki->crt('rsa') . "\"\n"
        . "    SSLCertificateKeyFile \"" . $pki->key('rsa') . "\"\n</VirtualHost>",
    ],
    vhosts => [
        { name => 'sni2.test',  cert => 'sni2', extra => "OCSPStaplingForceURL $shared_url" },
        { name => 'sni2b.test', cert => 'sni2', extra => "OCSPStaplingForceURL $shared_url" },
    ]);
ok($hA->start, 'server A starts (dbm cache, Mutex file:DIR, OCSPUseStapling at server level)')
    or BAIL_OUT('no server A');

my $r = handshake($hA->port, 'rsa.test');
ok(staple_ok($r, 'rsa'),
   'OCSPUseStapling on in the server config: the virtual host without the directive staples')
    or diag(describe($r));
my $tu_rsa = $r->{this_update};
my $r1 = handshake($hA->port, 'sni2.test');
my $r2 = handshake($hA->port, 'sni2b.test');
ok(staple_ok($r1, 'sni2') && staple_ok($r2, 'sni2') && $r1->{this_update} == $r2->{this_update},
   'one certificate in two virtual hosts: both staple the same response')
    or diag(describe($r1), "\n", describe($r2));
is(requests_for('/good/shared'), 1, 'that certificate was fetched once at startup')
    or diag(OCSPServer::slurp($resp->log_file));
ok(-e "$w/ocsp-cache" || glob("$w/ocsp-cache*"), 'dbm: the cache file exists on disk')
    or diag(`ls -la $w`);

# The mutex files: named after the mutex type in the directory (an fcntl lock
# file may be unlinked once open: then it is still open in the processes).
sub mutex_seen {
    my ($type) = @_;
    return 1 if grep { /\Q$type\E/ } glob("$mutexdir/*");
    for my $pid ($hA->processes) {
        for my $fd (glob "/proc/$pid/fd/*") {
            my $l = readlink($fd) // next;
            return 1 if index($l, "$mutexdir/") == 0 && $l =~ /\Q$type\E/;
        }
    }
    return 0;
}
for my $type (qw(ocspstaple-fetch ocspstaple-cache)) {
    ok(mutex_seen($type), "Mutex file:$mutexdir $type: its lock file is in that directory")
        or diag("in $mutexdir: ", join(' ', glob("$mutexdir/*")),
                "\nin t/rundir: ", join(' ', glob("$w/httpdA.run/*")));
}

# A working dbm cache is not "failing": a key that is not there yet is a
# miss, not an outage (OCSPSTAPLE0024 is "the cache fails ... once per outage").
# (mod_socache_dbm answers a missing key with APR_EGENERAL: found by this
# test, which failed before the module read it as "not found".)
ok(!$hA->log_lines(qr/OCSPSTAPLE0024: /), 'dbm: no "cache fails" warning with a working dbm file')
    or diag($hA->log_lines(qr/OCSPSTAPLE002[45]: /));

# Full stop; the responder down, the store off: only the dbm file is left.
$hA->stop;
$resp->stop;
ok(!$hA->alive, 'server A stopped; responder stopped');
# (mod_socache_dbm's destroy unlinks its files: found by this test, which
# failed before the module stopped calling it for dbm.)
ok(-e "$w/ocsp-cache" || glob("$w/ocsp-cache.*"), 'dbm: the cache file is still on disk after a stop')
    or diag(`ls -la $w`);
my $off = $hA->log_size;
ok($hA->start, 'server A starts again with the responder down') or BAIL_OUT('no server A');
my $sum = $hA->summary($off) // {};
$r = handshake($hA->port, 'rsa.test');
$r1 = handshake($hA->port, 'sni2.test');
ok(staple_ok($r, 'rsa') && $r->{this_update} == $tu_rsa && staple_ok($r1, 'sni2'),
   'dbm: after stop and start, responder down and store off, the first handshakes '
   . 'staple the responses from the cache')
    or diag(describe($r), "\n", describe($r1), "\nsummary: ", $sum->{line} // 'none',
            "\n", `ls -la $w`);
is($sum->{shared} // -1, 2, 'startup summary: 2 from the shared cache')
    or diag($sum->{line} // 'no summary');
$hA->stop;

# ---- server B: missing issuer, issuer in SSLCACertificateFile, several
# ---- OCSPStaplingFile lines ------------------------------------------------
$resp->start;

# make_response(NAME, FILE, VALIDITY...): as t/63-static-file.t.
sub make_response {
    my ($name, $file, @validity) = @_;
    my $out = OCSPTest::run_capture('openssl', 'ocsp', '-index', "$d/index.txt",
        '-CA', "$d/intermediate.crt", '-rsigner', "$d/intermediate.crt",
        '-rkey', "$d/intermediate.key", '-reqin', "$d/requests/$name.der",
        '-respout', "$file.tmp", '-resp_no_certs', @validity);
    rename "$file.tmp", $file or die "openssl ocsp failed: $out";
    my $text = OCSPTest::run_capture('openssl', 'ocsp', '-respin', $file, '-resp_text', '-noverify');
    my ($tu) = $text =~ /This Update: (.+?)\s*$/m;
    return OCSPServer::openssl_time($tu // '');
}
my $rsa_file = "$w/rsa.der";
my $ec_file  = "$w/ecdsa.der";
my $tu_rf = make_response('rsa', $rsa_file, '-ndays', 1);
my $tu_ef = make_response('ecdsa', $ec_file, '-ndays', 2);
ok($tu_rf && $tu_ef, 'two response files made with openssl ocsp');

my $files_url = "http://127.0.0.1:$rport/good/files";
my $hB = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpdB', store => 'off',
    vhosts => [
        { name => 'dual.test', cert => 'rsa',
          extra => join "\n", 'SSLCertificateFile "' . $pki->crt('ecdsa') . '"',
                              'SSLCertificateKeyFile "' . $pki->key('ecdsa') . '"',
                              "OCSPStaplingForceURL $files_url",
                              "OCSPStaplingFile \"$rsa_file\"",
                              "OCSPStaplingFile \"$ec_file\"" },
        { name => 'offvhost.test', crt => $pki->pem('offvhost'), key => $pki->key('offvhost') },
        { name => 'delegated.test', crt => $pki->pem('delegated'), key => $pki->key('delegated'),
          extra => "SSLCACertificateFile \"$d/intermediate.crt\"" },
    ]);
ok($hB->start, 'server B starts') or BAIL_OUT('no server B');
open my $ix, '>', "$w/htdocs/index.html" or die "index.html: $!";
print $ix "still serving\n";
close $ix;

my $rr = handshake($hB->port, 'dual.test', sigalgs => 'RSA-PSS+SHA256:RSA+SHA256', tls => '1.2');
my $re = handshake($hB->port, 'dual.test', sigalgs => 'ECDSA+SHA256', tls => '1.2');
ok(staple_ok($rr, 'rsa') && $rr->{this_update} == $tu_rf,
   'two OCSPStaplingFile lines: the RSA certificate staples its file\'s response')
    or diag(describe($rr));
ok(staple_ok($re, 'ecdsa') && $re->{this_update} == $tu_ef,
   'two OCSPStaplingFile lines: the ECDSA certificate staples its file\'s response')
    or diag(describe($re));
is(requests_for('/good/files'), 0, 'neither certificate was fetched');
ok(!$hB->log_lines(qr/OCSPSTAPLE006[03]: /), 'no file reported as unusable')
    or diag($hB->log_lines(qr/OCSPSTAPLE006[03]: /));

# The leaf alone, its issuer nowhere.
my $ro = handshake($hB->port, 'offvhost.test');
ok($ro->{connected} && !$ro->{stapled},
   'leaf without its issuer: the virtual host still serves, without a staple')
    or diag(describe($ro), "\n", $ro->{output});
# (mod_ssl never offers a certificate whose issuer it cannot find to the
# OCSP hooks: nothing the module could log; README, Troubleshooting.)

# The leaf alone, its issuer in SSLCACertificateFile.
my $rd = handshake($hB->port, 'delegated.test');
ok(staple_ok($rd, 'delegated'),
   'leaf alone, issuer in SSLCACertificateFile: stapled')
    or diag(describe($rd), "\n", $hB->log_lines(qr/delegated/));

$hB->still_serving('rsa.test', $pki, 'server B');
ok($hB->stop, 'server B stopped');
$resp->stop;
