/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The start-up helper (see ocspstaple_helper.h): the only start-up code
 * that reads responses, files in the store or the network, and it runs
 * with the User/Group privileges. It holds the fetch mutex throughout:
 *  1. loads OCSPStaplingFiles, the store, the fleet cache;
 *  2. fetches, in one concurrent round, what is still missing;
 * and reports each phase to the parent on a pipe.
 */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <apr_strings.h>
#include <ap_listen.h>
#include <httpd.h>
#include <http_log.h>
#include <mpm_common.h>

#include "ocsp_store.h"
#include "ocspstaple_fleet.h"
#include "ocspstaple_helper.h"
#include "ocspstaple_local.h"
#include "ocspstaple_refresh.h"

APLOG_USE_MODULE(ocspstaple);

/* Temporary files of interrupted store writes older than this are removed
 * (a write takes milliseconds). */
#define STALE_TEMP_AGE     apr_time_from_sec(60)
/* The longest a helper lives (SIGALRM ends it). What it has not done by
 * then, the children's refresh does. */
#define HELPER_MAX_SECONDS 600

typedef struct {
    int stored, shared, fetched;
    apr_array_header_t *missing;
} startup_counts;

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
    report(fd, OCSPSTAPLE_PHASE_LOADED);
    if (c.missing->nelts) {
        c.fetched = ocspstaple_update(st, c.missing, p);
    }
    report(fd, OCSPSTAPLE_PHASE_FETCHED);
    finish(st, s, &c, p);
    apr_global_mutex_unlock(st->fetch_mutex);
}

void ocspstaple_helper_main(ocspstaple_state *st, server_rec *s, int fd,
                            apr_pool_t *pconf)
{
    apr_pool_t *p;

    reset_signals();
    /* The ports stay the parent's alone; and however long a round takes,
     * the helper ends: the children take over. */
    ap_close_listeners();
    alarm(HELPER_MAX_SECONDS);
    apr_pool_create(&p, pconf);
    helper_run(st, s, fd, p);
    ocsp_fetch_connections_close();   /* the round's, kept for nothing now */
    /* No pool cleanup may run here: they belong to the parent (shared
     * memory, mutexes). */
    _exit(0);
}
