# The status page answers "is every certificate stapled, until when, and why
# not?": with SetHandler ocspstaple-status, /ocsp-status?format=json is valid
# JSON with one row per certificate whose facts match what handshakes
# actually receive (thisUpdate, nextUpdate, counters), the HTML page has a
# table row per certificate, mod_status's server-status shows a summary, and
# a certificate that cannot be stapled says so with the reason.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe);
use OCSPOps;

plan tests => 50;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start;
my $moddir = $OCSPServer::MODDIR;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    global => [ "LoadModule status_module $moddir/mod_status.so",
                "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>",
                "<Location /server-status>\n    SetHandler server-status\n</Location>" ],
    vhosts => [
        { name => 'rsa.test', cert => 'rsa',        # RSA and ECDSA in one vhost
          extra => 'SSLCertificateFile "' . $pki->crt('ecdsa') . "\"\n"
                 . 'SSLCertificateKeyFile "' . $pki->key('ecdsa') . '"' },
        { name => 'sni2.test', cert => 'sni2' },
        { name => 'wrongsigner.test', cert => 'wrongsigner' } ]);
my $t_start = int(time);
ok($h->start, 'httpd starts with the status handler and mod_status') or BAIL_OUT('no server');
my $t_started = time;

my %hs = (rsa    => handshake($h->port, 'rsa.test', sigalgs => 'RSA-PSS+SHA256:RSA+SHA256'),
          ecdsa  => handshake($h->port, 'rsa.test', sigalgs => 'ECDSA+SHA256'),
          sni2   => handshake($h->port, 'sni2.test'));
for my $n (sort keys %hs) {
    ok($hs{$n}{stapled} && $hs{$n}{serial} eq $pki->serial($n), "$n: handshake stapled with its own response")
        or diag(describe($hs{$n}));
}

my $json = OCSPOps::status_json($h->port);
ok($json && ref $json->{certificates} eq 'ARRAY', 'GET /ocsp-status?format=json parses as JSON')
    or BAIL_OUT('no JSON status');
my @rows = @{ $json->{certificates} };
is(scalar @rows, 4, 'one row per certificate (rsa, ecdsa, sni2, wrongsigner)');
my %ids = map { ($_->{id} // '') => 1 } @rows;
is_deeply([sort keys %ids], [sort map { $pki->cert_id($_) } qw(rsa ecdsa sni2 wrongsigner)],
          'row ids are the certificates\' SHA-1 ids');

# (README "The status page" lists them.)
my @fields = qw(id subject serial vhosts responders static_file must_staple stapling
                cert_status response_status this_update next_update expires source fetched_by
                last_fetch last_attempt last_result next_fetch failures_in_a_row
                fetches failures staples last_error);
my @missing = map { my $r = $_; map { "$r->{subject}: $_" } grep { !exists $r->{$_} } @fields } @rows;
ok(!@missing, 'every row has every field') or diag(join "\n", @missing);

my %vhost = (rsa => 'rsa.test', ecdsa => 'rsa.test', sni2 => 'sni2.test');
for my $n (qw(rsa ecdsa sni2)) {
    my $row = OCSPOps::status_row($json, $n) // {};
    my $r = $hs{$n};
    my $facts = sprintf 'serial %s, vhosts %s, responders %s',
        $row->{serial} // 'undef', join(',', @{ $row->{vhosts} // [] }),
        join(',', @{ $row->{responders} // [] });
    is($facts, sprintf('serial %s, vhosts %s, responders %s', $pki->serial($n), $vhost{$n}, $pki->url('good')),
       "$n: serial, virtual host and responder");
    ok($row->{stapling} && !$row->{must_staple} && ($row->{cert_status} // '') eq 'good'
       && ($row->{response_status} // '') eq 'successful'
       && ($row->{source} // '') eq 'responder' && ($row->{last_result} // '') eq 'ok'
       && ($row->{fetched_by} // '') =~ m{/\d+\z} && !defined $row->{static_file},
       "$n: stapling true, good, from the responder (fetched_by host/pid), last result ok")
        or diag(explain($row));
    is(OCSPOps::iso_time($row->{this_update}), $r->{this_update},
       "$n: this_update equals the stapled response's thisUpdate");
    is(OCSPOps::iso_time($row->{next_update}), $r->{next_update},
       "$n: next_update equals the stapled response's nextUpdate");
    my $next = OCSPOps::iso_time($row->{next_fetch}) // 0;
    ok($next > time - 5 && $next <= ($r->{next_update} // 0),
       "$n: next_fetch planned before nextUpdate ($row->{next_fetch})") or diag(explain($row));
    ok(($row->{fetches} // 0) >= 1 && ($row->{failures} // -1) == 0 && !defined $row->{last_error}
       && ($row->{failures_in_a_row} // -1) == 0,
       "$n: fetches >= 1, no failure, no last_error") or diag(explain($row));
    my $fetched = OCSPOps::iso_time($row->{last_fetch}) // 0;
    ok($fetched && $fetched == (OCSPOps::iso_time($row->{last_attempt}) // 0)
       && $fetched >= $t_start - 1 && $fetched <= $t_started + 1,
       "$n: last_fetch = last_attempt = the startup fetch ($row->{last_fetch})") or diag(explain($row));
}

# The staples counter adds up every process's handshakes.
my $before = OCSPOps::status_row($json, 'sni2')->{staples} // 0;
ok($before >= 1, "sni2: staples counter counts the handshake so far ($before)");
my @more = map { handshake($h->port, 'sni2.test') } 1 .. 3;
ok(!grep({ !$_->{stapled} } @more), '3 more sni2 handshakes stapled');
my $after;
OCSPServer::wait_until(10, sub {
    my $j = OCSPOps::status_json($h->port) or return 0;
    $after = OCSPOps::status_row($j, 'sni2')->{staples} // 0;
    return $after >= $before + 3;
}, 0.5);
ok($after >= $before + 3, "sni2: staples counter grew by >= 3 ($before -> $after)");

# The failing certificate: flagged, with the reason.
my $bad = OCSPOps::status_row($json, 'wrongsigner') // {};
ok(!$bad->{stapling} && ($bad->{last_result} // '') eq 'failed',
   'wrongsigner: stapling false, last_result failed') or diag(explain($bad));
like($bad->{last_error} // '', qr/wrongsigner.*(?i:sign|verif)|(?i:sign|verif).*wrongsigner/,
     'wrongsigner: last_error names the responder and the signature problem');
ok(($bad->{failures} // 0) >= 1 && ($bad->{fetches} // 0) >= 1 && ($bad->{cert_status} // '') eq 'none'
   && ($bad->{failures_in_a_row} // 0) >= 1 && !defined $bad->{last_fetch} && defined $bad->{last_attempt}
   && !defined $bad->{this_update} && !defined $bad->{source},
   'wrongsigner: failures counted, no response, no source') or diag(explain($bad));
is_deeply($bad->{responders}, [$pki->url('wrongsigner')], 'wrongsigner: responder URL');
my $wr = handshake($h->port, 'wrongsigner.test');
ok(!$wr->{stapled} && $wr->{connected}, 'wrongsigner: handshake without staple, as the page says')
    or diag(describe($wr));

# The HTML page.
my $html = OCSPOps::https_get($h->port, '/ocsp-status');
is($html->{code}, 200, 'GET /ocsp-status: 200');
like($html->{type}, qr{^text/html}, 'HTML content type');
like($html->{body}, qr{<table>.*</table>}s, 'the page has a table');
my @tr = $html->{body} =~ m{<tr class="(ok|bad)">(.*?)</tr>}g;
my %tr = reverse @tr;                               # row => class
is(scalar(keys %tr), 4, 'one table row per certificate') or diag($html->{body});
my @rowfor = map { my $n = $_; [grep { /CN=\Q$n\E\.test/ } keys %tr] } qw(rsa ecdsa sni2 wrongsigner);
ok(!grep({ @$_ != 1 } @rowfor), 'each certificate has its row');
is(join(' ', map { $tr{$_->[0] // ''} // '-' } @rowfor), 'ok ok ok bad',
   'rows of stapled certificates are "ok", the failing one "bad"');
like($rowfor[3][0] // '', qr/<b>NO<\/b>.*(?i:sign|verif)/, 'the failing row says NO and why');
like($html->{body}, qr/\Q${\ $pki->serial('rsa')}\E/, 'serials are shown');

# mod_status.
my $auto = OCSPOps::https_get($h->port, '/server-status?auto');
is($auto->{code}, 200, 'server-status?auto: 200');
like($auto->{body}, qr/^OCSPStaplingCertificates: 4$/m, 'server-status?auto: OCSPStaplingCertificates: 4')
    or diag($auto->{body});
like($auto->{body}, qr/^OCSPStaplingStapled: 3$/m, 'server-status?auto: OCSPStaplingStapled: 3');
like($auto->{body}, qr/^OCSPStaplingMustStapleDown: 0$/m, 'server-status?auto: OCSPStaplingMustStapleDown: 0');
my $st = OCSPOps::https_get($h->port, '/server-status');
like($st->{body}, qr/OCSP stapling \(mod_ocspstaple\).*4 certificate\(s\), 3 stapled, 1 not stapled/s,
     'server-status HTML has the summary');

$h->stop;
$resp->stop;
