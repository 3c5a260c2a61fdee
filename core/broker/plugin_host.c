/*
 * plugin_host.c - see plugin_host.h.
 *
 * One thread per plugin instance running the one host's loop
 * (sc_host_run_once) over the plugin's fds and timers, plus one extra fd:
 * the sink queue's wake pipe (threads) or the ZeroMQ socket's fd
 * (children, which also receive PING and SINK_MSG frames from the core).
 * A publish is checked by core/host on the plugin's thread (so a refusal
 * is returned synchronously to the plugin) and then queued as a frame on
 * the instance's socket. PUSH blocks at its high-water mark instead of
 * dropping, so a plugin that outruns the core is slowed down, never loses
 * a message; the send waits in short slices so that a stop request is
 * still honoured.
 *
 * A child keeps up to its publish window (SC_PLUGIN_CHILD_WINDOW by
 * default) of frames in flight: a publish or sink ack returns once its
 * frame is handed to the socket, and blocks only while that many frames
 * await the core's ACK; a state write returns once it and every frame
 * before it are ACKed (journaled), so it is the child's commit point. The core
 * sends exactly one ACK per such frame, and only after the frame's group
 * is committed (or the frame refused), so the child just counts them.
 * Frames travel in order on the one socket, so a state write is committed
 * in the same transaction as, or after, the publishes before it. A
 * stopping child waits for every ACK (bounded) before it closes the
 * socket, so a stop, a reload or SIGTERM loses nothing it accepted.
 */
#include "plugin_host.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <zmq.h>

#include "common/clock.h"
#include "host/frame.h"
#include "log.h"
#include "ops.h"
#include "threads.h"

typedef struct overlay {
    char *key;
    char *value; /* NULL = deleted */
    struct overlay *next;
} overlay_t;

typedef struct sink_item {
    char *channel;
    char *epoch;
    uint64_t seq;
    char *jws;      /* NULL: a lost notice for seq..last */
    size_t jws_len;
    uint64_t last;
} sink_item_t;

struct sc_plugin_inst {
    sc_host_inst_t *h;
    char *name;
    sc_settings_t *settings; /* own copy, read by the host's getters */

    void *zctx;
    char *core_endpoint;
    char *routing_id;
    void *sock; /* owned by the plugin thread */
    bool acked; /* DEALER + the core acks every frame (child) */
    size_t inflight; /* frames sent, ACK not yet received (child) */
    size_t window;   /* ...at most this many (config publish_window) */
    uint64_t core_refused; /* frames the core ACKed "refused" (child) */

    pthread_t thread;
    int thread_started;
    atomic_int exited;
    atomic_int started; /* 0 starting, 1 running, -1 failed */
    atomic_uint_fast64_t published;
    uint64_t refused_seen; /* host refusals already counted (o_log) */

    char *state_db_path;
    sqlite3 *state_db;
    overlay_t *overlay;

    /* sink queue: core thread -> plugin thread */
    pthread_mutex_t sink_mu;
    sink_item_t sinkq[SC_PLUGIN_SINK_WINDOW];
    size_t sink_head, sink_n;
    int sink_pipe[2];
    /* plugin thread only: channels refused at `seq` (a SINK_NACK went to
     * the core); later messages of the channel still arriving are dropped
     * until the feeder offers that seq (or an earlier one) again, so the
     * plugin sees every channel in seq order. Bounded by the channels the
     * instance receives. */
    struct blocked { char *channel; uint64_t seq; } *blocked;
    size_t n_blocked;

    pthread_mutex_t done_mu;
    pthread_cond_t done_cv;
};

/* ------------------------------------------------------------------ */
/* loading                                                             */

int sc_plugin_lib_open(const char *path, sc_plugin_lib_t *lib, char *err,
                       size_t errlen)
{
    return sc_host_lib_open(path, SC_PLUGIN_ABI_VERSION, lib, err, errlen);
}

void sc_plugin_lib_close(sc_plugin_lib_t *lib) { sc_host_lib_close(lib); }

/* ------------------------------------------------------------------ */
/* sending frames to the core                                          */

static int send_part(sc_plugin_inst_t *p, const void *data, size_t len,
                     int more)
{
    for (;;) {
        if (zmq_send(p->sock, data, len, more ? ZMQ_SNDMORE : 0) >= 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        /* at the high-water mark: wait for the core, but honour stop */
        if (sc_host_stopping(p->h))
            return -2;
    }
}

static void handle_incoming(sc_plugin_inst_t *p, const sc_frame_t *f);

/* Children: one ACK from the core (one frame of ours is journaled, or
 * refused: the core logs which and why). */
static void got_ack(sc_plugin_inst_t *p, const sc_frame_t *f)
{
    if (p->inflight > 0)
        p->inflight--;
    bool ok = f->data.len == strlen(SC_PUB_ACK_OK) &&
              memcmp(f->data.ptr, SC_PUB_ACK_OK, f->data.len) == 0;
    if (!ok && p->core_refused++ % 1000 == 0)
        sc_log(SC_L_ERROR, p->name,
               "%llu frame(s) refused by the core (its log says why)",
               (unsigned long long)p->core_refused);
}

/* Children: read one frame from the core, waiting up to the socket's
 * receive timeout. 0 if one was handled (ACKs counted, PINGs and sink
 * messages handled), -1 if none came. */
static int recv_one(sc_plugin_inst_t *p, int flags)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, p->sock, flags) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    sc_frame_t f;
    char err[128];
    int rc = sc_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), &f, err,
                             sizeof err);
    if (rc == 0 && f.type == SC_FRAME_ACK)
        got_ack(p, &f);
    else if (rc == 0)
        handle_incoming(p, &f);
    else
        sc_log(SC_L_ERROR, p->name, "bad frame from the core: %s", err);
    zmq_msg_close(&m);
    return 0;
}

/* Children: wait until the window has room for one more frame. A full
 * window means the core is behind (or its journal paused): the plugin is
 * slowed down, never loses a message. */
static int wait_window(sc_plugin_inst_t *p)
{
    while (p->inflight >= p->window) {
        if (recv_one(p, 0) != 0 &&
            (errno != EAGAIN || sc_host_stopping(p->h)))
            return SC_ERR_STOPPING;
    }
    return SC_OK;
}

/* Children, at exit: wait (up to timeout_ms) until the core has ACKed
 * every frame sent. */
static void wait_all_acked(sc_plugin_inst_t *p, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (p->inflight > 0) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 +
                (t.tv_nsec - t0.tv_nsec) / 1000000 >= timeout_ms) {
            sc_log(SC_L_ERROR, p->name,
                   "%zu frame(s) not acknowledged by the core at exit",
                   p->inflight);
            return;
        }
        if (recv_one(p, 0) != 0 && errno != EAGAIN)
            return;
    }
}

/* Send one frame to the core ([name][frame] on inproc, [frame] from a
 * child; a child first waits for room in its window). */
static int send_frame(sc_plugin_inst_t *p, const sc_frame_t *f,
                      const char *what)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (sc_frame_encode(f, &buf, &len) != 0)
        return SC_ERR_NO_MEMORY;
    int rc = 0;
    if (p->acked && wait_window(p) != SC_OK)
        rc = -2;
    else if (!p->acked)
        rc = send_part(p, p->name, strlen(p->name), 1);
    if (rc == 0)
        rc = send_part(p, buf, len, 0);
    free(buf);
    if (rc == -2)
        return SC_ERR_STOPPING;
    if (rc != 0) {
        sc_log(SC_L_ERROR, p->name, "%s: send to the core failed: %s", what,
               zmq_strerror(errno));
        return SC_ERR_INTERNAL;
    }
    if (p->acked)
        p->inflight++;
    return SC_OK;
}

static sc_frame_str_t FSTR(const char *s)
{
    return (sc_frame_str_t){s, s ? strlen(s) : 0};
}

static int o_publish(void *ctx, const sc_host_pub_t *pub)
{
    sc_plugin_inst_t *p = ctx;
    sc_frame_t f = {
        .type = SC_FRAME_PUBLISH,
        .channel = FSTR(pub->channel),
        .kind = FSTR(pub->kind),
        .key = FSTR(pub->key),
        .data = {pub->data_text, pub->data_len},
    };
    int rc = send_frame(p, &f, pub->channel);
    if (rc == SC_OK)
        atomic_fetch_add(&p->published, 1);
    return rc;
}

static void o_log(void *ctx, sc_log_level_t level, bool from_host,
                  const char *text)
{
    sc_plugin_inst_t *p = ctx;
    if (from_host && p->h && sc_host_refused(p->h) != p->refused_seen) {
        /* the host refused a publish (it logs each refusal): count it */
        p->refused_seen = sc_host_refused(p->h);
        int code = sc_host_last_refusal(p->h);
        const char *why = code == SC_ERR_NOT_GRANTED ? "not-granted"
                          : code == SC_ERR_BAD_JSON  ? "bad-json"
                          : code == SC_ERR_TOO_BIG   ? "too-big"
                                                     : "invalid";
        size_t bytes = 0;
        const char *ch = sc_host_last_refused_channel(p->h, &bytes);
        if (!p->acked) {
            sc_ops_refused(p->name, ch, why, bytes);
        } else {
            /* a child: the core counts it, told by a REFUSED frame (lost
             * only if the socket is at its high-water mark) */
            sc_frame_t f = {.type = SC_FRAME_REFUSED,
                            .channel = {ch[0] ? ch : NULL, strlen(ch)},
                            .kind = FSTR(why), .seq = bytes};
            unsigned char *buf;
            size_t len;
            if (sc_frame_encode(&f, &buf, &len) == 0) {
                zmq_send(p->sock, buf, len, ZMQ_DONTWAIT);
                free(buf);
            }
        }
    }
    sc_level_t l = level <= SC_LOG_DEBUG  ? SC_L_DEBUG
                   : level == SC_LOG_INFO ? SC_L_INFO
                   : level == SC_LOG_WARN ? SC_L_WARN
                                          : SC_L_ERROR;
    sc_log(l, p->name, "%s", text);
}

static void o_setting_problem(void *ctx, const char *file, int line,
                              const char *msg)
{
    sc_plugin_inst_t *p = ctx;
    if (line > 0)
        sc_log(SC_L_ERROR, p->name, "%s:%d: %s", file ? file : "config",
               line, msg);
    else
        sc_log(SC_L_ERROR, p->name, "%s", msg);
}

static int o_sink_ack(void *ctx, const char *channel, uint64_t seq)
{
    sc_plugin_inst_t *p = ctx;
    sc_frame_t f = {.type = SC_FRAME_SINK_ACK, .channel = FSTR(channel),
                    .seq = seq};
    return send_frame(p, &f, "sink ack");
}

static void o_stopped(void *ctx, const char *reason)
{
    (void)ctx;
    (void)reason;
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

static sqlite3 *state_db(sc_plugin_inst_t *p)
{
    if (p->state_db)
        return p->state_db;
    char err[512];
    p->state_db = sc_plugin_state_open(p->state_db_path, err, sizeof err);
    if (!p->state_db)
        sc_log(SC_L_ERROR, p->name, "%s", err);
    return p->state_db;
}

static overlay_t *overlay_find(sc_plugin_inst_t *p, const char *key)
{
    for (overlay_t *o = p->overlay; o; o = o->next)
        if (strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static int o_state_get(void *ctx, const char *key, char **value)
{
    sc_plugin_inst_t *p = ctx;
    overlay_t *o = overlay_find(p, key);
    if (o) {
        if (!o->value)
            return SC_ERR_NOT_FOUND;
        *value = strdup(o->value);
        return *value ? SC_OK : SC_ERR_NO_MEMORY;
    }
    sqlite3 *db = state_db(p);
    if (!db)
        return SC_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM plugin_state WHERE plugin=? AND"
                           " key=?",
                           -1, &st, NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, p->name, "plugin state read: %s",
               sqlite3_errmsg(db));
        return SC_ERR_INTERNAL;
    }
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), out = SC_ERR_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = strdup(v ? v : "");
        out = *value ? SC_OK : SC_ERR_NO_MEMORY;
    } else if (rc != SQLITE_DONE) {
        sc_log(SC_L_ERROR, p->name, "plugin state read: %s",
               sqlite3_errmsg(db));
        out = SC_ERR_INTERNAL;
    }
    sqlite3_finalize(st);
    return out;
}

static int o_state_put(void *ctx, const char *key, const char *value)
{
    sc_plugin_inst_t *p = ctx;
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
    sc_frame_t f = {
        .type = value ? SC_FRAME_STATE_PUT : SC_FRAME_STATE_DEL,
        .key = FSTR(key),
        .data = FSTR(value),
    };
    int rc = send_frame(p, &f, "state");
    /* a child's state write is its commit point: it returns once it and
     * every frame before it are journaled, so a crash never loses what
     * the plugin's state was told is recorded */
    while (rc == SC_OK && p->acked && p->inflight > 0)
        if (recv_one(p, 0) != 0 &&
            (errno != EAGAIN || sc_host_stopping(p->h)))
            rc = SC_ERR_STOPPING;
    return rc;
}

typedef struct kv {
    char *key;
    char *value;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv_t *)a)->key, ((const kv_t *)b)->key);
}

static int kv_add(kv_t **v, size_t *n, size_t *cap, const char *k,
                  const char *val)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        kv_t *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return SC_ERR_NO_MEMORY;
        *v = nv;
        *cap = nc;
    }
    (*v)[*n].key = strdup(k);
    (*v)[*n].value = strdup(val);
    (*n)++;
    return (*v)[*n - 1].key && (*v)[*n - 1].value ? SC_OK : SC_ERR_NO_MEMORY;
}

static int o_state_foreach(void *ctx, const char *pre,
                           int (*fn)(void *, const char *, const char *),
                           void *arg)
{
    sc_plugin_inst_t *p = ctx;
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
    while (out == SC_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *val = (const char *)sqlite3_column_text(st, 1);
        if (!k || overlay_find(p, k))
            continue; /* our own newer write wins */
        out = kv_add(&v, &n, &cap, k, val ? val : "");
    }
    if (out == SC_OK && rc != SQLITE_DONE)
        out = SC_ERR_INTERNAL;
    sqlite3_finalize(st);
    for (overlay_t *o = p->overlay; out == SC_OK && o; o = o->next)
        if (o->value && strncmp(o->key, pre, pl) == 0)
            out = kv_add(&v, &n, &cap, o->key, o->value);
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

static const sc_host_ops_t broker_ops = {
    .publish = o_publish,
    .state_get = o_state_get,
    .state_put = o_state_put,
    .state_foreach = o_state_foreach,
    .log = o_log,
    .setting_problem = o_setting_problem,
    .sink_ack = o_sink_ack,
    .stopped = o_stopped,
};

/* ------------------------------------------------------------------ */
/* sinks                                                               */

static sc_sink_ack_fn g_sink_cb;
static void *g_sink_arg;

void sc_plugin_set_sink_ack_cb(sc_sink_ack_fn fn, void *arg)
{
    g_sink_cb = fn;
    g_sink_arg = arg;
}

void sc_plugin_sink_acked(const char *instance, const char *channel,
                          uint64_t acked_seq, uint64_t refused_seq)
{
    if (g_sink_cb)
        g_sink_cb(g_sink_arg, instance, channel, acked_seq, refused_seq);
}

bool sc_plugin_is_sink(const sc_plugin_inst_t *p)
{
    return p && atomic_load(&((sc_plugin_inst_t *)p)->started) == 1 &&
           sc_host_sink(p->h) != NULL;
}

static void sink_item_free(sink_item_t *it)
{
    free(it->channel);
    free(it->epoch);
    free(it->jws);
    memset(it, 0, sizeof *it);
}

int sc_plugin_sink_deliver(sc_plugin_inst_t *p, const sc_sink_msg_t *msg)
{
    if (!p || !msg || !msg->channel || !msg->epoch || !msg->jws)
        return SC_ERR_ARG;
    if (!sc_plugin_is_sink(p))
        return SC_ERR_UNSUPPORTED;
    if (sc_host_stopping(p->h))
        return SC_ERR_STOPPING;
    sink_item_t it = {strdup(msg->channel), strdup(msg->epoch), msg->seq,
                      malloc(msg->jws_len + 1), msg->jws_len, 0};
    if (!it.channel || !it.epoch || !it.jws) {
        sink_item_free(&it);
        return SC_ERR_NO_MEMORY;
    }
    memcpy(it.jws, msg->jws, msg->jws_len);
    it.jws[msg->jws_len] = '\0';
    pthread_mutex_lock(&p->sink_mu);
    if (p->sink_n == SC_PLUGIN_SINK_WINDOW) {
        pthread_mutex_unlock(&p->sink_mu);
        sink_item_free(&it);
        return SC_ERR_LIMIT;
    }
    p->sinkq[(p->sink_head + p->sink_n++) % SC_PLUGIN_SINK_WINDOW] = it;
    pthread_mutex_unlock(&p->sink_mu);
    char c = 's';
    ssize_t w = write(p->sink_pipe[1], &c, 1); /* full pipe: already woken */
    (void)w;
    return SC_OK;
}

static int queue_lost(sc_plugin_inst_t *p, const char *channel,
                      const char *epoch, uint64_t first, uint64_t last);

int sc_plugin_sink_lost(sc_plugin_inst_t *p, const char *channel,
                        const char *epoch, uint64_t first, uint64_t last)
{
    if (!p || !channel || !epoch)
        return SC_ERR_ARG;
    if (!sc_plugin_is_sink(p))
        return SC_ERR_UNSUPPORTED;
    return queue_lost(p, channel, epoch, first, last);
}

/* Queue a lost notice (delivered from the plugin thread's loop, which runs
 * only after init(), where a sink registers). */
static int queue_lost(sc_plugin_inst_t *p, const char *channel,
                      const char *epoch, uint64_t first, uint64_t last)
{
    sink_item_t it = {.channel = strdup(channel), .epoch = strdup(epoch),
                      .seq = first, .last = last};
    if (!it.channel || !it.epoch) {
        sink_item_free(&it);
        return SC_ERR_NO_MEMORY;
    }
    pthread_mutex_lock(&p->sink_mu);
    if (p->sink_n == SC_PLUGIN_SINK_WINDOW) {
        pthread_mutex_unlock(&p->sink_mu);
        sink_item_free(&it);
        return SC_ERR_LIMIT;
    }
    p->sinkq[(p->sink_head + p->sink_n++) % SC_PLUGIN_SINK_WINDOW] = it;
    pthread_mutex_unlock(&p->sink_mu);
    char c = 's';
    ssize_t w = write(p->sink_pipe[1], &c, 1);
    (void)w;
    return SC_OK;
}

/* Plugin thread: `seq` of `channel` was refused; drop what follows. */
static void sink_block(sc_plugin_inst_t *p, const char *channel,
                       uint64_t seq)
{
    for (size_t i = 0; i < p->n_blocked; i++)
        if (strcmp(p->blocked[i].channel, channel) == 0) {
            if (seq < p->blocked[i].seq)
                p->blocked[i].seq = seq;
            return;
        }
    struct blocked *v = realloc(p->blocked, (p->n_blocked + 1) * sizeof *v);
    if (!v)
        return;
    p->blocked = v;
    if ((v[p->n_blocked].channel = strdup(channel)) != NULL)
        v[p->n_blocked++].seq = seq;
}

/* Plugin thread: true if `seq` of `channel` follows a refused message that
 * was not offered again yet (drop it: the feeder offers it again after the
 * refused one). An offer at or before the refused seq lifts the block. */
static bool sink_blocked(sc_plugin_inst_t *p, const char *channel,
                         uint64_t seq)
{
    for (size_t i = 0; i < p->n_blocked; i++) {
        if (strcmp(p->blocked[i].channel, channel) != 0)
            continue;
        if (seq > p->blocked[i].seq)
            return true;
        free(p->blocked[i].channel);
        p->blocked[i] = p->blocked[--p->n_blocked];
        return false;
    }
    return false;
}

/* On the plugin thread: hand one queued message to the plugin. false
 * when the sink's window is full: the message stays first in the queue,
 * offered again after the plugin's next callback (where it acknowledges). */
static bool deliver_one(sc_plugin_inst_t *p, sink_item_t *it)
{
    if (!it->jws) {
        sc_host_sink_lost(p->h, it->channel, it->epoch, it->seq, it->last);
        return true;
    }
    if (sink_blocked(p, it->channel, it->seq))
        return true;
    sc_sink_msg_t m = {sizeof m, it->channel, it->epoch, it->seq, it->jws,
                       it->jws_len};
    int rc = sc_host_sink_deliver(p->h, &m);
    if (rc == SC_HOST_SINK_HELD)
        return false;
    if (rc != SC_OK) {
        sink_block(p, it->channel, it->seq);
        sc_frame_t f = {.type = SC_FRAME_SINK_NACK,
                        .channel = FSTR(it->channel), .seq = it->seq};
        send_frame(p, &f, "sink nack");
    }
    return true;
}

/* The queue's first item is taken out only once it was handled (only
 * this thread removes items; others append behind the last). */
static void drain_sinkq(sc_plugin_inst_t *p)
{
    char buf[64];
    while (read(p->sink_pipe[0], buf, sizeof buf) > 0)
        ;
    for (;;) {
        sink_item_t *it;
        pthread_mutex_lock(&p->sink_mu);
        it = p->sink_n ? &p->sinkq[p->sink_head] : NULL;
        pthread_mutex_unlock(&p->sink_mu);
        if (!it || (!sc_host_stopping(p->h) && !deliver_one(p, it)))
            return;
        pthread_mutex_lock(&p->sink_mu);
        sink_item_t done = *it;
        memset(it, 0, sizeof *it);
        p->sink_head = (p->sink_head + 1) % SC_PLUGIN_SINK_WINDOW;
        p->sink_n--;
        pthread_mutex_unlock(&p->sink_mu);
        sink_item_free(&done);
    }
}

/* A frame from the core that is not an ACK (children only). */
static void handle_incoming(sc_plugin_inst_t *p, const sc_frame_t *f)
{
    if (f->type == SC_FRAME_PING) {
        sc_frame_t pong = {.type = SC_FRAME_PONG, .seq = f->seq};
        unsigned char *buf;
        size_t len;
        if (sc_frame_encode(&pong, &buf, &len) == 0) {
            zmq_send(p->sock, buf, len, ZMQ_DONTWAIT);
            free(buf);
        }
    } else if (f->type == SC_FRAME_SINK_MSG) {
        char ch[256], ep[80];
        char *jws = malloc(f->data.len + 1);
        if (jws && sc_frame_str_copy(f->channel, ch, sizeof ch) &&
            sc_frame_str_copy(f->epoch, ep, sizeof ep) &&
            sc_frame_str_copy(f->data, jws, f->data.len + 1)) {
            sc_sink_msg_t m = {sizeof m, ch, ep, f->seq, jws, f->data.len};
            /* queued, delivered from the loop (not inside a publish) */
            if (sc_plugin_sink_deliver(p, &m) != SC_OK) {
                sink_block(p, ch, f->seq);
                sc_frame_t nack = {.type = SC_FRAME_SINK_NACK,
                                   .channel = FSTR(ch), .seq = f->seq};
                unsigned char *buf;
                size_t len;
                if (sc_frame_encode(&nack, &buf, &len) == 0) {
                    /* the core ACKs it too: it counts in the window */
                    if (zmq_send(p->sock, buf, len, ZMQ_DONTWAIT) >= 0)
                        p->inflight++;
                    free(buf);
                }
            }
        }
        free(jws);
    } else if (f->type == SC_FRAME_SINK_LOST) {
        char ch[256], ep[80];
        if (sc_frame_str_copy(f->channel, ch, sizeof ch) &&
            sc_frame_str_copy(f->epoch, ep, sizeof ep) &&
            queue_lost(p, ch, ep, f->seq, f->last) != SC_OK)
            sc_log(SC_L_WARN, p->name,
                   "sink: %s: could not pass on that seq %llu..%llu of epoch "
                   "%s were lost (the broker logged it)",
                   ch, (unsigned long long)f->seq,
                   (unsigned long long)f->last, ep);
    }
}

/* Children: read everything the core sent (the socket's fd is
 * edge-triggered: drain until EAGAIN). */
static void drain_socket(sc_plugin_inst_t *p)
{
    while (recv_one(p, ZMQ_DONTWAIT) == 0)
        ;
}

/* ------------------------------------------------------------------ */
/* the plugin thread                                                   */

static void set_started(sc_plugin_inst_t *p, int v)
{
    pthread_mutex_lock(&p->done_mu);
    atomic_store(&p->started, v);
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->done_mu);
}

/* The socket towards the core, with the options every instance uses. */
static void *core_socket(void *zctx, bool acked, const char *endpoint,
                         const char *routing_id)
{
    void *sock = zmq_socket(zctx, acked ? ZMQ_DEALER : ZMQ_PUSH);
    int linger = 0, hwm = 10000, timeo = 100;
    if (!sock ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeo, sizeof timeo) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeo, sizeof timeo) != 0 ||
        (routing_id &&
         zmq_setsockopt(sock, ZMQ_ROUTING_ID, routing_id,
                        strlen(routing_id)) != 0) ||
        zmq_connect(sock, endpoint) != 0) {
        int e = errno;
        if (sock)
            zmq_close(sock);
        errno = e;
        return NULL;
    }
    return sock;
}

void *sc_plugin_child_connect(void *zctx, const char *core_endpoint,
                              const char *routing_id, int timeout_ms,
                              char *err, size_t errlen)
{
    void *sock = core_socket(zctx, true, core_endpoint, routing_id);
    if (!sock) {
        snprintf(err, errlen, "cannot connect to the core (%s): %s",
                 core_endpoint, zmq_strerror(errno));
        return NULL;
    }
    /* wait until the connection exists: after the child drops its
     * privileges it could not make it any more */
    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://sc-child-monitor-%.40s",
             routing_id);
    void *mon = NULL;
    bool ok = false;
    if (zmq_socket_monitor(sock, mon_ep, ZMQ_EVENT_CONNECTED) == 0 &&
        (mon = zmq_socket(zctx, ZMQ_PAIR)) != NULL &&
        zmq_connect(mon, mon_ep) == 0) {
        int64_t until = sc_mono_ms() + timeout_ms;
        while (!ok && sc_mono_ms() < until) {
            zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 100) <= 0)
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, mon, 0) >= 0 && zmq_msg_size(&m) >= 2) {
                uint16_t ev;
                memcpy(&ev, zmq_msg_data(&m), sizeof ev);
                ok = ev == ZMQ_EVENT_CONNECTED;
            }
            while (zmq_msg_more(&m)) { /* the endpoint part */
                zmq_msg_close(&m);
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, mon, 0) < 0)
                    break;
            }
            zmq_msg_close(&m);
        }
    }
    zmq_socket_monitor(sock, NULL, 0);
    if (mon)
        zmq_close(mon);
    if (!ok) {
        snprintf(err, errlen, "cannot connect to the core (%s) within %d ms",
                 core_endpoint, timeout_ms);
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

void *sc_plugin_state_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "plugin state %s: %s", path,
                 db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    return db;
}

int sc_plugin_state_warm(void *db, char *err, size_t errlen)
{
    /* a read transaction opens the WAL and its shared memory, which then
     * stay open with the connection */
    char *msg = NULL;
    if (sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL,
                     &msg) != SQLITE_OK) {
        snprintf(err, errlen, "plugin state: %s", msg ? msg : "read failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void *plugin_thread(void *arg)
{
    sc_plugin_inst_t *p = arg;
    const sc_host_lib_t *lib = sc_host_lib(p->h);
    if (!p->sock)
        p->sock = core_socket(p->zctx, p->acked, p->core_endpoint,
                              p->routing_id);
    if (!p->sock) {
        sc_log(SC_L_ERROR, p->name, "cannot connect to the core (%s): %s",
               p->core_endpoint, zmq_strerror(errno));
        set_started(p, -1);
        goto out;
    }
    sc_log(SC_L_INFO, p->name, "starting plugin %s %s (%s, ABI %u)",
           lib->desc.name, lib->desc.version ? lib->desc.version : "?",
           lib->path, (unsigned)lib->abi);
    if (sc_host_init(p->h) != SC_OK) {
        set_started(p, -1);
        goto out;
    }
    set_started(p, 1);
    int zfd = -1;
    size_t zl = sizeof zfd;
    if (p->acked && zmq_getsockopt(p->sock, ZMQ_FD, &zfd, &zl) != 0)
        zfd = -1;
    while (!sc_host_stopping(p->h)) {
        bool extra = false;
        int r = sc_host_run_once(p->h, p->acked ? 200 : -1,
                                 p->acked ? zfd : p->sink_pipe[0], &extra);
        if (r < 0)
            break;
        if (p->acked)
            drain_socket(p);
        drain_sinkq(p);
    }
    sc_log(SC_L_INFO, p->name, "plugin stopped");
out:
    return NULL;
}

/* Thread body wrapper: fini and cleanup on the plugin thread. */
static void *plugin_thread_main(void *arg)
{
    sc_plugin_inst_t *p = arg;
    sc_thread_name("p", p->name);
    plugin_thread(p);
    /* fini() on the plugin's thread, the socket still open; the library
     * stays loaded until inst_free */
    sc_host_finish(p->h);
    if (p->sock && p->acked)
        wait_all_acked(p, SC_PLUGIN_CHILD_DRAIN_MS);
    if (p->sock)
        zmq_close(p->sock);
    p->sock = NULL;
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
    if (p->sock) /* handed over but the thread never ran */
        zmq_close(p->sock);
    if (p->state_db)
        sqlite3_close(p->state_db);
    sc_host_destroy(&p->h);
    free(p->name);
    sc_settings_destroy(&p->settings);
    free(p->core_endpoint);
    free(p->routing_id);
    free(p->state_db_path);
    while (p->overlay) {
        overlay_t *o = p->overlay->next;
        free(p->overlay->key);
        free(p->overlay->value);
        free(p->overlay);
        p->overlay = o;
    }
    for (size_t i = 0; i < SC_PLUGIN_SINK_WINDOW; i++)
        sink_item_free(&p->sinkq[i]);
    for (size_t i = 0; i < p->n_blocked; i++)
        free(p->blocked[i].channel);
    free(p->blocked);
    for (int i = 0; i < 2; i++)
        if (p->sink_pipe[i] >= 0)
            close(p->sink_pipe[i]);
    pthread_mutex_destroy(&p->sink_mu);
    pthread_mutex_destroy(&p->done_mu);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}

sc_plugin_inst_t *sc_plugin_start(sc_plugin_lib_t *lib,
                                  const sc_plugin_start_opts_t *o, char *err,
                                  size_t errlen)
{
    const sc_cfg_plugin_t *cfg = o->cfg;
    const char *routing_id = o->routing_id;
    void *sock = o->sock, *db = o->db;
    sc_plugin_inst_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        sc_plugin_lib_close(lib);
        if (sock)
            zmq_close(sock);
        if (db)
            sqlite3_close(db);
        return NULL;
    }
    p->sock = sock;
    p->state_db = db;
    p->sink_pipe[0] = p->sink_pipe[1] = -1;
    pthread_mutex_init(&p->sink_mu, NULL);
    pthread_mutex_init(&p->done_mu, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->acked = o->acked;
    p->window = cfg->publish_window >= 1 &&
                        cfg->publish_window <= SC_PLUGIN_CHILD_WINDOW_MAX
                    ? (size_t)cfg->publish_window
                    : SC_PLUGIN_CHILD_WINDOW;
    p->zctx = o->zctx;
    p->name = strdup(cfg->name);
    p->core_endpoint = strdup(o->core_endpoint);
    p->state_db_path = strdup(o->state_db);
    p->routing_id = routing_id ? strdup(routing_id) : NULL;
    if (cfg->settings) {
        p->settings = sc_settings_copy(cfg->settings);
    } else {
        sc_settings_where_t w = {.plugin = cfg->name, .line = cfg->line};
        p->settings = sc_settings_from_root(&w, NULL);
    }
    bool oom = !p->name || !p->core_endpoint || !p->settings ||
               !p->state_db_path || (routing_id && !p->routing_id);
    if (oom) {
        snprintf(err, errlen, "out of memory");
        sc_plugin_lib_close(lib);
        inst_free(p);
        return NULL;
    }
    sc_host_conf_t conf = {
        .name = cfg->name,
        .settings = p->settings,
        .channels = (const char *const *)cfg->channels,
        .n_channels = cfg->n_channels,
        .max_data_bytes = o->max_data_bytes,
        .sink_capable = cfg->n_receives > 0, /* config `receives` */
        .max_channels = cfg->max_channels > 0 ? (size_t)cfg->max_channels : 0,
    };
    p->h = sc_host_new(lib, &conf, &broker_ops, p, err, errlen);
    if (!p->h) {
        inst_free(p);
        return NULL;
    }
    if (pipe(p->sink_pipe) != 0) {
        snprintf(err, errlen, "plugin %s: pipe: %s", cfg->name,
                 strerror(errno));
        inst_free(p);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(p->sink_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(p->sink_pipe[i], F_SETFL, O_NONBLOCK);
    }
    int rc = pthread_create(&p->thread, NULL, plugin_thread_main, p);
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
    if (p)
        sc_host_stop(p->h);
}

bool sc_plugin_exited(const sc_plugin_inst_t *p)
{
    return p && atomic_load(&((sc_plugin_inst_t *)p)->exited);
}

bool sc_plugin_running(const sc_plugin_inst_t *p)
{
    return p && atomic_load(&((sc_plugin_inst_t *)p)->started) == 1 &&
           !sc_plugin_exited(p);
}

static void deadline_in(struct timespec *dl, int ms)
{
    clock_gettime(CLOCK_REALTIME, dl);
    dl->tv_sec += ms / 1000;
    dl->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl->tv_nsec >= 1000000000L) {
        dl->tv_sec++;
        dl->tv_nsec -= 1000000000L;
    }
}

int sc_plugin_wait_started(sc_plugin_inst_t *p, int timeout_ms)
{
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&p->done_mu);
    while (atomic_load(&p->started) == 0 && !atomic_load(&p->exited))
        if (pthread_cond_timedwait(&p->done_cv, &p->done_mu, &dl) ==
            ETIMEDOUT)
            break;
    int s = atomic_load(&p->started);
    pthread_mutex_unlock(&p->done_mu);
    return s == 1 ? (sc_plugin_exited(p) ? 0 : 1) : s == 0 ? -1 : 0;
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
        deadline_in(&dl, timeout_ms);
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
    return atomic_load(&((sc_plugin_inst_t *)p)->published);
}
uint64_t sc_plugin_refused(const sc_plugin_inst_t *p)
{
    return p->h ? sc_host_refused(p->h) : 0;
}
