/*
 * envelope.c - the signed message envelope of docs/protocol.md.
 *
 * Owns building an envelope in its fixed field order and signing it
 * (broker side), and checking a received [topic][jws] pair (client side):
 * signature first, then envelope shape and types, then channel == topic.
 * The envelope is read either into jansson's tree (sc_envelope_verify) or
 * into its fields (sc_envelope_verify_fields: without a tree when it is
 * in a broker's plain form, through the tree otherwise); both readers go
 * through the same checks. Never sends or stores anything.
 */
#include "envelope.h"

#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "codec.h"
#include "jsoncheck.h"
#include "jws.h"

#define SETERR(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)

void sc_now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
        gmtime_r(&ts.tv_sec, &tm) == NULL) {
        memcpy(out, "1970-01-01T00:00:00.000Z", 25);
        return;
    }
    char date[24];
    if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        memcpy(out, "1970-01-01T00:00:00.000Z", 25);
        return;
    }
    snprintf(out, 32, "%s.%03dZ", date, (int)(ts.tv_nsec / 1000000L % 1000));
}

void sc_random_hex(char out[33])
{
    unsigned char b[16];
    (void)sc_sodium_init();
    randombytes_buf(b, sizeof b);
    sodium_bin2hex(out, 33, b, sizeof b);
}

int sc_envelope_sign(const sc_envelope_in_t *in, const sc_sigkey_t *key,
                     char **jws_out, size_t *jws_len, char *err,
                     size_t errlen)
{
    if (jws_out == NULL || in == NULL || key == NULL) {
        SETERR("envelope: missing argument");
        return -1;
    }
    *jws_out = NULL;
    if (jws_len)
        *jws_len = 0;
    if (!sc_channel_valid(in->channel)) {
        SETERR("envelope: invalid channel name");
        return -1;
    }
    if (in->epoch == NULL || in->kind == NULL) {
        SETERR("envelope: epoch and kind are required");
        return -1;
    }
    if (in->seq < 1 || in->seq > (uint64_t)LLONG_MAX) {
        SETERR("envelope: seq %llu out of range",
               (unsigned long long)in->seq);
        return -1;
    }
    if ((in->source && !json_is_object(in->source)) ||
        (in->data && !json_is_object(in->data))) {
        SETERR("envelope: source and data must be JSON objects");
        return -1;
    }
    char id[33], ts[32];
    if (in->id == NULL)
        sc_random_hex(id);
    if (in->ts == NULL)
        sc_now_rfc3339(ts);

    /* Insertion order is wire order (JSON_PRESERVE_ORDER below). */
    json_t *env = json_object();
    int bad = env == NULL;
    bad = bad || json_object_set_new(env, "v",
                                     json_integer(SC_ENVELOPE_VERSION));
    bad = bad || json_object_set_new(env, "id",
                                     json_string(in->id ? in->id : id));
    bad = bad || json_object_set_new(env, "channel", json_string(in->channel));
    bad = bad || json_object_set_new(env, "epoch", json_string(in->epoch));
    bad = bad || json_object_set_new(env, "seq",
                                     json_integer((json_int_t)in->seq));
    bad = bad || json_object_set_new(env, "ts",
                                     json_string(in->ts ? in->ts : ts));
    bad = bad || json_object_set_new(env, "kind", json_string(in->kind));
    bad = bad || json_object_set_new(env, "key", in->key
                                     ? json_string(in->key) : json_null());
    bad = bad || json_object_set_new(env, "source", in->source
                                     ? json_incref(in->source) : json_object());
    bad = bad || json_object_set_new(env, "data", in->data
                                     ? json_incref(in->data) : json_object());
    char *text = bad ? NULL
                     : json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    if (text == NULL) {
        /* json_string() refuses invalid UTF-8, which lands here too. */
        SETERR("envelope: cannot build JSON (strings must be UTF-8)");
        return -1;
    }
    int rc = sc_jws_sign(key, SC_JWS_TYP, text, strlen(text), jws_out,
                         jws_len);
    free(text);
    if (rc != 0)
        SETERR("envelope: signing failed");
    return rc;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (*buf && *cap >= need)
        return 0;
    size_t n = need < 1024 ? 1024 : need + need / 4;
    char *nb = realloc(*buf, n);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = n;
    return 0;
}

/* `v` in decimal into out[24]; its length */
static int u64_text(char out[24], uint64_t v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = t[n - 1 - i];
    return n;
}

int sc_envelope_text(const sc_envelope_text_in_t *in, char **buf,
                     size_t *cap, size_t *len)
{
    /* the key as JSON: text without '"' or '\\' (and, by contract, no
     * control characters) is its own JSON string body; anything else is
     * escaped by jansson */
    char *key_esc = NULL;
    size_t klen = in->key ? strlen(in->key) : 0;
    if (in->key && (memchr(in->key, '"', klen) || memchr(in->key, '\\', klen))) {
        json_t *k = json_string(in->key);
        key_esc = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
        json_decref(k);
        if (!key_esc)
            return -1;
    }
    size_t need = 160 + strlen(in->id) + strlen(in->channel) +
                  strlen(in->epoch) + strlen(in->ts) + strlen(in->kind) +
                  (key_esc ? strlen(key_esc) : klen + 2) + in->source_len +
                  in->data_len;
    if (grow(buf, cap, need) != 0) {
        free(key_esc);
        return -1;
    }
    /* appended piece by piece (no printf: this runs once per message on
     * the signing threads); `need` covers every piece */
    char *p = *buf;
#define PUT(s, n) (memcpy(p, (s), (n)), p += (n))
#define PUTS(lit) PUT(lit, sizeof lit - 1)
#define PUTZ(z) PUT((z), strlen(z))
    PUTS("{\"v\":");
    char num[24];
    int nl = u64_text(num, SC_ENVELOPE_VERSION);
    PUT(num, (size_t)nl);
    PUTS(",\"id\":\"");
    PUTZ(in->id);
    PUTS("\",\"channel\":\"");
    PUTZ(in->channel);
    PUTS("\",\"epoch\":\"");
    PUTZ(in->epoch);
    PUTS("\",\"seq\":");
    nl = u64_text(num, in->seq);
    PUT(num, (size_t)nl);
    PUTS(",\"ts\":\"");
    PUTZ(in->ts);
    PUTS("\",\"kind\":\"");
    PUTZ(in->kind);
    PUTS("\",\"key\":");
    if (key_esc) {
        PUTZ(key_esc);
    } else if (in->key) {
        PUTS("\"");
        PUT(in->key, klen);
        PUTS("\"");
    } else {
        PUTS("null");
    }
    PUTS(",\"source\":");
#undef PUTZ
#undef PUTS
#undef PUT
    free(key_esc);
    size_t n = (size_t)(p - *buf);
    if (n + in->source_len + in->data_len + 10 > *cap)
        return -1;
    memcpy(p, in->source_json, in->source_len);
    p += in->source_len;
    memcpy(p, ",\"data\":", 8);
    p += 8;
    memcpy(p, in->data_json, in->data_len);
    p += in->data_len;
    *p++ = '}';
    *p = '\0';
    *len = (size_t)(p - *buf);
    return 0;
}

/* Field type checks, in wire order. NULL if fine, else the field name. */
static const char *shape_error(json_t *env, const char **what)
{
    static const char *const strs[] = {"id", "channel", "epoch", "ts",
                                       "kind"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!json_is_string(json_object_get(env, strs[i]))) {
            *what = "a string";
            return strs[i];
        }
    }
    json_t *seq = json_object_get(env, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
        *what = "a positive integer";
        return "seq";
    }
    json_t *key = json_object_get(env, "key");
    if (!json_is_string(key) && !json_is_null(key)) {
        *what = "a string or null";
        return "key";
    }
    if (!json_is_object(json_object_get(env, "source"))) {
        *what = "an object";
        return "source";
    }
    if (!json_is_object(json_object_get(env, "data"))) {
        *what = "an object";
        return "data";
    }
    return NULL;
}

/* The envelope's version and field types (jansson's tree). SC_JWS_OK or
 * a code with err filled. */
static int env_shape(json_t *env, char *err, size_t errlen)
{
    const char *field, *what = NULL;
    json_t *v;
    if (env == NULL || !json_is_object(env)) {
        SETERR("envelope: payload is not a JSON object");
        return SC_ENV_ESHAPE;
    }
    if ((v = json_object_get(env, "v")) == NULL) {
        SETERR("envelope: field \"v\" is missing");
        return SC_ENV_ESHAPE;
    }
    if (!json_is_integer(v) || json_integer_value(v) != SC_ENVELOPE_VERSION) {
        SETERR("envelope: unknown version (\"v\" must be the integer %d)",
               SC_ENVELOPE_VERSION);
        return SC_ENV_EVERSION;
    }
    if ((field = shape_error(env, &what)) != NULL) {
        SETERR("envelope: field \"%s\" is missing or not %s", field, what);
        return SC_ENV_ESHAPE;
    }
    return SC_JWS_OK;
}

/* A verified payload read into jansson's tree, with the flags both
 * readers use, and its version and field types checked. NULL with *rc
 * and err filled if it is not an envelope. */
static json_t *env_tree(const char *payload, size_t plen, int *rc,
                        char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *env = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &jerr);
    *rc = env_shape(env, err, errlen);
    if (*rc != SC_JWS_OK) {
        json_decref(env);
        return NULL;
    }
    return env;
}

/* The topic a message came with against its envelope's channel (ch_len
 * bytes, which must hold no NUL). SC_JWS_OK or a code with err filled. */
static int env_topic(const char *topic, size_t topic_len, const char *ch,
                     size_t ch_len, char *err, size_t errlen)
{
    if (topic == NULL || !sc_subtree_valid(topic, topic_len)) {
        SETERR("envelope: topic is not a valid \"<channel>.\"");
        return SC_ENV_ETOPIC;
    }
    if (!sc_channel_valid(ch) || ch_len != strlen(ch)) {
        SETERR("envelope: channel is not a valid channel name");
        return SC_ENV_ECHANNEL;
    }
    if (ch_len + 1 != topic_len || memcmp(ch, topic, ch_len) != 0) {
        SETERR("envelope: channel \"%s\" does not match topic \"%.*s\"", ch,
               (int)topic_len, topic);
        return SC_ENV_ECHANNEL;
    }
    return SC_JWS_OK;
}

/* The start of both readers: kid_out cleared (it is set only once every
 * check passed), the JWS checked against the JWKS; its payload (the
 * caller frees it) and the kid that signed it. */
static int signed_payload(const sc_jwks_t *jwks, const char *jws,
                          size_t jws_len, char **payload, size_t *plen,
                          char kid[SC_KID_LEN + 1], char *kid_out, char *err,
                          size_t errlen)
{
    *payload = NULL;
    *plen = 0;
    if (kid_out)
        kid_out[0] = '\0';
    return sc_jws_verify(jwks, jws, jws_len, payload, plen, kid, err, errlen);
}

int sc_envelope_verify(const sc_jwks_t *jwks, const char *topic,
                       size_t topic_len, const char *jws, size_t jws_len,
                       json_t **env_out, char kid_out[SC_KID_LEN + 1],
                       char *err, size_t errlen)
{
    if (env_out)
        *env_out = NULL;
    char kid[SC_KID_LEN + 1], *payload;
    size_t plen;
    int rc = signed_payload(jwks, jws, jws_len, &payload, &plen, kid, kid_out,
                            err, errlen);
    if (rc != SC_JWS_OK)
        return rc;
    json_t *env = env_tree(payload, plen, &rc, err, errlen);
    free(payload);
    if (rc == SC_JWS_OK) {
        json_t *ch = json_object_get(env, "channel");
        rc = env_topic(topic, topic_len, json_string_value(ch),
                       json_string_length(ch), err, errlen);
    }
    if (rc != SC_JWS_OK) {
        json_decref(env);
        return rc;
    }
    if (kid_out)
        memcpy(kid_out, kid, sizeof kid);
    if (env_out)
        *env_out = env;
    else
        json_decref(env);
    return SC_JWS_OK;
}

/* ---- the fields without a tree ------------------------------------------ */

enum { F_ID, F_CHANNEL, F_EPOCH, F_TS, F_KIND, F_KEY, F_N };
static const char *const field_names[F_N] = {"id",   "channel", "epoch",
                                             "ts",   "kind",    "key"};

/* The end of the JSON value at p (valid JSON: sc_json_object_fast said
 * so): past a string (escapes skipped), a balanced object or array, or a
 * scalar. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    do {
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            depth--;
            p++;
        } else if (depth > 0) {
            p++; /* ',', ':', blanks, scalars inside */
        } else {
            while (p < end && !strchr(",}] \t\r\n", *p))
                p++;
        }
    } while (depth > 0 && p < end);
    return p;
}

/* The payload is one line of text: it can be handed on as it was signed
 * (no NUL, no line break). */
static bool one_line(const char *payload, size_t plen)
{
    return plen > 0 && !memchr(payload, '\0', plen) &&
           !memchr(payload, '\n', plen) && !memchr(payload, '\r', plen);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* 1..18 digits, no sign, no leading zero, nothing after: the integers
 * jansson reads as such, within 64 bits; 0 otherwise. */
static uint64_t plain_uint(const char *p, const char *e)
{
    if (e - p < 1 || e - p > 18 || *p == '0')
        return 0;
    uint64_t v = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}

/* The fields of payload[plen] read without building a tree, when the
 * text is one line of JSON that jansson would take as an object
 * (sc_json_object_fast) and every field is in its plainest form: "v" 1,
 * "seq" a positive integer, the strings without escapes, "source" and
 * "data" objects. true: f filled, its strings in f->mem (which then owns
 * the payload); false: nothing decided, jansson reads it (and finds the
 * same fields, or says what is wrong). */
static bool fields_fast(char *payload, size_t plen, sc_envelope_fields_t *f)
{
    if (!one_line(payload, plen) || sc_json_object_fast(payload, plen) != 1)
        return false;
    /* where each field's characters are in the payload (no escapes) */
    size_t off[F_N] = {0}, len[F_N] = {0};
    bool seen[F_N] = {0};
    bool v_ok = false, key_null = false, src = false, data = false;
    uint64_t seq = 0;
    const char *p = payload, *end = payload + plen;
    p = skip_ws(p, end) + 1; /* '{' */
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p == '}')
            break;
        if (*p == ',')
            p = skip_ws(p + 1, end);
        /* a key: no escapes (sc_json_object_fast leaves those to jansson) */
        const char *k = ++p;
        while (p < end && *p != '"')
            p++;
        size_t klen = (size_t)(p - k);
        p = skip_ws(p + 1, end) + 1; /* ':' */
        p = skip_ws(p, end);
        const char *vend = skip_value(p, end);
        int which = -1;
        for (int i = 0; i < F_N; i++)
            if (strlen(field_names[i]) == klen &&
                memcmp(field_names[i], k, klen) == 0)
                which = i;
        if (which >= 0) {
            seen[which] = true;
            if (which == F_KEY && *p == 'n') {
                key_null = true; /* null: the only bare word starting so */
            } else if (*p != '"' || memchr(p, '\\', (size_t)(vend - p))) {
                return false; /* not a string, or escaped: jansson's */
            } else {
                off[which] = (size_t)(p + 1 - payload);
                len[which] = (size_t)(vend - p) - 2;
            }
        } else if (klen == 1 && *k == 'v') {
            v_ok = plain_uint(p, vend) == SC_ENVELOPE_VERSION;
        } else if (klen == 3 && memcmp(k, "seq", 3) == 0) {
            seq = plain_uint(p, vend);
        } else if (klen == 6 && memcmp(k, "source", 6) == 0) {
            src = *p == '{';
        } else if (klen == 4 && memcmp(k, "data", 4) == 0) {
            data = *p == '{';
        }
        p = vend;
    }
    for (int i = 0; i < F_N; i++)
        if (!seen[i])
            return false;
    if (!v_ok || seq == 0 || !src || !data)
        return false;
    /* one allocation: the text (the payload) and the fields after it */
    size_t need = plen + 1;
    for (int i = 0; i < F_N; i++)
        need += len[i] + 1;
    char *mem = realloc(payload, need);
    if (!mem)
        return false; /* jansson's path reports the shortage */
    char *q = mem + plen + 1;
    const char **out[F_N] = {&f->id,   &f->channel, &f->epoch,
                             &f->ts,   &f->kind,    &f->key};
    for (int i = 0; i < F_N; i++) {
        memcpy(q, mem + off[i], len[i]);
        q[len[i]] = '\0';
        *out[i] = q;
        q += len[i] + 1;
    }
    if (key_null)
        f->key = NULL;
    mem[plen] = '\0';
    f->mem = mem;
    f->text = mem;
    f->text_len = plen;
    f->seq = seq;
    return true;
}

/* The same fields out of jansson's tree (checked by env_shape), and the
 * text: the payload if it is one line, else jansson's compact form of it.
 * Takes the payload. false: out of memory. */
static bool fields_tree(json_t *env, char *payload, size_t plen,
                        sc_envelope_fields_t *f)
{
    char *text = payload;
    size_t text_len = plen;
    if (!one_line(payload, plen)) {
        free(payload);
        payload = NULL;
        text = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
            return false;
        text_len = strlen(text);
    }
    const char *val[F_N];
    size_t need = text_len + 1;
    for (int i = 0; i < F_N; i++) {
        json_t *v = json_object_get(env, field_names[i]);
        val[i] = json_is_string(v) ? json_string_value(v) : NULL;
        need += val[i] ? strlen(val[i]) + 1 : 0;
    }
    char *mem = realloc(text, need);
    if (!mem) {
        free(text);
        return false;
    }
    mem[text_len] = '\0';
    char *q = mem + text_len + 1;
    const char **out[F_N] = {&f->id,   &f->channel, &f->epoch,
                             &f->ts,   &f->kind,    &f->key};
    for (int i = 0; i < F_N; i++) {
        *out[i] = NULL; /* key: null */
        if (!val[i])
            continue;
        size_t n = strlen(val[i]);
        memcpy(q, val[i], n + 1);
        *out[i] = q;
        q += n + 1;
    }
    f->mem = mem;
    f->text = mem;
    f->text_len = text_len;
    f->seq = (uint64_t)json_integer_value(json_object_get(env, "seq"));
    return true;
}

int sc_envelope_verify_fields(const sc_jwks_t *jwks, const char *topic,
                              size_t topic_len, const char *jws,
                              size_t jws_len, sc_envelope_fields_t *f,
                              char kid_out[SC_KID_LEN + 1], char *err,
                              size_t errlen)
{
    memset(f, 0, sizeof *f);
    char kid[SC_KID_LEN + 1], *payload;
    size_t plen;
    int rc = signed_payload(jwks, jws, jws_len, &payload, &plen, kid, kid_out,
                            err, errlen);
    if (rc != SC_JWS_OK)
        return rc;
    if (!fields_fast(payload, plen, f)) {
        json_t *env = env_tree(payload, plen, &rc, err, errlen);
        if (!env) {
            free(payload);
            return rc;
        }
        bool ok = fields_tree(env, payload, plen, f);
        json_decref(env);
        if (!ok) {
            SETERR("envelope: out of memory");
            return SC_ENV_ENOMEM;
        }
    }
    /* the channel field holds no NUL here: fields_fast takes no escapes,
     * and jansson refuses "\u0000" */
    rc = env_topic(topic, topic_len, f->channel, strlen(f->channel), err,
                   errlen);
    if (rc != SC_JWS_OK) {
        sc_envelope_fields_free(f);
        return rc;
    }
    if (kid_out)
        memcpy(kid_out, kid, sizeof kid);
    return SC_JWS_OK;
}

void sc_envelope_fields_free(sc_envelope_fields_t *f)
{
    if (!f)
        return;
    free(f->mem);
    memset(f, 0, sizeof *f);
}
