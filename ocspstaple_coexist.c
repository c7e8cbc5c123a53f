/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Living with mod_ssl's and mod_md's own stapling. Our prime hook runs
 * first, so a certificate of a virtual host with OCSPUseStapling on is
 * always ours; mod_ssl (SSLUseStapling) and mod_md (MDStapling) keep the
 * certificates of the other virtual hosts. Where the configuration asks
 * them too for one of ours, startup says who staples it.
 */

#include <apr_hash.h>
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

/* What the checks need from the configuration tree, read in one pass: with
 * 10,000 virtual hosts, looking each one's section up in the tree (10,000
 * top-level sections) took 10^8 comparisons, about 25 s of the start. */
typedef struct {
    apr_hash_t *sections;             /* "line:file" -> its <VirtualHost> */
    apr_array_header_t *mdomains;     /* MDomain(Set) directives, sections */
    int ssl_global;                   /* the global SSLUseStapling */
    int md_global, md_others;         /* the global MDStapling, MDStapleOthers */
} conf_view;

static const char *section_key(int line, const char *file, apr_pool_t *p)
{
    return apr_psprintf(p, "%d:%s", line, file);
}

static int is_mdomain(const ap_directive_t *d)
{
    return !strcasecmp(d->directive, "<MDomain")
        || !strcasecmp(d->directive, "<MDomainSet")
        || !strcasecmp(d->directive, "MDomain")
        || !strcasecmp(d->directive, "MDomainSet");
}

static void view_make(conf_view *v, apr_pool_t *p)
{
    const ap_directive_t *d;

    v->sections = apr_hash_make(p);
    v->mdomains = apr_array_make(p, 4, sizeof(const ap_directive_t *));
    v->ssl_global = v->md_global = 0;
    v->md_others = 1;
    for (d = ap_conftree; d; d = d->next) {
        v->ssl_global = is_on(d, "SSLUseStapling") ? 1
                      : is_off(d, "SSLUseStapling") ? 0 : v->ssl_global;
        v->md_global = is_on(d, "MDStapling") ? 1
                     : is_off(d, "MDStapling") ? 0 : v->md_global;
        v->md_others = is_off(d, "MDStapleOthers") ? 0 : v->md_others;
        if (!strcasecmp(d->directive, "<VirtualHost") && d->filename) {
            apr_hash_set(v->sections, section_key(d->line_num, d->filename, p),
                         APR_HASH_KEY_STRING, d);
        }
        else if (is_mdomain(d)) {
            APR_ARRAY_PUSH(v->mdomains, const ap_directive_t *) = d;
        }
    }
}

/* The <VirtualHost> section that defined s, by file and line. */
static const ap_directive_t *vhost_section(const conf_view *v,
                                           const server_rec *s, apr_pool_t *p)
{
    if (!s->defn_name) {
        return NULL;
    }
    return apr_hash_get(v->sections,
                        section_key((int)s->defn_line_number, s->defn_name, p),
                        APR_HASH_KEY_STRING);
}

/* SSLUseStapling as it applies to s: its own section, else the global. */
static int ssl_stapling_on(const conf_view *v, const server_rec *s,
                           apr_pool_t *p)
{
    const ap_directive_t *section = vhost_section(v, s, p), *d;
    int on = v->ssl_global;

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
static int md_staples(const conf_view *v, const server_rec *s, apr_pool_t *p)
{
    const ap_directive_t *c;
    int i;

    for (i = 0; i < v->mdomains->nelts; i++) {
        const ap_directive_t *d = APR_ARRAY_IDX(v->mdomains, i,
                                                const ap_directive_t *);
        int on = v->md_global;

        for (c = d->directive[0] == '<' ? d->first_child : NULL; c;
             c = c->next) {
            on = is_on(c, "MDStapling") ? 1
               : is_off(c, "MDStapling") ? 0 : on;
        }
        if (on && d->args && serves_one_of(s, d->args, p)) {
            return 1;
        }
    }
    return v->md_global && v->md_others;
}

void ocspstaple_check_coexistence(server_rec *main_s, apr_pool_t *p)
{
    int md_loaded = ap_find_linked_module("mod_md.c") != NULL;
    conf_view v;
    server_rec *s;

    view_make(&v, p);
    for (s = main_s; s; s = s->next) {
        if (!ocspstaple_is_enabled(s) || !s->is_virtual) {
            continue;
        }
        if (ssl_stapling_on(&v, s, p)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0070: "
                         "server %s has both SSLUseStapling and "
                         "OCSPUseStapling on: mod_ocspstaple staples its "
                         "certificates, mod_ssl's stapling is not used for "
                         "them (SSLUseStapling can be removed)",
                         s->server_hostname);
        }
        if (md_loaded && md_staples(&v, s, p)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OCSPSTAPLE0071: "
                         "server %s has OCSPUseStapling on and its domain "
                         "has MDStapling on: mod_ocspstaple staples its "
                         "certificates, mod_md does not",
                         s->server_hostname);
        }
    }
}
