/*
 * bench_sub.c - the benchmark's subscribers (bench/bench.py): K threads,
 * each one subscriber of the messages of tests/plugins/load.c.
 *
 *   bench_sub endpoint=tcp://.. server_key=FILE client=BASE subtree=S.
 *             subs=K count=N [verify=1] [jwks=FILE] [service=tcp://..]
 *             [verify_threads=1] [idle_ms=10000] [dump=FILE]
 *
 * verify=1: each thread is a libsectorcast client (sc_client_recv:
 * CURVE, JWS verified, per-channel order, gap repair through `service`),
 * checking signatures on `verify_threads` threads.
 * verify=0: a bare ZeroMQ SUB with CURVE that only decodes the JWS payload
 * (base64url, with libsectorcast's table decoder) to read the timestamp:
 * what the broker alone delivers.
 *
 * Prints "ready" once every thread has received a message (warm-up
 * messages, n = 0, are not counted), then one JSON object when every
 * thread has seen message n = N or has heard nothing for idle_ms:
 * counted messages received (min over threads), the end-to-end rate
 * (N / (last arrival at the slowest thread - publish time of n = 1)), the
 * publish rate (n = 1..N publish times), one-way latency percentiles over
 * every thread (publish time inside the data, CLOCK_MONOTONIC shared with
 * the broker on this machine), refused/gaps/repaired counts. dump=FILE
 * writes "publish_ns latency_ns" for every counted message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_common.h"
#include "common/codec.h"
#include "common/keys.h"
#include <sectorcast/client.h>

typedef struct sub {
    pthread_t th;
    int index;
    int64_t *lat;     /* count entries */
    int64_t *pubt;    /* publish times, with dump= only */
    size_t n_lat;
    long long received;   /* counted messages */
    long long refused, gaps, repaired, errors;
    int64_t first_pub, last_pub, last_arrival;
    int got_last;
    int ready;
    char err[256];
} sub_t;

static const char *g_endpoint, *g_server_key, *g_client, *g_subtree, *g_jwks,
    *g_service;
static long long g_count, g_idle_ms;
static int g_verify;
static int g_verify_threads;
static atomic_int g_ready;

/* the numbers after "bench_t": and "n": in a JSON text */
static int parse_data(const char *s, size_t len, int64_t *t, long long *n)
{
    const char *p = memmem(s, len, "\"bench_t\":", 10);
    if (!p)
        return -1;
    *t = strtoll(p + 10, NULL, 10);
    const char *q = memmem(p, len - (size_t)(p - s), "\"n\":", 4);
    if (!q)
        return -1;
    *n = strtoll(q + 4, NULL, 10);
    return 0;
}

/* one message taken in; returns 1 when it was the last */
static int take(sub_t *s, const char *data, size_t len)
{
    int64_t now = bench_now_ns(), t;
    long long n;
    if (parse_data(data, len, &t, &n) != 0)
        return 0;
    if (!s->ready) {
        s->ready = 1;
        atomic_fetch_add(&g_ready, 1);
    }
    if (n < 1)
        return 0;
    if (n == 1)
        s->first_pub = t;
    if (n == g_count)
        s->last_pub = t;
    s->last_arrival = now;
    if (s->n_lat < (size_t)g_count) {
        if (s->pubt)
            s->pubt[s->n_lat] = t;
        s->lat[s->n_lat++] = now - t;
    }
    s->received++;
    return n >= g_count;
}

static void *run_verify(void *arg)
{
    sub_t *s = arg;
    sc_client_options_t o = {.endpoint = g_endpoint,
                             .jwks_path = g_jwks,
                             .server_public_key = g_server_key,
                             .client_key_base = g_client,
                             .service_endpoint = g_service,
                             .connect_timeout_ms = 20000,
                             .request_timeout_ms = 20000,
                             .verify_threads = g_verify_threads};
    sc_client_t *c = sc_client_new(&o, s->err, sizeof s->err);
    if (!c) {
        s->errors++;
        return NULL;
    }
    if (sc_client_subscribe(c, g_subtree, s->err, sizeof s->err) != 0) {
        s->errors++;
        sc_client_destroy(&c);
        return NULL;
    }
    for (;;) {
        sc_message_t m;
        int rc = sc_client_recv(c, &m, (int)g_idle_ms, s->err, sizeof s->err);
        if (rc == SC_CLIENT_MESSAGE) {
            if (take(s, m.envelope, m.envelope_len))
                break;
        } else if (rc == SC_CLIENT_TIMEOUT) {
            break;
        } else if (rc == SC_CLIENT_REFUSED) {
            s->refused++;
        } else if (rc == SC_CLIENT_GAP) {
            s->gaps++;
        } else if (rc == SC_CLIENT_AUTH || rc == SC_CLIENT_ERROR) {
            s->errors++;
            break;
        }
    }
    sc_client_stats_t st;
    sc_client_stats(c, &st);
    s->repaired = (long long)st.repaired;
    sc_client_destroy(&c);
    return NULL;
}

static void *run_raw(void *arg)
{
    sub_t *s = arg;
    char spub[41], csec[41], cpub[41], path[4096];
    void *ctx = zmq_ctx_new(), *z = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    snprintf(path, sizeof path, "%s.secret", g_client);
    if (!z || sc_curve_read(g_server_key, false, spub, s->err, sizeof s->err) ||
        sc_curve_read(path, false, csec, s->err, sizeof s->err) ||
        (snprintf(path, sizeof path, "%s.public", g_client),
         sc_curve_read(path, false, cpub, s->err, sizeof s->err))) {
        s->errors++;
        goto out;
    }
    int zero = 0, idle = (int)g_idle_ms;
    zmq_setsockopt(z, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &idle, sizeof idle);
    zmq_setsockopt(z, ZMQ_CURVE_SERVERKEY, spub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_PUBLICKEY, cpub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_SECRETKEY, csec, 40);
    zmq_setsockopt(z, ZMQ_SUBSCRIBE, g_subtree, strlen(g_subtree));
    if (zmq_connect(z, g_endpoint) != 0) {
        snprintf(s->err, sizeof s->err, "connect: %s", zmq_strerror(errno));
        s->errors++;
        goto out;
    }
    size_t cap = 1 << 20;
    unsigned char *dec = malloc(cap);
    for (;;) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, z, 0) < 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            break; /* idle */
        }
        int more = zmq_msg_more(&topic), last = 0;
        if (more && zmq_msg_recv(&body, z, 0) >= 0) {
            /* the JWS payload: between the two dots */
            const char *j = zmq_msg_data(&body);
            size_t len = zmq_msg_size(&body);
            const char *d1 = memchr(j, '.', len);
            const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - j)) : NULL;
            size_t dl = 0;
            /* libsectorcast's own decoder for public bytes (strict,
             * by table): libsodium's constant-time one took ~6 us of
             * the machine's CPU per message here */
            if (d2 && dec &&
                sc_b64url_decode_public(dec, cap, &dl, d1 + 1,
                                        (size_t)(d2 - d1 - 1)) == 0)
                last = take(s, (const char *)dec, dl);
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        if (last)
            break;
    }
    free(dec);
out:
    if (z)
        zmq_close(z);
    if (ctx)
        zmq_ctx_term(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    g_endpoint = bench_arg(argc, argv, "endpoint", NULL);
    g_server_key = bench_arg(argc, argv, "server_key", NULL);
    g_client = bench_arg(argc, argv, "client", NULL);
    g_subtree = bench_arg(argc, argv, "subtree", NULL);
    g_jwks = bench_arg(argc, argv, "jwks", NULL);
    g_service = bench_arg(argc, argv, "service", NULL);
    g_count = bench_int(argc, argv, "count", 1000);
    g_idle_ms = bench_int(argc, argv, "idle_ms", 10000);
    g_verify = (int)bench_int(argc, argv, "verify", 1);
    g_verify_threads = (int)bench_int(argc, argv, "verify_threads", 1);
    int k = (int)bench_int(argc, argv, "subs", 1);
    const char *dump = bench_arg(argc, argv, "dump", NULL);
    if (!g_endpoint || !g_server_key || !g_client || !g_subtree || k < 1 ||
        g_count < 1 || (g_verify && !g_jwks) || sodium_init() < 0) {
        fprintf(stderr, "usage: bench_sub endpoint=.. server_key=FILE "
                "client=BASE subtree=S. subs=K count=N [verify=1 jwks=FILE "
                "[service=..] [verify_threads=1]] [idle_ms=10000]\n");
        return 2;
    }
    sub_t *subs = calloc((size_t)k, sizeof *subs);
    for (int i = 0; i < k; i++) {
        subs[i].index = i;
        subs[i].lat = malloc((size_t)g_count * sizeof(int64_t));
        if (dump)
            subs[i].pubt = malloc((size_t)g_count * sizeof(int64_t));
        if (!subs[i].lat ||
            pthread_create(&subs[i].th, NULL, g_verify ? run_verify : run_raw,
                           &subs[i]) != 0) {
            fprintf(stderr, "bench_sub: cannot start thread %d\n", i);
            return 1;
        }
    }
    /* "ready" once all have a message (or some gave up) */
    int64_t t0 = bench_now_ns();
    for (;;) {
        int errs = 0;
        for (int i = 0; i < k; i++)
            errs += subs[i].errors > 0;
        if (atomic_load(&g_ready) + errs >= k)
            break;
        if (bench_now_ns() - t0 > (int64_t)g_idle_ms * 3 * 1000000) {
            fprintf(stderr, "bench_sub: only %d of %d subscribers received "
                    "a message\n", atomic_load(&g_ready), k);
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    printf("ready\n");
    fflush(stdout);

    long long min_rx = -1, refused = 0, gaps = 0, repaired = 0, errors = 0;
    int64_t first_pub = 0, last_pub = 0, last_arrival = 0;
    size_t total = 0;
    const char *err = "";
    for (int i = 0; i < k; i++) {
        pthread_join(subs[i].th, NULL);
        sub_t *s = &subs[i];
        if (min_rx < 0 || s->received < min_rx)
            min_rx = s->received;
        refused += s->refused;
        gaps += s->gaps;
        repaired += s->repaired;
        errors += s->errors;
        if (s->errors && !*err)
            err = s->err;
        if (s->first_pub && (!first_pub || s->first_pub < first_pub))
            first_pub = s->first_pub;
        if (s->last_pub > last_pub)
            last_pub = s->last_pub;
        if (s->last_arrival > last_arrival)
            last_arrival = s->last_arrival;
        total += s->n_lat;
    }
    if (dump) { /* "publish_ns latency_ns" per counted message */
        FILE *f = fopen(dump, "w");
        for (int i = 0; f && i < k; i++)
            for (size_t j = 0; subs[i].pubt && j < subs[i].n_lat; j++)
                fprintf(f, "%lld %lld\n", (long long)subs[i].pubt[j],
                        (long long)subs[i].lat[j]);
        if (f)
            fclose(f);
    }
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < k; i++) {
        memcpy(all + at, subs[i].lat, subs[i].n_lat * sizeof *all);
        at += subs[i].n_lat;
    }
    double e2e = first_pub && last_arrival > first_pub
                     ? (double)(min_rx > 0 ? min_rx : 0) * 1e9 /
                           (double)(last_arrival - first_pub)
                     : 0;
    double pub = first_pub && last_pub > first_pub
                     ? (double)(g_count - 1) * 1e9 / (double)(last_pub - first_pub)
                     : 0;
    printf("{\"subs\":%d,\"count\":%lld,\"received_min\":%lld,"
           "\"rate\":%.1f,\"pub_rate\":%.1f,\"refused\":%lld,\"gaps\":%lld,"
           "\"repaired\":%lld,\"errors\":%lld,\"error\":\"%s\",",
           k, g_count, min_rx, e2e, pub, refused, gaps, repaired, errors,
           errors ? "see stderr" : "");
    bench_print_latency(stdout, all, total);
    printf("}\n");
    if (errors)
        fprintf(stderr, "bench_sub: %s\n", err);
    return 0;
}
