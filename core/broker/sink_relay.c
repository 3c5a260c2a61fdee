/*
 * sink_relay.c - see sink_relay.h.
 *
 * One mutex guards the queues; the core thread holds it for one flush
 * (non-blocking sends only), the feeder for one append.
 */
#include "sink_relay.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "host/frame.h"

typedef struct rframe {
    unsigned char *buf;
    size_t len;
    struct rframe *next;
} rframe_t;

typedef struct dest {
    char *rid;
    rframe_t *head, *tail;
    size_t n;
    struct dest *next;
} dest_t;

struct sc_sink_relay {
    pthread_mutex_t mu;
    dest_t *dests;
    int efd;
};

sc_sink_relay_t *sc_sink_relay_new(char *err, size_t errlen)
{
    sc_sink_relay_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void dest_free(dest_t *d)
{
    while (d->head) {
        rframe_t *f = d->head;
        d->head = f->next;
        free(f->buf);
        free(f);
    }
    free(d->rid);
    free(d);
}

void sc_sink_relay_destroy(sc_sink_relay_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    sc_sink_relay_t *r = *r_p;
    *r_p = NULL;
    while (r->dests) {
        dest_t *d = r->dests;
        r->dests = d->next;
        dest_free(d);
    }
    close(r->efd);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int sc_sink_relay_fd(const sc_sink_relay_t *r) { return r ? r->efd : -1; }

static int push(sc_sink_relay_t *r, const char *rid, const sc_frame_t *f)
{
    rframe_t *fr = calloc(1, sizeof *fr);
    if (!fr || sc_frame_encode(f, &fr->buf, &fr->len) != 0) {
        free(fr);
        return -1;
    }
    int rc = -1;
    pthread_mutex_lock(&r->mu);
    dest_t *d = r->dests;
    while (d && strcmp(d->rid, rid) != 0)
        d = d->next;
    if (!d && (d = calloc(1, sizeof *d)) != NULL) {
        if (!(d->rid = strdup(rid))) {
            free(d);
            d = NULL;
        } else {
            d->next = r->dests;
            r->dests = d;
        }
    }
    if (d && d->n < SC_SINK_RELAY_MAX) {
        if (d->tail)
            d->tail->next = fr;
        else
            d->head = fr;
        d->tail = fr;
        d->n++;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        free(fr->buf);
        free(fr);
        return -1;
    }
    uint64_t one = 1;
    ssize_t w = write(r->efd, &one, sizeof one);
    (void)w;
    return 0;
}

static sc_frame_str_t fstr(const char *s, size_t len)
{
    return (sc_frame_str_t){s, len};
}

int sc_sink_relay_msg(sc_sink_relay_t *r, const char *rid,
                      const sc_sink_msg_t *m)
{
    if (!r || !rid || !m || !m->channel || !m->epoch || !m->jws)
        return -1;
    sc_frame_t f = {
        .type = SC_FRAME_SINK_MSG,
        .channel = fstr(m->channel, strlen(m->channel)),
        .epoch = fstr(m->epoch, strlen(m->epoch)),
        .seq = m->seq,
        .data = fstr(m->jws, m->jws_len),
    };
    return push(r, rid, &f);
}

int sc_sink_relay_lost(sc_sink_relay_t *r, const char *rid,
                       const char *channel, const char *epoch, uint64_t first,
                       uint64_t last)
{
    if (!r || !rid || !channel || !epoch || first == 0)
        return -1;
    sc_frame_t f = {
        .type = SC_FRAME_SINK_LOST,
        .channel = fstr(channel, strlen(channel)),
        .epoch = fstr(epoch, strlen(epoch)),
        .seq = first,
        .last = last,
    };
    return push(r, rid, &f);
}

size_t sc_sink_relay_flush(sc_sink_relay_t *r, void *router)
{
    if (!r)
        return 0;
    uint64_t v;
    ssize_t rd = read(r->efd, &v, sizeof v);
    (void)rd;
    size_t waiting = 0;
    pthread_mutex_lock(&r->mu);
    for (dest_t *d = r->dests; d; d = d->next) {
        while (d->head && router) {
            rframe_t *f = d->head;
            /* the first part decides (HWM, unknown peer): the rest of an
             * accepted message is never refused */
            if (zmq_send(router, d->rid, strlen(d->rid),
                         ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
                break;
            zmq_send(router, f->buf, f->len, ZMQ_DONTWAIT);
            d->head = f->next;
            if (!d->head)
                d->tail = NULL;
            d->n--;
            free(f->buf);
            free(f);
        }
        waiting += d->n;
    }
    pthread_mutex_unlock(&r->mu);
    return waiting;
}

void sc_sink_relay_drop(sc_sink_relay_t *r, const char *rid)
{
    if (!r || !rid)
        return;
    pthread_mutex_lock(&r->mu);
    for (dest_t **d = &r->dests; *d; d = &(*d)->next)
        if (strcmp((*d)->rid, rid) == 0) {
            dest_t *gone = *d;
            *d = gone->next;
            dest_free(gone);
            break;
        }
    pthread_mutex_unlock(&r->mu);
}
