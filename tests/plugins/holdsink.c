/*
 * holdsink.c - test plugin: a sink (SC_CAP_SINK) that declares
 * `max_inflight` in its sc_sink_def_t and acknowledges only when told,
 * for the tests of the sink window (the host delivers no more than
 * max_inflight messages not acknowledged).
 *
 * Each delivery is logged "delivered CHANNEL SEQ (N open)", N being the
 * messages it took and has not acknowledged. It acknowledges everything
 * it took (cumulatively, per channel) every tick (tick_ms) while the file
 * `ack_file` exists, or at once inside deliver() when ack_file is "" and
 * ack_inside is 1. A delivery while N already reaches max_inflight is
 * logged "window overrun" (what the tests look for: it must never
 * happen). Includes only the plugin ABI header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sectorcast/plugin.h>

#define MAX_CHANNELS 16

typedef struct hold {
    sc_host_t *host;
    const sc_host_api_t *api;
    int64_t max_inflight, tick_ms, ack_inside;
    const char *ack_file;
    int64_t open; /* taken, not acknowledged */
    struct {
        char name[128];
        uint64_t last, acked;
    } ch[MAX_CHANNELS];
    size_t n_ch;
} hold_t;

static const sc_setting_def_t hold_settings[] = {
    SC_SETTING("max_inflight", SC_SETTING_INT, "3", 0,
      "the sc_sink_def_t's max_inflight"),
    SC_SETTING("ack_file", SC_SETTING_STRING, "", 0,
      "acknowledge every tick while this file exists"),
    SC_SETTING("tick_ms", SC_SETTING_INT, "20", 0, "ms between looks"),
    SC_SETTING("ack_inside", SC_SETTING_INT, "0", 0,
      "1: acknowledge inside deliver() (ack_file \"\")"),
    SC_SETTINGS_END
};

static void ack_all(hold_t *h)
{
    for (size_t i = 0; i < h->n_ch; i++)
        if (h->ch[i].last > h->ch[i].acked &&
            h->api->sink_ack(h->host, h->ch[i].name, h->ch[i].last) == SC_OK)
            h->ch[i].acked = h->ch[i].last;
    h->open = 0;
}

static int hold_deliver(sc_host_t *host, const sc_sink_msg_t *m, void *arg)
{
    hold_t *h = arg;
    size_t i = 0;
    while (i < h->n_ch && strcmp(h->ch[i].name, m->channel) != 0)
        i++;
    if (i == h->n_ch) {
        if (h->n_ch == MAX_CHANNELS)
            return SC_ERR_LIMIT;
        snprintf(h->ch[i].name, sizeof h->ch[i].name, "%s", m->channel);
        h->n_ch++;
    }
    if (h->open >= h->max_inflight)
        h->api->log(host, SC_LOG_ERROR, "window overrun: %s seq %llu with "
                    "%lld open", m->channel, (unsigned long long)m->seq,
                    (long long)h->open);
    h->ch[i].last = m->seq;
    h->open++;
    h->api->log(host, SC_LOG_INFO, "delivered %s %llu (%lld open)",
                m->channel, (unsigned long long)m->seq, (long long)h->open);
    if (h->ack_inside && !h->ack_file[0])
        ack_all(h);
    return SC_OK;
}

static void hold_tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)host, (void)timer_id;
    hold_t *h = arg;
    if (h->ack_file[0] && access(h->ack_file, F_OK) == 0)
        ack_all(h);
}

static int hold_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    hold_t *h = calloc(1, sizeof *h);
    if (!h)
        return SC_ERR_NO_MEMORY;
    h->host = host;
    h->api = api;
    if (api->setting_int(host, "max_inflight", &h->max_inflight) != SC_OK ||
        api->setting_string(host, "ack_file", &h->ack_file) != SC_OK ||
        api->setting_int(host, "tick_ms", &h->tick_ms) != SC_OK ||
        api->setting_int(host, "ack_inside", &h->ack_inside) != SC_OK ||
        h->max_inflight < 1 || h->max_inflight > 100000 || h->tick_ms < 1 ||
        !SC_HOST_HAS(api, capability_register) ||
        !SC_HOST_HAS(api, sink_ack)) {
        free(h);
        return SC_ERR_ARG;
    }
    sc_sink_def_t def = {.size = sizeof def, .deliver = hold_deliver,
                         .arg = h, .max_inflight = (uint32_t)h->max_inflight};
    int rc = api->capability_register(host, SC_CAP_SINK, &def);
    if (rc == SC_OK &&
        (rc = api->timer_add(host, (uint32_t)h->tick_ms, 1, hold_tick, h)) > 0)
        rc = SC_OK;
    if (rc != SC_OK) {
        free(h);
        return rc;
    }
    *state = h;
    return SC_OK;
}

static void hold_fini(sc_host_t *host, void *state)
{
    (void)host;
    free(state);
}

static const sc_plugin_t hold_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "holdsink",
    .version = "1.0.0",
    .description = "test plugin: a sink that acknowledges when told",
    .settings = hold_settings,
    .init = hold_init,
    .fini = hold_fini,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &hold_plugin : NULL;
}
