/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * libFuzzer target: ocsp_response_verify on arbitrary bytes, against the
 * fixed certificate of fuzz/pki/chain.pem at FUZZ_NOW: the path every byte
 * from a responder, the on-disk store or a cache takes before it is stapled.
 * Beyond memory safety it checks the header's promises: a verified verdict
 * is consistent and valid at now, and survives the stapling record's
 * encode/decode unchanged; a responder error carries a defined status;
 * every refusal says why.
 */

#include <string.h>

#include "fuzz_common.h"
#include "stapling_record.h"

static apr_pool_t *g_root;
static const ocsp_cert *g_cert;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_root = fuzz_init();
    g_cert = fuzz_cert(g_root);
    return 0;
}

/* What the cache would keep of this answer must come back unchanged. */
static void check_record(const ocsp_verdict *v, const uint8_t *der,
                         size_t len, apr_pool_t *p)
{
    stapling_record rec, back;
    unsigned char *buf;
    apr_size_t buf_len;

    if (len > OCSP_MAX_RESPONSE_SIZE) {
        return;
    }
    memset(&rec, 0, sizeof(rec));
    rec.verdict = *v;
    rec.fetched_at = FUZZ_NOW;
    rec.next_attempt = FUZZ_NOW + apr_time_from_sec(3600);
    rec.der = der;
    rec.der_len = len;
    FUZZ_ASSERT(stapling_record_encode(&buf, &buf_len, &rec, p) == APR_SUCCESS);
    FUZZ_ASSERT(stapling_record_decode(&back, buf, buf_len, p) == APR_SUCCESS);
    FUZZ_ASSERT(memcmp(&back.verdict, v, sizeof(*v)) == 0);
    FUZZ_ASSERT(back.der_len == len && memcmp(back.der, der, len) == 0);
    FUZZ_ASSERT(back.fetched_at == rec.fetched_at);
    FUZZ_ASSERT(back.next_attempt == rec.next_attempt);
    FUZZ_ASSERT(back.error == NULL && back.origin == NULL);
    FUZZ_ASSERT(back.failures == 0 && back.source == STAPLING_FROM_RESPONDER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    ocsp_verdict v;
    const char *err = NULL;
    apr_status_t rv;
    int staple;

    apr_pool_create(&p, g_root);
    rv = ocsp_response_verify(&v, g_cert, data, size, FUZZ_NOW, &err, p);
    if (rv == APR_SUCCESS) {
        FUZZ_ASSERT(v.resp_status == 0);
        FUZZ_ASSERT(v.cert_status == OCSP_CERT_GOOD
                    || v.cert_status == OCSP_CERT_REVOKED
                    || v.cert_status == OCSP_CERT_UNKNOWN);
        FUZZ_ASSERT(v.this_update != 0);
        FUZZ_ASSERT(v.this_update <= FUZZ_NOW + OCSP_MAX_CLOCK_SKEW);
        FUZZ_ASSERT(v.expires > FUZZ_NOW);
        if (v.next_update) {
            FUZZ_ASSERT(v.next_update > v.this_update);
            FUZZ_ASSERT(v.expires == v.next_update);
        }
        else {
            FUZZ_ASSERT(v.expires
                        == v.this_update + OCSP_NO_NEXT_UPDATE_MAX_AGE);
        }
        FUZZ_ASSERT(v.cert_status == OCSP_CERT_REVOKED || v.revoked_at == 0);
        check_record(&v, data, size, p);
        staple = v.cert_status != OCSP_CERT_UNKNOWN;
        if (size <= OCSP_MAX_RESPONSE_SIZE) {
            stapling_record rec;

            memset(&rec, 0, sizeof(rec));
            rec.verdict = v;
            rec.der = data;
            rec.der_len = size;
            FUZZ_ASSERT(stapling_record_stapleable(&rec, FUZZ_NOW, 0) == staple);
            FUZZ_ASSERT(!stapling_record_stapleable(&rec, v.expires, 1));
        }
        fuzz_note("verified %s", ocsp_cert_status_str(v.cert_status));
    }
    else if (rv == OCSP_ERESPONDER) {
        FUZZ_ASSERT(v.resp_status >= 1 && v.resp_status <= 6
                    && v.resp_status != 4);
        FUZZ_ASSERT(v.cert_status == OCSP_CERT_NONE);
        FUZZ_ASSERT(err != NULL && *err);
        check_record(&v, data, size, p);
        fuzz_note("responder error: %s", err);
    }
    else {
        FUZZ_ASSERT(err != NULL && *err);
        fuzz_note("refused: %s", err);
    }
    apr_pool_destroy(p);
    return 0;
}
