/*
 * channel.c - syntax of channel names, subtrees and topics.
 *
 * Pure functions over bytes: no allocation, no locale, no NUL assumed
 * where a length is given.
 */
#include "channel.h"

#include <string.h>

static bool seg_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* s[len] is segments of [a-z0-9-]+ joined by single dots, 1..MAX bytes. */
static bool name_valid(const char *s, size_t len)
{
    if (len == 0 || len > SC_CHANNEL_MAX)
        return false;
    bool seg_empty = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (seg_empty)
                return false;
            seg_empty = true;
        } else if (seg_char(c)) {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

bool sc_channel_valid(const char *name)
{
    if (name == NULL)
        return false;
    /* strnlen: never scan more than one byte past the limit. */
    size_t len = strnlen(name, SC_CHANNEL_MAX + 1);
    return name_valid(name, len);
}

bool sc_subtree_valid(const char *s, size_t len)
{
    if (s == NULL || len < 2 || s[len - 1] != '.')
        return false;
    return name_valid(s, len - 1);
}

bool sc_subtree_covers(const char *outer, const char *inner,
                       size_t inner_len)
{
    if (outer == NULL || inner == NULL)
        return false;
    size_t outer_len = strnlen(outer, SC_CHANNEL_MAX + 2);
    if (!sc_subtree_valid(outer, outer_len) ||
        !sc_subtree_valid(inner, inner_len))
        return false;
    /* Both end on '.', so a byte prefix is always a whole-segment prefix. */
    return outer_len <= inner_len && memcmp(outer, inner, outer_len) == 0;
}

int sc_channel_topic(const char *channel, char *out, size_t outlen)
{
    if (!sc_channel_valid(channel) || out == NULL)
        return -1;
    size_t len = strlen(channel);
    if (outlen < len + 2)
        return -1;
    memcpy(out, channel, len);
    out[len] = '.';
    out[len + 1] = '\0';
    return (int)(len + 1);
}
