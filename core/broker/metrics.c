/*
 * metrics.c - see metrics.h. Owns the registry and the exposition text;
 * never does I/O and never logs (it is called from the log module's
 * callers and from the publishing path).
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/hindex.h"

typedef struct {
    char values[SC_METRIC_MAX_LABELS][SC_METRIC_LABEL_MAX];
    double value;                           /* counter/gauge; hist sum */
    uint64_t count;                         /* histogram observations */
    uint64_t buckets[SC_METRIC_MAX_BUCKETS]; /* non-cumulative */
} series_t;

struct sc_metric {
    sc_metric_kind_t kind;
    char name[128];
    char *help;
    int n_labels;
    char labels[SC_METRIC_MAX_LABELS][64];
    double bounds[SC_METRIC_MAX_BUCKETS];
    size_t n_bounds;
    pthread_mutex_t mu;
    series_t *series; /* grows by doubling up to SC_METRIC_MAX_SERIES + 1 */
    size_t n_series, cap_series;
    sc_hindex_t ix;   /* series by label values */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static sc_metric_t *g_metrics[SC_METRICS_MAX];
static size_t g_n;
static struct {
    sc_metrics_collect_fn fn;
    void *ud;
} g_hooks[16];
static sc_metric_t *g_dropped;

static int valid_name(const char *s, int colon)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '_' || (colon && c == ':') ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int parse_labels(const char *labels, char out[][64])
{
    if (!labels || !*labels)
        return 0;
    int n = 0;
    const char *p = labels;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == SC_METRIC_MAX_LABELS || len == 0 || len >= 64)
            return -1;
        memcpy(out[n], p, len);
        out[n][len] = '\0';
        if (!valid_name(out[n], 0) || strcmp(out[n], "le") == 0)
            return -1;
        n++;
        p = e ? e + 1 : p + len;
        if (e && !*p)
            return -1;
    }
    return n;
}

static sc_metric_t *lookup_locked(const char *name)
{
    for (size_t i = 0; i < g_n; i++)
        if (strcmp(g_metrics[i]->name, name) == 0)
            return g_metrics[i];
    return NULL;
}

static sc_metric_t *register_metric(sc_metric_kind_t kind, const char *name,
                                    const char *help, const char *labels,
                                    const double *bounds, size_t n_bounds)
{
    char lab[SC_METRIC_MAX_LABELS][64];
    int n_labels = parse_labels(labels, lab);
    if (!valid_name(name, 1) || strlen(name) >= 100 || n_labels < 0)
        return NULL;
    if (kind == SC_METRIC_HISTOGRAM) {
        if (!bounds || n_bounds == 0 || n_bounds > SC_METRIC_MAX_BUCKETS)
            return NULL;
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return NULL;
    }
    pthread_mutex_lock(&g_mu);
    sc_metric_t *m = lookup_locked(name);
    if (m) {
        int same = m->kind == kind && m->n_labels == n_labels;
        for (int i = 0; same && i < n_labels; i++)
            same = strcmp(m->labels[i], lab[i]) == 0;
        pthread_mutex_unlock(&g_mu);
        return same ? m : NULL;
    }
    if (g_n == SC_METRICS_MAX || !(m = calloc(1, sizeof *m))) {
        pthread_mutex_unlock(&g_mu);
        return NULL;
    }
    m->kind = kind;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->help = strdup(help ? help : "");
    m->n_labels = n_labels;
    memcpy(m->labels, lab, sizeof lab);
    if (kind == SC_METRIC_HISTOGRAM) {
        memcpy(m->bounds, bounds, n_bounds * sizeof *bounds);
        m->n_bounds = n_bounds;
    }
    pthread_mutex_init(&m->mu, NULL);
    g_metrics[g_n++] = m;
    pthread_mutex_unlock(&g_mu);
    return m;
}

sc_metric_t *sc_metric_counter(const char *name, const char *help,
                               const char *labels)
{
    return register_metric(SC_METRIC_COUNTER, name, help, labels, NULL, 0);
}

sc_metric_t *sc_metric_gauge(const char *name, const char *help,
                             const char *labels)
{
    return register_metric(SC_METRIC_GAUGE, name, help, labels, NULL, 0);
}

sc_metric_t *sc_metric_histogram(const char *name, const char *help,
                                 const char *labels, const double *bounds,
                                 size_t n_bounds)
{
    return register_metric(SC_METRIC_HISTOGRAM, name, help, labels, bounds,
                           n_bounds);
}

/* the label values, with a separator between them */
static uint64_t hash_values(const char *v[], int n)
{
    uint64_t h = SC_HASH_INIT;
    for (int i = 0; i < n; i++)
        h = sc_hash_sep(sc_hash_add(h, v[i]));
    return h;
}

static void count_dropped(void);

typedef struct {
    const sc_metric_t *m;
    const char *const *v;
} labels_key_t;

static bool series_is(const void *key, size_t pos, void *arg)
{
    (void)arg;
    const labels_key_t *k = key;
    const series_t *se = &k->m->series[pos];
    for (int i = 0; i < k->m->n_labels; i++)
        if (strcmp(se->values[i], k->v[i]) != 0)
            return false;
    return true;
}

static series_t *find_locked(sc_metric_t *m, const char *v[], uint64_t h)
{
    labels_key_t k = {m, v};
    long at = sc_hindex_find(&m->ix, h, series_is, &k, NULL);
    return at >= 0 ? &m->series[at] : NULL;
}

/* Find or create the series for these values; m->mu held. Past the bound
 * the shared "_other" series (the one allowed beyond it). NULL only when
 * out of memory. */
static series_t *series_locked(sc_metric_t *m, const char *v[], int *dropped)
{
    char cut[SC_METRIC_MAX_LABELS][SC_METRIC_LABEL_MAX];
    for (int i = 0; i < m->n_labels; i++) {
        if (!v[i])
            v[i] = "";
        if (strlen(v[i]) >= SC_METRIC_LABEL_MAX) {
            memcpy(cut[i], v[i], SC_METRIC_LABEL_MAX - 1);
            cut[i][SC_METRIC_LABEL_MAX - 1] = '\0';
            v[i] = cut[i];
        }
    }
    uint64_t h = hash_values(v, m->n_labels);
    series_t *se = find_locked(m, v, h);
    if (se)
        return se;
    if (m->n_series >= SC_METRIC_MAX_SERIES) {
        *dropped = 1;
        for (int i = 0; i < m->n_labels; i++)
            v[i] = "_other";
        h = hash_values(v, m->n_labels);
        if ((se = find_locked(m, v, h)))
            return se;
        if (m->n_series > SC_METRIC_MAX_SERIES)
            return NULL; /* not reached: the extra slot is the overflow */
    }
    if (m->n_series == m->cap_series) {
        size_t cap = m->cap_series ? m->cap_series * 2 : 8;
        if (cap > SC_METRIC_MAX_SERIES + 1)
            cap = SC_METRIC_MAX_SERIES + 1;
        series_t *ns = realloc(m->series, cap * sizeof *ns);
        if (!ns)
            return NULL;
        m->series = ns;
        m->cap_series = cap;
    }
    if (sc_hindex_add(&m->ix, h, m->n_series) != 0)
        return NULL;
    se = &m->series[m->n_series++];
    memset(se, 0, sizeof *se);
    for (int i = 0; i < m->n_labels; i++)
        snprintf(se->values[i], SC_METRIC_LABEL_MAX, "%s", v[i]);
    return se;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } op_t;

static void update(sc_metric_t *m, op_t op, double x, va_list ap)
{
    const char *v[SC_METRIC_MAX_LABELS] = {0};
    for (int i = 0; i < m->n_labels; i++)
        v[i] = va_arg(ap, const char *);
    int dropped = 0;
    pthread_mutex_lock(&m->mu);
    series_t *se = series_locked(m, v, &dropped);
    if (se) {
        if (op == OP_OBSERVE) {
            size_t b = 0;
            while (b < m->n_bounds && x > m->bounds[b])
                b++;
            if (b < m->n_bounds)
                se->buckets[b]++;
            se->count++;
            se->value += x;
        } else if (op == OP_SET) {
            se->value = x;
        } else {
            se->value += x;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (dropped)
        count_dropped();
}

void sc_metric_add(sc_metric_t *m, double v, ...)
{
    if (!m || m->kind == SC_METRIC_HISTOGRAM)
        return;
    if (m->kind == SC_METRIC_COUNTER && !(v >= 0))
        return; /* counters only go up */
    va_list ap;
    va_start(ap, v);
    update(m, OP_ADD, v, ap);
    va_end(ap);
}

void sc_metric_set(sc_metric_t *m, double v, ...)
{
    if (!m || m->kind != SC_METRIC_GAUGE)
        return;
    va_list ap;
    va_start(ap, v);
    update(m, OP_SET, v, ap);
    va_end(ap);
}

void sc_metric_observe(sc_metric_t *m, double v, ...)
{
    if (!m || m->kind != SC_METRIC_HISTOGRAM || isnan(v))
        return;
    va_list ap;
    va_start(ap, v);
    update(m, OP_OBSERVE, v, ap);
    va_end(ap);
}

double sc_metric_value(sc_metric_t *m, ...)
{
    if (!m)
        return 0;
    const char *v[SC_METRIC_MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, m);
    for (int i = 0; i < m->n_labels; i++) {
        v[i] = va_arg(ap, const char *);
        if (!v[i])
            v[i] = "";
    }
    va_end(ap);
    double r = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t s = 0; s < m->n_series; s++) {
        int eq = 1;
        for (int i = 0; eq && i < m->n_labels; i++)
            eq = strncmp(m->series[s].values[i], v[i],
                         SC_METRIC_LABEL_MAX - 1) == 0;
        if (eq) {
            r = m->kind == SC_METRIC_HISTOGRAM ? (double)m->series[s].count
                                               : m->series[s].value;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

void sc_metric_clear(sc_metric_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->n_series = 0;
    sc_hindex_clear(&m->ix);
    pthread_mutex_unlock(&m->mu);
}

static void count_dropped(void)
{
    sc_metric_t *d = g_dropped;
    if (!d) {
        d = sc_metric_counter("sectorcast_metrics_series_dropped_total",
                              "Updates folded into an \"_other\" series "
                              "because a metric reached its label-set bound.",
                              NULL);
        g_dropped = d;
    }
    sc_metric_add(d, 1);
}

int sc_metrics_on_collect(sc_metrics_collect_fn fn, void *ud)
{
    int rc = -1;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < sizeof g_hooks / sizeof g_hooks[0]; i++)
        if (!g_hooks[i].fn) {
            g_hooks[i].fn = fn;
            g_hooks[i].ud = ud;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void sc_metrics_off_collect(sc_metrics_collect_fn fn, void *ud)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < sizeof g_hooks / sizeof g_hooks[0]; i++)
        if (g_hooks[i].fn == fn && g_hooks[i].ud == ud)
            g_hooks[i].fn = NULL;
    pthread_mutex_unlock(&g_mu);
}

/* Escapes for HELP text (\\ and \n) and label values (also \") */
static void put_escaped(FILE *f, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (quote && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

/* shortest of %.15g / %.17g that reads back as v */
static void fmt_double(char *out, size_t len, double v)
{
    snprintf(out, len, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, len, "%.17g", v);
}

static void put_number(FILE *f, double v)
{
    char num[40];
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        fprintf(f, "%lld", (long long)v);
    else {
        fmt_double(num, sizeof num, v);
        fputs(num, f);
    }
}

/* {a="x",b="y"[,le="..."]} or nothing */
static void put_labels(FILE *f, const sc_metric_t *m, const series_t *se,
                       const char *le)
{
    if (m->n_labels == 0 && !le)
        return;
    fputc('{', f);
    for (int i = 0; i < m->n_labels; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_escaped(f, se->values[i], 1);
        fputc('"', f);
    }
    if (le)
        fprintf(f, "%sle=\"%s\"", m->n_labels ? "," : "", le);
    fputc('}', f);
}

static void render_metric(FILE *f, sc_metric_t *m)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s ", m->name);
    put_escaped(f, m->help, 0);
    fprintf(f, "\n# TYPE %s %s\n", m->name, kinds[m->kind]);
    /* format a copy: the lock is the publishing thread's too, and it
     * should wait for a memcpy, not for the text (under the lock only if
     * the copy cannot be made) */
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_series;
    series_t *copy = n ? malloc(n * sizeof *copy) : NULL;
    const series_t *all = m->series;
    if (copy) {
        memcpy(copy, m->series, n * sizeof *copy);
        pthread_mutex_unlock(&m->mu);
        all = copy;
    }
    for (size_t s = 0; s < n; s++) {
        const series_t *se = &all[s];
        if (m->kind != SC_METRIC_HISTOGRAM) {
            fputs(m->name, f);
            put_labels(f, m, se, NULL);
            fputc(' ', f);
            put_number(f, se->value);
            fputc('\n', f);
            continue;
        }
        uint64_t cum = 0;
        char le[64];
        for (size_t b = 0; b <= m->n_bounds; b++) {
            if (b < m->n_bounds) {
                cum += se->buckets[b];
                fmt_double(le, sizeof le, m->bounds[b]);
            } else {
                cum = se->count;
                snprintf(le, sizeof le, "+Inf");
            }
            fprintf(f, "%s_bucket", m->name);
            put_labels(f, m, se, le);
            fprintf(f, " %llu\n", (unsigned long long)cum);
        }
        fprintf(f, "%s_sum", m->name);
        put_labels(f, m, se, NULL);
        fputc(' ', f);
        put_number(f, se->value);
        fprintf(f, "\n%s_count", m->name);
        put_labels(f, m, se, NULL);
        fprintf(f, " %llu\n", (unsigned long long)se->count);
    }
    if (copy)
        free(copy);
    else
        pthread_mutex_unlock(&m->mu);
}

char *sc_metrics_render(void)
{
    /* hooks run outside g_mu: they update metrics, which may register */
    struct {
        sc_metrics_collect_fn fn;
        void *ud;
    } hooks[16];
    pthread_mutex_lock(&g_mu);
    memcpy(hooks, g_hooks, sizeof hooks);
    pthread_mutex_unlock(&g_mu);
    for (size_t i = 0; i < 16; i++)
        if (hooks[i].fn)
            hooks[i].fn(hooks[i].ud);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&g_mu);
    size_t n = g_n;
    sc_metric_t *list[SC_METRICS_MAX];
    memcpy(list, g_metrics, n * sizeof *list);
    pthread_mutex_unlock(&g_mu);
    /* metrics are never freed while the process runs (except by reset) */
    for (size_t i = 0; i < n; i++)
        render_metric(f, list[i]);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void sc_metrics_reset(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n; i++) {
        pthread_mutex_destroy(&g_metrics[i]->mu);
        free(g_metrics[i]->series);
        sc_hindex_free(&g_metrics[i]->ix);
        free(g_metrics[i]->help);
        free(g_metrics[i]);
        g_metrics[i] = NULL;
    }
    g_n = 0;
    g_dropped = NULL;
    memset(g_hooks, 0, sizeof g_hooks);
    pthread_mutex_unlock(&g_mu);
}
