/*
 * sk_register.c - the register directory of a sector plugin.
 *
 * A register file is a JSON object:
 *
 *   { "format": 1,                      optional, must be 1
 *     "description": "...",             optional
 *     "tasks": [ {task}, ... ],         optional
 *     "standards": [ {standard}, ... ], optional
 *     "indicators": [ {series}, ... ]   optional }
 *
 * Every regular file named *.json (not starting with '.') is read, in
 * strcmp order of names; entries of one file come in the order tasks,
 * then standards, then indicators, each in array order.
 *
 * Change detection: a file is read again when its stat signature (device,
 * inode, size, mtime, ctime) changed, or when its mtime is so recent that
 * a second write within the same timestamp tick could hide behind an
 * unchanged signature (git's "racily clean" problem). A read whose bytes
 * hash like the last read is no change. So a register at rest costs one
 * stat per file per poll, and nothing is logged twice for one content.
 *
 * Failure rules: a file that does not parse, or whose top level has the
 * wrong shape, keeps its last good entries (none if it never parsed). An
 * entry that fails its checks is skipped; if an entry with the same id was
 * good in the file's last good content, that version is kept in its place,
 * so that a typo never looks like a deleted task to subscribers.
 */
#include "sk_register.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sk_schema.h"

/* mtime at most this many seconds old: read the file even if its stat
 * signature did not change. */
#define RACY_SECONDS 2

typedef struct file_rec {
    char *name;
    char *path;

    int have_sig;
    struct stat sig;    /* of the last read */
    int have_hash;
    uint64_t hash;      /* FNV-1a of the last bytes read */
    int not_regular;    /* logged once */

    sk_entry_t *entries; /* last good content; each holds a ref on obj */
    size_t n_entries;
} file_rec_t;

struct sk_register {
    const sk_sector_t *sector;
    char *dir;
    file_rec_t **files; /* sorted by name */
    size_t n_files;
    int dir_failed;     /* the directory's error was logged */
    const sk_entry_t **view;
    size_t n_view;
};

/* ------------------------------------------------------------ files -- */

static void
free_entries(sk_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(e[i].obj);
    free(e);
}

static void
file_destroy(file_rec_t *f)
{
    if (!f)
        return;
    free_entries(f->entries, f->n_entries);
    free(f->name);
    free(f->path);
    free(f);
}

static file_rec_t *
file_new(const char *dir, const char *name)
{
    file_rec_t *f = calloc(1, sizeof *f);
    size_t n = strlen(dir) + strlen(name) + 2;
    if (!f || !(f->name = strdup(name)) || !(f->path = malloc(n))) {
        file_destroy(f);
        return NULL;
    }
    snprintf(f->path, n, "%s/%s", dir, name);
    return f;
}

static uint64_t
fnv1a(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int
same_sig(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Read all of `path`. Returns 0 with *buf (malloc'd) / *len / *st, or an
 * errno value (EFBIG: over SK_FILE_MAX, EINVAL: not a regular file). */
static int
read_all(const char *path, char **buf, size_t *len, struct stat *st)
{
    /* O_NONBLOCK: a FIFO named *.json must not hang the plugin */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = 0;
    char *b = NULL;
    size_t n = 0, cap = 0;
    if (fstat(fd, st) < 0) {
        err = errno;
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        err = EINVAL;
        goto out;
    }
    cap = (size_t)st->st_size + 1;
    if (cap > SK_FILE_MAX + 1) {
        err = EFBIG;
        goto out;
    }
    for (;;) {
        if (n + 1 >= cap) { /* the file grew while we read it */
            if (cap > SK_FILE_MAX) {
                err = EFBIG;
                goto out;
            }
            cap *= 2;
        }
        char *nb = realloc(b, cap);
        if (!nb) {
            err = ENOMEM;
            goto out;
        }
        b = nb;
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
out:
    close(fd);
    if (err) {
        free(b);
        return err;
    }
    if (!b && !(b = malloc(1)))
        return ENOMEM;
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static const sk_entry_t *
find_entry(const sk_entry_t *e, size_t n, sk_kind_t kind, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].kind == kind && !strcmp(e[i].id, id))
            return &e[i];
    return NULL;
}

static int
push_entry(sk_entry_t **arr, size_t *n, size_t *cap, sk_kind_t kind,
           json_t *obj, const char *file, size_t index)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        sk_entry_t *p = realloc(*arr, ncap * sizeof *p);
        if (!p)
            return -1;
        *arr = p;
        *cap = ncap;
    }
    sk_entry_t *e = &(*arr)[*n];
    e->kind = kind;
    e->obj = json_incref(obj);
    e->id = sk_entry_id(obj);
    e->file = file;
    e->pos = *n;
    e->index = index;
    (*n)++;
    return 0;
}

/* Parse the bytes of `f` into a new list of entries. Returns 0 and the
 * list, or -1 if the file as a whole is unusable (logged). */
static int
parse_file(const sk_sector_t *sector, file_rec_t *f, const char *buf,
           size_t len, const sk_log_t *lg, sk_entry_t **out, size_t *n_out)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    sk_entry_t *arr = NULL;
    size_t n = 0, cap = 0;
    if (!root) {
        SK_LOG(lg, SC_LOG_ERROR, "%s: line %d: %s", f->path, je.line,
               je.text);
        return -1;
    }
    if (!json_is_object(root)) {
        SK_LOG(lg, SC_LOG_ERROR, "%s: must be a JSON object with \"tasks\", "
               "\"standards\" and/or \"indicators\" arrays", f->path);
        goto bad;
    }
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        if (!strcmp(name, "format")) {
            if (!json_is_integer(v) || json_integer_value(v) != 1) {
                SK_LOG(lg, SC_LOG_ERROR, "%s: \"format\" must be 1 (the "
                       "register format this plugin reads)", f->path);
                goto bad;
            }
        } else if (!strcmp(name, "tasks") || !strcmp(name, "standards") ||
                   !strcmp(name, "indicators")) {
            if (!json_is_array(v)) {
                SK_LOG(lg, SC_LOG_ERROR, "%s: \"%s\" must be an array",
                       f->path, name);
                goto bad;
            }
        } else if (strcmp(name, "description") != 0) {
            SK_LOG(lg, SC_LOG_WARN, "%s: unknown member \"%s\" ignored",
                   f->path, name);
        }
    }

    for (int k = 0; k < SK_KINDS; k++) {
        sk_kind_t kind = (sk_kind_t)k;
        json_t *list = json_object_get(root, sk_kind_array(kind));
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            char why[320];
            if (sk_entry_check(sector, kind, e, why, sizeof why) == 0) {
                if (push_entry(&arr, &n, &cap, kind, e, f->name, i) < 0)
                    goto oom;
                continue;
            }
            const char *id = json_string_value(json_object_get(e, "id"));
            if (!id || !(kind == SK_INDICATOR ? sk_series_id_valid(id)
                                              : sk_id_valid(id))) {
                SK_LOG(lg, SC_LOG_ERROR, "%s: entry index %zu in \"%s\": "
                       "%s; skipped", f->path, i, sk_kind_array(kind), why);
                continue;
            }
            const sk_entry_t *old = find_entry(f->entries, f->n_entries,
                                               kind, id);
            SK_LOG(lg, SC_LOG_ERROR, "%s: entry %s: %s; %s", f->path, id,
                   why, old ? "keeping its previous version" : "skipped");
            if (old && push_entry(&arr, &n, &cap, kind, old->obj, f->name,
                                  i) < 0)
                goto oom;
        }
    }
    json_decref(root);
    *out = arr;
    *n_out = n;
    return 0;
oom:
    SK_LOG(lg, SC_LOG_ERROR, "%s: out of memory", f->path);
bad:
    free_entries(arr, n);
    json_decref(root);
    return -1;
}

/* Read `f` again if it may have changed. Returns 1 if its entries were
 * replaced, 0 if not. */
/* true if `path` resolves to a file inside the directory `dir` (after
 * symlinks): a symlink to another file is never read, so no error can
 * quote content from outside the register directory */
static int
inside_dir(const char *dir, const char *path)
{
    char rd[PATH_MAX], rp[PATH_MAX];
    if (!realpath(dir, rd) || !realpath(path, rp))
        return 0;
    size_t n = strlen(rd);
    return strncmp(rp, rd, n) == 0 && rp[n] == '/';
}

static int
refresh_file(const sk_sector_t *sector, const char *dir, file_rec_t *f,
             const sk_log_t *lg)
{
    struct stat st;
    if (stat(f->path, &st) < 0)
        return 0; /* vanished since readdir: next scan drops it */
    if (!inside_dir(dir, f->path)) {
        if (!f->not_regular)
            SK_LOG(lg, SC_LOG_WARN,
                   "%s: a symlink to a file outside the register directory; "
                   "ignored (not read)",
                   f->path);
        f->not_regular = 1;
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        if (!f->not_regular)
            SK_LOG(lg, SC_LOG_WARN, "%s: not a regular file; ignored",
                   f->path);
        f->not_regular = 1;
        return 0;
    }
    f->not_regular = 0;
    time_t now = time(NULL);
    int racy = now - st.st_mtim.tv_sec <= RACY_SECONDS;
    if (f->have_sig && same_sig(&st, &f->sig) && !racy)
        return 0;

    char *buf = NULL;
    size_t len = 0;
    int err = read_all(f->path, &buf, &len, &st);
    if (err) {
        /* log once per signature, not on every poll */
        if (!f->have_sig || !same_sig(&st, &f->sig))
            SK_LOG(lg, SC_LOG_ERROR, "%s: cannot read: %s%s", f->path,
                   err == EFBIG ? "larger than the 16 MiB limit"
                                : strerror(err),
                   f->n_entries ? "; keeping its last good content" : "");
        f->sig = st;
        f->have_sig = 1;
        return 0;
    }
    f->sig = st;
    f->have_sig = 1;
    uint64_t h = fnv1a(buf, len);
    if (f->have_hash && h == f->hash) {
        free(buf);
        return 0;
    }
    f->hash = h;
    f->have_hash = 1;

    sk_entry_t *entries = NULL;
    size_t n = 0;
    int rc = parse_file(sector, f, buf, len, lg, &entries, &n);
    free(buf);
    if (rc < 0) {
        if (f->n_entries)
            SK_LOG(lg, SC_LOG_WARN, "%s: keeping its last good content "
                   "(%zu entries)", f->path, f->n_entries);
        return 0;
    }
    free_entries(f->entries, f->n_entries);
    f->entries = entries;
    f->n_entries = n;
    return 1;
}

/* -------------------------------------------------------- directory -- */

/* A file left the directory. Returns 1 if it had entries. */
static int
drop_file(file_rec_t *f, const sk_log_t *lg)
{
    int had = f->n_entries > 0;
    if (had)
        SK_LOG(lg, SC_LOG_INFO, "%s: removed; its %zu entries are gone",
               f->path, f->n_entries);
    file_destroy(f);
    return had;
}

static int
wanted_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && !strcmp(name + n - 5, ".json");
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the wanted files of `dir`. Returns their number, or -1
 * with errno set. */
static long
list_dir(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!wanted_name(de->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **p = realloc(names, ncap * sizeof *p);
            if (!p)
                goto oom;
            names = p;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name)))
            goto oom;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    return (long)n;
oom:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    errno = ENOMEM;
    return -1;
}

sk_register_t *
sk_register_new(const sk_sector_t *sector, const char *dir)
{
    sk_register_t *reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    reg->sector = sector;
    if (!(reg->dir = strdup(dir))) {
        free(reg);
        return NULL;
    }
    return reg;
}

void
sk_register_destroy(sk_register_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sk_register_t *reg = *self_p;
    for (size_t i = 0; i < reg->n_files; i++)
        file_destroy(reg->files[i]);
    free(reg->files);
    free(reg->view);
    free(reg->dir);
    free(reg);
    *self_p = NULL;
}

int
sk_register_scan(sk_register_t *reg, const sk_log_t *lg)
{
    char **names = NULL;
    long n = list_dir(reg->dir, &names);
    if (n < 0) {
        /* Keep everything as it was: a directory that is briefly gone
         * (remount, rename) must not look like every entry removed. */
        if (!reg->dir_failed)
            SK_LOG(lg, SC_LOG_ERROR, "%s: cannot read the register "
                   "directory: %s; keeping the last good register",
                   reg->dir, strerror(errno));
        reg->dir_failed = 1;
        return -1;
    }
    if (reg->dir_failed)
        SK_LOG(lg, SC_LOG_INFO, "%s: register directory readable again",
               reg->dir);
    reg->dir_failed = 0;

    file_rec_t **files = calloc(n ? (size_t)n : 1, sizeof *files);
    if (!files) {
        for (long i = 0; i < n; i++)
            free(names[i]);
        free(names);
        SK_LOG(lg, SC_LOG_ERROR, "%s: out of memory", reg->dir);
        return -1;
    }
    /* Both lists are sorted by name: walk them together. */
    int changed = 0;
    size_t o = 0;
    for (long i = 0; i < n; i++) {
        int c = 1;
        while (o < reg->n_files &&
               (c = strcmp(reg->files[o]->name, names[i])) < 0)
            changed |= drop_file(reg->files[o++], lg);
        if (o < reg->n_files && c == 0)
            files[i] = reg->files[o++];
        else if (!(files[i] = file_new(reg->dir, names[i])))
            SK_LOG(lg, SC_LOG_ERROR, "%s: out of memory", reg->dir);
        free(names[i]);
    }
    free(names);
    while (o < reg->n_files)
        changed |= drop_file(reg->files[o++], lg);
    free(reg->files);
    /* drop slots whose record could not be made */
    size_t m = 0;
    for (long i = 0; i < n; i++)
        if (files[i])
            files[m++] = files[i];
    reg->files = files;
    reg->n_files = m;

    for (size_t i = 0; i < reg->n_files; i++)
        changed |= refresh_file(reg->sector, reg->dir, reg->files[i], lg);
    return changed;
}

long
sk_register_view(sk_register_t *reg, const sk_log_t *lg,
                 const sk_entry_t *const **out)
{
    size_t total = 0;
    for (size_t i = 0; i < reg->n_files; i++)
        total += reg->files[i]->n_entries;
    free(reg->view);
    reg->view = NULL;
    reg->n_view = 0;
    reg->view = malloc((total ? total : 1) * sizeof *reg->view);
    json_t *seen[SK_KINDS] = { json_object(), json_object(), json_object() };
    if (!reg->view || !seen[0] || !seen[1] || !seen[2]) {
        for (int k = 0; k < SK_KINDS; k++)
            json_decref(seen[k]);
        SK_LOG(lg, SC_LOG_ERROR, "%s: out of memory", reg->dir);
        return -1;
    }
    for (size_t i = 0; i < reg->n_files; i++) {
        file_rec_t *f = reg->files[i];
        for (size_t j = 0; j < f->n_entries; j++) {
            const sk_entry_t *e = &f->entries[j];
            json_t *first = json_object_get(seen[e->kind], e->id);
            if (first) {
                const sk_entry_t *w =
                    reg->view[json_integer_value(first)];
                SK_LOG(lg, SC_LOG_ERROR, "%s: entry %s (%s[%zu]): duplicate "
                       "id, first defined in %s/%s (%s[%zu]); ignored",
                       f->path, e->id, sk_kind_array(e->kind), e->index,
                       reg->dir, w->file, sk_kind_array(w->kind), w->index);
                continue;
            }
            json_object_set_new(seen[e->kind], e->id,
                                json_integer((json_int_t)reg->n_view));
            reg->view[reg->n_view++] = e;
        }
    }
    for (int k = 0; k < SK_KINDS; k++)
        json_decref(seen[k]);
    *out = reg->view;
    return (long)reg->n_view;
}
