/*
 * sectorcast-jetstream - read a sectorcast feed bridged into NATS JetStream
 * (plugins/nats_bridge) and verify every message with the gateway's JWKS,
 * exactly as sectorcast-sub does for the XPUB socket: the JWS signature
 * with a key of the JWKS, the envelope's shape, and its channel against
 * the subject (<prefix>.<channel>). Prints each verified envelope, exactly
 * as signed, as one JSON line on stdout (with --meta: wrapped with the
 * stream sequence and subject).
 *
 * Owns nothing but its command line: verification is core/common's
 * sc_envelope_verify_fields(), the same code sectorcast-sub runs.
 * Reads through an ordered consumer (no durable state on the server).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <nats/nats.h>

#include "common/channel.h"
#include "common/envelope.h"
#include "common/jwks.h"

#define PROG "sectorcast-jetstream"
#define MAX_CHANNELS 4096 /* bound of the per-channel order check */

static void usage(FILE *out)
{
    fprintf(out,
"Usage: " PROG " -s URL[,URL...] -j JWKS [--stream NAME] [--prefix P]\n"
"                            [--creds FILE] [--start-seq N] [-n COUNT]\n"
"                            [-t TIMEOUT_MS] [--follow] [--meta] [-q]\n"
"\n"
"Read a sectorcast feed from a NATS JetStream stream, verify every\n"
"message against the gateway's JWKS exactly as sectorcast-sub does, and\n"
"print each verified envelope as one JSON object per line on stdout,\n"
"exactly as signed. Nothing else is written to stdout.\n"
"\n"
"Options:\n"
"  -s, --servers=URLS    NATS server URLs, comma-separated\n"
"  -j, --jwks=FILE       the gateway's published JWKS\n"
"      --stream=NAME     stream name (default SECTORCAST)\n"
"      --prefix=P        subject prefix (default sectorcast): subjects are\n"
"                        P.<channel>\n"
"      --creds=FILE      NATS credentials file\n"
"      --start-seq=N     start at stream sequence N (default: the first)\n"
"  -n, --count=N         exit after N verified messages\n"
"  -t, --timeout=MS      exit when nothing arrives for MS ms (default 5000)\n"
"      --follow          keep reading after the end of the stream\n"
"                        (default: stop once caught up)\n"
"      --meta            print {\"stream_seq\":N,\"subject\":S,\"envelope\":E}\n"
"  -q, --quiet           no stderr line per refused message\n"
"  -h, --help            this text\n"
"\n"
"stderr: one line per refused message (\"" PROG ": refused stream seq N\n"
"on SUBJECT: REASON\"), per duplicate or out-of-order envelope seq of a\n"
"channel, and at exit \"" PROG ": N delivered, M refused, D duplicate,\n"
"G gap\".\n"
"\n"
"Exit status: 0 done (caught up, -n reached, or SIGINT); 1 error (JWKS,\n"
"connection, stream); 2 usage; 3 timeout with nothing read; 6 a message\n"
"was refused.\n");
}

typedef struct chan_seen {
    char *channel;
    char *epoch;
    uint64_t seq;
} chan_seen_t;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    const char *servers = NULL, *jwks_path = NULL, *stream = "SECTORCAST",
               *prefix = "sectorcast", *creds = NULL;
    long count = 0, timeout_ms = 5000;
    uint64_t start_seq = 0;
    bool follow = false, meta = false, quiet = false;
    static const struct option lo[] = {
        {"servers", required_argument, NULL, 's'},
        {"jwks", required_argument, NULL, 'j'},
        {"stream", required_argument, NULL, 'S'},
        {"prefix", required_argument, NULL, 'P'},
        {"creds", required_argument, NULL, 'C'},
        {"start-seq", required_argument, NULL, 'a'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"follow", no_argument, NULL, 'f'},
        {"meta", no_argument, NULL, 'm'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "s:j:n:t:qh", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's': servers = optarg; break;
        case 'j': jwks_path = optarg; break;
        case 'S': stream = optarg; break;
        case 'P': prefix = optarg; break;
        case 'C': creds = optarg; break;
        case 'a':
            errno = 0;
            start_seq = strtoull(optarg, &end, 10);
            if (errno || !end || *end || start_seq == 0) {
                fprintf(stderr, PROG ": --start-seq must be >= 1\n");
                return 2;
            }
            break;
        case 'n':
            count = strtol(optarg, &end, 10);
            if (!end || *end || count < 1) {
                fprintf(stderr, PROG ": -n must be >= 1\n");
                return 2;
            }
            break;
        case 't':
            timeout_ms = strtol(optarg, &end, 10);
            if (!end || *end || timeout_ms < 1) {
                fprintf(stderr, PROG ": -t must be >= 1\n");
                return 2;
            }
            break;
        case 'f': follow = true; break;
        case 'm': meta = true; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return 2;
        }
    }
    if (!servers || !jwks_path || optind != argc) {
        fprintf(stderr, PROG ": %s. Try '" PROG " --help'.\n",
                optind != argc ? "unexpected argument"
                : !servers     ? "missing -s URLS"
                               : "missing -j JWKS");
        return 2;
    }
    char err[512];
    sc_jwks_t *jwks = sc_jwks_load(jwks_path, err, sizeof err);
    if (!jwks) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    int rc = 1;
    /* -s a,b,c: every URL is tried (and reconnected to) */
    char *list = strdup(servers), *save = NULL;
    const char *urls[16];
    int n_urls = 0;
    for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && n_urls < 16;
         t = strtok_r(NULL, ",", &save))
        urls[n_urls++] = t;
    natsStatus s = n_urls ? natsOptions_Create(&opts) : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, urls, n_urls);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK && creds)
        s = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, opts);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000; /* a cluster electing a leader answers late */
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) {
        fprintf(stderr, PROG ": cannot connect to %s: %s\n", servers,
                natsStatus_GetText(s));
        goto out;
    }
    /* where the stream ends now: without --follow, stop there */
    uint64_t last_seq = 0;
    {
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        /* a cluster that lost a node answers after its elections:
         * timeouts and "no responders" are retried for up to 60 s */
        for (int i = 0; i < 6; i++) {
            s = js_GetStreamInfo(&si, js, stream, NULL, &je);
            if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS)
                break;
            sleep(2);
        }
        if (s != NATS_OK) {
            fprintf(stderr, PROG ": stream '%s': %s\n", stream,
                    s == NATS_NOT_FOUND ? "not found" : natsStatus_GetText(s));
            goto out;
        }
        last_seq = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
    }
    char subject[256];
    snprintf(subject, sizeof subject, "%s.>", prefix);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    if (start_seq) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = start_seq;
    }
    jsErrCode je = 0;
    for (int i = 0; i < 6; i++) {
        s = js_SubscribeSync(&sub, js, subject, NULL, &so, &je);
        if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS)
            break;
        sub = NULL;
        sleep(2);
    }
    if (s != NATS_OK) {
        fprintf(stderr, PROG ": cannot consume %s from stream '%s': %s\n",
                subject, stream, natsStatus_GetText(s));
        goto out;
    }

    uint64_t delivered = 0, refused = 0, dups = 0, gaps = 0;
    chan_seen_t *seen = calloc(MAX_CHANNELS, sizeof *seen);
    size_t n_seen = 0;
    size_t plen = strlen(prefix);
    bool caught_up = last_seq == 0 && !follow;
    rc = 0;
    while (!stop_flag && !caught_up && seen) {
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, timeout_ms);
        if (s == NATS_TIMEOUT) {
            fprintf(stderr, PROG ": nothing for %ld ms\n", timeout_ms);
            rc = delivered ? 0 : 3;
            break;
        }
        if (s != NATS_OK) {
            fprintf(stderr, PROG ": %s\n", natsStatus_GetText(s));
            rc = 1;
            break;
        }
        uint64_t sseq = 0;
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, msg) == NATS_OK) {
            sseq = md->Sequence.Stream;
            jsMsgMetaData_Destroy(md);
        }
        const char *subj = natsMsg_GetSubject(msg);
        const char *data = natsMsg_GetData(msg);
        int dlen = natsMsg_GetDataLength(msg);
        /* topic "<channel>." from "<prefix>.<channel>" */
        char topic[SC_CHANNEL_MAX + 2];
        size_t sl = subj ? strlen(subj) : 0;
        int tl = -1;
        if (sl > plen + 1 && strncmp(subj, prefix, plen) == 0 &&
            subj[plen] == '.')
            tl = sc_channel_topic(subj + plen + 1, topic, sizeof topic);
        sc_envelope_fields_t f = {0};
        char kid[SC_KID_LEN + 1];
        int vr = tl > 0 ? sc_envelope_verify_fields(jwks, topic, (size_t)tl,
                                                    data, (size_t)dlen, &f,
                                                    kid, err, sizeof err)
                        : -1;
        if (tl <= 0)
            snprintf(err, sizeof err, "subject is not %s.<channel>", prefix);
        if (vr != 0) {
            refused++;
            rc = 6;
            if (!quiet)
                fprintf(stderr, PROG ": refused stream seq %" PRIu64
                        " on %s: %s\n", sseq, subj ? subj : "?", err);
        } else {
            const char *ch = f.channel, *ep = f.epoch;
            uint64_t seq = f.seq;
            chan_seen_t *cs = NULL;
            for (size_t i = 0; i < n_seen && !cs; i++)
                if (strcmp(seen[i].channel, ch) == 0)
                    cs = &seen[i];
            if (!cs && n_seen < MAX_CHANNELS) {
                cs = &seen[n_seen++];
                cs->channel = strdup(ch);
                cs->epoch = strdup(ep ? ep : "");
            }
            bool same_epoch = cs && ep && cs->epoch && !strcmp(cs->epoch, ep);
            if (cs && same_epoch && cs->seq && seq <= cs->seq) {
                dups++;
                if (!quiet)
                    fprintf(stderr, PROG ": duplicate or out of order: %s "
                            "seq %" PRIu64 " after %" PRIu64 "\n",
                            ch, seq, cs->seq);
            } else if (cs && same_epoch && cs->seq && seq != cs->seq + 1) {
                gaps++;
                if (!quiet)
                    fprintf(stderr, PROG ": gap on %s: seq %" PRIu64
                            "..%" PRIu64 " not in the stream\n",
                            ch, cs->seq + 1, seq - 1);
            }
            if (cs) {
                if (!same_epoch) {
                    free(cs->epoch);
                    cs->epoch = strdup(ep ? ep : "");
                }
                if (seq > cs->seq || !same_epoch)
                    cs->seq = seq;
            }
            if (meta)
                printf("{\"stream_seq\":%" PRIu64 ",\"subject\":\"%s\","
                       "\"envelope\":%.*s}\n",
                       sseq, subj, (int)f.text_len, f.text);
            else
                printf("%.*s\n", (int)f.text_len, f.text);
            delivered++;
        }
        sc_envelope_fields_free(&f);
        natsMsg_Destroy(msg);
        if (count && (long)delivered >= count)
            break;
        if (!follow && sseq >= last_seq)
            caught_up = true;
    }
    if (fflush(stdout) != 0 && errno != EPIPE)
        rc = 1;
    fprintf(stderr, PROG ": %" PRIu64 " delivered, %" PRIu64 " refused, %"
            PRIu64 " duplicate, %" PRIu64 " gap\n", delivered, refused, dups,
            gaps);
    for (size_t i = 0; seen && i < n_seen; i++) {
        free(seen[i].channel);
        free(seen[i].epoch);
    }
    free(seen);
out:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    free(list);
    nats_Close();
    sc_jwks_destroy(&jwks);
    return rc;
}
