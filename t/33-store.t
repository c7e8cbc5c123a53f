# Persistence: a good response is kept on disk (OCSPStaplingStore, one file
# per certificate, readable by the server user only), so after a start, a
# graceful restart or a full restart with the responder DOWN, visitors get a
# staple from the very first handshake.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe);

plan tests => 17;
OCSPServer::deadline(150);

my ($w, $pki, $resp) = setup();
$resp->start;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ { name => 'rsa.test', cert => 'rsa' },
                { name => 'sni2.test', cert => 'sni2' } ]);
ok($h->start, 'httpd starts with OCSPStaplingStore') or BAIL_OUT('no server');
my $warm = handshake($h->port, 'rsa.test');
ok($warm->{stapled}, 'warm-up handshake stapled') or diag(describe($warm));

my $file = "$w/store/" . $pki->cert_id('rsa') . '.der';
ok(-s $file, 'store file <sha1 of the certificate>.der written');
is(sprintf('%04o', (stat $file)[2] & 07777), '0600', 'store file mode 0600');
ok(-s "$w/store/" . $pki->cert_id('sni2') . '.der', 'one file per certificate');
my @tmp = grep { !/\.der\z/ } glob "$w/store/*";
ok(!@tmp, 'no temporary files left in the store') or diag("@tmp");

# Everything down, then the server alone: stapled from the store.
$h->stop;
$resp->stop;
my $requests = $resp->requests;

# first_staple(WHAT, OFFSET, FROM): the first handshake after WHAT is
# stapled, with the stored response; after a start the store says so
# (OCSPSTAPLE0030), after a restart the server kept what it had (the
# summary counts it) without reading the store again.
sub first_staple {
    my ($what, $offset, $from) = @_;
    my $r = handshake($h->port, 'rsa.test');
    ok($r->{stapled} && $r->{this_update} == $warm->{this_update},
       "$what, responder down: first handshake stapled with the stored response")
        or diag(describe($r), "\n", $h->log_lines(qr/ocspstaple/, $offset));
    if ($from eq 'store') {
        ok(scalar($h->log_lines(qr/OCSPSTAPLE0030: cert "CN=rsa\.test".*\Q$file\E/, $offset)),
           "$what: OCSPSTAPLE0030 (stored response stapled) logged");
    }
    else {
        ok(scalar($h->wait_for_log(qr/OCSPSTAPLE0012: 2 certificate.* 2 kept across the restart/, 10, $offset)),
           "$what: both responses kept across the restart (OCSPSTAPLE0012)");
    }
}

my $off = $h->log_size;
ok($h->start, 'start with the responder down') or BAIL_OUT('no server');
my $sum = $h->summary($off) // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '2 2 0 0',
   'startup summary: both certificates from the store') or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
first_staple('start', $off, 'store');

$off = $h->log_size;
ok($h->graceful, 'graceful restart') or BAIL_OUT('no server');
first_staple('graceful restart', $off, 'kept');

$off = $h->log_size;
ok($h->restart, 'full restart (-k restart)') or BAIL_OUT('no server');
first_staple('full restart', $off, 'kept');

is($resp->requests, $requests, 'no request reached a responder meanwhile');
$h->stop;
