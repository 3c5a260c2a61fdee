/*
 * workpool.h - worker threads that run the items of one indexed job.
 *
 * Owns a fixed set of worker threads that run one indexed job at a time
 * for one calling thread: sc_workpool_run(fn, n) calls fn(arg, i, worker)
 * for every i < n, spread over the workers and the calling thread, and
 * returns when all n calls have returned; sc_workpool_start() hands a run
 * to the workers and returns at once (the caller does other work
 * meanwhile), sc_workpool_wait() joins it. Knows nothing of what the
 * items are: what a job may touch is the caller's contract (the broker's
 * pipeline signs each message in its own slot; the client's checks read
 * only the JWKS besides their own item). No queue: one run at a time, so
 * nothing to bound. Used by the broker (signing threads) and by
 * libsectorcast (verifying threads).
 */
#ifndef SC_WORKPOOL_H
#define SC_WORKPOOL_H

#include <stddef.h>

typedef struct sc_workpool sc_workpool_t;

/* worker: 0..threads-1 for the workers, `threads` for the caller. */
typedef void (*sc_workpool_fn)(void *arg, size_t i, int worker);

/* threads >= 0 workers (0: the caller does everything), named
 * "sc-ROLE:K" (K = 0..threads-1; keep ROLE to 6 characters), every
 * signal blocked in them: signals stay with the program's own threads.
 * NULL on failure. */
sc_workpool_t *sc_workpool_new(int threads, const char *role);
void sc_workpool_destroy(sc_workpool_t **p_p);
int sc_workpool_threads(const sc_workpool_t *p);

/* Run fn for i in [0, n) and wait. Items are taken in index order; the
 * calling thread takes them too while it would otherwise wait. */
void sc_workpool_run(sc_workpool_t *p, sc_workpool_fn fn, void *arg,
                     size_t n);

/* The same in two steps, from one thread: start hands the run to the
 * workers (with none, nothing runs yet); wait takes the items nobody took
 * and returns when all n calls have returned. Every start is followed by
 * exactly one wait before the next start or run. */
void sc_workpool_start(sc_workpool_t *p, sc_workpool_fn fn, void *arg,
                       size_t n);
void sc_workpool_wait(sc_workpool_t *p);

#endif
