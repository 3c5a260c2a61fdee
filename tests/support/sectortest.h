/*
 * sectortest.h - scaffolding shared by the sector plugin unit tests
 * (test_energy, test_semis_ai, test_defense_shipbuilding, test_alerts).
 *
 * Owns: a fixture of one plugin under test (a temporary copy of a
 * register, a state store that outlives restarts, the running fake host),
 * reading and writing register files, and the assertions those tests
 * share. Failures are cmocka failures. Never: anything a plugin sees;
 * that is <sectorcast/plugintest.h>, the installed test kit.
 */
#ifndef SC_TESTS_SECTORTEST_H
#define SC_TESTS_SECTORTEST_H

#include <limits.h>
#include <stddef.h>

#include <jansson.h>

#include <sectorcast/plugintest.h>

typedef struct sectortest {
    const char *so;          /* the plugin's .so (not owned) */
    const char *instance;    /* its instance name */
    char dir[PATH_MAX];      /* the temporary register directory */
    sc_pt_t *fh;          /* the running plugin, or NULL */
    sc_pt_store_t *store; /* kept across restarts of one test */
} sectortest_t;

/* Fill `t`: a new temporary directory holding a copy of the register
 * `src` (empty if src is NULL) and a new store. Returns 0 or -1. */
int st_init(sectortest_t *t, const char *so, const char *instance,
            const char *src);
/* Destroy the fake host and the store, remove the directory. */
void st_fini(sectortest_t *t);

/* cmocka setup/teardown of a test whose state is a sectortest_t. */
int st_setup(void **state, const char *so, const char *instance,
             const char *src);
int st_teardown(void **state);

/* Replace t->fh with a new fake host of t->so granting `chans`, on
 * `store` (NULL: the fake host's own) and with register_dir set. Not
 * started: the test may set more before st_start(). */
sc_pt_t *st_host(sectortest_t *t, const char *const *chans,
                    sc_pt_store_t *store);
/* Start t->fh (it must succeed) and run the first scan. */
sc_pt_t *st_start(sectortest_t *t);
/* st_host() on t->store, with `rules` as alert_rules (NULL: none) and
 * a publish size limit of `max_data` (0: the default), then st_start(). */
sc_pt_t *st_run(sectortest_t *t, const char *const *chans,
                   const char *rules, size_t max_data);
/* Fire the timers (a poll) and return the number of new messages. */
size_t st_poll(sectortest_t *t);

/* "<dir>/<name>" into out; fails the test if it does not fit. */
void st_path(const sectortest_t *t, const char *name, char *out,
             size_t len);
/* Parse register file `name`. */
json_t *st_load(const sectortest_t *t, const char *name);
/* Write `root` to `name` atomically (temp file + rename), as an editor
 * or a deployment tool would. Steals the reference. */
void st_save(const sectortest_t *t, const char *name, json_t *root);
/* Write `text` to `name` as it is. */
void st_write_text(const sectortest_t *t, const char *name,
                   const char *text);
/* The entry `id` of array `array` of `root` (fails if absent). */
json_t *st_entry(json_t *root, const char *array, const char *id);
/* Remove the entry `id` of array `array` of `root` (fails if absent). */
void st_remove_entry(json_t *root, const char *array, const char *id);

/* The kind a first start announces entry `e` of `array` with. */
const char *st_expected_kind(const char *array, json_t *e);

/* Message i went to `channel` as `kind` about `key`; unless an alert,
 * its data is an object whose "id" is `key`. */
void st_assert_msg(sc_pt_t *fh, size_t i, const char *channel,
                   const char *kind, const char *key);
/* Some log line contains `needle` (else the log is printed). */
void st_assert_logged(sc_pt_t *fh, const char *needle);

/* The plugin `name` built the same way as the running test binary:
 * <dir of /proc/self/exe>/../plugins/<name>.so. 0, or -1 if absent. */
int st_find_plugin(const char *name, char *buf, size_t len);
/* `rel` (e.g. "conf/registers/energy") under the nearest ancestor of the
 * test binary's directory that has it. 0 or -1. */
int st_find_source(const char *rel, char *buf, size_t len);
/* A new temporary directory holding a copy of the *.json files of `src`
 * (none if NULL), except demo-live*.json. 0 with its path in buf, or -1. */
int st_tmpdir(const char *src, char *buf, size_t len);
/* Remove the files of `dir` and then `dir` (not recursive). */
void st_rmdir(const char *dir);

#endif
