/*
 * test_example.c - unit test of example.so with the installed plugin test
 * kit (<sectorcast/plugintest.h>, pkg-config sectorcast-plugintest). No
 * broker: the kit runs the broker's own plugin host in this process.
 *
 *     make test        (runs ./test_example ./example.so)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sectorcast/plugintest.h>

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static const char *const grant[] = { "example.", NULL };

static sc_pt_t *load(const char *so)
{
    char err[512];
    sc_pt_t *pt = sc_pt_new(so, "example", grant, err, sizeof err);
    if (!pt) {
        fprintf(stderr, "cannot load %s: %s\n", so, err);
        exit(1);
    }
    return pt;
}

/* It publishes one tick per interval on its channel. */
static void test_ticks(const char *so)
{
    sc_pt_t *pt = load(so);
    CHECK(sc_pt_set(pt, "channel", "example.ticks") == SC_OK);
    CHECK(sc_pt_set(pt, "interval_ms", "50") == SC_OK);
    CHECK(sc_pt_start(pt) == SC_OK);
    CHECK(sc_pt_fire_timers(pt) == 1);
    CHECK(sc_pt_fire_timers(pt) == 1);
    CHECK(sc_pt_msg_count(pt) == 2);
    const sc_pt_msg_t *m = sc_pt_msg_at(pt, 1);
    CHECK(m && strcmp(m->channel, "example.ticks") == 0);
    CHECK(m && strcmp(m->kind, "example.tick") == 0);
    CHECK(m && strstr(m->data, "\"tick\":2") != NULL);
    CHECK(m && strstr(m->data, "\"note\":\"hello\"") != NULL);
    sc_pt_destroy(&pt);
}

/* The table refuses what it declares invalid, where it is given. */
static void test_table(const char *so)
{
    sc_pt_t *pt = load(so);
    CHECK(sc_pt_set(pt, "interval_ms", "5") == SC_ERR_ARG);
    CHECK(strstr(sc_pt_error(pt), "out of range") != NULL);
    CHECK(sc_pt_set(pt, "note", "bonjour") == SC_ERR_ARG);
    CHECK(sc_pt_set(pt, "colour", "blue") == SC_ERR_NO_SETTING);
    /* channel is required */
    CHECK(sc_pt_start(pt) == SC_ERR_BAD_SETTING);
    sc_pt_destroy(&pt);
}

/* check() refuses a channel that is not granted, before init. */
static void test_check(const char *so)
{
    sc_pt_t *pt = load(so);
    CHECK(sc_pt_set(pt, "channel", "other.ticks") == SC_OK);
    CHECK(sc_pt_start(pt) == SC_ERR_BAD_SETTING);
    CHECK(sc_pt_log_find(pt, 0, "setting 'channel': \"other.ticks\" is not "
                         "granted") >= 0);
    CHECK(sc_pt_timer_count(pt) == 0);
    sc_pt_destroy(&pt);
}

int main(int argc, char **argv)
{
    const char *so = argc > 1 ? argv[1] : "./example.so";
    test_ticks(so);
    test_table(so);
    test_check(so);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_example: all checks passed\n");
    return 0;
}
