/*
 * client.c - libsectorcast: the subscriber side of the wire contract.
 *
 * Owns one SUB socket (optionally a CURVE client), its socket monitor, and
 * the verification of every received message against the gateway's JWKS.
 * A message that fails any check is counted and reported as refused; it is
 * never handed to the caller as data. Knows nothing of the broker; the
 * cryptography and the envelope rules live in core/common.
 *
 * Frame layouts this receiver knows (docs/protocol.md):
 *   data message: exactly 2 frames, [topic ending in '.'][compact JWS]
 * Every other layout is refused as "unknown message shape".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

/* Only the subscriber API is exported from libsectorcast.so; the build
 * hides everything else (-fvisibility=hidden), core/common included. */
#pragma GCC visibility push(default)
#include "sectorcast/client.h"
#pragma GCC visibility pop

#include "common/channel.h"
#include "common/envelope.h"
#include "common/jwks.h"
#include "common/keys.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define RCV_HWM 100000
/* Reconnect after 100 ms (libzmq's default), backing off to this while the
 * gateway stays away. */
#define RECONNECT_IVL_MAX_MS 5000
/* Largest frame we accept. libzmq drops the connection (and reconnects) on
 * a bigger one, so a hostile peer cannot make us buffer unbounded data. */
#define MAX_MSG_SIZE (8 * 1024 * 1024)
/* Consecutive handshakes that fail without detail before we call it a
 * configuration error. With CURVE and a wrong gateway key libzmq reports
 * only this and retries forever; a restarting gateway refuses connections
 * instead (no handshake), so the counter does not trip on restarts. */
#define MAX_HANDSHAKE_FAILURES 5
/* How much of a hostile topic we quote in an error text. */
#define TOPIC_QUOTE_MAX 80

struct sc_client {
    void *ctx;
    void *sub;
    void *mon;            /* PAIR end of the socket monitor */
    char *endpoint;
    bool curve;
    sc_jwks_t *jwks;
    sc_client_stats_t stats;

    int fatal_rc;         /* sticky: SC_CLIENT_AUTH or SC_CLIENT_ERROR */
    char fatal[256];
    unsigned hs_failures; /* consecutive handshakes failed w/o detail */

    /* The last delivered message; everything sc_message_t points into. */
    json_t *env;
    char *envelope;
    size_t envelope_len;
    char *jws;
    size_t jws_len;
    char kid[SC_KID_LEN + 1];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Quote untrusted bytes for an error text: printable ASCII as is, the rest
 * as \xNN, cut at TOPIC_QUOTE_MAX with "...". */
static void quote_bytes(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < outlen; i++) {
        if (i == TOPIC_QUOTE_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, outlen - o, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- lifecycle ------------------------------------------------------- */

static bool is_z85_key(const char *s)
{
    if (!s || strlen(s) != SC_Z85_KEY_LEN)
        return false;
    uint8_t bin[32];
    bool ok = zmq_z85_decode(bin, s) != NULL;
    sodium_memzero(bin, sizeof bin);
    return ok;
}

/* Set up CURVE on the SUB socket: the gateway's public key (Z85 text or a
 * file) and our key pair BASE.secret / BASE.public. */
static int setup_curve(sc_client_t *c, const sc_client_options_t *o,
                       char *err, size_t errlen)
{
    char server[SC_Z85_KEY_LEN + 1];
    char secret[SC_Z85_KEY_LEN + 1];
    char public[SC_Z85_KEY_LEN + 1];
    char derived[SC_Z85_KEY_LEN + 1];
    char sub_err[512];
    int rc = -1;

    if (is_z85_key(o->server_public_key)) {
        memcpy(server, o->server_public_key, sizeof server);
    } else if (sc_curve_read(o->server_public_key, false, server, sub_err,
                             sizeof sub_err) != 0) {
        seterr(err, errlen, "cannot read the gateway public key: %s",
               sub_err);
        return -1;
    }

    size_t blen = strlen(o->client_key_base);
    char *path = malloc(blen + sizeof ".secret");
    if (!path) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    memcpy(path, o->client_key_base, blen);
    memcpy(path + blen, ".secret", sizeof ".secret");
    if (sc_curve_read(path, true, secret, sub_err, sizeof sub_err) != 0) {
        seterr(err, errlen, "cannot read our CURVE secret key: %s", sub_err);
        goto out;
    }
    memcpy(path + blen, ".public", sizeof ".public");
    if (sc_curve_read(path, false, public, sub_err, sizeof sub_err) != 0) {
        seterr(err, errlen, "cannot read our CURVE public key: %s", sub_err);
        goto out;
    }
    if (zmq_curve_public(derived, secret) != 0 ||
        strcmp(derived, public) != 0) {
        seterr(err, errlen, "%s does not belong to %s.secret", path,
               o->client_key_base);
        goto out;
    }
    if (zmq_setsockopt(c->sub, ZMQ_CURVE_SERVERKEY, server,
                       SC_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(c->sub, ZMQ_CURVE_PUBLICKEY, public,
                       SC_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(c->sub, ZMQ_CURVE_SECRETKEY, secret,
                       SC_Z85_KEY_LEN) != 0) {
        seterr(err, errlen, "cannot set CURVE keys: %s",
               zmq_strerror(zmq_errno()));
        goto out;
    }
    c->curve = true;
    rc = 0;
out:
    sodium_memzero(secret, sizeof secret);
    free(path);
    return rc;
}

static int set_int(void *sock, int opt, int val)
{
    return zmq_setsockopt(sock, opt, &val, sizeof val);
}

sc_client_t *sc_client_new(const sc_client_options_t *o, char *err,
                           size_t errlen)
{
    char sub_err[512];

    if (!o || !o->endpoint || !*o->endpoint) {
        seterr(err, errlen, "no endpoint given");
        return NULL;
    }
    if (!o->jwks_path || !*o->jwks_path) {
        seterr(err, errlen, "no JWKS file given");
        return NULL;
    }
    bool have_server = o->server_public_key && *o->server_public_key;
    bool have_base = o->client_key_base && *o->client_key_base;
    if (have_server != have_base) {
        seterr(err, errlen, "CURVE needs both the gateway public key and "
               "our key pair (%s missing)",
               have_server ? "client key base" : "gateway public key");
        return NULL;
    }
    if (sodium_init() < 0) {
        seterr(err, errlen, "cannot initialise libsodium");
        return NULL;
    }

    sc_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    c->endpoint = strdup(o->endpoint);
    if (!c->endpoint) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    c->jwks = sc_jwks_load(o->jwks_path, sub_err, sizeof sub_err);
    if (!c->jwks) {
        /* sc_jwks_load names the file itself; say it once. */
        const char *why = sub_err;
        size_t plen = strlen(o->jwks_path);
        if (strncmp(why, o->jwks_path, plen) == 0 && why[plen] == ':')
            why += plen + (why[plen + 1] == ' ' ? 2 : 1);
        seterr(err, errlen, "cannot read JWKS %s: %s", o->jwks_path, why);
        goto fail;
    }
    if (sc_jwks_count(c->jwks) == 0) {
        seterr(err, errlen, "JWKS %s holds no Ed25519 keys: every message "
               "would be refused", o->jwks_path);
        goto fail;
    }

    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        seterr(err, errlen, "cannot create ZeroMQ context: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    c->sub = zmq_socket(c->ctx, ZMQ_SUB);
    if (!c->sub) {
        seterr(err, errlen, "cannot create SUB socket: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    int timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                            : DEFAULT_CONNECT_TIMEOUT_MS;
    if (set_int(c->sub, ZMQ_LINGER, 0) != 0 ||
        set_int(c->sub, ZMQ_RCVHWM, RCV_HWM) != 0 ||
        set_int(c->sub, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS) != 0 ||
        set_int(c->sub, ZMQ_CONNECT_TIMEOUT, timeout) != 0 ||
        set_int(c->sub, ZMQ_HANDSHAKE_IVL, timeout) != 0) {
        seterr(err, errlen, "cannot set socket options: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    int64_t maxsize = MAX_MSG_SIZE;
    if (zmq_setsockopt(c->sub, ZMQ_MAXMSGSIZE, &maxsize,
                       sizeof maxsize) != 0) {
        seterr(err, errlen, "cannot set ZMQ_MAXMSGSIZE: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (have_server && setup_curve(c, o, err, errlen) != 0)
        goto fail;

    /* The monitor must run before connect() so that no handshake event is
     * missed: a ZAP rejection is only ever reported there. */
    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://sc-client-mon-%p", (void *)c);
    if (zmq_socket_monitor(c->sub, mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
        seterr(err, errlen, "cannot start socket monitor: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (!c->mon || set_int(c->mon, ZMQ_LINGER, 0) != 0 ||
        zmq_connect(c->mon, mon_ep) != 0) {
        seterr(err, errlen, "cannot connect socket monitor: %s",
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_connect(c->sub, o->endpoint) != 0) {
        char q[TOPIC_QUOTE_MAX * 4 + 8];
        int e = zmq_errno();
        quote_bytes(o->endpoint, strlen(o->endpoint), q, sizeof q);
        seterr(err, errlen, "bad endpoint '%s': %s", q, zmq_strerror(e));
        goto fail;
    }
    return c;

fail:
    sc_client_destroy(&c);
    return NULL;
}

static void release_message(sc_client_t *c)
{
    json_decref(c->env);
    c->env = NULL;
    free(c->envelope);
    c->envelope = NULL;
    c->envelope_len = 0;
    free(c->jws);
    c->jws = NULL;
    c->jws_len = 0;
    c->kid[0] = '\0';
}

void sc_client_destroy(sc_client_t **client_p)
{
    if (!client_p || !*client_p)
        return;
    sc_client_t *c = *client_p;
    if (c->sub) {
        zmq_socket_monitor(c->sub, NULL, 0);
        zmq_close(c->sub);
    }
    if (c->mon)
        zmq_close(c->mon);
    if (c->ctx)
        zmq_ctx_term(c->ctx); /* every socket has LINGER 0: cannot hang */
    release_message(c);
    sc_jwks_destroy(&c->jwks);
    free(c->endpoint);
    free(c);
    *client_p = NULL;
}

int sc_client_subscribe(sc_client_t *c, const char *subtree, char *err,
                        size_t errlen)
{
    if (!c || !subtree) {
        seterr(err, errlen, "no subtree given");
        return -1;
    }
    size_t len = strlen(subtree);
    if (!sc_subtree_valid(subtree, len)) {
        char q[TOPIC_QUOTE_MAX * 4 + 8];
        quote_bytes(subtree, len, q, sizeof q);
        seterr(err, errlen, "bad subtree '%s': want lowercase [a-z0-9-] "
               "segments each followed by '.', e.g. 'energy.' or "
               "'energy.nuclear.tasks.'", q);
        return -1;
    }
    if (zmq_setsockopt(c->sub, ZMQ_SUBSCRIBE, subtree, len) != 0) {
        seterr(err, errlen, "cannot subscribe to '%s': %s", subtree,
               zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

void sc_client_stats(const sc_client_t *c, sc_client_stats_t *out)
{
    if (!out)
        return;
    if (!c) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = c->stats;
}

/* ---- verification (shared by recv and verify) ------------------------- */

static int refuse(sc_client_t *c, const char *topic, size_t topic_len,
                  const char *reason, char *err, size_t errlen)
{
    char q[TOPIC_QUOTE_MAX * 4 + 8];
    quote_bytes(topic, topic_len, q, sizeof q);
    c->stats.refused++;
    seterr(err, errlen, "refused message on %s: %s",
           topic_len ? q : "(empty topic)", reason);
    return SC_CLIENT_REFUSED;
}

static const char *str_field(json_t *env, const char *name, bool *ok)
{
    json_t *v = json_object_get(env, name);
    if (json_is_string(v))
        return json_string_value(v);
    *ok = false;
    return NULL;
}

/* The envelope text exactly as signed: the decoded JWS payload. Falls
 * back to a compact re-serialisation if the payload is not one clean line
 * (another signer's pretty-printing, an embedded NUL). */
static int keep_envelope_text(sc_client_t *c, const char *jws, size_t len)
{
    const char *d1 = memchr(jws, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jws))
                        : NULL;
    if (d1 && d2) {
        size_t b64len = (size_t)(d2 - d1 - 1);
        size_t cap = b64len / 4 * 3 + 3;
        char *bin = malloc(cap + 1);
        size_t binlen = 0;
        if (bin &&
            sodium_base642bin((unsigned char *)bin, cap, d1 + 1, b64len,
                              NULL, &binlen, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
            binlen > 0 && !memchr(bin, '\0', binlen) &&
            !memchr(bin, '\n', binlen) && !memchr(bin, '\r', binlen)) {
            bin[binlen] = '\0';
            c->envelope = bin;
            c->envelope_len = binlen;
            return 0;
        }
        free(bin);
    }
    c->envelope = json_dumps(c->env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!c->envelope)
        return -1;
    c->envelope_len = strlen(c->envelope);
    return 0;
}

static int verify(sc_client_t *c, const char *topic, size_t topic_len,
                  const char *jws, size_t jws_len, sc_message_t *msg,
                  char *err, size_t errlen)
{
    char reason[512];

    release_message(c);
    c->stats.received++;

    if (topic_len == 0)
        return refuse(c, topic, topic_len, "empty topic frame", err, errlen);
    if (topic[topic_len - 1] != '.')
        return refuse(c, topic, topic_len, "topic does not end in '.'", err,
                      errlen);
    if (jws_len == 0)
        return refuse(c, topic, topic_len, "empty JWS frame", err, errlen);

    reason[0] = '\0';
    json_t *env = NULL;
    int rc = sc_envelope_verify(c->jwks, topic, topic_len, jws, jws_len, &env,
                                c->kid, reason, sizeof reason);
    if (rc != 0 || !env) {
        json_decref(env);
        c->kid[0] = '\0';
        if (!reason[0])
            snprintf(reason, sizeof reason, "verification failed (code %d)",
                     rc);
        return refuse(c, topic, topic_len, reason, err, errlen);
    }
    c->env = env;

    /* core/common checked the shape; re-check what we hand out so that a
     * mismatch between the two can never become a NULL dereference. */
    bool ok = json_is_object(env);
    sc_message_t m = {0};
    m.channel = str_field(env, "channel", &ok);
    m.epoch = str_field(env, "epoch", &ok);
    m.id = str_field(env, "id", &ok);
    m.ts = str_field(env, "ts", &ok);
    m.kind = str_field(env, "kind", &ok);
    json_t *seq = json_object_get(env, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 0)
        ok = false;
    else
        m.seq = (uint64_t)json_integer_value(seq);
    json_t *key = json_object_get(env, "key");
    if (json_is_string(key))
        m.key = json_string_value(key);
    else if (!json_is_null(key))
        ok = false;
    if (!ok) {
        release_message(c);
        return refuse(c, topic, topic_len, "envelope field missing or of "
                      "the wrong type", err, errlen);
    }

    c->jws = malloc(jws_len + 1);
    if (!c->jws || keep_envelope_text(c, jws, jws_len) != 0) {
        release_message(c);
        c->stats.received--; /* not the message's fault */
        seterr(err, errlen, "out of memory");
        return SC_CLIENT_ERROR;
    }
    memcpy(c->jws, jws, jws_len);
    c->jws[jws_len] = '\0';
    c->jws_len = jws_len;

    m.kid = c->kid;
    m.envelope = c->envelope;
    m.envelope_len = c->envelope_len;
    m.jws = c->jws;
    m.jws_len = c->jws_len;
    if (msg)
        *msg = m;
    c->stats.delivered++;
    return SC_CLIENT_MESSAGE;
}

int sc_client_verify(sc_client_t *c, const char *topic, size_t topic_len,
                     const char *jws, size_t jws_len, sc_message_t *msg,
                     char *err, size_t errlen)
{
    if (!c || (!topic && topic_len) || (!jws && jws_len)) {
        seterr(err, errlen, "sc_client_verify: bad arguments");
        return SC_CLIENT_ERROR;
    }
    return verify(c, topic ? topic : "", topic_len, jws ? jws : "", jws_len,
                  msg, err, errlen);
}

/* ---- the socket ------------------------------------------------------- */

static const char *protocol_error_text(sc_client_t *c, uint32_t code)
{
    switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return c->curve ? "security mechanism mismatch: the gateway does "
                          "not speak CURVE on this endpoint"
                        : "security mechanism mismatch: the gateway "
                          "requires CURVE (give its public key and our key "
                          "pair)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "CURVE cryptographic error: wrong gateway public key?";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "CURVE key exchange failed";
    default:
        return NULL;
    }
}

/* Read every pending monitor event. Returns 0, or a sticky fatal code. */
static int drain_monitor(sc_client_t *c)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        /* Frame 1: uint16 event, uint32 value (host order); frame 2: the
         * endpoint. Read the second frame whatever the first holds. */
        uint16_t event = 0;
        uint32_t value = 0;
        bool more = zmq_msg_more(&ev);
        if (zmq_msg_size(&ev) == 6) {
            const uint8_t *d = zmq_msg_data(&ev);
            memcpy(&event, d, 2);
            memcpy(&value, d + 2, 4);
        }
        zmq_msg_close(&ev);
        while (more) {
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&addr, c->mon, 0) < 0)
                more = false;
            else
                more = zmq_msg_more(&addr);
            zmq_msg_close(&addr);
        }
        if (c->fatal_rc)
            continue;

        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            c->hs_failures = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            /* libzmq does not retry after a ZAP rejection. */
            c->fatal_rc = SC_CLIENT_AUTH;
            snprintf(c->fatal, sizeof c->fatal,
                     "broker rejected our key (code %" PRIu32 ")", value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: {
            const char *t = protocol_error_text(c, value);
            c->fatal_rc = SC_CLIENT_ERROR;
            if (t)
                snprintf(c->fatal, sizeof c->fatal,
                         "handshake with %.128s failed: %s", c->endpoint, t);
            else
                snprintf(c->fatal, sizeof c->fatal,
                         "handshake with %.128s failed: protocol error "
                         "0x%08" PRIx32, c->endpoint, value);
            break;
        }
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            if (++c->hs_failures >= MAX_HANDSHAKE_FAILURES) {
                c->fatal_rc = SC_CLIENT_ERROR;
                snprintf(c->fatal, sizeof c->fatal,
                         "handshake with %.128s failed %u times in a row "
                         "(%s)%s", c->endpoint, c->hs_failures,
                         zmq_strerror((int)value),
                         c->curve ? ": is the gateway public key right?"
                                  : ": does the gateway require CURVE? "
                                    "(give its public key and our key "
                                    "pair)");
            }
            break;
        default:
            break;
        }
    }
    return c->fatal_rc;
}

/* Read one whole multipart message and classify it. */
static int read_message(sc_client_t *c, sc_message_t *msg, char *err,
                        size_t errlen)
{
    zmq_msg_t parts[2];
    size_t nframes = 0;
    bool more = true;

    while (more) {
        /* Keep the first two frames; count and drop the rest. */
        zmq_msg_t scratch;
        zmq_msg_t *f = nframes < 2 ? &parts[nframes] : &scratch;
        zmq_msg_init(f);
        int flags = nframes == 0 ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv(f, c->sub, flags) < 0) {
            int e = zmq_errno();
            zmq_msg_close(f);
            for (size_t i = 0; i < nframes && i < 2; i++)
                zmq_msg_close(&parts[i]);
            if (nframes == 0 && e == EAGAIN)
                return SC_CLIENT_TIMEOUT; /* spurious wake-up */
            if (nframes == 0 && e == EINTR) {
                seterr(err, errlen, "interrupted");
                return SC_CLIENT_INTERRUPTED;
            }
            seterr(err, errlen, "receive from %s failed: %s", c->endpoint,
                   zmq_strerror(e));
            return SC_CLIENT_ERROR;
        }
        more = zmq_msg_more(f);
        if (f == &scratch)
            zmq_msg_close(&scratch);
        nframes++;
    }

    int rc;
    if (nframes == 2 && zmq_msg_size(&parts[0]) > 0 &&
        ((const char *)zmq_msg_data(&parts[0]))[zmq_msg_size(&parts[0]) -
                                                1] == '.') {
        rc = verify(c, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                    zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), msg,
                    err, errlen);
    } else {
        char reason[96];
        release_message(c);
        c->stats.received++;
        if (nframes == 2)
            snprintf(reason, sizeof reason, "unknown message shape: 2 "
                     "frames, the first is not a topic");
        else
            snprintf(reason, sizeof reason, "unknown message shape: %zu "
                     "frame%s", nframes, nframes == 1 ? "" : "s");
        rc = refuse(c, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                    reason, err, errlen);
    }
    for (size_t i = 0; i < nframes && i < 2; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}

int sc_client_recv(sc_client_t *c, sc_message_t *msg, int timeout_ms,
                   char *err, size_t errlen)
{
    if (!c) {
        seterr(err, errlen, "sc_client_recv: no client");
        return SC_CLIENT_ERROR;
    }
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

    for (;;) {
        if (c->fatal_rc || drain_monitor(c)) {
            seterr(err, errlen, "%s", c->fatal);
            return c->fatal_rc;
        }
        long wait = -1;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ms();
            wait = left > 0 ? (long)left : 0;
        }
        zmq_pollitem_t items[2] = {
            {.socket = c->sub, .events = ZMQ_POLLIN},
            {.socket = c->mon, .events = ZMQ_POLLIN},
        };
        int n = zmq_poll(items, 2, wait);
        if (n < 0) {
            int e = zmq_errno();
            if (e == EINTR) {
                seterr(err, errlen, "interrupted");
                return SC_CLIENT_INTERRUPTED;
            }
            seterr(err, errlen, "poll on %s failed: %s", c->endpoint,
                   zmq_strerror(e));
            return SC_CLIENT_ERROR;
        }
        if (items[1].revents & ZMQ_POLLIN)
            continue; /* drain the monitor first */
        if (items[0].revents & ZMQ_POLLIN) {
            int rc = read_message(c, msg, err, errlen);
            if (rc != SC_CLIENT_TIMEOUT)
                return rc;
        }
        if (timeout_ms >= 0 && now_ms() >= deadline) {
            seterr(err, errlen, "no message within %d ms", timeout_ms);
            return SC_CLIENT_TIMEOUT;
        }
    }
}
