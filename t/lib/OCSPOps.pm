package OCSPOps;
# Helpers for the operator scenarios t/6*.t (status page, log tags,
# Must-Staple, static files, proxy, coexistence), on top of OCSPServer.pm:
#
#   my $res  = OCSPOps::https_get($h->port, '/ocsp-status?format=json');
#              # { code, type, body, output }
#   my $json = OCSPOps::status_json($h->port);      # decoded, or undef
#   my $row  = OCSPOps::status_row($json, 'rsa');   # the row of CN=rsa.test
#   my $s    = OCSPOps::status_pid($h);  # { json, pid }: which child served it
#   my ($rc, $out) = OCSPOps::configtest($h);       # apache2 -t on its config
#   my @l = OCSPOps::module_lines($h, $offset);     # [ocspstaple:...] lines
#   my %doc = OCSPOps::readme_tags();               # tag => level(s) column
#   my $p = OCSPOps::Proxy->new(dir => $w); $p->start; $p->port; $p->lines;
#
# The proxy (t/bin/http_proxy.pl) is stopped by PID in an END block, also
# when a test dies or hits OCSPServer::deadline.
use strict;
use warnings FATAL => 'all';

use JSON::PP ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use OCSPServer ();
use OCSPTest ();

# https_get(PORT, PATH, servername => NAME): one GET over TLS with curl
# (certificate not checked: this is about the page, not the chain).
sub https_get {
    my ($port, $path, %o) = @_;
    my $host = $o{servername} // '127.0.0.1';
    my @cmd = ('curl', '-sS', '-k', '--max-time', 20, '-w', "\n%{http_code} %{content_type}");
    push @cmd, '--resolve', "$host:$port:127.0.0.1" if $host ne '127.0.0.1';
    my $out = OCSPTest::run_capture(@cmd, "https://$host:$port$path");
    my %r = (output => $out, code => 0, type => '', body => '');
    if ($out =~ /\A(.*)\n(\d{3}) ?(.*)\z/s) {
        @r{qw(body code type)} = ($1, $2, $3);
    }
    return \%r;
}

# The status page as JSON (decoded), or undef (with a diagnostic) when it
# cannot be had or parsed.
sub status_json {
    my ($port, $path) = @_;
    my $r = https_get($port, $path // '/ocsp-status?format=json');
    my $json = eval { JSON::PP->new->decode($r->{body}) };
    if (!$json) {
        Test::More::diag("status page: HTTP $r->{code}, $@\n$r->{output}");
        return undef;
    }
    return $json;
}

# status_pid(HTTPD, [PATH]): the status page (status_json) and the child
# process that served it (mod_ssl's AH01964 line, at info): { json => ...,
# pid => PID or undef }. The page shows that process's own copies.
sub status_pid {
    my ($h, $path) = @_;
    my $off = $h->log_size;
    my $json = status_json($h->port, $path);
    my ($l) = $h->log_lines(qr/AH01964: /, $off);
    return { json => $json, pid => $l && $l =~ /\[pid (\d+)/ ? $1 : undef };
}

# The row of the PKI leaf NAME (subject CN=NAME.test), or undef.
sub status_row {
    my ($json, $name) = @_;
    my ($row) = grep { ($_->{subject} // '') =~ /\bCN=\Q$name\E\.test\b/ }
                @{ $json->{certificates} // [] };
    return $row;
}

# "2026-11-20T23:38:54Z" -> epoch seconds.
sub iso_time {
    my ($s) = @_;
    return undef unless defined $s;
    my ($y, $mo, $d, $h, $mi, $sec) = $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z\z/
        or return undef;
    require Time::Local;
    return Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y);
}

# apache2 -t on the server's configuration (written first): (exit, output).
sub configtest {
    my ($h) = @_;
    $h->write_config;
    my $out = OCSPTest::run_capture('timeout', 60, $OCSPServer::HTTPD,
                                    '-t', '-f', $h->{conf});
    return ($? >> 8, $out);
}

# The module's lines of the server's error log after OFFSET.
sub module_lines {
    my ($h, $offset) = @_;
    return $h->log_lines(qr/\[ocspstaple:\w+\]/, $offset);
}

# README's "Log messages" table: tag => level column (e.g. "error / warn").
sub readme_tags {
    my $text = OCSPServer::slurp("$OCSPServer::ROOT/README.md");
    my %tags;
    while ($text =~ /^\|\s*(OCSPSTAPLE\d{4})\s*\|\s*([^|]*?)\s*\|/mg) {
        $tags{$1} = $2;
    }
    return %tags;
}

# ===========================================================================
package OCSPOps::Proxy;
use POSIX qw(WNOHANG);
# t/bin/http_proxy.pl on 127.0.0.1 (a port of its own choice, or PORT), a
# child of the test process.

# new(dir => WORKDIR, name => 'proxy', port => PORT (default: kernel's))
sub new {
    my ($class, %a) = @_;
    my $self = bless { name => 'proxy', port => 0, %a }, $class;
    my $base = "$self->{dir}/$self->{name}";
    @$self{qw(log pidfile stderr)} = ("$base.log", "$base.pid", "$base.stderr");
    return $self;
}

sub port     { $_[0]{port} }
sub log_file { $_[0]{log} }

# Request lines it handled so far ("<epoch> POST http://... HTTP/1.1 -> 200").
sub lines {
    my ($self) = @_;
    return split /\n/, OCSPServer::slurp($self->{log});
}

sub start {
    my ($self) = @_;
    die "proxy already running\n" if $self->{pid};
    unlink $self->{pidfile};
    my @cmd = ($^X, "$OCSPServer::ROOT/t/bin/http_proxy.pl", '--port', $self->{port},
               '--log', $self->{log}, '--pidfile', $self->{pidfile});
    my $pid = OCSPServer::spawn($self->{stderr}, @cmd);
    $self->{pid} = $pid;
    OCSPServer::track($self);
    my $up = OCSPServer::wait_until(15, sub {
        return 1 if OCSPServer::slurp($self->{pidfile}) =~ /^\d+ \d+$/m;
        return -1 if waitpid($pid, WNOHANG) == $pid;
        return 0;
    });
    if (!$up || $up == -1) {
        delete $self->{pid} if $up;
        $self->stop;
        die "proxy did not start: " . OCSPServer::slurp($self->{stderr}) . "\n";
    }
    ($self->{port}) = OCSPServer::slurp($self->{pidfile}) =~ /^\d+ (\d+)/;
    return 1;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid};
    OCSPServer::untrack($self);
    return 1 unless $pid;
    OCSPServer::stop_child($pid);
    return 1;
}

1;
