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

static void test_cursor_ack_resume_gap(void **state)
{
    (void)state;
    char dir[] = "/tmp/sc-test-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
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
    /* the stuck one was offered (and refused) meanwhile */
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
        cmocka_unit_test(test_msg_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
