/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_STATUS_H
#define OCSPSTAPLE_STATUS_H

/* "Is every certificate stapled, until when, and why not?", from the
 * serving process's own copies: no cache read, no lock held across I/O. */

#include "ocspstaple_state.h"

/* The ocspstaple-status handler: HTML, JSON with ?format=json, Prometheus
 * metrics with ?format=prometheus. */
int ocspstaple_status_handler(ocspstaple_state *st, request_rec *r);
/* A summary on mod_status's server-status page. */
int ocspstaple_status_summary(ocspstaple_state *st, request_rec *r,
                              int flags);

/* One certificate as the pages show it: its entry and this process's copy
 * of its record, without the DER (rec.der is NULL, der_len kept). */
typedef struct {
    const ocspstaple_entry *e;
    stapling_record rec;
    int stapling;                    /* a valid response is stapled at now */
} ocspstaple_status_row;

/* ?format=prometheus (ocspstaple_metrics.c): rows of ocspstaple_status_row,
 * read at now, in the text exposition format 0.0.4. */
void ocspstaple_metrics_page(request_rec *r, const apr_array_header_t *rows,
                             apr_time_t now);

#endif /* OCSPSTAPLE_STATUS_H */
