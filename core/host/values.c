/*
 * values.c - see values.h.
 */
#include "host/values.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(sc_setting_type_t t)
{
    switch (t) {
    case SC_SETTING_STRING: return "a string";
    case SC_SETTING_INT: return "an integer";
    case SC_SETTING_BOOL: return "a boolean";
    case SC_SETTING_FLOAT: return "a number";
    case SC_SETTING_PATH: return "a path";
    case SC_SETTING_GROUP: return "a group";
    }
    return "?";
}

int sc_host_value_parse(const sc_setting_def_t *def, const char *text,
                        const char *base_dir, sc_host_value_t *v, char **str,
                        char *why, size_t whylen)
{
    memset(v, 0, sizeof *v);
    *str = NULL;
    v->type = def->type;
    if (def->type == SC_SETTING_GROUP || (def->flags & SC_SETTING_F_LIST)) {
        snprintf(why, whylen, "lists and groups cannot be given as text");
        return -1;
    }
    char *end = NULL;
    switch (def->type) {
    case SC_SETTING_STRING:
        if (!(*str = strdup(text)))
            goto oom;
        v->s = *str;
        return 0;
    case SC_SETTING_PATH: {
        if (!*text) {
            snprintf(why, whylen, "empty path");
            return -1;
        }
        if (text[0] == '/' || !base_dir) {
            *str = strdup(text);
        } else {
            size_t n = strlen(base_dir) + strlen(text) + 2;
            if ((*str = malloc(n)))
                snprintf(*str, n, "%s/%s", base_dir, text);
        }
        if (!*str)
            goto oom;
        v->s = *str;
        return 0;
    }
    case SC_SETTING_INT: {
        const char *t = text;
        int neg = 0, base = 10;
        if (*t == '-' || *t == '+')
            neg = (*t++ == '-');
        if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
            base = 16;
            t += 2;
        }
        errno = 0;
        unsigned long long n = 0;
        bool digit = base == 16 ? isxdigit((unsigned char)*t)
                                : isdigit((unsigned char)*t);
        if (digit)
            n = strtoull(t, &end, base);
        if (!digit || errno || !end || *end ||
            n > (unsigned long long)INT64_MAX + (unsigned long long)neg) {
            snprintf(why, whylen, "\"%.64s\" is not an integer", text);
            return -1;
        }
        v->i = neg ? (int64_t)(0 - n) : (int64_t)n;
        return 0;
    }
    case SC_SETTING_BOOL:
        if (!strcmp(text, "true"))
            v->b = 1;
        else if (!strcmp(text, "false"))
            v->b = 0;
        else {
            snprintf(why, whylen, "\"%.64s\" is not a boolean (true or false)",
                     text);
            return -1;
        }
        return 0;
    case SC_SETTING_FLOAT: {
        errno = 0;
        double d = strtod(text, &end);
        if (!*text || isspace((unsigned char)*text) || errno || !end ||
            *end || !isfinite(d)) {
            snprintf(why, whylen, "\"%.64s\" is not a number", text);
            return -1;
        }
        v->f = d;
        return 0;
    }
    case SC_SETTING_GROUP:
        break;
    }
    snprintf(why, whylen, "%s is not supported here", type_name(def->type));
    return -1;
oom:
    snprintf(why, whylen, "out of memory");
    return -1;
}

int sc_host_value_check(const sc_setting_def_t *def, const sc_host_value_t *v,
                        const char *str, char *why, size_t whylen)
{
    if (def->type == SC_SETTING_INT || def->type == SC_SETTING_FLOAT) {
        double x = def->type == SC_SETTING_INT ? (double)v->i : v->f;
        if ((def->flags & SC_SETTING_F_MIN) && x < def->min) {
            snprintf(why, whylen, "%g is below the minimum %g", x, def->min);
            return -1;
        }
        if ((def->flags & SC_SETTING_F_MAX) && x > def->max) {
            snprintf(why, whylen, "%g is above the maximum %g", x, def->max);
            return -1;
        }
    }
    if ((def->type == SC_SETTING_STRING || def->type == SC_SETTING_PATH) &&
        def->allowed && str) {
        size_t n = 0;
        for (const char *const *a = def->allowed; *a; a++, n++)
            if (!strcmp(*a, str))
                return 0;
        if (n) {
            int k = snprintf(why, whylen, "\"%.64s\" is not one of", str);
            for (const char *const *a = def->allowed;
                 *a && k > 0 && (size_t)k < whylen; a++)
                k += snprintf(why + k, whylen - (size_t)k, " %s%s", *a,
                              a[1] ? "," : "");
            return -1;
        }
    }
    return 0;
}
