# Prometheus metrics: /ocsp-status?format=prometheus is the status page in
# the text exposition format 0.0.4 that `promtool check metrics` accepts
# (HELP and TYPE per family, each family's samples together, label values
# escaped: a subject with a double quote and a backslash), with one series
# per certificate whose labels are the JSON page's subject, serial, id and
# virtual hosts, and whose values are what handshakes show: stapled 1 where
# s_client gets a staple, 0 where the responder is down; next_update_seconds
# the staple's nextUpdate minus now; failures_in_a_row > 0 where the
# responder is down; counters that count handshakes. The alert rules README
# quotes (conf/ocspstaple-alerts.yml) pass `promtool check rules`, and
# `promtool test rules` fed with the scraped values fires each alert for the
# right certificate only; README's scrape config passes `promtool check
# config`, and a real Prometheus (on loopback) given that config and the
# rules scrapes the server over HTTPS, holds the page's series and has the
# two alerts pending for the right certificates.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use OCSPServer qw(setup handshake describe free_port);
use OCSPOps;
use OCSPClients ();
use OCSPTest ();

plan tests => 46;
OCSPServer::deadline(180);
my $PROMTOOL = OCSPClients::have('promtool');
my $CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
my $RULES = "$OCSPServer::ROOT/conf/ocspstaple-alerts.yml";

my ($w, $pki, $resp) = setup();
$resp->start;                                   # 1-day responses
# Responses valid for an hour: within the expiry alert's 6 hours.
my $short = OCSPServer::Responder->new(dir => $w, port => free_port(), pki => $pki,
                                       name => 'short');
$short->start(nmin => 60);
my $down = free_port();                         # nobody listens: refused

# A leaf whose subject has a double quote and a backslash, for the label
# escaping; its responder is down.
my $quote = make_quote_leaf();

my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => 'off',
    global => [ "<Location /ocsp-status>\n    SetHandler ocspstaple-status\n</Location>" ],
    vhosts => [
        { name => 'rsa.test', cert => 'rsa' },
        { name => 'alias.test', cert => 'rsa' },       # one certificate, two vhosts
        { name => 'sni2.test', cert => 'sni2',
          extra => 'OCSPStaplingForceURL ' . $short->url('good') },
        { name => 'muststaple.test', cert => 'muststaple',
          extra => "OCSPStaplingForceURL http://127.0.0.1:$down/good" },
        { name => 'quote.test', crt => $quote->{crt}, key => $quote->{key},
          extra => "OCSPStaplingForceURL http://127.0.0.1:$down/good" } ]);
ok($h->start, 'httpd starts') or BAIL_OUT('no server');

my %hs = map { ($_ => handshake($h->port, "$_.test")) } qw(rsa sni2 muststaple quote);
ok($hs{rsa}{stapled} && $hs{sni2}{stapled} && $hs{rsa}{next_update} && $hs{sni2}{next_update},
   'rsa and sni2 handshakes stapled') or diag(describe($hs{rsa}), "\n", describe($hs{sni2}));
ok(($hs{sni2}{next_update} // 0) - ($hs{sni2}{this_update} // 0) <= 3600
   && ($hs{rsa}{next_update} // 0) - ($hs{rsa}{this_update} // 0) >= 86000,
   'sni2 staple valid for an hour, rsa for a day') or diag(describe($hs{sni2}));
ok(!$hs{muststaple}{stapled} && !$hs{quote}{stapled} && $hs{muststaple}{connected} && $hs{quote}{connected},
   'muststaple and quote handshakes without staple (responder down)')
    or diag(describe($hs{muststaple}), "\n", describe($hs{quote}));

# ---- the page ----------------------------------------------------------------
my @asked = ($resp->received, $short->received);    # the page asks no responder
my $t_before = time;
my $page = OCSPOps::https_get($h->port, '/ocsp-status?format=prometheus');
my $t_after = time;
is($page->{code}, 200, 'GET /ocsp-status?format=prometheus: 200');
is($page->{type}, $CONTENT_TYPE, "Content-Type: $CONTENT_TYPE");
my $json = OCSPOps::status_json($h->port) or BAIL_OUT('no JSON status');
my $m = parse($page->{body});
ok(!@{ $m->{bad} }, 'every line is HELP, TYPE or a sample') or diag(join "\n", @{ $m->{bad} });

my %TYPES = (ocspstaple_stapled => 'gauge', ocspstaple_next_update_seconds => 'gauge',
             ocspstaple_next_fetch_seconds => 'gauge', ocspstaple_failures_in_a_row => 'gauge',
             ocspstaple_must_staple => 'gauge', ocspstaple_fetches_total => 'counter',
             ocspstaple_fetch_failures_total => 'counter', ocspstaple_staples_total => 'counter');
is_deeply($m->{type}, \%TYPES, 'the eight families, each with its TYPE');
ok(!grep({ !length($m->{help}{$_} // '') } keys %TYPES), 'each family has a HELP line')
    or diag(explain($m->{help}));
ok($m->{grouped}, 'each family: HELP, TYPE, then all its samples together')
    or diag(join ' ', @{ $m->{sequence} });

SKIP: {
    skip 'promtool is not installed (Debian package prometheus; scripts/deps.sh installs it)', 1
        unless $PROMTOOL;
    my $file = "$w/metrics.txt";
    write_file($file, $page->{body});
    my ($rc, $out) = run('sh', '-c', 'promtool check metrics < "$1"', 'sh', $file);
    ok($rc == 0 && $out !~ /\S/, 'promtool check metrics: no error, no lint problem')
        or diag("exit $rc\n$out");
}

# ---- labels: the JSON page's facts ------------------------------------------
my @CERTS = qw(rsa sni2 muststaple quote);          # PKI leaves CN=NAME.test
my (%labels, @label_errors);
for my $n (@CERTS) {
    my $row = OCSPOps::status_row($json, $n) // {};
    my $want = { subject => $row->{subject} // '?', serial => $row->{serial} // '?',
                 id => $row->{id} // '?', vhost => join(', ', @{ $row->{vhosts} // [] }) };
    my @s = grep { ($_->{labels}{id} // '') eq $want->{id} } samples($m, 'ocspstaple_stapled');
    push @label_errors, "$n: " . scalar(@s) . ' ocspstaple_stapled samples' if @s != 1;
    push @label_errors, "$n: labels " . JSON::PP->new->canonical->encode($s[0]{labels})
        . ' instead of ' . JSON::PP->new->canonical->encode($want)
        if @s && !eq_hash($s[0]{labels}, $want);
    $labels{$n} = $want;
}
ok(!@label_errors && scalar(my @all = samples($m, 'ocspstaple_stapled')) == 4,
   'one series per certificate, labelled with its subject, serial, id and vhosts as on the JSON page')
    or diag(join "\n", @label_errors);
# (in the order mod_ssl offered them, as the status page lists them)
is(join(' ', sort split /, /, $labels{rsa}{vhost}), 'alias.test rsa.test',
   "vhost of a certificate in two virtual hosts: both names ($labels{rsa}{vhost})");
my $qs = $labels{quote}{subject};
ok($qs =~ /"/ && $qs =~ /\\/, "the quote leaf's subject has a double quote and a backslash ($qs)");
ok(index($page->{body}, 'subject="' . escape($qs) . '"') >= 0,
   'its label value is escaped (\\\\ and \\")') or diag($page->{body});

# ---- values: what handshakes show -------------------------------------------
my %v = map { ($_ => values_of($m, $labels{$_}{id})) } @CERTS;
is(join(' ', map { "$_=" . ($v{$_}{ocspstaple_stapled} // 'none') } qw(rsa sni2 muststaple quote)),
   'rsa=1 sni2=1 muststaple=0 quote=0', 'ocspstaple_stapled: 1 where handshakes get a staple, 0 where not');
for my $n (qw(rsa sni2)) {
    my $nu = $hs{$n}{next_update} // 0;
    my $got = $v{$n}{ocspstaple_next_update_seconds};
    ok(defined $got && $got >= $nu - $t_after - 1 && $got <= $nu - $t_before + 1,
       sprintf '%s: next_update_seconds %s = the staple\'s nextUpdate - now (%.1f)',
               $n, $got // 'none', $nu - $t_before);
    my $nf = $v{$n}{ocspstaple_next_fetch_seconds};
    ok(defined $nf && $nf > 0 && $nf < $got,
       "$n: next_fetch_seconds " . ($nf // 'none') . ' > 0, before nextUpdate');
}
ok(!defined $v{muststaple}{ocspstaple_next_update_seconds} && !defined $v{quote}{ocspstaple_next_update_seconds},
   'no next_update_seconds sample where nothing is stapled');
my @down = map { $v{$_}{ocspstaple_failures_in_a_row} // 0 } qw(muststaple quote);
ok($down[0] > 0 && $down[1] > 0, "failures_in_a_row > 0 where the responder is down (@down)");
ok(($v{rsa}{ocspstaple_failures_in_a_row} // -1) == 0 && ($v{sni2}{ocspstaple_failures_in_a_row} // -1) == 0,
   'failures_in_a_row 0 where stapled');
# (retry in at most 60 s * 1.25 while nothing can be stapled: README's
# "Refresh policy")
my $retry = $v{muststaple}{ocspstaple_next_fetch_seconds};
ok(defined $retry && $retry <= 60 * 1.25 + 1,
   'a retry is planned for the failing certificate, within the cold backoff (' . ($retry // 'none') . ' s)');
is(join(' ', map { "$_=" . ($v{$_}{ocspstaple_must_staple} // 'none') } qw(rsa sni2 muststaple quote)),
   'rsa=0 sni2=0 muststaple=1 quote=0', 'ocspstaple_must_staple: 1 for the Must-Staple leaf only');

# Counters: the JSON page's (read after the metrics; a down certificate may
# have failed again meanwhile, never less).
my @counter_errors;
for my $n (@CERTS) {
    my $row = OCSPOps::status_row($json, $n) // {};
    for ([fetches => 'ocspstaple_fetches_total'], [failures => 'ocspstaple_fetch_failures_total'],
         [staples => 'ocspstaple_staples_total']) {
        my ($field, $metric) = @$_;
        my $got = $v{$n}{$metric};
        push @counter_errors, "$n: $metric " . ($got // 'none') . ", JSON $field " . ($row->{$field} // 'none')
            unless defined $got && defined $row->{$field} && $got <= $row->{$field}
                   && ($n =~ /^(?:muststaple|quote)\z/ || $got == $row->{$field});
    }
}
ok(!@counter_errors, 'counters agree with the JSON page') or diag(join "\n", @counter_errors);
ok(($v{rsa}{ocspstaple_fetches_total} // 0) >= 1 && ($v{rsa}{ocspstaple_fetch_failures_total} // -1) == 0
   && ($v{muststaple}{ocspstaple_fetch_failures_total} // 0) >= 1 && ($v{rsa}{ocspstaple_staples_total} // 0) >= 1,
   'fetches_total >= 1, fetch_failures_total 0 for rsa and >= 1 for muststaple, staples_total counts the handshake');
my $staples = $v{rsa}{ocspstaple_staples_total} // 0;
my @more = map { handshake($h->port, 'rsa.test') } 1 .. 3;
ok(!grep({ !$_->{stapled} } @more), '3 more rsa handshakes stapled');
my $grown;
OCSPServer::wait_until(10, sub {
    my $p = OCSPOps::https_get($h->port, '/ocsp-status?format=prometheus');
    $grown = values_of(parse($p->{body}), $labels{rsa}{id})->{ocspstaple_staples_total} // 0;
    return $grown >= $staples + 3;
}, 0.5);
ok($grown >= $staples + 3, "ocspstaple_staples_total grew by >= 3 ($staples -> $grown)");

# The format argument is a whole value among others.
my $other = OCSPOps::https_get($h->port, '/ocsp-status?refresh=1&format=prometheus');
is($other->{type}, $CONTENT_TYPE, '?refresh=1&format=prometheus: metrics');
like(OCSPOps::https_get($h->port, '/ocsp-status?format=prometheusx')->{type}, qr{^text/html},
     '?format=prometheusx: the HTML page');

# ---- README: format, scrape config, alert rules ------------------------------
my $readme = OCSPServer::slurp("$OCSPServer::ROOT/README.md");
my ($status_section) = $readme =~ /^## The status page\n(.*?)^## /ms;
ok(!grep({ index($status_section // '', "`$_`") < 0 } keys %TYPES),
   'README\'s "The status page" names every metric');
my $rules_text = OCSPServer::slurp($RULES);
ok(length $rules_text && index($readme, "```yaml\n$rules_text```\n") >= 0,
   'README quotes conf/ocspstaple-alerts.yml as it is');
my ($scrape) = $readme =~ /```yaml\n(scrape_configs:\n.*?)```\n/s;
ok($scrape && $scrape =~ /scheme: https/ && $scrape =~ m{metrics_path: /ocsp-status}
   && $scrape =~ /format: \[prometheus\]/, 'README has a scrape config (https, /ocsp-status, format=prometheus)');

SKIP: {
    skip 'promtool is not installed (Debian package prometheus; scripts/deps.sh installs it)', 6
        unless $PROMTOOL;
    my ($rc, $out) = run('promtool', 'check', 'rules', $RULES);
    ok($rc == 0 && $out =~ /SUCCESS: 2 rules found/, 'promtool check rules conf/ocspstaple-alerts.yml')
        or diag("exit $rc\n$out");

    # README's scrape config, with the CA file and the server name of the
    # test's server.
    (my $cfg = $scrape // '') =~ s{ca_file: \S+}{ca_file: ${\ $pki->root }};
    $cfg =~ s{server_name: \S+}{server_name: rsa.test};
    write_file("$w/prometheus.yml", $cfg);
    ($rc, $out) = run('promtool', 'check', 'config', "$w/prometheus.yml");
    ok($rc == 0 && $out =~ /SUCCESS/, "promtool check config: README's scrape config")
        or diag("exit $rc\n$out\n$cfg");

    # The alerts over the scraped values, held for 30 minutes.
    my $rules = parse_rules($rules_text);
    ok($rules->{OCSPMustStapleNotStapled} && $rules->{OCSPStapleExpiringSoon},
       'the two alerts: OCSPMustStapleNotStapled, OCSPStapleExpiringSoon') or diag(explain($rules));
    my $test = rules_test($m, $rules, {
        OCSPMustStapleNotStapled => [ $labels{muststaple} ],
        OCSPStapleExpiringSoon   => [ $labels{sni2} ] });
    write_file("$w/alerts-test.yml", JSON::PP->new->canonical->pretty->encode($test));
    ($rc, $out) = run('promtool', 'test', 'rules', "$w/alerts-test.yml");
    ok($rc == 0 && $out =~ /SUCCESS/,
       'promtool test rules: a Must-Staple certificate not stapled alerts (muststaple only), '
       . 'a staple within 6 h of nextUpdate alerts (sni2 only)') or diag("exit $rc\n$out");

    # The same test must fail when the expectation is wrong (rsa does not expire).
    my $wrong = rules_test($m, $rules, {
        OCSPMustStapleNotStapled => [ $labels{muststaple} ],
        OCSPStapleExpiringSoon   => [ $labels{sni2}, $labels{rsa} ] });
    write_file("$w/alerts-wrong.yml", JSON::PP->new->canonical->pretty->encode($wrong));
    ($rc, $out) = run('promtool', 'test', 'rules', "$w/alerts-wrong.yml");
    ok($rc != 0 && $out =~ /OCSPStapleExpiringSoon/, 'promtool test rules fails a wrong expectation (rsa expiring)')
        or diag("exit $rc\n$out");

    # The Must-Staple certificate stapled: no alert for it.
    my $fine = rules_test(parse(ok_metrics($page->{body})), $rules,
        { OCSPMustStapleNotStapled => [], OCSPStapleExpiringSoon => [ $labels{sni2} ] });
    write_file("$w/alerts-fine.yml", JSON::PP->new->canonical->pretty->encode($fine));
    ($rc, $out) = run('promtool', 'test', 'rules', "$w/alerts-fine.yml");
    ok($rc == 0 && $out =~ /SUCCESS/, 'promtool test rules: no alert for a Must-Staple certificate that is stapled')
        or diag("exit $rc\n$out");
}

# ---- a real Prometheus scrapes the server ------------------------------------
# README's scrape config (CA, server name, target of the test's server) with a
# 1 s scrape and rule evaluation: Prometheus takes the page, verifying the
# server's certificate; its series are the page's, and the alerts are pending
# for the right certificates.
SKIP: {
    skip 'prometheus is not installed (Debian package prometheus)', 4
        unless OCSPClients::have('prometheus') && $scrape;
    my $prom = Prom->start($scrape);
    my ($target, $targets) = (undef, undef);
    OCSPServer::wait_until(30, sub {
        $targets = $prom->api('targets') or return 0;
        ($target) = @{ $targets->{data}{activeTargets} // [] };
        return $target && ($target->{health} // '') eq 'up';
    }, 0.5);
    ok($target && $target->{health} eq 'up' && $target->{scrapeUrl} =~ m{^https://.*/ocsp-status\?format=prometheus\z},
       'Prometheus scrapes https://.../ocsp-status?format=prometheus: up')
        or diag(explain($targets));
    my $q = $prom->api('query?query=ocspstaple_stapled');
    my %got = map { (($_->{metric}{id} // '') => $_->{value}[1]) } @{ $q->{data}{result} // [] };
    is(join(' ', map { "$_=" . ($got{ $labels{$_}{id} } // 'none') } @CERTS),
       'rsa=1 sni2=1 muststaple=0 quote=0', 'its ocspstaple_stapled series are the page\'s')
        or diag(explain($q));
    my $alerts;
    OCSPServer::wait_until(20, sub {
        $alerts = $prom->api('alerts') or return 0;
        return @{ $alerts->{data}{alerts} // [] } >= 2;
    }, 0.5);
    my @active = sort map { "$_->{labels}{alertname} $_->{labels}{id}" } @{ $alerts->{data}{alerts} // [] };
    is("@active", join(' ', sort("OCSPMustStapleNotStapled $labels{muststaple}{id}",
                                 "OCSPStapleExpiringSoon $labels{sni2}{id}")),
       'its alerts (pending: the rules wait minutes before firing): Must-Staple for muststaple, expiring for sni2')
        or diag(explain($alerts));
    my ($ms) = grep { $_->{labels}{alertname} eq 'OCSPMustStapleNotStapled' } @{ $alerts->{data}{alerts} // [] };
    like($ms->{annotations}{summary} // '', qr/^Must-Staple certificate CN=muststaple\.test \(muststaple\.test\) is not stapled/,
         'the Must-Staple alert names the certificate and the virtual host');
    $prom->stop;
}

is(join(' ', $resp->received, $short->received), "@asked",
   'no responder was asked anything meanwhile (1-hour and 1-day responses, no renewal due)');
ok($h->alive, 'server still running');
$h->stop;
$short->stop;
$resp->stop;

# ============================================================================

# A leaf CN=quote.test with an organization holding a double quote and a
# backslash, issued by the PKI's intermediate: { crt, key }.
sub make_quote_leaf {
    my %f = (key => "$w/quote.key", csr => "$w/quote.csr", pem => "$w/quote.pem",
             crt => "$w/quote.crt", ext => "$w/quote.ext");
    write_file($f{ext}, "[ext]\nbasicConstraints = critical,CA:FALSE\n"
        . "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
        . "subjectAltName = DNS:quote.test\n");
    my @steps = (
        [ 'openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', $f{key} ],
        # -subj takes a backslash as an escape: "\\" is one backslash.
        [ 'openssl', 'req', '-new', '-key', $f{key}, '-subj', '/CN=quote.test/O=Say "hi" \\\\ bye',
          '-out', $f{csr} ],
        [ 'openssl', 'x509', '-req', '-in', $f{csr}, '-days', 30, '-sha256',
          '-CA', $pki->crt('intermediate'), '-CAkey', $pki->key('intermediate'),
          '-set_serial', '0x7E57', '-extfile', $f{ext}, '-extensions', 'ext', '-out', $f{pem} ]);
    for my $cmd (@steps) {
        my ($rc, $out) = run(@$cmd);
        BAIL_OUT("@$cmd: $out") if $rc;
    }
    write_file($f{crt}, OCSPServer::slurp($f{pem}) . OCSPServer::slurp($pki->crt('intermediate')));
    return \%f;
}

sub write_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh or die "$file: $!";
}

# run(CMD...): (exit status, output with stderr).
sub run {
    my $out = OCSPTest::run_capture(@_);
    return ($? >> 8, $out);
}

# A label value as the exposition format writes it.
sub escape {
    my ($s) = @_;
    $s =~ s/([\\"])/\\$1/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# The text exposition format, strictly: { help => {name => text}, type =>
# {name => type}, samples => [ { name, labels => {..}, label_text, value } ],
# bad => [lines], grouped => 0|1, sequence => [family per line, collapsed] }.
sub parse {
    my ($text) = @_;
    my %m = (help => {}, type => {}, samples => [], bad => [], sequence => []);
    my (%seen, $last, @stage);
    $m{grouped} = 1;
    for my $line (split /\n/, $text // '') {
        my ($family, $stage);
        if ($line =~ /^# HELP (\w+) (.+)\z/) {
            ($family, $stage) = ($1, 0);
            $m{help}{$1} = $2;
        }
        elsif ($line =~ /^# TYPE (\w+) (\w+)\z/) {
            ($family, $stage) = ($1, 1);
            $m{type}{$1} = $2;
        }
        elsif (my ($name, $label_text, $value) = $line =~ /^(\w+)(\{.*\}) (\S+)\z/) {
            my $l = labels($label_text);
            if (!$l || $value !~ /^-?\d+(?:\.\d+)?\z/) {
                push @{ $m{bad} }, $line;
                next;
            }
            ($family, $stage) = ($name, 2);
            push @{ $m{samples} }, { name => $name, label_text => $label_text, labels => $l,
                                     value => $value + 0, raw => $value };
        }
        else {
            push @{ $m{bad} }, $line;
            next;
        }
        if (!defined $last || $family ne $last) {
            $m{grouped} = 0 if $seen{$family}++;
            push @{ $m{sequence} }, $family;
            @stage = ();
        }
        $m{grouped} = 0 if @stage && $stage < $stage[-1];      # HELP, TYPE, samples
        push @stage, $stage;
        $last = $family;
    }
    $m{grouped} = 0 unless @{ $m{sequence} };
    return \%m;
}

# '{a="x",b="y\"z"}' -> { a => 'x', b => 'y"z' }, or undef when malformed.
sub labels {
    my ($text) = @_;
    my %l;
    my $rest = substr($text, 1, -1);
    while (length $rest) {
        $rest =~ s/\A(\w+)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|\z)// or return undef;
        my ($k, $v) = ($1, $2);
        $v =~ s/\\([\\"n])/$1 eq 'n' ? "\n" : $1/ge;
        return undef if exists $l{$k};
        $l{$k} = $v;
    }
    return \%l;
}

sub samples {
    my ($m, $name) = @_;
    return grep { $_->{name} eq $name } @{ $m->{samples} };
}

# Every family's value for the certificate with id ID: { name => value }.
sub values_of {
    my ($m, $id) = @_;
    return { map { ($_->{name} => $_->{value}) } grep { ($_->{labels}{id} // '') eq $id } @{ $m->{samples} } };
}

# The page as it would be with every certificate stapled: stapled 1.
sub ok_metrics {
    my ($text) = @_;
    $text =~ s/^(ocspstaple_stapled\{.*\}) 0$/$1 1/mg;
    return $text;
}

# conf/ocspstaple-alerts.yml, read with CPAN::Meta::YAML (in Perl's core):
# { alertname => { expr, labels => {..}, annotations => {..} } }.
sub parse_rules {
    my ($text) = @_;
    require CPAN::Meta::YAML;
    my $doc = eval { CPAN::Meta::YAML->read_string($text)->[0] } or return {};
    return { map { ($_->{alert} => $_) } map { @{ $_->{rules} // [] } } @{ $doc->{groups} // [] } };
}

# A rule test for promtool test rules (JSON is YAML): every scraped sample
# as a series held for 30 minutes, each alert evaluated at 25 minutes (past
# any `for`) with the expected certificates (their labels, the rule's labels
# and its annotations with {{ $labels.X }} filled in).
sub rules_test {
    my ($m, $rules, $want) = @_;
    my @series = map { { series => $_->{name} . $_->{label_text}, values => "$_->{raw}+0x30" } }
                 @{ $m->{samples} };
    my @tests;
    for my $alert (sort keys %$want) {
        my $rule = $rules->{$alert} // {};
        my @exp = map {
            my $l = $_;
            my %ann = map {
                (my $v = $rule->{annotations}{$_}) =~ s/\{\{\s*\$labels\.(\w+)\s*\}\}/$l->{$1} \/\/ ''/ge;
                ($_ => $v);
            } keys %{ $rule->{annotations} // {} };
            { exp_labels => { %$l, %{ $rule->{labels} // {} } }, exp_annotations => \%ann };
        } @{ $want->{$alert} };
        push @tests, { eval_time => '25m', alertname => $alert, exp_alerts => \@exp };
    }
    return { rule_files => [ $RULES ], evaluation_interval => '1m',
             tests => [ { interval => '1m', input_series => \@series, alert_rule_test => \@tests } ] };
}

# ===========================================================================
package Prom;
# A Prometheus server on 127.0.0.1 (a free port), a child of the test, its
# data in the work directory; stopped by PID (END too, through OCSPServer).

# start(SCRAPE_CONFIG): README's scrape config with the test's CA, server
# name and target, scraped and evaluated every second with the alert rules.
sub start {
    my ($class, $scrape) = @_;
    my $self = bless { port => OCSPServer::free_port(), dir => "$w/prometheus" }, $class;
    File::Path::make_path($self->{dir});
    (my $cfg = $scrape) =~ s{ca_file: \S+}{ca_file: ${\ $pki->root }};
    $cfg =~ s{server_name: \S+}{server_name: rsa.test};
    $cfg =~ s{targets: \[.*\]}{targets: ['127.0.0.1:${\ $h->port }']};
    main::write_file("$self->{dir}/prometheus.yml", "global:\n  scrape_interval: 1s\n"
        . "  evaluation_interval: 1s\nrule_files:\n  - $RULES\n$cfg");
    my @cmd = ('prometheus', "--config.file=$self->{dir}/prometheus.yml",
               "--storage.tsdb.path=$self->{dir}/data",
               "--web.listen-address=127.0.0.1:$self->{port}", '--log.level=warn');
    my $pid = OCSPServer::spawn("$self->{dir}/out", @cmd);
    $self->{pid} = $pid;
    OCSPServer::track($self);
    OCSPServer::wait_until(30, sub { $self->api('status/buildinfo') }, 0.3)
        or main::diag('prometheus did not answer: ' . OCSPServer::slurp("$self->{dir}/out"));
    return $self;
}

# api(PATH): GET /api/v1/PATH, decoded, or undef.
sub api {
    my ($self, $path) = @_;
    my $out = OCSPTest::run_capture('curl', '-sS', '--max-time', 10,
                                    "http://127.0.0.1:$self->{port}/api/v1/$path");
    my $r = eval { JSON::PP->new->decode($out) };
    return $r && ($r->{status} // '') eq 'success' ? $r : undef;
}

sub stop {
    my ($self) = @_;
    OCSPServer::untrack($self);
    my $pid = delete $self->{pid};
    OCSPServer::stop_child($pid) if $pid;
    return 1;
}
