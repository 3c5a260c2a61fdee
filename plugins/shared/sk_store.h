/*
 * sk_store.h - the plugin's durable state, or memory only on a host
 * without it.
 *
 * Owns the use of the host's state_get/state_put/state_foreach (appended
 * to ABI 1 after its first revision; tested with SC_HOST_HAS). On an
 * older host the store is memory-only: puts succeed and are forgotten,
 * loads find nothing, and init logs one warning saying that a restart
 * will publish everything again. The plugin's modules keep their own
 * memory; this store only mirrors it to the broker's SQLite.
 *
 * Keys are "<family>/<id>": "task/KUS-SC-AI-002", "standard/...",
 * "alert/<series>". Values are JSON texts.
 */
#ifndef SK_STORE_H
#define SK_STORE_H

#include "sk.h"

typedef struct sk_store sk_store_t;

/* A store on the host of `lg`. NULL if out of memory. */
sk_store_t *sk_store_new(const sk_log_t *lg);
void sk_store_destroy(sk_store_t **self_p);

/* Non-zero if what is put survives a restart. */
int sk_store_durable(const sk_store_t *st);

/* Put `value` under "<family>/<id>" (value NULL: delete). Returns SC_OK
 * or the host's code (logged). Memory-only: SC_OK. */
int sk_store_put(sk_store_t *st, const char *family, const char *id,
                 const char *value);

/* Get the value under "<family>/<id>" into *value (free with free()).
 * Returns SC_OK, SC_ERR_NOT_FOUND, or the host's code (logged).
 * Memory-only: SC_ERR_NOT_FOUND. */
int sk_store_get(sk_store_t *st, const char *family, const char *id,
                 char **value);

/* Call fn(arg, id, value) for every key of `family`, in key order, with
 * the id part of the key. fn must not put. Returns SC_OK or the host's
 * code (logged). Memory-only: SC_OK, no calls. */
int sk_store_foreach(sk_store_t *st, const char *family,
                     int (*fn)(void *arg, const char *id, const char *value),
                     void *arg);

#endif
