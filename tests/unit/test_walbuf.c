/*
 * test_walbuf.c - the journal writer's WAL VFS (core/broker/walbuf.c).
 *
 * What must hold: a transaction's frames reach the file as one write (or
 * one per SC_WALBUF_MAX bytes), yet every commit is visible to another
 * connection -- through SQLite's own VFS, as the journal's readers and
 * checkpointer use -- the moment the commit returns, with nothing left
 * buffered; a write that fails fails the commit (never a commit that
 * later turns out unwritten), and what was committed before survives it;
 * a WAL of another page size, or started by another connection, is
 * handled the same; the journal itself writes through the VFS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "broker/journal.h"
#include "broker/walbuf.h"

static char dir[64], db_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sc-test-walbuf-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    return sc_walbuf_register() == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

/* a writer through the VFS (pages of page_size), WAL, synchronous NORMAL */
static sqlite3 *writer(int page_size)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db,
                                     SQLITE_OPEN_READWRITE |
                                         SQLITE_OPEN_CREATE,
                                     SC_WALBUF_VFS),
                     SQLITE_OK);
    char sql[160];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%d; PRAGMA journal_mode=WAL;"
             " PRAGMA synchronous=NORMAL;"
             " CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, b BLOB);",
             page_size);
    exec_ok(db, sql);
    return db;
}

/* another connection, through SQLite's own VFS */
static sqlite3 *reader(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    return db;
}

/* rows in t, and whether each row's blob is the one insert_rows wrote */
static long rows_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, b FROM t ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    long n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long id = (long)sqlite3_column_int64(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        assert_int_equal(id, n + 1);
        for (int i = 0; i < len; i++)
            if (b[i] != (unsigned char)(id * 31 + i))
                fail_msg("row %ld byte %d is not what was written", id, i);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* one transaction of `count` rows of `bytes` each; the commit's result */
static int insert_rows(sqlite3 *db, long first, long count, int bytes)
{
    unsigned char *b = malloc((size_t)bytes);
    assert_non_null(b);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES(?,?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (long id = first; rc == SQLITE_OK && id < first + count; id++) {
        for (int i = 0; i < bytes; i++)
            b[i] = (unsigned char)(id * 31 + i);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_blob(st, 2, b, bytes, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    free(b);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static sc_walbuf_stats_t stats(void)
{
    sc_walbuf_stats_t s;
    sc_walbuf_stats(&s);
    return s;
}

/* every commit is one write, and another connection sees it at once */
static void test_commit_is_one_write_and_visible(void **state)
{
    (void)state;
    sqlite3 *w = writer(8192), *r = reader();
    assert_int_equal(insert_rows(w, 1, 1, 1300), SQLITE_OK); /* WAL header */
    for (long id = 2; id <= 300; id++) {
        sc_walbuf_stats_t a = stats();
        assert_int_equal(insert_rows(w, id, 1, 1300), SQLITE_OK);
        sc_walbuf_stats_t b = stats();
        assert_int_equal(b.pending, 0);
        assert_int_equal(b.made - a.made, 1);
        assert_true(b.asked - a.asked >= 2); /* a header and a page at least */
        assert_int_equal(rows_ok(r), id);
    }
    sqlite3_close(r);
    sqlite3_close(w);
}

/* a transaction larger than the buffer: written in pieces, all of it read
 * back by another connection; then one more small commit after it */
static void test_large_transaction(void **state)
{
    (void)state;
    sqlite3 *w = writer(4096), *r = reader();
    sc_walbuf_stats_t a = stats();
    assert_int_equal(insert_rows(w, 1, 400, 3000), SQLITE_OK); /* ~1.2 MB */
    sc_walbuf_stats_t b = stats();
    assert_int_equal(b.pending, 0);
    uint64_t made = b.made - a.made, asked = b.asked - a.asked;
    /* at least ceil(1.2 MB / 127 KiB) writes, far fewer than asked */
    assert_true(made >= 1200000 / SC_WALBUF_MAX);
    assert_true(made * 10 < asked);
    assert_int_equal(rows_ok(r), 400);
    assert_int_equal(insert_rows(w, 401, 1, 100), SQLITE_OK);
    assert_int_equal(rows_ok(r), 401);
    sqlite3_close(r);
    sqlite3_close(w);
}

/* a WAL another connection started (and this one reopens) */
static void test_wal_started_elsewhere(void **state)
{
    (void)state;
    sqlite3 *plain = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &plain,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     NULL),
                     SQLITE_OK);
    exec_ok(plain, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;"
                   " CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);");
    assert_int_equal(insert_rows(plain, 1, 3, 500), SQLITE_OK);
    sqlite3 *w = writer(16384); /* the plain connection keeps the WAL */
    sc_walbuf_stats_t a = stats();
    for (long id = 4; id <= 50; id++)
        assert_int_equal(insert_rows(w, id, 1, 700), SQLITE_OK);
    sc_walbuf_stats_t b = stats();
    assert_int_equal(b.pending, 0);
    assert_int_equal(b.made - a.made, 47);
    assert_int_equal(rows_ok(plain), 50);
    sqlite3_close(w);
    sqlite3_close(plain);
}

/* a write that fails fails its commit; what was committed before stays */
static void test_failed_write_fails_the_commit(void **state)
{
    (void)state;
    sqlite3 *w = writer(8192), *r = reader();
    long id = 1;
    for (; id <= 20; id++)
        assert_int_equal(insert_rows(w, id, 1, 1300), SQLITE_OK);
    struct stat st;
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    assert_int_equal(stat(wal, &st), 0);
    /* files may not grow past 64 KiB beyond the WAL's size now: writes
     * past that fail with EFBIG (SIGXFSZ ignored) */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 64 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = SQLITE_OK;
    long committed = id - 1;
    for (; id <= 200 && rc == SQLITE_OK; id++) {
        rc = insert_rows(w, id, 1, 1300);
        if (rc == SQLITE_OK)
            committed = id;
        /* whatever the writer was told, the reader agrees */
        assert_int_equal(rows_ok(r), committed);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_not_equal(rc, SQLITE_OK); /* the limit was reached */
    assert_true(committed > 20);
    assert_int_equal(stats().pending, 0);
    /* the writer goes on after the failure */
    assert_int_equal(insert_rows(w, committed + 1, 1, 1300), SQLITE_OK);
    sqlite3_close(w);
    sqlite3_close(r);
    r = reader();
    assert_int_equal(rows_ok(r), committed + 1);
    sqlite3_stmt *st2 = NULL;
    assert_int_equal(sqlite3_prepare_v2(r, "PRAGMA integrity_check", -1, &st2,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st2), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st2, 0), "ok");
    sqlite3_finalize(st2);
    sqlite3_close(r);
}

/* the journal's writer goes through the VFS: one write per commit */
static void test_journal_writes_through_it(void **state)
{
    (void)state;
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    for (int i = 0; i < 50; i++) {
        sc_walbuf_stats_t a = stats();
        assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
        uint64_t seq = sc_journal_next_seq(j, "energy.lng.tasks");
        assert_int_equal(sc_journal_append(j, "energy.lng.tasks", seq,
                                           "task.updated", "K-1",
                                           "2026-11-30T00:00:00.000Z", "k1",
                                           "eyJ0eXAiOiJKV1MifQ.e30.c2ln", 27,
                                           err, sizeof err),
                         0);
        assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);
        sc_walbuf_stats_t b = stats();
        assert_int_equal(b.pending, 0);
        assert_true(b.asked - a.asked >= 4);
        /* one write, two at the first (the WAL's header) */
        assert_true(b.made - a.made == 1 || (i == 0 && b.made - a.made == 2));
        assert_int_equal(sc_journal_head(j, "energy.lng.tasks"), seq);
    }
    sc_journal_close(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_is_one_write_and_visible,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wal_started_elsewhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_fails_the_commit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_writes_through_it, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
