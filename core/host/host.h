/*
 * host.h - the one plugin host: what a sector plugin sees of sectorcast.
 *
 * Owns: loading a plugin .so and the handshake (ABI 1 and ABI 2 layouts,
 * the descriptor's size field: a private copy of the descriptor with the
 * members the plugin's build lacks zeroed), the host function table and
 * the check of every host-API argument (the refusal codes and texts),
 * capability registration, and
 * the instance's event loop (timers, fd watches, a wake pipe for stop
 * requests from other threads).
 *
 * Three users: the broker's plugin threads (core/broker/plugin_host.c),
 * the `isolation = "process"` child (core/broker/supervisor.c) and the
 * plugin test kit (core/plugintest/). They differ only in the
 * sc_host_ops_t they give: where a checked publish, a state write or read
 * and a log line go. Settings are the settings engine's (host/settings.h:
 * validation, getters, and the one check-mode host table that runs the
 * plugin's check() before any instance exists); the host's getters call
 * it. This host only ever runs init(), the loop and fini().
 *
 * Never: ZeroMQ, the journal, signing, config files, threads (the caller
 * runs the loop on the thread it chose; every host call must come from
 * that thread, except sc_host_stop()).
 */
#ifndef SC_HOST_HOST_H
#define SC_HOST_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#include "host/settings.h"

/* Limits, the same for every user. */
#define SC_HOST_MAX_TIMERS 256
#define SC_HOST_MAX_WATCHES 64
#define SC_HOST_MAX_KIND 64
#define SC_HOST_MAX_KEY 256
#define SC_HOST_STATE_MAX_KEY 256
#define SC_HOST_STATE_MAX_VALUE (1024 * 1024)

/* ------------------------------------------------------------------ */
/* loading                                                             */

/* A loaded plugin library, descriptor normalized to this build's layout. */
typedef struct sc_host_lib {
    void *dl;
    char *path;
    uint32_t abi;            /* the plugin's ABI version */
    sc_plugin_t desc;        /* copy: members the plugin's size does not
                                cover are zero; abi_version, size and
                                setting_def_size as the plugin's build
                                (the settings engine reads the table with
                                that stride) */
} sc_host_lib_t;

/* dlopen `path`, call sc_plugin_entry(offer_abi) and check the
 * descriptor. Refusals (err names the file): not found, not a regular
 * file, cannot load, no entry symbol, entry returned NULL, ABI not spoken,
 * descriptor too small or malformed (name/init missing, reserved fields
 * set, settings table stride too small).
 * 0 or -1. */
int sc_host_lib_open(const char *path, uint32_t offer_abi,
                     sc_host_lib_t *lib, char *err, size_t errlen);
void sc_host_lib_close(sc_host_lib_t *lib);

/* ------------------------------------------------------------------ */
/* an instance                                                         */

typedef struct sc_host sc_host_inst_t; /* = the plugin's sc_host_t */

/* A publish that passed every check of the host: `data_text` is one JSON
 * object (common/jsoncheck.h); the envelope is built around this text, so
 * a publish's JSON is checked once and never parsed again. */
typedef struct sc_host_pub {
    const char *channel;
    const char *kind;
    const char *key;        /* NULL = none */
    const char *data_text;  /* as the plugin passed it */
    size_t data_len;
} sc_host_pub_t;

/* Where things go. Every member may be NULL (then the call is refused
 * with SC_ERR_UNSUPPORTED, or the line dropped). `ctx` is the user's. */
typedef struct sc_host_ops {
    /* a checked publish; SC_OK or SC_ERR_* (the host logs a refusal) */
    int (*publish)(void *ctx, const sc_host_pub_t *pub);
    /* durable state of this instance (arguments already checked) */
    int (*state_get)(void *ctx, const char *key, char **value);
    int (*state_put)(void *ctx, const char *key, const char *value);
    int (*state_foreach)(void *ctx, const char *prefix,
                         int (*fn)(void *arg, const char *key,
                                   const char *value),
                         void *arg);
    /* one formatted line (from_host: written by the host about the
     * plugin, e.g. a refusal) */
    void (*log)(void *ctx, sc_log_level_t level, bool from_host,
                const char *text);
    /* a problem with one setting reported from init(): "FILE:LINE:
     * plugin 'x': setting 'y': text" (NULL: logged from_host) */
    void (*setting_problem)(void *ctx, const char *file, int line,
                            const char *msg);
    /* sink: cumulative ack (channel valid, seq > 0) */
    int (*sink_ack)(void *ctx, const char *channel, uint64_t seq);
    /* the plugin asked to stop, or the loop failed */
    void (*stopped)(void *ctx, const char *reason);
} sc_host_ops_t;

typedef struct sc_host_conf {
    const char *name;          /* instance name */
    const sc_settings_t *settings; /* resolved (host/settings.h), borrowed:
                                  must outlive the instance; NULL = none */
    const char *const *channels; /* granted subtrees (ending in '.') */
    size_t n_channels;
    int64_t max_data_bytes;    /* publish data limit */
    uint32_t abi;              /* ABI offered (0 = SC_PLUGIN_ABI_VERSION) */
    size_t api_size;           /* 0 = the whole table; else pretend to be
                                  an older host (members past it NULL) */
    bool sink_capable;         /* this host can feed a sink */
    size_t max_channels;       /* distinct channels it may publish to in
                                  one run (0 = no limit) */
} sc_host_conf_t;

/* New instance of `lib` (moved into it). NULL + err on failure. */
sc_host_inst_t *sc_host_new(sc_host_lib_t *lib, const sc_host_conf_t *conf,
                            const sc_host_ops_t *ops, void *ctx, char *err,
                            size_t errlen);
/* On the plugin's thread: call fini() if init succeeded (once). */
void sc_host_finish(sc_host_inst_t *h);
/* Calls fini() if init succeeded and not yet finished, unloads, frees. */
void sc_host_destroy(sc_host_inst_t **h_p);

const sc_host_lib_t *sc_host_lib(const sc_host_inst_t *h);
const char *sc_host_name(const sc_host_inst_t *h);
const sc_host_api_t *sc_host_api(sc_host_inst_t *h);
void *sc_host_plugin_state(const sc_host_inst_t *h);

/* Call init(). SC_OK or its code; a failure is logged ("plugin init
 * failed: TEXT (CODE)") and what it left registered is dropped. */
int sc_host_init(sc_host_inst_t *h);

/* The loop. Poll the watched fds (and `extra_fd` if >= 0, whose readiness
 * is returned in *extra_ready) for at most `max_wait_ms` (-1 = until the
 * next timer), run the callbacks of ready fds, then the due timers.
 * Returns the number of callbacks run, or -1 on a poll failure. */
int sc_host_run_once(sc_host_inst_t *h, int max_wait_ms, int extra_fd,
                     bool *extra_ready);
/* Fire every timer now (test kit). Returns the number fired. */
int sc_host_fire_timers(sc_host_inst_t *h);
size_t sc_host_timer_count(const sc_host_inst_t *h);
size_t sc_host_watch_count(const sc_host_inst_t *h);

/* Refused publishes (any thread may read) and the code of the last. */
uint64_t sc_host_refused(const sc_host_inst_t *h);
int sc_host_last_refusal(const sc_host_inst_t *h);
/* The channel of the last refused publish ("" when it was not a channel
 * name) and the length of its data (0 if none); the plugin's thread only
 * (e.g. from the log callback of that refusal). */
const char *sc_host_last_refused_channel(const sc_host_inst_t *h,
                                         size_t *bytes);
void sc_host_reset_refusals(sc_host_inst_t *h);
/* Before init: change the publish size limit / pretend to be an older
 * host whose table ends at `bytes` (members past it NULL). */
void sc_host_set_max_data(sc_host_inst_t *h, int64_t max_bytes);
/* Before init: the resolved settings the getters read (borrowed). */
void sc_host_set_settings(sc_host_inst_t *h, const sc_settings_t *s);
const char *const *sc_host_channels(const sc_host_inst_t *h);
size_t sc_host_channel_count(const sc_host_inst_t *h);
void sc_host_set_api_size(sc_host_inst_t *h, size_t bytes);

/* Ask the loop to stop; callable from any thread. */
void sc_host_stop(sc_host_inst_t *h);
bool sc_host_stopping(const sc_host_inst_t *h);
/* The reason given to request_stop(), or NULL. */
const char *sc_host_stop_reason(const sc_host_inst_t *h);

/* Text of an SC_ERR_* code (the table's strerror). */
const char *sc_host_strerror(int code);

/* ------------------------------------------------------------------ */
/* sinks                                                               */

/* The sink definition the instance registered (copy), or NULL. */
const sc_sink_def_t *sc_host_sink(const sc_host_inst_t *h);
/* On the plugin's thread: hand one message to the sink's deliver().
 * Returns its result (SC_OK / SC_ERR_LIMIT) or SC_ERR_UNSUPPORTED; or
 * SC_HOST_SINK_HELD without calling deliver() while the def's
 * max_inflight messages are delivered and not acknowledged (sinkwin.h):
 * keep the message and offer it again after the plugin's next sink_ack
 * (the plugin acknowledges on its own thread, so after any of its
 * callbacks). A max_inflight of 0 sets no window here. */
#define SC_HOST_SINK_HELD 1
int sc_host_sink_deliver(sc_host_inst_t *h, const sc_sink_msg_t *msg);
/* On the plugin's thread: tell the sink that first..last of channel can
 * no longer be delivered (the def's lost(), if any). */
void sc_host_sink_lost(sc_host_inst_t *h, const char *channel,
                       const char *epoch, uint64_t first, uint64_t last);

/* ------------------------------------------------------------------ */
/* checks shared with the core (the same rules everywhere)            */

bool sc_host_kind_valid(const char *kind);
bool sc_host_key_valid(const char *key);
bool sc_host_state_key_valid(const char *key);
bool sc_host_subtree_valid(const char *subtree);
/* 1 if `channel` (a name) is under one of the granted subtrees. */
bool sc_host_granted(const char *const *channels, size_t n,
                     const char *channel);

#endif
