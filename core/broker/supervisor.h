/*
 * supervisor.h - which plugin instances run, and keeping them running.
 *
 * Owns the set of plugin instances: starting them from a config, applying
 * a reloaded config (start added plugins, stop removed ones, restart only
 * those whose entry or .so file changed), and, for plugins configured with
 * isolation = "process", the child processes that host them: spawning
 * (with the running config's entry and a per-child credential; as the
 * entry's unprivileged `user` if any), reaping,
 * liveness pings, and restarting a crashed or hung child with exponential
 * backoff. Never loads an isolated plugin into this process.
 * Never touches the journal or the publish socket: while it waits for
 * plugins to stop it calls the core's drain callback so that nothing a
 * plugin was told was accepted is lost.
 */
#ifndef SC_SUPERVISOR_H
#define SC_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct sc_supervisor sc_supervisor_t;

/* Called while waiting for plugins to stop: take and process their
 * pending publishes. */
typedef void (*sc_drain_fn)(void *arg);

/* inproc_ep: the core's PULL endpoint for in-process plugins; ipc_ep: the
 * core's PULL endpoint for child processes (NULL if none can be offered);
 * self_exe: path of the sectorcastd binary, for spawning children. */
sc_supervisor_t *sc_supervisor_new(void *zctx, const char *inproc_ep,
                                   const char *ipc_ep, const char *self_exe,
                                   sc_drain_fn drain, void *drain_arg);

/* Make the running set match `cfg` (which must stay alive until the next
 * apply or destroy). The first call starts everything. Logs what changed.
 * Returns the number of plugins started or restarted. */
int sc_supervisor_apply(sc_supervisor_t *sv, sc_config_t *cfg);

/* After an apply: how many plugins were kept running untouched, and how
 * many new or restarted instances failed to start (a plugin, thread or
 * child, whose new instance fails init() is restarted on its previous
 * entry). */
void sc_supervisor_last_apply(const sc_supervisor_t *sv, int *kept,
                              int *failed);
/* Hand over the previous configuration after an apply: freed at once
 * unless a plugin fell back to one of its entries, then kept until no
 * plugin uses it (freed by a later adopt or by destroy). */
void sc_supervisor_adopt(sc_supervisor_t *sv, sc_config_t *old);

/* Reap exited children (call on SIGCHLD) and restart due ones. */
void sc_supervisor_tick(sc_supervisor_t *sv);
/* Milliseconds until the next scheduled restart, or -1. */
long sc_supervisor_next_wake_ms(const sc_supervisor_t *sv);

/* The running configuration's entry of thread plugin `name` (the sender
 * of an inproc frame), or NULL. */
const sc_cfg_plugin_t *sc_supervisor_plugin(const sc_supervisor_t *sv,
                                            const char *name);
/* The entry of the running child whose credential (routing id) is `rid`,
 * or NULL: frames from children are attributed by this, never by what
 * they say. */
const sc_cfg_plugin_t *sc_supervisor_child(const sc_supervisor_t *sv,
                                           const void *rid, size_t len);
/* The core's ROUTER socket towards children (liveness pings, core thread
 * only) and the PONG a child answered with. A child silent for 5 s is
 * killed and restarted with backoff. */
void sc_supervisor_set_ipc_socket(sc_supervisor_t *sv, void *sock);
void sc_supervisor_pong(sc_supervisor_t *sv, const void *rid, size_t len,
                        uint64_t nonce);
/* Sinks in child processes: the fd to poll (readable when the sink feeder
 * queued frames for a child) and the call that sends them on the ROUTER
 * (core thread, never blocks; what a child cannot take yet is retried
 * within sc_supervisor_next_wake_ms). */
int sc_supervisor_sink_fd(const sc_supervisor_t *sv);
void sc_supervisor_sink_flush(sc_supervisor_t *sv);

/* true if plugin instance `name` (as configured now) may publish on
 * `channel` (NULL: if such a plugin is configured at all): re-checks
 * messages arriving from child processes. */
bool sc_supervisor_may_publish(const sc_supervisor_t *sv, const char *name,
                               const char *channel);

/* Stop plugin `name` (draining meanwhile) and start it again with its
 * current entry (sectorcast-ctl plugin restart). 0, or -1 with err. */
int sc_supervisor_restart(sc_supervisor_t *sv, const char *name, char *err,
                          size_t errlen);

/* Stop everything (draining meanwhile) and free. */
void sc_supervisor_destroy(sc_supervisor_t **sv_p);

/* true if a plugin thread had to be abandoned (the ZeroMQ context must
 * then not be terminated). */
bool sc_supervisor_abandoned(const sc_supervisor_t *sv);

/* Become `user` (a plugin entry's `user`) for good: its groups, gid and
 * uid; fails if root could be regained. 0 or -1 + err. */
int sc_supervisor_drop_user(const char *user, char *err, size_t errlen);

/* Entry point of a plugin child process (sectorcastd --plugin-child NAME
 * --core EP --child-fd FD): reads its configuration entry and credential
 * from FD (JSON written by the supervisor: the running configuration,
 * never the file), loads the plugin, checks its settings, runs it. */
int sc_supervisor_child_main(const char *name, const char *core_ep,
                             int conf_fd);

#endif
