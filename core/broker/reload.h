/*
 * reload.h - preparing a reloaded configuration (SIGHUP).
 *
 * Owns everything a reload does before the core swaps: loading and
 * checking the config file and its plugins' settings, refusing changes
 * that need a restart, building the new access table and keyring, writing
 * the JWKS, and logging what changed. Touches no socket, no journal and no
 * running state, so it may run on any thread; the core swaps the result
 * in (sc_broker) and frees what it replaced.
 */
#ifndef SC_RELOAD_H
#define SC_RELOAD_H

#include "access.h"
#include "config.h"
#include "keyring.h"

typedef struct sc_reload {
    sc_config_t *cfg;
    sc_access_t *access;
    sc_access_t *service_access; /* the service thread's own copy */
    sc_keyring_t *keyring;
} sc_reload_t;

/* Load `path` and prepare what the core will swap in. `running` is the
 * configuration in use (read only; it must not change meanwhile). NULL
 * when the reload is refused (the reason is logged). */
sc_reload_t *sc_reload_prepare(const char *path, const sc_config_t *running);

/* Log what changed between `old` and `n` outside the plugins. */
void sc_reload_report(const sc_config_t *old, const sc_config_t *n);

void sc_reload_free(sc_reload_t **r_p);

#endif
