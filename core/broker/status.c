/*
 * status.c - see status.h. Owns the snapshot tables and their JSON; never
 * does I/O except stat(2) of the journal files when asked for the status.
 */
#include "status.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/clock.h"
#include "common/grow.h"
#include "common/hash.h"
#include "common/hindex.h"
#include "log.h"
#include "sink.h"

typedef struct {
    char *name;
    uint64_t head;
    uint64_t msgs, bytes;      /* this run */
    time_t last_ts;            /* wall time of the last publish, 0 = none */
    int64_t rate_t0_ms;        /* rate window start (monotonic) */
    uint64_t rate_m0;          /* msgs at the window start */
    double rate;               /* msgs/s over the last full window */
} chan_t;

typedef struct {
    char *name;
    char state[16];
    int pid;
    unsigned restarts;
    char *last_error;
    uint64_t published, refused;
    int64_t crashes[SC_STATUS_CRASHES]; /* monotonic ms of recent crashes */
    bool configured;
    bool ran; /* has been running once: the next start is a restart */
} plug_t;

typedef struct {
    int fd;
    char agency[64];
    char **subs;
    size_t n_subs;
} conn_t;

typedef struct {
    char *id;
    char **grants;
    size_t n_grants;
    uint64_t refused;
} agency_t;

struct sc_status {
    pthread_mutex_t mu;
    time_t started;
    char *config_path, *gateway_id, *data_dir, *epoch;
    char **kids;
    size_t n_kids;
    char *active_kid;
    char *journal_error; /* last write failure, NULL when writes succeed */
    time_t journal_error_since;
    chan_t *chans;
    size_t n_chans, cap_chans;
    sc_hindex_t chan_ix; /* chans by name */
    plug_t *plugs;
    size_t n_plugs, cap_plugs;
    sc_hindex_t plug_ix; /* plugs by name */
    conn_t *conns;
    size_t n_conns;
    agency_t *agencies;
    size_t n_agencies;
    uint64_t untracked;
};

sc_status_t *sc_status_new(void)
{
    sc_status_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->started = time(NULL);
    return s;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void clear_agencies(sc_status_t *s)
{
    for (size_t i = 0; i < s->n_agencies; i++) {
        free(s->agencies[i].id);
        free_strv(s->agencies[i].grants, s->agencies[i].n_grants);
    }
    free(s->agencies);
    s->agencies = NULL;
    s->n_agencies = 0;
}

void sc_status_destroy(sc_status_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    sc_status_t *s = *s_p;
    free(s->config_path);
    free(s->gateway_id);
    free(s->data_dir);
    free(s->epoch);
    free_strv(s->kids, s->n_kids);
    free(s->active_kid);
    free(s->journal_error);
    for (size_t i = 0; i < s->n_chans; i++)
        free(s->chans[i].name);
    free(s->chans);
    sc_hindex_free(&s->chan_ix);
    for (size_t i = 0; i < s->n_plugs; i++) {
        free(s->plugs[i].name);
        free(s->plugs[i].last_error);
    }
    free(s->plugs);
    sc_hindex_free(&s->plug_ix);
    for (size_t i = 0; i < s->n_conns; i++)
        free_strv(s->conns[i].subs, s->conns[i].n_subs);
    free(s->conns);
    clear_agencies(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *s_p = NULL;
}

static char *dup_or_null(const char *v) { return v ? strdup(v) : NULL; }

static char **dup_strv(char *const *v, size_t n)
{
    char **o = calloc(n + 1, sizeof *o);
    for (size_t i = 0; o && i < n; i++)
        o[i] = strdup(v[i]);
    return o;
}

void sc_status_set_config(sc_status_t *s, const sc_config_t *cfg,
                          const char *epoch)
{
    if (!s || !cfg)
        return;
    pthread_mutex_lock(&s->mu);
    free(s->config_path);
    s->config_path = dup_or_null(cfg->path);
    free(s->gateway_id);
    s->gateway_id = dup_or_null(cfg->gateway_id);
    free(s->data_dir);
    s->data_dir = dup_or_null(cfg->data_dir);
    if (epoch) {
        free(s->epoch);
        s->epoch = strdup(epoch);
    }
    free_strv(s->kids, s->n_kids);
    s->kids = calloc(cfg->n_keys + 1, sizeof *s->kids);
    s->n_kids = 0;
    for (size_t i = 0; s->kids && i < cfg->n_keys; i++)
        if ((s->kids[s->n_kids] = strdup(cfg->keys[i].id)))
            s->n_kids++;
    free(s->active_kid);
    s->active_kid = dup_or_null(cfg->active_key);
    clear_agencies(s);
    s->agencies = calloc(cfg->n_agencies + 1, sizeof *s->agencies);
    for (size_t i = 0; s->agencies && i < cfg->n_agencies; i++) {
        agency_t *a = &s->agencies[s->n_agencies];
        a->id = strdup(cfg->agencies[i].id);
        a->grants = dup_strv(cfg->agencies[i].grants,
                             cfg->agencies[i].n_grants);
        a->n_grants = a->grants ? cfg->agencies[i].n_grants : 0;
        if (a->id)
            s->n_agencies++;
    }
    for (size_t i = 0; i < s->n_plugs; i++) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_plugins && !found; k++)
            found = strcmp(cfg->plugins[k].name, s->plugs[i].name) == 0;
        s->plugs[i].configured = found;
    }
    pthread_mutex_unlock(&s->mu);
}

void sc_status_journal_result(sc_status_t *s, const char *error)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (!error) {
        free(s->journal_error);
        s->journal_error = NULL;
    } else {
        if (!s->journal_error)
            s->journal_error_since = time(NULL);
        free(s->journal_error);
        s->journal_error = strdup(error);
    }
    pthread_mutex_unlock(&s->mu);
}

static bool chan_is(const void *name, size_t pos, void *arg)
{
    return strcmp(((sc_status_t *)arg)->chans[pos].name, name) == 0;
}

static bool plug_is(const void *name, size_t pos, void *arg)
{
    return strcmp(((sc_status_t *)arg)->plugs[pos].name, name) == 0;
}

/* mu held: the channel's entry, created if new and within the bound */
static chan_t *chan_locked(sc_status_t *s, const char *name)
{
    uint64_t h = sc_hash_str(name);
    long at = sc_hindex_find(&s->chan_ix, h, chan_is, name, s);
    if (at >= 0)
        return &s->chans[at];
    if (s->n_chans >= SC_STATUS_MAX_CHANNELS) {
        s->untracked++;
        return NULL;
    }
    if (sc_grow((void **)&s->chans, &s->cap_chans, s->n_chans,
                sizeof *s->chans) != 0)
        return NULL;
    chan_t *c = &s->chans[s->n_chans];
    memset(c, 0, sizeof *c);
    if (!(c->name = strdup(name)))
        return NULL;
    if (sc_hindex_add(&s->chan_ix, h, s->n_chans) != 0) {
        free(c->name);
        return NULL;
    }
    c->rate_t0_ms = sc_mono_ms();
    s->n_chans++;
    return c;
}

/* mu held: the plugin's entry, created if new and within the bound */
static plug_t *plug_locked(sc_status_t *s, const char *name)
{
    uint64_t h = sc_hash_str(name);
    long at = sc_hindex_find(&s->plug_ix, h, plug_is, name, s);
    if (at >= 0)
        return &s->plugs[at];
    if (s->n_plugs >= SC_STATUS_MAX_PLUGINS) {
        s->untracked++;
        return NULL;
    }
    if (sc_grow((void **)&s->plugs, &s->cap_plugs, s->n_plugs,
                sizeof *s->plugs) != 0)
        return NULL;
    plug_t *p = &s->plugs[s->n_plugs];
    memset(p, 0, sizeof *p);
    if (!(p->name = strdup(name)))
        return NULL;
    if (sc_hindex_add(&s->plug_ix, h, s->n_plugs) != 0) {
        free(p->name);
        return NULL;
    }
    snprintf(p->state, sizeof p->state, "starting");
    p->configured = true;
    s->n_plugs++;
    return p;
}

void sc_status_channel_head(sc_status_t *s, const char *channel,
                            uint64_t head)
{
    if (!s || !channel)
        return;
    pthread_mutex_lock(&s->mu);
    chan_t *c = chan_locked(s, channel);
    if (c && head > c->head)
        c->head = head;
    pthread_mutex_unlock(&s->mu);
}

void sc_status_published(sc_status_t *s, const char *channel,
                         const char *plugin, uint64_t head, uint64_t n,
                         size_t bytes)
{
    if (!s || !channel)
        return;
    time_t now = time(NULL);
    pthread_mutex_lock(&s->mu);
    chan_t *c = chan_locked(s, channel);
    if (c) {
        if (head > c->head)
            c->head = head;
        c->msgs += n;
        c->bytes += bytes;
        c->last_ts = now;
    }
    plug_t *p = plugin ? plug_locked(s, plugin) : NULL;
    if (p)
        p->published += n;
    pthread_mutex_unlock(&s->mu);
}

void sc_status_refused(sc_status_t *s, const char *plugin)
{
    if (!s || !plugin)
        return;
    pthread_mutex_lock(&s->mu);
    plug_t *p = plug_locked(s, plugin);
    if (p)
        p->refused++;
    pthread_mutex_unlock(&s->mu);
}

/* mu held */
static conn_t *conn_locked(sc_status_t *s, int fd, bool create)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].fd == fd)
            return &s->conns[i];
    if (!create)
        return NULL;
    if (s->n_conns >= SC_STATUS_MAX_CONNS) {
        s->untracked++;
        return NULL;
    }
    conn_t *v = realloc(s->conns, (s->n_conns + 1) * sizeof *v);
    if (!v)
        return NULL;
    s->conns = v;
    conn_t *c = &v[s->n_conns++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    return c;
}

void sc_status_subscribed(sc_status_t *s, int fd, const char *agency,
                          const char *subtree)
{
    if (!s || !agency || !subtree)
        return;
    pthread_mutex_lock(&s->mu);
    conn_t *c = conn_locked(s, fd, true);
    if (c) {
        snprintf(c->agency, sizeof c->agency, "%s", agency);
        char **v = realloc(c->subs, (c->n_subs + 1) * sizeof *v);
        if (v) {
            c->subs = v;
            if ((v[c->n_subs] = strdup(subtree)))
                c->n_subs++;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void sc_status_unsubscribed(sc_status_t *s, int fd, const char *subtree)
{
    if (!s || !subtree)
        return;
    pthread_mutex_lock(&s->mu);
    conn_t *c = conn_locked(s, fd, false);
    for (size_t i = 0; c && i < c->n_subs; i++)
        if (strcmp(c->subs[i], subtree) == 0) {
            free(c->subs[i]);
            c->subs[i] = c->subs[--c->n_subs];
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

void sc_status_sub_refused(sc_status_t *s, const char *agency)
{
    if (!s || !agency)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_agencies; i++)
        if (strcmp(s->agencies[i].id, agency) == 0)
            s->agencies[i].refused++;
    pthread_mutex_unlock(&s->mu);
}

void sc_status_conn_closed(sc_status_t *s, int fd)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    conn_t *c = conn_locked(s, fd, false);
    if (c) {
        free_strv(c->subs, c->n_subs);
        *c = s->conns[--s->n_conns];
    }
    pthread_mutex_unlock(&s->mu);
}

bool sc_status_plugin(sc_status_t *s, const char *name, const char *state,
                      int pid, const char *error)
{
    bool restart = false;
    if (!s || !name || !state)
        return false;
    pthread_mutex_lock(&s->mu);
    plug_t *p = plug_locked(s, name);
    if (p) {
        if (strcmp(state, "running") == 0) {
            if (p->ran) {
                p->restarts++;
                restart = true;
            }
            p->ran = true;
        }
        snprintf(p->state, sizeof p->state, "%s", state);
        p->pid = pid;
        p->configured = true;
        if (error) {
            free(p->last_error);
            p->last_error = strdup(error);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return restart;
}

void sc_status_plugin_crashed(sc_status_t *s, const char *name,
                              const char *error)
{
    if (!s || !name)
        return;
    pthread_mutex_lock(&s->mu);
    plug_t *p = plug_locked(s, name);
    if (p) {
        snprintf(p->state, sizeof p->state, "crashed");
        p->pid = 0;
        free(p->last_error);
        p->last_error = error ? strdup(error) : NULL;
        memmove(p->crashes + 1, p->crashes,
                (SC_STATUS_CRASHES - 1) * sizeof p->crashes[0]);
        p->crashes[0] = sc_mono_ms();
    }
    pthread_mutex_unlock(&s->mu);
}

void sc_status_plugins_prune(sc_status_t *s, const sc_config_t *cfg)
{
    if (!s || !cfg)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_plugs;) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_plugins && !found; k++)
            found = strcmp(cfg->plugins[k].name, s->plugs[i].name) == 0;
        if (found) {
            i++;
            continue;
        }
        free(s->plugs[i].name);
        free(s->plugs[i].last_error);
        s->plugs[i] = s->plugs[--s->n_plugs];
    }
    /* positions moved: index them again (the index keeps its slots, so
     * this cannot run out of memory) */
    sc_hindex_clear(&s->plug_ix);
    for (size_t i = 0; i < s->n_plugs; i++)
        (void)sc_hindex_add(&s->plug_ix, sc_hash_str(s->plugs[i].name), i);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static void iso_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t file_size(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* The journal's size on disk: stat(2) outside the lock (the publishing
 * thread takes it too). */
static int64_t journal_bytes(sc_status_t *s)
{
    pthread_mutex_lock(&s->mu);
    char *dir = s->data_dir ? strdup(s->data_dir) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!dir)
        return 0;
    int64_t n = file_size(dir, "journal.db") +
                file_size(dir, "journal.db-wal");
    free(dir);
    return n;
}

/* mu held */
static json_t *status_locked(sc_status_t *s, int64_t jbytes)
{
    char ts[32];
    iso_time(s->started, ts);
    json_t *kids = json_array();
    for (size_t i = 0; i < s->n_kids; i++)
        json_array_append_new(kids, json_string(s->kids[i]));
    return json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:s?, s:I, s:o, s:s?, "
                     "s:b, s:I}",
                     "version", SC_BROKER_VERSION, "gateway", s->gateway_id,
                     "config", s->config_path, "uptime_s",
                     (json_int_t)(time(NULL) - s->started), "started", ts,
                     "epoch", s->epoch, "journal_bytes", (json_int_t)jbytes,
                     "signing_kids", kids, "active_kid", s->active_kid,
                     "journal_writable", s->journal_error == NULL,
                     "untracked", (json_int_t)s->untracked);
}

/* mu held: bring the channels' rates up to date and copy the channels
 * (their names stay valid: a channel entry lives as long as the status),
 * so that their JSON is built after the lock is released. NULL with *n 0
 * if there are none or out of memory. */
static chan_t *channels_copy_locked(sc_status_t *s, size_t *n)
{
    int64_t now = sc_mono_ms();
    for (size_t i = 0; i < s->n_chans; i++) {
        chan_t *c = &s->chans[i];
        /* rate over windows of at least 5 s */
        int64_t dt = now - c->rate_t0_ms;
        if (dt >= 5000) {
            c->rate = (double)(c->msgs - c->rate_m0) * 1000.0 / (double)dt;
            c->rate_t0_ms = now;
            c->rate_m0 = c->msgs;
        }
    }
    chan_t *v = s->n_chans ? malloc(s->n_chans * sizeof *v) : NULL;
    *n = v ? s->n_chans : 0;
    if (v)
        memcpy(v, s->chans, s->n_chans * sizeof *v);
    return v;
}

static json_t *channels_json(chan_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const chan_t *c = &v[i];
        char ts[32] = "";
        if (c->last_ts)
            iso_time(c->last_ts, ts);
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:I, s:I, s:s?, s:f}", "channel",
                         c->name, "head", (json_int_t)c->head, "messages",
                         (json_int_t)c->msgs, "bytes", (json_int_t)c->bytes,
                         "last_publish", c->last_ts ? ts : NULL, "rate",
                         c->rate));
    }
    free(v);
    return a;
}

static bool agency_is(const void *id, size_t pos, void *arg)
{
    return strcmp(((sc_status_t *)arg)->agencies[pos].id, id) == 0;
}

/* mu held: one pass over the connections (an index of the agencies by
 * id, built per call), not one per agency */
static json_t *agencies_locked(sc_status_t *s)
{
    json_t *a = json_array();
    size_t *conns = calloc(s->n_agencies + 1, sizeof *conns);
    json_t **subs = calloc(s->n_agencies + 1, sizeof *subs);
    sc_hindex_t ix = SC_HINDEX_INIT;
    bool indexed = conns && subs;
    for (size_t i = 0; indexed && i < s->n_agencies; i++)
        indexed = sc_hindex_add(&ix, sc_hash_str(s->agencies[i].id), i) == 0;
    if (!indexed) {
        free(conns);
        free(subs);
        sc_hindex_free(&ix);
        return a;
    }
    for (size_t i = 0; i < s->n_agencies; i++)
        subs[i] = json_array();
    for (size_t c = 0; c < s->n_conns; c++) {
        const conn_t *cn = &s->conns[c];
        long at = sc_hindex_find(&ix, sc_hash_str(cn->agency), agency_is,
                                 cn->agency, s);
        if (at < 0)
            continue;
        conns[at]++;
        for (size_t k = 0; k < cn->n_subs; k++)
            json_array_append_new(subs[at], json_string(cn->subs[k]));
    }
    for (size_t i = 0; i < s->n_agencies; i++) {
        agency_t *ag = &s->agencies[i];
        json_t *grants = json_array();
        for (size_t g = 0; g < ag->n_grants; g++)
            json_array_append_new(grants, json_string(ag->grants[g]));
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:o, s:o, s:I}", "agency", ag->id,
                         "connections", (json_int_t)conns[i], "grants",
                         grants, "subscriptions", subs[i], "refused",
                         (json_int_t)ag->refused));
    }
    free(conns);
    free(subs);
    sc_hindex_free(&ix);
    return a;
}

/* mu held */
static json_t *plugins_locked(sc_status_t *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n_plugs; i++) {
        plug_t *p = &s->plugs[i];
        if (!p->configured)
            continue;
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:i, s:I, s:s?, s:I, s:I}", "plugin",
                         p->name, "state", p->state, "pid", p->pid,
                         "restarts", (json_int_t)p->restarts, "last_error",
                         p->last_error, "published", (json_int_t)p->published,
                         "refused", (json_int_t)p->refused));
    }
    return a;
}

/* mu held */
static json_t *health_locked(sc_status_t *s, bool *ok)
{
    json_t *problems = json_array();
    int64_t now = sc_mono_ms();
    for (size_t i = 0; i < s->n_plugs; i++) {
        plug_t *p = &s->plugs[i];
        if (!p->configured)
            continue;
        int recent = 0;
        for (int k = 0; k < SC_STATUS_CRASHES; k++)
            if (p->crashes[k] &&
                now - p->crashes[k] <= SC_STATUS_CRASH_WINDOW_S * 1000)
                recent++;
        char line[512];
        if (recent >= SC_STATUS_CRASHES) {
            snprintf(line, sizeof line,
                     "plugin %s keeps crashing (%d times in %d s; last: %s)",
                     p->name, recent, SC_STATUS_CRASH_WINDOW_S,
                     p->last_error ? p->last_error : "?");
            json_array_append_new(problems, json_string(line));
        } else if (strcmp(p->state, "failed") == 0) {
            snprintf(line, sizeof line, "plugin %s is not running: %s",
                     p->name, p->last_error ? p->last_error : "?");
            json_array_append_new(problems, json_string(line));
        }
    }
    if (s->journal_error) {
        char line[1024];
        snprintf(line, sizeof line, "journal cannot be written: %s",
                 s->journal_error);
        json_array_append_new(problems, json_string(line));
    }
    *ok = json_array_size(problems) == 0;
    return json_pack("{s:b, s:o}", "ok", *ok, "problems", problems);
}

#define VIEW(fn, locked)                                                      \
    json_t *fn(sc_status_t *s)                                                \
    {                                                                         \
        if (!s)                                                               \
            return NULL;                                                      \
        pthread_mutex_lock(&s->mu);                                           \
        json_t *j = locked(s);                                                \
        pthread_mutex_unlock(&s->mu);                                         \
        return j;                                                             \
    }
VIEW(sc_status_json_agencies, agencies_locked)

json_t *sc_status_json_status(sc_status_t *s)
{
    if (!s)
        return NULL;
    int64_t jbytes = journal_bytes(s);
    pthread_mutex_lock(&s->mu);
    json_t *j = status_locked(s, jbytes);
    pthread_mutex_unlock(&s->mu);
    return j;
}

json_t *sc_status_json_channels(sc_status_t *s)
{
    if (!s)
        return NULL;
    size_t n;
    pthread_mutex_lock(&s->mu);
    chan_t *v = channels_copy_locked(s, &n);
    pthread_mutex_unlock(&s->mu);
    return channels_json(v, n);
}

/* a sink plugin's lag and state, from the sink feeder (sink.h) */
static void add_sink(void *arg, const sc_sink_status_t *st)
{
    if (st->channel)
        return; /* the per-instance line carries the sum */
    size_t i;
    json_t *p;
    json_array_foreach((json_t *)arg, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "plugin")),
                   st->instance) != 0)
            continue;
        json_object_set_new(p, "sink_lag", json_integer((json_int_t)st->lag));
        json_object_set_new(p, "sink_delivering", json_boolean(st->connected));
        if (st->last_error && st->last_error[0])
            json_object_set_new(p, "sink_error",
                                json_string(st->last_error));
    }
}

json_t *sc_status_json_plugins(sc_status_t *s)
{
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    json_t *j = plugins_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (j && sc_sink_global())
        sc_sink_status(sc_sink_global(), add_sink, j);
    return j;
}

json_t *sc_status_health(sc_status_t *s, bool *ok)
{
    bool dummy;
    if (!ok)
        ok = &dummy;
    *ok = true;
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    json_t *j = health_locked(s, ok);
    pthread_mutex_unlock(&s->mu);
    return j;
}

static void add_warning(void *ud, const char *line)
{
    json_array_append_new((json_t *)ud, json_string(line));
}

json_t *sc_status_json_all(sc_status_t *s)
{
    if (!s)
        return NULL;
    json_t *warn = json_array();
    sc_log_recent(add_warning, warn);
    bool ok;
    size_t n_chans;
    int64_t jbytes = journal_bytes(s);
    pthread_mutex_lock(&s->mu);
    json_t *plugins = plugins_locked(s);
    json_t *status = status_locked(s, jbytes);
    chan_t *chans = channels_copy_locked(s, &n_chans);
    json_t *agencies = agencies_locked(s);
    json_t *health = health_locked(s, &ok);
    pthread_mutex_unlock(&s->mu);
    json_t *j = json_pack("{s:o, s:O, s:o, s:o, s:o, s:o}", "status", status,
                          "plugins", plugins, "channels",
                          channels_json(chans, n_chans), "agencies", agencies,
                          "health", health, "warnings", warn);
    if (plugins && sc_sink_global())
        sc_sink_status(sc_sink_global(), add_sink, plugins);
    json_decref(plugins);
    return j;
}
