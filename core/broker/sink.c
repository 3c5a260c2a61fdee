/*
 * sink.c - see sink.h.
 *
 * One mutex guards the ports and their per-channel cursors; the feeder
 * thread holds it for one delivery round (reads of at most ROUND_ROWS rows
 * per channel and the non-blocking offers), acks and detaches take it
 * briefly. The cursor database is touched by the feeder thread only: dirty
 * cursors are copied under the mutex and written after it is released.
 *
 * The journal is read through a sc_journal_reader_t of the feeder thread
 * (a read-only connection: it sees committed messages only and never
 * blocks the core's writer): the epoch, the channels with their head and
 * low-water mark, and messages of a channel after a seq.
 */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/clock.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "threads.h"

#define ROUND_ROWS 256     /* rows read per channel per round */
#define PAUSE_MS 100       /* after an instance refused a message */
#define OFFER_PAUSE_MS 20  /* after the host's queue was full */
#define IDLE_WAKE_MS 1000  /* retention checks, paused channels */
#define MAX_CHANNELS 65536 /* per port: bound of the cursor table */
#define METRICS_MS 1000    /* sink gauges refreshed at most this often */

typedef struct chan {
    char *name;
    uint64_t acked;     /* cursor: last acknowledged seq */
    uint64_t sent;      /* last offered seq (>= acked) */
    uint64_t head;
    int64_t pause_until;
    uint64_t lost_logged; /* a lost range up to here was logged */
    bool dirty;         /* acked not yet written to sinks.db */
    bool epochs_told;   /* cursors of older epochs reported and removed */
    bool epochs_logged;
} chan_t;

struct sc_sink_port {
    sc_sink_feeder_t *f;
    char *name;
    char **receives;
    size_t n_receives;
    uint32_t max_inflight;
    sc_sink_target_t t;
    chan_t *ch;
    size_t n_ch, cap_ch;
    bool connected;
    int64_t last_ack_ms; /* monotonic; attach time until the first ack */
    char last_error[256];
    sc_sink_port_t *next;
};

/* what is left of a detached port: its dirty cursors, until written */
typedef struct cursor_row {
    char *instance, *channel;
    uint64_t acked;
} cursor_row_t;

struct sc_sink_feeder {
    char *cursor_path;
    sc_journal_reader_t *jr; /* feeder thread only */
    sqlite3 *cdb;   /* sinks.db; feeder thread only */
    char epoch[64];
    int efd;
    pthread_t thread;
    bool started;
    atomic_int stop;
    pthread_mutex_t mu;
    sc_sink_port_t *ports;
    atomic_int n_ports;    /* read by sc_sink_committed() without mu */
    cursor_row_t *orphans; /* dirty cursors of detached ports */
    size_t n_orphans;
    char **keep;           /* sc_sink_keep_only(), applied by the thread */
    size_t n_keep;
    bool keep_set;
};

static sc_sink_feeder_t *global_feeder;

void sc_sink_set_global(sc_sink_feeder_t *f) { global_feeder = f; }
sc_sink_feeder_t *sc_sink_global(void) { return global_feeder; }

/* ------------------------------------------------------------------ */
/* journal reads (feeder thread)                                       */

static void read_epoch(sc_sink_feeder_t *f)
{
    const char *e = sc_journal_reader_epoch(f->jr);
    snprintf(f->epoch, sizeof f->epoch, "%s", e ? e : "");
}

static bool receives(const sc_sink_port_t *p, const char *channel)
{
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    for (size_t i = 0; tl > 0 && i < p->n_receives; i++)
        if (sc_subtree_covers(p->receives[i], topic, (size_t)tl))
            return true;
    return false;
}

static chan_t *chan_find(sc_sink_port_t *p, const char *name)
{
    for (size_t i = 0; i < p->n_ch; i++)
        if (strcmp(p->ch[i].name, name) == 0)
            return &p->ch[i];
    return NULL;
}

/* The durable cursor of (port, channel) in this epoch. Returns the acked
 * seq or -1 if there is none yet. (Cursors of older epochs: tell_epochs.) */
static int64_t cursor_load(sc_sink_feeder_t *f, sc_sink_port_t *p,
                           const char *channel)
{
    int64_t acked = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(f->cdb,
                           "SELECT acked FROM cursors WHERE instance=? AND"
                           " channel=? AND epoch=?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, channel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, f->epoch, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        acked = (int64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return acked;
}

/* A cursor of (port, channel) from an older epoch (the journal was
 * replaced): what followed its seq in that epoch can never be delivered.
 * Log it once, tell the sink (lost(channel, old epoch, acked + 1, 0)) and
 * remove the cursor once the sink took the notice; until then the channel
 * waits (retried shortly), exactly like a retention gap. Returns true when
 * no older cursor is left. */
static bool tell_epochs(sc_sink_feeder_t *f, sc_sink_port_t *p, chan_t *c,
                        int64_t now)
{
    for (int guard = 0; guard < 16; guard++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(f->cdb,
                               "SELECT epoch, acked FROM cursors WHERE "
                               "instance=? AND channel=? AND epoch<>? LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
            return true;
        sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, f->epoch, -1, SQLITE_STATIC);
        char ep[80] = "";
        uint64_t a = 0;
        bool found = sqlite3_step(st) == SQLITE_ROW;
        if (found) {
            const char *e = (const char *)sqlite3_column_text(st, 0);
            snprintf(ep, sizeof ep, "%s", e ? e : "");
            a = (uint64_t)sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
        if (!found)
            return true;
        if (!c->epochs_logged) {
            sc_log(SC_L_WARN, p->name,
                   "sink: %s: the journal started a new epoch (%s, was %s): "
                   "messages after seq %llu of the old epoch cannot be "
                   "delivered (lost)",
                   c->name, f->epoch, ep, (unsigned long long)a);
            snprintf(p->last_error, sizeof p->last_error,
                     "lost %s after seq %llu of epoch %s (new journal)",
                     c->name, (unsigned long long)a, ep);
            c->epochs_logged = true;
        }
        if (p->t.lost && p->t.lost(p->t.arg, c->name, ep, a + 1, 0) != 0) {
            c->pause_until = now + OFFER_PAUSE_MS;
            return false;
        }
        c->epochs_logged = false;
        if (sqlite3_prepare_v2(f->cdb,
                               "DELETE FROM cursors WHERE instance=? AND "
                               "channel=? AND epoch=?",
                               -1, &st, NULL) != SQLITE_OK)
            return true;
        sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ep, -1, SQLITE_STATIC);
        bool ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        if (!ok)
            return true; /* told; do not loop on a row we cannot delete */
    }
    return true;
}

static chan_t *chan_add(sc_sink_feeder_t *f, sc_sink_port_t *p,
                        const char *name, uint64_t low)
{
    if (p->n_ch >= MAX_CHANNELS)
        return NULL;
    if (p->n_ch == p->cap_ch) {
        size_t cap = p->cap_ch ? p->cap_ch * 2 : 8;
        chan_t *v = realloc(p->ch, cap * sizeof *v);
        if (!v)
            return NULL;
        p->ch = v;
        p->cap_ch = cap;
    }
    chan_t *c = &p->ch[p->n_ch];
    memset(c, 0, sizeof *c);
    if (!(c->name = strdup(name)))
        return NULL;
    p->n_ch++;
    int64_t a = cursor_load(f, p, name);
    if (a < 0) {
        /* a new sink starts with what the journal retains */
        c->acked = low > 0 ? low - 1 : 0;
        c->dirty = true;
        sc_log(SC_L_INFO, p->name, "sink: %s: new cursor, starting at seq %llu",
               name, (unsigned long long)(c->acked + 1));
    } else {
        c->acked = (uint64_t)a;
    }
    c->sent = c->acked;
    return c;
}

/* first..last of c were removed before they were delivered: log it (once)
 * and tell the sink. Returns false if the sink could not take the notice
 * yet (retried shortly; nothing is skipped before it is told). */
static bool report_lost(sc_sink_port_t *p, chan_t *c, uint64_t first,
                        uint64_t last, const char *epoch, int64_t now)
{
    if (c->lost_logged < last) {
        sc_log(SC_L_WARN, p->name,
               "sink: %s: seq %llu..%llu removed by retention before they "
               "were delivered; skipped (lost)",
               c->name, (unsigned long long)first, (unsigned long long)last);
        snprintf(p->last_error, sizeof p->last_error,
                 "lost %s seq %llu..%llu (retention)", c->name,
                 (unsigned long long)first, (unsigned long long)last);
        c->lost_logged = last;
    }
    if (p->t.lost && p->t.lost(p->t.arg, c->name, epoch, first, last) != 0) {
        c->pause_until = now + OFFER_PAUSE_MS;
        return false;
    }
    if (c->acked == c->sent) {
        c->acked = last;
        c->dirty = true;
    }
    c->sent = last;
    return true;
}

static uint64_t inflight(const sc_sink_port_t *p)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->n_ch; i++)
        n += p->ch[i].sent - p->ch[i].acked;
    return n;
}

typedef struct scan_ctx {
    sc_sink_feeder_t *f;
    sc_sink_port_t *p;
    chan_t *c;
    int64_t now;
    long n;
} scan_ctx_t;

static int scan_row(void *arg, const char *channel, uint64_t seq,
                    const char *jws, size_t jws_len)
{
    scan_ctx_t *x = arg;
    chan_t *c = x->c;
    if (seq > c->sent + 1 &&
        /* pruned between the low-water read and this scan */
        !report_lost(x->p, c, c->sent + 1, seq - 1, x->f->epoch, x->now))
        return 1;
    sc_sink_msg_t m = {
        .size = sizeof m,
        .channel = channel,
        .epoch = x->f->epoch,
        .seq = seq,
        .jws = jws,
        .jws_len = jws_len,
    };
    if (x->p->t.offer(x->p->t.arg, &m) != 0) {
        c->pause_until = x->now + OFFER_PAUSE_MS;
        return 1;
    }
    c->sent = seq;
    x->n++;
    return 0;
}

/* Offer what is due of one channel. Returns the number offered. */
static long feed_channel(sc_sink_feeder_t *f, sc_sink_port_t *p, chan_t *c,
                         uint64_t low, uint64_t budget, int64_t now)
{
    if (c->pause_until > now || c->sent >= c->head || budget == 0)
        return 0;
    if (c->sent + 1 < low &&
        !report_lost(p, c, c->sent + 1, low - 1, f->epoch, now))
        return 0;
    scan_ctx_t sc = {.f = f, .p = p, .c = c, .now = now};
    long limit = (long)(budget < ROUND_ROWS ? budget : ROUND_ROWS);
    if (sc_journal_reader_scan(f->jr, c->name, c->sent + 1, limit, scan_row,
                               &sc) < 0)
        snprintf(p->last_error, sizeof p->last_error, "journal read: %s",
                 sc_journal_reader_error(f->jr));
    return sc.n;
}

typedef struct head_row {
    char *name;
    uint64_t head, low;
} head_row_t;

typedef struct heads_ctx {
    head_row_t *v;
    size_t n, cap;
} heads_ctx_t;

static int head_row(void *arg, const char *channel, uint64_t head)
{
    heads_ctx_t *h = arg;
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 32;
        head_row_t *w = realloc(h->v, nc * sizeof *w);
        if (!w)
            return 1;
        h->v = w;
        h->cap = nc;
    }
    if (!(h->v[h->n].name = strdup(channel)))
        return 1;
    h->v[h->n].head = head;
    h->v[h->n].low = 0; /* read only for channels a sink receives */
    h->n++;
    return 0;
}

static size_t read_heads(sc_sink_feeder_t *f, head_row_t **out)
{
    heads_ctx_t h = {0};
    sc_journal_reader_heads(f->jr, "", head_row, &h);
    *out = h.v;
    return h.n;
}

static uint64_t low_of(sc_sink_feeder_t *f, head_row_t *h)
{
    if (h->low == 0) {
        uint64_t head = 0, low = 1;
        if (sc_journal_reader_channel(f->jr, h->name, &head, &low) < 0)
            low = 1;
        h->low = low ? low : 1;
    }
    return h->low;
}

/* One delivery round over every port. Returns true if more is due now;
 * *paused: a channel with messages waits out a short pause. */
static bool feed_round(sc_sink_feeder_t *f, bool *paused)
{
    head_row_t *h = NULL;
    /* one read transaction per round: a consistent view, kept short */
    sc_journal_reader_begin(f->jr);
    size_t nh = read_heads(f, &h);
    int64_t now = sc_mono_ms();
    bool more = false;
    pthread_mutex_lock(&f->mu);
    for (sc_sink_port_t *p = f->ports; p; p = p->next) {
        for (size_t i = 0; i < nh; i++) {
            if (!receives(p, h[i].name))
                continue;
            chan_t *c = chan_find(p, h[i].name);
            if (!c && !(c = chan_add(f, p, h[i].name, low_of(f, &h[i]))))
                continue;
            c->head = h[i].head;
            /* an older epoch's cursor is reported before anything of
             * this epoch is offered */
            if (!c->epochs_told &&
                (c->pause_until > now ||
                 !(c->epochs_told = tell_epochs(f, p, c, now)))) {
                *paused = true;
                continue;
            }
            uint64_t fl = inflight(p);
            uint64_t budget = fl < p->max_inflight ? p->max_inflight - fl : 0;
            long n = c->sent < c->head && c->pause_until <= now
                         ? feed_channel(f, p, c, low_of(f, &h[i]), budget,
                                        now)
                         : 0;
            if (n == ROUND_ROWS && c->sent < c->head)
                more = true;
            if (c->sent < c->head && c->pause_until > now)
                *paused = true;
        }
    }
    pthread_mutex_unlock(&f->mu);
    sc_journal_reader_end(f->jr);
    for (size_t i = 0; i < nh; i++)
        free(h[i].name);
    free(h);
    return more;
}

/* ------------------------------------------------------------------ */
/* cursor persistence (feeder thread)                                  */

static void persist(sc_sink_feeder_t *f)
{
    cursor_row_t *rows = NULL;
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    size_t want = f->n_orphans;
    for (sc_sink_port_t *p = f->ports; p; p = p->next)
        for (size_t i = 0; i < p->n_ch; i++)
            want += p->ch[i].dirty;
    if (want)
        rows = calloc(want, sizeof *rows);
    if (rows) {
        for (size_t i = 0; i < f->n_orphans; i++)
            rows[n++] = f->orphans[i];
        free(f->orphans);
        f->orphans = NULL;
        f->n_orphans = 0;
        for (sc_sink_port_t *p = f->ports; p; p = p->next)
            for (size_t i = 0; i < p->n_ch; i++) {
                chan_t *c = &p->ch[i];
                if (!c->dirty)
                    continue;
                rows[n].instance = strdup(p->name);
                rows[n].channel = strdup(c->name);
                rows[n].acked = c->acked;
                if (rows[n].instance && rows[n].channel) {
                    c->dirty = false;
                    n++;
                } else {
                    free(rows[n].instance);
                    free(rows[n].channel);
                }
            }
    }
    pthread_mutex_unlock(&f->mu);
    if (n == 0) {
        free(rows);
        return;
    }
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_exec(f->cdb, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
              sqlite3_prepare_v2(f->cdb,
                                 "INSERT INTO cursors(instance, channel, "
                                 "epoch, acked) VALUES(?,?,?,?) ON CONFLICT"
                                 " DO UPDATE SET acked=MAX(acked, "
                                 "excluded.acked)",
                                 -1, &st, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < n; i++) {
        sqlite3_bind_text(st, 1, rows[i].instance, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rows[i].channel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, f->epoch, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)rows[i].acked);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (!ok || sqlite3_exec(f->cdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sc_log(SC_L_ERROR, "sinks",
               "cannot write sink cursors to %s: %s (delivery goes on; after "
               "a restart some messages are delivered again)",
               f->cursor_path, sqlite3_errmsg(f->cdb));
        sqlite3_exec(f->cdb, "ROLLBACK", NULL, NULL, NULL);
        /* keep them for the next try */
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < n; i++)
            for (sc_sink_port_t *p = f->ports; p; p = p->next)
                if (strcmp(p->name, rows[i].instance) == 0) {
                    chan_t *c = chan_find(p, rows[i].channel);
                    if (c)
                        c->dirty = true;
                }
        pthread_mutex_unlock(&f->mu);
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].instance);
        free(rows[i].channel);
    }
    free(rows);
}

/* sc_sink_keep_only(), on the feeder thread after persist(): remove the
 * cursors of instances neither in the list nor attached. */
static void apply_keep(sc_sink_feeder_t *f)
{
    pthread_mutex_lock(&f->mu);
    if (!f->keep_set) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    char **keep = f->keep;
    size_t n_keep = f->n_keep;
    f->keep = NULL;
    f->n_keep = 0;
    f->keep_set = false;
    pthread_mutex_unlock(&f->mu);
    char **gone = NULL;
    size_t n_gone = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(f->cdb, "SELECT DISTINCT instance FROM cursors",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *in = (const char *)sqlite3_column_text(st, 0);
            bool kept = !in;
            for (size_t i = 0; !kept && i < n_keep; i++)
                kept = strcmp(keep[i], in) == 0;
            pthread_mutex_lock(&f->mu);
            for (sc_sink_port_t *p = f->ports; !kept && p; p = p->next)
                kept = strcmp(p->name, in) == 0;
            pthread_mutex_unlock(&f->mu);
            char **v = kept ? NULL : realloc(gone, (n_gone + 1) * sizeof *v);
            if (v && (v[n_gone] = strdup(in)) != NULL)
                n_gone++;
            if (v)
                gone = v;
        }
        sqlite3_finalize(st);
    }
    for (size_t i = 0; i < n_gone; i++) {
        if (sqlite3_prepare_v2(f->cdb, "DELETE FROM cursors WHERE instance=?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, gone[i], -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_DONE)
                sc_log(SC_L_INFO, "sinks",
                       "sink cursors of '%s' removed from %s: no longer "
                       "configured",
                       gone[i], f->cursor_path);
            sqlite3_finalize(st);
        }
        free(gone[i]);
    }
    free(gone);
    for (size_t i = 0; i < n_keep; i++)
        free(keep[i]);
    free(keep);
}

void sc_sink_keep_only(sc_sink_feeder_t *f, const char *const *names,
                       size_t n)
{
    if (!f)
        return;
    char **v = calloc(n + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++)
        if ((v[k] = strdup(names[i])) != NULL)
            k++;
    if (!v || k != n) {
        /* out of memory: keep everything rather than forget a cursor */
        for (size_t i = 0; v && i < k; i++)
            free(v[i]);
        free(v);
        return;
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_keep; i++)
        free(f->keep[i]);
    free(f->keep);
    f->keep = v;
    f->n_keep = n;
    f->keep_set = true;
    pthread_mutex_unlock(&f->mu);
    sc_sink_notify(f);
}

/* ------------------------------------------------------------------ */
/* metrics (feeder thread): gauges rebuilt from the status              */

typedef struct gauges {
    sc_metric_t *lag, *inflight, *connected;
} gauges_t;

static void gauge_row(void *arg, const sc_sink_status_t *st)
{
    gauges_t *g = arg;
    if (st->channel) {
        sc_metric_set(g->lag, (double)st->lag, st->instance, st->channel);
        return;
    }
    sc_metric_set(g->inflight, (double)st->inflight, st->instance);
    sc_metric_set(g->connected, st->connected ? 1.0 : 0.0, st->instance);
}

static void metrics_update(sc_sink_feeder_t *f)
{
    gauges_t g = {
        .lag = sc_metric_gauge("sectorcast_sink_lag_messages",
                               "Committed messages a sink has not "
                               "acknowledged yet, per channel.",
                               "sink,channel"),
        .inflight = sc_metric_gauge("sectorcast_sink_inflight_messages",
                                    "Messages offered to a sink and not "
                                    "acknowledged yet.",
                                    "sink"),
        .connected = sc_metric_gauge("sectorcast_sink_delivering",
                                     "1 if the sink has no lag or "
                                     "acknowledged within the last 10 s.",
                                     "sink"),
    };
    sc_metric_clear(g.lag);
    sc_metric_clear(g.inflight);
    sc_metric_clear(g.connected);
    sc_sink_status(f, gauge_row, &g);
}

/* ------------------------------------------------------------------ */
/* thread                                                              */

static void *feeder_thread(void *arg)
{
    sc_sink_feeder_t *f = arg;
    bool more = false, paused = false;
    sc_thread_name("sinks", NULL);
    sc_thread_background();
    int64_t next_metrics = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd = {.fd = f->efd, .events = POLLIN};
        int rc = poll(&pfd, 1,
                      more ? 0 : paused ? OFFER_PAUSE_MS : IDLE_WAKE_MS);
        if (rc > 0) {
            uint64_t v;
            ssize_t r = read(f->efd, &v, sizeof v);
            (void)r;
        }
        if (atomic_load(&f->stop))
            break;
        read_epoch(f);
        paused = false;
        more = feed_round(f, &paused);
        persist(f);
        apply_keep(f);
        int64_t now = sc_mono_ms();
        if (now >= next_metrics) {
            metrics_update(f);
            next_metrics = now + METRICS_MS;
        }
    }
    persist(f);
    return NULL;
}

static int open_db(sqlite3 **db, const char *path, int flags, char *err,
                   size_t errlen)
{
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        return -1;
    }
    sqlite3_busy_timeout(*db, 2000);
    return 0;
}

sc_sink_feeder_t *sc_sink_feeder_new(const sc_journal_t *journal,
                                     const char *data_dir, char *err,
                                     size_t errlen)
{
    sc_sink_feeder_t *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->efd = -1;
    pthread_mutex_init(&f->mu, NULL);
    size_t n = strlen(data_dir) + sizeof "/sinks.db";
    f->cursor_path = malloc(n);
    if (!f->cursor_path) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(f->cursor_path, n, "%s/sinks.db", data_dir);
    /* created 0600 (the cursors say what each sink has seen) */
    int fd = open(f->cursor_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", f->cursor_path, strerror(errno));
        goto fail;
    }
    fchmod(fd, 0600);
    close(fd);
    if (open_db(&f->cdb, f->cursor_path, SQLITE_OPEN_READWRITE, err,
                errlen) != 0)
        goto fail;
    char *e = NULL;
    if (sqlite3_exec(f->cdb,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS cursors(instance TEXT NOT "
                     "NULL, channel TEXT NOT NULL, epoch TEXT NOT NULL, acked"
                     " INTEGER NOT NULL, PRIMARY KEY(instance, channel, "
                     "epoch)) WITHOUT ROWID;",
                     NULL, NULL, &e) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", f->cursor_path, e ? e : "?");
        sqlite3_free(e);
        goto fail;
    }
    char e2[512];
    if (!(f->jr = sc_journal_reader_new(journal, e2, sizeof e2))) {
        snprintf(err, errlen, "journal reader: %s", e2);
        goto fail;
    }
    read_epoch(f);
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&f->thread, NULL, feeder_thread, f);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the sink feeder: %s",
                 strerror(rc));
        goto fail;
    }
    f->started = true;
    return f;
fail:
    sc_sink_feeder_destroy(&f);
    return NULL;
}

void sc_sink_feeder_destroy(sc_sink_feeder_t **f_p)
{
    if (!f_p || !*f_p)
        return;
    sc_sink_feeder_t *f = *f_p;
    *f_p = NULL;
    if (f->started) {
        atomic_store(&f->stop, 1);
        sc_sink_notify(f);
        pthread_join(f->thread, NULL);
    }
    while (f->ports) {
        sc_sink_port_t *p = f->ports;
        sc_log(SC_L_WARN, "sinks", "sink '%s' still attached at shutdown",
               p->name);
        sc_sink_detach(&p);
    }
    for (size_t i = 0; i < f->n_orphans; i++) {
        free(f->orphans[i].instance);
        free(f->orphans[i].channel);
    }
    free(f->orphans);
    for (size_t i = 0; i < f->n_keep; i++)
        free(f->keep[i]);
    free(f->keep);
    sc_journal_reader_destroy(&f->jr);
    if (f->cdb)
        sqlite3_close(f->cdb);
    if (f->efd >= 0)
        close(f->efd);
    pthread_mutex_destroy(&f->mu);
    free(f->cursor_path);
    if (global_feeder == f)
        global_feeder = NULL;
    free(f);
}

void sc_sink_notify(sc_sink_feeder_t *f)
{
    if (!f || f->efd < 0)
        return;
    uint64_t one = 1;
    ssize_t w = write(f->efd, &one, sizeof one);
    (void)w;
}

void sc_sink_committed(sc_sink_feeder_t *f)
{
    if (f && atomic_load(&f->n_ports) > 0)
        sc_sink_notify(f);
}

/* ------------------------------------------------------------------ */
/* ports                                                               */

static void port_free(sc_sink_port_t *p)
{
    if (!p)
        return;
    free(p->name);
    for (size_t i = 0; i < p->n_receives; i++)
        free(p->receives[i]);
    free(p->receives);
    for (size_t i = 0; i < p->n_ch; i++)
        free(p->ch[i].name);
    free(p->ch);
    free(p);
}

sc_sink_port_t *sc_sink_attach(sc_sink_feeder_t *f, const char *name,
                               char *const *recv, size_t n_receives,
                               uint32_t max_inflight,
                               const sc_sink_target_t *target, char *err,
                               size_t errlen)
{
    if (!f || !name || !target || !target->offer || n_receives == 0) {
        snprintf(err, errlen, "a sink needs a name, an offer function and at "
                              "least one subtree in 'receives'");
        return NULL;
    }
    sc_sink_port_t *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name)) ||
        !(p->receives = calloc(n_receives, sizeof *p->receives))) {
        port_free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n_receives; i++) {
        if (!(p->receives[i] = strdup(recv[i]))) {
            port_free(p);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        p->n_receives++;
    }
    p->f = f;
    p->t = *target;
    p->last_ack_ms = sc_mono_ms();
    p->max_inflight = max_inflight == 0 ? SC_SINK_INFLIGHT_DEFAULT
                      : max_inflight > SC_SINK_INFLIGHT_MAX
                          ? SC_SINK_INFLIGHT_MAX
                          : max_inflight;
    pthread_mutex_lock(&f->mu);
    for (sc_sink_port_t *q = f->ports; q; q = q->next)
        if (strcmp(q->name, name) == 0) {
            pthread_mutex_unlock(&f->mu);
            snprintf(err, errlen, "sink '%s' is already attached", name);
            port_free(p);
            return NULL;
        }
    p->next = f->ports;
    f->ports = p;
    atomic_fetch_add(&f->n_ports, 1);
    pthread_mutex_unlock(&f->mu);
    sc_sink_notify(f);
    return p;
}

void sc_sink_detach(sc_sink_port_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    sc_sink_port_t *p = *p_p;
    *p_p = NULL;
    sc_sink_feeder_t *f = p->f;
    pthread_mutex_lock(&f->mu);
    for (sc_sink_port_t **q = &f->ports; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            atomic_fetch_sub(&f->n_ports, 1);
            break;
        }
    /* acknowledged but unwritten cursors are kept for the feeder */
    for (size_t i = 0; i < p->n_ch; i++) {
        if (!p->ch[i].dirty)
            continue;
        cursor_row_t *v =
            realloc(f->orphans, (f->n_orphans + 1) * sizeof *v);
        if (!v)
            break;
        f->orphans = v;
        v[f->n_orphans].instance = strdup(p->name);
        v[f->n_orphans].channel = p->ch[i].name;
        v[f->n_orphans].acked = p->ch[i].acked;
        if (v[f->n_orphans].instance) {
            p->ch[i].name = NULL;
            f->n_orphans++;
        }
    }
    pthread_mutex_unlock(&f->mu);
    sc_sink_notify(f);
    port_free(p);
}

int sc_sink_ack(sc_sink_port_t *p, const char *channel, uint64_t seq)
{
    if (!p || !channel)
        return SC_ERR_ARG;
    if (!receives(p, channel))
        return SC_ERR_NOT_GRANTED;
    int rc = SC_OK;
    pthread_mutex_lock(&p->f->mu);
    chan_t *c = chan_find(p, channel);
    if (!c || seq > c->sent)
        rc = SC_ERR_ARG;
    else if (seq > c->acked) {
        c->acked = seq;
        c->dirty = true;
        p->last_ack_ms = sc_mono_ms();
    }
    pthread_mutex_unlock(&p->f->mu);
    if (rc == SC_OK)
        sc_sink_notify(p->f);
    return rc;
}

void sc_sink_retry(sc_sink_port_t *p, const char *channel, uint64_t seq)
{
    if (!p || !channel)
        return;
    pthread_mutex_lock(&p->f->mu);
    chan_t *c = chan_find(p, channel);
    if (c && seq > c->acked && seq <= c->sent + 1) {
        c->sent = seq - 1;
        c->pause_until = sc_mono_ms() + PAUSE_MS;
    }
    pthread_mutex_unlock(&p->f->mu);
}

void sc_sink_acked(sc_sink_feeder_t *f, const char *name, const char *channel,
                   uint64_t acked_seq, uint64_t refused_seq)
{
    if (!f || !name || !channel)
        return;
    bool notify = false;
    pthread_mutex_lock(&f->mu);
    sc_sink_port_t *p = f->ports;
    while (p && strcmp(p->name, name) != 0)
        p = p->next;
    chan_t *c = p && receives(p, channel) ? chan_find(p, channel) : NULL;
    if (c && acked_seq && acked_seq <= c->sent && acked_seq > c->acked) {
        c->acked = acked_seq;
        c->dirty = true;
        p->last_ack_ms = sc_mono_ms();
        notify = true;
    } else if (c && acked_seq > c->sent) {
        sc_log(SC_L_WARN, name,
               "sink: ignored ack of %s seq %llu, never delivered (last "
               "delivered %llu)",
               channel, (unsigned long long)acked_seq,
               (unsigned long long)c->sent);
    }
    if (c && refused_seq && refused_seq > c->acked &&
        refused_seq <= c->sent + 1) {
        c->sent = refused_seq - 1;
        c->pause_until = sc_mono_ms() + PAUSE_MS;
    }
    pthread_mutex_unlock(&f->mu);
    if (notify)
        sc_sink_notify(f);
}

void sc_sink_set_state(sc_sink_port_t *p, bool connected, const char *error)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->f->mu);
    p->connected = connected;
    if (error)
        snprintf(p->last_error, sizeof p->last_error, "%s", error);
    pthread_mutex_unlock(&p->f->mu);
}

void sc_sink_status(sc_sink_feeder_t *f, sc_sink_status_fn fn, void *arg)
{
    if (!f || !fn)
        return;
    pthread_mutex_lock(&f->mu);
    int64_t now = sc_mono_ms();
    for (sc_sink_port_t *p = f->ports; p; p = p->next) {
        sc_sink_status_t s = {
            .instance = p->name,
            .attached = true,
            .last_error = p->last_error,
        };
        for (size_t i = 0; i < p->n_ch; i++) {
            const chan_t *c = &p->ch[i];
            s.lag += c->head > c->acked ? c->head - c->acked : 0;
            s.inflight += c->sent - c->acked;
        }
        s.connected = p->connected || s.lag == 0 ||
                      now - p->last_ack_ms < SC_SINK_STALLED_MS;
        fn(arg, &s);
        for (size_t i = 0; i < p->n_ch; i++) {
            const chan_t *c = &p->ch[i];
            sc_sink_status_t cs = s;
            cs.channel = c->name;
            cs.head = c->head;
            cs.acked = c->acked;
            cs.lag = c->head > c->acked ? c->head - c->acked : 0;
            cs.inflight = c->sent - c->acked;
            fn(arg, &cs);
        }
    }
    pthread_mutex_unlock(&f->mu);
}
