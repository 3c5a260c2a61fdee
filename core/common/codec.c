/*
 * codec.c - libsodium initialisation and strict base64url.
 *
 * Thin wrappers over libsodium so the rest of core/common never deals with
 * variants, padding or buffer arithmetic. Never allocates secret memory.
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

/* The base64url alphabet (RFC 4648 section 5). */
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

int sc_b64url_decode_exact(unsigned char *out, size_t want, const char *text,
                           size_t len)
{
    size_t got = 0;
    /* A longer text cannot decode to `want` bytes; refuse before work. */
    if (len != sc_b64url_len(want))
        return -1;
    if (sc_b64url_decode(out, want, &got, text, len) != 0 || got != want)
        return -1;
    return 0;
}
