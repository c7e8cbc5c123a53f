#!/bin/bash
# t/run-tests.sh [prove options] [test files]
#
# Runs mod_ocspstaple's Apache::Test suite; `make test` calls it after
# building .libs/mod_ocspstaple.so and t/unit/test_ocsp_fetch.
#
#  1. As root (CI): create the system user ocspstaple-test and give it t/.
#     Apache::Test and most tests refuse root, so the steps below run as
#     that user (the AS_TEST_USER prefix) and so does every test but the
#     production-mode ones: t/root/*.t run as root and start Apache as root
#     with `User ocspstaple-test`, the way production runs (t/bin/runtest,
#     which prove runs each test with, picks the user). Run by anybody else,
#     the script and every test run as that user; t/root/*.t then skip.
#  2. Build the test PKI (scripts/mkpki.sh t/pki PORT) and start the loopback
#     OCSP responder (scripts/ocsp_responder.pl); stop it on any exit.
#  3. Write t/conf/modules.conf (the LoadModule lines Apache::Test inherits;
#     Debian has no httpd.conf), configure and start httpd on 127.0.0.1, run
#     the tests with ONE prove (its "Result: PASS|FAIL" is the last line
#     printed), stop httpd; exit with the tests' status.
#
# Environment passed to the .t files: OCSP_PORT, OCSP_PKI (absolute),
# OCSP_RESPONDER_LOG, OCSP_RESPONDER_RECEIVED (the responder's log of
# requests read, before their answer), OCSP_ROOT (checkout), OCSP_MODULE (the .so),
# OCSP_HTTPD_MODULES (directory of the httpd modules), OCSP_TEST_USER (the
# unprivileged user), HOME, APACHE_TEST_NO_STICKY_PREFERENCES.
# Arguments go to prove: `t/run-tests.sh -v t/10-good.t` runs one test
# verbosely (the server still starts with the whole configuration);
# `t/run-tests.sh t/root/10-privileges.t` one production-mode test (as root).
# Every run starts from scratch (old logs, PKI and generated config removed).
set -eu
set -o pipefail

TEST_USER=ocspstaple-test
T=$(cd "$(dirname "$0")" && pwd)        # .../t
ROOT=$(dirname "$T")                    # the checkout
MODULE=${OCSP_MODULE:-$ROOT/.libs/mod_ocspstaple.so}
APXS=${APXS:-$(command -v apxs || echo /usr/bin/apxs)}
MODDIR=$("$APXS" -q LIBEXECDIR)         # /usr/lib/apache2/modules on Debian

die() { echo "run-tests: $*" >&2; exit 1; }

# ---- 1. root runs only what needs root ------------------------------------
# AS_TEST_USER: the prefix that runs a command as the test user, empty when
# we are not root. setpriv (util-linux) execs the command in place: no PAM
# session and no extra process, so `$!` is the command itself and a signal
# reaches it at once, and the environment is passed on unchanged.
AS_TEST_USER=()
if [ "$(id -u)" -eq 0 ]; then
    if ! id "$TEST_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$TEST_USER"
    fi
    AS_TEST_USER=(setpriv --reuid="$(id -u "$TEST_USER")"
                  --regid="$(id -g "$TEST_USER")" --init-groups --)
    chown -R "$TEST_USER:" "$T"
    # The test user must reach the checkout (and the module) to read them.
    dir=$ROOT
    while [ "$dir" != / ]; do
        "${AS_TEST_USER[@]}" test -x "$dir" ||
            die "$TEST_USER cannot enter $dir: make the checkout world-readable"
        dir=$(dirname "$dir")
    done
    [ ! -f "$MODULE" ] || "${AS_TEST_USER[@]}" test -r "$MODULE" ||
        die "$TEST_USER cannot read $MODULE"
fi
# For t/bin/runtest and the t/root/*.t tests (their servers' User).
export OCSP_TEST_USER=$TEST_USER

# own FILE...: files root made for the test user's steps become its own.
own() { [ ${#AS_TEST_USER[@]} -eq 0 ] || chown -R "$TEST_USER:" "$@"; }

cd "$ROOT"
[ -f "$MODULE" ] || die "$MODULE not found: run 'make' first"
[ -x "${OCSP_UNIT_DIR:-$T/unit}/test_ocsp_fetch" ] ||
    echo "run-tests: warning: t/unit/test_ocsp_fetch missing ('make unit'); t/00-unit.t will fail" >&2

# Apache::Test must not write preferences into a home directory.
export APACHE_TEST_NO_STICKY_PREFERENCES=1
export HOME=$T/logs/home

# ---- cleanup, registered before anything is started ---------------------
# Everything we start is stopped by PID on any exit, also on INT/TERM. Long
# steps run in the background with `wait`, so a signal is handled at once
# (bash defers traps while a foreground command runs).
RESPONDER_PID=""
CHILD_PID=""
PROVE_PID=""
HTTPD_PIDFILE=$T/logs/httpd.pid

# httpd's PID when the pidfile names a running apache2 (a stale pidfile must
# not make us signal somebody else's process).
httpd_pid() {
    local hp
    hp=$(cat "$HTTPD_PIDFILE" 2>/dev/null || true)
    [ -n "$hp" ] && [ "$(cat "/proc/$hp/comm" 2>/dev/null)" = apache2 ] && echo "$hp"
    return 0
}

# Stops the httpd Apache::Test started (what `t/TEST -stop-httpd` does,
# without reconfiguring first).
stop_httpd() {
    local hp
    hp=$(httpd_pid)
    [ -n "$hp" ] || return 0
    kill -TERM "$hp" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$hp" 2>/dev/null || return 0; sleep 0.1; done
    echo "run-tests: httpd (pid $hp) did not stop in 10 s; sending KILL" >&2
    kill -KILL "$hp" 2>/dev/null || true
}

# run CMD...: runs CMD in the background and waits for it; returns its status.
run() {
    "$@" &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

# Stops what is left of prove's process group: prove stops at a test's
# bail-out, but the other tests it runs in parallel would go on, unattended
# (and in the way of the next run). TERM lets each test's END stop the
# servers it started.
stop_tests() {
    [ -n "$PROVE_PID" ] || return 0
    kill -TERM -- "-$PROVE_PID" 2>/dev/null || return 0
    for _ in $(seq 150); do
        kill -0 -- "-$PROVE_PID" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "run-tests: tests still running 15 s after TERM; sending KILL" >&2
    kill -KILL -- "-$PROVE_PID" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$? hp
    trap - EXIT INT TERM
    # Signal everything first, then wait: the whole stop takes well under 2 s.
    [ -z "$CHILD_PID" ] || kill -TERM "$CHILD_PID" 2>/dev/null || true
    hp=$(httpd_pid)
    [ -z "$hp" ] || kill -TERM "$hp" 2>/dev/null || true
    [ -z "$RESPONDER_PID" ] || kill -TERM "$RESPONDER_PID" 2>/dev/null || true
    [ -z "$CHILD_PID" ] || wait "$CHILD_PID" 2>/dev/null || true
    [ -z "$RESPONDER_PID" ] || wait "$RESPONDER_PID" 2>/dev/null || true
    stop_tests
    stop_httpd
    # What the t/root/*.t tests left (work dirs made by root) goes back to the
    # test user, so that a later run as that user can empty t/logs.
    own "$T/logs" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of an earlier (possibly aborted) run: a running httpd of ours,
# generated config, logs, PKI.
stop_httpd
rm -rf "$T/logs" "$T/pki" "$T/TEST" "$T/conf/httpd.conf" "$T/conf/extra.conf" \
    "$T/conf/apache_test_config.pm" "$T/conf/modules.conf" "$T/htdocs/index.html"
mkdir -p "$T/logs" "$HOME"
own "$T/logs"

# ---- 2. PKI and responder -----------------------------------------------
free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                      Proto => "tcp", Listen => 1) or die "$!\n";
        print $s->sockport, "\n";'
}

OCSP_PORT=$(free_port)
run "${AS_TEST_USER[@]}" "$ROOT/scripts/mkpki.sh" "$T/pki" "$OCSP_PORT" >/dev/null
OCSP_PKI=$T/pki
OCSP_RESPONDER_LOG=$T/logs/responder.log
OCSP_RESPONDER_RECEIVED=$T/logs/responder.received.log
: > "$OCSP_RESPONDER_LOG"
: > "$OCSP_RESPONDER_RECEIVED"
own "$OCSP_RESPONDER_LOG" "$OCSP_RESPONDER_RECEIVED"
"${AS_TEST_USER[@]}" perl "$ROOT/scripts/ocsp_responder.pl" --port "$OCSP_PORT" --pki "$OCSP_PKI" \
    --log "$OCSP_RESPONDER_LOG" --received "$OCSP_RESPONDER_RECEIVED" \
    --pidfile "$T/logs/responder.pid" \
    2>> "$T/logs/responder.stderr" &
RESPONDER_PID=$!
for _ in $(seq 100); do
    [ -s "$T/logs/responder.pid" ] && break
    kill -0 "$RESPONDER_PID" 2>/dev/null || die "OCSP responder died: $(cat "$T/logs/responder.stderr")"
    sleep 0.1
done
[ -s "$T/logs/responder.pid" ] || die "OCSP responder did not start on 127.0.0.1:$OCSP_PORT"
export OCSP_PORT OCSP_PKI OCSP_RESPONDER_LOG OCSP_RESPONDER_RECEIVED OCSP_ROOT=$ROOT OCSP_MODULE=$MODULE \
    OCSP_HTTPD_MODULES=$MODDIR

# ---- 3. httpd config, server, tests -------------------------------------
# What Apache::Test inherits. authz_core/authz_host/mime/dir/alias serve its
# generated config; socache_shmcb backs mod_ssl and our default cache.
{
    echo "# generated by t/run-tests.sh"
    for m in mpm_event authz_core authz_host mime dir alias socache_shmcb ssl; do
        echo "LoadModule ${m}_module $MODDIR/mod_$m.so"
    done
    echo "LoadModule ocspstaple_module $MODULE"
} > "$T/conf/modules.conf"
own "$T/conf/modules.conf"

# Configure (t/TEST.PL binds every Listen to 127.0.0.1) and start httpd.
# Apache::Test works from the top directory, the one holding t/.
# OCSP_HTTPD (make test-asan): an httpd to run instead of apxs's, namely
# scripts/sanitize-httpd.sh, which preloads the sanitizer runtimes.
run "${AS_TEST_USER[@]}" perl t/TEST.PL -apxs "$APXS" ${OCSP_HTTPD:+-httpd "$OCSP_HTTPD"} \
    -httpd_conf "$T/conf/modules.conf" -port select -start-httpd > "$T/logs/start.log" 2>&1 ||
    { cat "$T/logs/start.log" >&2; tail -n 20 "$T/logs/error_log" >&2 2>/dev/null
      die "httpd did not start (see t/logs/start.log, t/logs/error_log)"; }

# ONE prove (t/bin/prove-suite: prove with the suite's schedule), as
# whoever runs this script, gets our arguments; without a test file among
# them, every t/*.t and t/root/*.t. OCSP_TEST_JOBS (8) scenarios run at once:
# most of them wait on response lifetimes, not on the CPU; 01-first runs
# alone first (it must make the first handshake) and zz-errorlog alone last.
# It runs each test through t/bin/runtest: t/root/*.t as root, the others as
# the test user (with t/lib on PERL5LIB and our environment).
PROVE_ARGS=("$@")
have_file=""
for a in "$@"; do case $a in *.t) have_file=1 ;; esac; done
if [ -z "$have_file" ]; then
    shopt -s nullglob
    PROVE_ARGS+=(t/*.t t/root/*.t)
    shopt -u nullglob
fi
rc=0
# prove leads a process group of its own (setsid execs it in place: $! is
# prove), so that stop_tests can reach every test it started.
setsid t/bin/prove-suite -j "${OCSP_TEST_JOBS:-8}" --timer --exec t/bin/runtest \
    "${PROVE_ARGS[@]}" &
PROVE_PID=$!
wait "$PROVE_PID" || rc=$?
stop_tests
PROVE_PID=""

stop_httpd
exit "$rc"
