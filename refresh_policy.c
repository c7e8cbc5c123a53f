/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The refresh policy, as the formulas in refresh_policy.h say.
 */

#include <apr_general.h>

#include "refresh_policy.h"

apr_time_t refresh_renew_at(const ocsp_verdict *v, apr_time_t fetched_at,
                            const refresh_window *w, double rnd)
{
    apr_time_t start = v->this_update ? v->this_update : fetched_at;
    apr_interval_time_t lifetime = v->expires - start;
    apr_time_t planned, earliest = fetched_at + REFRESH_MIN_INTERVAL;

    if (w->percent > 0) {
        planned = start + lifetime / 100 * w->percent;
    }
    else {
        planned = w->before < lifetime ? v->expires - w->before : start;
    }
    planned -= (apr_interval_time_t)(rnd * REFRESH_JITTER_PERCENT / 100.0
                                     * (double)(v->expires - planned));
    if (planned < earliest) {
        planned = earliest;
    }
    return planned < v->expires ? planned : v->expires;
}

apr_time_t refresh_retry_at(apr_time_t now, int failures, int have_valid,
                            double rnd)
{
    apr_interval_time_t max = have_valid ? REFRESH_BACKOFF_MAX
                                         : REFRESH_BACKOFF_MAX_COLD;
    apr_interval_time_t delay = REFRESH_BACKOFF_MIN;
    int i;

    for (i = 1; i < failures && delay < max; i++) {
        delay *= 2;
    }
    if (delay > max) {
        delay = max;
    }
    return now + delay
        + (apr_interval_time_t)(rnd * REFRESH_BACKOFF_JITTER_PERCENT / 100.0
                                * (double)delay);
}

apr_time_t refresh_follow_at(apr_time_t next_attempt, apr_time_t expires,
                             double rnd)
{
    apr_interval_time_t left = expires > next_attempt ? expires - next_attempt
                                                      : 0;

    return next_attempt + REFRESH_FLEET_DELAY
        + (apr_interval_time_t)(rnd * REFRESH_FLEET_JITTER_PERCENT / 100.0
                                * (double)left);
}

double refresh_random(void)
{
    apr_uint32_t r = 0;

    if (apr_generate_random_bytes((unsigned char *)&r, sizeof(r))
        != APR_SUCCESS) {
        r = (apr_uint32_t)apr_time_now();
    }
    return (double)r / 4294967296.0;
}
