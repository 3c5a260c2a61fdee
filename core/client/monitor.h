/*
 * monitor.h - the handshake watch of one client socket.
 *
 * libzmq reports a ZAP rejection (400), a security mechanism mismatch and
 * a handshake that keeps failing only as socket monitor events; the
 * socket itself just waits. A monitor turns those events into one sticky,
 * clearly worded fatal error. Used for the SUB and the DEALER socket.
 */
#ifndef SC_CLIENT_MONITOR_H
#define SC_CLIENT_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sc_mon sc_mon_t;

/* Start monitoring `sock` (before it connects). `endpoint` is quoted in
 * error texts; `curve` says whether we speak CURVE. NULL with err filled. */
sc_mon_t *sc_mon_new(void *ctx, void *sock, const char *endpoint, bool curve,
                     char *err, size_t errlen);
void sc_mon_destroy(sc_mon_t **m_p);

/* The PAIR socket to poll for ZMQ_POLLIN. */
void *sc_mon_socket(sc_mon_t *m);

/* Read every pending event. Returns 0, or the sticky fatal code
 * (SC_CLIENT_AUTH or SC_CLIENT_ERROR) with its text in *text. */
int sc_mon_drain(sc_mon_t *m, const char **text);

#endif
