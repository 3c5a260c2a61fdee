/*
 * log.h - the broker's log: one line per event on stderr.
 *
 *   2026-11-25T12:44:55.123Z info  [energy] published energy.lng.tasks seq 4
 *
 * Thread-safe (one write(2) per line). Never pass secret material to it:
 * nothing here can tell a secret from a string.
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdarg.h>

typedef enum { SC_L_DEBUG = 0, SC_L_INFO, SC_L_WARN, SC_L_ERROR } sc_level_t;

void sc_log_set_level(sc_level_t level);
/* Parse "debug|info|warn|error"; -1 if unknown. */
int sc_log_parse_level(const char *name);
int sc_log_enabled(sc_level_t level);

/* `who` is the component or plugin instance name ("core", "energy"). */
void sc_log(sc_level_t level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sc_logv(sc_level_t level, const char *who, const char *fmt, va_list ap);

#endif
