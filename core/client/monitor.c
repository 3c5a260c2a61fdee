/*
 * monitor.c - see monitor.h.
 */
#include "monitor.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "sectorcast/client.h"

/* Consecutive handshakes that fail without detail before we call it a
 * configuration error. With CURVE and a wrong gateway key libzmq reports
 * only this and retries forever; a restarting gateway refuses connections
 * instead (no handshake), so the counter does not trip on restarts. */
#define MAX_HANDSHAKE_FAILURES 5

struct sc_mon {
    void *sock;    /* the watched socket (not owned) */
    void *pair;    /* our end of the monitor */
    char *endpoint;
    bool curve;
    unsigned hs_failures;
    int fatal_rc;
    char fatal[256];
};

sc_mon_t *sc_mon_new(void *ctx, void *sock, const char *endpoint, bool curve,
                     char *err, size_t errlen)
{
    sc_mon_t *m = calloc(1, sizeof *m);
    if (!m || !(m->endpoint = strdup(endpoint))) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->curve = curve;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://sc-client-mon-%p", (void *)m);
    if (zmq_socket_monitor(sock, ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
        snprintf(err, errlen, "cannot start socket monitor: %s",
                 zmq_strerror(zmq_errno()));
        sc_mon_destroy(&m);
        return NULL;
    }
    m->sock = sock;
    int zero = 0;
    m->pair = zmq_socket(ctx, ZMQ_PAIR);
    if (!m->pair ||
        zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(m->pair, ep) != 0) {
        snprintf(err, errlen, "cannot connect socket monitor: %s",
                 zmq_strerror(zmq_errno()));
        sc_mon_destroy(&m);
        return NULL;
    }
    return m;
}

void sc_mon_destroy(sc_mon_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    sc_mon_t *m = *m_p;
    if (m->sock)
        zmq_socket_monitor(m->sock, NULL, 0);
    if (m->pair)
        zmq_close(m->pair);
    free(m->endpoint);
    free(m);
    *m_p = NULL;
}

void *sc_mon_socket(sc_mon_t *m) { return m->pair; }

static const char *protocol_error_text(const sc_mon_t *m, uint32_t code)
{
    switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return m->curve ? "security mechanism mismatch: the gateway does "
                          "not speak CURVE on this endpoint"
                        : "security mechanism mismatch: the gateway "
                          "requires CURVE (give its public key and our key "
                          "pair)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "CURVE cryptographic error: wrong gateway public key?";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "CURVE key exchange failed";
    default:
        return NULL;
    }
}

int sc_mon_drain(sc_mon_t *m, const char **text)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, m->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        /* Frame 1: uint16 event, uint32 value (host order); frame 2: the
         * endpoint. Read the second frame whatever the first holds. */
        uint16_t event = 0;
        uint32_t value = 0;
        bool more = zmq_msg_more(&ev);
        if (zmq_msg_size(&ev) == 6) {
            const uint8_t *d = zmq_msg_data(&ev);
            memcpy(&event, d, 2);
            memcpy(&value, d + 2, 4);
        }
        zmq_msg_close(&ev);
        while (more) {
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&addr, m->pair, 0) < 0)
                more = false;
            else
                more = zmq_msg_more(&addr);
            zmq_msg_close(&addr);
        }
        if (m->fatal_rc)
            continue;

        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            m->hs_failures = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            /* libzmq does not retry after a ZAP rejection. */
            m->fatal_rc = SC_CLIENT_AUTH;
            snprintf(m->fatal, sizeof m->fatal,
                     "broker rejected our key (code %" PRIu32 ")", value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: {
            const char *t = protocol_error_text(m, value);
            m->fatal_rc = SC_CLIENT_ERROR;
            if (t)
                snprintf(m->fatal, sizeof m->fatal,
                         "handshake with %.128s failed: %s", m->endpoint, t);
            else
                snprintf(m->fatal, sizeof m->fatal,
                         "handshake with %.128s failed: protocol error "
                         "0x%08" PRIx32, m->endpoint, value);
            break;
        }
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            if (++m->hs_failures >= MAX_HANDSHAKE_FAILURES) {
                m->fatal_rc = SC_CLIENT_ERROR;
                snprintf(m->fatal, sizeof m->fatal,
                         "handshake with %.128s failed %u times in a row "
                         "(%s)%s", m->endpoint, m->hs_failures,
                         zmq_strerror((int)value),
                         m->curve ? ": is the gateway public key right?"
                                  : ": does the gateway require CURVE? "
                                    "(give its public key and our key "
                                    "pair)");
            }
            break;
        default:
            break;
        }
    }
    if (text)
        *text = m->fatal;
    return m->fatal_rc;
}
