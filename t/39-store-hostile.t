# Hostile entries in the store: where a certificate's store file
# (<40 hex certificate id>.der) should be, there is a FIFO (rsa), a symlink
# to a VALID response for that very certificate (ecdsa) or a directory
# (offvhost). Store files must be regular files opened without following
# links or blocking (O_NOFOLLOW|O_NONBLOCK): each of the three is rejected
# with one OCSPSTAPLE0031 warning per start naming its path, start and
# graceful restart never hang on them (the responder is down, so nothing can
# be fetched meanwhile), the symlinked response is never stapled, nothing is
# written through the link, and an intact file beside them (sni2) still
# staples.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA ();
use File::Basename qw(basename);
use POSIX ();
use Time::HiRes qw(time sleep);
use OCSPServer qw(setup handshake describe wait_until);

my %kind = (rsa => 'a FIFO', ecdsa => 'a symlink to a valid response',
            offvhost => 'a directory');
my @hostile = sort keys %kind;
my @certs = (@hostile, 'sni2');            # sni2: an intact store file

plan tests => 22;
OCSPServer::deadline(200);

# The responder is down and refuses connections at once, so a start that is
# not held up by the store serves in about a second (5.x s under the
# sanitizer build with the suite in parallel). A start-up stuck on a store
# entry would take at least the responder timeout (the first start waits up
# to timeout + 2 s for the start-up helper), so $BOUND is half of it.
my $TIMEOUT = 30;                           # OCSPStaplingResponderTimeout
my $BOUND = $TIMEOUT / 2;

my ($w, $pki, $resp) = setup();
$resp->start;
my $h = OCSPServer::Httpd->new(dir => $w, pki => $pki, store => "$w/store",
    global => [ "OCSPStaplingResponderTimeout $TIMEOUT" ],
    vhosts => [ map { { name => "$_.test", cert => $_ } } @certs ]);
my %file = map { $_ => "$w/store/" . $pki->cert_id($_) . '.der' } @certs;
ok($h->start, 'first start, responder up: fills the store') or BAIL_OUT('no server');
ok(wait_until(15, sub { !grep { !-s $file{$_} } @certs }),
   'a store file for each of the 4 certificates') or BAIL_OUT('no store files');
$h->stop;
$resp->stop;

# ---- the hostile entries ----------------------------------------------------
unlink $file{rsa} or die "$file{rsa}: $!";
POSIX::mkfifo($file{rsa}, 0600) or die "mkfifo $file{rsa}: $!";
my $target = "$w/elsewhere/" . basename($file{ecdsa});
mkdir "$w/elsewhere" or die "$w/elsewhere: $!";
rename $file{ecdsa}, $target or die "rename: $!";
symlink $target, $file{ecdsa} or die "symlink: $!";
my $target_sum = Digest::SHA->new(256)->addfile($target)->hexdigest;
unlink $file{offvhost} or die "$file{offvhost}: $!";
mkdir $file{offvhost}, 0700 or die "mkdir $file{offvhost}: $!";

# A module that opens the FIFO without O_NONBLOCK blocks until a writer
# comes: if a start hung, be that writer (open and close, never blocking
# ourselves) so the rest of the test still runs. True if somebody was
# blocked reading it.
sub release_fifo {
    sysopen(my $fh, $file{rsa}, POSIX::O_WRONLY() | POSIX::O_NONBLOCK()) or return 0;
    close $fh;
    return 1;
}

# timed(WHAT, SECS, OFFSET): SECS from start/graceful must be true and under
# $BOUND; if not, release a hung reader and wait for the server anyway.
sub timed {
    my ($what, $secs, $offset) = @_;
    my $ok = ok($secs && $secs < $BOUND, sprintf('%s returns and serves within %d s '
        . '(took %s), responder down', $what, $BOUND, $secs ? sprintf('%.1f s', $secs) : 'longer'));
    return if $ok;
    diag('a process was blocked opening the FIFO ' . $file{rsa} . '; released it')
        if release_fifo();
    $h->_await_generation($offset, 60) or diag("and the server still does not serve");
}

# after(WHAT, OFFSET): the checks after a start or graceful restart.
sub after {
    my ($what, $offset) = @_;
    # The summary ends the start-up's store and fetch work.
    $h->wait_for_log(qr/OCSPSTAPLE0012: /, 15, $offset)
        or diag("$what: no OCSPSTAPLE0012 summary within 15 s");
    my @link = map { handshake($h->port, 'ecdsa.test') } 1 .. 3;
    my @linked = grep { $_->{stapled} } @link;
    ok(!@linked, "$what: ecdsa.test not stapled (the symlink was not followed; 3 handshakes)")
        or diag(join "\n", map { describe($_) } @linked);
    my @none = grep { $_->{stapled} } map { handshake($h->port, "$_.test") } qw(rsa offvhost);
    ok(!@none, "$what: rsa.test (FIFO) and offvhost.test (directory) not stapled")
        or diag(join "\n", map { describe($_) } @none);
    my $good = handshake($h->port, 'sni2.test');
    ok($good->{stapled} && ($good->{cert_status} // '') eq 'good',
       "$what: sni2.test stapled from its intact store file") or diag(describe($good));
}

# count(OFFSET): OCSPSTAPLE0031 warnings per hostile certificate after OFFSET.
sub counts {
    my ($offset) = @_;
    return map {
        my $c = $_;
        $c => scalar $h->log_lines(
            qr/\[ocspstaple:warn\].*OCSPSTAPLE0031: cert "CN=\Q$c\E\.test".*\Q$file{$c}\E/, $offset)
    } @hostile;
}

sub once_each {
    my ($what, $offset) = @_;
    my %n = counts($offset);
    for my $c (@hostile) {
        is($n{$c}, 1, "$what: $kind{$c} at ${c}'s store file logged once (OCSPSTAPLE0031, its path)")
            or diag($h->log_lines(qr/OCSPSTAPLE003\d: cert "CN=\Q$c\E\.test"/, $offset));
    }
}

# ---- start, then graceful restart, responder down ---------------------------
my $off = $h->log_size;
timed('apache2 -k start', $h->start(timeout => $BOUND), $off);
after('start', $off);

my $goff = $h->log_size;
once_each('start', $off);          # lines between the start and the graceful
timed('graceful restart', $h->graceful(timeout => $BOUND), $goff);
after('graceful restart', $goff);
once_each('graceful restart', $goff);

# ---- the entries themselves are untouched -----------------------------------
ok(-p $file{rsa}, 'the FIFO is still a FIFO');
ok(-d $file{offvhost} && !-l $file{offvhost}, 'the directory is still a directory');
ok(-l $file{ecdsa} && readlink($file{ecdsa}) eq $target, 'the symlink is still the same symlink');
is(Digest::SHA->new(256)->addfile($target)->hexdigest, $target_sum,
   'nothing was written through the symlink (target checksum unchanged)');
my @else = grep { $_ ne $target } glob "$w/elsewhere/*";
my @tmp = glob "$w/store/*.der.*";
ok(!@else && !@tmp, 'no file created beside the target or in the store')
    or diag("@else @tmp");
ok($h->alive && !$h->log_lines(qr/exit signal|AH00052|AH00060|segfault/i, $off),
   'server running, no child crashed')
    or diag($h->log_lines(qr/exit signal|AH00052|AH00060|segfault/i, $off));
$h->stop;
