/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * When fetches happen. A handshake never waits on a responder while a valid
 * response exists:
 *  - startup (parent, before any child): responses from the store first,
 *    then one concurrent round for whatever is still missing;
 *  - background (a mod_watchdog singleton in one child, worker privileges):
 *    every second, one round for the certificates whose planned fetch is
 *    due, the plan being shared through the cache so that it survives the
 *    child and is the same for every process;
 *  - cold miss (a handshake with nothing valid to staple): one fetch, only
 *    if nobody else is fetching (try-lock) and the plan says a fetch is due.
 */

#include <unistd.h>

#include <apr_atomic.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>
#include <http_main.h>
#include <mod_watchdog.h>

#include "ocsp_store.h"
#include "ocspstaple_private.h"

APLOG_USE_MODULE(ocspstaple);

#define WATCHDOG_NAME     "_ocspstaple_"
#define WATCHDOG_INTERVAL apr_time_from_sec(1)

/* ------------------------------------------------------------------ store */

apr_status_t ocspstaple_load_file(stapling_record *rec, const ocsp_cert *cert,
                                  const char *path, const char **perr,
                                  apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    memset(rec, 0, sizeof(*rec));
    rec->source = STAPLING_FROM_FILE;
    rv = ocsp_file_read((unsigned char **)&rec->der, &rec->der_len,
                        &rec->fetched_at, path, OCSP_MAX_RESPONSE_SIZE, p);
    if (rv != APR_SUCCESS) {
        if (perr) {
            *perr = ocspstaple_strerror(rv, p);
        }
        return rv;
    }
    if (rec->fetched_at > now) {
        rec->fetched_at = now;
    }
    return ocsp_response_verify(&rec->verdict, cert, rec->der, rec->der_len,
                                now, perr, p);
}

static int load_stored(ocspstaple_state *st, ocspstaple_entry *e,
                       apr_time_t now, apr_pool_t *p)
{
    const char *path = ocsp_store_path(st->store_dir, e->id,
                                       OCSPSTAPLE_ID_LEN, p);
    refresh_window w = ocspstaple_renew_window(e->s);
    stapling_record rec;
    const char *why = NULL;
    apr_status_t rv;

    rv = ocspstaple_load_file(&rec, e->cert, path, &why, p);
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
    ap_log_error(APLOG_MARK, rec.verdict.cert_status == OCSP_CERT_REVOKED
                 ? APLOG_CRIT : APLOG_INFO, 0, e->s, "OCSPSTAPLE0030: %s: "
                 "stapling the stored response %s: status %s, expires in %"
                 APR_TIME_T_FMT " s", e->label, path,
                 ocsp_cert_status_str(rec.verdict.cert_status),
                 apr_time_sec(rec.verdict.expires - now));
    ocspstaple_publish(st, e, &rec, p);
    return 1;
}

/* OCSPStaplingFile: served as it is, never fetched, never past nextUpdate. */
static int load_static(ocspstaple_state *st, ocspstaple_entry *e,
                       apr_time_t now, apr_pool_t *p)
{
    stapling_record rec;
    const char *why = NULL;

    if (ocspstaple_load_file(&rec, e->cert, e->static_file, &why, p)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0060: %s: "
                     "OCSPStaplingFile %s cannot be used: %s", e->label,
                     e->static_file, why);
        return 0;
    }
    rec.next_attempt = rec.verdict.expires;
    rec.origin = e->origin;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, e->s, "OCSPSTAPLE0030: %s: "
                 "stapling OCSPStaplingFile %s: status %s, expires in %"
                 APR_TIME_T_FMT " s", e->label, e->static_file,
                 ocsp_cert_status_str(rec.verdict.cert_status),
                 apr_time_sec(rec.verdict.expires - now));
    ocspstaple_publish(st, e, &rec, p);
    return 1;
}

/* A provider that silently drops records (shmcb evicts the oldest when a
 * subcache is full) would make processes fetch for themselves: say so. */
static void check_capacity(ocspstaple_state *st, server_rec *s,
                           const apr_array_header_t *entries, apr_pool_t *p)
{
    stapling_record rec;
    int i, missing = 0;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        missing += stapling_cache_get(st->cache, s, e->id, OCSPSTAPLE_ID_LEN,
                                      &rec, p) != APR_SUCCESS;
    }
    if (missing) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0033: the %s "
                     "cache kept only %d of %d responses: make it larger, "
                     "e.g. OCSPStaplingCache shmcb:<path>(%d)",
                     stapling_cache_provider_name(st->cache),
                     entries->nelts - missing, entries->nelts,
                     2 * entries->nelts * OCSPSTAPLE_CACHE_PER_CERT);
    }
}

/* A fleet: another server sharing the cache may hold a verified response. */
static int from_shared_cache(ocspstaple_state *st, ocspstaple_entry *e,
                             apr_time_t now, apr_pool_t *p)
{
    stapling_record rec;

    if (!ocspstaple_entry_sync(e, st->cache, 0, p)) {
        return 0;
    }
    ocspstaple_entry_get_local(e, &rec, p);
    return stapling_record_stapleable(&rec, now, 0);
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
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0060: "
                             "OCSPStaplingFile %s of server %s is a valid, "
                             "unexpired response for none of its "
                             "certificates; not used", path,
                             s->server_hostname);
            }
        }
    }
}

/* Alert bits, shared by all processes (OCSPSTAPLE_ALERTS counter): each
 * situation is logged once per episode by whichever process sees it first. */
#define ALERT_MUST_STAPLE   1
#define ALERT_FILE_EXPIRING 2
#define ALERT_FILE_EXPIRED  4
/* An OCSPStaplingFile is announced as expiring this long before, or a
 * quarter of its validity before when it lives shorter. */
#define FILE_EXPIRY_WARNING apr_time_from_sec(24 * 3600)

static int alert_flip(ocspstaple_entry *e, apr_uint32_t bit, int condition)
{
    return ocspstaple_alert_flip(ocspstaple_alert_bits(e), bit, condition);
}

static void file_alerts(ocspstaple_entry *e, const stapling_record *rec,
                        apr_time_t now)
{
    apr_interval_time_t quarter = (rec->verdict.expires
                                   - rec->verdict.this_update) / 4;
    apr_interval_time_t warn_before = quarter < FILE_EXPIRY_WARNING
                                      ? quarter : FILE_EXPIRY_WARNING;

    if (alert_flip(e, ALERT_FILE_EXPIRING, now < rec->verdict.expires
                   && now >= rec->verdict.expires - warn_before)
        == OCSPSTAPLE_ALERT_RAISED) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0061: %s:"
                     " OCSPStaplingFile %s expires in %" APR_TIME_T_FMT " s:"
                     " replace it with a fresh response", e->label,
                     e->static_file, apr_time_sec(rec->verdict.expires - now));
    }
    if (alert_flip(e, ALERT_FILE_EXPIRED, now >= rec->verdict.expires)
        == OCSPSTAPLE_ALERT_RAISED) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0062: %s: "
                     "OCSPStaplingFile %s has expired: not stapling it any "
                     "more", e->label, e->static_file);
    }
}

void ocspstaple_alerts(ocspstaple_state *st, apr_pool_t *p)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_time_t now = apr_time_now();
    stapling_record rec;
    int i;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);
        int ok;

        ocspstaple_entry_get_local(e, &rec, p);
        ok = stapling_record_stapleable(&rec, now, 0);
        if (e->static_file) {
            file_alerts(e, &rec, now);
        }
        if (!e->must_staple) {
            continue;
        }
        switch (alert_flip(e, ALERT_MUST_STAPLE, !ok)) {
        case OCSPSTAPLE_ALERT_RAISED:
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, e->s, "OCSPSTAPLE0051: %s:"
                         " Must-Staple certificate without a valid OCSP "
                         "response to staple: clients will refuse this site "
                         "(%s)", e->label, rec.error ? rec.error
                         : "no response yet");
            break;
        case OCSPSTAPLE_ALERT_CLEARED:
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, e->s, "OCSPSTAPLE0052: "
                         "%s: Must-Staple certificate stapled again",
                         e->label);
            break;
        }
    }
}

void ocspstaple_startup(ocspstaple_state *st, server_rec *s, apr_pool_t *ptemp)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_array_header_t *missing = apr_array_make(ptemp, entries->nelts,
                                                 sizeof(ocspstaple_entry *));
    apr_time_t now = apr_time_now();
    int i, stored = 0, shared = 0, fetched = 0;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        if (e->static_file) {
            stored += load_static(st, e, now, ptemp);
        }
        else if (st->store_dir && load_stored(st, e, now, ptemp)) {
            stored++;
        }
        else if (from_shared_cache(st, e, now, ptemp)) {
            shared++;
        }
        else {
            APR_ARRAY_PUSH(missing, ocspstaple_entry *) = e;
        }
    }
    if (missing->nelts) {
        fetched = ocspstaple_update(st, missing, 1, ptemp);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "OCSPSTAPLE0012: %d "
                 "certificate(s) to staple: %d from the store or a file, %d "
                 "from the shared cache, %d fetched, %d without a response "
                 "yet; cache %s, store %s", entries->nelts, stored, shared,
                 fetched, missing->nelts - fetched,
                 stapling_cache_provider_name(st->cache),
                 st->store_dir ? st->store_dir : "off");
    check_capacity(st, s, entries, ptemp);
    warn_unused_files(s, entries);
    ocspstaple_alerts(st, ptemp);
}

/* --------------------------------------------------------------- watchdog */

static apr_array_header_t *due_entries(ocspstaple_state *st, apr_pool_t *p)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_array_header_t *due = apr_array_make(p, 4, sizeof(ocspstaple_entry *));
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        if (ocspstaple_entry_due(e, st->cache, now, p)) {
            APR_ARRAY_PUSH(due, ocspstaple_entry *) = e;
        }
    }
    return due;
}

static apr_status_t watchdog_tick(int state, void *data, apr_pool_t *pool)
{
    ocspstaple_state *st = data;
    apr_pool_t *p;

    if (state == AP_WATCHDOG_STATE_STARTING) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                     "OCSPSTAPLE0040: background refresh runs in process %"
                     APR_PID_T_FMT, getpid());
    }
    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    apr_pool_create(&p, pool);
    if (due_entries(st, p)->nelts > 0
        && apr_global_mutex_lock(st->fetch_mutex) == APR_SUCCESS) {
        /* Again under the lock: a handshake may have fetched meanwhile. */
        apr_array_header_t *due = due_entries(st, p);

        if (due->nelts > 0) {
            ocspstaple_update(st, due, 1, p);
        }
        apr_global_mutex_unlock(st->fetch_mutex);
    }
    ocspstaple_alerts(st, p);
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

apr_status_t ocspstaple_watchdog_register(ocspstaple_state *st, server_rec *s,
                                          apr_pool_t *pconf)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0041: "
                     "mod_watchdog is needed for the background refresh: "
                     "load it (LoadModule watchdog_module ...)");
        return APR_ENOTIMPL;
    }
    /* parent 0: in the children, with worker privileges. Not a singleton:
     * mod_watchdog hands a singleton to a new child only after a second or
     * two, so busy child recycling (MaxConnectionsPerChild) could starve it.
     * Every child checks instead; the fetch mutex and the plan shared in the
     * cache make one of them fetch, once. */
    rv = get_instance(&wd, WATCHDOG_NAME, 0, 0, pconf);
    if (rv == APR_SUCCESS) {
        rv = register_callback(wd, WATCHDOG_INTERVAL, st, watchdog_tick);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0041: cannot "
                     "set up the background refresh (mod_watchdog): %s",
                     ocspstaple_strerror(rv, pconf));
    }
    return rv;
}

void ocspstaple_child_sync(ocspstaple_state *st, apr_pool_t *p)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_time_t now = apr_time_now();
    int i;

    if (!stapling_cache_is_local(st->cache)) {
        return;
    }
    for (i = 0; i < entries->nelts; i++) {
        /* Due means: the parent's copy may have been renewed since. */
        ocspstaple_entry_due(APR_ARRAY_IDX(entries, i, ocspstaple_entry *),
                             st->cache, now, p);
    }
}

/* -------------------------------------------------------------- cold miss */

int ocspstaple_fetch_cold(ocspstaple_state *st, ocspstaple_entry *e,
                          apr_pool_t *p)
{
    apr_array_header_t *one;
    int fetched = 0;

    if (!ocspstaple_entry_due(e, st->cache, apr_time_now(), p)
        || apr_global_mutex_trylock(st->fetch_mutex) != APR_SUCCESS) {
        return 0;               /* not due, or somebody is fetching: no wait */
    }
    if (ocspstaple_entry_due(e, st->cache, apr_time_now(), p)) {
        one = apr_array_make(p, 1, sizeof(ocspstaple_entry *));
        APR_ARRAY_PUSH(one, ocspstaple_entry *) = e;
        /* First responder only: the handshake waits one timeout at most. */
        fetched = ocspstaple_update(st, one, 0, p) > 0;
    }
    apr_global_mutex_unlock(st->fetch_mutex);
    return fetched;
}
