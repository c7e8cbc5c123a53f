/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Start-up, the root parent's side (see ocspstaple_refresh.h): it never
 * opens a connection to a responder, never parses a response and never
 * opens a file in the store: it forks a helper (ocspstaple_helper.c) that
 * drops to the User/Group privileges first, the way mod_cgid's daemon
 * does, and waits for it, bounded. Why a helper and not the children: on a first start the parent
 * must hold the children back until the round is done (that is what
 * staples the first handshake), and a helper finishing its round while
 * children already serve after a reload needs no coordination at all: it
 * publishes into the shared cache and journal like any renewal.
 *
 * The parent waits for the helper's phase 2 (fetched) on a first start,
 * for phase 1 (loaded) on a reload, never longer than the figures below.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_thread_proc.h>
#include <httpd.h>
#include <http_core.h>
#include <http_log.h>
#include <unixd.h>

#include "ocsp_store.h"
#include "ocspstaple_helper.h"
#include "ocspstaple_refresh.h"

APLOG_USE_MODULE(ocspstaple);

/* The longest a start waits for the store and OCSPStaplingFiles to be
 * loaded (local disk: thousands per second). */
#define STARTUP_LOAD_WAIT  apr_time_from_sec(5)
/* A first start waits for the fetch round at most the longest
 * OCSPStaplingResponderTimeout plus this (loading included). */
#define STARTUP_FETCH_SLACK apr_time_from_sec(5)
/* ------------------------------------------------------------ store (root) */

const char *ocspstaple_prepare_store(server_rec *s, apr_pool_t *pconf)
{
    const char *dir = ocspstaple_store_dir(s, pconf);
    int created = 0;
    apr_status_t rv;

    if (!dir) {
        return NULL;
    }
    /* Created for the server user when missing; an existing directory is
     * the administrator's and never changed (the helper checks that the
     * server user can write it). */
    rv = ocsp_store_make_dir(dir, geteuid() == 0, ap_unixd_config.user_id,
                             ap_unixd_config.group_id, &created, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0032: "
                     "OCSPStaplingStore %s cannot be used (%s); responses are "
                     "not kept across restarts", dir,
                     ocspstaple_strerror(rv, pconf));
        return NULL;
    }
    if (created) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "OCSPSTAPLE0037: created "
                     "the OCSPStaplingStore directory %s", dir);
    }
    return dir;
}

/* ----------------------------------------------------- parent: the wait */

typedef struct {
    apr_proc_t proc;
    int        running;
} helper_proc;

static void helper_maintenance(int reason, void *data, int status)
{
    helper_proc *h = data;

    (void)status;
    if (reason == APR_OC_REASON_DEATH || reason == APR_OC_REASON_LOST) {
        h->running = 0;
        apr_proc_other_child_unregister(h);
    }
}

/* A helper still at work when its generation ends (a quick second reload,
 * a stop) is ended: the next generation has its own. Nothing it leaves is
 * half-written (the store is written by rename). */
static apr_status_t helper_stop(void *data)
{
    helper_proc *h = data;

    /* Not waited for: a helper stuck in the kernel (a hung NFS store) must
     * not hold up the reload; the MPM reaps it when it is gone. */
    if (h->running) {
        kill(h->proc.pid, SIGKILL);
        h->running = waitpid(h->proc.pid, NULL, WNOHANG) != h->proc.pid;
    }
    return APR_SUCCESS;
}

enum { WAIT_DONE, WAIT_TIMEOUT, WAIT_ENDED };

/* Waits until the helper reports phase, ends, or deadline passes. */
static int wait_for(int fd, char phase, apr_time_t deadline)
{
    char got;

    for (;;) {
        apr_interval_time_t left = deadline - apr_time_now();
        struct pollfd pfd = { fd, POLLIN, 0 };
        int n;

        if (left <= 0) {
            return WAIT_TIMEOUT;
        }
        n = poll(&pfd, 1, (int)apr_time_as_msec(left) + 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            return WAIT_TIMEOUT;
        }
        if (n < 0 || read(fd, &got, 1) != 1) {
            return WAIT_ENDED;
        }
        if (got == phase) {
            return WAIT_DONE;
        }
    }
}

/* Generation 0 is the preflight pass (ocsp_prime skips it), 1 the first
 * real start; every restart, graceful or not, adds one. */
static int is_first_start(void)
{
    return ap_state_query(AP_SQ_CONFIG_GEN) <= 1;
}

static void wait_for_helper(ocspstaple_state *st, server_rec *s,
                            helper_proc *h, int fd)
{
    int first = is_first_start();
    apr_time_t start = apr_time_now();
    apr_interval_time_t bound = first
        ? ocspstaple_registry_max_timeout(st->registry) + STARTUP_FETCH_SLACK
        : STARTUP_LOAD_WAIT;

    int how = wait_for(fd, first ? OCSPSTAPLE_PHASE_FETCHED : OCSPSTAPLE_PHASE_LOADED,
                       start + bound);

    if (how == WAIT_ENDED) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0046: the "
                     "start-up helper (pid %" APR_PID_T_FMT ") ended before "
                     "it had %s (see above); the children fetch what is "
                     "missing", h->proc.pid,
                     first ? "fetched" : "loaded the store");
    }
    else if (how == WAIT_TIMEOUT) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0017: the "
                     "start-up helper (pid %" APR_PID_T_FMT ") is still %s "
                     "after %" APR_TIME_T_FMT " ms: starting without waiting "
                     "any longer; it goes on in the background", h->proc.pid,
                     first ? "fetching" : "loading the store",
                     apr_time_as_msec(apr_time_now() - start));
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "OCSPSTAPLE0016: waited %"
                     APR_TIME_T_FMT " ms for the start-up helper (pid %"
                     APR_PID_T_FMT ") to %s", apr_time_as_msec(
                         apr_time_now() - start), h->proc.pid,
                     first ? "fetch" : "load the store");
    }
}

void ocspstaple_startup(ocspstaple_state *st, server_rec *s,
                        apr_pool_t *pconf, apr_pool_t *ptemp)
{
    helper_proc *h = apr_pcalloc(pconf, sizeof(*h));
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        fds[0] = fds[1] = -1;
    }
    if (fds[0] < 0 || (pid = fork()) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0019: cannot "
                     "start the start-up helper (%s); the children will fetch",
                     ocspstaple_strerror(errno, ptemp));
        if (fds[0] >= 0) {
            close(fds[0]);
            close(fds[1]);
        }
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        ocspstaple_helper_main(st, s, fds[1], pconf);   /* never returns */
    }
    close(fds[1]);
    h->proc.pid = pid;
    h->running = 1;
    apr_proc_other_child_register(&h->proc, helper_maintenance, h, NULL,
                                  pconf);
    apr_pool_cleanup_register(pconf, h, helper_stop, apr_pool_cleanup_null);
    wait_for_helper(st, s, h, fds[0]);
    close(fds[0]);
}
