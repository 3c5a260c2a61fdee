/*
 * jsoncheck.c - "is this text one JSON object?" (jsoncheck.h).
 *
 * Owns the fast scan and the jansson fallback behind it. The scan
 * follows jansson 2.14's lexer and parser (load.c) for the text it
 * decides: RFC 8259 grammar; whitespace is space, tab, LF, CR; strings
 * are UTF-8 as jansson's utf8_check_full() takes it (no overlong forms,
 * no surrogates, nothing above U+10FFFF) without control characters;
 * numbers as jansson lexes them, an integer must fit a long long and a
 * real must not overflow a double; no duplicate key in an object (keys
 * without escapes, so their bytes are the key). Whatever it does not
 * decide goes to jansson, so a rare form costs a parse, never a wrong
 * verdict. Never allocates; never says "no" by itself.
 */
#include "jsoncheck.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define JC_DEPTH 32 /* containers open at once */
#define JC_KEYS 128 /* keys of the objects open at once */

typedef struct {
    const unsigned char *p;
    size_t n;
} jc_span_t;

static const unsigned char *jc_ws(const unsigned char *p,
                                  const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int jc_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One UTF-8 sequence of 2-4 bytes at p (p[0] >= 0x80), as jansson's
 * utf8_check_first/utf8_check_full take it: its length, or 0. */
static size_t jc_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned char u = p[0];
    size_t size;
    uint32_t v;
    if (u >= 0xC2 && u <= 0xDF) {
        size = 2;
        v = u & 0x1F;
    } else if (u >= 0xE0 && u <= 0xEF) {
        size = 3;
        v = u & 0x0F;
    } else if (u >= 0xF0 && u <= 0xF4) {
        size = 4;
        v = u & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < size)
        return 0;
    for (size_t i = 1; i < size; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ||
        (size == 3 && v < 0x800) || (size == 4 && v < 0x10000))
        return 0;
    return size;
}

/* A string at p (p[0] == '"'): the position after its closing quote, or
 * NULL. `key`: escapes are left to jansson (a key's bytes must be the key
 * for the duplicate check). */
static const unsigned char *jc_string(const unsigned char *p,
                                      const unsigned char *end, bool key)
{
    p++;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c < 0x80 && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = jc_utf8(p, end);
            if (n == 0)
                return NULL;
            p += n;
            continue;
        }
        if (key || end - p < 2)
            return NULL;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return NULL;
        }
        if (end - p < 6)
            return NULL;
        int v = 0;
        for (int i = 2; i < 6; i++) {
            int h = jc_hex(p[i]);
            if (h < 0)
                return NULL;
            v = v << 4 | h;
        }
        /* "\u0000" is refused by jansson (no JSON_ALLOW_NUL); a surrogate
         * is fine only as half of a pair: jansson decides those */
        if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
            return NULL;
        p += 6;
    }
    return NULL;
}

static size_t jc_digits(const unsigned char *p, const unsigned char *end)
{
    size_t n = 0;
    while (p + n < end && p[n] >= '0' && p[n] <= '9')
        n++;
    return n;
}

/* A number at p: the position after it, or NULL. Integers of up to 18
 * digits (a long long holds them all), reals whose integer part has up to
 * 200 digits and whose exponent has up to 2 (below 1e300: no overflow). */
static const unsigned char *jc_number(const unsigned char *p,
                                      const unsigned char *end)
{
    if (*p == '-')
        p++;
    size_t n = jc_digits(p, end);
    if (n == 0 || (p[0] == '0' && n > 1))
        return NULL;
    p += n;
    bool real = false;
    if (p < end && *p == '.') {
        size_t f = jc_digits(p + 1, end);
        if (f == 0)
            return NULL;
        p += 1 + f;
        real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        size_t e = jc_digits(p, end);
        if (e == 0 || e > 2)
            return NULL;
        p += e;
        real = true;
    }
    if (real ? n > 200 : n > 18)
        return NULL;
    return p;
}

int sc_json_object_fast(const char *text, size_t len)
{
    enum { KEY_OR_END, KEY, VALUE_OR_END, VALUE, AFTER } state = KEY_OR_END;
    if (text == NULL)
        return 0;
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    char open[JC_DEPTH];       /* '{' or '[' */
    size_t key_base[JC_DEPTH]; /* an object's first key in keys[] */
    jc_span_t keys[JC_KEYS];
    size_t depth = 0, nkeys = 0;

    p = jc_ws(p, end);
    if (p == end || *p != '{')
        return 0;
    open[0] = '{';
    key_base[0] = 0;
    depth = 1;
    p++;
    for (;;) {
        p = jc_ws(p, end);
        if (p == end)
            return 0;
        switch (state) {
        case KEY_OR_END:
        case KEY: {
            if (state == KEY_OR_END && *p == '}')
                goto close;
            if (*p != '"')
                return 0;
            const unsigned char *q = jc_string(p, end, true);
            if (q == NULL || nkeys == JC_KEYS)
                return 0;
            jc_span_t k = {p + 1, (size_t)(q - p - 2)};
            for (size_t i = key_base[depth - 1]; i < nkeys; i++)
                if (keys[i].n == k.n && memcmp(keys[i].p, k.p, k.n) == 0)
                    return 0; /* a duplicate key: jansson says so */
            keys[nkeys++] = k;
            p = jc_ws(q, end);
            if (p == end || *p != ':')
                return 0;
            p++;
            state = VALUE;
            continue;
        }
        case VALUE_OR_END:
        case VALUE:
            if (state == VALUE_OR_END && *p == ']')
                goto close;
            switch (*p) {
            case '{':
            case '[':
                if (depth == JC_DEPTH)
                    return 0;
                open[depth] = (char)*p;
                key_base[depth] = nkeys;
                depth++;
                state = *p == '{' ? KEY_OR_END : VALUE_OR_END;
                p++;
                continue;
            case '"':
                p = jc_string(p, end, false);
                break;
            case 't':
                p = end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
                break;
            case 'f':
                p = end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
                break;
            case 'n':
                p = end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
                break;
            default:
                if (*p != '-' && !(*p >= '0' && *p <= '9'))
                    return 0;
                p = jc_number(p, end);
                break;
            }
            if (p == NULL)
                return 0;
            state = AFTER;
            continue;
        case AFTER:
            if (*p == ',') {
                p++;
                state = open[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if (*p != (open[depth - 1] == '{' ? '}' : ']'))
                return 0;
            goto close;
        }
    close:
        /* p is at the closer of open[depth - 1] */
        p++;
        depth--;
        if (depth == 0)
            return jc_ws(p, end) == end;
        nkeys = open[depth] == '{' ? key_base[depth] : nkeys;
        state = AFTER;
    }
}

int sc_json_utf8_valid(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    if (text == NULL && len > 0)
        return 0;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = jc_utf8(p, end);
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}

int sc_json_object_check(const char *text, size_t len, char *err,
                         size_t errlen)
{
    if (sc_json_object_fast(text, len))
        return 0;
    json_error_t jerr;
    json_t *v = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)
                     : NULL;
    bool parsed = v != NULL, obj = v && json_is_object(v);
    json_decref(v);
    if (obj)
        return 0;
    if (err && errlen) {
        if (parsed)
            snprintf(err, errlen, "top level is not an object");
        else if (!text)
            snprintf(err, errlen, "no text");
        else
            snprintf(err, errlen, "line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    }
    return -1;
}
