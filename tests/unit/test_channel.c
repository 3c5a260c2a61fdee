/*
 * test_channel.c - channel name, subtree and topic syntax (core/common).
 *
 * Table-driven: every row is one input and the expected verdict.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/channel.h"

static void test_channel_names(void **state)
{
    (void)state;
    static const struct { const char *name; bool ok; } rows[] = {
        {"energy", true},
        {"energy.nuclear.tasks", true},
        {"semis-ai.standards", true},
        {"a", true},
        {"0.1.2", true},
        {"defence.mro-ships.alerts", true},
        {"", false},
        {".", false},
        {"energy.", false},          /* trailing dot: a subtree, not a name */
        {".energy", false},
        {"energy..tasks", false},
        {"Energy", false},           /* uppercase */
        {"energy_tasks", false},
        {"energy tasks", false},
        {"energy/tasks", false},
        {"energy.*", false},
        {"énergie", false},          /* non-ASCII */
        {"energy\t", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (sc_channel_valid(rows[i].name) != rows[i].ok)
            fail_msg("sc_channel_valid(\"%s\") should be %d", rows[i].name,
                     rows[i].ok);
    }
    assert_false(sc_channel_valid(NULL));
}

static void test_channel_max_length(void **state)
{
    (void)state;
    char buf[SC_CHANNEL_MAX + 3];
    memset(buf, 'a', sizeof buf);
    buf[SC_CHANNEL_MAX] = '\0';
    assert_true(sc_channel_valid(buf));
    buf[SC_CHANNEL_MAX] = 'a';
    buf[SC_CHANNEL_MAX + 1] = '\0';
    assert_false(sc_channel_valid(buf));

    /* Subtree: the limit excludes the trailing dot. */
    memset(buf, 'a', sizeof buf);
    buf[SC_CHANNEL_MAX] = '.';
    assert_true(sc_subtree_valid(buf, SC_CHANNEL_MAX + 1));
    buf[SC_CHANNEL_MAX] = 'a';
    buf[SC_CHANNEL_MAX + 1] = '.';
    assert_false(sc_subtree_valid(buf, SC_CHANNEL_MAX + 2));
}

static void test_subtrees(void **state)
{
    (void)state;
    static const struct { const char *s; bool ok; } rows[] = {
        {"energy.", true},
        {"energy.nuclear.tasks.", true},
        {"a.b-c.0.", true},
        {"", false},
        {".", false},
        {"..", false},
        {"energy", false},
        {"energy..", false},
        {".energy.", false},
        {"Energy.", false},
        {"energy.#.", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (sc_subtree_valid(rows[i].s, strlen(rows[i].s)) != rows[i].ok)
            fail_msg("sc_subtree_valid(\"%s\") should be %d", rows[i].s,
                     rows[i].ok);
    }
    /* Embedded NUL and length honoured: no reliance on termination. */
    assert_false(sc_subtree_valid("ener\0gy.", 8));
    assert_true(sc_subtree_valid("energy.nuclear.", 7));
    assert_false(sc_subtree_valid("energy.nuclear.", 6));
    /* Exactly-sized heap buffer, not NUL-terminated (ASan checks reads). */
    char *heap = malloc(7);
    memcpy(heap, "energy.", 7);
    assert_true(sc_subtree_valid(heap, 7));
    free(heap);
    assert_false(sc_subtree_valid(NULL, 0));
}

static void test_covers(void **state)
{
    (void)state;
    static const struct { const char *outer, *inner; bool ok; } rows[] = {
        {"energy.", "energy.", true},
        {"energy.", "energy.nuclear.tasks.", true},
        {"energy.nuclear.", "energy.nuclear.tasks.", true},
        {"energy.nuclear.tasks.", "energy.nuclear.tasks.", true},
        {"energy.nuclear.tasks.", "energy.nuclear.", false},
        {"energy.", "energy-x.tasks.", false},  /* not a segment prefix */
        {"energy.", "defence.", false},
        {"energy", "energy.", false},           /* outer is no subtree */
        {"", "energy.", false},
        {"energy.", "energy", false},           /* inner is no subtree */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (sc_subtree_covers(rows[i].outer, rows[i].inner,
                              strlen(rows[i].inner)) != rows[i].ok)
            fail_msg("sc_subtree_covers(\"%s\", \"%s\") should be %d",
                     rows[i].outer, rows[i].inner, rows[i].ok);
    }
}

static void test_topic(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sc_channel_topic("energy.nuclear.tasks", out,
                                      sizeof out), 21);
    assert_string_equal(out, "energy.nuclear.tasks.");
    assert_int_equal(sc_channel_topic("a", out, 3), 2);
    assert_string_equal(out, "a.");
    assert_int_equal(sc_channel_topic("ab", out, 3), -1); /* no room */
    assert_int_equal(sc_channel_topic("Energy", out, sizeof out), -1);
    assert_int_equal(sc_channel_topic("energy.", out, sizeof out), -1);
    assert_int_equal(sc_channel_topic(NULL, out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_names),
        cmocka_unit_test(test_channel_max_length),
        cmocka_unit_test(test_subtrees),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_topic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
