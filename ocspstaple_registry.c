/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The certificates this server staples for, one entry per certificate id,
 * and the handshake path: each process keeps its own copy of the newest
 * record, so a handshake normally touches neither the shared cache nor the
 * network, and never parses DER.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_private.h"

APLOG_USE_MODULE(ocspstaple);


/* The server-wide alert bits (see ocspstaple_cache_health), in the shared
 * counters segment after the last certificate's counters. */
static apr_uint32_t *server_bits;

struct ocspstaple_registry {
    apr_hash_t *by_id;
    apr_array_header_t *entries;     /* ocspstaple_entry *, in prime order */
    const char *origin;              /* this server, in records it writes */
};

/* Counters in shared memory, so that the status page adds up every
 * process: fetches, failures and staples served, per certificate. */
apr_status_t ocspstaple_registry_counters(ocspstaple_registry *reg,
                                          apr_pool_t *pconf)
{
    apr_size_t size = sizeof(apr_uint32_t)
                      * (OCSPSTAPLE_COUNTERS * reg->entries->nelts + 1);
    apr_uint32_t *base;
    apr_shm_t *shm;
    apr_status_t rv;
    int i;

    if ((rv = apr_shm_create(&shm, size, NULL, pconf)) != APR_SUCCESS) {
        return rv;
    }
    base = apr_shm_baseaddr_get(shm);
    memset(base, 0, size);
    for (i = 0; i < reg->entries->nelts; i++) {
        APR_ARRAY_IDX(reg->entries, i, ocspstaple_entry *)->counters =
            base + i * OCSPSTAPLE_COUNTERS;
    }
    server_bits = base + reg->entries->nelts * OCSPSTAPLE_COUNTERS;
    return APR_SUCCESS;
}

void ocspstaple_count(ocspstaple_entry *e, ocspstaple_counter which)
{
    if (e->counters) {
        apr_atomic_inc32(&e->counters[which]);
    }
}

apr_uint32_t *ocspstaple_alert_bits(ocspstaple_entry *e)
{
    return &e->counters[OCSPSTAPLE_ALERTS];
}

int ocspstaple_alert_flip(apr_uint32_t *bits, apr_uint32_t bit, int condition)
{
    apr_uint32_t old, new;

    do {
        old = apr_atomic_read32(bits);
        new = condition ? old | bit : old & ~bit;
        if (new == old) {
            return OCSPSTAPLE_ALERT_UNCHANGED;
        }
    } while (apr_atomic_cas32(bits, new, old) != old);
    return condition ? OCSPSTAPLE_ALERT_RAISED : OCSPSTAPLE_ALERT_CLEARED;
}

#define CACHE_TROUBLE 1
/* A handshake with nothing to staple looks into the shared cache at most
 * this often per certificate and process. */
#define COLD_SYNC_INTERVAL apr_time_from_sec(1)

void ocspstaple_cache_health(server_rec *s, stapling_cache *cache,
                             apr_status_t rv, int was_put, apr_pool_t *p)
{
    int ok = rv == APR_SUCCESS || rv == STAPLING_CACHE_ECORRUPT;

    /* A get that finds nothing says nothing: providers also answer
     * APR_NOTFOUND while their server is down. */
    if (!server_bits || (!ok && !was_put && rv == APR_NOTFOUND)) {
        return;
    }
    switch (ocspstaple_alert_flip(server_bits, CACHE_TROUBLE, !ok)) {
    case OCSPSTAPLE_ALERT_RAISED:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0024: the %s "
                     "cache fails (%s): each process staples its own copies "
                     "and this server fetches for itself until it is back",
                     stapling_cache_provider_name(cache),
                     ocspstaple_strerror(rv, p));
        break;
    case OCSPSTAPLE_ALERT_CLEARED:
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0025: the %s "
                     "cache works again", stapling_cache_provider_name(cache));
        break;
    }
}

apr_uint32_t ocspstaple_counter_value(const ocspstaple_entry *e,
                                      ocspstaple_counter which)
{
    return e->counters ? apr_atomic_read32(&e->counters[which]) : 0;
}

ocspstaple_registry *ocspstaple_registry_make(apr_pool_t *pconf)
{
    server_bits = NULL;               /* a new generation, new counters */
    ocspstaple_registry *reg = apr_pcalloc(pconf, sizeof(*reg));

    char host[APRMAXHOSTLEN + 1];

    reg->by_id = apr_hash_make(pconf);
    reg->entries = apr_array_make(pconf, 16, sizeof(ocspstaple_entry *));
    if (apr_gethostname(host, sizeof(host), pconf) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    /* The parent's pid tells apart servers that share a cache on one host. */
    reg->origin = apr_psprintf(pconf, "%s/%" APR_PID_T_FMT, host, getpid());
    return reg;
}

const char *ocspstaple_registry_origin(const ocspstaple_registry *reg)
{
    return reg->origin;
}

static apr_status_t entry_cleanup(void *data)
{
    ocspstaple_entry *e = data;

    free((void *)e->local.der);
    free((void *)e->local.error);
    free((void *)e->local.origin);
    e->local.der = NULL;
    e->local.error = e->local.origin = NULL;
    return APR_SUCCESS;
}

static const char *entry_label(const ocsp_cert *cert, const unsigned char *id,
                               apr_pool_t *p)
{
    char hex[2 * 8 + 1];

    ap_bin2hex(id, 8, hex);           /* 64 bits tell certificates apart */
    return apr_psprintf(p, "cert \"%s\" serial %s id %s",
                        ocsp_cert_subject(cert), ocsp_cert_serial(cert), hex);
}

static const apr_array_header_t *responder_urls(server_rec *s,
                                                const ocsp_cert *cert,
                                                apr_pool_t *p)
{
    const char *forced = ocspstaple_force_url(s);
    apr_array_header_t *urls;

    if (!forced) {
        return ocsp_cert_urls(cert);
    }
    urls = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(urls, const char *) = forced;
    return urls;
}

/* OCSPStaplingFile: the first of the server's files that verifies as a
 * response for this certificate now, or NULL. */
static const char *find_static_file(server_rec *s, const ocsp_cert *cert,
                                    apr_pool_t *pconf)
{
    const apr_array_header_t *files = ocspstaple_files(s);
    stapling_record rec;
    apr_pool_t *p;
    const char *found = NULL;
    int i;

    apr_pool_create(&p, pconf);
    for (i = 0; files && i < files->nelts && !found; i++) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);

        if (ocspstaple_load_file(&rec, cert, path, NULL, p) == APR_SUCCESS) {
            found = path;
        }
    }
    apr_pool_destroy(p);
    return found;
}

static void log_unusable_urls(server_rec *s, const ocspstaple_entry *e)
{
    const apr_array_header_t *bad = ocsp_cert_unusable_urls(e->cert);
    int i;

    for (i = 0; !ocspstaple_force_url(s) && i < bad->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0015: %s: "
                     "ignoring the certificate's OCSP URL '%s': not an "
                     "http:// or https:// URL with a host", e->label,
                     APR_ARRAY_IDX(bad, i, const char *));
    }
}

static apr_status_t entry_make(ocspstaple_entry **pe, server_rec *s,
                               const char *id, const char *pem,
                               apr_pool_t *pconf)
{
    ocspstaple_entry *e = apr_pcalloc(pconf, sizeof(*e));
    const char *why;
    apr_status_t rv;

    *pe = NULL;
    rv = ocsp_cert_parse(&e->cert, pem, strlen(pem), &why, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0010: server %s:"
                     " cannot read the certificate mod_ssl handed over (%s); "
                     "not stapling it", s->server_hostname, why);
        return rv;
    }
    memcpy(e->id, id, OCSPSTAPLE_ID_LEN);
    e->label = entry_label(e->cert, e->id, pconf);
    e->must_staple = ocsp_cert_must_staple(e->cert);
    e->static_file = find_static_file(s, e->cert, pconf);
    e->urls = responder_urls(s, e->cert, pconf);
    log_unusable_urls(s, e);
    if (e->urls->nelts == 0 && !e->static_file) {
        ap_log_error(APLOG_MARK, e->must_staple ? APLOG_CRIT : APLOG_INFO, 0,
                     s, "OCSPSTAPLE0001: %s: no OCSP responder URL in the "
                     "certificate and no OCSPStaplingForceURL or "
                     "OCSPStaplingFile for server %s; not stapling%s",
                     e->label, s->server_hostname, e->must_staple
                     ? " although the certificate is Must-Staple: clients "
                       "will refuse this site" : "");
        return APR_ENOENT;
    }
    e->s = s;
    e->vhosts = s->server_hostname;
    rv = apr_thread_mutex_create(&e->lock, APR_THREAD_MUTEX_DEFAULT, pconf);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(pconf, e, entry_cleanup, apr_pool_cleanup_null);
    *pe = e;
    return APR_SUCCESS;
}

apr_status_t ocspstaple_registry_add(ocspstaple_registry *reg, server_rec *s,
                                     const char *id, apr_size_t id_len,
                                     const char *pem, apr_pool_t *pconf)
{
    ocspstaple_entry *e;
    apr_status_t rv;

    if (id_len != OCSPSTAPLE_ID_LEN) {
        return APR_EINVAL;
    }
    e = apr_hash_get(reg->by_id, id, id_len);
    if (e) {
        /* One certificate in several virtual hosts: one entry, one fetch. */
        e->vhosts = apr_pstrcat(pconf, e->vhosts, ", ", s->server_hostname,
                                NULL);
        return APR_SUCCESS;
    }
    if ((rv = entry_make(&e, s, id, pem, pconf)) != APR_SUCCESS) {
        return rv;
    }
    e->origin = reg->origin;
    apr_hash_set(reg->by_id, e->id, OCSPSTAPLE_ID_LEN, e);
    APR_ARRAY_PUSH(reg->entries, ocspstaple_entry *) = e;
    return APR_SUCCESS;
}

ocspstaple_entry *ocspstaple_registry_find(const ocspstaple_registry *reg,
                                           const char *id, apr_size_t id_len)
{
    return id_len == OCSPSTAPLE_ID_LEN ? apr_hash_get(reg->by_id, id, id_len)
                                       : NULL;
}

const apr_array_header_t *ocspstaple_registry_entries(
    const ocspstaple_registry *reg)
{
    return reg->entries;
}

/* ------------------------------------------------------ process-local copy */

static char *dup_text(const char *text)
{
    return text ? strdup(text) : NULL;
}

/* The local copy outlives every pool of the callers (it is replaced from
 * other threads over the life of the child): it owns malloc'd copies.
 * Callers hold e->lock, or run before any thread exists. */
static void set_local_locked(ocspstaple_entry *e, const stapling_record *rec)
{
    unsigned char *der = rec->der_len ? malloc(rec->der_len) : NULL;

    if (rec->der_len && !der) {
        return;                       /* keep what we have */
    }
    if (der) {
        memcpy(der, rec->der, rec->der_len);
    }
    entry_cleanup(e);
    e->local = *rec;
    e->local.der = der;
    e->local.error = dup_text(rec->error);
    e->local.origin = dup_text(rec->origin);
}

void ocspstaple_entry_set_local(ocspstaple_entry *e, const stapling_record *rec)
{
    apr_thread_mutex_lock(e->lock);
    set_local_locked(e, rec);
    apr_thread_mutex_unlock(e->lock);
}

void ocspstaple_entry_get_local(ocspstaple_entry *e, stapling_record *rec,
                                apr_pool_t *p)
{
    apr_thread_mutex_lock(e->lock);
    *rec = e->local;
    rec->der = rec->der_len ? apr_pmemdup(p, e->local.der, e->local.der_len)
                            : NULL;
    rec->error = e->local.error ? apr_pstrdup(p, e->local.error) : NULL;
    rec->origin = e->local.origin ? apr_pstrdup(p, e->local.origin) : NULL;
    apr_thread_mutex_unlock(e->lock);
}

/* Once per certificate and process: a shared cache with bad entries. */
static void complain(ocspstaple_entry *e, const char *what)
{
    if (!e->cache_complaint) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0023: %s: "
                     "ignoring %s in the shared cache", e->label, what);
        e->cache_complaint = 1;
    }
}

/* A cached record is not trusted: other processes, or other servers sharing
 * a memcache or Redis cache, wrote it. Its DER is verified again and the
 * verdict taken from that verification, not from the record. Returns 0 when
 * the record must be ignored. */
static int vet_cached(ocspstaple_entry *e, stapling_record *rec,
                      apr_time_t now, apr_pool_t *p)
{
    ocsp_verdict v;
    const char *why = NULL;
    apr_status_t rv;

    if (!rec->der_len) {
        return 1;                     /* only a fetch plan */
    }
    rv = ocsp_response_verify(&v, e->cert, rec->der, rec->der_len, now, &why,
                              p);
    if (rv == APR_SUCCESS || rv == OCSP_ERESPONDER) {
        apr_time_t cap = rv == APR_SUCCESS ? v.expires
                       : now + OCSPSTAPLE_ERROR_RESPONSE_LIFETIME;

        v.expires = rec->verdict.expires < cap ? rec->verdict.expires : cap;
        rec->verdict = v;
        return 1;
    }
    complain(e, apr_psprintf(p, "a response that does not verify: %s", why));
    return 0;
}

/* The plan of a record from elsewhere, bounded like our own: never later
 * than the response's expiry, or than the longest backoff without one. A
 * response another server fetched is renewed by that server first: we
 * follow a little later, and by then normally find its new response. */
static void adopt_plan(const ocspstaple_entry *e, stapling_record *rec)
{
    refresh_window w = ocspstaple_renew_window(e->s);
    apr_time_t latest = 0, normal;

    /* Times from elsewhere are not trusted either: no plan is later than
     * our own latest renewal time for this response or, after failures, a
     * maximal backoff after the last attempt. (Records "fetched" in the
     * future never get here: see vet_times.) */
    if (rec->failures > 0 || !rec->der_len) {
        latest = rec->attempted_at + REFRESH_BACKOFF_MAX * 5 / 4;
    }
    if (rec->der_len) {
        normal = refresh_renew_at(&rec->verdict, rec->fetched_at, &w, 0.0);
        latest = normal > latest ? normal : latest;
    }
    if (rec->next_attempt > latest) {
        rec->next_attempt = latest;
    }
    latest = rec->der_len ? rec->verdict.expires : latest;
    if (rec->der_len && rec->origin && strcmp(rec->origin, e->origin)) {
        rec->source = STAPLING_FROM_SHARED;
        rec->next_attempt = refresh_follow_at(rec->next_attempt,
                                              rec->verdict.expires,
                                              refresh_random());
    }
    if (rec->next_attempt > latest) {
        rec->next_attempt = latest;
    }
}

/* A record with times in the future (a forged record, or a server whose
 * clock is far ahead) would look newer than anything forever: only its
 * response is taken, if newer than ours, with our own times and plan. */
static int vet_times(const ocspstaple_entry *e, stapling_record *rec,
                     apr_time_t now)
{
    refresh_window w = ocspstaple_renew_window(e->s);

    if (rec->fetched_at <= now + OCSP_MAX_CLOCK_SKEW
        && rec->attempted_at <= now + OCSP_MAX_CLOCK_SKEW) {
        return 1;
    }
    if (!rec->der_len
        || rec->verdict.this_update <= e->local.verdict.this_update) {
        return 0;
    }
    rec->fetched_at = rec->attempted_at = now;
    rec->failures = 0;
    rec->next_attempt = refresh_renew_at(&rec->verdict, now, &w,
                                         refresh_random());
    return 1;
}

/* Newer means fetched later, or the same fetch with a later plan. */
static int is_newer(const stapling_record *rec, const stapling_record *local)
{
    return rec->fetched_at > local->fetched_at
        || (rec->fetched_at == local->fetched_at
            && rec->next_attempt > local->next_attempt);
}

int ocspstaple_entry_sync(ocspstaple_entry *e, stapling_cache *cache,
                          apr_interval_time_t min_interval, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    stapling_record rec;
    apr_status_t rv;
    int newer, adopted = 0;

    apr_thread_mutex_lock(e->lock);
    newer = now - e->checked_at >= min_interval;
    if (newer) {
        e->checked_at = now;
    }
    apr_thread_mutex_unlock(e->lock);
    if (!newer) {
        return 0;
    }
    /* Read and verify without e->lock: a network cache may be slow, and
     * handshakes of this certificate must not wait for it. */
    rv = stapling_cache_get(cache, e->s, e->id, OCSPSTAPLE_ID_LEN, &rec, p);
    ocspstaple_cache_health(e->s, cache, rv, 0, p);
    if (rv == STAPLING_CACHE_ECORRUPT) {
        complain(e, "a record that does not decode");
    }
    if (rv != APR_SUCCESS || !vet_cached(e, &rec, now, p)) {
        return 0;
    }
    apr_thread_mutex_lock(e->lock);
    if (!vet_times(e, &rec, now)) {
        apr_thread_mutex_unlock(e->lock);
        complain(e, "a record with times in the future");
        return 0;
    }
    adopt_plan(e, &rec);
    /* A bare plan never replaces a response we can still staple. */
    if (is_newer(&rec, &e->local)
        && (rec.der_len || !stapling_record_stapleable(&e->local, now, 1))) {
        set_local_locked(e, &rec);
        adopted = 1;
    }
    apr_thread_mutex_unlock(e->lock);
    return adopted;
}

int ocspstaple_entry_due(ocspstaple_entry *e, stapling_cache *cache,
                         apr_time_t now, apr_pool_t *p)
{
    apr_time_t next;
    int empty;

    if (e->static_file) {
        return 0;                     /* OCSPStaplingFile: never fetched */
    }
    apr_thread_mutex_lock(e->lock);
    next = e->local.next_attempt;
    empty = !stapling_record_stapleable(&e->local, now, 1);
    apr_thread_mutex_unlock(e->lock);
    if (now < next && !empty) {
        return 0;
    }
    /* Another process, or server, may have renewed it meanwhile; with
     * nothing to staple, look every second even before our next fetch. */
    ocspstaple_entry_sync(e, cache, now >= next ? 0 : COLD_SYNC_INTERVAL, p);
    apr_thread_mutex_lock(e->lock);
    next = e->local.next_attempt;
    apr_thread_mutex_unlock(e->lock);
    return now >= next;
}

/* A handshake with nothing valid to staple may look into the shared cache:
 * one handshake at a time per certificate and process (the others carry on
 * without a staple), at most once a second, and not while the cache is
 * known to fail: a hung network cache must not hold handshakes. */
int ocspstaple_entry_sync_cold(ocspstaple_entry *e, stapling_cache *cache,
                               apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    int claim, adopted = 0;

    apr_thread_mutex_lock(e->lock);
    claim = !e->syncing && now - e->checked_at >= COLD_SYNC_INTERVAL
            && !(server_bits && (apr_atomic_read32(server_bits)
                                 & CACHE_TROUBLE));
    e->syncing |= claim;
    apr_thread_mutex_unlock(e->lock);
    if (claim) {
        adopted = ocspstaple_entry_sync(e, cache, 0, p);
        apr_thread_mutex_lock(e->lock);
        e->syncing = 0;
        apr_thread_mutex_unlock(e->lock);
    }
    return adopted;
}

int ocspstaple_entry_staple(ocspstaple_entry *e, server_rec *s,
                            ap_ssl_ocsp_copy_resp *cb, void *userdata)
{
    apr_time_t now = apr_time_now();
    int stapled = 0;

    apr_thread_mutex_lock(e->lock);
    if (stapling_record_stapleable(&e->local, now,
                                   ocspstaple_returns_errors(s))) {
        /* cb copies the DER: mod_ssl hands OpenSSL its own buffer. */
        cb(e->local.der, e->local.der_len, userdata);
        stapled = 1;
    }
    apr_thread_mutex_unlock(e->lock);
    if (stapled) {
        ocspstaple_count(e, OCSPSTAPLE_STAPLES);
    }
    return stapled;
}
