/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

/*
 * What the fuzz harnesses share. Each fuzz/fuzz_*.c is one libFuzzer target
 * (LLVMFuzzerInitialize, LLVMFuzzerTestOneInput) over the module's
 * httpd-free layer (ocsp_fetch.c, ocsp_http.c, stapling_record.c,
 * refresh_policy.c). The same file also links with fuzz/replay.c into a
 * plain program (t/unit/replay_fuzz_*, gcc, no libFuzzer) that runs inputs
 * once and says what became of each: the unit tests replay the seed corpus
 * and the regression inputs with it, under ASAN and valgrind too.
 *
 * A harness aborts (a crash, for libFuzzer) when the code under test breaks
 * a promise of its header, not only on memory errors.
 */

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>
#include <apr_time.h>

#include "ocsp_fetch.h"

/* The fixed "now" of every verification: 2100-01-01T00:00:00Z. The seed
 * responses (fuzz/make-corpus.sh) are valid then, so fuzzing reaches the
 * same code whatever the date. */
#define FUZZ_NOW apr_time_from_sec(APR_INT64_C(4102444800))

/* libFuzzer's entry points. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional, per harness (weak): writes seed inputs made by the module's own
 * code into dir (`replay_fuzz_X --write-seeds DIR`). Returns 0 on success. */
int fuzz_write_seeds(const char *dir) __attribute__((weak));

/* Once: APR, the fetch layer, a pool that lives for the whole run. */
apr_pool_t *fuzz_init(void);

/* The fixtures directory (fuzz/): $OCSP_FUZZ_DIR, else the build's. */
const char *fuzz_dir(void);

/* Reads fuzz_dir()/rel whole into memory from p; aborts when it cannot. */
char *fuzz_read(apr_size_t *plen, const char *rel, apr_pool_t *p);

/* Writes len bytes to path (created or truncated); 0 on success. */
int fuzz_write(const char *path, const void *data, apr_size_t len);

/* Parses fuzz_dir()/pki/chain.pem: the certificate the harnesses check
 * responses against; aborts when it cannot. */
const ocsp_cert *fuzz_cert(apr_pool_t *p);

/* Records what became of the last input ("verified good", the error...),
 * for the replay program; a no-op while fuzzing. */
void fuzz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int fuzz_noting;          /* set by replay.c */
extern char fuzz_outcome[512];

/* A broken promise: prints it and aborts (libFuzzer saves the input). */
void fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
#define FUZZ_ASSERT(cond) \
    do { if (!(cond)) fuzz_fail("%s:%d: assertion failed: %s", \
                                __FILE__, __LINE__, #cond); } while (0)

#endif /* FUZZ_COMMON_H */
