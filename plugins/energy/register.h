/*
 * register.h - the register directory of the energy plugin.
 *
 * Owns: listing the directory's *.json files in name order, telling which
 * changed since the last scan, parsing and checking them, and keeping for
 * each file its last good content (a file that does not parse, or an
 * entry that fails its checks, never loses what was good before). Builds
 * the merged view: every valid entry of every file, by file name then
 * entry order, the first of two entries with one id winning.
 * Never publishes; never remembers what was published (known.c does).
 */
#ifndef EN_REGISTER_H
#define EN_REGISTER_H

#include <stddef.h>
#include <jansson.h>
#include "energy.h"

/* Largest register file read, in bytes. */
#define EN_FILE_MAX (16u * 1024u * 1024u)

/* One valid entry of the merged view. Valid until the next scan. */
typedef struct en_entry {
    en_kind_t kind;
    json_t *obj;       /* the entry object (owned by its file record) */
    const char *id;    /* points into obj */
    const char *file;  /* name of the file it came from */
    size_t pos;        /* position in that file: its tasks, then standards */
    size_t index;      /* index in the file's "tasks" / "standards" array */
} en_entry_t;

typedef struct en_register en_register_t;

/* A register read from directory `dir`. NULL if out of memory. Reads
 * nothing yet. */
en_register_t *en_register_new(const char *dir);
void en_register_destroy(en_register_t **self_p);

/* Look at the directory again and read every file that is new or changed.
 * Problems are logged to `lg` as "FILE: ..." lines, once per change of the
 * file. Returns 1 if the set of entries may have changed, 0 if it did not,
 * -1 if the directory cannot be read (nothing changed then). */
int en_register_scan(en_register_t *reg, const en_log_t *lg);

/* The merged view after the last scan: *out is set to an array of n
 * entries (owned by the register, valid until the next scan). Duplicate
 * ids (per kind) are logged and left out. Returns n, or -1 if out of
 * memory. */
long en_register_view(en_register_t *reg, const en_log_t *lg,
                      const en_entry_t *const **out);

#endif
