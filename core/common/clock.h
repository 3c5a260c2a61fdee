/*
 * clock.h - monotonic time for timeouts and intervals (never wall time).
 */
#ifndef SC_CLOCK_H
#define SC_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t sc_mono_ms(void);

#endif
