/*
 * journal.c - see journal.h.
 *
 * Schema (version 1):
 *   meta(k PRIMARY KEY, v)                      epoch, schema
 *   channels(name PRIMARY KEY, head, low)        last seq issued per channel;
 *                                                replay is complete from low
 *   messages(channel, seq, kind, key, ts, jws)   PRIMARY KEY (channel, seq)
 * Heads are kept in `channels` (not derived from max(seq)) so that pruning
 * old messages can never make a sequence number reusable.
 *
 * Heads are cached in memory; sc_journal_next_seq() advances the cache and
 * a rollback reloads it from the database.
 */
#include "journal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <stdbool.h>

#include "common/envelope.h"
#include "log.h"

typedef struct head {
    char *channel;
    uint64_t head;
    struct head *next;
} head_t;

struct sc_journal {
    sqlite3 *db;
    char *path;
    char epoch[33];
    sqlite3_stmt *ins_msg;
    sqlite3_stmt *upd_head;
    sqlite3_stmt *scan;
    head_t *heads;
    int in_txn;
};

#define SCHEMA_VERSION "1"

static int exec(sc_journal_t *j, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", j->path, msg ? msg : "error");
        sqlite3_free(msg);
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

static void heads_free(sc_journal_t *j)
{
    while (j->heads) {
        head_t *n = j->heads->next;
        free(j->heads->channel);
        free(j->heads);
        j->heads = n;
    }
}

static int heads_load(sc_journal_t *j, char *err, size_t errlen)
{
    heads_free(j);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, "SELECT name, head FROM channels", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        head_t *h = calloc(1, sizeof *h);
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!h || !name || !(h->channel = strdup(name))) {
            free(h);
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        h->head = (uint64_t)sqlite3_column_int64(st, 1);
        h->next = j->heads;
        j->heads = h;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
        return -1;
    }
    return 0;
}

static head_t *head_find(sc_journal_t *j, const char *channel, int create)
{
    for (head_t *h = j->heads; h; h = h->next)
        if (strcmp(h->channel, channel) == 0)
            return h;
    if (!create)
        return NULL;
    head_t *h = calloc(1, sizeof *h);
    if (!h || !(h->channel = strdup(channel))) {
        free(h);
        return NULL;
    }
    h->next = j->heads;
    j->heads = h;
    return h;
}

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
    size_t n = strlen(dir) + sizeof "/journal.db";
    j->path = malloc(n);
    if (!j->path) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(j->path, n, "%s/journal.db", dir);

    int rc = sqlite3_open_v2(j->path, &j->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open journal: %s", j->path,
                 j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(j->db, 5000);
    /* A torn or foreign file shows up here or at the integrity check. */
    if (exec(j, "PRAGMA journal_mode=WAL", err, errlen) != 0)
        goto fail_corrupt;
    if (exec(j, durability == SC_DURABILITY_FULL ? "PRAGMA synchronous=FULL"
                                                 : "PRAGMA synchronous=NORMAL",
             err, errlen) != 0)
        goto fail;
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(j->db, "PRAGMA quick_check", -1, &st, NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
            goto fail_corrupt;
        }
        int ok = sqlite3_step(st) == SQLITE_ROW &&
                 sqlite3_column_text(st, 0) &&
                 strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
        if (!ok)
            snprintf(err, errlen, "%s: integrity check failed: %s", j->path,
                     sqlite3_column_text(st, 0)
                         ? (const char *)sqlite3_column_text(st, 0)
                         : sqlite3_errmsg(j->db));
        sqlite3_finalize(st);
        if (!ok)
            goto fail_corrupt;
    }
    if (exec(j,
             "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
             "CREATE TABLE IF NOT EXISTS channels(name TEXT PRIMARY KEY,"
             " head INTEGER NOT NULL, low INTEGER NOT NULL DEFAULT 1);"
             "CREATE TABLE IF NOT EXISTS messages(channel TEXT NOT NULL,"
             " seq INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT,"
             " ts TEXT NOT NULL, jws BLOB NOT NULL, kid TEXT,"
             " PRIMARY KEY(channel, seq)) WITHOUT ROWID;"
             "CREATE INDEX IF NOT EXISTS messages_key ON messages(channel, key,"
             " seq);"
             "CREATE TABLE IF NOT EXISTS plugin_state(plugin TEXT NOT NULL,"
             " key TEXT NOT NULL, value TEXT NOT NULL,"
             " PRIMARY KEY(plugin, key)) WITHOUT ROWID;",
             err, errlen) != 0)
        goto fail_corrupt;

    {
        /* journals from before the kid column: add it (NULL = unknown) */
        sqlite3_stmt *st = NULL;
        bool has_kid = false;
        if (sqlite3_prepare_v2(j->db, "PRAGMA table_info(messages)", -1, &st,
                               NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW)
                if (sqlite3_column_text(st, 1) &&
                    strcmp((const char *)sqlite3_column_text(st, 1), "kid") ==
                        0)
                    has_kid = true;
        sqlite3_finalize(st);
        if (!has_kid &&
            exec(j, "ALTER TABLE messages ADD COLUMN kid TEXT", err, errlen))
            goto fail;
    }
    /* epoch: created once with the journal, never changed */
    {
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(j->db, "SELECT v FROM meta WHERE k='epoch'", -1,
                           &st, NULL);
        if (st && sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_text(st, 0) &&
            strlen((const char *)sqlite3_column_text(st, 0)) == 32) {
            memcpy(j->epoch, sqlite3_column_text(st, 0), 33);
        }
        sqlite3_finalize(st);
        if (!j->epoch[0]) {
            char sql[160];
            sc_random_hex(j->epoch);
            snprintf(sql, sizeof sql,
                     "INSERT INTO meta(k,v) VALUES('epoch','%s'),"
                     "('schema','" SCHEMA_VERSION "')",
                     j->epoch);
            if (exec(j, sql, err, errlen) != 0)
                goto fail;
        }
    }
    if (sqlite3_prepare_v2(j->db,
                           "INSERT INTO messages(channel,seq,kind,key,ts,jws,"
                           "kid) VALUES(?,?,?,?,?,?,?)",
                           -1, &j->ins_msg, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "INSERT INTO channels(name,head) VALUES(?,?)"
                           " ON CONFLICT(name) DO UPDATE SET head=excluded.head"
                           " WHERE excluded.head > head",
                           -1, &j->upd_head, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "SELECT seq, jws FROM messages WHERE channel=?"
                           " AND seq>=? ORDER BY seq LIMIT ?",
                           -1, &j->scan, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
        goto fail;
    }
    if (heads_load(j, err, errlen) != 0)
        goto fail;
    return j;

fail_corrupt:
    {
        /* prefix a hint: the operator must not just delete the journal */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen,
                 "%s (the journal is damaged or not a sectorcast journal; "
                 "restore it from backup or move it aside to start a new "
                 "epoch)",
                 tmp);
    }
fail:
    sc_journal_close(&j);
    return NULL;
}

void sc_journal_close(sc_journal_t **j_p)
{
    if (!j_p || !*j_p)
        return;
    sc_journal_t *j = *j_p;
    sqlite3_finalize(j->ins_msg);
    sqlite3_finalize(j->upd_head);
    sqlite3_finalize(j->scan);
    if (j->db)
        sqlite3_close(j->db);
    heads_free(j);
    free(j->path);
    free(j);
    *j_p = NULL;
}

const char *sc_journal_epoch(const sc_journal_t *j) { return j->epoch; }
const char *sc_journal_path(const sc_journal_t *j) { return j->path; }

uint64_t sc_journal_head(sc_journal_t *j, const char *channel)
{
    head_t *h = head_find(j, channel, 0);
    return h ? h->head : 0;
}

int sc_journal_begin(sc_journal_t *j, char *err, size_t errlen)
{
    if (j->in_txn)
        return 0;
    if (exec(j, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    j->in_txn = 1;
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
        snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
        return -1;
    }
    sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: plugin state of '%s': %s", j->path, plugin,
                 sqlite3_errmsg(j->db));
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

int sc_journal_append(sc_journal_t *j, const char *channel, uint64_t seq,
                      const char *kind, const char *key, const char *ts,
                      const char *kid, const char *jws, size_t jws_len,
                      char *err, size_t errlen)
{
    sqlite3_stmt *s = j->ins_msg;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 4);
    sqlite3_bind_text(s, 5, ts, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, jws, (int)jws_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, kid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        goto fail;
    s = j->upd_head;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s: append %s seq %llu: %s", j->path, channel,
             (unsigned long long)seq, sqlite3_errmsg(j->db));
    return -1;
}

int sc_journal_commit(sc_journal_t *j, char *err, size_t errlen)
{
    if (!j->in_txn)
        return 0;
    if (exec(j, "COMMIT", err, errlen) != 0) {
        sc_journal_rollback(j);
        return -1;
    }
    j->in_txn = 0;
    return 0;
}

void sc_journal_rollback(sc_journal_t *j)
{
    char err[256];
    if (j->in_txn)
        exec(j, "ROLLBACK", err, sizeof err);
    j->in_txn = 0;
    /* heads advanced by next_seq() in the failed group are given back */
    heads_load(j, err, sizeof err);
}

long sc_journal_scan(sc_journal_t *j, const char *channel, uint64_t from,
                     long limit, sc_journal_row_fn cb, void *arg)
{
    sqlite3_stmt *s = j->scan;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(s, 3, limit);
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        n++;
        if (cb(arg, channel, (uint64_t)sqlite3_column_int64(s, 0),
               sqlite3_column_blob(s, 1),
               (size_t)sqlite3_column_bytes(s, 1)))
            break;
    }
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_reset(s);
    return ok ? n : -1;
}

uint64_t sc_journal_low(sc_journal_t *j, const char *channel)
{
    sqlite3_stmt *st = NULL;
    uint64_t low = 1;
    if (sqlite3_prepare_v2(j->db, "SELECT low FROM channels WHERE name=?", -1,
                           &st, NULL) != SQLITE_OK)
        return 1;
    sqlite3_bind_text(st, 1, channel, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        low = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return low ? low : 1;
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

void sc_journal_heads(sc_journal_t *j, const char *subtree,
                      sc_journal_head_fn cb, void *arg)
{
    for (head_t *h = j->heads; h; h = h->next)
        if (h->head > 0 && under(h->channel, subtree))
            if (cb(arg, h->channel, h->head))
                return;
}

long sc_journal_snapshot(sc_journal_t *j, const char *subtree,
                         sc_journal_row_fn cb, void *arg)
{
    /* SQLite returns the bare columns of the row holding MAX(seq) */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT channel, MAX(seq), jws FROM messages"
                           " WHERE key IS NOT NULL GROUP BY channel, key"
                           " ORDER BY channel, 2",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
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
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? n : -1;
}

long sc_journal_prune(sc_journal_t *j, const char *channel, int64_t max_age_s,
                      int64_t max_messages, char *err, size_t errlen)
{
    uint64_t head = sc_journal_head(j, channel);
    if (head == 0 || (max_age_s <= 0 && max_messages <= 0))
        return 0;
    /* everything below `cut` goes, but the latest of each key stays */
    uint64_t cut = 0;
    if (max_messages > 0 && head > (uint64_t)max_messages)
        cut = head - (uint64_t)max_messages + 1;
    if (max_age_s > 0) {
        char limit[32];
        time_t t = time(NULL) - (time_t)max_age_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(limit, sizeof limit, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(j->db,
                               "SELECT MIN(seq) FROM messages WHERE channel=?"
                               " AND ts>=?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, channel, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, limit, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW) {
                uint64_t first_young =
                    sqlite3_column_type(st, 0) == SQLITE_NULL
                        ? head + 1
                        : (uint64_t)sqlite3_column_int64(st, 0);
                if (first_young > cut)
                    cut = first_young;
            }
            sqlite3_finalize(st);
        }
    }
    if (cut <= sc_journal_low(j, channel))
        return 0;
    if (sc_journal_begin(j, err, errlen) != 0)
        return -1;
    sqlite3_stmt *del = NULL, *low = NULL;
    long removed = -1;
    if (sqlite3_prepare_v2(
            j->db,
            "DELETE FROM messages WHERE channel=?1 AND seq<?2 AND NOT"
            " (key IS NOT NULL AND seq=(SELECT MAX(m2.seq) FROM messages m2"
            " WHERE m2.channel=?1 AND m2.key=messages.key))",
            -1, &del, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(j->db, "UPDATE channels SET low=?2 WHERE name=?1",
                           -1, &low, NULL) == SQLITE_OK) {
        sqlite3_bind_text(del, 1, channel, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(del, 2, (sqlite3_int64)cut);
        sqlite3_bind_text(low, 1, channel, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(low, 2, (sqlite3_int64)cut);
        if (sqlite3_step(del) == SQLITE_DONE &&
            (removed = sqlite3_changes(j->db), sqlite3_step(low) == SQLITE_DONE))
            ;
        else
            removed = -1;
    }
    if (removed < 0)
        snprintf(err, errlen, "%s: prune %s: %s", j->path, channel,
                 sqlite3_errmsg(j->db));
    sqlite3_finalize(del);
    sqlite3_finalize(low);
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
    if (sqlite3_prepare_v2(j->db,
                           "SELECT kid, count(*) FROM messages WHERE kid IS NOT"
                           " NULL GROUP BY kid",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *kid = (const char *)sqlite3_column_text(st, 0);
        if (kid && cb(arg, kid, (uint64_t)sqlite3_column_int64(st, 1)))
            break;
    }
    sqlite3_finalize(st);
}

/* ------------------------------------------------------------------ */
/* readers                                                              */

struct sc_journal_reader {
    sqlite3 *db;
    char *path;
    char epoch[33];
    sqlite3_stmt *scan;
    sqlite3_stmt *chan;
    int in_txn;
    char err[512];
};

/* record and log a read error of reader r (what: which operation) */
static int reader_fail(sc_journal_reader_t *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s: %s: %s (sqlite error %d)", r->path,
             what, sqlite3_errmsg(r->db), sqlite3_extended_errcode(r->db));
    sc_log(SC_L_ERROR, "journal", "read failed: %s", r->err);
    return -1;
}

sc_journal_reader_t *sc_journal_reader_new(const sc_journal_t *j, char *err,
                                           size_t errlen)
{
    sc_journal_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(j->path))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(r->epoch, j->epoch, sizeof r->epoch);
    int rc = sqlite3_open_v2(r->path, &r->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open a reader: %s", r->path,
                 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        sc_journal_reader_destroy(&r);
        return NULL;
    }
    sqlite3_busy_timeout(r->db, 5000);
    if (sqlite3_prepare_v2(r->db,
                           "SELECT seq, jws FROM messages WHERE channel=?"
                           " AND seq>=? ORDER BY seq LIMIT ?",
                           -1, &r->scan, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db,
                           "SELECT head, low FROM channels WHERE name=?", -1,
                           &r->chan, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot prepare a reader: %s", r->path,
                 sqlite3_errmsg(r->db));
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
    sqlite3_finalize(r->scan);
    sqlite3_finalize(r->chan);
    if (r->db)
        sqlite3_close(r->db);
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
    return r->err;
}

int sc_journal_reader_begin(sc_journal_reader_t *r)
{
    if (r->in_txn)
        return 0;
    if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return reader_fail(r, "begin");
    r->in_txn = 1;
    return 0;
}

void sc_journal_reader_end(sc_journal_reader_t *r)
{
    if (!r->in_txn)
        return;
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    r->in_txn = 0;
}

long sc_journal_reader_scan(sc_journal_reader_t *r, const char *channel,
                            uint64_t from, long limit, sc_journal_row_fn cb,
                            void *arg)
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
        reader_fail(r, what);
        sqlite3_reset(s);
        return -1;
    }
    sqlite3_reset(s);
    return n;
}

int sc_journal_reader_channel(sc_journal_reader_t *r, const char *channel,
                              uint64_t *head, uint64_t *low)
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
        reader_fail(r, what);
        found = -1;
    }
    sqlite3_reset(s);
    return found;
}

long sc_journal_reader_heads(sc_journal_reader_t *r, const char *subtree,
                             sc_journal_head_fn cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT name, head FROM channels WHERE head>0"
                           " ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return reader_fail(r, "heads");
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
        n = reader_fail(r, "heads");
    sqlite3_finalize(st);
    return n;
}

long sc_journal_reader_snapshot(sc_journal_reader_t *r, const char *subtree,
                                sc_journal_row_fn cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT channel, MAX(seq), jws FROM messages"
                           " WHERE key IS NOT NULL GROUP BY channel, key"
                           " ORDER BY channel, 2",
                           -1, &st, NULL) != SQLITE_OK)
        return reader_fail(r, "snapshot");
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
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = reader_fail(r, "snapshot");
    sqlite3_finalize(st);
    return n;
}
