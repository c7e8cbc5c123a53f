# A responder's own error answer (tryLater) with
# OCSPStaplingReturnResponderErrors on: README says it is stapled while no
# good response is at hand, "kept 10 minutes". What the code does
# (ocspstaple_update.c, answer_record): an error answer expires 600 s after
# the fetch that brought it (OCSPSTAPLE_ERROR_RESPONSE_LIFETIME); each new
# error answer replaces the previous one, so the 10 minutes start again at
# every retry the responder answers tryLater; a retry that gets no answer at
# all keeps the last one until its own 10 minutes are over; a good response
# replaces it at once. Shown through handshakes and the status page's
# `expires` (until when what is held may be stapled), without waiting 10
# minutes:
#   rsa.test    errors on,  responder answers tryLater, then good
#   ecdsa.test  errors on,  a second responder answers tryLater at startup,
#               then is stopped (retries: connection refused)
#   sni2.test   errors off, the same tryLater: never stapled
# and the end of the 10 minutes on a second server whose clock is moved
# forward (libfaketime preloaded, its offset read from a file at every time
# call): sni2.test there, errors on, the second responder's tryLater, then
# nothing: still stapled 30 s before its expires, not stapled 30 s after.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe wait_until free_port);
use OCSPOps;

plan tests => 30;
OCSPServer::deadline(150);
my $T0 = time;

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";                # present: /switch/trylater answers tryLater
open my $fh, '>', $switch or die "$switch: $!";
close $fh;
$resp->start(switch => $switch);
my $resp2 = OCSPServer::Responder->new(dir => $w, port => free_port(), pki => $pki,
                                       name => 'responder2');
$resp2->start;

my $url  = $pki->url('switch/trylater');
my $url2 = "http://127.0.0.1:$resp2->{port}/trylater";
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    global => [ "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>" ],
    vhosts => [
        { name => 'rsa.test', cert => 'rsa',
          extra => "OCSPStaplingForceURL $url\nOCSPStaplingReturnResponderErrors on" },
        { name => 'ecdsa.test', cert => 'ecdsa',
          extra => "OCSPStaplingForceURL $url2\nOCSPStaplingReturnResponderErrors on" },
        { name => 'sni2.test', cert => 'sni2',
          extra => "OCSPStaplingForceURL $url\nOCSPStaplingReturnResponderErrors off" },
    ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

# The server with a movable clock (FAKETIME_DONT_FAKE_MONOTONIC: only the
# wall clock moves, as the module's times come from it).
# Not under `make test-asan`: apache2 with both the ASAN runtime and
# libfaketime preloaded hangs before it starts ("recursive calls to
# clock_gettime() without proper initialization"), and ASAN's runtime must
# come first.
my ($libfaketime) = $ENV{OCSP_SANITIZE} ? () : glob '/usr/lib/*/faketime/libfaketime.so.1';
my $clockfile = "$w/faketime.rc";
sub set_clock {
    my ($offset) = @_;
    open my $c, '>', "$clockfile.new" or die "$clockfile.new: $!";
    printf $c "%+d\n", $offset;
    close $c or die "$clockfile.new: $!";
    rename "$clockfile.new", $clockfile or die "$clockfile: $!";
}
my $hc;
if ($libfaketime) {
    set_clock(0);
    $hc = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-clock',
        env => { LD_PRELOAD => $libfaketime, FAKETIME_TIMESTAMP_FILE => $clockfile,
                 FAKETIME_NO_CACHE => 1, FAKETIME_DONT_FAKE_MONOTONIC => 1 },
        global => [ "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>" ],
        vhosts => [ { name => 'sni2.test', cert => 'sni2',
                      extra => "OCSPStaplingForceURL $url2\nOCSPStaplingReturnResponderErrors on" } ]);
    $hc = undef unless $hc->start;
}
$resp2->stop;                            # its certificates' retries get no answer

sub row {
    my ($name, $srv) = @_;
    my $json = OCSPOps::status_json(($srv // $h)->port) or return {};
    return OCSPOps::status_row($json, $name) // {};
}
sub t { OCSPOps::iso_time($_[0]) // 0 }
sub trylater { my ($r) = @_; $r->{stapled} && ($r->{resp_status} // '') eq 'trylater' }

# ---- the error answer is stapled, for 600 s from its fetch ---------------------
for my $n (qw(rsa ecdsa)) {
    my $r = handshake($h->port, "$n.test");
    ok(trylater($r), "$n.test: the tryLater answer is stapled") or diag(describe($r));
}
my $r = handshake($h->port, 'sni2.test');
ok(!$r->{stapled}, 'sni2.test (errors off): nothing stapled') or diag(describe($r));

my %first;
for my $n (qw(rsa ecdsa)) {
    my $row = $first{$n} = row($n);
    ok(($row->{response_status} // '') eq 'tryLater' && $row->{stapling}
       && ($row->{cert_status} // '') eq 'responder-error',
       "$n: status page: stapling the responder's tryLater") or diag(explain($row));
    is(t($row->{expires}) - t($row->{last_fetch}), 600,
       "$n: status page: expires (" . ($row->{expires} // "none") . ") = last_fetch + 600 s")
        or diag(explain($row));
}
my $s2 = row('sni2');
ok(!$s2->{stapling} && ($s2->{response_status} // '') eq 'tryLater',
   'sni2: status page: holds the tryLater answer, not stapling it') or diag(explain($s2));

# ---- the end of the 10 minutes, on the server with the movable clock ------------
SKIP: {
    skip($ENV{OCSP_SANITIZE} ? 'libfaketime and the ASAN runtime do not mix'
                             : 'libfaketime not installed (Debian package faketime)', 6)
        unless $libfaketime;
    ok($hc, 'httpd-clock (libfaketime preloaded) starts') or skip 'no httpd-clock', 5;
    $r = handshake($hc->port, 'sni2.test');
    ok(trylater($r), 'httpd-clock: the tryLater answer is stapled') or diag(describe($r));
    my $expires = t(row('sni2', $hc)->{expires});
    # Its clock 30 s before the error answer's expiry, then 30 s after it
    # (its responder stays down: no retry can bring anything new).
    set_clock($expires - 30 - int(time));
    $r = handshake($hc->port, 'sni2.test');
    ok(trylater($r), 'httpd-clock, 30 s before expires: still stapled') or diag(describe($r));
    my $json = OCSPOps::status_json($hc->port) // {};
    my $row = OCSPOps::status_row($json, 'sni2') // {};
    my $clock = t($json->{time}) - $expires;
    ok($row->{stapling} && $clock >= -40 && $clock < 0,
       "httpd-clock: status page: stapling, its clock ${clock} s from expires")
        or diag(explain($json));
    set_clock($expires + 30 - int(time));
    my $gone = wait_until(10, sub { $r = handshake($hc->port, 'sni2.test'); !$r->{stapled} }, 0.5);
    ok($gone, 'httpd-clock, 30 s after expires: nothing stapled any more') or diag(describe($r));
    $json = OCSPOps::status_json($hc->port) // {};
    $row = OCSPOps::status_row($json, 'sni2') // {};
    $clock = t($json->{time}) - $expires;
    ok(!$row->{stapling} && $clock >= 30,
       "httpd-clock: status page: not stapling, its clock ${clock} s from expires")
        or diag(explain($json));
    $hc->stop;
}

# ---- the next retries (5 s backoff) --------------------------------------------
# rsa.test's responder answers tryLater again: a new error answer, 600 s
# from its own fetch. ecdsa.test's is gone: the retry fails without an
# answer, the first error answer stays with its first expiry.
my (%now);
my $retried = wait_until(30, sub {
    %now = (rsa => row('rsa'), ecdsa => row('ecdsa'));
    t($now{rsa}{last_fetch}) > t($first{rsa}{last_fetch})
        && t($now{ecdsa}{last_attempt}) > t($first{ecdsa}{last_attempt});
}, 0.5);
ok($retried, 'both retried within 30 s') or diag(explain(\%now));
is(t($now{rsa}{expires}) - t($now{rsa}{last_fetch}), 600,
   "rsa: a new tryLater: expires (" . ($now{rsa}{expires} // "none") . ") = its last_fetch + 600 s")
    or diag(explain($now{rsa}));
ok(t($now{rsa}{expires}) > t($first{rsa}{expires}), 'rsa: the 10 minutes started again');
is($now{ecdsa}{last_fetch} // '', $first{ecdsa}{last_fetch} // 'undef',
   'ecdsa: no new answer (last_fetch unchanged)');
like($now{ecdsa}{last_error} // '', qr/(?i:refused|connect)/,
     'ecdsa: the retry failed for want of a responder') or diag(explain($now{ecdsa}));
is($now{ecdsa}{expires} // '', $first{ecdsa}{expires} // 'undef',
   'ecdsa: the first error answer keeps its expiry (first fetch + 600 s)');
ok($now{ecdsa}{stapling}, 'ecdsa: status page: still stapling it');
for my $n (qw(rsa ecdsa)) {
    $r = handshake($h->port, "$n.test");
    ok(trylater($r), "$n.test: still stapled after the retry") or diag(describe($r));
}

# ---- the responder answers good: the good response replaces it at once ---------
unlink $switch or die "$switch: $!";
my $t_switch = time;
my $good = wait_until(45, sub {
    $r = handshake($h->port, 'rsa.test');
    $r->{stapled} && ($r->{cert_status} // '') eq 'good';
}, 0.5);
ok($good, sprintf 'rsa.test: the good response is stapled at the next retry (%.0f s)',
                  time - $t_switch) or diag(describe($r));
is($r->{serial} // '', $pki->serial('rsa'), 'rsa.test: for the rsa certificate');
# The page shows the copy of the child that serves it: another child takes
# the good response at its next tick (each second).
my $row;
wait_until(10, sub {
    $row = row('rsa');
    ($row->{response_status} // '') eq 'successful' && ($row->{cert_status} // '') eq 'good';
}, 0.3);
ok(($row->{response_status} // '') eq 'successful' && ($row->{cert_status} // '') eq 'good',
   'rsa: status page: good') or diag(explain($row));
is($row->{expires} // '', $row->{next_update} // 'undef',
   'rsa: status page: a good response expires at its nextUpdate');
$r = handshake($h->port, 'ecdsa.test');
ok(trylater($r), 'ecdsa.test: still its tryLater answer (its responder is still down)')
    or diag(describe($r));

my @crash = $h->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/);
ok(!@crash, 'no child process crashed') or diag(@crash);
$h->stop;
$resp->stop;
note(sprintf 'took %.1f s', time - $T0);
