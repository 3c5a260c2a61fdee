/*
 * fakehost.c - a broker-less host for unit-testing sector plugins.
 *
 * Owns everything a plugin can see of a host: the handshake, the settings,
 * the host function table, and a one-thread loop of timers and fd watches.
 * The semantics follow the comments of <sectorcast/plugin.h>; where the
 * header leaves a choice, this file picks the strict one, so that a plugin
 * that passes here also passes under the broker:
 *   - publish() checks, in order: arguments (channel name syntax, kind
 *     [a-z0-9._-]{1,64}, key 1..256 bytes without control characters or
 *     NULL), the grant (the topic "<channel>." must start with a granted
 *     subtree), the size limit, and that data is one JSON object;
 *   - a repeating timer needs an interval > 0;
 *   - after request_stop() and during fini(), publish() and timer_add()
 *     return SC_ERR_STOPPING;
 *   - setting_*() of an undeclared setting, or of a declared one without
 *     a value (no default, not set), is SC_ERR_NO_SETTING, as in the
 *     broker; of the wrong type SC_ERR_ARG. STRING and PATH both read with
 *     setting_string(); setting_float() also reads an INT setting;
 *   - if init() fails, fini() is not called; timers and watches it left are
 *     dropped (and reported);
 *   - durable state (state_*) follows the broker's SQLite store: keys
 *     1..256 bytes, values up to 1 MiB, scoped by instance name, foreach
 *     in key order over the keys that start with the prefix. A put inside
 *     a foreach callback works on the store but the iteration goes on
 *     over the keys as they were when it began.
 * Never: ZeroMQ, signing, journal, SQLite.
 */
#include "support/fakehost.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define FH_CHANNEL_MAX 200 /* as SC_CHANNEL_MAX of the wire contract */
#define FH_KIND_MAX 64
#define FH_KEY_MAX 256
#define FH_MAX_TIMERS 64
#define FH_MAX_WATCHES 64
#define FH_MAX_SETTINGS 256
#define FH_STATE_KEY_MAX 256              /* as the broker's plugin state */
#define FH_STATE_VALUE_MAX (1024 * 1024)

struct sc_host {
    struct fakehost *fh;
};

typedef struct fh_setting {
    const sc_setting_def_t *def;
    int has_value;
    char *s;   /* STRING / PATH (resolved) */
    int64_t i; /* INT */
    int b;     /* BOOL */
    double f;  /* FLOAT */
} fh_setting_t;

typedef struct fh_timer {
    int id;         /* 0 = removed, waiting for compaction */
    uint32_t interval_ms;
    int repeat;
    sc_timer_fn fn;
    void *arg;
    int64_t due_ms; /* monotonic */
} fh_timer_t;

typedef struct fh_state {
    char *instance;
    char *key;
    char *value;
} fh_state_t;

struct fakehost_store {
    fh_state_t *e;  /* sorted by (instance, key) */
    size_t n, cap;
    size_t writes;
    int fail;       /* SC_OK, or the code every call fails with */
};

typedef struct fh_watch {
    int fd;         /* -1 = removed */
    unsigned events;
    sc_fd_fn fn;
    void *arg;
} fh_watch_t;

struct fakehost {
    struct sc_host handle;
    sc_host_api_t api;
    pthread_t owner;
    uint32_t host_abi;

    void *dl;
    char *so_path;
    const sc_plugin_t *plugin;
    char *instance;
    char **channels;
    size_t n_channels;

    fh_setting_t *settings;
    size_t n_settings;
    char *base_dir;
    size_t max_data;
    int verbose;

    int started;  /* init() returned SC_OK */
    int stopping; /* request_stop() or fini() under way */
    char *stop_reason;
    void *state;

    fh_timer_t *timers;
    size_t n_timers, cap_timers;
    int next_timer_id;
    fh_watch_t *watches;
    size_t n_watches, cap_watches;

    fakehost_msg_t *msgs;
    size_t n_msgs, cap_msgs;
    size_t n_refused;
    int last_refusal;

    fakehost_log_t *logs;
    size_t n_logs, cap_logs;

    fakehost_store_t *own_store; /* made with the fakehost */
    fakehost_store_t *store;     /* in use: own_store or the test's */
    size_t fail_publishes;       /* fault injection */
    int fail_code;

    char error[512];
};

/* ---------------------------------------------------------------- misc -- */

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Grow *arr (of elements `size` bytes) so that it holds n+1 elements. */
static int
grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* printf into a new heap string (vasprintf is a GNU extension). */
static char *
vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static const char *level_name[] = { "debug", "info", "warn", "error" };

static void
add_log(fakehost_t *fh, sc_log_level_t level, int from_host, char *text)
{
    if ((unsigned)level > SC_LOG_ERROR)
        level = SC_LOG_ERROR;
    if (fh->verbose)
        fprintf(stderr, "[%s] %s%s: %s\n", level_name[level],
                fh->instance, from_host ? " (host)" : "", text);
    if (grow((void **)&fh->logs, &fh->cap_logs, fh->n_logs,
             sizeof *fh->logs) < 0) {
        free(text);
        return;
    }
    fh->logs[fh->n_logs].level = level;
    fh->logs[fh->n_logs].from_host = from_host;
    fh->logs[fh->n_logs].text = text;
    fh->n_logs++;
}

static void
host_logf(fakehost_t *fh, sc_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
host_logf(fakehost_t *fh, sc_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    if (text)
        add_log(fh, level, 1, text);
}

static void
set_error(fakehost_t *fh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_error(fakehost_t *fh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fh->error, sizeof fh->error, fmt, ap);
    va_end(ap);
    host_logf(fh, SC_LOG_ERROR, "%s", fh->error);
}

/* Resolve the host handle a plugin passed in; NULL if it is not ours or
 * the call comes from another thread than the plugin's. */
static fakehost_t *
from_handle(sc_host_t *host)
{
    if (!host || !host->fh)
        return NULL;
    fakehost_t *fh = host->fh;
    if (!pthread_equal(pthread_self(), fh->owner)) {
        /* Not recorded in the log: that list belongs to the plugin
         * thread. Loud on stderr instead. */
        fprintf(stderr, "fakehost: %s: host function called from a "
                "thread other than the plugin's (forbidden by the ABI)\n",
                fh->instance);
        return NULL;
    }
    return fh;
}

/* ------------------------------------------------------ syntax checks -- */

static int
channel_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FH_CHANNEL_MAX)
        return 0;
    int seg = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (seg == 0)
                return 0;
            seg = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

/* A subtree: one or more segments, each followed by '.'. */
static int
subtree_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[n - 1] != '.' || n - 1 > FH_CHANNEL_MAX)
        return 0;
    char buf[FH_CHANNEL_MAX + 1];
    memcpy(buf, s, n - 1);
    buf[n - 1] = '\0';
    return channel_name_ok(buf);
}

static int
kind_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FH_KIND_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int
key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FH_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int
setting_name_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

/* ---------------------------------------------------------- settings -- */

static const char *
type_name(sc_setting_type_t t)
{
    switch (t) {
    case SC_SETTING_STRING: return "string";
    case SC_SETTING_INT: return "integer";
    case SC_SETTING_BOOL: return "boolean";
    case SC_SETTING_FLOAT: return "float";
    case SC_SETTING_PATH: return "path";
    case SC_SETTING_GROUP: return "group";
    }
    return "?";
}

/* Parse `text` as a value of def's type into *out (not touching
 * has_value). Returns 0, or -1 with why[] filled. */
static int
parse_value(fakehost_t *fh, const sc_setting_def_t *def, const char *text,
            fh_setting_t *out, char *why, size_t whylen)
{
    char *end = NULL;
    switch (def->type) {
    case SC_SETTING_GROUP:
        snprintf(why, whylen, "groups are not supported by the fake host");
        return -1;
    case SC_SETTING_STRING:
        free(out->s);
        out->s = strdup(text);
        return out->s ? 0 : -1;
    case SC_SETTING_PATH: {
        if (!*text) {
            snprintf(why, whylen, "empty path");
            return -1;
        }
        char *p;
        if (text[0] == '/' || !fh->base_dir) {
            p = strdup(text);
        } else {
            size_t n = strlen(fh->base_dir) + strlen(text) + 2;
            if ((p = malloc(n)))
                snprintf(p, n, "%s/%s", fh->base_dir, text);
        }
        if (!p)
            return -1;
        free(out->s);
        out->s = p;
        return 0;
    }
    case SC_SETTING_INT: {
        /* decimal or 0x-hex, optional sign, nothing else (as libconfig) */
        const char *t = text;
        int neg = 0, base = 10;
        if (*t == '-' || *t == '+')
            neg = (*t++ == '-');
        if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
            base = 16;
            t += 2;
        }
        errno = 0;
        unsigned long long v = 0;
        if (isxdigit((unsigned char)*t))
            v = strtoull(t, &end, base);
        if (!isxdigit((unsigned char)*t) || errno || !end || *end ||
            v > (unsigned long long)INT64_MAX + (unsigned long long)neg) {
            snprintf(why, whylen, "\"%s\" is not an integer", text);
            return -1;
        }
        out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    case SC_SETTING_BOOL:
        if (!strcasecmp(text, "true"))
            out->b = 1;
        else if (!strcasecmp(text, "false"))
            out->b = 0;
        else {
            snprintf(why, whylen, "\"%s\" is not a boolean (true or false)",
                     text);
            return -1;
        }
        return 0;
    case SC_SETTING_FLOAT: {
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || isspace((unsigned char)*text) || errno || !end ||
            *end || !isfinite(v)) {
            snprintf(why, whylen, "\"%s\" is not a number", text);
            return -1;
        }
        out->f = v;
        return 0;
    }
    }
    snprintf(why, whylen, "unknown setting type %d", (int)def->type);
    return -1;
}

/* Check the plugin's settings table the way the broker does before it
 * trusts it. Returns 0 or -1 with err[] filled. */
static int
check_settings_table(fakehost_t *fh, char *err, size_t errlen)
{
    const sc_setting_def_t *t = fh->plugin->settings;
    size_t n = 0;
    if (!t)
        return 0;
    while (t[n].name) {
        const sc_setting_def_t *d = &t[n];
        if (n >= FH_MAX_SETTINGS) {
            snprintf(err, errlen, "settings table has more than %d "
                     "entries (missing SC_SETTINGS_END?)", FH_MAX_SETTINGS);
            return -1;
        }
        if (!setting_name_ok(d->name)) {
            snprintf(err, errlen, "settings table: name \"%s\" is not "
                     "[a-z0-9_]+", d->name);
            return -1;
        }
        if (d->type < SC_SETTING_STRING || d->type > SC_SETTING_PATH) {
            snprintf(err, errlen, "settings table: \"%s\" has unknown "
                     "type %d", d->name, (int)d->type);
            return -1;
        }
        for (size_t j = 0; j < n; j++)
            if (!strcmp(t[j].name, d->name)) {
                snprintf(err, errlen, "settings table: \"%s\" declared "
                         "twice", d->name);
                return -1;
            }
        if (d->default_value) {
            fh_setting_t tmp = { .def = d };
            char why[256] = "";
            int rc = parse_value(fh, d, d->default_value, &tmp, why,
                                 sizeof why);
            free(tmp.s);
            if (rc < 0) {
                snprintf(err, errlen, "settings table: default of \"%s\": "
                         "%s", d->name, why);
                return -1;
            }
        }
        n++;
    }
    fh->settings = calloc(n ? n : 1, sizeof *fh->settings);
    if (!fh->settings) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        fh->settings[i].def = &t[i];
    fh->n_settings = n;
    return 0;
}

static fh_setting_t *
find_setting(fakehost_t *fh, const char *name)
{
    for (size_t i = 0; i < fh->n_settings; i++)
        if (!strcmp(fh->settings[i].def->name, name))
            return &fh->settings[i];
    return NULL;
}

int
fakehost_set(fakehost_t *fh, const char *name, const char *value_text)
{
    if (!fh || !name || !value_text)
        return SC_ERR_ARG;
    fh->error[0] = '\0';
    if (fh->started) {
        set_error(fh, "setting \"%s\": settings are fixed once started",
                  name);
        return SC_ERR_ARG;
    }
    fh_setting_t *s = find_setting(fh, name);
    if (!s) {
        set_error(fh, "setting \"%s\": unknown (plugin %s does not declare "
                  "it)", name, fh->plugin->name);
        return SC_ERR_NO_SETTING;
    }
    char why[256] = "";
    if (parse_value(fh, s->def, value_text, s, why, sizeof why) < 0) {
        set_error(fh, "setting \"%s\": wrong type: %s (want %s)", name,
                  why[0] ? why : "out of memory", type_name(s->def->type));
        return SC_ERR_ARG;
    }
    s->has_value = 1;
    return SC_OK;
}

/* --------------------------------------------------- host functions -- */

static const char *
fh_strerror(int code)
{
    switch (code) {
    case SC_OK: return "success";
    case SC_ERR_ARG: return "invalid argument";
    case SC_ERR_NOT_GRANTED: return "channel not granted to this plugin";
    case SC_ERR_BAD_JSON: return "data is not a valid JSON object";
    case SC_ERR_TOO_BIG: return "data over the size limit";
    case SC_ERR_NO_SETTING: return "setting not declared by the plugin";
    case SC_ERR_NO_MEMORY: return "out of memory";
    case SC_ERR_LIMIT: return "too many timers or watches";
    case SC_ERR_STOPPING: return "plugin is being stopped";
    case SC_ERR_INTERNAL: return "internal host error";
    case SC_ERR_NOT_FOUND: return "not found";
    }
    return "unknown error code";
}

/* The topic "<channel>." is covered by a granted subtree if the subtree is
 * a prefix of it (whole segments, since both end on '.'). */
static int
granted(fakehost_t *fh, const char *channel)
{
    char topic[FH_CHANNEL_MAX + 2];
    int n = snprintf(topic, sizeof topic, "%s.", channel);
    if (n < 0 || (size_t)n >= sizeof topic)
        return 0;
    for (size_t i = 0; i < fh->n_channels; i++) {
        size_t g = strlen(fh->channels[i]);
        if (g <= (size_t)n && !memcmp(fh->channels[i], topic, g))
            return 1;
    }
    return 0;
}

static int
refuse(fakehost_t *fh, int code, const char *channel, const char *kind,
       const char *what)
{
    fh->n_refused++;
    fh->last_refusal = code;
    host_logf(fh, SC_LOG_WARN, "publish %s on %s refused: %s%s%s",
              kind ? kind : "(null)", channel ? channel : "(null)",
              fh_strerror(code), what ? ": " : "", what ? what : "");
    return code;
}

static int
fh_publish(sc_host_t *host, const char *channel, const char *kind,
           const char *key, const char *json_data)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (fh->stopping)
        return refuse(fh, SC_ERR_STOPPING, channel, kind, NULL);
    if (!channel || !kind || !json_data)
        return refuse(fh, SC_ERR_ARG, channel, kind, "NULL argument");
    if (!channel_name_ok(channel))
        return refuse(fh, SC_ERR_ARG, channel, kind, "bad channel name");
    if (!kind_ok(kind))
        return refuse(fh, SC_ERR_ARG, channel, kind, "bad kind");
    if (key && !key_ok(key))
        return refuse(fh, SC_ERR_ARG, channel, kind, "bad key");
    if (!granted(fh, channel))
        return refuse(fh, SC_ERR_NOT_GRANTED, channel, kind, NULL);
    size_t len = strlen(json_data);
    /* injected faults come after the argument and grant checks, as a
     * host-side failure would */
    if (len > fh->max_data) {
        char what[64];
        snprintf(what, sizeof what, "%zu > %zu bytes", len, fh->max_data);
        return refuse(fh, SC_ERR_TOO_BIG, channel, kind, what);
    }
    json_error_t jerr;
    json_t *j = json_loadb(json_data, len, JSON_REJECT_DUPLICATES, &jerr);
    int is_obj = j && json_is_object(j);
    json_decref(j);
    if (!is_obj)
        return refuse(fh, SC_ERR_BAD_JSON, channel, kind,
                      j ? "not an object" : jerr.text);
    if (fh->fail_publishes > 0) {
        fh->fail_publishes--;
        return refuse(fh, fh->fail_code, channel, kind, "injected fault");
    }

    if (grow((void **)&fh->msgs, &fh->cap_msgs, fh->n_msgs,
             sizeof *fh->msgs) < 0)
        return refuse(fh, SC_ERR_NO_MEMORY, channel, kind, NULL);
    fakehost_msg_t *m = &fh->msgs[fh->n_msgs];
    m->channel = strdup(channel);
    m->kind = strdup(kind);
    m->key = xstrdup(key);
    m->data = strdup(json_data);
    if (!m->channel || !m->kind || (key && !m->key) || !m->data) {
        free(m->channel);
        free(m->kind);
        free(m->key);
        free(m->data);
        return refuse(fh, SC_ERR_NO_MEMORY, channel, kind, NULL);
    }
    fh->n_msgs++;
    return SC_OK;
}

static void
fh_log(sc_host_t *host, sc_log_level_t level, const char *fmt, ...)
{
    fakehost_t *fh = from_handle(host);
    if (!fh || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    if (text)
        add_log(fh, level, 0, text);
}

/* Common part of the setting_* accessors. */
static int
get_setting(sc_host_t *host, const char *name, const void *out,
            sc_setting_type_t want, fh_setting_t **s_out)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (!name || !out)
        return SC_ERR_ARG;
    fh_setting_t *s = find_setting(fh, name);
    if (!s)
        return SC_ERR_NO_SETTING;
    sc_setting_type_t t = s->def->type == SC_SETTING_PATH ? SC_SETTING_STRING
                                                          : s->def->type;
    if (t != want && !(want == SC_SETTING_FLOAT && t == SC_SETTING_INT))
        return SC_ERR_ARG;
    if (!s->has_value)
        return SC_ERR_NO_SETTING;
    *s_out = s;
    return SC_OK;
}

static int
fh_setting_string(sc_host_t *host, const char *name, const char **out)
{
    fh_setting_t *s = NULL;
    int rc = get_setting(host, name, out, SC_SETTING_STRING, &s);
    if (rc == SC_OK)
        *out = s->s;
    return rc;
}

static int
fh_setting_int(sc_host_t *host, const char *name, int64_t *out)
{
    fh_setting_t *s = NULL;
    int rc = get_setting(host, name, out, SC_SETTING_INT, &s);
    if (rc == SC_OK)
        *out = s->i;
    return rc;
}

static int
fh_setting_bool(sc_host_t *host, const char *name, int *out)
{
    fh_setting_t *s = NULL;
    int rc = get_setting(host, name, out, SC_SETTING_BOOL, &s);
    if (rc == SC_OK)
        *out = s->b;
    return rc;
}

static int
fh_setting_float(sc_host_t *host, const char *name, double *out)
{
    fh_setting_t *s = NULL;
    int rc = get_setting(host, name, out, SC_SETTING_FLOAT, &s);
    if (rc == SC_OK)
        *out = s->def->type == SC_SETTING_INT ? (double)s->i : s->f;
    return rc;
}

static size_t
live_timers(fakehost_t *fh)
{
    size_t n = 0;
    for (size_t i = 0; i < fh->n_timers; i++)
        n += fh->timers[i].id != 0;
    return n;
}

static int
fh_timer_add(sc_host_t *host, uint32_t interval_ms, int repeat,
             sc_timer_fn fn, void *arg)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (!fn || (repeat && interval_ms == 0))
        return SC_ERR_ARG;
    if (fh->stopping)
        return SC_ERR_STOPPING;
    if (live_timers(fh) >= FH_MAX_TIMERS)
        return SC_ERR_LIMIT;
    if (grow((void **)&fh->timers, &fh->cap_timers, fh->n_timers,
             sizeof *fh->timers) < 0)
        return SC_ERR_NO_MEMORY;
    fh_timer_t *t = &fh->timers[fh->n_timers++];
    t->id = ++fh->next_timer_id;
    t->interval_ms = interval_ms;
    t->repeat = repeat != 0;
    t->fn = fn;
    t->arg = arg;
    t->due_ms = mono_ms() + interval_ms;
    return t->id;
}

static fh_timer_t *
find_timer(fakehost_t *fh, int id)
{
    if (id <= 0)
        return NULL;
    for (size_t i = 0; i < fh->n_timers; i++)
        if (fh->timers[i].id == id)
            return &fh->timers[i];
    return NULL;
}

static int
fh_timer_cancel(sc_host_t *host, int timer_id)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    fh_timer_t *t = find_timer(fh, timer_id);
    if (!t)
        return SC_ERR_NOT_FOUND;
    t->id = 0; /* compacted by the loop, never while iterating */
    return SC_OK;
}

static fh_watch_t *
find_watch(fakehost_t *fh, int fd)
{
    if (fd < 0)
        return NULL;
    for (size_t i = 0; i < fh->n_watches; i++)
        if (fh->watches[i].fd == fd)
            return &fh->watches[i];
    return NULL;
}

static size_t
live_watches(fakehost_t *fh)
{
    size_t n = 0;
    for (size_t i = 0; i < fh->n_watches; i++)
        n += fh->watches[i].fd >= 0;
    return n;
}

static int
fh_fd_watch(sc_host_t *host, int fd, unsigned events, sc_fd_fn fn, void *arg)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (fd < 0 || !fn || !(events & (SC_FD_READ | SC_FD_WRITE)) ||
        (events & ~(SC_FD_READ | SC_FD_WRITE | SC_FD_ERROR)))
        return SC_ERR_ARG;
    if (fh->stopping)
        return SC_ERR_STOPPING;
    fh_watch_t *w = find_watch(fh, fd);
    if (!w) {
        if (live_watches(fh) >= FH_MAX_WATCHES)
            return SC_ERR_LIMIT;
        if (grow((void **)&fh->watches, &fh->cap_watches, fh->n_watches,
                 sizeof *fh->watches) < 0)
            return SC_ERR_NO_MEMORY;
        w = &fh->watches[fh->n_watches++];
    }
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    return SC_OK;
}

static int
fh_fd_unwatch(sc_host_t *host, int fd)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    fh_watch_t *w = find_watch(fh, fd);
    if (!w)
        return SC_ERR_NOT_FOUND;
    w->fd = -1;
    return SC_OK;
}

static const char *
fh_instance_name(sc_host_t *host)
{
    fakehost_t *fh = from_handle(host);
    return fh ? fh->instance : NULL;
}

static size_t
fh_channel_count(sc_host_t *host)
{
    fakehost_t *fh = from_handle(host);
    return fh ? fh->n_channels : 0;
}

static const char *
fh_channel_at(sc_host_t *host, size_t i)
{
    fakehost_t *fh = from_handle(host);
    return fh && i < fh->n_channels ? fh->channels[i] : NULL;
}

/* --------------------------------------------------- durable state -- */

static int
state_cmp(const fh_state_t *e, const char *instance, const char *key)
{
    int c = strcmp(e->instance, instance);
    return c ? c : strcmp(e->key, key);
}

/* Index of (instance, key), or where it would go (*found = 0). */
static size_t
state_find(const fakehost_store_t *st, const char *instance, const char *key,
           int *found)
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

int
fakehost_store_put(fakehost_store_t *st, const char *instance,
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
    fh_state_t e = { strdup(instance), strdup(key), v };
    if (!e.instance || !e.key ||
        grow((void **)&st->e, &st->cap, st->n, sizeof *st->e) < 0) {
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

const char *
fakehost_store_get(fakehost_store_t *st, const char *instance,
                   const char *key)
{
    int found;
    if (!st || !instance || !key)
        return NULL;
    size_t i = state_find(st, instance, key, &found);
    return found ? st->e[i].value : NULL;
}

size_t
fakehost_store_count(fakehost_store_t *st, const char *instance,
                     const char *prefix)
{
    size_t n = 0, pl = prefix ? strlen(prefix) : 0;
    for (size_t i = 0; st && instance && i < st->n; i++)
        n += !strcmp(st->e[i].instance, instance) &&
             !strncmp(st->e[i].key, prefix ? prefix : "", pl);
    return n;
}

size_t
fakehost_store_writes(fakehost_store_t *st)
{
    return st ? st->writes : 0;
}

void
fakehost_store_fail(fakehost_store_t *st, int code)
{
    if (st)
        st->fail = code;
}

fakehost_store_t *
fakehost_store_new(void)
{
    return calloc(1, sizeof(fakehost_store_t));
}

void
fakehost_store_destroy(fakehost_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fakehost_store_t *st = *self_p;
    for (size_t i = 0; i < st->n; i++) {
        free(st->e[i].instance);
        free(st->e[i].key);
        free(st->e[i].value);
    }
    free(st->e);
    free(st);
    *self_p = NULL;
}

static int
state_key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n <= FH_STATE_KEY_MAX;
}

static int
fh_state_get(sc_host_t *host, const char *key, char **value)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (!state_key_ok(key) || !value)
        return SC_ERR_ARG;
    *value = NULL;
    if (fh->store->fail)
        return fh->store->fail;
    const char *v = fakehost_store_get(fh->store, fh->instance, key);
    if (!v)
        return SC_ERR_NOT_FOUND;
    *value = strdup(v);
    return *value ? SC_OK : SC_ERR_NO_MEMORY;
}

static int
fh_state_put(sc_host_t *host, const char *key, const char *value)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (!state_key_ok(key) || (value && strlen(value) > FH_STATE_VALUE_MAX))
        return SC_ERR_ARG;
    if (fh->store->fail)
        return fh->store->fail;
    int rc = fakehost_store_put(fh->store, fh->instance, key, value);
    if (rc == SC_OK)
        fh->store->writes++;
    return rc;
}

static void
fh_state_free(sc_host_t *host, char *value)
{
    (void)host;
    free(value);
}

static int
fh_state_foreach(sc_host_t *host, const char *prefix,
                 int (*fn)(void *arg, const char *key, const char *value),
                 void *arg)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return host ? SC_ERR_INTERNAL : SC_ERR_ARG;
    if (!fn)
        return SC_ERR_ARG;
    if (fh->store->fail)
        return fh->store->fail;
    /* a snapshot of the matching pairs, so fn may put */
    fakehost_store_t *st = fh->store;
    size_t pl = prefix ? strlen(prefix) : 0, n = 0;
    fh_state_t *snap = calloc(st->n ? st->n : 1, sizeof *snap);
    if (!snap)
        return SC_ERR_NO_MEMORY;
    int rc = SC_OK;
    for (size_t i = 0; i < st->n; i++) {
        if (strcmp(st->e[i].instance, fh->instance) != 0 ||
            strncmp(st->e[i].key, prefix ? prefix : "", pl) != 0)
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

void
fakehost_use_store(fakehost_t *fh, fakehost_store_t *store)
{
    if (fh && store && !fh->started)
        fh->store = store;
}

fakehost_store_t *
fakehost_get_store(fakehost_t *fh)
{
    return fh ? fh->store : NULL;
}

void
fakehost_set_api_size(fakehost_t *fh, size_t bytes)
{
    if (!fh || fh->started || bytes > sizeof fh->api)
        return;
    memset((char *)&fh->api + bytes, 0, sizeof fh->api - bytes);
    fh->api.size = (uint32_t)bytes;
}

void
fakehost_fail_publishes(fakehost_t *fh, size_t n, int code)
{
    if (!fh)
        return;
    fh->fail_publishes = n;
    fh->fail_code = code;
}

static void
fh_request_stop(sc_host_t *host, const char *reason)
{
    fakehost_t *fh = from_handle(host);
    if (!fh)
        return;
    host_logf(fh, SC_LOG_WARN, "plugin requested stop: %s",
              reason ? reason : "(no reason)");
    if (!fh->stop_reason)
        fh->stop_reason = strdup(reason ? reason : "");
    fh->stopping = 1;
}

/* ------------------------------------------------------ life cycle -- */

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

fakehost_t *
fakehost_new_abi(const char *so_path, const char *instance_name,
                 const char *const *channels, uint32_t host_abi, char *err,
                 size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!so_path || !instance_name || !channels) {
        snprintf(err, errlen, "fakehost_new: NULL argument");
        return NULL;
    }
    fakehost_t *fh = calloc(1, sizeof *fh);
    if (!fh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fh->handle.fh = fh;
    fh->owner = pthread_self();
    fh->host_abi = host_abi;
    fh->max_data = FAKEHOST_MAX_DATA_DEFAULT;
    fh->verbose = getenv("FAKEHOST_VERBOSE") != NULL;
    fh->so_path = strdup(so_path);
    fh->instance = strdup(instance_name);
    fh->store = fh->own_store = fakehost_store_new();
    char cwd[4096];
    fh->base_dir = getcwd(cwd, sizeof cwd) ? strdup(cwd) : NULL;
    if (!fh->so_path || !fh->instance || !fh->own_store) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    int name_ok = *instance_name != '\0';
    for (const char *p = instance_name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            name_ok = 0;
    if (!name_ok) {
        snprintf(err, errlen, "instance name \"%s\" is not [a-z0-9_-]+",
                 instance_name);
        goto fail;
    }
    size_t n = 0;
    while (channels[n])
        n++;
    fh->channels = calloc(n ? n : 1, sizeof *fh->channels);
    if (!fh->channels) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!subtree_ok(channels[i])) {
            snprintf(err, errlen, "granted channel \"%s\" is not a subtree "
                     "(lowercase [a-z0-9-] segments, each ending in '.')",
                     channels[i]);
            goto fail;
        }
        if (!(fh->channels[fh->n_channels++] = strdup(channels[i]))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }

    /* The handshake, as the broker does it. */
    dlerror();
    fh->dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!fh->dl) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s: cannot load: %s", so_path,
                 e ? e : "unknown dlopen error");
        goto fail;
    }
    dlerror();
    void *sym = dlsym(fh->dl, SC_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen, "%s: no symbol %s: not a sectorcast plugin",
                 so_path, SC_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    sc_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object -> function pointer */
    fh->plugin = entry(host_abi);
    if (!fh->plugin) {
        snprintf(err, errlen, "%s: %s(%u) returned NULL: the plugin "
                 "refuses to run on a host of ABI %u", so_path,
                 SC_PLUGIN_ENTRY_SYMBOL, (unsigned)host_abi,
                 (unsigned)host_abi);
        goto fail;
    }
    if (fh->plugin->abi_version < 1 || fh->plugin->abi_version > host_abi) {
        snprintf(err, errlen, "%s: plugin is built for ABI %u, this host "
                 "speaks ABI 1..%u", so_path,
                 (unsigned)fh->plugin->abi_version, (unsigned)host_abi);
        goto fail;
    }
    if (!fh->plugin->name || !*fh->plugin->name) {
        snprintf(err, errlen, "%s: descriptor has no name", so_path);
        goto fail;
    }
    if (!fh->plugin->init) {
        snprintf(err, errlen, "%s: descriptor has no init()", so_path);
        goto fail;
    }
    for (size_t i = 0; i < sizeof fh->plugin->future /
                               sizeof fh->plugin->future[0]; i++)
        if (fh->plugin->future[i]) {
            snprintf(err, errlen, "%s: descriptor's future[%zu] is not "
                     "NULL (reserved)", so_path, i);
            goto fail;
        }
    char terr[400];
    if (check_settings_table(fh, terr, sizeof terr) < 0) {
        snprintf(err, errlen, "%s: %s", so_path, terr);
        goto fail;
    }

    sc_host_api_t *a = &fh->api;
    a->abi_version = host_abi;
    a->size = sizeof *a;
    a->publish = fh_publish;
    a->log = fh_log;
    a->setting_string = fh_setting_string;
    a->setting_int = fh_setting_int;
    a->setting_bool = fh_setting_bool;
    a->setting_float = fh_setting_float;
    a->timer_add = fh_timer_add;
    a->timer_cancel = fh_timer_cancel;
    a->fd_watch = fh_fd_watch;
    a->fd_unwatch = fh_fd_unwatch;
    a->instance_name = fh_instance_name;
    a->channel_count = fh_channel_count;
    a->channel_at = fh_channel_at;
    a->strerror = fh_strerror;
    a->request_stop = fh_request_stop;
    a->state_get = fh_state_get;
    a->state_put = fh_state_put;
    a->state_free = fh_state_free;
    a->state_foreach = fh_state_foreach;
    return fh;

fail:
    fh->plugin = NULL;
    fakehost_destroy(&fh);
    return NULL;
}

fakehost_t *
fakehost_new(const char *so_path, const char *instance_name,
             const char *const *channels, char *err, size_t errlen)
{
    return fakehost_new_abi(so_path, instance_name, channels,
                            SC_PLUGIN_ABI_VERSION, err, errlen);
}

int
fakehost_start(fakehost_t *fh)
{
    if (!fh)
        return SC_ERR_ARG;
    fh->error[0] = '\0';
    if (fh->started || fh->stopping) {
        set_error(fh, "fakehost_start: already started");
        return SC_ERR_ARG;
    }
    for (size_t i = 0; i < fh->n_settings; i++) {
        fh_setting_t *s = &fh->settings[i];
        if (s->has_value)
            continue;
        if (s->def->required) {
            set_error(fh, "setting \"%s\" is required (%s)", s->def->name,
                      s->def->description ? s->def->description : "");
            return SC_ERR_ARG;
        }
        if (s->def->default_value) {
            char why[256] = "";
            if (parse_value(fh, s->def, s->def->default_value, s, why,
                            sizeof why) < 0) {
                set_error(fh, "default of \"%s\": %s", s->def->name, why);
                return SC_ERR_INTERNAL;
            }
            s->has_value = 1;
        }
    }
    void *state = NULL;
    int rc = fh->plugin->init(&fh->handle, &fh->api, &state);
    if (rc != SC_OK) {
        set_error(fh, "init() returned %d (%s)", rc, fh_strerror(rc));
        /* fini() is not called after a failed init(): the plugin must
         * have cleaned up itself. Drop what it left registered. */
        if (live_timers(fh) || live_watches(fh))
            host_logf(fh, SC_LOG_WARN, "failed init() left %zu timers and "
                      "%zu fd watches registered", live_timers(fh),
                      live_watches(fh));
        fh->n_timers = 0;
        fh->n_watches = 0;
        return rc < 0 ? rc : SC_ERR_INTERNAL;
    }
    fh->state = state;
    fh->started = 1;
    return SC_OK;
}

void
fakehost_destroy(fakehost_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fakehost_t *fh = *self_p;
    if (fh->started) {
        fh->stopping = 1;
        if (fh->plugin->fini)
            fh->plugin->fini(&fh->handle, fh->state);
        if (live_watches(fh))
            host_logf(fh, SC_LOG_WARN, "fini() left %zu fd watches "
                      "(unwatch before close)", live_watches(fh));
        fh->started = 0;
    }
    if (fh->dl)
        dlclose(fh->dl);
    for (size_t i = 0; i < fh->n_settings; i++)
        free(fh->settings[i].s);
    free(fh->settings);
    fakehost_msgs_clear(fh);
    free(fh->msgs);
    fakehost_log_clear(fh);
    free(fh->logs);
    free(fh->timers);
    free(fh->watches);
    free_strv(fh->channels, fh->n_channels);
    free(fh->stop_reason);
    free(fh->base_dir);
    free(fh->so_path);
    free(fh->instance);
    fakehost_store_destroy(&fh->own_store);
    free(fh);
    *self_p = NULL;
}

/* ------------------------------------------------------------ loop -- */

static void
compact(fakehost_t *fh)
{
    size_t j = 0;
    for (size_t i = 0; i < fh->n_timers; i++)
        if (fh->timers[i].id != 0)
            fh->timers[j++] = fh->timers[i];
    fh->n_timers = j;
    j = 0;
    for (size_t i = 0; i < fh->n_watches; i++)
        if (fh->watches[i].fd >= 0)
            fh->watches[j++] = fh->watches[i];
    fh->n_watches = j;
}

typedef struct due_ref {
    int64_t due;
    int id;
} due_ref_t;

static int
cmp_due(const void *a, const void *b)
{
    const due_ref_t *x = a, *y = b;
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Fire the timers live now whose due time is <= `upto` (all if `all`), in
 * due order. Callbacks may add or cancel timers: each timer is looked up
 * again by id just before it fires. */
static int
fire(fakehost_t *fh, int64_t upto, int all)
{
    size_t n = 0;
    due_ref_t *refs = malloc((fh->n_timers ? fh->n_timers : 1) *
                             sizeof *refs);
    if (!refs)
        return 0;
    for (size_t i = 0; i < fh->n_timers; i++) {
        fh_timer_t *t = &fh->timers[i];
        if (t->id && (all || t->due_ms <= upto))
            refs[n++] = (due_ref_t){ t->due_ms, t->id };
    }
    qsort(refs, n, sizeof *refs, cmp_due);
    int fired = 0;
    for (size_t i = 0; i < n && !fh->stopping; i++) {
        fh_timer_t *t = find_timer(fh, refs[i].id);
        if (!t)
            continue; /* cancelled by an earlier callback */
        sc_timer_fn fn = t->fn;
        void *arg = t->arg;
        int id = t->id;
        if (t->repeat)
            t->due_ms = mono_ms() + t->interval_ms;
        else
            t->id = 0;
        fn(&fh->handle, id, arg);
        fired++;
    }
    free(refs);
    compact(fh);
    return fired;
}

int
fakehost_fire_timers(fakehost_t *fh)
{
    if (!fh || !fh->started)
        return 0;
    return fire(fh, 0, 1);
}

int
fakehost_run_for(fakehost_t *fh, unsigned ms)
{
    if (!fh || !fh->started)
        return 0;
    int64_t deadline = mono_ms() + ms;
    int ran = 0;
    struct pollfd *pfd = NULL;
    for (;;) {
        int64_t now = mono_ms();
        ran += fire(fh, now, 0);
        if (fh->stopping || now >= deadline)
            break;
        int64_t wake = deadline;
        for (size_t i = 0; i < fh->n_timers; i++)
            if (fh->timers[i].id && fh->timers[i].due_ms < wake)
                wake = fh->timers[i].due_ms;
        int timeout = wake > now ? (int)(wake - now) : 0;

        size_t n = fh->n_watches;
        free(pfd);
        pfd = calloc(n ? n : 1, sizeof *pfd);
        if (!pfd)
            break;
        for (size_t i = 0; i < n; i++) {
            pfd[i].fd = fh->watches[i].fd;
            pfd[i].events = (short)(((fh->watches[i].events & SC_FD_READ)
                                     ? POLLIN : 0) |
                                    ((fh->watches[i].events & SC_FD_WRITE)
                                     ? POLLOUT : 0));
        }
        int rc = poll(pfd, (nfds_t)n, timeout);
        if (rc < 0 && errno != EINTR) {
            host_logf(fh, SC_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; rc > 0 && i < n && !fh->stopping; i++) {
            if (!pfd[i].revents)
                continue;
            fh_watch_t *w = find_watch(fh, pfd[i].fd);
            if (!w)
                continue; /* unwatched by an earlier callback */
            unsigned ev = 0;
            if (pfd[i].revents & POLLIN)
                ev |= SC_FD_READ;
            if (pfd[i].revents & POLLOUT)
                ev |= SC_FD_WRITE;
            if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
                ev |= SC_FD_ERROR;
            sc_fd_fn fn = w->fn;
            void *arg = w->arg;
            fn(&fh->handle, pfd[i].fd, ev, arg);
            ran++;
        }
        compact(fh);
    }
    free(pfd);
    return ran;
}

/* -------------------------------------------------------- accessors -- */

const sc_plugin_t *
fakehost_plugin(fakehost_t *fh)
{
    return fh ? fh->plugin : NULL;
}

void
fakehost_set_base_dir(fakehost_t *fh, const char *dir)
{
    if (!fh)
        return;
    free(fh->base_dir);
    fh->base_dir = xstrdup(dir);
}

void
fakehost_set_max_data(fakehost_t *fh, size_t max_bytes)
{
    if (fh)
        fh->max_data = max_bytes;
}

void
fakehost_set_verbose(fakehost_t *fh, int verbose)
{
    if (fh)
        fh->verbose = verbose;
}

size_t
fakehost_timer_count(fakehost_t *fh)
{
    return fh ? live_timers(fh) : 0;
}

size_t
fakehost_watch_count(fakehost_t *fh)
{
    return fh ? live_watches(fh) : 0;
}

size_t
fakehost_msg_count(fakehost_t *fh)
{
    return fh ? fh->n_msgs : 0;
}

const fakehost_msg_t *
fakehost_msg_at(fakehost_t *fh, size_t i)
{
    return fh && i < fh->n_msgs ? &fh->msgs[i] : NULL;
}

void
fakehost_msgs_clear(fakehost_t *fh)
{
    if (!fh)
        return;
    for (size_t i = 0; i < fh->n_msgs; i++) {
        free(fh->msgs[i].channel);
        free(fh->msgs[i].kind);
        free(fh->msgs[i].key);
        free(fh->msgs[i].data);
    }
    fh->n_msgs = 0;
    fh->n_refused = 0;
    fh->last_refusal = SC_OK;
}

size_t
fakehost_refused_count(fakehost_t *fh)
{
    return fh ? fh->n_refused : 0;
}

int
fakehost_last_refusal(fakehost_t *fh)
{
    return fh ? fh->last_refusal : SC_OK;
}

size_t
fakehost_log_count(fakehost_t *fh)
{
    return fh ? fh->n_logs : 0;
}

const fakehost_log_t *
fakehost_log_at(fakehost_t *fh, size_t i)
{
    return fh && i < fh->n_logs ? &fh->logs[i] : NULL;
}

long
fakehost_log_find(fakehost_t *fh, size_t from, const char *needle)
{
    if (!fh || !needle)
        return -1;
    for (size_t i = from; i < fh->n_logs; i++)
        if (strstr(fh->logs[i].text, needle))
            return (long)i;
    return -1;
}

void
fakehost_log_clear(fakehost_t *fh)
{
    if (!fh)
        return;
    for (size_t i = 0; i < fh->n_logs; i++)
        free(fh->logs[i].text);
    fh->n_logs = 0;
}

int
fakehost_publish(fakehost_t *fh, const char *channel, const char *kind,
                 const char *key, const char *json_data)
{
    if (!fh)
        return SC_ERR_ARG;
    return fh_publish(&fh->handle, channel, kind, key, json_data);
}

const char *
fakehost_stop_reason(fakehost_t *fh)
{
    return fh ? fh->stop_reason : NULL;
}

const char *
fakehost_error(fakehost_t *fh)
{
    return fh ? fh->error : "";
}

const sc_host_api_t *
fakehost_api(fakehost_t *fh)
{
    return fh ? &fh->api : NULL;
}

sc_host_t *
fakehost_handle(fakehost_t *fh)
{
    return fh ? &fh->handle : NULL;
}

void *
fakehost_state(fakehost_t *fh)
{
    return fh && fh->started ? fh->state : NULL;
}

/* ---------------------------------------------------- test helpers -- */

static int
exe_dir(char *buf, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int k = snprintf(buf, len, "%s", exe);
    return k < 0 || (size_t)k >= len ? -1 : 0;
}

int
fakehost_find_plugin(const char *name, char *buf, size_t len)
{
    char dir[4096];
    struct stat st;
    if (!name || exe_dir(dir, sizeof dir) < 0)
        return -1;
    int k = snprintf(buf, len, "%s/../plugins/%s.so", dir, name);
    if (k < 0 || (size_t)k >= len)
        return -1;
    return stat(buf, &st) == 0 ? 0 : -1;
}

int
fakehost_find_source(const char *rel, char *buf, size_t len)
{
    char dir[4096];
    struct stat st;
    if (!rel || exe_dir(dir, sizeof dir) < 0)
        return -1;
    for (;;) {
        int k = snprintf(buf, len, "%s/%s", dir, rel);
        if (k > 0 && (size_t)k < len && stat(buf, &st) == 0)
            return 0;
        char *s = strrchr(dir, '/');
        if (!s || s == dir)
            return -1;
        *s = '\0';
    }
}

static int
copy_file(const char *from, const char *to)
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

int
fakehost_tmpdir(const char *src, char *buf, size_t len)
{
    if (snprintf(buf, len, "/tmp/fakehost.XXXXXX") >= (int)len ||
        !mkdtemp(buf))
        return -1;
    if (!src)
        return 0;
    DIR *d = opendir(src);
    if (!d)
        goto fail;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0 ||
            !strncmp(de->d_name, "demo-live", 9) || de->d_name[0] == '.')
            continue;
        char from[8192], to[8192];
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", buf, de->d_name);
        if (copy_file(from, to) < 0) {
            closedir(d);
            goto fail;
        }
    }
    closedir(d);
    return 0;
fail:
    fakehost_rmdir(buf);
    return -1;
}

void
fakehost_rmdir(const char *dir)
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
