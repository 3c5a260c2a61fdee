/*
 * test_refusals.c - one host, one set of refusals: tests/plugins/
 * refusals.so makes every kind of host call that must be refused (bad
 * arguments of publish, timers, fd watches, settings, state, grants,
 * capabilities, sinks); it runs once on a broker plugin thread
 * (core/broker/plugin_host.c, logging through the broker's log) and once
 * in the plugin test kit (libsectorcast-plugintest), and the two logs
 * must agree line for line: the same return code and the same refusal
 * text for every row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <sectorcast/plugintest.h>

#include "broker/config.h"
#include "broker/log.h"
#include "broker/plugin_host.h"
#include "host/settings.h"

#define MAX_LINES 256

typedef struct lines {
    char *v[MAX_LINES];
    size_t n;
} lines_t;

static void add(lines_t *l, const char *s)
{
    if (l->n < MAX_LINES)
        l->v[l->n++] = strdup(s);
}

static void lines_free(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* Keep the lines from the first row's call up to "rows done". */
static void keep_rows(lines_t *in, lines_t *out)
{
    size_t first = in->n;
    for (size_t i = 0; i < in->n && first == in->n; i++)
        if (strstr(in->v[i], "row 1:") || strstr(in->v[i], "refused"))
            first = i;
    for (size_t i = first; i < in->n; i++) {
        add(out, in->v[i]);
        if (strncmp(in->v[i], "rows done", 9) == 0)
            break;
    }
}

static void report_fail(void *arg, const char *file, int line,
                        const char *msg)
{
    (void)arg;
    fail_msg("%s:%d: %s", file, line, msg);
}

static void broker_path(const char *so, lines_t *out)
{
    char dir[] = "/tmp/sc-refusals.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char db[PATH_MAX], logf[PATH_MAX];
    snprintf(db, sizeof db, "%s/journal.db", dir);
    snprintf(logf, sizeof logf, "%s/log", dir);
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
    assert_int_equal(sqlite3_exec(s,
                                  "CREATE TABLE plugin_state(plugin TEXT NOT "
                                  "NULL, key TEXT NOT NULL, value TEXT NOT "
                                  "NULL, PRIMARY KEY(plugin, key))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(s);

    void *zctx = zmq_ctx_new();
    void *pull = zmq_socket(zctx, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://refusals"), 0);

    sc_plugin_lib_t lib;
    char err[1024];
    assert_int_equal(sc_plugin_lib_open(so, &lib, err, sizeof err), 0);
    char *chans[] = {"energy.nuclear."};
    sc_cfg_plugin_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "refusals";
    cfg.path = (char *)so;
    cfg.sector = "energy";
    cfg.channels = chans;
    cfg.n_channels = 1;
    char *recv[] = {"energy."};
    cfg.receives = recv; /* may be a sink, as in the kit */
    cfg.n_receives = 1;
    sc_settings_where_t w = {.file = "test", .plugin = "refusals",
                             .line = 1};
    assert_int_equal(sc_settings_validate_desc(&w, NULL, &lib.desc,
                                               report_fail, NULL,
                                               &cfg.settings),
                     0);

    /* the broker's log goes to stderr: catch it */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    sc_log_set_level(SC_L_DEBUG);
    sc_plugin_start_opts_t start = {.cfg = &cfg,
                                    .max_data_bytes = 1024,
                                    .zctx = zctx,
                                    .core_endpoint = "inproc://refusals",
                                    .state_db = db};
    sc_plugin_inst_t *p = sc_plugin_start(&lib, &start, err, sizeof err);
    int started = p ? sc_plugin_wait_started(p, 20000) : -2;
    bool stopped = sc_plugin_destroy(&p, 10000);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(started, 1);
    assert_true(stopped);

    /* the one accepted publish reached the core as one frame */
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, pull, ZMQ_DONTWAIT) > 0);
    assert_memory_equal(zmq_msg_data(&m), "refusals", 8);
    zmq_msg_close(&m);
    zmq_close(pull);
    zmq_ctx_term(zctx);
    sc_settings_destroy(&cfg.settings);

    FILE *f = fopen(logf, "r");
    assert_non_null(f);
    char line[4096];
    lines_t all = {0};
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "level [refusals] TIME text": keep the text */
        const char *tag = strstr(line, "[refusals] ");
        if (!tag)
            continue;
        const char *text = tag + strlen("[refusals] ");
        const char *sp = strchr(text, ' ');
        if (text[0] >= '0' && text[0] <= '9' && sp && sp[-1] == 'Z')
            text = sp + 1;
        add(&all, text);
    }
    fclose(f);
    keep_rows(&all, out);
    lines_free(&all);
    unlink(logf);
    unlink(db);
    rmdir(dir);
}

static void kit_path(const char *so, lines_t *out)
{
    const char *chans[] = {"energy.nuclear.", NULL};
    char err[512];
    sc_pt_t *pt = sc_pt_new(so, "refusals", chans, err, sizeof err);
    assert_non_null(pt);
    sc_pt_set_max_data(pt, 1024);
    assert_int_equal(sc_pt_start(pt), SC_OK);
    assert_int_equal(sc_pt_msg_count(pt), 1);
    lines_t all = {0};
    for (size_t i = 0; i < sc_pt_log_count(pt); i++)
        add(&all, sc_pt_log_at(pt, i)->text);
    keep_rows(&all, out);
    lines_free(&all);
    sc_pt_destroy(&pt);
}

static void test_same_refusals_both_paths(void **state)
{
    (void)state;
    char so[PATH_MAX + 32];
    char dir[PATH_MAX];
    /* tests/plugins/refusals.so next to the test binary */
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    assert_true(n > 0);
    dir[n] = '\0';
    *strrchr(dir, '/') = '\0';
    snprintf(so, sizeof so, "%s/plugins/refusals.so", dir);

    lines_t broker = {0}, kit = {0};
    broker_path(so, &broker);
    kit_path(so, &kit);
    /* every row is there, and the rows refused say why */
    assert_true(broker.n > 32);
    size_t rows = 0, refusals = 0;
    for (size_t i = 0; i < broker.n; i++) {
        rows += strncmp(broker.v[i], "row ", 4) == 0;
        refusals += strstr(broker.v[i], "' refused: ") != NULL;
    }
    assert_int_equal(rows, 33);
    assert_true(refusals >= 12);
    for (size_t i = 0; i < broker.n || i < kit.n; i++) {
        const char *b = i < broker.n ? broker.v[i] : "(none)";
        const char *k = i < kit.n ? kit.v[i] : "(none)";
        if (strcmp(b, k) != 0)
            fail_msg("line %zu differs:\n  broker: %s\n  kit:    %s", i, b,
                     k);
    }
    /* a few rows pinned, so that both paths cannot agree on nonsense */
    const char *want[] = {
        "publish to 'Energy..Nuclear' refused: invalid argument: not a "
        "channel name",
        "row 5: publish key not UTF-8 -> -1",
        "publish to 'energy.lng.tasks' refused: channel not granted to this "
        "plugin",
        "row 8: publish not granted -> -2",
        "publish to 'energy.nuclear.tasks' refused: data over the configured "
        "size limit: 1099 bytes, limit 1024",
        "row 13: publish duplicate key -> -3",
        "row 29: capability unknown -> -11",
        "row 31: sink_ack not a sink -> -11",
        "row 33: publish ok -> 0",
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        bool found = false;
        for (size_t i = 0; i < kit.n && !found; i++)
            found = strstr(kit.v[i], want[w]) != NULL;
        if (!found)
            fail_msg("no line contains: %s", want[w]);
    }
    lines_free(&broker);
    lines_free(&kit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_refusals_both_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
