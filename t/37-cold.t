# Cold start with the responder down: the server starts anyway (no staple,
# an error logged), retries with a growing backoff (5 s, 10 s, 20 s ... plus
# jitter, at most 60 s while nothing can be stapled), and once the responder
# is up again stapling starts by itself within that backoff, no restart.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_failed_re);

plan tests => 8;
OCSPServer::deadline(200);

my ($w, $pki, $resp) = setup();     # the responder is not started yet
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start, 'httpd starts with the responder down') or BAIL_OUT('no server');
my $sum = $h->summary // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '1 0 0 1',
   'startup summary: 1 certificate without a response yet') or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
my $none = handshake($h->port, 'rsa.test');
ok($none->{connected} && !$none->{stapled}, 'TLS works, nothing stapled')
    or diag(describe($none));

# Three failures in a row (startup + 2 retries): the delay grows.
my @fails = $h->wait_for_log(update_failed_re('rsa'), 30, 0, 3);
ok(@fails >= 3, 'three failed attempts logged') or diag($h->log_lines(qr/ocspstaple/));
ok(!grep({ !/\[ocspstaple:error\].*\Q${\ $pki->url('good') }\E.*not stapling/ } @fails),
   'each is an error naming the responder URL ("not stapling")')
    or diag(@fails);
my @retry = map { /retry in (\d+) s/ ? $1 : -1 } @fails[0 .. 2];
ok($retry[0] >= 4 && $retry[0] <= 7 && $retry[1] >= 9 && $retry[1] <= 13
   && $retry[2] >= 19 && $retry[2] <= 26,
   "backoff grows: retry in @retry s (5, 10, 20 s plus up to 25% jitter)");

# The responder comes back: a staple within the pending backoff, no restart.
$resp->start;
my $t0 = time;
my $r;
OCSPServer::wait_until(80, sub {
    $r = handshake($h->port, 'rsa.test');
    $r->{stapled};
}, 1);
my $waited = time - $t0;
ok($r->{stapled} && $r->{cert_status} eq 'good',
   sprintf('stapled again %.0f s after the responder came back', $waited))
    or diag(describe($r), "\n", $h->log_lines(qr/ocspstaple/));
cmp_ok($waited, '<=', $retry[2] + 3, 'within the pending retry delay');

$h->stop;
$resp->stop;
