/*
 * refusals.c - test plugin: at init() it makes every kind of host call the
 * host must refuse (tests/unit/test_refusals.c runs it through the
 * broker's plugin thread and through the plugin test kit and compares).
 * Each row logs "row N: CALL -> RC" after the call; whatever the host
 * logged about the call comes before it. Granted: energy.nuclear.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sectorcast/plugin.h>

static void on_timer(sc_host_t *h, int id, void *arg)
{
    (void)h;
    (void)id;
    (void)arg;
}

static void on_fd(sc_host_t *h, int fd, unsigned ev, void *arg)
{
    (void)h;
    (void)fd;
    (void)ev;
    (void)arg;
}

#define ROW(what, call)                                                   \
    do {                                                                  \
        int rc_ = (call);                                                 \
        api->log(h, SC_LOG_INFO, "row %d: %s -> %d", ++row, what, rc_);  \
    } while (0)

static int init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    int row = 0;
    const char *ch = "energy.nuclear.tasks";
    char big[1100];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"x\":1}", 7);
    big[sizeof big - 1] = '\0';
    char longkey[300];
    memset(longkey, 'k', sizeof longkey);
    longkey[sizeof longkey - 1] = '\0';
    ROW("publish bad channel",
        api->publish(h, "Energy..Nuclear", "t.x", NULL, "{}"));
    ROW("publish NULL channel", api->publish(h, NULL, "t.x", NULL, "{}"));
    ROW("publish bad kind", api->publish(h, ch, "Bad Kind", NULL, "{}"));
    ROW("publish empty kind", api->publish(h, ch, "", NULL, "{}"));
    ROW("publish key not UTF-8",
        api->publish(h, ch, "t.x", "\xff\xfe", "{}"));
    ROW("publish key with control char",
        api->publish(h, ch, "t.x", "a\nb", "{}"));
    ROW("publish key too long", api->publish(h, ch, "t.x", longkey, "{}"));
    ROW("publish not granted",
        api->publish(h, "energy.lng.tasks", "t.x", NULL, "{}"));
    ROW("publish NULL data", api->publish(h, ch, "t.x", NULL, NULL));
    ROW("publish too big", api->publish(h, ch, "t.x", NULL, big));
    ROW("publish bad JSON", api->publish(h, ch, "t.x", NULL, "{\"a\":"));
    ROW("publish not an object", api->publish(h, ch, "t.x", NULL, "[1]"));
    ROW("publish duplicate key",
        api->publish(h, ch, "t.x", NULL, "{\"a\":1,\"a\":2}"));
    ROW("timer repeat 0 ms", api->timer_add(h, 0, 1, on_timer, NULL));
    ROW("timer NULL fn", api->timer_add(h, 10, 0, NULL, NULL));
    ROW("timer cancel unknown", api->timer_cancel(h, 99999));
    ROW("fd watch -1", api->fd_watch(h, -1, SC_FD_READ, on_fd, NULL));
    ROW("fd watch no events", api->fd_watch(h, 0, 0, on_fd, NULL));
    ROW("fd unwatch unknown", api->fd_unwatch(h, 12345));
    int64_t i64;
    const char *str;
    ROW("setting undeclared", api->setting_int(h, "nope", &i64));
    ROW("setting wrong type", api->setting_string(h, "n", &str));
    ROW("setting NULL out", api->setting_int(h, "n", NULL));
    char *v = NULL;
    ROW("state_get empty key", api->state_get(h, "", &v));
    ROW("state_put key too long", api->state_put(h, longkey, "x"));
    ROW("state_get absent", api->state_get(h, "absent", &v));
    ROW("is_granted foreign", api->is_granted(h, "energy.lng.tasks"));
    ROW("is_granted own", api->is_granted(h, ch));
    ROW("is_granted malformed", api->is_granted(h, "a..b"));
    ROW("capability unknown", api->capability_register(h, 99, NULL));
    ROW("capability sink NULL def",
        api->capability_register(h, SC_CAP_SINK, NULL));
    ROW("sink_ack not a sink", api->sink_ack(h, ch, 1));
    size_t n;
    ROW("setting_count not a list", api->setting_count(h, "n", &n));
    ROW("publish ok", api->publish(h, ch, "t.x", "k", "{\"ok\":true}"));
    api->log(h, SC_LOG_INFO, "rows done: %d", row);
    *state = NULL;
    return SC_OK;
}

static const sc_setting_def_t settings[] = {
    SC_SETTING("n", SC_SETTING_INT, "1", 0, "a number"),
    SC_SETTINGS_END,
};

static const sc_plugin_t desc = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "refusals",
    .version = "1.0.0",
    .description = "test plugin that makes every refused host call",
    .settings = settings,
    .init = init,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 2 ? &desc : NULL;
}
