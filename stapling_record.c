/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Stapling records: a fixed header in network byte order, then the DER, then
 * the last error text. Version 1 layout:
 *   "OSR1" | thisUpdate | nextUpdate | expires | revokedAt | fetchedAt |
 *   nextAttempt (6 x int64, microseconds) | respStatus | certStatus |
 *   revokeReason+1 (3 x uint8) | reserved (uint8) | failures (uint16) |
 *   derLen (uint32) | errLen (uint16) | der | err
 */

#include <string.h>

#include <apr_strings.h>

#include "stapling_record.h"

static const unsigned char MAGIC[4] = { 'O', 'S', 'R', '1' };
#define HEADER_SIZE (4 + 6 * 8 + 4 + 2 + 4 + 2)

static unsigned char *put_u64(unsigned char *b, apr_uint64_t v)
{
    int i;

    for (i = 7; i >= 0; i--) {
        *b++ = (unsigned char)(v >> (8 * i));
    }
    return b;
}

static apr_uint64_t get_u64(const unsigned char *b)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | b[i];
    }
    return v;
}

apr_status_t stapling_record_encode(unsigned char **pbuf, apr_size_t *plen,
                                    const stapling_record *rec, apr_pool_t *p)
{
    const ocsp_verdict *v = &rec->verdict;
    apr_size_t err_len = rec->error ? strlen(rec->error) : 0;
    unsigned int failures = rec->failures < 0 ? 0
                          : rec->failures > 0xffff ? 0xffff
                          : (unsigned int)rec->failures;
    unsigned char *buf, *b;

    *pbuf = NULL;
    *plen = 0;
    if (rec->der_len > OCSP_MAX_RESPONSE_SIZE) {
        return APR_EINVAL;
    }
    if (err_len > STAPLING_RECORD_MAX_ERROR) {
        err_len = STAPLING_RECORD_MAX_ERROR;
    }
    b = buf = apr_palloc(p, HEADER_SIZE + rec->der_len + err_len);
    memcpy(b, MAGIC, sizeof(MAGIC));
    b = put_u64(b + sizeof(MAGIC), (apr_uint64_t)v->this_update);
    b = put_u64(b, (apr_uint64_t)v->next_update);
    b = put_u64(b, (apr_uint64_t)v->expires);
    b = put_u64(b, (apr_uint64_t)v->revoked_at);
    b = put_u64(b, (apr_uint64_t)rec->fetched_at);
    b = put_u64(b, (apr_uint64_t)rec->next_attempt);
    *b++ = (unsigned char)v->resp_status;
    *b++ = (unsigned char)v->cert_status;
    *b++ = (unsigned char)(v->revoke_reason + 1);   /* -1 (none) -> 0 */
    *b++ = 0;
    *b++ = (unsigned char)(failures >> 8);
    *b++ = (unsigned char)failures;
    *b++ = (unsigned char)(rec->der_len >> 24);
    *b++ = (unsigned char)(rec->der_len >> 16);
    *b++ = (unsigned char)(rec->der_len >> 8);
    *b++ = (unsigned char)rec->der_len;
    *b++ = (unsigned char)(err_len >> 8);
    *b++ = (unsigned char)err_len;
    if (rec->der_len) {
        memcpy(b, rec->der, rec->der_len);
    }
    if (err_len) {
        memcpy(b + rec->der_len, rec->error, err_len);
    }
    *pbuf = buf;
    *plen = HEADER_SIZE + rec->der_len + err_len;
    return APR_SUCCESS;
}

apr_status_t stapling_record_decode(stapling_record *rec,
                                    const unsigned char *buf, apr_size_t len,
                                    apr_pool_t *p)
{
    ocsp_verdict *v = &rec->verdict;
    const unsigned char *b = buf + sizeof(MAGIC);
    apr_size_t der_len, err_len;

    memset(rec, 0, sizeof(*rec));
    if (len < HEADER_SIZE || memcmp(buf, MAGIC, sizeof(MAGIC))) {
        return APR_EINVAL;
    }
    v->this_update = (apr_time_t)get_u64(b);
    v->next_update = (apr_time_t)get_u64(b + 8);
    v->expires = (apr_time_t)get_u64(b + 16);
    v->revoked_at = (apr_time_t)get_u64(b + 24);
    rec->fetched_at = (apr_time_t)get_u64(b + 32);
    rec->next_attempt = (apr_time_t)get_u64(b + 40);
    b += 48;
    v->resp_status = b[0];
    v->cert_status = (ocsp_cert_status)b[1];
    v->revoke_reason = (int)b[2] - 1;
    rec->failures = (b[4] << 8) | b[5];
    der_len = ((apr_size_t)b[6] << 24) | ((apr_size_t)b[7] << 16)
            | ((apr_size_t)b[8] << 8) | b[9];
    err_len = ((apr_size_t)b[10] << 8) | b[11];
    if (v->resp_status > 6 || v->cert_status > OCSP_CERT_NONE
        || der_len > OCSP_MAX_RESPONSE_SIZE
        || err_len > STAPLING_RECORD_MAX_ERROR
        || len != HEADER_SIZE + der_len + err_len) {
        memset(rec, 0, sizeof(*rec));
        return APR_EINVAL;
    }
    rec->der = der_len ? buf + HEADER_SIZE : NULL;
    rec->der_len = der_len;
    rec->error = err_len ? apr_pstrmemdup(p, (const char *)buf + HEADER_SIZE
                                          + der_len, err_len) : NULL;
    return APR_SUCCESS;
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
