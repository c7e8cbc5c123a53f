# Every bad directive value (or context) stops `apache2 -t` with a message
# naming the directive, so a typo never reaches a running server. A good
# config must pass, or the failures above would prove nothing.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use OCSPTest ();

my $httpd  = Apache::Test::vars('httpd');
my $modir  = $ENV{OCSP_HTTPD_MODULES} or die "OCSP_HTTPD_MODULES is not set\n";
my $module = $ENV{OCSP_MODULE} or die "OCSP_MODULE is not set\n";
my $dir    = tempdir('badconf-XXXXXX', DIR => Apache::Test::vars('t_logs'), CLEANUP => 1);

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
);
my @good = (
    "OCSPUseStapling on\nOCSPStaplingResponderTimeout 500ms\n"
  . "OCSPStaplingReturnResponderErrors off\nOCSPStaplingForceURL http://127.0.0.1:1/ocsp\n"
  . "OCSPStaplingCache shmcb:$dir/ocsp(65536)",
    "OCSPStaplingResponderTimeout 300\n"
  . "<VirtualHost 127.0.0.1:1>\n    OCSPUseStapling on\n    OCSPStaplingResponderTimeout 1\n</VirtualHost>",
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
