/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Updates: fetch a round of certificates concurrently, then for each one
 * publish what came back (local cache, fleet cache, this process's copy,
 * disk), plan the next fetch, and write exactly one log line naming the
 * certificate and the responder. Only processes with the server user's
 * privileges get here: the start-up helper and the children's refresh.
 */

#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>
#include <http_main.h>          /* ap_server_conf */

#include "ocsp_store.h"
#include "ocspstaple_local.h"
#include "ocspstaple_state.h"

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

static void log_update_ok(const ocspstaple_entry *e, const ocsp_job *job,
                          int replaced_good, apr_time_t next, apr_pool_t *p)
{
    const ocsp_answer *ans = job->answer;
    const ocsp_verdict *v = &ans->verdict;
    const char *was = replaced_good ? " (it was good until now)" : "";

    switch (v->cert_status) {
    case OCSP_CERT_REVOKED:
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, e->s, "OCSPSTAPLE0004: %s: "
                     "REVOKED according to %s%s (revoked %s, reason %d); "
                     "stapling the revocation, replace this certificate",
                     e->label, ans->url, was, fmt_time(v->revoked_at, p),
                     v->revoke_reason);
        break;
    default:
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, e->s, "OCSPSTAPLE0002: %s: "
                     "update ok from %s: status %s, thisUpdate %s, "
                     "nextUpdate %s, next fetch in %" APR_TIME_T_FMT " s%s%s",
                     e->label, ans->url, ocsp_cert_status_str(v->cert_status),
                     fmt_time(v->this_update, p), fmt_time(v->next_update, p),
                     apr_time_sec(next - apr_time_now()),
                     job->err ? "; failed before: " : "",
                     job->err ? job->err : "");
    }
}

/* The OCSPStaplingFile serving e, as the start-up helper found it. */
static void resolve_static_file(ocspstaple_entry *e)
{
    apr_uint32_t file = e->slot ? e->slot->file : 0;

    e->static_file = file && e->files && (int)file <= e->files->nelts
                     ? APR_ARRAY_IDX(e->files, file - 1, const char *) : NULL;
}

/* Everything that follows a new copy in this process. */
static void local_changed(ocspstaple_state *st, ocspstaple_entry *e,
                          const stapling_record *rec, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();

    resolve_static_file(e);
    ocspstaple_local_set(e, rec);
    ocspstaple_alerts(e, now, p);
    if (st->schedule) {
        ocspstaple_schedule_set(st->schedule, e, ocspstaple_wake_at(e, now));
    }
}

void ocspstaple_publish(ocspstaple_state *st, ocspstaple_entry *e,
                        const stapling_record *rec, int to_fleet,
                        apr_pool_t *p)
{
    apr_status_t rv;

    if (stapling_cache_put(st->local, e->s, e->id, OCSPSTAPLE_ID_LEN, rec, p)
        == APR_SUCCESS) {
        ocspstaple_shared_changed(st->shared, e);
        e->seen_version = e->slot->version;
    }
    if (st->fleet && to_fleet) {
        rv = stapling_cache_put(st->fleet, e->s, e->id, OCSPSTAPLE_ID_LEN,
                                rec, p);
        /* On failure this server still staples it; others fetch their own. */
        ocspstaple_cache_health(st->shared, e->s, st->fleet, rv, 1, p);
    }
    local_changed(st, e, rec, p);
}

void ocspstaple_take_local(ocspstaple_state *st, ocspstaple_entry *e,
                           apr_uint32_t version, apr_pool_t *p)
{
    stapling_record rec;

    /* Written by a process of this server that verified it: no second
     * verification (and no parsing) here. Not found (evicted): this
     * process keeps its copy and takes the record when it changes again. */
    if (stapling_cache_get(st->local, e->s, e->id, OCSPSTAPLE_ID_LEN, &rec, p)
        == APR_SUCCESS) {
        e->seen_version = version;
        local_changed(st, e, &rec, p);
    }
}

/* unsynced: NULL to write the file durably now; else the round's count of
 * files written whose sync comes at its end (ocspstaple_update). */
static void save_to_store(ocspstaple_state *st, ocspstaple_entry *e,
                          const ocsp_answer *ans, int *unsynced,
                          apr_pool_t *p)
{
    apr_status_t rv;

    if (!st->store_dir
        || ocspstaple_server_bit(st->shared, OCSPSTAPLE_SERVER_STORE_OFF)) {
        return;
    }
    rv = unsynced ? ocsp_store_write_unsynced(st->store_dir, e->id,
                                              OCSPSTAPLE_ID_LEN, ans->der,
                                              ans->der_len, p)
                  : ocsp_store_write(st->store_dir, e->id, OCSPSTAPLE_ID_LEN,
                                     ans->der, ans->der_len, p);
    if (rv == APR_SUCCESS && unsynced) {
        (*unsynced)++;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, e->s, "OCSPSTAPLE0034: "
                     "%s: cannot write the response to the store %s (%s); a "
                     "restart will have to fetch it again", e->label,
                     st->store_dir, ocspstaple_strerror(rv, p));
    }
}

int ocspstaple_replaces(const stapling_record *cand,
                        const stapling_record *cur, apr_time_t now)
{
    switch (stapling_record_order(cand, cur, now)) {
    case STAPLING_REPLACE:
        return 1;
    case STAPLING_TIE:                /* the same thisUpdate */
        return cur->der_len
               && ocsp_response_produced_at(cand->der, cand->der_len)
                  > ocsp_response_produced_at(cur->der, cur->der_len);
    default:
        return 0;
    }
}

/* What a responder answered, as a record. An error answer is kept only
 * briefly, as mod_ssl's SSLStaplingErrorCacheTimeout does. */
static stapling_record answer_record(const ocspstaple_entry *e,
                                     const ocsp_answer *ans, apr_time_t now)
{
    stapling_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.verdict = ans->verdict;
    if (ans->verdict.resp_status != 0) {
        rec.verdict.expires = now + OCSPSTAPLE_ERROR_RESPONSE_LIFETIME;
    }
    rec.fetched_at = now;
    rec.attempted_at = now;
    rec.source = STAPLING_FROM_RESPONDER;
    rec.origin = e->origin;
    rec.der = ans->der;
    rec.der_len = ans->der_len;
    return rec;
}

static void update_ok(ocspstaple_state *st, ocspstaple_entry *e,
                      const stapling_record *prev, const ocsp_job *job,
                      stapling_record *rec, int *unsynced, apr_pool_t *p)
{
    refresh_window w = ocspstaple_renew_window(e->s);
    apr_time_t now = apr_time_now();
    int replaced_good = prev->verdict.cert_status == OCSP_CERT_GOOD
                        && stapling_record_stapleable(prev, now, 0);

    rec->next_attempt = refresh_renew_at(&rec->verdict, now, &w,
                                         refresh_random());
    log_update_ok(e, job, replaced_good, rec->next_attempt, p);
    ocspstaple_publish(st, e, rec, 1, p);
    save_to_store(st, e, job->answer, unsynced, p);
}

/* A fetch that brought nothing newer: the schedule backs off. A response
 * that can be stapled as good or revoked stays. Without one, answer (a
 * responder's error answer or "unknown", for
 * OCSPStaplingReturnResponderErrors) is kept if given; else the record
 * keeps no DER, only the verdict (nothing older may come back) and the
 * backoff, which every process of the server (and of a fleet) follows: one
 * schedule per certificate, also once its response expired. */
static void record_failure(stapling_record *rec, const ocspstaple_entry *e,
                           const stapling_record *prev, const char *why,
                           const stapling_record *answer, apr_time_t now)
{
    int have_good = stapling_record_stapleable(prev, now, 0);

    *rec = *prev;
    if (!have_good && answer && ocspstaple_replaces(answer, prev, now)) {
        *rec = *answer;
    }
    else if (!have_good && !stapling_record_stapleable(prev, now, 1)) {
        rec->der = NULL;
        rec->der_len = 0;
    }
    rec->origin = e->origin;
    rec->attempted_at = now;
    rec->failures = prev->failures + 1;
    rec->next_attempt = refresh_retry_at(now, rec->failures, have_good,
                                         refresh_random());
    rec->error = why;
}

/* What handshakes get after a failure, for the log line. */
static const char *stapling_now(const ocspstaple_entry *e,
                                const stapling_record *rec, apr_time_t now)
{
    if (stapling_record_stapleable(rec, now, 0)) {
        return "still stapling the previous response until its nextUpdate";
    }
    return stapling_record_stapleable(rec, now, ocspstaple_returns_errors(e->s))
           ? "stapling the responder's own answer "
             "(OCSPStaplingReturnResponderErrors on)"
           : "not stapling";
}

static void update_failed(ocspstaple_state *st, ocspstaple_entry *e,
                          const stapling_record *prev, const char *why,
                          const stapling_record *answer, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    stapling_record rec;

    record_failure(&rec, e, prev, why, answer, now);
    ap_log_error(APLOG_MARK, stapling_record_stapleable(prev, now, 0)
                 ? APLOG_WARNING : APLOG_ERR, 0, e->s, "OCSPSTAPLE0003: %s: "
                 "update failed: %s; %s; retry in %" APR_TIME_T_FMT " s",
                 e->label, why, stapling_now(e, &rec, now),
                 apr_time_sec(rec.next_attempt - now));
    ocspstaple_publish(st, e, &rec, 1, p);
}

/* "unknown" is the CA's signed word, but nothing a client can act on: a
 * failure for the schedule, and never over a good or revoked response. */
static void update_unknown(ocspstaple_state *st, ocspstaple_entry *e,
                           const stapling_record *prev, const ocsp_job *job,
                           const stapling_record *answer, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    stapling_record rec;

    record_failure(&rec, e, prev, apr_psprintf(p, "%s: status unknown",
                                               job->answer->url),
                   answer, now);
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, e->s, "OCSPSTAPLE0005: %s: "
                 "responder %s does not know this certificate (status "
                 "unknown): is it the right responder for this issuer?; %s; "
                 "retry in %" APR_TIME_T_FMT " s", e->label, job->answer->url,
                 stapling_now(e, &rec, now),
                 apr_time_sec(rec.next_attempt - now));
    ocspstaple_publish(st, e, &rec, 1, p);
}

/* A verified answer that is not newer than what we have: an older one
 * (a stale CDN edge, a replay) or the same one again. */
static const char *not_newer(const ocsp_answer *ans,
                             const stapling_record *prev, apr_pool_t *p)
{
    if (ans->verdict.this_update < prev->verdict.this_update) {
        return apr_psprintf(p, "%s: answered a response older than the one "
                            "verified before (thisUpdate %s, ours %s): not "
                            "taken", ans->url,
                            fmt_time(ans->verdict.this_update, p),
                            fmt_time(prev->verdict.this_update, p));
    }
    return apr_psprintf(p, "%s: answered the response verified before "
                        "(thisUpdate %s): no newer one yet", ans->url,
                        fmt_time(ans->verdict.this_update, p));
}

typedef struct {
    ocspstaple_state *st;
    ocspstaple_entry **entries;
    stapling_record *prev;            /* each entry's copy before the round */
    ocsp_job *jobs;
    int ok;
    apr_pool_t *p;
    int batch;                        /* store files synced once, at the end */
    int unsynced;                     /* store files written, not synced yet */
} round;

/* Only the round's first GET to a responder can be refused (the rest are
 * POSTed), so this is one line per responder and round: the admin sees why
 * it gets POSTs, and that OCSPStaplingUsePOST would save the refused GET. */
static void log_get_refused(const ocspstaple_entry *e, const ocsp_job *job)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, e->s, "OCSPSTAPLE0006: %s: "
                 "responder %s refused an RFC 5019 GET (HTTP %ld): the request "
                 "went again as a POST, and so does every other one to it in "
                 "this round; \"OCSPStaplingUsePOST on\" skips the GET",
                 e->label, job->get_refused_url, job->get_refused_status);
}

/* From this many certificates in a round on, the store is synced once at
 * its end (one syncfs) instead of twice per file: the start of 10,000
 * certificates spent 20-50 s in fsync. A routine renewal of one or a few
 * keeps the per-file sync (a syncfs flushes the whole file system). */
#define STORE_BATCH_MIN 16

static void sync_store(ocspstaple_state *st, int files, apr_pool_t *p)
{
    apr_status_t rv = ocsp_store_sync(st->store_dir);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "OCSPSTAPLE0038: cannot sync the %d responses just "
                     "written to the store %s (%s); a crash now may leave "
                     "some of them unusable (they are fetched again)", files,
                     st->store_dir, ocspstaple_strerror(rv, p));
    }
}

/* As each certificate's fetch ends: published at once, not when the slowest
 * responder of the round has answered. */
static void job_done(ocsp_job *job, void *baton)
{
    round *r = baton;
    int i = (int)(job - r->jobs);
    ocspstaple_entry *e = r->entries[i];
    const stapling_record *prev = &r->prev[i];
    apr_time_t now = apr_time_now();
    stapling_record ans;

    memset(&ans, 0, sizeof(ans));
    if (job->get_refused_url) {
        log_get_refused(e, job);
    }
    if (job->answer) {
        ans = answer_record(e, job->answer, now);
    }
    ocspstaple_count(e, OCSPSTAPLE_FETCHES);
    if (job->rv == APR_SUCCESS
        && ans.verdict.cert_status != OCSP_CERT_UNKNOWN
        && ocspstaple_replaces(&ans, prev, now)) {
        update_ok(r->st, e, prev, job, &ans,
                  r->batch ? &r->unsynced : NULL, r->p);
        r->ok++;
        return;
    }
    ocspstaple_count(e, OCSPSTAPLE_FAILURES);
    if (job->rv != APR_SUCCESS) {
        update_failed(r->st, e, prev, job->err, job->answer ? &ans : NULL,
                      r->p);
    }
    else if (ans.verdict.cert_status == OCSP_CERT_UNKNOWN) {
        update_unknown(r->st, e, prev, job, &ans, r->p);
    }
    else {
        update_failed(r->st, e, prev, not_newer(job->answer, prev, r->p),
                      NULL, r->p);
    }
}

int ocspstaple_update(ocspstaple_state *st, const apr_array_header_t *entries,
                      apr_pool_t *ptemp)
{
    int i, n = entries->nelts;
    round r = { st, (ocspstaple_entry **)entries->elts,
                apr_pcalloc(ptemp, sizeof(stapling_record) * (n ? n : 1)),
                apr_pcalloc(ptemp, sizeof(ocsp_job) * (n ? n : 1)), 0, ptemp,
                n >= STORE_BATCH_MIN, 0 };

    for (i = 0; i < n; i++) {
        ocspstaple_entry *e = r.entries[i];
        ocsp_http_opts *opts = apr_pcalloc(ptemp, sizeof(*opts));

        opts->timeout = ocspstaple_timeout(e->s);
        opts->proxy = ocspstaple_proxy(e->s);
        opts->ca_file = ocspstaple_responder_ca_file(e->s);
        opts->use_post = ocspstaple_use_post(e->s);
        r.jobs[i].cert = e->cert;
        r.jobs[i].urls = e->urls;
        r.jobs[i].opts = opts;
        ocspstaple_local_get(e, &r.prev[i], ptemp);
    }
    ocsp_fetch_batch(r.jobs, n, OCSPSTAPLE_FETCH_PARALLEL, job_done, &r,
                     ptemp);
    if (r.unsynced) {
        sync_store(st, r.unsynced, ptemp);
    }
    return r.ok;
}

apr_status_t ocspstaple_load_file(stapling_record *rec, const ocsp_cert *cert,
                                  const char *path, int flags,
                                  const char **perr, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    memset(rec, 0, sizeof(*rec));
    rec->source = STAPLING_FROM_FILE;
    rv = ocsp_file_read((unsigned char **)&rec->der, &rec->der_len,
                        &rec->fetched_at, path, OCSP_MAX_RESPONSE_SIZE, flags,
                        p);
    if (rv != APR_SUCCESS) {
        if (perr) {
            *perr = ocsp_file_strerror(rv, p);
        }
        return rv;
    }
    if (rec->fetched_at > now) {
        rec->fetched_at = now;
    }
    return ocsp_response_verify(&rec->verdict, cert, rec->der, rec->der_len,
                                now, perr, p);
}
