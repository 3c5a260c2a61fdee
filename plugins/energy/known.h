/*
 * known.h - what subscribers were last told about each entry, and the diff
 * that turns a new view of the register into events.
 *
 * Owns the memory of the last published content per (kind, id): its
 * subsector, state (status / stage), canonical JSON text (json_dumps with
 * JSON_COMPACT | JSON_SORT_KEYS, so key order and spacing in the file are
 * no change) and place in the register. Never reads files, never calls
 * the host: events go to a callback.
 *
 * Durable state: the memory is plain JSON on purpose (one object per kind:
 * id -> {"sub","state","data","file","pos"}). When the ABI gains durable
 * plugin state, en_known_dump()/en_known_load() can store and reload it,
 * and "new in this run" becomes "new since the last publish" across
 * restarts without touching the diff.
 */
#ifndef EN_KNOWN_H
#define EN_KNOWN_H

#include <stddef.h>
#include "energy.h"
#include "register.h"

typedef struct en_event {
    const char *channel; /* "energy.<subsector>.tasks|standards" */
    const char *kind;    /* "task.created", "standard.published", ... */
    const char *key;     /* the entry's id */
    const char *data;    /* canonical JSON text of the entry (for a gone
                            entry: its last published content) */
} en_event_t;

typedef void (*en_emit_fn)(void *ctx, const en_event_t *ev);

typedef struct en_known en_known_t;

en_known_t *en_known_new(void);
void en_known_destroy(en_known_t **self_p);

/* Compare `view` (n entries, in register order) with the memory. Each
 * entry that is new, changed or gone gives one event; one whose subsector
 * changed gives two (gone from the old channel, new on the new one).
 * Events go to emit(ctx, ev) in register order: by file name, then
 * position in the file, a gone entry at the place it had. With `quiet`
 * nothing is emitted, only the memory updated (publish_on_start = false).
 * The memory is updated whatever emit() does with an event. Returns the
 * number of events, or -1 if out of memory (memory unchanged). */
long en_known_apply(en_known_t *k, const en_entry_t *const *view, size_t n,
                    int quiet, en_emit_fn emit, void *ctx);

/* Number of entries remembered. */
size_t en_known_count(const en_known_t *k);

#endif
