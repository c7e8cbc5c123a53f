/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSP_STORE_H
#define OCSP_STORE_H

/*
 * Verified OCSP responses on disk, so a restart staples from the first
 * handshake even while the responder is down: one DER file per certificate,
 * <dir>/<certificate id in hex>.der, readable by the server user only,
 * replaced atomically (temporary file + rename). What is read back is
 * verified again by the caller: the files are not trusted. APR only.
 */

#include <apr_pools.h>
#include <apr_time.h>

/* The file name for a certificate id. */
const char *ocsp_store_path(const char *dir, const unsigned char *id,
                            apr_size_t id_len, apr_pool_t *p);

/* Reads a DER file (at most max_len bytes) and its modification time: a
 * stored response (see ocsp_store_path) or an OCSPStaplingFile. APR_ENOENT
 * when there is none; APR_ENOSPC when it is larger. */
apr_status_t ocsp_file_read(unsigned char **pder, apr_size_t *plen,
                            apr_time_t *pmtime, const char *path,
                            apr_size_t max_len, apr_pool_t *p);

/* Replaces the stored DER of id atomically, mode 0600. */
apr_status_t ocsp_store_write(const char *dir, const unsigned char *id,
                              apr_size_t id_len, const unsigned char *der,
                              apr_size_t len, apr_pool_t *p);

#endif /* OCSP_STORE_H */
