/*
 * keys.c - Ed25519 signing keys (private JWK files) and CURVE key files.
 *
 * Owns the key formats of keys.h. The Ed25519 secret (seed || public key,
 * as libsodium holds it) lives in sodium_malloc()ed memory and is wiped on
 * destroy; decoded seeds and serialized JWK text are wiped after use.
 * Error texts name the file and the problem, never secret material.
 * (jansson's parser keeps its own short-lived copies of the "d" text; they
 * are freed with the document.)
 */
#include "keys.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "codec.h"
#include "files.h"

#define SETERR(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)

/* A private JWK is a few hundred bytes; refuse anything absurd. */
#define KEYFILE_MAX 16384

struct sc_sigkey {
    unsigned char *sk;                     /* sodium_malloc: seed || pk */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char kid[SC_KID_LEN + 1];
};

int sc_jwk_thumbprint(const unsigned char pk[SC_ED25519_PK_LEN],
                      char out[SC_KID_LEN + 1])
{
    char x[SC_KID_LEN + 1];
    /* RFC 7638 section 3.2: required members only, lexicographic order,
     * no whitespace. Built with jansson so escaping is never ours. */
    if (sc_sodium_init() != 0 ||
        sc_b64url_encode(x, sizeof x, pk, SC_ED25519_PK_LEN) < 0)
        return -1;
    json_t *jwk = json_pack("{s:s,s:s,s:s}", "crv", "Ed25519", "kty", "OKP",
                            "x", x);
    if (jwk == NULL)
        return -1;
    char *canon = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(jwk);
    if (canon == NULL)
        return -1;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
    free(canon);
    return sc_b64url_encode(out, SC_KID_LEN + 1, h, sizeof h) ==
                   SC_KID_LEN ? 0 : -1;
}

static sc_sigkey_t *sigkey_from_seed(const unsigned char seed[32])
{
    sc_sigkey_t *key = calloc(1, sizeof *key);
    if (key == NULL)
        return NULL;
    key->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (key->sk == NULL) {
        free(key);
        return NULL;
    }
    if (crypto_sign_seed_keypair(key->pk, key->sk, seed) != 0 ||
        sc_jwk_thumbprint(key->pk, key->kid) != 0) {
        sc_sigkey_destroy(&key);
        return NULL;
    }
    return key;
}

sc_sigkey_t *sc_sigkey_generate(char *err, size_t errlen)
{
    if (sc_sodium_init() != 0) {
        SETERR("cannot initialise libsodium");
        return NULL;
    }
    unsigned char *seed = sodium_malloc(crypto_sign_SEEDBYTES);
    if (seed == NULL) {
        SETERR("out of memory");
        return NULL;
    }
    randombytes_buf(seed, crypto_sign_SEEDBYTES);
    sc_sigkey_t *key = sigkey_from_seed(seed);
    sodium_free(seed);
    if (key == NULL)
        SETERR("cannot create an Ed25519 key");
    return key;
}

void sc_sigkey_destroy(sc_sigkey_t **key_p)
{
    if (key_p == NULL || *key_p == NULL)
        return;
    sc_sigkey_t *key = *key_p;
    sodium_free(key->sk); /* wipes */
    free(key);
    *key_p = NULL;
}

const unsigned char *sc_sigkey_public(const sc_sigkey_t *key)
{
    return key ? key->pk : NULL;
}

const char *sc_sigkey_kid(const sc_sigkey_t *key)
{
    return key ? key->kid : NULL;
}

int sc_sigkey_sign(const sc_sigkey_t *key, const unsigned char *msg,
                   size_t len, unsigned char sig[64])
{
    if (key == NULL || sig == NULL || (msg == NULL && len > 0))
        return -1;
    return crypto_sign_detached(sig, NULL, msg, len, key->sk) == 0 ? 0 : -1;
}

/* Wipe a jansson string value in place before the document is freed. */
static void wipe_json_string(json_t *s)
{
    if (json_is_string(s))
        sodium_memzero((void *)json_string_value(s), json_string_length(s));
}

static const char *get_str(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

sc_sigkey_t *sc_sigkey_load(const char *path, bool check_perms, char *err,
                            size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (sc_file_read(path, KEYFILE_MAX, true, check_perms, &text, &len, err,
                     errlen) != 0)
        return NULL;
    json_error_t jerr;
    json_t *jwk = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    sc_file_free(text, true);
    if (jwk == NULL) {
        /* jerr.text may quote input near the error: report position only. */
        SETERR("%s: line %d: not valid JSON", path, jerr.line);
        return NULL;
    }
    sc_sigkey_t *key = NULL;
    unsigned char *seed = sodium_malloc(crypto_sign_SEEDBYTES);
    unsigned char x[SC_ED25519_PK_LEN];
    const char *kty = get_str(jwk, "kty"), *crv = get_str(jwk, "crv");
    json_t *jx = json_object_get(jwk, "x"), *jd = json_object_get(jwk, "d");
    json_t *jkid = json_object_get(jwk, "kid");

    if (seed == NULL) {
        SETERR("%s: out of memory", path);
    } else if (!json_is_object(jwk)) {
        SETERR("%s: not a JWK (expected a JSON object)", path);
    } else if (kty == NULL || strcmp(kty, "OKP") != 0) {
        SETERR("%s: \"kty\" must be \"OKP\"", path);
    } else if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
        SETERR("%s: \"crv\" must be \"Ed25519\"", path);
    } else if (!json_is_string(jd)) {
        SETERR("%s: no private key (\"d\"); this is a public JWK", path);
    } else if (sc_b64url_decode_exact(seed, crypto_sign_SEEDBYTES,
                                      json_string_value(jd),
                                      json_string_length(jd)) != 0) {
        SETERR("%s: \"d\" is not 32 bytes of base64url", path);
    } else if (!json_is_string(jx) ||
               sc_b64url_decode_exact(x, sizeof x, json_string_value(jx),
                                      json_string_length(jx)) != 0) {
        SETERR("%s: \"x\" is not 32 bytes of base64url", path);
    } else if (jkid != NULL && !json_is_string(jkid)) {
        SETERR("%s: \"kid\" is not a string", path);
    } else if ((key = sigkey_from_seed(seed)) == NULL) {
        SETERR("%s: cannot derive the Ed25519 key", path);
    } else if (memcmp(key->pk, x, sizeof x) != 0) {
        SETERR("%s: \"x\" does not match the public key derived from \"d\"",
               path);
        sc_sigkey_destroy(&key);
    } else if (jkid != NULL && strcmp(json_string_value(jkid), key->kid)) {
        SETERR("%s: \"kid\" is not the RFC 7638 thumbprint of the key "
               "(expected %s)", path, key->kid);
        sc_sigkey_destroy(&key);
    }
    wipe_json_string(jd);
    json_decref(jwk);
    sodium_free(seed);
    return key;
}

int sc_sigkey_save(const sc_sigkey_t *key, const char *path, bool overwrite,
                   char *err, size_t errlen)
{
    if (key == NULL || path == NULL) {
        SETERR("no key or path");
        return -1;
    }
    if (sc_sodium_init() != 0) {
        SETERR("%s: cannot initialise libsodium", path);
        return -1;
    }
    /* d = the 32-byte seed, the first half of libsodium's secret key. */
    char *d = sodium_malloc(SC_KID_LEN + 1);
    char x[SC_KID_LEN + 1];
    if (d == NULL) {
        SETERR("%s: out of memory", path);
        return -1;
    }
    sc_b64url_encode(d, SC_KID_LEN + 1, key->sk, crypto_sign_SEEDBYTES);
    sc_b64url_encode(x, sizeof x, key->pk, sizeof key->pk);
    json_t *jwk = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "OKP", "crv",
                            "Ed25519", "x", x, "d", d, "kid", key->kid);
    sodium_free(d);
    if (jwk == NULL) {
        SETERR("%s: out of memory", path);
        return -1;
    }
    char *text = json_dumps(jwk, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    wipe_json_string(json_object_get(jwk, "d"));
    json_decref(jwk);
    if (text == NULL) {
        SETERR("%s: out of memory", path);
        return -1;
    }
    size_t len = strlen(text);
    char *buf = sodium_malloc(len + 1);
    int rc = -1;
    if (buf == NULL) {
        SETERR("%s: out of memory", path);
    } else {
        memcpy(buf, text, len);
        buf[len] = '\n';
        rc = sc_file_write(path, buf, len + 1, 0600, overwrite, err, errlen);
        sodium_free(buf);
    }
    sodium_memzero(text, len);
    free(text);
    return rc;
}

int sc_check_secret_file(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        SETERR("%s: %s", path, strerror(errno));
        return -1;
    }
    return sc_file_check_secret_stat(path, &st, err, errlen);
}

/* ---- CURVE key files ---------------------------------------------------- */

static char *suffixed(const char *base, const char *suffix)
{
    size_t b = strlen(base), s = strlen(suffix);
    char *p = malloc(b + s + 1);
    if (p != NULL) {
        memcpy(p, base, b);
        memcpy(p + b, suffix, s + 1);
    }
    return p;
}

int sc_curve_generate(const char *base, bool overwrite, char *err,
                      size_t errlen)
{
    char pub[SC_Z85_KEY_LEN + 2];
    if (sc_sodium_init() != 0) {
        SETERR("%s: cannot initialise libsodium", base);
        return -1;
    }
    char *sec = sodium_malloc(SC_Z85_KEY_LEN + 2);
    char *sec_path = suffixed(base, ".secret");
    char *pub_path = suffixed(base, ".public");
    int rc = -1;
    if (sec == NULL || sec_path == NULL || pub_path == NULL) {
        SETERR("%s: out of memory", base);
        goto out;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        SETERR("%s: cannot generate a CURVE key pair: %s", base,
               zmq_strerror(errno));
        goto out;
    }
    pub[SC_Z85_KEY_LEN] = '\n';
    sec[SC_Z85_KEY_LEN] = '\n';
    if (!overwrite) {
        /* Refuse before creating anything if either file is there. */
        struct stat st;
        const char *exists = stat(sec_path, &st) == 0 ? sec_path
                             : stat(pub_path, &st) == 0 ? pub_path : NULL;
        if (exists != NULL) {
            SETERR("%s: already exists (refusing to overwrite)", exists);
            goto out;
        }
    }
    if (sc_file_write(sec_path, sec, SC_Z85_KEY_LEN + 1, 0600, overwrite,
                      err, errlen) != 0)
        goto out;
    if (sc_file_write(pub_path, pub, SC_Z85_KEY_LEN + 1, 0644, overwrite,
                      err, errlen) != 0) {
        /* A secret without its public half is useless; do not leave it. */
        unlink(sec_path);
        goto out;
    }
    rc = 0;
out:
    sodium_free(sec);
    free(sec_path);
    free(pub_path);
    return rc;
}

int sc_curve_read(const char *path, bool check_perms, char out[41], char *err,
                  size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (sc_file_read(path, 256, true, check_perms, &text, &len, err,
                     errlen) != 0)
        return -1;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if (len > 0 && text[len - 1] == '\r')
        len--;
    int rc = -1;
    uint8_t bin[32];
    if (len != SC_Z85_KEY_LEN || memchr(text, '\0', len) != NULL) {
        SETERR("%s: expected a %d-character Z85 key (and a newline)", path,
               SC_Z85_KEY_LEN);
    } else {
        text[len] = '\0';
        if (zmq_z85_decode(bin, text) == NULL) {
            SETERR("%s: not a valid Z85 key", path);
        } else {
            memcpy(out, text, SC_Z85_KEY_LEN + 1);
            rc = 0;
        }
    }
    sodium_memzero(bin, sizeof bin);
    sc_file_free(text, true);
    return rc;
}

int sc_curve_public_of(const char *secret, char public_out[41], char *err,
                       size_t errlen)
{
    if (secret == NULL || strnlen(secret, SC_Z85_KEY_LEN + 1) !=
                              SC_Z85_KEY_LEN ||
        zmq_curve_public(public_out, secret) != 0) {
        SETERR("not a valid Z85 CURVE secret key");
        return -1;
    }
    return 0;
}
