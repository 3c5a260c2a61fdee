/*
 * state.h - the subscriber's state file: per channel, the journal epoch
 * and the last seq the application has been handed.
 *
 * Format (text, one record per line, later lines win):
 *
 *     sectorcast-state 1
 *     energy.nuclear.tasks 0be226a95f20f4834831e0aaab4d691f 42
 *
 * Commits append one line per changed channel with a single write(2), so a
 * killed process (kill -9) never loses a committed position and never
 * leaves half a record that counts (an unterminated last line is ignored).
 * The file is fsync'ed at most once a second and at close; it is compacted
 * (one line per channel, written to FILE.tmp, fsync, rename, fsync of the
 * directory) when the log grows. The open file is flock'ed: a second
 * process using the same state file is refused.
 */
#ifndef SC_CLIENT_STATE_H
#define SC_CLIENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest journal epoch we track (bytes). */
#define SC_EPOCH_MAX 64

typedef struct sc_state sc_state_t;

/* true if epoch[len] can be recorded: 1..SC_EPOCH_MAX printable ASCII
 * characters, no blanks. */
bool sc_state_epoch_valid(const char *epoch, size_t len);

/* Open (or create, mode 0600) and read FILE. NULL with err filled (names
 * the file, and the line of a malformed record). */
sc_state_t *sc_state_open(const char *path, char *err, size_t errlen);
/* Flush, fsync and close. */
void sc_state_close(sc_state_t **s_p);

typedef int (*sc_state_fn)(void *arg, const char *channel, const char *epoch,
                           uint64_t seq);
/* Every channel's latest record, in first-seen order. fn returns non-zero
 * to stop. */
void sc_state_foreach(const sc_state_t *s, sc_state_fn fn, void *arg);

/* Record a position (kept in memory until sc_state_flush). 0 or -1. */
int sc_state_put(sc_state_t *s, const char *channel, const char *epoch,
                 uint64_t seq, char *err, size_t errlen);
/* Write the records put since the last flush in one write(2). 0 or -1. */
int sc_state_flush(sc_state_t *s, char *err, size_t errlen);

#endif
