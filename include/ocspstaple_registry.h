/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_REGISTRY_H
#define OCSPSTAPLE_REGISTRY_H

/* The certificates this server staples for, one entry per certificate id
 * however many virtual hosts serve it. Built by the root parent from what
 * mod_ssl primes (certificates only: no response is read there), inherited
 * by every process forked after. */

#include <apr_thread_mutex.h>

#include "ocspstaple_conf.h"
#include "ocsp_fetch.h"
#include "stapling_record.h"

struct ocspstaple_slot;                 /* ocspstaple_shared.h */

typedef struct {
    /* Fixed at startup. */
    unsigned char       id[OCSPSTAPLE_ID_LEN];
    int                 index;          /* in the registry: its shared slot */
    const char         *label;          /* for logs: cert "subject" serial .. id .. */
    ocsp_cert          *cert;
    const apr_array_header_t *urls;     /* OCSPStaplingForceURL, or the AIA's */
    const apr_array_header_t *files;    /* its vhost's OCSPStaplingFile paths */
    server_rec         *s;              /* first vhost: the settings used */
    apr_array_header_t *vhosts;         /* const char *: every vhost serving
                                           it (a wildcard may serve 10,000:
                                           appended, never copied again) */
    const char         *origin;         /* this server, see registry_origin */
    int                 must_staple;    /* TLS Feature status_request */
    struct ocspstaple_slot *slot;       /* shared with the other processes */

    /* This process's own state (ocspstaple_local.h): the handshake reads
     * local under lock; everything else is the refresh thread's. */
    apr_thread_mutex_t *lock;
    stapling_record     local;          /* der is malloc'd, owned here */
    const char         *static_file;    /* the OCSPStaplingFile serving it */
    apr_uint32_t        seen_version;   /* of slot->version, taken here */
    apr_time_t          wake_at;        /* ocspstaple_schedule.h */
    int                 heap_pos;       /* -1: not scheduled */
} ocspstaple_entry;

typedef struct ocspstaple_registry ocspstaple_registry;

ocspstaple_registry *ocspstaple_registry_make(apr_pool_t *pconf);
/* "host/pid of the parent": who fetched a record, in a shared cache. */
const char *ocspstaple_registry_origin(const ocspstaple_registry *reg);
/* From the prime hook: APR_SUCCESS when the certificate is ours to staple,
 * APR_ENOENT when it has neither a responder URL nor an OCSPStaplingFile
 * that could serve it (logged). */
apr_status_t ocspstaple_registry_add(ocspstaple_registry *reg, server_rec *s,
                                     const char *id, apr_size_t id_len,
                                     const char *pem, apr_pool_t *pconf);
ocspstaple_entry *ocspstaple_registry_find(const ocspstaple_registry *reg,
                                           const char *id, apr_size_t id_len);
/* ocspstaple_entry *, in the order mod_ssl offered them (index order). */
const apr_array_header_t *ocspstaple_registry_entries(
    const ocspstaple_registry *reg);
/* Its virtual hosts' names, ", "-separated (in time linear in their
 * number: a wildcard may serve thousands). */
const char *ocspstaple_entry_vhosts(const ocspstaple_entry *e, apr_pool_t *p);
/* Called in every child: its entries' copies are left to the process's
 * exit (its refresh thread may still use them while the pools go). */
void ocspstaple_registry_child_init(void);
/* The longest OCSPStaplingResponderTimeout among the entries. */
apr_interval_time_t ocspstaple_registry_max_timeout(
    const ocspstaple_registry *reg);

#endif /* OCSPSTAPLE_REGISTRY_H */
