/*
 * signpool.h - the signing workers.
 *
 * Owns a fixed set of worker threads that run one indexed job at a time
 * for the core thread: sc_signpool_run(fn, n) calls fn(arg, i, worker) for
 * every i < n, spread over the workers and the calling thread, and returns
 * when all n calls have returned; sc_signpool_start() hands a run to the
 * workers and returns at once (the caller does other work meanwhile),
 * sc_signpool_wait() joins it. Knows nothing of messages, sockets or
 * the journal: what a job may touch is the caller's contract (the
 * pipeline gives each job its own message slot). No queue: one run at a
 * time, so nothing to bound.
 */
#ifndef SC_SIGNPOOL_H
#define SC_SIGNPOOL_H

#include <stddef.h>

typedef struct sc_signpool sc_signpool_t;

/* worker: 0..threads-1 for the workers, `threads` for the caller. */
typedef void (*sc_signpool_fn)(void *arg, size_t i, int worker);

/* threads >= 0 (0: the caller does everything). NULL on failure. */
sc_signpool_t *sc_signpool_new(int threads);
void sc_signpool_destroy(sc_signpool_t **p_p);
int sc_signpool_threads(const sc_signpool_t *p);

/* Run fn for i in [0, n) and wait. Items are taken in index order; the
 * calling thread takes them too while it would otherwise wait. */
void sc_signpool_run(sc_signpool_t *p, sc_signpool_fn fn, void *arg,
                     size_t n);

/* The same in two steps, from one thread: start hands the run to the
 * workers (with none, nothing runs yet); wait takes the items nobody took
 * and returns when all n calls have returned. Every start is followed by
 * exactly one wait before the next start or run. */
void sc_signpool_start(sc_signpool_t *p, sc_signpool_fn fn, void *arg,
                       size_t n);
void sc_signpool_wait(sc_signpool_t *p);

#endif
