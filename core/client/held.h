/*
 * held.h - one verified message, owned on its own.
 *
 * A held message carries everything sc_message_t points into (the fields,
 * the envelope text as signed, the original JWS) in one allocation, so it
 * can wait in a reorder buffer or a delivery queue and be handed to the
 * caller later without verifying it again. Never verifies anything itself.
 */
#ifndef SC_CLIENT_HELD_H
#define SC_CLIENT_HELD_H

#include <stddef.h>
#include <stdint.h>

#include "sectorcast/client.h"

typedef struct sc_held {
    uint64_t seq;
    const char *channel;
    const char *epoch;
    const char *id;
    const char *ts;
    const char *kind;
    const char *key;      /* NULL if the envelope's key is null */
    const char *kid;
    const char *envelope; /* NUL-terminated */
    size_t envelope_len;
    const char *jws;      /* NUL-terminated copy of the JWS bytes */
    size_t jws_len;
    int origin;           /* sc_client_origin_t: live, snapshot, replay */
    /* the strings follow the struct in the same allocation */
} sc_held_t;

/* Copy `in` (every string but key must be non-NULL) into one new block.
 * NULL when out of memory. */
sc_held_t *sc_held_new(const sc_held_t *in);
void sc_held_free(sc_held_t *h);

/* Point *msg at h's fields (valid while h lives). */
void sc_held_message(const sc_held_t *h, sc_message_t *msg);

#endif
