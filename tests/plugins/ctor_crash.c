/*
 * ctor_crash.c - test plugin whose shared-object constructor crashes
 * (SIGSEGV) as soon as it is loaded, before any sectorcast code runs: a
 * process-isolated instance must take only its child process down.
 */
#include <signal.h>
#include <sectorcast/plugin.h>

__attribute__((constructor)) static void crash_on_load(void)
{
    raise(SIGSEGV);
}

static int init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    (void)h;
    (void)api;
    (void)state;
    return SC_OK;
}

static const sc_plugin_t desc = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "ctor_crash",
    .version = "1.0.0",
    .description = "test plugin that crashes when loaded",
    .init = init,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 1 ? &desc : NULL;
}
