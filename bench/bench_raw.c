/*
 * bench_raw.c - the benchmark's same-run baselines and service-socket
 * client (bench/bench.py). One JSON object on stdout per run.
 *
 *   bench_raw sign data_bytes=512 n=20000
 *       Build the envelope the broker would sign around data of that size
 *       (sc_envelope_sign), then time bare libsodium Ed25519 over the same
 *       signing input, on one core: sign (crypto_sign_detached) and verify
 *       (crypto_sign_verify_detached). Reports the JWS and topic sizes, so
 *       the raw transport runs with the same frame sizes.
 *
 *   bench_raw curve topic_bytes=T frame_bytes=F subs=K n=N rate=R
 *       Raw libzmq PUB/SUB with CURVE on tcp loopback, frames [topic][body]
 *       of those sizes, one PUB and K SUB threads (own contexts). rate = 0:
 *       as fast as possible, no high-water mark (nothing dropped); else R
 *       per second paced on a 1 ms tick like tests/plugins/load.c. The body
 *       carries the send time: rate and one-way latency as bench_sub, and
 *       the CPU time of the whole process (publisher, subscribers and
 *       their libzmq threads: both ends of the transport) per message.
 *
 *   bench_raw sqlite dir=D blob_bytes=1256 rows=1 n=5000 sync=normal rate=0
 *                    [page_size=4096]
 *       Raw SQLite, the floor under the journal: a fresh D/raw.db in WAL
 *       mode (synchronous NORMAL or FULL; pages of page_size bytes, the
 *       bench passes 8192 like a new journal), one rowid table (channel,
 *       seq, blob) with the unique (channel, seq) index any replayable
 *       journal needs, n transactions of `rows` INSERTs of a blob of that
 *       size each (BEGIN IMMEDIATE .. COMMIT), SQLite's own checkpoints;
 *       rate = 0: back to back, else R transactions per second on a 1 ms
 *       tick (a transaction on an idle machine costs more than one in a
 *       loop: caches, CPU wake-up).
 *       Reports rows per second, the time per transaction (p50/p99) and
 *       the bytes on disk per row (db + wal after a final checkpoint).
 *
 *   bench_raw hop rate=1000 n=5000
 *       One thread hand-off, the wake-up a message pays to go from one
 *       thread to another: PUSH -> PULL over inproc in one context, the
 *       receiver blocked in zmq_msg_recv, paced on a 1 ms tick like the
 *       load plugin. Reports the one-way latency as bench_sub.
 *
 *   bench_raw replay service=tcp://.. server_key=FILE client=BASE
 *             channel=C [from=1] [duration_ms=0] [page=N] [pace=R]
 *       Replay C from `from` to its head through the service socket
 *       (DEALER, pages as the gateway caps them), counting messages
 *       without verifying; with duration_ms, start again from `from` until
 *       that much time has passed; page: messages asked for per request
 *       (the gateway caps it at limits.replay_batch); pace: at most R
 *       messages per second on average, the client waiting before a
 *       request. Reports messages per second.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zmq.h>

#include "bench_common.h"
#include "common/envelope.h"
#include "common/keys.h"

/* ------------------------------------------------------------ sign */

static int run_sign(int argc, char **argv)
{
    long long bytes = bench_int(argc, argv, "data_bytes", 512);
    long long n = bench_int(argc, argv, "n", 20000);
    char err[256];
    if (bytes < 64 || n < 1 || sodium_init() < 0)
        return 2;
    /* the data of tests/plugins/load.c */
    char *text = malloc((size_t)bytes + 1);
    int k = snprintf(text, (size_t)bytes + 1,
                     "{\"bench_t\":%lld,\"n\":%d,\"pad\":\"",
                     (long long)bench_now_ns(), 1);
    memset(text + k, 'x', (size_t)(bytes - k - 2));
    memcpy(text + bytes - 2, "\"}", 3);
    json_t *data = json_loads(text, 0, NULL);
    json_t *source = json_pack("{s:s, s:s, s:s}", "gateway", "gw-bench",
                               "plugin", "load", "sector", "bench");
    sc_sigkey_t *key = sc_sigkey_generate(err, sizeof err);
    if (!data || !source || !key)
        return 1;
    sc_envelope_in_t in = {.channel = "bench.load.c",
                           .epoch = "0123456789abcdef0123456789abcdef",
                           .seq = 123456,
                           .kind = "bench.load",
                           .key = "k42",
                           .source = source,
                           .data = data};
    char *jws;
    size_t len;
    if (sc_envelope_sign(&in, key, &jws, &len, err, sizeof err) != 0) {
        fprintf(stderr, "bench_raw: %s\n", err);
        return 1;
    }
    const char *dot = strrchr(jws, '.');
    size_t input = (size_t)(dot - jws);
    unsigned char pk[32], sk[64], sig[64];
    crypto_sign_keypair(pk, sk);
    int64_t t0 = bench_now_ns();
    for (long long i = 0; i < n; i++)
        crypto_sign_detached(sig, NULL, (const unsigned char *)jws, input, sk);
    double sign_s = (double)(bench_now_ns() - t0) / 1e9;
    t0 = bench_now_ns();
    for (long long i = 0; i < n; i++)
        if (crypto_sign_verify_detached(sig, (const unsigned char *)jws, input,
                                        pk) != 0)
            return 1;
    double verify_s = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"data_bytes\":%lld,\"jws_bytes\":%zu,\"input_bytes\":%zu,"
           "\"topic_bytes\":%zu,\"sign_rate\":%.1f,\"verify_rate\":%.1f}\n",
           bytes, len, input, strlen(in.channel) + 1, (double)n / sign_s,
           (double)n / verify_s);
    free(jws);
    free(text);
    json_decref(data);
    json_decref(source);
    sc_sigkey_destroy(&key);
    return 0;
}

/* ------------------------------------------------------------ curve */

typedef struct csub {
    pthread_t th;
    const char *endpoint, *server_pub;
    int64_t *lat;
    size_t n_lat;
    long long received;
    int64_t first_send, last_arrival;
    int ready, failed;
} csub_t;

static long long c_n;
static size_t c_topic_bytes;
static atomic_int c_ready;

static void *curve_sub(void *arg)
{
    csub_t *s = arg;
    char pub[41], sec[41];
    zmq_curve_keypair(pub, sec);
    void *ctx = zmq_ctx_new(), *z = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, idle = 10000;
    zmq_setsockopt(z, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &idle, sizeof idle);
    zmq_setsockopt(z, ZMQ_CURVE_SERVERKEY, s->server_pub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(z, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(z, s->endpoint) != 0)
        s->failed = 1;
    while (!s->failed) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, z, 0) < 0 || zmq_msg_recv(&body, z, 0) < 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            break;
        }
        int64_t now = bench_now_ns(), t = 0, n = 0;
        if (zmq_msg_size(&body) >= 16) {
            memcpy(&t, zmq_msg_data(&body), 8);
            memcpy(&n, (char *)zmq_msg_data(&body) + 8, 8);
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        if (!s->ready) {
            s->ready = 1;
            atomic_fetch_add(&c_ready, 1);
        }
        if (n < 1)
            continue;
        if (n == 1)
            s->first_send = t;
        s->last_arrival = now;
        if (s->n_lat < (size_t)c_n)
            s->lat[s->n_lat++] = now - t;
        s->received++;
        if (n >= c_n)
            break;
    }
    zmq_close(z);
    zmq_ctx_term(ctx);
    return NULL;
}

static void curve_send(void *z, int64_t n, size_t frame_bytes, char *topic,
                       char *body)
{
    int64_t t = bench_now_ns();
    memcpy(body, &t, 8);
    memcpy(body + 8, &n, 8);
    zmq_send(z, topic, c_topic_bytes, ZMQ_SNDMORE);
    zmq_send(z, body, frame_bytes, 0);
}

static int run_curve(int argc, char **argv)
{
    c_topic_bytes = (size_t)bench_int(argc, argv, "topic_bytes", 13);
    size_t frame_bytes = (size_t)bench_int(argc, argv, "frame_bytes", 1238);
    int k = (int)bench_int(argc, argv, "subs", 1);
    c_n = bench_int(argc, argv, "n", 20000);
    long long rate = bench_int(argc, argv, "rate", 0);
    if (k < 1 || c_n < 1 || frame_bytes < 16 || c_topic_bytes < 1)
        return 2;
    char pub[41], sec[41], endpoint[256];
    zmq_curve_keypair(pub, sec);
    void *ctx = zmq_ctx_new(), *z = zmq_socket(ctx, ZMQ_PUB);
    int one = 1, zero = 0;
    zmq_setsockopt(z, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(z, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(z, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(z, "tcp://127.0.0.1:*") != 0) {
        fprintf(stderr, "bench_raw: bind: %s\n", zmq_strerror(errno));
        return 1;
    }
    size_t el = sizeof endpoint;
    zmq_getsockopt(z, ZMQ_LAST_ENDPOINT, endpoint, &el);
    csub_t *subs = calloc((size_t)k, sizeof *subs);
    for (int i = 0; i < k; i++) {
        subs[i].endpoint = endpoint;
        subs[i].server_pub = pub;
        subs[i].lat = malloc((size_t)c_n * sizeof(int64_t));
        pthread_create(&subs[i].th, NULL, curve_sub, &subs[i]);
    }
    char *topic = malloc(c_topic_bytes), *body = calloc(1, frame_bytes);
    memset(topic, 't', c_topic_bytes);
    memset(body + 16, 'x', frame_bytes - 16);
    int64_t t0 = bench_now_ns();
    while (atomic_load(&c_ready) < k &&
           bench_now_ns() - t0 < 30 * (int64_t)1000000000) {
        curve_send(z, 0, frame_bytes, topic, body);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    t0 = bench_now_ns();
    for (long long i = 1; i <= c_n; i++) {
        bench_pace(t0, i, rate);
        curve_send(z, i, frame_bytes, topic, body);
    }
    long long min_rx = -1;
    int64_t first = 0, last = 0;
    size_t total = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(subs[i].th, NULL);
        if (min_rx < 0 || subs[i].received < min_rx)
            min_rx = subs[i].received;
        if (subs[i].first_send && (!first || subs[i].first_send < first))
            first = subs[i].first_send;
        if (subs[i].last_arrival > last)
            last = subs[i].last_arrival;
        total += subs[i].n_lat;
    }
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                   (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                   (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
                            ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < k; i++) {
        memcpy(all + at, subs[i].lat, subs[i].n_lat * sizeof *all);
        at += subs[i].n_lat;
    }
    printf("{\"subs\":%d,\"count\":%lld,\"received_min\":%lld,\"rate\":%.1f,"
           "\"cpu_us_per_msg\":%.2f,",
           k, c_n, min_rx,
           last > first && min_rx > 0 ? (double)min_rx * 1e9 / (double)(last - first) : 0.0,
           cpu_s * 1e6 / (double)c_n);
    bench_print_latency(stdout, all, total);
    printf("}\n");
    zmq_close(z);
    zmq_ctx_term(ctx);
    return 0;
}

/* ------------------------------------------------------------ sqlite */

static int run_sqlite(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "dir", NULL);
    long long blob = bench_int(argc, argv, "blob_bytes", 1256);
    long long rows = bench_int(argc, argv, "rows", 1);
    long long n = bench_int(argc, argv, "n", 5000);
    const char *sync = bench_arg(argc, argv, "sync", "normal");
    long long rate = bench_int(argc, argv, "rate", 0);
    long long page_size = bench_int(argc, argv, "page_size", 4096);
    char path[4096], sql[320];
    if (!dir || blob < 1 || rows < 1 || n < 1 ||
        (strcmp(sync, "normal") && strcmp(sync, "full")) || sodium_init() < 0)
        return 2;
    snprintf(path, sizeof path, "%s/raw.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%lld; PRAGMA journal_mode=WAL;"
             " PRAGMA synchronous=%s;"
             "CREATE TABLE t(id INTEGER PRIMARY KEY, ch INTEGER NOT NULL,"
             " seq INTEGER NOT NULL, blob BLOB NOT NULL);"
             "CREATE UNIQUE INDEX t_seq ON t(ch, seq);", page_size, sync);
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO t(ch, seq, blob) VALUES(1,?,?)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_raw: %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    unsigned char *b = malloc((size_t)blob);
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    randombytes_buf(b, (size_t)blob);
    long long seq = 0;
    int rc = 0;
    int64_t t0 = bench_now_ns();
    for (long long i = 0; i < n && !rc; i++) {
        bench_pace(t0, i + 1, rate);
        int64_t t = bench_now_ns();
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (long long r = 0; r < rows && !rc; r++) {
            sqlite3_bind_int64(ins, 1, ++seq);
            sqlite3_bind_blob(ins, 2, b, (int)blob, SQLITE_STATIC);
            rc = sqlite3_step(ins) == SQLITE_DONE ? 0 : 1;
            sqlite3_reset(ins);
        }
        if (!rc)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        lat[i] = bench_now_ns() - t;
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (rc)
        fprintf(stderr, "bench_raw: %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    long long bytes = bench_file_bytes(path) + bench_file_bytes(wal);
    printf("{\"rows\":%lld,\"transactions\":%lld,\"rate\":%.1f,"
           "\"bytes_per_row\":%.1f,", rows, n,
           s > 0 ? (double)(n * rows) / s : 0.0,
           (double)bytes / (double)(n * rows));
    bench_print_latency(stdout, lat, (size_t)n);
    printf("}\n");
    sqlite3_finalize(ins);
    sqlite3_close(db);
    free(b);
    free(lat);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------ hop */

typedef struct hop {
    void *ctx;
    long long n;
    int64_t *lat;
    size_t n_lat;
} hop_t;

static void *hop_recv(void *arg)
{
    hop_t *h = arg;
    void *z = zmq_socket(h->ctx, ZMQ_PULL);
    int zero = 0;
    zmq_setsockopt(z, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_connect(z, "inproc://hop");
    for (;;) {
        int64_t v[2];
        if (zmq_recv(z, v, sizeof v, 0) != (int)sizeof v)
            break;
        int64_t now = bench_now_ns();
        if (v[1] < 1)
            continue;
        if (h->n_lat < (size_t)h->n)
            h->lat[h->n_lat++] = now - v[0];
        if (v[1] >= h->n)
            break;
    }
    zmq_close(z);
    return NULL;
}

static int run_hop(int argc, char **argv)
{
    long long rate = bench_int(argc, argv, "rate", 1000);
    hop_t h = {.n = bench_int(argc, argv, "n", 5000)};
    if (rate < 1 || h.n < 1)
        return 2;
    h.ctx = zmq_ctx_new();
    h.lat = malloc((size_t)h.n * sizeof *h.lat);
    void *z = zmq_socket(h.ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(z, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(z, "inproc://hop") != 0)
        return 1;
    pthread_t th;
    pthread_create(&th, NULL, hop_recv, &h);
    int64_t t0 = bench_now_ns();
    for (long long i = 1; i <= h.n; i++) {
        bench_pace(t0, i, rate);
        int64_t v[2] = {bench_now_ns(), i};
        zmq_send(z, v, sizeof v, 0);
    }
    pthread_join(th, NULL);
    printf("{\"count\":%lld,\"rate\":%lld,", h.n, rate);
    bench_print_latency(stdout, h.lat, h.n_lat);
    printf("}\n");
    zmq_close(z);
    zmq_ctx_term(h.ctx);
    free(h.lat);
    return 0;
}

/* ------------------------------------------------------------ replay */

static int run_replay(int argc, char **argv)
{
    const char *service = bench_arg(argc, argv, "service", NULL);
    const char *server_key = bench_arg(argc, argv, "server_key", NULL);
    const char *client = bench_arg(argc, argv, "client", NULL);
    const char *channel = bench_arg(argc, argv, "channel", NULL);
    long long from = bench_int(argc, argv, "from", 1);
    long long duration_ms = bench_int(argc, argv, "duration_ms", 0);
    long long page = bench_int(argc, argv, "page", 100000);
    long long pace = bench_int(argc, argv, "pace", 0);
    char spub[41], csec[41], cpub[41], path[4096], err[256];
    if (!service || !server_key || !client || !channel)
        return 2;
    snprintf(path, sizeof path, "%s.secret", client);
    if (sc_curve_read(server_key, false, spub, err, sizeof err) ||
        sc_curve_read(path, false, csec, err, sizeof err) ||
        (snprintf(path, sizeof path, "%s.public", client),
         sc_curve_read(path, false, cpub, err, sizeof err))) {
        fprintf(stderr, "bench_raw: %s\n", err);
        return 1;
    }
    void *ctx = zmq_ctx_new(), *z = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, tmo = 30000;
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(z, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(z, ZMQ_CURVE_SERVERKEY, spub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_PUBLICKEY, cpub, 40);
    zmq_setsockopt(z, ZMQ_CURVE_SECRETKEY, csec, 40);
    if (zmq_connect(z, service) != 0)
        return 1;
    long long count = 0, requests = 0, passes = 0;
    int64_t t0 = bench_now_ns();
    int failed = 0;
    do {
        long long next = from;
        int more = 1;
        while (more && !failed) {
            char req[512], id[32];
            int idl = snprintf(id, sizeof id, "r%lld", requests++);
            int rl = snprintf(req, sizeof req,
                              "{\"channel\":\"%s\",\"from\":%lld,"
                              "\"limit\":%lld}", channel, next, page);
            /* pace=R: no more than R messages per second on average */
            bench_pace(t0, count + 1, pace);
            zmq_send(z, id, (size_t)idl, ZMQ_SNDMORE);
            zmq_send(z, "replay", 6, ZMQ_SNDMORE);
            zmq_send(z, req, (size_t)rl, 0);
            for (;;) {
                zmq_msg_t f[4];
                int nf = 0, ok = 1;
                do {
                    if (nf == 4) { /* unexpected shape: drain */
                        zmq_msg_t x;
                        zmq_msg_init(&x);
                        zmq_msg_recv(&x, z, 0);
                        int m = zmq_msg_more(&x);
                        zmq_msg_close(&x);
                        if (!m)
                            break;
                        continue;
                    }
                    zmq_msg_init(&f[nf]);
                    if (zmq_msg_recv(&f[nf], z, 0) < 0) {
                        ok = 0;
                        zmq_msg_close(&f[nf]);
                        break;
                    }
                    nf++;
                } while (zmq_msg_more(&f[nf - 1]));
                if (!ok) {
                    fprintf(stderr, "bench_raw: replay: no answer within "
                            "30 s\n");
                    failed = 1;
                    for (int i = 0; i < nf; i++)
                        zmq_msg_close(&f[i]);
                    break;
                }
                int done = 0;
                if (nf >= 2 && zmq_msg_size(&f[1]) == 3 &&
                    !memcmp(zmq_msg_data(&f[1]), "msg", 3)) {
                    count++;
                } else if (nf >= 3 && zmq_msg_size(&f[1]) == 3 &&
                           !memcmp(zmq_msg_data(&f[1]), "end", 3)) {
                    json_t *o = json_loadb(zmq_msg_data(&f[2]),
                                           zmq_msg_size(&f[2]), 0, NULL);
                    next = (long long)json_integer_value(json_object_get(o, "next"));
                    more = json_is_true(json_object_get(o, "more"));
                    json_decref(o);
                    done = 1;
                } else {
                    fprintf(stderr, "bench_raw: replay: %.*s\n",
                            nf >= 3 ? (int)zmq_msg_size(&f[2]) : 0,
                            nf >= 3 ? (char *)zmq_msg_data(&f[2]) : "");
                    failed = 1;
                    done = 1;
                }
                for (int i = 0; i < nf; i++)
                    zmq_msg_close(&f[i]);
                if (done)
                    break;
            }
        }
        passes++;
    } while (!failed && duration_ms > 0 &&
             bench_now_ns() - t0 < duration_ms * 1000000);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"count\":%lld,\"requests\":%lld,\"passes\":%lld,"
           "\"seconds\":%.3f,\"rate\":%.1f,\"failed\":%d}\n",
           count, requests, passes, s, s > 0 ? (double)count / s : 0.0,
           failed);
    zmq_close(z);
    zmq_ctx_term(ctx);
    return failed;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "sign"))
        return run_sign(argc, argv);
    if (!strcmp(mode, "curve"))
        return run_curve(argc, argv);
    if (!strcmp(mode, "replay"))
        return run_replay(argc, argv);
    if (!strcmp(mode, "sqlite"))
        return run_sqlite(argc, argv);
    if (!strcmp(mode, "hop"))
        return run_hop(argc, argv);
    fprintf(stderr, "usage: bench_raw sign|curve|sqlite|hop|replay "
            "key=value...\n"
            "(see the comment at the top of bench/bench_raw.c)\n");
    return 2;
}
