/*
 * vpool.c - see vpool.h.
 *
 * One batch at a time: sc_vpool_run() publishes it under the lock with a
 * new generation number and wakes the workers; everyone (the caller
 * included) claims the next item with one atomic ticket, the generation
 * in its high half and the item's index in the low half, so that a
 * worker that wakes late claims nothing of a batch that has moved on.
 * The caller returns when every item is done, without waiting for the
 * workers themselves (one still asleep costs the batch nothing): no
 * worker touches a batch after sc_vpool_run() returns, as every item it
 * claimed is counted done before.
 */
#define _GNU_SOURCE
#include "vpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
    uint32_t gen;
    char *items;
    size_t n, size;
    sc_vpool_fn fn;
    void *arg;
} batch_t;

struct sc_vpool {
    pthread_mutex_t mu;
    pthread_cond_t work;     /* a new generation, or stop */
    pthread_cond_t done_cv;  /* the last item of the batch is done */
    bool stop;
    batch_t b;               /* the current batch, under mu */
    _Atomic uint64_t ticket; /* gen << 32 | next index */
    atomic_size_t done;      /* items of the current batch done */

    int n_workers;
    pthread_t workers[SC_VPOOL_MAX];
};

/* Claim and run items of batch `b` until none is left or the batch is
 * no longer current. */
static void take_items(sc_vpool_t *p, const batch_t *b)
{
    uint64_t t = atomic_load(&p->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != b->gen || (t & 0xffffffffu) >= b->n)
            return;
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + 1))
            continue; /* t reloaded */
        size_t i = (size_t)(t & 0xffffffffu);
        b->fn(b->items + i * b->size, b->arg);
        if (atomic_fetch_add(&p->done, 1) + 1 == b->n) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        t = atomic_load(&p->ticket);
    }
}

static void *worker(void *arg)
{
    sc_vpool_t *p = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->b.gen == seen && !p->stop)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        batch_t b = p->b;
        seen = b.gen;
        pthread_mutex_unlock(&p->mu);
        take_items(p, &b);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sc_vpool_t *sc_vpool_new(int threads, char *err, size_t errlen)
{
    if (threads < 2)
        return NULL;
    if (threads > SC_VPOOL_MAX)
        threads = SC_VPOOL_MAX;
    sc_vpool_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    /* the workers inherit a mask that blocks every signal */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < threads - 1; i++) {
        rc = pthread_create(&p->workers[i], NULL, worker, p);
        if (rc != 0)
            break;
        char name[16];
        snprintf(name, sizeof name, "sc-verify:%u", (unsigned)(i + 1) % 100u);
        pthread_setname_np(p->workers[i], name);
        p->n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start a verifying thread: %s",
                 strerror(rc));
        sc_vpool_destroy(&p);
        return NULL;
    }
    return p;
}

void sc_vpool_run(sc_vpool_t *p, void *items, size_t n, size_t size,
                  sc_vpool_fn fn, void *arg)
{
    if (!p || n < 2) {
        for (size_t i = 0; i < n; i++)
            fn((char *)items + i * size, arg);
        return;
    }
    pthread_mutex_lock(&p->mu);
    batch_t b = {.gen = p->b.gen + 1, .items = items, .n = n,
                 .size = size, .fn = fn, .arg = arg};
    if (b.gen == 0)
        b.gen = 1; /* 0 is the workers' "seen nothing yet" */
    p->b = b;
    atomic_store(&p->done, 0);
    atomic_store(&p->ticket, (uint64_t)b.gen << 32);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);

    take_items(p, &b);

    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done) < n)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void sc_vpool_destroy(sc_vpool_t **pp)
{
    if (!pp || !*pp)
        return;
    sc_vpool_t *p = *pp;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *pp = NULL;
}
