/*
 * bench_journal.c - fill a journal fast for the benchmark's start and
 * SIGHUP figures (bench/bench.py):
 *
 *   bench_journal dir=DATA_DIR key=SIGNING.jwk n=1000000 [channels=20]
 *                 [keys=500] [data_bytes=512] [group=1000] [rate=0]
 *
 * Appends n messages to DATA_DIR/journal.db through sc_journal (the
 * broker's own journal code, durability normal, groups of 1,000),
 * channels energy.bench.big.c0..c<channels-1> round robin, keys k0..
 * cycling. Every message carries the bytes of ONE JWS signed with `key`
 * (a real envelope of data_bytes of data), so the journal has the size
 * and shape of a real one at the speed of SQLite; the broker's start and
 * reload read no message, and the benchmark never replays this journal.
 * Prints {"n":..,"file_bytes":..,"jws_bytes":..} (file = db + wal).
 *
 * With group=1 rate=1000 it is the journal's side of the latency floor:
 * one message per transaction (begin, append, commit, as the core does at
 * light load) paced at 1,000/s, and it adds the transaction's p50/p99
 * (the "lat_n", "p50_us", ... fields of bench_raw), to set beside raw
 * SQLite's one-row transaction (bench_raw sqlite rows=1 rate=1000).
 */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "broker/journal.h"
#include "common/envelope.h"
#include "common/keys.h"

static long long file_size(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return bench_file_bytes(p);
}

int main(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "dir", NULL);
    const char *keyfile = bench_arg(argc, argv, "key", NULL);
    long long n = bench_int(argc, argv, "n", 1000000);
    int channels = (int)bench_int(argc, argv, "channels", 20);
    int nkeys = (int)bench_int(argc, argv, "keys", 500);
    long long bytes = bench_int(argc, argv, "data_bytes", 512);
    long long group = bench_int(argc, argv, "group", 1000);
    long long rate = bench_int(argc, argv, "rate", 0);
    char err[512];
    if (!dir || !keyfile || n < 1 || channels < 1 || nkeys < 1 ||
        bytes < 64 || group < 1 || rate < 0 || sodium_init() < 0) {
        fprintf(stderr, "usage: bench_journal dir=D key=K.jwk n=N "
                "[channels=20] [keys=500] [data_bytes=512] [group=1000] "
                "[rate=0]\n");
        return 2;
    }
    sc_sigkey_t *key = sc_sigkey_load(keyfile, true, err, sizeof err);
    if (!key) {
        fprintf(stderr, "bench_journal: %s\n", err);
        return 1;
    }
    sc_journal_process_init(); /* as sectorcastd */
    sc_journal_t *j = sc_journal_open(dir, SC_DURABILITY_NORMAL, err, sizeof err);
    if (!j) {
        fprintf(stderr, "bench_journal: %s\n", err);
        return 1;
    }
    char *text = malloc((size_t)bytes + 1);
    int k = snprintf(text, (size_t)bytes + 1,
                     "{\"bench_t\":%lld,\"n\":%d,\"pad\":\"",
                     (long long)bench_now_ns(), 1);
    memset(text + k, 'x', (size_t)(bytes - k - 2));
    memcpy(text + bytes - 2, "\"}", 3);
    json_t *data = json_loads(text, 0, NULL);
    json_t *source = json_pack("{s:s, s:s, s:s}", "gateway", "gw-test",
                               "plugin", "load", "sector", "energy");
    char ts[32];
    sc_now_rfc3339(ts);
    sc_envelope_in_t in = {.channel = "energy.bench.big.c0",
                           .epoch = sc_journal_epoch(j),
                           .seq = 1,
                           .ts = ts,
                           .kind = "bench.load",
                           .key = "k0",
                           .source = source,
                           .data = data};
    char *jws;
    size_t len;
    if (!data || !source ||
        sc_envelope_sign(&in, key, &jws, &len, err, sizeof err) != 0) {
        fprintf(stderr, "bench_journal: sign: %s\n", err);
        return 1;
    }
    const char *kid = sc_sigkey_kid(key);
    char ch[64], kk[32];
    int64_t *lat = rate ? malloc((size_t)(n / group + 1) * sizeof *lat) : NULL;
    size_t nlat = 0;
    int64_t t0 = bench_now_ns();
    for (long long i = 0; i < n;) {
        int64_t t = 0;
        if (rate) {
            bench_pace(t0, (long long)nlat + 1, rate);
            t = bench_now_ns();
        }
        if (sc_journal_begin(j, err, sizeof err) != 0) {
            fprintf(stderr, "bench_journal: %s\n", err);
            return 1;
        }
        for (long long g = 0; g < group && i < n; g++, i++) {
            snprintf(ch, sizeof ch, "energy.bench.big.c%lld", i % channels);
            snprintf(kk, sizeof kk, "k%lld", (i / channels) % nkeys);
            uint64_t seq = sc_journal_next_seq(j, ch);
            if (sc_journal_append(j, ch, seq, "bench.load", kk, ts, kid, jws,
                                  len, err, sizeof err) != 0) {
                fprintf(stderr, "bench_journal: %s\n", err);
                return 1;
            }
        }
        if (sc_journal_commit(j, err, sizeof err) != 0) {
            fprintf(stderr, "bench_journal: %s\n", err);
            return 1;
        }
        if (rate)
            lat[nlat++] = bench_now_ns() - t;
    }
    sc_journal_close(&j);
    printf("{\"n\":%lld,\"file_bytes\":%lld,\"jws_bytes\":%zu", n,
           file_size(dir, "journal.db") + file_size(dir, "journal.db-wal"),
           len);
    if (rate) {
        printf(",");
        bench_print_latency(stdout, lat, nlat);
    }
    printf("}\n");
    free(lat);
    free(jws);
    free(text);
    json_decref(data);
    json_decref(source);
    sc_sigkey_destroy(&key);
    return 0;
}
