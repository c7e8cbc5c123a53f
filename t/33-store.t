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

# first_staple(WHAT): the first handshake after WHAT is stapled, with the
# stored response, and OCSPSTAPLE0030 says where it came from.
sub first_staple {
    my ($what, $offset) = @_;
    my $r = handshake($h->port, 'rsa.test');
    ok($r->{stapled} && $r->{this_update} == $warm->{this_update},
       "$what, responder down: first handshake stapled with the stored response")
        or diag(describe($r), "\n", $h->log_lines(qr/ocspstaple/, $offset));
    ok(scalar($h->log_lines(qr/OCSPSTAPLE0030: cert "CN=rsa\.test".*\Q$file\E/, $offset)),
       "$what: OCSPSTAPLE0030 (stored response stapled) logged");
}

my $off = $h->log_size;
ok($h->start, 'start with the responder down') or BAIL_OUT('no server');
my $sum = $h->summary($off) // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '2 2 0 0',
   'startup summary: both certificates from the store') or diag($sum->{line} // 'no OCSPSTAPLE0012 line');
first_staple('start', $off);

$off = $h->log_size;
ok($h->graceful, 'graceful restart') or BAIL_OUT('no server');
first_staple('graceful restart', $off);

$off = $h->log_size;
ok($h->restart, 'full restart (-k restart)') or BAIL_OUT('no server');
first_staple('full restart', $off);

is($resp->requests, $requests, 'no request reached a responder meanwhile');
$h->stop;
