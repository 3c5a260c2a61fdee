/*
 * test_audit.c - the audit log (core/broker/audit) and the status
 * snapshot's health rules (core/broker/status): lines are JSON with ts and
 * event, the file is 0600, rotation by size keeps `keep` files, and
 * /healthz's reasons (a plugin that keeps crashing, a journal that cannot
 * be written) come and go with the facts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/audit.h"
#include "broker/status.h"

static char dir[] = "/tmp/sc-audit-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        assert_non_null(json_string_value(json_object_get(j, "ts")));
        assert_non_null(json_string_value(json_object_get(j, "event")));
        json_decref(j);
        n++;
    }
    fclose(f);
    return n;
}

static void test_lines_mode_rotation(void **state)
{
    (void)state;
    char path[256], p1[300], p2[300], p3[300];
    snprintf(path, sizeof path, "%s/audit.log", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    char err[256];
    sc_audit_t *a = sc_audit_new(path, 4096, 2, err, sizeof err);
    assert_non_null(a);
    for (int i = 0; i < 200; i++)
        sc_audit("subscription",
                 json_pack("{s:s, s:s, s:i}", "agency", "motie", "subtree",
                           "energy.", "n", i));
    sc_audit_destroy(&a); /* writes everything queued */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(st.st_size <= 4096);
    assert_int_equal(stat(p1, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(p2, &st), 0);
    assert_int_not_equal(stat(p3, &st), 0); /* keep = 2 */
    size_t n = count_lines(path) + count_lines(p1) + count_lines(p2);
    assert_true(n > 0 && n < 200); /* older ones rotated away */
    /* no audit log: events are dropped quietly */
    sc_audit("subscription", json_pack("{s:s}", "agency", "x"));
}

static void test_health(void **state)
{
    (void)state;
    sc_status_t *s = sc_status_new();
    bool ok = false;
    json_t *h = sc_status_health(s, &ok);
    assert_true(ok);
    json_decref(h);
    sc_status_plugin(s, "c", "running", 42, NULL);
    sc_status_plugin_crashed(s, "c", "killed by signal 11");
    sc_status_plugin_crashed(s, "c", "killed by signal 11");
    h = sc_status_health(s, &ok);
    assert_true(ok); /* twice is not yet "keeps crashing" */
    json_decref(h);
    sc_status_plugin_crashed(s, "c", "killed by signal 11");
    h = sc_status_health(s, &ok);
    assert_false(ok);
    char *t = json_dumps(h, 0);
    assert_non_null(strstr(t, "plugin c keeps crashing"));
    free(t);
    json_decref(h);
    sc_status_journal_result(s, "disk I/O error");
    h = sc_status_health(s, &ok);
    t = json_dumps(h, 0);
    assert_non_null(strstr(t, "journal cannot be written: disk I/O error"));
    free(t);
    json_decref(h);
    /* restarts are counted: running again after the crashes */
    sc_status_plugin(s, "c", "running", 43, NULL);
    json_t *pl = sc_status_json_plugins(s);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(pl, 0), "restarts")),
                     1);
    json_decref(pl);
    /* subscriptions per connection, gone with the connection */
    sc_status_subscribed(s, 7, "motie", "energy.");
    sc_status_channel_head(s, "energy.a", 5);
    sc_status_published(s, "energy.a", "c", 6, 1, 100);
    json_t *ch = sc_status_json_channels(s);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(ch, 0), "head")),
                     6);
    json_decref(ch);
    sc_status_conn_closed(s, 7);
    sc_status_journal_result(s, NULL);
    sc_status_destroy(&s);
    assert_null(s);
}

/* the published count of channel `name` in the channels JSON, -1 if absent */
static json_int_t channel_messages(json_t *ch, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(ch, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "channel")), name) == 0)
            return json_integer_value(json_object_get(c, "messages"));
    }
    return -1;
}

static json_int_t plugin_published(sc_status_t *s, const char *name)
{
    json_t *pl = sc_status_json_plugins(s);
    size_t i;
    json_t *p;
    json_int_t n = -1;
    json_array_foreach(pl, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "plugin")), name) == 0)
            n = json_integer_value(json_object_get(p, "published"));
    }
    json_decref(pl);
    return n;
}

/* Channels and plugins are found by an index: every one of the channels
 * up to the bound keeps its own counts, the ones past it are counted as
 * untracked, and a plugin found after a prune moved the others is still
 * the right one. */
static void test_many_channels_and_pruned_plugins(void **state)
{
    (void)state;
    sc_status_t *s = sc_status_new();
    assert_non_null(s);
    char name[64];
    const int over = 10;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < SC_STATUS_MAX_CHANNELS + over; i++) {
            snprintf(name, sizeof name, "energy.c%d", i);
            /* i + 1 messages in one run, head 100 * round + i */
            sc_status_published(s, name, "p", (uint64_t)(100 * round + i),
                                (uint64_t)i + 1, 10 * ((size_t)i + 1));
        }
    json_t *ch = sc_status_json_channels(s);
    assert_int_equal(json_array_size(ch), SC_STATUS_MAX_CHANNELS);
    for (int i = 0; i < SC_STATUS_MAX_CHANNELS + over; i++) {
        snprintf(name, sizeof name, "energy.c%d", i);
        assert_int_equal(channel_messages(ch, name),
                         i < SC_STATUS_MAX_CHANNELS ? 2 * (i + 1) : -1);
    }
    json_decref(ch);
    json_t *st = sc_status_json_status(s);
    assert_int_equal(json_integer_value(json_object_get(st, "untracked")),
                     2 * over);
    json_decref(st);

    sc_status_plugin(s, "a", "running", 1, NULL);
    sc_status_plugin(s, "b", "running", 2, NULL);
    sc_status_plugin(s, "c", "running", 3, NULL);
    sc_cfg_plugin_t kept[2];
    memset(kept, 0, sizeof kept);
    kept[0].name = "a";
    kept[1].name = "c";
    sc_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.plugins = kept;
    cfg.n_plugins = 2;
    sc_status_plugins_prune(s, &cfg); /* "c" moves into "b"'s place */
    sc_status_published(s, "energy.c0", "c", 1, 5, 50);
    assert_int_equal(plugin_published(s, "c"), 5);
    assert_int_equal(plugin_published(s, "a"), 0);
    assert_int_equal(plugin_published(s, "b"), -1);
    sc_status_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_mode_rotation),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_many_channels_and_pruned_plugins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
