/*
 * test_ratelimit.c - rate-limited logging (core/broker/ratelimit): a
 * flood from one source or from many sources writes a bounded number of
 * lines, every event is still counted, and summaries are written once due.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/ratelimit.h"

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

static int setup(void **state)
{
    (void)state;
    fake_now = 1000000;
    sc_ratelimit_set_clock(fake_clock);
    sc_log_set_level(SC_L_ERROR); /* keep the test output short */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sc_ratelimit_set_clock(NULL);
    return 0;
}

static void test_one_source_burst_then_rate(void **state)
{
    (void)state;
    sc_ratelimit_t *rl = sc_ratelimit_new("test", 2.0, 5, 8);
    assert_non_null(rl);
    int written = 0;
    for (int i = 0; i < 1000; i++)
        written += sc_ratelimit_log(rl, "10.0.0.1", SC_L_WARN, "line %d", i);
    assert_int_equal(written, 5);
    assert_int_equal(sc_ratelimit_suppressed(rl), 995);
    /* one second later: two more tokens */
    fake_now += 1000;
    written = 0;
    for (int i = 0; i < 100; i++)
        written += sc_ratelimit_log(rl, "10.0.0.1", SC_L_WARN, "line %d", i);
    assert_int_equal(written, 2);
    assert_int_equal(sc_ratelimit_written(rl), 7);
    assert_int_equal(sc_ratelimit_suppressed(rl), 1093);
    /* the summary is not due before the interval, then written once */
    assert_int_equal(sc_ratelimit_flush(rl), 0);
    fake_now += SC_RATELIMIT_SUMMARY_MS;
    assert_int_equal(sc_ratelimit_flush(rl), 1);
    assert_int_equal(sc_ratelimit_flush(rl), 0);
    sc_ratelimit_destroy(&rl);
    assert_null(rl);
}

static void test_sources_are_independent(void **state)
{
    (void)state;
    sc_ratelimit_t *rl = sc_ratelimit_new("test", 1.0, 3, 8);
    for (int i = 0; i < 50; i++)
        sc_ratelimit_log(rl, "a", SC_L_WARN, "x");
    /* a flooding source does not silence another one */
    assert_true(sc_ratelimit_log(rl, "b", SC_L_WARN, "y"));
    sc_ratelimit_destroy(&rl);
}

static void test_many_sources_bounded(void **state)
{
    (void)state;
    const size_t max_sources = 16;
    sc_ratelimit_t *rl = sc_ratelimit_new("test", 1.0, 2, max_sources);
    int written = 0;
    char src[32];
    /* 100,000 distinct sources at once: the table and the overflow
     * bucket bound what is written */
    for (int i = 0; i < 100000; i++) {
        snprintf(src, sizeof src, "10.%d.%d.%d", i >> 16, (i >> 8) & 255,
                 i & 255);
        written += sc_ratelimit_log(rl, src, SC_L_WARN, "refused %s", src);
    }
    assert_true(written <= (int)((max_sources + 1) * 2));
    assert_int_equal(sc_ratelimit_written(rl) + sc_ratelimit_suppressed(rl),
                     100000);
    /* summaries: at most one per table entry per interval */
    fake_now += SC_RATELIMIT_SUMMARY_MS;
    int sums = sc_ratelimit_flush(rl);
    assert_true(sums >= 1 && sums <= (int)max_sources + 1);
    sc_ratelimit_destroy(&rl);
}

static void test_idle_entries_reused(void **state)
{
    (void)state;
    sc_ratelimit_t *rl = sc_ratelimit_new("test", 1.0, 1, 2);
    assert_true(sc_ratelimit_log(rl, "a", SC_L_WARN, "x"));
    assert_true(sc_ratelimit_log(rl, "b", SC_L_WARN, "x"));
    /* table full, both buckets empty: "c" shares the overflow bucket */
    assert_true(sc_ratelimit_log(rl, "c", SC_L_WARN, "x"));
    assert_false(sc_ratelimit_log(rl, "d", SC_L_WARN, "x"));
    /* later, a and b are idle again and their slots are reused */
    fake_now += 5000;
    assert_true(sc_ratelimit_log(rl, "e", SC_L_WARN, "x"));
    assert_true(sc_ratelimit_log(rl, "f", SC_L_WARN, "x"));
    sc_ratelimit_destroy(&rl);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(sc_ratelimit_new("x", 0, 1, 1));
    assert_null(sc_ratelimit_new("x", 1, 0, 1));
    assert_null(sc_ratelimit_new("x", 1, 1, 0));
    assert_false(sc_ratelimit_log(NULL, "a", SC_L_WARN, "x"));
    sc_ratelimit_t *rl = sc_ratelimit_new("x", 1, 1, 1);
    /* a NULL source and an over-long one are fine */
    char longname[400];
    memset(longname, 'z', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_true(sc_ratelimit_log(rl, NULL, SC_L_WARN, "x"));
    sc_ratelimit_log(rl, longname, SC_L_WARN, "x");
    sc_ratelimit_destroy(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_source_burst_then_rate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sources_are_independent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_sources_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_entries_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
