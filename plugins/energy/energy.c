/*
 * energy.c - the energy sector plugin: hydrogen, nuclear/SMR and LNG
 * cooperation tasks and standards work items, read from a register
 * directory of JSON files and published as events.
 *
 * Owns the plugin side of the ABI (entry, descriptor, settings table,
 * init/fini), the instance's loop hooks (a poll timer that works alone,
 * plus inotify on the directory when the host offers fd watches) and the
 * publishing of events: one per entry that is new, changed or gone, on
 * energy.<subsector>.tasks or energy.<subsector>.standards, key = entry
 * id, data = the entry object as canonical JSON.
 * Never: parsing files (register.c), deciding what changed (known.c), the
 * entry schema (entry.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sectorcast/plugin.h>

#include "energy.h"
#include "entry.h"
#include "known.h"
#include "register.h"

#define POLL_MIN_MS 10
#define POLL_MAX_MS 3600000
/* After an inotify event, wait this long for a burst of writes to end. */
#define SETTLE_MS 50

static const char *const subsectors[] = { "hydrogen", "nuclear", "lng" };
#define N_SUBSECTORS 3

typedef struct energy {
    en_log_t lg;
    char *dir;
    int64_t poll_ms;
    int publish_on_start;

    en_register_t *reg;
    en_known_t *known;
    int loaded;          /* the first scan has been applied */

    int poll_timer;      /* repeating */
    int kick_timer;      /* one-shot: first scan, or after inotify */
    int ino_fd;          /* -1 without inotify */

    /* channels granted, by [subsector][kind] */
    int granted[N_SUBSECTORS][EN_KINDS];
    /* counters of the current apply, for its summary line */
    size_t n_published, n_failed, n_skipped;
} energy_t;

static const sc_setting_def_t energy_settings[] = {
    { "register_dir", SC_SETTING_PATH, NULL, 1,
      "directory of the register: *.json files of tasks and standards" },
    { "poll_interval_ms", SC_SETTING_INT, "1000", 0,
      "how often to look for changed files, in ms (10..3600000)" },
    { "publish_on_start", SC_SETTING_BOOL, "true", 0,
      "publish every entry at start (false: only later changes)" },
    SC_SETTINGS_END
};

/* ------------------------------------------------------- publishing -- */

static int
is_granted(energy_t *e, const char *channel)
{
    for (int s = 0; s < N_SUBSECTORS; s++)
        for (int k = 0; k < EN_KINDS; k++) {
            char ch[EN_CHANNEL_BUF];
            if (en_channel(ch, sizeof ch, (en_kind_t)k, subsectors[s]) == 0
                && !strcmp(ch, channel))
                return e->granted[s][k];
        }
    return 0;
}

static void
emit(void *ctx, const en_event_t *ev)
{
    energy_t *e = ctx;
    const sc_host_api_t *api = e->lg.api;
    if (!is_granted(e, ev->channel)) {
        /* said once at init; here only at debug level */
        EN_LOG(&e->lg, SC_LOG_DEBUG, "%s %s on %s not published: %s",
               ev->kind, ev->key, ev->channel,
               api->strerror(SC_ERR_NOT_GRANTED));
        e->n_skipped++;
        return;
    }
    int rc = api->publish(e->lg.host, ev->channel, ev->kind, ev->key,
                          ev->data);
    if (rc != SC_OK) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "publish %s %s on %s failed: %s (%d)",
               ev->kind, ev->key, ev->channel, api->strerror(rc), rc);
        e->n_failed++;
        return;
    }
    e->n_published++;
}

/* Look at the register; publish what changed. */
static void
scan(energy_t *e)
{
    int rc = en_register_scan(e->reg, &e->lg);
    if (rc < 0 || (rc == 0 && e->loaded))
        return;
    const en_entry_t *const *view = NULL;
    long n = en_register_view(e->reg, &e->lg, &view);
    if (n < 0)
        return;
    int quiet = !e->loaded && !e->publish_on_start;
    e->n_published = e->n_failed = e->n_skipped = 0;
    long events = en_known_apply(e->known, view, (size_t)n, quiet, emit, e);
    if (events < 0) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "out of memory comparing the "
               "register; will retry at the next change");
        return;
    }
    if (!e->loaded)
        EN_LOG(&e->lg, SC_LOG_INFO, "register %s: %ld entries loaded%s",
               e->dir, n, quiet ? " (publish_on_start = false)" : "");
    if (events > 0 && !quiet)
        EN_LOG(&e->lg, SC_LOG_INFO, "%ld event%s: %zu published, %zu "
               "failed, %zu on channels not granted", events,
               events == 1 ? "" : "s", e->n_published, e->n_failed,
               e->n_skipped);
    e->loaded = 1;
}

/* --------------------------------------------------------- the loop -- */

static void
on_kick(sc_host_t *host, int timer_id, void *arg)
{
    (void)host;
    (void)timer_id;
    energy_t *e = arg;
    e->kick_timer = 0; /* one-shot: the host removed it */
    scan(e);
}

static void
on_poll(sc_host_t *host, int timer_id, void *arg)
{
    (void)host;
    (void)timer_id;
    scan(arg);
}

/* inotify: something in the directory changed. Drain the events and scan
 * once the burst has settled; the poll timer remains the safety net. */
static void
on_inotify(sc_host_t *host, int fd, unsigned events, void *arg)
{
    (void)events;
    energy_t *e = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof buf) > 0)
        ;
    if (e->kick_timer == 0) {
        int id = e->lg.api->timer_add(host, SETTLE_MS, 0, on_kick, e);
        e->kick_timer = id > 0 ? id : 0;
    }
}

static void
watch_directory(energy_t *e)
{
    const sc_host_api_t *api = e->lg.api;
    if (!SC_HOST_HAS(api, fd_watch) || !SC_HOST_HAS(api, fd_unwatch))
        return;
    e->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (e->ino_fd < 0) {
        EN_LOG(&e->lg, SC_LOG_DEBUG, "inotify unavailable (%s); polling "
               "only", strerror(errno));
        return;
    }
    if (inotify_add_watch(e->ino_fd, e->dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                          IN_CREATE | IN_DELETE | IN_ATTRIB) < 0 ||
        api->fd_watch(e->lg.host, e->ino_fd, SC_FD_READ, on_inotify, e)
            != SC_OK) {
        EN_LOG(&e->lg, SC_LOG_DEBUG, "cannot watch %s with inotify; "
               "polling only", e->dir);
        close(e->ino_fd);
        e->ino_fd = -1;
    }
}

/* ------------------------------------------------------- life cycle -- */

static void energy_fini(sc_host_t *host, void *state);

static int
read_settings(energy_t *e)
{
    const sc_host_api_t *api = e->lg.api;
    sc_host_t *host = e->lg.host;
    const char *dir = NULL;
    int rc;
    if ((rc = api->setting_string(host, "register_dir", &dir)) != SC_OK ||
        !dir || !*dir) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "register_dir: %s",
               rc != SC_OK ? api->strerror(rc) : "empty");
        return SC_ERR_ARG;
    }
    if (!(e->dir = strdup(dir)))
        return SC_ERR_NO_MEMORY;
    if ((rc = api->setting_int(host, "poll_interval_ms", &e->poll_ms))
            != SC_OK ||
        e->poll_ms < POLL_MIN_MS || e->poll_ms > POLL_MAX_MS) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "poll_interval_ms: %s",
               rc != SC_OK ? api->strerror(rc)
                           : "must be 10..3600000");
        return SC_ERR_ARG;
    }
    if ((rc = api->setting_bool(host, "publish_on_start",
                                &e->publish_on_start)) != SC_OK) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "publish_on_start: %s",
               api->strerror(rc));
        return SC_ERR_ARG;
    }
    struct stat st;
    if (stat(e->dir, &st) < 0) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "register_dir %s: %s", e->dir,
               strerror(errno));
        return SC_ERR_ARG;
    }
    if (!S_ISDIR(st.st_mode)) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "register_dir %s: not a directory",
               e->dir);
        return SC_ERR_ARG;
    }
    return SC_OK;
}

/* Which of our six channels the host granted; say which are not. */
static int
read_grants(energy_t *e)
{
    const sc_host_api_t *api = e->lg.api;
    size_t n = api->channel_count(e->lg.host);
    int any = 0;
    for (int s = 0; s < N_SUBSECTORS; s++)
        for (int k = 0; k < EN_KINDS; k++) {
            char topic[EN_CHANNEL_BUF + 1];
            if (en_channel(topic, sizeof topic - 1, (en_kind_t)k,
                           subsectors[s]) < 0)
                continue;
            size_t tl = strlen(topic);
            topic[tl] = '.';
            topic[tl + 1] = '\0';
            for (size_t i = 0; i < n && !e->granted[s][k]; i++) {
                const char *g = api->channel_at(e->lg.host, i);
                size_t gl = g ? strlen(g) : 0;
                e->granted[s][k] = gl && gl <= tl + 1 &&
                                   !memcmp(g, topic, gl);
            }
            topic[tl] = '\0';
            if (e->granted[s][k])
                any = 1;
            else
                EN_LOG(&e->lg, SC_LOG_WARN, "%s: %s; its entries are not "
                       "published", topic,
                       api->strerror(SC_ERR_NOT_GRANTED));
        }
    if (!any) {
        EN_LOG(&e->lg, SC_LOG_ERROR, "no energy.<subsector>.tasks or "
               ".standards channel is granted; nothing to do");
        return SC_ERR_NOT_GRANTED;
    }
    return SC_OK;
}

static int
energy_init(sc_host_t *host, const sc_host_api_t *api, void **state)
{
    /* The whole ABI 1 table, up to request_stop, must be there. */
    if (!api || !state || !SC_HOST_HAS(api, request_stop))
        return SC_ERR_INTERNAL;
    energy_t *e = calloc(1, sizeof *e);
    if (!e) {
        api->log(host, SC_LOG_ERROR, "out of memory");
        return SC_ERR_NO_MEMORY;
    }
    e->lg.host = host;
    e->lg.api = api;
    e->ino_fd = -1;
    int rc = read_settings(e);
    if (rc == SC_OK)
        rc = read_grants(e);
    if (rc == SC_OK && (!(e->reg = en_register_new(e->dir)) ||
                        !(e->known = en_known_new())))
        rc = SC_ERR_NO_MEMORY;
    if (rc == SC_OK) {
        /* First scan on the loop, right away; then every poll_ms. */
        e->kick_timer = api->timer_add(host, 0, 0, on_kick, e);
        e->poll_timer = api->timer_add(host, (uint32_t)e->poll_ms, 1,
                                       on_poll, e);
        if (e->kick_timer < 0 || e->poll_timer < 0) {
            rc = e->kick_timer < 0 ? e->kick_timer : e->poll_timer;
            EN_LOG(&e->lg, SC_LOG_ERROR, "timer: %s", api->strerror(rc));
        }
    }
    if (rc != SC_OK) {
        energy_fini(host, e); /* fini is not called after a failed init */
        return rc;
    }
    watch_directory(e);
    EN_LOG(&e->lg, SC_LOG_INFO, "register %s, polled every %lld ms%s",
           e->dir, (long long)e->poll_ms,
           e->ino_fd >= 0 ? " and watched with inotify" : "");
    *state = e;
    return SC_OK;
}

static void
energy_fini(sc_host_t *host, void *state)
{
    energy_t *e = state;
    if (!e)
        return;
    const sc_host_api_t *api = e->lg.api;
    if (e->kick_timer > 0)
        api->timer_cancel(host, e->kick_timer);
    if (e->poll_timer > 0)
        api->timer_cancel(host, e->poll_timer);
    if (e->ino_fd >= 0) {
        api->fd_unwatch(host, e->ino_fd);
        close(e->ino_fd);
    }
    en_register_destroy(&e->reg);
    en_known_destroy(&e->known);
    free(e->dir);
    free(e);
}

static const sc_plugin_t energy_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    .name = "energy",
    .version = "1.0.0",
    .description = "hydrogen, nuclear/SMR and LNG tasks and standards from "
                   "a register directory",
    .settings = energy_settings,
    .init = energy_init,
    .fini = energy_fini,
};

SC_PLUGIN_EXPORT const sc_plugin_t *
sc_plugin_entry(uint32_t host_abi)
{
    /* A host older than our ABI does not know our table: decline. A newer
     * host speaks ours too and decides from .abi_version. */
    if (host_abi < SC_PLUGIN_ABI_VERSION)
        return NULL;
    return &energy_plugin;
}
