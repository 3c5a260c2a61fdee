/*
 * access.c - see access.h.
 *
 * The ZAP handler runs on the core thread; libzmq's I/O threads wait for
 * its reply during each handshake, so it answers from memory and never
 * blocks. Only the CURVE mechanism is admitted: NULL and PLAIN peers get
 * 400, as does any key not listed in the config.
 */
#include "access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/channel.h"
#include "log.h"
#include "ops.h"
#include "ratelimit.h"

/* ZAP lines per peer address / per agency (see ratelimit.h): a stranger
 * cycling keys or an agency cycling connections writes a bounded log */
#define ZAP_LOG_PER_SEC 1.0
#define ZAP_LOG_BURST 5
#define ZAP_LOG_SOURCES 256

struct sc_agency {
    char *id;
    char user[160];      /* the ZAP user-id: "ID#" + the key's first 4 bytes
                            in hex, so that a connection authenticated with
                            a key the config no longer lists is unknown */
    unsigned char pk[32];
    char **grants;
    size_t n_grants;
};

struct sc_access {
    sc_agency_t *ag;
    size_t n;
    sc_ratelimit_t *log_refused;  /* per peer address */
    sc_ratelimit_t *log_admitted; /* per agency */
    sc_access_stats_t stats;
};

sc_access_t *sc_access_new(const sc_config_t *cfg, char *err, size_t errlen)
{
    sc_access_t *a = calloc(1, sizeof *a);
    if (!a || !(a->ag = calloc(cfg->n_agencies + 1, sizeof *a->ag)) ||
        !(a->log_refused = sc_ratelimit_new("access", ZAP_LOG_PER_SEC,
                                            ZAP_LOG_BURST, ZAP_LOG_SOURCES)) ||
        !(a->log_admitted = sc_ratelimit_new("access", ZAP_LOG_PER_SEC,
                                             ZAP_LOG_BURST, ZAP_LOG_SOURCES)))
        goto oom;
    for (size_t i = 0; i < cfg->n_agencies; i++) {
        const sc_cfg_agency_t *c = &cfg->agencies[i];
        sc_agency_t *g = &a->ag[a->n++];
        if (!zmq_z85_decode(g->pk, c->public_key)) {
            snprintf(err, errlen, "agency '%s': public key is not Z85",
                     c->id);
            goto fail;
        }
        snprintf(g->user, sizeof g->user, "%s#%02x%02x%02x%02x", c->id,
                 g->pk[0], g->pk[1], g->pk[2], g->pk[3]);
        if (!(g->id = strdup(c->id)) ||
            !(g->grants = calloc(c->n_grants + 1, sizeof *g->grants)))
            goto oom;
        for (size_t k = 0; k < c->n_grants; k++) {
            if (!(g->grants[k] = strdup(c->grants[k])))
                goto oom;
            g->n_grants++;
        }
    }
    return a;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sc_access_destroy(&a);
    return NULL;
}

void sc_access_destroy(sc_access_t **a_p)
{
    if (!a_p || !*a_p)
        return;
    sc_access_t *a = *a_p;
    for (size_t i = 0; a->ag && i < a->n; i++) {
        free(a->ag[i].id);
        for (size_t k = 0; k < a->ag[i].n_grants; k++)
            free(a->ag[i].grants[k]);
        free(a->ag[i].grants);
    }
    free(a->ag);
    sc_ratelimit_destroy(&a->log_refused);
    sc_ratelimit_destroy(&a->log_admitted);
    free(a);
    *a_p = NULL;
}

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* draft option, see DESIGN.md */
#endif

int sc_access_curve_server(void *sock, const char *secret_z85)
{
    int one = 1;
    if (!sock ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_z85, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, SC_ZAP_DOMAIN,
                       strlen(SC_ZAP_DOMAIN)) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0)
        return -1;
    return 0;
}

/* Receive all frames of one ZAP request (at most 8 kept). */
static int recv_request(void *zap, zmq_msg_t *f, int max, int *count)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, zap, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < max)
            f[n++] = m;
        else
            zmq_msg_close(&m);
    }
    *count = n;
    return 0;
}

static void send_reply(void *zap, zmq_msg_t *reqid, const char *code,
                       const char *text, const char *user)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, reqid ? zmq_msg_data(reqid) : "",
             reqid ? zmq_msg_size(reqid) : 0, ZMQ_SNDMORE);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

static int frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

int sc_access_zap_handle(sc_access_t *a, void *zap)
{
    zmq_msg_t f[8];
    int n = 0;
    if (recv_request(zap, f, 8, &n) != 0)
        return -1;
    /* version, request id, domain, address, identity, mechanism, creds */
    char addr[64] = "?";
    if (n >= 4) {
        size_t l = zmq_msg_size(&f[3]);
        if (l >= sizeof addr)
            l = sizeof addr - 1;
        memcpy(addr, zmq_msg_data(&f[3]), l);
        addr[l] = '\0';
    }
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        a->stats.refused++;
        sc_ratelimit_log(a->log_refused, addr, SC_L_WARN,
                         "malformed ZAP request (%d frames)", n);
        send_reply(zap, n >= 2 ? &f[1] : NULL, "500", "malformed request",
                   "");
    } else if (!frame_is(&f[2], SC_ZAP_DOMAIN)) {
        a->stats.refused++;
        send_reply(zap, &f[1], "400", "unknown domain", "");
    } else if (!frame_is(&f[5], "CURVE") || n != 7 ||
               zmq_msg_size(&f[6]) != 32) {
        a->stats.refused++;
        sc_ratelimit_log(a->log_refused, addr, SC_L_WARN,
                         "refused connection from %s: not a CURVE client",
                         addr);
        send_reply(zap, &f[1], "400", "CURVE required", "");
    } else {
        const sc_agency_t *g = NULL;
        for (size_t i = 0; i < a->n && !g; i++)
            if (memcmp(a->ag[i].pk, zmq_msg_data(&f[6]), 32) == 0)
                g = &a->ag[i];
        if (g) {
            a->stats.admitted++;
            sc_ratelimit_log(a->log_admitted, g->id, SC_L_INFO,
                             "agency '%s' connected from %s", g->id, addr);
            sc_ops_connected(g->id, addr);
            send_reply(zap, &f[1], "200", "OK", g->user);
        } else {
            a->stats.refused++;
            char z85[41];
            zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
            sc_ratelimit_log(a->log_refused, addr, SC_L_WARN,
                             "refused connection from %s: CURVE key %s is "
                             "not listed in agencies",
                             addr, z85);
            sc_ops_key_rejected(z85, addr);
            send_reply(zap, &f[1], "400", "unknown key", "");
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return 0;
}

void sc_access_take_over(sc_access_t *to, sc_access_t *from)
{
    if (!to || !from)
        return;
    sc_ratelimit_t *t = to->log_refused;
    to->log_refused = from->log_refused;
    from->log_refused = t;
    t = to->log_admitted;
    to->log_admitted = from->log_admitted;
    from->log_admitted = t;
    to->stats = from->stats;
}

void sc_access_flush_log(sc_access_t *a)
{
    if (!a)
        return;
    sc_ratelimit_flush(a->log_refused);
    sc_ratelimit_flush(a->log_admitted);
}

sc_access_stats_t sc_access_stats(const sc_access_t *a)
{
    return a->stats;
}

const sc_agency_t *sc_access_agency(const sc_access_t *a, const char *user)
{
    for (size_t i = 0; user && i < a->n; i++)
        if (strcmp(a->ag[i].user, user) == 0)
            return &a->ag[i];
    return NULL;
}

const sc_agency_t *sc_access_agency_by_id(const sc_access_t *a,
                                          const char *id)
{
    for (size_t i = 0; id && i < a->n; i++)
        if (strcmp(a->ag[i].id, id) == 0)
            return &a->ag[i];
    return NULL;
}

const char *sc_agency_id(const sc_agency_t *g) { return g->id; }
size_t sc_agency_grant_count(const sc_agency_t *g) { return g->n_grants; }
const char *sc_agency_grant(const sc_agency_t *g, size_t i)
{
    return i < g->n_grants ? g->grants[i] : NULL;
}

bool sc_agency_may_read(const sc_agency_t *g, const char *subtree, size_t len)
{
    if (!g || !sc_subtree_valid(subtree, len))
        return false;
    for (size_t i = 0; i < g->n_grants; i++)
        if (sc_subtree_covers(g->grants[i], subtree, len))
            return true;
    return false;
}
