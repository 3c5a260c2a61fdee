/*
 * order.h - exactly-once, in-order delivery per channel.
 *
 * Owns, for every channel the client has seen, its position: the journal
 * epoch, the last seq queued for delivery, how far the gateway is known to
 * be (target), and a bounded reorder buffer of live messages that arrived
 * ahead of a gap. Decides for each message: deliver, drop as a duplicate,
 * or hold until the gap is repaired. Pure bookkeeping: no sockets, no
 * files, no verification -- client.c feeds it verified messages and does
 * the replays it asks for, which makes every rule unit-testable.
 */
#ifndef SC_CLIENT_ORDER_H
#define SC_CLIENT_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "held.h"
#include "state.h" /* SC_EPOCH_MAX */

typedef struct sc_track {
    char *channel;
    bool known;            /* has a position (state, snapshot, first msg) */
    char epoch[SC_EPOCH_MAX + 1];
    uint64_t last;         /* last seq queued for delivery */
    uint64_t target;       /* the gateway has at least up to this seq */
    bool no_buffer;        /* buffer overflowed: hold nothing until the
                              replay has caught up with target */
    bool suspect_epoch;    /* a heartbeat named another epoch: ask */
    sc_held_t **buf;       /* held live messages, seq ascending, > last+1 */
    size_t nbuf, capbuf;

    /* What the caller has actually been handed (for the state file). */
    char out_epoch[SC_EPOCH_MAX + 1];
    uint64_t out_seq;
    bool out_dirty;

    struct sc_track *next;
} sc_track_t;

typedef struct sc_order sc_order_t;

typedef enum {
    SC_ORD_DELIVER = 0, /* in order: the caller delivers it (owns it) */
    SC_ORD_DUPLICATE,   /* seq <= last: the caller drops it */
    SC_ORD_HELD,        /* ahead of a gap: the order module owns it now */
    SC_ORD_OVERFLOW,    /* ahead of a gap, but the buffer is full: the
                           caller drops it; replay will fetch it again */
    SC_ORD_HOLE         /* (replayed only) seq > last+1: the gateway
                           skipped seqs; the caller reports them lost */
} sc_order_verdict_t;

sc_order_t *sc_order_new(size_t max_buffered);
void sc_order_destroy(sc_order_t **o_p);

/* The track of `channel`, created (unknown) if `create`; NULL if absent or
 * out of memory. */
sc_track_t *sc_order_track(sc_order_t *o, const char *channel, bool create);
sc_track_t *sc_order_first(sc_order_t *o);
size_t sc_order_buffered(const sc_order_t *o);

/* Give the track a position: everything up to `last` of `epoch` counts as
 * delivered. Clears its buffer. */
void sc_order_start(sc_order_t *o, sc_track_t *t, const char *epoch,
                    uint64_t last);
/* Forget the position (journal replaced): unknown again, buffer freed. */
void sc_order_reset(sc_order_t *o, sc_track_t *t);

/* A live message of t's epoch (the caller checked the epoch and that t is
 * known). DELIVER advances last; HELD keeps m; else the caller frees m. */
sc_order_verdict_t sc_order_live(sc_order_t *o, sc_track_t *t, sc_held_t *m);

/* A replayed message of t's epoch: DELIVER, DUPLICATE or HOLE. */
sc_order_verdict_t sc_order_replayed(sc_track_t *t, const sc_held_t *m);

/* The gateway has up to `head`. */
void sc_order_head(sc_track_t *t, uint64_t head);

/* Next held message that is now in order (advances last), or NULL.
 * Held messages at or below last are freed on the way and counted in
 * *dups (may be NULL). */
sc_held_t *sc_order_pop(sc_order_t *o, sc_track_t *t, uint64_t *dups);

/* Does t need a replay? If so, *from = last+1 and *to = the last seq the
 * replay must bring (just before the first held message, or target). */
bool sc_order_wants(const sc_track_t *t, uint64_t *from, uint64_t *to);

/* Seqs up to `upto` are lost for good: last = upto (if higher). Held
 * messages that fall at or below it stay until sc_order_pop() drops them
 * as duplicates. */
void sc_order_skip(sc_track_t *t, uint64_t upto);

/* The caller has been handed seq of epoch on t (for the state file). */
void sc_order_handed(sc_track_t *t, const char *epoch, uint64_t seq);

#endif
