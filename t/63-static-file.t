# Air-gapped servers: OCSPStaplingFile serves a DER response from disk. It is
# stapled from the first handshake, never fetched (the responder sees
# nothing), announced before it expires (OCSPSTAPLE0061), never stapled past
# its nextUpdate (OCSPSTAPLE0062), and a fresh file is picked up by a
# graceful restart. A file for another certificate is reported
# (OCSPSTAPLE0063) and that certificate is fetched as usual; a missing file
# stops the configuration check.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe);
use OCSPOps;

plan tests => 25;
OCSPServer::deadline(220);

my ($w, $pki, $resp) = setup();
$resp->start;             # running, so that any fetch would show in its log
my $d = $pki->dir;

# make_response(NAME, FILE, VALIDITY...): what an admin gets from the CA,
# signed like the responder does (openssl ocsp as a one-shot responder).
# Returns the response's thisUpdate and nextUpdate (epoch seconds).
sub make_response {
    my ($name, $file, @validity) = @_;
    my $out = OCSPTest::run_capture('openssl', 'ocsp', '-index', "$d/index.txt",
        '-CA', "$d/intermediate.crt", '-rsigner', "$d/intermediate.crt",
        '-rkey', "$d/intermediate.key", '-reqin', "$d/requests/$name.der",
        '-respout', "$file.tmp", '-resp_no_certs', @validity);
    rename "$file.tmp", $file or die "openssl ocsp failed: $out";
    my $text = OCSPTest::run_capture('openssl', 'ocsp', '-respin', $file, '-resp_text', '-noverify');
    my ($tu) = $text =~ /This Update: (.+?)\s*$/m;
    my ($nu) = $text =~ /Next Update: (.+?)\s*$/m;
    return (OCSPServer::openssl_time($tu // ''), OCSPServer::openssl_time($nu // ''));
}

my $file = "$w/rsa-ocsp.der";
my ($tu, $nu) = make_response('rsa', $file, '-nmin', 1);
ok($tu && $nu && $nu - $tu == 60, 'a response file valid for 60 s') or BAIL_OUT('no response file');

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    global => [ "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>" ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => "OCSPStaplingFile \"$file\"" } ]);
ok($h->start, 'httpd starts with OCSPStaplingFile') or BAIL_OUT('no server');

my $r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{this_update} // 0) == $tu && ($r->{cert_status} // '') eq 'good',
   'first handshake stapled with the file\'s response') or diag(describe($r));
like(($h->log_lines(qr/OCSPSTAPLE0035: /))[0] // '',
     qr/OCSPSTAPLE0035: cert "CN=rsa\.test".*OCSPStaplingFile \Q$file\E/, "OCSPSTAPLE0035 names the file");
my $sum = $h->summary // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '1 1 0 0',
   'startup summary: 1 from a file, none fetched') or diag($sum->{line} // 'no summary');
my $json = OCSPOps::status_json($h->port);
my $row = $json ? OCSPOps::status_row($json, 'rsa') // {} : {};
ok(($row->{source} // '') eq 'file' && ($row->{static_file} // '') eq $file && $row->{stapling}
   && !defined $row->{next_fetch},
   'status page: source "file", static_file, stapling, no next_fetch') or diag(explain($row));
is(OCSPOps::iso_time($row->{next_update}), $nu, 'status page: next_update is the file\'s');

# Expiring soon: a quarter of its validity (15 s) before nextUpdate.
my $warn = $h->wait_for_log(qr/OCSPSTAPLE0061: /, $nu - 15 - time + 15);
my $seen = time;
ok($warn, 'OCSPSTAPLE0061 before expiry');
like($warn // '', qr/\[ocspstaple:warn\].*OCSPSTAPLE0061: cert "CN=rsa\.test".*\Q$file\E/,
     'OCSPSTAPLE0061 (warn) names the certificate and the file');
ok($seen >= $nu - 16 && $seen < $nu,
   sprintf 'OCSPSTAPLE0061 when a quarter of the validity is left (%.0f s before nextUpdate)', $nu - $seen);
$r = handshake($h->port, 'rsa.test');
ok($r->{stapled}, 'still stapled until nextUpdate') or diag(describe($r));

# Expired: never stapled again. (Waiting for a moment in time: nextUpdate
# and a second more.)
OCSPServer::wait_until($nu + 1 - time + 5, sub { time >= $nu + 1 }, 0.2);
my $expired = $h->wait_for_log(qr/OCSPSTAPLE0062: /, 10);
like($expired // '', qr/\[ocspstaple:error\].*OCSPSTAPLE0062: cert "CN=rsa\.test".*\Q$file\E.*expired/,
     'OCSPSTAPLE0062 (error) once the file has expired');
# Handshakes (0.3 s apart) until every child has served at least one.
my ($reached, $after) = $h->poll_children(30, sub { $h->handshake_pid('rsa.test') }, sub { 1 });
my @after = @$after;
ok($reached && @after && !grep({ $_->{stapled} } @after),
   'after nextUpdate: no staple, from any child (' . scalar(@after) . ' handshakes)')
    or diag(map { 'pid ' . ($_->{pid} // '?') . ': ' . describe($_) . "\n" } @after);
$json = OCSPOps::status_json($h->port);
$row = $json ? OCSPOps::status_row($json, 'rsa') // {} : {};
ok(exists $row->{stapling} && !$row->{stapling}, 'status page: stapling false') or diag(explain($row));
# Each child checks the alerts when its schedule wakes the certificate up
# (at nextUpdate) at its next background tick (each second). Nothing a child
# does then can be seen from outside when it logs nothing (a file is never
# fetched, its record never changes): the window is a span of time, three
# ticks past nextUpdate.
OCSPServer::wait_until($nu + 3 - time + 5, sub { time >= $nu + 3 }, 0.2);
is(scalar($h->log_lines(qr/OCSPSTAPLE0061: /)), 1, 'OCSPSTAPLE0061 exactly once');
is(scalar($h->log_lines(qr/OCSPSTAPLE0062: /)), 1, 'OCSPSTAPLE0062 exactly once');
is($resp->requests, 0, 'the responder was never asked');
ok(!$h->log_lines(qr/OCSPSTAPLE000[2345]: /), 'no update line: never fetched');

# A fresh file and a graceful restart.
my ($tu2, $nu2) = make_response('rsa', $file, '-ndays', 1);
ok($h->graceful, 'graceful restart with a fresh file') or BAIL_OUT('no server');
$r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{this_update} // 0) == $tu2, 'stapled again, with the fresh response')
    or diag(describe($r));
is($resp->requests, 0, 'still never fetched');
$h->stop;

# A file for another certificate: reported, and that certificate is fetched.
my $h2 = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd2', store => 'off',
    vhosts => [ { name => 'sni2.test', cert => 'sni2', extra => "OCSPStaplingFile \"$file\"" } ]);
ok($h2->start, 'httpd with the rsa file in the sni2 vhost starts') or BAIL_OUT('no server');
like(($h2->log_lines(qr/OCSPSTAPLE0063: /))[0] // '',
     qr/\[ocspstaple:error\].*OCSPSTAPLE0063: .*\Q$file\E.*sni2\.test/,
     "OCSPSTAPLE0063 (error) names the file and the server");
$r = handshake($h2->port, 'sni2.test');
ok($r->{stapled} && $resp->requests('good') >= 1, 'sni2 fetched and stapled as usual')
    or diag(describe($r));
$h2->stop;

# A missing file stops the configuration check.
my $h3 = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd3', store => 'off',
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => "OCSPStaplingFile \"$w/no-such.der\"" } ]);
my ($rc, $out) = OCSPOps::configtest($h3);
ok($rc != 0 && $out =~ /OCSPStaplingFile/ && $out =~ /no-such\.der/,
   'a missing file: apache2 -t fails naming OCSPStaplingFile and the file') or diag("exit $rc: $out");
$resp->stop;
