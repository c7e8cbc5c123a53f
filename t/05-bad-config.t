# Every bad directive value (or context) stops `apache2 -t` with a message
# naming the directive, so a typo never reaches a running server: for every
# directive, out-of-range and malformed values, a missing argument, a missing
# file, the wrong context. Good configs must pass, or the failures above
# would prove nothing.
#
# Needs no running server: under t/run-tests.sh (make test) it takes httpd
# from Apache::Test; on its own (prove -I t/lib t/05-bad-config.t, as any
# user) from OCSP_HTTPD or /usr/sbin/apache2, with OCSP_MODULE or the
# checkout's .libs/mod_ocspstaple.so, writing under OCSP_T_LOGS or t/logs.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use OCSPTest ();

my $root = abs_path($ENV{OCSP_ROOT} // "$FindBin::Bin/..");
my $suite = defined $ENV{OCSP_HTTPD_MODULES};      # run by t/run-tests.sh
my $httpd  = $suite ? Apache::Test::vars('httpd') : $ENV{OCSP_HTTPD} // '/usr/sbin/apache2';
my $modir  = $ENV{OCSP_HTTPD_MODULES} // '/usr/lib/apache2/modules';
my $module = $ENV{OCSP_MODULE} // "$root/.libs/mod_ocspstaple.so";
my $logs   = $suite ? Apache::Test::vars('t_logs') : $ENV{OCSP_T_LOGS} // "$root/t/logs";
make_path($logs);
my $dir    = tempdir('badconf-XXXXXX', DIR => $logs, CLEANUP => 1);
-f $module or die "$module not found: run make\n";

# A regular file and a directory, for OCSPStaplingFile.
my $file = "$dir/response.der";
open my $rf, '>', $file or die "$file: $!";
close $rf;
# A readable file, for OCSPStaplingResponderCAFile (read at fetch time).
my $ca = "$dir/ca.pem";
open my $cf, '>', $ca or die "$ca: $!";
close $cf;

# [directive line(s), directive the message must name, extra pattern]
my @bad = (
    ['OCSPUseStapling maybe',                    'OCSPUseStapling'],
    ['OCSPStaplingResponderTimeout 0',           'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout -5',          'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout abc',         'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 10x',         'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 99999',       'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingReturnResponderErrors maybe',  'OCSPStaplingReturnResponderErrors'],
    ['OCSPStaplingForceURL ftp://x',             'OCSPStaplingForceURL'],
    ['OCSPStaplingForceURL "not a url"',         'OCSPStaplingForceURL'],
    ['OCSPStaplingCache nosuchprovider',         'OCSPStaplingCache', qr/shmcb.*mod_socache_|mod_socache_.*shmcb/s],
    ["<VirtualHost 127.0.0.1:1>\n    OCSPStaplingCache shmcb\n</VirtualHost>",
                                                 'OCSPStaplingCache', qr/VirtualHost/],
    # ---- every directive: missing argument -----------------------------
    (map { [$_, $_] } qw(OCSPUseStapling OCSPStaplingResponderTimeout
        OCSPStaplingReturnResponderErrors OCSPStaplingForceURL OCSPStaplingCache
        OCSPStaplingRenewWindow OCSPStaplingStore OCSPStaplingFile
        OCSPStaplingProxy OCSPStaplingResponderCAFile)),
    # ---- out of range, malformed ---------------------------------------
    ['OCSPStaplingResponderTimeout -1',          'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 301',         'OCSPStaplingResponderTimeout', qr/300/],
    ['OCSPStaplingResponderTimeout 6mi',         'OCSPStaplingResponderTimeout', qr/300/],
    ['OCSPStaplingResponderTimeout 300001ms',    'OCSPStaplingResponderTimeout', qr/300/],
    ['OCSPStaplingResponderTimeout 0ms',         'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 99999999999999999999', 'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 9223372036854775807d', 'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout 1.5',         'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingResponderTimeout " 10"',       'OCSPStaplingResponderTimeout'],
    ['OCSPStaplingReturnResponderErrors yes',    'OCSPStaplingReturnResponderErrors'],
    ['OCSPStaplingForceURL notaurl',             'OCSPStaplingForceURL'],
    ['OCSPStaplingForceURL http://',             'OCSPStaplingForceURL'],
    ['OCSPStaplingForceURL ldap://127.0.0.1/',   'OCSPStaplingForceURL'],
    ['OCSPStaplingForceURL http//broken',        'OCSPStaplingForceURL'],
    ["OCSPStaplingCache shmcb:$dir/small(100)",  'OCSPStaplingCache', qr/8192|size/],
    ['OCSPStaplingCache ""',                     'OCSPStaplingCache'],
    ['OCSPStaplingRenewWindow 0%',               'OCSPStaplingRenewWindow', qr/1% to 99%/],
    ['OCSPStaplingRenewWindow 100%',             'OCSPStaplingRenewWindow', qr/1% to 99%/],
    ['OCSPStaplingRenewWindow -5%',              'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow 5.5%',             'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow %',                'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow abc',              'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow 5x',               'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow 0',                'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow -5',               'OCSPStaplingRenewWindow'],
    ['OCSPStaplingRenewWindow 99999999999999999999', 'OCSPStaplingRenewWindow'],
    ["<VirtualHost 127.0.0.1:1>\n    OCSPStaplingStore $dir/store\n</VirtualHost>",
                                                 'OCSPStaplingStore', qr/VirtualHost/],
    ['OCSPStaplingStore ""',                     'OCSPStaplingStore'],
    ["OCSPStaplingFile $dir/nosuchfile.der",     'OCSPStaplingFile', qr/nosuchfile\.der/],
    ["OCSPStaplingFile $dir",                    'OCSPStaplingFile'],
    ["OCSPStaplingFile $file $dir/nosuchfile.der", 'OCSPStaplingFile', qr/nosuchfile\.der/],
    ["<VirtualHost 127.0.0.1:1>\n    OCSPStaplingFile $dir/nosuchfile.der\n</VirtualHost>",
                                                 'OCSPStaplingFile', qr/nosuchfile\.der/],
    ['OCSPStaplingProxy ftp://x',                'OCSPStaplingProxy'],
    ['OCSPStaplingProxy notaurl',                'OCSPStaplingProxy'],
    ['OCSPStaplingProxy http://',                'OCSPStaplingProxy'],
    ["OCSPStaplingResponderCAFile $dir/nosuchca.pem", 'OCSPStaplingResponderCAFile', qr/nosuchca\.pem/],
    ["OCSPStaplingResponderCAFile $dir",         'OCSPStaplingResponderCAFile', qr/\Q$dir\E/],
    ['OCSPStaplingResponderCAFile ""',           'OCSPStaplingResponderCAFile'],
    ["<VirtualHost 127.0.0.1:1>\n    OCSPStaplingResponderCAFile $dir/nosuchca.pem\n</VirtualHost>",
                                                 'OCSPStaplingResponderCAFile', qr/nosuchca\.pem/],
);
my @good = (
    "OCSPUseStapling on\nOCSPStaplingResponderTimeout 500ms\n"
  . "OCSPStaplingReturnResponderErrors off\nOCSPStaplingForceURL http://127.0.0.1:1/ocsp\n"
  . "OCSPStaplingCache shmcb:$dir/ocsp(65536)",
    "OCSPStaplingResponderTimeout 300\n"
  . "<VirtualHost 127.0.0.1:1>\n    OCSPUseStapling on\n    OCSPStaplingResponderTimeout 1\n</VirtualHost>",
    # Every directive with a good value, and each in a virtual host where it
    # may be; "OCSPStaplingRenewWindow 50" is a duration (50 s before
    # nextUpdate), as documented.
    "OCSPUseStapling off\nOCSPStaplingResponderTimeout 1mi\nOCSPStaplingReturnResponderErrors on\n"
  . "OCSPStaplingForceURL https://ocsp.example.org:8443/path?x=1\n"
  . "OCSPStaplingCache shmcb:$dir/ocsp2(8192)\nOCSPStaplingRenewWindow 50\n"
  . "OCSPStaplingStore $dir/store\nOCSPStaplingFile $file $file\n"
  . "OCSPStaplingProxy http://127.0.0.1:3128\nOCSPStaplingResponderCAFile $ca\n"
  . "<VirtualHost 127.0.0.1:1>\n    OCSPUseStapling on\n    OCSPStaplingRenewWindow 99%\n"
  . "    OCSPStaplingReturnResponderErrors off\n    OCSPStaplingForceURL http://127.0.0.1:2/\n"
  . "    OCSPStaplingFile $file\n    OCSPStaplingProxy https://127.0.0.1:3129\n"
  . "    OCSPStaplingResponderTimeout 300s\n    OCSPStaplingResponderCAFile $ca\n</VirtualHost>",
    "OCSPStaplingRenewWindow 1%\nOCSPStaplingStore off\n"
  . "<VirtualHost 127.0.0.1:1>\n    OCSPStaplingRenewWindow 12h\n</VirtualHost>\n"
  . "<VirtualHost 127.0.0.1:1>\n    OCSPStaplingRenewWindow 2d\n</VirtualHost>",
);

plan tests => 2 * @bad + @good;

my $n = 0;
sub check_config {
    my ($directives) = @_;
    my $file = "$dir/httpd" . ++$n . '.conf';
    open my $fh, '>', $file or die "$file: $!";
    print $fh <<"CONF";
ServerRoot "$dir"
ServerName localhost
PidFile "$dir/httpd.pid"
DefaultRunTimeDir "$dir"
ErrorLog "$dir/error_log"
Listen 127.0.0.1:1
LoadModule mpm_event_module $modir/mod_mpm_event.so
LoadModule authz_core_module $modir/mod_authz_core.so
LoadModule socache_shmcb_module $modir/mod_socache_shmcb.so
LoadModule ssl_module $modir/mod_ssl.so
LoadModule ocspstaple_module $module
$directives
CONF
    close $fh;
    my $out = OCSPTest::run_capture($httpd, '-t', '-f', $file);
    return ($? >> 8, $out);
}

for my $b (@bad) {
    my ($conf, $directive, $extra) = @$b;
    (my $label = $conf) =~ s/\s+/ /g;
    my ($rc, $out) = check_config($conf);
    ok($rc != 0, "$label: apache2 -t fails") or diag($out);
    # The message itself (not httpd's "Syntax error on line N of FILE:").
    (my $msg = $out) =~ s/^.*Syntax error on line \d+ of \S+:\s*//m;
    my $want = $extra ? qr/\Q$directive\E.*$extra|$extra.*\Q$directive\E/s : qr/\Q$directive\E/;
    ok($msg =~ $want, "$label: message names $directive" . ($extra ? " and $extra" : ''))
        or diag($out);
}

for my $g (@good) {
    (my $label = $g) =~ s/\s+/ /g;
    my ($rc, $out) = check_config($g);
    is($rc, 0, "good config passes: $label") or diag($out);
}
