/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Records from a cache other servers write (see ocspstaple_fleet.h).
 */

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_fleet.h"
#include "ocspstaple_local.h"

APLOG_USE_MODULE(ocspstaple);

/* A responder's own error answer is kept this long (ocspstaple_state.h has
 * the same figure for our own fetches). */
#define ERROR_ANSWER_LIFETIME apr_time_from_sec(600)

/* What a record from the shared cache can be wrong with: each is logged
 * once per certificate and server (the bits are shared by its processes),
 * again only after the cache gave a record that was taken. */
#define FLEET_CORRUPT    0x0100u
#define FLEET_UNVERIFIED 0x0200u
#define FLEET_FUTURE     0x0400u
#define FLEET_ERROR      0x0800u
#define FLEET_OLDER      0x1000u
#define FLEET_ALL        0x1f00u

static void complain(ocspstaple_entry *e, apr_uint32_t kind, const char *what)
{
    if (ocspstaple_alert_flip(&e->slot->alerts, kind, 1)
        == OCSPSTAPLE_ALERT_RAISED) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0023: %s: "
                     "ignoring %s in the shared cache", e->label, what);
    }
}

static void complaints_over(ocspstaple_entry *e)
{
    apr_uint32_t old;

    do {
        old = apr_atomic_read32(&e->slot->alerts);
    } while ((old & FLEET_ALL)
             && apr_atomic_cas32(&e->slot->alerts, old & ~FLEET_ALL, old)
                != old);
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
    complain(e, FLEET_UNVERIFIED,
             apr_psprintf(p, "a response that does not verify: %s", why));
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

/* The latest a schedule from the shared cache may put our next fetch:
 * with a response of our own, well before it expires (a tenth of its
 * validity); with none, a cold backoff step from now. So whoever writes to
 * the cache can delay a renewal, never make a server let its response
 * expire. */
static apr_time_t hint_cap(const stapling_record *local, apr_time_t now)
{
    if (stapling_record_stapleable(local, now, 0)) {
        return local->verdict.expires
               - (local->verdict.expires - local->verdict.this_update) / 10;
    }
    return now + REFRESH_BACKOFF_MAX_COLD * 5 / 4;
}

/* Only the schedule of rec counts (its response, if any, is not taken):
 * our own copy with rec's plan, when rec tells of a later attempt than we
 * know of, so that the fleet keeps one schedule. Returns 1 when *out is
 * worth publishing. */
static int merge_plan(const stapling_record *local, const stapling_record *rec,
                      stapling_record *out, apr_time_t now)
{
    apr_time_t cap = hint_cap(local, now);

    if (rec->attempted_at <= local->attempted_at) {
        return 0;
    }
    *out = *local;
    out->attempted_at = rec->attempted_at;
    out->next_attempt = rec->next_attempt < cap ? rec->next_attempt : cap;
    out->failures = rec->failures;
    out->error = rec->error;
    return 1;
}

/* rec verified: take its response if it is newer than ours; an error
 * answer is never taken from a shared cache (nobody signed it). */
static int judge(ocspstaple_entry *e, const stapling_record *local,
                 stapling_record *rec, stapling_record *out, apr_time_t now)
{
    if (rec->der_len && rec->verdict.resp_status != 0) {
        complain(e, FLEET_ERROR, "a responder's error answer (never stapled "
                 "from a shared cache)");
    }
    else if (rec->der_len && ocspstaple_replaces(rec, local, now)) {
        complaints_over(e);
        *out = *rec;
        return 1;
    }
    else if (rec->der_len
             && rec->verdict.this_update < local->verdict.this_update
             && rec->fetched_at > local->fetched_at) {
        /* Older, yet claiming a later fetch: a stale edge, a replay or a
         * forgery. (A peer that fetched before us publishes its older
         * response with its later plans: normal, not worth a line.) */
        complain(e, FLEET_OLDER, "a response older than the one verified "
                 "here");
    }
    return merge_plan(local, rec, out, now);
}

int ocspstaple_fleet_read(ocspstaple_entry *e, stapling_cache *cache,
                          ocspstaple_shared *sh, stapling_record *out,
                          apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    stapling_record rec, local;
    apr_status_t rv;

    rv = stapling_cache_get(cache, e->s, e->id, OCSPSTAPLE_ID_LEN, &rec, p);
    ocspstaple_cache_health(sh, e->s, cache, rv, 0, p);
    if (rv == STAPLING_CACHE_ECORRUPT) {
        complain(e, FLEET_CORRUPT, "a record that does not decode");
    }
    if (rv != APR_SUCCESS || !vet_cached(e, &rec, now, p)) {
        return 0;
    }
    ocspstaple_local_get(e, &local, p);
    if (!vet_times(e, &local, &rec, now)) {
        complain(e, FLEET_FUTURE, "a record with times in the future");
        return 0;
    }
    adopt_plan(e, &rec);
    return judge(e, &local, &rec, out, now);
}
