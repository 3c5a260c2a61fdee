/*
 * test_sink.c - the sink feeder's cursor bookkeeping on a real journal:
 * order and window, cumulative acks, resume from the durable cursor after
 * a feeder restart, a retention gap reported as lost, grants; and the
 * Nats-Msg-Id derivation of the NATS bridge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/journal.h"
#include "broker/metrics.h"
#include "broker/sink.h"
#include "common/clock.h"
#include "host/frame.h"
#include "../plugins/nats_bridge/msgid.h"

#define MAXREC 256

typedef struct rec {
    pthread_mutex_t mu;
    char channel[MAXREC][64];
    uint64_t seq[MAXREC];
    size_t n;
    uint64_t lost_first, lost_last;
    int n_lost;
} rec_t;

static int offer(void *arg, const sc_sink_msg_t *m)
{
    rec_t *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAXREC) {
        snprintf(r->channel[r->n], sizeof r->channel[0], "%s", m->channel);
        r->seq[r->n] = m->seq;
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int lost(void *arg, const char *channel, const char *epoch,
                uint64_t first, uint64_t last)
{
    (void)channel;
    (void)epoch;
    rec_t *r = arg;
    pthread_mutex_lock(&r->mu);
    r->lost_first = first;
    r->lost_last = last;
    r->n_lost++;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static size_t wait_n(rec_t *r, size_t want)
{
    int64_t until = sc_mono_ms() + 10000;
    size_t n;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        n = r->n;
        pthread_mutex_unlock(&r->mu);
        if (n >= want || sc_mono_ms() > until)
            return n;
        usleep(5000);
    }
}

static void append(sc_journal_t *j, const char *channel, int count)
{
    char err[256];
    assert_int_equal(sc_journal_begin(j, err, sizeof err), 0);
    for (int i = 0; i < count; i++) {
        uint64_t seq = sc_journal_next_seq(j, channel);
        char jws[64];
        int n = snprintf(jws, sizeof jws, "jws-%s-%llu", channel,
                         (unsigned long long)seq);
        assert_int_equal(sc_journal_append(j, channel, seq, "task.updated",
                                           NULL, "2026-01-01T00:00:00Z", "k",
                                           jws, (size_t)n, err, sizeof err),
                         0);
    }
    assert_int_equal(sc_journal_commit(j, err, sizeof err), 0);
}

/* The temporary directories the tests made, removed after the group
 * (a failed assertion leaves its test early, so not at each test's end). */
static char made_dirs[16][40];
static int n_made;

static void made(const char *dir)
{
    if (n_made < 16)
        snprintf(made_dirs[n_made++], sizeof made_dirs[0], "%s", dir);
}

static int remove_made(void **state)
{
    (void)state;
    for (int i = 0; i < n_made; i++) {
        char cmd[sizeof made_dirs[0] + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%.39s'", made_dirs[i]);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

static void test_cursor_ack_resume_gap(void **state)
{
    (void)state;
    char dir[] = "/tmp/sc-test-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    made(dir);
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    append(j, "energy.lng.tasks", 10);
    append(j, "semis.ai.tasks", 3);

    rec_t r = {.n = 0};
    pthread_mutex_init(&r.mu, NULL);
    sc_sink_target_t t = {.offer = offer, .lost = lost, .arg = &r};
    char *recv[] = {"energy."};

    sc_sink_feeder_t *f = sc_sink_feeder_new(j, dir, err,
                                             sizeof err);
    assert_non_null(f);
    sc_sink_port_t *p = sc_sink_attach(f, "bridge", recv, 1, 4, &t, err,
                                       sizeof err);
    assert_non_null(p);
    /* a second attach of the same name is refused */
    assert_null(sc_sink_attach(f, "bridge", recv, 1, 4, &t, err, sizeof err));
    sc_sink_notify(f);
    /* window of 4: seq 1..4 of the energy channel, nothing of semis */
    assert_int_equal(wait_n(&r, 4), 4);
    usleep(300000); /* the feeder wakes at least every second */
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.n, 4);
    pthread_mutex_unlock(&r.mu);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(r.channel[i], "energy.lng.tasks");
        assert_int_equal(r.seq[i], i + 1);
    }
    /* grants and bounds of acks */
    assert_int_equal(sc_sink_ack(p, "semis.ai.tasks", 1), SC_ERR_NOT_GRANTED);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 5), SC_ERR_ARG);
    /* cumulative: acking 2 opens the window by two */
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 2), SC_OK);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 1), SC_OK);
    assert_int_equal(wait_n(&r, 6), 6);
    assert_int_equal(r.seq[4], 5);
    assert_int_equal(r.seq[5], 6);

    /* restart: resume after the durable cursor (2), not after what was
     * only offered (6) */
    sc_sink_detach(&p);
    assert_null(p);
    sc_sink_feeder_destroy(&f);
    struct stat st;
    char cpath[600];
    snprintf(cpath, sizeof cpath, "%s/sinks.db", dir);
    assert_int_equal(stat(cpath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    r.n = 0;
    f = sc_sink_feeder_new(j, dir, err, sizeof err);
    assert_non_null(f);
    p = sc_sink_attach(f, "bridge", recv, 1, 4, &t, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(wait_n(&r, 4), 4);
    assert_int_equal(r.seq[0], 3);
    assert_int_equal(r.seq[3], 6);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 4), SC_OK);
    assert_int_equal(wait_n(&r, 6), 6);
    sc_sink_detach(&p);
    sc_sink_feeder_destroy(&f);

    /* retention removes 5..17 before they were acknowledged */
    append(j, "energy.lng.tasks", 10);
    assert_int_equal(sc_journal_prune(j, "energy.lng.tasks", 0, 3, err,
                                      sizeof err),
                     17);
    assert_int_equal(sc_journal_low(j, "energy.lng.tasks"), 18);
    r.n = 0;
    f = sc_sink_feeder_new(j, dir, err, sizeof err);
    assert_non_null(f);
    p = sc_sink_attach(f, "bridge", recv, 1, 4, &t, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(wait_n(&r, 3), 3);
    assert_int_equal(r.n_lost, 1);
    assert_int_equal(r.lost_first, 5);
    assert_int_equal(r.lost_last, 17);
    assert_int_equal(r.seq[0], 18);
    assert_int_equal(r.seq[2], 20);

    /* status: one instance line and one per channel, with the lag */
    sc_sink_detach(&p);
    sc_sink_feeder_destroy(&f);
    sc_journal_close(&j);
    pthread_mutex_destroy(&r.mu);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

typedef struct st_acc {
    int lines;
    uint64_t lag;
} st_acc_t;

static void status_cb(void *arg, const sc_sink_status_t *s)
{
    st_acc_t *a = arg;
    a->lines++;
    if (s->channel && strcmp(s->channel, "energy.lng.tasks") == 0)
        a->lag = s->lag;
}

static void test_status_lag(void **state)
{
    (void)state;
    char dir[] = "/tmp/sc-test-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    made(dir);
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    append(j, "energy.lng.tasks", 5);
    rec_t r = {.n = 0};
    pthread_mutex_init(&r.mu, NULL);
    sc_sink_target_t t = {.offer = offer, .lost = lost, .arg = &r};
    char *recv[] = {"energy.lng."};
    sc_sink_feeder_t *f = sc_sink_feeder_new(j, dir, err,
                                             sizeof err);
    assert_non_null(f);
    sc_sink_port_t *p = sc_sink_attach(f, "s", recv, 1, 0, &t, err,
                                       sizeof err);
    assert_non_null(p);
    assert_int_equal(wait_n(&r, 5), 5);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 3), SC_OK);
    st_acc_t a = {0};
    sc_sink_status(f, status_cb, &a);
    assert_int_equal(a.lines, 2);
    assert_int_equal(a.lag, 2);
    /* the same numbers as metrics, refreshed by the feeder every second */
    sc_metric_t *lag = sc_metric_gauge("sectorcast_sink_lag_messages", "x",
                                       "sink,channel");
    assert_non_null(lag);
    int64_t until = sc_mono_ms() + 5000;
    while (sc_metric_value(lag, "s", "energy.lng.tasks") != 2.0 &&
           sc_mono_ms() < until)
        usleep(20000);
    assert_true(sc_metric_value(lag, "s", "energy.lng.tasks") == 2.0);
    sc_sink_detach(&p);
    sc_sink_feeder_destroy(&f);
    sc_journal_close(&j);
    pthread_mutex_destroy(&r.mu);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static int refuse(void *arg, const sc_sink_msg_t *m)
{
    (void)m;
    atomic_int *n = arg;
    atomic_fetch_add(n, 1);
    return -1;
}

/* A stuck sink (refuses everything) delays no other sink. */
static void test_stuck_sink_delays_no_other(void **state)
{
    (void)state;
    char dir[] = "/tmp/sc-test-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    made(dir);
    char err[512];
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    append(j, "energy.lng.tasks", 50);
    rec_t r = {.n = 0};
    pthread_mutex_init(&r.mu, NULL);
    atomic_int refused = 0;
    sc_sink_target_t good = {.offer = offer, .lost = lost, .arg = &r};
    sc_sink_target_t stuck = {.offer = refuse, .lost = NULL, .arg = &refused};
    char *recv[] = {"energy."};
    sc_sink_feeder_t *f = sc_sink_feeder_new(j, dir, err, sizeof err);
    assert_non_null(f);
    sc_sink_port_t *ps = sc_sink_attach(f, "stuck", recv, 1, 0, &stuck, err,
                                        sizeof err);
    sc_sink_port_t *pg = sc_sink_attach(f, "good", recv, 1, 0, &good, err,
                                        sizeof err);
    assert_non_null(ps);
    assert_non_null(pg);
    assert_int_equal(wait_n(&r, 50), 50);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(r.seq[i], i + 1);
    /* the stuck one was offered (and refused) meanwhile: within the same
     * round, after the good one (ports are visited newest first, so the
     * good one's 50 can be seen here before the stuck one's first offer;
     * hence a bounded wait, not an immediate check) */
    int64_t until = sc_mono_ms() + 5000;
    while (atomic_load(&refused) < 1 && sc_mono_ms() < until)
        usleep(5000);
    assert_true(atomic_load(&refused) >= 1);
    /* more published later reaches the good one as well */
    append(j, "energy.lng.tasks", 10);
    sc_sink_notify(f);
    assert_int_equal(wait_n(&r, 60), 60);
    sc_sink_detach(&ps);
    sc_sink_detach(&pg);
    sc_sink_feeder_destroy(&f);
    sc_journal_close(&j);
    pthread_mutex_destroy(&r.mu);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* lost() that refuses the first `refuse_left` notices (a sink not yet
 * registered), recording the epoch of the last one taken */
typedef struct epoch_rec {
    rec_t r;
    atomic_int refuse_left;
    atomic_int offered_before_told;
    atomic_int told;
    char epoch[64];
} epoch_rec_t;

static int epoch_lost(void *arg, const char *channel, const char *epoch,
                      uint64_t first, uint64_t last)
{
    epoch_rec_t *e = arg;
    if (atomic_fetch_sub(&e->refuse_left, 1) > 0)
        return -1;
    pthread_mutex_lock(&e->r.mu);
    snprintf(e->epoch, sizeof e->epoch, "%s", epoch);
    pthread_mutex_unlock(&e->r.mu);
    atomic_store(&e->told, 1);
    (void)channel;
    return lost(&e->r, channel, epoch, first, last);
}

static int epoch_offer(void *arg, const sc_sink_msg_t *m)
{
    epoch_rec_t *e = arg;
    if (!atomic_load(&e->told))
        atomic_fetch_add(&e->offered_before_told, 1);
    return offer(&e->r, m);
}

static long cursor_rows(const char *dir, const char *instance)
{
    char path[600], sql[200];
    snprintf(path, sizeof path, "%s/sinks.db", dir);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM cursors WHERE instance='%s'", instance);
    sqlite3 *db = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* A new journal (new epoch) under the same cursors: the old epoch's cursor
 * is passed to the sink's lost() (retried until the sink takes it, before
 * anything of the new epoch is offered) and then removed. Then cursors of
 * instances no longer configured are removed (sc_sink_keep_only). */
static void test_old_epoch_lost_and_cleanup(void **state)
{
    (void)state;
    char d1[] = "/tmp/sc-test-sink-XXXXXX", d2[] = "/tmp/sc-test-sink-XXXXXX",
         dc[] = "/tmp/sc-test-sink-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    assert_non_null(mkdtemp(dc));
    made(d1);
    made(d2);
    made(dc);
    char err[512];
    epoch_rec_t e;
    memset(&e, 0, sizeof e);
    pthread_mutex_init(&e.r.mu, NULL);
    sc_sink_target_t t = {.offer = epoch_offer, .lost = epoch_lost,
                          .arg = &e};
    char *recv[] = {"energy."};

    /* epoch 1: 5 messages, 3 acknowledged */
    sc_journal_t *j = sc_journal_open(d1, SC_DURABILITY_NORMAL, err,
                                      sizeof err);
    assert_non_null(j);
    char epoch1[64];
    snprintf(epoch1, sizeof epoch1, "%s", sc_journal_epoch(j));
    append(j, "energy.lng.tasks", 5);
    atomic_store(&e.told, 1); /* nothing to tell in epoch 1 */
    sc_sink_feeder_t *f = sc_sink_feeder_new(j, dc, err, sizeof err);
    assert_non_null(f);
    sc_sink_port_t *p = sc_sink_attach(f, "bridge", recv, 1, 0, &t, err,
                                       sizeof err);
    assert_non_null(p);
    assert_int_equal(wait_n(&e.r, 5), 5);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 3), SC_OK);
    sc_sink_detach(&p);
    sc_sink_feeder_destroy(&f);
    sc_journal_close(&j);
    assert_int_equal(cursor_rows(dc, "bridge"), 1);

    /* epoch 2: the sink refuses the notice three times first */
    j = sc_journal_open(d2, SC_DURABILITY_NORMAL, err, sizeof err);
    assert_non_null(j);
    assert_string_not_equal(sc_journal_epoch(j), epoch1);
    append(j, "energy.lng.tasks", 2);
    e.r.n = 0;
    atomic_store(&e.told, 0);
    atomic_store(&e.refuse_left, 3);
    f = sc_sink_feeder_new(j, dc, err, sizeof err);
    assert_non_null(f);
    p = sc_sink_attach(f, "bridge", recv, 1, 0, &t, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(wait_n(&e.r, 2), 2);
    assert_int_equal(atomic_load(&e.offered_before_told), 0);
    assert_int_equal(e.r.n_lost, 1);
    assert_int_equal(e.r.lost_first, 4);
    assert_int_equal(e.r.lost_last, 0);
    assert_string_equal(e.epoch, epoch1);
    assert_int_equal(e.r.seq[0], 1);
    assert_int_equal(e.r.seq[1], 2);
    assert_int_equal(sc_sink_ack(p, "energy.lng.tasks", 2), SC_OK);
    /* a second sink that is no longer configured once detached */
    sc_sink_port_t *q = sc_sink_attach(f, "old", recv, 1, 0, &t, err,
                                       sizeof err);
    assert_non_null(q);
    assert_int_equal(wait_n(&e.r, 4), 4);
    assert_int_equal(sc_sink_ack(q, "energy.lng.tasks", 1), SC_OK);
    sc_sink_detach(&q);
    int64_t until = sc_mono_ms() + 10000;
    while (cursor_rows(dc, "old") != 1 && sc_mono_ms() < until)
        usleep(20000);
    assert_int_equal(cursor_rows(dc, "old"), 1);
    /* the old epoch's row is gone, the new one is there */
    assert_int_equal(cursor_rows(dc, "bridge"), 1);
    const char *keep[] = {"bridge"};
    sc_sink_keep_only(f, keep, 1);
    until = sc_mono_ms() + 10000;
    while (cursor_rows(dc, "old") != 0 && sc_mono_ms() < until)
        usleep(20000);
    assert_int_equal(cursor_rows(dc, "old"), 0);
    /* an attached instance is kept even if not listed */
    sc_sink_keep_only(f, NULL, 0);
    usleep(300000);
    assert_int_equal(cursor_rows(dc, "bridge"), 1);
    sc_sink_detach(&p);
    sc_sink_feeder_destroy(&f);
    assert_int_equal(cursor_rows(dc, "bridge"), 1);
    sc_journal_close(&j);
    pthread_mutex_destroy(&e.r.mu);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", d1, d2, dc);
    assert_int_equal(system(cmd), 0);
}

/* The SINK_LOST frame a child receives: both numbers survive, and a range
 * that ends before it starts is refused. */
static void test_sink_lost_frame(void **state)
{
    (void)state;
    sc_frame_t in = {.type = SC_FRAME_SINK_LOST,
                     .channel = {"energy.lng.tasks", 16},
                     .epoch = {"ep1", 3},
                     .seq = 5,
                     .last = 17};
    unsigned char *buf = NULL;
    size_t len = 0;
    assert_int_equal(sc_frame_encode(&in, &buf, &len), 0);
    sc_frame_t out;
    char err[128];
    assert_int_equal(sc_frame_decode(buf, len, &out, err, sizeof err), 0);
    assert_int_equal(out.type, SC_FRAME_SINK_LOST);
    assert_int_equal(out.seq, 5);
    assert_int_equal(out.last, 17);
    assert_int_equal(out.epoch.len, 3);
    free(buf);
    in.last = 0; /* an older epoch: everything after first */
    assert_int_equal(sc_frame_encode(&in, &buf, &len), 0);
    assert_int_equal(sc_frame_decode(buf, len, &out, err, sizeof err), 0);
    assert_int_equal(out.last, 0);
    free(buf);
    in.last = 4;
    assert_int_equal(sc_frame_encode(&in, &buf, &len), 0);
    assert_int_equal(sc_frame_decode(buf, len, &out, err, sizeof err), -1);
    free(buf);
    /* the other u64 frames are unchanged */
    sc_frame_t ack = {.type = SC_FRAME_SINK_ACK,
                      .channel = {"energy.lng.tasks", 16}, .seq = 42};
    assert_int_equal(sc_frame_encode(&ack, &buf, &len), 0);
    assert_int_equal(sc_frame_decode(buf, len, &out, err, sizeof err), 0);
    assert_int_equal(out.seq, 42);
    free(buf);
}

static void test_msg_id(void **state)
{
    (void)state;
    char a[128], b[128];
    assert_int_equal(nb_msg_id(a, sizeof a, "ep1", "energy.lng.tasks", 42),
                     (int)strlen("ep1:energy.lng.tasks:42"));
    assert_string_equal(a, "ep1:energy.lng.tasks:42");
    /* same message, same id (a republish is a duplicate) */
    nb_msg_id(b, sizeof b, "ep1", "energy.lng.tasks", 42);
    assert_string_equal(a, b);
    /* any of the three differs: a different id */
    nb_msg_id(b, sizeof b, "ep2", "energy.lng.tasks", 42);
    assert_string_not_equal(a, b);
    nb_msg_id(b, sizeof b, "ep1", "energy.lng.task", 42);
    assert_string_not_equal(a, b);
    nb_msg_id(b, sizeof b, "ep1", "energy.lng.tasks", 43);
    assert_string_not_equal(a, b);
    /* too small or missing parts: refused, never truncated */
    volatile size_t small = 10; /* not a compile-time size */
    assert_int_equal(nb_msg_id(a, small, "ep1", "energy.lng.tasks", 42), -1);
    assert_int_equal(nb_msg_id(a, sizeof a, "", "energy.lng.tasks", 1), -1);
    assert_int_equal(nb_msg_id(a, sizeof a, "ep1", NULL, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_ack_resume_gap),
        cmocka_unit_test(test_status_lag),
        cmocka_unit_test(test_stuck_sink_delays_no_other),
        cmocka_unit_test(test_old_epoch_lost_and_cleanup),
        cmocka_unit_test(test_sink_lost_frame),
        cmocka_unit_test(test_msg_id),
    };
    return cmocka_run_group_tests(tests, NULL, remove_made);
}
