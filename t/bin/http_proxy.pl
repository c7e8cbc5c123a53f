#!/usr/bin/perl
# http_proxy.pl --port P --log FILE [--pidfile F]
#
# A tiny loopback HTTP forward proxy for mod_ocspstaple's tests
# (OCSPStaplingProxy): it listens on 127.0.0.1:P only, accepts requests in
# absolute form ("POST http://127.0.0.1:1234/good HTTP/1.1"), forwards them
# to 127.0.0.1 targets only (anything else gets 403, CONNECT gets 405) and
# relays the answer. One request per connection, then close.
#
# Log: one line per request, appended to --log when it is done:
#   <epoch> <request line> -> <status of the answer | 403 | 502 ...>
# e.g. "1700000000 POST http://127.0.0.1:41234/good HTTP/1.1 -> 200".
#
# --port 0 lets the kernel choose; the PID file (written once the socket
# listens) then holds "PID PORT". SIGTERM/SIGINT: stop our own children,
# remove the PID file, exit 0. Perl core modules only.
use strict;
use warnings;

use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use POSIX qw(WNOHANG _exit sigprocmask SIG_BLOCK SIG_SETMASK SIGCHLD);

my $IO_TIMEOUT = 30;          # a stuck peer must not keep a child forever
my $MAX_BODY   = 64 * 1024;

my ($port, $logfile, $pidfile);
GetOptions('port=i' => \$port, 'log=s' => \$logfile, 'pidfile=s' => \$pidfile)
    && defined $port && defined $logfile
    or die "usage: $0 --port P --log FILE [--pidfile F]\n";

sysopen(my $LOG, $logfile, O_WRONLY | O_APPEND | O_CREAT, 0644)
    or die "http_proxy: cannot open $logfile: $!\n";
sub log_line { syswrite($LOG, join(' ', time, @_) . "\n") }

sub reply {
    my ($conn, $status, $text) = @_;
    print $conn "HTTP/1.0 $status $text\r\nContent-Type: text/plain\r\n"
              . "Content-Length: " . (length($text) + 1) . "\r\n"
              . "Connection: close\r\n\r\n$text\n";
    return $status;
}

# One client connection: returns the status to log.
sub handle {
    my ($conn, $line) = @_;
    my ($method, $uri, $version) = $line =~ m{^(\S+) (\S+) (HTTP/1\.[01])\z}
        or return reply($conn, 400, 'Bad Request');
    return reply($conn, 405, 'Method Not Allowed') if $method eq 'CONNECT';
    my ($host, $tport, $path) = $uri =~ m{^http://([^/:]+)(?::(\d+))?(/.*)?\z}i
        or return reply($conn, 400, 'Bad Request (absolute http URI expected)');
    return reply($conn, 403, 'Forbidden (127.0.0.1 targets only)')
        unless $host eq '127.0.0.1' || lc $host eq 'localhost';
    $tport //= 80;
    $path  //= '/';
    my (@hdr, $len);
    while (defined(my $h = <$conn>)) {
        last if $h =~ /^\r?\n\z/;
        $h =~ s/\r?\n\z//;
        next if $h =~ /^(?:proxy-[\w-]*|connection|keep-alive):/i;   # hop-by-hop
        $len = $1 if $h =~ /^content-length:\s*(\d+)\s*\z/i;
        push @hdr, $h;
    }
    return reply($conn, 413, 'Payload Too Large') if ($len // 0) > $MAX_BODY;
    my $body = '';
    while (length($body) < ($len // 0)) {
        my $n = read($conn, $body, $len - length($body), length($body));
        return reply($conn, 400, 'Bad Request (short body)') unless $n;
    }
    my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $tport,
                                   Proto => 'tcp', Timeout => 10)
        or return reply($conn, 502, "Bad Gateway ($!)");
    binmode $up;
    print $up "$method $path $version\r\n", map({ "$_\r\n" } @hdr),
              "Connection: close\r\n\r\n", $body;
    my ($status, $first) = ('502', 1);
    while (1) {
        my $n = sysread($up, my $buf, 16384);
        last unless $n;
        ($status) = $buf =~ m{^HTTP/\d\.\d (\d{3})} if $first;
        $first = 0;
        print $conn $buf;
    }
    close $up;
    return $first ? reply($conn, 502, 'Bad Gateway (empty answer)') : $status // '?';
}

my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                     Proto => 'tcp', Listen => 128, ReuseAddr => 1)
    or die "http_proxy: cannot listen on 127.0.0.1:$port: $@\n";
my $parent = $$;
my %children;
$SIG{CHLD} = sub { while ((my $pid = waitpid(-1, WNOHANG)) > 0) { delete $children{$pid} } };
my $stop = sub {
    return unless $$ == $parent;
    $SIG{CHLD} = 'DEFAULT';
    kill 'TERM', keys %children;
    waitpid($_, 0) for keys %children;
    unlink $pidfile if defined $pidfile;
    exit 0;
};
$SIG{TERM} = $SIG{INT} = $stop;

if (defined $pidfile) {
    my $tmp = "$pidfile.tmp.$$";
    open my $fh, '>', $tmp or die "http_proxy: $tmp: $!\n";
    print $fh "$$ ", $listener->sockport, "\n";
    close $fh or die "http_proxy: $tmp: $!\n";
    rename $tmp, $pidfile or die "http_proxy: rename $tmp: $!\n";
}

while (1) {
    my $conn = $listener->accept or next;       # EINTR from SIGCHLD
    # SIGCHLD held until the child is recorded: a child reaped before that
    # would stay listed, and stop could signal a recycled PID.
    my $old = POSIX::SigSet->new;
    sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGCHLD), $old);
    my $pid = fork;
    if (!defined $pid) { sigprocmask(SIG_SETMASK, $old); close $conn; next }
    if (!$pid) {
        sigprocmask(SIG_SETMASK, $old);
        $SIG{CHLD} = 'DEFAULT';
        $SIG{TERM} = $SIG{INT} = $SIG{ALRM} = sub { _exit(1) };
        $SIG{PIPE} = 'IGNORE';
        close $listener;
        alarm $IO_TIMEOUT;
        binmode $conn;
        my $line = <$conn>;
        if (defined $line) {
            $line =~ s/\r?\n\z//;
            my $status = handle($conn, $line);
            $line =~ s/[^\x20-\x7e]/?/g;                 # log-safe
            log_line($line, '->', $status);
        }
        close $conn;
        _exit(0);
    }
    $children{$pid} = 1;
    sigprocmask(SIG_SETMASK, $old);
    close $conn;
}
