/*
 * held.c - see held.h.
 */
#include "held.h"

#include <stdlib.h>
#include <string.h>

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put(char **p, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = *p;
    memcpy(d, s, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

sc_held_t *sc_held_new(const sc_held_t *in)
{
    if (!in || !in->channel || !in->epoch || !in->id || !in->ts ||
        !in->kind || !in->kid || !in->envelope || !in->jws)
        return NULL;
    size_t need = sizeof(sc_held_t) + slen(in->channel) + slen(in->epoch) +
                  slen(in->id) + slen(in->ts) + slen(in->kind) +
                  slen(in->key) + slen(in->kid) + in->envelope_len + 1 +
                  in->jws_len + 1;
    sc_held_t *h = malloc(need);
    if (!h)
        return NULL;
    char *p = (char *)(h + 1);
    h->seq = in->seq;
    h->channel = put(&p, in->channel, strlen(in->channel));
    h->epoch = put(&p, in->epoch, strlen(in->epoch));
    h->id = put(&p, in->id, strlen(in->id));
    h->ts = put(&p, in->ts, strlen(in->ts));
    h->kind = put(&p, in->kind, strlen(in->kind));
    h->key = in->key ? put(&p, in->key, strlen(in->key)) : NULL;
    h->kid = put(&p, in->kid, strlen(in->kid));
    h->envelope = put(&p, in->envelope, in->envelope_len);
    h->envelope_len = in->envelope_len;
    h->jws = put(&p, in->jws, in->jws_len);
    h->jws_len = in->jws_len;
    h->origin = in->origin;
    return h;
}

void sc_held_free(sc_held_t *h)
{
    free(h);
}

void sc_held_message(const sc_held_t *h, sc_message_t *msg)
{
    if (!h || !msg)
        return;
    msg->channel = h->channel;
    msg->epoch = h->epoch;
    msg->seq = h->seq;
    msg->id = h->id;
    msg->ts = h->ts;
    msg->kind = h->kind;
    msg->key = h->key;
    msg->kid = h->kid;
    msg->envelope = h->envelope;
    msg->envelope_len = h->envelope_len;
    msg->jws = h->jws;
    msg->jws_len = h->jws_len;
}
