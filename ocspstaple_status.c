/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * "Is every certificate stapled, until when, and why not?": the
 * ocspstaple-status handler (HTML, JSON with ?format=json, Prometheus
 * metrics with ?format=prometheus: ocspstaple_metrics.c) and a summary
 * on mod_status's server-status page. Both read the serving process's own
 * copies, without their DER: a scrape costs the same with a hung cache, and
 * little memory with thousands of certificates.
 */

#include <apr_strings.h>
#include <apr_time.h>
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>

#include "ocspstaple_local.h"
#include "ocspstaple_status.h"

#define STATUS_HANDLER "ocspstaple-status"

typedef ocspstaple_status_row row;

static const char *iso_time(apr_time_t t, apr_pool_t *p)
{
    apr_time_exp_t tm;
    char buf[32];
    apr_size_t len;

    if (!t || apr_time_exp_gmt(&tm, t) != APR_SUCCESS) {
        return NULL;
    }
    apr_strftime(buf, &len, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrdup(p, buf);
}

static const char *cert_status(const row *rw)
{
    if (!rw->rec.der_len) {
        return "none";
    }
    return rw->rec.verdict.resp_status ? "responder-error"
                                       : ocsp_cert_status_str(
                                             rw->rec.verdict.cert_status);
}

/* Every certificate's row, stapling judged at now. */
static apr_array_header_t *collect(const ocspstaple_state *st,
                                   request_rec *r, apr_time_t now)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_array_header_t *rows = apr_array_make(r->pool, entries->nelts,
                                              sizeof(row));
    int i;

    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);
        row *rw = apr_array_push(rows);

        rw->e = e;
        ocspstaple_local_peek(e, &rw->rec, r->pool);
        rw->stapling = stapling_record_stapleable(&rw->rec, now,
                                                  ocspstaple_returns_errors(
                                                      e->s));
    }
    return rows;
}

/* ------------------------------------------------------------------- JSON */

static const char *json_str(const char *s, apr_pool_t *p)
{
    char *out, *o;

    if (!s) {
        return "null";
    }
    o = out = apr_palloc(p, strlen(s) * 6 + 3);
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        }
        else if (c < 0x20) {
            o += apr_snprintf(o, 7, "\\u%04x", c);
        }
        else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* A JSON array of strings, in time linear in its length (a wildcard
 * certificate may serve thousands of virtual hosts). */
static const char *json_list(const apr_array_header_t *items, apr_pool_t *p)
{
    apr_array_header_t *quoted = apr_array_make(p, items->nelts,
                                                sizeof(const char *));
    int i;

    for (i = 0; i < items->nelts; i++) {
        APR_ARRAY_PUSH(quoted, const char *) =
            json_str(APR_ARRAY_IDX(items, i, const char *), p);
    }
    return apr_pstrcat(p, "[", apr_array_pstrcat(p, quoted, ','), "]", NULL);
}

static void json_row(request_rec *r, const row *rw, int first)
{
    const ocspstaple_entry *e = rw->e;
    const stapling_record *rec = &rw->rec;
    apr_pool_t *p = r->pool;
    char id[2 * OCSPSTAPLE_ID_LEN + 1];

    ap_bin2hex(e->id, OCSPSTAPLE_ID_LEN, id);
    ap_rprintf(r, "%s\n  {\"id\": \"%s\", \"subject\": %s, \"serial\": %s, "
               "\"vhosts\": %s, \"responders\": %s, \"static_file\": %s, "
               "\"must_staple\": %s, \"stapling\": %s, \"cert_status\": \"%s\","
               " \"response_status\": \"%s\", \"this_update\": %s, "
               "\"next_update\": %s, \"expires\": %s, \"source\": %s, "
               "\"fetched_by\": %s, "
               "\"last_fetch\": %s, \"last_attempt\": %s, "
               "\"last_result\": \"%s\", \"next_fetch\": %s, "
               "\"failures_in_a_row\": %d, \"fetches\": %u, \"failures\": %u, "
               "\"staples\": %u, \"last_error\": %s}",
               first ? "" : ",", id, json_str(ocsp_cert_subject(e->cert), p),
               json_str(ocsp_cert_serial(e->cert), p), json_list(e->vhosts, p),
               json_list(e->urls, p), json_str(e->static_file, p),
               e->must_staple ? "true" : "false",
               rw->stapling ? "true" : "false", cert_status(rw),
               ocsp_resp_status_str(rec->verdict.resp_status),
               json_str(iso_time(rec->verdict.this_update, p), p),
               json_str(iso_time(rec->verdict.next_update, p), p),
               /* when what is held stops being stapled: nextUpdate, the
                * cap without one, or an error answer's fetch + 10 min */
               json_str(rec->der_len ? iso_time(rec->verdict.expires, p)
                                     : NULL, p),
               json_str(rec->der_len ? stapling_source_str(rec->source) : NULL,
                        p),
               json_str(rec->origin, p),
               json_str(iso_time(rec->fetched_at, p), p),
               json_str(iso_time(rec->attempted_at, p), p),
               rec->failures ? "failed" : rec->attempted_at ? "ok" : "none",
               json_str(e->static_file ? NULL
                        : iso_time(rec->next_attempt, p), p),
               rec->failures,
               ocspstaple_counter_value(e, OCSPSTAPLE_FETCHES),
               ocspstaple_counter_value(e, OCSPSTAPLE_FAILURES),
               ocspstaple_counter_value(e, OCSPSTAPLE_STAPLES),
               json_str(rec->failures ? rec->error : NULL, p));
}

static void json_page(request_rec *r, const apr_array_header_t *rows,
                      const char *origin)
{
    int i;

    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"server\": %s, \"time\": %s, \"certificates\": [",
               json_str(origin, r->pool),
               json_str(iso_time(apr_time_now(), r->pool), r->pool));
    for (i = 0; i < rows->nelts; i++) {
        json_row(r, &APR_ARRAY_IDX(rows, i, row), i == 0);
    }
    ap_rputs("\n]}\n", r);
}

/* ------------------------------------------------------------------- HTML */

static const char *html(request_rec *r, const char *s)
{
    return s ? ap_escape_html(r->pool, s) : "-";
}

static void html_row(request_rec *r, const row *rw)
{
    const ocspstaple_entry *e = rw->e;
    const stapling_record *rec = &rw->rec;
    apr_pool_t *p = r->pool;

    ap_rprintf(r, "<tr class=\"%s\"><td>%s%s</td><td>%s</td><td>%s</td>"
               "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
               "<td>%s</td><td>%s</td><td>%s</td><td>%u / %u / %u</td>"
               "<td>%s</td></tr>\n",
               rw->stapling ? "ok" : "bad",
               html(r, ocsp_cert_subject(e->cert)),
               e->must_staple ? " <b>(Must-Staple)</b>" : "",
               html(r, ocsp_cert_serial(e->cert)),
               html(r, ocspstaple_entry_vhosts(e, p)),
               e->static_file ? html(r, e->static_file)
                              : html(r, APR_ARRAY_IDX(e->urls, 0,
                                                      const char *)),
               rw->stapling ? "yes" : "<b>NO</b>", cert_status(rw),
               html(r, iso_time(rec->verdict.this_update, p)),
               html(r, iso_time(rec->verdict.next_update, p)),
               rec->der_len ? stapling_source_str(rec->source) : "-",
               html(r, iso_time(rec->attempted_at, p)),
               e->static_file ? "never (file)"
                              : html(r, iso_time(rec->next_attempt, p)),
               ocspstaple_counter_value(e, OCSPSTAPLE_FETCHES),
               ocspstaple_counter_value(e, OCSPSTAPLE_FAILURES),
               ocspstaple_counter_value(e, OCSPSTAPLE_STAPLES),
               html(r, rec->failures ? rec->error : NULL));
}

static void html_page(request_rec *r, const apr_array_header_t *rows,
                      const char *origin)
{
    int i;

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<!DOCTYPE html>\n<html><head><title>OCSP stapling status"
               "</title><style>table{border-collapse:collapse}td,th{border:"
               "1px solid #999;padding:2px 6px}tr.bad{background:#fdd}"
               "</style></head><body>\n<h1>OCSP stapling: %s</h1>\n"
               "<p>%d certificate(s). <a href=\"?format=json\">JSON</a> "
               "<a href=\"?format=prometheus\">Prometheus</a></p>\n"
               "<table><tr><th>Certificate</th><th>Serial</th>"
               "<th>Virtual hosts</th><th>Responder</th><th>Stapling</th>"
               "<th>Status</th><th>thisUpdate</th><th>nextUpdate</th>"
               "<th>Source</th><th>Last fetch</th><th>Next fetch</th>"
               "<th>Fetches / failures / staples</th><th>Last error</th>"
               "</tr>\n", html(r, origin), rows->nelts);
    for (i = 0; i < rows->nelts; i++) {
        html_row(r, &APR_ARRAY_IDX(rows, i, row));
    }
    ap_rputs("</table></body></html>\n", r);
}

/* ------------------------------------------------------------------ hooks */

typedef enum { PAGE_HTML, PAGE_JSON, PAGE_PROMETHEUS } page_format;

/* The format= argument of the query string, a whole value: "format=jsonp"
 * is no request for JSON. */
static page_format wanted_format(request_rec *r)
{
    char *args, *arg, *last;

    if (!r->args) {
        return PAGE_HTML;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (arg = apr_strtok(args, "&", &last); arg;
         arg = apr_strtok(NULL, "&", &last)) {
        if (!strcmp(arg, "format=json")) {
            return PAGE_JSON;
        }
        if (!strcmp(arg, "format=prometheus")) {
            return PAGE_PROMETHEUS;
        }
    }
    return PAGE_HTML;
}

int ocspstaple_status_handler(ocspstaple_state *st, request_rec *r)
{
    apr_array_header_t *rows;
    const char *origin;
    apr_time_t now;

    if (!r->handler || strcmp(r->handler, STATUS_HANDLER)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    now = apr_time_now();       /* one instant for stapling and countdowns */
    rows = collect(st, r, now);
    origin = ocspstaple_registry_origin(st->registry);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    switch (wanted_format(r)) {
    case PAGE_JSON:
        json_page(r, rows, origin);
        break;
    case PAGE_PROMETHEUS:
        ocspstaple_metrics_page(r, rows, now);
        break;
    default:
        html_page(r, rows, origin);
    }
    return OK;
}

int ocspstaple_status_summary(ocspstaple_state *st, request_rec *r,
                              int flags)
{
    apr_array_header_t *rows = collect(st, r, apr_time_now());
    int i, stapling = 0, must_staple_down = 0;

    for (i = 0; i < rows->nelts; i++) {
        const row *rw = &APR_ARRAY_IDX(rows, i, row);

        stapling += rw->stapling;
        must_staple_down += rw->e->must_staple && !rw->stapling;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "OCSPStaplingCertificates: %d\nOCSPStaplingStapled: %d\n"
                   "OCSPStaplingMustStapleDown: %d\n", rows->nelts, stapling,
                   must_staple_down);
    }
    else {
        ap_rprintf(r, "<hr>\n<h2>OCSP stapling (mod_ocspstaple)</h2>\n<p>%d "
                   "certificate(s), %d stapled, %d not stapled%s.</p>\n",
                   rows->nelts, stapling, rows->nelts - stapling,
                   must_staple_down ? ", <b>Must-Staple certificates without "
                                      "a staple</b>" : "");
    }
    return OK;
}
