/*
 * test_jsoncheck.c - the check of every publish's data (core/common/
 * jsoncheck.c) against jansson, the parser it stands in for.
 *
 * The rule under test: sc_json_object_fast() says "yes" only where
 * json_loadb(JSON_REJECT_DUPLICATES) gives an object, and
 * sc_json_object_check() gives jansson's verdict for every text. Rows
 * name what they probe; a random walk over mutated texts checks the
 * same rule where no row reaches (tests/fuzz/fuzz_codec.c keeps doing it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsoncheck.h"

static bool jansson_object(const char *t, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb(t, n, JSON_REJECT_DUPLICATES, &e);
    bool ok = v && json_is_object(v);
    json_decref(v);
    return ok;
}

/* fast: 1 = must be decided by the fast scan, 0 = must go to jansson */
typedef struct {
    const char *text;
    bool ok;
    bool fast;
} row_t;

static const row_t rows[] = {
    /* what plugins publish: decided without jansson */
    {"{}", true, true},
    {" \t\r\n{ } \n", true, true},
    {"{\"t\":123456789,\"pad\":\"xxxxxxxx\"}", true, true},
    {"{\"task\":\"HBM 공급망 점검\",\"owner\":\"산업통상자원부\","
     "\"due\":\"2026-12-15\",\"status\":\"open\",\"n\":3}",
     true, true},
    {"{\"a\":[1,-2,3.5,-0.25e-3,1E+2,0,-0],\"b\":{\"c\":null,\"d\":true,"
     "\"e\":false},\"f\":[],\"g\":{},\"h\":[[[]]]}",
     true, true},
    {"{\"s\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\uFFFF\"}", true,
     true},
    {"{\"a\":{\"x\":1},\"b\":{\"x\":1}}", true, true}, /* same key, two objects */
    {"{\"x\":{\"a\":1},\"a\":2}", true, true},
    {"{\"i\":999999999999999999}", true, true}, /* 18 digits */
    {"{\"emoji\":\"\xF0\x9F\x9A\xA2\",\"max\":\"\xF4\x8F\xBF\xBF\"}", true,
     true},
    {"{\"\":1}", true, true},
    /* fine, but left to jansson */
    {"{\"\\u0061\":1}", true, false},          /* escape in a key */
    {"{\"s\":\"\\uD83D\\uDEA2\"}", true, false}, /* surrogate pair */
    {"{\"i\":9223372036854775807}", true, false}, /* 19 digits */
    {"{\"r\":1e300}", true, false},                /* 3 exponent digits */
    /* refused (by jansson, after the fast scan could not say) */
    {"", false, false},
    {"   ", false, false},
    {"[]", false, false},
    {"\"s\"", false, false},
    {"1", false, false},
    {"{} x", false, false},
    {"{}{}", false, false},
    {"{", false, false},
    {"{\"a\"}", false, false},
    {"{\"a\":}", false, false},
    {"{\"a\":1,}", false, false},
    {"{,}", false, false},
    {"{\"a\":[1,]}", false, false},
    {"{\"a\":[1 2]}", false, false},
    {"{\"a\":1 \"b\":2}", false, false},
    {"{\"a\":1]", false, false},
    {"{\"a\":[1}", false, false},
    {"{a:1}", false, false},
    {"{'a':1}", false, false},
    {"{\"a\":1,\"a\":2}", false, false},
    {"{\"a\":1,\"b\":{\"a\":1,\"a\":1}}", false, false},
    {"{\"a\":\"\\u0000\"}", false, false},
    {"{\"a\":\"\\uD800\"}", false, false},
    {"{\"a\":\"\\uDC00\\uD800\"}", false, false},
    {"{\"a\":\"\\x\"}", false, false},
    {"{\"a\":\"\\u12G4\"}", false, false},
    {"{\"a\":\"tab\there\"}", false, false},
    {"{\"a\":\"\xC0\xAF\"}", false, false},         /* overlong */
    {"{\"a\":\"\xE0\x80\xAF\"}", false, false},     /* overlong */
    {"{\"a\":\"\xED\xA0\x80\"}", false, false},     /* surrogate */
    {"{\"a\":\"\xF4\x90\x80\x80\"}", false, false}, /* > U+10FFFF */
    {"{\"a\":\"\xF5\x80\x80\x80\"}", false, false},
    {"{\"a\":\"\x80\"}", false, false},
    {"{\"a\":\"\xE2\x82\"}", false, false},         /* cut short */
    {"{\"a\":\"\xE2\x82", false, false},
    {"{\"a\":01}", false, false},
    {"{\"a\":-}", false, false},
    {"{\"a\":1.}", false, false},
    {"{\"a\":.5}", false, false},
    {"{\"a\":1e}", false, false},
    {"{\"a\":1e+}", false, false},
    {"{\"a\":+1}", false, false},
    {"{\"a\":1.5.2}", false, false},
    {"{\"a\":9223372036854775808}", false, false},
    {"{\"a\":-9223372036854775809}", false, false},
    {"{\"a\":1e400}", false, false},
    {"{\"a\":tru}", false, false},
    {"{\"a\":truex}", false, false},
    {"{\"a\":nul}", false, false},
    {"{\"a\":NaN}", false, false},
    {"\xEF\xBB\xBF{}", false, false}, /* a byte-order mark */
    {"{\"a\":\"unterminated}", false, false},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const row_t *r = &rows[i];
        size_t n = strlen(r->text);
        char err[240] = "";
        int fast = sc_json_object_fast(r->text, n);
        int rc = sc_json_object_check(r->text, n, err, sizeof err);
        if (jansson_object(r->text, n) != r->ok || (rc == 0) != r->ok ||
            fast != (int)r->fast)
            fail_msg("row %zu (%s): jansson %d, check %d, fast %d, want "
                     "ok %d fast %d",
                     i, r->text, jansson_object(r->text, n), rc, fast, r->ok,
                     r->fast);
        if (!r->ok)
            assert_true(err[0] != '\0');
    }
    /* nesting: 32 containers open at once are scanned, 33 go to jansson */
    char deep[200];
    for (int d = 31; d <= 33; d++) {
        int n = 0;
        n += sprintf(deep + n, "{\"a\":");
        for (int i = 1; i < d; i++)
            deep[n++] = '[';
        deep[n++] = '1';
        for (int i = 1; i < d; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        assert_true(jansson_object(deep, (size_t)n));
        assert_int_equal(sc_json_object_check(deep, (size_t)n, NULL, 0), 0);
        assert_int_equal(sc_json_object_fast(deep, (size_t)n), d <= 32);
    }
}

static void test_errors_are_janssons(void **state)
{
    (void)state;
    char err[240];
    const char *dup = "{\"a\":1,\"a\":2}";
    assert_int_equal(sc_json_object_check(dup, strlen(dup), err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "duplicate object key"));
    assert_non_null(strstr(err, "line 1 column "));
    assert_int_equal(sc_json_object_check("[1]", 3, err, sizeof err), -1);
    assert_string_equal(err, "top level is not an object");
    /* a NUL inside the text (a child's frame carries a length) */
    assert_int_equal(sc_json_object_check("{\"a\":\"\0\"}", 9, err,
                                          sizeof err),
                     -1);
    assert_int_equal(sc_json_object_fast("{}\0", 3), 0);
    assert_int_equal(sc_json_object_check(NULL, 0, err, sizeof err), -1);
}

/* Mutations of the rows: a byte replaced, inserted or removed, or a token
 * spliced in; the rule holds for every result. */
static void test_random_mutations(void **state)
{
    (void)state;
    static const char *const tokens[] = {
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "0", "-", ".", "e",
        "1", "9999999999999999999", "true", "null", " ", "\"a\":",
        "\xC3\xA9", "\xED\xA0\x80", "\xF0\x9F", "\\uD83D", "\\u0000"};
    char buf[600];
    size_t fast = 0, ok = 0, runs = 200000;
    for (size_t r = 0; r < runs; r++) {
        const char *src = rows[randombytes_uniform(sizeof rows /
                                                   sizeof *rows)].text;
        size_t n = strlen(src);
        memcpy(buf, src, n);
        int edits = 1 + (int)randombytes_uniform(3);
        for (int e = 0; e < edits; e++) {
            size_t at = n ? randombytes_uniform((uint32_t)n + 1) : 0;
            switch (randombytes_uniform(4)) {
            case 0: /* replace a byte */
                if (at < n)
                    buf[at] = (char)randombytes_uniform(256);
                break;
            case 1: /* remove a byte */
                if (at < n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: { /* insert a token */
                const char *t = tokens[randombytes_uniform(
                    sizeof tokens / sizeof *tokens)];
                size_t tl = strlen(t);
                if (n + tl < sizeof buf) {
                    memmove(buf + at + tl, buf + at, n - at);
                    memcpy(buf + at, t, tl);
                    n += tl;
                }
            }
            }
        }
        bool want = jansson_object(buf, n);
        int f = sc_json_object_fast(buf, n);
        if (f && !want)
            fail_msg("fast scan accepted what jansson refuses: %.*s",
                     (int)n, buf);
        if ((sc_json_object_check(buf, n, NULL, 0) == 0) != want)
            fail_msg("check and jansson differ: %.*s", (int)n, buf);
        fast += (size_t)f;
        ok += want;
    }
    /* the walk reached both verdicts and the fast path decided most of
     * the accepted texts */
    print_message("%zu texts: %zu objects, %zu of them decided fast\n",
                  runs, ok, fast);
    assert_true(ok > runs / 50);
    assert_true(ok < runs - runs / 50);
    assert_true(fast > ok / 2);
}

/* A key's UTF-8 check (sc_host_key_valid) against jansson's, which
 * json_stringn() applies: every 1- and 2-byte text, and random 3- and
 * 4-byte ones weighted toward lead and continuation bytes. */
static void test_utf8_as_jansson(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned v = 0; v < 65536 + 256; v++) {
        size_t n = v < 256 ? 1 : 2;
        b[0] = (unsigned char)(v < 256 ? v : (v - 256) >> 8);
        b[1] = (unsigned char)(v - 256);
        json_t *s = json_stringn((const char *)b, n);
        assert_int_equal(sc_json_utf8_valid((const char *)b, n), s != NULL);
        json_decref(s);
    }
    static const unsigned char interesting[] = {
        0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
        0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3,
        0xF4, 0xF5, 0xFF};
    size_t valid = 0;
    for (int r = 0; r < 200000; r++) {
        size_t n = 3 + randombytes_uniform(2);
        for (size_t i = 0; i < n; i++)
            b[i] = randombytes_uniform(2)
                       ? interesting[randombytes_uniform(sizeof interesting)]
                       : (unsigned char)randombytes_uniform(256);
        json_t *s = json_stringn((const char *)b, n);
        assert_int_equal(sc_json_utf8_valid((const char *)b, n), s != NULL);
        valid += s != NULL;
        json_decref(s);
    }
    assert_true(valid > 1000);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_errors_are_janssons),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_utf8_as_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
