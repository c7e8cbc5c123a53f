/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_REFRESH_H
#define OCSPSTAPLE_REFRESH_H

/* Who fetches, and when. Only processes with the server user's privileges:
 *  - start-up (ocspstaple_startup.c): the root parent forks a helper that
 *    drops privileges, serves what the store and OCSPStaplingFiles hold,
 *    fetches what is missing in one round, and exits. The parent waits for
 *    it, bounded: see ocspstaple_startup;
 *  - background (ocspstaple_refresh.c): a mod_watchdog thread in every
 *    child takes what other processes published and, once a second, deals
 *    with the certificates whose time has come; one fetch per renewal
 *    server-wide through the fetch mutex.
 * Handshakes never fetch and never wait. */

#include "ocspstaple_state.h"

/* post_config (root): creates the store directory if it is missing (owned
 * by User/Group); returns the directory to use, or NULL when off. */
const char *ocspstaple_prepare_store(server_rec *s, apr_pool_t *pconf);

/* post_config (root): runs the start-up helper and waits for it: on a first
 * start until its fetch round is done, on a reload until the store is
 * loaded; never longer than OCSPSTAPLE_STARTUP_WAIT_* (see there). */
void ocspstaple_startup(ocspstaple_state *st, server_rec *s,
                        apr_pool_t *pconf, apr_pool_t *ptemp);

/* post_config: registers the refresh thread of every child. */
apr_status_t ocspstaple_watchdog_register(ocspstaple_state *st, server_rec *s,
                                          apr_pool_t *pconf);

/* Takes into this process's copies what other processes published since
 * it last looked (the shared journal). */
void ocspstaple_take_changes(ocspstaple_state *st, apr_pool_t *p);

/* child_init, before the child serves: takes every record published so far
 * from the local cache (no fetch, no network, no verification) and plans
 * this process's schedule. */
void ocspstaple_refresh_child_init(ocspstaple_state *st, apr_pool_t *pchild);

#endif /* OCSPSTAPLE_REFRESH_H */
