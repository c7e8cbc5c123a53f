/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef REFRESH_POLICY_H
#define REFRESH_POLICY_H

/*
 * When to fetch a certificate's OCSP response again: after a good fetch,
 * once the renew window opens (with jitter so a fleet does not fetch in
 * lockstep); after a failure, with exponential backoff (with jitter too).
 * Pure functions of their arguments (APR only), unit-tested on their own.
 */

#include <apr_time.h>

#include "ocsp_fetch.h"

/* Renew window: "50%" renews once half of the validity has passed; a
 * duration renews that long before nextUpdate. */
typedef struct {
    int                 percent;   /* 1..99, or 0 when `before` is used */
    apr_interval_time_t before;
} refresh_window;

#define REFRESH_DEFAULT_PERCENT    50
/* Jitter: renew up to this share of the time left earlier than planned. */
#define REFRESH_JITTER_PERCENT     10
/* Never fetch the same certificate again sooner than this after a success. */
#define REFRESH_MIN_INTERVAL       apr_time_from_sec(5)
/* Backoff after failures: doubles from the minimum up to the maximum... */
#define REFRESH_BACKOFF_MIN        apr_time_from_sec(5)
#define REFRESH_BACKOFF_MAX        apr_time_from_sec(600)
/* ...but while nothing valid can be stapled, retry at least this often. */
#define REFRESH_BACKOFF_MAX_COLD   apr_time_from_sec(60)
/* Backoff jitter: up to this share longer. */
#define REFRESH_BACKOFF_JITTER_PERCENT 25

/*
 * After a good fetch at fetched_at of a response valid [thisUpdate, expires):
 *   lifetime = expires - thisUpdate
 *   planned  = thisUpdate + percent% * lifetime      (percent form)
 *            | expires - before                      (duration form)
 *   renew_at = planned - rnd * JITTER% * (expires - planned)
 *   clamped to [fetched_at + MIN_INTERVAL, expires)
 * rnd is uniform in [0, 1).
 */
apr_time_t refresh_renew_at(const ocsp_verdict *v, apr_time_t fetched_at,
                            const refresh_window *w, double rnd);

/*
 * After the n-th failure in a row (n >= 1) at now:
 *   delay = min(MAX, MIN * 2^(n-1)) * (1 + rnd * BACKOFF_JITTER%)
 * with MAX_COLD instead of MAX while nothing valid can be stapled.
 */
apr_time_t refresh_retry_at(apr_time_t now, int failures, int have_valid,
                            double rnd);

/*
 * A fleet sharing a cache: a server that takes a response another server
 * fetched plans its own renewal a little after that server's plan,
 *   follow_at = next_attempt + FLEET_DELAY
 *               + rnd * FLEET_JITTER% * (expires - next_attempt)
 * so that the fetching server renews first and the others find its new
 * response in the cache instead of asking the responder too.
 */
#define REFRESH_FLEET_DELAY          apr_time_from_sec(2)
#define REFRESH_FLEET_JITTER_PERCENT 10

apr_time_t refresh_follow_at(apr_time_t next_attempt, apr_time_t expires,
                             double rnd);

/* A uniform random number in [0, 1) for the jitter. */
double refresh_random(void);

#endif /* REFRESH_POLICY_H */
