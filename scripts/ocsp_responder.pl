#!/usr/bin/perl
# ocsp_responder.pl --port P --pki DIR --log FILE [--pidfile F] [--nmin N | --ndays N]
#                   [--delay SECONDS]
#
# A tiny scriptable OCSP responder for mod_ocspstaple's tests and demo.
#
# Why not `openssl ocsp -port`: it listens on all interfaces and answers every
# request the same way. This front end binds to 127.0.0.1 only and lets the
# URL path pick a behaviour ("mode"), so one responder serves every test
# scenario; the leaves made by scripts/mkpki.sh carry the mode in their AIA
# URL (http://127.0.0.1:P/good, /delegated, ...). The OCSP work itself is
# still done by `openssl ocsp` (-reqin/-respout with the PKI's index.txt), so
# responses are real, correctly encoded and signed.
#
# Requests: POST /MODE with the DER request as body (RFC 6960 A.1), or
# GET /MODE/<url-encoded base64 request>. One child per connection,
# HTTP/1.0-style: one request, one response, close.
#
# Log: one line per request, appended to --log:
#   <epoch> <mode> <http-status> <request-bytes> <response-bytes>
# Tests count these lines, so every request that gets an answer is logged.
#
# Runs in the foreground (callers background it with &). The PID is written
# to --pidfile once the socket is listening, so callers can wait for that
# file. SIGTERM/SIGINT: stop our own children, remove the pidfile, exit 0.
#
# --delay SECONDS (fractions allowed): a slow responder. Each request is read
# at once, then answered only after this delay (tests of slow and hanging
# responders: the client's timeout, not ours, ends the exchange).
#
# Perl core modules only.
use strict;
use warnings;

use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use MIME::Base64 qw(decode_base64);
use POSIX qw(WNOHANG _exit sigprocmask SIG_BLOCK SIG_SETMASK SIGCHLD);
use Time::HiRes ();

my $MAX_REQUEST = 64 * 1024;   # OCSP requests are a few hundred bytes
my $IO_TIMEOUT  = 30;          # a stuck client must not keep a child forever

# ---- options --------------------------------------------------------------
my ($port, $pki, $logfile, $pidfile, $nmin, $ndays, $delay);
GetOptions(
    'port=i'    => \$port,
    'pki=s'     => \$pki,
    'log=s'     => \$logfile,
    'pidfile=s' => \$pidfile,
    'nmin=i'    => \$nmin,
    'ndays=i'   => \$ndays,
    'delay=f'   => \$delay,
) or usage();
usage() unless defined $port && defined $pki && defined $logfile;
usage("--nmin and --ndays are exclusive") if defined $nmin && defined $ndays;
usage("--delay must be between 0 and 3600 seconds")
    if defined $delay && ($delay < 0 || $delay > 3600);
die "ocsp_responder: $pki/index.txt not found (run scripts/mkpki.sh)\n"
    unless -f "$pki/index.txt";

# nextUpdate of every response. Without -nmin/-ndays openssl omits
# nextUpdate altogether, which clients treat very differently, so we always
# set one.
my @VALIDITY = defined $nmin ? ('-nmin', $nmin)
             : ('-ndays', defined $ndays ? $ndays : 1);

sub usage {
    my ($msg) = @_;
    print STDERR "ocsp_responder: $msg\n" if $msg;
    print STDERR "usage: $0 --port P --pki DIR --log FILE [--pidfile F]"
               . " [--nmin N | --ndays N] [--delay SECONDS]\n";
    exit 2;
}

# ---- modes: the one place to add behaviours (hang, slow, garbage, ...) ----
# Each handler gets the path of a file holding the client's DER request and
# returns (http-status, content-type, body).
my %MODES = (
    # Signed by the issuing CA itself; no certs needed in the response.
    good => sub {
        ocsp_sign($_[0], 'intermediate.crt', 'intermediate.key', '-resp_no_certs');
    },
    # Signed by a delegated responder; its cert is included (openssl's
    # default) so the client can chain it to the issuer.
    delegated => sub {
        ocsp_sign($_[0], 'ocsp-signer.crt', 'ocsp-signer.key');
    },
    # Signed by a cert unrelated to the PKI: clients must reject it. The
    # status lookup still uses the real CA/index, so only the signer is wrong.
    wrongsigner => sub {
        ocsp_sign($_[0], 'rogue.crt', 'rogue.key');
    },
    # A valid, correctly signed response, but for another certificate
    # (sni2): clients must notice their CertID is missing.
    wrongserial => sub {
        ocsp_sign("$pki/requests/sni2.der", 'intermediate.crt',
                  'intermediate.key', '-resp_no_certs');
    },
);

# ocsp_sign REQFILE SIGNER-CRT SIGNER-KEY [EXTRA-ARGS]: runs `openssl ocsp` as a
# one-shot responder over the PKI's index and returns an HTTP triple.
sub ocsp_sign {
    my ($reqfile, $rsigner, $rkey, @extra) = @_;
    my $dir = tempdir('ocsp-resp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $out = "$dir/resp.der";
    my @cmd = ('openssl', 'ocsp',
               '-index', "$pki/index.txt", '-CA', "$pki/intermediate.crt",
               '-rsigner', "$pki/$rsigner", '-rkey', "$pki/$rkey",
               '-reqin', $reqfile, '-respout', $out, @VALIDITY, @extra);
    my $rc = run_quiet("$dir/openssl.out", @cmd);
    my $body = slurp($out);
    if ($rc != 0 || !defined $body || $body eq '') {
        my $err = slurp("$dir/openssl.out") // '';
        print STDERR "ocsp_responder: openssl ocsp failed ($rc): $err";
        return (500, 'text/plain', "openssl ocsp failed\n");
    }
    return (200, 'application/ocsp-response', $body);
}

# Runs a command with stdout+stderr captured in a file (openssl chatters on
# stdout; we only want it when something went wrong). Returns the exit code.
sub run_quiet {
    my ($outfile, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>', $outfile or _exit(127);
        open STDERR, '>&', \*STDOUT or _exit(127);
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        _exit(127);                     # exec failed
    }
    waitpid($pid, 0);
    return $? >> 8;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return undef;
    local $/;
    return scalar <$fh>;
}

# ---- logging --------------------------------------------------------------
# O_APPEND + one syswrite per line: lines from concurrent children never
# interleave, and nothing sits in a buffer when a test reads the file.
sysopen(my $LOG, $logfile, O_WRONLY | O_APPEND | O_CREAT, 0644)
    or die "ocsp_responder: cannot open $logfile: $!\n";

sub log_request {
    my ($mode, $status, $reqlen, $resplen) = @_;
    syswrite($LOG, join(' ', time, $mode, $status, $reqlen, $resplen) . "\n");
}

# ---- HTTP -----------------------------------------------------------------
# Reads one request from $conn. Returns (method, path, body) or an HTTP
# error status number.
sub read_request {
    my ($conn) = @_;
    my $line = <$conn>;
    return 400 unless defined $line;
    my ($method, $path) = $line =~ m{^(GET|POST) (/\S*) HTTP/1\.[01]\r?\n\z}
        or return 400;
    my %hdr;
    while (defined(my $h = <$conn>)) {
        last if $h =~ /^\r?\n\z/;
        $hdr{lc $1} = $2 if $h =~ /^([^:\s]+):\s*(.*?)\s*\r?\n\z/;
    }
    my $body = '';
    if ($method eq 'POST') {
        my $len = $hdr{'content-length'};
        return 411 unless defined $len && $len =~ /^\d+\z/;
        return 413 if $len > $MAX_REQUEST;
        # curl sends this for larger bodies and waits a second for it.
        print $conn "HTTP/1.1 100 Continue\r\n\r\n"
            if lc($hdr{expect} // '') eq '100-continue';
        while (length($body) < $len) {
            my $n = read($conn, $body, $len - length($body), length($body));
            return 400 unless $n;
        }
    }
    return ($method, $path, $body);
}

my %REASON = (200 => 'OK', 400 => 'Bad Request', 404 => 'Not Found',
              411 => 'Length Required', 413 => 'Payload Too Large',
              500 => 'Internal Server Error');

sub send_response {
    my ($conn, $status, $ctype, $body) = @_;
    print $conn "HTTP/1.0 $status " . ($REASON{$status} // 'Status') . "\r\n"
              . "Content-Type: $ctype\r\n"
              . "Content-Length: " . length($body) . "\r\n"
              . "Connection: close\r\n\r\n" . $body;
}

# One connection: parse, dispatch on the first path segment, answer, log.
sub handle_connection {
    my ($conn) = @_;
    binmode $conn;
    my ($method, $path, $body) = read_request($conn);
    if ($method =~ /^\d+\z/) {                     # parse error
        send_response($conn, $method, 'text/plain', "bad request\n");
        log_request('-', $method, 0, 0);
        return;
    }
    my (undef, $mode, $rest) = split m{/}, $path, 3;
    $mode = '-' unless defined $mode && $mode =~ /^[\w.-]+\z/;   # log-safe
    if ($method eq 'GET') {
        # RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of DER}
        $rest //= '';
        $rest =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        $body = decode_base64($rest);
    }
    # A slow responder: the request is in, the answer comes late. The client
    # may have given up meanwhile: the request is still logged (no SIGPIPE).
    if ($delay) {
        $SIG{PIPE} = 'IGNORE';
        Time::HiRes::sleep($delay);
    }
    my $handler = $MODES{$mode};
    my ($status, $ctype, $resp) =
          !$handler     ? (404, 'text/plain', "unknown mode\n")
        : $body eq ''   ? (400, 'text/plain', "empty request\n")
        :                 $handler->(save_request($body));
    send_response($conn, $status, $ctype, $resp);
    log_request($mode, $status, length $body, length $resp);
}

sub save_request {
    my ($der) = @_;
    my $dir = tempdir('ocsp-req-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>:raw', "$dir/req.der" or die "write request: $!";
    print $fh $der;
    close $fh or die "write request: $!";
    return "$dir/req.der";
}

# ---- server ---------------------------------------------------------------
my $listener = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',       # loopback only, never all interfaces
    LocalPort => $port,
    Proto     => 'tcp',
    Listen    => 128,
    ReuseAddr => 1,                 # quick restarts between tests
) or die "ocsp_responder: cannot listen on 127.0.0.1:$port: $@\n";

my $parent = $$;
my %children;

# Reap finished children so they do not pile up as zombies.
$SIG{CHLD} = sub {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) { delete $children{$pid} }
};

# Stop: only our own children, by PID, then ourselves.
my $stop = sub {
    return unless $$ == $parent;
    $SIG{CHLD} = 'DEFAULT';
    kill 'TERM', keys %children;
    waitpid($_, 0) for keys %children;
    unlink $pidfile if defined $pidfile;
    exit 0;
};
$SIG{TERM} = $SIG{INT} = $stop;

# Written only now that we listen; renamed into place so a waiting caller
# never reads a half-written file.
if (defined $pidfile) {
    my $tmp = "$pidfile.tmp.$$";
    open my $fh, '>', $tmp or die "ocsp_responder: $tmp: $!\n";
    print $fh "$$\n";
    close $fh or die "ocsp_responder: $tmp: $!\n";
    rename $tmp, $pidfile or die "ocsp_responder: rename $tmp: $!\n";
}

while (1) {
    my $conn = $listener->accept;
    next unless $conn;                  # EINTR from SIGCHLD
    # Hold SIGCHLD until the child is in %children: a child that exits at
    # once must not be reaped before it is recorded (or it would stay listed
    # and a later stop could signal a recycled PID).
    my $old = POSIX::SigSet->new;
    sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGCHLD), $old);
    my $pid = fork;
    if (!defined $pid) {
        print STDERR "ocsp_responder: fork: $!\n";
        sigprocmask(SIG_SETMASK, $old);
        close $conn;
        next;
    }
    if ($pid == 0) {
        sigprocmask(SIG_SETMASK, $old);
        # Child: default signal handling (TERM runs exit so File::Temp
        # cleans up), no listener, a deadline for the whole exchange.
        $SIG{CHLD} = 'DEFAULT';
        $SIG{TERM} = $SIG{INT} = sub { exit 1 };
        $SIG{ALRM} = sub { exit 1 };
        close $listener;
        # --delay is not a stuck client: it gets its own time on top.
        alarm $IO_TIMEOUT + ($delay ? int($delay) + 1 : 0);
        handle_connection($conn);
        close $conn;
        exit 0;
    }
    $children{$pid} = 1;
    sigprocmask(SIG_SETMASK, $old);
    close $conn;
}
