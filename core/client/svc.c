/*
 * svc.c - see svc.h.
 */
#include "svc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "monitor.h"
#include "sectorcast/client.h"

#define MAX_MSG_SIZE (8 * 1024 * 1024)
#define RECONNECT_IVL_MAX_MS 5000
/* Replies are bounded by the gateway (limits.replay_batch, snapshots up
 * to 100000 items); take a whole one without libzmq pushing back. */
#define DEALER_RCVHWM 250000
/* Internal result of one attempt: no answer in time (positive, unlike
 * every SC_CLIENT_* error code, and unlike 0 = success). */
#define SILENCE 1

struct sc_svc {
    void *sock;
    sc_mon_t *mon;
    char *endpoint;
    int timeout_ms;
    int attempts;
    uint64_t next_id;
};

static int set_int(void *sock, int opt, int val)
{
    return zmq_setsockopt(sock, opt, &val, sizeof val);
}

sc_svc_t *sc_svc_new(void *ctx, const sc_svc_opts_t *o, char *err,
                     size_t errlen)
{
    sc_svc_t *s = calloc(1, sizeof *s);
    if (!s || !(s->endpoint = strdup(o->endpoint))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->timeout_ms = o->request_timeout_ms;
    s->attempts = o->attempts;
    s->sock = zmq_socket(ctx, ZMQ_DEALER);
    if (!s->sock) {
        snprintf(err, errlen, "cannot create DEALER socket: %s",
                 zmq_strerror(zmq_errno()));
        sc_svc_destroy(&s);
        return NULL;
    }
    int64_t maxsize = MAX_MSG_SIZE;
    /* IMMEDIATE: a request waits for a live connection instead of being
     * queued on a dead one and answered (uselessly) much later. */
    if (set_int(s->sock, ZMQ_LINGER, 0) != 0 ||
        set_int(s->sock, ZMQ_IMMEDIATE, 1) != 0 ||
        set_int(s->sock, ZMQ_RCVHWM, DEALER_RCVHWM) != 0 ||
        set_int(s->sock, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS) != 0 ||
        set_int(s->sock, ZMQ_CONNECT_TIMEOUT, o->connect_timeout_ms) != 0 ||
        set_int(s->sock, ZMQ_HANDSHAKE_IVL, o->connect_timeout_ms) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxsize,
                       sizeof maxsize) != 0) {
        snprintf(err, errlen, "cannot set DEALER socket options: %s",
                 zmq_strerror(zmq_errno()));
        sc_svc_destroy(&s);
        return NULL;
    }
    if (o->server_key &&
        (zmq_setsockopt(s->sock, ZMQ_CURVE_SERVERKEY, o->server_key, 40) !=
             0 ||
         zmq_setsockopt(s->sock, ZMQ_CURVE_PUBLICKEY, o->public_key, 40) !=
             0 ||
         zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, o->secret_key, 40) !=
             0)) {
        snprintf(err, errlen, "cannot set CURVE keys on the service socket: "
                 "%s", zmq_strerror(zmq_errno()));
        sc_svc_destroy(&s);
        return NULL;
    }
    char sub[256];
    s->mon = sc_mon_new(ctx, s->sock, o->endpoint, o->server_key != NULL, sub,
                        sizeof sub);
    if (!s->mon) {
        snprintf(err, errlen, "service socket: %s", sub);
        sc_svc_destroy(&s);
        return NULL;
    }
    if (zmq_connect(s->sock, o->endpoint) != 0) {
        snprintf(err, errlen, "bad service endpoint '%.200s': %s",
                 o->endpoint, zmq_strerror(zmq_errno()));
        sc_svc_destroy(&s);
        return NULL;
    }
    return s;
}

void sc_svc_destroy(sc_svc_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    sc_svc_t *s = *s_p;
    sc_mon_destroy(&s->mon);
    if (s->sock)
        zmq_close(s->sock);
    free(s->endpoint);
    free(s);
    *s_p = NULL;
}

const char *sc_svc_endpoint(const sc_svc_t *s) { return s->endpoint; }

int sc_svc_check(sc_svc_t *s, const char **text)
{
    return sc_mon_drain(s->mon, text);
}

void sc_svc_reply_clear(sc_svc_reply_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_items; i++) {
        zmq_msg_close(&r->items[i].topic);
        zmq_msg_close(&r->items[i].jws);
    }
    free(r->items);
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}

/* Send one request; waits (until `deadline`) for a live connection. */
static int send_request(sc_svc_t *s, const char *rid, const char *cmd,
                        const char *args, int64_t deadline, char *err,
                        size_t errlen)
{
    for (;;) {
        if (zmq_send(s->sock, rid, strlen(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) >=
            0) {
            /* The rest of a multipart message is never refused once the
             * first frame was taken. */
            if (zmq_send(s->sock, cmd, strlen(cmd), ZMQ_SNDMORE) < 0 ||
                zmq_send(s->sock, args, strlen(args), 0) < 0) {
                snprintf(err, errlen, "send to service %s failed: %s",
                         s->endpoint, zmq_strerror(zmq_errno()));
                return SC_CLIENT_ERROR;
            }
            return 0;
        }
        int e = zmq_errno();
        if (e == EINTR) {
            snprintf(err, errlen, "interrupted");
            return SC_CLIENT_INTERRUPTED;
        }
        if (e != EAGAIN) {
            snprintf(err, errlen, "send to service %s failed: %s",
                     s->endpoint, zmq_strerror(e));
            return SC_CLIENT_ERROR;
        }
        int64_t left = deadline - sc_mono_ms();
        if (left <= 0)
            return SILENCE;
        zmq_pollitem_t it[2] = {
            {.socket = s->sock, .events = ZMQ_POLLOUT},
            {.socket = sc_mon_socket(s->mon), .events = ZMQ_POLLIN},
        };
        if (zmq_poll(it, 2, (long)(left < 100 ? left : 100)) < 0 &&
            zmq_errno() == EINTR) {
            snprintf(err, errlen, "interrupted");
            return SC_CLIENT_INTERRUPTED;
        }
        const char *t;
        int rc = sc_mon_drain(s->mon, &t);
        if (rc) {
            snprintf(err, errlen, "%s", t);
            return rc;
        }
    }
}

/* Receive one whole message into frames[] (at most 4 kept). */
static int recv_message(sc_svc_t *s, zmq_msg_t *frames, int *nframes,
                        int *total)
{
    *nframes = *total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, *total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            for (int i = 0; i < *nframes; i++)
                zmq_msg_close(&frames[i]);
            *nframes = 0;
            return e == EAGAIN && *total == 0 ? 1 : -1;
        }
        more = zmq_msg_more(&m);
        (*total)++;
        if (*nframes < 4)
            frames[(*nframes)++] = m;
        else
            zmq_msg_close(&m);
    }
    return 0;
}

static bool frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

static int add_item(sc_svc_reply_t *r, zmq_msg_t *topic, zmq_msg_t *jws)
{
    if (r->n_items == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        sc_svc_item_t *v = realloc(r->items, cap * sizeof *v);
        if (!v)
            return -1;
        r->items = v;
        r->cap = cap;
    }
    sc_svc_item_t *it = &r->items[r->n_items++];
    zmq_msg_init(&it->topic);
    zmq_msg_init(&it->jws);
    zmq_msg_move(&it->topic, topic);
    zmq_msg_move(&it->jws, jws);
    return 0;
}

/* One attempt: 0 = final reply in *out, SILENCE, or a negative code. */
static int attempt(sc_svc_t *s, const char *cmd, const char *args,
                   sc_svc_reply_t *out, char *err, size_t errlen)
{
    char rid[32];
    snprintf(rid, sizeof rid, "sc%" PRIu64, ++s->next_id);
    size_t rid_len = strlen(rid);
    int64_t deadline = sc_mono_ms() + s->timeout_ms;
    int rc = send_request(s, rid, cmd, args, deadline, err, errlen);
    if (rc != 0)
        return rc;
    for (;;) {
        zmq_msg_t f[4];
        int n, total;
        int r = recv_message(s, f, &n, &total);
        if (r < 0) {
            snprintf(err, errlen, "receive from service %s failed: %s",
                     s->endpoint, zmq_strerror(zmq_errno()));
            return SC_CLIENT_ERROR;
        }
        if (r == 0) {
            bool ours = n >= 2 && zmq_msg_size(&f[0]) == rid_len &&
                        memcmp(zmq_msg_data(&f[0]), rid, rid_len) == 0;
            int done = 0;
            if (ours) {
                deadline = sc_mono_ms() + s->timeout_ms; /* progress */
                if (frame_is(&f[1], "msg") && total == 4) {
                    if (add_item(out, &f[2], &f[3]) != 0) {
                        snprintf(err, errlen, "out of memory");
                        done = SC_CLIENT_ERROR;
                    }
                } else if ((frame_is(&f[1], "end") ||
                            frame_is(&f[1], "error")) && total == 3) {
                    json_error_t je;
                    json_t *b = json_loadb(zmq_msg_data(&f[2]),
                                           zmq_msg_size(&f[2]), 0, &je);
                    if (!json_is_object(b)) {
                        json_decref(b);
                        snprintf(err, errlen, "service %s sent a final "
                                 "reply to '%s' that is not a JSON object",
                                 s->endpoint, cmd);
                        done = SC_CLIENT_ERROR;
                    } else {
                        out->ok = frame_is(&f[1], "end");
                        out->body = b;
                        done = 1;
                    }
                } else {
                    snprintf(err, errlen, "service %s sent a reply of "
                             "unknown shape (%d frames) to '%s'",
                             s->endpoint, total, cmd);
                    done = SC_CLIENT_ERROR;
                }
            }
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (done == 1)
                return 0;
            if (done < 0)
                return done;
            continue;
        }
        const char *t;
        rc = sc_mon_drain(s->mon, &t);
        if (rc) {
            snprintf(err, errlen, "%s", t);
            return rc;
        }
        int64_t left = deadline - sc_mono_ms();
        if (left <= 0)
            return SILENCE;
        zmq_pollitem_t it[2] = {
            {.socket = s->sock, .events = ZMQ_POLLIN},
            {.socket = sc_mon_socket(s->mon), .events = ZMQ_POLLIN},
        };
        if (zmq_poll(it, 2, (long)left) < 0) {
            if (zmq_errno() == EINTR) {
                snprintf(err, errlen, "interrupted");
                return SC_CLIENT_INTERRUPTED;
            }
            snprintf(err, errlen, "poll on service %s failed: %s",
                     s->endpoint, zmq_strerror(zmq_errno()));
            return SC_CLIENT_ERROR;
        }
    }
}

int sc_svc_request(sc_svc_t *s, const char *cmd, json_t *args,
                   sc_svc_reply_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *txt = args ? json_dumps(args, JSON_COMPACT) : strdup("{}");
    if (!txt) {
        snprintf(err, errlen, "out of memory");
        return SC_CLIENT_ERROR;
    }
    int rc = SILENCE;
    for (int i = 0; i < s->attempts && rc == SILENCE; i++) {
        sc_svc_reply_clear(out);
        rc = attempt(s, cmd, txt, out, err, errlen);
    }
    free(txt);
    if (rc == SILENCE) {
        snprintf(err, errlen, "service %s did not answer '%s' within %d ms "
                 "(%d attempts)", s->endpoint, cmd, s->timeout_ms,
                 s->attempts);
        rc = SC_CLIENT_UNAVAILABLE;
    }
    if (rc != 0)
        sc_svc_reply_clear(out);
    return rc;
}
