/*
 * broker.c - see broker.h.
 *
 * One loop (zmq_poll) on the core thread serves, in this order of
 * priority: signals, ZAP requests (a handshake waits on them), XPUB
 * subscription messages (each granted or refused before the next recv,
 * because ZMQ_SUBSCRIBE on an XPUB_MANUAL socket applies to the pipe of the
 * last message received), and publishes from the plugins.
 *
 * Publishes are handled in groups: everything ready (up to GROUP_MAX) is
 * sequenced, signed and appended to the journal in one transaction; only
 * after the commit succeeds is the group sent. If the journal cannot be
 * written, the group is kept, the core stops reading from the plugins
 * (whose sockets then block at their high-water mark) and retries: a
 * message a plugin was told was accepted is never dropped.
 */
#include "broker.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "access.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "journal.h"
#include "keyring.h"
#include "log.h"
#include "plugin_host.h"
#include "ratelimit.h"
#include "service.h"
#include "supervisor.h"

#define CORE_ENDPOINT "inproc://sectorcast-core"
#define GROUP_MAX 1024
#define RETRY_MS 1000
#define PLUGIN_STOP_MS 5000
#define MAX_FRAME_BYTES (8 * 1024 * 1024)
#define PRUNE_EVERY_MS 60000
#define HEARTBEAT_TAG "sc-heartbeat-v1"
/* subscription log lines per agency (ratelimit.h): refusals, and, more
 * generously, grants and unsubscribes (an agency cycling them) */
#define SUB_LOG_PER_SEC 2.0
#define SUB_LOG_BURST 20
#define SUB_OK_LOG_PER_SEC 10.0
#define SUB_OK_LOG_BURST 100
#define SUB_LOG_SOURCES 256
#define LOG_FLUSH_MS 1000

typedef struct pending {
    char *parts[SC_PUB_FRAMES]; /* NUL-terminated copies of the frames */
    bool is_state;              /* a plugin state write, not a message */
    void *rid;                  /* routing id of an acked (child) publish */
    size_t rid_len;
    json_t *data;
    char *jws;
    size_t jws_len;
    uint64_t seq;
    char ts[32];
} pending_t;

/* The subtrees granted on one connection (by its fd): libzmq keeps a
 * connection's subscriptions as a set, and so do we, to bound them. */
typedef struct conn_subs {
    char **subs;
    size_t n;
} conn_subs_t;

static void conn_clear(conn_subs_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->subs[i]);
    free(c->subs);
    c->subs = NULL;
    c->n = 0;
}

static long conn_find(const conn_subs_t *c, const char *t, size_t tl)
{
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->subs[i]) == tl && memcmp(c->subs[i], t, tl) == 0)
            return (long)i;
    return -1;
}

static bool conn_add(conn_subs_t *c, const char *t, size_t tl)
{
    char **v = realloc(c->subs, (c->n + 1) * sizeof *v);
    if (!v)
        return false;
    c->subs = v;
    if (!(v[c->n] = strndup(t, tl)))
        return false;
    c->n++;
    return true;
}

struct sc_broker {
    sc_config_t *cfg;
    void *zctx;
    void *zap;
    void *xpub;
    void *pull;
    int sigfd;
    sc_journal_t *journal;
    sc_keyring_t *keyring;
    sc_access_t *access;
    sc_service_t *service;
    void *xpub_mon;          /* monitor of the XPUB: disconnects */
    conn_subs_t *subs_per_fd; /* granted subscriptions per connection */
    size_t subs_cap;
    int64_t next_heartbeat_ms;
    int64_t next_prune_ms;
    sc_supervisor_t *sv;
    void *pull_ipc;          /* publishes from plugin child processes */
    char ipc_path[256];

    pending_t group[GROUP_MAX];
    size_t n_group;
    int64_t retry_at_ms; /* journal failure: pause until then */

    uint64_t n_sent;
    uint64_t n_subs_granted;
    uint64_t n_subs_refused;
    sc_ratelimit_t *log_subs;     /* refused subscriptions, per agency */
    sc_ratelimit_t *log_subs_ok;  /* granted/withdrawn, per agency */
    int64_t next_log_flush_ms;
};

static void prune(sc_broker_t *b);
static int check_kid(void *arg, const char *kid, uint64_t count);

/* ------------------------------------------------------------------ */
/* plugins                                                             */

int sc_broker_check_plugins(sc_config_t *cfg, sc_diag_t *diag)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        sc_cfg_plugin_t *p = &cfg->plugins[i];
        sc_plugin_lib_t lib;
        char err[1024];
        if (sc_plugin_lib_open(p->path, &lib, err, sizeof err) != 0) {
            sc_diag_add(diag, cfg->path, p->line, "plugin '%s': %s", p->name,
                        err);
            bad++;
            continue;
        }
        if (sc_config_check_plugin_settings(cfg, p, lib.desc->settings,
                                            diag) != 0)
            bad++;
        sc_plugin_lib_close(&lib);
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* publish pipeline                                                    */

static void pending_clear(pending_t *m)
{
    for (int i = 0; i < SC_PUB_FRAMES; i++)
        free(m->parts[i]);
    free(m->rid);
    json_decref(m->data);
    free(m->jws);
    memset(m, 0, sizeof *m);
}

/* Tell a plugin child process what became of its publish. */
static void ack(sc_broker_t *b, pending_t *m, const char *what)
{
    if (!m->rid || !b->pull_ipc)
        return;
    if (zmq_send(b->pull_ipc, m->rid, m->rid_len,
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(b->pull_ipc, what, strlen(what), ZMQ_DONTWAIT);
}

/* Read one publish from the PULL socket into the group. -1 if nothing is
 * ready (EAGAIN), 0 if one was read (or a malformed one discarded). */
static int read_publish(sc_broker_t *b, void *sock)
{
    pending_t *m = &b->group[b->n_group];
    memset(m, 0, sizeof *m);
    int nf = 0, more = 1, bad = 0;
    if (sock == b->pull_ipc) {
        /* ROUTER: the first frame is the child's routing id */
        zmq_msg_t r;
        zmq_msg_init(&r);
        if (zmq_msg_recv(&r, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&r);
            return -1;
        }
        more = zmq_msg_more(&r);
        m->rid_len = zmq_msg_size(&r);
        m->rid = malloc(m->rid_len ? m->rid_len : 1);
        if (m->rid)
            memcpy(m->rid, zmq_msg_data(&r), m->rid_len);
        zmq_msg_close(&r);
        if (!m->rid || !more)
            bad = 1;
    }
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock,
                         nf == 0 && !m->rid ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f);
            if (nf == 0 && !m->rid)
                return -1;
            bad = 1;
            break;
        }
        more = zmq_msg_more(&f);
        if (nf < SC_PUB_FRAMES) {
            size_t n = zmq_msg_size(&f);
            m->parts[nf] = malloc(n + 1);
            if (m->parts[nf]) {
                memcpy(m->parts[nf], zmq_msg_data(&f), n);
                m->parts[nf][n] = '\0';
            } else {
                bad = 1;
            }
        }
        nf++;
        zmq_msg_close(&f);
    }
    if (!bad && nf == SC_STATE_FRAMES &&
        strcmp(m->parts[1], "state") == 0 &&
        (m->parts[3][0] == 'v' || strcmp(m->parts[3], "d") == 0)) {
        /* a child may only write its own state: the name is checked */
        if (sock == b->pull_ipc &&
            !sc_supervisor_may_publish(b->sv, m->parts[0], NULL)) {
            sc_log(SC_L_ERROR, "core",
                   "discarded state write from unknown plugin process "
                   "'%.64s'",
                   m->parts[0]);
            ack(b, m, SC_PUB_ACK_REFUSED);
            pending_clear(m);
            return 0;
        }
        m->is_state = true;
        b->n_group++;
        return 0;
    }
    if (bad || nf != SC_PUB_FRAMES) {
        /* cannot happen with our own plugin host; never trust it blindly */
        sc_log(SC_L_ERROR, "core", "discarded malformed internal publish "
               "(%d frames)", nf);
        ack(b, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    /* a plugin child process is not trusted: check its grant again */
    if (sock == b->pull_ipc &&
        (!sc_channel_valid(m->parts[SC_PUB_F_CHANNEL]) ||
         !sc_supervisor_may_publish(b->sv, m->parts[SC_PUB_F_PLUGIN],
                                    m->parts[SC_PUB_F_CHANNEL]))) {
        sc_log(SC_L_ERROR, "core",
               "discarded publish from plugin process '%.64s' to '%.200s': "
               "not granted",
               m->parts[SC_PUB_F_PLUGIN], m->parts[SC_PUB_F_CHANNEL]);
        ack(b, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    json_error_t je;
    m->data = json_loads(m->parts[SC_PUB_F_DATA], 0, &je);
    if (!m->data || !json_is_object(m->data)) {
        sc_log(SC_L_ERROR, m->parts[SC_PUB_F_PLUGIN],
               "discarded publish to %s: data not a JSON object",
               m->parts[SC_PUB_F_CHANNEL]);
        ack(b, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    b->n_group++;
    return 0;
}

/* Sequence, sign and journal the whole group; on success send it. */
static int flush_group(sc_broker_t *b)
{
    if (b->n_group == 0)
        return 0;
    char err[512];
    if (sc_journal_begin(b->journal, err, sizeof err) != 0)
        goto fail;
    for (size_t i = 0; i < b->n_group; i++) {
        pending_t *m = &b->group[i];
        if (m->is_state) {
            const char *v = m->parts[3];
            if (sc_journal_state_put(b->journal, m->parts[0], m->parts[2],
                                     v[0] == 'v' ? v + 1 : NULL, err,
                                     sizeof err) != 0)
                goto fail;
            continue;
        }
        const char *channel = m->parts[SC_PUB_F_CHANNEL];
        const char *keyf = m->parts[SC_PUB_F_KEY];
        const char *key = keyf[0] == 'k' ? keyf + 1 : NULL;
        free(m->jws);
        m->jws = NULL;
        m->seq = sc_journal_next_seq(b->journal, channel);
        if (m->seq == 0) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        sc_now_rfc3339(m->ts);
        json_t *source = json_pack("{s:s, s:s, s:s}", "gateway",
                                   b->cfg->gateway_id, "plugin",
                                   m->parts[SC_PUB_F_PLUGIN], "sector",
                                   m->parts[SC_PUB_F_SECTOR]);
        sc_envelope_in_t in = {
            .channel = channel,
            .epoch = sc_journal_epoch(b->journal),
            .seq = m->seq,
            .id = NULL,
            .ts = m->ts,
            .kind = m->parts[SC_PUB_F_KIND],
            .key = key,
            .source = source,
            .data = m->data,
        };
        const sc_sigkey_t *k = sc_keyring_for(b->keyring, channel);
        int rc = source ? sc_envelope_sign(&in, k, &m->jws, &m->jws_len, err,
                                           sizeof err)
                        : -1;
        json_decref(source);
        if (rc != 0) {
            /* this message can never be signed (the plugin host checked
             * what it could): drop it alone, give its seq back, and keep
             * the rest of the group */
            sc_log(SC_L_ERROR, m->parts[SC_PUB_F_PLUGIN],
                   "cannot sign message for %s: %s; dropped", channel,
                   source ? err : "out of memory");
            sc_journal_release_seq(b->journal, channel, m->seq);
            ack(b, m, SC_PUB_ACK_REFUSED);
            pending_clear(m);
            memmove(m, m + 1, (b->n_group - i - 1) * sizeof *m);
            b->n_group--;
            i--;
            continue;
        }
        if (sc_journal_append(b->journal, channel, m->seq, in.kind, key,
                              m->ts, sc_sigkey_kid(k), m->jws, m->jws_len, err,
                              sizeof err) != 0)
            goto fail;
    }
    if (sc_journal_commit(b->journal, err, sizeof err) != 0)
        goto fail;

    /* durable: now send. XPUB never blocks; a subscriber over its HWM
     * loses the message and repairs the gap by replay. */
    for (size_t i = 0; i < b->n_group; i++) {
        pending_t *m = &b->group[i];
        if (m->is_state) {
            ack(b, m, SC_PUB_ACK_OK);
            pending_clear(m);
            continue;
        }
        char topic[SC_CHANNEL_MAX + 2];
        int tl = sc_channel_topic(m->parts[SC_PUB_F_CHANNEL], topic,
                                  sizeof topic);
        if (tl > 0 &&
            zmq_send(b->xpub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) ==
                tl)
            zmq_send(b->xpub, m->jws, m->jws_len, ZMQ_DONTWAIT);
        b->n_sent++;
        if (sc_log_enabled(SC_L_DEBUG))
            sc_log(SC_L_DEBUG, m->parts[SC_PUB_F_PLUGIN],
                   "%s seq %llu %s key %s", m->parts[SC_PUB_F_CHANNEL],
                   (unsigned long long)m->seq, m->parts[SC_PUB_F_KIND],
                   m->parts[SC_PUB_F_KEY][0] == 'k'
                       ? m->parts[SC_PUB_F_KEY] + 1
                       : "-");
        ack(b, m, SC_PUB_ACK_OK);
        pending_clear(m);
    }
    b->n_group = 0;
    b->retry_at_ms = 0;
    return 0;
fail:
    sc_journal_rollback(b->journal);
    sc_log(SC_L_ERROR, "journal",
           "cannot journal %zu message(s): %s; publishing paused, retrying "
           "in %d ms (nothing is sent before it is journaled)",
           b->n_group, err, RETRY_MS);
    b->retry_at_ms = sc_mono_ms() + RETRY_MS;
    return -1;
}

/* Take everything pending from the plugins and journal + send it. */
static void drain(void *arg)
{
    sc_broker_t *b = arg;
    if (b->retry_at_ms != 0 && sc_mono_ms() < b->retry_at_ms)
        return;
    for (int round = 0; round < 64; round++) {
        while (b->n_group < GROUP_MAX && read_publish(b, b->pull) == 0)
            ;
        while (b->pull_ipc && b->n_group < GROUP_MAX &&
               read_publish(b, b->pull_ipc) == 0)
            ;
        if (b->n_group == 0 || flush_group(b) != 0)
            break;
    }
}

/* ------------------------------------------------------------------ */
/* subscriptions                                                       */

static void handle_subscription(sc_broker_t *b)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, b->xpub, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    /* drain any further frames: a subscription is a single frame */
    int extra = 0;
    while (zmq_msg_more(&m)) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, b->xpub, 0) < 0) {
            zmq_msg_close(&x);
            break;
        }
        extra = 1;
        int more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        if (!more)
            break;
    }
    const unsigned char *d = zmq_msg_data(&m);
    size_t n = zmq_msg_size(&m);
    /* ZeroMQ sets errno EINVAL when the property is absent: an
     * unsubscribe generated by a disconnect carries no User-Id. */
    const char *user = zmq_msg_gets(&m, "User-Id");
    if (n == 0 || extra || (d[0] != 0 && d[0] != 1)) {
        b->n_subs_refused++;
        sc_ratelimit_log(b->log_subs, user, SC_L_WARN,
                         "ignored malformed subscription message from '%s'",
                         user ? user : "?");
        zmq_msg_close(&m);
        return;
    }
    const char *topic = (const char *)d + 1;
    size_t tl = n - 1;
    int tshow = tl > 120 ? 120 : (int)tl;
    /* the connection it came from: subscriptions are bounded per
     * connection (libzmq keeps them as a set per pipe) */
    int fd = zmq_msg_get(&m, ZMQ_SRCFD);
    conn_subs_t *conn = NULL;
    if (fd >= 0 && (size_t)fd < 1u << 20) {
        if ((size_t)fd >= b->subs_cap) {
            size_t cap = (size_t)fd + 64;
            conn_subs_t *v = realloc(b->subs_per_fd, cap * sizeof *v);
            if (v) {
                memset(v + b->subs_cap, 0, (cap - b->subs_cap) * sizeof *v);
                b->subs_per_fd = v;
                b->subs_cap = cap;
            }
        }
        if ((size_t)fd < b->subs_cap)
            conn = &b->subs_per_fd[fd];
    }
    long known = conn ? conn_find(conn, topic, tl) : -1;
    if (d[0] == 0) {
        /* only what was granted on this connection can be withdrawn */
        if (user && known >= 0) {
            free(conn->subs[known]);
            conn->subs[known] = conn->subs[--conn->n];
            zmq_setsockopt(b->xpub, ZMQ_UNSUBSCRIBE, topic, tl);
            sc_ratelimit_log(b->log_subs_ok, user, SC_L_INFO,
                             "agency '%s' unsubscribed %.*s", user, tshow,
                             topic);
        } else if (user && !conn && sc_subtree_valid(topic, tl)) {
            zmq_setsockopt(b->xpub, ZMQ_UNSUBSCRIBE, topic, tl);
        }
        zmq_msg_close(&m);
        return;
    }
    if (known >= 0) {
        /* a repeat: libzmq's set already has it; nothing to count */
        zmq_setsockopt(b->xpub, ZMQ_SUBSCRIBE, topic, tl);
        zmq_msg_close(&m);
        return;
    }
    const sc_agency_t *ag = user ? sc_access_agency(b->access, user) : NULL;
    bool valid = sc_subtree_valid(topic, tl);
    bool over = conn && conn->n >= (size_t)b->cfg->max_subscriptions;
    if (ag && valid && !over && sc_agency_may_read(ag, topic, tl) &&
        (!conn || conn_add(conn, topic, tl))) {
        zmq_setsockopt(b->xpub, ZMQ_SUBSCRIBE, topic, tl);
        b->n_subs_granted++;
        sc_ratelimit_log(b->log_subs_ok, user, SC_L_INFO,
                         "agency '%s' subscribed %.*s", user, tshow, topic);
    } else {
        b->n_subs_refused++;
        /* print only safe characters of a hostile topic */
        char shown[128];
        size_t k = 0;
        for (size_t i = 0; i < tl && k + 1 < sizeof shown; i++)
            shown[k++] = (topic[i] >= 0x20 && topic[i] < 0x7f) ? topic[i]
                                                               : '?';
        shown[k] = '\0';
        sc_ratelimit_log(b->log_subs, user, SC_L_WARN,
               "refused subscription '%s' of agency '%s': %s", shown,
               user ? user : "?",
               !ag     ? "unknown agency"
               : !valid ? "not a subtree (must be channel segments each "
                          "ending in '.')"
               : over   ? "too many subscriptions on one connection "
                          "(limits.max_subscriptions)"
                        : "not granted");
    }
    zmq_msg_close(&m);
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static int setup_sockets(sc_broker_t *b, char *err, size_t errlen)
{
    sc_config_t *cfg = b->cfg;
    b->zctx = zmq_ctx_new();
    if (!b->zctx) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -1;
    }
    /* ZAP first: with CURVE and no ZAP handler, libzmq admits everyone */
    b->zap = zmq_socket(b->zctx, ZMQ_REP);
    int linger = 0;
    if (!b->zap || zmq_setsockopt(b->zap, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(b->zap, SC_ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind ZAP handler: %s",
                 zmq_strerror(errno));
        return -1;
    }
    if (!cfg->curve_secret_file) {
        snprintf(err, errlen,
                 "%s: a 'curve' group is required: the publish socket is a "
                 "CURVE server",
                 cfg->path);
        return -1;
    }
    char secret[41], e[512];
    if (sc_curve_read(cfg->curve_secret_file, true, secret, e, sizeof e) !=
        0) {
        snprintf(err, errlen, "curve.secret_key: %s", e);
        return -1;
    }
    b->xpub = zmq_socket(b->zctx, ZMQ_XPUB);
    int one = 1, hwm = 100000;
    /* subscriptions are short: 4096 bytes, plus the 33 bytes a CURVE
     * MESSAGE command adds to each frame */
    int64_t maxmsg = 4096 + 33;
    int rc = sc_access_curve_server(b->xpub, secret);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_XPUB_MANUAL, &one, sizeof one);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_LINGER, &linger, sizeof linger);
    if (rc != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "publish socket: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(b->xpub, cfg->publish_endpoint) != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "%s: cannot bind listen.publish '%s': %s",
                 cfg->path, cfg->publish_endpoint, zmq_strerror(errno));
        return -1;
    }
    /* disconnects reset the per-connection subscription count */
    if (zmq_socket_monitor(b->xpub, "inproc://sectorcast-xpub-mon",
                           ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(b->xpub_mon = zmq_socket(b->zctx, ZMQ_PAIR)) ||
        zmq_connect(b->xpub_mon, "inproc://sectorcast-xpub-mon") != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "publish socket monitor: %s",
                 zmq_strerror(errno));
        return -1;
    }
    if (cfg->service_endpoint)
        b->service = sc_service_new(b->zctx, cfg, secret, b->access,
                                    b->journal, sc_keyring_jwks(b->keyring),
                                    err, errlen);
    /* libzmq keeps its own copies of the key */
    sodium_memzero(secret, sizeof secret);
    if (cfg->service_endpoint && !b->service)
        return -1;
    b->pull = zmq_socket(b->zctx, ZMQ_PULL);
    int rcvhwm = 10000;
    if (!b->pull ||
        zmq_setsockopt(b->pull, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(b->pull, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(b->pull, CORE_ENDPOINT) != 0) {
        snprintf(err, errlen, "core socket: %s", zmq_strerror(errno));
        return -1;
    }
    /* children (isolation = "process") publish over ipc in a 0700 dir */
    char run[4096];
    snprintf(run, sizeof run, "%s/run", cfg->data_dir);
    if (mkdir(run, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", run, strerror(errno));
        return -1;
    }
    chmod(run, 0700);
    int w = snprintf(b->ipc_path, sizeof b->ipc_path, "ipc://%s/plugins.sock",
                     run);
    if (w > 0 && (size_t)w < sizeof b->ipc_path && w - 6 <= 107) {
        unlink(b->ipc_path + 6);
        b->pull_ipc = zmq_socket(b->zctx, ZMQ_ROUTER);
        int64_t maxmsg = MAX_FRAME_BYTES;
        if (!b->pull_ipc ||
            zmq_setsockopt(b->pull_ipc, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_MAXMSGSIZE, &maxmsg,
                           sizeof maxmsg) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_LINGER, &linger, sizeof linger) ||
            zmq_bind(b->pull_ipc, b->ipc_path) != 0) {
            snprintf(err, errlen, "plugin process socket %s: %s", b->ipc_path,
                     zmq_strerror(errno));
            return -1;
        }
    } else {
        b->ipc_path[0] = '\0';
        sc_log(SC_L_WARN, "core",
               "data_dir path too long for an ipc socket: isolation = "
               "\"process\" is unavailable");
    }
    return 0;
}

sc_broker_t *sc_broker_new(sc_config_t **cfg_p, char *err, size_t errlen)
{
    sc_broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = *cfg_p;
    *cfg_p = NULL;
    b->sigfd = -1;
    sc_config_t *cfg = b->cfg;

    /* blocked before any thread exists (ZeroMQ's, the plugins'), so that
     * every thread inherits the mask and the core alone reads them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    b->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (b->sigfd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    if (!(b->access = sc_access_new(cfg, err, errlen)))
        goto fail;
    if (!(b->log_subs = sc_ratelimit_new("access", SUB_LOG_PER_SEC,
                                         SUB_LOG_BURST, SUB_LOG_SOURCES)) ||
        !(b->log_subs_ok = sc_ratelimit_new("access", SUB_OK_LOG_PER_SEC,
                                            SUB_OK_LOG_BURST,
                                            SUB_LOG_SOURCES))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(b->keyring = sc_keyring_load(cfg, err, errlen)))
        goto fail;
    char e[1024];
    if (sc_keyring_write_jwks(b->keyring, cfg->jwks_file, e, sizeof e) != 0) {
        snprintf(err, errlen, "cannot write JWKS: %s", e);
        goto fail;
    }
    if (!(b->journal = sc_journal_open(cfg->data_dir,
                                       cfg->durability_full
                                           ? SC_DURABILITY_FULL
                                           : SC_DURABILITY_NORMAL,
                                       e,
                                       sizeof e))) {
        snprintf(err, errlen, "%s", e);
        goto fail;
    }
    if (setup_sockets(b, err, errlen) != 0)
        goto fail;
    sc_log(SC_L_INFO, "core",
           "gateway '%s' publishing on %s, service on %s; journal %s (epoch "
           "%s, durability %s); JWKS %s",
           cfg->gateway_id, cfg->publish_endpoint,
           cfg->service_endpoint ? cfg->service_endpoint : "(none)",
           sc_journal_path(b->journal), sc_journal_epoch(b->journal),
           cfg->durability_full ? "full" : "normal", cfg->jwks_file);
    prune(b);
    sc_journal_kids(b->journal, check_kid, b);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl > 0)
        self[sl] = '\0';
    b->sv = sc_supervisor_new(b->zctx, CORE_ENDPOINT,
                              b->ipc_path[0] ? b->ipc_path : NULL,
                              sl > 0 ? self : NULL, drain, b);
    if (!b->sv) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sc_supervisor_apply(b->sv, b->cfg);
    return b;
fail:
    sc_broker_destroy(&b);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* keys still needed by the journal                                    */

static int check_kid(void *arg, const char *kid, uint64_t count)
{
    sc_broker_t *b = arg;
    if (!sc_jwks_find(sc_keyring_jwks(b->keyring), kid))
        sc_log(SC_L_WARN, "keys",
               "%llu retained message(s) are signed by kid %s, which is no "
               "longer in signing.keys: replays and snapshots refuse them "
               "(error 500 corrupt) until that key is listed again (it need "
               "not be active) or retention removes them",
               (unsigned long long)count, kid);
    return 0;
}

/* ------------------------------------------------------------------ */
/* heartbeats, retention, connection events                            */

static int send_heartbeat(void *arg, const char *channel, uint64_t head)
{
    sc_broker_t *b = arg;
    char topic[SC_CHANNEL_MAX + 2], ts[32];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl <= 0)
        return 0;
    sc_now_rfc3339(ts);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "channel", channel, "epoch",
                          sc_journal_epoch(b->journal), "head",
                          (json_int_t)head, "ts", ts);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (txt && zmq_send(b->xpub, topic, (size_t)tl,
                        ZMQ_SNDMORE | ZMQ_DONTWAIT) == tl &&
        zmq_send(b->xpub, HEARTBEAT_TAG, strlen(HEARTBEAT_TAG),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(b->xpub, txt, strlen(txt), ZMQ_DONTWAIT);
    free(txt);
    return 0;
}

static const sc_cfg_retention_t *retention_for(const sc_config_t *cfg,
                                               const char *channel)
{
    const sc_cfg_retention_t *best = NULL;
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    for (size_t i = 0; tl > 0 && i < cfg->n_retention; i++)
        if (sc_subtree_covers(cfg->retention[i].subtree, topic, (size_t)tl) &&
            (!best || strlen(cfg->retention[i].subtree) > strlen(best->subtree)))
            best = &cfg->retention[i];
    return best;
}

typedef struct prune_ctx {
    char **names;
    size_t n, cap;
} prune_ctx_t;

static int collect_channel(void *arg, const char *channel, uint64_t head)
{
    (void)head;
    prune_ctx_t *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **v = realloc(c->names, cap * sizeof *v);
        if (!v)
            return 1;
        c->names = v;
        c->cap = cap;
    }
    if ((c->names[c->n] = strdup(channel)))
        c->n++;
    return 0;
}

static void prune(sc_broker_t *b)
{
    b->next_prune_ms = sc_mono_ms() + PRUNE_EVERY_MS;
    if (b->cfg->n_retention == 0)
        return;
    prune_ctx_t c = {0};
    sc_journal_heads(b->journal, "", collect_channel, &c);
    for (size_t i = 0; i < c.n; i++) {
        const sc_cfg_retention_t *r = retention_for(b->cfg, c.names[i]);
        char err[512];
        long n = r ? sc_journal_prune(b->journal, c.names[i], r->max_age_s,
                                      r->max_messages, err, sizeof err)
                   : 0;
        if (n < 0)
            sc_log(SC_L_ERROR, "journal", "retention: %s", err);
        else if (n > 0)
            sc_log(SC_L_INFO, "journal",
                   "retention: removed %ld message(s) of %s (replay now "
                   "complete from seq %llu)",
                   n, c.names[i],
                   (unsigned long long)sc_journal_low(b->journal, c.names[i]));
        free(c.names[i]);
    }
    free(c.names);
}

static void handle_monitor(sc_broker_t *b)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, b->xpub_mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, b->xpub_mon, 0);
        if (zmq_msg_size(&ev) >= 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
            if (event == ZMQ_EVENT_DISCONNECTED && value < b->subs_cap)
                conn_clear(&b->subs_per_fd[value]);
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

/* ------------------------------------------------------------------ */
/* run                                                                 */

static void stop_plugins(sc_broker_t *b)
{
    sc_supervisor_destroy(&b->sv);
    for (int tries = 0; b->n_group && tries < 5; tries++)
        if (flush_group(b) != 0)
            usleep(200000);
    if (b->n_group)
        sc_log(SC_L_ERROR, "journal",
               "%zu accepted message(s) could not be journaled before exit",
               b->n_group);
}

/* ------------------------------------------------------------------ */
/* reload                                                              */

static int strdiff(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b);
}

static void reload(sc_broker_t *b)
{
    const char *path = b->cfg->path;
    sc_log(SC_L_INFO, "core", "SIGHUP: reloading %s", path);
    sc_diag_t d = {0};
    sc_config_t *n = sc_config_load(path, true, &d);
    if (n)
        sc_broker_check_plugins(n, &d);
    if (!n || d.count) {
        for (size_t i = 0; i < d.count; i++)
            sc_log(SC_L_ERROR, "core", "%s", d.lines[i]);
        sc_log(SC_L_ERROR, "core",
               "reload refused: %zu problem(s) in %s; the running "
               "configuration stays",
               d.count, path);
        sc_diag_clear(&d);
        sc_config_destroy(&n);
        return;
    }
    sc_diag_clear(&d);
    const char *fixed = NULL;
    if (strdiff(n->publish_endpoint, b->cfg->publish_endpoint))
        fixed = "listen.publish";
    else if (strdiff(n->service_endpoint, b->cfg->service_endpoint))
        fixed = "listen.service";
    else if (strdiff(n->curve_secret_file, b->cfg->curve_secret_file))
        fixed = "curve.secret_key";
    else if (strdiff(n->data_dir, b->cfg->data_dir))
        fixed = "gateway.data_dir";
    else if (n->durability_full != b->cfg->durability_full)
        fixed = "gateway.durability";
    if (fixed) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: %s cannot change without a restart; the "
               "running configuration stays",
               fixed);
        sc_config_destroy(&n);
        return;
    }
    char err[1024];
    sc_access_t *na = sc_access_new(n, err, sizeof err);
    sc_keyring_t *nk = na ? sc_keyring_load(n, err, sizeof err) : NULL;
    if (!nk || sc_keyring_write_jwks(nk, n->jwks_file, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: %s; the running configuration stays", err);
        sc_keyring_destroy(&nk);
        sc_access_destroy(&na);
        sc_config_destroy(&n);
        return;
    }
    /* say what changed outside the plugins */
    for (size_t i = 0; i < b->cfg->n_agencies; i++) {
        const sc_cfg_agency_t *o = &b->cfg->agencies[i];
        const sc_cfg_agency_t *m = NULL;
        for (size_t k = 0; k < n->n_agencies && !m; k++)
            if (strcmp(n->agencies[k].id, o->id) == 0)
                m = &n->agencies[k];
        bool narrowed = !m || strcmp(m->public_key, o->public_key) != 0;
        for (size_t g = 0; m && !narrowed && g < o->n_grants; g++) {
            bool kept = false;
            for (size_t h = 0; h < m->n_grants && !kept; h++)
                kept = strcmp(m->grants[h], o->grants[g]) == 0;
            narrowed = !kept;
        }
        if (!m)
            sc_log(SC_L_WARN, "core",
                   "reload: agency '%s' removed: new connections are refused; "
                   "its open connections keep their subscriptions until they "
                   "disconnect (restart to cut them off now)",
                   o->id);
        else if (narrowed)
            sc_log(SC_L_WARN, "core",
                   "reload: agency '%s' key or grants narrowed: applies to new "
                   "subscriptions and requests; restart to cut existing "
                   "subscriptions",
                   o->id);
    }
    for (size_t k = 0; k < n->n_agencies; k++) {
        bool old = false;
        for (size_t i = 0; i < b->cfg->n_agencies && !old; i++)
            old = strcmp(n->agencies[k].id, b->cfg->agencies[i].id) == 0;
        if (!old)
            sc_log(SC_L_INFO, "core", "reload: agency '%s' added",
                   n->agencies[k].id);
    }
    if (n->n_keys != b->cfg->n_keys || strcmp(n->active_key, b->cfg->active_key))
        sc_log(SC_L_INFO, "core",
               "reload: signing keys now %zu, active '%s'; JWKS rewritten",
               n->n_keys, n->active_key);
    if (strcmp(n->log_level, b->cfg->log_level))
        sc_log(SC_L_INFO, "core", "reload: log_level %s -> %s",
               b->cfg->log_level, n->log_level);
    sc_log_set_level((sc_level_t)sc_log_parse_level(n->log_level));

    sc_access_t *oa = b->access;
    sc_keyring_t *ok = b->keyring;
    sc_access_take_over(na, oa);
    b->access = na;
    b->keyring = nk;
    if (b->service)
        sc_service_set_access(b->service, na, n, sc_keyring_jwks(nk));
    sc_config_t *old = b->cfg;
    b->cfg = n;
    sc_journal_kids(b->journal, check_kid, b);
    int started = sc_supervisor_apply(b->sv, n);
    sc_access_destroy(&oa);
    sc_keyring_destroy(&ok);
    sc_config_destroy(&old);
    sc_log(SC_L_INFO, "core", "reload done: %d plugin(s) started or restarted",
           started);
}

int sc_broker_run(sc_broker_t *b)
{
    int status = 0;
    for (;;) {
        bool paused = b->retry_at_ms != 0;
        /* the optional sockets go last; the pull sockets are not read
         * while the journal is failing (the plugins then wait) */
        zmq_pollitem_t items[7] = {
            {NULL, b->sigfd, ZMQ_POLLIN, 0},
            {b->zap, 0, ZMQ_POLLIN, 0},
            {b->xpub, 0, ZMQ_POLLIN, 0},
            {b->xpub_mon, 0, ZMQ_POLLIN, 0},
            {b->pull, 0, paused ? 0 : ZMQ_POLLIN, 0},
        };
        int n_items = 5;
        if (b->pull_ipc)
            items[n_items++] =
                (zmq_pollitem_t){b->pull_ipc, 0, paused ? 0 : ZMQ_POLLIN, 0};
        if (b->service)
            items[n_items++] = (zmq_pollitem_t){sc_service_socket(b->service),
                                                0, ZMQ_POLLIN, 0};
        long svw = sc_supervisor_next_wake_ms(b->sv);
        int64_t now = sc_mono_ms();
        int64_t wake = b->next_prune_ms;
        if (b->cfg->heartbeat_ms > 0 && b->next_heartbeat_ms < wake)
            wake = b->next_heartbeat_ms;
        if (paused && b->retry_at_ms < wake)
            wake = b->retry_at_ms;
        if (svw >= 0 && now + svw < wake)
            wake = now + svw;
        if (b->next_log_flush_ms < wake)
            wake = b->next_log_flush_ms;
        long timeout = wake <= now ? 0 : (long)(wake - now);
        if (zmq_poll(items, n_items, timeout) < 0) {
            if (errno == EINTR)
                continue;
            sc_log(SC_L_ERROR, "core", "zmq_poll: %s", zmq_strerror(errno));
            status = -1;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo si;
            bool stop = false;
            while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    reload(b);
                } else if (si.ssi_signo == SIGCHLD) {
                    sc_supervisor_tick(b->sv);
                } else {
                    sc_log(SC_L_INFO, "core", "%s received; stopping",
                           si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    stop = true;
                }
            }
            if (stop)
                break;
        }
        /* handshakes wait on ZAP: answer all pending first */
        for (int k = 0; k < 64; k++) {
            int ev = 0;
            size_t sz = sizeof ev;
            if (zmq_getsockopt(b->zap, ZMQ_EVENTS, &ev, &sz) != 0 ||
                !(ev & ZMQ_POLLIN))
                break;
            sc_access_zap_handle(b->access, b->zap);
        }
        for (int k = 0; k < 256; k++) {
            int ev = 0;
            size_t sz = sizeof ev;
            if (zmq_getsockopt(b->xpub, ZMQ_EVENTS, &ev, &sz) != 0 ||
                !(ev & ZMQ_POLLIN))
                break;
            handle_subscription(b);
        }
        if (items[3].revents & ZMQ_POLLIN)
            handle_monitor(b);
        for (int k = 0; b->service && k < 64; k++)
            if (sc_service_handle(b->service) != 0)
                break;
        now = sc_mono_ms();
        if (b->cfg->heartbeat_ms > 0 && now >= b->next_heartbeat_ms) {
            sc_journal_heads(b->journal, "", send_heartbeat, b);
            b->next_heartbeat_ms = now + b->cfg->heartbeat_ms;
        }
        if (now >= b->next_prune_ms)
            prune(b);
        if (now >= b->next_log_flush_ms) {
            sc_access_flush_log(b->access);
            sc_ratelimit_flush(b->log_subs);
            sc_ratelimit_flush(b->log_subs_ok);
            b->next_log_flush_ms = now + LOG_FLUSH_MS;
        }
        if (svw >= 0)
            sc_supervisor_tick(b->sv);
        if (paused) {
            if (sc_mono_ms() >= b->retry_at_ms)
                flush_group(b);
            continue;
        }
        drain(b);
    }
    stop_plugins(b);
    sc_log(SC_L_INFO, "core", "stopped; %llu message(s) sent this run",
           (unsigned long long)b->n_sent);
    return status;
}

void sc_broker_destroy(sc_broker_t **b_p)
{
    if (!b_p || !*b_p)
        return;
    sc_broker_t *b = *b_p;
    bool abandoned = sc_supervisor_abandoned(b->sv);
    if (b->sv)
        stop_plugins(b);
    for (size_t i = 0; i < b->n_group; i++)
        pending_clear(&b->group[i]);
    sc_service_destroy(&b->service);
    if (b->xpub_mon)
        zmq_close(b->xpub_mon);
    for (size_t i = 0; i < b->subs_cap; i++)
        conn_clear(&b->subs_per_fd[i]);
    free(b->subs_per_fd);
    if (b->xpub)
        zmq_close(b->xpub);
    if (b->pull)
        zmq_close(b->pull);
    if (b->pull_ipc)
        zmq_close(b->pull_ipc);
    if (b->ipc_path[0])
        unlink(b->ipc_path + 6);
    if (b->zap)
        zmq_close(b->zap);
    if (b->zctx) {
        if (abandoned)
            sc_log(SC_L_WARN, "core",
                   "not waiting for the ZeroMQ context: a plugin thread was "
                   "abandoned");
        else
            zmq_ctx_term(b->zctx);
    }
    sc_journal_close(&b->journal);
    sc_keyring_destroy(&b->keyring);
    sc_access_destroy(&b->access);
    sc_ratelimit_destroy(&b->log_subs);
    sc_ratelimit_destroy(&b->log_subs_ok);
    if (b->sigfd >= 0)
        close(b->sigfd);
    sc_config_destroy(&b->cfg);
    free(b);
    *b_p = NULL;
}
