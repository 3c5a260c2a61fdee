/*
 * state.c - see state.h.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/clock.h"
#include "common/files.h"

#define HEADER "sectorcast-state 1\n"
/* Compact when the log holds this many bytes beyond one line per channel. */
#define COMPACT_BYTES (256 * 1024)
#define FSYNC_EVERY_MS 1000

typedef struct entry {
    char *channel;
    char epoch[SC_EPOCH_MAX + 1];
    uint64_t seq;
    struct entry *next;
} entry_t;

struct sc_state {
    char *path;
    int fd;
    entry_t *entries, **tail;
    size_t n_entries;
    char *pend;           /* records not yet written */
    size_t pend_len, pend_cap;
    size_t log_bytes;     /* size of the file */
    int64_t last_sync_ms;
    bool unsynced;
};

static entry_t *find(sc_state_t *s, const char *channel, bool create)
{
    for (entry_t *e = s->entries; e; e = e->next)
        if (strcmp(e->channel, channel) == 0)
            return e;
    if (!create)
        return NULL;
    entry_t *e = calloc(1, sizeof *e);
    if (!e || !(e->channel = strdup(channel))) {
        free(e);
        return NULL;
    }
    *s->tail = e;
    s->tail = &e->next;
    s->n_entries++;
    return e;
}

bool sc_state_epoch_valid(const char *e, size_t n)
{
    if (n == 0 || n > SC_EPOCH_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (e[i] <= ' ' || e[i] > '~')
            return false;
    return true;
}

/* Parse "CHANNEL EPOCH SEQ" (no newline). */
static int parse_line(sc_state_t *s, char *line, const char **why)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
        *why = "want 'CHANNEL EPOCH SEQ'";
        return -1;
    }
    *sp1 = *sp2 = '\0';
    if (!sc_channel_valid(line)) {
        *why = "not a channel name";
        return -1;
    }
    if (!sc_state_epoch_valid(sp1 + 1, (size_t)(sp2 - sp1 - 1))) {
        *why = "bad epoch";
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(sp2 + 1, &end, 10);
    if (errno || end == sp2 + 1 || *end || sp2[1] == '-') {
        *why = "bad seq";
        return -1;
    }
    entry_t *e = find(s, line, true);
    if (!e) {
        *why = "out of memory";
        return -1;
    }
    snprintf(e->epoch, sizeof e->epoch, "%s", sp1 + 1);
    e->seq = (uint64_t)v;
    return 0;
}

static int load(sc_state_t *s, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        snprintf(err, errlen, "state file %s: %s", s->path, strerror(errno));
        return -1;
    }
    if (st.st_size == 0)
        return 0;
    if (st.st_size > 256 * 1024 * 1024) {
        snprintf(err, errlen, "state file %s: too large (%lld bytes)",
                 s->path, (long long)st.st_size);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        snprintf(err, errlen, "state file %s: out of memory", s->path);
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(s->fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "state file %s: read: %s", s->path,
                     n < 0 ? strerror(errno) : "unexpected end");
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    buf[size] = '\0';
    int rc = 0;
    if (size < strlen(HEADER) || memcmp(buf, HEADER, strlen(HEADER)) != 0) {
        snprintf(err, errlen, "state file %s:1: not a sectorcast state file "
                 "(want first line '%.*s')", s->path,
                 (int)strlen(HEADER) - 1, HEADER);
        free(buf);
        return -1;
    }
    char *p = buf + strlen(HEADER);
    int lineno = 1;
    while (*p) {
        lineno++;
        char *nl = strchr(p, '\n');
        if (!nl)
            break; /* torn last record of a killed writer: never committed */
        *nl = '\0';
        const char *why = NULL;
        if (memchr(p, '\0', (size_t)(nl - p)) || parse_line(s, p, &why) != 0) {
            snprintf(err, errlen, "state file %s:%d: malformed record: %s",
                     s->path, lineno, why ? why : "NUL byte");
            rc = -1;
            break;
        }
        p = nl + 1;
    }
    s->log_bytes = size;
    free(buf);
    return rc;
}

sc_state_t *sc_state_open(const char *path, char *err, size_t errlen)
{
    sc_state_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->tail = &s->entries;
    s->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        snprintf(err, errlen, "cannot open state file %s: %s", path,
                 strerror(errno));
        sc_state_close(&s);
        return NULL;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "state file %s is in use by another process "
                 "(%s)", path, strerror(errno));
        close(s->fd);
        s->fd = -1;
        sc_state_close(&s);
        return NULL;
    }
    if (load(s, err, errlen) != 0) {
        close(s->fd);
        s->fd = -1;
        sc_state_close(&s);
        return NULL;
    }
    if (s->log_bytes == 0) {
        ssize_t n = write(s->fd, HEADER, strlen(HEADER));
        if (n != (ssize_t)strlen(HEADER)) {
            snprintf(err, errlen, "cannot write state file %s: %s", path,
                     n < 0 ? strerror(errno) : "short write");
            close(s->fd);
            s->fd = -1;
            sc_state_close(&s);
            return NULL;
        }
        s->log_bytes = (size_t)n;
        s->unsynced = true;
    }
    s->last_sync_ms = sc_mono_ms();
    return s;
}

void sc_state_foreach(const sc_state_t *s, sc_state_fn fn, void *arg)
{
    for (const entry_t *e = s->entries; e; e = e->next)
        if (fn(arg, e->channel, e->epoch, e->seq))
            return;
}

static int append(sc_state_t *s, const char *txt, size_t n)
{
    if (s->pend_len + n + 1 > s->pend_cap) {
        size_t cap = s->pend_cap ? s->pend_cap : 1024;
        while (cap < s->pend_len + n + 1)
            cap *= 2;
        char *p = realloc(s->pend, cap);
        if (!p)
            return -1;
        s->pend = p;
        s->pend_cap = cap;
    }
    memcpy(s->pend + s->pend_len, txt, n);
    s->pend_len += n;
    return 0;
}

int sc_state_put(sc_state_t *s, const char *channel, const char *epoch,
                 uint64_t seq, char *err, size_t errlen)
{
    if (!sc_channel_valid(channel) || !sc_state_epoch_valid(epoch, strlen(epoch))) {
        snprintf(err, errlen, "state file %s: refusing to record channel "
                 "'%.200s' epoch '%.64s'", s->path, channel, epoch);
        return -1;
    }
    entry_t *e = find(s, channel, true);
    char line[SC_CHANNEL_MAX + SC_EPOCH_MAX + 32];
    int n = snprintf(line, sizeof line, "%s %s %" PRIu64 "\n", channel, epoch,
                     seq);
    if (!e || n <= 0 || (size_t)n >= sizeof line ||
        append(s, line, (size_t)n) != 0) {
        snprintf(err, errlen, "state file %s: out of memory", s->path);
        return -1;
    }
    snprintf(e->epoch, sizeof e->epoch, "%s", epoch);
    e->seq = seq;
    return 0;
}

/* Rewrite the file with one line per channel: temp, fsync, rename. */
static int compact(sc_state_t *s, char *err, size_t errlen)
{
    size_t plen = strlen(s->path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(tmp, s->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    char *txt = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&txt, &len);
    int fd = -1, rc = -1;
    if (!mem)
        goto out;
    fputs(HEADER, mem);
    for (entry_t *e = s->entries; e; e = e->next)
        fprintf(mem, "%s %s %" PRIu64 "\n", e->channel, e->epoch, e->seq);
    if (fclose(mem) != 0)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 ||
        sc_file_write_all(fd, txt, len) != 0 || fsync(fd) != 0 ||
        rename(tmp, s->path) != 0) {
        snprintf(err, errlen, "cannot compact state file %s via %s: %s",
                 s->path, tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        fd = -1;
        goto out;
    }
    sc_file_sync_dir(s->path);
    close(s->fd); /* the new file is locked already */
    s->fd = fd;
    fd = -1;
    s->log_bytes = len;
    s->last_sync_ms = sc_mono_ms();
    s->unsynced = false;
    rc = 0;
out:
    if (rc != 0 && err && errlen && !err[0])
        snprintf(err, errlen, "cannot compact state file %s: out of memory",
                 s->path);
    free(txt);
    free(tmp);
    return rc;
}

int sc_state_flush(sc_state_t *s, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (s->pend_len > 0) {
        if (sc_file_write_all(s->fd, s->pend, s->pend_len) != 0) {
            snprintf(err, errlen, "cannot write state file %s: %s", s->path,
                     strerror(errno));
            return -1;
        }
        s->log_bytes += s->pend_len;
        s->pend_len = 0;
        s->unsynced = true;
    }
    if (s->log_bytes > COMPACT_BYTES + s->n_entries * 128)
        return compact(s, err, errlen);
    if (s->unsynced && sc_mono_ms() - s->last_sync_ms >= FSYNC_EVERY_MS) {
        if (fsync(s->fd) != 0) {
            snprintf(err, errlen, "cannot fsync state file %s: %s", s->path,
                     strerror(errno));
            return -1;
        }
        s->unsynced = false;
        s->last_sync_ms = sc_mono_ms();
    }
    return 0;
}

void sc_state_close(sc_state_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    sc_state_t *s = *s_p;
    if (s->fd >= 0) {
        char err[256];
        sc_state_flush(s, err, sizeof err);
        fsync(s->fd);
        close(s->fd);
    }
    while (s->entries) {
        entry_t *e = s->entries;
        s->entries = e->next;
        free(e->channel);
        free(e);
    }
    free(s->pend);
    free(s->path);
    free(s);
    *s_p = NULL;
}
