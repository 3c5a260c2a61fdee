/*
 * envelope.h - the signed message envelope and data-message frames.
 *
 * Owns the envelope of docs/protocol.md:
 *   {"v":1,"id":..,"channel":..,"epoch":..,"seq":..,"ts":..,"kind":..,
 *    "key":..,"source":{..},"data":{..}}
 * building it (broker side) and checking a received [topic][jws] pair
 * (client side): signature, envelope fields and types, channel == topic.
 */
#ifndef SC_ENVELOPE_H
#define SC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "jwks.h"
#include "keys.h"

#define SC_ENVELOPE_VERSION 1

typedef struct sc_envelope_in {
    const char *channel;   /* valid channel name */
    const char *epoch;     /* journal epoch id */
    uint64_t seq;          /* >= 1 */
    const char *id;        /* message id; NULL = generate */
    const char *ts;        /* RFC 3339 UTC; NULL = now */
    const char *kind;      /* e.g. "task.updated" */
    const char *key;       /* may be NULL -> JSON null */
    json_t *source;        /* object, borrowed */
    json_t *data;          /* object, borrowed */
} sc_envelope_in_t;

/* Build the envelope and sign it: *jws_out malloc'd compact JWS. 0 or -1. */
int sc_envelope_sign(const sc_envelope_in_t *in, const sc_sigkey_t *key,
                     char **jws_out, size_t *jws_len, char *err,
                     size_t errlen);

/* The fast path (broker): the envelope built as text around the data's
 * already validated JSON text, no parse and no tree. Every field must be
 * valid already: channel a valid channel name, epoch and id hex, ts
 * RFC 3339, kind [a-z0-9._-], key (NULL -> null) valid UTF-8 without
 * control characters, source_json a JSON object's text, data_json a JSON
 * object's text (validated once, by the plugin host or the caller).
 * Same field order as sc_envelope_sign. */
typedef struct sc_envelope_text_in {
    const char *id;
    const char *channel;
    const char *epoch;
    uint64_t seq;
    const char *ts;
    const char *kind;
    const char *key;
    const char *source_json;
    size_t source_len;
    const char *data_json;
    size_t data_len;
} sc_envelope_text_in_t;

/* Write the envelope text into *buf (grown with realloc when *cap is too
 * small; a reused buffer makes this allocation-free unless the key needs
 * escaping). *len receives its length. 0 or -1. */
int sc_envelope_text(const sc_envelope_text_in_t *in, char **buf,
                     size_t *cap, size_t *len);

/* Check result codes (negative), beyond SC_JWS_E*: */
enum {
    SC_ENV_ETOPIC = -20,    /* topic is not a valid "<channel>." */
    SC_ENV_ESHAPE = -21,    /* payload not an envelope: missing/mistyped field */
    SC_ENV_ECHANNEL = -22,  /* envelope channel != topic */
    SC_ENV_EVERSION = -23,  /* unknown envelope version */
    SC_ENV_ENOMEM = -24     /* out of memory (not the message's fault) */
};

/* Verify a data message: signature with a key of `jwks`, envelope shape,
 * channel == topic. On success *env is the parsed envelope (caller
 * json_decref's); kid_out receives the signing kid. On failure returns a
 * negative code and err says why. */
int sc_envelope_verify(const sc_jwks_t *jwks, const char *topic,
                       size_t topic_len, const char *jws, size_t jws_len,
                       json_t **env, char kid_out[SC_KID_LEN + 1], char *err,
                       size_t errlen);

/* A verified envelope's fields (sc_envelope_verify_fields). Every string
 * is NUL-terminated and lives in `mem`, one allocation the caller frees
 * with sc_envelope_fields_free. */
typedef struct sc_envelope_fields {
    uint64_t seq;
    const char *id, *channel, *epoch, *ts, *kind;
    const char *key;  /* NULL: the key is null */
    const char *text; /* the envelope as one line of JSON: the payload
                         exactly as signed when it is one line (it always
                         is from a sectorcast broker), else jansson's
                         compact form of it */
    size_t text_len;
    char *mem;
} sc_envelope_fields_t;

/* The same checks as sc_envelope_verify (same codes, same texts), and
 * the fields instead of a tree: an envelope in its plainest form (one
 * line, fields without escapes: what a broker writes) is read without
 * building one; anything else is read by jansson. On failure *f is empty
 * and nothing is to be freed; SC_ENV_ENOMEM when memory ran out. */
int sc_envelope_verify_fields(const sc_jwks_t *jwks, const char *topic,
                              size_t topic_len, const char *jws,
                              size_t jws_len, sc_envelope_fields_t *f,
                              char kid_out[SC_KID_LEN + 1], char *err,
                              size_t errlen);
void sc_envelope_fields_free(sc_envelope_fields_t *f);

/* RFC 3339 UTC timestamp with milliseconds, "2026-11-25T12:44:55.123Z". */
void sc_now_rfc3339(char out[32]);

/* 32 lowercase hex chars of randomness (epochs, message ids). */
void sc_random_hex(char out[33]);

#endif
