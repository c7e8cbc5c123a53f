/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Stapling records in an Apache socache, as mod_ssl uses its session cache:
 * provider looked up by name, created at configuration time (so a bad
 * argument stops the config check), initialised in post_config with size
 * hints, and guarded by a registered global mutex when the provider says it
 * is not safe for concurrent use (shmcb is not).
 */

#include <string.h>

#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>
#include <http_main.h>
#include <ap_provider.h>
#include <util_mutex.h>

#include "stapling_cache.h"

APLOG_USE_MODULE(ocspstaple);

#define RECORD_GRACE apr_time_from_sec(3600)

struct stapling_cache {
    const char *spec;
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;       /* NULL when the provider needs none */
};

apr_status_t stapling_cache_register_mutex(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, STAPLING_CACHE_MUTEX, NULL,
                             APR_LOCK_DEFAULT, 0);
}

static const char *unknown_provider(const char *name, apr_pool_t *ptemp)
{
    apr_array_header_t *names = ap_list_provider_names(
        ptemp, AP_SOCACHE_PROVIDER_GROUP, AP_SOCACHE_PROVIDER_VERSION);
    const char *known = "";
    int i;

    for (i = 0; names && i < names->nelts; i++) {
        ap_list_provider_names_t *n = &APR_ARRAY_IDX(names, i,
                                                     ap_list_provider_names_t);
        known = apr_pstrcat(ptemp, known, i ? ", " : "", n->provider_name,
                            NULL);
    }
    return apr_psprintf(ptemp, "unknown socache provider '%s' (known: %s); "
                        "to use it, load mod_socache_%s with LoadModule "
                        "before this directive", name,
                        *known ? known : "none", name);
}

const char *stapling_cache_create(stapling_cache **pcache, const char *spec,
                                  apr_pool_t *ptemp, apr_pool_t *pconf)
{
    stapling_cache *cache = apr_pcalloc(pconf, sizeof(*cache));
    const char *colon = strchr(spec, ':');
    const char *name = colon ? apr_pstrmemdup(ptemp, spec, colon - spec) : spec;
    const char *err;

    *pcache = NULL;
    cache->spec = apr_pstrdup(pconf, spec);
    cache->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                         AP_SOCACHE_PROVIDER_VERSION);
    if (!cache->provider) {
        return unknown_provider(name, ptemp);
    }
    err = cache->provider->create(&cache->instance, colon ? colon + 1 : NULL,
                                  ptemp, pconf);
    if (err) {
        return apr_psprintf(ptemp, "%s: %s", spec, err);
    }
    *pcache = cache;
    return NULL;
}

static int is_dbm(const stapling_cache *cache)
{
    return !strcmp(cache->provider->name, "dbm");
}

/* mod_socache_dbm's destroy deletes its files, and keeps nothing open
 * between calls: for dbm, what survives a restart is the point (a restarted
 * server finds its responses there), so it is not called. */
static apr_status_t cache_destroy(void *data)
{
    stapling_cache *cache = data;

    if (!is_dbm(cache)) {
        cache->provider->destroy(cache->instance, ap_server_conf);
    }
    return APR_SUCCESS;
}

apr_status_t stapling_cache_init(stapling_cache *cache, server_rec *s,
                                 apr_pool_t *pconf)
{
    struct ap_socache_hints hints;
    apr_status_t rv;

    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = 20;            /* SHA-1 certificate id */
    hints.avg_obj_size = 2048;        /* a response with a signer cert */
    hints.expiry_interval = apr_time_from_sec(30);

    if (cache->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        /* The provider's name as the instance: a server has two such
         * caches with a dbm fleet cache (the local shmcb and the dbm), and
         * mechanisms whose lock file stays (flock) would otherwise name
         * both files alike and fail to create the second one. */
        rv = ap_global_mutex_create(&cache->mutex, NULL, STAPLING_CACHE_MUTEX,
                                    cache->provider->name, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rv = cache->provider->init(cache->instance, "ocspstaple", &hints, s,
                               pconf);
    if (rv == APR_SUCCESS) {
        apr_pool_cleanup_register(pconf, cache, cache_destroy,
                                  apr_pool_cleanup_null);
    }
    return rv;
}

void stapling_cache_child_init(stapling_cache *cache, server_rec *s,
                               apr_pool_t *p)
{
    apr_status_t rv;

    if (!cache->mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&cache->mutex,
                                     apr_global_mutex_lockfile(cache->mutex),
                                     p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "OCSPSTAPLE0021: cannot "
                     "reattach the %s mutex in a child process (error %d)",
                     STAPLING_CACHE_MUTEX, rv);
    }
}

static apr_status_t lock(stapling_cache *cache)
{
    return cache->mutex ? apr_global_mutex_lock(cache->mutex) : APR_SUCCESS;
}

static void unlock(stapling_cache *cache)
{
    if (cache->mutex) {
        apr_global_mutex_unlock(cache->mutex);
    }
}

apr_status_t stapling_cache_put(stapling_cache *cache, server_rec *s,
                                const unsigned char *id, apr_size_t id_len,
                                const stapling_record *rec, apr_pool_t *p)
{
    unsigned char *buf;
    apr_size_t len;
    apr_time_t expiry;
    apr_status_t rv;

    rv = stapling_record_encode(&buf, &len, rec, p);
    if (rv != APR_SUCCESS || (rv = lock(cache)) != APR_SUCCESS) {
        return rv;
    }
    /* Kept past the response's own expiry: the record also carries the
     * fetch schedule (backoff), which every process must keep honouring. */
    expiry = (rec->verdict.expires > rec->next_attempt
              ? rec->verdict.expires : rec->next_attempt) + RECORD_GRACE;
    rv = cache->provider->store(cache->instance, s, id, (unsigned int)id_len,
                                expiry, buf, (unsigned int)len, p);
    unlock(cache);
    return rv;
}

/* The provider wants a buffer as large as the largest record (66 KB) and
 * says nothing about the size beforehand. Taken from a scratch pool that
 * goes at once, so that its allocator node is reused by the next call:
 * from p, 1,000 gets in one pool (a child taking every record at its
 * start) left 1,000 such nodes behind, 8 KB of each touched: 8 MB per
 * process per 1,000 certificates. What the record needs is copied to p. */
static apr_status_t get_raw(stapling_cache *cache, server_rec *s,
                            const unsigned char *id, apr_size_t id_len,
                            unsigned char **pbuf, apr_size_t *plen,
                            apr_pool_t *p)
{
    unsigned int len = STAPLING_RECORD_MAX_SIZE;
    apr_pool_t *scratch;
    unsigned char *buf;
    apr_status_t rv;

    *pbuf = NULL;
    *plen = 0;
    if ((rv = apr_pool_create(&scratch, p)) != APR_SUCCESS) {
        return rv;
    }
    buf = apr_palloc(scratch, len);
    if ((rv = lock(cache)) == APR_SUCCESS) {
        rv = cache->provider->retrieve(cache->instance, s, id,
                                       (unsigned int)id_len, buf, &len,
                                       scratch);
        unlock(cache);
    }
    if (rv == APR_SUCCESS) {
        *pbuf = apr_pmemdup(p, buf, len);
        *plen = len;
    }
    apr_pool_destroy(scratch);
    return rv;
}

apr_status_t stapling_cache_get(stapling_cache *cache, server_rec *s,
                                const unsigned char *id, apr_size_t id_len,
                                stapling_record *rec, apr_pool_t *p)
{
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;

    rv = get_raw(cache, s, id, id_len, &buf, &len, p);
    if (rv == APR_EGENERAL && is_dbm(cache)) {
        return APR_NOTFOUND;  /* mod_socache_dbm's answer for a missing key */
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* A record that does not decode came from a cache that works. */
    return stapling_record_decode(rec, buf, len, p) == APR_SUCCESS
           ? APR_SUCCESS : STAPLING_CACHE_ECORRUPT;
}

int stapling_cache_is_shm(const stapling_cache *cache)
{
    return !strcmp(cache->provider->name, "shmcb");
}

const char *stapling_cache_provider_name(const stapling_cache *cache)
{
    return cache->provider->name;
}
