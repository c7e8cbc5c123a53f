# Cold start with the responder failing (it takes each request and closes the
# connection without a byte, as a crashed or overloaded responder would): the
# server starts anyway (no staple, an error logged), retries with a growing
# backoff (5 s, 10 s, 20 s ... plus up to 25% jitter, at most 60 s while
# nothing can be stapled), and once the responder answers again stapling
# starts by itself within that backoff, no restart. The backoff is measured
# where it matters: at the responder, from the times its requests arrive.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_failed_re);

plan tests => 8;
OCSPServer::deadline(200);

# http://127.0.0.1:P/switch/close (OCSPStaplingForceURL): closes every
# connection unanswered while the switch file exists, answers good once it
# is removed.
my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
open my $sw, '>', $switch or die "$switch: $!";
close $sw;
$resp->start(switch => $switch);
my $url = $pki->url('switch/close');
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ { name => 'rsa.test', cert => 'rsa',
                  extra => "OCSPStaplingForceURL $url" } ]);
ok($h->start, 'httpd starts with the responder failing') or BAIL_OUT('no server');
my $sum = $h->summary // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '1 0 0 1',
   'startup summary: 1 certificate without a response yet') or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
my $none = handshake($h->port, 'rsa.test');
ok($none->{connected} && !$none->{stapled}, 'TLS works, nothing stapled')
    or diag(describe($none));

# The responder's log: [epoch seconds (whole, when it is done), mode, ...].
sub requests { map { [split ' '] } split /\n/, OCSPServer::slurp($resp->log_file) }

# Three requests (startup + 2 retries), all closed unanswered.
my @reqs;
OCSPServer::wait_until(30, sub { @reqs = requests(); @reqs >= 3 }, 0.2);
ok(@reqs >= 3 && !grep({ $_->[1] ne 'close' } @reqs[0 .. 2]),
   'the responder got three requests (startup and two retries), none answered')
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file), $h->log_lines(qr/ocspstaple/));
my @fails = $h->log_lines(update_failed_re('rsa'));
ok(@fails >= 3 && !grep({ !/\[ocspstaple:error\].*\Q$url\E.*not stapling/ } @fails),
   'each failure is logged as an error naming the responder URL ("not stapling")')
    or diag(@fails);

# The gaps between requests: 5 s, then 10 s, each plus up to 25% jitter;
# whole seconds in the log, the 1 s refresh tick and a loaded machine:
# -1 s, +3 s.
my @gap = map { @reqs > $_ ? $reqs[$_][0] - $reqs[$_ - 1][0] : -1 } 1, 2;
ok($gap[0] >= 4 && $gap[0] <= 9 && $gap[1] >= 9 && $gap[1] <= 16,
   "backoff grows at the responder: requests $gap[0] s then $gap[1] s apart "
   . '(5 and 10 s plus up to 25% jitter)')
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file));

# The responder answers again: the next retry (20 s after the third request,
# plus up to 25%) gets a good response, and a staple follows, no restart.
unlink $switch or die "$switch: $!";
my $r;
OCSPServer::wait_until(80, sub {
    $r = handshake($h->port, 'rsa.test');
    $r->{stapled};
}, 1);
my $seen = time;
@reqs = requests();
my ($ans) = grep { $_->[1] eq 'good' } @reqs;
ok($r->{stapled} && $r->{cert_status} eq 'good' && $ans && @reqs == 4,
   'stapled again once the responder answers: its fourth request got a good answer')
    or diag(describe($r), "\nresponder log:\n", OCSPServer::slurp($resp->log_file),
            $h->log_lines(qr/ocspstaple/));
my $gap3 = $ans && @reqs >= 4 ? $ans->[0] - $reqs[2][0] : -1;
my $lag = $ans ? $seen - $ans->[0] : -1;
ok($gap3 >= 19 && $gap3 <= 28 && $lag >= 0 && $lag <= 5,
   sprintf('that request came %d s after the third (20 s plus up to 25%%), '
           . 'the staple %.0f s after it', $gap3, $lag))
    or diag("responder log:\n", OCSPServer::slurp($resp->log_file));

$h->stop;
$resp->stop;
