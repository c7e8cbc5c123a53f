package OCSPServer;
# Private servers for the t/3*.t scenarios (background refresh, backoff,
# store, MPMs, many certificates): each test builds its own PKI, runs its own
# loopback OCSP responder (scripts/ocsp_responder.pl) and its own httpd
# (/usr/sbin/apache2 -f CONF, never the system's configuration or service),
# all in its own work directory t/logs/<test>/ and on its own free ports.
# Independent of Apache::Test's server, so these tests can stop, restart and
# reconfigure servers at will.
#
#   my ($w, $pki, $resp) = OCSPServer::setup();  # t/logs/<test>, PKI, responder
#   $resp->start(nmin => 1);   $resp->restart(delay => 8);   $resp->stop;
#   my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork',
#               mpm_conf => { StartServers => 4 }, store => "$w/store",
#               vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
#   $h->start;  $h->graceful;  $h->restart;  $h->stop;   # bounded waits
#   $h->wait_for_log(qr/OCSPSTAPLE0002/, 60, $offset, 2);
#   my $r = OCSPServer::handshake($h->port, 'rsa.test'); # ->{stapled}, ...
#   $resp->requests('good');                             # responder log lines
#   my $r6 = OCSPServer::Responder->new(dir => $w, port => free_port('::1'),
#               pki => $pki, name => 'resp6', bind => '::1',       # IPv6
#               tls => [ $pki->crt('responder-tls'),               # HTTPS
#                        $pki->key('responder-tls') ]);
#   $r6->url('good');    # https://[::1]:PORT/good, also $pki->url('good',
#                        # host => '[::1]', port => P, scheme => 'https')
#   $resp->received('good');  $resp->in_flight;          # read, not answered
#   my ($all_ok, $results) = $h->poll_children(30,       # every child shows X
#       sub { $h->handshake_pid('rsa.test') }, sub { $_[0]{stapled} });
#
# Run one scenario on its own (as an unprivileged user):
#   runuser -u ocspstaple-test -- env PATH=$PATH prove -v -I t/lib t/30-renew.t
#
# Production mode (t/root/*.t): a test that says `use OCSPServer qw(:root
# ...)` may run as root; its servers are then started by root and must be
# given the server user (OCSPServer::Httpd->new(user => 'ocspstaple-test'),
# written as User/Group), the way production runs. Without :root, root skips.
#
# Every responder and httpd started here is stopped by PID in an END block,
# also when a test dies, is interrupted (INT/TERM) or hits its deadline.
# Every wait is bounded in time; polls sleep briefly between attempts.
use strict;
use warnings FATAL => 'all';

use Exporter ();
use Fcntl ();
use Cwd qw(abs_path);
use Digest::SHA ();
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use IO::Socket::IP;
use MIME::Base64 ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

# Reused from helper-2's suite: running a command, serial formatting, the
# diagnostic line. (OCSPTest::handshake itself needs Apache::Test's config and
# the suite's PKI, so ours is separate; it parses the same s_client output.)
use OCSPTest ();

our @EXPORT_OK = qw(setup workdir pki free_port handshake describe wait_until
                    deadline hanging_listener update_ok_re update_failed_re
                    handshakes_parallel);

our $ROOT = abs_path($ENV{OCSP_ROOT} // dirname(__FILE__) . '/../..');
our $MODULE = do {
    my $m = $ENV{OCSP_MODULE} // '.libs/mod_ocspstaple.so';
    $m = "$ROOT/$m" unless $m =~ m{^/};
    $m;
};
our $HTTPD  = $ENV{OCSP_HTTPD} // '/usr/sbin/apache2';
our $MODDIR = '/usr/lib/apache2/modules';
our $S_CLIENT_TIMEOUT = 20;   # seconds for one whole handshake
our $DEFAULT_CA;              # handshake()'s CA file: setup()'s PKI root

my $OWNER = $$;               # END must not run in forked children
my %LIVE;                     # "$obj" => $obj: everything to stop at the end

# ---- process-wide guards --------------------------------------------------
# httpd without a User directive would hand its children to uid -1 when
# started as root: these scenarios run as an unprivileged user (`make test`
# runs them as ocspstaple-test), except the ones that opt in with the import
# flag :root (then every OCSPServer::Httpd needs user => NAME). The check
# runs once every `use` has been compiled (INIT), so the flag counts
# whichever module loaded OCSPServer first; loaded at run time (require),
# it checks at once and root is never allowed.
our $ALLOW_ROOT = 0;

sub import {
    my ($class, @args) = @_;
    $ALLOW_ROOT = 1 if grep { $_ eq ':root' } @args;
    local $Exporter::ExportLevel = 1;
    Exporter::import($class, grep { $_ ne ':root' } @args);
}

sub _root_guard {
    return if $> != 0 || $ALLOW_ROOT;
    require Test::More;
    Test::More::plan(skip_all => 'runs as an unprivileged user: use make test, '
        . "or runuser -u ocspstaple-test -- prove -I t/lib $0");
}
if (${^GLOBAL_PHASE} eq 'RUN') {
    _root_guard();
}
else {
    no warnings 'void';                 # "Too late to run INIT block"
    INIT { _root_guard() }
}
$SIG{INT}  = sub { print STDERR "# interrupted\n"; exit 130 };
$SIG{TERM} = sub { print STDERR "# terminated\n";  exit 143 };

END {
    my $rc = $?;
    if (defined $OWNER && $$ == $OWNER) {
        for my $obj (values %LIVE) {
            eval { $obj->stop; 1 } or print STDERR "# cleanup: $@";
        }
    }
    $? = $rc;
}

# track(OBJ) / untrack(OBJ): anything with a stop method that END must stop
# (helpers in other modules register here instead of keeping their own END).
sub track   { $LIVE{"$_[0]"} = $_[0] }
sub untrack { delete $LIVE{"$_[0]"} }

# deadline(SECONDS): the whole test must finish in time; past it the test
# fails and END stops every server (a hang must never outlive the test).
sub deadline {
    my ($secs) = @_;
    $SIG{ALRM} = sub {
        print STDERR "# test deadline of $secs s exceeded, stopping servers\n";
        exit 124;
    };
    alarm $secs;
}

# machine_lock(): for production-mode tests that change or check the
# machine's own state (the package test installs one, whose postinst makes
# /var/cache/apache2/ocspstaple; the production test checks that its
# namespaced server never touches that path): an exclusive lock on a file in
# /run/lock, so such tests never overlap, in one run or in two checkouts.
# Held until the returned handle goes or the test exits. It waits for the
# other test to let go; the test's deadline() bounds that wait.
sub machine_lock {
    my $file = '/run/lock/ocspstaple-test-machine.lock';
    open(my $fh, '>>', $file) or die "$file: $!";
    flock($fh, Fcntl::LOCK_EX()) or die "$file: flock: $!";
    return $fh;
}

# ---- small helpers --------------------------------------------------------

# A fresh work directory t/logs/<test name>, absolute (OCSP_T_LOGS=DIR puts
# it under DIR instead, e.g. to keep a run apart from a `make test` run,
# which empties t/logs when it starts).
sub workdir {
    my ($name) = @_;
    ($name = basename($0)) =~ s/\.t\z// unless defined $name;
    my $dir = ($ENV{OCSP_T_LOGS} // "$ROOT/t/logs") . "/$name";
    remove_tree($dir);
    make_path($dir);
    return $dir;
}

# free_port([ADDR]): a TCP port nobody listens on at the loopback address
# ADDR (127.0.0.1, or ::1), the kernel's choice.
sub free_port {
    my ($addr) = @_;
    $addr //= '127.0.0.1';
    my $s = IO::Socket::IP->new(LocalHost => $addr, LocalPort => 0,
                                Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "free_port $addr: $@\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# A responder that never answers: it listens (the kernel completes the TCP
# handshake and buffers the request) but nobody ever accepts or replies.
# Returns (socket, port); keep the socket alive for as long as it should hang.
sub hanging_listener {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1024, ReuseAddr => 1)
        or die "hanging_listener: $!\n";
    return ($s, $s->sockport);
}

# wait_until(TIMEOUT, CODE, [INTERVAL]): calls CODE until it returns true or
# TIMEOUT seconds pass; returns CODE's last value.
# spawn(OUT, CMD...): runs CMD in the background, stdin from /dev/null,
# stdout and stderr appended to the file OUT; returns its pid (the caller
# stops it: stop_child, or its object's stop).
sub spawn {
    my ($out, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $out;
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    return $pid;
}

# A child process of ours: TERM, wait (bounded), then KILL; reaped.
sub stop_child {
    my ($pid) = @_;
    kill 'TERM', $pid;
    my $gone = wait_until(10, sub { waitpid($pid, POSIX::WNOHANG()) == $pid
                                    || !kill(0, $pid) }, 0.05);
    if (!$gone) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

sub wait_until {
    my ($timeout, $code, $interval) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $v = $code->();
        return $v if $v;
        return $v if time >= $deadline;
        sleep($interval // 0.1);
    }
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar(<$fh>) // '';
}

# ---- PKI ------------------------------------------------------------------

# pki(DIR, PORT, [SET...]): scripts/mkpki.sh DIR PORT [SET...]; the leaves'
# AIA URLs point to http://127.0.0.1:PORT/<mode>; SETs add optional leaves
# (faults, badaia, responder: see mkpki.sh). Returns an OCSPServer::PKI.
# Under t/run-tests.sh every scenario signs its leaves with the keys and CAs
# of the run's own PKI (OCSP_PKI, passed as MKPKI_REUSE): one set of keys
# per run, a fresh port in the AIA URLs of each scenario.
sub pki {
    my ($dir, $port, @sets) = @_;
    local $ENV{MKPKI_REUSE} = $ENV{OCSP_PKI}
        if $ENV{OCSP_PKI} && -f "$ENV{OCSP_PKI}/root.crt";
    # (300 s: the suite runs scenarios in parallel on a busy machine; a PKI
    # cut short by the timeout must fail here, not as a missing file later)
    my $out = OCSPTest::run_capture('timeout', 300, "$ROOT/scripts/mkpki.sh",
                                    $dir, $port, @sets);
    die "mkpki.sh $dir $port @sets failed (exit status " . ($? >> 8) . "):\n$out"
        if $? || !-f "$dir/root.crt" || !-f "$dir/index.txt";
    return OCSPServer::PKI->new(abs_path($dir), $port);
}

# setup(pki_sets => [SET...]): the usual start of a scenario: a fresh work
# directory, a PKI whose AIA URLs point to a free port (with mkpki.sh's
# optional leaf SETs), and a (not yet started) responder for it.
# Returns (WORKDIR, PKI, RESPONDER).
sub setup {
    my (%o) = @_;
    my $w = workdir();
    my $port = free_port();
    my $pki = pki("$w/pki", $port, @{ $o{pki_sets} // [] });
    $DEFAULT_CA = $pki->root;
    my $resp = OCSPServer::Responder->new(dir => $w, port => $port, pki => $pki);
    return ($w, $pki, $resp);
}

# Error-log patterns of the module's messages about one PKI leaf.
sub update_ok_re     { qr/OCSPSTAPLE0002: cert "CN=\Q$_[0]\E\.test"/ }
sub update_failed_re { qr/OCSPSTAPLE0003: cert "CN=\Q$_[0]\E\.test"/ }

# ---- handshakes -----------------------------------------------------------

# handshake(PORT, SERVERNAME, ca => ROOT.crt, tls => '1.2'|'1.3',
#           sigalgs => 'ECDSA+SHA256'): one
# `openssl s_client -status` handshake with 127.0.0.1:PORT. Returns
#   stapled (0/1), resp_status, cert_status, serial (of the staple),
#   this_update, next_update (epoch seconds), verify, elapsed (seconds),
#   connected (0 when no TLS session came up), output.
sub handshake {
    my ($port, $servername, %o) = @_;
    my $ca = $o{ca} // $DEFAULT_CA // die "handshake: no CA file\n";
    my @cmd = ('timeout', $S_CLIENT_TIMEOUT, 'openssl', 's_client',
               '-connect', "127.0.0.1:$port", '-status', '-CAfile', $ca);
    push @cmd, '-servername', $servername if defined $servername;
    push @cmd, $o{tls} eq '1.3' ? '-tls1_3' : '-tls1_2' if defined $o{tls};
    push @cmd, '-sigalgs', $o{sigalgs} if defined $o{sigalgs};
    my $t0 = time;
    my $out = OCSPTest::run_capture(@cmd);
    my %r = (elapsed => time - $t0, output => $out, stapled => 0, time => $t0);
    $r{stapled} = 1 if $out =~ /^OCSP Response Status:/m
                    || $out =~ /^\s*OCSP Response Data:/m;
    $r{stapled} = 0 if $out =~ /^OCSP response: no response sent/m;
    ($r{resp_status}) = $out =~ /OCSP Response Status: (\w+)/;
    ($r{cert_status}) = $out =~ /Cert Status: (\w+)/;
    $r{serial} = OCSPTest::norm_serial($1)
        if $out =~ /OCSP Response Data:.*?Serial Number: ([0-9A-Fa-f]+)/s;
    $r{this_update} = openssl_time($1) if $out =~ /This Update: (.+?)\s*$/m;
    $r{next_update} = openssl_time($1) if $out =~ /Next Update: (.+?)\s*$/m;
    ($r{verify}) = $out =~ /Verify return code: (\d+)/;
    $r{connected} = $out =~ /^(?:New|Reused), TLSv/m ? 1 : 0;
    return \%r;
}

# handshakes_parallel(N, PORT, SERVERNAME, %opts): N handshakes at once
# (one process each); returns their results (elapsed, stapled, connected,
# this_update, next_update, cert_status), output not included.
sub handshakes_parallel {
    my ($n, $port, $servername, %o) = @_;
    my @kids;
    for (1 .. $n) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $rd;
            my $r = handshake($port, $servername, %o);
            print $wr join(' ', map { $r->{$_} // '-' }
                qw(elapsed stapled connected this_update next_update cert_status time)), "\n";
            close $wr;
            POSIX::_exit(0);          # no END blocks in the child
        }
        close $wr;
        push @kids, [$pid, $rd];
    }
    my @results;
    for my $k (@kids) {
        my ($pid, $rd) = @$k;
        my $line = <$rd> // '';
        close $rd;
        waitpid($pid, 0);
        my %r;
        @r{qw(elapsed stapled connected this_update next_update cert_status time)} = split ' ', $line;
        $_ eq '-' and $_ = undef for values %r;
        $r{elapsed} //= 0;
        $r{stapled} //= 0;
        $r{connected} //= 0;
        push @results, \%r;
    }
    return @results;
}

my %MON = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
           Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);

# "Nov 20 23:38:54 2026 GMT" -> epoch seconds.
sub openssl_time {
    my ($s) = @_;
    my ($mon, $d, $h, $mi, $sec, $y) =
        $s =~ /^(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)(?:\.\d+)?\s+(\d{4})/ or return undef;
    return timegm($sec, $mi, $h, $d, $MON{$mon}, $y);
}

# One diagnostic line for a handshake result.
sub describe {
    my ($r) = @_;
    return OCSPTest::describe($r) . sprintf(', this_update=%s, next_update=%s, elapsed=%.3f s',
        map({ defined $_ ? scalar(gmtime $_) : 'undef' } @$r{qw(this_update next_update)}),
        $r->{elapsed});
}

# ===========================================================================
package OCSPServer::PKI;
# The test PKI made by scripts/mkpki.sh: file names and certificate facts.

sub new {
    my ($class, $dir, $port) = @_;
    return bless { dir => $dir, port => $port }, $class;
}
sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub root { "$_[0]{dir}/root.crt" }
sub crt  { "$_[0]{dir}/$_[1].crt" }     # leaf + intermediate
sub key  { "$_[0]{dir}/$_[1].key" }
sub pem  { "$_[0]{dir}/$_[1].pem" }     # leaf only

# url(MODE, host => '[::1]', port => P, scheme => 'https'): a responder URL
# for MODE (default good); by default the one in the leaves' AIA,
# http://127.0.0.1:PORT/MODE.
sub url {
    my ($self, $mode, %o) = @_;
    return sprintf '%s://%s:%d/%s', $o{scheme} // 'http',
        $o{host} // '127.0.0.1', $o{port} // $self->{port}, $mode // 'good';
}

# The id the module keys a certificate by (and names its store file after):
# the SHA-1 of the leaf's DER, in hex.
sub cert_id {
    my ($self, $name) = @_;
    my $pem = OCSPServer::slurp($self->pem($name));
    $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s
        or die "no certificate in " . $self->pem($name);
    return Digest::SHA::sha1_hex(MIME::Base64::decode_base64($1));
}

# Upper-case hex serial, as s_client prints it.
sub serial {
    my ($self, $name) = @_;
    my $file = $self->pem($name);
    my $out = `openssl x509 -in '$file' -noout -serial 2>&1`;
    $out =~ /^serial=([0-9A-Fa-f]+)/ or die "cannot read serial of $file: $out";
    return OCSPTest::norm_serial($1);
}

# ===========================================================================
package OCSPServer::Responder;
# scripts/ocsp_responder.pl on 127.0.0.1:PORT (or bind => ADDR: another
# loopback address, e.g. ::1), over HTTP (or HTTPS: tls => [CERT, KEY]), a
# child of the test process.
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

# new(dir => WORKDIR, port => PORT, pki => PKI, name => 'responder',
#     bind => '127.0.0.1'|'::1', tls => [CERT, KEY])
sub new {
    my ($class, %a) = @_;
    my $self = bless { name => 'responder', %a }, $class;
    my $base = "$self->{dir}/$self->{name}";
    $self->{log}     = "$base.log";       # one line per request answered
    $self->{recv}    = "$base.received.log";  # ... per request read (--received)
    $self->{pidfile} = "$base.pid";
    $self->{stderr}  = "$base.stderr";
    return $self;
}

sub log_file { $_[0]{log} }
sub received_file { $_[0]{recv} }
sub running  { defined $_[0]{pid} }
sub port     { $_[0]{port} }

# url(MODE): where this responder answers as MODE (default good), e.g.
# http://[::1]:PORT/good or https://127.0.0.1:PORT/good.
sub url {
    my ($self, $mode) = @_;
    my $bind = $self->{bind} // '127.0.0.1';
    return $self->{pki}->url($mode, port => $self->{port},
        host => $bind =~ /:/ ? "[$bind]" : $bind,
        scheme => $self->{tls} ? 'https' : 'http');
}

# start(nmin => N, ndays => N, delay => SECONDS, switch => FILE,
# drop_every => N, keepalive => SECONDS): returns once it listens (switch:
# see ocsp_responder.pl's /switch/<mode>; drop_every: every Nth connection
# closed unanswered; keepalive: persistent connections, kept that long
# between requests).
sub start {
    my ($self, %o) = @_;
    die "responder already running\n" if $self->{pid};
    unlink $self->{pidfile};
    my @cmd = ($^X, "$OCSPServer::ROOT/scripts/ocsp_responder.pl",
               '--port', $self->{port}, '--pki', $self->{pki}->dir,
               '--log', $self->{log}, '--received', $self->{recv},
               '--pidfile', $self->{pidfile});
    push @cmd, '--nmin', $o{nmin}   if defined $o{nmin};
    push @cmd, '--ndays', $o{ndays} if defined $o{ndays};
    push @cmd, '--delay', $o{delay} if defined $o{delay};
    push @cmd, '--switch', $o{switch} if defined $o{switch};
    push @cmd, '--drop-every', $o{drop_every} if defined $o{drop_every};
    push @cmd, "--keepalive=$o{keepalive}" if $o{keepalive};
    push @cmd, '--bind', $self->{bind} if defined $self->{bind};
    push @cmd, '--tls', join(',', @{ $self->{tls} }) if $self->{tls};
    my $pid = OCSPServer::spawn($self->{stderr}, @cmd);
    $self->{pid} = $pid;
    $self->{opts} = \%o;
    $LIVE{"$self"} = $self;
    my $up = OCSPServer::wait_until(15, sub {
        return 1 if -s $self->{pidfile};
        return -1 if waitpid($pid, WNOHANG) == $pid;      # died
        return 0;
    });
    if (!$up || $up == -1) {
        delete $self->{pid} if $up;
        $self->stop;
        die "responder did not start on port $self->{port}: "
            . OCSPServer::slurp($self->{stderr}) . "\n";
    }
    # Requests an earlier run read but never answered (stopped meanwhile)
    # are not in flight any more.
    $self->{lost} = $self->received - $self->requests;
    return 1;
}

# TERM, wait (bounded), then KILL.
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid};
    delete $LIVE{"$self"};
    return 1 unless $pid;
    OCSPServer::stop_child($pid);
    return 1;
}

# restart(%opts): stop, then start again on the same port (new options).
sub restart {
    my ($self, %o) = @_;
    $self->stop;
    return $self->start(%o);
}

# Requests answered so far (lines of the log), optionally only of one mode.
sub requests {
    my ($self, $mode) = @_;
    return _count($self->{log}, $mode);
}

# Requests read so far (the --received log: a request is there before its
# answer is sent), optionally only of one mode.
sub received {
    my ($self, $mode) = @_;
    return _count($self->{recv}, $mode);
}

# Requests read and not answered yet (being answered, delayed, hanging).
# Read in this order, a request answered meanwhile is never counted as
# answered but not read.
sub in_flight {
    my ($self) = @_;
    my $answered = $self->requests;
    return $self->received - $answered - ($self->{lost} // 0);
}

sub _count {
    my ($file, $mode) = @_;
    my @lines = split /\n/, OCSPServer::slurp($file);
    @lines = grep { (split ' ')[1] eq $mode } @lines if defined $mode;
    return scalar @lines;
}

# The log as records { time, mode, status, path, peer, scheme, method,
# reused, conn }, oldest first (peer: the client's address; scheme: http or
# https; a TLS handshake the client gave up has status tls-failed; method:
# GET, POST or -; reused: 1 when the request came on a connection that had
# carried one before; conn: the connection's number at the responder).
sub log_records {
    my ($self) = @_;
    my @r;
    for (split /\n/, OCSPServer::slurp($self->{log})) {
        my @f = split ' ';
        my %r;
        @r{qw(time mode status path peer scheme method reused conn)} =
            @f[0, 1, 2, 5, 6, 7, 8, 9, 10];
        $r{reused} = ($r{reused} // '') eq 'reused' ? 1 : 0;
        push @r, \%r;
    }
    return @r;
}

# connections(RECORDS): how many connections carried these log records.
sub connections {
    my ($self, @records) = @_;
    my %c = map { ($_->{conn} // '?') => 1 } @records;
    return scalar keys %c;
}

# ===========================================================================
package OCSPServer::Httpd;
# A private Apache httpd: own config, logs, pid file, runtime dir, port.
use Time::HiRes qw(time sleep);
use File::Path qw(make_path);

my $READY_RE = qr/configured -- resuming normal operations/;   # AH00489 event, AH00163 prefork, AH00292 worker
my $FAILED_RE = qr/AH00016: Configuration Failed|AH00015: Unable to open logs|AH00072: make_sock|\[core:emerg\]|\[:emerg\]|\[\w+:emerg\]/;

# new(dir => WORKDIR, pki => PKI, name => 'httpd', port => PORT (default:
#     free), mpm => event|worker|prefork, mpm_conf => { Directive => value },
#     vhosts => [ { name => 'rsa.test', cert => 'rsa' (PKI leaf) | crt/key
#                  => files, extra => "directives", stapling => 0|1 } ],
#     global => [ "directive", ... ], store => DIR|'off'|'unset' (default
#     WORKDIR/store; 'unset': no OCSPStaplingStore line, the module's
#     built-in default), loglevel => 'info ocspstaple:debug',
#     user => NAME (the server user, written as `User NAME` and `Group` of
#     NAME's primary group; required when we are root, see :root above),
#     wrap => [ COMMAND... ] (run `apache2 -k ACTION` under this prefix,
#     e.g. unshare(1) for a private mount namespace),
#     env => { VAR => value } (added to the environment apache2 is started
#     with, e.g. http_proxy; a value of undef removes VAR))
sub new {
    my ($class, %a) = @_;
    my $self = bless { name => 'httpd', mpm => 'event', mpm_conf => {},
                       vhosts => [], global => [],
                       loglevel => 'info ocspstaple:debug', %a }, $class;
    if (defined $self->{user}) {
        my @pw = getpwnam($self->{user}) or die "no user $self->{user}\n";
        @$self{qw(uid gid)} = @pw[2, 3];
        $self->{group} = getgrgid($pw[3]) // "#$pw[3]";
    }
    elsif ($> == 0) {
        die "OCSPServer::Httpd started by root needs user => NAME (its User)\n";
    }
    $self->{port} //= OCSPServer::free_port();
    my $base = "$self->{dir}/$self->{name}";
    $self->{base}     = $base;
    $self->{conf}     = "$base.conf";
    $self->{pidfile}  = "$base.pid";
    $self->{errorlog} = "$base.error_log";
    $self->{startout} = "$base.start.out";
    $self->{rundir}   = "$base.run";
    $self->{store}  //= "$self->{dir}/store";
    return $self;
}

sub port      { $_[0]{port} }
sub user      { $_[0]{user} }     # the server user (User), or undef
sub uid       { $_[0]{uid} }
sub gid       { $_[0]{gid} }
sub error_log_file { $_[0]{errorlog} }
sub store_dir { $_[0]{store} }
sub error_log { OCSPServer::slurp($_[0]{errorlog}) }
sub log_size  { -s $_[0]{errorlog} // 0 }

# The error log from byte OFFSET on, as lines.
sub log_lines {
    my ($self, $re, $offset) = @_;
    my $text = $self->error_log;
    $text = substr($text, $offset) if $offset && $offset <= length $text;
    my @lines = split /(?<=\n)/, $text;
    return defined $re ? grep { /$re/ } @lines : @lines;
}

# wait_for_log(RE, TIMEOUT, OFFSET, COUNT): waits (bounded) until COUNT
# (default 1) lines after OFFSET match RE; returns them (the last one in
# scalar context), or nothing on timeout.
sub wait_for_log {
    my ($self, $re, $timeout, $offset, $count) = @_;
    $count //= 1;
    my @m;
    OCSPServer::wait_until($timeout // 15, sub {
        @m = $self->log_lines($re, $offset);
        return @m >= $count;
    }, 0.1);
    return () if @m < $count;
    return wantarray ? @m : $m[-1];
}

# The numbers of the last startup summary (OCSPSTAPLE0012) after OFFSET:
# { certs, stored, shared, fetched, missing, line }, or undef when there is
# none.
sub summary {
    my ($self, $offset) = @_;
    my ($line) = reverse $self->log_lines(qr/OCSPSTAPLE0012: /, $offset);
    return undef unless $line;
    my %s = (line => $line);
    @s{qw(certs stored shared fetched missing)} = $line =~
        /(\d+) certificate\(s\) to staple: (\d+) from the store or a file, (\d+) from the shared cache, (\d+) fetched, (\d+) without/;
    return \%s;
}

# The parent's PID: the one we started (remembered, so that a vanished or
# foreign pid file cannot mislead us), else the pid file's.
sub pid {
    my ($self) = @_;
    return $self->{started_pid} if $self->{started_pid};
    my $pid = OCSPServer::slurp($self->{pidfile});
    return $pid =~ /^(\d+)/ ? $1 : undef;
}

# Whether PID is a running httpd of this configuration (a stale pid file must
# never make us signal a stranger).
sub _is_ours {
    my ($self, $pid) = @_;
    return 0 unless $pid;
    my $cmd = OCSPServer::slurp("/proc/$pid/cmdline");
    my @argv = split /\0/, $cmd;
    return @argv && $argv[0] eq $HTTPD && grep { $_ eq $self->{conf} } @argv;
}

sub alive { $_[0]->_is_ours($_[0]->pid) }

sub _mpm_block {
    my ($self) = @_;
    my %c = %{ $self->{mpm_conf} };
    return join '', map { "$_ $c{$_}\n" } sort keys %c;
}

sub write_config {
    my ($self) = @_;
    my $pki = $self->{pki};
    my $dir = $self->{dir};
    make_path($self->{rundir}, "$dir/htdocs");
    # Started by root: the children (User) reach the documents and the
    # runtime dir (lock files) whatever root's umask.
    chmod 0755, $dir, $self->{rundir}, "$dir/htdocs" if defined $self->{user};
    my $mime = -f '/etc/mime.types' ? '/etc/mime.types' : '/dev/null';
    my $store = $self->{store} eq 'off' ? 'off' : $self->{store};
    my $conf = <<"EOF";
# written by t/lib/OCSPServer.pm for $0
ServerRoot "$dir"
ServerName 127.0.0.1
PidFile "$self->{pidfile}"
ErrorLog "$self->{errorlog}"
DefaultRuntimeDir "$self->{rundir}"
Mutex file:$self->{rundir} default
LogLevel $self->{loglevel}
LoadModule mpm_$self->{mpm}_module $MODDIR/mod_mpm_$self->{mpm}.so
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule mime_module $MODDIR/mod_mime.so
LoadModule socache_shmcb_module $MODDIR/mod_socache_shmcb.so
LoadModule ssl_module $MODDIR/mod_ssl.so
LoadModule ocspstaple_module $MODULE
TypesConfig $mime
DocumentRoot "$dir/htdocs"
Listen 127.0.0.1:$self->{port}
SSLSessionCache none
EOF
    $conf .= "User $self->{user}\nGroup $self->{group}\n" if defined $self->{user};
    $conf .= $self->_mpm_block;
    $conf .= "OCSPStaplingStore $store\n" unless $store eq 'unset';
    $conf .= "$_\n" for @{ $self->{global} };
    for my $v (@{ $self->{vhosts} }) {
        my $crt = $v->{crt} // $pki->crt($v->{cert});
        my $key = $v->{key} // $pki->key($v->{cert});
        my $on = ($v->{stapling} // 1) ? 'on' : 'off';
        $conf .= <<"EOF";
<VirtualHost 127.0.0.1:$self->{port}>
    ServerName $v->{name}
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
    OCSPUseStapling $on
EOF
        $conf .= "    $_\n" for split /\n/, $v->{extra} // '';
        $conf .= "</VirtualHost>\n";
    }
    open my $fh, '>', $self->{conf} or die "$self->{conf}: $!";
    print $fh $conf;
    close $fh or die "$self->{conf}: $!";
}

# Runs `apache2 -f CONF -k ACTION`, returns (exit status, output). The
# server (parent, start-up helper, children) keeps the environment it was
# started with: ours plus env => {...}.
sub _ctl {
    my ($self, $action) = @_;
    my %env = %{ $self->{env} // {} };
    local %ENV = %ENV;
    for my $k (keys %env) {
        if (defined $env{$k}) { $ENV{$k} = $env{$k} } else { delete $ENV{$k} }
    }
    my $out = OCSPTest::run_capture('timeout', 120, @{ $self->{wrap} // [] }, $HTTPD,
                                    '-f', $self->{conf}, '-k', $action);
    return ($? >> 8, $out);
}

# _await_generation(OFFSET, TIMEOUT): waits for a new "resuming normal
# operations" line after OFFSET and for the port to accept. Returns 1, or 0
# with $self->{why} set.
sub _await_generation {
    my ($self, $offset, $timeout) = @_;
    my $deadline = time + ($timeout // 60);
    my $ok = OCSPServer::wait_until($timeout // 60, sub {
        my @l = $self->log_lines(undef, $offset);
        return 1 if grep { /$READY_RE/ } @l;
        if (my ($bad) = grep { /$FAILED_RE/ } @l) {
            $self->{why} = "error: $bad";
            return -1;
        }
        return 0;
    }, 0.05);
    if (!$ok || $ok == -1) {
        $self->{why} //= "no new generation within ${\($timeout // 60)} s";
        return 0;
    }
    my $conn = OCSPServer::wait_until($deadline - time > 1 ? $deadline - time : 1, sub {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                              Proto => 'tcp', Timeout => 2);
    }, 0.05);
    if (!$conn) {
        $self->{why} = "port $self->{port} does not accept connections";
        return 0;
    }
    close $conn;
    return 1;
}

sub _fail {
    my ($self, $what) = @_;
    my @tail = ($self->log_lines)[-15 .. -1];
    Test::More::diag("httpd $what failed: " . ($self->{why} // '') . "\n"
        . OCSPServer::slurp($self->{startout})
        . "error_log tail:\n" . join('', grep { defined } @tail));
    return undef;
}

# start(timeout => 60): writes the config, starts httpd and waits until it
# serves. Returns the seconds it took (true), or undef (with diagnostics).
sub start {
    my ($self, %o) = @_;
    die "httpd already running\n" if $self->alive;
    $self->write_config;
    unlink $self->{pidfile};
    my $offset = $self->log_size;
    $self->{why} = undef;
    my $t0 = time;
    $LIVE{"$self"} = $self;
    my ($rc, $out) = $self->_ctl('start');
    open my $fh, '>', $self->{startout};
    print $fh $out;
    close $fh;
    if ($rc != 0) {
        $self->{why} = "apache2 -k start exit status $rc";
        return $self->_fail('start');
    }
    my $ok = $self->_await_generation($offset, $o{timeout});
    $self->{started_pid} = $self->pid if $self->alive;     # from the pid file
    return $ok ? time - $t0 : $self->_fail('start');
}

# graceful(): SIGUSR1, then waits for the next generation to serve.
sub graceful {
    my ($self, %o) = @_;
    my $pid = $self->pid;
    return $self->_fail('graceful restart (not running)') unless $self->_is_ours($pid);
    $self->write_config;
    my $offset = $self->log_size;
    $self->{why} = undef;
    my $t0 = time;
    kill 'USR1', $pid;
    return $self->_await_generation($offset, $o{timeout}) ? time - $t0
                                                          : $self->_fail('graceful restart');
}

# restart(): `apache2 -k restart` (SIGHUP: children stopped at once, config
# and caches rebuilt), then waits for the next generation to serve.
sub restart {
    my ($self, %o) = @_;
    return $self->_fail('restart (not running)') unless $self->alive;
    $self->write_config;
    my $offset = $self->log_size;
    $self->{why} = undef;
    my $t0 = time;
    my ($rc, $out) = $self->_ctl('restart');
    if ($rc != 0) {
        $self->{why} = "apache2 -k restart exit status $rc: $out";
        return $self->_fail('restart');
    }
    return $self->_await_generation($offset, $o{timeout}) ? time - $t0
                                                          : $self->_fail('restart');
}

# handshake_pid(SERVERNAME): one handshake (OCSPServer::handshake), its
# result with {pid}: the child that served it (mod_ssl's AH01964
# "Connection to child ... established", logged at info by the process that
# accepted the connection), undef when that line is missing.
sub handshake_pid {
    my ($self, $servername, %o) = @_;
    my $off = $self->log_size;
    my $r = OCSPServer::handshake($self->port, $servername, %o);
    my ($l) = $self->log_lines(qr/AH01964: /, $off);
    $r->{pid} = $l && $l =~ /\[pid (\d+)/ ? $1 : undef;
    return $r;
}

# children(): the PIDs of the server's child processes that serve
# connections now (its start-up helper, named in the error log, is not one).
sub children {
    my ($self) = @_;
    my (undef, @kids) = $self->processes;
    my %helper = map { /start-up helper \(pid (\d+)\)/ ? ($1 => 1) : () }
                 $self->log_lines(qr/start-up helper \(pid \d+\)/);
    return grep { !$helper{$_} } @kids;
}

# poll_children(TIMEOUT, PROBE, OK, [INTERVAL]): PROBE->() makes one
# connection to this server and returns a hash with {pid}, the child that
# served it (handshake_pid; OCSPOps::status_pid). It is repeated, INTERVAL
# (default 0.3 s) apart, until the latest result of every child running now
# satisfies OK->(RESULT), at most TIMEOUT seconds. Returns (true when done,
# [every result, in order]).
# What one process published the others take at their next background tick
# (each second): "every child staples X" can only be seen child by child.
sub poll_children {
    my ($self, $timeout, $probe, $ok, $interval) = @_;
    my (@all, %last);
    my $done = OCSPServer::wait_until($timeout, sub {
        my $r = $probe->();
        push @all, $r;
        $last{$r->{pid}} = $r if defined $r->{pid};
        my @kids = $self->children;
        return @kids && !grep { !$last{$_} || !$ok->($last{$_}) } @kids;
    }, $interval // 0.3);
    return ($done ? 1 : 0, \@all);
}

# The PIDs of a process's children (from /proc).
sub _children {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = OCSPServer::slurp($stat);
        push @kids, $1 if $s =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
    }
    return @kids;
}

# still_serving(HOST, PKI, LABEL): after whatever a test provoked, a plain
# HTTPS GET works, the parent runs and no child crashed (three tests).
sub still_serving {
    my ($self, $host, $pki, $label) = @_;
    my $port = $self->port;
    my $pre = defined $label ? "$label: " : '';
    my $out = OCSPTest::run_capture('curl', '-sS', '--max-time', 10, '--cacert', $pki->root,
        '--resolve', "$host:$port:127.0.0.1", "https://$host:$port/index.html");
    Test::More::is($out, "still serving\n", "${pre}a plain HTTPS GET still works");
    Test::More::ok($self->alive, "${pre}server still running");
    my @crash = $self->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/);
    Test::More::ok(!@crash, "${pre}no child process crashed") or Test::More::diag(@crash);
}

# Every process running this configuration, whoever its parent: also a
# parent stuck before it wrote its pid file, or a start-up helper.
sub _all_ours {
    my ($self) = @_;
    return grep { $_ != $$ && $self->_is_ours($_) }
           map { m{^/proc/(\d+)/} ? $1 : () } glob '/proc/[0-9]*/cmdline';
}

# stop(): SIGTERM to the parent (it stops its children), wait until gone
# (bounded), then KILL it and any child left; then the same for any other
# process still running this configuration.
sub stop {
    my ($self) = @_;
    delete $LIVE{"$self"};
    my $pid = $self->pid;
    delete $self->{started_pid};
    $self->_stop_parent($pid) if $self->_is_ours($pid);
    if (my @left = $self->_all_ours) {
        print STDERR "# httpd processes without a running parent: @left: TERM\n";
        kill 'TERM', @left;
        OCSPServer::wait_until(5, sub { !grep { $self->_is_ours($_) } @left }, 0.05);
        kill 'KILL', grep { $self->_is_ours($_) } @left;
    }
    return 1;
}

sub _stop_parent {
    my ($self, $pid) = @_;
    my @kids = grep { $self->_is_ours($_) } _children($pid);
    kill 'TERM', $pid;
    my $gone = OCSPServer::wait_until(15, sub { !$self->_is_ours($pid) }, 0.05);
    if (!$gone) {
        print STDERR "# httpd $pid did not stop in 15 s: KILL\n";
        kill 'KILL', grep { $self->_is_ours($_) } $pid, @kids;
        OCSPServer::wait_until(5, sub { !$self->_is_ours($pid) }, 0.05);
    }
    # Children outliving their parent would keep the port and the cache.
    if (grep { $self->_is_ours($_) } @kids) {
        OCSPServer::wait_until(5, sub { !grep { $self->_is_ours($_) } @kids }, 0.05);
        kill 'KILL', grep { $self->_is_ours($_) } @kids;
    }
    return 1;
}

# Processes of this server right now (parent and children; their number in
# scalar context).
sub processes {
    my ($self) = @_;
    my $pid = $self->pid;
    my @p = $self->_is_ours($pid) ? ($pid, grep { $self->_is_ours($_) } _children($pid)) : ();
    return wantarray ? @p : scalar @p;
}

1;
