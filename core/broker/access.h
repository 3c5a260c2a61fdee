/*
 * access.h - who may connect and what each agency may read.
 *
 * Owns the agencies table (id, CURVE public key, granted subtrees), the
 * ZAP handler (RFC 27) that admits only listed CURVE keys and names the
 * peer by its agency id (ZeroMQ returns it as the "User-Id" metadata of
 * every message from that peer), and the grant check for a subscription.
 * Never touches the publish socket itself: the core applies the verdicts.
 */
#ifndef SC_ACCESS_H
#define SC_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* The ZAP domain our server sockets use. */
#define SC_ZAP_DOMAIN "sectorcast"
#define SC_ZAP_ENDPOINT "inproc://zeromq.zap.01"

typedef struct sc_access sc_access_t;

sc_access_t *sc_access_new(const sc_config_t *cfg, char *err, size_t errlen);
void sc_access_destroy(sc_access_t **a_p);

/* Make `sock` a CURVE server with `secret_z85` whose every peer is
 * authenticated by our ZAP handler (domain SC_ZAP_DOMAIN, enforced: with
 * CURVE and no ZAP verdict libzmq would admit everyone). 0, or -1 with
 * errno set. */
int sc_access_curve_server(void *sock, const char *secret_z85);

/* Answer one ZAP request waiting on `zap` (a REP socket bound to
 * SC_ZAP_ENDPOINT). Logs refusals and admissions, rate-limited per peer
 * address / per agency (ratelimit.h); counts every one in the stats.
 * 0, or -1 if the socket failed. */
int sc_access_zap_handle(sc_access_t *a, void *zap);

/* Every ZAP verdict since start (never rate-limited). */
typedef struct sc_access_stats {
    unsigned long long admitted;
    unsigned long long refused;
} sc_access_stats_t;
sc_access_stats_t sc_access_stats(const sc_access_t *a);

/* After a reload: `to` (the new table) keeps `from`'s log limiters and
 * counters, so a SIGHUP resets neither. */
void sc_access_take_over(sc_access_t *to, sc_access_t *from);

/* Write the "suppressed" summaries that are due (call about once a
 * second). */
void sc_access_flush_log(sc_access_t *a);

/* Agency by the "User-Id" ZeroMQ reports for a peer. The ZAP handler
 * answers "ID#KEYTAG" (KEYTAG: the first 4 bytes of the agency's CURVE
 * public key in hex), so after a reload that removes an agency or changes
 * its key, connections authenticated before are unknown here: every
 * later subscription and request of theirs is refused. NULL if unknown. */
typedef struct sc_agency sc_agency_t;
const sc_agency_t *sc_access_agency(const sc_access_t *a, const char *user);
/* Agency by its configured id; NULL if unknown. */
const sc_agency_t *sc_access_agency_by_id(const sc_access_t *a,
                                          const char *id);
const char *sc_agency_id(const sc_agency_t *ag);
size_t sc_agency_grant_count(const sc_agency_t *ag);
const char *sc_agency_grant(const sc_agency_t *ag, size_t i);

/* true if `subtree` (len bytes) is a valid subtree inside one of the
 * agency's grants. */
bool sc_agency_may_read(const sc_agency_t *ag, const char *subtree,
                        size_t len);

#endif
