/*
 * hindex.h - an index of positions in the caller's array by hash, so that
 * a table of names (status channels and plugins, metric label sets) is
 * searched in constant time instead of by a scan.
 *
 * Owns only the index: open addressing with linear probing, kept at most
 * half full, each slot holding a position (+1) and 32 bits of the entry's
 * hash. The caller owns the entries, says whether a candidate position is
 * the entry it looks for (the equality callback), and rebuilds the index
 * (sc_hindex_clear, then sc_hindex_add for each entry) when it moves or
 * removes entries. Never locks: the caller's lock covers the index with
 * its array. Bound: as many positions as the caller adds (each table that
 * uses it states its own bound); 8 bytes per slot, at most 4 slots per
 * entry.
 */
#ifndef SC_HINDEX_H
#define SC_HINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sc_hindex_slot {
    uint32_t pos1; /* position + 1; 0 = empty */
    uint32_t h;    /* low 32 bits of the entry's hash */
} sc_hindex_slot_t;

typedef struct sc_hindex {
    sc_hindex_slot_t *slot;
    size_t cap; /* slots: 0 or a power of two */
    size_t n;   /* positions added */
} sc_hindex_t;

#define SC_HINDEX_INIT {NULL, 0, 0}

/* true if the entry at `pos` is the one `key` names */
typedef bool (*sc_hindex_eq_fn)(const void *key, size_t pos, void *arg);

/* The position of the entry with hash `h` for which eq(key, pos, arg) is
 * true, or -1. */
long sc_hindex_find(const sc_hindex_t *x, uint64_t h, sc_hindex_eq_fn eq,
                    const void *key, void *arg);
/* Add position `pos` (< 2^32 - 1) under hash `h` (the caller has checked
 * that no equal entry is indexed). 0, or -1 if out of memory (the index is
 * unchanged). */
int sc_hindex_add(sc_hindex_t *x, uint64_t h, size_t pos);
/* Forget every position (keeps the slots for the rebuild). */
void sc_hindex_clear(sc_hindex_t *x);
void sc_hindex_free(sc_hindex_t *x);

#endif
