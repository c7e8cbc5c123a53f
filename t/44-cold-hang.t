# Cold start behind a responder that hangs: the store is empty and the only
# responder accepts connections and never answers. Handshakes must neither
# fetch nor wait: with nothing valid to staple they go on at once without a
# staple, from the first one on, under concurrent load; the responder is
# asked again in the background (retries with backoff), and the server keeps
# serving.
#
# (Before the process model of the start-up helper, a handshake with nothing
# to staple fetched itself and waited up to OCSPStaplingResponderTimeout.)
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use File::Path ();
use OCSPServer qw(setup handshake describe);
use OCSPLoad;

my $TIMEOUT  = 4;        # OCSPStaplingResponderTimeout
my $CLIENTS  = 3;        # concurrent client loops
my $SECONDS  = 30;       # how long they run: several timeouts and retries
my $MAX      = 1000;     # handshakes per loop at most
my $PAUSE    = 0.1;      # between two handshakes of a loop: the loops must not
                         # saturate 2 cores (the bound is on the server, not on fork+exec)
# No handshake may take this long (seconds): half the responder timeout, so a
# handshake that waited on the fetch fails it, while a busy machine (the
# suite runs scenarios in parallel) does not.
my $LIMIT    = $TIMEOUT * ($ENV{OCSP_SANITIZE} ? 0.75 : 0.5);

plan tests => 11;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();       # the PKI's own responder is never started
File::Path::make_path("$w/htdocs");
open my $ix, '>', "$w/htdocs/index.html" or die "$w/htdocs/index.html: $!";
print $ix "still serving\n";
close $ix;

my $hang = OCSPLoad::Listener->new(dir => $w);
$hang->start;
my $url = "http://127.0.0.1:${\ $hang->port}/good";

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    global => [ "OCSPStaplingResponderTimeout $TIMEOUT" ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa',
                  extra => "OCSPStaplingForceURL $url" } ]);
my $t_start = time;
my $took = $h->start(timeout => 60);
ok($took, sprintf('httpd starts cold with a hanging responder (%.1f s)', $took // -1))
    or BAIL_OUT('no server');
my $t_served = time;
my @at_start = $hang->accepts;
diag(sprintf 'connections to the responder by the time the server served: %d', scalar @at_start);

# ---- client loops for 30 s ------------------------------------------------------
my $c = OCSPLoad::Clients->new(dir => $w, port => $h->port, servername => 'rsa.test',
                               n => $CLIENTS, seconds => $SECONDS, max => $MAX,
                               pause => $PAUSE);
$c->start;
$c->wait;
my @r = $c->results;
my $s = OCSPLoad::stats(@r);
diag(OCSPLoad::describe_stats($s));
if (my $slow = $s->{slowest}) {
    diag(sprintf 'slowest handshake: started %.1f s after the server served, %.3f s',
         $slow->{time} - $t_served, $slow->{elapsed});
}
my @over = grep { $_->{elapsed} >= $LIMIT } @r;
diag(sprintf '%d handshake(s) took %g s or more, first ones at (s after serving): %s',
     scalar @over, $LIMIT,
     join(' ', map { sprintf '%.1f(%.2fs)', $_->{time} - $t_served, $_->{elapsed} }
               @over[0 .. ($#over < 9 ? $#over : 9)])) if @over;

cmp_ok($s->{n}, '>=', 4 * $CLIENTS, "the clients did $s->{n} handshakes in $SECONDS s");
cmp_ok($s->{max}, '<', $LIMIT,
       sprintf('no handshake took %g s or more (max %.3f s, p99 %.3f s)', $LIMIT, $s->{max}, $s->{p99}));
is($s->{connected}, $s->{n}, 'every handshake connected');
is($s->{stapled}, 0, 'none was stapled (nothing valid to staple)');
my $first = $r[0] // { time => 0 };
ok($first->{time} - $t_served < 2 && $first->{connected} && $first->{elapsed} < $LIMIT,
   'the very first handshake after the start went on at once')
    or diag(sprintf 'first: %.2f s after serving, elapsed %.3f s', $first->{time} - $t_served,
            $first->{elapsed} // -1);

# ---- the responder was asked again, in the background -------------------------
my @acc = $hang->accepts;
diag('connections to the responder (s after start): '
     . join(' ', map { sprintf '%.1f', $_ - $t_start } @acc));
ok(@acc >= 2 && $acc[-1] - $acc[0] >= $TIMEOUT,
   sprintf('the responder was asked again after the first attempt timed out (%d connections)',
           scalar @acc));
ok(scalar(@acc) <= 2 + 2 * $SECONDS / 5,
   'retries back off (no more than one every 2.5 s on average)')
    or diag(scalar(@acc) . ' connections');

$c->stop;
$h->still_serving('rsa.test', $pki);     # 3 tests
$h->stop;
$hang->stop;
