# Admins grep and alert on the module's log tags: every line the module
# writes starts with its OCSPSTAPLEnnnn tag, every tag is documented in
# README's "Log messages" table (at one of the levels listed there), each
# situation (good, failed, revoked, unknown, no AIA, store used, store entry
# ignored, store unusable) shows its tag, and every exchange with a
# responder produces exactly one update line (0002, 0003, 0004 or 0005)
# naming the certificate and the responder: startup, handshakes, background
# renewals and retries in the child processes, graceful restarts.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe);
use OCSPOps;

plan tests => 21;
OCSPServer::deadline(240);

my ($w, $pki, $resp) = setup();
$resp->start(nmin => 1);         # 60 s responses: renewals within the test

# A certificate the responder does not know (status unknown): the delegated
# signer's certificate is issued by the intermediate but not in index.txt.
my $unknown_crt = "$w/unknown.crt";
{
    open my $fh, '>', $unknown_crt or die "$unknown_crt: $!";
    print $fh OCSPServer::slurp($pki->crt('ocsp-signer-noeku')),
              OCSPServer::slurp($pki->crt('intermediate'));
    close $fh or die "$unknown_crt: $!";
}

my @names = qw(rsa sni2 revoked noaia wrongsigner wrongserial delegated twourls);
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    vhosts => [ (map { { name => "$_.test", cert => $_ } } @names),
                { name => 'unknown.test', crt => $unknown_crt,
                  key => $pki->key('ocsp-signer-noeku'),
                  extra => 'OCSPStaplingForceURL ' . $pki->url('good') } ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');
handshake($h->port, "$_.test") for @names, 'unknown';

# Corrupt one stored response, then a stop and a start: the store is read
# again (OCSPSTAPLE0030 for valid files, 0031 for the corrupt one). A
# graceful restart would not read it: the server keeps what it had.
my $sni2_file = "$w/store/" . $pki->cert_id('sni2') . '.der';
ok(OCSPServer::wait_until(10, sub { -s $sni2_file }), 'sni2 response stored');
{
    open my $fh, '>', $sni2_file or die "$sni2_file: $!";
    print $fh "not an OCSP response\n";
    close $fh;
}
$h->stop;
ok($h->start, 'start again') or BAIL_OUT('no server');

# Background renewals (50% of 60 s) and retries of the failing certificates
# (5 s, 10 s, 20 s backoff) happen in the child processes meanwhile.
my $t0 = time;
my @renewed = $h->wait_for_log(qr/\[ocspstaple:info\].*OCSPSTAPLE0002: cert "CN=rsa\.test"/, 75, 0, 2);
ok(@renewed >= 2, sprintf 'rsa renewed in the background (%.0f s)', time - $t0);
handshake($h->port, "$_.test") for qw(rsa sni2 wrongsigner);

# The update lines and the responder's log, per responder path, at a quiet
# moment (a fetch may be logged by the responder a moment before the module
# logs it): equal, and staying equal for 2 s.
my $port = $pki->port;
sub update_counts {
    my %c;
    for my $l ($h->log_lines(qr/OCSPSTAPLE000[2345]: /)) {
        my @urls = $l =~ m{http://127\.0\.0\.1:\Q$port\E/(\w+)}g;
        $c{@urls == 1 ? $urls[0] : 'bad(' . scalar(@urls) . ')'}++;
    }
    return \%c;
}
sub responder_counts {
    my %c;
    $c{$_} = $resp->requests($_) for qw(good delegated wrongsigner wrongserial);
    delete $c{$_} for grep { !$c{$_} } keys %c;
    return \%c;
}
my ($upd, $req, $since);
my $equal = OCSPServer::wait_until(30, sub {
    ($upd, $req) = (update_counts(), responder_counts());
    my $same = join(',', map { "$_=$upd->{$_}" } sort keys %$upd)
            eq join(',', map { "$_=$req->{$_}" } sort keys %$req);
    $since = undef unless $same;
    $since //= time if $same;
    return $same && time - $since >= 2;
}, 0.2);
ok($equal, 'exactly one update line (0002/0003/0004/0005) per responder request, per path')
    or diag(explain({ update_lines => $upd, responder_requests => $req }));
my $total = 0;
$total += $_ for values %{ $req // {} };
ok($total >= 12, "... over $total requests: startup, second start, renewals, retries");
$h->stop;

# A store that cannot be used (a file where the directory should be).
open my $fh, '>', "$w/not-a-dir" or die;
close $fh;
my $h2 = OCSPServer::Httpd->new(dir => $w, pki => $pki, name => 'httpd2',
    store => "$w/not-a-dir/store", vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h2->start, 'httpd with an unusable store starts') or diag($h2->error_log);
$h2->stop;

my @lines = (OCSPOps::module_lines($h), OCSPOps::module_lines($h2));
# (At debug level httpd puts the source file and line before the message.)
my @untagged = grep { !/^\[[^\]]*\] \[ocspstaple:\w+\] \[pid [^\]]*\] (?:\w+\.c\(\d+\): )?(?:\[client [^\]]*\] )?OCSPSTAPLE\d{4}: / } @lines;
ok(@lines > 20 && !@untagged, scalar(@lines) . ' module lines, each starting with its OCSPSTAPLEnnnn: tag')
    or diag("untagged:\n", @untagged);

my %doc = OCSPOps::readme_tags();
ok(keys %doc >= 20, scalar(keys %doc) . ' tags in README\'s log table');
my (%seen, @undoc, @badlevel);
for my $l (@lines) {
    my ($level, $tag) = $l =~ /\[ocspstaple:(\w+)\].*?(OCSPSTAPLE\d{4}):/ or next;
    $seen{$tag}++;
    if (!exists $doc{$tag}) { push @undoc, $l; next }
    push @badlevel, "$tag at $level, README says '$doc{$tag}': $l"
        unless grep { $_ eq $level } split m{\s*/\s*}, $doc{$tag};
}
ok(!@undoc, 'every tag seen is documented in README: ' . join(' ', sort keys %seen))
    or diag("undocumented:\n", @undoc);
ok(!@badlevel, 'every tag is logged at a level README lists for it') or diag(join "", @badlevel);

# Each situation shows its tag.
my %want = (
    OCSPSTAPLE0001 => qr/\[ocspstaple:info\] .*OCSPSTAPLE0001: cert "CN=noaia\.test"/,
    OCSPSTAPLE0002 => qr/\[ocspstaple:info\] .*OCSPSTAPLE0002: cert "CN=delegated\.test".* update ok from \Q${\ $pki->url('delegated')}\E/,
    OCSPSTAPLE0003 => qr/\[ocspstaple:error\] .*OCSPSTAPLE0003: cert "CN=wrongserial\.test".*update failed: \Q${\ $pki->url('wrongserial')}\E/,
    OCSPSTAPLE0004 => qr/\[ocspstaple:crit\] .*OCSPSTAPLE0004: cert "CN=revoked\.test".*REVOKED according to \Q${\ $pki->url('good')}\E/,
    OCSPSTAPLE0005 => qr/\[ocspstaple:error\] .*OCSPSTAPLE0005: cert "[^"]*CN=ocsp-signer-noeku".*\Q${\ $pki->url('good')}\E/,
    OCSPSTAPLE0012 => qr/\[ocspstaple:info\] .*OCSPSTAPLE0012: 8 certificate\(s\) to staple/,
    OCSPSTAPLE0030 => qr/\[ocspstaple:info\] .*OCSPSTAPLE0030: cert "CN=rsa\.test".*stored response/,
    OCSPSTAPLE0031 => qr/\[ocspstaple:warn\] .*OCSPSTAPLE0031: cert "CN=sni2\.test".*\Q$sni2_file\E/,
    OCSPSTAPLE0032 => qr/\[ocspstaple:warn\] .*OCSPSTAPLE0032: .*not-a-dir/,
    OCSPSTAPLE0040 => qr/\[ocspstaple:debug\] .*OCSPSTAPLE0040: /,
);
for my $tag (sort keys %want) {
    ok(scalar(grep { /$want{$tag}/ } @lines), "$tag logged for its situation")
        or diag("$tag lines:\n", grep { /$tag/ } @lines);
}
