/*
 * rogue.c - test fixture: a plugin that publishes on purpose what the host
 * must refuse, next to well-formed messages that must get through.
 *
 * Every tick (interval_ms) while the `trigger` file exists (or always, if
 * no trigger is set) it:
 *   1. the first time only: runs each attack named in `attacks` and logs
 *      the code the host returned, one line each:
 *        attack foreign: publish to 'energy.lng.tasks' returned -2 (channel
 *        not granted to this plugin)
 *   2. publishes one valid message on each channel of `channels`
 *      ({"rogue":INSTANCE,"n":N,"channel":CH}, kind "rogue.tick"), `count`
 *      rounds in all (0 = forever), then logs "published N valid
 *      message(s); done" with N the number the host accepted.
 *
 * Attacks: foreign (a channel not granted: foreign_channel), badjson (not
 * JSON), notobject (a JSON array), dupkey (a duplicated member), toobig
 * (data of big_bytes), fits (data of exactly fit_bytes: must be accepted),
 * badchannel, badkind, badkey (invalid names), nulldata (NULL data).
 * Tests grep the log lines; the channel of every attack except foreign is
 * attack_channel (a granted one), so that a subscriber can prove nothing
 * of them arrived.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sectorcast/plugin.h>

#define MAX_CHANNELS 16

typedef struct rogue {
    sc_host_t *host;
    const sc_host_api_t *api;
    char *chan_buf;
    const char *channels[MAX_CHANNELS];
    size_t n_channels;
    int64_t count;
    const char *trigger;
    const char *attacks;
    const char *foreign;
    const char *attack_channel;
    const char *key;
    int64_t big_bytes, fit_bytes;
    int attacked;
    int done;
    long long n;        /* rounds published: one message per channel each */
    long long accepted; /* valid messages the host accepted, in all */
} rogue_t;

static const sc_setting_def_t rogue_settings[] = {
    SC_SETTING("channels", SC_SETTING_STRING, "", 0,
     "comma-separated channels for valid messages"),
    SC_SETTING("count", SC_SETTING_INT, "0", 0,
     "valid messages per channel (0 = until stopped)"),
    SC_SETTING("interval_ms", SC_SETTING_INT, "100", 0, "ms between two rounds"),
    SC_SETTING("trigger", SC_SETTING_STRING, "", 0,
     "publish only while this file exists (empty = always)"),
    SC_SETTING("attacks", SC_SETTING_STRING, "", 0,
     "comma-separated attacks to run once (see rogue.c)"),
    SC_SETTING("foreign_channel", SC_SETTING_STRING, "energy.lng.tasks", 0,
     "channel for the 'foreign' attack"),
    SC_SETTING("attack_channel", SC_SETTING_STRING, "", 0,
     "granted channel for the other attacks (default: first of channels)"),
    SC_SETTING("key", SC_SETTING_STRING, "", 0,
     "key of every valid message (empty = null)"),
    SC_SETTING("big_bytes", SC_SETTING_INT, "70000", 0, "size of the 'toobig' data"),
    SC_SETTING("fit_bytes", SC_SETTING_INT, "1024", 0, "size of the 'fits' data"),
    SC_SETTINGS_END};

/* {"pad":"<a run of the letter x>"}, exactly `size` bytes long (size >= 10) */
static char *padded(int64_t size)
{
    if (size < 10 || size > 64 * 1024 * 1024)
        return NULL;
    char *s = malloc((size_t)size + 1);
    if (!s)
        return NULL;
    memcpy(s, "{\"pad\":\"", 8);
    memset(s + 8, 'x', (size_t)size - 10);
    memcpy(s + size - 2, "\"}", 2);
    s[size] = '\0';
    return s;
}

static void attack(rogue_t *r, const char *name)
{
    const sc_host_api_t *api = r->api;
    const char *ch = r->attack_channel;
    const char *kind = "rogue.attack";
    const char *key = NULL;
    const char *data = "{\"attack\":true}";
    char *owned = NULL;
    if (strcmp(name, "foreign") == 0) {
        ch = r->foreign;
    } else if (strcmp(name, "badjson") == 0) {
        data = "{\"attack\": ";
    } else if (strcmp(name, "notobject") == 0) {
        data = "[\"attack\"]";
    } else if (strcmp(name, "dupkey") == 0) {
        data = "{\"attack\":1,\"attack\":2}";
    } else if (strcmp(name, "toobig") == 0) {
        data = owned = padded(r->big_bytes);
    } else if (strcmp(name, "fits") == 0) {
        data = owned = padded(r->fit_bytes);
    } else if (strcmp(name, "badchannel") == 0) {
        ch = "Energy..Nuclear";
    } else if (strcmp(name, "badkind") == 0) {
        kind = "Bad Kind!";
    } else if (strcmp(name, "badkey") == 0) {
        key = "line\nbreak";
    } else if (strcmp(name, "nulldata") == 0) {
        data = NULL;
    } else {
        api->log(r->host, SC_LOG_ERROR, "unknown attack '%s'", name);
        return;
    }
    int rc = api->publish(r->host, ch, kind, key, data);
    api->log(r->host, SC_LOG_INFO,
             "attack %s: publish to '%s' returned %d (%s)", name, ch, rc,
             api->strerror(rc));
    free(owned);
}

static void run_attacks(rogue_t *r)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", r->attacks);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            attack(r, t);
}

static int triggered(const rogue_t *r)
{
    if (!r->trigger || !*r->trigger)
        return 1;
    FILE *f = fopen(r->trigger, "r");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

static void tick(sc_host_t *host, int timer_id, void *arg)
{
    (void)timer_id;
    rogue_t *r = arg;
    if (r->done || !triggered(r))
        return;
    if (!r->attacked) {
        r->attacked = 1;
        run_attacks(r);
    }
    if (r->n_channels == 0 || (r->count > 0 && r->n >= r->count)) {
        r->done = 1;
        r->api->log(host, SC_LOG_INFO, "published %lld valid message(s); done",
                    r->accepted);
        return;
    }
    r->n++;
    for (size_t i = 0; i < r->n_channels; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"rogue\":\"%s\",\"n\":%lld,\"channel\":\"%s\"}",
                 r->api->instance_name(host), r->n, r->channels[i]);
        int rc = r->api->publish(host, r->channels[i], "rogue.tick",
                                 r->key && *r->key ? r->key : NULL, json);
        if (rc == SC_OK)
            r->accepted++;
        else
            r->api->log(host, SC_LOG_WARN,
                        "valid publish to '%s' returned %d (%s)",
                        r->channels[i], rc, r->api->strerror(rc));
    }
}

static int rogue_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    rogue_t *r = calloc(1, sizeof *r);
    if (!r)
        return SC_ERR_NO_MEMORY;
    r->host = host;
    r->api = api;
    const char *chans = "";
    int64_t interval = 0;
    if (api->setting_string(host, "channels", &chans) != SC_OK ||
        api->setting_int(host, "count", &r->count) != SC_OK ||
        api->setting_int(host, "interval_ms", &interval) != SC_OK ||
        api->setting_string(host, "trigger", &r->trigger) != SC_OK ||
        api->setting_string(host, "attacks", &r->attacks) != SC_OK ||
        api->setting_string(host, "foreign_channel", &r->foreign) != SC_OK ||
        api->setting_string(host, "attack_channel", &r->attack_channel) !=
            SC_OK ||
        api->setting_string(host, "key", &r->key) != SC_OK ||
        api->setting_int(host, "big_bytes", &r->big_bytes) != SC_OK ||
        api->setting_int(host, "fit_bytes", &r->fit_bytes) != SC_OK ||
        interval < 1 || interval > 60000 || r->count < 0) {
        api->log(host, SC_LOG_ERROR, "bad settings");
        free(r);
        return SC_ERR_ARG;
    }
    if (!(r->chan_buf = strdup(chans))) {
        free(r);
        return SC_ERR_NO_MEMORY;
    }
    char *save = NULL;
    for (char *t = strtok_r(r->chan_buf, ",", &save);
         t && r->n_channels < MAX_CHANNELS; t = strtok_r(NULL, ",", &save))
        if (*t)
            r->channels[r->n_channels++] = t;
    if (!*r->attack_channel)
        r->attack_channel =
            r->n_channels ? r->channels[0] : "energy.nuclear.tasks";
    int id = api->timer_add(host, (uint32_t)interval, 1, tick, r);
    if (id < 0) {
        free(r->chan_buf);
        free(r);
        return id;
    }
    *state = r;
    return SC_OK;
}

static void rogue_fini(sc_host_t *host, void *state)
{
    (void)host;
    rogue_t *r = state;
    if (r)
        free(r->chan_buf);
    free(r);
}

static const sc_plugin_t rogue_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "rogue",
    .version = "1.0.0",
    .description = "test fixture: publishes what the host must refuse",
    .settings = rogue_settings,
    .init = rogue_init,
    .fini = rogue_fini,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= SC_PLUGIN_ABI_VERSION ? &rogue_plugin : NULL;
}
