/*
 * threads.h - how the broker's threads show and yield: names for ps,
 * top -H and perf, and a lower CPU priority for bulk work.
 *
 * Owns only those two rules. Never fails: a name or priority that cannot
 * be set is left as it was (an unprivileged broker can always lower its
 * own threads' priority).
 */
#ifndef SC_THREADS_H
#define SC_THREADS_H

/* Names the calling thread "sc-<role>" or "sc-<role>:<detail>" (detail
 * may be NULL), truncated to the kernel's 15 bytes. */
void sc_thread_name(const char *role, const char *detail);

/* The calling thread does bulk work (replay and snapshots, sink feeding)
 * that must not delay live delivery: on a busy machine the scheduler
 * gives the core, signing and plugin threads the CPU first (nice
 * SC_THREAD_BACKGROUND_NICE for this thread only). */
#define SC_THREAD_BACKGROUND_NICE 10
void sc_thread_background(void);

/* The same for every thread of this process named `comm` (e.g. a libzmq
 * I/O thread). Returns how many were found. */
int sc_thread_background_named(const char *comm);

/* The broker's ZeroMQ context has two I/O threads (ZMQ_AFFINITY bits):
 * live traffic on the first, the service socket's on the second, which
 * runs in the background. */
#define SC_IO_LIVE 1u
#define SC_IO_BULK 2u
#define SC_IO_BULK_THREAD "ZMQbg/IO/1"

#endif
