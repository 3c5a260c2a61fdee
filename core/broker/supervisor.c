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
 * process) as `sectorcastd --plugin-child NAME --core IPC -c CONFIG`; the
 * child runs the same plugin host and publishes into the core's ipc PULL
 * socket. The core re-checks every message from that socket against the
 * plugin's grants, since a crashed or hostile child is not trusted.
 */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/clock.h"
#include "log.h"
#include "plugin_host.h"

extern char **environ;

#define STOP_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000

typedef struct slot {
    sc_cfg_plugin_t *cfg;   /* entry in the current config */
    sc_plugin_inst_t *inst; /* thread isolation */
    pid_t pid;              /* process isolation; 0 = not running */
    int backoff_ms;
    int64_t restart_at_ms;  /* 0 = no restart pending */
    int64_t started_ms;
    struct stat so;
    bool so_known;
    bool stopping;
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
    if (!sv->inproc_ep || (ipc_ep && !sv->ipc_ep) ||
        (self_exe && !sv->self_exe)) {
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

static int spawn_child(sc_supervisor_t *sv, slot_t *s)
{
    if (!sv->ipc_ep || !sv->self_exe) {
        sc_log(SC_L_ERROR, s->cfg->name,
               "isolation = \"process\" is not available (no ipc endpoint "
               "for children: is data_dir's path too long?)");
        return -1;
    }
    char *argv[] = {sv->self_exe,    "--plugin-child", s->cfg->name,
                    "--core",        sv->ipc_ep,       "-c",
                    sv->cfg->path,   NULL};
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
    int rc = posix_spawn(&pid, sv->self_exe, NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        sc_log(SC_L_ERROR, s->cfg->name, "cannot spawn plugin process: %s",
               strerror(rc));
        return -1;
    }
    s->pid = pid;
    sc_log(SC_L_INFO, s->cfg->name, "plugin process started (pid %d)",
           (int)pid);
    return 0;
}

static int start_slot(sc_supervisor_t *sv, slot_t *s)
{
    sc_cfg_plugin_t *p = s->cfg;
    s->stopping = false;
    s->restart_at_ms = 0;
    s->started_ms = sc_mono_ms();
    s->so_known = stat(p->path, &s->so) == 0;
    /* a plugin that cannot load is refused by name here, whatever its
     * isolation, and the others start regardless */
    sc_plugin_lib_t lib;
    char err[1024];
    if (sc_plugin_lib_open(p->path, &lib, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, p->name, "%s:%d: %s; plugin not started",
               sv->cfg->path, p->line, err);
        return -1;
    }
    sc_diag_t d = {0};
    if (sc_config_check_plugin(sv->cfg, p, lib.desc, &d) != 0) {
        for (size_t k = 0; k < d.count; k++)
            sc_log(SC_L_ERROR, p->name, "%s", d.lines[k]);
        sc_log(SC_L_ERROR, p->name, "plugin not started");
        sc_diag_clear(&d);
        sc_plugin_lib_close(&lib);
        return -1;
    }
    sc_diag_clear(&d);
    if (p->isolate_process) {
        sc_plugin_lib_close(&lib); /* the child loads its own copy */
        return spawn_child(sv, s);
    }
    char *db = state_db_path(sv->cfg);
    if (!db) {
        sc_plugin_lib_close(&lib);
        sc_log(SC_L_ERROR, p->name, "out of memory; plugin not started");
        return -1;
    }
    s->inst = sc_plugin_start(&lib, p, sv->cfg->max_data_bytes, sv->zctx,
                              sv->inproc_ep, db, false, err, sizeof err);
    free(db);
    if (!s->inst) {
        sc_log(SC_L_ERROR, p->name, "%s; plugin not started", err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* stopping                                                            */

static bool child_gone(slot_t *s)
{
    if (s->pid <= 0)
        return true;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        s->pid = 0;
        return true;
    }
    return false;
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
    if (o->n_channels != n->n_channels)
        return "channels changed";
    for (size_t i = 0; i < o->n_channels; i++)
        if (strcmp(o->channels[i], n->channels[i]) != 0)
            return "channels changed";
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

int sc_supervisor_apply(sc_supervisor_t *sv, sc_config_t *cfg)
{
    int started = 0;
    if (!sv->cfg) {
        sv->cfg = cfg;
        sv->slots = calloc(cfg->n_plugins + 1, sizeof *sv->slots);
        if (!sv->slots)
            return 0;
        for (size_t i = 0; i < cfg->n_plugins; i++) {
            slot_t *s = &sv->slots[sv->n++];
            s->cfg = &cfg->plugins[i];
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
        s->backoff_ms = BACKOFF_MIN_MS;
        sc_log(SC_L_INFO, p->name, "reload: %s; starting plugin",
               found ? why[fi] : "added to the configuration");
        if (start_slot(sv, s) == 0)
            started++;
    }
    free(sv->slots);
    sv->slots = slots;
    sv->n = n;
    free(why);
    return started;
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
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (size_t i = 0; i < sv->n; i++) {
            slot_t *s = &sv->slots[i];
            if (s->pid != pid)
                continue;
            s->pid = 0;
            char why[96];
            int64_t ran = sc_mono_ms() - s->started_ms;
            if (ran > STABLE_MS)
                s->backoff_ms = BACKOFF_MIN_MS;
            sc_log(SC_L_ERROR, s->cfg->name,
                   "plugin process %d %s after %lld ms; restarting in %d ms",
                   (int)pid, describe_status(st, why, sizeof why),
                   (long long)ran, s->backoff_ms);
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
}

long sc_supervisor_next_wake_ms(const sc_supervisor_t *sv)
{
    long best = -1;
    int64_t now = sc_mono_ms();
    for (size_t i = 0; sv && i < sv->n; i++) {
        if (!sv->slots[i].restart_at_ms)
            continue;
        int64_t d = sv->slots[i].restart_at_ms - now;
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
    free(sv->slots);
    free(sv->inproc_ep);
    free(sv->ipc_ep);
    free(sv->self_exe);
    free(sv);
    *sv_p = NULL;
}

/* ------------------------------------------------------------------ */
/* the child process                                                   */

int sc_supervisor_child_main(const char *config_path, const char *name,
                             const char *core_ep)
{
    /* die with the broker */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        return 1;
    sc_diag_t diag = {0};
    sc_config_t *cfg = sc_config_load(config_path, true, &diag);
    if (!cfg) {
        for (size_t i = 0; i < diag.count; i++)
            sc_log(SC_L_ERROR, name, "%s", diag.lines[i]);
        sc_diag_clear(&diag);
        return 1;
    }
    sc_diag_clear(&diag);
    sc_log_set_level((sc_level_t)sc_log_parse_level(cfg->log_level));
    sc_cfg_plugin_t *p = find_cfg(cfg, name);
    if (!p) {
        sc_log(SC_L_ERROR, name, "plugin not in %s", config_path);
        sc_config_destroy(&cfg);
        return 1;
    }
    sc_plugin_lib_t lib;
    char err[1024];
    if (sc_plugin_lib_open(p->path, &lib, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, name, "%s", err);
        sc_config_destroy(&cfg);
        return 1;
    }
    if (sc_config_check_plugin(cfg, p, lib.desc, &diag) != 0) {
        for (size_t i = 0; i < diag.count; i++)
            sc_log(SC_L_ERROR, name, "%s", diag.lines[i]);
        sc_diag_clear(&diag);
        sc_plugin_lib_close(&lib);
        sc_config_destroy(&cfg);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    void *zctx = zmq_ctx_new();
    char *db = state_db_path(cfg);
    sc_plugin_inst_t *inst =
        (zctx && db && sfd >= 0)
            ? sc_plugin_start(&lib, p, cfg->max_data_bytes, zctx, core_ep, db,
                              true, err, sizeof err)
            : NULL;
    free(db);
    int rc = 0;
    if (!inst) {
        sc_log(SC_L_ERROR, name, "cannot start: %s", err);
        rc = 1;
    } else {
        for (;;) {
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
    }
    if (zctx)
        zmq_ctx_term(zctx);
    if (sfd >= 0)
        close(sfd);
    sc_config_destroy(&cfg);
    return rc;
}
