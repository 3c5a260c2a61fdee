/*
 * sk_known.h - what subscribers were told about each task and standard,
 * and the diff that turns a new view of the register into events.
 *
 * Owns the memory of the last published content per (kind, id): its
 * subsector, state (status / stage), canonical JSON text (json_dumps with
 * JSON_COMPACT | JSON_SORT_KEYS, so key order and spacing in the file are
 * no change) and place in the register; and its durable copy in the
 * plugin state (sk_store), so that a restart publishes only what changed
 * while the plugin was down. Never reads files, never calls publish():
 * events go to a callback, which says what became of each.
 *
 * The memory of an entry changes only after its event was published
 * (SK_SENT): a publish that failed for now (SK_RETRY) leaves it as it
 * was, so the same event comes again at the next apply. An event that
 * cannot be published for this content (SK_DROPPED: channel not granted,
 * too big) is remembered in memory only, marked unsent: it is not tried
 * again until the entry changes, nor announced as gone, and a restart
 * tries it once more.
 */
#ifndef SK_KNOWN_H
#define SK_KNOWN_H

#include <stddef.h>
#include "sk.h"
#include "sk_register.h"
#include "sk_store.h"

typedef struct sk_event {
    const char *channel; /* e.g. "semis.tasks" */
    const char *kind;    /* "task.created", "standard.published", ... */
    const char *key;     /* the entry's id */
    const char *data;    /* canonical JSON text of the entry (for a gone
                            entry: its last published content) */
} sk_event_t;

typedef enum sk_outcome {
    SK_SENT = 0,    /* published */
    SK_DROPPED = 1, /* will not be published for this content */
    SK_RETRY = 2    /* not published now; try again at the next apply */
} sk_outcome_t;

typedef sk_outcome_t (*sk_emit_fn)(void *ctx, const sk_event_t *ev);

typedef struct sk_known sk_known_t;

/* Memory of `sector`'s entries, mirrored to `store` (both must outlive
 * it). NULL if out of memory. */
sk_known_t *sk_known_new(const sk_sector_t *sector, sk_store_t *store);
void sk_known_destroy(sk_known_t **self_p);

/* Load the memory from the store (what was published before a restart).
 * A record that cannot be used is logged and left out (its entry is then
 * new again). Returns the number of records loaded, or -1 if the store
 * could not be read (logged; the memory stays empty). */
long sk_known_load(sk_known_t *k, const sk_log_t *lg);

/* Compare `view` (n entries in register order; indicators are ignored)
 * with the memory. Each task or standard that is new, changed or gone
 * gives one event; one whose subsector changed gives two (gone from the
 * old channel, new on the new one; the second only if the first was not
 * SK_RETRY). Events go to emit(ctx, ev) in register order: by file name,
 * then position in the file, a gone entry at the place it had. With
 * `quiet`, nothing is emitted and every event counts as SK_SENT
 * (publish_on_start = false). Returns the number of events, or -1 if out
 * of memory (memory unchanged). *retry (if not NULL) is set non-zero if
 * some event was SK_RETRY. */
long sk_known_apply(sk_known_t *k, const sk_entry_t *const *view, size_t n,
                    int quiet, sk_emit_fn emit, void *ctx, int *retry);

/* Number of entries remembered (sent or not). */
size_t sk_known_count(const sk_known_t *k);

#endif
