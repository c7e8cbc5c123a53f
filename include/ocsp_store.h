/* Licensed under the Apache License, Version 2.0: see LICENSE. */
#ifndef OCSP_STORE_H
#define OCSP_STORE_H

/*
 * Verified OCSP responses on disk, so a restart staples from the first
 * handshake even while the responder is down: one DER file per certificate,
 * <dir>/<certificate id in hex>.der, readable by the server user only,
 * replaced atomically (temporary file + rename). APR and POSIX only, no
 * httpd: unit-tested on its own (t/unit/test_ocsp_store.c).
 *
 * Trust: the store directory belongs to the unprivileged server user, so
 * anything may be planted in it (symbolic links, FIFOs, directories, huge
 * files). Nothing read back is trusted: the caller verifies every response
 * again, and the functions below never follow a link they were not told to,
 * never block on a special file and never read more than they were asked.
 * Only ocsp_store_make_dir is meant to run as root (the parent, before it
 * forks); the rest runs with the server user's privileges.
 *
 * Conventions: apr_status_t; outputs first, the pool last; what is returned
 * lives as long as that pool. Errors of the system are APR_FROM_OS_ERROR
 * (errno); ocsp_file_strerror turns any of them into a log-ready text.
 */

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_user.h>

/* ocsp_file_read flag: fail with ELOOP when path itself is a symbolic link.
 * For store files: the store only ever holds files ocsp_store_write made,
 * and a planted link could point anywhere the reader may read (a device,
 * a file of another program). Not for an OCSPStaplingFile: the admin chose
 * that path and may well point it at a link. Only the last component is
 * concerned: the directories above belong to the admin. */
#define OCSP_FILE_NOFOLLOW 0x01

/* What ocsp_file_read found is not a regular file (a FIFO, directory,
 * socket, device): nobody writes those as responses, so it is refused
 * before anything is read. Clear of the project's other user codes. */
#define OCSP_FILE_ENOTREG (APR_OS_START_USERERR + 20)

/* The file name for a certificate id: <dir>/<hex of id>.der, from p. */
const char *ocsp_store_path(const char *dir, const unsigned char *id,
                            apr_size_t id_len, apr_pool_t *p);

/* Reads a DER file of at most max_len bytes and its modification time: a
 * stored response (see ocsp_store_path; flags OCSP_FILE_NOFOLLOW) or an
 * OCSPStaplingFile (flags 0). Called at start-up and by the refresh, with
 * the server user's privileges. Never blocks: a FIFO without a writer is
 * refused at once. *pder (from p) and *plen are set on success, NULL and 0
 * otherwise; *pmtime is the file's mtime on success, 0 otherwise.
 * APR_ENOENT: no such file; APR_ENOSPC: larger than max_len;
 * OCSP_FILE_ENOTREG: not a regular file; ELOOP: a symbolic link with
 * OCSP_FILE_NOFOLLOW; APR_EOF: the file shrank while being read. */
apr_status_t ocsp_file_read(unsigned char **pder, apr_size_t *plen,
                            apr_time_t *pmtime, const char *path,
                            apr_size_t max_len, int flags, apr_pool_t *p);

/* A text for a status of ocsp_file_read, as "<why> (<code>)": the codes
 * above in words ("not a regular file", "a symbolic link (not followed)",
 * "too large"), apr_strerror for the others. Allocated from p. Meant for
 * what ocsp_file_read returns: elsewhere APR_ENOSPC is a full disk. */
const char *ocsp_file_strerror(apr_status_t rv, apr_pool_t *p);

/* Replaces the stored DER of id atomically, mode 0600: written to a new
 * temporary <path>.XXXXXX, synced, renamed over <path>, then the directory
 * is synced so the rename itself survives a crash. Readers see the old or
 * the new response, never a part. The temporary file is removed on failure;
 * one left by a crash is removed by ocsp_store_remove_stale. Called after a
 * verified fetch, with the server user's privileges. */
apr_status_t ocsp_store_write(const char *dir, const unsigned char *id,
                              apr_size_t id_len, const unsigned char *der,
                              apr_size_t len, apr_pool_t *p);

/* The same without either sync, for a batch: the new file replaces the old
 * at once, and ocsp_store_sync(dir) after the batch makes all of them
 * durable. A crash (power loss) before that may leave an empty or partial
 * file under the name: read back, it does not verify and is fetched again,
 * as any unusable store file is. */
apr_status_t ocsp_store_write_unsynced(const char *dir,
                                       const unsigned char *id,
                                       apr_size_t id_len,
                                       const unsigned char *der,
                                       apr_size_t len, apr_pool_t *p);
/* Makes what ocsp_store_write_unsynced wrote to dir durable. */
apr_status_t ocsp_store_sync(const char *dir);

/* Removes the temporary files that interrupted ocsp_store_write calls left
 * in dir: regular files named exactly <40 lowercase hex>.der.<6 letters or
 * digits> whose mtime is more than min_age before now (min_age keeps a
 * write in progress, in another process, safe). Symbolic links are never
 * followed nor removed, and every other name is left alone. *premoved
 * receives how many were removed. Runs with the server user's privileges
 * (the files are its own). Returns the first error met, having tried every
 * entry. */
apr_status_t ocsp_store_remove_stale(const char *dir, apr_time_t now,
                                     apr_interval_time_t min_age,
                                     int *premoved, apr_pool_t *p);

/* Makes the store directory dir (absolute) at start-up. Missing parents are
 * created mode 0755 (the server user must traverse them), dir itself 0700,
 * whatever the umask. When as_root, a dir this call created is given to
 * uid:gid (the server user, which writes the store); parents stay root's.
 * An existing dir is left as it is (never chowned nor chmodded: the admin
 * may have set it up on purpose); an existing path that is not a directory
 * is APR_ENOTDIR. *pcreated tells whether this call created dir. */
apr_status_t ocsp_store_make_dir(const char *dir, int as_root, apr_uid_t uid,
                                 apr_gid_t gid, int *pcreated, apr_pool_t *p);

#endif /* OCSP_STORE_H */
