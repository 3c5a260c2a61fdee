/*
 * service.c - see service.h.
 *
 * Request  (DEALER -> ROUTER):  [request-id][command][args JSON object]
 * Replies  (ROUTER -> DEALER):  [request-id]["msg"][topic][jws]   (0..n)
 *                               [request-id]["end"][JSON]         (last)
 *                            or [request-id]["error"][JSON]       (last)
 *
 * The ROUTER socket is ZMQ_ROUTER_MANDATORY so a reply that does not fit
 * the peer's queue fails visibly (EAGAIN) instead of being dropped. The
 * queue is bounded in bytes (SNDHWM from limits.send_queue_bytes and the
 * largest message, as on the publish socket), so a replay or snapshot is
 * paced by what the peer reads: on EAGAIN the request keeps its progress
 * (the next seq, or the last (channel, seq) of a snapshot, and the one
 * message that did not fit) as a job and continues when the peer has
 * read; the thread serves other peers meanwhile. A peer's requests are
 * answered in order; at most MAX_JOBS_PER_PEER wait per peer and MAX_JOBS
 * in all (beyond, a request is dropped and logged: the client times out).
 * A replay is bounded by limits.replay_batch per request.
 *
 * Replays together send at most limits.replay_rate messages per second,
 * in slices of at most one millisecond's worth (a token bucket holding
 * rate / 1000 tokens): a replay out of tokens waits as a blocked job
 * does, the thread looking again every PACE_US (zmq_poll counts in
 * milliseconds, so it polls without waiting and sleeps), which makes
 * the slices ~15-30 messages at the default rate. A replay never sends
 * the socket a burst of more than one slice, which keeps its loopback and
 * CPU load from delaying live delivery by more than about a slice's time
 * (docs/performance.md: slices of 1 ms instead of 2 ms' worth halved the
 * live p99 during a replay). Snapshots (bounded by MAX_SNAPSHOT; resuming
 * one rereads it from its start) are not paced.
 *
 * Connections are tracked by conns.c (monitor events; the fd of each
 * request): per-address, per-agency and handshake caps as on the publish
 * socket. A peer that goes away drops its jobs (EHOSTUNREACH).
 */
#include "service.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "conns.h"
#include "log.h"
#include "ops.h"
#include "ratelimit.h"
#include "request.h"
#include "threads.h"

#define MAX_REQ_ID 64
#define MAX_REQ_BYTES 65536
#define MAX_SNAPSHOT 50000 /* items per snapshot reply */
#define MAX_JOBS_PER_PEER 8 /* requests waiting per peer */
#define MAX_JOBS 4096       /* requests waiting in all */
#define RETRY_MS 10         /* a blocked job is tried again after */
#define PACE_US 250         /* a replay out of tokens is tried again after */

typedef struct req req_t;

typedef struct bucket {
    char *agency;
    double tokens;
    int64_t last_ms;
    int64_t last_log_ms;
    uint64_t dropped;
    struct bucket *next;
} bucket_t;

/* A channel's head when the service started: messages up to it were
 * journaled by an earlier run and are verified before they are served;
 * later ones were signed by this process and are sent as stored. */
typedef struct trust {
    char *channel;
    uint64_t head;
} trust_t;

/* What the core hands over on reload; taken by the service thread
 * between two requests. */
typedef struct handover {
    sc_access_t *access;
    sc_jwks_t *jwks;
    int64_t rate, burst, batch, replay_rate;
    sc_config_t limits; /* a shallow copy: only its scalar limits are read */
} handover_t;

struct sc_service {
    void *sock;                 /* the service thread's once started */
    sc_journal_reader_t *rd;    /* the service thread's own connection */
    const char *epoch;          /* the reader's */
    sc_access_t *access;        /* owned; replaced from `next` */
    sc_jwks_t *jwks;            /* owned copy */
    int64_t rate, burst, batch;
    int64_t replay_rate;        /* messages/s of all replays, 0 = no cap */
    double tokens;              /* of the replay bucket */
    int64_t tokens_ns;          /* when it was last filled */
    bool paced;                 /* a replay waits for tokens */
    bucket_t *buckets;
    sc_ratelimit_t *log_refused; /* refused requests, per agency */
    int64_t next_flush_ms;
    trust_t *trust;             /* sorted by channel */
    size_t n_trust, cap_trust;
    void *mon;                  /* the socket's monitor (PAIR) */
    sc_conns_t *conns;          /* its connections and their caps */
    req_t *jobs, *jobs_tail;    /* requests in progress, arrival order */
    size_t n_jobs;

    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;         /* guards next / has_next */
    handover_t next;
    bool has_next;
};

static sc_jwks_t *jwks_copy(const sc_jwks_t *j)
{
    char *txt = j ? sc_jwks_dump(j) : NULL;
    sc_jwks_t *c = txt ? sc_jwks_parse(txt, strlen(txt), "keyring", NULL, 0)
                       : NULL;
    free(txt);
    return c;
}

static int add_trust(void *arg, const char *channel, uint64_t head)
{
    sc_service_t *s = arg;
    if (s->n_trust == s->cap_trust) {
        size_t cap = s->cap_trust ? s->cap_trust * 2 : 64;
        trust_t *v = realloc(s->trust, cap * sizeof *v);
        if (!v)
            return 1;
        s->trust = v;
        s->cap_trust = cap;
    }
    if (!(s->trust[s->n_trust].channel = strdup(channel)))
        return 1;
    s->trust[s->n_trust++].head = head;
    return 0;
}

static int trust_cmp(const void *a, const void *b)
{
    return strcmp(((const trust_t *)a)->channel, ((const trust_t *)b)->channel);
}

/* Highest seq of `channel` journaled before this run (0 if none). */
static uint64_t old_head(const sc_service_t *s, const char *channel)
{
    trust_t key = {(char *)channel, 0};
    const trust_t *t = s->n_trust ? bsearch(&key, s->trust, s->n_trust,
                                            sizeof key, trust_cmp)
                                  : NULL;
    return t ? t->head : 0;
}

sc_service_t *sc_service_new(void *zctx, const sc_config_t *cfg,
                             const char *curve_secret_z85,
                             sc_access_t *access, sc_journal_t *journal,
                             const sc_jwks_t *jwks, char *err, size_t errlen)
{
    sc_service_t *s = calloc(1, sizeof *s);
    if (!s) {
        sc_access_destroy(&access);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->stop, false);
    s->access = access;
    if (!(s->log_refused = sc_ratelimit_new("service", 2.0, 20, 256))) {
        snprintf(err, errlen, "out of memory");
        sc_service_destroy(&s);
        return NULL;
    }
    s->rate = cfg->service_rate;
    s->burst = cfg->service_burst;
    s->batch = cfg->replay_batch;
    s->replay_rate = cfg->replay_rate;
    if (!(s->jwks = jwks_copy(jwks))) {
        snprintf(err, errlen, "out of memory");
        sc_service_destroy(&s);
        return NULL;
    }
    char e[512];
    if (!(s->rd = sc_journal_reader_new(journal, e, sizeof e))) {
        snprintf(err, errlen, "service journal reader: %s", e);
        sc_service_destroy(&s);
        return NULL;
    }
    s->epoch = sc_journal_reader_epoch(s->rd);
    if (sc_journal_reader_heads(s->rd, "", add_trust, s) < 0) {
        snprintf(err, errlen, "service: cannot read the journal's heads: %s",
                 sc_journal_reader_error(s->rd));
        sc_service_destroy(&s);
        return NULL;
    }
    if (s->n_trust > 1)
        qsort(s->trust, s->n_trust, sizeof *s->trust, trust_cmp);
    if (!(s->conns = sc_conns_new(cfg, "service"))) {
        snprintf(err, errlen, "out of memory");
        sc_service_destroy(&s);
        return NULL;
    }
    s->sock = zmq_socket(zctx, ZMQ_ROUTER);
    uint64_t bulk_io = SC_IO_BULK;
    if (s->sock)
        zmq_setsockopt(s->sock, ZMQ_AFFINITY, &bulk_io, sizeof bulk_io);
    /* the queue per connection within limits.send_queue_bytes */
    int one = 1, linger = 0, hwm = sc_conns_sndhwm(cfg);
    int64_t maxmsg = MAX_REQ_BYTES + 33; /* + CURVE framing per frame */
    int rc = sc_access_curve_server(s->sock, curve_secret_z85);
    if (rc == 0)
        rc = zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (rc == 0)
        rc = zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (rc == 0)
        rc = zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (rc == 0)
        rc = zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
    /* a stranger's connection must finish its handshake in time
     * (limits.handshake_timeout_ms), as on the publish socket */
    int hs_ms = (int)cfg->handshake_timeout_ms;
    if (rc == 0)
        rc = zmq_setsockopt(s->sock, ZMQ_HANDSHAKE_IVL, &hs_ms, sizeof hs_ms);
    if (rc != 0) {
        snprintf(err, errlen, "service socket: %s", zmq_strerror(errno));
        sc_service_destroy(&s);
        return NULL;
    }
    if (zmq_bind(s->sock, cfg->service_endpoint) != 0) {
        snprintf(err, errlen, "%s: cannot bind listen.service '%s': %s",
                 cfg->path, cfg->service_endpoint, zmq_strerror(errno));
        sc_service_destroy(&s);
        return NULL;
    }
    /* connections come and go (conns.h); no event may be dropped */
    int unbounded = 0;
    if (zmq_socket_monitor(s->sock, "inproc://sectorcast-service-mon",
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        !(s->mon = zmq_socket(zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(s->mon, ZMQ_RCVHWM, &unbounded, sizeof unbounded) !=
            0 ||
        zmq_setsockopt(s->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(s->mon, "inproc://sectorcast-service-mon") != 0) {
        snprintf(err, errlen, "service socket monitor: %s",
                 zmq_strerror(errno));
        sc_service_destroy(&s);
        return NULL;
    }
    return s;
}

static void handover_clear(handover_t *h)
{
    sc_access_destroy(&h->access);
    sc_jwks_destroy(&h->jwks);
}

void sc_service_set_access(sc_service_t *s, sc_access_t *access,
                           const sc_config_t *cfg, const sc_jwks_t *jwks)
{
    handover_t h = {.access = access,
                    .jwks = jwks_copy(jwks),
                    .rate = cfg->service_rate,
                    .burst = cfg->service_burst,
                    .batch = cfg->replay_batch,
                    .replay_rate = cfg->replay_rate,
                    .limits = *cfg};
    if (!h.jwks) {
        sc_log(SC_L_ERROR, "service",
               "out of memory: the service keeps its previous access table");
        handover_clear(&h);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->has_next)
        handover_clear(&s->next);
    s->next = h;
    s->has_next = true;
    pthread_mutex_unlock(&s->mu);
}

/* On the service thread, between requests. */
static void take_handover(sc_service_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->has_next) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    handover_t h = s->next;
    s->has_next = false;
    pthread_mutex_unlock(&s->mu);
    sc_access_take_over(h.access, s->access);
    sc_access_destroy(&s->access);
    sc_jwks_destroy(&s->jwks);
    s->access = h.access;
    s->jwks = h.jwks;
    s->rate = h.rate;
    s->burst = h.burst;
    s->batch = h.batch;
    s->replay_rate = h.replay_rate;
    /* SNDHWM applies to connections made from now on */
    int hwm = sc_conns_sndhwm(&h.limits), hs_ms = (int)h.limits.handshake_timeout_ms;
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->sock, ZMQ_HANDSHAKE_IVL, &hs_ms, sizeof hs_ms);
    sc_conns_set_limits(s->conns, &h.limits);
}

static void jobs_run(sc_service_t *s);
static void job_free(req_t *r);

static void *service_main(void *arg)
{
    sc_service_t *s = arg;
    sc_thread_name("service", NULL);
    sc_thread_background();
    sc_thread_background_named(SC_IO_BULK_THREAD);
    while (!atomic_load(&s->stop)) {
        take_handover(s);
        int64_t now = sc_mono_ms();
        if (now >= s->next_flush_ms) {
            /* the refusals' "N similar lines suppressed" summaries */
            sc_ratelimit_flush(s->log_refused);
            s->next_flush_ms = now + 1000;
        }
        sc_conns_drain(s->conns, s->mon, NULL);
        sc_conns_enforce(s->conns, now);
        zmq_pollitem_t it[2] = {{s->sock, 0, ZMQ_POLLIN, 0},
                                {s->mon, 0, ZMQ_POLLIN, 0}};
        /* blocked jobs are tried again soon: the peer may have read, a
         * paced replay has its next slice of tokens */
        int rc;
        if (s->jobs && s->paced) {
            /* finer than zmq_poll's milliseconds: look, then sleep */
            rc = zmq_poll(it, 2, 0);
            if (rc == 0) {
                struct timespec d = {0, PACE_US * 1000L};
                nanosleep(&d, NULL);
            }
        } else {
            rc = zmq_poll(it, 2, !s->jobs ? 100 : RETRY_MS);
        }
        if (rc < 0 && errno != EINTR) {
            if (errno == ETERM)
                break;
            sc_log(SC_L_ERROR, "service", "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        for (int k = 0; rc > 0 && (it[0].revents & ZMQ_POLLIN) && k < 64 &&
                        !atomic_load(&s->stop);
             k++) {
            take_handover(s);
            if (sc_service_handle(s) != 0)
                break;
        }
        if (s->jobs)
            jobs_run(s);
    }
    return NULL;
}

int sc_service_start(sc_service_t *s, char *err, size_t errlen)
{
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        snprintf(err, errlen, "cannot start the service thread");
        return -1;
    }
    s->started = true;
    return 0;
}

void sc_service_destroy(sc_service_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    sc_service_t *s = *s_p;
    if (s->started) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
    }
    while (s->jobs) {
        req_t *n = *(req_t **)s->jobs; /* `next` is the first field */
        job_free(s->jobs);
        s->jobs = n;
    }
    if (s->sock)
        zmq_close(s->sock);
    if (s->mon)
        zmq_close(s->mon);
    sc_conns_destroy(&s->conns);
    sc_ratelimit_destroy(&s->log_refused);
    sc_journal_reader_destroy(&s->rd);
    while (s->buckets) {
        bucket_t *n = s->buckets->next;
        free(s->buckets->agency);
        free(s->buckets);
        s->buckets = n;
    }
    for (size_t i = 0; i < s->n_trust; i++)
        free(s->trust[i].channel);
    free(s->trust);
    if (s->has_next)
        handover_clear(&s->next);
    sc_access_destroy(&s->access);
    sc_jwks_destroy(&s->jwks);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *s_p = NULL;
}




/* ------------------------------------------------------------------ */

typedef enum jstate {
    J_NEW = 0,  /* received, not started (waits behind the peer's others) */
    J_REPLAY,   /* streaming a replay from `next` */
    J_SNAPSHOT, /* streaming a snapshot after (last_ch, last_seq) */
    J_FINAL     /* only the last frame (final_type, final_txt) is left */
} jstate_t;

/* A request and its progress. */
struct req {
    req_t *next;        /* first field (sc_service_destroy relies on it) */
    sc_service_t *s;
    zmq_msg_t rid;      /* routing id of the peer */
    char id[MAX_REQ_ID + 1];
    size_t id_len;
    char *user;         /* its ZAP User-Id (re-resolved after a reload) */
    const sc_agency_t *agency; /* resolved at each run */
    int failed;         /* a send failed, the peer is gone: drop the job */
    int blocked;        /* the peer's queue is full, or the replay is out
                           of tokens: continue later */
    long sent;
    jstate_t state;
    /* J_NEW */
    zmq_msg_t f[4];
    int n, total;
    /* J_REPLAY */
    char channel[SC_CHANNEL_MAX + 1];
    uint64_t from, next_seq;
    int64_t left;
    /* J_SNAPSHOT */
    char *subtree;
    char last_ch[SC_CHANNEL_MAX + 1];
    uint64_t last_seq;
    json_t *heads;      /* read when the snapshot started */
    /* the one message that did not fit (replay, snapshot) */
    char *held_topic, *held_jws;
    size_t held_tl, held_jl;
    uint64_t held_seq;
    char held_ch[SC_CHANNEL_MAX + 1];
    /* J_FINAL */
    const char *final_type;
    char *final_txt;
};

static void job_free(req_t *r)
{
    for (int i = 0; r->state == J_NEW && i < r->n; i++)
        zmq_msg_close(&r->f[i]);
    zmq_msg_close(&r->rid);
    free(r->user);
    free(r->subtree);
    json_decref(r->heads);
    free(r->held_topic);
    free(r->held_jws);
    free(r->final_txt);
    free(r);
}

static int send_part(req_t *r, const void *d, size_t n, int more)
{
    if (r->failed || r->blocked)
        return -1;
    if (zmq_send(r->s->sock, d, n, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) <
        0) {
        r->failed = 1;
        return -1;
    }
    return 0;
}

/* The routing id, the request id and the type. Only the first part can
 * meet a full queue (EAGAIN: nothing was sent, try later). */
static int send_head(req_t *r, const char *type)
{
    if (r->failed || r->blocked)
        return -1;
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, &r->rid);
    if (zmq_msg_send(&copy, r->s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN)
            r->blocked = 1;
        else
            r->failed = 1; /* EHOSTUNREACH: the peer went */
        zmq_msg_close(&copy);
        return -1;
    }
    if (send_part(r, r->id, r->id_len, 1) != 0)
        return -1;
    return send_part(r, type, strlen(type), 1);
}

/* The last frame; kept in the job if the peer's queue is full. */
static void send_text(req_t *r, const char *type, char *txt)
{
    if (send_head(r, type) == 0)
        send_part(r, txt, strlen(txt), 0);
    if (r->blocked) {
        if (r->final_txt != txt)
            free(r->final_txt);
        r->final_type = type;
        r->final_txt = txt;
        r->state = J_FINAL;
        return;
    }
    if (r->final_txt == txt)
        r->final_txt = NULL;
    free(txt);
}

static void send_json(req_t *r, const char *type, json_t *body)
{
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!txt)
        txt = strdup("{}");
    if (!txt) {
        r->failed = 1;
        return;
    }
    send_text(r, type, txt);
}

static void send_error(req_t *r, int code, const char *name, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static void send_error(req_t *r, int code, const char *name, const char *fmt,
                       ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    send_json(r, "error", json_pack("{s:i, s:s, s:s}", "code", code, "error",
                                    name, "text", text));
}

/* a journaled message: re-verify, then send [msg][topic][jws] */
typedef struct stream {
    req_t *r;
    int corrupt;
    char bad_channel[SC_CHANNEL_MAX + 1];
    uint64_t bad_seq;
    uint64_t last_seq;
} stream_t;

/* Send one message; on a full queue keep it in the job (held). */
static int send_msg(req_t *r, const char *channel, uint64_t seq,
                    const char *topic, size_t tl, const char *jws,
                    size_t jl)
{
    if (send_head(r, "msg") != 0 || send_part(r, topic, tl, 1) != 0 ||
        send_part(r, jws, jl, 0) != 0) {
        if (r->blocked && !r->held_jws) {
            r->held_topic = malloc(tl ? tl : 1);
            r->held_jws = malloc(jl ? jl : 1);
            if (!r->held_topic || !r->held_jws) {
                r->failed = 1; /* cut: the client repairs by timeout */
                return -1;
            }
            memcpy(r->held_topic, topic, tl);
            memcpy(r->held_jws, jws, jl);
            r->held_tl = tl;
            r->held_jl = jl;
            r->held_seq = seq;
            snprintf(r->held_ch, sizeof r->held_ch, "%s", channel);
        }
        return -1;
    }
    r->sent++;
    if (r->state == J_REPLAY)
        r->next_seq = seq + 1;
    snprintf(r->last_ch, sizeof r->last_ch, "%s", channel);
    r->last_seq = seq;
    return 0;
}

/* Send the held message first; 0 if sent (or none). */
static int send_held(req_t *r)
{
    if (!r->held_jws)
        return 0;
    char *t = r->held_topic, *j = r->held_jws;
    r->held_topic = r->held_jws = NULL; /* a new EAGAIN holds them again */
    char ch[SC_CHANNEL_MAX + 1];
    snprintf(ch, sizeof ch, "%s", r->held_ch);
    int rc = send_msg(r, ch, r->held_seq, t, r->held_tl, j, r->held_jl);
    free(t);
    free(j);
    return rc;
}

/* One token of the replay bucket; false when a replay must wait. */
static bool pace_take(sc_service_t *s)
{
    if (s->replay_rate <= 0)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    double cap = s->replay_rate >= 1000 ? (double)s->replay_rate / 1000.0 : 1.0;
    s->tokens += (double)(now - s->tokens_ns) * (double)s->replay_rate / 1e9;
    if (s->tokens > cap || s->tokens_ns == 0)
        s->tokens = cap;
    s->tokens_ns = now;
    if (s->tokens < 1.0) {
        s->paced = true;
        return false;
    }
    s->tokens -= 1.0;
    return true;
}

static int stream_row(void *arg, const char *channel, uint64_t seq,
                      const char *jws, size_t jws_len)
{
    stream_t *st = arg;
    req_t *r = st->r;
    if (r->state == J_REPLAY && !pace_take(r->s)) {
        r->blocked = 1; /* continues from r->next_seq */
        return 1;
    }
    /* a snapshot that continues: skip what was sent */
    if (r->state == J_SNAPSHOT && (r->sent > 0 || r->last_ch[0])) {
        int c = strcmp(channel, r->last_ch);
        if (c < 0 || (c == 0 && seq <= r->last_seq))
            return 0;
    }
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl > 0 && seq > old_head(r->s, channel))
        goto send; /* signed by this process: sent as stored */
    sc_envelope_fields_t f = {0};
    char err[256] = "";
    int rc = tl > 0 ? sc_envelope_verify_fields(r->s->jwks, topic,
                                                (size_t)tl, jws, jws_len, &f,
                                                NULL, err, sizeof err)
                    : -1;
    bool same_seq = rc == 0 && f.seq == seq;
    sc_envelope_fields_free(&f);
    if (!same_seq) {
        sc_log(SC_L_ERROR, "journal",
               "journaled message %s seq %llu fails verification (%s); not "
               "served",
               channel, (unsigned long long)seq,
               rc != 0 ? err : "seq does not match its row");
        st->corrupt = 1;
        snprintf(st->bad_channel, sizeof st->bad_channel, "%s", channel);
        st->bad_seq = seq;
        return 1;
    }
send:
    if (send_msg(r, channel, seq, topic, (size_t)tl, jws, jws_len) != 0)
        return 1;
    st->last_seq = seq;
    return 0;
}

/* After streaming journaled items: if the stream stopped early for an
 * error (a message failing re-verification, a read error) say why; true
 * if the request is over or waits (blocked). */
static bool stream_ended(req_t *r, const stream_t *st, long n)
{
    if (r->failed || r->blocked)
        return true;
    if (st->corrupt) {
        send_error(r, 500, "corrupt",
                   "journaled message %s seq %llu fails verification with the "
                   "gateway's current keys (see the broker log)",
                   st->bad_channel, (unsigned long long)st->bad_seq);
        return true;
    }
    if (n < 0) {
        send_error(r, 500, "internal", "journal read failed (see broker log)");
        return true;
    }
    return false;
}

static int add_head(void *arg, const char *channel, uint64_t head)
{
    json_object_set_new(arg, channel, json_integer((json_int_t)head));
    return 0;
}

typedef struct heads_ctx {
    json_t *obj;
    const sc_agency_t *ag;
} heads_ctx_t;

static int add_granted_head(void *arg, const char *channel, uint64_t head)
{
    heads_ctx_t *h = arg;
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl > 0 && sc_agency_may_read(h->ag, topic, (size_t)tl))
        json_object_set_new(h->obj, channel, json_integer((json_int_t)head));
    return 0;
}

static void cmd_whoami(req_t *r)
{
    json_t *grants = json_array();
    for (size_t i = 0; i < sc_agency_grant_count(r->agency); i++)
        json_array_append_new(grants,
                              json_string(sc_agency_grant(r->agency, i)));
    heads_ctx_t h = {json_object(), r->agency};
    if (sc_journal_reader_heads(r->s->rd, "", add_granted_head, &h) < 0) {
        json_decref(grants);
        json_decref(h.obj);
        send_error(r, 500, "internal", "journal read failed (see broker log)");
        return;
    }
    send_json(r, "end",
              json_pack("{s:s, s:o, s:s, s:o}", "agency",
                        sc_agency_id(r->agency), "grants", grants, "epoch",
                        r->s->epoch, "channels", h.obj));
}

static const char *arg_subtree(req_t *r, json_t *args, const char *name)
{
    json_t *v = json_object_get(args, name);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || !sc_subtree_valid(s, strlen(s))) {
        send_error(r, 400, "bad-request",
                   "'%s' must be a subtree: channel segments each followed "
                   "by '.'",
                   name);
        return NULL;
    }
    if (!sc_agency_may_read(r->agency, s, strlen(s))) {
        send_error(r, 403, "forbidden", "'%.200s' is not granted to agency '%s'",
                   s, sc_agency_id(r->agency));
        return NULL;
    }
    return s;
}

static void cmd_heads(req_t *r, json_t *args)
{
    json_t *heads = json_object();
    if (json_object_get(args, "subtree")) {
        const char *sub = arg_subtree(r, args, "subtree");
        if (!sub) {
            json_decref(heads);
            return;
        }
        if (sc_journal_reader_heads(r->s->rd, sub, add_head, heads) < 0)
            goto fail;
    } else {
        heads_ctx_t h = {heads, r->agency};
        if (sc_journal_reader_heads(r->s->rd, "", add_granted_head, &h) < 0)
            goto fail;
    }
    send_json(r, "end",
              json_pack("{s:s, s:o}", "epoch", r->s->epoch, "heads", heads));
    return;
fail:
    json_decref(heads);
    send_error(r, 500, "internal", "journal read failed (see broker log)");
}

/* Stream the replay from r->next_seq; the end frame once done. */
static void replay_step(req_t *r)
{
    sc_service_t *s = r->s;
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(r->channel, topic, sizeof topic);
    if (tl <= 0 || !sc_agency_may_read(r->agency, topic, (size_t)tl)) {
        /* revoked by a reload while the replay was paced */
        send_error(r, 403, "forbidden",
                   "channel '%s' is not granted to agency '%s'", r->channel,
                   sc_agency_id(r->agency));
        return;
    }
    const char *epoch = s->epoch;
    uint64_t head = 0, low = 1;
    if (sc_journal_reader_channel(s->rd, r->channel, &head, &low) < 0) {
        send_error(r, 500, "internal", "journal read failed (see broker log)");
        return;
    }
    if (r->next_seq < low && r->next_seq <= head) {
        json_t *b = json_pack(
            "{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "code", 410, "error",
            "pruned", "text", "requested messages were removed by retention",
            "channel", r->channel, "epoch", epoch, "from",
            (json_int_t)r->next_seq, "oldest", (json_int_t)low, "head",
            (json_int_t)head);
        send_json(r, "error", b);
        return;
    }
    if (send_held(r) != 0)
        return;
    stream_t st = {.r = r, .last_seq = r->next_seq - 1};
    long n = 0;
    if (r->left > r->sent)
        n = sc_journal_reader_scan(s->rd, r->channel, r->next_seq,
                                   r->left - r->sent, stream_row, &st);
    if (stream_ended(r, &st, n))
        return;
    uint64_t next = r->next_seq;
    sc_ops_request(sc_agency_id(r->agency), "replay", r->channel, r->from,
                   r->sent, NULL);
    send_json(r, "end",
              json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "channel",
                        r->channel, "epoch", epoch, "head", (json_int_t)head,
                        "next", (json_int_t)next, "count",
                        (json_int_t)r->sent, "more", next <= head));
}

static void cmd_replay(req_t *r, json_t *args)
{
    sc_service_t *s = r->s;
    json_t *jc = json_object_get(args, "channel");
    json_t *jf = json_object_get(args, "from");
    json_t *jl = json_object_get(args, "limit");
    json_t *je = json_object_get(args, "epoch");
    const char *channel = json_is_string(jc) ? json_string_value(jc) : NULL;
    if (!channel || !sc_channel_valid(channel)) {
        send_error(r, 400, "bad-request", "'channel' must be a channel name");
        return;
    }
    if (!json_is_integer(jf) || json_integer_value(jf) < 1) {
        send_error(r, 400, "bad-request", "'from' must be an integer >= 1");
        return;
    }
    if (jl && (!json_is_integer(jl) || json_integer_value(jl) < 1)) {
        send_error(r, 400, "bad-request", "'limit' must be an integer >= 1");
        return;
    }
    if (je && !json_is_string(je)) {
        send_error(r, 400, "bad-request", "'epoch' must be a string");
        return;
    }
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl <= 0 || !sc_agency_may_read(r->agency, topic, (size_t)tl)) {
        sc_ops_request(sc_agency_id(r->agency), "replay", channel,
                       (uint64_t)json_integer_value(jf), 0, "not granted");
        send_error(r, 403, "forbidden",
                   "channel '%s' is not granted to agency '%s'", channel,
                   sc_agency_id(r->agency));
        return;
    }
    const char *epoch = s->epoch;
    if (je && strcmp(json_string_value(je), epoch) != 0) {
        json_t *b = json_pack("{s:i, s:s, s:s, s:s}", "code", 409, "error",
                              "epoch-mismatch", "text",
                              "the journal was replaced; resume from a "
                              "snapshot",
                              "epoch", epoch);
        send_json(r, "error", b);
        return;
    }
    int64_t limit = s->batch;
    if (jl && json_integer_value(jl) < limit)
        limit = json_integer_value(jl);
    snprintf(r->channel, sizeof r->channel, "%s", channel);
    r->from = r->next_seq = (uint64_t)json_integer_value(jf);
    r->left = limit;
    r->state = J_REPLAY;
    replay_step(r);
}

static int count_row(void *arg, const char *channel, uint64_t seq,
                     const char *jws, size_t jws_len)
{
    (void)channel, (void)seq, (void)jws, (void)jws_len;
    return ++*(long *)arg > MAX_SNAPSHOT;
}

/* Stream the snapshot after (last_ch, last_seq); the end frame once done.
 * The heads are those read when it started: a paced snapshot may carry
 * newer messages than them (the client's replay from head + 1 then
 * brings duplicates, never a gap). */
static void snapshot_step(req_t *r)
{
    if (!sc_agency_may_read(r->agency, r->subtree, strlen(r->subtree))) {
        send_error(r, 403, "forbidden", "'%.200s' is not granted to agency '%s'",
                   r->subtree, sc_agency_id(r->agency));
        return;
    }
    if (send_held(r) != 0)
        return;
    stream_t st = {.r = r};
    long n = sc_journal_reader_snapshot(r->s->rd, r->subtree, stream_row, &st);
    if (stream_ended(r, &st, n))
        return;
    sc_ops_request(sc_agency_id(r->agency), "snapshot", r->subtree, 0, r->sent,
                   NULL);
    json_t *heads = r->heads;
    r->heads = NULL;
    send_json(r, "end",
              json_pack("{s:s, s:s, s:o, s:I}", "subtree", r->subtree, "epoch",
                        r->s->epoch, "heads", heads, "count",
                        (json_int_t)r->sent));
}

static void cmd_snapshot(req_t *r, json_t *args)
{
    const char *sub = arg_subtree(r, args, "subtree");
    if (!sub) {
        json_t *v = json_object_get(args, "subtree");
        sc_ops_request(sc_agency_id(r->agency), "snapshot",
                       json_is_string(v) ? json_string_value(v) : "", 0, 0,
                       "refused (bad or not granted subtree)");
        return;
    }
    /* a reply this large would hold the peer's queue too long */
    long total = 0;
    if (sc_journal_reader_snapshot(r->s->rd, sub, count_row, &total) < 0) {
        send_error(r, 500, "internal", "journal read failed (see broker log)");
        return;
    }
    if (total > MAX_SNAPSHOT) {
        send_error(r, 413, "too-large",
                   "the snapshot of '%.200s' has more than %d messages; ask "
                   "for narrower subtrees",
                   sub, MAX_SNAPSHOT);
        return;
    }
    if (!(r->subtree = strdup(sub)) || !(r->heads = json_object())) {
        send_error(r, 500, "internal", "out of memory");
        return;
    }
    if (sc_journal_reader_heads(r->s->rd, sub, add_head, r->heads) < 0) {
        send_error(r, 500, "internal", "journal read failed (see broker log)");
        return;
    }
    r->state = J_SNAPSHOT;
    snapshot_step(r);
}

/* token bucket per agency; false = over the rate */
static bool rate_ok(sc_service_t *s, const char *agency)
{
    bucket_t *b = s->buckets;
    while (b && strcmp(b->agency, agency) != 0)
        b = b->next;
    int64_t now = sc_mono_ms();
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || !(b->agency = strdup(agency))) {
            free(b);
            return false;
        }
        b->tokens = (double)s->burst;
        b->last_ms = now;
        b->next = s->buckets;
        s->buckets = b;
    }
    b->tokens += (double)(now - b->last_ms) * (double)s->rate / 1000.0;
    if (b->tokens > (double)s->burst)
        b->tokens = (double)s->burst;
    b->last_ms = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    b->dropped++;
    if (now - b->last_log_ms >= 1000) {
        sc_log(SC_L_WARN, "service",
               "agency '%s' exceeds %lld requests/s; %llu request(s) dropped",
               agency, (long long)s->rate, (unsigned long long)b->dropped);
        b->last_log_ms = now;
        b->dropped = 0;
    }
    return false;
}

/* A received request (J_NEW): check and start it. */
static void job_start(req_t *r)
{
    sc_service_t *s = r->s;
    const char *user = r->user;
    r->agency = user ? sc_access_agency(s->access, user) : NULL;
    if (r->agency) /* the User-Id carries a key tag: show the plain id */
        user = sc_agency_id(r->agency);
    zmq_msg_t *f = r->f;
    int n = r->n;
    r->n = 0; /* the frames are closed below, whatever the state becomes */
    r->state = J_FINAL; /* nothing pending unless a command says so */
    r->final_txt = NULL;
    if (!r->agency) {
        /* cannot happen through ZAP; an agency removed by a reload */
        sc_ratelimit_log(s->log_refused, user, SC_L_WARN,
                         "request from unknown agency '%s' refused (or a key "
                         "no longer configured)",
                         user ? user : "?");
        send_error(r, 403, "forbidden", "unknown agency");
    } else if (!rate_ok(s, user)) {
        /* dropped: no reply, so a flood costs us as little as possible */
    } else {
        sc_req_frame_t fr[4];
        for (int i = 0; i < n; i++)
            fr[i] = (sc_req_frame_t){zmq_msg_data(&f[i]), zmq_msg_size(&f[i])};
        sc_request_t req;
        char text[512];
        if (sc_request_parse(fr, (size_t)r->total, &req, text, sizeof text) !=
            0) {
            if (strcmp(req.error, "unknown-command") == 0)
                sc_ratelimit_log(s->log_refused, user, SC_L_WARN,
                                 "unknown command '%s' from agency '%s'",
                                 req.shown_cmd, user);
            else
                sc_ratelimit_log(s->log_refused, user, SC_L_WARN,
                                 "malformed request from agency '%s' (%d "
                                 "frames): %s",
                                 user, r->total, text);
            send_error(r, req.code, req.error, "%s", text);
        } else {
            /* one consistent read of the journal per step */
            sc_journal_reader_begin(s->rd);
            if (req.cmd == SC_REQ_WHOAMI)
                cmd_whoami(r);
            else if (req.cmd == SC_REQ_HEADS)
                cmd_heads(r, req.args);
            else if (req.cmd == SC_REQ_REPLAY)
                cmd_replay(r, req.args);
            else
                cmd_snapshot(r, req.args);
            sc_journal_reader_end(s->rd);
        }
        sc_request_clear(&req);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* The paced request is still granted (a reload may have narrowed it). */
static bool job_granted(const req_t *r)
{
    if (r->state == J_SNAPSHOT)
        return sc_agency_may_read(r->agency, r->subtree, strlen(r->subtree));
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(r->channel, topic, sizeof topic);
    return tl > 0 && sc_agency_may_read(r->agency, topic, (size_t)tl);
}

/* Run a job as far as the peer's queue allows; true when it is over. */
static bool job_run(req_t *r)
{
    sc_service_t *s = r->s;
    r->blocked = 0;
    if (r->state == J_NEW) {
        job_start(r);
    } else {
        r->agency = r->user ? sc_access_agency(s->access, r->user) : NULL;
        if (r->state == J_FINAL) {
            send_text(r, r->final_type, r->final_txt);
        } else if (!r->agency) {
            send_error(r, 403, "forbidden", "unknown agency");
        } else if (r->held_jws && job_granted(r) && send_held(r) != 0) {
            /* still full: tried without touching the journal */
        } else {
            sc_journal_reader_begin(s->rd);
            if (r->state == J_REPLAY)
                replay_step(r);
            else
                snapshot_step(r);
            sc_journal_reader_end(s->rd);
        }
    }
    return !r->blocked || r->failed;
}

static bool same_peer(const req_t *a, const req_t *b)
{
    size_t l = zmq_msg_size((zmq_msg_t *)&a->rid);
    return l == zmq_msg_size((zmq_msg_t *)&b->rid) &&
           memcmp(zmq_msg_data((zmq_msg_t *)&a->rid),
                  zmq_msg_data((zmq_msg_t *)&b->rid), l) == 0;
}

static void job_unlink(sc_service_t *s, req_t *prev, req_t *r)
{
    if (prev)
        prev->next = r->next;
    else
        s->jobs = r->next;
    if (s->jobs_tail == r)
        s->jobs_tail = prev;
    s->n_jobs--;
}

/* Continue each peer's first job (a peer's replies stay in order). */
static void jobs_run(sc_service_t *s)
{
    s->paced = false;
    req_t *prev = NULL, *r = s->jobs;
    while (r) {
        bool first = true;
        for (req_t *q = s->jobs; q != r && first; q = q->next)
            first = !same_peer(q, r);
        req_t *next = r->next;
        if (first && job_run(r)) {
            job_unlink(s, prev, r);
            job_free(r);
        } else {
            prev = r;
        }
        r = next;
    }
}

int sc_service_handle(sc_service_t *s)
{
    req_t *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->s = s;
    zmq_msg_init(&r->rid);
    /* records of new connections first (conns.h) */
    sc_conns_drain(s->conns, s->mon, NULL);
    if (zmq_msg_recv(&r->rid, s->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&r->rid);
        free(r);
        return -1;
    }
    int more = zmq_msg_more(&r->rid);
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        r->total++;
        if (r->n < 4)
            r->f[r->n++] = m;
        else
            zmq_msg_close(&m);
    }
    const char *user = r->n > 0 ? zmq_msg_gets(&r->f[0], "User-Id") : NULL;
    if (user && !(r->user = strdup(user))) {
        job_free(r);
        return 0;
    }
    if (r->n >= 1) {
        size_t l = zmq_msg_size(&r->f[0]);
        r->id_len = l > MAX_REQ_ID ? MAX_REQ_ID : l;
        memcpy(r->id, zmq_msg_data(&r->f[0]), r->id_len);
        /* the connection is an agency's now: no longer a handshake, and
         * one of its connections (limits.max_connections_per_agency) */
        const sc_agency_t *ag =
            user ? sc_access_agency(s->access, user) : NULL;
        int fd = zmq_msg_get(&r->f[0], ZMQ_SRCFD);
        if (ag && sc_conns_identify(s->conns, fd, sc_agency_id(ag)) ==
                      SC_SUB_AGENCY_FULL) {
            sc_ratelimit_log(s->log_refused, sc_agency_id(ag), SC_L_WARN,
                             "cut a service connection of agency '%s': too "
                             "many open (limits.max_connections_per_agency)",
                             sc_agency_id(ag));
            job_free(r);
            return 0;
        }
    }
    size_t mine = 0;
    for (req_t *q = s->jobs; q; q = q->next)
        mine += same_peer(q, r);
    if (mine == 0 && job_run(r)) {
        job_free(r);
        return 0;
    }
    if (mine >= MAX_JOBS_PER_PEER || s->n_jobs >= MAX_JOBS) {
        sc_ratelimit_log(s->log_refused, r->user ? r->user : "?", SC_L_WARN,
                         "request from '%s' dropped: %zu of its requests "
                         "already wait for it to read (%zu in all)",
                         r->user ? r->user : "?", mine, s->n_jobs);
        job_free(r);
        return 0;
    }
    if (s->jobs_tail)
        s->jobs_tail->next = r;
    else
        s->jobs = r;
    s->jobs_tail = r;
    s->n_jobs++;
    return 0;
}
