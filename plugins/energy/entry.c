/*
 * entry.c - the schema of one register entry and the event kinds.
 *
 * An entry is a JSON object. Members checked here must have the type and
 * values below; any other member is allowed and published unchanged, so a
 * register can carry more than this plugin knows about.
 *
 *   both kinds   id (string, [A-Za-z0-9][A-Za-z0-9._-]{0,63}), subsector
 *                ("hydrogen" | "nuclear" | "lng"), title (non-empty
 *                string), owners (object: side -> array of organisation
 *                names, at least one name in all), optional milestones
 *                (array of {title, due: date, status?}), optional dates
 *                updated / start, optional notes (string)
 *   task         status (planned | in-progress | at-risk | on-hold |
 *                completed | cancelled | closed), optional track (string),
 *                optional related_standards (array of ids)
 *   standard     stage (proposal | working-draft | committee-draft |
 *                enquiry | approval | published | withdrawn), body
 *                (non-empty string), optional reference (string), optional
 *                target_date (date), optional related_tasks (array of ids)
 *
 * Dates are "YYYY-MM-DD" and must exist in the calendar.
 */
#include "entry.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const subsectors[] = { "hydrogen", "nuclear", "lng",
                                          NULL };
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
en_kind_array(en_kind_t kind)
{
    return kind == EN_TASK ? "tasks" : "standards";
}

static int
in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return 1;
    return 0;
}

/* "a, b, c" of a NULL-terminated list, into buf. */
static const char *
join(const char *const *list, char *buf, size_t len)
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

int
en_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > EN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

static int
date_valid(const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
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
want_enum(check_t *c, const json_t *obj, const char *name,
          const char *const *allowed)
{
    char buf[256];
    if (want_string(c, obj, name, 1, 1) < 0)
        return -1;
    const char *s = json_string_value(json_object_get(obj, name));
    if (!in_list(s, allowed))
        return fail(c, "\"%s\": \"%.64s\" is not one of: %s", name, s,
                    join(allowed, buf, sizeof buf));
    return 0;
}

static int
want_date(check_t *c, const json_t *obj, const char *name, int required,
          const char *where)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return required ? fail(c, "%smissing \"%s\"", where, name) : 0;
    if (!json_is_string(v) || !date_valid(json_string_value(v)))
        return fail(c, "%s\"%s\" must be a date YYYY-MM-DD", where, name);
    return 0;
}

/* Optional member `name`: an array of non-empty strings. */
static int
want_string_array(check_t *c, const json_t *obj, const char *name,
                  const char *where)
{
    const json_t *v = json_object_get(obj, name);
    size_t i;
    const json_t *s;
    if (!v)
        return 0;
    if (!json_is_array(v))
        return fail(c, "%s\"%s\" must be an array of strings", where, name);
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0)
            return fail(c, "%s\"%s\"[%zu] must be a non-empty string",
                        where, name, i);
    }
    return 0;
}

static int
check_owners(check_t *c, const json_t *obj)
{
    const json_t *owners = json_object_get(obj, "owners");
    const char *side;
    const json_t *list;
    size_t total = 0;
    const char *where = "\"owners\".";
    if (!owners)
        return fail(c, "missing \"owners\"");
    if (!json_is_object(owners))
        return fail(c, "\"owners\" must be an object of sides (\"kr\", "
                    "\"us\") to arrays of organisations");
    json_object_foreach((json_t *)owners, side, list) {
        if (!json_is_array(list))
            return fail(c, "\"owners\".\"%.32s\" must be an array of "
                        "organisations", side);
        if (want_string_array(c, owners, side, where) < 0)
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
                        join(milestone_statuses, buf, sizeof buf));
        }
    }
    return 0;
}

int
en_entry_check(en_kind_t kind, const json_t *obj, char *why, size_t whylen)
{
    check_t c = { why, whylen };
    if (!json_is_object(obj))
        return fail(&c, "must be an object");
    if (want_string(&c, obj, "id", 1, 1) < 0)
        return -1;
    if (!en_id_valid(json_string_value(json_object_get(obj, "id"))))
        return fail(&c, "\"id\" must match [A-Za-z0-9][A-Za-z0-9._-]{0,%d}",
                    EN_ID_MAX - 1);
    if (want_enum(&c, obj, "subsector", subsectors) < 0 ||
        want_string(&c, obj, "title", 1, 1) < 0 ||
        check_owners(&c, obj) < 0 ||
        check_milestones(&c, obj) < 0 ||
        want_date(&c, obj, "updated", 0, "") < 0 ||
        want_date(&c, obj, "start", 0, "") < 0 ||
        want_string(&c, obj, "notes", 0, 0) < 0)
        return -1;
    if (kind == EN_TASK) {
        if (want_enum(&c, obj, "status", task_statuses) < 0 ||
            want_string(&c, obj, "track", 0, 1) < 0 ||
            want_string_array(&c, obj, "related_standards", "") < 0)
            return -1;
    } else {
        if (want_enum(&c, obj, "stage", standard_stages) < 0 ||
            want_string(&c, obj, "body", 1, 1) < 0 ||
            want_string(&c, obj, "reference", 0, 1) < 0 ||
            want_date(&c, obj, "target_date", 0, "") < 0 ||
            want_string_array(&c, obj, "related_tasks", "") < 0)
            return -1;
    }
    return 0;
}

const char *
en_entry_id(const json_t *obj)
{
    return json_string_value(json_object_get(obj, "id"));
}

const char *
en_entry_subsector(const json_t *obj)
{
    return json_string_value(json_object_get(obj, "subsector"));
}

const char *
en_entry_state(en_kind_t kind, const json_t *obj)
{
    return json_string_value(
        json_object_get(obj, kind == EN_TASK ? "status" : "stage"));
}

int
en_channel(char *buf, size_t len, en_kind_t kind, const char *subsector)
{
    int n = snprintf(buf, len, "energy.%s.%s", subsector,
                     en_kind_array(kind));
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

const char *
en_event_kind(en_kind_t kind, const char *old_state, const char *new_state)
{
    if (kind == EN_TASK) {
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
