# Responders over IPv6 and over HTTPS, seen through real TLS handshakes and
# through what the responders themselves logged:
# - http://[::1]:PORT/... works, from OCSPStaplingForceURL and from a
#   certificate's AIA (the request reaches a responder that listens on ::1
#   only, and its log shows the client came from ::1);
# - an https responder whose certificate chains to OCSPStaplingResponderCAFile
#   is used, and the staple is right;
# - without that directive the system's CA store does not know the test CA:
#   nothing is stapled, the failure line names the certificate, the URL and
#   libcurl's TLS verification reason, the responder saw a TLS handshake
#   given up and no request, and the server serves handshakes all along;
# - a response already held is kept when a renewal fails that way;
# - a CA file that cannot be read stops the configuration check.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path ();
use OCSPServer qw(setup handshake describe wait_until free_port
                  update_ok_re update_failed_re);
use OCSPOps;

plan tests => 33;
OCSPServer::deadline(240);

# The PKI's own responder (127.0.0.1, plain HTTP) is never started: every
# fetch here must go to one of the two below.
my ($w, $pki) = setup(pki_sets => ['responder']);
# On ::1 at the PKI's port: the port in v6aia's AIA URL http://[::1]:PORT/good.
my $r6 = OCSPServer::Responder->new(dir => $w, port => $pki->port, pki => $pki,
                                    name => 'responder6', bind => '::1');
my $rtls = OCSPServer::Responder->new(dir => $w, port => free_port(), pki => $pki,
    name => 'responder-tls',
    tls => [ $pki->crt('responder-tls'), $pki->key('responder-tls') ]);
$r6->start;
$rtls->start;
my $url6 = $r6->url('good');
my $urltls = $rtls->url('good');
like($url6, qr{^http://\[::1\]:\d+/good\z}, "IPv6 responder URL $url6");
like($urltls, qr{^https://127\.0\.0\.1:\d+/good\z}, "HTTPS responder URL $urltls");

File::Path::make_path("$w/htdocs");
open my $ix, '>', "$w/htdocs/index.html" or die "$w/htdocs/index.html: $!";
print $ix "still serving\n";
close $ix;

# One handshake every 0.3 s until CODE says yes (bounded); the last result.
sub handshake_until {
    my ($port, $name, $code, $timeout) = @_;
    my $r;
    wait_until($timeout // 30, sub { $r = handshake($port, $name); $code->($r) }, 0.3);
    return $r;
}
sub stapled_with { my ($r, $leaf) = @_; $r->{stapled} && ($r->{serial} // '') eq $pki->serial($leaf) }

# ---- IPv6: ForceURL and AIA ------------------------------------------------
my $h6 = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd6', store => 'off',
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => "OCSPStaplingForceURL $url6" },
                { name => 'v6aia.test', cert => 'v6aia' } ]);
ok($h6->start, 'httpd starts with a responder on [::1]') or BAIL_OUT('no server');
for my $leaf (qw(rsa v6aia)) {
    my $r = handshake_until($h6->port, "$leaf.test", sub { $_[0]{stapled} });
    ok(stapled_with($r, $leaf), "$leaf.test: stapled, the staple is for its serial")
        or diag(describe($r));
    is($r->{cert_status}, 'good', "$leaf.test: status good");
    like(scalar $h6->wait_for_log(update_ok_re($leaf), 10) // '',
         qr{update ok from \Q$url6\E: status good}, "$leaf.test: OCSPSTAPLE0002 names $url6");
}
my @got6 = grep { $_->{mode} eq 'good' && $_->{status} eq '200' } $r6->log_records;
is(scalar @got6, 2, 'the IPv6 responder answered two requests (ForceURL and AIA)')
    or diag(OCSPServer::slurp($r6->log_file));
is(join(' ', map { "$_->{peer} $_->{scheme}" } @got6), '::1 http ::1 http',
   '... from ::1, over http');
$h6->stop;

# ---- HTTPS with OCSPStaplingResponderCAFile --------------------------------
my $root = $pki->root;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ { name => 'rsa.test', cert => 'rsa',
                  extra => "OCSPStaplingForceURL $urltls\nOCSPStaplingResponderCAFile $root" } ]);
ok($h->start, 'httpd starts with an https responder and OCSPStaplingResponderCAFile')
    or BAIL_OUT('no server');
my $r = handshake_until($h->port, 'rsa.test', sub { $_[0]{stapled} });
ok(stapled_with($r, 'rsa'), 'rsa.test: stapled from the https responder') or diag(describe($r));
my $held = $r->{this_update} // 0;
is($r->{cert_status}, 'good', '... status good');
like(scalar $h->wait_for_log(update_ok_re('rsa'), 10) // '', qr{update ok from \Q$urltls\E: status good},
     'OCSPSTAPLE0002 names the https URL');
my @tls = $rtls->log_records;
is(join(',', map { "$_->{mode} $_->{status} $_->{peer} $_->{scheme}" } @tls),
   'good 200 127.0.0.1 https', 'the HTTPS responder answered one request over https, no failed handshake');

# ---- the CA file taken away: a renewal fails, the response held is kept ----
# (A reload takes the response from the store; OCSPStaplingRenewWindow 2d:
# the response, valid a day, is due for renewal at once.)
my $off = $h->log_size;
my $ntls = @tls;
$h->{vhosts}[0]{extra} = "OCSPStaplingForceURL $urltls\nOCSPStaplingRenewWindow 2d";
ok($h->graceful, 'graceful restart without OCSPStaplingResponderCAFile') or BAIL_OUT('no server');
my $failed = $h->wait_for_log(update_failed_re('rsa'), 30, $off);
like($failed // '', qr{\[ocspstaple:warn\].*OCSPSTAPLE0003: cert "CN=rsa\.test".*update failed: \Q$urltls\E: SSL certificate problem: unable to get local issuer certificate; still stapling the previous response},
     'the failed renewal: warn, the URL, the TLS verification reason, still stapling')
    or diag($h->log_lines(qr/ocspstaple/, $off));
$r = handshake($h->port, 'rsa.test');
ok(stapled_with($r, 'rsa') && $r->{cert_status} eq 'good' && ($r->{this_update} // -1) == $held,
   'rsa.test: the response held (same thisUpdate) is still stapled')
    or diag(describe($r), "\nthisUpdate before the reload: " . gmtime($held));
@tls = ($rtls->log_records)[$ntls .. $rtls->requests - 1];
ok(@tls && !grep({ $_->{status} ne 'tls-failed' } @tls),
   'the responder saw the renewal give up in the TLS handshake, no request')
    or diag(OCSPServer::slurp($rtls->log_file));
$h->stop;

# ---- no CA file from the start: nothing stapled, the reason logged ---------
$ntls = $rtls->requests;
my $hn = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-noca',
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => "OCSPStaplingForceURL $urltls" } ]);
ok($hn->start, 'httpd starts with an https responder the system store does not know')
    or BAIL_OUT('no server');
$failed = $hn->wait_for_log(update_failed_re('rsa'), 30);
like($failed // '', qr{\[ocspstaple:error\].*OCSPSTAPLE0003: cert "CN=rsa\.test" serial [0-9A-F]+ id [0-9a-f]{16}: update failed: \Q$urltls\E: SSL certificate problem: unable to get local issuer certificate; not stapling; retry in \d+ s},
     'OCSPSTAPLE0003 names the certificate, the URL and the TLS verification reason')
    or diag($hn->log_lines(qr/ocspstaple/));
$r = handshake($hn->port, 'rsa.test');
ok($r->{connected}, 'the TLS handshake with the server works') or diag(describe($r));
is($r->{verify}, 0, '... and its certificate verifies');
ok(!$r->{stapled}, '... but nothing is stapled') or diag(describe($r));
@tls = ($rtls->log_records)[$ntls .. $rtls->requests - 1];
ok(@tls && !grep({ $_->{status} ne 'tls-failed' } @tls),
   'the responder saw only TLS handshakes given up, no request')
    or diag(OCSPServer::slurp($rtls->log_file));
is($r6->requests, 2, 'the IPv6 responder got nothing more');
$hn->still_serving('rsa.test', $pki);
$hn->stop;

# ---- a CA file that cannot be read -----------------------------------------
for my $bad ("$w/no-such-ca.pem", $w) {
    my $hb = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-bad',
        vhosts => [ { name => 'rsa.test', cert => 'rsa',
                      extra => "OCSPStaplingResponderCAFile $bad" } ]);
    my ($rc, $out) = OCSPOps::configtest($hb);
    ok($rc != 0 && $out =~ /OCSPStaplingResponderCAFile: .*\Q$bad\E/,
       "OCSPStaplingResponderCAFile $bad: apache2 -t fails naming the directive and the path")
        or diag("exit $rc: $out");
}
my $hg = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-good',
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => "OCSPStaplingResponderCAFile $root" } ]);
my ($rc, $out) = OCSPOps::configtest($hg);
is($rc, 0, 'a readable CA file passes apache2 -t') or diag($out);

$r6->stop;
$rtls->stop;
