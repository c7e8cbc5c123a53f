/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * One update of one certificate's response: fetch, verify, store, and
 * exactly one log line that names the certificate and the responder.
 */

#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>
#include <util_time.h>

#include "ocspstaple_private.h"

APLOG_USE_MODULE(ocspstaple);

static const char *fmt_time(apr_time_t t, apr_pool_t *p)
{
    char *buf;

    if (!t) {
        return "(none)";
    }
    buf = apr_palloc(p, APR_RFC822_DATE_LEN);
    apr_rfc822_date(buf, t);
    return buf;
}

static void log_update_ok(const ocspstaple_entry *e, const ocsp_answer *ans,
                          apr_pool_t *p)
{
    const ocsp_verdict *v = &ans->verdict;

    switch (v->cert_status) {
    case OCSP_CERT_REVOKED:
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, e->s, "OCSPSTAPLE0004: %s: "
                     "REVOKED according to %s (revoked %s, reason %d); "
                     "stapling the revocation, replace this certificate",
                     e->label, ans->url, fmt_time(v->revoked_at, p),
                     v->revoke_reason);
        break;
    case OCSP_CERT_UNKNOWN:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0005: %s: "
                     "responder %s does not know this certificate (status "
                     "unknown): is it the right responder for this issuer?",
                     e->label, ans->url);
        break;
    default:
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, e->s, "OCSPSTAPLE0002: %s: "
                     "update ok from %s: status %s, thisUpdate %s, "
                     "nextUpdate %s", e->label, ans->url,
                     ocsp_cert_status_str(v->cert_status),
                     fmt_time(v->this_update, p), fmt_time(v->next_update, p));
    }
}

static apr_status_t store(ocspstaple_entry *e, stapling_cache *cache,
                          const stapling_record *rec, apr_pool_t *p)
{
    apr_status_t rv = stapling_cache_put(cache, e->s, e->id,
                                         OCSPSTAPLE_ID_LEN, rec, p);

    if (rv != APR_SUCCESS) {
        /* This process still staples it; others fetch their own. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, e->s, "OCSPSTAPLE0022: "
                     "%s: cannot store the response in the %s cache (is it "
                     "large enough?)", e->label,
                     stapling_cache_provider_name(cache));
    }
    ocspstaple_entry_set_local(e, rec);
    return rv;
}

/* A failed update: one line, at error when nothing valid is left to staple.
 * A responder's own error answer is kept only when there is nothing better,
 * so that OCSPStaplingReturnResponderErrors can pass it on. */
static void update_failed(ocspstaple_entry *e, stapling_cache *cache,
                          apr_status_t rv, const ocsp_answer *ans,
                          const char *why, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    int have_good = stapling_record_stapleable(&e->local, now, 0);
    stapling_record rec = { { 0 }, 0, NULL, 0, NULL };

    ap_log_error(APLOG_MARK, have_good ? APLOG_WARNING : APLOG_ERR, rv, e->s,
                 "OCSPSTAPLE0003: %s: update failed: %s%s", e->label, why,
                 have_good ? "; still stapling the previous response until "
                             "its nextUpdate" : "; not stapling");
    if (have_good || !ans) {
        return;
    }
    rec.verdict = ans->verdict;
    rec.verdict.expires = now + OCSPSTAPLE_ERROR_RESPONSE_LIFETIME;
    rec.fetched_at = now;
    rec.der = ans->der;
    rec.der_len = ans->der_len;
    rec.error = why;
    store(e, cache, &rec, p);
}

apr_status_t ocspstaple_update(ocspstaple_entry *e, stapling_cache *cache,
                               apr_pool_t *ptemp)
{
    ocsp_http_opts opts = { ocspstaple_timeout(e->s), 0, NULL };
    stapling_record rec = { { 0 }, 0, NULL, 0, NULL };
    ocsp_answer *ans = NULL;
    const char *why = NULL;
    apr_status_t rv;

    rv = ocsp_fetch(&ans, e->cert, e->urls, &opts, &why, ptemp);
    if (rv != APR_SUCCESS) {
        update_failed(e, cache, rv, ans, why, ptemp);
        return rv;
    }
    log_update_ok(e, ans, ptemp);
    rec.verdict = ans->verdict;
    rec.fetched_at = apr_time_now();
    rec.der = ans->der;
    rec.der_len = ans->der_len;
    return store(e, cache, &rec, ptemp);
}
