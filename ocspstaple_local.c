/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The process-local copy of each record (see ocspstaple_local.h).
 */

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ocspstaple_local.h"
#include "ocspstaple_shared.h"

static char *dup_text(const char *text)
{
    return text ? strdup(text) : NULL;
}

/* The copy outlives every pool of the callers (it is replaced from the
 * refresh thread over the life of the process): it owns malloc'd copies,
 * freed with pconf (ocspstaple_registry.c). */
void ocspstaple_local_set(ocspstaple_entry *e, const stapling_record *rec)
{
    unsigned char *der = rec->der_len ? malloc(rec->der_len) : NULL;
    char *error = dup_text(rec->error), *origin = dup_text(rec->origin);

    if ((rec->der_len && !der) || (rec->error && !error)
        || (rec->origin && !origin)) {
        free(der);                    /* out of memory: keep what we have */
        free(error);
        free(origin);
        return;
    }
    if (der) {
        memcpy(der, rec->der, rec->der_len);
    }
    apr_thread_mutex_lock(e->lock);
    free((void *)e->local.der);
    free((void *)e->local.error);
    free((void *)e->local.origin);
    e->local = *rec;
    e->local.der = der;
    e->local.error = error;
    e->local.origin = origin;
    apr_thread_mutex_unlock(e->lock);
}

static void copy_out(ocspstaple_entry *e, stapling_record *rec, int with_der,
                     apr_pool_t *p)
{
    apr_thread_mutex_lock(e->lock);
    *rec = e->local;
    rec->der = with_der && rec->der_len
               ? apr_pmemdup(p, e->local.der, e->local.der_len) : NULL;
    rec->error = e->local.error ? apr_pstrdup(p, e->local.error) : NULL;
    rec->origin = e->local.origin ? apr_pstrdup(p, e->local.origin) : NULL;
    apr_thread_mutex_unlock(e->lock);
}

void ocspstaple_local_get(ocspstaple_entry *e, stapling_record *rec,
                          apr_pool_t *p)
{
    copy_out(e, rec, 1, p);
}

void ocspstaple_local_peek(ocspstaple_entry *e, stapling_record *rec,
                           apr_pool_t *p)
{
    copy_out(e, rec, 0, p);
}

int ocspstaple_local_staple(ocspstaple_entry *e, server_rec *s,
                            ap_ssl_ocsp_copy_resp *cb, void *userdata)
{
    apr_time_t now = apr_time_now();
    int stapled = 0;

    apr_thread_mutex_lock(e->lock);
    if (stapling_record_stapleable(&e->local, now,
                                   ocspstaple_returns_errors(s))) {
        /* cb copies the DER: mod_ssl hands OpenSSL its own buffer. */
        cb(e->local.der, e->local.der_len, userdata);
        stapled = 1;
    }
    apr_thread_mutex_unlock(e->lock);
    if (stapled) {
        ocspstaple_count(e, OCSPSTAPLE_STAPLES);
    }
    return stapled;
}
