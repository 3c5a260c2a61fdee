/*
 * sk_register.h - the register directory of a sector plugin.
 *
 * Owns: listing the directory's *.json files in name order, telling which
 * changed since the last scan, parsing and checking them, and keeping for
 * each file its last good content (a file that does not parse, or an
 * entry that fails its checks, never loses what was good before). Builds
 * the merged view: every valid entry of every file, by file name then
 * entry order, the first of two entries with one id winning.
 * Never publishes; never remembers what was published (sk_known.c does).
 */
#ifndef SK_REGISTER_H
#define SK_REGISTER_H

#include <stddef.h>
#include <jansson.h>
#include "sk.h"

/* Largest register file read, in bytes. */
#define SK_FILE_MAX (16u * 1024u * 1024u)

/* One valid entry of the merged view. Valid until the next scan. */
typedef struct sk_entry {
    sk_kind_t kind;
    json_t *obj;       /* the entry object (owned by its file record) */
    const char *id;    /* points into obj */
    const char *file;  /* name of the file it came from */
    size_t pos;        /* position in that file: its tasks, then standards,
                          then indicators */
    size_t index;      /* index in the file's "tasks" / "standards" /
                          "indicators" array */
} sk_entry_t;

typedef struct sk_register sk_register_t;

/* A register of `sector` read from directory `dir`. NULL if out of
 * memory. Reads nothing yet. `sector` must outlive the register. */
sk_register_t *sk_register_new(const sk_sector_t *sector, const char *dir);
void sk_register_destroy(sk_register_t **self_p);

/* Look at the directory again and read every file that is new or changed.
 * Problems are logged to `lg` as "FILE: ..." lines, once per change of the
 * file. Returns 1 if the set of entries may have changed, 0 if it did not,
 * -1 if the directory cannot be read (nothing changed then). */
int sk_register_scan(sk_register_t *reg, const sk_log_t *lg);

/* The merged view after the last scan: *out is set to an array of n
 * entries (owned by the register, valid until the next scan). Duplicate
 * ids (per kind) are logged and left out. Returns n, or -1 if out of
 * memory. */
long sk_register_view(sk_register_t *reg, const sk_log_t *lg,
                      const sk_entry_t *const **out);

#endif
