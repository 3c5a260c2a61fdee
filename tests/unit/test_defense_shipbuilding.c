/*
 * test_defense_shipbuilding.c - the defence & shipbuilding plugin, driven
 * through the plugin test kit.
 *
 * Each test copies the demo register (conf/registers/defense_shipbuilding)
 * into a fresh temporary directory, loads the defense_shipbuilding.so built
 * next to this test binary, changes files and checks exactly which messages the plugin
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

static const char *const all_chans[] = { "defense.", "shipbuilding.",
                                         NULL };

/* The demo rules of conf/sectorcast.conf for this sector. */
#define DEMO_RULES \
    "( { indicator = \"shipyard_dock_availability_pct\"; op = \"<\"; threshold = 20; severity = \"Moderate\"; escalate = ( { threshold = 10; severity = \"Severe\"; } ); clear = 25; category = \"Infra\"; }, " \
    "  { indicator = \"marine_engine_lead_time_months\"; op = \">\"; threshold = 18; severity = \"Moderate\"; escalate = ( { threshold = 24; severity = \"Severe\"; } ); clear = 16; consecutive = 2; }, " \
    "  { indicator = \"defense_parts_backlog_weeks\"; op = \">\"; threshold = 12; severity = \"Moderate\"; escalate = ( { threshold = 20; severity = \"Severe\"; } ); clear = 10; category = \"Security\"; } ) "

/* the demo register: 11 tasks, 5 standards */
#define N_TASKS 11
#define N_STANDARDS 5

/* -------------------------------------------------------- fixtures -- */

static int
setup(void **state)
{
    return st_setup(state, plugin_so, "defense_shipbuilding", demo_register);
}

/* ------------------------------------------------------------ tests -- */

static void
test_start_publishes_register(void **state)
{
    sectortest_t *f = *state;
    sc_pt_t *fh = st_run(f, all_chans, NULL, 0);
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
    assert_int_equal(st_poll(f), 0);
}

static void
test_change_gives_exactly_expected(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, NULL, 0);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-DS-MRO-002"), "status",
                        json_string("in-progress"));
    json_t *ms = json_array_get(json_object_get(
        st_entry(t, "tasks", "KUS-DS-MRO-001"), "milestones"), 2);
    json_object_set_new(ms, "status", json_string("done"));
    /* the Security of Supply task moves to the shipbuilding desk */
    json_object_set_new(st_entry(t, "tasks", "KUS-DS-SUP-002"),
                        "subsector", json_string("shipbuilding"));
    st_save(f, "tasks.json", t);
    json_t *s = st_load(f, "standards.json");
    json_object_set_new(st_entry(s, "standards", "KUS-DS-STD-DEF-001"),
                        "stage", json_string("withdrawn"));
    st_save(f, "standards.json", s);

    assert_int_equal(st_poll(f), 5);
    st_assert_msg(f->fh, 0, "defense.standards", "standard.withdrawn",
                  "KUS-DS-STD-DEF-001");
    st_assert_msg(f->fh, 1, "shipbuilding.tasks", "task.updated",
                  "KUS-DS-MRO-001");
    st_assert_msg(f->fh, 2, "shipbuilding.tasks", "task.updated",
                  "KUS-DS-MRO-002");
    st_assert_msg(f->fh, 3, "defense.tasks", "task.closed", "KUS-DS-SUP-002");
    st_assert_msg(f->fh, 4, "shipbuilding.tasks", "task.created",
                  "KUS-DS-SUP-002");
    /* the closing message carries what was last published there */
    assert_non_null(strstr(sc_pt_msg_at(f->fh, 3)->data,
                           "\"subsector\":\"defense\""));
    assert_int_equal(st_poll(f), 0);
}

static void
test_invalid_entries_reported_and_skipped(void **state)
{
    sectortest_t *f = *state;
    json_t *t = st_load(f, "tasks.json");
    json_t *arr = json_object_get(t, "tasks");
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-DS-MRO-009",
        "subsector", "shipbuilding", "title", "Frigates", "status", "planned",
        "vessel_class", "frigate", "owners", "us", "NAVSEA"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-DS-MRO-010",
        "subsector", "shipbuilding", "title", "No programme", "status",
        "planned", "programme", "", "owners", "us", "NAVSEA"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:[s], s:{s:[s]}}", "id", "KUS-DS-MRO-011",
        "subsector", "shipbuilding", "title", "Yards", "status", "planned",
        "shipyards", "", "owners", "us", "NAVSEA"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:[s]}}", "id", "KUS-DS-PRT-009",
        "subsector", "defense", "title", "Piracy", "status", "planned",
        "track", "piracy", "owners", "kr", "DAPA"));
    json_array_append_new(arr, json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[s]}, s:[{s:s, s:s}]}", "id",
        "KUS-DS-HUB-009", "subsector", "defense", "title", "Late",
        "status", "planned", "owners", "kr", "DAPA", "milestones",
        "title", "Hub opened", "due", "2026-13-01"));
    st_save(f, "tasks.json", t);

    st_run(f, all_chans, NULL, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), N_TASKS + N_STANDARDS);
    st_assert_logged(f->fh, "tasks.json: entry KUS-DS-MRO-009: "
                     "\"vessel_class\": \"frigate\" is not one of: "
                     "non-combatant, combatant; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-DS-MRO-010: \"programme\" "
                     "must not be empty; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-DS-MRO-011: "
                     "\"shipyards\"[0] must be a non-empty string; skipped");
    st_assert_logged(f->fh, "tasks.json: entry KUS-DS-PRT-009: \"track\": "
                     "\"piracy\" is not one of: mro, shipyard-coordination, ");
    st_assert_logged(f->fh, "tasks.json: entry KUS-DS-HUB-009: "
                     "\"milestones\"[0]: \"due\" must be a date YYYY-MM-DD; "
                     "skipped");
    for (size_t i = 0; i < sc_pt_msg_count(f->fh); i++)
        assert_null(strstr(sc_pt_msg_at(f->fh, i)->key, "-009"));

    /* an invalid indicator series is reported the same way */
    json_t *ind = st_load(f, "indicators.json");
    json_object_set_new(json_array_get(json_object_get(ind, "indicators"),
                                       0), "unit", json_integer(3));
    st_save(f, "indicators.json", ind);
    assert_int_equal(st_poll(f), 0);
    st_assert_logged(f->fh, "indicators.json: entry "
                     "shipyard_dock_availability_pct: \"unit\" must be a "
                     "string; keeping its previous version");
}

static void
test_restart_republishes_nothing(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), N_TASKS + N_STANDARDS + 3);
    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);

    /* a move while the plugin is down: both halves at the next start */
    sc_pt_destroy(&f->fh);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-DS-HUB-001"),
                        "subsector", json_string("shipbuilding"));
    st_save(f, "tasks.json", t);
    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 2);
    st_assert_msg(f->fh, 0, "defense.tasks", "task.closed", "KUS-DS-HUB-001");
    st_assert_msg(f->fh, 1, "shipbuilding.tasks", "task.created",
                  "KUS-DS-HUB-001");
    st_run(f, all_chans, DEMO_RULES, 0);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
}

/* A move whose "gone" half fails is redone whole at the next poll; the
 * "new" half never goes out alone. */
static void
test_move_with_failed_first_half(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, NULL, 0);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-DS-PRT-001"),
                        "subsector", json_string("shipbuilding"));
    st_save(f, "tasks.json", t);
    sc_pt_fail_publishes(f->fh, 1, SC_ERR_INTERNAL);
    sc_pt_msgs_clear(f->fh);
    sc_pt_fire_timers(f->fh); /* the poll: first half refused */
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    assert_int_equal(sc_pt_refused_count(f->fh), 1);
    assert_int_equal(st_poll(f), 2);
    st_assert_msg(f->fh, 0, "defense.tasks", "task.closed", "KUS-DS-PRT-001");
    st_assert_msg(f->fh, 1, "shipbuilding.tasks", "task.created",
                  "KUS-DS-PRT-001");
    assert_int_equal(st_poll(f), 0);
}

static void
test_demo_alerts(void **state)
{
    sectortest_t *f = *state;
    st_run(f, all_chans, DEMO_RULES, 0);
    size_t n = sc_pt_msg_count(f->fh);
    assert_int_equal(n, N_TASKS + N_STANDARDS + 3);
    /* alerts follow the tasks and standards of the same scan, in rule
     * order; the parts backlog never crosses 12 weeks */
    st_assert_msg(f->fh, n - 3, "shipbuilding.supply-chain.alerts",
                  "alert.raised", "shipyard_dock_availability_pct");
    st_assert_msg(f->fh, n - 2, "shipbuilding.supply-chain.alerts",
                  "alert.updated", "shipyard_dock_availability_pct");
    st_assert_msg(f->fh, n - 1, "shipbuilding.supply-chain.alerts",
                  "alert.raised", "marine_engine_lead_time_months");
    json_t *a = json_loads(sc_pt_msg_at(f->fh, n - 2)->data, 0, NULL);
    json_t *info = json_object_get(a, "info");
    assert_string_equal(json_string_value(json_object_get(info, "severity")),
                        "Severe");
    assert_string_equal(json_string_value(json_object_get(info, "category")),
                        "Infra");
    json_decref(a);
}

static void
test_descriptor(void **state)
{
    (void)state;
    char err[512];
    sc_pt_t *fh = sc_pt_new(plugin_so, "defense_shipbuilding",
                                  all_chans, err, sizeof err);
    assert_non_null(fh);
    const sc_plugin_t *p = sc_pt_plugin(fh);
    assert_string_equal(p->name, "defense_shipbuilding");
    assert_string_equal(p->settings[0].name, "register_dir");
    assert_true(p->settings[0].required);
    assert_string_equal(p->settings[3].name, "alert_rules");
    assert_null(p->settings[3].default_value);
    assert_false(p->settings[3].required);
    sc_pt_destroy(&fh);
}

int
main(void)
{
    if (st_find_plugin("defense_shipbuilding", plugin_so,
                             sizeof plugin_so) < 0 ||
        st_find_source("conf/registers/defense_shipbuilding",
                             demo_register, sizeof demo_register) < 0) {
        fprintf(stderr, "test_defense_shipbuilding: cannot find "
                "defense_shipbuilding.so or "
                "conf/registers/defense_shipbuilding\n");
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, st_teardown)
    const struct CMUnitTest tests[] = {
        T(test_start_publishes_register),
        T(test_change_gives_exactly_expected),
        T(test_invalid_entries_reported_and_skipped),
        T(test_restart_republishes_nothing),
        T(test_move_with_failed_first_half),
        T(test_demo_alerts),
        T(test_descriptor),
    };
#undef T
    return cmocka_run_group_tests_name("defense_shipbuilding plugin", tests,
                                       NULL, NULL);
}
