/*
 * sk_known.c - what subscribers were told about each task and standard,
 * and the diff that turns a new view of the register into events.
 *
 * An apply runs in two steps: first every event and the record it would
 * leave is computed (this is where memory can run out, and then nothing
 * changes), then the events are emitted one by one and each one's record
 * is committed according to what became of it. A record is
 *   {"sub","state","data","file","pos"}            in memory and store
 *   {...,"unsent":true}                            memory only (SK_DROPPED)
 */
#include "sk_known.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sk_schema.h"

/* families of the store keys, by kind */
static const char *const family[SK_ENTRY_KINDS] = { "task", "standard" };

struct sk_known {
    const sk_sector_t *sector;
    sk_store_t *store;
    json_t *map[SK_ENTRY_KINDS]; /* id -> record */
};

typedef struct pending {
    char *file;       /* place in the register, for ordering */
    size_t pos;
    int present;      /* 0: a gone entry (sorts first at one place) */
    size_t seq;       /* order of creation: keeps the sort stable */
    int after;        /* 1: emit only if the event made before this one
                         (a move's "gone") was not SK_RETRY */
    char channel[SK_CHANNEL_BUF];
    const char *kind; /* static text from sk_event_kind() */
    sk_kind_t ekind;
    char *key;
    char *data;
    json_t *rec;      /* record to commit; NULL = forget the entry */
} pending_t;

typedef struct diff {
    pending_t *ev;
    size_t n, cap;
} diff_t;

sk_known_t *
sk_known_new(const sk_sector_t *sector, sk_store_t *store)
{
    sk_known_t *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->sector = sector;
    k->store = store;
    for (int i = 0; i < SK_ENTRY_KINDS; i++)
        if (!(k->map[i] = json_object())) {
            sk_known_destroy(&k);
            return NULL;
        }
    return k;
}

void
sk_known_destroy(sk_known_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (int i = 0; i < SK_ENTRY_KINDS; i++)
        json_decref((*self_p)->map[i]);
    free(*self_p);
    *self_p = NULL;
}

size_t
sk_known_count(const sk_known_t *k)
{
    size_t n = 0;
    for (int i = 0; i < SK_ENTRY_KINDS; i++)
        n += json_object_size(k->map[i]);
    return n;
}

static const char *
rec_str(const json_t *rec, const char *name)
{
    return json_string_value(json_object_get(rec, name));
}

static int
rec_unsent(const json_t *rec)
{
    return json_is_true(json_object_get(rec, "unsent"));
}

/* ------------------------------------------------------------- load -- */

typedef struct loader {
    sk_known_t *k;
    const sk_log_t *lg;
    sk_kind_t kind;
    long n;
    int oom;
} loader_t;

static int
load_one(void *arg, const char *id, const char *value)
{
    loader_t *l = arg;
    json_error_t je;
    json_t *rec = json_loads(value, JSON_REJECT_DUPLICATES, &je);
    const char *sub = rec_str(rec, "sub");
    char ch[SK_CHANNEL_BUF];
    json_t *data = NULL;
    int ok = rec && json_is_object(rec) && sk_id_valid(id) && sub &&
             rec_str(rec, "state") && rec_str(rec, "data") &&
             sk_channel(l->k->sector, l->kind, sub, ch, sizeof ch) == 0 &&
             (data = json_loads(rec_str(rec, "data"), 0, &je)) &&
             json_is_object(data);
    json_decref(data);
    if (!ok) {
        SK_LOG(l->lg, SC_LOG_WARN, "plugin state: %s/%s is not a record "
               "this plugin can use; ignored (the entry counts as new)",
               family[l->kind], id);
        json_decref(rec);
        return 0;
    }
    if (!json_is_string(json_object_get(rec, "file")))
        json_object_set_new(rec, "file", json_string(""));
    if (!json_is_integer(json_object_get(rec, "pos")))
        json_object_set_new(rec, "pos", json_integer(0));
    json_object_del(rec, "unsent");
    if (json_object_set_new(l->k->map[l->kind], id, rec) < 0) {
        l->oom = 1;
        return 1;
    }
    l->n++;
    return 0;
}

long
sk_known_load(sk_known_t *k, const sk_log_t *lg)
{
    long total = 0;
    for (int kind = 0; kind < SK_ENTRY_KINDS; kind++) {
        loader_t l = { k, lg, (sk_kind_t)kind, 0, 0 };
        int rc = sk_store_foreach(k->store, family[kind], load_one, &l);
        if (rc != SC_OK || l.oom) {
            if (l.oom)
                SK_LOG(lg, SC_LOG_ERROR, "plugin state: out of memory "
                       "loading it");
            for (int i = 0; i < SK_ENTRY_KINDS; i++)
                json_object_clear(k->map[i]);
            return -1;
        }
        total += l.n;
    }
    return total;
}

/* ------------------------------------------------------------ apply -- */

static void
diff_free(diff_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->ev[i].file);
        free(d->ev[i].key);
        free(d->ev[i].data);
        json_decref(d->ev[i].rec);
    }
    free(d->ev);
}

/* Add an event; `data` is copied, `rec` (may be NULL) is stolen, also on
 * failure. Returns 0 or -1. */
static int
diff_add(diff_t *d, const sk_sector_t *sector, const char *file, size_t pos,
         int present, sk_kind_t kind, const char *subsector,
         const char *event_kind, const char *key, const char *data,
         json_t *rec, int after)
{
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 32;
        pending_t *p = realloc(d->ev, ncap * sizeof *p);
        if (!p) {
            json_decref(rec);
            return -1;
        }
        d->ev = p;
        d->cap = ncap;
    }
    pending_t *e = &d->ev[d->n];
    memset(e, 0, sizeof *e);
    if (sk_channel(sector, kind, subsector, e->channel, sizeof e->channel)
            < 0) {
        json_decref(rec); /* cannot happen: subsectors are checked */
        return -1;
    }
    e->file = strdup(file);
    e->key = strdup(key);
    e->data = strdup(data);
    if (!e->file || !e->key || !e->data) {
        free(e->file);
        free(e->key);
        free(e->data);
        json_decref(rec);
        return -1;
    }
    e->pos = pos;
    e->present = present;
    e->seq = d->n;
    e->after = after;
    e->kind = event_kind;
    e->ekind = kind;
    e->rec = rec;
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
make_record(const sk_entry_t *e, const char *canon)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}",
                     "sub", sk_entry_subsector(e->obj),
                     "state", sk_entry_state(e->kind, e->obj),
                     "data", canon,
                     "file", e->file,
                     "pos", (json_int_t)e->pos);
}

/* Commit the record of event `p` after outcome `o`. */
static void
commit(sk_known_t *k, pending_t *p, sk_outcome_t o)
{
    json_t *map = k->map[p->ekind];
    if (o == SK_RETRY)
        return;
    if (!p->rec) {
        json_object_del(map, p->key);
        if (o == SK_SENT)
            sk_store_put(k->store, family[p->ekind], p->key, NULL);
        return;
    }
    if (o == SK_SENT) {
        char *text = json_dumps(p->rec, JSON_COMPACT | JSON_SORT_KEYS);
        if (text)
            sk_store_put(k->store, family[p->ekind], p->key, text);
        free(text);
    } else {
        json_object_set_new(p->rec, "unsent", json_true());
    }
    json_object_set(map, p->key, p->rec);
}

long
sk_known_apply(sk_known_t *k, const sk_entry_t *const *view, size_t n,
               int quiet, sk_emit_fn emit, void *ctx, int *retry)
{
    diff_t d = { NULL, 0, 0 };
    json_t *seen[SK_ENTRY_KINDS] = { json_object(), json_object() };
    json_t *forget[SK_ENTRY_KINDS] = { json_array(), json_array() };
    sk_outcome_t *outcome = NULL;
    long rc = -1;
    for (int i = 0; i < SK_ENTRY_KINDS; i++)
        if (!seen[i] || !forget[i])
            goto out;

    /* 1. entries in the view: new or changed */
    for (size_t i = 0; i < n; i++) {
        const sk_entry_t *e = view[i];
        if ((int)e->kind >= SK_ENTRY_KINDS)
            continue;
        const char *sub = sk_entry_subsector(e->obj);
        const char *state = sk_entry_state(e->kind, e->obj);
        if (json_object_set_new(seen[e->kind], e->id, json_true()) < 0)
            goto out;
        char *canon = json_dumps(e->obj, JSON_COMPACT | JSON_SORT_KEYS);
        if (!canon)
            goto out;
        json_t *old = json_object_get(k->map[e->kind], e->id);
        int bad = 0;
        if (old && !strcmp(rec_str(old, "sub"), sub) &&
            !strcmp(rec_str(old, "data"), canon)) {
            /* no change: only its place may have moved (memory only) */
            json_object_set_new(old, "file", json_string(e->file));
            json_object_set_new(old, "pos", json_integer((json_int_t)e->pos));
        } else if (!old || rec_unsent(old)) {
            /* new, or never sent: announce it as new */
            bad = diff_add(&d, k->sector, e->file, e->pos, 1, e->kind, sub,
                           sk_event_kind(e->kind, NULL, state), e->id, canon,
                           make_record(e, canon), 0);
        } else if (strcmp(rec_str(old, "sub"), sub) != 0) {
            /* moved to another subsector: gone there, new here */
            bad = diff_add(&d, k->sector, e->file, e->pos, 1, e->kind,
                           rec_str(old, "sub"),
                           sk_event_kind(e->kind, rec_str(old, "state"),
                                         NULL),
                           e->id, rec_str(old, "data"), NULL, 0) ||
                  diff_add(&d, k->sector, e->file, e->pos, 1, e->kind, sub,
                           sk_event_kind(e->kind, NULL, state), e->id, canon,
                           make_record(e, canon), 1);
        } else {
            bad = diff_add(&d, k->sector, e->file, e->pos, 1, e->kind, sub,
                           sk_event_kind(e->kind, rec_str(old, "state"),
                                         state),
                           e->id, canon, make_record(e, canon), 0);
        }
        free(canon);
        if (bad)
            goto out;
    }

    /* 2. remembered entries no longer in the view: gone */
    for (int kind = 0; kind < SK_ENTRY_KINDS; kind++) {
        const char *id;
        json_t *old;
        json_object_foreach(k->map[kind], id, old) {
            if (json_object_get(seen[kind], id))
                continue;
            if (rec_unsent(old)) {
                /* never announced: nothing to take back */
                if (json_array_append_new(forget[kind], json_string(id)) < 0)
                    goto out;
                continue;
            }
            if (diff_add(&d, k->sector, rec_str(old, "file"),
                         (size_t)json_integer_value(json_object_get(old,
                                                                    "pos")),
                         0, (sk_kind_t)kind, rec_str(old, "sub"),
                         sk_event_kind((sk_kind_t)kind,
                                       rec_str(old, "state"), NULL),
                         id, rec_str(old, "data"), NULL, 0) < 0)
                goto out;
        }
    }

    /* 3. emit in register order; commit each event by its outcome */
    outcome = calloc(d.n ? d.n : 1, sizeof *outcome);
    if (!outcome)
        goto out;
    if (d.n)
        qsort(d.ev, d.n, sizeof *d.ev, cmp_pending);
    int any_retry = 0;
    for (size_t i = 0; i < d.n; i++) {
        pending_t *p = &d.ev[i];
        sk_outcome_t o = SK_SENT;
        if (p->after && i > 0 && outcome[i - 1] == SK_RETRY) {
            o = SK_RETRY; /* its "gone" half failed: redo both later */
        } else if (!quiet) {
            sk_event_t ev = { p->channel, p->kind, p->key, p->data };
            o = emit(ctx, &ev);
        }
        outcome[i] = o;
        any_retry |= o == SK_RETRY;
        commit(k, p, o);
    }
    for (int kind = 0; kind < SK_ENTRY_KINDS; kind++) {
        size_t i;
        json_t *id;
        json_array_foreach(forget[kind], i, id)
            json_object_del(k->map[kind], json_string_value(id));
    }
    if (retry)
        *retry = any_retry;
    rc = (long)d.n;
out:
    for (int i = 0; i < SK_ENTRY_KINDS; i++) {
        json_decref(seen[i]);
        json_decref(forget[i]);
    }
    free(outcome);
    diff_free(&d);
    return rc;
}
