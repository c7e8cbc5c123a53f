/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Records kept across a restart (see ocspstaple_retain.h). They live in a
 * subpool of the process pool, found again through httpd's retained data
 * (this module's own statics are gone: its DSO is unloaded and loaded again
 * at every restart).
 */

#include <apr_hash.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_config.h>

#include "ocspstaple_retain.h"

#define RETAINED_KEY "mod_ocspstaple:records"

typedef struct {
    apr_pool_t *pool;               /* NULL: nothing kept */
    apr_hash_t *records;            /* id -> kept_bytes */
} retained;

typedef struct {
    unsigned char *buf;
    apr_size_t len;
} kept_bytes;

typedef struct {
    ocspstaple_state *st;
    server_rec *s;
} retain_ctx;

static retained *retained_data(void)
{
    retained *r = ap_retained_data_get(RETAINED_KEY);

    return r ? r : ap_retained_data_create(RETAINED_KEY, sizeof(*r));
}

void ocspstaple_retained_release(void)
{
    retained *r = retained_data();

    if (r->pool) {
        apr_pool_destroy(r->pool);
    }
    r->pool = NULL;
    r->records = NULL;
}

static void keep_one(retained *r, retain_ctx *ctx, const ocspstaple_entry *e,
                     apr_pool_t *scratch)
{
    unsigned char *buf;
    apr_size_t len;
    kept_bytes *k;

    if (stapling_cache_get_raw(ctx->st->local, ctx->s, e->id,
                               OCSPSTAPLE_ID_LEN, &buf, &len, scratch)
        != APR_SUCCESS) {
        return;
    }
    k = apr_palloc(r->pool, sizeof(*k));
    k->buf = apr_pmemdup(r->pool, buf, len);
    k->len = len;
    apr_hash_set(r->records, apr_pmemdup(r->pool, e->id, OCSPSTAPLE_ID_LEN),
                 OCSPSTAPLE_ID_LEN, k);
}

/* A pconf cleanup: registered after the caches were opened, so it runs
 * before they are closed. Bytes only: the root parent reads no record. */
static apr_status_t keep_records(void *data)
{
    retain_ctx *ctx = data;
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(ctx->st->registry);
    retained *r = retained_data();
    apr_pool_t *scratch;
    int i;

    ocspstaple_retained_release();
    apr_pool_create(&r->pool, ctx->s->process->pool);
    apr_pool_create(&scratch, r->pool);
    r->records = apr_hash_make(r->pool);
    for (i = 0; i < entries->nelts; i++) {
        keep_one(r, ctx, APR_ARRAY_IDX(entries, i, ocspstaple_entry *),
                 scratch);
        apr_pool_clear(scratch);
    }
    apr_pool_destroy(scratch);
    return APR_SUCCESS;
}

void ocspstaple_retain_at_restart(ocspstaple_state *st, server_rec *s,
                                  apr_pool_t *pconf)
{
    retain_ctx *ctx = apr_palloc(pconf, sizeof(*ctx));

    ctx->st = st;
    ctx->s = s;
    apr_pool_cleanup_register(pconf, ctx, keep_records,
                              apr_pool_cleanup_null);
}

int ocspstaple_retained_take(const ocspstaple_entry *e, stapling_record *rec,
                             apr_pool_t *p)
{
    retained *r = retained_data();
    kept_bytes *k = r->records ? apr_hash_get(r->records, e->id,
                                              OCSPSTAPLE_ID_LEN) : NULL;

    return k && stapling_record_decode(rec, k->buf, k->len, p) == APR_SUCCESS
           && stapling_record_stapleable(rec, apr_time_now(), 1);
}
