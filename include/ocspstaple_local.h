/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_LOCAL_H
#define OCSPSTAPLE_LOCAL_H

/* Each process's own copy of every certificate's newest record: what a
 * handshake staples (a memcpy under a per-certificate lock: no cache, no
 * network, no parsing) and what the status page shows. */

#include <http_ssl.h>

#include "ocspstaple_registry.h"

/* Replaces the copy with rec (DER and texts copied). */
void ocspstaple_local_set(ocspstaple_entry *e, const stapling_record *rec);
/* A copy of the record; its DER and texts are allocated from p. */
void ocspstaple_local_get(ocspstaple_entry *e, stapling_record *rec,
                          apr_pool_t *p);
/* The same without the DER (rec->der is NULL, der_len kept): for pages
 * that show thousands of certificates. */
void ocspstaple_local_peek(ocspstaple_entry *e, stapling_record *rec,
                           apr_pool_t *p);
/* The handshake: staples the copy if it may be stapled for server s.
 * Returns 1 when cb was called. */
int ocspstaple_local_staple(ocspstaple_entry *e, server_rec *s,
                            ap_ssl_ocsp_copy_resp *cb, void *userdata);

#endif /* OCSPSTAPLE_LOCAL_H */
