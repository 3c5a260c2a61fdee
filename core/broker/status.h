/*
 * status.h - what the running broker is doing, as a thread-safe snapshot
 * for sectorcast-ctl (control.c), /api/status and /healthz (http.c).
 *
 * Owns plain copies of the facts the other modules report through small
 * hooks: broker info, per-channel heads and counts, per-connection agency
 * subscriptions, plugin states and crash history, journal health. Readers
 * on other threads get JSON; the hooks, which the core thread calls, only
 * copy a few numbers under one mutex (channels and plugins are found by
 * an index, not a scan), and a reader holds that mutex only to copy the
 * channels (their JSON is built after it) and to build the small parts
 * (plugins, agencies in one pass over the connections, health), never
 * for I/O (the journal's size is stat'ed outside it). Never decides
 * anything: it only remembers and tells.
 *
 * Bounds: SC_STATUS_MAX_CHANNELS (4096) channels, SC_STATUS_MAX_PLUGINS
 * (256) plugins, SC_STATUS_MAX_CONNS (65536) connections; past a bound new
 * entries are not tracked here (metrics still count them) and
 * "untracked" in the status JSON says how many were left out.
 */
#ifndef SC_STATUS_H
#define SC_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SC_BROKER_VERSION "0.1.0"

#define SC_STATUS_MAX_CHANNELS 4096
#define SC_STATUS_MAX_PLUGINS 256
#define SC_STATUS_MAX_CONNS 65536
/* a plugin that crashed this often within the window makes /healthz 503 */
#define SC_STATUS_CRASHES 3
#define SC_STATUS_CRASH_WINDOW_S 60

typedef struct sc_status sc_status_t;

/* Every function accepts a NULL status (and then does nothing). */
sc_status_t *sc_status_new(void);
void sc_status_destroy(sc_status_t **s_p);

/* Broker facts; called at start and after each reload (copies cfg data). */
void sc_status_set_config(sc_status_t *s, const sc_config_t *cfg,
                          const char *epoch);
/* The journal accepted (error NULL) or refused a write. */
void sc_status_journal_result(sc_status_t *s, const char *error);

/* A channel's head as found in the journal at start. */
void sc_status_channel_head(sc_status_t *s, const char *channel,
                            uint64_t head);
/* `n` messages of `plugin` on `channel` signed, journaled and sent,
 * `bytes` in all; `head` the last one's seq. */
void sc_status_published(sc_status_t *s, const char *channel,
                         const char *plugin, uint64_t head, uint64_t n,
                         size_t bytes);
/* A publish of `plugin` refused (by the plugin host or the core). */
void sc_status_refused(sc_status_t *s, const char *plugin);

/* Subscriptions on connection `fd` (of agency `agency`). */
void sc_status_subscribed(sc_status_t *s, int fd, const char *agency,
                          const char *subtree);
void sc_status_unsubscribed(sc_status_t *s, int fd, const char *subtree);
void sc_status_sub_refused(sc_status_t *s, const char *agency);
void sc_status_conn_closed(sc_status_t *s, int fd);

/* Plugin lifecycle: state is "running", "stopped", "crashed",
 * "restarting", "failed" (could not start). pid 0 = in-process. Returns
 * true when this "running" is a restart (the plugin had run before). */
bool sc_status_plugin(sc_status_t *s, const char *name, const char *state,
                      int pid, const char *error);
void sc_status_plugin_crashed(sc_status_t *s, const char *name,
                              const char *error);
/* Forget plugins not in cfg (after a reload). */
void sc_status_plugins_prune(sc_status_t *s, const sc_config_t *cfg);

/* JSON views (new references; NULL when out of memory). */
json_t *sc_status_json_status(sc_status_t *s);
json_t *sc_status_json_channels(sc_status_t *s);
json_t *sc_status_json_agencies(sc_status_t *s);
json_t *sc_status_json_plugins(sc_status_t *s);
/* {"status": .., "channels": .., "agencies": .., "plugins": ..,
 *  "warnings": [..], "health": {..}} */
json_t *sc_status_json_all(sc_status_t *s);
/* {"ok": bool, "problems": ["..."]}; *ok set too. */
json_t *sc_status_health(sc_status_t *s, bool *ok);

#endif
