/*
 * mkleaves: many leaf certificates at once for `make bench` (10,000 SNI
 * virtual hosts), one key for all of them.
 *
 * One `openssl req -x509 -CA` per leaf (a new key, a process each) took
 * minutes for 10,000 leaves on 2 cores. A server does not care whether its
 * vhosts share a key, and neither does OCSP (the CertID hashes the issuer's
 * key, not the leaf's): here one ECDSA P-256 key is made (or read) once and
 * every leaf signed in this process, in -j worker processes.
 *
 *   mkleaves -c ISSUER.crt -k ISSUER.key -K LEAF.key -u URL -o DIR
 *            [-d DAYS] [-j JOBS] < LIST
 *
 * LIST: one leaf a line, "NAME DNS MODE SERIAL_HEX". For each: DIR/NAME.pem
 * (the leaf), DIR/NAME.crt (the leaf, then the issuer: what
 * SSLCertificateFile takes), DIR/NAME.key (a copy of LEAF.key). The leaf's
 * AIA OCSP URL is URL followed by MODE (http://127.0.0.1:PORT/ + good); its
 * extensions are those of bench.pl's leaf-MODE.cnf (serverAuth, SAN DNS).
 * LEAF.key is created when it does not exist.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct options {
    const char *issuer_file, *issuer_key, *leaf_key, *url, *dir;
    long days;
    int jobs;
};

struct signer {
    X509 *issuer;
    EVP_PKEY *issuer_key, *leaf_key;
    char *issuer_pem, *leaf_key_pem;  /* copied into every .crt / .key */
    long issuer_pem_len, leaf_key_pem_len;
};

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "mkleaves: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    ERR_print_errors_fp(stderr);
    exit(1);
}

static char *slurp(const char *file, long *plen)
{
    FILE *f = fopen(file, "rb");
    char *buf;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (*plen = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0 || !(buf = malloc((size_t)*plen + 1))
        || fread(buf, 1, (size_t)*plen, f) != (size_t)*plen) {
        die("cannot read", file);
    }
    buf[*plen] = '\0';
    fclose(f);
    return buf;
}

static void spit(const char *file, const char *a, long alen, const char *b,
                 long blen)
{
    FILE *f = fopen(file, "wb");

    if (!f || fwrite(a, 1, (size_t)alen, f) != (size_t)alen
        || (blen && fwrite(b, 1, (size_t)blen, f) != (size_t)blen)
        || fclose(f) != 0) {
        die("cannot write", file);
    }
}

/* The shared leaf key: read, or made (P-256) and written once. */
static EVP_PKEY *leaf_key(const char *file)
{
    FILE *f = fopen(file, "r");
    EVP_PKEY *k;

    if (f) {
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        return k ? k : (die("no key in", file), NULL);
    }
    if (!(k = EVP_EC_gen("P-256")) || !(f = fopen(file, "w"))
        || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) || fclose(f)) {
        die("cannot make the leaf key", file);
    }
    return k;
}

static void load(struct signer *sg, const struct options *o)
{
    BIO *b;

    sg->issuer_pem = slurp(o->issuer_file, &sg->issuer_pem_len);
    b = BIO_new_mem_buf(sg->issuer_pem, (int)sg->issuer_pem_len);
    sg->issuer = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!sg->issuer) {
        die("no certificate in", o->issuer_file);
    }
    b = BIO_new_file(o->issuer_key, "r");
    sg->issuer_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!sg->issuer_key) {
        die("no key in", o->issuer_key);
    }
    sg->leaf_key = leaf_key(o->leaf_key);
    sg->leaf_key_pem = slurp(o->leaf_key, &sg->leaf_key_pem_len);
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

static int add_extensions(X509 *x, const struct signer *sg, const char *dns,
                          const char *aia)
{
    X509V3_CTX ctx;
    char san[300];

    snprintf(san, sizeof(san), "DNS:%s", dns);
    X509V3_set_ctx(&ctx, sg->issuer, x, NULL, NULL, 0);
    return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")
        && add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature")
        && add_ext(x, &ctx, NID_ext_key_usage, "serverAuth")
        && add_ext(x, &ctx, NID_info_access, aia)
        && add_ext(x, &ctx, NID_subject_key_identifier, "hash")
        && add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")
        && add_ext(x, &ctx, NID_subject_alt_name, san);
}

/* One leaf, signed by the issuer; NULL on failure. */
static X509 *make_leaf(const struct signer *sg, const struct options *o,
                       const char *dns, const char *mode, const char *serial_hex)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = NULL;
    char aia[512];
    int ok;

    snprintf(aia, sizeof(aia), "OCSP;URI:%s%s", o->url, mode);
    ok = x && name && BN_hex2bn(&bn, serial_hex)
        && X509_set_version(x, X509_VERSION_3)
        && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *)dns, -1, -1, 0)
        && X509_set_subject_name(x, name)
        && X509_set_issuer_name(x, X509_get_subject_name(sg->issuer))
        && X509_gmtime_adj(X509_getm_notBefore(x), 0)
        && X509_time_adj_ex(X509_getm_notAfter(x), (int)o->days, 0, NULL)
        && X509_set_pubkey(x, sg->leaf_key)
        && add_extensions(x, sg, dns, aia)
        && X509_sign(x, sg->issuer_key, EVP_sha256());
    BN_free(bn);
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static void write_leaf(const struct signer *sg, const struct options *o,
                       const char *name, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char file[4096], *pem;
    long len;

    if (!b || !PEM_write_bio_X509(b, x)) {
        die("cannot encode", name);
    }
    len = BIO_get_mem_data(b, &pem);
    snprintf(file, sizeof(file), "%s/%s.pem", o->dir, name);
    spit(file, pem, len, NULL, 0);
    snprintf(file, sizeof(file), "%s/%s.crt", o->dir, name);
    spit(file, pem, len, sg->issuer_pem, sg->issuer_pem_len);
    snprintf(file, sizeof(file), "%s/%s.key", o->dir, name);
    spit(file, sg->leaf_key_pem, sg->leaf_key_pem_len, NULL, 0);
    BIO_free(b);
}

/* Worker JOB of JOBS: the lines whose number modulo JOBS is JOB. */
static int run_job(const struct signer *sg, const struct options *o,
                   char **lines, long n, int job)
{
    long i;

    for (i = job; i < n; i += o->jobs) {
        char name[256], dns[256], mode[64], serial[64];
        X509 *x;

        if (sscanf(lines[i], "%255s %255s %63s %63s", name, dns, mode, serial) != 4) {
            fprintf(stderr, "mkleaves: bad line: %s", lines[i]);
            return 1;
        }
        if (!(x = make_leaf(sg, o, dns, mode, serial))) {
            die("cannot sign", name);
        }
        write_leaf(sg, o, name, x);
        X509_free(x);
    }
    return 0;
}

static char **read_lines(long *pn)
{
    char **lines = NULL, *line = NULL;
    size_t cap = 0, lcap = 0;
    long n = 0;

    while (getline(&line, &lcap, stdin) > 0) {
        if ((size_t)n == cap) {
            cap = cap ? 2 * cap : 1024;
            if (!(lines = realloc(lines, cap * sizeof(*lines)))) {
                die("out of memory", NULL);
            }
        }
        lines[n++] = line;
        line = NULL;
        lcap = 0;
    }
    free(line);
    *pn = n;
    return lines;
}

static void parse_args(struct options *o, int argc, char **argv)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->days = 30;
    o->jobs = 1;
    while ((c = getopt(argc, argv, "c:k:K:u:o:d:j:")) != -1) {
        switch (c) {
        case 'c': o->issuer_file = optarg; break;
        case 'k': o->issuer_key = optarg; break;
        case 'K': o->leaf_key = optarg; break;
        case 'u': o->url = optarg; break;
        case 'o': o->dir = optarg; break;
        case 'd': o->days = strtol(optarg, NULL, 10); break;
        case 'j': o->jobs = (int)strtol(optarg, NULL, 10); break;
        default: o->jobs = 0;
        }
    }
    if (!o->issuer_file || !o->issuer_key || !o->leaf_key || !o->url || !o->dir
        || o->days < 1 || o->jobs < 1 || o->jobs > 64 || optind != argc) {
        fprintf(stderr, "usage: mkleaves -c ISSUER.crt -k ISSUER.key -K LEAF.key "
                "-u URL -o DIR [-d DAYS] [-j JOBS] < \"NAME DNS MODE SERIAL\" lines\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct options o;
    struct signer sg;
    char **lines;
    long n;
    int job, status, failed = 0;

    parse_args(&o, argc, argv);
    load(&sg, &o);
    lines = read_lines(&n);
    for (job = 1; job < o.jobs; job++) {
        pid_t pid = fork();

        if (pid < 0) {
            die("fork", NULL);
        }
        if (pid == 0) {
            _exit(run_job(&sg, &o, lines, n, job));
        }
    }
    failed = run_job(&sg, &o, lines, n, 0);
    while (wait(&status) > 0) {
        failed |= !WIFEXITED(status) || WEXITSTATUS(status);
    }
    return failed;
}
