/*
 * client.c - libsectorcast: the subscriber side of the wire contract.
 *
 * Owns the SUB socket and its handshake monitor, the verification of every
 * message against the gateway's JWKS, and the delivery queue that turns
 * live messages, replays, snapshots and gap/epoch events into one ordered
 * stream for the caller. A message that fails any check is counted and
 * reported as refused; it is never handed to the caller as data.
 *
 * Who does what: order.c decides deliver / duplicate / hold per channel;
 * svc.c talks to the service socket; state.c keeps the state file;
 * monitor.c watches handshakes; core/common verifies JWS and envelopes
 * and runs those checks for a batch of messages on several threads
 * (workpool.c, options.verify_threads); this file takes them in order.
 *
 * Frame layouts this receiver knows (docs/protocol.md section 4):
 *   data:      exactly 2 frames, [topic ending in '.'][compact JWS]
 *   heartbeat: exactly 3 frames, [topic]["sc-heartbeat-v1"][JSON object]
 * Every other layout is refused as "unknown message shape".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

/* Only the subscriber API is exported from libsectorcast.so; the build
 * hides everything else (-fvisibility=hidden), core/common included. */
#pragma GCC visibility push(default)
#include "sectorcast/client.h"
#pragma GCC visibility pop

#include "common/channel.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/envelope.h"
#include "common/jwks.h"
#include "common/keys.h"
#include "common/workpool.h"

#include "held.h"
#include "monitor.h"
#include "order.h"
#include "state.h"
#include "svc.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_ATTEMPTS 3
#define DEFAULT_RCV_HWM 100000
#define DEFAULT_MAX_BUFFERED 100000
/* Reconnect after 100 ms (libzmq's default), backing off to this while the
 * gateway stays away. */
#define RECONNECT_IVL_MAX_MS 5000
/* Largest frame we accept. libzmq drops the connection (and reconnects) on
 * a bigger one, so a hostile peer cannot make us buffer unbounded data. */
#define MAX_MSG_SIZE (8 * 1024 * 1024)
/* How much of a hostile topic we quote in an error text. */
#define TOPIC_QUOTE_MAX 80
#define HEARTBEAT_TAG "sc-heartbeat-v1"
/* While a gap waits for repair and live messages keep coming, fetch one
 * replay page at least after this many live messages. */
#define LIVE_PER_REPAIR 1000
/* While messages are queued on the socket they are read without polling
 * (zmq_poll and an empty monitor read cost system calls even when a
 * message is there); the monitors are looked at after this many such
 * reads, and always before waiting. */
#define READS_PER_LOOK 64
/* Messages checked together (on the verifying threads): a live batch is
 * what is waiting on the socket, up to this many and this many bytes (a
 * message's decoded copy is held while the batch is checked); a replay
 * or snapshot page is checked in slices of this many. */
#define VERIFY_BATCH 64
#define VERIFY_BATCH_BYTES (4 * 1024 * 1024)
#define MAX_VERIFY_THREADS 64

/* One message's checks, done on any verifying thread: reads only the
 * JWKS; the counters and the queue are the calling thread's (take_job). */
typedef struct vjob {
    const char *topic, *jws;
    size_t topic_len, jws_len;
    int rc;                      /* SC_CLIENT_MESSAGE, _REFUSED (reason)
                                    or _ERROR (out of memory) */
    sc_envelope_fields_t f;      /* SC_CLIENT_MESSAGE */
    char kid[SC_KID_LEN + 1];
    char reason[320];
} vjob_t;

/* A live message read off the socket, waiting for its batch's checks. */
typedef struct frames {
    zmq_msg_t parts[3]; /* the first three frames */
    size_t n;           /* frames it had */
    bool data;          /* [topic][jws]: `job` checks it */
    vjob_t job;
} frames_t;

/* One entry of the delivery queue. */
typedef enum { Q_MSG, Q_REFUSED, Q_GAP, Q_EPOCH, Q_POSITION } qkind_t;

typedef struct qev {
    int code;             /* SC_CLIENT_GAP / SC_CLIENT_EPOCH, else 0 */
    char channel[SC_CHANNEL_MAX + 1];
    char epoch[SC_EPOCH_MAX + 1];
    char old_epoch[SC_EPOCH_MAX + 1];
    uint64_t first, last; /* GAP: lost seqs; POSITION: last = handed seq */
    char reason[160];
    char text[512];
} qev_t;

typedef struct qent {
    qkind_t kind;
    sc_held_t *msg; /* Q_MSG */
    qev_t *ev;      /* everything else */
    struct qent *next;
} qent_t;

struct sc_client {
    void *ctx;
    void *sub;
    sc_mon_t *mon;
    char *endpoint;
    bool curve;
    sc_jwks_t *jwks;
    sc_client_stats_t stats;

    int fatal_rc;         /* sticky: SC_CLIENT_AUTH or SC_CLIENT_ERROR */
    char fatal[256];

    sc_held_t *cur;       /* the message last returned */

    /* gap repair, resume, snapshots */
    sc_svc_t *svc;        /* NULL: no service endpoint */
    bool snapshot;
    json_t *identity;     /* the whoami end object */
    const char **grants;
    size_t n_grants;
    char **subtrees;
    bool *snapped;        /* per subtree: snapshot taken */
    size_t n_subtrees;
    bool state_checked;   /* state positions compared with whoami */
    bool started;
    sc_order_t *order;
    sc_state_t *state;
    sc_track_t *rr;       /* round-robin point for repairs */
    unsigned live_streak;
    unsigned reads_unlooked; /* reads since the monitors were drained */

    qent_t *q_head, *q_tail;

    bool have_event;
    qev_t event;

    sc_workpool_t *pool;  /* verify_threads - 1 workers (none: the
                             calling thread verifies alone) */
    vjob_t *jobs;         /* VERIFY_BATCH: a replay or snapshot slice */
    frames_t *live;       /* VERIFY_BATCH: a live batch (its own, as
                             taking it may fetch a snapshot) */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Quote untrusted bytes for an error text: printable ASCII as is, the rest
 * as \xNN, cut at TOPIC_QUOTE_MAX with "...". */
static void quote_bytes(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < outlen; i++) {
        if (i == TOPIC_QUOTE_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, outlen - o, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
}

/* ---- lifecycle ------------------------------------------------------- */

static bool is_z85_key(const char *s)
{
    if (!s || strlen(s) != SC_Z85_KEY_LEN)
        return false;
    uint8_t bin[32];
    bool ok = zmq_z85_decode(bin, s) != NULL;
    sodium_memzero(bin, sizeof bin);
    return ok;
}

typedef struct curve_keys {
    char server[SC_Z85_KEY_LEN + 1];
    char secret[SC_Z85_KEY_LEN + 1];
    char public[SC_Z85_KEY_LEN + 1];
} curve_keys_t;

/* Read the gateway's public key (Z85 text or a file) and our key pair
 * BASE.secret / BASE.public. */
static int read_curve(const sc_client_options_t *o, curve_keys_t *k,
                      char *err, size_t errlen)
{
    char derived[SC_Z85_KEY_LEN + 1];
    char sub_err[512];
    int rc = -1;

    /* a file that exists wins: a path may well be 40 Z85 characters */
    struct stat kst;
    if (stat(o->server_public_key, &kst) == 0) {
        if (sc_curve_read(o->server_public_key, false, k->server, sub_err,
                          sizeof sub_err) != 0) {
            seterr(err, errlen,
                   "cannot read the gateway public key from the file %s: %s",
                   o->server_public_key, sub_err);
            return -1;
        }
    } else if (is_z85_key(o->server_public_key)) {
        memcpy(k->server, o->server_public_key, sizeof k->server);
    } else {
        seterr(err, errlen,
               "the gateway public key '%.200s' is neither an existing file "
               "(%s) nor 40 Z85 characters",
               o->server_public_key, strerror(errno));
        return -1;
    }

    size_t blen = strlen(o->client_key_base);
    char *path = malloc(blen + sizeof ".secret");
    if (!path) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    memcpy(path, o->client_key_base, blen);
    memcpy(path + blen, ".secret", sizeof ".secret");
    if (sc_curve_read(path, true, k->secret, sub_err, sizeof sub_err) != 0) {
        seterr(err, errlen, "cannot read our CURVE secret key: %s", sub_err);
        goto out;
    }
    memcpy(path + blen, ".public", sizeof ".public");
    if (sc_curve_read(path, false, k->public, sub_err, sizeof sub_err) != 0) {
        seterr(err, errlen, "cannot read our CURVE public key: %s", sub_err);
        goto out;
    }
    if (sc_curve_public_of(k->secret, derived, NULL, 0) != 0 ||
        strcmp(derived, k->public) != 0) {
        seterr(err, errlen, "%s does not belong to %s.secret", path,
               o->client_key_base);
        goto out;
    }
    rc = 0;
out:
    free(path);
    return rc;
}

static int set_int(void *sock, int opt, int val)
{
    return zmq_setsockopt(sock, opt, &val, sizeof val);
}

static int load_state_entry(void *arg, const char *channel, const char *epoch,
                            uint64_t seq)
{
    sc_client_t *c = arg;
    sc_track_t *t = sc_order_track(c->order, channel, true);
    if (!t)
        return 1;
    sc_order_start(c->order, t, epoch, seq);
    sc_order_handed(t, epoch, seq);
    t->out_dirty = false;
    return 0;
}

/* The options of the first header: the members up to max_buffered. */
#define OPTIONS_V1_SIZE \
    (offsetof(sc_client_options_t, max_buffered) + sizeof(size_t))

sc_client_t *(sc_client_new)(const sc_client_options_t *opts, char *err,
                             size_t errlen)
{
    return sc_client_new_sized(opts, OPTIONS_V1_SIZE, err, errlen);
}

sc_client_t *sc_client_new_sized(const sc_client_options_t *opts,
                                 size_t size, char *err, size_t errlen)
{
    char sub_err[512];
    curve_keys_t keys;

    /* the caller's members, the defaults (0) for those it does not know */
    sc_client_options_t mine;
    memset(&mine, 0, sizeof mine);
    if (opts && size < OPTIONS_V1_SIZE) {
        seterr(err, errlen, "sc_client_new: options of %zu bytes, fewer "
               "than any version of sc_client_options_t has (%zu)", size,
               (size_t)OPTIONS_V1_SIZE);
        return NULL;
    }
    if (opts)
        memcpy(&mine, opts, size < sizeof mine ? size : sizeof mine);
    const sc_client_options_t *o = opts ? &mine : NULL;

    if (!o || !o->endpoint || !*o->endpoint) {
        seterr(err, errlen, "no endpoint given");
        return NULL;
    }
    if (!o->jwks_path || !*o->jwks_path) {
        seterr(err, errlen, "no JWKS file given");
        return NULL;
    }
    bool have_server = o->server_public_key && *o->server_public_key;
    bool have_base = o->client_key_base && *o->client_key_base;
    if (have_server != have_base) {
        seterr(err, errlen, "CURVE needs both the gateway public key and "
               "our key pair (%s missing)",
               have_server ? "client key base" : "gateway public key");
        return NULL;
    }
    bool have_svc = o->service_endpoint && *o->service_endpoint;
    if (o->snapshot && !have_svc) {
        seterr(err, errlen, "snapshots need the gateway's service endpoint");
        return NULL;
    }
    if (o->connect_timeout_ms < 0 || o->request_timeout_ms < 0 ||
        o->request_attempts < 0 || o->rcvhwm < 0) {
        seterr(err, errlen, "negative timeout, attempt count or HWM");
        return NULL;
    }
    if (o->verify_threads < 0 || o->verify_threads > MAX_VERIFY_THREADS) {
        seterr(err, errlen, "verify_threads %d: must be 0..%d",
               o->verify_threads, MAX_VERIFY_THREADS);
        return NULL;
    }
    if (sc_sodium_init() != 0) {
        seterr(err, errlen, "cannot initialise libsodium");
        return NULL;
    }

    sc_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    memset(&keys, 0, sizeof keys);
    c->endpoint = strdup(o->endpoint);
    c->order = sc_order_new(o->max_buffered ? o->max_buffered
                                            : DEFAULT_MAX_BUFFERED);
    c->jobs = calloc(VERIFY_BATCH, sizeof *c->jobs);
    c->live = calloc(VERIFY_BATCH, sizeof *c->live);
    if (!c->endpoint || !c->order || !c->jobs || !c->live) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    int workers = o->verify_threads > 1 ? o->verify_threads - 1 : 0;
    c->pool = sc_workpool_new(workers, "verify");
    if (!c->pool) {
        seterr(err, errlen, "cannot start %d verifying thread%s", workers,
               workers == 1 ? "" : "s");
        goto fail;
    }
    c->snapshot = o->snapshot != 0;
    c->jwks = sc_jwks_load(o->jwks_path, sub_err, sizeof sub_err);
    if (!c->jwks) {
        /* sc_jwks_load names the file itself; say it once. */
        const char *why = sub_err;
        size_t plen = strlen(o->jwks_path);
        if (strncmp(why, o->jwks_path, plen) == 0 && why[plen] == ':')
            why += plen + (why[plen + 1] == ' ' ? 2 : 1);
        seterr(err, errlen, "cannot read JWKS %s: %s", o->jwks_path, why);
        goto fail;
    }
    if (o->state_path && *o->state_path) {
        c->state = sc_state_open(o->state_path, err, errlen);
        if (!c->state)
            goto fail;
        sc_state_foreach(c->state, load_state_entry, c);
    }

    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        seterr(err, errlen, "cannot create ZeroMQ context: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    c->sub = zmq_socket(c->ctx, ZMQ_SUB);
    if (!c->sub) {
        seterr(err, errlen, "cannot create SUB socket: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    int timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                            : DEFAULT_CONNECT_TIMEOUT_MS;
    if (set_int(c->sub, ZMQ_LINGER, 0) != 0 ||
        set_int(c->sub, ZMQ_RCVHWM,
                o->rcvhwm > 0 ? o->rcvhwm : DEFAULT_RCV_HWM) != 0 ||
        set_int(c->sub, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS) != 0 ||
        set_int(c->sub, ZMQ_CONNECT_TIMEOUT, timeout) != 0 ||
        set_int(c->sub, ZMQ_HANDSHAKE_IVL, timeout) != 0) {
        seterr(err, errlen, "cannot set socket options: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    int64_t maxsize = MAX_MSG_SIZE;
    if (zmq_setsockopt(c->sub, ZMQ_MAXMSGSIZE, &maxsize,
                       sizeof maxsize) != 0) {
        seterr(err, errlen, "cannot set ZMQ_MAXMSGSIZE: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (have_server) {
        if (read_curve(o, &keys, err, errlen) != 0)
            goto fail;
        if (zmq_setsockopt(c->sub, ZMQ_CURVE_SERVERKEY, keys.server,
                           SC_Z85_KEY_LEN) != 0 ||
            zmq_setsockopt(c->sub, ZMQ_CURVE_PUBLICKEY, keys.public,
                           SC_Z85_KEY_LEN) != 0 ||
            zmq_setsockopt(c->sub, ZMQ_CURVE_SECRETKEY, keys.secret,
                           SC_Z85_KEY_LEN) != 0) {
            seterr(err, errlen, "cannot set CURVE keys: %s",
                   zmq_strerror(zmq_errno()));
            goto fail;
        }
        c->curve = true;
    }

    /* The monitor must run before connect() so that no handshake event is
     * missed: a ZAP rejection is only ever reported there. */
    c->mon = sc_mon_new(c->ctx, c->sub, o->endpoint, c->curve, err, errlen);
    if (!c->mon)
        goto fail;
    if (zmq_connect(c->sub, o->endpoint) != 0) {
        char q[TOPIC_QUOTE_MAX * 4 + 8];
        int e = zmq_errno();
        quote_bytes(o->endpoint, strlen(o->endpoint), q, sizeof q);
        seterr(err, errlen, "bad endpoint '%s': %s", q, zmq_strerror(e));
        goto fail;
    }
    if (have_svc) {
        sc_svc_opts_t so = {
            .endpoint = o->service_endpoint,
            .server_key = c->curve ? keys.server : NULL,
            .public_key = keys.public,
            .secret_key = keys.secret,
            .connect_timeout_ms = timeout,
            .request_timeout_ms = o->request_timeout_ms > 0
                                      ? o->request_timeout_ms
                                      : DEFAULT_REQUEST_TIMEOUT_MS,
            .attempts = o->request_attempts > 0 ? o->request_attempts
                                                : DEFAULT_REQUEST_ATTEMPTS,
        };
        c->svc = sc_svc_new(c->ctx, &so, err, errlen);
        if (!c->svc)
            goto fail;
    }
    sodium_memzero(&keys, sizeof keys);
    return c;

fail:
    sodium_memzero(&keys, sizeof keys);
    sc_client_destroy(&c);
    return NULL;
}

static void free_entry(qent_t *e)
{
    sc_held_free(e->msg);
    free(e->ev);
    free(e);
}

void sc_client_destroy(sc_client_t **client_p)
{
    if (!client_p || !*client_p)
        return;
    sc_client_t *c = *client_p;
    sc_workpool_destroy(&c->pool);
    free(c->jobs);
    free(c->live);
    sc_mon_destroy(&c->mon); /* before its socket closes */
    sc_svc_destroy(&c->svc);
    if (c->sub)
        zmq_close(c->sub);
    if (c->ctx)
        zmq_ctx_term(c->ctx); /* every socket has LINGER 0: cannot hang */
    while (c->q_head) {
        qent_t *e = c->q_head;
        c->q_head = e->next;
        free_entry(e);
    }
    sc_held_free(c->cur);
    sc_order_destroy(&c->order);
    sc_state_close(&c->state);
    json_decref(c->identity);
    free(c->grants);
    for (size_t i = 0; i < c->n_subtrees; i++)
        free(c->subtrees[i]);
    free(c->subtrees);
    free(c->snapped);
    sc_jwks_destroy(&c->jwks);
    free(c->endpoint);
    free(c);
    *client_p = NULL;
}

/* ---- who am I ---------------------------------------------------------- */

static int ensure_identity(sc_client_t *c, char *err, size_t errlen)
{
    if (c->identity)
        return 0;
    if (!c->svc) {
        seterr(err, errlen, "no service endpoint given: cannot ask the "
               "gateway who we are");
        return SC_CLIENT_ERROR;
    }
    sc_svc_reply_t rep;
    int rc = sc_svc_request(c->svc, "whoami", NULL, &rep, err, errlen);
    if (rc != 0)
        return rc;
    json_t *b = rep.body;
    json_t *grants = json_object_get(b, "grants");
    json_t *agency = json_object_get(b, "agency");
    json_t *epoch = json_object_get(b, "epoch");
    json_t *chans = json_object_get(b, "channels");
    if (!rep.ok) {
        seterr(err, errlen, "service %s refused whoami: %s",
               sc_svc_endpoint(c->svc),
               json_string_value(json_object_get(b, "text"))
                   ? json_string_value(json_object_get(b, "text"))
                   : "(no text)");
        sc_svc_reply_clear(&rep);
        return SC_CLIENT_ERROR;
    }
    if (!json_is_string(agency) || !json_is_string(epoch) ||
        !json_is_array(grants) || !json_is_object(chans) ||
        strlen(json_string_value(epoch)) > SC_EPOCH_MAX) {
        seterr(err, errlen, "service %s: malformed whoami reply",
               sc_svc_endpoint(c->svc));
        sc_svc_reply_clear(&rep);
        return SC_CLIENT_ERROR;
    }
    size_t n = json_array_size(grants);
    c->grants = calloc(n + 1, sizeof *c->grants);
    if (!c->grants) {
        seterr(err, errlen, "out of memory");
        sc_svc_reply_clear(&rep);
        return SC_CLIENT_ERROR;
    }
    c->n_grants = 0;
    for (size_t i = 0; i < n; i++) {
        const char *g = json_string_value(json_array_get(grants, i));
        if (g)
            c->grants[c->n_grants++] = g;
    }
    c->identity = json_incref(b);
    sc_svc_reply_clear(&rep);
    return 0;
}

int sc_client_whoami(sc_client_t *c, sc_client_identity_t *out, char *err,
                     size_t errlen)
{
    if (!c || !out) {
        seterr(err, errlen, "sc_client_whoami: bad arguments");
        return SC_CLIENT_ERROR;
    }
    if (c->fatal_rc) {
        seterr(err, errlen, "%s", c->fatal);
        return c->fatal_rc;
    }
    int rc = ensure_identity(c, err, errlen);
    if (rc == SC_CLIENT_AUTH) {
        c->fatal_rc = rc;
        snprintf(c->fatal, sizeof c->fatal, "%s", err ? err : "rejected");
    }
    if (rc != 0)
        return rc;
    out->agency = json_string_value(json_object_get(c->identity, "agency"));
    out->epoch = json_string_value(json_object_get(c->identity, "epoch"));
    out->n_grants = c->n_grants;
    out->grants = c->grants;
    return 0;
}

static bool granted(const sc_client_t *c, const char *subtree)
{
    for (size_t i = 0; i < c->n_grants; i++)
        if (sc_subtree_covers(c->grants[i], subtree, strlen(subtree)))
            return true;
    return false;
}

int sc_client_subscribe(sc_client_t *c, const char *subtree, char *err,
                        size_t errlen)
{
    if (!c || !subtree) {
        seterr(err, errlen, "no subtree given");
        return -1;
    }
    size_t len = strlen(subtree);
    if (!sc_subtree_valid(subtree, len)) {
        char q[TOPIC_QUOTE_MAX * 4 + 8];
        quote_bytes(subtree, len, q, sizeof q);
        seterr(err, errlen, "bad subtree '%s': want lowercase [a-z0-9-] "
               "segments each followed by '.', e.g. 'energy.' or "
               "'energy.nuclear.tasks.'", q);
        return -1;
    }
    if (c->svc) {
        sc_client_identity_t id;
        int rc = sc_client_whoami(c, &id, err, errlen);
        if (rc != 0)
            return rc;
        if (!granted(c, subtree)) {
            seterr(err, errlen, "refused: %s (not granted to agency %s)",
                   subtree, id.agency);
            return SC_CLIENT_NOT_GRANTED;
        }
    }
    for (size_t i = 0; i < c->n_subtrees; i++)
        if (strcmp(c->subtrees[i], subtree) == 0)
            return 0;
    char **v = realloc(c->subtrees, (c->n_subtrees + 1) * sizeof *v);
    if (v)
        c->subtrees = v;
    bool *s = v ? realloc(c->snapped, (c->n_subtrees + 1) * sizeof *s) : NULL;
    if (s)
        c->snapped = s;
    char *copy = s ? strdup(subtree) : NULL;
    if (!copy) {
        seterr(err, errlen, "out of memory");
        return SC_CLIENT_ERROR;
    }
    /* Subscribe before any snapshot is asked for, so that nothing falls
     * between the two (live messages at or below the snapshot's head are
     * dropped as duplicates). */
    if (zmq_setsockopt(c->sub, ZMQ_SUBSCRIBE, subtree, len) != 0) {
        seterr(err, errlen, "cannot subscribe to '%s': %s", subtree,
               zmq_strerror(zmq_errno()));
        free(copy);
        return SC_CLIENT_ERROR;
    }
    c->subtrees[c->n_subtrees] = copy;
    c->snapped[c->n_subtrees] = false;
    c->n_subtrees++;
    c->started = false; /* a new subtree may need a snapshot */
    return 0;
}

void sc_client_stats_sized(const sc_client_t *c, sc_client_stats_t *out,
                           size_t size)
{
    if (!out)
        return;
    if (size > sizeof *out)
        size = sizeof *out;
    if (!c) {
        memset(out, 0, size);
        return;
    }
    memcpy(out, &c->stats, size);
}

/* the symbol programs built against the header before `snapshot` call */
void (sc_client_stats)(const sc_client_t *c, sc_client_stats_t *out)
{
    sc_client_stats_sized(c, out, offsetof(sc_client_stats_t, snapshot));
}

sc_client_origin_t sc_client_origin(const sc_client_t *c)
{
    return c && c->cur ? (sc_client_origin_t)c->cur->origin
                       : SC_CLIENT_FROM_LIVE;
}

/* ---- verification (shared by recv, replay and verify) ----------------- */

static int refuse(sc_client_t *c, const char *topic, size_t topic_len,
                  const char *reason, char *err, size_t errlen)
{
    char q[TOPIC_QUOTE_MAX * 4 + 8];
    quote_bytes(topic, topic_len, q, sizeof q);
    c->stats.refused++;
    seterr(err, errlen, "refused message on %s: %s",
           topic_len ? q : "(empty topic)", reason);
    return SC_CLIENT_REFUSED;
}

/* The checks of one [topic][jws] pair, on any verifying thread (reads
 * only the JWKS): j->rc, and j->f / j->kid for a message or j->reason. */
static void check_job(vjob_t *j, const sc_jwks_t *jwks)
{
    j->kid[0] = '\0';
    j->reason[0] = '\0';
    memset(&j->f, 0, sizeof j->f);
    j->rc = SC_CLIENT_REFUSED;
    const char *why = NULL;
    if (j->topic_len == 0)
        why = "empty topic frame";
    else if (j->topic[j->topic_len - 1] != '.')
        why = "topic does not end in '.'";
    else if (j->jws_len == 0)
        why = "empty JWS frame";
    if (why) {
        snprintf(j->reason, sizeof j->reason, "%s", why);
        return;
    }
    int rc = sc_envelope_verify_fields(jwks, j->topic, j->topic_len, j->jws,
                                       j->jws_len, &j->f, j->kid, j->reason,
                                       sizeof j->reason);
    if (rc == SC_ENV_ENOMEM) {
        j->rc = SC_CLIENT_ERROR;
        return;
    }
    if (rc != 0) {
        if (!j->reason[0])
            snprintf(j->reason, sizeof j->reason,
                     "verification failed (code %d)", rc);
        return;
    }
    /* The epoch goes into the state file: printable, no blanks. */
    if (!sc_state_epoch_valid(j->f.epoch, strlen(j->f.epoch))) {
        sc_envelope_fields_free(&j->f);
        snprintf(j->reason, sizeof j->reason,
                 "envelope field missing or of the wrong type");
        return;
    }
    j->rc = SC_CLIENT_MESSAGE;
}

static void check_job_at(void *arg, size_t i, int worker)
{
    (void)worker;
    sc_client_t *c = arg;
    check_job(&c->jobs[i], c->jwks);
}

/* Take the result of a checked job, on the calling thread: counted, and
 * SC_CLIENT_MESSAGE with *out a new held message, SC_CLIENT_REFUSED (err
 * says why) or SC_CLIENT_ERROR (out of memory). */
static int take_job(sc_client_t *c, vjob_t *j, sc_held_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (j->rc == SC_CLIENT_ERROR) {
        seterr(err, errlen, "out of memory"); /* not the message's fault */
        return SC_CLIENT_ERROR;
    }
    c->stats.received++;
    if (j->rc != SC_CLIENT_MESSAGE)
        return refuse(c, j->topic, j->topic_len, j->reason, err, errlen);
    sc_envelope_fields_t *f = &j->f;
    sc_held_t h = {
        .seq = f->seq,
        .channel = f->channel,
        .epoch = f->epoch,
        .id = f->id,
        .ts = f->ts,
        .kind = f->kind,
        .key = f->key, /* NULL for a null key */
        .kid = j->kid,
        .envelope = f->text,
        .envelope_len = f->text_len,
        .jws = j->jws,
        .jws_len = j->jws_len,
    };
    *out = sc_held_new(&h);
    sc_envelope_fields_free(f);
    if (!*out) {
        c->stats.received--; /* not the message's fault */
        seterr(err, errlen, "out of memory");
        return SC_CLIENT_ERROR;
    }
    return SC_CLIENT_MESSAGE;
}

/* Verify one [topic][jws] pair on this thread: take_job's results. */
static int verify(sc_client_t *c, const char *topic, size_t topic_len,
                  const char *jws, size_t jws_len, sc_held_t **out,
                  char *err, size_t errlen)
{
    vjob_t j = {.topic = topic, .topic_len = topic_len, .jws = jws,
                .jws_len = jws_len};
    check_job(&j, c->jwks);
    return take_job(c, &j, out, err, errlen);
}

int sc_client_verify(sc_client_t *c, const char *topic, size_t topic_len,
                     const char *jws, size_t jws_len, sc_message_t *msg,
                     char *err, size_t errlen)
{
    if (!c || (!topic && topic_len) || (!jws && jws_len)) {
        seterr(err, errlen, "sc_client_verify: bad arguments");
        return SC_CLIENT_ERROR;
    }
    sc_held_free(c->cur);
    c->cur = NULL;
    sc_held_t *h;
    int rc = verify(c, topic ? topic : "", topic_len, jws ? jws : "",
                    jws_len, &h, err, errlen);
    if (rc == SC_CLIENT_MESSAGE) {
        c->cur = h;
        if (msg)
            sc_held_message(h, msg);
        c->stats.delivered++;
    }
    return rc;
}

/* ---- the delivery queue -------------------------------------------------- */

static qent_t *enqueue(sc_client_t *c, qkind_t kind)
{
    qent_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->kind = kind;
    if (kind != Q_MSG && !(e->ev = calloc(1, sizeof *e->ev))) {
        free(e);
        return NULL;
    }
    if (c->q_tail)
        c->q_tail->next = e;
    else
        c->q_head = e;
    c->q_tail = e;
    return e;
}

static int queue_msg(sc_client_t *c, sc_held_t *m)
{
    qent_t *e = enqueue(c, Q_MSG);
    if (!e) {
        sc_held_free(m);
        return -1;
    }
    e->msg = m;
    return 0;
}

static void queue_refused(sc_client_t *c, const char *text)
{
    qent_t *e = enqueue(c, Q_REFUSED);
    if (e)
        snprintf(e->ev->text, sizeof e->ev->text, "%s", text);
}

/* Seqs first..last of t are lost for good: say so, and move past them. */
static void queue_gap(sc_client_t *c, sc_track_t *t, uint64_t first,
                      uint64_t last, const char *reason)
{
    if (last < first)
        return;
    qent_t *e = enqueue(c, Q_GAP);
    if (e) {
        qev_t *v = e->ev;
        v->code = SC_CLIENT_GAP;
        snprintf(v->channel, sizeof v->channel, "%s", t->channel);
        snprintf(v->epoch, sizeof v->epoch, "%s", t->epoch);
        v->first = first;
        v->last = last;
        snprintf(v->reason, sizeof v->reason, "%s", reason);
        snprintf(v->text, sizeof v->text,
                 "unrecoverable gap on %s: seq %" PRIu64 "..%" PRIu64 " %s",
                 t->channel, first, last, reason);
    }
    sc_order_skip(t, last);
}

static void queue_position(sc_client_t *c, sc_track_t *t)
{
    qent_t *e = enqueue(c, Q_POSITION);
    if (e) {
        snprintf(e->ev->channel, sizeof e->ev->channel, "%s", t->channel);
        snprintf(e->ev->epoch, sizeof e->ev->epoch, "%s", t->epoch);
        e->ev->last = t->last;
    }
}

/* Move held messages that are now in order to the queue. */
static void drain_held(sc_client_t *c, sc_track_t *t)
{
    sc_held_t *m;
    uint64_t dups = 0;
    while ((m = sc_order_pop(c->order, t, &dups)))
        queue_msg(c, m);
    c->stats.duplicates += dups;
}

static int pop(sc_client_t *c, sc_message_t *msg, char *err, size_t errlen)
{
    while (c->q_head) {
        qent_t *e = c->q_head;
        c->q_head = e->next;
        if (!c->q_head)
            c->q_tail = NULL;
        int rc = SC_CLIENT_TIMEOUT;
        sc_track_t *t = NULL;
        if (e->kind == Q_MSG) {
            t = sc_order_track(c->order, e->msg->channel, false);
            if (t)
                sc_order_handed(t, e->msg->epoch, e->msg->seq);
            c->cur = e->msg;
            e->msg = NULL;
            if (msg)
                sc_held_message(c->cur, msg);
            c->stats.delivered++;
            if (c->cur->origin == SC_CLIENT_FROM_SNAPSHOT)
                c->stats.snapshot++;
            else if (c->cur->origin == SC_CLIENT_FROM_REPLAY)
                c->stats.repaired++;
            else
                c->stats.live++;
            rc = SC_CLIENT_MESSAGE;
        } else if (e->kind == Q_POSITION) {
            t = sc_order_track(c->order, e->ev->channel, false);
            if (t)
                sc_order_handed(t, e->ev->epoch, e->ev->last);
        } else if (e->kind == Q_REFUSED) {
            seterr(err, errlen, "%s", e->ev->text);
            rc = SC_CLIENT_REFUSED;
        } else {
            c->event = *e->ev;
            c->have_event = true;
            seterr(err, errlen, "%s", e->ev->text);
            if (e->kind == Q_GAP) {
                t = sc_order_track(c->order, e->ev->channel, false);
                if (t)
                    sc_order_handed(t, e->ev->epoch, e->ev->last);
                c->stats.lost += e->ev->last - e->ev->first + 1;
                rc = SC_CLIENT_GAP;
            } else {
                rc = SC_CLIENT_EPOCH;
            }
        }
        free_entry(e);
        if (rc != SC_CLIENT_TIMEOUT)
            return rc;
    }
    return SC_CLIENT_TIMEOUT;
}

int sc_client_event(const sc_client_t *c, sc_client_event_t *out)
{
    if (!c || !out || !c->have_event)
        return -1;
    const qev_t *v = &c->event;
    bool gap = v->code == SC_CLIENT_GAP;
    out->code = v->code;
    out->channel = v->channel;
    out->epoch = v->epoch;
    out->old_epoch = gap ? NULL : v->old_epoch;
    out->first = gap ? v->first : 0;
    out->last = gap ? v->last : 0;
    out->reason = gap ? v->reason : NULL;
    return 0;
}

/* ---- snapshots, epochs, replays ----------------------------------------- */

static bool subscribed(const sc_client_t *c, const char *channel)
{
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    for (size_t i = 0; tl > 0 && i < c->n_subtrees; i++)
        if (sc_subtree_covers(c->subtrees[i], topic, (size_t)tl))
            return true;
    return false;
}

static const char *body_text(json_t *b)
{
    const char *t = json_string_value(json_object_get(b, "text"));
    return t ? t : "(no text)";
}

/* Item i of a replay or snapshot reply, taken in order (i = 0, 1, ...;
 * each exactly once): a new held message (counted as replayed), or NULL
 * (refused and queued as such, or out of memory). Items are checked a
 * slice of VERIFY_BATCH at a time, on the verifying threads. */
static sc_held_t *reply_item(sc_client_t *c, sc_svc_reply_t *rep, size_t i,
                             sc_client_origin_t origin)
{
    if (i % VERIFY_BATCH == 0) {
        size_t n = rep->n_items - i;
        if (n > VERIFY_BATCH)
            n = VERIFY_BATCH;
        for (size_t k = 0; k < n; k++) {
            sc_svc_item_t *it = &rep->items[i + k];
            vjob_t *j = &c->jobs[k];
            j->topic = zmq_msg_data(&it->topic);
            j->topic_len = zmq_msg_size(&it->topic);
            j->jws = zmq_msg_data(&it->jws);
            j->jws_len = zmq_msg_size(&it->jws);
        }
        sc_workpool_run(c->pool, check_job_at, c, n);
    }
    char e2[600];
    sc_held_t *m;
    int v = take_job(c, &c->jobs[i % VERIFY_BATCH], &m, e2, sizeof e2);
    if (v == SC_CLIENT_REFUSED)
        queue_refused(c, e2);
    if (v != SC_CLIENT_MESSAGE)
        return NULL;
    c->stats.replayed++;
    m->origin = origin;
    return m;
}

/* Snapshot `subtree`: the latest message per key of every channel under
 * it that has no position yet; those channels then start at the
 * snapshot's head. */
static int do_snapshot(sc_client_t *c, const char *subtree, char *err,
                       size_t errlen)
{
    json_t *args = json_pack("{s:s}", "subtree", subtree);
    sc_svc_reply_t rep;
    int rc = args ? sc_svc_request(c->svc, "snapshot", args, &rep, err,
                                   errlen)
                  : SC_CLIENT_ERROR;
    json_decref(args);
    if (rc != 0)
        return rc;
    json_t *b = rep.body;
    const char *epoch = json_string_value(json_object_get(b, "epoch"));
    json_t *heads = json_object_get(b, "heads");
    if (!rep.ok || !epoch || !json_is_object(heads) ||
        strlen(epoch) > SC_EPOCH_MAX) {
        if (rep.ok)
            seterr(err, errlen, "service %s: malformed snapshot reply for "
                   "%s", sc_svc_endpoint(c->svc), subtree);
        else
            seterr(err, errlen, "service %s refused a snapshot of %s: %s",
                   sc_svc_endpoint(c->svc), subtree, body_text(b));
        sc_svc_reply_clear(&rep);
        return SC_CLIENT_ERROR;
    }
    for (size_t i = 0; i < rep.n_items; i++) {
        sc_held_t *m = reply_item(c, &rep, i, SC_CLIENT_FROM_SNAPSHOT);
        if (!m)
            continue;
        sc_track_t *t = sc_order_track(c->order, m->channel, true);
        if (!t || t->known || strcmp(m->epoch, epoch) != 0) {
            c->stats.duplicates++;
            sc_held_free(m);
            continue;
        }
        queue_msg(c, m);
    }
    const char *ch;
    json_t *jh;
    json_object_foreach(heads, ch, jh) {
        if (!json_is_integer(jh) || json_integer_value(jh) < 0 ||
            !sc_channel_valid(ch))
            continue;
        sc_track_t *t = sc_order_track(c->order, ch, true);
        if (!t || t->known)
            continue;
        sc_order_start(c->order, t, epoch, (uint64_t)json_integer_value(jh));
        queue_position(c, t);
    }
    sc_svc_reply_clear(&rep);
    return 0;
}

/* t's journal was replaced: say so and start over (with a snapshot of the
 * channel if snapshots are on). */
static int epoch_changed(sc_client_t *c, sc_track_t *t, const char *epoch,
                         char *err, size_t errlen)
{
    qent_t *e = enqueue(c, Q_EPOCH);
    if (e) {
        qev_t *v = e->ev;
        v->code = SC_CLIENT_EPOCH;
        snprintf(v->channel, sizeof v->channel, "%s", t->channel);
        snprintf(v->epoch, sizeof v->epoch, "%s", epoch);
        snprintf(v->old_epoch, sizeof v->old_epoch, "%s",
                 t->epoch[0] ? t->epoch : "?");
        snprintf(v->text, sizeof v->text,
                 "epoch changed on %s: journal %s was replaced by %s; "
                 "tracking restarts%s", t->channel, v->old_epoch, epoch,
                 c->snapshot ? " from a snapshot" : "");
    }
    sc_order_reset(c->order, t);
    if (c->svc && c->snapshot) {
        char subtree[SC_CHANNEL_MAX + 2];
        if (sc_channel_topic(t->channel, subtree, sizeof subtree) > 0)
            return do_snapshot(c, subtree, err, errlen);
    }
    return 0;
}

/* One replay page for the next channel that needs one. 1 = did one,
 * 0 = nothing to do, negative = error code. */
static int repair_one(sc_client_t *c, char *err, size_t errlen)
{
    sc_track_t *t = NULL;
    uint64_t from = 0, to = 0;
    sc_track_t *start = c->rr ? c->rr->next : NULL;
    if (!start)
        start = sc_order_first(c->order);
    for (sc_track_t *x = start; x && !t; x = x->next)
        if (sc_order_wants(x, &from, &to))
            t = x;
    for (sc_track_t *x = sc_order_first(c->order); x && x != start && !t;
         x = x->next)
        if (sc_order_wants(x, &from, &to))
            t = x;
    if (!t)
        return 0;
    c->rr = t;
    /* Only asking whether our epoch still holds (a heartbeat named
     * another): finding nothing new is no gap then. */
    bool probe = t->suspect_epoch && t->target <= t->last;

    uint64_t want = to - from + 1;
    json_t *args = json_pack("{s:s, s:I, s:I, s:s}", "channel", t->channel,
                             "from", (json_int_t)from, "limit",
                             (json_int_t)(want > 100000 ? 100000 : want),
                             "epoch", t->epoch);
    sc_svc_reply_t rep;
    int rc = args ? sc_svc_request(c->svc, "replay", args, &rep, err, errlen)
                  : SC_CLIENT_ERROR;
    json_decref(args);
    if (rc != 0)
        return rc;
    json_t *b = rep.body;
    if (!rep.ok) {
        json_int_t code = json_integer_value(json_object_get(b, "code"));
        const char *name = json_string_value(json_object_get(b, "error"));
        const char *ne = json_string_value(json_object_get(b, "epoch"));
        json_t *oldest = json_object_get(b, "oldest");
        if (code == 409 && ne && strlen(ne) <= SC_EPOCH_MAX) {
            rc = epoch_changed(c, t, ne, err, errlen);
        } else if (code == 410 && json_is_integer(oldest) &&
                   (uint64_t)json_integer_value(oldest) > from) {
            t->suspect_epoch = false;
            queue_gap(c, t, from, (uint64_t)json_integer_value(oldest) - 1,
                      "pruned");
            drain_held(c, t);
        } else {
            char why[200];
            snprintf(why, sizeof why, "not served by the gateway (%lld %s: "
                     "%.120s)", (long long)code, name ? name : "?",
                     body_text(b));
            t->suspect_epoch = false;
            queue_gap(c, t, from, to, why);
            drain_held(c, t);
        }
        sc_svc_reply_clear(&rep);
        return rc < 0 ? rc : 1;
    }
    t->suspect_epoch = false;
    for (size_t i = 0; i < rep.n_items; i++) {
        sc_held_t *m = reply_item(c, &rep, i, SC_CLIENT_FROM_REPLAY);
        if (!m)
            continue;
        if (strcmp(m->channel, t->channel) != 0 ||
            strcmp(m->epoch, t->epoch) != 0) {
            char e2[600];
            refuse(c, zmq_msg_data(&rep.items[i].topic),
                   zmq_msg_size(&rep.items[i].topic), "replayed message of "
                   "another channel or epoch than asked for", e2, sizeof e2);
            queue_refused(c, e2);
            sc_held_free(m);
            continue;
        }
        sc_order_verdict_t vd = sc_order_replayed(t, m);
        if (vd == SC_ORD_HOLE) {
            queue_gap(c, t, t->last + 1, m->seq - 1,
                      "missing from the gateway's replay");
            vd = sc_order_replayed(t, m);
        }
        if (vd == SC_ORD_DELIVER) {
            queue_msg(c, m);
        } else {
            c->stats.duplicates++;
            sc_held_free(m);
        }
    }
    json_t *more = json_object_get(b, "more");
    if (!probe && json_is_true(more) && t->last < from) {
        /* Nothing usable at `from` although the gateway has more (every
         * item refused): asking again would bring the same. */
        queue_gap(c, t, from, to, "not obtainable by replay (refused)");
    } else if (!probe && !json_is_true(more) && t->last < to) {
        char why[120];
        snprintf(why, sizeof why, "not in the gateway's journal (head %lld)",
                 (long long)json_integer_value(json_object_get(b, "head")));
        queue_gap(c, t, t->last + 1, to, why);
    }
    drain_held(c, t);
    sc_svc_reply_clear(&rep);
    return 1;
}

static bool repair_pending(sc_client_t *c)
{
    if (!c->svc)
        return false;
    for (sc_track_t *t = sc_order_first(c->order); t; t = t->next)
        if (sc_order_wants(t, NULL, NULL))
            return true;
    return false;
}

/* Once, before the first live message: compare stored positions with the
 * gateway's heads, and take the snapshots asked for. Idempotent; may be
 * called again after a failure. */
static int start(sc_client_t *c, char *err, size_t errlen)
{
    if (!c->svc) {
        c->started = true;
        return 0;
    }
    int rc = ensure_identity(c, err, errlen);
    if (rc != 0)
        return rc;
    if (!c->state_checked) {
        const char *epoch =
            json_string_value(json_object_get(c->identity, "epoch"));
        json_t *heads = json_object_get(c->identity, "channels");
        for (sc_track_t *t = sc_order_first(c->order); t; t = t->next) {
            if (!t->known || !subscribed(c, t->channel))
                continue;
            if (strcmp(t->epoch, epoch) != 0) {
                /* no per-channel snapshot here: the subtree's comes next */
                bool snap = c->snapshot;
                c->snapshot = false;
                epoch_changed(c, t, epoch, err, errlen);
                c->snapshot = snap;
                continue;
            }
            json_t *h = json_object_get(heads, t->channel);
            if (json_is_integer(h) && json_integer_value(h) > 0)
                sc_order_head(t, (uint64_t)json_integer_value(h));
        }
        c->state_checked = true;
    }
    for (size_t i = 0; c->snapshot && i < c->n_subtrees; i++) {
        if (c->snapped[i])
            continue;
        rc = do_snapshot(c, c->subtrees[i], err, errlen);
        if (rc != 0)
            return rc;
        c->snapped[i] = true;
    }
    c->started = true;
    return 0;
}

/* ---- live messages --------------------------------------------------- */

static int on_live(sc_client_t *c, sc_held_t *m, char *err, size_t errlen)
{
    sc_track_t *t = sc_order_track(c->order, m->channel, true);
    if (!t) {
        sc_held_free(m);
        seterr(err, errlen, "out of memory");
        return SC_CLIENT_ERROR;
    }
    int rc = 0;
    if (t->known && strcmp(t->epoch, m->epoch) != 0)
        rc = epoch_changed(c, t, m->epoch, err, errlen);
    if (!t->known) {
        /* A channel we have no position for. With snapshots on it was born
         * after our snapshot: all of it is new to us, from seq 1. Else we
         * start with this message. */
        if (c->svc && c->snapshot && rc == 0)
            sc_order_start(c->order, t, m->epoch, 0);
        else
            sc_order_start(c->order, t, m->epoch, m->seq ? m->seq - 1 : 0);
    }
    if (!c->svc && m->seq > t->last + 1)
        queue_gap(c, t, t->last + 1, m->seq - 1,
                  "lost (no service endpoint to replay from)");
    size_t before = sc_order_buffered(c->order);
    switch (sc_order_live(c->order, t, m)) {
    case SC_ORD_DELIVER:
        queue_msg(c, m);
        drain_held(c, t);
        break;
    case SC_ORD_HELD:
        break;
    case SC_ORD_OVERFLOW:
        c->stats.overflowed += 1 + (before - sc_order_buffered(c->order));
        sc_held_free(m);
        break;
    default:
        c->stats.duplicates++;
        sc_held_free(m);
        break;
    }
    return rc;
}

static void on_heartbeat(sc_client_t *c, const char *topic, size_t tlen,
                         const char *body, size_t blen, char *err,
                         size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
    const char *ch = json_string_value(json_object_get(o, "channel"));
    const char *epoch = json_string_value(json_object_get(o, "epoch"));
    json_t *jh = json_object_get(o, "head");
    if (!ch || !epoch || !json_is_integer(jh) || json_integer_value(jh) < 0 ||
        strlen(epoch) == 0 || strlen(epoch) > SC_EPOCH_MAX ||
        strlen(ch) + 1 != tlen || memcmp(ch, topic, tlen - 1) != 0) {
        json_decref(o);
        c->stats.received++; /* a malformed one counts as a refused message */
        refuse(c, topic, tlen, "malformed heartbeat (want a JSON object "
               "with channel = the topic, epoch and head)", err, errlen);
        queue_refused(c, err);
        return;
    }
    c->stats.heartbeats++; /* a heartbeat is no data message */
    uint64_t head = (uint64_t)json_integer_value(jh);
    sc_track_t *t = sc_order_track(c->order, ch, false);
    if (!t || !t->known) {
        /* With snapshots on, a channel born after our snapshot is new to
         * us from seq 1; otherwise we start with its first live message. */
        if (c->svc && c->snapshot && c->started && head > 0 &&
            subscribed(c, ch) && (t = sc_order_track(c->order, ch, true))) {
            sc_order_start(c->order, t, epoch, 0);
            sc_order_head(t, head);
        }
    } else if (strcmp(t->epoch, epoch) != 0) {
        /* Heartbeats are not signed: ask the gateway (a replay with our
         * epoch answers 409 if the journal really was replaced). */
        if (c->svc)
            t->suspect_epoch = true;
    } else if (head > t->last) {
        if (c->svc)
            sc_order_head(t, head);
        else
            queue_gap(c, t, t->last + 1, head,
                      "lost (no service endpoint to replay from)");
    }
    json_decref(o);
}

static bool frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

static bool is_topic(zmq_msg_t *f)
{
    size_t n = zmq_msg_size(f);
    return n > 0 && ((const char *)zmq_msg_data(f))[n - 1] == '.';
}

static void close_frames(frames_t *fr)
{
    for (size_t i = 0; i < fr->n && i < 3; i++)
        zmq_msg_close(&fr->parts[i]);
    fr->n = 0;
}

/* Read one whole multipart message into *fr: 1, SC_CLIENT_TIMEOUT (0:
 * nothing there), or an error code (< 0, nothing kept). */
static int read_one(sc_client_t *c, frames_t *fr, char *err, size_t errlen)
{
    bool more = true;
    fr->n = 0;
    while (more) {
        /* Keep the first three frames; count and drop the rest. */
        zmq_msg_t scratch;
        zmq_msg_t *f = fr->n < 3 ? &fr->parts[fr->n] : &scratch;
        zmq_msg_init(f);
        int flags = fr->n == 0 ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv(f, c->sub, flags) < 0) {
            int e = zmq_errno();
            bool first = fr->n == 0;
            zmq_msg_close(f);
            close_frames(fr);
            if (first && e == EAGAIN)
                return SC_CLIENT_TIMEOUT; /* spurious wake-up */
            if (first && e == EINTR) {
                seterr(err, errlen, "interrupted");
                return SC_CLIENT_INTERRUPTED;
            }
            seterr(err, errlen, "receive from %s failed: %s", c->endpoint,
                   zmq_strerror(e));
            return SC_CLIENT_ERROR;
        }
        more = zmq_msg_more(f);
        if (f == &scratch)
            zmq_msg_close(&scratch);
        fr->n++;
    }
    fr->data = fr->n == 2 && is_topic(&fr->parts[0]);
    if (fr->data) {
        fr->job.topic = zmq_msg_data(&fr->parts[0]);
        fr->job.topic_len = zmq_msg_size(&fr->parts[0]);
        fr->job.jws = zmq_msg_data(&fr->parts[1]);
        fr->job.jws_len = zmq_msg_size(&fr->parts[1]);
    }
    return 1;
}

static void check_frame_at(void *arg, size_t i, int worker)
{
    (void)worker;
    sc_client_t *c = arg;
    if (c->live[i].data)
        check_job(&c->live[i].job, c->jwks);
}

/* Take one read and checked message, in order: a data message into the
 * delivery queue (or refused), a heartbeat to its channel, anything else
 * refused. Its frames are closed. 0 or an error code. */
static int take_frames(sc_client_t *c, frames_t *fr, char *err,
                       size_t errlen)
{
    int rc = 0;
    char e2[600];
    if (fr->data) {
        sc_held_t *m;
        int v = take_job(c, &fr->job, &m, e2, sizeof e2);
        if (v == SC_CLIENT_MESSAGE)
            rc = on_live(c, m, err, errlen);
        else if (v == SC_CLIENT_REFUSED)
            queue_refused(c, e2);
        else {
            seterr(err, errlen, "%s", e2);
            rc = v;
        }
    } else if (fr->n == 3 && is_topic(&fr->parts[0]) &&
               frame_is(&fr->parts[1], HEARTBEAT_TAG)) {
        on_heartbeat(c, zmq_msg_data(&fr->parts[0]),
                     zmq_msg_size(&fr->parts[0]),
                     zmq_msg_data(&fr->parts[2]),
                     zmq_msg_size(&fr->parts[2]), e2, sizeof e2);
    } else {
        char reason[96];
        c->stats.received++;
        if (fr->n == 2)
            snprintf(reason, sizeof reason, "unknown message shape: 2 "
                     "frames, the first is not a topic");
        else
            snprintf(reason, sizeof reason, "unknown message shape: %zu "
                     "frame%s", fr->n, fr->n == 1 ? "" : "s");
        refuse(c, zmq_msg_data(&fr->parts[0]), zmq_msg_size(&fr->parts[0]),
               reason, e2, sizeof e2);
        queue_refused(c, e2);
    }
    close_frames(fr);
    return rc;
}

/* Read what waits on the socket, up to VERIFY_BATCH messages or
 * VERIFY_BATCH_BYTES with verifying threads (one message without: the
 * last one read may pass the bytes), check the data messages side by side
 * and take them all in order. The number read (> 0: the queue may have
 * grown), SC_CLIENT_TIMEOUT (0: nothing there), or an error code (< 0;
 * what was read before it is taken all the same: a signal arriving
 * then is not reported, the messages are). */
static int read_message(sc_client_t *c, char *err, size_t errlen)
{
    size_t max = sc_workpool_threads(c->pool) > 0 ? VERIFY_BATCH : 1, n = 0;
    size_t bytes = 0;
    int rc = 0;
    while (n < max && bytes < VERIFY_BATCH_BYTES &&
           (rc = read_one(c, &c->live[n], err, errlen)) == 1) {
        if (c->live[n].data)
            bytes += c->live[n].job.jws_len;
        n++;
    }
    if (n == 0)
        return rc;
    int fail = rc == SC_CLIENT_ERROR ? rc : 0;
    sc_workpool_run(c->pool, check_frame_at, c, n);
    char scratch[600];
    for (size_t k = 0; k < n; k++) {
        int r = take_frames(c, &c->live[k], fail ? scratch : err,
                            fail ? sizeof scratch : errlen);
        if (r < 0 && !fail)
            fail = r;
    }
    return fail ? fail : (int)n;
}

/* ---- the receive loop --------------------------------------------------- */

/* The sticky fatal code (its text in err); the monitors (handshake and
 * authentication events) are drained first when `look` is set. */
static int check_fatal(sc_client_t *c, bool look, char *err, size_t errlen)
{
    if (!c->fatal_rc && look) {
        c->reads_unlooked = 0;
        const char *t;
        int rc = sc_mon_drain(c->mon, &t);
        if (!rc && c->svc)
            rc = sc_svc_check(c->svc, &t);
        if (rc) {
            c->fatal_rc = rc;
            snprintf(c->fatal, sizeof c->fatal, "%s", t);
        }
    }
    if (c->fatal_rc)
        seterr(err, errlen, "%s", c->fatal);
    return c->fatal_rc;
}

/* A fatal code from a request becomes sticky; others pass through. */
static int pass(sc_client_t *c, int rc, char *err)
{
    if (rc == SC_CLIENT_AUTH) {
        c->fatal_rc = rc;
        snprintf(c->fatal, sizeof c->fatal, "%s", err ? err : "rejected");
    }
    return rc;
}

int sc_client_recv(sc_client_t *c, sc_message_t *msg, int timeout_ms,
                   char *err, size_t errlen)
{
    if (!c) {
        seterr(err, errlen, "sc_client_recv: no client");
        return SC_CLIENT_ERROR;
    }
    sc_held_free(c->cur);
    c->cur = NULL;
    c->have_event = false;
    int64_t deadline = timeout_ms >= 0 ? sc_mono_ms() + timeout_ms : 0;

    for (;;) {
        if (check_fatal(c, c->reads_unlooked >= READS_PER_LOOK, err, errlen))
            return c->fatal_rc;
        if (!c->started) {
            int rc = start(c, err, errlen);
            if (rc != 0)
                return pass(c, rc, err);
        }
        if (c->q_head) {
            int rc = pop(c, msg, err, errlen);
            if (rc != SC_CLIENT_TIMEOUT)
                return rc;
            continue;
        }
        bool repair = repair_pending(c);
        if (repair && c->live_streak >= LIVE_PER_REPAIR) {
            c->live_streak = 0;
            int rc = repair_one(c, err, errlen);
            if (rc < 0)
                return pass(c, rc, err);
            continue;
        }
        if (c->reads_unlooked < READS_PER_LOOK) {
            /* a message already on the socket: no poll */
            int rc = read_message(c, err, errlen);
            if (rc > 0) {
                c->live_streak += (unsigned)rc;
                c->reads_unlooked += (unsigned)rc;
                continue;
            }
            if (rc < 0)
                return pass(c, rc, err);
        }
        /* nothing queued (or time to look): the monitors, then wait */
        if (check_fatal(c, true, err, errlen))
            return c->fatal_rc;
        long wait = -1;
        if (repair)
            wait = 0;
        else if (timeout_ms >= 0) {
            int64_t left = deadline - sc_mono_ms();
            wait = left > 0 ? (long)left : 0;
        }
        zmq_pollitem_t items[2] = {
            {.socket = c->sub, .events = ZMQ_POLLIN},
            {.socket = sc_mon_socket(c->mon), .events = ZMQ_POLLIN},
        };
        int n = zmq_poll(items, 2, wait);
        if (n < 0) {
            int e = zmq_errno();
            if (e == EINTR) {
                seterr(err, errlen, "interrupted");
                return SC_CLIENT_INTERRUPTED;
            }
            seterr(err, errlen, "poll on %s failed: %s", c->endpoint,
                   zmq_strerror(e));
            return SC_CLIENT_ERROR;
        }
        if (items[1].revents & ZMQ_POLLIN)
            continue; /* drain the monitor first */
        if (items[0].revents & ZMQ_POLLIN) {
            int rc = read_message(c, err, errlen);
            if (rc < 0)
                return pass(c, rc, err);
            c->live_streak += (unsigned)rc;
            continue;
        }
        if (repair) {
            c->live_streak = 0;
            int rc = repair_one(c, err, errlen);
            if (rc < 0)
                return pass(c, rc, err);
            continue;
        }
        if (timeout_ms >= 0 && sc_mono_ms() >= deadline) {
            seterr(err, errlen, "no message within %d ms", timeout_ms);
            return SC_CLIENT_TIMEOUT;
        }
    }
}

int sc_client_commit(sc_client_t *c, char *err, size_t errlen)
{
    if (!c) {
        seterr(err, errlen, "sc_client_commit: no client");
        return -1;
    }
    if (!c->state)
        return 0;
    for (sc_track_t *t = sc_order_first(c->order); t; t = t->next) {
        if (!t->out_dirty)
            continue;
        if (sc_state_put(c->state, t->channel, t->out_epoch, t->out_seq, err,
                         errlen) != 0)
            return -1;
        t->out_dirty = false;
    }
    return sc_state_flush(c->state, err, errlen);
}
