/*
 * request.h - parsing one service-socket request (docs/protocol.md §9).
 *
 * Owns the request grammar: the frames after the ROUTER routing id are
 *   [request-id (1..64 bytes)][command][args: JSON object, optional]
 * with command one of whoami, heads, replay, snapshot, and per command
 * the shape of its arguments. Pure: no sockets, no journal, no grants, no
 * logging -- the service decides what a well-formed request may see.
 * Hostile input is the normal case here (tests/fuzz/fuzz_request.c).
 */
#ifndef SC_REQUEST_H
#define SC_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SC_REQ_ID_MAX 64

typedef enum sc_req_cmd {
    SC_REQ_NONE = 0, /* not parsed */
    SC_REQ_WHOAMI,
    SC_REQ_HEADS,
    SC_REQ_REPLAY,
    SC_REQ_SNAPSHOT
} sc_req_cmd_t;

/* One received frame (borrowed bytes). */
typedef struct sc_req_frame {
    const void *data;
    size_t size;
} sc_req_frame_t;

typedef struct sc_request {
    /* request id, echoed in every reply; filled (truncated to 64 bytes)
     * even when parsing fails, so that an error reply can carry it */
    char id[SC_REQ_ID_MAX + 1];
    size_t id_len;
    sc_req_cmd_t cmd;
    json_t *args;        /* the arguments object (owned; {} if absent) */

    /* arguments, checked for shape only (pointers into `args`):
     *   heads:    subtree (NULL = all granted channels)
     *   snapshot: subtree
     *   replay:   channel, from, limit (0 = not given), epoch (NULL = any) */
    const char *subtree;
    const char *channel;
    uint64_t from;
    int64_t limit;
    const char *epoch;

    /* on failure: the reply's code and error name */
    int code;            /* 400 */
    const char *error;   /* "bad-request" or "unknown-command" */
    /* the command as printable text (control and non-ASCII bytes shown as
     * '?', at most 39 characters), for logs and the unknown-command reply */
    char shown_cmd[40];
} sc_request_t;

/* Parse the n frames that followed the routing id (pass n > 3 as any
 * value > 3: the frames beyond the third are never looked at). Returns 0
 * with *req filled, or -1 with req->code, req->error and err (the reply's
 * text) set. Either way, free with sc_request_clear(). */
int sc_request_parse(const sc_req_frame_t *frames, size_t n,
                     sc_request_t *req, char *err, size_t errlen);

void sc_request_clear(sc_request_t *req);

/* Name of a command ("whoami", ...), or "?" */
const char *sc_request_cmd_name(sc_req_cmd_t cmd);

#endif
