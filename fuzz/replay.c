/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * A main() for a fuzz harness without libFuzzer (any compiler, any
 * sanitizer, valgrind): runs each input once and prints TAP, one line per
 * input with what became of it. Inputs are read into buffers of exactly
 * their size, so a sanitizer sees any overread.
 *
 *   replay_fuzz_X FILE|DIR...          (a directory: its files, sorted;
 *                                       names starting with '.' or README
 *                                       are skipped)
 *   replay_fuzz_X --write-seeds DIR    (harnesses that make seed inputs)
 *
 * A harness failure aborts the program; exit status 0 otherwise.
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int g_n;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        fuzz_fail("cannot read %s", path);
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf || (size && fread(buf, 1, (size_t)size, f) != (size_t)size)) {
        fuzz_fail("cannot read %s", path);
    }
    fclose(f);
    fuzz_outcome[0] = '\0';
    LLVMFuzzerTestOneInput(buf, (size_t)size);
    free(buf);
    printf("ok %d - %s: %s\n", ++g_n, path, fuzz_outcome);
    fflush(stdout);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, i;

    if (stat(path, &st) != 0) {
        fuzz_fail("%s: no such file or directory", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    if (!(d = opendir(path))) {
        fuzz_fail("cannot open directory %s", path);
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0) {
            continue;
        }
        names = realloc(names, (n + 1) * sizeof(*names));
        if (!names || !(names[n] = malloc(strlen(path) + strlen(e->d_name) + 2))) {
            fuzz_fail("out of memory");
        }
        sprintf(names[n++], "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (n) {
        qsort(names, n, sizeof(*names), by_name);
    }
    for (i = 0; i < n; i++) {
        run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int i;

    fuzz_noting = 1;
    LLVMFuzzerInitialize(&argc, &argv);
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        if (!fuzz_write_seeds) {
            fprintf(stderr, "%s: this harness writes no seeds\n", argv[0]);
            return 2;
        }
        return fuzz_write_seeds(argv[2]) == 0 ? 0 : 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR... | --write-seeds DIR\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        run_path(argv[i]);
    }
    printf("1..%d\n", g_n);
    return 0;                   /* fuzz_init's atexit handler frees the rest */
}
