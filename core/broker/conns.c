/*
 * conns.c - see conns.h.
 *
 * Records are an array indexed by fd (fds are small integers below
 * RLIMIT_NOFILE). Counting per address scans the open records: a scan
 * per accepted connection is cheap next to the TCP and CURVE work each
 * one costs, and needs no second index to keep consistent.
 */
#include "conns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zmq.h>

#include "common/clock.h"
#include "log.h"
#include "ratelimit.h"

#define SLOW_CHECK_MS 500
#define MAX_FD (1 << 22)

typedef struct conn {
    bool open;
    bool cut;                  /* shutdown(2) done, waiting for DISCONNECTED */
    bool over_address;         /* to be cut: over the per-address cap */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char addr[INET6_ADDRSTRLEN];
    int64_t accepted_ms;
    char *agency;              /* from the first subscription's User-Id */
    char **subs;
    size_t n_subs;
    int64_t behind_since_ms;   /* send queue full since (0 = not) */
} conn_t;

struct sc_conns {
    conn_t *v;
    size_t cap;
    int64_t max_unauth, max_per_address, max_per_agency, max_subs;
    int64_t handshake_ms, slow_ms;
    int64_t next_slow_ms;
    bool trim;                 /* a subscribed connection went: malloc_trim */
    sc_conns_stats_t st;
    sc_ratelimit_t *log;       /* per address / agency */
    char what[16];             /* "publish", "service" */
};

sc_conns_t *sc_conns_new(const sc_config_t *cfg, const char *what)
{
    sc_conns_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->what, sizeof c->what, "%s", what);
    if (!(c->log = sc_ratelimit_new("access", 1.0, 5, 256))) {
        free(c);
        return NULL;
    }
    sc_conns_set_limits(c, cfg);
    return c;
}

static void rec_clear(sc_conns_t *c, conn_t *r)
{
    if (r->n_subs)
        c->trim = true;
    for (size_t i = 0; i < r->n_subs; i++)
        free(r->subs[i]);
    free(r->subs);
    free(r->agency);
    memset(r, 0, sizeof *r);
}

void sc_conns_destroy(sc_conns_t **c_p)
{
    if (!c_p || !*c_p)
        return;
    sc_conns_t *c = *c_p;
    for (size_t i = 0; i < c->cap; i++)
        rec_clear(c, &c->v[i]);
    free(c->v);
    sc_ratelimit_destroy(&c->log);
    free(c);
    *c_p = NULL;
}

void sc_conns_set_limits(sc_conns_t *c, const sc_config_t *cfg)
{
    c->max_unauth = cfg->max_unauthenticated;
    c->max_per_address = cfg->max_connections_per_address;
    c->max_per_agency = cfg->max_connections_per_agency;
    c->max_subs = cfg->max_subscriptions;
    c->handshake_ms = cfg->handshake_timeout_ms;
    c->slow_ms = cfg->slow_subscriber_ms;
}

static conn_t *rec(const sc_conns_t *c, int fd)
{
    return fd >= 0 && (size_t)fd < c->cap ? &c->v[fd] : NULL;
}

static conn_t *rec_make(sc_conns_t *c, int fd)
{
    if (fd < 0 || fd >= MAX_FD)
        return NULL;
    if ((size_t)fd >= c->cap) {
        size_t cap = (size_t)fd + 64;
        conn_t *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return NULL;
        memset(v + c->cap, 0, (cap - c->cap) * sizeof *v);
        c->v = v;
        c->cap = cap;
    }
    return &c->v[fd];
}

/* true if fd is still the TCP connection `r` recorded */
static bool same_peer(int fd, const conn_t *r)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (r->peer_len == 0 || getpeername(fd, (struct sockaddr *)&ss, &l) != 0)
        return false;
    return l == r->peer_len && memcmp(&ss, &r->peer, l) == 0;
}

static bool cut(sc_conns_t *c, int fd, uint64_t *counter)
{
    conn_t *r = rec(c, fd);
    if (!r || !r->open || r->cut || !same_peer(fd, r))
        return false;
    if (shutdown(fd, SHUT_RDWR) != 0)
        return false;
    r->cut = true;
    (*counter)++;
    return true;
}

static size_t count_address(const sc_conns_t *c, const char *addr)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++)
        if (c->v[i].open && !c->v[i].cut && strcmp(c->v[i].addr, addr) == 0)
            n++;
    return n;
}

void sc_conns_event(sc_conns_t *c, uint16_t event, uint32_t value,
                    int64_t now_ms)
{
    int fd = value <= (uint32_t)MAX_FD ? (int)value : -1;
    if (event == ZMQ_EVENT_ACCEPTED) {
        conn_t *r = rec_make(c, fd);
        c->st.accepted++;
        if (!r)
            return;
        rec_clear(c, r); /* a reused fd inherits nothing */
        r->open = true;
        r->accepted_ms = now_ms;
        r->peer_len = sizeof r->peer;
        if (getpeername(fd, (struct sockaddr *)&r->peer, &r->peer_len) != 0)
            r->peer_len = 0;
        const void *ip = NULL;
        if (r->peer.ss_family == AF_INET)
            ip = &((struct sockaddr_in *)&r->peer)->sin_addr;
        else if (r->peer.ss_family == AF_INET6)
            ip = &((struct sockaddr_in6 *)&r->peer)->sin6_addr;
        if (!ip || r->peer_len == 0 ||
            !inet_ntop(r->peer.ss_family, ip, r->addr, sizeof r->addr))
            snprintf(r->addr, sizeof r->addr, "%s",
                     r->peer.ss_family == AF_UNIX ? "(ipc)" : "?");
        if (c->max_per_address > 0 && r->peer_len > 0 &&
            r->peer.ss_family != AF_UNIX &&
            count_address(c, r->addr) > (size_t)c->max_per_address)
            r->over_address = true;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        conn_t *r = rec(c, fd);
        c->st.disconnected++;
        if (r && r->open)
            rec_clear(c, r);
    } else if (event == ZMQ_EVENT_ACCEPT_FAILED) {
        c->st.accept_failed++;
        sc_ratelimit_log(c->log, "(accept)", SC_L_ERROR,
                         "cannot accept a connection on the %s socket: "
                         "%s (see limits and the fd limit in "
                         "docs/operations.md)",
                         c->what, zmq_strerror((int)value));
    }
}

void sc_conns_drain(sc_conns_t *c, void *mon,
                    void (*each)(uint16_t event, uint32_t value))
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, mon, 0);
        if (zmq_msg_size(&ev) >= 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
            sc_conns_event(c, event, value, sc_mono_ms());
            if (each)
                each(event, value);
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

/* The send queue of connection fd is full: the peer does not read. */
static bool send_queue_full(int fd)
{
    int outq = 0, sndbuf = 0;
    socklen_t l = sizeof sndbuf;
    if (ioctl(fd, SIOCOUTQ, &outq) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) != 0)
        return false;
    /* Linux reports twice the payload room as SO_SNDBUF */
    return outq > 0 && (int64_t)outq * 4 >= (int64_t)sndbuf * 3 / 2;
}

void sc_conns_enforce(sc_conns_t *c, int64_t now_ms)
{
    size_t unauth = 0;
    for (size_t i = 0; i < c->cap; i++) {
        conn_t *r = &c->v[i];
        if (!r->open || r->cut)
            continue;
        if (r->over_address) {
            char a[INET6_ADDRSTRLEN];
            snprintf(a, sizeof a, "%s", r->addr);
            if (cut(c, (int)i, &c->st.cut_address))
                sc_ratelimit_log(c->log, a, SC_L_WARN,
                                 "cut a connection from %s to the %s socket: "
                                 "more than %lld open from that address "
                                 "(limits.max_connections_per_address)",
                                 a, c->what, (long long)c->max_per_address);
            r->over_address = false;
            continue;
        }
        /* younger than the handshake timeout and no subscription yet:
         * (possibly) still unauthenticated */
        if (!r->agency && now_ms - r->accepted_ms < c->handshake_ms)
            unauth++;
    }
    /* over the cap: cut the oldest handshakes first (a legitimate client
     * completes its handshake in milliseconds) */
    while (c->max_unauth > 0 && unauth > (size_t)c->max_unauth) {
        conn_t *old = NULL;
        for (size_t i = 0; i < c->cap; i++) {
            conn_t *r = &c->v[i];
            if (r->open && !r->cut && !r->agency &&
                now_ms - r->accepted_ms < c->handshake_ms &&
                (!old || r->accepted_ms < old->accepted_ms))
                old = r;
        }
        if (!old)
            break;
        char a[INET6_ADDRSTRLEN];
        snprintf(a, sizeof a, "%s", old->addr);
        if (cut(c, (int)(old - c->v), &c->st.cut_handshake))
            sc_ratelimit_log(c->log, a, SC_L_WARN,
                             "cut a connection from %s to the %s socket "
                             "still in its handshake: more than %lld at "
                             "once (limits.max_unauthenticated)",
                             a, c->what, (long long)c->max_unauth);
        else
            old->accepted_ms -= c->handshake_ms; /* not counted again */
        unauth--;
    }
    if (c->slow_ms > 0 && now_ms >= c->next_slow_ms) {
        c->next_slow_ms = now_ms + SLOW_CHECK_MS;
        for (size_t i = 0; i < c->cap; i++) {
            conn_t *r = &c->v[i];
            if (!r->open || r->cut || !r->n_subs)
                continue;
            if (!send_queue_full((int)i)) {
                r->behind_since_ms = 0;
                continue;
            }
            if (!r->behind_since_ms)
                r->behind_since_ms = now_ms;
            if (now_ms - r->behind_since_ms < c->slow_ms)
                continue;
            char ag[128];
            snprintf(ag, sizeof ag, "%s", r->agency ? r->agency : "?");
            if (cut(c, (int)i, &c->st.cut_slow))
                sc_ratelimit_log(c->log, ag, SC_L_WARN,
                                 "cut a connection of agency '%s' from %s: "
                                 "it has not read for %lld ms and messages "
                                 "are being dropped for it "
                                 "(limits.slow_subscriber_ms); its client "
                                 "repairs by replay when it reconnects",
                                 ag, r->addr, (long long)c->slow_ms);
        }
    }
    if (c->trim) {
        /* libzmq's queue of a connection that went is free memory now;
         * hand it back to the system instead of keeping it in the heap */
        malloc_trim(0);
        c->trim = false;
    }
}

static long sub_find(const conn_t *r, const char *t, size_t tl)
{
    for (size_t i = 0; r && i < r->n_subs; i++)
        if (strlen(r->subs[i]) == tl && memcmp(r->subs[i], t, tl) == 0)
            return (long)i;
    return -1;
}

static size_t agency_conns(const sc_conns_t *c, const char *agency)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++)
        if (c->v[i].open && !c->v[i].cut && c->v[i].agency &&
            strcmp(c->v[i].agency, agency) == 0)
            n++;
    return n;
}

sc_sub_verdict_t sc_conns_identify(sc_conns_t *c, int fd, const char *agency)
{
    conn_t *r = rec(c, fd);
    if (!r || !r->open || r->agency)
        return SC_SUB_ADDED; /* untracked, or known already */
    if (c->max_per_agency > 0 &&
        agency_conns(c, agency) >= (size_t)c->max_per_agency) {
        cut(c, fd, &c->st.cut_agency);
        return SC_SUB_AGENCY_FULL;
    }
    if (!(r->agency = strdup(agency)))
        return SC_SUB_NO_MEMORY;
    return SC_SUB_ADDED;
}

sc_sub_verdict_t sc_conns_sub_add(sc_conns_t *c, int fd, const char *agency,
                                  const char *topic, size_t len)
{
    conn_t *r = rec(c, fd);
    if (!r || !r->open)
        return SC_SUB_ADDED; /* not a tracked TCP connection */
    if (sub_find(r, topic, len) >= 0)
        return SC_SUB_REPEAT;
    if (r->n_subs >= (size_t)c->max_subs)
        return SC_SUB_TOO_MANY;
    sc_sub_verdict_t v0 = sc_conns_identify(c, fd, agency);
    if (v0 != SC_SUB_ADDED)
        return v0;
    char **v = realloc(r->subs, (r->n_subs + 1) * sizeof *v);
    if (!v)
        return SC_SUB_NO_MEMORY;
    r->subs = v;
    if (!(v[r->n_subs] = strndup(topic, len)))
        return SC_SUB_NO_MEMORY;
    r->n_subs++;
    return SC_SUB_ADDED;
}

bool sc_conns_tracked(const sc_conns_t *c, int fd)
{
    const conn_t *r = rec(c, fd);
    return r && r->open;
}

bool sc_conns_sub_has(const sc_conns_t *c, int fd, const char *topic,
                      size_t len)
{
    return sub_find(rec(c, fd), topic, len) >= 0;
}

bool sc_conns_sub_remove(sc_conns_t *c, int fd, const char *topic,
                         size_t len)
{
    conn_t *r = rec(c, fd);
    long k = sub_find(r, topic, len);
    if (k < 0)
        return false;
    free(r->subs[k]);
    r->subs[k] = r->subs[--r->n_subs];
    return true;
}

size_t sc_conns_cut_agency(sc_conns_t *c, const char *agency,
                           bool (*keep)(void *arg, const char *topic,
                                        size_t len),
                           void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++) {
        conn_t *r = &c->v[i];
        if (!r->open || r->cut || !r->agency || strcmp(r->agency, agency))
            continue;
        bool bad = !keep;
        for (size_t k = 0; !bad && k < r->n_subs; k++)
            bad = !keep(arg, r->subs[k], strlen(r->subs[k]));
        if (bad && cut(c, (int)i, &c->st.cut_revoked))
            n++;
    }
    return n;
}

sc_conns_stats_t sc_conns_stats(const sc_conns_t *c)
{
    sc_conns_stats_t s = c->st;
    s.open = s.subscribed = 0;
    for (size_t i = 0; i < c->cap; i++) {
        if (c->v[i].open)
            s.open++;
        if (c->v[i].open && c->v[i].n_subs)
            s.subscribed++;
    }
    return s;
}

void sc_conns_fd_limit(const sc_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            sc_log(SC_L_INFO, "core", "fd limit raised from %llu to %llu",
                   (unsigned long long)was, (unsigned long long)rl.rlim_cur);
        else if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    /* what the caps allow at once: handshakes and the connections of
     * every agency, on both sockets (publish and service), plus a reserve
     * for the journal, plugins, the control and HTTP sockets */
    unsigned long long need =
        2ull * (unsigned long long)cfg->max_unauthenticated +
        2ull * (unsigned long long)cfg->max_connections_per_agency *
            (unsigned long long)(cfg->n_agencies ? cfg->n_agencies : 1) +
        64ull + 4ull * (unsigned long long)cfg->n_plugins;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        sc_log(SC_L_WARN, "core",
               "the fd limit (%llu) is below what the configured caps allow "
               "(%llu: 2 x limits.max_unauthenticated + 2 x "
               "limits.max_connections_per_agency per agency + a reserve); "
               "raise the hard limit (LimitNOFILE= in the systemd unit) or "
               "lower the caps",
               (unsigned long long)rl.rlim_cur, need);
}

int sc_conns_sndhwm(const sc_config_t *cfg)
{
    /* the largest message: a JWS (base64url of an envelope holding
     * max_data_bytes of data plus at most ~2 KiB of names and ids, a
     * header and a signature) and its topic frame, plus libzmq's own
     * bookkeeping per message */
    int64_t env = cfg->max_data_bytes + 2048;
    int64_t msg = env / 3 * 4 + 4 + 512 + 256;
    int64_t hwm = cfg->send_queue_bytes / msg;
    if (hwm < 16)
        hwm = 16; /* configuration refuses budgets this small */
    if (hwm > 1000000)
        hwm = 1000000;
    return (int)hwm;
}
