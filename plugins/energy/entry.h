/*
 * entry.h - the schema of one register entry (a task or a standards work
 * item) and the event kinds derived from it.
 *
 * Owns: which members an entry must have and of what type, the allowed
 * subsectors / statuses / stages, the channel an entry belongs on, and
 * which event kind a change of an entry is. Never reads files, never
 * publishes.
 */
#ifndef EN_ENTRY_H
#define EN_ENTRY_H

#include <stddef.h>
#include <jansson.h>
#include "energy.h"

/* Longest entry id, in bytes. */
#define EN_ID_MAX 64
/* Room for "energy.<subsector>.standards" and a NUL. */
#define EN_CHANNEL_BUF 64

/* Name of the top-level array holding entries of `kind` in a register
 * file: "tasks" or "standards". */
const char *en_kind_array(en_kind_t kind);

/* Non-zero if `id` is a well-formed entry id:
 * [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
int en_id_valid(const char *id);

/* Check `obj` against the schema of `kind`. Returns 0 if valid, else -1
 * with a one-line reason in why[whylen] (e.g. "\"status\": \"dunno\" is
 * not one of: planned, ..."). */
int en_entry_check(en_kind_t kind, const json_t *obj, char *why,
                   size_t whylen);

/* Of a valid entry: its id, subsector, and state (a task's "status", a
 * standard's "stage"). Point into `obj`. */
const char *en_entry_id(const json_t *obj);
const char *en_entry_subsector(const json_t *obj);
const char *en_entry_state(en_kind_t kind, const json_t *obj);

/* Write "energy.<subsector>.tasks" / "...standards" to buf[len]. Returns 0,
 * or -1 if it does not fit. */
int en_channel(char *buf, size_t len, en_kind_t kind, const char *subsector);

/* The event kind for a change of an entry of `kind` whose state went from
 * `old_state` to `new_state`: old_state NULL = the entry is new in this
 * run, new_state NULL = the entry disappeared. Both non-NULL = its content
 * changed. */
const char *en_event_kind(en_kind_t kind, const char *old_state,
                          const char *new_state);

#endif
