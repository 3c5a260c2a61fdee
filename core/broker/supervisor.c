/*
 * supervisor.c - see supervisor.h.
 *
 * A plugin entry is "changed" by a reload when its path, sector, granted
 * channels, isolation or resolved settings differ, or when the .so file on
 * disk is not the one that was loaded (device, inode, size or mtime).
 * Unchanged plugins keep running untouched: their threads never notice a
 * reload.
 *
 * Child processes are spawned with posix_spawn (safe in a threaded
 * process) as `sectorcastd --plugin-child NAME --core IPC --child-fd 3`;
 * fd 3 is a pipe on which the supervisor writes the running config's
 * entry (JSON: path, sector, channels, settings as written, limits) and a
 * fresh random credential. The child loads the plugin (never this
 * process), checks its settings, runs the same plugin host and sends its
 * frames to the core's ipc ROUTER with the credential as routing id; the
 * core attributes each frame by it (sc_supervisor_child) and re-checks
 * every message against the plugin's grants, since a crashed or hostile
 * child is not trusted. Children are pinged every PING_MS; one silent for
 * DEAD_MS is killed and restarted with backoff.
 *
 * fd 4 is the child's start report: "ok" once its instance's init()
 * succeeded, "failed" when it did not start. With a `user`, the child
 * connects to the core and opens the state database first, then drops to
 * that user before it loads the plugin.
 *
 * Reload: a plugin (thread, or child by its start report) whose new
 * instance fails init() is restarted on its previous entry; that previous
 * config is kept (sc_supervisor_adopt) until no slot points into it.
 */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "common/channel.h"
#include "common/clock.h"
#include "host/frame.h"
#include "host/settings.h"
#include "log.h"
#include "ops.h"
#include "plugin_host.h"
#include "sink.h"
#include "sink_relay.h"

extern char **environ;

#define STOP_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000
#define PING_MS 1000      /* liveness check of a child, every ... */
#define DEAD_MS 5000      /* ... killed when no answer for this long */
_Static_assert(DEAD_MS / PING_MS + 1 <= SC_PLUGIN_CHILD_PINGS_MAX,
               "the pings a silent child is sent before it is killed must "
               "fit the room plugin_host.h keeps for them");
#define TOKEN_LEN 32      /* a child's credential: hex of 16 random bytes */
#define RELAY_RETRY_MS 10 /* sink frames a child could not take yet */

/* The feeder's target for a child's sink: the relay and the credential of
 * the child it was attached for (heap: slots move on reload). */
typedef struct child_sink {
    sc_sink_relay_t *relay;
    char rid[TOKEN_LEN + 1];
} child_sink_t;

typedef struct slot {
    sc_cfg_plugin_t *cfg;   /* entry in the current config */
    sc_plugin_inst_t *inst; /* thread isolation */
    sc_sink_port_t *sink;   /* inst or child attached to the sink feeder */
    child_sink_t *csink;    /* the child's target while attached */
    pid_t pid;              /* process isolation; 0 = not running */
    int backoff_ms;
    int64_t restart_at_ms;  /* 0 = no restart pending */
    int64_t started_ms;
    struct stat so;
    bool so_known;
    bool stopping;
    char token[TOKEN_LEN + 1]; /* the running child's credential */
    int status_fd;          /* read end of the child's start report, or -1 */
    int64_t next_ping_ms;
    int64_t last_pong_ms;
    uint64_t nonce;
} slot_t;

struct sc_supervisor {
    void *zctx;
    char *inproc_ep;
    char *ipc_ep;
    char *self_exe;
    sc_drain_fn drain;
    void *drain_arg;
    sc_config_t *cfg;
    slot_t *slots;
    size_t n;
    bool abandoned;
    void *ipc_sock; /* the core's ROUTER towards children (pings) */
    sc_sink_relay_t *relay; /* sink frames for children (feeder -> core) */
    size_t relay_waiting;   /* frames the last flush could not send */
    sc_config_t **kept;  /* earlier configs that fallback slots still use */
    size_t n_kept;
    int last_kept, last_failed;
};

sc_supervisor_t *sc_supervisor_new(void *zctx, const char *inproc_ep,
                                   const char *ipc_ep, const char *self_exe,
                                   sc_drain_fn drain, void *drain_arg)
{
    sc_supervisor_t *sv = calloc(1, sizeof *sv);
    if (!sv)
        return NULL;
    sv->zctx = zctx;
    sv->inproc_ep = strdup(inproc_ep);
    sv->ipc_ep = ipc_ep ? strdup(ipc_ep) : NULL;
    sv->self_exe = self_exe ? strdup(self_exe) : NULL;
    sv->drain = drain;
    sv->drain_arg = drain_arg;
    char err[128];
    sv->relay = sc_sink_relay_new(err, sizeof err);
    if (!sv->relay)
        sc_log(SC_L_ERROR, "core", "sinks in plugin processes: %s", err);
    if (!sv->inproc_ep || (ipc_ep && !sv->ipc_ep) ||
        (self_exe && !sv->self_exe)) {
        sc_sink_relay_destroy(&sv->relay);
        free(sv->inproc_ep);
        free(sv->ipc_ep);
        free(sv->self_exe);
        free(sv);
        return NULL;
    }
    return sv;
}

/* ------------------------------------------------------------------ */
/* starting                                                            */

static char *state_db_path(const sc_config_t *cfg)
{
    /* plugin state lives in the journal (see plugin_host.c) */
    size_t n = strlen(cfg->data_dir) + sizeof "/journal.db";
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/journal.db", cfg->data_dir);
    return p;
}

/* The settings tree as written, as JSON (sent to a child). */
static json_t *sv_to_json(const sc_sv_t *v)
{
    json_t *o = json_pack("{s:i, s:i}", "k", (int)v->kind, "l", v->line);
    if (!o)
        return NULL;
    if (v->name)
        json_object_set_new(o, "n", json_string(v->name));
    switch (v->kind) {
    case SC_SV_STRING:
        json_object_set_new(o, "v", json_string(v->s ? v->s : ""));
        break;
    case SC_SV_INT:
        json_object_set_new(o, "v", json_integer((json_int_t)v->i));
        break;
    case SC_SV_BOOL:
        json_object_set_new(o, "v", json_boolean(v->b));
        break;
    case SC_SV_FLOAT:
        json_object_set_new(o, "v", json_real(v->f));
        break;
    case SC_SV_GROUP:
    case SC_SV_LIST: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < v->n_items; i++)
            json_array_append_new(a, sv_to_json(&v->items[i]));
        json_object_set_new(o, "items", a);
        break;
    }
    }
    return o;
}

static int sv_from_json(sc_sv_t *parent, const json_t *o)
{
    json_t *items = json_object_get(o, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        const json_t *c = json_array_get(items, i);
        int kind = (int)json_integer_value(json_object_get(c, "k"));
        sc_sv_t *v = sc_sv_append(parent,
                                  json_string_value(json_object_get(c, "n")),
                                  (sc_sv_kind_t)kind,
                                  (int)json_integer_value(
                                      json_object_get(c, "l")));
        if (!v)
            return -1;
        const json_t *val = json_object_get(c, "v");
        switch (kind) {
        case SC_SV_STRING:
            if (!(v->s = strdup(json_string_value(val) ? json_string_value(val)
                                                       : "")))
                return -1;
            break;
        case SC_SV_INT: v->i = (int64_t)json_integer_value(val); break;
        case SC_SV_BOOL: v->b = json_is_true(val); break;
        case SC_SV_FLOAT: v->f = json_number_value(val); break;
        case SC_SV_GROUP:
        case SC_SV_LIST:
            if (sv_from_json(v, c) != 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* What a child needs to run its instance: the running configuration's
 * entry (never the file: it may have been edited since), the broker's
 * limits and the child's credential. */
static char *child_conf(const sc_supervisor_t *sv, const slot_t *s)
{
    const sc_cfg_plugin_t *p = s->cfg;
    json_t *ch = json_array();
    for (size_t i = 0; ch && i < p->n_channels; i++)
        json_array_append_new(ch, json_string(p->channels[i]));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:s, s:s, s:I, s:s, s:s}",
        "token", s->token, "name", p->name, "path", p->path, "sector",
        p->sector ? p->sector : "", "channels", ch ? ch : json_array(),
        "line", p->line, "settings_line", p->settings_line, "file",
        sv->cfg->path, "dir", sv->cfg->dir ? sv->cfg->dir : "",
        "max_data_bytes", (json_int_t)sv->cfg->max_data_bytes, "data_dir",
        sv->cfg->data_dir, "log_level",
        sv->cfg->log_level ? sv->cfg->log_level : "info");
    if (!o)
        return NULL;
    if (p->settings_written)
        json_object_set_new(o, "settings", sv_to_json(p->settings_written));
    json_object_set_new(o, "max_channels", json_integer(p->max_channels));
    if (p->user)
        json_object_set_new(o, "user", json_string(p->user));
    json_object_set_new(o, "publish_window",
                        json_integer(p->publish_window));
    json_t *rv = json_array();
    for (size_t i = 0; rv && i < p->n_receives; i++)
        json_array_append_new(rv, json_string(p->receives[i]));
    if (rv)
        json_object_set_new(o, "receives", rv);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static int spawn_child(sc_supervisor_t *sv, slot_t *s)
{
    if (!sv->ipc_ep || !sv->self_exe) {
        sc_log(SC_L_ERROR, s->cfg->name,
               "isolation = \"process\" is not available (no ipc endpoint "
               "for children: is data_dir's path too long?)");
        return -1;
    }
    unsigned char rnd[TOKEN_LEN / 2];
    randombytes_buf(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(s->token + 2 * i, 3, "%02x", rnd[i]);
    char *conf = child_conf(sv, s);
    int pfd[2] = {-1, -1};
    if (!conf || pipe(pfd) != 0) {
        sc_log(SC_L_ERROR, s->cfg->name, "cannot spawn plugin process: %s",
               conf ? strerror(errno) : "out of memory");
        free(conf);
        return -1;
    }
    /* fd 4: the child writes "ok" once its instance's init() succeeded,
     * "failed" when it did not start (a reload waits for this) */
    int sfd[2] = {-1, -1};
    if (pipe(sfd) != 0) {
        sc_log(SC_L_ERROR, s->cfg->name, "cannot spawn plugin process: %s",
               strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        free(conf);
        return -1;
    }
    /* no other child may inherit these (dup2 below clears the flag on
     * the child's fds 3 and 4) */
    for (int i = 0; i < 2; i++) {
        fcntl(pfd[i], F_SETFD, FD_CLOEXEC);
        fcntl(sfd[i], F_SETFD, FD_CLOEXEC);
    }
    char *argv[] = {sv->self_exe, "--plugin-child", s->cfg->name, "--core",
                    sv->ipc_ep,   "--child-fd",     "3",          NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[0], 3);
    posix_spawn_file_actions_adddup2(&fa, sfd[1], 4);
    /* the child must not inherit our blocked signals */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigemptyset(&all);
    sigaddset(&all, SIGTERM);
    sigaddset(&all, SIGINT);
    sigaddset(&all, SIGHUP);
    sigaddset(&all, SIGCHLD);
    sigaddset(&all, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, sv->self_exe, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[0]);
    close(sfd[1]);
    if (rc != 0) {
        close(sfd[0]);
        close(pfd[1]);
        free(conf);
        sc_log(SC_L_ERROR, s->cfg->name, "cannot spawn plugin process: %s",
               strerror(rc));
        return -1;
    }
    /* the pipe holds 64 KiB; a larger configuration is written while the
     * child reads it (it reads before anything else) */
    size_t len = strlen(conf), off = 0;
    while (off < len) {
        ssize_t w = write(pfd[1], conf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(pfd[1]);
    free(conf);
    if (s->status_fd >= 0)
        close(s->status_fd);
    s->status_fd = sfd[0];
    s->pid = pid;
    s->last_pong_ms = sc_mono_ms();
    s->next_ping_ms = s->last_pong_ms + PING_MS;
    sc_log(SC_L_INFO, s->cfg->name, "plugin process started (pid %d)",
           (int)pid);
    return 0;
}

/* Sinks: the feeder (its own thread) offers messages to a thread
 * instance through the host's bounded queue; the port is attached after
 * the instance started and detached before it is destroyed, so the feeder
 * never sees a freed instance. Until the plugin registered SC_CAP_SINK the
 * offers are refused and made again shortly. */
static int sink_offer(void *arg, const sc_sink_msg_t *m)
{
    return sc_plugin_sink_deliver(arg, m) == SC_OK ? 0 : -1;
}

static int sink_lost(void *arg, const char *channel, const char *epoch,
                     uint64_t first, uint64_t last)
{
    return sc_plugin_sink_lost(arg, channel, epoch, first, last) == SC_OK
               ? 0
               : -1;
}

/* A child's sink: the feeder queues SINK_MSG / SINK_LOST frames on the
 * relay (never blocking), the core thread sends them on the ROUTER to the
 * child's credential (sc_supervisor_sink_flush), the child's SINK_ACK /
 * SINK_NACK come back through the pipeline. The port is attached once the
 * child is spawned and detached when it is reaped or stopped, so a
 * restarted child resumes from the durable cursor; frames still queued
 * for a gone child are dropped with its port. The window is the relay's
 * queue bound (and the child host's queue, SC_PLUGIN_SINK_WINDOW), so a
 * child is never sent more than it can queue. */
static int child_offer(void *arg, const sc_sink_msg_t *m)
{
    child_sink_t *c = arg;
    return sc_sink_relay_msg(c->relay, c->rid, m);
}

static int child_lost(void *arg, const char *channel, const char *epoch,
                      uint64_t first, uint64_t last)
{
    child_sink_t *c = arg;
    return sc_sink_relay_lost(c->relay, c->rid, channel, epoch, first, last);
}

static void sink_attach(sc_supervisor_t *sv, slot_t *s)
{
    sc_cfg_plugin_t *p = s->cfg;
    sc_sink_feeder_t *f = sc_sink_global();
    if (p->n_receives == 0 || !f || (!s->inst && s->pid <= 0))
        return;
    sc_sink_target_t t = {.offer = sink_offer, .lost = sink_lost,
                          .arg = s->inst};
    uint32_t window = 0;
    if (s->pid > 0) {
        if (!sv->relay || !(s->csink = calloc(1, sizeof *s->csink))) {
            sc_log(SC_L_ERROR, p->name, "sink not fed: %s",
                   sv->relay ? "out of memory" : "no relay to children");
            return;
        }
        s->csink->relay = sv->relay;
        memcpy(s->csink->rid, s->token, sizeof s->csink->rid);
        t = (sc_sink_target_t){.offer = child_offer, .lost = child_lost,
                               .arg = s->csink};
        window = SC_SINK_RELAY_MAX < SC_PLUGIN_SINK_WINDOW
                     ? SC_SINK_RELAY_MAX
                     : SC_PLUGIN_SINK_WINDOW;
    }
    char err[256];
    s->sink = sc_sink_attach(f, p->name, p->receives, p->n_receives, window,
                             &t, err, sizeof err);
    if (!s->sink) {
        sc_log(SC_L_ERROR, p->name, "sink not fed: %s", err);
        free(s->csink);
        s->csink = NULL;
    }
}

/* Detach the slot's sink (the feeder never calls its target again) and
 * drop what the relay still holds for its child. */
static void sink_release(sc_supervisor_t *sv, slot_t *s)
{
    sc_sink_detach(&s->sink);
    if (s->csink) {
        sc_sink_relay_drop(sv->relay, s->csink->rid);
        free(s->csink);
        s->csink = NULL;
    }
}

static int start_slot(sc_supervisor_t *sv, slot_t *s)
{
    sc_cfg_plugin_t *p = s->cfg;
    s->stopping = false;
    s->restart_at_ms = 0;
    s->started_ms = sc_mono_ms();
    s->so_known = stat(p->path, &s->so) == 0;
    /* an isolated plugin is never loaded into this process: the child
     * performs the handshake and the settings check, and reports */
    if (p->isolate_process) {
        int rc = spawn_child(sv, s);
        if (rc == 0)
            sink_attach(sv, s);
        sc_ops_plugin(p->name, rc == 0 ? "running" : "failed",
                      rc == 0 ? (int)s->pid : 0,
                      rc == 0 ? NULL : "cannot spawn the plugin process");
        return rc;
    }
    /* a plugin that cannot load is refused by name here, and the others
     * start regardless */
    sc_plugin_lib_t lib;
    char err[1024];
    if (sc_plugin_lib_open(p->path, &lib, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, p->name, "%s:%d: %s; plugin not started",
               sv->cfg->path, p->line, err);
        sc_ops_plugin(p->name, "failed", 0, err);
        return -1;
    }
    sc_diag_t d = {0};
    if (sc_config_check_plugin(sv->cfg, p, &lib.desc, &d) != 0) {
        for (size_t k = 0; k < d.count; k++)
            sc_log(SC_L_ERROR, p->name, "%s", d.lines[k]);
        sc_log(SC_L_ERROR, p->name, "plugin not started");
        sc_ops_plugin(p->name, "failed", 0,
                      d.count ? d.lines[0] : "invalid settings");
        sc_diag_clear(&d);
        sc_plugin_lib_close(&lib);
        return -1;
    }
    sc_diag_clear(&d);
    char *db = state_db_path(sv->cfg);
    if (!db) {
        sc_plugin_lib_close(&lib);
        sc_log(SC_L_ERROR, p->name, "out of memory; plugin not started");
        return -1;
    }
    sc_plugin_start_opts_t so = {.cfg = p,
                                 .max_data_bytes = sv->cfg->max_data_bytes,
                                 .zctx = sv->zctx,
                                 .core_endpoint = sv->inproc_ep,
                                 .state_db = db};
    s->inst = sc_plugin_start(&lib, &so, err, sizeof err);
    free(db);
    if (!s->inst) {
        sc_log(SC_L_ERROR, p->name, "%s; plugin not started", err);
        sc_ops_plugin(p->name, "failed", 0, err);
        return -1;
    }
    sink_attach(sv, s);
    sc_ops_plugin(p->name, "running", 0, NULL);
    return 0;
}

/* ------------------------------------------------------------------ */
/* stopping                                                            */

static void status_close(slot_t *s)
{
    if (s->status_fd >= 0)
        close(s->status_fd);
    s->status_fd = -1;
}

static bool child_gone(slot_t *s)
{
    if (s->pid <= 0) {
        status_close(s);
        return true;
    }
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        s->pid = 0;
        status_close(s);
        return true;
    }
    return false;
}

/* A new child's start report (fd 4 of the child): 1 once its init()
 * succeeded, 0 when it did not start (it said so, or ended without a
 * word), -1 when it said nothing within timeout_ms. Drains the core
 * meanwhile (the new instance may publish). */
static int child_wait_started(sc_supervisor_t *sv, slot_t *s, int timeout_ms)
{
    if (s->status_fd < 0)
        return 0;
    char buf[16];
    size_t n = 0;
    int64_t until = sc_mono_ms() + timeout_ms;
    while (sc_mono_ms() < until) {
        struct pollfd pf = {s->status_fd, POLLIN, 0};
        int r = poll(&pf, 1, 20);
        if (sv->drain)
            sv->drain(sv->drain_arg);
        if (r <= 0)
            continue;
        ssize_t k = read(s->status_fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0; /* ended before it said ok */
        n += (size_t)k;
        buf[n] = '\0';
        if (strchr(buf, '\n'))
            return strncmp(buf, "ok\n", 3) == 0 ? 1 : 0;
        if (n >= sizeof buf - 1)
            return 0;
    }
    return -1;
}

/* Stop a child that did not start (it normally exits by itself). */
static void child_discard(slot_t *s)
{
    if (s->pid > 0) {
        int64_t until = sc_mono_ms() + 2000;
        while (!child_gone(s) && sc_mono_ms() < until)
            usleep(10000);
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    status_close(s);
}

/* Stop the slots flagged `stopping`, draining the core meanwhile. */
static void stop_flagged(sc_supervisor_t *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (!s->stopping)
            continue;
        if (s->inst)
            sc_plugin_request_stop(s->inst);
        if (s->pid > 0)
            kill(s->pid, SIGTERM);
        s->restart_at_ms = 0;
    }
    int64_t deadline = sc_mono_ms() + STOP_MS;
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < sv->n; i++) {
            slot_t *s = &sv->slots[i];
            if (!s->stopping)
                continue;
            if (s->inst && !sc_plugin_exited(s->inst))
                all = false;
            if (s->pid > 0 && !child_gone(s))
                all = false;
        }
        if (sv->drain)
            sv->drain(sv->drain_arg);
        if (all || sc_mono_ms() > deadline)
            break;
        usleep(10000);
    }
    for (size_t i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (!s->stopping)
            continue;
        if (s->pid > 0 && !child_gone(s)) {
            sc_log(SC_L_ERROR, s->cfg ? s->cfg->name : "plugin",
                   "plugin process %d did not stop within %d ms; killed",
                   (int)s->pid, STOP_MS);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
        status_close(s);
        sink_release(sv, s);
        if (s->inst && !sc_plugin_destroy(&s->inst, 1000))
            sv->abandoned = true;
        s->inst = NULL;
    }
    if (sv->drain)
        sv->drain(sv->drain_arg);
}

/* ------------------------------------------------------------------ */
/* reload                                                              */

static bool settings_equal(const sc_cfg_plugin_t *a, const sc_cfg_plugin_t *b)
{
    /* an isolated plugin's settings are resolved in its child only: the
     * broker compares them as written */
    if (a->isolate_process)
        return sc_sv_equal(a->settings_written, b->settings_written);
    return sc_settings_equal(a->settings, b->settings);
}

/* What differs between the running entry and the new one ("" = none). */
static const char *what_changed(const slot_t *s, const sc_cfg_plugin_t *n)
{
    const sc_cfg_plugin_t *o = s->cfg;
    if (strcmp(o->path, n->path) != 0)
        return "path changed";
    if (strcmp(o->sector, n->sector) != 0)
        return "sector changed";
    if (o->isolate_process != n->isolate_process)
        return "isolation changed";
    if ((o->user == NULL) != (n->user == NULL) ||
        (o->user && strcmp(o->user, n->user) != 0))
        return "user changed";
    if (o->isolate_process && o->publish_window != n->publish_window)
        return "publish_window changed";
    if (o->n_channels != n->n_channels)
        return "channels changed";
    for (size_t i = 0; i < o->n_channels; i++)
        if (strcmp(o->channels[i], n->channels[i]) != 0)
            return "channels changed";
    if (o->n_receives != n->n_receives)
        return "receives changed";
    for (size_t i = 0; i < o->n_receives; i++)
        if (strcmp(o->receives[i], n->receives[i]) != 0)
            return "receives changed";
    if (!settings_equal(o, n))
        return "settings changed";
    struct stat st;
    if (s->so_known &&
        (stat(n->path, &st) != 0 || st.st_dev != s->so.st_dev ||
         st.st_ino != s->so.st_ino || st.st_size != s->so.st_size ||
         st.st_mtim.tv_sec != s->so.st_mtim.tv_sec ||
         st.st_mtim.tv_nsec != s->so.st_mtim.tv_nsec))
        return "plugin file changed";
    return "";
}

static sc_cfg_plugin_t *find_cfg(sc_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (strcmp(cfg->plugins[i].name, name) == 0)
            return &cfg->plugins[i];
    return NULL;
}

/* The cursors of sink instances no longer configured are forgotten
 * (sinks.db holds only configured instances). */
static void sink_forget_removed(const sc_config_t *cfg)
{
    sc_sink_feeder_t *f = sc_sink_global();
    const char **names = calloc(cfg->n_plugins + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; f && names && i < cfg->n_plugins; i++)
        if (cfg->plugins[i].n_receives > 0)
            names[n++] = cfg->plugins[i].name;
    if (f && names)
        sc_sink_keep_only(f, names, n);
    free(names);
}

static int apply(sc_supervisor_t *sv, sc_config_t *cfg);

int sc_supervisor_apply(sc_supervisor_t *sv, sc_config_t *cfg)
{
    int started = apply(sv, cfg);
    sink_forget_removed(cfg);
    return started;
}

static int apply(sc_supervisor_t *sv, sc_config_t *cfg)
{
    int started = 0, failed = 0, restored = 0;
    if (!sv->cfg) {
        sv->cfg = cfg;
        sv->slots = calloc(cfg->n_plugins + 1, sizeof *sv->slots);
        if (!sv->slots)
            return 0;
        for (size_t i = 0; i < cfg->n_plugins; i++) {
            slot_t *s = &sv->slots[sv->n++];
            s->cfg = &cfg->plugins[i];
            s->status_fd = -1;
            s->backoff_ms = BACKOFF_MIN_MS;
            if (start_slot(sv, s) == 0)
                started++;
        }
        return started;
    }

    /* 1. decide: each running slot is kept, restarted or removed */
    const char **why = calloc(sv->n + 1, sizeof *why);
    slot_t *slots = calloc(sv->n + cfg->n_plugins + 1, sizeof *slots);
    if (!why || !slots) {
        free(why);
        free(slots);
        sc_log(SC_L_ERROR, "core", "reload: out of memory; nothing changed");
        return 0;
    }
    for (size_t i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        sc_cfg_plugin_t *n = find_cfg(cfg, s->cfg->name);
        why[i] = n ? what_changed(s, n) : "removed from the configuration";
        if (why[i][0])
            s->stopping = true;
    }
    /* 2. stop the removed and changed ones (old config still alive) */
    for (size_t i = 0; i < sv->n; i++)
        if (why[i][0])
            sc_log(SC_L_INFO, sv->slots[i].cfg->name,
                   "reload: %s; stopping plugin", why[i]);
    stop_flagged(sv);

    /* 3. build the new slot list in the order of the new config */
    sv->cfg = cfg;
    size_t n = 0;
    for (size_t k = 0; k < cfg->n_plugins; k++) {
        sc_cfg_plugin_t *p = &cfg->plugins[k];
        slot_t *found = NULL;
        size_t fi = 0;
        for (size_t i = 0; i < sv->n && !found; i++)
            if (strcmp(sv->slots[i].cfg->name, p->name) == 0) {
                found = &sv->slots[i];
                fi = i;
            }
        slot_t *s = &slots[n++];
        if (found && !why[fi][0]) {
            *s = *found;           /* unchanged: keeps running */
            s->cfg = p;
            continue;
        }
        memset(s, 0, sizeof *s);
        s->cfg = p;
        s->status_fd = -1;
        s->backoff_ms = BACKOFF_MIN_MS;
        sc_log(SC_L_INFO, p->name, "reload: %s; starting plugin",
               found ? why[fi] : "added to the configuration");
        int ok = start_slot(sv, s) == 0;
        /* the new instance (thread or child) must get through init(); if
         * it does not, the previous one comes back on its previous entry */
        if (ok && s->inst && sc_plugin_wait_started(s->inst, 10000) != 1)
            ok = 0;
        if (ok && s->pid > 0 && child_wait_started(sv, s, 10000) != 1)
            ok = 0;
        if (ok) {
            started++;
            continue;
        }
        failed++;
        sink_release(sv, s);
        if (s->pid > 0 || s->status_fd >= 0)
            child_discard(s);
        if (!found)
            continue;
        sc_ops_plugin(p->name, "failed", 0, "the new instance did not start");
        if (s->inst && !sc_plugin_destroy(&s->inst, 1000))
            sv->abandoned = true;
        s->inst = NULL;
        sc_log(SC_L_ERROR, p->name,
               "reload: the new instance did not start; restarting the "
               "plugin on its previous configuration");
        s->cfg = found->cfg; /* in the previous config, kept alive */
        if (start_slot(sv, s) == 0)
            restored++;
    }
    free(sv->slots);
    sv->slots = slots;
    sv->n = n;
    free(why);
    sv->last_kept = (int)(n - (size_t)started - (size_t)failed);
    sv->last_failed = failed;
    (void)restored;
    return started;
}

void sc_supervisor_last_apply(const sc_supervisor_t *sv, int *kept,
                              int *failed)
{
    *kept = sv ? sv->last_kept : 0;
    *failed = sv ? sv->last_failed : 0;
}

static bool config_used(const sc_supervisor_t *sv, const sc_config_t *c)
{
    for (size_t i = 0; i < sv->n; i++)
        if (sv->slots[i].cfg >= c->plugins &&
            sv->slots[i].cfg < c->plugins + c->n_plugins)
            return true;
    return false;
}

void sc_supervisor_adopt(sc_supervisor_t *sv, sc_config_t *old)
{
    /* free the kept configs no slot uses any more, then keep `old` if a
     * slot fell back to one of its entries */
    size_t k = 0;
    for (size_t i = 0; i < sv->n_kept; i++) {
        if (config_used(sv, sv->kept[i]))
            sv->kept[k++] = sv->kept[i];
        else
            sc_config_destroy(&sv->kept[i]);
    }
    sv->n_kept = k;
    if (!old)
        return;
    if (!config_used(sv, old)) {
        sc_config_destroy(&old);
        return;
    }
    sc_config_t **v = realloc(sv->kept, (sv->n_kept + 1) * sizeof *v);
    if (!v) {
        /* cannot track it: keep it alive anyway (a small leak beats a
         * slot pointing into freed memory) */
        sc_log(SC_L_ERROR, "core", "out of memory keeping a configuration");
        return;
    }
    sv->kept = v;
    sv->kept[sv->n_kept++] = old;
}

/* ------------------------------------------------------------------ */
/* children                                                            */

static const char *describe_status(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else
        snprintf(buf, len, "ended (status 0x%x)", (unsigned)st);
    return buf;
}

void sc_supervisor_tick(sc_supervisor_t *sv)
{
    if (!sv)
        return;
    int st;
    pid_t pid;
    /* reap only our plugin children (by pid): other children of the
     * broker, e.g. a reload's --check-plugin child, are waited for by
     * whoever started them */
    for (size_t i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (s->pid <= 0 || (pid = waitpid(s->pid, &st, WNOHANG)) != s->pid)
            continue;
        {
            s->pid = 0;
            status_close(s);
            sink_release(sv, s);
            char why[96];
            int64_t ran = sc_mono_ms() - s->started_ms;
            if (ran > STABLE_MS)
                s->backoff_ms = BACKOFF_MIN_MS;
            sc_log(SC_L_ERROR, s->cfg->name,
                   "plugin process %d %s after %lld ms; restarting in %d ms",
                   (int)pid, describe_status(st, why, sizeof why),
                   (long long)ran, s->backoff_ms);
            if (!s->stopping)
                sc_ops_plugin_crashed(s->cfg->name, why);
            s->restart_at_ms = sc_mono_ms() + s->backoff_ms;
            s->backoff_ms *= 2;
            if (s->backoff_ms > BACKOFF_MAX_MS)
                s->backoff_ms = BACKOFF_MAX_MS;
        }
    }
    int64_t now = sc_mono_ms();
    for (size_t i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (s->restart_at_ms && now >= s->restart_at_ms && !s->pid) {
            s->restart_at_ms = 0;
            start_slot(sv, s);
        }
    }
    /* liveness: a child that does not answer its pings is killed (and
     * then restarted like any child that died) */
    for (size_t i = 0; sv->ipc_sock && i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (s->pid <= 0 || s->stopping)
            continue;
        if (now - s->last_pong_ms > DEAD_MS) {
            sc_log(SC_L_ERROR, s->cfg->name,
                   "plugin process %d did not answer the liveness check "
                   "for %d ms; killed",
                   (int)s->pid, DEAD_MS);
            kill(s->pid, SIGKILL);
            s->last_pong_ms = now; /* once; SIGCHLD restarts it */
            continue;
        }
        if (now >= s->next_ping_ms) {
            sc_frame_t f = {.type = SC_FRAME_PING, .seq = ++s->nonce};
            unsigned char *buf;
            size_t len;
            if (sc_frame_encode(&f, &buf, &len) == 0) {
                if (zmq_send(sv->ipc_sock, s->token, strlen(s->token),
                             ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                    zmq_send(sv->ipc_sock, buf, len, ZMQ_DONTWAIT);
                free(buf);
            }
            s->next_ping_ms = now + PING_MS;
        }
    }
}

void sc_supervisor_set_ipc_socket(sc_supervisor_t *sv, void *sock)
{
    if (sv)
        sv->ipc_sock = sock;
}

int sc_supervisor_sink_fd(const sc_supervisor_t *sv)
{
    return sv ? sc_sink_relay_fd(sv->relay) : -1;
}

void sc_supervisor_sink_flush(sc_supervisor_t *sv)
{
    if (sv && sv->relay)
        sv->relay_waiting = sc_sink_relay_flush(sv->relay, sv->ipc_sock);
}

void sc_supervisor_pong(sc_supervisor_t *sv, const void *rid, size_t len,
                        uint64_t nonce)
{
    (void)nonce;
    for (size_t i = 0; sv && i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        if (s->pid > 0 && strlen(s->token) == len &&
            memcmp(s->token, rid, len) == 0)
            s->last_pong_ms = sc_mono_ms();
    }
}

const sc_cfg_plugin_t *sc_supervisor_plugin(const sc_supervisor_t *sv,
                                            const char *name)
{
    for (size_t i = 0; sv && name && i < sv->n; i++)
        if (!sv->slots[i].cfg->isolate_process &&
            strcmp(sv->slots[i].cfg->name, name) == 0)
            return sv->slots[i].cfg;
    return NULL;
}

const sc_cfg_plugin_t *sc_supervisor_child(const sc_supervisor_t *sv,
                                           const void *rid, size_t len)
{
    for (size_t i = 0; sv && rid && i < sv->n; i++) {
        const slot_t *s = &sv->slots[i];
        /* the credential of a running child; compared in constant time */
        if (s->pid > 0 && s->token[0] && len == strlen(s->token) &&
            sodium_memcmp(s->token, rid, len) == 0)
            return s->cfg;
    }
    return NULL;
}

int sc_supervisor_restart(sc_supervisor_t *sv, const char *name, char *err,
                          size_t errlen)
{
    slot_t *s = NULL;
    for (size_t i = 0; sv && i < sv->n && !s; i++)
        if (strcmp(sv->slots[i].cfg->name, name) == 0)
            s = &sv->slots[i];
    if (!s) {
        snprintf(err, errlen, "no plugin named '%.64s' in the running "
                              "configuration", name);
        return -1;
    }
    sc_log(SC_L_INFO, name, "restart requested; stopping plugin");
    for (size_t i = 0; i < sv->n; i++)
        sv->slots[i].stopping = &sv->slots[i] == s;
    stop_flagged(sv);
    sc_ops_plugin(name, "stopped", 0, NULL);
    s->backoff_ms = BACKOFF_MIN_MS;
    if (start_slot(sv, s) != 0) {
        snprintf(err, errlen, "plugin '%.64s' stopped but could not start "
                              "again (see the broker log)", name);
        return -1;
    }
    return 0;
}

long sc_supervisor_next_wake_ms(const sc_supervisor_t *sv)
{
    long best = sv && sv->relay_waiting ? RELAY_RETRY_MS : -1;
    int64_t now = sc_mono_ms();
    for (size_t i = 0; sv && i < sv->n; i++) {
        int64_t at = sv->slots[i].restart_at_ms;
        if (sv->slots[i].pid > 0 && sv->ipc_sock &&
            (!at || sv->slots[i].next_ping_ms < at))
            at = sv->slots[i].next_ping_ms;
        if (!at)
            continue;
        int64_t d = at - now;
        if (sv->relay_waiting && d > RELAY_RETRY_MS)
            d = RELAY_RETRY_MS;
        long v = d < 0 ? 0 : (long)d;
        if (best < 0 || v < best)
            best = v;
    }
    return best;
}

bool sc_supervisor_may_publish(const sc_supervisor_t *sv, const char *name,
                               const char *channel)
{
    char topic[SC_CHANNEL_MAX + 2];
    int tl = channel ? sc_channel_topic(channel, topic, sizeof topic) : 0;
    if ((channel && tl <= 0) || !sv || !sv->cfg)
        return false;
    for (size_t i = 0; i < sv->n; i++) {
        const sc_cfg_plugin_t *p = sv->slots[i].cfg;
        if (strcmp(p->name, name) != 0)
            continue;
        if (!channel)
            return true; /* only the name was asked about */
        for (size_t k = 0; k < p->n_channels; k++)
            if (sc_subtree_covers(p->channels[k], topic, (size_t)tl))
                return true;
        return false;
    }
    return false;
}

bool sc_supervisor_abandoned(const sc_supervisor_t *sv)
{
    return sv && sv->abandoned;
}

void sc_supervisor_destroy(sc_supervisor_t **sv_p)
{
    if (!sv_p || !*sv_p)
        return;
    sc_supervisor_t *sv = *sv_p;
    for (size_t i = 0; i < sv->n; i++)
        sv->slots[i].stopping = true;
    stop_flagged(sv);
    for (size_t i = 0; i < sv->n_kept; i++)
        sc_config_destroy(&sv->kept[i]);
    free(sv->kept);
    sc_sink_relay_destroy(&sv->relay);
    free(sv->slots);
    free(sv->inproc_ep);
    free(sv->ipc_ep);
    free(sv->self_exe);
    free(sv);
    *sv_p = NULL;
}

/* ------------------------------------------------------------------ */
/* the child process                                                   */

static void child_report(void *arg, const char *file, int line,
                         const char *msg)
{
    if (line > 0)
        sc_log(SC_L_ERROR, (const char *)arg, "%s:%d: %s", file, line, msg);
    else
        sc_log(SC_L_ERROR, (const char *)arg, "%s: %s", file, msg);
}

static char *read_all(int fd, size_t max)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= max) {
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* The start report on fd 4 (see child_wait_started): said once. */
static void child_say(int *fd, bool ok)
{
    if (*fd < 0)
        return;
    const char *m = ok ? "ok\n" : "failed\n";
    ssize_t w;
    do
        w = write(*fd, m, strlen(m));
    while (w < 0 && errno == EINTR);
    close(*fd);
    *fd = -1;
}

int sc_supervisor_drop_user(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "no such user '%s'", user);
        return -1;
    }
    if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "cannot become user '%s' (uid %d): %s%s", user,
                 (int)pw->pw_uid, strerror(errno),
                 errno == EPERM ? " (the broker must run as root to use "
                                  "'user')"
                                : "");
        return -1;
    }
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "user '%s': could regain root; refusing", user);
        return -1;
    }
    return 0;
}

/* Become `user` for good; the parent-death signal, cleared by the change,
 * is set again. 0 or -1 + err. */
static int child_drop(const char *user, char *err, size_t errlen)
{
    if (sc_supervisor_drop_user(user, err, errlen) != 0)
        return -1;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) {
        snprintf(err, errlen, "the broker is gone");
        return -1;
    }
    return 0;
}

int sc_supervisor_child_main(const char *name, const char *core_ep,
                             int conf_fd)
{
    /* die with the broker */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        return 1;
    /* fd 4: our start report to the supervisor (if it gave us one) */
    int status_fd = fcntl(4, F_GETFD) >= 0 ? 4 : -1;
    if (status_fd >= 0)
        fcntl(status_fd, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    /* 1. the running configuration's entry, from the supervisor */
    char *text = read_all(conf_fd, 64u * 1024 * 1024);
    close(conf_fd);
    json_error_t je;
    json_t *c = text ? json_loads(text, 0, &je) : NULL;
    free(text);
    const char *token = json_string_value(json_object_get(c, "token"));
    const char *path = json_string_value(json_object_get(c, "path"));
    const char *cname = json_string_value(json_object_get(c, "name"));
    const char *file = json_string_value(json_object_get(c, "file"));
    const char *dir = json_string_value(json_object_get(c, "dir"));
    const char *data_dir = json_string_value(json_object_get(c, "data_dir"));
    json_t *chans = json_object_get(c, "channels");
    if (!c || !token || !path || !cname || !file || !dir || !data_dir ||
        !json_is_array(chans) || strcmp(cname, name) != 0) {
        sc_log(SC_L_ERROR, name,
               "plugin process: no valid configuration from the broker");
        json_decref(c);
        child_say(&status_fd, false);
        return 1;
    }
    int lvl = sc_log_parse_level(
        json_string_value(json_object_get(c, "log_level")));
    if (lvl >= 0)
        sc_log_set_level((sc_level_t)lvl);
    sc_cfg_plugin_t p;
    memset(&p, 0, sizeof p);
    p.name = (char *)cname;
    p.path = (char *)path;
    p.sector = (char *)json_string_value(json_object_get(c, "sector"));
    p.line = (int)json_integer_value(json_object_get(c, "line"));
    p.settings_line =
        (int)json_integer_value(json_object_get(c, "settings_line"));
    p.isolate_process = true;
    p.max_channels = json_integer_value(json_object_get(c, "max_channels"));
    p.publish_window =
        json_integer_value(json_object_get(c, "publish_window"));
    p.n_channels = json_array_size(chans);
    p.channels = calloc(p.n_channels + 1, sizeof *p.channels);
    for (size_t i = 0; p.channels && i < p.n_channels; i++)
        p.channels[i] = (char *)json_string_value(json_array_get(chans, i));
    json_t *rv = json_object_get(c, "receives");
    p.n_receives = json_array_size(rv);
    p.receives = calloc(p.n_receives + 1, sizeof *p.receives);
    for (size_t i = 0; p.receives && i < p.n_receives; i++)
        p.receives[i] = (char *)json_string_value(json_array_get(rv, i));
    sc_sv_t *written = NULL;
    json_t *st = json_object_get(c, "settings");
    if (st) {
        written = sc_sv_new_group(
            (int)json_integer_value(json_object_get(st, "l")));
        if (!written || sv_from_json(written, st) != 0) {
            sc_log(SC_L_ERROR, name, "plugin process: bad settings");
            sc_sv_destroy(&written);
            free(p.channels);
            free(p.receives);
            json_decref(c);
            child_say(&status_fd, false);
            return 1;
        }
    }
    sc_plugin_lib_t lib;
    char err[1024];
    int rc = 1;
    void *zctx = NULL;
    int sfd = -1;
    sc_plugin_inst_t *inst = NULL;
    void *sock = NULL, *sdb = NULL;
    const char *user = json_string_value(json_object_get(c, "user"));
    size_t dl = strlen(data_dir) + sizeof "/journal.db";
    char *db = malloc(dl);
    if (db)
        snprintf(db, dl, "%s/journal.db", data_dir);
    /* signals: read from a signalfd (blocked before any thread exists) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    zctx = zmq_ctx_new();
    if (!db || sfd < 0 || !zctx) {
        sc_log(SC_L_ERROR, name, "plugin process: cannot start (%s)",
               strerror(errno));
        goto out;
    }
    /* 2. an unprivileged user: first take what it could not reach (the
     * connection to the core, the state database), then drop for good,
     * before any of the plugin's code (its constructors) runs */
    if (user) {
        if (!(sock = sc_plugin_child_connect(zctx, core_ep, token, 10000, err,
                                             sizeof err)) ||
            !(sdb = sc_plugin_state_open(db, err, sizeof err)) ||
            sc_plugin_state_warm(sdb, err, sizeof err) != 0 ||
            child_drop(user, err, sizeof err) != 0) {
            sc_log(SC_L_ERROR, name, "%s:%d: %s; plugin not started", file,
                   p.line, err);
            goto out;
        }
        sc_log(SC_L_INFO, name, "plugin process runs as user '%s' (uid %d)",
               user, (int)getuid());
    }
    /* 3. the handshake, here and never in the broker's process */
    if (sc_plugin_lib_open(path, &lib, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, name, "%s:%d: %s; plugin not started", file,
               p.line, err);
        goto out;
    }
    /* 4. its settings: the table, then its own check() */
    sc_settings_where_t w = {.file = file, .dir = dir, .plugin = cname,
                             .line = p.line,
                             .settings_line = p.settings_line};
    if (sc_settings_validate_desc(&w, written, &lib.desc, child_report,
                                  (void *)name, &p.settings) != 0) {
        sc_log(SC_L_ERROR, name, "plugin not started");
        sc_plugin_lib_close(&lib);
        goto out;
    }
    sc_settings_check_env_t env = {
        .instance = cname,
        .channels = (const char *const *)p.channels,
        .n_channels = p.n_channels,
    };
    if (sc_settings_run_check(sc_settings_check_of(&lib.desc), p.settings,
                              &env, child_report, (void *)name) != 0) {
        sc_log(SC_L_ERROR, name, "plugin not started");
        sc_plugin_lib_close(&lib);
        goto out;
    }
    sc_plugin_start_opts_t so = {
        .cfg = &p,
        .max_data_bytes =
            (int64_t)json_integer_value(json_object_get(c, "max_data_bytes")),
        .zctx = zctx,
        .core_endpoint = core_ep,
        .state_db = db,
        .acked = true,
        .routing_id = token,
        .sock = sock,
        .db = sdb};
    inst = sc_plugin_start(&lib, &so, err, sizeof err);
    sock = sdb = NULL; /* the instance's now */
    if (!inst) {
        sc_log(SC_L_ERROR, name, "cannot start: %s", err);
        goto out;
    }
    rc = 0;
    for (;;) {
        if (status_fd >= 0) {
            int started = sc_plugin_wait_started(inst, 0);
            if (started >= 0)
                child_say(&status_fd, started == 1);
        }
        zmq_pollitem_t it = {NULL, sfd, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 200);
        if (it.revents & ZMQ_POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si &&
                si.ssi_signo != SIGHUP)
                break;
        }
        if (sc_plugin_exited(inst)) {
            rc = 1;
            break;
        }
    }
    if (!sc_plugin_destroy(&inst, STOP_MS))
        _exit(1);
out:
    child_say(&status_fd, false);
    if (sock)
        zmq_close(sock);
    if (sdb)
        sqlite3_close(sdb);
    free(db);
    if (zctx)
        zmq_ctx_term(zctx);
    if (sfd >= 0)
        close(sfd);
    sc_settings_destroy(&p.settings);
    sc_sv_destroy(&written);
    free(p.channels);
    free(p.receives);
    json_decref(c);
    return rc;
}
