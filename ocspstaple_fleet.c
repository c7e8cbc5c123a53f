/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Records from a cache other servers write (see ocspstaple_fleet.h).
 */

#include <string.h>

#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_fleet.h"
#include "ocspstaple_local.h"

APLOG_USE_MODULE(ocspstaple);

/* A responder's own error answer is kept this long (ocspstaple_state.h has
 * the same figure for our own fetches). */
#define ERROR_ANSWER_LIFETIME apr_time_from_sec(600)

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
                       : now + ERROR_ANSWER_LIFETIME;

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
static int vet_times(const ocspstaple_entry *e, const stapling_record *local,
                     stapling_record *rec, apr_time_t now)
{
    refresh_window w = ocspstaple_renew_window(e->s);

    if (rec->fetched_at <= now + OCSP_MAX_CLOCK_SKEW
        && rec->attempted_at <= now + OCSP_MAX_CLOCK_SKEW) {
        return 1;
    }
    if (!rec->der_len
        || rec->verdict.this_update <= local->verdict.this_update) {
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

int ocspstaple_fleet_read(ocspstaple_entry *e, stapling_cache *cache,
                          ocspstaple_shared *sh, stapling_record *rec,
                          apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    stapling_record local;
    apr_status_t rv;

    rv = stapling_cache_get(cache, e->s, e->id, OCSPSTAPLE_ID_LEN, rec, p);
    ocspstaple_cache_health(sh, e->s, cache, rv, 0, p);
    if (rv == STAPLING_CACHE_ECORRUPT) {
        complain(e, "a record that does not decode");
    }
    if (rv != APR_SUCCESS || !vet_cached(e, rec, now, p)) {
        return 0;
    }
    ocspstaple_local_peek(e, &local, p);
    if (!vet_times(e, &local, rec, now)) {
        complain(e, "a record with times in the future");
        return 0;
    }
    adopt_plan(e, rec);
    /* A bare plan never replaces a response we can still staple. */
    return is_newer(rec, &local)
           && (rec->der_len || !stapling_record_stapleable(&local, now, 1));
}
