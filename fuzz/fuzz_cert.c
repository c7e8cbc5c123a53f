/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * libFuzzer target: ocsp_cert_parse on arbitrary text (the certificate and
 * issuer PEM mod_ssl hands over), then what the module does with a parsed
 * certificate: its responder URLs, subject, serial, Must-Staple, the OCSP
 * request, and the verification of a fixed response against it.
 */

#include <string.h>

#include "fuzz_common.h"

static apr_pool_t *g_root;
static const unsigned char *g_good;
static apr_size_t g_good_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_root = fuzz_init();
    g_good = (const unsigned char *)fuzz_read(&g_good_len,
                                              "corpus/fuzz_verify/good.der",
                                              g_root);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    ocsp_cert *cert;
    const apr_array_header_t *urls;
    const char *err = NULL;
    unsigned char *req;
    apr_size_t req_len;
    ocsp_verdict v;
    apr_status_t rv;
    int i;

    apr_pool_create(&p, g_root);
    rv = ocsp_cert_parse(&cert, (const char *)data, size, &err, p);
    if (rv != APR_SUCCESS) {
        FUZZ_ASSERT(cert == NULL);
        FUZZ_ASSERT(err != NULL && *err);
        fuzz_note("refused: %s", err);
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_ASSERT(cert != NULL);
    urls = ocsp_cert_urls(cert);
    FUZZ_ASSERT(urls != NULL);
    for (i = 0; i < urls->nelts; i++) {
        const char *url = APR_ARRAY_IDX(urls, i, const char *);

        FUZZ_ASSERT(url != NULL);
        (void)strlen(url);
    }
    FUZZ_ASSERT(ocsp_cert_subject(cert) && ocsp_cert_serial(cert));
    FUZZ_ASSERT(ocsp_cert_must_staple(cert) == 0
                || ocsp_cert_must_staple(cert) == 1);
    FUZZ_ASSERT(ocsp_request_build(&req, &req_len, cert, p) == APR_SUCCESS);
    FUZZ_ASSERT(req != NULL && req_len > 0);
    rv = ocsp_response_verify(&v, cert, g_good, g_good_len, FUZZ_NOW, &err, p);
    FUZZ_ASSERT(rv == APR_SUCCESS || (err != NULL && *err));
    fuzz_note("parsed: %s, serial %s, %d URL(s)%s%s", ocsp_cert_subject(cert),
              ocsp_cert_serial(cert), urls->nelts,
              ocsp_cert_must_staple(cert) ? ", must-staple" : "",
              rv == APR_SUCCESS ? ", the fixed response verifies" : "");
    apr_pool_destroy(p);
    return 0;
}
