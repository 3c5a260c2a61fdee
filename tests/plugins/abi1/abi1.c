/*
 * abi1.c - test plugin built from the frozen ABI 1 header next to it
 * (tests/plugins/abi1/sectorcast/plugin.h): no size fields, a settings
 * table of the ABI 1 layout, future[8]. A newer broker must load it and
 * let it publish: every interval_ms one "compat.tick" {"n": N, "abi": 1}
 * on `channel`; at init it logs the size of the host table it got.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sectorcast/plugin.h>

typedef struct {
    const sc_host_api_t *api;
    const char *channel;
    long long n;
} abi1_t;

static void tick(sc_host_t *h, int id, void *arg)
{
    (void)id;
    abi1_t *a = arg;
    char data[64];
    snprintf(data, sizeof data, "{\"n\":%lld,\"abi\":1}", a->n + 1);
    if (a->api->publish(h, a->channel, "compat.tick", NULL, data) == SC_OK)
        a->n++;
}

static int init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    if (api->abi_version < 1)
        return SC_ERR_ARG;
    abi1_t *a = calloc(1, sizeof *a);
    if (!a)
        return SC_ERR_NO_MEMORY;
    a->api = api;
    int64_t iv = 100;
    if (api->setting_string(h, "channel", &a->channel) != SC_OK ||
        api->setting_int(h, "interval_ms", &iv) != SC_OK ||
        api->timer_add(h, (uint32_t)iv, 1, tick, a) <= 0) {
        free(a);
        return SC_ERR_ARG;
    }
    api->log(h, SC_LOG_INFO, "ABI 1 plugin running on a host of ABI %u",
             (unsigned)api->abi_version);
    *state = a;
    return SC_OK;
}

static void fini(sc_host_t *h, void *state)
{
    (void)h;
    free(state);
}

static const sc_setting_def_t settings[] = {
    {"channel", SC_SETTING_STRING, NULL, 1, "channel to publish on"},
    {"interval_ms", SC_SETTING_INT, "100", 0, "tick interval"},
    {"label", SC_SETTING_STRING, "abi1", 0, "unused text"},
    SC_SETTINGS_END,
};

static const sc_plugin_t desc = {
    SC_PLUGIN_ABI_VERSION, /* 1: this header's */
    "abi1",
    "1.0.0",
    "test plugin built against the frozen ABI 1 header",
    settings,
    init,
    fini,
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 1 ? &desc : NULL;
}
