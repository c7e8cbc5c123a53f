# Hostile responders, no good response yet: one loopback responder with
# every fault mode of scripts/ocsp_responder.pl, one TLS virtual host (own
# certificate f-MODE) per mode, in two servers:
#   errors-off  certificates' AIA URLs (.../MODE), default
#               OCSPStaplingReturnResponderErrors off
#   errors-on   OCSPStaplingForceURL .../MODE/on, ...ReturnResponderErrors on
# For every case: the server starts; each fetch writes exactly one tagged
# line naming the certificate, the responder URL and the reason (checked
# exactly for the startup fetch, and for the background retries that
# follow); every handshake completes in under 2 s; nothing is stapled except
# what the semantics allow (nonext always, unknown and the responder's error
# statuses only with ...ReturnResponderErrors on); both servers still serve
# a plain HTTPS GET at the end, and no child process crashed.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use File::Path ();
use OCSPServer qw(setup handshake describe);
use OCSPFaults qw(%CASE @MODES have_faketime update_lines request_count settled_counts);

OCSPServer::deadline(360);   # generous: a loaded machine, the sanitizers
my $T0 = time;
my $FAST = 2.0;            # seconds: a handshake bound, generous on purpose
my $TIMEOUT = 10;          # OCSPStaplingResponderTimeout for most modes (generous:
                          # 30 answers signed at once on a busy machine)
my $TIMEOUT_HANG = 3;      # ... for hang and slow: long enough for the slow
                           # mode's headers (it signs first) to arrive, far
                           # shorter than its trickled body

my ($w, $pki, $resp) = setup(pki_sets => ['faults']);
note(sprintf 'PKI with %d fault leaves made in %.1f s', scalar @MODES, time - $T0);
$resp->start;

my @modes = @MODES;
if (!have_faketime()) {
    diag('faketime is not installed (scripts/deps.sh installs it): '
         . 'skipping the expired and future modes');
    @modes = grep { !$CASE{$_}{faketime} } @modes;
}

File::Path::make_path("$w/htdocs");
open my $ix, '>', "$w/htdocs/index.html" or die "$w/htdocs/index.html: $!";
print $ix "still serving\n";
close $ix;

sub vhosts {
    my ($suffix) = @_;
    my @v = ({ name => 'rsa.test', cert => 'rsa' });   # a well-behaved neighbour
    for my $m (@modes) {
        my @extra;
        push @extra, "OCSPStaplingResponderTimeout $TIMEOUT_HANG"
            if $m eq 'hang' || $m eq 'slow';
        push @extra, 'OCSPStaplingForceURL ' . $pki->url("$m/$suffix") if $suffix;
        push @v, { name => "f-$m.test", cert => "f-$m", extra => join("\n", @extra) };
    }
    return \@v;
}

my %srv = (
    off => OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'errors-off',
        store => 'off', global => [ "OCSPStaplingResponderTimeout $TIMEOUT" ],
        vhosts => vhosts(undef)),
    on  => OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'errors-on',
        store => 'off', global => [ "OCSPStaplingResponderTimeout $TIMEOUT",
                                    'OCSPStaplingReturnResponderErrors on' ],
        vhosts => vhosts('on')),
);
my %path = (off => sub { "/$_[0]" }, on => sub { "/$_[0]/on" });

for my $which (qw(off on)) {
    my $h = $srv{$which};
    my $took = $h->start(timeout => 60);
    ok($took, sprintf('errors-%s: httpd starts with %d hostile responders (%.1f s)',
                      $which, scalar @modes, $took // -1)) or BAIL_OUT('no server');
    # The startup fetch round is over: every hang/close child has logged.
    OCSPServer::wait_until(3, sub {
        !grep { request_count($resp, $path{$which}->($_)) < 1 } @modes });
    $h->{startup_requests} = { map { $_ => request_count($resp, $path{$which}->($_)) } @modes };
    my $text = $h->error_log;
    ($h->{startup_log}) = $text =~ /\A(.*?resuming normal operations)/s;
    $h->{startup_log} //= $text;
}

# ---- the startup fetch: one line per certificate, naming URL and reason ---
for my $which (qw(off on)) {
    my $h = $srv{$which};
    my @startup = split /(?<=\n)/, $h->{startup_log};
    for my $m (@modes) {
        my $c = $CASE{$m};
        my $url = $pki->url($which eq 'on' ? "$m/on" : $m);
        my @l = update_lines("f-$m", @startup);
        my $label = "errors-$which $m";
        my $want = $c->{kind} eq 'nonext'  ? qr/\[ocspstaple:info\].*OCSPSTAPLE0002: cert "CN=f-$m\.test".* update ok from \Q$url\E: status good, thisUpdate .*, nextUpdate \(none\)/
                 : $c->{kind} eq 'unknown' ? qr/\[ocspstaple:error\].*OCSPSTAPLE0005: cert "CN=f-$m\.test".*: responder \Q$url\E does not know this certificate \(status unknown\)/
                 : $c->{kind} eq 'revoked' ? qr/\[ocspstaple:crit\].*OCSPSTAPLE0004: cert "CN=f-$m\.test".*: REVOKED according to \Q$url\E \(revoked /
                 : qr/\[ocspstaple:error\].*OCSPSTAPLE0003: cert "CN=f-$m\.test" serial [0-9A-F]+ id [0-9a-f]{16}: update failed: \Q$url\E: (?:$c->{reason}).*; (??{ $which eq 'on' && $c->{kind} eq 'error' ? qr{stapling the responder's own answer \(OCSPStaplingReturnResponderErrors on\)} : qr{not stapling} }); retry in \d+ s/;
        ok(@l == 1 && $l[0] =~ $want && $h->{startup_requests}{$m} == 1,
           "$label: the startup fetch made one request and one log line naming "
           . 'the certificate, ' . $url . ' and ' . ($c->{kind} eq 'fail' || $c->{kind} eq 'error'
                                                     ? 'the reason' : "the $c->{kind} status"))
            or diag("requests: $h->{startup_requests}{$m}\nlines:\n", @l,
                    "expected: $want\n");
    }
}

# ---- handshakes: quick, and only what may be stapled is ---------------------
my %expect_staple = (           # kind => [errors-off, errors-on]
    fail => [0, 0], error => [0, 1], unknown => [0, 1], nonext => [1, 1],
    revoked => [1, 1],
);
my @slow_hs;
for my $which (qw(off on)) {
    my $h = $srv{$which};
    my $good = handshake($h->port, 'rsa.test');
    ok($good->{stapled} && ($good->{cert_status} // '') eq 'good',
       "errors-$which: the well-behaved neighbour rsa.test is stapled") or diag(describe($good));
    for my $m (@modes) {
        my $c = $CASE{$m};
        my $r = handshake($h->port, "f-$m.test");
        push @slow_hs, "errors-$which $m: " . describe($r) if $r->{elapsed} >= $FAST;
        my $want = $expect_staple{$c->{kind}}[$which eq 'on' ? 1 : 0];
        my $label = "errors-$which $m: handshake completes ("
                  . sprintf('%.2f s', $r->{elapsed}) . ')';
        if (!$want) {
            ok($r->{connected} && !$r->{stapled}, "$label, nothing stapled")
                or diag(describe($r), "\n", $r->{output});
        }
        elsif ($c->{kind} eq 'error') {
            # s_client prints the status in lower case (tryLater: trylater).
            ok($r->{connected} && $r->{stapled} && lc($r->{resp_status} // '') eq lc $c->{status},
               "$label, the responder's own $c->{status} answer stapled")
                or diag(describe($r));
        }
        elsif ($c->{kind} eq 'unknown' || $c->{kind} eq 'revoked') {
            ok($r->{connected} && $r->{stapled} && ($r->{resp_status} // '') eq 'successful'
               && ($r->{cert_status} // '') eq $c->{kind},
               "$label, the verified $c->{kind} status stapled") or diag(describe($r));
        }
        else {                                             # nonext
            ok($r->{connected} && $r->{stapled} && ($r->{cert_status} // '') eq 'good'
               && $r->{this_update} && !defined $r->{next_update},
               "$label, the response without nextUpdate stapled") or diag(describe($r));
        }
    }
}
ok(!@slow_hs, "every handshake took less than $FAST s") or diag(join "\n", @slow_hs);

# ---- background retries: still one line per fetch, each with its reason ----
# Failed fetches are retried after 5-6.25 s (then 10, 20... s). Wait until
# each failing certificate has been retried at least once.
my @failing = grep { $CASE{$_}{kind} eq 'fail' || $CASE{$_}{kind} eq 'error' } @modes;
my $retried = OCSPServer::wait_until(30, sub {
    for my $which (qw(off on)) {
        my @all = $srv{$which}->log_lines(qr/OCSPSTAPLE000[2-5]:/);
        return 0 if grep { update_lines("f-$_", @all) < 2 } @failing;
    }
    return 1;
}, 0.25);
ok($retried, 'every failing certificate was retried in the background');
# Retries go on meanwhile: wait until each certificate's logs are seen
# settled (no request of its in flight, a line for each fetch answered).
my $view = settled_counts(30, $resp, map { my $which = $_;
    map { [ "$which $_", $srv{$which}, "f-$_", $path{$which}->($_) ] } @failing } qw(off on));
for my $which (qw(off on)) {
    my (@bad, @reason);
    for my $m (@failing) {
        my $url = $pki->url($which eq 'on' ? "$m/on" : $m);
        my $v = $view->{"$which $m"};
        my @l = @{ $v->{lines} };
        push @bad, "$m: $v->{received} requests read, $v->{answered} answered, "
                   . scalar(@l) . ' lines' unless $v->{settled};
        push @reason, grep { !/OCSPSTAPLE0003: cert "CN=f-$m\.test".*: update failed: \Q$url\E: (?:$CASE{$m}{reason})/ } @l;
    }
    ok(!@bad, "errors-$which: one update line per fetch, retries included") or diag(join "\n", @bad);
    ok(!@reason, "errors-$which: every retry line names the certificate, the URL and the reason")
        or diag(@reason);
}

# With ...ReturnResponderErrors on, the responder's error answer IS stapled
# (above), and its OCSPSTAPLE0003 line says so.
{
    my @wrong = grep { /; not stapling;/ }
                map { update_lines("f-$_", $srv{on}->log_lines(qr/OCSPSTAPLE0003:/)) }
                grep { $CASE{$_}{kind} eq 'error' } @modes;
    ok(!@wrong, 'errors-on: the lines of stapled error answers do not say "not stapling"')
        or diag($wrong[0]);
}

# ---- the servers keep serving ------------------------------------------------
for my $which (qw(off on)) {
    my $h = $srv{$which};
    $h->still_serving('f-hang.test', $pki, "errors-$which");
    $h->stop;
}
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
done_testing();
