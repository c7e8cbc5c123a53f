/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * OCSP over HTTP with libcurl: every exchange bounded in time and size,
 * CURLOPT_NOSIGNAL because we run in threads, proxies from the usual
 * environment variables unless one is configured, RFC 5019 GETs where they
 * fit, connections kept open for the next request. No httpd headers.
 */

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <curl/curl.h>
#include <openssl/evp.h>

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

/* The one place where libcurl's codes become APR's. */
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

/* Base64 with the three characters that mean something in a URL path or
 * query percent-encoded (RFC 5019 section 5). */
static char *url_base64(const unsigned char *der, apr_size_t len,
                        apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    char *b64 = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    char *out = apr_palloc(p, 3 * 4 * ((len + 2) / 3) + 1), *o = out;
    const unsigned char *c;

    EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
    for (c = (const unsigned char *)b64; *c; c++) {
        if (*c == '+' || *c == '/' || *c == '=') {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
        else {
            *o++ = (char)*c;
        }
    }
    *o = '\0';
    return out;
}

apr_status_t ocsp_http_get_url(const char **pget, const char *url,
                               const unsigned char *der, apr_size_t der_len,
                               apr_pool_t *p)
{
    apr_size_t n = strlen(url);
    const char *enc;

    *pget = NULL;
    if (strpbrk(url, "?#")) {
        return APR_EINVAL;
    }
    /* 4/3 of the DER, at best: longer ones cannot fit, whatever they hold */
    if (der_len == 0 || der_len > OCSP_GET_MAX_ENCODED) {
        return APR_ENOSPC;
    }
    enc = url_base64(der, der_len, p);
    if (strlen(enc) > OCSP_GET_MAX_ENCODED) {
        return APR_ENOSPC;
    }
    *pget = apr_pstrcat(p, url, n && url[n - 1] == '/' ? "" : "/", enc, NULL);
    return APR_SUCCESS;
}

int ocsp_http_get_refused(long status)
{
    return status == 405 || status == 400 || status == 501;
}

/* Connections are kept open between fetches: one must not leak into the
 * programs a server runs (CGI) while it sits idle. */
static int sockopt_cloexec(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    int flags = fcntl(fd, F_GETFD);

    (void)ud;
    (void)purpose;
    if (flags >= 0) {
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    return CURL_SOCKOPT_OK;
}

/* GET req->get_url, or POST the body to req->url. */
static apr_status_t set_method(xfer *x, const ocsp_http_req *req)
{
    if (req->get_url) {
        curl_easy_setopt(x->h, CURLOPT_URL, req->get_url);
        curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
        return APR_SUCCESS;
    }
    x->headers = curl_slist_append(NULL,
                                   "Content-Type: application/ocsp-request");
    if (!x->headers) {
        return APR_ENOMEM;
    }
    curl_easy_setopt(x->h, CURLOPT_URL, req->url);
    curl_easy_setopt(x->h, CURLOPT_POST, 1L);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, (const char *)req->body);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    return APR_SUCCESS;
}

static apr_status_t xfer_setup(xfer *x, ocsp_http_req *req, apr_pool_t *p)
{
    const ocsp_http_opts *opts = req->opts;
    long ms = (long)apr_time_as_msec(opts->timeout);

    memset(x, 0, sizeof(*x));
    x->req = req;
    x->p = p;
    x->max = opts->max_size ? opts->max_size : OCSP_MAX_RESPONSE_SIZE;
    if (!(x->h = curl_easy_init()) || set_method(x, req) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    ms = ms > 0 ? ms : 1L;
    restrict_protocols(x->h);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, ms);      /* DNS..last byte */
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(x->h, CURLOPT_SOCKOPTFUNCTION, sockopt_cloexec);
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
    req->status = 0;
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
    req->status = status;
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

/* ocsp_http_post: one request through ocsp_http_run, so that it too uses
 * (and leaves) the connections kept open. */
typedef struct {
    ocsp_http_req *req;
    int given;
} one_request;

static ocsp_http_req *one_next(void *ud)
{
    one_request *one = ud;

    return one->given++ ? NULL : one->req;
}

static void one_done(ocsp_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
}

apr_status_t ocsp_http_post(unsigned char **pbody, apr_size_t *plen,
                            const char *url, const unsigned char *req,
                            apr_size_t req_len, const ocsp_http_opts *opts,
                            const char **perr, apr_pool_t *p)
{
    ocsp_http_req r;
    one_request one = { &r, 0 };
    apr_status_t rv;

    memset(&r, 0, sizeof(r));
    r.url = url;
    r.body = req;
    r.body_len = req_len;
    r.opts = opts;
    if ((rv = ocsp_http_run(1, one_next, one_done, &one, p)) != APR_SUCCESS) {
        r.rv = ocsp_fail(&r.err, rv, p, "cannot set up the HTTP request");
    }
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

/* The process's multi handle, kept from one call to the next for its
 * connection cache (and DNS cache): a responder that keeps connections
 * open is not reconnected to for each request, nor for each round.
 * A libcurl handle must never be used by two threads at once. In httpd
 * one thread at a time fetches: the start-up helper is single-threaded,
 * and in a child only its background refresh (the one mod_watchdog
 * thread) does; still, a call while the handle is in use (another thread)
 * gets a handle of its own for that call, instead of sharing or waiting.
 * A handle inherited through fork() is the parent's, connections
 * included: the child leaves it alone and makes its own. */
static CURLM *kept_multi;
static pid_t kept_pid;
static apr_uint32_t kept_busy;

/* The kept handle (*kept = 1) or, when it is in use, a new one. */
static CURLM *multi_acquire(int *kept)
{
    *kept = apr_atomic_cas32(&kept_busy, 1, 0) == 0;
    if (!*kept) {
        return curl_multi_init();
    }
    if (!kept_multi || kept_pid != getpid()) {
        kept_multi = curl_multi_init();
        kept_pid = getpid();
    }
    if (!kept_multi) {
        *kept = 0;
        apr_atomic_set32(&kept_busy, 0);
    }
    return kept_multi;
}

static void multi_release(CURLM *multi, int kept)
{
    if (kept) {
        apr_atomic_set32(&kept_busy, 0);
    }
    else {
        curl_multi_cleanup(multi);
    }
}

void ocsp_fetch_connections_close(void)
{
    if (apr_atomic_cas32(&kept_busy, 1, 0) != 0) {
        return;
    }
    if (kept_multi && kept_pid == getpid()) {
        curl_multi_cleanup(kept_multi);
    }
    kept_multi = NULL;
    apr_atomic_set32(&kept_busy, 0);
}

apr_status_t ocsp_http_run(int max_parallel, ocsp_http_next_fn *next,
                           ocsp_http_done_fn *done, void *ud, apr_pool_t *p)
{
    int kept, in_flight = 0, still_running = 0;
    CURLM *multi = multi_acquire(&kept);

    if (!multi) {
        return APR_ENOMEM;
    }
    /* Idle connections kept for later: as many as run at once. */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)max_parallel);
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
    multi_release(multi, kept);
    return APR_SUCCESS;
}
