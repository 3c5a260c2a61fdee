/*
 * test_sinkwin.c - a sink's window (core/host/sinkwin.c) and the host's
 * use of it: a sink plugin that declares max_inflight N in its
 * sc_sink_def_t is never handed more than N messages it has not
 * acknowledged (tests/plugins/holdsink.so through the plugin test kit,
 * which runs the broker's host code).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sectorcast/plugin.h>
#include <sectorcast/plugintest.h>

#include "host/sinkwin.h"

static void test_window_counts_and_forgets(void **state)
{
    (void)state;
    assert_null(sc_sinkwin_new(0)); /* no window */
    sc_sinkwin_t *w = sc_sinkwin_new(4);
    assert_non_null(w);
    assert_int_equal(sc_sinkwin_max(w), 4);
    assert_int_equal(sc_sinkwin_delivered(w, "a.x", "e1", 1), 0);
    assert_int_equal(sc_sinkwin_delivered(w, "a.x", "e1", 2), 0);
    assert_int_equal(sc_sinkwin_delivered(w, "a.x", "e1", 2), 0); /* again */
    assert_int_equal(sc_sinkwin_delivered(w, "b.y", "e1", 7), 0);
    assert_int_equal(sc_sinkwin_open(w), 3);
    assert_false(sc_sinkwin_full(w));
    assert_int_equal(sc_sinkwin_delivered(w, "b.y", "e1", 9), 0);
    assert_true(sc_sinkwin_full(w));
    sc_sinkwin_acked(w, "a.x", 1); /* cumulative, per channel */
    assert_int_equal(sc_sinkwin_open(w), 3);
    sc_sinkwin_acked(w, "c.z", 100); /* nothing open there */
    assert_int_equal(sc_sinkwin_open(w), 3);
    sc_sinkwin_acked(w, "b.y", 8);
    assert_int_equal(sc_sinkwin_open(w), 2);
    /* lost in another epoch: not these */
    sc_sinkwin_lost(w, "b.y", "e0", 100);
    assert_int_equal(sc_sinkwin_open(w), 2);
    sc_sinkwin_lost(w, "b.y", "e1", 9);
    assert_int_equal(sc_sinkwin_open(w), 1);
    /* a new epoch forgets the channel's older seqs */
    assert_int_equal(sc_sinkwin_delivered(w, "a.x", "e2", 1), 0);
    assert_int_equal(sc_sinkwin_open(w), 1);
    sc_sinkwin_acked(w, "a.x", 1);
    assert_int_equal(sc_sinkwin_open(w), 0);
    sc_sinkwin_destroy(&w);
    assert_null(w);
    w = sc_sinkwin_new(1u << 30);
    assert_int_equal(sc_sinkwin_max(w), SC_SINKWIN_MAX);
    sc_sinkwin_destroy(&w);
}

/* against a plain model: random deliveries, acks and losses over many
 * channels (the table grows and shrinks, rings wrap and grow) */
static void test_window_matches_model(void **state)
{
    (void)state;
    enum { CH = 300, MAX = 2000 };
    static uint64_t next[CH], acked[CH];
    static unsigned char open_[CH][4096];
    memset(next, 0, sizeof next);
    memset(acked, 0, sizeof acked);
    memset(open_, 0, sizeof open_);
    sc_sinkwin_t *w = sc_sinkwin_new(MAX);
    assert_non_null(w);
    size_t model = 0;
    unsigned x = 12345;
    char name[32];
    for (int step = 0; step < 200000; step++) {
        x = x * 1103515245u + 12345u;
        int c = (int)((x >> 8) % CH), op = (int)((x >> 20) % 10);
        snprintf(name, sizeof name, "ch.%d", c);
        if (op < 6 && !sc_sinkwin_full(w) && next[c] < 4000) {
            uint64_t seq = ++next[c];
            assert_int_equal(sc_sinkwin_delivered(w, name, "e", seq), 0);
            open_[c][seq] = 1;
            model++;
        } else if (op < 9 && next[c] > acked[c]) {
            uint64_t to = acked[c] + 1 + (x >> 4) % (next[c] - acked[c]);
            for (uint64_t s = acked[c] + 1; s <= to; s++)
                if (open_[c][s]) {
                    open_[c][s] = 0;
                    model--;
                }
            acked[c] = to;
            if (op == 8)
                sc_sinkwin_lost(w, name, "e", to);
            else
                sc_sinkwin_acked(w, name, to);
        }
        assert_int_equal(sc_sinkwin_open(w), model);
        assert_true(model <= MAX);
    }
    sc_sinkwin_destroy(&w);
}

static void holdsink_path(char *so, size_t n)
{
    char dir[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", dir, sizeof dir - 1);
    assert_true(len > 0);
    dir[len] = '\0';
    *strrchr(dir, '/') = '\0';
    snprintf(so, n, "%s/plugins/holdsink.so", dir);
}

static sc_pt_t *holdsink(const char *settings[][2])
{
    char so[PATH_MAX + 32], err[512];
    holdsink_path(so, sizeof so);
    static const char *const chans[] = {"energy.", NULL};
    sc_pt_t *pt = sc_pt_new(so, "hold", chans, err, sizeof err);
    if (!pt)
        fail_msg("%s", err);
    for (size_t i = 0; settings[i][0]; i++)
        assert_int_equal(sc_pt_set(pt, settings[i][0], settings[i][1]), 0);
    assert_int_equal(sc_pt_start(pt), SC_OK);
    assert_int_equal(sc_pt_is_sink(pt), 1);
    return pt;
}

/* seqs first..last of channel (epoch e1), each taken by the plugin */
static void deliver_all(sc_pt_t *pt, const char *channel, uint64_t first,
                        uint64_t last, const char *jws)
{
    for (uint64_t s = first; s <= last; s++)
        assert_int_equal(sc_pt_sink_deliver(pt, channel, "e1", s, jws), SC_OK);
}

/* the host holds the (max_inflight + 1)th message until an ack */
static void test_host_holds_at_max_inflight(void **state)
{
    (void)state;
    char ack[] = "/tmp/sc-test-sinkwin-XXXXXX";
    int fd = mkstemp(ack);
    assert_true(fd >= 0);
    close(fd);
    unlink(ack); /* no acks until it exists */
    const char *set[][2] = {{"max_inflight", "3"}, {"ack_file", ack},
                            {"tick_ms", "1"}, {NULL, NULL}};
    sc_pt_t *pt = holdsink(set);
    const char *jws = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";
    deliver_all(pt, "energy.lng.tasks", 1, 3, jws);
    /* full: held without reaching the plugin, on any channel */
    assert_int_equal(sc_pt_sink_deliver(pt, "energy.lng.tasks", "e1", 4, jws),
                     SC_ERR_LIMIT);
    assert_int_equal(sc_pt_sink_deliver(pt, "energy.h2.tasks", "e1", 1, jws),
                     SC_ERR_LIMIT);
    assert_true(sc_pt_log_find(pt, 0, "delivered energy.lng.tasks 4") < 0);
    assert_true(sc_pt_log_find(pt, 0, "delivered energy.h2.tasks") < 0);
    /* the plugin acknowledges (on its timer): room again */
    FILE *f = fopen(ack, "w");
    assert_non_null(f);
    fclose(f);
    assert_true(sc_pt_run_for(pt, 30) >= 1);
    assert_int_equal(sc_pt_sink_acked(pt, "energy.lng.tasks"), 3);
    unlink(ack);
    deliver_all(pt, "energy.lng.tasks", 4, 6, jws);
    assert_int_equal(sc_pt_sink_deliver(pt, "energy.h2.tasks", "e1", 1, jws),
                     SC_ERR_LIMIT);
    assert_true(sc_pt_log_find(pt, 0, "window overrun") < 0);
    sc_pt_destroy(&pt);
}

/* a sink that acknowledges inside deliver() is never held */
static void test_ack_inside_deliver_is_counted(void **state)
{
    (void)state;
    const char *set[][2] = {{"max_inflight", "1"}, {"ack_inside", "1"},
                            {NULL, NULL}};
    sc_pt_t *pt = holdsink(set);
    deliver_all(pt, "energy.lng.tasks", 1, 10, "a.b.c");
    assert_int_equal(sc_pt_sink_acked(pt, "energy.lng.tasks"), 10);
    assert_true(sc_pt_log_find(pt, 0, "window overrun") < 0);
    sc_pt_destroy(&pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_counts_and_forgets),
        cmocka_unit_test(test_window_matches_model),
        cmocka_unit_test(test_host_holds_at_max_inflight),
        cmocka_unit_test(test_ack_inside_deliver_is_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
