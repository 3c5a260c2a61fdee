/*
 * reload.c - see reload.h.
 */
#include "reload.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"

static int strdiff(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b);
}

void sc_reload_free(sc_reload_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    sc_reload_t *r = *r_p;
    sc_keyring_destroy(&r->keyring);
    sc_access_destroy(&r->access);
    sc_access_destroy(&r->service_access);
    sc_config_destroy(&r->cfg);
    free(r);
    *r_p = NULL;
}

sc_reload_t *sc_reload_prepare(const char *path, const sc_config_t *running)
{
    sc_diag_t d = {0};
    sc_config_t *n = sc_config_load(path, true, &d);
    if (n)
        sc_broker_check_plugins(n, &d);
    if (!n || d.count) {
        for (size_t i = 0; i < d.count; i++)
            sc_log(SC_L_ERROR, "core", "%s", d.lines[i]);
        sc_log(SC_L_ERROR, "core",
               "reload refused: %zu problem(s) in %s; the running "
               "configuration stays",
               d.count, path);
        sc_diag_clear(&d);
        sc_config_destroy(&n);
        return NULL;
    }
    sc_diag_clear(&d);
    const char *fixed = NULL;
    if (strdiff(n->publish_endpoint, running->publish_endpoint))
        fixed = "listen.publish";
    else if (strdiff(n->service_endpoint, running->service_endpoint))
        fixed = "listen.service";
    else if (strdiff(n->curve_secret_file, running->curve_secret_file))
        fixed = "curve.secret_key";
    else if (strdiff(n->data_dir, running->data_dir))
        fixed = "gateway.data_dir";
    else if (n->durability_full != running->durability_full)
        fixed = "gateway.durability";
    if (fixed) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: %s cannot change without a restart; the "
               "running configuration stays",
               fixed);
        sc_config_destroy(&n);
        return NULL;
    }
    char err[1024];
    sc_access_t *na = sc_access_new(n, err, sizeof err);
    sc_keyring_t *nk = na ? sc_keyring_load(n, err, sizeof err) : NULL;
    if (!nk || sc_keyring_write_jwks(nk, n->jwks_file, err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: %s; the running configuration stays", err);
        sc_keyring_destroy(&nk);
        sc_access_destroy(&na);
        sc_config_destroy(&n);
        return NULL;
    }
    sc_reload_t *r = calloc(1, sizeof *r);
    if (!r) {
        sc_log(SC_L_ERROR, "core", "reload refused: out of memory");
        sc_keyring_destroy(&nk);
        sc_access_destroy(&na);
        sc_config_destroy(&n);
        return NULL;
    }
    r->cfg = n;
    r->access = na;
    r->keyring = nk;
    if (n->service_endpoint &&
        !(r->service_access = sc_access_new(n, err, sizeof err))) {
        sc_log(SC_L_ERROR, "core",
               "reload refused: %s; the running configuration stays", err);
        sc_reload_free(&r);
        return NULL;
    }
    return r;
}

void sc_reload_report(const sc_config_t *old, const sc_config_t *n)
{
    /* agencies removed, re-keyed or narrowed: the core's revocation
     * (sc_subs_revoke) says what it cut */
    for (size_t k = 0; k < n->n_agencies; k++) {
        bool was = false;
        for (size_t i = 0; i < old->n_agencies && !was; i++)
            was = strcmp(n->agencies[k].id, old->agencies[i].id) == 0;
        if (!was)
            sc_log(SC_L_INFO, "core", "reload: agency '%s' added",
                   n->agencies[k].id);
    }
    if (n->n_keys != old->n_keys || strcmp(n->active_key, old->active_key))
        sc_log(SC_L_INFO, "core",
               "reload: signing keys now %zu, active '%s'; JWKS rewritten",
               n->n_keys, n->active_key);
    if (strcmp(n->log_level, old->log_level))
        sc_log(SC_L_INFO, "core", "reload: log_level %s -> %s",
               old->log_level, n->log_level);
}
