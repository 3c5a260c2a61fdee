/*
 * test_semis_ai.c - the semiconductors & AI plugin, driven through the
 * plugin test kit.
 *
 * Each test copies the demo register (conf/registers/semis_ai) into a
 * fresh temporary directory, loads the semis_ai.so built next to this test
 * binary, changes files and checks exactly which messages the plugin
 * published; restarts reuse the test kit's state store, as the broker
 * keeps plugin state across its restarts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support/sectortest.h"

static char plugin_so[PATH_MAX];
static char demo_register[PATH_MAX];

static const char *const all_chans[] = { "semis.", "ai.", NULL };

/* The demo rules of conf/sectorcast.conf for this sector. */
#define DEMO_RULES \
    "( { indicator = \"chip_lead_time_weeks\"; op = \">\"; threshold = 20; severity = \"Moderate\"; escalate = ( { threshold = 26; severity = \"Severe\"; } ); clear = 18; }, " \
    "  { indicator = \"neon_inventory_weeks\"; op = \"<\"; threshold = 8; severity = \"Moderate\"; escalate = ( { threshold = 5; severity = \"Severe\"; } ); clear = 10; urgency = \"Expected\"; }, " \
    "  { indicator = \"ai_accelerator_fill_rate_pct\"; op = \"<\"; threshold = 70; severity = \"Moderate\"; escalate = ( { threshold = 50; severity = \"Severe\"; } ); clear = 80; consecutive = 2; } ) "

/* the demo register: 13 tasks, 6 standards */
#define N_TASKS 13
#define N_STANDARDS 6

/* -------------------------------------------------------- fixtures -- */

static int
setup(void **state)
{
    return st_setup(state, plugin_so, "semis_ai", demo_register);
}

/* ------------------------------------------------------------ tests -- */

static void
test_start_publishes_register(void **state)
{
    sectortest_t *f = *state;
    sc_pt_t *fh = st_run(f, all_chans, NULL, 0);
    /* by file name (indicators.json publishes nothing itself), then
     * array order; channel <subsector>.tasks / .standards */
    static const char *const files[] = { "standards.json", "tasks.json" };
    static const char *const arrays[] = { "standards", "tasks" };
    size_t i = 0;
    for (int fi = 0; fi < 2; fi++) {
        json_t *root = st_load(f, files[fi]);
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(root, arrays[fi]), k, e) {
            char ch[64];
            snprintf(ch, sizeof ch, "%s.%s",
                     json_string_value(json_object_get(e, "subsector")),
                     arrays[fi]);
            const char *id = json_string_value(json_object_get(e, "id"));
            st_assert_msg(fh, i, ch, st_expected_kind(arrays[fi], e), id);
            char *canon = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
            assert_string_equal(sc_pt_msg_at(fh, i)->data, canon);
            free(canon);
            i++;
        }
        json_decref(root);
    }
    assert_int_equal(i, N_TASKS + N_STANDARDS);
    assert_int_equal(sc_pt_msg_count(fh), i);
    assert_int_equal(sc_pt_refused_count(fh), 0);
    assert_int_equal(st_poll(f), 0);
    /* what was published is in the state store */
    assert_int_equal(sc_pt_store_count(f->store, "semis_ai", "task/"),
                     N_TASKS);
    assert_int_equal(sc_pt_store_count(f->store, "semis_ai",
                                          "standard/"), N_STANDARDS);
}

static void
test_change_gives_exactly_expected(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, NULL, 0);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-AI-002"), "status",
                        json_string("in-progress"));
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-SUP-002"), "status",
                        json_string("completed"));
    st_remove_entry(t, "tasks", "KUS-SC-WF-002");
    json_array_append_new(json_object_get(t, "tasks"), json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:[s], s:[s]}, s:[s], s:[{s:s, s:s}]}",
        "id", "KUS-SC-AI-005", "subsector", "ai",
        "title", "Joint AI testbed for semiconductor design automation",
        "track", "technology-demonstration", "status", "planned",
        "owners", "kr", "Ministry of Science and ICT (MSIT)",
        "us", "National Science Foundation (NSF)",
        "ai_topics", "joint-governance",
        "milestones", "title", "Testbed charter", "due", "2026-12-31"));
    st_save(f, "tasks.json", t);
    json_t *s = st_load(f, "standards.json");
    json_object_set_new(st_entry(s, "standards", "KUS-SC-STD-AI-001"),
                        "stage", json_string("published"));
    json_object_set_new(st_entry(s, "standards", "KUS-SC-STD-SEMI-002"),
                        "stage", json_string("working-draft"));
    st_save(f, "standards.json", s);

    assert_int_equal(st_poll(f), 6);
    st_assert_msg(f->fh, 0, "semis.standards", "standard.updated",
                  "KUS-SC-STD-SEMI-002");
    st_assert_msg(f->fh, 1, "ai.standards", "standard.published",
                  "KUS-SC-STD-AI-001");
    st_assert_msg(f->fh, 2, "semis.tasks", "task.closed", "KUS-SC-SUP-002");
    st_assert_msg(f->fh, 3, "semis.tasks", "task.closed", "KUS-SC-WF-002");
    st_assert_msg(f->fh, 4, "ai.tasks", "task.updated", "KUS-SC-AI-002");
    st_assert_msg(f->fh, 5, "ai.tasks", "task.created", "KUS-SC-AI-005");
    assert_non_null(strstr(sc_pt_msg_at(f->fh, 4)->data,
                           "\"status\":\"in-progress\""));
    assert_int_equal(st_poll(f), 0);
}

static void
test_invalid_entries_reported_and_skipped(void **state)
{
    sectortest_t *f = *state;
    json_t *t = st_load(f, "tasks.json");
    json_t *arr = json_object_get(t, "tasks");
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-SC-AI-009",
        "subsector", "ai", "title", "Chip diplomacy", "track",
        "chip-diplomacy", "status", "planned", "owners", "kr", "MSIT"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}, s:[s]}", "id", "KUS-SC-AI-010",
        "subsector", "ai", "title", "Privacy", "status", "planned",
        "owners", "kr", "PIPC", "ai_topics", "privacy"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}, s:[s,s]}", "id", "KUS-SC-AI-011",
        "subsector", "ai", "title", "Twice", "status", "planned",
        "owners", "kr", "MSIT", "ai_topics", "accountability",
        "accountability"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-SC-SUP-009",
        "subsector", "energy", "title", "Wrong sector", "status", "planned",
        "owners", "kr", "MOTIE"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}, s:s}", "id", "KUS-SC-SUP-010",
        "subsector", "semis", "title", "Items", "status", "planned",
        "owners", "kr", "MOTIE", "critical_items", "HBM"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[]}}", "id", "KUS-SC-SUP-011",
        "subsector", "semis", "title", "Nobody", "status", "planned",
        "owners", "kr"));
    st_save(f, "tasks.json", t);
    json_t *s = st_load(f, "standards.json");
    json_array_append_new(json_object_get(s, "standards"), json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-SC-STD-AI-009",
        "subsector", "ai", "title", "No body", "stage", "proposal",
        "owners", "kr", "KATS"));
    st_save(f, "standards.json", s);

    st_run(f, all_chans, NULL, 0);
    /* every valid entry publishes */
    assert_int_equal(sc_pt_msg_count(f->fh), N_TASKS + N_STANDARDS);
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-AI-009: \"track\": "
                     "\"chip-diplomacy\" is not one of: "
                     "supply-chain-early-warning, export-control-alignment, "
                     "rd-investment, workforce-training, ");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-AI-010: "
                     "\"ai_topics\"[0]: \"privacy\" is not one of: "
                     "data-movement, accountability, international-norms, "
                     "joint-governance; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-AI-011: "
                     "\"ai_topics\"[1]: \"accountability\" is listed "
                     "twice; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-SUP-009: \"subsector\": "
                     "\"energy\" is not one of: semis, ai; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-SUP-010: "
                     "\"critical_items\" must be an array of strings; "
                     "skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-SUP-011: \"owners\" "
                     "names no organisation; skipped");
    st_assert_logged(f->fh, "standards.json: entry KUS-SC-STD-AI-009: missing "
                     "\"body\"; skipped");
    for (size_t i = 0; i < sc_pt_msg_count(f->fh); i++)
        assert_null(strstr(sc_pt_msg_at(f->fh, i)->key, "-009"));

    /* a bad edit keeps the previous version; the good edit goes out */
    t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-EXP-001"), "track",
                        json_string("sanctions"));
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-RD-001"), "status",
                        json_string("at-risk"));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "semis.tasks", "task.updated", "KUS-SC-RD-001");
    st_assert_logged(f->fh, "tasks.json: entry KUS-SC-EXP-001: \"track\": "
                     "\"sanctions\" is not one of");
    st_assert_logged(f->fh, "keeping its previous version");
}

static void
test_restart_republishes_nothing(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, DEMO_RULES, 0);
    size_t first = sc_pt_msg_count(f->fh);
    assert_int_equal(first, N_TASKS + N_STANDARDS + 6);

    /* restart: same register, same state store */
    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    st_assert_logged(f->fh, "19 published entries and 3 alert states "
                     "remembered");

    /* a change after the restart is published once, as an update */
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-AI-003"), "notes",
                        json_string("Joint statement adopted."));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "ai.tasks", "task.updated", "KUS-SC-AI-003");

    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
}

/* What changed while the plugin was down is published at its start,
 * and only that. */
static void
test_changes_while_down(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, NULL, 0);
    sc_pt_destroy(&f->fh);

    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-SC-WF-001"), "status",
                        json_string("on-hold"));
    st_save(f, "tasks.json", t);
    json_t *s = st_load(f, "standards.json");
    st_remove_entry(s, "standards", "KUS-SC-STD-SEMI-002");
    st_save(f, "standards.json", s);

    st_run(f, all_chans, NULL, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 2);
    st_assert_msg(f->fh, 0, "semis.standards", "standard.withdrawn",
                  "KUS-SC-STD-SEMI-002");
    st_assert_msg(f->fh, 1, "semis.tasks", "task.updated", "KUS-SC-WF-001");

    /* publish_on_start = false on a first start: nothing published, all
     * remembered; later changes are published */
    sc_pt_store_destroy(&f->store);
    f->store = sc_pt_store_new();
    st_host(f, all_chans, f->store);
    assert_int_equal(sc_pt_set(f->fh, "publish_on_start", "false"),
                     SC_OK);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
    sc_pt_fire_timers(f->fh);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    assert_int_equal(sc_pt_store_count(f->store, "semis_ai", "task/"),
                     N_TASKS);
    st_run(f, all_chans, NULL, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
}

/* A publish that fails for now is retried at the next poll, and only
 * what was published reaches the state store. */
static void
test_failed_publish_retried(void **state)
{
    sectortest_t *f = *state;
    st_host(f, all_chans, f->store);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
    sc_pt_fail_publishes(f->fh, 2, SC_ERR_INTERNAL);
    sc_pt_fire_timers(f->fh);
    /* fire_timers ran the first scan and the poll: the poll retried */
    size_t total = sc_pt_msg_count(f->fh);
    assert_int_equal(sc_pt_refused_count(f->fh), 2);
    assert_int_equal(total, N_TASKS + N_STANDARDS);
    /* the two retried last, once each */
    st_assert_msg(f->fh, total - 2, "semis.standards", "standard.proposed",
                  "KUS-SC-STD-SEMI-001");
    st_assert_msg(f->fh, total - 1, "semis.standards", "standard.proposed",
                  "KUS-SC-STD-SEMI-002");
    st_assert_logged(f->fh, "publish standard.proposed KUS-SC-STD-SEMI-001 on "
                     "semis.standards failed: internal error in the broker (see its log) (-9); "
                     "retried at the next poll");
    assert_int_equal(st_poll(f), 0);
    assert_int_equal(sc_pt_store_count(f->store, "semis_ai",
                                          "standard/"), N_STANDARDS);
    st_run(f, all_chans, NULL, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
}

/* A publish refused for good (too big) is not retried until the entry
 * changes; it is not remembered durably, so a restart with a larger
 * limit publishes it, and only it. */
static void
test_too_big_not_retried(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, NULL, 900);
    size_t ok = sc_pt_msg_count(f->fh);
    size_t refused = sc_pt_refused_count(f->fh);
    assert_true(ok > 0 && refused > 0);
    assert_int_equal(ok + refused, N_TASKS + N_STANDARDS);
    st_assert_logged(f->fh, "not retried until it changes");
    assert_int_equal(st_poll(f), 0);
    assert_int_equal(sc_pt_refused_count(f->fh), 0);

    st_run(f, all_chans, NULL, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), refused);
    assert_int_equal(sc_pt_refused_count(f->fh), 0);
}

static void
test_only_granted_channels(void **state)
{
    sectortest_t *f = *state;
    static const char *const ai_only[] = { "ai.", NULL };
    st_run(f, ai_only, NULL, 0);
    /* 4 AI tasks and 3 AI standards */
    assert_int_equal(sc_pt_msg_count(f->fh), 7);
    for (size_t i = 0; i < 7; i++)
        assert_non_null(strstr(sc_pt_msg_at(f->fh, i)->channel, "ai."));
    assert_int_equal(sc_pt_refused_count(f->fh), 0);
    st_assert_logged(f->fh, "semis.tasks: channel not granted to this plugin; "
                     "its entries are not published");
    /* semis entries were not published, so they are not in the store */
    assert_int_equal(sc_pt_store_count(f->store, "semis_ai", "task/"),
                     4);

    static const char *const other[] = { "energy.", NULL };
    st_host(f, other, NULL);
    assert_int_equal(sc_pt_start(f->fh), SC_ERR_NOT_GRANTED);
    st_assert_logged(f->fh, "none of the semis_ai channels is granted; "
                     "nothing to do");
}

/* On a host without durable state the plugin works from memory, warns,
 * and a restart publishes the register again. */
static void
test_older_host_memory_only(void **state)
{
    sectortest_t *f = *state;
    for (int round = 0; round < 2; round++) {
        st_host(f, all_chans, f->store);
        sc_pt_set_api_size(f->fh, offsetof(sc_host_api_t, state_get));
        assert_int_equal(sc_pt_start(f->fh), SC_OK);
        sc_pt_fire_timers(f->fh);
        assert_int_equal(sc_pt_msg_count(f->fh), N_TASKS + N_STANDARDS);
        st_assert_logged(f->fh, "this host has no durable plugin state (an "
                         "older broker)");
    }
    assert_int_equal(sc_pt_store_writes(f->store), 0);
}

/* The demo indicators with the demo rules of conf/sectorcast.conf. */
static void
test_demo_alerts(void **state)
{
    sectortest_t *f = *state;
    static const char *const alerts_only[] = { "semis.supply-chain.",
                                               "ai.supply-chain.", NULL };
    st_run(f, alerts_only, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 6);
    st_assert_msg(f->fh, 0, "semis.supply-chain.alerts", "alert.raised",
                  "chip_lead_time_weeks");
    st_assert_msg(f->fh, 1, "semis.supply-chain.alerts", "alert.updated",
                  "chip_lead_time_weeks");
    st_assert_msg(f->fh, 2, "semis.supply-chain.alerts", "alert.raised",
                  "neon_inventory_weeks");
    st_assert_msg(f->fh, 3, "semis.supply-chain.alerts", "alert.cleared",
                  "neon_inventory_weeks");
    st_assert_msg(f->fh, 4, "ai.supply-chain.alerts", "alert.raised",
                  "ai_accelerator_fill_rate_pct");
    st_assert_msg(f->fh, 5, "ai.supply-chain.alerts", "alert.cleared",
                  "ai_accelerator_fill_rate_pct");
    json_t *a = json_loads(sc_pt_msg_at(f->fh, 1)->data, 0, NULL);
    json_t *info = json_object_get(a, "info");
    assert_string_equal(json_string_value(json_object_get(info, "severity")),
                        "Severe");
    assert_string_equal(json_string_value(json_object_get(info, "event")),
                        "Semiconductor supply lead time high");
    json_decref(a);
}

static void
test_descriptor(void **state)
{
    (void)state;
    char err[512];
    sc_pt_t *fh = sc_pt_new(plugin_so, "semis_ai", all_chans, err,
                                  sizeof err);
    assert_non_null(fh);
    const sc_plugin_t *p = sc_pt_plugin(fh);
    assert_string_equal(p->name, "semis_ai");
    static const char *const names[] = { "register_dir", "poll_interval_ms",
                                         "publish_on_start", "alert_rules",
                                         "alert_sender", NULL };
    for (size_t i = 0; names[i]; i++)
        assert_string_equal(p->settings[i].name, names[i]);
    assert_null(p->settings[5].name);
    sc_pt_destroy(&fh);
}

int
main(void)
{
    if (st_find_plugin("semis_ai", plugin_so, sizeof plugin_so) < 0 ||
        st_find_source("conf/registers/semis_ai", demo_register,
                             sizeof demo_register) < 0) {
        fprintf(stderr, "test_semis_ai: cannot find semis_ai.so or "
                "conf/registers/semis_ai\n");
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, st_teardown)
    const struct CMUnitTest tests[] = {
        T(test_start_publishes_register),
        T(test_change_gives_exactly_expected),
        T(test_invalid_entries_reported_and_skipped),
        T(test_restart_republishes_nothing),
        T(test_changes_while_down),
        T(test_failed_publish_retried),
        T(test_too_big_not_retried),
        T(test_only_granted_channels),
        T(test_older_host_memory_only),
        T(test_demo_alerts),
        T(test_descriptor),
    };
#undef T
    return cmocka_run_group_tests_name("semis_ai plugin", tests, NULL, NULL);
}
