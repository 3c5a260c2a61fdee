/*
 * conns.h - one socket's connections, as its thread sees them.
 *
 * Used for the publish socket (by the core, through subs.c) and for the
 * service socket (by the service thread, service.c), one instance each.
 * libzmq hides its connections; the owner learns of them from the socket
 * monitor (ACCEPTED and DISCONNECTED carry the connection's fd)
 * and from subscription messages (ZMQ_SRCFD and the ZAP "User-Id"). This
 * module keeps one record per open connection, keyed by fd but reset on
 * ACCEPTED as well as DISCONNECTED, so a reused fd never inherits a
 * previous connection's subscriptions. The caller must hand it every
 * pending monitor event before it reads the next subscription message:
 * libzmq queues a connection's ACCEPTED event before that connection can
 * send anything, so the record is always fresh when a subscription is
 * decided.
 *
 * It owns: the per-connection subscription set (bounded by
 * limits.max_subscriptions), the caps on connections per peer address,
 * on subscribed connections per agency and on connections still in their
 * handshake, the slow-subscriber check, and cutting a connection. A
 * connection is cut with shutdown(2) on its fd (after checking that the
 * fd is still the same TCP connection: same peer address and port): libzmq
 * then sees the end of the stream, closes it and frees its queue; the fd
 * is never closed here. The bound on memory per connection is libzmq's
 * SNDHWM, which the core derives from limits.send_queue_bytes.
 *
 * Never decides grants (access.c) and never sends (the core does).
 */
#ifndef SC_CONNS_H
#define SC_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct sc_conns sc_conns_t;

/* `what` names the socket in log lines ("publish", "service"). */
sc_conns_t *sc_conns_new(const sc_config_t *cfg, const char *what);
void sc_conns_destroy(sc_conns_t **c_p);
/* After a reload: take the new limits. */
void sc_conns_set_limits(sc_conns_t *c, const sc_config_t *cfg);

/* One monitor event of the socket (ZMQ_EVENT_*, its value). */
void sc_conns_event(sc_conns_t *c, uint16_t event, uint32_t value,
                    int64_t now_ms);
/* Every pending event on the monitor socket `mon` (a PAIR connected to
 * zmq_socket_monitor's endpoint), each passed to sc_conns_event and then
 * to `each` (may be NULL). */
void sc_conns_drain(sc_conns_t *c, void *mon,
                    void (*each)(uint16_t event, uint32_t value));
/* After the pending events: cut connections over the per-address cap and
 * the oldest handshakes over limits.max_unauthenticated; every `now_ms`
 * second or so, cut subscribers that fell behind. */
void sc_conns_enforce(sc_conns_t *c, int64_t now_ms);

typedef enum sc_sub_verdict {
    SC_SUB_ADDED = 0,       /* new in this connection's set */
    SC_SUB_REPEAT,          /* already in the set */
    SC_SUB_TOO_MANY,        /* limits.max_subscriptions on this connection */
    SC_SUB_AGENCY_FULL,     /* limits.max_connections_per_agency: cut */
    SC_SUB_NO_MEMORY
} sc_sub_verdict_t;

/* Connection `fd` is `agency`'s (its first subscription, or its first
 * request on the service socket): it no longer counts as a handshake, and
 * it counts towards limits.max_connections_per_agency. ADDED if recorded
 * (or already that agency's, or fd untracked), AGENCY_FULL if over the cap
 * (the connection is then cut), NO_MEMORY. */
sc_sub_verdict_t sc_conns_identify(sc_conns_t *c, int fd, const char *agency);

/* A subscription of `agency` on connection `fd` that access.c granted:
 * record it (the caller then applies ZMQ_SUBSCRIBE only if ADDED or
 * REPEAT). fd < 0 (unknown) is recorded nowhere and ADDED. */
sc_sub_verdict_t sc_conns_sub_add(sc_conns_t *c, int fd, const char *agency,
                                  const char *topic, size_t len);
/* true if `fd` is an open connection this module tracks (TCP). */
bool sc_conns_tracked(const sc_conns_t *c, int fd);
/* true if `topic` is in the set of connection `fd`. */
bool sc_conns_sub_has(const sc_conns_t *c, int fd, const char *topic,
                      size_t len);
/* Remove it; true if it was there. */
bool sc_conns_sub_remove(sc_conns_t *c, int fd, const char *topic,
                         size_t len);

/* Cut every connection of `agency` that holds a subscription for which
 * `keep(arg, topic, len)` is false (keep NULL: all of them). Returns the
 * number of connections cut. */
size_t sc_conns_cut_agency(sc_conns_t *c, const char *agency,
                           bool (*keep)(void *arg, const char *topic,
                                        size_t len),
                           void *arg);

/* Counters since start (every event, never rate-limited). */
typedef struct sc_conns_stats {
    uint64_t accepted, disconnected, accept_failed;
    uint64_t cut_address, cut_handshake, cut_agency, cut_slow, cut_revoked;
    size_t open, subscribed;
} sc_conns_stats_t;
sc_conns_stats_t sc_conns_stats(const sc_conns_t *c);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit and warn (log) when
 * the configured caps could need more descriptors than that. */
void sc_conns_fd_limit(const sc_config_t *cfg);

/* The SNDHWM (messages) that keeps one connection's queue within
 * limits.send_queue_bytes when every message is as large as it can be. */
int sc_conns_sndhwm(const sc_config_t *cfg);

#endif
