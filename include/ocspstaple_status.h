/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_STATUS_H
#define OCSPSTAPLE_STATUS_H

/* "Is every certificate stapled, until when, and why not?", from the
 * serving process's own copies: no cache read, no lock held across I/O. */

#include "ocspstaple_state.h"

/* The ocspstaple-status handler: HTML, or JSON with ?format=json. */
int ocspstaple_status_handler(ocspstaple_state *st, request_rec *r);
/* A summary on mod_status's server-status page. */
int ocspstaple_status_summary(ocspstaple_state *st, request_rec *r,
                              int flags);

#endif /* OCSPSTAPLE_STATUS_H */
