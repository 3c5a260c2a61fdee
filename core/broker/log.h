/*
 * log.h - the broker's log: one line per event.
 *
 *   2026-11-25T12:44:55.123Z info  [energy] published energy.lng.tasks seq 4
 *
 * Every line starts with the time, the level and the component in
 * brackets (with syslog: the level becomes the priority and the line
 * starts with "LEVEL [component]"). Goes to stderr (default), syslog
 * (facility daemon, ident sectorcastd) or a file that sc_log_reopen()
 * reopens (SIGUSR1 and `sectorcast-ctl log-reopen`, for logrotate).
 *
 * The last SC_LOG_RECENT (32) warn and error lines are kept in a ring for
 * the status page (sc_log_recent).
 *
 * Thread-safe (one write(2) per line). Never pass secret material to it:
 * nothing here can tell a secret from a string.
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define SC_LOG_RECENT 32

typedef enum { SC_L_DEBUG = 0, SC_L_INFO, SC_L_WARN, SC_L_ERROR } sc_level_t;

void sc_log_set_level(sc_level_t level);
/* Parse "debug|info|warn|error"; -1 if unknown. */
int sc_log_parse_level(const char *name);
int sc_log_enabled(sc_level_t level);

/* `who` is the component or plugin instance name ("core", "energy"). */
void sc_log(sc_level_t level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sc_logv(sc_level_t level, const char *who, const char *fmt, va_list ap);

/* Where lines go: "stderr", "syslog" or an absolute file path (opened
 * append, 0600). 0, or -1 with err filled (the target is unchanged). */
int sc_log_set_target(const char *target, char *err, size_t errlen);
/* Reopen the log file (no-op for stderr and syslog). 0 or -1 + err. */
int sc_log_reopen(char *err, size_t errlen);

/* While set, every line logged by the calling thread (whatever the level)
 * is also passed to fn (without time and level); NULL ends it. Used by
 * reload to report what it did to sectorcast-ctl. */
typedef void (*sc_log_capture_fn)(void *ud, sc_level_t level, const char *who,
                                  const char *msg);
void sc_log_capture(sc_log_capture_fn fn, void *ud);

/* Call fn with each remembered warn/error line, oldest first. */
void sc_log_recent(void (*fn)(void *ud, const char *line), void *ud);

#endif
