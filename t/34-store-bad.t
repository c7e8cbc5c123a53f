# A damaged store never gets a bad response stapled: random bytes, a valid
# response for ANOTHER certificate and an empty file, found at startup with
# the responder down, are each logged (OCSPSTAPLE0031) and ignored; those
# certificates get no staple, a good stored file beside them still staples,
# and the server starts and keeps serving.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use File::Copy qw(copy);
use OCSPServer qw(setup handshake describe);

my %bad = (             # certificate => what its store file gets
    rsa      => 'random bytes',
    ecdsa    => "the stored response of sni2 (foreign)",
    offvhost => 'an empty file',
);
plan tests => 5 + 3 * keys(%bad) + 3;
OCSPServer::deadline(120);

my ($w, $pki, $resp) = setup();
$resp->start;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ map { { name => "$_.test", cert => $_ } } qw(rsa ecdsa offvhost sni2) ]);
ok($h->start, 'httpd starts, fills the store') or BAIL_OUT('no server');
my %file = map { $_ => "$w/store/" . $pki->cert_id($_) . '.der' } qw(rsa ecdsa offvhost sni2);
ok(OCSPServer::wait_until(10, sub { !grep { !-s $_ } values %file }),
   'a store file for each of the 4 certificates');
$h->stop;
$resp->stop;

# Damage three of them; sni2's stays good.
open my $fh, '>:raw', $file{rsa} or die "$file{rsa}: $!";
print $fh join '', map { chr int rand 256 } 1 .. 1500;
close $fh;
copy($file{sni2}, $file{ecdsa}) or die "copy: $!";
open $fh, '>', $file{offvhost} or die "$file{offvhost}: $!";
close $fh;

my $off = $h->log_size;
ok($h->start, 'httpd starts with damaged store files (responder down)')
    or BAIL_OUT('no server');
for my $cert (sort keys %bad) {
    ok(scalar($h->log_lines(qr/\[ocspstaple:warn\].*OCSPSTAPLE0031: cert "CN=$cert\.test".*\Q$file{$cert}\E/, $off)),
       "$bad{$cert} at $cert\'s name: OCSPSTAPLE0031 warning");
    ok(!grep({ $_->{stapled} } map { handshake($h->port, "$cert.test") } 1 .. 3),
       "$cert: not stapled (3 handshakes)");
    ok(!$h->log_lines(qr/OCSPSTAPLE0030: cert "CN=$cert\.test"/, $off),
       "$cert: never reported as stapled from the store");
}
my $good = handshake($h->port, 'sni2.test');
ok($good->{stapled} && $good->{cert_status} eq 'good', 'the intact file beside them still staples')
    or diag(describe($good));
my $sum = $h->summary($off) // {};
is(join(' ', map { $sum->{$_} // '-' } qw(certs stored fetched missing)), '4 1 0 3',
   'startup summary: 4 certificates, 1 from the store, 0 fetched, 3 without a response')
    or diag($sum->{line} // 'no OCSPSTAPLE0012 line');

# Still alive and serving, no child crashed.
my @more = map { handshake($h->port, 'rsa.test') } 1 .. 5;
ok(!grep({ !$_->{connected} } @more) && $h->alive, 'the server keeps serving');
ok(!$h->log_lines(qr/exit signal|AH00052|AH00060|segfault/i, $off), 'no child crashed')
    or diag($h->log_lines(qr/exit signal|AH00052|AH00060|segfault/i, $off));
ok(scalar(grep { /\.der\z/ } glob "$w/store/*") >= 1, 'store directory still in place');
$h->stop;
