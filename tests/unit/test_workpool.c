/*
 * test_workpool.c - the worker threads of core/common/workpool.c (the
 * broker's signing threads, the client's verifying threads): every item
 * of a run is done exactly once, on several threads, before the run
 * returns; start/wait overlap a run with the caller's own work; workers
 * are named and keep no signal for themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/workpool.h"

enum { MAX = 70 };

typedef struct item {
    int runs;           /* times fn ran on it */
    int worker;         /* who ran it: 0..threads-1, threads = the caller */
    unsigned spin;      /* work, so that items overlap threads */
    unsigned sum;       /* its result */
} item_t;

typedef struct job {
    item_t items[MAX + 1];
    atomic_int calls;
} job_t;

static void run_item(void *arg, size_t i, int worker)
{
    job_t *j = arg;
    item_t *it = &j->items[i];
    volatile unsigned x = 0;
    for (unsigned k = 0; k < it->spin; k++)
        x += k;
    it->sum = x;
    it->runs++;
    it->worker = worker;
    atomic_fetch_add(&j->calls, 1);
}

static void test_no_workers_the_caller_runs_all(void **state)
{
    (void)state;
    sc_workpool_t *p = sc_workpool_new(0, "test");
    assert_non_null(p);
    assert_int_equal(sc_workpool_threads(p), 0);
    job_t j;
    memset(&j, 0, sizeof j);
    sc_workpool_run(p, run_item, &j, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(j.items[i].runs, 1);
        assert_int_equal(j.items[i].worker, 0); /* == threads: the caller */
    }
    /* start hands nothing to anyone: the wait does it all */
    memset(&j, 0, sizeof j);
    sc_workpool_start(p, run_item, &j, 3);
    assert_int_equal(atomic_load(&j.calls), 0);
    sc_workpool_wait(p);
    assert_int_equal(atomic_load(&j.calls), 3);
    sc_workpool_destroy(&p);
    assert_null(p);
}

static void test_each_item_once_on_several_threads(void **state)
{
    (void)state;
    sc_workpool_t *p = sc_workpool_new(3, "test");
    assert_non_null(p);
    job_t *j = calloc(1, sizeof *j);
    assert_non_null(j);
    int by_workers = 0;
    for (int b = 0; b < 3000; b++) {
        size_t n = (size_t)(b % MAX) + 1;
        memset(j, 0, sizeof *j);
        for (size_t i = 0; i < n; i++)
            j->items[i].spin = (unsigned)(b % 7) * 2000;
        if (b % 2) {
            sc_workpool_run(p, run_item, j, n);
        } else {
            sc_workpool_start(p, run_item, j, n);
            sc_workpool_wait(p);
        }
        /* every item done once when the run returns; the next run reuses
         * these items, so a late one would count 2 there */
        assert_int_equal(atomic_load(&j->calls), (int)n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(j->items[i].runs, 1);
            assert_true(j->items[i].worker >= 0 && j->items[i].worker <= 3);
            by_workers += j->items[i].worker < 3;
        }
        assert_int_equal(j->items[MAX].runs, 0); /* past the run */
    }
    assert_true(by_workers > 0); /* the workers took part */
    free(j);
    sc_workpool_destroy(&p);
    sc_workpool_destroy(&p); /* twice is harmless */
}

/* The workers' names and blocked signals, from /proc. */
static void test_workers_named_and_deaf_to_signals(void **state)
{
    (void)state;
    sc_workpool_t *p = sc_workpool_new(2, "test");
    assert_non_null(p);
    int named = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], comm[32] = "", line[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(comm, sizeof comm, f)) {
            if (f)
                fclose(f);
            continue;
        }
        fclose(f);
        if (strcmp(comm, "sc-test:0\n") != 0 &&
            strcmp(comm, "sc-test:1\n") != 0)
            continue;
        named++;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        assert_non_null(f);
        unsigned long long blk = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "SigBlk: %llx", &blk) == 1)
                break;
        fclose(f);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGUSR1};
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
            if (!(blk & (1ULL << (sigs[k] - 1))))
                fail_msg("%s: signal %d not blocked (SigBlk %llx)", comm,
                         sigs[k], blk);
    }
    closedir(d);
    assert_int_equal(named, 2);
    /* the caller's own mask is as it was */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    assert_false(sigismember(&now, SIGINT));
    sc_workpool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_workers_the_caller_runs_all),
        cmocka_unit_test(test_each_item_once_on_several_threads),
        cmocka_unit_test(test_workers_named_and_deaf_to_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
