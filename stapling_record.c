/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Stapling records: a fixed header in network byte order, then the DER and
 * two texts. Layout:
 *   "OSR1"
 *   thisUpdate nextUpdate expires revokedAt fetchedAt attemptedAt
 *   nextAttempt                           7 x int64, microseconds
 *   respStatus certStatus revokeReason+1 source           4 x uint8
 *   failures (uint16) derLen (uint32) errLen (uint16) originLen (uint8)
 *   der err origin
 * The decoder checks every length against the buffer: the bytes come back
 * from shared memory, disk or a network cache.
 */

#include <string.h>

#include <apr_strings.h>

#include "stapling_record.h"

static const unsigned char MAGIC[4] = { 'O', 'S', 'R', '1' };
#define HEADER_SIZE (4 + 7 * 8 + 4 + 2 + 4 + 2 + 1)

typedef struct {
    unsigned char *b;
} writer;

static void put(writer *w, apr_uint64_t v, int bytes)
{
    while (bytes-- > 0) {
        *w->b++ = (unsigned char)(v >> (8 * bytes));
    }
}

static void put_bytes(writer *w, const void *data, apr_size_t len)
{
    if (len) {
        memcpy(w->b, data, len);
        w->b += len;
    }
}

typedef struct {
    const unsigned char *b, *end;
    int bad;
} reader;

static apr_uint64_t get(reader *r, int bytes)
{
    apr_uint64_t v = 0;

    if (r->end - r->b < bytes) {
        r->bad = 1;
        return 0;
    }
    while (bytes-- > 0) {
        v = (v << 8) | *r->b++;
    }
    return v;
}

static const unsigned char *get_bytes(reader *r, apr_size_t len)
{
    const unsigned char *at = r->b;

    if ((apr_size_t)(r->end - r->b) < len) {
        r->bad = 1;
        return NULL;
    }
    r->b += len;
    return at;
}

static apr_size_t text_len(const char *text, apr_size_t max)
{
    apr_size_t len = text ? strlen(text) : 0;

    return len > max ? max : len;
}

apr_status_t stapling_record_encode(unsigned char **pbuf, apr_size_t *plen,
                                    const stapling_record *rec, apr_pool_t *p)
{
    const ocsp_verdict *v = &rec->verdict;
    apr_size_t err_len = text_len(rec->error, STAPLING_RECORD_MAX_ERROR);
    apr_size_t origin_len = text_len(rec->origin, STAPLING_RECORD_MAX_ORIGIN);
    apr_size_t len = HEADER_SIZE + rec->der_len + err_len + origin_len;
    int failures = rec->failures < 0 ? 0 : rec->failures;
    writer w;

    *pbuf = NULL;
    *plen = 0;
    if (rec->der_len > OCSP_MAX_RESPONSE_SIZE) {
        return APR_EINVAL;
    }
    w.b = *pbuf = apr_palloc(p, len);
    put_bytes(&w, MAGIC, sizeof(MAGIC));
    put(&w, (apr_uint64_t)v->this_update, 8);
    put(&w, (apr_uint64_t)v->next_update, 8);
    put(&w, (apr_uint64_t)v->expires, 8);
    put(&w, (apr_uint64_t)v->revoked_at, 8);
    put(&w, (apr_uint64_t)rec->fetched_at, 8);
    put(&w, (apr_uint64_t)rec->attempted_at, 8);
    put(&w, (apr_uint64_t)rec->next_attempt, 8);
    put(&w, (apr_uint64_t)v->resp_status, 1);
    put(&w, (apr_uint64_t)v->cert_status, 1);
    put(&w, (apr_uint64_t)(v->revoke_reason + 1), 1);  /* -1 (none) -> 0 */
    put(&w, (apr_uint64_t)rec->source, 1);
    put(&w, failures > 0xffff ? 0xffff : (apr_uint64_t)failures, 2);
    put(&w, rec->der_len, 4);
    put(&w, err_len, 2);
    put(&w, origin_len, 1);
    put_bytes(&w, rec->der, rec->der_len);
    put_bytes(&w, rec->error, err_len);
    put_bytes(&w, rec->origin, origin_len);
    *plen = len;
    return APR_SUCCESS;
}

static const char *get_text(reader *r, apr_size_t len, apr_pool_t *p)
{
    const unsigned char *at = get_bytes(r, len);

    return at && len ? apr_pstrmemdup(p, (const char *)at, len) : NULL;
}

apr_status_t stapling_record_decode(stapling_record *rec,
                                    const unsigned char *buf, apr_size_t len,
                                    apr_pool_t *p)
{
    ocsp_verdict *v = &rec->verdict;
    reader r = { buf, buf + len, 0 };
    apr_size_t der_len, err_len, origin_len;

    memset(rec, 0, sizeof(*rec));
    if (len < HEADER_SIZE || memcmp(buf, MAGIC, sizeof(MAGIC))) {
        return APR_EINVAL;
    }
    get_bytes(&r, sizeof(MAGIC));
    v->this_update = (apr_time_t)get(&r, 8);
    v->next_update = (apr_time_t)get(&r, 8);
    v->expires = (apr_time_t)get(&r, 8);
    v->revoked_at = (apr_time_t)get(&r, 8);
    rec->fetched_at = (apr_time_t)get(&r, 8);
    rec->attempted_at = (apr_time_t)get(&r, 8);
    rec->next_attempt = (apr_time_t)get(&r, 8);
    v->resp_status = (int)get(&r, 1);
    v->cert_status = (ocsp_cert_status)get(&r, 1);
    v->revoke_reason = (int)get(&r, 1) - 1;
    rec->source = (stapling_source)get(&r, 1);
    rec->failures = (int)get(&r, 2);
    der_len = (apr_size_t)get(&r, 4);
    err_len = (apr_size_t)get(&r, 2);
    origin_len = (apr_size_t)get(&r, 1);
    if (v->resp_status > 6 || v->cert_status > OCSP_CERT_NONE
        || rec->source > STAPLING_FROM_SHARED
        || der_len > OCSP_MAX_RESPONSE_SIZE
        || err_len > STAPLING_RECORD_MAX_ERROR
        || len != HEADER_SIZE + der_len + err_len + origin_len) {
        memset(rec, 0, sizeof(*rec));
        return APR_EINVAL;
    }
    rec->der = der_len ? get_bytes(&r, der_len) : NULL;
    rec->der_len = der_len;
    rec->error = get_text(&r, err_len, p);
    rec->origin = get_text(&r, origin_len, p);
    if (r.bad) {
        memset(rec, 0, sizeof(*rec));
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

const char *stapling_source_str(stapling_source source)
{
    switch (source) {
    case STAPLING_FROM_RESPONDER: return "responder";
    case STAPLING_FROM_STORE:     return "store";
    case STAPLING_FROM_FILE:      return "file";
    case STAPLING_FROM_SHARED:    return "shared cache";
    default:                      return "unknown";
    }
}

int stapling_record_stapleable(const stapling_record *rec, apr_time_t now,
                               int accept_errors)
{
    const ocsp_verdict *v = &rec->verdict;

    if (!rec->der_len || now >= v->expires) {
        return 0;
    }
    if (v->resp_status != 0 || v->cert_status == OCSP_CERT_UNKNOWN) {
        return accept_errors;
    }
    return v->cert_status == OCSP_CERT_GOOD
        || v->cert_status == OCSP_CERT_REVOKED;
}

/* The record holds (or held: the DER may be gone, the verdict stays) a
 * verified good or revoked response: its thisUpdate is the mark any
 * replacement must pass. */
static int has_definite_verdict(const stapling_record *rec)
{
    return rec->verdict.resp_status == 0 && rec->verdict.this_update
           && (rec->verdict.cert_status == OCSP_CERT_GOOD
               || rec->verdict.cert_status == OCSP_CERT_REVOKED);
}

stapling_order stapling_record_order(const stapling_record *cand,
                                     const stapling_record *cur,
                                     apr_time_t now)
{
    if (!cand->der_len || !stapling_record_stapleable(cand, now, 1)) {
        return STAPLING_KEEP;            /* nothing to staple in it */
    }
    if (!stapling_record_stapleable(cand, now, 0)) {
        /* An error answer or "unknown": never over good or revoked. */
        return stapling_record_stapleable(cur, now, 0) ? STAPLING_KEEP
                                                       : STAPLING_REPLACE;
    }
    if (!has_definite_verdict(cur)) {
        return STAPLING_REPLACE;
    }
    if (cand->verdict.this_update != cur->verdict.this_update) {
        return cand->verdict.this_update > cur->verdict.this_update
               ? STAPLING_REPLACE : STAPLING_KEEP;
    }
    return STAPLING_TIE;
}
