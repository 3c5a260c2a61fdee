/*
 * test_settings.c - the plugin settings engine (core/host/settings.c):
 * every refusal with its line, defaults ("010" is 10), ABI 1 tables read
 * with their own stride, getters by path, the check() callback in check
 * mode with its problems at the setting's line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "host/settings.h"

/* Problems reported, one "FILE:LINE: msg" per line. */
typedef struct sink {
    char text[8192];
    int n;
} sink_t;

static void collect(void *arg, const char *file, int line, const char *msg)
{
    sink_t *s = arg;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof s->text - used, "%s:%d: %s\n", file, line,
             msg);
    s->n++;
}

static void expect_has(const sink_t *s, const char *want)
{
    if (strstr(s->text, want) == NULL) {
        print_error("missing: %s\nin:\n%s", want, s->text);
        fail();
    }
}

static const sc_settings_where_t W = {
    .file = "t.conf", .dir = "/etc/sc", .plugin = "p", .line = 3,
    .settings_line = 5,
};

/* Validate `text` (libconfig, lines as in the text) against `defs`. */
static int run(const char *text, const sc_setting_def_t *defs, size_t stride,
               sink_t *sk, sc_settings_t **out)
{
    char err[256];
    sc_sv_t *t = sc_sv_parse(text, err, sizeof err);
    if (t == NULL) {
        print_error("parse: %s\n", err);
        fail();
    }
    memset(sk, 0, sizeof *sk);
    int n = sc_settings_validate(&W, t, defs, stride, collect, sk, out);
    sc_sv_destroy(&t);
    return n;
}

static const char *const severities[] = { "Minor", "Moderate", "Severe",
                                          "Extreme", NULL };
static const char *const ops[] = { "<", "<=", ">", ">=", NULL };

static const sc_setting_def_t level_fields[] = {
    SC_SETTING("threshold", SC_SETTING_FLOAT, NULL, 1, "a number"),
    SC_SETTING("severity", SC_SETTING_STRING, NULL, 1, "CAP severity"),
    SC_SETTINGS_END
};

static const sc_setting_def_t rule_fields[] = {
    SC_SETTING("indicator", SC_SETTING_STRING, NULL, 1, "series id"),
    { SC_SETTING_FIELDS("op", SC_SETTING_STRING, NULL, 1, "operator"),
      .allowed = ops },
    SC_SETTING("threshold", SC_SETTING_FLOAT, NULL, 1, "threshold"),
    { SC_SETTING_FIELDS("severity", SC_SETTING_STRING, NULL, 1, "severity"),
      .allowed = severities },
    { SC_SETTING_FIELDS("consecutive", SC_SETTING_INT, "1", 0, "N"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 1, .max = 100 },
    { SC_SETTING_FIELDS("escalate", SC_SETTING_GROUP, NULL, 0, "levels"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MAX, .max = 3,
      .fields = level_fields },
    SC_SETTINGS_END
};

static const sc_setting_def_t tls_fields[] = {
    SC_SETTING("ca", SC_SETTING_PATH, "ca.pem", 0, "CA file"),
    SC_SETTING("verify", SC_SETTING_BOOL, "true", 0, "verify peer"),
    SC_SETTINGS_END
};

static const sc_setting_def_t table[] = {
    { SC_SETTING_FIELDS("poll_ms", SC_SETTING_INT, "010", 0, "poll"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 10,
      .max = 3600000 },
    { SC_SETTING_FIELDS("ratio", SC_SETTING_FLOAT, "0.5", 0, "ratio"),
      .flags = SC_SETTING_F_MAX, .max = 1 },
    { SC_SETTING_FIELDS("level", SC_SETTING_STRING, "Minor", 0, "severity"),
      .allowed = severities },
    { SC_SETTING_FIELDS("hosts", SC_SETTING_STRING, NULL, 0, "hosts"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MIN, .min = 1 },
    { SC_SETTING_FIELDS("tls", SC_SETTING_GROUP, NULL, 0, "tls"),
      .fields = tls_fields },
    { SC_SETTING_FIELDS("rules", SC_SETTING_GROUP, NULL, 0, "rules"),
      .flags = SC_SETTING_F_LIST, .fields = rule_fields },
    SC_SETTINGS_END
};
#define STRIDE sizeof(sc_setting_def_t)

static void test_defaults_decimal(void **state)
{
    (void)state;
    sink_t sk;
    sc_settings_t *s = NULL;
    assert_int_equal(run("", table, STRIDE, &sk, &s), 0);
    int64_t i = 0;
    double f = 0;
    const char *str = NULL;
    int b = 0;
    size_t n = 0;
    assert_int_equal(sc_settings_int(s, "poll_ms", &i), SC_OK);
    assert_int_equal(i, 10); /* "010" is decimal 10, not octal 8 */
    assert_int_equal(sc_settings_float(s, "ratio", &f), SC_OK);
    assert_true(f == 0.5);
    assert_int_equal(sc_settings_string(s, "level", &str), SC_OK);
    assert_string_equal(str, "Minor");
    /* an optional group not written has its fields' defaults */
    assert_int_equal(sc_settings_string(s, "tls.ca", &str), SC_OK);
    assert_string_equal(str, "/etc/sc/ca.pem");
    assert_int_equal(sc_settings_bool(s, "tls.verify", &b), SC_OK);
    assert_int_equal(b, 1);
    /* optional lists not written are not there */
    assert_int_equal(sc_settings_count(s, "rules", &n), SC_ERR_NO_SETTING);
    assert_int_equal(sc_settings_string(s, "hosts[0]", &str),
                     SC_ERR_NO_SETTING);
    /* a problem with a default lands on the settings group */
    assert_int_equal(sc_settings_line(s, "poll_ms"), 5);
    sc_settings_destroy(&s);
    assert_null(s);
}

static void test_refusals_at_their_line(void **state)
{
    (void)state;
    sink_t sk;
    sc_settings_t *s = NULL;
    int n = run("poll_ms = 5;\n"                       /* 1 */
                "ratio = 1.5;\n"                       /* 2 */
                "level = \"Urgent\";\n"                /* 3 */
                "hosts = \"a\";\n"                     /* 4 */
                "tls = [ \"x\" ];\n"                   /* 5 */
                "rules = (\n"                          /* 6 */
                "  { indicator = \"x\"; op = \"=>\"; threshold = 1;\n" /* 7 */
                "    severity = \"Severe\"; consecutive = 0; },\n"     /* 8 */
                "  { indicator = \"y\"; op = \"<\"; severity = \"Bad\";\n"
                "    colour = 1; escalate = { threshold = 2; }; }\n"   /* 10 */
                ");\n"
                "typo = 1;\n",                         /* 12 */
                table, STRIDE, &sk, &s);
    assert_null(s);
    expect_has(&sk, "t.conf:1: plugin 'p': setting 'poll_ms': 5 is out of "
                    "range (10..3600000)");
    expect_has(&sk, "t.conf:2: plugin 'p': setting 'ratio': 1.5 is out of "
                    "range (<= 1)");
    expect_has(&sk, "t.conf:3: plugin 'p': setting 'level': \"Urgent\" is not "
                    "one of \"Minor\", \"Moderate\", \"Severe\", \"Extreme\"");
    expect_has(&sk, "t.conf:4: plugin 'p': setting 'hosts': must be a list of "
                    "strings, [ a, b ], not a string");
    expect_has(&sk, "t.conf:5: plugin 'p': setting 'tls': must be a group "
                    "{ ... }, not a list");
    expect_has(&sk, "t.conf:7: plugin 'p': setting 'rules[0].op': \"=>\" is "
                    "not one of");
    expect_has(&sk, "t.conf:8: plugin 'p': setting 'rules[0].consecutive': 0 "
                    "is out of range (1..100)");
    expect_has(&sk, "t.conf:9: plugin 'p': setting 'rules[1].severity': "
                    "\"Bad\" is not one of");
    expect_has(&sk, "t.conf:9: plugin 'p': setting 'rules[1].threshold': "
                    "required but not set");
    expect_has(&sk, "t.conf:10: plugin 'p': setting 'rules[1].colour': "
                    "unknown setting (known: indicator, op, threshold, "
                    "severity, consecutive, escalate)");
    expect_has(&sk, "t.conf:10: plugin 'p': setting 'rules[1].escalate': must "
                    "be a list of groups { ... }, ( { ... }, { ... } ), not "
                    "a group");
    expect_has(&sk, "t.conf:12: plugin 'p': setting 'typo': unknown setting");
    assert_int_equal(n, 12);
    assert_int_equal(sk.n, 12);

    /* list length bounds */
    n = run("hosts = [];\n rules = ( { indicator = \"x\"; op = \"<\";\n"
            "threshold = 1; severity = \"Minor\"; escalate = (\n"
            "{ threshold = 1; severity = \"Minor\"; },"
            "{ threshold = 1; severity = \"Minor\"; },"
            "{ threshold = 1; severity = \"Minor\"; },"
            "{ threshold = 1; severity = \"Minor\"; } ); } );",
            table, STRIDE, &sk, &s);
    expect_has(&sk, "t.conf:1: plugin 'p': setting 'hosts': has 0 elements, "
                    "must have >= 1");
    expect_has(&sk, "t.conf:3: plugin 'p': setting 'rules[0].escalate': has "
                    "4 elements, must have <= 3");
    assert_int_equal(n, 2);
    /* wrong element types */
    n = run("hosts = [ 1, 2 ];", table, STRIDE, &sk, &s);
    expect_has(&sk, "t.conf:1: plugin 'p': setting 'hosts[0]': must be a "
                    "string, not an integer");
    assert_int_equal(n, 2);
    /* "": never a path, nor a required string; fine for an optional
     * string (hosts is not required) */
    n = run("tls = { ca = \"\"; };\n"
            "rules = ( { indicator = \"\"; op = \"<\"; threshold = 1;\n"
            "            severity = \"Minor\"; } );\n"
            "hosts = [ \"\" ];\n",
            table, STRIDE, &sk, &s);
    assert_null(s);
    expect_has(&sk, "t.conf:1: plugin 'p': setting 'tls.ca': is an empty "
                    "path (write \".\" for the config file's directory)");
    expect_has(&sk, "t.conf:2: plugin 'p': setting 'rules[0].indicator': "
                    "required but empty (series id)");
    assert_int_equal(n, 2);
    assert_int_equal(sk.n, 2);
}

static void test_getters_by_path(void **state)
{
    (void)state;
    sink_t sk;
    sc_settings_t *s = NULL;
    assert_int_equal(
        run("poll_ms = 250;\nhosts = [ \"a\", \"b\" ];\n"
            "tls = { ca = \"/x/ca\"; };\n"
            "rules = ( { indicator = \"lng\"; op = \"<\"; threshold = 10;\n"
            "  severity = \"Severe\";\n"
            "  escalate = ( { threshold = 7.5; severity = \"Extreme\"; } ); },\n"
            " { indicator = \"chip\"; op = \">\"; threshold = 2.5;\n"
            "  severity = \"Minor\"; consecutive = 3; } );\n",
            table, STRIDE, &sk, &s), 0);
    assert_non_null(s);
    size_t n = 0;
    int64_t i = 0;
    double f = 0;
    const char *str = NULL;
    int b = 0;
    assert_int_equal(sc_settings_count(s, "hosts", &n), SC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sc_settings_string(s, "hosts[1]", &str), SC_OK);
    assert_string_equal(str, "b");
    assert_int_equal(sc_settings_string(s, "tls.ca", &str), SC_OK);
    assert_string_equal(str, "/x/ca");
    assert_int_equal(sc_settings_bool(s, "tls.verify", &b), SC_OK);
    assert_int_equal(b, 1); /* default inside a written group */
    assert_int_equal(sc_settings_count(s, "rules", &n), SC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sc_settings_string(s, "rules[1].indicator", &str), 0);
    assert_string_equal(str, "chip");
    assert_int_equal(sc_settings_float(s, "rules[0].threshold", &f), SC_OK);
    assert_true(f == 10.0); /* an integer given to a FLOAT */
    assert_int_equal(sc_settings_int(s, "rules[0].consecutive", &i), SC_OK);
    assert_int_equal(i, 1);
    assert_int_equal(sc_settings_int(s, "rules[1].consecutive", &i), SC_OK);
    assert_int_equal(i, 3);
    assert_int_equal(sc_settings_count(s, "rules[0].escalate", &n), SC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sc_settings_float(s, "rules[0].escalate[0].threshold",
                                       &f), SC_OK);
    assert_true(f == 7.5);
    /* absent, wrong type, malformed */
    assert_int_equal(sc_settings_string(s, "rules[2].op", &str),
                     SC_ERR_NO_SETTING);
    assert_int_equal(sc_settings_string(s, "nope", &str), SC_ERR_NO_SETTING);
    assert_int_equal(sc_settings_int(s, "hosts[0]", &i), SC_ERR_ARG);
    assert_int_equal(sc_settings_string(s, "rules[x]", &str), SC_ERR_ARG);
    assert_int_equal(sc_settings_string(s, "rules.", &str), SC_ERR_ARG);
    assert_int_equal(sc_settings_string(s, "", &str), SC_ERR_ARG);
    assert_int_equal(sc_settings_string(s, "hosts[0]", NULL), SC_ERR_ARG);
    /* lines */
    assert_int_equal(sc_settings_line(s, "rules[1].consecutive"), 8);
    assert_int_equal(sc_settings_line(s, "rules[0].escalate[0].threshold"),
                     6);
    assert_int_equal(sc_settings_line(s, "rules[0].consecutive"), 4);
    assert_int_equal(sc_settings_line(s, "rules[9].op"), 4);
    assert_int_equal(sc_settings_line(s, "nope"), 5);

    /* copies compare equal, a change does not */
    sc_settings_t *c = sc_settings_copy(s);
    assert_true(sc_settings_equal(s, c));
    sc_settings_t *o = NULL;
    assert_int_equal(run("poll_ms = 251;", table, STRIDE, &sk, &o), 0);
    assert_false(sc_settings_equal(s, o));
    sc_settings_destroy(&o);
    sc_settings_destroy(&c);
    sc_settings_destroy(&s);
}

/* An ABI 1 plugin's table: only the first five members, a shorter stride. */
typedef struct abi1_def {
    const char *name;
    sc_setting_type_t type;
    const char *default_value;
    int required;
    const char *description;
} abi1_def_t;

static void test_abi1_stride(void **state)
{
    (void)state;
    static const abi1_def_t t1[] = {
        { "interval_ms", SC_SETTING_INT, "0100", 0, "ms" },
        { "channel", SC_SETTING_STRING, NULL, 1, "channel" },
        { "verbose", SC_SETTING_BOOL, "false", 0, "chatty" },
        { NULL, 0, NULL, 0, NULL },
    };
    assert_int_equal(sizeof(abi1_def_t), SC_SETTINGS_ABI1_STRIDE);
    sink_t sk;
    sc_settings_t *s = NULL;
    const sc_setting_def_t *defs = (const sc_setting_def_t *)(const void *)t1;
    assert_int_equal(run("channel = \"x.y\"; verbose = true;", defs,
                         sizeof(abi1_def_t), &sk, &s), 0);
    int64_t i = 0;
    int b = 0;
    assert_int_equal(sc_settings_int(s, "interval_ms", &i), SC_OK);
    assert_int_equal(i, 100);
    assert_int_equal(sc_settings_bool(s, "verbose", &b), SC_OK);
    assert_int_equal(b, 1);
    sc_settings_destroy(&s);
    assert_int_equal(run("verbose = 1;", defs, sizeof(abi1_def_t), &sk, &s),
                     2);
    expect_has(&sk, "t.conf:5: plugin 'p': setting 'channel': required but "
                    "not set (channel)");
    expect_has(&sk, "t.conf:1: plugin 'p': setting 'verbose': must be a "
                    "boolean (true or false), not an integer");

    /* the descriptor says which stride */
    sc_plugin_t d1 = { .abi_version = 1, .settings = defs };
    assert_int_equal(sc_settings_def_stride(&d1), SC_SETTINGS_ABI1_STRIDE);
    assert_null(sc_settings_check_of(&d1));
    sc_plugin_t d2 = { .abi_version = 2, SC_PLUGIN_SIZES };
    assert_int_equal(sc_settings_def_stride(&d2), sizeof(sc_setting_def_t));
    /* a stride that cannot be a table */
    assert_int_equal(run("", table, 12, &sk, &s), 1);
    expect_has(&sk, "t.conf:3: plugin 'p': settings table entries of 12 bytes");
}

static void test_bad_defaults_are_plugin_bugs(void **state)
{
    (void)state;
    static const sc_setting_def_t bad[] = {
        SC_SETTING("n", SC_SETTING_INT, "0x10", 0, ""),
        { SC_SETTING_FIELDS("m", SC_SETTING_INT, "5", 0, ""),
          .flags = SC_SETTING_F_MIN, .min = 10 },
        { SC_SETTING_FIELDS("s", SC_SETTING_STRING, "Urgent", 0, ""),
          .allowed = severities },
        { SC_SETTING_FIELDS("g", SC_SETTING_GROUP, NULL, 0, "") },
        SC_SETTINGS_END
    };
    sink_t sk;
    sc_settings_t *s = NULL;
    assert_int_equal(run("", bad, STRIDE, &sk, &s), 4);
    expect_has(&sk, "t.conf:3: plugin 'p': setting 'n': default value '0x10' "
                    "is not an integer (a bug in the plugin)");
    expect_has(&sk, "t.conf:3: plugin 'p': setting 'm': default value 5 is out "
                    "of range (>= 10) (a bug in the plugin)");
    expect_has(&sk, "t.conf:3: plugin 'p': setting 's': default value "
                    "\"Urgent\" is not one of");
    expect_has(&sk, "t.conf:3: plugin 'p': setting 'g': declared as a group "
                    "without fields (a bug in the plugin)");
}

/* check(): reads settings by path, reports problems at their lines. */
static int plugin_check(sc_host_t *h, const sc_host_api_t *api)
{
    size_t n = 0;
    if (api->setting_count(h, "rules", &n) != SC_OK)
        return SC_OK;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        const char *ind = NULL;
        snprintf(path, sizeof path, "rules[%zu].indicator", i);
        if (api->setting_string(h, path, &ind) == SC_OK &&
            strcmp(ind, "known") != 0) {
            api->setting_problem(h, path, "no series \"%s\"", ind);
            bad++;
        }
    }
    if (api->publish(h, "a.b", "k", NULL, "{}") != SC_ERR_UNSUPPORTED ||
        api->timer_add(h, 10, 1, NULL, NULL) != SC_ERR_UNSUPPORTED ||
        !api->is_granted(h, "energy.lng.alerts") ||
        api->is_granted(h, "semis.x") || api->channel_count(h) != 1 ||
        strcmp(api->instance_name(h), "p") != 0)
        api->setting_problem(h, "x", "check-mode table is wrong");
    api->log(h, SC_LOG_INFO, "checked %zu rules", n);
    return bad ? SC_ERR_BAD_SETTING : SC_OK;
}

static int refuse_silently(sc_host_t *h, const sc_host_api_t *api)
{
    (void)h;
    (void)api;
    return SC_ERR_ARG;
}

static void log_line(void *arg, sc_log_level_t level, const char *line)
{
    (void)level;
    snprintf(arg, 64, "%s", line);
}

static void test_check_callback(void **state)
{
    (void)state;
    sink_t sk;
    sc_settings_t *s = NULL;
    assert_int_equal(
        run("rules = (\n"
            " { indicator = \"known\"; op = \"<\"; threshold = 1;\n"
            "   severity = \"Minor\"; },\n"
            " { indicator = \"other\"; op = \"<\"; threshold = 1;\n"
            "   severity = \"Minor\"; } );\n",
            table, STRIDE, &sk, &s), 0);
    const char *chans[] = { "energy." };
    char logged[64] = "";
    sc_settings_check_env_t env = { .instance = "p", .channels = chans,
                                    .n_channels = 1, .log = log_line,
                                    .log_arg = logged };
    assert_int_equal(sc_settings_run_check(plugin_check, s, &env, collect,
                                           &sk), 1);
    expect_has(&sk, "t.conf:4: plugin 'p': setting 'rules[1].indicator': no "
                    "series \"other\"");
    assert_int_equal(sk.n, 1);
    assert_string_equal(logged, "checked 2 rules");

    memset(&sk, 0, sizeof sk);
    assert_int_equal(sc_settings_run_check(refuse_silently, s, &env, collect,
                                           &sk), 1);
    expect_has(&sk, "t.conf:5: plugin 'p': check() refused the settings "
                    "(invalid argument)");
    assert_int_equal(sc_settings_run_check(NULL, s, &env, collect, &sk), 0);
    sc_settings_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_decimal),
        cmocka_unit_test(test_refusals_at_their_line),
        cmocka_unit_test(test_getters_by_path),
        cmocka_unit_test(test_abi1_stride),
        cmocka_unit_test(test_bad_defaults_are_plugin_bugs),
        cmocka_unit_test(test_check_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
