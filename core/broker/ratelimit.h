/*
 * ratelimit.h - log lines that a flood cannot multiply.
 *
 * One limiter per kind of event (ZAP refusals, refused subscriptions,
 * refused service requests, ...). Each *source* (a peer address, an agency
 * id, a plugin name: whatever the caller names) has a token bucket: it may
 * write `burst` lines at once, refilled at `per_sec` lines per second.
 * Lines over that are counted, not written; SC_RATELIMIT_SUMMARY_MS after
 * the first suppressed line of a source, one line says
 *
 *   ... [access] 4211 similar line(s) from 10.0.0.7 suppressed in 10 s
 *
 * Bounds (documented in docs/security.md): the table holds at most
 * `max_sources` sources (fixed at creation). When it is full, a new source
 * shares one overflow bucket named "(other sources)" with every other
 * source not in the table, so the lines a limiter writes per second are at
 * most (max_sources + 1) * per_sec after the initial bursts, plus one
 * summary per source per interval, whatever the number of peers. A
 * summary is written by the next sc_ratelimit_log or sc_ratelimit_flush
 * call once it is due. Entries
 * whose bucket is full again and that have nothing to report are reused.
 *
 * Owns the buckets and the summary lines; never decides what is refused
 * (the caller has already done that and still counts every event in its
 * own counters/metrics). Thread-safe (one mutex per limiter); calls sc_log.
 */
#ifndef SC_RATELIMIT_H
#define SC_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define SC_RATELIMIT_SUMMARY_MS 10000
#define SC_RATELIMIT_SOURCE_MAX 96 /* longer source names are cut */

typedef struct sc_ratelimit sc_ratelimit_t;

/* `who` is the log component these lines are written as ("access").
 * per_sec > 0, burst >= 1, max_sources >= 1. NULL on out of memory. */
sc_ratelimit_t *sc_ratelimit_new(const char *who, double per_sec,
                                 unsigned burst, size_t max_sources);
/* Writes the pending summaries, then frees. */
void sc_ratelimit_destroy(sc_ratelimit_t **rl_p);

/* Log one line for `source` (NULL = "?") at `level` if its bucket has a
 * token; otherwise count it as suppressed. Returns true if written. */
bool sc_ratelimit_log(sc_ratelimit_t *rl, const char *source,
                      sc_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write the summaries that are due. Call it now and then (the core loop
 * does at least once a second); sc_ratelimit_log also calls it. Returns
 * the number of summary lines written. */
int sc_ratelimit_flush(sc_ratelimit_t *rl);

/* Tests only: replace the monotonic clock (NULL restores it). */
void sc_ratelimit_set_clock(int64_t (*now_ms)(void));

/* Totals since creation, for tests and metrics. */
uint64_t sc_ratelimit_written(const sc_ratelimit_t *rl);
uint64_t sc_ratelimit_suppressed(const sc_ratelimit_t *rl);

#endif
