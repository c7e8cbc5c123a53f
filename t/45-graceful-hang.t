# A graceful restart while one virtual host's responder hangs: handshakes to
# the other virtual host go on across the restart without a stall. A reload
# never waits on a responder (only on the local store), so the new
# generation serves at once, staples what the store holds, and the hanging
# responder's certificate simply has no staple yet.
#
# (Before the process model of the start-up helper, the parent fetched again
# at every graceful restart before starting the new children: every
# handshake queued for the hanging responder's OCSPStaplingResponderTimeout.)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPLoad;

my $TIMEOUT = 10;        # hang.test's OCSPStaplingResponderTimeout
my $LIMIT   = 3;         # no handshake across the restart may take longer
$LIMIT *= 2 if $ENV{OCSP_SANITIZE};
my $AFTER   = 4;         # keep the load going this long after the new generation serves

plan tests => 10;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();
$resp->start;
my $hang = OCSPLoad::Listener->new(dir => $w);
$hang->start;

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [
        { name => 'rsa.test', cert => 'rsa' },                 # the healthy responder
        { name => 'hang.test', cert => 'sni2',
          extra => "OCSPStaplingForceURL http://127.0.0.1:${\ $hang->port}/good\n"
                 . "OCSPStaplingResponderTimeout $TIMEOUT" } ]);
my $took = $h->start(timeout => 60);
ok($took, sprintf('httpd starts (%.1f s)', $took // -1)) or BAIL_OUT('no server');

my $r;
wait_until(20, sub { $r = handshake($h->port, 'rsa.test'); $r->{stapled} }, 0.5);
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good', 'rsa.test is stapled before the restart')
    or diag(describe($r));

# ---- load across the graceful restart -------------------------------------------
my $c = OCSPLoad::Clients->new(dir => $w, port => $h->port, servername => 'rsa.test',
                               n => 2, seconds => 150, max => 4000);
$c->start;
# Some handshakes of the old generation first.
wait_until(30, sub { scalar($c->results) >= 10 }, 0.1);
my $before = scalar $c->results;
my $t_usr1 = time;
my $graceful = $h->graceful(timeout => 60);
my $t_new = time;                       # the new generation serves
ok($graceful, sprintf('graceful restart: the new generation serves after %.1f s',
                      $graceful // -1));
# ... and keep going until a handshake begun $AFTER s after that has finished.
my $enough = wait_until(60, sub {
    grep { $_->{time} >= $t_new + $AFTER } $c->results;
}, 0.1);
$c->stop;
my @r = $c->results;
my $s = OCSPLoad::stats(@r);
my @after = grep { $_->{time} >= $t_new } @r;
my @across = grep { $_->{time} >= $t_usr1 - 1 } @r;
my $sa = OCSPLoad::stats(@across);
diag(sprintf 'graceful restart took %.2f s; %d handshakes before it', $graceful // -1, $before);
diag('all:    ' . OCSPLoad::describe_stats($s));
diag('across: ' . OCSPLoad::describe_stats($sa) . ' (from 1 s before the restart on)');
if (my $slow = $s->{slowest}) {
    diag(sprintf 'slowest handshake began %.2f s after the restart signal and took %.3f s',
         $slow->{time} - $t_usr1, $slow->{elapsed});
}
ok($enough && @after >= 2, sprintf('the load went on for %d s after the new generation served '
                                  . '(%d handshakes)', $AFTER, scalar @after));
cmp_ok($s->{max}, '<', $LIMIT,
       sprintf('no handshake to rsa.test took %g s or more across the restart (max %.3f s, p99 %.3f s)',
               $LIMIT, $s->{max}, $s->{p99}));
is($s->{connected}, $s->{n}, "every handshake connected ($s->{n})");
my @unstapled_after = grep { !$_->{stapled} } @after;
ok(!@unstapled_after, sprintf('every handshake to rsa.test after the restart was stapled '
                              . '(%d of %d not; %d not stapled in all)',
                              scalar @unstapled_after, scalar @after, $s->{n} - $s->{stapled}));

# ---- right after the restart -------------------------------------------------------
my $ra = handshake($h->port, 'rsa.test');
ok($ra->{stapled} && ($ra->{cert_status} // '') eq 'good', 'rsa.test is stapled')
    or diag(describe($ra));
my $rh = handshake($h->port, 'hang.test');
ok($rh->{connected} && !$rh->{stapled} && $rh->{elapsed} < $LIMIT,
   sprintf('hang.test connects at once without a staple (%.3f s)', $rh->{elapsed}))
    or diag(describe($rh));
my @acc = $hang->accepts;
ok(@acc >= 1, sprintf('the hanging responder was asked (%d connections)', scalar @acc));
diag('connections to the hanging responder (s relative to the restart signal): '
     . join(' ', map { sprintf '%.1f', $_ - $t_usr1 } @acc));

$h->stop;
$hang->stop;
$resp->stop;
