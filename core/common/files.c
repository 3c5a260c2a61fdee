/*
 * files.c - bounded reads, permission checks and safe writes of key files.
 *
 * Every error text names the file and the problem; file contents are never
 * formatted into an error. Secret buffers are sodium_malloc()ed and wiped.
 */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"

#define SETERR(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)

int sc_file_check_secret_stat(const char *path, const struct stat *st,
                              char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        SETERR("%s: not a regular file", path);
        return -1;
    }
    if (st->st_mode & (S_IRWXG | S_IRWXO)) {
        SETERR("%s: mode %04o allows group/other access; run: chmod 600 %s",
               path, (unsigned)(st->st_mode & 07777), path);
        return -1;
    }
    if (st->st_uid != geteuid()) {
        SETERR("%s: owned by uid %lu, not by the user running this program "
               "(uid %lu)", path, (unsigned long)st->st_uid,
               (unsigned long)geteuid());
        return -1;
    }
    return 0;
}

void sc_file_free(char *buf, bool secret)
{
    if (secret)
        sodium_free(buf); /* wipes; NULL is fine */
    else
        free(buf);
}

int sc_file_read(const char *path, size_t maxlen, bool secret,
                 bool check_perms, char **out, size_t *out_len, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (secret && sc_sodium_init() != 0) {
        SETERR("%s: cannot initialise libsodium", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        SETERR("%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        SETERR("%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (check_perms) {
        if (sc_file_check_secret_stat(path, &st, err, errlen) != 0) {
            close(fd);
            return -1;
        }
    } else if (!S_ISREG(st.st_mode)) {
        SETERR("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > maxlen) {
        SETERR("%s: file too large (more than %zu bytes)", path, maxlen);
        close(fd);
        return -1;
    }
    /* Read up to maxlen+1 so a file that grew meanwhile is still caught. */
    size_t cap = maxlen + 1;
    char *buf = secret ? sodium_malloc(cap + 1) : malloc(cap + 1);
    if (buf == NULL) {
        SETERR("%s: out of memory", path);
        close(fd);
        return -1;
    }
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            SETERR("%s: %s", path, strerror(errno));
            close(fd);
            sc_file_free(buf, secret);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > maxlen) {
        SETERR("%s: file too large (more than %zu bytes)", path, maxlen);
        sc_file_free(buf, secret);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    if (out_len)
        *out_len = n;
    return 0;
}

int sc_file_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void sc_file_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : strdup(".");
    if (dir == NULL)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int sc_file_write(const char *path, const void *data, size_t len,
                  mode_t mode, bool overwrite, char *err, size_t errlen)
{
    char *tmp = NULL;
    int fd;
    if (overwrite) {
        size_t plen = strlen(path);
        tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
        if (tmp == NULL) {
            SETERR("%s: out of memory", path);
            return -1;
        }
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
        fd = mkstemp(tmp); /* created 0600 */
        if (fd < 0) {
            SETERR("%s: cannot create temporary file: %s", path,
                   strerror(errno));
            free(tmp);
            return -1;
        }
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                  mode);
        if (fd < 0) {
            if (errno == EEXIST)
                SETERR("%s: already exists (refusing to overwrite)", path);
            else
                SETERR("%s: %s", path, strerror(errno));
            return -1;
        }
    }
    const char *target = tmp ? tmp : path;
    /* The umask may have narrowed (or the temp file fixed) the mode. */
    if (fchmod(fd, mode) != 0 || sc_file_write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        SETERR("%s: %s", path, strerror(errno));
        close(fd);
        unlink(target);
        free(tmp);
        return -1;
    }
    if (close(fd) != 0) {
        SETERR("%s: %s", path, strerror(errno));
        unlink(target);
        free(tmp);
        return -1;
    }
    if (tmp != NULL) {
        if (rename(tmp, path) != 0) {
            SETERR("%s: cannot replace: %s", path, strerror(errno));
            unlink(tmp);
            free(tmp);
            return -1;
        }
        free(tmp);
    }
    sc_file_sync_dir(path);
    return 0;
}
