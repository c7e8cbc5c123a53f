/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSP_HTTP_H
#define OCSP_HTTP_H

/*
 * Inside the fetch layer: OCSP over HTTP with libcurl, one request at a time
 * (ocsp_http_post in ocsp_fetch.h) or many at once with a bound on how many
 * run in parallel. No httpd dependency.
 *
 * Connections stay open between requests, and between calls, where the
 * responder allows it: every call of a process goes through one libcurl
 * multi handle and its connection cache, until ocsp_fetch_connections_close.
 */

#include "ocsp_fetch.h"

/* RFC 5019 section 5: a GET whose encoded request is longer than this is
 * not made; the request is POSTed instead. */
#define OCSP_GET_MAX_ENCODED 255

/* One exchange: filled in by the caller, results by ocsp_http_run. */
typedef struct ocsp_http_req {
    const char          *url;          /* the responder's */
    const char          *get_url;      /* NULL: POST body to url; else GET
                                          this (ocsp_http_get_url) */
    const unsigned char *body;
    apr_size_t           body_len;
    const ocsp_http_opts *opts;
    void                *baton;        /* the caller's */

    apr_status_t         rv;           /* as ocsp_http_post returns */
    long                 status;       /* HTTP status, 0 when none came */
    unsigned char       *resp;
    apr_size_t           resp_len;
    const char          *err;
} ocsp_http_req;

/* The next request to start, or NULL when there is none right now. */
typedef ocsp_http_req *ocsp_http_next_fn(void *ud);
/* A request finished; it may make next() return further requests. */
typedef void ocsp_http_done_fn(ocsp_http_req *req, void *ud);

/* Runs requests from next() with at most max_parallel in flight, calls
 * done() for each, and returns once next() is NULL with nothing in flight.
 * Responses are allocated from p. */
apr_status_t ocsp_http_run(int max_parallel, ocsp_http_next_fn *next,
                           ocsp_http_done_fn *done, void *ud, apr_pool_t *p);

/* The RFC 5019 GET URL for a DER request: url, a '/' unless url ends with
 * one, and the base64 of der with '+', '/' and '=' percent-encoded.
 * APR_ENOSPC when that encoding is longer than OCSP_GET_MAX_ENCODED,
 * APR_EINVAL when url has a query or fragment (nothing can be appended to
 * it): POST then. */
apr_status_t ocsp_http_get_url(const char **pget, const char *url,
                               const unsigned char *der, apr_size_t der_len,
                               apr_pool_t *p);

/* Whether an HTTP status answering a GET says that GET is not served
 * (405, 400, 501): the same request may be POSTed. */
int ocsp_http_get_refused(long status);

/* Sets *perr (when perr is not NULL) from a format and returns rv. */
apr_status_t ocsp_fail(const char **perr, apr_status_t rv, apr_pool_t *p,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* OCSP_HTTP_H */
