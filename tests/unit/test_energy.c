/*
 * test_energy.c - the energy plugin, driven through the plugin test kit.
 *
 * Each test copies the demo register (conf/registers/energy) into a fresh
 * temporary directory, loads the energy.so built next to this test binary
 * (build/plugins/ for build/tests/, build/asan/plugins/ for
 * build/asan/tests/), changes files and checks exactly which messages the
 * plugin published. Also: durable state across a restart (the test kit's
 * state store), the demo indicators with the demo alert rules, the
 * handshake refusals of the host (fixtures in tests/plugins/), the
 * template plugin, and the test kit's own checks (including its state
 * store).
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
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "support/sectortest.h"

static char exe_dir[PATH_MAX];    /* .../build[/asan]/tests */
static char energy_so[PATH_MAX];
static char template_so[PATH_MAX];
static char fixtures[PATH_MAX];   /* .../tests/plugins */
static char demo_register[PATH_MAX];

static const char *const all_energy[] = { "energy.", NULL };

/* -------------------------------------------------------- fixtures -- */

static int
setup(void **state)
{
    return st_setup(state, energy_so, "energy", demo_register);
}

/* Load energy.so with grant `chans`, settings as given, and start it. */
static sc_pt_t *
start_energy(sectortest_t *f, const char *const *chans, const char *on_start)
{
    st_host(f, chans, NULL);
    if (on_start)
        assert_int_equal(sc_pt_set(f->fh, "publish_on_start", on_start),
                         SC_OK);
    return st_start(f);
}

/* --------------------------------------------------- energy: start -- */

static void
test_start_publishes_every_entry_once(void **state)
{
    sectortest_t *f = *state;
    sc_pt_t *fh = start_energy(f, all_energy, NULL);

    /* expected: by file name, then tasks before standards, array order */
    static const char *const files[] = { "standards.json", "tasks.json" };
    static const char *const arrays[] = { "tasks", "standards" };
    size_t i = 0;
    for (int fi = 0; fi < 2; fi++) {
        json_t *root = st_load(f, files[fi]);
        for (int a = 0; a < 2; a++) {
            size_t k;
            json_t *e;
            json_array_foreach(json_object_get(root, arrays[a]), k, e) {
                char ch[64];
                snprintf(ch, sizeof ch, "energy.%s.%s",
                         json_string_value(json_object_get(e, "subsector")),
                         arrays[a]);
                const char *id = json_string_value(json_object_get(e, "id"));
                st_assert_msg(fh, i, ch, st_expected_kind(arrays[a], e), id);
                char *canon = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
                assert_string_equal(sc_pt_msg_at(fh, i)->data, canon);
                free(canon);
                i++;
            }
        }
        json_decref(root);
    }
    assert_int_equal(sc_pt_msg_count(fh), i);
    /* the demo register: 13 tasks and 7 standards */
    assert_int_equal(i, 20);
    assert_int_equal(sc_pt_refused_count(fh), 0);
    /* nothing changed: nothing more */
    assert_int_equal(st_poll(f), 0);
}

static void
test_publish_on_start_false(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, "false");
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-H2-003"), "status",
                        json_string("in-progress"));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.hydrogen.tasks", "task.updated",
                  "KUS-EN-H2-003");
}

/* ------------------------------------------------- energy: changes -- */

static void
test_status_change_gives_one_update(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-NUC-003"), "status",
                        json_string("in-progress"));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.nuclear.tasks", "task.updated",
                  "KUS-EN-NUC-003");
    assert_non_null(strstr(sc_pt_msg_at(f->fh, 0)->data,
                           "\"status\":\"in-progress\""));
    assert_int_equal(st_poll(f), 0);
}

static void
test_reformatting_is_no_change(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    /* same content, other layout and key order */
    json_t *t = st_load(f, "tasks.json");
    char *compact = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    st_write_text(f, "tasks.json", compact);
    free(compact);
    json_decref(t);
    assert_int_equal(st_poll(f), 0);
}

static void
test_status_completed_closes(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-LNG-002"), "status",
                        json_string("completed"));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.closed",
                  "KUS-EN-LNG-002");
    /* an edit of a closed task is an update, not a second closing */
    t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-LNG-002"), "notes",
                        json_string("Final report published."));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.updated",
                  "KUS-EN-LNG-002");
}

static const char *new_task_json =
    "{\"id\":\"KUS-EN-H2-005\",\"subsector\":\"hydrogen\","
    "\"title\":\"Joint export strategy for hydrogen fuel-cell systems\","
    "\"status\":\"planned\",\"track\":\"joint-export\","
    "\"owners\":{\"kr\":[\"MOTIE\"],\"us\":[\"U.S. Department of Energy\"]},"
    "\"milestones\":[{\"title\":\"Market study\",\"due\":\"2026-07-31\"}]}";

static void
test_added_task_is_created(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_array_append_new(json_object_get(t, "tasks"),
                          json_loads(new_task_json, 0, NULL));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.hydrogen.tasks", "task.created",
                  "KUS-EN-H2-005");
}

static void
test_removed_task_is_closed(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_t *arr = json_object_get(t, "tasks");
    size_t i;
    json_t *e;
    char *before = NULL;
    json_array_foreach(arr, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "id")),
                    "KUS-EN-NUC-004")) {
            before = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
            json_array_remove(arr, i);
            break;
        }
    }
    assert_non_null(before);
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.nuclear.tasks", "task.closed",
                  "KUS-EN-NUC-004");
    /* data: the last published content */
    assert_string_equal(sc_pt_msg_at(f->fh, 0)->data, before);
    free(before);
}

static void
test_standard_stages(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *s = st_load(f, "standards.json");
    json_object_set_new(st_entry(s, "standards", "KUS-EN-STD-NUC-003"),
                        "stage", json_string("published"));
    st_save(f, "standards.json", s);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.nuclear.standards", "standard.published",
                  "KUS-EN-STD-NUC-003");

    s = st_load(f, "standards.json");
    json_object_set_new(st_entry(s, "standards", "KUS-EN-STD-H2-003"),
                        "stage", json_string("committee-draft"));
    json_object_set_new(st_entry(s, "standards", "KUS-EN-STD-NUC-001"),
                        "stage", json_string("withdrawn"));
    st_save(f, "standards.json", s);
    assert_int_equal(st_poll(f), 2);
    st_assert_msg(f->fh, 0, "energy.hydrogen.standards", "standard.updated",
                  "KUS-EN-STD-H2-003");
    st_assert_msg(f->fh, 1, "energy.nuclear.standards", "standard.withdrawn",
                  "KUS-EN-STD-NUC-001");
}

static void
test_removed_file_withdraws_its_entries(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    char p[PATH_MAX];
    st_path(f, "standards.json", p, sizeof p);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(st_poll(f), 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(sc_pt_msg_at(f->fh, i)->kind,
                            "standard.withdrawn");
    /* in the order they had in the file */
    assert_string_equal(sc_pt_msg_at(f->fh, 0)->key, "KUS-EN-STD-H2-001");
    assert_string_equal(sc_pt_msg_at(f->fh, 6)->key,
                        "KUS-EN-STD-LNG-001");
}

static void
test_demo_live_file_is_read(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    char text[2048];
    snprintf(text, sizeof text, "{\"tasks\":[%s]}", new_task_json);
    st_write_text(f, "demo-live-0001.json", text);
    st_write_text(f, "notes.txt", "not a register file");
    st_write_text(f, ".hidden.json", text);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.hydrogen.tasks", "task.created",
                  "KUS-EN-H2-005");
}

static void
test_subsector_move(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-H2-003"),
                        "subsector", json_string("lng"));
    st_save(f, "tasks.json", t);
    assert_int_equal(st_poll(f), 2);
    st_assert_msg(f->fh, 0, "energy.hydrogen.tasks", "task.closed",
                  "KUS-EN-H2-003");
    st_assert_msg(f->fh, 1, "energy.lng.tasks", "task.created",
                  "KUS-EN-H2-003");
}

/* ---------------------------------------- energy: durable state -- */

/* Start energy.so on `store` (not owned), as a broker restart would. */
static void
start_on_store(sectortest_t *f, sc_pt_store_t *store, const char *rules)
{
    st_host(f, all_energy, store);
    if (rules)
        assert_int_equal(sc_pt_set(f->fh, "alert_rules", rules), SC_OK);
    st_start(f);
}

static void
test_restart_republishes_nothing(void **state)
{
    sectortest_t *f = *state;
    sc_pt_store_t *store = sc_pt_store_new();
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 20);
    /* the state: one record per published entry, plus the kit's format */
    assert_int_equal(sc_pt_store_count(store, "energy", "task/"), 13);
    assert_int_equal(sc_pt_store_count(store, "energy", "standard/"), 7);
    assert_string_equal(sc_pt_store_get(store, "energy", "kit/format"),
                        "1");
    json_t *rec = json_loads(sc_pt_store_get(store, "energy",
                                                "task/KUS-EN-NUC-001"),
                             0, NULL);
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "state")),
                        "in-progress");
    json_decref(rec);

    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    st_assert_logged(f->fh, "plugin state: 20 published entries");

    /* a change while down: only it, with the right kind */
    sc_pt_destroy(&f->fh);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-LNG-004"), "status",
                        json_string("cancelled"));
    st_save(f, "tasks.json", t);
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.closed",
                  "KUS-EN-LNG-004");
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);

    /* a record the plugin cannot use is ignored: its entry is new again */
    sc_pt_destroy(&f->fh);
    assert_int_equal(sc_pt_store_put(store, "energy",
                                        "task/KUS-EN-H2-001", "{\"x\":1"),
                     SC_OK);
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 1);
    st_assert_msg(f->fh, 0, "energy.hydrogen.tasks", "task.created",
                  "KUS-EN-H2-001");
    st_assert_logged(f->fh, "plugin state: task/KUS-EN-H2-001 is not a record "
                     "this plugin can use");
    sc_pt_destroy(&f->fh);
    sc_pt_store_destroy(&store);
}

/* The state store failing: the plugin still publishes, says so, and the
 * next start publishes again what it could not remember. */
static void
test_state_store_failure(void **state)
{
    sectortest_t *f = *state;
    sc_pt_store_t *store = sc_pt_store_new();
    sc_pt_store_fail(store, SC_ERR_INTERNAL);
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 20);
    st_assert_logged(f->fh, "plugin state could not be read");
    st_assert_logged(f->fh, "plugin state: saving task/KUS-EN-NUC-001 failed: "
                     "internal error in the broker (see its log) (-9); a restart may publish it "
                     "again");
    assert_int_equal(st_poll(f), 0);
    sc_pt_store_fail(store, SC_OK);
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 20);
    start_on_store(f, store, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    sc_pt_destroy(&f->fh);
    sc_pt_store_destroy(&store);
}

/* The demo indicators with the demo rules of conf/sectorcast.conf. */
#define ENERGY_DEMO_RULES \
    "( { indicator = \"lng_inventory_days\"; op = \"<\"; threshold = 10; severity = \"Severe\"; escalate = ( { threshold = 7; severity = \"Extreme\"; } ); clear = 12; urgency = \"Expected\"; category = \"Infra\"; }, " \
    "  { indicator = \"smr_forging_lead_time_months\"; op = \">\"; threshold = 18; severity = \"Moderate\"; escalate = ( { threshold = 24; severity = \"Severe\"; } ); clear = 15; }, " \
    "  { indicator = \"electrolyser_stack_lead_time_weeks\"; op = \">\"; threshold = 30; severity = \"Moderate\"; clear = 26; consecutive = 2; } ) "

static void
test_demo_alerts(void **state)
{
    sectortest_t *f = *state;
    sc_pt_store_t *store = sc_pt_store_new();
    start_on_store(f, store, ENERGY_DEMO_RULES);
    assert_int_equal(sc_pt_msg_count(f->fh), 20 + 7);
    static const char *const want[][3] = {
        { "energy.lng.alerts", "alert.raised", "lng_inventory_days" },
        { "energy.lng.alerts", "alert.updated", "lng_inventory_days" },
        { "energy.lng.alerts", "alert.updated", "lng_inventory_days" },
        { "energy.lng.alerts", "alert.cleared", "lng_inventory_days" },
        { "energy.nuclear.alerts", "alert.raised",
          "smr_forging_lead_time_months" },
        { "energy.hydrogen.alerts", "alert.raised",
          "electrolyser_stack_lead_time_weeks" },
        { "energy.hydrogen.alerts", "alert.cleared",
          "electrolyser_stack_lead_time_weeks" },
    };
    for (size_t i = 0; i < 7; i++) {
        const sc_pt_msg_t *m = sc_pt_msg_at(f->fh, 20 + i);
        assert_string_equal(m->channel, want[i][0]);
        assert_string_equal(m->kind, want[i][1]);
        assert_string_equal(m->key, want[i][2]);
    }
    start_on_store(f, store, ENERGY_DEMO_RULES);
    assert_int_equal(sc_pt_msg_count(f->fh), 0);
    sc_pt_destroy(&f->fh);
    sc_pt_store_destroy(&store);
}

/* -------------------------------------------- energy: invalid input -- */

static void
test_invalid_entries_skipped_others_publish(void **state)
{
    sectortest_t *f = *state;
    json_t *t = st_load(f, "tasks.json");
    json_t *arr = json_object_get(t, "tasks");
    size_t n_valid = json_array_size(arr);
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:{s:[s]}}",
        "id", "KUS-EN-WND-001", "subsector", "wind", "title", "Offshore",
        "status", "planned", "owners", "kr", "MOTIE"));
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:{s:[s]}}",
        "subsector", "nuclear", "title", "No id", "status", "planned",
        "owners", "us", "DOE"));
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:i, s:{s:[s]}}",
        "id", "KUS-EN-NUC-009", "subsector", "nuclear", "title", "Bad",
        "status", 3, "owners", "us", "DOE"));
    json_array_append_new(arr, json_string("not an object"));
    st_save(f, "tasks.json", t);

    start_energy(f, all_energy, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), n_valid + 7);
    st_assert_logged(f->fh, "tasks.json: entry KUS-EN-WND-001: "
                     "\"subsector\": \"wind\" is not one of: hydrogen, "
                     "nuclear, lng; skipped");
    char needle[128];
    snprintf(needle, sizeof needle, "tasks.json: entry index %zu in "
             "\"tasks\": missing \"id\"; skipped", n_valid + 1);
    st_assert_logged(f->fh, needle);
    st_assert_logged(f->fh, "tasks.json: entry KUS-EN-NUC-009: \"status\" "
                     "must be a string");
    snprintf(needle, sizeof needle, "entry index %zu in \"tasks\": must be "
             "an object", n_valid + 3);
    st_assert_logged(f->fh, needle);
    for (size_t i = 0; i < sc_pt_msg_count(f->fh); i++) {
        assert_string_not_equal(sc_pt_msg_at(f->fh, i)->key,
                                "KUS-EN-WND-001");
        assert_string_not_equal(sc_pt_msg_at(f->fh, i)->key,
                                "KUS-EN-NUC-009");
    }
}

static void
test_invalid_edit_keeps_previous_version(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    json_t *t = st_load(f, "tasks.json");
    json_t *e = st_entry(t, "tasks", "KUS-EN-NUC-002");
    json_object_set_new(e, "status", json_string("dunno"));
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-LNG-001"), "status",
                        json_string("at-risk"));
    json_t *ms = json_array_get(json_object_get(
        st_entry(t, "tasks", "KUS-EN-NUC-001"), "milestones"), 1);
    json_object_set_new(ms, "due", json_string("2026-02-30"));
    st_save(f, "tasks.json", t);
    /* the typo neither closes nor updates the task; the valid edit goes */
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.updated",
                  "KUS-EN-LNG-001");
    st_assert_logged(f->fh, "tasks.json: entry KUS-EN-NUC-002: \"status\": "
                     "\"dunno\" is not one of");
    st_assert_logged(f->fh, "keeping its previous version");
    st_assert_logged(f->fh, "tasks.json: entry KUS-EN-NUC-001: "
                     "\"milestones\"[1]: \"due\" must be a date "
                     "YYYY-MM-DD");
}

static void
test_unparsable_file_keeps_last_good(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    /* a half-written file */
    char p[PATH_MAX];
    st_path(f, "tasks.json", p, sizeof p);
    json_t *good = st_load(f, "tasks.json");
    char *text = json_dumps(good, JSON_INDENT(2));
    text[strlen(text) / 2] = '\0';
    st_write_text(f, "tasks.json", text);
    free(text);
    assert_int_equal(st_poll(f), 0);
    st_assert_logged(f->fh, "tasks.json: line ");
    long first = sc_pt_log_find(f->fh, 0, "tasks.json: line ");
    /* logged once per content, not on every poll */
    assert_int_equal(st_poll(f), 0);
    assert_int_equal(sc_pt_log_find(f->fh, (size_t)first + 1,
                                       "tasks.json: line "), -1);

    /* the plugin still runs: another file's change is published */
    json_t *s = st_load(f, "standards.json");
    json_object_set_new(st_entry(s, "standards", "KUS-EN-STD-H2-002"),
                        "stage", json_string("approval"));
    st_save(f, "standards.json", s);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.hydrogen.standards", "standard.updated",
                  "KUS-EN-STD-H2-002");

    /* the file completed: only its real change is published */
    json_object_set_new(st_entry(good, "tasks", "KUS-EN-LNG-003"),
                        "status", json_string("in-progress"));
    st_save(f, "tasks.json", good);
    assert_int_equal(st_poll(f), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.updated",
                  "KUS-EN-LNG-003");

    /* wrong shape is treated the same way */
    st_write_text(f, "tasks.json", "[1, 2, 3]");
    assert_int_equal(st_poll(f), 0);
    st_assert_logged(f->fh, "tasks.json: must be a JSON object");
}

static void
test_unparsable_at_start(void **state)
{
    sectortest_t *f = *state;
    st_write_text(f, "tasks.json", "{\"tasks\": [ {\"id\": ");
    start_energy(f, all_energy, NULL);
    /* standards still publish */
    assert_int_equal(sc_pt_msg_count(f->fh), 7);
    st_assert_logged(f->fh, "tasks.json: line 1: ");
}

static void
test_duplicate_id_first_wins(void **state)
{
    sectortest_t *f = *state;
    start_energy(f, all_energy, NULL);
    st_write_text(f, "zz-extra.json",
               "{\"tasks\":[{\"id\":\"KUS-EN-NUC-001\",\"subsector\":"
               "\"nuclear\",\"title\":\"Copy\",\"status\":\"planned\","
               "\"owners\":{\"kr\":[\"MOTIE\"]}}]}");
    assert_int_equal(st_poll(f), 0);
    st_assert_logged(f->fh, "zz-extra.json: entry KUS-EN-NUC-001 (tasks[0]): "
                     "duplicate id, first defined in ");
    st_assert_logged(f->fh, "tasks.json (tasks[0]); ignored");
}

/* -------------------------------------------------- energy: grants -- */

static void
test_only_granted_channels(void **state)
{
    sectortest_t *f = *state;
    static const char *const nuclear[] = { "energy.nuclear.", NULL };
    start_energy(f, nuclear, NULL);
    /* 5 nuclear tasks + 3 nuclear standards */
    assert_int_equal(sc_pt_msg_count(f->fh), 8);
    for (size_t i = 0; i < sc_pt_msg_count(f->fh); i++)
        assert_non_null(strstr(sc_pt_msg_at(f->fh, i)->channel,
                               "energy.nuclear."));
    /* the plugin asked the host for its grants and kept to them */
    assert_int_equal(sc_pt_refused_count(f->fh), 0);
    const char *txt = sc_pt_api(f->fh)->strerror(SC_ERR_NOT_GRANTED);
    char needle[160];
    snprintf(needle, sizeof needle, "energy.hydrogen.tasks: %s", txt);
    st_assert_logged(f->fh, needle);
    snprintf(needle, sizeof needle, "energy.lng.standards: %s", txt);
    st_assert_logged(f->fh, needle);
}

static void
test_single_channel_grant(void **state)
{
    sectortest_t *f = *state;
    static const char *const one[] = { "energy.lng.tasks.", NULL };
    start_energy(f, one, NULL);
    assert_int_equal(sc_pt_msg_count(f->fh), 4);
    assert_string_equal(sc_pt_msg_at(f->fh, 0)->channel,
                        "energy.lng.tasks");
}

static void
test_nothing_granted_refuses_start(void **state)
{
    sectortest_t *f = *state;
    static const char *const other[] = { "semis.", NULL };
    st_host(f, other, NULL);
    assert_int_equal(sc_pt_start(f->fh), SC_ERR_NOT_GRANTED);
    st_assert_logged(f->fh, "nothing to do");
}

static void
test_publish_errors_logged_and_skipped(void **state)
{
    sectortest_t *f = *state;
    st_host(f, all_energy, NULL);
    sc_pt_set_max_data(f->fh, 700);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
    sc_pt_fire_timers(f->fh);
    size_t ok = sc_pt_msg_count(f->fh), refused =
        sc_pt_refused_count(f->fh);
    assert_true(ok > 0);
    assert_true(refused > 0);
    assert_int_equal(ok + refused, 20);
    char needle[128];
    snprintf(needle, sizeof needle, "failed: %s",
             sc_pt_api(f->fh)->strerror(SC_ERR_TOO_BIG));
    st_assert_logged(f->fh, needle);
}

/* ----------------------------------------------- energy: settings -- */

static void
test_settings_checked(void **state)
{
    sectortest_t *f = *state;
    char err[512];
    f->fh = sc_pt_new(energy_so, "energy", all_energy, err, sizeof err);
    assert_non_null(f->fh);
    assert_int_equal(sc_pt_set(f->fh, "colour", "blue"),
                     SC_ERR_NO_SETTING);
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "soon"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_set(f->fh, "publish_on_start", "maybe"),
                     SC_ERR_ARG);
    /* register_dir is required */
    assert_int_equal(sc_pt_start(f->fh), SC_ERR_BAD_SETTING);
    assert_non_null(strstr(sc_pt_error(f->fh), "register_dir"));
    sc_pt_destroy(&f->fh);

    f->fh = sc_pt_new(energy_so, "energy", all_energy, err, sizeof err);
    char p[PATH_MAX];
    st_path(f, "missing", p, sizeof p);
    assert_int_equal(sc_pt_set(f->fh, "register_dir", p), SC_OK);
    /* the plugin's check() refuses it before init */
    assert_int_equal(sc_pt_start(f->fh), SC_ERR_BAD_SETTING);
    st_assert_logged(f->fh, "setting 'register_dir': ");
    st_assert_logged(f->fh, "missing: No such file or directory");
    sc_pt_destroy(&f->fh);

    f->fh = sc_pt_new(energy_so, "energy", all_energy, err, sizeof err);
    assert_int_equal(sc_pt_set(f->fh, "register_dir", f->dir), SC_OK);
    /* the declared range refuses it where it is given */
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "0"), SC_ERR_ARG);
    assert_non_null(strstr(sc_pt_error(f->fh), "setting 'poll_interval_ms': "
                           "0 is out of range (10..3600000)"));
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "3600001"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "010"), SC_OK);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
}

/* --------------------------------------- energy: the loop, real time -- */

static void
test_poll_timer_in_real_time(void **state)
{
    sectortest_t *f = *state;
    st_host(f, all_energy, NULL);
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "50"), SC_OK);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
    sc_pt_run_for(f->fh, 30);
    assert_int_equal(sc_pt_msg_count(f->fh), 20);
    sc_pt_msgs_clear(f->fh);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-NUC-005"), "status",
                        json_string("in-progress"));
    st_save(f, "tasks.json", t);
    sc_pt_run_for(f->fh, 300);
    assert_int_equal(sc_pt_msg_count(f->fh), 1);
    st_assert_msg(f->fh, 0, "energy.nuclear.tasks", "task.updated",
                  "KUS-EN-NUC-005");
}

static void
test_inotify_without_waiting_for_poll(void **state)
{
    sectortest_t *f = *state;
    st_host(f, all_energy, NULL);
    assert_int_equal(sc_pt_set(f->fh, "poll_interval_ms", "3600000"),
                     SC_OK);
    assert_int_equal(sc_pt_start(f->fh), SC_OK);
    if (sc_pt_watch_count(f->fh) == 0)
        skip(); /* no inotify here: polling alone is tested above */
    sc_pt_run_for(f->fh, 30);
    assert_int_equal(sc_pt_msg_count(f->fh), 20);
    sc_pt_msgs_clear(f->fh);
    json_t *t = st_load(f, "tasks.json");
    json_object_set_new(st_entry(t, "tasks", "KUS-EN-LNG-004"), "status",
                        json_string("cancelled"));
    st_save(f, "tasks.json", t);
    sc_pt_run_for(f->fh, 500);
    assert_int_equal(sc_pt_msg_count(f->fh), 1);
    st_assert_msg(f->fh, 0, "energy.lng.tasks", "task.closed",
                  "KUS-EN-LNG-004");
}

/* -------------------------------------------------------- handshake -- */

static void
test_handshake_bad_abi(void **state)
{
    (void)state;
    char so[PATH_MAX + 32], err[512];
    snprintf(so, sizeof so, "%s/bad_abi.so", fixtures);
    sc_pt_t *fh = sc_pt_new(so, "bad", all_energy, err, sizeof err);
    assert_null(fh);
    assert_non_null(strstr(err, "speaks ABI version 99, this broker "
                                "speaks 1..2"));
}

static void
test_handshake_no_symbol(void **state)
{
    (void)state;
    char so[PATH_MAX + 32], err[512];
    snprintf(so, sizeof so, "%s/no_symbol.so", fixtures);
    sc_pt_t *fh = sc_pt_new(so, "nosym", all_energy, err, sizeof err);
    assert_null(fh);
    assert_non_null(strstr(err, "no symbol 'sc_plugin_entry'"));
}

static void
test_handshake_entry_returns_null(void **state)
{
    (void)state;
    char err[512];
    /* a host older than the plugin's ABI: the plugin declines */
    sc_pt_t *fh = sc_pt_new_abi(energy_so, "energy", all_energy, 0,
                                      err, sizeof err);
    assert_null(fh);
    assert_non_null(strstr(err, "refuses to run on a host speaking ABI version 0"));
    /* a newer host: the plugin offers its ABI, the host speaks it */
    fh = sc_pt_new_abi(energy_so, "energy", all_energy,
                          SC_PLUGIN_ABI_VERSION + 1, err, sizeof err);
    assert_non_null(fh);
    assert_int_equal(sc_pt_plugin(fh)->abi_version, SC_PLUGIN_ABI_VERSION);
    sc_pt_destroy(&fh);
    assert_null(fh);
}

static void
test_handshake_not_a_shared_object(void **state)
{
    sectortest_t *f = *state;
    char so[PATH_MAX], err[512];
    st_write_text(f, "text.so", "this is not an ELF file\n");
    st_path(f, "text.so", so, sizeof so);
    assert_null(sc_pt_new(so, "text", all_energy, err, sizeof err));
    assert_non_null(strstr(err, "cannot load"));
    st_path(f, "absent.so", so, sizeof so);
    assert_null(sc_pt_new(so, "absent", all_energy, err, sizeof err));
    assert_non_null(strstr(err, "not found"));
}

static void
test_descriptor_of_energy(void **state)
{
    (void)state;
    char err[512];
    sc_pt_t *fh = sc_pt_new(energy_so, "energy", all_energy, err,
                                  sizeof err);
    assert_non_null(fh);
    const sc_plugin_t *p = sc_pt_plugin(fh);
    assert_string_equal(p->name, "energy");
    assert_non_null(p->settings);
    assert_string_equal(p->settings[0].name, "register_dir");
    assert_int_equal(p->settings[0].type, SC_SETTING_PATH);
    assert_true(p->settings[0].required);
    assert_string_equal(p->settings[1].default_value, "1000");
    assert_string_equal(p->settings[2].default_value, "true");
    assert_int_equal(p->settings[1].flags,
                     SC_SETTING_F_MIN | SC_SETTING_F_MAX);
    assert_true(p->settings[1].min == 10 && p->settings[1].max == 3600000);
    assert_string_equal(p->settings[3].name, "alert_rules");
    assert_int_equal(p->settings[3].type, SC_SETTING_GROUP);
    assert_true(p->settings[3].flags & SC_SETTING_F_LIST);
    assert_non_null(p->check);
    assert_string_equal(p->settings[4].name, "alert_sender");
    assert_null(p->settings[5].name);
    sc_pt_destroy(&fh);
}

/* ---------------------------------------- template plugin, test kit -- */

static sc_pt_t *
start_template(const char *interval)
{
    static const char *const chans[] = { "demo.", NULL };
    char err[512];
    sc_pt_t *fh = sc_pt_new(template_so, "tpl", chans, err,
                                  sizeof err);
    if (!fh)
        fail_msg("%s", err);
    assert_int_equal(sc_pt_set(fh, "channel", "demo.ticks"), SC_OK);
    if (interval)
        assert_int_equal(sc_pt_set(fh, "interval_ms", interval), SC_OK);
    assert_int_equal(sc_pt_start(fh), SC_OK);
    return fh;
}

static void
test_template_ticks(void **state)
{
    (void)state;
    sc_pt_t *fh = start_template("20");
    assert_int_equal(sc_pt_timer_count(fh), 1);
    sc_pt_run_for(fh, 110);
    size_t n = sc_pt_msg_count(fh);
    assert_true(n >= 3 && n <= 6);
    const sc_pt_msg_t *m = sc_pt_msg_at(fh, 0);
    assert_string_equal(m->channel, "demo.ticks");
    assert_string_equal(m->kind, "template.tick");
    assert_null(m->key);
    assert_string_equal(m->data, "{\"instance\":\"tpl\",\"tick\":1}");
    sc_pt_destroy(&fh);

    /* default interval: 5000 ms, so nothing within 50 ms */
    fh = start_template(NULL);
    sc_pt_run_for(fh, 50);
    assert_int_equal(sc_pt_msg_count(fh), 0);
    assert_int_equal(sc_pt_fire_timers(fh), 1);
    assert_int_equal(sc_pt_msg_count(fh), 1);
    sc_pt_destroy(&fh);
}

static void
test_template_required_channel(void **state)
{
    (void)state;
    static const char *const chans[] = { "demo.", NULL };
    char err[512];
    sc_pt_t *fh = sc_pt_new(template_so, "tpl", chans, err,
                                  sizeof err);
    assert_non_null(fh);
    assert_int_equal(sc_pt_start(fh), SC_ERR_BAD_SETTING);
    assert_non_null(strstr(sc_pt_error(fh),
                           "setting 'channel': required"));
    sc_pt_destroy(&fh);
}

static void
test_template_refuses_ungranted_channel(void **state)
{
    (void)state;
    static const char *const chans[] = { "demo.other.", NULL };
    char err[512];
    sc_pt_t *fh = sc_pt_new(template_so, "tpl", chans, err, sizeof err);
    assert_non_null(fh);
    assert_int_equal(sc_pt_set(fh, "channel", "demo.ticks"), SC_OK);
    assert_int_equal(sc_pt_start(fh), SC_ERR_NOT_GRANTED);
    assert_true(sc_pt_log_find(fh, 0, "channel 'demo.ticks' is not granted "
                               "to this plugin") >= 0);
    assert_true(sc_pt_log_find(fh, 0, "plugin init failed: channel not "
                               "granted to this plugin (-2)") >= 0);
    assert_int_equal(sc_pt_timer_count(fh), 0);
    sc_pt_destroy(&fh);
}

/* The test kit's own publish checks, which plugin authors rely on. */
static void
test_sc_pt_publish_checks(void **state)
{
    (void)state;
    sc_pt_t *fh = start_template(NULL);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", "key", "{}"),
                     SC_OK);
    assert_int_equal(sc_pt_publish(fh, "dem", "k", NULL, "{}"),
                     SC_ERR_NOT_GRANTED);
    assert_int_equal(sc_pt_publish(fh, "other.x", "k", NULL, "{}"),
                     SC_ERR_NOT_GRANTED);
    assert_int_equal(sc_pt_publish(fh, "demox.y", "k", NULL, "{}"),
                     SC_ERR_NOT_GRANTED);
    assert_int_equal(sc_pt_publish(fh, "demo.X", "k", NULL, "{}"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_publish(fh, "demo.x.", "k", NULL, "{}"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "", NULL, "{}"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", "", "{}"),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, NULL),
                     SC_ERR_ARG);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, "[1]"),
                     SC_ERR_BAD_JSON);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, "{\"a\":"),
                     SC_ERR_BAD_JSON);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL,
                                      "{\"a\":1,\"a\":2}"),
                     SC_ERR_BAD_JSON);
    sc_pt_set_max_data(fh, 10);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL,
                                      "{\"a\":\"0123456789\"}"),
                     SC_ERR_TOO_BIG);
    assert_int_equal(sc_pt_msg_count(fh), 1);
    assert_int_equal(sc_pt_refused_count(fh), 12);
    assert_int_equal(sc_pt_last_refusal(fh), SC_ERR_TOO_BIG);
    assert_true(sc_pt_log_find(fh, 0, "refused") >= 0);

    const sc_host_api_t *api = sc_pt_api(fh);
    assert_int_equal(api->abi_version, SC_PLUGIN_ABI_VERSION);
    assert_int_equal(api->size, sizeof(sc_host_api_t));
    assert_true(SC_HOST_HAS(api, request_stop));
    assert_int_equal(api->timer_cancel(NULL, 1), SC_ERR_ARG);
    sc_pt_destroy(&fh);
}

/* The rest of the host table, as a plugin sees it. */
static void
test_sc_pt_host_table(void **state)
{
    (void)state;
    sc_pt_t *fh = start_template(NULL);
    const sc_host_api_t *api = sc_pt_api(fh);
    sc_host_t *h = sc_pt_handle(fh);
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    int b = 0;
    assert_int_equal(api->setting_string(h, "channel", &s), SC_OK);
    assert_string_equal(s, "demo.ticks");
    assert_int_equal(api->setting_int(h, "interval_ms", &i), SC_OK);
    assert_int_equal(i, 5000);
    assert_int_equal(api->setting_float(h, "interval_ms", &d), SC_OK);
    assert_true(d == 5000.0);
    assert_int_equal(api->setting_bool(h, "channel", &b), SC_ERR_ARG);
    assert_int_equal(api->setting_int(h, "nope", &i), SC_ERR_NO_SETTING);
    assert_int_equal(api->setting_int(h, "interval_ms", NULL), SC_ERR_ARG);

    assert_string_equal(api->instance_name(h), "tpl");
    assert_int_equal(api->channel_count(h), 1);
    assert_string_equal(api->channel_at(h, 0), "demo.");
    assert_null(api->channel_at(h, 1));

    assert_int_equal(api->timer_add(h, 0, 1, NULL, NULL), SC_ERR_ARG);
    assert_int_equal(api->timer_cancel(h, 999), SC_ERR_NOT_FOUND);
    assert_int_equal(api->fd_unwatch(h, 0), SC_ERR_NOT_FOUND);
    assert_int_equal(api->fd_watch(h, -1, SC_FD_READ, NULL, NULL),
                     SC_ERR_ARG);
    assert_string_equal(api->strerror(SC_ERR_NOT_GRANTED),
                        "channel not granted to this plugin");

    api->request_stop(h, "fatal: test");
    assert_string_equal(sc_pt_stop_reason(fh), "fatal: test");
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, "{}"),
                     SC_ERR_STOPPING);
    assert_int_equal(sc_pt_run_for(fh, 1000), 0); /* returns at once */
    sc_pt_destroy(&fh);
}

/* The test kit's durable state, as a plugin sees it. */
typedef struct seen {
    char keys[8][64];
    size_t n;
    int stop_at;
} seen_t;

static int
collect(void *arg, const char *key, const char *value)
{
    seen_t *s = arg;
    (void)value;
    snprintf(s->keys[s->n], sizeof s->keys[s->n], "%s", key);
    s->n++;
    return s->stop_at && (int)s->n == s->stop_at;
}

static void
test_sc_pt_state_store(void **state)
{
    (void)state;
    sc_pt_store_t *store = sc_pt_store_new();
    sc_pt_t *fh = start_template(NULL);
    sc_pt_destroy(&fh);
    static const char *const chans[] = { "demo.", NULL };
    char err[512];
    fh = sc_pt_new(template_so, "tpl", chans, err, sizeof err);
    sc_pt_use_store(fh, store);
    assert_int_equal(sc_pt_set(fh, "channel", "demo.ticks"), SC_OK);
    assert_int_equal(sc_pt_start(fh), SC_OK);
    const sc_host_api_t *api = sc_pt_api(fh);
    sc_host_t *h = sc_pt_handle(fh);
    assert_true(SC_HOST_HAS(api, state_get));
    assert_true(SC_HOST_HAS(api, state_foreach));

    char *v = NULL;
    assert_int_equal(api->state_get(h, "a/1", &v), SC_ERR_NOT_FOUND);
    assert_null(v);
    assert_int_equal(api->state_put(h, "b/2", "two"), SC_OK);
    assert_int_equal(api->state_put(h, "a/1", "one"), SC_OK);
    assert_int_equal(api->state_put(h, "a/3", "three"), SC_OK);
    assert_int_equal(api->state_put(h, "a/1", "uno"), SC_OK);
    assert_int_equal(api->state_get(h, "a/1", &v), SC_OK);
    assert_string_equal(v, "uno");
    api->state_free(h, v);
    /* the broker's limits */
    char key[300];
    memset(key, 'k', sizeof key);
    key[257] = '\0';
    assert_int_equal(api->state_put(h, key, "x"), SC_ERR_ARG);
    key[256] = '\0';
    assert_int_equal(api->state_put(h, key, "x"), SC_OK);
    assert_int_equal(api->state_put(h, "", "x"), SC_ERR_ARG);
    assert_int_equal(api->state_put(h, key, NULL), SC_OK);

    /* foreach: prefix, key order, stop */
    seen_t s = { .n = 0 };
    assert_int_equal(api->state_foreach(h, "a/", collect, &s), SC_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[0], "a/1");
    assert_string_equal(s.keys[1], "a/3");
    seen_t all = { .n = 0, .stop_at = 2 };
    assert_int_equal(api->state_foreach(h, "", collect, &all), SC_OK);
    assert_int_equal(all.n, 2);

    /* the test's view: scoped by instance */
    assert_string_equal(sc_pt_store_get(store, "tpl", "b/2"), "two");
    assert_null(sc_pt_store_get(store, "other", "b/2"));
    assert_int_equal(sc_pt_store_count(store, "tpl", ""), 3);
    assert_int_equal(sc_pt_store_writes(store), 6);
    assert_int_equal(sc_pt_store_put(store, "other", "a/9", "x"), SC_OK);
    seen_t again = { .n = 0 };
    assert_int_equal(api->state_foreach(h, "a/", collect, &again), SC_OK);
    assert_int_equal(again.n, 2);

    /* faults */
    sc_pt_store_fail(store, SC_ERR_INTERNAL);
    assert_int_equal(api->state_put(h, "a/4", "x"), SC_ERR_INTERNAL);
    assert_int_equal(api->state_get(h, "a/1", &v), SC_ERR_INTERNAL);
    sc_pt_store_fail(store, SC_OK);
    sc_pt_fail_publishes(fh, 1, SC_ERR_INTERNAL);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, "{}"),
                     SC_ERR_INTERNAL);
    assert_int_equal(sc_pt_publish(fh, "demo.x", "k", NULL, "{}"), SC_OK);
    sc_pt_destroy(&fh);

    /* the same store after a "restart" */
    fh = sc_pt_new(template_so, "tpl", chans, err, sizeof err);
    sc_pt_use_store(fh, store);
    /* an older host: no state functions */
    sc_pt_set_api_size(fh, offsetof(sc_host_api_t, state_get));
    assert_int_equal(sc_pt_set(fh, "channel", "demo.ticks"), SC_OK);
    assert_int_equal(sc_pt_start(fh), SC_OK);
    api = sc_pt_api(fh);
    assert_false(SC_HOST_HAS(api, state_get));
    assert_true(SC_HOST_HAS(api, request_stop));
    assert_int_equal(api->size, offsetof(sc_host_api_t, state_get));
    sc_pt_destroy(&fh);
    assert_string_equal(sc_pt_store_get(store, "tpl", "a/3"), "three");
    sc_pt_store_destroy(&store);
}

/* --------------------------------------------------------------- main -- */

static int
find_paths(const char *argv0)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        if (!realpath(argv0, exe))
            return -1;
    } else {
        exe[n] = '\0';
    }
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    snprintf(exe_dir, sizeof exe_dir, "%s", exe);
    snprintf(energy_so, sizeof energy_so, "%.*s/../plugins/energy.so",
             PATH_MAX - 32, exe_dir);
    snprintf(template_so, sizeof template_so,
             "%.*s/../plugins/template.so", PATH_MAX - 32, exe_dir);
    snprintf(fixtures, sizeof fixtures, "%.*s/plugins", PATH_MAX - 32,
             exe_dir);
    /* the source tree: the nearest ancestor with conf/registers/energy */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", exe_dir);
    for (int up = 0; up < 6; up++) {
        struct stat st;
        snprintf(demo_register, sizeof demo_register,
                 "%.*s/conf/registers/energy", PATH_MAX - 32, dir);
        if (stat(demo_register, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        char *s = strrchr(dir, '/');
        if (!s || s == dir)
            break;
        *s = '\0';
    }
    return -1;
}

int
main(int argc, char **argv)
{
    (void)argc;
    if (find_paths(argv[0]) < 0) {
        fprintf(stderr, "test_energy: cannot find the build or "
                "conf/registers/energy from %s\n", argv[0]);
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, st_teardown)
    const struct CMUnitTest tests[] = {
        T(test_start_publishes_every_entry_once),
        T(test_publish_on_start_false),
        T(test_status_change_gives_one_update),
        T(test_reformatting_is_no_change),
        T(test_status_completed_closes),
        T(test_added_task_is_created),
        T(test_removed_task_is_closed),
        T(test_standard_stages),
        T(test_removed_file_withdraws_its_entries),
        T(test_demo_live_file_is_read),
        T(test_subsector_move),
        T(test_restart_republishes_nothing),
        T(test_state_store_failure),
        T(test_demo_alerts),
        T(test_invalid_entries_skipped_others_publish),
        T(test_invalid_edit_keeps_previous_version),
        T(test_unparsable_file_keeps_last_good),
        T(test_unparsable_at_start),
        T(test_duplicate_id_first_wins),
        T(test_only_granted_channels),
        T(test_single_channel_grant),
        T(test_nothing_granted_refuses_start),
        T(test_publish_errors_logged_and_skipped),
        T(test_settings_checked),
        T(test_poll_timer_in_real_time),
        T(test_inotify_without_waiting_for_poll),
        T(test_handshake_bad_abi),
        T(test_handshake_no_symbol),
        T(test_handshake_entry_returns_null),
        T(test_handshake_not_a_shared_object),
        T(test_descriptor_of_energy),
        T(test_template_ticks),
        T(test_template_required_channel),
        T(test_template_refuses_ungranted_channel),
        T(test_sc_pt_publish_checks),
        T(test_sc_pt_host_table),
        T(test_sc_pt_state_store),
    };
#undef T
    return cmocka_run_group_tests_name("energy plugin", tests, NULL, NULL);
}
