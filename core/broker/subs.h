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
 * (ZMQ_EVENT_DISCONNECTED). Both borrowed. NULL if out of memory. */
sc_subs_t *sc_subs_new(void *xpub, void *mon);
void sc_subs_destroy(sc_subs_t **s_p);

/* Decide one waiting subscription message, if any, with the current
 * access and limits (borrowed for the call only). */
void sc_subs_handle(sc_subs_t *s, const sc_access_t *access,
                    const sc_config_t *cfg);

/* Take the monitor's disconnect events. */
void sc_subs_handle_monitor(sc_subs_t *s);

/* Emit the rate limiter's "N similar lines suppressed" summaries. */
void sc_subs_flush_log(sc_subs_t *s);

uint64_t sc_subs_granted(const sc_subs_t *s);
uint64_t sc_subs_refused(const sc_subs_t *s);

#endif
