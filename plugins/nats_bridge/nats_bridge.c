/*
 * nats_bridge - a sink plugin: every committed message the config's
 * `receives` grants goes to NATS JetStream, unchanged.
 *
 *   subject   <subject_prefix>.<channel>
 *   payload   the JWS compact serialization, byte for byte
 *   Nats-Msg-Id  "<epoch>:<channel>:<seq>" (msgid.h): a republish after a
 *             crash falls into the stream's duplicate window and is dropped
 *
 * Owns: one NATS connection (reconnecting across every listed server), the
 * stream check (create it, or require it, and refuse a stream whose
 * configuration differs from the settings), and one worker thread that
 * publishes in order and waits for each PubAck. The plugin thread never
 * waits on the network: deliver() only queues (bounded by max_inflight,
 * SC_ERR_LIMIT beyond), PubAcks come back through an eventfd and are
 * acknowledged to the broker (sink_ack) only then.
 *
 * One message at a time per bridge: JetStream stores what it acknowledged
 * in the order it was sent, and a retried publish (same Msg-Id) can never
 * overtake the one after it, so each channel stays in seq order in the
 * stream even across node failures and reconnects.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>
#include <sectorcast/plugin.h>

#include "msgid.h"

#define MAX_SERVERS 16

static const char *const storage_allowed[] = {"file", "memory", NULL};

static const sc_setting_def_t nb_settings[] = {
    {SC_SETTING_FIELDS("servers", SC_SETTING_STRING, NULL, 1,
                       "NATS server URLs of the cluster (nats://host:port); "
                       "the bridge reconnects across all of them"),
     .flags = SC_SETTING_F_LIST | SC_SETTING_F_MIN | SC_SETTING_F_MAX,
     .min = 1, .max = MAX_SERVERS},
    {SC_SETTING_FIELDS("subject_prefix", SC_SETTING_STRING, "sectorcast", 0,
                       "subject = <subject_prefix>.<channel>")},
    {SC_SETTING_FIELDS("stream", SC_SETTING_STRING, "SECTORCAST", 0,
                       "JetStream stream name")},
    {SC_SETTING_FIELDS("create_stream", SC_SETTING_BOOL, "true", 0,
                       "create the stream if missing (false: it must exist)")},
    {SC_SETTING_FIELDS("replicas", SC_SETTING_INT, "1", 0,
                       "stream replicas (3 for a 3-node cluster)"),
     .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 1, .max = 5},
    {SC_SETTING_FIELDS("storage", SC_SETTING_STRING, "file", 0,
                       "stream storage: file or memory"),
     .allowed = storage_allowed},
    {SC_SETTING_FIELDS("max_age_s", SC_SETTING_INT, "0", 0,
                       "stream max age in seconds (0 = unlimited)"),
     .flags = SC_SETTING_F_MIN, .min = 0},
    {SC_SETTING_FIELDS("max_msgs_per_subject", SC_SETTING_INT, "0", 0,
                       "messages kept per subject (0 = unlimited, 1 = "
                       "last-value view)"),
     .flags = SC_SETTING_F_MIN, .min = 0},
    {SC_SETTING_FIELDS("duplicate_window_s", SC_SETTING_INT, "120", 0,
                       "stream duplicate window in seconds (Nats-Msg-Id)"),
     .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 1, .max = 86400},
    {SC_SETTING_FIELDS("publish_timeout_ms", SC_SETTING_INT, "2000", 0,
                       "wait for one PubAck before publishing it again"),
     .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 100, .max = 30000},
    {SC_SETTING_FIELDS("max_inflight", SC_SETTING_INT, "1024", 0,
                       "messages queued in the bridge, not yet acknowledged"),
     .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 1, .max = 65536},
    {SC_SETTING_FIELDS("creds_file", SC_SETTING_PATH, NULL, 0,
                       "NATS credentials file (JWT + NKey seed)")},
    {SC_SETTING_FIELDS("user", SC_SETTING_STRING, NULL, 0, "NATS user")},
    {SC_SETTING_FIELDS("password", SC_SETTING_STRING, NULL, 0,
                       "NATS password (with user)")},
    {SC_SETTING_FIELDS("token", SC_SETTING_STRING, NULL, 0,
                       "NATS authentication token")},
    {SC_SETTING_FIELDS("tls", SC_SETTING_BOOL, "false", 0,
                       "require TLS to the servers")},
    {SC_SETTING_FIELDS("tls_ca", SC_SETTING_PATH, NULL, 0,
                       "CA certificates to verify the servers (PEM)")},
    {SC_SETTING_FIELDS("tls_cert", SC_SETTING_PATH, NULL, 0,
                       "client certificate (PEM), with tls_key")},
    {SC_SETTING_FIELDS("tls_key", SC_SETTING_PATH, NULL, 0,
                       "client key (PEM), with tls_cert")},
    SC_SETTINGS_END,
};

typedef struct item {
    struct item *next;
    char *subject, *msgid, *channel, *data;
    int len;
    uint64_t seq;
} item_t;

typedef struct done {
    struct done *next;
    char *channel;
    uint64_t seq;
} done_t;

typedef struct nb {
    sc_host_t *host;
    const sc_host_api_t *api;
    /* settings */
    char *servers[MAX_SERVERS];
    int n_servers;
    const char *prefix, *stream, *storage;
    const char *creds, *user, *password, *token, *tls_ca, *tls_cert, *tls_key;
    int create, tls;
    int64_t replicas, max_age_s, max_per_subject, dup_window_s, timeout_ms,
        max_inflight;

    /* worker */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item_t *head, *tail;  /* to publish, in order */
    int64_t queued;
    done_t *done;         /* published, to acknowledge (reverse order) */
    char fatal[512];
    char last_error[512];
    bool error_changed;
    atomic_int stop;
    atomic_int connected;
    int efd;
    int timer;

    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    bool stream_ok;

    /* plugin thread: last state logged */
    int logged_connected;
    uint64_t published;
} nb_t;

/* ------------------------------------------------------------------ */
/* worker thread                                                       */

static void set_error(nb_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(nb_t *b, const char *fmt, ...)
{
    char t[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&b->mu);
    if (strcmp(t, b->last_error) != 0) {
        snprintf(b->last_error, sizeof b->last_error, "%s", t);
        b->error_changed = true;
    }
    pthread_mutex_unlock(&b->mu);
}

static void wake_plugin(nb_t *b)
{
    uint64_t one = 1;
    ssize_t w = write(b->efd, &one, sizeof one);
    (void)w;
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    nb_t *b = closure;
    atomic_store(&b->connected, 0);
    wake_plugin(b);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    nb_t *b = closure;
    atomic_store(&b->connected, 1);
    wake_plugin(b);
}

/* Sleep up to ms, returning early when stopping. */
static void nap(nb_t *b, int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    if (!atomic_load(&b->stop))
        pthread_cond_timedwait(&b->cv, &b->mu, &dl);
    pthread_mutex_unlock(&b->mu);
}

/* Worker thread (and once from init, before the worker exists). */
static int connect_nats(nb_t *b)
{
    if (b->js)
        return 0;
    natsStatus s;
    if (!b->nc) {
        natsConnection *nc = NULL;
        /* with retry-on-failed-connect this returns at once while no
         * server answers, and goes on connecting in the background */
        s = natsConnection_Connect(&nc, b->opts);
        if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
            set_error(b, "cannot connect to NATS: %s", natsStatus_GetText(s));
            return -1;
        }
        atomic_store(&b->connected, s == NATS_OK);
        pthread_mutex_lock(&b->mu);
        b->nc = nc;
        pthread_mutex_unlock(&b->mu);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = b->timeout_ms;
    s = natsConnection_JetStream(&b->js, b->nc, &jo);
    if (s != NATS_OK) {
        b->js = NULL;
        set_error(b, "JetStream context: %s", natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

/* Describe how an existing stream differs from the settings ("" = none). */
static void stream_diff(nb_t *b, const jsStreamConfig *c, char *out,
                        size_t outlen)
{
    char want[300];
    snprintf(want, sizeof want, "%s.>", b->prefix);
    bool subj = false;
    for (int i = 0; i < c->SubjectsLen; i++)
        if (c->Subjects[i] && (strcmp(c->Subjects[i], want) == 0 ||
                               strcmp(c->Subjects[i], ">") == 0))
            subj = true;
    int64_t age_ns = b->max_age_s * 1000000000LL;
    int64_t per = b->max_per_subject ? b->max_per_subject : -1;
    int64_t cper = c->MaxMsgsPerSubject > 0 ? c->MaxMsgsPerSubject : -1;
    jsStorageType st =
        strcmp(b->storage, "memory") == 0 ? js_MemoryStorage : js_FileStorage;
    out[0] = '\0';
    if (!subj)
        snprintf(out, outlen, "its subjects do not include '%.150s'", want);
    else if (c->Replicas != b->replicas &&
             !(c->Replicas == 0 && b->replicas == 1))
        snprintf(out, outlen, "it has %" PRId64 " replica(s), settings say "
                 "%" PRId64, c->Replicas, b->replicas);
    else if (c->Storage != st)
        snprintf(out, outlen, "its storage is %s, settings say %s",
                 c->Storage == js_MemoryStorage ? "memory" : "file",
                 b->storage);
    else if (c->MaxAge != age_ns)
        snprintf(out, outlen, "its max age is %" PRId64 " s, settings say "
                 "%" PRId64 " s", (int64_t)(c->MaxAge / 1000000000LL), b->max_age_s);
    else if (cper != per)
        snprintf(out, outlen, "its max messages per subject is %" PRId64
                 ", settings say %" PRId64 " (0 = unlimited)",
                 cper < 0 ? 0 : cper, b->max_per_subject);
}

/* 0 ready, -1 try again later, -2 fatal (b->fatal set) */
static int ensure_stream(nb_t *b)
{
    if (b->stream_ok)
        return 0;
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &je);
    if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
        if (!b->create) {
            snprintf(b->fatal, sizeof b->fatal,
                     "stream '%s' does not exist and create_stream is false",
                     b->stream);
            return -2;
        }
        char subj[300];
        snprintf(subj, sizeof subj, "%s.>", b->prefix);
        const char *subjects[] = {subj};
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = b->stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Replicas = b->replicas;
        sc.Storage = strcmp(b->storage, "memory") == 0 ? js_MemoryStorage
                                                       : js_FileStorage;
        sc.MaxAge = b->max_age_s * 1000000000LL;
        sc.MaxMsgsPerSubject = b->max_per_subject ? b->max_per_subject : -1;
        sc.Duplicates = b->dup_window_s * 1000000000LL;
        s = js_AddStream(&si, b->js, &sc, NULL, &je);
        if (s != NATS_OK) {
            set_error(b, "cannot create stream '%s': %s (%d)", b->stream,
                      nats_GetLastError(NULL) ? nats_GetLastError(NULL)
                                              : natsStatus_GetText(s),
                      (int)je);
            return -1;
        }
        b->stream_ok = true;
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (s != NATS_OK) {
        set_error(b, "stream '%s' info: %s", b->stream,
                  natsStatus_GetText(s));
        return -1;
    }
    char diff[256];
    stream_diff(b, si->Config, diff, sizeof diff);
    jsStreamInfo_Destroy(si);
    if (diff[0]) {
        snprintf(b->fatal, sizeof b->fatal,
                 "existing stream '%s' does not match the settings: %s "
                 "(change the settings or the stream; nothing is published)",
                 b->stream, diff);
        return -2;
    }
    b->stream_ok = true;
    return 0;
}

static void item_free(item_t *it)
{
    if (!it)
        return;
    free(it->subject);
    free(it->msgid);
    free(it->channel);
    free(it->data);
    free(it);
}

static void *worker_main(void *arg)
{
    nb_t *b = arg;
    int64_t backoff = 100;
    while (!atomic_load(&b->stop)) {
        if (connect_nats(b) != 0) {
            nap(b, 1000);
            continue;
        }
        int rc = ensure_stream(b);
        if (rc == -2) {
            wake_plugin(b);
            break;
        }
        if (rc != 0) {
            nap(b, backoff);
            backoff = backoff < 2000 ? backoff * 2 : 2000;
            continue;
        }
        pthread_mutex_lock(&b->mu);
        while (!b->head && !atomic_load(&b->stop)) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 1;
            pthread_cond_timedwait(&b->cv, &b->mu, &dl);
        }
        item_t *it = b->head; /* stays queued until its PubAck */
        pthread_mutex_unlock(&b->mu);
        if (!it)
            continue;
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = it->msgid;
        po.MaxWait = b->timeout_ms;
        jsPubAck *pa = NULL;
        jsErrCode je = 0;
        natsStatus s = js_Publish(&pa, b->js, it->subject, it->data, it->len,
                                  &po, &je);
        if (s != NATS_OK) {
            set_error(b, "publish %s seq %" PRIu64 ": %s%s", it->channel,
                      it->seq, natsStatus_GetText(s),
                      s == NATS_NO_RESPONDERS ? " (no JetStream server "
                                                "reachable)"
                                              : "");
            nap(b, backoff);
            backoff = backoff < 2000 ? backoff * 2 : 2000;
            continue;
        }
        jsPubAck_Destroy(pa);
        backoff = 100;
        done_t *d = malloc(sizeof *d);
        pthread_mutex_lock(&b->mu);
        b->head = it->next;
        if (!b->head)
            b->tail = NULL;
        b->queued--;
        if (d) {
            d->channel = it->channel;
            it->channel = NULL;
            d->seq = it->seq;
            d->next = b->done;
            b->done = d;
        }
        if (b->last_error[0]) {
            b->last_error[0] = '\0';
            b->error_changed = true;
        }
        pthread_mutex_unlock(&b->mu);
        item_free(it);
        wake_plugin(b);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* plugin thread                                                       */

static void report_state(nb_t *b)
{
    int c = atomic_load(&b->connected);
    if (c != b->logged_connected) {
        char url[256] = "";
        pthread_mutex_lock(&b->mu);
        if (c && b->nc)
            natsConnection_GetConnectedUrl(b->nc, url, sizeof url);
        pthread_mutex_unlock(&b->mu);
        b->api->log(b->host, c ? SC_LOG_INFO : SC_LOG_WARN,
                    c ? "connected to NATS %s" : "disconnected from NATS%s",
                    url);
        b->logged_connected = c;
    }
    char e[512] = "";
    bool changed = false;
    int64_t q = 0;
    pthread_mutex_lock(&b->mu);
    if (b->error_changed) {
        snprintf(e, sizeof e, "%s", b->last_error);
        b->error_changed = false;
        changed = true;
    }
    q = b->queued;
    pthread_mutex_unlock(&b->mu);
    if (changed && e[0])
        b->api->log(b->host, SC_LOG_WARN, "%s (%" PRId64 " message(s) "
                    "waiting; retrying)", e, q);
    else if (changed)
        b->api->log(b->host, SC_LOG_INFO, "publishing again (%" PRId64
                    " waiting)", q);
}

static void on_wake(sc_host_t *h, int fd, unsigned events, void *arg)
{
    (void)h;
    (void)events;
    nb_t *b = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&b->mu);
    done_t *d = b->done;
    b->done = NULL;
    char fatal[512];
    snprintf(fatal, sizeof fatal, "%s", b->fatal);
    pthread_mutex_unlock(&b->mu);
    /* reverse to publish order; acks are cumulative per channel */
    done_t *rev = NULL;
    while (d) {
        done_t *n = d->next;
        d->next = rev;
        rev = d;
        d = n;
    }
    while (rev) {
        done_t *n = rev->next;
        if (!n || strcmp(n->channel, rev->channel) != 0)
            b->api->sink_ack(b->host, rev->channel, rev->seq);
        b->published++;
        free(rev->channel);
        free(rev);
        rev = n;
    }
    report_state(b);
    if (fatal[0]) {
        b->api->log(b->host, SC_LOG_ERROR, "%s", fatal);
        b->api->request_stop(b->host, fatal);
    }
}

static void on_timer(sc_host_t *h, int id, void *arg)
{
    (void)h;
    (void)id;
    report_state(arg);
}

static int nb_deliver(sc_host_t *h, const sc_sink_msg_t *m, void *arg)
{
    (void)h;
    nb_t *b = arg;
    pthread_mutex_lock(&b->mu);
    bool full = b->queued >= b->max_inflight;
    pthread_mutex_unlock(&b->mu);
    if (full)
        return SC_ERR_LIMIT;
    item_t *it = calloc(1, sizeof *it);
    if (!it)
        return SC_ERR_NO_MEMORY;
    char id[512];
    size_t sl = strlen(b->prefix) + strlen(m->channel) + 2;
    it->subject = malloc(sl);
    it->channel = strdup(m->channel);
    it->data = malloc(m->jws_len ? m->jws_len : 1);
    if (!it->subject || !it->channel || !it->data || m->jws_len > INT32_MAX ||
        nb_msg_id(id, sizeof id, m->epoch, m->channel, m->seq) < 0 ||
        !(it->msgid = strdup(id))) {
        item_free(it);
        return SC_ERR_NO_MEMORY;
    }
    snprintf(it->subject, sl, "%s.%s", b->prefix, m->channel);
    memcpy(it->data, m->jws, m->jws_len);
    it->len = (int)m->jws_len;
    it->seq = m->seq;
    pthread_mutex_lock(&b->mu);
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    b->queued++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return SC_OK;
}

static void nb_lost(sc_host_t *h, const char *channel, const char *epoch,
                    uint64_t first, uint64_t last, void *arg)
{
    nb_t *b = arg;
    if (last)
        b->api->log(h, SC_LOG_WARN,
                    "%s seq %" PRIu64 "..%" PRIu64 " (epoch %s) were removed "
                    "from the journal before they reached JetStream: the "
                    "stream has a gap there",
                    channel, first, last, epoch);
    else
        b->api->log(h, SC_LOG_WARN,
                    "%s: messages after seq %" PRIu64 " of the old epoch %s "
                    "never reached JetStream",
                    channel, first - 1, epoch);
}

/* ------------------------------------------------------------------ */
/* settings                                                            */

static const char *opt_string(nb_t *b, const char *name)
{
    const char *v = NULL;
    if (b->api->setting_string(b->host, name, &v) != SC_OK || !v || !*v)
        return NULL;
    return v;
}

static int64_t opt_int(nb_t *b, const char *name, int64_t dflt)
{
    int64_t v;
    return b->api->setting_int(b->host, name, &v) == SC_OK ? v : dflt;
}

/* servers: a list (ABI 2 host) or, on a host without lists, one string of
 * comma-separated URLs */
static int read_servers(nb_t *b)
{
    size_t n = 0;
    if (SC_HOST_HAS(b->api, setting_count) &&
        b->api->setting_count(b->host, "servers", &n) == SC_OK) {
        for (size_t i = 0; i < n && b->n_servers < MAX_SERVERS; i++) {
            char path[32];
            snprintf(path, sizeof path, "servers[%zu]", i);
            const char *v = opt_string(b, path);
            if (v && !(b->servers[b->n_servers++] = strdup(v)))
                return -1;
        }
        return b->n_servers > 0 ? 0 : -1;
    }
    const char *v = opt_string(b, "servers");
    if (!v)
        return -1;
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return -1;
    for (char *t = strtok_r(copy, ", ", &save); t && b->n_servers < MAX_SERVERS;
         t = strtok_r(NULL, ", ", &save))
        if (!(b->servers[b->n_servers++] = strdup(t)))
            break;
    free(copy);
    return b->n_servers > 0 ? 0 : -1;
}

static int build_options(nb_t *b, char *err, size_t errlen)
{
    natsStatus s = natsOptions_Create(&b->opts);
    const char *what = "options";
    if (s == NATS_OK && (what = "servers") &&
        (s = natsOptions_SetServers(b->opts, (const char **)b->servers,
                                    b->n_servers)) == NATS_OK &&
        (what = "reconnect") &&
        (s = natsOptions_SetMaxReconnect(b->opts, -1)) == NATS_OK &&
        (s = natsOptions_SetReconnectWait(b->opts, 250)) == NATS_OK &&
        /* with a connected callback the first connect never blocks: no
         * server up yet returns NATS_NOT_YET_CONNECTED and goes on in the
         * background (without one it would block until a server answers) */
        (s = natsOptions_SetRetryOnFailedConnect(b->opts, true,
                                                 on_reconnected, b)) ==
            NATS_OK &&
        (s = natsOptions_SetTimeout(b->opts, 2000)) == NATS_OK &&
        (s = natsOptions_SetPingInterval(b->opts, 2000)) == NATS_OK &&
        (s = natsOptions_SetMaxPingsOut(b->opts, 2)) == NATS_OK &&
        (s = natsOptions_SetDisconnectedCB(b->opts, on_disconnected, b)) ==
            NATS_OK &&
        (s = natsOptions_SetReconnectedCB(b->opts, on_reconnected, b)) ==
            NATS_OK &&
        (s = natsOptions_SetName(b->opts, "sectorcast-nats-bridge")) ==
            NATS_OK) {
        if (b->creds && (what = "creds_file") &&
            (s = natsOptions_SetUserCredentialsFromFiles(b->opts, b->creds,
                                                         NULL)) != NATS_OK)
            goto fail;
        if (b->user && (what = "user/password") &&
            (s = natsOptions_SetUserInfo(b->opts, b->user, b->password)) !=
                NATS_OK)
            goto fail;
        if (b->token && (what = "token") &&
            (s = natsOptions_SetToken(b->opts, b->token)) != NATS_OK)
            goto fail;
        if ((b->tls || b->tls_ca || b->tls_cert) && (what = "tls") &&
            (s = natsOptions_SetSecure(b->opts, true)) != NATS_OK)
            goto fail;
        if (b->tls_ca && (what = "tls_ca") &&
            (s = natsOptions_LoadCATrustedCertificates(b->opts, b->tls_ca)) !=
                NATS_OK)
            goto fail;
        if (b->tls_cert && (what = "tls_cert/tls_key") &&
            (s = natsOptions_LoadCertificatesChain(b->opts, b->tls_cert,
                                                   b->tls_key)) != NATS_OK)
            goto fail;
        return 0;
    }
fail:
    snprintf(err, errlen, "NATS %s: %s", what, natsStatus_GetText(s));
    return -1;
}

static int nb_check(sc_host_t *h, const sc_host_api_t *api)
{
    const char *cert = NULL, *key = NULL, *user = NULL, *pass = NULL;
    api->setting_string(h, "tls_cert", &cert);
    api->setting_string(h, "tls_key", &key);
    api->setting_string(h, "user", &user);
    api->setting_string(h, "password", &pass);
    int bad = 0;
    if ((cert && *cert) != (key && *key)) {
        if (SC_HOST_HAS(api, setting_problem))
            api->setting_problem(h, cert && *cert ? "tls_key" : "tls_cert",
                                 "tls_cert and tls_key go together");
        bad = 1;
    }
    if (pass && *pass && !(user && *user)) {
        if (SC_HOST_HAS(api, setting_problem))
            api->setting_problem(h, "password", "password needs user");
        bad = 1;
    }
    const char *prefix = NULL;
    if (api->setting_string(h, "subject_prefix", &prefix) == SC_OK && prefix) {
        bool ok = *prefix && prefix[strlen(prefix) - 1] != '.';
        for (const char *c = prefix; ok && *c; c++)
            ok = *c > ' ' && *c != '*' && *c != '>' && *c < 0x7f;
        if (!ok) {
            if (SC_HOST_HAS(api, setting_problem))
                api->setting_problem(h, "subject_prefix",
                                     "not a NATS subject prefix (tokens "
                                     "without spaces, '*', '>' or a trailing "
                                     "'.')");
            bad = 1;
        }
    }
    return bad ? SC_ERR_BAD_SETTING : SC_OK;
}

/* Instances alive in this process: the last one to go tears the nats.c
 * library down and waits for its threads, so that nothing of it runs or
 * stays allocated once the host unloads the plugin. */
static atomic_int nb_instances;
static pthread_mutex_t nb_lib_mu = PTHREAD_MUTEX_INITIALIZER;

static void nb_lib_acquire(void)
{
    pthread_mutex_lock(&nb_lib_mu);
    atomic_fetch_add(&nb_instances, 1);
    pthread_mutex_unlock(&nb_lib_mu);
}

static void nb_lib_release(void)
{
    pthread_mutex_lock(&nb_lib_mu); /* never nats_Open/Close concurrently */
    if (atomic_fetch_sub(&nb_instances, 1) == 1)
        nats_CloseAndWait(2000);
    pthread_mutex_unlock(&nb_lib_mu);
}

static void nb_free(nb_t *b)
{
    if (!b)
        return;
    if (b->worker_started) {
        atomic_store(&b->stop, 1);
        pthread_mutex_lock(&b->mu);
        pthread_cond_broadcast(&b->cv);
        natsConnection *nc = b->nc;
        pthread_mutex_unlock(&b->mu);
        /* closing ends a publish waiting for its PubAck at once: the
         * worker never holds up a stop (the message is offered again
         * after the restart, its Msg-Id makes a repeat harmless) */
        if (nc)
            natsConnection_Close(nc);
        pthread_join(b->worker, NULL);
    }
    if (b->efd >= 0) {
        b->api->fd_unwatch(b->host, b->efd);
        close(b->efd);
    }
    jsCtx_Destroy(b->js);
    if (b->nc) {
        natsConnection_Close(b->nc);
        natsConnection_Destroy(b->nc);
    }
    natsOptions_Destroy(b->opts);
    while (b->head) {
        item_t *n = b->head->next;
        item_free(b->head);
        b->head = n;
    }
    while (b->done) {
        done_t *n = b->done->next;
        free(b->done->channel);
        free(b->done);
        b->done = n;
    }
    for (int i = 0; i < b->n_servers; i++)
        free(b->servers[i]);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    nb_lib_release();
}

static int nb_init(sc_host_t *h, const sc_host_api_t *api, void **state)
{
    if (!SC_HOST_HAS(api, capability_register) ||
        !SC_HOST_HAS(api, sink_ack)) {
        api->log(h, SC_LOG_ERROR, "this host has no sink capability (ABI 2 "
                                  "needed)");
        return SC_ERR_UNSUPPORTED;
    }
    if (nb_check(h, api) != SC_OK) {
        api->log(h, SC_LOG_ERROR, "settings refused");
        return SC_ERR_BAD_SETTING;
    }
    nb_t *b = calloc(1, sizeof *b);
    if (!b)
        return SC_ERR_NO_MEMORY;
    nb_lib_acquire(); /* released by nb_free */
    b->host = h;
    b->api = api;
    b->efd = -1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->prefix = opt_string(b, "subject_prefix");
    b->stream = opt_string(b, "stream");
    b->storage = opt_string(b, "storage");
    if (!b->prefix)
        b->prefix = "sectorcast";
    if (!b->stream)
        b->stream = "SECTORCAST";
    if (!b->storage)
        b->storage = "file";
    b->creds = opt_string(b, "creds_file");
    b->user = opt_string(b, "user");
    b->password = opt_string(b, "password");
    b->token = opt_string(b, "token");
    b->tls_ca = opt_string(b, "tls_ca");
    b->tls_cert = opt_string(b, "tls_cert");
    b->tls_key = opt_string(b, "tls_key");
    b->create = 1;
    api->setting_bool(h, "create_stream", &b->create);
    api->setting_bool(h, "tls", &b->tls);
    b->replicas = opt_int(b, "replicas", 1);
    b->max_age_s = opt_int(b, "max_age_s", 0);
    b->max_per_subject = opt_int(b, "max_msgs_per_subject", 0);
    b->dup_window_s = opt_int(b, "duplicate_window_s", 120);
    b->timeout_ms = opt_int(b, "publish_timeout_ms", 2000);
    b->max_inflight = opt_int(b, "max_inflight", 1024);
    char err[512];
    if (read_servers(b) != 0) {
        api->log(h, SC_LOG_ERROR, "setting 'servers': no server URL");
        nb_free(b);
        return SC_ERR_BAD_SETTING;
    }
    if (build_options(b, err, sizeof err) != 0) {
        api->log(h, SC_LOG_ERROR, "%s", err);
        nb_free(b);
        return SC_ERR_BAD_SETTING;
    }
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0 ||
        api->fd_watch(h, b->efd, SC_FD_READ, on_wake, b) != SC_OK) {
        api->log(h, SC_LOG_ERROR, "eventfd: %s", strerror(errno));
        if (b->efd >= 0)
            close(b->efd);
        b->efd = -1;
        nb_free(b);
        return SC_ERR_INTERNAL;
    }
    b->timer = api->timer_add(h, 1000, 1, on_timer, b);
    sc_sink_def_t def = {
        .size = sizeof def,
        .deliver = nb_deliver,
        .lost = nb_lost,
        .arg = b,
        .max_inflight = (uint32_t)b->max_inflight,
    };
    connect_nats(b); /* the worker retries if this failed */
    if (pthread_create(&b->worker, NULL, worker_main, b) != 0) {
        api->log(h, SC_LOG_ERROR, "cannot start the publishing thread");
        nb_free(b);
        return SC_ERR_INTERNAL;
    }
    b->worker_started = true;
    int rc = api->capability_register(h, SC_CAP_SINK, &def);
    if (rc != SC_OK) {
        api->log(h, SC_LOG_ERROR, "cannot register as a sink: %s",
                 api->strerror(rc));
        nb_free(b);
        return rc;
    }
    api->log(h, SC_LOG_INFO,
             "bridging to JetStream stream '%s' (subjects %s.>, %" PRId64
             " replica(s), %s) via %d server(s), first %s",
             b->stream, b->prefix, b->replicas, b->storage, b->n_servers,
             b->servers[0]);
    *state = b;
    return SC_OK;
}

static void nb_fini(sc_host_t *h, void *state)
{
    (void)h;
    nb_free(state);
}

static const sc_plugin_t nb_plugin = {
    .abi_version = SC_PLUGIN_ABI_VERSION,
    SC_PLUGIN_SIZES,
    .name = "nats_bridge",
    .version = "1.0.0",
    .description = "sink: every received message to NATS JetStream, JWS "
                   "unchanged, Nats-Msg-Id from epoch/channel/seq",
    .settings = nb_settings,
    .init = nb_init,
    .fini = nb_fini,
    .check = nb_check,
};

SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi)
{
    return host_abi >= 2 ? &nb_plugin : NULL;
}
