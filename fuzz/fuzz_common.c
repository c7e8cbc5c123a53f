/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Helpers shared by the fuzz harnesses: fixtures, notes, failures.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "fuzz_common.h"

#ifndef FUZZ_DIR
#define FUZZ_DIR "fuzz"
#endif

int fuzz_noting;
char fuzz_outcome[512];

static apr_pool_t *g_pool;

/* At exit, before the sanitizer's leak check (atexit runs handlers in
 * reverse order, and LeakSanitizer registered its own first): the run's pool
 * and what hangs off it (the certificate's OpenSSL objects) are freed. APR
 * pool memory may be mmap'ed, where LeakSanitizer does not look for
 * pointers, so anything left to the pool would be reported as leaked. */
static void fuzz_cleanup(void)
{
    if (g_pool) {
        apr_pool_destroy(g_pool);
        g_pool = NULL;
        apr_terminate();
    }
}

apr_pool_t *fuzz_init(void)
{
    if (!g_pool) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&g_pool, NULL) != APR_SUCCESS) {
            fuzz_fail("cannot initialize APR");
        }
        atexit(fuzz_cleanup);
    }
    return g_pool;
}

const char *fuzz_dir(void)
{
    const char *dir = getenv("OCSP_FUZZ_DIR");

    return dir && *dir ? dir : FUZZ_DIR;
}

char *fuzz_read(apr_size_t *plen, const char *rel, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, fuzz_dir(), "/", rel, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t got;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p)
        || apr_file_info_get(&fi, APR_FINFO_SIZE, f)) {
        fuzz_fail("cannot open %s (OCSP_FUZZ_DIR names the fixtures)", path);
    }
    buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    got = (apr_size_t)fi.size;
    if (fi.size && apr_file_read_full(f, buf, got, &got)) {
        fuzz_fail("cannot read %s", path);
    }
    buf[got] = '\0';
    apr_file_close(f);
    *plen = got;
    return buf;
}

int fuzz_write(const char *path, const void *data, apr_size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;

    if (f && fclose(f) != 0) {
        ok = 0;
    }
    return ok ? 0 : -1;
}

const ocsp_cert *fuzz_cert(apr_pool_t *p)
{
    apr_size_t len;
    const char *pem = fuzz_read(&len, "pki/chain.pem", p);
    const char *err = NULL;
    ocsp_cert *cert;

    if (ocsp_cert_parse(&cert, pem, len, &err, p) != APR_SUCCESS) {
        fuzz_fail("%s/pki/chain.pem: %s", fuzz_dir(), err);
    }
    return cert;
}

void fuzz_note(const char *fmt, ...)
{
    va_list ap;

    if (!fuzz_noting) {
        return;
    }
    va_start(ap, fmt);
    apr_vsnprintf(fuzz_outcome, sizeof(fuzz_outcome), fmt, ap);
    va_end(ap);
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}
