/*
 * fuzz_frame.c - libFuzzer target: the plugin <-> core frame decoder
 * (core/host/frame.c), which reads what a plugin child process (not
 * trusted) sends to the core.
 *
 * Invariants: a decoded frame's fields lie inside the input; encoding it
 * again gives exactly the input (one encoding per frame); a refused one
 * has a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/frame.h"

static void inside(sc_frame_str_t s, const uint8_t *data, size_t size)
{
    if (s.ptr && ((const uint8_t *)s.ptr < data ||
                  (const uint8_t *)s.ptr + s.len > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_frame_t f;
    char err[128] = "";
    if (sc_frame_decode(data, size, &f, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    inside(f.channel, data, size);
    inside(f.kind, data, size);
    inside(f.key, data, size);
    inside(f.data, data, size);
    inside(f.epoch, data, size);
    unsigned char *buf = NULL;
    size_t len = 0;
    if (sc_frame_encode(&f, &buf, &len) != 0)
        abort();
    if (len != size || memcmp(buf, data, size) != 0)
        abort();
    free(buf);
    return 0;
}
