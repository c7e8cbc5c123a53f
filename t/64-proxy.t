# Servers whose outbound HTTP must go through a proxy: with
# OCSPStaplingProxy every request to a responder goes through it (the proxy
# sees the POSTs to the responder URLs) and stapling works; set in a virtual
# host it applies to that host's certificates only; when the proxy is down
# the failure line (OCSPSTAPLE0003) says what went wrong; a bad value stops
# the configuration check.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_failed_re);
use OCSPOps;

plan tests => 15;
OCSPServer::deadline(150);

my ($w, $pki, $resp) = setup();
$resp->start;
my $proxy = OCSPOps::Proxy->new(dir => $w);
$proxy->start;
my $pp = $proxy->port;
my $rp = $pki->port;

my @vhosts = ({ name => 'rsa.test', cert => 'rsa' }, { name => 'sni2.test', cert => 'sni2' },
              { name => 'delegated.test', cert => 'delegated' });
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    global => [ "OCSPStaplingProxy http://127.0.0.1:$pp" ], vhosts => \@vhosts);
ok($h->start, 'httpd starts with OCSPStaplingProxy') or BAIL_OUT('no server');
my @lines = $proxy->lines;
my @posts = grep { m{ POST http://127\.0\.0\.1:$rp/(good|delegated) HTTP/1\.[01] -> 200$} } @lines;
is(scalar @posts, 3, 'the proxy forwarded the 3 startup fetches (POSTs to the responder URLs)')
    or diag(join "\n", @lines);
is(scalar(grep { m{/good } } @posts) . ' ' . scalar(grep { m{/delegated } } @posts), '2 1',
   '... to each certificate\'s responder URL');
is($resp->requests, scalar @lines, 'every responder request came through the proxy');
for my $n (qw(rsa sni2 delegated)) {
    my $r = handshake($h->port, "$n.test");
    ok($r->{stapled} && $r->{serial} eq $pki->serial($n), "$n stapled") or diag(describe($r));
}

# The proxy down: the failure names the responder and the reason.
$proxy->stop;
my $req = $resp->requests;
my $off = $h->log_size;
# (a stop and a start: a restart would keep what the server had, no fetch)
$h->stop;
ok($h->start, 'a new start with the proxy down') or BAIL_OUT('no server');
my $failed = $h->wait_for_log(update_failed_re('rsa'), 30, $off);
like($failed // '', qr{\[ocspstaple:error\].*OCSPSTAPLE0003: cert "CN=rsa\.test".*update failed: http://127\.0\.0\.1:$rp/good: .*(?i:connect|proxy).*\b$pp\b},
     'OCSPSTAPLE0003 names the responder URL and the error connecting to the proxy') or diag($h->log_lines(qr/ocspstaple/, $off));
is($resp->requests, $req, 'no request reached the responder directly');
$h->stop;

# Per virtual host: only rsa.test's certificate goes through the proxy.
$proxy->start;
my $before = () = $proxy->lines;
$req = $resp->requests;
$vhosts[0]{extra} = "OCSPStaplingProxy http://127.0.0.1:$pp";
my $h2 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd2',
                                vhosts => \@vhosts);
ok($h2->start, 'httpd starts with OCSPStaplingProxy in one virtual host') or BAIL_OUT('no server');
my $through = () = $proxy->lines;
is($through - $before, 1, 'the proxy saw one request (rsa.test\'s)');
is($resp->requests - $req, 3, 'the responder saw all three');
my $r = handshake($h2->port, 'rsa.test');
ok($r->{stapled}, 'rsa.test stapled') or diag(describe($r));
$h2->stop;

# A bad value.
my $h3 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd3',
    global => [ 'OCSPStaplingProxy ftp://x' ], vhosts => [ $vhosts[0] ]);
my ($rc, $out) = OCSPOps::configtest($h3);
ok($rc != 0 && $out =~ /OCSPStaplingProxy/, 'OCSPStaplingProxy ftp://x: apache2 -t fails naming the directive')
    or diag("exit $rc: $out");
$proxy->stop;
$resp->stop;
