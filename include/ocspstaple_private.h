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
#include <apr_global_mutex.h>
#include <apr_thread_mutex.h>

#include "ocsp_fetch.h"
#include "refresh_policy.h"
#include "stapling_cache.h"

extern module AP_MODULE_DECLARE_DATA ocspstaple_module;

/* Every message of ours starts with its tag, so the reason of a failure goes
 * at the end of the line ("Permission denied (13)"), never in httpd's status
 * prefix. */
const char *ocspstaple_strerror(apr_status_t rv, apr_pool_t *p);

/* ------------------------------------------------------------ configuration */

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
const apr_array_header_t *ocspstaple_files(const server_rec *s);
/* The absolute store directory, or NULL when it is off. */
const char *ocspstaple_store_dir(const server_rec *s, apr_pool_t *p);

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
    const char         *origin;         /* this server, see registry_origin */

    /* This process's copy of the newest record: the handshake fast path. */
    apr_thread_mutex_t *lock;
    stapling_record     local;          /* der is malloc'd, owned here */
    apr_time_t          checked_at;     /* last look into the shared cache */
    int                 cache_complaint;/* logged a bad cached record once */
    int                 syncing;        /* a cold handshake reads the cache */

    int                 must_staple;    /* TLS Feature status_request */
    const char         *static_file;    /* OCSPStaplingFile serving it */
    apr_uint32_t       *counters;       /* OCSPSTAPLE_COUNTERS, shared */

} ocspstaple_entry;

typedef struct ocspstaple_registry ocspstaple_registry;

typedef enum {
    OCSPSTAPLE_FETCHES = 0,
    OCSPSTAPLE_FAILURES = 1,
    OCSPSTAPLE_STAPLES = 2,
    OCSPSTAPLE_ALERTS = 3,              /* bits, see ocspstaple_alerts */
    OCSPSTAPLE_COUNTERS = 4
} ocspstaple_counter;

/* Everything of one configuration generation, rebuilt on each (graceful)
 * restart; children inherit it. */
typedef struct {
    ocspstaple_registry *registry;
    stapling_cache      *cache;
    const char          *store_dir;     /* NULL: OCSPStaplingStore off */
    apr_global_mutex_t  *fetch_mutex;   /* held by whoever fetches */
} ocspstaple_state;

/* The mutex types, configurable with "Mutex ocspstaple-fetch ..." */
#define OCSPSTAPLE_FETCH_MUTEX "ocspstaple-fetch"

ocspstaple_registry *ocspstaple_registry_make(apr_pool_t *pconf);
/* "host/pid of the parent": who fetched a record, in a shared cache. */
const char *ocspstaple_registry_origin(const ocspstaple_registry *reg);
/* From the prime hook: APR_SUCCESS when the certificate is ours to staple,
 * APR_ENOENT when it has no responder URL (logged). */
apr_status_t ocspstaple_registry_add(ocspstaple_registry *reg, server_rec *s,
                                     const char *id, apr_size_t id_len,
                                     const char *pem, apr_pool_t *pconf);
ocspstaple_entry *ocspstaple_registry_find(const ocspstaple_registry *reg,
                                           const char *id, apr_size_t id_len);
/* ocspstaple_entry *, in the order mod_ssl offered them. */
const apr_array_header_t *ocspstaple_registry_entries(
    const ocspstaple_registry *reg);
/* post_config: the shared counters, once every certificate is known. */
apr_status_t ocspstaple_registry_counters(ocspstaple_registry *reg,
                                          apr_pool_t *pconf);
void ocspstaple_count(ocspstaple_entry *e, ocspstaple_counter which);
/* The shared alert bits of e. */
apr_uint32_t *ocspstaple_alert_bits(ocspstaple_entry *e);
apr_uint32_t ocspstaple_counter_value(const ocspstaple_entry *e,
                                      ocspstaple_counter which);

/* Reads and verifies a DER response file for cert (OCSPStaplingFile and the
 * store): a record with source file. *perr says why not. */
apr_status_t ocspstaple_load_file(stapling_record *rec, const ocsp_cert *cert,
                                  const char *path, const char **perr,
                                  apr_pool_t *p);

/* The process-local copy. set_local copies rec (DER included). */
void ocspstaple_entry_set_local(ocspstaple_entry *e, const stapling_record *rec);
/* A copy of the local record; its DER is allocated from p. */
void ocspstaple_entry_get_local(ocspstaple_entry *e, stapling_record *rec,
                                apr_pool_t *p);
/* Takes a newer, verified record from the shared cache, if there is one,
 * unless the last look was less than min_interval ago. Never holds e->lock
 * while reading the cache. Returns 1 when it took one. */
int ocspstaple_entry_sync(ocspstaple_entry *e, stapling_cache *cache,
                          apr_interval_time_t min_interval, apr_pool_t *p);
/* Whether a fetch is due for e: its local copy (synced with the shared
 * cache first) says so. */
int ocspstaple_entry_due(ocspstaple_entry *e, stapling_cache *cache,
                         apr_time_t now, apr_pool_t *p);
/* The handshake path: staples this process's copy if it may be stapled for
 * server s. No cache, no network, no parsing. Returns 1 when cb was called. */
int ocspstaple_entry_staple(ocspstaple_entry *e, server_rec *s,
                            ap_ssl_ocsp_copy_resp *cb, void *userdata);
/* A handshake's cold miss: ocspstaple_entry_sync, bounded so that no more
 * than one handshake per certificate and process waits on the cache. */
int ocspstaple_entry_sync_cold(ocspstaple_entry *e, stapling_cache *cache,
                               apr_pool_t *p);

/* Shared alert bits: set or clear bit; says whether this call changed it,
 * so that exactly one process logs each change. */
enum { OCSPSTAPLE_ALERT_UNCHANGED, OCSPSTAPLE_ALERT_RAISED,
       OCSPSTAPLE_ALERT_CLEARED };
int ocspstaple_alert_flip(apr_uint32_t *bits, apr_uint32_t bit, int condition);
/* Logs once when the shared cache starts failing (rv from a get, or a put
 * when was_put), and once when it works again. */
void ocspstaple_cache_health(server_rec *s, stapling_cache *cache,
                             apr_status_t rv, int was_put, apr_pool_t *p);

/* ------------------------------------------------------------------- update */

/* A responder's own error answer is kept (for OCSPStaplingReturnResponderErrors)
 * this long, as mod_ssl's SSLStaplingErrorCacheTimeout does. */
#define OCSPSTAPLE_ERROR_RESPONSE_LIFETIME apr_time_from_sec(600)
/* Shared-cache room per certificate: a response with a signer certificate
 * is ~2 KB, and shmcb spreads entries over its subcaches unevenly. */
#define OCSPSTAPLE_CACHE_PER_CERT (16 * 1024)
/* Fetches running at once in one update round. */
#define OCSPSTAPLE_FETCH_PARALLEL 16

/* Fetches, verifies and stores fresh responses for the entries
 * (ocspstaple_entry *) concurrently; one log line per entry saying how it
 * went; schedules the next fetch. Never drops a still valid response for a
 * failure. all_urls 0 asks only each entry's first responder (handshakes:
 * bounded by one timeout). Returns how many succeeded. */
int ocspstaple_update(ocspstaple_state *st, const apr_array_header_t *entries,
                      int all_urls, apr_pool_t *ptemp);

/* Publishes rec: the shared cache for the other processes, then this
 * process's copy. */
void ocspstaple_publish(ocspstaple_state *st, ocspstaple_entry *e,
                        const stapling_record *rec, apr_pool_t *p);

/* Startup: serves valid responses from the store, fetches what is missing
 * (before any child starts), and warns when the cache is too small. */
void ocspstaple_startup(ocspstaple_state *st, server_rec *s, apr_pool_t *ptemp);

/* Logs, once per episode, a Must-Staple certificate without a valid response
 * and an OCSPStaplingFile about to expire or expired (startup, watchdog). */
void ocspstaple_alerts(ocspstaple_state *st, apr_pool_t *p);

/* Background refresh: registers a mod_watchdog singleton that renews due
 * responses in one child process. */
apr_status_t ocspstaple_watchdog_register(ocspstaple_state *st, server_rec *s,
                                          apr_pool_t *pconf);

/* child_init: a new child takes what was renewed since the parent's startup
 * from a local cache (shmcb, dbm) before its first handshake, so it never
 * staples a superseded response. Network caches are left to the background
 * refresh (within a second): a child must not wait on them to start. */
void ocspstaple_child_sync(ocspstaple_state *st, apr_pool_t *p);

/* Handshake cold miss: fetch now, if nobody else is fetching and a fetch is
 * due; never waits for another fetch. Returns 1 when it fetched. */
int ocspstaple_fetch_cold(ocspstaple_state *st, ocspstaple_entry *e,
                          apr_pool_t *p);

/* Startup notices where SSLUseStapling or MDStapling ask for stapling of a
 * virtual host whose certificates we staple. */
void ocspstaple_check_coexistence(server_rec *main_s, apr_pool_t *p);

/* ------------------------------------------------------------------- status */

/* The ocspstaple-status handler: HTML, or JSON with ?format=json. */
int ocspstaple_status_handler(ocspstaple_state *st, request_rec *r);
/* A summary on mod_status's server-status page. */
int ocspstaple_status_summary(ocspstaple_state *st, request_rec *r,
                              int flags);

#endif /* OCSPSTAPLE_PRIVATE_H */
