/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSP_FETCH_H
#define OCSP_FETCH_H

/*
 * OCSP for one certificate: parse it, build the request, send it (GET or
 * POST), verify the answer. No httpd dependency (APR, OpenSSL and libcurl only), so this layer
 * is unit-tested and fuzzed on its own.
 *
 * Conventions: functions return apr_status_t; on failure *perr (when perr is
 * not NULL) receives a one-line reason allocated from the pool. Outputs come
 * first, the pool last. Everything returned lives as long as that pool.
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* A failure of the responder itself: it answered, but with a non-successful
 * OCSPResponseStatus (tryLater, internalError, ...). The verdict is filled in. */
#define OCSP_ERESPONDER (APR_OS_START_USERERR + 1)
/* The answer is not acceptable: bad HTTP status, content type, DER, signature,
 * certificate id, validity... The reason says which. */
#define OCSP_EVERIFY    (APR_OS_START_USERERR + 2)

/* Bigger answers are refused: real responses are a few KB. */
#define OCSP_MAX_RESPONSE_SIZE (64 * 1024)
/* How long the other requests of a batch to a URL wait for the answer to
 * its first GET (whether the responder serves GET) before they go anyway:
 * a hanging responder must not cost a timeout more. */
#define OCSP_GET_PROBE_WAIT    apr_time_from_sec(1)
/* Clock difference tolerated between us and the responder, for thisUpdate. */
#define OCSP_MAX_CLOCK_SKEW    apr_time_from_sec(5 * 60)
/* A response without nextUpdate is valid this long after its thisUpdate,
 * and refused once it is older. */
#define OCSP_NO_NEXT_UPDATE_MAX_AGE apr_time_from_sec(60 * 60)

/* A server certificate with its issuer: opaque. The X509 objects are freed
 * when the pool is. */
typedef struct ocsp_cert ocsp_cert;

typedef enum {
    OCSP_CERT_GOOD = 0,
    OCSP_CERT_REVOKED = 1,
    OCSP_CERT_UNKNOWN = 2,
    OCSP_CERT_NONE = 3      /* no certificate status: non-successful response */
} ocsp_cert_status;

/* What a verified (or responder-error) answer says. */
typedef struct {
    int              resp_status;  /* OCSPResponseStatus, 0 = successful */
    ocsp_cert_status cert_status;
    apr_time_t       this_update;  /* 0 when resp_status != 0 */
    apr_time_t       next_update;  /* 0 when the responder gave none */
    apr_time_t       expires;      /* nextUpdate, or the fallback lifetime */
    apr_time_t       revoked_at;   /* REVOKED only */
    int              revoke_reason;/* OCSP_REVOKED_STATUS_*, -1 when none */
} ocsp_verdict;

typedef struct {
    apr_interval_time_t timeout;   /* whole exchange per URL: DNS..last byte */
    apr_size_t          max_size;  /* response size cap, 0: OCSP_MAX_RESPONSE_SIZE */
    const char         *proxy;     /* NULL: libcurl's usual environment variables */
    const char         *ca_file;   /* https responders' CAs; NULL: libcurl's default */
    int                 use_post;  /* 1: always POST; 0: GET (RFC 5019) when
                                      the encoded request is short enough */
} ocsp_http_opts;

/* A fetched and verified answer. */
typedef struct {
    unsigned char *der;
    apr_size_t     der_len;
    ocsp_verdict   verdict;
    const char    *url;            /* the responder that gave it */
} ocsp_answer;

/* Once per process before any fetch, while single-threaded. */
apr_status_t ocsp_fetch_global_init(void);

/* Closes the connections to responders that the process keeps open between
 * fetches and frees their handle; the next fetch opens new ones. At process
 * exit. While another thread is fetching it does nothing (that fetch still
 * uses them; the exit closes the sockets). */
void ocsp_fetch_connections_close(void);

/* Parses PEM text: the certificate first, then its issuer (further
 * certificates are ignored). Only what stapling needs is kept (the CertID,
 * the issuer, the URLs, names): the leaf itself is freed. */
apr_status_t ocsp_cert_parse(ocsp_cert **pcert, const char *pem,
                             apr_size_t pem_len, const char **perr,
                             apr_pool_t *p);

/* Issuers met so far, so that the certificates of one CA share one copy of
 * its certificate (10,000 leaves of one CA: one issuer, not 10,000). Lives
 * in the pool it was made from; the certificates parsed with it must not
 * outlive that pool. */
typedef struct ocsp_issuers ocsp_issuers;
ocsp_issuers *ocsp_issuers_make(apr_pool_t *p);
/* ocsp_cert_parse, the issuer taken from (or added to) issuers. */
apr_status_t ocsp_cert_parse_shared(ocsp_cert **pcert, const char *pem,
                                    apr_size_t pem_len, ocsp_issuers *issuers,
                                    const char **perr, apr_pool_t *p);

/* The AIA OCSP responder URLs in certificate order (const char *), maybe
 * none: only http(s)://host... ones. */
const apr_array_header_t *ocsp_cert_urls(const ocsp_cert *cert);
/* The AIA OCSP URLs that can never work (ldap://, malformed), for a log. */
const apr_array_header_t *ocsp_cert_unusable_urls(const ocsp_cert *cert);
/* One-line subject ("CN=www.example.org, O=Example"), serial in hex. */
const char *ocsp_cert_subject(const ocsp_cert *cert);
const char *ocsp_cert_serial(const ocsp_cert *cert);
/* Whether the certificate demands a staple (TLS Feature status_request,
 * "Must-Staple", RFC 7633): clients that honour it refuse the site without. */
int ocsp_cert_must_staple(const ocsp_cert *cert);

/* The DER OCSPRequest for this certificate (no nonce: stapled responses are
 * shared by every client). */
apr_status_t ocsp_request_build(unsigned char **pder, apr_size_t *plen,
                                const ocsp_cert *cert, apr_pool_t *p);

/* POSTs the request to url as application/ocsp-request and returns the body
 * of a 200 answer with content type application/ocsp-response. Blocking,
 * bounded by opts->timeout and opts->max_size. */
apr_status_t ocsp_http_post(unsigned char **pbody, apr_size_t *plen,
                            const char *url, const unsigned char *req,
                            apr_size_t req_len, const ocsp_http_opts *opts,
                            const char **perr, apr_pool_t *p);

/* Verifies a DER OCSPResponse for cert at time now: basic response, signed by
 * the issuer or by a responder the issuer certified for OCSP signing,
 * exactly one single response and it is for this certificate's CertID, thisUpdate not in the future
 * (beyond OCSP_MAX_CLOCK_SKEW), nextUpdate not passed (without one:
 * thisUpdate not older than OCSP_NO_NEXT_UPDATE_MAX_AGE).
 * APR_SUCCESS: *verdict describes a verified response.
 * OCSP_ERESPONDER: well-formed, non-successful status in verdict->resp_status.
 * OCSP_EVERIFY (or another error): unusable; *perr says why. */
apr_status_t ocsp_response_verify(ocsp_verdict *verdict, const ocsp_cert *cert,
                                  const unsigned char *der, apr_size_t der_len,
                                  apr_time_t now, const char **perr,
                                  apr_pool_t *p);

/* The producedAt of a DER OCSP response (a basic response), 0 when it has
 * none: what breaks a tie between two responses with the same thisUpdate.
 * No verification: call it only on responses verified before. */
apr_time_t ocsp_response_produced_at(const unsigned char *der,
                                     apr_size_t der_len);

/* Request, send and verify against each URL in turn until one answers with a
 * verified response (APR_SUCCESS) or, failing that, a responder error
 * (OCSP_ERESPONDER, *panswer set). Otherwise *perr names every URL tried and
 * why it failed. */
apr_status_t ocsp_fetch(ocsp_answer **panswer, const ocsp_cert *cert,
                        const apr_array_header_t *urls,
                        const ocsp_http_opts *opts, const char **perr,
                        apr_pool_t *p);

/* One certificate's fetch in a batch. */
typedef struct {
    const ocsp_cert          *cert;    /* in */
    const apr_array_header_t *urls;    /* in: tried in order */
    const ocsp_http_opts     *opts;    /* in */
    apr_status_t              rv;      /* out: as ocsp_fetch returns */
    ocsp_answer              *answer;  /* out: verified, or a responder error */
    const char               *err;     /* out: every URL that failed and why
                                          (on success: the ones before, or NULL) */
    const char               *get_refused_url; /* out: a responder that refused
                                          this job's GET (it was POSTed), or NULL */
    long                      get_refused_status; /* out: its HTTP status */
} ocsp_job;

/* Called as soon as a job of a batch has its result, so that a fast
 * responder's answer is used while a slow one is still awaited. */
typedef void ocsp_job_done_fn(ocsp_job *job, void *baton);

/* Runs ocsp_fetch for every job, at most max_parallel exchanges at a time,
 * calling done (when not NULL) for each job as it ends. A URL whose last
 * three exchanges failed at the transport level (timeout, connection
 * refused or dropped, unresolvable) is not tried again within the batch,
 * and while one to it has just failed so and others are under way, no new
 * one starts until they end: a dead responder costs about one timeout in
 * total (plus up to OCSP_GET_PROBE_WAIT, below), not one per certificate,
 * while one dropped connection from a busy responder does not stop the
 * others. A refused or dropped exchange with a responder that has answered
 * in this batch is tried once more.
 *
 * Requests go as RFC 5019 GETs (cacheable by CDNs) unless opts->use_post or
 * they are too long. The first GET of a batch to a URL goes alone; the
 * other requests to that URL wait for its answer (at most
 * OCSP_GET_PROBE_WAIT): a responder that refuses GET (HTTP 405, 400, 501)
 * gets that request again as a POST, and POSTs only for the rest of the
 * batch, instead of a refused GET per certificate. */
apr_status_t ocsp_fetch_batch(ocsp_job *jobs, int n, int max_parallel,
                              ocsp_job_done_fn *done, void *baton,
                              apr_pool_t *p);

/* "good", "revoked", "unknown", "none"; and the OCSPResponseStatus names. */
const char *ocsp_cert_status_str(ocsp_cert_status st);
const char *ocsp_resp_status_str(int resp_status);

#endif /* OCSP_FETCH_H */
