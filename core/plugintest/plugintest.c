/*
 * plugintest.c - the plugin test kit (see <sectorcast/plugintest.h>).
 *
 * Owns: the in-memory side of a plugin instance under test: its settings
 * as text given by the test (parsed against the plugin's table with the
 * broker's rules), the messages it published, the log, the durable-state
 * store. Everything a plugin can see of its host (handshake, argument
 * checks, refusals, timers, fd watches) is core/host/host.c, the code the
 * broker runs. Never: ZeroMQ, signing, the journal, config files.
 */
#include <sectorcast/plugintest.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/grow.h"
#include "host/host.h"
#include "host/settings.h"

#define SC_PT_API __attribute__((visibility("default")))

typedef struct pt_state {
    char *instance;
    char *key;
    char *value;
} pt_state_t;

struct sc_pt_store {
    pt_state_t *e; /* sorted by (instance, key) */
    size_t n, cap;
    size_t writes;
    int fail;
};


typedef struct pt_ack {
    char *channel;
    uint64_t seq;
} pt_ack_t;

struct sc_pt {
    sc_host_inst_t *h;
    char *instance;
    char *base_dir;
    size_t max_data;
    int verbose;
    bool started;
    sc_sv_t *written;          /* settings as the test gave them */
    sc_settings_t *settings;   /* resolved at start */

    sc_pt_msg_t *msgs;
    size_t n_msgs, cap_msgs;
    sc_pt_log_t *logs;
    size_t n_logs, cap_logs;
    sc_pt_store_t *own_store, *store;
    size_t fail_publishes;
    int fail_code;
    pt_ack_t *acks;
    size_t n_acks;
    char error[512];
};

static const char *level_name[] = {"debug", "info", "warn", "error"};

static void add_log(sc_pt_t *pt, sc_log_level_t level, int from_host,
                    const char *text)
{
    if ((unsigned)level > SC_LOG_ERROR)
        level = SC_LOG_ERROR;
    if (pt->verbose)
        fprintf(stderr, "[%s] %s%s: %s\n", level_name[level], pt->instance,
                from_host ? " (host)" : "", text);
    char *t = strdup(text);
    if (!t || sc_grow((void **)&pt->logs, &pt->cap_logs, pt->n_logs,
                   sizeof *pt->logs) < 0) {
        free(t);
        return;
    }
    pt->logs[pt->n_logs++] = (sc_pt_log_t){level, from_host, t};
}

static void set_error(sc_pt_t *pt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(sc_pt_t *pt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pt->error, sizeof pt->error, fmt, ap);
    va_end(ap);
    add_log(pt, SC_LOG_ERROR, 1, pt->error);
}

/* ------------------------------------------------------------------ */
/* store                                                               */

static int state_cmp(const pt_state_t *e, const char *instance,
                     const char *key)
{
    int c = strcmp(e->instance, instance);
    return c ? c : strcmp(e->key, key);
}

static size_t state_find(const sc_pt_store_t *st, const char *instance,
                         const char *key, int *found)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = state_cmp(&st->e[mid], instance, key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

SC_PT_API int sc_pt_store_put(sc_pt_store_t *st, const char *instance,
                              const char *key, const char *value)
{
    if (!st || !instance || !key)
        return SC_ERR_ARG;
    int found;
    size_t i = state_find(st, instance, key, &found);
    if (!value) {
        if (!found)
            return SC_OK;
        free(st->e[i].instance);
        free(st->e[i].key);
        free(st->e[i].value);
        memmove(&st->e[i], &st->e[i + 1], (st->n - i - 1) * sizeof *st->e);
        st->n--;
        return SC_OK;
    }
    char *v = strdup(value);
    if (!v)
        return SC_ERR_NO_MEMORY;
    if (found) {
        free(st->e[i].value);
        st->e[i].value = v;
        return SC_OK;
    }
    pt_state_t e = {strdup(instance), strdup(key), v};
    if (!e.instance || !e.key ||
        sc_grow((void **)&st->e, &st->cap, st->n, sizeof *st->e) < 0) {
        free(e.instance);
        free(e.key);
        free(v);
        return SC_ERR_NO_MEMORY;
    }
    memmove(&st->e[i + 1], &st->e[i], (st->n - i) * sizeof *st->e);
    st->e[i] = e;
    st->n++;
    return SC_OK;
}

SC_PT_API const char *sc_pt_store_get(sc_pt_store_t *st, const char *instance,
                                      const char *key)
{
    int found;
    if (!st || !instance || !key)
        return NULL;
    size_t i = state_find(st, instance, key, &found);
    return found ? st->e[i].value : NULL;
}

SC_PT_API size_t sc_pt_store_count(sc_pt_store_t *st, const char *instance,
                                   const char *prefix)
{
    size_t n = 0, pl = prefix ? strlen(prefix) : 0;
    for (size_t i = 0; st && instance && i < st->n; i++)
        n += !strcmp(st->e[i].instance, instance) &&
             !strncmp(st->e[i].key, prefix ? prefix : "", pl);
    return n;
}

SC_PT_API size_t sc_pt_store_writes(sc_pt_store_t *st)
{
    return st ? st->writes : 0;
}

SC_PT_API void sc_pt_store_fail(sc_pt_store_t *st, int code)
{
    if (st)
        st->fail = code;
}

SC_PT_API sc_pt_store_t *sc_pt_store_new(void)
{
    return calloc(1, sizeof(sc_pt_store_t));
}

SC_PT_API void sc_pt_store_destroy(sc_pt_store_t **st_p)
{
    if (!st_p || !*st_p)
        return;
    sc_pt_store_t *st = *st_p;
    for (size_t i = 0; i < st->n; i++) {
        free(st->e[i].instance);
        free(st->e[i].key);
        free(st->e[i].value);
    }
    free(st->e);
    free(st);
    *st_p = NULL;
}

/* ------------------------------------------------------------------ */
/* where the host sends things                                         */

static int o_publish(void *ctx, const sc_host_pub_t *pub)
{
    sc_pt_t *pt = ctx;
    if (pt->fail_publishes > 0) {
        pt->fail_publishes--;
        return pt->fail_code;
    }
    if (sc_grow((void **)&pt->msgs, &pt->cap_msgs, pt->n_msgs,
             sizeof *pt->msgs) < 0)
        return SC_ERR_NO_MEMORY;
    sc_pt_msg_t *m = &pt->msgs[pt->n_msgs];
    m->channel = strdup(pub->channel);
    m->kind = strdup(pub->kind);
    m->key = pub->key ? strdup(pub->key) : NULL;
    m->data = strdup(pub->data_text);
    if (!m->channel || !m->kind || (pub->key && !m->key) || !m->data) {
        free(m->channel);
        free(m->kind);
        free(m->key);
        free(m->data);
        return SC_ERR_NO_MEMORY;
    }
    pt->n_msgs++;
    return SC_OK;
}

static int o_state_get(void *ctx, const char *key, char **value)
{
    sc_pt_t *pt = ctx;
    if (pt->store->fail)
        return pt->store->fail;
    const char *v = sc_pt_store_get(pt->store, pt->instance, key);
    if (!v)
        return SC_ERR_NOT_FOUND;
    *value = strdup(v);
    return *value ? SC_OK : SC_ERR_NO_MEMORY;
}

static int o_state_put(void *ctx, const char *key, const char *value)
{
    sc_pt_t *pt = ctx;
    if (pt->store->fail)
        return pt->store->fail;
    int rc = sc_pt_store_put(pt->store, pt->instance, key, value);
    if (rc == SC_OK)
        pt->store->writes++;
    return rc;
}

static int o_state_foreach(void *ctx, const char *prefix,
                           int (*fn)(void *, const char *, const char *),
                           void *arg)
{
    sc_pt_t *pt = ctx;
    sc_pt_store_t *st = pt->store;
    if (st->fail)
        return st->fail;
    /* a snapshot of the matching pairs, so fn may put */
    size_t pl = strlen(prefix), n = 0;
    pt_state_t *snap = calloc(st->n ? st->n : 1, sizeof *snap);
    if (!snap)
        return SC_ERR_NO_MEMORY;
    int rc = SC_OK;
    for (size_t i = 0; i < st->n; i++) {
        if (strcmp(st->e[i].instance, pt->instance) != 0 ||
            strncmp(st->e[i].key, prefix, pl) != 0)
            continue;
        snap[n].key = strdup(st->e[i].key);
        snap[n].value = strdup(st->e[i].value);
        n++;
        if (!snap[n - 1].key || !snap[n - 1].value) {
            rc = SC_ERR_NO_MEMORY;
            break;
        }
    }
    for (size_t i = 0; rc == SC_OK && i < n; i++)
        if (fn(arg, snap[i].key, snap[i].value))
            break;
    for (size_t i = 0; i < n; i++) {
        free(snap[i].key);
        free(snap[i].value);
    }
    free(snap);
    return rc;
}

static void o_log(void *ctx, sc_log_level_t level, bool from_host,
                  const char *text)
{
    sc_pt_t *pt = ctx;
    add_log(pt, level, from_host, text);
}

/* A settings problem: a host log line "FILE:LINE: plugin 'x': setting
 * 'y': text" (FILE is "settings": the kit's settings have no file). */
static void o_setting_problem(void *ctx, const char *file, int line,
                              const char *msg)
{
    sc_pt_t *pt = ctx;
    char text[1400];
    if (line > 0)
        snprintf(text, sizeof text, "%s:%d: %s", file ? file : "settings",
                 line, msg);
    else
        snprintf(text, sizeof text, "%s", msg);
    add_log(pt, SC_LOG_ERROR, 1, text);
}

static int o_sink_ack(void *ctx, const char *channel, uint64_t seq)
{
    sc_pt_t *pt = ctx;
    for (size_t i = 0; i < pt->n_acks; i++)
        if (!strcmp(pt->acks[i].channel, channel)) {
            if (seq > pt->acks[i].seq)
                pt->acks[i].seq = seq;
            return SC_OK;
        }
    pt_ack_t *v = realloc(pt->acks, (pt->n_acks + 1) * sizeof *v);
    if (!v)
        return SC_ERR_NO_MEMORY;
    pt->acks = v;
    if (!(v[pt->n_acks].channel = strdup(channel)))
        return SC_ERR_NO_MEMORY;
    v[pt->n_acks++].seq = seq;
    return SC_OK;
}

static const sc_host_ops_t pt_ops = {
    .publish = o_publish,
    .state_get = o_state_get,
    .state_put = o_state_put,
    .state_foreach = o_state_foreach,
    .log = o_log,
    .setting_problem = o_setting_problem,
    .sink_ack = o_sink_ack,
};

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

SC_PT_API sc_pt_t *sc_pt_new_abi(const char *so_path,
                                 const char *instance_name,
                                 const char *const *channels,
                                 uint32_t host_abi, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!so_path || !instance_name || !channels) {
        snprintf(err, errlen, "sc_pt_new: NULL argument");
        return NULL;
    }
    bool name_ok = *instance_name != '\0';
    for (const char *p = instance_name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            name_ok = false;
    if (!name_ok) {
        snprintf(err, errlen, "instance name \"%s\" is not [a-z0-9_-]+",
                 instance_name);
        return NULL;
    }
    size_t n = 0;
    while (channels[n]) {
        if (!sc_host_subtree_valid(channels[n])) {
            snprintf(err, errlen,
                     "granted channel \"%s\" is not a subtree (lowercase "
                     "[a-z0-9-] segments, each ending in '.')",
                     channels[n]);
            return NULL;
        }
        n++;
    }
    sc_pt_t *pt = calloc(1, sizeof *pt);
    if (!pt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pt->max_data = SC_PT_MAX_DATA_DEFAULT;
    pt->verbose = getenv("SC_PT_VERBOSE") != NULL;
    pt->instance = strdup(instance_name);
    pt->store = pt->own_store = sc_pt_store_new();
    char cwd[4096];
    pt->base_dir = getcwd(cwd, sizeof cwd) ? strdup(cwd) : NULL;
    if (!pt->instance || !pt->own_store) {
        snprintf(err, errlen, "out of memory");
        sc_pt_destroy(&pt);
        return NULL;
    }
    sc_host_lib_t lib;
    if (sc_host_lib_open(so_path, host_abi, &lib, err, errlen) != 0) {
        sc_pt_destroy(&pt);
        return NULL;
    }
    if (!(pt->written = sc_sv_new_group(1))) {
        sc_host_lib_close(&lib);
        snprintf(err, errlen, "out of memory");
        sc_pt_destroy(&pt);
        return NULL;
    }
    const char *const *chans = channels;
    sc_host_conf_t conf = {
        .name = instance_name,
        .channels = chans,
        .n_channels = n,
        .max_data_bytes = SC_PT_MAX_DATA_DEFAULT,
        .abi = host_abi < SC_PLUGIN_ABI_VERSION ? host_abi
                                                : SC_PLUGIN_ABI_VERSION,
        .sink_capable = true,
    };
    pt->h = sc_host_new(&lib, &conf, &pt_ops, pt, err, errlen);
    if (!pt->h) {
        sc_pt_destroy(&pt);
        return NULL;
    }
    return pt;
}

SC_PT_API sc_pt_t *sc_pt_new(const char *so_path, const char *instance_name,
                             const char *const *channels, char *err,
                             size_t errlen)
{
    return sc_pt_new_abi(so_path, instance_name, channels,
                         SC_PLUGIN_ABI_VERSION, err, errlen);
}

SC_PT_API void sc_pt_destroy(sc_pt_t **pt_p)
{
    if (!pt_p || !*pt_p)
        return;
    sc_pt_t *pt = *pt_p;
    *pt_p = NULL;
    sc_host_destroy(&pt->h); /* calls fini */
    sc_pt_msgs_clear(pt);
    free(pt->msgs);
    sc_pt_log_clear(pt);
    free(pt->logs);
    sc_sv_destroy(&pt->written);
    sc_settings_destroy(&pt->settings);
    for (size_t i = 0; i < pt->n_acks; i++)
        free(pt->acks[i].channel);
    free(pt->acks);
    sc_pt_store_destroy(&pt->own_store);
    free(pt->instance);
    free(pt->base_dir);
    free(pt);
}

SC_PT_API const sc_plugin_t *sc_pt_plugin(sc_pt_t *pt)
{
    return pt && pt->h ? &sc_host_lib(pt->h)->desc : NULL;
}

/* Entry i of the plugin's table (read with its build's stride). */
static bool def_at(const sc_plugin_t *d, size_t i, sc_setting_def_t *out)
{
    size_t stride = sc_settings_def_stride(d);
    if (!d->settings)
        return false;
    const unsigned char *e = (const unsigned char *)d->settings + i * stride;
    const char *name;
    memcpy(&name, e, sizeof name);
    if (!name)
        return false;
    memset(out, 0, sizeof *out);
    memcpy(out, e, stride < sizeof *out ? stride : sizeof *out);
    return true;
}

/* `text` as libconfig text of a value of def's shape: strings are quoted
 * (a test writes them bare), everything else is taken as written. */
static char *as_config(const char *name, const sc_setting_def_t *def,
                       const char *text)
{
    bool quote = (def->type == SC_SETTING_STRING ||
                  def->type == SC_SETTING_PATH) &&
                 !(def->flags & SC_SETTING_F_LIST);
    size_t n = strlen(name) + 2 * strlen(text) + 16;
    char *out = malloc(n);
    if (!out)
        return NULL;
    size_t o = (size_t)snprintf(out, n, "%s = %s", name, quote ? "\"" : "");
    for (const char *c = text; *c; c++) {
        if (quote && (*c == '"' || *c == '\\'))
            out[o++] = '\\';
        out[o++] = *c;
    }
    snprintf(out + o, n - o, "%s;", quote ? "\"" : "");
    return out;
}

static void first_problem(void *arg, const char *file, int line,
                          const char *msg)
{
    sc_pt_t *pt = arg;
    (void)file;
    (void)line;
    if (!pt->error[0])
        snprintf(pt->error, sizeof pt->error, "%s", msg);
}

SC_PT_API int sc_pt_set(sc_pt_t *pt, const char *path, const char *text)
{
    if (!pt || !path || !text)
        return SC_ERR_ARG;
    pt->error[0] = '\0';
    if (pt->started) {
        set_error(pt, "setting '%s': settings are fixed once started", path);
        return SC_ERR_ARG;
    }
    const sc_plugin_t *d = sc_pt_plugin(pt);
    sc_setting_def_t def;
    size_t i = 0;
    bool found = false;
    while (def_at(d, i++, &def))
        if (strcmp(def.name, path) == 0) {
            found = true;
            break;
        }
    if (!found) {
        set_error(pt, "plugin '%s': setting '%s': unknown (plugin %s does "
                  "not declare it)", pt->instance, path, d->name);
        return SC_ERR_NO_SETTING;
    }
    char *cfg = as_config(path, &def, text);
    char perr[256] = "";
    sc_sv_t *one = cfg ? sc_sv_parse(cfg, perr, sizeof perr) : NULL;
    free(cfg);
    if (!one || one->n_items != 1) {
        sc_sv_destroy(&one);
        set_error(pt, "plugin '%s': setting '%s': \"%.64s\" is not a value "
                  "(%s)", pt->instance, path, text, perr);
        return SC_ERR_ARG;
    }
    /* the engine's rules for this one setting, now */
    sc_setting_def_t tbl[2];
    memset(tbl, 0, sizeof tbl);
    tbl[0] = def;
    tbl[0].required = 0;
    sc_settings_where_t w = {.file = "settings", .dir = pt->base_dir,
                             .plugin = pt->instance, .line = 1};
    if (sc_settings_validate(&w, one, tbl, sizeof tbl[0], first_problem, pt,
                             NULL) != 0) {
        sc_sv_destroy(&one);
        add_log(pt, SC_LOG_ERROR, 1, pt->error);
        return SC_ERR_ARG;
    }
    /* the tree the test gave: this value replaces an earlier one */
    sc_sv_t *root = sc_sv_new_group(1);
    for (size_t k = 0; root && k < pt->written->n_items; k++) {
        const sc_sv_t *old = &pt->written->items[k];
        if (!strcmp(old->name, path))
            continue;
        sc_sv_t *c = sc_sv_append(root, old->name, old->kind, old->line);
        sc_sv_t *cp = c ? sc_sv_copy(old) : NULL;
        if (!cp) {
            sc_sv_destroy(&root);
            break;
        }
        char *nm = c->name;
        *c = *cp;
        free(c->name);
        c->name = nm;
        free(cp); /* its contents moved into c */
    }
    sc_sv_t *c = root ? sc_sv_append(root, path, one->items[0].kind,
                                     2 + (int)root->n_items)
                      : NULL;
    sc_sv_t *cp = c ? sc_sv_copy(&one->items[0]) : NULL;
    sc_sv_destroy(&one);
    if (!cp) {
        sc_sv_destroy(&root);
        return SC_ERR_NO_MEMORY;
    }
    char *nm = c->name;
    int line = c->line;
    *c = *cp;
    free(c->name);
    c->name = nm;
    c->line = line;
    free(cp);
    sc_sv_destroy(&pt->written);
    pt->written = root;
    return SC_OK;
}

SC_PT_API void sc_pt_set_base_dir(sc_pt_t *pt, const char *dir)
{
    if (!pt)
        return;
    free(pt->base_dir);
    pt->base_dir = dir ? strdup(dir) : NULL;
}

SC_PT_API void sc_pt_set_max_data(sc_pt_t *pt, size_t max_bytes)
{
    if (pt) {
        pt->max_data = max_bytes;
        sc_host_set_max_data(pt->h, (int64_t)max_bytes);
    }
}

SC_PT_API void sc_pt_set_verbose(sc_pt_t *pt, int verbose)
{
    if (pt)
        pt->verbose = verbose;
}

static void pt_check_log(void *arg, sc_log_level_t level, const char *line)
{
    add_log(arg, level, 0, line);
}

SC_PT_API int sc_pt_check(sc_pt_t *pt)
{
    if (!pt)
        return SC_ERR_ARG;
    pt->error[0] = '\0';
    sc_settings_destroy(&pt->settings);
    const sc_plugin_t *d = sc_pt_plugin(pt);
    sc_settings_where_t w = {.file = "settings", .dir = pt->base_dir,
                             .plugin = pt->instance, .line = 1};
    size_t before = pt->n_logs;
    if (sc_settings_validate_desc(&w, pt->written, d, o_setting_problem, pt,
                                  &pt->settings) != 0) {
        snprintf(pt->error, sizeof pt->error, "%s",
                 pt->n_logs > before ? pt->logs[before].text
                                     : "settings refused");
        return SC_ERR_BAD_SETTING;
    }
    sc_settings_check_env_t env = {
        .instance = pt->instance,
        .channels = sc_host_channels(pt->h),
        .n_channels = sc_host_channel_count(pt->h),
        .log = pt_check_log,
        .log_arg = pt,
        .strerror = sc_host_strerror,
    };
    before = pt->n_logs;
    if (sc_settings_run_check(sc_settings_check_of(d), pt->settings, &env,
                              o_setting_problem, pt) != 0) {
        snprintf(pt->error, sizeof pt->error, "%s",
                 pt->n_logs > before ? pt->logs[pt->n_logs - 1].text
                                     : "check() refused the settings");
        return SC_ERR_BAD_SETTING;
    }
    sc_host_set_settings(pt->h, pt->settings);
    return SC_OK;
}

SC_PT_API int sc_pt_start(sc_pt_t *pt)
{
    if (!pt)
        return SC_ERR_ARG;
    pt->error[0] = '\0';
    if (pt->started) {
        set_error(pt, "sc_pt_start: already started");
        return SC_ERR_ARG;
    }
    int rc = sc_pt_check(pt);
    if (rc != SC_OK)
        return rc;
    rc = sc_host_init(pt->h);
    if (rc != SC_OK) {
        snprintf(pt->error, sizeof pt->error, "init() returned %d (%s)", rc,
                 sc_host_strerror(rc));
        return rc;
    }
    pt->started = true;
    return SC_OK;
}

SC_PT_API int sc_pt_run_for(sc_pt_t *pt, unsigned ms)
{
    if (!pt || !pt->started)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t deadline = now + ms;
    int ran = 0;
    for (;;) {
        int r = sc_host_run_once(pt->h, (int)(deadline - now), -1, NULL);
        if (r < 0)
            break;
        ran += r;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (sc_host_stopping(pt->h) || now >= deadline)
            break;
    }
    return ran;
}

SC_PT_API int sc_pt_fire_timers(sc_pt_t *pt)
{
    return pt && pt->started && !sc_host_stopping(pt->h)
               ? sc_host_fire_timers(pt->h)
               : 0;
}

SC_PT_API size_t sc_pt_timer_count(sc_pt_t *pt)
{
    return pt ? sc_host_timer_count(pt->h) : 0;
}

SC_PT_API size_t sc_pt_watch_count(sc_pt_t *pt)
{
    return pt ? sc_host_watch_count(pt->h) : 0;
}

SC_PT_API size_t sc_pt_msg_count(sc_pt_t *pt) { return pt ? pt->n_msgs : 0; }

SC_PT_API const sc_pt_msg_t *sc_pt_msg_at(sc_pt_t *pt, size_t i)
{
    return pt && i < pt->n_msgs ? &pt->msgs[i] : NULL;
}

SC_PT_API void sc_pt_msgs_clear(sc_pt_t *pt)
{
    if (!pt)
        return;
    for (size_t i = 0; i < pt->n_msgs; i++) {
        free(pt->msgs[i].channel);
        free(pt->msgs[i].kind);
        free(pt->msgs[i].key);
        free(pt->msgs[i].data);
    }
    pt->n_msgs = 0;
    if (pt->h)
        sc_host_reset_refusals(pt->h);
}

SC_PT_API size_t sc_pt_refused_count(sc_pt_t *pt)
{
    return pt ? (size_t)sc_host_refused(pt->h) : 0;
}

SC_PT_API int sc_pt_last_refusal(sc_pt_t *pt)
{
    return pt ? sc_host_last_refusal(pt->h) : SC_OK;
}

SC_PT_API size_t sc_pt_log_count(sc_pt_t *pt) { return pt ? pt->n_logs : 0; }

SC_PT_API const sc_pt_log_t *sc_pt_log_at(sc_pt_t *pt, size_t i)
{
    return pt && i < pt->n_logs ? &pt->logs[i] : NULL;
}

SC_PT_API long sc_pt_log_find(sc_pt_t *pt, size_t from, const char *needle)
{
    if (!pt || !needle)
        return -1;
    for (size_t i = from; i < pt->n_logs; i++)
        if (strstr(pt->logs[i].text, needle))
            return (long)i;
    return -1;
}

SC_PT_API void sc_pt_log_clear(sc_pt_t *pt)
{
    if (!pt)
        return;
    for (size_t i = 0; i < pt->n_logs; i++)
        free(pt->logs[i].text);
    pt->n_logs = 0;
}

SC_PT_API int sc_pt_publish(sc_pt_t *pt, const char *channel,
                            const char *kind, const char *key,
                            const char *json_data)
{
    if (!pt)
        return SC_ERR_ARG;
    const sc_host_api_t *a = sc_host_api(pt->h);
    return a->publish(pt->h, channel, kind, key, json_data);
}

SC_PT_API const char *sc_pt_stop_reason(sc_pt_t *pt)
{
    return pt ? sc_host_stop_reason(pt->h) : NULL;
}

SC_PT_API const char *sc_pt_error(sc_pt_t *pt)
{
    return pt ? pt->error : "";
}

SC_PT_API int sc_pt_is_sink(sc_pt_t *pt)
{
    return pt && sc_host_sink(pt->h) != NULL;
}

SC_PT_API int sc_pt_sink_deliver(sc_pt_t *pt, const char *channel,
                                 const char *epoch, uint64_t seq,
                                 const char *jws)
{
    if (!pt || !channel || !epoch || !jws)
        return SC_ERR_ARG;
    sc_sink_msg_t m = {sizeof m, channel, epoch, seq, jws, strlen(jws)};
    int rc = sc_host_sink_deliver(pt->h, &m);
    return rc == SC_HOST_SINK_HELD ? SC_ERR_LIMIT : rc;
}

SC_PT_API uint64_t sc_pt_sink_acked(sc_pt_t *pt, const char *channel)
{
    for (size_t i = 0; pt && channel && i < pt->n_acks; i++)
        if (!strcmp(pt->acks[i].channel, channel))
            return pt->acks[i].seq;
    return 0;
}

SC_PT_API void sc_pt_use_store(sc_pt_t *pt, sc_pt_store_t *store)
{
    if (pt && store && !pt->started)
        pt->store = store;
}

SC_PT_API sc_pt_store_t *sc_pt_get_store(sc_pt_t *pt)
{
    return pt ? pt->store : NULL;
}

SC_PT_API void sc_pt_set_api_size(sc_pt_t *pt, size_t bytes)
{
    if (pt && !pt->started)
        sc_host_set_api_size(pt->h, bytes);
}

SC_PT_API void sc_pt_fail_publishes(sc_pt_t *pt, size_t n, int code)
{
    if (!pt)
        return;
    pt->fail_publishes = n;
    pt->fail_code = code;
}

SC_PT_API const sc_host_api_t *sc_pt_api(sc_pt_t *pt)
{
    return pt ? sc_host_api(pt->h) : NULL;
}

SC_PT_API sc_host_t *sc_pt_handle(sc_pt_t *pt) { return pt ? pt->h : NULL; }

SC_PT_API void *sc_pt_state(sc_pt_t *pt)
{
    return pt && pt->started ? sc_host_plugin_state(pt->h) : NULL;
}

/* ------------------------------------------------------------------ */
/* temporary directories                                               */

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (ferror(in))
        rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

SC_PT_API int sc_pt_tmpdir(const char *src, char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int k = snprintf(buf, len, "%s/sc-pt.XXXXXX", tmp);
    if (k < 0 || (size_t)k >= len || !mkdtemp(buf))
        return -1;
    if (!src)
        return 0;
    DIR *d = opendir(src);
    if (!d)
        goto fail;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char from[8192], to[8192];
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", buf, de->d_name);
        struct stat st;
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (copy_file(from, to) < 0) {
            closedir(d);
            goto fail;
        }
    }
    closedir(d);
    return 0;
fail:
    sc_pt_rmdir(buf);
    return -1;
}

SC_PT_API void sc_pt_rmdir(const char *dir)
{
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}
