/*
 * control.h - the control endpoint that sectorcast-ctl talks to.
 *
 * Owns a thread serving a ZeroMQ ROUTER on
 * ipc://DATA_DIR/control/sectorcastd.sock (the directory 0700 and the
 * socket 0600, both owned by the broker's user: only that user, or root,
 * can connect). With control.admin_keys in the config the socket is also
 * a CURVE server (the broker's curve key) and admits only clients whose
 * public key is listed, through its own ZAP handler.
 *
 * Protocol: one request frame, a JSON object {"cmd": "status"} (plus
 * arguments), one reply frame {"ok": true, ...} or {"ok": false,
 * "error": "..."}. status, channels, agencies, plugins and check are
 * answered on the control thread from status.c's snapshot (never waiting
 * on the core); reload, plugin-restart, stop and log-reopen are forwarded
 * to the core thread over an inproc PAIR socket that the core polls
 * (sc_control_core_socket / sc_control_core_handle) and answered when the
 * core has done them (a reload when the reload thread has prepared it and
 * the core has swapped it in). At most SC_CONTROL_PENDING (64) forwarded requests
 * wait at once; more are refused with "busy".
 */
#ifndef SC_CONTROL_H
#define SC_CONTROL_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "status.h"

#define SC_CONTROL_PENDING 64
#define SC_CONTROL_SOCKET "control/sectorcastd.sock"

typedef struct sc_control sc_control_t;

/* A forwarded command, run on the core thread: return the reply (a new
 * reference; {"ok": ...} is added if missing). */
typedef json_t *(*sc_control_cmd_fn)(void *arg, const char *cmd,
                                     json_t *request);

/* Called on the core thread; `core_zctx` is the core's ZeroMQ context.
 * NULL + err when the socket cannot be set up. */
sc_control_t *sc_control_new(void *core_zctx, const sc_config_t *cfg,
                             sc_status_t *status, char *err, size_t errlen);
void sc_control_destroy(sc_control_t **c_p);

/* The core's end of the command pipe (poll it for ZMQ_POLLIN). */
void *sc_control_core_socket(sc_control_t *c);
/* Run every waiting forwarded command through fn and send the replies. */
void sc_control_core_handle(sc_control_t *c, sc_control_cmd_fn fn, void *arg);

/* A command the core answers later (a reload, prepared on the reload
 * thread while the core keeps publishing). Called from inside `fn`: the
 * current request is answered only by sc_control_core_answer (fn then
 * returns NULL). NULL if out of memory (fn then answers at once). */
typedef struct sc_control_later sc_control_later_t;
sc_control_later_t *sc_control_core_defer(sc_control_t *c);
/* On the core thread: send `reply` (borrowed; {"ok": ...} added if
 * missing) to a deferred request and free *l_p. */
void sc_control_core_answer(sc_control_t *c, sc_control_later_t **l_p,
                            json_t *reply);
/* Free *l_p without answering (the broker is going away; the client's
 * own timeout then tells it). */
void sc_control_later_free(sc_control_later_t **l_p);

/* The socket path for a data directory (for sectorcast-ctl). */
int sc_control_socket_path(const char *data_dir, char *out, size_t len);

#endif
