/*
 * fuzz_request.c - libFuzzer target: the service socket's request parser
 * (core/broker/request.c), which every agency can reach.
 *
 * Framing: the input is split into frames at each 0x1e byte (ASCII record
 * separator), so "r1\x1ereplay\x1e{...}" is the three frames of a replay
 * request; every frame beyond the fourth is dropped, as the service does.
 * Invariants: a parsed request names a command, carries a 1-64 byte id and
 * an arguments object, and its pointers lie inside that object; a refused
 * one carries code 400 with a known error name and a non-empty text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/request.h"
#include "common/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_req_frame_t f[4];
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;
    for (;;) {
        const uint8_t *sep = memchr(p, 0x1e, (size_t)(end - p));
        const uint8_t *stop = sep ? sep : end;
        if (n < 4)
            f[n] = (sc_req_frame_t){p, (size_t)(stop - p)};
        n++;
        if (!sep)
            break;
        p = sep + 1;
    }
    sc_request_t req;
    char err[512];
    int rc = sc_request_parse(f, n, &req, err, sizeof err);
    if (rc == 0) {
        if (req.cmd == SC_REQ_NONE || req.id_len < 1 ||
            req.id_len > SC_REQ_ID_MAX || !json_is_object(req.args) ||
            n < 2 || n > 3)
            abort();
        if ((req.cmd == SC_REQ_SNAPSHOT && !req.subtree) ||
            (req.subtree && !sc_subtree_valid(req.subtree,
                                              strlen(req.subtree))))
            abort();
        if (req.cmd == SC_REQ_REPLAY &&
            (!req.channel || !sc_channel_valid(req.channel) || req.from < 1 ||
             req.limit < 0))
            abort();
        /* the argument pointers are the strings of the arguments object */
        if ((req.subtree && req.subtree != json_string_value(json_object_get(
                                               req.args, "subtree"))) ||
            (req.channel && req.channel != json_string_value(json_object_get(
                                               req.args, "channel"))) ||
            (req.epoch && req.epoch != json_string_value(json_object_get(
                                           req.args, "epoch"))))
            abort();
    } else {
        if (req.code != 400 || !req.error || !err[0] ||
            (strcmp(req.error, "bad-request") != 0 &&
             strcmp(req.error, "unknown-command") != 0))
            abort();
    }
    if (req.id_len > SC_REQ_ID_MAX || strlen(req.shown_cmd) >= 40)
        abort();
    sc_request_clear(&req);
    return 0;
}
