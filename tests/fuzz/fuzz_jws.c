/*
 * fuzz_jws.c - libFuzzer target: what an agency's verifier is fed.
 *
 * The first input byte picks a mode, the rest is split at the first '\n':
 *   0  TOPIC '\n' JWS      sc_envelope_verify() and sc_jws_verify() of
 *                          arbitrary bytes against a fixed JWKS
 *   1  TOPIC '\n' PAYLOAD  PAYLOAD signed with the fixed key, then
 *                          sc_envelope_verify(): reaches the envelope
 *                          checks behind a valid signature
 *   2  JWKS text           sc_jwks_parse(), dump, parse again
 *   3  JWS                 sc_envelope_verify() as in 0, with the topic
 *                          "energy.nuclear.tasks."
 * Invariants: a message that verifies has an envelope whose channel + '.'
 * is the topic; sc_envelope_verify_fields() agrees with jansson's tree
 * (verdict, error text, fields, text); sc_jws_verify returns the payload that was signed; a JWKS
 * survives a dump/parse round trip with the same kids.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/envelope.h"
#include "common/jwks.h"
#include "common/jws.h"
#include "common/keys.h"

/* A fixed test key (never used anywhere else). */
static const char KEY_JWK[] =
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"x\":\"GG0a9wTExA8hMJMzaeFK9SaQj8ONGXMI4yXOWLY5VIo\","
    "\"d\":\"c3UvPgAdaJZ2PBgvLb6kdb6cNkw4bIUkjWWUyTkVQlU\","
    "\"kid\":\"nO4dW8VGOyZ73lT7WMeKCNPd3ohWw0LMdq80cSHY8hU\"}";

static sc_sigkey_t *key;
static sc_jwks_t *jwks;

static void setup(void)
{
    char path[] = "/tmp/sc-fuzz-jws-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, KEY_JWK, sizeof KEY_JWK - 1) !=
                      (ssize_t)(sizeof KEY_JWK - 1))
        abort();
    close(fd);
    char err[512];
    key = sc_sigkey_load(path, false, err, sizeof err);
    unlink(path);
    if (!key || !(jwks = sc_jwks_new()) ||
        sc_jwks_add(jwks, sc_sigkey_public(key)) != 0) {
        fprintf(stderr, "fuzz_jws setup: %s\n", key ? "jwks" : err);
        abort();
    }
}

/* sc_envelope_verify_fields against jansson's tree of the same JWS:
 * the same verdict in the same words, the same fields, and as the text
 * the payload (one line) or jansson's compact form of it. */
static void check_fields(const char *topic, size_t tl, const char *jws,
                         size_t jl, int rc, const char *err, json_t *env)
{
    sc_envelope_fields_t f;
    char kid[SC_KID_LEN + 1], err2[512] = "";
    int rc2 = sc_envelope_verify_fields(jwks, topic, tl, jws, jl, &f, kid,
                                        err2, sizeof err2);
    if (rc2 != rc || (rc != 0 && strcmp(err2, err) != 0))
        abort(); /* the two readers disagree */
    if (rc != 0) {
        if (f.mem)
            abort();
        return;
    }
    static const char *const names[] = {"id", "channel", "epoch", "ts",
                                        "kind"};
    const char *got[] = {f.id, f.channel, f.epoch, f.ts, f.kind};
    for (size_t i = 0; i < 5; i++)
        if (strcmp(got[i], json_string_value(json_object_get(env,
                                                             names[i]))))
            abort();
    json_t *k = json_object_get(env, "key");
    if (json_is_null(k) ? f.key != NULL
                        : (!f.key || strcmp(f.key, json_string_value(k))))
        abort();
    if (f.seq != (uint64_t)json_integer_value(json_object_get(env, "seq")) ||
        strcmp(kid, sc_sigkey_kid(key)) != 0 || strlen(f.text) != f.text_len)
        abort();
    char *payload = NULL;
    size_t pl = 0;
    if (sc_jws_verify(jwks, jws, jl, &payload, &pl, NULL, err2,
                      sizeof err2) != 0)
        abort();
    bool one_line = pl > 0 && !memchr(payload, '\n', pl) &&
                    !memchr(payload, '\r', pl) && strlen(payload) == pl;
    char *compact = one_line ? NULL
                             : json_dumps(env, JSON_COMPACT |
                                                   JSON_PRESERVE_ORDER);
    const char *want = one_line ? payload : compact;
    if (!want || strlen(want) != f.text_len ||
        memcmp(want, f.text, f.text_len) != 0)
        abort();
    free(compact);
    free(payload);
    sc_envelope_fields_free(&f);
}

static void check_envelope(const char *topic, size_t tl, const char *jws,
                           size_t jl)
{
    json_t *env = NULL;
    char kid[SC_KID_LEN + 1], err[512] = "";
    int rc = sc_envelope_verify(jwks, topic, tl, jws, jl, &env, kid, err,
                                sizeof err);
    if (rc == 0) {
        json_t *ch = json_object_get(env, "channel");
        const char *c = json_string_value(ch);
        if (!c || strlen(c) + 1 != tl || memcmp(c, topic, tl - 1) != 0 ||
            topic[tl - 1] != '.' || strcmp(kid, sc_sigkey_kid(key)) != 0)
            abort(); /* verified, but not for this topic or key */
    } else if (env) {
        abort(); /* refused, yet an envelope came back */
    }
    check_fields(topic, tl, jws, jl, rc, err, env);
    json_decref(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!key)
        setup();
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(in, '\n', n);
    const char *topic = in, *rest = nl ? nl + 1 : in + n;
    size_t tl = nl ? (size_t)(nl - in) : n;
    size_t rl = n - (size_t)(rest - in);

    switch (mode) {
    case 0: {
        check_envelope(topic, tl, rest, rl);
        char *payload = NULL, err[512];
        size_t pl = 0;
        if (sc_jws_verify(jwks, rest, rl, &payload, &pl, NULL, err,
                          sizeof err) == 0 &&
            (!payload || strlen(payload) > pl))
            abort();
        free(payload);
        break;
    }
    case 1: {
        char *jws = NULL;
        size_t jl = 0;
        if (sc_jws_sign(key, NULL, rest, rl, &jws, &jl) != 0)
            abort();
        char *payload = NULL, err[512];
        size_t pl = 0;
        if (sc_jws_verify(jwks, jws, jl, &payload, &pl, NULL, err,
                          sizeof err) != 0 ||
            pl != rl || memcmp(payload, rest, rl) != 0)
            abort(); /* our own signature must verify, payload intact */
        free(payload);
        check_envelope(topic, tl, jws, jl);
        free(jws);
        break;
    }
    case 2: {
        char err[512];
        sc_jwks_t *k = sc_jwks_parse(in, n, "fuzz", err, sizeof err);
        if (k) {
            char *dump = sc_jwks_dump(k);
            sc_jwks_t *k2 =
                dump ? sc_jwks_parse(dump, strlen(dump), "dump", err,
                                     sizeof err)
                     : NULL;
            if (!k2 || sc_jwks_count(k2) != sc_jwks_count(k))
                abort();
            for (size_t i = 0; i < sc_jwks_count(k); i++)
                if (strcmp(sc_jwks_kid_at(k, i), sc_jwks_kid_at(k2, i)) != 0 ||
                    !sc_jwks_find(k2, sc_jwks_kid_at(k, i)))
                    abort();
            sc_jwks_destroy(&k2);
            free(dump);
        }
        sc_jwks_destroy(&k);
        break;
    }
    default:
        check_envelope("energy.nuclear.tasks.", 21, in, n);
        break;
    }
    return 0;
}
