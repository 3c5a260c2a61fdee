/*
 * test_vpool.c - the client's verification threads (core/client/vpool.c):
 * every item of a batch runs exactly once, on several threads, and no
 * thread touches a batch after sc_vpool_run() returned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "client/vpool.h"

typedef struct item {
    int runs;           /* times fn ran on it */
    pthread_t by;       /* the thread that ran it */
    unsigned spin;      /* work, so that batches overlap threads */
} item_t;

static void run_item(void *p, void *arg)
{
    item_t *it = p;
    atomic_int *calls = arg;
    volatile unsigned x = 0;
    for (unsigned i = 0; i < it->spin; i++)
        x += i;
    it->runs++;
    it->by = pthread_self();
    atomic_fetch_add(calls, 1);
}

static void test_no_pool_below_two(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(sc_vpool_new(0, err, sizeof err));
    assert_null(sc_vpool_new(1, err, sizeof err));
    assert_string_equal(err, ""); /* not a failure: no pool needed */
    /* without a pool the caller runs every item */
    item_t items[5];
    memset(items, 0, sizeof items);
    atomic_int calls = 0;
    sc_vpool_run(NULL, items, 5, sizeof items[0], run_item, &calls);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(items[i].runs, 1);
        assert_true(pthread_equal(items[i].by, pthread_self()));
    }
}

static void test_each_item_once_on_several_threads(void **state)
{
    (void)state;
    char err[128];
    sc_vpool_t *p = sc_vpool_new(4, err, sizeof err);
    assert_non_null(p);
    enum { BATCHES = 3000, MAX = 70 };
    item_t items[MAX + 1];
    atomic_int calls = 0;
    int others = 0;
    for (int b = 0; b < BATCHES; b++) {
        size_t n = (size_t)(b % MAX) + 1;
        memset(items, 0, sizeof items);
        for (size_t i = 0; i < n; i++)
            items[i].spin = (unsigned)(b % 7) * 2000;
        atomic_store(&calls, 0);
        sc_vpool_run(p, items, n, sizeof items[0], run_item, &calls);
        assert_int_equal(atomic_load(&calls), (int)n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(items[i].runs, 1);
            if (!pthread_equal(items[i].by, pthread_self()))
                others++;
        }
        assert_int_equal(items[MAX].runs, 0); /* past the batch: untouched */
        /* the next batch reuses these items: a thread still running one
         * of this batch after the return would make a count 2 there */
    }
    /* the workers took part (with 3 of them over 3,000 batches, surely) */
    assert_true(others > 0);
    sc_vpool_destroy(&p);
    assert_null(p);
    sc_vpool_destroy(&p); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_pool_below_two),
        cmocka_unit_test(test_each_item_once_on_several_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
