/*
 * sk_sector.h - a whole sector plugin from its sk_sector_t.
 *
 * A sector plugin's own file is its schema and channel mapping plus this:
 *
 *     static int my_init(sc_host_t *h, const sc_host_api_t *api, void **st)
 *     { return sk_sector_init(&my_sector, h, api, st); }
 *
 *     static const sc_plugin_t my_plugin = {
 *         .abi_version = SC_PLUGIN_ABI_VERSION, .name = "semis_ai", ...,
 *         .settings = sk_sector_settings, .init = my_init,
 *         .fini = sk_sector_fini, .check = sk_sector_check,
 *     };
 *
 * Owns the instance's life: the settings, the grants, the loop (a poll
 * timer that works alone, plus inotify on the register directory when the
 * host offers fd watches), and publishing: each scan that changed the
 * register runs the task/standard diff (sk_known) and the alert rules
 * (sk_alerts), and a publish that failed for now is retried at the next
 * poll.
 */
#ifndef SK_SECTOR_H
#define SK_SECTOR_H

#include <sectorcast/plugin.h>
#include "sk.h"

/* The settings every sector plugin takes (docs/sectors.md):
 * register_dir, poll_interval_ms, publish_on_start, alert_rules,
 * alert_sender. */
extern const sc_setting_def_t sk_sector_settings[];

/* check() of a sector plugin: what the table cannot say (register_dir is
 * a directory, alert_sender can be a CAP sender, the alert rules' levels,
 * clear band and series ids), each reported with setting_problem(). */
int sk_sector_check(sc_host_t *host, const sc_host_api_t *api);

/* init() and fini() of a sector plugin. `sector` must be static. */
int sk_sector_init(const sk_sector_t *sector, sc_host_t *host,
                   const sc_host_api_t *api, void **state);
void sk_sector_fini(sc_host_t *host, void *state);

#endif
