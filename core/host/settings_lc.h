/*
 * settings_lc.h - libconfig to settings tree: turns a libconfig group into
 * the plain-C sc_sv_t of the settings engine (host/settings.h), keeping
 * each value's line.
 *
 * Owns the mapping of libconfig types (group, list, array, int, int64,
 * float, bool, string) to sc_sv_t kinds. Never validates (the engine does).
 * The only place besides config.c where a libconfig type is seen.
 */
#ifndef SC_HOST_SETTINGS_LC_H
#define SC_HOST_SETTINGS_LC_H

#include <libconfig.h>
#include "host/settings.h"

/* The tree of group `g` (a GROUP). NULL if out of memory. */
sc_sv_t *sc_sv_from_config(const config_setting_t *g);

#endif
