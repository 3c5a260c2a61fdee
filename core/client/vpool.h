/*
 * vpool.h - the client's verification threads.
 *
 * Owns a fixed set of worker threads that run one function over the items
 * of a batch, the calling thread working beside them; sc_vpool_run()
 * returns when every item is done. Items are independent: the function
 * must touch nothing shared but what is read-only during the batch (the
 * client passes the JWKS). Never touches a socket, the order tracking,
 * the delivery queue or the counters: the calling thread does that, in
 * order, after the batch.
 */
#ifndef SC_CLIENT_VPOOL_H
#define SC_CLIENT_VPOOL_H

#include <stddef.h>

typedef struct sc_vpool sc_vpool_t;

typedef void (*sc_vpool_fn)(void *item, void *arg);

/* `threads` verifying threads in all, the caller's included: threads - 1
 * workers are started (at most SC_VPOOL_MAX - 1). NULL if threads < 2 (no
 * pool needed) or on failure, with err filled then. Workers block every
 * signal: signals stay with the application's threads. */
#define SC_VPOOL_MAX 64
sc_vpool_t *sc_vpool_new(int threads, char *err, size_t errlen);

/* Run fn(item, arg) for each of the n items (each `size` bytes, from
 * `items`), spread over the workers and the calling thread; returns when
 * all are done. A batch of one runs on the caller alone. */
void sc_vpool_run(sc_vpool_t *p, void *items, size_t n, size_t size,
                  sc_vpool_fn fn, void *arg);

void sc_vpool_destroy(sc_vpool_t **p);

#endif
