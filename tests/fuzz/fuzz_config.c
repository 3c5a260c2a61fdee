/*
 * fuzz_config.c - libFuzzer target: the configuration loader
 * (core/broker/config.c over libconfig), without file checks.
 *
 * The input is written to a file in a private temp directory and loaded
 * with sc_config_load(path, false, ...); each loaded plugin's settings are
 * then checked against a fixed table. Nothing may crash or leak (libFuzzer
 * runs LeakSanitizer). Inputs containing "include" are skipped: libconfig's
 * @include would let the fuzzer read any file on the machine (/dev/zero
 * never ends).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/config.h"

static char path[256];

static const char *const ops[] = { "<", ">", NULL };
static const sc_setting_def_t level_fields[] = {
    SC_SETTING("threshold", SC_SETTING_FLOAT, NULL, 1, "a number"),
    SC_SETTINGS_END};
static const sc_setting_def_t rule_fields[] = {
    SC_SETTING("indicator", SC_SETTING_STRING, NULL, 1, "a string"),
    { SC_SETTING_FIELDS("op", SC_SETTING_STRING, NULL, 1, "allowed"),
      .allowed = ops },
    { SC_SETTING_FIELDS("escalate", SC_SETTING_GROUP, NULL, 0, "nested"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MAX, .max = 3,
      .fields = level_fields },
    SC_SETTINGS_END};

static const sc_setting_def_t table[] = {
    SC_SETTING("register_dir", SC_SETTING_PATH, NULL, 1, "a required path"),
    { SC_SETTING_FIELDS("poll_interval_ms", SC_SETTING_INT, "1000", 0,
                        "an integer in a range"),
      .flags = SC_SETTING_F_MIN | SC_SETTING_F_MAX, .min = 10, .max = 3600000 },
    { SC_SETTING_FIELDS("hosts", SC_SETTING_STRING, NULL, 0, "a list"),
      .flags = SC_SETTING_F_LIST | SC_SETTING_F_MIN, .min = 1 },
    { SC_SETTING_FIELDS("alert_rules", SC_SETTING_GROUP, NULL, 0,
                        "a list of groups"),
      .flags = SC_SETTING_F_LIST, .fields = rule_fields },
    SC_SETTING("name", SC_SETTING_STRING, "x", 0, "a string"),
    SC_SETTING("ratio", SC_SETTING_FLOAT, "0.5", 0, "a float"),
    SC_SETTING("on", SC_SETTING_BOOL, "true", 0, "a bool"),
    SC_SETTINGS_END};

static char dir[] = "/tmp/sc-fuzz-config-XXXXXX";

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/fuzz.conf", dir);
        atexit(cleanup);
    }
    for (size_t i = 0; i + 7 <= size; i++)
        if (strncasecmp((const char *)data + i, "include", 7) == 0)
            return 0;
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);

    sc_diag_t diag = {0};
    sc_config_t *cfg = sc_config_load(path, false, &diag);
    if (cfg) {
        for (size_t i = 0; i < cfg->n_plugins; i++)
            sc_config_check_plugin_settings(cfg, &cfg->plugins[i], table,
                                            sizeof table[0], &diag);
    } else if (diag.count == 0) {
        abort(); /* refused without saying why */
    }
    sc_config_destroy(&cfg);
    sc_diag_clear(&diag);
    return 0;
}
