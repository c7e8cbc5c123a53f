/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_FLEET_H
#define OCSPSTAPLE_FLEET_H

/* Records read from a cache that other servers write too (OCSPStaplingCache
 * memcache, redis, dbm): nothing in them is trusted. The DER is verified
 * again and the verdict taken from that verification; times and plans are
 * bounded like our own. Only the refresh reads them, never a handshake. */

#include "ocspstaple_shared.h"

/* Reads e's record from cache. Returns 1 and fills *rec (from p) when it
 * verifies and is newer than this process's copy; 0 otherwise (a bad record
 * is logged once per certificate and process). */
int ocspstaple_fleet_read(ocspstaple_entry *e, stapling_cache *cache,
                          ocspstaple_shared *sh, stapling_record *rec,
                          apr_pool_t *p);

#endif /* OCSPSTAPLE_FLEET_H */
