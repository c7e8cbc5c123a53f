# Background refresh: a short-lived response (60 s, `openssl ocsp -nmin 1`)
# is renewed before it expires with no client traffic at all, visitors get the
# new one (thisUpdate moves on), and the responder sees ONE request per
# renewal for the whole server, not one per child process (prefork, 4+
# processes: the refresh is a singleton and the plan is shared).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 11;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork',
    mpm_conf => { StartServers => 4, MinSpareServers => 2, MaxSpareServers => 10 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd (prefork, StartServers 4) starts') or BAIL_OUT('no server');
ok(OCSPServer::wait_until(10, sub { $h->processes >= 5 }), 'parent and at least 4 children')
    or diag('processes: ', join ' ', $h->processes);

my $first = $h->handshake_pid('rsa.test');
ok($first->{stapled} && $first->{this_update}, 'first handshake stapled')
    or diag(describe($first));

# No traffic from here on until the responder sees the renewal request. It is
# planned at thisUpdate + 50% of 60 s, minus up to 10% of the remaining 30 s
# (27 to 30 s), found by a background tick (each second); the responder logs
# whole seconds when it has answered.
my $quiet = $h->log_size;
my $tu1 = $first->{this_update} // 0;
my @reqs;
OCSPServer::wait_until(60, sub {
    @reqs = map { [split ' '] } split /\n/, OCSPServer::slurp($resp->log_file);
    @reqs >= 2;
}, 0.2);
my @meanwhile = $h->log_lines(qr/AH01964: /, $quiet);
my $at = @reqs >= 2 ? $reqs[1][0] - $tu1 : undef;
ok(defined $at && $at >= 26 && $at <= 34 && !@meanwhile,
   sprintf('the responder got the renewal request %s s after thisUpdate (planned 27..30 s), '
           . 'with no handshake meanwhile: a background renewal', $at // 'never'))
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file),
            "connections meanwhile:\n", @meanwhile, $h->log_lines(qr/ocspstaple/));

# The process that renewed publishes at once; a handshake picks the new
# response up right after (at most a second per process): poll (bounded).
my $later;
OCSPServer::wait_until(15, sub {
    $later = $h->handshake_pid('rsa.test');
    $later->{stapled} && ($later->{this_update} // 0) > $tu1;
}, 0.3);
ok($later->{stapled} && ($later->{this_update} // 0) > $tu1,
   'a handshake now staples the renewed response (later thisUpdate)')
    or diag('first: ', describe($first), "\nlater: ", describe($later));

# Every child must staple the renewed response: the others take it from the
# shared cache at their next background tick (each second). Handshakes
# (0.3 s apart) until the latest one of each child staples it; a child that
# has shown it never goes back to the old one.
my @kids = $h->children;
my ($all_new, $all) = $h->poll_children(30, sub { $h->handshake_pid('rsa.test') },
    sub { $_[0]{stapled} && ($_[0]{this_update} // 0) == ($later->{this_update} // -1) });
my %served = map { ($_->{pid} // '?') => 1 } @$all;
my @unserved = grep { !$served{$_} } @kids;
ok(@kids >= 4 && $all_new && !@unserved,
   scalar(@$all) . ' handshakes reached all ' . scalar(@kids) . ' children ('
   . join(' ', sort keys %served) . '), each of which now staples the renewed response')
    or diag("children: @kids; not reached: @unserved\n",
            map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @$all);
my (%new, @back);
for my $r (@$all) {
    my $pid = $r->{pid} // '?';
    my $is_new = $r->{stapled} && ($r->{this_update} // 0) == ($later->{this_update} // -1);
    push @back, $r if $new{$pid} && !$is_new;
    $new{$pid} ||= $is_new;
}
ok(@$all && !@back, 'no child went back to an older response once it stapled the renewed one')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @back);

# A (wrong) fetch of its own by any child would come at that child's renewal
# time, planned 27 to 30 s after thisUpdate, at its next tick. Wait until
# that window is over and the responder is answering nothing: every request
# made by then has been read and answered (its received log has every
# request before its answer).
ok(OCSPServer::wait_until(40, sub { time >= $tu1 + 32 && $resp->in_flight == 0 }, 0.2),
   'the renewal window of every child is over, no request in flight')
    or diag('requests read ', $resp->received, ', answered ', $resp->requests);

my @updates = $h->log_lines(qr/OCSPSTAPLE000[2345]: /);
my $requests = $resp->requests;
is($requests, scalar(@updates),
   'responder requests == update log lines: one request per renewal for the whole server')
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file), "updates:\n", @updates);
is($requests, 2, 'two requests: startup and one renewal');
is($resp->received, 2, 'and the responder read no other request');

$h->stop;
$resp->stop;
