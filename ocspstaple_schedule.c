/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * A binary min-heap of entries on wake_at (see ocspstaple_schedule.h).
 * Each entry knows its position (heap_pos), so moving one is O(log n).
 */

#include "ocspstaple_schedule.h"

struct ocspstaple_schedule {
    ocspstaple_entry **heap;
    int n, capacity;
};

ocspstaple_schedule *ocspstaple_schedule_make(int capacity, apr_pool_t *p)
{
    ocspstaple_schedule *q = apr_pcalloc(p, sizeof(*q));

    q->capacity = capacity > 0 ? capacity : 1;
    q->heap = apr_pcalloc(p, sizeof(*q->heap) * (apr_size_t)q->capacity);
    return q;
}

static void place(ocspstaple_schedule *q, int pos, ocspstaple_entry *e)
{
    q->heap[pos] = e;
    e->heap_pos = pos;
}

static void sift_up(ocspstaple_schedule *q, int pos)
{
    ocspstaple_entry *e = q->heap[pos];

    while (pos > 0 && q->heap[(pos - 1) / 2]->wake_at > e->wake_at) {
        place(q, pos, q->heap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    place(q, pos, e);
}

static void sift_down(ocspstaple_schedule *q, int pos)
{
    ocspstaple_entry *e = q->heap[pos];

    for (;;) {
        int child = 2 * pos + 1;

        if (child >= q->n) {
            break;
        }
        if (child + 1 < q->n
            && q->heap[child + 1]->wake_at < q->heap[child]->wake_at) {
            child++;
        }
        if (q->heap[child]->wake_at >= e->wake_at) {
            break;
        }
        place(q, pos, q->heap[child]);
        pos = child;
    }
    place(q, pos, e);
}

void ocspstaple_schedule_set(ocspstaple_schedule *q, ocspstaple_entry *e,
                             apr_time_t wake_at)
{
    if (e->heap_pos < 0) {
        if (q->n == q->capacity) {
            return;                   /* sized for every entry: cannot happen */
        }
        e->wake_at = wake_at;
        place(q, q->n++, e);
        sift_up(q, e->heap_pos);
        return;
    }
    e->wake_at = wake_at;
    sift_up(q, e->heap_pos);
    sift_down(q, e->heap_pos);
}

ocspstaple_entry *ocspstaple_schedule_pop_due(ocspstaple_schedule *q,
                                              apr_time_t now)
{
    ocspstaple_entry *top;

    if (q->n == 0 || q->heap[0]->wake_at > now) {
        return NULL;
    }
    top = q->heap[0];
    top->heap_pos = -1;
    if (--q->n > 0) {
        q->heap[0] = q->heap[q->n];
        q->heap[0]->heap_pos = 0;
        sift_down(q, 0);
    }
    return top;
}

int ocspstaple_schedule_size(const ocspstaple_schedule *q)
{
    return q->n;
}
