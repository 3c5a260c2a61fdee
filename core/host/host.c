/*
 * host.c - see host.h.
 *
 * Refusals: every host call checks its arguments here, once, and a refused
 * publish is logged here as "publish to 'CHANNEL' refused: TEXT[: DETAIL]"
 * whichever user runs the instance, so the broker, a child and the test
 * kit refuse the same call with the same code and the same words.
 */
#include "host/host.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/hash.h"
#include "common/jsoncheck.h"
#include "host/sinkwin.h"

typedef struct htimer {
    int id;
    uint32_t interval_ms;
    int repeat;
    int64_t due_ms;
    sc_timer_fn fn;
    void *arg;
} htimer_t;

typedef struct hwatch {
    int fd;
    unsigned events;
    sc_fd_fn fn;
    void *arg;
} hwatch_t;

enum phase { PH_NEW, PH_INIT, PH_RUN, PH_FINI, PH_DONE };

struct sc_host {
    sc_host_lib_t lib;
    char *name;
    char **channels;
    size_t n_channels;
    int64_t max_data;
    size_t max_channels;       /* 0 = no limit */
    char **seen;               /* open-addressing set of channels used */
    size_t n_seen, seen_cap;
    bool sink_capable;
    const sc_settings_t *settings;
    const sc_host_ops_t *ops;
    void *ctx;
    sc_host_api_t api;
    pthread_t owner;
    enum phase phase;
    atomic_int stopping;
    atomic_uint_fast64_t refused;
    int last_refusal;
    const char *pub_data;  /* the publish being checked (h_publish only) */
    char last_refused_channel[SC_CHANNEL_MAX + 1]; /* "" if not a name */
    size_t last_refused_bytes;
    int wake[2];
    char *stop_reason;
    void *state;
    bool sink_set;
    sc_sink_def_t sink;
    sc_sinkwin_t *sink_win;            /* the def's max_inflight, or NULL */
    const sc_sink_msg_t *delivering;   /* in deliver(): the message */
    bool delivering_acked;             /* ...acknowledged inside deliver() */

    htimer_t timers[SC_HOST_MAX_TIMERS];
    size_t n_timers;
    int next_timer_id;
    hwatch_t watches[SC_HOST_MAX_WATCHES];
    size_t n_watches;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* loading                                                             */

/* The ABI 1 layout of a settings entry: the members before `flags`. */
#define DEF_SIZE_ABI1 offsetof(sc_setting_def_t, flags)
/* The ABI 1 descriptor: abi_version, (padding), name ... fini,
 * future[8]; ABI 2 reuses the padding for `size`. */
#define DESC_MIN_ABI2 (offsetof(sc_plugin_t, setting_def_size) + \
                       sizeof(uint32_t))

int sc_host_lib_open(const char *path, uint32_t offer_abi,
                     sc_host_lib_t *lib, char *err, size_t errlen)
{
    memset(lib, 0, sizeof *lib);
    /* the versions this host speaks: SC_PLUGIN_ABI_MIN..speak */
    uint32_t speak = offer_abi < SC_PLUGIN_ABI_VERSION ? offer_abi
                                                       : SC_PLUGIN_ABI_VERSION;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "plugin %s: %s", path,
                 errno == ENOENT ? "not found" : strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "plugin %s: not a regular file", path);
        return -1;
    }
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        snprintf(err, errlen, "plugin %s: cannot load: %s", path,
                 e ? e : "not a shared object");
        return -1;
    }
    dlerror();
    void *sym = dlsym(dl, SC_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen,
                 "plugin %s: no symbol '%s' (not a sectorcast plugin?)", path,
                 SC_PLUGIN_ENTRY_SYMBOL);
        dlclose(dl);
        return -1;
    }
    sc_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* POSIX: dlsym converts */
    const sc_plugin_t *d = entry(offer_abi);
    if (!d) {
        snprintf(err, errlen,
                 "plugin %s: refuses to run on a host speaking ABI version "
                 "%u",
                 path, (unsigned)offer_abi);
        dlclose(dl);
        return -1;
    }
    uint32_t abi = d->abi_version;
    if (abi < SC_PLUGIN_ABI_MIN || abi > speak) {
        snprintf(err, errlen,
                 "plugin %s: speaks ABI version %u, this broker speaks %u..%u;"
                 " rebuild the plugin against this broker's "
                 "sectorcast/plugin.h",
                 path, (unsigned)abi, SC_PLUGIN_ABI_MIN, (unsigned)speak);
        dlclose(dl);
        return -1;
    }
    /* how much of the descriptor the plugin's build has */
    size_t have;
    size_t def_stride;
    if (abi == 1) {
        /* ABI 1: no size fields; the layout up to fini is ours, then
         * future[8] (all NULL), which ABI 2 overlays with
         * setting_def_size/check/future[6] */
        have = offsetof(sc_plugin_t, setting_def_size);
        def_stride = DEF_SIZE_ABI1;
        const void *const *fut1 =
            (const void *const *)((const unsigned char *)d + have);
        for (size_t i = 0; i < 8; i++)
            if (fut1[i]) {
                snprintf(err, errlen,
                         "plugin %s: descriptor uses reserved field "
                         "future[%zu] that this broker does not know",
                         path, i);
                dlclose(dl);
                return -1;
            }
    } else {
        if (d->size < DESC_MIN_ABI2) {
            snprintf(err, errlen,
                     "plugin %s: descriptor size %u is too small for ABI %u "
                     "(set .size = sizeof(sc_plugin_t), e.g. with "
                     "SC_PLUGIN_SIZES)",
                     path, (unsigned)d->size, (unsigned)abi);
            dlclose(dl);
            return -1;
        }
        have = d->size < sizeof *d ? d->size : sizeof *d;
        def_stride = d->setting_def_size;
    }
    memcpy(&lib->desc, d, have);
    if (abi == 1)
        lib->desc.size = (uint32_t)have;
    if (!lib->desc.name || !*lib->desc.name || !lib->desc.init) {
        snprintf(err, errlen,
                 "plugin %s: malformed descriptor (name and init are "
                 "required)",
                 path);
        dlclose(dl);
        memset(lib, 0, sizeof *lib);
        return -1;
    }
    for (size_t i = 0; i < sizeof d->future / sizeof d->future[0]; i++) {
        size_t off = offsetof(sc_plugin_t, future) + i * sizeof(void *);
        if (off + sizeof(void *) <= have && lib->desc.future[i]) {
            snprintf(err, errlen,
                     "plugin %s: descriptor uses reserved field future[%zu] "
                     "that this broker does not know",
                     path, i);
            dlclose(dl);
            memset(lib, 0, sizeof *lib);
            return -1;
        }
    }
    if (lib->desc.settings && def_stride < DEF_SIZE_ABI1) {
        snprintf(err, errlen,
                 "plugin %s: setting_def_size %zu is too small (set "
                 ".setting_def_size = sizeof(sc_setting_def_t), e.g. "
                 "with SC_PLUGIN_SIZES)",
                 path, def_stride);
        dlclose(dl);
        memset(lib, 0, sizeof *lib);
        return -1;
    }
    lib->desc.abi_version = abi;
    lib->abi = abi;
    lib->dl = dl;
    lib->path = strdup(path);
    if (!lib->path) {
        dlclose(dl);
        memset(lib, 0, sizeof *lib);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void sc_host_lib_close(sc_host_lib_t *lib)
{
    if (!lib)
        return;
    if (lib->dl)
        dlclose(lib->dl);
    free(lib->path);
    memset(lib, 0, sizeof *lib);
}

/* ------------------------------------------------------------------ */
/* shared checks                                                       */

const char *sc_host_strerror(int code)
{
    switch (code) {
    case SC_OK: return "ok";
    case SC_ERR_ARG: return "invalid argument";
    case SC_ERR_NOT_GRANTED: return "channel not granted to this plugin";
    case SC_ERR_BAD_JSON: return "data is not a valid JSON object";
    case SC_ERR_TOO_BIG: return "data over the configured size limit";
    case SC_ERR_NO_SETTING: return "no such setting";
    case SC_ERR_NO_MEMORY: return "out of memory";
    case SC_ERR_LIMIT: return "too many timers or watches";
    case SC_ERR_STOPPING: return "plugin is stopping";
    case SC_ERR_INTERNAL: return "internal error in the broker (see its log)";
    case SC_ERR_NOT_FOUND: return "not found";
    case SC_ERR_UNSUPPORTED: return "not supported by this host";
    case SC_ERR_BAD_SETTING: return "settings refused";
    default: return "unknown error";
    }
}

bool sc_host_kind_valid(const char *k)
{
    if (!k)
        return false;
    size_t n = 0;
    for (; k[n]; n++) {
        char c = k[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return false;
    }
    return n > 0 && n <= SC_HOST_MAX_KIND;
}

bool sc_host_key_valid(const char *k)
{
    if (!k)
        return false;
    size_t n = 0;
    for (; k[n]; n++)
        if ((unsigned char)k[n] < 0x20 || k[n] == 0x7f)
            return false;
    if (n == 0 || n > SC_HOST_MAX_KEY)
        return false;
    return sc_json_utf8_valid(k, n);
}

bool sc_host_state_key_valid(const char *key)
{
    if (!key)
        return false;
    size_t n = strlen(key);
    return n > 0 && n <= SC_HOST_STATE_MAX_KEY;
}

bool sc_host_subtree_valid(const char *s)
{
    return s && sc_subtree_valid(s, strlen(s));
}

bool sc_host_granted(const char *const *channels, size_t n,
                     const char *channel)
{
    char topic[SC_CHANNEL_MAX + 2];
    if (!channel || !sc_channel_valid(channel))
        return false;
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl <= 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (sc_subtree_covers(channels[i], topic, (size_t)tl))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* host API                                                            */

static void host_line(sc_host_inst_t *h, sc_log_level_t lvl, bool from_host,
                      const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
    if (h->ops->log)
        h->ops->log(h->ctx, lvl, from_host, buf);
}

static void hlog(sc_host_inst_t *h, sc_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hlog(sc_host_inst_t *h, sc_log_level_t lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_line(h, lvl, true, fmt, ap);
    va_end(ap);
}

/* The handle if the call comes from the instance's own thread. */
static sc_host_inst_t *self(sc_host_t *h)
{
    if (!h)
        return NULL;
    if (!pthread_equal(h->owner, pthread_self())) {
        hlog(h, SC_LOG_ERROR,
             "host function called from a thread that is not the "
             "plugin's; refused");
        return NULL;
    }
    return h;
}

#define SELF(h_, bad_)                                                    \
    sc_host_inst_t *p = self(h_);                                         \
    if (!p)                                                               \
        return (h_) ? SC_ERR_INTERNAL : (bad_)

static int refuse(sc_host_inst_t *p, int code, const char *channel,
                  const char *detail)
{
    p->last_refusal = code;
    if (channel && sc_channel_valid(channel))
        snprintf(p->last_refused_channel, sizeof p->last_refused_channel,
                 "%s", channel);
    else
        p->last_refused_channel[0] = '\0';
    p->last_refused_bytes = p->pub_data ? strlen(p->pub_data) : 0;
    atomic_fetch_add(&p->refused, 1);
    hlog(p, SC_LOG_WARN, "publish to '%.200s' refused: %s%s%s",
         channel ? channel : "(null)", sc_host_strerror(code),
         detail ? ": " : "", detail ? detail : "");
    return code;
}

/* true if `channel` would be one channel more than max_channels; else
 * remembers it (a bounded set: at most max_channels names) */
static bool channel_new_over(sc_host_inst_t *p, const char *channel)
{
    if (!p->seen) {
        p->seen_cap = 16;
        while (p->seen_cap < 2 * p->max_channels)
            p->seen_cap *= 2;
        if (!(p->seen = calloc(p->seen_cap, sizeof *p->seen)))
            return true;
    }
    size_t i = (size_t)sc_hash_str(channel) & (p->seen_cap - 1);
    while (p->seen[i]) {
        if (strcmp(p->seen[i], channel) == 0)
            return false;
        i = (i + 1) & (p->seen_cap - 1);
    }
    if (p->n_seen >= p->max_channels)
        return true;
    if (!(p->seen[i] = strdup(channel)))
        return true;
    p->n_seen++;
    return false;
}

static int h_publish(sc_host_t *h, const char *channel, const char *kind,
                     const char *key, const char *json_data)
{
    SELF(h, SC_ERR_ARG);
    p->pub_data = json_data;
    if (atomic_load(&p->stopping) || p->phase == PH_FINI)
        return refuse(p, SC_ERR_STOPPING, channel, NULL);
    if (!channel || !sc_channel_valid(channel))
        return refuse(p, SC_ERR_ARG, channel,
                      "not a channel name (lowercase [a-z0-9-] segments "
                      "joined by '.')");
    if (!kind || !sc_host_kind_valid(kind))
        return refuse(p, SC_ERR_ARG, channel,
                      "kind must be 1-64 characters of [a-z0-9._-]");
    if (key && !sc_host_key_valid(key))
        return refuse(p, SC_ERR_ARG, channel,
                      "key must be 1-256 bytes of UTF-8 text without "
                      "control characters");
    if (!sc_host_granted((const char *const *)p->channels, p->n_channels,
                         channel))
        return refuse(p, SC_ERR_NOT_GRANTED, channel, NULL);
    if (!json_data)
        return refuse(p, SC_ERR_ARG, channel, "data is NULL");
    if (p->max_channels && channel_new_over(p, channel)) {
        char d[128];
        snprintf(d, sizeof d,
                 "more than %zu distinct channels (limits.max_channels_per_"
                 "plugin)",
                 p->max_channels);
        return refuse(p, SC_ERR_NOT_GRANTED, channel, d);
    }
    size_t len = strlen(json_data);
    if ((int64_t)len > p->max_data) {
        char d[96];
        snprintf(d, sizeof d, "%zu bytes, limit %lld", len,
                 (long long)p->max_data);
        return refuse(p, SC_ERR_TOO_BIG, channel, d);
    }
    char d[240];
    if (sc_json_object_check(json_data, len, d, sizeof d) != 0)
        return refuse(p, SC_ERR_BAD_JSON, channel, d);
    if (!p->ops->publish)
        return refuse(p, SC_ERR_UNSUPPORTED, channel, NULL);
    sc_host_pub_t pub = {channel, kind, key, json_data, len};
    int rc = p->ops->publish(p->ctx, &pub);
    if (rc != SC_OK && rc != SC_ERR_STOPPING)
        return refuse(p, rc, channel, NULL);
    return rc;
}

static void h_log(sc_host_t *h, sc_log_level_t level, const char *fmt, ...)
{
    if (!h)
        return;
    va_list ap;
    va_start(ap, fmt);
    host_line(h, level, false, fmt, ap);
    va_end(ap);
}

/* Settings: the engine's getters (host/settings.h), one set of rules. */
static int h_setting_string(sc_host_t *h, const char *name, const char **out)
{
    SELF(h, SC_ERR_ARG);
    return p->settings ? sc_settings_string(p->settings, name, out)
                       : SC_ERR_NO_SETTING;
}

static int h_setting_int(sc_host_t *h, const char *name, int64_t *out)
{
    SELF(h, SC_ERR_ARG);
    return p->settings ? sc_settings_int(p->settings, name, out)
                       : SC_ERR_NO_SETTING;
}

static int h_setting_bool(sc_host_t *h, const char *name, int *out)
{
    SELF(h, SC_ERR_ARG);
    return p->settings ? sc_settings_bool(p->settings, name, out)
                       : SC_ERR_NO_SETTING;
}

static int h_setting_float(sc_host_t *h, const char *name, double *out)
{
    SELF(h, SC_ERR_ARG);
    return p->settings ? sc_settings_float(p->settings, name, out)
                       : SC_ERR_NO_SETTING;
}

static int h_setting_count(sc_host_t *h, const char *path, size_t *out)
{
    SELF(h, SC_ERR_ARG);
    return p->settings ? sc_settings_count(p->settings, path, out)
                       : SC_ERR_NO_SETTING;
}

static void problem_report(void *arg, const char *file, int line,
                           const char *msg)
{
    sc_host_inst_t *p = arg;
    if (p->ops->setting_problem)
        p->ops->setting_problem(p->ctx, file, line, msg);
    else if (line > 0)
        hlog(p, SC_LOG_ERROR, "%s:%d: %s", file ? file : "config", line, msg);
    else
        hlog(p, SC_LOG_ERROR, "%s", msg);
}

static void h_setting_problem(sc_host_t *h, const char *path,
                              const char *fmt, ...)
{
    sc_host_inst_t *p = self(h);
    if (!p)
        return;
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
    va_end(ap);
    if (p->settings)
        sc_settings_problem(p->settings, path ? path : "", buf,
                            problem_report, p);
    else
        hlog(p, SC_LOG_ERROR, "plugin '%s': setting '%s': %s", p->name,
             path ? path : "", buf);
}

static int h_timer_add(sc_host_t *h, uint32_t interval_ms, int repeat,
                       sc_timer_fn fn, void *arg)
{
    SELF(h, SC_ERR_ARG);
    if (atomic_load(&p->stopping) || p->phase == PH_FINI)
        return SC_ERR_STOPPING;
    if (!fn || (repeat && interval_ms == 0))
        return SC_ERR_ARG;
    if (p->n_timers >= SC_HOST_MAX_TIMERS)
        return SC_ERR_LIMIT;
    htimer_t *t = &p->timers[p->n_timers++];
    if (p->next_timer_id <= 0)
        p->next_timer_id = 1;
    t->id = p->next_timer_id++;
    t->interval_ms = interval_ms;
    t->repeat = repeat;
    t->due_ms = mono_ms() + interval_ms;
    t->fn = fn;
    t->arg = arg;
    return t->id;
}

static int h_timer_cancel(sc_host_t *h, int id)
{
    SELF(h, SC_ERR_ARG);
    for (size_t i = 0; i < p->n_timers; i++) {
        if (p->timers[i].id == id) {
            memmove(&p->timers[i], &p->timers[i + 1],
                    (p->n_timers - i - 1) * sizeof p->timers[0]);
            p->n_timers--;
            return SC_OK;
        }
    }
    return SC_ERR_NOT_FOUND;
}

static int h_fd_watch(sc_host_t *h, int fd, unsigned events, sc_fd_fn fn,
                      void *arg)
{
    SELF(h, SC_ERR_ARG);
    if (!fn || fd < 0 || !(events & (SC_FD_READ | SC_FD_WRITE)) ||
        (events & ~(SC_FD_READ | SC_FD_WRITE)))
        return SC_ERR_ARG;
    for (size_t i = 0; i < p->n_watches; i++) {
        if (p->watches[i].fd == fd) {
            p->watches[i].events = events;
            p->watches[i].fn = fn;
            p->watches[i].arg = arg;
            return SC_OK;
        }
    }
    if (p->n_watches >= SC_HOST_MAX_WATCHES)
        return SC_ERR_LIMIT;
    p->watches[p->n_watches++] = (hwatch_t){fd, events, fn, arg};
    return SC_OK;
}

static int h_fd_unwatch(sc_host_t *h, int fd)
{
    SELF(h, SC_ERR_ARG);
    for (size_t i = 0; i < p->n_watches; i++) {
        if (p->watches[i].fd == fd) {
            memmove(&p->watches[i], &p->watches[i + 1],
                    (p->n_watches - i - 1) * sizeof p->watches[0]);
            p->n_watches--;
            return SC_OK;
        }
    }
    return SC_ERR_NOT_FOUND;
}

static const char *h_instance_name(sc_host_t *h)
{
    return h ? h->name : NULL;
}

static size_t h_channel_count(sc_host_t *h)
{
    return h ? h->n_channels : 0;
}

static const char *h_channel_at(sc_host_t *h, size_t i)
{
    if (!h || i >= h->n_channels)
        return NULL;
    return h->channels[i];
}

static void h_request_stop(sc_host_t *h, const char *reason)
{
    sc_host_inst_t *p = self(h);
    if (!p)
        return;
    hlog(p, SC_LOG_WARN, "plugin asked to stop: %s",
         reason ? reason : "(no reason given)");
    if (!p->stop_reason)
        p->stop_reason = strdup(reason ? reason : "");
    sc_host_stop(p);
    if (p->ops->stopped)
        p->ops->stopped(p->ctx, reason ? reason : "");
}

static int h_state_get(sc_host_t *h, const char *key, char **value)
{
    SELF(h, SC_ERR_ARG);
    if (!sc_host_state_key_valid(key) || !value)
        return SC_ERR_ARG;
    *value = NULL;
    if (!p->ops->state_get)
        return SC_ERR_UNSUPPORTED;
    return p->ops->state_get(p->ctx, key, value);
}

static int h_state_put(sc_host_t *h, const char *key, const char *value)
{
    SELF(h, SC_ERR_ARG);
    if (!sc_host_state_key_valid(key) ||
        (value && strlen(value) > SC_HOST_STATE_MAX_VALUE))
        return SC_ERR_ARG;
    if (atomic_load(&p->stopping))
        return SC_ERR_STOPPING;
    if (!p->ops->state_put)
        return SC_ERR_UNSUPPORTED;
    return p->ops->state_put(p->ctx, key, value);
}

static void h_state_free(sc_host_t *h, char *value)
{
    (void)h;
    free(value);
}

static int h_state_foreach(sc_host_t *h, const char *prefix,
                           int (*fn)(void *, const char *, const char *),
                           void *arg)
{
    SELF(h, SC_ERR_ARG);
    if (!fn)
        return SC_ERR_ARG;
    if (!p->ops->state_foreach)
        return SC_ERR_UNSUPPORTED;
    return p->ops->state_foreach(p->ctx, prefix ? prefix : "", fn, arg);
}

static int h_is_granted(sc_host_t *h, const char *channel)
{
    if (!h)
        return 0;
    return sc_host_granted((const char *const *)h->channels, h->n_channels,
                           channel);
}

static int h_capability_register(sc_host_t *h, uint32_t cap,
                                 const void *def)
{
    SELF(h, SC_ERR_ARG);
    if (p->phase != PH_INIT) {
        hlog(p, SC_LOG_ERROR,
             "capability_register(%u) refused: only from init()",
             (unsigned)cap);
        return SC_ERR_UNSUPPORTED;
    }
    if (cap != SC_CAP_SINK) {
        hlog(p, SC_LOG_ERROR,
             "capability %u is not supported by this host", (unsigned)cap);
        return SC_ERR_UNSUPPORTED;
    }
    if (!p->sink_capable) {
        hlog(p, SC_LOG_ERROR,
             "capability_register(SC_CAP_SINK) refused: the configuration "
             "gives this instance nothing to receive (no `receives`)");
        return SC_ERR_NOT_GRANTED;
    }
    const sc_sink_def_t *d = def;
    if (!d || d->size < offsetof(sc_sink_def_t, lost) || !d->deliver) {
        hlog(p, SC_LOG_ERROR,
             "capability_register(SC_CAP_SINK) refused: malformed "
             "sc_sink_def_t (size and deliver are required)");
        return SC_ERR_ARG;
    }
    if (p->sink_set) {
        hlog(p, SC_LOG_ERROR,
             "capability_register(SC_CAP_SINK) refused: already registered");
        return SC_ERR_ARG;
    }
    memset(&p->sink, 0, sizeof p->sink);
    memcpy(&p->sink, d, d->size < sizeof p->sink ? d->size : sizeof p->sink);
    p->sink.size = sizeof p->sink;
    if (p->sink.max_inflight &&
        !(p->sink_win = sc_sinkwin_new(p->sink.max_inflight))) {
        hlog(p, SC_LOG_ERROR,
             "capability_register(SC_CAP_SINK) refused: out of memory");
        return SC_ERR_NO_MEMORY;
    }
    p->sink_set = true;
    return SC_OK;
}

static int h_sink_ack(sc_host_t *h, const char *channel, uint64_t seq)
{
    SELF(h, SC_ERR_ARG);
    if (!p->sink_set)
        return SC_ERR_UNSUPPORTED;
    if (!channel || !sc_channel_valid(channel) || seq == 0)
        return SC_ERR_ARG;
    if (!p->ops->sink_ack)
        return SC_ERR_UNSUPPORTED;
    int rc = p->ops->sink_ack(p->ctx, channel, seq);
    if (rc == SC_OK) {
        sc_sinkwin_acked(p->sink_win, channel, seq);
        if (p->delivering && seq >= p->delivering->seq &&
            strcmp(channel, p->delivering->channel) == 0)
            p->delivering_acked = true;
    }
    return rc;
}

static void fill_api(sc_host_api_t *a, uint32_t abi)
{
    memset(a, 0, sizeof *a);
    a->abi_version = abi;
    a->size = sizeof *a;
    a->publish = h_publish;
    a->log = h_log;
    a->setting_string = h_setting_string;
    a->setting_int = h_setting_int;
    a->setting_bool = h_setting_bool;
    a->setting_float = h_setting_float;
    a->timer_add = h_timer_add;
    a->timer_cancel = h_timer_cancel;
    a->fd_watch = h_fd_watch;
    a->fd_unwatch = h_fd_unwatch;
    a->instance_name = h_instance_name;
    a->channel_count = h_channel_count;
    a->channel_at = h_channel_at;
    a->strerror = sc_host_strerror;
    a->request_stop = h_request_stop;
    a->state_get = h_state_get;
    a->state_put = h_state_put;
    a->state_free = h_state_free;
    a->state_foreach = h_state_foreach;
    if (abi >= 2) {
        a->is_granted = h_is_granted;
        a->setting_count = h_setting_count;
        a->setting_problem = h_setting_problem;
        a->capability_register = h_capability_register;
        a->sink_ack = h_sink_ack;
    } else {
        a->size = offsetof(sc_host_api_t, is_granted);
    }
}

/* ------------------------------------------------------------------ */
/* instance                                                            */

/* Bind the instance to the calling thread (the plugin thread). */
static void adopt(sc_host_inst_t *h)
{
    h->owner = pthread_self();
}

sc_host_inst_t *sc_host_new(sc_host_lib_t *lib, const sc_host_conf_t *conf,
                            const sc_host_ops_t *ops, void *ctx, char *err,
                            size_t errlen)
{
    sc_host_inst_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        sc_host_lib_close(lib);
        return NULL;
    }
    h->lib = *lib;
    memset(lib, 0, sizeof *lib);
    h->wake[0] = h->wake[1] = -1;
    h->owner = pthread_self();
    h->ops = ops;
    h->ctx = ctx;
    h->max_data = conf->max_data_bytes;
    h->max_channels = conf->max_channels;
    h->sink_capable = conf->sink_capable;
    h->settings = conf->settings;
    h->name = strdup(conf->name ? conf->name : "plugin");
    h->channels = calloc(conf->n_channels + 1, sizeof *h->channels);
    bool oom = !h->name || !h->channels;
    for (size_t i = 0; !oom && i < conf->n_channels; i++) {
        if (!(h->channels[i] = strdup(conf->channels[i])))
            oom = true;
        else
            h->n_channels++;
    }
    if (oom) {
        snprintf(err, errlen, "out of memory");
        sc_host_destroy(&h);
        return NULL;
    }
    if (pipe(h->wake) != 0) {
        snprintf(err, errlen, "plugin %s: pipe: %s", h->name,
                 strerror(errno));
        sc_host_destroy(&h);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(h->wake[i], F_SETFD, FD_CLOEXEC);
        fcntl(h->wake[i], F_SETFL, O_NONBLOCK);
    }
    uint32_t abi = conf->abi ? conf->abi : SC_PLUGIN_ABI_VERSION;
    fill_api(&h->api, abi);
    if (conf->api_size)
        sc_host_set_api_size(h, conf->api_size);
    return h;
}

int sc_host_init(sc_host_inst_t *h)
{
    adopt(h);
    h->phase = PH_INIT;
    void *state = NULL;
    int rc = h->lib.desc.init(h, &h->api, &state);
    if (rc != SC_OK) {
        h->phase = PH_DONE;
        hlog(h, SC_LOG_ERROR, "plugin init failed: %s (%d)",
             sc_host_strerror(rc), rc);
        if (h->n_timers || h->n_watches)
            hlog(h, SC_LOG_WARN,
                 "failed init() left %zu timers and %zu fd watches "
                 "registered; dropped",
                 h->n_timers, h->n_watches);
        h->n_timers = h->n_watches = 0;
        h->sink_set = false;
        sc_sinkwin_destroy(&h->sink_win);
        return rc < 0 ? rc : SC_ERR_INTERNAL;
    }
    h->state = state;
    h->phase = PH_RUN;
    return SC_OK;
}

void sc_host_finish(sc_host_inst_t *h)
{
    if (!h || h->phase != PH_RUN)
        return;
    adopt(h);
    atomic_store(&h->stopping, 1);
    h->phase = PH_FINI;
    if (h->lib.desc.fini)
        h->lib.desc.fini(h, h->state);
    h->state = NULL;
    if (h->n_watches)
        hlog(h, SC_LOG_WARN,
             "plugin left %zu fd watch(es) registered after fini()",
             h->n_watches);
    h->n_timers = h->n_watches = 0;
    h->phase = PH_DONE;
}

void sc_host_destroy(sc_host_inst_t **h_p)
{
    if (!h_p || !*h_p)
        return;
    sc_host_inst_t *h = *h_p;
    *h_p = NULL;
    sc_host_finish(h);
    h->phase = PH_DONE;
    for (size_t i = 0; i < h->n_channels; i++)
        free(h->channels[i]);
    free(h->channels);
    for (size_t i = 0; h->seen && i < h->seen_cap; i++)
        free(h->seen[i]);
    free(h->seen);
    free(h->name);
    free(h->stop_reason);
    sc_sinkwin_destroy(&h->sink_win);
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    sc_host_lib_close(&h->lib);
    free(h);
}

const sc_host_lib_t *sc_host_lib(const sc_host_inst_t *h) { return &h->lib; }
const char *sc_host_name(const sc_host_inst_t *h) { return h->name; }
const sc_host_api_t *sc_host_api(sc_host_inst_t *h) { return &h->api; }
void *sc_host_plugin_state(const sc_host_inst_t *h) { return h->state; }
const char *sc_host_stop_reason(const sc_host_inst_t *h)
{
    return h->stop_reason;
}

void sc_host_stop(sc_host_inst_t *h)
{
    if (!h || atomic_exchange(&h->stopping, 1))
        return;
    char c = 'x';
    ssize_t w = write(h->wake[1], &c, 1);
    (void)w;
}

bool sc_host_stopping(const sc_host_inst_t *h)
{
    return atomic_load(&((sc_host_inst_t *)h)->stopping) != 0;
}

size_t sc_host_timer_count(const sc_host_inst_t *h) { return h->n_timers; }

uint64_t sc_host_refused(const sc_host_inst_t *h)
{
    return atomic_load(&((sc_host_inst_t *)h)->refused);
}

int sc_host_last_refusal(const sc_host_inst_t *h)
{
    return h->last_refusal;
}

const char *sc_host_last_refused_channel(const sc_host_inst_t *h,
                                         size_t *bytes)
{
    if (bytes)
        *bytes = h->last_refused_bytes;
    return h->last_refused_channel;
}

void sc_host_reset_refusals(sc_host_inst_t *h)
{
    atomic_store(&h->refused, 0);
    h->last_refusal = SC_OK;
}

void sc_host_set_settings(sc_host_inst_t *h, const sc_settings_t *s)
{
    if (h && h->phase == PH_NEW)
        h->settings = s;
}

const char *const *sc_host_channels(const sc_host_inst_t *h)
{
    return (const char *const *)h->channels;
}

size_t sc_host_channel_count(const sc_host_inst_t *h)
{
    return h->n_channels;
}

void sc_host_set_max_data(sc_host_inst_t *h, int64_t max_bytes)
{
    if (h)
        h->max_data = max_bytes;
}

void sc_host_set_api_size(sc_host_inst_t *h, size_t bytes)
{
    if (!h || h->phase != PH_NEW || bytes >= sizeof h->api)
        return;
    size_t keep = bytes < offsetof(sc_host_api_t, publish)
                      ? offsetof(sc_host_api_t, publish)
                      : bytes;
    memset((unsigned char *)&h->api + keep, 0, sizeof h->api - keep);
    h->api.size = (uint32_t)bytes;
}
size_t sc_host_watch_count(const sc_host_inst_t *h) { return h->n_watches; }

/* ------------------------------------------------------------------ */
/* loop                                                                */

/* Fire the timers due at `upto` (all of them when all), each once;
 * callbacks may add or cancel timers, so each is looked up again by id. */
static int fire(sc_host_inst_t *h, int64_t now, bool all)
{
    int due[SC_HOST_MAX_TIMERS];
    size_t n = 0;
    /* in order of due time, then id */
    htimer_t snap[SC_HOST_MAX_TIMERS];
    size_t ns = h->n_timers;
    memcpy(snap, h->timers, ns * sizeof *snap);
    for (size_t i = 1; i < ns; i++) {
        htimer_t t = snap[i];
        size_t k = i;
        while (k > 0 && (snap[k - 1].due_ms > t.due_ms ||
                         (snap[k - 1].due_ms == t.due_ms &&
                          snap[k - 1].id > t.id))) {
            snap[k] = snap[k - 1];
            k--;
        }
        snap[k] = t;
    }
    for (size_t i = 0; i < ns; i++)
        if (all || snap[i].due_ms <= now)
            due[n++] = snap[i].id;
    int fired = 0;
    for (size_t k = 0; k < n && !atomic_load(&h->stopping); k++) {
        for (size_t i = 0; i < h->n_timers; i++) {
            if (h->timers[i].id != due[k])
                continue;
            htimer_t t = h->timers[i];
            if (t.repeat) {
                /* fixed rate: the next due time follows the previous
                 * one (a wake-up a little late does not slow the timer
                 * down); one late by a whole period or more skips ahead
                 * instead of firing in a burst */
                int64_t iv = t.interval_ms ? t.interval_ms : 1;
                int64_t next = t.due_ms + iv;
                h->timers[i].due_ms = next > now ? next : now + iv;
            } else {
                memmove(&h->timers[i], &h->timers[i + 1],
                        (h->n_timers - i - 1) * sizeof h->timers[0]);
                h->n_timers--;
            }
            t.fn(h, t.id, t.arg);
            fired++;
            break;
        }
    }
    return fired;
}

int sc_host_fire_timers(sc_host_inst_t *h)
{
    if (h->phase != PH_RUN)
        return 0;
    return fire(h, mono_ms(), true);
}

static int next_timeout(sc_host_inst_t *h)
{
    if (h->n_timers == 0)
        return -1;
    int64_t now = mono_ms(), best = INT64_MAX;
    for (size_t i = 0; i < h->n_timers; i++)
        if (h->timers[i].due_ms < best)
            best = h->timers[i].due_ms;
    int64_t d = best - now;
    return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

int sc_host_run_once(sc_host_inst_t *h, int max_wait_ms, int extra_fd,
                     bool *extra_ready)
{
    if (extra_ready)
        *extra_ready = false;
    if (h->phase != PH_RUN || atomic_load(&h->stopping))
        return 0;
    struct pollfd fds[SC_HOST_MAX_WATCHES + 2];
    hwatch_t snap[SC_HOST_MAX_WATCHES];
    size_t n = h->n_watches;
    memcpy(snap, h->watches, n * sizeof *snap);
    fds[0] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
    fds[1] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
    for (size_t i = 0; i < n; i++) {
        short ev = 0;
        if (snap[i].events & SC_FD_READ)
            ev |= POLLIN;
        if (snap[i].events & SC_FD_WRITE)
            ev |= POLLOUT;
        fds[i + 2] = (struct pollfd){.fd = snap[i].fd, .events = ev};
    }
    int wait = next_timeout(h);
    if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
        wait = max_wait_ms;
    int rc = poll(fds, n + 2, wait);
    if (rc < 0 && errno != EINTR) {
        hlog(h, SC_LOG_ERROR, "poll: %s", strerror(errno));
        return -1;
    }
    if (extra_ready && extra_fd >= 0 && (fds[1].revents & POLLIN))
        *extra_ready = true;
    int ran = 0;
    for (size_t i = 0; rc > 0 && i < n; i++) {
        if (atomic_load(&h->stopping))
            break;
        short re = fds[i + 2].revents;
        if (!re)
            continue;
        /* skip watches removed by an earlier callback in this round */
        bool still = false;
        for (size_t k = 0; k < h->n_watches; k++)
            if (h->watches[k].fd == snap[i].fd &&
                h->watches[k].fn == snap[i].fn)
                still = true;
        if (!still)
            continue;
        unsigned ev = 0;
        if (re & POLLIN)
            ev |= SC_FD_READ;
        if (re & POLLOUT)
            ev |= SC_FD_WRITE;
        if (re & (POLLERR | POLLHUP | POLLNVAL))
            ev |= SC_FD_ERROR;
        if (re & POLLNVAL) {
            hlog(h, SC_LOG_WARN, "watched fd %d is not open; watch removed",
                 snap[i].fd);
            h_fd_unwatch(h, snap[i].fd);
        }
        snap[i].fn(h, snap[i].fd, ev, snap[i].arg);
        ran++;
    }
    if (!atomic_load(&h->stopping))
        ran += fire(h, mono_ms(), false);
    return ran;
}

/* ------------------------------------------------------------------ */
/* sinks                                                               */

const sc_sink_def_t *sc_host_sink(const sc_host_inst_t *h)
{
    return h && h->sink_set ? &h->sink : NULL;
}

int sc_host_sink_deliver(sc_host_inst_t *h, const sc_sink_msg_t *msg)
{
    if (!h || !h->sink_set || h->phase != PH_RUN)
        return SC_ERR_UNSUPPORTED;
    if (sc_sinkwin_full(h->sink_win))
        return SC_HOST_SINK_HELD;
    h->delivering = msg;
    h->delivering_acked = false;
    int rc = h->sink.deliver(h, msg, h->sink.arg);
    h->delivering = NULL;
    if (rc == SC_OK && !h->delivering_acked &&
        sc_sinkwin_delivered(h->sink_win, msg->channel, msg->epoch,
                             msg->seq) != 0)
        hlog(h, SC_LOG_WARN, "out of memory: %s seq %llu not counted in the "
             "sink's max_inflight", msg->channel,
             (unsigned long long)msg->seq);
    return rc;
}

void sc_host_sink_lost(sc_host_inst_t *h, const char *channel,
                       const char *epoch, uint64_t first, uint64_t last)
{
    if (!h || !h->sink_set || h->phase != PH_RUN)
        return;
    sc_sinkwin_lost(h->sink_win, channel, epoch, last);
    if (h->sink.lost)
        h->sink.lost(h, channel, epoch, first, last, h->sink.arg);
}
