# Responder-friendly requests, through real handshakes, as the responder
# sees them (method, status, path, connection of every request):
# - RFC 5019 GETs by default (GET /good/<url-encoded base64 request>), and
#   the staples work;
# - OCSPStaplingUsePOST on: POSTs; a virtual host can set it off again;
# - a responder that refuses GET (405): the round's first request to it is
#   a GET, alone; that certificate and every other one are then POSTed, and
#   all are stapled;
# - keep-alive (responder --keepalive): 50 certificates fetched at startup
#   over a handful of connections (at most the 16 fetched at once), not 50;
#   and a renewal round reuses the connection a round before it opened.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OCSPServer qw(setup handshake describe update_ok_re);
use OCSPLoad ();

my $N = 50;                 # certificates of the keep-alive startup
my $PARALLEL = 16;          # OCSPSTAPLE_FETCH_PARALLEL
plan tests => 26;
OCSPServer::deadline(300);

my ($w, $pki, $resp) = setup();
my $rp = $pki->port;
my $made = eval { OCSPLoad::make_leaves($pki, $w, n => $N, prefix => 'k',
                                        serial0 => 0x700000) };
ok(defined $made, sprintf('%d certificates made in %.1f s', $N, $made // -1))
    or BAIL_OUT($@);
$resp->start;

# The responder's log records from index $from on, once there are at least
# $n of them (a request is logged just after its answer is sent: the
# module may have it a moment earlier).
sub records_from {
    my ($from, $n) = @_;
    my @r;
    OCSPServer::wait_until(20, sub { @r = $resp->log_records; @r - $from >= $n }, 0.1);
    return @r[$from .. $#r];
}
sub next_record { scalar(my @r = $resp->log_records) }
sub show { join "\n", map { join ' ', map { $_ // '-' } @$_{qw(time method status path conn)},
                                      $_->{reused} ? 'reused' : 'new' } @_ }

# Staples the good response for its own certificate, at once or within
# the next background tick (a second) of every process.
sub staples {
    my ($h, @names) = @_;
    my @bad;
    OCSPServer::wait_until(10, sub {
        @bad = grep {
            my $r = handshake($h->port, "$_.test");
            !($r->{stapled} && ($r->{cert_status} // '') eq 'good'
              && ($r->{serial} // '') eq $pki->serial($_))
        } @names;
        !@bad;
    }, 0.5);
    diag("not stapled: @bad") if @bad;
    return !@bad;
}

# ---- GET by default ---------------------------------------------------------
my @two = ({ name => 'rsa.test', cert => 'rsa' }, { name => 'sni2.test', cert => 'sni2' });
my $from = next_record();
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', vhosts => \@two);
ok($h->start, 'httpd starts with the defaults') or BAIL_OUT('no server');
my @r = records_from($from, 2);
is(join(' ', map { "$_->{method}:$_->{status}:$_->{path}" } @r), 'GET:200:/good GET:200:/good',
   'the responder got two GETs of /good/<request>, answered 200') or diag(show(@r));
ok(@r == 2 && $resp->connections(@r) == 2 && !grep({ $_->{reused} } @r),
   'each on a connection of its own (the responder closes them without --keepalive)')
    or diag(show(@r));
ok(staples($h, 'rsa'), 'rsa.test stapled');
ok(staples($h, 'sni2'), 'sni2.test stapled');
ok(!$h->log_lines(qr/OCSPSTAPLE0006/), 'no GET-refused notice when GETs are answered');
$h->stop;

# ---- OCSPStaplingUsePOST ------------------------------------------------------
$from = next_record();
my $hp = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-post',
    global => [ 'OCSPStaplingUsePOST on' ],
    vhosts => [ $two[0], { %{ $two[1] }, extra => "OCSPStaplingUsePOST off\n"
                           . "OCSPStaplingForceURL http://127.0.0.1:$rp/good/sni2" } ]);
ok($hp->start, 'httpd starts with OCSPStaplingUsePOST on (off in one virtual host)')
    or BAIL_OUT('no server');
@r = records_from($from, 2);
is(join(' ', sort map { "$_->{method}:$_->{status}:$_->{path}" } @r),
   'GET:200:/good/sni2 POST:200:/good',
   'rsa.test\'s request was POSTed, sni2.test\'s (OCSPStaplingUsePOST off there) a GET')
    or diag(show(@r));
ok(staples($hp, 'rsa'), 'rsa.test stapled (POST)');
ok(staples($hp, 'sni2'), 'sni2.test stapled (GET)');
$hp->stop;

# ---- a responder that refuses GET -----------------------------------------------
# Its requests in the order the responder READ them (--received: before the
# answer), from line $recv0 on: the POSTs must come after the GET's 405.
my @ng = qw(rsa sni2 k1 k2);
my $recv0 = $resp->received;
$from = next_record();
my $noget = "http://127.0.0.1:$rp/noget/good";
my $hn = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-noget',
    global => [ "OCSPStaplingForceURL $noget" ],
    vhosts => [ map { { name => "$_.test", cert => $_ } } @ng ]);
ok($hn->start, 'httpd starts, its responder refuses GET') or BAIL_OUT('no server');
@r = records_from($from, 1 + @ng);
my @read = (split /\n/, OCSPServer::slurp($resp->received_file))[$recv0 .. $resp->received - 1];
is(join(' ', map { (split ' ')[8] } @read), 'GET ' . join(' ', ('POST') x @ng),
   'the responder read one GET (the round\'s first request to it), then a POST per certificate')
    or diag(join "\n", @read);
is(join(' ', sort map { "$_->{method}:$_->{status}:$_->{path}" } @r),
   join(' ', 'GET:405:/noget/good', ('POST:200:/noget/good') x @ng),
   'it answered the GET 405 and every POST 200') or diag(show(@r));
ok(staples($hn, @ng), 'all ' . scalar(@ng) . ' certificates stapled');
my @ok = $hn->log_lines(qr/OCSPSTAPLE0002: .*update ok from \Q$noget\E/);
ok(@ok == @ng && !$hn->log_lines(qr/OCSPSTAPLE0003/),
   'one update-ok line per certificate from that responder, no failed update')
    or diag($hn->log_lines(qr/OCSPSTAPLE000[23]/));
my @refused = $hn->log_lines(qr/OCSPSTAPLE0006: /);
ok(@refused == 1 && $refused[0] =~ /\[ocspstaple:notice\].*\Q$noget\E refused an RFC 5019 GET \(HTTP 405\)/,
   'one notice names the responder that refused the GET and its HTTP status (OCSPSTAPLE0006)')
    or diag(@refused ? @refused : 'no OCSPSTAPLE0006 line');
$hn->stop;

# ---- keep-alive: 50 certificates at startup ---------------------------------------
$resp->restart(keepalive => 60);
$from = next_record();
my $hk = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-keep',
    vhosts => [ map { { name => "k$_.test", cert => "k$_" } } 1 .. $N ]);
ok($hk->start(timeout => 120), "httpd with $N certificates starts (responder --keepalive)")
    or BAIL_OUT('no server');
@r = records_from($from, $N);
is(scalar(grep { $_->{method} eq 'GET' && $_->{status} eq '200' } @r), $N,
   "$N GETs answered 200") or diag(show(@r));
my $conns = $resp->connections(@r);
my $reused = grep { $_->{reused} } @r;
diag("$N startup fetches over $conns connections, $reused requests on a reused one");
cmp_ok($conns, '<=', $PARALLEL + 4,
       "they came over $conns connections (at most the $PARALLEL fetched at once, + 4), not $N");
is($reused, @r - $conns, 'every other request came on a connection that had carried one before');
ok(staples($hk, 'k1', "k$N", map { 'k' . (2 + int rand($N - 2)) } 1 .. 3),
   '5 sampled certificates stapled');
$hk->stop;

# ---- keep-alive across rounds: renewals --------------------------------------------
# Responses valid 1 minute, renewed 50 s before their nextUpdate: a renewal
# every 5 to 10 s, by the one child (ServerLimit 1) whose refresh keeps its
# connections between rounds. The startup fetch is the helper's (a process
# that has exited since), the first renewal opens the child's connection,
# the second must find it open.
$resp->restart(keepalive => 60, nmin => 1);
$from = next_record();
my $hr = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-renew',
    mpm_conf => { ServerLimit => 1, StartServers => 1, ThreadsPerChild => 16,
                  MaxRequestWorkers => 16, MinSpareThreads => 1, MaxSpareThreads => 32 },
    global => [ 'OCSPStaplingRenewWindow 50s' ], vhosts => [ $two[0] ]);
ok($hr->start, 'httpd with one child starts, responses valid 1 minute') or BAIL_OUT('no server');
my $first = handshake($hr->port, 'rsa.test');
OCSPServer::wait_until(60, sub { @r = $resp->log_records; @r - $from >= 3 }, 0.2);
my ($startup, $renew1, $renew2) = @r[$from .. $#r];
$_ //= {} for $startup, $renew1, $renew2;
ok($renew2->{reused} && ($renew2->{conn} // -1) eq ($renew1->{conn} // -2)
   && ($renew2->{time} // 0) - ($renew1->{time} // 0) >= 3,
   sprintf('the second renewal (%s s after the first) came on the connection the first '
           . 'one opened', ($renew2->{time} // 0) - ($renew1->{time} // 0)))
    or diag(show(@r[$from .. $#r]));
ok(!$renew1->{reused} && ($renew1->{conn} // -1) ne ($startup->{conn} // -1),
   'the first renewal opened a connection (the startup fetch\'s ended with the start-up helper)')
    or diag(show(@r[$from .. $#r]));
my $later = handshake($hr->port, 'rsa.test');
ok($later->{stapled} && ($later->{this_update} // 0) > ($first->{this_update} // 0),
   'a handshake staples a renewed response') or diag(describe($first), "\n", describe($later));
$hr->stop;
$resp->stop;
