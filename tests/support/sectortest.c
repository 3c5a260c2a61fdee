/*
 * sectortest.c - scaffolding shared by the sector plugin unit tests.
 */
#include "support/sectortest.h"

#include <stdarg.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
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
    if (st_tmpdir(src, t->dir, sizeof t->dir) < 0)
        return -1;
    if (!(t->store = sc_pt_store_new())) {
        st_rmdir(t->dir);
        return -1;
    }
    return 0;
}

void
st_fini(sectortest_t *t)
{
    sc_pt_destroy(&t->fh);
    sc_pt_store_destroy(&t->store);
    st_rmdir(t->dir);
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

sc_pt_t *
st_host(sectortest_t *t, const char *const *chans, sc_pt_store_t *store)
{
    char err[512];
    sc_pt_destroy(&t->fh);
    t->fh = sc_pt_new(t->so, t->instance, chans, err, sizeof err);
    if (!t->fh)
        fail_msg("%s", err);
    if (store)
        sc_pt_use_store(t->fh, store);
    assert_int_equal(sc_pt_set(t->fh, "register_dir", t->dir), SC_OK);
    return t->fh;
}

sc_pt_t *
st_start(sectortest_t *t)
{
    if (sc_pt_start(t->fh) != SC_OK)
        fail_msg("start: %s", sc_pt_error(t->fh));
    sc_pt_fire_timers(t->fh); /* the first scan runs on the loop */
    return t->fh;
}

sc_pt_t *
st_run(sectortest_t *t, const char *const *chans, const char *rules,
       size_t max_data)
{
    st_host(t, chans, t->store);
    if (max_data)
        sc_pt_set_max_data(t->fh, max_data);
    if (rules)
        assert_int_equal(sc_pt_set(t->fh, "alert_rules", rules), SC_OK);
    return st_start(t);
}

size_t
st_poll(sectortest_t *t)
{
    sc_pt_msgs_clear(t->fh);
    sc_pt_fire_timers(t->fh);
    return sc_pt_msg_count(t->fh);
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
st_assert_msg(sc_pt_t *fh, size_t i, const char *channel,
              const char *kind, const char *key)
{
    const sc_pt_msg_t *m = sc_pt_msg_at(fh, i);
    if (!m)
        fail_msg("no message %zu (have %zu)", i, sc_pt_msg_count(fh));
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
st_assert_logged(sc_pt_t *fh, const char *needle)
{
    if (sc_pt_log_find(fh, 0, needle) < 0) {
        for (size_t i = 0; i < sc_pt_log_count(fh); i++)
            fprintf(stderr, "  log: %s\n", sc_pt_log_at(fh, i)->text);
        fail_msg("no log line contains: %s", needle);
    }
}

/* ---------------------------------------------------- tree helpers -- */

static int
exe_dir(char *buf, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int k = snprintf(buf, len, "%s", exe);
    return k < 0 || (size_t)k >= len ? -1 : 0;
}

int
st_find_plugin(const char *name, char *buf, size_t len)
{
    char dir[4096];
    struct stat st;
    if (!name || exe_dir(dir, sizeof dir) < 0)
        return -1;
    int k = snprintf(buf, len, "%s/../plugins/%s.so", dir, name);
    if (k < 0 || (size_t)k >= len)
        return -1;
    return stat(buf, &st) == 0 ? 0 : -1;
}

int
st_find_source(const char *rel, char *buf, size_t len)
{
    char dir[4096];
    struct stat st;
    if (!rel || exe_dir(dir, sizeof dir) < 0)
        return -1;
    for (;;) {
        int k = snprintf(buf, len, "%s/%s", dir, rel);
        if (k > 0 && (size_t)k < len && stat(buf, &st) == 0)
            return 0;
        char *s = strrchr(dir, '/');
        if (!s || s == dir)
            return -1;
        *s = '\0';
    }
}

static int
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (ferror(in))
        rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

int
st_tmpdir(const char *src, char *buf, size_t len)
{
    if (snprintf(buf, len, "/tmp/sectortest.XXXXXX") >= (int)len ||
        !mkdtemp(buf))
        return -1;
    if (!src)
        return 0;
    DIR *d = opendir(src);
    if (!d)
        goto fail;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0 ||
            !strncmp(de->d_name, "demo-live", 9) || de->d_name[0] == '.')
            continue;
        char from[8192], to[8192];
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", buf, de->d_name);
        if (copy_file(from, to) < 0) {
            closedir(d);
            goto fail;
        }
    }
    closedir(d);
    return 0;
fail:
    st_rmdir(buf);
    return -1;
}

void
st_rmdir(const char *dir)
{
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}
