/*
 * config.h - the broker's configuration, loaded from one libconfig file.
 *
 * Owns parsing and validating the file into plain C structs (no libconfig
 * type escapes this module) and reporting every problem as FILE:LINE.
 * Checks here: unknown keys, wrong types, missing required settings, bad
 * endpoints, channel/subtree syntax, unreadable key files, plugin path not
 * found, plugin channels outside its sector, duplicate names. Validation of
 * plugin settings against a plugin's declared table is done by
 * sc_config_check_plugin_settings() once the host has loaded the plugin.
 * Relative paths are resolved against the config file's directory.
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sectorcast/plugin.h>
#include "diag.h"
#include "host/settings.h"

typedef struct sc_cfg_plugin {
    char *name;          /* instance name, unique, [a-z0-9_-]+ */
    char *path;          /* absolute path of the .so */
    char *sector;        /* name of an entry of sectors */
    char **channels;     /* granted subtrees, each ending in '.' */
    size_t n_channels;
    sc_sv_t *settings_written; /* its settings group as written (NULL: none) */
    sc_settings_t *settings;   /* resolved by sc_config_check_plugin*();
                                  NULL before */
    int line;            /* line of the plugin's group */
    int settings_line;   /* line of its settings group (or `line`) */
    bool isolate_process;/* isolation = "process": run in a child process */
    int64_t max_channels;/* limits.max_channels_per_plugin (copied here) */
    char *user;          /* isolated child drops to this user (NULL: it
                            keeps the broker's); `user` or
                            gateway.plugin_user */
    int64_t publish_window; /* isolation = "process": frames in flight
                               (1..SC_PLUGIN_CHILD_WINDOW_MAX; default
                               SC_PLUGIN_CHILD_WINDOW; 1 = each call
                               returns once journaled) */
    char **receives;     /* sink: subtrees it reads, each ending in '.'
                            (inside the gateway's sectors); none = not a
                            sink. A sink needs no sector nor channels. */
    size_t n_receives;
    int receives_line;
} sc_cfg_plugin_t;

typedef struct sc_cfg_sector {
    char *name;
    char **subtrees;     /* each ending in '.' */
    size_t n_subtrees;
    int line;
} sc_cfg_sector_t;

typedef struct sc_cfg_agency {
    char *id;
    char public_key[41]; /* Z85 ("" if kept in a file that was not read:
                            only possible with check_files false) */
    char *public_key_file; /* absolute path if given as a file, else NULL */
    char **grants;       /* subtrees, each ending in '.' */
    size_t n_grants;
    int line;
} sc_cfg_agency_t;

typedef struct sc_cfg_sigkey {
    char *id;
    char *file;          /* absolute path of the private JWK */
    int line;
} sc_cfg_sigkey_t;

typedef struct sc_cfg_sign_rule {
    char *subtree;       /* ends in '.' */
    char *active;        /* id of a key in signing.keys */
    int line;
} sc_cfg_sign_rule_t;

typedef struct sc_cfg_retention {
    char *subtree;        /* ends in '.' */
    int64_t max_messages; /* per channel; 0 = no count limit */
    int64_t max_age_s;    /* 0 = no age limit */
    int line;
} sc_cfg_retention_t;

typedef struct sc_config {
    char *path;            /* the config file as given */
    char *dir;             /* its directory, absolute */

    /* gateway */
    char *gateway_id;
    char *data_dir;        /* absolute */
    int64_t max_data_bytes;
    char *log_level;       /* debug|info|warn|error */
    char *plugin_user;     /* gateway.plugin_user (NULL: unset) */
    bool durability_full;  /* gateway.durability: "full" (default) or "normal" */
    int64_t heartbeat_ms;  /* gateway.heartbeat_ms, 0 = off (default 1000) */
    int sign_threads;      /* gateway.sign_threads, 0 = one per core */

    /* limits */
    int64_t max_subscriptions;   /* per agency connection (default 256) */
    int64_t service_rate;        /* requests/s per agency (default 50) */
    int64_t service_burst;       /* bucket size (default 100) */
    int64_t replay_batch;        /* messages per replay reply (default 1000) */
    int64_t replay_rate;         /* messages/s of all replays (60000; 0: no cap) */
    int64_t handshake_timeout_ms;        /* ZMQ_HANDSHAKE_IVL (default 5000) */
    int64_t max_unauthenticated;         /* connections in handshake (256) */
    int64_t max_connections_per_address; /* open, per peer IP (64) */
    int64_t max_connections_per_agency;  /* subscribed, per agency (16) */
    int64_t send_queue_bytes;            /* per connection (256 MiB) */
    int64_t slow_subscriber_ms;          /* cut after (10000; 0 = never) */
    int64_t max_heartbeats;              /* channels per heartbeat (1000) */
    int64_t max_channels_per_plugin;     /* distinct channels per run (1000) */

    /* retention rules, longest subtree wins; none = keep everything */
    sc_cfg_retention_t *retention;
    size_t n_retention;

    /* listen */
    char *publish_endpoint;
    char *service_endpoint;   /* may be NULL */

    /* curve: both NULL = CURVE off (refused unless allow_plaintext) */
    char *curve_secret_file;  /* absolute */
    char *curve_public_file;  /* absolute */

    /* signing */
    sc_cfg_sigkey_t *keys;
    size_t n_keys;
    char *active_key;
    sc_cfg_sign_rule_t *sign_rules;
    size_t n_sign_rules;
    char *jwks_file;          /* absolute */

    sc_cfg_sector_t *sectors;
    size_t n_sectors;
    sc_cfg_agency_t *agencies;
    size_t n_agencies;
    sc_cfg_plugin_t *plugins;
    size_t n_plugins;

    /* operations (docs/operations.md): control socket, monitoring HTTP,
     * audit log, log target, graceful stop */
    bool control_enabled;          /* control.enabled (default true) */
    char (*control_admin_keys)[41];/* control.admin_keys (Z85): CURVE on */
    size_t n_control_admin_keys;
    char *http_listen;             /* monitoring.listen, NULL = off */
    char *audit_path;              /* audit.path (absolute), NULL = off */
    int64_t audit_max_bytes;       /* audit.max_bytes (default 10 MiB) */
    int64_t audit_keep;            /* audit.keep (default 5) */
    char *log_target;              /* logging.target: stderr|syslog|path */
    int64_t stop_timeout_ms;       /* gateway.stop_timeout_ms (default 5000) */
} sc_config_t;

/* Load and validate `path`. Returns the config, or NULL if there was any
 * error; every problem is appended to `diag` as FILE:LINE: message.
 * `check_files`: also check that key files are readable (and secret ones
 * 0600) and plugin paths exist. */
sc_config_t *sc_config_load(const char *path, bool check_files,
                            sc_diag_t *diag);
/* As sc_config_load(path, true, diag), but a missing plugin file is not an
 * error: the running broker refuses that plugin alone when it starts it. */
sc_config_t *sc_config_load_to_run(const char *path, sc_diag_t *diag);
void sc_config_destroy(sc_config_t **cfg_p);

/* Validate plugin `p`'s settings against a settings table (entries
 * `stride` bytes apart; see sc_settings_def_stride) with the settings
 * engine (host/settings.h): unknown name, wrong type, missing required
 * value, out of range, not allowed, wrong list or group shape are
 * "FILE:LINE: plugin 'x': setting 'y': ..." errors. On success p->settings
 * holds the resolved settings (defaults filled in, PATH values resolved).
 * Returns 0 if valid, -1 otherwise. */
/* Print the broker's own scalar groups (gateway, listen, limits, curve,
 * control, monitoring, audit, logging) as declared and checked: each
 * setting's type, default, range, allowed values and description
 * (`sectorcastd --settings`). */
void sc_config_describe(FILE *out);

int sc_config_check_plugin_settings(const sc_config_t *cfg, sc_cfg_plugin_t *p,
                                    const sc_setting_def_t *table,
                                    size_t stride, sc_diag_t *diag);

/* All checks of plugin `p` that its descriptor allows before it starts:
 * its settings table (with the descriptor's stride), then its check()
 * callback, if any, in check mode (problems it reports with
 * setting_problem() land at the setting's line). 0 or -1. */
int sc_config_check_plugin(const sc_config_t *cfg, sc_cfg_plugin_t *p,
                           const sc_plugin_t *desc, sc_diag_t *diag);

#endif
