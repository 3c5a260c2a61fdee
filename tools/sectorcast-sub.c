/*
 * sectorcast-sub - subscribe to a sectorcast gateway from the shell.
 *
 * A thin shell over libsectorcast: prints every verified envelope as one
 * JSON line on stdout (exactly as signed) and nothing else there; refused
 * messages and the final summary go to stderr. See --help and
 * docs/subscriber.md.
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

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *out)
{
    fprintf(out,
"Usage: " PROG " -e ENDPOINT -j JWKS [-k SERVER_KEY -c KEY_BASE]\n"
"                      [-s SERVICE [--state FILE] [--snapshot]] [-n COUNT]\n"
"                      [-t TIMEOUT_MS] [-q] SUBTREE [SUBTREE...]\n"
"\n"
"Subscribe to a sectorcast gateway, verify every message against the\n"
"gateway's JWKS, and print each verified envelope as one JSON object per\n"
"line on stdout, exactly as signed. Nothing else is written to stdout.\n"
"\n"
"Arguments:\n"
"  SUBTREE               channel prefix ending in '.', e.g. 'energy.' (all\n"
"                        energy channels) or 'energy.nuclear.tasks.'\n"
"Options:\n"
"  -e, --endpoint=EP     gateway publish endpoint, e.g. tcp://gw:7100\n"
"  -j, --jwks=FILE       the gateway's published JWKS (verification keys)\n"
"  -k, --server-key=KEY  the gateway's CURVE public key: 40 Z85 characters\n"
"                        or a file holding them (e.g. gateway.public)\n"
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
"  -n, --count=N         exit after N verified messages\n"
"  -t, --timeout=MS      exit when no message (verified or refused) arrives\n"
"                        for MS milliseconds\n"
"  -q, --quiet           no stderr line per refused message (the summary\n"
"                        still counts them)\n"
"  -h, --help            this text\n"
"\n"
"stderr: one line per refused message, \"" PROG ": refused message on\n"
"TOPIC: REASON\"; \"refused: SUBTREE (not granted to agency ID)\" per\n"
"subtree our agency may not read (with -s); \"" PROG ": unrecoverable gap\n"
"on CHANNEL: seq A..B REASON\" for messages lost for good; and at exit\n"
"\"" PROG ": N delivered, M refused\" (with -s or -S also duplicates\n"
"dropped, replayed and lost).\n"
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

int main(int argc, char **argv)
{
    enum { OPT_SNAPSHOT = 256, OPT_HWM, OPT_REQ_TIMEOUT };
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"jwks", required_argument, NULL, 'j'},
        {"server-key", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'c'},
        {"service", required_argument, NULL, 's'},
        {"state", required_argument, NULL, 'S'},
        {"snapshot", no_argument, NULL, OPT_SNAPSHOT},
        {"hwm", required_argument, NULL, OPT_HWM},
        {"request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sc_client_options_t opts = {0};
    long count = 0, idle_ms = -1, num;
    int quiet = 0, c;

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
        case 'h': usage(stdout); return EXIT_OK;
        default:
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_USAGE;
        }
    }
    const char *missing = !opts.endpoint ? "-e ENDPOINT"
                          : !opts.jwks_path ? "-j JWKS"
                          : optind >= argc ? "a SUBTREE"
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
            if (pending_bytes + msg.envelope_len + 1 > sizeof outbuf) {
                int f = flush_commit(client, &pending, false);
                if (f != 0) {
                    status = f < 0 ? EXIT_ERROR : EXIT_OK;
                    break;
                }
            }
            delivered++;
            pending++;
            pending_bytes += msg.envelope_len + 1;
            if (fwrite(msg.envelope, 1, msg.envelope_len, stdout) !=
                    msg.envelope_len ||
                putchar('\n') == EOF) {
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

    sc_client_stats_t st;
    sc_client_stats(client, &st);
    if (opts.service_endpoint || opts.state_path)
        fprintf(stderr, PROG ": %" PRIu64 " delivered, %" PRIu64
                " refused, %" PRIu64 " duplicates dropped, %" PRIu64
                " replayed, %" PRIu64 " lost\n", st.delivered, st.refused,
                st.duplicates, st.replayed, st.lost);
    else
        fprintf(stderr, PROG ": %" PRIu64 " delivered, %" PRIu64
                " refused\n", st.delivered, st.refused);
    sc_client_destroy(&client);
    return status;
}
