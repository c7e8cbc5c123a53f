# Responder outage: after the responder dies, visitors keep getting the last
# good response until its own nextUpdate (the failed renewals are logged with
# the responder's URL), then no staple at all (never an expired one); once
# the responder is back, stapling resumes by itself, without a restart.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe update_ok_re update_failed_re);

plan tests => 8;
OCSPServer::deadline(280);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);                  # responses valid for 60 s
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

my $warm = handshake($h->port, 'rsa.test');
ok($warm->{stapled} && $warm->{next_update}, 'warm-up handshake stapled')
    or diag(describe($warm));
my $next_update = $warm->{next_update} // time + 60;
$resp->stop;

# Until nextUpdate: always stapled, always the same (still valid) response.
# A handshake a second until 2 s before nextUpdate.
my (@before, @after);
OCSPServer::wait_until($next_update - time + 5, sub {
    return 1 if time >= $next_update - 2;
    push @before, handshake($h->port, 'rsa.test');
    return 0;
}, 1);
my @bad = grep { !$_->{stapled} || $_->{this_update} != $warm->{this_update} } @before;
ok(@before >= 10 && !@bad,
   scalar(@before) . ' handshakes until nextUpdate: all stapled with the last good response')
    or diag(map { describe($_) . "\n" } @bad);

my $failed = $h->wait_for_log(update_failed_re('rsa'), 5);
like($failed // '', qr/\[ocspstaple:warn\].*\Q${\ $pki->url('good') }\E.*still stapling the previous response/,
     'OCSPSTAPLE0003 (warn) names the responder URL while the old response is valid');

# Past nextUpdate (a moment in time: a second after it): no staple from any
# child (handshakes, 0.3 s apart, until each has served one, at least 4),
# and never one that has expired.
OCSPServer::wait_until($next_update + 1 - time + 5, sub { time >= $next_update + 1 }, 0.2);
my %served;
my $reached = OCSPServer::wait_until(30, sub {
    my $r = $h->handshake_pid('rsa.test');
    push @after, $r;
    $served{$r->{pid} // '?'}++;
    @after >= 4 && !grep { !$served{$_} } $h->children;
}, 0.3);
ok($reached && !grep({ $_->{stapled} } @after),
   'after nextUpdate: no staple (' . scalar(@after) . ' handshakes, every child)')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @after);
my @expired = grep { $_->{stapled} && ($_->{next_update} // 0) <= int($_->{time}) }
              @before, @after;
ok(!@expired, 'never an expired response stapled')
    or diag(map { describe($_) . "\n" } @expired);

# The responder comes back: stapling resumes by itself (cold backoff <= 60 s
# plus jitter).
$resp->start(nmin => 1);
my $t0 = time;
my $back;
OCSPServer::wait_until(100, sub {
    $back = handshake($h->port, 'rsa.test');
    $back->{stapled};
}, 1);
ok($back->{stapled} && $back->{this_update} > $warm->{this_update},
   sprintf('stapling resumed by itself %.0f s after the responder came back', time - $t0))
    or diag(describe($back), "\n", $h->log_lines(qr/ocspstaple/));
ok($h->alive, 'server still running');

$h->stop;
$resp->stop;
