/*
 * semis_ai.c - the semiconductors & AI sector plugin: supply-chain
 * stability and early warning, export-control and technology-security
 * policy alignment, R&D investment coordination, workforce-training
 * frameworks and local experts; AI governance (data movement,
 * accountability, international norms, joint governance).
 *
 * Channels: <subsector>.tasks, <subsector>.standards and
 * <subsector>.supply-chain.alerts for <subsector> in semis, ai. The
 * sector kit (plugins/shared/) does the rest; this file is the sector's
 * schema and channel mapping (docs/sectors.md).
 */
#include <sectorcast/plugin.h>

#include "../shared/sk.h"
#include "../shared/sk_sector.h"

static const char *const subsectors[] = { "semis", "ai", NULL };

static const char *const tracks[] = {
    "supply-chain-early-warning", "export-control-alignment",
    "rd-investment", "workforce-training", "technology-demonstration",
    "international-standards", "joint-export", "ai-governance", "policy",
    NULL
};

/* the AI governance topics of the joint plan */
static const char *const ai_topics[] = {
    "data-movement", "accountability", "international-norms",
    "joint-governance", NULL
};

static const sk_field_t fields[] = {
    { "ai_topics", SK_FOR_TASK | SK_FOR_STANDARD, SK_F_ENUMS, 0, ai_topics },
    /* the items a supply-chain task or indicator watches */
    { "critical_items", SK_FOR_TASK | SK_FOR_INDICATOR, SK_F_STRINGS, 0,
      NULL },
    SK_FIELDS_END
};

static const sk_sector_t semis_ai_sector = {
    .name = "semis_ai",
    .subsectors = subsectors,
    .channels = { "*.tasks", "*.standards", "*.supply-chain.alerts" },
    .tracks = tracks,
    .fields = fields,
};

static int
semis_ai_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    return sk_sector_init(&semis_ai_sector, host, api, state);
}

static const sc_plugin_t semis_ai_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "semis_ai",
    .version = "1.0.0",
    .description = "semiconductor and AI tasks, standards and supply-chain "
                   "alerts from a register directory",
    .settings = sk_sector_settings,
    .init = semis_ai_init,
    .fini = sk_sector_fini,
    .check = sk_sector_check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &semis_ai_plugin : NULL;
}
