/*
 * energy.c - the energy sector plugin: hydrogen, nuclear/SMR and LNG
 * cooperation tasks, standards work items and supply-chain indicators,
 * read from a register directory of JSON files.
 *
 * Channels: energy.<subsector>.tasks, energy.<subsector>.standards and
 * energy.<subsector>.alerts for <subsector> in hydrogen, nuclear, lng.
 * Everything else (register, diff, durable state, alert rules, the loop)
 * is the sector kit in plugins/shared/; this file is the sector's schema
 * and channel mapping (docs/sectors.md).
 */
#include <sectorcast/plugin.h>

#include "../shared/sk.h"
#include "../shared/sk_sector.h"

static const char *const subsectors[] = { "hydrogen", "nuclear", "lng",
                                          NULL };

/* The practical-task tracks of the joint plan's energy session. */
static const char *const tracks[] = {
    "supply-chain-early-warning", "technology-demonstration",
    "international-standards", "joint-export", "joint-investment",
    "regulatory-cooperation", "policy", NULL
};

static const char *const reactor_types[] = { "smr", "large-lwr",
                                             "advanced", NULL };

static const sk_field_t fields[] = {
    /* SMR and reactor work: which kind of reactor it is about */
    { "reactor_type", SK_FOR_TASK | SK_FOR_STANDARD, SK_F_ENUM, 0,
      reactor_types },
    /* third-country markets of a joint export task */
    { "target_markets", SK_FOR_TASK, SK_F_STRINGS, 0, NULL },
    SK_FIELDS_END
};

static const sk_sector_t energy_sector = {
    .name = "energy",
    .subsectors = subsectors,
    .channels = { "energy.*.tasks", "energy.*.standards", "energy.*.alerts" },
    .tracks = tracks,
    .fields = fields,
};

static int
energy_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    return sk_sector_init(&energy_sector, host, api, state);
}

static const sc_plugin_t energy_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "energy",
    .version = "2.0.0",
    .description = "hydrogen, nuclear/SMR and LNG tasks, standards and "
                   "supply-chain alerts from a register directory",
    .settings = sk_sector_settings,
    .init = energy_init,
    .fini = sk_sector_fini,
    .check = sk_sector_check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    /* A host older than our ABI does not know our table: decline. A newer
     * host speaks ours too and decides from .abi_version. */
    if (host_abi < SC_PLUGIN_ABI_VERSION)
        return NULL;
    return &energy_plugin;
}
