/*
 * test_journal.c - the journal's reader API (core/broker/journal.h):
 * a read-only connection, as the service thread and the sink feeder use
 * it, sees committed messages only, scans a channel from a seq, gives
 * heads and low-water marks, and snapshots a subtree's latest keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
