/*
 * sectorcast plugin test kit (libsectorcast-plugintest).
 *
 * Unit-test a sector plugin without a broker: load its .so, give it
 * settings, start it, drive its timers and fd events, and inspect what it
 * published, what durable state it wrote and what it logged. The kit runs
 * the broker's own plugin host (the same handshake, the same checks of
 * every host-API argument, the same refusal codes and texts, the same
 * settings rules); only where a publish, a state write and a log line go
 * differs: here they are kept in memory for the test to look at.
 *
 * Installed by `scons install`; build a test with
 *     cc test.c $(pkg-config --cflags --libs sectorcast-plugintest)
 *
 * Typical test:
 *
 *     const char *chans[] = { "energy.", NULL };
 *     char err[256];
 *     sc_pt_t *pt = sc_pt_new("./energy.so", "energy", chans, err,
 *                             sizeof err);
 *     sc_pt_set(pt, "register_dir", "/tmp/reg");
 *     assert(sc_pt_start(pt) == SC_OK);
 *     sc_pt_fire_timers(pt);            // or sc_pt_run_for(pt, 100)
 *     assert(sc_pt_msg_count(pt) == 1);
 *     assert(strcmp(sc_pt_msg_at(pt, 0)->kind, "asset.created") == 0);
 *     sc_pt_destroy(&pt);               // calls fini, unloads
 *
 * Everything runs on the calling thread (the "plugin thread"): the kit has
 * no thread of its own; timers and fd events are run only from
 * sc_pt_run_for() / sc_pt_fire_timers(). Host functions called from any
 * other thread are refused with SC_ERR_INTERNAL and logged.
 */
#ifndef SECTORCAST_PLUGINTEST_H
#define SECTORCAST_PLUGINTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_pt sc_pt_t;

/* One message the plugin published successfully. */
typedef struct sc_pt_msg {
    char *channel;  /* as passed, without the trailing '.' */
    char *kind;
    char *key;      /* NULL if the plugin passed NULL */
    char *data;     /* the JSON text exactly as passed */
} sc_pt_msg_t;

/* One log line written by the plugin, or by the host about the plugin
 * (a refusal, a failed init, ...). */
typedef struct sc_pt_log {
    sc_log_level_t level;
    int from_host;  /* non-zero: written by the host, not the plugin */
    char *text;
} sc_pt_log_t;

/* Default size limit of a publish's data (the broker's max_data_bytes). */
#define SC_PT_MAX_DATA_DEFAULT 65536

/* Load `so_path` and perform the broker's handshake (offering
 * SC_PLUGIN_ABI_VERSION). `channels`: the grant, a NULL-terminated list of
 * subtrees each ending in '.'. NULL and a one-line reason in err on any
 * failure (the broker's text for the same refusal). */
sc_pt_t *sc_pt_new(const char *so_path, const char *instance_name,
                   const char *const *channels, char *err, size_t errlen);

/* As sc_pt_new, but offers `host_abi` (any value) to sc_plugin_entry and
 * speaks only ABI versions up to it (and this build's): tests a plugin's
 * side of the handshake and of SC_HOST_HAS() on an older host. */
sc_pt_t *sc_pt_new_abi(const char *so_path, const char *instance_name,
                       const char *const *channels, uint32_t host_abi,
                       char *err, size_t errlen);

/* Calls fini() (if init succeeded), unloads and frees. *pt_p = NULL. */
void sc_pt_destroy(sc_pt_t **pt_p);

/* The plugin's descriptor. */
const sc_plugin_t *sc_pt_plugin(sc_pt_t *pt);

/* Give setting `path` the value `value_text` as an operator writes it in
 * the config: "42", "true"/"false", "2.5", any text for STRING/PATH; a
 * list or group as its config text: "[ \"a\", \"b\" ]",
 * "( { indicator = \"x\"; op = \"<\"; } )". Integers are decimal ("010"
 * is 10). SC_ERR_NO_SETTING for an undeclared
 * name, SC_ERR_ARG for a value that is not of the declared type or not
 * valid (range, allowed values); the reason is in sc_pt_error(). Before
 * sc_pt_start only. A relative PATH is resolved against the base dir
 * (default: the current directory when the kit was made). */
int sc_pt_set(sc_pt_t *pt, const char *path, const char *value_text);

/* Directory relative PATH settings are resolved against. */
void sc_pt_set_base_dir(sc_pt_t *pt, const char *dir);

/* Size limit for publish data, in bytes (default SC_PT_MAX_DATA_DEFAULT). */
void sc_pt_set_max_data(sc_pt_t *pt, size_t max_bytes);

/* Echo every log line to stderr as it is written (default: only when the
 * environment variable SC_PT_VERBOSE is set). */
void sc_pt_set_verbose(sc_pt_t *pt, int verbose);

/* Apply defaults, refuse a missing required setting (SC_ERR_BAD_SETTING),
 * run the plugin's check() (problems become log lines "setting 'x':
 * text"), then init(). SC_OK or the failing code (the reason is in
 * sc_pt_error()). */
int sc_pt_start(sc_pt_t *pt);

/* Run only the plugin's check() on the settings given so far (as
 * `sectorcastd --check` does). SC_OK or SC_ERR_BAD_SETTING; each problem
 * is a log line (from_host) "setting 'PATH': text". */
int sc_pt_check(sc_pt_t *pt);

/* Run the loop in real time for `ms` milliseconds: poll the watched fds
 * and fire timers when due. Returns early if the plugin called
 * request_stop(). Returns the number of callbacks run. */
int sc_pt_run_for(sc_pt_t *pt, unsigned ms);

/* Fire every timer once, now, as if its interval had elapsed, in order of
 * due time (then id): one-shot timers are removed, repeating ones
 * rescheduled. Timers added by these callbacks are not fired in the same
 * call. Returns the number fired. */
int sc_pt_fire_timers(sc_pt_t *pt);

/* Number of live timers / fd watches the plugin holds. */
size_t sc_pt_timer_count(sc_pt_t *pt);
size_t sc_pt_watch_count(sc_pt_t *pt);

/* Published messages, in publish order. */
size_t sc_pt_msg_count(sc_pt_t *pt);
const sc_pt_msg_t *sc_pt_msg_at(sc_pt_t *pt, size_t i);
void sc_pt_msgs_clear(sc_pt_t *pt);
/* Number of publish() calls refused, and the code of the last. */
size_t sc_pt_refused_count(sc_pt_t *pt);
int sc_pt_last_refusal(sc_pt_t *pt);

/* Log lines, in order. */
size_t sc_pt_log_count(sc_pt_t *pt);
const sc_pt_log_t *sc_pt_log_at(sc_pt_t *pt, size_t i);
/* Index of the first line at or after `from` containing `needle`, or -1. */
long sc_pt_log_find(sc_pt_t *pt, size_t from, const char *needle);
void sc_pt_log_clear(sc_pt_t *pt);

/* Call the host's publish() as the plugin would. */
int sc_pt_publish(sc_pt_t *pt, const char *channel, const char *kind,
                  const char *key, const char *json_data);

/* The reason the plugin gave to request_stop(), or NULL. */
const char *sc_pt_stop_reason(sc_pt_t *pt);

/* Text of the last error of sc_pt_set / sc_pt_start ("" if none). */
const char *sc_pt_error(sc_pt_t *pt);

/* Sink plugins (SC_CAP_SINK): 1 if the plugin registered as a sink at
 * init. Deliver one message to it as the broker would; returns what the
 * plugin's deliver() returned (SC_ERR_UNSUPPORTED if it is not a sink),
 * or SC_ERR_LIMIT without calling deliver() while the max_inflight of its
 * sc_sink_def_t are delivered and not acknowledged (the broker holds the
 * message until the plugin acknowledges one). */
int sc_pt_is_sink(sc_pt_t *pt);
int sc_pt_sink_deliver(sc_pt_t *pt, const char *channel, const char *epoch,
                       uint64_t seq, const char *jws);
/* The highest seq the plugin acknowledged with sink_ack on `channel`
 * (0 if none). */
uint64_t sc_pt_sink_acked(sc_pt_t *pt, const char *channel);

/* ------------------------------------------------------------------------
 * Durable plugin state. state_get/state_put/state_free/state_foreach work
 * on a store kept in memory, with the broker's limits (keys 1..256 bytes,
 * values up to 1 MiB), scoped by instance name. Each kit starts with its
 * own empty store. To test a restart, hand one store to successive kits:
 *
 *     sc_pt_store_t *st = sc_pt_store_new();
 *     sc_pt_use_store(pt, st);  ... run ...  sc_pt_destroy(&pt);
 *     pt = sc_pt_new(...);  sc_pt_use_store(pt, st);  start, fire:
 *     assert(sc_pt_msg_count(pt) == 0);   // nothing republished
 *     sc_pt_destroy(&pt);  sc_pt_store_destroy(&st);
 * --------------------------------------------------------------------- */
typedef struct sc_pt_store sc_pt_store_t;

sc_pt_store_t *sc_pt_store_new(void);
void sc_pt_store_destroy(sc_pt_store_t **st_p);

/* Use `store` (not owned; it must outlive pt). Before sc_pt_start. */
void sc_pt_use_store(sc_pt_t *pt, sc_pt_store_t *store);
sc_pt_store_t *sc_pt_get_store(sc_pt_t *pt);

/* Set (value NULL: delete) / read `key` of `instance`. get returns NULL if
 * absent; the text stays valid until the key changes. */
int sc_pt_store_put(sc_pt_store_t *st, const char *instance, const char *key,
                    const char *value);
const char *sc_pt_store_get(sc_pt_store_t *st, const char *instance,
                            const char *key);
/* Number of keys of `instance` starting with `prefix` ("" = all). */
size_t sc_pt_store_count(sc_pt_store_t *st, const char *instance,
                         const char *prefix);
/* Number of state_put() calls plugins made successfully. */
size_t sc_pt_store_writes(sc_pt_store_t *st);
/* Make every state_get/state_put/state_foreach fail with `code` (e.g.
 * SC_ERR_INTERNAL) until called again with SC_OK. */
void sc_pt_store_fail(sc_pt_store_t *st, int code);

/* Pretend to be an older host: the table's `size` becomes `bytes` and
 * every member past it is NULL (e.g. offsetof(sc_host_api_t, state_get)).
 * Before sc_pt_start. */
void sc_pt_set_api_size(sc_pt_t *pt, size_t bytes);

/* Fault injection: the next `n` publish() calls that pass every check are
 * refused with `code` instead (logged and counted as refusals). */
void sc_pt_fail_publishes(sc_pt_t *pt, size_t n, int code);

/* White-box access: the host table and handle handed to the plugin, and
 * the plugin's state (after a successful sc_pt_start). */
const sc_host_api_t *sc_pt_api(sc_pt_t *pt);
sc_host_t *sc_pt_handle(sc_pt_t *pt);
void *sc_pt_state(sc_pt_t *pt);

/* A new temporary directory (TMPDIR or /tmp, "sc-pt.XXXXXX") holding a
 * copy of the regular files of `src` (none if NULL). 0 with its path in
 * buf, or -1. sc_pt_rmdir removes its files and then the directory (not
 * recursive). */
int sc_pt_tmpdir(const char *src, char *buf, size_t len);
void sc_pt_rmdir(const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* SECTORCAST_PLUGINTEST_H */
