/*
 * test_metrics.c - the metrics registry (core/broker/metrics): kinds,
 * labels, escaping, histogram buckets, the label-set bound, and that
 * concurrent updates are not lost. The exposition text is validated by
 * promtool in tests/integration/test_ops.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/metrics.h"

static int reset(void **state)
{
    (void)state;
    sc_metrics_reset();
    return 0;
}

static void test_counter_labels(void **state)
{
    (void)state;
    sc_metric_t *c = sc_metric_counter("t_published_total", "Published.",
                                       "channel,plugin");
    assert_non_null(c);
    assert_ptr_equal(c, sc_metric_counter("t_published_total", "x",
                                          "channel,plugin"));
    assert_null(sc_metric_gauge("t_published_total", "x", "channel,plugin"));
    assert_null(sc_metric_counter("t_published_total", "x", "channel"));
    sc_metric_add(c, 1, "energy.a", "energy");
    sc_metric_add(c, 2, "energy.a", "energy");
    sc_metric_add(c, 1, "we\"ird\\\n", "p");
    sc_metric_add(c, -5, "energy.a", "energy"); /* ignored: counter */
    assert_true(sc_metric_value(c, "energy.a", "energy") == 3);
    char *t = sc_metrics_render();
    assert_non_null(t);
    assert_non_null(strstr(t, "# TYPE t_published_total counter\n"));
    assert_non_null(strstr(t, "t_published_total{channel=\"energy.a\","
                              "plugin=\"energy\"} 3\n"));
    assert_non_null(strstr(t, "channel=\"we\\\"ird\\\\\\n\""));
    free(t);
}

static void test_invalid(void **state)
{
    (void)state;
    assert_null(sc_metric_counter("1bad", "", NULL));
    assert_null(sc_metric_counter("bad-name", "", NULL));
    assert_null(sc_metric_counter("ok", "", "a,b,c,d"));
    assert_null(sc_metric_counter("ok", "", "le"));
    assert_null(sc_metric_counter("ok", "", "a,"));
    double b[] = {1, 1};
    assert_null(sc_metric_histogram("h", "", NULL, b, 2));
    sc_metric_add(NULL, 1, "x"); /* no-op */
}

static void test_histogram(void **state)
{
    (void)state;
    double b[] = {0.001, 0.01, 0.1};
    sc_metric_t *h = sc_metric_histogram("t_sign_seconds", "Sign time.",
                                         NULL, b, 3);
    assert_non_null(h);
    sc_metric_observe(h, 0.0005);
    sc_metric_observe(h, 0.005);
    sc_metric_observe(h, 0.05);
    sc_metric_observe(h, 5);
    char *t = sc_metrics_render();
    assert_non_null(strstr(t, "t_sign_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "t_sign_seconds_bucket{le=\"0.01\"} 2\n"));
    assert_non_null(strstr(t, "t_sign_seconds_bucket{le=\"0.1\"} 3\n"));
    assert_non_null(strstr(t, "t_sign_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "t_sign_seconds_count 4\n"));
    free(t);
}

static void test_series_bound(void **state)
{
    (void)state;
    sc_metric_t *g = sc_metric_gauge("t_lag", "Lag.", "sink");
    char name[32];
    for (int i = 0; i < SC_METRIC_MAX_SERIES + 50; i++) {
        snprintf(name, sizeof name, "s%d", i);
        sc_metric_set(g, 1, name);
    }
    sc_metric_add(g, 1, "s0");
    assert_true(sc_metric_value(g, "s0") == 2);
    assert_true(sc_metric_value(g, "s1030") == 0);
    char *t = sc_metrics_render();
    assert_non_null(strstr(t, "t_lag{sink=\"_other\"} 1\n"));
    assert_non_null(strstr(t, "sectorcast_metrics_series_dropped_total 50\n"));
    free(t);
}

/* Label sets are found by an index: each of many keeps its own value
 * (sc_metric_value finds them by a scan, independently), also after a
 * clear re-adds them in another order. */
static void test_many_series(void **state)
{
    (void)state;
    sc_metric_t *c = sc_metric_counter("t_many_total", "Many.", "ch,pl");
    char a[32], b[32];
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < SC_METRIC_MAX_SERIES; i++) {
                int j = round ? SC_METRIC_MAX_SERIES - 1 - i : i;
                snprintf(a, sizeof a, "c%d", j / 7);
                snprintf(b, sizeof b, "p%d", j % 7);
                sc_metric_add(c, j + 1, a, b);
            }
        for (int j = 0; j < SC_METRIC_MAX_SERIES; j++) {
            snprintf(a, sizeof a, "c%d", j / 7);
            snprintf(b, sizeof b, "p%d", j % 7);
            assert_true(sc_metric_value(c, a, b) == 3.0 * (j + 1));
        }
        assert_true(sc_metric_value(c, "_other", "_other") == 0);
        sc_metric_clear(c);
        assert_true(sc_metric_value(c, "c0", "p0") == 0);
    }
    /* the same characters split differently are two label sets */
    sc_metric_add(c, 1, "ab", "c");
    sc_metric_add(c, 2, "a", "bc");
    assert_true(sc_metric_value(c, "ab", "c") == 1);
    assert_true(sc_metric_value(c, "a", "bc") == 2);
}

static sc_metric_t *g_par;

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        sc_metric_add(g_par, 1, (i & 1) ? "a" : "b");
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    g_par = sc_metric_counter("t_par_total", "", "x");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, adder, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(sc_metric_value(g_par, "a") == 20000);
    assert_true(sc_metric_value(g_par, "b") == 20000);
}

static int hook_calls;
static void hook(void *ud)
{
    hook_calls++;
    sc_metric_set((sc_metric_t *)ud, 42);
}

static void test_collect_hook(void **state)
{
    (void)state;
    sc_metric_t *g = sc_metric_gauge("t_journal_bytes", "Size.", NULL);
    assert_int_equal(sc_metrics_on_collect(hook, g), 0);
    char *t = sc_metrics_render();
    assert_int_equal(hook_calls, 1);
    assert_non_null(strstr(t, "t_journal_bytes 42\n"));
    free(t);
    sc_metrics_off_collect(hook, g);
    free(sc_metrics_render());
    assert_int_equal(hook_calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_labels, reset),
        cmocka_unit_test_setup(test_invalid, reset),
        cmocka_unit_test_setup(test_histogram, reset),
        cmocka_unit_test_setup(test_series_bound, reset),
        cmocka_unit_test_setup(test_many_series, reset),
        cmocka_unit_test_setup(test_threads, reset),
        cmocka_unit_test_setup(test_collect_hook, reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sc_metrics_reset();
    return rc;
}
