/*
 * msgid.h - the Nats-Msg-Id of a bridged message.
 *
 * "<epoch>:<channel>:<seq>" (e.g. "2f1c...:energy.lng.tasks:42"): the same
 * message always gets the same id, so a republish after a crash of the
 * broker or of the bridge falls into JetStream's duplicate window and is
 * dropped; two different messages never share one (seq is never reused
 * within an epoch, and epochs differ between journals). Header-only so the
 * unit tests use the very same code.
 */
#ifndef NB_MSGID_H
#define NB_MSGID_H

#include <stdint.h>
#include <stdio.h>

/* Write the id into out (NUL-terminated). Returns its length, or -1 if it
 * does not fit or an argument is missing. */
static inline int nb_msg_id(char *out, size_t outlen, const char *epoch,
                            const char *channel, uint64_t seq)
{
    if (!out || !epoch || !channel || !*epoch || !*channel)
        return -1;
    int n = snprintf(out, outlen, "%s:%s:%llu", epoch, channel,
                     (unsigned long long)seq);
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}

#endif
