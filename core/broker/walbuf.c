/*
 * walbuf.c - see walbuf.h.
 *
 * The WAL's format (SQLite's file format document, "WAL file format"): a
 * 32-byte header whose bytes 8-11 are the page size (big-endian; 1 means
 * 65536), then frames of a 24-byte header and one page. Frame k starts at
 * 32 + k * (24 + page size); bytes 4-7 of its header are the database's
 * size in pages after the commit for a commit frame, 0 for any other.
 *
 * A WAL file opened through the VFS is wrapped (walbuf_file: our methods,
 * the real unix file after it). A frame header written at a frame's start,
 * contiguous with what is buffered, is buffered; so is the page that
 * follows it. When that page belongs to a commit frame, the buffer is
 * written (one xWrite of the real file) before the page's xWrite returns,
 * and its result is returned. Everything else -- the WAL header at offset
 * 0, a page rewritten in place, a write that does not fit the pattern --
 * first writes the buffer, then goes to the real file as asked. Readers
 * and the checkpointer read the WAL through their own file handles: they
 * only read frames that a commit has published, and a commit publishes
 * (updates the WAL index) after its frames' writes returned.
 */
#include "walbuf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sqlite3_file base;
    sqlite3_file *real; /* the unix file, in the memory after this struct */
    uint32_t page;      /* the WAL's page size, 0 until known */
    unsigned char *buf; /* frames not written yet: [off, off + len) */
    size_t len;
    sqlite3_int64 off;
    bool commit; /* the buffered header is a commit frame's */
} walbuf_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs walbuf_vfs;
static const sqlite3_io_methods walbuf_methods;
static _Atomic uint64_t st_asked, st_made, st_pending;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* a WAL header's page size (stored as is, 65536 too: unlike the
 * database header, the WAL header does not write 65536 as 1), 0 if it is
 * not a valid one */
static uint32_t page_size_of(const unsigned char *hdr)
{
    uint32_t v = be32(hdr + 8);
    return v >= 512 && v <= 65536 && (v & (v - 1)) == 0 ? v : 0;
}

static int flush(walbuf_file *f)
{
    if (f->len == 0)
        return SQLITE_OK;
    size_t n = f->len;
    f->len = 0;
    f->commit = false;
    atomic_fetch_sub_explicit(&st_pending, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&st_made, 1, memory_order_relaxed);
    /* on failure the frames are gone and SQLite is told: it fails the
     * transaction, and no WAL index ever names those frames */
    return f->real->pMethods->xWrite(f->real, f->buf, (int)n, f->off);
}

static int direct(walbuf_file *f, const void *p, int amt, sqlite3_int64 off)
{
    int rc = flush(f);
    if (rc != SQLITE_OK)
        return rc;
    atomic_fetch_add_explicit(&st_made, 1, memory_order_relaxed);
    return f->real->pMethods->xWrite(f->real, p, amt, off);
}

static void append(walbuf_file *f, const void *p, size_t amt,
                   sqlite3_int64 off)
{
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, p, amt);
    f->len += amt;
    atomic_fetch_add_explicit(&st_pending, amt, memory_order_relaxed);
}

/* the page size from the WAL's header on disk (a WAL this connection did
 * not start); 0 if there is none yet */
static uint32_t page_size_on_disk(walbuf_file *f)
{
    unsigned char hdr[SC_WAL_HEADER];
    if (f->real->pMethods->xRead(f->real, hdr, SC_WAL_HEADER, 0) != SQLITE_OK)
        return 0;
    return page_size_of(hdr);
}

static int w_write(sqlite3_file *pf, const void *p, int amt,
                   sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    atomic_fetch_add_explicit(&st_asked, 1, memory_order_relaxed);
    if (off == 0 && amt >= SC_WAL_HEADER) { /* a new WAL header */
        f->page = page_size_of(p);
        return direct(f, p, amt, off);
    }
    if (off < SC_WAL_HEADER)
        return direct(f, p, amt, off);
    if (f->page == 0 && (f->page = page_size_on_disk(f)) == 0)
        return direct(f, p, amt, off);
    sqlite3_int64 frame = SC_WAL_FRAME_HEADER + (sqlite3_int64)f->page;
    sqlite3_int64 at = (off - SC_WAL_HEADER) % frame;
    bool contiguous = f->len == 0 || off == f->off + (sqlite3_int64)f->len;
    if (at == 0 && amt == SC_WAL_FRAME_HEADER) { /* a frame's header */
        int rc = SQLITE_OK;
        if (!contiguous || f->commit || f->len + frame > SC_WALBUF_MAX)
            rc = flush(f);
        if (rc != SQLITE_OK)
            return rc;
        if (!f->buf && !(f->buf = malloc(SC_WALBUF_MAX)))
            return direct(f, p, amt, off);
        append(f, p, SC_WAL_FRAME_HEADER, off);
        f->commit = be32((const unsigned char *)p + 4) != 0;
        return SQLITE_OK;
    }
    /* the page after it (the header made room for it) */
    if (at == SC_WAL_FRAME_HEADER && amt == (int)f->page && f->len > 0 &&
        contiguous) {
        append(f, p, f->page, off);
        return f->commit ? flush(f) : SQLITE_OK;
    }
    return direct(f, p, amt, off);
}

static int w_close(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *pf, void *p, int amt, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, amt, off);
}

static int w_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int w_sync(sqlite3_file *pf, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int w_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int w_lock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xLock(f->real, l);
}

static int w_unlock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xUnlock(f->real, l);
}

static int w_reserved(sqlite3_file *pf, int *out)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int w_fcntl(sqlite3_file *pf, int op, void *arg)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc
                           : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int w_sector(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int w_caps(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* version 1 methods: SQLite never maps or locks a WAL file's shared
 * memory through the WAL's own handle (that is the database file's) */
static const sqlite3_io_methods walbuf_methods = {
    .iVersion = 1,
    .xClose = w_close,
    .xRead = w_read,
    .xWrite = w_write,
    .xTruncate = w_truncate,
    .xSync = w_sync,
    .xFileSize = w_size,
    .xLock = w_lock,
    .xUnlock = w_unlock,
    .xCheckReservedLock = w_reserved,
    .xFileControl = w_fcntl,
    .xSectorSize = w_sector,
    .xDeviceCharacteristics = w_caps,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf,
                  int flags, int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL)) /* SQLite's own file, as it is */
        return real_vfs->xOpen(real_vfs, name, pf, flags, out_flags);
    walbuf_file *f = (walbuf_file *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    f->base.pMethods = f->real->pMethods ? &walbuf_methods : NULL;
    return rc;
}

/* the rest is the real VFS's, called with the real VFS */
static int v_delete(sqlite3_vfs *v, const char *n, int sync)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, n, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *n, int len, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *n)
{
    (void)v;
    return real_vfs->xDlOpen(real_vfs, n);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    real_vfs->xDlError(real_vfs, n, out);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void)
{
    (void)v;
    return real_vfs->xDlSym(real_vfs, h, s);
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
    (void)v;
    real_vfs->xDlClose(real_vfs, h);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out)
                                   : 0;
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    if (real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64)
        return real_vfs->xCurrentTimeInt64(real_vfs, out);
    double d;
    int rc = real_vfs->xCurrentTime(real_vfs, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static void do_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return;
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(walbuf_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = SC_WALBUF_VFS,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64,
    };
    register_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int sc_walbuf_register(void)
{
    pthread_once(&once, do_register);
    return register_rc;
}

void sc_walbuf_stats(sc_walbuf_stats_t *out)
{
    out->asked = atomic_load_explicit(&st_asked, memory_order_relaxed);
    out->made = atomic_load_explicit(&st_made, memory_order_relaxed);
    out->pending = atomic_load_explicit(&st_pending, memory_order_relaxed);
}
