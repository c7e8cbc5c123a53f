/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Unit tests (TAP) of the per-process schedule (a heap on wake_at): what
 * makes each tick cost what is due rather than what is configured. Built
 * against httpd's headers only (ocspstaple_schedule.c needs no httpd code).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "ocspstaple_schedule.h"

#define N 1000

static int n_tests, n_failed;

static void ok(int cond, const char *what)
{
    n_tests++;
    if (!cond) {
        n_failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, what);
}

/* Pops everything due at now; checks the order; returns how many. */
static int pop_all(ocspstaple_schedule *q, apr_time_t now, int *in_order)
{
    apr_time_t last = -1;
    ocspstaple_entry *e;
    int n = 0;

    *in_order = 1;
    while ((e = ocspstaple_schedule_pop_due(q, now))) {
        *in_order &= e->wake_at >= last && e->wake_at <= now
                     && e->heap_pos == -1;
        last = e->wake_at;
        n++;
    }
    return n;
}

int main(void)
{
    static ocspstaple_entry entries[N];
    ocspstaple_schedule *q;
    apr_pool_t *p;
    int i, in_order, due = 0, earlier = 0, later = 0;

    apr_initialize();
    apr_pool_create(&p, NULL);
    srand(42);
    q = ocspstaple_schedule_make(N, p);
    for (i = 0; i < N; i++) {
        entries[i].heap_pos = -1;
        ocspstaple_schedule_set(q, &entries[i], rand() % 10000);
    }
    ok(ocspstaple_schedule_size(q) == N, "every entry is scheduled once");
    ok(ocspstaple_schedule_pop_due(q, -1) == NULL, "nothing is due before the earliest");
    for (i = 0; i < N; i++) {
        due += entries[i].wake_at <= 5000;
    }
    ok(pop_all(q, 5000, &in_order) == due && in_order,
       "pop_due returns exactly the due entries, earliest first");
    ok(ocspstaple_schedule_size(q) == N - due, "the others stay");

    /* Moving entries that are in the heap, earlier and later. */
    for (i = 0; i < N; i++) {
        if (entries[i].heap_pos >= 0) {
            ocspstaple_schedule_set(q, &entries[i],
                                    i % 2 ? 6000 + rand() % 100 : 20000);
            earlier += i % 2;
            later += !(i % 2);
        }
    }
    ok(ocspstaple_schedule_size(q) == N - due, "moving keeps one place each");
    ok(pop_all(q, 7000, &in_order) == earlier && in_order,
       "moved earlier: due in order; moved later: not yet");
    ok(pop_all(q, OCSPSTAPLE_NEVER - 1, &in_order) == later && in_order
       && ocspstaple_schedule_size(q) == 0, "the rest, in order, then empty");
    ocspstaple_schedule_set(q, &entries[0], OCSPSTAPLE_NEVER);
    ok(ocspstaple_schedule_pop_due(q, OCSPSTAPLE_NEVER - 1) == NULL,
       "an entry waiting for nothing is never due");
    apr_pool_destroy(p);
    apr_terminate();
    printf("1..%d\n", n_tests);
    return n_failed ? 1 : 0;
}
