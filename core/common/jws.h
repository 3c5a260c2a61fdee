/*
 * jws.h - JWS compact serialization (RFC 7515) with EdDSA/Ed25519 (RFC 8037).
 *
 * Owns signing and verifying the bytes; knows nothing of envelopes.
 * The protected header is exactly {"alg":"EdDSA","kid":KID,"typ":TYP}.
 */
#ifndef SC_JWS_H
#define SC_JWS_H

#include <stddef.h>
#include "jwks.h"
#include "keys.h"

/* Media type we put in "typ". */
#define SC_JWS_TYP "sectorcast-envelope+jws"

/* Largest JWS we will parse (bytes). */
#define SC_JWS_MAX (4u * 1024u * 1024u)

/* Sign payload; *out is a malloc'd NUL-terminated compact JWS, *out_len
 * its length. 0 or -1. */
int sc_jws_sign(const sc_sigkey_t *key, const char *typ, const char *payload,
                size_t payload_len, char **out, size_t *out_len);

/* A signer for one key: the protected header and its base64url are
 * computed once (sc_jws_signer_new), so signing costs the payload's
 * base64url, the signature and nothing else. Immutable once built: one
 * signer may sign from any number of threads at once. */
typedef struct sc_jws_signer sc_jws_signer_t;
sc_jws_signer_t *sc_jws_signer_new(const sc_sigkey_t *key, const char *typ);
void sc_jws_signer_destroy(sc_jws_signer_t **s_p);
const char *sc_jws_signer_kid(const sc_jws_signer_t *s);

/* Sign payload into *buf (NUL-terminated compact JWS, *out_len bytes),
 * growing it with realloc when *cap is too small: a reused buffer makes
 * this allocation-free. 0 or -1. */
int sc_jws_signer_sign(const sc_jws_signer_t *s, const char *payload,
                       size_t payload_len, char **buf, size_t *cap,
                       size_t *out_len);

/* Verification result codes (negative). */
enum {
    SC_JWS_OK = 0,
    SC_JWS_EMALFORMED = -1,  /* not three base64url parts, bad JSON header */
    SC_JWS_EALG = -2,        /* alg is not EdDSA, or crit present */
    SC_JWS_EUNKNOWN_KID = -3,/* kid missing or not in the JWKS */
    SC_JWS_ESIGNATURE = -4,  /* signature does not verify */
    SC_JWS_ETOOBIG = -5
};

/* Verify `jws` (len bytes, need not be NUL-terminated) against `jwks`.
 * On success *payload is a malloc'd NUL-terminated copy of the decoded
 * payload (caller frees) and kid_out (if not NULL) receives the kid.
 * On failure returns SC_JWS_E* and fills err with the reason. */
int sc_jws_verify(const sc_jwks_t *jwks, const char *jws, size_t len,
                  char **payload, size_t *payload_len,
                  char kid_out[SC_KID_LEN + 1], char *err, size_t errlen);

#endif
