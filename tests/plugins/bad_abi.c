/*
 * bad_abi.c - test fixture: a plugin whose descriptor claims ABI 99, which
 * no host speaks. A host must refuse it after the handshake, without
 * calling init.
 */
#include <stdlib.h>
#include <sectorcast/plugin.h>

static int
bad_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    (void)host;
    (void)api;
    (void)state;
    abort(); /* a host that got this far did not check abi_version */
}

static const sc_plugin_t bad_plugin = {
    .abi_version = 99,
    .name = "bad_abi",
    .version = "0.0.0",
    .description = "test fixture: built for ABI 99",
    .settings = NULL,
    .init = bad_init,
    .fini = NULL,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    (void)host_abi;
    return &bad_plugin;
}
