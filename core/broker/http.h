/*
 * http.h - the monitoring HTTP server (libmicrohttpd), off unless
 * monitoring.listen is configured (loopback address by default).
 *
 *   GET /metrics      Prometheus text exposition format (metrics.c)
 *   GET /healthz      200 {"ok":true,...} or 503 {"ok":false,"problems":[..]}
 *   GET /api/status   status, channels, agencies, plugins, health and the
 *                     last warnings in one JSON object (status.c)
 *   GET /             the status page: one self-contained HTML document
 *                     (inline CSS and JS, no external resource) that
 *                     refreshes itself from /api/status
 *
 * Owns the libmicrohttpd daemon and its thread; never touches broker
 * state (it reads status.c and metrics.c, both thread-safe). At most
 * SC_HTTP_CONNECTIONS (32) connections at once, 10 s connection timeout;
 * only GET and HEAD.
 */
#ifndef SC_HTTP_H
#define SC_HTTP_H

#include <stddef.h>

#include "status.h"

#define SC_HTTP_CONNECTIONS 32

typedef struct sc_http sc_http_t;

/* listen: "HOST:PORT" with an IPv4 address or "[IPv6]:PORT". NULL + err
 * when it cannot listen. */
sc_http_t *sc_http_new(const char *listen, sc_status_t *status, char *err,
                       size_t errlen);
void sc_http_destroy(sc_http_t **h_p);

/* Parse "HOST:PORT" (for config validation): 0 or -1 with why. */
int sc_http_parse_listen(const char *listen, char *host, size_t hostlen,
                         int *port, const char **why);

#endif
