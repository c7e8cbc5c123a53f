/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSPSTAPLE_H
#define OCSPSTAPLE_H

/* What every file of the module shares: the module record, the certificate
 * id and the error text of log lines. Nothing here is for other modules.
 *
 * The headers form a chain, each using only the ones before it:
 *   ocspstaple.h         module, ids, error text
 *   ocspstaple_conf.h    directives and effective settings
 *   ocspstaple_registry.h  the certificates (entries), built at startup
 *   ocspstaple_shared.h  memory shared by this server's processes
 *   ocspstaple_local.h   a process's own copy of each record (handshakes)
 *   ocspstaple_fleet.h   records read from a cache other servers write
 *   ocspstaple_schedule.h  when each certificate needs attention next
 *   ocspstaple_state.h   one configuration generation; publish and update
 *   ocspstaple_helper.h  the start-up helper (User/Group privileges)
 *   ocspstaple_refresh.h start-up, background refresh
 *   ocspstaple_status.h  status page (and its Prometheus form)
 */

#include <httpd.h>

/* The core OCSP provider hooks (http_ssl.h) arrived in 2.4.48. */
#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 105)
#error "mod_ocspstaple needs httpd 2.4.48 or later (core OCSP stapling hooks in http_ssl.h)"
#endif

#include <http_config.h>

extern module AP_MODULE_DECLARE_DATA ocspstaple_module;

#define OCSPSTAPLE_ID_LEN 20            /* SHA-1 of the certificate, from mod_ssl */

/* Every message of ours starts with its tag, so the reason of a failure goes
 * at the end of the line ("Permission denied (13)"), never in httpd's status
 * prefix. */
const char *ocspstaple_strerror(apr_status_t rv, apr_pool_t *p);

#endif /* OCSPSTAPLE_H */
