/*
 * grow.h - the one "room for one more" of a growing array: capacity
 * doubles (from 8), so appending n entries costs O(n) copies in all.
 * Header only, so that every library (broker, plugin test kit) can use it
 * without linking core/common. Never shrinks, never bounds: the caller
 * states and checks its own bound.
 */
#ifndef SC_GROW_H
#define SC_GROW_H

#include <stddef.h>
#include <stdlib.h>

/* Room in *arr (capacity *cap entries of `size` bytes) for entry n.
 * 0, or -1 if out of memory (then *arr and *cap are unchanged). */
static inline int sc_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

#endif
