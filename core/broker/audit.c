/*
 * audit.c - see audit.h. Owns the queue, the writer thread and rotation.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "threads.h"

struct sc_audit {
    char *path;
    int64_t max_bytes;
    int keep;
    int fd;
    int64_t size;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *queue[SC_AUDIT_QUEUE];
    size_t head, n;
    uint64_t dropped;   /* since the last audit_dropped line */
    bool stop, reopen;
};

static sc_audit_t *g_audit;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int open_log(sc_audit_t *a)
{
    int fd = open(a->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    a->size = fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
    if (st.st_mode & 077)
        fchmod(fd, 0600);
    return fd;
}

static void rotate(sc_audit_t *a)
{
    size_t n = strlen(a->path) + 8;
    char *from = malloc(n), *to = malloc(n);
    if (from && to) {
        for (int i = a->keep - 1; i >= 1; i--) {
            snprintf(from, n, "%s.%d", a->path, i);
            snprintf(to, n, "%s.%d", a->path, i + 1);
            rename(from, to);
        }
        snprintf(to, n, "%s.1", a->path);
        rename(a->path, to);
    }
    free(from);
    free(to);
    if (a->fd >= 0)
        close(a->fd);
    a->fd = open_log(a);
}

static void write_line(sc_audit_t *a, const char *line)
{
    size_t len = strlen(line);
    if (a->max_bytes > 0 && a->size > 0 &&
        a->size + (int64_t)len > a->max_bytes)
        rotate(a);
    if (a->fd < 0 && (a->fd = open_log(a)) < 0) {
        sc_log(SC_L_ERROR, "audit", "cannot open %s: %s; event lost",
               a->path, strerror(errno));
        return;
    }
    ssize_t w = write(a->fd, line, len);
    if (w != (ssize_t)len)
        sc_log(SC_L_ERROR, "audit", "cannot write %s: %s", a->path,
               w < 0 ? strerror(errno) : "short write");
    else
        a->size += (int64_t)len;
}

static char *format(const char *event, json_t *fields)
{
    struct timespec ts;
    struct tm tm;
    char t[96];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
    json_t *o = json_pack("{s:s, s:s}", "ts", t, "event", event);
    if (o && fields)
        json_object_update_missing(o, fields);
    json_decref(fields);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

static void *writer(void *arg)
{
    sc_audit_t *a = arg;
    sc_thread_name("audit", NULL);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->n == 0 && !a->stop && !a->reopen)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->reopen) {
            a->reopen = false;
            if (a->fd >= 0)
                close(a->fd);
            a->fd = open_log(a);
        }
        if (a->n == 0 && a->stop)
            break;
        char *line = NULL;
        uint64_t dropped = 0;
        if (a->n) {
            line = a->queue[a->head];
            a->head = (a->head + 1) % SC_AUDIT_QUEUE;
            a->n--;
        }
        if (a->dropped && a->n < SC_AUDIT_QUEUE / 2) {
            dropped = a->dropped;
            a->dropped = 0;
        }
        pthread_mutex_unlock(&a->mu);
        if (line) {
            write_line(a, line);
            free(line);
        }
        if (dropped) {
            char *d = format("audit_dropped",
                             json_pack("{s:I}", "count", (json_int_t)dropped));
            if (d) {
                write_line(a, d);
                free(d);
            }
        }
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

sc_audit_t *sc_audit_new(const char *path, int64_t max_bytes, int keep,
                         char *err, size_t errlen)
{
    sc_audit_t *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->max_bytes = max_bytes;
    a->keep = keep < 1 ? 1 : keep > 100 ? 100 : keep;
    if ((a->fd = open_log(a)) < 0) {
        snprintf(err, errlen, "cannot open audit log %s: %s", path,
                 strerror(errno));
        free(a->path);
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        snprintf(err, errlen, "cannot start the audit writer thread");
        close(a->fd);
        free(a->path);
        free(a);
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    if (!g_audit)
        g_audit = a;
    pthread_mutex_unlock(&g_mu);
    return a;
}

void sc_audit_destroy(sc_audit_t **a_p)
{
    if (!a_p || !*a_p)
        return;
    sc_audit_t *a = *a_p;
    pthread_mutex_lock(&g_mu);
    if (g_audit == a)
        g_audit = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->n; i++)
        free(a->queue[(a->head + i) % SC_AUDIT_QUEUE]);
    if (a->fd >= 0) {
        fsync(a->fd);
        close(a->fd);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->path);
    free(a);
    *a_p = NULL;
}

void sc_audit_set_limits(sc_audit_t *a, int64_t max_bytes, int keep)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->max_bytes = max_bytes;
    a->keep = keep < 1 ? 1 : keep > 100 ? 100 : keep;
    pthread_mutex_unlock(&a->mu);
}

void sc_audit_reopen(sc_audit_t *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->reopen = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void sc_audit(const char *event, json_t *fields)
{
    static sc_metric_t *dropped_m;
    pthread_mutex_lock(&g_mu);
    sc_audit_t *a = g_audit;
    if (!a) {
        pthread_mutex_unlock(&g_mu);
        json_decref(fields);
        return;
    }
    char *line = format(event, fields);
    if (!line) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    pthread_mutex_lock(&a->mu);
    bool full = a->n == SC_AUDIT_QUEUE;
    if (full) {
        a->dropped++;
    } else {
        a->queue[(a->head + a->n) % SC_AUDIT_QUEUE] = line;
        a->n++;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&g_mu);
    if (full) {
        free(line);
        if (!dropped_m)
            dropped_m = sc_metric_counter(
                "sectorcast_audit_dropped_total",
                "Audit events lost because the audit queue was full.", NULL);
        sc_metric_add(dropped_m, 1);
    }
}
