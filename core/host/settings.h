/*
 * settings.h - the plugin settings engine: one set of rules for what a
 * plugin's settings may be, shared by the broker's config check
 * (`sectorcastd --check`, start, reload), the plugin host (the ABI's
 * setting_* getters) and the plugin test kit.
 *
 * Owns: the plain-C tree of a plugin's `settings` group as written
 * (sc_sv_t, with line numbers), its validation against the plugin's
 * sc_setting_def_t table (unknown, missing, wrong type, out of range, not
 * an allowed value, wrong list or group shape; defaults, parsed decimally:
 * "010" is 10; relative PATH values resolved), the resolved settings and
 * their getters by path ("a", "a.b", "a[2]", "a[2].b"), and running a
 * plugin's optional check() callback with a check-mode host table whose
 * setting_problem() reports land at the setting's line.
 *
 * Every problem is reported as "plugin 'x': setting 'y': text" through a
 * callback together with the file and line where it belongs, so the caller
 * decides where it goes (a diag list, a log, a test's buffer). The broker
 * declares its own scalar groups (gateway, listen, limits, curve, control,
 * monitoring, audit, logging) as tables too and has them checked here:
 * their problems read "setting 'gateway.y': text".
 *
 * Never: libconfig types (settings_lc.h turns a libconfig group into an
 * sc_sv_t), loading plugins, logging by itself, threads (a resolved
 * sc_settings_t is read-only and may be read from any thread; copy it with
 * sc_settings_copy to hand it to another owner).
 */
#ifndef SC_HOST_SETTINGS_H
#define SC_HOST_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sectorcast/plugin.h>

/* ------------------------------------------------------------------ */
/* The tree of values as written                                        */

typedef enum sc_sv_kind {
    SC_SV_STRING = 1,
    SC_SV_INT = 2,
    SC_SV_BOOL = 3,
    SC_SV_FLOAT = 4,
    SC_SV_GROUP = 5,   /* { a = 1; b = "x"; }: named members */
    SC_SV_LIST = 6     /* [ 1, 2 ] or ( {..}, {..} ): unnamed elements */
} sc_sv_kind_t;

typedef struct sc_sv {
    char *name;             /* member name in a group; NULL in a list */
    sc_sv_kind_t kind;
    char *s;                /* STRING */
    int64_t i;              /* INT */
    double f;               /* FLOAT */
    int b;                  /* BOOL */
    struct sc_sv *items;    /* GROUP members / LIST elements */
    size_t n_items;
    int line;               /* line in the config file; 0 = a default */
} sc_sv_t;

/* A new empty GROUP (the root of a settings group). NULL if out of memory. */
sc_sv_t *sc_sv_new_group(int line);
/* Append a child of `parent` (GROUP or LIST; `name` ignored for a LIST) and
 * return it (valid until the next append to `parent`). NULL if out of
 * memory. The child's value fields are zero; set them. */
sc_sv_t *sc_sv_append(sc_sv_t *parent, const char *name, sc_sv_kind_t kind,
                      int line);
sc_sv_t *sc_sv_copy(const sc_sv_t *v);
/* Same names, kinds and values in the same order (lines ignored). */
bool sc_sv_equal(const sc_sv_t *a, const sc_sv_t *b);
void sc_sv_destroy(sc_sv_t **v_p);

/* Parse libconfig text ("a = 1; b = ( { x = 2; } );") into a GROUP tree
 * whose lines are the text's. NULL with a reason in err[errlen]. For kits
 * and tests; the broker builds the tree from its own config (config.c). */
sc_sv_t *sc_sv_parse(const char *text, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Validation                                                           */

/* One problem: `line` <= 0 means the file as a whole; `msg` is
 * "plugin 'x': setting 'y': text". */
typedef void (*sc_settings_report_fn)(void *arg, const char *file, int line,
                                      const char *msg);

/* Where a plugin instance's settings come from. Copied by the engine. */
typedef struct sc_settings_where {
    const char *file;      /* config file (for FILE:LINE); NULL = "config" */
    const char *dir;       /* relative PATH values are resolved against it;
                              NULL = left as written */
    const char *plugin;    /* instance name */
    int line;              /* line of the plugin's group */
    int settings_line;     /* line of its settings group (0: `line`) */
    /* The broker's own config (config.c): a top-level group's name. Set,
     * problems read "setting 'GROUP.NAME': text" ("group 'GROUP': text"
     * for the group as a whole) and `plugin` is not used. */
    const char *group;
} sc_settings_where_t;

/* The stride of a descriptor's settings table: setting_def_size for ABI 2
 * descriptors whose size covers it, else the ABI 1 layout (the first five
 * members). */
size_t sc_settings_def_stride(const sc_plugin_t *desc);
#define SC_SETTINGS_ABI1_STRIDE offsetof(sc_setting_def_t, flags)

/* The descriptor's check callback, or NULL (ABI 1, or size not covering it). */
typedef int (*sc_settings_check_fn)(sc_host_t *host, const sc_host_api_t *api);
sc_settings_check_fn sc_settings_check_of(const sc_plugin_t *desc);

typedef struct sc_settings sc_settings_t;

/* `p` made absolute against `dir` (absolute, symlink-free): leading "./"
 * and "../" are folded into `dir`, the rest is kept as written; `p` is
 * returned as is when absolute or empty, or when `dir` is NULL. The one
 * path rule for the broker's config and plugin PATH settings. malloc'ed;
 * NULL only if out of memory. */
char *sc_settings_resolve_path(const char *dir, const char *p);

/* Validate `written` (the settings group as written; NULL = none) against
 * `defs` (entries `stride` bytes apart, ended by a NULL name; NULL = the
 * plugin takes no settings). Reports every problem and returns their
 * number; when 0, *out (if out != NULL) gets the resolved settings:
 * defaults filled in, PATH values resolved, integers given to FLOAT
 * settings converted. A stride smaller than SC_SETTINGS_ABI1_STRIDE or not
 * a multiple of the pointer size is itself reported. */
int sc_settings_validate(const sc_settings_where_t *where,
                         const sc_sv_t *written, const sc_setting_def_t *defs,
                         size_t stride, sc_settings_report_fn report,
                         void *arg, sc_settings_t **out);

/* As sc_settings_validate with the descriptor's table and stride. */
int sc_settings_validate_desc(const sc_settings_where_t *where,
                              const sc_sv_t *written,
                              const sc_plugin_t *desc,
                              sc_settings_report_fn report, void *arg,
                              sc_settings_t **out);

sc_settings_t *sc_settings_copy(const sc_settings_t *s);
void sc_settings_destroy(sc_settings_t **s_p);
/* Same values (lines and files are not compared). */
bool sc_settings_equal(const sc_settings_t *a, const sc_settings_t *b);
/* The resolved tree (a GROUP), e.g. to send it to a child process. */
const sc_sv_t *sc_settings_root(const sc_settings_t *s);
/* Resolved settings from a tree as returned by sc_settings_root (no
 * validation: for the receiving side of a copy). NULL if out of memory. */
sc_settings_t *sc_settings_from_root(const sc_settings_where_t *where,
                                     const sc_sv_t *root);

/* ------------------------------------------------------------------ */
/* Getters, with the ABI's semantics                                    */

/* SC_OK; SC_ERR_ARG for NULL arguments, a malformed path or a value of
 * another type (FLOAT also takes an INT); SC_ERR_NO_SETTING if the path
 * names nothing (undeclared, optional without default and not written,
 * index out of range). Strings stay valid as long as `s`. */
int sc_settings_string(const sc_settings_t *s, const char *path,
                       const char **out);
int sc_settings_int(const sc_settings_t *s, const char *path, int64_t *out);
int sc_settings_bool(const sc_settings_t *s, const char *path, int *out);
int sc_settings_float(const sc_settings_t *s, const char *path, double *out);
/* The node at `path` (any kind), or NULL with *rc SC_ERR_ARG (malformed
 * path, NULL argument) or SC_ERR_NO_SETTING. For hosts that map values
 * into their own struct (core/host/host.c's ops->setting). */
const sc_sv_t *sc_settings_get(const sc_settings_t *s, const char *path,
                               int *rc);
/* Number of elements of the list at `path` (SC_ERR_NO_SETTING if it is not
 * a list or not there). */
int sc_settings_count(const sc_settings_t *s, const char *path, size_t *out);

/* The line a problem with `path` belongs to: the setting's own line, else
 * its nearest written parent's, else the settings group's. */
int sc_settings_line(const sc_settings_t *s, const char *path);

/* Report "plugin 'x': setting 'path': text" at sc_settings_line(path): what
 * a host's setting_problem() does. */
void sc_settings_problem(const sc_settings_t *s, const char *path,
                         const char *text, sc_settings_report_fn report,
                         void *arg);

/* ------------------------------------------------------------------ */
/* The plugin's check() callback                                        */

typedef struct sc_settings_check_env {
    const char *instance;           /* instance_name() */
    const char *const *channels;    /* granted patterns, each ending '.' */
    size_t n_channels;
    /* log() of the plugin during check (NULL: dropped). */
    void (*log)(void *arg, sc_log_level_t level, const char *line);
    void *log_arg;
    /* strerror() to offer (NULL: the engine's own texts). */
    const char *(*strerror)(int code);
} sc_settings_check_env_t;

/* Run `check` (may be NULL: nothing to do) on `s` with a check-mode host
 * table: settings getters, setting_count, instance_name, channel_count/at,
 * is_granted, log, strerror and setting_problem work, every other call
 * returns SC_ERR_UNSUPPORTED (or does nothing). Each setting_problem()
 * is reported at its setting's line. Returns the number of problems
 * (a refusal without any setting_problem counts as one, reported at the
 * settings group). */
int sc_settings_run_check(sc_settings_check_fn check, const sc_settings_t *s,
                          const sc_settings_check_env_t *env,
                          sc_settings_report_fn report, void *arg);

/* Print the settings table of `desc` for `sectorcastd --describe`: each
 * setting's name, shape (type, list, group), required/default, range,
 * allowed values and description, group fields indented below. */
void sc_settings_describe(FILE *out, const sc_plugin_t *desc);
/* The same for a table whose entries are `stride` bytes apart (the
 * broker's own groups: `sectorcastd --settings`). */
void sc_settings_describe_table(FILE *out, const sc_setting_def_t *defs,
                                size_t stride);

#endif
