/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_SCHEDULE_H
#define OCSPSTAPLE_SCHEDULE_H

/* When each certificate needs this process's attention next (a fetch is
 * planned, its response expires, its OCSPStaplingFile is about to): a
 * binary min-heap on entry->wake_at, so that a tick costs what is due, not
 * what is configured. One per process, used by its refresh thread only. */

#include "ocspstaple_registry.h"

typedef struct ocspstaple_schedule ocspstaple_schedule;

/* Never: an entry with nothing to wait for. */
#define OCSPSTAPLE_NEVER APR_INT64_MAX

ocspstaple_schedule *ocspstaple_schedule_make(int capacity, apr_pool_t *p);
/* Puts e at wake_at, wherever it was. */
void ocspstaple_schedule_set(ocspstaple_schedule *q, ocspstaple_entry *e,
                             apr_time_t wake_at);
/* Takes out the earliest entry if it is due at now, else NULL. */
ocspstaple_entry *ocspstaple_schedule_pop_due(ocspstaple_schedule *q,
                                              apr_time_t now);
int ocspstaple_schedule_size(const ocspstaple_schedule *q);

#endif /* OCSPSTAPLE_SCHEDULE_H */
