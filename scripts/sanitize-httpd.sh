#!/bin/bash
# scripts/sanitize-httpd.sh [apache2 arguments]
#
# Runs apache2 (exec: same PID, same arguments) so that it can load a
# mod_ocspstaple built with AddressSanitizer and UndefinedBehaviorSanitizer
# (`make test-asan`): an instrumented module in an uninstrumented httpd needs
# the sanitizer runtime loaded first, i.e. LD_PRELOAD. `make test-asan`
# passes this script to the suite as OCSP_HTTPD, which t/run-tests.sh (for
# Apache::Test) and t/lib/OCSPServer.pm (for the servers tests start
# themselves) run instead of apache2.
#
# Environment:
#   OCSP_SANITIZE_PRELOAD  the runtime(s) to preload (make test-asan: clang's
#                          libclang_rt.asan-ARCH.so); default: the libasan and
#                          libubsan the module is linked against (gcc builds)
#   OCSP_MODULE            the instrumented module (for that default)
#   OCSP_SANITIZE_LOGS     directory of the reports (default: t/logs of this
#                          checkout): sanitizer.PID, for ASAN and UBSAN. `make test-asan`
#                          fails when any was written.
#   OCSP_REAL_HTTPD        the httpd to run (default: apxs's SBINDIR/TARGET)
#
# Leak detection is off for httpd: it frees its pools by exiting, so every
# run would "leak". The unit tests keep it on (they free everything).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${OCSP_SANITIZE_LOGS:-$ROOT/t/logs}
if [ -z "${OCSP_REAL_HTTPD:-}" ]; then
    APXS=${APXS:-$(command -v apxs || echo /usr/bin/apxs)}
    OCSP_REAL_HTTPD=$("$APXS" -q SBINDIR)/$("$APXS" -q TARGET)
fi

preload=${OCSP_SANITIZE_PRELOAD:-}
if [ -z "$preload" ] && [ -n "${OCSP_MODULE:-}" ]; then
    preload=$(ldd "$OCSP_MODULE" | awk '$1 ~ /^lib(asan|ubsan)\.so/ && $3 ~ /^\// { print $3 }' | tr '\n' ' ')
fi
[ -n "$preload" ] || {
    echo "sanitize-httpd: no sanitizer runtime to preload: set OCSP_SANITIZE_PRELOAD" >&2
    exit 1
}

LD_PRELOAD="$preload${LD_PRELOAD:+ $LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$LOGS/sanitizer"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/sanitizer"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
# argv[0] stays this script's name, as the caller ran it: tests recognise
# their httpd processes by it (/proc/PID/cmdline); comm stays "apache2".
exec -a "$0" "$OCSP_REAL_HTTPD" "$@"
