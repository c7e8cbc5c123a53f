# Must-Staple certificates (TLS Feature status_request): browsers refuse the
# site when no staple comes, so the module warns at startup where stapling
# is off for one (OCSPSTAPLE0050), says `crit` ONCE per outage while it has
# nothing valid to staple (OCSPSTAPLE0051: not once per handshake, not once
# per process), flags it on the status page, and says when it is stapled
# again (OCSPSTAPLE0052). What the module says matches what a client that
# enforces Must-Staple does: GnuTLS (gnutls-cli, RFC 7633 in its certificate
# verification) accepts the certificate stapled, refuses it where stapling is
# off and during the outage, and accepts it again once it is stapled again.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe);
use OCSPOps;
use OCSPClients ();

plan tests => 33;
my $GNUTLS = OCSPClients::have('gnutls-cli');
OCSPServer::deadline(200);

my ($w, $pki, $resp) = setup();
$resp->start;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    mpm_conf => { StartServers => 3 },
    global => [ "LoadModule status_module $OCSPServer::MODDIR/mod_status.so",
                "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>",
                "<Location /server-status>\n    SetHandler server-status\n</Location>" ],
    vhosts => [ { name => 'muststaple.test', cert => 'muststaple' },
                { name => 'muststaple_off.test', cert => 'muststaple_off', stapling => 0 } ]);

# 1. Responder up: stapled; a warning for the one where stapling is off.
ok($h->start, 'httpd starts') or BAIL_OUT('no server');
my $r = handshake($h->port, 'muststaple.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good', 'Must-Staple certificate stapled')
    or diag(describe($r));
my @w50 = $h->log_lines(qr/OCSPSTAPLE0050: /);
is(scalar @w50, 1, 'one OCSPSTAPLE0050 at startup');
like($w50[0] // '', qr/\[ocspstaple:warn\].*OCSPSTAPLE0050: cert "CN=muststaple_off\.test".*muststaple_off\.test.*OCSPUseStapling is off/,
     'OCSPSTAPLE0050 (warn) names the certificate and the virtual host');
ok(!$h->log_lines(qr/OCSPSTAPLE005[12]: /), 'no Must-Staple alert while stapled');
my $json = OCSPOps::status_json($h->port);
my $row = $json ? OCSPOps::status_row($json, 'muststaple') // {} : {};
ok($row->{must_staple} && $row->{stapling}, 'status page: must_staple true, stapling true')
    or diag(explain($row));

# gnutls-cli(NAME, ocsp => 0|1): OCSPClients::gnutls, our root, the staple
# saved. Its "accepted" verdict requires a saved staple for the certificate
# saying good and no request from gnutls to the responder (with --ocsp it
# asks the responder itself when nothing was stapled).
sub gnutls {
    my ($name, %o) = @_;
    return OCSPClients::gnutls($h->port, $name, ca => $pki->root,
                               save => "$w/gnutls-$name.der", %o);
}
sub show { my ($g) = @_; "$g->{cmd}\nexit $g->{rc}\n$g->{out}" }
sub gnutls_accepts {
    my ($label) = @_;
    my $before = $resp->requests;
    my $g = gnutls('muststaple.test', ocsp => 1);
    ok($g->{rc} == 0 && $g->{completed}, "$label: gnutls-cli --ocsp accepts muststaple.test")
        or diag(show($g));
    ok(($g->{staple_serial} // '') eq $pki->serial('muststaple') && ($g->{staple_status} // '') eq 'good'
       && $resp->requests == $before,
       "$label: gnutls-cli got a good staple for it, never asked the responder")
        or diag(show($g), $g->{staple_text} // '');
}
# Refused only because the status is missing (the whole verdict line), the
# certificate did arrive, nothing was stapled.
sub gnutls_refuses {
    my ($name, $label, %o) = @_;
    my $flag = $o{ocsp} ? ' --ocsp' : '';
    my $g = gnutls($name, %o);
    ok($g->{rc} != 0 && !$g->{completed} && ($g->{peer_serial} // '') eq $pki->serial($name =~ s/\.test$//r)
       && !$g->{staple},
       "$label: gnutls-cli$flag refuses $name (non-zero exit, no handshake, no staple)")
        or diag(show($g));
    like($g->{out}, $OCSPClients::GNUTLS_MUST_STAPLE_RE,
         "$label: gnutls-cli$flag $name: the OCSP status is missing, the only reason");
}
SKIP: {
    skip 'gnutls-cli not installed (Debian package gnutls-bin)', 7 unless $GNUTLS;
    gnutls_accepts('stapled');
    my $before = $resp->requests;
    gnutls_refuses('muststaple_off.test', 'OCSPUseStapling off', ocsp => $_) for 1, 0;
    is($resp->requests, $before, 'gnutls-cli never asked the responder for muststaple_off.test');
}
$h->stop;

# 2. The responder down from the start: one crit, whatever the handshakes and
# processes do meanwhile.
$resp->stop;
my $off = $h->log_size;
ok($h->start, 'httpd starts with the responder down') or BAIL_OUT('no server');
my $t0 = time;
# Handshakes (0.3 s apart) until at least 6, and one served by every child.
my (@hs, %served);
OCSPServer::wait_until(30, sub {
    my $r = $h->handshake_pid('muststaple.test');
    push @hs, $r;
    $served{$r->{pid} // '?'}++;
    @hs >= 6 && !grep { !$served{$_} } $h->children;
}, 0.3);
my @unserved = grep { !$served{$_} } $h->children;
ok(!grep({ $_->{stapled} } @hs) && !grep({ !$_->{connected} } @hs) && !@unserved,
   scalar(@hs) . ' handshakes, reaching every child (' . join(' ', map { "$_: $served{$_}" }
   sort keys %served) . '): TLS works, no staple')
    or diag("children not reached: @unserved\n", map { describe($_) . "\n" } @hs);
SKIP: {
    skip 'gnutls-cli not installed (Debian package gnutls-bin)', 4 unless $GNUTLS;
    gnutls_refuses('muststaple.test', 'responder down', ocsp => $_) for 1, 0;
}
# Every process checks the alert whenever it takes a new record: wait until
# each child has taken the first retry's failure (its status page, which
# shows its own copy, counts 2 failures in a row: startup and the retry).
my ($retried, $pages) = $h->poll_children(40, sub { OCSPOps::status_pid($h) }, sub {
    my $row = $_[0]{json} ? OCSPOps::status_row($_[0]{json}, 'muststaple') // {} : {};
    ($row->{failures_in_a_row} // 0) >= 2;
});
ok($retried, 'every child has taken the failed retry (' . scalar(@$pages) . ' status pages)')
    or diag(explain([ map { { pid => $_->{pid}, row => $_->{json}
                              ? OCSPOps::status_row($_->{json}, 'muststaple') : undef } } @$pages ]));
my @crit = $h->log_lines(qr/OCSPSTAPLE0051: /, $off);
is(scalar @crit, 1, 'OCSPSTAPLE0051 exactly once (not per handshake, not per process)')
    or diag(@crit);
like($crit[0] // '', qr/\[ocspstaple:crit\].*OCSPSTAPLE0051: cert "CN=muststaple\.test".*clients will refuse this site/,
     'OCSPSTAPLE0051 is crit, names the certificate, says clients will refuse the site');
like($crit[0] // '', qr/\((?!no response yet\)).*(?i:refused|connect)/,
     'OCSPSTAPLE0051 gives the reason (the responder cannot be reached)');
my @failed = $h->log_lines(qr/OCSPSTAPLE0003: cert "CN=muststaple\.test"/, $off);
my @pids = do { my %p = map { /\[pid (\d+)/ ? ($1 => 1) : () } @failed; keys %p };
ok(@failed >= 2, scalar(@failed) . ' failed updates meanwhile, in ' . scalar(@pids) . ' process(es)');
$json = OCSPOps::status_json($h->port);
$row = $json ? OCSPOps::status_row($json, 'muststaple') // {} : {};
ok($row->{must_staple} && !$row->{stapling} && ($row->{last_result} // '') eq 'failed',
   'status page: must_staple true, stapling false, last_result failed') or diag(explain($row));
like(OCSPOps::https_get($h->port, '/server-status?auto')->{body}, qr/^OCSPStaplingMustStapleDown: 1$/m,
     'server-status?auto: OCSPStaplingMustStapleDown: 1');

# 3. The responder is back: stapled again at the next retry, one notice.
$resp->start;
my $back = $h->wait_for_log(qr/OCSPSTAPLE0052: /, 90, $off);
ok($back, sprintf 'OCSPSTAPLE0052 once the responder is back (%.0f s)', time - $t0);
like($back // '', qr/\[ocspstaple:notice\].*OCSPSTAPLE0052: cert "CN=muststaple\.test".*stapled again/,
     'OCSPSTAPLE0052 is a notice naming the certificate');
# Every process takes the new response at its next tick (within a second),
# and checks the alert as it does: handshakes until every child staples.
my ($again, $all) = $h->poll_children(30, sub { $h->handshake_pid('muststaple.test') },
    sub { $_[0]{stapled} && ($_[0]{cert_status} // '') eq 'good' });
ok($again, 'stapled again, by every child (' . scalar(@$all) . ' handshakes)')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @$all);
SKIP: {
    skip 'gnutls-cli not installed (Debian package gnutls-bin)', 2 unless $GNUTLS;
    gnutls_accepts('stapled again');
}
is(scalar($h->log_lines(qr/OCSPSTAPLE0052: /, $off)), 1, 'OCSPSTAPLE0052 exactly once');
is(scalar($h->log_lines(qr/OCSPSTAPLE0051: /, $off)), 1, 'still one OCSPSTAPLE0051 for the whole outage');
$h->stop;
$resp->stop;
