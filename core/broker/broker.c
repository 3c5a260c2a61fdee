/*
 * broker.c - see broker.h.
 *
 * One loop (zmq_poll) on the core thread serves, in this order of
 * priority: signals, ZAP requests (a handshake waits on them), XPUB
 * subscription messages (subs.c), the service socket, heartbeats and
 * retention, and publishes from the plugins (pipeline.c: group ->
 * sequence -> sign -> journal -> send). A reload is prepared by reload.c
 * and swapped in here.
 */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <signal.h>
#include <errno.h>

extern char **environ;

#include "access.h"
#include "audit.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "conns.h"
#include "journal.h"
#include "keyring.h"
#include "log.h"
#include "ops.h"
#include "pipeline.h"
#include "plugin_host.h"
#include "sink_relay.h"
#include "ratelimit.h"
#include "reload.h"
#include "service.h"
#include "sink.h"
#include "subs.h"
#include "supervisor.h"
#include "threads.h"

#define CORE_ENDPOINT "inproc://sectorcast-core"
#define PLUGIN_STOP_MS 5000
#define MAX_FRAME_BYTES (8 * 1024 * 1024)
#define PRUNE_EVERY_MS 60000
#define HEARTBEAT_TAG "sc-heartbeat-v1"
#define LOG_FLUSH_MS 1000

struct sc_broker {
    sc_config_t *cfg;
    unsigned char curve_fp[32]; /* hash of the CURVE key pair in use */
    void *zctx;
    void *zap;
    void *xpub;
    void *pull;
    int sigfd;
    sc_journal_t *journal;
    sc_keyring_t *keyring;
    sc_access_t *access;
    sc_service_t *service;
    void *xpub_mon;          /* monitor of the XPUB: disconnects */
    bool cold_used;          /* ZAP, xpub_mon or the control pipe used or
                                answered on: ask them again (loop_poll) */
    sc_subs_t *subs;
    sc_pipeline_t *pipe;
    pthread_t reload_thread;     /* prepares a reload (reload.c) */
    bool reload_running, reload_again;
    int reload_pipe[2];          /* its result: one sc_reload_t pointer */
    json_t *reload_rep;          /* its report (filled by both threads) */
    const char *reload_by, *again_by; /* "SIGHUP" or "sectorcast-ctl" */
    /* sectorcast-ctl reloads waiting for the running reload's report
     * (now) or for the one after it (next); each at most
     * SC_CONTROL_PENDING, as the control thread forwards no more */
    sc_control_later_t *ctl_now[SC_CONTROL_PENDING];
    sc_control_later_t *ctl_next[SC_CONTROL_PENDING];
    size_t n_ctl_now, n_ctl_next;
    int64_t next_log_flush_ms;
    int64_t next_heartbeat_ms;
    uint64_t hb_index, hb_offset; /* heartbeat window (send_heartbeat) */
    int64_t next_prune_ms;
    sc_supervisor_t *sv;
    sc_sink_feeder_t *sinks; /* own thread: journal -> sink plugins */
    void *pull_ipc;          /* publishes from plugin child processes */
    char ipc_path[256];
    sc_ops_t *ops;           /* status, audit, control, HTTP (ops.h) */
    bool stop_requested;     /* by sectorcast-ctl stop */
};

static void curve_fingerprint(const sc_config_t *cfg, unsigned char fp[32]);

static void prune(sc_broker_t *b);
static int status_head(void *arg, const char *channel, uint64_t head);
static int check_kid(void *arg, const char *kid, uint64_t count);

/* ------------------------------------------------------------------ */
/* plugins                                                             */

/* Load and check plugin `p` in this process. */
static int check_here(sc_config_t *cfg, sc_cfg_plugin_t *p, sc_diag_t *diag)
{
    sc_plugin_lib_t lib;
    char err[1024];
    if (sc_plugin_lib_open(p->path, &lib, err, sizeof err) != 0) {
        sc_diag_add(diag, cfg->path, p->line, "plugin '%s': %s", p->name,
                    err);
        return 1;
    }
    int bad = sc_config_check_plugin(cfg, p, &lib.desc, diag) != 0;
    sc_plugin_lib_close(&lib);
    return bad;
}

/* An isolated plugin is never loaded into the broker's process, not even
 * to check it: `sectorcastd --check-plugin NAME -c FILE` does it in a
 * child and prints its problems, one per line. A crash (e.g. in the
 * plugin's constructor) takes only that child down and is a problem. */
static int check_in_child(sc_config_t *cfg, sc_cfg_plugin_t *p,
                          sc_diag_t *diag)
{
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    int out[2];
    if (sl <= 0 || pipe(out) != 0) {
        sc_diag_add(diag, cfg->path, p->line,
                    "plugin '%s': cannot check it in a child process",
                    p->name);
        return 1;
    }
    self[sl] = '\0';
    char *argv[] = {self, "--check-plugin", p->name, "-c", cfg->path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        sc_diag_add(diag, cfg->path, p->line,
                    "plugin '%s': cannot check it in a child process: %s",
                    p->name, strerror(rc));
        return 1;
    }
    /* read its report (bounded: 64 KiB, 15 s) */
    char buf[65536];
    size_t n = 0;
    int64_t deadline = sc_mono_ms() + 15000;
    for (;;) {
        int64_t left = deadline - sc_mono_ms();
        struct pollfd pf = {out[0], POLLIN, 0};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = read(out[0], buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf - 1)
            break;
    }
    buf[n] = '\0';
    close(out[0]);
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && sc_mono_ms() < deadline)
        usleep(5000);
    if (r < 0) {
        sc_diag_add(diag, cfg->path, p->line,
                    "plugin '%s': its check process was lost (%s)", p->name,
                    strerror(errno));
        return 1;
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        sc_diag_add(diag, cfg->path, p->line,
                    "plugin '%s': checking it did not finish in 15 s",
                    p->name);
        return 1;
    }
    int bad = 0;
    size_t pl = strlen(cfg->path);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *rest = NULL;
        long ln = 0;
        if (strncmp(line, cfg->path, pl) == 0 && line[pl] == ':') {
            ln = strtol(line + pl + 1, &rest, 10);
            if (rest && rest[0] == ':' && rest[1] == ' ')
                rest += 2;
            else
                rest = NULL;
        }
        if (rest)
            sc_diag_add(diag, cfg->path, (int)ln, "%s", rest);
        else
            sc_diag_add(diag, cfg->path, 0, "%s", line);
        bad = 1;
    }
    if (WIFSIGNALED(st)) {
        sc_diag_add(diag, cfg->path, p->line,
                    "plugin '%s': crashed while being loaded in its child "
                    "process (signal %d, %s)",
                    p->name, WTERMSIG(st), strsignal(WTERMSIG(st)));
        return 1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (!bad)
            sc_diag_add(diag, cfg->path, p->line,
                        "plugin '%s': refused by its child process "
                        "(status %d)",
                        p->name, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 1;
    }
    return bad;
}

int sc_broker_check_plugins(sc_config_t *cfg, sc_diag_t *diag)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        sc_cfg_plugin_t *p = &cfg->plugins[i];
        bad += p->isolate_process ? check_in_child(cfg, p, diag)
                                  : check_here(cfg, p, diag);
    }
    return bad;
}

int sc_broker_check_plugins_apart(sc_config_t *cfg, sc_diag_t *diag)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++)
        bad += check_in_child(cfg, &cfg->plugins[i], diag);
    return bad;
}

int sc_broker_check_one_plugin(sc_config_t *cfg, const char *name,
                               sc_diag_t *diag)
{
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        sc_cfg_plugin_t *p = &cfg->plugins[i];
        if (strcmp(p->name, name) != 0)
            continue;
        /* the plugin's code (constructors, check()) never runs privileged
         * when it has a user: drop to it first (when we can: a --check
         * run by that user or another non-root one checks as it is) */
        char err[256];
        if (p->user && geteuid() == 0 &&
            sc_supervisor_drop_user(p->user, err, sizeof err) != 0) {
            sc_diag_add(diag, cfg->path, p->line, "plugin '%s': %s", p->name,
                        err);
            return 1;
        }
        return check_here(cfg, p, diag);
    }
    sc_diag_add(diag, cfg->path, 0, "no plugin named '%s'", name);
    return 1;
}

/* Take what the plugins have ready (also the supervisor's callback while
 * it waits for plugins to stop). */
static void drain(void *arg)
{
    sc_broker_t *b = arg;
    /* until the plugin sockets are empty: the supervisor calls this while
     * plugins stop and after they stopped, and everything a plugin handed
     * over must be journaled and sent before the broker exits */
    while (sc_pipeline_drain(b->pipe))
        ;
}

/* After each committed group: wake the sink feeder (it reads the
 * journal) if a sink is attached. */
static void sink_commit(void *arg, size_t n_messages)
{
    (void)n_messages;
    sc_sink_committed(arg);
}

/* A sink's SINK_ACK / SINK_NACK frame, read by the pipeline. */
static void sink_acked(void *arg, const char *instance, const char *channel,
                       uint64_t acked_seq, uint64_t refused_seq)
{
    sc_sink_acked(arg, instance, channel, acked_seq, refused_seq);
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static int setup_sockets(sc_broker_t *b, char *err, size_t errlen)
{
    sc_config_t *cfg = b->cfg;
    b->zctx = zmq_ctx_new();
    if (!b->zctx) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -1;
    }
    /* two I/O threads: live traffic (publish socket, plugin children) on
     * the first, the service socket's replays and snapshots on the second,
     * which runs at background priority (threads.h): a subscriber
     * replaying at full speed never queues live messages behind its own */
    zmq_ctx_set(b->zctx, ZMQ_IO_THREADS, 2);
    /* ZAP first: with CURVE and no ZAP handler, libzmq admits everyone */
    b->zap = zmq_socket(b->zctx, ZMQ_REP);
    int linger = 0;
    if (!b->zap || zmq_setsockopt(b->zap, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(b->zap, SC_ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind ZAP handler: %s",
                 zmq_strerror(errno));
        return -1;
    }
    if (!cfg->curve_secret_file) {
        snprintf(err, errlen,
                 "%s: a 'curve' group is required: the publish socket is a "
                 "CURVE server",
                 cfg->path);
        return -1;
    }
    char secret[41], e[512];
    if (sc_curve_read(cfg->curve_secret_file, true, secret, e, sizeof e) !=
        0) {
        snprintf(err, errlen, "curve.secret_key: %s", e);
        return -1;
    }
    curve_fingerprint(cfg, b->curve_fp);
    b->xpub = zmq_socket(b->zctx, ZMQ_XPUB);
    uint64_t live_io = SC_IO_LIVE;
    if (b->xpub)
        zmq_setsockopt(b->xpub, ZMQ_AFFINITY, &live_io, sizeof live_io);
    /* each connection's queue is bounded in bytes: limits.send_queue_bytes
     * worth of the largest messages (conns.h) */
    int one = 1, hwm = sc_conns_sndhwm(cfg);
    int hs_ms = (int)cfg->handshake_timeout_ms;
    /* a burst of (re)connections waits in the kernel, not in SYN retries:
     * the listen backlog matches the handshakes we let run at once */
    int backlog = cfg->max_unauthenticated < 100     ? 100
                  : cfg->max_unauthenticated > 4096 ? 4096
                                                    : (int)cfg->max_unauthenticated;
    /* subscriptions are short: 4096 bytes, plus the 33 bytes a CURVE
     * MESSAGE command adds to each frame */
    int64_t maxmsg = 4096 + 33;
    int rc = sc_access_curve_server(b->xpub, secret);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_XPUB_MANUAL, &one, sizeof one);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_HANDSHAKE_IVL, &hs_ms, sizeof hs_ms);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_BACKLOG, &backlog, sizeof backlog);
    if (rc == 0)
        rc = zmq_setsockopt(b->xpub, ZMQ_LINGER, &linger, sizeof linger);
    if (rc != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "publish socket: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(b->xpub, cfg->publish_endpoint) != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "%s: cannot bind listen.publish '%s': %s",
                 cfg->path, cfg->publish_endpoint, zmq_strerror(errno));
        return -1;
    }
    /* connections come and go (conns.h); the monitor's queue is
     * unbounded on our side (RCVHWM 0) so that no event is dropped: the
     * core reads it before every subscription */
    int unbounded = 0;
    if (zmq_socket_monitor(b->xpub, "inproc://sectorcast-xpub-mon",
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        !(b->xpub_mon = zmq_socket(b->zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(b->xpub_mon, ZMQ_RCVHWM, &unbounded,
                       sizeof unbounded) != 0 ||
        zmq_connect(b->xpub_mon, "inproc://sectorcast-xpub-mon") != 0) {
        sodium_memzero(secret, sizeof secret);
        snprintf(err, errlen, "publish socket monitor: %s",
                 zmq_strerror(errno));
        return -1;
    }
    if (cfg->service_endpoint) {
        /* the service thread's own access table (reload hands it another) */
        sc_access_t *sa = sc_access_new(cfg, err, errlen);
        b->service = sa ? sc_service_new(b->zctx, cfg, secret, sa, b->journal,
                                         sc_keyring_jwks(b->keyring), err,
                                         errlen)
                        : NULL;
        if (b->service && sc_service_start(b->service, err, errlen) != 0)
            sc_service_destroy(&b->service);
    }
    /* libzmq keeps its own copies of the key */
    sodium_memzero(secret, sizeof secret);
    if (cfg->service_endpoint && !b->service)
        return -1;
    b->pull = zmq_socket(b->zctx, ZMQ_PULL);
    int rcvhwm = 10000;
    if (!b->pull ||
        zmq_setsockopt(b->pull, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(b->pull, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(b->pull, CORE_ENDPOINT) != 0) {
        snprintf(err, errlen, "core socket: %s", zmq_strerror(errno));
        return -1;
    }
    /* children (isolation = "process") publish over ipc in a 0700 dir */
    char run[4096];
    snprintf(run, sizeof run, "%s/run", cfg->data_dir);
    if (mkdir(run, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", run, strerror(errno));
        return -1;
    }
    chmod(run, 0700);
    int w = snprintf(b->ipc_path, sizeof b->ipc_path, "ipc://%s/plugins.sock",
                     run);
    if (w > 0 && (size_t)w < sizeof b->ipc_path && w - 6 <= 107) {
        unlink(b->ipc_path + 6);
        b->pull_ipc = zmq_socket(b->zctx, ZMQ_ROUTER);
        uint64_t live = SC_IO_LIVE;
        if (b->pull_ipc)
            zmq_setsockopt(b->pull_ipc, ZMQ_AFFINITY, &live, sizeof live);
        int64_t maxmsg = MAX_FRAME_BYTES;
        /* a send to a child that is not connected or is full fails
         * (EHOSTUNREACH/EAGAIN with ZMQ_DONTWAIT) instead of being
         * dropped silently: sink frames are kept and sent again */
        int mandatory = 1, sndhwm = SC_PLUGIN_CHILD_SNDHWM;
        _Static_assert(SC_PLUGIN_CHILD_WINDOW_MAX + SC_SINK_RELAY_MAX +
                               SC_PLUGIN_CHILD_PINGS_MAX <
                           SC_PLUGIN_CHILD_SNDHWM,
                       "a child's ACKs, sink frames and pings must fit "
                       "below the ROUTER's high-water mark");
        if (!b->pull_ipc ||
            zmq_setsockopt(b->pull_ipc, ZMQ_ROUTER_MANDATORY, &mandatory,
                           sizeof mandatory) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_MAXMSGSIZE, &maxmsg,
                           sizeof maxmsg) ||
            zmq_setsockopt(b->pull_ipc, ZMQ_LINGER, &linger, sizeof linger) ||
            zmq_bind(b->pull_ipc, b->ipc_path) != 0) {
            snprintf(err, errlen, "plugin process socket %s: %s", b->ipc_path,
                     zmq_strerror(errno));
            return -1;
        }
    } else {
        b->ipc_path[0] = '\0';
        sc_log(SC_L_WARN, "core",
               "data_dir path too long for an ipc socket: isolation = "
               "\"process\" is unavailable");
    }
    return 0;
}

/* A hash of the broker's CURVE key pair as its files hold it now (all
 * zero if they cannot be read). */
static void curve_fingerprint(const sc_config_t *cfg, unsigned char fp[32])
{
    char sec[41] = "", pub[41] = "", e[512];
    memset(fp, 0, 32);
    if (!cfg->curve_secret_file ||
        sc_curve_read(cfg->curve_secret_file, true, sec, e, sizeof e) != 0)
        return;
    if (cfg->curve_public_file)
        sc_curve_read(cfg->curve_public_file, false, pub, e, sizeof e);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)sec, 40);
    crypto_generichash_update(&st, (const unsigned char *)pub, strlen(pub));
    crypto_generichash_final(&st, fp, 32);
    sodium_memzero(sec, sizeof sec);
    sodium_memzero(&st, sizeof st);
}

/* The broker's own key pair is set on its sockets at start and cannot be
 * swapped under live connections: a reload that finds the key files
 * changed on disk is refused, clearly, instead of silently keeping the
 * old key. true if refused (logged). */
static bool curve_changed(sc_broker_t *b, const sc_config_t *n)
{
    unsigned char fp[32];
    curve_fingerprint(n, fp);
    if (sodium_memcmp(fp, b->curve_fp, sizeof fp) == 0)
        return false;
    sc_log(SC_L_ERROR, "core",
           "reload refused: the broker's CURVE key pair (curve.secret_key "
           "%s / curve.public_key) changed on disk or cannot be read; it "
           "takes effect only at a restart (then hand agencies the new "
           "public key); the running configuration and key stay",
           n->curve_secret_file ? n->curve_secret_file : "-");
    return true;
}

/* mkdir -p `path` with `mode` for its last component (0755 above it). */
static int mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "path too long: %.200s", path);
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %.900s: %s", buf,
                     strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %.900s: %s", buf, strerror(errno));
        return -1;
    }
    return 0;
}

/* gateway.data_dir (0700 when we create it: journal, runtime sockets)
 * and the directory of signing.jwks_file exist before anything is
 * written, as docs/configuration.md promises. */
static int make_dirs(const sc_config_t *cfg, char *err, size_t errlen)
{
    if (mkdir_p(cfg->data_dir, 0700, err, errlen) != 0)
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg->jwks_file);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir_p(dir, 0755, err, errlen) != 0)
            return -1;
    }
    return 0;
}

sc_broker_t *sc_broker_new(sc_config_t **cfg_p, char *err, size_t errlen)
{
    sc_broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = *cfg_p;
    *cfg_p = NULL;
    b->sigfd = -1;
    b->reload_pipe[0] = b->reload_pipe[1] = -1;
    sc_config_t *cfg = b->cfg;

    /* blocked before any thread exists (ZeroMQ's, the plugins'), so that
     * every thread inherits the mask and the core alone reads them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    b->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (pipe(b->reload_pipe) != 0 ||
        fcntl(b->reload_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(b->reload_pipe[1], F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        b->reload_pipe[0] = b->reload_pipe[1] = -1;
        goto fail;
    }
    if (b->sigfd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    if (!(b->access = sc_access_new(cfg, err, errlen)))
        goto fail;
    sc_conns_fd_limit(cfg);
    if (!(b->keyring = sc_keyring_load(cfg, err, errlen)))
        goto fail;
    char e[1024];
    if (make_dirs(cfg, e, sizeof e) != 0) {
        snprintf(err, errlen, "%s", e);
        goto fail;
    }
    if (sc_keyring_write_jwks(b->keyring, cfg->jwks_file, e, sizeof e) != 0) {
        snprintf(err, errlen, "cannot write JWKS: %s", e);
        goto fail;
    }
    if (!(b->journal = sc_journal_open(cfg->data_dir,
                                       cfg->durability_full
                                           ? SC_DURABILITY_FULL
                                           : SC_DURABILITY_NORMAL,
                                       e,
                                       sizeof e))) {
        snprintf(err, errlen, "%s", e);
        goto fail;
    }
    if (setup_sockets(b, err, errlen) != 0)
        goto fail;
    if (!(b->subs = sc_subs_new(b->xpub, b->xpub_mon, cfg))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sc_pipeline_env_t pe = {
        .xpub = b->xpub,
        .pull = b->pull,
        .pull_ipc = b->pull_ipc,
        .journal = b->journal,
        .keyring = b->keyring,
        .gateway_id = cfg->gateway_id,
        .sign_threads = cfg->sign_threads,
    };
    if (!(b->pipe = sc_pipeline_new(&pe, err, errlen)))
        goto fail;
    sc_log(SC_L_INFO, "core", "%d signing thread(s) (gateway.sign_threads)",
           sc_pipeline_sign_threads(b->pipe));
    if (!(b->sinks = sc_sink_feeder_new(b->journal,
                                        cfg->data_dir, e, sizeof e))) {
        snprintf(err, errlen, "sinks: %s", e);
        goto fail;
    }
    sc_sink_set_global(b->sinks);
    sc_plugin_set_sink_ack_cb(sink_acked, b->sinks);
    sc_pipeline_on_commit(b->pipe, sink_commit, b->sinks);
    if (!(b->ops = sc_ops_new(b->zctx, cfg, sc_journal_epoch(b->journal), err,
                              errlen)))
        goto fail;
    sc_journal_heads(b->journal, "", status_head, b);
    sc_log(SC_L_INFO, "core",
           "gateway '%s' publishing on %s, service on %s; journal %s (epoch "
           "%s, durability %s); JWKS %s",
           cfg->gateway_id, cfg->publish_endpoint,
           cfg->service_endpoint ? cfg->service_endpoint : "(none)",
           sc_journal_path(b->journal), sc_journal_epoch(b->journal),
           cfg->durability_full ? "full" : "normal", cfg->jwks_file);
    prune(b);
    sc_journal_kids(b->journal, check_kid, b);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl > 0)
        self[sl] = '\0';
    b->sv = sc_supervisor_new(b->zctx, CORE_ENDPOINT,
                              b->ipc_path[0] ? b->ipc_path : NULL,
                              sl > 0 ? self : NULL, drain, b);
    if (!b->sv) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sc_pipeline_set_supervisor(b->pipe, b->sv);
    sc_supervisor_set_ipc_socket(b->sv, b->pull_ipc);
    sc_supervisor_apply(b->sv, b->cfg);
    return b;
fail:
    sc_broker_destroy(&b);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* keys still needed by the journal                                    */

static int check_kid(void *arg, const char *kid, uint64_t count)
{
    sc_broker_t *b = arg;
    if (!sc_jwks_find(sc_keyring_jwks(b->keyring), kid))
        sc_log(SC_L_WARN, "keys",
               "%llu retained message(s) are signed by kid %s, which is no "
               "longer in signing.keys: replays and snapshots refuse them "
               "(error 500 corrupt) until that key is listed again (it need "
               "not be active) or retention removes them",
               (unsigned long long)count, kid);
    return 0;
}

/* ------------------------------------------------------------------ */
/* heartbeats, retention, connection events                            */

static int status_head(void *arg, const char *channel, uint64_t head)
{
    (void)arg;
    sc_ops_channel_head(channel, head);
    return 0;
}

static int send_heartbeat(void *arg, const char *channel, uint64_t head)
{
    sc_broker_t *b = arg;
    /* bounded in total: at most limits.max_heartbeats per interval, the
     * window moving on each interval so every channel gets its turn */
    uint64_t i = b->hb_index++;
    if (i < b->hb_offset ||
        i >= b->hb_offset + (uint64_t)b->cfg->max_heartbeats)
        return 0;
    char topic[SC_CHANNEL_MAX + 2], ts[32];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl <= 0)
        return 0;
    sc_now_rfc3339(ts);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "channel", channel, "epoch",
                          sc_journal_epoch(b->journal), "head",
                          (json_int_t)head, "ts", ts);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (txt && zmq_send(b->xpub, topic, (size_t)tl,
                        ZMQ_SNDMORE | ZMQ_DONTWAIT) == tl &&
        zmq_send(b->xpub, HEARTBEAT_TAG, strlen(HEARTBEAT_TAG),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(b->xpub, txt, strlen(txt), ZMQ_DONTWAIT);
    free(txt);
    return 0;
}

static const sc_cfg_retention_t *retention_for(const sc_config_t *cfg,
                                               const char *channel)
{
    const sc_cfg_retention_t *best = NULL;
    char topic[SC_CHANNEL_MAX + 2];
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    for (size_t i = 0; tl > 0 && i < cfg->n_retention; i++)
        if (sc_subtree_covers(cfg->retention[i].subtree, topic, (size_t)tl) &&
            (!best || strlen(cfg->retention[i].subtree) > strlen(best->subtree)))
            best = &cfg->retention[i];
    return best;
}

typedef struct prune_ctx {
    char **names;
    size_t n, cap;
} prune_ctx_t;

static int collect_channel(void *arg, const char *channel, uint64_t head)
{
    (void)head;
    prune_ctx_t *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **v = realloc(c->names, cap * sizeof *v);
        if (!v)
            return 1;
        c->names = v;
        c->cap = cap;
    }
    if ((c->names[c->n] = strdup(channel)))
        c->n++;
    return 0;
}

static void prune(sc_broker_t *b)
{
    b->next_prune_ms = sc_mono_ms() + PRUNE_EVERY_MS;
    if (b->cfg->n_retention == 0)
        return;
    /* a failed prune rolls back: nothing may be numbered and uncommitted */
    sc_pipeline_settle(b->pipe);
    prune_ctx_t c = {0};
    sc_journal_heads(b->journal, "", collect_channel, &c);
    for (size_t i = 0; i < c.n; i++) {
        const sc_cfg_retention_t *r = retention_for(b->cfg, c.names[i]);
        char err[512];
        long n = r ? sc_journal_prune(b->journal, c.names[i], r->max_age_s,
                                      r->max_messages, err, sizeof err)
                   : 0;
        if (n < 0)
            sc_log(SC_L_ERROR, "journal", "retention: %s", err);
        else if (n > 0)
            sc_log(SC_L_INFO, "journal",
                   "retention: removed %ld message(s) of %s (replay now "
                   "complete from seq %llu)",
                   n, c.names[i],
                   (unsigned long long)sc_journal_low(b->journal, c.names[i]));
        free(c.names[i]);
    }
    free(c.names);
}

/* ------------------------------------------------------------------ */
/* run                                                                 */

static void stop_plugins(sc_broker_t *b)
{
    sc_supervisor_destroy(&b->sv);
    if (b->pipe) {
        sc_pipeline_set_supervisor(b->pipe, NULL);
        sc_pipeline_finish(b->pipe);
    }
}

/* ------------------------------------------------------------------ */
/* reload                                                              */

/* What a reload did, for sectorcast-ctl: every line the reload logs is
 * also sorted into "failed" (errors), "changed" (everything else that
 * says what it did) and, at the end, "kept" (plugins and agencies it did
 * not mention). */
static void reload_capture(void *ud, sc_level_t level, const char *who,
                           const char *msg)
{
    json_t *rep = ud;
    char line[1200];
    if (level == SC_L_DEBUG)
        return; /* messages published while plugins stop, not changes */
    if (strcmp(who, "core") == 0)
        snprintf(line, sizeof line, "%s", msg);
    else
        snprintf(line, sizeof line, "%s: %s", who, msg);
    if (level >= SC_L_ERROR)
        json_array_append_new(json_object_get(rep, "failed"),
                              json_string(line));
    else if (strncmp(msg, "reload done", 11) == 0)
        return;
    else if (strncmp(msg, "reload", 6) == 0 || strcmp(who, "core") != 0)
        json_array_append_new(json_object_get(rep, "changed"),
                              json_string(line));
}

static bool mentioned(json_t *lines, const char *what, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) {
        const char *t = json_string_value(l);
        char a[160], q[160];
        snprintf(a, sizeof a, "%s:", name);
        snprintf(q, sizeof q, "%s '%s'", what, name);
        if (t && (strncmp(t, a, strlen(a)) == 0 || strstr(t, q)))
            return true;
    }
    return false;
}

static void reload_apply(sc_broker_t *b, sc_reload_t *r);

/* Load, check and prepare (reload.c); on any thread (reads the running
 * config, which only the core changes, at the swap). NULL if refused. */
static sc_reload_t *reload_prepare(sc_broker_t *b)
{
    sc_reload_t *r = sc_reload_prepare(b->cfg->path, b->cfg);
    if (r && curve_changed(b, r->cfg)) /* b->curve_fp is set at start */
        sc_reload_free(&r);
    return r;
}

static json_t *reload_report_new(sc_broker_t *b, const char *by)
{
    sc_log(SC_L_INFO, "core", "%s: reloading %s", by, b->cfg->path);
    return json_pack("{s:s, s:[], s:[], s:[]}", "config", b->cfg->path,
                     "changed", "kept", "failed");
}

/* On the core: swap `r` in (if any) and complete the report. */
static json_t *reload_done(sc_broker_t *b, const char *by, json_t *rep,
                           sc_reload_t *r)
{
    if (!rep) {
        if (r)
            reload_apply(b, r);
        return NULL;
    }
    sc_log_capture(reload_capture, rep);
    if (r)
        reload_apply(b, r);
    sc_log_capture(NULL, NULL);
    json_t *failed = json_object_get(rep, "failed");
    json_t *changed = json_object_get(rep, "changed");
    bool applied = r != NULL;
    size_t fi;
    json_t *fl;
    json_array_foreach(failed, fi, fl)
        if (strstr(json_string_value(fl), "reload refused"))
            applied = false;
    json_t *kept = json_object_get(rep, "kept");
    if (applied) {
        for (size_t i = 0; i < b->cfg->n_plugins; i++)
            if (!mentioned(changed, "plugin", b->cfg->plugins[i].name) &&
                !mentioned(failed, "plugin", b->cfg->plugins[i].name)) {
                char l[160];
                snprintf(l, sizeof l, "plugin %s unchanged",
                         b->cfg->plugins[i].name);
                json_array_append_new(kept, json_string(l));
            }
        for (size_t i = 0; i < b->cfg->n_agencies; i++)
            if (!mentioned(changed, "agency", b->cfg->agencies[i].id)) {
                char l[160];
                snprintf(l, sizeof l, "agency %s unchanged",
                         b->cfg->agencies[i].id);
                json_array_append_new(kept, json_string(l));
            }
    } else {
        json_array_append_new(kept,
                              json_string("the running configuration "
                                          "(nothing was changed)"));
    }
    json_object_set_new(rep, "result",
                        json_string(applied ? "applied" : "refused"));
    json_object_set_new(rep, "ok", json_boolean(applied));
    sc_audit("reload", json_pack("{s:s, s:s, s:s, s:O, s:O}", "by", by,
                                 "config", b->cfg->path, "result",
                                 applied ? "applied" : "refused", "changed",
                                 changed, "failed", failed));
    sc_ops_reconfigure(b->ops, b->cfg);
    return rep;
}

/* A SIGHUP starts the reload thread: it loads and checks the config and
 * its plugins, loads the keys and writes the JWKS (reload.c) while the
 * core keeps publishing; the core only swaps the result in
 * (reload_finish). The running config is read by that thread and changes
 * only at the swap, which waits for it. A SIGHUP during a reload runs one
 * more after it. */
static void *reload_main(void *arg)
{
    sc_broker_t *b = arg;
    sc_thread_name("reload", NULL);
    if (b->reload_rep)
        sc_log_capture(reload_capture, b->reload_rep);
    sc_reload_t *r = reload_prepare(b);
    sc_log_capture(NULL, NULL);
    ssize_t w;
    do
        w = write(b->reload_pipe[1], &r, sizeof r);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof r)
        sc_reload_free(&r); /* cannot happen with a pipe of 8 bytes */
    return NULL;
}

/* Answer the sectorcast-ctl reloads waiting for this reload's report. */
static void reload_answer(sc_broker_t *b, json_t *rep)
{
    sc_control_t *ctl = sc_ops_control(b->ops);
    b->cold_used = true;
    for (size_t i = 0; i < b->n_ctl_now; i++)
        sc_control_core_answer(ctl, &b->ctl_now[i], rep);
    b->n_ctl_now = 0;
}

static void reload_start(sc_broker_t *b, const char *by)
{
    if (b->reload_running) {
        b->reload_again = true;
        if (strcmp(by, "SIGHUP") != 0 || !b->again_by)
            b->again_by = by;
        return;
    }
    b->reload_by = by;
    b->reload_rep = reload_report_new(b, by);
    if (pthread_create(&b->reload_thread, NULL, reload_main, b) != 0) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: cannot start the reload thread; the running "
               "configuration stays");
        json_decref(b->reload_rep);
        b->reload_rep = NULL;
        json_t *e = json_pack("{s:b, s:s, s:s, s:[], s:[], s:[s]}", "ok", 0,
                              "result", "refused", "error",
                              "cannot start the reload thread", "changed",
                              "kept", "failed",
                              "reload refused: cannot start the reload "
                              "thread");
        reload_answer(b, e);
        json_decref(e);
        return;
    }
    b->reload_running = true;
}

/* The reload thread is done (or, with `wait`, will be): swap its result
 * in. */
static void reload_finish(sc_broker_t *b, bool wait)
{
    sc_reload_t *r = NULL;
    if (!b->reload_running)
        return;
    if (wait) {
        struct pollfd pfd = {b->reload_pipe[0], POLLIN, 0};
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
            ;
    }
    if (read(b->reload_pipe[0], &r, sizeof r) != (ssize_t)sizeof r)
        return;
    pthread_join(b->reload_thread, NULL);
    b->reload_running = false;
    json_t *rep = b->reload_rep;
    b->reload_rep = NULL;
    rep = reload_done(b, b->reload_by ? b->reload_by : "SIGHUP", rep, r);
    reload_answer(b, rep);
    json_decref(rep);
    /* the ctl reloads that came during this one wait for the next */
    memcpy(b->ctl_now, b->ctl_next, b->n_ctl_next * sizeof *b->ctl_now);
    b->n_ctl_now = b->n_ctl_next;
    b->n_ctl_next = 0;
    if (b->reload_again) {
        const char *by = b->again_by ? b->again_by : "SIGHUP";
        b->reload_again = false;
        b->again_by = NULL;
        reload_start(b, by);
    }
}

/* sectorcast-ctl reload: the same path as SIGHUP (prepared on the reload
 * thread while the core keeps publishing); the client is answered with
 * the report when the core has swapped the result in. A request that
 * comes while a reload runs waits for one more, which reads the file
 * as it is after the request. */
static json_t *reload_by_ctl(sc_broker_t *b)
{
    sc_control_later_t *l = sc_control_core_defer(sc_ops_control(b->ops));
    if (!l)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
    if (b->reload_running) {
        if (b->n_ctl_next >= SC_CONTROL_PENDING) {
            sc_control_later_free(&l); /* cannot happen: pending bound */
            return NULL;
        }
        b->ctl_next[b->n_ctl_next++] = l;
    } else {
        b->ctl_now[b->n_ctl_now++] = l;
    }
    reload_start(b, "sectorcast-ctl");
    return NULL;
}

static void reload_apply(sc_broker_t *b, sc_reload_t *r)
{
    sc_config_t *n = r->cfg;
    sc_reload_report(b->cfg, n);
    sc_log_set_level((sc_level_t)sc_log_parse_level(n->log_level));

    sc_access_t *oa = b->access;
    sc_keyring_t *ok = b->keyring;
    sc_access_take_over(r->access, oa);
    b->access = r->access;
    b->keyring = r->keyring;
    sc_pipeline_set_keyring(b->pipe, r->keyring, n->gateway_id);
    if (b->service) {
        sc_service_set_access(b->service, r->service_access, n,
                              sc_keyring_jwks(r->keyring));
        r->service_access = NULL;
    }
    sc_config_t *old = b->cfg;
    b->cfg = n;
    sc_subs_revoke(b->subs, old, n, b->access); /* revocation at once */
    sc_subs_set_limits(b->subs, n);
    r->cfg = NULL;
    r->access = NULL;
    r->keyring = NULL;
    sc_reload_free(&r);
    sc_journal_kids(b->journal, check_kid, b);
    int started = sc_supervisor_apply(b->sv, n);
    int kept = 0, failed = 0;
    sc_supervisor_last_apply(b->sv, &kept, &failed);
    sc_access_destroy(&oa);
    sc_keyring_destroy(&ok);
    sc_supervisor_adopt(b->sv, old); /* a fallback may still use it */
    sc_log(SC_L_INFO, "core",
           "reload done: %d plugin(s) started or restarted, %d kept, %d "
           "failed",
           started, kept, failed);
}

/* ------------------------------------------------------------------ */
/* control commands and the stop watchdog                              */

static json_t *control_cmd(void *arg, const char *cmd, json_t *req)
{
    sc_broker_t *b = arg;
    if (strcmp(cmd, "reload") == 0)
        return reload_by_ctl(b);
    if (strcmp(cmd, "stop") == 0) {
        sc_log(SC_L_INFO, "core", "stop requested by sectorcast-ctl");
        b->stop_requested = true;
        return json_pack("{s:b, s:b}", "ok", 1, "stopping", 1);
    }
    if (strcmp(cmd, "log-reopen") == 0) {
        char e[512];
        if (sc_ops_reopen_logs(b->ops, e, sizeof e) != 0)
            return json_pack("{s:b, s:s}", "ok", 0, "error", e);
        return json_pack("{s:b}", "ok", 1);
    }
    if (strcmp(cmd, "plugin-restart") == 0) {
        const char *name = json_string_value(json_object_get(req, "name"));
        char e[512];
        if (!name)
            return json_pack("{s:b, s:s}", "ok", 0, "error",
                             "plugin-restart needs a plugin name");
        if (sc_supervisor_restart(b->sv, name, e, sizeof e) != 0) {
            sc_audit("plugin_restart",
                     json_pack("{s:s, s:s, s:s}", "plugin", name, "result",
                               "failed", "error", e));
            return json_pack("{s:b, s:s}", "ok", 0, "error", e);
        }
        sc_audit("plugin_restart", json_pack("{s:s, s:s, s:s}", "plugin", name,
                                             "result", "restarted", "by",
                                             "sectorcast-ctl"));
        return json_pack("{s:b, s:s}", "ok", 1, "plugin", name);
    }
    return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command");
}

typedef struct stopwatch {
    int sigfd;
    int64_t deadline_ms, timeout_ms;
    atomic_bool done;
    pthread_t th;
} stopwatch_t;

/* While the core stops (plugins stop, everything handed over is signed,
 * journaled and sent): a second SIGTERM/SIGINT, or the stop timeout, ends
 * the process at once. Only what is committed to the journal is kept
 * then, which is everything a plugin process was told was accepted. */
static void *stop_watchdog(void *arg)
{
    stopwatch_t *sw = arg;
    sc_thread_name("stopwatch", NULL);
    while (!atomic_load(&sw->done)) {
        struct pollfd pfd = {sw->sigfd, POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0) {
            struct signalfd_siginfo si;
            while (read(sw->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    sc_log(SC_L_WARN, "core",
                           "second %s while stopping: exiting now (what is "
                           "journaled is kept)",
                           si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    _exit(1);
                }
        }
        if (!atomic_load(&sw->done) && sc_mono_ms() > sw->deadline_ms) {
            sc_log(SC_L_ERROR, "core",
                   "stop took longer than gateway.stop_timeout_ms (%lld ms): "
                   "exiting now (what is journaled is kept)",
                   (long long)sw->timeout_ms);
            _exit(1);
        }
    }
    return NULL;
}

/* zmq_poll, without its cost per socket where it is not needed.
 * zmq_poll asks every socket's ZMQ_EVENTS twice per call (before and after
 * it waits), and each ask is two system calls (libzmq's mailbox poll and
 * fork check): with six sockets, ~26 system calls per turn of the loop,
 * the largest part of the core thread's time per message at light load.
 * Here a socket's ZMQ_EVENTS is asked before the wait only when `ask[i]`
 * (it was used since it was last asked: something may be waiting that no
 * signal will announce), and after the wait only when its ZMQ_FD fired (a
 * command arrived: its state may have changed). A socket neither used nor
 * signalled cannot have become readable, so nothing is missed. Same
 * revents as zmq_poll; -1 with errno on error. */
static int loop_poll(zmq_pollitem_t *items, int n, const bool *ask,
                     long timeout_ms)
{
    struct pollfd pfd[16];
    bool ready = false;
    if (n > 16) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        items[i].revents = 0;
        pfd[i] = (struct pollfd){.fd = items[i].fd, .events = POLLIN};
        if (!items[i].socket)
            continue;
        size_t sz = sizeof pfd[i].fd;
        if (zmq_getsockopt(items[i].socket, ZMQ_FD, &pfd[i].fd, &sz) != 0)
            return -1;
        if (ask[i] && items[i].events) {
            int ev = 0;
            sz = sizeof ev;
            if (zmq_getsockopt(items[i].socket, ZMQ_EVENTS, &ev, &sz) != 0)
                return -1;
            items[i].revents = (short)(ev & items[i].events);
            ready = ready || items[i].revents;
        }
    }
    for (int i = 0; i < n; i++)
        if (!items[i].events)
            pfd[i].fd = -1; /* not wanted now (plugin sockets while paused) */
    int rc = poll(pfd, (nfds_t)n, ready ? 0 : (int)timeout_ms);
    if (rc < 0)
        return -1;
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (items[i].socket) {
            if ((pfd[i].revents & POLLIN) && items[i].events) {
                int ev = 0;
                size_t sz = sizeof ev;
                if (zmq_getsockopt(items[i].socket, ZMQ_EVENTS, &ev, &sz) !=
                    0)
                    return -1;
                items[i].revents |= (short)(ev & items[i].events);
            }
        } else if (pfd[i].revents) {
            items[i].revents =
                (short)((pfd[i].revents & POLLIN ? ZMQ_POLLIN : 0) |
                        (pfd[i].revents & (POLLERR | POLLHUP) ? ZMQ_POLLERR
                                                               : 0));
        }
        if (items[i].revents)
            count++;
    }
    return count;
}

int sc_broker_run(sc_broker_t *b)
{
    int status = 0;
    bool more = false; /* the plugins had more than one group ready */
    /* the rarely used sockets (ZAP, the publish socket's monitor, the
     * control pipe) are asked only after they were used or signalled, or
     * after a turn that found nothing (loop_poll) */
    b->cold_used = true;
    bool ipc_ready = true; /* the children's socket was readable last turn */
    for (;;) {
        int64_t retry_at = sc_pipeline_retry_at(b->pipe);
        bool paused = retry_at != 0;
        /* the optional sockets go last; the pull sockets are not read
         * while the journal is failing (the plugins then wait) */
        zmq_pollitem_t items[10] = {
            {NULL, b->sigfd, ZMQ_POLLIN, 0},
            {b->zap, 0, ZMQ_POLLIN, 0},
            {b->xpub, 0, ZMQ_POLLIN, 0},
            {b->xpub_mon, 0, ZMQ_POLLIN, 0},
            {b->pull, 0, paused ? 0 : ZMQ_POLLIN, 0},
            {NULL, b->reload_pipe[0], ZMQ_POLLIN, 0},
        };
        int n_items = 6, ipc_item = -1;
        if (b->pull_ipc) {
            ipc_item = n_items;
            items[n_items++] =
                (zmq_pollitem_t){b->pull_ipc, 0, paused ? 0 : ZMQ_POLLIN, 0};
        }
        void *ctl = sc_control_core_socket(sc_ops_control(b->ops));
        int ctl_item = -1;
        if (ctl) {
            ctl_item = n_items;
            items[n_items++] = (zmq_pollitem_t){ctl, 0, ZMQ_POLLIN, 0};
        }
        /* sink frames queued by the feeder for plugin child processes */
        int sink_fd = sc_supervisor_sink_fd(b->sv), sink_item = -1;
        if (sink_fd >= 0 && b->pull_ipc) {
            sink_item = n_items;
            items[n_items++] = (zmq_pollitem_t){NULL, sink_fd, ZMQ_POLLIN, 0};
        }
        long svw = sc_supervisor_next_wake_ms(b->sv);
        int64_t now = sc_mono_ms();
        int64_t wake = b->next_prune_ms;
        if (b->cfg->heartbeat_ms > 0 && b->next_heartbeat_ms < wake)
            wake = b->next_heartbeat_ms;
        if (paused && retry_at < wake)
            wake = retry_at;
        if (svw >= 0 && now + svw < wake)
            wake = now + svw;
        if (b->next_log_flush_ms < wake)
            wake = b->next_log_flush_ms;
        long timeout = wake <= now || more ? 0 : (long)(wake - now);
        /* items: 1 ZAP, 2 publish socket, 3 its monitor, 4 plugin threads,
         * then the children's socket and the control pipe if present */
        bool ask[10];
        for (int i = 0; i < n_items; i++)
            ask[i] = items[i].socket != NULL &&
                     (b->cold_used || i == 2 || i == 4 ||
                      (i == ipc_item &&
                       (svw >= 0 || sink_item >= 0 || ipc_ready)));
        int got = loop_poll(items, n_items, ask, timeout);
        /* after a turn that found nothing (or failed: what its asks found
         * is lost), ask every socket on the next */
        b->cold_used = got <= 0;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            sc_log(SC_L_ERROR, "core", "polling the core's sockets: %s",
                   zmq_strerror(errno));
            status = -1;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo si;
            bool stop = false;
            while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    reload_start(b, "SIGHUP");
                } else if (si.ssi_signo == SIGUSR1) {
                    char e[512];
                    if (sc_ops_reopen_logs(b->ops, e, sizeof e) != 0)
                        sc_log(SC_L_ERROR, "core", "SIGUSR1: %s", e);
                    else
                        sc_log(SC_L_INFO, "core", "SIGUSR1: log files "
                                                  "reopened");
                } else if (si.ssi_signo == SIGCHLD) {
                    sc_supervisor_tick(b->sv);
                } else {
                    sc_log(SC_L_INFO, "core", "%s received; stopping",
                           si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    stop = true;
                }
            }
            if (stop)
                break;
        }
        /* Each socket below is read only when zmq_poll saw it readable:
         * asking libzmq again costs two system calls per socket (its
         * mailbox's poll and fork check) on every turn of this loop.
         * handshakes wait on ZAP: answer all pending first */
        for (int k = 0; k < 64 && (items[1].revents & ZMQ_POLLIN); k++) {
            int ev = 0;
            size_t sz = sizeof ev;
            if (zmq_getsockopt(b->zap, ZMQ_EVENTS, &ev, &sz) != 0 ||
                !(ev & ZMQ_POLLIN))
                break;
            sc_access_zap_handle(b->access, b->zap);
            b->cold_used = true;
        }
        for (int k = 0; k < 256 && (items[2].revents & ZMQ_POLLIN); k++) {
            int ev = 0;
            size_t sz = sizeof ev;
            if (zmq_getsockopt(b->xpub, ZMQ_EVENTS, &ev, &sz) != 0 ||
                !(ev & ZMQ_POLLIN))
                break;
            sc_subs_handle_monitor(b->subs); /* fresh records first */
            b->cold_used = true;
            sc_subs_handle(b->subs, b->access, b->cfg);
        }
        if (items[5].revents & ZMQ_POLLIN) {
            reload_finish(b, false); /* may answer on the control pipe */
            b->cold_used = true;
        }
        if (items[3].revents & ZMQ_POLLIN) {
            sc_subs_handle_monitor(b->subs);
            b->cold_used = true;
        }
        sc_subs_enforce(b->subs, sc_mono_ms());
        if (ctl && (items[ctl_item].revents & ZMQ_POLLIN)) {
            b->cold_used = true;
            sc_control_core_handle(sc_ops_control(b->ops), control_cmd, b);
            if (b->stop_requested)
                break;
        }
        now = sc_mono_ms();
        if (b->cfg->heartbeat_ms > 0 && now >= b->next_heartbeat_ms) {
            b->hb_index = 0;
            sc_journal_heads(b->journal, "", send_heartbeat, b);
            b->hb_offset += (uint64_t)b->cfg->max_heartbeats;
            if (b->hb_offset >= b->hb_index)
                b->hb_offset = 0;
            b->next_heartbeat_ms = now + b->cfg->heartbeat_ms;
        }
        if (now >= b->next_prune_ms)
            prune(b);
        if (now >= b->next_log_flush_ms) {
            sc_access_flush_log(b->access);
            sc_subs_flush_log(b->subs);
            sc_pipeline_flush_log(b->pipe);
            b->next_log_flush_ms = now + LOG_FLUSH_MS;
        }
        if (svw >= 0)
            sc_supervisor_tick(b->sv);
        if (svw >= 0 || (sink_item >= 0 && items[sink_item].revents))
            sc_supervisor_sink_flush(b->sv);
        if (paused) {
            sc_pipeline_retry(b->pipe);
            more = false;
            continue;
        }
        /* one bounded slice of publishing, then everything above is
         * served again before the next (fairness: ZAP, subscriptions,
         * service requests and signals wait at most one group) */
        ipc_ready = ipc_item >= 0 && (items[ipc_item].revents & ZMQ_POLLIN);
        sc_pipeline_sources(b->pipe, (items[4].revents & ZMQ_POLLIN) != 0,
                            ipc_ready);
        more = sc_pipeline_drain(b->pipe);
    }
    /* bounded: a watchdog exits at stop_timeout_ms or a second signal */
    stopwatch_t sw = {.sigfd = b->sigfd,
                      .deadline_ms = sc_mono_ms() + b->cfg->stop_timeout_ms,
                      .timeout_ms = b->cfg->stop_timeout_ms};
    bool watching = pthread_create(&sw.th, NULL, stop_watchdog, &sw) == 0;
    stop_plugins(b);
    if (watching) {
        atomic_store(&sw.done, true);
        pthread_join(sw.th, NULL);
    }
    sc_audit("stop", json_pack("{s:I}", "sent", (json_int_t)sc_pipeline_sent(b->pipe)));
    sc_log(SC_L_INFO, "core", "stopped; %llu message(s) sent this run",
           (unsigned long long)sc_pipeline_sent(b->pipe));
    return status;
}

void sc_broker_destroy(sc_broker_t **b_p)
{
    if (!b_p || !*b_p)
        return;
    sc_broker_t *b = *b_p;
    if (b->reload_running) {
        sc_reload_t *r = NULL;
        pthread_join(b->reload_thread, NULL);
        if (read(b->reload_pipe[0], &r, sizeof r) == (ssize_t)sizeof r)
            sc_reload_free(&r);
        b->reload_running = false;
        json_decref(b->reload_rep);
    }
    for (size_t i = 0; i < b->n_ctl_now; i++)
        sc_control_later_free(&b->ctl_now[i]);
    for (size_t i = 0; i < b->n_ctl_next; i++)
        sc_control_later_free(&b->ctl_next[i]);
    b->n_ctl_now = b->n_ctl_next = 0;
    for (int i = 0; i < 2; i++)
        if (b->reload_pipe[i] >= 0)
            close(b->reload_pipe[i]);
    bool abandoned = sc_supervisor_abandoned(b->sv);
    if (b->sv)
        stop_plugins(b);
    sc_pipeline_destroy(&b->pipe);
    sc_plugin_set_sink_ack_cb(NULL, NULL);
    sc_sink_feeder_destroy(&b->sinks);
    sc_service_destroy(&b->service);
    sc_ops_destroy(&b->ops);
    if (b->xpub_mon)
        zmq_close(b->xpub_mon);
    sc_subs_destroy(&b->subs);
    if (b->xpub) {
        /* what was journaled and sent last still reaches the subscribers:
         * zmq_ctx_term waits for it, at most this long */
        int linger = 2000;
        zmq_setsockopt(b->xpub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(b->xpub);
    }
    if (b->pull)
        zmq_close(b->pull);
    if (b->pull_ipc)
        zmq_close(b->pull_ipc);
    if (b->ipc_path[0])
        unlink(b->ipc_path + 6);
    if (b->zap)
        zmq_close(b->zap);
    if (b->zctx) {
        if (abandoned)
            sc_log(SC_L_WARN, "core",
                   "not waiting for the ZeroMQ context: a plugin thread was "
                   "abandoned");
        else
            zmq_ctx_term(b->zctx);
    }
    sc_journal_close(&b->journal);
    sc_keyring_destroy(&b->keyring);
    sc_access_destroy(&b->access);
    if (b->sigfd >= 0)
        close(b->sigfd);
    sc_config_destroy(&b->cfg);
    free(b);
    *b_p = NULL;
}
