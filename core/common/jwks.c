/*
 * jwks.c - JSON Web Key Sets (RFC 7517) of Ed25519 public keys.
 *
 * Owns parsing, serializing and saving the key set agencies verify
 * against. Keeps public keys only: an entry carrying "d" is refused so a
 * private key is never published by accident. Entries of other key types
 * or curves are skipped; a malformed OKP/Ed25519 entry is an error naming
 * its index.
 */
#include "jwks.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "files.h"

#define SETERR(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)

#define JWKS_FILE_MAX (1024 * 1024)

typedef struct {
    unsigned char pk[SC_ED25519_PK_LEN];
    char kid[SC_KID_LEN + 1];
} jwks_key_t;

struct sc_jwks {
    jwks_key_t *keys;
    size_t n, cap;
};

sc_jwks_t *sc_jwks_new(void)
{
    return calloc(1, sizeof(sc_jwks_t));
}

void sc_jwks_destroy(sc_jwks_t **jwks_p)
{
    if (jwks_p == NULL || *jwks_p == NULL)
        return;
    free((*jwks_p)->keys);
    free(*jwks_p);
    *jwks_p = NULL;
}

int sc_jwks_add(sc_jwks_t *jwks, const unsigned char pk[SC_ED25519_PK_LEN])
{
    if (jwks == NULL || pk == NULL)
        return -1;
    char kid[SC_KID_LEN + 1];
    if (sc_jwk_thumbprint(pk, kid) != 0)
        return -1;
    if (sc_jwks_find(jwks, kid) != NULL)
        return 0; /* same key twice: a set, not a list */
    if (jwks->n == jwks->cap) {
        size_t cap = jwks->cap ? jwks->cap * 2 : 4;
        jwks_key_t *k = realloc(jwks->keys, cap * sizeof *k);
        if (k == NULL)
            return -1;
        jwks->keys = k;
        jwks->cap = cap;
    }
    memcpy(jwks->keys[jwks->n].pk, pk, SC_ED25519_PK_LEN);
    memcpy(jwks->keys[jwks->n].kid, kid, sizeof kid);
    jwks->n++;
    return 0;
}

const unsigned char *sc_jwks_find(const sc_jwks_t *jwks, const char *kid)
{
    if (jwks == NULL || kid == NULL)
        return NULL;
    for (size_t i = 0; i < jwks->n; i++)
        if (strcmp(jwks->keys[i].kid, kid) == 0)
            return jwks->keys[i].pk;
    return NULL;
}

size_t sc_jwks_count(const sc_jwks_t *jwks)
{
    return jwks ? jwks->n : 0;
}

const char *sc_jwks_kid_at(const sc_jwks_t *jwks, size_t i)
{
    return jwks && i < jwks->n ? jwks->keys[i].kid : NULL;
}

/* Optional string member: absent is fine, present must be `want`. */
static bool member_is(json_t *obj, const char *name, const char *want)
{
    json_t *v = json_object_get(obj, name);
    return v == NULL || (json_is_string(v) &&
                         strcmp(json_string_value(v), want) == 0);
}

/* Parse one entry. 1 = added, 0 = skipped (not ours), -1 = error. */
static int parse_entry(sc_jwks_t *jwks, json_t *e, const char *origin,
                       size_t i, char *err, size_t errlen)
{
    if (!json_is_object(e)) {
        SETERR("%s: keys[%zu]: not a JSON object", origin, i);
        return -1;
    }
    json_t *kty = json_object_get(e, "kty");
    if (!json_is_string(kty)) {
        SETERR("%s: keys[%zu]: \"kty\" missing or not a string", origin, i);
        return -1;
    }
    if (strcmp(json_string_value(kty), "OKP") != 0)
        return 0; /* RSA/EC keys of other verifiers sharing the file */
    json_t *crv = json_object_get(e, "crv");
    if (!json_is_string(crv)) {
        SETERR("%s: keys[%zu]: OKP key without a \"crv\" string", origin, i);
        return -1;
    }
    if (strcmp(json_string_value(crv), "Ed25519") != 0)
        return 0; /* X25519, Ed448, ...: not for us */
    if (json_object_get(e, "d") != NULL) {
        SETERR("%s: keys[%zu]: contains a private key (\"d\"); a JWKS must "
               "hold public keys only", origin, i);
        return -1;
    }
    json_t *x = json_object_get(e, "x");
    unsigned char pk[SC_ED25519_PK_LEN];
    if (!json_is_string(x)) {
        SETERR("%s: keys[%zu]: \"x\" missing or not a string", origin, i);
        return -1;
    }
    if (sc_b64url_decode_exact(pk, sizeof pk, json_string_value(x),
                               json_string_length(x)) != 0) {
        SETERR("%s: keys[%zu]: \"x\" is not 32 bytes of base64url", origin,
               i);
        return -1;
    }
    if (!member_is(e, "use", "sig")) {
        SETERR("%s: keys[%zu]: \"use\" must be \"sig\" for an Ed25519 key",
               origin, i);
        return -1;
    }
    if (!member_is(e, "alg", "EdDSA")) {
        SETERR("%s: keys[%zu]: \"alg\" must be \"EdDSA\"", origin, i);
        return -1;
    }
    char want[SC_KID_LEN + 1];
    if (sc_jwk_thumbprint(pk, want) != 0) {
        SETERR("%s: keys[%zu]: cannot compute the thumbprint", origin, i);
        return -1;
    }
    json_t *kid = json_object_get(e, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        SETERR("%s: keys[%zu]: \"kid\" is not a string", origin, i);
        return -1;
    }
    if (kid != NULL && strcmp(json_string_value(kid), want) != 0) {
        SETERR("%s: keys[%zu]: \"kid\" is not the RFC 7638 thumbprint of "
               "\"x\" (expected %s)", origin, i, want);
        return -1;
    }
    if (sc_jwks_add(jwks, pk) != 0) {
        SETERR("%s: out of memory", origin);
        return -1;
    }
    return 1;
}

sc_jwks_t *sc_jwks_parse(const char *text, size_t len, const char *origin,
                         char *err, size_t errlen)
{
    if (origin == NULL)
        origin = "JWKS";
    if (text == NULL) {
        SETERR("%s: no text", origin);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        SETERR("%s: line %d column %d: %s", origin, jerr.line, jerr.column,
               jerr.text);
        return NULL;
    }
    sc_jwks_t *jwks = NULL;
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_object(doc) || !json_is_array(keys)) {
        SETERR("%s: not a JWKS (expected {\"keys\":[...]})", origin);
        goto out;
    }
    jwks = sc_jwks_new();
    if (jwks == NULL) {
        SETERR("%s: out of memory", origin);
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(keys, i, e) {
        if (parse_entry(jwks, e, origin, i, err, errlen) < 0) {
            sc_jwks_destroy(&jwks);
            goto out;
        }
    }
    if (jwks->n == 0) {
        /* A verifier with no key would refuse every message; say so now. */
        SETERR("%s: no OKP/Ed25519 keys", origin);
        sc_jwks_destroy(&jwks);
    }
out:
    json_decref(doc);
    return jwks;
}

sc_jwks_t *sc_jwks_load(const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (sc_file_read(path, JWKS_FILE_MAX, false, false, &text, &len, err,
                     errlen) != 0)
        return NULL;
    sc_jwks_t *jwks = sc_jwks_parse(text, len, path, err, errlen);
    sc_file_free(text, false);
    return jwks;
}

char *sc_jwks_dump(const sc_jwks_t *jwks)
{
    if (jwks == NULL)
        return NULL;
    json_t *arr = json_array();
    json_t *doc = json_pack("{s:o}", "keys", arr);
    if (doc == NULL)
        return NULL;
    for (size_t i = 0; i < jwks->n; i++) {
        char x[SC_KID_LEN + 1];
        if (sc_b64url_encode(x, sizeof x, jwks->keys[i].pk,
                             SC_ED25519_PK_LEN) < 0 ||
            json_array_append_new(arr, json_pack(
                "{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519",
                "x", x, "kid", jwks->keys[i].kid, "use", "sig", "alg",
                "EdDSA")) != 0) {
            json_decref(doc);
            return NULL;
        }
    }
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}

int sc_jwks_save(const sc_jwks_t *jwks, const char *path, char *err,
                 size_t errlen)
{
    char *text = sc_jwks_dump(jwks);
    if (text == NULL) {
        SETERR("%s: cannot serialize the JWKS", path);
        return -1;
    }
    size_t len = strlen(text);
    char *buf = realloc(text, len + 2);
    if (buf == NULL) {
        free(text);
        SETERR("%s: out of memory", path);
        return -1;
    }
    buf[len] = '\n';
    buf[len + 1] = '\0';
    int rc = sc_file_write(path, buf, len + 1, 0644, true, err, errlen);
    free(buf);
    return rc;
}
