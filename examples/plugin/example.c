/*
 * example.c - an out-of-tree sectorcast plugin, as `scons install` ships
 * it (PREFIX/share/sectorcast/example-plugin): copy the folder, rename,
 * build with `make`, test with `make test`, run with the sectorcast.conf
 * next to it.
 *
 * Publishes {"instance":…,"tick":N,"note":…} as kind "example.tick" on its
 * configured channel every interval_ms. It shows the three places settings
 * are checked: the table (types, a range, allowed values), the check
 * callback (what the table cannot say: here, that the channel is granted),
 * and nothing left for init() to refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sectorcast/plugin.h>

typedef struct example {
    sc_host_t *host;
    const sc_host_api_t *api;
    const char *channel; /* owned by the host, valid until fini() */
    const char *note;
    long long ticks;
} example_t;

static const char *const notes[] = { "hello", "tick", "beat", NULL };

/* What an operator may write in the plugin's `settings` group. The host
 * refuses anything else with FILE:LINE at `sectorcastd --check`. */
static const sc_setting_def_t example_settings[] = {
    SC_SETTING("channel", SC_SETTING_STRING, NULL, 1,
               "channel to publish on, e.g. example.ticks"),
    { SC_SETTING_FIELDS("interval_ms", SC_SETTING_INT, "1000", 0,
                        "ms between two ticks"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 10,
      .max = 86400000 },
    { SC_SETTING_FIELDS("note", SC_SETTING_STRING, "hello", 0,
                        "word put in every tick"),
      .allowed = notes },
    SC_SETTINGS_END
};

/* Runs at `sectorcastd --check`, at reload and before init(). */
static int
example_check(sc_host_t *host, const sc_host_api_t *api)
{
    const char *channel = NULL;
    if (api->setting_string(host, "channel", &channel) == SC_OK &&
        !api->is_granted(host, channel)) {
        api->setting_problem(host, "channel", "\"%s\" is not granted to "
                             "this plugin (see its channels)", channel);
        return SC_ERR_BAD_SETTING;
    }
    return SC_OK;
}

static void
example_tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    example_t *e = arg;
    char json[256]; /* instance names are [a-z0-9_-]+: no JSON escaping */
    snprintf(json, sizeof json,
             "{\"instance\":\"%s\",\"tick\":%lld,\"note\":\"%s\"}",
             e->api->instance_name(host), ++e->ticks, e->note);
    int rc = e->api->publish(host, e->channel, "example.tick", NULL, json);
    if (rc != SC_OK)
        e->api->log(host, SC_LOG_WARN, "publish: %s", e->api->strerror(rc));
}

static int
example_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    int64_t interval = 0;
    example_t *e = calloc(1, sizeof *e);
    if (!e)
        return SC_ERR_NO_MEMORY;
    e->host = host;
    e->api = api;
    /* already checked by the host: these cannot fail on a good host */
    if (api->setting_string(host, "channel", &e->channel) != SC_OK ||
        api->setting_string(host, "note", &e->note) != SC_OK ||
        api->setting_int(host, "interval_ms", &interval) != SC_OK) {
        free(e); /* after a failed init, fini() is not called */
        return SC_ERR_ARG;
    }
    int id = api->timer_add(host, (uint32_t)interval, 1, example_tick, e);
    if (id < 0) {
        free(e);
        return id;
    }
    *state = e;
    return SC_OK;
}

static void
example_fini(sc_host_t *host, void *state)
{
    (void)host;
    free(state);
}

static const sc_plugin_t example_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "example",
    .version = "1.0.0",
    .description = "example plugin: publishes a tick every interval_ms",
    .settings = example_settings,
    .init = example_init,
    .fini = example_fini,
    .check = example_check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &example_plugin : NULL;
}
