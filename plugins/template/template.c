/*
 * template.c - the smallest complete sectorcast plugin; copy it to start.
 *
 * Publishes {"instance":…,"tick":N} as kind "template.tick" on its
 * configured channel every interval_ms. scons builds this folder into
 * build/plugins/template.so; it includes only the ABI header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sectorcast/plugin.h>

/* Per-instance state: no globals, as one .so may run as several instances. */
typedef struct tpl {
    sc_host_t *host;
    const sc_host_api_t *api;
    const char *channel; /* owned by the host, valid until fini() */
    long long ticks;
} tpl_t;

/* The settings the host validates for us (unknown keys are refused). */
static const sc_setting_def_t tpl_settings[] = {
    SC_SETTING("channel", SC_SETTING_STRING, NULL, 1, "channel to publish ticks on"),
    SC_SETTING("interval_ms", SC_SETTING_INT, "5000", 0, "ms between two ticks"),
    SC_SETTINGS_END
};

/* Timer callback: runs on the plugin's own thread, like init and fini. */
static void
tpl_tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    tpl_t *t = arg;
    char json[256]; /* instance names are [a-z0-9_-]+: no JSON escaping */
    snprintf(json, sizeof json, "{\"instance\":\"%s\",\"tick\":%lld}",
             t->api->instance_name(host), ++t->ticks);
    int rc = t->api->publish(host, t->channel, "template.tick", NULL, json);
    if (rc != SC_OK) /* a refused publish is an error to log, not to die of */
        t->api->log(host, SC_LOG_WARN, "publish: %s", t->api->strerror(rc));
}

static int
tpl_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    int64_t interval = 0;
    tpl_t *t = calloc(1, sizeof *t);
    if (!t)
        return SC_ERR_NO_MEMORY;
    t->host = host;
    t->api = api;
    if (api->setting_string(host, "channel", &t->channel) != SC_OK ||
        api->setting_int(host, "interval_ms", &interval) != SC_OK ||
        interval < 1 || interval > 86400000) {
        api->log(host, SC_LOG_ERROR, "bad settings (interval_ms 1..86400000)");
        free(t); /* after a failed init, fini() is not called */
        return SC_ERR_ARG;
    }
    /* ask before publishing: a channel the config does not grant would
     * refuse every tick; say so once and do not start (ABI 2 hosts) */
    if (SC_HOST_HAS(api, is_granted) && !api->is_granted(host, t->channel)) {
        api->log(host, SC_LOG_ERROR,
                 "channel '%s' is not granted to this plugin (see its "
                 "`channels` in the config); not starting",
                 t->channel);
        free(t);
        return SC_ERR_NOT_GRANTED;
    }
    int id = api->timer_add(host, (uint32_t)interval, 1, tpl_tick, t);
    if (id < 0) {
        free(t);
        return id;
    }
    *state = t;
    return SC_OK;
}

/* The loop has stopped and no callback runs again: free what we own. */
static void
tpl_fini(sc_host_t *host, void *state)
{
    (void)host;
    free(state);
}

static const sc_plugin_t tpl_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION, /* the ABI we are built for */
    SC_PLUGIN_SIZES,
    .name = "template",
    .version = "1.0.0",
    .description = "example plugin: publishes a tick every interval_ms",
    .settings = tpl_settings,
    .init = tpl_init,
    .fini = tpl_fini,
    /* .future stays zero */
};

/* The one exported symbol. Decline a host older than our ABI. */
SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &tpl_plugin : NULL;
}
