/*
 * test_alerts.c - supply-chain alert rules of the sector plugins, driven
 * through the plugin test kit.
 *
 * Each test writes an indicator series into a fresh register directory,
 * starts a sector plugin (energy.so, semis_ai.so built next to this test)
 * with an `alert_rules` setting, feeds it observations and checks exactly
 * which alert.raised / alert.updated / alert.cleared messages it
 * published, that every CAP 1.2 field holds a value of its enumeration,
 * that the alert state survives a restart (same state store), and that
 * a bad rule is refused before init with a message naming its field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support/sectortest.h"

static char energy_so[PATH_MAX];
static char semis_so[PATH_MAX];

static const char *const all_energy[] = { "energy.", NULL };

/* The LNG rule most tests use: Severe below 10 days of cover, Extreme
 * below 7, cleared at 12 or more. */
#define LNG_RULE                                                         \
    "( { indicator = \"lng_inventory_days\"; op = \"<\"; threshold = 10;" \
    "    severity = \"Severe\";"                                            \
    "    escalate = ( { threshold = 7; severity = \"Extreme\"; } );"        \
    "    clear = 12; category = \"Infra\"; urgency = \"Expected\"; } )"

typedef struct fixture {
    sectortest_t t; /* energy.so unless a test loads another plugin */
    /* the series as written so far */
    double values[64];
    size_t n_values;
} fixture_t;

/* ------------------------------------------------------------ setup -- */

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || st_init(&f->t, energy_so, "energy", NULL) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    st_fini(&f->t);
    free(f);
    return 0;
}

/* Write indicators.json with series `id` (subsector `sub`) holding
 * f->values, one observation a week from 2026-01-05; atomically. */
static void
write_series(fixture_t *f, const char *id, const char *sub)
{
    json_t *obs = json_array();
    for (size_t i = 0; i < f->n_values; i++) {
        char date[40];
        int day = 5 + 7 * (int)i; /* days from 2026-01-01, by month */
        static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                     30, 31 };
        int m = 0;
        while (day > mdays[m]) {
            day -= mdays[m];
            m++;
        }
        snprintf(date, sizeof date, "2026-%02d-%02d", m + 1, day);
        json_array_append_new(obs, json_pack("{s:s, s:f}", "date", date,
                                             "value", f->values[i]));
    }
    json_t *root = json_pack(
        "{s:i, s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}]}", "format", 1,
        "indicators", "id", id, "subsector", sub,
        "title", "LNG inventory in Korean receiving terminals, days of cover",
        "unit", "days", "source", "Korea Gas Corporation (KOGAS)",
        "event", "LNG inventory low", "area", "Republic of Korea",
        "observations", obs);
    assert_non_null(root);
    st_save(&f->t, "indicators.json", root);
}

static void
add_values(fixture_t *f, size_t n, const double *v)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(f->n_values < sizeof f->values / sizeof f->values[0]);
        f->values[f->n_values++] = v[i];
    }
}

/* Load `so` as instance `name` on the fixture's store, with `rules`. */
static sc_pt_t *
start_plugin(fixture_t *f, const char *so, const char *name,
             const char *const *chans, const char *rules)
{
    f->t.so = so;
    f->t.instance = name;
    return st_run(&f->t, chans, rules, 0);
}

static sc_pt_t *
start_energy(fixture_t *f, const char *rules)
{
    return start_plugin(f, energy_so, "energy", all_energy, rules);
}

/* Append observations, let the plugin poll; return the new messages. */
static size_t
feed(fixture_t *f, size_t n, const double *v)
{
    add_values(f, n, v);
    write_series(f, "lng_inventory_days", "lng");
    return st_poll(&f->t);
}

static void
restart(fixture_t *f, const char *rules)
{
    sc_pt_destroy(&f->t.fh);
    start_energy(f, rules);
}

/* ------------------------------------------------------------- CAP --- */

static int
in_set(const char *s, const char *const *set)
{
    for (; s && *set; set++)
        if (!strcmp(s, *set))
            return 1;
    return 0;
}

static const char *
str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

/* CAP 1.2 dateTime: "2002-05-24T16:49:00-07:00"; UTC as "-00:00", never
 * "Z", no fractional seconds. */
static int
cap_datetime(const char *s)
{
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-1][0-9]-[0-3][0-9]T"
                             "[0-2][0-9]:[0-5][0-9]:[0-6][0-9][-+]"
                             "[0-1][0-9]:[0-5][0-9]$", REG_EXTENDED), 0);
    int ok = s && regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* identifier and sender: no spaces, commas or restricted characters */
static int
cap_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == ',' || *s == '<' || *s == '&')
            return 0;
    return 1;
}

/* One alert message as sent: the envelope parts and the CAP alert. */
typedef struct cap {
    json_t *alert;
    char kind[32];
    char identifier[200], sender[300], sent[40];
} cap_t;

/* Check every CAP 1.2 field of message i against its value set, and
 * that the kind and msgType agree. Returns the parsed alert (decref). */
static json_t *
check_cap(sc_pt_t *fh, size_t i, const char *channel, const char *kind,
          const char *severity)
{
    static const char *const status[] = { "Actual", "Exercise", "System",
                                          "Test", "Draft", NULL };
    static const char *const msg_type[] = { "Alert", "Update", "Cancel",
                                            "Ack", "Error", NULL };
    static const char *const scope[] = { "Public", "Restricted", "Private",
                                         NULL };
    static const char *const category[] = {
        "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health",
        "Env", "Transport", "Infra", "CBRNE", "Other", NULL };
    static const char *const response[] = {
        "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor",
        "Assess", "AllClear", "None", NULL };
    static const char *const urgency[] = { "Immediate", "Expected",
                                           "Future", "Past", "Unknown",
                                           NULL };
    static const char *const severities[] = { "Extreme", "Severe",
                                              "Moderate", "Minor",
                                              "Unknown", NULL };
    static const char *const certainty[] = { "Observed", "Likely",
                                             "Possible", "Unlikely",
                                             "Unknown", NULL };
    const sc_pt_msg_t *m = sc_pt_msg_at(fh, i);
    assert_non_null(m);
    assert_string_equal(m->channel, channel);
    assert_string_equal(m->kind, kind);
    json_error_t je;
    json_t *a = json_loads(m->data, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(a);
    assert_true(cap_token(str(a, "identifier")));
    assert_true(cap_token(str(a, "sender")));
    assert_true(cap_datetime(str(a, "sent")));
    assert_true(in_set(str(a, "status"), status));
    assert_string_equal(str(a, "status"), "Actual");
    assert_true(in_set(str(a, "msgType"), msg_type));
    const char *want_type = !strcmp(kind, "alert.raised")    ? "Alert"
                            : !strcmp(kind, "alert.updated") ? "Update"
                                                             : "Cancel";
    assert_string_equal(str(a, "msgType"), want_type);
    assert_true(in_set(str(a, "scope"), scope));
    if (!strcmp(str(a, "scope"), "Restricted"))
        assert_true(str(a, "restriction") && *str(a, "restriction"));
    if (!strcmp(want_type, "Alert"))
        assert_null(json_object_get(a, "references"));
    else
        assert_non_null(str(a, "references"));

    json_t *info = json_object_get(a, "info");
    assert_true(json_is_object(info));
    assert_true(in_set(str(info, "category"), category));
    assert_true(str(info, "event") && *str(info, "event"));
    assert_true(in_set(str(info, "responseType"), response));
    assert_true(in_set(str(info, "urgency"), urgency));
    assert_true(in_set(str(info, "severity"), severities));
    assert_true(in_set(str(info, "certainty"), certainty));
    if (severity)
        assert_string_equal(str(info, "severity"), severity);
    if (!strcmp(want_type, "Cancel")) {
        assert_string_equal(str(info, "responseType"), "AllClear");
        assert_string_equal(str(info, "urgency"), "Past");
    }
    if (json_object_get(info, "effective"))
        assert_true(cap_datetime(str(info, "effective")));
    size_t k;
    json_t *p;
    json_array_foreach(json_object_get(info, "parameter"), k, p) {
        assert_non_null(str(p, "valueName"));
        assert_non_null(str(p, "value"));
    }
    return a;
}

/* "sender,identifier,sent" of alert `a` */
static void
ref_of(const json_t *a, char *buf, size_t len)
{
    snprintf(buf, len, "%s,%s,%s", str(a, "sender"), str(a, "identifier"),
             str(a, "sent"));
}

/* The references of `a` name exactly the given earlier alerts, in CAP's
 * whitespace-separated "sender,identifier,sent" form. */
static void
assert_references(const json_t *a, const json_t *r1, const json_t *r2)
{
    char want[1024], one[512];
    ref_of(r1, want, sizeof want);
    if (r2) {
        ref_of(r2, one, sizeof one);
        strncat(want, " ", sizeof want - strlen(want) - 1);
        strncat(want, one, sizeof want - strlen(want) - 1);
    }
    assert_string_equal(str(a, "references"), want);
}

/* ----------------------------------------------------------- tests --- */

static void
test_crossing_hovering_clearing(void **state)
{
    fixture_t *f = *state;
    static const double normal[] = { 14, 12.5, 11 };
    add_values(f, 3, normal);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);

    /* crossing: raised once */
    static const double cross[] = { 9.9 };
    assert_int_equal(feed(f, 1, cross), 1);
    json_t *raised = check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                               "Severe");
    assert_string_equal(sc_pt_msg_at(f->t.fh, 0)->key,
                        "lng_inventory_days");
    json_t *info = json_object_get(raised, "info");
    assert_string_equal(str(info, "category"), "Infra");
    assert_string_equal(str(info, "urgency"), "Expected");
    assert_string_equal(str(info, "certainty"), "Likely");
    assert_string_equal(str(info, "event"), "LNG inventory low");
    assert_string_equal(str(info, "effective"), "2026-01-26T00:00:00-00:00");
    assert_string_equal(str(raised, "sender"), "sectorcast.energy");
    assert_string_equal(str(raised, "source"),
                        "Korea Gas Corporation (KOGAS)");

    /* hovering at the threshold: nothing, one observation at a time */
    static const double hover[] = { 10.1, 9.8, 10.5, 9.9, 11.9 };
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(feed(f, 1, &hover[i]), 0);

    /* worse: updated once, to Extreme, referencing the Alert */
    static const double worse[] = { 6.5 };
    assert_int_equal(feed(f, 1, worse), 1);
    json_t *updated = check_cap(f->t.fh, 0, "energy.lng.alerts",
                                "alert.updated", "Extreme");
    assert_references(updated, raised, NULL);
    static const double hover2[] = { 7.1, 6.9, 8.5, 6.8 };
    assert_int_equal(feed(f, 4, hover2), 0);

    /* back to normal: cleared once, referencing Alert and Update */
    static const double clear[] = { 12 };
    assert_int_equal(feed(f, 1, clear), 1);
    json_t *cleared = check_cap(f->t.fh, 0, "energy.lng.alerts",
                                "alert.cleared", NULL);
    assert_references(cleared, raised, updated);
    assert_non_null(str(cleared, "note"));
    static const double after[] = { 11.5, 12.5, 10.5 };
    assert_int_equal(feed(f, 3, after), 0);

    /* three distinct identifiers */
    assert_string_not_equal(str(raised, "identifier"),
                            str(updated, "identifier"));
    assert_string_not_equal(str(updated, "identifier"),
                            str(cleared, "identifier"));
    assert_string_not_equal(str(raised, "identifier"),
                            str(cleared, "identifier"));
    json_decref(raised);
    json_decref(updated);
    json_decref(cleared);
    assert_int_equal(sc_pt_refused_count(f->t.fh), 0);
}

/* The same observations written at once give the same messages. */
static void
test_batch_gives_same_messages(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 14, 11, 9.9, 10.1, 9.8, 10.5, 9.9, 11.9,
                                6.5, 7.1, 6.9, 8.5, 12, 11.5, 12.5 };
    add_values(f, sizeof v / sizeof v[0], v);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 3);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                          "Severe"));
    json_decref(check_cap(f->t.fh, 1, "energy.lng.alerts", "alert.updated",
                          "Extreme"));
    json_decref(check_cap(f->t.fh, 2, "energy.lng.alerts", "alert.cleared",
                          "Minor"));
    /* nothing new: nothing more */
    sc_pt_msgs_clear(f->t.fh);
    sc_pt_fire_timers(f->t.fh);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
}

/* Leaving a level needs the same band as clearing: Extreme -> Severe at
 * 7 + 2 = 9 or more, not at 7. */
static void
test_de_escalation_has_hysteresis(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 11, 6.5 };
    add_values(f, 2, v);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    /* straight to Extreme: one Alert, at Extreme */
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                          "Extreme"));
    static const double near[] = { 7.5, 8.9, 6.9, 8.8 };
    assert_int_equal(feed(f, 4, near), 0);
    static const double better[] = { 9.0 };
    assert_int_equal(feed(f, 1, better), 1);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.updated",
                          "Severe"));
}

/* consecutive = N without a clear threshold: N observations in a row move. */
static void
test_consecutive_observations(void **state)
{
    fixture_t *f = *state;
    const char *rule = "( { indicator = \"lng_inventory_days\"; op = \"<\"; "
                       "threshold = 10; severity = \"Moderate\"; "
                       "consecutive = 3; } )";
    static const double start[] = { 11 };
    add_values(f, 1, start);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, rule);
    static const double flap[] = { 9, 11, 9, 9, 11, 9, 11 };
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(feed(f, 1, &flap[i]), 0);
    static const double low[] = { 9, 9 };
    assert_int_equal(feed(f, 2, low), 0);
    static const double third[] = { 9.5 };
    assert_int_equal(feed(f, 1, third), 1);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                          "Moderate"));
    json_t *a = json_loads(sc_pt_msg_at(f->t.fh, 0)->data, 0, NULL);
    /* defaults of a rule without options */
    assert_string_equal(str(json_object_get(a, "info"), "category"),
                        "Other");
    assert_string_equal(str(json_object_get(a, "info"), "urgency"),
                        "Future");
    json_decref(a);
    static const double back[] = { 11, 10.5, 9, 10, 11 };
    assert_int_equal(feed(f, 5, back), 0);
    static const double third_up[] = { 12 };
    assert_int_equal(feed(f, 1, third_up), 1);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.cleared",
                          NULL));
}

/* Restart with the same state store: no second raise, and a clear that
 * happened while the plugin was down is published once. */
static void
test_restart_keeps_alert_state(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 12, 9.5, 9.8 };
    add_values(f, 3, v);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_t *raised = check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                               "Severe");
    assert_int_equal(sc_pt_store_count(f->t.store, "energy", "alert/"), 1);

    restart(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
    st_assert_logged(f->t.fh, "1 alert state remembered");

    /* the value recovers while the plugin is down */
    sc_pt_destroy(&f->t.fh);
    static const double up[] = { 10.5, 12.4 };
    add_values(f, 2, up);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_t *cleared = check_cap(f->t.fh, 0, "energy.lng.alerts",
                                "alert.cleared", NULL);
    assert_references(cleared, raised, NULL);
    json_decref(cleared);
    json_decref(raised);

    /* and the clear is not lost or repeated either */
    restart(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
    static const double again[] = { 9.1 };
    assert_int_equal(feed(f, 1, again), 1);
    json_t *second = check_cap(f->t.fh, 0, "energy.lng.alerts",
                               "alert.raised", "Severe");
    /* a new episode: a new identifier */
    assert_null(json_object_get(second, "references"));
    json_decref(second);
}

/* A raise whose publish fails is not remembered: retried at the next
 * poll, published once. */
static void
test_failed_publish_is_retried(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 12 };
    add_values(f, 1, v);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    sc_pt_fail_publishes(f->t.fh, 1, SC_ERR_INTERNAL);
    static const double low[] = { 9 };
    assert_int_equal(feed(f, 1, low), 0);
    assert_int_equal(sc_pt_refused_count(f->t.fh), 1);
    st_assert_logged(f->t.fh, "retried at the next poll");
    /* nothing changed in the files; the poll retries */
    sc_pt_msgs_clear(f->t.fh);
    sc_pt_fire_timers(f->t.fh);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                          "Severe"));
    sc_pt_msgs_clear(f->t.fh);
    sc_pt_fire_timers(f->t.fh);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
    /* the state store never saw a raise that was not published */
    restart(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
}

/* A raised alert whose rule left the configuration is cancelled. */
static void
test_removed_rule_cancels_its_alert(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 12, 8 };
    add_values(f, 2, v);
    write_series(f, "lng_inventory_days", "lng");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_t *raised = check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                               "Severe");
    restart(f, "( { indicator = \"other_series\"; op = \">\"; "
               "threshold = 5; severity = \"Minor\"; clear = 3; } )");
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_t *c = check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.cleared",
                          "Minor");
    assert_references(c, raised, NULL);
    assert_non_null(strstr(str(c, "note"), "rule removed"));
    json_decref(c);
    json_decref(raised);
    st_assert_logged(f->t.fh, "no indicator series \"other_series\"");
    assert_int_equal(sc_pt_store_count(f->t.store, "energy", "alert/"
                                          "lng_inventory_days"), 0);
    restart(f, NULL);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
}

static void
test_sender_and_grant(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 12, 8 };
    add_values(f, 2, v);
    write_series(f, "lng_inventory_days", "lng");
    st_host(&f->t, all_energy, NULL);
    assert_int_equal(sc_pt_set(f->t.fh, "alert_rules", LNG_RULE), SC_OK);
    assert_int_equal(sc_pt_set(f->t.fh, "alert_sender", "kus gateway"),
                     SC_OK);
    assert_int_equal(sc_pt_start(f->t.fh), SC_ERR_BAD_SETTING);
    st_assert_logged(f->t.fh, "setting 'alert_sender': \"kus gateway\" cannot "
                     "be a CAP sender");
    sc_pt_destroy(&f->t.fh);

    st_host(&f->t, all_energy, NULL);
    assert_int_equal(sc_pt_set(f->t.fh, "alert_rules", LNG_RULE), SC_OK);
    assert_int_equal(sc_pt_set(f->t.fh, "alert_sender",
                                  "alerts@kus-gateway-seoul"), SC_OK);
    assert_int_equal(sc_pt_start(f->t.fh), SC_OK);
    sc_pt_fire_timers(f->t.fh);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
    json_t *a = check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                          "Severe");
    assert_string_equal(str(a, "sender"), "alerts@kus-gateway-seoul");
    json_decref(a);
    sc_pt_destroy(&f->t.fh);

    /* tasks granted, alerts not: the rule is inactive and says so */
    static const char *const tasks_only[] = { "energy.lng.tasks.", NULL };
    sc_pt_store_destroy(&f->t.store);
    f->t.store = sc_pt_store_new();
    start_plugin(f, energy_so, "energy", tasks_only, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
    assert_int_equal(sc_pt_refused_count(f->t.fh), 0);
    st_assert_logged(f->t.fh, "energy.lng.alerts: channel not granted to this "
                     "plugin; its alerts are not published");
    st_assert_logged(f->t.fh, "channel energy.lng.alerts is not granted to "
                     "this plugin; the rule is inactive");
}

/* Semis & AI: the alert channel is <subsector>.supply-chain.alerts. */
static void
test_semis_alert_channel(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 18, 21, 27 };
    add_values(f, 3, v);
    write_series(f, "chip_lead_time_weeks", "semis");
    static const char *const chans[] = { "semis.", "ai.", NULL };
    start_plugin(f, semis_so, "semis_ai", chans,
                 "( { indicator = \"chip_lead_time_weeks\"; op = \">\"; "
                 "threshold = 20; severity = \"Moderate\"; escalate = ( "
                 "{ threshold = 26; severity = \"Severe\"; } ); "
                 "clear = 18; } )");
    assert_int_equal(sc_pt_msg_count(f->t.fh), 2);
    json_decref(check_cap(f->t.fh, 0, "semis.supply-chain.alerts",
                          "alert.raised", "Moderate"));
    json_decref(check_cap(f->t.fh, 1, "semis.supply-chain.alerts",
                          "alert.updated", "Severe"));
    assert_string_equal(sc_pt_msg_at(f->t.fh, 1)->key,
                        "chip_lead_time_weeks");
}

/* Memory only on a host without durable state: works, warns, and a
 * restart raises again. */
static void
test_older_host_memory_only(void **state)
{
    fixture_t *f = *state;
    static const double v[] = { 12, 8 };
    add_values(f, 2, v);
    write_series(f, "lng_inventory_days", "lng");
    for (int round = 0; round < 2; round++) {
        st_host(&f->t, all_energy, f->t.store);
        sc_pt_set_api_size(f->t.fh, offsetof(sc_host_api_t, state_get));
        assert_false(SC_HOST_HAS(sc_pt_api(f->t.fh), state_get));
        assert_int_equal(sc_pt_set(f->t.fh, "alert_rules", LNG_RULE),
                         SC_OK);
        assert_int_equal(sc_pt_start(f->t.fh), SC_OK);
        sc_pt_fire_timers(f->t.fh);
        st_assert_logged(f->t.fh, "no durable plugin state");
        assert_int_equal(sc_pt_msg_count(f->t.fh), 1);
        json_decref(check_cap(f->t.fh, 0, "energy.lng.alerts", "alert.raised",
                              "Severe"));
    }
    assert_int_equal(sc_pt_store_count(f->t.store, "energy", ""), 0);
}

/* One rule group with the LNG basics and `extra` fields. */
#define RULE(extra)                                                       \
    "{ indicator = \"lng_inventory_days\"; op = \"<\"; threshold = 10; "  \
    "severity = \"Severe\"; " extra " }"

/* Bad rules are refused where they are written: the table's part when the
 * setting is given (as by the config check), the rest by the plugin's
 * check() before init; each message names the field. */
static void
test_invalid_rules_rejected(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *rules, *message;
    } cases[] = {
        /* the table: shape, types, operators, CAP values, ranges */
        { "\"lng_inventory_days < 10 Severe clear 12\"",
          "setting 'alert_rules': must be a list of groups { ... }, "
          "( { ... }, { ... } ), not a string" },
        { RULE("clear = 12;"),
          "setting 'alert_rules': must be a list of groups" },
        { "( { indicator = \"lng_inventory_days\"; op = \"<\"; threshold = "
          "10; severity = \"Urgent\"; clear = 12; } )",
          "setting 'alert_rules[0].severity': \"Urgent\" is not one of "
          "\"Minor\", \"Moderate\", \"Severe\", \"Extreme\"" },
        { "( { indicator = \"x\"; op = \"=<\"; threshold = 1; "
          "severity = \"Minor\"; clear = 2; } )",
          "setting 'alert_rules[0].op': \"=<\" is not one of \"<\", \"<=\", "
          "\">\", \">=\"" },
        { "( { indicator = \"x\"; op = \"<\"; threshold = \"ten\"; "
          "severity = \"Minor\"; clear = 2; } )",
          "setting 'alert_rules[0].threshold': must be a number, not a "
          "string" },
        { "( { indicator = \"x\"; op = \"<\"; clear = 12; } )",
          "setting 'alert_rules[0].threshold': required but not set" },
        { "( { indicator = \"\"; op = \"<\"; threshold = 10; "
          "severity = \"Minor\"; clear = 12; } )",
          "setting 'alert_rules[0].indicator': required but empty (series "
          "id of an indicator in the register, e.g. lng_inventory_days)" },
        { "( " RULE("clear = 12; colour = \"red\";") " )",
          "setting 'alert_rules[0].colour': unknown setting (known: "
          "indicator, op, threshold, severity, escalate, clear, consecutive, "
          "urgency, certainty, category)" },
        { "( " RULE("clear = 12; urgency = \"Soon\";") " )",
          "setting 'alert_rules[0].urgency': \"Soon\" is not one of "
          "\"Immediate\", \"Expected\", \"Future\", \"Past\", \"Unknown\"" },
        { "( " RULE("clear = 12; certainty = \"Sure\";") " )",
          "setting 'alert_rules[0].certainty': \"Sure\" is not one of" },
        { "( " RULE("clear = 12; category = \"Energy\";") " )",
          "setting 'alert_rules[0].category': \"Energy\" is not one of "
          "\"Geo\"" },
        { "( " RULE("consecutive = 0;") " )",
          "setting 'alert_rules[0].consecutive': 0 is out of range "
          "(1..100)" },
        { "( " RULE("clear = 12; escalate = ( { threshold = 7; severity = "
          "\"Extreme\"; }, { threshold = 6; severity = \"Extreme\"; }, "
          "{ threshold = 5; severity = \"Extreme\"; }, { threshold = 4; "
          "severity = \"Extreme\"; } );") " )",
          "setting 'alert_rules[0].escalate': has 4 elements, must have "
          "<= 3" },
        { "( " RULE("clear = 12; escalate = { threshold = 7; severity = "
          "\"Extreme\"; };") " )",
          "setting 'alert_rules[0].escalate': must be a list of groups" },
        /* the plugin's check() */
        { "( { indicator = \"a\"; op = \">\"; threshold = 1; severity = "
          "\"Minor\"; clear = 0; }, " RULE("") " )",
          "setting 'alert_rules[1]': needs clear (a threshold above 10) or "
          "consecutive >= 2" },
        { "( " RULE("clear = 9;") " )",
          "setting 'alert_rules[0].clear': must be above the first "
          "threshold 10, so that a value hovering there raises once" },
        { "( { indicator = \"lng_inventory_days\"; op = \">\"; "
          "threshold = 10; severity = \"Severe\"; clear = 12; } )",
          "setting 'alert_rules[0].clear': must be below the first "
          "threshold 10" },
        { "( " RULE("clear = 10;") " )",
          "setting 'alert_rules[0].clear': must be above" },
        { "( " RULE("clear = 12; escalate = ( { threshold = 11; severity = "
          "\"Extreme\"; } );") " )",
          "setting 'alert_rules[0].escalate[0].threshold': 11 must be below "
          "the threshold before it (10)" },
        { "( " RULE("clear = 12; escalate = ( { threshold = 7; severity = "
          "\"Moderate\"; } );") " )",
          "setting 'alert_rules[0].escalate[0].severity': \"Moderate\" must "
          "be more severe than the level before it (\"Severe\"" },
        { "( { indicator = \"LNG\"; op = \"<\"; threshold = 10; severity = "
          "\"Severe\"; clear = 12; } )",
          "setting 'alert_rules[0].indicator': \"LNG\" is not a series id" },
        { "( " RULE("clear = 12;") ", { indicator = \"lng_inventory_days\"; "
          "op = \"<\"; threshold = 5; severity = \"Extreme\"; clear = 6; } )",
          "setting 'alert_rules[1].indicator': series \"lng_inventory_days\" "
          "already has a rule (lng_inventory_days < 10 Severe clear 12)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        sc_pt_t *fh = sc_pt_new(energy_so, "energy", all_energy, err,
                                      sizeof err);
        assert_non_null(fh);
        assert_int_equal(sc_pt_set(fh, "register_dir", f->t.dir), SC_OK);
        int rc = sc_pt_set(fh, "alert_rules", cases[i].rules);
        if (rc == SC_OK && sc_pt_start(fh) != SC_ERR_BAD_SETTING)
            fail_msg("rules accepted: %s", cases[i].rules);
        if (rc != SC_OK)
            assert_int_equal(rc, SC_ERR_ARG);
        if (sc_pt_log_find(fh, 0, cases[i].message) < 0) {
            for (size_t k = 0; k < sc_pt_log_count(fh); k++)
                fprintf(stderr, "  log: %s\n", sc_pt_log_at(fh, k)->text);
            fail_msg("case %zu: no log line contains: %s", i,
                     cases[i].message);
        }
        assert_int_equal(sc_pt_timer_count(fh), 0);
        sc_pt_destroy(&fh);
    }
}

/* What is accepted: no rules, every option, both directions, floats. */
static void
test_valid_rule_forms(void **state)
{
    fixture_t *f = *state;
    static const char *const ok[] = {
        "()",
        "( " RULE("clear = 12; escalate = ( { threshold = 7; severity = "
        "\"Extreme\"; } );") " )",
        "( { indicator = \"lng_inventory_days\"; op = \"<=\"; threshold = 10;"
        " severity = \"Minor\"; consecutive = 2; urgency = \"Immediate\"; "
        "certainty = \"Observed\"; category = \"CBRNE\"; } )",
        "( { indicator = \"lng_inventory_days\"; op = \">=\"; threshold = "
        "1e3; severity = \"Moderate\"; escalate = ( { threshold = 2000.0; "
        "severity = \"Severe\"; } ); clear = 900.5; consecutive = 1; }, "
        "{ indicator = \"other-series\"; op = \">\"; threshold = 3; "
        "severity = \"Minor\"; clear = 2; } )",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char err[512];
        sc_pt_t *fh = sc_pt_new(energy_so, "energy", all_energy, err,
                                      sizeof err);
        assert_non_null(fh);
        assert_int_equal(sc_pt_set(fh, "register_dir", f->t.dir), SC_OK);
        if (sc_pt_set(fh, "alert_rules", ok[i]) != SC_OK ||
            sc_pt_start(fh) != SC_OK)
            fail_msg("rules refused: \"%s\": %s", ok[i], sc_pt_error(fh));
        sc_pt_destroy(&fh);
    }
}

/* An invalid series is reported as FILE: entry ID: what; skipped, and its
 * rule waits. */
static void
test_invalid_series_skipped(void **state)
{
    fixture_t *f = *state;
    st_write_text(&f->t, "indicators.json",
        "{\"indicators\": [{\"id\": \"lng_inventory_days\", "
        "\"subsector\": \"lng\", \"title\": \"LNG\", \"unit\": \"days\", "
        "\"observations\": [{\"date\": \"2026-01-12\", \"value\": 8}, "
        "{\"date\": \"2026-01-05\", \"value\": 7}]}]}");
    start_energy(f, LNG_RULE);
    assert_int_equal(sc_pt_msg_count(f->t.fh), 0);
    st_assert_logged(f->t.fh, "indicators.json: entry lng_inventory_days: "
                     "\"observations\"[1]: \"date\" 2026-01-05 is not "
                     "after the one before (2026-01-12); skipped");
    st_assert_logged(f->t.fh, "no indicator series \"lng_inventory_days\"");
}

/* ------------------------------------------------------------- main -- */

int
main(void)
{
    if (st_find_plugin("energy", energy_so, sizeof energy_so) < 0 ||
        st_find_plugin("semis_ai", semis_so, sizeof semis_so) < 0) {
        fprintf(stderr, "test_alerts: cannot find the plugins next to this "
                "test binary\n");
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_crossing_hovering_clearing),
        T(test_batch_gives_same_messages),
        T(test_de_escalation_has_hysteresis),
        T(test_consecutive_observations),
        T(test_restart_keeps_alert_state),
        T(test_failed_publish_is_retried),
        T(test_removed_rule_cancels_its_alert),
        T(test_sender_and_grant),
        T(test_semis_alert_channel),
        T(test_older_host_memory_only),
        T(test_invalid_rules_rejected),
        T(test_valid_rule_forms),
        T(test_invalid_series_skipped),
    };
#undef T
    return cmocka_run_group_tests_name("alert rules", tests, NULL, NULL);
}
