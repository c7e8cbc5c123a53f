# Servers whose outbound HTTP must go through a proxy: with
# OCSPStaplingProxy every request to a responder goes through it (the proxy
# sees the requests to the responder URLs) and stapling works; set in a virtual
# host it applies to that host's certificates only (the proxy sees the
# RFC 5019 GETs, with OCSPStaplingUsePOST the POSTs); when the proxy is down
# the failure line (OCSPSTAPLE0003) says what went wrong; a bad value stops
# the configuration check. Without OCSPStaplingProxy, the proxy comes from
# the server's environment (libcurl's http_proxy, lower case for http), and
# no_proxy exempts responders from it.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe update_failed_re);
use OCSPOps;

plan tests => 25;
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
# A request the proxy forwarded to the responder, answered with 200: an
# RFC 5019 GET (URL/base64 request) or, with OCSPStaplingUsePOST, a POST.
sub fetches {
    my ($method, @l) = @_;
    return grep { m{ $method http://127\.0\.0\.1:$rp/(good|delegated)(?:/[\w%]+)? HTTP/1\.[01] -> 200$} } @l;
}
my @lines = $proxy->lines;
my @gets = fetches('GET', @lines);
is(scalar @gets, 3, 'the proxy forwarded the 3 startup fetches (GETs of the responder URLs)')
    or diag(join "\n", @lines);
is(scalar(grep { m{/good[/ ]} } @gets) . ' ' . scalar(grep { m{/delegated[/ ]} } @gets), '2 1',
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
$vhosts[0]{extra} = "OCSPStaplingProxy http://127.0.0.1:$pp\nOCSPStaplingUsePOST on";
my $h2 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd2',
                                vhosts => \@vhosts);
ok($h2->start, 'httpd starts with OCSPStaplingProxy in one virtual host') or BAIL_OUT('no server');
my @through = $proxy->lines;
is(scalar(fetches('POST', @through[$before .. $#through])) . ' ' . (@through - $before), '1 1',
   'the proxy saw one request (rsa.test\'s), a POST (OCSPStaplingUsePOST on there)')
    or diag(join "\n", @through[$before .. $#through]);
is($resp->requests - $req, 3, 'the responder saw all three');
my $r = handshake($h2->port, 'rsa.test');
ok($r->{stapled}, 'rsa.test stapled') or diag(describe($r));
$h2->stop;

# No OCSPStaplingProxy: the proxy of the server's environment. Every other
# proxy variable is cleared, so that only the one set here can act (libcurl
# reads http_proxy only in lower case for http: HTTP_PROXY could come from
# a CGI request header).
my %noproxy = map { $_ => undef } qw(http_proxy HTTP_PROXY https_proxy HTTPS_PROXY
                                     all_proxy ALL_PROXY no_proxy NO_PROXY);
my @plain = map { { name => $_->{name}, cert => $_->{cert} } } @vhosts;
for my $c (['http_proxy', { http_proxy => "http://127.0.0.1:$pp" }, 3],
           ['http_proxy and no_proxy=127.0.0.1',
            { http_proxy => "http://127.0.0.1:$pp", no_proxy => '127.0.0.1' }, 0]) {
    my ($what, $env, $want) = @$c;
    $before = () = $proxy->lines;
    $req = $resp->requests;
    my $he = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-env',
                                    env => { %noproxy, %$env }, vhosts => \@plain);
    ok($he->start, "httpd starts with $what in its environment") or BAIL_OUT('no server');
    # (the responder and the proxy log a request once it is answered)
    OCSPServer::wait_until(10, sub { $resp->requests - $req >= 3
                                     && $proxy->lines - $before >= $want });
    my @all = $proxy->lines;
    my @new = @all[$before .. $#all];
    my @p = fetches('GET', @new);
    is(scalar @p, $want, "$what: the proxy saw $want startup fetch(es)") or diag(join "\n", @new);
    is(scalar @new, $want, "$what: and nothing else");
    is($resp->requests - $req, 3, "$what: the responder answered all three");
    my $r = handshake($he->port, 'sni2.test');
    ok($r->{stapled} && $r->{serial} eq $pki->serial('sni2'), "$what: sni2 stapled")
        or diag(describe($r));
    $he->stop;
}

# A bad value.
my $h3 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd3',
    global => [ 'OCSPStaplingProxy ftp://x' ], vhosts => [ $vhosts[0] ]);
my ($rc, $out) = OCSPOps::configtest($h3);
ok($rc != 0 && $out =~ /OCSPStaplingProxy/, 'OCSPStaplingProxy ftp://x: apache2 -t fails naming the directive')
    or diag("exit $rc: $out");
$proxy->stop;
$resp->stop;
