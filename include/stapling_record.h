/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef STAPLING_RECORD_H
#define STAPLING_RECORD_H

/*
 * The cached form of one certificate's OCSP response: the DER to staple plus
 * what verification found out about it, so a handshake never parses DER.
 * Encoding and decoding only (APR, no httpd): fuzzed on its own, because the
 * bytes come back from shared memory, disk or a network cache.
 */

#include <apr_pools.h>

#include "ocsp_fetch.h"

/* Where the response came from. */
typedef enum {
    STAPLING_FROM_RESPONDER = 0,     /* fetched by this server */
    STAPLING_FROM_STORE = 1,         /* OCSPStaplingStore, at startup */
    STAPLING_FROM_FILE = 2,          /* OCSPStaplingFile */
    STAPLING_FROM_SHARED = 3         /* fetched by another server of a fleet */
} stapling_source;

typedef struct {
    ocsp_verdict         verdict;    /* as ocsp_response_verify found it */
    apr_time_t           fetched_at; /* when der was fetched (or loaded) */
    apr_time_t           attempted_at; /* the last fetch attempt */
    apr_time_t           next_attempt; /* when the next fetch is due */
    int                  failures;   /* failed fetches since the last good one */
    stapling_source      source;
    const unsigned char *der;        /* the OCSPResponse to staple */
    apr_size_t           der_len;
    const char          *error;      /* last failed update, or NULL */
    const char          *origin;     /* the server that fetched it, or NULL */
} stapling_record;

/* Longest texts kept in a record. */
#define STAPLING_RECORD_MAX_ERROR  512
#define STAPLING_RECORD_MAX_ORIGIN 255
/* Upper bound of an encoded record, for retrieve buffers. */
#define STAPLING_RECORD_MAX_SIZE \
    (96 + OCSP_MAX_RESPONSE_SIZE + STAPLING_RECORD_MAX_ERROR \
     + STAPLING_RECORD_MAX_ORIGIN)

/* Encodes rec into a new buffer from p. */
apr_status_t stapling_record_encode(unsigned char **pbuf, apr_size_t *plen,
                                    const stapling_record *rec, apr_pool_t *p);

/* Decodes and sanity-checks buf. rec->der points into buf (no copy);
 * rec->error and rec->origin are copied to p. APR_EINVAL for anything
 * malformed. */
apr_status_t stapling_record_decode(stapling_record *rec,
                                    const unsigned char *buf, apr_size_t len,
                                    apr_pool_t *p);

/* Whether this record may be stapled at now: a successful, verified response
 * that has not expired; with accept_errors also a responder's own error
 * answer or an "unknown" status. */
/* "responder", "store", "file", "shared cache" */
const char *stapling_source_str(stapling_source source);

int stapling_record_stapleable(const stapling_record *rec, apr_time_t now,
                               int accept_errors);

/* Whether cand's response may replace cur's (cur may hold nothing):
 *  - only a response that can be stapled replaces anything;
 *  - an error answer or an "unknown" replaces only what cannot be stapled
 *    as good or revoked;
 *  - a good or revoked response replaces only one with an earlier
 *    thisUpdate, also when cur's response expired or only its verdict is
 *    left (a record without DER keeps the mark), so nothing ever goes back
 *    in time. Fields nobody verified (fetched_at, plans, origin) play no
 *    part.
 * STAPLING_TIE: the same thisUpdate; the caller breaks it with producedAt
 * (from the DER: ocsp_response_produced_at). */
typedef enum {
    STAPLING_KEEP = 0,
    STAPLING_REPLACE = 1,
    STAPLING_TIE = 2
} stapling_order;

stapling_order stapling_record_order(const stapling_record *cand,
                                     const stapling_record *cur,
                                     apr_time_t now);

#endif /* STAPLING_RECORD_H */
