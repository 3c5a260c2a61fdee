/*
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
 *      the plugin was built for (any version from SC_PLUGIN_ABI_MIN up to
 *      the host's).
 *   3. The host refuses a descriptor whose abi_version it does not speak.
 *
 * Growth rules, both ways:
 *   - Host to plugin (as in SQLite's sqlite3_api_routines): sc_host_api_t
 *     only ever gains members at its end, and its `size` member tells the
 *     plugin how much of the table the running host filled in;
 *     SC_HOST_HAS() tests that a function is present before a plugin calls
 *     it. A newer plugin on an older host finds a function missing and
 *     fails init() cleanly, saying what it needs.
 *   - Plugin to host (as in Redis's RedisModuleTypeMethods): every struct a
 *     plugin hands the host carries its own size (sc_plugin_t.size,
 *     sc_plugin_t.setting_def_size, sc_sink_def_t.size); the host reads
 *     only members that size covers and treats the rest as zero. So an
 *     older plugin keeps loading in a newer host.
 *   - Capabilities (being a sink, later others) are registered at init()
 *     through capability_register(); a host that lacks a capability says
 *     so with SC_ERR_UNSUPPORTED (Mosquitto's callback_register).
 *   ABI 1 plugins (no size fields) still load: the host reads exactly the
 *   ABI 1 layout for them.
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

/* The ABI version this header describes, and the oldest one a host built
 * from it still loads. */
#define SC_PLUGIN_ABI_VERSION 2u
#define SC_PLUGIN_ABI_MIN 1u

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
    SC_ERR_NOT_FOUND = -10,   /* no such timer, watch or state entry */
    /* ABI 2 */
    SC_ERR_UNSUPPORTED = -11, /* capability or call this host lacks, or not
                                 available in this phase (e.g. publish
                                 during check()) */
    SC_ERR_BAD_SETTING = -12  /* check(): settings refused (problems were
                                 reported with setting_problem) */
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
 * name, wrong type, missing required value, "" as a required string or as
 * any path, out of range, not an allowed value, wrong list or group shape
 * are FILE:LINE errors at
 * `sectorcastd --check` and at reload) and fills in defaults. A plugin may
 * add its own checks in sc_plugin_t.check.
 *
 * Shapes (ABI 2): a setting is a scalar, a list of scalars (flag
 * SC_SETTING_F_LIST, e.g. `hosts = [ "a", "b" ];`), a group
 * (SC_SETTING_GROUP with `fields`, e.g. `tls = { ca = "x"; };`) or a list
 * of groups (SC_SETTING_GROUP + SC_SETTING_F_LIST, e.g.
 * `alert_rules = ( { indicator = "x"; op = ">="; }, ... );`).
 * The getters take a path: "name", "name.field", "name[2]",
 * "name[2].field"; setting_count() gives a list's length.
 * ------------------------------------------------------------------- */
typedef enum sc_setting_type {
    SC_SETTING_STRING = 1,
    SC_SETTING_INT = 2,     /* 64-bit integer */
    SC_SETTING_BOOL = 3,
    SC_SETTING_FLOAT = 4,   /* double; an integer value is accepted too */
    SC_SETTING_PATH = 5,    /* string; relative paths are resolved against
                               the directory of the config file */
    /* ABI 2 */
    SC_SETTING_GROUP = 6    /* a group of named members: see `fields` */
} sc_setting_type_t;

/* sc_setting_def_t.flags (ABI 2) */
#define SC_SETTING_F_MIN  1u  /* `min` applies (INT, FLOAT; list length
                                 for lists) */
#define SC_SETTING_F_MAX  2u  /* `max` applies (as above) */
#define SC_SETTING_F_LIST 4u  /* the value is a list of this type */

typedef struct sc_setting_def {
    const char *name;          /* [a-z0-9_]+ */
    sc_setting_type_t type;
    const char *default_value; /* as text ("10", "true", "x"); NULL = none.
                                  Integers are decimal ("010" is 10). Not
                                  used for GROUP or lists. */
    int required;              /* non-zero: config must set it */
    const char *description;   /* one line, shown by `sectorcastd --describe` */

    /* --- ABI 2: read only when the descriptor's setting_def_size covers
     *     them (an ABI 1 plugin's table has none of these) --- */
    uint32_t flags;            /* SC_SETTING_F_* */
    double min, max;           /* inclusive bounds, see the flags; integers
                                  are compared exactly up to 2^53 */
    const char *const *allowed;/* STRING/PATH: NULL-terminated list of the
                                  allowed values; NULL = any */
    const struct sc_setting_def *fields; /* GROUP: its members, a table
                                  ended by SC_SETTINGS_END */
} sc_setting_def_t;

/* One scalar entry of a settings table; designated initializers keep a
 * table compiling (also with -Wextra -Werror) as the struct grows. Set the
 * ABI 2 members by adding designated initializers after it, e.g.
 *   { SC_SETTING_FIELDS("poll_ms", SC_SETTING_INT, "1000", 0, "poll period"),
 *     .flags = SC_SETTING_F_MIN, .min = 10 }                                */
#define SC_SETTING_FIELDS(name_, type_, default_, required_, description_) \
    .name = (name_), .type = (type_), .default_value = (default_),           \
    .required = (required_), .description = (description_)
#define SC_SETTING(name_, type_, default_, required_, description_)        \
    { SC_SETTING_FIELDS(name_, type_, default_, required_, description_) }

/* Terminates a settings table. */
#define SC_SETTINGS_END { .name = NULL }

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

    /* --- ABI 2 --- */

    /* 1 if this instance may publish on `channel` (a channel name, no
     * trailing '.'), 0 if not (also for a malformed name). */
    int (*is_granted)(sc_host_t *host, const char *channel);

    /* Number of elements of a list setting (path as for the getters);
     * SC_ERR_NO_SETTING if there is no such list. */
    int (*setting_count)(sc_host_t *host, const char *path, size_t *out);

    /* From check() (or init()): report a problem with one setting. The
     * host turns it into "FILE:LINE: plugin 'x': setting 'path': text" at
     * the line of that setting (of the settings group if the setting was
     * not written). printf-style. */
    void (*setting_problem)(sc_host_t *host, const char *path,
                            const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Register a capability (SC_CAP_*) from init(). `def` points to the
     * capability's own struct (its first member is its size); the host
     * copies what it needs. SC_OK, SC_ERR_UNSUPPORTED if this host does
     * not know `cap`, SC_ERR_NOT_GRANTED if the config does not allow it
     * (e.g. a sink without `receives`), SC_ERR_ARG. */
    int (*capability_register)(sc_host_t *host, uint32_t cap,
                               const void *def);

    /* Sink: acknowledge that every message of `channel` up to and
     * including `seq` (of the current epoch) is durably delivered. The
     * host advances this instance's durable cursor; after any restart
     * delivery resumes after the last acknowledged seq. Cumulative;
     * acknowledging less than before is ignored. */
    int (*sink_ack)(sc_host_t *host, const char *channel, uint64_t seq);
} sc_host_api_t;

/* Non-zero if the running host's table includes `member`. */
#define SC_HOST_HAS(api, member)                                          \
    ((api) != NULL &&                                                     \
     (api)->size >= offsetof(sc_host_api_t, member) + sizeof((api)->member) \
     && (api)->member != NULL)

/* ---------------------------------------------------------------------
 * Capabilities (ABI 2), registered from init() with capability_register.
 * ------------------------------------------------------------------- */
#define SC_CAP_SINK 1u

/* One committed message, as a sink receives it. Valid during the call. */
typedef struct sc_sink_msg {
    uint32_t size;          /* sizeof(sc_sink_msg_t) in the host's build */
    const char *channel;    /* channel name, no trailing '.' */
    const char *epoch;      /* the journal epoch that issued seq */
    uint64_t seq;
    const char *jws;        /* the JWS compact serialization, exactly the
                               bytes sent on the publish socket */
    size_t jws_len;
} sc_sink_msg_t;

/* SC_CAP_SINK: receive every message committed to the journal on the
 * channels under the subtrees the config's `receives` grants this instance,
 * in seq order per channel, starting after the last acknowledged seq. */
typedef struct sc_sink_def {
    uint32_t size;          /* sizeof(sc_sink_def_t) at the plugin's build */
    /* Called on the plugin's thread for each message. Return SC_OK when
     * taken (acknowledge later with sink_ack once delivered), or
     * SC_ERR_LIMIT to have the host stop delivering on this channel and
     * offer the same message again later (backpressure). */
    int (*deliver)(sc_host_t *host, const sc_sink_msg_t *msg, void *arg);
    /* Called when messages first..last of `channel` can no longer be
     * delivered (removed by retention before they were acknowledged, or
     * the journal started a new epoch). May be NULL; the host logs it. */
    void (*lost)(sc_host_t *host, const char *channel, const char *epoch,
                 uint64_t first, uint64_t last, void *arg);
    void *arg;
    uint32_t max_inflight;  /* at most this many delivered and not
                               acknowledged (1..65536): the host holds the
                               next until an ack; 0 = the host's own bound
                               only */
} sc_sink_def_t;

/* ---------------------------------------------------------------------
 * The plugin's descriptor, returned by sc_plugin_entry().
 * ------------------------------------------------------------------- */
typedef struct sc_plugin {
    uint32_t abi_version;          /* SC_PLUGIN_ABI_VERSION at build time */
    uint32_t size;                 /* ABI 2: sizeof(sc_plugin_t) at build
                                      time (padding, not read, in ABI 1) */
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

    /* --- ABI 2: read only when `size` covers them --- */

    /* sizeof(sc_setting_def_t) at build time: the stride of `settings`. */
    uint32_t setting_def_size;

    /* Optional: check the (already type-checked) settings before anything
     * starts: at `sectorcastd --check`, at start and at reload. Runs with
     * the settings getters, instance_name, channel_count/at, is_granted,
     * log and setting_problem; other host calls return
     * SC_ERR_UNSUPPORTED. Report each problem with setting_problem and
     * return SC_ERR_BAD_SETTING, or SC_OK. May be NULL. At a reload it
     * runs on the broker's reload thread while the running instance of
     * an isolation = "thread" plugin goes on on its own thread (same
     * library, same globals): it must only read its arguments, never
     * state the instance uses. */
    int (*check)(sc_host_t *host, const sc_host_api_t *api);

    /* Reserved for later ABIs; must be NULL/zero. */
    void *future[6];
} sc_plugin_t;

/* Fill in the size fields of a descriptor (ABI 2 and later). */
#define SC_PLUGIN_SIZES .size = sizeof(sc_plugin_t), \
                        .setting_def_size = sizeof(sc_setting_def_t)

/* The one symbol a plugin exports. */
typedef const sc_plugin_t *(*sc_plugin_entry_fn)(uint32_t host_abi);

#ifdef __cplusplus
}
#endif

#endif /* SECTORCAST_PLUGIN_H */
