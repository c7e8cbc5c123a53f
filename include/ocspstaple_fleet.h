/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_FLEET_H
#define OCSPSTAPLE_FLEET_H

/* Records read from a cache that other servers write too (OCSPStaplingCache
 * memcache, redis, dbm): nothing in them is trusted. The DER is verified
 * again and the verdict taken from that verification; times and plans are
 * bounded like our own. Only the refresh reads them, never a handshake. */

#include "ocspstaple_state.h"

/* Reads e's record from cache. Returns 1 and fills *out (from p) with what
 * to publish: its response when it verifies and is newer than ours
 * (ocspstaple_replaces), else our own copy with its schedule when it tells
 * of a later attempt. 0: nothing to take (a bad, older or error record is
 * logged once per certificate and server). A shared cache can delay a
 * renewal; it can never make a server staple something older, unverified
 * or unsigned. */
int ocspstaple_fleet_read(ocspstaple_entry *e, stapling_cache *cache,
                          ocspstaple_shared *sh, stapling_record *out,
                          apr_pool_t *p);

#endif /* OCSPSTAPLE_FLEET_H */
