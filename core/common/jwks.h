/*
 * jwks.h - JSON Web Key Sets (RFC 7517) of Ed25519 public keys.
 *
 * Owns reading and writing the public key set the gateway publishes and
 * agencies verify against. Only OKP/Ed25519 keys are used; a JWKS entry of
 * another type is skipped when loading (other verifiers may share a file),
 * but a malformed OKP entry is an error.
 */
#ifndef SC_JWKS_H
#define SC_JWKS_H

#include <stddef.h>
#include "keys.h"

typedef struct sc_jwks sc_jwks_t;

sc_jwks_t *sc_jwks_new(void);
void sc_jwks_destroy(sc_jwks_t **jwks_p);

/* Add a public key; kid is computed (RFC 7638). 0 or -1. */
int sc_jwks_add(sc_jwks_t *jwks, const unsigned char pk[SC_ED25519_PK_LEN]);

/* Parse from text / file. NULL on failure with err naming what and where
 * (e.g. "keys/jwks.json: keys[2]: \"x\" is not base64url"). */
sc_jwks_t *sc_jwks_parse(const char *text, size_t len, const char *origin,
                         char *err, size_t errlen);
sc_jwks_t *sc_jwks_load(const char *path, char *err, size_t errlen);

/* Public key for a kid, or NULL. */
const unsigned char *sc_jwks_find(const sc_jwks_t *jwks, const char *kid);
size_t sc_jwks_count(const sc_jwks_t *jwks);

/* kid of the i-th key (0 <= i < count, in insertion order), or NULL. */
const char *sc_jwks_kid_at(const sc_jwks_t *jwks, size_t i);

/* Serialize as {"keys":[{"kty":"OKP","crv":"Ed25519","x":..,"kid":..,
 * "use":"sig","alg":"EdDSA"},...]} (malloc'd, caller frees). */
char *sc_jwks_dump(const sc_jwks_t *jwks);

/* Write atomically (temp file + rename), mode 0644. 0 or -1. */
int sc_jwks_save(const sc_jwks_t *jwks, const char *path, char *err,
                 size_t errlen);

#endif
