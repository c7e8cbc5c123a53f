/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * /ocsp-status?format=prometheus: the status page's rows as Prometheus
 * metrics (text exposition format 0.0.4), one family after the other, so
 * that every family's samples are together as the format requires. Like
 * the other pages it reads only the rows the handler collected from this
 * process's own copies and the shared counters: never a cache, never the
 * network.
 */

#include <apr_strings.h>
#include <httpd.h>
#include <http_protocol.h>

#include "ocspstaple_status.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef ocspstaple_status_row row;

/* A sample's value text for one row, or NULL for no sample (Prometheus has
 * no "unknown" but NaN, and a missing sample is what PromQL comparisons and
 * absent() are made for). */
typedef const char *(*value_fn)(const row *rw, apr_time_t now,
                                apr_pool_t *p);

typedef struct {
    const char *name;
    const char *type;                   /* gauge, counter */
    const char *help;
    value_fn    value;
} family;

/* A label value escaped as the format says: backslash, double quote and
 * line feed, nothing else (any other UTF-8 stands as it is). */
static const char *label_value(const char *s, apr_pool_t *p)
{
    char *out, *o;

    o = out = apr_palloc(p, strlen(s) * 2 + 1);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        }
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* {subject="...",serial="...",id="...",vhost="..."}: what identifies a
 * certificate on the status page. vhost is the page's "Virtual hosts"
 * text, every server name serving it ("a.test, b.test"), so that one
 * series stays one series whichever vhost mod_ssl offered first. */
static const char *labels(const ocspstaple_entry *e, apr_pool_t *p)
{
    char id[2 * OCSPSTAPLE_ID_LEN + 1];

    ap_bin2hex(e->id, OCSPSTAPLE_ID_LEN, id);
    return apr_pstrcat(p, "{subject=\"",
                       label_value(ocsp_cert_subject(e->cert), p),
                       "\",serial=\"",
                       label_value(ocsp_cert_serial(e->cert), p),
                       "\",id=\"", id, "\",vhost=\"",
                       label_value(ocspstaple_entry_vhosts(e, p), p), "\"}",
                       NULL);
}

/* A time difference in seconds with millisecond precision, formatted from
 * integers: exact, and no locale or %g corner cases. */
static const char *seconds(apr_interval_time_t d, apr_pool_t *p)
{
    apr_int64_t ms = d / 1000, abs_ms = ms < 0 ? -ms : ms;

    return apr_psprintf(p, "%s%" APR_INT64_T_FMT ".%03d", ms < 0 ? "-" : "",
                        abs_ms / 1000, (int)(abs_ms % 1000));
}

static const char *flag(int b)
{
    return b ? "1" : "0";
}

static const char *count(const row *rw, ocspstaple_counter which,
                         apr_pool_t *p)
{
    return apr_psprintf(p, "%u", ocspstaple_counter_value(rw->e, which));
}

/* ---------------------------------------------------------- the families */

static const char *stapled(const row *rw, apr_time_t now, apr_pool_t *p)
{
    (void)now;
    (void)p;
    return flag(rw->stapling);
}

/* Only while a response with a nextUpdate is stapled: a held response that
 * is no longer stapled is ocspstaple_stapled 0's business. */
static const char *next_update(const row *rw, apr_time_t now, apr_pool_t *p)
{
    apr_time_t t = rw->rec.verdict.next_update;

    return rw->stapling && t ? seconds(t - now, p) : NULL;
}

/* No fetch is planned for an OCSPStaplingFile, nor before the first plan;
 * a negative value is a fetch that is due (or running). */
static const char *next_fetch(const row *rw, apr_time_t now, apr_pool_t *p)
{
    apr_time_t t = rw->rec.next_attempt;

    return rw->e->static_file || !t ? NULL : seconds(t - now, p);
}

static const char *failures_in_a_row(const row *rw, apr_time_t now,
                                     apr_pool_t *p)
{
    (void)now;
    return apr_psprintf(p, "%d", rw->rec.failures);
}

static const char *must_staple(const row *rw, apr_time_t now, apr_pool_t *p)
{
    (void)now;
    (void)p;
    return flag(rw->e->must_staple);
}

static const char *fetches(const row *rw, apr_time_t now, apr_pool_t *p)
{
    (void)now;
    return count(rw, OCSPSTAPLE_FETCHES, p);
}

static const char *failures(const row *rw, apr_time_t now, apr_pool_t *p)
{
    (void)now;
    return count(rw, OCSPSTAPLE_FAILURES, p);
}

static const char *staples(const row *rw, apr_time_t now, apr_pool_t *p)
{
    (void)now;
    return count(rw, OCSPSTAPLE_STAPLES, p);
}

/* The counters are the shared ones of the status page: every process of
 * this server together, since the last (graceful) restart, which starts
 * them at 0 again (a counter reset, as rate() expects). */
static const family families[] = {
    { "ocspstaple_stapled", "gauge",
      "1 if a valid OCSP response is stapled now, else 0.", stapled },
    { "ocspstaple_next_update_seconds", "gauge",
      "Seconds until the stapled response's nextUpdate; no sample when "
      "nothing is stapled or the response has no nextUpdate.", next_update },
    { "ocspstaple_next_fetch_seconds", "gauge",
      "Seconds until the next planned fetch (negative: due); no sample for "
      "an OCSPStaplingFile.", next_fetch },
    { "ocspstaple_failures_in_a_row", "gauge",
      "Failed fetches since the last good one.", failures_in_a_row },
    { "ocspstaple_must_staple", "gauge",
      "1 if the certificate is OCSP Must-Staple (TLS Feature "
      "status_request), else 0.", must_staple },
    { "ocspstaple_fetches_total", "counter",
      "OCSP fetches since the server (re)started, all processes.", fetches },
    { "ocspstaple_fetch_failures_total", "counter",
      "Failed OCSP fetches since the server (re)started, all processes.",
      failures },
    { "ocspstaple_staples_total", "counter",
      "Handshakes that got a staple since the server (re)started, all "
      "processes.", staples },
};

static void write_family(request_rec *r, const family *f,
                         const apr_array_header_t *rows,
                         const char *const *row_labels, apr_time_t now)
{
    int i;

    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
               f->type);
    for (i = 0; i < rows->nelts; i++) {
        const char *v = f->value(&APR_ARRAY_IDX(rows, i, row), now, r->pool);

        if (v) {
            ap_rprintf(r, "%s%s %s\n", f->name, row_labels[i], v);
        }
    }
}

void ocspstaple_metrics_page(request_rec *r, const apr_array_header_t *rows,
                             apr_time_t now)
{
    /* Escaped once per certificate, written once per family. */
    const char **row_labels = apr_palloc(r->pool, sizeof(char *)
                                         * (apr_size_t)(rows->nelts + 1));
    apr_size_t k;
    int i;

    for (i = 0; i < rows->nelts; i++) {
        row_labels[i] = labels(APR_ARRAY_IDX(rows, i, row).e, r->pool);
    }
    ap_set_content_type(r, METRICS_CONTENT_TYPE);
    for (k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
        write_family(r, &families[k], rows, row_labels, now);
    }
}
