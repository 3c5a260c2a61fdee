/*
 * keys.h - Ed25519 signing keys and CURVE key files.
 *
 * Owns the on-disk formats of keys and their permissions:
 *  - an Ed25519 secret key is a private JWK (RFC 8037) in a JSON file,
 *    {"kty":"OKP","crv":"Ed25519","x":...,"d":...,"kid":...}, mode 0600;
 *  - a CURVE key pair is two files, NAME.secret (Z85 secret key, 0600)
 *    and NAME.public (Z85 public key, 0644), 40 characters + newline each,
 *    as zmq_curve_keypair() writes them.
 * Secret bytes live in sodium_malloc()ed memory, are wiped on destroy and
 * are never formatted into an error text.
 */
#ifndef SC_KEYS_H
#define SC_KEYS_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 7638 thumbprint: base64url(SHA-256) without padding = 43 chars. */
#define SC_KID_LEN 43
#define SC_ED25519_PK_LEN 32
#define SC_Z85_KEY_LEN 40

typedef struct sc_sigkey sc_sigkey_t;

/* New random key. NULL on failure (err filled). */
sc_sigkey_t *sc_sigkey_generate(char *err, size_t errlen);

/* Load a private JWK file. If `check_perms`, refuse a file that is not a
 * regular file, is readable or writable by group/others, or is not owned
 * by the effective user. NULL on failure; err names the file and problem. */
sc_sigkey_t *sc_sigkey_load(const char *path, bool check_perms, char *err,
                            size_t errlen);

/* Write the private JWK to `path`, created with mode 0600 (O_EXCL unless
 * `overwrite`). 0 or -1 (err filled). */
int sc_sigkey_save(const sc_sigkey_t *key, const char *path, bool overwrite,
                   char *err, size_t errlen);

void sc_sigkey_destroy(sc_sigkey_t **key_p);

/* 32-byte public key; kid is the NUL-terminated RFC 7638 thumbprint. */
const unsigned char *sc_sigkey_public(const sc_sigkey_t *key);
const char *sc_sigkey_kid(const sc_sigkey_t *key);

/* Ed25519 detached signature over msg. sig must hold 64 bytes. */
int sc_sigkey_sign(const sc_sigkey_t *key, const unsigned char *msg,
                   size_t len, unsigned char sig[64]);

/* RFC 7638 thumbprint of an Ed25519 public key into out[SC_KID_LEN+1]. */
int sc_jwk_thumbprint(const unsigned char pk[SC_ED25519_PK_LEN],
                      char out[SC_KID_LEN + 1]);

/* CURVE key pair files. `base` is the path without suffix. */
int sc_curve_generate(const char *base, bool overwrite, char *err,
                      size_t errlen);
/* Read a Z85 key (40 chars) from a file into out[41]. For a secret key
 * file, check_perms enforces 0600 + owner as for signing keys. */
int sc_curve_read(const char *path, bool check_perms, char out[41], char *err,
                  size_t errlen);

/* Z85 public key of a Z85 secret key (NUL-terminated string) into
 * public_out[41], e.g. to check that NAME.public belongs to NAME.secret.
 * 0 or -1. */
int sc_curve_public_of(const char *secret, char public_out[41], char *err,
                       size_t errlen);

/* Check that `path` is a regular file with no group/other access, owned
 * by the effective uid. 0 or -1 (err e.g. "FILE: mode 0644 allows
 * group/other access; run: chmod 600 FILE"). */
int sc_check_secret_file(const char *path, char *err, size_t errlen);

#endif
