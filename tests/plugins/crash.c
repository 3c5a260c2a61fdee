/*
 * crash.c - test plugin: publishes a tick every interval_ms on `channel`
 * and, after `crash_after` ticks, crashes with SIGSEGV (a real invalid
 * write), to test isolation = "process" and restart with backoff.
 * crash_after = 0 never crashes. block_ms > 0 makes every tick block the
 * plugin's thread that long (a plugin stuck in a slow call). check_ms > 0
 * makes its check() take that long (a slow settings check at start and
 * reload); check_crash = 1 makes it crash. Durable state
 * remembers the tick count, so ticks continue across restarts.
 * probe_path: a file init() tries to open (read-only); every tick then
 * carries "probe_errno" (0: it opened) and "uid", to test that a child
 * run as another user cannot read the broker's keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sectorcast/plugin.h>

typedef struct {
    const sc_host_api_t *api;
    const char *channel;
    int64_t crash_after;
    int64_t block_ms;
    int64_t tick;
    int64_t this_run;
    int probe_errno; /* -1: no probe */
} crash_t;

static void on_tick(sc_host_t *h, int id, void *arg)
{
    (void)id;
    crash_t *c = arg;
    char data[128], key[32];
    if (c->probe_errno >= 0)
        snprintf(data, sizeof data,
                 "{\"tick\":%lld,\"pid\":%d,\"probe_errno\":%d,\"uid\":%d}",
                 (long long)c->tick, (int)getpid(), c->probe_errno,
                 (int)getuid());
    else
        snprintf(data, sizeof data, "{\"tick\":%lld,\"pid\":%d}",
                 (long long)c->tick, (int)getpid());
    snprintf(key, sizeof key, "tick-%lld", (long long)(c->tick % 5));
    if (c->api->publish(h, c->channel, "test.tick", key, data) == SC_OK) {
        c->tick++;
        c->this_run++;
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)c->tick);
        if (SC_HOST_HAS(c->api, state_put))
            c->api->state_put(h, "tick", v);
    }
    if (c->block_ms > 0) {
        struct timespec ts = {c->block_ms / 1000, (c->block_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (c->crash_after > 0 && c->this_run >= c->crash_after) {
        c->api->log(h, SC_LOG_WARN, "crashing now (tick %lld)",
                    (long long)c->tick);
        volatile int *volatile p = NULL;
        *p = 1;
    }
}

static int init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    crash_t *c = calloc(1, sizeof *c);
    if (!c)
        return SC_ERR_NO_MEMORY;
    c->api = api;
    int64_t iv = 100;
    api->setting_string(h, "channel", &c->channel);
    api->setting_int(h, "interval_ms", &iv);
    api->setting_int(h, "crash_after", &c->crash_after);
    api->setting_int(h, "block_ms", &c->block_ms);
    const char *probe = NULL;
    c->probe_errno = -1;
    if (api->setting_string(h, "probe_path", &probe) == SC_OK && probe &&
        probe[0]) {
        int fd = open(probe, O_RDONLY);
        c->probe_errno = fd >= 0 ? 0 : errno;
        if (fd >= 0)
            close(fd);
        api->log(h, SC_LOG_INFO, "probe %s: errno %d", probe, c->probe_errno);
    }
    char *v = NULL;
    if (SC_HOST_HAS(api, state_get) && SC_HOST_HAS(api, state_free) &&
        api->state_get(h, "tick", &v) == SC_OK && v) {
        c->tick = atoll(v);
        api->state_free(h, v);
    }
    if (api->timer_add(h, (uint32_t)iv, 1, on_tick, c) <= 0) {
        free(c);
        return SC_ERR_ARG;
    }
    *state = c;
    return SC_OK;
}

static void fini(sc_host_t *h, void *state)
{
    (void)h;
    free(state);
}

static int check(sc_host_t *h, const sc_host_api_t *api)
{
    int64_t ms = 0;
    int64_t crash = 0;
    api->setting_int(h, "check_ms", &ms);
    api->setting_int(h, "check_crash", &crash);
    if (crash) {
        volatile int *volatile p = NULL;
        *p = 1;
    }
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return SC_OK;
}

static const sc_setting_def_t settings[] = {
    SC_SETTING("channel", SC_SETTING_STRING, NULL, 1, "channel to publish ticks on"),
    SC_SETTING("interval_ms", SC_SETTING_INT, "100", 0, "tick interval"),
    SC_SETTING("crash_after", SC_SETTING_INT, "0", 0, "ticks per run before SIGSEGV"),
    SC_SETTING("block_ms", SC_SETTING_INT, "0", 0, "block the thread this long per tick"),
    SC_SETTING("probe_path", SC_SETTING_STRING, "", 0, "a file init() tries to open"),
    SC_SETTING("check_ms", SC_SETTING_INT, "0", 0, "check() takes this long"),
    SC_SETTING("check_crash", SC_SETTING_INT, "0", 0, "check() crashes (SIGSEGV)"),
    SC_SETTINGS_END,
};

static const sc_plugin_t desc = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "crash",
    .version = "1.0.0",
    .description = "test plugin that ticks and crashes on purpose",
    .settings = settings,
    .init = init,
    .fini = fini,
    .check = check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 1 ? &desc : NULL;
}
