/* Licensed under the Apache License, Version 2.0: see LICENSE. */
/*
 * Unit tests for ocsp_fetch.c (the contract is include/ocsp_fetch.h).
 *
 *   test_ocsp_fetch FIXTUREDIR PKIDIR [RESPONDER_PORT]
 *
 * PKIDIR comes from scripts/mkpki.sh, FIXTUREDIR from t/unit/mkfixtures.sh.
 * With RESPONDER_PORT (scripts/ocsp_responder.pl on 127.0.0.1, serving that
 * PKI) the HTTP and fetch tests run too; without it they are skipped.
 * Further HTTP behaviours (content type, proxy, size cap, slow and silent
 * servers, responder errors) are played by small servers inside this program.
 *
 * Output is TAP: "ok N - what", or "not ok N - what" followed by a "# why"
 * line; the plan "1..N" comes last. Exit status 1 when a test failed, 2 on a
 * setup problem ("Bail out!").
 *
 * Everything is freed (pools, OpenSSL objects, sockets, threads), so
 *   valgrind --leak-check=full --error-exitcode=1 t/unit/test_ocsp_fetch ...
 * must report no leaks.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ocsp_fetch.h"
#include "ocsp_http.h"

/* ------------------------------------------------------------------------ */
/* TAP                                                                      */
/* ------------------------------------------------------------------------ */

static int g_test_no;
static int g_failed;

static const char *g_fixdir;
static const char *g_pkidir;
static int g_port;                 /* 0: no responder */
static apr_pool_t *g_pool;         /* lives for the whole run */

static void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bail(const char *fmt, ...)
{
    va_list ap;
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(2);
}

/* One test: "ok N - desc", or "not ok N - desc" and "# <why>" (why is only
 * formatted on failure; newlines in it are flattened). Returns cond. */
static int check(int cond, const char *desc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int check(int cond, const char *desc, const char *fmt, ...)
{
    char why[2048];
    char *s;
    va_list ap;

    ++g_test_no;
    if (cond) {
        printf("ok %d - %s\n", g_test_no, desc);
    }
    else {
        ++g_failed;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        for (s = why; *s; ++s) {
            if (*s == '\n' || *s == '\r') {
                *s = ' ';
            }
        }
        printf("not ok %d - %s\n# %s\n", g_test_no, desc, why);
    }
    fflush(stdout);
    return cond;
}

static void skip(const char *desc, const char *why)
{
    ++g_test_no;
    printf("ok %d - %s # skip %s\n", g_test_no, desc, why);
    fflush(stdout);
}

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static const char *nz(const char *s)
{
    return s ? s : "(null)";
}

static int nonempty(const char *s)
{
    return s != NULL && *s != '\0';
}

static int contains(const char *s, const char *sub)
{
    return s != NULL && strstr(s, sub) != NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n, m;
    if (s == NULL) {
        return 0;
    }
    n = strlen(s);
    m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *rv_name(apr_status_t rv, apr_pool_t *p)
{
    char buf[256];
    switch (rv) {
    case APR_SUCCESS:     return "APR_SUCCESS";
    case OCSP_ERESPONDER: return "OCSP_ERESPONDER";
    case OCSP_EVERIFY:    return "OCSP_EVERIFY";
    default:
        return apr_psprintf(p, "%d (%s)", rv, apr_strerror(rv, buf, sizeof(buf)));
    }
}

/* "rv=..., err=..." for failure reasons. */
static const char *res(apr_status_t rv, const char *err, apr_pool_t *p)
{
    return apr_psprintf(p, "rv=%s err=%s", rv_name(rv, p), nz(err));
}

/* A failure in the sense of the header: neither success nor responder error,
 * with a one-line reason. */
static int is_failure(apr_status_t rv, const char *err)
{
    return rv != APR_SUCCESS && rv != OCSP_ERESPONDER && nonempty(err);
}

static double secs(apr_interval_time_t t)
{
    return (double)t / (double)APR_USEC_PER_SEC;
}

/* Reads a whole file into pool memory (NUL-terminated, length without it). */
static int slurp(const char *path, unsigned char **pbuf, apr_size_t *plen,
                 apr_pool_t *p)
{
    FILE *f = fopen(path, "rb");
    long n;
    unsigned char *buf;

    if (f == NULL) {
        return 0;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    buf = apr_palloc(p, (apr_size_t)n + 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return 0;
    }
    fclose(f);
    buf[n] = '\0';
    *pbuf = buf;
    *plen = (apr_size_t)n;
    return 1;
}

static const char *pki_path(const char *file, apr_pool_t *p)
{
    return apr_pstrcat(p, g_pkidir, "/", file, NULL);
}

static void fixture(const char *name, unsigned char **pder, apr_size_t *plen,
                    apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, g_fixdir, "/", name, ".der", NULL);
    if (!slurp(path, pder, plen, p)) {
        bail("cannot read fixture %s (run t/unit/mkfixtures.sh)", path);
    }
}

/* PKIDIR/NAME.pem followed by PKIDIR/intermediate.crt. */
static const char *leaf_pem(const char *name, int with_issuer, apr_pool_t *p)
{
    unsigned char *leaf, *issuer;
    apr_size_t leaf_len, issuer_len;
    const char *path = pki_path(apr_pstrcat(p, name, ".pem", NULL), p);

    if (!slurp(path, &leaf, &leaf_len, p)) {
        bail("cannot read %s (run scripts/mkpki.sh)", path);
    }
    if (!with_issuer) {
        return (const char *)leaf;
    }
    path = pki_path("intermediate.crt", p);
    if (!slurp(path, &issuer, &issuer_len, p)) {
        bail("cannot read %s", path);
    }
    return apr_pstrcat(p, (const char *)leaf, (const char *)issuer, NULL);
}

/* The leaf NAME with the intermediate as its issuer; bails out on failure
 * (the parse tests proper are in test_parse). */
static ocsp_cert *cert(const char *name, apr_pool_t *p)
{
    ocsp_cert *c = NULL;
    const char *err = NULL;
    const char *pem = leaf_pem(name, 1, p);
    apr_status_t rv = ocsp_cert_parse(&c, pem, strlen(pem), &err, p);
    if (rv != APR_SUCCESS || c == NULL) {
        bail("ocsp_cert_parse(%s): %s", name, res(rv, err, p));
    }
    return c;
}

/* OpenSSL's own view of the certificates, for expected values. */

static apr_status_t x509_cleanup(void *x)
{
    X509_free(x);
    return APR_SUCCESS;
}

static X509 *x509(const char *file, apr_pool_t *p)
{
    const char *path = pki_path(file, p);
    BIO *bio = BIO_new_file(path, "r");
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL) {
        bail("cannot load %s", path);
    }
    apr_pool_cleanup_register(p, x, x509_cleanup, apr_pool_cleanup_null);
    return x;
}

static apr_time_t asn1_to_apr(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;
    if (t == NULL) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    if (!ASN1_TIME_to_tm(t, &tm)) {
        return -1;
    }
    return apr_time_from_sec(timegm(&tm));
}

/* What the single response for leaf in DER says, read with OpenSSL. */
typedef struct {
    int status;          /* V_OCSP_CERTSTATUS_* */
    int reason;
    apr_time_t this_update, next_update, revoked_at;
} expected;

static expected expect(const unsigned char *der, apr_size_t len, X509 *leaf,
                       X509 *issuer)
{
    expected e;
    const unsigned char *q = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &q, (long)len);
    OCSP_BASICRESP *bs = resp ? OCSP_response_get1_basic(resp) : NULL;
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, issuer);
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;

    memset(&e, 0, sizeof(e));
    e.reason = -1;
    if (bs == NULL || id == NULL
        || !OCSP_resp_find_status(bs, id, &e.status, &e.reason, &rev,
                                  &thisupd, &nextupd)) {
        bail("fixture does not hold a response for the expected certificate");
    }
    e.this_update = asn1_to_apr(thisupd);
    e.next_update = asn1_to_apr(nextupd);
    e.revoked_at = asn1_to_apr(rev);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    return e;
}

/* Garbage in every field, so that unset verdict fields show. */
static void poison(ocsp_verdict *v)
{
    memset(v, 0x5a, sizeof(*v));
}

static const char *verdict_str(const ocsp_verdict *v, apr_pool_t *p)
{
    return apr_psprintf(p, "resp_status=%d cert_status=%d this_update=%"
                        APR_TIME_T_FMT " next_update=%" APR_TIME_T_FMT
                        " expires=%" APR_TIME_T_FMT " revoked_at=%"
                        APR_TIME_T_FMT " revoke_reason=%d",
                        v->resp_status, (int)v->cert_status, v->this_update,
                        v->next_update, v->expires, v->revoked_at,
                        v->revoke_reason);
}

/* ------------------------------------------------------------------------ */
/* Status strings                                                           */
/* ------------------------------------------------------------------------ */

static void test_strings(void)
{
    static const struct { ocsp_cert_status st; const char *s; } cs[] = {
        { OCSP_CERT_GOOD, "good" }, { OCSP_CERT_REVOKED, "revoked" },
        { OCSP_CERT_UNKNOWN, "unknown" }, { OCSP_CERT_NONE, "none" },
    };
    /* RFC 6960 OCSPResponseStatus names; case is not part of the contract
     * (OpenSSL spells them in lower case). */
    static const struct { int st; const char *s; } rs[] = {
        { 0, "successful" }, { 1, "malformedRequest" }, { 2, "internalError" },
        { 3, "tryLater" }, { 5, "sigRequired" }, { 6, "unauthorized" },
    };
    static const int odd[] = { 4, 7, -1, 1000 };
    apr_pool_t *p;
    size_t i;
    const char *s;

    apr_pool_create(&p, g_pool);
    for (i = 0; i < sizeof(cs) / sizeof(cs[0]); ++i) {
        s = ocsp_cert_status_str(cs[i].st);
        check(s != NULL && strcmp(s, cs[i].s) == 0,
              apr_psprintf(p, "ocsp_cert_status_str(%d) is \"%s\"",
                           (int)cs[i].st, cs[i].s),
              "got \"%s\"", nz(s));
    }
    s = ocsp_cert_status_str((ocsp_cert_status)42);
    check(nonempty(s), "ocsp_cert_status_str(42) is a non-empty string",
          "got %s", s ? "\"\"" : "NULL");
    for (i = 0; i < sizeof(rs) / sizeof(rs[0]); ++i) {
        s = ocsp_resp_status_str(rs[i].st);
        check(s != NULL && strcasecmp(s, rs[i].s) == 0,
              apr_psprintf(p, "ocsp_resp_status_str(%d) is \"%s\"", rs[i].st,
                           rs[i].s),
              "got \"%s\"", nz(s));
    }
    for (i = 0; i < sizeof(odd) / sizeof(odd[0]); ++i) {
        s = ocsp_resp_status_str(odd[i]);
        check(nonempty(s),
              apr_psprintf(p, "ocsp_resp_status_str(%d) (unassigned) is a "
                           "non-empty string", odd[i]),
              "got %s", s ? "\"\"" : "NULL");
    }
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* ocsp_cert_parse and accessors                                            */
/* ------------------------------------------------------------------------ */

/* The serial as `openssl x509 -serial` prints it. */
static const char *openssl_serial(X509 *x, apr_pool_t *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *s;

    i2a_ASN1_INTEGER(bio, X509_get0_serialNumber(x));
    n = BIO_get_mem_data(bio, &data);
    s = apr_pstrmemdup(p, data, (apr_size_t)n);
    BIO_free(bio);
    return s;
}

static void check_urls(const char *name, const ocsp_cert *c, X509 *leaf,
                       apr_pool_t *p)
{
    STACK_OF(OPENSSL_STRING) *want = X509_get1_ocsp(leaf);
    const apr_array_header_t *got = ocsp_cert_urls(c);
    int n = want ? sk_OPENSSL_STRING_num(want) : 0;
    int i, same;

    if (check(got != NULL, apr_psprintf(p, "%s: ocsp_cert_urls is not NULL", name),
              "got NULL")) {
        same = got->nelts == n;
        for (i = 0; same && i < n; ++i) {
            same = strcmp(APR_ARRAY_IDX(got, i, const char *),
                          sk_OPENSSL_STRING_value(want, i)) == 0;
        }
        check(same,
              apr_psprintf(p, "%s: %d AIA OCSP URL(s), as in the certificate "
                           "and in its order", name, n),
              "got %d URL(s): %s%s%s; certificate has %d: %s%s%s", got->nelts,
              got->nelts > 0 ? APR_ARRAY_IDX(got, 0, const char *) : "",
              got->nelts > 1 ? " " : "",
              got->nelts > 1 ? APR_ARRAY_IDX(got, 1, const char *) : "",
              n, n > 0 ? sk_OPENSSL_STRING_value(want, 0) : "",
              n > 1 ? " " : "", n > 1 ? sk_OPENSSL_STRING_value(want, 1) : "");
    }
    X509_email_free(want);
}

static void test_parse(void)
{
    apr_pool_t *p, *sub;
    ocsp_cert *c;
    const char *err, *pem, *s, *want;
    const apr_array_header_t *urls;
    apr_status_t rv;
    X509 *leaf;
    char *copy;
    size_t len;

    apr_pool_create(&p, g_pool);

    /* rsa and ecdsa leaves */
    {
        static const char *const names[] = { "rsa", "ecdsa" };
        size_t i;
        for (i = 0; i < 2; ++i) {
            const char *name = names[i];
            c = NULL;
            err = NULL;
            pem = leaf_pem(name, 1, p);
            rv = ocsp_cert_parse(&c, pem, strlen(pem), &err, p);
            if (!check(rv == APR_SUCCESS && c != NULL,
                       apr_psprintf(p, "ocsp_cert_parse(%s + issuer) succeeds", name),
                       "%s", res(rv, err, p))) {
                continue;
            }
            leaf = x509(apr_pstrcat(p, name, ".pem", NULL), p);
            s = ocsp_cert_subject(c);
            want = apr_pstrcat(p, "CN=", name, ".test", NULL);
            check(contains(s, want),
                  apr_psprintf(p, "%s: subject contains %s", name, want),
                  "subject is \"%s\"", nz(s));
            s = ocsp_cert_serial(c);
            want = openssl_serial(leaf, p);
            check(s != NULL && strcasecmp(s, want) == 0,
                  apr_psprintf(p, "%s: serial is %s (openssl x509 -serial)",
                               name, want),
                  "serial is \"%s\"", nz(s));
            check_urls(name, c, leaf, p);
        }
    }

    c = cert("rsa", p);
    urls = ocsp_cert_urls(c);
    check(urls && urls->nelts == 1
          && ends_with(APR_ARRAY_IDX(urls, 0, const char *), "/good"),
          "rsa: the one URL ends with /good",
          "urls: %d, first %s", urls ? urls->nelts : -1,
          urls && urls->nelts ? APR_ARRAY_IDX(urls, 0, const char *) : "-");

    c = cert("twourls", p);
    check_urls("twourls", c, x509("twourls.pem", p), p);
    urls = ocsp_cert_urls(c);
    check(urls && urls->nelts == 2
          && ends_with(APR_ARRAY_IDX(urls, 0, const char *), "/dead")
          && ends_with(APR_ARRAY_IDX(urls, 1, const char *), "/good"),
          "twourls: /dead first, /good second",
          "urls: %d: %s %s", urls ? urls->nelts : -1,
          urls && urls->nelts > 0 ? APR_ARRAY_IDX(urls, 0, const char *) : "-",
          urls && urls->nelts > 1 ? APR_ARRAY_IDX(urls, 1, const char *) : "-");

    c = cert("noaia", p);
    urls = ocsp_cert_urls(c);
    check(urls != NULL && urls->nelts == 0, "noaia: empty URL array",
          "urls %s, nelts %d", urls ? "set" : "NULL", urls ? urls->nelts : -1);

    /* Further certificates after the issuer are ignored. */
    c = NULL;
    err = NULL;
    {
        unsigned char *root;
        apr_size_t root_len;
        if (!slurp(pki_path("root.crt", p), &root, &root_len, p)) {
            bail("cannot read root.crt");
        }
        pem = apr_pstrcat(p, leaf_pem("rsa", 1, p), (const char *)root, NULL);
    }
    rv = ocsp_cert_parse(&c, pem, strlen(pem), &err, p);
    check(rv == APR_SUCCESS && c && contains(ocsp_cert_subject(c), "CN=rsa.test"),
          "leaf + issuer + root: parses, the leaf is the first certificate",
          "%s subject %s", res(rv, err, p), c ? nz(ocsp_cert_subject(c)) : "-");

    /* The text need not be NUL-terminated: an exact-size heap copy (valgrind
     * reports any read past pem_len). */
    pem = leaf_pem("ecdsa", 1, p);
    len = strlen(pem);
    copy = malloc(len);
    if (copy == NULL) {
        bail("out of memory");
    }
    memcpy(copy, pem, len);
    c = NULL;
    err = NULL;
    rv = ocsp_cert_parse(&c, copy, len, &err, p);
    free(copy);
    check(rv == APR_SUCCESS && c != NULL,
          "parse of a PEM buffer without terminating NUL succeeds",
          "%s", res(rv, err, p));

    /* The certificates stay usable until their pool goes: parse in a
     * sub-pool and destroy it (valgrind: nothing leaks). */
    apr_pool_create(&sub, p);
    c = cert("sni2", sub);
    s = apr_pstrdup(p, nz(ocsp_cert_subject(c)));
    apr_pool_destroy(sub);
    check(contains(s, "CN=sni2.test"), "parse in a sub-pool, then destroy it",
          "subject was %s", s);

    /* Errors */
    {
        static const char junk[] = "this is not PEM at all\n\x01\x02\xff";
        static const char badpem[] = "-----BEGIN CERTIFICATE-----\n"
                                     "QUJDREVGR0g=\n-----END CERTIFICATE-----\n";
        struct { const char *desc; const char *text; size_t len; } bad[5];
        size_t i;

        bad[0].desc = "empty text";
        bad[0].text = "";
        bad[0].len = 0;
        bad[1].desc = "garbage";
        bad[1].text = junk;
        bad[1].len = sizeof(junk) - 1;
        bad[2].desc = "PEM armour around a non-certificate";
        bad[2].text = badpem;
        bad[2].len = sizeof(badpem) - 1;
        bad[3].desc = "leaf without issuer";
        bad[3].text = leaf_pem("rsa", 0, p);
        bad[3].len = strlen(bad[3].text);
        /* leaf + issuer, but pem_len stops after the leaf */
        bad[4].desc = "leaf + issuer with pem_len covering the leaf only";
        bad[4].text = leaf_pem("rsa", 1, p);
        bad[4].len = strlen(leaf_pem("rsa", 0, p));

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
            c = NULL;
            err = NULL;
            rv = ocsp_cert_parse(&c, bad[i].text, bad[i].len, &err, p);
            check(rv != APR_SUCCESS && nonempty(err),
                  apr_psprintf(p, "ocsp_cert_parse(%s) fails with a reason",
                               bad[i].desc),
                  "%s", res(rv, err, p));
        }
        c = NULL;
        rv = ocsp_cert_parse(&c, junk, sizeof(junk) - 1, NULL, p);
        check(rv != APR_SUCCESS, "ocsp_cert_parse(garbage, perr = NULL) fails",
              "%s", res(rv, NULL, p));
    }

    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* ocsp_request_build                                                       */
/* ------------------------------------------------------------------------ */

static void test_request(void)
{
    static const char *const names[] = { "rsa", "ecdsa" };
    apr_pool_t *p;
    size_t i;

    apr_pool_create(&p, g_pool);
    for (i = 0; i < 2; ++i) {
        const char *name = names[i];
        ocsp_cert *c = cert(name, p);
        X509 *leaf = x509(apr_pstrcat(p, name, ".pem", NULL), p);
        X509 *issuer = x509("intermediate.crt", p);
        unsigned char *der = NULL;
        apr_size_t len = 0;
        const unsigned char *q;
        OCSP_REQUEST *req;
        OCSP_CERTID *want;
        OCSP_ONEREQ *one;
        apr_status_t rv;

        rv = ocsp_request_build(&der, &len, c, p);
        if (!check(rv == APR_SUCCESS && der != NULL && len > 0,
                   apr_psprintf(p, "%s: ocsp_request_build succeeds", name),
                   "%s, len %lu", res(rv, NULL, p), (unsigned long)len)) {
            continue;
        }
        q = der;
        req = d2i_OCSP_REQUEST(NULL, &q, (long)len);
        if (!check(req != NULL && q == der + len,
                   apr_psprintf(p, "%s: request is one DER OCSPRequest", name),
                   "d2i_OCSP_REQUEST %s, %ld of %lu bytes used",
                   req ? "ok" : "failed", (long)(q - der), (unsigned long)len)) {
            OCSP_REQUEST_free(req);
            continue;
        }
        check(OCSP_request_onereq_count(req) == 1,
              apr_psprintf(p, "%s: exactly one CertID", name),
              "%d requests", OCSP_request_onereq_count(req));
        want = OCSP_cert_to_id(NULL, leaf, issuer);
        one = OCSP_request_onereq_count(req) >= 1
              ? OCSP_request_onereq_get0(req, 0) : NULL;
        check(one != NULL && want != NULL
              && OCSP_id_cmp(OCSP_onereq_get0_id(one), want) == 0,
              apr_psprintf(p, "%s: CertID is OCSP_cert_to_id(NULL, leaf, issuer)",
                           name),
              "CertID differs (hash algorithm, issuer hashes or serial)");
        check(OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) < 0
              && (one == NULL
                  || OCSP_ONEREQ_get_ext_by_NID(one, NID_id_pkix_OCSP_Nonce, -1) < 0),
              apr_psprintf(p, "%s: no nonce extension", name), "nonce present");
        check(!OCSP_request_is_signed(req),
              apr_psprintf(p, "%s: request is unsigned", name), "signed");
        OCSP_CERTID_free(want);
        OCSP_REQUEST_free(req);
    }
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* ocsp_response_verify on saved responses                                  */
/* ------------------------------------------------------------------------ */

static apr_status_t verify(ocsp_verdict *v, const ocsp_cert *c,
                           const char *fx, apr_time_t now, const char **perr,
                           apr_pool_t *p)
{
    unsigned char *der;
    apr_size_t len;
    fixture(fx, &der, &len, p);
    poison(v);
    *perr = NULL;
    return ocsp_response_verify(v, c, der, len, now, perr, p);
}

/* Fixture fx checked against leaf name must fail with OCSP_EVERIFY. */
static void expect_everify(const char *fx, const char *name, const char *why,
                           apr_pool_t *p)
{
    ocsp_verdict v;
    const char *err;
    apr_status_t rv = verify(&v, cert(name, p), fx, apr_time_now(), &err, p);
    check(rv == OCSP_EVERIFY && nonempty(err),
          apr_psprintf(p, "verify %s.der vs %s (%s): OCSP_EVERIFY with a reason",
                       fx, name, why),
          "%s", res(rv, err, p));
    if (rv == OCSP_EVERIFY && nonempty(err)) {
        diag("  reason: %s", err);
    }
}

/* Fixture fx (or bytes) must be refused: not success, not responder error. */
static void expect_refused(const char *desc, const ocsp_cert *c,
                           const unsigned char *der, apr_size_t len,
                           apr_pool_t *p)
{
    ocsp_verdict v;
    const char *err = NULL;
    apr_status_t rv;
    poison(&v);
    rv = ocsp_response_verify(&v, c, der, len, apr_time_now(), &err, p);
    check(is_failure(rv, err), desc, "%s", res(rv, err, p));
}

/* Certificates of one CA parsed with one ocsp_issuers share its
 * certificate (the registry's 10,000 leaves of one CA): both still verify
 * their own responses, also after the second parse dropped its copy, and
 * nothing leaks when the pool goes (valgrind). */
static void test_shared_issuers(void)
{
    apr_pool_t *p;
    ocsp_issuers *issuers;
    ocsp_cert *rsa = NULL, *ecdsa = NULL;
    ocsp_verdict v;
    const char *err = NULL, *pem;
    apr_status_t rv1, rv2;

    apr_pool_create(&p, g_pool);
    issuers = ocsp_issuers_make(p);
    pem = leaf_pem("rsa", 1, p);
    rv1 = ocsp_cert_parse_shared(&rsa, pem, strlen(pem), issuers, &err, p);
    pem = leaf_pem("ecdsa", 1, p);
    rv2 = ocsp_cert_parse_shared(&ecdsa, pem, strlen(pem), issuers, &err, p);
    check(rv1 == APR_SUCCESS && rv2 == APR_SUCCESS && rsa && ecdsa,
          "ocsp_cert_parse_shared: two leaves of one CA parse",
          "%s", res(rv2, err, p));
    if (rsa && ecdsa) {
        rv1 = verify(&v, rsa, "good", apr_time_now(), &err, p);
        check(rv1 == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
              "shared issuer: good.der verifies against rsa", "%s",
              res(rv1, err, p));
        rv2 = verify(&v, ecdsa, "ecdsa", apr_time_now(), &err, p);
        check(rv2 == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
              "shared issuer: ecdsa.der verifies against ecdsa", "%s",
              res(rv2, err, p));
        check(!strcmp(ocsp_cert_subject(ecdsa), "CN=ecdsa.test")
              && ocsp_cert_urls(ecdsa)->nelts == 1,
              "the leaf's names and URLs outlive the leaf itself",
              "subject %s", ocsp_cert_subject(ecdsa));
    }
    /* A third time: the issuer's text is known, it is not parsed again. */
    rsa = NULL;
    pem = leaf_pem("rsa", 1, p);
    rv1 = ocsp_cert_parse_shared(&rsa, pem, strlen(pem), issuers, &err, p);
    rv1 = rv1 == APR_SUCCESS ? verify(&v, rsa, "good", apr_time_now(), &err, p)
                             : rv1;
    check(rv1 == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
          "issuer known by its text: good.der still verifies", "%s",
          res(rv1, err, p));
    apr_pool_destroy(p);
}

/* ocsp_cert_parse_shared parses leaves in a context without algorithms
 * (their public key is never decoded: the start-up cost of 10,000 leaves
 * under OpenSSL 3.0), falling back to the plain parse when that fails.
 * Whatever the path, the result must be the plain parse's: the same names,
 * URLs, Must-Staple flag and request (CertID) bytes, and for text that does
 * not parse or whose issuer is wrong, the same failure and reason. */
static void expect_same_parse(const char *desc, const char *pem,
                              apr_size_t len, ocsp_issuers *issuers,
                              apr_pool_t *p)
{
    ocsp_cert *a = NULL, *b = NULL;
    const char *ea = NULL, *eb = NULL;
    unsigned char *ra = NULL, *rb = NULL;
    apr_size_t la = 0, lb = 0;
    apr_status_t rva = ocsp_cert_parse(&a, pem, len, &ea, p);
    apr_status_t rvb = ocsp_cert_parse_shared(&b, pem, len, issuers, &eb, p);

    if (rva != APR_SUCCESS || rvb != APR_SUCCESS) {
        check(rva == rvb && !a && !b && ea && eb && !strcmp(ea, eb),
              apr_psprintf(p, "shared parse of %s: fails as the plain one",
                           desc),
              "plain %s; shared %s", res(rva, ea, p), res(rvb, eb, p));
        return;
    }
    check(ocsp_request_build(&ra, &la, a, p) == APR_SUCCESS
          && ocsp_request_build(&rb, &lb, b, p) == APR_SUCCESS
          && la == lb && !memcmp(ra, rb, la),
          apr_psprintf(p, "shared parse of %s: the same CertID (request)",
                       desc), "lengths %d %d", (int)la, (int)lb);
    check(!strcmp(ocsp_cert_subject(a), ocsp_cert_subject(b))
          && !strcmp(ocsp_cert_serial(a), ocsp_cert_serial(b))
          && ocsp_cert_must_staple(a) == ocsp_cert_must_staple(b)
          && ocsp_cert_urls(a)->nelts == ocsp_cert_urls(b)->nelts
          && ocsp_cert_unusable_urls(a)->nelts
             == ocsp_cert_unusable_urls(b)->nelts,
          apr_psprintf(p, "shared parse of %s: the same names, serial, URLs, "
                       "Must-Staple", desc),
          "subjects %s / %s", ocsp_cert_subject(a), ocsp_cert_subject(b));
    if (ocsp_cert_urls(a)->nelts && ocsp_cert_urls(b)->nelts) {
        check(!strcmp(APR_ARRAY_IDX(ocsp_cert_urls(a), 0, const char *),
                      APR_ARRAY_IDX(ocsp_cert_urls(b), 0, const char *)),
              apr_psprintf(p, "shared parse of %s: the same first URL", desc),
              "%s", "");
    }
}

static void test_shared_parse_same(void)
{
    static const char *const leaves[] = { "rsa", "ecdsa", "sni2", "twourls",
        "noaia", "muststaple", "muststaple_off", "revoked", "forced" };
    apr_pool_t *p;
    ocsp_issuers *issuers;
    unsigned char *root;
    apr_size_t root_len, i;
    const char *pem, *leaf;
    int pass;

    apr_pool_create(&p, g_pool);
    issuers = ocsp_issuers_make(p);
    if (!slurp(pki_path("root.crt", p), &root, &root_len, p)) {
        bail("cannot read root.crt");
    }
    /* Twice: the second time every issuer is known by its text. */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
            pem = leaf_pem(leaves[i], 1, p);
            expect_same_parse(leaves[i], pem, strlen(pem), issuers, p);
        }
    }
    /* Failures: no issuer, a wrong issuer (the root did not issue the
     * leaf), text that is no certificate. */
    leaf = leaf_pem("rsa", 0, p);
    expect_same_parse("a leaf alone", leaf, strlen(leaf), issuers, p);
    pem = apr_pstrcat(p, leaf, (const char *)root, NULL);
    expect_same_parse("a leaf with the wrong issuer", pem, strlen(pem),
                      issuers, p);
    pem = "-----BEGIN CERTIFICATE-----\nQUJDREVGR0g=\n"
          "-----END CERTIFICATE-----\n";
    expect_same_parse("armour around no certificate", pem, strlen(pem),
                      issuers, p);
    /* And a good one after the failures: nothing left behind. */
    pem = leaf_pem("ecdsa", 1, p);
    expect_same_parse("ecdsa after failures", pem, strlen(pem), issuers, p);
    apr_pool_destroy(p);
}

static void test_verify(void)
{
    apr_pool_t *p;
    ocsp_cert *rsa, *sni2;
    X509 *issuer;
    ocsp_verdict v;
    const char *err;
    apr_status_t rv;
    apr_time_t now = apr_time_now();
    unsigned char *der;
    apr_size_t len;
    expected e;

    apr_pool_create(&p, g_pool);
    rsa = cert("rsa", p);
    sni2 = cert("sni2", p);
    issuer = x509("intermediate.crt", p);

    /* good.der: every field */
    fixture("good", &der, &len, p);
    e = expect(der, len, x509("rsa.pem", p), issuer);
    rv = verify(&v, rsa, "good", now, &err, p);
    if (check(rv == APR_SUCCESS, "verify good.der vs rsa: APR_SUCCESS",
              "%s", res(rv, err, p))) {
        check(v.resp_status == 0 && v.cert_status == OCSP_CERT_GOOD,
              "good.der: resp_status 0, GOOD", "%s", verdict_str(&v, p));
        check(v.this_update == e.this_update && v.this_update <= now,
              "good.der: this_update is thisUpdate, not after now",
              "%s; thisUpdate %" APR_TIME_T_FMT " now %" APR_TIME_T_FMT,
              verdict_str(&v, p), e.this_update, now);
        check(v.next_update == e.next_update && v.next_update > now,
              "good.der: next_update is nextUpdate, after now",
              "%s; nextUpdate %" APR_TIME_T_FMT, verdict_str(&v, p),
              e.next_update);
        check(v.expires == v.next_update, "good.der: expires == next_update",
              "%s", verdict_str(&v, p));
        check(v.revoke_reason == -1, "good.der: revoke_reason -1",
              "%s", verdict_str(&v, p));
    }
    fixture("good", &der, &len, p);
    rv = ocsp_response_verify(&v, rsa, der, len, now, NULL, p);
    check(rv == APR_SUCCESS, "verify good.der with perr = NULL",
          "%s", res(rv, NULL, p));

    /* ecdsa */
    rv = verify(&v, cert("ecdsa", p), "ecdsa", now, &err, p);
    check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
          "verify ecdsa.der vs ecdsa: APR_SUCCESS, GOOD", "%s %s",
          res(rv, err, p), verdict_str(&v, p));

    /* revoked */
    fixture("revoked", &der, &len, p);
    e = expect(der, len, x509("revoked.pem", p), issuer);
    rv = verify(&v, cert("revoked", p), "revoked", now, &err, p);
    if (check(rv == APR_SUCCESS, "verify revoked.der vs revoked: APR_SUCCESS",
              "%s", res(rv, err, p))) {
        check(v.cert_status == OCSP_CERT_REVOKED, "revoked.der: REVOKED",
              "%s", verdict_str(&v, p));
        check(v.revoked_at == e.revoked_at && e.revoked_at > 0,
              "revoked.der: revoked_at is revocationTime",
              "%s; revocationTime %" APR_TIME_T_FMT, verdict_str(&v, p),
              e.revoked_at);
        check(v.revoke_reason == OCSP_REVOKED_STATUS_KEYCOMPROMISE,
              "revoked.der: revoke_reason keyCompromise (1)",
              "%s", verdict_str(&v, p));
        check(v.expires == e.next_update, "revoked.der: expires == nextUpdate",
              "%s", verdict_str(&v, p));
    }

    /* unknown */
    rv = verify(&v, cert("noaia", p), "unknown", now, &err, p);
    check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_UNKNOWN,
          "verify unknown.der vs noaia: APR_SUCCESS, UNKNOWN",
          "%s %s", res(rv, err, p), verdict_str(&v, p));

    /* no nextUpdate: valid OCSP_NO_NEXT_UPDATE_MAX_AGE from thisUpdate */
    rv = verify(&v, rsa, "nonext", now, &err, p);
    if (check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
              "verify nonext.der (no nextUpdate) vs rsa: APR_SUCCESS, GOOD",
              "%s %s", res(rv, err, p), verdict_str(&v, p))) {
        apr_time_t too_old = v.this_update + OCSP_NO_NEXT_UPDATE_MAX_AGE;

        check(v.next_update == 0, "nonext.der: next_update 0",
              "%s", verdict_str(&v, p));
        check(v.expires == too_old,
              "nonext.der: expires == thisUpdate + OCSP_NO_NEXT_UPDATE_MAX_AGE",
              "%s; now %" APR_TIME_T_FMT, verdict_str(&v, p), now);
        /* Read again later it does not get younger: refused at its age. */
        rv = verify(&v, rsa, "nonext", too_old, &err, p);
        check(rv == OCSP_EVERIFY && err && strstr(err, "maximum age"),
              "nonext.der at thisUpdate + max age: refused for its age",
              "%s", res(rv, err, p));
    }

    /* delegated responder */
    rv = verify(&v, cert("delegated", p), "delegated", now, &err, p);
    check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
          "verify delegated.der (ocsp-signer, OCSPSigning EKU) vs delegated: "
          "APR_SUCCESS, GOOD", "%s %s", res(rv, err, p), verdict_str(&v, p));

    /* wrong signers, wrong certificate */
    expect_everify("delegated-noeku", "delegated", "signer lacks OCSPSigning", p);
    expect_everify("wrongsigner", "rsa", "signed by an unrelated cert", p);
    expect_everify("rootsigned", "rsa", "signed by the root, not the issuer", p);
    expect_everify("badsig", "rsa", "corrupt signature", p);
    expect_everify("wrongserial", "rsa", "answer for sni2", p);
    rv = verify(&v, sni2, "wrongserial", now, &err, p);
    check(rv == APR_SUCCESS, "control: wrongserial.der vs sni2: APR_SUCCESS",
          "%s", res(rv, err, p));
    expect_everify("good", "sni2", "answer for rsa", p);

    /* validity window */
    fixture("good", &der, &len, p);
    e = expect(der, len, x509("rsa.pem", p), issuer);
    {
        static const struct {
            const char *desc;
            int base_next;           /* relative to nextUpdate, else thisUpdate */
            apr_interval_time_t off;
            int ok;
        } w[] = {
            { "now = nextUpdate + 1 h: expired", 1, apr_time_from_sec(3600), 0 },
            { "now = nextUpdate + 1 s: expired", 1, apr_time_from_sec(1), 0 },
            { "now = nextUpdate - 1 min: valid", 1, -apr_time_from_sec(60), 1 },
            { "now = thisUpdate: valid", 0, 0, 1 },
            { "now = thisUpdate - 1 min: within the clock skew", 0,
              -apr_time_from_sec(60), 1 },
            { "now = thisUpdate - 4 min: within the clock skew", 0,
              -apr_time_from_sec(4 * 60), 1 },
            { "now = thisUpdate - 6 min: beyond the clock skew", 0,
              -apr_time_from_sec(6 * 60), 0 },
            { "now = thisUpdate - 1 h: in the future", 0,
              -apr_time_from_sec(3600), 0 },
        };
        size_t i;
        for (i = 0; i < sizeof(w) / sizeof(w[0]); ++i) {
            apr_time_t t = (w[i].base_next ? e.next_update : e.this_update)
                           + w[i].off;
            rv = verify(&v, rsa, "good", t, &err, p);
            check(w[i].ok ? rv == APR_SUCCESS : is_failure(rv, err),
                  apr_psprintf(p, "verify good.der, %s -> %s", w[i].desc,
                               w[i].ok ? "APR_SUCCESS" : "failure with reason"),
                  "%s", res(rv, err, p));
        }
    }

    /* responder errors */
    rv = verify(&v, rsa, "trylater", now, &err, p);
    check(rv == OCSP_ERESPONDER, "verify trylater.der: OCSP_ERESPONDER",
          "%s", res(rv, err, p));
    check(rv == OCSP_ERESPONDER && v.resp_status == 3
          && v.cert_status == OCSP_CERT_NONE && v.this_update == 0,
          "trylater.der: resp_status 3, cert_status NONE, this_update 0",
          "%s", verdict_str(&v, p));
    rv = verify(&v, rsa, "internalerror", now, &err, p);
    check(rv == OCSP_ERESPONDER && v.resp_status == 2
          && v.cert_status == OCSP_CERT_NONE,
          "verify internalerror.der: OCSP_ERESPONDER, resp_status 2, NONE",
          "%s %s", res(rv, err, p), verdict_str(&v, p));
    rv = verify(&v, rsa, "nobody", now, &err, p);
    check(is_failure(rv, err),
          "verify nobody.der (successful, no responseBytes): failure with reason",
          "%s", res(rv, err, p));

    /* malformed input */
    {
        static const char *const junk[] = { "garbage", "empty", "truncated" };
        size_t i;
        for (i = 0; i < 3; ++i) {
            fixture(junk[i], &der, &len, p);
            expect_refused(apr_psprintf(p, "verify %s.der: failure with reason",
                                        junk[i]), rsa, der, len, p);
        }
        fixture("garbage", &der, &len, p);
        rv = ocsp_response_verify(&v, rsa, der, len, now, NULL, p);
        check(rv != APR_SUCCESS && rv != OCSP_ERESPONDER,
              "verify garbage.der with perr = NULL: failure",
              "%s", res(rv, NULL, p));
    }

    /* Every prefix of good.der is refused; every one-byte corruption either
     * fails, or still says GOOD for rsa (not seen in practice), or is a
     * responder error (the corrupted byte is the OCSPResponseStatus). Under
     * valgrind this also shows no invalid read on malformed input. */
    {
        apr_pool_t *it;
        apr_size_t i, bad_prefix = 0, bad_flip = 0, first_prefix = 0,
                   first_flip = 0;
        fixture("good", &der, &len, p);
        apr_pool_create(&it, p);
        for (i = 0; i < len; ++i) {
            unsigned char *cut = apr_pmemdup(it, der, i ? i : 1);
            err = NULL;
            rv = ocsp_response_verify(&v, rsa, cut, i, now, &err, it);
            if (!is_failure(rv, err) && bad_prefix++ == 0) {
                first_prefix = i;
            }
            apr_pool_clear(it);
        }
        check(bad_prefix == 0, "verify refuses every proper prefix of good.der",
              "%lu prefixes not refused with a reason, first of length %lu",
              (unsigned long)bad_prefix, (unsigned long)first_prefix);
        for (i = 0; i < len; ++i) {
            unsigned char *m = apr_pmemdup(it, der, len);
            m[i] ^= 0xff;
            err = NULL;
            poison(&v);
            rv = ocsp_response_verify(&v, rsa, m, len, now, &err, it);
            if (!(is_failure(rv, err)
                  || (rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD)
                  || (rv == OCSP_ERESPONDER && v.resp_status != 0
                      && v.cert_status == OCSP_CERT_NONE))
                && bad_flip++ == 0) {
                first_flip = i;
            }
            apr_pool_clear(it);
        }
        check(bad_flip == 0, "verify on every one-byte corruption of good.der: "
              "failure, still GOOD, or a responder error",
              "%lu corruptions gave something else, first at byte %lu",
              (unsigned long)bad_flip, (unsigned long)first_flip);
        apr_pool_destroy(it);
    }

    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* RFC 5019 GET URLs                                                        */
/* ------------------------------------------------------------------------ */

/* ocsp_http_get_url(url, n zero bytes then tail): the status, and the URL
 * or "-". */
static const char *get_url_of(apr_status_t *prv, const char *url,
                              apr_size_t zeros, const char *tail,
                              apr_pool_t *p)
{
    apr_size_t tl = strlen(tail);
    unsigned char *der = apr_pcalloc(p, zeros + tl + 1);
    const char *get = NULL;

    memcpy(der + zeros, tail, tl);
    *prv = ocsp_http_get_url(&get, url, der, zeros + tl, p);
    return get ? get : "-";
}

static void test_get_url(void)
{
    apr_pool_t *p;
    apr_status_t rv;
    const char *u, *want;
    unsigned char *req;
    apr_size_t req_len;

    apr_pool_create(&p, g_pool);
    /* fb ff bf ff: base64 "+/+//w==", each of the three escaped */
    u = get_url_of(&rv, "http://ocsp.example/ca1", 0, "\xfb\xff\xbf\xff", p);
    want = "http://ocsp.example/ca1/%2B%2F%2B%2F%2Fw%3D%3D";
    check(rv == APR_SUCCESS && strcmp(u, want) == 0,
          "GET URL: '+', '/', '=' percent-encoded, '/' between URL and request",
          "%s: %s (want %s)", rv_name(rv, p), u, want);
    u = get_url_of(&rv, "http://ocsp.example/", 0, "\xfb\xff\xbf\xff", p);
    check(rv == APR_SUCCESS
          && strcmp(u, "http://ocsp.example/%2B%2F%2B%2F%2Fw%3D%3D") == 0,
          "GET URL: no double slash after a URL ending with '/'", "%s: %s",
          rv_name(rv, p), u);
    u = get_url_of(&rv, "http://ocsp.example", 0, "\xfb\xff\xbf\xff", p);
    check(rv == APR_SUCCESS
          && strcmp(u, "http://ocsp.example/%2B%2F%2B%2F%2Fw%3D%3D") == 0,
          "GET URL: a URL without a path gets one", "%s: %s", rv_name(rv, p), u);
    /* The encoded length is always even: 254 is the longest that fits. */
    u = get_url_of(&rv, "http://o/", 187, "\x3e", p);  /* AAA...AAAD4%3D */
    check(rv == APR_SUCCESS && strlen(u) == strlen("http://o/") + 254,
          "GET URL: a request encoded in 254 bytes is sent as a GET",
          "%s: %lu bytes", rv_name(rv, p), (unsigned long)strlen(u));
    u = get_url_of(&rv, "http://o/", 187, "", p);       /* ...AA%3D%3D: 256 */
    check(rv == APR_ENOSPC && strcmp(u, "-") == 0,
          "GET URL: a request encoded in 256 bytes is not (APR_ENOSPC: POST)",
          "%s: %s", rv_name(rv, p), u);
    u = get_url_of(&rv, "http://o/", 4000, "", p);
    check(rv == APR_ENOSPC, "GET URL: a 4000-byte request is not",
          "%s", rv_name(rv, p));
    u = get_url_of(&rv, "http://o/ocsp?ca=1", 0, "\x01", p);
    check(rv == APR_EINVAL && strcmp(u, "-") == 0,
          "GET URL: none for a URL with a query (APR_EINVAL: POST)",
          "%s: %s", rv_name(rv, p), u);
    if (ocsp_request_build(&req, &req_len, cert("rsa", p), p) != APR_SUCCESS) {
        bail("ocsp_request_build(rsa) failed");
    }
    rv = ocsp_http_get_url(&u, "http://o/", req, req_len, p);
    check(rv == APR_SUCCESS,
          "GET URL: the request for a real certificate fits (RFC 5019 GET)",
          "%s for %lu DER bytes", rv_name(rv, p), (unsigned long)req_len);
    check(ocsp_http_get_refused(405) && ocsp_http_get_refused(400)
          && ocsp_http_get_refused(501) && !ocsp_http_get_refused(404)
          && !ocsp_http_get_refused(500) && !ocsp_http_get_refused(200)
          && !ocsp_http_get_refused(0),
          "HTTP 405, 400 and 501 refuse a GET; 404, 500, 200 and none do not",
          "ocsp_http_get_refused disagrees");
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* Servers inside the test                                                  */
/* ------------------------------------------------------------------------ */

/* A listening socket on 127.0.0.1, ephemeral port. */
static int listen_loopback(int *pport)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        bail("socket: %s", strerror(errno));
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || listen(fd, 16) != 0
        || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        bail("listen on 127.0.0.1: %s", strerror(errno));
    }
    *pport = ntohs(sa.sin_port);
    return fd;
}

typedef enum {
    CANNED_FIXED,   /* send resp, close */
    CANNED_DRIP,    /* send resp (headers), then one byte every 200 ms */
    CANNED_HUGE,    /* send resp (headers), then 256 KB, close */
    CANNED_NOGET,   /* 405 to a GET, resp to a POST; close */
    CANNED_KEEP     /* send resp (HTTP/1.1, Content-Length), then read the
                       next request on the same connection */
} canned_mode;

/* A one-thread HTTP server answering every connection the same scripted way
 * (set between tests), and keeping the last request it read and counts of
 * connections and requests. */
typedef struct {
    int lfd;
    int port;
    int stop[2];                  /* pipe: main -> server thread */
    pthread_t thread;
    pthread_mutex_t mu;
    canned_mode mode;             /* guarded by mu */
    char resp[8192];
    size_t resp_len;
    char req[8192];               /* last request, NUL-terminated */
    size_t req_len;
    int conns;                    /* connections accepted */
    int gets, posts;              /* requests read, by method */
} canned;

static int stop_requested(canned *s, int timeout_ms)
{
    struct pollfd pf;
    pf.fd = s->stop[0];
    pf.events = POLLIN;
    return poll(&pf, 1, timeout_ms) > 0;
}

/* Reads one HTTP request (headers and Content-Length body) into buf. */
static size_t read_request(int fd, char *buf, size_t cap)
{
    size_t got = 0, need = 0;
    char *hend = NULL;
    struct pollfd pf;

    while (got + 1 < cap) {
        ssize_t n;
        pf.fd = fd;
        pf.events = POLLIN;
        if (poll(&pf, 1, 3000) <= 0) {
            break;
        }
        n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = (size_t)(hend + 4 - buf);
            if (cl != NULL && cl < hend) {
                need += strtoul(cl + 17, NULL, 10);
            }
            if (strcasestr(buf, "\r\nexpect: 100-continue") != NULL) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (send(fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0) {
                    break;
                }
            }
        }
        if (hend != NULL && got >= need) {
            break;
        }
    }
    buf[got] = '\0';
    return got;
}

static int send_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return 0;
        }
        b += w;
        n -= (size_t)w;
    }
    return 1;
}

static const char canned_405[] = "HTTP/1.0 405 Method Not Allowed\r\n"
    "Allow: POST\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n";

/* Reads one request from fd and notes it; 0 when none came (EOF, idle). */
static size_t canned_read(canned *s, int fd, canned_mode *mode, char *resp,
                          size_t *resp_len)
{
    char req[8192];
    size_t req_len = read_request(fd, req, sizeof(req));

    pthread_mutex_lock(&s->mu);
    if (req_len) {
        memcpy(s->req, req, req_len + 1);
        s->req_len = req_len;
        s->gets += strncmp(req, "GET ", 4) == 0;
        s->posts += strncmp(req, "POST ", 5) == 0;
    }
    *mode = s->mode;
    memcpy(resp, s->resp, s->resp_len);
    *resp_len = s->resp_len;
    if (*mode == CANNED_NOGET && strncmp(req, "GET ", 4) == 0) {
        memcpy(resp, canned_405, sizeof(canned_405) - 1);
        *resp_len = sizeof(canned_405) - 1;
    }
    pthread_mutex_unlock(&s->mu);
    return req_len;
}

/* The rest of an answer for the slow and huge modes. */
static void canned_tail(canned *s, int fd, canned_mode mode)
{
    char chunk[4096];
    int i;

    if (mode == CANNED_DRIP) {
        for (i = 0; i < 100 && !stop_requested(s, 200); ++i) {
            if (!send_all(fd, "x", 1)) {
                break;
            }
        }
    }
    else if (mode == CANNED_HUGE) {
        memset(chunk, 'A', sizeof(chunk));
        for (i = 0; i < 64; ++i) {
            if (!send_all(fd, chunk, sizeof(chunk))) {
                break;
            }
        }
    }
}

/* One connection: one request, or (CANNED_KEEP) as many as come. */
static void canned_serve(canned *s, int fd)
{
    canned_mode mode;
    char resp[8192];
    size_t resp_len;

    while (canned_read(s, fd, &mode, resp, &resp_len) > 0
           && send_all(fd, resp, resp_len)) {
        if (mode != CANNED_KEEP) {
            canned_tail(s, fd, mode);
            break;
        }
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void *canned_main(void *arg)
{
    canned *s = arg;
    struct pollfd pf[2];

    for (;;) {
        int fd;

        pf[0].fd = s->lfd;
        pf[0].events = POLLIN;
        pf[1].fd = s->stop[0];
        pf[1].events = POLLIN;
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pf[1].revents) {
            break;
        }
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&s->mu);
        s->conns++;
        pthread_mutex_unlock(&s->mu);
        canned_serve(s, fd);
    }
    return NULL;
}

static void canned_start(canned *s)
{
    memset(s, 0, sizeof(*s));
    s->lfd = listen_loopback(&s->port);
    if (pipe(s->stop) != 0) {
        bail("pipe: %s", strerror(errno));
    }
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, canned_main, s) != 0) {
        bail("pthread_create failed");
    }
}

static void canned_stop(canned *s)
{
    if (write(s->stop[1], "x", 1) != 1) {
        bail("write to stop pipe: %s", strerror(errno));
    }
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
    pthread_mutex_destroy(&s->mu);
}

/* The next answer: status line + headers (+ "\r\n"), then body. */
static void canned_set(canned *s, canned_mode mode, const char *head,
                       const unsigned char *body, size_t body_len)
{
    size_t hl = strlen(head);
    pthread_mutex_lock(&s->mu);
    if (hl + body_len > sizeof(s->resp)) {
        bail("canned answer too big");
    }
    s->mode = mode;
    memcpy(s->resp, head, hl);
    if (body_len) {
        memcpy(s->resp + hl, body, body_len);
    }
    s->resp_len = hl + body_len;
    s->req[0] = '\0';
    s->req_len = 0;
    s->conns = s->gets = s->posts = 0;
    pthread_mutex_unlock(&s->mu);
}

/* "<connections> <GETs> <POSTs>" since the last canned_set. */
static const char *canned_counts(canned *s, apr_pool_t *p)
{
    const char *c;
    pthread_mutex_lock(&s->mu);
    c = apr_psprintf(p, "%d %d %d", s->conns, s->gets, s->posts);
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* 200 application/ocsp-response with body. */
static void canned_ocsp(canned *s, const unsigned char *body, size_t len,
                        apr_pool_t *p)
{
    canned_set(s, CANNED_FIXED,
               apr_psprintf(p, "HTTP/1.0 200 OK\r\n"
                            "Content-Type: application/ocsp-response\r\n"
                            "Content-Length: %lu\r\nConnection: close\r\n\r\n",
                            (unsigned long)len), body, len);
}

static const char *canned_req(canned *s, apr_pool_t *p)
{
    const char *r;
    pthread_mutex_lock(&s->mu);
    r = apr_pstrmemdup(p, s->req, s->req_len);
    pthread_mutex_unlock(&s->mu);
    return r;
}

static apr_size_t canned_req_len(canned *s)
{
    apr_size_t n;
    pthread_mutex_lock(&s->mu);
    n = s->req_len;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* ocsp_http_post and ocsp_fetch                                            */
/* ------------------------------------------------------------------------ */

static ocsp_http_opts opts_of(apr_interval_time_t timeout, apr_size_t max_size)
{
    ocsp_http_opts o;
    memset(&o, 0, sizeof(o));
    o.timeout = timeout;
    o.max_size = max_size;
    o.proxy = NULL;
    return o;
}

/* ocsp_fetch of rsa from url: the status. */
static apr_status_t fetch_one(const ocsp_cert *rsa, const char *url,
                              const ocsp_http_opts *o, const char **perr,
                              apr_pool_t *p)
{
    apr_array_header_t *urls = apr_array_make(p, 1, sizeof(const char *));
    ocsp_answer *a = NULL;

    APR_ARRAY_PUSH(urls, const char *) = url;
    return ocsp_fetch(&a, rsa, urls, o, perr, p);
}

/* GET or POST, the fallback from a refused GET, connections kept open. */
static void test_methods(canned *srv, const ocsp_cert *rsa,
                         const unsigned char *req, apr_size_t req_len,
                         apr_pool_t *p)
{
    const char *url = apr_psprintf(p, "http://127.0.0.1:%d/ocsp", srv->port);
    const char *get = NULL, *err = NULL, *r, *head, *line;
    ocsp_http_opts o = opts_of(apr_time_from_sec(10), 0);
    unsigned char *fx;
    apr_size_t fx_len;
    apr_status_t rv;
    ocsp_job jobs[3];
    apr_array_header_t *urls = apr_array_make(p, 1, sizeof(const char *));
    int i, ok = 1, refused = 0;

    fixture("good", &fx, &fx_len, p);
    canned_ocsp(srv, fx, fx_len, p);
    ocsp_http_get_url(&get, url, req, req_len, p);
    line = get ? apr_pstrcat(p, "GET ", strchr(get + 7, '/'), " HTTP/1.",
                             NULL) : "(no GET URL)";
    rv = fetch_one(rsa, url, &o, &err, p);
    r = canned_req(srv, p);
    check(rv == APR_SUCCESS && strncmp(r, line, strlen(line)) == 0,
          "ocsp_fetch sends GET /ocsp/<url-encoded base64 request>",
          "%s; request starts: %.200s; want %s", res(rv, err, p), r, line);

    canned_ocsp(srv, fx, fx_len, p);
    o.use_post = 1;
    rv = fetch_one(rsa, url, &o, &err, p);
    r = canned_req(srv, p);
    check(rv == APR_SUCCESS && strncmp(r, "POST /ocsp HTTP/1.", 18) == 0,
          "ocsp_fetch with opts.use_post sends POST /ocsp",
          "%s; request starts: %.60s", res(rv, err, p), r);
    o.use_post = 0;

    /* A responder answering 405 to GET: 3 certificates, 1 GET, 3 POSTs. */
    head = apr_psprintf(p, "HTTP/1.0 200 OK\r\nContent-Type: "
                        "application/ocsp-response\r\nContent-Length: %lu"
                        "\r\n\r\n", (unsigned long)fx_len);
    canned_set(srv, CANNED_NOGET, head, fx, fx_len);
    APR_ARRAY_PUSH(urls, const char *) = url;
    for (i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].cert = rsa;
        jobs[i].urls = urls;
        jobs[i].opts = &o;
    }
    ocsp_fetch_batch(jobs, 3, 16, NULL, NULL, p);
    for (i = 0; i < 3; i++) {
        ok &= jobs[i].rv == APR_SUCCESS && jobs[i].answer && !jobs[i].err;
        refused += jobs[i].get_refused_url != NULL;
        if (jobs[i].get_refused_url) {
            ok &= strcmp(jobs[i].get_refused_url, url) == 0
                  && jobs[i].get_refused_status == 405;
        }
    }
    check(ok && refused == 1 && strcmp(canned_counts(srv, p), "4 1 3") == 0,
          "a batch of 3 against a responder refusing GET (405): all verified, "
          "one GET (alone), then POSTs only; the job whose GET was refused "
          "says by which URL and with which status",
          "connections, GETs, POSTs: %s; jobs saying refused: %d; first job %s",
          canned_counts(srv, p), refused, res(jobs[0].rv, jobs[0].err, p));

    /* HTTP/1.1 keep-alive: the connection outlives the fetch. */
    canned_set(srv, CANNED_KEEP, apr_psprintf(p, "HTTP/1.1 200 OK\r\n"
               "Content-Type: application/ocsp-response\r\n"
               "Content-Length: %lu\r\n\r\n", (unsigned long)fx_len),
               fx, fx_len);
    rv = fetch_one(rsa, url, &o, &err, p);
    if (rv == APR_SUCCESS) {
        rv = fetch_one(rsa, url, &o, &err, p);
    }
    check(rv == APR_SUCCESS && strcmp(canned_counts(srv, p), "1 2 0") == 0,
          "two fetches one after the other from a keep-alive responder: "
          "one connection", "%s; connections, GETs, POSTs: %s",
          res(rv, err, p), canned_counts(srv, p));
    ocsp_fetch_connections_close();
    rv = fetch_one(rsa, url, &o, &err, p);
    check(rv == APR_SUCCESS && strcmp(canned_counts(srv, p), "2 3 0") == 0,
          "after ocsp_fetch_connections_close: a new connection",
          "%s; connections, GETs, POSTs: %s", res(rv, err, p),
          canned_counts(srv, p));
    ocsp_fetch_connections_close();     /* the server sees it end */
}

static void test_http(void)
{
    apr_pool_t *p;
    ocsp_cert *rsa;
    unsigned char *req, *body;
    apr_size_t req_len, body_len, good_len = 0;
    const char *err, *good, *url;
    apr_status_t rv;
    ocsp_http_opts o;
    ocsp_verdict v;
    apr_time_t t0;
    apr_interval_time_t dt;
    canned srv;
    unsigned char *fx;
    apr_size_t fx_len;

    apr_pool_create(&p, g_pool);
    rsa = cert("rsa", p);
    if (ocsp_request_build(&req, &req_len, rsa, p) != APR_SUCCESS) {
        bail("ocsp_request_build(rsa) failed");
    }
    good = apr_psprintf(p, "http://127.0.0.1:%d/good", g_port);

    /* the responder's /good */
    o = opts_of(apr_time_from_sec(10), 0);
    body = NULL;
    body_len = 0;
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, good, req, req_len, &o, &err, p);
    if (check(rv == APR_SUCCESS && body != NULL && body_len > 0,
              "ocsp_http_post /good: 200 with a body",
              "%s len %lu", res(rv, err, p), (unsigned long)body_len)) {
        good_len = body_len;
        poison(&v);
        err = NULL;
        rv = ocsp_response_verify(&v, rsa, body, body_len, apr_time_now(), &err, p);
        check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
              "the body from /good verifies: APR_SUCCESS, GOOD",
              "%s %s", res(rv, err, p), verdict_str(&v, p));
    }

    /* size cap: 100 bytes, exactly the answer's size, one byte less */
    o = opts_of(apr_time_from_sec(10), 100);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, good, req, req_len, &o, &err, p);
    check(is_failure(rv, err), "ocsp_http_post /good with max_size 100: failure",
          "%s", res(rv, err, p));
    if (good_len > 0) {
        o = opts_of(apr_time_from_sec(10), good_len);
        err = NULL;
        rv = ocsp_http_post(&body, &body_len, good, req, req_len, &o, &err, p);
        check(rv == APR_SUCCESS && body_len == good_len,
              "ocsp_http_post /good with max_size == answer size: succeeds",
              "%s (max_size %lu)", res(rv, err, p), (unsigned long)good_len);
        o = opts_of(apr_time_from_sec(10), good_len - 1);
        err = NULL;
        rv = ocsp_http_post(&body, &body_len, good, req, req_len, &o, &err, p);
        check(is_failure(rv, err),
              "ocsp_http_post /good with max_size == answer size - 1: failure",
              "%s (max_size %lu)", res(rv, err, p), (unsigned long)(good_len - 1));
    }

    /* 404 */
    url = apr_psprintf(p, "http://127.0.0.1:%d/nosuchmode", g_port);
    o = opts_of(apr_time_from_sec(10), 0);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(is_failure(rv, err) && contains(err, "404"),
          "ocsp_http_post /nosuchmode: failure mentioning 404",
          "%s", res(rv, err, p));

    /* nothing listens on port 1 */
    err = NULL;
    t0 = apr_time_now();
    rv = ocsp_http_post(&body, &body_len, "http://127.0.0.1:1/", req, req_len,
                        &o, &err, p);
    dt = apr_time_now() - t0;
    check(is_failure(rv, err) && dt < apr_time_from_sec(2),
          "ocsp_http_post to a closed port: failure in < 2 s",
          "%s after %.2f s", res(rv, err, p), secs(dt));

    /* a server that accepts (kernel backlog) and never answers */
    {
        int port, fd = listen_loopback(&port);
        url = apr_psprintf(p, "http://127.0.0.1:%d/good", port);
        o = opts_of(apr_time_from_sec(1), 0);
        err = NULL;
        t0 = apr_time_now();
        rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
        dt = apr_time_now() - t0;
        close(fd);
        check(is_failure(rv, err) && dt >= apr_time_from_msec(900)
              && dt < apr_time_from_sec(3),
              "ocsp_http_post to a silent server, timeout 1 s: failure after 1-3 s",
              "%s after %.2f s", res(rv, err, p), secs(dt));
    }

    canned_start(&srv);
    url = apr_psprintf(p, "http://127.0.0.1:%d/ocsp", srv.port);
    fixture("good", &fx, &fx_len, p);

    /* what is sent */
    canned_ocsp(&srv, fx, fx_len, p);
    o = opts_of(apr_time_from_sec(10), 0);
    err = NULL;
    body = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(rv == APR_SUCCESS && body_len == fx_len && body
          && memcmp(body, fx, fx_len) == 0,
          "ocsp_http_post to a scripted server: body returned as sent",
          "%s len %lu (want %lu)", res(rv, err, p), (unsigned long)body_len,
          (unsigned long)fx_len);
    {
        const char *r = canned_req(&srv, p);
        const char *hend = strstr(r, "\r\n\r\n");
        const char *ct = strcasestr(r, "\r\ncontent-type:");
        check(strncmp(r, "POST /ocsp HTTP/1.", 18) == 0,
              "request line is POST /ocsp", "request starts: %.60s", r);
        check(ct != NULL && hend != NULL && ct < hend
              && strncasecmp(ct + 15 + strspn(ct + 15, " \t"),
                             "application/ocsp-request", 24) == 0,
              "request Content-Type is application/ocsp-request",
              "headers: %.*s", hend ? (int)(hend - r) : 200, r);
        apr_size_t r_len = canned_req_len(&srv);
        check(hend != NULL
              && r_len == (apr_size_t)(hend + 4 - r) + req_len
              && memcmp(hend + 4, req, req_len) == 0,
              "request body is the DER request",
              "request of %lu bytes, DER %lu bytes", (unsigned long)r_len,
              (unsigned long)req_len);
    }

    /* wrong or missing content type */
    canned_set(&srv, CANNED_FIXED,
               apr_psprintf(p, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                            "Content-Length: %lu\r\n\r\n", (unsigned long)fx_len),
               fx, fx_len);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(is_failure(rv, err),
          "ocsp_http_post, 200 text/html: failure", "%s", res(rv, err, p));
    canned_set(&srv, CANNED_FIXED,
               apr_psprintf(p, "HTTP/1.0 200 OK\r\nContent-Length: %lu\r\n\r\n",
                            (unsigned long)fx_len), fx, fx_len);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(is_failure(rv, err),
          "ocsp_http_post, 200 without Content-Type: failure",
          "%s", res(rv, err, p));

    /* HTTP error status */
    canned_set(&srv, CANNED_FIXED,
               "HTTP/1.0 500 Internal Server Error\r\n"
               "Content-Type: application/ocsp-response\r\n"
               "Content-Length: 5\r\n\r\n", (const unsigned char *)"\x30\x03\x0a\x01\x02", 5);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(is_failure(rv, err) && contains(err, "500"),
          "ocsp_http_post, 500: failure mentioning 500", "%s", res(rv, err, p));

    /* a huge body without Content-Length: refused at the default cap */
    canned_set(&srv, CANNED_HUGE, "HTTP/1.0 200 OK\r\n"
               "Content-Type: application/ocsp-response\r\n\r\n", NULL, 0);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    check(is_failure(rv, err),
          "ocsp_http_post, 256 KB body without Content-Length, max_size 0 "
          "(64 KB): failure", "%s len %lu", res(rv, err, p),
          (unsigned long)(rv == APR_SUCCESS ? body_len : 0));

    /* the timeout covers the whole exchange: a body dripping in */
    canned_set(&srv, CANNED_DRIP, "HTTP/1.0 200 OK\r\n"
               "Content-Type: application/ocsp-response\r\n"
               "Content-Length: 1000\r\n\r\n", NULL, 0);
    o = opts_of(apr_time_from_sec(1), 0);
    err = NULL;
    t0 = apr_time_now();
    rv = ocsp_http_post(&body, &body_len, url, req, req_len, &o, &err, p);
    dt = apr_time_now() - t0;
    check(is_failure(rv, err) && dt >= apr_time_from_msec(900)
          && dt < apr_time_from_sec(3),
          "ocsp_http_post, body dripping 1 byte/200 ms, timeout 1 s: failure "
          "after 1-3 s", "%s after %.2f s", res(rv, err, p), secs(dt));

    /* opts.proxy: the request goes to the proxy, absolute URI */
    canned_ocsp(&srv, fx, fx_len, p);
    o = opts_of(apr_time_from_sec(10), 0);
    o.proxy = apr_psprintf(p, "http://127.0.0.1:%d", srv.port);
    err = NULL;
    rv = ocsp_http_post(&body, &body_len, "http://ocsp.example.test/x", req,
                        req_len, &o, &err, p);
    check(rv == APR_SUCCESS && body_len == fx_len,
          "ocsp_http_post through opts.proxy: succeeds", "%s",
          res(rv, err, p));
    {
        const char *r = canned_req(&srv, p);
        check(strncmp(r, "POST http://ocsp.example.test/x HTTP/1.", 39) == 0,
              "the proxy got POST http://ocsp.example.test/x",
              "request starts: %.60s", r);
    }

    /* ocsp_fetch */
    {
        const char *dead = "http://127.0.0.1:1/dead";
        const char *nosuch = apr_psprintf(p, "http://127.0.0.1:%d/nosuchmode",
                                          g_port);
        apr_array_header_t *urls;
        ocsp_answer *a;

        o = opts_of(apr_time_from_sec(10), 0);

        urls = apr_array_make(p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = dead;
        APR_ARRAY_PUSH(urls, const char *) = good;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        if (check(rv == APR_SUCCESS && a != NULL,
                  "ocsp_fetch [dead, good]: APR_SUCCESS", "%s",
                  res(rv, err, p))) {
            check(a->url && strcmp(a->url, good) == 0,
                  "ocsp_fetch [dead, good]: answer->url is the good one",
                  "url %s", nz(a->url));
            check(a->verdict.resp_status == 0
                  && a->verdict.cert_status == OCSP_CERT_GOOD
                  && a->verdict.expires > apr_time_now(),
                  "ocsp_fetch [dead, good]: verdict GOOD, expires in the future",
                  "%s", verdict_str(&a->verdict, p));
            err = NULL;
            poison(&v);
            rv = a->der ? ocsp_response_verify(&v, rsa, a->der, a->der_len,
                                               apr_time_now(), &err, p)
                        : APR_EGENERAL;
            check(rv == APR_SUCCESS && v.cert_status == OCSP_CERT_GOOD,
                  "ocsp_fetch: answer->der verifies again", "%s",
                  res(rv, err, p));
        }

        urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = dead;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(is_failure(rv, err) && contains(err, dead),
              "ocsp_fetch [dead]: failure naming the URL", "%s",
              res(rv, err, p));

        urls = apr_array_make(p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = dead;
        APR_ARRAY_PUSH(urls, const char *) = nosuch;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(is_failure(rv, err) && contains(err, dead) && contains(err, nosuch),
              "ocsp_fetch [dead, nosuchmode]: failure naming both URLs", "%s",
              res(rv, err, p));

        urls = apr_array_make(p, 1, sizeof(const char *));
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(is_failure(rv, err), "ocsp_fetch with no URL: failure with reason",
              "%s", res(rv, err, p));

        /* the certificate's own URLs (baked in by mkpki with its PORT) */
        {
            ocsp_cert *two = cert("twourls", p);
            const apr_array_header_t *own = ocsp_cert_urls(two);
            const char *second = own && own->nelts == 2
                                 ? APR_ARRAY_IDX(own, 1, const char *) : NULL;
            if (second && strcmp(second, good) == 0) {
                a = NULL;
                err = NULL;
                rv = ocsp_fetch(&a, two, own, &o, &err, p);
                check(rv == APR_SUCCESS && a && a->url
                      && strcmp(a->url, second) == 0
                      && a->verdict.cert_status == OCSP_CERT_GOOD,
                      "ocsp_fetch twourls with its own URLs: GOOD from the second",
                      "%s url %s", res(rv, err, p), a ? nz(a->url) : "-");
            }
            else {
                skip("ocsp_fetch twourls with its own URLs",
                     "PKI made for another port");
            }
        }

        /* revoked, delegated, wrong answers */
        urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = good;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, cert("revoked", p), urls, &o, &err, p);
        check(rv == APR_SUCCESS && a
              && a->verdict.cert_status == OCSP_CERT_REVOKED,
              "ocsp_fetch revoked from /good: APR_SUCCESS, REVOKED", "%s %s",
              res(rv, err, p), a ? verdict_str(&a->verdict, p) : "");

        url = apr_psprintf(p, "http://127.0.0.1:%d/delegated", g_port);
        urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = url;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, cert("delegated", p), urls, &o, &err, p);
        check(rv == APR_SUCCESS && a && a->verdict.cert_status == OCSP_CERT_GOOD,
              "ocsp_fetch delegated from /delegated: APR_SUCCESS, GOOD", "%s",
              res(rv, err, p));

        url = apr_psprintf(p, "http://127.0.0.1:%d/wrongserial", g_port);
        urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = url;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(is_failure(rv, err) && contains(err, url),
              "ocsp_fetch rsa from /wrongserial: failure naming the URL", "%s",
              res(rv, err, p));

        url = apr_psprintf(p, "http://127.0.0.1:%d/wrongsigner", g_port);
        urls = apr_array_make(p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = url;
        APR_ARRAY_PUSH(urls, const char *) = good;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(rv == APR_SUCCESS && a && a->url && strcmp(a->url, good) == 0,
              "ocsp_fetch [wrongsigner, good]: the good one", "%s url %s",
              res(rv, err, p), a ? nz(a->url) : "-");

        /* responder errors: kept only when nothing better comes */
        fixture("trylater", &fx, &fx_len, p);
        canned_ocsp(&srv, fx, fx_len, p);
        url = apr_psprintf(p, "http://127.0.0.1:%d/trylater", srv.port);
        urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = url;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(rv == OCSP_ERESPONDER && a && a->verdict.resp_status == 3
              && a->url && strcmp(a->url, url) == 0,
              "ocsp_fetch [tryLater]: OCSP_ERESPONDER, answer with resp_status 3",
              "%s %s url %s", res(rv, err, p),
              a ? verdict_str(&a->verdict, p) : "answer NULL",
              a ? nz(a->url) : "-");

        urls = apr_array_make(p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(urls, const char *) = url;
        APR_ARRAY_PUSH(urls, const char *) = good;
        a = NULL;
        err = NULL;
        rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
        check(rv == APR_SUCCESS && a && a->url && strcmp(a->url, good) == 0,
              "ocsp_fetch [tryLater, good]: APR_SUCCESS from the good one",
              "%s url %s", res(rv, err, p), a ? nz(a->url) : "-");

        /* a silent first responder costs one timeout, no more */
        {
            int port, fd = listen_loopback(&port);
            urls = apr_array_make(p, 2, sizeof(const char *));
            APR_ARRAY_PUSH(urls, const char *) =
                apr_psprintf(p, "http://127.0.0.1:%d/good", port);
            APR_ARRAY_PUSH(urls, const char *) = good;
            o = opts_of(apr_time_from_sec(1), 0);
            a = NULL;
            err = NULL;
            t0 = apr_time_now();
            rv = ocsp_fetch(&a, rsa, urls, &o, &err, p);
            dt = apr_time_now() - t0;
            close(fd);
            /* Without the per-URL timeout the silent one would hang for
             * ever; the bound is loose for a busy machine (the suite runs
             * scenarios in parallel). */
            check(rv == APR_SUCCESS && a && a->url && strcmp(a->url, good) == 0
                  && dt >= apr_time_from_msec(900) && dt < apr_time_from_sec(10),
                  "ocsp_fetch [silent, good], timeout 1 s: the good one in 1-10 s",
                  "%s url %s after %.2f s", res(rv, err, p),
                  a ? nz(a->url) : "-", secs(dt));
        }
    }

    test_methods(&srv, rsa, req, req_len, p);
    canned_stop(&srv);
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    apr_status_t rv;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s FIXTUREDIR PKIDIR [RESPONDER_PORT]\n", argv[0]);
        return 2;
    }
    g_fixdir = argv[1];
    g_pkidir = argv[2];
    if (argc == 4) {
        g_port = atoi(argv[3]);
        if (g_port <= 0 || g_port > 65535) {
            fprintf(stderr, "bad port %s\n", argv[3]);
            return 2;
        }
    }
    /* Loopback only, whatever the environment says. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");

    apr_initialize();
    if (apr_pool_create(&g_pool, NULL) != APR_SUCCESS) {
        bail("apr_pool_create failed");
    }

    rv = ocsp_fetch_global_init();
    check(rv == APR_SUCCESS, "ocsp_fetch_global_init", "%s", res(rv, NULL, g_pool));

    test_strings();
    test_parse();
    test_request();
    test_get_url();
    test_verify();
    test_shared_issuers();
    test_shared_parse_same();
    if (g_port) {
        test_http();
    }
    else {
        skip("ocsp_http_post and ocsp_fetch", "no RESPONDER_PORT given");
    }

    apr_pool_destroy(g_pool);
    apr_terminate();

    printf("1..%d\n", g_test_no);
    if (g_failed) {
        printf("# %d of %d tests failed\n", g_failed, g_test_no);
    }
    return g_failed ? 1 : 0;
}
