/*
 * sink_relay.h - sink messages for plugin child processes (isolation =
 * "process"): from the sink feeder's thread to the core thread, which alone
 * may send on the ROUTER socket the children are connected to.
 *
 * Owns one bounded FIFO of encoded frames (SINK_MSG, SINK_LOST of
 * core/host/frame.h) per child credential, and an eventfd that is readable
 * while frames wait. The feeder queues (never blocks: a full queue is a
 * refusal the feeder retries); the core thread sends with ZMQ_DONTWAIT
 * (the ROUTER has ZMQ_ROUTER_MANDATORY set, so a full or not yet connected
 * child is an error, not a silent drop) and keeps what it could not send,
 * in order, for its next call. A child's acks come back as SINK_ACK /
 * SINK_NACK frames through the pipeline, like a thread's.
 *
 * Bound: SC_SINK_RELAY_MAX frames per child (the feeder's in-flight window
 * for a child instance is the same number, so the queue only fills when
 * the child's socket is full).
 * Never touches the journal, the cursors or any socket but the one given
 * to sc_sink_relay_flush() on the core thread.
 */
#ifndef SC_SINK_RELAY_H
#define SC_SINK_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#define SC_SINK_RELAY_MAX 256u

typedef struct sc_sink_relay sc_sink_relay_t;

sc_sink_relay_t *sc_sink_relay_new(char *err, size_t errlen);
void sc_sink_relay_destroy(sc_sink_relay_t **r_p);

/* Readable while frames wait to be sent (poll it from the core loop). */
int sc_sink_relay_fd(const sc_sink_relay_t *r);

/* Any thread: queue a SINK_MSG (msg) or a SINK_LOST (channel, epoch,
 * first, last) frame for the child whose credential is `rid`.
 * 0 = queued; -1 = the child's queue is full or out of memory. */
int sc_sink_relay_msg(sc_sink_relay_t *r, const char *rid,
                      const sc_sink_msg_t *msg);
int sc_sink_relay_lost(sc_sink_relay_t *r, const char *rid,
                       const char *channel, const char *epoch, uint64_t first,
                       uint64_t last);

/* Core thread: send what waits on `router` ([rid][frame], never blocking).
 * Returns the number of frames still waiting (retry after a short pause;
 * 0 = none). */
size_t sc_sink_relay_flush(sc_sink_relay_t *r, void *router);

/* Any thread: forget every frame queued for `rid` (the child is gone or
 * its sink was detached). */
void sc_sink_relay_drop(sc_sink_relay_t *r, const char *rid);

#endif
