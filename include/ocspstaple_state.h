/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_STATE_H
#define OCSPSTAPLE_STATE_H

/* One configuration generation, rebuilt by the root parent on each
 * (graceful) restart and inherited by the processes it forks; and the one
 * way a record gets out of a process: publish. */

#include <apr_global_mutex.h>

#include "ocspstaple_schedule.h"
#include "ocspstaple_shared.h"

typedef struct {
    ocspstaple_registry *registry;
    /* This server's records, in its own shared memory (shmcb): written by
     * its processes after they verified what they write, so read without
     * verifying again. */
    stapling_cache      *local;
    /* OCSPStaplingCache when other servers (or files) are behind it:
     * memcache, redis, dbm. Every read is verified. NULL: none. */
    stapling_cache      *fleet;
    const char          *store_dir;     /* NULL: OCSPStaplingStore off */
    apr_global_mutex_t  *fetch_mutex;   /* held by whoever fetches or
                                           publishes */
    ocspstaple_shared   *shared;
    /* This process's (children only): */
    ocspstaple_schedule *schedule;
    apr_uint32_t         journal_seen;
} ocspstaple_state;

/* The mutex type, configurable with "Mutex ocspstaple-fetch ..." */
#define OCSPSTAPLE_FETCH_MUTEX "ocspstaple-fetch"

/* A responder's own error answer is kept (for OCSPStaplingReturnResponderErrors)
 * this long, as mod_ssl's SSLStaplingErrorCacheTimeout does. */
#define OCSPSTAPLE_ERROR_RESPONSE_LIFETIME apr_time_from_sec(600)
/* Shared-cache room per certificate. A record is about 100 bytes plus the
 * response (500 B CA-signed, 1.4 KB with a delegated signer's certificate)
 * plus its origin; shmcb adds the 20-byte id and a 24-byte index entry.
 * It spreads entries over its subcaches by id, unevenly, and sizes its
 * index from the hint of 2 KB per object (stapling_cache.c): 4 KB per
 * certificate gives each subcache index room for twice its average share
 * of certificates and data room for more than twice that many delegated
 * responses (16 KB did too, with four times the shared memory: 160 MB for
 * 10,000 certificates). The start-up helper says when the cache kept fewer
 * than all responses (OCSPSTAPLE0033). */
#define OCSPSTAPLE_CACHE_PER_CERT (4 * 1024)
/* Fetches running at once in one update round. */
#define OCSPSTAPLE_FETCH_PARALLEL 16

/* Publishes rec for every process of this server (local cache, journal),
 * for the fleet (fleet cache) and for this process (its copy, alerts, its
 * schedule). The caller holds the fetch mutex. to_fleet 0: rec came from
 * the fleet cache. */
void ocspstaple_publish(ocspstaple_state *st, ocspstaple_entry *e,
                        const stapling_record *rec, int to_fleet,
                        apr_pool_t *p);

/* Whether cand's response may replace cur's: stapling_record_order, ties
 * broken by producedAt. Only a verified, newer response wins. */
int ocspstaple_replaces(const stapling_record *cand,
                        const stapling_record *cur, apr_time_t now);

/* Takes e's record from the local cache into this process's copy (after
 * another process published it). version: slot version read before. */
void ocspstaple_take_local(ocspstaple_state *st, ocspstaple_entry *e,
                           apr_uint32_t version, apr_pool_t *p);

/* Fetches, verifies and publishes fresh responses for the entries
 * (ocspstaple_entry *) concurrently; one log line per entry saying how it
 * went; plans the next fetch. Never drops a still valid response for a
 * failure. The caller holds the fetch mutex. Returns how many succeeded. */
int ocspstaple_update(ocspstaple_state *st, const apr_array_header_t *entries,
                      apr_pool_t *ptemp);

/* Reads and verifies a DER response file for cert (OCSPStaplingFile with
 * flags 0, the store with OCSP_FILE_NOFOLLOW): a record with source file.
 * *perr says why not. */
apr_status_t ocspstaple_load_file(stapling_record *rec, const ocsp_cert *cert,
                                  const char *path, int flags,
                                  const char **perr, apr_pool_t *p);

/* When e needs attention next in this process (see ocspstaple_schedule.h). */
apr_time_t ocspstaple_wake_at(ocspstaple_entry *e, apr_time_t now);

/* Logs, once per episode across processes, a Must-Staple certificate without
 * a valid response, and an OCSPStaplingFile about to expire or expired. */
void ocspstaple_alerts(ocspstaple_entry *e, apr_time_t now, apr_pool_t *p);

#endif /* OCSPSTAPLE_STATE_H */
