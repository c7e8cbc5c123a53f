/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Unit tests (TAP) of the refresh policy formulas and of the stapling
 * record encoding: what decides when we fetch, and what comes back from
 * shared memory, disk or a network cache.
 */

#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "refresh_policy.h"
#include "stapling_record.h"

static int n_tests, n_failed;

static void ok(int cond, const char *what)
{
    n_tests++;
    if (!cond) {
        n_failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, what);
}

#define SEC(n) apr_time_from_sec(n)

static ocsp_verdict verdict(apr_time_t this_update, apr_time_t expires)
{
    ocsp_verdict v;

    memset(&v, 0, sizeof(v));
    v.cert_status = OCSP_CERT_GOOD;
    v.this_update = this_update;
    v.next_update = expires;
    v.expires = expires;
    v.revoke_reason = -1;
    return v;
}

static void test_renew_at(void)
{
    apr_time_t t0 = SEC(1000000);
    ocsp_verdict day = verdict(t0, t0 + SEC(86400));
    refresh_window half = { 50, 0 }, hours = { 0, SEC(6 * 3600) };
    refresh_window long_window = { 0, SEC(2 * 86400) };
    apr_time_t r;

    ok(refresh_renew_at(&day, t0, &half, 0.0) == t0 + SEC(43200),
       "50%: renew halfway through the validity without jitter");
    r = refresh_renew_at(&day, t0, &half, 0.999);
    ok(r < t0 + SEC(43200) && r >= t0 + SEC(43200) - SEC(4320),
       "jitter takes at most 10% of the time left off");
    ok(refresh_renew_at(&day, t0, &hours, 0.0) == t0 + SEC(18 * 3600),
       "duration: renew that long before nextUpdate");
    ok(refresh_renew_at(&day, t0, &long_window, 0.0) == t0 + REFRESH_MIN_INTERVAL,
       "a window longer than the validity renews at once (after the minimum)");
    ok(refresh_renew_at(&day, t0 + SEC(86399), &half, 0.0) == t0 + SEC(86400),
       "never after nextUpdate");
    ok(refresh_renew_at(&day, t0 + SEC(50000), &half, 0.0)
       == t0 + SEC(50000) + REFRESH_MIN_INTERVAL,
       "never sooner than the minimum interval after a fetch");
}

static void test_retry_at(void)
{
    apr_time_t now = SEC(5000000);

    ok(refresh_retry_at(now, 1, 1, 0.0) == now + REFRESH_BACKOFF_MIN,
       "first failure: minimum backoff");
    ok(refresh_retry_at(now, 3, 1, 0.0) == now + 4 * REFRESH_BACKOFF_MIN,
       "backoff doubles");
    ok(refresh_retry_at(now, 30, 1, 0.0) == now + REFRESH_BACKOFF_MAX,
       "backoff stops at the maximum");
    ok(refresh_retry_at(now, 30, 0, 0.0) == now + REFRESH_BACKOFF_MAX_COLD,
       "with nothing valid to staple, retry at least once a minute");
    ok(refresh_retry_at(now, 1, 1, 0.999) <= now + REFRESH_BACKOFF_MIN * 5 / 4,
       "backoff jitter adds at most 25%");
    ok(refresh_retry_at(now, 1000000, 1, 0.0) == now + REFRESH_BACKOFF_MAX,
       "no overflow after very many failures");
}

static void test_follow_at(void)
{
    apr_time_t t = SEC(1000);

    ok(refresh_follow_at(t, t + SEC(100), 0.0) == t + REFRESH_FLEET_DELAY,
       "fleet: follow another server's plan after a small delay");
    ok(refresh_follow_at(t, t + SEC(100), 0.999) < t + REFRESH_FLEET_DELAY
       + SEC(10) && refresh_follow_at(t, t + SEC(100), 0.5) > t
       + REFRESH_FLEET_DELAY, "fleet: plus up to 10% of the time left");
    ok(refresh_follow_at(t, t - SEC(5), 0.5) == t + REFRESH_FLEET_DELAY,
       "fleet: an expired plan is followed after the delay only");
}

static stapling_record sample(void)
{
    static const unsigned char der[] = { 0x30, 0x03, 0x0a, 0x01, 0x00 };
    stapling_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.verdict = verdict(SEC(100), SEC(200));
    rec.verdict.cert_status = OCSP_CERT_REVOKED;
    rec.verdict.revoked_at = SEC(50);
    rec.verdict.revoke_reason = 1;
    rec.fetched_at = SEC(110);
    rec.attempted_at = SEC(120);
    rec.next_attempt = SEC(150);
    rec.source = STAPLING_FROM_SHARED;
    rec.origin = "web2.example.org";
    rec.failures = 3;
    rec.der = der;
    rec.der_len = sizeof(der);
    rec.error = "responder said tryLater";
    return rec;
}

static void test_record_roundtrip(apr_pool_t *p)
{
    stapling_record in = sample(), out;
    unsigned char *buf;
    apr_size_t len;

    ok(stapling_record_encode(&buf, &len, &in, p) == APR_SUCCESS, "encode");
    ok(stapling_record_decode(&out, buf, len, p) == APR_SUCCESS, "decode");
    ok(!memcmp(&in.verdict, &out.verdict, sizeof(in.verdict))
       && in.fetched_at == out.fetched_at
       && in.attempted_at == out.attempted_at && in.source == out.source
       && in.next_attempt == out.next_attempt && in.failures == out.failures,
       "every field survives the round trip");
    ok(out.der_len == in.der_len && !memcmp(out.der, in.der, in.der_len)
       && !strcmp(out.error, in.error) && !strcmp(out.origin, in.origin),
       "DER, error text and origin survive");
}

static void test_record_corrupt(apr_pool_t *p)
{
    stapling_record in = sample(), out;
    unsigned char *buf, *copy;
    apr_size_t len, i;
    int all_short_refused = 1, no_crash = 1;

    stapling_record_encode(&buf, &len, &in, p);
    for (i = 0; i < len; i++) {
        all_short_refused &= stapling_record_decode(&out, buf, i, p)
                             == APR_EINVAL;
    }
    ok(all_short_refused, "every truncated record is refused");
    copy = apr_pmemdup(p, buf, len);
    copy[0] = 'X';
    ok(stapling_record_decode(&out, copy, len, p) == APR_EINVAL,
       "a wrong magic is refused");
    copy = apr_pcalloc(p, len + 1);
    memcpy(copy, buf, len);
    ok(stapling_record_decode(&out, copy, len + 1, p) == APR_EINVAL,
       "trailing bytes are refused");
    for (i = 0; i < len; i++) {
        copy = apr_pmemdup(p, buf, len);
        copy[i] ^= 0xff;
        if (stapling_record_decode(&out, copy, len, p) == APR_SUCCESS
            && out.der_len && out.der + out.der_len > copy + len) {
            no_crash = 0;
        }
    }
    ok(no_crash, "a flipped byte never makes the DER point outside the record");
}

static void test_stapleable(void)
{
    stapling_record rec = sample();

    rec.verdict.cert_status = OCSP_CERT_GOOD;
    ok(stapling_record_stapleable(&rec, SEC(150), 0), "good and valid: stapled");
    ok(!stapling_record_stapleable(&rec, SEC(200), 1),
       "at its expiry: never stapled, even with errors accepted");
    rec.verdict.cert_status = OCSP_CERT_REVOKED;
    ok(stapling_record_stapleable(&rec, SEC(150), 0), "revoked: stapled");
    rec.verdict.cert_status = OCSP_CERT_UNKNOWN;
    ok(!stapling_record_stapleable(&rec, SEC(150), 0)
       && stapling_record_stapleable(&rec, SEC(150), 1),
       "unknown: only with OCSPStaplingReturnResponderErrors on");
    rec.verdict.cert_status = OCSP_CERT_NONE;
    rec.verdict.resp_status = 3;
    ok(!stapling_record_stapleable(&rec, SEC(150), 0)
       && stapling_record_stapleable(&rec, SEC(150), 1),
       "a responder's tryLater: only with errors accepted");
    rec.der_len = 0;
    ok(!stapling_record_stapleable(&rec, SEC(150), 1),
       "a record without DER (a fetch plan only) is never stapled");
}

/* rec with a response of status st (resp_status 3 = tryLater when st is
 * NONE), thisUpdate tu, valid until SEC(200). */
static stapling_record answer(ocsp_cert_status st, apr_time_t tu)
{
    stapling_record rec = sample();

    rec.verdict.this_update = tu;
    rec.verdict.cert_status = st;
    rec.verdict.resp_status = st == OCSP_CERT_NONE ? 3 : 0;
    return rec;
}

static void test_order(void)
{
    apr_time_t now = SEC(150);
    stapling_record good = answer(OCSP_CERT_GOOD, SEC(100));
    stapling_record newer = answer(OCSP_CERT_GOOD, SEC(120));
    stapling_record revoked = answer(OCSP_CERT_REVOKED, SEC(110));
    stapling_record unknown = answer(OCSP_CERT_UNKNOWN, SEC(140));
    stapling_record trylater = answer(OCSP_CERT_NONE, 0);
    stapling_record none, expired = answer(OCSP_CERT_GOOD, SEC(120));

    memset(&none, 0, sizeof(none));
    expired.verdict.expires = SEC(140);
    ok(stapling_record_order(&newer, &good, now) == STAPLING_REPLACE,
       "a later thisUpdate replaces");
    ok(stapling_record_order(&good, &revoked, now) == STAPLING_KEEP,
       "an older good never replaces a newer revoked");
    ok(stapling_record_order(&revoked, &good, now) == STAPLING_REPLACE,
       "a newer revoked replaces good");
    ok(stapling_record_order(&good, &good, now) == STAPLING_TIE,
       "the same thisUpdate: a tie for producedAt");
    ok(stapling_record_order(&unknown, &good, now) == STAPLING_KEEP
       && stapling_record_order(&unknown, &revoked, now) == STAPLING_KEEP,
       "unknown never replaces good or revoked, however new");
    ok(stapling_record_order(&trylater, &good, now) == STAPLING_KEEP,
       "an error answer never replaces a response");
    ok(stapling_record_order(&good, &unknown, now) == STAPLING_REPLACE
       && stapling_record_order(&good, &trylater, now) == STAPLING_REPLACE,
       "good replaces unknown or an error answer, even if older");
    ok(stapling_record_order(&unknown, &none, now) == STAPLING_REPLACE
       && stapling_record_order(&trylater, &none, now) == STAPLING_REPLACE,
       "with nothing else, an error answer or unknown is taken");
    ok(stapling_record_order(&good, &expired, now) == STAPLING_KEEP
       && stapling_record_order(&newer, &good, now) == STAPLING_REPLACE,
       "an older response never replaces a newer one, even an expired one");
    expired.der_len = 0;
    expired.der = NULL;
    ok(stapling_record_order(&good, &expired, now) == STAPLING_KEEP,
       "a record without DER keeps the thisUpdate mark");
    ok(stapling_record_order(&unknown, &expired, now) == STAPLING_REPLACE,
       "an unknown is taken when nothing can be stapled");
    ok(stapling_record_order(&expired, &none, now) == STAPLING_KEEP
       && stapling_record_order(&none, &good, now) == STAPLING_KEEP,
       "an expired response or a bare plan replaces nothing");
    newer.fetched_at = SEC(1);
    good.fetched_at = SEC(149);
    ok(stapling_record_order(&good, &newer, now) == STAPLING_KEEP,
       "fetched_at plays no part");
}

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    test_renew_at();
    test_retry_at();
    test_follow_at();
    test_record_roundtrip(p);
    test_record_corrupt(p);
    test_stapleable();
    test_order();
    printf("1..%d\n", n_tests);
    apr_pool_destroy(p);
    apr_terminate();
    return n_failed ? 1 : 0;
}
