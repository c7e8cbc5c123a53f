# Runs last: the whole run left no [error], [crit], [alert] or [emerg] line in
# the error log except the ones the scenarios provoke on purpose. Anything
# else (an error for a no-AIA certificate, a failed first URL of a
# certificate whose second URL works, ...) is noise that admins would chase.
# And every line of the module starts with its OCSPSTAPLEnnnn tag, so admins
# can grep and alert on it.
use strict;
use warnings FATAL => 'all';
use Apache::Test qw(-withtestmore);
use OCSPTest;

my @expected = (
    qr/\[ocspstaple:error\].*OCSPSTAPLE0003\b.*CN=wrongsigner\.test/,   # 22-wrongsigner.t
    qr/\[ocspstaple:error\].*OCSPSTAPLE0003\b.*CN=wrongserial\.test/,   # 23-wrongserial.t
    qr/\[ocspstaple:crit\].*OCSPSTAPLE0004\b.*CN=revoked\.test/,        # 20-revoked.t
);

plan tests => 2;

my @bad = grep {
    my $line = $_;
    !grep { $line =~ $_ } @expected
} error_log_lines(qr/^\[[^\]]*\] \[(?:\w+:)?(?:error|crit|alert|emerg)\]/);
ok(!@bad, 'no unexpected [error]/[crit]/[alert]/[emerg] in t/logs/error_log')
    or diag("unexpected:\n", @bad);

# "[date] [ocspstaple:level] [pid N:tid N] [client ...] OCSPSTAPLE0002: ..."
# (at debug level httpd's default format puts "file.c(123): " first)
my @untagged = grep { !/^\[[^\]]*\] \[ocspstaple:\w+\] \[pid [^\]]*\] (?:\S+\.c\(\d+\): )?(?:\[client [^\]]*\] )?OCSPSTAPLE\d{4}: / }
    error_log_lines(qr/\[ocspstaple:\w+\]/);
ok(!@untagged, 'every module log message starts with its OCSPSTAPLEnnnn: tag')
    or diag("not starting with the tag:\n", @untagged);
