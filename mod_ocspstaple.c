/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * mod_ocspstaple: OCSP stapling for mod_ssl through httpd's core OCSP
 * provider hooks (http_ssl.h). mod_ssl hands us each certificate at startup
 * (prime) and asks for a response in each handshake (get_resp); everything
 * about fetching, verifying and caching responses happens here.
 */

#include <string.h>

#include <apr_strings.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <mod_status.h>

#include "ocspstaple_local.h"
#include "ocspstaple_refresh.h"
#include "ocspstaple_status.h"

/* The local cache: shmcb in the runtime directory, sized for the
 * certificates in use. */
#define DEFAULT_CACHE_FILE       "ocspstaple-cache"
#define DEFAULT_CACHE_MIN_SIZE   (512 * 1024)


/* Per configuration generation: rebuilt on every (graceful) restart. */
static ocspstaple_state state;

const char *ocspstaple_strerror(apr_status_t rv, apr_pool_t *p)
{
    char buf[120];

    return apr_psprintf(p, "%s (%d)", apr_strerror(rv, buf, sizeof(buf)), rv);
}

static int is_first_config_pass(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    memset(&state, 0, sizeof(state));
    state.registry = ocspstaple_registry_make(pconf);
    if (stapling_cache_register_mutex(pconf) != APR_SUCCESS
        || ap_mutex_register(pconf, OCSPSTAPLE_FETCH_MUTEX, NULL,
                             APR_LOCK_DEFAULT, 0) != APR_SUCCESS) {
        return !OK;
    }
    return OK;
}

/* A Must-Staple certificate in a virtual host where we do not staple:
 * worth a warning, unless mod_ssl or mod_md staples it instead. */
static void check_must_staple(server_rec *s, const char *pem, apr_pool_t *p)
{
    apr_pool_t *scratch;
    ocsp_cert *cert;

    apr_pool_create(&scratch, p);
    if (ocsp_cert_parse(&cert, pem, strlen(pem), NULL, scratch) == APR_SUCCESS
        && ocsp_cert_must_staple(cert)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0050: cert "
                     "\"%s\" serial %s of server %s is Must-Staple but "
                     "OCSPUseStapling is off there: unless mod_ssl or mod_md "
                     "staples it, clients will refuse the site",
                     ocsp_cert_subject(cert), ocsp_cert_serial(cert),
                     s->server_hostname);
    }
    apr_pool_destroy(scratch);
}

/* mod_ssl offers every certificate of every SSL virtual host, whether or
 * not its own stapling is on. Declining leaves it to mod_md or mod_ssl. */
static int ocsp_prime(server_rec *s, apr_pool_t *p, const char *id,
                      apr_size_t id_len, const char *pem)
{
    if (!ocspstaple_is_enabled(s)) {
        if (!is_first_config_pass()) {
            check_must_staple(s, pem, p);
        }
        return DECLINED;
    }
    if (is_first_config_pass()) {
        return OK;                    /* the real work is in the second pass */
    }
    return ocspstaple_registry_add(state.registry, s, id, id_len, pem, p)
               == APR_SUCCESS ? OK : DECLINED;
}

/* This server's own cache, in shared memory: the configured one when it is
 * shmcb, else a default shmcb next to it. */
static apr_status_t open_local_cache(server_rec *s, int n_certs,
                                     apr_pool_t *pconf, apr_pool_t *ptemp)
{
    stapling_cache *configured = ocspstaple_configured_cache(s);
    apr_size_t size = (apr_size_t)n_certs * OCSPSTAPLE_CACHE_PER_CERT;
    const char *err, *spec;

    if (configured && stapling_cache_is_shm(configured)) {
        state.local = configured;
        return stapling_cache_init(state.local, s, pconf);
    }
    state.fleet = configured;
    size = size < DEFAULT_CACHE_MIN_SIZE ? DEFAULT_CACHE_MIN_SIZE : size;
    spec = apr_psprintf(ptemp, "shmcb:%s(%" APR_SIZE_T_FMT ")",
                        ap_runtime_dir_relative(ptemp, DEFAULT_CACHE_FILE),
                        size);
    if ((err = stapling_cache_create(&state.local, spec, ptemp, pconf))) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0011: "
                     "cannot create the default cache (%s); load "
                     "mod_socache_shmcb", err);
        return APR_EGENERAL;
    }
    return stapling_cache_init(state.local, s, pconf);
}

static apr_status_t open_caches(server_rec *s, int n_certs, apr_pool_t *pconf,
                                apr_pool_t *ptemp)
{
    apr_status_t rv = open_local_cache(s, n_certs, pconf, ptemp);

    if (rv == APR_SUCCESS && state.fleet) {
        rv = stapling_cache_init(state.fleet, s, pconf);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0018: cannot "
                     "open the OCSP stapling cache: %s",
                     ocspstaple_strerror(rv, ptemp));
    }
    return rv;
}

static apr_status_t create_shared(server_rec *s, apr_pool_t *pconf,
                                  apr_pool_t *ptemp)
{
    apr_status_t rv;

    rv = ap_global_mutex_create(&state.fetch_mutex, NULL,
                                OCSPSTAPLE_FETCH_MUTEX, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        return rv;                    /* httpd logged why */
    }
    rv = ocspstaple_shared_make(&state.shared, state.registry, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0014: cannot "
                     "create the shared memory of the module: %s",
                     ocspstaple_strerror(rv, ptemp));
    }
    return rv;
}

static int init_fetching(server_rec *s)
{
    static int fetch_ready;

    if (!fetch_ready && ocsp_fetch_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0013: "
                     "cannot initialise libcurl");
        return 0;
    }
    fetch_ready = 1;
    return 1;
}

/* Runs after mod_ssl's post_config, which primes every certificate. As
 * root: nothing here reads a response or talks to a responder. */
static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    int n = ocspstaple_registry_entries(state.registry)->nelts;

    (void)plog;
    if (is_first_config_pass()) {
        return OK;
    }
    ocspstaple_check_coexistence(s, ptemp);
    if (n == 0) {
        return OK;
    }
    if (!init_fetching(s)
        || open_caches(s, n, pconf, ptemp) != APR_SUCCESS
        || create_shared(s, pconf, ptemp) != APR_SUCCESS
        || ocspstaple_watchdog_register(&state, s, pconf) != APR_SUCCESS) {
        return !OK;
    }
    state.store_dir = ocspstaple_prepare_store(s, pconf);
    ocspstaple_startup(&state, s, pconf, ptemp);
    return OK;
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (!state.local) {
        return;
    }
    stapling_cache_child_init(state.local, s, p);
    if (state.fleet) {
        stapling_cache_child_init(state.fleet, s, p);
    }
    rv = apr_global_mutex_child_init(&state.fetch_mutex,
             apr_global_mutex_lockfile(state.fetch_mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "OCSPSTAPLE0020: cannot "
                     "reattach the %s mutex in a child process: %s",
                     OCSPSTAPLE_FETCH_MUTEX, ocspstaple_strerror(rv, p));
    }
    ocspstaple_registry_child_init();
    ocspstaple_refresh_child_init(&state, p);
}

/* In each handshake, from mod_ssl's status callback, with the SNI-selected
 * server: staple only for virtual hosts that enabled us. */
static int ocsp_get_resp(server_rec *s, conn_rec *c, const char *id,
                         apr_size_t id_len, ap_ssl_ocsp_copy_resp *cb,
                         void *userdata)
{
    ocspstaple_entry *e;

    (void)c;
    /* Nothing valid here: no staple, at once. The refresh of this process
     * fetches within a second; no handshake ever waits on a responder. */
    if (!state.local || !ocspstaple_is_enabled(s)
        || !(e = ocspstaple_registry_find(state.registry, id, id_len))) {
        return DECLINED;
    }
    return ocspstaple_local_staple(e, s, cb, userdata) ? OK : DECLINED;
}

static int status_handler(request_rec *r)
{
    return ocspstaple_status_handler(&state, r);
}

static int status_summary(request_rec *r, int flags)
{
    return state.local ? ocspstaple_status_summary(&state, r, flags) : OK;
}

static void register_hooks(apr_pool_t *p)
{
    static const char *const after_ssl[] = { "mod_ssl.c", NULL };

    (void)p;
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, after_ssl, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* First: a certificate of a virtual host with OCSPUseStapling on is
     * ours even when mod_md (MDStapling) would also take it. */
    ap_hook_ssl_ocsp_prime_hook(ocsp_prime, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_ssl_ocsp_get_resp_hook(ocsp_get_resp, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_summary, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(ocspstaple) = {
    STANDARD20_MODULE_STUFF,
    NULL,                       /* per-directory config */
    NULL,                       /* merge per-directory */
    ocspstaple_create_conf,     /* per-server config */
    ocspstaple_merge_conf,      /* merge per-server */
    ocspstaple_cmds,
    register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
