/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * libFuzzer target: stapling_record_decode on arbitrary bytes, as they come
 * back from shared memory, a network cache (memcache, redis) or disk. A
 * record that decodes must be sane (DER inside the buffer, bounded sizes,
 * defined statuses), re-encode to something that decodes to the same
 * record, and encode the same way twice; stapleable must only say yes to a
 * successful, unexpired response with DER. `replay_fuzz_record
 * --write-seeds DIR` writes the seed records with the module's encoder.
 */

#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

#include "fuzz_common.h"
#include "stapling_record.h"

static apr_pool_t *g_root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_root = fuzz_init();
    return 0;
}

static const char *str0(const char *s)
{
    return s ? s : "";
}

static void check_same(const stapling_record *a, const stapling_record *b)
{
    FUZZ_ASSERT(memcmp(&a->verdict, &b->verdict, sizeof(a->verdict)) == 0);
    FUZZ_ASSERT(a->fetched_at == b->fetched_at);
    FUZZ_ASSERT(a->attempted_at == b->attempted_at);
    FUZZ_ASSERT(a->next_attempt == b->next_attempt);
    FUZZ_ASSERT(a->failures == b->failures);
    FUZZ_ASSERT(a->source == b->source);
    FUZZ_ASSERT(a->der_len == b->der_len);
    FUZZ_ASSERT(a->der_len == 0 || memcmp(a->der, b->der, a->der_len) == 0);
    /* a text cut at an embedded NUL is what encode keeps */
    FUZZ_ASSERT(strcmp(str0(a->error), str0(b->error)) == 0);
    FUZZ_ASSERT(strcmp(str0(a->origin), str0(b->origin)) == 0);
}

static void check_stapleable(const stapling_record *r, apr_time_t now)
{
    const ocsp_verdict *v = &r->verdict;
    int strict = stapling_record_stapleable(r, now, 0);
    int lax = stapling_record_stapleable(r, now, 1);

    FUZZ_ASSERT(strict == 0 || strict == 1);
    FUZZ_ASSERT(lax == 0 || lax == 1);
    FUZZ_ASSERT(!strict || lax);
    if (lax) {
        FUZZ_ASSERT(r->der_len > 0 && now < v->expires);
    }
    if (strict) {
        FUZZ_ASSERT(v->resp_status == 0);
        FUZZ_ASSERT(v->cert_status == OCSP_CERT_GOOD
                    || v->cert_status == OCSP_CERT_REVOKED);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    stapling_record r1, r2;
    unsigned char *b2, *b3;
    apr_size_t l2, l3;
    apr_status_t rv;

    apr_pool_create(&p, g_root);
    rv = stapling_record_decode(&r1, data, size, p);
    if (rv != APR_SUCCESS) {
        FUZZ_ASSERT(rv == APR_EINVAL);
        FUZZ_ASSERT(r1.der == NULL && r1.der_len == 0 && r1.error == NULL
                    && r1.origin == NULL);
        fuzz_note("refused");
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_ASSERT(r1.der_len <= OCSP_MAX_RESPONSE_SIZE);
    FUZZ_ASSERT((r1.der_len == 0) == (r1.der == NULL));
    FUZZ_ASSERT(r1.der == NULL
                || (r1.der >= data && r1.der_len <= size
                    && r1.der <= data + (size - r1.der_len)));
    FUZZ_ASSERT(r1.error == NULL
                || strlen(r1.error) <= STAPLING_RECORD_MAX_ERROR);
    FUZZ_ASSERT(r1.origin == NULL
                || strlen(r1.origin) <= STAPLING_RECORD_MAX_ORIGIN);
    FUZZ_ASSERT(r1.source <= STAPLING_FROM_SHARED);
    FUZZ_ASSERT(strcmp(stapling_source_str(r1.source), "unknown") != 0);
    FUZZ_ASSERT(r1.verdict.resp_status >= 0 && r1.verdict.resp_status <= 6);
    FUZZ_ASSERT(r1.verdict.cert_status <= OCSP_CERT_NONE);
    FUZZ_ASSERT(r1.failures >= 0 && r1.failures <= 0xffff);

    check_stapleable(&r1, FUZZ_NOW);
    check_stapleable(&r1, r1.verdict.expires);
    check_stapleable(&r1, r1.verdict.this_update);
    check_stapleable(&r1, 0);

    FUZZ_ASSERT(stapling_record_encode(&b2, &l2, &r1, p) == APR_SUCCESS);
    FUZZ_ASSERT(l2 <= size && l2 <= STAPLING_RECORD_MAX_SIZE);
    FUZZ_ASSERT(stapling_record_decode(&r2, b2, l2, p) == APR_SUCCESS);
    check_same(&r1, &r2);
    FUZZ_ASSERT(stapling_record_encode(&b3, &l3, &r2, p) == APR_SUCCESS);
    FUZZ_ASSERT(l3 == l2 && memcmp(b2, b3, l2) == 0);

    fuzz_note("decoded: status %d/%s from %s, der %lu bytes, error %lu bytes,"
              " origin %lu bytes", r1.verdict.resp_status,
              ocsp_cert_status_str(r1.verdict.cert_status),
              stapling_source_str(r1.source), (unsigned long)r1.der_len,
              (unsigned long)(r1.error ? strlen(r1.error) : 0),
              (unsigned long)(r1.origin ? strlen(r1.origin) : 0));
    apr_pool_destroy(p);
    return 0;
}

/* ------------------------------------------------------------ seed records */

static int write_record(const char *dir, const char *name,
                        const stapling_record *rec, apr_pool_t *p)
{
    unsigned char *buf;
    apr_size_t len;
    const char *path = apr_pstrcat(p, dir, "/", name, ".rec", NULL);

    if (stapling_record_encode(&buf, &len, rec, p) != APR_SUCCESS
        || fuzz_write(path, buf, len) != 0) {
        fprintf(stderr, "write-seeds: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* One record per seed response, as the module stores a fetch's result,
 * plus records of failed fetches. */
int fuzz_write_seeds(const char *dir)
{
    static const char *const responses[] = {
        "good", "revoked", "unknown", "nonext", "delegated", "trylater",
        "unauthorized"
    };
    apr_pool_t *p;
    const ocsp_cert *cert;
    stapling_record rec;
    char long_error[STAPLING_RECORD_MAX_ERROR + 100];
    size_t i;
    int rc = 0;

    apr_pool_create(&p, g_root);
    cert = fuzz_cert(p);
    for (i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
        const char *rel = apr_pstrcat(p, "corpus/fuzz_verify/", responses[i],
                                      ".der", NULL);
        apr_size_t len;
        const unsigned char *der = (const unsigned char *)fuzz_read(&len, rel, p);
        const char *err = NULL;
        apr_status_t rv;

        memset(&rec, 0, sizeof(rec));
        rv = ocsp_response_verify(&rec.verdict, cert, der, len, FUZZ_NOW, &err, p);
        if (rv != APR_SUCCESS && rv != OCSP_ERESPONDER) {
            fprintf(stderr, "write-seeds: %s does not verify: %s\n", rel, err);
            rc = -1;
            continue;
        }
        if (rv == OCSP_ERESPONDER) {
            rec.verdict.expires = FUZZ_NOW + apr_time_from_sec(600);
        }
        rec.fetched_at = FUZZ_NOW - apr_time_from_sec(60);
        rec.attempted_at = rec.fetched_at;
        rec.next_attempt = FUZZ_NOW + apr_time_from_sec(3600);
        rec.der = der;
        rec.der_len = len;
        rc |= write_record(dir, responses[i], &rec, p);
        if (i == 0) {
            /* good.der again, as each other source records it */
            rec.source = STAPLING_FROM_STORE;
            rc |= write_record(dir, "good-store", &rec, p);
            rec.source = STAPLING_FROM_FILE;
            rc |= write_record(dir, "good-file", &rec, p);
            rec.source = STAPLING_FROM_SHARED;
            rec.origin = "web2.example.org";
            rc |= write_record(dir, "good-shared", &rec, p);
        }
    }

    /* A failed first fetch: no DER, an error, a few failures. */
    memset(&rec, 0, sizeof(rec));
    rec.verdict.cert_status = OCSP_CERT_NONE;
    rec.verdict.revoke_reason = -1;
    rec.fetched_at = FUZZ_NOW;
    rec.attempted_at = FUZZ_NOW;
    rec.next_attempt = FUZZ_NOW + apr_time_from_sec(20);
    rec.failures = 3;
    rec.error = "http://127.0.0.1:1/ocsp: connection refused";
    rc |= write_record(dir, "failed", &rec, p);

    /* A good response kept through failures; the longest texts. */
    {
        apr_size_t len;
        const unsigned char *der = (const unsigned char *)
            fuzz_read(&len, "corpus/fuzz_verify/good.der", p);
        const char *err;

        memset(&rec, 0, sizeof(rec));
        ocsp_response_verify(&rec.verdict, cert, der, len, FUZZ_NOW, &err, p);
        memset(long_error, 'x', sizeof(long_error) - 1);
        long_error[sizeof(long_error) - 1] = '\0';
        rec.der = der;
        rec.der_len = len;
        rec.fetched_at = FUZZ_NOW - apr_time_from_sec(86400);
        rec.attempted_at = FUZZ_NOW - apr_time_from_sec(30);
        rec.next_attempt = FUZZ_NOW + apr_time_from_sec(600);
        rec.failures = 70000;       /* encoded as 65535 */
        rec.error = long_error;     /* cut to STAPLING_RECORD_MAX_ERROR */
        rec.source = STAPLING_FROM_SHARED;
        rec.origin = long_error;    /* cut to STAPLING_RECORD_MAX_ORIGIN */
        rc |= write_record(dir, "good-failing", &rec, p);
    }
    apr_pool_destroy(p);
    return rc;
}
