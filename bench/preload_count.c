/*
 * preload_count.c - LD_PRELOAD counter of allocations and JSON parses, for
 * the benchmark (bench/bench.py). Built as build/bench/libsc_count.so.
 *
 *   SC_COUNT_FILE=/tmp/x LD_PRELOAD=build/bench/libsc_count.so sectorcastd ...
 *
 * Counts every malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign, free and every call into jansson's json_loads/json_loadb/
 * json_loadf/json_loadfd/json_load_file/json_load_callback made through
 * the PLT (i.e. by the broker and its libraries, not jansson's own
 * internal calls) in a shared file of counters (struct sc_counts below,
 * little-endian uint64) that the benchmark reads at any moment; forked
 * children inherit the mapping and add to the same counters. Without
 * SC_COUNT_FILE it only counts in memory. Never for production use.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

struct sc_counts {
    uint64_t mallocs;    /* malloc + calloc + memalign family */
    uint64_t reallocs;
    uint64_t frees;      /* free of a non-NULL pointer */
    uint64_t bytes;      /* bytes requested by the above */
    uint64_t json_parses;
};

static struct sc_counts local_counts;
static struct sc_counts *counts = &local_counts;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

#define ADD(field, v) __atomic_fetch_add(&counts->field, (v), __ATOMIC_RELAXED)

__attribute__((constructor)) static void count_init(void)
{
    const char *path = getenv("SC_COUNT_FILE");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (ftruncate(fd, sizeof(struct sc_counts)) == 0) {
        void *m = mmap(NULL, sizeof(struct sc_counts), PROT_READ | PROT_WRITE,
                       MAP_SHARED, fd, 0);
        if (m != MAP_FAILED)
            counts = m;
    }
    close(fd);
}

EXPORT void *malloc(size_t n)
{
    ADD(mallocs, 1);
    ADD(bytes, n);
    return __libc_malloc(n);
}

EXPORT void *calloc(size_t a, size_t b)
{
    ADD(mallocs, 1);
    ADD(bytes, a * b);
    return __libc_calloc(a, b);
}

EXPORT void *realloc(void *p, size_t n)
{
    ADD(reallocs, 1);
    ADD(bytes, n);
    return __libc_realloc(p, n);
}

EXPORT void free(void *p)
{
    if (p)
        ADD(frees, 1);
    __libc_free(p);
}

EXPORT void *memalign(size_t align, size_t n)
{
    ADD(mallocs, 1);
    ADD(bytes, n);
    return __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

/* jansson: forward to the real functions (types kept opaque) */
#define FORWARD(name, params, args)                                        \
    EXPORT void *name params                                               \
    {                                                                      \
        static void *(*real) params;                                       \
        if (!real)                                                         \
            *(void **)&real = dlsym(RTLD_NEXT, #name);                     \
        ADD(json_parses, 1);                                               \
        return real ? real args : NULL;                                    \
    }

FORWARD(json_loads, (const char *s, size_t f, void *e), (s, f, e))
FORWARD(json_loadb, (const char *b, size_t n, size_t f, void *e),
        (b, n, f, e))
FORWARD(json_loadf, (void *fp, size_t f, void *e), (fp, f, e))
FORWARD(json_loadfd, (int fd, size_t f, void *e), (fd, f, e))
FORWARD(json_load_file, (const char *p, size_t f, void *e), (p, f, e))
FORWARD(json_load_callback, (void *cb, void *d, size_t f, void *e),
        (cb, d, f, e))
