/*
 * test_client.c - libsectorcast: verification, the SUB socket, CURVE.
 *
 * 1. sc_client_verify(): a valid message is delivered with the right
 *    fields; every kind of forgery or garbage is refused with a reason,
 *    counted, and never delivered.
 * 2. A real plain PUB over loopback: good, bad and odd-shaped messages.
 * 3. CURVE: a gateway whose ZAP handler answers 400 makes recv return
 *    SC_CLIENT_AUTH; one answering 200 delivers; a mechanism mismatch is a
 *    clear error. Every wait is bounded.
 * 4. The ordering rules (core/client/order.c) without sockets: deliver,
 *    duplicate, hold, replay, overflow, skip.
 * 5. The state file (core/client/state.c): records, torn last line,
 *    malformed line, lock, compaction.
 * 6. A fake gateway (PUB + a ROUTER service in a thread): gaps repaired by
 *    replay, heartbeats, resume from a state file, pruned ranges and a
 *    replaced journal reported as events, grants checked.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "client/order.h"
#include "client/state.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "common/jwks.h"
#include "common/keys.h"
#include "sectorcast/client.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* draft option, stable in libzmq 4.3 */
#endif

#define CHANNEL "energy.nuclear.tasks"
#define TOPIC CHANNEL "."

typedef struct fixture {
    char dir[64];
    char jwks_path[128];
    sc_sigkey_t *key;    /* in the JWKS */
    sc_sigkey_t *key2;   /* also in the JWKS (rotation) */
    sc_sigkey_t *rogue;  /* not in the JWKS */
    sc_client_t *client; /* for verify tests: connected to nothing */
} fixture_t;

#define EPOCH1 "0123456789abcdef0123456789abcdef"

/* Sign an envelope of `epoch` for `channel` with `key`; caller frees. */
static char *sign_e(const sc_sigkey_t *key, const char *channel, uint64_t seq,
                    const char *k, const char *epoch, size_t *len);

/* Sign an envelope for `channel` with `key`; caller frees. */
static char *sign(const sc_sigkey_t *key, const char *channel, uint64_t seq,
                  const char *k, size_t *len)
{
    return sign_e(key, channel, seq, k, EPOCH1, len);
}

static char *sign_e(const sc_sigkey_t *key, const char *channel, uint64_t seq,
                    const char *k, const char *epoch, size_t *len)
{
    json_t *source = json_pack("{s:s}", "plugin", "test");
    json_t *data = json_pack("{s:s,s:i}", "title", "SMR component line",
                             "progress", 40);
    sc_envelope_in_t in = {
        .channel = channel, .epoch = epoch,
        .seq = seq, .id = NULL, .ts = NULL, .kind = "task.updated",
        .key = k, .source = source, .data = data,
    };
    char err[256] = "";
    char *jws = NULL;
    int rc = sc_envelope_sign(&in, key, &jws, len, err, sizeof err);
    json_decref(source);
    json_decref(data);
    if (rc != 0)
        fail_msg("sc_envelope_sign: %s", err);
    return jws;
}

static int setup(void **state)
{
    char err[256];
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sc-test-client-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->jwks_path, sizeof f->jwks_path, "%s/jwks.json", f->dir);
    f->key = sc_sigkey_generate(err, sizeof err);
    f->key2 = sc_sigkey_generate(err, sizeof err);
    f->rogue = sc_sigkey_generate(err, sizeof err);
    assert_non_null(f->key);
    assert_non_null(f->key2);
    assert_non_null(f->rogue);
    sc_jwks_t *jwks = sc_jwks_new();
    assert_non_null(jwks);
    assert_int_equal(sc_jwks_add(jwks, sc_sigkey_public(f->key)), 0);
    assert_int_equal(sc_jwks_add(jwks, sc_sigkey_public(f->key2)), 0);
    assert_int_equal(sc_jwks_save(jwks, f->jwks_path, err, sizeof err), 0);
    sc_jwks_destroy(&jwks);

    /* A client that never connects anywhere real: verify needs no peer. */
    sc_client_options_t o = {.endpoint = "tcp://127.0.0.1:1",
                             .jwks_path = f->jwks_path};
    f->client = sc_client_new(&o, err, sizeof err);
    if (!f->client)
        fail_msg("sc_client_new: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char path[192];
    sc_client_destroy(&f->client);
    sc_sigkey_destroy(&f->key);
    sc_sigkey_destroy(&f->key2);
    sc_sigkey_destroy(&f->rogue);
    const char *names[] = {"jwks.json", "agency.secret", "agency.public",
                           "bad.secret", "bad.public", "gateway.public"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- 1. verification without a socket --------------------------------- */

static void test_valid_message_delivered(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char *jws = sign(f->key, CHANNEL, 7, "task-42", &len);
    sc_message_t m;
    char err[512] = "";
    sc_client_stats_t before, after;
    sc_client_stats(f->client, &before);

    int rc = sc_client_verify(f->client, TOPIC, strlen(TOPIC), jws, len, &m,
                              err, sizeof err);
    assert_int_equal(rc, SC_CLIENT_MESSAGE);
    assert_string_equal(m.channel, CHANNEL);
    assert_string_equal(m.epoch, "0123456789abcdef0123456789abcdef");
    assert_true(m.seq == 7);
    assert_string_equal(m.kind, "task.updated");
    assert_string_equal(m.key, "task-42");
    assert_string_equal(m.kid, sc_sigkey_kid(f->key));
    assert_non_null(m.id);
    assert_non_null(m.ts);
    assert_true(m.jws_len == len);
    assert_memory_equal(m.jws, jws, len);

    /* The envelope text is the signed payload: one JSON line. */
    assert_true(m.envelope_len == strlen(m.envelope));
    assert_null(memchr(m.envelope, '\n', m.envelope_len));
    json_error_t je;
    json_t *env = json_loadb(m.envelope, m.envelope_len, 0, &je);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "channel")),
                        CHANNEL);
    assert_int_equal(json_integer_value(json_object_get(env, "v")), 1);
    json_decref(env);

    sc_client_stats(f->client, &after);
    assert_true(after.delivered == before.delivered + 1);
    assert_true(after.received == before.received + 1);
    assert_true(after.refused == before.refused);
    free(jws);

    /* A second live key (rotation) and a null key. */
    jws = sign(f->key2, CHANNEL, 8, NULL, &len);
    rc = sc_client_verify(f->client, TOPIC, strlen(TOPIC), jws, len, &m, err,
                          sizeof err);
    assert_int_equal(rc, SC_CLIENT_MESSAGE);
    assert_null(m.key);
    assert_string_equal(m.kid, sc_sigkey_kid(f->key2));
    assert_true(m.seq == 8);
    free(jws);
}

/* Expect refusal: counted, a reason given, *m untouched. */
static void expect_refused(fixture_t *f, const char *topic, size_t topic_len,
                           const char *jws, size_t jws_len,
                           const char *reason_part)
{
    sc_message_t m;
    memset(&m, 0xA5, sizeof m);
    sc_message_t sentinel = m;
    char err[512] = "";
    sc_client_stats_t before, after;
    sc_client_stats(f->client, &before);

    int rc = sc_client_verify(f->client, topic, topic_len, jws, jws_len, &m,
                              err, sizeof err);
    assert_int_equal(rc, SC_CLIENT_REFUSED);
    if (getenv("SC_TEST_VERBOSE"))
        print_message("%s\n", err);
    assert_memory_equal(&m, &sentinel, sizeof m);
    if (strncmp(err, "refused message on ", 19) != 0)
        fail_msg("unexpected error text: '%s'", err);
    const char *reason = strstr(err, ": ");
    assert_non_null(reason);
    assert_true(strlen(reason) > 2);
    if (reason_part && !strstr(err, reason_part))
        fail_msg("'%s' does not mention '%s'", err, reason_part);
    sc_client_stats(f->client, &after);
    assert_true(after.refused == before.refused + 1);
    assert_true(after.received == before.received + 1);
    assert_true(after.delivered == before.delivered);
}

static char *b64url(const void *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(
        len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    assert_non_null(out);
    sodium_bin2base64(out, cap, bin, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

static void test_tampered_refused(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char *jws = sign(f->key, CHANNEL, 9, "task-1", &len);
    char *d1 = strchr(jws, '.');
    char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);

    /* One payload character changed. */
    char *t = strdup(jws);
    size_t mid = (size_t)(d1 - jws) + (size_t)(d2 - d1) / 2;
    t[mid] = t[mid] == 'A' ? 'B' : 'A';
    expect_refused(f, TOPIC, strlen(TOPIC), t, len, NULL);
    free(t);

    /* A different (well-formed) protected header over the same payload. */
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"x\"}",
             sc_sigkey_kid(f->key));
    char *h = b64url(hdr, strlen(hdr));
    size_t tlen = strlen(h) + strlen(d1);
    t = malloc(tlen + 1);
    snprintf(t, tlen + 1, "%s%s", h, d1);
    expect_refused(f, TOPIC, strlen(TOPIC), t, tlen, NULL);
    free(t);
    free(h);

    /* alg none. */
    const char *none = "{\"alg\":\"none\"}";
    h = b64url(none, strlen(none));
    tlen = strlen(h) + strlen(d1);
    t = malloc(tlen + 1);
    snprintf(t, tlen + 1, "%s%s", h, d1);
    expect_refused(f, TOPIC, strlen(TOPIC), t, tlen, NULL);
    free(t);
    free(h);

    /* One signature character changed. */
    t = strdup(jws);
    t[d2 - jws + 1] = t[d2 - jws + 1] == 'A' ? 'B' : 'A';
    expect_refused(f, TOPIC, strlen(TOPIC), t, len, NULL);
    free(t);

    /* Signature removed, truncated JWS, payload only. */
    expect_refused(f, TOPIC, strlen(TOPIC), jws, (size_t)(d2 - jws) + 1,
                   NULL);
    expect_refused(f, TOPIC, strlen(TOPIC), jws, len / 2, NULL);
    expect_refused(f, TOPIC, strlen(TOPIC), jws, len - 1, NULL);
    free(jws);
}

static void test_foreign_key_refused(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char *jws = sign(f->rogue, CHANNEL, 1, "task-1", &len);
    expect_refused(f, TOPIC, strlen(TOPIC), jws, len, NULL);
    free(jws);
}

static void test_wrong_channel_refused(void **state)
{
    fixture_t *f = *state;
    size_t len;
    /* Validly signed for another channel, replayed under our topic. */
    char *jws = sign(f->key, "energy.lng.tasks", 1, "task-1", &len);
    expect_refused(f, TOPIC, strlen(TOPIC), jws, len, NULL);
    expect_refused(f, "energy.", strlen("energy."), jws, len, NULL);
    /* Topic without its trailing '.'. */
    expect_refused(f, "energy.lng.tasks", strlen("energy.lng.tasks"), jws,
                   len, "'.'");
    free(jws);
}

static void test_garbage_refused(void **state)
{
    fixture_t *f = *state;
    unsigned char junk[512];
    for (int round = 0; round < 50; round++) {
        randombytes_buf(junk, sizeof junk);
        size_t n = 1 + randombytes_uniform(sizeof junk - 1);
        expect_refused(f, TOPIC, strlen(TOPIC), (const char *)junk, n, NULL);
        /* Garbage topic ending in '.' with garbage JWS. */
        junk[n / 2] = '.';
        expect_refused(f, (const char *)junk, n / 2 + 1,
                       (const char *)junk + n / 2, n - n / 2, NULL);
    }
    /* Three dots, nothing else; and things that look almost right. */
    expect_refused(f, TOPIC, strlen(TOPIC), "..", 2, NULL);
    expect_refused(f, TOPIC, strlen(TOPIC), "a.b.c", 5, NULL);
    expect_refused(f, TOPIC, strlen(TOPIC), "e30.e30.AAAA", 12, NULL);
    /* A NUL inside the topic and a non-ASCII topic. */
    expect_refused(f, "energy\0x.", 9, "a.b.c", 5, NULL);
    expect_refused(f, "\xff\xfe.", 3, "a.b.c", 5, NULL);
}

static void test_empty_frames_refused(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char *jws = sign(f->key, CHANNEL, 1, "task-1", &len);
    expect_refused(f, "", 0, jws, len, "empty");
    expect_refused(f, TOPIC, strlen(TOPIC), "", 0, "empty");
    expect_refused(f, "", 0, "", 0, "empty");
    expect_refused(f, NULL, 0, NULL, 0, "empty");
    free(jws);
}

static void test_new_errors(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    char missing[192];
    snprintf(missing, sizeof missing, "%s/nope.json", f->dir);

    sc_client_options_t o = {.endpoint = "tcp://127.0.0.1:1",
                             .jwks_path = missing};
    assert_null(sc_client_new(&o, err, sizeof err));
    if (!strstr(err, "cannot read JWKS") || !strstr(err, "nope.json"))
        fail_msg("bad error text: '%s'", err);

    o.jwks_path = f->jwks_path;
    o.endpoint = "tcp:/x";
    assert_null(sc_client_new(&o, err, sizeof err));
    if (!strstr(err, "bad endpoint 'tcp:/x'"))
        fail_msg("bad error text: '%s'", err);

    o.endpoint = "tcp://127.0.0.1:1";
    o.server_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    assert_null(sc_client_new(&o, err, sizeof err));
    if (!strstr(err, "CURVE"))
        fail_msg("bad error text: '%s'", err);

    /* A secret key file that others can read is refused. */
    char base[192], path[200];
    snprintf(base, sizeof base, "%s/bad", f->dir);
    assert_int_equal(sc_curve_generate(base, true, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s.secret", base);
    assert_int_equal(chmod(path, 0644), 0);
    o.client_key_base = base;
    assert_null(sc_client_new(&o, err, sizeof err));
    if (!strstr(err, "bad.secret"))
        fail_msg("bad error text: '%s'", err);

    /* Server key neither Z85 nor a readable file. */
    assert_int_equal(chmod(path, 0600), 0);
    o.server_public_key = "/nonexistent/gateway.public";
    assert_null(sc_client_new(&o, err, sizeof err));
    if (!strstr(err, "gateway public key"))
        fail_msg("bad error text: '%s'", err);

    assert_null((sc_client_new)(NULL, err, sizeof err));

    /* Subtrees must be whole subtrees. */
    const char *bad[] = {"", "energy", "Energy.", ".", "energy..",
                         "energy.nuclear"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            sc_client_subscribe(f->client, bad[i], err, sizeof err), -1);
    assert_int_equal(sc_client_subscribe(f->client, "energy.", err,
                                         sizeof err), 0);
}

/* ---- 2. a real PUB socket over loopback ------------------------------- */

static int send_frames(void *sock, const char *const *frames,
                       const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (zmq_send(sock, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) <
            0)
            return -1;
    return 0;
}

static int send_pair(void *sock, const char *topic, const char *jws,
                     size_t len)
{
    const char *fr[2] = {topic, jws};
    size_t ln[2] = {strlen(topic), len};
    return send_frames(sock, fr, ln, 2);
}

/* Publish `jws` until the client receives something (slow joiner), then
 * drain the duplicates. Bounded by 5 s. */
static void join(void *pub, sc_client_t *client, const char *jws,
                 size_t len)
{
    sc_message_t m;
    char err[512];
    int64_t end = sc_mono_ms() + 5000;
    int rc = SC_CLIENT_TIMEOUT;
    while (rc == SC_CLIENT_TIMEOUT && sc_mono_ms() < end) {
        assert_int_equal(send_pair(pub, TOPIC, jws, len), 0);
        rc = sc_client_recv(client, &m, 50, err, sizeof err);
    }
    if (rc != SC_CLIENT_MESSAGE)
        fail_msg("no message through the socket: %d %s", rc, err);
    while (sc_client_recv(client, &m, 200, err, sizeof err) ==
           SC_CLIENT_MESSAGE)
        ;
}

static void *bind_pub(void *ctx, char *endpoint, size_t len)
{
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    assert_non_null(pub);
    int zero = 0;
    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, endpoint, &len),
                     0);
    return pub;
}

/* A mixed stream (forged, odd shapes, another channel, heartbeats, a
 * gap) over a real socket, checking signatures on `threads` threads: the
 * same results in the same order whatever the count. */
static void socket_plain(fixture_t *f, int threads)
{
    char err[512] = "";
    char endpoint[128];
    void *ctx = zmq_ctx_new();
    void *pub = bind_pub(ctx, endpoint, sizeof endpoint);

    sc_client_options_t o = {.endpoint = endpoint,
                             .jwks_path = f->jwks_path,
                             .verify_threads = threads};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    assert_int_equal(sc_client_subscribe(c, "energy.", err, sizeof err), 0);

    size_t len, rlen, olen;
    char *good = sign(f->key, CHANNEL, 1, "task-1", &len);
    char *rogue = sign(f->rogue, CHANNEL, 2, "task-1", &rlen);
    char *other = sign(f->key, "defence.mro.tasks", 1, "t", &olen);
    join(pub, c, good, len);
    sc_client_stats_t base;
    sc_client_stats(c, &base);
    /* A program built against the header before the origin counters calls
     * the plain symbol with the shorter struct (up to `heartbeats`): it
     * gets those members and nothing past them is written. */
    struct {
        uint64_t old[8];  /* received .. heartbeats */
        uint64_t past[3]; /* what the old struct did not have */
    } older;
    assert_int_equal(offsetof(sc_client_stats_t, snapshot),
                     sizeof older.old);
    memset(&older, 0xab, sizeof older);
    (sc_client_stats)(c, (sc_client_stats_t *)(void *)&older);
    assert_int_equal(older.old[0], base.received);
    assert_int_equal(older.old[1], base.delivered);
    assert_int_equal(older.old[7], base.heartbeats);
    for (int i = 0; i < 3; i++)
        assert_int_equal(older.past[i], 0xababababababababULL);

    /* Forged, 3 frames, 1 frame, unsubscribed channel, then good. */
    assert_int_equal(send_pair(pub, TOPIC, rogue, rlen), 0);
    const char *fr3[3] = {TOPIC, good, "extra"};
    size_t ln3[3] = {strlen(TOPIC), len, 5};
    assert_int_equal(send_frames(pub, fr3, ln3, 3), 0);
    const char *fr1[1] = {"energy.heartbeat."};
    size_t ln1[1] = {strlen(fr1[0])};
    assert_int_equal(send_frames(pub, fr1, ln1, 1), 0);
    assert_int_equal(send_pair(pub, "defence.mro.tasks.", other, olen), 0);
    const char *fr2[2] = {"energy.x", good};
    size_t ln2[2] = {8, len};
    assert_int_equal(send_frames(pub, fr2, ln2, 2), 0);
    char *good2 = sign(f->key, CHANNEL, 3, "task-2", &len);
    assert_int_equal(send_pair(pub, TOPIC, good2, len), 0);
    /* Heartbeats: known shape, never data, never refused. Head 3 is where
     * we are; head 5 says 4..5 were lost (no service to replay from). */
    const char *hb3 = "{\"channel\":\"" CHANNEL "\",\"epoch\":\"" EPOCH1
                      "\",\"head\":3,\"ts\":\"2026-01-01T00:00:00.000Z\"}";
    const char *hb5 = "{\"channel\":\"" CHANNEL "\",\"epoch\":\"" EPOCH1
                      "\",\"head\":5,\"ts\":\"2026-01-01T00:00:00.000Z\"}";
    const char *frh[3] = {TOPIC, "sc-heartbeat-v1", hb3};
    size_t lnh[3] = {strlen(TOPIC), 15, strlen(hb3)};
    assert_int_equal(send_frames(pub, frh, lnh, 3), 0);
    frh[2] = hb5;
    lnh[2] = strlen(hb5);
    assert_int_equal(send_frames(pub, frh, lnh, 3), 0);
    /* An unknown tag in a 3-frame message is still an unknown shape. */
    const char *frx[3] = {TOPIC, "sc-heartbeat-v2", hb3};
    size_t lnx[3] = {strlen(TOPIC), 15, strlen(hb3)};
    assert_int_equal(send_frames(pub, frx, lnx, 3), 0);

    sc_message_t m;
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "refused message on " TOPIC ": "));
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "unknown message shape: 3 frames"));
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "unknown message shape: 1 frame"));
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "unknown message shape: 2 frames"));
    /* seq 2 was the forged one: without a service endpoint the gap is
     * reported, not repaired, and delivery goes on. */
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_GAP);
    assert_string_equal(err, "unrecoverable gap on " CHANNEL ": seq 2..2 "
                        "lost (no service endpoint to replay from)");
    sc_client_event_t ev;
    assert_int_equal(sc_client_event(c, &ev), 0);
    assert_int_equal(ev.code, SC_CLIENT_GAP);
    assert_string_equal(ev.channel, CHANNEL);
    assert_true(ev.first == 2 && ev.last == 2);
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_MESSAGE);
    assert_true(m.seq == 3);
    assert_string_equal(m.key, "task-2");
    assert_memory_equal(m.jws, good2, len);
    assert_int_equal(sc_client_event(c, &ev), -1);
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_GAP);
    assert_non_null(strstr(err, "seq 4..5 lost"));
    assert_int_equal(sc_client_recv(c, &m, 2000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "unknown message shape: 3 frames"));

    /* Nothing else: the defence channel was not subscribed. The total
     * timeout is honoured. */
    int64_t t0 = sc_mono_ms();
    assert_int_equal(sc_client_recv(c, &m, 300, err, sizeof err),
                     SC_CLIENT_TIMEOUT);
    int64_t took = sc_mono_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_int_equal(sc_client_recv(c, &m, 0, err, sizeof err),
                     SC_CLIENT_TIMEOUT);

    sc_client_stats_t st;
    sc_client_stats(c, &st);
    assert_true(st.refused == base.refused + 5);
    assert_true(st.delivered == base.delivered + 1);
    assert_true(st.heartbeats == 2);
    assert_true(st.lost == 3);
    /* join() sent seq 1 until it arrived: the extra copies were dropped */
    assert_true(st.received == st.delivered + st.refused + st.duplicates);

    free(good);
    free(good2);
    free(rogue);
    free(other);
    sc_client_destroy(&c);
    assert_null(c);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}

static void test_socket_plain(void **state) { socket_plain(*state, 0); }

/* The same stream with 4 verifying threads: whatever waits on the socket
 * is read as one batch and checked side by side, then taken in order. */
static void test_socket_plain_verify_threads(void **state)
{
    socket_plain(*state, 4);
}

/* ---- 3. CURVE and ZAP -------------------------------------------------- */

typedef struct zap_handler {
    void *rep;
    const char *status; /* "200" or "400" */
    int requests;
} zap_handler_t;

/* Answer every ZAP request with h->status until the context ends. */
static void *zap_thread(void *arg)
{
    zap_handler_t *h = arg;
    for (;;) {
        char frames[8][64];
        size_t sizes[8];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, h->rep, 0) < 0) {
                zmq_msg_close(&part);
                zmq_close(h->rep);
                return NULL; /* ETERM */
            }
            if (n < 8) {
                sizes[n] = zmq_msg_size(&part) < 64 ? zmq_msg_size(&part)
                                                    : 64;
                memcpy(frames[n], zmq_msg_data(&part), sizes[n]);
                n++;
            }
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        if (n < 2)
            continue;
        h->requests++;
        bool ok = strcmp(h->status, "200") == 0;
        zmq_send(h->rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(h->rep, frames[1], sizes[1], ZMQ_SNDMORE);
        zmq_send(h->rep, h->status, 3, ZMQ_SNDMORE);
        zmq_send(h->rep, ok ? "OK" : "not an agency", ok ? 2 : 13,
                 ZMQ_SNDMORE);
        zmq_send(h->rep, ok ? "agency" : "", ok ? 6 : 0, ZMQ_SNDMORE);
        zmq_send(h->rep, "", 0, 0);
    }
}

typedef struct curve_server {
    void *ctx;
    void *pub;
    pthread_t thread;
    zap_handler_t zap;
    char endpoint[128];
    char public[41];
} curve_server_t;

static void curve_server_start(curve_server_t *s, const char *status)
{
    char secret[41];
    int one = 1, zero = 0;
    memset(s, 0, sizeof *s);
    s->ctx = zmq_ctx_new();
    assert_int_equal(zmq_curve_keypair(s->public, secret), 0);

    /* The ZAP handler is bound before the server socket. */
    s->zap.rep = zmq_socket(s->ctx, ZMQ_REP);
    s->zap.status = status;
    zmq_setsockopt(s->zap.rep, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(s->zap.rep, "inproc://zeromq.zap.01"), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, zap_thread, &s->zap),
                     0);

    s->pub = zmq_socket(s->ctx, ZMQ_PUB);
    zmq_setsockopt(s->pub, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_setsockopt(s->pub, ZMQ_CURVE_SERVER, &one,
                                    sizeof one), 0);
    assert_int_equal(zmq_setsockopt(s->pub, ZMQ_CURVE_SECRETKEY, secret, 40),
                     0);
    assert_int_equal(zmq_setsockopt(s->pub, ZMQ_ZAP_DOMAIN, "sectorcast",
                                    10), 0);
    assert_int_equal(zmq_setsockopt(s->pub, ZMQ_ZAP_ENFORCE_DOMAIN, &one,
                                    sizeof one), 0);
    sodium_memzero(secret, sizeof secret);
    assert_int_equal(zmq_bind(s->pub, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof s->endpoint;
    assert_int_equal(zmq_getsockopt(s->pub, ZMQ_LAST_ENDPOINT, s->endpoint,
                                    &len), 0);
}

static void curve_server_stop(curve_server_t *s)
{
    zmq_close(s->pub);
    zmq_ctx_term(s->ctx); /* ends the ZAP thread's recv with ETERM */
    pthread_join(s->thread, NULL);
}

static void test_curve_rejected(void **state)
{
    fixture_t *f = *state;
    char err[512] = "", base[192], keyfile[192];
    curve_server_t s;
    curve_server_start(&s, "400");

    snprintf(base, sizeof base, "%s/agency", f->dir);
    assert_int_equal(sc_curve_generate(base, true, err, sizeof err), 0);
    /* The server key from a file this time. */
    snprintf(keyfile, sizeof keyfile, "%s/gateway.public", f->dir);
    FILE *fp = fopen(keyfile, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", s.public);
    fclose(fp);

    sc_client_options_t o = {.endpoint = s.endpoint,
                             .jwks_path = f->jwks_path,
                             .server_public_key = keyfile,
                             .client_key_base = base};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    assert_int_equal(sc_client_subscribe(c, "energy.", err, sizeof err), 0);

    sc_message_t m;
    int64_t t0 = sc_mono_ms();
    int rc = sc_client_recv(c, &m, 5000, err, sizeof err);
    assert_int_equal(rc, SC_CLIENT_AUTH);
    assert_true(sc_mono_ms() - t0 < 5000);
    assert_string_equal(err, "broker rejected our key (code 400)");
    assert_true(s.zap.requests >= 1);
    /* Final: a later call says the same at once. */
    assert_int_equal(sc_client_recv(c, &m, 5000, err, sizeof err),
                     SC_CLIENT_AUTH);

    sc_client_destroy(&c);
    curve_server_stop(&s);
}

static void test_curve_accepted(void **state)
{
    fixture_t *f = *state;
    char err[512] = "", base[192];
    curve_server_t s;
    curve_server_start(&s, "200");
    snprintf(base, sizeof base, "%s/agency", f->dir);
    assert_int_equal(sc_curve_generate(base, true, err, sizeof err), 0);

    sc_client_options_t o = {.endpoint = s.endpoint,
                             .jwks_path = f->jwks_path,
                             .server_public_key = s.public, /* Z85 text */
                             .client_key_base = base};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    assert_int_equal(sc_client_subscribe(c, TOPIC, err, sizeof err), 0);
    size_t len;
    char *jws = sign(f->key, CHANNEL, 5, "task-5", &len);
    join(s.pub, c, jws, len);
    sc_client_stats_t st;
    sc_client_stats(c, &st);
    assert_true(st.delivered >= 1);
    assert_true(st.refused == 0);
    free(jws);
    sc_client_destroy(&c);
    curve_server_stop(&s);
}

static void test_curve_mismatch(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    curve_server_t s;
    curve_server_start(&s, "200");
    /* No keys: plaintext client against a CURVE gateway. */
    sc_client_options_t o = {.endpoint = s.endpoint,
                             .jwks_path = f->jwks_path};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    assert_int_equal(sc_client_subscribe(c, "energy.", err, sizeof err), 0);
    sc_message_t m;
    assert_int_equal(sc_client_recv(c, &m, 5000, err, sizeof err),
                     SC_CLIENT_ERROR);
    /* Whichever side notices first: a mechanism-mismatch error, or the
     * gateway hanging up on every handshake. */
    if (!strstr(err, "require") || !strstr(err, "CURVE"))
        fail_msg("bad error text: '%s'", err);
    sc_client_destroy(&c);
    curve_server_stop(&s);
}

/* ---- 4. ordering rules, without sockets --------------------------------- */

static sc_held_t *held(const char *channel, uint64_t seq)
{
    char kid[] = "kid";
    sc_held_t in = {.seq = seq, .channel = channel, .epoch = EPOCH1,
                    .id = "id", .ts = "ts", .kind = "k", .key = NULL,
                    .kid = kid, .envelope = "{}", .envelope_len = 2,
                    .jws = "a.b.c", .jws_len = 5};
    sc_held_t *h = sc_held_new(&in);
    assert_non_null(h);
    return h;
}

/* Offer a live message; free it unless the order module keeps it or it
 * is delivered (then it is returned through *out). */
static sc_order_verdict_t live(sc_order_t *o, sc_track_t *t, uint64_t seq)
{
    sc_held_t *m = held(t->channel, seq);
    sc_order_verdict_t v = sc_order_live(o, t, m);
    if (v != SC_ORD_HELD)
        sc_held_free(m);
    return v;
}

static void test_order_rules(void **state)
{
    (void)state;
    sc_order_t *o = sc_order_new(4);
    assert_non_null(o);
    sc_track_t *t = sc_order_track(o, "a.b", true);
    assert_non_null(t);
    assert_false(t->known);
    assert_ptr_equal(sc_order_track(o, "a.b", false), t);
    assert_null(sc_order_track(o, "x.y", false));

    sc_order_start(o, t, EPOCH1, 10);
    uint64_t from, to, dups = 0;
    assert_false(sc_order_wants(t, &from, &to));
    assert_int_equal(live(o, t, 11), SC_ORD_DELIVER);
    assert_int_equal(live(o, t, 11), SC_ORD_DUPLICATE);
    assert_int_equal(live(o, t, 3), SC_ORD_DUPLICATE);
    assert_true(t->last == 11);

    /* 12 and 13 lost: 14 and 15 are held, 15 twice is one */
    assert_int_equal(live(o, t, 15), SC_ORD_HELD);
    assert_int_equal(live(o, t, 14), SC_ORD_HELD);
    assert_int_equal(live(o, t, 15), SC_ORD_DUPLICATE);
    assert_int_equal(sc_order_buffered(o), 2);
    assert_null(sc_order_pop(o, t, &dups));
    assert_true(sc_order_wants(t, &from, &to));
    assert_true(from == 12 && to == 13);

    /* the replay brings 11 (dup), 12, 13 */
    sc_held_t *r = held("a.b", 11);
    assert_int_equal(sc_order_replayed(t, r), SC_ORD_DUPLICATE);
    sc_held_free(r);
    r = held("a.b", 13);
    assert_int_equal(sc_order_replayed(t, r), SC_ORD_HOLE);
    sc_held_free(r);
    for (uint64_t q = 12; q <= 13; q++) {
        r = held("a.b", q);
        assert_int_equal(sc_order_replayed(t, r), SC_ORD_DELIVER);
        sc_held_free(r);
    }
    /* the held ones follow in order */
    for (uint64_t q = 14; q <= 15; q++) {
        sc_held_t *m = sc_order_pop(o, t, &dups);
        assert_non_null(m);
        assert_true(m->seq == q);
        sc_held_free(m);
    }
    assert_null(sc_order_pop(o, t, &dups));
    assert_int_equal(sc_order_buffered(o), 0);
    assert_false(sc_order_wants(t, NULL, NULL));

    /* a heartbeat: the tail 16..18 was lost */
    sc_order_head(t, 18);
    assert_true(sc_order_wants(t, &from, &to));
    assert_true(from == 16 && to == 18);
    assert_int_equal(live(o, t, 16), SC_ORD_DELIVER);
    assert_true(sc_order_wants(t, &from, &to) && from == 17 && to == 18);

    /* overflow: 4 held at most; then the channel's buffer is dropped and
     * nothing is held until the replay caught up */
    for (uint64_t q = 20; q < 24; q++)
        assert_int_equal(live(o, t, q), SC_ORD_HELD);
    assert_int_equal(live(o, t, 24), SC_ORD_OVERFLOW);
    assert_int_equal(sc_order_buffered(o), 0);
    assert_int_equal(live(o, t, 25), SC_ORD_OVERFLOW);
    assert_true(sc_order_wants(t, &from, &to) && from == 17 && to == 25);

    /* lost for good (e.g. pruned): skip, then in order again */
    sc_order_skip(t, 25);
    assert_false(sc_order_wants(t, NULL, NULL));
    assert_int_equal(live(o, t, 26), SC_ORD_DELIVER);
    assert_int_equal(live(o, t, 28), SC_ORD_HELD); /* buffering is back */

    /* a held message that a skip overtakes is dropped as a duplicate */
    sc_order_skip(t, 30);
    dups = 0;
    assert_null(sc_order_pop(o, t, &dups));
    assert_true(dups == 1);

    /* the epoch is the caller's business; reset forgets everything */
    sc_order_handed(t, EPOCH1, 30);
    assert_true(t->out_dirty && t->out_seq == 30);
    sc_order_reset(o, t);
    assert_false(t->known);
    assert_false(sc_order_wants(t, NULL, NULL));

    /* a second channel is independent */
    sc_track_t *u = sc_order_track(o, "a.c", true);
    sc_order_start(o, u, EPOCH1, 0);
    assert_int_equal(live(o, u, 2), SC_ORD_HELD);
    assert_true(sc_order_wants(u, &from, &to) && from == 1 && to == 1);
    sc_order_destroy(&o); /* frees what is still held */
    assert_null(o);
}

/* ---- 5. the state file ------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

typedef struct seen {
    char channel[64], epoch[80];
    uint64_t seq;
    int n;
} seen_t;

static int last_entry(void *arg, const char *channel, const char *epoch,
                      uint64_t seq)
{
    seen_t *s = arg;
    snprintf(s->channel, sizeof s->channel, "%s", channel);
    snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
    s->seq = seq;
    s->n++;
    return 0;
}

static void test_state_file(void **state)
{
    fixture_t *f = *state;
    char path[192], err[512] = "";
    snprintf(path, sizeof path, "%s/sub.state", f->dir);
    unlink(path);

    sc_state_t *st = sc_state_open(path, err, sizeof err);
    if (!st)
        fail_msg("sc_state_open: %s", err);
    /* one process per state file */
    assert_null(sc_state_open(path, err, sizeof err));
    assert_non_null(strstr(err, "in use by another process"));
    assert_int_equal(sc_state_put(st, "a.b", EPOCH1, 7, err, sizeof err), 0);
    assert_int_equal(sc_state_put(st, "a.c", EPOCH1, 1, err, sizeof err), 0);
    assert_int_equal(sc_state_put(st, "a.b", EPOCH1, 9, err, sizeof err), 0);
    assert_int_equal(sc_state_put(st, "Bad", EPOCH1, 9, err, sizeof err), -1);
    assert_int_equal(sc_state_flush(st, err, sizeof err), 0);
    sc_state_close(&st);

    st = sc_state_open(path, err, sizeof err);
    if (!st)
        fail_msg("reopen: %s", err);
    seen_t s = {0};
    sc_state_foreach(st, last_entry, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.channel, "a.c");
    /* many records: the log is compacted, the latest values survive */
    for (uint64_t q = 1; q <= 20000; q++) {
        assert_int_equal(sc_state_put(st, "a.b", EPOCH1, q, err, sizeof err),
                         0);
        assert_int_equal(sc_state_flush(st, err, sizeof err), 0);
    }
    sc_state_close(&st);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size < 300 * 1024);
    st = sc_state_open(path, err, sizeof err);
    assert_non_null(st);
    memset(&s, 0, sizeof s);
    sc_state_foreach(st, last_entry, &s);
    sc_state_close(&st);
    assert_int_equal(s.n, 2);

    /* a torn last record (killed writer) is ignored */
    write_file(path, "sectorcast-state 1\na.b " EPOCH1 " 5\na.b " EPOCH1
                     " 6");
    st = sc_state_open(path, err, sizeof err);
    if (!st)
        fail_msg("torn: %s", err);
    memset(&s, 0, sizeof s);
    sc_state_foreach(st, last_entry, &s);
    sc_state_close(&st);
    assert_true(s.n == 1 && s.seq == 5);

    /* a bad record in the middle is an error naming file and line */
    write_file(path, "sectorcast-state 1\na.b " EPOCH1 " 5\nA.B x y\n");
    assert_null(sc_state_open(path, err, sizeof err));
    if (!strstr(err, "sub.state:3: malformed record"))
        fail_msg("bad error text: '%s'", err);
    write_file(path, "something else\n");
    assert_null(sc_state_open(path, err, sizeof err));
    assert_non_null(strstr(err, "not a sectorcast state file"));
    unlink(path);
}

/* ---- 6. a fake gateway with a service socket --------------------------- */

typedef struct fake_gw {
    void *ctx;
    void *pub;
    void *router;
    pthread_t thread;
    pthread_mutex_t mu;
    char pub_ep[128], svc_ep[128];
    const sc_sigkey_t *key;
    char epoch[33];
    uint64_t oldest, head; /* the "journal": seqs oldest..head of CHANNEL */
    int stop;
    int replays;
    uint64_t page;              /* items per replay page; 0 = 3 */
    uint64_t forged;            /* this seq is replayed signed by `rogue` */
    const sc_sigkey_t *rogue;
} fake_gw_t;

static void reply_json(void *router, zmq_msg_t *rid, const char *id,
                       size_t idlen, const char *type, json_t *body)
{
    char *txt = json_dumps(body, JSON_COMPACT);
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, rid);
    zmq_msg_send(&copy, router, ZMQ_SNDMORE);
    zmq_send(router, id, idlen, ZMQ_SNDMORE);
    zmq_send(router, type, strlen(type), ZMQ_SNDMORE);
    zmq_send(router, txt, strlen(txt), 0);
    free(txt);
    json_decref(body);
}

static void *fake_service(void *arg)
{
    fake_gw_t *g = arg;
    for (;;) {
        pthread_mutex_lock(&g->mu);
        int stop = g->stop;
        pthread_mutex_unlock(&g->mu);
        if (stop)
            break;
        zmq_pollitem_t it = {.socket = g->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t rid, fr[3];
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, g->router, 0) < 0) {
            zmq_msg_close(&rid);
            continue;
        }
        int n = 0;
        while (zmq_msg_more(n ? &fr[n - 1] : &rid) && n < 3) {
            zmq_msg_init(&fr[n]);
            zmq_msg_recv(&fr[n], g->router, 0);
            n++;
        }
        char cmd[16] = "";
        if (n >= 2 && zmq_msg_size(&fr[1]) < sizeof cmd)
            memcpy(cmd, zmq_msg_data(&fr[1]), zmq_msg_size(&fr[1]));
        json_t *args = n == 3 ? json_loadb(zmq_msg_data(&fr[2]),
                                           zmq_msg_size(&fr[2]), 0, NULL)
                              : json_object();
        const char *id = n ? zmq_msg_data(&fr[0]) : "";
        size_t idlen = n ? zmq_msg_size(&fr[0]) : 0;
        pthread_mutex_lock(&g->mu);
        if (strcmp(cmd, "whoami") == 0) {
            reply_json(g->router, &rid, id, idlen, "end",
                       json_pack("{s:s, s:[s], s:s, s:{s:I}}", "agency",
                                 "test", "grants", "energy.", "epoch",
                                 g->epoch, "channels", CHANNEL,
                                 (json_int_t)g->head));
        } else if (strcmp(cmd, "replay") == 0) {
            g->replays++;
            uint64_t from = (uint64_t)json_integer_value(
                json_object_get(args, "from"));
            uint64_t limit = (uint64_t)json_integer_value(
                json_object_get(args, "limit"));
            const char *ep = json_string_value(json_object_get(args,
                                                               "epoch"));
            uint64_t page = g->page ? g->page : 3; /* small pages: paging
                                                      is exercised */
            if (limit == 0 || limit > page)
                limit = page;
            if (ep && strcmp(ep, g->epoch) != 0) {
                reply_json(g->router, &rid, id, idlen, "error",
                           json_pack("{s:i, s:s, s:s, s:s}", "code", 409,
                                     "error", "epoch-mismatch", "text",
                                     "replaced", "epoch", g->epoch));
            } else if (from < g->oldest && from <= g->head) {
                reply_json(g->router, &rid, id, idlen, "error",
                           json_pack("{s:i, s:s, s:s, s:I, s:I, s:I}", "code",
                                     410, "error", "pruned", "text", "gone",
                                     "from", (json_int_t)from, "oldest",
                                     (json_int_t)g->oldest, "head",
                                     (json_int_t)g->head));
            } else {
                uint64_t q = from, sent = 0;
                for (; q <= g->head && sent < limit; q++, sent++) {
                    size_t len;
                    char *jws = sign_e(q == g->forged ? g->rogue : g->key,
                                       CHANNEL, q, "task-1", g->epoch, &len);
                    zmq_msg_t copy;
                    zmq_msg_init(&copy);
                    zmq_msg_copy(&copy, &rid);
                    zmq_msg_send(&copy, g->router, ZMQ_SNDMORE);
                    zmq_send(g->router, id, idlen, ZMQ_SNDMORE);
                    zmq_send(g->router, "msg", 3, ZMQ_SNDMORE);
                    zmq_send(g->router, TOPIC, strlen(TOPIC), ZMQ_SNDMORE);
                    zmq_send(g->router, jws, len, 0);
                    free(jws);
                }
                reply_json(g->router, &rid, id, idlen, "end",
                           json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}",
                                     "channel", CHANNEL, "epoch", g->epoch,
                                     "head", (json_int_t)g->head, "next",
                                     (json_int_t)q, "count",
                                     (json_int_t)sent, "more",
                                     q <= g->head));
            }
        } else {
            reply_json(g->router, &rid, id, idlen, "error",
                       json_pack("{s:i, s:s, s:s}", "code", 400, "error",
                                 "unknown-command", "text", "no"));
        }
        pthread_mutex_unlock(&g->mu);
        json_decref(args);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&fr[i]);
        zmq_msg_close(&rid);
    }
    return NULL;
}

static void fake_gw_start(fake_gw_t *g, const sc_sigkey_t *key)
{
    memset(g, 0, sizeof *g);
    g->ctx = zmq_ctx_new();
    g->key = key;
    snprintf(g->epoch, sizeof g->epoch, "%s", EPOCH1);
    g->oldest = 1;
    pthread_mutex_init(&g->mu, NULL);
    g->pub = bind_pub(g->ctx, g->pub_ep, sizeof g->pub_ep);
    g->router = zmq_socket(g->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(g->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(g->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof g->svc_ep;
    assert_int_equal(zmq_getsockopt(g->router, ZMQ_LAST_ENDPOINT, g->svc_ep,
                                    &len), 0);
    assert_int_equal(pthread_create(&g->thread, NULL, fake_service, g), 0);
}

static void fake_gw_stop(fake_gw_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    zmq_close(g->router);
    zmq_close(g->pub);
    zmq_ctx_term(g->ctx);
    pthread_mutex_destroy(&g->mu);
}

static void fake_set(fake_gw_t *g, const char *epoch, uint64_t oldest,
                     uint64_t head)
{
    pthread_mutex_lock(&g->mu);
    snprintf(g->epoch, sizeof g->epoch, "%s", epoch);
    g->oldest = oldest;
    g->head = head;
    pthread_mutex_unlock(&g->mu);
}

static void publish_seq(fake_gw_t *g, uint64_t seq)
{
    size_t len;
    char *jws = sign_e(g->key, CHANNEL, seq, "task-1", g->epoch, &len);
    assert_int_equal(send_pair(g->pub, TOPIC, jws, len), 0);
    free(jws);
}

/* Expect messages first..last in order (events fail the test). */
static void expect_seqs(sc_client_t *c, uint64_t first, uint64_t last)
{
    char err[512];
    for (uint64_t q = first; q <= last; q++) {
        sc_message_t m;
        int rc = sc_client_recv(c, &m, 3000, err, sizeof err);
        if (rc != SC_CLIENT_MESSAGE)
            fail_msg("want seq %llu, got rc %d: %s", (unsigned long long)q,
                     rc, err);
        if (m.seq != q)
            fail_msg("want seq %llu, got %llu", (unsigned long long)q,
                     (unsigned long long)m.seq);
    }
}

static sc_client_t *service_client(fixture_t *f, fake_gw_t *g,
                                   const char *state_path)
{
    char err[512];
    sc_client_options_t o = {.endpoint = g->pub_ep,
                             .jwks_path = f->jwks_path,
                             .service_endpoint = g->svc_ep,
                             .state_path = state_path,
                             .request_timeout_ms = 2000};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    int rc = sc_client_subscribe(c, "energy.", err, sizeof err);
    if (rc != 0)
        fail_msg("subscribe: %d %s", rc, err);
    return c;
}

static void test_service_repair(void **state)
{
    fixture_t *f = *state;
    char err[512], path[192];
    snprintf(path, sizeof path, "%s/svc.state", f->dir);
    unlink(path);
    fake_gw_t g;
    fake_gw_start(&g, f->key);
    fake_set(&g, EPOCH1, 1, 1);

    sc_client_t *c = service_client(f, &g, path);
    sc_client_identity_t id;
    assert_int_equal(sc_client_whoami(c, &id, err, sizeof err), 0);
    assert_string_equal(id.agency, "test");
    assert_string_equal(id.epoch, EPOCH1);
    assert_true(id.n_grants == 1);
    assert_string_equal(id.grants[0], "energy.");
    assert_int_equal(sc_client_subscribe(c, "semis.", err, sizeof err),
                     SC_CLIENT_NOT_GRANTED);
    assert_string_equal(err, "refused: semis. (not granted to agency test)");

    /* first message seen: delivered, tracking starts there */
    size_t len;
    char *jws = sign(f->key, CHANNEL, 1, "task-1", &len);
    join(g.pub, c, jws, len);
    free(jws);

    /* 3 and 4 lost on the way: repaired by replay, in order */
    fake_set(&g, EPOCH1, 1, 5);
    publish_seq(&g, 2);
    publish_seq(&g, 5);
    expect_seqs(c, 2, 5);

    /* a heartbeat says the tail 6..9 was lost: replayed in pages of 3 */
    fake_set(&g, EPOCH1, 1, 9);
    const char *hb = "{\"channel\":\"" CHANNEL "\",\"epoch\":\"" EPOCH1
                     "\",\"head\":9,\"ts\":\"2026-01-01T00:00:00.000Z\"}";
    const char *frh[3] = {TOPIC, "sc-heartbeat-v1", hb};
    size_t lnh[3] = {strlen(TOPIC), 15, strlen(hb)};
    assert_int_equal(send_frames(g.pub, frh, lnh, 3), 0);
    expect_seqs(c, 6, 9);
    publish_seq(&g, 9); /* late duplicate: dropped */
    sc_message_t m;
    assert_int_equal(sc_client_recv(c, &m, 300, err, sizeof err),
                     SC_CLIENT_TIMEOUT);
    sc_client_stats_t st;
    sc_client_stats(c, &st);
    assert_true(st.replayed == 6);
    /* delivered by origin: 3, 4, 6..9 by replay, the rest live */
    assert_true(st.repaired == 6 && st.snapshot == 0);
    assert_true(st.live == st.delivered - 6);
    assert_true(st.heartbeats == 1);
    assert_true(st.refused == 0 && st.lost == 0);
    assert_int_equal(sc_client_commit(c, err, sizeof err), 0);
    sc_client_destroy(&c);

    /* restart from the state file: 10..12 were published meanwhile */
    fake_set(&g, EPOCH1, 1, 12);
    c = service_client(f, &g, path);
    expect_seqs(c, 10, 12);
    assert_int_equal(sc_client_commit(c, err, sizeof err), 0);
    sc_client_destroy(&c);

    /* down while retention removed 13..14: said so, then 15..16 */
    fake_set(&g, EPOCH1, 15, 16);
    c = service_client(f, &g, path);
    assert_int_equal(sc_client_recv(c, &m, 3000, err, sizeof err),
                     SC_CLIENT_GAP);
    assert_string_equal(err, "unrecoverable gap on " CHANNEL ": seq 13..14 "
                        "pruned");
    sc_client_event_t ev;
    assert_int_equal(sc_client_event(c, &ev), 0);
    assert_true(ev.code == SC_CLIENT_GAP && ev.first == 13 && ev.last == 14);
    assert_string_equal(ev.reason, "pruned");
    expect_seqs(c, 15, 16);
    assert_int_equal(sc_client_commit(c, err, sizeof err), 0);
    sc_client_destroy(&c);

    /* the journal was replaced: an epoch event, then a fresh start */
    const char *epoch2 = "fedcba9876543210fedcba9876543210";
    fake_set(&g, epoch2, 1, 2);
    c = service_client(f, &g, path);
    assert_int_equal(sc_client_recv(c, &m, 3000, err, sizeof err),
                     SC_CLIENT_EPOCH);
    assert_non_null(strstr(err, "epoch changed on " CHANNEL));
    assert_int_equal(sc_client_event(c, &ev), 0);
    assert_true(ev.code == SC_CLIENT_EPOCH);
    assert_string_equal(ev.old_epoch, EPOCH1);
    assert_string_equal(ev.epoch, epoch2);
    jws = sign_e(f->key, CHANNEL, 2, "task-1", epoch2, &len);
    join(g.pub, c, jws, len);
    free(jws);
    sc_client_destroy(&c);
    fake_gw_stop(&g);
    unlink(path);
}

/* A replay page larger than one slice of checks, a forged item in its
 * second slice: with 3 verifying threads the results come in seq order,
 * the forged one refused in its place and its seq reported missing. */
static void test_replay_checked_on_threads(void **state)
{
    fixture_t *f = *state;
    char err[512];
    fake_gw_t g;
    fake_gw_start(&g, f->key);
    pthread_mutex_lock(&g.mu);
    g.page = 200;
    g.forged = 70;
    g.rogue = f->rogue;
    pthread_mutex_unlock(&g.mu);
    fake_set(&g, EPOCH1, 1, 1);
    sc_client_options_t o = {.endpoint = g.pub_ep,
                             .jwks_path = f->jwks_path,
                             .service_endpoint = g.svc_ep,
                             .request_timeout_ms = 2000,
                             .verify_threads = 3};
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    assert_int_equal(sc_client_subscribe(c, "energy.", err, sizeof err), 0);
    size_t len;
    char *jws = sign(f->key, CHANNEL, 1, "task-1", &len);
    join(g.pub, c, jws, len);
    free(jws);

    /* 2..151 lost live: one replay page of 150 (slices of 64, 64, 22) */
    fake_set(&g, EPOCH1, 1, 152);
    publish_seq(&g, 152);
    expect_seqs(c, 2, 69);
    sc_message_t m;
    assert_int_equal(sc_client_recv(c, &m, 3000, err, sizeof err),
                     SC_CLIENT_REFUSED);
    assert_non_null(strstr(err, "refused message on " TOPIC ": "));
    assert_int_equal(sc_client_recv(c, &m, 3000, err, sizeof err),
                     SC_CLIENT_GAP);
    assert_string_equal(err, "unrecoverable gap on " CHANNEL ": seq 70..70 "
                        "missing from the gateway's replay");
    expect_seqs(c, 71, 152);
    assert_int_equal(sc_client_recv(c, &m, 300, err, sizeof err),
                     SC_CLIENT_TIMEOUT);
    sc_client_stats_t st;
    sc_client_stats(c, &st);
    assert_true(st.replayed == 149 && st.repaired == 149);
    assert_true(st.refused == 1 && st.lost == 1);
    assert_int_equal(g.replays, 1);
    sc_client_destroy(&c);
    fake_gw_stop(&g);
}

/* sc_client_options_t grows at its end: a program built against the
 * first header calls the plain symbol, which reads nothing past
 * `max_buffered`; the sized call (the macro) reads the caller's size. */
static void test_options_sized(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    sc_client_options_t o;
    size_t v1 = offsetof(sc_client_options_t, max_buffered) +
                sizeof o.max_buffered;
    memset(&o, 0xff, sizeof o); /* what lies past an older caller's struct */
    memset(&o, 0, v1);
    o.endpoint = "tcp://127.0.0.1:1";
    o.jwks_path = f->jwks_path;
    sc_client_t *c = (sc_client_new)(&o, err, sizeof err);
    if (!c)
        fail_msg("plain sc_client_new read past the first struct: %s", err);
    sc_client_destroy(&c);
    /* the same bytes as today's struct: verify_threads is -1 */
    assert_null(sc_client_new(&o, err, sizeof err));
    assert_string_equal(err, "verify_threads -1: must be 0..64");
    o.verify_threads = 65;
    assert_null(sc_client_new(&o, err, sizeof err));
    assert_string_equal(err, "verify_threads 65: must be 0..64");
    assert_null(sc_client_new_sized(&o, 8, err, sizeof err));
    assert_non_null(strstr(err, "options of 8 bytes, fewer than any "
                                "version of sc_client_options_t"));
    o.verify_threads = 2;
    c = sc_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("sc_client_new: %s", err);
    sc_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_message_delivered),
        cmocka_unit_test(test_tampered_refused),
        cmocka_unit_test(test_foreign_key_refused),
        cmocka_unit_test(test_wrong_channel_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_empty_frames_refused),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_socket_plain),
        cmocka_unit_test(test_socket_plain_verify_threads),
        cmocka_unit_test(test_options_sized),
        cmocka_unit_test(test_curve_rejected),
        cmocka_unit_test(test_curve_accepted),
        cmocka_unit_test(test_curve_mismatch),
        cmocka_unit_test(test_order_rules),
        cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_service_repair),
        cmocka_unit_test(test_replay_checked_on_threads),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
