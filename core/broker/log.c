/*
 * log.c - see log.h. Owns the log line format; never decides to exit.
 */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = SC_L_INFO;

static const char *const names[] = {"debug", "info", "warn", "error"};

void sc_log_set_level(sc_level_t level) { atomic_store(&g_level, (int)level); }

int sc_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int sc_log_enabled(sc_level_t level)
{
    return (int)level >= atomic_load(&g_level);
}

void sc_logv(sc_level_t level, const char *who, const char *fmt, va_list ap)
{
    if (!sc_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     names[level], who ? who : "core");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    /* one line per record: control characters from input are escaped */
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = '?';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void sc_log(sc_level_t level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sc_logv(level, who, fmt, ap);
    va_end(ap);
}
