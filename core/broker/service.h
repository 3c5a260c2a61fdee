/*
 * service.h - the service socket (ROUTER, CURVE server).
 *
 * Owns the request/reply protocol of docs/protocol.md section 10: who-am-I,
 * channel heads, replay of a channel from a sequence number, and snapshots
 * of the latest message per key under a subtree. Every request is checked
 * against the requesting agency's grants (its ZAP user-id) and its request
 * rate. Journaled messages are re-verified before they are served: a
 * message whose signature no longer verifies is never sent.
 * Runs on the core thread; never writes to the journal.
 */
#ifndef SC_SERVICE_H
#define SC_SERVICE_H

#include <stddef.h>

#include "access.h"
#include "common/jwks.h"
#include "config.h"
#include "journal.h"

typedef struct sc_service sc_service_t;

/* Create the ROUTER socket in `zctx` and bind it to cfg->service_endpoint.
 * The ZAP handler must already be bound. NULL on failure. */
sc_service_t *sc_service_new(void *zctx, const sc_config_t *cfg,
                             const char *curve_secret_z85,
                             const sc_access_t *access, sc_journal_t *journal,
                             const sc_jwks_t *jwks, char *err, size_t errlen);
void sc_service_destroy(sc_service_t **s_p);

void *sc_service_socket(sc_service_t *s);

/* Handle one request if one is waiting. 0 if handled, -1 if none. */
int sc_service_handle(sc_service_t *s);

/* Write the due "N similar line(s) suppressed" summaries of the refused
 * requests' log (ratelimit.h); call about once a second. */
void sc_service_flush_log(sc_service_t *s);

/* Swap in a new config's limits/access (used on reload). */
void sc_service_set_access(sc_service_t *s, const sc_access_t *access,
                           const sc_config_t *cfg, const sc_jwks_t *jwks);

#endif
