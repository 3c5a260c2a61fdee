/*
 * keyring.c - see keyring.h.
 */
#include "keyring.h"

#include <stdlib.h>
#include <string.h>

#include "common/jwks.h"
#include "common/jws.h"

typedef struct rule {
    char *subtree;
    const sc_sigkey_t *key;
} rule_t;

struct sc_keyring {
    sc_sigkey_t **keys;
    sc_jws_signer_t **signers; /* one per key: header computed once */
    char **ids;
    size_t n_keys;
    const sc_sigkey_t *active;
    rule_t *rules;
    size_t n_rules;
    sc_jwks_t *jwks;
};

static const sc_sigkey_t *by_id(const sc_keyring_t *kr, const char *id)
{
    for (size_t i = 0; id && i < kr->n_keys; i++)
        if (strcmp(kr->ids[i], id) == 0)
            return kr->keys[i];
    return NULL;
}

sc_keyring_t *sc_keyring_load(const sc_config_t *cfg, char *err, size_t errlen)
{
    sc_keyring_t *kr = calloc(1, sizeof *kr);
    if (!kr)
        goto oom;
    kr->keys = calloc(cfg->n_keys + 1, sizeof *kr->keys);
    kr->ids = calloc(cfg->n_keys + 1, sizeof *kr->ids);
    kr->signers = calloc(cfg->n_keys + 1, sizeof *kr->signers);
    kr->rules = calloc(cfg->n_sign_rules + 1, sizeof *kr->rules);
    if (!kr->keys || !kr->ids || !kr->rules || !kr->signers)
        goto oom;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        char e[512];
        sc_sigkey_t *k = sc_sigkey_load(cfg->keys[i].file, true, e, sizeof e);
        if (!k) {
            snprintf(err, errlen, "signing key '%s': %s", cfg->keys[i].id, e);
            goto fail;
        }
        kr->keys[kr->n_keys] = k;
        kr->ids[kr->n_keys] = strdup(cfg->keys[i].id);
        kr->signers[kr->n_keys] = sc_jws_signer_new(k, SC_JWS_TYP);
        kr->n_keys++;
        if (!kr->ids[kr->n_keys - 1] || !kr->signers[kr->n_keys - 1])
            goto oom;
    }
    kr->active = by_id(kr, cfg->active_key);
    if (!kr->active) {
        snprintf(err, errlen, "signing.active '%s' is not a loaded key",
                 cfg->active_key ? cfg->active_key : "(none)");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_sign_rules; i++) {
        const sc_sigkey_t *k = by_id(kr, cfg->sign_rules[i].active);
        if (!k) {
            snprintf(err, errlen, "signing.channels: key '%s' is not loaded",
                     cfg->sign_rules[i].active);
            goto fail;
        }
        kr->rules[i].key = k;
        kr->rules[i].subtree = strdup(cfg->sign_rules[i].subtree);
        kr->n_rules++;
        if (!kr->rules[i].subtree)
            goto oom;
    }
    if (!(kr->jwks = sc_jwks_new()))
        goto oom;
    for (size_t i = 0; i < kr->n_keys; i++)
        if (sc_jwks_add(kr->jwks, sc_sigkey_public(kr->keys[i])) != 0)
            goto oom;
    return kr;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sc_keyring_destroy(&kr);
    return NULL;
}

void sc_keyring_destroy(sc_keyring_t **kr_p)
{
    if (!kr_p || !*kr_p)
        return;
    sc_keyring_t *kr = *kr_p;
    for (size_t i = 0; i < kr->n_keys; i++) {
        sc_sigkey_destroy(&kr->keys[i]);
        if (kr->signers)
            sc_jws_signer_destroy(&kr->signers[i]);
        free(kr->ids[i]);
    }
    free(kr->signers);
    for (size_t i = 0; i < kr->n_rules; i++)
        free(kr->rules[i].subtree);
    free(kr->keys);
    free(kr->ids);
    free(kr->rules);
    sc_jwks_destroy(&kr->jwks);
    free(kr);
    *kr_p = NULL;
}

const sc_sigkey_t *sc_keyring_for(const sc_keyring_t *kr, const char *channel)
{
    /* the topic "<channel>." is what a subtree rule is matched against */
    size_t cl = strlen(channel), best = 0;
    const sc_sigkey_t *key = kr->active;
    for (size_t i = 0; i < kr->n_rules; i++) {
        size_t sl = strlen(kr->rules[i].subtree);
        if (sl > cl + 1 || sl <= best)
            continue;
        if (memcmp(kr->rules[i].subtree, channel, sl - 1) == 0 &&
            (sl - 1 == cl || channel[sl - 1] == '.')) {
            best = sl;
            key = kr->rules[i].key;
        }
    }
    return key;
}

const sc_jws_signer_t *sc_keyring_signer_for(const sc_keyring_t *kr,
                                             const char *channel)
{
    const sc_sigkey_t *k = sc_keyring_for(kr, channel);
    for (size_t i = 0; i < kr->n_keys; i++)
        if (kr->keys[i] == k)
            return kr->signers[i];
    return NULL;
}

const sc_jwks_t *sc_keyring_jwks(const sc_keyring_t *kr) { return kr->jwks; }

int sc_keyring_write_jwks(const sc_keyring_t *kr, const char *path, char *err,
                          size_t errlen)
{
    return sc_jwks_save(kr->jwks, path, err, errlen);
}
