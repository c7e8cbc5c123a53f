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

#include "ocspstaple_conf.h"

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

/* Whether s answers to one of the names in domains (MDomain arguments). */
static int serves_one_of(const server_rec *s, const char *domains,
                         apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, domains), *last, *dom;
    int i;

    for (dom = apr_strtok(copy, " \t>", &last); dom;
         dom = apr_strtok(NULL, " \t>", &last)) {
        if (s->server_hostname && !strcasecmp(dom, s->server_hostname)) {
            return 1;
        }
        for (i = 0; s->names && i < s->names->nelts; i++) {
            if (!strcasecmp(dom, APR_ARRAY_IDX(s->names, i, const char *))) {
                return 1;
            }
        }
    }
    return 0;
}

/* Whether mod_md would staple s: MDStapling on for an MDomain (the plain
 * directive or a section) that s serves; or a global MDStapling on, which
 * with MDStapleOthers (on by default) covers every other host too. */
static int md_staples(const server_rec *s, apr_pool_t *p)
{
    const ap_directive_t *d, *c;
    int global_on = 0, others = 1;

    for (d = ap_conftree; d; d = d->next) {
        global_on = is_on(d, "MDStapling") ? 1
                  : is_off(d, "MDStapling") ? 0 : global_on;
        others = is_off(d, "MDStapleOthers") ? 0 : others;
    }
    for (d = ap_conftree; d; d = d->next) {
        int on = global_on;

        if (!strcasecmp(d->directive, "<MDomain")
            || !strcasecmp(d->directive, "<MDomainSet")) {
            for (c = d->first_child; c; c = c->next) {
                on = is_on(c, "MDStapling") ? 1
                   : is_off(c, "MDStapling") ? 0 : on;
            }
        }
        else if (strcasecmp(d->directive, "MDomain")
                 && strcasecmp(d->directive, "MDomainSet")) {
            continue;
        }
        if (on && d->args && serves_one_of(s, d->args, p)) {
            return 1;
        }
    }
    return global_on && others;
}

void ocspstaple_check_coexistence(server_rec *main_s, apr_pool_t *p)
{
    const ap_directive_t *d;
    int ssl_global = 0, md_loaded = ap_find_linked_module("mod_md.c") != NULL;
    server_rec *s;

    for (d = ap_conftree; d; d = d->next) {
        ssl_global = is_on(d, "SSLUseStapling") ? 1
                   : is_off(d, "SSLUseStapling") ? 0 : ssl_global;
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
        if (md_loaded && md_staples(s, p)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0071: "
                         "server %s has OCSPUseStapling on and its domain "
                         "has MDStapling on: mod_ocspstaple staples its "
                         "certificates, mod_md does not",
                         s->server_hostname);
        }
    }
}
