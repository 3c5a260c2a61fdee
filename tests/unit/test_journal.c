/*
 * test_journal.c - the journal's reader API (core/broker/journal.h):
 * a read-only connection, as the service thread and the sink feeder use
 * it, sees committed messages only, scans a channel from a seq, gives
 * heads and low-water marks, and snapshots a subtree's latest keys; the
 * journal costs about what it stores (bytes on disk per message within
 * 1.3x of the JWS) and opening a large one reads a bounded number of
 * pages, not every message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/journal.h"

typedef struct rows {
    char ch[8][64];
    uint64_t seq[8];
    char jws[8][64];
    int n;
} rows_t;

static int collect(void *arg, const char *channel, uint64_t seq,
                   const char *jws, size_t jws_len)
{
    rows_t *r = arg;
    if (r->n >= 8)
        return 1;
    snprintf(r->ch[r->n], sizeof r->ch[0], "%s", channel);
    r->seq[r->n] = seq;
    snprintf(r->jws[r->n], sizeof r->jws[0], "%.*s", (int)jws_len, jws);
    r->n++;
    return 0;
}

static int collect_head(void *arg, const char *channel, uint64_t head)
{
    return collect(arg, channel, head, "", 0);
}

static int count_row(void *arg, const char *channel, uint64_t seq,
                     const char *jws, size_t jws_len)
{
    (void)channel, (void)seq, (void)jws, (void)jws_len;
    ++*(long *)arg;
    return 0;
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sc-test-journal-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(sc_journal_t *j, const char *ch, const char *key,
                const char *jws)
{
    char err[256];
    uint64_t seq = sc_journal_next_seq(j, ch);
    assert_int_equal(sc_journal_append(j, ch, seq, "update", key,
                                       "2026-11-29T00:00:00.000Z", "k1", jws,
                                       strlen(jws), err, sizeof err),
                     0);
}

static void test_reader(void **state)
{
    (void)state;
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
    put(j, "energy.nuclear.tasks", "a", "n1");
    put(j, "energy.nuclear.tasks", "b", "n2");
    put(j, "energy.nuclear.tasks", "a", "n3");
    put(j, "energy.lng.tasks", "x", "l1");
    put(j, "energyx.tasks", "y", "e1");
    assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);

    sc_journal_reader_t *r = sc_journal_reader_new(j, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(sc_journal_reader_epoch(r), sc_journal_epoch(j));

    rows_t got = {0};
    assert_int_equal(sc_journal_reader_scan(r, "energy.nuclear.tasks", 2, 10,
                                            collect, &got),
                     2);
    assert_int_equal(got.seq[0], 2);
    assert_string_equal(got.jws[1], "n3");

    uint64_t head, low;
    assert_int_equal(
        sc_journal_reader_channel(r, "energy.nuclear.tasks", &head, &low), 1);
    assert_int_equal(head, 3);
    assert_int_equal(low, 1);
    assert_int_equal(sc_journal_reader_channel(r, "nope", &head, &low), 0);
    assert_int_equal(head, 0);

    memset(&got, 0, sizeof got);
    assert_int_equal(
        sc_journal_reader_heads(r, "energy.", collect_head, &got), 2);
    assert_string_equal(got.ch[0], "energy.lng.tasks");
    assert_string_equal(got.ch[1], "energy.nuclear.tasks");

    /* latest per key, in (channel, seq) order; energyx is not under energy. */
    memset(&got, 0, sizeof got);
    assert_int_equal(sc_journal_reader_snapshot(r, "energy.", collect, &got),
                     3);
    assert_string_equal(got.jws[0], "l1");
    assert_string_equal(got.jws[1], "n2");
    assert_string_equal(got.jws[2], "n3");
    memset(&got, 0, sizeof got);
    assert_int_equal(sc_journal_reader_snapshot(r, "water.", collect, &got),
                     0);

    /* a group being written is invisible to the reader until it commits */
    assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
    put(j, "energy.nuclear.tasks", "c", "n4");
    assert_int_equal(sc_journal_reader_begin(r), 0);
    assert_int_equal(
        sc_journal_reader_channel(r, "energy.nuclear.tasks", &head, &low), 1);
    assert_int_equal(head, 3);
    sc_journal_reader_end(r);
    assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);
    memset(&got, 0, sizeof got);
    assert_int_equal(sc_journal_reader_scan(r, "energy.nuclear.tasks", 4, 0,
                                            collect, &got),
                     1);
    assert_string_equal(got.jws[0], "n4");

    sc_journal_reader_destroy(&r);
    assert_null(r);
    sc_journal_close(&j);
}

/* a JWS-like token of exactly n bytes (base64url characters) */
static void fake_jws(char *buf, size_t n, unsigned seed)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = b64[(x >> 16) & 63];
    }
    buf[n] = '\0';
}

/* append `count` messages of jws_len bytes over 4 channels and 50 keys */
static void fill(sc_journal_t *j, long count, size_t jws_len)
{
    static const char *const chans[] = {"energy.nuclear.tasks",
                                        "energy.lng.tasks", "semis.fabs",
                                        "ai.standards"};
    char err[512], key[16];
    char *jws = malloc(jws_len + 1);
    assert_non_null(jws);
    for (long i = 0; i < count; i += 200) {
        assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
        for (long k = i; k < i + 200 && k < count; k++) {
            const char *ch = chans[k % 4];
            fake_jws(jws, jws_len, (unsigned)k);
            snprintf(key, sizeof key, "K-%ld", k % 50);
            uint64_t seq = sc_journal_next_seq(j, ch);
            assert_int_equal(
                sc_journal_append(j, ch, seq, "task.updated", key,
                                  "2026-11-29T00:00:00.000Z", "k1", jws,
                                  jws_len, err, sizeof err),
                0);
        }
        assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);
    }
    free(jws);
}

static long long file_size(const char *suffix)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof p, "%s/journal.db%s", dir, suffix);
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

/* the page size in a SQLite file's header */
static int page_size_of(const char *path)
{
    unsigned char h[18];
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(h, 1, sizeof h, f) : 0;
    if (f)
        fclose(f);
    return got == sizeof h ? h[16] << 8 | h[17] : -1;
}

/* bytes on disk per message: within 1.3x of the JWS (a few thousand JWS
 * of ~1.2 KB, the size of a 512 B data envelope) */
static void test_bytes_per_message(void **state)
{
    (void)state;
    char err[512];
    const long n = 4000;
    const size_t len = 1238;
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    fill(j, n, len);
    sc_journal_close(&j);
    long long bytes = file_size("") + file_size("-wal");
    double ratio = (double)bytes / ((double)n * (double)len);
    printf("journal: %ld messages of %zu B JWS: %lld bytes on disk, %.0f B "
           "per message, %.2fx the JWS\n",
           n, len, bytes, (double)bytes / (double)n, ratio);
    assert_true(ratio <= 1.3);
    /* the journal and its WAL are the owner's only */
    struct stat st;
    char p[128];
    snprintf(p, sizeof p, "%s/journal.db", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a new journal has 8 KiB pages (the SQLite header's bytes 16-17) */
    assert_int_equal(page_size_of(p), 8192);
}

static int kid_count(void *arg, const char *kid, uint64_t count)
{
    if (strcmp(kid, "k1") == 0)
        *(uint64_t *)arg = count;
    return 0;
}

/* Retention by age and by count: everything below the cut goes except the
 * latest message of each key; the low-water mark rises; per-kid counts
 * follow; snapshots stay complete. */
static void test_retention(void **state)
{
    (void)state;
    char err[512], now[32], key[16];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    const char *ch = "energy.nuclear.tasks";
    assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
    for (int i = 1; i <= 100; i++) {
        /* 1..60 two years old, 61..100 now; seq 5 is the only "solo" */
        snprintf(key, sizeof key, i == 5 ? "solo" : "k%d", i % 5);
        uint64_t seq = sc_journal_next_seq(j, ch);
        assert_int_equal(seq, (uint64_t)i);
        assert_int_equal(
            sc_journal_append(j, ch, seq, "task.updated", key,
                              i <= 60 ? "2024-01-01T00:00:00.000Z" : now,
                              "k1", "x", 1, err, sizeof err),
            0);
    }
    assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);
    uint64_t n = 0;
    sc_journal_kids(j, kid_count, &n);
    assert_int_equal(n, 100);

    /* by age (one day): 1..60 go, but seq 5 is the latest of "solo" */
    assert_int_equal(sc_journal_prune(j, ch, 86400, 0, err, sizeof err), 59);
    assert_int_equal(sc_journal_low(j, ch), 61);
    sc_journal_kids(j, kid_count, &n);
    assert_int_equal(n, 41);
    /* by count: the newest 10 stay (91..100), and "solo" */
    assert_int_equal(sc_journal_prune(j, ch, 0, 10, err, sizeof err), 30);
    assert_int_equal(sc_journal_low(j, ch), 91);
    assert_int_equal(sc_journal_prune(j, ch, 0, 10, err, sizeof err), 0);
    sc_journal_kids(j, kid_count, &n);
    assert_int_equal(n, 11);
    rows_t got = {0};
    assert_int_equal(sc_journal_snapshot(j, "energy.", collect, &got), 6);
    assert_int_equal(got.seq[0], 5);
    assert_int_equal(got.seq[1], 96);
    assert_int_equal(got.seq[5], 100);
    /* the head never goes back */
    assert_int_equal(sc_journal_head(j, ch), 100);
    sc_journal_close(&j);
}

/* The WAL is checkpointed by the journal's own thread, not in COMMIT: with
 * the journal still open and idle, its pages reach journal.db. */
static void test_checkpointer_copies_the_wal(void **state)
{
    (void)state;
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    fill(j, 6000, 1238); /* ~8 MB of WAL, over the 1000-page mark */
    long long db = 0;
    for (int i = 0; i < 200 && (db = file_size("")) < 6 * 1024 * 1024; i++)
        usleep(50 * 1000); /* up to 10 s on a loaded machine */
    assert_true(db >= 6 * 1024 * 1024);
    sc_journal_close(&j);
}

/* Opening a journal far above the whole-file check bound reads a bounded
 * number of pages: no integrity check of every page, no scan of every
 * message (the assertion is on pages read, not on time). */
static void test_open_reads_bounded_pages(void **state)
{
    (void)state;
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    fill(j, 40000, 1000); /* ~45 MB: above the 32 MiB whole-file check */
    sc_journal_close(&j);
    long long bytes = file_size("");
    assert_true(bytes > 40LL * 1024 * 1024);
    j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err, sizeof err);
    assert_non_null(j);
    uint64_t pages = sc_journal_pages_read(j);
    char p[128];
    snprintf(p, sizeof p, "%s/journal.db", dir);
    printf("journal: opening %lld bytes (%lld pages) read %llu pages\n",
           bytes, bytes / page_size_of(p), (unsigned long long)pages);
    assert_true(pages < 300);
    assert_int_equal(sc_journal_head(j, "energy.nuclear.tasks"), 10000);

    /* snapshots of a subtree read that subtree's keys only */
    sc_journal_reader_t *r = sc_journal_reader_new(j, err, sizeof err);
    assert_non_null(r);
    long n = sc_journal_reader_snapshot(r, "water.", collect, &(rows_t){0});
    assert_int_equal(n, 0);
    long keys = 0;
    n = sc_journal_reader_snapshot(r, "semis.", count_row, &keys);
    assert_int_equal(n, 25); /* semis.fabs got every 4th message: 25 keys */
    assert_int_equal(keys, 25);
    sc_journal_reader_destroy(&r);
    sc_journal_close(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_per_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_reads_bounded_pages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checkpointer_copies_the_wal,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
