/*
 * channel.h - channel names, subtrees and topics.
 *
 * Owns the syntax rules of the wire contract: a channel name is lowercase
 * [a-z0-9-] segments joined by '.', e.g. "energy.nuclear.tasks"; a topic or
 * subscription ("subtree") is a channel name prefix that ends on '.', e.g.
 * "energy." or "energy.nuclear.tasks.". Never allocates.
 */
#ifndef SC_CHANNEL_H
#define SC_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest channel name we accept (bytes, without the trailing '.'). */
#define SC_CHANNEL_MAX 200

/* true if `name` is a valid channel name (no trailing '.'). */
bool sc_channel_valid(const char *name);

/* true if `s` (len bytes, need not be NUL-terminated) is a valid subtree:
 * one or more segments each followed by '.'. The empty string is not. */
bool sc_subtree_valid(const char *s, size_t len);

/* true if subtree `outer` covers subtree-or-topic `inner` (both end in
 * '.'), i.e. `outer` is a prefix of `inner`. */
bool sc_subtree_covers(const char *outer, const char *inner, size_t inner_len);

/* Write the topic of `channel` ("<channel>.") into out[outlen].
 * Returns the topic length, or -1 if it does not fit / is invalid. */
int sc_channel_topic(const char *channel, char *out, size_t outlen);

#endif
