/*
 * http.c - see http.h. Owns the HTTP daemon and the status page text.
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"

struct sc_http {
    struct MHD_Daemon *d;
    sc_status_t *status;
};

#include "http_page.inc"

int sc_http_parse_listen(const char *listen, char *host, size_t hostlen,
                         int *port, const char **why)
{
    const char *colon;
    size_t hl;
    if (!listen || !*listen) {
        *why = "empty";
        return -1;
    }
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            *why = "expected [IPv6]:PORT";
            return -1;
        }
        hl = (size_t)(close - listen - 1);
        if (hl >= hostlen) {
            *why = "address too long";
            return -1;
        }
        memcpy(host, listen + 1, hl);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            *why = "expected HOST:PORT";
            return -1;
        }
        hl = (size_t)(colon - listen);
        if (hl >= hostlen) {
            *why = "address too long";
            return -1;
        }
        memcpy(host, listen, hl);
    }
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535 || end == colon + 1) {
        *why = "port must be 1..65535";
        return -1;
    }
    *port = (int)p;
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 &&
        inet_pton(AF_INET6, host, buf) != 1) {
        *why = "host must be a numeric IPv4 or IPv6 address";
        return -1;
    }
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code,
                             const char *type, char *body, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body,
        owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned code,
                                  json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return reply(conn, 500, "text/plain", "out of memory\n", false);
    return reply(conn, code, "application/json", s, true);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    sc_http_t *h = cls;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body is ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, 405, "text/plain", "only GET\n", false);
    if (strcmp(url, "/metrics") == 0) {
        char *t = sc_metrics_render();
        if (!t)
            return reply(conn, 500, "text/plain", "out of memory\n", false);
        return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", t,
                     true);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool ok = true;
        json_t *j = sc_status_health(h->status, &ok);
        return reply_json(conn, ok ? 200 : 503, j);
    }
    if (strcmp(url, "/api/status") == 0)
        return reply_json(conn, 200, sc_status_json_all(h->status));
    if (strcmp(url, "/") == 0)
        return reply(conn, 200, "text/html; charset=utf-8",
                     (char *)status_page, false);
    return reply(conn, 404, "text/plain", "not found\n", false);
}

sc_http_t *sc_http_new(const char *listen, sc_status_t *status, char *err,
                       size_t errlen)
{
    char host[64];
    int port;
    const char *why;
    if (sc_http_parse_listen(listen, host, sizeof host, &port, &why) != 0) {
        snprintf(err, errlen, "monitoring.listen '%s': %s", listen, why);
        return NULL;
    }
    sc_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->status = status;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    memset(&v4, 0, sizeof v4);
    memset(&v6, 0, sizeof v6);
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons((uint16_t)port);
        sa = (const struct sockaddr *)&v4;
    } else {
        inet_pton(AF_INET6, host, &v6.sin6_addr);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((uint16_t)port);
        sa = (const struct sockaddr *)&v6;
        flags |= MHD_USE_IPv6;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)SC_HTTP_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen for HTTP on %s (address in use "
                              "or not local?)", listen);
        free(h);
        return NULL;
    }
    sc_log(SC_L_INFO, "http", "monitoring on http://%s/ (/metrics, /healthz, "
                              "/api/status)", listen);
    return h;
}

void sc_http_destroy(sc_http_t **h_p)
{
    if (!h_p || !*h_p)
        return;
    if ((*h_p)->d)
        MHD_stop_daemon((*h_p)->d);
    free(*h_p);
    *h_p = NULL;
}
