/*
 * fakehost.h - a broker-less host for unit-testing sector plugins.
 *
 * Owns: loading one plugin .so, the ABI handshake (the same refusals as the
 * broker's plugin host), its settings (validated against the plugin's own
 * table, defaults applied), one sc_host_api_t whose publish() records
 * messages in memory after the same checks the broker makes (argument
 * syntax, grant, size, JSON object), a log kept in memory, and a small
 * single-threaded loop that runs the plugin's timers and fd watches.
 * Never: ZeroMQ, signing, journal, config files. Depends only on libc,
 * libdl, jansson and <sectorcast/plugin.h>.
 *
 * Typical test:
 *
 *     const char *chans[] = { "energy.", NULL };
 *     char err[256];
 *     fakehost_t *fh = fakehost_new("build/plugins/energy.so", "energy",
 *                                   chans, err, sizeof err);
 *     fakehost_set(fh, "register_dir", "/tmp/reg");
 *     assert(fakehost_start(fh) == SC_OK);
 *     fakehost_fire_timers(fh);          // or fakehost_run_for(fh, 100)
 *     ... fakehost_msg_count(fh), fakehost_msg_at(fh, i)->kind ...
 *     fakehost_destroy(&fh);             // calls fini, dlclose
 *
 * Everything must be called from the thread that made the fakehost (the
 * "plugin thread"); host functions called from any other thread are
 * refused with SC_ERR_INTERNAL and logged, which catches plugins that
 * break the threading rule.
 */
#ifndef SC_TESTS_FAKEHOST_H
#define SC_TESTS_FAKEHOST_H

#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

typedef struct fakehost fakehost_t;

/* One message a plugin published successfully. */
typedef struct fakehost_msg {
    char *channel;  /* as passed, without the trailing '.' */
    char *kind;
    char *key;      /* NULL if the plugin passed NULL */
    char *data;     /* the JSON text exactly as passed */
} fakehost_msg_t;

/* One line the plugin (or the fake host about the plugin) logged. */
typedef struct fakehost_log {
    sc_log_level_t level;
    int from_host;  /* non-zero: written by the fake host, not the plugin */
    char *text;
} fakehost_log_t;

/* Default size limit of a publish's data, as the broker's max_data_bytes. */
#define FAKEHOST_MAX_DATA_DEFAULT 65536

/* dlopen `so_path`, find sc_plugin_entry, call it with
 * SC_PLUGIN_ABI_VERSION and check the descriptor. `channels` is the grant:
 * a NULL-terminated list of subtrees, each ending in '.'. Returns NULL and
 * fills err[errlen] with a one-line reason on any failure. */
fakehost_t *fakehost_new(const char *so_path, const char *instance_name,
                         const char *const *channels, char *err,
                         size_t errlen);

/* As fakehost_new, but offers `host_abi` to sc_plugin_entry and speaks ABI
 * versions 1..host_abi (to test a plugin's side of the handshake). */
fakehost_t *fakehost_new_abi(const char *so_path, const char *instance_name,
                             const char *const *channels, uint32_t host_abi,
                             char *err, size_t errlen);

/* Calls fini (if init succeeded), reports fd watches the plugin left
 * behind, dlcloses and frees. Sets *self_p to NULL. */
void fakehost_destroy(fakehost_t **self_p);

/* The plugin's descriptor. */
const sc_plugin_t *fakehost_plugin(fakehost_t *fh);

/* Give setting `name` the value `value_text`, as an operator writes it in
 * the config: "42", "true"/"false", "2.5", any text for STRING/PATH.
 * Checked against the plugin's table: SC_ERR_NO_SETTING for an undeclared
 * name, SC_ERR_ARG for a value that does not parse as the declared type.
 * A relative PATH is resolved against the base dir (default: the current
 * directory when the fakehost was made). Before fakehost_start only. */
int fakehost_set(fakehost_t *fh, const char *name, const char *value_text);

/* Directory relative PATH settings are resolved against. */
void fakehost_set_base_dir(fakehost_t *fh, const char *dir);

/* Size limit for publish data, in bytes (default FAKEHOST_MAX_DATA_DEFAULT). */
void fakehost_set_max_data(fakehost_t *fh, size_t max_bytes);

/* Echo every log line to stderr as it is written (default: only when the
 * environment variable FAKEHOST_VERBOSE is set). */
void fakehost_set_verbose(fakehost_t *fh, int verbose);

/* Apply defaults, refuse if a required setting has no value, then call the
 * plugin's init() with the host table. Returns SC_OK or the failing code
 * (the reason is in fakehost_error()). */
int fakehost_start(fakehost_t *fh);

/* Run the loop in real time for `ms` milliseconds: poll() the watched fds
 * and fire timers when they are due. Returns early if the plugin called
 * request_stop(). Returns the number of callbacks run. */
int fakehost_run_for(fakehost_t *fh, unsigned ms);

/* Fire every timer once, now, as if each one's interval had elapsed, in
 * order of their due time (then id): one-shot timers are removed, repeating
 * ones rescheduled. Timers added by these callbacks are not fired in the
 * same call. Returns the number fired. */
int fakehost_fire_timers(fakehost_t *fh);

/* Number of live timers / fd watches the plugin holds. */
size_t fakehost_timer_count(fakehost_t *fh);
size_t fakehost_watch_count(fakehost_t *fh);

/* Published messages, in publish order. */
size_t fakehost_msg_count(fakehost_t *fh);
const fakehost_msg_t *fakehost_msg_at(fakehost_t *fh, size_t i);
void fakehost_msgs_clear(fakehost_t *fh);
/* Number of publish() calls the host refused, and the code of the last. */
size_t fakehost_refused_count(fakehost_t *fh);
int fakehost_last_refusal(fakehost_t *fh);

/* Log lines, in order. */
size_t fakehost_log_count(fakehost_t *fh);
const fakehost_log_t *fakehost_log_at(fakehost_t *fh, size_t i);
/* Index of the first line at or after `from` containing `needle`, or -1. */
long fakehost_log_find(fakehost_t *fh, size_t from, const char *needle);
void fakehost_log_clear(fakehost_t *fh);

/* Call the host's publish() as the plugin would (to test the host checks
 * themselves, or to publish from a test). */
int fakehost_publish(fakehost_t *fh, const char *channel, const char *kind,
                     const char *key, const char *json_data);

/* The reason the plugin gave to request_stop(), or NULL. */
const char *fakehost_stop_reason(fakehost_t *fh);

/* Text of the last error of fakehost_set / fakehost_start ("" if none). */
const char *fakehost_error(fakehost_t *fh);

/* ------------------------------------------------------------------------
 * Durable plugin state. The host table's state_get/state_put/state_free/
 * state_foreach work on a store kept in memory, with the broker's limits
 * (keys 1..256 bytes, values up to 1 MiB) and scoped by instance name as
 * the broker's SQLite table is. Each fakehost starts with its own empty
 * store. To test a restart, make a store, hand it to a fakehost, destroy
 * that fakehost, and hand the same store to a new one:
 *
 *     fakehost_store_t *st = fakehost_store_new();
 *     fakehost_use_store(fh, st);  ... run ...  fakehost_destroy(&fh);
 *     fh = fakehost_new(...);  fakehost_use_store(fh, st);  start, fire:
 *     assert(fakehost_msg_count(fh) == 0);   // nothing republished
 *     fakehost_destroy(&fh);  fakehost_store_destroy(&st);
 *
 * A test can also pre-seed the store, inspect it, and make it fail.
 * --------------------------------------------------------------------- */
typedef struct fakehost_store fakehost_store_t;

fakehost_store_t *fakehost_store_new(void);
void fakehost_store_destroy(fakehost_store_t **self_p);

/* Use `store` (not owned; it must outlive fh) instead of fh's own. Before
 * fakehost_start. */
void fakehost_use_store(fakehost_t *fh, fakehost_store_t *store);
/* The store fh uses. */
fakehost_store_t *fakehost_get_store(fakehost_t *fh);

/* Set (value NULL: delete) / read `key` of instance `instance`, as the
 * plugin would see it. get returns NULL if absent; the text stays valid
 * until the key changes. */
int fakehost_store_put(fakehost_store_t *st, const char *instance,
                       const char *key, const char *value);
const char *fakehost_store_get(fakehost_store_t *st, const char *instance,
                               const char *key);
/* Number of keys of `instance` starting with `prefix` ("" = all). */
size_t fakehost_store_count(fakehost_store_t *st, const char *instance,
                            const char *prefix);
/* Number of state_put() calls plugins made successfully. */
size_t fakehost_store_writes(fakehost_store_t *st);
/* Make every state_get/state_put/state_foreach fail with `code` (e.g.
 * SC_ERR_INTERNAL) until called again with SC_OK. */
void fakehost_store_fail(fakehost_store_t *st, int code);

/* Pretend to be an older revision of ABI 1: the table's `size` becomes
 * `bytes` and every member past it is NULL, e.g.
 * offsetof(sc_host_api_t, state_get) for a host without durable state.
 * Before fakehost_start. */
void fakehost_set_api_size(fakehost_t *fh, size_t bytes);

/* Fault injection: the next `n` publish() calls that pass every check are
 * refused with `code` instead (and logged and counted as refusals). */
void fakehost_fail_publishes(fakehost_t *fh, size_t n, int code);

/* ------------------------------------------------------------------------
 * Helpers for plugin tests.
 * --------------------------------------------------------------------- */

/* The plugin `name` built the same way as the running test binary:
 * <dir of /proc/self/exe>/../plugins/<name>.so (build/tests ->
 * build/plugins, build/asan/tests -> build/asan/plugins). Returns 0, or
 * -1 if it does not fit or does not exist. */
int fakehost_find_plugin(const char *name, char *buf, size_t len);

/* `rel` (e.g. "conf/registers/energy") under the nearest ancestor of the
 * test binary's directory that has it. Returns 0 or -1. */
int fakehost_find_source(const char *rel, char *buf, size_t len);

/* A new temporary directory (/tmp/fakehost.XXXXXX) holding a copy of the
 * *.json files of `src` (none if src is NULL), except demo-live*.json.
 * Returns 0 with its path in buf, or -1. */
int fakehost_tmpdir(const char *src, char *buf, size_t len);

/* Remove the files of `dir` and then `dir` (not recursive). */
void fakehost_rmdir(const char *dir);

/* The host table and handle handed to the plugin, and the plugin's state
 * (after a successful fakehost_start), for white-box tests: a test can
 * call fakehost_api(fh)->setting_int(fakehost_handle(fh), ...) as the
 * plugin would. */
const sc_host_api_t *fakehost_api(fakehost_t *fh);
sc_host_t *fakehost_handle(fakehost_t *fh);
void *fakehost_state(fakehost_t *fh);

#endif
