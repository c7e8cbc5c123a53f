/*
 * fastocsp: a loopback OCSP responder fast enough to measure the server,
 * not itself, for `make bench` (10,000 certificates).
 *
 * scripts/ocsp_responder.pl runs one `openssl ocsp` per request: 20 s of
 * CPU for 1,000 certificates, so a cold start of 1,000 vhosts measured the
 * responder. Here every response is signed once, at start (or on the first
 * request with -L), kept in memory as DER and served from there until it is
 * older than -R seconds; the event loop is one thread on epoll, HTTP/1.1
 * with keep-alive.
 *
 *   fastocsp -p PORT -c ISSUER.crt -k ISSUER.key -i index.txt -l LOG
 *            [-s SIGNER.crt -K SIGNER.key] [-V VALID] [-R RESIGN]
 *            [-P PIDFILE] [-L]
 *
 *   -c/-k   the CA whose certificates are answered for (the issuer in the
 *           request's CertID); its key signs unless -s/-K name a delegated
 *           signer (its certificate is then sent in the response)
 *   -i      an OpenSSL CA index (index.txt: V/R/E, expiry, revocation,
 *           serial in hex, file, subject), as scripts/mkpki.sh writes it;
 *           serials not in it are answered "unknown"
 *   -V      nextUpdate = thisUpdate + VALID seconds (default 3600)
 *   -R      sign again a response older than RESIGN seconds (default VALID/2)
 *   -L      sign lazily, at the first request for each serial
 *
 * Requests: POST (body: the DER request) or RFC 5019 GET (the last path
 * segment is the URL-encoded base64 request) on any path. A request for
 * another issuer gets the `unauthorized` error response.
 *
 * Log: one line per request, the fields of scripts/ocsp_responder.pl, so
 * that BenchKit reads both alike:
 *   <epoch> <mode> <http-status> <request-bytes> <response-bytes> <path>
 *   <peer> http <method> <new|reused> <connection>
 * <connection> numbers the accepted connections (1, 2, ...): the bench's
 * "connections per 1,000 fetches" comes from it. The PID is written to
 * -P once the socket listens; SIGTERM/SIGINT end it cleanly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MAX_REQUEST   (64 * 1024)     /* headers + body of one request */
#define MAX_EVENTS    64
#define SERIAL_HEX    80

struct options {
    int port;
    const char *issuer_file, *issuer_key, *signer_file, *signer_key;
    const char *index_file, *log_file, *pid_file;
    long valid, resign;
    int lazy;
};

/* One certificate of the index and its response, once signed. */
struct serial_entry {
    char hex[SERIAL_HEX];             /* upper case, no leading zeros */
    int status;                       /* V_OCSP_CERTSTATUS_* */
    time_t revoked_at;
    unsigned char *der;               /* the whole OCSPResponse */
    int der_len;
    time_t signed_at;
};

struct responder {
    const struct options *opt;
    X509 *issuer, *signer;
    EVP_PKEY *key;
    OCSP_CERTID *issuer_id;           /* serial 0: compared without it */
    struct serial_entry *serials;     /* sorted by hex */
    size_t nserials;
    struct serial_entry unknown;      /* the "unknown" answer, per request */
    unsigned char *unauthorized;      /* the error response */
    int unauthorized_len;
    FILE *log;
    long connections, requests;
};

struct conn {
    int fd;
    long number;                      /* 1, 2, ... in accept order */
    int requests;                     /* answered on this connection */
    char peer[INET6_ADDRSTRLEN];
    char in[MAX_REQUEST];
    size_t in_len;
    char *out;                        /* pending answer, partly written */
    size_t out_len, out_off;
    int close_after;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "fastocsp: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* ----------------------------------------------------------------- PKI */

static X509 *read_cert(const char *file)
{
    FILE *f = fopen(file, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f) {
        fclose(f);
    }
    if (!x) {
        fprintf(stderr, "fastocsp: %s: ", file);
        die("no certificate");
    }
    return x;
}

static EVP_PKEY *read_key(const char *file)
{
    FILE *f = fopen(file, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

    if (f) {
        fclose(f);
    }
    if (!k) {
        fprintf(stderr, "fastocsp: %s: ", file);
        die("no private key");
    }
    return k;
}

/* Serials are compared as hex without leading zeros, upper case: the
 * index may say "0A12" where the request's INTEGER gives "A12". */
static void normalise_hex(char *dst, const char *src)
{
    size_t i = 0;

    while (*src == '0' && src[1]) {
        src++;
    }
    for (; *src && i < SERIAL_HEX - 1; src++) {
        dst[i++] = (char)(*src >= 'a' && *src <= 'f' ? *src - 32 : *src);
    }
    dst[i] = '\0';
}

static int cmp_serial(const void *a, const void *b)
{
    return strcmp(((const struct serial_entry *)a)->hex,
                  ((const struct serial_entry *)b)->hex);
}

/* "YYMMDDHHMMSSZ[,reason]" of a revoked line. */
static time_t index_time(const char *s)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%2d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
        return time(NULL);
    }
    tm.tm_year += tm.tm_year < 50 ? 100 : 0;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

/* One index line: status, expiry, revocation, serial, file, subject
 * (tab-separated; the revocation field may be empty). */
static int parse_index_line(char *line, struct serial_entry *e)
{
    char *field[4];
    int i;

    for (i = 0; i < 4; i++) {
        field[i] = line;
        line = strchr(line, '\t');
        if (!line) {
            return i == 3 ? 0 : -1;   /* a short last line: serial last */
        }
        *line++ = '\0';
    }
    memset(e, 0, sizeof(*e));
    normalise_hex(e->hex, field[3]);
    e->status = field[0][0] == 'R' ? V_OCSP_CERTSTATUS_REVOKED
                                   : V_OCSP_CERTSTATUS_GOOD;
    if (e->status == V_OCSP_CERTSTATUS_REVOKED) {
        e->revoked_at = index_time(field[2]);
    }
    return 0;
}

static void load_index(struct responder *r, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[4096];
    size_t cap = 1024;

    if (!f) {
        die("cannot open the index");
    }
    r->serials = malloc(cap * sizeof(*r->serials));
    while (r->serials && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (r->nserials == cap) {
            cap *= 2;
            r->serials = realloc(r->serials, cap * sizeof(*r->serials));
            if (!r->serials) {
                break;
            }
        }
        if (line[0] && parse_index_line(line, &r->serials[r->nserials]) == 0) {
            r->nserials++;
        }
    }
    fclose(f);
    if (!r->serials) {
        die("out of memory");
    }
    qsort(r->serials, r->nserials, sizeof(*r->serials), cmp_serial);
}

/* ------------------------------------------------------------- signing */

static OCSP_CERTID *certid_for(const struct responder *r, const char *hex)
{
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    OCSP_CERTID *id = NULL;

    if (BN_hex2bn(&bn, hex) && (serial = BN_to_ASN1_INTEGER(bn, NULL))) {
        id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(r->issuer),
                              X509_get0_pubkey_bitstr(r->issuer), serial);
    }
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    return id;
}

/* Signs e's response now: thisUpdate now, nextUpdate now + VALID. */
static int sign_entry(struct responder *r, struct serial_entry *e,
                      const OCSP_CERTID *asked)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = asked ? OCSP_CERTID_dup((OCSP_CERTID *)asked)
                            : certid_for(r, e->hex);
    time_t now = time(NULL);
    ASN1_TIME *thisupd = ASN1_TIME_set(NULL, now);
    ASN1_TIME *nextupd = ASN1_TIME_set(NULL, now + r->opt->valid);
    ASN1_TIME *rev = e->status == V_OCSP_CERTSTATUS_REVOKED
                     ? ASN1_TIME_set(NULL, e->revoked_at) : NULL;
    OCSP_RESPONSE *resp = NULL;
    unsigned char *der = NULL;
    int len = -1;
    /* A delegated signer sends its certificate; the CA itself does not
     * need to (the client has it), which keeps the staple small. */
    unsigned long flags = r->signer == r->issuer ? OCSP_NOCERTS : 0;

    if (bs && id && thisupd && nextupd
        && OCSP_basic_add1_status(bs, id, e->status, OCSP_REVOKED_STATUS_NOSTATUS,
                                  rev, thisupd, nextupd)
        && OCSP_basic_sign(bs, r->signer, r->key, EVP_sha256(), NULL, flags)
        && (resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs))) {
        len = i2d_OCSP_RESPONSE(resp, &der);
    }
    OCSP_RESPONSE_free(resp);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(thisupd);
    ASN1_TIME_free(nextupd);
    ASN1_TIME_free(rev);
    if (len <= 0) {
        ERR_print_errors_fp(stderr);
        return -1;
    }
    OPENSSL_free(e->der);
    e->der = der;
    e->der_len = len;
    e->signed_at = now;
    return 0;
}

static void presign_all(struct responder *r)
{
    size_t i;

    for (i = 0; i < r->nserials; i++) {
        if (sign_entry(r, &r->serials[i], NULL) != 0) {
            die("cannot sign a response");
        }
    }
}

static void make_unauthorized(struct responder *r)
{
    OCSP_RESPONSE *resp = OCSP_response_create(OCSP_RESPONSE_STATUS_UNAUTHORIZED,
                                               NULL);

    r->unauthorized_len = resp ? i2d_OCSP_RESPONSE(resp, &r->unauthorized) : -1;
    OCSP_RESPONSE_free(resp);
    if (r->unauthorized_len <= 0) {
        die("cannot encode the unauthorized response");
    }
}

/* The request's first CertID: for our issuer (SHA-1 hashes of its name
 * and key, what the module and mod_ssl send), or NULL. */
static OCSP_CERTID *asked_id(const struct responder *r, OCSP_REQUEST *req)
{
    OCSP_ONEREQ *one = OCSP_request_onereq_count(req) > 0
                       ? OCSP_request_onereq_get0(req, 0) : NULL;
    OCSP_CERTID *id = one ? OCSP_onereq_get0_id(one) : NULL;

    return id && OCSP_id_issuer_cmp(id, r->issuer_id) == 0 ? id : NULL;
}

/* The DER answer to a DER request (never NULL): from memory, signed again
 * when older than RESIGN, "unknown" for serials outside the index. */
static const unsigned char *answer(struct responder *r, const unsigned char *der,
                                   long len, int *plen, const char **pmode)
{
    OCSP_REQUEST *req = d2i_OCSP_REQUEST(NULL, &der, len);
    OCSP_CERTID *id = req ? asked_id(r, req) : NULL;
    struct serial_entry key, *e = NULL;
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL;

    *pmode = "unauthorized";
    if (id && OCSP_id_get0_info(NULL, NULL, NULL, &serial, id)
        && (bn = ASN1_INTEGER_to_BN(serial, NULL)) && (hex = BN_bn2hex(bn))) {
        normalise_hex(key.hex, hex);
        e = bsearch(&key, r->serials, r->nserials, sizeof(key), cmp_serial);
        if (!e) {
            e = &r->unknown;          /* signed for this request's CertID */
            e->status = V_OCSP_CERTSTATUS_UNKNOWN;
            e->signed_at = 0;
        }
        if ((!e->der || time(NULL) - e->signed_at >= r->opt->resign)
            && sign_entry(r, e, e == &r->unknown ? id : NULL) != 0) {
            e = NULL;
        }
        *pmode = e == &r->unknown ? "unknown" : "good";
    }
    OPENSSL_free(hex);
    BN_free(bn);
    OCSP_REQUEST_free(req);
    if (!e) {
        *plen = r->unauthorized_len;
        return r->unauthorized;
    }
    *plen = e->der_len;
    return e->der;
}

/* ---------------------------------------------------------------- HTTP */

/* RFC 5019 GET: the last path segment, URL-decoded, base64 to DER. */
static long get_request_der(const char *path, unsigned char *out, size_t cap)
{
    const char *seg = strrchr(path, '/');
    char b64[MAX_REQUEST];
    size_t n = 0;
    int len;

    for (seg = seg ? seg + 1 : path; *seg && n < sizeof(b64) - 1; seg++) {
        unsigned int c;

        if (*seg == '%' && sscanf(seg + 1, "%2x", &c) == 1) {
            b64[n++] = (char)c;
            seg += 2;
        }
        else {
            b64[n++] = *seg;
        }
    }
    b64[n] = '\0';
    if (n % 4 || n / 4 * 3 > cap) {
        return -1;
    }
    len = EVP_DecodeBlock(out, (unsigned char *)b64, (int)n);
    if (len < 0) {
        return -1;
    }
    while (n > 0 && b64[--n] == '=') {
        len--;                        /* EVP_DecodeBlock counts the padding */
    }
    return len;
}

static const char *header(const char *head, const char *name)
{
    const char *p = head;
    size_t n = strlen(name);

    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            p += n + 1;
            return p + strspn(p, " \t");
        }
    }
    return NULL;
}

static void log_request(struct responder *r, struct conn *c, const char *mode,
                        int status, long reqlen, int resplen, const char *path,
                        const char *method)
{
    struct timeval tv;
    char safe[64];
    size_t i;

    /* The path without a GET's request part, log-safe, as the Perl one. */
    snprintf(safe, sizeof(safe), "%s", path);
    if (!strcmp(method, "GET") && strrchr(safe, '/')) {
        *strrchr(safe, '/') = '\0';
    }
    for (i = 0; safe[i]; i++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789_./-", safe[i])) {
            snprintf(safe, sizeof(safe), "-");
            break;
        }
    }
    gettimeofday(&tv, NULL);
    fprintf(r->log, "%ld.%06ld %s %d %ld %d %s %s http %s %s %ld\n",
            (long)tv.tv_sec, (long)tv.tv_usec, mode, status, reqlen, resplen,
            safe[0] ? safe : "/", c->peer, method,
            c->requests ? "reused" : "new", c->number);
    fflush(r->log);
    r->requests++;
}

/* Queues the HTTP answer on c (body may be NULL for an error status). */
static int queue_answer(struct conn *c, int status, const unsigned char *body,
                        int len)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %d\r\nConnection: %s\r\n\r\n",
                      status, status == 200 ? "OK" : "Bad Request",
                      status == 200 ? "application/ocsp-response" : "text/plain",
                      len, c->close_after ? "close" : "keep-alive");

    c->out = malloc((size_t)hl + (size_t)len);
    if (!c->out) {
        return -1;
    }
    memcpy(c->out, head, (size_t)hl);
    if (len) {
        memcpy(c->out + hl, body, (size_t)len);
    }
    c->out_len = (size_t)hl + (size_t)len;
    c->out_off = 0;
    return 0;
}

/* A whole request is in c->in (head_len bytes of head, then the body):
 * answers it. */
static int serve(struct responder *r, struct conn *c, size_t head_len,
                 long body_len)
{
    static unsigned char der[MAX_REQUEST];
    char method[8] = "-", path[MAX_REQUEST / 2] = "";
    int minor = 1, len = 0, status = 400;
    const char *conn_hdr = header(c->in, "Connection"), *mode = "-";
    const unsigned char *body = NULL;
    long reqlen = -1;

    sscanf(c->in, "%7s %32767s HTTP/1.%d", method, path, &minor);
    c->close_after = minor ? conn_hdr && !strncasecmp(conn_hdr, "close", 5)
                           : !(conn_hdr && !strncasecmp(conn_hdr, "keep-alive", 10));
    if (!strcmp(method, "POST")) {
        reqlen = body_len;
        memcpy(der, c->in + head_len, (size_t)body_len);
    }
    else if (!strcmp(method, "GET")) {
        reqlen = get_request_der(path, der, sizeof(der));
    }
    if (reqlen > 0) {
        body = answer(r, der, reqlen, &len, &mode);
        status = 200;
    }
    else {
        c->close_after = 1;
    }
    log_request(r, c, mode, status, reqlen < 0 ? 0 : reqlen, len, path, method);
    c->requests++;
    return queue_answer(c, status, body, len);
}

/* Whether c->in holds a whole request; if so, serves it and drops it from
 * the buffer. -1: a request we cannot take (too large, no length). */
static int try_request(struct responder *r, struct conn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    const char *cl;
    size_t head_len, total;
    long body_len = 0;

    if (!end) {
        return c->in_len >= sizeof(c->in) - 1 ? -1 : 0;
    }
    *end = '\0';                      /* headers as a string; body after */
    head_len = (size_t)(end - c->in) + 4;
    if ((cl = header(c->in, "Content-Length"))) {
        body_len = strtol(cl, NULL, 10);
    }
    total = head_len + (size_t)body_len;
    if (body_len < 0 || total > sizeof(c->in)) {
        return -1;
    }
    if (c->in_len < total) {
        *end = '\r';
        return 0;
    }
    if (serve(r, c, head_len, body_len) != 0) {
        return -1;
    }
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    return 1;
}

/* ---------------------------------------------------------- event loop */

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Writes what is pending; 1: all written, 0: try later, -1: failed. */
static int flush_out(struct conn *c)
{
    while (c->out && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    return 1;
}

/* Answers every whole request buffered in c while its answers go out at
 * once; 0: wait for more (input, or room to write), -1: close c. */
static int drain(struct responder *r, struct conn *c)
{
    int rc;

    while (!c->out && (rc = try_request(r, c)) != 0) {
        if (rc < 0 || (rc = flush_out(c)) < 0 || (rc == 1 && c->close_after)) {
            return -1;
        }
    }
    return 0;
}

/* Readable or writable: writes what is pending, reads until the socket is
 * empty, answers every whole request. */
static void on_conn(struct responder *r, int ep, struct conn *c)
{
    struct epoll_event ev;

    if (flush_out(c) < 0 || (!c->out && c->close_after) || drain(r, c) < 0) {
        conn_close(ep, c);
        return;
    }
    while (!c->out) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);

        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            conn_close(ep, c);
            return;
        }
        if (n < 0) {
            break;                    /* EAGAIN: wait for more */
        }
        c->in_len += (size_t)n;
        if (drain(r, c) < 0) {
            conn_close(ep, c);
            return;
        }
    }
    ev.events = EPOLLIN | (c->out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_accept(struct responder *r, int ep, int lfd)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    int fd;

    while ((fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK)) >= 0) {
        struct conn *c = calloc(1, sizeof(*c));
        struct epoll_event ev;

        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->number = ++r->connections;
        inet_ntop(sa.ss_family, sa.ss_family == AF_INET
                  ? (void *)&((struct sockaddr_in *)&sa)->sin_addr
                  : (void *)&((struct sockaddr_in6 *)&sa)->sin6_addr,
                  c->peer, sizeof(c->peer));
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        salen = sizeof(sa);
    }
}

static int listen_on(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);     /* loopback only */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || listen(fd, 1024) != 0) {
        perror("fastocsp: listen");
        exit(1);
    }
    return fd;
}

static void run(struct responder *r, int lfd)
{
    struct epoll_event ev, events[MAX_EVENTS];
    int ep = epoll_create1(0), i, n;

    ev.events = EPOLLIN;
    ev.data.ptr = NULL;               /* NULL: the listening socket */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stopping) {
        n = epoll_wait(ep, events, MAX_EVENTS, 500);
        for (i = 0; i < n; i++) {
            if (!events[i].data.ptr) {
                on_accept(r, ep, lfd);
            }
            else {
                on_conn(r, ep, events[i].data.ptr);
            }
        }
    }
    close(ep);
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr, "usage: fastocsp -p PORT -c ISSUER.crt -k ISSUER.key "
            "-i index.txt -l LOG\n"
            "                [-s SIGNER.crt -K SIGNER.key] [-V VALID] "
            "[-R RESIGN] [-P PIDFILE] [-L]\n");
    exit(2);
}

static long num(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < lo || v > hi) {
        usage();
    }
    return v;
}

static void parse_args(struct options *o, int argc, char **argv)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->valid = 3600;
    while ((c = getopt(argc, argv, "p:c:k:s:K:i:l:P:V:R:L")) != -1) {
        switch (c) {
        case 'p': o->port = (int)num(optarg, 1, 65535); break;
        case 'c': o->issuer_file = optarg; break;
        case 'k': o->issuer_key = optarg; break;
        case 's': o->signer_file = optarg; break;
        case 'K': o->signer_key = optarg; break;
        case 'i': o->index_file = optarg; break;
        case 'l': o->log_file = optarg; break;
        case 'P': o->pid_file = optarg; break;
        case 'V': o->valid = num(optarg, 1, 365L * 86400); break;
        case 'R': o->resign = num(optarg, 1, 365L * 86400); break;
        case 'L': o->lazy = 1; break;
        default: usage();
        }
    }
    if (optind != argc || !o->port || !o->issuer_file || !o->index_file
        || !o->log_file || (!o->issuer_key && !o->signer_key)
        || !o->signer_file != !o->signer_key) {
        usage();
    }
    o->resign = o->resign ? o->resign : o->valid / 2 + 1;
}

static void load(struct responder *r, const struct options *o)
{
    memset(r, 0, sizeof(*r));
    r->opt = o;
    r->issuer = read_cert(o->issuer_file);
    r->signer = o->signer_file ? read_cert(o->signer_file) : r->issuer;
    r->key = read_key(o->signer_key ? o->signer_key : o->issuer_key);
    r->issuer_id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(r->issuer),
                                    X509_get0_pubkey_bitstr(r->issuer), NULL);
    if (!r->issuer_id) {
        die("cannot hash the issuer");
    }
    load_index(r, o->index_file);
    make_unauthorized(r);
    if (!(r->log = fopen(o->log_file, "a"))) {
        die("cannot open the log");
    }
}

int main(int argc, char **argv)
{
    struct options o;
    struct responder r;
    struct sigaction sa;
    int lfd;

    parse_args(&o, argc, argv);
    load(&r, &o);
    if (!o.lazy) {
        presign_all(&r);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    lfd = listen_on(o.port);
    if (o.pid_file) {
        FILE *f = fopen(o.pid_file, "w");

        if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
            die("cannot write the pid file");
        }
    }
    fprintf(stderr, "fastocsp: %zu serials, listening on 127.0.0.1:%d\n",
            r.nserials, o.port);
    run(&r, lfd);
    fprintf(stderr, "fastocsp: %ld connections, %ld requests\n",
            r.connections, r.requests);
    if (o.pid_file) {
        unlink(o.pid_file);
    }
    return 0;
}
