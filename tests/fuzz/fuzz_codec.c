/*
 * fuzz_codec.c - libFuzzer target: the fast checks that stand in for a
 * library, against that library (differential).
 *
 * The first input byte picks a mode, the rest is the text:
 *   0  a publish's data: sc_json_object_fast() says "yes" only where
 *      jansson's json_loadb(JSON_REJECT_DUPLICATES) gives an object;
 *      sc_json_object_check() agrees with jansson on every text;
 *      sc_json_utf8_valid() agrees with json_stringn()
 *   1  base64url text: sc_b64url_decode_public() (table) gives the same
 *      verdict and bytes as sc_b64url_decode() (libsodium), also into a
 *      buffer one byte short
 *   2  bytes: sc_b64url_encode_public() gives libsodium's text, which
 *      decodes back to the bytes
 * Any disagreement aborts (a finding).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "common/codec.h"
#include "common/jsoncheck.h"

static void json_mode(const char *t, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb(t, n, JSON_REJECT_DUPLICATES, &e);
    int want = v && json_is_object(v);
    json_decref(v);
    if (sc_json_object_fast(t, n) && !want) {
        fprintf(stderr, "fast scan accepted what jansson refuses\n");
        abort();
    }
    if ((sc_json_object_check(t, n, NULL, 0) == 0) != want) {
        fprintf(stderr, "check and jansson differ\n");
        abort();
    }
    json_t *s = json_stringn(t, n);
    if (sc_json_utf8_valid(t, n) != (s != NULL)) {
        fprintf(stderr, "UTF-8 verdict differs from jansson's\n");
        abort();
    }
    json_decref(s);
}

static void decode_mode(const char *t, size_t n)
{
    size_t cap = n / 4 * 3 + 3;
    unsigned char *a = malloc(cap + 1), *b = malloc(cap + 1);
    if (!a || !b)
        abort();
    for (int shorter = 0; shorter <= 1; shorter++) {
        size_t room = cap, na = 0, nb = 0;
        if (shorter) {
            size_t ok = 0;
            if (sc_b64url_decode(a, cap, &ok, t, n) != 0 || ok == 0)
                break;
            room = ok - 1;
        }
        int ra = sc_b64url_decode(a, room, &na, t, n);
        int rb = sc_b64url_decode_public(b, room, &nb, t, n);
        if (ra != rb || (ra == 0 && (na != nb || memcmp(a, b, na) != 0))) {
            fprintf(stderr, "table and libsodium decoders differ\n");
            abort();
        }
    }
    free(a);
    free(b);
}

static void encode_mode(const unsigned char *bin, size_t n)
{
    size_t len = sc_b64url_len(n);
    char *a = malloc(len + 1), *b = malloc(len + 1);
    unsigned char *back = malloc(n + 1);
    size_t got = 0;
    if (!a || !b || !back)
        abort();
    if (sc_b64url_encode(a, len + 1, bin, n) != (int)len ||
        sc_b64url_encode_public(b, len + 1, bin, n) != (int)len ||
        strcmp(a, b) != 0 ||
        sc_b64url_encode_public(b, len, bin, n) != -1 ||
        sc_b64url_decode_public(back, n, &got, a, len) != 0 || got != n ||
        memcmp(back, bin, n) != 0) {
        fprintf(stderr, "table and libsodium encoders differ\n");
        abort();
    }
    free(a);
    free(b);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sc_sodium_init() != 0)
            abort();
        ready = 1;
    }
    if (size < 1)
        return 0;
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        json_mode(t, n);
        break;
    case 1:
        decode_mode(t, n);
        break;
    default:
        encode_mode(data + 1, n);
        break;
    }
    return 0;
}
