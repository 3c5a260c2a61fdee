/*
 * known.c - what subscribers were last told about each entry, and the diff
 * that turns a new view of the register into events.
 *
 * The diff runs in two steps so that the memory is never half updated:
 * first every event and every new record is computed (this is where
 * memory can run out), then the events are emitted and the records
 * applied, which cannot fail.
 */
#include "known.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "entry.h"

struct en_known {
    json_t *map[EN_KINDS]; /* id -> {"sub","state","data","file","pos"} */
};

typedef struct pending {
    char *file;       /* place in the register, for ordering */
    size_t pos;
    int present;      /* 0: a gone entry (sorts first at one place) */
    size_t seq;       /* order of creation: keeps the sort stable */
    char channel[EN_CHANNEL_BUF];
    const char *kind; /* static text from en_event_kind() */
    char *key;
    char *data;
} pending_t;

typedef struct diff {
    pending_t *ev;
    size_t n, cap;
} diff_t;

en_known_t *
en_known_new(void)
{
    en_known_t *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    for (int i = 0; i < EN_KINDS; i++)
        if (!(k->map[i] = json_object())) {
            en_known_destroy(&k);
            return NULL;
        }
    return k;
}

void
en_known_destroy(en_known_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (int i = 0; i < EN_KINDS; i++)
        json_decref((*self_p)->map[i]);
    free(*self_p);
    *self_p = NULL;
}

size_t
en_known_count(const en_known_t *k)
{
    size_t n = 0;
    for (int i = 0; i < EN_KINDS; i++)
        n += json_object_size(k->map[i]);
    return n;
}

static const char *
rec_str(const json_t *rec, const char *name)
{
    return json_string_value(json_object_get(rec, name));
}

static void
diff_free(diff_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->ev[i].file);
        free(d->ev[i].key);
        free(d->ev[i].data);
    }
    free(d->ev);
}

/* Add an event; `data` is copied. Returns 0 or -1. */
static int
diff_add(diff_t *d, const char *file, size_t pos, int present,
         en_kind_t kind, const char *subsector, const char *event_kind,
         const char *key, const char *data)
{
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 32;
        pending_t *p = realloc(d->ev, ncap * sizeof *p);
        if (!p)
            return -1;
        d->ev = p;
        d->cap = ncap;
    }
    pending_t *e = &d->ev[d->n];
    memset(e, 0, sizeof *e);
    if (en_channel(e->channel, sizeof e->channel, kind, subsector) < 0)
        return -1; /* cannot happen: subsectors are checked */
    e->file = strdup(file);
    e->key = strdup(key);
    e->data = strdup(data);
    if (!e->file || !e->key || !e->data) {
        free(e->file);
        free(e->key);
        free(e->data);
        return -1;
    }
    e->pos = pos;
    e->present = present;
    e->seq = d->n;
    e->kind = event_kind;
    d->n++;
    return 0;
}

static int
cmp_pending(const void *a, const void *b)
{
    const pending_t *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    if (x->present != y->present)
        return x->present - y->present;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static json_t *
make_record(const en_entry_t *e, const char *canon)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}",
                     "sub", en_entry_subsector(e->obj),
                     "state", en_entry_state(e->kind, e->obj),
                     "data", canon,
                     "file", e->file,
                     "pos", (json_int_t)e->pos);
}

long
en_known_apply(en_known_t *k, const en_entry_t *const *view, size_t n,
               int quiet, en_emit_fn emit, void *ctx)
{
    diff_t d = { NULL, 0, 0 };
    json_t *next[EN_KINDS] = { json_object(), json_object() };
    long rc = -1;
    if (!next[0] || !next[1])
        goto out;

    /* 1. entries in the view: new or changed */
    for (size_t i = 0; i < n; i++) {
        const en_entry_t *e = view[i];
        const char *sub = en_entry_subsector(e->obj);
        const char *state = en_entry_state(e->kind, e->obj);
        char *canon = json_dumps(e->obj, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *rec = canon ? make_record(e, canon) : NULL;
        int bad = !rec || json_object_set_new(next[e->kind], e->id, rec) < 0;
        const json_t *old = json_object_get(k->map[e->kind], e->id);
        if (!bad && !old) {
            bad = diff_add(&d, e->file, e->pos, 1, e->kind, sub,
                           en_event_kind(e->kind, NULL, state), e->id,
                           canon);
        } else if (!bad && strcmp(rec_str(old, "sub"), sub) != 0) {
            /* moved to another subsector: gone there, new here */
            bad = diff_add(&d, e->file, e->pos, 1, e->kind,
                           rec_str(old, "sub"),
                           en_event_kind(e->kind, rec_str(old, "state"),
                                         NULL),
                           e->id, rec_str(old, "data")) ||
                  diff_add(&d, e->file, e->pos, 1, e->kind, sub,
                           en_event_kind(e->kind, NULL, state), e->id,
                           canon);
        } else if (!bad && strcmp(rec_str(old, "data"), canon) != 0) {
            bad = diff_add(&d, e->file, e->pos, 1, e->kind, sub,
                           en_event_kind(e->kind, rec_str(old, "state"),
                                         state),
                           e->id, canon);
        }
        free(canon);
        if (bad)
            goto out;
    }

    /* 2. remembered entries no longer in the view: gone */
    for (int kind = 0; kind < EN_KINDS; kind++) {
        const char *id;
        json_t *old;
        json_object_foreach(k->map[kind], id, old) {
            if (json_object_get(next[kind], id))
                continue;
            if (diff_add(&d, rec_str(old, "file"),
                         (size_t)json_integer_value(json_object_get(old,
                                                                    "pos")),
                         0, (en_kind_t)kind, rec_str(old, "sub"),
                         en_event_kind((en_kind_t)kind,
                                       rec_str(old, "state"), NULL),
                         id, rec_str(old, "data")) < 0)
                goto out;
        }
    }

    /* 3. emit in register order, then switch to the new memory */
    if (d.n)
        qsort(d.ev, d.n, sizeof *d.ev, cmp_pending);
    for (size_t i = 0; i < d.n && !quiet; i++) {
        en_event_t ev = { d.ev[i].channel, d.ev[i].kind, d.ev[i].key,
                          d.ev[i].data };
        emit(ctx, &ev);
    }
    for (int kind = 0; kind < EN_KINDS; kind++) {
        json_decref(k->map[kind]);
        k->map[kind] = next[kind];
        next[kind] = NULL;
    }
    rc = (long)d.n;
out:
    json_decref(next[0]);
    json_decref(next[1]);
    diff_free(&d);
    return rc;
}
