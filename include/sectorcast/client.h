/*
 * sectorcast subscriber API (libsectorcast).
 *
 * Connects to a sectorcast gateway's publish socket (ZeroMQ SUB over CURVE),
 * subscribes to channel subtrees, and returns only messages whose JWS
 * signature verifies against a key of the gateway's JWKS and whose envelope
 * channel matches the topic. A message that fails is never returned as
 * data: sc_client_recv() reports it as SC_CLIENT_REFUSED with the reason.
 *
 * Not thread-safe: use one sc_client_t from one thread.
 */
#ifndef SECTORCAST_CLIENT_H
#define SECTORCAST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_client sc_client_t;

typedef struct sc_client_options {
    const char *endpoint;          /* publish endpoint, "tcp://host:port" */
    const char *jwks_path;         /* gateway's published JWKS file */
    /* CURVE: the gateway's public key (Z85 text or a file holding it) and
     * our own key pair (base path: BASE.secret / BASE.public). All three
     * NULL = plaintext (only for a gateway configured without CURVE). */
    const char *server_public_key; /* Z85 text, or path to a .public file */
    const char *client_key_base;   /* path without .secret/.public */
    int connect_timeout_ms;        /* 0 = default (5000) */
} sc_client_options_t;

/* A verified message. Strings are owned by the client and valid until the
 * next sc_client_recv() or sc_client_destroy(). */
typedef struct sc_message {
    const char *channel;
    const char *epoch;
    uint64_t seq;
    const char *id;
    const char *ts;
    const char *kind;
    const char *key;        /* NULL if the envelope's key is null */
    const char *kid;        /* kid of the key that signed it */
    const char *envelope;   /* the verified envelope as JSON text: the JWS
                               payload bytes exactly as signed (one line) */
    size_t envelope_len;
    const char *jws;        /* the original JWS bytes (not NUL-terminated) */
    size_t jws_len;
} sc_message_t;

/* Return codes. */
enum {
    SC_CLIENT_MESSAGE = 1,    /* *msg holds a verified message */
    SC_CLIENT_TIMEOUT = 0,    /* nothing within the timeout */
    SC_CLIENT_REFUSED = -1,   /* a message failed verification; err says
                                 why; it is counted and dropped */
    SC_CLIENT_ERROR = -2,     /* fatal: connection refused/closed, bad
                                 arguments; err says why */
    SC_CLIENT_AUTH = -3,      /* the gateway rejected our CURVE key */
    SC_CLIENT_INTERRUPTED = -4 /* a signal interrupted the wait; nothing
                                  was received; call again or stop */
};

/* NULL on failure, with err filled (e.g. "cannot read JWKS keys/jwks.json:
 * No such file or directory"). */
sc_client_t *sc_client_new(const sc_client_options_t *opts, char *err,
                           size_t errlen);
void sc_client_destroy(sc_client_t **client_p);

/* Subscribe to a subtree: a channel prefix ending in '.', e.g. "energy."
 * or "energy.nuclear.tasks.". 0, or -1 with err filled. */
int sc_client_subscribe(sc_client_t *client, const char *subtree, char *err,
                        size_t errlen);

/* Wait up to timeout_ms (-1 = forever) for the next message. Returns
 * SC_CLIENT_MESSAGE (msg filled), SC_CLIENT_TIMEOUT, SC_CLIENT_REFUSED (one
 * message dropped; call again), SC_CLIENT_INTERRUPTED (signal), or the
 * fatal SC_CLIENT_AUTH / SC_CLIENT_ERROR. A rejected key or a failed
 * handshake is final: every later call repeats it. */
int sc_client_recv(sc_client_t *client, sc_message_t *msg, int timeout_ms,
                   char *err, size_t errlen);

typedef struct sc_client_stats {
    uint64_t received;   /* messages received (= delivered + refused) */
    uint64_t delivered;  /* verified messages returned */
    uint64_t refused;    /* messages that failed verification */
} sc_client_stats_t;

void sc_client_stats(const sc_client_t *client, sc_client_stats_t *out);

/* Verify one [topic][jws] pair as sc_client_recv() would, without a
 * socket (for tests, tools and other transports). On SC_CLIENT_MESSAGE
 * *msg is filled (valid until the next call on this client). */
int sc_client_verify(sc_client_t *client, const char *topic, size_t topic_len,
                     const char *jws, size_t jws_len, sc_message_t *msg,
                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
