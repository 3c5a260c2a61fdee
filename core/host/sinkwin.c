/*
 * sinkwin.c - see sinkwin.h.
 *
 * Channels with a seq open live in an open-addressing table (linear
 * probing, deleted by backward shift: no tombstones), at most half full;
 * each keeps its open seqs in ascending order in a ring that grows by
 * doubling. Acks pop from the front of one channel's ring.
 */
#include "sinkwin.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

typedef struct {
    char *channel; /* NULL: free slot */
    char *epoch;
    uint64_t *seq; /* ring of open seqs, ascending from head */
    size_t cap, head, n;
} chan_t;

struct sc_sinkwin {
    uint32_t max;
    size_t open;
    chan_t *t;
    size_t cap; /* slots, a power of two */
    size_t used;
};

sc_sinkwin_t *sc_sinkwin_new(uint32_t max)
{
    if (max == 0)
        return NULL;
    sc_sinkwin_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->max = max > SC_SINKWIN_MAX ? SC_SINKWIN_MAX : max;
    w->cap = 16;
    if (!(w->t = calloc(w->cap, sizeof *w->t))) {
        free(w);
        return NULL;
    }
    return w;
}

static void chan_free(chan_t *c)
{
    free(c->channel);
    free(c->epoch);
    free(c->seq);
    memset(c, 0, sizeof *c);
}

void sc_sinkwin_destroy(sc_sinkwin_t **w_p)
{
    if (!w_p || !*w_p)
        return;
    sc_sinkwin_t *w = *w_p;
    for (size_t i = 0; i < w->cap; i++)
        chan_free(&w->t[i]);
    free(w->t);
    free(w);
    *w_p = NULL;
}

uint32_t sc_sinkwin_max(const sc_sinkwin_t *w) { return w ? w->max : 0; }
size_t sc_sinkwin_open(const sc_sinkwin_t *w) { return w ? w->open : 0; }
bool sc_sinkwin_full(const sc_sinkwin_t *w) { return w && w->open >= w->max; }

static chan_t *find(const sc_sinkwin_t *w, const char *channel)
{
    for (size_t i = sc_hash_str(channel) & (w->cap - 1);; i = (i + 1) & (w->cap - 1)) {
        if (!w->t[i].channel)
            return NULL;
        if (strcmp(w->t[i].channel, channel) == 0)
            return &w->t[i];
    }
}

/* remove slot i, shifting back the entries of its probe run */
static void remove_slot(sc_sinkwin_t *w, chan_t *c)
{
    size_t i = (size_t)(c - w->t), mask = w->cap - 1;
    chan_free(&w->t[i]);
    w->used--;
    for (size_t j = (i + 1) & mask; w->t[j].channel; j = (j + 1) & mask) {
        size_t home = sc_hash_str(w->t[j].channel) & mask;
        /* move j back to i if its home is not within (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            w->t[i] = w->t[j];
            memset(&w->t[j], 0, sizeof w->t[j]);
            i = j;
        }
    }
}

static int grow(sc_sinkwin_t *w)
{
    size_t cap = w->cap * 2;
    chan_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < w->cap; i++) {
        if (!w->t[i].channel)
            continue;
        size_t k = sc_hash_str(w->t[i].channel) & (cap - 1);
        while (t[k].channel)
            k = (k + 1) & (cap - 1);
        t[k] = w->t[i];
    }
    free(w->t);
    w->t = t;
    w->cap = cap;
    return 0;
}

static chan_t *add(sc_sinkwin_t *w, const char *channel, const char *epoch)
{
    if ((w->used + 1) * 2 > w->cap && grow(w) != 0)
        return NULL;
    size_t i = sc_hash_str(channel) & (w->cap - 1);
    while (w->t[i].channel)
        i = (i + 1) & (w->cap - 1);
    chan_t *c = &w->t[i];
    if (!(c->channel = strdup(channel)) || !(c->epoch = strdup(epoch))) {
        chan_free(c);
        return NULL;
    }
    w->used++;
    return c;
}

static uint64_t *at(const chan_t *c, size_t k)
{
    return &c->seq[(c->head + k) % c->cap];
}

/* forget the open seqs of c up to `seq`; remove c once none is open */
static void pop_to(sc_sinkwin_t *w, chan_t *c, uint64_t seq)
{
    while (c->n && *at(c, 0) <= seq) {
        c->head = (c->head + 1) % c->cap;
        c->n--;
        w->open--;
    }
    if (c->n == 0)
        remove_slot(w, c);
}

int sc_sinkwin_delivered(sc_sinkwin_t *w, const char *channel,
                         const char *epoch, uint64_t seq)
{
    if (!w || !channel || !epoch)
        return 0;
    chan_t *c = find(w, channel);
    if (c && strcmp(c->epoch, epoch) != 0) {
        /* a new epoch: the old seqs cannot be acknowledged any more */
        w->open -= c->n;
        remove_slot(w, c);
        c = NULL;
    }
    if (c && *at(c, c->n - 1) >= seq)
        return 0; /* offered again */
    if (!c && !(c = add(w, channel, epoch)))
        return -1;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        uint64_t *v = malloc(cap * sizeof *v);
        if (!v) {
            if (c->n == 0)
                remove_slot(w, c);
            return -1;
        }
        for (size_t k = 0; k < c->n; k++)
            v[k] = *at(c, k);
        free(c->seq);
        c->seq = v;
        c->cap = cap;
        c->head = 0;
    }
    *at(c, c->n) = seq;
    c->n++;
    w->open++;
    return 0;
}

void sc_sinkwin_acked(sc_sinkwin_t *w, const char *channel, uint64_t seq)
{
    chan_t *c = w && channel ? find(w, channel) : NULL;
    if (c)
        pop_to(w, c, seq);
}

void sc_sinkwin_lost(sc_sinkwin_t *w, const char *channel, const char *epoch,
                     uint64_t last)
{
    chan_t *c = w && channel && epoch ? find(w, channel) : NULL;
    if (c && strcmp(c->epoch, epoch) == 0)
        pop_to(w, c, last);
}
