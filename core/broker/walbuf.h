/*
 * walbuf.h - a SQLite VFS that writes a transaction's WAL frames in one
 * system call.
 *
 * Owns: the VFS named SC_WALBUF_VFS (registered once, never the default)
 * and, per WAL file opened through it, a buffer of frames not yet written.
 * SQLite appends each frame to the WAL as two writes (its 24-byte header,
 * then the page), so a commit of n pages costs 2n pwrite()s; through this
 * VFS it costs one, made when the commit frame's page arrives (the frame
 * header's "database size after commit" field is non-zero only on a
 * commit frame: the documented WAL format). That write's result is the
 * commit's result, so a full disk fails the commit exactly as before.
 *
 * Never: changes a byte or an offset of what SQLite writes; holds a
 * committed frame after the write SQLite is told succeeded; buffers
 * anything but whole frames appended in order (any other write, and every
 * read, sync, truncate, size query or close of the file, first writes what
 * is buffered, then does what was asked); touches the database file, its
 * shared memory or its locks (every file but a WAL is SQLite's own unix
 * file, unchanged). A buffer holds at most SC_WALBUF_MAX bytes (127 KiB,
 * allocated at the first frame): a longer transaction is written in
 * pieces of up to that size. (SQLite's unix VFS writes at most 128 KiB - 1
 * bytes per call: it masks a write's length to 17 bits.)
 *
 * Only the journal's writer connection opens through it (journal.c).
 */
#ifndef SC_WALBUF_H
#define SC_WALBUF_H

#include <stdint.h>

#define SC_WALBUF_VFS "sc-walbuf"
/* the WAL format's sizes (SQLite's file format: "WAL file format") */
#define SC_WAL_HEADER 32       /* the file's header */
#define SC_WAL_FRAME_HEADER 24 /* each frame's header, before its page */
#define SC_WALBUF_MAX (127u * 1024)

/* Registers the VFS (once per process; thread-safe). 0, or an SQLite
 * error code. */
int sc_walbuf_register(void);

/* Counters of this process's WAL files opened through the VFS, for tests
 * and the benchmark: writes SQLite asked for, writes made, bytes that were
 * buffered and are not written yet (0 after every commit). */
typedef struct {
    uint64_t asked;
    uint64_t made;
    uint64_t pending;
} sc_walbuf_stats_t;
void sc_walbuf_stats(sc_walbuf_stats_t *out);

#endif
