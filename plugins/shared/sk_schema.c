/*
 * sk_schema.c - the schema of one register entry and the event kinds.
 *
 * An entry is a JSON object. Members checked here must have the type and
 * values below; any other member is allowed and published unchanged, so a
 * register can carry more than the plugin knows about.
 *
 *   task, standard  id (string, [A-Za-z0-9][A-Za-z0-9._-]{0,63}),
 *                subsector (one of the sector's), title (non-empty
 *                string), owners (object: side -> array of organisation
 *                names, at least one name in all), optional milestones
 *                (array of {title, due: date, status?}), optional dates
 *                updated / start, optional notes (string)
 *   task         status (planned | in-progress | at-risk | on-hold |
 *                completed | cancelled | closed), optional track (one of
 *                the sector's tracks), optional related_standards (array
 *                of ids)
 *   standard     stage (proposal | working-draft | committee-draft |
 *                enquiry | approval | published | withdrawn), body
 *                (non-empty string), optional reference (string), optional
 *                target_date (date), optional related_tasks (array of ids)
 *   indicator    id ([a-z0-9][a-z0-9_-]{0,63}, the name alert rules use),
 *                subsector, title, unit (non-empty string), observations
 *                (array of {date, value: number}, dates strictly
 *                increasing), optional owners, source, event, area
 *                (non-empty strings), updated (date), notes
 *   every kind   the sector's own members (sk_sector_t.fields)
 *
 * Dates are "YYYY-MM-DD" and must exist in the calendar.
 */
#include "sk_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const task_statuses[] = {
    "planned", "in-progress", "at-risk", "on-hold", "completed",
    "cancelled", "closed", NULL
};
/* statuses after which a task is over: its event is task.closed */
static const char *const task_closed[] = { "completed", "cancelled",
                                           "closed", NULL };
static const char *const standard_stages[] = {
    "proposal", "working-draft", "committee-draft", "enquiry", "approval",
    "published", "withdrawn", NULL
};
static const char *const milestone_statuses[] = { "pending", "done", "late",
                                                  "dropped", NULL };

const char *
sk_kind_array(sk_kind_t kind)
{
    switch (kind) {
    case SK_TASK: return "tasks";
    case SK_STANDARD: return "standards";
    case SK_INDICATOR: return "indicators";
    }
    return "?";
}

static int
in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return 1;
    return 0;
}

const char *
sk_join(const char *const *list, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; *list && used < len; list++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                         *list);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

static int
id_chars(const char *id, int lower_only, const char *punct)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > SK_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (!lower_only && c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || !strchr(punct, c)))
            return 0;
    }
    return 1;
}

int
sk_id_valid(const char *id)
{
    return id_chars(id, 0, "._-");
}

int
sk_series_id_valid(const char *id)
{
    return id_chars(id, 1, "_-");
}

int
sk_date_valid(const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
            (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

/* The checker carries the reason of the first problem. */
typedef struct check {
    char *why;
    size_t len;
} check_t;

static int
fail(check_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(check_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Member `name` must be a string (non-empty if `nonempty`). `required`:
 * missing is an error. */
static int
want_string(check_t *c, const json_t *obj, const char *name, int required,
            int nonempty)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return required ? fail(c, "missing \"%s\"", name) : 0;
    if (!json_is_string(v))
        return fail(c, "\"%s\" must be a string", name);
    if (nonempty && json_string_length(v) == 0)
        return fail(c, "\"%s\" must not be empty", name);
    return 0;
}

static int
want_enum(check_t *c, const json_t *obj, const char *name, int required,
          const char *const *allowed)
{
    char buf[512];
    if (want_string(c, obj, name, required, 1) < 0)
        return -1;
    const char *s = json_string_value(json_object_get(obj, name));
    if (s && !in_list(s, allowed))
        return fail(c, "\"%s\": \"%.64s\" is not one of: %s", name, s,
                    sk_join(allowed, buf, sizeof buf));
    return 0;
}

static int
want_date(check_t *c, const json_t *obj, const char *name, int required,
          const char *where)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return required ? fail(c, "%smissing \"%s\"", where, name) : 0;
    if (!json_is_string(v) || !sk_date_valid(json_string_value(v)))
        return fail(c, "%s\"%s\" must be a date YYYY-MM-DD", where, name);
    return 0;
}

/* Member `name`: an array of non-empty strings; with `allowed`, each one
 * of those, at most once. */
static int
want_string_array(check_t *c, const json_t *obj, const char *name,
                  int required, const char *const *allowed,
                  const char *where)
{
    const json_t *v = json_object_get(obj, name);
    size_t i;
    const json_t *s;
    if (!v)
        return required ? fail(c, "%smissing \"%s\"", where, name) : 0;
    if (!json_is_array(v))
        return fail(c, "%s\"%s\" must be an array of strings", where, name);
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0)
            return fail(c, "%s\"%s\"[%zu] must be a non-empty string",
                        where, name, i);
        if (!allowed)
            continue;
        char buf[512];
        const char *str = json_string_value(s);
        if (!in_list(str, allowed))
            return fail(c, "%s\"%s\"[%zu]: \"%.64s\" is not one of: %s",
                        where, name, i, str,
                        sk_join(allowed, buf, sizeof buf));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(json_string_value(json_array_get(v, j)), str))
                return fail(c, "%s\"%s\"[%zu]: \"%.64s\" is listed twice",
                            where, name, i, str);
    }
    return 0;
}

static int
check_owners(check_t *c, const json_t *obj, int required)
{
    const json_t *owners = json_object_get(obj, "owners");
    const char *side;
    const json_t *list;
    size_t total = 0;
    const char *where = "\"owners\".";
    if (!owners)
        return required ? fail(c, "missing \"owners\"") : 0;
    if (!json_is_object(owners))
        return fail(c, "\"owners\" must be an object of sides (\"kr\", "
                    "\"us\") to arrays of organisations");
    json_object_foreach((json_t *)owners, side, list) {
        if (!json_is_array(list))
            return fail(c, "\"owners\".\"%.32s\" must be an array of "
                        "organisations", side);
        if (want_string_array(c, owners, side, 0, NULL, where) < 0)
            return -1;
        total += json_array_size(list);
    }
    if (total == 0)
        return fail(c, "\"owners\" names no organisation");
    return 0;
}

static int
check_milestones(check_t *c, const json_t *obj)
{
    const json_t *ms = json_object_get(obj, "milestones");
    size_t i;
    const json_t *m;
    char where[48];
    if (!ms)
        return 0;
    if (!json_is_array(ms))
        return fail(c, "\"milestones\" must be an array");
    json_array_foreach(ms, i, m) {
        snprintf(where, sizeof where, "\"milestones\"[%zu]: ", i);
        if (!json_is_object(m))
            return fail(c, "%smust be an object", where);
        const json_t *t = json_object_get(m, "title");
        if (!json_is_string(t) || json_string_length(t) == 0)
            return fail(c, "%s\"title\" must be a non-empty string", where);
        if (want_date(c, m, "due", 1, where) < 0)
            return -1;
        const json_t *st = json_object_get(m, "status");
        if (st && (!json_is_string(st) ||
                   !in_list(json_string_value(st), milestone_statuses))) {
            char buf[128];
            return fail(c, "%s\"status\" must be one of: %s", where,
                        sk_join(milestone_statuses, buf, sizeof buf));
        }
    }
    return 0;
}

static int
check_observations(check_t *c, const json_t *obj)
{
    const json_t *obs = json_object_get(obj, "observations");
    size_t i;
    const json_t *o;
    const char *prev = NULL;
    char where[48];
    if (!obs)
        return fail(c, "missing \"observations\"");
    if (!json_is_array(obs))
        return fail(c, "\"observations\" must be an array of {\"date\", "
                    "\"value\"}");
    json_array_foreach(obs, i, o) {
        snprintf(where, sizeof where, "\"observations\"[%zu]: ", i);
        if (!json_is_object(o))
            return fail(c, "%smust be an object", where);
        if (want_date(c, o, "date", 1, where) < 0)
            return -1;
        const char *date = json_string_value(json_object_get(o, "date"));
        if (prev && strcmp(date, prev) <= 0)
            return fail(c, "%s\"date\" %s is not after the one before (%s)",
                        where, date, prev);
        prev = date;
        const json_t *v = json_object_get(o, "value");
        if (!v)
            return fail(c, "%smissing \"value\"", where);
        if (!json_is_number(v))
            return fail(c, "%s\"value\" must be a number", where);
    }
    return 0;
}

static int
check_fields(check_t *c, const sk_sector_t *sector, sk_kind_t kind,
             const json_t *obj)
{
    const sk_field_t *f = sector->fields;
    for (; f && f->name; f++) {
        if (!(f->kinds & (1u << kind)))
            continue;
        const json_t *v = json_object_get(obj, f->name);
        int rc = 0;
        switch (f->type) {
        case SK_F_STRING:
            rc = want_string(c, obj, f->name, f->required, 1);
            break;
        case SK_F_ENUM:
            rc = want_enum(c, obj, f->name, f->required, f->values);
            break;
        case SK_F_STRINGS:
            rc = want_string_array(c, obj, f->name, f->required, NULL, "");
            break;
        case SK_F_ENUMS:
            rc = want_string_array(c, obj, f->name, f->required, f->values,
                                   "");
            break;
        case SK_F_DATE:
            rc = want_date(c, obj, f->name, f->required, "");
            break;
        case SK_F_NUMBER:
            if (!v)
                rc = f->required ? fail(c, "missing \"%s\"", f->name) : 0;
            else if (!json_is_number(v))
                rc = fail(c, "\"%s\" must be a number", f->name);
            break;
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

int
sk_entry_check(const sk_sector_t *sector, sk_kind_t kind, const json_t *obj,
               char *why, size_t whylen)
{
    check_t c = { why, whylen };
    if (!json_is_object(obj))
        return fail(&c, "must be an object");
    if (want_string(&c, obj, "id", 1, 1) < 0)
        return -1;
    const char *id = json_string_value(json_object_get(obj, "id"));
    if (kind == SK_INDICATOR) {
        if (!sk_series_id_valid(id))
            return fail(&c, "\"id\" of a series must match "
                        "[a-z0-9][a-z0-9_-]{0,%d}", SK_ID_MAX - 1);
    } else if (!sk_id_valid(id)) {
        return fail(&c, "\"id\" must match [A-Za-z0-9][A-Za-z0-9._-]{0,%d}",
                    SK_ID_MAX - 1);
    }
    if (want_enum(&c, obj, "subsector", 1, sector->subsectors) < 0 ||
        want_string(&c, obj, "title", 1, 1) < 0 ||
        check_owners(&c, obj, kind != SK_INDICATOR) < 0 ||
        want_date(&c, obj, "updated", 0, "") < 0 ||
        want_string(&c, obj, "notes", 0, 0) < 0)
        return -1;
    switch (kind) {
    case SK_TASK:
        if (check_milestones(&c, obj) < 0 ||
            want_date(&c, obj, "start", 0, "") < 0 ||
            want_enum(&c, obj, "status", 1, task_statuses) < 0 ||
            (sector->tracks
                 ? want_enum(&c, obj, "track", 0, sector->tracks)
                 : want_string(&c, obj, "track", 0, 1)) < 0 ||
            want_string_array(&c, obj, "related_standards", 0, NULL, "") < 0)
            return -1;
        break;
    case SK_STANDARD:
        if (check_milestones(&c, obj) < 0 ||
            want_date(&c, obj, "start", 0, "") < 0 ||
            want_enum(&c, obj, "stage", 1, standard_stages) < 0 ||
            want_string(&c, obj, "body", 1, 1) < 0 ||
            want_string(&c, obj, "reference", 0, 1) < 0 ||
            want_date(&c, obj, "target_date", 0, "") < 0 ||
            want_string_array(&c, obj, "related_tasks", 0, NULL, "") < 0)
            return -1;
        break;
    case SK_INDICATOR:
        if (want_string(&c, obj, "unit", 1, 1) < 0 ||
            want_string(&c, obj, "source", 0, 1) < 0 ||
            want_string(&c, obj, "event", 0, 1) < 0 ||
            want_string(&c, obj, "area", 0, 1) < 0 ||
            check_observations(&c, obj) < 0)
            return -1;
        break;
    }
    return check_fields(&c, sector, kind, obj);
}

const char *
sk_entry_id(const json_t *obj)
{
    return json_string_value(json_object_get(obj, "id"));
}

const char *
sk_entry_subsector(const json_t *obj)
{
    return json_string_value(json_object_get(obj, "subsector"));
}

const char *
sk_entry_state(sk_kind_t kind, const json_t *obj)
{
    if (kind == SK_INDICATOR)
        return NULL;
    return json_string_value(
        json_object_get(obj, kind == SK_TASK ? "status" : "stage"));
}

/* A channel name: [a-z0-9-]+ segments joined by '.'. */
static int
channel_ok(const char *s)
{
    int seg = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (!seg)
                return 0;
            seg = 0;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                   *s == '-') {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

int
sk_channel(const sk_sector_t *sector, sk_kind_t kind, const char *subsector,
           char *buf, size_t len)
{
    const char *pat = sector->channels[kind];
    const char *star = pat ? strchr(pat, '*') : NULL;
    if (!pat || !subsector || len == 0)
        return -1;
    int n = star ? snprintf(buf, len, "%.*s%s%s", (int)(star - pat), pat,
                            subsector, star + 1)
                 : snprintf(buf, len, "%s", pat);
    if (n < 0 || (size_t)n >= len || !channel_ok(buf))
        return -1;
    return 0;
}

const char *
sk_event_kind(sk_kind_t kind, const char *old_state, const char *new_state)
{
    if (kind == SK_TASK) {
        if (!new_state)
            return "task.closed";
        int now_closed = in_list(new_state, task_closed);
        if (!old_state)
            return now_closed ? "task.closed" : "task.created";
        /* closing is news once; edits of a closed task are updates */
        return now_closed && !in_list(old_state, task_closed)
                   ? "task.closed" : "task.updated";
    }
    if (!new_state)
        return "standard.withdrawn";
    int stage_moved = !old_state || strcmp(old_state, new_state) != 0;
    if (stage_moved && !strcmp(new_state, "published"))
        return "standard.published";
    if (stage_moved && !strcmp(new_state, "withdrawn"))
        return "standard.withdrawn";
    return old_state ? "standard.updated" : "standard.proposed";
}
