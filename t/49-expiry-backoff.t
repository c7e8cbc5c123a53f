# One schedule per certificate per server, also once the response has
# expired: prefork with 8 child processes, responses valid 60 s (--nmin 1);
# the responder answers HTTP 500 from before the first renewal until two
# minutes after the response's nextUpdate (scripts/ocsp_responder.pl's
# switch/http500), then good again.
#  - The responder sees about one request per backoff step for the whole
#    server (5 s doubling; at most 60 s (+25% jitter) while nothing valid
#    is left), not one per child process: at most 8 requests from the
#    switch to its end (2.5 minutes), never two within 4 s, and no gap
#    after the expiry longer than the 60 s cap allows.
#  - No handshake after the nextUpdate staples the expired response (every
#    staple seen has its nextUpdate after the handshake).
#  - Once the responder is good again, a fresh response is stapled within
#    the backoff bound (60 s + 25%, plus the refresh's second).
# About 4 minutes (the two minutes after expiry are the point).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPOrder;

plan tests => 10;
OCSPServer::deadline(330);
my $T0 = time;
my $COLD_MAX = 60 * 1.25 + 2;     # the longest retry gap with nothing valid

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
my $fmt = sub { OCSPOrder::fmt($_[0], $T0) };
$resp->start(nmin => 1, switch => $switch);

my $path = '/switch/http500';
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'expiry', store => 'off',
    mpm => 'prefork',
    mpm_conf => { StartServers => 8, MinSpareServers => 8, MaxSpareServers => 8,
                  ServerLimit => 8, MaxRequestWorkers => 8 },
    vhosts => [ { name => 'rsa.test', cert => 'rsa',
                  extra => 'OCSPStaplingForceURL ' . $pki->url('switch/http500') } ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');
my @kids = $h->processes;
note(scalar(@kids) . ' processes (parent and children)');

my $good = handshake($h->port, 'rsa.test');
ok($good->{stapled} && ($good->{cert_status} // '') eq 'good' && $good->{next_update},
   'the good response is stapled') or diag(describe($good));
my $expires = $good->{next_update} // time + 60;
my $t_on = OCSPOrder::switch_on($switch);
note(sprintf 'good response %s to %s; HTTP 500 from %s', $fmt->($good->{this_update}),
             $fmt->($expires), $fmt->($t_on));

# ---- HTTP 500 until two minutes after the expiry, handshakes all along ------
my @seen;
my $t_until = $expires + 120;
wait_until($t_until - time, sub {
    push @seen, handshake($h->port, 'rsa.test');
    return time >= $t_until;
}, 1);
my $t_off = OCSPOrder::switch_off($switch);

my @stale = grep { $_->{stapled} && (!defined $_->{next_update} || $_->{next_update} <= $_->{time}) } @seen;
my @after = grep { $_->{time} > $expires } @seen;
# (one handshake a second at most; fewer on a busy machine: 20 is plenty to
# see an expired response if one were stapled)
ok(@after >= 20 && !@stale,
   sprintf('%d handshakes after the nextUpdate (%d in all): none stapled an expired response',
           scalar @after, scalar @seen))
    or diag(join "\n", map { 'at ' . $fmt->($_->{time}) . ': ' . describe($_) }
                       @stale[0 .. ($#stale < 5 ? $#stale : 5)]);
my @other = grep { $_->{stapled} && ($_->{this_update} // 0) != ($good->{this_update} // -1) } @seen;
ok(!@other, 'nothing but the good response was ever stapled')
    or diag(join "\n", map { describe($_) } @other[0 .. ($#other < 3 ? $#other : 3)]);
my @unstapled = grep { !$_->{stapled} && $_->{time} + $_->{elapsed} < $expires - 0.5 } @seen;
ok(!@unstapled, 'until its nextUpdate the good response was stapled')
    or diag(join "\n", map { 'at ' . $fmt->($_->{time}) . ': ' . describe($_) } @unstapled[0 .. ($#unstapled < 3 ? $#unstapled : 3)]);

my @req = grep { $_->{time} <= $t_off }
          OCSPOrder::requests($resp, path => $path, mode => 'http500', since => $t_on);
my @t = map { $_->{time} } @req;
my $times = join(' ', map { $fmt->($_) } @t);
ok(@t >= 4 && @t <= 8,
   sprintf('%d requests in the %.0f s of HTTP 500 (at most 8: one per backoff step for the server)',
           scalar @t, $t_off - $t_on))
    or diag("request times: $times\nnextUpdate " . $fmt->($expires));
my @g = OCSPOrder::gaps(\@t);
my @close = grep { $_ < 4 } @g;
ok(!@close, 'never two requests within 4 s (not one per child process)')
    or diag('gaps: ', join(', ', @g), "\nrequest times: $times");
my @post = grep { $_ > $expires } @t;
my @long = grep { $post[$_] - $post[$_ - 1] > $COLD_MAX } 1 .. $#post;
ok(@post >= 2 && !@long && (!@post || $t_off - $post[-1] <= $COLD_MAX),
   sprintf('after the expiry, retries at most %.0f s apart (%d requests)', $COLD_MAX, scalar @post))
    or diag("request times: $times\nnextUpdate " . $fmt->($expires));
note("request times: $times; nextUpdate " . $fmt->($expires));

# ---- the responder is good again: stapled within the backoff bound ----------
my $back;
wait_until($COLD_MAX + 5, sub {
    my $r = handshake($h->port, 'rsa.test');
    $back = $r if $r->{stapled} && ($r->{cert_status} // '') eq 'good'
                  && ($r->{next_update} // 0) > time;
    return $back;
}, 0.5);
ok($back && $back->{time} - $t_off <= $COLD_MAX,
   sprintf('stapled again %.1f s after the responder was good again (at most %.0f s)',
           ($back ? $back->{time} : time) - $t_off, $COLD_MAX))
    or diag($back ? describe($back) : 'no staple', "\n", $h->log_lines(qr/OCSPSTAPLE000/, 0));
my @crash = $h->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/);
ok(!@crash, 'no child process crashed') or diag(@crash);

$h->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
