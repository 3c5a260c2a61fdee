/*
 * pipeline.h - the publish pipeline of the core thread.
 *
 * Owns every message from the moment a plugin hands it to the core until
 * it is on the wire: reading publishes from the plugin sockets (the
 * in-process PULL and the child processes' ROUTER) into a group,
 * validating what a child claims, sequencing, building and signing the
 * envelope, appending the group to the journal in one transaction, and
 * only after the commit sending it on the publish socket and acking the
 * children. If the journal cannot be written the group is kept, reading
 * pauses (the plugins block at their high-water mark) and the commit is
 * retried: a message a plugin was told was accepted is never dropped.
 *
 * Never touches subscriptions, the service socket, config files or
 * signals; used from the core thread only. The signing threads
 * (common/workpool.h, gateway.sign_threads) build and sign envelopes,
 * each in its own message slot; they never see the sockets or the
 * journal, and the core thread alone assigns seqs, commits and sends,
 * in read order.
 */
#ifndef SC_PIPELINE_H
#define SC_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "keyring.h"
#include "supervisor.h"

typedef struct sc_pipeline sc_pipeline_t;

/* Called once per group after it committed and was sent, with the number
 * of messages in it (the sink feeder's hook: it reads the journal). */
typedef void (*sc_pipeline_commit_fn)(void *arg, size_t n_messages);

typedef struct sc_pipeline_env {
    void *xpub;              /* publish socket (sent to after commit) */
    void *pull;              /* in-process plugins' PULL */
    void *pull_ipc;          /* child processes' ROUTER, or NULL */
    sc_journal_t *journal;   /* borrowed; the core's write connection */
    const sc_keyring_t *keyring; /* borrowed; swapped by set_keyring */
    const char *gateway_id;  /* copied */
    int sign_threads;        /* gateway.sign_threads; 0 = one per core */
} sc_pipeline_env_t;

/* NULL on failure with err filled. */
sc_pipeline_t *sc_pipeline_new(const sc_pipeline_env_t *env, char *err,
                               size_t errlen);
/* Frees what is still pending (call sc_pipeline_finish first). */
void sc_pipeline_destroy(sc_pipeline_t **p_p);

/* The supervisor re-checks what child processes may publish (NULL: all
 * child publishes are refused). Borrowed. */
void sc_pipeline_set_supervisor(sc_pipeline_t *p, const sc_supervisor_t *sv);
/* Swap the signing keys and gateway id (reload); the old keyring may be
 * freed after (no signing runs between two calls of the core thread). */
void sc_pipeline_set_keyring(sc_pipeline_t *p, const sc_keyring_t *kr,
                             const char *gateway_id);

/* Threads that build and sign (the core thread counts as one). */
int sc_pipeline_sign_threads(const sc_pipeline_t *p);

/* Take one group of what the plugins have ready (at most GROUP_MAX
 * messages or about 1 ms of reading, one message from each source in
 * turn), sequence it, sign it on the signing threads, journal it and send
 * it: a bounded slice of work. Returns true if more was ready (call again
 * after serving the rest of the loop). Does nothing while paused. */
bool sc_pipeline_drain(sc_pipeline_t *p);

/* Journal failure: the monotonic ms at which the kept group is retried,
 * or 0 when not paused. sc_pipeline_retry() retries it (when due). */
int64_t sc_pipeline_retry_at(const sc_pipeline_t *p);
void sc_pipeline_retry(sc_pipeline_t *p);

/* At stop: try a few times to journal and send what is still held; logs
 * what could not be. */
void sc_pipeline_finish(sc_pipeline_t *p);

/* Write the due "N similar line(s) suppressed" summaries of refused
 * plugin frames (the core loop calls it about once a second). */
void sc_pipeline_flush_log(sc_pipeline_t *p);

/* Messages sent since start. */
uint64_t sc_pipeline_sent(const sc_pipeline_t *p);

/* The next sc_pipeline_drain() reads only the sources given as having
 * something (the core loop knows it from its poll: asking libzmq again
 * costs two system calls per socket); later calls read both again. */
void sc_pipeline_sources(sc_pipeline_t *p, bool threads, bool children);

/* Commit and send the group in flight, if any (it is signed on the
 * signing threads while the core reads the next one). Call before other
 * journal writes on the core thread (pruning), so that no seq is handed
 * out and uncommitted meanwhile. */
void sc_pipeline_settle(sc_pipeline_t *p);

/* Register the commit hook (one; NULL removes it). */
void sc_pipeline_on_commit(sc_pipeline_t *p, sc_pipeline_commit_fn fn,
                           void *arg);

#endif
