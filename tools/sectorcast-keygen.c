/*
 * sectorcast-keygen - create and export sectorcast keys.
 *
 * A thin shell over core/common/keys and jwks: parses arguments, calls the
 * library, prints what it did. Never prints secret material.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/jwks.h"
#include "common/keys.h"

static const char usage_text[] =
"usage: sectorcast-keygen COMMAND ARGS... [--force]\n"
"\n"
"Commands:\n"
"  sign FILE.jwk [--force]\n"
"      Create a new Ed25519 signing key as a private JWK (RFC 8037) in\n"
"      FILE.jwk, mode 0600. Prints \"created FILE.jwk (kid KID)\".\n"
"  curve BASE [--force]\n"
"      Create a ZeroMQ CURVE key pair: BASE.secret (Z85, mode 0600) and\n"
"      BASE.public (Z85, mode 0644), 40 characters and a newline each.\n"
"  jwks OUT.json KEY.jwk [KEY.jwk...] [--force]\n"
"      Export the public halves of the given private JWKs as a JWKS\n"
"      (RFC 7517) in OUT.json, mode 0644, for agencies to verify with.\n"
"      List every key that may still sign live messages (rotation).\n"
"  init DIR [--agency NAME] [--force]\n"
"      Create every key a new gateway needs, with the file names the\n"
"      docs and the example configs use: DIR/signing.jwk (signing key,\n"
"      0600), DIR/jwks.json (its public half), DIR/broker.secret and\n"
"      DIR/broker.public (the broker's CURVE pair) and DIR/NAME.secret\n"
"      and DIR/NAME.public (one agency's CURVE pair; NAME defaults to\n"
"      motie). DIR is created (0700) if missing. Refuses to overwrite\n"
"      any of them without --force.\n"
"  kid FILE.jwk|FILE.json"
"      Print the kid (RFC 7638 thumbprint) of a private JWK, or one kid\n"
"      per line for each key of a JWKS.\n"
"\n"
"Options:\n"
"  --force       replace existing output files (default: refuse)\n"
"  --agency NAME init: name of the agency key pair (default motie)\n"
"  -h, --help    show this help\n"
"\n"
"Exit status: 0 success, 1 error (message on stderr names the file),\n"
"2 usage error.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("sectorcast-keygen: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'sectorcast-keygen --help'.\n", stderr);
    return 2;
}

static int fail(const char *msg)
{
    fprintf(stderr, "sectorcast-keygen: %s%s\n", msg,
            strstr(msg, "refusing to overwrite") ? "; use --force to "
                                                   "replace it" : "");
    return 1;
}

static int cmd_sign(const char *path, bool force)
{
    char err[512];
    sc_sigkey_t *key = sc_sigkey_generate(err, sizeof err);
    if (key == NULL)
        return fail(err);
    int rc = sc_sigkey_save(key, path, force, err, sizeof err);
    if (rc == 0)
        printf("created %s (kid %s)\n", path, sc_sigkey_kid(key));
    sc_sigkey_destroy(&key);
    return rc == 0 ? 0 : fail(err);
}

static int cmd_curve(const char *base, bool force)
{
    char err[512];
    if (sc_curve_generate(base, force, err, sizeof err) != 0)
        return fail(err);
    char pub[41];
    char path[4096];
    snprintf(path, sizeof path, "%s.public", base);
    if (sc_curve_read(path, false, pub, err, sizeof err) != 0)
        return fail(err);
    printf("created %s.secret and %s.public (public key %s)\n", base, base,
           pub);
    return 0;
}

static int cmd_jwks(const char *out, char **keys, int nkeys, bool force)
{
    char err[512];
    struct stat st;
    if (!force && stat(out, &st) == 0) {
        snprintf(err, sizeof err, "%s: already exists (use --force to "
                 "replace it)", out);
        return fail(err);
    }
    sc_jwks_t *jwks = sc_jwks_new();
    if (jwks == NULL)
        return fail("out of memory");
    for (int i = 0; i < nkeys; i++) {
        sc_sigkey_t *key = sc_sigkey_load(keys[i], false, err, sizeof err);
        if (key == NULL) {
            sc_jwks_destroy(&jwks);
            return fail(err);
        }
        /* Export anyway, but tell the operator about a leaky secret. */
        if (sc_check_secret_file(keys[i], err, sizeof err) != 0)
            fprintf(stderr, "sectorcast-keygen: warning: %s\n", err);
        int rc = sc_jwks_add(jwks, sc_sigkey_public(key));
        sc_sigkey_destroy(&key);
        if (rc != 0) {
            sc_jwks_destroy(&jwks);
            return fail("out of memory");
        }
    }
    int rc = sc_jwks_save(jwks, out, err, sizeof err);
    if (rc == 0)
        printf("wrote %s (%zu key%s)\n", out, sc_jwks_count(jwks),
               sc_jwks_count(jwks) == 1 ? "" : "s");
    sc_jwks_destroy(&jwks);
    return rc == 0 ? 0 : fail(err);
}

/* init: the key files of a new gateway, named as in docs/keys.md. */
static int cmd_init(const char *dir, const char *agency, bool force)
{
    char err[512];
    if (agency == NULL || !*agency || strlen(agency) > 64 ||
        strspn(agency, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
            strlen(agency) ||
        strcmp(agency, "broker") == 0)
        return usage_error("agency name '%s' must be [a-z0-9_-]{1,64} and "
                           "not 'broker'", agency ? agency : "");
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0700) != 0) {
            snprintf(err, sizeof err, "%s: cannot create directory", dir);
            return fail(err);
        }
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(err, sizeof err, "%s: not a directory", dir);
        return fail(err);
    }
    char sign[4096], jwks[4096], broker[4096], ag[4096];
    if ((size_t)snprintf(sign, sizeof sign, "%s/signing.jwk", dir) >=
            sizeof sign ||
        (size_t)snprintf(jwks, sizeof jwks, "%s/jwks.json", dir) >=
            sizeof jwks ||
        (size_t)snprintf(broker, sizeof broker, "%s/broker", dir) >=
            sizeof broker ||
        (size_t)snprintf(ag, sizeof ag, "%s/%s", dir, agency) >= sizeof ag)
        return fail("directory name too long");
    /* all or nothing: refuse before writing anything */
    if (!force) {
        const char *suffix[] = { "", "", ".secret", ".public", ".secret",
                                 ".public" };
        const char *base[] = { sign, jwks, broker, broker, ag, ag };
        for (int i = 0; i < 6; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s%s", base[i], suffix[i]);
            if (stat(path, &st) == 0) {
                fprintf(stderr, "sectorcast-keygen: %s: refusing to "
                        "overwrite an existing key file; use --force to "
                        "replace it\n", path);
                return 1;
            }
        }
    }
    int rc = cmd_sign(sign, force);
    char *keys[] = { sign };
    if (rc == 0)
        rc = cmd_jwks(jwks, keys, 1, true);
    if (rc == 0)
        rc = cmd_curve(broker, force);
    if (rc == 0)
        rc = cmd_curve(ag, force);
    if (rc == 0)
        printf("keys for a new gateway in %s: give agencies jwks.json and "
               "broker.public; %s.secret belongs to agency '%s' "
               "(docs/keys.md)\n", dir, agency, agency);
    return rc;
}

static int cmd_kid(const char *path)
{
    char err[512];
    /* A JWKS has "keys"; anything else is taken for a private JWK. Only
     * the JWKS is parsed here: a private JWK goes to sc_sigkey_load. */
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    bool is_jwks = json_is_object(doc) && json_object_get(doc, "keys");
    json_decref(doc);
    if (is_jwks) {
        sc_jwks_t *jwks = sc_jwks_load(path, err, sizeof err);
        if (jwks == NULL)
            return fail(err);
        for (size_t i = 0; i < sc_jwks_count(jwks); i++)
            printf("%s\n", sc_jwks_kid_at(jwks, i));
        sc_jwks_destroy(&jwks);
        return 0;
    }
    sc_sigkey_t *key = sc_sigkey_load(path, false, err, sizeof err);
    if (key == NULL)
        return fail(err);
    printf("%s\n", sc_sigkey_kid(key));
    sc_sigkey_destroy(&key);
    return 0;
}

int main(int argc, char **argv)
{
    bool force = false;
    const char *agency = "motie";
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    if (args == NULL)
        return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            free(args);
            return 0;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(argv[i], "--agency") == 0 && i + 1 < argc) {
            agency = argv[++i];
        } else if (strcmp(argv[i], "--") == 0) {
            while (++i < argc)
                args[n++] = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            int rc = usage_error("unknown option '%s'", argv[i]);
            free(args);
            return rc;
        } else {
            args[n++] = argv[i];
        }
    }
    int rc;
    const char *cmd = n > 0 ? args[0] : NULL;
    if (cmd == NULL)
        rc = usage_error("%s", "missing command (init, sign, curve, jwks, "
                         "kid)");
    else if (strcmp(cmd, "sign") == 0 && n == 2)
        rc = cmd_sign(args[1], force);
    else if (strcmp(cmd, "curve") == 0 && n == 2)
        rc = cmd_curve(args[1], force);
    else if (strcmp(cmd, "jwks") == 0 && n >= 3)
        rc = cmd_jwks(args[1], args + 2, n - 2, force);
    else if (strcmp(cmd, "init") == 0 && n == 2)
        rc = cmd_init(args[1], agency, force);
    else if (strcmp(cmd, "kid") == 0 && n == 2 && !force)
        rc = cmd_kid(args[1]);
    else if (strcmp(cmd, "sign") == 0 || strcmp(cmd, "curve") == 0 ||
             strcmp(cmd, "init") == 0 ||
             strcmp(cmd, "jwks") == 0 || strcmp(cmd, "kid") == 0)
        rc = usage_error("wrong arguments for '%s'", cmd);
    else
        rc = usage_error("unknown command '%s'", cmd);
    free(args);
    return rc;
}
