/*
 * sectorcast subscriber API (libsectorcast).
 *
 * Connects to a sectorcast gateway's publish socket (ZeroMQ SUB over CURVE),
 * subscribes to channel subtrees, and returns only messages whose JWS
 * signature verifies against a key of the gateway's JWKS and whose envelope
 * channel matches the topic. A message that fails is never returned as
 * data: sc_client_recv() reports it as SC_CLIENT_REFUSED with the reason.
 *
 * Per channel, messages are returned exactly once and in seq order: a
 * duplicate is dropped; a gap is repaired through the gateway's service
 * socket (options.service_endpoint) by replay, and a gap that cannot be
 * repaired is reported (SC_CLIENT_GAP), never skipped silently. With a
 * state file, a restarted subscriber resumes where it stopped.
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
    const char *server_public_key; /* path to a .public file (if it exists)
                                      or Z85 text */
    const char *client_key_base;   /* path without .secret/.public */
    int connect_timeout_ms;        /* 0 = default (5000) */

    /* --- appended: gap repair, resume, snapshots --- */
    /* The gateway's service socket (ROUTER), e.g. "tcp://gw:7602". With
     * it: who-am-I at the first subscribe (grants are checked), gaps are
     * repaired by replay, heartbeats reveal lost tail messages. NULL = no
     * repair: gaps are only reported. Uses the same CURVE keys. */
    const char *service_endpoint;
    /* State file: per channel the epoch and the last seq handed to the
     * caller, committed by sc_client_commit(). On start, every channel in
     * it is replayed from the stored seq + 1. NULL = no state. */
    const char *state_path;
    /* Non-zero: a channel without state starts with a snapshot (the
     * latest message per key under each subscribed subtree), then follows
     * live from the snapshot's head. Needs service_endpoint. */
    int snapshot;
    int request_timeout_ms;   /* silence that fails one service request
                                 attempt; 0 = default (5000) */
    int request_attempts;     /* attempts per service request; 0 = 3 */
    int rcvhwm;               /* SUB receive high-water mark in messages;
                                 0 = default (100000) */
    size_t max_buffered;      /* live messages held while a gap is being
                                 repaired, all channels; 0 = 100000 */

    /* --- appended (read only when the caller's struct has it: see
     *     sc_client_new below) --- */
    /* Threads that verify signatures, the calling thread included: 0 or 1
     * = the calling thread alone; N (at most 64) = N - 1 more threads,
     * started by sc_client_new(), each taking a share of the messages
     * found waiting on the socket (up to 64, or 4 MiB, at a time) and of
     * every replay or snapshot page. Delivery order, exactly-once and every
     * check are the same; only the signature checks run side by side.
     * Worth it when one core cannot verify as fast as the gateway sends
     * (about 20,000 messages/s per core for 512 B of data). */
    int verify_threads;
} sc_client_options_t;

/* A verified message. Strings are owned by the client and valid until the
 * next sc_client_recv(), sc_client_verify() or sc_client_destroy(). */
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
    SC_CLIENT_INTERRUPTED = -4, /* a signal interrupted the wait; nothing
                                  was received; call again or stop */
    SC_CLIENT_GAP = -5,       /* messages of one channel are lost for good
                                 (pruned by retention, or no service
                                 endpoint to replay from); err says e.g.
                                 "unrecoverable gap on energy.test: seq
                                 3..89 pruned"; details from
                                 sc_client_event(); delivery goes on after
                                 the gap: call again */
    SC_CLIENT_EPOCH = -6,     /* a channel's journal was replaced (new
                                 epoch): its tracking restarts; err says
                                 which; call again */
    SC_CLIENT_UNAVAILABLE = -7, /* the service socket did not answer a
                                 request in time (every attempt); nothing
                                 was lost: calling again retries */
    SC_CLIENT_NOT_GRANTED = -8 /* sc_client_subscribe(): the subtree is not
                                 covered by our agency's grants */
};

/* NULL on failure, with err filled (e.g. "cannot read JWKS keys/jwks.json:
 * No such file or directory").
 *
 * The options struct grows at its end; the caller's size travels with the
 * call (the macro), so a program built against an older header is never
 * read past its struct: the plain symbol, which such a program calls,
 * reads the members up to `max_buffered` and takes the defaults for the
 * rest. */
sc_client_t *sc_client_new_sized(const sc_client_options_t *opts,
                                 size_t size, char *err, size_t errlen);
sc_client_t *(sc_client_new)(const sc_client_options_t *opts, char *err,
                             size_t errlen);
#define sc_client_new(opts, err, errlen)                                  \
    sc_client_new_sized((opts), sizeof *(opts), (err), (errlen))
void sc_client_destroy(sc_client_t **client_p);

/* Subscribe to a subtree: a channel prefix ending in '.', e.g. "energy."
 * or "energy.nuclear.tasks.". Returns 0, or with err filled: -1 (not a
 * subtree), SC_CLIENT_NOT_GRANTED ("refused: energy.nuclear. (not granted
 * to agency motie)"; only with a service endpoint, whose who-am-I the
 * first call makes), SC_CLIENT_AUTH, SC_CLIENT_UNAVAILABLE, SC_CLIENT_ERROR. */
int sc_client_subscribe(sc_client_t *client, const char *subtree, char *err,
                        size_t errlen);

/* Who we are to the gateway (service endpoint required). Strings are
 * owned by the client and live until sc_client_destroy(). Asks the
 * gateway once; later calls return the first answer. 0, or
 * SC_CLIENT_AUTH / SC_CLIENT_UNAVAILABLE / SC_CLIENT_ERROR with err. */
typedef struct sc_client_identity {
    const char *agency;
    const char *epoch;          /* the gateway journal's epoch */
    size_t n_grants;
    const char *const *grants;  /* subtrees, e.g. "energy." */
} sc_client_identity_t;

int sc_client_whoami(sc_client_t *client, sc_client_identity_t *out,
                     char *err, size_t errlen);

/* Wait up to timeout_ms (-1 = forever) for the next message. Returns
 * SC_CLIENT_MESSAGE (msg filled), SC_CLIENT_TIMEOUT, SC_CLIENT_REFUSED (one
 * message dropped; call again), SC_CLIENT_GAP / SC_CLIENT_EPOCH (an event
 * in the stream; call again), SC_CLIENT_UNAVAILABLE (a repair must wait
 * for the service socket; call again), SC_CLIENT_INTERRUPTED (signal), or
 * the fatal SC_CLIENT_AUTH / SC_CLIENT_ERROR. A rejected key or a failed
 * handshake is final: every later call repeats it.
 *
 * Per channel, messages come exactly once, in seq order. A replay page
 * (up to limits.replay_batch messages) is fetched and verified within one
 * call, so a call that repairs a gap may take longer than timeout_ms. */
int sc_client_recv(sc_client_t *client, sc_message_t *msg, int timeout_ms,
                   char *err, size_t errlen);

/* The event behind the last SC_CLIENT_GAP or SC_CLIENT_EPOCH (strings
 * valid until the next sc_client_recv()). 0, or -1 if the last return was
 * not an event. */
typedef struct sc_client_event {
    int code;              /* SC_CLIENT_GAP or SC_CLIENT_EPOCH */
    const char *channel;
    const char *epoch;     /* the channel's epoch now */
    const char *old_epoch; /* SC_CLIENT_EPOCH: the replaced epoch */
    uint64_t first, last;  /* SC_CLIENT_GAP: the lost seqs, inclusive */
    const char *reason;    /* SC_CLIENT_GAP: "pruned", "no service
                              endpoint", ... */
} sc_client_event_t;

int sc_client_event(const sc_client_t *client, sc_client_event_t *out);

/* Record in the state file that every message returned so far has been
 * handled (call it after you have processed or durably stored them; a
 * process killed before its commit gets those messages again on restart).
 * One write(2) per call; fsync at most once a second and at destroy.
 * 0 (also without a state file), or -1 with err filled. */
int sc_client_commit(sc_client_t *client, char *err, size_t errlen);

typedef struct sc_client_stats {
    uint64_t received;   /* data messages taken in, live or replayed:
                            delivered + refused + duplicates + overflowed
                            + those still waiting in the client */
    uint64_t delivered;  /* verified messages returned */
    uint64_t refused;    /* messages that failed verification */
    /* --- appended --- */
    uint64_t duplicates; /* dropped: already delivered */
    uint64_t replayed;   /* obtained by replay or snapshot */
    uint64_t overflowed; /* live messages dropped because the reorder
                            buffer was full (replay fetched them again) */
    uint64_t lost;       /* seqs reported lost for good (SC_CLIENT_GAP) */
    uint64_t heartbeats; /* heartbeats received */
    /* --- appended: `delivered` by where the messages came from
     * (snapshot + repaired + live == delivered, but for messages passed to
     * sc_client_verify(), which count in `delivered` only) --- */
    uint64_t snapshot;   /* from a snapshot: the state when we joined */
    uint64_t repaired;   /* by replay: gaps repaired, a resume caught up */
    uint64_t live;       /* as published, on the publish socket */
} sc_client_stats_t;

/* Copy the counters into *out. The struct grows at its end; the caller's
 * size travels with the call (the macro), so a program built against an
 * older header is never written past its struct: the plain symbol, which
 * such a program calls, fills only the members up to `heartbeats`. */
void sc_client_stats_sized(const sc_client_t *client, sc_client_stats_t *out,
                           size_t size);
void (sc_client_stats)(const sc_client_t *client, sc_client_stats_t *out);
#define sc_client_stats(client, out)                                      \
    sc_client_stats_sized((client), (out), sizeof *(out))

/* Where a message returned by sc_client_recv() came from. */
typedef enum {
    SC_CLIENT_FROM_LIVE = 0,     /* the publish socket, as published */
    SC_CLIENT_FROM_SNAPSHOT = 1, /* a snapshot (--snapshot): the latest
                                    message of its key when we joined */
    SC_CLIENT_FROM_REPLAY = 2    /* a replay: a gap repaired, a resume */
} sc_client_origin_t;

/* The origin of the message last returned by sc_client_recv() (LIVE for
 * sc_client_verify() and before any message). */
sc_client_origin_t sc_client_origin(const sc_client_t *client);

/* Verify one [topic][jws] pair as sc_client_recv() would, without a
 * socket (for tests, tools and other transports). On SC_CLIENT_MESSAGE
 * *msg is filled (valid until the next call on this client). Stateless:
 * no ordering, duplicate or gap tracking is applied. */
int sc_client_verify(sc_client_t *client, const char *topic, size_t topic_len,
                     const char *jws, size_t jws_len, sc_message_t *msg,
                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
