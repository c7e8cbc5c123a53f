package OCSPLoad;
# Helpers for the load scenarios t/44-cold-hang.t, t/45-graceful-hang.t and
# t/46-status-many.t, on top of OCSPServer.pm:
#
#   my $l = OCSPLoad::Listener->new(dir => $w);   # accepts, never answers
#   $l->start;  $l->port;  $l->accepts;  $l->stop;  # accepts: epoch times
#
#   my $c = OCSPLoad::Clients->new(dir => $w, port => $h->port,
#               servername => 'rsa.test', n => 4, seconds => 60, max => 1500);
#   $c->start;  ...;  $c->stop;          # or $c->wait (until seconds/max)
#   my @r = $c->results;                 # { time, elapsed, stapled, connected }
#   my $s = OCSPLoad::stats(@r);         # { n, max, p99, p50, stapled, ... }
#
#   OCSPLoad::make_leaves($pki, $w, n => 1000, prefix => 'm');  # ECDSA leaves
#   my %calls = OCSPLoad::redis_calls($redis);  # INFO commandstats: cmd => n
#
# Every listener and client loop started here is registered with
# OCSPServer::track, so OCSPServer's END block stops it when the test ends,
# dies or hits OCSPServer::deadline. Every wait is bounded.
use strict;
use warnings FATAL => 'all';

use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use IO::Socket::INET;
use POSIX ();
use POSIX qw(strftime WNOHANG);
use Time::HiRes qw(time sleep);

use OCSPServer ();

# ===========================================================================
package OCSPLoad::Listener;
# A responder that accepts TCP connections and never sends a byte: each
# accepted connection is logged ("<epoch> <peer port>", one line, at once)
# and held open, its request read and thrown away, until the client gives up
# (closes) or 300 s pass. One forked process with a select loop, on
# 127.0.0.1 only. Unlike OCSPServer::hanging_listener (which never accepts)
# this one tells when it was asked, so a test can see retries.
use POSIX ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);

# new(dir => WORKDIR, name => 'hang')
sub new {
    my ($class, %a) = @_;
    my $self = bless { name => 'hang', %a }, $class;
    $self->{log} = "$self->{dir}/$self->{name}.accepts";
    return $self;
}

sub port     { $_[0]{port} }
sub log_file { $_[0]{log} }

sub start {
    my ($self) = @_;
    die "listener already running\n" if $self->{pid};
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or die "listener: $!\n";
    $self->{port} = $ls->sockport;
    open my $touch, '>>', $self->{log} or die "$self->{log}: $!";
    close $touch;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM ALRM);
        _serve($ls, $self->{log});
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    OCSPServer::track($self);
    return 1;
}

sub _serve {
    my ($ls, $logfile) = @_;
    sysopen(my $log, $logfile, O_WRONLY | O_APPEND | O_CREAT, 0644) or POSIX::_exit(1);
    my %conn;                        # fileno => [socket, accepted at]
    my $end = time + 3600;           # never outlive a test by much
    while (time < $end) {
        my $rin = '';
        vec($rin, fileno($ls), 1) = 1;
        vec($rin, $_, 1) = 1 for keys %conn;
        my $n = select(my $rout = $rin, undef, undef, 1);
        next if $n <= 0;
        if (vec($rout, fileno($ls), 1)) {
            if (my $c = $ls->accept) {
                syswrite($log, sprintf("%.3f %d\n", time, $c->peerport));
                $conn{fileno $c} = [$c, time];
            }
        }
        for my $fd (keys %conn) {
            next unless vec($rout, $fd, 1);
            my $got = sysread($conn{$fd}[0], my $buf, 65536);
            if (!$got) {                 # the client gave up
                close $conn{$fd}[0];
                delete $conn{$fd};
            }
        }
        for my $fd (keys %conn) {        # a stuck client: 300 s at most
            next if time - $conn{$fd}[1] < 300;
            close $conn{$fd}[0];
            delete $conn{$fd};
        }
    }
}

# The epoch times of the connections accepted so far.
sub accepts {
    my ($self) = @_;
    return map { (split ' ')[0] } grep { /^\d/ } split /\n/, OCSPServer::slurp($self->{log});
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid};
    OCSPServer::untrack($self);
    return 1 unless $pid;
    OCSPServer::stop_child($pid);
    return 1;
}

# ===========================================================================
package OCSPLoad::Clients;
# N client loops, each a forked process doing one OCSPServer::handshake
# (`openssl s_client -status`, its own process) after the other with
# 127.0.0.1:PORT, until stop() (a stop file), SECONDS have passed or MAX
# handshakes were done (per loop). Each handshake is one line in the loop's
# result file: "<start epoch> <elapsed> <stapled> <connected>".
use POSIX ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT O_TRUNC);

# new(dir => WORKDIR, port => PORT, servername => NAME, n => 4,
#     seconds => 60, max => 1000, pause => 0 (seconds between two
#     handshakes of a loop), name => 'clients', handshake opts (ca, tls, ...)
#     in hs => { ... })
sub new {
    my ($class, %a) = @_;
    my $self = bless { n => 4, seconds => 60, max => 1000, pause => 0,
                       name => 'clients', hs => {}, %a }, $class;
    $self->{base} = "$self->{dir}/$self->{name}";
    $self->{stopfile} = "$self->{base}.stop";
    return $self;
}

sub files { map { "$_[0]{base}.$_" } 1 .. $_[0]{n} }

sub start {
    my ($self) = @_;
    die "clients already running\n" if $self->{pids};
    unlink $self->{stopfile};
    my @pids;
    my $end = time + $self->{seconds};
    for my $i (1 .. $self->{n}) {
        my $file = "$self->{base}.$i";
        sysopen(my $out, $file, O_WRONLY | O_CREAT | O_TRUNC, 0644) or die "$file: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            $SIG{$_} = sub { POSIX::_exit(0) } for qw(INT TERM);
            $SIG{ALRM} = 'DEFAULT';
            for (1 .. $self->{max}) {
                last if time >= $end || -e $self->{stopfile};
                my $r = OCSPServer::handshake($self->{port}, $self->{servername},
                                              %{ $self->{hs} });
                syswrite($out, sprintf("%.6f %.6f %d %d\n", $r->{time}, $r->{elapsed},
                                       $r->{stapled} ? 1 : 0, $r->{connected} ? 1 : 0));
                sleep $self->{pause} if $self->{pause};
            }
            POSIX::_exit(0);         # no END blocks in the child
        }
        close $out;
        push @pids, $pid;
    }
    $self->{pids} = \@pids;
    OCSPServer::track($self);
    return 1;
}

sub _reap {
    my ($self, $timeout) = @_;
    my %left = map { $_ => 1 } @{ $self->{pids} // [] };
    OCSPServer::wait_until($timeout, sub {
        for my $pid (keys %left) {
            delete $left{$pid} if waitpid($pid, WNOHANG) == $pid || !kill(0, $pid);
        }
        return !%left;
    }, 0.05);
    # Reaped PIDs are forgotten at once: a recycled one is never waited for.
    $self->{pids} = [ grep { $left{$_} } @{ $self->{pids} // [] } ];
    return keys %left;
}

# wait(): until every loop has ended by itself (SECONDS + one handshake's
# timeout at most); then stop() whatever is left.
sub wait {
    my ($self) = @_;
    $self->_reap($self->{seconds} + $OCSPServer::S_CLIENT_TIMEOUT + 5);
    return $self->stop;
}

# stop(): the loops end after their current handshake (bounded by its
# s_client timeout), TERM and KILL after that.
sub stop {
    my ($self) = @_;
    OCSPServer::untrack($self);
    my $pids = delete $self->{pids} or return 1;
    if (open my $fh, '>', $self->{stopfile}) { close $fh }
    local $self->{pids} = $pids;
    my @left = $self->_reap($OCSPServer::S_CLIENT_TIMEOUT + 5);
    for my $pid (@left) {
        kill 'TERM', $pid;
        OCSPServer::stop_child($pid);
    }
    return 1;
}

# Every handshake done so far: { time, elapsed, stapled, connected, loop },
# in order of start time (their number in scalar context).
sub results {
    my ($self) = @_;
    my @r;
    for my $i (1 .. $self->{n}) {
        for (split /\n/, OCSPServer::slurp("$self->{base}.$i")) {
            my @f = split ' ';
            next unless @f == 4;
            push @r, { time => $f[0], elapsed => $f[1], stapled => $f[2],
                       connected => $f[3], loop => $i };
        }
    }
    @r = sort { $a->{time} <=> $b->{time} } @r;
    return wantarray ? @r : scalar @r;
}

# ===========================================================================
package OCSPLoad;

# stats(RESULTS...): n, max, p99, p50 (elapsed, seconds), stapled,
# connected, and the slowest result (slowest).
sub stats {
    my (@r) = @_;
    my @e = sort { $a <=> $b } map { $_->{elapsed} } @r;
    my ($slowest) = sort { $b->{elapsed} <=> $a->{elapsed} } @r;
    my $q = sub { @e ? $e[ int($_[0] * $#e + 0.5) ] : 0 };
    return { n => scalar @r, max => @e ? $e[-1] : 0, p99 => $q->(0.99),
             p50 => $q->(0.5), stapled => scalar(grep { $_->{stapled} } @r),
             connected => scalar(grep { $_->{connected} } @r),
             slowest => $slowest };
}

# One line for a diag.
sub describe_stats {
    my ($s) = @_;
    return sprintf('%d handshakes: max %.3f s, p99 %.3f s, median %.3f s, %d connected, %d stapled',
                   @$s{qw(n max p99 p50 connected stapled)});
}

# make_leaves(PKI, WORKDIR, n => N, prefix => 'm', serial0 => 0x400000,
#             url => PKI->url('good'), parallel => 4, days => 30):
# N ECDSA P-256 leaves PREFIX1 .. PREFIXN (CN=PREFIXi.test, SAN the same)
# issued by the test PKI's intermediate with the responder URL in their AIA,
# as t/36-many.t makes them: one `openssl req -x509 -CA` per certificate
# (key, request and signature in one go), PARALLEL at a time. Each is listed
# as valid in the PKI's index.txt (for the responder), and PKI->crt(NAME)
# holds the leaf and the intermediate. Returns the seconds it took; dies
# when openssl failed.
sub make_leaves {
    my ($pki, $w, %o) = @_;
    my $n = $o{n} // die "make_leaves: n\n";
    my $prefix = $o{prefix} // 'm';
    my $serial0 = $o{serial0} // 0x400000;
    my $url = $o{url} // $pki->url('good');
    my $parallel = $o{parallel} // 4;
    my $days = $o{days} // 30;
    my $dir = $pki->dir;
    my $cnf = "$w/$prefix-leaves.cnf";
    open my $fh, '>', $cnf or die "$cnf: $!";
    print $fh <<"EOF";
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = placeholder
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:$url
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    close $fh;

    my $t0 = time;
    my (%running, @failed);
    my $reap = sub {
        my $pid = wait;
        return if $pid < 0;
        push @failed, $running{$pid} if $?;
        delete $running{$pid};
    };
    for my $i (1 .. $n) {
        $reap->() while keys %running >= $parallel;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', "$w/$prefix-leaf.err.$i";
            no warnings 'exec';
            exec 'openssl', 'req', '-x509', '-config', $cnf,
                '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                '-keyout', "$dir/$prefix$i.key", '-out', "$dir/$prefix$i.pem",
                '-subj', "/CN=$prefix$i.test", '-addext', "subjectAltName=DNS:$prefix$i.test",
                '-CA', "$dir/intermediate.crt", '-CAkey', "$dir/intermediate.key",
                '-days', $days, '-set_serial', $serial0 + $i, '-sha256';
            POSIX::_exit(127);
        }
        $running{$pid} = $i;
    }
    $reap->() while keys %running;
    die "make_leaves: openssl failed for $prefix$failed[0]: "
        . OCSPServer::slurp("$w/$prefix-leaf.err.$failed[0]") . "\n" if @failed;
    unlink glob "$w/$prefix-leaf.err.*";

    my $expiry = strftime('%y%m%d%H%M%SZ', gmtime(time + $days * 86400));
    my $intermediate = OCSPServer::slurp("$dir/intermediate.crt");
    open my $idx, '>>', "$dir/index.txt" or die "$dir/index.txt: $!";
    for my $i (1 .. $n) {
        printf $idx "V\t%s\t\t%X\tunknown\t/CN=%s%d.test\n", $expiry, $serial0 + $i, $prefix, $i;
        open my $crt, '>', "$dir/$prefix$i.crt" or die "$dir/$prefix$i.crt: $!";
        print $crt OCSPServer::slurp("$dir/$prefix$i.pem"), $intermediate;
        close $crt or die "$dir/$prefix$i.crt: $!";
    }
    close $idx or die "$dir/index.txt: $!";
    return time - $t0;
}

# redis_calls(REDIS): INFO commandstats of an OCSPCacheServer::Redis as
# { command => calls } (lower case: get, mget, setex, info, ...).
sub redis_calls {
    my ($redis) = @_;
    my $info = $redis->cmd('INFO', 'commandstats') // '';
    my %c;
    while ($info =~ /^cmdstat_([^:\s]+):calls=(\d+)/mg) {
        $c{lc $1} = $2;
    }
    return %c;
}

# The commands that read records: what a status request must not send.
our @READ_COMMANDS = qw(get mget getex getdel exists hget hmget);

# reads(CALLS): the sum of the read commands' calls in a redis_calls hash.
sub reads {
    my (%c) = @_;
    my $n = 0;
    $n += $c{$_} // 0 for @READ_COMMANDS;
    return $n;
}

1;
