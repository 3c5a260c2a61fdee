/*
 * needcap.c - test plugin that needs a capability the host may lack: at
 * init it registers capability `cap` (default 99, which no host knows)
 * and, when the host says SC_ERR_UNSUPPORTED, logs why and refuses to
 * start, as a newer plugin on an older broker must.
 */
#include <stdlib.h>
#include <sectorcast/plugin.h>

static int init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    (void)state;
    int64_t cap = 99;
    api->setting_int(h, "cap", &cap);
    if (!SC_HOST_HAS(api, capability_register)) {
        api->log(h, SC_LOG_ERROR, "this broker has no capability_register "
                 "(ABI %u); needcap needs ABI 2", (unsigned)api->abi_version);
        return SC_ERR_UNSUPPORTED;
    }
    int rc = api->capability_register(h, (uint32_t)cap, NULL);
    if (rc != SC_OK) {
        api->log(h, SC_LOG_ERROR,
                 "needcap needs capability %lld, which this broker does not "
                 "offer (%s); not starting",
                 (long long)cap, api->strerror(rc));
        return rc;
    }
    return SC_OK;
}

static const sc_setting_def_t settings[] = {
    SC_SETTING("cap", SC_SETTING_INT, "99", 0, "capability to ask for"),
    SC_SETTINGS_END,
};

static const sc_plugin_t desc = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "needcap",
    .version = "1.0.0",
    .description = "test plugin needing a capability the host lacks",
    .settings = settings,
    .init = init,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 1 ? &desc : NULL;
}
