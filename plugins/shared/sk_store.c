/*
 * sk_store.c - the plugin's durable state, or memory only on a host
 * without it.
 */
#include "sk_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "task" + '/' + id, with room for the longest id. */
#define KEY_BUF (32 + SK_ID_MAX + 2)

struct sk_store {
    sk_log_t lg;
    int durable;
};

sk_store_t *
sk_store_new(const sk_log_t *lg)
{
    sk_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->lg = *lg;
    const sc_host_api_t *api = lg->api;
    st->durable = SC_HOST_HAS(api, state_get) &&
                  SC_HOST_HAS(api, state_put) &&
                  SC_HOST_HAS(api, state_free) &&
                  SC_HOST_HAS(api, state_foreach);
    return st;
}

void
sk_store_destroy(sk_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

int
sk_store_durable(const sk_store_t *st)
{
    return st && st->durable;
}

static int
make_key(char *buf, size_t len, const char *family, const char *id)
{
    int n = snprintf(buf, len, "%s/%s", family, id ? id : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
sk_store_put(sk_store_t *st, const char *family, const char *id,
             const char *value)
{
    if (!st->durable)
        return SC_OK;
    char key[KEY_BUF];
    if (make_key(key, sizeof key, family, id) < 0)
        return SC_ERR_ARG;
    const sc_host_api_t *api = st->lg.api;
    int rc = api->state_put(st->lg.host, key, value);
    if (rc != SC_OK)
        SK_LOG(&st->lg, SC_LOG_ERROR, "plugin state: %s %s failed: %s (%d); "
               "a restart may publish it again", value ? "saving" : "deleting",
               key, api->strerror(rc), rc);
    return rc;
}

int
sk_store_get(sk_store_t *st, const char *family, const char *id,
             char **value)
{
    *value = NULL;
    if (!st->durable)
        return SC_ERR_NOT_FOUND;
    char key[KEY_BUF];
    if (make_key(key, sizeof key, family, id) < 0)
        return SC_ERR_ARG;
    const sc_host_api_t *api = st->lg.api;
    char *v = NULL;
    int rc = api->state_get(st->lg.host, key, &v);
    if (rc == SC_ERR_NOT_FOUND)
        return rc;
    if (rc != SC_OK) {
        SK_LOG(&st->lg, SC_LOG_ERROR, "plugin state: reading %s failed: %s "
               "(%d)", key, api->strerror(rc), rc);
        return rc;
    }
    /* the host's copy is freed by the host: hand out our own */
    *value = strdup(v ? v : "");
    api->state_free(st->lg.host, v);
    return *value ? SC_OK : SC_ERR_NO_MEMORY;
}

typedef struct each {
    size_t skip; /* length of "family/" */
    int (*fn)(void *arg, const char *id, const char *value);
    void *arg;
} each_t;

static int
each_key(void *arg, const char *key, const char *value)
{
    each_t *e = arg;
    if (strlen(key) < e->skip)
        return 0;
    return e->fn(e->arg, key + e->skip, value);
}

int
sk_store_foreach(sk_store_t *st, const char *family,
                 int (*fn)(void *arg, const char *id, const char *value),
                 void *arg)
{
    if (!st->durable)
        return SC_OK;
    char prefix[KEY_BUF];
    if (make_key(prefix, sizeof prefix, family, "") < 0)
        return SC_ERR_ARG;
    each_t e = { strlen(prefix), fn, arg };
    const sc_host_api_t *api = st->lg.api;
    int rc = api->state_foreach(st->lg.host, prefix, each_key, &e);
    if (rc != SC_OK)
        SK_LOG(&st->lg, SC_LOG_ERROR, "plugin state: reading %s* failed: "
               "%s (%d)", prefix, api->strerror(rc), rc);
    return rc;
}
