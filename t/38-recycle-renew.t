# The background refresh survives child recycling: with prefork and
# MaxConnectionsPerChild 1 every child, including the one running the
# refresh, exits after one connection; another child takes the refresh over,
# the 60 s response is still renewed on time, every handshake meanwhile is
# stapled, and the responder still sees one request per renewal.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 6;
OCSPServer::deadline(150);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork', store => 'off',
    mpm_conf => { StartServers => 3, MinSpareServers => 2, MaxSpareServers => 6,
                  MaxConnectionsPerChild => 1 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd (prefork, MaxConnectionsPerChild 1) starts') or BAIL_OUT('no server');

# The responder's log: [epoch seconds (whole, when it is done), mode, ...].
sub requests { map { [split ' '] } split /\n/, OCSPServer::slurp($resp->log_file) }

# Handshakes every ~0.5 s until the responder sees the renewal request (due
# at ~30 s), at the latest until the first response is about to expire.
my (undef, @start_kids) = $h->processes;
my $first = $h->handshake_pid('rsa.test');
my $expires = $first->{next_update} // time + 60;
my @hs = ($first);
my (undef, @renew_kids) = $h->processes;     # taken before each look at
my @reqs = requests();                          # the responder's log
OCSPServer::wait_until($expires - 1 - time, sub {
    push @hs, $h->handshake_pid('rsa.test');
    (undef, @renew_kids) = $h->processes;
    @reqs = requests();
    @reqs >= 2;
}, 0.5) if @reqs < 2;
my @bad = grep { !$_->{stapled} } @hs;
ok(@hs >= 10 && !@bad, scalar(@hs) . ' handshakes (a new child for each): all stapled')
    or diag(map { describe($_) . "\n" } @bad);

# By the renewal, every child that was there at the start has served its one
# connection and exited: the renewal was made by a child started later.
my %now = map { $_ => 1 } @renew_kids;
my @left = grep { $now{$_} } @start_kids;
ok(@start_kids && !@left, 'none of the ' . scalar(@start_kids) . ' children of the start'
   . " is left when the renewal request comes (children then: @renew_kids)")
    or diag("children at the start: @start_kids; still there: @left");

# The renewal request reached the responder at the planned time: thisUpdate
# + 50% of 60 s, minus up to 10% of the remaining 30 s (27 to 30 s), found
# by a background tick (each second); the log has whole seconds.
my $tu1 = $first->{this_update} // 0;
my $at = @reqs >= 2 ? $reqs[1][0] - $tu1 : undef;
ok(defined $at && $at >= 26 && $at <= 34 && $reqs[1][1] eq 'good',
   sprintf('the responder got the renewal request %s s after thisUpdate (planned 27..30 s)',
           $at // 'never'))
    or diag("first response expires ", scalar(gmtime $expires), " GMT; responder log:\n",
            OCSPServer::slurp($resp->log_file), "module log lines:\n",
            $h->log_lines(qr/OCSPSTAPLE(?!0040)/));

# From then on handshakes staple the renewed response: poll until the first
# one does. A child that was already running takes it at its next background
# tick (each second); every child forked after that handshake (each serves
# one connection) must staple it from its first handshake: handshakes
# (0.3 s apart) until 6 have been served by such children.
my $later;
OCSPServer::wait_until(15, sub {
    $later = $h->handshake_pid('rsa.test');
    $later->{stapled} && ($later->{this_update} // 0) > $tu1;
}, 0.3);
my %running = map { $_ => 1 } $h->children;
my $forked_later = sub { grep { defined $_->{pid} && !$running{$_->{pid}} } @_ };
my @more;
OCSPServer::wait_until(30, sub {
    push @more, $h->handshake_pid('rsa.test');
    $forked_later->(@more) >= 6;
}, 0.3);
my @after = ($later, $forked_later->(@more));
my %pids = map { ($_->{pid} // '?') => 1 } @after;
my @old = grep { !$_->{stapled} || ($_->{this_update} // 0) <= $tu1 } @after;
ok(@after >= 7 && !@old && keys(%pids) == @after,
   scalar(@after) . ' handshakes after the renewal, in ' . scalar(keys %pids)
   . ' different children: all staple the renewed response (later thisUpdate)')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } $later, @more);
# The responder logs a request when it has answered, the module when it has
# verified the answer: a request still being judged is waited for.
my $updates = sub { scalar $h->log_lines(qr/OCSPSTAPLE000[2345]: /) };
OCSPServer::wait_until(10, sub { $updates->() >= $resp->requests }, 0.2);
is($resp->requests, $updates->(), 'one responder request per update for the whole server');

$h->stop;
$resp->stop;
