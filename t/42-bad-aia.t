# Certificates whose AIA OCSP URL cannot work: not http(s) (ldap://),
# malformed ("http//broken"), a host that never resolves
# (nonexistent.invalid, RFC 6761), and one with an ldap URL before a working
# one. The server starts at once (no long DNS or connect wait), each bad
# certificate gets a clear line naming it, the URL and why, and no staple;
# the working URL after a bad one is used; TLS and the other virtual hosts
# carry on.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use File::Path ();
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 17;
OCSPServer::deadline(120);

my ($w, $pki, $resp) = setup(pki_sets => ['badaia']);
$resp->start;
File::Path::make_path("$w/htdocs");
open my $ix, '>', "$w/htdocs/index.html" or die "$w/htdocs/index.html: $!";
print $ix "still serving\n";
close $ix;

# How long this machine takes to fail a lookup of a .invalid name (a hanging
# resolver would make the module wait up to OCSPStaplingResponderTimeout).
my $t = time;
my $gai = OCSPTest::run_capture('getent', 'hosts', 'nonexistent.invalid');
my $dns = time - $t;
note(sprintf 'getent hosts nonexistent.invalid: %.3f s (%s)', $dns, $gai =~ /\S/ ? $gai : 'not found');

# URLs that can never work (not http(s)://host) are set aside once at
# startup (OCSPSTAPLE0015), never fetched; one that only fails at run time
# (a name that does not resolve) gets the usual failed-update line.
my %unusable = (
    'aia-ldap'     => 'ldap://127.0.0.1/cn=ocsp',
    'aia-broken'   => 'http//broken',
);
my %bad = (
    'aia-nxdomain' => [ 'http://nonexistent.invalid/', qr/Could not resolve host: nonexistent\.invalid/ ],
);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    global => [ 'OCSPStaplingResponderTimeout 10' ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa' },
                map({ { name => "$_.test", cert => $_ } }
                    sort(keys %bad, keys %unusable), 'aia-mixed') ]);
my $took = $h->start(timeout => 60);
ok($took, sprintf('httpd starts with the bad certificates (%.1f s)', $took // -1))
    or BAIL_OUT('no server');
# A start that waited on the responder timeout would take 10 s or more; a
# busy machine (parallel scenarios, the sanitizers) makes the start itself
# take a few seconds.
cmp_ok($took, '<', 8, 'no long delay at startup (the responder timeout is 10 s)')
    or diag($dns > 1 ? "DNS lookups are slow on this machine ($dns s)" : '');

for my $name (sort keys %bad) {
    my ($url, $why) = @{ $bad{$name} };
    my $line = $h->wait_for_log(qr/OCSPSTAPLE0003: cert "CN=\Q$name\E\.test"/, 5);
    like($line // '', qr/\[ocspstaple:error\].*OCSPSTAPLE0003: cert "CN=\Q$name\E\.test" serial [0-9A-F]+ id [0-9a-f]{16}: update failed: \Q$url\E: (?:$why).*; not stapling/,
         "$name: one line naming the certificate, the URL $url and why");
    my $r = handshake($h->port, "$name.test");
    ok($r->{connected} && !$r->{stapled} && $r->{elapsed} < 2,
       sprintf('%s: handshake completes (%.2f s), nothing stapled', $name, $r->{elapsed}))
        or diag(describe($r));
}

for my $name (sort keys %unusable) {
    my $url = $unusable{$name};
    my @set_aside = $h->log_lines(qr/OCSPSTAPLE0015: cert "CN=\Q$name\E\.test" .*'\Q$url\E': not an http/);
    is(scalar @set_aside, 1, "$name: $url set aside once at startup (OCSPSTAPLE0015)");
    ok($h->log_lines(qr/OCSPSTAPLE0001: cert "CN=\Q$name\E\.test"/),
       "$name: no usable URL left, not stapled (OCSPSTAPLE0001)");
    my $r = handshake($h->port, "$name.test");
    ok($r->{connected} && !$r->{stapled} && $r->{elapsed} < 2,
       sprintf('%s: handshake completes (%.2f s), nothing stapled', $name, $r->{elapsed}))
        or diag(describe($r));
}

my $mixed = $h->wait_for_log(update_ok_re('aia-mixed'), 5);
like($mixed // '', qr{update ok from \Q${\ $pki->url('good') }\E: status good}i,
     'aia-mixed: the http URL after the ldap one answered');
ok($h->log_lines(qr{OCSPSTAPLE0015: cert "CN=aia-mixed\.test" .*'ldap://127\.0\.0\.1/cn=ocsp'}),
   'aia-mixed: the ldap URL was set aside');
my $r = handshake($h->port, 'aia-mixed.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good', 'aia-mixed: stapled')
    or diag(describe($r));
$r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{cert_status} // '') eq 'good', 'rsa.test (a good neighbour): stapled')
    or diag(describe($r));

$h->still_serving('aia-nxdomain.test', $pki);
$h->stop;
$resp->stop;
