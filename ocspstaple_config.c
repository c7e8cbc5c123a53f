/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Directives: unset sentinels, an explicit field-by-field merge, strict value
 * parsers whose messages name the directive and what it accepts.
 */

#include <errno.h>
#include <stdlib.h>

#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>

#include "ocspstaple_conf.h"

void *ocspstaple_create_conf(apr_pool_t *p, server_rec *s)
{
    ocspstaple_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->enabled = OCSPSTAPLE_UNSET;
    conf->timeout = OCSPSTAPLE_UNSET;
    conf->return_errors = OCSPSTAPLE_UNSET;
    conf->use_post = OCSPSTAPLE_UNSET;
    conf->renew.percent = OCSPSTAPLE_UNSET;
    return conf;
}

void *ocspstaple_merge_conf(apr_pool_t *p, void *basev, void *addv)
{
    const ocspstaple_conf *base = basev, *add = addv;
    ocspstaple_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->enabled = add->enabled != OCSPSTAPLE_UNSET ? add->enabled
                                                     : base->enabled;
    conf->timeout = add->timeout != OCSPSTAPLE_UNSET ? add->timeout
                                                     : base->timeout;
    conf->return_errors = add->return_errors != OCSPSTAPLE_UNSET
                        ? add->return_errors : base->return_errors;
    conf->force_url = add->force_url ? add->force_url : base->force_url;
    conf->proxy = add->proxy ? add->proxy : base->proxy;
    conf->use_post = add->use_post != OCSPSTAPLE_UNSET ? add->use_post
                                                       : base->use_post;
    conf->ca_file = add->ca_file ? add->ca_file : base->ca_file;
    conf->files = add->files ? add->files : base->files;
    conf->renew = add->renew.percent != OCSPSTAPLE_UNSET ? add->renew
                                                         : base->renew;
    conf->cache = base->cache;          /* global only */
    conf->store_dir = base->store_dir;  /* global only */
    return conf;
}

static const ocspstaple_conf *conf_of(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &ocspstaple_module);
}

int ocspstaple_is_enabled(const server_rec *s)
{
    return conf_of(s)->enabled == 1;
}

apr_interval_time_t ocspstaple_timeout(const server_rec *s)
{
    apr_interval_time_t t = conf_of(s)->timeout;

    return t == OCSPSTAPLE_UNSET ? OCSPSTAPLE_DEFAULT_TIMEOUT : t;
}

int ocspstaple_returns_errors(const server_rec *s)
{
    return conf_of(s)->return_errors == 1;
}

const char *ocspstaple_force_url(const server_rec *s)
{
    return conf_of(s)->force_url;
}

stapling_cache *ocspstaple_configured_cache(const server_rec *s)
{
    return conf_of(s)->cache;
}

const char *ocspstaple_proxy(const server_rec *s)
{
    return conf_of(s)->proxy;
}

int ocspstaple_use_post(const server_rec *s)
{
    return conf_of(s)->use_post == 1;
}

const char *ocspstaple_responder_ca_file(const server_rec *s)
{
    return conf_of(s)->ca_file;
}

const apr_array_header_t *ocspstaple_files(const server_rec *s)
{
    return conf_of(s)->files;
}

refresh_window ocspstaple_renew_window(const server_rec *s)
{
    refresh_window w = conf_of(s)->renew;

    if (w.percent == OCSPSTAPLE_UNSET) {
        w.percent = REFRESH_DEFAULT_PERCENT;
        w.before = 0;
    }
    return w;
}

const char *ocspstaple_store_dir(const server_rec *s, apr_pool_t *p)
{
    const char *dir = conf_of(s)->store_dir;

    if (!dir) {
        /* A build-time default may be relative too: from ServerRoot, like
         * the directive (left as it was, it made the store unusable). */
        return ap_server_root_relative(p, OCSPSTAPLE_DEFAULT_STORE);
    }
    return strcasecmp(dir, "off") ? ap_server_root_relative(p, dir) : NULL;
}

/* -------------------------------------------------------------- handlers */

static ocspstaple_conf *conf_for(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config,
                                &ocspstaple_module);
}

static const char *cmd_error(cmd_parms *cmd, const char *fmt, const char *arg,
                             const char *allowed)
{
    return apr_psprintf(cmd->pool, "%s: %s '%s'; %s", cmd->cmd->name, fmt,
                        arg, allowed);
}

static const char *set_enabled(cmd_parms *cmd, void *dc, int flag)
{
    (void)dc;
    conf_for(cmd)->enabled = flag;
    return NULL;
}

static const char *set_return_errors(cmd_parms *cmd, void *dc, int flag)
{
    (void)dc;
    conf_for(cmd)->return_errors = flag;
    return NULL;
}

static const char *set_use_post(cmd_parms *cmd, void *dc, int flag)
{
    (void)dc;
    conf_for(cmd)->use_post = flag;
    return NULL;
}

/* A whole number with an optional unit: ms, s (the default), m/min/mi, h, d.
 * Stricter than atoi: no sign, no garbage, no overflow. */
static int parse_duration(const char *arg, apr_interval_time_t *out)
{
    static const struct { const char *unit; apr_int64_t usec; } units[] = {
        { "", APR_USEC_PER_SEC }, { "s", APR_USEC_PER_SEC }, { "ms", 1000 },
        { "m", 60 * APR_USEC_PER_SEC }, { "mi", 60 * APR_USEC_PER_SEC },
        { "min", 60 * APR_USEC_PER_SEC }, { "h", 3600 * APR_USEC_PER_SEC },
        { "d", 86400 * APR_USEC_PER_SEC },
    };
    char *end;
    apr_int64_t n;
    apr_size_t i;

    if (!apr_isdigit(*arg)) {
        return 0;
    }
    errno = 0;
    n = apr_strtoi64(arg, &end, 10);
    for (i = 0; errno == 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcasecmp(end, units[i].unit)) {
            if (n > APR_INT64_MAX / units[i].usec) {
                return 0;
            }
            *out = n * units[i].usec;
            return 1;
        }
    }
    return 0;
}

static const char *set_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_interval_time_t t;

    (void)dc;
    if (!parse_duration(arg, &t)) {
        return cmd_error(cmd, "not a duration:", arg, "use seconds (10) or "
                         "a number with a unit (500ms, 10s, 1m)");
    }
    if (t <= 0 || t > OCSPSTAPLE_MAX_TIMEOUT) {
        return cmd_error(cmd, "out of range:", arg,
                         "must be more than 0 and at most 300 seconds");
    }
    conf_for(cmd)->timeout = t;
    return NULL;
}

static int is_http_url(const char *arg, apr_pool_t *p)
{
    apr_uri_t uri;

    return apr_uri_parse(p, arg, &uri) == APR_SUCCESS && uri.scheme
        && (!strcasecmp(uri.scheme, "http") || !strcasecmp(uri.scheme, "https"))
        && uri.hostname && *uri.hostname;
}

static const char *set_force_url(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    if (!is_http_url(arg, cmd->pool)) {
        return cmd_error(cmd, "not a responder URL:", arg,
                         "use an http:// or https:// URL with a host");
    }
    conf_for(cmd)->force_url = arg;
    return NULL;
}

static const char *set_proxy(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    if (!is_http_url(arg, cmd->pool)) {
        return cmd_error(cmd, "not a proxy URL:", arg,
                         "use http://host:port (or https://)");
    }
    conf_for(cmd)->proxy = arg;
    return NULL;
}

/* Checked now: a typo stops the configuration check instead of failing
 * every https fetch, months later. The check runs as root; libcurl reads
 * the file again at each fetch with the server user's rights (a file only
 * root may read fails there, in the update-failed line). */
static const char *set_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t finfo;
    apr_file_t *f;
    apr_status_t rv;
    char buf[120];

    (void)dc;
    if (!path) {
        return cmd_error(cmd, "not a file name:", arg,
                         "give a PEM file of CA certificates");
    }
    rv = apr_stat(&finfo, path, APR_FINFO_TYPE, cmd->temp_pool);
    if (rv == APR_SUCCESS && finfo.filetype != APR_REG) {
        return cmd_error(cmd, "not a regular file:", path,
                         "give a PEM file of CA certificates");
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT,
                           cmd->temp_pool);
    }
    if (rv != APR_SUCCESS) {
        return cmd_error(cmd, apr_pstrcat(cmd->temp_pool, "cannot read (",
                                          apr_strerror(rv, buf, sizeof(buf)),
                                          "):", NULL),
                         path, "give a readable PEM file of CA certificates");
    }
    apr_file_close(f);
    conf_for(cmd)->ca_file = path;
    return NULL;
}

/* Each file must exist now: a typo stops the configuration check rather than
 * the staple, months later. Which certificate it is for is found at startup
 * (the one whose response it verifies as). */
static const char *add_file(cmd_parms *cmd, void *dc, const char *arg)
{
    ocspstaple_conf *conf = conf_for(cmd);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t finfo;

    (void)dc;
    if (!path || apr_stat(&finfo, path, APR_FINFO_TYPE, cmd->temp_pool)
                 != APR_SUCCESS) {
        return cmd_error(cmd, "no such file:", arg,
                         "give a DER OCSP response file");
    }
    if (finfo.filetype != APR_REG) {
        return cmd_error(cmd, "not a regular file:", arg,
                         "give a DER OCSP response file");
    }
    if (!conf->files) {
        conf->files = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(conf->files, const char *) = path;
    return NULL;
}

static const char *set_renew_window(cmd_parms *cmd, void *dc,
                                    const char *arg)
{
    refresh_window w = { 0, 0 };
    apr_size_t len = strlen(arg);
    char *end;

    (void)dc;
    if (len > 1 && arg[len - 1] == '%') {
        errno = 0;
        w.percent = (int)strtol(arg, &end, 10);
        if (errno || end != arg + len - 1 || !apr_isdigit(*arg)
            || w.percent < 1 || w.percent > 99) {
            return cmd_error(cmd, "not a share of the validity:", arg,
                             "use 1% to 99%");
        }
    }
    else if (!parse_duration(arg, &w.before) || w.before <= 0) {
        return cmd_error(cmd, "not a share or a duration:", arg, "use a "
                         "percentage (50%) or a time before nextUpdate "
                         "(3600, 12h, 2d)");
    }
    conf_for(cmd)->renew = w;
    return NULL;
}

static const char *set_store(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err) {
        return err;
    }
    if (!*arg) {
        return cmd_error(cmd, "empty directory", arg, "use a directory or off");
    }
    conf_for(cmd)->store_dir = arg;
    return NULL;
}

static const char *set_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err) {
        return err;
    }
    err = stapling_cache_create(&conf_for(cmd)->cache, arg, cmd->temp_pool,
                                cmd->pool);
    return err ? apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL)
               : NULL;
}

const command_rec ocspstaple_cmds[] = {
    AP_INIT_FLAG("OCSPUseStapling", set_enabled, NULL, RSRC_CONF,
        "on|off: staple OCSP responses for this server's certificates "
        "(default off)"),
    AP_INIT_TAKE1("OCSPStaplingCache", set_cache, NULL, RSRC_CONF,
        "provider[:args]: the socache for OCSP responses, e.g. "
        "shmcb:/path(1048576) (default: shmcb in the runtime directory)"),
    AP_INIT_TAKE1("OCSPStaplingResponderTimeout", set_timeout, NULL, RSRC_CONF,
        "seconds (or 500ms, 1mi...): bound on one whole exchange with a "
        "responder (default 10)"),
    AP_INIT_FLAG("OCSPStaplingReturnResponderErrors", set_return_errors, NULL,
        RSRC_CONF, "on|off: also staple a responder's own error answers and "
        "'unknown' statuses (default off)"),
    AP_INIT_TAKE1("OCSPStaplingForceURL", set_force_url, NULL, RSRC_CONF,
        "http(s) URL: the OCSP responder to ask instead of the certificate's"),
    AP_INIT_TAKE1("OCSPStaplingProxy", set_proxy, NULL, RSRC_CONF,
        "http://host:port: proxy for all requests to OCSP responders "
        "(default: the http_proxy/https_proxy/no_proxy environment)"),
    AP_INIT_FLAG("OCSPStaplingUsePOST", set_use_post, NULL, RSRC_CONF,
        "on|off: always POST requests to OCSP responders instead of the "
        "RFC 5019 GET (default off)"),
    AP_INIT_TAKE1("OCSPStaplingResponderCAFile", set_ca_file, NULL, RSRC_CONF,
        "file: PEM CA certificates to verify https responders with "
        "(default: libcurl's, the system's)"),
    AP_INIT_ITERATE("OCSPStaplingFile", add_file, NULL, RSRC_CONF,
        "DER OCSP response file(s) to staple instead of fetching, for the "
        "certificate each one is for"),
    AP_INIT_TAKE1("OCSPStaplingRenewWindow", set_renew_window, NULL,
        RSRC_CONF, "N% of the validity passed, or a duration before "
        "nextUpdate: when to renew a response (default 50%)"),
    AP_INIT_TAKE1("OCSPStaplingStore", set_store, NULL, RSRC_CONF,
        "directory|off: keep verified responses on disk across restarts "
        "(default " OCSPSTAPLE_DEFAULT_STORE ")"),
    { NULL }
};
