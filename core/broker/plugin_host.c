/*
 * plugin_host.c - see plugin_host.h.
 *
 * One thread per plugin instance. The thread's loop is a poll(2) over a
 * stop pipe and the fds the plugin watches, with the nearest timer as the
 * timeout. A publish is checked on the plugin's own thread (so a refusal is
 * returned synchronously to the plugin) and then queued on the instance's
 * PUSH socket. PUSH blocks at its high-water mark instead of dropping, so a
 * plugin that outruns the core is slowed down, never loses a message; the
 * send waits in short slices so that a stop request is still honoured.
 */
#include "plugin_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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
#include <sqlite3.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/clock.h"
#include "log.h"

#define MAX_TIMERS 256
#define MAX_WATCHES 64
#define MAX_KIND 64
#define MAX_KEY 256

typedef struct timer {
    int id;
    uint32_t interval_ms;
    int repeat;
    int64_t due_ms;
    sc_timer_fn fn;
    void *arg;
} timer_t_;

typedef struct watch {
    int fd;
    unsigned events;
    sc_fd_fn fn;
    void *arg;
} watch_t;

struct sc_host {
    sc_plugin_inst_t *inst;
};

struct sc_plugin_inst {
    sc_host_t host;
    sc_plugin_lib_t lib;
    char *name;
    char *sector;
    char **channels; /* granted subtrees */
    size_t n_channels;
    sc_settings_t *settings; /* resolved (host/settings.h), own copy */
    int64_t max_data_bytes;

    void *zctx;
    char *core_endpoint;
    void *push; /* owned by the plugin thread */
    bool acked; /* DEALER + wait for the core's ack */

    pthread_t thread;
    int thread_started;
    int stop_pipe[2];
    atomic_int stopping;
    atomic_int exited;
    atomic_uint_fast64_t published;
    atomic_uint_fast64_t refused;

    timer_t_ timers[MAX_TIMERS];
    size_t n_timers;
    int next_timer_id;
    watch_t watches[MAX_WATCHES];
    size_t n_watches;

    void *state;
    char *state_db_path;
    sqlite3 *state_db; /* read-only, opened on the plugin thread */
    struct overlay *overlay; /* this instance's state writes */
    pthread_mutex_t done_mu;
    pthread_cond_t done_cv;
};

/* ------------------------------------------------------------------ */
/* loading                                                             */

int sc_plugin_lib_open(const char *path, sc_plugin_lib_t *lib, char *err,
                       size_t errlen)
{
    memset(lib, 0, sizeof *lib);
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
    /* POSIX guarantees object and function pointers convert via dlsym */
    memcpy(&entry, &sym, sizeof entry);
    const sc_plugin_t *d = entry(SC_PLUGIN_ABI_VERSION);
    if (!d) {
        snprintf(err, errlen,
                 "plugin %s: refuses to run on a host speaking ABI version "
                 "%u",
                 path, SC_PLUGIN_ABI_VERSION);
        dlclose(dl);
        return -1;
    }
    if (d->abi_version < SC_PLUGIN_ABI_MIN ||
        d->abi_version > SC_PLUGIN_ABI_VERSION) {
        snprintf(err, errlen,
                 "plugin %s: speaks ABI version %u, this broker speaks %u; "
                 "rebuild the plugin against this broker's "
                 "sectorcast/plugin.h",
                 path, (unsigned)d->abi_version, SC_PLUGIN_ABI_VERSION);
        dlclose(dl);
        return -1;
    }
    if (!d->name || !*d->name || !d->init) {
        snprintf(err, errlen,
                 "plugin %s: malformed descriptor (name and init are "
                 "required)",
                 path);
        dlclose(dl);
        return -1;
    }
    for (size_t i = 0; i < sizeof d->future / sizeof d->future[0]; i++) {
        if (d->future[i]) {
            snprintf(err, errlen,
                     "plugin %s: descriptor uses reserved field future[%zu] "
                     "that this broker does not know",
                     path, i);
            dlclose(dl);
            return -1;
        }
    }
    lib->dl = dl;
    lib->desc = d;
    lib->path = strdup(path);
    if (!lib->path) {
        dlclose(dl);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void sc_plugin_lib_close(sc_plugin_lib_t *lib)
{
    if (!lib)
        return;
    if (lib->dl)
        dlclose(lib->dl);
    free(lib->path);
    memset(lib, 0, sizeof *lib);
}

/* ------------------------------------------------------------------ */
/* host API                                                            */

static const char *h_strerror(int code)
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
    default: return "unknown error";
    }
}

static void h_log(sc_host_t *h, sc_log_level_t level, const char *fmt, ...)
{
    sc_level_t l = level <= SC_LOG_DEBUG  ? SC_L_DEBUG
                   : level == SC_LOG_INFO ? SC_L_INFO
                   : level == SC_LOG_WARN ? SC_L_WARN
                                          : SC_L_ERROR;
    va_list ap;
    va_start(ap, fmt);
    sc_logv(l, h && h->inst ? h->inst->name : "plugin", fmt ? fmt : "", ap);
    va_end(ap);
}

static bool valid_kind(const char *k)
{
    size_t n = 0;
    for (; k[n]; n++) {
        char c = k[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return false;
    }
    return n > 0 && n <= MAX_KIND;
}

static bool valid_key(const char *k)
{
    size_t n = 0;
    for (; k[n]; n++)
        if ((unsigned char)k[n] < 0x20 || k[n] == 0x7f)
            return false;
    if (n == 0 || n > MAX_KEY)
        return false;
    json_t *s = json_string(k); /* NULL unless valid UTF-8 */
    json_decref(s);
    return s != NULL;
}

static int refuse(sc_plugin_inst_t *p, int code, const char *channel,
                  const char *detail)
{
    atomic_fetch_add(&p->refused, 1);
    sc_log(SC_L_WARN, p->name, "publish to '%.200s' refused: %s%s%s",
           channel ? channel : "(null)", h_strerror(code),
           detail ? ": " : "", detail ? detail : "");
    return code;
}

static int send_frame(sc_plugin_inst_t *p, const void *data, size_t len,
                      int more)
{
    for (;;) {
        if (zmq_send(p->push, data, len, more ? ZMQ_SNDMORE : 0) >= 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        /* at the high-water mark: wait for the core, but honour stop */
        if (atomic_load(&p->stopping))
            return -2;
    }
}

static int wait_ack(sc_plugin_inst_t *p, const char *what);

static int h_publish(sc_host_t *h, const char *channel, const char *kind,
                     const char *key, const char *json_data)
{
    if (!h || !h->inst)
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    if (!channel || !sc_channel_valid(channel))
        return refuse(p, SC_ERR_ARG, channel,
                      "not a channel name (lowercase [a-z0-9-] segments "
                      "joined by '.')");
    if (!kind || !valid_kind(kind))
        return refuse(p, SC_ERR_ARG, channel,
                      "kind must be 1-64 characters of [a-z0-9._-]");
    if (key && !valid_key(key))
        return refuse(p, SC_ERR_ARG, channel,
                      "key must be 1-256 bytes of UTF-8 without control "
                      "characters");
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    bool granted = false;
    for (size_t i = 0; tl > 0 && i < p->n_channels && !granted; i++)
        granted = sc_subtree_covers(p->channels[i], topic, (size_t)tl);
    if (!granted)
        return refuse(p, SC_ERR_NOT_GRANTED, channel, NULL);
    if (!json_data)
        return refuse(p, SC_ERR_ARG, channel, "data is NULL");
    size_t len = strlen(json_data);
    if ((int64_t)len > p->max_data_bytes) {
        char d[96];
        snprintf(d, sizeof d, "%zu bytes, limit %lld", len,
                 (long long)p->max_data_bytes);
        return refuse(p, SC_ERR_TOO_BIG, channel, d);
    }
    json_error_t jerr;
    json_t *v = json_loadb(json_data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v || !json_is_object(v)) {
        char d[240];
        if (v)
            snprintf(d, sizeof d, "top level is not an object");
        else
            snprintf(d, sizeof d, "line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        json_decref(v);
        return refuse(p, SC_ERR_BAD_JSON, channel, d);
    }
    json_decref(v);
    if (atomic_load(&p->stopping))
        return SC_ERR_STOPPING;

    char keybuf[MAX_KEY + 2];
    size_t keylen;
    if (key) {
        keybuf[0] = 'k';
        keylen = strlen(key);
        memcpy(keybuf + 1, key, keylen);
        keylen++;
    } else {
        keybuf[0] = 'n';
        keylen = 1;
    }
    int rc = 0;
    if ((rc = send_frame(p, p->name, strlen(p->name), 1)) == 0 &&
        (rc = send_frame(p, p->sector, strlen(p->sector), 1)) == 0 &&
        (rc = send_frame(p, channel, strlen(channel), 1)) == 0 &&
        (rc = send_frame(p, kind, strlen(kind), 1)) == 0 &&
        (rc = send_frame(p, keybuf, keylen, 1)) == 0 &&
        (rc = send_frame(p, json_data, len, 0)) == 0) {
        if (p->acked) {
            int rc2 = wait_ack(p, channel);
            if (rc2 != SC_OK)
                return rc2;
        }
        atomic_fetch_add(&p->published, 1);
        return SC_OK;
    }
    /* ZeroMQ sends a multipart message atomically: a partly queued one is
     * discarded when the socket closes, never delivered truncated. */
    if (rc == -2)
        return SC_ERR_STOPPING;
    sc_log(SC_L_ERROR, p->name, "publish to '%s': inproc send failed: %s",
           channel, zmq_strerror(errno));
    return SC_ERR_INTERNAL;
}

/* Acked mode: wait for the core's verdict on what we just sent; the
 * message is ours to lose until then. */
static int wait_ack(sc_plugin_inst_t *p, const char *what)
{
    char ack[16];
    for (;;) {
        int n = zmq_recv(p->push, ack, sizeof ack, 0);
        if (n >= 0) {
            if ((size_t)n == strlen(SC_PUB_ACK_OK) &&
                memcmp(ack, SC_PUB_ACK_OK, (size_t)n) == 0)
                return SC_OK;
            atomic_fetch_add(&p->refused, 1);
            sc_log(SC_L_ERROR, p->name, "'%s' refused by the core", what);
            return SC_ERR_INTERNAL;
        }
        if (errno != EAGAIN || atomic_load(&p->stopping))
            return SC_ERR_STOPPING;
    }
}

/* Settings: the engine's getters (host/settings.h). */
static int h_setting_string(sc_host_t *h, const char *name, const char **out)
{
    return h && h->inst ? sc_settings_string(h->inst->settings, name, out)
                        : SC_ERR_ARG;
}

static int h_setting_int(sc_host_t *h, const char *name, int64_t *out)
{
    return h && h->inst ? sc_settings_int(h->inst->settings, name, out)
                        : SC_ERR_ARG;
}

static int h_setting_bool(sc_host_t *h, const char *name, int *out)
{
    return h && h->inst ? sc_settings_bool(h->inst->settings, name, out)
                        : SC_ERR_ARG;
}

static int h_setting_float(sc_host_t *h, const char *name, double *out)
{
    return h && h->inst ? sc_settings_float(h->inst->settings, name, out)
                        : SC_ERR_ARG;
}

static int h_setting_count(sc_host_t *h, const char *path, size_t *out)
{
    return h && h->inst ? sc_settings_count(h->inst->settings, path, out)
                        : SC_ERR_ARG;
}

static void problem_to_log(void *arg, const char *file, int line,
                           const char *msg)
{
    sc_log(SC_L_ERROR, (const char *)arg, "%s:%d: %s", file, line, msg);
}

static void h_setting_problem(sc_host_t *h, const char *path, const char *fmt,
                              ...)
{
    if (!h || !h->inst)
        return;
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt ? fmt : "", ap);
    va_end(ap);
    sc_settings_problem(h->inst->settings, path, text, problem_to_log,
                        h->inst->name);
}

static int h_timer_add(sc_host_t *h, uint32_t interval_ms, int repeat,
                       sc_timer_fn fn, void *arg)
{
    if (!h || !fn || (repeat && interval_ms == 0))
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    if (p->n_timers >= MAX_TIMERS)
        return SC_ERR_LIMIT;
    timer_t_ *t = &p->timers[p->n_timers++];
    if (p->next_timer_id <= 0)
        p->next_timer_id = 1;
    t->id = p->next_timer_id++;
    t->interval_ms = interval_ms;
    t->repeat = repeat;
    t->due_ms = sc_mono_ms() + interval_ms;
    t->fn = fn;
    t->arg = arg;
    return t->id;
}

static int h_timer_cancel(sc_host_t *h, int id)
{
    if (!h)
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    for (size_t i = 0; i < p->n_timers; i++) {
        if (p->timers[i].id == id) {
            p->timers[i] = p->timers[--p->n_timers];
            return SC_OK;
        }
    }
    return SC_ERR_NOT_FOUND;
}

static int h_fd_watch(sc_host_t *h, int fd, unsigned events, sc_fd_fn fn,
                      void *arg)
{
    if (!h || !fn || fd < 0 || !(events & (SC_FD_READ | SC_FD_WRITE)))
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    for (size_t i = 0; i < p->n_watches; i++) {
        if (p->watches[i].fd == fd) {
            p->watches[i].events = events;
            p->watches[i].fn = fn;
            p->watches[i].arg = arg;
            return SC_OK;
        }
    }
    if (p->n_watches >= MAX_WATCHES)
        return SC_ERR_LIMIT;
    p->watches[p->n_watches++] = (watch_t){fd, events, fn, arg};
    return SC_OK;
}

static int h_fd_unwatch(sc_host_t *h, int fd)
{
    if (!h)
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    for (size_t i = 0; i < p->n_watches; i++) {
        if (p->watches[i].fd == fd) {
            p->watches[i] = p->watches[--p->n_watches];
            return SC_OK;
        }
    }
    return SC_ERR_NOT_FOUND;
}

static const char *h_instance_name(sc_host_t *h)
{
    return h && h->inst ? h->inst->name : NULL;
}

static size_t h_channel_count(sc_host_t *h)
{
    return h && h->inst ? h->inst->n_channels : 0;
}

static const char *h_channel_at(sc_host_t *h, size_t i)
{
    if (!h || !h->inst || i >= h->inst->n_channels)
        return NULL;
    return h->inst->channels[i];
}

static void h_request_stop(sc_host_t *h, const char *reason)
{
    if (!h || !h->inst)
        return;
    sc_log(SC_L_WARN, h->inst->name, "plugin asked to stop: %s",
           reason ? reason : "(no reason given)");
    sc_plugin_request_stop(h->inst);
}

/* ------------------------------------------------------------------ */
/* durable state                                                       */
/*
 * Writes go to the core on the same socket as publishes, so the core
 * applies them in the same journal transaction as the messages published
 * before them: after any crash, a plugin's state never claims a message
 * was published that the journal does not hold. Reads come from the
 * journal database (read-only connection on the plugin's thread), overlaid
 * with this instance's own writes so that a plugin reads what it wrote.
 */

#define STATE_MAX_KEY 256
#define STATE_MAX_VALUE (1024 * 1024)

typedef struct overlay {
    char *key;
    char *value; /* NULL = deleted */
    struct overlay *next;
} overlay_t;

static sqlite3 *state_db(sc_plugin_inst_t *p)
{
    if (p->state_db)
        return p->state_db;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(p->state_db_path, &db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, p->name, "plugin state %s: %s", p->state_db_path,
               db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    p->state_db = db;
    return db;
}

static bool state_key_ok(const char *key)
{
    if (!key)
        return false;
    size_t n = strlen(key);
    return n > 0 && n <= STATE_MAX_KEY;
}

static overlay_t *overlay_find(sc_plugin_inst_t *p, const char *key)
{
    for (overlay_t *o = p->overlay; o; o = o->next)
        if (strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static int h_state_get(sc_host_t *h, const char *key, char **value)
{
    if (!h || !h->inst || !state_key_ok(key) || !value)
        return SC_ERR_ARG;
    *value = NULL;
    overlay_t *o = overlay_find(h->inst, key);
    if (o) {
        if (!o->value)
            return SC_ERR_NOT_FOUND;
        *value = strdup(o->value);
        return *value ? SC_OK : SC_ERR_NO_MEMORY;
    }
    sqlite3 *db = state_db(h->inst);
    if (!db)
        return SC_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM plugin_state WHERE plugin=? AND"
                           " key=?",
                           -1, &st, NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, h->inst->name, "plugin state read: %s",
               sqlite3_errmsg(db));
        return SC_ERR_INTERNAL;
    }
    sqlite3_bind_text(st, 1, h->inst->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), out = SC_ERR_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = strdup(v ? v : "");
        out = *value ? SC_OK : SC_ERR_NO_MEMORY;
    } else if (rc != SQLITE_DONE) {
        sc_log(SC_L_ERROR, h->inst->name, "plugin state read: %s",
               sqlite3_errmsg(db));
        out = SC_ERR_INTERNAL;
    }
    sqlite3_finalize(st);
    return out;
}

static int h_state_put(sc_host_t *h, const char *key, const char *value)
{
    if (!h || !h->inst || !state_key_ok(key) ||
        (value && strlen(value) > STATE_MAX_VALUE))
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    if (atomic_load(&p->stopping))
        return SC_ERR_STOPPING;
    overlay_t *o = overlay_find(p, key);
    char *copy = value ? strdup(value) : NULL;
    if ((value && !copy) || (!o && !(o = calloc(1, sizeof *o)))) {
        free(copy);
        return SC_ERR_NO_MEMORY;
    }
    if (!o->key) {
        if (!(o->key = strdup(key))) {
            free(copy);
            free(o);
            return SC_ERR_NO_MEMORY;
        }
        o->next = p->overlay;
        p->overlay = o;
    }
    free(o->value);
    o->value = copy;
    /* [name]["state"][key]['v' value | "d"] */
    size_t vl = value ? strlen(value) : 0;
    char *vbuf = malloc(vl + 1);
    if (!vbuf)
        return SC_ERR_NO_MEMORY;
    vbuf[0] = value ? 'v' : 'd';
    if (value)
        memcpy(vbuf + 1, value, vl);
    int rc;
    if ((rc = send_frame(p, p->name, strlen(p->name), 1)) == 0 &&
        (rc = send_frame(p, "state", 5, 1)) == 0 &&
        (rc = send_frame(p, key, strlen(key), 1)) == 0 &&
        (rc = send_frame(p, vbuf, vl + 1, 0)) == 0) {
        free(vbuf);
        return p->acked ? wait_ack(p, "state") : SC_OK;
    }
    free(vbuf);
    if (rc == -2)
        return SC_ERR_STOPPING;
    sc_log(SC_L_ERROR, p->name, "state write: inproc send failed: %s",
           zmq_strerror(errno));
    return SC_ERR_INTERNAL;
}

static void h_state_free(sc_host_t *h, char *value)
{
    (void)h;
    free(value);
}

typedef struct kv {
    char *key;
    char *value;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv_t *)a)->key, ((const kv_t *)b)->key);
}

static int h_state_foreach(sc_host_t *h, const char *prefix,
                           int (*fn)(void *, const char *, const char *),
                           void *arg)
{
    if (!h || !h->inst || !fn)
        return SC_ERR_ARG;
    sc_plugin_inst_t *p = h->inst;
    const char *pre = prefix ? prefix : "";
    size_t pl = strlen(pre);
    sqlite3 *db = state_db(p);
    if (!db)
        return SC_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT key, value FROM plugin_state WHERE"
                           " plugin=?1 AND substr(key, 1, length(?2)) = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, p->name, "plugin state read: %s",
               sqlite3_errmsg(db));
        return SC_ERR_INTERNAL;
    }
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pre, -1, SQLITE_STATIC);
    kv_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc, out = SC_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *val = (const char *)sqlite3_column_text(st, 1);
        if (!k || overlay_find(p, k))
            continue; /* our own newer write wins */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            kv_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                out = SC_ERR_NO_MEMORY;
                break;
            }
            v = nv;
        }
        v[n].key = strdup(k);
        v[n].value = strdup(val ? val : "");
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        out = SC_ERR_INTERNAL;
    sqlite3_finalize(st);
    for (overlay_t *o = p->overlay; out == SC_OK && o; o = o->next) {
        if (!o->value || strncmp(o->key, pre, pl) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            kv_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                out = SC_ERR_NO_MEMORY;
                break;
            }
            v = nv;
        }
        v[n].key = strdup(o->key);
        v[n].value = strdup(o->value);
        n++;
    }
    for (size_t i = 0; i < n; i++)
        if (!v[i].key || !v[i].value)
            out = SC_ERR_NO_MEMORY;
    if (out == SC_OK) {
        if (n > 1)
            qsort(v, n, sizeof *v, kv_cmp);
        for (size_t i = 0; i < n; i++)
            if (fn(arg, v[i].key, v[i].value))
                break;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
    return out;
}

static const sc_host_api_t host_api = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    .size = sizeof(sc_host_api_t),
    .publish = h_publish,
    .log = h_log,
    .setting_string = h_setting_string,
    .setting_int = h_setting_int,
    .setting_bool = h_setting_bool,
    .setting_float = h_setting_float,
    .timer_add = h_timer_add,
    .timer_cancel = h_timer_cancel,
    .fd_watch = h_fd_watch,
    .fd_unwatch = h_fd_unwatch,
    .instance_name = h_instance_name,
    .channel_count = h_channel_count,
    .channel_at = h_channel_at,
    .strerror = h_strerror,
    .request_stop = h_request_stop,
    .state_get = h_state_get,
    .state_put = h_state_put,
    .state_free = h_state_free,
    .state_foreach = h_state_foreach,
    .setting_count = h_setting_count,
    .setting_problem = h_setting_problem,
};

/* ------------------------------------------------------------------ */
/* the plugin thread                                                   */

static void run_timers(sc_plugin_inst_t *p)
{
    int64_t now = sc_mono_ms();
    /* fire each timer due now once; callbacks may add or cancel timers,
     * so look each one up again by id */
    int due[MAX_TIMERS];
    size_t n = 0;
    for (size_t i = 0; i < p->n_timers; i++)
        if (p->timers[i].due_ms <= now)
            due[n++] = p->timers[i].id;
    for (size_t k = 0; k < n && !atomic_load(&p->stopping); k++) {
        for (size_t i = 0; i < p->n_timers; i++) {
            if (p->timers[i].id != due[k])
                continue;
            timer_t_ t = p->timers[i];
            if (t.repeat)
                p->timers[i].due_ms = now + (t.interval_ms ? t.interval_ms : 1);
            else
                p->timers[i] = p->timers[--p->n_timers];
            t.fn(&p->host, t.id, t.arg);
            break;
        }
    }
}

static int next_timeout(sc_plugin_inst_t *p)
{
    if (p->n_timers == 0)
        return -1;
    int64_t now = sc_mono_ms(), best = INT64_MAX;
    for (size_t i = 0; i < p->n_timers; i++)
        if (p->timers[i].due_ms < best)
            best = p->timers[i].due_ms;
    int64_t d = best - now;
    return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

static void plugin_loop(sc_plugin_inst_t *p)
{
    struct pollfd fds[MAX_WATCHES + 1];
    watch_t snap[MAX_WATCHES];
    while (!atomic_load(&p->stopping)) {
        size_t n = p->n_watches;
        memcpy(snap, p->watches, n * sizeof *snap);
        fds[0] = (struct pollfd){.fd = p->stop_pipe[0], .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            short ev = 0;
            if (snap[i].events & SC_FD_READ)
                ev |= POLLIN;
            if (snap[i].events & SC_FD_WRITE)
                ev |= POLLOUT;
            fds[i + 1] = (struct pollfd){.fd = snap[i].fd, .events = ev};
        }
        int rc = poll(fds, n + 1, next_timeout(p));
        if (rc < 0 && errno != EINTR) {
            sc_log(SC_L_ERROR, p->name, "poll: %s", strerror(errno));
            break;
        }
        if (atomic_load(&p->stopping))
            break;
        for (size_t i = 0; rc > 0 && i < n; i++) {
            short re = fds[i + 1].revents;
            if (!re)
                continue;
            /* skip watches removed by an earlier callback in this round */
            bool still = false;
            for (size_t k = 0; k < p->n_watches; k++)
                if (p->watches[k].fd == snap[i].fd &&
                    p->watches[k].fn == snap[i].fn)
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
                sc_log(SC_L_WARN, p->name,
                       "watched fd %d is not open; watch removed", snap[i].fd);
                h_fd_unwatch(&p->host, snap[i].fd);
            }
            snap[i].fn(&p->host, snap[i].fd, ev, snap[i].arg);
            if (atomic_load(&p->stopping))
                break;
        }
        run_timers(p);
    }
}

static void *plugin_thread(void *arg)
{
    sc_plugin_inst_t *p = arg;
    const sc_plugin_t *d = p->lib.desc;
    p->push = zmq_socket(p->zctx, p->acked ? ZMQ_DEALER : ZMQ_PUSH);
    int linger = 0, hwm = 10000, timeo = 100;
    if (!p->push ||
        zmq_setsockopt(p->push, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(p->push, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(p->push, ZMQ_SNDTIMEO, &timeo, sizeof timeo) != 0 ||
        zmq_setsockopt(p->push, ZMQ_RCVTIMEO, &timeo, sizeof timeo) != 0 ||
        zmq_connect(p->push, p->core_endpoint) != 0) {
        sc_log(SC_L_ERROR, p->name, "cannot connect to the core (%s): %s",
               p->core_endpoint, zmq_strerror(errno));
        goto out;
    }
    sc_log(SC_L_INFO, p->name, "starting plugin %s %s (%s)", d->name,
           d->version ? d->version : "?", p->lib.path);
    int rc = d->init(&p->host, &host_api, &p->state);
    if (rc != SC_OK) {
        sc_log(SC_L_ERROR, p->name, "plugin init failed: %s (%d)",
               h_strerror(rc), rc);
        goto out;
    }
    plugin_loop(p);
    if (d->fini)
        d->fini(&p->host, p->state);
    p->state = NULL;
    sc_log(SC_L_INFO, p->name, "plugin stopped");
out:
    if (p->push)
        zmq_close(p->push);
    p->push = NULL;
    if (p->state_db)
        sqlite3_close(p->state_db);
    p->state_db = NULL;
    pthread_mutex_lock(&p->done_mu);
    atomic_store(&p->exited, 1);
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->done_mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                           */

static void inst_free(sc_plugin_inst_t *p)
{
    free(p->name);
    free(p->sector);
    for (size_t i = 0; i < p->n_channels; i++)
        free(p->channels[i]);
    free(p->channels);
    sc_settings_destroy(&p->settings);
    free(p->core_endpoint);
    free(p->state_db_path);
    while (p->overlay) {
        overlay_t *o = p->overlay->next;
        free(p->overlay->key);
        free(p->overlay->value);
        free(p->overlay);
        p->overlay = o;
    }
    if (p->stop_pipe[0] >= 0)
        close(p->stop_pipe[0]);
    if (p->stop_pipe[1] >= 0)
        close(p->stop_pipe[1]);
    pthread_mutex_destroy(&p->done_mu);
    pthread_cond_destroy(&p->done_cv);
    sc_plugin_lib_close(&p->lib);
    free(p);
}

sc_plugin_inst_t *sc_plugin_start(sc_plugin_lib_t *lib,
                                  const sc_cfg_plugin_t *cfg,
                                  int64_t max_data_bytes, void *zctx,
                                  const char *core_endpoint,
                                  const char *state_db, bool acked,
                                  char *err, size_t errlen)
{
    sc_plugin_inst_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        sc_plugin_lib_close(lib);
        return NULL;
    }
    p->lib = *lib;
    memset(lib, 0, sizeof *lib);
    p->host.inst = p;
    p->stop_pipe[0] = p->stop_pipe[1] = -1;
    pthread_mutex_init(&p->done_mu, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->max_data_bytes = max_data_bytes;
    p->acked = acked;
    p->zctx = zctx;
    p->name = strdup(cfg->name);
    p->sector = strdup(cfg->sector ? cfg->sector : "");
    p->core_endpoint = strdup(core_endpoint);
    p->state_db_path = strdup(state_db);
    p->channels = calloc(cfg->n_channels ? cfg->n_channels : 1,
                         sizeof *p->channels);
    if (cfg->settings)
        p->settings = sc_settings_copy(cfg->settings);
    else {
        sc_settings_where_t w = {.plugin = cfg->name, .line = cfg->line};
        p->settings = sc_settings_from_root(&w, NULL);
    }
    bool oom = !p->name || !p->sector || !p->core_endpoint || !p->channels ||
               !p->settings || !p->state_db_path;
    for (size_t i = 0; !oom && i < cfg->n_channels; i++) {
        if (!(p->channels[i] = strdup(cfg->channels[i])))
            oom = true;
        else
            p->n_channels++;
    }
    if (oom) {
        snprintf(err, errlen, "out of memory");
        inst_free(p);
        return NULL;
    }
    if (pipe(p->stop_pipe) != 0) {
        snprintf(err, errlen, "plugin %s: pipe: %s", cfg->name,
                 strerror(errno));
        inst_free(p);
        return NULL;
    }
    fcntl(p->stop_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(p->stop_pipe[1], F_SETFD, FD_CLOEXEC);
    int rc = pthread_create(&p->thread, NULL, plugin_thread, p);
    if (rc != 0) {
        snprintf(err, errlen, "plugin %s: cannot start thread: %s",
                 cfg->name, strerror(rc));
        inst_free(p);
        return NULL;
    }
    p->thread_started = 1;
    return p;
}

void sc_plugin_request_stop(sc_plugin_inst_t *p)
{
    if (!p || atomic_exchange(&p->stopping, 1))
        return;
    char c = 'x';
    ssize_t w = write(p->stop_pipe[1], &c, 1);
    (void)w;
}

bool sc_plugin_exited(const sc_plugin_inst_t *p)
{
    return p && atomic_load(&p->exited);
}

bool sc_plugin_destroy(sc_plugin_inst_t **p_p, int timeout_ms)
{
    if (!p_p || !*p_p)
        return true;
    sc_plugin_inst_t *p = *p_p;
    *p_p = NULL;
    sc_plugin_request_stop(p);
    if (p->thread_started) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&p->done_mu);
        while (!atomic_load(&p->exited)) {
            if (pthread_cond_timedwait(&p->done_cv, &p->done_mu, &dl) ==
                ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&p->done_mu);
        if (!atomic_load(&p->exited)) {
            sc_log(SC_L_ERROR, p->name,
                   "plugin did not stop within %d ms; abandoning its thread "
                   "(the library stays loaded)",
                   timeout_ms);
            pthread_detach(p->thread);
            return false;
        }
        pthread_join(p->thread, NULL);
    }
    inst_free(p);
    return true;
}

const char *sc_plugin_name(const sc_plugin_inst_t *p) { return p->name; }
uint64_t sc_plugin_published(const sc_plugin_inst_t *p)
{
    return atomic_load(&p->published);
}
uint64_t sc_plugin_refused(const sc_plugin_inst_t *p)
{
    return atomic_load(&p->refused);
}
