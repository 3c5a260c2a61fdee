/*
 * sk_alerts.c - supply-chain early warnings: alert rules over indicator
 * series, their state, and the CAP 1.2 messages they publish.
 *
 * A rule has 1..4 levels, each a threshold and a CAP severity, all in one
 * direction ("<"/"<=": low values are bad; ">"/">=": high values are bad),
 * thresholds ever more extreme and severities ever higher. Level 0 is
 * normal. For each observation the rule computes a target level:
 *
 *   up   = the highest level whose threshold the value is past;
 *   keep = the highest level at or below the current one that the value
 *          is still past when each threshold is moved by the band toward
 *          normal (band = |clear - first threshold|, or 0);
 *   target = up if up > current, else keep.
 *
 * So a level is entered at its threshold and left only once the value is
 * back past threshold + band: a value hovering at a threshold moves the
 * level once. With consecutive = N the level moves only when N consecutive
 * observations call for a move in the same direction, and only as far as
 * all N agree. A move from 0 is alert.raised (CAP msgType Alert), between
 * levels alert.updated (Update, new severity), to 0 alert.cleared
 * (Cancel); Update and Cancel reference the episode's Alert and the
 * message before them in CAP's "sender,identifier,sent" form.
 *
 * Durable state, "alert/<series>" (JSON): the level, the last observation
 * date processed, the pending streak, the episode's identifiers and its
 * channel. It is saved right after each message is published (SC_OK), and
 * once after a run of observations, so a restart neither raises again nor
 * loses a clear. A stored alert that is raised but has no rule any more is
 * cancelled at the first apply.
 */
#include "sk_alerts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "sk_schema.h"

#define MAX_LEVELS 4
#define MAX_RULES 64
#define MAX_FOR 100
#define REF_BUF 160   /* a CAP identifier */
#define SENT_BUF 32   /* "2026-02-10T09:30:00-00:00" */

/* CAP 1.2 value sets (OASIS CAP-V1.2, 3.2.1 and 3.2.2) */
const char *const sk_cap_severity[] = { "Minor", "Moderate", "Severe",
                                        "Extreme", NULL };
const char *const sk_cap_urgency[] = { "Immediate", "Expected", "Future",
                                       "Past", "Unknown", NULL };
const char *const sk_cap_certainty[] = { "Observed", "Likely", "Possible",
                                         "Unlikely", "Unknown", NULL };
const char *const sk_cap_category[] = {
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
    "Transport", "Infra", "CBRNE", "Other", NULL
};
const char *const sk_rule_ops[] = { "<", "<=", ">", ">=", NULL };
#define cap_severity sk_cap_severity

typedef struct level {
    double threshold;
    int severity; /* index into cap_severity */
} level_t;

typedef struct rule {
    char series[SK_ID_MAX + 1];
    char *text;        /* canonical form, for messages */
    int below;         /* "<"/"<=": low values are bad */
    int inclusive;     /* "<=" / ">=" */
    level_t levels[MAX_LEVELS];
    int n_levels;
    int has_clear;
    double clear;
    double band;       /* |clear - levels[0].threshold|, or 0 */
    int for_n;         /* consecutive observations to move, >= 1 */
    const char *urgency, *certainty, *category; /* CAP values */
} rule_t;

struct sk_rules {
    rule_t *r;
    size_t n;
};

/* ------------------------------------------------------------ rules -- */

static void
rules_free(rule_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].text);
    free(r);
}

void
sk_rules_destroy(sk_rules_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rules_free((*self_p)->r, (*self_p)->n);
    free(*self_p);
    *self_p = NULL;
}

size_t
sk_rules_count(const sk_rules_t *r)
{
    return r ? r->n : 0;
}

const char *
sk_rules_series(const sk_rules_t *r, size_t i)
{
    return r && i < r->n ? r->r[i].series : NULL;
}

const char *
sk_rules_text(const sk_rules_t *r, size_t i)
{
    return r && i < r->n ? r->r[i].text : NULL;
}

/* Shortest plain decimal that reads back as `v` ("10", "9.5"); an
 * exponent only for very large or small magnitudes. */
static void
fmt_num(double v, char *buf, size_t len)
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

/* Index of `word` in `list`; -1 if absent. */
static int
lookup(const char *word, const char *const *list)
{
    for (int i = 0; word && list[i]; i++)
        if (!strcmp(word, list[i]))
            return i;
    return -1;
}

/* The canonical text of a parsed rule. */
static char *
rule_text(const rule_t *r)
{
    char buf[512], num[40];
    size_t used = 0;
    const char *op = r->below ? (r->inclusive ? "<=" : "<")
                              : (r->inclusive ? ">=" : ">");
    used += (size_t)snprintf(buf, sizeof buf, "%s", r->series);
    for (int i = 0; i < r->n_levels && used < sizeof buf; i++) {
        fmt_num(r->levels[i].threshold, num, sizeof num);
        used += (size_t)snprintf(buf + used, sizeof buf - used, " %s %s %s",
                                 op, num, cap_severity[r->levels[i].severity]);
    }
    if (r->has_clear && used < sizeof buf) {
        fmt_num(r->clear, num, sizeof num);
        used += (size_t)snprintf(buf + used, sizeof buf - used, " clear %s",
                                 num);
    }
    if (r->for_n > 1 && used < sizeof buf)
        used += (size_t)snprintf(buf + used, sizeof buf - used, " for %d",
                                 r->for_n);
    /* options that differ from the defaults */
    if (strcmp(r->urgency, "Future") != 0 && used < sizeof buf)
        used += (size_t)snprintf(buf + used, sizeof buf - used,
                                 " urgency %s", r->urgency);
    if (strcmp(r->certainty, "Likely") != 0 && used < sizeof buf)
        used += (size_t)snprintf(buf + used, sizeof buf - used,
                                 " certainty %s", r->certainty);
    if (strcmp(r->category, "Other") != 0 && used < sizeof buf)
        snprintf(buf + used, sizeof buf - used, " category %s", r->category);
    return strdup(buf);
}

/* Reading the structured `alert_rules` setting. The host has checked the
 * table's part (types, required fields, allowed operators and CAP values,
 * ranges, list lengths); here is what only the plugin knows. */
typedef struct reader {
    sc_host_t *host;
    const sc_host_api_t *api;
    int problems;
} reader_t;

static void
problem(reader_t *rd, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
problem(reader_t *rd, const char *path, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rd->problems++;
    if (SC_HOST_HAS(rd->api, setting_problem))
        rd->api->setting_problem(rd->host, path, "%s", text);
    else
        rd->api->log(rd->host, SC_LOG_ERROR, "setting '%s': %s", path, text);
}

/* Length of the list at `path` (0 if not set); on a host without
 * setting_count, counted by probing "path[n].probe" (up to max + 1). */
static size_t
count_list(sc_host_t *host, const sc_host_api_t *api, const char *path,
           const char *probe, size_t max)
{
    size_t n = 0;
    if (SC_HOST_HAS(api, setting_count))
        return api->setting_count(host, path, &n) == SC_OK ? n : 0;
    char p[128];
    double d;
    for (; n <= max; n++) {
        snprintf(p, sizeof p, "%s[%zu].%s", path, n, probe);
        if (api->setting_float(host, p, &d) == SC_ERR_NO_SETTING &&
            api->setting_string(host, p, &(const char *){NULL}) ==
                SC_ERR_NO_SETTING)
            break;
    }
    return n;
}

/* A field of rule i: SC_OK, SC_ERR_NO_SETTING (not set, no default) or
 * another code (reported). */
static int
field_str(reader_t *rd, size_t i, const char *f, const char **out)
{
    char path[96];
    snprintf(path, sizeof path, "alert_rules[%zu].%s", i, f);
    int rc = rd->api->setting_string(rd->host, path, out);
    if (rc != SC_OK && rc != SC_ERR_NO_SETTING)
        problem(rd, path, "%s", rd->api->strerror(rc));
    return rc;
}

static int
field_num(reader_t *rd, const char *path, double *out)
{
    int rc = rd->api->setting_float(rd->host, path, out);
    if (rc == SC_OK && !isfinite(*out)) {
        problem(rd, path, "must be a finite number");
        return SC_ERR_ARG;
    }
    if (rc != SC_OK && rc != SC_ERR_NO_SETTING)
        problem(rd, path, "%s", rd->api->strerror(rc));
    return rc;
}

/* Rule i into r; 0, or -1 after reporting. */
static int
read_rule(reader_t *rd, size_t i, rule_t *r)
{
    char path[96], num[40], prev[40];
    const char *ind = NULL, *op = NULL, *sev = NULL;
    int before = rd->problems;
    if (field_str(rd, i, "indicator", &ind) != SC_OK ||
        field_str(rd, i, "op", &op) != SC_OK ||
        field_str(rd, i, "severity", &sev) != SC_OK)
        return -1;
    snprintf(path, sizeof path, "alert_rules[%zu].indicator", i);
    if (!sk_series_id_valid(ind))
        problem(rd, path, "\"%s\" is not a series id ([a-z0-9][a-z0-9_-]"
                "{0,%d}, as in the register's \"indicators\")", ind,
                SK_ID_MAX - 1);
    else
        snprintf(r->series, sizeof r->series, "%s", ind);
    int o = lookup(op, sk_rule_ops);
    if (o < 0) {
        snprintf(path, sizeof path, "alert_rules[%zu].op", i);
        problem(rd, path, "\"%s\" is not one of <, <=, >, >=", op);
        return -1;
    }
    r->below = op[0] == '<';
    r->inclusive = op[1] == '=';

    /* levels: the first, then escalate[] */
    snprintf(path, sizeof path, "alert_rules[%zu].threshold", i);
    if (field_num(rd, path, &r->levels[0].threshold) != SC_OK)
        return -1;
    if ((r->levels[0].severity = lookup(sev, cap_severity)) < 0) {
        snprintf(path, sizeof path, "alert_rules[%zu].severity", i);
        problem(rd, path, "\"%s\" is not a CAP severity", sev);
        return -1;
    }
    r->n_levels = 1;
    size_t n_esc = 0;
    snprintf(path, sizeof path, "alert_rules[%zu].escalate", i);
    n_esc = count_list(rd->host, rd->api, path, "threshold", MAX_LEVELS);
    if (n_esc > MAX_LEVELS - 1) {
        problem(rd, path, "at most %d further levels", MAX_LEVELS - 1);
        return -1;
    }
    for (size_t k = 0; k < n_esc; k++) {
        level_t *lv = &r->levels[r->n_levels];
        const level_t *pv = &r->levels[r->n_levels - 1];
        const char *es = NULL;
        snprintf(path, sizeof path, "alert_rules[%zu].escalate[%zu].threshold",
                 i, k);
        if (field_num(rd, path, &lv->threshold) != SC_OK)
            return -1;
        fmt_num(lv->threshold, num, sizeof num);
        fmt_num(pv->threshold, prev, sizeof prev);
        if (r->below ? !(lv->threshold < pv->threshold)
                     : !(lv->threshold > pv->threshold))
            problem(rd, path, "%s must be %s the threshold before it (%s): "
                    "each level lies further past the first", num,
                    r->below ? "below" : "above", prev);
        snprintf(path, sizeof path, "alert_rules[%zu].escalate[%zu].severity",
                 i, k);
        int rc = rd->api->setting_string(rd->host, path, &es);
        if (rc != SC_OK || (lv->severity = lookup(es, cap_severity)) < 0) {
            problem(rd, path, "%s", rc != SC_OK ? rd->api->strerror(rc)
                                                : "not a CAP severity");
            return -1;
        }
        if (lv->severity <= pv->severity)
            problem(rd, path, "\"%s\" must be more severe than the level "
                    "before it (\"%s\"; Minor < Moderate < Severe < Extreme)",
                    es, cap_severity[pv->severity]);
        r->n_levels++;
    }

    /* options (defaults from the table) */
    int64_t n = 1;
    snprintf(path, sizeof path, "alert_rules[%zu].consecutive", i);
    int rc = rd->api->setting_int(rd->host, path, &n);
    if (rc == SC_OK && (n < 1 || n > MAX_FOR))
        problem(rd, path, "%lld is out of range (1..%d)", (long long)n,
                MAX_FOR);
    r->for_n = rc == SC_OK ? (int)n : 1;
    static const char *const opt_name[] = { "urgency", "certainty",
                                            "category" };
    const char *const *opt_set[] = { sk_cap_urgency, sk_cap_certainty,
                                     sk_cap_category };
    static const char *const opt_default[] = { "Future", "Likely", "Other" };
    const char **opt_out[] = { &r->urgency, &r->certainty, &r->category };
    for (int k = 0; k < 3; k++) {
        const char *v = NULL;
        rc = field_str(rd, i, opt_name[k], &v);
        int at = rc == SC_OK ? lookup(v, opt_set[k])
                             : lookup(opt_default[k], opt_set[k]);
        if (rc != SC_OK && rc != SC_ERR_NO_SETTING)
            return -1;
        if (at < 0) {
            snprintf(path, sizeof path, "alert_rules[%zu].%s", i,
                     opt_name[k]);
            problem(rd, path, "\"%s\" is not a CAP %s", v, opt_name[k]);
            return -1;
        }
        *opt_out[k] = opt_set[k][at];
    }

    /* no flapping: a band, or more than one observation to move */
    double t1 = r->levels[0].threshold;
    fmt_num(t1, num, sizeof num);
    snprintf(path, sizeof path, "alert_rules[%zu].clear", i);
    rc = field_num(rd, path, &r->clear);
    if (rc == SC_OK) {
        r->has_clear = 1;
        if (r->below ? !(r->clear > t1) : !(r->clear < t1))
            problem(rd, path, "must be %s the first threshold %s, so that a "
                    "value hovering there raises once",
                    r->below ? "above" : "below", num);
        r->band = fabs(r->clear - t1);
    } else if (rc != SC_ERR_NO_SETTING) {
        return -1;
    } else if (r->for_n < 2) {
        snprintf(path, sizeof path, "alert_rules[%zu]", i);
        problem(rd, path, "needs clear (a threshold %s %s) or consecutive "
                ">= 2, so that a value hovering at the threshold raises once",
                r->below ? "above" : "below", num);
    }
    return rd->problems > before ? -1 : 0;
}

sk_rules_t *
sk_rules_read(sc_host_t *host, const sc_host_api_t *api, int *problems)
{
    reader_t rd = { host, api, 0 };
    *problems = 0;
    sk_rules_t *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    size_t n = count_list(host, api, "alert_rules", "indicator", MAX_RULES);
    if (n > MAX_RULES) {
        problem(&rd, "alert_rules", "more than %d rules", MAX_RULES);
        *problems = rd.problems;
        sk_rules_destroy(&rs);
        return NULL;
    }
    if (n > 0 && !(rs->r = calloc(n, sizeof *rs->r))) {
        sk_rules_destroy(&rs);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        rule_t *r = &rs->r[rs->n];
        memset(r, 0, sizeof *r);
        if (read_rule(&rd, i, r) < 0)
            continue;
        size_t dup = rs->n;
        for (size_t k = 0; k < rs->n && dup == rs->n; k++)
            if (!strcmp(rs->r[k].series, r->series))
                dup = k;
        if (dup < rs->n) {
            char path[64];
            snprintf(path, sizeof path, "alert_rules[%zu].indicator", i);
            problem(&rd, path, "series \"%s\" already has a rule (%s); give "
                    "one rule further levels (escalate) instead", r->series,
                    rs->r[dup].text);
            continue;
        }
        if (!(r->text = rule_text(r))) {
            sk_rules_destroy(&rs);
            return NULL;
        }
        rs->n++;
    }
    *problems = rd.problems;
    if (rd.problems > 0)
        sk_rules_destroy(&rs);
    return rs;
}

int
sk_cap_sender_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == ',' || c == '<' || c == '&')
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ state -- */

typedef struct astate {
    int level;             /* 0 = normal */
    char severity[12];     /* CAP severity of `level` when it was sent */
    unsigned episode;      /* raises so far */
    unsigned n;            /* messages sent in this episode */
    char stamp[20];        /* of the episode's Alert: "20260210T093000" */
    char date[11];         /* last observation processed; "" = none */
    int streak;            /* consecutive observations calling for a move */
    int dir;               /* +1 up, -1 down, 0 none */
    int target;            /* how far all of the streak agree */
    char first_id[REF_BUF], first_sent[SENT_BUF]; /* the episode's Alert */
    char last_id[REF_BUF], last_sent[SENT_BUF];   /* its latest message */
    char channel[SK_CHANNEL_BUF]; /* where this episode's messages go */
    char event[160];       /* CAP event of the episode */
    char category[16];
} astate_t;

typedef struct slot {
    astate_t st;
    int noted_missing;     /* "no series" logged (memory only) */
    int noted_grant;       /* "channel not granted" logged */
} slot_t;

struct sk_alerts {
    const sk_sector_t *sector;
    sk_rules_t *rules;
    slot_t *slots;         /* one per rule */
    sk_store_t *store;
    char *instance;
    char *sender;
    json_t *orphans;       /* series -> stored state without a rule */
};

sk_alerts_t *
sk_alerts_new(const sk_sector_t *sector, sk_rules_t *rules,
              sk_store_t *store, const char *instance, const char *sender)
{
    sk_alerts_t *a = calloc(1, sizeof *a);
    if (!a) {
        sk_rules_destroy(&rules);
        return NULL;
    }
    a->sector = sector;
    a->rules = rules;
    a->store = store;
    a->slots = calloc(rules && rules->n ? rules->n : 1, sizeof *a->slots);
    a->instance = strdup(instance);
    a->sender = strdup(sender);
    a->orphans = json_object();
    if (!rules || !a->slots || !a->instance || !a->sender || !a->orphans)
        sk_alerts_destroy(&a);
    return a;
}

void
sk_alerts_destroy(sk_alerts_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sk_alerts_t *a = *self_p;
    sk_rules_destroy(&a->rules);
    free(a->slots);
    free(a->instance);
    free(a->sender);
    json_decref(a->orphans);
    free(a);
    *self_p = NULL;
}

static void
copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static json_t *
state_to_json(const astate_t *s)
{
    return json_pack("{s:i, s:s, s:I, s:I, s:s, s:s, s:i, s:i, s:i, s:[ss],"
                     " s:[ss], s:s, s:s, s:s}",
                     "level", s->level, "severity", s->severity,
                     "episode", (json_int_t)s->episode,
                     "n", (json_int_t)s->n, "stamp", s->stamp,
                     "date", s->date, "streak", s->streak, "dir", s->dir,
                     "target", s->target,
                     "first", s->first_id, s->first_sent,
                     "last", s->last_id, s->last_sent,
                     "channel", s->channel, "event", s->event,
                     "category", s->category);
}

static int
state_from_json(const json_t *j, astate_t *s)
{
    json_int_t episode = 0, n = 0;
    const char *sev = NULL, *stamp = NULL, *date = NULL, *f1 = NULL,
               *f2 = NULL, *l1 = NULL, *l2 = NULL, *ch = NULL, *ev = NULL,
               *cat = NULL;
    json_error_t je;
    memset(s, 0, sizeof *s);
    if (json_unpack_ex((json_t *)j, &je, JSON_STRICT,
                       "{s:i, s:s, s:I, s:I, s:s, s:s, s:i, s:i, s:i, "
                       "s:[ss], s:[ss], s:s, s:s, s:s}",
                       "level", &s->level, "severity", &sev,
                       "episode", &episode, "n", &n, "stamp", &stamp,
                       "date", &date, "streak", &s->streak, "dir", &s->dir,
                       "target", &s->target, "first", &f1, &f2,
                       "last", &l1, &l2, "channel", &ch, "event", &ev,
                       "category", &cat) < 0)
        return -1;
    if (s->level < 0 || s->level > MAX_LEVELS || episode < 0 || n < 0 ||
        s->target < 0 || s->target > MAX_LEVELS || s->streak < 0 ||
        (*date && !sk_date_valid(date)) ||
        (s->level > 0 && (lookup(sev, cap_severity) < 0 || !*ch)))
        return -1;
    s->episode = (unsigned)episode;
    s->n = (unsigned)n;
    copy_str(s->severity, sizeof s->severity, sev);
    copy_str(s->stamp, sizeof s->stamp, stamp);
    copy_str(s->date, sizeof s->date, date);
    copy_str(s->first_id, sizeof s->first_id, f1);
    copy_str(s->first_sent, sizeof s->first_sent, f2);
    copy_str(s->last_id, sizeof s->last_id, l1);
    copy_str(s->last_sent, sizeof s->last_sent, l2);
    copy_str(s->channel, sizeof s->channel, ch);
    copy_str(s->event, sizeof s->event, ev);
    copy_str(s->category, sizeof s->category, cat);
    return 0;
}

static void
save_state(sk_alerts_t *a, const char *series, const astate_t *s)
{
    json_t *j = state_to_json(s);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (text)
        sk_store_put(a->store, "alert", series, text);
    free(text);
    json_decref(j);
}

static long
find_rule(const sk_alerts_t *a, const char *series)
{
    for (size_t i = 0; i < a->rules->n; i++)
        if (!strcmp(a->rules->r[i].series, series))
            return (long)i;
    return -1;
}

typedef struct loader {
    sk_alerts_t *a;
    const sk_log_t *lg;
    long n;
} loader_t;

static int
load_one(void *arg, const char *series, const char *value)
{
    loader_t *l = arg;
    json_error_t je;
    json_t *j = json_loads(value, JSON_REJECT_DUPLICATES, &je);
    astate_t s;
    if (!j || !sk_series_id_valid(series) || state_from_json(j, &s) < 0) {
        SK_LOG(l->lg, SC_LOG_WARN, "plugin state: alert/%s is not an alert "
               "state this plugin can use; ignored (the rule starts "
               "normal)", series);
        json_decref(j);
        return 0;
    }
    long i = find_rule(l->a, series);
    if (i >= 0) {
        l->a->slots[i].st = s;
        json_decref(j);
    } else {
        json_object_set_new(l->a->orphans, series, j);
    }
    l->n++;
    return 0;
}

long
sk_alerts_load(sk_alerts_t *a, const sk_log_t *lg)
{
    loader_t l = { a, lg, 0 };
    if (sk_store_foreach(a->store, "alert", load_one, &l) != SC_OK) {
        memset(a->slots, 0, (a->rules->n ? a->rules->n : 1) *
                            sizeof *a->slots);
        json_object_clear(a->orphans);
        return -1;
    }
    for (size_t i = 0; i < a->rules->n; i++) {
        const astate_t *s = &a->slots[i].st;
        /* a rule with fewer levels than before: stay at its top level */
        if (s->level > a->rules->r[i].n_levels)
            a->slots[i].st.level = a->rules->r[i].n_levels;
        if (s->target > a->rules->r[i].n_levels)
            a->slots[i].st.target = a->rules->r[i].n_levels;
    }
    return l.n;
}

/* -------------------------------------------------------------- CAP -- */

/* "2026-02-10T09:30:00-00:00" (CAP: UTC is written -00:00, never Z) and
 * the stamp "20260210T093000". */
static void
now_cap(char *sent, size_t len, char *stamp, size_t slen)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(sent, len, "%Y-%m-%dT%H:%M:%S-00:00", &tm);
    if (stamp)
        strftime(stamp, slen, "%Y%m%dT%H%M%S", &tm);
}

typedef struct msg {
    const char *msg_type;  /* Alert, Update, Cancel */
    const char *kind;      /* alert.raised, ... */
    const char *severity;
    const char *urgency, *certainty, *category;
    const char *response;  /* CAP responseType */
    char headline[200];
    char description[600];
    char note[200];        /* Cancel only */
} msg_t;

/* The CAP alert object of one message of episode `s` (already advanced
 * to this message: n, last_* not yet). */
static json_t *
cap_json(const sk_alerts_t *a, const astate_t *s, const msg_t *m,
         const char *identifier, const char *sent, const json_t *series,
         const char *date, const char *value, const char *rule)
{
    json_t *info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
                             "s:s}",
                             "language", "en-US",
                             "category", m->category,
                             "event", s->event,
                             "responseType", m->response,
                             "urgency", m->urgency,
                             "severity", m->severity,
                             "certainty", m->certainty,
                             "headline", m->headline,
                             "description", m->description);
    char restriction[SK_CHANNEL_BUF + 64];
    snprintf(restriction, sizeof restriction, "agencies granted the channel "
             "%s", s->channel);
    if (!info)
        return NULL;
    json_t *alert = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                              "identifier", identifier,
                              "sender", a->sender,
                              "sent", sent,
                              "status", "Actual",
                              "msgType", m->msg_type,
                              "scope", "Restricted",
                              "restriction", restriction,
                              "info", info);
    if (!alert)
        return NULL; /* json_pack released info */
    if (strcmp(m->msg_type, "Alert") != 0) {
        char refs[2 * (256 + REF_BUF + SENT_BUF + 4)];
        int k = snprintf(refs, sizeof refs, "%s,%s,%s", a->sender,
                         s->first_id, s->first_sent);
        if (strcmp(s->last_id, s->first_id) != 0 && k > 0 &&
            (size_t)k < sizeof refs)
            snprintf(refs + k, sizeof refs - (size_t)k, " %s,%s,%s",
                     a->sender, s->last_id, s->last_sent);
        json_object_set_new(alert, "references", json_string(refs));
    }
    if (m->note[0])
        json_object_set_new(alert, "note", json_string(m->note));
    const char *source = series ? json_string_value(json_object_get(series,
                                                                    "source"))
                                : NULL;
    if (source)
        json_object_set_new(alert, "source", json_string(source));
    if (date) {
        char eff[SENT_BUF];
        snprintf(eff, sizeof eff, "%sT00:00:00-00:00", date);
        json_object_set_new(info, "effective", json_string(eff));
    }
    const char *area = series ? json_string_value(json_object_get(series,
                                                                  "area"))
                              : NULL;
    if (area)
        json_object_set_new(info, "area", json_pack("{s:s}", "areaDesc",
                                                    area));
    json_t *params = json_array();
    const char *unit = series ? json_string_value(json_object_get(series,
                                                                  "unit"))
                              : NULL;
    const char *names[] = { "series", "observed", "value", "unit", "rule" };
    const char *const vals[] = { series ? sk_entry_id(series) : NULL, date,
                                 value, unit, rule };
    for (size_t i = 0; params && i < sizeof names / sizeof names[0]; i++)
        if (vals[i])
            json_array_append_new(params, json_pack("{s:s, s:s}",
                                                    "valueName", names[i],
                                                    "value", vals[i]));
    if (params)
        json_object_set_new(info, "parameter", params);
    return alert;
}

/* Publish message `m` of episode *w (a working copy: on SK_SENT it is
 * advanced to name this message). */
static sk_outcome_t
send_msg(sk_alerts_t *a, astate_t *w, const msg_t *m, const char *series_id,
         const json_t *series, const char *date, const char *value,
         const char *rule, sk_emit_fn emit, void *ctx)
{
    char sent[SENT_BUF], stamp[20], identifier[REF_BUF];
    astate_t next = *w;
    now_cap(sent, sizeof sent, stamp, sizeof stamp);
    if (!strcmp(m->msg_type, "Alert")) {
        next.episode++;
        next.n = 0;
        copy_str(next.stamp, sizeof next.stamp, stamp);
    }
    next.n++;
    snprintf(identifier, sizeof identifier, "%s.%s.%u-%s.%u", a->instance,
             series_id, next.episode, next.stamp, next.n);
    if (!strcmp(m->msg_type, "Alert")) {
        copy_str(next.first_id, sizeof next.first_id, identifier);
        copy_str(next.first_sent, sizeof next.first_sent, sent);
        copy_str(next.last_id, sizeof next.last_id, identifier);
        copy_str(next.last_sent, sizeof next.last_sent, sent);
    }
    json_t *j = cap_json(a, &next, m, identifier, sent, series, date, value,
                         rule);
    char *data = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!data)
        return SK_RETRY;
    sk_event_t ev = { next.channel, m->kind, series_id, data };
    sk_outcome_t o = emit(ctx, &ev);
    free(data);
    if (o == SK_SENT) {
        copy_str(next.last_id, sizeof next.last_id, identifier);
        copy_str(next.last_sent, sizeof next.last_sent, sent);
        copy_str(next.severity, sizeof next.severity, m->severity);
        *w = next;
    }
    return o;
}

/* ------------------------------------------------------------ apply -- */

static int
past(const rule_t *r, int i, double v, double shift)
{
    double t = r->levels[i].threshold + (r->below ? shift : -shift);
    if (r->below)
        return r->inclusive ? v <= t : v < t;
    return r->inclusive ? v >= t : v > t;
}

static int
target_level(const rule_t *r, int current, double v)
{
    int up = 0, keep = 0;
    for (int i = 0; i < r->n_levels; i++)
        if (past(r, i, v, 0))
            up = i + 1;
    if (up > current)
        return up;
    for (int i = 0; i < current && i < r->n_levels; i++)
        if (past(r, i, v, r->band))
            keep = i + 1;
    return keep;
}

static const json_t *
find_series(const sk_entry_t *const *view, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (view[i]->kind == SK_INDICATOR && !strcmp(view[i]->id, id))
            return view[i]->obj;
    return NULL;
}

static void
describe(msg_t *m, const rule_t *r, const astate_t *w, int from, int to,
         const json_t *series, const char *date, const char *value)
{
    char thr[40], clr[40];
    const char *title = json_string_value(json_object_get(series, "title"));
    const char *unit = json_string_value(json_object_get(series, "unit"));
    const char *op = r->below ? (r->inclusive ? "<=" : "<")
                              : (r->inclusive ? ">=" : ">");
    int lv = to > 0 ? to : from;
    fmt_num(r->levels[lv - 1].threshold, thr, sizeof thr);
    if (r->has_clear)
        fmt_num(r->clear, clr, sizeof clr);
    else
        fmt_num(r->levels[0].threshold, clr, sizeof clr);
    if (to > 0) {
        snprintf(m->headline, sizeof m->headline, "%s: %.120s at %s %.20s",
                 m->severity, title, value, unit);
        int k = snprintf(m->description, sizeof m->description,
                         "On %s %s was %s %s, past the %s threshold (%s %s)",
                         date, r->series, value, unit, m->severity, op, thr);
        if (k > 0 && (size_t)k < sizeof m->description) {
            if (from > 0)
                snprintf(m->description + k, sizeof m->description - (size_t)k,
                         "; was %s.", w->severity);
            else
                snprintf(m->description + k, sizeof m->description - (size_t)k,
                         ". It clears when the value is no longer %s %s%s.",
                         op, clr, r->for_n > 1 ? " for the required number "
                         "of observations" : "");
        }
    } else {
        snprintf(m->headline, sizeof m->headline, "Cleared: %.120s back at "
                 "%s %.20s", title, value, unit);
        snprintf(m->description, sizeof m->description,
                 "On %s %s was %s %s: back to normal (no longer %s %s). The "
                 "%s alert is cancelled.", date, r->series, value, unit, op,
                 clr, w->severity);
        snprintf(m->note, sizeof m->note, "Back to normal: %s %s on %s",
                 value, unit, date);
    }
}

/* Run rule `i` over its series' new observations. Returns messages sent
 * (>= 0); sets *retry when a message was not sent. */
static long
run_rule(sk_alerts_t *a, size_t i, const sk_entry_t *const *view, size_t n,
         sk_emit_fn emit, sk_granted_fn granted, void *ctx,
         const sk_log_t *lg, int *retry)
{
    const rule_t *r = &a->rules->r[i];
    slot_t *slot = &a->slots[i];
    const json_t *series = find_series(view, n, r->series);
    if (!series) {
        if (!slot->noted_missing)
            SK_LOG(lg, SC_LOG_WARN, "alert rule \"%s\": no indicator series "
                   "\"%s\" in the register; the rule waits for it", r->text,
                   r->series);
        slot->noted_missing = 1;
        return 0;
    }
    slot->noted_missing = 0;
    char channel[SK_CHANNEL_BUF];
    if (sk_channel(a->sector, SK_INDICATOR, sk_entry_subsector(series),
                   channel, sizeof channel) < 0)
        return 0; /* cannot happen: subsectors are checked */
    astate_t w = slot->st;
    if (w.level > 0)
        copy_str(channel, sizeof channel, w.channel); /* episode's channel */
    if (!granted(ctx, channel)) {
        if (!slot->noted_grant)
            SK_LOG(lg, SC_LOG_ERROR, "alert rule \"%s\": channel %s is not "
                   "granted to this plugin; the rule is inactive", r->text,
                   channel);
        slot->noted_grant = 1;
        return 0;
    }
    slot->noted_grant = 0;

    const json_t *obs = json_object_get(series, "observations");
    const char *event = json_string_value(json_object_get(series, "event"));
    if (!event)
        event = json_string_value(json_object_get(series, "title"));
    long sent = 0;
    int dirty = 0;
    size_t k;
    const json_t *o;
    json_array_foreach(obs, k, o) {
        const char *date = json_string_value(json_object_get(o, "date"));
        double v = json_number_value(json_object_get(o, "value"));
        if (w.date[0] && strcmp(date, w.date) <= 0)
            continue;
        int want = target_level(r, w.level, v);
        if (want == w.level) {
            w.streak = 0;
            w.dir = 0;
            w.target = 0;
        } else {
            int dir = want > w.level ? 1 : -1;
            if (dir == w.dir) {
                w.streak++;
                w.target = dir > 0 ? (want < w.target ? want : w.target)
                                   : (want > w.target ? want : w.target);
            } else {
                w.streak = 1;
                w.dir = dir;
                w.target = want;
            }
        }
        if (w.streak >= r->for_n && w.dir != 0) {
            int from = w.level, to = w.target;
            char value[40];
            msg_t m;
            memset(&m, 0, sizeof m);
            fmt_num(v, value, sizeof value);
            if (from == 0) {
                m.msg_type = "Alert";
                m.kind = "alert.raised";
                copy_str(w.channel, sizeof w.channel, channel);
                copy_str(w.event, sizeof w.event, event);
                copy_str(w.category, sizeof w.category, r->category);
            } else if (to > 0) {
                m.msg_type = "Update";
                m.kind = "alert.updated";
            } else {
                m.msg_type = "Cancel";
                m.kind = "alert.cleared";
            }
            if (to > 0) {
                m.severity = cap_severity[r->levels[to - 1].severity];
                m.urgency = r->urgency;
                m.certainty = r->certainty;
                m.response = "Monitor";
            } else {
                m.severity = "Minor";
                m.urgency = "Past";
                m.certainty = "Observed";
                m.response = "AllClear";
            }
            m.category = w.category[0] ? w.category : r->category;
            describe(&m, r, &w, from, to, series, date, value);
            sk_outcome_t out = send_msg(a, &w, &m, r->series, series, date,
                                        value, r->text, emit, ctx);
            if (out != SK_SENT) {
                /* leave this observation for the next apply */
                *retry = 1;
                if (dirty)
                    save_state(a, r->series, &slot->st);
                return sent;
            }
            w.level = to;
            w.streak = 0;
            w.dir = 0;
            w.target = 0;
            copy_str(w.date, sizeof w.date, date);
            if (to == 0)
                w.channel[0] = '\0';
            slot->st = w;
            save_state(a, r->series, &w);
            dirty = 0;
            sent++;
            continue;
        }
        copy_str(w.date, sizeof w.date, date);
        slot->st = w;
        dirty = 1;
    }
    if (dirty)
        save_state(a, r->series, &slot->st);
    return sent;
}

/* Cancel a raised alert whose rule is gone from the configuration. */
static long
cancel_orphans(sk_alerts_t *a, sk_emit_fn emit, sk_granted_fn granted,
               void *ctx, const sk_log_t *lg, int *retry)
{
    const char *series;
    json_t *j, *tmp;
    long sent = 0;
    json_object_foreach_safe(a->orphans, tmp, series, j) {
        astate_t s;
        if (state_from_json(j, &s) < 0 || s.level == 0) {
            sk_store_put(a->store, "alert", series, NULL);
            json_object_del(a->orphans, series);
            continue;
        }
        sk_outcome_t o = SK_DROPPED;
        if (granted(ctx, s.channel)) {
            msg_t m;
            memset(&m, 0, sizeof m);
            m.msg_type = "Cancel";
            m.kind = "alert.cleared";
            m.severity = "Minor";
            m.urgency = "Past";
            m.certainty = "Unknown";
            m.response = "AllClear";
            m.category = lookup(s.category, sk_cap_category) >= 0 ? s.category
                                                               : "Other";
            snprintf(m.headline, sizeof m.headline, "Cancelled: %.150s",
                     s.event);
            snprintf(m.description, sizeof m.description, "The alert rule "
                     "for series %s was removed from the configuration; its "
                     "%s alert is cancelled.", series, s.severity);
            snprintf(m.note, sizeof m.note, "alert rule removed");
            o = send_msg(a, &s, &m, series, NULL, NULL, NULL, NULL, emit,
                         ctx);
        }
        if (o == SK_RETRY) {
            *retry = 1;
            continue;
        }
        SK_LOG(lg, o == SK_SENT ? SC_LOG_INFO : SC_LOG_WARN, "alert for "
               "series %s had no rule any more: %s", series,
               o == SK_SENT ? "cancelled" : "forgotten (its channel is not "
               "granted)");
        if (o == SK_SENT)
            sent++;
        sk_store_put(a->store, "alert", series, NULL);
        json_object_del(a->orphans, series);
    }
    return sent;
}

long
sk_alerts_apply(sk_alerts_t *a, const sk_entry_t *const *view, size_t n,
                sk_emit_fn emit, sk_granted_fn granted, void *ctx,
                const sk_log_t *lg, int *retry)
{
    int again = 0;
    long sent = cancel_orphans(a, emit, granted, ctx, lg, &again);
    for (size_t i = 0; i < a->rules->n; i++)
        sent += run_rule(a, i, view, n, emit, granted, ctx, lg, &again);
    if (retry)
        *retry = again;
    return sent;
}
