/*
 * control.c - see control.h. Owns the control thread, its ZeroMQ context
 * (the ROUTER and, with admin keys, its ZAP handler) and the core's end
 * of the command pipe. Never touches broker state: it reads status.c's
 * snapshot and forwards everything else to the core.
 */
#include "control.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "audit.h"
#include "broker.h"
#include "common/keys.h"
#include "diag.h"
#include "log.h"
#include "threads.h"

#define PIPE_EP "inproc://sectorcast-control"
#define MAX_REQUEST 65536

struct sc_control {
    void *core_pipe;   /* core thread's PAIR (bound, in the core context) */
    void *ctl_pipe;    /* control thread's PAIR (connected) */
    void *zctx;        /* the control thread's own context */
    void *router;
    void *zap;
    char path[256];    /* socket file */
    char dir[256];
    char *config_path;
    char (*admin)[41];
    size_t n_admin;
    sc_status_t *status;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int pending;       /* forwarded, not yet answered (control thread) */
    const void *cur_rid; /* the request fn runs for (core thread) */
    size_t cur_rid_len;
    bool deferred;
};

struct sc_control_later {
    size_t len;
    unsigned char rid[];
};

int sc_control_socket_path(const char *data_dir, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", data_dir, SC_CONTROL_SOCKET);
    /* sun_path is 108 bytes including the NUL */
    return n < 0 || (size_t)n >= len || n > 107 ? -1 : 0;
}

static void send_json(void *sock, const void *rid, size_t rid_len, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    const char *txt = s ? s : "{\"ok\":false,\"error\":\"out of memory\"}";
    if (rid)
        zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, txt, strlen(txt), ZMQ_DONTWAIT);
    free(s);
}

static json_t *error_reply(const char *fmt, const char *arg)
{
    char buf[512];
    snprintf(buf, sizeof buf, fmt, arg ? arg : "");
    return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

static json_t *ok_with(const char *key, json_t *v)
{
    if (!v)
        return error_reply("out of memory", NULL);
    return json_pack("{s:b, s:o}", "ok", 1, key, v);
}

/* `check`: the running config file, validated as --check does; every
 * plugin checked in a child process (never in this process, where its
 * instance runs: a thread-unsafe check() could race it, and a crashing
 * one would take the broker down). Blocks this thread for at most 15 s
 * per plugin; status commands wait meanwhile, the core does not. */
static json_t *do_check(sc_control_t *c)
{
    sc_diag_t d = {0};
    sc_config_t *cfg = sc_config_load(c->config_path, true, &d);
    if (cfg)
        sc_broker_check_plugins_apart(cfg, &d);
    json_t *problems = json_array();
    for (size_t i = 0; i < d.count; i++)
        json_array_append_new(problems, json_string(d.lines[i]));
    bool ok = cfg && d.count == 0;
    json_t *r = json_pack("{s:b, s:s, s:b, s:o}", "ok", 1, "config",
                          c->config_path, "valid", ok, "problems", problems);
    sc_diag_clear(&d);
    sc_config_destroy(&cfg);
    return r;
}

/* ZAP: admit only the admin keys (control context only) */
static void handle_zap(sc_control_t *c)
{
    char f[7][256];
    size_t len[7];
    int n = 0, more = 1;
    while (more && n < 7) {
        int r = zmq_recv(c->zap, f[n], sizeof f[n], 0);
        if (r < 0)
            return;
        len[n] = (size_t)r > sizeof f[n] ? sizeof f[n] : (size_t)r;
        n++;
        size_t sz = sizeof more;
        zmq_getsockopt(c->zap, ZMQ_RCVMORE, &more, &sz);
    }
    while (more) { /* drain anything unexpected */
        char x[8];
        if (zmq_recv(c->zap, x, sizeof x, 0) < 0)
            break;
        size_t sz = sizeof more;
        zmq_getsockopt(c->zap, ZMQ_RCVMORE, &more, &sz);
    }
    if (n < 6)
        return;
    bool ok = false;
    char key[41] = "?";
    if (n == 7 && len[5] == 5 && memcmp(f[5], "CURVE", 5) == 0 &&
        len[6] == 32) {
        zmq_z85_encode(key, (uint8_t *)f[6], 32);
        for (size_t i = 0; i < c->n_admin && !ok; i++)
            ok = strcmp(c->admin[i], key) == 0;
    }
    if (!ok) {
        sc_log(SC_L_WARN, "control", "refused control client key %s: not in "
                                     "control.admin_keys", key);
        sc_audit("key_rejected", json_pack("{s:s, s:s}", "endpoint",
                                           "control", "public_key", key));
    }
    const char *code = ok ? "200" : "400";
    zmq_send(c->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(c->zap, f[1], len[1], ZMQ_SNDMORE);
    zmq_send(c->zap, code, 3, ZMQ_SNDMORE);
    zmq_send(c->zap, ok ? "OK" : "not an admin key", ok ? 2 : 16,
             ZMQ_SNDMORE);
    zmq_send(c->zap, ok ? "admin" : "", ok ? 5 : 0, ZMQ_SNDMORE);
    zmq_send(c->zap, "", 0, 0);
}

static void handle_request(sc_control_t *c)
{
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&rid, c->router, ZMQ_DONTWAIT) < 0)
        goto out;
    if (!zmq_msg_more(&rid) || zmq_msg_recv(&body, c->router, 0) < 0)
        goto out;
    while (zmq_msg_more(&body)) { /* extra frames are ignored */
        zmq_msg_t x;
        zmq_msg_init(&x);
        int r = zmq_msg_recv(&x, c->router, 0);
        int more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        if (r < 0 || !more)
            break;
    }
    const void *r = zmq_msg_data(&rid);
    size_t rl = zmq_msg_size(&rid);
    json_error_t je;
    json_t *req = zmq_msg_size(&body) <= MAX_REQUEST
                      ? json_loadb(zmq_msg_data(&body), zmq_msg_size(&body), 0,
                                   &je)
                      : NULL;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *rep = NULL;
    if (!cmd)
        rep = error_reply("bad request: expected {\"cmd\": ...}", NULL);
    else if (strcmp(cmd, "status") == 0)
        rep = ok_with("status", sc_status_json_status(c->status));
    else if (strcmp(cmd, "channels") == 0)
        rep = ok_with("channels", sc_status_json_channels(c->status));
    else if (strcmp(cmd, "agencies") == 0)
        rep = ok_with("agencies", sc_status_json_agencies(c->status));
    else if (strcmp(cmd, "plugins") == 0)
        rep = ok_with("plugins", sc_status_json_plugins(c->status));
    else if (strcmp(cmd, "health") == 0)
        rep = ok_with("health", sc_status_health(c->status, NULL));
    else if (strcmp(cmd, "check") == 0)
        rep = do_check(c);
    else if (strcmp(cmd, "reload") == 0 ||
             strcmp(cmd, "plugin-restart") == 0 ||
             strcmp(cmd, "stop") == 0 || strcmp(cmd, "log-reopen") == 0) {
        if (c->pending >= SC_CONTROL_PENDING) {
            rep = error_reply("busy: too many commands waiting for the core",
                              NULL);
        } else {
            /* to the core: [rid][request]; it answers [rid][reply] */
            zmq_send(c->ctl_pipe, r, rl, ZMQ_SNDMORE);
            zmq_send(c->ctl_pipe, zmq_msg_data(&body), zmq_msg_size(&body),
                     0);
            c->pending++;
        }
    } else {
        rep = error_reply("unknown command '%.64s'", cmd);
    }
    if (rep)
        send_json(c->router, r, rl, rep);
    json_decref(rep);
    json_decref(req);
out:
    zmq_msg_close(&rid);
    zmq_msg_close(&body);
}

/* a reply from the core: relay it */
static void handle_pipe(sc_control_t *c)
{
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&rid, c->ctl_pipe, ZMQ_DONTWAIT) >= 0 &&
        zmq_msg_more(&rid) && zmq_msg_recv(&body, c->ctl_pipe, 0) >= 0) {
        if (c->pending > 0)
            c->pending--;
        zmq_send(c->router, zmq_msg_data(&rid), zmq_msg_size(&rid),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(c->router, zmq_msg_data(&body), zmq_msg_size(&body),
                 ZMQ_DONTWAIT);
    }
    zmq_msg_close(&rid);
    zmq_msg_close(&body);
}

static void *run(void *arg)
{
    sc_control_t *c = arg;
    sc_thread_name("control", NULL);
    while (!atomic_load(&c->stop)) {
        zmq_pollitem_t items[3] = {
            {c->router, 0, ZMQ_POLLIN, 0},
            {c->ctl_pipe, 0, ZMQ_POLLIN, 0},
            {c->zap, 0, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, c->zap ? 3 : 2, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ETERM)
                break;
            sc_log(SC_L_ERROR, "control", "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (c->zap && (items[2].revents & ZMQ_POLLIN))
            handle_zap(c);
        if (items[1].revents & ZMQ_POLLIN)
            handle_pipe(c);
        if (items[0].revents & ZMQ_POLLIN)
            handle_request(c);
    }
    return NULL;
}

static int setup(sc_control_t *c, const sc_config_t *cfg, char *err,
                 size_t errlen)
{
    if (sc_control_socket_path(cfg->data_dir, c->path, sizeof c->path) != 0) {
        snprintf(err, errlen,
                 "control socket path under %s is too long for a unix socket "
                 "(at most 107 bytes)", cfg->data_dir);
        return -1;
    }
    snprintf(c->dir, sizeof c->dir, "%s/control", cfg->data_dir);
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", c->dir, strerror(errno));
        return -1;
    }
    if (chmod(c->dir, 0700) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", c->dir, strerror(errno));
        return -1;
    }
    unlink(c->path); /* a stale socket of a previous run */
    int linger = 0;
    if (!(c->zctx = zmq_ctx_new()) ||
        !(c->router = zmq_socket(c->zctx, ZMQ_ROUTER)) ||
        zmq_setsockopt(c->router, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        snprintf(err, errlen, "control socket: %s", zmq_strerror(errno));
        return -1;
    }
    int64_t maxmsg = MAX_REQUEST + 64;
    zmq_setsockopt(c->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (cfg->n_control_admin_keys > 0) {
        char secret[41], e[512];
        if (!cfg->curve_secret_file ||
            sc_curve_read(cfg->curve_secret_file, true, secret, e, sizeof e) !=
                0) {
            snprintf(err, errlen, "control.admin_keys needs the curve secret "
                                  "key: %s",
                     cfg->curve_secret_file ? e : "no 'curve' group");
            return -1;
        }
        int one = 1;
        c->zap = zmq_socket(c->zctx, ZMQ_REP);
        int rc = c->zap ? zmq_setsockopt(c->zap, ZMQ_LINGER, &linger,
                                         sizeof linger)
                        : -1;
        if (rc == 0)
            rc = zmq_bind(c->zap, "inproc://zeromq.zap.01");
        if (rc == 0)
            rc = zmq_setsockopt(c->router, ZMQ_CURVE_SERVER, &one, sizeof one);
        if (rc == 0)
            rc = zmq_setsockopt(c->router, ZMQ_CURVE_SECRETKEY, secret, 40);
        if (rc == 0)
            rc = zmq_setsockopt(c->router, ZMQ_ZAP_DOMAIN, "control", 7);
        sodium_memzero(secret, sizeof secret);
        if (rc != 0) {
            snprintf(err, errlen, "control socket CURVE: %s",
                     zmq_strerror(errno));
            return -1;
        }
        c->admin = calloc(cfg->n_control_admin_keys, sizeof *c->admin);
        if (!c->admin) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < cfg->n_control_admin_keys; i++)
            memcpy(c->admin[i], cfg->control_admin_keys[i], 41);
        c->n_admin = cfg->n_control_admin_keys;
    }
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s", c->path);
    if (zmq_bind(c->router, ep) != 0) {
        snprintf(err, errlen, "cannot bind control socket %s: %s", ep,
                 zmq_strerror(errno));
        return -1;
    }
    if (chmod(c->path, 0600) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", c->path, strerror(errno));
        return -1;
    }
    return 0;
}

sc_control_t *sc_control_new(void *core_zctx, const sc_config_t *cfg,
                             sc_status_t *status, char *err, size_t errlen)
{
    sc_control_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->status = status;
    c->config_path = strdup(cfg->path);
    int linger = 0;
    if (!c->config_path ||
        !(c->core_pipe = zmq_socket(core_zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(c->core_pipe, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(c->core_pipe, PIPE_EP) != 0 ||
        !(c->ctl_pipe = zmq_socket(core_zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(c->ctl_pipe, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_connect(c->ctl_pipe, PIPE_EP) != 0) {
        snprintf(err, errlen, "control pipe: %s", zmq_strerror(errno));
        sc_control_destroy(&c);
        return NULL;
    }
    if (setup(c, cfg, err, errlen) != 0) {
        sc_control_destroy(&c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        snprintf(err, errlen, "cannot start the control thread");
        sc_control_destroy(&c);
        return NULL;
    }
    c->started = true;
    sc_log(SC_L_INFO, "control", "control socket %s%s", c->path,
           c->n_admin ? " (CURVE, admin keys only)" : "");
    return c;
}

void sc_control_destroy(sc_control_t **c_p)
{
    if (!c_p || !*c_p)
        return;
    sc_control_t *c = *c_p;
    if (c->started) {
        atomic_store(&c->stop, true);
        pthread_join(c->thread, NULL);
    }
    if (c->router)
        zmq_close(c->router);
    if (c->zap)
        zmq_close(c->zap);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    if (c->ctl_pipe)
        zmq_close(c->ctl_pipe);
    if (c->core_pipe)
        zmq_close(c->core_pipe);
    if (c->path[0])
        unlink(c->path);
    free(c->admin);
    free(c->config_path);
    free(c);
    *c_p = NULL;
}

void *sc_control_core_socket(sc_control_t *c) { return c ? c->core_pipe : NULL; }

void sc_control_core_handle(sc_control_t *c, sc_control_cmd_fn fn, void *arg)
{
    for (int k = 0; c && k < 16; k++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, c->core_pipe, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            return;
        }
        json_t *rep = NULL;
        if (zmq_msg_more(&rid) && zmq_msg_recv(&body, c->core_pipe, 0) >= 0) {
            json_error_t je;
            json_t *req = json_loadb(zmq_msg_data(&body), zmq_msg_size(&body),
                                     0, &je);
            const char *cmd = json_string_value(json_object_get(req, "cmd"));
            c->cur_rid = zmq_msg_data(&rid);
            c->cur_rid_len = zmq_msg_size(&rid);
            c->deferred = false;
            rep = cmd ? fn(arg, cmd, req) : NULL;
            c->cur_rid = NULL;
            json_decref(req);
            if (c->deferred) {
                json_decref(rep);
                zmq_msg_close(&rid);
                zmq_msg_close(&body);
                continue;
            }
        }
        if (!rep)
            rep = error_reply("bad request", NULL);
        if (!json_object_get(rep, "ok"))
            json_object_set_new(rep, "ok", json_true());
        send_json(c->core_pipe, zmq_msg_data(&rid), zmq_msg_size(&rid), rep);
        json_decref(rep);
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
}

sc_control_later_t *sc_control_core_defer(sc_control_t *c)
{
    if (!c || !c->cur_rid)
        return NULL;
    sc_control_later_t *l = malloc(sizeof *l + c->cur_rid_len);
    if (!l)
        return NULL;
    l->len = c->cur_rid_len;
    memcpy(l->rid, c->cur_rid, c->cur_rid_len);
    c->deferred = true;
    return l;
}

void sc_control_core_answer(sc_control_t *c, sc_control_later_t **l_p,
                            json_t *reply)
{
    if (!l_p || !*l_p)
        return;
    if (c) {
        json_t *rep = reply ? json_copy(reply)
                            : error_reply("reload failed: out of memory",
                                          NULL);
        if (rep && !json_object_get(rep, "ok"))
            json_object_set_new(rep, "ok", json_true());
        send_json(c->core_pipe, (*l_p)->rid, (*l_p)->len, rep);
        json_decref(rep);
    }
    sc_control_later_free(l_p);
}

void sc_control_later_free(sc_control_later_t **l_p)
{
    if (!l_p)
        return;
    free(*l_p);
    *l_p = NULL;
}
