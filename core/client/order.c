/*
 * order.c - see order.h.
 *
 * Channels are few (tens), so tracks are a plain list. A reorder buffer is
 * a sorted array: live messages mostly arrive in order, so an insert is
 * almost always an append.
 */
#include "order.h"

#include <stdlib.h>
#include <string.h>

struct sc_order {
    sc_track_t *tracks;
    size_t buffered;      /* held messages over all tracks */
    size_t max_buffered;
};

sc_order_t *sc_order_new(size_t max_buffered)
{
    sc_order_t *o = calloc(1, sizeof *o);
    if (o)
        o->max_buffered = max_buffered ? max_buffered : 1;
    return o;
}

static void drop_buffer(sc_order_t *o, sc_track_t *t)
{
    for (size_t i = 0; i < t->nbuf; i++)
        sc_held_free(t->buf[i]);
    o->buffered -= t->nbuf;
    t->nbuf = 0;
}

void sc_order_destroy(sc_order_t **o_p)
{
    if (!o_p || !*o_p)
        return;
    sc_order_t *o = *o_p;
    while (o->tracks) {
        sc_track_t *t = o->tracks;
        o->tracks = t->next;
        drop_buffer(o, t);
        free(t->buf);
        free(t->channel);
        free(t);
    }
    free(o);
    *o_p = NULL;
}

sc_track_t *sc_order_track(sc_order_t *o, const char *channel, bool create)
{
    sc_track_t **pp = &o->tracks;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->channel, channel) == 0)
            return *pp;
    if (!create)
        return NULL;
    sc_track_t *t = calloc(1, sizeof *t);
    if (!t || !(t->channel = strdup(channel))) {
        free(t);
        return NULL;
    }
    *pp = t; /* append: keeps first-seen order for round-robin repair */
    return t;
}

sc_track_t *sc_order_first(sc_order_t *o) { return o->tracks; }

size_t sc_order_buffered(const sc_order_t *o) { return o->buffered; }

static void set_epoch(char *dst, const char *epoch)
{
    size_t n = strlen(epoch);
    if (n > SC_EPOCH_MAX)
        n = SC_EPOCH_MAX;
    memcpy(dst, epoch, n);
    dst[n] = '\0';
}

void sc_order_start(sc_order_t *o, sc_track_t *t, const char *epoch,
                    uint64_t last)
{
    drop_buffer(o, t);
    t->known = true;
    set_epoch(t->epoch, epoch);
    t->last = last;
    t->target = last;
    t->no_buffer = false;
    t->suspect_epoch = false;
}

void sc_order_reset(sc_order_t *o, sc_track_t *t)
{
    drop_buffer(o, t);
    t->known = false;
    t->epoch[0] = '\0';
    t->last = t->target = 0;
    t->no_buffer = false;
    t->suspect_epoch = false;
}

static void caught_up(sc_track_t *t)
{
    if (t->last >= t->target) {
        t->target = t->last;
        t->no_buffer = false;
    }
}

/* Insert m in seq order; false if its seq is already held. */
static bool insert(sc_track_t *t, sc_held_t *m)
{
    size_t i = t->nbuf;
    while (i > 0 && t->buf[i - 1]->seq > m->seq)
        i--;
    if (i > 0 && t->buf[i - 1]->seq == m->seq)
        return false;
    memmove(t->buf + i + 1, t->buf + i, (t->nbuf - i) * sizeof *t->buf);
    t->buf[i] = m;
    t->nbuf++;
    return true;
}

sc_order_verdict_t sc_order_live(sc_order_t *o, sc_track_t *t, sc_held_t *m)
{
    if (m->seq <= t->last)
        return SC_ORD_DUPLICATE;
    if (m->seq == t->last + 1) {
        t->last = m->seq;
        caught_up(t);
        return SC_ORD_DELIVER;
    }
    sc_order_head(t, m->seq);
    if (t->no_buffer || o->buffered >= o->max_buffered) {
        /* Drop what this channel holds: the replay that is due anyway
         * fetches it again, and the buffer stays bounded. */
        drop_buffer(o, t);
        t->no_buffer = true;
        return SC_ORD_OVERFLOW;
    }
    if (t->nbuf == t->capbuf) {
        size_t cap = t->capbuf ? t->capbuf * 2 : 64;
        sc_held_t **b = realloc(t->buf, cap * sizeof *b);
        if (!b) {
            drop_buffer(o, t);
            t->no_buffer = true;
            return SC_ORD_OVERFLOW;
        }
        t->buf = b;
        t->capbuf = cap;
    }
    if (!insert(t, m))
        return SC_ORD_DUPLICATE;
    o->buffered++;
    return SC_ORD_HELD;
}

sc_order_verdict_t sc_order_replayed(sc_track_t *t, const sc_held_t *m)
{
    if (m->seq <= t->last)
        return SC_ORD_DUPLICATE;
    if (m->seq > t->last + 1)
        return SC_ORD_HOLE;
    t->last = m->seq;
    caught_up(t);
    return SC_ORD_DELIVER;
}

void sc_order_head(sc_track_t *t, uint64_t head)
{
    if (head > t->target)
        t->target = head;
}

sc_held_t *sc_order_pop(sc_order_t *o, sc_track_t *t, uint64_t *dups)
{
    while (t->nbuf > 0) {
        sc_held_t *m = t->buf[0];
        if (m->seq > t->last + 1)
            return NULL;
        memmove(t->buf, t->buf + 1, (t->nbuf - 1) * sizeof *t->buf);
        t->nbuf--;
        o->buffered--;
        if (m->seq <= t->last) {
            if (dups)
                (*dups)++;
            sc_held_free(m);
            continue;
        }
        t->last = m->seq;
        caught_up(t);
        return m;
    }
    return NULL;
}

bool sc_order_wants(const sc_track_t *t, uint64_t *from, uint64_t *to)
{
    if (!t->known)
        return false;
    uint64_t end = t->target;
    if (t->nbuf > 0 && t->buf[0]->seq - 1 < end)
        end = t->buf[0]->seq - 1;
    if (t->suspect_epoch && end <= t->last)
        end = t->last + 1; /* one request tells whether the epoch holds */
    if (end <= t->last)
        return false;
    if (from)
        *from = t->last + 1;
    if (to)
        *to = end;
    return true;
}

void sc_order_skip(sc_track_t *t, uint64_t upto)
{
    if (upto > t->last)
        t->last = upto;
    caught_up(t);
}

void sc_order_handed(sc_track_t *t, const char *epoch, uint64_t seq)
{
    set_epoch(t->out_epoch, epoch);
    t->out_seq = seq;
    t->out_dirty = true;
}
