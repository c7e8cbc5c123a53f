# Who staples which certificate when mod_ssl's SSLUseStapling or mod_md's
# MDStapling are configured in the same server (README "OCSPUseStapling"):
#  (a) OCSPUseStapling on + SSLUseStapling on: ours (fetched at startup,
#      OCSPSTAPLE0070 says SSLUseStapling is not used there);
#  (b) OCSPUseStapling off + SSLUseStapling on: mod_ssl's (it fetches inside
#      the first handshake, nothing at startup);
#  (c) neither: no staple;
#  (d) OCSPUseStapling on in a domain with MDStapling on: ours
#      (OCSPSTAPLE0071; mod_md never primes it), while mod_md keeps stapling a
#      virtual host with OCSPUseStapling off (MDStapleOthers); the notice
#      also comes for the one-line form `MDomain name ...`.
# mod_md runs offline: static certificate files, manual renewal, and its CA
# set to a closed loopback port in case it ever tried to reach one.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe update_ok_re);

plan tests => 25;
OCSPServer::deadline(180);

my ($w, $pki, $resp) = setup();
$resp->start;
my $moddir = $OCSPServer::MODDIR;

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    loglevel => 'info ocspstaple:debug ssl:debug',
    global => [ "SSLStaplingCache shmcb:$w/ssl_stapling(131072)" ],
    vhosts => [ { name => 'rsa.test', cert => 'rsa', extra => 'SSLUseStapling on' },            # (a)
                { name => 'sni2.test', cert => 'sni2', stapling => 0,
                  extra => 'SSLUseStapling on' },                                             # (b)
                { name => 'offvhost.test', cert => 'offvhost', stapling => 0 } ]);            # (c)
ok($h->start, 'httpd starts with SSLUseStapling in two virtual hosts') or BAIL_OUT('no server');

# Startup: only our certificate was fetched.
my @n70 = $h->log_lines(qr/OCSPSTAPLE0070: /);
ok(@n70 == 1 && $n70[0] =~ /\[ocspstaple:notice\].*OCSPSTAPLE0070: server rsa\.test has both SSLUseStapling and OCSPUseStapling on/,
   '(a) one OCSPSTAPLE0070 notice, for rsa.test') or diag(@n70);
my $ours = $h->log_lines(update_ok_re('rsa'));
ok($ours, '(a) rsa.test\'s certificate fetched by mod_ocspstaple at startup');
ok(!$h->log_lines(qr/OCSPSTAPLE000[2-5]: cert "CN=(?:sni2|offvhost)\.test"/),
   '(b, c) their certificates are not ours');
# Requests are counted as the responder READ them (it logs one before it
# answers): whoever made a request and waited for its answer, during the
# start or in a handshake, has it counted by the time it goes on. At
# startup also none still being answered.
OCSPServer::wait_until(10, sub { $resp->in_flight == 0 }, 0.1);
ok($resp->received == 1 && $resp->requests == 1, 'the responder saw one request at startup (ours)')
    or diag('read ', $resp->received, ', answered ', $resp->requests);

# (a) stapled by us: no fetch in the handshake.
my $off = $h->log_size;
my $r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && $r->{serial} eq $pki->serial('rsa'), '(a) rsa.test stapled') or diag(describe($r));
is($resp->received, 1, '(a) no request during its handshake');
ok(!$h->log_lines(qr/AH01938: /, $off), '(a) mod_ssl did not query a responder');

# (b) stapled by mod_ssl, which fetches inside the handshake.
$off = $h->log_size;
my $t0 = time;
$r = handshake($h->port, 'sni2.test');
ok($r->{stapled} && $r->{serial} eq $pki->serial('sni2'), '(b) sni2.test stapled') or diag(describe($r));
is($resp->received, 2, '(b) the responder saw a request during that handshake');
ok(scalar($h->log_lines(qr/\[ssl:debug\].*AH01938: stapling_renew_response: querying responder/, $off)),
   '(b) mod_ssl logged its query (AH01938) during the handshake');
my ($ts) = map { (split ' ')[0] } grep { /\S/ } (split /\n/, OCSPServer::slurp($resp->received_file))[-1];
ok(($ts // 0) >= int($t0), '(b) the request came after the handshake started, not at startup');
$r = handshake($h->port, 'sni2.test');
ok($r->{stapled} && $resp->received == 2, '(b) next handshake stapled from mod_ssl\'s cache');

# (c) nobody staples.
$r = handshake($h->port, 'offvhost.test');
ok($r->{connected} && !$r->{stapled}, '(c) offvhost.test: no staple') or diag(describe($r));
is($resp->received, 2, '(c) and no request');
$h->stop;

# (d) mod_md.
SKIP: {
    skip "$moddir/mod_md.so not installed", 10 unless -f "$moddir/mod_md.so";
    my $no_ca = 'MDCertificateAuthority http://127.0.0.1:' . OCSPServer::free_port() . '/directory';
    my $req = $resp->received;
    # mod_md starts offline with static certificate files and manual renewal:
    # it has nothing to obtain, so it never contacts an ACME CA.
    my $h2 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-md',
        loglevel => 'info ocspstaple:debug md:debug',
        global => [ "LoadModule md_module $moddir/mod_md.so",
                    "MDStoreDir \"$w/md\"", $no_ca,
                    'MDRenewMode manual',
                    'MDStapling on',
                    "<MDomain rsa.test>\n    MDCertificateFile \"" . $pki->crt('rsa') . "\"\n"
                    . '    MDCertificateKeyFile "' . $pki->key('rsa') . "\"\n</MDomain>" ],
        vhosts => [ { name => 'rsa.test', cert => 'rsa' },
                    { name => 'sni2.test', cert => 'sni2', stapling => 0 } ]);
    ok($h2->start, '(d) httpd starts with mod_md (MDStapling on, static certificate files)')
        or skip 'mod_md did not start offline', 9;
    my @n71 = $h2->log_lines(qr/OCSPSTAPLE0071: /);
    ok(@n71 == 1 && $n71[0] =~ /\[ocspstaple:notice\].*OCSPSTAPLE0071: server rsa\.test has OCSPUseStapling on and its domain has MDStapling on/,
       '(d) one OCSPSTAPLE0071 notice, for rsa.test') or diag(@n71);
    ok(scalar($h2->log_lines(update_ok_re('rsa'))), '(d) rsa.test fetched by mod_ocspstaple (OCSPSTAPLE0002)');
    ok(!$h2->log_lines(qr/\[md:\w+\].*md\[rsa\.test\]: priming OCSP/),
       '(d) mod_md did not take rsa.test\'s certificate');
    $r = handshake($h2->port, 'rsa.test');
    ok($r->{stapled} && $r->{serial} eq $pki->serial('rsa'), '(d) rsa.test stapled') or diag(describe($r));
    # sni2.test (OCSPUseStapling off) stays mod_md's: its watchdog fetches.
    my $md = OCSPServer::wait_until(30, sub { handshake($h2->port, 'sni2.test')->{stapled} }, 1);
    ok($md && !$h2->log_lines(qr/OCSPSTAPLE000[2-5]: cert "CN=sni2\.test"/),
       '(d) sni2.test (OCSPUseStapling off) stapled by mod_md, not by us');
    # mod_md's OCSP round is over once it plans the next one (AH10199), and
    # every request read has been answered: then count.
    my $round = $h2->wait_for_log(qr/\[md:debug\].*AH10199: md ocsp watchdog next run in/, 30);
    OCSPServer::wait_until(10, sub { $resp->in_flight == 0 }, 0.1);
    ok($round && $resp->received - $req == 2 && $resp->requests - $req == 2,
       '(d) two requests: ours for rsa.test, mod_md\'s for sni2.test (after mod_md\'s round, AH10199)')
        or diag('read ', $resp->received - $req, ', answered ', $resp->requests - $req,
                $round ? '' : "; no AH10199 line\n", $h2->log_lines(qr/\[md:/));
    $h2->stop;

    # The one-line form of a managed domain, with MDStapling on globally.
    my $h3 = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off', name => 'httpd-md2',
        loglevel => 'info ocspstaple:debug md:debug',
        global => [ "LoadModule md_module $moddir/mod_md.so", "MDStoreDir \"$w/md2\"", $no_ca,
                    'MDRenewMode manual', 'MDStapling on', 'MDomain rsa.test' ],
        vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
    ok($h3->start, '(d) httpd starts with "MDomain rsa.test" and a global MDStapling on')
        or skip 'mod_md did not start offline', 2;
    @n71 = $h3->log_lines(qr/OCSPSTAPLE0071: /);
    ok(@n71 == 1 && $n71[0] =~ /OCSPSTAPLE0071: server rsa\.test /,
       '(d) one OCSPSTAPLE0071 notice for the one-line MDomain form too')
        or diag("OCSPSTAPLE0071 lines: ", scalar(@n71), "\n", @n71);
    ok(!$h3->log_lines(qr/\[md:\w+\].*md\[rsa\.test\]: priming OCSP/)
       && scalar($h3->log_lines(update_ok_re('rsa'))), '(d) and the certificate is ours');
    $h3->stop;
}
$resp->stop;
