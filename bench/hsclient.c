/*
 * hsclient: full TLS handshakes with status_request, for `make bench`.
 *
 * Why a client of our own: h2load, wrk and `openssl s_time` never send the
 * status_request extension (so no server ever staples for them), and h2load
 * and wrk resume sessions whenever the server lets them, which skips the
 * very work being measured. Here every TCP connection carries exactly one
 * full handshake: no session cache, no tickets asked for, nothing resumed.
 *
 *   hsclient -p PORT[,PORT...] [-H 127.0.0.1] [-s NAME | -s 'm%d.bench' -N 1000]
 *            [-n COUNT | -d SECONDS] [-t THREADS] [-r RATE] [-v 1.2|1.3]
 *            [-k rsa|ecdsa] [-x PERCENT] [-w SECONDS] [-T SECONDS]
 *            [-o FILE] [-C CAFILE]
 *
 * Every staple counted is verified: an OCSP response saying "successful",
 * signed by the served certificate's issuer (or a responder it
 * authorized), with a single response for the served certificate's CertID
 * (OCSP_resp_find_status), inside its validity. The issuer comes from
 * -C CAFILE (trusted: PEM certificates, e.g. the intermediate) or else from
 * the chain the server sent (then trusted as sent: it still proves the
 * response belongs to this certificate and is intact). A staple that fails
 * counts as stapled and as badstaple.
 *
 * Output, one line per class of connection (all, then those that asked for
 * a staple, then those that did not), key=value for the driver to parse:
 *   class=all handshakes=N stapled=S errors=E keymismatch=K badstaple=B
 *   staple_bytes=L secs=T rate=R p50_ms=.. p99_ms=.. p999_ms=.. max_ms=..
 * then, with several ports, one line per port:
 *   class=port:PORT handshakes=N stapled=S errors=E
 * and with -o FILE every handshake too, one line each: "1 1234 567890 0 17 1"
 * (asked for a staple; latency and start since the run's start, in
 * microseconds; which of the -p ports; which of the -N names, 0 without
 * -N; whether it carried a staple that verified), so that runs can be
 * pooled before percentiles, handshakes placed in time, servers told apart
 * and every name's staple checked.
 *
 * Ports and names are handed out from one sequence shared by all threads:
 * handshake k goes to port k % ports with name k / ports % N + 1, so that
 * -n N*ports covers every name on every port exactly once, whatever the
 * number of threads and however fast each of them is.
 * Latency: from connect() to the end of the client's side of the handshake
 * (CLOCK_MONOTONIC); the close that follows is not counted.
 *
 * SIGUSR1 ends a run early: no handshake is started after it, those under
 * way finish, and the report is the usual one (for runs whose end depends
 * on something else, such as a server's restart). -d or -n still bound it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_THREADS   256
#define MAX_PORTS     16
#define MAX_NAME      256
/* A stopped run still ends: -d is capped, and so is every socket wait. */
#define MAX_DURATION  3600.0

enum keypref { KEY_ANY, KEY_RSA, KEY_ECDSA };

struct options {
    const char *host;
    const char *port;
    const char *sni;          /* may hold one %d, filled in from 1..names */
    int names;                /* 0: sni used as is */
    long count;               /* total handshakes (count mode), or 0 */
    double duration;          /* seconds (duration mode), or 0 */
    int threads;
    double rate;              /* handshakes per second in total, 0: no pacing */
    int tls_version;          /* TLS1_2_VERSION, TLS1_3_VERSION or 0 */
    enum keypref key;
    int no_status_pct;        /* share of threads without status_request */
    double wait_secs;         /* retry refused connections this long */
    double timeout;           /* per socket operation */
    const char *raw_file;     /* -o: every latency, for pooling runs */
    const char *ca_file;      /* -C: issuers to verify staples against */
};

/* One successful handshake. */
struct sample {
    uint32_t lat_us;          /* from connect() to the end of the handshake */
    uint32_t at_us;           /* when it started, since the run's start */
    int port;                 /* which of the -p ports */
    int name;                 /* which of the -N names (1..N), or 0 */
    int stapled;              /* carried a staple that verified */
};

/* What one thread measured; merged by the main thread at the end. */
struct stats {
    struct sample *samples;
    size_t n, cap;
    long stapled, errors, keymismatch, badstaple;
    long staple_bytes;        /* size of the largest staple seen */
    long port_hs[MAX_PORTS], port_stapled[MAX_PORTS], port_errors[MAX_PORTS];
};

/* A class of handshakes (all, with or without status_request), merged. */
struct summary {
    uint32_t *lat_us;         /* sorted */
    size_t n;
    long stapled, errors, keymismatch, badstaple, staple_bytes;
};

struct shared {
    const struct options *opt;
    SSL_CTX *ctx;
    STACK_OF(X509) *cas;      /* -C: the issuers, or NULL */
    X509_STORE *trust;        /* -C: the same, as trust anchors */
    struct addrinfo *addr[MAX_PORTS];
    char *port[MAX_PORTS];
    int nports;
    struct timespec start;
    double start_secs;        /* the same, as now_secs() counts */
    long next_ticket;         /* count mode: handshakes handed out so far */
    long next_seq;            /* the next handshake's place: its port and name */
};

struct worker {
    pthread_t tid;
    int index;
    int want_status;
    struct shared *sh;
    struct stats st;
};

/* SIGUSR1: start no more handshakes. */
static volatile sig_atomic_t stop_requested;

/* ------------------------------------------------------------------ time */

static double now_secs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double since(const struct timespec *t0)
{
    return now_secs() - ((double)t0->tv_sec + (double)t0->tv_nsec / 1e9);
}

static void sleep_until(double t)
{
    struct timespec ts;
    double left = t - now_secs();

    if (left <= 0) {
        return;
    }
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* --------------------------------------------------------------- options */

static void usage(const char *why)
{
    if (why) {
        fprintf(stderr, "hsclient: %s\n", why);
    }
    fprintf(stderr,
        "usage: hsclient -p PORT[,PORT...] [-H HOST] [-s SNI [-N NAMES]]\n"
        "                [-n COUNT | -d SECONDS] [-t THREADS] [-r RATE]\n"
        "                [-v 1.2|1.3] [-k rsa|ecdsa] [-x PERCENT]\n"
        "                [-w SECONDS] [-T SECONDS] [-o FILE]\n"
        "  -p PORTS    one port, or several: connections go to each in turn\n"
        "  -s NAME     SNI server name; with -N, a pattern with one %%d\n"
        "  -N NAMES    rotate through NAME with %%d = 1..NAMES\n"
        "  -n COUNT    handshakes in total     -d SECONDS  or for this long\n"
        "  -t THREADS  concurrent connections  -r RATE     handshakes/s in total\n"
        "  -v VERSION  TLS version only        -k KEY      ask for this key type\n"
        "  -x PERCENT  threads that do not send status_request\n"
        "  -w SECONDS  retry refused connections this long (server starting)\n"
        "  -T SECONDS  timeout of each socket operation (default 30)\n"
        "  -C CAFILE   verify staples against these issuers (PEM)\n"
        "  -o FILE     also write every handshake to FILE\n"
        "              (\"STATUS LATENCY_US START_US PORT_INDEX NAME VERIFIED\")\n");
    exit(2);
}

/* Strict number parsing: garbage is an error, never a silent 0. */
static double parse_num(const char *s, double lo, double hi, const char *what)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hsclient: bad %s '%s' (%g..%g)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_version(struct options *o, const char *s)
{
    if (!strcmp(s, "1.2")) {
        o->tls_version = TLS1_2_VERSION;
    }
    else if (!strcmp(s, "1.3")) {
        o->tls_version = TLS1_3_VERSION;
    }
    else {
        usage("-v takes 1.2 or 1.3");
    }
}

static void parse_key(struct options *o, const char *s)
{
    if (!strcmp(s, "rsa")) {
        o->key = KEY_RSA;
    }
    else if (!strcmp(s, "ecdsa")) {
        o->key = KEY_ECDSA;
    }
    else {
        usage("-k takes rsa or ecdsa");
    }
}

/* A pattern must hold exactly one %d and no other conversion: it is handed
 * to snprintf. */
static int valid_pattern(const char *s)
{
    const char *p = strchr(s, '%');

    return p && p[1] == 'd' && !strchr(p + 2, '%') && strlen(s) < MAX_NAME - 8;
}

static void check_options(const struct options *o)
{
    if (!o->port) {
        usage("-p PORT is required");
    }
    if ((o->count > 0) == (o->duration > 0)) {
        usage("give exactly one of -n COUNT and -d SECONDS");
    }
    if (o->sni && (o->names ? !valid_pattern(o->sni) : !!strchr(o->sni, '%'))) {
        usage("-s: a plain name, or with -N a pattern with one %d");
    }
    if (o->names && !o->sni) {
        usage("-N needs -s PATTERN");
    }
}

static void parse_args(struct options *o, int argc, char **argv)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->threads = 1;
    o->timeout = 30;
    while ((c = getopt(argc, argv, "H:p:s:N:n:d:t:r:v:k:x:w:T:o:C:h")) != -1) {
        switch (c) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = optarg; break;
        case 's': o->sni = optarg; break;
        case 'N': o->names = (int)parse_num(optarg, 1, 1000000, "-N"); break;
        case 'n': o->count = (long)parse_num(optarg, 1, 1e9, "-n"); break;
        case 'd': o->duration = parse_num(optarg, 0.01, MAX_DURATION, "-d"); break;
        case 't': o->threads = (int)parse_num(optarg, 1, MAX_THREADS, "-t"); break;
        case 'r': o->rate = parse_num(optarg, 0, 1e6, "-r"); break;
        case 'v': parse_version(o, optarg); break;
        case 'k': parse_key(o, optarg); break;
        case 'x': o->no_status_pct = (int)parse_num(optarg, 0, 100, "-x"); break;
        case 'w': o->wait_secs = parse_num(optarg, 0, 600, "-w"); break;
        case 'T': o->timeout = parse_num(optarg, 0.1, 600, "-T"); break;
        case 'o': o->raw_file = optarg; break;
        case 'C': o->ca_file = optarg; break;
        default: usage(NULL);
        }
    }
    if (optind != argc) {
        usage("unexpected arguments");
    }
    check_options(o);
}

/* ------------------------------------------------------------------- TLS */

/* Signature algorithms decide which of a server's certificates (RSA or
 * ECDSA) it presents: the way real clients end up with one or the other. */
static int set_key_preference(SSL_CTX *ctx, enum keypref key)
{
    static const char rsa[] = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:"
                              "rsa_pss_rsae_sha512:rsa_pkcs1_sha256:"
                              "rsa_pkcs1_sha384:rsa_pkcs1_sha512";
    static const char ecdsa[] = "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:"
                                "ecdsa_secp521r1_sha512";

    switch (key) {
    case KEY_RSA:   return SSL_CTX_set1_sigalgs_list(ctx, rsa);
    case KEY_ECDSA: return SSL_CTX_set1_sigalgs_list(ctx, ecdsa);
    default:        return 1;
    }
}

static SSL_CTX *make_ctx(const struct options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        return NULL;
    }
    /* Full handshakes only: no tickets asked for (TLS 1.2), no client
     * session cache, so nothing can ever be resumed. The chain is not
     * verified: the server's cost is measured, not the client's. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (o->tls_version
        && (!SSL_CTX_set_min_proto_version(ctx, o->tls_version)
            || !SSL_CTX_set_max_proto_version(ctx, o->tls_version))) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!set_key_preference(ctx, o->key)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* -------------------------------------------------------------- sockets */

static void set_timeouts(int fd, double secs)
{
    struct timeval tv;

    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* One TCP connection; while the server is still starting (-w), refused
 * connections are retried every 10 ms until the deadline. */
static int tcp_connect(const struct shared *sh, const struct addrinfo *ai)
{
    double deadline = now_secs() + sh->opt->wait_secs;
    int one = 1;

    for (;;) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);

        if (fd < 0) {
            return -1;
        }
        set_timeouts(fd, sh->opt->timeout);
        /* Handshake messages are small and latency is measured. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            return fd;
        }
        close(fd);
        if (errno != ECONNREFUSED || now_secs() >= deadline) {
            return -1;
        }
        sleep_until(now_secs() + 0.01);
    }
}

/* A clean end: our close_notify, then read until the server's and its FIN.
 * The server then finishes its normal path (NewSessionTicket, close) instead
 * of hitting a reset, and as the server closes first, TIME_WAIT stays on its
 * side and the client's ephemeral ports are never exhausted. */
static void close_politely(SSL *ssl, int fd)
{
    char buf[4096];
    int i;

    set_timeouts(fd, 2);
    if (SSL_shutdown(ssl) >= 0) {
        for (i = 0; i < 64 && SSL_read(ssl, buf, sizeof(buf)) > 0; i++) {
        }
    }
    ERR_clear_error();
}

/* ------------------------------------------------------------ handshake */

static uint32_t to_us(double secs)
{
    double us = secs * 1e6;

    return us > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void record_sample(struct stats *st, double secs, double at, int port,
                          int name, int stapled)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 4096;
        struct sample *p = realloc(st->samples, cap * sizeof(*p));

        if (!p) {
            st->errors++;       /* cannot keep it: at least count it */
            return;
        }
        st->samples = p;
        st->cap = cap;
    }
    st->samples[st->n].lat_us = to_us(secs);
    st->samples[st->n].at_us = to_us(at);
    st->samples[st->n].port = port;
    st->samples[st->n].name = name;
    st->samples[st->n++].stapled = stapled;
}

/* The issuer of cert among certs, or NULL. */
static X509 *issuer_in(STACK_OF(X509) *certs, X509 *cert)
{
    int i;

    for (i = 0; certs && i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);

        if (X509_check_issued(c, cert) == X509_V_OK) {
            return c;
        }
    }
    return NULL;
}

/* Signature and CertID of the response against the served certificate
 * (see the top of the file); 1 when it holds. */
static int check_basic(OCSP_BASICRESP *bs, X509 *peer, X509 *issuer,
                       STACK_OF(X509) *chain, X509_STORE *trust)
{
    X509_STORE *own = NULL;
    OCSP_CERTID *id = NULL;
    ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
    int status, reason, ok = 0;

    if (!trust) {
        /* No -C: the issuer the server sent is the anchor. */
        if (!(own = X509_STORE_new()) || !X509_STORE_add_cert(own, issuer)) {
            goto done;
        }
        X509_STORE_set_flags(own, X509_V_FLAG_PARTIAL_CHAIN);
        trust = own;
    }
    ok = OCSP_basic_verify(bs, chain, trust, 0) > 0
         && (id = OCSP_cert_to_id(NULL, peer, issuer)) != NULL
         && OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd,
                                  &nextupd)
         && OCSP_check_validity(thisupd, nextupd, 300, -1);
done:
    OCSP_CERTID_free(id);
    X509_STORE_free(own);
    return ok;
}

static int staple_ok(const struct shared *sh, SSL *ssl,
                     const unsigned char *der, long len)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, len);
    OCSP_BASICRESP *bs = NULL;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *issuer = peer ? issuer_in(sh->cas, peer) : NULL;
    int ok = 0;

    if (peer && !issuer) {
        issuer = issuer_in(chain, peer);
    }
    if (resp && issuer
        && OCSP_response_status(resp) == OCSP_RESPONSE_STATUS_SUCCESSFUL
        && (bs = OCSP_response_get1_basic(resp)) != NULL) {
        ok = check_basic(bs, peer, issuer, chain, sh->trust);
    }
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return ok;
}

static int key_matches(SSL *ssl, enum keypref key)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pk = peer ? X509_get0_pubkey(peer) : NULL;
    int id = pk ? EVP_PKEY_get_base_id(pk) : 0;

    switch (key) {
    case KEY_RSA:   return id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS;
    case KEY_ECDSA: return id == EVP_PKEY_EC;
    default:        return 1;
    }
}

static void check_result(struct worker *w, SSL *ssl)
{
    const unsigned char *der = NULL;
    long len;

    if (!key_matches(ssl, w->sh->opt->key)) {
        w->st.keymismatch++;
    }
    if (!w->want_status) {
        return;
    }
    len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    if (len > 0 && der) {
        w->st.stapled++;
        if (len > w->st.staple_bytes) {
            w->st.staple_bytes = len;
        }
        /* Every one: a staple counted is a staple that verifies. */
        if (!staple_ok(w->sh, ssl, der, len)) {
            w->st.badstaple++;
        }
    }
}

/* The SNI of the name numbered NAME (1..N) of a -N pattern, or -s as is. */
static const char *sni_of(const struct options *o, int name, char *buf,
                          size_t size)
{
    if (!o->names) {
        return o->sni;
    }
    /* Only -s patterns with a single %d get here (valid_pattern). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, size, o->sni, name);
#pragma GCC diagnostic pop
    return buf;
}

/* One connection, one full handshake, to the next of the -p ports. */
static void one_handshake(struct worker *w)
{
    char buf[MAX_NAME];
    const struct options *o = w->sh->opt;
    /* With several ports, each name goes to every port in turn. */
    long seq = __atomic_fetch_add(&w->sh->next_seq, 1, __ATOMIC_RELAXED);
    int port = (int)(seq % w->sh->nports);
    int name = o->names ? (int)(seq / w->sh->nports % o->names) + 1 : 0;
    const char *sni = sni_of(o, name, buf, sizeof(buf));
    long stapled = w->st.stapled, bad = w->st.badstaple;
    double t0 = now_secs();
    SSL *ssl = NULL;
    int fd = tcp_connect(w->sh, w->sh->addr[port]);

    if (fd < 0 || !(ssl = SSL_new(w->sh->ctx))) {
        goto fail;
    }
    SSL_set_fd(ssl, fd);
    if (sni) {
        SSL_set_tlsext_host_name(ssl, sni);
    }
    if (w->want_status) {
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    }
    if (SSL_connect(ssl) != 1) {
        goto fail;
    }
    double secs = now_secs() - t0;

    check_result(w, ssl);
    record_sample(&w->st, secs, t0 - w->sh->start_secs, port, name,
                  w->st.stapled > stapled && w->st.badstaple == bad);
    w->st.port_hs[port]++;
    w->st.port_stapled[port] += w->st.stapled - stapled;
    close_politely(ssl, fd);
    SSL_free(ssl);
    close(fd);
    return;
fail:
    w->st.errors++;
    w->st.port_errors[port]++;
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0) {
        close(fd);
    }
}

/* Count mode hands out handshakes one by one, so COUNT is exact whatever
 * the number of threads; duration mode just watches the clock. */
static int more_work(struct shared *sh)
{
    if (stop_requested) {
        return 0;
    }
    if (sh->opt->count) {
        return __atomic_fetch_add(&sh->next_ticket, 1, __ATOMIC_RELAXED)
               < sh->opt->count;
    }
    return since(&sh->start) < sh->opt->duration;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct options *o = w->sh->opt;
    double interval = o->rate > 0 ? o->threads / o->rate : 0;
    /* Threads start spread over one interval so paced load is smooth. */
    double next = now_secs() + interval * w->index / o->threads;

    while (more_work(w->sh)) {
        if (interval > 0) {
            sleep_until(next);
            /* A late thread does not burst to catch up. */
            next += interval;
            if (next < now_secs()) {
                next = now_secs();
            }
        }
        one_handshake(w);
    }
    return NULL;
}

/* ---------------------------------------------------------------- report */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in milliseconds. */
static double pct_ms(const uint32_t *v, size_t n, double p)
{
    size_t rank;

    if (!n) {
        return 0;
    }
    rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    return v[(rank > n ? n : rank) - 1] / 1000.0;
}

/* The stats of every worker that matches `status` (-1: all), merged. */
static int merge(struct summary *out, const struct worker *ws, int nw, int status)
{
    size_t total = 0, j;
    int i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < nw; i++) {
        const struct stats *s = &ws[i].st;

        if (status >= 0 && ws[i].want_status != status) {
            continue;
        }
        total += s->n;
        out->stapled += s->stapled;
        out->errors += s->errors;
        out->keymismatch += s->keymismatch;
        out->badstaple += s->badstaple;
        if (s->staple_bytes > out->staple_bytes) {
            out->staple_bytes = s->staple_bytes;
        }
    }
    out->lat_us = malloc((total ? total : 1) * sizeof(uint32_t));
    if (!out->lat_us) {
        return -1;
    }
    for (i = 0; i < nw; i++) {
        for (j = 0; (status < 0 || ws[i].want_status == status) && j < ws[i].st.n; j++) {
            out->lat_us[out->n++] = ws[i].st.samples[j].lat_us;
        }
    }
    qsort(out->lat_us, out->n, sizeof(uint32_t), cmp_u32);
    return 0;
}

static void report(const char *cls, const struct worker *ws, int nw,
                   int status, double secs)
{
    struct summary m;

    if (merge(&m, ws, nw, status) != 0) {
        fprintf(stderr, "hsclient: out of memory\n");
        exit(1);
    }
    printf("class=%s handshakes=%zu stapled=%ld errors=%ld keymismatch=%ld "
           "badstaple=%ld staple_bytes=%ld secs=%.3f rate=%.1f p50_ms=%.3f "
           "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n", cls, m.n, m.stapled,
           m.errors, m.keymismatch, m.badstaple, m.staple_bytes, secs,
           secs > 0 ? m.n / secs : 0,
           pct_ms(m.lat_us, m.n, 0.50), pct_ms(m.lat_us, m.n, 0.99),
           pct_ms(m.lat_us, m.n, 0.999), pct_ms(m.lat_us, m.n, 1.0));
    free(m.lat_us);
}

static int write_raw(const char *file, const struct worker *ws, int nw)
{
    FILE *f = fopen(file, "w");
    int i;
    size_t j;

    if (!f) {
        perror(file);
        return -1;
    }
    for (i = 0; i < nw; i++) {
        for (j = 0; j < ws[i].st.n; j++) {
            const struct sample *x = &ws[i].st.samples[j];

            fprintf(f, "%d %u %u %d %d %d\n", ws[i].want_status, x->lat_us,
                    x->at_us, x->port, x->name, x->stapled);
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ main */

/* -C FILE: every certificate in it, as issuers and as trust anchors
 * (partial chains: an intermediate alone is enough). */
static void load_cas(struct shared *sh, const char *file)
{
    BIO *b = BIO_new_file(file, "r");
    X509 *x;

    sh->cas = sk_X509_new_null();
    sh->trust = X509_STORE_new();
    if (!b || !sh->cas || !sh->trust) {
        fprintf(stderr, "hsclient: cannot read %s\n", file);
        exit(1);
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(sh->trust, x);
        sk_X509_push(sh->cas, x);
    }
    ERR_clear_error();
    BIO_free(b);
    if (sk_X509_num(sh->cas) == 0) {
        fprintf(stderr, "hsclient: no certificate in %s\n", file);
        exit(1);
    }
    X509_STORE_set_flags(sh->trust, X509_V_FLAG_PARTIAL_CHAIN);
}

/* -p takes one port, or several separated by commas: connections then go
 * to each in turn, so that servers measured side by side share every
 * moment of the run (and whatever else the machine does meanwhile). */
static void resolve(struct shared *sh, const struct options *o)
{
    struct addrinfo hints;
    char *list = strdup(o->port), *save = NULL, *p;   /* kept: names point in */
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!list) {
        usage("out of memory");
    }
    for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (sh->nports == MAX_PORTS) {
            usage("too many ports");
        }
        rc = getaddrinfo(o->host, p, &hints, &sh->addr[sh->nports]);
        if (rc) {
            fprintf(stderr, "hsclient: %s:%s: %s\n", o->host, p, gai_strerror(rc));
            exit(1);
        }
        sh->port[sh->nports++] = p;
    }
    if (!sh->nports) {
        usage("-p: no port");
    }
}

/* With several ports, what each of them got. */
static void report_ports(const struct shared *sh, const struct worker *ws, int nw)
{
    int p, i;

    for (p = 0; sh->nports > 1 && p < sh->nports; p++) {
        long hs = 0, stapled = 0, errors = 0;

        for (i = 0; i < nw; i++) {
            hs += ws[i].st.port_hs[p];
            stapled += ws[i].st.port_stapled[p];
            errors += ws[i].st.port_errors[p];
        }
        printf("class=port:%s handshakes=%ld stapled=%ld errors=%ld\n",
               sh->port[p], hs, stapled, errors);
    }
}

static void on_usr1(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGUSR1 is taken by the main thread only: the workers' sockets have
 * timeouts, and a signal would make their reads and writes fail with EINTR
 * (SA_RESTART does not restart those), i.e. a handshake counted as an
 * error. SIG_BLOCK before the workers start (they inherit the mask), then
 * SIG_UNBLOCK in the main thread alone. */
static void mask_usr1(int how)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(how, &set, NULL);
}

static void catch_usr1(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

static int run_workers(struct worker *ws, struct shared *sh)
{
    const struct options *o = sh->opt;
    int i, quiet = (o->threads * o->no_status_pct + 50) / 100;

    /* The first threads are the ones without status_request: a whole
     * thread each, so a stapling client stuck on a server lock can never
     * hold up a client that did not ask for a staple. A small share still
     * gets one thread, as long as another one asks for staples. */
    if (o->no_status_pct > 0 && quiet == 0 && o->threads > 1) {
        quiet = 1;
    }
    catch_usr1();
    mask_usr1(SIG_BLOCK);
    for (i = 0; i < o->threads; i++) {
        ws[i].index = i;
        ws[i].sh = sh;
        ws[i].want_status = i >= quiet;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "hsclient: cannot start thread %d\n", i);
            return -1;
        }
    }
    mask_usr1(SIG_UNBLOCK);
    for (i = 0; i < o->threads; i++) {
        pthread_join(ws[i].tid, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct worker ws[MAX_THREADS];
    struct options o;
    struct shared sh;
    double secs;
    int i;

    parse_args(&o, argc, argv);
    memset(&sh, 0, sizeof(sh));
    sh.opt = &o;
    resolve(&sh, &o);
    if (o.ca_file) {
        load_cas(&sh, o.ca_file);
    }
    sh.ctx = make_ctx(&o);
    if (!sh.ctx) {
        fprintf(stderr, "hsclient: cannot set up TLS\n");
        ERR_print_errors_fp(stderr);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &sh.start);
    sh.start_secs = now_secs();
    if (run_workers(ws, &sh) != 0) {
        return 1;
    }
    secs = since(&sh.start);
    report("all", ws, o.threads, -1, secs);
    report("status", ws, o.threads, 1, secs);
    report("nostatus", ws, o.threads, 0, secs);
    report_ports(&sh, ws, o.threads);
    if (o.raw_file && write_raw(o.raw_file, ws, o.threads) != 0) {
        return 1;
    }
    for (i = 0; i < o.threads; i++) {
        free(ws[i].st.samples);
    }
    SSL_CTX_free(sh.ctx);
    sk_X509_pop_free(sh.cas, X509_free);
    X509_STORE_free(sh.trust);
    for (i = 0; i < sh.nports; i++) {
        freeaddrinfo(sh.addr[i]);
    }
    return 0;
}
