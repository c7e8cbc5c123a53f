/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Living with mod_ssl's and mod_md's own stapling. Our prime hook runs
 * first, so a certificate of a virtual host with OCSPUseStapling on is
 * always ours; mod_ssl (SSLUseStapling) and mod_md (MDStapling) keep the
 * certificates of the other virtual hosts. Where the configuration asks
 * them too for one of ours, startup says who staples it.
 */

#include <apr_strings.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "ocspstaple_private.h"

APLOG_USE_MODULE(ocspstaple);

static int is_on(const ap_directive_t *d, const char *name)
{
    return !strcasecmp(d->directive, name) && d->args
        && !strcasecmp(d->args, "on");
}

static int is_off(const ap_directive_t *d, const char *name)
{
    return !strcasecmp(d->directive, name) && d->args
        && !strcasecmp(d->args, "off");
}

/* The <VirtualHost> section that defined s, by file and line. */
static const ap_directive_t *vhost_section(const server_rec *s)
{
    const ap_directive_t *d;

    for (d = ap_conftree; d && s->defn_name; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")
            && d->line_num == (int)s->defn_line_number && d->filename
            && !strcmp(d->filename, s->defn_name)) {
            return d;
        }
    }
    return NULL;
}

/* SSLUseStapling as it applies to s: its own section, else the global. */
static int ssl_stapling_on(const server_rec *s, int global_on)
{
    const ap_directive_t *section = vhost_section(s), *d;
    int on = global_on;

    for (d = section ? section->first_child : NULL; d; d = d->next) {
        on = is_on(d, "SSLUseStapling") ? 1
           : is_off(d, "SSLUseStapling") ? 0 : on;
    }
    return on;
}

/* Whether name is one of the domains of an <MDomain> whose stapling is on
 * (its own MDStapling, else the global one). */
static int md_staples(const char *name, int global_on, apr_pool_t *p)
{
    const ap_directive_t *d, *c;

    for (d = ap_conftree; d && name; d = d->next) {
        int on = global_on;
        char *domains, *last, *dom;

        if (strcasecmp(d->directive, "<MDomain")
            && strcasecmp(d->directive, "<MDomainSet")) {
            continue;
        }
        for (c = d->first_child; c; c = c->next) {
            on = is_on(c, "MDStapling") ? 1 : is_off(c, "MDStapling") ? 0 : on;
        }
        domains = apr_pstrdup(p, d->args ? d->args : "");
        for (dom = apr_strtok(domains, " \t>", &last); on && dom;
             dom = apr_strtok(NULL, " \t>", &last)) {
            if (!strcasecmp(dom, name)) {
                return 1;
            }
        }
    }
    return 0;
}

void ocspstaple_check_coexistence(server_rec *main_s, apr_pool_t *p)
{
    const ap_directive_t *d;
    int ssl_global = 0, md_global = 0;
    server_rec *s;

    for (d = ap_conftree; d; d = d->next) {
        ssl_global = is_on(d, "SSLUseStapling") ? 1 : ssl_global;
        md_global = is_on(d, "MDStapling") ? 1 : md_global;
    }
    for (s = main_s; s; s = s->next) {
        if (!ocspstaple_is_enabled(s) || !s->is_virtual) {
            continue;
        }
        if (ssl_stapling_on(s, ssl_global)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0070: "
                         "server %s has both SSLUseStapling and "
                         "OCSPUseStapling on: mod_ocspstaple staples its "
                         "certificates, mod_ssl's stapling is not used for "
                         "them (SSLUseStapling can be removed)",
                         s->server_hostname);
        }
        if (ap_find_linked_module("mod_md.c")
            && md_staples(s->server_hostname, md_global, p)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0071: "
                         "server %s has OCSPUseStapling on and its domain "
                         "has MDStapling on: mod_ocspstaple staples its "
                         "certificates, mod_md does not",
                         s->server_hostname);
        }
    }
}
