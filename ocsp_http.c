/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * OCSP over HTTP with libcurl: every exchange bounded in time and size,
 * CURLOPT_NOSIGNAL because we run in threads, proxies from the usual
 * environment variables unless one is configured. No httpd headers.
 */

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <curl/curl.h>

#include "ocsp_http.h"

apr_status_t ocsp_fail(const char **perr, apr_status_t rv, apr_pool_t *p,
                       const char *fmt, ...)
{
    va_list ap;

    if (perr) {
        va_start(ap, fmt);
        *perr = apr_pvsprintf(p, fmt, ap);
        va_end(ap);
    }
    return rv;
}

apr_status_t ocsp_fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
        ? APR_SUCCESS : APR_EGENERAL;
}

/* The one place where libcurl's codes become APR's. */
/* Only http and https, whatever the AIA URL says (no file://). The
 * string form arrived in libcurl 7.85 (the bitmask is deprecated there);
 * Ubuntu 22.04 ships 7.81 and RHEL 9 7.76. */
static void restrict_protocols(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

static apr_status_t curl_to_apr(CURLcode code)
{
    switch (code) {
    case CURLE_OK:                   return APR_SUCCESS;
    case CURLE_OPERATION_TIMEDOUT:   return APR_TIMEUP;
    case CURLE_COULDNT_CONNECT:      return APR_ECONNREFUSED;
    case CURLE_GOT_NOTHING:          /* connection dropped before an answer */
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:           return APR_ECONNRESET;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return APR_EHOSTUNREACH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return APR_EINVAL;
    case CURLE_OUT_OF_MEMORY:        return APR_ENOMEM;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:    return APR_ENOSPC;
    default:                         return APR_EGENERAL;
    }
}

/* One exchange in progress: the handle and what it needs to stay alive. */
typedef struct {
    ocsp_http_req *req;
    CURL *h;
    struct curl_slist *headers;
    unsigned char *data;
    apr_size_t len, cap, max;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    apr_pool_t *p;
} xfer;

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    apr_size_t n = size * nmemb;
    unsigned char *grown;

    if (n > x->max - x->len) {
        x->too_large = 1;
        return 0;               /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    if (x->len + n > x->cap) {
        x->cap = (x->len + n) * 2 > x->max ? x->max : (x->len + n) * 2;
        grown = apr_palloc(x->p, x->cap);
        if (x->len) {
            memcpy(grown, x->data, x->len);
        }
        x->data = grown;
    }
    memcpy(x->data + x->len, ptr, n);
    x->len += n;
    return n;
}

static int is_ocsp_content_type(const char *ct)
{
    static const char want[] = "application/ocsp-response";
    apr_size_t n = sizeof(want) - 1;

    return ct && !strncasecmp(ct, want, n)
        && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static apr_status_t xfer_setup(xfer *x, ocsp_http_req *req, apr_pool_t *p)
{
    const ocsp_http_opts *opts = req->opts;
    long ms = (long)apr_time_as_msec(opts->timeout);

    memset(x, 0, sizeof(*x));
    x->req = req;
    x->p = p;
    x->max = opts->max_size ? opts->max_size : OCSP_MAX_RESPONSE_SIZE;
    x->headers = curl_slist_append(NULL,
                                   "Content-Type: application/ocsp-request");
    if (!x->headers || !(x->h = curl_easy_init())) {
        return APR_ENOMEM;
    }
    ms = ms > 0 ? ms : 1L;
    curl_easy_setopt(x->h, CURLOPT_URL, req->url);
    restrict_protocols(x->h);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, ms);      /* DNS..last byte */
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(x->h, CURLOPT_POST, 1L);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, (const char *)req->body);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "mod_ocspstaple");
    curl_easy_setopt(x->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    if (opts->proxy) {
        curl_easy_setopt(x->h, CURLOPT_PROXY, opts->proxy);
    }
    /* Only where https responders' certificates are checked from; peer and
     * host verification stay on whatever is configured. */
    if (opts->ca_file) {
        curl_easy_setopt(x->h, CURLOPT_CAINFO, opts->ca_file);
    }
    return APR_SUCCESS;
}

/* Judges a finished exchange into req->rv/resp/err. */
static void xfer_finish(xfer *x, CURLcode code)
{
    ocsp_http_req *req = x->req;
    long status = 0;
    char *ctype = NULL;

    req->resp = NULL;
    req->resp_len = 0;
    if (code != CURLE_OK) {
        req->rv = x->too_large || code == CURLE_FILESIZE_EXCEEDED
            ? ocsp_fail(&req->err, APR_ENOSPC, x->p, "response larger than %"
                        APR_SIZE_T_FMT " bytes", x->max)
            : ocsp_fail(&req->err, curl_to_apr(code), x->p, "%s%s%s%s",
                        req->opts->proxy ? "via proxy " : "",
                        req->opts->proxy ? req->opts->proxy : "",
                        req->opts->proxy ? ": " : "",
                        x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        return;
    }
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ctype);
    if (status != 200) {
        req->rv = ocsp_fail(&req->err, OCSP_EVERIFY, x->p, "HTTP status %ld",
                            status);
    }
    else if (!is_ocsp_content_type(ctype)) {
        req->rv = ocsp_fail(&req->err, OCSP_EVERIFY, x->p, "content type "
                            "'%s', expected application/ocsp-response",
                            ctype ? ctype : "(none)");
    }
    else if (x->len == 0) {
        req->rv = ocsp_fail(&req->err, OCSP_EVERIFY, x->p,
                            "empty response body");
    }
    else {
        req->rv = APR_SUCCESS;
        req->err = NULL;
        req->resp = x->data;
        req->resp_len = x->len;
    }
}

static void xfer_cleanup(xfer *x)
{
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->headers);
    x->h = NULL;
    x->headers = NULL;
}

apr_status_t ocsp_http_post(unsigned char **pbody, apr_size_t *plen,
                            const char *url, const unsigned char *req,
                            apr_size_t req_len, const ocsp_http_opts *opts,
                            const char **perr, apr_pool_t *p)
{
    ocsp_http_req r = { url, req, req_len, opts, NULL, 0, NULL, 0, NULL };
    xfer x;

    if ((r.rv = xfer_setup(&x, &r, p)) != APR_SUCCESS) {
        r.rv = ocsp_fail(&r.err, r.rv, p, "cannot set up the HTTP request");
    }
    else {
        xfer_finish(&x, curl_easy_perform(x.h));
    }
    xfer_cleanup(&x);
    *pbody = r.resp;
    *plen = r.resp_len;
    if (perr) {
        *perr = r.err;
    }
    return r.rv;
}

/* Starts requests from next() until max_parallel are in flight. */
static int start_more(CURLM *multi, int running, int max_parallel,
                      ocsp_http_next_fn *next, ocsp_http_done_fn *done,
                      void *ud, apr_pool_t *p)
{
    ocsp_http_req *req;

    while (running < max_parallel && (req = next(ud)) != NULL) {
        xfer *x = apr_palloc(p, sizeof(*x));

        if (xfer_setup(x, req, p) != APR_SUCCESS
            || curl_multi_add_handle(multi, x->h) != CURLM_OK) {
            req->rv = ocsp_fail(&req->err, APR_ENOMEM, p,
                                "cannot set up the HTTP request");
            xfer_cleanup(x);
            done(req, ud);
            continue;
        }
        running++;
    }
    return running;
}

/* Hands every finished exchange to done(); returns how many finished. */
static int reap_finished(CURLM *multi, ocsp_http_done_fn *done, void *ud)
{
    CURLMsg *msg;
    int left, finished = 0;
    xfer *x;

    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        xfer_finish(x, msg->data.result);
        curl_multi_remove_handle(multi, x->h);
        xfer_cleanup(x);
        done(x->req, ud);
        finished++;
    }
    return finished;
}

apr_status_t ocsp_http_run(int max_parallel, ocsp_http_next_fn *next,
                           ocsp_http_done_fn *done, void *ud, apr_pool_t *p)
{
    CURLM *multi = curl_multi_init();
    int in_flight = 0, still_running = 0;

    if (!multi) {
        return APR_ENOMEM;
    }
    in_flight = start_more(multi, 0, max_parallel, next, done, ud, p);
    while (in_flight > 0) {
        curl_multi_perform(multi, &still_running);
        in_flight -= reap_finished(multi, done, ud);
        in_flight = start_more(multi, in_flight, max_parallel, next, done, ud,
                               p);
        if (in_flight > 0) {
            curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
    }
    curl_multi_cleanup(multi);
    return APR_SUCCESS;
}
