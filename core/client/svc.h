/*
 * svc.h - the client end of the gateway's service socket.
 *
 * Owns one DEALER socket (a CURVE client with the same keys as the SUB
 * socket) and its handshake monitor, and speaks the request/reply rules of
 * docs/protocol.md section 9: [request-id][command][args] out; item
 * messages and one final "end"/"error" message back. A request is
 * all-or-nothing: items are handed over only once the final message came,
 * so a retried request never yields an item twice. Replies to abandoned
 * requests (timed out, interrupted) are recognised by their id and
 * dropped. Knows nothing of what the commands mean.
 */
#ifndef SC_CLIENT_SVC_H
#define SC_CLIENT_SVC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <zmq.h>

typedef struct sc_svc sc_svc_t;

typedef struct sc_svc_opts {
    const char *endpoint;
    const char *server_key;   /* Z85; NULL = plaintext */
    const char *public_key;   /* Z85 */
    const char *secret_key;   /* Z85 */
    int connect_timeout_ms;
    int request_timeout_ms;   /* silence that ends one attempt */
    int attempts;             /* attempts per request */
} sc_svc_opts_t;

typedef struct sc_svc_item {
    zmq_msg_t topic;
    zmq_msg_t jws;
} sc_svc_item_t;

typedef struct sc_svc_reply {
    bool ok;                 /* "end" (true) or "error" (false) */
    json_t *body;            /* the final JSON object */
    sc_svc_item_t *items;    /* "msg" items, in order */
    size_t n_items, cap;
} sc_svc_reply_t;

sc_svc_t *sc_svc_new(void *ctx, const sc_svc_opts_t *o, char *err,
                     size_t errlen);
void sc_svc_destroy(sc_svc_t **s_p);

const char *sc_svc_endpoint(const sc_svc_t *s);

/* Drain the handshake monitor: 0 or a sticky SC_CLIENT_AUTH /
 * SC_CLIENT_ERROR with its text. */
int sc_svc_check(sc_svc_t *s, const char **text);

/* Send `cmd` with `args` (borrowed; NULL = none) and wait for the final
 * reply. 0: *out filled (ok or error reply; clear it with
 * sc_svc_reply_clear). Otherwise SC_CLIENT_UNAVAILABLE (no answer after
 * every attempt), SC_CLIENT_INTERRUPTED (signal), SC_CLIENT_AUTH or
 * SC_CLIENT_ERROR, with err filled. */
int sc_svc_request(sc_svc_t *s, const char *cmd, json_t *args,
                   sc_svc_reply_t *out, char *err, size_t errlen);
void sc_svc_reply_clear(sc_svc_reply_t *r);

#endif
