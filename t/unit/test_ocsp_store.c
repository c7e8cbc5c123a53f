/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * Unit tests (TAP) of the on-disk store: the directory belongs to the
 * unprivileged server user, so what it may hold (links, FIFOs, directories,
 * sockets, huge files, leftovers of a crash) must neither hang nor fool the
 * reader, and a write must be atomic and private. Works in a fresh
 * directory under $TMPDIR (or /tmp), removed at the end.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "ocsp_store.h"

#define MAX_LEN 4096
#define HEX40   "0123456789abcdef0123456789abcdef01234567"

static int n_tests, n_failed;
static const char *base;

static void ok(int cond, const char *what)
{
    n_tests++;
    if (!cond) {
        n_failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, what);
}

static void skip(const char *what, const char *why)
{
    printf("ok %d - %s # skip %s\n", ++n_tests, what, why);
}

static const char *at(const char *name, apr_pool_t *p)
{
    return apr_pstrcat(p, base, "/", name, NULL);
}

/* Setting up a case must work, or the results mean nothing. */
static void must(int rc, const char *what)
{
    if (rc != 0) {
        printf("Bail out! %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static void put_file(const char *path, const char *data, apr_size_t len)
{
    FILE *f = fopen(path, "wb");

    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        printf("Bail out! cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* mtime set "secs" seconds back; the link itself when nofollow. */
static int age(const char *path, long secs, int nofollow)
{
    struct timespec ts[2];

    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs;
    ts[1] = ts[0];
    return utimensat(AT_FDCWD, path, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int mode_of(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* The lowest free descriptor: the same before and after means nothing
 * leaked in between. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);

    if (fd >= 0) {
        close(fd);
    }
    return fd;
}

/* What ocsp_file_strerror says must start with why and end with the code. */
static int text_is(apr_status_t rv, const char *why, apr_pool_t *p)
{
    const char *text = ocsp_file_strerror(rv, p);

    return strcmp(text, apr_psprintf(p, "%s (%d)", why, rv)) == 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "not ok - reading a FIFO blocked: alarm\n";

    (void)sig;
    (void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    _exit(1);
}

static void test_read_regular(apr_pool_t *p)
{
    const char *path = at("plain.der", p);
    unsigned char *der;
    apr_size_t len;
    apr_time_t mtime;
    struct timeval tv[2] = { { 1000000000, 250000 }, { 1000000000, 250000 } };
    apr_status_t rv;

    put_file(path, "\x30\x03\x0a\x01\x00", 5);
    must(utimes(path, tv), "utimes");
    rv = ocsp_file_read(&der, &len, &mtime, path, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_SUCCESS && len == 5 && !memcmp(der, "\x30\x03\x0a\x01\x00", 5),
       "a regular file is read whole (NOFOLLOW)");
    ok(mtime == apr_time_make(1000000000, 250000), "with its mtime");
    rv = ocsp_file_read(&der, &len, &mtime, path, MAX_LEN, 0, p);
    ok(rv == APR_SUCCESS && len == 5, "and without NOFOLLOW");
    put_file(at("empty.der", p), "", 0);
    rv = ocsp_file_read(&der, &len, &mtime, at("empty.der", p), MAX_LEN,
                        OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_SUCCESS && len == 0 && der, "an empty file: 0 bytes");
}

static void test_read_symlink(apr_pool_t *p)
{
    const char *lnk = at("link.der", p);
    unsigned char *der = (unsigned char *)"x";
    apr_size_t len = 1;
    apr_time_t mtime = 1;
    apr_status_t rv;

    must(symlink("plain.der", lnk), "symlink");
    rv = ocsp_file_read(&der, &len, &mtime, lnk, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_FROM_OS_ERROR(ELOOP), "a symlink with NOFOLLOW: ELOOP");
    ok(!der && !len && !mtime, "nothing returned on failure");
    ok(text_is(rv, "a symbolic link (not followed)", p),
       apr_psprintf(p, "its text: %s", ocsp_file_strerror(rv, p)));
    rv = ocsp_file_read(&der, &len, &mtime, lnk, MAX_LEN, 0, p);
    ok(rv == APR_SUCCESS && len == 5 && !memcmp(der, "\x30\x03", 2),
       "a symlink without NOFOLLOW (OCSPStaplingFile): followed and read");
}

/* Anything but a regular file: refused at once, never read. */
static void test_read_special(apr_pool_t *p)
{
    const char *fifo = at("fifo.der", p), *sock = at("sock.der", p);
    struct sockaddr_un sa;
    unsigned char *der;
    apr_size_t len;
    apr_time_t mtime;
    apr_status_t rv;
    int s;

    must(mkfifo(fifo, 0600), "mkfifo");
    must(symlink("fifo.der", at("fifolink.der", p)), "symlink");
    fflush(stdout);             /* on_alarm writes straight to the fd */
    signal(SIGALRM, on_alarm);
    alarm(10);
    rv = ocsp_file_read(&der, &len, &mtime, fifo, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == OCSP_FILE_ENOTREG, "a FIFO without a writer: ENOTREG, no wait");
    ok(text_is(rv, "not a regular file", p),
       apr_psprintf(p, "its text: %s", ocsp_file_strerror(rv, p)));
    rv = ocsp_file_read(&der, &len, &mtime, at("fifolink.der", p), MAX_LEN, 0, p);
    ok(rv == OCSP_FILE_ENOTREG, "a symlink to a FIFO, followed: ENOTREG");
    alarm(0);
    rv = ocsp_file_read(&der, &len, &mtime, base, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == OCSP_FILE_ENOTREG && !der, "a directory: ENOTREG");
    rv = ocsp_file_read(&der, &len, &mtime, "/dev/null", MAX_LEN, 0, p);
    ok(rv == OCSP_FILE_ENOTREG, "a device (/dev/null): ENOTREG");
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, sock, sizeof(sa.sun_path));
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        rv = ocsp_file_read(&der, &len, &mtime, sock, MAX_LEN,
                            OCSP_FILE_NOFOLLOW, p);
        ok(rv == OCSP_FILE_ENOTREG, "a socket (open says ENXIO): ENOTREG");
    }
    else {
        skip("a socket: ENOTREG", "cannot bind a unix socket here");
    }
    if (s >= 0) {
        close(s);
    }
}

static void test_read_missing_large(apr_pool_t *p)
{
    const char *big = at("big.der", p);
    char buf[100];
    unsigned char *der;
    apr_size_t len;
    apr_time_t mtime;
    apr_status_t rv;

    rv = ocsp_file_read(&der, &len, &mtime, at("none.der", p), MAX_LEN,
                        OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_ENOENT && !der, "a missing file: APR_ENOENT");
    must(symlink("none.der", at("dangling.der", p)), "symlink");
    rv = ocsp_file_read(&der, &len, &mtime, at("dangling.der", p), MAX_LEN, 0, p);
    ok(rv == APR_ENOENT, "a dangling symlink, followed: APR_ENOENT");
    memset(buf, 'A', sizeof(buf));
    put_file(big, buf, sizeof(buf));
    rv = ocsp_file_read(&der, &len, &mtime, big, 99, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_ENOSPC && !der && !len, "one byte over max_len: APR_ENOSPC");
    ok(text_is(rv, "too large", p),
       apr_psprintf(p, "its text: %s", ocsp_file_strerror(rv, p)));
    rv = ocsp_file_read(&der, &len, &mtime, big, 100, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_SUCCESS && len == 100, "exactly max_len: read");
    ok(text_is(APR_EACCES, "Permission denied", p),
       "other statuses: apr_strerror text and code");
}

static int count_entries(const char *dir, int *ptemp)
{
    apr_pool_t *p;
    apr_dir_t *d;
    apr_finfo_t fi;
    int n = 0;

    *ptemp = 0;
    apr_pool_create(&p, NULL);
    if (apr_dir_open(&d, dir, p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
                n++;
                *ptemp += strstr(fi.name, ".der.") != NULL;
            }
        }
        apr_dir_close(d);
    }
    apr_pool_destroy(p);
    return n;
}

static void test_write(apr_pool_t *p)
{
    const char *dir = at("store", p);
    unsigned char id[20];
    const char *path;
    unsigned char *der;
    apr_size_t len, i;
    apr_time_t mtime;
    apr_status_t rv;
    mode_t old;
    int temps;

    for (i = 0; i < sizeof(id); i++) {
        id[i] = (unsigned char)(i * 13);
    }
    path = ocsp_store_path(dir, id, sizeof(id), p);
    must(mkdir(dir, 0700), "mkdir");
    old = umask(0);
    rv = ocsp_store_write(dir, id, sizeof(id), (const unsigned char *)"first", 5, p);
    umask(old);
    ok(rv == APR_SUCCESS, "write");
    ok(mode_of(path) == 0600, "mode 0600, even with umask 000");
    rv = ocsp_file_read(&der, &len, &mtime, path, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_SUCCESS && len == 5 && !memcmp(der, "first", 5), "read back");
    ok(count_entries(dir, &temps) == 1 && temps == 0, "no temporary file left");

    /* A link planted under the response's name is replaced, not written
     * through. */
    must(unlink(path), "unlink");
    put_file(at("victim", p), "victim", 6);
    must(symlink(at("victim", p), path), "symlink");
    rv = ocsp_store_write(dir, id, sizeof(id), (const unsigned char *)"second", 6, p);
    rv = rv == APR_SUCCESS ? ocsp_file_read(&der, &len, &mtime, path, MAX_LEN,
                                            OCSP_FILE_NOFOLLOW, p) : rv;
    ok(rv == APR_SUCCESS && len == 6 && !memcmp(der, "second", 6),
       "a planted symlink is replaced by the response");
    rv = ocsp_file_read(&der, &len, &mtime, at("victim", p), MAX_LEN, 0, p);
    ok(rv == APR_SUCCESS && len == 6 && !memcmp(der, "victim", 6),
       "and its target is untouched");

    /* rename fails (a directory is in the way): the temporary goes too. */
    must(unlink(path), "unlink");
    must(mkdir(path, 0700), "mkdir");
    put_file(apr_pstrcat(p, path, "/x", NULL), "x", 1);
    rv = ocsp_store_write(dir, id, sizeof(id), (const unsigned char *)"third", 5, p);
    ok(rv != APR_SUCCESS && count_entries(dir, &temps) == 1 && temps == 0,
       "a failed rename removes the temporary file");
    rv = ocsp_store_write(at("nodir", p), id, sizeof(id),
                          (const unsigned char *)"x", 1, p);
    ok(APR_STATUS_IS_ENOENT(rv), "no store directory: ENOENT");
}

/* A batch: written without syncs, replacing the old file at once, mode
 * 0600, no temporary file left; then one sync of the directory. */
static void test_write_unsynced(apr_pool_t *p)
{
    const char *dir = at("batch", p);
    unsigned char id[20];
    const char *path;
    unsigned char *der;
    apr_size_t len;
    apr_time_t mtime;
    apr_status_t rv;
    int temps;

    memset(id, 0x5a, sizeof(id));
    path = ocsp_store_path(dir, id, sizeof(id), p);
    must(mkdir(dir, 0700), "mkdir");
    rv = ocsp_store_write_unsynced(dir, id, sizeof(id),
                                   (const unsigned char *)"one", 3, p);
    rv = rv == APR_SUCCESS
         ? ocsp_store_write_unsynced(dir, id, sizeof(id),
                                     (const unsigned char *)"two!", 4, p) : rv;
    ok(rv == APR_SUCCESS, "unsynced writes");
    rv = ocsp_file_read(&der, &len, &mtime, path, MAX_LEN, OCSP_FILE_NOFOLLOW, p);
    ok(rv == APR_SUCCESS && len == 4 && !memcmp(der, "two!", 4),
       "unsynced: the second replaced the first");
    ok(mode_of(path) == 0600 && count_entries(dir, &temps) == 1 && temps == 0,
       "unsynced: mode 0600, no temporary file left");
    ok(ocsp_store_sync(dir) == APR_SUCCESS, "ocsp_store_sync");
    ok(APR_STATUS_IS_ENOENT(ocsp_store_sync(at("nodir", p))),
       "ocsp_store_sync without the directory: ENOENT");
}

static void test_remove_stale(apr_pool_t *p)
{
    const char *dir = at("stale", p);
    const char *old_tmp = at("stale/" HEX40 ".der.abcdef", p);
    const char *fresh_tmp = at("stale/" HEX40 ".der.ghijkl", p);
    const char *keep[] = {
        "stale/" HEX40 ".der",              /* a response */
        "stale/" HEX40 ".der.abcdefg",      /* 7 characters */
        "stale/" HEX40 ".der.abcde",        /* 5 characters */
        "stale/0123456789ABCDEF0123456789abcdef01234567.der.abcdef",
        "stale/0123456789abcdef0123456789abcdef0123456.der.abcdef",
        "stale/" HEX40 ".pem.abcdef",
        "stale/" HEX40 ".der.abc.ef",
        "stale/notes.txt",
    };
    const char *lnk = at("stale/" HEX40 ".der.linkxx", p);
    const char *target = at("link-target", p);
    const char *subdir = at("stale/" HEX40 ".der.dirxxx", p);
    int removed = -1, all_kept = 1;
    apr_status_t rv;
    apr_size_t i;

    must(mkdir(dir, 0700), "mkdir");
    put_file(old_tmp, "old", 3);
    put_file(fresh_tmp, "fresh", 5);
    must(age(old_tmp, 3600, 0), "utimensat");
    for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        put_file(at(keep[i], p), "keep", 4);
        must(age(at(keep[i], p), 3600, 0), "utimensat");
    }
    put_file(target, "target", 6);
    must(age(target, 3600, 0), "utimensat");
    must(symlink(target, lnk), "symlink");
    must(age(lnk, 3600, 1), "utimensat (link)");
    must(mkdir(subdir, 0700), "mkdir");
    must(age(subdir, 3600, 0), "utimensat");

    rv = ocsp_store_remove_stale(dir, apr_time_now(), apr_time_from_sec(600),
                                 &removed, p);
    ok(rv == APR_SUCCESS && removed == 1, "remove_stale: one removed");
    ok(!exists(old_tmp), "an old <40 hex>.der.abcdef is removed");
    ok(exists(fresh_tmp), "a fresh one (a write in progress) is kept");
    for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        all_kept = all_kept && exists(at(keep[i], p));
    }
    ok(all_kept, "old files of other names are kept (response, near misses)");
    ok(exists(lnk) && exists(target),
       "an old symlink named like a temporary file: kept, target untouched");
    ok(exists(subdir), "an old directory named like one: kept");
    rv = ocsp_store_remove_stale(at("nodir", p), apr_time_now(), 0, &removed, p);
    ok(APR_STATUS_IS_ENOENT(rv) && removed == 0, "no directory: ENOENT");
}

static void test_make_dir_modes(apr_pool_t *p)
{
    /* 0277 takes the owner's write bit: only an explicit chmod brings the
     * store directory back to 0700 and the parents to 0755. */
    static const mode_t masks[] = { 077, 000, 0277 };
    apr_status_t rv;
    mode_t old;
    int created, i;

    for (i = 0; i < 3; i++) {
        const char *top = at(apr_psprintf(p, "mk%d", i), p);
        const char *store = apr_pstrcat(p, top, "/a/store", NULL);

        old = umask(masks[i]);
        rv = ocsp_store_make_dir(store, 0, 0, 0, &created, p);
        umask(old);
        ok(rv == APR_SUCCESS && created,
           apr_psprintf(p, "umask %03o: nested store directory created",
                        (unsigned)masks[i]));
        ok(mode_of(top) == 0755 && mode_of(apr_pstrcat(p, top, "/a", NULL)) == 0755,
           "its missing parents are 0755");
        ok(mode_of(store) == 0700, "the store directory is 0700");
    }
    rv = ocsp_store_make_dir(at("mk0/a/store", p), 0, 0, 0, &created, p);
    ok(rv == APR_SUCCESS && !created, "an existing store directory: not created");
    must(mkdir(at("mine", p), 0700), "mkdir");
    must(chmod(at("mine", p), 0750), "chmod");
    rv = ocsp_store_make_dir(apr_pstrcat(p, at("mine", p), "//", NULL), 1,
                             4242, 4243, &created, p);
    ok(rv == APR_SUCCESS && !created && mode_of(at("mine", p)) == 0750,
       "an existing directory keeps its mode (trailing slashes are fine)");
    put_file(at("afile", p), "x", 1);
    rv = ocsp_store_make_dir(at("afile", p), 0, 0, 0, &created, p);
    ok(rv == APR_ENOTDIR && !created, "a file in the way: APR_ENOTDIR");
    rv = ocsp_store_make_dir(at("afile/store", p), 0, 0, 0, &created, p);
    ok(rv == APR_ENOTDIR && !created, "a file as a parent: APR_ENOTDIR");
    rv = ocsp_store_make_dir("relative/store", 0, 0, 0, &created, p);
    ok(rv == APR_ERELATIVE && !created, "a relative path is refused");
}

static void test_make_dir_owner(apr_pool_t *p)
{
    const char *store = at("own/b/store", p);
    struct stat st, st_parent, st_mine;
    apr_status_t rv;
    int created;

    if (geteuid() != 0) {
        skip("as root: the created store directory is chowned", "not root");
        skip("as root: parents and existing directories are not", "not root");
        return;
    }
    rv = ocsp_store_make_dir(store, 1, 4242, 4243, &created, p);
    ok(rv == APR_SUCCESS && created && stat(store, &st) == 0
       && st.st_uid == 4242 && st.st_gid == 4243 && (st.st_mode & 07777) == 0700,
       "as root: the created store directory is 4242:4243, 0700");
    ok(stat(at("own/b", p), &st_parent) == 0 && st_parent.st_uid == 0
       && stat(at("mine", p), &st_mine) == 0 && st_mine.st_uid == 0,
       "as root: parents and an existing directory stay root's");
}

/* A chown the system refuses (not root): the error is returned and the
 * directory made is removed, or the next start would take it for the
 * admin's own and never give it to the server user. Run as nobody in a
 * child when the test runs as root. */
static void test_make_dir_chown_fails(apr_pool_t *p)
{
    const char *top = at("unpriv", p);
    const char *store = apr_pstrcat(p, top, "/store", NULL);
    apr_status_t rv;
    int created = 1, status = -1;
    pid_t pid;

    must(mkdir(top, 0700), "mkdir");
    must(chmod(top, 01777), "chmod");
    must(chmod(base, 0711), "chmod");   /* nobody must reach top */
    fflush(stdout);
    if ((pid = fork()) == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
            _exit(2);
        }
        if (access(top, W_OK | X_OK) != 0) {
            _exit(3);           /* $TMPDIR out of nobody's reach */
        }
        rv = ocsp_store_make_dir(store, 1, geteuid() + 1, getegid(),
                                 &created, p);
        _exit(rv == APR_FROM_OS_ERROR(EPERM) && !created && !exists(store)
              ? 0 : 1);
    }
    if (pid > 0) {
        waitpid(pid, &status, 0);
    }
    must(chmod(base, 0700), "chmod");
    if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        skip("a refused chown", "nobody cannot reach the test directory");
        return;
    }
    ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "a refused chown: EPERM, and the directory just made is removed");
}

static int rm_one(const char *path, const struct stat *st, int type,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

int main(void)
{
    apr_pool_t *p;
    const char *tmp = getenv("TMPDIR");
    char *dir;
    int fd0;

    apr_initialize();
    apr_pool_create(&p, NULL);
    dir = apr_pstrcat(p, tmp && *tmp ? tmp : "/tmp", "/ocsp_store_test.XXXXXX",
                      NULL);
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    base = dir;
    fd0 = lowest_free_fd();
    test_read_regular(p);
    test_read_symlink(p);
    test_read_special(p);
    test_read_missing_large(p);
    ok(lowest_free_fd() == fd0, "ocsp_file_read closes its file on every path");
    test_write(p);
    test_write_unsynced(p);
    test_remove_stale(p);
    ok(lowest_free_fd() == fd0, "write and remove_stale leak no descriptor");
    test_make_dir_modes(p);
    test_make_dir_owner(p);
    test_make_dir_chown_fails(p);
    printf("1..%d\n", n_tests);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    apr_pool_destroy(p);
    apr_terminate();
    return n_failed ? 1 : 0;
}
