package OCSPTest;
# Helpers for mod_ocspstaple's Apache::Test suite: TLS handshakes with
# `openssl s_client -status` (the only common client that asks for a staple),
# bounded waits on the error log, and the loopback responder's request log.
#
# The environment comes from t/run-tests.sh: OCSP_PKI, OCSP_PORT,
# OCSP_RESPONDER_LOG, OCSP_ROOT, OCSP_MODULE.
use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use File::Spec;
use Time::HiRes qw(time sleep);
use POSIX ();
use Apache::Test ();

our @EXPORT = qw(handshake vhost_port cert_serial pki wait_for_log
                 error_log_lines error_log_file responder_requests
                 responder_received);

my $S_CLIENT_TIMEOUT = 20;    # seconds for one whole handshake

sub pki {
    my $dir = $ENV{OCSP_PKI} or die "OCSP_PKI is not set: run the suite with t/run-tests.sh\n";
    return @_ ? File::Spec->catfile($dir, @_) : $dir;
}

# The port Apache::Test gave to <VirtualHost NAME> / <VirtualHost host:NAME>
# in t/conf/extra.conf.in.
sub vhost_port {
    my ($name) = @_;
    my $vhost = Apache::Test::config()->{vhosts}{$name}
        or die "no vhost '$name' in the Apache::Test config\n";
    return $vhost->{port};
}

# Serial (upper-case hex, as openssl prints it) of a PKI leaf, e.g. 'rsa'.
sub cert_serial {
    my ($name) = @_;
    my $file = pki("$name.pem");
    my $out = `openssl x509 -in '$file' -noout -serial 2>&1`;
    $out =~ /^serial=([0-9A-Fa-f]+)/ or die "cannot read serial of $file: $out";
    return norm_serial($1);
}

sub norm_serial {
    my ($s) = @_;
    $s = uc $s;
    $s =~ s/^0+(?=.)//;
    return $s;
}

# handshake(vhost => 'ocsp_main' | port => N, servername => 'rsa.test',
#           tls => '1.2'|'1.3', sigalgs => 'ECDSA+SHA256', cipher => '...')
# Runs one `openssl s_client -status` handshake against 127.0.0.1 and returns
#   stapled     1 when the server sent an OCSP response, else 0
#   resp_status e.g. 'successful'      cert_status e.g. 'good', 'revoked'
#   serial      Serial Number inside the stapled response (hex)
#   peer_serial serial of the certificate the server presented (hex)
#   protocol    'TLSv1.2' / 'TLSv1.3'  verify  s_client's verify return code
#   peer_key    e.g. 'RSA' or 'EC' (from "Server public key"/"Peer signature")
#   elapsed     seconds           output  everything s_client printed
sub handshake {
    my %a = @_;
    my $port = $a{port} // vhost_port($a{vhost} // die "handshake: vhost or port\n");
    my @cmd = ('timeout', $S_CLIENT_TIMEOUT, 'openssl', 's_client',
               '-connect', "127.0.0.1:$port", '-status', '-showcerts',
               '-CAfile', pki('root.crt'));
    push @cmd, '-servername', $a{servername} if defined $a{servername};
    push @cmd, $a{tls} eq '1.3' ? '-tls1_3' : '-tls1_2' if defined $a{tls};
    push @cmd, '-sigalgs', $a{sigalgs} if defined $a{sigalgs};
    push @cmd, '-cipher', $a{cipher} if defined $a{cipher};

    my $t0 = time;
    my $out = run_capture(@cmd);
    my %r = (elapsed => time - $t0, output => $out, stapled => 0);

    $r{stapled} = 1 if $out =~ /^OCSP Response Status:/m
                    || $out =~ /^\s*OCSP Response Data:/m;
    $r{stapled} = 0 if $out =~ /^OCSP response: no response sent/m;
    ($r{resp_status}) = $out =~ /OCSP Response Status: (\w+)/;
    ($r{cert_status}) = $out =~ /Cert Status: (\w+)/;
    if ($out =~ /OCSP Response Data:.*?Serial Number: ([0-9A-Fa-f]+)/s) {
        $r{serial} = norm_serial($1);
    }
    ($r{protocol}) = $out =~ /^\s*Protocol\s*:\s*(\S+)/m;
    ($r{protocol}) = $out =~ /^New, (TLSv[\d.]+)/m unless $r{protocol};
    ($r{verify}) = $out =~ /Verify return code: (\d+)/;
    if ($out =~ /^Peer signature type: (\S+)/m) {
        $r{peer_key} = $1 =~ /ECDSA/ ? 'EC' : 'RSA';
    }
    # The first certificate of the chain the server sent (not one inside the
    # OCSP response, which s_client prints earlier).
    if ($out =~ /^Certificate chain\n.*?(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n)/ms) {
        $r{peer_serial} = pem_serial($1);
    }
    return \%r;
}

# A one-line summary for test diagnostics.
sub describe {
    my ($r) = @_;
    return join ', ', map { "$_=" . ($r->{$_} // 'undef') }
        qw(stapled resp_status cert_status serial peer_serial protocol peer_key verify);
}

sub pem_serial {
    my ($pem) = @_;
    my $tmp = File::Spec->catfile(Apache::Test::vars('t_logs'), "peer.$$.pem");
    open my $fh, '>', $tmp or die "$tmp: $!";
    print $fh $pem;
    close $fh;
    my $out = `openssl x509 -in '$tmp' -noout -serial 2>&1`;
    unlink $tmp;
    return $out =~ /^serial=([0-9A-Fa-f]+)/ ? norm_serial($1) : undef;
}

# Runs a command with stdin from /dev/null, returns stdout+stderr.
sub run_capture {
    my @cmd = @_;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or do { print "exec $cmd[0]: $!\n"; POSIX::_exit(127) };
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

sub error_log_file {
    return File::Spec->catfile(Apache::Test::vars('t_logs'), 'error_log');
}

# All error_log lines matching $re (a qr// or string).
sub error_log_lines {
    my ($re) = @_;
    open my $fh, '<', error_log_file() or return ();
    return grep { /$re/ } <$fh>;
}

# Waits (bounded, default 15 s) until a line of the error log matches $re.
# Returns the first matching line, or undef on timeout.
sub wait_for_log {
    my ($re, $timeout) = @_;
    my $deadline = time + ($timeout // 15);
    while (1) {
        my ($line) = error_log_lines($re);
        return $line if defined $line;
        return undef if time > $deadline;
        sleep 0.1;
    }
}

# Requests the OCSP responder answered, optionally only those of one mode
# (the URL path: good, delegated, wrongsigner, wrongserial).
sub responder_requests {
    my ($mode) = @_;
    my $log = $ENV{OCSP_RESPONDER_LOG} or die "OCSP_RESPONDER_LOG is not set\n";
    return count_lines($log, $mode);
}

# Requests the OCSP responder has read, answered or not, optionally only
# those of one mode: it logs a request here as soon as it has read it, before
# it answers (ocsp_responder.pl --received).
sub responder_received {
    my ($mode) = @_;
    my $log = $ENV{OCSP_RESPONDER_RECEIVED} or die "OCSP_RESPONDER_RECEIVED is not set\n";
    return count_lines($log, $mode);
}

sub count_lines {
    my ($log, $mode) = @_;
    open my $fh, '<', $log or return 0;
    my @lines = <$fh>;
    @lines = grep { (split ' ')[1] eq $mode } @lines if defined $mode;
    return scalar @lines;
}

1;
