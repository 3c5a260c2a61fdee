/*
 * frame.h - the one format of messages between a plugin host (a plugin
 * thread or child process) and the core.
 *
 * Owns encoding and decoding of type-tagged frames; every frame between a
 * plugin and the core goes through here, both ways. A frame is one buffer
 * (one ZeroMQ message part):
 *
 *     byte 0       'F' (magic)
 *     byte 1       type (sc_frame_type_t)
 *     then fields  each a 4-byte big-endian length + that many bytes,
 *                  in the order the type defines; a field may be absent
 *                  (length 0xFFFFFFFF) only where noted
 *     u64 fields   8 bytes big-endian inside a field of length 8
 *
 *   PUBLISH    plugin -> core  channel, kind, key (absent = none), data
 *   STATE_PUT  plugin -> core  key, value
 *   STATE_DEL  plugin -> core  key
 *   ACK        core -> plugin  status ("ok" | "refused")
 *   SINK_MSG   core -> plugin  channel, epoch, seq (u64), jws
 *   SINK_ACK   plugin -> core  channel, seq (u64)
 *   SINK_NACK  plugin -> core  channel, seq (u64): deliver() refused it
 *                              (SC_ERR_LIMIT); offer it again later
 *   SINK_LOST  core -> plugin  channel, epoch, first (u64), last (u64; 0 =
 *                              everything after first of that older epoch):
 *                              the sink's lost()
 *   PING       core -> plugin  nonce (u64)
 *   PONG       plugin -> core  nonce (u64)
 *   REFUSED    plugin -> core  channel (absent = not a channel name),
 *                              reason (1-32 bytes), data bytes (u64): a
 *                              publish the child's host refused, so the
 *                              core can count it; never answered
 *
 * The frame never says who sent it: the core knows the sender from the
 * socket or connection it came on (a plugin thread's instance, a child's
 * credential). Decoding checks the structure only (lengths, field count,
 * no trailing bytes, text fields without NUL bytes, channel/kind/key
 * syntax); a publish's JSON is parsed by the plugin's host before it is
 * sent and by the core exactly once after it is decoded.
 * Never: allocates while decoding (fields point into the buffer).
 */
#ifndef SC_HOST_FRAME_H
#define SC_HOST_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_FRAME_MAGIC 'F'
#define SC_FRAME_MAX_BYTES (8u * 1024 * 1024 + 4096)

typedef enum sc_frame_type {
    SC_FRAME_PUBLISH = 'P',
    SC_FRAME_STATE_PUT = 'S',
    SC_FRAME_STATE_DEL = 'D',
    SC_FRAME_ACK = 'A',
    SC_FRAME_SINK_MSG = 'M',
    SC_FRAME_SINK_ACK = 'K',
    SC_FRAME_SINK_NACK = 'N',
    SC_FRAME_SINK_LOST = 'L',
    SC_FRAME_PING = 'I',
    SC_FRAME_PONG = 'O',
    SC_FRAME_REFUSED = 'R'
} sc_frame_type_t;

/* A text field of a decoded frame: points into the buffer, NOT
 * NUL-terminated (use len); ptr NULL = absent. */
typedef struct sc_frame_str {
    const char *ptr;
    size_t len;
} sc_frame_str_t;

typedef struct sc_frame {
    sc_frame_type_t type;
    sc_frame_str_t channel; /* PUBLISH, SINK_MSG, SINK_ACK */
    sc_frame_str_t kind;    /* PUBLISH; REFUSED: reason */
    sc_frame_str_t key;     /* PUBLISH (may be absent), STATE_* */
    sc_frame_str_t data;    /* PUBLISH: JSON text; STATE_PUT: value;
                               ACK: status; SINK_MSG: jws */
    sc_frame_str_t epoch;   /* SINK_MSG, SINK_LOST */
    uint64_t seq;           /* SINK_MSG, SINK_ACK; PING/PONG nonce;
                               SINK_LOST: first */
    uint64_t last;          /* SINK_LOST */
} sc_frame_t;

/* Encode `f` into a new buffer (*out, *len; free() it). 0, or -1 if out
 * of memory or a field is over SC_FRAME_MAX_BYTES in total. Fields not
 * used by the type are ignored. */
int sc_frame_encode(const sc_frame_t *f, unsigned char **out, size_t *len);

/* Decode `buf`. 0, or -1 with a short reason in err. Fields point into
 * buf. */
int sc_frame_decode(const void *buf, size_t len, sc_frame_t *f, char *err,
                    size_t errlen);

/* Copy a decoded text field into dst as a NUL-terminated string. false if
 * it does not fit (or is absent). */
bool sc_frame_str_copy(sc_frame_str_t s, char *dst, size_t dstlen);

#endif
