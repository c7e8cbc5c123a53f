/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Start-up (see ocspstaple_refresh.h). The root parent never opens a
 * connection to a responder, never parses a response and never opens a
 * file in the store: it forks a helper that drops to the User/Group
 * privileges first, the way mod_cgid's daemon does, and waits for it,
 * bounded. Why a helper and not the children: on a first start the parent
 * must hold the children back until the round is done (that is what
 * staples the first handshake), and a helper finishing its round while
 * children already serve after a reload needs no coordination at all: it
 * publishes into the shared cache and journal like any renewal.
 *
 * The helper:
 *  1. loads: OCSPStaplingFiles, the store, the fleet cache;
 *  2. fetches, in one concurrent round, what is still missing;
 * and reports each phase on a pipe. The parent waits for phase 2 on a first
 * start, for phase 1 on a reload, never longer than the figures below.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <ap_listen.h>
#include <httpd.h>
#include <http_core.h>
#include <http_log.h>
#include <mpm_common.h>
#include <unixd.h>

#include "ocsp_store.h"
#include "ocspstaple_fleet.h"
#include "ocspstaple_local.h"
#include "ocspstaple_refresh.h"

APLOG_USE_MODULE(ocspstaple);

/* The longest a start waits for the store and OCSPStaplingFiles to be
 * loaded (local disk: thousands per second). */
#define STARTUP_LOAD_WAIT  apr_time_from_sec(5)
/* A first start waits for the fetch round at most the longest
 * OCSPStaplingResponderTimeout plus this (loading included). */
#define STARTUP_FETCH_SLACK apr_time_from_sec(5)
/* Temporary files of interrupted store writes older than this are removed
 * (a write takes milliseconds). */
#define STALE_TEMP_AGE     apr_time_from_sec(60)

#define PHASE_LOADED  'L'
#define PHASE_FETCHED 'F'

/* The longest a helper lives (SIGALRM ends it). What it has not done by
 * then, the children's refresh does. */
#define HELPER_MAX_SECONDS 600

typedef struct {
    int stored, shared, fetched;
    apr_array_header_t *missing;
} startup_counts;

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

/* ------------------------------------------------------ helper: phase 1 */

static void use_store(ocspstaple_state *st, server_rec *s, apr_pool_t *p)
{
    int removed = 0;

    if (access(st->store_dir, W_OK | X_OK) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0032: "
                     "OCSPStaplingStore %s cannot be used by the server user "
                     "(%s); responses are not kept across restarts",
                     st->store_dir, ocspstaple_strerror(errno, p));
        ocspstaple_alert_flip(ocspstaple_server_bits(st->shared),
                              OCSPSTAPLE_SERVER_STORE_OFF, 1);
        return;
    }
    ocsp_store_remove_stale(st->store_dir, apr_time_now(), STALE_TEMP_AGE,
                            &removed, p);
    if (removed) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "OCSPSTAPLE0036: removed %d"
                     " temporary file(s) of interrupted writes from %s",
                     removed, st->store_dir);
    }
}

static void log_loaded(ocspstaple_entry *e, const stapling_record *rec,
                       const char *what, const char *path, apr_pool_t *p)
{
    ap_log_error(APLOG_MARK, rec->verdict.cert_status == OCSP_CERT_REVOKED
                 ? APLOG_CRIT : APLOG_INFO, 0, e->s, "%s: %s: stapling %s %s:"
                 " status %s, expires in %" APR_TIME_T_FMT " s",
                 rec->source == STAPLING_FROM_FILE ? "OCSPSTAPLE0035"
                                                   : "OCSPSTAPLE0030",
                 e->label, what, path,
                 ocsp_cert_status_str(rec->verdict.cert_status),
                 apr_time_sec(rec->verdict.expires - apr_time_now()));
    (void)p;
}

/* Published for every process (not for the fleet: what the disk holds is
 * this server's), unless a process of this server already has a newer one
 * (a reload where the parent stopped waiting before this helper started). */
static int take_if_newer(ocspstaple_state *st, ocspstaple_entry *e,
                         stapling_record *rec, const char *what,
                         const char *path, apr_pool_t *p)
{
    stapling_record local;

    ocspstaple_local_get(e, &local, p);
    if (!ocspstaple_replaces(rec, &local, apr_time_now())) {
        return stapling_record_stapleable(&local, apr_time_now(), 0);
    }
    log_loaded(e, rec, what, path, p);
    ocspstaple_publish(st, e, rec, 0, p);
    return 1;
}

/* OCSPStaplingFile: the first of the vhost's files that verifies for e,
 * served as it is, never fetched, never past its nextUpdate. */
static int load_static(ocspstaple_state *st, ocspstaple_entry *e,
                       apr_pool_t *p)
{
    stapling_record rec;
    int i;

    for (i = 0; e->files && i < e->files->nelts; i++) {
        const char *path = APR_ARRAY_IDX(e->files, i, const char *);

        if (ocspstaple_load_file(&rec, e->cert, path, 0, NULL, p)
            == APR_SUCCESS) {
            e->slot->file = (apr_uint32_t)i + 1;
            rec.next_attempt = rec.verdict.expires;
            rec.origin = e->origin;
            return take_if_newer(st, e, &rec, "OCSPStaplingFile", path, p);
        }
    }
    if (e->files && e->files->nelts && e->urls->nelts == 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0060: %s: no "
                     "OCSPStaplingFile of server %s is a valid, unexpired "
                     "response for it and it has no OCSP URL: not stapling",
                     e->label, e->s->server_hostname);
    }
    return 0;
}

static int load_stored(ocspstaple_state *st, ocspstaple_entry *e,
                       apr_pool_t *p)
{
    const char *path = ocsp_store_path(st->store_dir, e->id,
                                       OCSPSTAPLE_ID_LEN, p);
    refresh_window w = ocspstaple_renew_window(e->s);
    stapling_record rec;
    const char *why = NULL;
    apr_status_t rv;

    /* Never through a symlink: the directory belongs to the server user,
     * and what it points to must not become our response. */
    rv = ocspstaple_load_file(&rec, e->cert, path, OCSP_FILE_NOFOLLOW, &why,
                              p);
    if (rv == APR_ENOENT) {
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0031: %s:"
                     " stored response %s ignored: %s", e->label, path, why);
        return 0;
    }
    rec.source = STAPLING_FROM_STORE;
    rec.origin = e->origin;
    rec.next_attempt = refresh_renew_at(&rec.verdict, rec.fetched_at, &w,
                                        refresh_random());
    return take_if_newer(st, e, &rec, "the stored response", path, p);
}

static int load_fleet(ocspstaple_state *st, ocspstaple_entry *e,
                      apr_pool_t *p)
{
    stapling_record rec;

    if (!st->fleet
        || !ocspstaple_fleet_read(e, st->fleet, st->shared, &rec, p)) {
        return 0;
    }
    ocspstaple_publish(st, e, &rec, 0, p);
    return stapling_record_stapleable(&rec, apr_time_now(), 0);
}

static void load_phase(ocspstaple_state *st, server_rec *s,
                       startup_counts *c, apr_pool_t *ptemp)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_pool_t *p;
    int i;

    if (st->store_dir) {
        use_store(st, s, ptemp);
    }
    apr_pool_create(&p, ptemp);
    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        if (load_static(st, e, p)) {
            c->stored++;
        }
        else if (st->store_dir && load_stored(st, e, p)) {
            c->stored++;
        }
        else if (load_fleet(st, e, p)) {
            c->shared++;
        }
        else if (e->urls->nelts) {
            APR_ARRAY_PUSH(c->missing, ocspstaple_entry *) = e;
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
}

/* ------------------------------------------------- helper: at the end */

/* A cache that silently drops records (shmcb evicts the oldest when a
 * subcache is full) would make processes fetch for themselves: say so. */
static void check_capacity(ocspstaple_state *st, server_rec *s,
                           const apr_array_header_t *entries, apr_pool_t *p)
{
    stapling_record rec;
    int i, missing = 0, published = 0;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        if (e->slot->version) {
            published++;
            missing += stapling_cache_get(st->local, s, e->id,
                                          OCSPSTAPLE_ID_LEN, &rec, p)
                       != APR_SUCCESS;
        }
    }
    if (missing) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0033: the %s "
                     "cache kept only %d of %d responses: make it larger, "
                     "e.g. OCSPStaplingCache shmcb:<path>(%d)",
                     stapling_cache_provider_name(st->local),
                     published - missing, published,
                     2 * entries->nelts * OCSPSTAPLE_CACHE_PER_CERT);
    }
}

static int file_in_use(const char *path, const apr_array_header_t *entries)
{
    int i;

    for (i = 0; i < entries->nelts; i++) {
        const char *used = APR_ARRAY_IDX(entries, i, ocspstaple_entry *)
                               ->static_file;

        if (used && !strcmp(used, path)) {
            return 1;
        }
    }
    return 0;
}

/* An OCSPStaplingFile that verifies for none of its server's certificates
 * (another certificate's, expired, not signed by the issuer...). */
static void warn_unused_files(server_rec *s,
                              const apr_array_header_t *entries)
{
    for (; s; s = s->next) {
        const apr_array_header_t *files = ocspstaple_files(s);
        int i;

        for (i = 0; ocspstaple_is_enabled(s) && files && i < files->nelts;
             i++) {
            const char *path = APR_ARRAY_IDX(files, i, const char *);

            if (!file_in_use(path, entries)) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0063: "
                             "OCSPStaplingFile %s of server %s is a valid, "
                             "unexpired response for none of its "
                             "certificates (or the server user cannot read "
                             "it); not used", path, s->server_hostname);
            }
        }
    }
}

static void finish(ocspstaple_state *st, server_rec *s,
                   const startup_counts *c, apr_pool_t *p)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_time_t now = apr_time_now();
    int i;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "OCSPSTAPLE0012: %d "
                 "certificate(s) to staple: %d from the store or a file, %d "
                 "from the shared cache, %d fetched, %d without a response "
                 "yet; cache %s, store %s",
                 entries->nelts, c->stored, c->shared, c->fetched,
                 c->missing->nelts - c->fetched,
                 st->fleet ? stapling_cache_provider_name(st->fleet)
                           : stapling_cache_provider_name(st->local),
                 st->store_dir ? st->store_dir : "off");
    check_capacity(st, s, entries, p);
    warn_unused_files(s, entries);
    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_alerts(APR_ARRAY_IDX(entries, i, ocspstaple_entry *), now,
                          p);
    }
}

/* --------------------------------------------------------------- helper */

static void report(int fd, char phase)
{
    ssize_t n;

    do {
        n = write(fd, &phase, 1);
    } while (n < 0 && errno == EINTR);
}

/* The parent's handlers (restart, stop) mean nothing here: the parent ends
 * the helper with a signal when a new generation starts. */
static void reset_signals(void)
{
    static const int sigs[] = { SIGTERM, SIGHUP, SIGUSR1, SIGINT, SIGWINCH,
                                SIGALRM };
    sigset_t none;
    apr_size_t i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        signal(sigs[i], SIG_DFL);
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static apr_status_t reattach(ocspstaple_state *st, server_rec *s,
                             apr_pool_t *p)
{
    stapling_cache_child_init(st->local, s, p);
    if (st->fleet) {
        stapling_cache_child_init(st->fleet, s, p);
    }
    return apr_global_mutex_child_init(&st->fetch_mutex,
               apr_global_mutex_lockfile(st->fetch_mutex), p);
}

/* The hook is mod_unixd's setgid/initgroups/setuid (and chroot); an MPM
 * or module may run others or none, so the result is checked: a helper
 * that is still root does nothing. */
static int drop_privileges(server_rec *s, apr_pool_t *p)
{
    int was_root = geteuid() == 0;

    if (ap_run_drop_privileges(p, s) != OK
        || (was_root && (geteuid() == 0 || getuid() == 0))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0019: the start-"
                     "up helper cannot drop its privileges to User/Group: "
                     "not loading or fetching anything as root");
        return 0;
    }
#ifdef PR_SET_PDEATHSIG
    /* Set after setuid, which clears it: a helper never outlives a parent
     * that died abnormally (its round would hold nothing up, but nobody
     * would stop it either). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) {
        return 0;
    }
#endif
    return 1;
}

static void helper_run(ocspstaple_state *st, server_rec *s, int fd,
                       apr_pool_t *p)
{
    startup_counts c;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    c.missing = apr_array_make(p, 16, sizeof(ocspstaple_entry *));
    if (!drop_privileges(s, p)) {
        return;
    }
    if ((rv = reattach(st, s, p)) != APR_SUCCESS
        || (rv = apr_global_mutex_lock(st->fetch_mutex)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0019: the start-"
                     "up helper cannot use the %s mutex (%s); the children "
                     "will fetch", OCSPSTAPLE_FETCH_MUTEX,
                     ocspstaple_strerror(rv, p));
        return;
    }
    ocspstaple_take_changes(st, p);   /* children may have been first */
    load_phase(st, s, &c, p);
    report(fd, PHASE_LOADED);
    if (c.missing->nelts) {
        c.fetched = ocspstaple_update(st, c.missing, p);
    }
    report(fd, PHASE_FETCHED);
    finish(st, s, &c, p);
    apr_global_mutex_unlock(st->fetch_mutex);
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

    int how = wait_for(fd, first ? PHASE_FETCHED : PHASE_LOADED,
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
        apr_pool_t *p;

        close(fds[0]);
        reset_signals();
        /* The ports stay the parent's alone; and however long a round
         * takes, the helper ends: the children take over. */
        ap_close_listeners();
        alarm(HELPER_MAX_SECONDS);
        apr_pool_create(&p, pconf);
        helper_run(st, s, fds[1], p);
        /* No pool cleanup may run here: they belong to the parent (shared
         * memory, mutexes, the listeners). */
        _exit(0);
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
