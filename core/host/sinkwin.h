/*
 * sinkwin.h - a sink's window: the messages delivered to a sink plugin
 * and not acknowledged yet, against the max_inflight its sc_sink_def_t
 * asked for.
 *
 * Owns: per channel, the seqs delivered (the plugin's deliver() returned
 * SC_OK) and not yet covered by a cumulative sink_ack or a lost notice,
 * and their count. A delivery in another epoch of a channel forgets that
 * channel's older seqs (they can no longer be acknowledged).
 *
 * Never: calls the plugin, talks to the broker, blocks or takes a lock --
 * it is used on the plugin's thread only (host.c). Memory: at most `max`
 * seqs in all (max <= SC_SINKWIN_MAX) and one entry per channel with a
 * seq open.
 */
#ifndef SC_HOST_SINKWIN_H
#define SC_HOST_SINKWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_SINKWIN_MAX 65536u

typedef struct sc_sinkwin sc_sinkwin_t;

/* A window of `max` messages (capped at SC_SINKWIN_MAX); NULL if out of
 * memory or max is 0 (no window). */
sc_sinkwin_t *sc_sinkwin_new(uint32_t max);
void sc_sinkwin_destroy(sc_sinkwin_t **w_p);

/* The bound, and the messages open now. */
uint32_t sc_sinkwin_max(const sc_sinkwin_t *w);
size_t sc_sinkwin_open(const sc_sinkwin_t *w);
/* true when no more may be delivered until something is acknowledged */
bool sc_sinkwin_full(const sc_sinkwin_t *w);

/* `seq` of `channel` (in `epoch`) was delivered. A seq at or below one
 * already open on the channel (offered again) is not counted twice.
 * -1 if out of memory (then it is not counted). */
int sc_sinkwin_delivered(sc_sinkwin_t *w, const char *channel,
                         const char *epoch, uint64_t seq);
/* The plugin acknowledged `channel` up to `seq` (cumulative). */
void sc_sinkwin_acked(sc_sinkwin_t *w, const char *channel, uint64_t seq);
/* Messages up to `last` of `channel` in `epoch` were lost (removed by
 * retention before they were acknowledged): forgotten like an ack. */
void sc_sinkwin_lost(sc_sinkwin_t *w, const char *channel, const char *epoch,
                     uint64_t last);

#endif
