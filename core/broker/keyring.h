/*
 * keyring.h - the broker's signing keys and which one signs each channel.
 *
 * Owns: loading the configured Ed25519 keys (0600, owner checked), choosing
 * the active key of a channel (longest matching signing.channels rule, else
 * signing.active), and exporting every configured public key as the JWKS.
 * Keys never leave this module except as public keys and signatures.
 */
#ifndef SC_KEYRING_H
#define SC_KEYRING_H

#include <stddef.h>

#include "common/jwks.h"
#include "common/jws.h"
#include "common/keys.h"
#include "config.h"

typedef struct sc_keyring sc_keyring_t;

/* NULL on failure (err names the key file and the problem). */
sc_keyring_t *sc_keyring_load(const sc_config_t *cfg, char *err, size_t errlen);
void sc_keyring_destroy(sc_keyring_t **kr_p);

/* The key that signs `channel` (never NULL for a loaded keyring). */
const sc_sigkey_t *sc_keyring_for(const sc_keyring_t *kr, const char *channel);

/* The signer of that key (protected header computed once at load). Safe
 * to use from several threads while the keyring lives. */
const sc_jws_signer_t *sc_keyring_signer_for(const sc_keyring_t *kr,
                                             const char *channel);

/* The public keys as a JWKS (owned by the keyring), for re-verifying
 * journaled messages before they are served. */
const sc_jwks_t *sc_keyring_jwks(const sc_keyring_t *kr);

/* Write the JWKS of all keys to `path` (atomically). 0 or -1. */
int sc_keyring_write_jwks(const sc_keyring_t *kr, const char *path, char *err,
                          size_t errlen);

#endif
