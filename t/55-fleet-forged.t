# Forged records in a fleet's shared cache never take a stapled response
# away: two servers share a private Redis and staple the same good
# response; then a record is written straight into Redis under the
# certificate's key (OCSPCacheServer::record: stapling_record.c's encoding),
# "fetched" just now by "another server", with a plan like a fleet member's
# (next try in 5 s):
#  (a) a responder's tryLater answer (an error answer, which nobody signed);
#  (b) a genuine, correctly signed, still valid good response that is
#      OLDER (earlier thisUpdate) than the stapled one, signed beforehand.
# One round each, with fresh servers and cache. The servers look into the
# cache when their renewal is due (responses of 60 s, renewed 50 s before
# their nextUpdate: 5 to 10 s after the fetch; the second server follows
# 2 to 8 s later: both have looked 19 s after the fetch). Until 20 s after
# the fetch the responder hangs (switch/hang, 15 s timeout), so that
# neither server can write anything over the forged record before the other
# one has looked; then it answers good again, in time for the renewals
# (a fetch that hung ends at the latest 35 s after the first fetch, its
# retry 5 s later). Until 8 s past the first response's nextUpdate:
#  - every handshake with either server staples a good response: the one
#    stapled before, or a newer one the server fetched itself; never
#    nothing, never the forged record's, never an expired one;
#  - both servers renew before that nextUpdate (a forged record, whatever
#    plan it carries, does not keep a server from renewing);
#  - each server logs the forged record once (OCSPSTAPLE0023 "ignoring ...
#    error answer / older ..."), not at every look.
# About 2.5 minutes.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);
use OCSPCacheServer;
use OCSPFaults qw(have_faketime);
use OCSPOrder;

plan tests => 2 * 10;
OCSPServer::deadline(280);
my $T0 = time;
my $HANG = 20;        # the responder hangs until this long after the first fetch

my ($w, $pki, $resp) = setup();
my $switch = "$w/switch";
my $fmt = sub { OCSPOrder::fmt($_[0], $T0) };
my $IGNORED = qr/OCSPSTAPLE00\d\d: .*(?:ignor|older|error answer)/i;

# The older response, signed before any server runs (ten minutes in the
# past with faketime), valid for a day.
my $older = OCSPOrder::sign_response($pki, 'rsa', status => 'good',
                                     have_faketime() ? (faketime => '-10m') : ());
my $older_info = OCSPOrder::response_info($older);
wait_until(5, sub { time >= $older_info->{this_update} + 2 }, 0.1);

$resp->start(nmin => 1, switch => $switch);
my $redis = OCSPCacheServer::Redis->new(dir => $w);
$redis->start;
my $key = $redis->key_for($pki->cert_id('rsa'));

my %forge = (
    'a tryLater answer' => sub {
        OCSPOrder::trylater_record(next_attempt => time + 5);
    },
    'an older good response' => sub {
        OCSPOrder::der_record($older, $older_info, next_attempt => time + 5);
    },
);

my $n = 0;
for my $what ('a tryLater answer', 'an older good response') {
    $n++;
    note("---- round $n: $what");
    OCSPOrder::switch_off($switch);
    $redis->flush;
    my @h = map {
        my $name = "r$n$_";
        OCSPCacheServer::httpd($redis, dir => $w, pki => $pki, name => $name,
            global => [ 'OCSPStaplingRenewWindow 50s', 'OCSPStaplingResponderTimeout 15' ],
            vhosts => [ { name => 'rsa.test', cert => 'rsa',
                          extra => 'OCSPStaplingForceURL ' . $pki->url("switch/hang/$name") } ]);
    } qw(a b);
    my $started = 0;
    $started += $_->start ? 1 : 0 for @h;
    my @first = map { handshake($_->port, 'rsa.test') } @h;
    my $tu = $first[0]{this_update} // 0;
    ok($started == 2 && !grep({ !$_->{stapled} || ($_->{cert_status} // '') ne 'good'
                                || ($_->{this_update} // -1) != $tu } @first)
       && $tu > $older_info->{this_update},
       "round $n: both servers staple the same good response")
        or diag(join "\n", map { describe($_) } @first);
    my $expires = $first[0]{next_update} // time + 60;
    my @offset = map { $_->log_size } @h;

    # The responder hangs for a while; the forged record goes in.
    OCSPOrder::switch_on($switch);
    my $t_forge = time;
    $redis->set($key, $forge{$what}->(), 3600);
    my $rec = OCSPCacheServer::parse_record($redis->get($key));
    ok($rec && $rec->{origin} eq 'forger.invalid/1', "round $n: $what is in Redis under $key");
    note(sprintf 'round %d: response %s to %s, forged at %s', $n, $fmt->($tu),
                 $fmt->($expires), $fmt->($t_forge));

    # Handshakes with both servers, alternating, until 8 s past the first
    # response's nextUpdate; the responder answers again $HANG s after the
    # first fetch.
    my (@seen, $i, $t_good);
    wait_until($expires + 8 - time, sub {
        $t_good //= OCSPOrder::switch_off($switch) if time >= $tu + $HANG;
        my $k = $i++ % 2;
        my $r = handshake($h[$k]->port, 'rsa.test');
        $r->{server} = $h[$k]{name};
        push @seen, $r;
        return time >= $expires + 8;
    }, 0.3);
    $t_good //= OCSPOrder::switch_off($switch);

    my @dropped = grep { !$_->{stapled} } @seen;
    my @per_server = map { my $s = $_->{name}; scalar grep { $_->{server} eq $s } @seen } @h;
    ok(@seen >= 20 && !@dropped,   # fewer on a busy machine
       sprintf('round %d: all %d handshakes (%s) stapled a response', $n, scalar @seen,
               join(' and ', @per_server)))
        or diag(scalar(@dropped) . " without a staple, the first ones:\n",
                join "\n", map { "$_->{server} at " . $fmt->($_->{time}) . ': ' . describe($_) }
                           @dropped[0 .. ($#dropped < 3 ? $#dropped : 3)]);
    my @bad = grep { $_->{stapled} && (($_->{cert_status} // '') ne 'good'
                                       || ($_->{this_update} // 0) < $tu
                                       || ($_->{next_update} // 0) <= $_->{time}) } @seen;
    ok(!@bad, "round $n: every staple was good, unexpired, and never older than the one before")
        or diag(join "\n", map { "$_->{server} at " . $fmt->($_->{time}) . ': ' . describe($_) }
                           @bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    my @older_seen = grep { ($_->{this_update} // 0) == $older_info->{this_update} } @seen;
    ok(!@older_seen, "round $n: never the forged record's older response")
        or diag(scalar(@older_seen) . ' handshakes stapled it');

    for my $k (0, 1) {
        my $s = $h[$k];
        my ($renewed) = grep { $_->{server} eq $s->{name} && $_->{stapled}
                               && ($_->{this_update} // 0) > $tu } @seen;
        ok($renewed && $renewed->{time} < $expires,
           sprintf('round %d: server %s renewed before the nextUpdate (%s; forged at %s, '
                   . 'responder good from %s, nextUpdate %s)', $n, $s->{name},
                   $renewed ? 'stapled from ' . $fmt->($renewed->{time}) : 'never',
                   $fmt->($t_forge), $fmt->($t_good), $fmt->($expires)))
            or diag(OCSPServer::slurp($resp->log_file),
                    $s->log_lines(qr/OCSPSTAPLE00(?:0[2-5]|2\d)/, $offset[$k]));
    }
    for my $k (0, 1) {
        my $s = $h[$k];
        my @lines = grep { /cert "CN=rsa\.test"/ } $s->log_lines($IGNORED, $offset[$k]);
        ok(@lines == 1, sprintf('round %d: server %s logged the forged record once (%d lines)',
                                $n, $s->{name}, scalar @lines))
            or diag(@lines ? @lines : $s->log_lines(qr/OCSPSTAPLE/, $offset[$k]));
    }
    my @crash = map { $_->log_lines(qr/exit signal|AH00052|Segmentation|AddressSanitizer|runtime error/) } @h;
    my @cache = map { $_->log_lines(qr/OCSPSTAPLE002[45]/) } @h;
    ok(!@crash && !@cache, "round $n: no crash, and a forged record is not a cache failure "
                           . '(no OCSPSTAPLE0024/0025)')
        or diag(@crash, @cache);
    OCSPCacheServer::stop_httpd($_) for @h;
}

$redis->stop;
$resp->stop;
note(sprintf 'total %.1f s', time - $T0);
