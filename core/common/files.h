/*
 * files.h - small key and key-set files on disk (internal header).
 *
 * Owns how core/common reads and writes its files: bounded reads (optionally
 * into sodium_malloc()ed memory for secrets), permission checks on secret
 * files done on the open descriptor, exclusive creation with an exact mode,
 * and atomic replacement (temp file + fsync + rename).
 */
#ifndef SC_FILES_H
#define SC_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Check a stat of `path` for a secret file: regular file, no group/other
 * access, owned by the effective uid. 0 or -1 with err. */
int sc_file_check_secret_stat(const char *path, const struct stat *st,
                              char *err, size_t errlen);

/* Read the whole file (at most maxlen bytes) into a NUL-terminated buffer.
 * secret: buffer comes from sodium_malloc() and permissions are checked
 * (check_perms) on the opened descriptor. Free with sc_file_free(). */
int sc_file_read(const char *path, size_t maxlen, bool secret,
                 bool check_perms, char **out, size_t *out_len, char *err,
                 size_t errlen);
void sc_file_free(char *buf, bool secret);

/* Write data to path with exactly `mode` (umask-proof). overwrite=false:
 * O_CREAT|O_EXCL, fails if path exists. overwrite=true: temp file in the
 * same directory, fsync, rename over path. 0 or -1 with err. */
int sc_file_write(const char *path, const void *data, size_t len,
                  mode_t mode, bool overwrite, char *err, size_t errlen);

/* write(2) all of data to fd, retrying on EINTR. 0 or -1 (errno set). */
int sc_file_write_all(int fd, const void *data, size_t len);

/* fsync the directory holding `path`, so that a create or rename of it
 * is durable. Best effort. */
void sc_file_sync_dir(const char *path);

#endif
