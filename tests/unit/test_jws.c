/*
 * test_jws.c - JWS (RFC 7515/8037) signing and verification, and the
 * message envelope built on it (core/common/jws.c, envelope.c).
 *
 * Hand-built JWSs (any header, any signature) come from make_jws() below,
 * which uses libsodium directly so the tests do not trust the code under
 * test to produce their attacks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/envelope.h"
#include "common/jwks.h"
#include "common/jws.h"
#include "common/keys.h"

#define V (sodium_base64_VARIANT_URLSAFE_NO_PADDING)

/* RFC 8037 A.1 key, A.3 thumbprint, A.4 signature. */
#define A1_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define A1_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define A3_KID "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
#define A4_JWS "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc." \
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsP" \
    "t9g7sVvpAr_MuM0KAg"

typedef struct {
    sc_sigkey_t *key, *other;
    sc_jwks_t *jwks; /* holds `key` only */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[256];
    f->key = sc_sigkey_generate(err, sizeof err);
    f->other = sc_sigkey_generate(err, sizeof err);
    f->jwks = sc_jwks_new();
    if (!f->key || !f->other || !f->jwks ||
        sc_jwks_add(f->jwks, sc_sigkey_public(f->key)) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sc_sigkey_destroy(&f->key);
    sc_sigkey_destroy(&f->other);
    sc_jwks_destroy(&f->jwks);
    free(f);
    return 0;
}

static char *b64(const void *bin, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, V);
    char *s = malloc(cap);
    sodium_bin2base64(s, cap, bin, n, V);
    return s;
}

/* Compact JWS of header/payload signed by `signer` (NULL: empty sig). */
static char *make_jws(const sc_sigkey_t *signer, const char *header,
                      const char *payload)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    size_t n = strlen(h) + 1 + strlen(p);
    char *out = malloc(n + 1 + 100);
    snprintf(out, n + 1, "%s.%s", h, p);
    out[n] = '.';
    out[n + 1] = '\0';
    if (signer) {
        unsigned char sig[64];
        assert_int_equal(sc_sigkey_sign(signer, (unsigned char *)out, n, sig),
                         0);
        char *s = b64(sig, 64);
        strcpy(out + n + 1, s);
        free(s);
    }
    free(h);
    free(p);
    return out;
}

/* Verify from an exact-size heap copy: any read past len trips ASan. */
static int verify(const sc_jwks_t *jwks, const char *jws, size_t len,
                  char **payload, char *err)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, jws, len);
    size_t plen = 0;
    char kid[SC_KID_LEN + 1];
    int rc = sc_jws_verify(jwks, copy, len, payload, &plen, kid, err, 256);
    free(copy);
    return rc;
}

static void test_sign_verify_roundtrip(void **state)
{
    fx_t *f = *state;
    const char *msg = "{\"hello\":\"world\"}";
    char *jws = NULL, *payload = NULL, err[256] = "";
    size_t len = 0, plen = 0;
    char kid[SC_KID_LEN + 1];
    assert_int_equal(sc_jws_sign(f->key, NULL, msg, strlen(msg), &jws, &len),
                     0);
    assert_int_equal(strlen(jws), len);
    assert_int_equal(sc_jws_verify(f->jwks, jws, len, &payload, &plen, kid,
                                   err, sizeof err), SC_JWS_OK);
    assert_string_equal(payload, msg);
    assert_int_equal(plen, strlen(msg));
    assert_string_equal(kid, sc_sigkey_kid(f->key));
    free(payload);

    /* The header is exactly the documented one. */
    char hdr[256];
    size_t hlen = 0;
    assert_int_equal(sodium_base642bin((unsigned char *)hdr, sizeof hdr - 1,
                                       jws, (size_t)(strchr(jws, '.') - jws),
                                       NULL, &hlen, NULL, V), 0);
    hdr[hlen] = '\0';
    char want[256];
    snprintf(want, sizeof want,
             "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"" SC_JWS_TYP "\"}",
             sc_sigkey_kid(f->key));
    assert_string_equal(hdr, want);

    /* NULL outputs are allowed. */
    assert_int_equal(sc_jws_verify(f->jwks, jws, len, NULL, NULL, NULL, NULL,
                                   0), SC_JWS_OK);
    free(jws);

    /* Empty and binary payloads. */
    assert_int_equal(sc_jws_sign(f->key, "x", "", 0, &jws, &len), 0);
    assert_int_equal(verify(f->jwks, jws, len, &payload, err), SC_JWS_OK);
    assert_string_equal(payload, "");
    free(payload);
    free(jws);
}

static void test_changed_bytes_fail(void **state)
{
    fx_t *f = *state;
    const char *msg = "{\"v\":1,\"n\":12345678}";
    char *jws = NULL, *payload = NULL, err[256];
    size_t len = 0;
    assert_int_equal(sc_jws_sign(f->key, NULL, msg, strlen(msg), &jws, &len),
                     0);
    size_t d1 = (size_t)(strchr(jws, '.') - jws);
    size_t d2 = (size_t)(strrchr(jws, '.') - jws);

    /* Header: same alg and kid, one more member -> signature fails. */
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"x\"}",
             sc_sigkey_kid(f->key));
    char *h = b64(hdr, strlen(hdr));
    size_t hl = strlen(h);
    char *forged = malloc(hl + len - d1 + 1);
    memcpy(forged, h, hl);
    memcpy(forged + hl, jws + d1, len - d1 + 1);
    assert_int_equal(verify(f->jwks, forged, strlen(forged), &payload, err),
                     SC_JWS_ESIGNATURE);
    assert_null(payload);
    assert_non_null(strstr(err, "signature does not verify"));
    free(forged);
    free(h);

    /* Payload: change one character to another base64url character. */
    char *c = strdup(jws);
    c[d1 + 3] = c[d1 + 3] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(f->jwks, c, len, &payload, err),
                     SC_JWS_ESIGNATURE);
    free(c);

    /* Signature: same. */
    c = strdup(jws);
    c[d2 + 10] = c[d2 + 10] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(f->jwks, c, len, &payload, err),
                     SC_JWS_ESIGNATURE);
    free(c);

    /* Every single-byte change anywhere fails (with some code). */
    static const char repl[] = {'A', 'z', '_', '-', '.', '=', ' ', '\0',
                                '+', '/', '\x80', '\xdf', '\xff'};
    for (size_t i = 0; i < len; i++) {
        for (size_t r = 0; r < sizeof repl; r++) {
            if (jws[i] == repl[r])
                continue;
            c = strdup(jws);
            c[i] = repl[r];
            int rc = verify(f->jwks, c, len, &payload, err);
            if (rc == SC_JWS_OK)
                fail_msg("change at %zu to 0x%02x verified", i,
                         (unsigned char)repl[r]);
            assert_null(payload);
            free(c);
        }
    }
    free(jws);
}

static void test_wrong_key(void **state)
{
    fx_t *f = *state;
    char *payload = NULL, err[256];
    char hdr[256];
    /* kid of `key` (in the JWKS) but signed by `other`. */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}",
             sc_sigkey_kid(f->key));
    char *jws = make_jws(f->other, hdr, "{}");
    assert_int_equal(verify(f->jwks, jws, strlen(jws), &payload, err),
                     SC_JWS_ESIGNATURE);
    free(jws);

    /* Signed by `other` with its own kid, which is not in the JWKS. */
    char *j2 = NULL;
    size_t l2;
    assert_int_equal(sc_jws_sign(f->other, NULL, "{}", 2, &j2, &l2), 0);
    assert_int_equal(verify(f->jwks, j2, l2, &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    assert_non_null(strstr(err, sc_sigkey_kid(f->other)));
    assert_non_null(strstr(err, "not in the JWKS"));
    free(j2);

    /* No kid at all. */
    jws = make_jws(f->key, "{\"alg\":\"EdDSA\"}", "{}");
    assert_int_equal(verify(f->jwks, jws, strlen(jws), &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    free(jws);
    /* kid not a string. */
    jws = make_jws(f->key, "{\"alg\":\"EdDSA\",\"kid\":5}", "{}");
    assert_int_equal(verify(f->jwks, jws, strlen(jws), &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    free(jws);
    /* Empty JWKS. */
    sc_jwks_t *empty = sc_jwks_new();
    assert_int_equal(sc_jws_sign(f->key, NULL, "{}", 2, &j2, &l2), 0);
    assert_int_equal(verify(empty, j2, l2, &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    assert_int_equal(verify(NULL, j2, l2, &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    sc_jwks_destroy(&empty);
    free(j2);
}

static void test_alg_refused(void **state)
{
    fx_t *f = *state;
    char *payload = NULL, err[256], hdr[256];
    const char *kid = sc_sigkey_kid(f->key);
    static const char *const fmt[] = {
        "{\"alg\":\"none\",\"kid\":\"%s\"}",
        "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
        "{\"alg\":\"RS256\",\"kid\":\"%s\"}",
        "{\"alg\":\"eddsa\",\"kid\":\"%s\"}",
        "{\"alg\":\"Ed25519\",\"kid\":\"%s\"}",
        "{\"alg\":null,\"kid\":\"%s\"}",
        "{\"kid\":\"%s\"}",
        "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"b64\":false,\"crit\":[\"b64\"]}",
    };
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        snprintf(hdr, sizeof hdr, fmt[i], kid);
        /* Validly signed by the right key: only the header is wrong. */
        char *jws = make_jws(f->key, hdr, "{}");
        int rc = verify(f->jwks, jws, strlen(jws), &payload, err);
        if (rc != SC_JWS_EALG)
            fail_msg("header %s: rc %d (%s)", hdr, rc, err);
        free(jws);
        /* alg none with an empty signature: malformed or refused. */
        jws = make_jws(NULL, hdr, "{}");
        rc = verify(f->jwks, jws, strlen(jws), &payload, err);
        assert_true(rc == SC_JWS_EALG || rc == SC_JWS_EMALFORMED);
        free(jws);
    }
    /* HS256 "signed" with the public key as HMAC secret (key confusion). */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    char *jws = make_jws(NULL, hdr, "{}");
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    size_t n = strlen(jws) - 1;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, sc_sigkey_public(f->key), 32);
    crypto_auth_hmacsha256_update(&st, (unsigned char *)jws, n);
    crypto_auth_hmacsha256_final(&st, mac);
    char *m = b64(mac, sizeof mac);
    char *full = malloc(n + 2 + strlen(m));
    memcpy(full, jws, n + 1);
    strcpy(full + n + 1, m);
    assert_int_equal(verify(f->jwks, full, strlen(full), &payload, err),
                     SC_JWS_EMALFORMED); /* 32-byte sig: not EdDSA-shaped */
    free(full);
    free(m);
    free(jws);
}

static void test_malformed(void **state)
{
    fx_t *f = *state;
    char *payload = NULL, err[256];
    char *jws = NULL;
    size_t len = 0;
    assert_int_equal(sc_jws_sign(f->key, NULL, "{\"a\":1}", 7, &jws, &len),
                     0);

    /* Every truncation fails, from a buffer of exactly that size. */
    for (size_t i = 0; i < len; i++) {
        int rc = verify(f->jwks, jws, i, &payload, err);
        if (rc == SC_JWS_OK)
            fail_msg("truncated to %zu verified", i);
        assert_null(payload);
    }
    assert_int_equal(verify(f->jwks, jws, len - 1, &payload, err),
                     SC_JWS_EMALFORMED);
    assert_int_equal(sc_jws_verify(f->jwks, NULL, 0, &payload, NULL, NULL,
                                   err, sizeof err), SC_JWS_EMALFORMED);

    static const char *const bad[] = {
        "", ".", "..", "...", "a.b", "a.b.c.d", "e30.e30.", ".e30.e30",
        "e30..e30",
        "eyJhbGciOiJFZERTQSJ9=.e30.e30",   /* padding */
        "eyJhbGciOiJFZERTQSJ9 .e30.e30",   /* whitespace */
        "e30+.e30.e30",                     /* standard-alphabet char */
        "W10.e30.AAAA",                     /* header [] */
        "IiI.e30.AAAA",                     /* header "" */
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",   /* short signature */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = verify(f->jwks, bad[i], strlen(bad[i]), &payload, err);
        if (rc != SC_JWS_EMALFORMED)
            fail_msg("\"%s\": rc %d (%s)", bad[i], rc, err);
    }

    /* Header with duplicate members is not valid. */
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"alg\":\"none\"}",
             sc_sigkey_kid(f->key));
    char *d = make_jws(f->key, hdr, "{}");
    assert_int_equal(verify(f->jwks, d, strlen(d), &payload, err),
                     SC_JWS_EMALFORMED);
    free(d);

    /* Non-canonical base64url (non-zero trailing bits) in the payload. */
    char *c = strdup(jws);
    size_t d2 = (size_t)(strrchr(c, '.') - c);
    /* payload {"a":1} = 7 bytes -> 10 chars, the last of which carries 4
     * spare bits; 'Q' -> 'R' sets one of them. */
    assert_int_equal(c[d2 - 1], 'Q');
    c[d2 - 1] = 'R';
    assert_int_equal(verify(f->jwks, c, len, &payload, err),
                     SC_JWS_EMALFORMED);
    free(c);

    /* libsodium 1.0.18 decodes any byte >= 0x80 as '_': a signature with
     * '_' swapped for such a byte must not verify (malleability). */
    for (int n = 0;; n++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d}", n);
        char *j2 = NULL;
        size_t l2 = 0;
        assert_int_equal(sc_jws_sign(f->key, NULL, body, strlen(body), &j2,
                                     &l2), 0);
        char *u = strchr(strrchr(j2, '.'), '_');
        if (u == NULL) {
            free(j2);
            continue;
        }
        assert_int_equal(verify(f->jwks, j2, l2, &payload, err), SC_JWS_OK);
        free(payload);
        *u = (char)0xff;
        assert_int_equal(verify(f->jwks, j2, l2, &payload, err),
                         SC_JWS_EMALFORMED);
        free(j2);
        break;
    }

    /* Too big. */
    size_t big = SC_JWS_MAX + 1;
    char *huge = malloc(big);
    memset(huge, 'A', big);
    assert_int_equal(sc_jws_verify(f->jwks, huge, big, &payload, NULL, NULL,
                                   err, sizeof err), SC_JWS_ETOOBIG);
    free(huge);
    free(jws);
}

static void test_rfc8037_a4(void **state)
{
    fx_t *f = *state;
    char *payload = NULL, err[256];
    /* The A.4 JWS has no kid: the verifier refuses it for that... */
    const char *set = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                      "\"x\":\"" A1_X "\"}]}";
    sc_jwks_t *j = sc_jwks_parse(set, strlen(set), "a4", err, sizeof err);
    assert_non_null(j);
    assert_non_null(sc_jwks_find(j, A3_KID));
    assert_int_equal(verify(j, A4_JWS, strlen(A4_JWS), &payload, err),
                     SC_JWS_EUNKNOWN_KID);

    /* ...while its signature is what our key code produces and accepts. */
    const char *dot2 = strrchr(A4_JWS, '.');
    size_t in_len = (size_t)(dot2 - A4_JWS);
    unsigned char want[64], pk[32], got[64];
    size_t n = 0;
    assert_int_equal(sodium_base642bin(want, 64, dot2 + 1, strlen(dot2 + 1),
                                       NULL, &n, NULL, V), 0);
    assert_int_equal(n, 64);
    assert_int_equal(sodium_base642bin(pk, 32, A1_X, strlen(A1_X), NULL, &n,
                                       NULL, V), 0);
    assert_int_equal(crypto_sign_verify_detached(want,
                                                 (const unsigned char *)A4_JWS,
                                                 in_len, pk), 0);
    char path[] = "/tmp/sc-test-jws-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *jwk = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D
                      "\",\"x\":\"" A1_X "\"}";
    assert_int_equal(write(fd, jwk, strlen(jwk)), (ssize_t)strlen(jwk));
    close(fd);
    sc_sigkey_t *k = sc_sigkey_load(path, true, err, sizeof err);
    unlink(path);
    assert_non_null(k);
    assert_string_equal(sc_sigkey_kid(k), A3_KID);
    assert_int_equal(sc_sigkey_sign(k, (const unsigned char *)A4_JWS, in_len,
                                    got), 0);
    assert_memory_equal(got, want, 64);

    /* The same key and payload with a kid header verifies end to end. */
    char *jws = make_jws(k, "{\"alg\":\"EdDSA\",\"kid\":\"" A3_KID "\"}",
                         "Example of Ed25519 signing");
    assert_int_equal(verify(j, jws, strlen(jws), &payload, err), SC_JWS_OK);
    assert_string_equal(payload, "Example of Ed25519 signing");
    free(payload);
    free(jws);
    sc_sigkey_destroy(&k);
    sc_jwks_destroy(&j);
    (void)f;
}

/* ---- envelope -------------------------------------------------------------- */

static char *sign_env(fx_t *f, const char *channel, uint64_t seq)
{
    json_t *src = json_pack("{s:s}", "plugin", "demo");
    json_t *data = json_pack("{s:s,s:i}", "title", "MRO", "n", 3);
    sc_envelope_in_t in = {
        .channel = channel, .epoch = "e1", .seq = seq, .kind = "task.updated",
        .key = "task-7", .source = src, .data = data,
    };
    char *jws = NULL, err[256];
    size_t len = 0;
    assert_int_equal(sc_envelope_sign(&in, f->key, &jws, &len, err,
                                      sizeof err), 0);
    json_decref(src);
    json_decref(data);
    return jws;
}

static void test_envelope_roundtrip(void **state)
{
    fx_t *f = *state;
    char *jws = sign_env(f, "energy.nuclear.tasks", 42);
    json_t *env = NULL;
    char kid[SC_KID_LEN + 1], err[256] = "";
    int rc = sc_envelope_verify(f->jwks, "energy.nuclear.tasks.", 21, jws,
                                strlen(jws), &env, kid, err, sizeof err);
    if (rc != 0)
        fail_msg("rc %d: %s", rc, err);
    assert_string_equal(kid, sc_sigkey_kid(f->key));
    assert_int_equal(json_integer_value(json_object_get(env, "seq")), 42);
    assert_string_equal(json_string_value(json_object_get(env, "channel")),
                        "energy.nuclear.tasks");
    const char *id = json_string_value(json_object_get(env, "id"));
    assert_int_equal(strlen(id), 32);
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    const char *ts = json_string_value(json_object_get(env, "ts"));
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');

    /* Field order on the wire is fixed. */
    char *payload = NULL;
    assert_int_equal(verify(f->jwks, jws, strlen(jws), &payload, err), 0);
    const char *order[] = {"\"v\":1,\"id\":", "\"channel\":", "\"epoch\":",
                           "\"seq\":42,", "\"ts\":", "\"kind\":",
                           "\"key\":\"task-7\"", "\"source\":{",
                           "\"data\":{"};
    const char *at = payload;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *p = strstr(at, order[i]);
        if (p == NULL)
            fail_msg("%s missing or out of order in %s", order[i], payload);
        at = p;
    }
    assert_int_equal(payload[0], '{');
    assert_memory_equal(payload, "{\"v\":1,", 7);
    free(payload);
    json_decref(env);
    free(jws);

    /* Given id/ts and NULL key/source/data. */
    sc_envelope_in_t in = {.channel = "a", .epoch = "e", .seq = 1,
                           .id = "m1", .ts = "2026-01-01T00:00:00.000Z",
                           .kind = "k"};
    size_t len;
    assert_int_equal(sc_envelope_sign(&in, f->key, &jws, &len, err,
                                      sizeof err), 0);
    assert_int_equal(verify(f->jwks, jws, len, &payload, err), 0);
    assert_string_equal(payload, "{\"v\":1,\"id\":\"m1\",\"channel\":\"a\","
                        "\"epoch\":\"e\",\"seq\":1,\"ts\":"
                        "\"2026-01-01T00:00:00.000Z\",\"kind\":\"k\","
                        "\"key\":null,\"source\":{},\"data\":{}}");
    free(payload);
    assert_int_equal(sc_envelope_verify(f->jwks, "a.", 2, jws, len, NULL,
                                        NULL, err, sizeof err), 0);
    free(jws);

    /* Bad inputs to sign. */
    in.channel = "Bad";
    assert_int_equal(sc_envelope_sign(&in, f->key, &jws, &len, err,
                                      sizeof err), -1);
    in.channel = "a";
    in.seq = 0;
    assert_int_equal(sc_envelope_sign(&in, f->key, &jws, &len, err,
                                      sizeof err), -1);
    in.seq = UINT64_MAX;
    assert_int_equal(sc_envelope_sign(&in, f->key, &jws, &len, err,
                                      sizeof err), -1);
}

static void test_envelope_channel_topic(void **state)
{
    fx_t *f = *state;
    char *jws = sign_env(f, "energy.nuclear.tasks", 1);
    size_t len = strlen(jws);
    json_t *env = NULL;
    char err[256];
    static const struct { const char *topic; int rc; } rows[] = {
        {"energy.nuclear.tasks.", 0},
        {"energy.nuclear.", SC_ENV_ECHANNEL},
        {"energy.", SC_ENV_ECHANNEL},
        {"energy.nuclear.tasks.x.", SC_ENV_ECHANNEL},
        {"energy.nuclear.taskz.", SC_ENV_ECHANNEL},
        {"energy.nuclear.tasks", SC_ENV_ETOPIC},
        {"", SC_ENV_ETOPIC},
        {"Energy.nuclear.tasks.", SC_ENV_ETOPIC},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = sc_envelope_verify(f->jwks, rows[i].topic,
                                    strlen(rows[i].topic), jws, len, &env,
                                    NULL, err, sizeof err);
        if (rc != rows[i].rc)
            fail_msg("topic \"%s\": rc %d, want %d (%s)", rows[i].topic, rc,
                     rows[i].rc, err);
        if (rc == 0)
            json_decref(env);
        else
            assert_null(env);
    }
    /* The signature is checked before anything else. */
    jws[len - 5] = jws[len - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(sc_envelope_verify(f->jwks, "x.", 2, jws, len, &env,
                                        NULL, err, sizeof err),
                     SC_JWS_ESIGNATURE);
    free(jws);
}

static void test_envelope_shape(void **state)
{
    fx_t *f = *state;
    static const struct { const char *payload; int rc; const char *msg; }
    rows[] = {
#define BASE_ "\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1," \
              "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{}," \
              "\"data\":{}"
        {"{\"v\":1," BASE_ "}", 0, ""},
        {"{\"v\":1," BASE_ ",\"extra\":true}", 0, ""},
        {"{" BASE_ "}", SC_ENV_ESHAPE, "\"v\""},
        {"{\"v\":2," BASE_ "}", SC_ENV_EVERSION, "version"},
        {"{\"v\":\"1\"," BASE_ "}", SC_ENV_EVERSION, "version"},
        {"{\"v\":1.0," BASE_ "}", SC_ENV_EVERSION, "version"},
        {"[1]", SC_ENV_ESHAPE, "not a JSON object"},
        {"not json", SC_ENV_ESHAPE, "not a JSON object"},
        {"\"str\"", SC_ENV_ESHAPE, "not a JSON object"},
        {"{\"v\":1,\"v\":1," BASE_ "}", SC_ENV_ESHAPE, "not a JSON object"},
        {"{\"v\":1,\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,\"ts\":\"t\","
         "\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"id\""},
        {"{\"v\":1,\"id\":7,\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"id\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":[],\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"channel\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":0,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"seq\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":-3,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"seq\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":"
         "\"1\",\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},"
         "\"data\":{}}", SC_ENV_ESHAPE, "\"seq\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1.5,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"seq\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"key\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":3,\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"key\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":\"x\",\"source\":[],"
         "\"data\":{}}", SC_ENV_ESHAPE, "\"source\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":\"x\",\"source\":{}}",
         SC_ENV_ESHAPE, "\"data\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"a.b\",\"epoch\":\"e\",\"seq\":1,"
         "\"kind\":\"k\",\"key\":\"x\",\"source\":{},\"data\":{}}",
         SC_ENV_ESHAPE, "\"ts\""},
        {"{\"v\":1,\"id\":\"i\",\"channel\":\"A.B\",\"epoch\":\"e\",\"seq\":1,"
         "\"ts\":\"t\",\"kind\":\"k\",\"key\":null,\"source\":{},\"data\":{}}",
         SC_ENV_ECHANNEL, "not a valid channel"},
#undef BASE_
    };
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}",
             sc_sigkey_kid(f->key));
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *jws = make_jws(f->key, hdr, rows[i].payload);
        json_t *env = NULL;
        char err[256] = "";
        int rc = sc_envelope_verify(f->jwks, "a.b.", 4, jws, strlen(jws),
                                    &env, NULL, err, sizeof err);
        if (rc != rows[i].rc || strstr(err, rows[i].msg) == NULL)
            fail_msg("row %zu: rc %d want %d, err \"%s\" want \"%s\"", i, rc,
                     rows[i].rc, err, rows[i].msg);
        /* the fields reader: the same verdict in the same words */
        sc_envelope_fields_t ef;
        char err2[256] = "";
        int rc2 = sc_envelope_verify_fields(f->jwks, "a.b.", 4, jws,
                                            strlen(jws), &ef, NULL, err2,
                                            sizeof err2);
        if (rc2 != rc || strcmp(err2, err) != 0)
            fail_msg("row %zu: fields rc %d \"%s\", tree rc %d \"%s\"", i,
                     rc2, err2, rc, err);
        if (rc2 != 0)
            assert_null(ef.mem);
        sc_envelope_fields_free(&ef);
        json_decref(env);
        free(jws);
    }
}

/* jansson's allocations, counted (json_set_alloc_funcs) */
static size_t g_json_allocs;
static void *count_malloc(size_t n)
{
    g_json_allocs++;
    return malloc(n);
}

/* sc_jws_verify keeps the last header it found fine (per thread) and does
 * not parse the same bytes again; what the header does not decide (the
 * kid in this JWKS, the signature) is still checked every time, and any
 * other header is parsed and judged as ever. */
static void test_header_kept(void **state)
{
    fx_t *f = *state;
    char hdr[256], err[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}",
             sc_sigkey_kid(f->key));
    char *good = make_jws(f->key, hdr, "{\"n\":1}");
    char *payload = NULL;
    assert_int_equal(verify(f->jwks, good, strlen(good), &payload, err), 0);
    free(payload);
    json_set_alloc_funcs(count_malloc, free);
    g_json_allocs = 0;
    assert_int_equal(verify(f->jwks, good, strlen(good), &payload, err), 0);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(g_json_allocs, 0); /* not parsed again */
    assert_string_equal(payload, "{\"n\":1}");
    free(payload);
    /* the same header, a signature by another key: refused */
    char *forged = make_jws(f->other, hdr, "{\"n\":1}");
    assert_int_equal(verify(f->jwks, forged, strlen(forged), &payload, err),
                     SC_JWS_ESIGNATURE);
    /* the same header against a JWKS without its key: refused */
    sc_jwks_t *empty = sc_jwks_new();
    assert_non_null(empty);
    assert_int_equal(verify(empty, good, strlen(good), &payload, err),
                     SC_JWS_EUNKNOWN_KID);
    sc_jwks_destroy(&empty);
    /* another header right after: parsed and refused as ever */
    char bad[256];
    snprintf(bad, sizeof bad, "{\"alg\":\"none\",\"kid\":\"%s\"}",
             sc_sigkey_kid(f->key));
    char *none = make_jws(f->key, bad, "{\"n\":1}");
    assert_int_equal(verify(f->jwks, none, strlen(none), &payload, err),
                     SC_JWS_EALG);
    /* and the good one still verifies */
    assert_int_equal(verify(f->jwks, good, strlen(good), &payload, err), 0);
    free(payload);
    free(good);
    free(forged);
    free(none);
}

/* sc_envelope_verify_fields gives the fields and text jansson's tree has:
 * envelopes in a broker's plain form without building a tree (no jansson
 * allocation), everything else (escapes, several lines, long integers)
 * through jansson, with the same result. */
static void test_envelope_fields_match_tree(void **state)
{
    fx_t *f = *state;
#define F_ "\"id\":\"i1\",\"channel\":\"a.b\",\"epoch\":\"e1\",\"ts\":\"t1\""
    static const struct { const char *payload; int plain; } rows[] = {
        /* a broker's form */
        {"{\"v\":1," F_ ",\"seq\":7,\"kind\":\"k\",\"key\":\"x\",\"source\":{},"
         "\"data\":{\"n\":1}}", 1},
        {"{\"v\":1," F_ ",\"seq\":123456789012345678,\"kind\":\"k\",\"key\":null,"
         "\"source\":{\"plugin\":\"p\"},\"data\":{}}", 1},
        /* other order, blanks, nested look-alikes that are not fields */
        {"{ \"data\" : {\"channel\":\"x.y\",\"s\":\"}{\\\"]\",\"a\":[1,{\"seq\":9}]},"
         " \"key\" : null, \"source\":{\"v\":2}, \"seq\" : 3 , \"kind\":\"k\","
         " \"v\" : 1, " F_ ", \"extra\":[\"{\",{\"id\":\"no\"}]}", 1},
        /* UTF-8 as is */
        {"{\"v\":1," F_ ",\"seq\":1,\"kind\":\"k\",\"key\":\"\xed\x95\x9c\xea\xb5\xad\","
         "\"source\":{},\"data\":{}}", 1},
        /* escapes in a field: jansson's */
        {"{\"v\":1," F_ ",\"seq\":1,\"kind\":\"k\\u00e9\",\"key\":\"a\\\"b\","
         "\"source\":{},\"data\":{}}", 0},
        /* a 19-digit seq: jansson's */
        {"{\"v\":1," F_ ",\"seq\":1234567890123456789,\"kind\":\"k\",\"key\":null,"
         "\"source\":{},\"data\":{}}", 0},
        /* several lines: jansson's compact form is the text */
        {"{\n  \"v\": 1,\n  " F_ ",\n  \"seq\": 2,\n  \"kind\": \"k\",\n"
         "  \"key\": null,\n  \"source\": {},\n  \"data\": {\"a\": [1, 2]}\n}", 0},
    };
#undef F_
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}",
             sc_sigkey_kid(f->key));
    json_set_alloc_funcs(count_malloc, free);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *jws = make_jws(f->key, hdr, rows[i].payload);
        json_t *env = NULL;
        char err[256] = "";
        if (sc_envelope_verify(f->jwks, "a.b.", 4, jws, strlen(jws), &env,
                               NULL, err, sizeof err) != 0)
            fail_msg("row %zu: %s", i, err);
        sc_envelope_fields_t ef;
        char kid[SC_KID_LEN + 1];
        g_json_allocs = 0;
        if (sc_envelope_verify_fields(f->jwks, "a.b.", 4, jws, strlen(jws),
                                      &ef, kid, err, sizeof err) != 0)
            fail_msg("row %zu: %s", i, err);
        if (rows[i].plain && g_json_allocs != 0)
            fail_msg("row %zu: read with jansson (%zu allocations)", i,
                     g_json_allocs);
        if (!rows[i].plain && g_json_allocs == 0)
            fail_msg("row %zu: not read with jansson", i);
        assert_string_equal(kid, sc_sigkey_kid(f->key));
        static const char *const names[] = {"id", "channel", "epoch", "ts",
                                            "kind"};
        const char *got[] = {ef.id, ef.channel, ef.epoch, ef.ts, ef.kind};
        for (size_t k = 0; k < 5; k++)
            assert_string_equal(got[k],
                                json_string_value(json_object_get(env,
                                                                  names[k])));
        json_t *key = json_object_get(env, "key");
        if (json_is_null(key))
            assert_null(ef.key);
        else
            assert_string_equal(ef.key, json_string_value(key));
        assert_true(ef.seq ==
                    (uint64_t)json_integer_value(json_object_get(env, "seq")));
        /* the text: the payload as signed if one line, else compact */
        char *compact = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
        const char *want = strchr(rows[i].payload, '\n') ? compact
                                                          : rows[i].payload;
        assert_int_equal(ef.text_len, strlen(want));
        assert_memory_equal(ef.text, want, ef.text_len);
        assert_int_equal(ef.text[ef.text_len], '\0');
        free(compact);
        sc_envelope_fields_free(&ef);
        assert_null(ef.mem);
        json_decref(env);
        free(jws);
    }
    json_set_alloc_funcs(malloc, free);
    /* a broker's own envelope takes the plain path (once its header is
     * known: sc_jws_verify keeps the last one it found fine) */
    char *jws = sign_env(f, "energy.nuclear.tasks", 42);
    sc_envelope_fields_t ef;
    char err[256];
    char *payload = NULL;
    assert_int_equal(verify(f->jwks, jws, strlen(jws), &payload, err), 0);
    free(payload);
    g_json_allocs = 0;
    json_set_alloc_funcs(count_malloc, free);
    assert_int_equal(sc_envelope_verify_fields(f->jwks,
                                               "energy.nuclear.tasks.", 21,
                                               jws, strlen(jws), &ef, NULL,
                                               err, sizeof err),
                     0);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(g_json_allocs, 0);
    assert_true(ef.seq == 42);
    assert_string_equal(ef.channel, "energy.nuclear.tasks");
    sc_envelope_fields_free(&ef);
    free(jws);
}

static void test_helpers(void **state)
{
    (void)state;
    char a[33], b[33], ts[32];
    sc_random_hex(a);
    sc_random_hex(b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    sc_now_rfc3339(ts);
    assert_int_equal(strlen(ts), 24);
    assert_memory_equal(ts, "20", 2);
    assert_int_equal(ts[23], 'Z');
}

/* Both strict decoders on text[len]: the same verdict and bytes. 1 if
 * they accepted it. */
static int decoders_agree(const char *text, size_t len)
{
    unsigned char a[64], b[64];
    size_t na = 99, nb = 99;
    int ra = sc_b64url_decode(a, sizeof a, &na, text, len);
    int rb = sc_b64url_decode_public(b, sizeof b, &nb, text, len);
    assert_int_equal(ra, rb);
    if (ra == 0) {
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
    }
    return ra == 0;
}

/* The table codec for public bytes (a JWS's parts) against libsodium's:
 * the same text for every byte string, and for every text the same
 * verdict and bytes as the libsodium-based strict decoder. */
static void test_public_codec_matches_libsodium(void **state)
{
    (void)state;
    unsigned char bin[4200], a[4200];
    char t1[5700], t2[5700];
    size_t sizes[] = {900, 1256, 4096, 4200};
    for (size_t k = 0; k < 300 + sizeof sizes / sizeof *sizes; k++) {
        size_t n = k < 300 ? k : sizes[k - 300];
        randombytes_buf(bin, n);
        sodium_bin2base64(t1, sizeof t1, bin, n, V);
        assert_int_equal(sc_b64url_encode_public(t2, sizeof t2, bin, n),
                         (int)strlen(t1));
        assert_string_equal(t1, t2);
        size_t got = 0;
        assert_int_equal(sc_b64url_decode_public(a, sizeof a, &got, t2,
                                                 strlen(t2)), 0);
        assert_int_equal(got, n);
        assert_memory_equal(a, bin, n);
        /* one byte short of room is refused, as libsodium does */
        if (n > 0) {
            assert_int_equal(sc_b64url_decode_public(a, n - 1, &got, t2,
                                                     strlen(t2)), -1);
            assert_int_equal(sc_b64url_decode(a, n - 1, &got, t2,
                                              strlen(t2)), -1);
        }
    }
    /* too small an output buffer for the encoder */
    assert_int_equal(sc_b64url_encode_public(t2, 4, bin, 3), -1);
    /* every text of 1 to 3 characters over the alphabet and a few bytes
     * outside it ('=', '+', '/', ' ', 0x80, 0xff, NUL) */
    static const char extra[] = "=+/ \x80\xff";
    char chars[80];
    size_t nc = 0;
    for (int c = 0; c < 256; c++)
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_')
            chars[nc++] = (char)c;
    memcpy(chars + nc, extra, sizeof extra - 1);
    nc += sizeof extra - 1;
    chars[nc++] = '\0';
    size_t tried = 0, accepted = 0;
    for (size_t len = 1; len <= 3; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= nc;
        for (size_t v = 0; v < total; v++) {
            size_t x = v;
            for (size_t i = 0; i < len; i++, x /= nc)
                t1[i] = chars[x % nc];
            accepted += decoders_agree(t1, len);
            tried++;
        }
    }
    /* 2 characters: 64 x 4 texts with zero trailing bits; 3: 64^2 x 16 */
    assert_int_equal(accepted, 64 * 4 + 64 * 64 * 16);
    /* longer random texts, mostly of the alphabet */
    for (int r = 0; r < 20000; r++) {
        size_t len = randombytes_uniform(40);
        for (size_t i = 0; i < len; i++)
            t1[i] = randombytes_uniform(50) ? chars[randombytes_uniform(64)]
                                            : chars[randombytes_uniform(
                                                  (uint32_t)nc)];
        decoders_agree(t1, len);
        tried++;
    }
    assert_true(tried > 300000);
    unsigned char sig[64];
    assert_int_equal(sc_b64url_decode_public_exact(sig, 64, A1_X,
                                                   strlen(A1_X)), -1);
    assert_int_equal(sc_b64url_decode_public_exact(sig, 32, A1_X,
                                                   strlen(A1_X)), 0);
    assert_int_equal(sc_b64url_decode_exact(a, 32, A1_X, strlen(A1_X)), 0);
    assert_memory_equal(sig, a, 32);
}

/* The broker's envelope text (sc_envelope_text, built piece by piece
 * around the data's text) is byte for byte what jansson writes for the
 * same fields in the same order (as sc_envelope_sign builds it): keys
 * plain, escaped and absent, seqs up to the largest, a reused buffer. */
static void test_envelope_text_matches_jansson(void **state)
{
    (void)state;
    static const char *const keys[] = {NULL, "k1", "a\"b\\c", "\xea\xb0\x80/x y",
                                       ""};
    static const uint64_t seqs[] = {1, 9, 10, 1234567890123ULL,
                                    18446744073709551615ULL};
    const char *source = "{\"plugin\":\"energy\",\"sector\":\"energy\"}";
    /* as jansson writes it (the text path keeps the data as written) */
    const char *data = "{\"a\":[1,2,{\"b\":\"\xc3\xa9\"}],\"t\":\"x\"}";
    char *buf = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t q = 0; q < sizeof seqs / sizeof seqs[0]; q++) {
            sc_envelope_text_in_t in = {
                .id = "0123456789abcdef0123456789abcdef",
                .channel = "energy.nuclear.tasks",
                .epoch = "fedcba9876543210",
                .seq = seqs[q],
                .ts = "2026-11-30T06:40:00.123Z",
                .kind = "task.updated",
                .key = keys[k],
                .source_json = source,
                .source_len = strlen(source),
                .data_json = data,
                .data_len = strlen(data),
            };
            size_t len = 0;
            assert_int_equal(sc_envelope_text(&in, &buf, &cap, &len), 0);
            assert_int_equal(strlen(buf), len);
            json_t *src = json_loads(source, 0, NULL);
            json_t *dat = json_loads(data, 0, NULL);
            json_t *env = json_pack(
                "{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o}", "v",
                SC_ENVELOPE_VERSION, "id", in.id, "channel", in.channel,
                "epoch", in.epoch, "seq", (json_int_t)0, "ts", in.ts, "kind",
                in.kind, "key", in.key ? json_string(in.key) : json_null(),
                "source", src, "data", dat);
            assert_non_null(env);
            /* jansson's integers are signed: the seq is put in as text */
            char *want = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
            char seqtxt[32];
            snprintf(seqtxt, sizeof seqtxt, "\"seq\":%llu",
                     (unsigned long long)seqs[q]);
            char *at = strstr(want, "\"seq\":0,");
            assert_non_null(at);
            size_t head = (size_t)(at - want);
            char *expect = malloc(strlen(want) + 32);
            memcpy(expect, want, head);
            strcpy(expect + head, seqtxt);
            strcat(expect, at + strlen("\"seq\":0"));
            assert_string_equal(buf, expect);
            free(expect);
            free(want);
            json_decref(env);
        }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_changed_bytes_fail),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_alg_refused),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rfc8037_a4),
        cmocka_unit_test(test_envelope_roundtrip),
        cmocka_unit_test(test_envelope_channel_topic),
        cmocka_unit_test(test_envelope_shape),
        cmocka_unit_test(test_envelope_fields_match_tree),
        cmocka_unit_test(test_header_kept),
        cmocka_unit_test(test_envelope_text_matches_jansson),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_public_codec_matches_libsodium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
