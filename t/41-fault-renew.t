# Hostile responders after a good response: every virtual host f-MODE.test
# asks http://127.0.0.1:P/switch/MODE (OCSPStaplingForceURL), which answers
# good until the test creates the responder's --switch file, and as MODE
# from then on. The first fetch (at startup) is good; responses are valid
# for 2 minutes and renewed 80 s before they expire (minus up to 8 s of
# jitter): 32 to 40 s after the start, time enough for a handshake with
# every virtual host first, also on a busy machine or under the sanitizers.
# The switch is flipped right after the start, so the first renewal meets
# the fault.
#
# For every mode: the renewal writes one line per fetch naming the
# certificate, the URL and the reason (OCSPSTAPLE0003 at warn: the previous
# response is still stapled); the previous, good response stays stapled,
# byte for byte the same thisUpdate, even with ...ReturnResponderErrors on
# (an error answer never replaces a good response); handshakes stay fast
# while a renewal hangs (a valid response exists: no handshake waits).
# Exceptions, by design (README "Refresh policy"): nonext is a valid
# response and replaces the old one. unknown is a failure for the schedule
# (OCSPSTAPLE0005 at error, "still stapling the previous response", a
# retry): the good response stays stapled, with ...ReturnResponderErrors on
# or off.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use File::Path ();
use OCSPServer qw(setup handshake describe);
use OCSPFaults qw(%CASE @MODES have_faketime update_lines settled_counts);
use OCSPOps;

OCSPServer::deadline(360);   # generous: a loaded machine, the sanitizers
my $T0 = time;
my $FAST = 2.0;           # seconds: a handshake bound, generous on purpose
my $TIMEOUT_HANG = 4;     # hang and slow renewals hold the fetch for 4 s

my ($w, $pki, $resp) = setup(pki_sets => ['faults']);
note(sprintf 'PKI with %d fault leaves made in %.1f s', scalar @MODES, time - $T0);
my $switch = "$w/switch";
unlink $switch;
$resp->start(switch => $switch, nmin => 2);

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

my @vhosts = ({ name => 'rsa.test', cert => 'rsa' });
for my $m (@modes) {
    my @extra = ('OCSPStaplingForceURL ' . $pki->url("switch/$m"));
    push @extra, "OCSPStaplingResponderTimeout $TIMEOUT_HANG" if $m eq 'hang' || $m eq 'slow';
    push @vhosts, { name => "f-$m.test", cert => "f-$m", extra => join("\n", @extra) };
}
# The same certificate in a second virtual host that does not return
# responder errors: one fetch, but stapling is decided per virtual host.
# (The same OCSPStaplingForceURL: which virtual host's fetch settings a
# shared certificate gets is not what this test is about.)
push @vhosts, { name => 'f-unknown-off.test', cert => 'f-unknown',
                extra => "OCSPStaplingForceURL ${\ $pki->url('switch/unknown') }\n"
                       . 'OCSPStaplingReturnResponderErrors off' };

# Exactly two child processes for the whole test (both must adopt what the
# other fetched), and no new ones: a child started later staples the
# parent's startup copy until its first refresh tick (t/43-stale-child.t).
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'renew', store => 'off',
    mpm_conf => { ServerLimit => 2, StartServers => 2, ThreadsPerChild => 25,
                  MaxRequestWorkers => 50, MinSpareThreads => 25, MaxSpareThreads => 75 },
    # (10 s: 30 answers signed at once on a busy machine; hang and slow 4 s)
    global => [ 'OCSPStaplingResponderTimeout 10', 'OCSPStaplingRenewWindow 80s',
                'OCSPStaplingReturnResponderErrors on',
                "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>" ],
    vhosts => \@vhosts);
my $took = $h->start(timeout => 60);
ok($took, sprintf('httpd starts (%.1f s)', $took // -1)) or BAIL_OUT('no server');
my $offset = $h->log_size;
# Flip the switch at once: the renewals (32 to 40 s after the startup
# fetch) meet the faults.
open my $sw, '>', $switch or die "$switch: $!";
close $sw;
my $t_switch = time;

my @startup = $h->log_lines(qr/OCSPSTAPLE000[2-5]:/);
my @no_good = grep { !(update_lines("f-$_", @startup) == 1
                       && (update_lines("f-$_", @startup))[0] =~ /OCSPSTAPLE0002: .* status good,/) } @modes;
ok(!@no_good, 'startup: one good response fetched for every certificate')
    or diag("not good: @no_good\n", @startup);
# The startup attempt of each certificate, as the status page has it: a
# process that has taken the renewal's outcome shows a later one.
my $st0 = OCSPOps::status_json($h->port);
my %attempt0 = map { $_->{id} => $_->{last_attempt} // '' } @{ $st0 ? $st0->{certificates} : [] };

# ---- before the renewal: the good responses are stapled --------------------
my %before;
for my $name ('unknown-off', @modes) {
    my $r = handshake($h->port, "f-$name.test");
    $before{$name} = $r;
    ok($r->{stapled} && ($r->{cert_status} // '') eq 'good' && $r->{elapsed} < $FAST,
       "f-$name.test: the good response stapled before the fault")
        or diag(describe($r));
}
cmp_ok(time - $t_switch, '<', 30, 'these handshakes were done before the renewals were due')
    or diag('the renewal may have met the fault already: the checks still hold');

# ---- the renewal meets the faults; handshakes meanwhile --------------------
# Every certificate gets a new update line; meanwhile, handshakes of the
# hanging and slow ones (and a neighbour) must neither wait nor lose the
# staple.
my @probe = ('f-hang.test', 'f-slow.test', 'f-trylater.test', 'rsa.test');
my (@during, $i);
my $renewed = OCSPServer::wait_until(40, sub {
    my $r = handshake($h->port, $probe[$i++ % @probe]);
    push @during, $r;
    my @l = $h->log_lines(qr/OCSPSTAPLE000[2-5]:/, $offset);
    return !grep { !update_lines("f-$_", @l) } @modes;
}, 0.3);
ok($renewed, sprintf('every certificate was renewed against its fault (%.1f s after the switch)',
                     time - $t_switch));
my @slow = grep { !$_->{connected} || !$_->{stapled} || $_->{elapsed} >= $FAST } @during;
my ($slowest) = sort { $b->{elapsed} <=> $a->{elapsed} } @during;
ok(@during >= 10 && !@slow,
   sprintf('%d handshakes while the renewals hung or failed: all stapled, each under %.0f s '
           . '(slowest %.3f s)', scalar @during, $FAST, $slowest ? $slowest->{elapsed} : -1))
    or diag(map { describe($_) . "\n" } @slow);

# ---- one line per fetch, naming certificate, URL and reason ----------------
# Retries go on meanwhile: each certificate's logs as seen settled (no
# request of its in flight, a line for each fetch answered), the startup
# fetch included.
my $view = settled_counts(30, $resp, map { [ $_, $h, "f-$_", "/switch/$_" ] } @modes);
my @resp_log = map { [split ' '] } split /\n/, OCSPServer::slurp($resp->log_file);
for my $m (@modes) {
    my $c = $CASE{$m};
    my $url = $pki->url("switch/$m");
    my $v = $view->{$m};
    my @l = @{ $v->{lines} };
    shift @l;                   # the startup fetch's (good, checked above)
    my $n = $v->{answered} - 1;
    # Of the requests the settled view counted (the first ones: the log only
    # grows), those answered as the fault.
    my @mine = (grep { ($_->[5] // '') eq "/switch/$m" } @resp_log)[0 .. $v->{answered} - 1];
    my $faults = grep { defined && $_->[1] eq $m } @mine;
    my $want = $c->{kind} eq 'nonext'
        ? qr/\[ocspstaple:info\].*OCSPSTAPLE0002: cert "CN=f-$m\.test".*: update ok from \Q$url\E: status good, .*nextUpdate \(none\)/
      : $c->{kind} eq 'unknown'
        ? qr/\[ocspstaple:error\].*OCSPSTAPLE0005: cert "CN=f-$m\.test".*: responder \Q$url\E does not know this certificate \(status unknown\).*; still stapling the previous response until its nextUpdate; retry in \d+ s/
      : $c->{kind} eq 'revoked'
        ? qr/\[ocspstaple:crit\].*OCSPSTAPLE0004: cert "CN=f-$m\.test".*: REVOKED according to \Q$url\E \(it was good until now\)/
      : qr/\[ocspstaple:warn\].*OCSPSTAPLE0003: cert "CN=f-$m\.test" serial [0-9A-F]+ id [0-9a-f]{16}: update failed: \Q$url\E: (?:$c->{reason}).*; still stapling the previous response until its nextUpdate; retry in \d+ s/;
    ok(@l >= 1 && $l[0] =~ $want && $v->{settled} && $faults == $n,
       "$m: one line per fetch (" . scalar(@l) . " for $n), naming the certificate, $url and "
       . ($c->{kind} =~ /^(?:fail|error)\z/ ? 'the reason' : "the $c->{kind} status"))
        or diag("requests read $v->{received}, answered $v->{answered} ($faults as $m); lines:\n",
                @l, "expected: $want\n");
}

# ---- after the renewal: still the last good response ------------------------
# Every child takes the renewal's outcome at its next background tick: wait
# until each of them has served a status page (its own copies) on which
# every f-* certificate shows a later attempt than at startup.
my ($taken, $pages) = $h->poll_children(30, sub { OCSPOps::status_pid($h) }, sub {
    my $j = $_[0]{json} or return 0;
    my @rows = grep { ($_->{subject} // '') =~ /CN=f-/ } @{ $j->{certificates} // [] };
    return @rows && !grep { ($_->{last_attempt} // '') eq ($attempt0{$_->{id}} // '') } @rows;
});
ok($taken, 'every child has taken the renewals\' outcome (' . scalar(@$pages) . ' status pages, '
   . 'children ' . join(' ', sort keys %{{ map { ($_->{pid} // '?') => 1 } @$pages }}) . ')')
    or diag('children: ', join(' ', $h->children));
for my $name ('unknown-off', @modes) {
    my $m = $name eq 'unknown-off' ? 'unknown' : $name;
    my $c = $CASE{$m};
    my $b = $before{$name};
    my $r = handshake($h->port, "f-$name.test");
    my $label = sprintf 'f-%s.test after the fault (%.2f s)', $name, $r->{elapsed};
    my $ok = $r->{connected} && $r->{elapsed} < $FAST;
    if ($c->{kind} eq 'unknown') {
        ok($ok && $r->{stapled} && ($r->{cert_status} // '') eq 'good'
           && defined $r->{this_update} && defined $b->{this_update}
           && $r->{this_update} == $b->{this_update},
           "$label: unknown never replaces the good response: the same one stays stapled (errors "
           . ($name eq 'unknown-off' ? 'off' : 'on') . ')')
            or diag(describe($r));
    }
    elsif ($c->{kind} eq 'revoked') {
        ok($ok && $r->{stapled} && ($r->{cert_status} // '') eq 'revoked',
           "$label: the revocation replaced the good response and is stapled")
            or diag(describe($r));
    }
    elsif ($c->{kind} eq 'nonext') {
        ok($ok && $r->{stapled} && ($r->{cert_status} // '') eq 'good'
           && !defined $r->{next_update} && defined $r->{this_update}
           && defined $b->{this_update} && $r->{this_update} >= $b->{this_update},
           "$label: the new response without nextUpdate is stapled")
            or diag(describe($r), sprintf("\nat %.3f\n", $r->{time}), $h->log_lines(qr/OCSPSTAPLE0040|f-nonext/));
    }
    else {
        ok($ok && $r->{stapled} && ($r->{resp_status} // '') eq 'successful'
           && ($r->{cert_status} // '') eq 'good' && defined $r->{this_update}
           && defined $b->{this_update} && $r->{this_update} == $b->{this_update}
           && ($r->{next_update} // 0) == ($b->{next_update} // -1),
           "$label: still the last good response") or diag(describe($r), "\nbefore: ", describe($b));
    }
}

# ---- the server keeps serving ----------------------------------------------
$h->still_serving('f-hang.test', $pki);
$h->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
done_testing();
