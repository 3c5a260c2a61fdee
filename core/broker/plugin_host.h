/*
 * plugin_host.h - loads sector plugins and runs each on a thread of its own.
 *
 * Owns: dlopen and the ABI handshake, the host function table handed to a
 * plugin, the plugin's event loop (timers, fd watches), and the checks a
 * publish must pass before it leaves the plugin's thread (grant, JSON, size).
 * Each instance owns one ZeroMQ PUSH socket connected to the core's inproc
 * PULL socket; it never touches another thread's socket. Never signs,
 * sequences or journals: that is the core's job.
 */
#ifndef SC_PLUGIN_HOST_H
#define SC_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#include "config.h"

/* Replies of the core to an acked publish (one frame). */
#define SC_PUB_ACK_OK "ok"
#define SC_PUB_ACK_REFUSED "refused"

/* A durable-state write travels on the same socket, as 4 frames:
 * [instance name]["state"][key]['v' + value | "d" (delete)]; the core
 * applies it in the journal transaction of the publishes before it. */
#define SC_STATE_FRAMES 4

/* Frames of a publish on the inproc socket into the core. */
enum {
    SC_PUB_F_PLUGIN = 0, /* instance name */
    SC_PUB_F_SECTOR,     /* sector name */
    SC_PUB_F_CHANNEL,    /* channel name */
    SC_PUB_F_KIND,
    SC_PUB_F_KEY,        /* 'k' + key, or "n" for no key */
    SC_PUB_F_DATA,       /* JSON object text, already validated */
    SC_PUB_FRAMES
};

/* A loaded (not yet running) plugin library. */
typedef struct sc_plugin_lib {
    void *dl;
    const sc_plugin_t *desc;
    char *path;
} sc_plugin_lib_t;

/* dlopen `path` and perform the handshake. Refuses, with err naming the
 * file: missing file, not a shared object, no sc_plugin_entry symbol,
 * entry returned NULL, ABI version not spoken by this host, malformed
 * descriptor. 0 or -1. */
int sc_plugin_lib_open(const char *path, sc_plugin_lib_t *lib, char *err,
                       size_t errlen);
void sc_plugin_lib_close(sc_plugin_lib_t *lib);

typedef struct sc_plugin_inst sc_plugin_inst_t;

/* Start an instance of `lib` (ownership of lib moves to the instance) for
 * the config entry `cfg` (copied; settings must already be validated with
 * sc_config_check_plugin_settings). `zctx` is the broker's ZeroMQ context
 * and `core_endpoint` the inproc endpoint of the core's PULL socket.
 * `state_db` is the journal database, which holds the durable plugin
 * state (read-only here; writes go through the core). `acked`: publish over a DEALER socket
 * and return only once the core confirms the message is journaled (used
 * by plugin child processes, whose queued messages would die with them);
 * otherwise a PUSH socket whose queue lives as long as the broker. */
sc_plugin_inst_t *sc_plugin_start(sc_plugin_lib_t *lib,
                                  const sc_cfg_plugin_t *cfg,
                                  int64_t max_data_bytes, void *zctx,
                                  const char *core_endpoint,
                                  const char *state_db, bool acked,
                                  char *err, size_t errlen);

/* Ask the instance to stop (non-blocking). */
void sc_plugin_request_stop(sc_plugin_inst_t *p);
/* true once the instance's thread has finished (fini done). */
bool sc_plugin_exited(const sc_plugin_inst_t *p);
/* Join (waiting at most timeout_ms) and free. Returns false if the thread
 * did not finish in time: it is then abandoned (never unloaded). */
bool sc_plugin_destroy(sc_plugin_inst_t **p_p, int timeout_ms);

const char *sc_plugin_name(const sc_plugin_inst_t *p);

/* Counters, readable from any thread. */
uint64_t sc_plugin_published(const sc_plugin_inst_t *p);
uint64_t sc_plugin_refused(const sc_plugin_inst_t *p);

#endif
