/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_RETAIN_H
#define OCSPSTAPLE_RETAIN_H

/* Records kept across a restart. A new configuration generation starts
 * with empty shared memory; so that a reload staples at once, also with
 * OCSPStaplingStore off, the root parent copies every certificate's record
 * bytes out of the old shared memory as it goes away (never decoding them),
 * and the next generation's start-up helper takes them over: written by
 * this server's processes after they verified, they are not verified
 * again. */

#include "ocspstaple_state.h"

/* post_config (root): when pconf goes (restart or stop), copy the records
 * of st's certificates out of its local cache. */
void ocspstaple_retain_at_restart(ocspstaple_state *st, server_rec *s,
                                  apr_pool_t *pconf);

/* In the start-up helper: the record kept for e, if there is one that can
 * still be stapled (decoded into rec, from p). */
int ocspstaple_retained_take(const ocspstaple_entry *e, stapling_record *rec,
                             apr_pool_t *p);

/* In the parent, once the helper is forked: frees what was kept. */
void ocspstaple_retained_release(void);

#endif /* OCSPSTAPLE_RETAIN_H */
