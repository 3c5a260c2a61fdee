/* FROZEN COPY of include/sectorcast/plugin.h at ABI 1 (commit 5f160f4^),
 * kept to build tests/plugins/abi1/abi1.c: an old plugin must keep
 * loading in a newer broker. Never edit.
 *
 *
 * sectorcast plugin ABI.
 *
 * This header is the whole contract between the broker (sectorcastd) and a
 * sector plugin. A plugin is one shared object that includes only this
 * header, links against nothing of the broker, and exports exactly one
 * symbol:
 *
 *     SC_PLUGIN_EXPORT const sc_plugin_t *sc_plugin_entry(uint32_t host_abi);
 *
 * Version handshake (both sides check):
 *   1. The host calls sc_plugin_entry() with the newest ABI version it
 *      speaks (SC_PLUGIN_ABI_VERSION of the host's build).
 *   2. The plugin returns its descriptor, or NULL if it cannot work with a
 *      host of that version. Its descriptor's abi_version says which ABI
 *      the plugin was built for.
 *   3. The host refuses a descriptor whose abi_version it does not speak.
 *
 * Growth rules (as in SQLite's sqlite3_api_routines): sc_host_api_t only
 * ever gains members at its end, and its `size` member tells the plugin how
 * much of the table the running host filled in; SC_HOST_HAS() tests that a
 * function is present before a plugin calls it. sc_plugin_t keeps spare
 * `future` slots so that later ABIs (e.g. sink plugins that receive every
 * signed message) can grow without breaking old plugins.
 *
 * Threading: each plugin instance runs on a thread of its own, with its own
 * event loop run by the host. init(), fini() and every callback of one
 * instance run on that thread; the host API may be called only from it.
 *
 * No libconfig, jansson, ZeroMQ or libsodium type crosses this boundary:
 * data passed to publish() is a JSON text, settings are plain C values.
 */
#ifndef SECTORCAST_PLUGIN_H
#define SECTORCAST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define SC_PLUGIN_ABI_VERSION 1u

/* Name of the one symbol a plugin exports. */
#define SC_PLUGIN_ENTRY_SYMBOL "sc_plugin_entry"

#if defined(__GNUC__)
#define SC_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SC_PLUGIN_EXPORT
#endif

/* Result codes of host functions: 0 on success, negative on failure.
 * api->strerror(code) gives a one-line text for each. */
enum {
    SC_OK = 0,
    SC_ERR_ARG = -1,          /* NULL or malformed argument */
    SC_ERR_NOT_GRANTED = -2,  /* channel not granted to this plugin */
    SC_ERR_BAD_JSON = -3,     /* data is not a valid JSON object */
    SC_ERR_TOO_BIG = -4,      /* data over the configured size limit */
    SC_ERR_NO_SETTING = -5,   /* setting not declared by the plugin */
    SC_ERR_NO_MEMORY = -6,
    SC_ERR_LIMIT = -7,        /* too many timers / watches */
    SC_ERR_STOPPING = -8,     /* the host is shutting this plugin down */
    SC_ERR_INTERNAL = -9,     /* host-side failure; details are logged */
    SC_ERR_NOT_FOUND = -10    /* no such timer, watch or state entry */
};

typedef enum sc_log_level {
    SC_LOG_DEBUG = 0,
    SC_LOG_INFO = 1,
    SC_LOG_WARN = 2,
    SC_LOG_ERROR = 3
} sc_log_level_t;

/* ---------------------------------------------------------------------
 * Settings: a plugin declares the settings it accepts as a table; the host
 * validates the plugin's `settings` group in the config against it (unknown
 * name, wrong type, missing required value are FILE:LINE errors at
 * `sectorcastd --check`) and fills in defaults.
 * ------------------------------------------------------------------- */
typedef enum sc_setting_type {
    SC_SETTING_STRING = 1,
    SC_SETTING_INT = 2,     /* 64-bit integer */
    SC_SETTING_BOOL = 3,
    SC_SETTING_FLOAT = 4,   /* double; an integer value is accepted too */
    SC_SETTING_PATH = 5     /* string; relative paths are resolved against
                               the directory of the config file */
} sc_setting_type_t;

typedef struct sc_setting_def {
    const char *name;          /* [a-z0-9_]+ */
    sc_setting_type_t type;
    const char *default_value; /* as text ("10", "true", "x"); NULL = none */
    int required;              /* non-zero: config must set it */
    const char *description;   /* one line, shown by `sectorcastd --describe` */
} sc_setting_def_t;

/* Terminates a settings table. */
#define SC_SETTINGS_END { NULL, (sc_setting_type_t)0, NULL, 0, NULL }

/* Opaque handle of one plugin instance, owned by the host. */
typedef struct sc_host sc_host_t;

/* Callbacks. `arg` is what the plugin passed when registering. */
typedef void (*sc_timer_fn)(sc_host_t *host, int timer_id, void *arg);
typedef void (*sc_fd_fn)(sc_host_t *host, int fd, unsigned events, void *arg);

/* fd watch events */
#define SC_FD_READ  1u
#define SC_FD_WRITE 2u
#define SC_FD_ERROR 4u

/* ---------------------------------------------------------------------
 * The table of host functions handed to the plugin at init.
 * ------------------------------------------------------------------- */
typedef struct sc_host_api {
    uint32_t abi_version;   /* ABI the host speaks (>= plugin's) */
    uint32_t size;          /* sizeof(sc_host_api_t) in the host's build */

    /* Publish one message on `channel` (a channel name, no trailing '.').
     * `kind` e.g. "task.updated"; `key` the entity the message is about
     * (may be NULL); `json_data` a JSON object as text. The call checks the
     * grant, the JSON and the size limit, then queues the message for the
     * core, which sequences, signs, journals and sends it. Returns SC_OK or
     * a negative SC_ERR_*; a refused publish is also logged by the host. */
    int (*publish)(sc_host_t *host, const char *channel, const char *kind,
                   const char *key, const char *json_data);

    /* Log a line under the plugin instance's name. printf-style. */
    void (*log)(sc_host_t *host, sc_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Settings, already validated against the plugin's table. The string
     * returned stays valid until fini(). */
    int (*setting_string)(sc_host_t *host, const char *name, const char **out);
    int (*setting_int)(sc_host_t *host, const char *name, int64_t *out);
    int (*setting_bool)(sc_host_t *host, const char *name, int *out);
    int (*setting_float)(sc_host_t *host, const char *name, double *out);

    /* Timers on the plugin's loop. Returns a timer id > 0 or SC_ERR_*. A
     * one-shot timer (repeat == 0) is removed after it fires. */
    int (*timer_add)(sc_host_t *host, uint32_t interval_ms, int repeat,
                     sc_timer_fn fn, void *arg);
    int (*timer_cancel)(sc_host_t *host, int timer_id);

    /* Watch a file descriptor (SC_FD_READ / SC_FD_WRITE) on the plugin's
     * loop. The plugin keeps ownership of the fd; unwatch before close. */
    int (*fd_watch)(sc_host_t *host, int fd, unsigned events, sc_fd_fn fn,
                    void *arg);
    int (*fd_unwatch)(sc_host_t *host, int fd);

    /* Identity and grants of this instance. */
    const char *(*instance_name)(sc_host_t *host);
    size_t (*channel_count)(sc_host_t *host);
    /* i-th granted channel pattern, e.g. "energy.nuclear." (a subtree) or
     * "energy.lng.tasks." (one channel), always ending in '.'. */
    const char *(*channel_at)(sc_host_t *host, size_t i);

    /* Text for an SC_ERR_* code. */
    const char *(*strerror)(int code);

    /* Ask the host to stop this plugin instance (e.g. fatal error). */
    void (*request_stop)(sc_host_t *host, const char *reason);

    /* --- appended in later revisions of ABI 1 go below; test with
     *     SC_HOST_HAS(api, member) before calling. --- */

    /* Durable plugin state: a key/value store private to this plugin
     * instance (by instance name), kept by the broker in SQLite across
     * restarts. Keys: 1..256 bytes of text; values: text up to 1 MiB.
     * state_get: *value is a NUL-terminated copy the plugin frees with
     * state_free; SC_ERR_NOT_FOUND if absent. state_put with value NULL
     * deletes. state_foreach calls fn for each key starting with prefix
     * ("" = all) in key order; fn returns non-zero to stop.
     * A state_put is committed in the same journal transaction as the
     * messages this instance published before it, so state never runs
     * ahead of the journal; reads see the instance's own writes at once. */
    int (*state_get)(sc_host_t *host, const char *key, char **value);
    int (*state_put)(sc_host_t *host, const char *key, const char *value);
    void (*state_free)(sc_host_t *host, char *value);
    int (*state_foreach)(sc_host_t *host, const char *prefix,
                         int (*fn)(void *arg, const char *key,
                                   const char *value),
                         void *arg);
} sc_host_api_t;

/* Non-zero if the running host's table includes `member`. */
#define SC_HOST_HAS(api, member)                                          \
    ((api) != NULL &&                                                     \
     (api)->size >= offsetof(sc_host_api_t, member) + sizeof((api)->member) \
     && (api)->member != NULL)

/* ---------------------------------------------------------------------
 * The plugin's descriptor, returned by sc_plugin_entry().
 * ------------------------------------------------------------------- */
typedef struct sc_plugin {
    uint32_t abi_version;          /* SC_PLUGIN_ABI_VERSION at build time */
    const char *name;              /* e.g. "energy" */
    const char *version;           /* plugin's own version, e.g. "1.0.0" */
    const char *description;       /* one line */
    const sc_setting_def_t *settings; /* table ended by SC_SETTINGS_END;
                                         NULL = plugin takes no settings */

    /* Called on the plugin's thread before its loop starts. Set *state to
     * the plugin's own data. Return SC_OK, or a negative code to refuse to
     * start (log why first). */
    int (*init)(sc_host_t *host, const sc_host_api_t *api, void **state);

    /* Called on the plugin's thread after its loop stopped. Free `state`.
     * May be NULL. */
    void (*fini)(sc_host_t *host, void *state);

    /* Reserved for later ABIs; must be NULL/zero. */
    void *future[8];
} sc_plugin_t;

/* The one symbol a plugin exports. */
typedef const sc_plugin_t *(*sc_plugin_entry_fn)(uint32_t host_abi);

#ifdef __cplusplus
}
#endif

#endif /* SECTORCAST_PLUGIN_H */
