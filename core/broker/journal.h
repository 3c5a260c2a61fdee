/*
 * journal.h - the message journal (SQLite, WAL mode).
 *
 * Owns durable sequencing: the journal's epoch, each channel's head, and
 * the signed bytes of every message. A message is appended (and the
 * transaction committed) before the broker sends it, so a sequence number
 * is never reused, not even after a crash.
 *
 * Threads: an sc_journal_t (the writer) is used from the core thread only.
 * Other threads read through their own sc_journal_reader_t (a read-only
 * connection on the same file; see the end of this header).
 */
#ifndef SC_JOURNAL_H
#define SC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sc_journal sc_journal_t;

typedef enum {
    SC_DURABILITY_FULL = 0,   /* fsync per committed group */
    SC_DURABILITY_NORMAL = 1  /* survives a broker crash, not power loss */
} sc_durability_t;

/* SQLite's process-wide settings for the journal: once, before any other
 * use of SQLite in the process (the broker's main() calls it first thing).
 * Turns off SQLite's memory statistics, whose global mutex every SQLite
 * allocation took, from the core thread, the checkpointer and the journal
 * readers alike (we never read them). Harmless if called late (SQLite
 * then keeps its defaults). */
void sc_journal_process_init(void);

/* Open or create DIR/journal.db (mode 0600, as its -wal and -shm). NULL on
 * failure; err names the file and what is wrong: no space (with the free
 * space), a read-only file system, permission, or a damaged database --
 * only the last is called damage. A layout-1 journal is converted once.
 * Starts the journal's checkpointer thread. */
sc_journal_t *sc_journal_open(const char *dir, sc_durability_t durability,
                              char *err, size_t errlen);
void sc_journal_close(sc_journal_t **j_p);

const char *sc_journal_epoch(const sc_journal_t *j);
const char *sc_journal_path(const sc_journal_t *j);
/* Database pages the writer read while opening the journal: bounded by the
 * number of channels, keys and signing keys, never by the number of
 * messages once the file is larger than the whole-file check bound. */
uint64_t sc_journal_pages_read(const sc_journal_t *j);

/* Head of a channel: its last committed seq (seqs handed out by
 * sc_journal_next_seq() for a group not yet committed are not counted);
 * 0 if none. */
uint64_t sc_journal_head(sc_journal_t *j, const char *channel);

/* Group writes: begin, append any number, commit. On commit failure the
 * whole group is rolled back and heads revert; nothing of it is sent.
 * begin and commit fail (for good) once the journal's path no longer names
 * the file that was opened (deleted or replaced under the broker). */
int sc_journal_begin(sc_journal_t *j, char *err, size_t errlen);
/* Assign the next seq of `channel` (cached head + 1) without writing and
 * outside any transaction: the pipeline numbers the next group while the
 * previous one commits. A rollback (failed commit or prune) gives back
 * every seq handed out and not committed: the caller numbers those
 * messages again. */
uint64_t sc_journal_next_seq(sc_journal_t *j, const char *channel);
/* Durable plugin state, written in the current group's transaction (so a
 * state write commits together with the messages published before it).
 * value NULL deletes. 0 or -1. */
int sc_journal_state_put(sc_journal_t *j, const char *plugin, const char *key,
                         const char *value, char *err, size_t errlen);

/* Give back the seq just taken by sc_journal_next_seq() for a message
 * that will never be journaled (it could not be signed). */
void sc_journal_release_seq(sc_journal_t *j, const char *channel,
                            uint64_t seq);
int sc_journal_append(sc_journal_t *j, const char *channel, uint64_t seq,
                      const char *kind, const char *key, const char *ts,
                      const char *kid, const char *jws, size_t jws_len,
                      char *err, size_t errlen);
int sc_journal_commit(sc_journal_t *j, char *err, size_t errlen);
void sc_journal_rollback(sc_journal_t *j);

/* Iterate messages of a channel with seq >= from, in order, at most
 * `limit`. cb returns non-zero to stop. Returns the number visited or -1. */
typedef int (*sc_journal_row_fn)(void *arg, const char *channel, uint64_t seq,
                                 const char *jws, size_t jws_len);
long sc_journal_scan(sc_journal_t *j, const char *channel, uint64_t from,
                     long limit, sc_journal_row_fn cb, void *arg);

/* Lowest seq from which a replay of `channel` is complete (1 if nothing
 * was pruned). Messages below it may have been removed by retention. */
uint64_t sc_journal_low(sc_journal_t *j, const char *channel);

/* Channels with their heads, for every channel whose topic lies under
 * `subtree` ("" = all). cb returns non-zero to stop. */
typedef int (*sc_journal_head_fn)(void *arg, const char *channel,
                                  uint64_t head);
void sc_journal_heads(sc_journal_t *j, const char *subtree,
                      sc_journal_head_fn cb, void *arg);

/* The latest message of every key on every channel under `subtree`, in
 * (channel, seq) order; cost proportional to those keys. Returns the
 * number visited or -1 (the SQLite error is logged). */
long sc_journal_snapshot(sc_journal_t *j, const char *subtree,
                         sc_journal_row_fn cb, void *arg);

/* Retention: remove messages of `channel` that are older than `max_age_s`
 * seconds (0 = no age limit) or beyond the newest `max_messages` (0 = no
 * count limit) -- except the latest message of each key, which snapshots
 * need. Raises the channel's low-water mark. Returns messages removed, or
 * -1 with err filled. */
long sc_journal_prune(sc_journal_t *j, const char *channel, int64_t max_age_s,
                      int64_t max_messages, char *err, size_t errlen);

/* For every signing key (kid) that signed retained messages: how many. */
typedef int (*sc_journal_kid_fn)(void *arg, const char *kid, uint64_t count);
void sc_journal_kids(sc_journal_t *j, sc_journal_kid_fn cb, void *arg);

/* ------------------------------------------------------------------ */
/* Readers: read-only connections for threads other than the core.     */
/*
 * A reader is a read-only SQLite connection on the journal file. It sees
 * committed messages only (never a group still being written) and never
 * blocks the writer. Rules:
 *   - one reader per thread: a reader is used by one thread at a time
 *     (create it on any thread, then keep it on the thread that reads);
 *   - every reader is destroyed before sc_journal_close() of its journal;
 *   - calls between sc_journal_reader_begin() and sc_journal_reader_end()
 *     see one consistent state of the journal (one read transaction);
 *     outside such a pair, each call is its own read transaction. Keep
 *     read transactions short (a replay reads in chunks of `limit`): the
 *     WAL cannot be checkpointed past the oldest open read transaction.
 *   - errors: -1 is returned, the SQLite error is logged (component
 *     "journal") and sc_journal_reader_error() gives the same text.
 * The callbacks' jws pointers are valid only during the callback.
 */
typedef struct sc_journal_reader sc_journal_reader_t;

/* A reader on `j`'s file. NULL with err filled on failure. Safe to call
 * from any thread (uses only the journal's path and epoch). */
sc_journal_reader_t *sc_journal_reader_new(const sc_journal_t *j, char *err,
                                           size_t errlen);
void sc_journal_reader_destroy(sc_journal_reader_t **r_p);

/* The journal's epoch (constant for the life of the journal file). */
const char *sc_journal_reader_epoch(const sc_journal_reader_t *r);

/* Open / close a read transaction (see above). 0 or -1. Nesting is not
 * counted: a second begin is a no-op, one end closes. */
int sc_journal_reader_begin(sc_journal_reader_t *r);
void sc_journal_reader_end(sc_journal_reader_t *r);

/* Messages of `channel` with seq >= from, in seq order, at most `limit`
 * (limit <= 0: no limit). cb returns non-zero to stop. Returns the number
 * of rows passed to cb, or -1. */
long sc_journal_reader_scan(sc_journal_reader_t *r, const char *channel,
                            uint64_t from, long limit, sc_journal_row_fn cb,
                            void *arg);

/* Head and low-water mark of `channel` (head 0 and low 1 if the channel is
 * unknown). Returns 1 if the channel exists, 0 if unknown, -1 on error. */
int sc_journal_reader_channel(sc_journal_reader_t *r, const char *channel,
                              uint64_t *head, uint64_t *low);

/* Every channel under `subtree` ("" = all; a subtree ends with '.') with
 * its head, in channel-name order. Returns channels visited or -1. */
long sc_journal_reader_heads(sc_journal_reader_t *r, const char *subtree,
                             sc_journal_head_fn cb, void *arg);

/* The latest message of every key on every channel under `subtree`, in
 * (channel name, seq) order. Cost proportional to the keys under the
 * subtree. Returns the number visited or -1. */
long sc_journal_reader_snapshot(sc_journal_reader_t *r, const char *subtree,
                                sc_journal_row_fn cb, void *arg);

/* Text of the last error on this reader ("" if none). */
const char *sc_journal_reader_error(const sc_journal_reader_t *r);

#endif
