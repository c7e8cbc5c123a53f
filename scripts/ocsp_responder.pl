#!/usr/bin/perl
# ocsp_responder.pl --port P --pki DIR --log FILE [--pidfile F] [--nmin N | --ndays N]
#                   [--delay SECONDS] [--switch FILE] [--bind ADDR]
#                   [--tls CERT,KEY] [--drop-every N] [--received FILE]
#                   [--keepalive[=SECONDS]]
#
# A tiny scriptable OCSP responder for mod_ocspstaple's tests and demo.
#
# Why not `openssl ocsp -port`: it listens on all interfaces and answers every
# request the same way. This front end binds to a loopback address only
# (127.0.0.1 unless --bind says ::1 or another 127.x.y.z) and lets the
# URL path pick a behaviour ("mode"), so one responder serves every test
# scenario; the leaves made by scripts/mkpki.sh carry the mode in their AIA
# URL (http://127.0.0.1:P/good, /delegated, ...). The OCSP work itself is
# still done by `openssl ocsp` (-reqin/-respout with the PKI's index.txt), so
# responses are real, correctly encoded and signed.
#
# Requests: POST /MODE with the DER request as body (RFC 6960 A.1), or
# GET /MODE/<url-encoded base64 request> (RFC 5019: the last path segment
# is the request; /MODE/a/b/<request> works too). One child per
# connection, HTTP/1.0-style: one request, one response, close; with
# --keepalive, HTTP/1.1 persistent connections.
#
# Log: one line per request, appended to --log:
#   <epoch> <mode> <http-status> <request-bytes> <response-bytes> <path>
#   <peer-address> <scheme> <method> <new|reused> <connection>
# Tests count these lines, so every request that gets an answer is logged;
# so are the fault modes that give none (hang, close: status "-", logged when
# the client has gone). <path> is the request path without a GET request's
# base64 part (and the '/' before it), so tests can tell apart clients that
# use the same mode under different paths (/garbage/a, /garbage/b), and a
# GET from a POST only by <method> (GET, POST, "-" when unreadable).
# <peer-address> is the client's address (127.0.0.1, ::1), <scheme> http or
# https. <new|reused>: whether the request is the first one of its
# connection; <connection> numbers the connections this responder accepted
# (1, 2, ...), so the distinct values of a set of lines are the connections
# it took. With --tls, a client that gives up during the TLS handshake (it
# refused our certificate) is logged too, as mode "-", status "tls-failed",
# path "-". Fields are only ever added at the end.
#
# --keepalive[=SECONDS]: several requests per connection (HTTP/1.1
# persistent connections) as long as the client does not say
# "Connection: close" (or is HTTP/1.0 without "Connection: keep-alive"),
# the answer was a normal one (the modes that do their own I/O below
# close), and the next request starts within SECONDS (default 60) of the
# last answer. Without it, every answer closes its connection.
#
# --received FILE: one more line per request, appended to FILE as soon as the
# request has been read, before any --delay and before the answer:
#   <epoch> <mode> recv <request-bytes> - <path>
# (the fields of --log, status "recv"). A client that got an answer has its
# request in FILE already, so a test can tell "no request was made" from "a
# request is still being answered" (FILE has more lines than --log for a
# mode while requests are in flight).
#
# Runs in the foreground (callers background it with &). The PID is written
# to --pidfile once the socket is listening, so callers can wait for that
# file. SIGTERM/SIGINT: stop our own children, remove the pidfile, exit 0.
#
# --delay SECONDS (fractions allowed): a slow responder. Each request is read
# at once, then answered only after this delay (tests of slow and hanging
# responders: the client's timeout, not ours, ends the exchange).
#
# --drop-every N: a busy responder behind a load balancer: every Nth
# connection is closed at once, unanswered (the client sees an empty reply
# or a reset), logged as mode "-", status "dropped".
#
# --bind ADDR: the loopback address to listen on: 127.0.0.1 (the default),
# another 127.x.y.z, or ::1 (IPv6). Anything else is refused: the responder
# is never reachable from outside the machine.
#
# --tls CERT,KEY: HTTPS instead of HTTP (PEM files: the certificate, with
# its chain after it, and its key), e.g. mkpki.sh's responder-tls leaf. The
# TLS handshake runs in the connection's child, bounded like the rest of
# the exchange. Needs IO::Socket::SSL (Debian package
# libio-socket-ssl-perl), loaded only then.
#
# Modes (the first path segment; anything after it is ignored for POST):
#   noget/<mode>        HTTP 405 (Allow: POST) to a GET, <mode> to a POST: a
#                       responder that refuses RFC 5019 GETs
#   good, delegated     correct responses (issuer, delegated signer)
#   wrongsigner         signed by a key outside the issuer's authority
#   wrongserial, otherserial
#                       correctly signed, for another certificate (sni2)
#   noeku               signed by ocsp-signer-noeku: certified by the issuer,
#                       but without the OCSPSigning extended key usage
#   expired             correctly signed, nextUpdate a day ago (`openssl ocsp`
#                       run two days in the past under faketime, -ndays 1)
#   future              correctly signed, thisUpdate a day ahead (faketime)
#   nonext              correctly signed, without nextUpdate
#   unknown             correctly signed, status unknown (looked up in an
#                       empty index: the certificate is missing from it)
#   revoked             correctly signed, status revoked (whatever the PKI's
#                       index.txt says about the certificate)
#   multi               correctly signed, two single responses: the request's
#                       certificate and sni2
#   trylater internalerror malformedrequest sigrequired unauthorized
#                       the 5-byte error response (30 03 0A 01 0N)
#   hang                reads the request, never answers (until the client
#                       goes away, or 30 s)
#   close               reads the request, closes without a byte
#   slow                a good response trickled out a byte every 0.25 s
#   http500, http404    those HTTP statuses, text body
#   redirect            302 to itself (a redirect loop for clients that
#                       follow)
#   wrongtype           a good response as Content-Type text/html
#   empty               200, application/ocsp-response, empty body
#   garbage             2 KB of random bytes as application/ocsp-response
#   truncated           the first half of a good response
#   huge                10 MB body with its Content-Length
#   hugestream          10 MB body without Content-Length (ends at close)
#   switch/<mode>       answers as good while the --switch FILE does not
#                       exist, as <mode> once it does: a responder that
#                       turns bad between two fetches, without a restart
#                       (and good again when the file is removed)
#   nonext-old          correctly signed, without nextUpdate, thisUpdate two
#                       days ago (faketime -2d): older than any maximum age
#   replay/<name>       the bytes of the file <pki>/replay/<name>.der, as
#                       they are, whatever was asked (404 without the file):
#                       a response signed beforehand, e.g. one OLDER than
#                       the current one (t/lib/OCSPOrder.pm writes them);
#                       <name> is [A-Za-z0-9_.-]+. With switch:
#                       switch/replay/<name>
# expired, future and nonext-old need faketime (Debian package faketime); without it
# they answer HTTP 500 and say why on stderr.
#
# Perl core modules only, plus IO::Socket::SSL for --tls.
use strict;
use warnings;

use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::Socket::IP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(WNOHANG _exit sigprocmask SIG_BLOCK SIG_SETMASK SIGCHLD);
use Time::HiRes ();

my $MAX_REQUEST = 64 * 1024;   # OCSP requests are a few hundred bytes
my $IO_TIMEOUT  = 30;          # a stuck client must not keep a child forever
my $EXCHANGE_SECONDS;          # one exchange's deadline: set with --delay

# ---- options --------------------------------------------------------------
my ($port, $pki, $logfile, $pidfile, $nmin, $ndays, $delay, $switch, $tls,
    $drop_every, $recvfile, $keepalive);
my $bind = '127.0.0.1';
GetOptions(
    'port=i'    => \$port,
    'pki=s'     => \$pki,
    'log=s'     => \$logfile,
    'pidfile=s' => \$pidfile,
    'nmin=i'    => \$nmin,
    'ndays=i'   => \$ndays,
    'delay=f'   => \$delay,
    'switch=s'  => \$switch,
    'bind=s'    => \$bind,
    'tls=s'     => \$tls,
    'drop-every=i' => \$drop_every,
    'received=s' => \$recvfile,
    'keepalive:i' => \$keepalive,
) or usage();
usage() unless defined $port && defined $pki && defined $logfile;
usage("--nmin and --ndays are exclusive") if defined $nmin && defined $ndays;
usage("--drop-every must be 2 or more") if defined $drop_every && $drop_every < 2;
usage("--keepalive takes 1 to 3600 seconds") if $keepalive && $keepalive > 3600;
$keepalive = 60 if defined $keepalive && !$keepalive;   # --keepalive alone
usage("--delay must be between 0 and 3600 seconds")
    if defined $delay && ($delay < 0 || $delay > 3600);
usage("--bind takes a loopback address: 127.0.0.1 (127.x.y.z) or ::1")
    unless $bind =~ /^127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\z/ || $bind eq '::1';
die "ocsp_responder: $pki/index.txt not found (run scripts/mkpki.sh)\n"
    unless -f "$pki/index.txt";
my ($tls_cert, $tls_key) = tls_files($tls);
# --delay is not a stuck client: it gets its own time on top.
$EXCHANGE_SECONDS = $IO_TIMEOUT + ($delay ? int($delay) + 1 : 0);

# The URL clients reach us under, up to the port (redirect answers name it).
my $BASE = ($tls ? 'https' : 'http') . '://'
         . ($bind =~ /:/ ? "[$bind]" : $bind) . ":$port";

# --tls CERT,KEY: both files must be there, and IO::Socket::SSL installed.
sub tls_files {
    my ($arg) = @_;
    return () unless defined $arg;
    my ($crt, $key) = split /,/, $arg, 2;
    usage("--tls takes CERT,KEY") unless defined $key && $crt ne '' && $key ne '';
    -r $_ or die "ocsp_responder: --tls: cannot read $_\n" for $crt, $key;
    eval { require IO::Socket::SSL; 1 }
        or die "ocsp_responder: --tls needs IO::Socket::SSL"
             . " (Debian package libio-socket-ssl-perl)\n";
    return ($crt, $key);
}

# nextUpdate of every response. Without -nmin/-ndays openssl omits
# nextUpdate altogether, which clients treat very differently, so we always
# set one.
my @VALIDITY = defined $nmin ? ('-nmin', $nmin)
             : ('-ndays', defined $ndays ? $ndays : 1);

sub usage {
    my ($msg) = @_;
    print STDERR "ocsp_responder: $msg\n" if $msg;
    print STDERR "usage: $0 --port P --pki DIR --log FILE [--pidfile F]"
               . " [--nmin N | --ndays N] [--delay SECONDS] [--switch FILE]"
               . " [--bind ADDR] [--tls CERT,KEY] [--drop-every N]"
               . " [--received FILE] [--keepalive[=SECONDS]]\n";
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

    # ---- fault injection (t/4*.t): see the list at the top ----------------
    # Signed by a delegated certificate the issuer made without the
    # OCSPSigning usage: its signature proves nothing (RFC 6960 4.2.2.2).
    noeku => sub {
        ocsp_sign($_[0], 'ocsp-signer-noeku.crt', 'ocsp-signer-noeku.key');
    },
    # Valid from two days ago until yesterday.
    expired => sub {
        ocsp_sign_with({ faketime => '-2d', validity => ['-ndays', 1] },
                       $_[0], 'intermediate.crt', 'intermediate.key',
                       '-resp_no_certs');
    },
    # thisUpdate a day from now (far beyond any clock skew allowance).
    future => sub {
        ocsp_sign_with({ faketime => '+1d' }, $_[0], 'intermediate.crt',
                       'intermediate.key', '-resp_no_certs');
    },
    nonext => sub {
        ocsp_sign_with({ validity => [] }, $_[0], 'intermediate.crt',
                       'intermediate.key', '-resp_no_certs');
    },
    # No nextUpdate and a thisUpdate two days old: refused by a client with
    # a maximum age for such responses (mod_ssl's SSLStaplingResponseMaxAge).
    'nonext-old' => sub {
        ocsp_sign_with({ faketime => '-2d', validity => [] }, $_[0],
                       'intermediate.crt', 'intermediate.key', '-resp_no_certs');
    },
    # A fixed DER file, replayed byte for byte (the request is not looked
    # at): $_[2] is the <name> of replay/<name>.
    replay => sub {
        my $name = $_[2];
        return (404, 'text/plain', "replay: no name\n")
            unless defined $name && $name =~ /^[\w.-]+\z/;
        my $der = slurp("$pki/replay/$name.der");
        return (404, 'text/plain', "replay: no file $name.der\n")
            unless defined $der && $der ne '';
        return (200, 'application/ocsp-response', $der);
    },
    unknown => sub {
        ocsp_sign_with({ empty_index => 1 }, $_[0], 'intermediate.crt',
                       'intermediate.key', '-resp_no_certs');
    },
    # Correctly signed: the certificate asked for is revoked (an index that
    # lists it as revoked an hour ago, whatever the PKI's index.txt says).
    revoked => sub {
        my $serial = eval { request_serial($_[0]) };
        return (500, 'text/plain', "revoked: $@") unless defined $serial;
        ocsp_sign_with({ revoked_serial => $serial }, $_[0], 'intermediate.crt',
                       'intermediate.key', '-resp_no_certs');
    },
    multi => sub {
        my $two = eval { two_cert_request($_[0], "$pki/requests/sni2.der") };
        return (500, 'text/plain', "multi: $@") unless defined $two;
        ocsp_sign($two, 'intermediate.crt', 'intermediate.key',
                  '-resp_no_certs');
    },
    # OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED } without bytes.
    trylater         => sub { error_status(3) },
    internalerror    => sub { error_status(2) },
    malformedrequest => sub { error_status(1) },
    sigrequired      => sub { error_status(5) },
    unauthorized     => sub { error_status(6) },
    http500  => sub { (500, 'text/plain', "internal server error\n") },
    http404  => sub { (404, 'text/plain', "no such responder\n") },
    redirect => sub { (302, 'text/plain', "see elsewhere\n", $_[1]) },
    wrongtype => sub {
        my ($st, undef, $body) = good($_[0]);
        return $st == 200 ? (200, 'text/html', $body) : ($st, 'text/plain', $body);
    },
    empty   => sub { (200, 'application/ocsp-response', '') },
    garbage => sub {
        (200, 'application/ocsp-response',
         join('', map { chr int rand 256 } 1 .. 2048));
    },
    truncated => sub {
        my ($st, $ct, $body) = good($_[0]);
        return ($st, $ct, $st == 200 ? substr($body, 0, length($body) >> 1) : $body);
    },
    # The rest answer on the connection themselves: they return a sub that
    # gets the socket and returns (status for the log, bytes sent).
    hang => sub {
        return (sub {
            my ($conn) = @_;
            wait_for_close($conn, $IO_TIMEOUT - 2);
            return ('-', 0);
        });
    },
    close => sub { return (sub { return ('-', 0) }) },
    slow => sub {
        my ($st, $ct, $body) = good($_[0]);
        return ($st, $ct, $body) if $st != 200;
        return (sub {
            my ($conn) = @_;
            my $sent = 0;
            $SIG{PIPE} = 'IGNORE';
            syswrite($conn, http_head(200, $ct, length $body)) or return (200, 0);
            my $until = Time::HiRes::time() + $IO_TIMEOUT - 2;
            while ($sent < length $body && Time::HiRes::time() < $until) {
                Time::HiRes::sleep(0.25);
                syswrite($conn, substr($body, $sent, 1)) or last;
                $sent++;
            }
            return (200, $sent);
        });
    },
    huge       => sub { return (sub { send_huge($_[0], 1) }) },
    hugestream => sub { return (sub { send_huge($_[0], 0) }) },
);
$MODES{otherserial} = $MODES{wrongserial};

sub good { $MODES{good}->(@_) }

sub error_status {
    my ($n) = @_;
    return (200, 'application/ocsp-response', pack('C*', 0x30, 3, 0x0a, 1, $n));
}

my $HUGE = 10 * 1024 * 1024;

# 10 MB of zeros as application/ocsp-response, with or without announcing
# the length; stops when the client has had enough. Returns (status, bytes).
sub send_huge {
    my ($conn, $with_length) = @_;
    my $chunk = "\0" x 65536;
    my $sent = 0;
    $SIG{PIPE} = 'IGNORE';
    my $head = "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n"
             . ($with_length ? "Content-Length: $HUGE\r\n" : '')
             . "Connection: close\r\n\r\n";
    syswrite($conn, $head) or return (200, 0);
    while ($sent < $HUGE) {
        my $n = syswrite($conn, $chunk);
        last unless $n;
        $sent += $n;
    }
    return (200, $sent);
}

# Waits until the peer closes the connection (or SECONDS pass), reading and
# dropping whatever it sends.
sub wait_for_close {
    my ($conn, $secs) = @_;
    my $until = Time::HiRes::time() + $secs;
    my $rin = '';
    vec($rin, fileno($conn), 1) = 1;
    while ((my $left = $until - Time::HiRes::time()) > 0) {
        my $n = select(my $rout = $rin, undef, undef, $left);
        next if $n < 0 && $!{EINTR};
        last if $n <= 0;
        my $got = sysread($conn, my $buf, 4096);
        last unless $got;                       # EOF or error: gone
    }
}

# ---- DER, just enough to merge two OCSP requests ---------------------------
# (tag, header length, content length) of the TLV at POS, or die.
sub der_tlv {
    my ($buf, $pos) = @_;
    die "truncated DER\n" if $pos + 2 > length $buf;
    my ($tag, $len) = unpack 'CC', substr($buf, $pos, 2);
    my $hl = 2;
    if ($len & 0x80) {
        my $n = $len & 0x7f;
        die "bad DER length\n" if $n < 1 || $n > 3 || $pos + 2 + $n > length $buf;
        $len = 0;
        $len = ($len << 8) | ord substr($buf, $pos + $hl++, 1) for 1 .. $n;
    }
    die "truncated DER\n" if $pos + $hl + $len > length $buf;
    return ($tag, $hl, $len);
}

sub der_seq {
    my $c = join '', @_;
    my $n = length $c;
    my $len = $n < 0x80 ? chr $n
            : $n < 0x100 ? pack('CC', 0x81, $n) : pack('Cn', 0x82, $n);
    return "\x30$len$c";
}

# The first Request (SEQUENCE { reqCert CertID ... }) of a DER OCSPRequest.
sub first_request {
    my ($der) = @_;
    my ($t, $hl, $l) = der_tlv($der, 0);            # OCSPRequest
    die "not an OCSP request\n" unless $t == 0x30;
    my $p = $hl;
    ($t, $hl, $l) = der_tlv($der, $p);              # tbsRequest
    die "not an OCSP request\n" unless $t == 0x30;
    $p += $hl;
    ($t, $hl, $l) = der_tlv($der, $p);
    while ($t == 0xa0 || $t == 0xa1) {              # version, requestorName
        $p += $hl + $l;
        ($t, $hl, $l) = der_tlv($der, $p);
    }
    die "no requestList\n" unless $t == 0x30;     # requestList
    $p += $hl;
    ($t, $hl, $l) = der_tlv($der, $p);              # its first Request
    die "empty requestList\n" unless $t == 0x30;
    return substr($der, $p, $hl + $l);
}

# The serial number (upper-case hex, as in index.txt) asked for by the first
# Request of a DER request file: CertID ::= SEQUENCE { hashAlgorithm,
# issuerNameHash, issuerKeyHash, serialNumber INTEGER }.
sub request_serial {
    my ($file) = @_;
    my $req = first_request(slurp($file) // '');
    my ($t, $hl, $l) = der_tlv($req, 0);            # Request
    my $p = $hl;
    ($t, $hl, $l) = der_tlv($req, $p);              # CertID
    die "no CertID\n" unless $t == 0x30;
    $p += $hl;
    for (1 .. 3) {                                  # skip to serialNumber
        ($t, $hl, $l) = der_tlv($req, $p);
        $p += $hl + $l;
    }
    ($t, $hl, $l) = der_tlv($req, $p);
    die "no serialNumber\n" unless $t == 0x02 && $l > 0;
    my $hex = uc unpack 'H*', substr($req, $p + $hl, $l);
    $hex =~ s/^(?:00)+(?=..)//;
    return $hex;
}

# A request file asking for the certificates of two request files at once.
sub two_cert_request {
    my ($req_a, $req_b) = @_;
    my $der = der_seq(der_seq(der_seq(first_request(slurp($req_a) // ''),
                                      first_request(slurp($req_b) // ''))));
    my $dir = tempdir('ocsp-req2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>:raw', "$dir/req.der" or die "write request: $!\n";
    print $fh $der;
    close $fh or die "write request: $!\n";
    return "$dir/req.der";
}

# ocsp_sign REQFILE SIGNER-CRT SIGNER-KEY [EXTRA-ARGS]: runs `openssl ocsp` as a
# one-shot responder over the PKI's index and returns an HTTP triple.
sub ocsp_sign { ocsp_sign_with({}, @_) }

# ocsp_sign_with {OPTIONS}, REQFILE, SIGNER-CRT, SIGNER-KEY [EXTRA-ARGS]:
# ocsp_sign with: validity => [openssl args] instead of --nmin/--ndays ([]:
# no nextUpdate), faketime => '-2d' (run openssl under that clock offset),
# empty_index => 1 (an index without any certificate: status unknown),
# revoked_serial => HEX (an index where only that serial is, revoked).
sub ocsp_sign_with {
    my ($o, $reqfile, $rsigner, $rkey, @extra) = @_;
    my $dir = tempdir('ocsp-resp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $out = "$dir/resp.der";
    my $index = "$pki/index.txt";
    if ($o->{empty_index} || defined $o->{revoked_serial}) {
        $index = "$dir/index.txt";
        my $entry = '';
        if (defined $o->{revoked_serial}) {
            my @t = gmtime(time - 3600);
            my $rev = sprintf '%02d%02d%02d%02d%02d%02dZ', $t[5] % 100, $t[4] + 1, @t[3, 2, 1, 0];
            $entry = "R\t491231235959Z\t$rev,keyCompromise\t$o->{revoked_serial}\tunknown\t/CN=revoked\n";
        }
        for (["$dir/index.txt", $entry], ["$dir/index.txt.attr", "unique_subject = no\n"]) {
            open my $fh, '>', $_->[0] or die "$_->[0]: $!";
            print $fh $_->[1];
            close $fh or die "$_->[0]: $!";
        }
    }
    my @pre;
    if (defined $o->{faketime}) {
        my ($ft) = grep { -x "$_/faketime" } split /:/, $ENV{PATH} // '';
        unless ($ft) {
            print STDERR "ocsp_responder: faketime is not installed"
                       . " (Debian package faketime)\n";
            return (500, 'text/plain', "faketime is not installed\n");
        }
        @pre = ("$ft/faketime", '-f', $o->{faketime});
    }
    my @validity = $o->{validity} ? @{ $o->{validity} } : @VALIDITY;
    my @cmd = (@pre, 'openssl', 'ocsp',
               '-index', $index, '-CA', "$pki/intermediate.crt",
               '-rsigner', "$pki/$rsigner", '-rkey', "$pki/$rkey",
               '-reqin', $reqfile, '-respout', $out, @validity, @extra);
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

my $PEER = '-';                 # the client's address, set in each child
my $CONN = 0;                   # the connection's number (accept order)
my $REUSED = 0;                 # not the first request of its connection
my $METHOD = '-';               # the request's, once read

my $RECV;
if (defined $recvfile) {
    sysopen($RECV, $recvfile, O_WRONLY | O_APPEND | O_CREAT, 0644)
        or die "ocsp_responder: cannot open $recvfile: $!\n";
}

sub log_line {
    my ($fh, $mode, $status, $reqlen, $resplen, $path) = @_;
    $path = '-' unless defined $path && $path =~ m{^/[\w./-]*\z};   # log-safe
    syswrite($fh, join(' ', time, $mode, $status, $reqlen, $resplen, $path,
                       $PEER, $tls ? 'https' : 'http', $METHOD,
                       $REUSED ? 'reused' : 'new', $CONN) . "\n");
}

sub log_request  { log_line($LOG, @_) }

# A request read, not yet answered (--received).
sub log_received {
    my ($mode, $reqlen, $path) = @_;
    log_line($RECV, $mode, 'recv', $reqlen, '-', $path) if $RECV;
}

# ---- HTTP -----------------------------------------------------------------
# Reads the rest of the request whose first line is $line from $conn.
# Returns (method, path, body, keep: the client allows another request on
# the connection) or an HTTP error status number.
sub read_request {
    my ($conn, $line) = @_;
    return 400 unless defined $line;
    my ($method, $path, $minor) = $line =~ m{^(GET|POST) (/\S*) HTTP/1\.([01])\r?\n\z}
        or return 400;
    $METHOD = $method;
    my %hdr;
    while (defined(my $h = <$conn>)) {
        last if $h =~ /^\r?\n\z/;
        $hdr{lc $1} = $2 if $h =~ /^([^:\s]+):\s*(.*?)\s*\r?\n\z/;
    }
    my $c = lc($hdr{connection} // '');
    my $keep = $minor ? $c !~ /\bclose\b/ : $c =~ /\bkeep-alive\b/;
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
    return ($method, $path, $body, $keep);
}

my %REASON = (200 => 'OK', 302 => 'Found', 400 => 'Bad Request',
              404 => 'Not Found', 405 => 'Method Not Allowed',
              411 => 'Length Required', 413 => 'Payload Too Large',
              500 => 'Internal Server Error');

# Whether this answer leaves the connection open for another request
# (--keepalive, and the client allows it).
my $KEEP = 0;

sub http_head {
    my ($status, $ctype, $len, $location) = @_;
    return ($keepalive ? 'HTTP/1.1' : 'HTTP/1.0') . " $status "
         . ($REASON{$status} // 'Status') . "\r\n"
         . "Content-Type: $ctype\r\n"
         . (defined $location ? "Location: $location\r\n" : '')
         . ($status == 405 ? "Allow: POST\r\n" : '')
         . "Content-Length: $len\r\n"
         . 'Connection: ' . ($KEEP ? 'keep-alive' : 'close') . "\r\n\r\n";
}

sub send_response {
    my ($conn, $status, $ctype, $body, $location) = @_;
    print $conn http_head($status, $ctype, length($body), $location) . $body;
}

# One request, whose first line is $line: parse, dispatch on the first path
# segment, answer, log. Returns whether the connection stays open for
# another request.
sub handle_request {
    my ($conn, $line) = @_;
    $METHOD = '-';
    my ($method, $path, $body, $keep) = read_request($conn, $line);
    if ($method =~ /^\d+\z/) {                     # parse error
        $KEEP = 0;
        log_received('-', 0, '-');
        send_response($conn, $method, 'text/plain', "bad request\n");
        log_request('-', $method, 0, 0, '-');
        return 0;
    }
    $KEEP = $keepalive && $keep;
    my (undef, $mode, $rest) = split m{/}, $path, 3;
    my $logpath = $path;
    # noget/<mode>: a responder that serves POST only.
    my $noget = defined $mode && $mode eq 'noget';
    ($mode, $rest) = split m{/}, $rest // '', 2 if $noget;
    # switch/<mode>: good until the --switch file exists, then <mode>.
    # Modes with an argument in the path (replay/<name>): it is taken off
    # before a GET request's base64 part, also while a switch says good.
    my $arg;
    if (defined $mode && $mode eq 'switch') {
        ($mode, $rest) = split m{/}, $rest // '', 2;
        ($arg, $rest) = split m{/}, $rest // '', 2
            if defined $mode && $mode eq 'replay';
        $mode = 'good' unless defined $switch && -e $switch;
    }
    elsif (defined $mode && $mode eq 'replay') {
        ($arg, $rest) = split m{/}, $rest // '', 2;
    }
    $mode = '-' unless defined $mode && $mode =~ /^[\w.-]+\z/;   # log-safe
    if ($method eq 'GET') {
        # RFC 6960 A.1, RFC 5019 5: GET {url}/{url-encoding of base-64
        # encoding of DER}: the last path segment.
        my ($b64) = ($rest // '') =~ m{([^/]*)\z};
        $logpath = substr($path, 0, length($path) - length($b64));
        $logpath =~ s{(?<=.)/\z}{};
        $b64 =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        $body = decode_base64($b64);
    }
    log_received($mode, length $body, $logpath);
    # A slow responder: the request is in, the answer comes late. The client
    # may have given up meanwhile: the request is still logged (no SIGPIPE).
    if ($delay) {
        $SIG{PIPE} = 'IGNORE';
        Time::HiRes::sleep($delay);
    }
    my $handler = $MODES{$mode};
    my ($status, $ctype, $resp, $location) =
          $noget && $method eq 'GET' ? (405, 'text/plain', "POST only\n")
        : !$handler     ? (404, 'text/plain', "unknown mode\n")
        : $body eq ''   ? (400, 'text/plain', "empty request\n")
        :                 $handler->(save_request($body), "$BASE$logpath", $arg);
    if (ref $status eq 'CODE') {            # a mode that does its own I/O
        $KEEP = 0;
        my ($logstatus, $sent) = $status->($conn);
        log_request($mode, $logstatus, length $body, $sent, $logpath);
        return 0;
    }
    send_response($conn, $status, $ctype, $resp, $location);
    log_request($mode, $status, length $body, length $resp, $logpath);
    return $KEEP;
}

# The first line of the next request on a kept connection, or undef when
# the client closed it. Waiting for it is bounded by --keepalive (the alarm
# ends the child), reading the request once it comes by the exchange's own
# deadline again.
sub next_request_line {
    my ($conn) = @_;
    alarm $keepalive;
    my $line = <$conn>;
    alarm $EXCHANGE_SECONDS;
    return $line;
}

# One connection: its requests, one after the other.
sub serve_connection {
    my ($conn) = @_;
    binmode $conn;
    $REUSED = 0;
    my $line = <$conn>;
    while (handle_request($conn, $line)) {
        $line = next_request_line($conn);
        return unless defined $line;
        $REUSED = 1;
    }
}

sub save_request {
    my ($der) = @_;
    my $dir = tempdir('ocsp-req-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>:raw', "$dir/req.der" or die "write request: $!";
    print $fh $der;
    close $fh or die "write request: $!";
    return "$dir/req.der";
}

# With --tls: the server side of the TLS handshake on an accepted
# connection (in its child, so a stuck client never holds up accept).
# False, and logged, when the client gave up: e.g. it refused our
# certificate, which is what tests of responder verification look for.
sub start_tls {
    my ($conn) = @_;
    return 1 unless $tls;
    return 1 if IO::Socket::SSL->start_SSL($conn,
        SSL_server    => 1,
        SSL_cert_file => $tls_cert,
        SSL_key_file  => $tls_key,
        Timeout       => $IO_TIMEOUT);
    log_request('-', 'tls-failed', 0, 0, '-');
    return 0;
}

# ---- server ---------------------------------------------------------------
my $listener = IO::Socket::IP->new(
    LocalHost => $bind,             # loopback only (checked above)
    LocalPort => $port,
    Proto     => 'tcp',
    Listen    => 128,
    ReuseAddr => 1,                 # quick restarts between tests
) or die "ocsp_responder: cannot listen on $BASE: $@\n";

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

my $accepted = 0;
while (1) {
    my $conn = $listener->accept;
    next unless $conn;                  # EINTR from SIGCHLD
    $CONN = ++$accepted;
    if ($drop_every && $accepted % $drop_every == 0) {
        $PEER = $conn->peerhost // '-';
        log_request('-', 'dropped', 0, 0, '-');
        close $conn;
        next;
    }
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
        alarm $EXCHANGE_SECONDS;
        $PEER = $conn->peerhost // '-';
        serve_connection($conn) if start_tls($conn);
        close $conn;
        exit 0;
    }
    $children{$pid} = 1;
    sigprocmask(SIG_SETMASK, $old);
    close $conn;
}
