/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The background refresh of every child (see ocspstaple_refresh.h). Each
 * tick:
 *  1. takes what other processes of this server published (the shared
 *     journal: work in proportion to what changed);
 *  2. pops from this process's schedule the certificates whose time has
 *     come (work in proportion to what is due) and checks their alerts;
 *  3. for those whose fetch is due, and only if no other process is
 *     fetching (try-lock: never waits), reads the fleet cache, then fetches
 *     what is still due and publishes it.
 * Children of an older generation, still draining connections after a
 * graceful restart, stop here: the new generation renews.
 */

#include <signal.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_optional.h>
#include <apr_signal.h>
#include <ap_mpm.h>
#include <httpd.h>
#include <http_log.h>
#include <http_main.h>
#include <mod_watchdog.h>
#include <mpm_common.h>
#include <scoreboard.h>

#include "ocspstaple_fleet.h"
#include "ocspstaple_local.h"
#include "ocspstaple_refresh.h"

APLOG_USE_MODULE(ocspstaple);

#define WATCHDOG_NAME     "_ocspstaple_"
#define WATCHDOG_INTERVAL apr_time_from_sec(1)
/* A due fetch that could not start (another process is fetching) is looked
 * at again this much later. */
#define BUSY_RETRY        apr_time_from_sec(1)

static void take_one(ocspstaple_entry *e, apr_uint32_t version, void *baton)
{
    void **b = baton;

    ocspstaple_take_local(b[0], e, version, b[1]);
}

/* What other processes published since this one last looked. */
void ocspstaple_take_changes(ocspstaple_state *st, apr_pool_t *p)
{
    void *baton[2] = { st, p };

    ocspstaple_shared_changes(st->shared, st->registry, &st->journal_seen,
                              take_one, baton);
}

static int fetch_due(const ocspstaple_entry *e, apr_time_t now)
{
    return !e->static_file && e->urls->nelts
           && e->local.next_attempt <= now;
}

/* Pops what is due; alerts for all of it; returns those to fetch (the
 * others are scheduled again). */
static apr_array_header_t *pop_due(ocspstaple_state *st, apr_time_t now,
                                   apr_pool_t *p)
{
    apr_array_header_t *due = apr_array_make(p, 4, sizeof(ocspstaple_entry *));
    ocspstaple_entry *e;

    while ((e = ocspstaple_schedule_pop_due(st->schedule, now))) {
        ocspstaple_alerts(e, now, p);
        if (fetch_due(e, now)) {
            APR_ARRAY_PUSH(due, ocspstaple_entry *) = e;
        }
        else {
            ocspstaple_schedule_set(st->schedule, e,
                                    ocspstaple_wake_at(e, now));
        }
    }
    return due;
}

/* Another server of the fleet may have renewed it: take that instead of
 * asking the responder too. Returns 1 when it did. */
static int from_fleet(ocspstaple_state *st, ocspstaple_entry *e, apr_pool_t *p)
{
    stapling_record rec;

    if (!st->fleet || !ocspstaple_fleet_read(e, st->fleet, st->shared, &rec,
                                             p)) {
        return 0;
    }
    ocspstaple_publish(st, e, &rec, 0, p);
    return !fetch_due(e, apr_time_now());
}

/* Under the fetch mutex: what is still due after the others' work. */
static void fetch_round(ocspstaple_state *st, apr_array_header_t *due,
                        apr_pool_t *p)
{
    apr_array_header_t *fetch = apr_array_make(p, due->nelts,
                                               sizeof(ocspstaple_entry *));
    apr_time_t now = apr_time_now();
    int i;

    ocspstaple_take_changes(st, p);
    for (i = 0; i < due->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(due, i, ocspstaple_entry *);
        apr_uint32_t version = apr_atomic_read32(&e->slot->version);

        /* A record this process could not take yet (evicted meanwhile):
         * try again, so that what it publishes builds on the newest. */
        if (version != e->seen_version) {
            ocspstaple_take_local(st, e, version, p);
        }
        if (fetch_due(e, now) && !from_fleet(st, e, p)) {
            APR_ARRAY_PUSH(fetch, ocspstaple_entry *) = e;
        }
    }
    if (fetch->nelts) {
        ocspstaple_update(st, fetch, p);
    }
}

static void reschedule(ocspstaple_state *st, apr_array_header_t *due,
                       apr_time_t at_least)
{
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < due->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(due, i, ocspstaple_entry *);
        apr_time_t wake = ocspstaple_wake_at(e, now);

        if (e->heap_pos < 0 || e->wake_at < at_least) {
            ocspstaple_schedule_set(st->schedule, e,
                                    wake > at_least ? wake : at_least);
        }
    }
}

/* After a graceful restart the parent runs a newer generation: this child
 * only drains its connections, with an outdated configuration. */
static int generation_is_current(void)
{
    int mine = 0;

    return !ap_scoreboard_image
        || ap_mpm_query(AP_MPMQ_GENERATION, &mine) != APR_SUCCESS
        || ap_scoreboard_image->global->running_generation == mine;
}

/* Another process fetching is the normal case (try again in a second);
 * anything else is said once. */
static void busy(ocspstaple_state *st, apr_array_header_t *due,
                 apr_status_t rv)
{
    static int said;

    if (!APR_STATUS_IS_EBUSY(rv) && !said) {
        said = 1;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "OCSPSTAPLE0044: the background refresh cannot take "
                     "the %s mutex (%s); it retries every second",
                     OCSPSTAPLE_FETCH_MUTEX,
                     ocspstaple_strerror(rv, ap_server_conf->process->pool));
    }
    reschedule(st, due, apr_time_now() + BUSY_RETRY);
}

static void tick(ocspstaple_state *st, apr_pool_t *p)
{
    apr_array_header_t *due;
    apr_status_t rv;

    ocspstaple_take_changes(st, p);
    due = pop_due(st, apr_time_now(), p);
    if (due->nelts == 0) {
        return;
    }
    if ((rv = apr_global_mutex_trylock(st->fetch_mutex)) != APR_SUCCESS) {
        busy(st, due, rv);
        return;
    }
    fetch_round(st, due, p);
    apr_global_mutex_unlock(st->fetch_mutex);
    reschedule(st, due, 0);
}

/* Set once child_init has built this process's schedule: mod_watchdog
 * starts its thread in its own child_init, which may run before ours. */
static apr_uint32_t ready;

/* A refresh that would run as root (an MPM that keeps children root, such
 * as mpm-itk) does nothing: responses are fetched and parsed only with the
 * server user's privileges. */
static int privileges_ok(void)
{
    static int said;

    if (geteuid() != 0 && getuid() != 0) {
        return 1;
    }
    if (!said) {
        said = 1;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "OCSPSTAPLE0045: the background refresh of process %"
                     APR_PID_T_FMT " runs as root: it does not fetch (is "
                     "this mpm-itk?); nothing is renewed", getpid());
    }
    return 0;
}

/* A tick that has begun (it may be fetching) and whether the process is
 * on its way out: a child that exits (MaxConnectionsPerChild, idle-child
 * reaping, a restart) waits for its tick instead of cutting the fetch off
 * after the responder has read the request, which would lose the answer
 * and make the next child ask again. */
static apr_uint32_t ticking;
static apr_uint32_t exiting;

/* pchild pre-cleanup: runs in the exiting main thread before the child's
 * state goes away. Bounded: a whole round may take longer than this (many
 * certificates, a slow responder); then its rest is fetched again later. */
static apr_status_t finish_tick(void *data)
{
    ocspstaple_state *st = data;
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(1)
                          + ocspstaple_registry_max_timeout(st->registry);

    apr_atomic_set32(&exiting, 1);
    while (apr_atomic_read32(&ticking) && apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(20));
    }
    return APR_SUCCESS;
}

/* pchild cleanup, after finish_tick (a pre-cleanup): the connections the
 * refresh kept open to responders are closed. A tick still fetching past
 * finish_tick's bound keeps them; the exit closes them. */
static apr_status_t close_connections(void *data)
{
    (void)data;
    ocsp_fetch_connections_close();
    return APR_SUCCESS;
}

/* The MPM's stop and restart signals go to its own threads, never to this
 * one, whatever the MPM blocked before child_init (versions differ): a
 * handler run here would exit the child in the middle of a tick. Called
 * once, in the watchdog thread. */
static void block_stop_signals(void)
{
    apr_signal_block(SIGTERM);
    apr_signal_block(SIGINT);
    apr_signal_block(SIGHUP);
    apr_signal_block(AP_SIG_GRACEFUL);
#ifdef AP_SIG_GRACEFUL_STOP
    apr_signal_block(AP_SIG_GRACEFUL_STOP);
#endif
}

static apr_status_t watchdog_tick(int wd_state, void *data, apr_pool_t *pool)
{
    ocspstaple_state *st = data;
    static int retired;
    apr_pool_t *p;

    if (wd_state == AP_WATCHDOG_STATE_STARTING) {
        block_stop_signals();
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                     "OCSPSTAPLE0040: background refresh runs in process %"
                     APR_PID_T_FMT, getpid());
    }
    if (wd_state != AP_WATCHDOG_STATE_RUNNING || !apr_atomic_read32(&ready)
        || retired || !privileges_ok()) {
        return APR_SUCCESS;
    }
    if (!generation_is_current()) {
        retired = 1;
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                     "OCSPSTAPLE0043: process %" APR_PID_T_FMT " belongs to "
                     "an older generation: it stops renewing", getpid());
        return APR_SUCCESS;
    }
    /* Announce the tick before looking at exiting: finish_tick sets exiting
     * before it looks at ticking, so one of the two always sees the other. */
    apr_atomic_set32(&ticking, 1);
    if (!apr_atomic_read32(&exiting)) {
        apr_pool_create(&p, pool);
        tick(st, p);
        apr_pool_destroy(p);
    }
    apr_atomic_set32(&ticking, 0);
    return APR_SUCCESS;
}

apr_status_t ocspstaple_watchdog_register(ocspstaple_state *st, server_rec *s,
                                          apr_pool_t *pconf)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0041: "
                     "mod_watchdog is needed for the background refresh: "
                     "load it (LoadModule watchdog_module ...)");
        return APR_ENOTIMPL;
    }
    /* parent 0: in the children, with worker privileges. Not a singleton:
     * mod_watchdog hands a singleton to a new child only after a second or
     * two, so busy child recycling (MaxConnectionsPerChild) could starve it.
     * Every child checks instead; the fetch mutex and the plan shared in the
     * cache make one of them fetch, once. */
    rv = get_instance(&wd, WATCHDOG_NAME, 0, 0, pconf);
    if (rv == APR_SUCCESS) {
        rv = register_callback(wd, WATCHDOG_INTERVAL, st, watchdog_tick);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OCSPSTAPLE0042: cannot "
                     "set up the background refresh (mod_watchdog): %s",
                     ocspstaple_strerror(rv, pconf));
    }
    return rv;
}

void ocspstaple_refresh_child_init(ocspstaple_state *st, apr_pool_t *pchild)
{
    const apr_array_header_t *entries =
        ocspstaple_registry_entries(st->registry);
    apr_time_t now = apr_time_now();
    apr_pool_t *p;
    int i;

    st->schedule = ocspstaple_schedule_make(entries->nelts, pchild);
    apr_pool_create(&p, pchild);
    ocspstaple_take_changes(st, p);
    for (i = 0; i < entries->nelts; i++) {
        ocspstaple_entry *e = APR_ARRAY_IDX(entries, i, ocspstaple_entry *);

        if (e->heap_pos < 0) {
            ocspstaple_schedule_set(st->schedule, e,
                                    ocspstaple_wake_at(e, now));
        }
    }
    apr_pool_destroy(p);
    apr_pool_pre_cleanup_register(pchild, st, finish_tick);
    apr_pool_cleanup_register(pchild, NULL, close_connections,
                              apr_pool_cleanup_null);
    apr_atomic_set32(&ready, 1);
}
