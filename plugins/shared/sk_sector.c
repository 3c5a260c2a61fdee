/*
 * sk_sector.c - a whole sector plugin from its sk_sector_t: settings,
 * grants, the loop, and publishing.
 *
 * Never: parsing files (sk_register.c), deciding what changed
 * (sk_known.c), the schema (sk_schema.c), alert rules (sk_alerts.c).
 */
#include "sk_sector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sk_alerts.h"
#include "sk_known.h"
#include "sk_register.h"
#include "sk_schema.h"
#include "sk_store.h"

#define POLL_MIN_MS 10
#define POLL_MAX_MS 3600000
/* After an inotify event, wait this long for a burst of writes to end. */
#define SETTLE_MS 50
/* Version of what this kit keeps in the plugin state. */
#define STATE_FORMAT "1"

/* One further level of an alert rule. */
static const sc_setting_def_t level_fields[] = {
    SC_SETTING("threshold", SC_SETTING_FLOAT, NULL, 1,
      "value past which this level applies; further past than the level "
      "before"),
    { SC_SETTING_FIELDS("severity", SC_SETTING_STRING, NULL, 1,
        "CAP severity of this level; higher than the level before"),
      .allowed = sk_cap_severity },
    SC_SETTINGS_END
};

/* One alert rule: an indicator series, a direction, 1..4 levels. */
static const sc_setting_def_t rule_fields[] = {
    SC_SETTING("indicator", SC_SETTING_STRING, NULL, 1,
      "series id of an indicator in the register, e.g. lng_inventory_days"),
    { SC_SETTING_FIELDS("op", SC_SETTING_STRING, NULL, 1,
        "\"<\" or \"<=\": low values are bad; \">\" or \">=\": high values "
        "are bad"),
      .allowed = sk_rule_ops },
    SC_SETTING("threshold", SC_SETTING_FLOAT, NULL, 1,
      "value past which the alert is raised (first level)"),
    { SC_SETTING_FIELDS("severity", SC_SETTING_STRING, NULL, 1,
        "CAP severity of the first level"),
      .allowed = sk_cap_severity },
    { SC_SETTING_FIELDS("escalate", SC_SETTING_GROUP, NULL, 0,
        "further levels ( { threshold; severity; }, ... ), each further "
        "past and more severe"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MAX, .max = 3,
      .fields = level_fields },
    SC_SETTING("clear", SC_SETTING_FLOAT, NULL, 0,
      "value back past which the alert clears (a band against flapping); "
      "needed unless consecutive >= 2"),
    { SC_SETTING_FIELDS("consecutive", SC_SETTING_INT, "1", 0,
        "observations in a row needed to move a level"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 1, .max = 100 },
    { SC_SETTING_FIELDS("urgency", SC_SETTING_STRING, "Future", 0,
        "CAP urgency"),
      .allowed = sk_cap_urgency },
    { SC_SETTING_FIELDS("certainty", SC_SETTING_STRING, "Likely", 0,
        "CAP certainty"),
      .allowed = sk_cap_certainty },
    { SC_SETTING_FIELDS("category", SC_SETTING_STRING, "Other", 0,
        "CAP category"),
      .allowed = sk_cap_category },
    SC_SETTINGS_END
};

const sc_setting_def_t sk_sector_settings[] = {
    SC_SETTING("register_dir", SC_SETTING_PATH, NULL, 1,
      "directory of the register: *.json files of tasks, standards and "
      "indicator series"),
    { SC_SETTING_FIELDS("poll_interval_ms", SC_SETTING_INT, "1000", 0,
        "how often to look for changed files, in ms"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = POLL_MIN_MS,
      .max = POLL_MAX_MS },
    SC_SETTING("publish_on_start", SC_SETTING_BOOL, "true", 0,
      "publish what changed since the last run at start (false: take the "
      "register as published, only later changes)"),
    { SC_SETTING_FIELDS("alert_rules", SC_SETTING_GROUP, NULL, 0,
        "supply-chain alert rules, a list of groups (docs/sectors.md)"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MAX, .max = 64,
      .fields = rule_fields },
    SC_SETTING("alert_sender", SC_SETTING_STRING, NULL, 0,
      "CAP sender of alerts (no spaces or commas); default "
      "sectorcast.<instance>"),
    SC_SETTINGS_END
};

typedef struct sector {
    const sk_sector_t *sec;
    sk_log_t lg;
    char *dir;
    int64_t poll_ms;
    int publish_on_start;

    sk_store_t *store;
    sk_register_t *reg;
    sk_known_t *known;
    sk_alerts_t *alerts;
    size_t n_rules;
    int loaded;          /* the first scan has been applied */
    int retry;           /* some publish failed for now: apply again */

    int poll_timer;      /* repeating */
    int kick_timer;      /* one-shot: first scan, or after inotify */
    int ino_fd;          /* -1 without inotify */

    size_t n_subs;
    int (*granted)[SK_KINDS]; /* [subsector][kind] */
    /* counters of the current apply, for its summary line */
    size_t n_published, n_failed, n_skipped;
    /* publish failures logged at the last apply: "kind|key|rc" -> true;
     * the same failure at the next retry is logged at debug level */
    json_t *failed_before, *failed_now;
} sector_t;

/* ------------------------------------------------------- publishing -- */

/* Is `channel` one of ours and granted? */
static int
is_granted(void *ctx, const char *channel)
{
    sector_t *s = ctx;
    for (size_t i = 0; i < s->n_subs; i++)
        for (int k = 0; k < SK_KINDS; k++) {
            char ch[SK_CHANNEL_BUF];
            if (sk_channel(s->sec, (sk_kind_t)k, s->sec->subsectors[i], ch,
                           sizeof ch) == 0 && !strcmp(ch, channel))
                return s->granted[i][k];
        }
    return 0;
}

/* A failure that will not go away by trying the same content again. */
static int
permanent(int rc)
{
    return rc == SC_ERR_ARG || rc == SC_ERR_NOT_GRANTED ||
           rc == SC_ERR_BAD_JSON || rc == SC_ERR_TOO_BIG;
}

static sk_outcome_t
emit(void *ctx, const sk_event_t *ev)
{
    sector_t *s = ctx;
    const sc_host_api_t *api = s->lg.api;
    if (!is_granted(s, ev->channel)) {
        /* said once at init; here only at debug level */
        SK_LOG(&s->lg, SC_LOG_DEBUG, "%s %s on %s not published: %s",
               ev->kind, ev->key, ev->channel,
               api->strerror(SC_ERR_NOT_GRANTED));
        s->n_skipped++;
        return SK_DROPPED;
    }
    int rc = api->publish(s->lg.host, ev->channel, ev->kind, ev->key,
                          ev->data);
    if (rc == SC_OK) {
        s->n_published++;
        return SK_SENT;
    }
    s->n_failed++;
    char sig[SK_ID_MAX + 96];
    snprintf(sig, sizeof sig, "%s|%s|%s|%d", ev->channel, ev->kind, ev->key,
             rc);
    int again = json_object_get(s->failed_before, sig) != NULL;
    json_object_set_new(s->failed_now, sig, json_true());
    /* an alert is never dropped: its rule waits at that observation */
    sk_outcome_t o = permanent(rc) && strncmp(ev->kind, "alert.", 6) != 0
                         ? SK_DROPPED : SK_RETRY;
    SK_LOG(&s->lg, again ? SC_LOG_DEBUG : SC_LOG_ERROR,
           "publish %s %s on %s failed: %s (%d)%s", ev->kind, ev->key,
           ev->channel, api->strerror(rc), rc,
           o == SK_DROPPED ? "; not retried until it changes"
                           : "; retried at the next poll");
    return o;
}

/* Look at the register; publish what changed. */
static void
scan(sector_t *s)
{
    int rc = sk_register_scan(s->reg, &s->lg);
    if (rc < 0 || (rc == 0 && s->loaded && !s->retry))
        return;
    const sk_entry_t *const *view = NULL;
    long n = sk_register_view(s->reg, &s->lg, &view);
    if (n < 0)
        return;
    int quiet = !s->loaded && !s->publish_on_start;
    int retry_known = 0, retry_alerts = 0;
    s->n_published = s->n_failed = s->n_skipped = 0;
    json_object_clear(s->failed_now);
    long events = sk_known_apply(s->known, view, (size_t)n, quiet, emit, s,
                                 &retry_known);
    if (events < 0) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "out of memory comparing the "
               "register; will retry at the next poll");
        s->retry = 1;
        return;
    }
    long alerts = sk_alerts_apply(s->alerts, view, (size_t)n, emit,
                                  is_granted, s, &s->lg, &retry_alerts);
    /* failures seen now are the ones "seen before" at the next apply */
    json_t *t = s->failed_before;
    s->failed_before = s->failed_now;
    s->failed_now = t;
    s->retry = retry_known || retry_alerts;
    if (!s->loaded)
        SK_LOG(&s->lg, SC_LOG_INFO, "register %s: %ld entries loaded%s",
               s->dir, n, quiet ? " (publish_on_start = false)" : "");
    if ((events > 0 && !quiet) || alerts > 0 || s->n_failed > 0)
        SK_LOG(&s->lg, SC_LOG_INFO, "%ld event%s and %ld alert message%s: "
               "%zu published, %zu failed, %zu on channels not granted",
               quiet ? 0 : events, events == 1 && !quiet ? "" : "s", alerts,
               alerts == 1 ? "" : "s", s->n_published, s->n_failed,
               s->n_skipped);
    s->loaded = 1;
}

/* --------------------------------------------------------- the loop -- */

static void
on_kick(sc_host_t *host, int timer_id, void *arg)
{
    (void)host;
    (void)timer_id;
    sector_t *s = arg;
    s->kick_timer = 0; /* one-shot: the host removed it */
    scan(s);
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
    sector_t *s = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof buf) > 0)
        ;
    if (s->kick_timer == 0) {
        int id = s->lg.api->timer_add(host, SETTLE_MS, 0, on_kick, s);
        s->kick_timer = id > 0 ? id : 0;
    }
}

static void
watch_directory(sector_t *s)
{
    const sc_host_api_t *api = s->lg.api;
    if (!SC_HOST_HAS(api, fd_watch) || !SC_HOST_HAS(api, fd_unwatch))
        return;
    s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ino_fd < 0) {
        SK_LOG(&s->lg, SC_LOG_DEBUG, "inotify unavailable (%s); polling "
               "only", strerror(errno));
        return;
    }
    if (inotify_add_watch(s->ino_fd, s->dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                          IN_CREATE | IN_DELETE | IN_ATTRIB) < 0 ||
        api->fd_watch(s->lg.host, s->ino_fd, SC_FD_READ, on_inotify, s)
            != SC_OK) {
        SK_LOG(&s->lg, SC_LOG_DEBUG, "cannot watch %s with inotify; "
               "polling only", s->dir);
        close(s->ino_fd);
        s->ino_fd = -1;
    }
}

/* ------------------------------------------------------- life cycle -- */

static int
read_settings(sector_t *s, sk_rules_t **rules, char **sender)
{
    const sc_host_api_t *api = s->lg.api;
    sc_host_t *host = s->lg.host;
    const char *dir = NULL, *snd = NULL;
    int rc;
    if ((rc = api->setting_string(host, "register_dir", &dir)) != SC_OK ||
        !dir || !*dir) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "register_dir: %s",
               rc != SC_OK ? api->strerror(rc) : "empty");
        return SC_ERR_ARG;
    }
    if (!(s->dir = strdup(dir)))
        return SC_ERR_NO_MEMORY;
    if ((rc = api->setting_int(host, "poll_interval_ms", &s->poll_ms))
            != SC_OK ||
        s->poll_ms < POLL_MIN_MS || s->poll_ms > POLL_MAX_MS) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "poll_interval_ms: %s",
               rc != SC_OK ? api->strerror(rc)
                           : "must be 10..3600000");
        return SC_ERR_ARG;
    }
    if ((rc = api->setting_bool(host, "publish_on_start",
                                &s->publish_on_start)) != SC_OK) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "publish_on_start: %s",
               api->strerror(rc));
        return SC_ERR_ARG;
    }
    rc = api->setting_string(host, "alert_sender", &snd);
    if (rc == SC_ERR_NO_SETTING)
        snd = NULL;
    else if (rc != SC_OK) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "alert_sender: %s", api->strerror(rc));
        return SC_ERR_ARG;
    }
    int problems = 0;
    if (!(*rules = sk_rules_read(host, api, &problems)))
        return problems ? SC_ERR_BAD_SETTING : SC_ERR_NO_MEMORY;
    if (snd && *snd) {
        if (!sk_cap_sender_valid(snd)) {
            SK_LOG(&s->lg, SC_LOG_ERROR, "alert_sender: \"%s\" cannot be a "
                   "CAP sender (1..255 bytes without spaces, commas, '<' or "
                   "'&')", snd);
            return SC_ERR_ARG;
        }
        *sender = strdup(snd);
    } else {
        const char *inst = api->instance_name(host);
        size_t len = strlen(inst ? inst : "") + 16;
        if ((*sender = malloc(len)))
            snprintf(*sender, len, "sectorcast.%s", inst ? inst : "");
    }
    if (!*sender)
        return SC_ERR_NO_MEMORY;
    struct stat st;
    if (stat(s->dir, &st) < 0) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "register_dir %s: %s", s->dir,
               strerror(errno));
        return SC_ERR_ARG;
    }
    if (!S_ISDIR(st.st_mode)) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "register_dir %s: not a directory",
               s->dir);
        return SC_ERR_ARG;
    }
    return SC_OK;
}

/* Which of our channels the host granted; say which are not. Alert
 * channels count only when there are alert rules. */
static int
read_grants(sector_t *s)
{
    const sc_host_api_t *api = s->lg.api;
    size_t n = api->channel_count(s->lg.host);
    int any = 0;
    for (size_t i = 0; i < s->n_subs; i++)
        for (int k = 0; k < SK_KINDS; k++) {
            char topic[SK_CHANNEL_BUF + 1];
            if (sk_channel(s->sec, (sk_kind_t)k, s->sec->subsectors[i],
                           topic, sizeof topic - 1) < 0)
                continue;
            size_t tl = strlen(topic);
            topic[tl] = '.';
            topic[tl + 1] = '\0';
            for (size_t j = 0; j < n && !s->granted[i][k]; j++) {
                const char *g = api->channel_at(s->lg.host, j);
                size_t gl = g ? strlen(g) : 0;
                s->granted[i][k] = gl && gl <= tl + 1 &&
                                   !memcmp(g, topic, gl);
            }
            topic[tl] = '\0';
            if (k == SK_INDICATOR && s->n_rules == 0)
                continue;
            if (s->granted[i][k])
                any = 1;
            else
                SK_LOG(&s->lg, SC_LOG_WARN, "%s: %s; its %s not published",
                       topic, api->strerror(SC_ERR_NOT_GRANTED),
                       k == SK_INDICATOR ? "alerts are" : "entries are");
        }
    if (!any) {
        SK_LOG(&s->lg, SC_LOG_ERROR, "none of the %s channels is granted; "
               "nothing to do", s->sec->name);
        return SC_ERR_NOT_GRANTED;
    }
    return SC_OK;
}

/* Durable state: say what a restart will do, check its format, load. */
static int
open_state(sector_t *s)
{
    if (!sk_store_durable(s->store)) {
        SK_LOG(&s->lg, SC_LOG_WARN, "this host has no durable plugin state "
               "(an older broker): what was published is remembered in "
               "memory only, and a restart publishes the register again");
        return SC_OK;
    }
    char *fmt = NULL;
    int rc = sk_store_get(s->store, "kit", "format", &fmt);
    if (rc == SC_ERR_NOT_FOUND) {
        sk_store_put(s->store, "kit", "format", STATE_FORMAT);
    } else if (rc == SC_OK && strcmp(fmt, STATE_FORMAT) != 0) {
        SK_LOG(&s->lg, SC_LOG_WARN, "plugin state has format %s, this "
               "plugin writes format %s; records it cannot read are "
               "ignored", fmt, STATE_FORMAT);
    }
    free(fmt);
    long known = sk_known_load(s->known, &s->lg);
    long alerts = sk_alerts_load(s->alerts, &s->lg);
    if (known < 0 || alerts < 0)
        SK_LOG(&s->lg, SC_LOG_WARN, "plugin state could not be read: what "
               "differs from an empty memory is published again");
    else
        SK_LOG(&s->lg, SC_LOG_INFO, "plugin state: %ld published entr%s and "
               "%ld alert state%s remembered", known, known == 1 ? "y" : "ies",
               alerts, alerts == 1 ? "" : "s");
    return SC_OK;
}

/* setting_problem(), or a log line on a host without it. */
static void
problem(sc_host_t *host, const sc_host_api_t *api, const char *path,
        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
problem(sc_host_t *host, const sc_host_api_t *api, const char *path,
        const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (SC_HOST_HAS(api, setting_problem))
        api->setting_problem(host, path, "%s", text);
    else
        api->log(host, SC_LOG_ERROR, "setting '%s': %s", path, text);
}

int
sk_sector_check(sc_host_t *host, const sc_host_api_t *api)
{
    int bad = 0;
    const char *dir = NULL, *snd = NULL;
    struct stat st;
    if (api->setting_string(host, "register_dir", &dir) == SC_OK && dir) {
        if (stat(dir, &st) < 0) {
            problem(host, api, "register_dir", "%s: %s", dir,
                    strerror(errno));
            bad++;
        } else if (!S_ISDIR(st.st_mode)) {
            problem(host, api, "register_dir", "%s: not a directory", dir);
            bad++;
        }
    }
    if (api->setting_string(host, "alert_sender", &snd) == SC_OK && snd &&
        *snd && !sk_cap_sender_valid(snd)) {
        problem(host, api, "alert_sender", "\"%s\" cannot be a CAP sender "
                "(1..255 bytes without spaces, commas, '<' or '&')", snd);
        bad++;
    }
    int problems = 0;
    sk_rules_t *rules = sk_rules_read(host, api, &problems);
    sk_rules_destroy(&rules);
    return bad || problems ? SC_ERR_BAD_SETTING : SC_OK;
}

int
sk_sector_init(const sk_sector_t *sec, sc_host_t *host,
               const sc_host_api_t *api, void **state)
{
    /* The whole ABI 1 table, up to request_stop, must be there. */
    if (!sec || !api || !state || !SC_HOST_HAS(api, request_stop))
        return SC_ERR_INTERNAL;
    sector_t *s = calloc(1, sizeof *s);
    if (!s) {
        api->log(host, SC_LOG_ERROR, "out of memory");
        return SC_ERR_NO_MEMORY;
    }
    s->sec = sec;
    s->lg.host = host;
    s->lg.api = api;
    s->ino_fd = -1;
    while (sec->subsectors[s->n_subs])
        s->n_subs++;
    sk_rules_t *rules = NULL;
    char *sender = NULL;
    int rc = SC_OK;
    if (!(s->granted = calloc(s->n_subs ? s->n_subs : 1,
                              sizeof *s->granted)) ||
        !(s->failed_before = json_object()) ||
        !(s->failed_now = json_object()))
        rc = SC_ERR_NO_MEMORY;
    if (rc == SC_OK)
        rc = read_settings(s, &rules, &sender);
    s->n_rules = sk_rules_count(rules);
    if (rc == SC_OK)
        rc = read_grants(s);
    if (rc == SC_OK &&
        (!(s->store = sk_store_new(&s->lg)) ||
         !(s->reg = sk_register_new(sec, s->dir)) ||
         !(s->known = sk_known_new(sec, s->store))))
        rc = SC_ERR_NO_MEMORY;
    if (rc == SC_OK) {
        /* takes the rules, also when it fails */
        const char *inst = api->instance_name(host);
        s->alerts = sk_alerts_new(sec, rules, s->store,
                                  inst ? inst : sec->name, sender);
        rules = NULL;
        if (!s->alerts)
            rc = SC_ERR_NO_MEMORY;
    }
    sk_rules_destroy(&rules);
    if (rc == SC_OK)
        rc = open_state(s);
    if (rc == SC_OK) {
        /* First scan on the loop, right away; then every poll_ms. */
        s->kick_timer = api->timer_add(host, 0, 0, on_kick, s);
        s->poll_timer = api->timer_add(host, (uint32_t)s->poll_ms, 1,
                                       on_poll, s);
        if (s->kick_timer < 0 || s->poll_timer < 0) {
            rc = s->kick_timer < 0 ? s->kick_timer : s->poll_timer;
            SK_LOG(&s->lg, SC_LOG_ERROR, "timer: %s", api->strerror(rc));
        }
    }
    if (rc != SC_OK) {
        sk_sector_fini(host, s); /* fini is not called after a failed init */
        free(sender);
        return rc;
    }
    watch_directory(s);
    SK_LOG(&s->lg, SC_LOG_INFO, "register %s, polled every %lld ms%s; %zu "
           "alert rule%s, CAP sender %s", s->dir, (long long)s->poll_ms,
           s->ino_fd >= 0 ? " and watched with inotify" : "", s->n_rules,
           s->n_rules == 1 ? "" : "s", sender);
    free(sender);
    *state = s;
    return SC_OK;
}

void
sk_sector_fini(sc_host_t *host, void *state)
{
    sector_t *s = state;
    if (!s)
        return;
    const sc_host_api_t *api = s->lg.api;
    if (s->kick_timer > 0)
        api->timer_cancel(host, s->kick_timer);
    if (s->poll_timer > 0)
        api->timer_cancel(host, s->poll_timer);
    if (s->ino_fd >= 0) {
        api->fd_unwatch(host, s->ino_fd);
        close(s->ino_fd);
    }
    sk_alerts_destroy(&s->alerts);
    sk_register_destroy(&s->reg);
    sk_known_destroy(&s->known);
    sk_store_destroy(&s->store);
    json_decref(s->failed_before);
    json_decref(s->failed_now);
    free(s->granted);
    free(s->dir);
    free(s);
}
