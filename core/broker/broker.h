/*
 * broker.h - the core of sectorcastd.
 *
 * Owns the core thread: the ZeroMQ context, the ZAP handler, the publish
 * (XPUB) socket, the inproc PULL socket that plugin threads publish into,
 * the pipeline validate -> sequence -> sign -> journal -> send, and the
 * plugin instances' lifecycle. SIGTERM, SIGINT, SIGHUP and SIGCHLD arrive
 * through a signalfd: sc_broker_new() blocks them in the calling thread
 * before it starts any other, so call it before creating threads.
 */
#ifndef SC_BROKER_H
#define SC_BROKER_H

#include <stddef.h>

#include "config.h"
#include "diag.h"

typedef struct sc_broker sc_broker_t;

/* Build a broker from a loaded config (ownership of *cfg_p moves to the
 * broker). Opens keys, journal and sockets and starts the plugins; a
 * plugin that cannot be loaded is logged and skipped, the others run.
 * NULL on failure with err filled. */
sc_broker_t *sc_broker_new(sc_config_t **cfg_p, char *err, size_t errlen);

/* Run until SIGTERM/SIGINT. 0 on a clean stop, -1 on a fatal error. */
int sc_broker_run(sc_broker_t *b);

void sc_broker_destroy(sc_broker_t **b_p);

/* Load the plugin libraries named in cfg and validate each plugin's
 * settings against its declared table, appending FILE:LINE problems to
 * diag (used by --check and by sc_broker_new). Returns the number of
 * plugins with problems. */
int sc_broker_check_plugins(sc_config_t *cfg, sc_diag_t *diag);
/* The same, every plugin in a child process of its own (`sectorcastd
 * --check-plugin NAME`), none loaded here: for a running broker
 * (sectorcast-ctl check), so no plugin's check() runs in the process
 * where its own instance is running. */
int sc_broker_check_plugins_apart(sc_config_t *cfg, sc_diag_t *diag);
/* Load and check only plugin `name`, in this process (the child of
 * `sectorcastd --check-plugin NAME`). */
int sc_broker_check_one_plugin(sc_config_t *cfg, const char *name,
                               sc_diag_t *diag);

#endif
