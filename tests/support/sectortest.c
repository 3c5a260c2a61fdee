/*
 * sectortest.c - scaffolding shared by the sector plugin unit tests.
 */
#include "support/sectortest.h"

#include <stdarg.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- fixture -- */

int
st_init(sectortest_t *t, const char *so, const char *instance,
        const char *src)
{
    memset(t, 0, sizeof *t);
    t->so = so;
    t->instance = instance;
    if (fakehost_tmpdir(src, t->dir, sizeof t->dir) < 0)
        return -1;
    if (!(t->store = fakehost_store_new())) {
        fakehost_rmdir(t->dir);
        return -1;
    }
    return 0;
}

void
st_fini(sectortest_t *t)
{
    fakehost_destroy(&t->fh);
    fakehost_store_destroy(&t->store);
    fakehost_rmdir(t->dir);
}

int
st_setup(void **state, const char *so, const char *instance,
         const char *src)
{
    sectortest_t *t = malloc(sizeof *t);
    if (!t || st_init(t, so, instance, src) < 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

int
st_teardown(void **state)
{
    sectortest_t *t = *state;
    st_fini(t);
    free(t);
    return 0;
}

fakehost_t *
st_host(sectortest_t *t, const char *const *chans, fakehost_store_t *store)
{
    char err[512];
    fakehost_destroy(&t->fh);
    t->fh = fakehost_new(t->so, t->instance, chans, err, sizeof err);
    if (!t->fh)
        fail_msg("%s", err);
    if (store)
        fakehost_use_store(t->fh, store);
    assert_int_equal(fakehost_set(t->fh, "register_dir", t->dir), SC_OK);
    return t->fh;
}

fakehost_t *
st_start(sectortest_t *t)
{
    if (fakehost_start(t->fh) != SC_OK)
        fail_msg("start: %s", fakehost_error(t->fh));
    fakehost_fire_timers(t->fh); /* the first scan runs on the loop */
    return t->fh;
}

fakehost_t *
st_run(sectortest_t *t, const char *const *chans, const char *rules,
       size_t max_data)
{
    st_host(t, chans, t->store);
    if (max_data)
        fakehost_set_max_data(t->fh, max_data);
    if (rules)
        assert_int_equal(fakehost_set(t->fh, "alert_rules", rules), SC_OK);
    return st_start(t);
}

size_t
st_poll(sectortest_t *t)
{
    fakehost_msgs_clear(t->fh);
    fakehost_fire_timers(t->fh);
    return fakehost_msg_count(t->fh);
}

/* ------------------------------------------------------------ files -- */

void
st_path(const sectortest_t *t, const char *name, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", t->dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

json_t *
st_load(const sectortest_t *t, const char *name)
{
    char p[PATH_MAX];
    json_error_t je;
    st_path(t, name, p, sizeof p);
    json_t *j = json_load_file(p, 0, &je);
    if (!j)
        fail_msg("%s: line %d: %s", p, je.line, je.text);
    return j;
}

void
st_save(const sectortest_t *t, const char *name, json_t *root)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8];
    st_path(t, name, p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", t->dir, name);
    assert_int_equal(json_dump_file(root, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, p), 0);
    json_decref(root);
}

void
st_write_text(const sectortest_t *t, const char *name, const char *text)
{
    char p[PATH_MAX];
    st_path(t, name, p, sizeof p);
    FILE *out = fopen(p, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(text, 1, strlen(text), out), strlen(text));
    assert_int_equal(fclose(out), 0);
}

/* Index of entry `id` in `arr`; fails the test if absent. */
static size_t
entry_index(json_t *arr, const char *array, const char *id)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "id")), id))
            return i;
    }
    fail_msg("no entry %s in %s", id, array);
    return 0;
}

json_t *
st_entry(json_t *root, const char *array, const char *id)
{
    json_t *arr = json_object_get(root, array);
    return json_array_get(arr, entry_index(arr, array, id));
}

void
st_remove_entry(json_t *root, const char *array, const char *id)
{
    json_t *arr = json_object_get(root, array);
    json_array_remove(arr, entry_index(arr, array, id));
}

/* ------------------------------------------------------- assertions -- */

const char *
st_expected_kind(const char *array, json_t *e)
{
    if (!strcmp(array, "tasks")) {
        const char *s = json_string_value(json_object_get(e, "status"));
        return !strcmp(s, "completed") || !strcmp(s, "cancelled") ||
                       !strcmp(s, "closed")
                   ? "task.closed" : "task.created";
    }
    const char *s = json_string_value(json_object_get(e, "stage"));
    return !strcmp(s, "published") ? "standard.published"
           : !strcmp(s, "withdrawn") ? "standard.withdrawn"
                                     : "standard.proposed";
}

void
st_assert_msg(fakehost_t *fh, size_t i, const char *channel,
              const char *kind, const char *key)
{
    const fakehost_msg_t *m = fakehost_msg_at(fh, i);
    if (!m)
        fail_msg("no message %zu (have %zu)", i, fakehost_msg_count(fh));
    assert_string_equal(m->channel, channel);
    assert_string_equal(m->kind, kind);
    assert_non_null(m->key);
    assert_string_equal(m->key, key);
    if (!strncmp(kind, "alert.", 6))
        return;
    json_t *d = json_loads(m->data, 0, NULL);
    assert_non_null(d);
    assert_true(json_is_object(d));
    assert_string_equal(json_string_value(json_object_get(d, "id")), key);
    json_decref(d);
}

void
st_assert_logged(fakehost_t *fh, const char *needle)
{
    if (fakehost_log_find(fh, 0, needle) < 0) {
        for (size_t i = 0; i < fakehost_log_count(fh); i++)
            fprintf(stderr, "  log: %s\n", fakehost_log_at(fh, i)->text);
        fail_msg("no log line contains: %s", needle);
    }
}
