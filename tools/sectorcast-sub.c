/*
 * sectorcast-sub - subscribe to a sectorcast gateway from the shell.
 *
 * A thin shell over libsectorcast: prints every verified envelope as one
 * JSON line on stdout (exactly as signed) and nothing else there, or with
 * --format text one line a person reads (time, channel, seq, kind, key and
 * the fields that matter for the kind) under headings for the snapshot and
 * the live stream; refused messages and the final summary go to stderr.
 * --input verifies a recorded stream from a file instead of subscribing.
 * Owns the command line and the output formats; never changes what the
 * library verified (JSON lines are the signed payload bytes). See --help
 * and docs/subscriber.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "sectorcast/client.h"

#define PROG "sectorcast-sub"

enum {
    EXIT_OK = 0,      /* -n reached, signal, or stdout closed */
    EXIT_ERROR = 1,   /* setup, connection or handshake failure */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_IDLE = 3,    /* -t: no message for TIMEOUT_MS */
    EXIT_AUTH = 4,    /* the gateway rejected our CURVE key */
    EXIT_NOT_GRANTED = 5 /* none of the subtrees is granted to us */
};

/* Lines printed before stdout is flushed and the state committed: one
 * write(2) and one state record per batch instead of per message, which
 * also makes the window in which a kill -9 can cause a re-delivery (after
 * the flush, before the commit) tiny compared with the work per batch. */
#define BATCH_MAX 256
/* stdout's buffer: a batch is flushed before it would overflow it, so a
 * batch leaves in one write(2) and stdio never flushes half a line. */
static char outbuf[1 << 20];

/* Longest single wait, so that a signal arriving just before a wait is
 * noticed promptly even if it did not interrupt the wait itself. */
#define SLICE_MS 250

static volatile sig_atomic_t stop_signal;

/* Output format of stdout. */
static bool fmt_text;   /* --format text */
static bool use_color;  /* --color, resolved */

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *out)
{
    fprintf(out,
"Usage: " PROG " -e ENDPOINT -j JWKS [-k SERVER_KEY -c KEY_BASE]\n"
"                      [-s SERVICE [--state FILE] [--snapshot]] [-n COUNT]\n"
"                      [-t TIMEOUT_MS] [-q] [--format json|text]\n"
"                      [--color auto|always|never] SUBTREE [SUBTREE...]\n"
"       " PROG " --input FILE -j JWKS [--format ...] [SUBTREE...]\n"
"\n"
"Subscribe to a sectorcast gateway, verify every message against the\n"
"gateway's JWKS, and print each verified envelope as one JSON object per\n"
"line on stdout, exactly as signed. Nothing else is written to stdout.\n"
"With --format text, one line per message for a person instead:\n"
"  2026-11-25 22:29:34  energy.lng.alerts #2     alert.updated      KEY  FIELDS\n"
"(local time, channel, seq, kind, key; a task's status and title, a\n"
"standard's stage and title, an alert's severity, event and headline),\n"
"with a heading over the snapshot and one where the live stream starts.\n"
"\n"
"Arguments:\n"
"  SUBTREE               channel prefix ending in '.', e.g. 'energy.' (all\n"
"                        energy channels) or 'energy.nuclear.tasks.'\n"
"Options:\n"
"  -e, --endpoint=EP     gateway publish endpoint, e.g. tcp://gw:7100\n"
"  -j, --jwks=FILE       the gateway's published JWKS (verification keys)\n"
"  -k, --server-key=KEY  the gateway's CURVE public key: 40 Z85 characters\n"
"                        or a file holding them (e.g. gateway.public;\n"
"                        a file of that name, if it exists, wins)\n"
"  -c, --key=BASE        our CURVE key pair: BASE.secret (mode 0600) and\n"
"                        BASE.public; -k and -c go together (omit both only\n"
"                        for a gateway without CURVE)\n"
"  -s, --service=EP      the gateway's service endpoint: checks our grants\n"
"                        at start and repairs every gap by replay, so\n"
"                        each message is printed once, in order per\n"
"                        channel\n"
"  -S, --state=FILE      remember per channel the last message printed;\n"
"                        a restart resumes after it (with -s: replays what\n"
"                        was published meanwhile)\n"
"      --snapshot        a channel we have no state for starts with the\n"
"                        latest message of every key (needs -s)\n"
"      --hwm=N           receive queue of the publish socket, messages\n"
"                        (default 100000)\n"
"      --request-timeout=MS  service request attempt timeout (default 5000)\n"
"      --verify-threads=N  check signatures on N threads (default 1); for\n"
"                        more messages per second than one core verifies\n"
"  -n, --count=N         exit after N verified messages\n"
"  -t, --timeout=MS      exit when no message (verified or refused) arrives\n"
"                        for MS milliseconds\n"
"  -q, --quiet           no stderr line per refused message (the summary\n"
"                        still counts them)\n"
"      --format=FORMAT   json (default): the signed envelope, one per line;\n"
"                        text: one readable line per message\n"
"      --color=WHEN      text colours: auto (default: when stdout is a\n"
"                        terminal and NO_COLOR is unset), always, never\n"
"      --input=FILE      verify and print a recorded stream instead of\n"
"                        subscribing: one message per line, its frames\n"
"                        separated by one space (TOPIC JWS, or a heartbeat:\n"
"                        TOPIC sc-heartbeat-v1 JSON); '-' is stdin\n"
"  -h, --help            this text\n"
"\n"
"stderr: one line per refused message, \"" PROG ": refused message on\n"
"TOPIC: REASON\"; \"refused: SUBTREE (not granted to agency ID)\" per\n"
"subtree our agency may not read (with -s); \"" PROG ": unrecoverable gap\n"
"on CHANNEL: seq A..B REASON\" for messages lost for good; and at exit\n"
"\"" PROG ": N delivered, M refused\"; with -s or -S \"N delivered: S from\n"
"the snapshot, R replayed to fill gaps, L live; M refused, D duplicates\n"
"dropped, X lost\".\n"
"\n"
"Exit status:\n"
"  0  -n COUNT reached, SIGINT/SIGTERM, or stdout closed\n"
"  1  error: JWKS or key files unreadable, bad endpoint, handshake failed\n"
"  2  usage error\n"
"  3  -t TIMEOUT_MS passed without a message\n"
"  4  the gateway rejected our CURVE key (not on its list of agencies)\n"
"  5  none of the subtrees is granted to our agency (with -s)\n");
}

static int parse_num(const char *s, const char *what, long min, long max,
                     long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, PROG ": %s must be a number from %ld to %ld, not "
                "'%s'\n", what, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static size_t pending_bytes;

/* Flush what was printed, then record it in the state file (also with
 * nothing printed when `force`: a gap or epoch event moved a position). */
static int flush_commit(sc_client_t *client, long *pending, bool force)
{
    pending_bytes = 0;
    char err[512];
    if (*pending == 0 && !force)
        return 0;
    if (fflush(stdout) != 0) {
        if (errno == EPIPE)
            return 1; /* a closed pipe is a normal way to stop */
        fprintf(stderr, PROG ": cannot write to stdout: %s\n",
                strerror(errno));
        return -1;
    }
    *pending = 0;
    if (sc_client_commit(client, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- --format text ------------------------------------------------------ */

#define C_RESET "\033[0m"
#define C_DIM "\033[2m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_CYAN "\033[36m"

/* Text from the data (signed, but written by a plugin from a register):
 * control characters become '?' so a line stays one line and nothing is
 * sent to the terminal as an escape sequence. */
static void put_clean(FILE *out, const char *s)
{
    for (; s && *s; s++)
        fputc(((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s, out);
}

static void put_col(FILE *out, const char *color, const char *s, int width)
{
    if (use_color && color)
        fputs(color, out);
    put_clean(out, s);
    if (use_color && color)
        fputs(C_RESET, out);
    for (int n = (int)strlen(s ? s : ""); n < width; n++)
        fputc(' ', out);
}

static const char *data_str(json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

static const char *status_color(const char *st)
{
    if (!st)
        return NULL;
    if (!strcmp(st, "at-risk") || !strcmp(st, "cancelled") ||
        !strcmp(st, "withdrawn"))
        return C_RED;
    if (!strcmp(st, "on-hold"))
        return C_YELLOW;
    if (!strcmp(st, "completed") || !strcmp(st, "closed") ||
        !strcmp(st, "published"))
        return C_GREEN;
    return NULL;
}

static const char *severity_color(const char *sev, const char *kind)
{
    if (!strcmp(kind, "alert.cleared"))
        return C_GREEN;
    if (sev && (!strcmp(sev, "Extreme") || !strcmp(sev, "Severe")))
        return C_BOLD C_RED;
    if (sev && !strcmp(sev, "Moderate"))
        return C_YELLOW;
    return NULL;
}

/* One line for a person: local time, channel #seq, kind, key, and per kind
 * the fields that matter. Shapes: docs/sectors.md (tasks and standards as
 * in the register, alerts as CAP 1.2 with one `info` object). */
static void format_text(FILE *out, const sc_message_t *m,
                        sc_client_origin_t origin)
{
    json_t *env = json_loadb(m->envelope, m->envelope_len, 0, NULL);
    json_t *data = json_object_get(env, "data");

    /* ts: "2026-11-25T13:29:34.123Z" (UTC) -> local time */
    char when[32] = "(time unknown)";
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (m->ts && sscanf(m->ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
                        &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                        &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        struct tm lt;
        if (localtime_r(&t, &lt))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &lt);
    }
    char where[300];
    snprintf(where, sizeof where, "%s #%" PRIu64, m->channel, m->seq);

    put_col(out, C_DIM, when, 0);
    fputs("  ", out);
    put_col(out, C_CYAN, where, 28);
    fputc(' ', out);
    const char *kc = !strcmp(m->kind, "alert.raised")    ? C_BOLD C_RED
                     : !strcmp(m->kind, "alert.cleared") ? C_GREEN
                                                         : C_BOLD;
    put_col(out, kc, m->kind, 18);
    fputc(' ', out);
    put_col(out, NULL, m->key ? m->key : "-", 18);

    if (!strncmp(m->kind, "task.", 5) && json_is_object(data)) {
        const char *st = data_str(data, "status");
        fputc(' ', out);
        put_col(out, status_color(st), st ? st : "?", 15);
        fputc(' ', out);
        put_clean(out, data_str(data, "title"));
    } else if (!strncmp(m->kind, "standard.", 9) && json_is_object(data)) {
        const char *st = data_str(data, "stage");
        fputc(' ', out);
        put_col(out, status_color(st), st ? st : "?", 15);
        fputc(' ', out);
        put_clean(out, data_str(data, "title"));
    } else if (!strncmp(m->kind, "alert.", 6) && json_is_object(data)) {
        json_t *info = json_object_get(data, "info");
        if (json_is_array(info))
            info = json_array_get(info, 0);
        const char *sev = data_str(info, "severity");
        const char *event = data_str(info, "event");
        const char *headline = data_str(info, "headline");
        fputc(' ', out);
        put_col(out, severity_color(sev, m->kind), sev ? sev : "?", 8);
        fputc(' ', out);
        put_clean(out, event ? event : "?");
        if (headline) {
            fputs(" | ", out);
            put_clean(out, headline);
        }
    } else if (json_is_object(data) && data_str(data, "title")) {
        fputc(' ', out);
        put_clean(out, data_str(data, "title"));
    }
    if (origin == SC_CLIENT_FROM_REPLAY)
        put_col(out, C_DIM, "  (replayed)", 0);
    fputc('\n', out);
    json_decref(env);
}

/* Headings of --format text: over the snapshot, and where live starts. */
static void heading(FILE *out, const char *text)
{
    if (use_color)
        fputs(C_BOLD, out);
    fprintf(out, "=== %s ===", text);
    if (use_color)
        fputs(C_RESET, out);
    fputc('\n', out);
}

/* Print one verified message in the chosen format into `out`. */
static void format_message(FILE *out, const sc_message_t *m,
                           sc_client_origin_t origin)
{
    if (fmt_text) {
        format_text(out, m, origin);
    } else {
        fwrite(m->envelope, 1, m->envelope_len, out);
        fputc('\n', out);
    }
}

/* ---- --input: a recorded stream ------------------------------------------ */

static bool under_subtrees(const char *topic, char **subtrees, int n)
{
    if (n == 0)
        return true;
    for (int i = 0; i < n; i++)
        if (!strncmp(topic, subtrees[i], strlen(subtrees[i])))
            return true;
    return false;
}

/* Verify and print every message of a recorded stream: one per line, its
 * frames separated by one space; heartbeats are counted, not printed. */
static int run_input(sc_client_t *client, const char *path, char **subtrees,
                     int n_subtrees, bool quiet)
{
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!in) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path,
                strerror(errno));
        return EXIT_ERROR;
    }
    char *line = NULL, err[512];
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, heartbeats = 0, delivered = 0, refused = 0;
    int status = EXIT_OK;
    while (!stop_signal && (len = getline(&line, &cap, in)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        char *sp = strchr(line, ' ');
        if (!sp) {
            fprintf(stderr, PROG ": %s:%ld: want TOPIC JWS\n", path, lineno);
            refused++;
            continue;
        }
        *sp = '\0';
        const char *topic = line, *jws = sp + 1;
        if (!under_subtrees(topic, subtrees, n_subtrees))
            continue;
        if (!strncmp(jws, "sc-heartbeat-v1 ", 16)) {
            heartbeats++; /* says there is data; not data itself */
            continue;
        }
        sc_message_t msg;
        int rc = sc_client_verify(client, topic, strlen(topic), jws,
                                  strlen(jws), &msg, err, sizeof err);
        if (rc == SC_CLIENT_MESSAGE) {
            format_message(stdout, &msg, SC_CLIENT_FROM_LIVE);
            delivered++;
        } else {
            refused++;
            if (!quiet)
                fprintf(stderr, PROG ": %s:%ld: %s\n", path, lineno, err);
        }
    }
    if (ferror(in)) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path,
                strerror(errno));
        status = EXIT_ERROR;
    }
    free(line);
    if (in != stdin)
        fclose(in);
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, PROG ": cannot write to stdout: %s\n",
                strerror(errno));
        status = EXIT_ERROR;
    }
    fprintf(stderr, PROG ": %ld delivered, %ld refused, %ld heartbeats "
            "(from %s)\n", delivered, refused, heartbeats, path);
    return status;
}

int main(int argc, char **argv)
{
    enum { OPT_SNAPSHOT = 256, OPT_HWM, OPT_REQ_TIMEOUT, OPT_FORMAT,
           OPT_COLOR, OPT_INPUT, OPT_VERIFY_THREADS };
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"jwks", required_argument, NULL, 'j'},
        {"server-key", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'c'},
        {"service", required_argument, NULL, 's'},
        {"state", required_argument, NULL, 'S'},
        {"snapshot", no_argument, NULL, OPT_SNAPSHOT},
        {"hwm", required_argument, NULL, OPT_HWM},
        {"verify-threads", required_argument, NULL, OPT_VERIFY_THREADS},
        {"request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"color", required_argument, NULL, OPT_COLOR},
        {"colour", required_argument, NULL, OPT_COLOR},
        {"input", required_argument, NULL, OPT_INPUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sc_client_options_t opts = {0};
    long count = 0, idle_ms = -1, num;
    int quiet = 0, c;
    const char *color = "auto", *input = NULL;

    while ((c = getopt_long(argc, argv, "e:j:k:c:s:S:n:t:qh", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'e': opts.endpoint = optarg; break;
        case 'j': opts.jwks_path = optarg; break;
        case 'k': opts.server_public_key = optarg; break;
        case 'c': opts.client_key_base = optarg; break;
        case 's': opts.service_endpoint = optarg; break;
        case 'S': opts.state_path = optarg; break;
        case OPT_SNAPSHOT: opts.snapshot = 1; break;
        case OPT_HWM:
            if (parse_num(optarg, "--hwm", 1, INT_MAX, &num) != 0)
                return EXIT_USAGE;
            opts.rcvhwm = (int)num;
            break;
        case OPT_VERIFY_THREADS:
            if (parse_num(optarg, "--verify-threads", 1, 64, &num) != 0)
                return EXIT_USAGE;
            opts.verify_threads = (int)num;
            break;
        case OPT_REQ_TIMEOUT:
            if (parse_num(optarg, "--request-timeout", 1, INT_MAX, &num) !=
                0)
                return EXIT_USAGE;
            opts.request_timeout_ms = (int)num;
            break;
        case 'n':
            if (parse_num(optarg, "--count", 1, LONG_MAX, &count) != 0)
                return EXIT_USAGE;
            break;
        case 't':
            if (parse_num(optarg, "--timeout", 1, INT_MAX, &idle_ms) != 0)
                return EXIT_USAGE;
            break;
        case 'q': quiet = 1; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
                fprintf(stderr, PROG ": --format must be json or text, not "
                        "'%s'\n", optarg);
                return EXIT_USAGE;
            }
            fmt_text = !strcmp(optarg, "text");
            break;
        case OPT_COLOR:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") &&
                strcmp(optarg, "never")) {
                fprintf(stderr, PROG ": --color must be auto, always or "
                        "never, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            color = optarg;
            break;
        case OPT_INPUT: input = optarg; break;
        case 'h': usage(stdout); return EXIT_OK;
        default:
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_USAGE;
        }
    }
    const char *getenv_no_color = getenv("NO_COLOR");
    use_color = fmt_text &&
                (!strcmp(color, "always") ||
                 (!strcmp(color, "auto") && isatty(STDOUT_FILENO) &&
                  !(getenv_no_color && *getenv_no_color)));
    if (input) {
        if (opts.endpoint || opts.service_endpoint || opts.state_path ||
            opts.snapshot || opts.server_public_key || opts.client_key_base) {
            fprintf(stderr, PROG ": --input reads a file: -e, -s, -S, -k, "
                    "-c and --snapshot do not apply\n");
            return EXIT_USAGE;
        }
        if (!opts.jwks_path) {
            fprintf(stderr, PROG ": missing -j JWKS. Try '" PROG
                    " --help'.\n");
            return EXIT_USAGE;
        }
        /* no gateway: the client only verifies (sc_client_verify) */
        opts.endpoint = "inproc://sectorcast-sub-input";
    }
    const char *missing = !opts.endpoint ? "-e ENDPOINT"
                          : !opts.jwks_path ? "-j JWKS"
                          : (optind >= argc && !input) ? "a SUBTREE"
                          : (!opts.server_public_key !=
                             !opts.client_key_base)
                              ? (opts.server_public_key ? "-c KEY_BASE"
                                                        : "-k SERVER_KEY")
                          : (opts.snapshot && !opts.service_endpoint)
                              ? "-s SERVICE (--snapshot needs it)"
                              : NULL;
    if (missing) {
        fprintf(stderr, PROG ": missing %s. Try '" PROG " --help'.\n",
                missing);
        return EXIT_USAGE;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    char err[512];
    sc_client_t *client = sc_client_new(&opts, err, sizeof err);
    if (!client) {
        fprintf(stderr, PROG ": %s\n", err);
        return EXIT_ERROR;
    }
    if (input) {
        int rc = run_input(client, input, argv + optind, argc - optind,
                           quiet);
        sc_client_destroy(&client);
        return rc;
    }
    int granted = 0, status = EXIT_OK;
    for (int i = optind; i < argc && status == EXIT_OK; i++) {
        int rc = sc_client_subscribe(client, argv[i], err, sizeof err);
        if (rc == 0) {
            granted++;
        } else if (rc == SC_CLIENT_NOT_GRANTED) {
            fprintf(stderr, "%s\n", err); /* "refused: SUBTREE (...)" */
        } else {
            fprintf(stderr, PROG ": %s\n", err);
            status = rc == -1               ? EXIT_USAGE
                     : rc == SC_CLIENT_AUTH ? EXIT_AUTH
                                            : EXIT_ERROR;
        }
    }
    if (status == EXIT_OK && granted == 0) {
        fprintf(stderr, PROG ": none of the subtrees is granted to our "
                "agency\n");
        status = EXIT_NOT_GRANTED;
    }
    if (status != EXIT_OK) {
        sc_client_destroy(&client);
        return status;
    }

    long delivered = 0, pending = 0;
    /* --format text headings: 0 none yet, 1 in the snapshot, 2 live */
    int section = 0;
    uint64_t from_snapshot = 0;
    char *line = NULL;
    size_t line_cap = 0;
    FILE *line_out = NULL;
    int64_t last = sc_mono_ms();
    int wait_next = -1; /* -1: a full slice; 0: take what is ready */
    while (!stop_signal && (count == 0 || delivered < count)) {
        int wait = wait_next == 0 ? 0 : SLICE_MS;
        if (idle_ms >= 0 && wait > 0) {
            int64_t left = last + idle_ms - sc_mono_ms();
            if (left <= 0) {
                status = EXIT_IDLE;
                break;
            }
            if (left < wait)
                wait = (int)left;
        }
        sc_message_t msg;
        int rc = sc_client_recv(client, &msg, wait, err, sizeof err);
        if (rc != SC_CLIENT_MESSAGE && section == 1 &&
            rc != SC_CLIENT_REFUSED) {
            /* everything the snapshot brought has been printed */
            char h[160];
            snprintf(h, sizeof h, "live: changes as they arrive (the %"
                     PRIu64 " above are the snapshot)", from_snapshot);
            heading(stdout, h);
            section = 2;
            pending++;
        }
        if (rc != SC_CLIENT_MESSAGE) {
            int f = flush_commit(client, &pending, false);
            if (f != 0) {
                status = f < 0 ? EXIT_ERROR : EXIT_OK;
                break;
            }
            wait_next = -1;
        }
        if (rc == SC_CLIENT_MESSAGE) {
            last = sc_mono_ms();
            sc_client_origin_t origin = sc_client_origin(client);
            if (!line_out)
                line_out = open_memstream(&line, &line_cap);
            if (!line_out) {
                fprintf(stderr, PROG ": out of memory\n");
                status = EXIT_ERROR;
                break;
            }
            rewind(line_out);
            if (fmt_text && origin == SC_CLIENT_FROM_SNAPSHOT &&
                section == 0) {
                heading(line_out, "snapshot: the current state when we "
                        "joined, the latest message of every key");
                section = 1;
            } else if (fmt_text && origin != SC_CLIENT_FROM_SNAPSHOT &&
                       section == 1) {
                char h[160];
                snprintf(h, sizeof h, "live: changes as they arrive (the %"
                         PRIu64 " above are the snapshot)", from_snapshot);
                heading(line_out, h);
                section = 2;
            }
            if (origin == SC_CLIENT_FROM_SNAPSHOT)
                from_snapshot++;
            format_message(line_out, &msg, origin);
            long pos = ftell(line_out);
            if (fflush(line_out) != 0 || pos < 0) {
                fprintf(stderr, PROG ": out of memory\n");
                status = EXIT_ERROR;
                break;
            }
            size_t line_len = (size_t)pos;
            if (pending_bytes + line_len > sizeof outbuf) {
                int f = flush_commit(client, &pending, false);
                if (f != 0) {
                    status = f < 0 ? EXIT_ERROR : EXIT_OK;
                    break;
                }
            }
            delivered++;
            pending++;
            pending_bytes += line_len;
            if (fwrite(line, 1, line_len, stdout) != line_len) {
                if (errno != EPIPE) {
                    fprintf(stderr, PROG ": cannot write to stdout: %s\n",
                            strerror(errno));
                    status = EXIT_ERROR;
                }
                pending = 0; /* never commit what may not be out */
                break;
            }
            wait_next = 0;
            if (pending >= BATCH_MAX || (count && delivered >= count)) {
                int f = flush_commit(client, &pending, false);
                if (f != 0) {
                    status = f < 0 ? EXIT_ERROR : EXIT_OK;
                    break;
                }
            }
        } else if (rc == SC_CLIENT_REFUSED) {
            last = sc_mono_ms();
            if (!quiet)
                fprintf(stderr, PROG ": %s\n", err);
        } else if (rc == SC_CLIENT_GAP || rc == SC_CLIENT_EPOCH ||
                   rc == SC_CLIENT_UNAVAILABLE) {
            /* reported; the stream goes on (a repair is retried) */
            fprintf(stderr, PROG ": %s\n", err);
            if (rc != SC_CLIENT_UNAVAILABLE &&
                flush_commit(client, &pending, true) < 0) {
                status = EXIT_ERROR;
                break;
            }
        } else if (rc == SC_CLIENT_AUTH) {
            fprintf(stderr, PROG ": %s\n", err);
            status = EXIT_AUTH;
            break;
        } else if (rc == SC_CLIENT_ERROR) {
            fprintf(stderr, PROG ": %s\n", err);
            status = EXIT_ERROR;
            break;
        }
        /* SC_CLIENT_TIMEOUT, SC_CLIENT_INTERRUPTED: check and go on. */
    }
    if (pending > 0 && flush_commit(client, &pending, false) < 0 &&
        status == EXIT_OK)
        status = EXIT_ERROR;
    if (status == EXIT_IDLE)
        fprintf(stderr, PROG ": no message for %ld ms\n", idle_ms);

    if (line_out)
        fclose(line_out);
    free(line);
    sc_client_stats_t st;
    sc_client_stats(client, &st);
    if (opts.service_endpoint || opts.state_path)
        fprintf(stderr, PROG ": %" PRIu64 " delivered: %" PRIu64 " from the "
                "snapshot, %" PRIu64 " replayed to fill gaps, %" PRIu64
                " live; %" PRIu64 " refused, %" PRIu64 " duplicates "
                "dropped, %" PRIu64 " lost\n", st.delivered, st.snapshot,
                st.repaired, st.live, st.refused, st.duplicates, st.lost);
    else
        fprintf(stderr, PROG ": %" PRIu64 " delivered, %" PRIu64
                " refused\n", st.delivered, st.refused);
    sc_client_destroy(&client);
    return status;
}
