/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_SHARED_H
#define OCSPSTAPLE_SHARED_H

/*
 * One shared-memory segment per configuration generation, created by the
 * root parent, written by the processes with the server user's privileges:
 *  - per certificate (a slot): counters for the status page, alert bits so
 *    that each alert is logged by one process, the version of its record in
 *    the local cache, and which OCSPStaplingFile serves it;
 *  - per server: alert bits (cache trouble, store unusable) and a journal of
 *    the certificates whose record changed, so that each process takes new
 *    records in proportion to what changed, not to how many certificates
 *    there are.
 * Journal writers hold the fetch mutex (one writer at a time); readers take
 * no lock and fall back to comparing every slot's version when they fell
 * more than a journal's length behind.
 */

#include <apr_shm.h>

#include "ocspstaple_registry.h"

typedef enum {
    OCSPSTAPLE_FETCHES = 0,
    OCSPSTAPLE_FAILURES = 1,
    OCSPSTAPLE_STAPLES = 2,
    OCSPSTAPLE_COUNTERS = 3
} ocspstaple_counter;

typedef struct ocspstaple_slot {
    apr_uint32_t counters[OCSPSTAPLE_COUNTERS];
    apr_uint32_t alerts;        /* OCSPSTAPLE_ALERT_* bits of the certificate */
    apr_uint32_t version;       /* bumped when its local-cache record changes */
    apr_uint32_t file;          /* 1 + index in entry->files, 0: none */
} ocspstaple_slot;

/* Alert bits of a certificate. */
#define OCSPSTAPLE_ALERT_MUST_STAPLE   1u
#define OCSPSTAPLE_ALERT_FILE_EXPIRING 2u
#define OCSPSTAPLE_ALERT_FILE_EXPIRED  4u
/* (0x0100-0x1000: complaints about fleet records, ocspstaple_fleet.c) */
/* Alert bits of the server. */
#define OCSPSTAPLE_SERVER_CACHE_TROUBLE 1u
#define OCSPSTAPLE_SERVER_STORE_OFF     2u

typedef struct ocspstaple_shared ocspstaple_shared;

/* post_config (root): one slot per registry entry, all zero; entry->slot set.
 * Freed with pconf. */
apr_status_t ocspstaple_shared_make(ocspstaple_shared **pshared,
                                    const ocspstaple_registry *reg,
                                    apr_pool_t *pconf);

void ocspstaple_count(ocspstaple_entry *e, ocspstaple_counter which);
apr_uint32_t ocspstaple_counter_value(const ocspstaple_entry *e,
                                      ocspstaple_counter which);

/* Sets or clears bit in *bits; says whether this call changed it, so that
 * exactly one process logs each change. */
enum { OCSPSTAPLE_ALERT_UNCHANGED, OCSPSTAPLE_ALERT_RAISED,
       OCSPSTAPLE_ALERT_CLEARED };
int ocspstaple_alert_flip(apr_uint32_t *bits, apr_uint32_t bit, int condition);
apr_uint32_t *ocspstaple_server_bits(ocspstaple_shared *sh);
int ocspstaple_server_bit(ocspstaple_shared *sh, apr_uint32_t bit);

/* A record of e was put into the local cache: bump its version, note it in
 * the journal. The caller holds the fetch mutex. */
void ocspstaple_shared_changed(ocspstaple_shared *sh, ocspstaple_entry *e);

/* Calls fn for every entry whose version moved since *pseen (this process's
 * journal position, 0 at first); advances *pseen. */
typedef void ocspstaple_changed_fn(ocspstaple_entry *e, apr_uint32_t version,
                                   void *baton);
void ocspstaple_shared_changes(ocspstaple_shared *sh,
                               const ocspstaple_registry *reg,
                               apr_uint32_t *pseen,
                               ocspstaple_changed_fn *fn, void *baton);

/* Logs once when the fleet cache starts failing (rv from a get, or a put
 * when was_put), and once when it works again. */
void ocspstaple_cache_health(ocspstaple_shared *sh, server_rec *s,
                             stapling_cache *cache, apr_status_t rv,
                             int was_put, apr_pool_t *p);

#endif /* OCSPSTAPLE_SHARED_H */
