/*
 * bench_common.h - small helpers shared by the benchmark programs
 * (bench_sub.c, bench_raw.c): clock, key=value arguments, percentiles.
 * Header-only; never used by the broker or the library.
 */
#ifndef SC_BENCH_COMMON_H
#define SC_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* value of "name=..." among argv[1..], or dflt */
static inline const char *bench_arg(int argc, char **argv, const char *name,
                                    const char *dflt)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    return dflt;
}

static inline long long bench_int(int argc, char **argv, const char *name,
                                  long long dflt)
{
    const char *v = bench_arg(argc, argv, name, NULL);
    return v ? atoll(v) : dflt;
}

/* Wait until item i (1, 2, ...) of a stream of `rate` per second started
 * at t0 is due, sleeping on 1 ms ticks as tests/plugins/load.c does. */
static inline void bench_pace(int64_t t0, long long i, long long rate)
{
    while (rate > 0 &&
           i > (bench_now_ns() - t0) / 1000 * rate / 1000000 + 1) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* size of a file, 0 if it is not there */
static inline long long bench_file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* sorts v; the q-quantile (0..1) in microseconds, -1 if empty */
static inline double bench_quantile_us(int64_t *v, size_t n, double q,
                                       int sorted)
{
    if (!n)
        return -1;
    if (!sorted)
        qsort(v, n, sizeof *v, bench_cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* the latency fields of a result object: "p50_us":..,"p99_us":..,... */
static inline void bench_print_latency(FILE *f, int64_t *v, size_t n)
{
    double p50 = bench_quantile_us(v, n, 0.5, 0);
    fprintf(f, "\"lat_n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
            "\"p999_us\":%.1f,\"max_us\":%.1f", n, p50,
            bench_quantile_us(v, n, 0.99, 1),
            bench_quantile_us(v, n, 0.999, 1),
            bench_quantile_us(v, n, 1.0, 1));
}

#endif
