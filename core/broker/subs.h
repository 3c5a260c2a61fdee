/*
 * subs.h - subscription decisions on the publish (XPUB) socket.
 *
 * Owns the per-connection sets of granted subtrees: each subscription
 * message is granted (ZMQ_SUBSCRIBE) or refused before the next one is
 * received (with XPUB_MANUAL a subscribe applies to the pipe of the last
 * message received), bounded by limits.max_subscriptions per connection;
 * disconnects (from the socket monitor) free a connection's set.
 * Never sends data; used from the core thread only.
 */
#ifndef SC_SUBS_H
#define SC_SUBS_H

#include <stdint.h>

#include "access.h"
#include "config.h"

typedef struct sc_subs sc_subs_t;

/* xpub: the publish socket; mon: the PAIR connected to its monitor
 * (ZMQ_EVENT_ACCEPTED, DISCONNECTED, ACCEPT_FAILED). Both borrowed. The
 * connections are tracked by conns.h. NULL if out of memory. */
sc_subs_t *sc_subs_new(void *xpub, void *mon, const sc_config_t *cfg);
void sc_subs_destroy(sc_subs_t **s_p);

/* Decide one waiting subscription message, if any, with the current
 * access and limits (borrowed for the call only). */
void sc_subs_handle(sc_subs_t *s, const sc_access_t *access,
                    const sc_config_t *cfg);

/* Take the monitor's events. Call it before every sc_subs_handle: a
 * connection's ACCEPTED event precedes its first subscription. */
void sc_subs_handle_monitor(sc_subs_t *s);

/* Connection caps, handshakes over the cap, slow subscribers (conns.h);
 * call it every loop iteration. */
void sc_subs_enforce(sc_subs_t *s, int64_t now_ms);

/* After a reload: the limits that apply from now on (the send queue
 * bound and handshake timeout apply to new connections). */
void sc_subs_set_limits(sc_subs_t *s, const sc_config_t *cfg);

/* Revocation at once, after a reload swapped in `access` (built from
 * `nc`): an agency removed, re-keyed or with narrowed grants loses every
 * open connection holding a subscription it may no longer have (cut; its
 * client reconnects and subscribes under the new grants). Its connections
 * with nothing subscribed are refused from then on by access.c (the key
 * tag in the User-Id) and the new grants. Other agencies are untouched.
 * Logs one line per affected agency. */
void sc_subs_revoke(sc_subs_t *s, const sc_config_t *oc,
                    const sc_config_t *nc, const sc_access_t *access);

/* Emit the rate limiter's "N similar lines suppressed" summaries. */
void sc_subs_flush_log(sc_subs_t *s);

uint64_t sc_subs_granted(const sc_subs_t *s);
uint64_t sc_subs_refused(const sc_subs_t *s);

#endif
