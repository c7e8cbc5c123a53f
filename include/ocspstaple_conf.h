/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_CONF_H
#define OCSPSTAPLE_CONF_H

/* Directives and the effective settings of a (merged) server. */

#include "ocspstaple.h"
#include "refresh_policy.h"
#include "stapling_cache.h"

#define OCSPSTAPLE_UNSET            (-1)
#define OCSPSTAPLE_DEFAULT_TIMEOUT  apr_time_from_sec(10)
#define OCSPSTAPLE_MAX_TIMEOUT      apr_time_from_sec(300)
#ifndef OCSPSTAPLE_DEFAULT_STORE    /* a persistent place; -D at build time */
#define OCSPSTAPLE_DEFAULT_STORE    "/var/cache/apache2/ocspstaple"
#endif

typedef struct {
    int                 enabled;        /* OCSPUseStapling */
    apr_interval_time_t timeout;        /* OCSPStaplingResponderTimeout */
    int                 return_errors;  /* OCSPStaplingReturnResponderErrors */
    const char         *force_url;      /* OCSPStaplingForceURL */
    const char         *proxy;          /* OCSPStaplingProxy */
    int                 use_post;       /* OCSPStaplingUsePOST */
    const char         *ca_file;        /* OCSPStaplingResponderCAFile */
    apr_array_header_t *files;          /* OCSPStaplingFile (paths) */
    refresh_window      renew;          /* OCSPStaplingRenewWindow */
    stapling_cache     *cache;          /* OCSPStaplingCache (main server) */
    const char         *store_dir;      /* OCSPStaplingStore (main server) */
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
refresh_window ocspstaple_renew_window(const server_rec *s);
const char *ocspstaple_proxy(const server_rec *s);
/* 1: POST every request (OCSPStaplingUsePOST on); 0: GET where it fits. */
int ocspstaple_use_post(const server_rec *s);
/* NULL: libcurl's default CA certificates. */
const char *ocspstaple_responder_ca_file(const server_rec *s);
const apr_array_header_t *ocspstaple_files(const server_rec *s);
/* The absolute store directory, or NULL when it is off. */
const char *ocspstaple_store_dir(const server_rec *s, apr_pool_t *p);

/* Startup notices where SSLUseStapling or MDStapling ask for stapling of a
 * virtual host whose certificates we staple. */
void ocspstaple_check_coexistence(server_rec *main_s, apr_pool_t *p);

#endif /* OCSPSTAPLE_CONF_H */
