/* Licensed under the Apache License, Version 2.0: see LICENSE.
 *
 * The on-disk store of verified responses (see ocsp_store.h). POSIX calls
 * rather than apr_file_*: APR has no O_NOFOLLOW, O_NONBLOCK, fstat of what
 * was actually opened, *at() calls or directory fsync, and each of them
 * closes a way a planted file could hang or fool us.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* mkostemp (glibc) */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>              /* rename */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_errno.h>
#include <apr_strings.h>

#include "ocsp_store.h"

/* Temporary names of ocsp_store_write: <hex of a 20-byte SHA-1 id>.der.
 * then the 6 letters or digits mkstemp puts in place of XXXXXX. */
#define STORE_ID_HEX_LEN   40
#define STORE_TMP_INFIX    ".der."
#define STORE_TMP_RAND_LEN 6
#define STORE_TMP_NAME_LEN (STORE_ID_HEX_LEN + sizeof(STORE_TMP_INFIX) - 1 \
                            + STORE_TMP_RAND_LEN)

static apr_status_t os_error(void)
{
    return errno ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
}

static apr_time_t stat_mtime(const struct stat *st)
{
    return apr_time_make(st->st_mtim.tv_sec, st->st_mtim.tv_nsec / 1000);
}

const char *ocsp_store_path(const char *dir, const unsigned char *id,
                            apr_size_t id_len, apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    char *name = apr_palloc(p, 2 * id_len + sizeof(".der"));
    apr_size_t i;

    for (i = 0; i < id_len; i++) {
        name[2 * i] = hex[id[i] >> 4];
        name[2 * i + 1] = hex[id[i] & 0x0f];
    }
    memcpy(name + 2 * id_len, ".der", sizeof(".der"));
    return apr_pstrcat(p, dir, "/", name, NULL);
}

/* ------------------------------------------------------------------ read */

/* Why open(2) failed, in this file's terms. A socket cannot be opened at
 * all (ENXIO) and a device may refuse to be: whatever open said, what is
 * there decides, so anything but a regular file is OCSP_FILE_ENOTREG. */
static apr_status_t open_error(const char *path, int flags)
{
    int err = errno;
    int nofollow = flags & OCSP_FILE_NOFOLLOW;
    struct stat st;

    if (err == ENOENT) {
        return APR_ENOENT;
    }
    /* FreeBSD reports a link refused by O_NOFOLLOW as EMLINK. */
    if (nofollow && (err == ELOOP || err == EMLINK)) {
        return APR_FROM_OS_ERROR(ELOOP);
    }
    if ((nofollow ? lstat(path, &st) : stat(path, &st)) == 0
        && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        return OCSP_FILE_ENOTREG;
    }
    return APR_FROM_OS_ERROR(err);
}

/* Opens path and accepts only a regular file. O_NONBLOCK: opening a FIFO
 * without a writer would otherwise wait for one, forever. The type is
 * checked on the descriptor (fstat), so nothing can be swapped in between
 * the check and the read. */
static apr_status_t open_regular(int *pfd, struct stat *st, const char *path,
                                 int flags)
{
    int oflags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd;
    apr_status_t rv = APR_SUCCESS;

    if (flags & OCSP_FILE_NOFOLLOW) {
        oflags |= O_NOFOLLOW;
    }
    if ((fd = open(path, oflags)) < 0) {
        rv = open_error(path, flags);
        goto cleanup;
    }
    if (fstat(fd, st) != 0) {
        rv = os_error();
        goto cleanup;
    }
    if (!S_ISREG(st->st_mode)) {
        rv = OCSP_FILE_ENOTREG;
    }

cleanup:
    if (rv != APR_SUCCESS && fd >= 0) {
        close(fd);
        fd = -1;
    }
    *pfd = fd;
    return rv;
}

/* read(2) may return less than asked (signals, network file systems). A
 * file ending sooner than fstat said was truncated under us: APR_EOF. */
static apr_status_t read_all(int fd, unsigned char *buf, apr_size_t len)
{
    apr_size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? os_error() : APR_EOF;
        }
        got += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t ocsp_file_read(unsigned char **pder, apr_size_t *plen,
                            apr_time_t *pmtime, const char *path,
                            apr_size_t max_len, int flags, apr_pool_t *p)
{
    unsigned char *der = NULL;
    apr_size_t len = 0;
    struct stat st;
    int fd = -1;
    apr_status_t rv;

    memset(&st, 0, sizeof(st));
    if ((rv = open_regular(&fd, &st, path, flags)) != APR_SUCCESS) {
        goto cleanup;
    }
    if (st.st_size < 0 || (apr_uint64_t)st.st_size > (apr_uint64_t)max_len) {
        rv = APR_ENOSPC;
        goto cleanup;
    }
    len = (apr_size_t)st.st_size;
    der = apr_palloc(p, len ? len : 1);
    rv = read_all(fd, der, len);

cleanup:
    if (fd >= 0) {
        close(fd);
    }
    *pder = rv == APR_SUCCESS ? der : NULL;
    *plen = rv == APR_SUCCESS ? len : 0;
    *pmtime = rv == APR_SUCCESS ? stat_mtime(&st) : 0;
    return rv;
}

const char *ocsp_file_strerror(apr_status_t rv, apr_pool_t *p)
{
    char buf[120];
    const char *what;

    if (rv == OCSP_FILE_ENOTREG) {
        what = "not a regular file";
    }
    else if (rv == APR_FROM_OS_ERROR(ELOOP)) {
        what = "a symbolic link (not followed)";
    }
    else if (rv == APR_ENOSPC) {
        what = "too large";
    }
    else {
        what = apr_strerror(rv, buf, sizeof(buf));
    }
    return apr_psprintf(p, "%s (%d)", what, rv);
}

/* ----------------------------------------------------------------- write */

static apr_status_t write_all(int fd, const unsigned char *buf, apr_size_t len)
{
    apr_size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? os_error() : APR_EGENERAL;
        }
        done += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* A rename is durable only once its directory is synced too: after a crash
 * the old response (or none) could come back otherwise. */
static apr_status_t sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0) {
        return os_error();
    }
    if (fsync(fd) != 0) {
        rv = os_error();
    }
    close(fd);
    return rv;
}

/* The write itself; with sync, the file is synced before the rename and
 * the directory after it. */
static apr_status_t store_write(const char *dir, const unsigned char *id,
                                apr_size_t id_len, const unsigned char *der,
                                apr_size_t len, int sync, apr_pool_t *p)
{
    const char *path = ocsp_store_path(dir, id, id_len, p);
    char *tmp = apr_pstrcat(p, path, ".XXXXXX", NULL);
    int fd, tmp_exists = 0;
    apr_status_t rv;

    /* mkostemp creates with O_EXCL (a link planted under that name is never
     * followed) and mode 0600 (only the server user reads responses);
     * O_CLOEXEC so that a CGI forked meanwhile by another thread of the
     * process does not inherit the descriptor. */
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        rv = os_error();
        goto cleanup;
    }
    tmp_exists = 1;
    if ((rv = write_all(fd, der, len)) != APR_SUCCESS) {
        goto cleanup;
    }
    if (sync && fsync(fd) != 0) {
        rv = os_error();
        goto cleanup;
    }
    /* close reports some write errors (NFS): checked before the rename. */
    if (close(fd) != 0) {
        fd = -1;
        rv = os_error();
        goto cleanup;
    }
    fd = -1;
    /* rename replaces whatever has the name, a link included, itself. */
    if (rename(tmp, path) != 0) {
        rv = os_error();
        goto cleanup;
    }
    tmp_exists = 0;
    rv = sync ? sync_dir(dir) : APR_SUCCESS;

cleanup:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp_exists) {
        unlink(tmp);
    }
    return rv;
}

apr_status_t ocsp_store_write(const char *dir, const unsigned char *id,
                              apr_size_t id_len, const unsigned char *der,
                              apr_size_t len, apr_pool_t *p)
{
    return store_write(dir, id, id_len, der, len, 1, p);
}

apr_status_t ocsp_store_write_unsynced(const char *dir,
                                       const unsigned char *id,
                                       apr_size_t id_len,
                                       const unsigned char *der,
                                       apr_size_t len, apr_pool_t *p)
{
    return store_write(dir, id, id_len, der, len, 0, p);
}

/* One syncfs (Linux: every file of the file system the directory is on)
 * instead of two fsyncs per file: 10,000 files took 20-50 s of fsyncs. */
apr_status_t ocsp_store_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0) {
        return os_error();
    }
#ifdef __linux__
    if (syncfs(fd) != 0) {
        rv = os_error();
    }
#else
    sync();
#endif
    if (rv == APR_SUCCESS && fsync(fd) != 0) {
        rv = os_error();
    }
    close(fd);
    return rv;
}

/* ----------------------------------------------------------- remove_stale */

static int in_range(char c, char lo, char hi)
{
    return c >= lo && c <= hi;
}

/* Exactly what ocsp_store_write names its temporary files, nothing else:
 * whatever else the directory holds is not ours to remove. */
static int is_temp_name(const char *name)
{
    apr_size_t i;

    if (strlen(name) != STORE_TMP_NAME_LEN) {
        return 0;
    }
    for (i = 0; i < STORE_ID_HEX_LEN; i++) {
        if (!in_range(name[i], '0', '9') && !in_range(name[i], 'a', 'f')) {
            return 0;
        }
    }
    if (memcmp(name + i, STORE_TMP_INFIX, sizeof(STORE_TMP_INFIX) - 1)) {
        return 0;
    }
    for (i += sizeof(STORE_TMP_INFIX) - 1; name[i]; i++) {
        if (!in_range(name[i], '0', '9') && !in_range(name[i], 'a', 'z')
            && !in_range(name[i], 'A', 'Z')) {
            return 0;
        }
    }
    return 1;
}

/* Relative to the open directory (fstatat/unlinkat): a directory renamed or
 * replaced meanwhile cannot redirect the removal elsewhere. ENOENT means
 * another process removed it first, which is fine. */
static apr_status_t remove_if_stale(int dfd, const char *name, apr_time_t now,
                                    apr_interval_time_t min_age, int *premoved)
{
    struct stat st;
    apr_status_t rv = APR_SUCCESS;

    if (!is_temp_name(name)) {
        goto cleanup;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        rv = errno == ENOENT ? APR_SUCCESS : os_error();
        goto cleanup;
    }
    /* Only regular files: ocsp_store_write never makes anything else, and
     * a young one may be a write still in progress in another process. */
    if (!S_ISREG(st.st_mode) || now - stat_mtime(&st) <= min_age) {
        goto cleanup;
    }
    if (unlinkat(dfd, name, 0) == 0) {
        (*premoved)++;
    }
    else if (errno != ENOENT) {
        rv = os_error();
    }

cleanup:
    return rv;
}

apr_status_t ocsp_store_remove_stale(const char *dir, apr_time_t now,
                                     apr_interval_time_t min_age,
                                     int *premoved, apr_pool_t *p)
{
    DIR *d = NULL;
    struct dirent *de;
    int fd, removed = 0;
    apr_status_t rv = APR_SUCCESS, one;

    (void)p;  /* nothing to allocate: for the convention and later needs */
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rv = os_error();
        goto cleanup;
    }
    if (!(d = fdopendir(fd))) {
        rv = os_error();
        close(fd);
        goto cleanup;
    }
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            rv = (errno && rv == APR_SUCCESS) ? os_error() : rv;
            break;
        }
        one = remove_if_stale(dirfd(d), de->d_name, now, min_age, &removed);
        rv = rv == APR_SUCCESS ? one : rv;
    }

cleanup:
    if (d) {
        closedir(d);
    }
    *premoved = removed;
    return rv;
}

/* -------------------------------------------------------------- make_dir */

/* mkdir(2) applies the umask, so the mode is set again; through a
 * descriptor opened without following a link, so that what is chmodded
 * (and, as root, chowned) is the directory just made, never what a link
 * swapped in its place would point to. chown first: it may clear mode
 * bits. */
static apr_status_t set_owner_mode(const char *path, mode_t mode, int chown_it,
                                   apr_uid_t uid, apr_gid_t gid)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0) {
        return os_error();
    }
    if (chown_it && fchown(fd, uid, gid) != 0) {
        rv = os_error();
    }
    else if (fchmod(fd, mode) != 0) {
        rv = os_error();
    }
    close(fd);
    return rv;
}

/* One directory, unless it exists (a link to a directory counts: the admin
 * may lay paths out that way). *pcreated: whether this call made it. */
static apr_status_t make_one(const char *path, mode_t mode, int *pcreated)
{
    struct stat st;
    apr_status_t rv = APR_SUCCESS;

    *pcreated = 0;
    if (stat(path, &st) == 0) {
        rv = S_ISDIR(st.st_mode) ? APR_SUCCESS : APR_ENOTDIR;
    }
    else if (errno != ENOENT) {
        rv = os_error();
    }
    else if (mkdir(path, mode) == 0) {
        *pcreated = 1;
    }
    else if (errno == EEXIST) {
        /* made by someone else since the stat: judge what is there now */
        rv = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? APR_SUCCESS
                                                         : APR_ENOTDIR;
    }
    else {
        rv = os_error();
    }
    return rv;
}

/* The missing directories above path, 0755: the server user must traverse
 * them to reach its store. path is modified while walking, then restored. */
static apr_status_t make_parents(char *path)
{
    char *slash;
    int created;
    apr_status_t rv = APR_SUCCESS;

    for (slash = strchr(path + 1, '/'); slash && rv == APR_SUCCESS;
         slash = strchr(slash + 1, '/')) {
        if (slash[-1] == '/') {
            continue;           /* "//": the same directory again */
        }
        *slash = '\0';
        rv = make_one(path, 0755, &created);
        if (rv == APR_SUCCESS && created) {
            rv = set_owner_mode(path, 0755, 0, 0, 0);
        }
        *slash = '/';
    }
    return rv;
}

apr_status_t ocsp_store_make_dir(const char *dir, int as_root, apr_uid_t uid,
                                 apr_gid_t gid, int *pcreated, apr_pool_t *p)
{
    char *path = apr_pstrdup(p, dir);
    apr_size_t n = strlen(path);
    int created = 0;
    apr_status_t rv;

    while (n > 1 && path[n - 1] == '/') {
        path[--n] = '\0';
    }
    if (path[0] != '/') {
        rv = APR_ERELATIVE;
        goto cleanup;
    }
    if ((rv = make_parents(path)) != APR_SUCCESS) {
        goto cleanup;
    }
    if ((rv = make_one(path, 0700, &created)) != APR_SUCCESS || !created) {
        goto cleanup;
    }
    if ((rv = set_owner_mode(path, 0700, as_root, uid, gid)) != APR_SUCCESS) {
        /* Left there, it would pass for the admin's own directory at the
         * next start and never be given to the server user: start afresh. */
        rmdir(path);
        created = 0;
    }

cleanup:
    *pcreated = created;
    return rv;
}
