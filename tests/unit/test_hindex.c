/*
 * test_hindex.c - the index of positions by hash (core/common/hindex.c):
 * entries whose hashes collide are told apart by the caller's equality,
 * growth keeps every entry, a clear forgets them all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/hindex.h"

#define N 5000

static char names[N][16];

static bool name_is(const void *key, size_t pos, void *arg)
{
    (void)arg;
    return strcmp(names[pos], key) == 0;
}

/* a poor hash on purpose: 13 values for 5,000 names */
static uint64_t poor(const char *s) { return sc_hash_str(s) % 13; }

static void test_collisions_and_growth(void **state)
{
    (void)state;
    sc_hindex_t x = SC_HINDEX_INIT;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        assert_int_equal(sc_hindex_find(&x, poor(names[i]), name_is,
                                        names[i], NULL), -1);
        assert_int_equal(sc_hindex_add(&x, poor(names[i]), (size_t)i), 0);
    }
    assert_int_equal(x.n, N);
    assert_true(x.cap >= 2 * N && x.cap <= 4 * N);
    for (int i = 0; i < N; i++)
        assert_int_equal(sc_hindex_find(&x, poor(names[i]), name_is,
                                        names[i], NULL), i);
    assert_int_equal(sc_hindex_find(&x, poor("n5000"), name_is, "n5000",
                                    NULL), -1);
    sc_hindex_clear(&x);
    assert_int_equal(sc_hindex_find(&x, poor("n7"), name_is, "n7", NULL), -1);
    /* rebuilt with other positions (as after the caller moved entries) */
    assert_int_equal(sc_hindex_add(&x, poor(names[7]), 0), 0);
    assert_int_equal(sc_hindex_find(&x, poor("n7"), name_is, "n0", NULL), 0);
    sc_hindex_free(&x);
    assert_int_equal(sc_hindex_find(&x, 1, name_is, "n0", NULL), -1);
}

static void test_string_hash(void **state)
{
    (void)state;
    /* FNV-1a 64 test vectors */
    assert_true(sc_hash_str("") == 0xcbf29ce484222325ULL);
    assert_true(sc_hash_str("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(sc_hash_str("foobar") == 0x85944171f73967e8ULL);
    /* a composite key's parts are kept apart by the separator */
    uint64_t ab_c = sc_hash_sep(sc_hash_add(
        sc_hash_sep(sc_hash_add(SC_HASH_INIT, "ab")), "c"));
    uint64_t a_bc = sc_hash_sep(sc_hash_add(
        sc_hash_sep(sc_hash_add(SC_HASH_INIT, "a")), "bc"));
    assert_true(ab_c != a_bc);
    assert_true(sc_hash_add(sc_hash_add(SC_HASH_INIT, "ab"), "c") ==
                sc_hash_str("abc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collisions_and_growth),
        cmocka_unit_test(test_string_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
