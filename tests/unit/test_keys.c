/*
 * test_keys.c - signing keys, CURVE key files and JWKS (core/common).
 *
 * Each test works in its own temporary directory. Covers the RFC 7638 /
 * RFC 8037 thumbprint vector, file modes and the permission refusals,
 * x/d mismatch, CURVE files, and JWKS parse/dump round trips and errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jwks.h"
#include "common/keys.h"

/* RFC 8037 appendix A.1 (private key) and A.3 (thumbprint). */
#define A1_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define A1_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define A3_KID "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/sc-test-keys-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static const char *in_dir(fixture_t *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    return f->path;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_thumbprint_rfc8037(void **state)
{
    (void)state;
    /* x of RFC 8037 A.1, decoded by hand-free means: load the A.1 JWK. */
    fixture_t *f = *state;
    const char *p = in_dir(f, "a1.jwk");
    write_file(p, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D
                  "\",\"x\":\"" A1_X "\"}", 0600);
    char err[256] = "";
    sc_sigkey_t *key = sc_sigkey_load(p, true, err, sizeof err);
    if (key == NULL)
        fail_msg("%s", err);
    assert_string_equal(sc_sigkey_kid(key), A3_KID);
    char kid[SC_KID_LEN + 1];
    assert_int_equal(sc_jwk_thumbprint(sc_sigkey_public(key), kid), 0);
    assert_string_equal(kid, A3_KID);
    sc_sigkey_destroy(&key);
    assert_null(key);
    sc_sigkey_destroy(&key); /* idempotent */
}

static void test_save_mode_and_reload(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    mode_t old = umask(0); /* the library must not depend on the umask */
    sc_sigkey_t *key = sc_sigkey_generate(err, sizeof err);
    assert_non_null(key);
    const char *p = in_dir(f, "sign.jwk");
    assert_int_equal(sc_sigkey_save(key, p, false, err, sizeof err), 0);
    umask(old);
    assert_int_equal(file_mode(p), 0600);

    /* Refuses to overwrite without the flag, and says so. */
    assert_int_equal(sc_sigkey_save(key, p, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists"));
    assert_non_null(strstr(err, p));

    sc_sigkey_t *back = sc_sigkey_load(p, true, err, sizeof err);
    if (back == NULL)
        fail_msg("%s", err);
    assert_string_equal(sc_sigkey_kid(back), sc_sigkey_kid(key));
    assert_memory_equal(sc_sigkey_public(back), sc_sigkey_public(key), 32);

    /* Same signature from both (Ed25519 is deterministic). */
    unsigned char s1[64], s2[64];
    assert_int_equal(sc_sigkey_sign(key, (const unsigned char *)"m", 1, s1),
                     0);
    assert_int_equal(sc_sigkey_sign(back, (const unsigned char *)"m", 1, s2),
                     0);
    assert_memory_equal(s1, s2, 64);

    /* Overwrite mode replaces atomically, still 0600, no temp left. */
    sc_sigkey_t *other = sc_sigkey_generate(err, sizeof err);
    chmod(p, 0640);
    assert_int_equal(sc_sigkey_save(other, p, true, err, sizeof err), 0);
    assert_int_equal(file_mode(p), 0600);
    sc_sigkey_destroy(&back);
    back = sc_sigkey_load(p, true, err, sizeof err);
    assert_non_null(back);
    assert_string_equal(sc_sigkey_kid(back), sc_sigkey_kid(other));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", f->dir);
    assert_int_not_equal(system(cmd), 0);

    sc_sigkey_destroy(&back);
    sc_sigkey_destroy(&other);
    sc_sigkey_destroy(&key);
}

static void test_load_refuses_bad_perms(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    sc_sigkey_t *key = sc_sigkey_generate(err, sizeof err);
    const char *p = in_dir(f, "x.jwk");
    assert_int_equal(sc_sigkey_save(key, p, false, err, sizeof err), 0);
    sc_sigkey_destroy(&key);

    assert_int_equal(chmod(p, 0644), 0);
    assert_null(sc_sigkey_load(p, true, err, sizeof err));
    char want[512];
    snprintf(want, sizeof want,
             "%s: mode 0644 allows group/other access; run: chmod 600 %s",
             p, p);
    assert_string_equal(err, want);
    assert_int_equal(sc_check_secret_file(p, err, sizeof err), -1);
    assert_string_equal(err, want);
    /* Without the check the key loads (e.g. for exporting its public). */
    key = sc_sigkey_load(p, false, err, sizeof err);
    assert_non_null(key);
    sc_sigkey_destroy(&key);

    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(sc_check_secret_file(p, err, sizeof err), 0);

    /* Owned by someone else (we are root in CI; skip otherwise). */
    if (geteuid() == 0) {
        assert_int_equal(chown(p, 12345, 12345), 0);
        assert_null(sc_sigkey_load(p, true, err, sizeof err));
        assert_non_null(strstr(err, "owned by uid 12345"));
        assert_non_null(strstr(err, "(uid 0)"));
        assert_int_equal(chown(p, 0, 0), 0);
    }
    /* Not a regular file. */
    assert_null(sc_sigkey_load(f->dir, false, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(sc_check_secret_file(f->dir, err, sizeof err), -1);
    /* Missing file names the file. */
    assert_null(sc_sigkey_load(in_dir(f, "nope.jwk"), true, err, sizeof err));
    assert_non_null(strstr(err, "nope.jwk: No such file"));
}

static void test_load_refuses_bad_content(void **state)
{
    fixture_t *f = *state;
    char err[512];
    static const struct { const char *json, *msg; } rows[] = {
        /* x of another key (RFC 8037 A.1 d with a different x). */
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D "\","
         "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "\"x\" does not match the public key derived from \"d\""},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D "\","
         "\"x\":\"" A1_X "\",\"kid\":\"wrong\"}",
         "\"kid\" is not the RFC 7638 thumbprint"},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X "\"}",
         "no private key"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"" A1_D "\"}",
         "\"kty\" must be \"OKP\""},
        {"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"d\":\"" A1_D "\"}",
         "\"crv\" must be \"Ed25519\""},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D "=\","
         "\"x\":\"" A1_X "\"}", "\"d\" is not 32 bytes of base64url"},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"abc\","
         "\"x\":\"" A1_X "\"}", "\"d\" is not 32 bytes of base64url"},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" A1_D "\"}",
         "\"x\" is not 32 bytes of base64url"},
        {"{\"kty\":\"OKP\",\"kty\":\"OKP\"}", "not valid JSON"},
        {"[1,2]", "not a JWK"},
        {"not json at all", "not valid JSON"},
        {"", "not valid JSON"},
    };
    const char *p = in_dir(f, "bad.jwk");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        write_file(p, rows[i].json, 0600);
        err[0] = '\0';
        sc_sigkey_t *key = sc_sigkey_load(p, true, err, sizeof err);
        if (key != NULL || strstr(err, rows[i].msg) == NULL ||
            strstr(err, p) == NULL)
            fail_msg("row %zu: err \"%s\" lacks \"%s\"", i, err,
                     rows[i].msg);
        /* The secret never appears in an error text. */
        assert_null(strstr(err, A1_D));
    }
}

static void test_curve_files(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    char base[128], sec[160], pub[160];
    snprintf(base, sizeof base, "%s/agency", f->dir);
    snprintf(sec, sizeof sec, "%s.secret", base);
    snprintf(pub, sizeof pub, "%s.public", base);
    mode_t old = umask(0);
    assert_int_equal(sc_curve_generate(base, false, err, sizeof err), 0);
    umask(old);
    assert_int_equal(file_mode(sec), 0600);
    assert_int_equal(file_mode(pub), 0644);

    struct stat st;
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_size, 41);

    char s[41], p[41], derived[41];
    assert_int_equal(sc_curve_read(sec, true, s, err, sizeof err), 0);
    assert_int_equal(strlen(s), 40);
    assert_int_equal(sc_curve_read(pub, false, p, err, sizeof err), 0);
    assert_int_equal(sc_curve_public_of(s, derived, err, sizeof err), 0);
    assert_string_equal(p, derived);

    /* No overwrite without the flag; both files untouched. */
    assert_int_equal(sc_curve_generate(base, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists"));
    char s2[41];
    assert_int_equal(sc_curve_read(sec, true, s2, err, sizeof err), 0);
    assert_string_equal(s, s2);
    assert_int_equal(sc_curve_generate(base, true, err, sizeof err), 0);
    assert_int_equal(sc_curve_read(sec, true, s2, err, sizeof err), 0);
    assert_string_not_equal(s, s2);
    assert_int_equal(file_mode(sec), 0600);
    assert_int_equal(file_mode(pub), 0644);

    /* Secret with loose perms is refused when checked. */
    chmod(sec, 0640);
    assert_int_equal(sc_curve_read(sec, true, s2, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));

    /* Content checks: without newline is fine, anything else is not. */
    const char *kp = in_dir(f, "k.public");
    write_file(kp, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", 0644);
    assert_int_equal(sc_curve_read(kp, false, p, err, sizeof err), 0);
    assert_string_equal(p, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
    static const char *bad[] = {
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\n",     /* 39 chars */
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf77\n",   /* 41 chars */
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"\n",   /* not Z85 */
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(kp, bad[i], 0644);
        if (sc_curve_read(kp, false, p, err, sizeof err) != -1)
            fail_msg("bad CURVE key %zu accepted", i);
        assert_non_null(strstr(err, kp));
    }
    assert_int_equal(sc_curve_public_of("short", derived, err, sizeof err),
                     -1);
}

/* ---- JWKS ---------------------------------------------------------------- */

static void test_jwks_roundtrip(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    sc_sigkey_t *k1 = sc_sigkey_generate(err, sizeof err);
    sc_sigkey_t *k2 = sc_sigkey_generate(err, sizeof err);
    sc_jwks_t *j = sc_jwks_new();
    assert_int_equal(sc_jwks_add(j, sc_sigkey_public(k1)), 0);
    assert_int_equal(sc_jwks_add(j, sc_sigkey_public(k2)), 0);
    assert_int_equal(sc_jwks_add(j, sc_sigkey_public(k1)), 0); /* dup */
    assert_int_equal(sc_jwks_count(j), 2);
    assert_string_equal(sc_jwks_kid_at(j, 0), sc_sigkey_kid(k1));
    assert_string_equal(sc_jwks_kid_at(j, 1), sc_sigkey_kid(k2));
    assert_null(sc_jwks_kid_at(j, 2));
    assert_memory_equal(sc_jwks_find(j, sc_sigkey_kid(k2)),
                        sc_sigkey_public(k2), 32);
    assert_null(sc_jwks_find(j, "nope"));

    char *text = sc_jwks_dump(j);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"use\": \"sig\""));
    assert_non_null(strstr(text, "\"alg\": \"EdDSA\""));
    sc_jwks_t *back = sc_jwks_parse(text, strlen(text), "mem", err,
                                    sizeof err);
    if (back == NULL)
        fail_msg("%s", err);
    char *text2 = sc_jwks_dump(back);
    assert_string_equal(text, text2);
    free(text2);
    sc_jwks_destroy(&back);

    const char *p = in_dir(f, "jwks.json");
    mode_t old = umask(077);
    assert_int_equal(sc_jwks_save(j, p, err, sizeof err), 0);
    assert_int_equal(sc_jwks_save(j, p, err, sizeof err), 0); /* replace */
    umask(old);
    assert_int_equal(file_mode(p), 0644);
    back = sc_jwks_load(p, err, sizeof err);
    assert_non_null(back);
    assert_int_equal(sc_jwks_count(back), 2);
    sc_jwks_destroy(&back);
    assert_null(back);

    free(text);
    sc_jwks_destroy(&j);
    sc_sigkey_destroy(&k1);
    sc_sigkey_destroy(&k2);
}

static void test_jwks_rfc_key_and_skips(void **state)
{
    (void)state;
    char err[512] = "";
    /* Other key types and OKP curves are skipped; kid optional. */
    const char *text =
        "{\"keys\":["
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"abc\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X "\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}"
        "]}";
    /* Exact-length heap copy: the parser must not need a NUL. */
    size_t len = strlen(text);
    char *buf = malloc(len);
    memcpy(buf, text, len);
    sc_jwks_t *j = sc_jwks_parse(buf, len, "keys/jwks.json", err, sizeof err);
    free(buf);
    if (j == NULL)
        fail_msg("%s", err);
    assert_int_equal(sc_jwks_count(j), 1);
    assert_non_null(sc_jwks_find(j, A3_KID));
    sc_jwks_destroy(&j);
}

static void test_jwks_malformed(void **state)
{
    (void)state;
    char err[512];
    static const struct { const char *json, *msg; } rows[] = {
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"a+b/\"}]}",
         "keys/jwks.json: keys[1]: \"x\" is not 32 bytes of base64url"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}]}",
         "keys/jwks.json: keys[0]: \"x\" missing or not a string"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\",\"kid\":\"" "abc" "\"}]}",
         "keys[0]: \"kid\" is not the RFC 7638 thumbprint"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\",\"kid\":7}]}", "keys[0]: \"kid\" is not a string"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\",\"d\":\"" A1_D "\"}]}", "keys[0]: contains a private key"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\",\"use\":\"enc\"}]}", "keys[0]: \"use\" must be \"sig\""},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" A1_X
         "\",\"alg\":\"HS256\"}]}", "keys[0]: \"alg\" must be \"EdDSA\""},
        {"{\"keys\":[{\"kty\":\"OKP\",\"x\":\"" A1_X "\"}]}",
         "keys[0]: OKP key without a \"crv\""},
        {"{\"keys\":[{\"crv\":\"Ed25519\"}]}", "keys[0]: \"kty\" missing"},
        {"{\"keys\":[42]}", "keys[0]: not a JSON object"},
        {"{\"keys\":[{\"kty\":\"RSA\"}]}", "no OKP/Ed25519 keys"},
        {"{\"keys\":[]}", "no OKP/Ed25519 keys"},
        {"{\"keys\":{}}", "not a JWKS"},
        {"[]", "not a JWKS"},
        {"{\"keys\":[],\"keys\":[]}", "keys/jwks.json: line 1"},
        {"{", "keys/jwks.json: line 1"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        err[0] = '\0';
        sc_jwks_t *j = sc_jwks_parse(rows[i].json, strlen(rows[i].json),
                                     "keys/jwks.json", err, sizeof err);
        if (j != NULL || strstr(err, rows[i].msg) == NULL)
            fail_msg("row %zu: err \"%s\" lacks \"%s\"", i, err,
                     rows[i].msg);
    }
    /* Load names the file. */
    assert_null(sc_jwks_load("/nonexistent/jwks.json", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_thumbprint_rfc8037, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_save_mode_and_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_perms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_content, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_curve_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwks_roundtrip, setup, teardown),
        cmocka_unit_test(test_jwks_rfc_key_and_skips),
        cmocka_unit_test(test_jwks_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
