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
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 9;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, mpm => 'prefork',
    mpm_conf => { StartServers => 4, MinSpareServers => 2, MaxSpareServers => 10 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd (prefork, StartServers 4) starts') or BAIL_OUT('no server');
ok(OCSPServer::wait_until(10, sub { $h->processes >= 5 }), 'parent and at least 4 children')
    or diag('processes: ', join ' ', $h->processes);

my $first = handshake($h->port, 'rsa.test');
ok($first->{stapled} && $first->{this_update}, 'first handshake stapled')
    or diag(describe($first));

# No traffic from here on until the renewal is logged (at ~50% of 60 s).
my $ok_re = update_ok_re('rsa');
my $second = $h->wait_for_log($ok_re, 60, 0, 2);
ok($second, 'the response was renewed in the background (second OCSPSTAPLE0002)')
    or diag($h->log_lines(qr/ocspstaple/));

# The handshake path picks the new response up right after the planned
# renewal (at most once a second per process): poll a few seconds.
my $later;
OCSPServer::wait_until(5, sub {
    $later = handshake($h->port, 'rsa.test');
    $later->{stapled} && ($later->{this_update} // 0) > ($first->{this_update} // 0);
}, 0.2);
ok($later->{stapled} && $later->{this_update} > $first->{this_update},
   'a handshake now staples the renewed response (later thisUpdate)')
    or diag('first: ', describe($first), "\nlater: ", describe($later));

# Several more handshakes, spread over the child processes: none of them
# must make its process fetch on its own. The other children take the
# renewal from the shared cache at their next background tick (each second).
sleep 1.5;
my @all = map { handshake($h->port, 'rsa.test') } 1 .. 8;
is(scalar(grep { $_->{stapled} && $_->{this_update} == $later->{this_update} } @all),
   8, '8 more handshakes (any child) staple the renewed response');
sleep 2;    # let any (wrong) per-process fetch reach the responder log

my @updates = $h->log_lines(qr/OCSPSTAPLE000[2345]: /);
my $requests = $resp->requests;
is($requests, scalar(@updates),
   'responder requests == update log lines: one request per renewal for the whole server')
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file), "updates:\n", @updates);
is($requests, 2, 'two requests: startup and one renewal');
ok(scalar($h->log_lines(qr/OCSPSTAPLE0040: background refresh runs in process/)) >= 1,
   'OCSPSTAPLE0040 names the refreshing process');

$h->stop;
$resp->stop;
