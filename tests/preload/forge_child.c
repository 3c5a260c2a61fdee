/*
 * forge_child.c - test only: LD_PRELOAD library that makes a plugin's
 * child process (sectorcastd --plugin-child) behave as if it were
 * compromised: it rewrites the data of PUBLISH frames *after* the child's
 * host checked them, so the core receives, with the child's valid
 * credential, data that is not a JSON object. Used by
 * tests/integration/test_forged_child.py; never for production.
 *
 * In any other process (the broker itself) it does nothing. SC_FORGE:
 *   "some"  data holding "n":2, / "n":4, / "n":6, becomes, in turn, a JSON
 *           array, a cut-off object, an object with a duplicated member
 *   "all"   every publish's data becomes [0]
 *
 * Frame layout (core/host/frame.h): 'F', type, then fields of a 4-byte
 * big-endian length and the bytes; a PUBLISH has channel, kind, key
 * (0xFFFFFFFF = absent), data.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int (*zmq_send_fn)(void *, const void *, size_t, int);

static int in_child = -1; /* -1 unknown */

static bool is_child(void)
{
    if (in_child >= 0)
        return in_child;
    char buf[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    in_child = 0;
    for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
        buf[n] = '\0';
        if (strcmp(buf + i, "--plugin-child") == 0)
            in_child = 1;
    }
    return in_child;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* the replacement data for this publish's data, or NULL to leave it */
static const char *forged(const char *mode, const char *d, size_t n)
{
    if (strcmp(mode, "all") == 0)
        return "[0]";
    if (strcmp(mode, "some") != 0)
        return NULL;
    static const char *const with[][2] = {{"\"n\":2,", "[\"an array\"]"},
                                          {"\"n\":4,", "{\"a\":"},
                                          {"\"n\":6,", "{\"a\":1,\"a\":2}"}};
    for (size_t k = 0; k < 3; k++)
        if (memmem(d, n, with[k][0], strlen(with[k][0])))
            return with[k][1];
    return NULL;
}

EXPORT int zmq_send(void *s, const void *buf, size_t len, int flags)
{
    static zmq_send_fn real;
    if (!real)
        real = (zmq_send_fn)dlsym(RTLD_NEXT, "zmq_send");
    const char *mode = getenv("SC_FORGE");
    const unsigned char *b = buf;
    if (!mode || !is_child() || len < 2 || b[0] != 'F' || b[1] != 'P')
        return real(s, buf, len, flags);
    /* find the 4th field (data) */
    size_t off = 2;
    for (int f = 0; f < 3; f++) {
        if (off + 4 > len)
            return real(s, buf, len, flags);
        uint32_t l = be32(b + off);
        off += 4 + (l == 0xFFFFFFFFu ? 0 : l);
    }
    if (off + 4 > len || be32(b + off) != len - off - 4)
        return real(s, buf, len, flags);
    const char *rep = forged(mode, (const char *)b + off + 4, len - off - 4);
    if (!rep)
        return real(s, buf, len, flags);
    size_t rl = strlen(rep), nl = off + 4 + rl;
    unsigned char *out = malloc(nl);
    if (!out)
        return real(s, buf, len, flags);
    memcpy(out, b, off);
    out[off] = (unsigned char)(rl >> 24);
    out[off + 1] = (unsigned char)(rl >> 16);
    out[off + 2] = (unsigned char)(rl >> 8);
    out[off + 3] = (unsigned char)rl;
    memcpy(out + off + 4, rep, rl);
    int rc = real(s, out, nl, flags);
    free(out);
    return rc < 0 ? rc : (int)len;
}
