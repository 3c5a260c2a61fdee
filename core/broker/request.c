/*
 * request.c - see request.h.
 *
 * The texts of the 400 replies are part of what agencies see; they say
 * what a correct request looks like, never echo more than a short,
 * printable excerpt of what was sent.
 */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/channel.h"

static const struct {
    const char *name;
    sc_req_cmd_t cmd;
} commands[] = {
    {"whoami", SC_REQ_WHOAMI},
    {"heads", SC_REQ_HEADS},
    {"replay", SC_REQ_REPLAY},
    {"snapshot", SC_REQ_SNAPSHOT},
};

const char *sc_request_cmd_name(sc_req_cmd_t cmd)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].cmd == cmd)
            return commands[i].name;
    return "?";
}

static int fail(sc_request_t *req, const char *error, char *err,
                size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(sc_request_t *req, const char *error, char *err,
                size_t errlen, const char *fmt, ...)
{
    req->code = 400;
    req->error = error;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* `name` must be a string that is a valid subtree. */
static int arg_subtree(sc_request_t *req, const char *name, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(req->args, name);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    /* json_string_length: a string with an embedded NUL is not a subtree */
    if (!s || strlen(s) != json_string_length(v) ||
        !sc_subtree_valid(s, strlen(s)))
        return fail(req, "bad-request", err, errlen,
                    "'%s' must be a subtree: channel segments each followed "
                    "by '.'",
                    name);
    req->subtree = s;
    return 0;
}

static int parse_replay(sc_request_t *req, char *err, size_t errlen)
{
    json_t *jc = json_object_get(req->args, "channel");
    json_t *jf = json_object_get(req->args, "from");
    json_t *jl = json_object_get(req->args, "limit");
    json_t *je = json_object_get(req->args, "epoch");
    const char *channel = json_is_string(jc) ? json_string_value(jc) : NULL;
    if (!channel || strlen(channel) != json_string_length(jc) ||
        !sc_channel_valid(channel))
        return fail(req, "bad-request", err, errlen,
                    "'channel' must be a channel name");
    if (!json_is_integer(jf) || json_integer_value(jf) < 1)
        return fail(req, "bad-request", err, errlen,
                    "'from' must be an integer >= 1");
    if (jl && (!json_is_integer(jl) || json_integer_value(jl) < 1))
        return fail(req, "bad-request", err, errlen,
                    "'limit' must be an integer >= 1");
    if (je && !json_is_string(je))
        return fail(req, "bad-request", err, errlen,
                    "'epoch' must be a string");
    req->channel = channel;
    req->from = (uint64_t)json_integer_value(jf);
    req->limit = jl ? (int64_t)json_integer_value(jl) : 0;
    req->epoch = je ? json_string_value(je) : NULL;
    return 0;
}

int sc_request_parse(const sc_req_frame_t *f, size_t n, sc_request_t *req,
                     char *err, size_t errlen)
{
    memset(req, 0, sizeof *req);
    if (err && errlen)
        err[0] = '\0';
    if (n >= 1 && f[0].data) {
        req->id_len = f[0].size > SC_REQ_ID_MAX ? SC_REQ_ID_MAX : f[0].size;
        memcpy(req->id, f[0].data, req->id_len);
    }
    if (n < 2 || n > 3 || f[0].size == 0 || f[0].size > SC_REQ_ID_MAX)
        return fail(req, "bad-request", err, errlen,
                    "a request is [request-id (1-64 bytes)][command][args "
                    "JSON object]");

    const char *cmd = f[1].data;
    size_t cl = f[1].data ? f[1].size : 0;
    size_t k = 0;
    for (size_t i = 0; i < cl && k + 1 < sizeof req->shown_cmd; i++) {
        unsigned char c = (unsigned char)cmd[i];
        req->shown_cmd[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    req->shown_cmd[k] = '\0';

    if (n == 3 && f[2].data && f[2].size > 0) {
        json_error_t je;
        req->args = json_loadb(f[2].data, f[2].size, JSON_REJECT_DUPLICATES,
                               &je);
    } else {
        req->args = json_object();
    }
    if (!json_is_object(req->args))
        return fail(req, "bad-request", err, errlen,
                    "arguments must be a JSON object");

    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (cl == strlen(commands[i].name) &&
            memcmp(cmd, commands[i].name, cl) == 0)
            req->cmd = commands[i].cmd;
    switch (req->cmd) {
    case SC_REQ_WHOAMI:
        return 0;
    case SC_REQ_HEADS:
        if (json_object_get(req->args, "subtree"))
            return arg_subtree(req, "subtree", err, errlen);
        return 0;
    case SC_REQ_SNAPSHOT:
        return arg_subtree(req, "subtree", err, errlen);
    case SC_REQ_REPLAY:
        return parse_replay(req, err, errlen);
    case SC_REQ_NONE:
        break;
    }
    return fail(req, "unknown-command", err, errlen,
                "unknown command '%s' (known: whoami, heads, replay, "
                "snapshot)",
                req->shown_cmd);
}

void sc_request_clear(sc_request_t *req)
{
    if (!req)
        return;
    json_decref(req->args);
    memset(req, 0, sizeof *req);
}
