/*
 * ops.c - see ops.h. Owns the lifetime of status, audit, control and
 * http, and the broker's metric definitions. Never touches the journal or
 * the sockets of the pipeline.
 */
#include "ops.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

struct sc_ops {
    sc_status_t *status;
    sc_audit_t *audit;
    sc_control_t *control;
    sc_http_t *http;
    char *data_dir;
};

static struct {
    sc_metric_t *published, *bytes, *refused, *refused_bytes, *group_size, *commit,
        *sign, *subs, *connected, *requests, *restarts, *plugin_up,
        *journal_bytes, *journal_errors, *connections, *keys_rejected, *up;
} M;

static _Atomic(sc_ops_t *) g_ops;

static const double LATENCY[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                 0.005,  0.01,    0.025,  0.05,  0.1,
                                 0.25,   0.5,     1,      2.5};
static const double SIZES[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static void define_metrics(void)
{
    M.published = sc_metric_counter(
        "sectorcast_messages_published_total",
        "Messages signed, journaled and sent, per channel and plugin.",
        "channel,plugin");
    M.bytes = sc_metric_counter(
        "sectorcast_bytes_published_total",
        "Bytes of signed messages (JWS) sent, per channel and plugin.",
        "channel,plugin");
    M.refused = sc_metric_counter(
        "sectorcast_messages_refused_total",
        "Publishes refused (by the plugin's host, in the broker or in an "
        "isolated plugin's process, or by the core), per channel, plugin "
        "and reason.",
        "channel,plugin,reason");
    M.refused_bytes = sc_metric_counter(
        "sectorcast_bytes_refused_total",
        "Data bytes (the JSON the plugin passed) of refused publishes, per "
        "channel, plugin and reason.",
        "channel,plugin,reason");
    M.group_size = sc_metric_histogram(
        "sectorcast_group_size", "Messages per journal group commit.", NULL,
        SIZES, sizeof SIZES / sizeof SIZES[0]);
    M.commit = sc_metric_histogram(
        "sectorcast_group_commit_seconds",
        "Time to sequence, sign and commit one group to the journal.", NULL,
        LATENCY, sizeof LATENCY / sizeof LATENCY[0]);
    M.sign = sc_metric_histogram("sectorcast_sign_seconds",
                                 "Time to sign one message (JWS EdDSA).",
                                 NULL, LATENCY,
                                 sizeof LATENCY / sizeof LATENCY[0]);
    M.subs = sc_metric_counter(
        "sectorcast_subscriptions_total",
        "Subscriptions granted or refused, per agency.", "agency,result");
    M.connected = sc_metric_gauge(
        "sectorcast_subscribers_connected",
        "Connections with at least one live subscription, per agency.",
        "agency");
    M.connections = sc_metric_counter(
        "sectorcast_connections_total",
        "Agency connections admitted (CURVE handshake), per agency.",
        "agency");
    M.keys_rejected = sc_metric_counter(
        "sectorcast_keys_rejected_total",
        "Connections refused because their CURVE key is not an agency's.",
        NULL);
    M.requests = sc_metric_counter(
        "sectorcast_requests_total",
        "Replay and snapshot requests, per agency, kind and result.",
        "agency,kind,result");
    M.restarts = sc_metric_counter("sectorcast_plugin_restarts_total",
                                   "Plugin restarts (after a crash or by "
                                   "sectorcast-ctl), per plugin.",
                                   "plugin");
    M.plugin_up = sc_metric_gauge("sectorcast_plugin_up",
                                  "1 if the plugin runs, 0 if not.", "plugin");
    M.journal_bytes = sc_metric_gauge("sectorcast_journal_bytes",
                                      "Size of the journal files on disk.",
                                      NULL);
    M.journal_errors = sc_metric_counter(
        "sectorcast_journal_write_errors_total",
        "Group commits the journal refused (publishing pauses meanwhile).",
        NULL);
    M.up = sc_metric_gauge("sectorcast_up", "1 while the broker runs.", NULL);
}

static void collect(void *ud)
{
    sc_ops_t *o = ud;
    struct stat st;
    char p[4096];
    double total = 0;
    snprintf(p, sizeof p, "%s/journal.db", o->data_dir);
    if (stat(p, &st) == 0)
        total += (double)st.st_size;
    snprintf(p, sizeof p, "%s/journal.db-wal", o->data_dir);
    if (stat(p, &st) == 0)
        total += (double)st.st_size;
    sc_metric_set(M.journal_bytes, total);
    /* connected subscribers per agency, from the status snapshot */
    json_t *ags = sc_status_json_agencies(o->status);
    size_t i;
    json_t *a;
    json_array_foreach(ags, i, a) {
        sc_metric_set(M.connected,
                      (double)json_integer_value(
                          json_object_get(a, "connections")),
                      json_string_value(json_object_get(a, "agency")));
    }
    json_decref(ags);
}

sc_ops_t *sc_ops_new(void *zctx, const sc_config_t *cfg, const char *epoch,
                     char *err, size_t errlen)
{
    sc_ops_t *o = calloc(1, sizeof *o);
    if (!o || !(o->data_dir = strdup(cfg->data_dir))) {
        free(o);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    define_metrics();
    sc_metric_set(M.up, 1);
    if (!(o->status = sc_status_new())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sc_status_set_config(o->status, cfg, epoch);
    if (cfg->audit_path &&
        !(o->audit = sc_audit_new(cfg->audit_path, cfg->audit_max_bytes,
                                  (int)cfg->audit_keep, err, errlen)))
        goto fail;
    if (cfg->control_enabled &&
        !(o->control = sc_control_new(zctx, cfg, o->status, err, errlen)))
        goto fail;
    if (cfg->http_listen &&
        !(o->http = sc_http_new(cfg->http_listen, o->status, err, errlen)))
        goto fail;
    sc_metrics_on_collect(collect, o);
    atomic_store(&g_ops, o);
    return o;
fail:
    sc_ops_destroy(&o);
    return NULL;
}

void sc_ops_destroy(sc_ops_t **o_p)
{
    if (!o_p || !*o_p)
        return;
    sc_ops_t *o = *o_p;
    sc_metrics_off_collect(collect, o);
    sc_http_destroy(&o->http);
    sc_control_destroy(&o->control);
    if (atomic_load(&g_ops) == o)
        atomic_store(&g_ops, NULL);
    sc_audit_destroy(&o->audit);
    sc_status_destroy(&o->status);
    free(o->data_dir);
    free(o);
    *o_p = NULL;
}

void sc_ops_reconfigure(sc_ops_t *o, const sc_config_t *cfg)
{
    if (!o)
        return;
    sc_status_set_config(o->status, cfg, NULL);
    sc_status_plugins_prune(o->status, cfg);
    sc_audit_set_limits(o->audit, cfg->audit_max_bytes, (int)cfg->audit_keep);
}

sc_control_t *sc_ops_control(sc_ops_t *o) { return o ? o->control : NULL; }

int sc_ops_reopen_logs(sc_ops_t *o, char *err, size_t errlen)
{
    if (o)
        sc_audit_reopen(o->audit);
    return sc_log_reopen(err, errlen);
}

double sc_ops_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* hooks                                                               */

static sc_status_t *st(void)
{
    sc_ops_t *o = atomic_load(&g_ops);
    return o ? o->status : NULL;
}

void sc_ops_channel_head(const char *channel, uint64_t head)
{
    sc_status_channel_head(st(), channel, head);
}

void sc_ops_published(const char *channel, const char *plugin, uint64_t head,
                      uint64_t n, size_t bytes)
{
    sc_metric_add(M.published, (double)n, channel, plugin);
    sc_metric_add(M.bytes, (double)bytes, channel, plugin);
    sc_status_published(st(), channel, plugin, head, n, bytes);
}

void sc_ops_refused(const char *plugin, const char *channel,
                    const char *reason, size_t bytes)
{
    const char *ch = channel && channel[0] ? channel : "(invalid)";
    sc_metric_add(M.refused, 1, ch, plugin, reason);
    sc_metric_add(M.refused_bytes, (double)bytes, ch, plugin, reason);
    sc_status_refused(st(), plugin);
}

void sc_ops_group(size_t n, double commit_seconds)
{
    sc_metric_observe(M.group_size, (double)n);
    sc_metric_observe(M.commit, commit_seconds);
}

void sc_ops_signed(double seconds) { sc_metric_observe(M.sign, seconds); }

void sc_ops_journal(const char *error)
{
    if (error)
        sc_metric_add(M.journal_errors, 1);
    sc_status_journal_result(st(), error);
}

void sc_ops_subscription(int fd, const char *agency, const char *subtree,
                         const char *refusal)
{
    const char *ag = agency ? agency : "?";
    sc_metric_add(M.subs, 1, ag, refusal ? "refused" : "granted");
    if (refusal)
        sc_status_sub_refused(st(), ag);
    else
        sc_status_subscribed(st(), fd, ag, subtree);
    json_t *f = json_pack("{s:s, s:s, s:s}", "agency", ag, "subtree",
                          subtree ? subtree : "", "result",
                          refusal ? "refused" : "granted");
    if (f && refusal)
        json_object_set_new(f, "reason", json_string(refusal));
    sc_audit("subscription", f);
}

void sc_ops_unsubscribed(int fd, const char *agency, const char *subtree)
{
    sc_status_unsubscribed(st(), fd, subtree);
    sc_audit("unsubscription", json_pack("{s:s, s:s}", "agency",
                                         agency ? agency : "?", "subtree",
                                         subtree ? subtree : ""));
}

void sc_ops_disconnected(int fd) { sc_status_conn_closed(st(), fd); }

void sc_ops_connected(const char *agency, const char *addr)
{
    sc_metric_add(M.connections, 1, agency);
    sc_audit("connection", json_pack("{s:s, s:s}", "agency", agency,
                                     "address", addr ? addr : "?"));
}

void sc_ops_key_rejected(const char *z85, const char *addr)
{
    sc_metric_add(M.keys_rejected, 1);
    sc_audit("key_rejected", json_pack("{s:s, s:s, s:s}", "endpoint",
                                       "agencies", "public_key",
                                       z85 ? z85 : "?", "address",
                                       addr ? addr : "?"));
}

void sc_ops_request(const char *agency, const char *kind, const char *channel,
                    uint64_t from, uint64_t count, const char *refusal)
{
    const char *ag = agency ? agency : "?";
    sc_metric_add(M.requests, 1, ag, kind, refusal ? "refused" : "served");
    json_t *f = json_pack("{s:s, s:s, s:s}", "agency", ag,
                          strcmp(kind, "replay") == 0 ? "channel" : "subtree",
                          channel ? channel : "", "result",
                          refusal ? "refused" : "served");
    if (f && strcmp(kind, "replay") == 0)
        json_object_set_new(f, "from", json_integer((json_int_t)from));
    if (f && !refusal)
        json_object_set_new(f, "count", json_integer((json_int_t)count));
    if (f && refusal)
        json_object_set_new(f, "reason", json_string(refusal));
    sc_audit(kind, f);
}

void sc_ops_plugin(const char *name, const char *state, int pid,
                   const char *error)
{
    sc_metric_set(M.plugin_up, strcmp(state, "running") == 0 ? 1 : 0, name);
    /* a start after a previous run is a restart */
    if (sc_status_plugin(st(), name, state, pid, error))
        sc_metric_add(M.restarts, 1, name);
}

void sc_ops_plugin_crashed(const char *name, const char *why)
{
    sc_metric_set(M.plugin_up, 0, name);
    sc_status_plugin_crashed(st(), name, why);
    sc_audit("plugin_crash", json_pack("{s:s, s:s}", "plugin", name, "reason",
                                       why ? why : "?"));
}
