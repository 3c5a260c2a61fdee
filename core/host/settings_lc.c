/*
 * settings_lc.c - libconfig to settings tree (see settings_lc.h), and
 * sc_sv_parse() of settings.h.
 */
#include "host/settings_lc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fill(sc_sv_t *o, const config_setting_t *s)
{
    int t = config_setting_type(s);
    o->line = (int)config_setting_source_line(s);
    switch (t) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        o->kind = SC_SV_INT;
        o->i = (int64_t)config_setting_get_int64(s);
        return 0;
    case CONFIG_TYPE_FLOAT:
        o->kind = SC_SV_FLOAT;
        o->f = config_setting_get_float(s);
        return 0;
    case CONFIG_TYPE_BOOL:
        o->kind = SC_SV_BOOL;
        o->b = config_setting_get_bool(s) != 0;
        return 0;
    case CONFIG_TYPE_STRING: {
        const char *v = config_setting_get_string(s);
        o->kind = SC_SV_STRING;
        o->s = strdup(v ? v : "");
        return o->s ? 0 : -1;
    }
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY: {
        o->kind = t == CONFIG_TYPE_GROUP ? SC_SV_GROUP : SC_SV_LIST;
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s,
                                                                (unsigned)i);
            sc_sv_t *c = sc_sv_append(o, config_setting_name(e),
                                      SC_SV_STRING, 0);
            if (c == NULL || fill(c, e) != 0)
                return -1;
        }
        return 0;
    }
    default:
        return -1;
    }
}

sc_sv_t *sc_sv_from_config(const config_setting_t *g)
{
    if (g == NULL)
        return NULL;
    sc_sv_t *root = sc_sv_new_group((int)config_setting_source_line(g));
    if (root == NULL)
        return NULL;
    if (fill(root, g) != 0)
        sc_sv_destroy(&root);
    return root;
}

sc_sv_t *sc_sv_parse(const char *text, char *err, size_t errlen)
{
    config_t lc;
    config_init(&lc);
    if (config_read_string(&lc, text ? text : "") != CONFIG_TRUE) {
        snprintf(err, errlen, "line %d: %s", config_error_line(&lc),
                 config_error_text(&lc) ? config_error_text(&lc) : "?");
        config_destroy(&lc);
        return NULL;
    }
    sc_sv_t *t = sc_sv_from_config(config_root_setting(&lc));
    config_destroy(&lc);
    if (t == NULL)
        snprintf(err, errlen, "out of memory");
    return t;
}
