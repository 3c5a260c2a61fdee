/*
 * service.h - the service socket (ROUTER, CURVE server).
 *
 * Owns the request/reply protocol of docs/protocol.md section 10: who-am-I,
 * channel heads, replay of a channel from a sequence number, and snapshots
 * of the latest message per key under a subtree. Every request is checked
 * against the requesting agency's grants (its ZAP user-id) and its request
 * rate. Runs on its own thread (sc_service_start) with its own read-only
 * journal connection, so a replay or snapshot never delays publishing.
 * Messages journaled by an earlier run are re-verified before they are
 * served (a message whose signature no longer verifies is never sent);
 * messages this process signed are sent as stored (docs/security.md).
 * Never writes to the journal.
 */
#ifndef SC_SERVICE_H
#define SC_SERVICE_H

#include <stddef.h>

#include "access.h"
#include "common/jwks.h"
#include "config.h"
#include "journal.h"

typedef struct sc_service sc_service_t;

/* Create the ROUTER socket in `zctx` and bind it to cfg->service_endpoint,
 * and open a journal reader on `journal` (call before anything is
 * published: the heads it reads then mark what earlier runs journaled).
 * Takes ownership of `access` (the service's own copy, also on failure);
 * copies `jwks`. The ZAP handler must already be bound. NULL on failure. */
sc_service_t *sc_service_new(void *zctx, const sc_config_t *cfg,
                             const char *curve_secret_z85,
                             sc_access_t *access, sc_journal_t *journal,
                             const sc_jwks_t *jwks, char *err, size_t errlen);
/* Start the service thread; from then on only it uses the socket. */
int sc_service_start(sc_service_t *s, char *err, size_t errlen);
/* Stops the thread (within ~100 ms) and frees. */
void sc_service_destroy(sc_service_t **s_p);

/* Handle one request if one is waiting. 0 if handled, -1 if none. Used by
 * the service thread (or by a caller that never started it). */
int sc_service_handle(sc_service_t *s);

/* Hand a reloaded config's access table (ownership moves), limits and
 * keys to the service: it swaps them in between two requests, from any
 * thread, without waiting for a request in progress. */
void sc_service_set_access(sc_service_t *s, sc_access_t *access,
                           const sc_config_t *cfg, const sc_jwks_t *jwks);

#endif
