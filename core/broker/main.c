/*
 * main.c - sectorcastd command line: parse options, load the config,
 * then either check it (--check) or run the broker. Decides exit codes;
 * everything below returns errors as values.
 */
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker.h"
#include "config.h"
#include "host/settings.h"
#include "diag.h"
#include "journal.h"
#include "log.h"
#include "plugin_host.h"
#include "supervisor.h"

#define VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
"usage: sectorcastd -c FILE [--check]\n"
"       sectorcastd --describe PLUGIN.so\n"
"       sectorcastd --settings\n"
"\n"
"The sectorcast broker: runs sector plugins, signs their messages (JWS\n"
"EdDSA), journals them and publishes them over ZeroMQ (CURVE) to the\n"
"agencies entitled to each channel.\n"
"\n"
"options:\n"
"  -c, --config FILE   configuration file (libconfig syntax)\n"
"      --check         validate the configuration, including each plugin's\n"
"                      settings against the plugin's own table; print every\n"
"                      problem as FILE:LINE: message; exit 0 if valid, 1 if\n"
"                      not. Starts nothing.\n"
"      --describe SO   print a plugin's name, version, ABI and settings\n"
"      --settings      print the broker's own settings (gateway, listen,\n"
"                      limits, curve, control, monitoring, audit,\n"
"                      logging): type, default, range, meaning\n"
"  -h, --help          this text\n"
"  -V, --version       print the version and the plugin ABI version\n"
"\n"
"signals: SIGTERM, SIGINT stop cleanly (plugins are stopped and every\n"
"accepted message is journaled and sent first), within\n"
"gateway.stop_timeout_ms; a second one exits at once (status 1; what is\n"
"journaled is kept). SIGUSR1 reopens the log and audit files. SIGHUP re-reads the\n"
"configuration: an invalid one is refused as a whole and the running one\n"
"stays; otherwise only plugins whose entry or .so changed are restarted.\n"
"exit status: 0 clean stop / valid config, 1 invalid config or fatal error,\n"
"2 usage error.\n");
}

static int describe(const char *path)
{
    /* "x.so" names a file in the current directory, as for any other
     * command; dlopen() alone would search the library path instead */
    char local[4096];
    struct stat st;
    if (strchr(path, '/') == NULL && stat(path, &st) == 0 &&
        (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local)
        path = local;
    sc_plugin_lib_t lib;
    char err[1024];
    if (sc_plugin_lib_open(path, &lib, err, sizeof err) != 0) {
        fprintf(stderr, "sectorcastd: %s\n", err);
        return 1;
    }
    const sc_plugin_t *d = &lib.desc;
    printf("%s %s (ABI %u)\n%s\n", d->name, d->version ? d->version : "?",
           (unsigned)d->abi_version, d->description ? d->description : "");
    printf("settings:\n");
    sc_settings_describe(stdout, d);
    printf("check: %s\n", sc_settings_check_of(d) != NULL
                               ? "the plugin checks its settings itself too"
                               : "none beyond the table");
    sc_plugin_lib_close(&lib);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"describe", required_argument, NULL, 'd'},
        {"settings", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"plugin-child", required_argument, NULL, 'P'},
        {"core", required_argument, NULL, 'C'},
        {"child-fd", required_argument, NULL, 'F'},
        {"check-plugin", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *desc = NULL, *child = NULL, *core = NULL;
    int child_fd = -1;
    const char *check_one = NULL;
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': check = 1; break;
        case 'd': desc = optarg; break;
        case 'S': sc_config_describe(stdout); return 0;
        case 'P': child = optarg; break;
        case 'C': core = optarg; break;
        case 'F': child_fd = atoi(optarg); break;
        case 'K': check_one = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V':
            printf("sectorcastd %s (plugin ABI %u)\n", VERSION,
                   SC_PLUGIN_ABI_VERSION);
            return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sectorcastd: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "sectorcastd: libsodium failed to initialise\n");
        return 1;
    }
    sc_journal_process_init();
    if (desc)
        return describe(desc);
    if (child) {
        /* internal: a plugin with isolation = "process" (see supervisor.c) */
        if (child_fd < 0 || !core) {
            fprintf(stderr,
                    "sectorcastd: --plugin-child needs --child-fd and --core\n");
            return 2;
        }
        return sc_supervisor_child_main(child, core, child_fd);
    }
    if (check_one && config) {
        /* internal: check one isolated plugin in this child process and
         * print its problems on stdout (see broker.c check_in_child) */
        sc_diag_t d = {0};
        sc_config_t *cfg = sc_config_load(config, true, &d);
        if (cfg)
            sc_broker_check_one_plugin(cfg, check_one, &d);
        sc_diag_print(&d, stdout);
        int bad = d.count != 0 || !cfg;
        sc_diag_clear(&d);
        sc_config_destroy(&cfg);
        return bad ? 1 : 0;
    }
    if (!config) {
        fprintf(stderr, "sectorcastd: no configuration file (-c FILE)\n");
        usage(stderr);
        return 2;
    }

    /* --check also loads every plugin and checks its settings; a running
     * broker refuses a plugin that cannot load or is missing (by name, in
     * its log) and starts the others */
    sc_diag_t diag = {0};
    sc_config_t *cfg = check ? sc_config_load(config, true, &diag)
                             : sc_config_load_to_run(config, &diag);
    if (cfg && check)
        sc_broker_check_plugins(cfg, &diag);
    if (!cfg || diag.count) {
        sc_diag_print(&diag, stderr);
        fprintf(stderr, "sectorcastd: %s: %zu problem%s found\n", config,
                diag.count, diag.count == 1 ? "" : "s");
        sc_diag_clear(&diag);
        sc_config_destroy(&cfg);
        return 1;
    }
    sc_diag_clear(&diag);
    if (check) {
        printf("%s: configuration is valid (%zu plugin%s, %zu agenc%s)\n",
               config, cfg->n_plugins, cfg->n_plugins == 1 ? "" : "s",
               cfg->n_agencies, cfg->n_agencies == 1 ? "y" : "ies");
        sc_config_destroy(&cfg);
        return 0;
    }
    sc_log_set_level((sc_level_t)sc_log_parse_level(cfg->log_level));
    char lerr[512];
    if (cfg->log_target &&
        sc_log_set_target(cfg->log_target, lerr, sizeof lerr) != 0) {
        sc_log(SC_L_ERROR, "core", "cannot start: logging.target: %s", lerr);
        sc_config_destroy(&cfg);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    sc_broker_t *b = sc_broker_new(&cfg, err, sizeof err);
    if (!b) {
        sc_log(SC_L_ERROR, "core", "cannot start: %s", err);
        sc_config_destroy(&cfg);
        return 1;
    }
    int rc = sc_broker_run(b);
    sc_broker_destroy(&b);
    return rc == 0 ? 0 : 1;
}
