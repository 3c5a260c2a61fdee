/*
 * codec.h - libsodium glue shared by core/common (internal header).
 *
 * Owns the one-time libsodium initialisation and strict base64url
 * (RFC 4648 section 5, no padding): for secrets (key files) on top of
 * libsodium's constant-time sodium_bin2base64 / sodium_base642bin; for
 * public bytes (a JWS's header, payload and signature, which go on the
 * wire) by table, with the same alphabet and strictness (libsodium's
 * constant-time codec took 4.3 us for the ~900 B payload of a 512 B
 * message, the table 0.7 us; docs/performance.md). Never encodes or
 * decodes a secret by table.
 */
#ifndef SC_CODEC_H
#define SC_CODEC_H

#include <stddef.h>

/* sodium_init() once per process (cheap after the first call). 0 or -1. */
int sc_sodium_init(void);

/* Length of the base64url text (without NUL) for n bytes. */
size_t sc_b64url_len(size_t n);

/* Encode bin[n] into out[outlen] (NUL-terminated). Returns the text
 * length, or -1 if out is too small. */
int sc_b64url_encode(char *out, size_t outlen, const unsigned char *bin,
                     size_t n);

/* Encode into a malloc'd NUL-terminated string (NULL on failure). */
char *sc_b64url_encode_alloc(const unsigned char *bin, size_t n,
                             size_t *out_len);

/* Strict decode of text[len] (need not be NUL-terminated): only the
 * base64url alphabet, no padding, no whitespace, no non-zero trailing
 * bits. Writes at most maxlen bytes. 0 and *n set, or -1. */
int sc_b64url_decode(unsigned char *out, size_t maxlen, size_t *n,
                     const char *text, size_t len);

/* Decode exactly `want` bytes, or -1. */
int sc_b64url_decode_exact(unsigned char *out, size_t want, const char *text,
                           size_t len);

/* The same as sc_b64url_encode / sc_b64url_decode / _decode_exact, for
 * public bytes only (not constant-time): the same output, the same
 * refusals (tests/unit/test_jws.c and tests/fuzz/fuzz_codec.c compare
 * them with libsodium's). */
int sc_b64url_encode_public(char *out, size_t outlen,
                            const unsigned char *bin, size_t n);
int sc_b64url_decode_public(unsigned char *out, size_t maxlen, size_t *n,
                            const char *text, size_t len);
int sc_b64url_decode_public_exact(unsigned char *out, size_t want,
                                  const char *text, size_t len);

#endif
