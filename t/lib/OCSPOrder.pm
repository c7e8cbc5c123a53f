package OCSPOrder;
# Helpers for the tests of which response wins (t/47-older-response.t,
# t/48-unknown-renew.t, t/49-expiry-backoff.t, t/55-fleet-forged.t,
# t/56-no-next-update.t): responses signed beforehand with `openssl ocsp`
# (older ones, other statuses), replayed by scripts/ocsp_responder.pl's
# replay/<name> mode; what a DER response says; the responder's request log
# as records; the switch file; forged fleet records; backoff checks.
#
#   my $der = OCSPOrder::sign_response($pki, 'rsa', status => 'good',
#                                      faketime => '-10m', validity => ['-ndays', 1]);
#   OCSPOrder::replay_file($pki, 'old-good', $der);   # .../replay/old-good
#   my $i = OCSPOrder::response_info($der);   # this_update, next_update, ...
#   my @req = OCSPOrder::requests($resp, path => '/switch/unknown');
#   OCSPOrder::switch_on($file);  OCSPOrder::switch_off($file);
#   my @bad = OCSPOrder::backoff_violations(\@times, base => 5, ...);
#   OCSPOrder::trylater_record();  OCSPOrder::der_record($der, ...);
use strict;
use warnings FATAL => 'all';

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Time::HiRes qw(time);

use OCSPServer ();
use OCSPCacheServer ();
use OCSPTest ();

# ---- responses signed beforehand --------------------------------------------

# sign_response(PKI, LEAF, status => good|revoked|unknown (default good),
#               faketime => '-10m' (openssl's clock offset, Debian faketime),
#               validity => ['-ndays', 1] (default; [] for no nextUpdate)):
# the DER of a response to LEAF's ready-made request (PKI/requests/LEAF.der),
# signed by the issuer (without its certificate), as the responder's good
# mode does, but with the status given whatever PKI/index.txt says.
# Dies when openssl fails.
sub sign_response {
    my ($pki, $leaf, %o) = @_;
    my $status = $o{status} // 'good';
    my $dir = tempdir('ocsp-order-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $index = "$dir/index.txt";
    my ($line) = grep { m{\t/CN=\Q$leaf\E\.test$} }
                 split /\n/, OCSPServer::slurp($pki->dir . '/index.txt');
    die "sign_response: $leaf is not in the PKI's index\n" unless $line;
    my @f = split /\t/, $line, -1;
    if ($status eq 'unknown') {
        $line = undef;                      # an index without it
    }
    elsif ($status eq 'revoked') {
        my @t = gmtime(time - 3600);
        $f[0] = 'R';
        $f[2] = sprintf('%02d%02d%02d%02d%02d%02dZ,keyCompromise',
                        $t[5] % 100, $t[4] + 1, @t[3, 2, 1, 0]);
        $line = join "\t", @f;
    }
    else {
        die "sign_response: status $status?\n" unless $status eq 'good';
        $f[0] = 'V';
        $f[2] = '';
        $line = join "\t", @f;
    }
    _write($index, defined $line ? "$line\n" : '');
    _write("$index.attr", "unique_subject = no\n");
    my @pre;
    if (defined $o{faketime}) {
        my ($ft) = grep { -x "$_/faketime" } split /:/, $ENV{PATH} // '';
        die "sign_response: faketime is not installed\n" unless $ft;
        @pre = ("$ft/faketime", '-f', $o{faketime});
    }
    my $p = $pki->dir;
    my $out = "$dir/resp.der";
    my @cmd = (@pre, 'openssl', 'ocsp', '-index', $index,
               '-CA', "$p/intermediate.crt", '-rsigner', "$p/intermediate.crt",
               '-rkey', "$p/intermediate.key", '-reqin', "$p/requests/$leaf.der",
               '-respout', $out, @{ $o{validity} // ['-ndays', 1] },
               '-resp_no_certs');
    my $text = OCSPTest::run_capture(@cmd);
    my $der = OCSPServer::slurp($out);
    die "sign_response: openssl ocsp failed: @cmd\n$text" unless length $der;
    return $der;
}

# replay_file(PKI, NAME, DER): what the responder's replay/NAME mode answers
# from now on (written atomically: a request never sees half a file).
sub replay_file {
    my ($pki, $name, $der) = @_;
    my $dir = $pki->dir . '/replay';
    make_path($dir);
    _write("$dir/$name.der.tmp", $der);
    rename "$dir/$name.der.tmp", "$dir/$name.der" or die "rename: $!\n";
    return "$dir/$name.der";
}

# response_info(DER): what `openssl ocsp -resp_text` reads in it:
# { this_update, next_update (undef: none), produced_at (epoch seconds),
#   cert_status, resp_status }.
sub response_info {
    my ($der) = @_;
    my $dir = tempdir('ocsp-order-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    _write("$dir/r.der", $der);
    my $out = OCSPTest::run_capture('openssl', 'ocsp', '-respin', "$dir/r.der",
                                    '-resp_text', '-noverify');
    my %i = (text => $out);
    ($i{resp_status}) = $out =~ /OCSP Response Status: (\w+)/;
    ($i{cert_status}) = $out =~ /Cert Status: (\w+)/;
    $i{this_update} = OCSPServer::openssl_time($1) if $out =~ /This Update: (.+?)\s*$/m;
    $i{next_update} = OCSPServer::openssl_time($1) if $out =~ /Next Update: (.+?)\s*$/m;
    $i{produced_at} = OCSPServer::openssl_time($1) if $out =~ /Produced At: (.+?)\s*$/m;
    return \%i;
}

# ---- the responder ----------------------------------------------------------

# requests(RESPONDER, path => '/switch/unknown', mode => 'unknown',
#          since => EPOCH): the requests it logged, as
# { time, mode, status, path }, oldest first. Its log has whole seconds.
sub requests {
    my ($resp, %o) = @_;
    my @r;
    for (split /\n/, OCSPServer::slurp($resp->log_file)) {
        my @f = split ' ';
        next unless @f >= 6;
        my %r = (time => $f[0], mode => $f[1], status => $f[2], path => $f[5]);
        next if defined $o{path} && $r{path} ne $o{path};
        next if defined $o{mode} && $r{mode} ne $o{mode};
        next if defined $o{since} && $r{time} < int $o{since};
        push @r, \%r;
    }
    return @r;
}

# switch_on(FILE) / switch_off(FILE): the responder's --switch file; its
# switch/MODE URLs answer MODE while it exists, good otherwise.
sub switch_on {
    my ($file) = @_;
    _write($file, '');
    return time;
}
sub switch_off {
    my ($file) = @_;
    unlink $file;
    die "switch_off: $file is still there\n" if -e $file;
    return time;
}

# ---- backoff ----------------------------------------------------------------

# backoff_violations(\@TIMES, base => 5, factor => 2, max => 600,
#                    jitter => 0.25, slack => 2): the gaps between
# consecutive request times that do not fit the module's backoff
# (README "Refresh policy"): the n-th gap should be
# min(max, base * factor^(n-1)) * (1 + random(0..jitter)). Each gap may be
# `slack` seconds longer (the background refresh looks once a second; the
# responder logs whole seconds) and 1 s shorter (whole seconds). Returns
# one text per gap that does not fit (empty: all fit).
sub backoff_violations {
    my ($times, %o) = @_;
    my ($base, $factor, $max) = ($o{base} // 5, $o{factor} // 2, $o{max} // 600);
    my ($jitter, $slack) = ($o{jitter} // 0.25, $o{slack} // 2);
    my @bad;
    my $want = $base;
    for my $i (1 .. $#$times) {
        my $gap = $times->[$i] - $times->[$i - 1];
        my $w = $want < $max ? $want : $max;
        my ($lo, $hi) = ($w - 1, $w * (1 + $jitter) + $slack);
        push @bad, sprintf('gap %d: %.1f s, expected %.1f to %.1f s', $i, $gap, $lo, $hi)
            if $gap < $lo || $gap > $hi;
        $want *= $factor;
    }
    return @bad;
}

# gaps(\@TIMES): the differences, for diagnostics.
sub gaps {
    my ($t) = @_;
    return map { $t->[$_] - $t->[$_ - 1] } 1 .. $#$t;
}

# ---- forged fleet records ---------------------------------------------------
# In stapling_record.c's encoding (OCSPCacheServer::record, which follows
# stapling_record_encode field by field: "OSR1", seven int64 times in
# microseconds, respStatus, certStatus, revokeReason + 1, source, failures,
# lengths, DER, error text, origin), with a current fetch time: as if
# another server had just fetched it.

# trylater_record(): a responder's tryLater answer (OCSPResponse with status
# 3 and no bytes), fetched just now by "another server".
# Options: failures => N (0), next_attempt => EPOCH (now + 300), origin.
sub trylater_record {
    my (%o) = @_;
    my $now = time;
    return OCSPCacheServer::record(
        der => pack('C*', 0x30, 3, 0x0a, 1, 3),
        resp_status => 3, cert_status => 3,       # OCSP_CERT_NONE
        this_update => 0, next_update => 0, expires => $now + 600,
        fetched_at => $now, attempted_at => $now,
        next_attempt => $o{next_attempt} // $now + 300,
        failures => $o{failures} // 0,
        origin => $o{origin} // 'forger.invalid/1');
}

# der_record(DER, INFO (response_info of DER), cert_status => 0,
#            failures => N, next_attempt => EPOCH, origin): a record around
# a genuine response with its own validity, fetched just now.
sub der_record {
    my ($der, $info, %o) = @_;
    my $now = time;
    return OCSPCacheServer::record(
        der => $der, this_update => $info->{this_update},
        next_update => $info->{next_update} // 0,
        expires => $info->{next_update} // $now + 3600,
        cert_status => $o{cert_status} // 0,
        fetched_at => $now, attempted_at => $now,
        next_attempt => $o{next_attempt} // $now + 1800,
        failures => $o{failures} // 0,
        origin => $o{origin} // 'forger.invalid/1');
}

# ---- small helpers ------------------------------------------------------------

# fmt(EPOCH, [T0]): "hh:mm:ss" (and "+N s" after T0), for diagnostics.
sub fmt {
    my ($t, $t0) = @_;
    return 'undef' unless defined $t;
    my @g = gmtime $t;
    my $s = sprintf '%02d:%02d:%02d', @g[2, 1, 0];
    $s .= sprintf(' (+%.1f s)', $t - $t0) if defined $t0;
    return $s;
}

sub _write {
    my ($file, $data) = @_;
    open my $fh, '>:raw', $file or die "$file: $!\n";
    print $fh $data;
    close $fh or die "$file: $!\n";
}

1;
