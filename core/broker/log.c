/*
 * log.c - see log.h. Owns the log line format, the log target and the
 * ring of recent warnings; never decides to exit.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = SC_L_INFO;
static atomic_int g_fd = STDERR_FILENO; /* -1: syslog */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_path; /* the log file, NULL for stderr/syslog */
static char g_ring[SC_LOG_RECENT][512];
static unsigned g_ring_next, g_ring_n;

static _Thread_local sc_log_capture_fn t_capture;
static _Thread_local void *t_capture_ud;

void sc_log_capture(sc_log_capture_fn fn, void *ud)
{
    t_capture = fn;
    t_capture_ud = ud;
}

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

static int open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        snprintf(err, errlen, "cannot open log file %s: %s", path,
                 strerror(errno));
    return fd;
}

int sc_log_set_target(const char *target, char *err, size_t errlen)
{
    if (!target || strcmp(target, "stderr") == 0) {
        pthread_mutex_lock(&g_mu);
        int old = atomic_exchange(&g_fd, STDERR_FILENO);
        free(g_path);
        g_path = NULL;
        pthread_mutex_unlock(&g_mu);
        if (old > STDERR_FILENO)
            close(old);
        return 0;
    }
    if (strcmp(target, "syslog") == 0) {
        openlog("sectorcastd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        pthread_mutex_lock(&g_mu);
        int old = atomic_exchange(&g_fd, -1);
        free(g_path);
        g_path = NULL;
        pthread_mutex_unlock(&g_mu);
        if (old > STDERR_FILENO)
            close(old);
        return 0;
    }
    if (target[0] != '/') {
        snprintf(err, errlen, "log target must be stderr, syslog or an "
                              "absolute path (got '%s')", target);
        return -1;
    }
    int fd = open_file(target, err, errlen);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&g_mu);
    char *p = strdup(target);
    free(g_path);
    g_path = p;
    int old = atomic_exchange(&g_fd, fd);
    pthread_mutex_unlock(&g_mu);
    if (old > STDERR_FILENO)
        close(old);
    return 0;
}

int sc_log_reopen(char *err, size_t errlen)
{
    pthread_mutex_lock(&g_mu);
    int rc = 0;
    if (g_path) {
        int fd = open_file(g_path, err, errlen);
        if (fd < 0) {
            rc = -1;
        } else {
            /* dup2 keeps the number, so a writer never sees a closed fd */
            int cur = atomic_load(&g_fd);
            if (cur > STDERR_FILENO)
                dup2(fd, cur);
            close(fd);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void sc_log_recent(void (*fn)(void *ud, const char *line), void *ud)
{
    char copy[SC_LOG_RECENT][512];
    unsigned n, start;
    pthread_mutex_lock(&g_mu);
    n = g_ring_n;
    start = (g_ring_next + SC_LOG_RECENT - n) % SC_LOG_RECENT;
    for (unsigned i = 0; i < n; i++)
        memcpy(copy[i], g_ring[(start + i) % SC_LOG_RECENT], 512);
    pthread_mutex_unlock(&g_mu);
    for (unsigned i = 0; i < n; i++)
        fn(ud, copy[i]);
}

void sc_logv(sc_level_t level, const char *who, const char *fmt, va_list ap)
{
    if (t_capture) {
        char msg[1024];
        va_list cp;
        va_copy(cp, ap);
        vsnprintf(msg, sizeof msg, fmt, cp);
        va_end(cp);
        t_capture(t_capture_ud, level, who ? who : "core", msg);
    }
    if (!sc_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* level and component first (what an operator greps for), then the
     * time */
    int pre = 0; /* length of "LEVEL [component] " */
    int n = snprintf(line, sizeof line,
                     "%-5s [%s] %n%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                     names[level], who ? who : "core", &pre,
                     tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L);
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
    line[n] = '\0';
    if (level >= SC_L_WARN) {
        pthread_mutex_lock(&g_mu);
        size_t k = (size_t)n < sizeof g_ring[0] ? (size_t)n
                                                : sizeof g_ring[0] - 1;
        memcpy(g_ring[g_ring_next], line, k);
        g_ring[g_ring_next][k] = '\0';
        g_ring_next = (g_ring_next + 1) % SC_LOG_RECENT;
        if (g_ring_n < SC_LOG_RECENT)
            g_ring_n++;
        pthread_mutex_unlock(&g_mu);
    }
    int fd = atomic_load(&g_fd);
    if (fd < 0) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        /* without our time stamp (syslog adds its own): 24 characters
         * and a space after the level and component */
        if (pre > 0 && pre + 25 <= n)
            syslog(prio[level], "%.*s%s", pre, line, line + pre + 25);
        else
            syslog(prio[level], "%s", line);
        return;
    }
    line[n++] = '\n';
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
}

void sc_log(sc_level_t level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sc_logv(level, who, fmt, ap);
    va_end(ap);
}
