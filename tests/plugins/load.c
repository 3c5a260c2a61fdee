/*
 * load.c - the benchmark's load plugin (bench/bench.py, docs/performance.md):
 * publishes `count` messages of kind "bench.load" on `channel` (or, with
 * channel_count N > 1, on `channel`.c0 .. `channel`.c<N-1> in turn), keys
 * "k0".."k<key_count-1>" cycling, whose data is exactly `data_bytes` bytes
 * of JSON:
 *
 *   {"bench_t":T,"n":N,"pad":"<pad_bytes letters x>"}
 *
 * T = CLOCK_MONOTONIC in ns taken just before publish() (a subscriber on
 * the same machine measures one-way latency from it), N = 1..count.
 *
 * rate = 0 publishes as fast as the host accepts (publish blocks while the
 * core is behind), else `rate` messages per second, paced on the clock
 * (1 ms timer; a late tick catches up, at most 1000 per tick).
 *
 * With start_file set, nothing is counted until that file exists: until
 * then one warm-up message (N = 0) goes out every warmup_ms, so that
 * subscribers can tell they are connected; the benchmark creates the file
 * when every subscriber has seen one. Publishing allocates nothing.
 * Includes only the plugin ABI header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sectorcast/plugin.h>

#define MAX_PER_TICK 1000
#define MAX_DATA 1048576
#define MAX_CHANNELS 100000

typedef struct load {
    sc_host_t *host;
    const sc_host_api_t *api;
    const char *channel, *start_file;
    int64_t count, rate, data_bytes, key_count, warmup_ms, channel_count;
    char *buf;          /* data_bytes + 1 */
    int64_t done;       /* counted messages published */
    int64_t t0;         /* ns: when counting started */
    int64_t last_warm;  /* ns: last warm-up message */
    int started;
    int timer;
} load_t;

static const sc_setting_def_t load_settings[] = {
    SC_SETTING("channel", SC_SETTING_STRING, NULL, 1, "channel to publish on"),
    SC_SETTING("count", SC_SETTING_INT, "10000", 0, "messages to publish"),
    SC_SETTING("rate", SC_SETTING_INT, "0", 0,
      "messages per second; 0 = as fast as the host accepts"),
    SC_SETTING("data_bytes", SC_SETTING_INT, "512", 0,
      "size of each message's data JSON (at least 64)"),
    SC_SETTING("key_count", SC_SETTING_INT, "100", 0, "distinct keys"),
    SC_SETTING("channel_count", SC_SETTING_INT, "1", 0,
      "channels: 1 = `channel`, N = `channel`.c0 .. c<N-1> in turn"),
    SC_SETTING("start_file", SC_SETTING_STRING, "", 0,
      "start counting once this file exists (\"\" = at once)"),
    SC_SETTING("warmup_ms", SC_SETTING_INT, "20", 0,
      "ms between warm-up messages before start_file exists"),
    SC_SETTINGS_END
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 0, or the publish error */
static int publish_one(load_t *l, int64_t n)
{
    char key[32], channel[256];
    int64_t i = n > 0 ? n - 1 : 0;
    snprintf(key, sizeof key, "k%lld", (long long)(i % l->key_count));
    if (l->channel_count > 1)
        snprintf(channel, sizeof channel, "%s.c%lld", l->channel,
                 (long long)(i % l->channel_count));
    int k = snprintf(l->buf, (size_t)l->data_bytes + 1,
                     "{\"bench_t\":%lld,\"n\":%lld,\"pad\":\"",
                     (long long)now_ns(), (long long)n);
    int pad = (int)l->data_bytes - k - 2;
    if (pad < 0)
        pad = 0;
    memset(l->buf + k, 'x', (size_t)pad);
    memcpy(l->buf + k + pad, "\"}", 3);
    return l->api->publish(l->host, l->channel_count > 1 ? channel : l->channel,
                           "bench.load", key, l->buf);
}

static void load_tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    load_t *l = arg;
    int64_t now = now_ns();
    if (!l->started) {
        if (l->start_file[0] && access(l->start_file, F_OK) != 0) {
            if (now - l->last_warm >= l->warmup_ms * 1000000) {
                l->last_warm = now;
                if (publish_one(l, 0) == SC_ERR_STOPPING)
                    return;
            }
            return;
        }
        l->started = 1;
        l->t0 = now;
        l->api->log(host, SC_LOG_INFO, "load: started (%lld messages, "
                    "rate %lld/s, %lld bytes)", (long long)l->count,
                    (long long)l->rate, (long long)l->data_bytes);
    }
    int64_t due = MAX_PER_TICK;
    if (l->rate > 0) {
        due = (now - l->t0) / 1000 * l->rate / 1000000 + 1 - l->done;
        if (due > MAX_PER_TICK)
            due = MAX_PER_TICK;
    }
    for (int64_t i = 0; i < due && l->done < l->count; i++) {
        int rc = publish_one(l, l->done + 1);
        if (rc == SC_ERR_STOPPING)
            return;
        if (rc != SC_OK) {
            l->api->log(host, SC_LOG_WARN, "publish: %s",
                        l->api->strerror(rc));
            return;
        }
        l->done++;
    }
    if (l->done >= l->count && l->timer > 0) {
        l->api->timer_cancel(host, l->timer);
        l->timer = 0;
        l->api->log(host, SC_LOG_INFO, "load done: %lld message(s)",
                    (long long)l->done);
    }
}

static int load_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    load_t *l = calloc(1, sizeof *l);
    if (!l)
        return SC_ERR_NO_MEMORY;
    l->host = host;
    l->api = api;
    if (api->setting_string(host, "channel", &l->channel) != SC_OK ||
        api->setting_string(host, "start_file", &l->start_file) != SC_OK ||
        api->setting_int(host, "count", &l->count) != SC_OK ||
        api->setting_int(host, "rate", &l->rate) != SC_OK ||
        api->setting_int(host, "data_bytes", &l->data_bytes) != SC_OK ||
        api->setting_int(host, "key_count", &l->key_count) != SC_OK ||
        api->setting_int(host, "warmup_ms", &l->warmup_ms) != SC_OK ||
        api->setting_int(host, "channel_count", &l->channel_count) != SC_OK ||
        l->channel_count < 1 || l->channel_count > MAX_CHANNELS ||
        strlen(l->channel) > 200 ||
        l->count < 0 || l->rate < 0 || l->rate > 10000000 ||
        l->data_bytes < 64 || l->data_bytes > MAX_DATA || l->key_count < 1 ||
        l->warmup_ms < 1 || l->warmup_ms > 60000) {
        api->log(host, SC_LOG_ERROR, "bad settings (count >= 0, rate "
                 "0..10000000, data_bytes 64..1048576, key_count >= 1, "
                 "warmup_ms 1..60000, channel_count 1..100000, channel at "
                 "most 200 bytes)");
        free(l);
        return SC_ERR_ARG;
    }
    if (!(l->buf = malloc((size_t)l->data_bytes + 1))) {
        free(l);
        return SC_ERR_NO_MEMORY;
    }
    int id = api->timer_add(host, 1, 1, load_tick, l);
    if (id < 0) {
        free(l->buf);
        free(l);
        return id;
    }
    l->timer = id;
    *state = l;
    return SC_OK;
}

static void load_fini(sc_host_t *host, void *state)
{
    (void)host;
    load_t *l = state;
    if (l)
        free(l->buf);
    free(l);
}

static const sc_plugin_t load_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "load",
    .version = "1.0.0",
    .description = "benchmark load: sized, timestamped messages at a rate",
    .settings = load_settings,
    .init = load_init,
    .fini = load_fini,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &load_plugin : NULL;
}
