/*
 * sectorcast-ctl - ask a running sectorcastd what it is doing, and tell
 * it to reload, restart a plugin, reopen its logs or stop.
 *
 * Talks to the broker's control socket (core/broker/control.h): by
 * default the one under the data directory of the config given with -c.
 * Prints readable tables, or the broker's JSON with --json. See --help
 * and docs/operations.md.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "broker/control.h"
#include "common/keys.h"

#define PROG "sectorcast-ctl"
#define DEFAULT_CONFIG "/etc/sectorcast/sectorcast.conf"

enum {
    EXIT_OK = 0,          /* done; for check/health: valid/healthy */
    EXIT_FAILED = 1,      /* the broker refused or the command failed */
    EXIT_USAGE = 2,       /* bad command line, unreadable config */
    EXIT_UNREACHABLE = 3, /* no socket, no permission, no answer in time
                             (with CURVE: also a key it does not admit) */
};

static void usage(FILE *out)
{
    fprintf(out,
"Usage: " PROG " [-c CONFIG | -s SOCKET] [-k KEY_BASE [-K SERVER_KEY]]\n"
"                      [--json] [-t SECONDS] COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  status              version, uptime, config file, epoch, journal size,\n"
"                      signing key ids\n"
"  channels            per channel: head seq, messages and bytes, rate,\n"
"                      last publish\n"
"  agencies            per agency: connections, grants, live\n"
"                      subscriptions, refused subscriptions\n"
"  plugins             per plugin: state, pid, restarts, published,\n"
"                      refused, last error\n"
"  health              what /healthz says (exit 1 when unhealthy)\n"
"  reload              re-read the config (as SIGHUP); prints what changed,\n"
"                      what was kept and what failed (exit 1 if refused:\n"
"                      the running configuration then stays)\n"
"  plugin restart NAME stop plugin NAME and start it again\n"
"  check               validate the running config file as --check does\n"
"                      (exit 1 when it has problems)\n"
"  log-reopen          reopen the log and audit files (as SIGUSR1)\n"
"  stop                stop the broker gracefully (as SIGTERM)\n"
"\n"
"Options:\n"
"  -c, --config=FILE     the broker's config (default $SECTORCAST_CONFIG or\n"
"                        " DEFAULT_CONFIG "): gives the socket\n"
"                        (DATA_DIR/" SC_CONTROL_SOCKET ") and, with\n"
"                        control.admin_keys, the server key\n"
"  -s, --socket=PATH     the control socket, instead of -c\n"
"  -k, --key=BASE        our admin CURVE key pair BASE.public/BASE.secret\n"
"                        (needed when the config lists control.admin_keys)\n"
"  -K, --server-key=KEY  the broker's CURVE public key (Z85 or a file);\n"
"                        default: curve.public_key of the config\n"
"  -j, --json            print the broker's JSON reply\n"
"  -t, --timeout=SEC     wait at most SEC seconds for the answer (default\n"
"                        10; 60 for reload, check and plugin restart)\n"
"  -h, --help            this text\n"
"\n"
"Exit status: 0 done (check: valid; health: healthy), 1 the broker refused\n"
"or the command failed, 2 usage or config error, 3 the broker cannot be\n"
"reached (no socket, no permission, no answer in time, or a CURVE key it\n"
"does not admit).\n");
}

/* ------------------------------------------------------------------ */
/* tables                                                              */

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static long long num(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void join(json_t *arr, char *out, size_t len)
{
    size_t i, n = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(arr, i, v) {
        int w = snprintf(out + n, len - n, "%s%s", i ? " " : "",
                         json_string_value(v) ? json_string_value(v) : "?");
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
    if (!out[0])
        snprintf(out, len, "-");
}

static void print_status(json_t *s)
{
    char kids[512];
    join(json_object_get(s, "signing_kids"), kids, sizeof kids);
    printf("version        %s\n", str(s, "version"));
    printf("gateway        %s\n", str(s, "gateway"));
    printf("uptime         %lld s (since %s)\n", num(s, "uptime_s"),
           str(s, "started"));
    printf("config         %s\n", str(s, "config"));
    printf("epoch          %s\n", str(s, "epoch"));
    printf("journal        %lld bytes, %s\n", num(s, "journal_bytes"),
           json_is_true(json_object_get(s, "journal_writable"))
               ? "writable"
               : "NOT WRITABLE");
    printf("signing keys   %s (active %s)\n", kids, str(s, "active_kid"));
}

static void print_channels(json_t *a)
{
    printf("%-40s %10s %10s %12s %8s  %s\n", "CHANNEL", "HEAD", "MESSAGES",
           "BYTES", "RATE/S", "LAST PUBLISH");
    size_t i;
    json_t *c;
    json_array_foreach(a, i, c)
        printf("%-40s %10lld %10lld %12lld %8.2f  %s\n", str(c, "channel"),
               num(c, "head"), num(c, "messages"), num(c, "bytes"),
               json_number_value(json_object_get(c, "rate")),
               str(c, "last_publish"));
}

static void print_agencies(json_t *a)
{
    printf("%-16s %5s %7s  %-30s  %s\n", "AGENCY", "CONNS", "REFUSED",
           "GRANTS", "LIVE SUBSCRIPTIONS");
    size_t i;
    json_t *g;
    json_array_foreach(a, i, g) {
        char grants[1024], subs[2048];
        join(json_object_get(g, "grants"), grants, sizeof grants);
        join(json_object_get(g, "subscriptions"), subs, sizeof subs);
        printf("%-16s %5lld %7lld  %-30s  %s\n", str(g, "agency"),
               num(g, "connections"), num(g, "refused"), grants, subs);
    }
}

static void print_plugins(json_t *a)
{
    printf("%-20s %-10s %7s %8s %10s %8s %9s  %s\n", "PLUGIN", "STATE", "PID",
           "RESTARTS", "PUBLISHED", "REFUSED", "SINK LAG", "LAST ERROR");
    size_t i;
    json_t *p;
    json_array_foreach(a, i, p) {
        char pid[16] = "-";
        if (num(p, "pid") > 0)
            snprintf(pid, sizeof pid, "%lld", num(p, "pid"));
        char lag[24] = "-";
        if (json_object_get(p, "sink_lag"))
            snprintf(lag, sizeof lag, "%lld", num(p, "sink_lag"));
        printf("%-20s %-10s %7s %8lld %10lld %8lld %9s  %s\n",
               str(p, "plugin"), str(p, "state"), pid, num(p, "restarts"),
               num(p, "published"), num(p, "refused"), lag,
               json_object_get(p, "sink_error") ? str(p, "sink_error")
                                                : str(p, "last_error"));
    }
}

static void print_lines(const char *title, json_t *arr)
{
    printf("%s:\n", title);
    if (json_array_size(arr) == 0)
        printf("  (none)\n");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        printf("  %s\n", json_string_value(v) ? json_string_value(v) : "?");
}

/* ------------------------------------------------------------------ */

/* path relative to the config file's directory, as the broker does */
static void resolve(const char *config, const char *p, char *out, size_t len)
{
    if (p[0] == '/') {
        snprintf(out, len, "%s", p);
        return;
    }
    const char *slash = strrchr(config, '/');
    if (!slash)
        snprintf(out, len, "%s", p);
    else
        snprintf(out, len, "%.*s/%s", (int)(slash - config), config, p);
}

/* gateway.data_dir, curve.public_key and the number of
 * control.admin_keys, read with libconfig alone */
static int read_connect_settings(const char *config, char *data_dir,
                                 size_t dlen, char *pub, size_t plen,
                                 int *n_admin)
{
    config_t lc;
    config_init(&lc);
    if (config_read_file(&lc, config) != CONFIG_TRUE) {
        fprintf(stderr, PROG ": cannot read %s: %s (line %d); give the "
                        "socket with -s\n",
                config, config_error_text(&lc), config_error_line(&lc));
        config_destroy(&lc);
        return -1;
    }
    const char *v = NULL;
    if (config_lookup_string(&lc, "gateway.data_dir", &v) != CONFIG_TRUE)
        v = "var";
    resolve(config, v, data_dir, dlen);
    pub[0] = '\0';
    if (config_lookup_string(&lc, "curve.public_key", &v) == CONFIG_TRUE)
        resolve(config, v, pub, plen);
    config_setting_t *ks = config_lookup(&lc, "control.admin_keys");
    *n_admin = ks ? config_setting_length(ks) : 0;
    config_destroy(&lc);
    return 0;
}

static int read_key_arg(const char *arg, char out[41])
{
    char e[512];
    if (strlen(arg) == 40 && !strchr(arg, '/') && !strchr(arg, '.')) {
        memcpy(out, arg, 41);
        return 0;
    }
    if (sc_curve_read(arg, false, out, e, sizeof e) != 0) {
        fprintf(stderr, PROG ": %s\n", e);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *sock_path = NULL, *key_base = NULL,
               *server_key_arg = NULL;
    bool as_json = false;
    double timeout = -1;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:k:K:jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': sock_path = optarg; break;
        case 'k': key_base = optarg; break;
        case 'K': server_key_arg = optarg; break;
        case 'j': as_json = true; break;
        case 't': timeout = atof(optarg); break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, PROG ": no command\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    json_t *req = NULL;
    if (strcmp(cmd, "plugin") == 0) {
        if (argc - optind != 3 || strcmp(argv[optind + 1], "restart") != 0) {
            fprintf(stderr, PROG ": usage: plugin restart NAME\n");
            return EXIT_USAGE;
        }
        req = json_pack("{s:s, s:s}", "cmd", "plugin-restart", "name",
                        argv[optind + 2]);
        cmd = "plugin-restart";
    } else {
        static const char *const known[] = {
            "status", "channels", "agencies", "plugins", "health",
            "reload", "check",    "stop",     "log-reopen", NULL};
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(known[i], cmd) == 0;
        if (!ok || argc - optind != 1) {
            fprintf(stderr, PROG ": unknown command or extra arguments: %s\n",
                    cmd);
            usage(stderr);
            return EXIT_USAGE;
        }
        req = json_pack("{s:s}", "cmd", cmd);
    }
    /* the request, kept on the stack: every exit below frees nothing */
    char body[1024];
    size_t blen = req ? json_dumpb(req, body, sizeof body, JSON_COMPACT) : 0;
    json_decref(req);
    if (blen == 0 || blen >= sizeof body) {
        fprintf(stderr, PROG ": request too long\n");
        return EXIT_USAGE;
    }
    body[blen] = '\0';
    if (timeout <= 0)
        timeout = (strcmp(cmd, "reload") == 0 || strcmp(cmd, "check") == 0 ||
                   strcmp(cmd, "plugin-restart") == 0)
                      ? 60
                      : 10;

    /* where and how to connect */
    char path[512], server_key[41] = "";
    bool curve = false;
    if (sock_path) {
        snprintf(path, sizeof path, "%s", sock_path);
    } else {
        if (!config)
            config = getenv("SECTORCAST_CONFIG") ? getenv("SECTORCAST_CONFIG")
                                                 : DEFAULT_CONFIG;
        /* only what is needed to connect, so that ctl still reaches a
         * broker whose config file now has problems (ctl check, reload) */
        char data_dir[4096], pub[4096];
        int n_admin = 0;
        if (read_connect_settings(config, data_dir, sizeof data_dir, pub,
                                  sizeof pub, &n_admin) != 0)
            return EXIT_USAGE;
        if (sc_control_socket_path(data_dir, path, sizeof path) != 0) {
            fprintf(stderr, PROG ": control socket path too long\n");
            return EXIT_USAGE;
        }
        curve = n_admin > 0;
        if (curve && !server_key_arg && pub[0] &&
            read_key_arg(pub, server_key) != 0)
            return EXIT_USAGE;
    }
    if (server_key_arg && read_key_arg(server_key_arg, server_key) != 0)
        return EXIT_USAGE;
    if (key_base)
        curve = true;
    if (curve && (!key_base || !server_key[0])) {
        fprintf(stderr, PROG ": the control socket uses CURVE: give our admin "
                        "key pair with -k BASE%s\n",
                server_key[0] ? "" : " and the broker's key with -K");
        return EXIT_USAGE;
    }

    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, PROG ": no control socket %s: %s (is the broker "
                        "running, with control enabled?)\n",
                path, strerror(errno));
        return EXIT_UNREACHABLE;
    }
    if (access(path, W_OK) != 0) {
        fprintf(stderr, PROG ": cannot connect to %s: %s (run as the "
                        "broker's user)\n",
                path, strerror(errno));
        return EXIT_UNREACHABLE;
    }

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (curve) {
        char pubf[600], secf[600], pub[41], sec[41], e[512];
        snprintf(pubf, sizeof pubf, "%s.public", key_base);
        snprintf(secf, sizeof secf, "%s.secret", key_base);
        if (sc_curve_read(pubf, false, pub, e, sizeof e) != 0 ||
            sc_curve_read(secf, true, sec, e, sizeof e) != 0) {
            fprintf(stderr, PROG ": %s\n", e);
            zmq_close(s);
            zmq_ctx_term(ctx);
            return EXIT_USAGE;
        }
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
        memset(sec, 0, sizeof sec);
    }
    char ep[600];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    int rc = EXIT_UNREACHABLE;
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, PROG ": cannot connect to %s: %s\n", ep,
                zmq_strerror(errno));
        goto out;
    }
    zmq_send(s, body, blen, 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, (long)(timeout * 1000)) <= 0) {
        fprintf(stderr, PROG ": no answer from %s within %.0f s%s\n", path,
                timeout, curve ? " (is our key in control.admin_keys?)"
                               : " (does the control socket need CURVE?)");
        goto out;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        zmq_msg_close(&m);
        goto out;
    }
    json_error_t je;
    json_t *rep = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, &je);
    zmq_msg_close(&m);
    if (!rep) {
        fprintf(stderr, PROG ": the broker's answer is not JSON: %s\n",
                je.text);
        rc = EXIT_FAILED;
        goto out;
    }
    bool ok = json_is_true(json_object_get(rep, "ok"));
    rc = ok ? EXIT_OK : EXIT_FAILED;
    if (strcmp(cmd, "check") == 0 &&
        !json_is_true(json_object_get(rep, "valid")))
        rc = EXIT_FAILED;
    if (strcmp(cmd, "health") == 0 &&
        !json_is_true(json_object_get(json_object_get(rep, "health"), "ok")))
        rc = EXIT_FAILED;
    if (as_json) {
        char *t = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (t)
            printf("%s\n", t);
        free(t);
    } else if (!ok && !json_object_get(rep, "result")) {
        fprintf(stderr, PROG ": %s\n", str(rep, "error"));
    } else if (strcmp(cmd, "status") == 0) {
        print_status(json_object_get(rep, "status"));
    } else if (strcmp(cmd, "channels") == 0) {
        print_channels(json_object_get(rep, "channels"));
    } else if (strcmp(cmd, "agencies") == 0) {
        print_agencies(json_object_get(rep, "agencies"));
    } else if (strcmp(cmd, "plugins") == 0) {
        print_plugins(json_object_get(rep, "plugins"));
    } else if (strcmp(cmd, "health") == 0) {
        json_t *h = json_object_get(rep, "health");
        printf("%s\n", json_is_true(json_object_get(h, "ok")) ? "healthy"
                                                               : "UNHEALTHY");
        print_lines("problems", json_object_get(h, "problems"));
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reload %s (%s)\n", str(rep, "result"), str(rep, "config"));
        print_lines("changed", json_object_get(rep, "changed"));
        print_lines("kept", json_object_get(rep, "kept"));
        print_lines("failed", json_object_get(rep, "failed"));
    } else if (strcmp(cmd, "check") == 0) {
        printf("%s: %s\n", str(rep, "config"),
               rc == EXIT_OK ? "configuration is valid" : "problems found");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(rep, "problems"), i, v)
            printf("%s\n", json_string_value(v));
    } else if (strcmp(cmd, "plugin-restart") == 0) {
        printf("plugin %s restarted\n", str(rep, "plugin"));
    } else if (strcmp(cmd, "stop") == 0) {
        printf("broker stopping\n");
    } else {
        printf("done\n");
    }
    json_decref(rep);
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
