/*
 * codec.c - libsodium initialisation and strict base64url.
 *
 * Thin wrappers over libsodium so the rest of core/common never deals with
 * variants, padding or buffer arithmetic, and a table codec of the same
 * strictness for public bytes (codec.h says why). Never allocates secret
 * memory; never runs a secret through the table codec.
 */
#include "codec.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

static atomic_int sodium_ready;

int sc_sodium_init(void)
{
    if (atomic_load_explicit(&sodium_ready, memory_order_acquire))
        return 0;
    if (sodium_init() < 0)
        return -1;
    atomic_store_explicit(&sodium_ready, 1, memory_order_release);
    return 0;
}

size_t sc_b64url_len(size_t n)
{
    /* sodium_base64_ENCODED_LEN counts the NUL. */
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
           - 1;
}

int sc_b64url_encode(char *out, size_t outlen, const unsigned char *bin,
                     size_t n)
{
    size_t need = sc_b64url_len(n);
    if (out == NULL || outlen < need + 1 || need > (size_t)INT32_MAX)
        return -1;
    sodium_bin2base64(out, outlen, bin, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return (int)need;
}

char *sc_b64url_encode_alloc(const unsigned char *bin, size_t n,
                             size_t *out_len)
{
    if (n > SIZE_MAX / 4 * 3 - 4)
        return NULL;
    size_t need = sc_b64url_len(n);
    char *out = malloc(need + 1);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, need + 1, bin, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (out_len != NULL)
        *out_len = need;
    return out;
}

/* The base64url alphabet (RFC 4648 section 5), by comparisons: a
 * secret's characters must not index a table (B64URL_VAL below is for
 * public bytes only). */
static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int sc_b64url_decode(unsigned char *out, size_t maxlen, size_t *n,
                     const char *text, size_t len)
{
    size_t got = 0;
    /* libsodium 1.0.18's decoder maps every byte >= 0x80 to 63 (as if it
     * were '_') instead of refusing it, which would make a JWS malleable
     * (many byte strings, one signature). Refuse those bytes first; the
     * decoding itself stays libsodium's. */
    for (size_t i = 0; i < len; i++)
        if (!b64url_char((unsigned char)text[i]))
            return -1;
    /* b64_end == NULL: the whole input must be consumed; ignore == NULL:
     * no character outside the alphabet is tolerated. libsodium also
     * refuses a dangling single character and non-zero trailing bits. */
    if (sodium_base642bin(out, maxlen, text, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    if (n != NULL)
        *n = got;
    return 0;
}

typedef int (*decode_fn)(unsigned char *out, size_t maxlen, size_t *n,
                         const char *text, size_t len);

static int decode_exact(decode_fn decode, unsigned char *out, size_t want,
                        const char *text, size_t len)
{
    size_t got = 0;
    /* A longer text cannot decode to `want` bytes; refuse before work. */
    if (len != sc_b64url_len(want))
        return -1;
    if (decode(out, want, &got, text, len) != 0 || got != want)
        return -1;
    return 0;
}

int sc_b64url_decode_exact(unsigned char *out, size_t want, const char *text,
                           size_t len)
{
    return decode_exact(sc_b64url_decode, out, want, text, len);
}

/* ------------------------------------------------------------------ */
/* public bytes: by table                                              */

static const char B64URL[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0-63 for an alphabet byte, 64 for any other byte */
static const unsigned char B64URL_VAL[256] = {
#define X64 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
    X64, X64,                                          /* 0x00-0x1f */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, /* - */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64, /* 0-9 */
    64, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, /* A- */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63, /* _ */
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* a- */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    X64, X64, X64, X64, X64, X64, X64, X64,            /* 0x80-0xff */
#undef X64
};

int sc_b64url_encode_public(char *out, size_t outlen,
                            const unsigned char *bin, size_t n)
{
    size_t need = sc_b64url_len(n);
    if (out == NULL || outlen < need + 1 || need > (size_t)INT32_MAX)
        return -1;
    char *o = out;
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 |
                     bin[i + 2];
        o[0] = B64URL[v >> 18];
        o[1] = B64URL[(v >> 12) & 63];
        o[2] = B64URL[(v >> 6) & 63];
        o[3] = B64URL[v & 63];
        o += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)bin[i] << 16;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
        *o++ = B64URL[(v >> 6) & 63];
    }
    *o = '\0';
    return (int)need;
}

int sc_b64url_decode_public(unsigned char *out, size_t maxlen, size_t *n,
                            const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t rem = len % 4;
    /* one character left over carries 6 bits: not a whole byte */
    if (rem == 1 || (len > 0 && text == NULL))
        return -1;
    size_t got = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (got > maxlen || (got > 0 && out == NULL))
        return -1;
    size_t i = 0, o = 0;
    for (; len - i >= 4; i += 4) {
        unsigned a = B64URL_VAL[t[i]], b = B64URL_VAL[t[i + 1]],
                 c = B64URL_VAL[t[i + 2]], d = B64URL_VAL[t[i + 3]];
        if ((a | b | c | d) & 64)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | c << 6 | d;
        out[o] = (unsigned char)(v >> 16);
        out[o + 1] = (unsigned char)(v >> 8);
        out[o + 2] = (unsigned char)v;
        o += 3;
    }
    if (rem) {
        unsigned a = B64URL_VAL[t[i]], b = B64URL_VAL[t[i + 1]];
        unsigned c = rem == 3 ? B64URL_VAL[t[i + 2]] : 0;
        if ((a | b | c) & 64)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | c << 6;
        /* the bits past the last whole byte must be zero (one text per
         * byte string, as libsodium refuses them) */
        if (rem == 2 ? (v & 0xffff) != 0 : (v & 0xff) != 0)
            return -1;
        out[o++] = (unsigned char)(v >> 16);
        if (rem == 3)
            out[o++] = (unsigned char)(v >> 8);
    }
    if (n != NULL)
        *n = o;
    return 0;
}

int sc_b64url_decode_public_exact(unsigned char *out, size_t want,
                                  const char *text, size_t len)
{
    return decode_exact(sc_b64url_decode_public, out, want, text, len);
}
