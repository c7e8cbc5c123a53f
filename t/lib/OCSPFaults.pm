package OCSPFaults;
# The fault-injection cases of t/40-fault-responder.t and t/41-fault-renew.t:
# what each misbehaving responder mode of scripts/ocsp_responder.pl must
# lead to, and helpers to read the module's per-fetch log lines.
#
# Every mode has a leaf f-MODE (CN=f-MODE.test) in a PKI made with
# OCSPServer::setup(pki_sets => ['faults']) (scripts/mkpki.sh ... faults),
# whose AIA URL is http://127.0.0.1:PORT/MODE.
#
# kind:
#   fail     a failed update (OCSPSTAPLE0003, the reason matching `reason`):
#            never stapled, whatever OCSPStaplingReturnResponderErrors says
#   error    the responder's own error status (`status`, RFC 6960's name;
#            s_client prints it in lower case): OCSPSTAPLE0003 "responder answered STATUS"; stapled only
#            with OCSPStaplingReturnResponderErrors on and only while no
#            good response is at hand
#   unknown  a verified response with status unknown: OCSPSTAPLE0005, a
#            failure for the schedule; stapled only with
#            OCSPStaplingReturnResponderErrors on and only while no good
#            response is at hand
#   nonext   a valid response without nextUpdate: OCSPSTAPLE0002, stapled
#            (valid for an hour from its thisUpdate)
#   revoked  not a fault: the CA's verified word, OCSPSTAPLE0004 (crit),
#            stapled, also in place of a good response
use strict;
use warnings FATAL => 'all';

use Exporter 'import';
our @EXPORT_OK = qw(%CASE @MODES have_faketime update_lines request_count
                    received_count settled_counts);

our %CASE = (
    hang        => { kind => 'fail', reason => qr/Operation timed out after \d+ milliseconds with 0 bytes received/ },
    close       => { kind => 'fail', reason => qr/Empty reply from server/i },
    # (with nothing received yet, as on a busy machine: "with 0 bytes received")
    slow        => { kind => 'fail', reason => qr/Operation timed out after \d+ milliseconds with \d+ (?:out of \d+ )?bytes received/ },
    http500     => { kind => 'fail', reason => qr/HTTP status 500\b/ },
    http404     => { kind => 'fail', reason => qr/HTTP status 404\b/ },
    redirect    => { kind => 'fail', reason => qr/HTTP status 302\b/ },
    wrongtype   => { kind => 'fail', reason => qr{content type 'text/html', expected application/ocsp-response} },
    empty       => { kind => 'fail', reason => qr/empty response body/ },
    garbage     => { kind => 'fail', reason => qr/not a DER OCSP response/ },
    truncated   => { kind => 'fail', reason => qr/not a DER OCSP response/ },
    huge        => { kind => 'fail', reason => qr/response larger than 65536 bytes/ },
    hugestream  => { kind => 'fail', reason => qr/response larger than 65536 bytes/ },
    otherserial => { kind => 'fail', reason => qr/no response for this certificate/ },
    wrongsigner => { kind => 'fail', reason => qr/signature not made by the issuer or a responder it authorized/ },
    noeku       => { kind => 'fail', reason => qr/signature not made by the issuer or a responder it authorized: .*(?i:missing ocspsigning usage)/ },
    expired     => { kind => 'fail', reason => qr/expired: nextUpdate was \d+ s ago/, faketime => 1 },
    future      => { kind => 'fail', reason => qr/thisUpdate is \d+ s in the future/, faketime => 1 },
    multi       => { kind => 'fail', reason => qr/2 single responses, expected exactly one/ },
    nonext      => { kind => 'nonext' },
    unknown     => { kind => 'unknown' },
    revoked     => { kind => 'revoked' },
    trylater         => { kind => 'error', status => 'tryLater' },
    internalerror    => { kind => 'error', status => 'internalError' },
    malformedrequest => { kind => 'error', status => 'malformedRequest' },
    sigrequired      => { kind => 'error', status => 'sigRequired' },
    unauthorized     => { kind => 'error', status => 'unauthorized' },
);
for my $c (values %CASE) {
    $c->{reason} //= qr/responder answered \Q$c->{status}\E/ if $c->{kind} eq 'error';
}

# In the order of scripts/mkpki.sh's FAULT_MODES.
our @MODES = qw(hang close slow http500 http404 redirect wrongtype empty
                garbage truncated huge hugestream otherserial wrongsigner
                noeku expired future nonext unknown trylater internalerror
                malformedrequest sigrequired unauthorized multi revoked);

die "OCSPFaults: \@MODES and %CASE differ\n"
    unless join(' ', sort @MODES) eq join(' ', sort keys %CASE);

sub have_faketime {
    return scalar grep { -x "$_/faketime" } split /:/, $ENV{PATH} // '';
}

# The module's update lines (one per fetch: OCSPSTAPLE0002 ok, 0003 failed,
# 0004 revoked, 0005 unknown) about leaf NAME in LINES.
sub update_lines {
    my ($name, @lines) = @_;
    return grep { /OCSPSTAPLE000[2-5]: cert "CN=\Q$name\E\.test"/ } @lines;
}

# Requests the responder (an OCSPServer::Responder) logged for PATH (the
# 6th field of its log lines): answered (or, for hang and close, given up).
sub request_count {
    my ($resp, $path) = @_;
    return _path_count($resp->log_file, $path);
}

# Requests the responder has read for PATH, answered or not (its received
# log, written before the answer).
sub received_count {
    my ($resp, $path) = @_;
    return _path_count($resp->received_file, $path);
}

sub _path_count {
    my ($file, $path) = @_;
    return _path_counts($file)->{$path} // 0;
}

# { PATH => number of lines } of a responder log.
sub _path_counts {
    my ($file) = @_;
    my %n;
    open my $fh, '<', $file or return \%n;
    while (my $line = <$fh>) {           # not $_: callers' loops alias it
        $n{(split ' ', $line)[5] // ''}++;
    }
    return \%n;
}

# settled_counts(TIMEOUT, RESP, CASES): CASES is a list of
# [KEY, HTTPD, NAME, PATH, OFFSET]: the module's update lines about leaf NAME
# in HTTPD's error log after OFFSET, and the responder's requests for PATH.
# A fetch writes its line when it ends, the responder logs a request once it
# has answered it (hang and close: when the client has gone), so while a
# fetch is under way the two differ, either way. Polls (bounded) until each
# case has been seen settled: the responder has answered every request it
# read for PATH, and the lines (read before and after the responder's logs)
# are as many as it answered. Returns { KEY => { lines => [...], answered =>
# N, received => N, settled => 0|1 } }: the settled view of each case, or
# its last one.
sub settled_counts {
    my ($timeout, $resp, @cases) = @_;
    my %view;
    my $lines = sub {            # update lines per case, one read per server
        my %log;
        return { map {
            my ($key, $h, $name, $path, $off) = @$_;
            my $l = $log{"$h/" . ($off // 0)} //= [ $h->log_lines(qr/OCSPSTAPLE000[2-5]:/, $off) ];
            ($key => [ update_lines($name, @$l) ]);
        } @_ };
    };
    OCSPServer::wait_until($timeout, sub {
        my @open = grep { !($view{$_->[0]} && $view{$_->[0]}{settled}) } @cases;
        my $before = $lines->(@open);
        my $a = _path_counts($resp->log_file);
        my $r = _path_counts($resp->received_file);
        my %answered = map { $_->[0] => $a->{$_->[3]} // 0 } @open;
        my %received = map { $_->[0] => $r->{$_->[3]} // 0 } @open;
        my $after = $lines->(@open);
        for my $c (@open) {
            my $k = $c->[0];
            my @l = @{ $after->{$k} };
            $view{$k} = { lines => \@l, answered => $answered{$k}, received => $received{$k},
                          settled => $received{$k} == $answered{$k}
                                     && @l == @{ $before->{$k} } && @l == $answered{$k} ? 1 : 0 };
        }
        return !grep { !$view{$_->[0]}{settled} } @cases;
    }, 0.25);
    return \%view;
}

1;
