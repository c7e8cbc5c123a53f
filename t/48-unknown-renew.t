# `unknown` at a renewal is a failure for the schedule, not a new response:
# a good response is stapled; from its renewal on, the responder answers
# `unknown` (scripts/ocsp_responder.pl's switch/unknown). Then:
#  - handshakes keep stapling the SAME good response (same thisUpdate)
#    until its nextUpdate, in a virtual host with
#    OCSPStaplingReturnResponderErrors off and in one with it on (an
#    unknown never replaces a stapleable good response);
#  - each answer is logged at error (OCSPSTAPLE0005), none as an update;
#  - the retries reach the responder following the backoff: gaps of 5 s,
#    10 s, 20 s... (+25% jitter), growing;
#  - once the good response has expired and the responder was asked again:
#    nothing stapled with ...ReturnResponderErrors off, the unknown answer
#    with it on (stapled only when nothing else is).
# Responses of 60 s (--nmin 1), renewed 55 s before their nextUpdate (5 s
# after the fetch). About 100 s.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPOrder;

plan tests => 12;
OCSPServer::deadline(200);
my $T0 = time;

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
my $fmt = sub { OCSPOrder::fmt($_[0], $T0) };
$resp->start(nmin => 1, switch => $switch);

my $url = $pki->url('switch/unknown');
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'unknown', store => 'off',
    mpm_conf => { ServerLimit => 2, StartServers => 2, ThreadsPerChild => 25,
                  MaxRequestWorkers => 50, MinSpareThreads => 25, MaxSpareThreads => 75 },
    global => [ 'OCSPStaplingRenewWindow 55s' ],
    vhosts => [
        { name => 'rsa.test', cert => 'rsa',
          extra => "OCSPStaplingForceURL $url\nOCSPStaplingReturnResponderErrors off" },
        { name => 'rsa-on.test', cert => 'rsa',
          extra => "OCSPStaplingForceURL $url\nOCSPStaplingReturnResponderErrors on" },
    ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

my %good = map { $_ => handshake($h->port, $_) } qw(rsa.test rsa-on.test);
ok((!grep { !$_->{stapled} || ($_->{cert_status} // '') ne 'good' || !$_->{next_update} } values %good)
   && $good{'rsa.test'}{this_update} == ($good{'rsa-on.test'}{this_update} // -1),
   'both virtual hosts staple the good response')
    or diag(join "\n", map { describe($_) } values %good);
my $good = $good{'rsa.test'};
my $offset = $h->log_size;
my $t_switch = OCSPOrder::switch_on($switch);
note(sprintf 'good response %s to %s; switch at %s', $fmt->($good->{this_update}),
             $fmt->($good->{next_update}), $fmt->($t_switch));

# ---- until its nextUpdate: the same good response ---------------------------
my (@seen, $i);
my $expires = $good->{next_update} // time + 60;
wait_until($expires - 1.5 - time, sub {
    my $name = (qw(rsa.test rsa-on.test))[$i++ % 2];
    my $r = handshake($h->port, $name);
    $r->{name} = $name;
    push @seen, $r;
    return time >= $expires - 1.5;
}, 0.5);
my @wrong = grep { $_->{time} + $_->{elapsed} < $expires - 0.5
                   && (!$_->{stapled} || ($_->{cert_status} // '') ne 'good'
                       || ($_->{this_update} // 0) != $good->{this_update}) } @seen;
ok(@seen >= 20 && !@wrong,
   sprintf('until its nextUpdate, all %d handshakes (errors off and on) stapled the same good response',
           scalar @seen))
    or diag(join "\n", map { "$_->{name} at " . $fmt->($_->{time}) . ': ' . describe($_) }
                       @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)]);

my @req = OCSPOrder::requests($resp, path => '/switch/unknown', mode => 'unknown');
my @t = map { $_->{time} } @req;
ok(@t >= 3, sprintf('the responder answered unknown %d times before the nextUpdate '
                     . '(the renewal and at least 2 retries)', scalar @t))
    or diag(OCSPServer::slurp($resp->log_file));
my @bad = OCSPOrder::backoff_violations(\@t, base => 5);
my @g = OCSPOrder::gaps(\@t);
ok(@g >= 2 && !@bad, sprintf('the retries followed the backoff: gaps %s s', join(', ', @g)))
    or diag(join("\n", @bad, 'request times: ' . join(' ', map { $fmt->($_) } @t)));
ok(@g >= 2 && !grep({ $g[$_] <= $g[$_ - 1] } 1 .. $#g), 'the gaps grow')
    or diag('gaps: ', join(', ', @g));

my $err_re = qr/\[ocspstaple:error\].*OCSPSTAPLE0005: cert "CN=rsa\.test"/;
my @err = $h->log_lines($err_re, $offset);
ok(@err >= 1, 'the unknown answer is logged at error (OCSPSTAPLE0005)')
    or diag($h->log_lines(qr/OCSPSTAPLE/, $offset));
my @oks = $h->log_lines(qr/OCSPSTAPLE000[24]: cert "CN=rsa\.test"/, $offset);
ok(!@oks, 'no update ok (OCSPSTAPLE0002) after the switch') or diag(@oks);
my @lines = $h->log_lines(qr/OCSPSTAPLE000[2-5]: cert "CN=rsa\.test"/, $offset);
ok(@lines == @t || @lines == @t + 1 || @lines == @t - 1,
   sprintf('one line per fetch (%d lines, %d requests)', scalar @lines, scalar @t))
    or diag(@lines);

# ---- after its nextUpdate ---------------------------------------------------
# The next retry comes within the backoff (at most 60 s * 1.25 while nothing
# valid is left; 40 s * 1.25 after the 4th failure, planned before expiry).
my $n_before = @req;
ok(wait_until($expires + 80 - time, sub {
        OCSPOrder::requests($resp, path => '/switch/unknown', since => $expires + 1) >= 1 }, 0.5),
   'the responder is asked again after the good response expired')
    or diag(OCSPServer::slurp($resp->log_file));
my $t_end = time + 2.5;       # every process has it after its next tick
wait_until(5, sub { time >= $t_end }, 0.2);
my $off = handshake($h->port, 'rsa.test');
ok($off->{connected} && !$off->{stapled},
   'after the nextUpdate, errors off: nothing stapled (never the expired response, never unknown)')
    or diag(describe($off));
my $on = handshake($h->port, 'rsa-on.test');
ok($on->{stapled} && ($on->{cert_status} // '') eq 'unknown',
   'after the nextUpdate, errors on: the unknown answer is stapled (nothing else is left)')
    or diag(describe($on));

$h->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
