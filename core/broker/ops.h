/*
 * ops.h - the broker's operations surface in one place: starts and stops
 * the status snapshot, audit log, control endpoint and monitoring HTTP
 * server, defines the broker's metrics, and offers the one-line hooks the
 * pipeline, access, service, plugin host and supervisor call to report
 * what happened (each hook updates metrics, status and the audit trail as
 * fits; every hook is cheap, never blocks on I/O and is a no-op before
 * sc_ops_new or after sc_ops_destroy).
 *
 * Metric names (all prefixed sectorcast_) are listed in
 * docs/operations.md.
 */
#ifndef SC_OPS_H
#define SC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "control.h"

typedef struct sc_ops sc_ops_t;

/* On the core thread, after the journal is open. NULL + err when a
 * configured part (audit file, control socket, HTTP listen) fails. */
sc_ops_t *sc_ops_new(void *zctx, const sc_config_t *cfg, const char *epoch,
                     char *err, size_t errlen);
void sc_ops_destroy(sc_ops_t **o_p);
/* After a reload was applied. */
void sc_ops_reconfigure(sc_ops_t *o, const sc_config_t *cfg);
/* The core's end of the control pipe (NULL when control is off). */
sc_control_t *sc_ops_control(sc_ops_t *o);
/* Reopen the log file and the audit file (SIGUSR1, ctl log-reopen). */
int sc_ops_reopen_logs(sc_ops_t *o, char *err, size_t errlen);

/* Monotonic seconds, for the timing hooks. */
double sc_ops_now(void);

/* --- hooks ---------------------------------------------------------- */
void sc_ops_channel_head(const char *channel, uint64_t head);
/* `n` messages of `plugin` on `channel`, `bytes` in all (JWS), committed
 * and sent; `head` the last one's seq. The core reports each run of one
 * plugin's messages on one channel within a group once. */
void sc_ops_published(const char *channel, const char *plugin, uint64_t head,
                      uint64_t n, size_t bytes);
/* A publish refused (reason: a short word: "not-granted", "bad-json"...;
 * channel "" or NULL when it was not a channel name; bytes: the length of
 * its data). */
void sc_ops_refused(const char *plugin, const char *channel,
                    const char *reason, size_t bytes);
void sc_ops_group(size_t n, double commit_seconds);
/* One message signed in `seconds` (called by the core thread when it
 * commits the message, not by the signing thread). */
void sc_ops_signed(double seconds);
/* The journal accepted (NULL) or refused (error text) a group. */
void sc_ops_journal(const char *error);

/* refusal NULL = granted */
void sc_ops_subscription(int fd, const char *agency, const char *subtree,
                         const char *refusal);
void sc_ops_unsubscribed(int fd, const char *agency, const char *subtree);
void sc_ops_disconnected(int fd);
void sc_ops_connected(const char *agency, const char *addr);
void sc_ops_key_rejected(const char *z85, const char *addr);
/* kind "replay" (channel, from) or "snapshot" (subtree in channel);
 * refusal NULL = served with `count` messages. */
void sc_ops_request(const char *agency, const char *kind, const char *channel,
                    uint64_t from, uint64_t count, const char *refusal);

void sc_ops_plugin(const char *name, const char *state, int pid,
                   const char *error);
void sc_ops_plugin_crashed(const char *name, const char *why);

#endif
