/*
 * settings.c - the plugin settings engine (see settings.h).
 *
 * Owns the rules of what a plugin setting may be and the words of every
 * refusal about one; the check-mode host table. Never loads a plugin,
 * never logs, never touches libconfig (settings_lc.c does).
 */
#include "host/settings.h"

#include "host/host.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/channel.h"

/* Deepest nesting of groups and lists a settings tree may have. */
#define MAX_DEPTH 8
/* Longest path of a setting in a message ("alert_rules[2].severity"). */
#define PATH_MAX_LEN 256

/* ------------------------------------------------------------------ */
/* value trees                                                          */

static void sv_clear(sc_sv_t *v)
{
    if (v == NULL)
        return;
    free(v->name);
    free(v->s);
    for (size_t i = 0; i < v->n_items; i++)
        sv_clear(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

sc_sv_t *sc_sv_new_group(int line)
{
    sc_sv_t *g = calloc(1, sizeof *g);
    if (g != NULL) {
        g->kind = SC_SV_GROUP;
        g->line = line;
    }
    return g;
}

sc_sv_t *sc_sv_append(sc_sv_t *parent, const char *name, sc_sv_kind_t kind,
                      int line)
{
    if (parent == NULL ||
        (parent->kind != SC_SV_GROUP && parent->kind != SC_SV_LIST))
        return NULL;
    sc_sv_t *items = realloc(parent->items,
                             (parent->n_items + 1) * sizeof *items);
    if (items == NULL)
        return NULL;
    parent->items = items;
    sc_sv_t *c = &items[parent->n_items];
    memset(c, 0, sizeof *c);
    if (parent->kind == SC_SV_GROUP && name != NULL &&
        (c->name = strdup(name)) == NULL)
        return NULL;
    c->kind = kind;
    c->line = line;
    parent->n_items++;
    return c;
}

static int sv_copy_into(sc_sv_t *dst, const sc_sv_t *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->s = NULL;
    dst->items = NULL;
    dst->n_items = 0;
    if ((src->name != NULL && (dst->name = strdup(src->name)) == NULL) ||
        (src->s != NULL && (dst->s = strdup(src->s)) == NULL))
        return -1;
    if (src->n_items > 0) {
        dst->items = calloc(src->n_items, sizeof *dst->items);
        if (dst->items == NULL)
            return -1;
        for (size_t i = 0; i < src->n_items; i++) {
            dst->n_items++;
            if (sv_copy_into(&dst->items[i], &src->items[i]) != 0)
                return -1;
        }
    }
    return 0;
}

sc_sv_t *sc_sv_copy(const sc_sv_t *v)
{
    if (v == NULL)
        return NULL;
    sc_sv_t *c = calloc(1, sizeof *c);
    if (c != NULL && sv_copy_into(c, v) != 0) {
        sv_clear(c);
        free(c);
        c = NULL;
    }
    return c;
}

void sc_sv_destroy(sc_sv_t **v_p)
{
    if (v_p == NULL || *v_p == NULL)
        return;
    sv_clear(*v_p);
    free(*v_p);
    *v_p = NULL;
}

static bool sv_equal(const sc_sv_t *a, const sc_sv_t *b)
{
    if (a->kind != b->kind || a->n_items != b->n_items)
        return false;
    if ((a->name == NULL) != (b->name == NULL) ||
        (a->name != NULL && strcmp(a->name, b->name) != 0))
        return false;
    switch (a->kind) {
    case SC_SV_STRING:
        if (strcmp(a->s ? a->s : "", b->s ? b->s : "") != 0)
            return false;
        break;
    case SC_SV_INT:   if (a->i != b->i) return false; break;
    case SC_SV_BOOL:  if (!a->b != !b->b) return false; break;
    case SC_SV_FLOAT: if (a->f != b->f) return false; break;
    default: break;
    }
    for (size_t i = 0; i < a->n_items; i++)
        if (!sv_equal(&a->items[i], &b->items[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* resolved settings                                                    */

struct sc_settings {
    char *file;
    char *plugin;
    int line;           /* the plugin's group */
    int settings_line;  /* its settings group */
    sc_sv_t *root;      /* GROUP */
};

static sc_settings_t *settings_new(const sc_settings_where_t *w)
{
    sc_settings_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->file = strdup(w && w->file ? w->file : "config");
    s->plugin = strdup(w && w->plugin ? w->plugin : "?");
    s->line = w ? w->line : 0;
    s->settings_line = w && w->settings_line > 0 ? w->settings_line : s->line;
    if (s->file == NULL || s->plugin == NULL) {
        free(s->file);
        free(s->plugin);
        free(s);
        return NULL;
    }
    return s;
}

void sc_settings_destroy(sc_settings_t **s_p)
{
    if (s_p == NULL || *s_p == NULL)
        return;
    sc_settings_t *s = *s_p;
    free(s->file);
    free(s->plugin);
    sc_sv_destroy(&s->root);
    free(s);
    *s_p = NULL;
}

sc_settings_t *sc_settings_copy(const sc_settings_t *s)
{
    if (s == NULL)
        return NULL;
    sc_settings_where_t w = {.file = s->file, .plugin = s->plugin,
                             .line = s->line,
                             .settings_line = s->settings_line};
    sc_settings_t *c = settings_new(&w);
    if (c != NULL && (c->root = sc_sv_copy(s->root)) == NULL)
        sc_settings_destroy(&c);
    return c;
}

sc_settings_t *sc_settings_from_root(const sc_settings_where_t *where,
                                     const sc_sv_t *root)
{
    sc_settings_t *c = settings_new(where);
    if (c == NULL)
        return NULL;
    c->root = root != NULL ? sc_sv_copy(root) : sc_sv_new_group(0);
    if (c->root == NULL)
        sc_settings_destroy(&c);
    return c;
}

bool sc_sv_equal(const sc_sv_t *a, const sc_sv_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return sv_equal(a, b);
}

bool sc_settings_equal(const sc_settings_t *a, const sc_settings_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return sv_equal(a->root, b->root);
}

const sc_sv_t *sc_settings_root(const sc_settings_t *s)
{
    return s != NULL ? s->root : NULL;
}

/* ------------------------------------------------------------------ */
/* descriptor tables                                                    */

size_t sc_settings_def_stride(const sc_plugin_t *desc)
{
    if (desc == NULL || desc->abi_version < 2 ||
        desc->size < offsetof(sc_plugin_t, setting_def_size) +
                         sizeof desc->setting_def_size ||
        desc->setting_def_size == 0)
        return SC_SETTINGS_ABI1_STRIDE;
    return desc->setting_def_size;
}

sc_settings_check_fn sc_settings_check_of(const sc_plugin_t *desc)
{
    if (desc == NULL || desc->abi_version < 2 ||
        desc->size < offsetof(sc_plugin_t, check) + sizeof desc->check)
        return NULL;
    return desc->check;
}

/* Entry i of a table with the given stride, as a full sc_setting_def_t
 * (members the plugin's build did not have are zero). */
static sc_setting_def_t def_at(const sc_setting_def_t *defs, size_t stride,
                               size_t i)
{
    sc_setting_def_t d;
    memset(&d, 0, sizeof d);
    const unsigned char *p = (const unsigned char *)defs + i * stride;
    memcpy(&d, p, stride < sizeof d ? stride : sizeof d);
    return d;
}

/* ------------------------------------------------------------------ */
/* validation                                                           */

typedef struct vctx {
    const sc_settings_where_t *w;
    const char *file;
    const char *plugin;
    const char *group;  /* the broker's own group, or NULL */
    const char *author; /* whose bug a bad table is */
    size_t stride;
    sc_settings_report_fn report;
    void *arg;
    int problems;
    bool oom;
} vctx_t;

static void vproblem(vctx_t *V, int line, const char *path, const char *fmt,
                     va_list ap)
{
    char text[768], msg[1100];
    vsnprintf(text, sizeof text, fmt, ap);
    if (V->group && path != NULL && *path)
        snprintf(msg, sizeof msg, "setting '%s.%s': %s", V->group, path, text);
    else if (V->group)
        snprintf(msg, sizeof msg, "group '%s': %s", V->group, text);
    else if (path != NULL && *path)
        snprintf(msg, sizeof msg, "plugin '%s': setting '%s': %s", V->plugin,
                 path, text);
    else
        snprintf(msg, sizeof msg, "plugin '%s': %s", V->plugin, text);
    V->problems++;
    if (V->report != NULL)
        V->report(V->arg, V->file, line, msg);
}

static void problem(vctx_t *V, int line, const char *path, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void problem(vctx_t *V, int line, const char *path, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(V, line, path, fmt, ap);
    va_end(ap);
}

static const char *type_phrase(sc_setting_type_t t)
{
    switch (t) {
    case SC_SETTING_INT:   return "an integer";
    case SC_SETTING_BOOL:  return "a boolean (true or false)";
    case SC_SETTING_FLOAT: return "a number";
    case SC_SETTING_PATH:  return "a string (a path)";
    case SC_SETTING_GROUP: return "a group { ... }";
    case SC_SETTING_STRING:
    default:               return "a string";
    }
}

static const char *kind_phrase(sc_sv_kind_t k)
{
    switch (k) {
    case SC_SV_STRING: return "a string";
    case SC_SV_INT:    return "an integer";
    case SC_SV_BOOL:   return "a boolean";
    case SC_SV_FLOAT:  return "a number";
    case SC_SV_GROUP:  return "a group";
    case SC_SV_LIST:   return "a list";
    }
    return "a value";
}

/* Shortest decimal that reads back as v ("10", "2.5"). */
static void fmt_num(double v, char *buf, size_t len)
{
    double a = fabs(v);
    if (a == 0 || (a >= 1e-6 && a < 1e15)) {
        for (int d = 0; d <= 17; d++) {
            snprintf(buf, len, "%.*f", d, v);
            if (strtod(buf, NULL) == v)
                return;
        }
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* "base.name" (or "name") into out; cut short if too long. */
static void path_join(char *out, size_t len, const char *base,
                      const char *name)
{
    int n = base == NULL || !*base ? snprintf(out, len, "%s", name)
                                   : snprintf(out, len, "%s.%s", base, name);
    if (n < 0 || (size_t)n >= len)
        out[len - 1] = '\0';
}

/* "path[i]" into out; cut short if too long. */
static void path_index(char *out, size_t len, const char *path, size_t i)
{
    int n = snprintf(out, len, "%s[%zu]", path, i);
    if (n < 0 || (size_t)n >= len)
        out[len - 1] = '\0';
}

static bool kind_fits(sc_setting_type_t t, sc_sv_kind_t k)
{
    switch (t) {
    case SC_SETTING_STRING:
    case SC_SETTING_PATH:  return k == SC_SV_STRING;
    case SC_SETTING_INT:   return k == SC_SV_INT;
    case SC_SETTING_BOOL:  return k == SC_SV_BOOL;
    case SC_SETTING_FLOAT: return k == SC_SV_FLOAT || k == SC_SV_INT;
    case SC_SETTING_GROUP: return k == SC_SV_GROUP;
    }
    return false;
}

static char *join_allowed(const char *const *allowed)
{
    size_t len = 1;
    for (size_t i = 0; allowed[i] != NULL; i++)
        len += strlen(allowed[i]) + 4;
    char *s = malloc(len);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, "\"");
        strcat(s, allowed[i]);
        strcat(s, "\"");
    }
    return s;
}

/* "min..max" / ">= min" / "<= max" into buf. */
static void range_text(const sc_setting_def_t *d, char *buf, size_t len)
{
    char a[40], b[40];
    fmt_num(d->min, a, sizeof a);
    fmt_num(d->max, b, sizeof b);
    if ((d->flags & SC_SETTING_F_MIN) && (d->flags & SC_SETTING_F_MAX))
        snprintf(buf, len, "%s..%s", a, b);
    else if (d->flags & SC_SETTING_F_MIN)
        snprintf(buf, len, ">= %s", a);
    else
        snprintf(buf, len, "<= %s", b);
}

/* Check a scalar value `v` (already of a fitting kind) against the range
 * and allowed set of `d`. `what` is "" or "default value ". Returns 0 or
 * -1 after reporting. */
static int check_scalar(vctx_t *V, const sc_setting_def_t *d,
                        const sc_sv_t *v, const char *path, int line,
                        const char *what)
{
    uint32_t fl = d->flags;
    bool is_list = (fl & SC_SETTING_F_LIST) != 0;
    if (!is_list && (fl & (SC_SETTING_F_MIN | SC_SETTING_F_MAX)) &&
        (d->type == SC_SETTING_INT || d->type == SC_SETTING_FLOAT)) {
        bool low, high;
        char shown[48], range[96];
        if (v->kind == SC_SV_INT) {
            /* exact up to 2^53: compare as long double-free integers when
             * the bound is integral */
            low = (fl & SC_SETTING_F_MIN) && (double)v->i < d->min;
            high = (fl & SC_SETTING_F_MAX) && (double)v->i > d->max;
            snprintf(shown, sizeof shown, "%lld", (long long)v->i);
        } else {
            low = (fl & SC_SETTING_F_MIN) && !(v->f >= d->min);
            high = (fl & SC_SETTING_F_MAX) && !(v->f <= d->max);
            fmt_num(v->f, shown, sizeof shown);
        }
        if (low || high) {
            range_text(d, range, sizeof range);
            problem(V, line, path, "%s%s is out of range (%s)%s%s%s", what,
                    shown, range, *what ? " (a bug in " : "",
                    *what ? V->author : "", *what ? ")" : "");
            return -1;
        }
    }
    if ((d->type == SC_SETTING_STRING || d->type == SC_SETTING_PATH) &&
        d->allowed != NULL) {
        bool ok = false;
        for (size_t i = 0; d->allowed[i] != NULL && !ok; i++)
            ok = strcmp(d->allowed[i], v->s ? v->s : "") == 0;
        if (!ok) {
            char *list = join_allowed(d->allowed);
            problem(V, line, path, "%s\"%s\" is not one of %s%s%s%s", what,
                    v->s ? v->s : "", list ? list : "the allowed values",
                    *what ? " (a bug in " : "", *what ? V->author : "",
                    *what ? ")" : "");
            free(list);
            return -1;
        }
    }
    return 0;
}

char *sc_settings_resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/' || dir == NULL || p[0] == '\0')
        return strdup(p);
    size_t dl = strlen(dir);
    char *out = malloc(dl + strlen(p) + 2);
    if (out == NULL)
        return NULL;
    memcpy(out, dir, dl + 1);
    for (;;) {
        if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
            p += 1;
        } else if (p[0] == '.' && p[1] == '.' &&
                   (p[2] == '/' || p[2] == '\0')) {
            char *slash = strrchr(out, '/');
            if (slash == out)
                out[1] = '\0';
            else if (slash != NULL)
                *slash = '\0';
            p += 2;
        } else {
            break;
        }
        while (*p == '/')
            p++;
    }
    size_t ol = strlen(out);
    if (*p != '\0') {
        if (ol == 0 || out[ol - 1] != '/')
            out[ol++] = '/';
        strcpy(out + ol, p);
    }
    return out;
}

/* Parse a table default into `out` (kind and value). 0 or -1. Integers are
 * decimal: "010" is 10. */
static int parse_default(const sc_setting_def_t *d, sc_sv_t *out)
{
    const char *t = d->default_value;
    char *end = NULL;
    errno = 0;
    switch (d->type) {
    case SC_SETTING_INT: {
        long long v = strtoll(t, &end, 10);
        if (end == t || *end != '\0' || errno != 0)
            return -1;
        out->kind = SC_SV_INT;
        out->i = v;
        return 0;
    }
    case SC_SETTING_FLOAT: {
        double v = strtod(t, &end);
        if (end == t || *end != '\0' || errno != 0 || !isfinite(v))
            return -1;
        out->kind = SC_SV_FLOAT;
        out->f = v;
        return 0;
    }
    case SC_SETTING_BOOL:
        out->kind = SC_SV_BOOL;
        if (!strcasecmp(t, "true") || !strcasecmp(t, "yes") ||
            !strcasecmp(t, "on") || !strcmp(t, "1"))
            out->b = 1;
        else if (!strcasecmp(t, "false") || !strcasecmp(t, "no") ||
                 !strcasecmp(t, "off") || !strcmp(t, "0"))
            out->b = 0;
        else
            return -1;
        return 0;
    case SC_SETTING_STRING:
    case SC_SETTING_PATH:
        out->kind = SC_SV_STRING;
        out->s = strdup(t);
        return out->s != NULL ? 0 : -1;
    case SC_SETTING_GROUP:
        return -1;
    }
    return -1;
}

static int validate_group(vctx_t *V, const sc_setting_def_t *defs,
                          const sc_sv_t *g, const char *base, int line,
                          sc_sv_t *out, int depth);

/* Copy scalar `v` into `o` (kind, value, line), converting for FLOAT and
 * resolving PATH. */
static void put_scalar(vctx_t *V, const sc_setting_def_t *d, const sc_sv_t *v,
                       sc_sv_t *o)
{
    o->kind = v->kind;
    o->line = v->line;
    o->i = v->i;
    o->b = v->b;
    o->f = v->f;
    if (d->type == SC_SETTING_FLOAT && v->kind == SC_SV_INT) {
        o->kind = SC_SV_FLOAT;
        o->f = (double)v->i;
    }
    if (v->kind == SC_SV_STRING) {
        o->s = d->type == SC_SETTING_PATH
                   ? sc_settings_resolve_path(V->w->dir, v->s)
                   : strdup(v->s ? v->s : "");
        if (o->s == NULL)
            V->oom = true;
    }
}

/* One element (or the whole value of a non-list setting) against `d`
 * taken as a non-list. */
static int validate_one(vctx_t *V, const sc_setting_def_t *d,
                        const sc_sv_t *v, const char *path, sc_sv_t *o,
                        int depth)
{
    if (!kind_fits(d->type, v->kind)) {
        problem(V, v->line, path, "must be %s, not %s", type_phrase(d->type),
                kind_phrase(v->kind));
        return -1;
    }
    if (d->type == SC_SETTING_GROUP) {
        o->kind = SC_SV_GROUP;
        o->line = v->line;
        return validate_group(V, d->fields, v, path, v->line, o, depth + 1);
    }
    /* "" is never a path, nor the value of a required string (unless the
     * table allows it by name) */
    if (v->kind == SC_SV_STRING && (v->s == NULL || v->s[0] == '\0') &&
        d->allowed == NULL) {
        if (d->type == SC_SETTING_PATH) {
            problem(V, v->line, path, "is an empty path (write \".\" for "
                    "the config file's directory)");
            return -1;
        }
        if (d->required) {
            if (d->description != NULL && *d->description)
                problem(V, v->line, path, "required but empty (%s)",
                        d->description);
            else
                problem(V, v->line, path, "required but empty");
            return -1;
        }
    }
    if (check_scalar(V, d, v, path, v->line, "") != 0)
        return -1;
    put_scalar(V, d, v, o);
    return 0;
}

static int validate_value(vctx_t *V, const sc_setting_def_t *d,
                          const sc_sv_t *v, const char *path, sc_sv_t *o,
                          int depth)
{
    if (depth > MAX_DEPTH) {
        problem(V, v->line, path, "nested too deep (at most %d levels)",
                MAX_DEPTH);
        return -1;
    }
    if (!(d->flags & SC_SETTING_F_LIST))
        return validate_one(V, d, v, path, o, depth);

    const char *elem = d->type == SC_SETTING_GROUP ? "groups { ... }"
                       : d->type == SC_SETTING_INT ? "integers"
                       : d->type == SC_SETTING_BOOL ? "booleans"
                       : d->type == SC_SETTING_FLOAT ? "numbers"
                                                     : "strings";
    if (v->kind != SC_SV_LIST) {
        problem(V, v->line, path, "must be a list of %s, %s, not %s", elem,
                d->type == SC_SETTING_GROUP ? "( { ... }, { ... } )"
                                            : "[ a, b ]",
                kind_phrase(v->kind));
        return -1;
    }
    if (d->flags & (SC_SETTING_F_MIN | SC_SETTING_F_MAX)) {
        double n = (double)v->n_items;
        if (((d->flags & SC_SETTING_F_MIN) && n < d->min) ||
            ((d->flags & SC_SETTING_F_MAX) && n > d->max)) {
            char range[96];
            range_text(d, range, sizeof range);
            problem(V, v->line, path, "has %zu elements, must have %s",
                    v->n_items, range);
            return -1;
        }
    }
    o->kind = SC_SV_LIST;
    o->line = v->line;
    int bad = 0;
    sc_setting_def_t one = *d;
    one.flags &= ~(SC_SETTING_F_LIST | SC_SETTING_F_MIN | SC_SETTING_F_MAX);
    for (size_t i = 0; i < v->n_items; i++) {
        char sub[PATH_MAX_LEN];
        path_index(sub, sizeof sub, path, i);
        sc_sv_t *e = sc_sv_append(o, NULL, SC_SV_STRING, 0);
        if (e == NULL) {
            V->oom = true;
            return -1;
        }
        if (validate_one(V, &one, &v->items[i], sub, e, depth + 1) != 0)
            bad++;
    }
    return bad ? -1 : 0;
}

/* A table's sanity: known types, groups with fields. Reported once at the
 * plugin's line. */
static bool def_sane(vctx_t *V, const sc_setting_def_t *d, const char *path)
{
    if (d->type < SC_SETTING_STRING || d->type > SC_SETTING_GROUP) {
        problem(V, V->w ? V->w->line : 0, path,
                "declared with unknown type %d (a bug in %s)",
                (int)d->type, V->author);
        return false;
    }
    if (d->type == SC_SETTING_GROUP && d->fields == NULL) {
        problem(V, V->w ? V->w->line : 0, path,
                "declared as a group without fields (a bug in %s)",
                V->author);
        return false;
    }
    return true;
}

static bool any_required(const sc_setting_def_t *defs, size_t stride)
{
    for (size_t j = 0; defs != NULL; j++) {
        sc_setting_def_t d = def_at(defs, stride, j);
        if (d.name == NULL)
            break;
        if (d.required)
            return true;
    }
    return false;
}

static int validate_group(vctx_t *V, const sc_setting_def_t *defs,
                          const sc_sv_t *g, const char *base, int line,
                          sc_sv_t *out, int depth)
{
    size_t nt = 0;
    while (defs != NULL && def_at(defs, V->stride, nt).name != NULL)
        nt++;
    int bad = 0;

    /* every member written must be declared */
    for (size_t i = 0; g != NULL && i < g->n_items; i++) {
        const sc_sv_t *m = &g->items[i];
        bool found = false;
        for (size_t j = 0; j < nt && !found; j++)
            found = strcmp(def_at(defs, V->stride, j).name,
                           m->name ? m->name : "") == 0;
        if (found)
            continue;
        char path[PATH_MAX_LEN];
        path_join(path, sizeof path, base, m->name ? m->name : "?");
        if (nt == 0) {
            problem(V, m->line, path, "unknown setting (%s takes no "
                    "settings)", base && *base ? "this group" : "the plugin");
        } else {
            size_t len = 1;
            for (size_t j = 0; j < nt; j++)
                len += strlen(def_at(defs, V->stride, j).name) + 2;
            char *known = malloc(len);
            if (known != NULL) {
                known[0] = '\0';
                for (size_t j = 0; j < nt; j++) {
                    if (j)
                        strcat(known, ", ");
                    strcat(known, def_at(defs, V->stride, j).name);
                }
            }
            problem(V, m->line, path, "unknown setting (known: %s)",
                    known ? known : "?");
            free(known);
        }
        bad++;
    }

    /* one resolved member per declared setting that has a value */
    for (size_t j = 0; j < nt; j++) {
        sc_setting_def_t d = def_at(defs, V->stride, j);
        char path[PATH_MAX_LEN];
        path_join(path, sizeof path, base, d.name);
        if (!def_sane(V, &d, path)) {
            bad++;
            continue;
        }
        const sc_sv_t *v = NULL;
        for (size_t i = 0; g != NULL && i < g->n_items && v == NULL; i++)
            if (g->items[i].name && strcmp(g->items[i].name, d.name) == 0)
                v = &g->items[i];
        if (v != NULL) {
            sc_sv_t *o = sc_sv_append(out, d.name, SC_SV_STRING, 0);
            if (o == NULL) {
                V->oom = true;
                return -1;
            }
            if (validate_value(V, &d, v, path, o, depth) != 0)
                bad++;
            continue;
        }
        if (d.required) {
            if (d.description != NULL && *d.description)
                problem(V, line, path, "required but not set (%s)",
                        d.description);
            else
                problem(V, line, path, "required but not set");
            bad++;
            continue;
        }
        if (d.type == SC_SETTING_GROUP && !(d.flags & SC_SETTING_F_LIST)) {
            /* an optional group not written: its fields' defaults, when
             * none of them is required */
            if (any_required(d.fields, V->stride))
                continue;
            sc_sv_t *o = sc_sv_append(out, d.name, SC_SV_GROUP, 0);
            if (o == NULL) {
                V->oom = true;
                return -1;
            }
            if (validate_group(V, d.fields, NULL, path, line, o, depth + 1))
                bad++;
            continue;
        }
        if (d.default_value == NULL || (d.flags & SC_SETTING_F_LIST))
            continue; /* optional, no default: not there */
        sc_sv_t tmp;
        memset(&tmp, 0, sizeof tmp);
        if (parse_default(&d, &tmp) != 0) {
            problem(V, V->w->line, path, "default value '%s' is not %s (a "
                    "bug in the plugin)", d.default_value,
                    type_phrase(d.type));
            sv_clear(&tmp);
            bad++;
            continue;
        }
        if (check_scalar(V, &d, &tmp, path, V->w->line, "default value ")) {
            sv_clear(&tmp);
            bad++;
            continue;
        }
        sc_sv_t *o = sc_sv_append(out, d.name, tmp.kind, 0);
        if (o == NULL) {
            sv_clear(&tmp);
            V->oom = true;
            return -1;
        }
        put_scalar(V, &d, &tmp, o);
        o->line = 0;
        sv_clear(&tmp);
    }
    return bad ? -1 : 0;
}

int sc_settings_validate(const sc_settings_where_t *where,
                         const sc_sv_t *written, const sc_setting_def_t *defs,
                         size_t stride, sc_settings_report_fn report,
                         void *arg, sc_settings_t **out)
{
    sc_settings_where_t none = {0};
    if (where == NULL)
        where = &none;
    vctx_t V = {
        .w = where,
        .file = where->file ? where->file : "config",
        .plugin = where->plugin ? where->plugin : "?",
        .group = where->group,
        .author = where->group ? "sectorcastd" : "the plugin",
        .stride = stride,
        .report = report,
        .arg = arg,
    };
    if (out != NULL)
        *out = NULL;
    int sline = where->settings_line > 0 ? where->settings_line : where->line;
    if (defs != NULL && (stride < SC_SETTINGS_ABI1_STRIDE ||
                         stride % sizeof(void *) != 0)) {
        problem(&V, where->line, NULL, "settings table entries of %zu bytes "
                "(setting_def_size) cannot be read (a bug in %s)",
                stride, V.author);
        return V.problems;
    }
    if (written != NULL && written->kind != SC_SV_GROUP) {
        problem(&V, written->line, NULL, "settings must be a group { ... }");
        return V.problems;
    }
    sc_settings_t *s = settings_new(where);
    if (s == NULL || (s->root = sc_sv_new_group(sline)) == NULL) {
        sc_settings_destroy(&s);
        problem(&V, where->line, NULL, "out of memory");
        return V.problems;
    }
    validate_group(&V, defs, written, "", sline, s->root, 0);
    if (V.oom)
        problem(&V, where->line, NULL, "out of memory");
    if (V.problems == 0 && out != NULL)
        *out = s;
    else
        sc_settings_destroy(&s);
    return V.problems;
}

int sc_settings_validate_desc(const sc_settings_where_t *where,
                              const sc_sv_t *written,
                              const sc_plugin_t *desc,
                              sc_settings_report_fn report, void *arg,
                              sc_settings_t **out)
{
    return sc_settings_validate(where, written,
                                desc ? desc->settings : NULL,
                                sc_settings_def_stride(desc), report, arg,
                                out);
}

/* ------------------------------------------------------------------ */
/* paths and getters                                                    */

/* Walk `path` from the root. Returns the node, or NULL with *rc set
 * (SC_ERR_ARG malformed, SC_ERR_NO_SETTING absent). *deepest gets the
 * deepest node reached (for lines). */
static const sc_sv_t *walk(const sc_sv_t *root, const char *path, int *rc,
                           const sc_sv_t **deepest)
{
    const sc_sv_t *cur = root;
    const char *p = path;
    if (deepest)
        *deepest = root;
    if (root == NULL || path == NULL || *path == '\0') {
        *rc = path == NULL || *path == '\0' ? SC_ERR_ARG : SC_ERR_NO_SETTING;
        return NULL;
    }
    bool absent = false;
    for (;;) {
        /* a name */
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (n == 0) {
            *rc = SC_ERR_ARG;
            return NULL;
        }
        const sc_sv_t *next = NULL;
        if (!absent && cur->kind == SC_SV_GROUP)
            for (size_t i = 0; i < cur->n_items && next == NULL; i++)
                if (cur->items[i].name && strlen(cur->items[i].name) == n &&
                    memcmp(cur->items[i].name, p, n) == 0)
                    next = &cur->items[i];
        if (next == NULL)
            absent = true;
        else {
            cur = next;
            if (deepest)
                *deepest = cur;
        }
        p += n;
        /* indexes */
        while (*p == '[') {
            p++;
            size_t d = strspn(p, "0123456789");
            if (d == 0 || d > 9 || p[d] != ']') {
                *rc = SC_ERR_ARG;
                return NULL;
            }
            size_t idx = (size_t)strtoul(p, NULL, 10);
            p += d + 1;
            if (absent || cur->kind != SC_SV_LIST || idx >= cur->n_items) {
                absent = true;
                continue;
            }
            cur = &cur->items[idx];
            if (deepest)
                *deepest = cur;
        }
        if (*p == '\0')
            break;
        if (*p != '.') {
            *rc = SC_ERR_ARG;
            return NULL;
        }
        p++;
    }
    if (absent) {
        *rc = SC_ERR_NO_SETTING;
        return NULL;
    }
    *rc = SC_OK;
    return cur;
}

static const sc_sv_t *get(const sc_settings_t *s, const char *path,
                          const void *out, int *rc)
{
    if (s == NULL || path == NULL || out == NULL) {
        *rc = SC_ERR_ARG;
        return NULL;
    }
    return walk(s->root, path, rc, NULL);
}

const sc_sv_t *sc_settings_get(const sc_settings_t *s, const char *path,
                               int *rc)
{
    int dummy;
    if (rc == NULL)
        rc = &dummy;
    if (s == NULL || path == NULL) {
        *rc = SC_ERR_ARG;
        return NULL;
    }
    return walk(s->root, path, rc, NULL);
}

int sc_settings_string(const sc_settings_t *s, const char *path,
                       const char **out)
{
    int rc;
    const sc_sv_t *v = get(s, path, out, &rc);
    if (v == NULL)
        return rc;
    if (v->kind != SC_SV_STRING)
        return SC_ERR_ARG;
    *out = v->s;
    return SC_OK;
}

int sc_settings_int(const sc_settings_t *s, const char *path, int64_t *out)
{
    int rc;
    const sc_sv_t *v = get(s, path, out, &rc);
    if (v == NULL)
        return rc;
    if (v->kind != SC_SV_INT)
        return SC_ERR_ARG;
    *out = v->i;
    return SC_OK;
}

int sc_settings_bool(const sc_settings_t *s, const char *path, int *out)
{
    int rc;
    const sc_sv_t *v = get(s, path, out, &rc);
    if (v == NULL)
        return rc;
    if (v->kind != SC_SV_BOOL)
        return SC_ERR_ARG;
    *out = v->b;
    return SC_OK;
}

int sc_settings_float(const sc_settings_t *s, const char *path, double *out)
{
    int rc;
    const sc_sv_t *v = get(s, path, out, &rc);
    if (v == NULL)
        return rc;
    if (v->kind == SC_SV_INT)
        *out = (double)v->i;
    else if (v->kind == SC_SV_FLOAT)
        *out = v->f;
    else
        return SC_ERR_ARG;
    return SC_OK;
}

int sc_settings_count(const sc_settings_t *s, const char *path, size_t *out)
{
    int rc;
    const sc_sv_t *v = get(s, path, out, &rc);
    if (v == NULL)
        return rc;
    if (v->kind != SC_SV_LIST)
        return SC_ERR_NO_SETTING;
    *out = v->n_items;
    return SC_OK;
}

int sc_settings_line(const sc_settings_t *s, const char *path)
{
    if (s == NULL)
        return 0;
    const sc_sv_t *deepest = NULL;
    int rc;
    walk(s->root, path, &rc, &deepest);
    if (deepest != NULL && deepest != s->root && deepest->line > 0)
        return deepest->line;
    /* a default inside a written parent: find the nearest written node
     * by walking again one component shorter at a time */
    if (path != NULL && deepest != NULL && deepest != s->root) {
        char buf[PATH_MAX_LEN];
        snprintf(buf, sizeof buf, "%s", path);
        for (;;) {
            char *cut = strrchr(buf, '.');
            char *br = strrchr(buf, '[');
            if (br != NULL && (cut == NULL || br > cut))
                cut = br;
            if (cut == NULL)
                break;
            *cut = '\0';
            const sc_sv_t *v = walk(s->root, buf, &rc, NULL);
            if (v != NULL && v->line > 0)
                return v->line;
        }
    }
    return s->settings_line;
}

void sc_settings_problem(const sc_settings_t *s, const char *path,
                         const char *text, sc_settings_report_fn report,
                         void *arg)
{
    if (s == NULL || report == NULL)
        return;
    char msg[1100];
    snprintf(msg, sizeof msg, "plugin '%s': setting '%s': %s", s->plugin,
             path && *path ? path : "?", text ? text : "");
    report(arg, s->file, sc_settings_line(s, path), msg);
}

/* ------------------------------------------------------------------ */
/* check mode                                                           */

/* The check-mode host: the plugin sees it as an opaque sc_host_t *. */
typedef struct chk {
    const sc_settings_t *s;
    const sc_settings_check_env_t *env;
    sc_settings_report_fn report;
    void *arg;
    int problems;
} chk_t;

#define CHK(h) ((chk_t *)(void *)(h))

static int c_publish(sc_host_t *h, const char *c, const char *k,
                     const char *key, const char *d)
{
    (void)h; (void)c; (void)k; (void)key; (void)d;
    return SC_ERR_UNSUPPORTED;
}

static void c_log(sc_host_t *h, sc_log_level_t level, const char *fmt, ...)
{
    chk_t *c = CHK(h);
    if (c == NULL || c->env == NULL || c->env->log == NULL || fmt == NULL)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->env->log(c->env->log_arg, level, line);
}

static int c_sstring(sc_host_t *h, const char *n, const char **o)
{
    return h ? sc_settings_string(CHK(h)->s, n, o) : SC_ERR_ARG;
}
static int c_sint(sc_host_t *h, const char *n, int64_t *o)
{
    return h ? sc_settings_int(CHK(h)->s, n, o) : SC_ERR_ARG;
}
static int c_sbool(sc_host_t *h, const char *n, int *o)
{
    return h ? sc_settings_bool(CHK(h)->s, n, o) : SC_ERR_ARG;
}
static int c_sfloat(sc_host_t *h, const char *n, double *o)
{
    return h ? sc_settings_float(CHK(h)->s, n, o) : SC_ERR_ARG;
}
static int c_scount(sc_host_t *h, const char *n, size_t *o)
{
    return h ? sc_settings_count(CHK(h)->s, n, o) : SC_ERR_ARG;
}

static int c_timer_add(sc_host_t *h, uint32_t ms, int r, sc_timer_fn fn,
                       void *a)
{
    (void)h; (void)ms; (void)r; (void)fn; (void)a;
    return SC_ERR_UNSUPPORTED;
}
static int c_timer_cancel(sc_host_t *h, int id)
{
    (void)h; (void)id;
    return SC_ERR_UNSUPPORTED;
}
static int c_fd_watch(sc_host_t *h, int fd, unsigned ev, sc_fd_fn fn, void *a)
{
    (void)h; (void)fd; (void)ev; (void)fn; (void)a;
    return SC_ERR_UNSUPPORTED;
}
static int c_fd_unwatch(sc_host_t *h, int fd)
{
    (void)h; (void)fd;
    return SC_ERR_UNSUPPORTED;
}
static const char *c_instance(sc_host_t *h)
{
    chk_t *c = CHK(h);
    return c && c->env && c->env->instance ? c->env->instance : "";
}
static size_t c_channel_count(sc_host_t *h)
{
    chk_t *c = CHK(h);
    return c && c->env ? c->env->n_channels : 0;
}
static const char *c_channel_at(sc_host_t *h, size_t i)
{
    chk_t *c = CHK(h);
    return c && c->env && i < c->env->n_channels ? c->env->channels[i]
                                                 : NULL;
}
static const char *c_strerror(int code)
{
    return sc_host_strerror(code);
}
static void c_request_stop(sc_host_t *h, const char *why)
{
    (void)h; (void)why;
}
static int c_state_get(sc_host_t *h, const char *k, char **v)
{
    (void)h; (void)k;
    if (v)
        *v = NULL;
    return SC_ERR_UNSUPPORTED;
}
static int c_state_put(sc_host_t *h, const char *k, const char *v)
{
    (void)h; (void)k; (void)v;
    return SC_ERR_UNSUPPORTED;
}
static void c_state_free(sc_host_t *h, char *v)
{
    (void)h;
    free(v);
}
static int c_state_foreach(sc_host_t *h, const char *p,
                           int (*fn)(void *, const char *, const char *),
                           void *a)
{
    (void)h; (void)p; (void)fn; (void)a;
    return SC_ERR_UNSUPPORTED;
}
static int c_is_granted(sc_host_t *h, const char *channel)
{
    chk_t *c = CHK(h);
    char topic[SC_CHANNEL_MAX + 2];
    if (c == NULL || c->env == NULL || channel == NULL)
        return 0;
    int tl = sc_channel_topic(channel, topic, sizeof topic);
    if (tl <= 0)
        return 0;
    for (size_t i = 0; i < c->env->n_channels; i++)
        if (c->env->channels[i] &&
            sc_subtree_covers(c->env->channels[i], topic, (size_t)tl))
            return 1;
    return 0;
}
static void c_setting_problem(sc_host_t *h, const char *path,
                              const char *fmt, ...)
{
    chk_t *c = CHK(h);
    if (c == NULL)
        return;
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt ? fmt : "", ap);
    va_end(ap);
    c->problems++;
    sc_settings_problem(c->s, path, text, c->report, c->arg);
}
static int c_capability_register(sc_host_t *h, uint32_t cap, const void *d)
{
    (void)h; (void)cap; (void)d;
    return SC_ERR_UNSUPPORTED;
}
static int c_sink_ack(sc_host_t *h, const char *ch, uint64_t seq)
{
    (void)h; (void)ch; (void)seq;
    return SC_ERR_UNSUPPORTED;
}

int sc_settings_run_check(sc_settings_check_fn check, const sc_settings_t *s,
                          const sc_settings_check_env_t *env,
                          sc_settings_report_fn report, void *arg)
{
    if (check == NULL || s == NULL)
        return 0;
    sc_settings_check_env_t none = {0};
    chk_t c = {s, env ? env : &none, report, arg, 0};
    sc_host_api_t api = {
        .abi_version = SC_PLUGIN_ABI_VERSION,
        .size = sizeof(sc_host_api_t),
        .publish = c_publish,
        .log = c_log,
        .setting_string = c_sstring,
        .setting_int = c_sint,
        .setting_bool = c_sbool,
        .setting_float = c_sfloat,
        .timer_add = c_timer_add,
        .timer_cancel = c_timer_cancel,
        .fd_watch = c_fd_watch,
        .fd_unwatch = c_fd_unwatch,
        .instance_name = c_instance,
        .channel_count = c_channel_count,
        .channel_at = c_channel_at,
        .strerror = env && env->strerror ? env->strerror : c_strerror,
        .request_stop = c_request_stop,
        .state_get = c_state_get,
        .state_put = c_state_put,
        .state_free = c_state_free,
        .state_foreach = c_state_foreach,
        .is_granted = c_is_granted,
        .setting_count = c_scount,
        .setting_problem = c_setting_problem,
        .capability_register = c_capability_register,
        .sink_ack = c_sink_ack,
    };
    int rc = check((sc_host_t *)(void *)&c, &api);
    if (rc != SC_OK && c.problems == 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "plugin '%s': check() refused the settings "
                 "(%s)", s->plugin, sc_host_strerror(rc));
        if (report)
            report(arg, s->file, s->settings_line, msg);
        return 1;
    }
    return c.problems; /* reported problems count even if it said SC_OK */
}

/* ------------------------------------------------------------------ */
/* describe                                                             */

static const char *type_word(sc_setting_type_t t)
{
    switch (t) {
    case SC_SETTING_STRING: return "string";
    case SC_SETTING_INT:    return "integer";
    case SC_SETTING_BOOL:   return "bool";
    case SC_SETTING_FLOAT:  return "float";
    case SC_SETTING_PATH:   return "path";
    case SC_SETTING_GROUP:  return "group";
    }
    return "?";
}

static void describe_table(FILE *out, const sc_setting_def_t *defs,
                           size_t stride, int indent, int depth)
{
    for (size_t j = 0; defs != NULL && depth <= MAX_DEPTH; j++) {
        sc_setting_def_t d = def_at(defs, stride, j);
        if (d.name == NULL)
            break;
        char shape[64], extra[512] = "";
        size_t used = 0;
        bool list = (d.flags & SC_SETTING_F_LIST) != 0;
        snprintf(shape, sizeof shape, "%s%s%s", list ? "list of " : "",
                 type_word(d.type),
                 list ? (d.type == SC_SETTING_GROUP ? "s ( { ... } )" : "s [ ... ]")
                      : (d.type == SC_SETTING_GROUP ? " { ... }" : ""));
#define ADD(...)                                                          \
    do {                                                                  \
        if (used < sizeof extra) {                                        \
            int n_ = snprintf(extra + used, sizeof extra - used,          \
                              __VA_ARGS__);                               \
            used += n_ > 0 ? (size_t)n_ : 0;                              \
        }                                                                 \
    } while (0)
        if (d.required)
            ADD(" required;");
        if (d.default_value != NULL && !list && d.type != SC_SETTING_GROUP)
            ADD(" default %s;", d.default_value);
        if (d.flags & (SC_SETTING_F_MIN | SC_SETTING_F_MAX)) {
            char range[96], a[40], b[40];
            range_text(&d, range, sizeof range);
            fmt_num(d.min, a, sizeof a);
            fmt_num(d.max, b, sizeof b);
            if (!list)
                ADD(" range %s;", range);
            else if ((d.flags & SC_SETTING_F_MIN) &&
                     (d.flags & SC_SETTING_F_MAX))
                ADD(" %s..%s elements;", a, b);
            else if (d.flags & SC_SETTING_F_MIN)
                ADD(" at least %s elements;", a);
            else
                ADD(" at most %s elements;", b);
        }
        if ((d.type == SC_SETTING_STRING || d.type == SC_SETTING_PATH) &&
            d.allowed != NULL) {
            char *al = join_allowed(d.allowed);
            ADD(" one of %s;", al ? al : "?");
            free(al);
        }
#undef ADD
        if (used > 0 && used < sizeof extra && extra[used - 1] == ';')
            extra[used - 1] = '\0';
        fprintf(out, "%*s%-20s %s%s%s\n", indent, "", d.name, shape,
                extra[0] ? "," : "", extra);
        if (d.description != NULL)
            fprintf(out, "%*s    %s\n", indent, "", d.description);
        if (d.type == SC_SETTING_GROUP && d.fields != NULL)
            describe_table(out, d.fields, stride, indent + 4, depth + 1);
    }
}

void sc_settings_describe(FILE *out, const sc_plugin_t *desc)
{
    if (out == NULL || desc == NULL)
        return;
    if (desc->settings == NULL || desc->settings->name == NULL) {
        fprintf(out, "  (no settings)\n");
        return;
    }
    describe_table(out, desc->settings, sc_settings_def_stride(desc), 2, 0);
}

void sc_settings_describe_table(FILE *out, const sc_setting_def_t *defs,
                                size_t stride)
{
    if (out != NULL && defs != NULL)
        describe_table(out, defs, stride, 2, 0);
}
