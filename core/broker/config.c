/*
 * config.c - load and validate the broker's libconfig file.
 *
 * Owns the translation of one libconfig file into sc_config_t (plain C
 * structs: no libconfig type escapes), every check on it, and the check of
 * a plugin's `settings` group against the table the plugin declares. The
 * broker's own scalar groups are declared here as settings tables too and
 * checked by the same engine (host/settings.h), followed by what a table
 * cannot say; the lists and maps whose entries refer to each other
 * (signing, sectors, agencies, plugins, retention) have their own checks.
 * Every problem becomes one "FILE:LINE: message" in an sc_diag_t; loading
 * goes on after a problem so that one run reports all of them.
 *
 * Never opens a socket, loads a plugin or reads a secret key's bytes: with
 * check_files it only looks at files (existence, type, mode, owner) and
 * reads public keys.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/keys.h"
#include "host/settings_lc.h"
#include "http.h"
#include "plugin_host.h"

#define MAX_DATA_MIN 64
#define MAX_DATA_MAX 16777216
#define IPC_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 on Linux */

/* ------------------------------------------------------------------------
 * Loader state and diagnostics
 * ---------------------------------------------------------------------- */

/* One problem found, held back so that all of them can be reported in
 * file order (checks run group by group, not line by line). */
typedef struct problem {
    const char *file;   /* L->path or a libconfig-owned include name */
    int included;       /* 1 if from an @include'd file: listed after */
    int line;
    size_t seq;
    char *msg;
} problem_t;

typedef struct loader {
    const char *path;   /* config file as given */
    sc_config_t *cfg;
    sc_diag_t *diag;
    int errors;
    bool check_files;
    bool check_plugin_files;
    problem_t *probs;
    size_t n_probs, cap_probs;
} loader_t;

/* A group being read: `pfx` prefixes every message about it ("plugin
 * 'energy': " for list entries, "" for top-level groups), `qual` qualifies
 * a missing setting's name ("gateway." / ""), `where` names it in "unknown
 * setting" messages (NULL: list entry, the prefix says it). */
typedef struct scope {
    const config_setting_t *g;
    const char *pfx;
    const char *qual;
    const char *where;
} scope_t;

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

static int line_of(const config_setting_t *s)
{
    return s != NULL ? (int)config_setting_source_line(s) : 0;
}

/* Report a problem at setting `s` (NULL: the file as a whole). Settings
 * from an @include'd file are reported against that file. */
static void err(loader_t *L, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(loader_t *L, const char *file, int line, char *msg);

static void err(loader_t *L, const config_setting_t *s, const char *fmt, ...)
{
    const char *file = L->path;
    if (s != NULL && config_setting_source_file(s) != NULL)
        file = config_setting_source_file(s);
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    add_problem(L, file, line_of(s), msg);
}

/* Keep `msg` (malloc'ed, or NULL if out of memory) for FILE:LINE. */
static void add_problem(loader_t *L, const char *file, int line, char *msg)
{
    L->errors++;
    if (msg != NULL && L->n_probs == L->cap_probs) {
        size_t cap = L->cap_probs ? 2 * L->cap_probs : 16;
        problem_t *p = realloc(L->probs, cap * sizeof *p);
        if (p != NULL) {
            L->probs = p;
            L->cap_probs = cap;
        }
    }
    if (msg == NULL || L->n_probs == L->cap_probs) {
        sc_diag_add(L->diag, file, line, "%s",
                    msg != NULL ? msg : "out of memory");
        free(msg);
        return;
    }
    L->probs[L->n_probs] = (problem_t){file, strcmp(file, L->path) != 0,
                                       line, L->n_probs, msg};
    L->n_probs++;
}

static int problem_cmp(const void *a, const void *b)
{
    const problem_t *x = a, *y = b;
    if (x->included != y->included)
        return x->included - y->included;
    int c = strcmp(x->file, y->file);
    if (c != 0)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand the problems to the caller's diag, in file and line order. */
static void flush_problems(loader_t *L)
{
    if (L->n_probs > 1)
        qsort(L->probs, L->n_probs, sizeof *L->probs, problem_cmp);
    for (size_t i = 0; i < L->n_probs; i++) {
        sc_diag_add(L->diag, L->probs[i].file, L->probs[i].line, "%s",
                    L->probs[i].msg);
        free(L->probs[i].msg);
    }
    free(L->probs);
    L->probs = NULL;
    L->n_probs = L->cap_probs = 0;
}

static char *xdup(loader_t *L, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        err(L, NULL, "out of memory");
    return d;
}

/* ------------------------------------------------------------------------
 * Paths
 * ---------------------------------------------------------------------- */

static char *resolve(loader_t *L, const char *p)
{
    /* "" is the config's directory itself */
    char *r = p[0] ? sc_settings_resolve_path(L->cfg->dir, p)
                   : strdup(L->cfg->dir);
    if (r == NULL)
        err(L, NULL, "out of memory");
    return r;
}

/* Absolute, real directory of `path` (malloc'ed), or NULL (errno set). */
static char *config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (slash == NULL)
        d = strdup(".");
    else if (slash == path)
        d = strdup("/");
    else
        d = strndup(path, (size_t)(slash - path));
    if (d == NULL)
        return NULL;
    char *real = realpath(d, NULL);
    free(d);
    return real;
}

/* ------------------------------------------------------------------------
 * Small syntax checks
 * ---------------------------------------------------------------------- */

static bool id_valid(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* Why `ep` is not an endpoint we accept, or NULL if it is fine. */
static const char *endpoint_problem(const char *ep, char *buf, size_t len)
{
    static const char expected[] =
        "expected tcp://HOST:PORT, ipc:///path or inproc://name";
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *hp = ep + 6;
        const char *colon = strrchr(hp, ':');
        if (colon == NULL || (hp[0] == '[' && strchr(hp, ']') > colon)) {
            snprintf(buf, len, "missing ':PORT' (expected tcp://HOST:PORT)");
            return buf;
        }
        size_t hl = (size_t)(colon - hp);
        if (hl == 0) {
            snprintf(buf, len, "missing host (expected tcp://HOST:PORT)");
            return buf;
        }
        if (hp[0] == '[') {
            if (hp[hl - 1] != ']' || hl < 3) {
                snprintf(buf, len, "bad IPv6 host (expected tcp://[ADDR]:PORT)");
                return buf;
            }
            for (size_t i = 1; i + 1 < hl; i++) {
                if (strchr("0123456789abcdefABCDEF:.%", hp[i]) == NULL) {
                    snprintf(buf, len, "bad character '%c' in IPv6 host", hp[i]);
                    return buf;
                }
            }
        } else {
            for (size_t i = 0; i < hl; i++) {
                char c = hp[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                      c == '_' || c == '*')) {
                    snprintf(buf, len, "bad character '%c' in host", c);
                    return buf;
                }
            }
        }
        const char *port = colon + 1;
        long v = 0;
        bool digits = *port != '\0' && strlen(port) <= 5;
        for (const char *c = port; digits && *c; c++) {
            if (*c < '0' || *c > '9')
                digits = false;
            else
                v = v * 10 + (*c - '0');
        }
        if (!digits || v < 1 || v > 65535) {
            snprintf(buf, len, "port '%s' is not a number in 1..65535", port);
            return buf;
        }
        return NULL;
    }
    if (strncmp(ep, "ipc://", 6) == 0) {
        const char *p = ep + 6;
        if (p[0] != '/' && p[0] != '@') {
            snprintf(buf, len, "ipc path must be absolute (ipc:///path)");
            return buf;
        }
        if (strlen(p) < 2) {
            snprintf(buf, len, "empty ipc path (expected ipc:///path)");
            return buf;
        }
        if (strlen(p) > IPC_PATH_MAX) {
            snprintf(buf, len, "ipc path is %zu bytes, over the %d the OS allows",
                     strlen(p), IPC_PATH_MAX);
            return buf;
        }
        return NULL;
    }
    if (strncmp(ep, "inproc://", 9) == 0) {
        if (ep[9] == '\0') {
            snprintf(buf, len, "empty inproc name (expected inproc://name)");
            return buf;
        }
        return NULL;
    }
    const char *sep = strstr(ep, "://");
    if (sep != NULL)
        snprintf(buf, len, "unknown transport '%.*s' (%s)",
                 (int)(sep - ep) > 32 ? 32 : (int)(sep - ep), ep, expected);
    else
        snprintf(buf, len, "missing transport (%s)", expected);
    return buf;
}

/* Check one subtree string at setting `s`; `what` says what it is. */
static bool check_subtree(loader_t *L, const config_setting_t *s,
                          const char *pfx, const char *what, const char *v)
{
    size_t n = strlen(v);
    if (n > 0 && v[n - 1] != '.' && sc_channel_valid(v)) {
        err(L, s, "%s%s '%s' must end with '.' (write '%s.')", pfx, what, v, v);
        return false;
    }
    if (!sc_subtree_valid(v, n)) {
        err(L, s, "%s%s '%s' is not a valid subtree (lowercase [a-z0-9-] "
                  "segments, each followed by '.', e.g. 'energy.nuclear.')",
            pfx, what, v);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Typed access to the members of a group
 * ---------------------------------------------------------------------- */

static config_setting_t *member(const scope_t *sc, const char *key)
{
    return sc->g != NULL ? config_setting_get_member(sc->g, key) : NULL;
}

static void missing(loader_t *L, const scope_t *sc, const char *key)
{
    err(L, sc->g, "%smissing required setting '%s%s'", sc->pfx, sc->qual, key);
}

/* Report every member of the group not in `known` (NULL-terminated). */
static void check_unknown(loader_t *L, const scope_t *sc,
                          const char *const known[])
{
    int n = config_setting_length(sc->g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(sc->g, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;
        for (size_t k = 0; known[k] != NULL && !ok; k++)
            ok = strcmp(known[k], name) == 0;
        if (ok)
            continue;
        if (sc->where != NULL)
            err(L, m, "unknown setting '%s' in %s", name, sc->where);
        else
            err(L, m, "%sunknown setting '%s'", sc->pfx, name);
    }
}

/* A non-empty string member, or NULL (absent, or problem reported). */
static const char *get_string(loader_t *L, const scope_t *sc, const char *key,
                              bool required, config_setting_t **sp)
{
    config_setting_t *s = member(sc, key);
    if (sp != NULL)
        *sp = s;
    if (s == NULL) {
        if (required)
            missing(L, sc, key);
        return NULL;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        err(L, s, "%s'%s' must be a string", sc->pfx, key);
        return NULL;
    }
    const char *v = config_setting_get_string(s);
    if (v == NULL || *v == '\0') {
        err(L, s, "%s'%s' must not be empty", sc->pfx, key);
        return NULL;
    }
    return v;
}

/* 1 and *out set if present and an integer, 0 if absent, -1 if not. */
static int get_int(loader_t *L, const scope_t *sc, const char *key,
                   int64_t *out, config_setting_t **sp)
{
    config_setting_t *s = member(sc, key);
    *sp = s;
    if (s == NULL)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        err(L, s, "%s'%s' must be an integer", sc->pfx, key);
        return -1;
    }
    *out = (int64_t)config_setting_get_int64(s);
    return 1;
}

static int get_bool(loader_t *L, const scope_t *sc, const char *key, bool *out)
{
    config_setting_t *s = member(sc, key);
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        err(L, s, "%s'%s' must be a boolean (true or false)", sc->pfx, key);
        return -1;
    }
    *out = config_setting_get_bool(s) != 0;
    return 1;
}

/* A group member (must be a group), or NULL. */
static config_setting_t *get_group(loader_t *L, const scope_t *sc,
                                   const char *key, bool required)
{
    config_setting_t *s = member(sc, key);
    if (s == NULL) {
        if (required)
            missing(L, sc, key);
        return NULL;
    }
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        err(L, s, "%s'%s' must be a group ( %s: { ... }; )", sc->pfx, key, key);
        return NULL;
    }
    return s;
}

/* A list member whose elements are all groups: ( { ... }, { ... } ). An
 * empty array [] is taken as an empty list. */
static config_setting_t *get_list(loader_t *L, const scope_t *sc,
                                  const char *key, bool required)
{
    config_setting_t *s = member(sc, key);
    if (s == NULL) {
        if (required)
            missing(L, sc, key);
        return NULL;
    }
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_LIST &&
        !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
        err(L, s, "%s'%s' must be a list of groups ( { ... }, ... )", sc->pfx,
            key);
        return NULL;
    }
    /* Elements that are not groups are reported here and skipped by the
     * callers (is_group), so that the others are still checked. */
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP)
            err(L, e, "%s'%s'[%d] must be a group { ... }", sc->pfx, key, i);
    }
    return s;
}

static bool is_group(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_GROUP;
}

/* true if `s` is an array or list of strings (possibly empty); otherwise
 * reports it as `name`. */
static bool string_array(loader_t *L, const config_setting_t *s,
                         const char *pfx, const char *name)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        err(L, s, "%s'%s' must be an array of strings [ \"...\", ... ]", pfx,
            name);
        return false;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            err(L, e, "%s'%s' must be an array of strings [ \"...\", ... ]",
                pfx, name);
            return false;
        }
    }
    return true;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Copy the subtrees of array `s` (already checked by string_array), each
 * checked as `what`. */
static char **get_subtrees(loader_t *L, const config_setting_t *s,
                           const char *pfx, const char *what, size_t *n_out)
{
    size_t n = (size_t)config_setting_length(s);
    *n_out = 0;
    char **v = calloc(n ? n : 1, sizeof *v);
    if (v == NULL) {
        err(L, NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *str = config_setting_get_string(e);
        check_subtree(L, line_of(e) ? e : s, pfx, what, str);
        v[i] = xdup(L, str);
        if (v[i] == NULL)
            break;
        *n_out = i + 1;
    }
    return v;
}

/* A name seen in a list, to find duplicates. */
typedef struct seen {
    const char *name;
    int line;
} seen_t;

/* Report `name` if already in seen[0..n); else append it. */
static void check_dup(loader_t *L, seen_t *seen, size_t *n,
                      const config_setting_t *s, const char *what,
                      const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(seen[i].name, name) == 0) {
            err(L, s, "duplicate %s '%s' (first at line %d)", what, name,
                seen[i].line);
            return;
        }
    }
    seen[*n].name = name;
    seen[*n].line = line_of(s);
    (*n)++;
}

/* ------------------------------------------------------------------------
 * File checks (check_files)
 * ---------------------------------------------------------------------- */

/* `file` must exist, be a regular file and be readable. */
static bool check_readable(loader_t *L, const config_setting_t *s,
                           const char *pfx, const char *what, const char *file)
{
    struct stat st;
    if (stat(file, &st) != 0) {
        if (errno == ENOENT)
            err(L, s, "%s%s '%s' not found", pfx, what, file);
        else
            err(L, s, "%s%s '%s': %s", pfx, what, file, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        err(L, s, "%s%s '%s' is not a regular file", pfx, what, file);
        return false;
    }
    if (access(file, R_OK) != 0) {
        err(L, s, "%s%s '%s' is not readable: %s", pfx, what, file,
            strerror(errno));
        return false;
    }
    return true;
}

/* A secret key file: readable, 0600 (no group/other access), ours. */
static void check_secret(loader_t *L, const config_setting_t *s,
                         const char *pfx, const char *what, const char *file)
{
    if (!check_readable(L, s, pfx, what, file))
        return;
    char e[512] = "";
    if (sc_check_secret_file(file, e, sizeof e) != 0)
        err(L, s, "%s%s", pfx, e[0] ? e : "insecure secret key file");
}

/* ------------------------------------------------------------------------
 * Groups
 * ---------------------------------------------------------------------- */

/* ------------------------------------------------------------------------
 * The scalar groups, declared as tables and checked by the settings
 * engine (host/settings.h), like a plugin's settings
 * ---------------------------------------------------------------------- */

#define RANGE(lo, hi) \
    .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = (lo), .max = (hi)

static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const DURABILITIES[] = {"full", "normal", NULL};

static const sc_setting_def_t GATEWAY_SETTINGS[] = {
    {SC_SETTING_FIELDS("id", SC_SETTING_STRING, NULL, 1,
                       "this gateway's id, [a-z0-9_-]+")},
    {SC_SETTING_FIELDS("data_dir", SC_SETTING_PATH, "var", 0,
                       "journal, JWKS and plugin state")},
    {SC_SETTING_FIELDS("max_data_bytes", SC_SETTING_INT, "65536", 0,
                       "largest data JSON of one message, in bytes"),
     RANGE(MAX_DATA_MIN, MAX_DATA_MAX)},
    {SC_SETTING_FIELDS("log_level", SC_SETTING_STRING, "info", 0,
                       "least severe level logged"),
     .allowed = LOG_LEVELS},
    {SC_SETTING_FIELDS("durability", SC_SETTING_STRING, "full", 0,
                       "full: fsync at every commit; normal: at checkpoints"),
     .allowed = DURABILITIES},
    {SC_SETTING_FIELDS("heartbeat_ms", SC_SETTING_INT, "1000", 0,
                       "heartbeat interval; 0 = off, else at least 50"),
     RANGE(0, 3600000)},
    {SC_SETTING_FIELDS("sign_threads", SC_SETTING_INT, "0", 0,
                       "signing threads; 0 = one per core"),
     RANGE(0, 64)},
    {SC_SETTING_FIELDS("stop_timeout_ms", SC_SETTING_INT, "5000", 0,
                       "how long a stop waits for plugins and clients"),
     RANGE(100, 600000)},
    {SC_SETTING_FIELDS("plugin_user", SC_SETTING_STRING, NULL, 0,
                       "user isolated plugins run as unless their entry "
                       "names one; \"\" = the broker's")},
    SC_SETTINGS_END};

/* limits: every member an integer; `off` is where it goes in sc_config_t.
 * The engine reads the table with the entries' stride (sizeof(limit_t)),
 * as it reads a plugin's table of another ABI's entry size. */
typedef struct limit {
    sc_setting_def_t def;
    size_t off;
} limit_t;

#define LIMIT(name, dflt, lo, hi, text, field)                               \
    {{SC_SETTING_FIELDS(name, SC_SETTING_INT, dflt, 0, text), RANGE(lo, hi)}, \
     offsetof(sc_config_t, field)}

static const limit_t LIMITS[] = {
    LIMIT("max_subscriptions", "256", 1, 100000,
          "subscriptions per connection", max_subscriptions),
    LIMIT("service_rate", "50", 1, 1000000,
          "service requests per second per agency", service_rate),
    LIMIT("service_burst", "100", 1, 1000000,
          "service requests an agency may make at once", service_burst),
    LIMIT("replay_batch", "1000", 1, 100000, "messages per replay page",
          replay_batch),
    LIMIT("replay_rate", "60000", 0, 10000000,
          "messages per second of all replays together; 0 = no cap",
          replay_rate),
    LIMIT("handshake_timeout_ms", "5000", 100, 120000,
          "time a connection has for its handshake", handshake_timeout_ms),
    LIMIT("max_unauthenticated", "256", 1, 1000000,
          "connections in their handshake at once, per socket",
          max_unauthenticated),
    LIMIT("max_connections_per_address", "64", 1, 1000000,
          "open connections per IP address, per socket",
          max_connections_per_address),
    LIMIT("max_connections_per_agency", "16", 1, 1000000,
          "subscribed connections per agency", max_connections_per_agency),
    LIMIT("send_queue_bytes", "268435456", 1048576, 17179869184.0,
          "send queue per connection, in bytes", send_queue_bytes),
    LIMIT("slow_subscriber_ms", "10000", 0, 3600000,
          "a subscriber that reads nothing this long is cut; 0 = never",
          slow_subscriber_ms),
    LIMIT("max_heartbeats", "1000", 1, 1000000,
          "heartbeats per interval in total", max_heartbeats),
    LIMIT("max_channels_per_plugin", "1000", 1, 1000000,
          "distinct channels one plugin instance may publish to per run",
          max_channels_per_plugin),
    {SC_SETTINGS_END, 0},
};

static const sc_setting_def_t LISTEN_SETTINGS[] = {
    {SC_SETTING_FIELDS("publish", SC_SETTING_STRING, NULL, 1,
                       "endpoint agencies subscribe on: tcp://HOST:PORT, "
                       "ipc:///path or inproc://name")},
    {SC_SETTING_FIELDS("service", SC_SETTING_STRING, NULL, 0,
                       "endpoint of who-am-I, replay and snapshots; none = "
                       "no service socket")},
    SC_SETTINGS_END};

static const sc_setting_def_t CURVE_SETTINGS[] = {
    {SC_SETTING_FIELDS("secret_key", SC_SETTING_PATH, NULL, 1,
                       "the broker's CURVE secret key file (mode 0600)")},
    {SC_SETTING_FIELDS("public_key", SC_SETTING_PATH, NULL, 1,
                       "the broker's CURVE public key file")},
    SC_SETTINGS_END};

static const sc_setting_def_t MONITORING_SETTINGS[] = {
    {SC_SETTING_FIELDS("listen", SC_SETTING_STRING, NULL, 1,
                       "HOST:PORT of /metrics, /healthz, /api/status and the "
                       "status page")},
    SC_SETTINGS_END};

static const sc_setting_def_t AUDIT_SETTINGS[] = {
    {SC_SETTING_FIELDS("path", SC_SETTING_PATH, NULL, 1,
                       "the audit log, one JSON object per line")},
    {SC_SETTING_FIELDS("max_bytes", SC_SETTING_INT, "10485760", 0,
                       "rotate past this size; 0 = never, else at least "
                       "4096"),
     RANGE(0, 1099511627776.0)},
    {SC_SETTING_FIELDS("keep", SC_SETTING_INT, "5", 0,
                       "rotated files kept"),
     RANGE(1, 100)},
    SC_SETTINGS_END};

static const sc_setting_def_t LOGGING_SETTINGS[] = {
    {SC_SETTING_FIELDS("target", SC_SETTING_STRING, "stderr", 0,
                       "\"stderr\", \"syslog\" or a file path")},
    SC_SETTINGS_END};

static const sc_setting_def_t CONTROL_SETTINGS[] = {
    {SC_SETTING_FIELDS("enabled", SC_SETTING_BOOL, "true", 0,
                       "the control socket (sectorcast-ctl)")},
    {SC_SETTING_FIELDS("admin_keys", SC_SETTING_STRING, NULL, 0,
                       "CURVE public keys (Z85 text or key files) allowed "
                       "to use it over TCP"),
     .flags = SC_SETTING_F_LIST},
    SC_SETTINGS_END};

static void engine_problem(void *arg, const char *file, int line,
                           const char *msg)
{
    loader_t *L = arg;
    char *m = strdup(msg);
    add_problem(L, file ? file : L->path, line, m);
}

typedef enum { G_REQUIRED, G_OPTIONAL, G_DEFAULTS } group_mode_t;

/* Group `name` of the root checked against `defs` (entries `stride` bytes
 * apart) by the settings engine, defaults filled in. NULL if the group is
 * not a group, or has problems (all reported), or is absent: reported if
 * G_REQUIRED, silent if G_OPTIONAL; G_DEFAULTS gives an absent group's
 * defaults. *gp: the group as written (NULL if absent). */
static sc_settings_t *check_group(loader_t *L, const config_setting_t *root,
                                  const char *name, group_mode_t mode,
                                  const sc_setting_def_t *defs, size_t stride,
                                  config_setting_t **gp)
{
    scope_t top = {root, "", "", NULL};
    config_setting_t *g = get_group(L, &top, name, mode == G_REQUIRED);
    *gp = g;
    if (g == NULL && (mode != G_DEFAULTS || member(&top, name) != NULL))
        return NULL;
    sc_sv_t *written = NULL;
    if (g != NULL && (written = sc_sv_from_config(g)) == NULL) {
        err(L, g, "out of memory");
        return NULL;
    }
    const char *file = g && config_setting_source_file(g)
                           ? config_setting_source_file(g)
                           : L->path;
    sc_settings_where_t w = {.file = file, .dir = L->cfg->dir,
                             .line = line_of(g), .group = name};
    sc_settings_t *s = NULL;
    sc_settings_validate(&w, written, defs, stride, engine_problem, L, &s);
    sc_sv_destroy(&written);
    return s;
}

/* The resolved value at `key` (declared in the table, so present unless
 * optional without a default and not written). */
static int64_t set_int(const sc_settings_t *s, const char *key)
{
    int64_t v = 0;
    (void)sc_settings_int(s, key, &v);
    return v;
}

static const char *set_str(const sc_settings_t *s, const char *key)
{
    const char *v = NULL;
    return sc_settings_string(s, key, &v) == 0 ? v : NULL;
}

/* The members as written, for the checks a table cannot express, which
 * run even when the engine found problems elsewhere in the group:
 * written() whatever its type; written_str() / written_int() only if it
 * has the type the table declares (else the engine reported it). */
static config_setting_t *written(config_setting_t *g, const char *key)
{
    return g != NULL ? config_setting_get_member(g, key) : NULL;
}

static const char *written_str(config_setting_t *g, const char *key,
                               config_setting_t **sp)
{
    config_setting_t *m = *sp = written(g, key);
    return m != NULL && config_setting_type(m) == CONFIG_TYPE_STRING
               ? config_setting_get_string(m)
               : NULL;
}

/* written_str() of a required string: NULL for "" too, which the engine
 * reported ("required but empty"), as it reports "" for any path */
static const char *written_required(config_setting_t *g, const char *key,
                                    config_setting_t **sp)
{
    const char *v = written_str(g, key, sp);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool written_int(config_setting_t *g, const char *key, int64_t *v,
                        config_setting_t **sp)
{
    config_setting_t *m = *sp = written(g, key);
    int t = m != NULL ? config_setting_type(m) : CONFIG_TYPE_NONE;
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return false;
    *v = (int64_t)config_setting_get_int64(m);
    return true;
}

/* An integer whose table range is 0..hi where 0 means `zero` and the
 * values between 0 and `lo` mean nothing: reported in the engine's words. */
static void zero_or_at_least(loader_t *L, config_setting_t *g,
                             const char *group, const char *key, int64_t lo,
                             int64_t hi, const char *zero)
{
    config_setting_t *m;
    int64_t n;
    if (written_int(g, key, &n, &m) && n > 0 && n < lo)
        err(L, m, "setting '%s.%s': %lld is out of range (0 = %s, or "
                  "%lld..%lld)", group, key, (long long)n, zero,
            (long long)lo, (long long)hi);
}

static void load_gateway(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    config_setting_t *g = NULL, *m;
    sc_settings_t *s = check_group(L, root, "gateway", G_REQUIRED,
                                   GATEWAY_SETTINGS,
                                   sizeof GATEWAY_SETTINGS[0], &g);
    /* what the table cannot say */
    const char *v = written_required(g, "id", &m);
    if (v != NULL && !id_valid(v))
        err(L, m, "setting 'gateway.id': \"%s\" is not a valid id "
                  "([a-z0-9_-]+)", v);
    zero_or_at_least(L, g, "gateway", "heartbeat_ms", 50, 3600000, "off");
    v = written_str(g, "plugin_user", &m);
    if (v != NULL && v[0] != '\0' && getpwnam(v) == NULL)
        err(L, m, "setting 'gateway.plugin_user': no such user '%s'", v);
    if (s == NULL)
        return;
    cfg->gateway_id = xdup(L, set_str(s, "id"));
    cfg->data_dir = xdup(L, set_str(s, "data_dir"));
    cfg->max_data_bytes = set_int(s, "max_data_bytes");
    cfg->log_level = xdup(L, set_str(s, "log_level"));
    cfg->durability_full = strcmp(set_str(s, "durability"), "full") == 0;
    cfg->heartbeat_ms = set_int(s, "heartbeat_ms");
    cfg->sign_threads = (int)set_int(s, "sign_threads");
    cfg->stop_timeout_ms = set_int(s, "stop_timeout_ms");
    if ((v = set_str(s, "plugin_user")) != NULL)
        cfg->plugin_user = xdup(L, v);
    sc_settings_destroy(&s);
}

static void load_limits(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    config_setting_t *g = NULL;
    sc_settings_t *s = check_group(L, root, "limits", G_DEFAULTS,
                                   &LIMITS[0].def, sizeof LIMITS[0], &g);
    zero_or_at_least(L, g, "limits", "slow_subscriber_ms", 1000, 3600000,
                     "never cut");
    if (s == NULL)
        return;
    for (const limit_t *l = LIMITS; l->def.name != NULL; l++)
        *(int64_t *)((char *)cfg + l->off) = set_int(s, l->def.name);
    sc_settings_destroy(&s);
    /* the queue must hold at least 16 messages of the largest size (when
     * gateway.max_data_bytes is known: else the gateway's own problem is
     * what is reported) */
    int64_t largest = (cfg->max_data_bytes + 2048) / 3 * 4 + 772;
    if (cfg->max_data_bytes > 0 && cfg->send_queue_bytes < 16 * largest)
        err(L, written(g, "send_queue_bytes"),
            "setting 'limits.send_queue_bytes': %lld cannot hold 16 messages "
            "of the largest size gateway.max_data_bytes allows: at least %lld",
            (long long)cfg->send_queue_bytes, (long long)(16 * largest));
}

/* Every setting of the scalar groups, for `sectorcastd --settings`. */
void sc_config_describe(FILE *out)
{
    static const struct {
        const char *name;
        const sc_setting_def_t *defs;
        size_t stride;
    } groups[] = {
#define G(name, defs, stride) {name, defs, stride}
        G("gateway", GATEWAY_SETTINGS, sizeof(sc_setting_def_t)),
        G("listen", LISTEN_SETTINGS, sizeof(sc_setting_def_t)),
        G("limits", &LIMITS[0].def, sizeof(limit_t)),
        G("curve", CURVE_SETTINGS, sizeof(sc_setting_def_t)),
        G("control", CONTROL_SETTINGS, sizeof(sc_setting_def_t)),
        G("monitoring", MONITORING_SETTINGS, sizeof(sc_setting_def_t)),
        G("audit", AUDIT_SETTINGS, sizeof(sc_setting_def_t)),
        G("logging", LOGGING_SETTINGS, sizeof(sc_setting_def_t)),
#undef G
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        fprintf(out, "%s:\n", groups[i].name);
        sc_settings_describe_table(out, groups[i].defs, groups[i].stride);
    }
}

static void load_retention(loader_t *L, const config_setting_t *root)
{
    static const char *const known[] = {"subtree", "max_messages",
                                        "max_age_days", NULL};
    sc_config_t *cfg = L->cfg;
    scope_t top = {root, "", "", NULL};
    config_setting_t *list = get_list(L, &top, "retention", false);
    if (list == NULL)
        return;
    int n = config_setting_length(list);
    cfg->retention = calloc((size_t)n + 1, sizeof *cfg->retention);
    if (cfg->retention == NULL)
        return;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (!is_group(g)) {
            err(L, g, "retention[%d] must be a group { subtree = ...; }", i);
            continue;
        }
        scope_t sc = {g, "", "retention.", "a retention rule"};
        check_unknown(L, &sc, known);
        sc_cfg_retention_t *r = &cfg->retention[cfg->n_retention];
        config_setting_t *s = NULL;
        const char *st = get_string(L, &sc, "subtree", true, &s);
        if (st == NULL || !check_subtree(L, s, "retention: ", "subtree", st))
            continue;
        for (size_t k = 0; k < cfg->n_retention; k++)
            if (strcmp(cfg->retention[k].subtree, st) == 0)
                err(L, s, "retention: duplicate rule for subtree '%s' (first "
                          "at line %d)", st, cfg->retention[k].line);
        int64_t v;
        if (get_int(L, &sc, "max_messages", &v, &s) > 0) {
            if (v < 0)
                err(L, s, "retention: 'max_messages' must be >= 0");
            else
                r->max_messages = v;
        }
        if (get_int(L, &sc, "max_age_days", &v, &s) > 0) {
            if (v < 0 || v > 100000)
                err(L, s, "retention: 'max_age_days' must be in 0..100000");
            else
                r->max_age_s = v * 86400;
        }
        r->subtree = xdup(L, st);
        r->line = line_of(g);
        cfg->n_retention++;
    }
}

static void load_listen(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    config_setting_t *g = NULL, *ps, *ss;
    sc_settings_t *s = check_group(L, root, "listen", G_REQUIRED,
                                   LISTEN_SETTINGS, sizeof LISTEN_SETTINGS[0],
                                   &g);
    char buf[160];
    const char *pub = written_required(g, "publish", &ps);
    const char *svc = written_str(g, "service", &ss);
    const char *why;
    if (pub != NULL && (why = endpoint_problem(pub, buf, sizeof buf)) != NULL)
        err(L, ps, "setting 'listen.publish': bad endpoint '%s': %s", pub, why);
    if (svc != NULL && (why = endpoint_problem(svc, buf, sizeof buf)) != NULL)
        err(L, ss, "setting 'listen.service': bad endpoint '%s': %s", svc, why);
    else if (svc != NULL && pub != NULL && strcmp(pub, svc) == 0)
        err(L, ss, "setting 'listen.service': must differ from "
                   "listen.publish (both '%s')", svc);
    if (s == NULL)
        return;
    cfg->publish_endpoint = xdup(L, set_str(s, "publish"));
    if ((svc = set_str(s, "service")) != NULL)
        cfg->service_endpoint = xdup(L, svc);
    sc_settings_destroy(&s);
}

static void load_curve(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    config_setting_t *g = NULL;
    sc_settings_t *s = check_group(L, root, "curve", G_OPTIONAL,
                                   CURVE_SETTINGS, sizeof CURVE_SETTINGS[0],
                                   &g);
    if (s == NULL)
        return;
    cfg->curve_secret_file = xdup(L, set_str(s, "secret_key"));
    cfg->curve_public_file = xdup(L, set_str(s, "public_key"));
    sc_settings_destroy(&s);
    if (!L->check_files)
        return;
    config_setting_t *ss = written(g, "secret_key"),
                     *ps = written(g, "public_key");
    if (cfg->curve_secret_file != NULL)
        check_secret(L, ss, "curve secret key: ", "file",
                     cfg->curve_secret_file);
    if (cfg->curve_public_file != NULL &&
        check_readable(L, ps, "curve public key: ", "file",
                       cfg->curve_public_file)) {
        char key[41], e[512] = "";
        if (sc_curve_read(cfg->curve_public_file, false, key, e, sizeof e) != 0)
            err(L, ps, "curve public key: %s", e[0] ? e : "unreadable");
    }
}

static void load_signing(loader_t *L, const config_setting_t *root)
{
    static const char *const known[] = {"keys", "active", "channels",
                                        "jwks_file", NULL};
    static const char *const key_known[] = {"id", "file", NULL};
    static const char *const rule_known[] = {"subtree", "active", NULL};
    sc_config_t *cfg = L->cfg;
    scope_t top = {root, "", "", NULL};
    scope_t sc = {get_group(L, &top, "signing", true), "", "signing.",
                  "group 'signing'"};

    const char *jwks = NULL;
    if (sc.g != NULL) {
        check_unknown(L, &sc, known);
        jwks = get_string(L, &sc, "jwks_file", false, NULL);
    }
    if (jwks != NULL) {
        cfg->jwks_file = resolve(L, jwks);
    } else if (cfg->data_dir != NULL) {
        cfg->jwks_file = strf("%s/jwks.json", cfg->data_dir);
        if (cfg->jwks_file == NULL)
            err(L, NULL, "out of memory");
    }
    if (sc.g == NULL)
        return;

    /* keys */
    config_setting_t *keys = get_list(L, &sc, "keys", true);
    if (keys != NULL && config_setting_length(keys) == 0)
        err(L, keys, "'keys' must list at least one signing key");
    size_t nk = keys ? (size_t)config_setting_length(keys) : 0;
    cfg->keys = calloc(nk ? nk : 1, sizeof *cfg->keys);
    seen_t *seen = calloc(nk ? nk : 1, sizeof *seen);
    if (cfg->keys == NULL || seen == NULL) {
        free(seen);
        err(L, NULL, "out of memory");
        return;
    }
    size_t n_seen = 0;
    for (size_t i = 0; i < nk; i++) {
        config_setting_t *g = config_setting_get_elem(keys, (unsigned)i);
        if (!is_group(g))
            continue;
        char pfx[96];
        snprintf(pfx, sizeof pfx, "signing.keys[%zu]: ", i);
        scope_t ks = {g, pfx, "", NULL};
        config_setting_t *s = NULL, *fs = NULL;
        const char *id = get_string(L, &ks, "id", true, &s);
        if (id != NULL) {
            if (!id_valid(id))
                err(L, s, "%s'id' value '%s' is not a valid id ([a-z0-9_-]+)",
                    pfx, id);
            check_dup(L, seen, &n_seen, s, "signing key id", id);
            snprintf(pfx, sizeof pfx, "signing key '%.60s': ", id);
        }
        check_unknown(L, &ks, key_known);
        const char *file = get_string(L, &ks, "file", true, &fs);
        sc_cfg_sigkey_t *k = &cfg->keys[cfg->n_keys++];
        k->line = line_of(g);
        k->id = id ? xdup(L, id) : NULL;
        k->file = file ? resolve(L, file) : NULL;
        if (L->check_files && k->file != NULL)
            check_secret(L, fs, pfx, "file", k->file);
    }

    /* active */
    config_setting_t *as = NULL;
    const char *active = get_string(L, &sc, "active", true, &as);
    if (active != NULL) {
        bool found = false;
        for (size_t i = 0; i < n_seen && !found; i++)
            found = strcmp(seen[i].name, active) == 0;
        if (!found && keys != NULL)
            err(L, as, "'active' names key '%s', which is not in signing.keys",
                active);
        cfg->active_key = xdup(L, active);
    }

    /* channels: per-subtree active key */
    config_setting_t *rules = get_list(L, &sc, "channels", false);
    size_t nr = rules ? (size_t)config_setting_length(rules) : 0;
    cfg->sign_rules = calloc(nr ? nr : 1, sizeof *cfg->sign_rules);
    if (cfg->sign_rules == NULL) {
        free(seen);
        err(L, NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < nr; i++) {
        config_setting_t *g = config_setting_get_elem(rules, (unsigned)i);
        if (!is_group(g))
            continue;
        char pfx[64];
        snprintf(pfx, sizeof pfx, "signing.channels[%zu]: ", i);
        scope_t rs = {g, pfx, "", NULL};
        check_unknown(L, &rs, rule_known);
        config_setting_t *s = NULL;
        sc_cfg_sign_rule_t *r = &cfg->sign_rules[cfg->n_sign_rules++];
        r->line = line_of(g);
        const char *sub = get_string(L, &rs, "subtree", true, &s);
        if (sub != NULL) {
            if (check_subtree(L, s, pfx, "subtree", sub)) {
                for (size_t j = 0; j + 1 < cfg->n_sign_rules; j++) {
                    if (cfg->sign_rules[j].subtree != NULL &&
                        strcmp(cfg->sign_rules[j].subtree, sub) == 0) {
                        err(L, s, "duplicate signing rule for subtree '%s' "
                                  "(first at line %d)",
                            sub, cfg->sign_rules[j].line);
                        break;
                    }
                }
            }
            r->subtree = xdup(L, sub);
        }
        const char *act = get_string(L, &rs, "active", true, &s);
        if (act != NULL) {
            bool found = false;
            for (size_t j = 0; j < n_seen && !found; j++)
                found = strcmp(seen[j].name, act) == 0;
            if (!found && keys != NULL)
                err(L, s, "%s'active' names key '%s', which is not in "
                          "signing.keys", pfx, act);
            r->active = xdup(L, act);
        }
    }
    free(seen);
}

static void load_sectors(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    scope_t top = {root, "", "", NULL};
    config_setting_t *g = get_group(L, &top, "sectors", true);
    if (g == NULL)
        return;
    size_t n = (size_t)config_setting_length(g);
    if (n == 0) {
        err(L, g, "'sectors' must define at least one sector");
        return;
    }
    cfg->sectors = calloc(n, sizeof *cfg->sectors);
    if (cfg->sectors == NULL) {
        err(L, NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char pfx[96];
        snprintf(pfx, sizeof pfx, "sector '%.60s': ", name);
        if (!id_valid(name))
            err(L, s, "sector name '%s' is not a valid id ([a-z0-9_-]+)", name);
        sc_cfg_sector_t *sec = &cfg->sectors[cfg->n_sectors++];
        sec->line = line_of(s);
        sec->name = xdup(L, name);
        if (!string_array(L, s, "", name))
            continue;
        if (config_setting_length(s) == 0)
            err(L, s, "%sno subtrees (write e.g. %s = [ \"%s.\" ];)", pfx,
                name, name);
        sec->subtrees = get_subtrees(L, s, pfx, "subtree", &sec->n_subtrees);
    }
}

static void load_agencies(loader_t *L, const config_setting_t *root)
{
    static const char *const known[] = {"id", "public_key", "grants", NULL};
    sc_config_t *cfg = L->cfg;
    scope_t top = {root, "", "", NULL};
    config_setting_t *list = get_list(L, &top, "agencies", false);
    size_t n = list ? (size_t)config_setting_length(list) : 0;
    cfg->agencies = calloc(n ? n : 1, sizeof *cfg->agencies);
    seen_t *seen = calloc(n ? n : 1, sizeof *seen);
    if (cfg->agencies == NULL || seen == NULL) {
        free(seen);
        err(L, NULL, "out of memory");
        return;
    }
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (!is_group(g))
            continue;
        char pfx[96];
        snprintf(pfx, sizeof pfx, "agencies[%zu]: ", i);
        scope_t as = {g, pfx, "", NULL};
        sc_cfg_agency_t *a = &cfg->agencies[cfg->n_agencies++];
        a->line = line_of(g);

        config_setting_t *s = NULL;
        const char *id = get_string(L, &as, "id", true, &s);
        if (id != NULL) {
            if (!id_valid(id))
                err(L, s, "%s'id' value '%s' is not a valid id ([a-z0-9_-]+)",
                    pfx, id);
            check_dup(L, seen, &n_seen, s, "agency id", id);
            a->id = xdup(L, id);
            snprintf(pfx, sizeof pfx, "agency '%.60s': ", id);
        }
        check_unknown(L, &as, known);

        const char *pk = get_string(L, &as, "public_key", true, &s);
        uint8_t raw[32];
        if (pk == NULL) {
            /* reported */
        } else if (strlen(pk) == SC_Z85_KEY_LEN &&
                   zmq_z85_decode(raw, pk) != NULL) {
            memcpy(a->public_key, pk, SC_Z85_KEY_LEN + 1);
        } else if (strlen(pk) == SC_Z85_KEY_LEN && strchr(pk, '/') == NULL &&
                   strchr(pk, '.') == NULL) {
            err(L, s, "%s'public_key' is not a valid Z85 key (40 characters "
                      "as written by zmq_curve_keypair)", pfx);
        } else {
            a->public_key_file = resolve(L, pk);
            const char *f = a->public_key_file;
            if (f != NULL && L->check_files) {
                if (check_readable(L, s, pfx, "public key file", f)) {
                    char e[512] = "";
                    if (sc_curve_read(f, false, a->public_key, e, sizeof e) != 0) {
                        a->public_key[0] = '\0';
                        err(L, s, "%s%s", pfx, e[0] ? e : "bad public key file");
                    }
                }
            } else if (f != NULL && access(f, R_OK) == 0) {
                /* Not checking files: use the key if it is there and good. */
                char e[512];
                if (sc_curve_read(f, false, a->public_key, e, sizeof e) != 0)
                    a->public_key[0] = '\0';
            }
        }
        if (a->public_key[0] != '\0') {
            for (size_t j = 0; j + 1 < cfg->n_agencies; j++) {
                if (strcmp(cfg->agencies[j].public_key, a->public_key) == 0) {
                    err(L, s, "%ssame public key as agency '%s' (line %d)", pfx,
                        cfg->agencies[j].id ? cfg->agencies[j].id : "?",
                        cfg->agencies[j].line);
                    break;
                }
            }
        }

        config_setting_t *gs = member(&as, "grants");
        if (gs == NULL)
            missing(L, &as, "grants");
        else if (string_array(L, gs, pfx, "grants"))
            a->grants = get_subtrees(L, gs, pfx, "grant", &a->n_grants);
    }
    free(seen);
}

static void free_plugin(sc_cfg_plugin_t *p)
{
    free(p->name);
    free(p->path);
    free(p->sector);
    free(p->user);
    free_strings(p->channels, p->n_channels);
    sc_sv_destroy(&p->settings_written);
    sc_settings_destroy(&p->settings);
    free_strings(p->receives, p->n_receives);
    memset(p, 0, sizeof *p);
}

/* The plugin's `settings` group, as written (checked later against the
 * plugin's own table by the settings engine). */
static void load_plugin_settings(loader_t *L, sc_cfg_plugin_t *p,
                                 const config_setting_t *g, const char *pfx)
{
    p->settings_written = sc_sv_from_config(g);
    if (p->settings_written == NULL)
        err(L, g, "%sout of memory", pfx);
}

static void load_plugins(loader_t *L, const config_setting_t *root)
{
    static const char *const known[] = {"name",     "path",     "sector",
                                        "channels", "settings", "enabled",
                                        "isolation", "receives", "user",
                                        "publish_window", NULL};
    sc_config_t *cfg = L->cfg;
    scope_t top = {root, "", "", NULL};
    config_setting_t *list = get_list(L, &top, "plugins", false);
    size_t n = list ? (size_t)config_setting_length(list) : 0;
    cfg->plugins = calloc(n ? n : 1, sizeof *cfg->plugins);
    seen_t *seen = calloc(n ? n : 1, sizeof *seen);
    if (cfg->plugins == NULL || seen == NULL) {
        free(seen);
        err(L, NULL, "out of memory");
        return;
    }
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (!is_group(g))
            continue;
        char pfx[96];
        snprintf(pfx, sizeof pfx, "plugins[%zu]: ", i);
        scope_t ps = {g, pfx, "", NULL};
        sc_cfg_plugin_t p = {0};
        p.line = line_of(g);

        config_setting_t *s = NULL;
        const char *name = get_string(L, &ps, "name", true, &s);
        if (name != NULL) {
            if (!id_valid(name))
                err(L, s, "%s'name' value '%s' is not a valid id "
                          "([a-z0-9_-]+)", pfx, name);
            check_dup(L, seen, &n_seen, s, "plugin name", name);
            p.name = xdup(L, name);
            snprintf(pfx, sizeof pfx, "plugin '%.60s': ", name);
        }
        check_unknown(L, &ps, known);

        bool enabled = true;
        get_bool(L, &ps, "enabled", &enabled);

        const char *iso = get_string(L, &ps, "isolation", false, &s);
        if (iso != NULL) {
            if (strcmp(iso, "process") == 0)
                p.isolate_process = true;
            else if (strcmp(iso, "thread") != 0)
                err(L, s, "%s'isolation' must be \"thread\" or \"process\" "
                          "(got '%s')", pfx, iso);
        }
        /* a child's frames in flight (plugin_host.h) */
        p.publish_window = SC_PLUGIN_CHILD_WINDOW;
        int64_t win = 0;
        if (get_int(L, &ps, "publish_window", &win, &s) == 1) {
            if (win < 1 || win > SC_PLUGIN_CHILD_WINDOW_MAX)
                err(L, s, "%s'publish_window' must be 1..%d (got %lld)", pfx,
                    SC_PLUGIN_CHILD_WINDOW_MAX, (long long)win);
            else
                p.publish_window = win;
        }

        /* user: the unprivileged user an isolated child drops to
         * (default gateway.plugin_user) */
        const char *user = get_string(L, &ps, "user", false, &s);
        if (user != NULL) {
            if (!p.isolate_process)
                err(L, s, "%s'user' needs isolation = \"process\" (a plugin "
                          "thread runs as the broker's user)", pfx);
            else if (user[0] != '\0' && getpwnam(user) == NULL)
                err(L, s, "%s'user': no such user '%s'", pfx, user);
        } else if (p.isolate_process && cfg->plugin_user != NULL) {
            user = cfg->plugin_user;
        }
        if (user != NULL && user[0] != '\0' && p.isolate_process)
            p.user = xdup(L, user);

        const char *path = get_string(L, &ps, "path", true, &s);
        if (path != NULL) {
            p.path = resolve(L, path);
            struct stat st;
            if (L->check_plugin_files && enabled && p.path != NULL) {
                if (stat(p.path, &st) != 0)
                    err(L, s, "plugin path '%s' not found", p.path);
                else if (!S_ISREG(st.st_mode))
                    err(L, s, "plugin path '%s' is not a regular file", p.path);
            }
        }

        /* receives: the subtrees a sink plugin reads (any sector's); a
         * pure sink needs no sector and no channels */
        config_setting_t *rcv = member(&ps, "receives");
        if (rcv != NULL && string_array(L, rcv, pfx, "receives")) {
            if (config_setting_length(rcv) == 0)
                err(L, rcv, "%s'receives' must name at least one subtree",
                    pfx);
            p.receives = get_subtrees(L, rcv, pfx, "receives", &p.n_receives);
            p.receives_line = line_of(rcv);
            for (size_t c = 0; c < p.n_receives; c++) {
                const char *ch = p.receives[c];
                size_t len = strlen(ch);
                if (!sc_subtree_valid(ch, len))
                    continue;
                bool inside = false;
                for (size_t j = 0; j < cfg->n_sectors && !inside; j++)
                    for (size_t k = 0; k < cfg->sectors[j].n_subtrees &&
                                       !inside; k++)
                        inside = sc_subtree_covers(cfg->sectors[j].subtrees[k],
                                                   ch, len);
                if (inside)
                    continue;
                const config_setting_t *e =
                    config_setting_get_elem(rcv, (unsigned)c);
                err(L, line_of(e) ? e : rcv,
                    "plugin '%s' receives '%s', which is outside every "
                    "sector of this gateway",
                    p.name ? p.name : "?", ch);
            }
        }
        bool sink = p.n_receives > 0;

        const sc_cfg_sector_t *sec = NULL;
        config_setting_t *secs = NULL;
        const char *sector = get_string(L, &ps, "sector", !sink, &secs);
        if (sector == NULL && sink)
            p.sector = xdup(L, "");
        if (sector != NULL) {
            for (size_t j = 0; j < cfg->n_sectors && sec == NULL; j++)
                if (cfg->sectors[j].name != NULL &&
                    strcmp(cfg->sectors[j].name, sector) == 0)
                    sec = &cfg->sectors[j];
            if (sec == NULL)
                err(L, secs, "%sunknown sector '%s'", pfx, sector);
            p.sector = xdup(L, sector);
        }

        config_setting_t *chs = member(&ps, "channels");
        if (chs == NULL) {
            if (!sink)
                missing(L, &ps, "channels");
        } else if (string_array(L, chs, pfx, "channels")) {
            if (config_setting_length(chs) == 0)
                err(L, chs, "%s'channels' must grant at least one channel",
                    pfx);
            p.channels = get_subtrees(L, chs, pfx, "channel", &p.n_channels);
            /* Only well-formed channels are checked against the sector. */
            /* A sector without subtrees was reported already. */
            for (size_t c = 0; sec != NULL && sec->n_subtrees > 0 &&
                               c < p.n_channels; c++) {
                const char *ch = p.channels[c];
                size_t len = strlen(ch);
                if (!sc_subtree_valid(ch, len))
                    continue;
                bool inside = false;
                for (size_t k = 0; k < sec->n_subtrees && !inside; k++)
                    inside = sc_subtree_covers(sec->subtrees[k], ch, len);
                if (inside)
                    continue;
                char subs[512] = "";
                size_t used = 0;
                for (size_t k = 0; k < sec->n_subtrees && used < sizeof subs;
                     k++) {
                    int w = snprintf(subs + used, sizeof subs - used, "%s%s",
                                     k ? ", " : "", sec->subtrees[k]);
                    if (w < 0)
                        break;
                    used += (size_t)w;
                }
                const config_setting_t *e =
                    config_setting_get_elem(chs, (unsigned)c);
                err(L, line_of(e) ? e : chs,
                    "plugin '%s' is granted channel '%s' outside its sector "
                    "'%s' (%s)",
                    p.name ? p.name : "?", ch, sec->name, subs);
            }
        }

        p.settings_line = p.line;
        config_setting_t *set = get_group(L, &ps, "settings", false);
        if (set != NULL) {
            p.settings_line = line_of(set);
            load_plugin_settings(L, &p, set, pfx);
        }

        if (enabled)
            cfg->plugins[cfg->n_plugins++] = p;
        else
            free_plugin(&p);
    }
    free(seen);
}

/* ------------------------------------------------------------------------
 * Public surface
 * ---------------------------------------------------------------------- */

static sc_config_t *load(const char *path, bool check_files,
                         bool check_plugin_files, sc_diag_t *diag);

sc_config_t *sc_config_load(const char *path, bool check_files,
                            sc_diag_t *diag)
{
    return load(path, check_files, check_files, diag);
}

sc_config_t *sc_config_load_to_run(const char *path, sc_diag_t *diag)
{
    return load(path, true, false, diag);
}

/* libconfig (1.5) opens every @include'd file itself and blocks forever
 * on a FIFO or a device: check each one is a regular file first, as
 * FILE:LINE errors, following nested includes (relative names resolve
 * against the main config's directory, as libconfig does). */
static int check_includes(const char *file, const char *dir, int depth,
                          sc_diag_t *diag)
{
    if (depth > 10) {
        sc_diag_add(diag, file, 0, "@include nested more than 10 deep");
        return -1;
    }
    FILE *f = fopen(file, "r");
    if (!f)
        return 0; /* libconfig reports it */
    char line[4096];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "@include", 8) != 0)
            continue;
        p += 8;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (!e)
            continue; /* libconfig reports the syntax */
        char name[4096], full[8192];
        snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
        if (name[0] == '/')
            snprintf(full, sizeof full, "%s", name);
        else
            snprintf(full, sizeof full, "%s/%s", dir, name);
        struct stat st;
        if (stat(full, &st) != 0) {
            sc_diag_add(diag, file, n, "@include \"%s\": %s", name,
                        strerror(errno));
            bad++;
        } else if (!S_ISREG(st.st_mode)) {
            sc_diag_add(diag, file, n,
                        "@include \"%s\": not a regular file (a FIFO, "
                        "device or directory cannot be included)",
                        name);
            bad++;
        } else if (check_includes(full, dir, depth + 1, diag) != 0) {
            bad++;
        }
    }
    fclose(f);
    return bad ? -1 : 0;
}

/* control, monitoring, audit, logging and gateway.stop_timeout_ms
 * (docs/configuration.md, docs/operations.md) */
/* An integer setting's default as its table declares it. */
static int64_t default_int(const sc_setting_def_t *defs, const char *name)
{
    for (; defs->name != NULL; defs++)
        if (strcmp(defs->name, name) == 0 && defs->default_value != NULL)
            return strtoll(defs->default_value, NULL, 10);
    return 0;
}

/* control.admin_keys: each a Z85 key or a key file (resolved against the
 * config's directory), reported at its own element */
static void load_admin_keys(loader_t *L, config_setting_t *ks)
{
    sc_config_t *cfg = L->cfg;
    int k = config_setting_length(ks);
    cfg->control_admin_keys = calloc((size_t)k + 1, 41);
    if (cfg->control_admin_keys == NULL) {
        err(L, ks, "out of memory");
        return;
    }
    for (int i = 0; i < k; i++) {
        config_setting_t *e = config_setting_get_elem(ks, (unsigned)i);
        const char *v = config_setting_get_string(e);
        char *key = cfg->control_admin_keys[cfg->n_control_admin_keys];
        uint8_t raw[32];
        if (v && strlen(v) == SC_Z85_KEY_LEN && !strchr(v, '/') &&
            zmq_z85_decode(raw, v) != NULL) {
            memcpy(key, v, SC_Z85_KEY_LEN + 1);
            cfg->n_control_admin_keys++;
            continue;
        }
        char *f = resolve(L, v ? v : "");
        char e2[512] = "";
        if (f == NULL)
            continue;
        if (L->check_files &&
            !check_readable(L, e, "control: ", "admin key file", f)) {
            free(f);
            continue;
        }
        if (access(f, R_OK) == 0 &&
            sc_curve_read(f, false, key, e2, sizeof e2) == 0)
            cfg->n_control_admin_keys++;
        else if (L->check_files)
            err(L, e, "control: %s", e2[0] ? e2 : "bad public key file");
        free(f);
    }
    if (cfg->n_control_admin_keys > 0 && cfg->curve_secret_file == NULL)
        err(L, ks, "setting 'control.admin_keys': needs the 'curve' group "
                   "(the control socket uses the broker's key)");
}

static void load_ops(loader_t *L, const config_setting_t *root)
{
    sc_config_t *cfg = L->cfg;
    config_setting_t *g = NULL, *m;
    sc_settings_t *s;
    int b = 1;

    s = check_group(L, root, "control", G_DEFAULTS, CONTROL_SETTINGS,
                    sizeof CONTROL_SETTINGS[0], &g);
    if (s != NULL) {
        (void)sc_settings_bool(s, "enabled", &b);
        cfg->control_enabled = b != 0;
        sc_settings_destroy(&s);
        if ((m = written(g, "admin_keys")) != NULL)
            load_admin_keys(L, m);
    }

    s = check_group(L, root, "monitoring", G_OPTIONAL, MONITORING_SETTINGS,
                    sizeof MONITORING_SETTINGS[0], &g);
    const char *v = written_required(g, "listen", &m);
    char host[64];
    int port;
    const char *why = NULL;
    if (v != NULL && sc_http_parse_listen(v, host, sizeof host, &port,
                                          &why) != 0)
        err(L, m, "setting 'monitoring.listen': bad address '%s': %s", v, why);
    else if (s != NULL)
        cfg->http_listen = xdup(L, set_str(s, "listen"));
    sc_settings_destroy(&s);

    /* the rotation limits apply (on reload too) even without the group */
    cfg->audit_max_bytes = default_int(AUDIT_SETTINGS, "max_bytes");
    cfg->audit_keep = default_int(AUDIT_SETTINGS, "keep");
    s = check_group(L, root, "audit", G_OPTIONAL, AUDIT_SETTINGS,
                    sizeof AUDIT_SETTINGS[0], &g);
    zero_or_at_least(L, g, "audit", "max_bytes", 4096, 1099511627776LL,
                     "never rotate");
    if (s != NULL) {
        cfg->audit_path = xdup(L, set_str(s, "path"));
        cfg->audit_max_bytes = set_int(s, "max_bytes");
        cfg->audit_keep = set_int(s, "keep");
        sc_settings_destroy(&s);
    }

    s = check_group(L, root, "logging", G_OPTIONAL, LOGGING_SETTINGS,
                    sizeof LOGGING_SETTINGS[0], &g);
    v = written_str(g, "target", &m);
    if (v != NULL && v[0] == '\0') {
        err(L, m, "setting 'logging.target': must not be empty (\"stderr\", "
                  "\"syslog\" or a file path)");
    } else if (s != NULL && v != NULL) {
        v = set_str(s, "target");
        if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0)
            cfg->log_target = xdup(L, v);
        else
            cfg->log_target = resolve(L, v);
    }
    sc_settings_destroy(&s);
}

static sc_config_t *load(const char *path, bool check_files,
                         bool check_plugin_files, sc_diag_t *diag)
{
    if (path == NULL)
        return NULL;
    loader_t L = {.path = path, .diag = diag, .check_files = check_files,
                  .check_plugin_files = check_plugin_files};

    /* libconfig says only "file I/O error"; say which. */
    struct stat st;
    if (stat(path, &st) != 0) {
        sc_diag_add(diag, path, 0, "cannot read config: %s", strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sc_diag_add(diag, path, 0, "cannot read config: not a regular file");
        return NULL;
    }

    sc_config_t *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        sc_diag_add(diag, path, 0, "out of memory");
        return NULL;
    }
    L.cfg = cfg;
    cfg->path = strdup(path);
    cfg->dir = config_dir(path);
    if (cfg->path == NULL || cfg->dir == NULL) {
        sc_diag_add(diag, path, 0, "cannot resolve the config's directory: %s",
                    strerror(errno));
        sc_config_destroy(&cfg);
        return NULL;
    }

    if (check_includes(path, cfg->dir, 0, diag) != 0) {
        sc_config_destroy(&cfg);
        return NULL;
    }
    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, cfg->dir);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            sc_diag_add(diag, path, 0, "cannot read config: %s",
                        config_error_text(&lc));
        else
            sc_diag_add(diag,
                        config_error_file(&lc) ? config_error_file(&lc) : path,
                        config_error_line(&lc), "%s", config_error_text(&lc));
        config_destroy(&lc);
        sc_config_destroy(&cfg);
        return NULL;
    }

    static const char *const known[] = {"gateway", "listen",   "curve",
                                        "signing", "sectors",  "agencies",
                                        "plugins", "limits",   "retention",
                                        "control", "monitoring", "audit",
                                        "logging", NULL};
    const config_setting_t *root = config_root_setting(&lc);
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;
        for (size_t k = 0; known[k] != NULL && !ok; k++)
            ok = strcmp(known[k], name) == 0;
        if (!ok)
            err(&L, m, "unknown top-level setting '%s'", name);
    }

    load_gateway(&L, root);
    load_listen(&L, root);
    load_curve(&L, root);
    load_signing(&L, root);
    load_sectors(&L, root);
    load_agencies(&L, root);
    load_plugins(&L, root);
    load_limits(&L, root);
    for (size_t i = 0; i < cfg->n_plugins; i++)
        cfg->plugins[i].max_channels = cfg->max_channels_per_plugin;
    load_retention(&L, root);
    load_ops(&L, root);

    flush_problems(&L);    /* file names may belong to lc: before destroy */
    config_destroy(&lc);
    if (L.errors > 0)
        sc_config_destroy(&cfg);
    return cfg;
}

void sc_config_destroy(sc_config_t **cfg_p)
{
    if (cfg_p == NULL || *cfg_p == NULL)
        return;
    sc_config_t *c = *cfg_p;
    free(c->path);
    free(c->dir);
    free(c->gateway_id);
    free(c->data_dir);
    free(c->plugin_user);
    free(c->log_level);
    free(c->publish_endpoint);
    free(c->service_endpoint);
    free(c->curve_secret_file);
    free(c->curve_public_file);
    for (size_t i = 0; i < c->n_keys; i++) {
        free(c->keys[i].id);
        free(c->keys[i].file);
    }
    free(c->keys);
    free(c->active_key);
    for (size_t i = 0; i < c->n_sign_rules; i++) {
        free(c->sign_rules[i].subtree);
        free(c->sign_rules[i].active);
    }
    free(c->sign_rules);
    free(c->jwks_file);
    for (size_t i = 0; i < c->n_sectors; i++) {
        free(c->sectors[i].name);
        free_strings(c->sectors[i].subtrees, c->sectors[i].n_subtrees);
    }
    free(c->sectors);
    for (size_t i = 0; i < c->n_agencies; i++) {
        free(c->agencies[i].id);
        free(c->agencies[i].public_key_file);
        free_strings(c->agencies[i].grants, c->agencies[i].n_grants);
    }
    free(c->agencies);
    for (size_t i = 0; i < c->n_plugins; i++)
        free_plugin(&c->plugins[i]);
    free(c->plugins);
    for (size_t i = 0; i < c->n_retention; i++)
        free(c->retention[i].subtree);
    free(c->retention);
    free(c->control_admin_keys);
    free(c->http_listen);
    free(c->audit_path);
    free(c->log_target);
    free(c);
    *cfg_p = NULL;
}

/* ------------------------------------------------------------------------
 * Plugin settings against the plugin's table (the settings engine)
 * ---------------------------------------------------------------------- */

static void to_diag(void *arg, const char *file, int line, const char *msg)
{
    sc_diag_add((sc_diag_t *)arg, file, line, "%s", msg);
}

static sc_settings_where_t where_of(const sc_config_t *cfg,
                                    const sc_cfg_plugin_t *p)
{
    return (sc_settings_where_t){
        .file = cfg->path,
        .dir = cfg->dir,
        .plugin = p->name ? p->name : "?",
        .line = p->line,
        .settings_line = p->settings_line,
    };
}

int sc_config_check_plugin_settings(const sc_config_t *cfg, sc_cfg_plugin_t *p,
                                    const sc_setting_def_t *table,
                                    size_t stride, sc_diag_t *diag)
{
    if (cfg == NULL || p == NULL)
        return -1;
    sc_settings_where_t w = where_of(cfg, p);
    sc_settings_t *s = NULL;
    if (sc_settings_validate(&w, p->settings_written, table, stride, to_diag,
                             diag, &s) != 0)
        return -1;
    sc_settings_destroy(&p->settings);
    p->settings = s;
    return 0;
}

int sc_config_check_plugin(const sc_config_t *cfg, sc_cfg_plugin_t *p,
                           const sc_plugin_t *desc, sc_diag_t *diag)
{
    if (cfg == NULL || p == NULL || desc == NULL)
        return -1;
    if (sc_config_check_plugin_settings(cfg, p, desc->settings,
                                        sc_settings_def_stride(desc),
                                        diag) != 0)
        return -1;
    sc_settings_check_env_t env = {
        .instance = p->name,
        .channels = (const char *const *)p->channels,
        .n_channels = p->n_channels,
    };
    if (sc_settings_run_check(sc_settings_check_of(desc), p->settings, &env,
                              to_diag, diag) != 0)
        return -1;
    return 0;
}
