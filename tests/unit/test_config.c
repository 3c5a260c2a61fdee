/*
 * test_config.c - the broker's config loader (core/broker/config.c) and the
 * diagnostics list (core/broker/diag.c).
 *
 * Fixtures with fixed line numbers live in tests/unit/configs/; configs
 * that need key files are written at run time into a mkdtemp() directory
 * (no secret is committed). Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define STRIDE sizeof(sc_setting_def_t)

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "broker/config.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* Repository root as a prefix ("" when built with relative paths, as
 * SCons does; then the tests must run from the root). */
static char g_root[512];

static void init_root(void)
{
    const char *f = __FILE__;
    const char *tail = "tests/unit/test_config.c";
    size_t fl = strlen(f), tl = strlen(tail);
    size_t n = fl >= tl && strcmp(f + fl - tl, tail) == 0 ? fl - tl : 0;
    if (n >= sizeof g_root)
        n = 0;
    memcpy(g_root, f, n);
    g_root[n] = '\0';
}

static void fixture(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%stests/unit/configs/%s", g_root, name);
}

/* Absolute, real directory of the fixtures. */
static void fixture_dir(char *out)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%stests/unit/configs", g_root);
    assert_non_null(realpath(rel, out));
}

static void dump(const sc_diag_t *d)
{
    fprintf(stderr, "--- %zu diagnostics:\n", d->count);
    sc_diag_print(d, stderr);
}

/* Assert that the diag holds exactly this line. */
static void expect(const sc_diag_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect(const sc_diag_t *d, const char *fmt, ...)
{
    char want[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->lines[i], want) == 0)
            return;
    dump(d);
    fail_msg("missing diagnostic: %s", want);
}

/* Assert that some line starts with `prefix` and contains `needle`. */
static void expect_like(const sc_diag_t *d, const char *prefix,
                        const char *needle)
{
    for (size_t i = 0; i < d->count; i++)
        if (strncmp(d->lines[i], prefix, strlen(prefix)) == 0 &&
            strstr(d->lines[i], needle) != NULL)
            return;
    dump(d);
    fail_msg("missing diagnostic: %s...%s...", prefix, needle);
}

static void expect_count(const sc_diag_t *d, size_t n)
{
    if (d->count != n) {
        dump(d);
        fail_msg("expected %zu diagnostics, got %zu", n, d->count);
    }
}

/* Load a fixture that must load (its problems are printed if not). */
static sc_config_t *load_good(const char *name, char *path, size_t n,
                              sc_diag_t *d)
{
    fixture(path, n, name);
    sc_config_t *cfg = sc_config_load(path, false, d);
    if (cfg == NULL)
        dump(d);
    assert_non_null(cfg);
    return cfg;
}

/* Load a fixture that must fail; returns its path in `path`. */
static void load_bad(const char *name, char *path, size_t n, sc_diag_t *d)
{
    fixture(path, n, name);
    sc_config_t *cfg = sc_config_load(path, false, d);
    if (cfg != NULL)
        dump(d);
    assert_null(cfg);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t sl = strlen(s), tl = strlen(tail);
    return sl >= tl && strcmp(s + sl - tl, tail) == 0;
}

/* A scratch directory with files; removed by tmp_cleanup. */
typedef struct tmpdir {
    char dir[64];
    char real[PATH_MAX];
    char made[16][PATH_MAX];
    int n;
} tmpdir_t;

static void tmp_init(tmpdir_t *t)
{
    memset(t, 0, sizeof *t);
    strcpy(t->dir, "/tmp/sc-test-config-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    assert_non_null(realpath(t->dir, t->real));
}

static void tmp_path(const tmpdir_t *t, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", t->dir, name);
}

static void tmp_write(tmpdir_t *t, const char *name, mode_t mode,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void tmp_write(tmpdir_t *t, const char *name, mode_t mode,
                      const char *fmt, ...)
{
    char p[PATH_MAX];
    tmp_path(t, name, p, sizeof p);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
    bool known = false;
    for (int i = 0; i < t->n; i++)
        known = known || strcmp(t->made[i], p) == 0;
    if (!known) {
        assert_true(t->n < 16);
        strcpy(t->made[t->n++], p);
    }
}

static void tmp_mkdir(tmpdir_t *t, const char *name)
{
    char p[PATH_MAX];
    tmp_path(t, name, p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_true(t->n < 16);
    strcpy(t->made[t->n++], p);
}

static void tmp_cleanup(tmpdir_t *t)
{
    for (int i = t->n - 1; i >= 0; i--) {
        struct stat st;
        if (stat(t->made[i], &st) == 0 && S_ISDIR(st.st_mode))
            rmdir(t->made[i]);
        else
            unlink(t->made[i]);
    }
    rmdir(t->dir);
}

/* ------------------------------------------------------------------------
 * Diagnostics list
 * ---------------------------------------------------------------------- */

static void test_diag_format(void **state)
{
    (void)state;
    sc_diag_t d = {0};
    sc_diag_add(&d, "a.conf", 12, "unknown setting '%s'", "x");
    sc_diag_add(&d, "a.conf", 0, "cannot read");
    assert_int_equal(d.count, 2);
    assert_string_equal(d.lines[0], "a.conf:12: unknown setting 'x'");
    assert_string_equal(d.lines[1], "a.conf: cannot read");
    sc_diag_clear(&d);
    assert_int_equal(d.count, 0);
    assert_null(d.lines);
    sc_diag_clear(&d);
}

/* ------------------------------------------------------------------------
 * Loading valid files
 * ---------------------------------------------------------------------- */

static void test_default_conf_loads(void **state)
{
    (void)state;
    char path[PATH_MAX], confdir[PATH_MAX], want[PATH_MAX + 64];
    snprintf(path, sizeof path, "%sconf/sectorcast.conf", g_root);
    sc_diag_t d = {0};
    sc_config_t *cfg = sc_config_load(path, false, &d);
    if (cfg == NULL)
        dump(&d);
    assert_non_null(cfg);
    expect_count(&d, 0);

    snprintf(want, sizeof want, "%sconf", g_root);
    assert_non_null(realpath(want, confdir));
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->dir, confdir);
    assert_string_equal(cfg->gateway_id, "kus-gateway-seoul");
    /* "../var/data" folds into the config dir's parent */
    char *slash = strrchr(confdir, '/');
    snprintf(want, sizeof want, "%.*s/var/data", (int)(slash - confdir),
             confdir);
    assert_string_equal(cfg->data_dir, want);
    assert_int_equal(cfg->max_data_bytes, 65536);
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->publish_endpoint, "tcp://127.0.0.1:7601");
    assert_string_equal(cfg->service_endpoint, "tcp://127.0.0.1:7602");
    assert_true(cfg->durability_full);
    assert_int_equal(cfg->heartbeat_ms, 1000);
    assert_int_equal(cfg->max_subscriptions, 256);
    assert_int_equal(cfg->replay_rate, 60000);
    snprintf(want, sizeof want, "%s/keys/broker.secret", confdir);
    assert_string_equal(cfg->curve_secret_file, want);
    snprintf(want, sizeof want, "%s/keys/broker.public", confdir);
    assert_string_equal(cfg->curve_public_file, want);

    assert_int_equal(cfg->n_keys, 1);
    assert_string_equal(cfg->keys[0].id, "signing");
    snprintf(want, sizeof want, "%s/keys/signing.jwk", confdir);
    assert_string_equal(cfg->keys[0].file, want);
    assert_string_equal(cfg->active_key, "signing");
    assert_int_equal(cfg->n_sign_rules, 0);
    snprintf(want, sizeof want, "%s/keys/jwks.json", confdir);
    assert_string_equal(cfg->jwks_file, want);

    assert_int_equal(cfg->n_sectors, 3);
    assert_string_equal(cfg->sectors[1].name, "semis_ai");
    assert_int_equal(cfg->sectors[1].n_subtrees, 2);
    assert_string_equal(cfg->sectors[1].subtrees[1], "ai.");

    assert_int_equal(cfg->n_agencies, 2);
    assert_string_equal(cfg->agencies[0].id, "motie");
    assert_int_equal(cfg->agencies[0].n_grants, 5);
    snprintf(want, sizeof want, "%s/keys/motie.public", confdir);
    assert_string_equal(cfg->agencies[0].public_key_file, want);
    assert_string_equal(cfg->agencies[1].grants[0], "energy.");

    assert_int_equal(cfg->n_plugins, 3);
    assert_string_equal(cfg->plugins[1].name, "semis_ai");
    assert_false(cfg->plugins[1].isolate_process);
    assert_string_equal(cfg->plugins[2].name, "defense_shipbuilding");
    assert_true(cfg->plugins[2].isolate_process);
    sc_cfg_plugin_t *p = &cfg->plugins[0];
    assert_string_equal(p->name, "energy");
    assert_true(ends_with(p->path, "/build/plugins/energy.so"));
    assert_true(p->path[0] == '/');
    assert_string_equal(p->sector, "energy");
    assert_int_equal(p->n_channels, 3);
    assert_string_equal(p->channels[2], "energy.lng.");
    assert_non_null(p->settings_written);
    assert_int_equal(p->settings_written->n_items, 4);
    assert_false(p->isolate_process);
    const sc_sv_t *w = p->settings_written->items;
    assert_string_equal(w[0].name, "register_dir");
    assert_int_equal(w[0].kind, SC_SV_STRING);
    assert_string_equal(w[0].s, "registers/energy");
    assert_int_equal(w[1].kind, SC_SV_INT);
    assert_int_equal(w[1].i, 1000);
    assert_true(w[1].line > p->line);

    sc_config_destroy(&cfg);
    assert_null(cfg);
    sc_diag_clear(&d);
}

static void test_defaults_filled(void **state)
{
    (void)state;
    char path[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 64];
    fixture_dir(dir);
    sc_diag_t d = {0};
    sc_config_t *cfg = load_good("defaults.conf", path, sizeof path, &d);
    snprintf(want, sizeof want, "%s/var", dir);
    assert_string_equal(cfg->data_dir, want);
    snprintf(want, sizeof want, "%s/var/jwks.json", dir);
    assert_string_equal(cfg->jwks_file, want);
    assert_int_equal(cfg->max_data_bytes, 65536);
    assert_string_equal(cfg->log_level, "info");
    assert_true(cfg->durability_full);
    assert_int_equal(cfg->heartbeat_ms, 1000);
    assert_int_equal(cfg->sign_threads, 0);
    assert_int_equal(cfg->stop_timeout_ms, 5000);
    assert_null(cfg->plugin_user);
    /* limits absent: every default (docs/configuration.md) */
    assert_int_equal(cfg->max_subscriptions, 256);
    assert_int_equal(cfg->service_rate, 50);
    assert_int_equal(cfg->service_burst, 100);
    assert_int_equal(cfg->replay_batch, 1000);
    assert_int_equal(cfg->replay_rate, 60000);
    assert_int_equal(cfg->handshake_timeout_ms, 5000);
    assert_int_equal(cfg->max_unauthenticated, 256);
    assert_int_equal(cfg->max_connections_per_address, 64);
    assert_int_equal(cfg->max_connections_per_agency, 16);
    assert_int_equal(cfg->send_queue_bytes, 256LL * 1024 * 1024);
    assert_int_equal(cfg->slow_subscriber_ms, 10000);
    assert_int_equal(cfg->max_heartbeats, 1000);
    assert_int_equal(cfg->max_channels_per_plugin, 1000);
    /* operations groups absent */
    assert_true(cfg->control_enabled);
    assert_null(cfg->http_listen);
    assert_null(cfg->audit_path);
    assert_int_equal(cfg->audit_max_bytes, 10485760);
    assert_int_equal(cfg->audit_keep, 5);
    assert_null(cfg->log_target);
    assert_null(cfg->service_endpoint);
    assert_null(cfg->curve_secret_file);
    assert_null(cfg->curve_public_file);
    assert_int_equal(cfg->n_agencies, 0);
    snprintf(want, sizeof want, "%s/keys/k1.jwk", dir);
    assert_string_equal(cfg->keys[0].file, want);
    /* the disabled plugin is kept out of the list */
    assert_int_equal(cfg->n_plugins, 1);
    assert_string_equal(cfg->plugins[0].name, "on");
    assert_string_equal(cfg->plugins[0].path, "/opt/sc/on.so");
    assert_null(cfg->plugins[0].settings_written);
    assert_int_equal(cfg->plugins[0].line, 7);
    assert_int_equal(cfg->plugins[0].settings_line, 7);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);

    sc_config_destroy(&cfg);   /* already NULL: no-op */
    sc_config_destroy(NULL);
}

/* The gateway and limits groups are read through the settings engine:
 * every value lands in its own field. */
static void test_scalar_groups_values(void **state)
{
    (void)state;
    char path[PATH_MAX];
    sc_diag_t d = {0};
    sc_config_t *cfg = load_good("limits_ok.conf", path, sizeof path, &d);
    assert_false(cfg->durability_full);
    assert_int_equal(cfg->heartbeat_ms, 0);
    assert_int_equal(cfg->sign_threads, 3);
    assert_int_equal(cfg->stop_timeout_ms, 700);
    assert_string_equal(cfg->plugin_user, "");
    assert_string_equal(cfg->data_dir, "/var/lib/sc");
    assert_int_equal(cfg->max_subscriptions, 11);
    assert_int_equal(cfg->service_rate, 12);
    assert_int_equal(cfg->service_burst, 13);
    assert_int_equal(cfg->replay_batch, 14);
    assert_int_equal(cfg->replay_rate, 15);
    assert_int_equal(cfg->handshake_timeout_ms, 1016);
    assert_int_equal(cfg->max_unauthenticated, 17);
    assert_int_equal(cfg->max_connections_per_address, 18);
    assert_int_equal(cfg->max_connections_per_agency, 19);
    assert_int_equal(cfg->send_queue_bytes, 2000020);
    assert_int_equal(cfg->slow_subscriber_ms, 1021);
    assert_int_equal(cfg->max_heartbeats, 22);
    assert_int_equal(cfg->max_channels_per_plugin, 23);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
}

/* Their problems, each at its line: the engine's (range, type, unknown)
 * and the ones a table cannot say (0 or at least N; the send queue
 * against the largest message). */
static void test_scalar_groups_problems(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("limits.conf", p, sizeof p, &d);
    expect(&d, "%s:3: setting 'gateway.heartbeat_ms': 10 is out of range (0 "
               "= off, or 50..3600000)", p);
    expect(&d, "%s:9: setting 'limits.replay_rate': -1 is out of range "
               "(0..10000000)", p);
    expect(&d, "%s:10: setting 'limits.service_rate': must be an integer, "
               "not a string", p);
    expect(&d, "%s:11: setting 'limits.slow_subscriber_ms': 500 is out of "
               "range (0 = never cut, or 1000..3600000)", p);
    expect_like(&d, p, "12: setting 'limits.max_channel': unknown setting "
                       "(known: max_subscriptions, ");
    expect_count(&d, 5);
    sc_diag_clear(&d);

    /* the send queue must hold 16 of the largest messages: 16 x 1.4 MB */
    tmpdir_t t;
    tmp_init(&t);
    tmp_write(&t, "q.conf", 0644, "%s",
              "gateway: { id = \"gw\"; max_data_bytes = 1048576; };\n"
              "listen: { publish = \"ipc:///tmp/sc-q.sock\"; };\n"
              "signing: { keys = ( { id = \"k1\"; file = \"k1.jwk\"; } ); "
              "active = \"k1\"; };\n"
              "sectors: { energy = [ \"energy.\" ]; };\n"
              "limits: { send_queue_bytes = 1048576; };\n");
    tmp_path(&t, "q.conf", p, sizeof p);
    assert_null(sc_config_load(p, false, &d));
    expect(&d, "%s:5: setting 'limits.send_queue_bytes': 1048576 cannot hold "
               "16 messages of the largest size gateway.max_data_bytes "
               "allows: at least 22425664", p);
    expect_count(&d, 1);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

/* The operations groups go through the same engine: values land in their
 * fields, problems are reported at their lines in the same words. */
static void test_ops_groups(void **state)
{
    (void)state;
    char path[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 32];
    fixture_dir(dir);
    sc_diag_t d = {0};
    sc_config_t *cfg = load_good("ops_ok.conf", path, sizeof path, &d);
    assert_false(cfg->control_enabled);
    assert_string_equal(cfg->http_listen, "127.0.0.1:9464");
    snprintf(want, sizeof want, "%s/audit.log", dir);
    assert_string_equal(cfg->audit_path, want);
    assert_int_equal(cfg->audit_max_bytes, 0);
    assert_int_equal(cfg->audit_keep, 7);
    assert_string_equal(cfg->log_target, "syslog");
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);

    load_bad("ops.conf", path, sizeof path, &d);
    expect(&d, "%s:6: setting 'control.enabled': must be a boolean (true or "
               "false), not a string", path);
    expect_like(&d, path, ":7: setting 'monitoring.listen': bad address "
                          "'localhost': ");
    expect(&d, "%s:8: setting 'audit.max_bytes': 100 is out of range (0 = "
               "never rotate, or 4096..1099511627776)", path);
    expect(&d, "%s:8: setting 'audit.keep': 0 is out of range (1..100)",
           path);
    expect(&d, "%s:9: setting 'logging.target': must not be empty "
               "(\"stderr\", \"syslog\" or a file path)", path);
    expect(&d, "%s:10: setting 'curve.secret_key': is an empty path (write "
               "\".\" for the config file's directory)", path);
    expect_like(&d, path, ":10: setting 'curve.colour': unknown setting "
                          "(known: secret_key, public_key)");
    expect_count(&d, 7);
    sc_diag_clear(&d);
}

/* ------------------------------------------------------------------------
 * Each class of error, with its FILE:LINE
 * ---------------------------------------------------------------------- */

static void test_file_missing(void **state)
{
    (void)state;
    char p[PATH_MAX];
    fixture(p, sizeof p, "nope.conf");
    sc_diag_t d = {0};
    assert_null(sc_config_load(p, false, &d));
    expect(&d, "%s: cannot read config: No such file or directory", p);
    expect_count(&d, 1);
    sc_diag_clear(&d);
}

static void test_syntax_error(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("syntax.conf", p, sizeof p, &d);
    expect_count(&d, 1);
    expect(&d, "%s:4: syntax error", p);
    sc_diag_clear(&d);
}

static void test_unknown_settings(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("unknown.conf", p, sizeof p, &d);
    expect(&d, "%s:2: setting 'gateway.colour': unknown setting (known: id, "
               "data_dir, max_data_bytes, log_level, durability, "
               "heartbeat_ms, sign_threads, stop_timeout_ms, plugin_user)",
           p);
    expect(&d, "%s:5: setting 'listen.publsh': unknown setting (known: "
               "publish, service)", p);
    expect(&d, "%s:3: setting 'listen.publish': required but not set "
               "(endpoint agencies subscribe on: tcp://HOST:PORT, "
               "ipc:///path or inproc://name)", p);
    expect(&d, "%s:7: signing key 'k1': unknown setting 'size'", p);
    expect(&d, "%s:9: agency 'a': unknown setting 'typo'", p);
    expect(&d, "%s:10: plugin 'p': unknown setting 'enable'", p);
    expect(&d, "%s:11: unknown top-level setting 'extra'", p);
    expect_count(&d, 7);
    /* reported in file order */
    assert_true(strstr(d.lines[0], ":2: ") != NULL);
    assert_true(strstr(d.lines[6], ":11: ") != NULL);
    sc_diag_clear(&d);
}

static void test_wrong_types(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("types.conf", p, sizeof p, &d);
    expect(&d, "%s:4: setting 'gateway.id': must be a string, not an "
               "integer", p);
    expect(&d, "%s:5: setting 'gateway.max_data_bytes': must be an integer, "
               "not a string", p);
    expect(&d, "%s:6: setting 'gateway.log_level': must be a string, not a "
               "boolean", p);
    expect(&d, "%s:7: setting 'gateway.data_dir': must be a string (a path), "
               "not a number", p);
    expect(&d, "%s:9: 'listen' must be a group ( listen: { ... }; )", p);
    expect(&d, "%s:12: 'keys' must be a list of groups ( { ... }, ... )", p);
    expect(&d, "%s:13: 'active' must be a string", p);
    expect(&d, "%s:15: 'energy' must be an array of strings [ \"...\", ... ]",
           p);
    expect(&d, "%s:15: 'ai' must be an array of strings [ \"...\", ... ]", p);
    expect(&d, "%s:16: agency 'a': 'public_key' must be a string", p);
    expect(&d, "%s:16: agency 'a': 'grants' must be an array of strings "
               "[ \"...\", ... ]", p);
    expect(&d, "%s:18: plugin 'p': 'channels' must be an array of strings "
               "[ \"...\", ... ]", p);
    expect(&d, "%s:19: plugin 'p': 'enabled' must be a boolean (true or "
               "false)", p);
    /* settings 'list' and 'nested' are fine here: lists and groups are
     * shapes a plugin's table may declare (checked against it later) */
    expect_count(&d, 13);
    sc_diag_clear(&d);
}

static void test_missing_required(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("missing.conf", p, sizeof p, &d);
    expect(&d, "%s:2: setting 'gateway.id': required but not set (this "
               "gateway's id, [a-z0-9_-]+)", p);
    expect_like(&d, p, ":5: setting 'listen.publish': required but not set");
    expect(&d, "%s:6: signing.keys[0]: missing required setting 'id'", p);
    expect(&d, "%s:6: missing required setting 'signing.active'", p);
    expect(&d, "%s: missing required setting 'sectors'", p);
    expect(&d, "%s:7: plugin 'p': missing required setting 'path'", p);
    expect(&d, "%s:7: plugin 'p': missing required setting 'sector'", p);
    expect(&d, "%s:7: plugin 'p': missing required setting 'channels'", p);
    expect_count(&d, 8);
    sc_diag_clear(&d);
}

static void test_channels_and_sectors(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("channels.conf", p, sizeof p, &d);
    expect(&d, "%s:8: signing.channels[0]: subtree 'Energy.' is not a valid "
               "subtree (lowercase [a-z0-9-] segments, each followed by '.', "
               "e.g. 'energy.nuclear.')", p);
    expect(&d, "%s:13: sector 'semis_ai': subtree 'ai' must end with '.' "
               "(write 'ai.')", p);
    expect(&d, "%s:14: sector name 'Bad' is not a valid id ([a-z0-9_-]+)", p);
    expect(&d, "%s:17: agency 'a': grant 'energy..' is not a valid subtree "
               "(lowercase [a-z0-9-] segments, each followed by '.', e.g. "
               "'energy.nuclear.')", p);
    expect(&d, "%s:22: plugin 'energy' is granted channel 'semis.ai.' "
               "outside its sector 'energy' (energy.)", p);
    expect(&d, "%s:23: plugin 'x': unknown sector 'nope'", p);
    expect(&d, "%s:23: plugin 'x': channel 'energy.lng.tasks' must end with "
               "'.' (write 'energy.lng.tasks.')", p);
    expect_count(&d, 7);
    sc_diag_clear(&d);
}

static void test_duplicates_and_key_refs(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("dups.conf", p, sizeof p, &d);
    expect(&d, "%s:7: duplicate signing key id 'k1' (first at line 6)", p);
    expect(&d, "%s:8: 'active' names key 'k2', which is not in signing.keys",
           p);
    expect(&d, "%s:9: signing.channels[0]: 'active' names key 'k9', which is "
               "not in signing.keys", p);
    expect(&d, "%s:10: duplicate signing rule for subtree 'energy.' (first "
               "at line 9)", p);
    expect(&d, "%s:15: duplicate agency id 'a' (first at line 14)", p);
    expect(&d, "%s:15: agency 'a': same public key as agency 'a' (line 14)",
           p);
    /* a disabled plugin still may not reuse a name */
    expect(&d, "%s:19: duplicate plugin name 'p' (first at line 18)", p);
    expect_count(&d, 7);
    sc_diag_clear(&d);
}

static void test_bad_values(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("values.conf", p, sizeof p, &d);
    expect(&d, "%s:4: setting 'gateway.id': \"KUS Gateway\" is not a valid "
               "id ([a-z0-9_-]+)", p);
    expect(&d, "%s:5: setting 'gateway.max_data_bytes': 63 is out of range "
               "(64..16777216)", p);
    expect(&d, "%s:6: setting 'gateway.log_level': \"verbose\" is not one of "
               "\"debug\", \"info\", \"warn\", \"error\"", p);
    expect(&d, "%s:9: signing.keys[0]: 'id' value 'k.1' is not a valid id "
               "([a-z0-9_-]+)", p);
    expect(&d, "%s:10: sector 'empty': no subtrees (write e.g. empty = "
               "[ \"empty.\" ];)", p);
    expect(&d, "%s:12: agencies[0]: 'id' value 'Motie' is not a valid id "
               "([a-z0-9_-]+)", p);
    expect(&d, "%s:12: agency 'Motie': 'public_key' is not a valid Z85 key "
               "(40 characters as written by zmq_curve_keypair)", p);
    expect(&d, "%s:15: plugins[0]: 'name' value 'energy!' is not a valid id "
               "([a-z0-9_-]+)", p);
    expect(&d, "%s:15: plugin 'energy!': 'channels' must grant at least one "
               "channel", p);
    expect_count(&d, 9);
    sc_diag_clear(&d);
}

static void test_odd_shapes(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    load_bad("shapes.conf", p, sizeof p, &d);
    expect(&d, "%s:2: setting 'gateway.id': required but empty (this "
               "gateway's id, [a-z0-9_-]+)", p);
    expect(&d, "%s:4: 'keys'[1] must be a group { ... }", p);
    expect(&d, "%s:5: 'sectors' must be a group ( sectors: { ... }; )", p);
    expect(&d, "%s:6: 'plugins'[0] must be a group { ... }", p);
    expect_count(&d, 4);
    sc_diag_clear(&d);

    /* an empty file: every required group is missing, no line to name */
    tmpdir_t t;
    tmp_init(&t);
    tmp_write(&t, "empty.conf", 0644, "%s", "");
    tmp_path(&t, "empty.conf", p, sizeof p);
    assert_null(sc_config_load(p, false, &d));
    expect(&d, "%s: missing required setting 'gateway'", p);
    expect(&d, "%s: missing required setting 'listen'", p);
    expect(&d, "%s: missing required setting 'signing'", p);
    expect(&d, "%s: missing required setting 'sectors'", p);
    expect_count(&d, 4);
    sc_diag_clear(&d);

    /* a directory is not a config file */
    assert_null(sc_config_load(t.dir, false, &d));
    expect(&d, "%s: cannot read config: not a regular file", t.dir);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

/* ------------------------------------------------------------------------
 * Endpoints (configs written at run time, publish on line 3)
 * ---------------------------------------------------------------------- */

static const char endpoint_conf[] =
    "gateway: { id = \"gw\"; };\n"
    "listen: {\n"
    "  publish = \"%s\";\n"
    "  %s\n"
    "};\n"
    "signing: { keys = ( { id = \"k1\"; file = \"k1.jwk\"; } ); "
    "active = \"k1\"; };\n"
    "sectors: { energy = [ \"energy.\" ]; };\n";

static void test_endpoints(void **state)
{
    (void)state;
    static const struct {
        const char *ep;
        const char *why;   /* NULL = valid */
    } cases[] = {
        {"tcp://127.0.0.1:7601", NULL},
        {"tcp://*:7601", NULL},
        {"tcp://[::1]:7601", NULL},
        {"tcp://gw.example.org:65535", NULL},
        {"ipc:///run/sectorcast/pub.sock", NULL},
        {"inproc://pub", NULL},
        {"tcp://127.0.0.1", "missing ':PORT' (expected tcp://HOST:PORT)"},
        {"tcp://127.0.0.1:0", "port '0' is not a number in 1..65535"},
        {"tcp://127.0.0.1:65536", "port '65536' is not a number in 1..65535"},
        {"tcp://127.0.0.1:*", "port '*' is not a number in 1..65535"},
        {"tcp://127.0.0.1:76x", "port '76x' is not a number in 1..65535"},
        {"tcp://:7601", "missing host (expected tcp://HOST:PORT)"},
        {"tcp://a b:7601", "bad character ' ' in host"},
        {"udp://10.0.0.1:7601", "unknown transport 'udp' (expected "
                                "tcp://HOST:PORT, ipc:///path or inproc://name)"},
        {"127.0.0.1:7601", "missing transport (expected tcp://HOST:PORT, "
                           "ipc:///path or inproc://name)"},
        {"ipc://run/pub.sock", "ipc path must be absolute (ipc:///path)"},
        {"inproc://", "empty inproc name (expected inproc://name)"},
    };
    tmpdir_t t;
    tmp_init(&t);
    char path[PATH_MAX];
    tmp_path(&t, "ep.conf", path, sizeof path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tmp_write(&t, "ep.conf", 0644, endpoint_conf, cases[i].ep, "");
        sc_diag_t d = {0};
        sc_config_t *cfg = sc_config_load(path, false, &d);
        if (cases[i].why == NULL) {
            if (cfg == NULL)
                dump(&d);
            assert_non_null(cfg);
            assert_string_equal(cfg->publish_endpoint, cases[i].ep);
        } else {
            assert_null(cfg);
            expect(&d, "%s:3: setting 'listen.publish': bad endpoint '%s': "
                       "%s", path, cases[i].ep, cases[i].why);
            expect_count(&d, 1);
        }
        sc_config_destroy(&cfg);
        sc_diag_clear(&d);
    }

    /* ipc path too long for sun_path */
    char longep[200];
    snprintf(longep, sizeof longep, "ipc:///%0120d", 0);
    tmp_write(&t, "ep.conf", 0644, endpoint_conf, longep, "");
    sc_diag_t d = {0};
    assert_null(sc_config_load(path, false, &d));
    expect_like(&d, "", "over the 107 the OS allows");
    sc_diag_clear(&d);

    /* service: checked too, and must differ from publish */
    tmp_write(&t, "ep.conf", 0644, endpoint_conf, "tcp://127.0.0.1:7601",
              "service = \"tcp://127.0.0.1:7601\";");
    assert_null(sc_config_load(path, false, &d));
    expect(&d, "%s:4: setting 'listen.service': must differ from "
               "listen.publish (both 'tcp://127.0.0.1:7601')", path);
    sc_diag_clear(&d);
    tmp_write(&t, "ep.conf", 0644, endpoint_conf, "tcp://127.0.0.1:7601",
              "service = \"tcp://127.0.0.1\";");
    assert_null(sc_config_load(path, false, &d));
    expect(&d, "%s:4: setting 'listen.service': bad endpoint "
               "'tcp://127.0.0.1': missing ':PORT' (expected tcp://HOST:PORT)",
           path);
    sc_diag_clear(&d);
    tmp_write(&t, "ep.conf", 0644, endpoint_conf, "tcp://127.0.0.1:7601",
              "service = \"tcp://127.0.0.1:7602\";");
    sc_config_t *cfg = sc_config_load(path, false, &d);
    assert_non_null(cfg);
    assert_string_equal(cfg->service_endpoint, "tcp://127.0.0.1:7602");
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

/* ------------------------------------------------------------------------
 * check_files (configs and key files written at run time)
 * ---------------------------------------------------------------------- */

static const char files_conf[] =
    "gateway: { id = \"gw\"; };\n"                                   /* 1 */
    "listen: { publish = \"tcp://127.0.0.1:7601\"; };\n"             /* 2 */
    "curve: { secret_key = \"broker.secret\"; "
    "public_key = \"broker.public\"; };\n"                           /* 3 */
    "signing: { keys = ( { id = \"k1\"; file = \"k1.jwk\"; } ); "
    "active = \"k1\"; };\n"                                          /* 4 */
    "sectors: { energy = [ \"energy.\" ]; };\n"                      /* 5 */
    "agencies = ( { id = \"a\"; public_key = \"a.public\"; "
    "grants = [ \"energy.\" ]; } );\n"                               /* 6 */
    "plugins = ( { name = \"p\"; path = \"%s\"; sector = \"energy\"; "
    "channels = [ \"energy.\" ]; },\n"                               /* 7 */
    "            { name = \"q\"; path = \"nowhere.so\"; sector = \"energy\"; "
    "channels = [ \"energy.\" ]; enabled = false; } );\n";           /* 8 */

static char g_agency_pub[41];

/* A directory in which files_conf loads cleanly with check_files. */
static void files_setup(tmpdir_t *t, char *conf, size_t n)
{
    char pub[41], sec[41], apub[41], asec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_int_equal(zmq_curve_keypair(apub, asec), 0);
    memcpy(g_agency_pub, apub, sizeof apub);
    tmp_init(t);
    tmp_write(t, "broker.secret", 0600, "%s\n", sec);
    tmp_write(t, "broker.public", 0644, "%s\n", pub);
    tmp_write(t, "a.public", 0644, "%s\n", apub);
    tmp_write(t, "k1.jwk", 0600, "{}\n");
    tmp_write(t, "p.so", 0644, "not really a shared object\n");
    tmp_write(t, "sc.conf", 0644, files_conf, "p.so");
    tmp_path(t, "sc.conf", conf, n);
}

static void test_check_files_ok(void **state)
{
    (void)state;
    tmpdir_t t;
    char conf[PATH_MAX], want[PATH_MAX + 32];
    files_setup(&t, conf, sizeof conf);
    sc_diag_t d = {0};
    sc_config_t *cfg = sc_config_load(conf, true, &d);
    if (cfg == NULL)
        dump(&d);
    assert_non_null(cfg);
    snprintf(want, sizeof want, "%s/broker.secret", t.real);
    assert_string_equal(cfg->curve_secret_file, want);
    snprintf(want, sizeof want, "%s/p.so", t.real);
    assert_string_equal(cfg->plugins[0].path, want);
    assert_int_equal(cfg->n_plugins, 1);   /* q is disabled: not checked */
    assert_string_equal(cfg->agencies[0].public_key, g_agency_pub);
    snprintf(want, sizeof want, "%s/a.public", t.real);
    assert_string_equal(cfg->agencies[0].public_key_file, want);
    sc_config_destroy(&cfg);

    /* without check_files a readable key file is still used */
    cfg = sc_config_load(conf, false, &d);
    assert_non_null(cfg);
    assert_string_equal(cfg->agencies[0].public_key, g_agency_pub);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

static void test_check_files_key_mode(void **state)
{
    (void)state;
    tmpdir_t t;
    char conf[PATH_MAX], prefix[2 * PATH_MAX + 64];
    files_setup(&t, conf, sizeof conf);
    tmp_write(&t, "k1.jwk", 0644, "{}\n");
    sc_diag_t d = {0};

    /* not checked without check_files */
    sc_config_t *cfg = sc_config_load(conf, false, &d);
    assert_non_null(cfg);
    sc_config_destroy(&cfg);

    assert_null(sc_config_load(conf, true, &d));
    snprintf(prefix, sizeof prefix, "%s:4: signing key 'k1': %s/k1.jwk: ", conf,
             t.real);
    expect_like(&d, prefix, "mode 0644");
    expect_count(&d, 1);
    sc_diag_clear(&d);

    /* the curve secret likewise */
    tmp_write(&t, "k1.jwk", 0600, "{}\n");
    tmp_write(&t, "broker.secret", 0640, "x\n");
    assert_null(sc_config_load(conf, true, &d));
    snprintf(prefix, sizeof prefix, "%s:3: curve secret key: %s/broker.secret: ",
             conf, t.real);
    expect_like(&d, prefix, "mode 0640");
    expect_count(&d, 1);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

/* A plugin child's publish_window: default SC_PLUGIN_CHILD_WINDOW (64),
 * 1..256 accepted, anything else refused at its line. */
static void test_publish_window(void **state)
{
    (void)state;
    tmpdir_t t;
    char conf[PATH_MAX];
    files_setup(&t, conf, sizeof conf);
    sc_diag_t d = {0};
    sc_config_t *cfg = sc_config_load(conf, false, &d);
    assert_non_null(cfg);
    assert_int_equal(cfg->plugins[0].publish_window, 64);
    sc_config_destroy(&cfg);
    static const char *const entry = "channels = [ \"energy.\" ]; },";
    const char *at = strstr(files_conf, entry);
    assert_non_null(at);
    static const struct {
        const char *set;
        int64_t want; /* 0 = refused */
        const char *got;
    } cases[] = {{"publish_window = 1;", 1, ""},
                 {"publish_window = 256;", 256, ""},
                 {"publish_window = 0;", 0, "0"},
                 {"publish_window = 257;", 0, "257"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[4096];
        snprintf(text, sizeof text, "%.*s channels = [ \"energy.\" ]; "
                 "isolation = \"process\"; %s },%s",
                 (int)(at - files_conf), files_conf, cases[i].set,
                 at + strlen(entry));
        tmp_write(&t, "sc.conf", 0644, text, "p.so");
        cfg = sc_config_load(conf, false, &d);
        if (cases[i].want) {
            if (cfg == NULL)
                dump(&d);
            assert_non_null(cfg);
            assert_int_equal(cfg->plugins[0].publish_window, cases[i].want);
            sc_config_destroy(&cfg);
        } else {
            assert_null(cfg);
            expect(&d, "%s:7: plugin 'p': 'publish_window' must be 1..256 "
                       "(got %s)", conf, cases[i].got);
            expect_count(&d, 1);
            sc_diag_clear(&d);
        }
    }
    tmp_cleanup(&t);
}

static void test_check_files_missing(void **state)
{
    (void)state;
    tmpdir_t t;
    char conf[PATH_MAX], p[PATH_MAX];
    files_setup(&t, conf, sizeof conf);
    sc_diag_t d = {0};

    tmp_write(&t, "sc.conf", 0644, files_conf, "missing.so");
    assert_null(sc_config_load(conf, true, &d));
    expect(&d, "%s:7: plugin path '%s/missing.so' not found", conf, t.real);
    expect_count(&d, 1);
    sc_diag_clear(&d);

    tmp_mkdir(&t, "plugdir");
    tmp_write(&t, "sc.conf", 0644, files_conf, "plugdir");
    assert_null(sc_config_load(conf, true, &d));
    expect(&d, "%s:7: plugin path '%s/plugdir' is not a regular file", conf,
           t.real);
    sc_diag_clear(&d);

    /* absolute path taken as is */
    tmp_write(&t, "sc.conf", 0644, files_conf, "/nonexistent/x.so");
    assert_null(sc_config_load(conf, true, &d));
    expect(&d, "%s:7: plugin path '/nonexistent/x.so' not found", conf);
    sc_diag_clear(&d);
    tmp_write(&t, "sc.conf", 0644, files_conf, "p.so");

    tmp_path(&t, "k1.jwk", p, sizeof p);
    unlink(p);
    tmp_path(&t, "a.public", p, sizeof p);
    unlink(p);
    tmp_write(&t, "broker.public", 0644, "too short\n");
    assert_null(sc_config_load(conf, true, &d));
    expect(&d, "%s:4: signing key 'k1': file '%s/k1.jwk' not found", conf,
           t.real);
    expect(&d, "%s:6: agency 'a': public key file '%s/a.public' not found",
           conf, t.real);
    expect_like(&d, "", "curve public key: ");
    expect_like(&d, "", "expected a 40-character Z85 key");
    expect_count(&d, 3);
    sc_diag_clear(&d);

    /* without check_files none of that matters; the key stays empty */
    sc_config_t *cfg = sc_config_load(conf, false, &d);
    assert_non_null(cfg);
    assert_string_equal(cfg->agencies[0].public_key, "");
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
    tmp_cleanup(&t);
}

/* ------------------------------------------------------------------------
 * Plugin settings against a plugin's table (settings.conf)
 * ---------------------------------------------------------------------- */

static const sc_setting_def_t table_energy[] = {
    SC_SETTING("register_dir", SC_SETTING_PATH, NULL, 1, "where registers live"),
    SC_SETTING("poll_interval_ms", SC_SETTING_INT, "500", 0, "poll period"),
    SC_SETTING("ratio", SC_SETTING_FLOAT, NULL, 0, "a ratio"),
    SC_SETTING("verbose", SC_SETTING_BOOL, "false", 0, "chatty"),
    SC_SETTING("label", SC_SETTING_STRING, "dflt", 0, "a label"),
    SC_SETTING("cache", SC_SETTING_PATH, "cache/x", 0, "cache file"),
    SC_SETTINGS_END};

static sc_config_t *load_settings_conf(char *path, size_t n, sc_diag_t *d)
{
    fixture(path, n, "settings.conf");
    sc_config_t *cfg = sc_config_load(path, false, d);
    if (cfg == NULL)
        dump(d);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_plugins, 2);
    assert_int_equal(cfg->plugins[0].settings_line, 12);
    assert_int_equal(cfg->plugins[1].settings_line, 21);
    return cfg;
}

static void test_settings_unknown_and_mistyped(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    sc_config_t *cfg = load_settings_conf(p, sizeof p, &d);
    sc_cfg_plugin_t *pl = &cfg->plugins[0];

    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, table_energy, STRIDE, &d),
                     -1);
    expect(&d, "%s:17: plugin 'energy': setting 'foo': unknown setting "
               "(known: register_dir, poll_interval_ms, ratio, verbose, label, "
               "cache)", p);
    expect(&d, "%s:18: plugin 'energy': setting 'verbose': must be a boolean "
               "(true or false), not a string", p);
    expect_count(&d, 2);
    assert_null(pl->settings);   /* nothing resolved */
    assert_int_equal(pl->settings_written->n_items, 5); /* left as written */
    sc_diag_clear(&d);

    static const sc_setting_def_t table_types[] = {
        SC_SETTING("register_dir", SC_SETTING_INT, NULL, 0, ""),
        SC_SETTING("poll_interval_ms", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTING("ratio", SC_SETTING_FLOAT, NULL, 0, ""),
        SC_SETTING("foo", SC_SETTING_BOOL, NULL, 0, ""),
        SC_SETTING("verbose", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTINGS_END};
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, table_types, STRIDE, &d),
                     -1);
    expect(&d, "%s:14: plugin 'energy': setting 'register_dir': must be an "
               "integer, not a string", p);
    expect(&d, "%s:15: plugin 'energy': setting 'poll_interval_ms': must be "
               "a string, not an integer", p);
    expect(&d, "%s:17: plugin 'energy': setting 'foo': must be a boolean "
               "(true or false), not a string", p);
    expect_count(&d, 3);
    sc_diag_clear(&d);

    /* a plugin that declares no settings */
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, NULL, STRIDE, &d), -1);
    expect(&d, "%s:16: plugin 'energy': setting 'ratio': unknown setting "
               "(the plugin takes no settings)", p);
    expect_count(&d, 5);
    sc_diag_clear(&d);
    assert_int_equal(
        sc_config_check_plugin_settings(cfg, &cfg->plugins[1], NULL, STRIDE,
                                        &d), 0);
    assert_int_equal(sc_settings_root(cfg->plugins[1].settings)->n_items, 0);
    expect_count(&d, 0);

    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
}

static void test_settings_missing_required(void **state)
{
    (void)state;
    char p[PATH_MAX];
    sc_diag_t d = {0};
    sc_config_t *cfg = load_settings_conf(p, sizeof p, &d);
    assert_int_equal(sc_config_check_plugin_settings(cfg, &cfg->plugins[1],
                                                     table_energy, STRIDE,
                                                     &d), -1);
    expect(&d, "%s:21: plugin 'bare': setting 'register_dir': required but "
               "not set (where registers live)", p);
    expect_count(&d, 1);
    sc_diag_clear(&d);

    /* with a settings group, the error is on the group's line */
    static const sc_setting_def_t table[] = {
        SC_SETTING("register_dir", SC_SETTING_PATH, NULL, 1, ""),
        SC_SETTING("poll_interval_ms", SC_SETTING_INT, NULL, 0, ""),
        SC_SETTING("ratio", SC_SETTING_FLOAT, NULL, 0, ""),
        SC_SETTING("foo", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTING("verbose", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTING("label", SC_SETTING_STRING, "ignored when required", 1, ""),
        SC_SETTINGS_END};
    assert_int_equal(sc_config_check_plugin_settings(cfg, &cfg->plugins[0],
                                                     table, STRIDE, &d), -1);
    expect(&d, "%s:12: plugin 'energy': setting 'label': required but not "
               "set", p);
    expect_count(&d, 1);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
}

static void test_settings_defaults(void **state)
{
    (void)state;
    static const sc_setting_def_t table[] = {
        SC_SETTING("poll_interval_ms", SC_SETTING_INT, "500", 0, ""),
        SC_SETTING("verbose", SC_SETTING_BOOL, "true", 0, ""),
        SC_SETTING("ratio", SC_SETTING_FLOAT, "0.5", 0, ""),
        SC_SETTING("label", SC_SETTING_STRING, "dflt", 0, ""),
        SC_SETTING("cache", SC_SETTING_PATH, "/var/cache/sc", 0, ""),
        SC_SETTING("spool", SC_SETTING_PATH, "spool", 0, ""),
        SC_SETTING("nodefault", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTINGS_END};
    char p[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 16];
    sc_diag_t d = {0};
    sc_config_t *cfg = load_settings_conf(p, sizeof p, &d);
    fixture_dir(dir);
    sc_cfg_plugin_t *pl = &cfg->plugins[1];
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, table, STRIDE, &d), 0);
    expect_count(&d, 0);
    const sc_settings_t *st = pl->settings;
    assert_int_equal(sc_settings_root(st)->n_items, 6);
    int64_t i64 = 0;
    int bv = 0;
    double f = 0;
    const char *str = NULL;
    assert_int_equal(sc_settings_int(st, "poll_interval_ms", &i64), SC_OK);
    assert_int_equal(i64, 500);
    assert_int_equal(sc_settings_line(st, "poll_interval_ms"), 21);
    assert_int_equal(sc_settings_bool(st, "verbose", &bv), SC_OK);
    assert_int_equal(bv, 1);
    assert_int_equal(sc_settings_float(st, "ratio", &f), SC_OK);
    assert_true(f == 0.5);
    assert_int_equal(sc_settings_string(st, "label", &str), SC_OK);
    assert_string_equal(str, "dflt");
    assert_int_equal(sc_settings_string(st, "cache", &str), SC_OK);
    assert_string_equal(str, "/var/cache/sc");
    assert_int_equal(sc_settings_string(st, "spool", &str), SC_OK);
    snprintf(want, sizeof want, "%s/spool", dir);
    assert_string_equal(str, want);
    assert_int_equal(sc_settings_string(st, "nodefault", &str),
                     SC_ERR_NO_SETTING);
    assert_int_equal(sc_settings_string(st, "nope", &str), SC_ERR_NO_SETTING);
    assert_int_equal(sc_settings_int(st, "label", &i64), SC_ERR_ARG);

    /* a default the plugin got wrong is reported, not trusted */
    static const sc_setting_def_t bad[] = {
        SC_SETTING("n", SC_SETTING_INT, "ten", 0, ""), SC_SETTINGS_END};
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, bad, STRIDE, &d), -1);
    expect(&d, "%s:21: plugin 'bare': setting 'n': default value 'ten' is "
               "not an integer (a bug in the plugin)", p);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
}

static void test_settings_path_resolved(void **state)
{
    (void)state;
    static const sc_setting_def_t table[] = {
        SC_SETTING("register_dir", SC_SETTING_PATH, NULL, 1, ""),
        SC_SETTING("poll_interval_ms", SC_SETTING_INT, "500", 0, ""),
        SC_SETTING("ratio", SC_SETTING_FLOAT, NULL, 0, ""),
        SC_SETTING("foo", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTING("verbose", SC_SETTING_STRING, NULL, 0, ""),
        SC_SETTING("cache", SC_SETTING_PATH, "../cache", 0, ""),
        SC_SETTINGS_END};
    char p[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 32];
    sc_diag_t d = {0};
    sc_config_t *cfg = load_settings_conf(p, sizeof p, &d);
    fixture_dir(dir);
    sc_cfg_plugin_t *pl = &cfg->plugins[0];
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, table, STRIDE, &d), 0);
    expect_count(&d, 0);
    const sc_sv_t *root = sc_settings_root(pl->settings);
    assert_int_equal(root->n_items, 6);
    /* resolved list follows the table's order */
    assert_string_equal(root->items[0].name, "register_dir");
    assert_string_equal(root->items[5].name, "cache");

    const char *str = NULL;
    int64_t i64 = 0;
    double f = 0;
    assert_int_equal(sc_settings_string(pl->settings, "register_dir", &str), 0);
    snprintf(want, sizeof want, "%s/registers/energy", dir);
    assert_string_equal(str, want);
    assert_int_equal(sc_settings_line(pl->settings, "register_dir"), 14);
    assert_int_equal(sc_settings_int(pl->settings, "poll_interval_ms", &i64), 0);
    assert_int_equal(i64, 1000);
    assert_int_equal(sc_settings_line(pl->settings, "poll_interval_ms"), 15);
    /* an int is a fine float */
    assert_int_equal(sc_settings_float(pl->settings, "ratio", &f), 0);
    assert_true(f == 2.0);
    assert_int_equal(root->items[2].kind, SC_SV_FLOAT);
    assert_int_equal(sc_settings_string(pl->settings, "verbose", &str), 0);
    assert_string_equal(str, "yes");
    assert_int_equal(sc_settings_string(pl->settings, "cache", &str), 0);
    char *slash = strrchr(dir, '/');
    snprintf(want, sizeof want, "%.*s/cache", (int)(slash - dir), dir);
    assert_string_equal(str, want);
    assert_int_equal(root->items[5].line, 0);
    /* a default's problems land on the settings group */
    assert_int_equal(sc_settings_line(pl->settings, "cache"), 12);

    /* checking again is harmless: the same result */
    assert_int_equal(sc_config_check_plugin_settings(cfg, pl, table, STRIDE,
                                                     &d), 0);
    assert_int_equal(sc_settings_string(pl->settings, "register_dir", &str), 0);
    snprintf(want, sizeof want, "%s/registers/energy", dir);
    assert_string_equal(str, want);
    sc_config_destroy(&cfg);
    sc_diag_clear(&d);
}

int main(void)
{
    init_root();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_format),
        cmocka_unit_test(test_default_conf_loads),
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_unknown_settings),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_scalar_groups_values),
        cmocka_unit_test(test_scalar_groups_problems),
        cmocka_unit_test(test_ops_groups),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_channels_and_sectors),
        cmocka_unit_test(test_duplicates_and_key_refs),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_check_files_ok),
        cmocka_unit_test(test_check_files_key_mode),
        cmocka_unit_test(test_check_files_missing),
        cmocka_unit_test(test_settings_unknown_and_mistyped),
        cmocka_unit_test(test_publish_window),
        cmocka_unit_test(test_settings_missing_required),
        cmocka_unit_test(test_settings_defaults),
        cmocka_unit_test(test_settings_path_resolved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
