/*
 * pipeline.c - see pipeline.h.
 *
 * Publishes are handled in groups: everything ready (up to GROUP_MAX) is
 * sequenced, signed and appended to the journal in one transaction; only
 * after the commit succeeds is the group sent.
 *
 * Two groups overlap while plugins publish faster than one group's work:
 * the signing threads sign group N+1 while the core thread journals,
 * commits and sends group N (then reads the next one and helps sign what
 * is left). Group N+1 is numbered before N commits (sc_journal_next_seq
 * writes nothing); if N's commit fails, the journal gives both groups'
 * seqs back and both are kept, in order, to be numbered, signed and
 * committed again. At light load there is no second group: a message is
 * read, signed (by the core thread itself if it is alone), committed and
 * sent in one go.
 */
#include "pipeline.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "common/jsoncheck.h"
#include "common/workpool.h"
#include "host/frame.h"
#include "host/host.h"
#include "log.h"
#include "ops.h"
#include "plugin_host.h"
#include "ratelimit.h"

#define GROUP_MAX 1024

/* A pending message's fields in its slot buffer (NUL-terminated). A state
 * write uses parts 0 (instance), 2 (key) and 3 ('v' + value, or "d"). */
enum {
    SC_PUB_F_PLUGIN = 0, /* instance name, from the core's config */
    SC_PUB_F_SECTOR,     /* sector name, from the core's config */
    SC_PUB_F_CHANNEL,
    SC_PUB_F_KIND,
    SC_PUB_F_KEY,        /* 'k' + key, or "n" for no key */
    SC_PUB_F_DATA,       /* the data's JSON text */
    SC_PUB_FRAMES
};
#define GROUP_US 1000        /* a group stops filling after ~1 ms */
#define ACKED_GROUP_MAX 64   /* ...or at this size once a child waits in it */
#define GROUP_TARGET_US 3000 /* ...or at the size that takes ~3 ms to sign,
                                journal and send (measured) */
#define RETRY_MS 1000
#define KEEP_BUF 65536       /* slot buffers above this are freed after use */
#define SOURCE_CACHE 16      /* source objects kept per worker */
#define RANDOM_BATCH 1024    /* random bytes fetched at once per worker */
/* the log lines of refused plugin frames, per plugin ("(unknown)" for a
 * sender that is none): a burst, then a few a second, the rest counted
 * (ratelimit.h; docs/security.md) */
#define REFUSED_LOG_BURST 20
#define REFUSED_LOG_PER_SEC 5.0
#define REFUSED_LOG_SOURCES 256

/* One message (or plugin state write) of the group. The slot's buffers
 * are kept from group to group (up to KEEP_BUF each), so a steady stream
 * allocates nothing here. */
typedef struct pending {
    char *buf;                  /* the frames, each NUL-terminated */
    size_t cap;
    size_t off[SC_PUB_FRAMES];
    size_t len[SC_PUB_FRAMES];
    bool is_state;              /* a plugin state write, not a message */
    bool untrusted;             /* from a child process: check again */
    bool failed;                /* could not be signed: err says why */
    unsigned char rid[256];     /* routing id of an acked (child) publish */
    size_t rid_len;
    bool has_rid;
    uint64_t seq;
    char *env;                  /* envelope text (signing worker) */
    size_t env_cap;
    char *jws;                  /* signed bytes (signing worker) */
    size_t jws_cap, jws_len;
    const char *kid;
    double sign_s;              /* how long signing took (signing worker) */
    char err[200];
} pending_t;

#define PART(m, i) ((m)->buf + (m)->off[i])

typedef struct source_entry {
    char *plugin, *sector, *json;
    size_t len;
} source_entry_t;

/* What one signing thread keeps between messages (no sharing). */
typedef struct scratch {
    source_entry_t src[SOURCE_CACHE];
    size_t next;
    unsigned char rnd[RANDOM_BATCH]; /* message ids: one getrandom per
                                        RANDOM_BATCH / 16 messages */
    size_t rnd_left;
} scratch_t;

/* One group; ts and epoch shared by its messages. */
typedef struct group {
    sc_pipeline_t *p;
    pending_t m[GROUP_MAX];
    size_t n;
    char ts[32];
    const char *epoch;
    int64_t t0_us; /* numbered at */
} group_t;

struct sc_pipeline {
    void *xpub;
    void *pull;
    void *pull_ipc;
    sc_journal_t *journal;
    const sc_keyring_t *keyring;
    const sc_supervisor_t *sv;
    char *gateway_id;
    sc_pipeline_commit_fn on_commit;
    void *on_commit_arg;
    sc_workpool_t *pool;
    sc_ratelimit_t *log_refused; /* refused frames' lines, per plugin */
    scratch_t *scratch;          /* one per pool thread + the core */
    int n_scratch;

    /* `fill` is read into; `flight` (NULL: none) was numbered and handed
     * to the signing threads and is committed before `fill`. After a
     * failed commit both are kept (flight first) until the retry. */
    group_t g[2];
    group_t *fill, *flight;
    /* sources the next drain reads (sc_pipeline_sources; then both) */
    bool read_threads, read_children;
    int64_t retry_at_ms; /* journal failure: pause until then */
    uint64_t n_sent;
    double us_per_msg;   /* moving average of a group's cost per message */
};

static void scratch_clear(scratch_t *sc)
{
    for (size_t i = 0; i < SOURCE_CACHE; i++) {
        free(sc->src[i].plugin);
        free(sc->src[i].sector);
        free(sc->src[i].json);
        memset(&sc->src[i], 0, sizeof sc->src[i]);
    }
}

sc_pipeline_t *sc_pipeline_new(const sc_pipeline_env_t *env, char *err,
                               size_t errlen)
{
    sc_pipeline_t *p = calloc(1, sizeof *p);
    if (!p || !(p->gateway_id = strdup(env->gateway_id))) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->xpub = env->xpub;
    p->pull = env->pull;
    p->pull_ipc = env->pull_ipc;
    p->journal = env->journal;
    p->keyring = env->keyring;
    int threads = env->sign_threads;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)(c > 64 ? 64 : c) : 1;
    }
    /* the core thread takes jobs too while it waits: with one signing
     * thread configured it signs alone and no worker is started */
    p->pool = sc_workpool_new(threads - 1, "sign");
    p->g[0].p = p->g[1].p = p;
    p->fill = &p->g[0];
    p->flight = NULL;
    p->read_threads = p->read_children = true;
    p->n_scratch = threads;
    p->scratch = calloc((size_t)threads, sizeof *p->scratch);
    p->log_refused = sc_ratelimit_new("core", REFUSED_LOG_PER_SEC,
                                      REFUSED_LOG_BURST, REFUSED_LOG_SOURCES);
    if (!p->pool || !p->scratch || !p->log_refused) {
        snprintf(err, errlen, "cannot start %d signing thread(s)%s", threads,
                 p->log_refused ? "" : ": out of memory");
        sc_pipeline_destroy(&p);
        return NULL;
    }
    return p;
}

int sc_pipeline_sign_threads(const sc_pipeline_t *p) { return p->n_scratch; }

/* Forget a slot's message; keep its buffers unless they grew large. */
static void pending_clear(pending_t *m)
{
    if (m->cap > KEEP_BUF) {
        free(m->buf);
        m->buf = NULL;
        m->cap = 0;
    }
    if (m->env_cap > KEEP_BUF) {
        free(m->env);
        m->env = NULL;
        m->env_cap = 0;
    }
    if (m->jws_cap > KEEP_BUF) {
        free(m->jws);
        m->jws = NULL;
        m->jws_cap = 0;
    }
    m->is_state = m->untrusted = m->failed = m->has_rid = false;
    m->rid_len = 0;
    m->seq = 0;
    m->jws_len = 0;
    m->kid = NULL;
    m->err[0] = '\0';
}

void sc_pipeline_destroy(sc_pipeline_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    sc_pipeline_t *p = *p_p;
    if (p->flight && p->pool)
        sc_workpool_wait(p->pool);
    sc_workpool_destroy(&p->pool);
    sc_ratelimit_destroy(&p->log_refused);
    for (int g = 0; g < 2; g++)
        for (size_t i = 0; i < GROUP_MAX; i++) {
            free(p->g[g].m[i].buf);
            free(p->g[g].m[i].env);
            free(p->g[g].m[i].jws);
        }
    for (int i = 0; p->scratch && i < p->n_scratch; i++)
        scratch_clear(&p->scratch[i]);
    free(p->scratch);
    free(p->gateway_id);
    free(p);
    *p_p = NULL;
}

void sc_pipeline_set_supervisor(sc_pipeline_t *p, const sc_supervisor_t *sv)
{
    p->sv = sv;
}

void sc_pipeline_set_keyring(sc_pipeline_t *p, const sc_keyring_t *kr,
                             const char *gateway_id)
{
    /* the group in flight was signed with the old keys and points at
     * them: it is committed and sent before they go */
    sc_pipeline_settle(p);
    p->keyring = kr;
    if (gateway_id && strcmp(gateway_id, p->gateway_id) != 0) {
        char *g = strdup(gateway_id);
        if (g) {
            free(p->gateway_id);
            p->gateway_id = g;
            for (int i = 0; i < p->n_scratch; i++)
                scratch_clear(&p->scratch[i]);
        }
    }
}

void sc_pipeline_on_commit(sc_pipeline_t *p, sc_pipeline_commit_fn fn,
                           void *arg)
{
    p->on_commit = fn;
    p->on_commit_arg = arg;
}

void sc_pipeline_flush_log(sc_pipeline_t *p)
{
    if (p)
        sc_ratelimit_flush(p->log_refused);
}

uint64_t sc_pipeline_sent(const sc_pipeline_t *p) { return p->n_sent; }

int64_t sc_pipeline_retry_at(const sc_pipeline_t *p) { return p->retry_at_ms; }

/* Tell a plugin child process what became of its frame (plugin: the
 * child's instance name, for the log). The child counts one ACK per
 * frame; the ROUTER's high-water mark leaves room for every ACK a child
 * can be owed (plugin_host.h, SC_PLUGIN_CHILD_SNDHWM), so a send fails
 * only when the child is gone (its window goes with it) or out of memory,
 * and is then logged. */
static void ack(sc_pipeline_t *p, pending_t *m, const char *what,
                const char *plugin)
{
    if (!m->has_rid || !p->pull_ipc)
        return;
    sc_frame_t f = {.type = SC_FRAME_ACK, .data = {what, strlen(what)}};
    unsigned char *buf = NULL;
    size_t len;
    int rc = sc_frame_encode(&f, &buf, &len);
    if (rc == 0 && (zmq_send(p->pull_ipc, m->rid, m->rid_len,
                             ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                    zmq_send(p->pull_ipc, buf, len, ZMQ_DONTWAIT) < 0))
        rc = -1;
    if (rc != 0 && (buf == NULL || errno != EHOSTUNREACH))
        sc_ratelimit_log(p->log_refused, plugin, SC_L_ERROR,
                         "plugin '%s': ACK of a frame not sent (%s): the "
                         "child's publish window stays one short until it "
                         "restarts", plugin,
                         buf ? zmq_strerror(errno) : "out of memory");
    free(buf);
}

/* Append one frame to the slot's buffer (NUL-terminated). */
static int slot_add(pending_t *m, int idx, const void *d, size_t n,
                    size_t *used)
{
    if (*used + n + 1 > m->cap) {
        size_t cap = (*used + n + 1) * 2;
        if (cap < 512)
            cap = 512;
        char *nb = realloc(m->buf, cap);
        if (!nb)
            return -1;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + *used, d, n);
    m->buf[*used + n] = '\0';
    if (idx < SC_PUB_FRAMES) {
        m->off[idx] = *used;
        m->len[idx] = n;
    }
    *used += n + 1;
    return 0;
}

static int slot_str(pending_t *m, int idx, sc_frame_str_t v, size_t *used)
{
    return slot_add(m, idx, v.ptr ? v.ptr : "", v.ptr ? v.len : 0, used);
}

/* Read one frame from a plugin socket; a publish or state write goes into
 * the group. -1 if nothing is ready (EAGAIN), 0 if one was read (or a bad
 * one discarded). Who sent it is known from the socket, never from the
 * frame: a plugin thread's instance name (inproc, the broker's own code),
 * or a child's credential (its routing id, checked by the supervisor).
 * source.plugin and source.sector come from the running configuration.
 * The data of a plugin thread was parsed by its host (the broker's own
 * code) and is not parsed again; a child's is parsed once, by a signing
 * thread (untrusted). */
static int read_publish(sc_pipeline_t *p, group_t *g, void *sock)
{
    pending_t *m = &g->m[g->n];
    pending_clear(m);
    zmq_msg_t part[2];
    int n = 0, more = 1;
    bool bad = false;
    size_t used = 0;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f);
            if (n == 0)
                return -1;
            bad = true;
            break;
        }
        more = zmq_msg_more(&f);
        if (n < 2)
            part[n] = f; /* moved */
        else
            zmq_msg_close(&f);
        n++;
    }
    const sc_cfg_plugin_t *who = NULL;
    const char *from = "core";
    char name[128] = "";
    if (n >= 1) {
        size_t l = zmq_msg_size(&part[0]);
        if (sock == p->pull_ipc) {
            m->untrusted = true;
            if (l <= sizeof m->rid) {
                m->rid_len = l;
                memcpy(m->rid, zmq_msg_data(&part[0]), l);
                m->has_rid = true;
            }
            who = p->sv ? sc_supervisor_child(p->sv, zmq_msg_data(&part[0]),
                                              l)
                        : NULL;
        } else if (l < sizeof name) {
            memcpy(name, zmq_msg_data(&part[0]), l);
            name[l] = '\0';
            who = p->sv ? sc_supervisor_plugin(p->sv, name) : NULL;
        }
    }
    if (who)
        from = who->name;
    sc_frame_t f;
    char err[128] = "";
    if (bad || n != 2 ||
        sc_frame_decode(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &f,
                        err, sizeof err) != 0) {
        sc_ratelimit_log(p->log_refused, who ? from : "(unknown)",
                         SC_L_ERROR, "discarded malformed frame from %s: %s",
                         who ? from : "an unknown plugin",
                         err[0] ? err : "framing");
        goto refuse;
    }
    if (!who) {
        sc_ratelimit_log(p->log_refused, "(unknown)", SC_L_ERROR,
                         "discarded frame from %s: no such plugin is running",
                         sock == p->pull_ipc
                             ? "a process without a valid credential"
                             : name);
        goto refuse;
    }
    switch (f.type) {
    case SC_FRAME_PUBLISH: {
        char ch[SC_CHANNEL_MAX + 1];
        sc_frame_str_copy(f.channel, ch, sizeof ch); /* checked by decode */
        if (!sc_host_granted((const char *const *)who->channels,
                             who->n_channels, ch)) {
            sc_ratelimit_log(p->log_refused, who->name, SC_L_ERROR,
                             "discarded publish from plugin '%s' to "
                             "'%.200s': not granted",
                             who->name, ch);
            sc_ops_refused(who->name, ch, "not-granted", f.data.len);
            goto refuse;
        }
        const char *sector = who->sector ? who->sector : "";
        char kf = f.key.ptr ? 'k' : 'n';
        bool oom =
            slot_add(m, SC_PUB_F_PLUGIN, who->name, strlen(who->name),
                     &used) ||
            slot_add(m, SC_PUB_F_SECTOR, sector, strlen(sector), &used) ||
            slot_add(m, SC_PUB_F_CHANNEL, ch, strlen(ch), &used) ||
            slot_str(m, SC_PUB_F_KIND, f.kind, &used) ||
            slot_add(m, SC_PUB_F_KEY, &kf, 1, &used);
        if (!oom && f.key.ptr) {
            /* 'k' + key: extend the one-byte part in place */
            used--;
            oom = slot_add(m, SC_PUB_FRAMES, f.key.ptr, f.key.len, &used);
            m->len[SC_PUB_F_KEY] = 1 + f.key.len;
        }
        if (oom || slot_str(m, SC_PUB_F_DATA, f.data, &used)) {
            sc_log(SC_L_ERROR, who->name, "out of memory");
            goto refuse;
        }
        break;
    }
    case SC_FRAME_STATE_PUT:
    case SC_FRAME_STATE_DEL: {
        /* [name][-][key]['v' value | "d"]: a plugin writes only its own
         * state, under the name the core knows it by */
        char vf = f.type == SC_FRAME_STATE_PUT ? 'v' : 'd';
        if (slot_add(m, 0, who->name, strlen(who->name), &used) ||
            slot_add(m, 1, "-", 1, &used) || slot_str(m, 2, f.key, &used) ||
            slot_add(m, 3, &vf, 1, &used)) {
            sc_log(SC_L_ERROR, who->name, "out of memory");
            goto refuse;
        }
        if (f.data.len) {
            used--;
            if (slot_add(m, SC_PUB_FRAMES, f.data.ptr, f.data.len, &used)) {
                sc_log(SC_L_ERROR, who->name, "out of memory");
                goto refuse;
            }
            m->len[3] = 1 + f.data.len;
        }
        m->is_state = true;
        break;
    }
    case SC_FRAME_SINK_ACK:
    case SC_FRAME_SINK_NACK: {
        char ch[SC_CHANNEL_MAX + 1];
        sc_frame_str_copy(f.channel, ch, sizeof ch);
        if (f.type == SC_FRAME_SINK_ACK)
            sc_plugin_sink_acked(who->name, ch, f.seq, 0);
        else
            sc_plugin_sink_acked(who->name, ch, 0, f.seq);
        ack(p, m, SC_PUB_ACK_OK, who->name);
        goto done;
    }
    case SC_FRAME_REFUSED: {
        /* a publish the child's host refused: counted, never answered */
        char ch[SC_CHANNEL_MAX + 1] = "", why[33] = "invalid";
        if (f.channel.ptr)
            sc_frame_str_copy(f.channel, ch, sizeof ch);
        sc_frame_str_copy(f.kind, why, sizeof why);
        sc_ops_refused(who->name, ch, why, (size_t)f.seq);
        goto done;
    }
    case SC_FRAME_PONG:
        if (m->has_rid)
            sc_supervisor_pong((sc_supervisor_t *)p->sv, m->rid, m->rid_len,
                               f.seq);
        goto done;
    default:
        sc_ratelimit_log(p->log_refused, who->name, SC_L_ERROR,
                         "discarded frame of type '%c' from plugin '%s': not "
                         "expected from a plugin",
                         (char)f.type, who->name);
        goto refuse;
    }
    zmq_msg_close(&part[0]);
    zmq_msg_close(&part[1]);
    g->n++;
    return 0;
refuse:
    ack(p, m, SC_PUB_ACK_REFUSED, who ? who->name : "(unknown)");
done:
    for (int i = 0; i < n && i < 2; i++)
        zmq_msg_close(&part[i]);
    pending_clear(m);
    return 0;
}

/* ------------------------------------------------------------------ */
/* signing workers: one message each, its own slot only                */

/* A child's data, parsed once (the child is not trusted; its channel,
 * kind and key syntax were checked by the frame decoder). */
static const char *untrusted_problem(pending_t *m)
{
    return sc_json_object_check(PART(m, SC_PUB_F_DATA),
                                m->len[SC_PUB_F_DATA], NULL, 0) == 0
               ? NULL
               : "data not a JSON object";
}

/* The source object's text for (plugin, sector), cached per thread. */
static const source_entry_t *source_for(sc_pipeline_t *p, scratch_t *sc,
                                        const char *plugin,
                                        const char *sector)
{
    for (size_t i = 0; i < SOURCE_CACHE; i++)
        if (sc->src[i].json && strcmp(sc->src[i].plugin, plugin) == 0 &&
            strcmp(sc->src[i].sector, sector) == 0)
            return &sc->src[i];
    source_entry_t *e = &sc->src[sc->next];
    sc->next = (sc->next + 1) % SOURCE_CACHE;
    free(e->plugin);
    free(e->sector);
    free(e->json);
    memset(e, 0, sizeof *e);
    json_t *o = json_pack("{s:s, s:s, s:s}", "gateway", p->gateway_id,
                          "plugin", plugin, "sector", sector);
    e->json = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    e->plugin = strdup(plugin);
    e->sector = strdup(sector);
    if (!e->json || !e->plugin || !e->sector) {
        free(e->plugin);
        free(e->sector);
        free(e->json);
        memset(e, 0, sizeof *e);
        return NULL;
    }
    e->len = strlen(e->json);
    return e;
}

static void sign_job(void *arg, size_t i, int worker)
{
    group_t *g = arg;
    sc_pipeline_t *p = g->p;
    pending_t *m = &g->m[i];
    if (m->is_state)
        return;
    const char *problem = m->untrusted ? untrusted_problem(m) : NULL;
    if (problem) {
        snprintf(m->err, sizeof m->err, "%s", problem);
        m->failed = true;
        return;
    }
    scratch_t *sc = &p->scratch[worker < p->n_scratch ? worker : 0];
    const source_entry_t *src = source_for(p, sc, PART(m, SC_PUB_F_PLUGIN),
                                           PART(m, SC_PUB_F_SECTOR));
    const char *channel = PART(m, SC_PUB_F_CHANNEL);
    const sc_jws_signer_t *signer = sc_keyring_signer_for(p->keyring,
                                                          channel);
    const char *keyf = PART(m, SC_PUB_F_KEY);
    char id[33];
    if (sc->rnd_left < 16) {
        randombytes_buf(sc->rnd, sizeof sc->rnd);
        sc->rnd_left = sizeof sc->rnd;
    }
    sodium_bin2hex(id, sizeof id, sc->rnd + sizeof sc->rnd - sc->rnd_left,
                   16);
    sc->rnd_left -= 16;
    sc_envelope_text_in_t in = {
        .id = id,
        .channel = channel,
        .epoch = g->epoch,
        .seq = m->seq,
        .ts = g->ts,
        .kind = PART(m, SC_PUB_F_KIND),
        .key = keyf[0] == 'k' ? keyf + 1 : NULL,
        .source_json = src ? src->json : NULL,
        .source_len = src ? src->len : 0,
        .data_json = PART(m, SC_PUB_F_DATA),
        .data_len = m->len[SC_PUB_F_DATA],
    };
    size_t env_len = 0;
    double t0 = sc_ops_now();
    if (!src || !signer ||
        sc_envelope_text(&in, &m->env, &m->env_cap, &env_len) != 0 ||
        sc_jws_signer_sign(signer, m->env, env_len, &m->jws, &m->jws_cap,
                           &m->jws_len) != 0) {
        snprintf(m->err, sizeof m->err, "out of memory");
        m->failed = true;
        return;
    }
    m->kid = sc_jws_signer_kid(signer);
    m->sign_s = sc_ops_now() - t0;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Drop the messages that could not be signed (rare: the plugin host
 * checks what it can), acking their senders. */
static void drop_failed(sc_pipeline_t *p, group_t *g)
{
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        pending_t *m = &g->m[i];
        if (!m->failed) {
            if (k != i) {
                pending_t t = g->m[k];
                g->m[k] = *m;
                *m = t;
            }
            k++;
            continue;
        }
        sc_ratelimit_log(p->log_refused, PART(m, SC_PUB_F_PLUGIN),
                         SC_L_ERROR,
                         "plugin '%s': message for %s dropped: %s",
                         PART(m, SC_PUB_F_PLUGIN),
                         PART(m, SC_PUB_F_CHANNEL), m->err);
        sc_ops_refused(PART(m, SC_PUB_F_PLUGIN), PART(m, SC_PUB_F_CHANNEL),
                       "cannot-sign", m->len[SC_PUB_F_DATA]);
        ack(p, m, SC_PUB_ACK_REFUSED, PART(m, SC_PUB_F_PLUGIN));
        pending_clear(m);
    }
    g->n = k;
}

/* Number the group's messages (seqs in read order per channel) and give
 * it its timestamp; nothing is written. */
static int number(sc_pipeline_t *p, group_t *g, char *err, size_t errlen)
{
    g->t0_us = mono_us();
    for (size_t i = 0; i < g->n; i++) {
        pending_t *m = &g->m[i];
        m->failed = false;
        if (m->is_state)
            continue;
        m->seq = sc_journal_next_seq(p->journal, PART(m, SC_PUB_F_CHANNEL));
        if (m->seq == 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    sc_now_rfc3339(g->ts);
    g->epoch = sc_journal_epoch(p->journal);
    return 0;
}

static bool any_failed(const group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->m[i].failed)
            return true;
    return false;
}

/* A failed commit: the journal gave back every seq not committed (this
 * group's and the next one's); publishing pauses until the retry. */
static void commit_failed(sc_pipeline_t *p, group_t *g, const char *err)
{
    sc_journal_rollback(p->journal);
    sc_ops_journal(err);
    sc_log(SC_L_ERROR, "journal",
           "cannot journal %zu message(s): %s; publishing paused, retrying "
           "in %d ms (nothing is sent before it is journaled)",
           g->n, err, RETRY_MS);
    p->retry_at_ms = sc_mono_ms() + RETRY_MS;
}

/* Journal a numbered and signed group in one transaction; on success send
 * it, ack its senders and empty it. */
static int commit_send(sc_pipeline_t *p, group_t *g)
{
    char err[512];
    if (g->n == 0)
        return 0;
    if (sc_journal_begin(p->journal, err, sizeof err) != 0)
        goto fail;
    for (size_t i = 0; i < g->n; i++) {
        pending_t *m = &g->m[i];
        if (m->is_state) {
            const char *v = PART(m, 3);
            if (sc_journal_state_put(p->journal, PART(m, 0), PART(m, 2),
                                     v[0] == 'v' ? v + 1 : NULL, err,
                                     sizeof err) != 0)
                goto fail;
            continue;
        }
        const char *keyf = PART(m, SC_PUB_F_KEY);
        if (sc_journal_append(p->journal, PART(m, SC_PUB_F_CHANNEL), m->seq,
                              PART(m, SC_PUB_F_KIND),
                              keyf[0] == 'k' ? keyf + 1 : NULL, g->ts,
                              m->kid, m->jws, m->jws_len, err,
                              sizeof err) != 0)
            goto fail;
    }
    if (sc_journal_commit(p->journal, err, sizeof err) != 0)
        goto fail;
    sc_ops_journal(NULL);
    sc_ops_group(g->n, (double)(mono_us() - g->t0_us) / 1e6);

    /* durable: now send. XPUB never blocks; a subscriber over its HWM
     * loses the message and repairs the gap by replay. The metrics and
     * the status hear of each run of one plugin's messages on one channel
     * once (run_*), not of every message: their locks are shared with
     * the threads that render them. */
    size_t n_msg = 0;
    const char *run_ch = NULL, *run_pl = NULL;
    uint64_t run_n = 0, run_head = 0;
    size_t run_bytes = 0;
    for (size_t i = 0; i < g->n; i++) {
        pending_t *m = &g->m[i];
        if (m->is_state)
            continue;
        const char *channel = PART(m, SC_PUB_F_CHANNEL);
        const char *plugin = PART(m, SC_PUB_F_PLUGIN);
        char topic[SC_CHANNEL_MAX + 2];
        int tl = sc_channel_topic(channel, topic, sizeof topic);
        if (tl > 0 &&
            zmq_send(p->xpub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) ==
                tl)
            zmq_send(p->xpub, m->jws, m->jws_len, ZMQ_DONTWAIT);
        p->n_sent++;
        n_msg++;
        sc_ops_signed(m->sign_s);
        if (run_n && (strcmp(run_ch, channel) || strcmp(run_pl, plugin))) {
            sc_ops_published(run_ch, run_pl, run_head, run_n, run_bytes);
            run_n = 0;
            run_bytes = 0;
        }
        run_ch = channel;
        run_pl = plugin;
        run_n++;
        run_head = m->seq;
        run_bytes += m->jws_len;
        if (sc_log_enabled(SC_L_DEBUG)) {
            const char *keyf = PART(m, SC_PUB_F_KEY);
            sc_log(SC_L_DEBUG, plugin, "%s seq %llu %s key %s", channel,
                   (unsigned long long)m->seq, PART(m, SC_PUB_F_KIND),
                   keyf[0] == 'k' ? keyf + 1 : "-");
        }
    }
    if (run_n)
        sc_ops_published(run_ch, run_pl, run_head, run_n, run_bytes);
    /* the slots' text (run_ch, run_pl) is used up to here */
    for (size_t i = 0; i < g->n; i++) {
        ack(p, &g->m[i], SC_PUB_ACK_OK, PART(&g->m[i], SC_PUB_F_PLUGIN));
        pending_clear(&g->m[i]);
    }
    if (p->on_commit && n_msg)
        p->on_commit(p->on_commit_arg, n_msg);
    double per = (double)(mono_us() - g->t0_us) / (double)g->n;
    p->us_per_msg = p->us_per_msg > 0 ? 0.8 * p->us_per_msg + 0.2 * per
                                       : per;
    g->n = 0;
    p->retry_at_ms = 0;
    return 0;
fail:
    commit_failed(p, g, err);
    return -1;
}

static int flush_now(sc_pipeline_t *p, group_t *g);

/* Commit a numbered and signed group. A message that could not be signed
 * (rare) is dropped first, after the journal gave back every seq not
 * committed, and the rest is numbered and signed again: only when nothing
 * is numbered after this group. */
static int commit_signed(sc_pipeline_t *p, group_t *g)
{
    if (!any_failed(g))
        return commit_send(p, g);
    sc_journal_rollback(p->journal);
    drop_failed(p, g);
    return flush_now(p, g);
}

/* Number, sign (on every signing thread, the core's included) and commit
 * one group, nothing else in flight. */
static int flush_now(sc_pipeline_t *p, group_t *g)
{
    char err[512];
    if (g->n == 0)
        return 0;
    if (number(p, g, err, sizeof err) != 0) {
        commit_failed(p, g, err);
        return -1;
    }
    sc_workpool_run(p->pool, sign_job, g, g->n);
    return commit_signed(p, g);
}

/* Commit whatever is kept (after a failure, the flight group first, then
 * the fill group): in order, each numbered and signed again. */
static int flush_kept(sc_pipeline_t *p)
{
    if (p->flight) {
        /* its seqs were given back by the rollback */
        if (flush_now(p, p->flight) != 0)
            return -1;
        p->flight = NULL;
    }
    return flush_now(p, p->fill);
}

void sc_pipeline_sources(sc_pipeline_t *p, bool threads, bool children)
{
    p->read_threads = threads;
    p->read_children = children;
}

/* Nothing in flight afterwards (unless its commit failed: it stays in
 * flight, publishing paused, and the retry flushes it). */
void sc_pipeline_settle(sc_pipeline_t *p)
{
    if (!p || !p->flight || p->retry_at_ms != 0)
        return;
    sc_workpool_wait(p->pool);
    if (commit_signed(p, p->flight) == 0)
        p->flight = NULL;
}

bool sc_pipeline_drain(sc_pipeline_t *p)
{
    if (p->retry_at_ms != 0)
        return false;
    /* fill one group: one message from each source in turn (the plugin
     * threads' PULL fair-queues between the plugin threads, the children's
     * ROUTER between the children), until both are empty, the group is
     * full or about a millisecond has passed */
    group_t *f = p->fill;
    int64_t t0 = mono_us();
    bool more = false, acked = false;
    size_t cap = GROUP_MAX;
    if (p->us_per_msg > 0) {
        double c = GROUP_TARGET_US / p->us_per_msg;
        cap = c < 16 ? 16 : c > GROUP_MAX ? GROUP_MAX : (size_t)c;
    }
    /* a source found empty is not asked again for this group: an empty
     * non-blocking read costs libzmq two system calls (its mailbox's poll
     * and fork check), which at full speed were two per message */
    bool threads_left = p->read_threads,
         children_left = p->pull_ipc != NULL && p->read_children;
    p->read_threads = p->read_children = true;
    for (unsigned it = 1; f->n < cap; it++) {
        int got = 0;
        if (threads_left) {
            if (read_publish(p, f, p->pull) == 0)
                got++;
            else
                threads_left = false;
        }
        if (children_left && f->n < GROUP_MAX) {
            size_t before = f->n;
            if (read_publish(p, f, p->pull_ipc) == 0) {
                got++;
                acked = acked || f->n > before;
            } else {
                children_left = false;
            }
        }
        if (!got)
            break;
        /* a child's frames ride a small group, so that they commit
         * within a few ms even while a thread plugin publishes at full
         * speed (a child has at most SC_PLUGIN_CHILD_WINDOW frames in
         * flight before it waits for their acks) */
        if (f->n >= cap || (acked && f->n >= ACKED_GROUP_MAX) ||
            ((it & 7) == 0 && mono_us() - t0 >= GROUP_US)) {
            more = true;
            break;
        }
    }
    if (f->n == 0 && !p->flight)
        return false;
    char err[512];
    group_t *s = p->flight;
    if (s) {
        /* the group before: signed by now (the core helps with the
         * rest); an unsigned message in it is dropped before f is
         * numbered, so that its seq can be given back */
        sc_workpool_wait(p->pool);
        if (any_failed(s)) {
            if (commit_signed(p, s) != 0)
                return false; /* s and f kept */
            p->flight = s = NULL;
        }
    }
    /* number f and, while more is coming, hand it to the signing threads
     * before committing s: they sign it while this thread journals, and
     * it stays in flight until the next call */
    bool async = more && sc_workpool_threads(p->pool) > 0;
    if (f->n) {
        if (number(p, f, err, sizeof err) != 0) {
            /* out of memory: s is committed if it can be, f kept */
            if (s && commit_send(p, s) == 0)
                p->flight = NULL;
            if (p->retry_at_ms == 0)
                commit_failed(p, f, err);
            return false;
        }
        if (async)
            sc_workpool_start(p->pool, sign_job, f, f->n);
    }
    if (s) {
        if (commit_send(p, s) != 0) {
            if (async && f->n)
                sc_workpool_wait(p->pool); /* its seqs are void too */
            return false; /* s (flight) and f (fill) kept */
        }
        p->flight = NULL;
    }
    if (f->n == 0)
        return more;
    if (async) {
        p->flight = f;
        p->fill = f == &p->g[0] ? &p->g[1] : &p->g[0];
        return true;
    }
    /* light load: sign, commit and send now */
    sc_workpool_run(p->pool, sign_job, f, f->n);
    return commit_signed(p, f) == 0 && more;
}

void sc_pipeline_retry(sc_pipeline_t *p)
{
    if (p->retry_at_ms != 0 && sc_mono_ms() >= p->retry_at_ms) {
        p->retry_at_ms = 0;
        flush_kept(p);
    }
}

void sc_pipeline_finish(sc_pipeline_t *p)
{
    sc_pipeline_settle(p);
    for (int tries = 0; (p->flight || p->fill->n) && tries < 5; tries++) {
        p->retry_at_ms = 0;
        if (flush_kept(p) != 0)
            usleep(200000);
    }
    size_t left = p->fill->n + (p->flight ? p->flight->n : 0);
    if (left)
        sc_log(SC_L_ERROR, "journal",
               "%zu accepted message(s) could not be journaled before exit",
               left);
}
