/*
 * bench_core.c - what each stage of the publish pipeline costs, each beside
 * a baseline measured in the same run:
 *
 *   sign      sc_envelope_sign (build envelope + JWS EdDSA)  vs  raw
 *             crypto_sign_detached over the same number of bytes
 *   verify    sc_envelope_verify (JWS + envelope checks)     vs  raw
 *             crypto_sign_verify_detached
 *   journal   sc_journal append, groups of 100, durability normal and full
 *             vs  raw SQLite INSERTs of the same rows in one transaction
 *             per group (same pragmas)
 *   transport [topic][jws] over ZeroMQ PUB/SUB with CURVE on tcp loopback,
 *             sectorcast frames vs raw frames of the same size: a sanity
 *             check that our frame layout costs nothing extra
 *
 * Prints one line per stage: ops/s of ours, ops/s of the baseline, ratio.
 * Usage: bench_core [N]   (default N = 20000)
 */
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker/journal.h"
#include "common/envelope.h"
#include "common/jwks.h"
#include "common/keys.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, long n, double ours, double base)
{
    double a = (double)n / ours, b = (double)n / base;
    printf("%-42s %9.0f ops/s   baseline %9.0f ops/s   ratio %.2f\n", what,
           a, b, a / b);
}

static json_t *sample_data(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "id",
                     "KUS-EN-NUC-003", "subsector", "nuclear", "title",
                     "SMR main components: joint manufacturing", "status",
                     "in-progress", "milestones", "title",
                     "Factory acceptance test", "due", "2027-06-30");
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    if (n < 100)
        n = 100;
    if (sodium_init() < 0)
        return 1;
    char err[512];
    sc_sigkey_t *key = sc_sigkey_generate(err, sizeof err);
    sc_jwks_t *jwks = sc_jwks_new();
    if (!key || !jwks || sc_jwks_add(jwks, sc_sigkey_public(key)) != 0) {
        fprintf(stderr, "bench: key setup failed: %s\n", err);
        return 1;
    }
    json_t *data = sample_data();
    json_t *source = json_pack("{s:s, s:s, s:s}", "gateway", "bench",
                               "plugin", "energy", "sector", "energy");
    char **jws = calloc((size_t)n, sizeof *jws);
    size_t *len = calloc((size_t)n, sizeof *len);
    if (!jws || !len)
        return 1;

    printf("sectorcast core benchmark, N = %ld, Ed25519 via libsodium %s\n",
           n, sodium_version_string());

    /* sign */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        sc_envelope_in_t in = {.channel = "energy.nuclear.tasks",
                               .epoch = "0123456789abcdef0123456789abcdef",
                               .seq = (uint64_t)i + 1,
                               .kind = "task.updated",
                               .key = "KUS-EN-NUC-003",
                               .source = source,
                               .data = data};
        if (sc_envelope_sign(&in, key, &jws[i], &len[i], err, sizeof err)) {
            fprintf(stderr, "bench: sign: %s\n", err);
            return 1;
        }
    }
    double ours = now_s() - t0;
    unsigned char pk[32], sk[64], sig[64];
    crypto_sign_keypair(pk, sk);
    t0 = now_s();
    for (long i = 0; i < n; i++)
        crypto_sign_detached(sig, NULL, (const unsigned char *)jws[i],
                             len[i] - 87, sk);
    double base = now_s() - t0;
    report("sign (envelope+JWS vs raw Ed25519)", n, ours, base);

    /* verify */
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        json_t *env = NULL;
        if (sc_envelope_verify(jwks, "energy.nuclear.tasks.", 21, jws[i],
                               len[i], &env, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench: verify: %s\n", err);
            return 1;
        }
        json_decref(env);
    }
    ours = now_s() - t0;
    crypto_sign_detached(sig, NULL, (const unsigned char *)jws[0],
                         len[0] - 87, sk);
    t0 = now_s();
    for (long i = 0; i < n; i++)
        if (crypto_sign_verify_detached(sig, (const unsigned char *)jws[0],
                                        len[0] - 87, pk) != 0)
            return 1;
    base = now_s() - t0;
    report("verify (envelope+JWS vs raw)", n, ours, base);

    /* journal vs raw SQLite, both durabilities */
    for (int full = 0; full <= 1; full++) {
        char dir[] = "/tmp/sc-bench-XXXXXX";
        if (!mkdtemp(dir))
            return 1;
        sc_journal_t *j = sc_journal_open(
            dir, full ? SC_DURABILITY_FULL : SC_DURABILITY_NORMAL, err,
            sizeof err);
        if (!j) {
            fprintf(stderr, "bench: %s\n", err);
            return 1;
        }
        long jn = full ? n / 10 : n;
        t0 = now_s();
        for (long i = 0; i < jn; i += 100) {
            sc_journal_begin(j, err, sizeof err);
            for (long k = i; k < i + 100 && k < jn; k++) {
                uint64_t seq = sc_journal_next_seq(j, "energy.nuclear.tasks");
                sc_journal_append(j, "energy.nuclear.tasks", seq,
                                  "task.updated", "KUS-EN-NUC-003",
                                  "2026-11-25T00:00:00.000Z",
                                  sc_sigkey_kid(key), jws[k], len[k],
                                  err, sizeof err);
            }
            if (sc_journal_commit(j, err, sizeof err) != 0) {
                fprintf(stderr, "bench: %s\n", err);
                return 1;
            }
        }
        ours = now_s() - t0;
        sc_journal_close(&j);

        char path[128];
        snprintf(path, sizeof path, "%s/raw.db", dir);
        sqlite3 *db;
        sqlite3_open(path, &db);
        sqlite3_exec(db, full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                     NULL, NULL, NULL);
        sqlite3_exec(db, "CREATE TABLE m(c TEXT, s INTEGER, j BLOB, PRIMARY "
                         "KEY(c, s)) WITHOUT ROWID", NULL, NULL, NULL);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(db, "INSERT INTO m VALUES(?,?,?)", -1, &st, NULL);
        t0 = now_s();
        for (long i = 0; i < jn; i += 100) {
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
            for (long k = i; k < i + 100 && k < jn; k++) {
                sqlite3_bind_text(st, 1, "energy.nuclear.tasks", -1,
                                  SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, k + 1);
                sqlite3_bind_blob(st, 3, jws[k], (int)len[k], SQLITE_STATIC);
                sqlite3_step(st);
                sqlite3_reset(st);
            }
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        }
        base = now_s() - t0;
        sqlite3_finalize(st);
        sqlite3_close(db);
        report(full ? "journal, durability full (groups 100)"
                    : "journal, durability normal (groups 100)",
               jn, ours, base);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench: could not remove %s\n", dir);
    }

    /* transport: PUB/SUB with CURVE over tcp loopback */
    double tt[2];
    for (int raw = 0; raw <= 1; raw++) {
        void *ctx = zmq_ctx_new();
        void *pub = zmq_socket(ctx, ZMQ_PUB), *sub = zmq_socket(ctx, ZMQ_SUB);
        char spk[41], ssk[41], cpk[41], csk[41];
        zmq_curve_keypair(spk, ssk);
        zmq_curve_keypair(cpk, csk);
        int one = 1, hwm = 0;
        zmq_setsockopt(pub, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(pub, ZMQ_CURVE_SECRETKEY, ssk, 40);
        zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, spk, 40);
        zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, cpk, 40);
        zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, csk, 40);
        zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_bind(pub, "tcp://127.0.0.1:*");
        char ep[64];
        size_t el = sizeof ep;
        zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, ep, &el);
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "energy.", 7);
        zmq_connect(sub, ep);
        /* wait for the subscription to arrive (slow joiner) */
        char buf[8192];
        for (int tries = 0; tries < 500; tries++) {
            zmq_send(pub, "energy.sync.", 12, 0);
            zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 10) > 0) {
                zmq_recv(sub, buf, sizeof buf, 0);
                break;
            }
        }
        while (zmq_recv(sub, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            ;
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            if (raw) {
                zmq_send(pub, "energy.x", 8, ZMQ_SNDMORE);
                zmq_send(pub, jws[0], len[0], 0);
            } else {
                zmq_send(pub, "energy.nuclear.tasks.", 21, ZMQ_SNDMORE);
                zmq_send(pub, jws[i], len[i], 0);
            }
        }
        for (long i = 0; i < 2 * n; i++)
            if (zmq_recv(sub, buf, sizeof buf, 0) < 0)
                break;
        tt[raw] = now_s() - t0;
        int zero = 0;
        zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(pub);
        zmq_close(sub);
        zmq_ctx_term(ctx);
    }
    report("transport CURVE PUB/SUB (frames)", n, tt[0], tt[1]);

    for (long i = 0; i < n; i++)
        free(jws[i]);
    free(jws);
    free(len);
    json_decref(data);
    json_decref(source);
    sc_jwks_destroy(&jwks);
    sc_sigkey_destroy(&key);
    return 0;
}
