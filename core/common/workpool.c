/*
 * workpool.c - see workpool.h.
 *
 * One run at a time: the caller publishes (fn, arg, n) under the mutex
 * and bumps the generation (start); each worker, and the caller once it
 * waits, take indices from an atomic counter until it passes n; the last
 * one to finish an item wakes the caller.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "workpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct sc_workpool {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a new generation or stop */
    pthread_cond_t done;  /* the run's last item finished */
    pthread_t *threads;
    int n_threads;
    int started;
    bool stop;
    unsigned long gen;
    sc_workpool_fn fn;
    void *arg;
    size_t n;
    /* (generation << 32) | next index: a worker late for one run can
     * never take an item of the next */
    _Atomic unsigned long long next;
    atomic_size_t finished;
    /* the caller's side of the current run (the caller's thread only) */
    sc_workpool_fn c_fn;
    void *c_arg;
    size_t c_n;       /* 0: no run to wait for */
    bool c_started;   /* handed to the workers */
};

typedef struct worker_arg {
    sc_workpool_t *p;
    int id;
} worker_arg_t;

/* Take and run items of the current run; true if this thread finished
 * the last one. */
static bool take(sc_workpool_t *p, unsigned long gen, sc_workpool_fn fn,
                 void *arg, size_t n, int id)
{
    bool last = false;
    unsigned long long g = (unsigned long long)(gen & 0xffffffffUL) << 32;
    for (;;) {
        unsigned long long v = atomic_load(&p->next);
        if ((v & ~0xffffffffULL) != g || (v & 0xffffffffULL) >= n)
            break;
        if (!atomic_compare_exchange_weak(&p->next, &v, v + 1))
            continue;
        size_t i = (size_t)(v & 0xffffffffULL);
        fn(arg, i, id);
        if (atomic_fetch_add(&p->finished, 1) + 1 == n)
            last = true;
    }
    return last;
}

static void *worker(void *a)
{
    worker_arg_t *wa = a;
    sc_workpool_t *p = wa->p;
    int id = wa->id;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        sc_workpool_fn fn = p->fn;
        void *arg = p->arg;
        size_t n = p->n;
        pthread_mutex_unlock(&p->mu);
        bool last = take(p, seen, fn, arg, n, id);
        pthread_mutex_lock(&p->mu);
        if (last)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sc_workpool_t *sc_workpool_new(int threads, const char *role)
{
    sc_workpool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->finished, 0);
    p->n_threads = threads > 0 ? threads : 0;
    if (p->n_threads &&
        !(p->threads = calloc((size_t)p->n_threads, sizeof *p->threads))) {
        sc_workpool_destroy(&p);
        return NULL;
    }
    /* the workers inherit a mask that blocks every signal */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < p->n_threads; i++) {
        worker_arg_t *wa = malloc(sizeof *wa);
        if (!wa)
            break;
        wa->p = p;
        wa->id = i;
        if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            break;
        }
        /* named here, so that the name is there when new() returns */
        char name[16];
        snprintf(name, sizeof name, "sc-%.6s:%d", role ? role : "work",
                 i % 1000);
        (void)pthread_setname_np(p->threads[i], name);
        p->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->started != p->n_threads) {
        sc_workpool_destroy(&p);
        return NULL;
    }
    return p;
}

void sc_workpool_destroy(sc_workpool_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    sc_workpool_t *p = *p_p;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *p_p = NULL;
}

int sc_workpool_threads(const sc_workpool_t *p) { return p->n_threads; }

void sc_workpool_start(sc_workpool_t *p, sc_workpool_fn fn, void *arg,
                       size_t n)
{
    p->c_fn = fn;
    p->c_arg = arg;
    p->c_n = n;
    p->c_started = false;
    /* no workers, or nothing to hand off: the wait does it all */
    if (n == 0 || p->n_threads == 0)
        return;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->finished, 0);
    p->gen++;
    atomic_store(&p->next, (unsigned long long)(p->gen & 0xffffffffUL) << 32);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    p->c_started = true;
}

void sc_workpool_wait(sc_workpool_t *p)
{
    size_t n = p->c_n;
    p->c_n = 0;
    if (n == 0)
        return;
    if (!p->c_started) {
        for (size_t i = 0; i < n; i++)
            p->c_fn(p->c_arg, i, p->n_threads);
        return;
    }
    take(p, p->gen, p->c_fn, p->c_arg, n, p->n_threads);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->finished) < n)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    p->c_started = false;
}

void sc_workpool_run(sc_workpool_t *p, sc_workpool_fn fn, void *arg,
                     size_t n)
{
    /* one item: no hand-off is cheaper than any */
    if (n == 1) {
        fn(arg, 0, p->n_threads);
        return;
    }
    sc_workpool_start(p, fn, arg, n);
    sc_workpool_wait(p);
}
