/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * OCSP for one certificate: parse, request, HTTP GET or POST, verification.
 * No httpd headers here: this file is unit-tested and fuzzed on its own.
 */

#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "ocsp_fetch.h"
#include "ocsp_http.h"

struct ocsp_cert {
    X509 *leaf;
    X509 *issuer;
    OCSP_CERTID *certid;
    apr_array_header_t *urls;
    apr_array_header_t *unusable_urls;
    const char *subject;
    const char *serial;
    int must_staple;
};

static const char *ocsp_resp_status_name(int resp_status);

/* ---------------------------------------------------------------- errors */

/* The OpenSSL error queue as one line (and emptied), for log reasons. */
static const char *openssl_errors(apr_pool_t *p)
{
    const char *all = NULL;
    char buf[256];
    unsigned long e;

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        all = all ? apr_pstrcat(p, all, "; ", buf, NULL) : apr_pstrdup(p, buf);
    }
    return all ? all : "no OpenSSL detail";
}

/* ------------------------------------------------------------ certificate */

static apr_status_t cert_cleanup(void *data)
{
    ocsp_cert *cert = data;

    OCSP_CERTID_free(cert->certid);
    X509_free(cert->issuer);
    X509_free(cert->leaf);
    return APR_SUCCESS;
}

static const char *cert_subject(X509 *x, apr_pool_t *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *subject = "(unknown subject)";
    char *data;
    long len;

    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(x), 0,
                                  (XN_FLAG_ONELINE & ~XN_FLAG_SPC_EQ) & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        len = BIO_get_mem_data(bio, &data);
        subject = apr_pstrndup(p, data, (apr_size_t)len);
    }
    BIO_free(bio);
    return subject;
}

static const char *cert_serial(X509 *x, apr_pool_t *p)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    const char *serial = hex ? apr_pstrdup(p, hex) : "?";

    OPENSSL_free(hex);
    BN_free(bn);
    return serial;
}

/* RFC 7633 TLS Feature extension listing status_request (5): Must-Staple. */
static int cert_must_staple(X509 *x)
{
    STACK_OF(ASN1_INTEGER) *features = X509_get_ext_d2i(x, NID_tlsfeature,
                                                        NULL, NULL);
    int i, found = 0;

    for (i = 0; features && i < sk_ASN1_INTEGER_num(features); i++) {
        found |= ASN1_INTEGER_get(sk_ASN1_INTEGER_value(features, i)) == 5;
    }
    sk_ASN1_INTEGER_pop_free(features, ASN1_INTEGER_free);
    return found;
}

/* An URL libcurl can POST to: http(s)://host... Anything else (ldap://,
 * "http//broken") can never work; it is set aside once, not retried. */
static int is_usable_url(const char *url)
{
    const char *rest = !strncasecmp(url, "http://", 7) ? url + 7
                     : !strncasecmp(url, "https://", 8) ? url + 8 : NULL;

    return rest && *rest && *rest != '/' && *rest != ':';
}

static void cert_urls(ocsp_cert *cert, apr_pool_t *p)
{
    STACK_OF(OPENSSL_STRING) *aia = X509_get1_ocsp(cert->leaf);
    int i;

    cert->urls = apr_array_make(p, 2, sizeof(const char *));
    cert->unusable_urls = apr_array_make(p, 1, sizeof(const char *));
    for (i = 0; aia && i < sk_OPENSSL_STRING_num(aia); i++) {
        const char *url = apr_pstrdup(p, sk_OPENSSL_STRING_value(aia, i));

        APR_ARRAY_PUSH(is_usable_url(url) ? cert->urls : cert->unusable_urls,
                       const char *) = url;
    }
    X509_email_free(aia);
}

struct ocsp_issuers {
    apr_hash_t *by_digest;            /* SHA-256 of the DER -> X509 * */
    apr_hash_t *by_text;              /* its PEM text -> the same X509 * */
    apr_pool_t *p;
    /* A library context with no algorithm at all (only OpenSSL's "null"
     * provider), to parse leaves in: see read_leaf. NULL if it could not
     * be made: leaves are then parsed as any certificate. */
    OSSL_LIB_CTX *light;
    OSSL_PROVIDER *null_provider;
};

static apr_status_t issuers_cleanup(void *data)
{
    ocsp_issuers *is = data;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(is->p, is->by_digest); hi; hi = apr_hash_next(hi)) {
        X509_free(apr_hash_this_val(hi));
    }
    /* Every leaf parsed in it was freed at the end of its parse. */
    OSSL_PROVIDER_unload(is->null_provider);
    OSSL_LIB_CTX_free(is->light);
    return APR_SUCCESS;
}

ocsp_issuers *ocsp_issuers_make(apr_pool_t *p)
{
    ocsp_issuers *is = apr_pcalloc(p, sizeof(*is));

    is->by_digest = apr_hash_make(p);
    is->by_text = apr_hash_make(p);
    is->p = p;
    /* The "null" provider keeps OpenSSL from loading the default one into
     * the context on first use, which would defeat its purpose. */
    if ((is->light = OSSL_LIB_CTX_new())
        && !(is->null_provider = OSSL_PROVIDER_load(is->light, "null"))) {
        OSSL_LIB_CTX_free(is->light);
        is->light = NULL;
    }
    ERR_clear_error();
    apr_pool_cleanup_register(p, is, issuers_cleanup, apr_pool_cleanup_null);
    return is;
}

/* The text of the second PEM certificate in pem (the issuer, as mod_ssl
 * writes it after the certificate), or NULL. */
static const char *issuer_text(const char *pem, apr_size_t len,
                               apr_size_t *plen)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *first = memmem(pem, len, begin, sizeof(begin) - 1);
    const char *second = first ? memmem(first + 1, len - (apr_size_t)(first + 1 - pem),
                                        begin, sizeof(begin) - 1) : NULL;
    const char *stop = second ? memmem(second, len - (apr_size_t)(second - pem),
                                       end, sizeof(end) - 1) : NULL;

    if (!stop) {
        return NULL;
    }
    *plen = (apr_size_t)(stop - second) + sizeof(end) - 1;
    return second;
}

/* An issuer whose very text was seen before: no second parse. Decoding
 * the issuer (its RSA key above all) was most of the 0.3 ms each of
 * 10,000 certificates cost at start. */
static X509 *known_issuer(ocsp_issuers *is, const char *pem, apr_size_t len)
{
    apr_size_t tlen = 0;
    const char *text = is ? issuer_text(pem, len, &tlen) : NULL;
    X509 *known = text ? apr_hash_get(is->by_text, text, (apr_ssize_t)tlen)
                       : NULL;

    return known && X509_up_ref(known) ? known : NULL;
}

static void remember_text(ocsp_issuers *is, const char *pem, apr_size_t len,
                          X509 *issuer)
{
    apr_size_t tlen = 0;
    const char *text = issuer_text(pem, len, &tlen);

    if (text) {
        apr_hash_set(is->by_text, apr_pstrmemdup(is->p, text, tlen),
                     (apr_ssize_t)tlen, issuer);
    }
}

/* The copy of *pissuer already known (a reference taken, *pissuer freed),
 * or *pissuer itself, remembered. Returns whether *pissuer is now the
 * table's copy. */
static int share_issuer(ocsp_issuers *is, X509 **pissuer)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509 *known;

    if (!X509_digest(*pissuer, EVP_sha256(), md, &len)) {
        return 0;                     /* not shared: still correct */
    }
    known = apr_hash_get(is->by_digest, md, len);
    if (known && X509_up_ref(known)) {
        X509_free(*pissuer);
        *pissuer = known;
        return 1;
    }
    if (!known && X509_up_ref(*pissuer)) {
        apr_hash_set(is->by_digest, apr_pmemdup(is->p, md, len), len, *pissuer);
        return 1;
    }
    return 0;
}

apr_status_t ocsp_cert_parse(ocsp_cert **pcert, const char *pem,
                             apr_size_t pem_len, const char **perr,
                             apr_pool_t *p)
{
    return ocsp_cert_parse_shared(pcert, pem, pem_len, NULL, perr, p);
}

/* What stapling needs from the leaf, taken before it is freed: 10,000
 * leaves kept whole were 10,000 parsed X509s in every process. */
static void take_from_leaf(ocsp_cert *cert, apr_pool_t *p)
{
    cert->subject = cert_subject(cert->leaf, p);
    cert->serial = cert_serial(cert->leaf, p);
    cert_urls(cert, p);
    cert->must_staple = cert_must_staple(cert->leaf);
}

/* The first certificate of bio. With light (ocsp_issuers' context with no
 * algorithm), OpenSSL cannot decode its public key while it parses it, and
 * does not try for long: under OpenSSL 3.0 that decoding (a search of every
 * provider's decoders for each certificate) was two thirds of what a leaf
 * cost at start, 0.1 ms each. Nothing here needs the leaf's key: its
 * names, serial and extensions, X509_check_issued and the CertID read the
 * leaf's fields and the issuer's key only. */
static X509 *read_leaf(BIO *bio, OSSL_LIB_CTX *light)
{
    X509 *leaf = NULL;

    if (light && !(leaf = X509_new_ex(light, NULL))) {
        return NULL;
    }
    if (!PEM_read_bio_X509(bio, &leaf, NULL, NULL)) {
        X509_free(leaf);
        return NULL;
    }
    if (light) {
        /* The extensions cached now, once: the leaf's SHA-1 fingerprint
         * cannot be computed without an algorithm, and the first
         * X509_check_issued would otherwise fail for that alone. Nothing
         * reads that fingerprint. */
        (void)X509_get_extension_flags(leaf);
        ERR_clear_error();
    }
    return leaf;
}

/* Frees what a failed parse_leaf_and_issuer took, for another try. */
static void cert_reset(ocsp_cert *cert)
{
    OCSP_CERTID_free(cert->certid);
    X509_free(cert->issuer);
    X509_free(cert->leaf);
    cert->certid = NULL;
    cert->issuer = cert->leaf = NULL;
}

static apr_status_t parse_leaf_and_issuer(ocsp_cert *cert, BIO *bio,
                                          const char *pem, apr_size_t pem_len,
                                          ocsp_issuers *issuers,
                                          OSSL_LIB_CTX *light,
                                          const char **perr, apr_pool_t *p)
{
    if (!(cert->leaf = read_leaf(bio, light))) {
        return ocsp_fail(perr, APR_EINVAL, p, "no certificate in PEM: %s",
                         openssl_errors(p));
    }
    take_from_leaf(cert, p);
    if (!(cert->issuer = known_issuer(issuers, pem, pem_len))
        && !(cert->issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        return ocsp_fail(perr, APR_EINVAL, p, "no issuer certificate after the "
                         "certificate in PEM: %s", openssl_errors(p));
    }
    if (X509_check_issued(cert->issuer, cert->leaf) != X509_V_OK) {
        return ocsp_fail(perr, APR_EINVAL, p, "the second certificate in PEM "
                         "(%s) did not issue the first",
                         cert_subject(cert->issuer, p));
    }
    if (!(cert->certid = OCSP_cert_to_id(NULL, cert->leaf, cert->issuer))) {
        return ocsp_fail(perr, APR_EGENERAL, p, "cannot build the OCSP CertID:"
                         " %s", openssl_errors(p));
    }
    return APR_SUCCESS;
}

apr_status_t ocsp_cert_parse_shared(ocsp_cert **pcert, const char *pem,
                                    apr_size_t pem_len, ocsp_issuers *issuers,
                                    const char **perr, apr_pool_t *p)
{
    ocsp_cert *cert = apr_pcalloc(p, sizeof(*cert));
    OSSL_LIB_CTX *light = issuers ? issuers->light : NULL;
    apr_status_t rv = APR_SUCCESS;
    BIO *bio = NULL;

    *pcert = NULL;
    apr_pool_cleanup_register(p, cert, cert_cleanup, apr_pool_cleanup_null);
    if (pem_len > INT_MAX || !(bio = BIO_new_mem_buf(pem, (int)pem_len))) {
        rv = ocsp_fail(perr, APR_EINVAL, p, "certificate PEM too large");
        goto cleanup;
    }
    rv = parse_leaf_and_issuer(cert, bio, pem, pem_len, issuers, light, perr,
                               p);
    if (rv != APR_SUCCESS && light) {
        /* The light parse only saves time: whatever fails with it is done
         * again as before, and that verdict and its reason are the ones
         * that count. */
        cert_reset(cert);
        ERR_clear_error();
        (void)BIO_reset(bio);         /* a read-only memory BIO: rewound */
        rv = parse_leaf_and_issuer(cert, bio, pem, pem_len, issuers, NULL,
                                   perr, p);
    }
    if (rv == APR_SUCCESS && issuers && share_issuer(issuers, &cert->issuer)) {
        remember_text(issuers, pem, pem_len, cert->issuer);
    }

cleanup:
    BIO_free(bio);
    X509_free(cert->leaf);
    cert->leaf = NULL;
    ERR_clear_error();
    if (rv == APR_SUCCESS) {
        *pcert = cert;
    }
    return rv;
}

const apr_array_header_t *ocsp_cert_urls(const ocsp_cert *cert)
{
    return cert->urls;
}

const apr_array_header_t *ocsp_cert_unusable_urls(const ocsp_cert *cert)
{
    return cert->unusable_urls;
}

const char *ocsp_cert_subject(const ocsp_cert *cert)
{
    return cert->subject;
}

const char *ocsp_cert_serial(const ocsp_cert *cert)
{
    return cert->serial;
}

int ocsp_cert_must_staple(const ocsp_cert *cert)
{
    return cert->must_staple;
}

/* ---------------------------------------------------------------- request */

/* Copies a DER encoding out of OpenSSL into the pool. */
#define I2D_TO_POOL(i2d, obj, pder, plen, p)                             \
    do {                                                                 \
        unsigned char *tmp_ = NULL;                                      \
        int len_ = i2d((obj), &tmp_);                                    \
        if (len_ <= 0) { *(pder) = NULL; *(plen) = 0; break; }           \
        *(pder) = apr_pmemdup((p), tmp_, (apr_size_t)len_);              \
        *(plen) = (apr_size_t)len_;                                      \
        OPENSSL_free(tmp_);                                              \
    } while (0)

apr_status_t ocsp_request_build(unsigned char **pder, apr_size_t *plen,
                                const ocsp_cert *cert, apr_pool_t *p)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_CERTID_dup(cert->certid);
    apr_status_t rv = APR_ENOMEM;

    *pder = NULL;
    *plen = 0;
    if (!req || !id || !OCSP_request_add0_id(req, id)) {
        OCSP_CERTID_free(id);
        goto cleanup;
    }
    /* the request now owns id */
    I2D_TO_POOL(i2d_OCSP_REQUEST, req, pder, plen, p);
    rv = *pder ? APR_SUCCESS : APR_EGENERAL;

cleanup:
    OCSP_REQUEST_free(req);
    ERR_clear_error();
    return rv;
}

/* ----------------------------------------------------------- verification */

/* GeneralizedTime -> apr_time_t, 0 when absent or unreadable. */
static apr_time_t asn1_to_apr_time(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        return 0;
    }
    return apr_time_from_sec(timegm(&tm));
}

/* Builds the trust for OCSP_basic_verify: the issuer is the anchor (a partial
 * chain), so a response signed by the issuer itself or by a delegated
 * responder it certified verifies, and nothing else does. OpenSSL then checks
 * that a delegated signer carries id-kp-OCSPSigning (ocsp_check_issuer). */
static int verify_signature(OCSP_BASICRESP *basic, const ocsp_cert *cert)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int ok = 0;

    if (store && untrusted
        && X509_STORE_add_cert(store, cert->issuer)
        && X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN)
        && sk_X509_push(untrusted, cert->issuer)) {
        ok = OCSP_basic_verify(basic, untrusted, store, 0) > 0;
    }
    sk_X509_free(untrusted);     /* the issuer stays owned by cert */
    X509_STORE_free(store);
    return ok;
}

/* Exactly our CertID must be answered; OpenSSL's find_status would also
 * accept a reply that carries other single responses besides ours. */
static apr_status_t find_single(ocsp_verdict *v, OCSP_BASICRESP *basic,
                                const ocsp_cert *cert, const char **perr,
                                apr_pool_t *p)
{
    ASN1_GENERALIZEDTIME *revtime = NULL, *thisupd = NULL, *nextupd = NULL;
    int status, reason = -1;

    if (OCSP_resp_count(basic) != 1) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "%d single responses, expected "
                    "exactly one", OCSP_resp_count(basic));
    }
    if (!OCSP_resp_find_status(basic, cert->certid, &status, &reason,
                               &revtime, &thisupd, &nextupd)) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "no response for this certificate "
                    "(the responder answered for another certificate id)");
    }
    v->cert_status = status == V_OCSP_CERTSTATUS_GOOD ? OCSP_CERT_GOOD
                   : status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_CERT_REVOKED
                   : OCSP_CERT_UNKNOWN;
    v->revoke_reason = reason;
    v->revoked_at = asn1_to_apr_time(revtime);
    v->this_update = asn1_to_apr_time(thisupd);
    v->next_update = nextupd ? asn1_to_apr_time(nextupd) : 0;
    if (!v->this_update || (nextupd && !v->next_update)) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "unreadable thisUpdate/nextUpdate");
    }
    return APR_SUCCESS;
}

/* Validity at now: thisUpdate may be up to OCSP_MAX_CLOCK_SKEW ahead of our
 * clock; nextUpdate must still be ahead, since a client rejects a staple it
 * considers expired and we never want to send one. */
static apr_status_t check_validity(ocsp_verdict *v, apr_time_t now,
                                   const char **perr, apr_pool_t *p)
{
    if (v->this_update > now + OCSP_MAX_CLOCK_SKEW) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "thisUpdate is %" APR_TIME_T_FMT
                    " s in the future", apr_time_sec(v->this_update - now));
    }
    if (v->next_update && v->next_update <= v->this_update) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "nextUpdate is not after thisUpdate");
    }
    if (v->next_update && v->next_update <= now) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "expired: nextUpdate was %"
                    APR_TIME_T_FMT " s ago", apr_time_sec(now - v->next_update));
    }
    /* Without nextUpdate the age counts from thisUpdate, never from when we
     * happened to look: a response does not get younger by being read
     * again (mod_ssl's SSLStaplingResponseMaxAge is the precedent). */
    if (!v->next_update
        && v->this_update + OCSP_NO_NEXT_UPDATE_MAX_AGE <= now) {
        return ocsp_fail(perr, OCSP_EVERIFY, p, "no nextUpdate and older than "
                    "the maximum age of %" APR_TIME_T_FMT " s (thisUpdate %"
                    APR_TIME_T_FMT " s ago)",
                    apr_time_sec(OCSP_NO_NEXT_UPDATE_MAX_AGE),
                    apr_time_sec(now - v->this_update));
    }
    v->expires = v->next_update ? v->next_update
                                : v->this_update + OCSP_NO_NEXT_UPDATE_MAX_AGE;
    return APR_SUCCESS;
}

apr_time_t ocsp_response_produced_at(const unsigned char *der,
                                     apr_size_t der_len)
{
    const unsigned char *cursor = der;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    apr_time_t produced = 0;

    if (der_len <= (apr_size_t)LONG_MAX
        && (resp = d2i_OCSP_RESPONSE(NULL, &cursor, (long)der_len))
        && (basic = OCSP_response_get1_basic(resp))) {
        produced = asn1_to_apr_time(OCSP_resp_get0_produced_at(basic));
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    return produced;
}

apr_status_t ocsp_response_verify(ocsp_verdict *verdict, const ocsp_cert *cert,
                                  const unsigned char *der, apr_size_t der_len,
                                  apr_time_t now, const char **perr,
                                  apr_pool_t *p)
{
    const unsigned char *cursor = der;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    apr_status_t rv;

    memset(verdict, 0, sizeof(*verdict));
    verdict->cert_status = OCSP_CERT_NONE;
    verdict->revoke_reason = -1;
    if (der_len == 0 || der_len > LONG_MAX
        || !(resp = d2i_OCSP_RESPONSE(NULL, &cursor, (long)der_len))) {
        rv = ocsp_fail(perr, OCSP_EVERIFY, p, "not a DER OCSP response");
        goto cleanup;
    }
    if (cursor != der + der_len) {
        rv = ocsp_fail(perr, OCSP_EVERIFY, p, "trailing bytes after the response");
        goto cleanup;
    }
    verdict->resp_status = OCSP_response_status(resp);
    if (!ocsp_resp_status_name(verdict->resp_status)) {
        rv = ocsp_fail(perr, OCSP_EVERIFY, p, "invalid OCSP response status %d",
                  verdict->resp_status);
        goto cleanup;
    }
    if (verdict->resp_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        rv = ocsp_fail(perr, OCSP_ERESPONDER, p, "responder answered %s",
                  ocsp_resp_status_str(verdict->resp_status));
        goto cleanup;
    }
    if (!(basic = OCSP_response_get1_basic(resp))) {
        rv = ocsp_fail(perr, OCSP_EVERIFY, p, "not a basic OCSP response");
        goto cleanup;
    }
    if (!verify_signature(basic, cert)) {
        rv = ocsp_fail(perr, OCSP_EVERIFY, p, "signature not made by the issuer or "
                  "a responder it authorized: %s", openssl_errors(p));
        goto cleanup;
    }
    if ((rv = find_single(verdict, basic, cert, perr, p)) != APR_SUCCESS) {
        goto cleanup;
    }
    rv = check_validity(verdict, now, perr, p);

cleanup:
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return rv;
}

/* ------------------------------------------------------------------ fetch */

/* A batch: each job walks its URLs in order until one gives a verified
 * answer. A URL whose last DEAD_AFTER exchanges all failed at the transport
 * level (timeout, refused, dropped, unresolvable) is dead for the rest of the
 * batch, so a dead responder costs about one timeout per batch, not one per
 * certificate; an answer in between (of any kind) clears the count, so one
 * dropped connection from a busy responder is not taken for death. A job
 * whose connection was refused or dropped by a responder that has answered
 * in this batch (a flaky one, not a broken one) tries the same URL once
 * more, at the end of the queue.
 * Whether a URL serves GET is learnt once per batch from its first GET
 * (the probe), which goes alone: the requests that would GET the same URL
 * are held back until it is answered, or for OCSP_GET_PROBE_WAIT.
 * Requests to a URL whose last exchange failed at the transport level are
 * held back too while others to it are in flight, until one of those ends:
 * when a hanging responder's first requests time out one after the other,
 * no new request starts between them only to time out in turn. */
#define DEAD_AFTER 3

typedef enum {
    GET_UNTRIED,                        /* no GET to it yet in this batch */
    GET_PROBING,                        /* its first GET is in flight */
    GET_USED,                           /* GETs go out */
    GET_REFUSED                         /* it refused a GET: POST only */
} get_state;

typedef struct {
    int failures;                       /* transport failures in a row */
    int answered;                       /* it answered in this batch */
    int in_flight;                      /* exchanges with it under way */
    get_state get;
    apr_time_t probe_at;                /* when its first GET went */
    apr_array_header_t *held;           /* job_state *, waiting for it */
} url_health;

typedef struct {
    ocsp_job *job;
    unsigned char *req;
    apr_size_t req_len;
    int next_url;
    int retried;                        /* the one retry after a drop used */
    apr_status_t first_rv;
    const char *reasons;
    ocsp_http_req http;
} job_state;

typedef struct {
    job_state *states;
    apr_array_header_t *queue;          /* job_state *, FIFO from head */
    int head;
    apr_hash_t *health;                 /* URL -> url_health */
    int held;                           /* jobs held back, all URLs */
    apr_pool_t *p;
    ocsp_job_done_fn *done;             /* called as each job ends, or NULL */
    void *done_baton;
} batch;

static int is_transport_failure(apr_status_t rv)
{
    return rv == APR_TIMEUP || rv == APR_ECONNREFUSED
        || rv == APR_ECONNRESET || rv == APR_EHOSTUNREACH;
}

/* Failed fast, may work at once: worth one more try (a timeout is not: it
 * has already cost the whole timeout). */
static int is_retryable(apr_status_t rv)
{
    return rv == APR_ECONNREFUSED || rv == APR_ECONNRESET;
}

static url_health *health_of(batch *b, const char *url)
{
    url_health *h = apr_hash_get(b->health, url, APR_HASH_KEY_STRING);

    if (!h) {
        h = apr_pcalloc(b->p, sizeof(*h));
        apr_hash_set(b->health, url, APR_HASH_KEY_STRING, h);
    }
    return h;
}

static void note_health(url_health *h, apr_status_t rv)
{
    if (is_transport_failure(rv)) {
        h->failures++;
    }
    else {
        h->failures = 0;
        h->answered = 1;
    }
}

static void job_note(job_state *st, const char *url, apr_status_t rv,
                     const char *why, apr_pool_t *p)
{
    const char *line = apr_psprintf(p, "%s: %s", url, why);

    st->reasons = st->reasons ? apr_pstrcat(p, st->reasons, "; ", line, NULL)
                              : line;
    if (st->first_rv == APR_SUCCESS) {
        st->first_rv = rv;
    }
}

/* No URL left: the job ends with a responder's error answer if it got one,
 * else with the first failure. */
static void job_give_up(batch *b, job_state *st)
{
    ocsp_job *job = st->job;

    job->rv = job->answer ? OCSP_ERESPONDER
                          : st->first_rv ? st->first_rv : APR_ENOENT;
    job->err = st->reasons ? st->reasons : "no responder URL";
    if (b->done) {
        b->done(job, b->done_baton);
    }
}

/* The job's next URL not known to be dead in this batch (those skipped on
 * the way are noted), or NULL when none is left. */
static const char *next_live_url(batch *b, job_state *st)
{
    const apr_array_header_t *urls = st->job->urls;

    while (st->next_url < urls->nelts) {
        const char *url = APR_ARRAY_IDX(urls, st->next_url, const char *);

        if (health_of(b, url)->failures < DEAD_AFTER) {
            return url;
        }
        job_note(st, url, APR_ECONNREFUSED, "not tried: unreachable earlier "
                 "in this round", b->p);
        st->next_url++;
    }
    return NULL;
}

static void hold(batch *b, url_health *h, job_state *st)
{
    if (!h->held) {
        h->held = apr_array_make(b->p, 8, sizeof(job_state *));
    }
    APR_ARRAY_PUSH(h->held, job_state *) = st;
    b->held++;
}

/* The jobs held back for h go back into the queue. */
static void release(batch *b, url_health *h)
{
    int i;

    for (i = 0; h->held && i < h->held->nelts; i++) {
        APR_ARRAY_PUSH(b->queue, job_state *) =
            APR_ARRAY_IDX(h->held, i, job_state *);
    }
    if (h->held) {
        b->held -= h->held->nelts;
        h->held->nelts = 0;
    }
}

/* A first GET unanswered for OCSP_GET_PROBE_WAIT (a slow or hanging
 * responder) holds nothing back any longer: the others GET too. */
static void release_overdue(batch *b, apr_time_t now)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, b->health); b->held && hi;
         hi = apr_hash_next(hi)) {
        url_health *h = apr_hash_this_val(hi);

        if (h->get == GET_PROBING && now - h->probe_at >= OCSP_GET_PROBE_WAIT) {
            h->get = GET_USED;
            release(b, h);
        }
    }
}

/* Sets up the job's exchange with url, GET or POST; 0 when it must wait
 * for an exchange with the URL under way to end instead: its first GET,
 * or any when the last one failed at the transport level. */
static int prepare(batch *b, job_state *st, const char *url)
{
    url_health *h = health_of(b, url);
    const char *get = NULL;

    if (!st->job->opts->use_post && h->get != GET_REFUSED) {
        ocsp_http_get_url(&get, url, st->req, st->req_len, b->p);
    }
    if ((get && h->get == GET_PROBING) || (h->failures && h->in_flight)) {
        hold(b, h, st);
        return 0;
    }
    if (get && h->get == GET_UNTRIED) {
        h->get = GET_PROBING;
        h->probe_at = apr_time_now();
    }
    h->in_flight++;
    st->next_url++;
    memset(&st->http, 0, sizeof(st->http));
    st->http.url = url;
    st->http.get_url = get;
    st->http.body = st->req;
    st->http.body_len = st->req_len;
    st->http.opts = st->job->opts;
    st->http.baton = st;
    return 1;
}

static ocsp_http_req *batch_next(void *ud)
{
    batch *b = ud;

    release_overdue(b, apr_time_now());
    while (b->head < b->queue->nelts) {
        job_state *st = APR_ARRAY_IDX(b->queue, b->head++, job_state *);
        const char *url = next_live_url(b, st);

        if (!url) {
            job_give_up(b, st);
        }
        else if (prepare(b, st, url)) {
            return &st->http;
        }
    }
    return NULL;
}

/* What the answer to a GET says about GETs to its URL; 1 when the
 * responder refused it (the job POSTs the same request next). */
static int settle_get(url_health *h, const ocsp_http_req *req)
{
    int refused = req->rv == OCSP_EVERIFY && ocsp_http_get_refused(req->status);

    if (refused) {
        h->get = GET_REFUSED;
    }
    else if (h->get == GET_PROBING) {
        h->get = GET_USED;
    }
    return refused;
}

static void batch_done(ocsp_http_req *req, void *ud)
{
    batch *b = ud;
    job_state *st = req->baton;
    ocsp_job *job = st->job;
    ocsp_answer *ans = apr_pcalloc(b->p, sizeof(*ans));
    const char *why = req->err;
    apr_status_t rv = req->rv;
    url_health *health = health_of(b, req->url);

    note_health(health, rv);
    health->in_flight--;
    release(b, health);                 /* whatever it was, it has ended */
    if (req->get_url && settle_get(health, req)) {
        job->get_refused_url = req->url;
        job->get_refused_status = req->status;
        st->next_url--;                 /* the same URL, as a POST */
        APR_ARRAY_PUSH(b->queue, job_state *) = st;
        return;
    }
    if (rv == APR_SUCCESS) {
        ans->url = req->url;
        ans->der = req->resp;
        ans->der_len = req->resp_len;
        rv = ocsp_response_verify(&ans->verdict, job->cert, ans->der,
                                  ans->der_len, apr_time_now(), &why, b->p);
        if (rv == APR_SUCCESS) {
            job->rv = APR_SUCCESS;
            job->answer = ans;
            job->err = st->reasons;     /* earlier URLs that failed, if any */
            if (b->done) {
                b->done(job, b->done_baton);
            }
            return;
        }
        if (rv == OCSP_ERESPONDER && !job->answer) {
            job->answer = ans;          /* the best we have so far */
        }
    }
    else if (is_retryable(rv) && health->answered && !st->retried) {
        st->retried = 1;
        st->next_url--;                 /* the same URL, once more */
        APR_ARRAY_PUSH(b->queue, job_state *) = st;
        return;
    }
    job_note(st, req->url, rv, why, b->p);
    APR_ARRAY_PUSH(b->queue, job_state *) = st;     /* on to its next URL */
}

apr_status_t ocsp_fetch_batch(ocsp_job *jobs, int n, int max_parallel,
                              ocsp_job_done_fn *done, void *baton,
                              apr_pool_t *p)
{
    batch b = { apr_pcalloc(p, sizeof(job_state) * (n ? n : 1)),
                apr_array_make(p, n ? n : 1, sizeof(job_state *)), 0,
                apr_hash_make(p), 0, p, done, baton };
    int i;

    for (i = 0; i < n; i++) {
        job_state *st = &b.states[i];

        st->job = &jobs[i];
        jobs[i].answer = NULL;
        jobs[i].err = NULL;
        if (!jobs[i].urls || jobs[i].urls->nelts == 0) {
            jobs[i].rv = APR_ENOENT;
            jobs[i].err = "no responder URL";
            if (done) {
                done(&jobs[i], baton);
            }
            continue;
        }
        jobs[i].rv = ocsp_request_build(&st->req, &st->req_len, jobs[i].cert,
                                        p);
        if (jobs[i].rv != APR_SUCCESS) {
            jobs[i].err = "cannot build the OCSP request";
            if (done) {
                done(&jobs[i], baton);
            }
            continue;
        }
        APR_ARRAY_PUSH(b.queue, job_state *) = st;
    }
    return ocsp_http_run(max_parallel > 0 ? max_parallel : 1, batch_next,
                         batch_done, &b, p);
}

apr_status_t ocsp_fetch(ocsp_answer **panswer, const ocsp_cert *cert,
                        const apr_array_header_t *urls,
                        const ocsp_http_opts *opts, const char **perr,
                        apr_pool_t *p)
{
    ocsp_job job = { cert, urls, opts, APR_SUCCESS, NULL, NULL, NULL, 0 };
    apr_status_t rv = ocsp_fetch_batch(&job, 1, 1, NULL, NULL, p);

    *panswer = job.answer;
    if (rv == APR_SUCCESS) {
        rv = job.rv;
    }
    if (perr) {
        *perr = job.err;
    }
    return rv;
}

/* ---------------------------------------------------------------- strings */

const char *ocsp_cert_status_str(ocsp_cert_status st)
{
    switch (st) {
    case OCSP_CERT_GOOD:    return "good";
    case OCSP_CERT_REVOKED: return "revoked";
    case OCSP_CERT_UNKNOWN: return "unknown";
    default:                return "none";
    }
}

/* NULL for values RFC 6960 does not define (4 is unused). */
static const char *ocsp_resp_status_name(int resp_status)
{
    switch (resp_status) {
    case OCSP_RESPONSE_STATUS_SUCCESSFUL:       return "successful";
    case OCSP_RESPONSE_STATUS_MALFORMEDREQUEST: return "malformedRequest";
    case OCSP_RESPONSE_STATUS_INTERNALERROR:    return "internalError";
    case OCSP_RESPONSE_STATUS_TRYLATER:         return "tryLater";
    case OCSP_RESPONSE_STATUS_SIGREQUIRED:      return "sigRequired";
    case OCSP_RESPONSE_STATUS_UNAUTHORIZED:     return "unauthorized";
    default:                                    return NULL;
    }
}

const char *ocsp_resp_status_str(int resp_status)
{
    const char *name = ocsp_resp_status_name(resp_status);

    return name ? name : "invalid status";
}
