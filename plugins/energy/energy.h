/*
 * energy.h - what the energy plugin's modules share: the logging handle
 * and the kinds of register entries.
 *
 * Modules: entry.c (the schema of one entry and the event kinds),
 * register.c (the register directory: files, change detection, last good
 * content, the merged view), known.c (what was last published per id and
 * the diff that turns a new view into events), energy.c (the plugin: ABI
 * entry, settings, timers, inotify, publishing).
 */
#ifndef EN_ENERGY_H
#define EN_ENERGY_H

#include <stddef.h>
#include <sectorcast/plugin.h>

/* Where modules log to: the host's log under the instance's name. */
typedef struct en_log {
    sc_host_t *host;
    const sc_host_api_t *api;
} en_log_t;

#define EN_LOG(lg, level, ...) \
    ((lg)->api->log((lg)->host, (level), __VA_ARGS__))

/* The two kinds of register entries. */
typedef enum en_kind {
    EN_TASK = 0,
    EN_STANDARD = 1
} en_kind_t;

#define EN_KINDS 2

#endif
