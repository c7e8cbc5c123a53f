/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The on-disk store of verified responses (see ocsp_store.h).
 */

#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "ocsp_store.h"

const char *ocsp_store_path(const char *dir, const unsigned char *id,
                            apr_size_t id_len, apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    char *name = apr_palloc(p, 2 * id_len + sizeof(".der"));
    apr_size_t i;

    for (i = 0; i < id_len; i++) {
        name[2 * i] = hex[id[i] >> 4];
        name[2 * i + 1] = hex[id[i] & 0x0f];
    }
    memcpy(name + 2 * id_len, ".der", sizeof(".der"));
    return apr_pstrcat(p, dir, "/", name, NULL);
}

apr_status_t ocsp_file_read(unsigned char **pder, apr_size_t *plen,
                            apr_time_t *pmtime, const char *path,
                            apr_size_t max_len, apr_pool_t *p)
{
    apr_finfo_t finfo;
    apr_file_t *f = NULL;
    apr_size_t got;
    apr_status_t rv;

    *pder = NULL;
    *plen = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_ENOENT : rv;
    }
    if ((rv = apr_file_info_get(&finfo, APR_FINFO_SIZE | APR_FINFO_MTIME, f))
        != APR_SUCCESS) {
        goto cleanup;
    }
    if (finfo.size < 0 || (apr_size_t)finfo.size > max_len) {
        rv = APR_ENOSPC;
        goto cleanup;
    }
    got = (apr_size_t)finfo.size;
    *pder = apr_palloc(p, got ? got : 1);
    if ((rv = apr_file_read_full(f, *pder, got, &got)) == APR_SUCCESS) {
        *plen = got;
        *pmtime = finfo.mtime;
    }

cleanup:
    apr_file_close(f);
    return rv;
}

apr_status_t ocsp_store_write(const char *dir, const unsigned char *id,
                              apr_size_t id_len, const unsigned char *der,
                              apr_size_t len, apr_pool_t *p)
{
    const char *path = ocsp_store_path(dir, id, id_len, p);
    char *tmp = apr_pstrcat(p, path, ".XXXXXX", NULL);
    apr_file_t *f = NULL;
    apr_status_t rv;

    /* mkstemp makes the file 0600: only the server user reads responses. */
    rv = apr_file_mktemp(&f, tmp, APR_FOPEN_CREATE | APR_FOPEN_WRITE
                         | APR_FOPEN_EXCL | APR_FOPEN_BINARY, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_write_full(f, der, len, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_file_sync(f);
    }
    apr_file_close(f);
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(tmp, path, p);
    }
    if (rv != APR_SUCCESS) {
        apr_file_remove(tmp, p);
    }
    return rv;
}
