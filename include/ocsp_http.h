/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSP_HTTP_H
#define OCSP_HTTP_H

/*
 * Inside the fetch layer: OCSP over HTTP with libcurl, one request at a time
 * (ocsp_http_post in ocsp_fetch.h) or many at once with a bound on how many
 * run in parallel. No httpd dependency.
 */

#include "ocsp_fetch.h"

/* One POST: filled in by the caller, results by ocsp_http_run. */
typedef struct ocsp_http_req {
    const char          *url;
    const unsigned char *body;
    apr_size_t           body_len;
    const ocsp_http_opts *opts;
    void                *baton;        /* the caller's */

    apr_status_t         rv;           /* as ocsp_http_post returns */
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

/* Sets *perr (when perr is not NULL) from a format and returns rv. */
apr_status_t ocsp_fail(const char **perr, apr_status_t rv, apr_pool_t *p,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* OCSP_HTTP_H */
