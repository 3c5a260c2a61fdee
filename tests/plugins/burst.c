/*
 * burst.c - test plugin: publishes `count` messages {"n": N} (N = 1, 2,
 * ...) of kind "test.burst" on `channel`, keys "k0".."k<key_count-1>"
 * cycling, as fast as the host takes them (interval_ms = 0: up to 100 per
 * 1 ms tick; publish blocks while the core is behind) or one per
 * interval_ms (with catch_up, a steady rate of one per interval_ms: a
 * tick that comes late publishes every message due since the first, up
 * to 100). It remembers in its durable state how many it published,
 * so a restarted broker continues the burst instead of starting over.
 * Includes only the plugin ABI header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sectorcast/plugin.h>

#define PER_TICK 100

typedef struct burst {
    sc_host_t *host;
    const sc_host_api_t *api;
    const char *channel;
    int64_t count, interval_ms, key_count, pad_bytes;
    char *pad;      /* pad_bytes of 'x' (NULL if none) */
    int64_t done;   /* published so far (durable) */
    int64_t catch_up;
    int64_t t0_ms, done0; /* catch_up: rate counted from here */
    int timer;
    int durable;    /* the host offers state_get/state_put */
} burst_t;

static const sc_setting_def_t burst_settings[] = {
    SC_SETTING("channel", SC_SETTING_STRING, NULL, 1, "channel to publish on"),
    SC_SETTING("count", SC_SETTING_INT, "10000", 0, "messages in the burst"),
    SC_SETTING("interval_ms", SC_SETTING_INT, "0", 0,
      "ms between messages; 0 = as fast as the host accepts"),
    SC_SETTING("key_count", SC_SETTING_INT, "10", 0, "distinct keys k0..k(N-1)"),
    SC_SETTING("start_delay_ms", SC_SETTING_INT, "0", 0, "wait before the first"),
    SC_SETTING("pad_bytes", SC_SETTING_INT, "0", 0,
      "add a member \"pad\" of this many bytes to each message"),
    SC_SETTING("catch_up", SC_SETTING_INT, "0", 0,
      "1: keep one message per interval_ms on average (late ticks catch up)"),
    SC_SETTINGS_END
};

static void save(burst_t *b)
{
    char v[32];
    if (!b->durable)
        return;
    snprintf(v, sizeof v, "%lld", (long long)b->done);
    int rc = b->api->state_put(b->host, "published", v);
    if (rc != SC_OK)
        b->api->log(b->host, SC_LOG_WARN, "state_put: %s",
                    b->api->strerror(rc));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void burst_tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    burst_t *b = arg;
    int n = b->interval_ms > 0 ? 1 : PER_TICK;
    if (b->interval_ms > 0 && b->catch_up) {
        int64_t due = b->done0 + (now_ms() - b->t0_ms) / b->interval_ms + 1;
        n = due - b->done < 1 ? 1 : due - b->done > PER_TICK
                                        ? PER_TICK
                                        : (int)(due - b->done);
    }
    for (int i = 0; i < n && b->done < b->count; i++) {
        char key[32], small[64];
        long long next = (long long)b->done + 1;
        snprintf(key, sizeof key, "k%lld", (next - 1) % b->key_count);
        char *data = small;
        if (b->pad) {
            size_t n = (size_t)b->pad_bytes + 64;
            if (!(data = malloc(n)))
                break;
            snprintf(data, n, "{\"n\":%lld,\"pad\":\"%s\"}", next, b->pad);
        } else {
            snprintf(data, sizeof small, "{\"n\":%lld}", next);
        }
        int rc = b->api->publish(host, b->channel, "test.burst", key, data);
        if (data != small)
            free(data);
        if (rc == SC_ERR_STOPPING)
            break;
        if (rc != SC_OK) {
            b->api->log(host, SC_LOG_WARN, "publish: %s",
                        b->api->strerror(rc));
            break;
        }
        b->done++;
    }
    save(b);
    if (b->done >= b->count && b->timer > 0) {
        b->api->timer_cancel(host, b->timer);
        b->timer = 0;
        b->api->log(host, SC_LOG_INFO, "burst done: %lld message(s)",
                    (long long)b->done);
    }
}

static void burst_begin(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    burst_t *b = arg;
    if (b->done >= b->count) {
        b->api->log(host, SC_LOG_INFO, "burst done: %lld message(s)",
                    (long long)b->done);
        return;
    }
    b->t0_ms = now_ms();
    b->done0 = b->done;
    int id = b->api->timer_add(host, b->interval_ms > 0
                                         ? (uint32_t)b->interval_ms
                                         : 1u,
                               1, burst_tick, b);
    if (id < 0)
        b->api->log(host, SC_LOG_ERROR, "timer_add: %s",
                    b->api->strerror(id));
    else
        b->timer = id;
}

static int burst_init(sc_host_t *host, const sc_host_api_t *api,
                      void **state)
{
    int64_t delay = 0;
    burst_t *b = calloc(1, sizeof *b);
    if (!b)
        return SC_ERR_NO_MEMORY;
    b->host = host;
    b->api = api;
    if (api->setting_string(host, "channel", &b->channel) != SC_OK ||
        api->setting_int(host, "count", &b->count) != SC_OK ||
        api->setting_int(host, "interval_ms", &b->interval_ms) != SC_OK ||
        api->setting_int(host, "key_count", &b->key_count) != SC_OK ||
        api->setting_int(host, "start_delay_ms", &delay) != SC_OK ||
        api->setting_int(host, "pad_bytes", &b->pad_bytes) != SC_OK ||
        api->setting_int(host, "catch_up", &b->catch_up) != SC_OK ||
        b->pad_bytes < 0 || b->pad_bytes > 16777216 || b->count < 0 || b->interval_ms < 0 || b->interval_ms > 86400000 ||
        b->key_count < 1 || delay < 0 || delay > 86400000) {
        api->log(host, SC_LOG_ERROR, "bad settings (count >= 0, key_count "
                 ">= 1, interval_ms and start_delay_ms 0..86400000)");
        free(b);
        return SC_ERR_ARG;
    }
    if (b->pad_bytes > 0) {
        if (!(b->pad = malloc((size_t)b->pad_bytes + 1))) {
            free(b);
            return SC_ERR_NO_MEMORY;
        }
        memset(b->pad, 'x', (size_t)b->pad_bytes);
        b->pad[b->pad_bytes] = '\0';
    }
    b->durable = SC_HOST_HAS(api, state_get) && SC_HOST_HAS(api, state_put) &&
                 SC_HOST_HAS(api, state_free);
    if (b->durable) {
        char *v = NULL;
        if (api->state_get(host, "published", &v) == SC_OK && v) {
            b->done = strtoll(v, NULL, 10);
            if (b->done < 0)
                b->done = 0;
            api->log(host, SC_LOG_INFO, "resuming after %lld message(s)",
                     (long long)b->done);
        }
        api->state_free(host, v);
    }
    int id = api->timer_add(host, delay > 0 ? (uint32_t)delay : 1u, 0,
                            burst_begin, b);
    if (id < 0) {
        free(b);
        return id;
    }
    *state = b;
    return SC_OK;
}

static void burst_fini(sc_host_t *host, void *state)
{
    burst_t *b = state;
    /* what the host accepted, for tests of a stop during the burst */
    if (b) {
        b->api->log(host, SC_LOG_INFO, "burst stopped: %lld message(s) "
                    "accepted", (long long)b->done);
        free(b->pad);
    }
    free(b);
}

static const sc_plugin_t burst_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "burst",
    .version = "1.0.0",
    .description = "test plugin: a burst of numbered messages",
    .settings = burst_settings,
    .init = burst_init,
    .fini = burst_fini,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &burst_plugin : NULL;
}
