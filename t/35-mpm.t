# Every MPM staples without a gap: prefork, worker and event each staple from
# the first handshake, keep stapling while child processes are recycled
# (MaxConnectionsPerChild 3: a new child every 3 connections), and after a
# graceful restart (served from the store, on by default: a reload never
# waits on a responder).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe);

my @MPMS = qw(prefork worker event);
plan tests => 6 * @MPMS;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start;

my %threaded = (StartServers => 2, ServerLimit => 16, ThreadsPerChild => 4,
                MinSpareThreads => 4, MaxSpareThreads => 8, MaxRequestWorkers => 16);
my %mpm_conf = (
    prefork => { StartServers => 2, MinSpareServers => 1, MaxSpareServers => 4,
                 MaxRequestWorkers => 16 },
    worker  => { %threaded },
    event   => { %threaded },
);

for my $mpm (@MPMS) {
    my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => "httpd-$mpm",
        mpm => $mpm, store => "$w/store-$mpm",
        mpm_conf => { %{ $mpm_conf{$mpm} }, MaxConnectionsPerChild => 3 },
        vhosts => [ { name => 'rsa.test', cert => 'rsa' },
                    { name => 'ecdsa.test', cert => 'ecdsa' } ]);
    ok($h->start, "$mpm: starts") or BAIL_OUT("$mpm: no server");
    my $first = handshake($h->port, 'rsa.test');
    ok($first->{stapled} && $first->{cert_status} eq 'good', "$mpm: first handshake stapled")
        or diag(describe($first));

    # The server's child processes (from /proc) before and after the 15
    # handshakes: MaxConnectionsPerChild 3 must have replaced some of them.
    my ($parent, @before) = $h->processes;
    my @hs = map { handshake($h->port, $_ % 2 ? 'rsa.test' : 'ecdsa.test') } 1 .. 15;
    my @bad = grep { !$_->{stapled} } @hs;
    ok(!@bad, "$mpm: 15 handshakes while children are recycled, all stapled")
        or diag(map { describe($_) . "\n" } @bad);
    my (@gone, @new, @after);
    OCSPServer::wait_until(10, sub {
        (undef, @after) = $h->processes;
        my %was = map { $_ => 1 } @before;
        my %now = map { $_ => 1 } @after;
        @gone = grep { !$now{$_} } @before;
        @new  = grep { !$was{$_} } @after;
        @gone && @new;
    }, 0.2);
    ok(@before && @gone && @new,
       "$mpm: children were recycled (" . scalar(@gone) . ' of ' . scalar(@before)
       . ' gone, ' . scalar(@new) . ' new)')
        or diag("children before: @before; after: @after");

    ok($h->graceful, "$mpm: graceful restart") or BAIL_OUT("$mpm: no server");
    my $after = handshake($h->port, 'rsa.test');
    ok($after->{stapled}, "$mpm: first handshake after the graceful restart stapled")
        or diag(describe($after), "\n", $h->log_lines(qr/ocspstaple|mpm/));
    $h->stop;
}
$resp->stop;
