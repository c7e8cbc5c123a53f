/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The certificates this server staples for (see ocspstaple_registry.h).
 * Runs in the root parent: it parses certificates, as mod_ssl does, and
 * never reads a response.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_registry.h"

APLOG_USE_MODULE(ocspstaple);

struct ocspstaple_registry {
    apr_hash_t *by_id;
    apr_array_header_t *entries;     /* ocspstaple_entry *, in prime order */
    const char *origin;              /* this server, in records it writes */
    ocsp_issuers *issuers;           /* one copy of each CA's certificate */
};

ocspstaple_registry *ocspstaple_registry_make(apr_pool_t *pconf)
{
    ocspstaple_registry *reg = apr_pcalloc(pconf, sizeof(*reg));
    char host[APRMAXHOSTLEN + 1];

    reg->by_id = apr_hash_make(pconf);
    reg->entries = apr_array_make(pconf, 16, sizeof(ocspstaple_entry *));
    reg->issuers = ocsp_issuers_make(pconf);
    if (apr_gethostname(host, sizeof(host), pconf) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    /* The parent's pid tells apart servers that share a cache on one host. */
    reg->origin = apr_psprintf(pconf, "%s/%" APR_PID_T_FMT, host, getpid());
    return reg;
}

const char *ocspstaple_registry_origin(const ocspstaple_registry *reg)
{
    return reg->origin;
}

/* Set in every child: see entry_cleanup. */
static int in_child;

void ocspstaple_registry_child_init(void)
{
    in_child = 1;
}

/* Frees an entry's own copies when the parent's configuration pool goes
 * (restarts). Not in a child: it exits with its pools destroyed by exit()
 * while its refresh thread may still be replacing a record, which would
 * free the same DER twice; the process's memory goes with it anyway. */
static apr_status_t entry_cleanup(void *data)
{
    ocspstaple_entry *e = data;

    if (in_child) {
        return APR_SUCCESS;
    }
    free((void *)e->local.der);
    free((void *)e->local.error);
    free((void *)e->local.origin);
    e->local.der = NULL;
    e->local.error = e->local.origin = NULL;
    return APR_SUCCESS;
}

static const char *entry_label(const ocsp_cert *cert, const unsigned char *id,
                               apr_pool_t *p)
{
    char hex[2 * 8 + 1];

    ap_bin2hex(id, 8, hex);           /* 64 bits tell certificates apart */
    return apr_psprintf(p, "cert \"%s\" serial %s id %s",
                        ocsp_cert_subject(cert), ocsp_cert_serial(cert), hex);
}

static const apr_array_header_t *responder_urls(server_rec *s,
                                                const ocsp_cert *cert,
                                                apr_pool_t *p)
{
    const char *forced = ocspstaple_force_url(s);
    apr_array_header_t *urls;

    if (!forced) {
        return ocsp_cert_urls(cert);
    }
    urls = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(urls, const char *) = forced;
    return urls;
}

static void log_unusable_urls(server_rec *s, const ocspstaple_entry *e)
{
    const apr_array_header_t *bad = ocsp_cert_unusable_urls(e->cert);
    int i;

    for (i = 0; !ocspstaple_force_url(s) && i < bad->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0015: %s: "
                     "ignoring the certificate's OCSP URL '%s': not an "
                     "http:// or https:// URL with a host", e->label,
                     APR_ARRAY_IDX(bad, i, const char *));
    }
}

static apr_status_t entry_make(ocspstaple_entry **pe, server_rec *s,
                               const char *id, const char *pem,
                               ocsp_issuers *issuers, apr_pool_t *pconf)
{
    ocspstaple_entry *e = apr_pcalloc(pconf, sizeof(*e));
    const char *why;
    apr_status_t rv;

    *pe = NULL;
    rv = ocsp_cert_parse_shared(&e->cert, pem, strlen(pem), issuers, &why,
                                pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "OCSPSTAPLE0010: server %s:"
                     " cannot read the certificate mod_ssl handed over (%s); "
                     "not stapling it", s->server_hostname, why);
        return rv;
    }
    memcpy(e->id, id, OCSPSTAPLE_ID_LEN);
    e->label = entry_label(e->cert, e->id, pconf);
    e->must_staple = ocsp_cert_must_staple(e->cert);
    e->files = ocspstaple_files(s);
    e->urls = responder_urls(s, e->cert, pconf);
    e->heap_pos = -1;
    log_unusable_urls(s, e);
    /* Which OCSPStaplingFile serves it is found out by the start-up helper:
     * reading a response is never the root parent's business. */
    if (e->urls->nelts == 0 && !(e->files && e->files->nelts)) {
        ap_log_error(APLOG_MARK, e->must_staple ? APLOG_CRIT : APLOG_INFO, 0,
                     s, "OCSPSTAPLE0001: %s: no OCSP responder URL in the "
                     "certificate and no OCSPStaplingForceURL or "
                     "OCSPStaplingFile for server %s; not stapling%s",
                     e->label, s->server_hostname, e->must_staple
                     ? " although the certificate is Must-Staple: clients "
                       "will refuse this site" : "");
        return APR_ENOENT;
    }
    e->s = s;
    e->vhosts = apr_array_make(pconf, 1, sizeof(const char *));
    APR_ARRAY_PUSH(e->vhosts, const char *) = s->server_hostname;
    rv = apr_thread_mutex_create(&e->lock, APR_THREAD_MUTEX_DEFAULT, pconf);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(pconf, e, entry_cleanup, apr_pool_cleanup_null);
    *pe = e;
    return APR_SUCCESS;
}

apr_status_t ocspstaple_registry_add(ocspstaple_registry *reg, server_rec *s,
                                     const char *id, apr_size_t id_len,
                                     const char *pem, apr_pool_t *pconf)
{
    ocspstaple_entry *e;
    apr_status_t rv;

    if (id_len != OCSPSTAPLE_ID_LEN) {
        return APR_EINVAL;
    }
    e = apr_hash_get(reg->by_id, id, id_len);
    if (e) {
        /* One certificate in several virtual hosts: one entry, one fetch. */
        APR_ARRAY_PUSH(e->vhosts, const char *) = s->server_hostname;
        return APR_SUCCESS;
    }
    if ((rv = entry_make(&e, s, id, pem, reg->issuers, pconf)) != APR_SUCCESS) {
        return rv;
    }
    e->origin = reg->origin;
    e->index = reg->entries->nelts;
    apr_hash_set(reg->by_id, e->id, OCSPSTAPLE_ID_LEN, e);
    APR_ARRAY_PUSH(reg->entries, ocspstaple_entry *) = e;
    return APR_SUCCESS;
}

ocspstaple_entry *ocspstaple_registry_find(const ocspstaple_registry *reg,
                                           const char *id, apr_size_t id_len)
{
    return id_len == OCSPSTAPLE_ID_LEN ? apr_hash_get(reg->by_id, id, id_len)
                                       : NULL;
}

const apr_array_header_t *ocspstaple_registry_entries(
    const ocspstaple_registry *reg)
{
    return reg->entries;
}


const char *ocspstaple_entry_vhosts(const ocspstaple_entry *e, apr_pool_t *p)
{
    apr_array_header_t *parts = apr_array_make(p, 2 * e->vhosts->nelts,
                                               sizeof(const char *));
    int i;

    for (i = 0; i < e->vhosts->nelts; i++) {
        if (i) {
            APR_ARRAY_PUSH(parts, const char *) = ", ";
        }
        APR_ARRAY_PUSH(parts, const char *) =
            APR_ARRAY_IDX(e->vhosts, i, const char *);
    }
    return apr_array_pstrcat(p, parts, '\0');
}

apr_interval_time_t ocspstaple_registry_max_timeout(
    const ocspstaple_registry *reg)
{
    apr_interval_time_t longest = 0;
    int i;

    for (i = 0; i < reg->entries->nelts; i++) {
        apr_interval_time_t t = ocspstaple_timeout(
            APR_ARRAY_IDX(reg->entries, i, ocspstaple_entry *)->s);

        longest = t > longest ? t : longest;
    }
    return longest;
}
