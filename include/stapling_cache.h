/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef STAPLING_CACHE_H
#define STAPLING_CACHE_H

/*
 * Stapling records in an Apache socache (shmcb, dbm, memcache, redis, ...),
 * keyed by the certificate id, behind a global mutex when the provider is not
 * safe for concurrent use across processes.
 */

#include <httpd.h>
#include <ap_socache.h>

#include "stapling_record.h"

/* The mutex type, configurable with "Mutex ocspstaple-cache ..." */
#define STAPLING_CACHE_MUTEX "ocspstaple-cache"

typedef struct stapling_cache stapling_cache;

/* pre_config: registers the mutex type. */
apr_status_t stapling_cache_register_mutex(apr_pool_t *pconf);

/* Looks up the provider of spec ("provider[:args]") and creates the instance.
 * Returns NULL, or an error message naming the known providers. */
const char *stapling_cache_create(stapling_cache **pcache, const char *spec,
                                  apr_pool_t *ptemp, apr_pool_t *pconf);

/* post_config: opens the cache and creates its mutex if the provider needs
 * one. Destroyed with pconf. */
apr_status_t stapling_cache_init(stapling_cache *cache, server_rec *s,
                                 apr_pool_t *pconf);

/* child_init: reattaches the mutex in a child process. */
void stapling_cache_child_init(stapling_cache *cache, server_rec *s,
                               apr_pool_t *p);

/* Stores rec under id until rec's expiry. */
apr_status_t stapling_cache_put(stapling_cache *cache, server_rec *s,
                                const unsigned char *id, apr_size_t id_len,
                                const stapling_record *rec, apr_pool_t *p);

/* The cache answered with bytes that are not a record. */
#define STAPLING_CACHE_ECORRUPT (APR_OS_START_USERERR + 10)

/* Reads the record stored under id; APR_NOTFOUND when there is none,
 * STAPLING_CACHE_ECORRUPT when it does not decode. rec points into memory
 * from p. */
apr_status_t stapling_cache_get(stapling_cache *cache, server_rec *s,
                                const unsigned char *id, apr_size_t id_len,
                                stapling_record *rec, apr_pool_t *p);

/* Whether the cache is shared memory (shmcb) that only the processes of
 * this server can reach. */
int stapling_cache_is_shm(const stapling_cache *cache);

/* "shmcb", "redis", ... */
const char *stapling_cache_provider_name(const stapling_cache *cache);

#endif /* STAPLING_CACHE_H */
