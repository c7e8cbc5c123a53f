/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_HELPER_H
#define OCSPSTAPLE_HELPER_H

/* The start-up helper, in the process ocspstaple_startup forks: drops to
 * User/Group (and checks it did), loads and fetches, reporting each phase
 * on fd, and ends with _exit: it never returns. */

#include "ocspstaple_state.h"

/* Written to the pipe as each phase ends. */
#define OCSPSTAPLE_PHASE_LOADED  'L'  /* files, store, fleet cache */
#define OCSPSTAPLE_PHASE_FETCHED 'F'  /* the fetch round */

void ocspstaple_helper_main(ocspstaple_state *st, server_rec *s, int fd,
                            apr_pool_t *pconf);

#endif /* OCSPSTAPLE_HELPER_H */
