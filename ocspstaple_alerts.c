/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Alerts an operator must see, each logged once per episode by whichever
 * process notices first (the bits are shared): a Must-Staple certificate
 * without a valid response, an OCSPStaplingFile about to expire or expired.
 * They are checked where a record changes and when the schedule wakes a
 * certificate up at the moment one of them can start: never by walking
 * every certificate.
 */

#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_local.h"
#include "ocspstaple_state.h"

APLOG_USE_MODULE(ocspstaple);

/* An OCSPStaplingFile is announced as expiring this long before, or a
 * quarter of its validity before when it lives shorter. */
#define FILE_EXPIRY_WARNING apr_time_from_sec(24 * 3600)

static apr_time_t file_warning_at(const stapling_record *rec)
{
    apr_interval_time_t quarter = (rec->verdict.expires
                                   - rec->verdict.this_update) / 4;

    return rec->verdict.expires - (quarter < FILE_EXPIRY_WARNING
                                   ? quarter : FILE_EXPIRY_WARNING);
}

static int alert_flip(ocspstaple_entry *e, apr_uint32_t bit, int condition)
{
    return e->slot ? ocspstaple_alert_flip(&e->slot->alerts, bit, condition)
                   : OCSPSTAPLE_ALERT_UNCHANGED;
}

static void file_alerts(ocspstaple_entry *e, const stapling_record *rec,
                        apr_time_t now)
{
    int have = rec->der_len > 0;

    if (alert_flip(e, OCSPSTAPLE_ALERT_FILE_EXPIRING, have
                   && now < rec->verdict.expires
                   && now >= file_warning_at(rec))
        == OCSPSTAPLE_ALERT_RAISED) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0061: %s:"
                     " OCSPStaplingFile %s expires in %" APR_TIME_T_FMT " s:"
                     " replace it with a fresh response", e->label,
                     e->static_file, apr_time_sec(rec->verdict.expires - now));
    }
    if (alert_flip(e, OCSPSTAPLE_ALERT_FILE_EXPIRED,
                   have && now >= rec->verdict.expires)
        == OCSPSTAPLE_ALERT_RAISED) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0062: %s: "
                     "OCSPStaplingFile %s has expired: not stapling it any "
                     "more", e->label, e->static_file);
    }
}

static void must_staple_alert(ocspstaple_entry *e, const stapling_record *rec,
                              apr_time_t now)
{
    int ok = stapling_record_stapleable(rec, now, 0);

    switch (alert_flip(e, OCSPSTAPLE_ALERT_MUST_STAPLE, !ok)) {
    case OCSPSTAPLE_ALERT_RAISED:
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, e->s, "OCSPSTAPLE0051: %s:"
                     " Must-Staple certificate without a valid OCSP "
                     "response to staple: clients will refuse this site "
                     "(%s)", e->label, rec->error ? rec->error
                     : "no response yet");
        break;
    case OCSPSTAPLE_ALERT_CLEARED:
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, e->s, "OCSPSTAPLE0052: "
                     "%s: Must-Staple certificate stapled again", e->label);
        break;
    }
}

void ocspstaple_alerts(ocspstaple_entry *e, apr_time_t now, apr_pool_t *p)
{
    stapling_record rec;

    if (!e->static_file && !e->must_staple) {
        return;
    }
    ocspstaple_local_peek(e, &rec, p);
    if (e->static_file) {
        file_alerts(e, &rec, now);
    }
    if (e->must_staple) {
        must_staple_alert(e, &rec, now);
    }
}

static apr_time_t earliest(apr_time_t a, apr_time_t b)
{
    return a < b ? a : b;
}

/* The planned fetch; the moment the response expires (it stops being
 * stapled: alerts); for an OCSPStaplingFile, the moment its expiry warning
 * is due. What already passed does not count. */
apr_time_t ocspstaple_wake_at(ocspstaple_entry *e, apr_time_t now)
{
    apr_time_t wake = OCSPSTAPLE_NEVER;
    stapling_record rec;

    apr_thread_mutex_lock(e->lock);
    rec = e->local;
    apr_thread_mutex_unlock(e->lock);
    if (!e->static_file && e->urls->nelts) {
        wake = rec.next_attempt;
    }
    if (rec.der_len && rec.verdict.expires > now) {
        wake = earliest(wake, rec.verdict.expires);
    }
    if (e->static_file && rec.der_len && file_warning_at(&rec) > now) {
        wake = earliest(wake, file_warning_at(&rec));
    }
    return wake;
}
