/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_PRIVATE_H
#define OCSPSTAPLE_PRIVATE_H

/* What the module's files share: configuration, the certificate registry and
 * the update step. Nothing here is for other modules. */

#include <httpd.h>

/* The core OCSP provider hooks (http_ssl.h) arrived in 2.4.48. */
#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 105)
#error "mod_ocspstaple needs httpd 2.4.48 or later (core OCSP stapling hooks in http_ssl.h)"
#endif

#include <http_config.h>
#include <http_ssl.h>
#include <apr_thread_mutex.h>

#include "ocsp_fetch.h"
#include "stapling_cache.h"

extern module AP_MODULE_DECLARE_DATA ocspstaple_module;

/* ------------------------------------------------------------ configuration */

#define OCSPSTAPLE_UNSET            (-1)
#define OCSPSTAPLE_DEFAULT_TIMEOUT  apr_time_from_sec(10)
#define OCSPSTAPLE_MAX_TIMEOUT      apr_time_from_sec(300)

typedef struct {
    int                 enabled;        /* OCSPUseStapling */
    apr_interval_time_t timeout;        /* OCSPStaplingResponderTimeout */
    int                 return_errors;  /* OCSPStaplingReturnResponderErrors */
    const char         *force_url;      /* OCSPStaplingForceURL */
    stapling_cache     *cache;          /* OCSPStaplingCache (main server) */
} ocspstaple_conf;

extern const command_rec ocspstaple_cmds[];
void *ocspstaple_create_conf(apr_pool_t *p, server_rec *s);
void *ocspstaple_merge_conf(apr_pool_t *p, void *basev, void *addv);

/* Effective settings of a (merged) server, defaults applied. */
int ocspstaple_is_enabled(const server_rec *s);
apr_interval_time_t ocspstaple_timeout(const server_rec *s);
int ocspstaple_returns_errors(const server_rec *s);
const char *ocspstaple_force_url(const server_rec *s);
stapling_cache *ocspstaple_configured_cache(const server_rec *s);

/* ----------------------------------------------------------------- registry */

#define OCSPSTAPLE_ID_LEN 20            /* SHA-1 of the certificate, from mod_ssl */

/* One certificate, however many virtual hosts serve it. */
typedef struct {
    unsigned char       id[OCSPSTAPLE_ID_LEN];
    const char         *label;          /* for logs: cert "subject" serial .. id .. */
    ocsp_cert          *cert;
    const apr_array_header_t *urls;     /* OCSPStaplingForceURL, or the AIA's */
    server_rec         *s;              /* first vhost: the settings used */
    const char         *vhosts;         /* every vhost serving it, for logs */

    /* This process's copy of the newest record: the handshake fast path. */
    apr_thread_mutex_t *lock;
    stapling_record     local;          /* der is malloc'd, owned here */
    apr_time_t          checked_at;     /* last look into the shared cache */
} ocspstaple_entry;

typedef struct ocspstaple_registry ocspstaple_registry;

ocspstaple_registry *ocspstaple_registry_make(apr_pool_t *pconf);
/* From the prime hook: APR_SUCCESS when the certificate is ours to staple,
 * APR_ENOENT when it has no responder URL (logged). */
apr_status_t ocspstaple_registry_add(ocspstaple_registry *reg, server_rec *s,
                                     const char *id, apr_size_t id_len,
                                     const char *pem, apr_pool_t *pconf);
ocspstaple_entry *ocspstaple_registry_find(const ocspstaple_registry *reg,
                                           const char *id, apr_size_t id_len);
const apr_array_header_t *ocspstaple_registry_entries(
    const ocspstaple_registry *reg);

/* Replaces the process-local copy (copies rec). */
void ocspstaple_entry_set_local(ocspstaple_entry *e, const stapling_record *rec);
/* Staples from the local copy, refreshed from the shared cache when it is
 * stale. Returns 1 when cb was called with a response. */
int ocspstaple_entry_staple(ocspstaple_entry *e, server_rec *s,
                            stapling_cache *cache, apr_pool_t *p,
                            ap_ssl_ocsp_copy_resp *cb, void *userdata);

/* ------------------------------------------------------------------- update */

/* A responder's own error answer is kept (for OCSPStaplingReturnResponderErrors)
 * this long, as mod_ssl's SSLStaplingErrorCacheTimeout does. */
#define OCSPSTAPLE_ERROR_RESPONSE_LIFETIME apr_time_from_sec(600)

/* Fetches, verifies and stores a fresh response for e; logs exactly one line
 * saying how it went. Never drops a still valid response for a failure. */
apr_status_t ocspstaple_update(ocspstaple_entry *e, stapling_cache *cache,
                               apr_pool_t *ptemp);

#endif /* OCSPSTAPLE_PRIVATE_H */
