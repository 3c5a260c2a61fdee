/*
 * jws.c - JWS compact serialization with EdDSA/Ed25519 (RFC 7515, 8037).
 *
 * Owns turning payload bytes into a signed compact JWS and back. Knows
 * nothing of envelopes. Verification treats its input as hostile: it never
 * reads past `len`, never trusts a length it has not checked, and accepts
 * exactly one algorithm (EdDSA) with a kid from the caller's JWKS.
 */
#include "jws.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define SETERR(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)

#define SIG_LEN crypto_sign_BYTES
/* A protected header is a few dozen bytes; cap what we hand to jansson. */
#define HEADER_B64_MAX 4096

struct sc_jws_signer {
    const sc_sigkey_t *key;
    char *hdr_b64; /* base64url of the protected header */
    size_t hdr_len;
};

sc_jws_signer_t *sc_jws_signer_new(const sc_sigkey_t *key, const char *typ)
{
    if (key == NULL || sc_sodium_init() != 0)
        return NULL;
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "EdDSA", "kid",
                            sc_sigkey_kid(key), "typ",
                            typ ? typ : SC_JWS_TYP);
    char *hjson = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER)
                      : NULL;
    json_decref(hdr);
    sc_jws_signer_t *s = hjson ? calloc(1, sizeof *s) : NULL;
    if (s) {
        s->key = key;
        s->hdr_b64 = sc_b64url_encode_alloc((const unsigned char *)hjson,
                                            strlen(hjson), &s->hdr_len);
        if (!s->hdr_b64) {
            free(s);
            s = NULL;
        }
    }
    free(hjson);
    return s;
}

void sc_jws_signer_destroy(sc_jws_signer_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    free((*s_p)->hdr_b64);
    free(*s_p);
    *s_p = NULL;
}

const char *sc_jws_signer_kid(const sc_jws_signer_t *s)
{
    return sc_sigkey_kid(s->key);
}

int sc_jws_signer_sign(const sc_jws_signer_t *s, const char *payload,
                       size_t payload_len, char **buf, size_t *cap,
                       size_t *out_len)
{
    if (s == NULL || buf == NULL || cap == NULL ||
        (payload == NULL && payload_len > 0))
        return -1;
    size_t hlen = s->hdr_len;
    size_t plen = sc_b64url_len(payload_len);
    size_t slen = sc_b64url_len(SIG_LEN);
    size_t total = hlen + 1 + plen + 1 + slen;
    if (*buf == NULL || *cap < total + 1) {
        char *nb = realloc(*buf, total + 1);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = total + 1;
    }
    char *jws = *buf;
    unsigned char sig[SIG_LEN];
    memcpy(jws, s->hdr_b64, hlen);
    jws[hlen] = '.';
    sc_b64url_encode_public(jws + hlen + 1, plen + 1,
                            (const unsigned char *)payload, payload_len);
    /* Signing input: ASCII(b64(header) || '.' || b64(payload)). */
    if (sc_sigkey_sign(s->key, (const unsigned char *)jws, hlen + 1 + plen,
                       sig) != 0)
        return -1;
    jws[hlen + 1 + plen] = '.';
    sc_b64url_encode_public(jws + hlen + 1 + plen + 1, slen + 1, sig,
                            SIG_LEN);
    if (out_len)
        *out_len = total;
    return 0;
}

int sc_jws_sign(const sc_sigkey_t *key, const char *typ, const char *payload,
                size_t payload_len, char **out, size_t *out_len)
{
    if (out == NULL || key == NULL || (payload == NULL && payload_len > 0))
        return -1;
    *out = NULL;
    if (out_len)
        *out_len = 0;
    sc_jws_signer_t *s = sc_jws_signer_new(key, typ);
    size_t cap = 0;
    int rc = s ? sc_jws_signer_sign(s, payload, payload_len, out, &cap,
                                    out_len)
               : -1;
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
    sc_jws_signer_destroy(&s);
    return rc;
}

/* Never echo attacker text verbatim into an error: a bounded copy with
 * every byte outside lo..0x7e, '"' and '\\' shown as '?'. */
static void printable(char *out, size_t outlen, const char *s,
                      unsigned char lo)
{
    size_t i = 0;
    for (; i < outlen - 1 && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= lo && c < 0x7f && c != '"' && c != '\\') ? (char)c
                                                                : '?';
    }
    out[i] = '\0';
}

/* Check the decoded protected header; on success *kid_p points into hdr. */
static int check_header(json_t *hdr, const char **kid_p, char *err,
                        size_t errlen)
{
    if (!json_is_object(hdr)) {
        SETERR("JWS header is not a JSON object");
        return SC_JWS_EMALFORMED;
    }
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg)) {
        SETERR("JWS header has no \"alg\" string");
        return SC_JWS_EALG;
    }
    if (strcmp(json_string_value(alg), "EdDSA") != 0) {
        char shown[33];
        printable(shown, sizeof shown, json_string_value(alg), 0x20);
        SETERR("JWS alg \"%s\" refused (only EdDSA is accepted)", shown);
        return SC_JWS_EALG;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        SETERR("JWS header has \"crit\" (no extensions are understood)");
        return SC_JWS_EALG;
    }
    json_t *kid = json_object_get(hdr, "kid");
    if (!json_is_string(kid)) {
        SETERR("JWS header has no \"kid\" string");
        return SC_JWS_EUNKNOWN_KID;
    }
    *kid_p = json_string_value(kid);
    return SC_JWS_OK;
}

/* The last protected header this thread found fine, and its kid: a
 * broker signs everything with one of a few headers, so when the bytes
 * are the same the header is not decoded and parsed again (the kid is
 * still looked up in the caller's JWKS). Headers or kids longer than
 * these are simply not kept. */
#define CACHED_HEADER_MAX 512
#define CACHED_KID_MAX 64
static _Thread_local struct {
    size_t len; /* 0: nothing kept */
    char b64[CACHED_HEADER_MAX];
    char kid[CACHED_KID_MAX + 1];
} last_header;

int sc_jws_verify(const sc_jwks_t *jwks, const char *jws, size_t len,
                  char **payload, size_t *payload_len,
                  char kid_out[SC_KID_LEN + 1], char *err, size_t errlen)
{
    if (payload)
        *payload = NULL;
    if (payload_len)
        *payload_len = 0;
    if (kid_out)
        kid_out[0] = '\0';
    if (jws == NULL && len > 0) {
        SETERR("no JWS");
        return SC_JWS_EMALFORMED;
    }
    if (len > SC_JWS_MAX) {
        SETERR("JWS of %zu bytes exceeds the limit of %u", len, SC_JWS_MAX);
        return SC_JWS_ETOOBIG;
    }
    if (sc_sodium_init() != 0) {
        SETERR("cannot initialise libsodium");
        return SC_JWS_EMALFORMED;
    }
    /* Exactly three parts: header '.' payload '.' signature. */
    const char *d1 = len ? memchr(jws, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jws))
                        : NULL;
    if (d1 == NULL || d2 == NULL ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jws)) != NULL) {
        SETERR("not a JWS compact serialization (need exactly 3 parts)");
        return SC_JWS_EMALFORMED;
    }
    size_t h_len = (size_t)(d1 - jws);
    const char *p_b64 = d1 + 1;
    size_t p_b64_len = (size_t)(d2 - p_b64);
    const char *s_b64 = d2 + 1;
    size_t s_b64_len = len - (size_t)(s_b64 - jws);

    if (h_len == 0 || h_len > HEADER_B64_MAX) {
        SETERR("JWS header is empty or too long");
        return SC_JWS_EMALFORMED;
    }
    unsigned char hbuf[HEADER_B64_MAX];
    size_t hbin = 0;
    bool known = h_len == last_header.len &&
                 memcmp(last_header.b64, jws, h_len) == 0;
    if (!known &&
        sc_b64url_decode_public(hbuf, sizeof hbuf, &hbin, jws, h_len) != 0) {
        SETERR("JWS header is not base64url");
        return SC_JWS_EMALFORMED;
    }
    unsigned char sig[SIG_LEN];
    if (sc_b64url_decode_public_exact(sig, sizeof sig, s_b64, s_b64_len) !=
        0) {
        SETERR("JWS signature is not %u bytes of base64url", (unsigned)SIG_LEN);
        return SC_JWS_EMALFORMED;
    }
    /* Payload decoded up front too: a part that is not base64url makes the
     * whole thing malformed, whatever the signature says. */
    unsigned char *pbuf = malloc(p_b64_len / 4 * 3 + 3 + 1);
    size_t pbin = 0;
    if (pbuf == NULL) {
        SETERR("out of memory");
        return SC_JWS_EMALFORMED;
    }
    if (sc_b64url_decode_public(pbuf, p_b64_len / 4 * 3 + 3, &pbin, p_b64,
                                p_b64_len) != 0) {
        SETERR("JWS payload is not base64url");
        free(pbuf);
        return SC_JWS_EMALFORMED;
    }
    pbuf[pbin] = '\0';

    json_t *hdr = NULL;
    const char *kid = last_header.kid;
    int rc = SC_JWS_OK;
    if (!known) {
        json_error_t jerr;
        hdr = json_loadb((const char *)hbuf, hbin, JSON_REJECT_DUPLICATES,
                         &jerr);
        if (hdr == NULL) {
            SETERR("JWS header is not valid JSON");
            free(pbuf);
            return SC_JWS_EMALFORMED;
        }
        rc = check_header(hdr, &kid, err, errlen);
        if (rc == SC_JWS_OK && h_len <= CACHED_HEADER_MAX &&
            strlen(kid) <= CACHED_KID_MAX) {
            memcpy(last_header.b64, jws, h_len);
            memcpy(last_header.kid, kid, strlen(kid) + 1);
            last_header.len = h_len;
        }
    }
    const unsigned char *pk = NULL;
    if (rc == SC_JWS_OK && (pk = sc_jwks_find(jwks, kid)) == NULL) {
        char k[SC_KID_LEN + 1];
        printable(k, sizeof k, kid, 0x21);
        SETERR("JWS kid \"%s\" is not in the JWKS", k);
        rc = SC_JWS_EUNKNOWN_KID;
    }
    if (rc == SC_JWS_OK &&
        crypto_sign_verify_detached(sig, (const unsigned char *)jws,
                                    (size_t)(d2 - jws), pk) != 0) {
        SETERR("JWS signature does not verify with key %s", kid);
        rc = SC_JWS_ESIGNATURE;
    }
    if (rc == SC_JWS_OK) {
        /* kid matched a JWKS entry, so it is a 43-char thumbprint. */
        if (kid_out)
            memcpy(kid_out, kid, SC_KID_LEN + 1);
        if (payload_len)
            *payload_len = pbin;
        if (payload) {
            *payload = (char *)pbuf;
            pbuf = NULL;
        }
    }
    json_decref(hdr);
    free(pbuf);
    return rc;
}
