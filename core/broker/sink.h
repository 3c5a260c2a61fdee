/*
 * sink.h - the sink feeder: committed messages out of the journal, to the
 * sink plugins, with a durable cursor per sink.
 *
 * Owns: one thread of its own that reads committed messages from the
 * journal through its own journal reader (never from the live publish
 * path), offers them to each attached sink instance in seq order
 * per channel for the subtrees its config's `receives` grants, keeps a
 * bounded in-flight window per instance, and keeps the durable cursors
 * (last acknowledged seq per (instance, channel, epoch)) in
 * DATA_DIR/sinks.db (SQLite, WAL, 0600), written by this thread only.
 *
 * Never writes the journal and never blocks the core: the core calls only
 * sc_sink_committed() after a commit (one eventfd write per group, none
 * while no sink is attached). A slow or stuck sink
 * only stops its own delivery: its backlog is what the journal holds, the
 * feeder keeps at most `max_inflight` of its messages in memory.
 *
 * Resume: a sink (re)attached after a broker restart, a crash of the
 * plugin, a reload or a long downstream outage is offered everything after
 * its durable cursor. Messages removed by retention before the sink
 * acknowledged them are reported once through `lost` and logged.
 */
#ifndef SC_SINK_H
#define SC_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#include "journal.h"

typedef struct sc_sink_feeder sc_sink_feeder_t;
typedef struct sc_sink_port sc_sink_port_t; /* one attached sink instance */

/* Default and upper bound of an instance's in-flight window (messages
 * offered but not yet acknowledged). */
#define SC_SINK_INFLIGHT_DEFAULT 1024u
#define SC_SINK_INFLIGHT_MAX 65536u
/* A sink with lag and no ack for this long shows as not connected. */
#define SC_SINK_STALLED_MS 10000

/* How the feeder hands messages to one instance (the plugin host side).
 * Both functions run on the feeder thread and must not block. */
typedef struct sc_sink_target {
    /* Take a copy of msg for the instance's thread. 0 = taken; -1 = cannot
     * take it now (the feeder offers it again later). */
    int (*offer)(void *arg, const sc_sink_msg_t *msg);
    /* first..last of channel can no longer be delivered (retention, or
     * last == 0: an older epoch's messages after `first`). 0 = told; -1 =
     * cannot take it now (told again shortly; the channel waits). May be
     * NULL. */
    int (*lost)(void *arg, const char *channel, const char *epoch,
                uint64_t first, uint64_t last);
    void *arg;
} sc_sink_target_t;

/* Start the feeder reading `journal` through a reader of its own (see
 * journal.h; destroy the feeder before closing the journal), keeping
 * cursors in DATA_DIR/sinks.db. NULL with err filled on failure. */
sc_sink_feeder_t *sc_sink_feeder_new(const sc_journal_t *journal,
                                     const char *data_dir, char *err,
                                     size_t errlen);
/* Stop the thread (in-flight messages are offered again next time) and
 * free. Every port must have been detached. */
void sc_sink_feeder_destroy(sc_sink_feeder_t **f_p);

/* Any thread: wakes the feeder (never blocks). */
void sc_sink_notify(sc_sink_feeder_t *f);

/* The core, after a group committed: sc_sink_notify() if any sink is
 * attached, else nothing (no system call per group without sinks). */
void sc_sink_committed(sc_sink_feeder_t *f);

/* Attach instance `name` for the subtrees `receives` (each ending in
 * '.'). `max_inflight` 0 = default, capped at SC_SINK_INFLIGHT_MAX. The
 * target must stay valid until sc_sink_detach() returns. NULL with err
 * filled (e.g. the name is already attached). Any thread. */
sc_sink_port_t *sc_sink_attach(sc_sink_feeder_t *f, const char *name,
                               char *const *receives, size_t n_receives,
                               uint32_t max_inflight,
                               const sc_sink_target_t *target, char *err,
                               size_t errlen);

/* Everything of `channel` up to `seq` (current epoch) is delivered: the
 * cursor advances (cumulative; less than before is ignored). Any thread.
 * SC_OK, SC_ERR_NOT_GRANTED (channel not received), SC_ERR_ARG (seq never
 * offered). */
int sc_sink_ack(sc_sink_port_t *p, const char *channel, uint64_t seq);

/* The instance refused `seq` of `channel` (backpressure): offer it and
 * what follows again after a short pause. Any thread. */
void sc_sink_retry(sc_sink_port_t *p, const char *channel, uint64_t seq);

/* The core read a SINK_ACK (acked_seq > 0) or SINK_NACK (refused_seq > 0)
 * frame of instance `name`: sc_sink_ack / sc_sink_retry on its port, if
 * attached. Any thread. */
void sc_sink_acked(sc_sink_feeder_t *f, const char *name, const char *channel,
                   uint64_t acked_seq, uint64_t refused_seq);

/* The configured sink instances (at start and after each reload): the
 * durable cursors of any other instance that is not attached are removed
 * from sinks.db (a sink removed from the configuration and added again
 * later starts like a new one, from what the journal retains). Applied by
 * the feeder thread shortly after. Any thread. */
void sc_sink_keep_only(sc_sink_feeder_t *f, const char *const *names,
                       size_t n);

/* After this returns, the target is never called again; unacknowledged
 * messages will be offered again on the next attach. */
void sc_sink_detach(sc_sink_port_t **p_p);

/* Record the instance's own view of its downstream (e.g. "connected to
 * nats://..." / an error text), shown in the status. Any thread.
 * Not called today: plugin ABI 2 has no host call for a plugin to report
 * its state, so `connected` is inferred (see sc_sink_status_t). */
void sc_sink_set_state(sc_sink_port_t *p, bool connected, const char *error);

/* Status, for `ctl plugins` and the metrics: one call per channel of each
 * attached instance (and one with channel NULL per instance). Any thread;
 * the callback must not call back into the feeder. */
typedef struct sc_sink_status {
    const char *instance;
    bool attached;
    bool connected;        /* delivering: no lag, or an ack within the
                              last SC_SINK_STALLED_MS (or the instance
                              said so with sc_sink_set_state) */
    const char *last_error;/* "" if none */
    const char *channel;   /* NULL for the per-instance line */
    uint64_t head;         /* channel head in the journal */
    uint64_t acked;        /* durable cursor */
    uint64_t lag;          /* head - acked (instance line: the sum) */
    uint64_t inflight;
} sc_sink_status_t;
typedef void (*sc_sink_status_fn)(void *arg, const sc_sink_status_t *st);
void sc_sink_status(sc_sink_feeder_t *f, sc_sink_status_fn fn, void *arg);

/* The feeder the plugin host attaches sinks to (set by the broker; NULL
 * in a plugin child process, where sinks are not available). */
void sc_sink_set_global(sc_sink_feeder_t *f);
sc_sink_feeder_t *sc_sink_global(void);

#endif
