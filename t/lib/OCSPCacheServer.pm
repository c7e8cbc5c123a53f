package OCSPCacheServer;
# Shared caches for the fleet scenarios (t/5*.t): a private redis-server or
# memcached on 127.0.0.1 and a free port, started from Debian's binaries by
# the test itself (never the system's service), with its files in the
# test's work directory, and a tiny client for each so that a test can look
# at, and tamper with, what the servers of a fleet share.
#
#   my $r = OCSPCacheServer::Redis->new(dir => $w);       # or ::Memcached
#   $r->start;  $r->stop;  $r->restart;   # same port; bounded waits
#   $r->freeze;  $r->thaw;                # SIGSTOP / SIGCONT: a hung cache
#   $r->waiting_requests;  # requests sent to it and not read (while frozen)
#   $r->spec;          # "redis:127.0.0.1:PORT", for OCSPStaplingCache
#   $r->load_module;   # "LoadModule socache_redis_module .../mod_socache_redis.so"
#   $r->keys;  $r->get($key);  $r->set($key, $bytes);  $r->flush;
#   $r->key_for($pki->cert_id('rsa'));   # the key mod_socache_* uses
#
# mod_socache_redis and mod_socache_memcache store an id under
# "<namespace>:<id in hex>"; this module's namespace is "ocspstaple", so a
# certificate's record lives under "ocspstaple:<sha1 of its DER, hex>"
# (key_for, checked by the tests against what a server really wrote).
#
# Every server started here is stopped by PID in an END block, also when a
# test dies or is interrupted (OCSPServer's INT/TERM handlers exit, which
# runs END blocks).
use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use OCSPServer ();
use Test::More ();            # same_staple reports through the test's plan

our $REDIS     = $ENV{OCSP_REDIS_SERVER} // '/usr/bin/redis-server';
our $MEMCACHED = $ENV{OCSP_MEMCACHED}    // '/usr/bin/memcached';
our $NAMESPACE = 'ocspstaple';          # stapling_cache_init's namespace

my $OWNER = $$;
my %LIVE;         # cache servers still running
my @HTTPD;        # servers made by httpd(): stopped here even without a pid file

# Runs before OCSPServer's END (modules' END blocks run in reverse order of
# loading): thaw hung caches, stop our httpds (also one stuck in its
# startup), then the caches.
END {
    my $rc = $?;
    if ($$ == $OWNER) {
        eval { $_->thaw; 1 } for values %LIVE;
        for my $h (@HTTPD) {
            eval { stop_httpd($h); 1 } or print STDERR "# cleanup: $@";
        }
        for my $obj (values %LIVE) {
            eval { $obj->stop; 1 } or print STDERR "# cleanup: $@";
        }
    }
    $? = $rc;
}

# ===========================================================================
package OCSPCacheServer::Base;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

# new(dir => WORKDIR, name => 'redis', port => PORT (default: free))
sub new {
    my ($class, %a) = @_;
    my $self = bless { name => $class->_default_name, %a }, $class;
    $self->{port} //= OCSPServer::free_port();
    $self->{base} = "$self->{dir}/$self->{name}";
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub running { defined $_[0]{pid} }
sub log_file { "$_[0]{base}.log" }

# start(): forks and execs the server in the foreground (so its PID is ours),
# returns once it answers on its port; dies otherwise.
sub start {
    my ($self) = @_;
    die "$self->{name} already running\n" if $self->{pid};
    my @cmd = $self->_command;
    my $pid = OCSPServer::spawn("$self->{base}.out", @cmd);
    $self->{pid} = $pid;
    $LIVE{"$self"} = $self;
    my $up = OCSPServer::wait_until(20, sub {
        return -1 if waitpid($pid, WNOHANG) == $pid;      # died
        return eval { $self->ping } ? 1 : 0;
    }, 0.05);
    if (!$up || $up == -1) {
        delete $self->{pid} if $up;
        $self->stop;
        die "$self->{name} did not start on port $self->{port}: "
            . OCSPServer::slurp("$self->{base}.out")
            . OCSPServer::slurp($self->log_file) . "\n";
    }
    return 1;
}

# stop(): TERM, wait (bounded), then KILL; also drops the client connection.
sub stop {
    my ($self) = @_;
    delete $LIVE{"$self"};
    $self->_disconnect;
    my $pid = delete $self->{pid};
    return 1 unless $pid;
    kill 'CONT', $pid if delete $self->{frozen};
    OCSPServer::stop_child($pid);
    # The port must be free again (restart on the same port).
    OCSPServer::wait_until(10, sub {
        !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                               Proto => 'tcp', Timeout => 1);
    }, 0.05);
    return 1;
}

# freeze() / thaw(): SIGSTOP / SIGCONT: a cache server that accepts
# connections (the kernel does) but never answers, as a hung or swapping one.
# stop() thaws it first.
sub freeze {
    my ($self) = @_;
    return 0 unless $self->{pid};
    $self->_disconnect;
    $self->{frozen} = 1;
    return kill 'STOP', $self->{pid};
}

sub thaw {
    my ($self) = @_;
    return 0 unless $self->{pid} && delete $self->{frozen};
    return kill 'CONT', $self->{pid};
}

# waiting_requests(): connections to this server holding bytes it has not
# read (from /proc/net/tcp: established, local port ours, receive queue not
# empty). While frozen: clients that sent a request and wait for the answer.
sub waiting_requests {
    my ($self) = @_;
    my $port = sprintf '%04X', $self->{port};
    my $n = 0;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        for (split /\n/, OCSPServer::slurp($file)) {
            my @f = split ' ';
            next unless @f > 4 && $f[1] =~ /:$port\z/ && $f[3] eq '01';
            my (undef, $rx) = split /:/, $f[4];
            $n++ if hex($rx // 0) > 0;
        }
    }
    return $n;
}

# restart(): stop, then start again on the same port (empty: nothing is
# persisted).
sub restart {
    my ($self) = @_;
    $self->stop;
    return $self->start;
}

# The key the socache provider stores a binary id under.
sub key_for {
    my ($self, $hex_id) = @_;
    return "$OCSPCacheServer::NAMESPACE:" . lc $hex_id;
}

sub _disconnect {
    my ($self) = @_;
    my $s = delete $self->{sock};
    close $s if $s;
}

sub _sock {
    my ($self) = @_;
    return $self->{sock} if $self->{sock};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "$self->{name}: cannot connect to 127.0.0.1:$self->{port}: $!\n";
    binmode $s;
    $s->autoflush(1);
    return $self->{sock} = $s;
}

# Reads one line (without its CRLF or LF: memcached's metadump ends lines
# with LF only), bounded by 10 s.
sub _line {
    my ($self) = @_;
    my $s = $self->_sock;
    my $line = '';
    my $deadline = time + 10;
    while ($line !~ /\n\z/) {
        die "$self->{name}: reply timeout\n" if time > $deadline;
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        select(my $rout = $rin, undef, undef, 1) or next;
        my $n = sysread($s, my $c, 1);
        if (!$n) {
            $self->_disconnect;
            die "$self->{name}: connection closed\n";
        }
        $line .= $c;
    }
    $line =~ s/\r?\n\z//;
    return $line;
}

# Reads exactly N bytes plus the CRLF after them.
sub _bytes {
    my ($self, $n) = @_;
    my $s = $self->_sock;
    my $buf = '';
    my $deadline = time + 10;
    while (length $buf < $n + 2) {
        die "$self->{name}: reply timeout\n" if time > $deadline;
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        select(my $rout = $rin, undef, undef, 1) or next;
        my $got = sysread($s, $buf, $n + 2 - length $buf, length $buf);
        if (!$got) {
            $self->_disconnect;
            die "$self->{name}: connection closed\n";
        }
    }
    return substr($buf, 0, $n);
}

sub _send {
    my ($self, $data) = @_;
    my $s = $self->_sock;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($s, $data, length($data) - $off, $off);
        if (!defined $n) {
            $self->_disconnect;
            die "$self->{name}: write failed: $!\n";
        }
        $off += $n;
    }
}

# ===========================================================================
package OCSPCacheServer::Redis;
# redis-server without persistence: --save "" --appendonly no.
our @ISA = ('OCSPCacheServer::Base');

sub _default_name { 'redis' }
sub spec { "redis:127.0.0.1:$_[0]{port}" }
sub load_module {
    "LoadModule socache_redis_module $OCSPServer::MODDIR/mod_socache_redis.so"
}

sub _command {
    my ($self) = @_;
    return ($OCSPCacheServer::REDIS, '--port', $self->{port}, '--bind', '127.0.0.1',
            '--protected-mode', 'no', '--save', '', '--appendonly', 'no',
            '--daemonize', 'no', '--dir', $self->{dir},
            '--logfile', $self->log_file, '--databases', '1');
}

# cmd(ARGS...): one RESP command; returns the reply (a string, a number,
# undef for a nil bulk string, an array ref for an array); dies on "-ERR".
sub cmd {
    my ($self, @args) = @_;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    $self->_send($req);
    return $self->_reply;
}

sub _reply {
    my ($self) = @_;
    my $line = $self->_line;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+';
    return 0 + $rest if $t eq ':';
    die "redis: $rest\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $rest < 0;
        return $self->_bytes($rest);
    }
    if ($t eq '*') {
        return undef if $rest < 0;
        return [ map { $self->_reply } 1 .. $rest ];
    }
    die "redis: unexpected reply '$line'\n";
}

sub ping  { $_[0]->cmd('PING') eq 'PONG' }
sub get   { $_[0]->cmd('GET', $_[1]) }
# set(KEY, VALUE, [TTL seconds]): as mod_socache_redis does (SETEX).
sub set {
    my ($self, $key, $value, $ttl) = @_;
    return $self->cmd('SETEX', $key, $ttl, $value) if $ttl;
    return $self->cmd('SET', $key, $value);
}
sub ttl   { $_[0]->cmd('TTL', $_[1]) }
sub keys  { @{ $_[0]->cmd('KEYS', $_[1] // '*') // [] } }
sub flush { $_[0]->cmd('FLUSHALL') }

# ===========================================================================
package OCSPCacheServer::Memcached;
# memcached, TCP only (-U 0), 16 MB.
our @ISA = ('OCSPCacheServer::Base');

sub _default_name { 'memcached' }
sub spec { "memcache:127.0.0.1:$_[0]{port}" }
sub load_module {
    "LoadModule socache_memcache_module $OCSPServer::MODDIR/mod_socache_memcache.so"
}

sub _command {
    my ($self) = @_;
    return ($OCSPCacheServer::MEMCACHED, '-l', '127.0.0.1', '-p', $self->{port},
            '-U', '0', '-m', '16', '-c', '256', '-t', '2', '-v');
}

sub ping {
    my ($self) = @_;
    $self->_send("version\r\n");
    return $self->_line =~ /^VERSION /;
}

# get(KEY): the value, or undef.
sub get {
    my ($self, $key) = @_;
    $self->_send("get $key\r\n");
    my $line = $self->_line;
    return undef if $line eq 'END';
    $line =~ /^VALUE \S+ \d+ (\d+)/ or die "memcached: unexpected reply '$line'\n";
    my $value = $self->_bytes($1);
    my $end = $self->_line;
    die "memcached: unexpected reply '$end'\n" unless $end eq 'END';
    return $value;
}

# set(KEY, VALUE, [TTL seconds]): 1 when stored.
sub set {
    my ($self, $key, $value, $ttl) = @_;
    $self->_send("set $key 0 " . ($ttl // 0) . ' ' . length($value) . "\r\n$value\r\n");
    return $self->_line eq 'STORED' ? 1 : 0;
}

# keys(): every key (lru_crawler metadump: memcached 1.4.31 and later).
sub keys {
    my ($self) = @_;
    $self->_send("lru_crawler metadump all\r\n");
    my @keys;
    for (1 .. 100000) {
        my $line = $self->_line;
        last if $line eq 'END';
        die "memcached: $line\n" if $line =~ /^(?:ERROR|CLIENT_ERROR|SERVER_ERROR|BUSY)/;
        push @keys, $1 if $line =~ /^key=(\S+)/;
    }
    return map { my $k = $_; $k =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $k } @keys;
}

sub flush {
    my ($self) = @_;
    $self->_send("flush_all\r\n");
    return $self->_line eq 'OK';
}

# ===========================================================================
package OCSPCacheServer;

# httpd(CACHE, name => 'a', dir => WORKDIR, pki => PKI, ...): an
# OCSPServer::Httpd of a fleet: the rsa.test virtual host, OCSPStaplingStore
# off (so a server can only get a response from the responder or from the
# shared cache), `OCSPStaplingCache` on CACHE with its provider module
# loaded, a small event MPM; other options as OCSPServer::Httpd->new's
# (global => [...] is added after the cache lines).
my %SMALL_MPM = (
    event   => { StartServers => 2, ThreadsPerChild => 25, MinSpareThreads => 25,
                 MaxSpareThreads => 75 },
    worker  => { StartServers => 2, ThreadsPerChild => 25, MinSpareThreads => 25,
                 MaxSpareThreads => 75 },
    prefork => { StartServers => 2, MinSpareServers => 1, MaxSpareServers => 4 },
);
sub httpd {
    my ($cache, %o) = @_;
    my $mpm = $o{mpm} // 'event';
    my @global = ($cache->load_module, 'OCSPStaplingCache ' . $cache->spec,
                  @{ delete $o{global} // [] });
    my $h = OCSPServer::Httpd->new(store => 'off', mpm => $mpm,
        mpm_conf => $SMALL_MPM{$mpm} // {},
        vhosts => [ { name => 'rsa.test', cert => 'rsa' } ],
        %o, global => \@global);
    push @HTTPD, $h;
    return $h;
}

# staple_text(HANDSHAKE RESULT): the stapled response as s_client prints it,
# every field down to the signature bytes, or undef: two equal texts are the
# same response.
sub staple_text {
    my ($r) = @_;
    return $r->{output} =~ /^(OCSP Response Data:.*?)^={10,}/ms ? $1 : undef;
}

# same_staple(SERVERS, WHAT, [NEWER_THAN]): a test that every server of the
# fleet (OCSPServer::Httpd objects, vhost rsa.test) staples exactly the same
# good response (same bytes): one handshake with each; with NEWER_THAN (a
# thisUpdate), handshakes with each, 0.5 s apart, until all staple the same
# response with a later thisUpdate (bounded). Returns the first server's
# handshake.
sub same_staple {
    my ($servers, $what, $newer_than) = @_;
    my (@r, @t);
    my $same = sub {
        @r = map { OCSPServer::handshake($_->port, 'rsa.test') } @$servers;
        @t = map { staple_text($_) // '' } @r;
        return (!grep { !$_->{stapled} || ($_->{cert_status} // '') ne 'good'
                        || ($_->{this_update} // 0) <= ($newer_than // -1) } @r)
               && $t[0] ne '' && !grep { $_ ne $t[0] } @t;
    };
    my $ok = Test::More::ok(defined $newer_than ? OCSPServer::wait_until(40, $same, 0.5)
                                                : $same->(),
        'all ' . scalar(@$servers) . " servers staple the same good response $what");
    Test::More::diag(join "\n", map { OCSPServer::describe($_) } @r) unless $ok;
    return $r[0];
}

# request_times(RESPONDER): the epoch times of the requests it answered.
sub request_times {
    my ($resp) = @_;
    return map { (split ' ')[0] } split /\n/, OCSPServer::slurp($resp->log_file);
}

# received_times(RESPONDER): the epoch times of the requests it read,
# answered or not yet (a request is logged there before its answer).
sub received_times {
    my ($resp) = @_;
    return map { (split ' ')[0] } split /\n/, OCSPServer::slurp($resp->received_file);
}

# The pid a server's records name as their origin ("host/pid").
sub origin_pid {
    my ($rec) = @_;
    return $rec && $rec->{origin} =~ m{/(\d+)\z} ? $1 : undef;
}

# stop_httpd(HTTPD): stops an OCSPServer::Httpd also when it never got as
# far as writing its pid file (e.g. stuck in its startup): its processes
# are found by their command line (our httpd binary and this server's own
# configuration file), TERM, then KILL after a bounded wait.
sub stop_httpd {
    my ($h) = @_;
    $h->stop;
    my $find = sub {
        grep { $h->_is_ours($_) } map { m{/proc/(\d+)/} ? $1 : () } glob '/proc/[0-9]*/cmdline';
    };
    my @p = $find->() or return 1;
    kill 'TERM', @p;
    return 1 if OCSPServer::wait_until(10, sub { !$find->() }, 0.1);
    kill 'KILL', $find->();
    OCSPServer::wait_until(5, sub { !$find->() }, 0.1);
    return 1;
}

# record(...): a stapling record (stapling_record.c's "OSR1" layout) around
# DER bytes: the form a server writes into the shared cache, for tests that
# forge entries. Times in epoch seconds (float ok); cert_status 0 good,
# 1 revoked, 2 unknown.
#   record(der => BYTES, this_update => T, next_update => T, expires => T,
#          fetched_at => T, next_attempt => T, cert_status => 0,
#          origin => 'elsewhere/1')
sub record {
    my (%r) = @_;
    my $now = time;
    my $us = sub { int(($_[0] // 0) * 1e6) };
    my $der = $r{der} // '';
    my $err = $r{error} // '';
    my $origin = $r{origin} // 'forger.invalid/1';
    return 'OSR1'
        . pack('q>7', map { $us->($_) }
               $r{this_update} // $now - 60, $r{next_update} // $now + 3600,
               $r{expires} // $r{next_update} // $now + 3600, $r{revoked_at} // 0,
               $r{fetched_at} // $now, $r{attempted_at} // $r{fetched_at} // $now,
               $r{next_attempt} // $now + 1800)
        . pack('C4', $r{resp_status} // 0, $r{cert_status} // 0,
               ($r{revoke_reason} // -1) + 1, $r{source} // 0)
        . pack('n N n C', $r{failures} // 0, length $der, length $err, length $origin)
        . $der . $err . $origin;
}

# parse_record(BYTES): the fields of a record, or undef when it is none.
sub parse_record {
    my ($buf) = @_;
    return undef unless defined $buf && length $buf >= 73 && substr($buf, 0, 4) eq 'OSR1';
    my %r;
    my @t = unpack('q>7', substr($buf, 4, 56));
    @r{qw(this_update next_update expires revoked_at fetched_at attempted_at next_attempt)}
        = map { $_ / 1e6 } @t;
    @r{qw(resp_status cert_status revoke_reason source)} = unpack('C4', substr($buf, 60, 4));
    $r{revoke_reason}--;
    my ($failures, $der_len, $err_len, $origin_len) = unpack('n N n C', substr($buf, 64, 9));
    $r{failures} = $failures;
    return undef unless length $buf == 73 + $der_len + $err_len + $origin_len;
    $r{der} = substr($buf, 73, $der_len);
    $r{error} = substr($buf, 73 + $der_len, $err_len);
    $r{origin} = substr($buf, 73 + $der_len + $err_len, $origin_len);
    return \%r;
}

1;
