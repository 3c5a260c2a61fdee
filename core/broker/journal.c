/*
 * journal.c - see journal.h.
 *
 * Layout (schema 2):
 *   meta(k PRIMARY KEY, v)            epoch, schema
 *   channels(id INTEGER PRIMARY KEY, name UNIQUE, head, low)
 *                                     last seq issued per channel; replay is
 *                                     complete from low
 *   kids(id INTEGER PRIMARY KEY, kid UNIQUE, n)
 *                                     signing key ids, with how many retained
 *                                     messages each signed
 *   msg(id INTEGER PRIMARY KEY, ch, seq, kind, key, ts, kid, jws)
 *                                     one row per message, appended in
 *                                     commit order; UNIQUE INDEX (ch, seq)
 *   latest(ch, key, seq, msg) PRIMARY KEY (ch, key), WITHOUT ROWID
 *                                     the newest message of every key: what
 *                                     a snapshot serves and retention keeps
 *   plugin_state(plugin, key, value)  durable plugin state
 *   VIEW messages(channel, seq, kind, key, ts, jws, kid)
 *                                     the schema-1 shape, for operators'
 *                                     queries (read only)
 * `msg` is a rowid table filled at its end, so its pages are full and a
 * JWS of a few KB stays on the row's page (schema 1 kept messages in a
 * WITHOUT ROWID table, where any row over ~1 KB spilled most of itself into
 * a mostly empty overflow page). Channels and kids are small integers.
 * Heads are kept in `channels` (not derived from max(seq)) so that pruning
 * old messages can never make a sequence number reusable.
 *
 * Nothing at open or on the core's periodic paths reads every message:
 * heads, kid counts and latest keys live in small tables kept in the
 * append transaction. Schema-1 journals are migrated once at open (that
 * copy is proportional to the journal, and logged).
 *
 * Heads are cached in memory (a sorted array); sc_journal_next_seq()
 * advances the cache (possibly a group ahead of the open transaction),
 * readers are told the committed head, the rows of `channels` and `kids`
 * are written once per group at commit, and a rollback reloads both
 * caches from the database.
 *
 * The writer connection opens through walbuf (walbuf.h), which writes a
 * commit's WAL frames in one system call instead of two per frame.
 *
 * The writer does not checkpoint the WAL inside COMMIT: a wal hook wakes a
 * checkpointer thread with its own connection, which runs PASSIVE
 * checkpoints (it never blocks the writer or readers).
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/envelope.h"
#include "log.h"
#include "threads.h"
#include "walbuf.h"

#define SCHEMA_VERSION 2
/* a journal file up to this size gets a full quick_check at open (it costs
 * at most a few tens of ms); a larger one a check of its small tables */
#define FULL_CHECK_MAX_BYTES (32LL * 1024 * 1024)
/* pages of a new journal: at 8 KiB a group of 1,000 messages is half as
 * many WAL frames (two writes each) and checkpoint copies as at 4 KiB; a
 * raw SQLite table of the same rows took 142k rows/s instead of 100k, one
 * row per transaction about as long (docs/performance.md). An existing
 * journal keeps the page size it was created with. */
#define JOURNAL_PAGE_SIZE_TEXT "8192"
/* the checkpointer is woken when the WAL holds this many bytes */
#define CKPT_BYTES (4LL * 1024 * 1024)
/* and runs at least this often while the WAL is not empty */
#define CKPT_EVERY_MS 1000
/* beyond this many bytes the checkpointer makes the WAL restart. A
 * restart holds the writer off while it copies the last frames and syncs
 * them (2-3 ms on the development VM, the checkpointer having flushed the
 * database file after each checkpoint before it): at 32 MiB it happened
 * every 2-3 s at 10,000 msg/s, at 256 MiB every ~4 s with 8 KiB pages.
 * docs/operations.md states the bound. */
#define WAL_RESTART_BYTES (256LL * 1024 * 1024)
/* On a file system with less free space than the WAL's size plus this,
 * the WAL restarts at every checkpoint (every CKPT_BYTES, 4 MiB) instead:
 * a WAL that may grow to 256 MiB would otherwise fill a small data
 * partition by itself, and once full it could not restart (the copy into
 * the database needs room), so publishing would stay paused after the
 * operator freed space. */
#define WAL_LOW_SPACE_BYTES (64LL * 1024 * 1024)
#define CKPT_BUSY_MS 200
/* lock waits poll at this period (busy_poll) */
#define BUSY_POLL_US 200
#define CKPT_GAP_MS 20
/* The WAL file is not truncated when the WAL restarts (it is written
 * again from its start; at most WAL_RESTART_BYTES plus the frames written
 * during a restart, twice that at worst): SQLite truncates it in the
 * first commit after a restart, on the core thread, and cutting ~200 MB
 * off the file took 80 ms there (a 160 ms stall at 10,000 msg/s with the
 * restart's sync). Only the low-space mode and close truncate it, in
 * TRUNCATE checkpoints. */
#define WAL_SIZE_LIMIT (-1LL)

typedef struct head {
    char *channel;
    int64_t id;       /* rowid in channels; 0 = not yet written */
    uint64_t head;      /* last seq handed out (may be ahead of the db) */
    uint64_t pending;   /* highest seq appended in the open transaction */
    uint64_t committed; /* highest seq committed (what readers are told) */
} head_t;

typedef struct kid {
    char *kid;
    int64_t id;
    int64_t delta; /* messages appended (+) / pruned (-) in the transaction */
} kid_t;

/* The read side: used by sc_journal_reader_t (own connection, other
 * thread) and, on the writer's connection, by the core's read calls. */
typedef struct rd {
    sqlite3 *db;
    const char *path;
    sqlite3_stmt *scan, *chan, *heads_all, *heads_sub, *snap_all, *snap_sub;
    char err[512];
} rd_t;

struct sc_journal {
    sqlite3 *db;
    char *path;
    char *dir;
    char epoch[33];
    sqlite3_stmt *ins_msg, *ins_chan, *upd_head, *ins_latest, *ins_kid,
        *upd_kid, *begin, *commit;
    rd_t rd;
    head_t **heads; /* sorted by channel name */
    size_t n_heads, cap_heads;
    head_t **dirty; /* heads appended to in the open transaction */
    size_t n_dirty, cap_dirty;
    kid_t *kids;
    size_t n_kids;
    int in_txn;
    dev_t dev;  /* identity of the file we opened (ghost detection) */
    ino_t ino;
    char ghost[512]; /* non-empty once the file was replaced or deleted */
    uint64_t pages_at_open;

    /* checkpointer */
    pthread_t ckpt_thread;
    bool ckpt_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ckpt_stop;
    int wal_pages; /* WAL size at the last commit (pages) */
    bool ckpt_idle; /* the checkpointer waits for wal_pages to grow */
    /* the file's page size and the WAL bounds above in its pages */
    int page_size, ckpt_pages, restart_pages;
};

/* ------------------------------------------------------------------ */
/* errors: say what is wrong, never call a full disk "damage"          */

static void fs_space(const char *dir, char *buf, size_t n, bool *ro,
                     unsigned long long *free_b)
{
    struct statvfs vf;
    *ro = false;
    *free_b = 0;
    if (statvfs(dir, &vf) != 0) {
        snprintf(buf, n, "free space unknown: %s", strerror(errno));
        return;
    }
    *ro = (vf.f_flag & ST_RDONLY) != 0;
    *free_b = (unsigned long long)vf.f_bavail * vf.f_frsize;
    snprintf(buf, n, "%llu bytes free on its file system", *free_b);
}

/* Describe a failure of the journal file at `path` (in `dir`) while doing
 * `what`: sqlite result rc (extended), errno sys, SQLite's message msg. */
static void describe(const char *path, const char *dir, const char *what,
                     int rc, int sys, const char *msg, char *err,
                     size_t errlen)
{
    char space[96];
    bool ro;
    unsigned long long free_b;
    fs_space(dir, space, sizeof space, &ro, &free_b);
    int prim = rc & 0xff;
    if (sys == ENOSPC || sys == EDQUOT || prim == SQLITE_FULL ||
        (prim == SQLITE_IOERR && !ro && free_b < 65536))
        snprintf(err, errlen,
                 "%s: no space left on device while %s (%s): %s; free some "
                 "space (this is not damage to the journal)",
                 path, what, space, msg);
    else if (sys == EROFS || ro || prim == SQLITE_READONLY)
        snprintf(err, errlen,
                 "%s: read-only file system while %s (%s): %s; make it "
                 "writable (this is not damage to the journal)",
                 path, what, space, msg);
    else if (sys == EACCES || sys == EPERM || prim == SQLITE_PERM ||
             prim == SQLITE_AUTH)
        snprintf(err, errlen,
                 "%s: permission denied while %s: %s; the broker's user must "
                 "be able to write the file and its directory",
                 path, what, msg);
    else if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
        snprintf(err, errlen,
                 "%s: %s: %s (the journal is damaged or not a sectorcast "
                 "journal; restore it from backup or move it aside to start "
                 "a new epoch)",
                 path, what, msg);
    else if (prim == SQLITE_IOERR)
        snprintf(err, errlen, "%s: I/O error while %s: %s (%s; %s)", path,
                 what, msg, sys ? strerror(sys) : "no errno", space);
    else
        snprintf(err, errlen, "%s: %s: %s", path, what, msg);
}

static void db_error(sqlite3 *db, const char *path, const char *dir,
                     const char *what, char *err, size_t errlen)
{
    describe(path, dir, what, sqlite3_extended_errcode(db),
             sqlite3_system_errno(db), sqlite3_errmsg(db), err, errlen);
}

static int exec(sc_journal_t *j, const char *sql, const char *what, char *err,
                size_t errlen)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        db_error(j->db, j->path, j->dir, what, err, errlen);
        return -1;
    }
    return 0;
}

static int mkdirs(const char *dir, char *err, size_t errlen)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        snprintf(err, errlen, "data_dir path too long");
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", buf,
                     strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* caches: heads and kids                                              */

static void heads_free(sc_journal_t *j)
{
    for (size_t i = 0; i < j->n_heads; i++) {
        free(j->heads[i]->channel);
        free(j->heads[i]);
    }
    j->n_heads = 0;
    j->n_dirty = 0;
    for (size_t i = 0; i < j->n_kids; i++)
        free(j->kids[i].kid);
    free(j->kids);
    j->kids = NULL;
    j->n_kids = 0;
}

/* index of channel in the sorted array, or where it would go (*found 0) */
static size_t head_pos(const sc_journal_t *j, const char *channel, int *found)
{
    size_t lo = 0, hi = j->n_heads;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(j->heads[mid]->channel, channel);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static head_t *head_insert(sc_journal_t *j, size_t pos, const char *channel)
{
    if (j->n_heads == j->cap_heads) {
        size_t cap = j->cap_heads ? j->cap_heads * 2 : 64;
        head_t **v = realloc(j->heads, cap * sizeof *v);
        if (!v)
            return NULL;
        j->heads = v;
        j->cap_heads = cap;
    }
    head_t *h = calloc(1, sizeof *h);
    if (!h || !(h->channel = strdup(channel))) {
        free(h);
        return NULL;
    }
    memmove(j->heads + pos + 1, j->heads + pos,
            (j->n_heads - pos) * sizeof *j->heads);
    j->heads[pos] = h;
    j->n_heads++;
    return h;
}

static head_t *head_find(sc_journal_t *j, const char *channel, int create)
{
    int found;
    size_t pos = head_pos(j, channel, &found);
    if (found)
        return j->heads[pos];
    return create ? head_insert(j, pos, channel) : NULL;
}

static int caches_load(sc_journal_t *j, char *err, size_t errlen)
{
    heads_free(j);
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT id, name, head FROM channels ORDER BY name",
                           -1, &st, NULL) == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            head_t *h = name ? head_insert(j, j->n_heads, name) : NULL;
            if (!h) {
                sqlite3_finalize(st);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            h->id = sqlite3_column_int64(st, 0);
            h->head = (uint64_t)sqlite3_column_int64(st, 2);
            h->committed = h->head;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_error(j->db, j->path, j->dir, "reading channel heads", err,
                 errlen);
        return -1;
    }
    st = NULL;
    rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(j->db, "SELECT id, kid FROM kids", -1, &st,
                           NULL) == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *kid = (const char *)sqlite3_column_text(st, 1);
            kid_t *v = realloc(j->kids, (j->n_kids + 1) * sizeof *v);
            if (v)
                j->kids = v;
            if (!v || !kid || !(v[j->n_kids].kid = strdup(kid))) {
                sqlite3_finalize(st);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            v[j->n_kids].id = sqlite3_column_int64(st, 0);
            v[j->n_kids].delta = 0;
            j->n_kids++;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_error(j->db, j->path, j->dir, "reading signing key ids", err,
                 errlen);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the file: 0600, identity, checks                                    */

static void chmod_if(const char *path, const char *suffix)
{
    char p[4200];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat st;
    if (stat(p, &st) == 0 && (st.st_mode & 077) != 0)
        chmod(p, 0600);
}

/* Create the file 0600 if missing (SQLite gives the -wal and -shm files the
 * mode of the database file) and tighten an existing one. */
static int prepare_file(sc_journal_t *j, char *err, size_t errlen)
{
    bool ro;
    unsigned long long free_b;
    char space[96];
    fs_space(j->dir, space, sizeof space, &ro, &free_b);
    if (ro) {
        snprintf(err, errlen,
                 "%s: read-only file system (%s); the journal must be "
                 "writable: remount it read-write or set gateway.data_dir "
                 "(this is not damage to the journal)",
                 j->path, space);
        return -1;
    }
    int fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        describe(j->path, j->dir, "opening the journal", SQLITE_CANTOPEN, e,
                 strerror(e), err, errlen);
        return -1;
    }
    close(fd);
    chmod_if(j->path, "");
    chmod_if(j->path, "-wal");
    chmod_if(j->path, "-shm");
    return 0;
}

static int identity_check(sc_journal_t *j)
{
    if (j->ghost[0])
        return -1;
    struct stat st;
    if (stat(j->path, &st) != 0)
        snprintf(j->ghost, sizeof j->ghost,
                 "%s: the journal file was removed while the broker runs "
                 "(%s); publishing stopped: nothing more is written into the "
                 "deleted file. Restore the file and restart the broker",
                 j->path, strerror(errno));
    else if (st.st_dev != j->dev || st.st_ino != j->ino)
        snprintf(j->ghost, sizeof j->ghost,
                 "%s: the journal file was replaced while the broker runs "
                 "(inode %llu, opened %llu); publishing stopped: restart the "
                 "broker to use the new file",
                 j->path, (unsigned long long)st.st_ino,
                 (unsigned long long)j->ino);
    if (j->ghost[0]) {
        sc_log(SC_L_ERROR, "journal", "%s", j->ghost);
        return -1;
    }
    return 0;
}

static int quick_check(sc_journal_t *j, const char *table, char *err,
                       size_t errlen)
{
    char sql[96];
    if (table)
        snprintf(sql, sizeof sql, "PRAGMA quick_check(%s)", table);
    else
        snprintf(sql, sizeof sql, "PRAGMA quick_check");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_error(j->db, j->path, j->dir, "integrity check", err, errlen);
        return -1;
    }
    int rc = sqlite3_step(st);
    const char *res = (const char *)sqlite3_column_text(st, 0);
    int ok = rc == SQLITE_ROW && res && strcmp(res, "ok") == 0;
    if (!ok) {
        if (rc == SQLITE_ROW && res)
            describe(j->path, j->dir, "integrity check", SQLITE_CORRUPT, 0,
                     res, err, errlen);
        else
            db_error(j->db, j->path, j->dir, "integrity check", err, errlen);
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* schema                                                               */

#define SCHEMA2_TABLES                                                       \
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);" \
    "CREATE TABLE IF NOT EXISTS kids(id INTEGER PRIMARY KEY,"               \
    " kid TEXT NOT NULL UNIQUE, n INTEGER NOT NULL DEFAULT 0);"             \
    "CREATE TABLE IF NOT EXISTS msg(id INTEGER PRIMARY KEY,"                \
    " ch INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"       \
    " key TEXT, ts TEXT NOT NULL, kid INTEGER, jws BLOB NOT NULL);"         \
    "CREATE TABLE IF NOT EXISTS latest(ch INTEGER NOT NULL,"                \
    " key TEXT NOT NULL, seq INTEGER NOT NULL, msg INTEGER NOT NULL,"       \
    " PRIMARY KEY(ch, key)) WITHOUT ROWID;"                                 \
    "CREATE TABLE IF NOT EXISTS plugin_state(plugin TEXT NOT NULL,"         \
    " key TEXT NOT NULL, value TEXT NOT NULL,"                              \
    " PRIMARY KEY(plugin, key)) WITHOUT ROWID;"

#define SCHEMA2_AFTER                                                        \
    "CREATE UNIQUE INDEX IF NOT EXISTS msg_seq ON msg(ch, seq);"            \
    "CREATE VIEW IF NOT EXISTS messages AS SELECT c.name AS channel,"       \
    " m.seq AS seq, m.kind AS kind, m.key AS key, m.ts AS ts,"              \
    " m.jws AS jws, k.kid AS kid FROM msg m JOIN channels c ON c.id=m.ch"   \
    " LEFT JOIN kids k ON k.id=m.kid;"

/* "table", "view" or "" for the object `name` */
static void object_type(sc_journal_t *j, const char *name, char *out,
                        size_t n)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(j->db,
                           "SELECT type FROM sqlite_schema WHERE name=?", -1,
                           &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static int64_t scalar(sc_journal_t *j, const char *sql, int64_t dflt)
{
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Schema 1 (messages WITHOUT ROWID keyed by channel name) to schema 2, in
 * one transaction: all or nothing. Proportional to the journal, once. */
static int migrate_from_1(sc_journal_t *j, char *err, size_t errlen)
{
    /* journals from before the kid column first get it (NULL = unknown) */
    if (scalar(j, "SELECT count(*) FROM pragma_table_info('messages')"
                  " WHERE name='kid'", 0) == 0 &&
        exec(j, "ALTER TABLE messages ADD COLUMN kid TEXT",
             "migrating the journal", err, errlen) != 0)
        return -1;
    int64_t n = scalar(j, "SELECT count(*) FROM messages", 0);
    sc_log(SC_L_INFO, "journal",
           "%s: converting the journal from layout 1 to layout %d (%lld "
           "message(s)); this happens once",
           j->path, SCHEMA_VERSION, (long long)n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (exec(j, "BEGIN IMMEDIATE", "migrating the journal", err, errlen) != 0)
        return -1;
    if (exec(j,
             SCHEMA2_TABLES
             "CREATE TABLE channels2(id INTEGER PRIMARY KEY,"
             " name TEXT NOT NULL UNIQUE, head INTEGER NOT NULL,"
             " low INTEGER NOT NULL DEFAULT 1);"
             "INSERT INTO channels2(name, head, low)"
             " SELECT name, head, low FROM channels ORDER BY name;"
             "INSERT INTO channels2(name, head, low)"
             " SELECT channel, MAX(seq), 1 FROM messages"
             " WHERE channel NOT IN (SELECT name FROM channels2)"
             " GROUP BY channel;"
             "INSERT INTO kids(kid, n) SELECT kid, count(*) FROM messages"
             " WHERE kid IS NOT NULL GROUP BY kid;"
             "INSERT INTO msg(ch, seq, kind, key, ts, kid, jws)"
             " SELECT c.id, m.seq, m.kind, m.key, m.ts, k.id, m.jws"
             " FROM messages m JOIN channels2 c ON c.name=m.channel"
             " LEFT JOIN kids k ON k.kid=m.kid ORDER BY m.channel, m.seq;"
             "DROP TABLE messages;"
             "DROP TABLE channels;"
             "ALTER TABLE channels2 RENAME TO channels;"
             "INSERT INTO latest(ch, key, seq, msg)"
             " SELECT ch, key, MAX(seq), id FROM msg WHERE key IS NOT NULL"
             " GROUP BY ch, key;" SCHEMA2_AFTER
             "INSERT OR REPLACE INTO meta(k, v) VALUES('schema', '2');"
             "COMMIT",
             "migrating the journal from layout 1", err, errlen) != 0) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sc_log(SC_L_INFO, "journal",
           "%s: converted to layout %d in %.1f s; the space the old layout "
           "used is reused by new messages (run VACUUM with the broker "
           "stopped to give it back to the file system)",
           j->path, SCHEMA_VERSION,
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

static int schema_setup(sc_journal_t *j, char *err, size_t errlen)
{
    char messages[16], channels[16];
    object_type(j, "messages", messages, sizeof messages);
    object_type(j, "channels", channels, sizeof channels);
    if (strcmp(messages, "view") == 0) {
        int64_t v = scalar(j, "SELECT CAST(v AS INTEGER) FROM meta WHERE"
                              " k='schema'", 0);
        if (v > SCHEMA_VERSION) {
            snprintf(err, errlen,
                     "%s: journal layout %lld was written by a newer "
                     "sectorcast (this one knows layout %d); not opened",
                     j->path, (long long)v, SCHEMA_VERSION);
            return -1;
        }
        return 0;
    }
    if (strcmp(messages, "table") == 0)
        return migrate_from_1(j, err, errlen);
    if (channels[0]) {
        snprintf(err, errlen,
                 "%s: has a channels table but no messages: not a sectorcast "
                 "journal (the journal is damaged or not a sectorcast "
                 "journal; restore it from backup or move it aside to start "
                 "a new epoch)",
                 j->path);
        return -1;
    }
    return exec(j,
                "BEGIN IMMEDIATE;" SCHEMA2_TABLES
                "CREATE TABLE channels(id INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL UNIQUE, head INTEGER NOT NULL,"
                " low INTEGER NOT NULL DEFAULT 1);" SCHEMA2_AFTER
                "INSERT OR REPLACE INTO meta(k, v) VALUES('schema', '2');"
                "COMMIT",
                "creating the journal", err, errlen);
}

/* ------------------------------------------------------------------ */
/* the read side (shared by readers and the core)                      */

static int rd_prepare(rd_t *r, char *err, size_t errlen)
{
    static const char *const sql[] = {
        "SELECT m.seq, m.jws FROM msg m WHERE m.ch=(SELECT id FROM channels"
        " WHERE name=?1) AND m.seq>=?2 ORDER BY m.seq LIMIT ?3",
        "SELECT head, low FROM channels WHERE name=?1",
        "SELECT name, head FROM channels WHERE head>0 ORDER BY name",
        "SELECT name, head FROM channels WHERE (name=?1 OR (name>=?2 AND"
        " name<?3)) AND head>0 ORDER BY name",
        "SELECT c.name, l.seq, m.jws FROM channels c JOIN latest l ON"
        " l.ch=c.id JOIN msg m ON m.id=l.msg ORDER BY c.name, l.seq",
        "SELECT c.name, l.seq, m.jws FROM channels c JOIN latest l ON"
        " l.ch=c.id JOIN msg m ON m.id=l.msg WHERE (c.name=?1 OR"
        " (c.name>=?2 AND c.name<?3)) ORDER BY c.name, l.seq",
    };
    sqlite3_stmt **out[] = {&r->scan,      &r->chan,     &r->heads_all,
                            &r->heads_sub, &r->snap_all, &r->snap_sub};
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
        if (sqlite3_prepare_v3(r->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               out[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: preparing a journal query: %s",
                     r->path, sqlite3_errmsg(r->db));
            return -1;
        }
    return 0;
}

static void rd_finalize(rd_t *r)
{
    sqlite3_stmt **all[] = {&r->scan,      &r->chan,     &r->heads_all,
                            &r->heads_sub, &r->snap_all, &r->snap_sub};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

/* record and log a read error (what: which operation) */
static int rd_fail(rd_t *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s: %s: %s (sqlite error %d)", r->path,
             what, sqlite3_errmsg(r->db), sqlite3_extended_errcode(r->db));
    sc_log(SC_L_ERROR, "journal", "read failed: %s", r->err);
    return -1;
}

/* bind the subtree range of `subtree` ("a.b.") to st: ?1 = "a.b" (the
 * channel itself), ?2 = "a.b.", ?3 = "a.b/" ('/' follows '.') */
static void bind_subtree(sqlite3_stmt *st, const char *subtree)
{
    size_t sl = strlen(subtree);
    sqlite3_bind_text(st, 1, subtree, (int)sl - 1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, subtree, (int)sl, SQLITE_TRANSIENT);
    char *hi = sqlite3_mprintf("%.*s/", (int)sl - 1, subtree);
    sqlite3_bind_text(st, 3, hi ? hi : "", -1, SQLITE_TRANSIENT);
    sqlite3_free(hi);
}

/* true if topic "<channel>." lies under subtree ("" = everything) */
static bool under(const char *channel, const char *subtree)
{
    size_t sl = strlen(subtree), cl = strlen(channel);
    if (sl == 0)
        return true;
    if (sl > cl + 1 || memcmp(subtree, channel, sl - 1) != 0)
        return false;
    return sl - 1 == cl || channel[sl - 1] == '.';
}

static sqlite3_stmt *rd_subtree_stmt(sqlite3_stmt *all, sqlite3_stmt *sub,
                                     const char *subtree)
{
    size_t sl = strlen(subtree);
    sqlite3_stmt *st = sl > 0 && subtree[sl - 1] == '.' ? sub : all;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (st == sub)
        bind_subtree(st, subtree);
    return st;
}

static long rd_scan(rd_t *r, const char *channel, uint64_t from, long limit,
                    sc_journal_row_fn cb, void *arg)
{
    sqlite3_stmt *s = r->scan;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(s, 3, limit > 0 ? limit : -1);
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        n++;
        if (cb(arg, channel, (uint64_t)sqlite3_column_int64(s, 0),
               sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1)))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        char what[300];
        snprintf(what, sizeof what, "scan %s from seq %llu", channel,
                 (unsigned long long)from);
        n = rd_fail(r, what);
    }
    sqlite3_reset(s);
    return n;
}

static int rd_channel(rd_t *r, const char *channel, uint64_t *head,
                      uint64_t *low)
{
    sqlite3_stmt *s = r->chan;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_TRANSIENT);
    *head = 0;
    *low = 1;
    int rc = sqlite3_step(s), found = 0;
    if (rc == SQLITE_ROW) {
        found = 1;
        *head = (uint64_t)sqlite3_column_int64(s, 0);
        *low = (uint64_t)sqlite3_column_int64(s, 1);
        if (*low == 0)
            *low = 1;
    } else if (rc != SQLITE_DONE) {
        char what[300];
        snprintf(what, sizeof what, "channel %s", channel);
        found = rd_fail(r, what);
    }
    sqlite3_reset(s);
    return found;
}

static long rd_heads(rd_t *r, const char *subtree, sc_journal_head_fn cb,
                     void *arg)
{
    sqlite3_stmt *st = rd_subtree_stmt(r->heads_all, r->heads_sub, subtree);
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ch = (const char *)sqlite3_column_text(st, 0);
        if (!ch || !under(ch, subtree))
            continue;
        n++;
        if (cb(arg, ch, (uint64_t)sqlite3_column_int64(st, 1)))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = rd_fail(r, "heads");
    sqlite3_reset(st);
    return n;
}

static long rd_snapshot(rd_t *r, const char *subtree, sc_journal_row_fn cb,
                        void *arg)
{
    sqlite3_stmt *st = rd_subtree_stmt(r->snap_all, r->snap_sub, subtree);
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ch = (const char *)sqlite3_column_text(st, 0);
        if (!ch || !under(ch, subtree))
            continue;
        n++;
        if (cb(arg, ch, (uint64_t)sqlite3_column_int64(st, 1),
               sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2)))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        char what[300];
        snprintf(what, sizeof what, "snapshot of '%.200s'", subtree);
        n = rd_fail(r, what);
    }
    sqlite3_reset(st);
    return n;
}

/* ------------------------------------------------------------------ */
/* checkpointer                                                         */

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    sc_journal_t *j = arg;
    /* the checkpointer could not make the WAL restart (the writer never
     * left it a gap): copy the tail here, between two groups, so that the
     * next group restarts the WAL. Bounds the WAL at twice
     * WAL_RESTART_BYTES. */
    if (pages >= 2 * j->restart_pages) {
        int log = 0, done = 0;
        if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
                                      &log, &done) == SQLITE_OK &&
            log == done)
            pages = 0;
    }
    pthread_mutex_lock(&j->mu);
    j->wal_pages = pages;
    /* woken once, when it waits for work: a wake-up per commit while it
     * checkpoints or rests cost the core thread a futex call per group */
    if (pages >= j->ckpt_pages && j->ckpt_idle) {
        j->ckpt_idle = false;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return SQLITE_OK;
}

/* Less free space on dir's file system than a WAL of `frames` frames of
 * `page` bytes plus `margins` x WAL_LOW_SPACE_BYTES (an unknown answer
 * counts as enough). */
static bool space_low(const char *dir, int frames, int page, int margins)
{
    struct statvfs vf;
    if (statvfs(dir, &vf) != 0)
        return false;
    long long free_b = (long long)vf.f_bavail * (long long)vf.f_frsize;
    return free_b < (long long)frames * (page + SC_WAL_FRAME_HEADER) +
                        margins * WAL_LOW_SPACE_BYTES;
}

/* A connection's wait for a lock the other holds (the writer's for a
 * WAL restart, up to 5 s; the checkpointer's RESTART for the group being
 * committed, up to CKPT_BUSY_MS): sleeps of BUSY_POLL_US, `*arg` of them
 * at most. SQLite's own busy timeout backs off to sleeps of up to 100
 * ms, which made a restart of ~20 ms a stall of 50-80 ms at 10,000
 * msg/s. */
static int busy_poll(void *arg, int count)
{
    if (count >= *(const int *)arg)
        return 0;
    struct timespec d = {0, BUSY_POLL_US * 1000L};
    nanosleep(&d, NULL);
    return 1;
}
static const int WRITER_BUSY_POLLS = 5 * 1000 * 1000 / BUSY_POLL_US;
static const int CKPT_BUSY_POLLS = CKPT_BUSY_MS * 1000 / BUSY_POLL_US;

static void *checkpointer(void *arg)
{
    sc_journal_t *j = arg;
    sc_thread_name("checkpoint", NULL);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(j->path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, "journal",
               "%s: checkpointer cannot open the journal: %s; the WAL is "
               "checkpointed at close only",
               j->path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_handler(db, busy_poll, (void *)&CKPT_BUSY_POLLS);
    /* a connection knows the file is in WAL mode once it has read it */
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
        SQLITE_OK) {
        char err[600];
        db_error(db, j->path, j->dir, "starting the checkpointer", err,
                 sizeof err);
        sc_log(SC_L_ERROR, "journal", "%s", err);
    }
    /* SQLite syncs the database file only at a checkpoint that reaches the
     * end of the WAL, which under steady writes is the restart, while it
     * holds the writer off: the database pages of a whole 256 MiB WAL
     * were flushed then (58-90 ms). This thread flushes them after each
     * checkpoint instead, through a descriptor of its own (a sync of the
     * file, whatever descriptor asks for it), so that the restart finds
     * little to flush. */
    int db_fd = open(j->path, O_RDONLY | O_CLOEXEC);
    int last_rc = SQLITE_OK;
    bool ghost_seen = false, low_space = false;
    pthread_mutex_lock(&j->mu);
    while (!j->ckpt_stop) {
        if (j->wal_pages < j->ckpt_pages) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += CKPT_EVERY_MS / 1000;
            j->ckpt_idle = true;
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
            j->ckpt_idle = false;
        }
        if (j->ckpt_stop)
            break;
        /* an idle broker also learns at once that its file is gone (the
         * core refuses the next group itself: identity_check) */
        if (!ghost_seen) {
            struct stat st;
            if (stat(j->path, &st) != 0 || st.st_dev != j->dev ||
                st.st_ino != j->ino) {
                ghost_seen = true;
                sc_log(SC_L_ERROR, "journal",
                       "%s: the journal file was removed or replaced while "
                       "the broker runs; publishing stops at the next "
                       "message (nothing is written into the old file): put "
                       "the right file back and restart the broker",
                       j->path);
            }
        }
        if (j->wal_pages == 0 || ghost_seen)
            continue;
        j->wal_pages = 0;
        pthread_mutex_unlock(&j->mu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                           &log, &done);
        if (rc == SQLITE_OK && done > 0 && db_fd >= 0)
            fdatasync(db_fd);
        /* Under continuous writes a PASSIVE checkpoint never catches up
         * with the end of the WAL, and the WAL restarts only once all of
         * it is copied: past restart_pages, copy the few frames
         * written meanwhile with RESTART (it holds the writer off for that
         * tail only, waiting at most CKPT_BUSY_MS for a group to commit). */
        /* low space: entered below WAL + WAL_LOW_SPACE_BYTES free, left
         * above twice that margin (no flapping log lines) */
        if (rc == SQLITE_OK && log > 0 && log < j->restart_pages &&
            space_low(j->dir, log, j->page_size, low_space ? 2 : 1) !=
                low_space) {
            low_space = !low_space;
            sc_log(low_space ? SC_L_WARN : SC_L_INFO, "journal",
                   low_space
                       ? "%s: little free space on its file system: the WAL "
                         "now restarts at every checkpoint (a few ms of "
                         "publishing delay each time) so that it cannot fill "
                         "the disk"
                       : "%s: free space is back: the WAL restarts every "
                         "256 MiB again",
                   j->path);
        }
        /* (with little space the file is also cut to nothing, by this
         * thread: it holds a few MiB, not hundreds) */
        if (rc == SQLITE_OK && log > 0 &&
            (log >= j->restart_pages || low_space))
            rc = sqlite3_wal_checkpoint_v2(db, NULL,
                                           low_space
                                               ? SQLITE_CHECKPOINT_TRUNCATE
                                               : SQLITE_CHECKPOINT_RESTART,
                                           &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != last_rc) {
            char err[600];
            db_error(db, j->path, j->dir, "checkpointing the WAL", err,
                     sizeof err);
            sc_log(SC_L_ERROR, "journal", "%s", err);
        }
        last_rc = rc;
        pthread_mutex_lock(&j->mu);
        /* frames left behind (a reader holds them): try again later */
        if (rc == SQLITE_OK && log > done && j->wal_pages == 0)
            j->wal_pages = 1;
        /* at most one checkpoint per CKPT_GAP_MS (a reader holding the
         * WAL must not make this thread spin) */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CKPT_GAP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!j->ckpt_stop &&
               pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&j->mu);
    if (db_fd >= 0)
        close(db_fd);
    sqlite3_close(db);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

sc_journal_t *sc_journal_open(const char *dir, sc_durability_t durability,
                              char *err, size_t errlen)
{
    if (mkdirs(dir, err, errlen) != 0)
        return NULL;
    sc_journal_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    size_t n = strlen(dir) + sizeof "/journal.db";
    j->path = malloc(n);
    j->dir = strdup(dir);
    if (!j->path || !j->dir) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(j->path, n, "%s/journal.db", dir);
    j->rd.path = j->path;
    if (prepare_file(j, err, errlen) != 0)
        goto fail;

    /* the writer appends to the WAL through walbuf: a commit's frames in
     * one write instead of two per frame */
    const char *vfs = sc_walbuf_register() == SQLITE_OK ? SC_WALBUF_VFS : NULL;
    int rc = sqlite3_open_v2(j->path, &j->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        if (j->db)
            db_error(j->db, j->path, j->dir, "opening the journal", err,
                     errlen);
        else
            snprintf(err, errlen, "%s: cannot open journal: %s", j->path,
                     sqlite3_errstr(rc));
        goto fail;
    }
    j->rd.db = j->db;
    sqlite3_extended_result_codes(j->db, 1);
    sqlite3_busy_handler(j->db, busy_poll, (void *)&WRITER_BUSY_POLLS);
    /* A new journal gets JOURNAL_PAGE_SIZE_TEXT pages (an existing file keeps
     * its own: SQLite ignores the pragma once the file has content). A
     * foreign file shows up here, a torn one here or at the checks. */
    if (exec(j, "PRAGMA page_size=" JOURNAL_PAGE_SIZE_TEXT, "opening the journal",
             err, errlen) != 0 ||
        exec(j, "PRAGMA journal_mode=WAL", "opening the journal", err,
             errlen) != 0)
        goto fail;
    {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "PRAGMA synchronous=%s; PRAGMA journal_size_limit=%lld;",
                 durability == SC_DURABILITY_FULL ? "FULL" : "NORMAL",
                 (long long)WAL_SIZE_LIMIT);
        if (exec(j, sql, "opening the journal", err, errlen) != 0)
            goto fail;
    }
    {
        /* Bounded work whatever the journal's size: a whole-file check
         * while that is cheap (a few tens of ms); beyond, a check of the
         * schema and of the small tables read at open and on the core's
         * paths (heads, key ids, latest keys, plugin state). A page damaged
         * elsewhere is reported, with SQLite's message, when it is read. */
        struct stat st;
        if (stat(j->path, &st) == 0 && st.st_size <= FULL_CHECK_MAX_BYTES &&
            quick_check(j, NULL, err, errlen) != 0)
            goto fail;
        if (exec(j, "SELECT count(*) FROM sqlite_schema", "reading the schema",
                 err, errlen) != 0)
            goto fail;
    }
    if (schema_setup(j, err, errlen) != 0)
        goto fail;
    {
        /* the file's page size (JOURNAL_PAGE_SIZE_TEXT for a new file) */
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(j->db, "PRAGMA page_size", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            j->page_size = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (j->page_size < 512)
            j->page_size = 4096;
        j->ckpt_pages = (int)(CKPT_BYTES / j->page_size);
        j->restart_pages = (int)(WAL_RESTART_BYTES / j->page_size);
    }
    {
        struct stat st;
        static const char *const small[] = {"meta", "channels", "kids",
                                            "latest", "plugin_state"};
        if (stat(j->path, &st) != 0 || st.st_size > FULL_CHECK_MAX_BYTES)
            for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
                if (quick_check(j, small[i], err, errlen) != 0)
                    goto fail;
    }
    /* epoch: created once with the journal, never changed */
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(j->db, "SELECT v FROM meta WHERE k='epoch'",
                               -1, &st, NULL) != SQLITE_OK) {
            db_error(j->db, j->path, j->dir, "reading the epoch", err,
                     errlen);
            goto fail;
        }
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
            strlen((const char *)sqlite3_column_text(st, 0)) == 32)
            memcpy(j->epoch, sqlite3_column_text(st, 0), 33);
        sqlite3_finalize(st);
        if (!j->epoch[0]) {
            char sql[160];
            sc_random_hex(j->epoch);
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO meta(k,v) VALUES('epoch','%s')",
                     j->epoch);
            if (exec(j, sql, "writing the epoch", err, errlen) != 0)
                goto fail;
        }
    }
    static const char *const wsql[] = {
        "INSERT INTO msg(ch,seq,kind,key,ts,kid,jws) VALUES(?,?,?,?,?,?,?)",
        "INSERT INTO channels(name,head,low) VALUES(?,0,1)",
        "UPDATE channels SET head=?2 WHERE id=?1 AND head<?2",
        "INSERT INTO latest(ch,key,seq,msg) VALUES(?1,?2,?3,?4)"
        " ON CONFLICT(ch,key) DO UPDATE SET seq=excluded.seq,msg=excluded.msg"
        " WHERE excluded.seq>seq",
        "INSERT INTO kids(kid,n) VALUES(?,0)",
        "UPDATE kids SET n=n+?2 WHERE id=?1",
        "BEGIN IMMEDIATE",
        "COMMIT",
    };
    sqlite3_stmt **wout[] = {&j->ins_msg,    &j->ins_chan, &j->upd_head,
                             &j->ins_latest, &j->ins_kid,  &j->upd_kid,
                             &j->begin,      &j->commit};
    for (size_t i = 0; i < sizeof wsql / sizeof wsql[0]; i++)
        if (sqlite3_prepare_v3(j->db, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               wout[i], NULL) != SQLITE_OK) {
            db_error(j->db, j->path, j->dir, "preparing journal writes", err,
                     errlen);
            goto fail;
        }
    if (rd_prepare(&j->rd, err, errlen) != 0)
        goto fail;
    if (caches_load(j, err, errlen) != 0)
        goto fail;
    {
        struct stat st;
        if (stat(j->path, &st) != 0) {
            snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
            goto fail;
        }
        j->dev = st.st_dev;
        j->ino = st.st_ino;
    }
    {
        int cur, hi;
        sqlite3_db_status(j->db, SQLITE_DBSTATUS_CACHE_HIT, &cur, &hi, 0);
        j->pages_at_open = (uint64_t)cur;
        sqlite3_db_status(j->db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 0);
        j->pages_at_open += (uint64_t)cur;
    }
    /* the WAL is checkpointed by the checkpointer thread, not in COMMIT */
    sqlite3_wal_hook(j->db, wal_hook, j);
    if (pthread_create(&j->ckpt_thread, NULL, checkpointer, j) == 0)
        j->ckpt_started = true;
    else
        sqlite3_wal_autocheckpoint(j->db, 1000);
    return j;

fail:
    sc_journal_close(&j);
    return NULL;
}

void sc_journal_close(sc_journal_t **j_p)
{
    if (!j_p || !*j_p)
        return;
    sc_journal_t *j = *j_p;
    if (j->ckpt_started) {
        pthread_mutex_lock(&j->mu);
        j->ckpt_stop = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->ckpt_thread, NULL);
    }
    sqlite3_stmt **all[] = {&j->ins_msg,    &j->ins_chan, &j->upd_head,
                            &j->ins_latest, &j->ins_kid,  &j->upd_kid,
                            &j->begin,      &j->commit};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(*all[i]);
    rd_finalize(&j->rd);
    if (j->db) {
        if (!j->ghost[0])
            sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                      NULL, NULL);
        if (sqlite3_close(j->db) != SQLITE_OK)
            sc_log(SC_L_ERROR, "journal", "%s: close: %s", j->path,
                   sqlite3_errmsg(j->db));
    }
    heads_free(j);
    free(j->heads);
    free(j->dirty);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->path);
    free(j->dir);
    free(j);
    *j_p = NULL;
}

const char *sc_journal_epoch(const sc_journal_t *j) { return j->epoch; }
const char *sc_journal_path(const sc_journal_t *j) { return j->path; }

uint64_t sc_journal_pages_read(const sc_journal_t *j)
{
    return j->pages_at_open;
}

/* ------------------------------------------------------------------ */
/* writes                                                               */

uint64_t sc_journal_head(sc_journal_t *j, const char *channel)
{
    head_t *h = head_find(j, channel, 0);
    return h ? h->committed : 0;
}

void sc_journal_process_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int sc_journal_begin(sc_journal_t *j, char *err, size_t errlen)
{
    if (j->in_txn)
        return 0;
    /* (a file removed or replaced is noticed at the commit, before
     * anything is committed or sent: one stat per group, not two) */
    if (j->ghost[0]) {
        snprintf(err, errlen, "%s", j->ghost);
        return -1;
    }
    if (sqlite3_step(j->begin) != SQLITE_DONE) {
        db_error(j->db, j->path, j->dir, "starting a write", err, errlen);
        sqlite3_reset(j->begin);
        return -1;
    }
    sqlite3_reset(j->begin);
    j->in_txn = 1;
    j->n_dirty = 0;
    return 0;
}

uint64_t sc_journal_next_seq(sc_journal_t *j, const char *channel)
{
    head_t *h = head_find(j, channel, 1);
    if (!h)
        return 0;
    return ++h->head;
}

int sc_journal_state_put(sc_journal_t *j, const char *plugin, const char *key,
                         const char *value, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *sql = value ? "INSERT OR REPLACE INTO plugin_state(plugin,key,"
                              "value) VALUES(?,?,?)"
                            : "DELETE FROM plugin_state WHERE plugin=? AND "
                              "key=?";
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_error(j->db, j->path, j->dir, "plugin state", err, errlen);
        return -1;
    }
    sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        char what[200];
        snprintf(what, sizeof what, "writing plugin state of '%.100s'",
                 plugin);
        db_error(j->db, j->path, j->dir, what, err, errlen);
        return -1;
    }
    return 0;
}

void sc_journal_release_seq(sc_journal_t *j, const char *channel,
                            uint64_t seq)
{
    head_t *h = head_find(j, channel, 0);
    if (h && h->head == seq)
        h->head--;
}

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static kid_t *kid_get(sc_journal_t *j, const char *kid)
{
    for (size_t i = 0; i < j->n_kids; i++)
        if (strcmp(j->kids[i].kid, kid) == 0)
            return &j->kids[i];
    kid_t *v = realloc(j->kids, (j->n_kids + 1) * sizeof *v);
    if (!v)
        return NULL;
    j->kids = v;
    kid_t *k = &v[j->n_kids];
    if (!(k->kid = strdup(kid)))
        return NULL;
    sqlite3_bind_text(j->ins_kid, 1, kid, -1, SQLITE_STATIC);
    if (step_done(j->ins_kid) != 0) {
        free(k->kid);
        return NULL;
    }
    k->id = sqlite3_last_insert_rowid(j->db);
    k->delta = 0;
    j->n_kids++;
    return k;
}

int sc_journal_append(sc_journal_t *j, const char *channel, uint64_t seq,
                      const char *kind, const char *key, const char *ts,
                      const char *kid, const char *jws, size_t jws_len,
                      char *err, size_t errlen)
{
    head_t *h = head_find(j, channel, 1);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (h->id == 0) {
        sqlite3_bind_text(j->ins_chan, 1, channel, -1, SQLITE_STATIC);
        if (step_done(j->ins_chan) != 0)
            goto fail;
        h->id = sqlite3_last_insert_rowid(j->db);
    }
    kid_t *k = NULL;
    if (kid && !(k = kid_get(j, kid)))
        goto fail;
    sqlite3_stmt *s = j->ins_msg;
    sqlite3_bind_int64(s, 1, h->id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, ts, -1, SQLITE_STATIC);
    if (k)
        sqlite3_bind_int64(s, 6, k->id);
    sqlite3_bind_blob(s, 7, jws, (int)jws_len, SQLITE_STATIC);
    if (step_done(s) != 0)
        goto fail;
    if (key) {
        s = j->ins_latest;
        sqlite3_bind_int64(s, 1, h->id);
        sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
        sqlite3_bind_int64(s, 4, sqlite3_last_insert_rowid(j->db));
        if (step_done(s) != 0)
            goto fail;
    }
    if (k)
        k->delta++;
    if (h->pending == 0) {
        if (j->n_dirty == j->cap_dirty) {
            size_t cap = j->cap_dirty ? j->cap_dirty * 2 : 64;
            head_t **v = realloc(j->dirty, cap * sizeof *v);
            if (!v) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            j->dirty = v;
            j->cap_dirty = cap;
        }
        j->dirty[j->n_dirty++] = h;
    }
    if (seq > h->pending)
        h->pending = seq;
    return 0;
fail:;
    char what[300];
    snprintf(what, sizeof what, "appending %s seq %llu", channel,
             (unsigned long long)seq);
    db_error(j->db, j->path, j->dir, what, err, errlen);
    return -1;
}

int sc_journal_commit(sc_journal_t *j, char *err, size_t errlen)
{
    if (!j->in_txn)
        return 0;
    /* never commit into a file that is no longer the journal's path */
    if (identity_check(j) != 0) {
        snprintf(err, errlen, "%s", j->ghost);
        sc_journal_rollback(j);
        return -1;
    }
    for (size_t i = 0; i < j->n_dirty; i++) {
        head_t *h = j->dirty[i];
        sqlite3_bind_int64(j->upd_head, 1, h->id);
        sqlite3_bind_int64(j->upd_head, 2, (sqlite3_int64)h->pending);
        if (step_done(j->upd_head) != 0)
            goto fail;
    }
    for (size_t i = 0; i < j->n_kids; i++) {
        if (j->kids[i].delta == 0)
            continue;
        sqlite3_bind_int64(j->upd_kid, 1, j->kids[i].id);
        sqlite3_bind_int64(j->upd_kid, 2, j->kids[i].delta);
        if (step_done(j->upd_kid) != 0)
            goto fail;
    }
    if (sqlite3_step(j->commit) != SQLITE_DONE)
        goto fail;
    sqlite3_reset(j->commit);
    j->in_txn = 0;
    for (size_t i = 0; i < j->n_dirty; i++) {
        head_t *h = j->dirty[i];
        if (h->pending > h->committed)
            h->committed = h->pending;
        h->pending = 0;
    }
    j->n_dirty = 0;
    for (size_t i = 0; i < j->n_kids; i++)
        j->kids[i].delta = 0;
    return 0;
fail:
    db_error(j->db, j->path, j->dir, "committing", err, errlen);
    sqlite3_reset(j->commit);
    sc_journal_rollback(j);
    return -1;
}

void sc_journal_rollback(sc_journal_t *j)
{
    char err[600];
    if (j->in_txn && !sqlite3_get_autocommit(j->db))
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    j->in_txn = 0;
    /* heads advanced by next_seq() in the failed group are given back,
     * channel and kid rows created in it forgotten */
    if (caches_load(j, err, sizeof err) != 0)
        sc_log(SC_L_ERROR, "journal", "after a rollback: %s", err);
}

/* ------------------------------------------------------------------ */
/* reads on the core thread                                             */

long sc_journal_scan(sc_journal_t *j, const char *channel, uint64_t from,
                     long limit, sc_journal_row_fn cb, void *arg)
{
    return rd_scan(&j->rd, channel, from, limit, cb, arg);
}

uint64_t sc_journal_low(sc_journal_t *j, const char *channel)
{
    uint64_t head, low;
    rd_channel(&j->rd, channel, &head, &low);
    return low;
}

void sc_journal_heads(sc_journal_t *j, const char *subtree,
                      sc_journal_head_fn cb, void *arg)
{
    for (size_t i = 0; i < j->n_heads; i++) {
        head_t *h = j->heads[i];
        if (h->committed > 0 && under(h->channel, subtree))
            if (cb(arg, h->channel, h->committed))
                return;
    }
}

long sc_journal_snapshot(sc_journal_t *j, const char *subtree,
                         sc_journal_row_fn cb, void *arg)
{
    return rd_snapshot(&j->rd, subtree, cb, arg);
}

/* ts of the first message of channel id `ch` with seq >= from; 0 if none,
 * -1 on error */
static int first_ts(sc_journal_t *j, sqlite3_stmt *st, int64_t ch,
                    uint64_t from, char *ts, size_t n)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, ch);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
    int rc = sqlite3_step(st), got = 0;
    if (rc == SQLITE_ROW) {
        snprintf(ts, n, "%s",
                 sqlite3_column_text(st, 0)
                     ? (const char *)sqlite3_column_text(st, 0)
                     : "");
        got = 1;
    } else if (rc != SQLITE_DONE) {
        got = rd_fail(&j->rd, "retention: reading timestamps");
    }
    sqlite3_reset(st);
    return got;
}

long sc_journal_prune(sc_journal_t *j, const char *channel, int64_t max_age_s,
                      int64_t max_messages, char *err, size_t errlen)
{
    head_t *h = head_find(j, channel, 0);
    if (!h || h->id == 0 || h->committed == 0 ||
        (max_age_s <= 0 && max_messages <= 0))
        return 0;
    uint64_t head = h->committed, low = sc_journal_low(j, channel);
    /* everything below `cut` goes, but the latest of each key stays */
    uint64_t cut = 0;
    if (max_messages > 0 && head > (uint64_t)max_messages)
        cut = head - (uint64_t)max_messages + 1;
    if (max_age_s > 0) {
        char limit[32], ts[64];
        time_t t = time(NULL) - (time_t)max_age_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(limit, sizeof limit, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(j->db,
                               "SELECT ts FROM msg WHERE ch=?1 AND seq>=?2"
                               " ORDER BY seq LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK) {
            db_error(j->db, j->path, j->dir, "retention", err, errlen);
            return -1;
        }
        /* timestamps are assigned in seq order: binary search for the
         * first young message instead of reading the channel */
        uint64_t lo = low, hi = head + 1;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            int got = first_ts(j, st, h->id, mid, ts, sizeof ts);
            if (got < 0) {
                sqlite3_finalize(st);
                snprintf(err, errlen, "%s", j->rd.err);
                return -1;
            }
            if (got == 0 || strcmp(ts, limit) >= 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        sqlite3_finalize(st);
        if (lo > cut)
            cut = lo;
    }
    if (cut <= low)
        return 0;
    if (sc_journal_begin(j, err, errlen) != 0)
        return -1;
    sqlite3_stmt *young = NULL, *del = NULL, *upd = NULL;
    long removed = -1;
    /* should the clock have stepped back, a young message below the cut
     * lowers it: retention never removes a message younger than its age */
    if (max_age_s > 0 &&
        sqlite3_prepare_v2(j->db,
                           "SELECT MIN(seq) FROM msg WHERE ch=?1 AND seq>=?2"
                           " AND seq<?3 AND ts>=?4",
                           -1, &young, NULL) == SQLITE_OK) {
        char limit[32];
        time_t t = time(NULL) - (time_t)max_age_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(limit, sizeof limit, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        sqlite3_bind_int64(young, 1, h->id);
        sqlite3_bind_int64(young, 2, (sqlite3_int64)low);
        sqlite3_bind_int64(young, 3, (sqlite3_int64)cut);
        sqlite3_bind_text(young, 4, limit, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(young) == SQLITE_ROW &&
            sqlite3_column_type(young, 0) != SQLITE_NULL &&
            (max_messages <= 0 ||
             (uint64_t)sqlite3_column_int64(young, 0) >=
                 head - (uint64_t)max_messages + 1))
            cut = (uint64_t)sqlite3_column_int64(young, 0);
        sqlite3_finalize(young);
    }
    if (cut <= low) {
        sc_journal_commit(j, err, errlen);
        return 0;
    }
    if (sqlite3_prepare_v2(
            j->db,
            "DELETE FROM msg WHERE ch=?1 AND seq<?2 AND id NOT IN"
            " (SELECT msg FROM latest WHERE ch=?1) RETURNING kid",
            -1, &del, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(j->db, "UPDATE channels SET low=?2 WHERE id=?1",
                           -1, &upd, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, h->id);
        sqlite3_bind_int64(del, 2, (sqlite3_int64)cut);
        int rc;
        removed = 0;
        while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
            removed++;
            if (sqlite3_column_type(del, 0) == SQLITE_NULL)
                continue;
            int64_t kid = sqlite3_column_int64(del, 0);
            for (size_t i = 0; i < j->n_kids; i++)
                if (j->kids[i].id == kid)
                    j->kids[i].delta--;
        }
        if (rc != SQLITE_DONE)
            removed = -1;
        sqlite3_bind_int64(upd, 1, h->id);
        sqlite3_bind_int64(upd, 2, (sqlite3_int64)cut);
        if (removed >= 0 && sqlite3_step(upd) != SQLITE_DONE)
            removed = -1;
    }
    if (removed < 0) {
        char what[300];
        snprintf(what, sizeof what, "retention of %s", channel);
        db_error(j->db, j->path, j->dir, what, err, errlen);
    }
    sqlite3_finalize(del);
    sqlite3_finalize(upd);
    if (removed < 0) {
        sc_journal_rollback(j);
        return -1;
    }
    if (sc_journal_commit(j, err, errlen) != 0)
        return -1;
    return removed;
}

void sc_journal_kids(sc_journal_t *j, sc_journal_kid_fn cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, "SELECT kid, n FROM kids WHERE n>0", -1,
                           &st, NULL) != SQLITE_OK) {
        rd_fail(&j->rd, "signing key ids");
        return;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kid = (const char *)sqlite3_column_text(st, 0);
        if (kid && cb(arg, kid, (uint64_t)sqlite3_column_int64(st, 1)))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        rd_fail(&j->rd, "signing key ids");
    sqlite3_finalize(st);
}

/* ------------------------------------------------------------------ */
/* readers                                                              */

struct sc_journal_reader {
    rd_t rd;
    char *path;
    char epoch[33];
    int in_txn;
};

sc_journal_reader_t *sc_journal_reader_new(const sc_journal_t *j, char *err,
                                           size_t errlen)
{
    sc_journal_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(j->path))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->rd.path = r->path;
    memcpy(r->epoch, j->epoch, sizeof r->epoch);
    int rc = sqlite3_open_v2(r->path, &r->rd.db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open a reader: %s", r->path,
                 r->rd.db ? sqlite3_errmsg(r->rd.db) : sqlite3_errstr(rc));
        sc_journal_reader_destroy(&r);
        return NULL;
    }
    sqlite3_extended_result_codes(r->rd.db, 1);
    sqlite3_busy_timeout(r->rd.db, 5000);
    /* a reader's page cache: 16 MiB (SQLite's default is 2 MiB) */
    sqlite3_exec(r->rd.db, "PRAGMA cache_size=-16384", NULL, NULL, NULL);
    if (rd_prepare(&r->rd, err, errlen) != 0) {
        sc_journal_reader_destroy(&r);
        return NULL;
    }
    return r;
}

void sc_journal_reader_destroy(sc_journal_reader_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    sc_journal_reader_t *r = *r_p;
    rd_finalize(&r->rd);
    if (r->rd.db)
        sqlite3_close(r->rd.db);
    free(r->path);
    free(r);
    *r_p = NULL;
}

const char *sc_journal_reader_epoch(const sc_journal_reader_t *r)
{
    return r->epoch;
}

const char *sc_journal_reader_error(const sc_journal_reader_t *r)
{
    return r->rd.err;
}

int sc_journal_reader_begin(sc_journal_reader_t *r)
{
    if (r->in_txn)
        return 0;
    if (sqlite3_exec(r->rd.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return rd_fail(&r->rd, "begin");
    r->in_txn = 1;
    return 0;
}

void sc_journal_reader_end(sc_journal_reader_t *r)
{
    if (!r->in_txn)
        return;
    sqlite3_exec(r->rd.db, "COMMIT", NULL, NULL, NULL);
    r->in_txn = 0;
}

long sc_journal_reader_scan(sc_journal_reader_t *r, const char *channel,
                            uint64_t from, long limit, sc_journal_row_fn cb,
                            void *arg)
{
    return rd_scan(&r->rd, channel, from, limit, cb, arg);
}

int sc_journal_reader_channel(sc_journal_reader_t *r, const char *channel,
                              uint64_t *head, uint64_t *low)
{
    return rd_channel(&r->rd, channel, head, low);
}

long sc_journal_reader_heads(sc_journal_reader_t *r, const char *subtree,
                             sc_journal_head_fn cb, void *arg)
{
    return rd_heads(&r->rd, subtree, cb, arg);
}

long sc_journal_reader_snapshot(sc_journal_reader_t *r, const char *subtree,
                                sc_journal_row_fn cb, void *arg)
{
    return rd_snapshot(&r->rd, subtree, cb, arg);
}
