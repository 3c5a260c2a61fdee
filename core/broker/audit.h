/*
 * audit.h - the audit trail: who was given what, one JSON line per event.
 *
 *   {"ts":"2026-11-29T16:01:02.345Z","event":"subscription","agency":"motie",
 *    "subtree":"energy.","result":"granted"}
 *
 * Events: subscription (granted/refused, with the reason), replay and
 * snapshot (served or refused, with channel and counts), connection
 * (agency connected) and key_rejected (an unknown CURVE public key: the
 * public key is shown, never a secret), reload (applied/refused), plugin
 * restart, stop, audit_dropped.
 *
 * Owns the audit file (0600, append) and its writer thread: callers on any
 * thread format the line and queue it (never blocking on I/O); the writer
 * appends and rotates by size (path -> path.1 -> ... -> path.KEEP). The
 * queue holds at most SC_AUDIT_QUEUE (8192) lines: when it is full the
 * event is dropped, counted (sectorcast_audit_dropped_total) and, once
 * there is room again, an "audit_dropped" line says how many were lost.
 * Never decides what is audited; never logs secrets (callers pass no
 * secret material).
 */
#ifndef SC_AUDIT_H
#define SC_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SC_AUDIT_QUEUE 8192

typedef struct sc_audit sc_audit_t;

/* max_bytes: rotate when the file would grow past it (0 = never);
 * keep: rotated files kept (1..100). NULL + err on failure. The first
 * instance created becomes the process-wide one used by sc_audit(). */
sc_audit_t *sc_audit_new(const char *path, int64_t max_bytes, int keep,
                         char *err, size_t errlen);
/* Writes everything queued, then stops the writer. */
void sc_audit_destroy(sc_audit_t **a_p);
/* Apply a reloaded size/keep (the path cannot change without restart). */
void sc_audit_set_limits(sc_audit_t *a, int64_t max_bytes, int keep);
/* Reopen the file (after an external rotation). */
void sc_audit_reopen(sc_audit_t *a);

/* Queue one event on the process-wide audit log (no-op when there is
 * none). Takes ownership of `fields` (may be NULL); "ts" and "event" are
 * added. */
void sc_audit(const char *event, json_t *fields);

#endif
