/*
 * pipeline.c - see pipeline.h.
 *
 * Publishes are handled in groups: everything ready (up to GROUP_MAX) is
 * sequenced, signed and appended to the journal in one transaction; only
 * after the commit succeeds is the group sent.
 */
#include "pipeline.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/channel.h"
#include "common/clock.h"
#include "common/envelope.h"
#include "log.h"
#include "plugin_host.h"

#define GROUP_MAX 1024
#define RETRY_MS 1000

typedef struct pending {
    char *parts[SC_PUB_FRAMES]; /* NUL-terminated copies of the frames */
    bool is_state;              /* a plugin state write, not a message */
    void *rid;                  /* routing id of an acked (child) publish */
    size_t rid_len;
    json_t *data;
    char *jws;
    size_t jws_len;
    uint64_t seq;
    char ts[32];
} pending_t;

struct sc_pipeline {
    void *xpub;
    void *pull;
    void *pull_ipc;
    sc_journal_t *journal;
    const sc_keyring_t *keyring;
    const sc_supervisor_t *sv;
    char *gateway_id;
    sc_pipeline_commit_fn on_commit;
    void *on_commit_arg;

    pending_t group[GROUP_MAX];
    size_t n_group;
    int64_t retry_at_ms; /* journal failure: pause until then */
    uint64_t n_sent;
};

sc_pipeline_t *sc_pipeline_new(const sc_pipeline_env_t *env, char *err,
                               size_t errlen)
{
    sc_pipeline_t *p = calloc(1, sizeof *p);
    if (!p || !(p->gateway_id = strdup(env->gateway_id))) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->xpub = env->xpub;
    p->pull = env->pull;
    p->pull_ipc = env->pull_ipc;
    p->journal = env->journal;
    p->keyring = env->keyring;
    return p;
}

static void pending_clear(pending_t *m)
{
    for (int i = 0; i < SC_PUB_FRAMES; i++)
        free(m->parts[i]);
    free(m->rid);
    json_decref(m->data);
    free(m->jws);
    memset(m, 0, sizeof *m);
}

void sc_pipeline_destroy(sc_pipeline_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    sc_pipeline_t *p = *p_p;
    for (size_t i = 0; i < p->n_group; i++)
        pending_clear(&p->group[i]);
    free(p->gateway_id);
    free(p);
    *p_p = NULL;
}

void sc_pipeline_set_supervisor(sc_pipeline_t *p, const sc_supervisor_t *sv)
{
    p->sv = sv;
}

void sc_pipeline_set_keyring(sc_pipeline_t *p, const sc_keyring_t *kr)
{
    p->keyring = kr;
}

void sc_pipeline_on_commit(sc_pipeline_t *p, sc_pipeline_commit_fn fn,
                           void *arg)
{
    p->on_commit = fn;
    p->on_commit_arg = arg;
}

uint64_t sc_pipeline_sent(const sc_pipeline_t *p) { return p->n_sent; }

int64_t sc_pipeline_retry_at(const sc_pipeline_t *p) { return p->retry_at_ms; }

/* Tell a plugin child process what became of its publish. */
static void ack(sc_pipeline_t *p, pending_t *m, const char *what)
{
    if (!m->rid || !p->pull_ipc)
        return;
    if (zmq_send(p->pull_ipc, m->rid, m->rid_len,
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(p->pull_ipc, what, strlen(what), ZMQ_DONTWAIT);
}

static bool child_may(const sc_pipeline_t *p, const char *name,
                      const char *channel)
{
    return p->sv && sc_supervisor_may_publish(p->sv, name, channel);
}

/* Read one publish from a plugin socket into the group. -1 if nothing is
 * ready (EAGAIN), 0 if one was read (or a malformed one discarded). */
static int read_publish(sc_pipeline_t *p, void *sock)
{
    pending_t *m = &p->group[p->n_group];
    memset(m, 0, sizeof *m);
    int nf = 0, more = 1, bad = 0;
    if (sock == p->pull_ipc) {
        /* ROUTER: the first frame is the child's routing id */
        zmq_msg_t r;
        zmq_msg_init(&r);
        if (zmq_msg_recv(&r, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&r);
            return -1;
        }
        more = zmq_msg_more(&r);
        m->rid_len = zmq_msg_size(&r);
        m->rid = malloc(m->rid_len ? m->rid_len : 1);
        if (m->rid)
            memcpy(m->rid, zmq_msg_data(&r), m->rid_len);
        zmq_msg_close(&r);
        if (!m->rid || !more)
            bad = 1;
    }
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock,
                         nf == 0 && !m->rid ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f);
            if (nf == 0 && !m->rid)
                return -1;
            bad = 1;
            break;
        }
        more = zmq_msg_more(&f);
        if (nf < SC_PUB_FRAMES) {
            size_t n = zmq_msg_size(&f);
            m->parts[nf] = malloc(n + 1);
            if (m->parts[nf]) {
                memcpy(m->parts[nf], zmq_msg_data(&f), n);
                m->parts[nf][n] = '\0';
            } else {
                bad = 1;
            }
        }
        nf++;
        zmq_msg_close(&f);
    }
    if (!bad && nf == SC_STATE_FRAMES &&
        strcmp(m->parts[1], "state") == 0 &&
        (m->parts[3][0] == 'v' || strcmp(m->parts[3], "d") == 0)) {
        /* a child may only write its own state: the name is checked */
        if (sock == p->pull_ipc && !child_may(p, m->parts[0], NULL)) {
            sc_log(SC_L_ERROR, "core",
                   "discarded state write from unknown plugin process "
                   "'%.64s'",
                   m->parts[0]);
            ack(p, m, SC_PUB_ACK_REFUSED);
            pending_clear(m);
            return 0;
        }
        m->is_state = true;
        p->n_group++;
        return 0;
    }
    if (bad || nf != SC_PUB_FRAMES) {
        /* cannot happen with our own plugin host; never trust it blindly */
        sc_log(SC_L_ERROR, "core", "discarded malformed internal publish "
               "(%d frames)", nf);
        ack(p, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    /* a plugin child process is not trusted: check its grant again */
    if (sock == p->pull_ipc &&
        (!sc_channel_valid(m->parts[SC_PUB_F_CHANNEL]) ||
         !child_may(p, m->parts[SC_PUB_F_PLUGIN],
                    m->parts[SC_PUB_F_CHANNEL]))) {
        sc_log(SC_L_ERROR, "core",
               "discarded publish from plugin process '%.64s' to '%.200s': "
               "not granted",
               m->parts[SC_PUB_F_PLUGIN], m->parts[SC_PUB_F_CHANNEL]);
        ack(p, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    json_error_t je;
    m->data = json_loads(m->parts[SC_PUB_F_DATA], 0, &je);
    if (!m->data || !json_is_object(m->data)) {
        sc_log(SC_L_ERROR, m->parts[SC_PUB_F_PLUGIN],
               "discarded publish to %s: data not a JSON object",
               m->parts[SC_PUB_F_CHANNEL]);
        ack(p, m, SC_PUB_ACK_REFUSED);
        pending_clear(m);
        return 0;
    }
    p->n_group++;
    return 0;
}

/* Sequence, sign and journal the whole group; on success send it. */
static int flush_group(sc_pipeline_t *p)
{
    if (p->n_group == 0)
        return 0;
    char err[512];
    if (sc_journal_begin(p->journal, err, sizeof err) != 0)
        goto fail;
    for (size_t i = 0; i < p->n_group; i++) {
        pending_t *m = &p->group[i];
        if (m->is_state) {
            const char *v = m->parts[3];
            if (sc_journal_state_put(p->journal, m->parts[0], m->parts[2],
                                     v[0] == 'v' ? v + 1 : NULL, err,
                                     sizeof err) != 0)
                goto fail;
            continue;
        }
        const char *channel = m->parts[SC_PUB_F_CHANNEL];
        const char *keyf = m->parts[SC_PUB_F_KEY];
        const char *key = keyf[0] == 'k' ? keyf + 1 : NULL;
        free(m->jws);
        m->jws = NULL;
        m->seq = sc_journal_next_seq(p->journal, channel);
        if (m->seq == 0) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        sc_now_rfc3339(m->ts);
        json_t *source = json_pack("{s:s, s:s, s:s}", "gateway",
                                   p->gateway_id, "plugin",
                                   m->parts[SC_PUB_F_PLUGIN], "sector",
                                   m->parts[SC_PUB_F_SECTOR]);
        sc_envelope_in_t in = {
            .channel = channel,
            .epoch = sc_journal_epoch(p->journal),
            .seq = m->seq,
            .id = NULL,
            .ts = m->ts,
            .kind = m->parts[SC_PUB_F_KIND],
            .key = key,
            .source = source,
            .data = m->data,
        };
        const sc_sigkey_t *k = sc_keyring_for(p->keyring, channel);
        int rc = source ? sc_envelope_sign(&in, k, &m->jws, &m->jws_len, err,
                                           sizeof err)
                        : -1;
        json_decref(source);
        if (rc != 0) {
            /* this message can never be signed (the plugin host checked
             * what it could): drop it alone, give its seq back, and keep
             * the rest of the group */
            sc_log(SC_L_ERROR, m->parts[SC_PUB_F_PLUGIN],
                   "cannot sign message for %s: %s; dropped", channel,
                   source ? err : "out of memory");
            sc_journal_release_seq(p->journal, channel, m->seq);
            ack(p, m, SC_PUB_ACK_REFUSED);
            pending_clear(m);
            memmove(m, m + 1, (p->n_group - i - 1) * sizeof *m);
            p->n_group--;
            i--;
            continue;
        }
        if (sc_journal_append(p->journal, channel, m->seq, in.kind, key,
                              m->ts, sc_sigkey_kid(k), m->jws, m->jws_len, err,
                              sizeof err) != 0)
            goto fail;
    }
    if (sc_journal_commit(p->journal, err, sizeof err) != 0)
        goto fail;

    /* durable: now send. XPUB never blocks; a subscriber over its HWM
     * loses the message and repairs the gap by replay. */
    for (size_t i = 0; i < p->n_group; i++) {
        pending_t *m = &p->group[i];
        if (m->is_state) {
            ack(p, m, SC_PUB_ACK_OK);
            pending_clear(m);
            continue;
        }
        char topic[SC_CHANNEL_MAX + 2];
        int tl = sc_channel_topic(m->parts[SC_PUB_F_CHANNEL], topic,
                                  sizeof topic);
        if (tl > 0 &&
            zmq_send(p->xpub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) ==
                tl)
            zmq_send(p->xpub, m->jws, m->jws_len, ZMQ_DONTWAIT);
        p->n_sent++;
        if (sc_log_enabled(SC_L_DEBUG))
            sc_log(SC_L_DEBUG, m->parts[SC_PUB_F_PLUGIN],
                   "%s seq %llu %s key %s", m->parts[SC_PUB_F_CHANNEL],
                   (unsigned long long)m->seq, m->parts[SC_PUB_F_KIND],
                   m->parts[SC_PUB_F_KEY][0] == 'k'
                       ? m->parts[SC_PUB_F_KEY] + 1
                       : "-");
        if (p->on_commit)
            p->on_commit(p->on_commit_arg, m->parts[SC_PUB_F_CHANNEL],
                         m->seq, m->jws, m->jws_len);
        ack(p, m, SC_PUB_ACK_OK);
        pending_clear(m);
    }
    p->n_group = 0;
    p->retry_at_ms = 0;
    return 0;
fail:
    sc_journal_rollback(p->journal);
    sc_log(SC_L_ERROR, "journal",
           "cannot journal %zu message(s): %s; publishing paused, retrying "
           "in %d ms (nothing is sent before it is journaled)",
           p->n_group, err, RETRY_MS);
    p->retry_at_ms = sc_mono_ms() + RETRY_MS;
    return -1;
}

bool sc_pipeline_drain(sc_pipeline_t *p)
{
    if (p->retry_at_ms != 0 && sc_mono_ms() < p->retry_at_ms)
        return false;
    for (int round = 0; round < 64; round++) {
        while (p->n_group < GROUP_MAX && read_publish(p, p->pull) == 0)
            ;
        while (p->pull_ipc && p->n_group < GROUP_MAX &&
               read_publish(p, p->pull_ipc) == 0)
            ;
        if (p->n_group == 0 || flush_group(p) != 0)
            break;
    }
    return false;
}

void sc_pipeline_retry(sc_pipeline_t *p)
{
    if (p->retry_at_ms != 0 && sc_mono_ms() >= p->retry_at_ms)
        flush_group(p);
}

void sc_pipeline_finish(sc_pipeline_t *p)
{
    for (int tries = 0; p->n_group && tries < 5; tries++)
        if (flush_group(p) != 0)
            usleep(200000);
    if (p->n_group)
        sc_log(SC_L_ERROR, "journal",
               "%zu accepted message(s) could not be journaled before exit",
               p->n_group);
}
