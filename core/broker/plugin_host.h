/*
 * plugin_host.h - runs a plugin instance of the broker on a thread of its
 * own (or, in a plugin child process, the child's one instance).
 *
 * Owns: the thread, the ZeroMQ socket of the instance towards the core,
 * where the one plugin host (core/host/host.h) sends a checked publish or
 * a state write (a frame of core/host/frame.h), the durable-state reads
 * (read-only journal connection + the instance's own writes), and the
 * queue of sink messages the core hands to the instance.
 * Each instance owns one socket connected to the core and never touches
 * another thread's socket. Never signs, sequences or journals: that is
 * the core's job. Handshake, argument checks and the event loop are
 * core/host/host.c, the same code the plugin test kit runs.
 *
 * Wire (thread -> core, inproc PUSH): [instance name][frame]; the core
 * trusts the name (threads are the broker's own code).
 * Wire (child -> core, ipc DEALER with the child's credential as routing
 * id): [frame]; the core finds the instance from the routing id, never
 * from the frame, and answers ACK / sends PING and SINK_MSG frames back.
 */
#ifndef SC_PLUGIN_HOST_H
#define SC_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#include "config.h"
#include "host/host.h"

/* A plugin child's frames in flight: a child's publish or sink ack
 * returns once its frame is sent, and blocks while this many frames await
 * the core's ACK (one per frame, sent after the frame's group is
 * committed, or at once if refused); a state write returns once it and
 * every frame before it are ACKed.
 * A stopping child waits up to SC_PLUGIN_CHILD_DRAIN_MS for the ACKs of
 * what it sent (the supervisor kills it after 5 s). */
#define SC_PLUGIN_CHILD_WINDOW 64
#define SC_PLUGIN_CHILD_WINDOW_MAX 256 /* config publish_window: 1..this */
#define SC_PLUGIN_CHILD_DRAIN_MS 3000

/* What the core's ROUTER towards the children holds for one child that
 * does not read (ZMQ_SNDHWM; ZMQ_ROUTER_MANDATORY makes a full pipe an
 * error, never a silent drop): room for every frame the core can owe or
 * offer it at once: the ACKs of its window (SC_PLUGIN_CHILD_WINDOW_MAX),
 * the sink frames the feeder keeps in flight to a child
 * (SC_SINK_RELAY_MAX, sink_relay.h) and the pings of the time it may stay
 * silent before it is killed (5 at one a second, supervisor.c), with room
 * to spare. So an ACK is never refused for a full pipe, and a child's
 * window never loses a slot while it lives (broker.c checks the sum at
 * compile time). */
#define SC_PLUGIN_CHILD_SNDHWM 1024
#define SC_PLUGIN_CHILD_PINGS_MAX 16

/* Replies of the core to an acked frame (ACK status). */
#define SC_PUB_ACK_OK "ok"
#define SC_PUB_ACK_REFUSED "refused"

/* A loaded (not yet running) plugin library. */
typedef sc_host_lib_t sc_plugin_lib_t;

/* dlopen `path` and perform the handshake (core/host). 0 or -1 + err. */
int sc_plugin_lib_open(const char *path, sc_plugin_lib_t *lib, char *err,
                       size_t errlen);
void sc_plugin_lib_close(sc_plugin_lib_t *lib);

typedef struct sc_plugin_inst sc_plugin_inst_t;

/* What an instance runs with (sc_plugin_start). */
typedef struct sc_plugin_start_opts {
    /* the config entry (copied; settings already validated and the
     * plugin's check() already run, by host/settings.c) */
    const sc_cfg_plugin_t *cfg;
    int64_t max_data_bytes;
    void *zctx;                /* the ZeroMQ context */
    /* the core's inproc PULL (threads) or ipc ROUTER (children, acked) */
    const char *core_endpoint;
    const char *state_db;      /* the journal database (read-only here) */
    bool acked;                /* a child: every frame is ACKed */
    const char *routing_id;    /* the child's credential (acked only) */
    /* a socket and a state connection opened beforehand, owned by the
     * instance from now on (also on failure): a child that drops its
     * privileges opens them first (sc_plugin_child_connect,
     * sc_plugin_state_open + sc_plugin_state_warm). NULL: opened here. */
    void *sock;
    void *db;
} sc_plugin_start_opts_t;

/* Start an instance of `lib` (ownership moves to the instance). Runs the
 * plugin's init() on the new thread; a failure ends the thread (see
 * sc_plugin_exited). NULL + err if it cannot start at all. */
sc_plugin_inst_t *sc_plugin_start(sc_plugin_lib_t *lib,
                                  const sc_plugin_start_opts_t *o, char *err,
                                  size_t errlen);
/* A child's DEALER towards the core's ipc ROUTER, connected (waits up to
 * timeout_ms for the connection to exist). NULL + err. */
void *sc_plugin_child_connect(void *zctx, const char *core_endpoint,
                              const char *routing_id, int timeout_ms,
                              char *err, size_t errlen);
/* A read-only connection to the state database (an sqlite3 *), and a
 * first read that opens its WAL files. NULL/-1 + err. */
void *sc_plugin_state_open(const char *path, char *err, size_t errlen);
int sc_plugin_state_warm(void *db, char *err, size_t errlen);

/* Ask the instance to stop (non-blocking). */
void sc_plugin_request_stop(sc_plugin_inst_t *p);
/* true once the instance's thread has finished (fini done). */
bool sc_plugin_exited(const sc_plugin_inst_t *p);
/* true once init() returned SC_OK; false while starting or if it failed */
bool sc_plugin_running(const sc_plugin_inst_t *p);
/* Wait up to timeout_ms for init() to finish. 1 = running, 0 = failed
 * (the thread ended), -1 = still in init. */
int sc_plugin_wait_started(sc_plugin_inst_t *p, int timeout_ms);
/* Join (waiting at most timeout_ms) and free. Returns false if the thread
 * did not finish in time: it is then abandoned (never unloaded). */
bool sc_plugin_destroy(sc_plugin_inst_t **p_p, int timeout_ms);

const char *sc_plugin_name(const sc_plugin_inst_t *p);

/* Counters, readable from any thread. */
uint64_t sc_plugin_published(const sc_plugin_inst_t *p);
uint64_t sc_plugin_refused(const sc_plugin_inst_t *p);

/* ------------------------------------------------------------------ */
/* sinks (for core/broker/sink.*)                                      */
/*
 * A plugin registers SC_CAP_SINK from init(); the host keeps its
 * sc_sink_def_t. The core then feeds it:
 *
 *   sc_plugin_is_sink(p)         the instance registered as a sink
 *   sc_plugin_sink_deliver(p, m) from the core thread, never blocks:
 *                                copies m into the instance's queue
 *                                (bounded: SC_PLUGIN_SINK_WINDOW messages
 *                                not yet taken by the plugin) and wakes
 *                                its thread, which calls the plugin's
 *                                deliver(). SC_OK; SC_ERR_LIMIT when the
 *                                queue is full (offer it again later);
 *                                SC_ERR_UNSUPPORTED if not a sink;
 *                                SC_ERR_STOPPING.
 *   acks                         sink_ack(channel, seq) of the plugin
 *                                travels to the core as a SINK_ACK frame
 *                                (SINK_NACK when deliver() returned
 *                                SC_ERR_LIMIT: the feeder offers that seq
 *                                again later, and until it does, later
 *                                messages of that channel are dropped
 *                                here so the plugin sees it in order;
 *                                children also get SINK_LOST frames,
 *                                see sink_relay.h); the core calls
 *                                sc_plugin_sink_acked(), which calls the
 *                                callback set with
 *                                sc_plugin_set_sink_ack_cb() on the core
 *                                thread, with the instance name from the
 *                                core's own knowledge of the sender.
 * The feeder keeps count of delivered-but-unacknowledged messages per
 * instance (max_inflight of the def) from these callbacks.
 */
#define SC_PLUGIN_SINK_WINDOW 256

bool sc_plugin_is_sink(const sc_plugin_inst_t *p);
int sc_plugin_sink_deliver(sc_plugin_inst_t *p, const sc_sink_msg_t *msg);
/* Same queue: a notice that first..last of channel were lost (retention);
 * the plugin thread calls the def's lost(). Best effort (SC_ERR_LIMIT when
 * the queue is full: the feeder has logged the range anyway). */
int sc_plugin_sink_lost(sc_plugin_inst_t *p, const char *channel,
                        const char *epoch, uint64_t first, uint64_t last);

typedef void (*sc_sink_ack_fn)(void *arg, const char *instance,
                               const char *channel, uint64_t acked_seq,
                               uint64_t refused_seq);
/* One callback for the broker (set once, before plugins start). */
void sc_plugin_set_sink_ack_cb(sc_sink_ack_fn fn, void *arg);
/* Called by the core when it reads a SINK_ACK frame (or a refusal) of
 * `instance`: updates the window and calls the callback. */
void sc_plugin_sink_acked(const char *instance, const char *channel,
                          uint64_t acked_seq, uint64_t refused_seq);

#endif
