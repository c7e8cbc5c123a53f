/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Memory shared by the processes of one configuration generation (see
 * ocspstaple_shared.h): slots, server alert bits and the change journal.
 */

#include <string.h>

#include <apr_atomic.h>
#include <httpd.h>
#include <http_log.h>

#include "ocspstaple_shared.h"

APLOG_USE_MODULE(ocspstaple);

/* Changes remembered. A process that falls further behind (it was busy
 * fetching for minutes while thousands of records changed) compares every
 * slot's version once instead. */
#define JOURNAL_SIZE 4096

typedef struct {
    apr_uint32_t server_bits;
    apr_uint32_t head;                  /* changes written so far */
    apr_uint32_t journal[JOURNAL_SIZE]; /* entry index of change n % SIZE */
} shared_header;

struct ocspstaple_shared {
    shared_header   *hdr;
    ocspstaple_slot *slots;
    int              n;
};

apr_status_t ocspstaple_shared_make(ocspstaple_shared **pshared,
                                    const ocspstaple_registry *reg,
                                    apr_pool_t *pconf)
{
    const apr_array_header_t *entries = ocspstaple_registry_entries(reg);
    ocspstaple_shared *sh = apr_pcalloc(pconf, sizeof(*sh));
    apr_size_t size = sizeof(shared_header)
                      + sizeof(ocspstaple_slot) * (apr_size_t)entries->nelts;
    apr_shm_t *shm;
    apr_status_t rv;
    int i;

    *pshared = NULL;
    /* Anonymous: inherited by every process forked from here, reachable by
     * nobody else. */
    if ((rv = apr_shm_create(&shm, size, NULL, pconf)) != APR_SUCCESS) {
        return rv;
    }
    sh->hdr = apr_shm_baseaddr_get(shm);
    memset(sh->hdr, 0, size);
    sh->slots = (ocspstaple_slot *)(sh->hdr + 1);
    sh->n = entries->nelts;
    for (i = 0; i < entries->nelts; i++) {
        APR_ARRAY_IDX(entries, i, ocspstaple_entry *)->slot = &sh->slots[i];
    }
    *pshared = sh;
    return APR_SUCCESS;
}

void ocspstaple_count(ocspstaple_entry *e, ocspstaple_counter which)
{
    if (e->slot) {
        apr_atomic_inc32(&e->slot->counters[which]);
    }
}

apr_uint32_t ocspstaple_counter_value(const ocspstaple_entry *e,
                                      ocspstaple_counter which)
{
    return e->slot ? apr_atomic_read32(&e->slot->counters[which]) : 0;
}

int ocspstaple_alert_flip(apr_uint32_t *bits, apr_uint32_t bit, int condition)
{
    apr_uint32_t old, new;

    do {
        old = apr_atomic_read32(bits);
        new = condition ? old | bit : old & ~bit;
        if (new == old) {
            return OCSPSTAPLE_ALERT_UNCHANGED;
        }
    } while (apr_atomic_cas32(bits, new, old) != old);
    return condition ? OCSPSTAPLE_ALERT_RAISED : OCSPSTAPLE_ALERT_CLEARED;
}

apr_uint32_t *ocspstaple_server_bits(ocspstaple_shared *sh)
{
    return &sh->hdr->server_bits;
}

int ocspstaple_server_bit(ocspstaple_shared *sh, apr_uint32_t bit)
{
    return sh && (apr_atomic_read32(&sh->hdr->server_bits) & bit) != 0;
}

void ocspstaple_shared_changed(ocspstaple_shared *sh, ocspstaple_entry *e)
{
    apr_uint32_t head = apr_atomic_read32(&sh->hdr->head);

    apr_atomic_inc32(&e->slot->version);
    apr_atomic_set32(&sh->hdr->journal[head % JOURNAL_SIZE],
                     (apr_uint32_t)e->index);
    /* Readers that see the new head must see the journal entry. */
    __sync_synchronize();
    apr_atomic_set32(&sh->hdr->head, head + 1);
}

static void take_if_changed(ocspstaple_entry *e, ocspstaple_changed_fn *fn,
                            void *baton)
{
    apr_uint32_t version = apr_atomic_read32(&e->slot->version);

    if (version != e->seen_version) {
        fn(e, version, baton);
    }
}

static void scan_all(const apr_array_header_t *entries,
                     ocspstaple_changed_fn *fn, void *baton)
{
    int i;

    for (i = 0; i < entries->nelts; i++) {
        take_if_changed(APR_ARRAY_IDX(entries, i, ocspstaple_entry *), fn,
                        baton);
    }
}

/* Whether change n may have been overwritten: the writer fills slot
 * n % SIZE for change n + SIZE before it moves head past it. */
static int lapped(shared_header *hdr, apr_uint32_t n)
{
    /* The slot was read before head is read again. */
    __sync_synchronize();
    return apr_atomic_read32(&hdr->head) - n
           >= JOURNAL_SIZE;
}

void ocspstaple_shared_changes(ocspstaple_shared *sh,
                               const ocspstaple_registry *reg,
                               apr_uint32_t *pseen,
                               ocspstaple_changed_fn *fn, void *baton)
{
    const apr_array_header_t *entries = ocspstaple_registry_entries(reg);
    apr_uint32_t head = apr_atomic_read32(&sh->hdr->head), n;

    for (n = *pseen; n != head; n++) {
        apr_uint32_t index = apr_atomic_read32(
            &sh->hdr->journal[n % JOURNAL_SIZE]);

        if (lapped(sh->hdr, n)) {
            scan_all(entries, fn, baton);
            break;
        }
        if (index < (apr_uint32_t)entries->nelts) {
            take_if_changed(APR_ARRAY_IDX(entries, index, ocspstaple_entry *),
                            fn, baton);
        }
    }
    *pseen = head;
}

void ocspstaple_cache_health(ocspstaple_shared *sh, server_rec *s,
                             stapling_cache *cache, apr_status_t rv,
                             int was_put, apr_pool_t *p)
{
    int ok = rv == APR_SUCCESS || rv == STAPLING_CACHE_ECORRUPT;

    /* A get that finds nothing says nothing: providers also answer
     * APR_NOTFOUND while their server is down. */
    if (!sh || (!ok && !was_put && rv == APR_NOTFOUND)) {
        return;
    }
    switch (ocspstaple_alert_flip(&sh->hdr->server_bits,
                                  OCSPSTAPLE_SERVER_CACHE_TROUBLE, !ok)) {
    case OCSPSTAPLE_ALERT_RAISED:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OCSPSTAPLE0024: the %s "
                     "cache fails (%s): this server staples what its own "
                     "processes fetch until it is back",
                     stapling_cache_provider_name(cache),
                     ocspstaple_strerror(rv, p));
        break;
    case OCSPSTAPLE_ALERT_CLEARED:
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0025: the %s "
                     "cache works again", stapling_cache_provider_name(cache));
        break;
    }
}
