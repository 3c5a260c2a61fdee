/*
 * frame.c - see frame.h.
 */
#include "host/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/channel.h"
#include "host/host.h"

#define ABSENT 0xFFFFFFFFu

typedef struct field {
    const char *p;
    size_t len;
    bool present;
    const uint64_t *num; /* a u64 field: where its value is (len 8) */
} field_t;

static size_t fields_of(const sc_frame_t *f, field_t *v)
{
#define S(x) (field_t){(x).ptr, (x).len, (x).ptr != NULL, NULL}
#define U(x) (field_t){NULL, 8, true, &(x)}
    switch (f->type) {
    case SC_FRAME_PUBLISH:
        v[0] = S(f->channel);
        v[1] = S(f->kind);
        v[2] = S(f->key);
        v[3] = S(f->data);
        return 4;
    case SC_FRAME_STATE_PUT:
        v[0] = S(f->key);
        v[1] = S(f->data);
        return 2;
    case SC_FRAME_STATE_DEL:
        v[0] = S(f->key);
        return 1;
    case SC_FRAME_ACK:
        v[0] = S(f->data);
        return 1;
    case SC_FRAME_SINK_MSG:
        v[0] = S(f->channel);
        v[1] = S(f->epoch);
        v[2] = U(f->seq);
        v[3] = S(f->data);
        return 4;
    case SC_FRAME_SINK_LOST:
        v[0] = S(f->channel);
        v[1] = S(f->epoch);
        v[2] = U(f->seq);
        v[3] = U(f->last);
        return 4;
    case SC_FRAME_SINK_ACK:
    case SC_FRAME_SINK_NACK:
        v[0] = S(f->channel);
        v[1] = U(f->seq);
        return 2;
    case SC_FRAME_PING:
    case SC_FRAME_PONG:
        v[0] = U(f->seq);
        return 1;
    case SC_FRAME_REFUSED:
        v[0] = S(f->channel);
        v[1] = S(f->kind);
        v[2] = U(f->seq);
        return 3;
    }
#undef S
#undef U
    return 0;
}

static void put_u32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
           (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

int sc_frame_encode(const sc_frame_t *f, unsigned char **out, size_t *len)
{
    field_t v[8];
    size_t n = fields_of(f, v);
    if (n == 0)
        return -1;
    size_t total = 2;
    for (size_t i = 0; i < n; i++) {
        if (v[i].present && v[i].len >= ABSENT)
            return -1;
        total += 4 + (v[i].present ? v[i].len : 0);
        if (total > SC_FRAME_MAX_BYTES)
            return -1;
    }
    unsigned char *b = malloc(total);
    if (!b)
        return -1;
    size_t o = 0;
    b[o++] = SC_FRAME_MAGIC;
    b[o++] = (unsigned char)f->type;
    for (size_t i = 0; i < n; i++) {
        if (!v[i].present) {
            put_u32(b + o, ABSENT);
            o += 4;
            continue;
        }
        put_u32(b + o, (uint32_t)v[i].len);
        o += 4;
        if (v[i].num) { /* a u64 field */
            for (int k = 0; k < 8; k++)
                b[o + (size_t)k] = (unsigned char)(*v[i].num >> (56 - 8 * k));
        } else if (v[i].len) {
            memcpy(b + o, v[i].p, v[i].len);
        }
        o += v[i].len;
    }
    *out = b;
    *len = o;
    return 0;
}

static bool has_nul(const char *p, size_t n)
{
    return p && memchr(p, '\0', n) != NULL;
}

static bool chan_ok(sc_frame_str_t s)
{
    char buf[SC_CHANNEL_MAX + 1];
    return sc_frame_str_copy(s, buf, sizeof buf) && sc_channel_valid(buf);
}

int sc_frame_decode(const void *buf, size_t len, sc_frame_t *f, char *err,
                    size_t errlen)
{
    const unsigned char *b = buf;
    memset(f, 0, sizeof *f);
#define BAD(...)                                                          \
    do {                                                                  \
        snprintf(err, errlen, __VA_ARGS__);                               \
        return -1;                                                        \
    } while (0)
    if (!b || len < 2 || b[0] != SC_FRAME_MAGIC)
        BAD("not a frame");
    if (len > SC_FRAME_MAX_BYTES)
        BAD("frame over %u bytes", SC_FRAME_MAX_BYTES);
    f->type = (sc_frame_type_t)b[1];
    field_t want[8];
    size_t n = fields_of(f, want);
    if (n == 0)
        BAD("unknown frame type 0x%02x", b[1]);
    sc_frame_str_t got[8];
    size_t o = 2;
    for (size_t i = 0; i < n; i++) {
        if (len - o < 4)
            BAD("frame cut short");
        uint32_t fl = get_u32(b + o);
        o += 4;
        if (fl == ABSENT) {
            got[i] = (sc_frame_str_t){NULL, 0};
            continue;
        }
        if (fl > len - o)
            BAD("field %zu longer than the frame", i);
        got[i] = (sc_frame_str_t){(const char *)b + o, fl};
        o += fl;
    }
    if (o != len)
        BAD("%zu trailing bytes", len - o);
    /* u64 fields and presence */
    for (size_t i = 0; i < n; i++) {
        if (want[i].num) {
            if (!got[i].ptr || got[i].len != 8)
                BAD("field %zu is not a 64-bit number", i);
            uint64_t v = 0;
            for (int k = 0; k < 8; k++)
                v = v << 8 | (unsigned char)got[i].ptr[k];
            if (want[i].num == &f->last)
                f->last = v;
            else
                f->seq = v;
        }
    }
    switch (f->type) {
    case SC_FRAME_PUBLISH:
        f->channel = got[0];
        f->kind = got[1];
        f->key = got[2];
        f->data = got[3];
        if (!chan_ok(f->channel))
            BAD("publish: bad channel");
        char kb[SC_HOST_MAX_KIND + 1], keyb[SC_HOST_MAX_KEY + 1];
        if (!sc_frame_str_copy(f->kind, kb, sizeof kb) ||
            !sc_host_kind_valid(kb))
            BAD("publish: bad kind");
        if (f->key.ptr && (!sc_frame_str_copy(f->key, keyb, sizeof keyb) ||
                           !sc_host_key_valid(keyb)))
            BAD("publish: bad key");
        if (!f->data.ptr || has_nul(f->data.ptr, f->data.len))
            BAD("publish: bad data");
        break;
    case SC_FRAME_STATE_PUT:
    case SC_FRAME_STATE_DEL:
        f->key = got[0];
        if (!f->key.ptr || f->key.len == 0 ||
            f->key.len > SC_HOST_STATE_MAX_KEY ||
            has_nul(f->key.ptr, f->key.len))
            BAD("state: bad key");
        if (f->type == SC_FRAME_STATE_PUT) {
            f->data = got[1];
            if (!f->data.ptr || f->data.len > SC_HOST_STATE_MAX_VALUE ||
                has_nul(f->data.ptr, f->data.len))
                BAD("state: bad value");
        }
        break;
    case SC_FRAME_ACK:
        f->data = got[0];
        if (!f->data.ptr || f->data.len > 64)
            BAD("ack: bad status");
        break;
    case SC_FRAME_SINK_MSG:
        f->channel = got[0];
        f->epoch = got[1];
        f->data = got[3];
        if (!chan_ok(f->channel) || !f->epoch.ptr || f->epoch.len > 64 ||
            has_nul(f->epoch.ptr, f->epoch.len) || !f->data.ptr ||
            has_nul(f->data.ptr, f->data.len))
            BAD("sink message: bad field");
        break;
    case SC_FRAME_SINK_ACK:
    case SC_FRAME_SINK_NACK:
        f->channel = got[0];
        if (!chan_ok(f->channel) || f->seq == 0)
            BAD("sink ack: bad field");
        break;
    case SC_FRAME_SINK_LOST:
        f->channel = got[0];
        f->epoch = got[1];
        if (!chan_ok(f->channel) || !f->epoch.ptr || f->epoch.len > 64 ||
            has_nul(f->epoch.ptr, f->epoch.len) || f->seq == 0 ||
            (f->last != 0 && f->last < f->seq))
            BAD("sink lost: bad field");
        break;
    case SC_FRAME_PING:
    case SC_FRAME_PONG:
        break;
    case SC_FRAME_REFUSED:
        f->channel = got[0];
        f->kind = got[1];
        if ((f->channel.ptr && !chan_ok(f->channel)) || !f->kind.ptr ||
            f->kind.len == 0 || f->kind.len > 32 ||
            has_nul(f->kind.ptr, f->kind.len))
            BAD("refused: bad field");
        break;
    }
#undef BAD
    return 0;
}

bool sc_frame_str_copy(sc_frame_str_t s, char *dst, size_t dstlen)
{
    if (!s.ptr || s.len >= dstlen || has_nul(s.ptr, s.len))
        return false;
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return true;
}
