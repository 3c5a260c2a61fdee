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
#include "host/frame.h"
#include "host/host.h"
#include "plugin_host.h"

#define GROUP_MAX 1024

/* A pending message's fields (NUL-terminated copies). A state write uses
 * parts 0 (instance), 2 (key) and 3 ('v' + value, or "d"). */
enum {
    SC_PUB_F_PLUGIN = 0, /* instance name, from the core's config */
    SC_PUB_F_SECTOR,     /* sector name, from the core's config */
    SC_PUB_F_CHANNEL,
    SC_PUB_F_KIND,
    SC_PUB_F_KEY,        /* 'k' + key, or "n" for no key */
    SC_PUB_F_DATA,       /* unused: the data is parsed once, into `data` */
    SC_PUB_FRAMES
};
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

/* Tell a plugin child process what became of its frame. */
static void ack(sc_pipeline_t *p, pending_t *m, const char *what)
{
    if (!m->rid || !p->pull_ipc)
        return;
    sc_frame_t f = {.type = SC_FRAME_ACK,
                    .data = {what, strlen(what)}};
    unsigned char *buf;
    size_t len;
    if (sc_frame_encode(&f, &buf, &len) != 0)
        return;
    if (zmq_send(p->pull_ipc, m->rid, m->rid_len,
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(p->pull_ipc, buf, len, ZMQ_DONTWAIT);
    free(buf);
}

static char *dup_str(sc_frame_str_t s)
{
    char *c = malloc(s.len + 1);
    if (c) {
        memcpy(c, s.ptr, s.len);
        c[s.len] = '\0';
    }
    return c;
}

/* Read one frame from a plugin socket; a publish or state write goes into
 * the group. -1 if nothing is ready (EAGAIN), 0 if one was read (or a bad
 * one discarded). Who sent it is known from the socket, never from the
 * frame: a plugin thread's instance name (inproc, the broker's own code),
 * or a child's credential (its routing id, checked by the supervisor).
 * source.plugin and source.sector come from the running configuration. */
static int read_publish(sc_pipeline_t *p, void *sock)
{
    pending_t *m = &p->group[p->n_group];
    memset(m, 0, sizeof *m);
    zmq_msg_t part[2];
    int n = 0, more = 1;
    bool bad = false;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f);
            if (n == 0)
                return -1;
            bad = true;
            break;
        }
        more = zmq_msg_more(&f);
        if (n < 2)
            part[n] = f; /* moved */
        else
            zmq_msg_close(&f);
        n++;
    }
    const sc_cfg_plugin_t *who = NULL;
    const char *from = "core";
    char name[128] = "";
    if (n >= 1) {
        size_t l = zmq_msg_size(&part[0]);
        if (sock == p->pull_ipc) {
            m->rid_len = l;
            m->rid = malloc(l ? l : 1);
            if (m->rid)
                memcpy(m->rid, zmq_msg_data(&part[0]), l);
            who = p->sv ? sc_supervisor_child(p->sv, zmq_msg_data(&part[0]),
                                              l)
                        : NULL;
        } else if (l < sizeof name) {
            memcpy(name, zmq_msg_data(&part[0]), l);
            name[l] = '\0';
            who = p->sv ? sc_supervisor_plugin(p->sv, name) : NULL;
        }
    }
    if (who)
        from = who->name;
    sc_frame_t f;
    char err[128] = "";
    if (bad || n != 2 ||
        sc_frame_decode(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &f,
                        err, sizeof err) != 0) {
        sc_log(SC_L_ERROR, "core", "discarded malformed frame from %s: %s",
               who ? from : "an unknown plugin", err[0] ? err : "framing");
        goto refuse;
    }
    if (!who) {
        sc_log(SC_L_ERROR, "core",
               "discarded frame from %s: no such plugin is running",
               sock == p->pull_ipc ? "a process without a valid credential"
                                   : name);
        goto refuse;
    }
    switch (f.type) {
    case SC_FRAME_PUBLISH: {
        char ch[SC_CHANNEL_MAX + 1];
        sc_frame_str_copy(f.channel, ch, sizeof ch); /* checked by decode */
        if (!sc_host_granted((const char *const *)who->channels,
                             who->n_channels, ch)) {
            sc_log(SC_L_ERROR, "core",
                   "discarded publish from plugin '%s' to '%.200s': not "
                   "granted",
                   who->name, ch);
            goto refuse;
        }
        json_error_t je;
        m->data = json_loadb(f.data.ptr, f.data.len, JSON_REJECT_DUPLICATES,
                             &je);
        if (!m->data || !json_is_object(m->data)) {
            sc_log(SC_L_ERROR, who->name,
                   "discarded publish to %s: data not a JSON object", ch);
            goto refuse;
        }
        m->parts[SC_PUB_F_PLUGIN] = strdup(who->name);
        m->parts[SC_PUB_F_SECTOR] = strdup(who->sector ? who->sector : "");
        m->parts[SC_PUB_F_CHANNEL] = strdup(ch);
        m->parts[SC_PUB_F_KIND] = dup_str(f.kind);
        char *k = f.key.ptr ? malloc(f.key.len + 2) : strdup("n");
        if (k && f.key.ptr) {
            k[0] = 'k';
            memcpy(k + 1, f.key.ptr, f.key.len);
            k[f.key.len + 1] = '\0';
        }
        m->parts[SC_PUB_F_KEY] = k;
        m->parts[SC_PUB_F_DATA] = strdup("");
        for (int i = 0; i < SC_PUB_FRAMES; i++)
            if (!m->parts[i]) {
                sc_log(SC_L_ERROR, who->name, "out of memory");
                goto refuse;
            }
        break;
    }
    case SC_FRAME_STATE_PUT:
    case SC_FRAME_STATE_DEL: {
        /* [name][-][key]['v' value | "d"]: a plugin writes only its own
         * state, under the name the core knows it by */
        m->parts[0] = strdup(who->name);
        m->parts[2] = dup_str(f.key);
        char *v = malloc(f.data.len + 2);
        if (v) {
            v[0] = f.type == SC_FRAME_STATE_PUT ? 'v' : 'd';
            if (f.data.len)
                memcpy(v + 1, f.data.ptr, f.data.len);
            v[f.data.len + 1] = '\0';
        }
        m->parts[3] = v;
        if (!m->parts[0] || !m->parts[2] || !m->parts[3])
            goto refuse;
        m->is_state = true;
        break;
    }
    case SC_FRAME_SINK_ACK:
    case SC_FRAME_SINK_NACK: {
        char ch[SC_CHANNEL_MAX + 1];
        sc_frame_str_copy(f.channel, ch, sizeof ch);
        if (f.type == SC_FRAME_SINK_ACK)
            sc_plugin_sink_acked(who->name, ch, f.seq, 0);
        else
            sc_plugin_sink_acked(who->name, ch, 0, f.seq);
        ack(p, m, SC_PUB_ACK_OK);
        goto done;
    }
    case SC_FRAME_PONG:
        if (m->rid)
            sc_supervisor_pong((sc_supervisor_t *)p->sv, m->rid, m->rid_len,
                               f.seq);
        goto done;
    default:
        sc_log(SC_L_ERROR, "core",
               "discarded frame of type '%c' from plugin '%s': not "
               "expected from a plugin",
               (char)f.type, who->name);
        goto refuse;
    }
    zmq_msg_close(&part[0]);
    zmq_msg_close(&part[1]);
    p->n_group++;
    return 0;
refuse:
    ack(p, m, SC_PUB_ACK_REFUSED);
done:
    for (int i = 0; i < n && i < 2; i++)
        zmq_msg_close(&part[i]);
    pending_clear(m);
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
