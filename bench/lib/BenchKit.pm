package BenchKit;
# Building blocks of bench/bench.pl: private Apache servers made from the
# templates in bench/conf/, loopback OCSP responders (scripts/ocsp_responder.pl),
# the handshake client (bench/hsclient), and what /proc says about a server's
# processes (CPU time, memory).
#
#   my $r = BenchKit::Responder->new(dir => $d, port => $p, pki => $pki);
#   $r->start(nmin => 1, delay => 5);  $r->stop;  $r->times;   # request epochs
#   my $h = BenchKit::Httpd->new(dir => $d, label => 'x', flavour => 'ocspstaple',
#               vhosts => [ [ 'rsa.test', 'rsa', 'ecdsa' ] ], extra => [ ... ]);
#   $h->start;  $h->cpu;  $h->rss_kb;  $h->stop;
#   my $c = BenchKit::client(port => $h->port, sni => 'rsa.test', secs => 2);
#   $c->{all}{handshakes}, $c->{all}{p999_ms}, $c->{status}{stapled}, ...
#
# Every process started here is stopped by PID (never by name) in stop() and
# again in an END block, also when the run dies or is interrupted. Every wait
# is bounded in time.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

our $ROOT     = abs_path(dirname(__FILE__) . '/../..');
our $HTTPD    = $ENV{BENCH_HTTPD} // '/usr/sbin/apache2';
our $MODDIR   = $ENV{BENCH_MODDIR} // '/usr/lib/apache2/modules';
our $MODULE   = "$ROOT/.libs/mod_ocspstaple.so";
our $HSCLIENT = "$ROOT/bench/hsclient";
our $CONFDIR  = "$ROOT/bench/conf";

my $OWNER = $$;
my %LIVE;              # "$obj" => $obj: everything to stop at the end

END {
    my $rc = $?;
    if ($$ == $OWNER) {
        for my $obj (values %LIVE) {
            eval { $obj->stop; 1 } or print STDERR "bench: cleanup: $@";
        }
    }
    $? = $rc;
}

# ---- small helpers ----------------------------------------------------------

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub spit {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "bench: $file: $!\n";
    print $fh $text;
    close $fh or die "bench: $file: $!\n";
}

# wait_until(TIMEOUT, CODE, INTERVAL): CODE until true or TIMEOUT seconds.
sub wait_until {
    my ($timeout, $code, $interval) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $v = $code->();
        return $v if $v || time >= $deadline;
        sleep($interval // 0.05);
    }
}

# run_logged(FILE, CMD...): runs CMD with stdout and stderr in FILE; returns
# its exit status.
sub run_logged {
    my ($file, @cmd) = @_;
    my $pid = fork // die "bench: fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $file or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        { no warnings "exec"; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return $? >> 8;
}

# A loopback port nobody listens on (the kernel's choice).
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "bench: free_port: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1) or return 0;
    close $s;
    return 1;
}

# fill(TEMPLATE-FILE, \%vars): @NAME@ placeholders replaced; a placeholder
# without a value is an error (a typo must not become an empty directive).
sub fill {
    my ($file, $vars) = @_;
    my $text = slurp("$CONFDIR/$file");
    die "bench: template $CONFDIR/$file missing\n" if $text eq '';
    $text =~ s{@([A-Z_]+)@}{
        defined $vars->{$1} ? $vars->{$1} : die "bench: $file: no value for \@$1\@\n"
    }ge;
    return $text;
}

# Server on core 0, clients on core 1: with 2 cores the client costs as much
# CPU as the server, and neither may take the other's core.
our $PIN = do {
    my $n = () = slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
    $n >= 2 && -x '/usr/bin/taskset';
};
sub pin { my ($core) = @_; return $PIN ? ('taskset', '-c', $core) : () }

# ---- /proc ------------------------------------------------------------------

# PIDs whose parent is PPID.
sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $d, '/proc' or return ();
    for my $pid (grep { /^\d+\z/ } readdir $d) {
        my $s = slurp("/proc/$pid/stat");
        push @kids, $pid if $s =~ /\) \S+ (\d+) / && $1 == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

# CPU time used so far by the processes PIDS, two ways:
#   ns:    sum over all their threads of /proc/PID/task/TID/schedstat (the
#          scheduler's runtime in nanoseconds: precise);
#   ticks: sum of utime+stime of /proc/PID/stat (whole processes, in
#          USER_HZ ticks of 10 ms: too coarse for one round, kept as a
#          cross-check that no thread's time went missing).
sub cpu_of {
    my (@pids) = @_;
    my ($ns, $ticks) = (0, 0);
    for my $pid (@pids) {
        my $stat = slurp("/proc/$pid/stat");
        my @f = split ' ', ($stat =~ /\) (.*)/s ? $1 : '');
        $ticks += ($f[11] // 0) + ($f[12] // 0);       # fields 14, 15
        opendir my $d, "/proc/$pid/task" or next;
        for my $tid (grep { /^\d+\z/ } readdir $d) {
            my ($run) = split ' ', slurp("/proc/$pid/task/$tid/schedstat");
            $ns += $run // 0;
        }
    }
    return { ns => $ns, ticks => $ticks, pids => join(',', @pids) };
}

# Time of core CORE so far, from /proc/stat, in seconds: { busy, total }.
# Busy counts everything but idle and iowait, including steal (time the
# hypervisor gave to someone else): whatever kept the core from us.
sub core_time {
    my ($core) = @_;
    my ($line) = slurp('/proc/stat') =~ /^cpu$core (.*)$/m or return { busy => 0, total => 0 };
    my @f = split ' ', $line;          # user nice system idle iowait irq softirq steal
    my $total = 0;
    $total += $f[$_] // 0 for 0 .. 7;
    return { busy => ($total - $f[3] - $f[4]) / 100, total => $total / 100 };
}

# Resident memory of PIDS in kB: VmRSS summed (pages shared between the
# parent and its children count once per process, as `ps` shows them), and
# Pss summed (each shared page split between its users: the real total).
sub memory_of {
    my (@pids) = @_;
    my %m = (rss_kb => 0, pss_kb => 0, each => []);
    for my $pid (@pids) {
        my ($rss) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
        my ($pss) = slurp("/proc/$pid/smaps_rollup") =~ /^Pss:\s+(\d+)/m;
        $m{rss_kb} += $rss // 0;
        $m{pss_kb} += $pss // 0;
        push @{ $m{each} }, { rss_kb => $rss // 0, pss_kb => $pss // 0 };
    }
    return \%m;
}

# ---- the handshake client --------------------------------------------------

# client(port => P (or 'P1,P2,...': connections to each in turn), sni => NAME, names => N, secs => S | count => N,
#        threads => T, rate => R, key => rsa|ecdsa, tls => '1.3',
#        nostatus_pct => X, wait => S, timeout => S, raw => FILE): runs bench/hsclient on core 1 and
# returns { all => {...}, status => {...}, nostatus => {...} } with the keys
# of its output lines (handshakes, stapled, errors, p50_ms, ...).
sub client {
    my (%o) = @_;
    my @cmd = ($HSCLIENT, '-p', $o{port}, '-t', $o{threads} // 8);
    push @cmd, '-s', $o{sni}            if defined $o{sni};
    push @cmd, '-N', $o{names}          if $o{names};
    push @cmd, '-d', $o{secs}           if $o{secs};
    push @cmd, '-n', $o{count}          if $o{count};
    push @cmd, '-r', $o{rate}           if $o{rate};
    push @cmd, '-k', $o{key}            if $o{key};
    push @cmd, '-v', $o{tls}            if $o{tls};
    push @cmd, '-x', $o{nostatus_pct}   if $o{nostatus_pct};
    push @cmd, '-w', $o{wait}           if $o{wait};
    push @cmd, '-o', $o{raw}            if $o{raw};
    push @cmd, '-T', $o{timeout}        if $o{timeout};
    # A bound on the whole run, whatever happens to the server.
    my $limit = int(($o{secs} // 0) + ($o{wait} // 0) + ($o{timeout} // 0) + 60);
    open my $fh, '-|', 'timeout', '-k', 5, $limit, pin(1), @cmd
        or die "bench: cannot run $HSCLIENT: $!\n";
    my %r;
    while (my $line = <$fh>) {
        my %kv = $line =~ /(\w+)=(\S+)/g;
        $r{$kv{class}} = \%kv if $kv{class};
    }
    close $fh;
    die "bench: hsclient failed (exit status " . ($? >> 8) . "): @cmd\n"
        unless $r{all};
    return \%r;
}

# What the client got from one PORT of a run against several (-p A,B,C);
# from a run against one port, its totals.
sub port_result {
    my ($r, $port) = @_;
    return $r->{"port:$port"} // $r->{all};
}

# ============================================================================
package BenchKit::Responder;
# scripts/ocsp_responder.pl on 127.0.0.1:PORT (a child of the driver).
use POSIX qw(WNOHANG);

sub new {
    my ($class, %a) = @_;
    my $self = bless { name => 'responder', %a }, $class;
    my $base = "$self->{dir}/$self->{name}";
    @$self{qw(log pidfile stderr)} = ("$base.log", "$base.pid", "$base.stderr");
    return $self;
}

sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}/" . ($_[1] // 'good') }

# start(nmin => N, delay => SECONDS): returns once it listens.
sub start {
    my ($self, %o) = @_;
    $self->stop;
    unlink $self->{pidfile};
    my @cmd = ($^X, "$BenchKit::ROOT/scripts/ocsp_responder.pl",
               '--port', $self->{port}, '--pki', $self->{pki},
               '--log', $self->{log}, '--pidfile', $self->{pidfile});
    push @cmd, '--nmin', $o{nmin}   if defined $o{nmin};
    push @cmd, '--delay', $o{delay} if $o{delay};
    my $pid = fork // die "bench: fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{stderr};
        open STDERR, '>&', \*STDOUT;
        { no warnings "exec"; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{"$self"} = $self;
    my $up = BenchKit::wait_until(15, sub {
        -s $self->{pidfile} || waitpid($pid, WNOHANG) == $pid });
    die "bench: responder on port $self->{port} did not start: "
        . BenchKit::slurp($self->{stderr}) . "\n"
        unless $up && -s $self->{pidfile};
    return 1;
}

sub stop {
    my ($self) = @_;
    delete $LIVE{"$self"};
    my $pid = delete $self->{pid} or return 1;
    kill 'TERM', $pid;
    my $gone = BenchKit::wait_until(10, sub { waitpid($pid, WNOHANG) == $pid });
    if (!$gone) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    return 1;
}

# CPU seconds the responder has used so far, with its children and their
# `openssl ocsp` runs (reaped, so counted in cutime/cstime).
sub cpu_secs {
    my ($self) = @_;
    my @f = split ' ', (BenchKit::slurp("/proc/$self->{pid}/stat") =~ /\) (.*)/s ? $1 : '');
    my $ticks = 0;
    $ticks += $f[$_] // 0 for 11 .. 14;            # utime stime cutime cstime
    return $ticks / 100;
}

# Epoch seconds of the requests answered so far (one log line each),
# optionally only those in [FROM, TO).
sub times {
    my ($self, $from, $to) = @_;
    my @t = map { (split ' ')[0] } split /\n/, BenchKit::slurp($self->{log});
    @t = grep { $_ >= $from } @t if defined $from;
    @t = grep { $_ < $to } @t    if defined $to;
    return @t;
}

# ============================================================================
package BenchKit::Httpd;
# A private Apache httpd made from bench/conf/httpd.conf.in, one stapling
# flavour (none, modssl, ocspstaple) and a list of name-based TLS vhosts.
use File::Path qw(make_path);
use Time::HiRes qw(time sleep);

my $FAILED_RE = qr/AH00016|AH00015|AH00072|:emerg\]/;

# new(dir => D, label => L, flavour => none|modssl|ocspstaple, pki => DIR,
#     port => P (default: free), mpm => event|prefork, mpm_conf => [lines],
#     vhosts => [ [ 'NAME|ALIAS...', LEAF, LEAF... ] ], extra => [ lines ],
#     ssl_cache_timeout => S)
sub new {
    my ($class, %a) = @_;
    my $self = bless { mpm => 'event', extra => [], ssl_cache_timeout => 3600,
                       %a }, $class;
    $self->{port} //= BenchKit::free_port();
    $self->{dir} = "$a{dir}/$a{label}";
    $self->{mpm_conf} //= $self->{mpm} eq 'event' ? event_conf(2, 32)
                                                  : prefork_conf(4);
    return $self;
}

# A fixed number of processes: as many as ServerLimit from the start, so the
# MPM never starts or stops one during a measurement.
sub event_conf {
    my ($procs, $threads) = @_;
    my $workers = $procs * $threads;
    return [ "ServerLimit $procs", "StartServers $procs",
             "ThreadsPerChild $threads", "ThreadLimit $threads",
             "MaxRequestWorkers $workers", "MinSpareThreads 1",
             "MaxSpareThreads $workers" ];
}

sub prefork_conf {
    my ($n) = @_;
    return [ "ServerLimit $n", "StartServers $n", "MinSpareServers $n",
             "MaxSpareServers " . ($n + 1), "MaxRequestWorkers $n" ];
}

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub conf     { "$_[0]{dir}/httpd.conf" }
sub errorlog { "$_[0]{dir}/error_log" }

sub _vhost {
    my ($self, $v) = @_;
    my ($names, @leaves) = @$v;
    my ($name, @aliases) = split /\|/, $names;      # "m1.bench|*.bench"
    my $pki = $self->{pki};
    my $certs = join "\n", map {
        "    SSLCertificateFile \"$pki/$_.crt\"\n"
      . "    SSLCertificateKeyFile \"$pki/$_.key\"" } @leaves;
    return BenchKit::fill('vhost.conf.in',
                          { PORT => $self->{port}, NAME => $name, CERTS => $certs,
                            ALIASES => join('', map { "    ServerAlias $_\n" } @aliases) });
}

sub write_config {
    my ($self) = @_;
    make_path("$self->{dir}/run", "$self->{dir}/htdocs");
    my %v = (LABEL => $self->{label}, FLAVOUR_NAME => $self->{flavour},
             DIR => $self->{dir}, PORT => $self->{port}, MPM => $self->{mpm},
             MODDIR => $BenchKit::MODDIR, MODULE => $BenchKit::MODULE,
             SSL_CACHE_TIMEOUT => $self->{ssl_cache_timeout},
             MIMETYPES => -f '/etc/mime.types' ? '/etc/mime.types' : '/dev/null',
             # As root, children need a user of their own (Debian's www-data).
             USER => $> == 0 ? "User www-data\nGroup www-data" : '',
             MPMCONF => join("\n", @{ $self->{mpm_conf} }),
             EXTRA => join("\n", @{ $self->{extra} }));
    $v{FLAVOUR} = BenchKit::fill("$self->{flavour}.conf.in", \%v);
    $v{VHOSTS} = join "\n", map { $self->_vhost($_) } @{ $self->{vhosts} };
    BenchKit::spit($self->conf, BenchKit::fill('httpd.conf.in', \%v));
}

# start(timeout => 180): `apache2 -k start` on core 0; returns the seconds
# from the command until the port accepts connections. Dies on failure.
sub start {
    my ($self, %o) = @_;
    $self->write_config;
    unlink "$self->{dir}/httpd.pid";
    my $offset = -s $self->errorlog // 0;
    my $t0 = time;
    $LIVE{"$self"} = $self;
    my $rc = BenchKit::run_logged("$self->{dir}/start.out", 'timeout', 300,
        BenchKit::pin(0), $BenchKit::HTTPD, '-f', $self->conf, '-k', 'start');
    die "bench: $self->{label}: apache2 -k start failed: "
        . BenchKit::slurp("$self->{dir}/start.out") . "\n" if $rc;
    # The listening socket exists before the pid file (and before any child
    # that accepts): the port alone says the server is on its way.
    my $up = BenchKit::wait_until($o{timeout} // 180, sub {
        return -1 if substr(BenchKit::slurp($self->errorlog), $offset) =~ $FAILED_RE;
        return BenchKit::port_open($self->{port});
    }, 0.01);
    my $secs = time - $t0;
    BenchKit::wait_until(30, sub {
        $self->{pid} = $1 if BenchKit::slurp("$self->{dir}/httpd.pid") =~ /^(\d+)/;
        return $self->alive;
    }, 0.01) if $up && $up != -1;
    if (!$up || $up == -1 || !$self->alive) {
        $self->stop;                   # whatever did start must not outlive us
        my @tail = (split /\n/, BenchKit::slurp($self->errorlog))[-10 .. -1];
        die "bench: $self->{label} did not start:\n"
            . join("\n", grep { defined } @tail) . "\n";
    }
    return $secs;
}

# Whether PID is an apache2 of this configuration (a stale pid file must
# never make us signal a stranger).
sub _ours {
    my ($self, $pid) = @_;
    return 0 unless $pid;
    my @argv = split /\0/, BenchKit::slurp("/proc/$pid/cmdline");
    return @argv && $argv[0] eq $BenchKit::HTTPD && grep { $_ eq $self->conf } @argv;
}

sub alive { $_[0]->_ours($_[0]{pid}) }

# The parent and its children.
sub pids {
    my ($self) = @_;
    return () unless $self->alive;
    my @p = ($self->{pid}, grep { $self->_ours($_) } BenchKit::children_of($self->{pid}));
    return @p;
}

sub cpu    { BenchKit::cpu_of($_[0]->pids) }
sub memory { BenchKit::memory_of($_[0]->pids) }

# Lines of the error log matching RE.
sub log_lines {
    my ($self, $re) = @_;
    return grep { /$re/ } split /\n/, BenchKit::slurp($self->errorlog);
}

# SIGTERM to the parent (it stops its children), bounded wait, then KILL
# whatever of ours is left, by PID.
sub stop {
    my ($self) = @_;
    delete $LIVE{"$self"};
    # Interrupted while starting: the pid file may be all we have (_ours
    # checks it really is this configuration's apache2).
    $self->{pid} //= $1 if BenchKit::slurp("$self->{dir}/httpd.pid") =~ /^(\d+)/;
    my @pids = $self->pids or return 1;
    kill 'TERM', $pids[0];
    my $gone = BenchKit::wait_until(15, sub { !grep { $self->_ours($_) } @pids });
    if (!$gone) {
        print STDERR "bench: $self->{label} did not stop in 15 s: KILL\n";
        kill 'KILL', grep { $self->_ours($_) } @pids;
        BenchKit::wait_until(5, sub { !grep { $self->_ours($_) } @pids });
    }
    delete $self->{pid};
    return 1;
}

1;
