/*
 * diag.c - a growable list of "FILE:LINE: message" diagnostics.
 *
 * Owns the text of each line and the list itself. Never prints on its own
 * (sc_diag_print is called by whoever decides to show the list) and never
 * aborts: if memory runs out, the diagnostic is dropped.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sc_diag_add(sc_diag_t *d, const char *file, int line, const char *fmt,
                 ...)
{
    if (d == NULL || fmt == NULL)
        return;
    if (file == NULL)
        file = "(config)";

    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int mlen = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (mlen < 0) {
        va_end(ap2);
        return;
    }

    char lineno[24] = "";
    if (line > 0)
        snprintf(lineno, sizeof lineno, ":%d", line);
    size_t head = strlen(file) + strlen(lineno) + 2;
    char *text = malloc(head + (size_t)mlen + 1);
    if (text == NULL) {
        va_end(ap2);
        return;
    }
    snprintf(text, head + 1, "%s%s: ", file, lineno);
    vsnprintf(text + head, (size_t)mlen + 1, fmt, ap2);
    va_end(ap2);

    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **lines = realloc(d->lines, cap * sizeof *lines);
        if (lines == NULL) {
            free(text);
            return;
        }
        d->lines = lines;
        d->cap = cap;
    }
    d->lines[d->count++] = text;
}

void sc_diag_print(const sc_diag_t *d, FILE *out)
{
    if (d == NULL || out == NULL)
        return;
    for (size_t i = 0; i < d->count; i++)
        fprintf(out, "%s\n", d->lines[i]);
}

void sc_diag_clear(sc_diag_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->count; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->count = 0;
    d->cap = 0;
}
