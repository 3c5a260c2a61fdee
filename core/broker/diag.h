/*
 * diag.h - a list of diagnostics ("FILE:LINE: message").
 *
 * Config loading and checking collect every problem instead of stopping at
 * the first, so that `sectorcastd --check` prints them all.
 */
#ifndef SC_DIAG_H
#define SC_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct sc_diag {
    char **lines;
    size_t count;
    size_t cap;
} sc_diag_t;

/* Append "FILE:LINE: message" (line <= 0: "FILE: message"). */
void sc_diag_add(sc_diag_t *d, const char *file, int line, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
void sc_diag_print(const sc_diag_t *d, FILE *out);
void sc_diag_clear(sc_diag_t *d);

#endif
