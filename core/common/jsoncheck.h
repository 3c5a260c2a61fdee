/*
 * jsoncheck.h - "is this text one JSON object?", the check every publish's
 * data goes through (internal header).
 *
 * Owns the verdict the plugin host gives a plugin's data and the signing
 * threads give a plugin child's: exactly what jansson's json_loadb() with
 * JSON_REJECT_DUPLICATES accepts as an object, and jansson's own words for
 * what it refuses. Most data is decided by a scan that allocates nothing
 * and says only "yes" or "cannot say"; jansson parses the rest. Never
 * builds a JSON value; never accepts what jansson would refuse
 * (tests/unit/test_jws.c, tests/fuzz/fuzz_codec.c compare the two).
 */
#ifndef SC_JSONCHECK_H
#define SC_JSONCHECK_H

#include <stddef.h>

/* 1: text[len] is one JSON object jansson accepts (UTF-8, no duplicate
 * keys, no "\u0000", integers within 64 bits, reals within a double);
 * 0: cannot say without jansson (it may be fine: escapes in keys,
 * surrogate pairs, nesting deeper than 32, more than 128 keys open at
 * once, integers of 19 digits or more, long reals, or not JSON at all). */
int sc_json_object_fast(const char *text, size_t len);

/* 0 if text[len] is one JSON object as jansson (JSON_REJECT_DUPLICATES)
 * accepts it; -1 if not, with why in err ("line L column C: <jansson's
 * text>", or "top level is not an object"). */
int sc_json_object_check(const char *text, size_t len, char *err,
                         size_t errlen);

/* 1 if text[len] is UTF-8 as jansson takes it for a string (no overlong
 * forms, no surrogates, nothing above U+10FFFF), else 0. */
int sc_json_utf8_valid(const char *text, size_t len);

#endif
