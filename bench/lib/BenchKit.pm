package BenchKit;
# Building blocks of bench/bench.pl and its scenarios (bench/lib/Scenario/):
# private Apache servers made from the templates in bench/conf/, loopback
# OCSP responders (scripts/ocsp_responder.pl), the handshake client
# (bench/hsclient), and what /proc says about a server's processes (CPU
# time, memory).
#
#   my $r = BenchKit::Responder->new(dir => $d, port => $p, pki => $pki);
#   (or BenchKit::FastResponder: bench/fastocsp, the same interface)
#   $r->start(nmin => 1, delay => 5);  $r->stop;  $r->times;   # request epochs
#   my $h = BenchKit::Httpd->new(dir => $d, label => 'x', flavour => 'ocspstaple',
#               vhosts => [ [ 'rsa.test', 'rsa', 'ecdsa' ] ], extra => [ ... ]);
#   $h->start;  $h->cpu;  $h->memory;  $h->graceful;  $h->stop;
#   my $c = BenchKit::client(port => $h->port, sni => 'rsa.test', secs => 2);
#   $c->{all}{handshakes}, $c->{all}{p999_ms}, $c->{status}{stapled}, ...
#   my $bg = BenchKit::client_start(...);  $bg->end;  $bg->result;
#
# Every process started here (servers, responders, clients) is stopped by
# PID, never by name, in stop() and again in an END block, also when the run
# dies, is interrupted or passes its deadline. A server's PIDs are those in
# /proc whose command line is apache2 with its own configuration file, so
# one still loading its configuration (no pid file yet) is stopped too.
# Every wait is bounded in time.
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
our $FASTOCSP = "$ROOT/bench/fastocsp";
our $MKLEAVES = "$ROOT/bench/mkleaves";
our $CONFDIR  = "$ROOT/bench/conf";

# Everything started here that is still running, to be stopped when the
# driver ends, whichever way it ends (normal exit, die, INT/TERM, the
# deadline's ALRM: bench.pl's handlers exit, and exit runs END blocks):
# "$obj" => [ PID of the process that started it, $obj ]. Only the process
# that started a thing stops it (a forked helper never stops the driver's).
my %LIVE;

sub track   { $LIVE{"$_[0]"} = [ $$, $_[0] ] }
sub untrack { delete $LIVE{"$_[0]"} }

# Stops everything this process started and has not stopped yet: first a
# TERM to all of them at once, then a bounded wait for each (KILL after it),
# so a run with several servers does not wait for them one after the other.
sub stop_all {
    my @mine = map { $_->[1] } grep { $_->[0] == $$ } values %LIVE;
    for my $obj (@mine) {
        eval { $obj->signal_stop; 1 } or print STDERR "bench: cleanup: $@";
    }
    for my $obj (@mine) {
        eval { $obj->stop; 1 } or print STDERR "bench: cleanup: $@";
    }
    return scalar @mine;
}

END {
    my $rc = $?;
    # Stopping is bounded (15 s per server, then KILL): a second ^C must
    # not cut it short and leave servers behind.
    alarm 0;
    local $SIG{INT}  = sub { print STDERR "bench: still stopping what was started\n" };
    local $SIG{TERM} = $SIG{INT};
    local $SIG{ALRM} = 'IGNORE';
    my $n = stop_all();
    print STDERR "bench: stopped $n process(es) left running\n" if $n && $rc;
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

# stop_child(PID): a child of ours: TERM, wait (bounded), then KILL; reaped.
sub stop_child {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    my $gone = wait_until(10, sub { waitpid($pid, POSIX::WNOHANG()) == $pid });
    if (!$gone) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
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

# A loopback port nobody listens on, never handed out before in this run,
# and outside the kernel's range of ephemeral ports: a port handed out now
# may be listened on only minutes later (the responder an AIA URL names,
# started by its scenario), and meanwhile neither a server given a port
# here nor an outgoing connection may take it (a run failed on "Address
# already in use" so). Falls back to the kernel's choice when the
# ephemeral range leaves no room below it.
my %HANDED_OUT;
sub free_port {
    my ($lo) = split ' ', (slurp('/proc/sys/net/ipv4/ip_local_port_range') || '32768');
    for (1 .. 1000) {
        my $want = $lo > 11000 ? 10000 + int(rand($lo - 10000)) : 0;
        next if $HANDED_OUT{$want};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $want,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 1) or next;
        my $port = $s->sockport;
        close $s;
        next if $HANDED_OUT{$port}++;
        return $port;
    }
    die "bench: free_port: no free loopback port found\n";
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
# Pss summed (each shared page split between its users: the real total),
# and of that the anonymous part, Pss_Anon (heap, stacks, copied-on-write
# pages: what grows with the configuration; not the libraries' pages,
# whose Pss falls as other servers map the same libraries).
sub memory_of {
    my (@pids) = @_;
    my %m = (rss_kb => 0, pss_kb => 0, anon_kb => 0, each => []);
    for my $pid (@pids) {
        my ($rss) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
        my $rollup = slurp("/proc/$pid/smaps_rollup");
        my ($pss) = $rollup =~ /^Pss:\s+(\d+)/m;
        my ($anon) = $rollup =~ /^Pss_Anon:\s+(\d+)/m;
        my %p = (rss_kb => $rss // 0, pss_kb => $pss // 0, anon_kb => $anon // 0);
        $m{$_} += $p{$_} for keys %p;
        push @{ $m{each} }, \%p;
    }
    return \%m;
}

# ---- the handshake client --------------------------------------------------

# client(port => P (or 'P1,P2,...': connections to each in turn), sni => NAME, names => N, secs => S | count => N,
#        threads => T, rate => R, key => rsa|ecdsa, tls => '1.3',
#        nostatus_pct => X, wait => S, timeout => S, raw => FILE,
#        cafile => FILE: staples verified against these issuers): runs bench/hsclient on core 1 and
# returns { all => {...}, status => {...}, nostatus => {...} } with the keys
# of its output lines (handshakes, stapled, errors, p50_ms, ...).
sub client { return client_start(@_)->result }

# The same in the background: client_start(...) returns a BenchKit::Client
# at once; ->end asks hsclient to finish early (SIGUSR1: it stops starting
# handshakes and reports as usual), ->result waits for it and returns what
# client() returns.
sub client_start {
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
    push @cmd, '-C', $o{cafile}         if $o{cafile};
    # A bound on the whole run, whatever happens to the server.
    my $limit = int(($o{secs} // 0) + ($o{wait} // 0) + ($o{timeout} // 0) + 60);
    my $pid = open my $fh, '-|', 'timeout', '-k', 5, $limit, pin(1), @cmd
        or die "bench: cannot run $HSCLIENT: $!\n";
    my $self = bless { pid => $pid, fh => $fh, cmd => \@cmd, t0 => time },
                     'BenchKit::Client';
    track($self);
    return $self;
}

# What the client got from one PORT of a run against several (-p A,B,C);
# from a run against one port, its totals.
sub port_result {
    my ($r, $port) = @_;
    return $r->{"port:$port"} // $r->{all};
}

# ============================================================================
package BenchKit::Client;
# One bench/hsclient run (under `timeout`, on core 1), from client_start().
use POSIX qw(WNOHANG);

sub pid { $_[0]{pid} }
sub t0  { $_[0]{t0} }

# The hsclient process itself (`timeout` forks it; taskset execs into it).
sub _hsclient_pid {
    my ($self) = @_;
    return undef unless $self->{pid};
    my ($kid) = BenchKit::children_of($self->{pid});
    return $kid;
}

# Asks hsclient to stop starting handshakes and report (SIGUSR1).
sub end {
    my ($self) = @_;
    my $kid = BenchKit::wait_until(5, sub { $self->_hsclient_pid });
    kill 'USR1', $kid if $kid;
    return $kid ? 1 : 0;
}

# Waits for the run (bounded by its `timeout`) and parses its output.
sub result {
    my ($self) = @_;
    my $fh = delete $self->{fh} or die "bench: hsclient result read twice\n";
    my %r;
    while (my $line = <$fh>) {
        my %kv = $line =~ /(\w+)=(\S+)/g;
        $r{$kv{class}} = \%kv if $kv{class};
    }
    close $fh;
    my $status = $? >> 8;
    delete $self->{pid};
    BenchKit::untrack($self);
    die "bench: hsclient failed (exit status $status): @{ $self->{cmd} }\n"
        unless $r{all};
    return \%r;
}

# Cleanup: TERM to `timeout`, which passes it on to hsclient.
sub signal_stop {
    my ($self) = @_;
    my $kid = $self->_hsclient_pid;
    kill 'TERM', grep { defined } $self->{pid}, $kid if $self->{pid};
    return 1;
}

sub stop {
    my ($self) = @_;
    BenchKit::untrack($self);
    BenchKit::stop_child(delete $self->{pid});
    return 1;
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
    return $self->_launch(15, @cmd);
}

# _launch(SECS, COMMAND...): runs it as a child (output to the stderr file),
# tracked for stop_all; returns once its pid file is written, within SECS,
# or dies with what it printed.
sub _launch {
    my ($self, $secs, @cmd) = @_;
    my $pid = fork // die "bench: fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{stderr};
        open STDERR, '>&', \*STDOUT;
        { no warnings "exec"; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    BenchKit::track($self);
    my $up = BenchKit::wait_until($secs, sub {
        -s $self->{pidfile} || waitpid($pid, WNOHANG) == $pid });
    die "bench: $cmd[0] on port $self->{port} did not start: "
        . BenchKit::slurp($self->{stderr}) . "\n"
        unless $up && -s $self->{pidfile};
    return 1;
}

sub signal_stop {
    my ($self) = @_;
    kill 'TERM', $self->{pid} if $self->{pid};
    return 1;
}

sub stop {
    my ($self) = @_;
    BenchKit::untrack($self);
    BenchKit::stop_child(delete $self->{pid});
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
package BenchKit::FastResponder;
# bench/fastocsp on 127.0.0.1:PORT (a child of the driver): responses signed
# once at its start and served from memory, HTTP/1.1 keep-alive. The
# interface of BenchKit::Responder (start, stop, port, url, times,
# cpu_secs), plus connections(): what it accepted. It answers for the
# PKI's intermediate on every path (the AIA's mode is ignored: every
# certificate of the index is good, or revoked as the index says).
our @ISA = ('BenchKit::Responder');

# start(nmin => MINUTES (validity, default 60), resign => SECONDS,
#       signer => NAME: a delegated signer of the PKI, e.g. ocsp-signer:
#       its certificate goes in every response, 1.4 KB instead of 500 B)
sub start {
    my ($self, %o) = @_;
    $self->stop;
    unlink $self->{pidfile};
    my $pki = $self->{pki};
    my $valid = int(($o{nmin} // 60) * 60) || 1;
    my @cmd = ($BenchKit::FASTOCSP, '-p', $self->{port}, '-c', "$pki/intermediate.crt",
               '-k', "$pki/intermediate.key", '-i', "$pki/index.txt",
               '-l', $self->{log}, '-P', $self->{pidfile}, '-V', $valid);
    push @cmd, '-R', $o{resign} if $o{resign};
    push @cmd, '-s', "$pki/$o{signer}.crt", '-K', "$pki/$o{signer}.key" if $o{signer};
    # It signs every response first: about 1 ms each (RSA-2048 issuer).
    return $self->_launch(120, @cmd);
}

# CPU seconds used so far (no children: it signs in-process).
sub cpu_secs {
    my ($self) = @_;
    my @f = split ' ', (BenchKit::slurp("/proc/$self->{pid}/stat") =~ /\) (.*)/s ? $1 : '');
    return (($f[11] // 0) + ($f[12] // 0)) / 100;
}

# Connections accepted that carried requests in [FROM, TO) (all without
# bounds): the distinct values of the log's last field.
sub connections {
    my ($self, $from, $to) = @_;
    my %c;
    for (split /\n/, BenchKit::slurp($self->{log})) {
        my @f = split ' ';
        next if defined $from && $f[0] < $from;
        next if defined $to && $f[0] >= $to;
        $c{$f[-1]} = 1;
    }
    return scalar keys %c;
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
             # mod_ssl's stapling cache sized as mod_ocspstaple sizes its
             # own by default: 4 KB per certificate, at least 1 MB.
             SSL_CACHE_BYTES => 4096 * $self->certs > 1048576 ? 4096 * $self->certs : 1048576,
             MIMETYPES => -f '/etc/mime.types' ? '/etc/mime.types' : '/dev/null',
             # As root, children need a user of their own (Debian's www-data).
             USER => $> == 0 ? "User www-data\nGroup www-data" : '',
             MPMCONF => join("\n", @{ $self->{mpm_conf} }),
             EXTRA => join("\n", @{ $self->{extra} }));
    $v{FLAVOUR} = BenchKit::fill("$self->{flavour}.conf.in", \%v);
    $v{VHOSTS} = join "\n", map { $self->_vhost($_) } @{ $self->{vhosts} };
    BenchKit::spit($self->conf, BenchKit::fill('httpd.conf.in', \%v));
}

# How long a start may take: the configuration is parsed and every
# certificate loaded before the server serves, and mod_ocspstaple fetches a
# response for each of them first, from a loopback responder that runs one
# `openssl ocsp` per request: 1000 certificates took 16 s on a quiet
# machine, 30 s on a fresh one and over 100 s on one busy with other work
# (load average 20). 30 s plus 200 ms per certificate, at most 300 s (1000
# certificates: 230 s). BENCH_START_WAIT=SECONDS sets it instead (to try the
# failure path).
sub start_bound {
    my ($self) = @_;
    return $ENV{BENCH_START_WAIT} if $ENV{BENCH_START_WAIT};
    my $bound = 30 + 0.2 * $self->certs;
    return $bound > 300 ? 300 : $bound;
}

# How many certificates the vhosts have.
sub certs {
    my ($self) = @_;
    my $certs = 0;
    $certs += @$_ - 1 for @{ $self->{vhosts} };
    return $certs;
}

# The error log from byte OFFSET on.
sub log_since {
    my ($self, $offset) = @_;
    open my $fh, '<', $self->errorlog or return '';
    seek $fh, $offset, 0;
    local $/;
    return scalar(<$fh>) // '';
}

# start(timeout => SECONDS (default: start_bound)): `apache2 -k start` on
# core 0; returns the seconds from the command until the port accepts
# connections, once the server is up (its pid file written: that happens
# after the configuration, and so mod_ocspstaple's startup fetches, are
# done). Dies on failure or when the bound passes, after stopping whatever
# of it did start.
sub start {
    my ($self, %o) = @_;
    $self->write_config;
    unlink "$self->{dir}/httpd.pid";
    my $offset = -s $self->errorlog // 0;
    my $bound = $o{timeout} // $self->start_bound;
    my $t0 = time;
    my $deadline = $t0 + $bound;
    BenchKit::track($self);
    # `-k start` returns once the server has read its configuration once
    # and gone to the background; it loads it again there, before serving.
    my $rc = BenchKit::run_logged("$self->{dir}/start.out", 'timeout', int($bound) + 1,
        BenchKit::pin(0), $BenchKit::HTTPD, '-f', $self->conf, '-k', 'start');
    if ($rc) {
        $self->stop;
        die "bench: $self->{label}: apache2 -k start failed: "
            . BenchKit::slurp("$self->{dir}/start.out") . "\n";
    }
    my $failed = sub { $self->log_since($offset) =~ $FAILED_RE };
    # The listening socket exists before the pid file (and before any child
    # that accepts): the port alone says the server is on its way.
    my $up = BenchKit::wait_until($deadline - time, sub {
        return -1 if $failed->();
        return BenchKit::port_open($self->{port});
    }, 0.01);
    my $secs = time - $t0;
    $up = BenchKit::wait_until($deadline - time, sub {
        return -1 if $failed->();
        $self->{pid} = $1 if BenchKit::slurp("$self->{dir}/httpd.pid") =~ /^(\d+)/;
        return $self->alive;
    }, 0.05) if $up && $up != -1;
    if (!$up || $up == -1 || !$self->alive) {
        my $why = !$up ? sprintf('not up within %.0f s%s', $bound,
                                 $ENV{BENCH_START_WAIT} ? ', the bound BENCH_START_WAIT sets' : '')
                       : 'failed';
        $self->stop;                   # whatever did start must not outlive us
        my @tail = (split /\n/, BenchKit::slurp($self->errorlog))[-10 .. -1];
        die "bench: $self->{label} did not start ($why):\n"
            . join("\n", grep { defined } @tail) . "\n";
    }
    return $secs;
}

# Graceful restart: SIGUSR1 to the parent, what `apache2 -k graceful` sends.
sub graceful {
    my ($self) = @_;
    die "bench: $self->{label}: not running\n" unless $self->alive;
    kill 'USR1', $self->{pid} or die "bench: $self->{label}: kill USR1: $!\n";
    return 1;
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

# Every process of this configuration, found by its command line in /proc:
# also those the pid file does not name yet (a server still loading its
# configuration, or the `apache2 -k start` that launched it).
sub scan {
    my ($self) = @_;
    opendir my $d, '/proc' or return ();
    my @pids = sort { $a <=> $b } grep { /^\d+\z/ && $self->_ours($_) } readdir $d;
    return @pids;
}

# How many of them there are (scan in scalar context).
sub running { my @p = $_[0]->scan; return scalar @p }

# Those of PIDS whose parent is not one of them: the parent (it stops its
# children).
sub _tops {
    my (@pids) = @_;
    my %set = map { $_ => 1 } @pids;
    return grep { my ($pp) = BenchKit::slurp("/proc/$_/stat") =~ /\) \S+ (\d+) /;
                  !$pp || !$set{$pp} } @pids;
}

sub signal_stop {
    my ($self) = @_;
    my @pids = $self->scan;
    kill 'TERM', _tops(@pids) if @pids;
    return 1;
}

# SIGTERM to the parent (it stops its children), bounded wait, then KILL
# whatever of ours is left, by PID.
sub stop {
    my ($self) = @_;
    BenchKit::untrack($self);
    delete $self->{pid};
    my @pids = $self->scan or return 1;
    kill 'TERM', _tops(@pids);
    my $gone = BenchKit::wait_until(15, sub { !$self->running });
    if (!$gone) {
        print STDERR "bench: $self->{label} did not stop in 15 s: KILL\n";
        kill 'KILL', $self->scan;
        BenchKit::wait_until(5, sub { !$self->running });
    }
    return 1;
}

# ============================================================================
package BenchKit::Nginx;
# A private nginx made from bench/conf/nginx.conf.in, with the interface of
# BenchKit::Httpd that the scenarios use (start, stop, port, pids, cpu,
# memory, log_lines, log_since, graceful, start_bound, errorlog, label).
# flavour: nginx (ssl_stapling on, ssl_stapling_verify on) or nginx-none.
# workers: worker_processes (default 2, as many as the Apache servers'
# processes). vhosts: as for BenchKit::Httpd. extra: lines in http {}.
#
# nginx rewrites its command line: the master's reads "nginx: master
# process /usr/sbin/nginx -p DIR/ -c DIR/nginx.conf ...", which names our
# configuration; its workers' read "nginx: worker process" (and "... is
# shutting down" while a reload retires them): ours are the master's
# children. Stopped by PID like the Apache servers: TERM to the master,
# bounded wait, KILL to whatever of ours is left.
use File::Path qw(make_path);
use Time::HiRes qw(time sleep);

our $NGINX = $ENV{BENCH_NGINX} // '/usr/sbin/nginx';

sub new {
    my ($class, %a) = @_;
    my $self = bless { workers => 2, extra => [], flavour => 'nginx', %a }, $class;
    $self->{port} //= BenchKit::free_port();
    $self->{dir} = "$a{dir}/$a{label}";
    return $self;
}

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub label    { $_[0]{label} }
sub conf     { "$_[0]{dir}/nginx.conf" }
sub errorlog { "$_[0]{dir}/error.log" }

sub _vhost {
    my ($self, $v) = @_;
    my ($names, @leaves) = @$v;
    my $pki = $self->{pki};
    my $certs = join "\n", map {
        "        ssl_certificate \"$pki/$_.crt\";\n"
      . "        ssl_certificate_key \"$pki/$_.key\";" } @leaves;
    return BenchKit::fill('nginx-vhost.conf.in', { PORT => $self->{port},
        NAMES => join(' ', split /\|/, $names), CERTS => $certs });
}

sub write_config {
    my ($self) = @_;
    make_path(map { "$self->{dir}/tmp/$_" } qw(body proxy fastcgi uwsgi scgi));
    # The responses' signers chain to the PKI's root (ssl_stapling_verify).
    BenchKit::spit("$self->{dir}/trusted.pem", join '', map { BenchKit::slurp("$self->{pki}/$_") }
                   qw(root.crt intermediate.crt));
    my %v = (LABEL => $self->{label}, FLAVOUR_NAME => $self->{flavour},
             DIR => $self->{dir}, PORT => $self->{port}, WORKERS => $self->{workers},
             # As root, workers run as www-data, like the Apache servers' children.
             USER => $> == 0 ? 'user www-data www-data;' : '',
             EXTRA => join("\n", map { "    $_" } @{ $self->{extra} }));
    my $flavour = $self->{flavour} eq 'nginx' ? 'nginx-stapling' : $self->{flavour};
    $v{FLAVOUR} = BenchKit::fill("$flavour.conf.in", \%v);
    $v{VHOSTS} = join "\n", map { $self->_vhost($_) } @{ $self->{vhosts} };
    BenchKit::spit($self->conf, BenchKit::fill('nginx.conf.in', \%v));
}

# nginx loads every certificate before it serves and fetches nothing at
# start: the same bound as an Apache server's.
sub start_bound { BenchKit::Httpd::start_bound(@_) }
sub certs       { BenchKit::Httpd::certs(@_) }

sub log_since  { BenchKit::Httpd::log_since(@_) }
sub log_lines  { BenchKit::Httpd::log_lines(@_) }

# start(timeout => SECONDS): `nginx -p DIR/ -c DIR/nginx.conf` on core 0
# (the master and its workers inherit the pinning); returns the seconds
# until the port accepts connections, once the master has written its pid
# file and its workers run. Dies on failure, after stopping what started.
sub start {
    my ($self, %o) = @_;
    $self->write_config;
    unlink "$self->{dir}/nginx.pid";
    my $bound = $o{timeout} // $self->start_bound;
    my $t0 = time;
    BenchKit::track($self);
    my $rc = BenchKit::run_logged("$self->{dir}/start.out", 'timeout', int($bound) + 1,
        BenchKit::pin(0), $NGINX, '-p', "$self->{dir}/", '-c', $self->conf,
        '-e', $self->errorlog);
    my $up = !$rc && BenchKit::wait_until($t0 + $bound - time,
                                          sub { BenchKit::port_open($self->{port}) }, 0.01);
    my $secs = time - $t0;
    $up &&= BenchKit::wait_until($t0 + $bound - time, sub {
        $self->{pid} = $1 if BenchKit::slurp("$self->{dir}/nginx.pid") =~ /^(\d+)/;
        my @p = $self->pids;
        return @p > $self->{workers};
    }, 0.05);
    if (!$up) {
        $self->stop;
        die "bench: $self->{label} did not start: "
            . BenchKit::slurp("$self->{dir}/start.out")
            . join("\n", grep { defined } (split /\n/, BenchKit::slurp($self->errorlog))[-10 .. -1])
            . "\n";
    }
    return $secs;
}

# A reload: SIGHUP to the master (what `nginx -s reload` sends): new workers
# with the configuration read again, the old ones finish their connections.
sub graceful {
    my ($self) = @_;
    die "bench: $self->{label}: not running\n" unless $self->alive;
    kill 'HUP', $self->{pid} or die "bench: $self->{label}: kill HUP: $!\n";
    return 1;
}

sub _cmdline { join ' ', split /\0/, BenchKit::slurp("/proc/$_[0]/cmdline") }

# Whether PID is the master of this configuration, or the `nginx` we ran
# before it went to the background.
sub _ours {
    my ($self, $pid) = @_;
    return 0 unless $pid;
    my $cmd = _cmdline($pid);
    return $cmd =~ /^(?:nginx: master process )?\Q$NGINX\E / && index($cmd, $self->conf) >= 0;
}

sub alive { $_[0]->_ours($_[0]{pid}) }

# The master and its workers (also those shutting down after a reload).
sub pids {
    my ($self) = @_;
    return () unless $self->alive;
    return ($self->{pid}, grep { _cmdline($_) =~ /^nginx: / }
                          BenchKit::children_of($self->{pid}));
}

# The workers running the current configuration.
sub workers {
    my ($self) = @_;
    my (undef, @w) = $self->pids;
    return grep { _cmdline($_) =~ /^nginx: worker process\s*\z/ } @w;
}

sub cpu    { BenchKit::cpu_of($_[0]->pids) }
sub memory { BenchKit::memory_of($_[0]->pids) }

# Every master of this configuration found in /proc, with its children.
sub scan {
    my ($self) = @_;
    opendir my $d, '/proc' or return ();
    my @masters = grep { /^\d+\z/ && $self->_ours($_) } readdir $d;
    my @pids = map { ($_, grep { _cmdline($_) =~ /^nginx: / } BenchKit::children_of($_)) } @masters;
    return sort { $a <=> $b } @pids;
}

sub running { my @p = $_[0]->scan; return scalar @p }

sub signal_stop {
    my ($self) = @_;
    my @pids = $self->scan;
    kill 'TERM', grep { $self->_ours($_) } @pids if @pids;
    return 1;
}

# SIGTERM to the master (a fast shutdown: it stops its workers), bounded
# wait, then KILL whatever of ours is left, workers included, by PID.
sub stop {
    my ($self) = @_;
    BenchKit::untrack($self);
    delete $self->{pid};
    my @pids = $self->scan or return 1;
    kill 'TERM', grep { $self->_ours($_) } @pids;
    my $gone = BenchKit::wait_until(15, sub { !grep { kill 0, $_ } @pids });
    if (!$gone) {
        print STDERR "bench: $self->{label} did not stop in 15 s: KILL\n";
        kill 'KILL', grep { kill 0, $_ } @pids;
        BenchKit::wait_until(5, sub { !grep { kill 0, $_ } @pids });
    }
    return 1;
}

# ============================================================================
package BenchKit;

# server(flavour => F, ...): a BenchKit::Nginx for the nginx flavours, a
# BenchKit::Httpd for the others (none, modssl, md, ocspstaple); the same
# arguments (Apache-only ones, like mpm and extra lines, are the caller's
# business).
sub server {
    my (%a) = @_;
    return $a{flavour} =~ /^nginx/ ? BenchKit::Nginx->new(%a) : BenchKit::Httpd->new(%a);
}

1;
