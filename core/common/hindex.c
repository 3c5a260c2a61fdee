/*
 * hindex.c - see hindex.h.
 */
#include "hindex.h"

#include <stdlib.h>
#include <string.h>

long sc_hindex_find(const sc_hindex_t *x, uint64_t h, sc_hindex_eq_fn eq,
                    const void *key, void *arg)
{
    if (x->cap == 0)
        return -1;
    size_t mask = x->cap - 1;
    uint32_t h32 = (uint32_t)h;
    for (size_t i = h32 & mask;; i = (i + 1) & mask) {
        const sc_hindex_slot_t *s = &x->slot[i];
        if (s->pos1 == 0)
            return -1;
        if (s->h == h32 && eq(key, s->pos1 - 1, arg))
            return (long)(s->pos1 - 1);
    }
}

static void put(sc_hindex_slot_t *slot, size_t cap, uint32_t h32,
                uint32_t pos1)
{
    size_t i = h32 & (cap - 1);
    while (slot[i].pos1)
        i = (i + 1) & (cap - 1);
    slot[i].pos1 = pos1;
    slot[i].h = h32;
}

int sc_hindex_add(sc_hindex_t *x, uint64_t h, size_t pos)
{
    if (pos >= UINT32_MAX - 1)
        return -1;
    if (2 * (x->n + 1) > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        sc_hindex_slot_t *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < x->cap; i++)
            if (x->slot[i].pos1)
                put(slot, cap, x->slot[i].h, x->slot[i].pos1);
        free(x->slot);
        x->slot = slot;
        x->cap = cap;
    }
    put(x->slot, x->cap, (uint32_t)h, (uint32_t)pos + 1);
    x->n++;
    return 0;
}

void sc_hindex_clear(sc_hindex_t *x)
{
    if (x->slot)
        memset(x->slot, 0, x->cap * sizeof *x->slot);
    x->n = 0;
}

void sc_hindex_free(sc_hindex_t *x)
{
    free(x->slot);
    x->slot = NULL;
    x->cap = x->n = 0;
}
