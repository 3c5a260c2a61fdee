/*
 * sk_schema.h - the schema of one register entry (task, standards work
 * item, indicator series), the channel an entry belongs on and the event
 * kind of a change.
 *
 * Owns: which members an entry must have and of what type (the common
 * schema plus the sector's own members), the allowed statuses / stages,
 * and the mapping of (kind, subsector) to a channel. Never reads files,
 * never publishes.
 */
#ifndef SK_SCHEMA_H
#define SK_SCHEMA_H

#include <stddef.h>
#include <jansson.h>
#include "sk.h"

/* Name of the top-level array holding entries of `kind` in a register
 * file: "tasks", "standards" or "indicators". */
const char *sk_kind_array(sk_kind_t kind);

/* "a, b, c" of the NULL-terminated `list`, into buf[len] (cut short if
 * it does not fit). Returns buf. */
const char *sk_join(const char *const *list, char *buf, size_t len);

/* Non-zero if `id` is a well-formed task / standard id:
 * [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
int sk_id_valid(const char *id);

/* Non-zero if `id` is a well-formed indicator series id, the name alert
 * rules use: [a-z0-9][a-z0-9_-]{0,63}. */
int sk_series_id_valid(const char *id);

/* Non-zero if `s` is "YYYY-MM-DD" and exists in the calendar. */
int sk_date_valid(const char *s);

/* Check `obj` against the schema of `kind` in `sector`. Returns 0 if
 * valid, else -1 with a one-line reason in why[whylen] (e.g. "\"status\":
 * \"dunno\" is not one of: planned, ..."). */
int sk_entry_check(const sk_sector_t *sector, sk_kind_t kind,
                   const json_t *obj, char *why, size_t whylen);

/* Of a valid entry: its id, subsector, and state (a task's "status", a
 * standard's "stage"; NULL for an indicator). Point into `obj`. */
const char *sk_entry_id(const json_t *obj);
const char *sk_entry_subsector(const json_t *obj);
const char *sk_entry_state(sk_kind_t kind, const json_t *obj);

/* Write the channel of `kind` for `subsector` to buf[len] (for
 * SK_INDICATOR: the alerts channel). Returns 0, or -1 if it does not fit
 * or is not a valid channel name. */
int sk_channel(const sk_sector_t *sector, sk_kind_t kind,
               const char *subsector, char *buf, size_t len);

/* The event kind for a change of an entry of `kind` (task or standard)
 * whose state went from `old_state` to `new_state`: old_state NULL = the
 * entry is new, new_state NULL = the entry disappeared. Both non-NULL =
 * its content changed. */
const char *sk_event_kind(sk_kind_t kind, const char *old_state,
                          const char *new_state);

#endif
