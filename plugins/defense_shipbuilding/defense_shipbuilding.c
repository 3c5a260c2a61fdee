/*
 * defense_shipbuilding.c - the defence & shipbuilding sector plugin: MRO
 * of U.S. Navy non-combatant (Military Sealift Command) ships and later
 * combatant ships through coordination among shipyards, localisation of
 * defence parts, expansion of maintenance hubs, supply-chain
 * vulnerabilities.
 *
 * Channels: <subsector>.tasks, <subsector>.standards and
 * <subsector>.supply-chain.alerts for <subsector> in defense,
 * shipbuilding. The sector kit (plugins/shared/) does the rest; this file
 * is the sector's schema and channel mapping (docs/sectors.md).
 */
#include <sectorcast/plugin.h>

#include "../shared/sk.h"
#include "../shared/sk_sector.h"

static const char *const subsectors[] = { "defense", "shipbuilding", NULL };

static const char *const tracks[] = {
    "mro", "shipyard-coordination", "parts-localisation",
    "maintenance-hubs", "supply-chain-early-warning",
    "technology-demonstration", "international-standards", "joint-export",
    "workforce-training", "policy", NULL
};

static const char *const vessel_classes[] = { "non-combatant", "combatant",
                                              NULL };

static const sk_field_t fields[] = {
    /* MRO tasks: which ships */
    { "vessel_class", SK_FOR_TASK, SK_F_ENUM, 0, vessel_classes },
    { "programme", SK_FOR_TASK, SK_F_STRING, 0, NULL },
    /* the yards and the parts a task involves (organisations, items) */
    { "shipyards", SK_FOR_TASK, SK_F_STRINGS, 0, NULL },
    { "parts", SK_FOR_TASK | SK_FOR_INDICATOR, SK_F_STRINGS, 0, NULL },
    SK_FIELDS_END
};

static const sk_sector_t defense_shipbuilding_sector = {
    .name = "defense_shipbuilding",
    .subsectors = subsectors,
    .channels = { "*.tasks", "*.standards", "*.supply-chain.alerts" },
    .tracks = tracks,
    .fields = fields,
};

static int
ds_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    return sk_sector_init(&defense_shipbuilding_sector, host, api, state);
}

static const sc_plugin_t ds_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "defense_shipbuilding",
    .version = "1.0.0",
    .description = "defence and shipbuilding (naval MRO) tasks, standards "
                   "and supply-chain alerts from a register directory",
    .settings = sk_sector_settings,
    .init = ds_init,
    .fini = sk_sector_fini,
    .check = sk_sector_check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &ds_plugin : NULL;
}
