/*
 * hash.h - the one string hash of the code base (64-bit FNV-1a), for the
 * in-memory tables that look names up (channels, plugins, metric label
 * sets). Not for anything an attacker could turn against us through
 * collisions beyond a table's stated bound, and never for secrets: every
 * table that uses it is bounded, so the worst case is a longer probe, not
 * unbounded memory or time.
 */
#ifndef SC_HASH_H
#define SC_HASH_H

#include <stdint.h>

#define SC_HASH_INIT 0xcbf29ce484222325ULL /* FNV-1a 64 offset basis */

/* Fold the bytes of `s` (up to its NUL) into `h`. */
static inline uint64_t sc_hash_add(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Fold one byte that no string of the table contains (e.g. 0xff between
 * the parts of a composite key, so that ("ab","c") and ("a","bc") differ). */
static inline uint64_t sc_hash_sep(uint64_t h)
{
    return (h ^ 0xffu) * 1099511628211ULL;
}

static inline uint64_t sc_hash_str(const char *s)
{
    return sc_hash_add(SC_HASH_INIT, s);
}

#endif
