/*
 * metrics.h - the broker's numbers: counters, gauges and histograms with
 * labels, rendered in the Prometheus text exposition format (0.0.4).
 *
 * Owns one process-wide registry. Any thread may register or update a
 * metric (each metric has its own mutex; an update finds its label set by
 * an index, not a scan, and never allocates after the label set was first
 * seen; rendering holds a metric's mutex only to copy its series, so an
 * update never waits for the text to be formatted). Never decides what is
 * measured, never does I/O: http.c serves sc_metrics_render()'s text.
 *
 *   static sc_metric_t *pub;
 *   pub = sc_metric_counter("sectorcast_messages_published_total",
 *                           "Messages signed, journaled and sent.",
 *                           "channel,plugin");
 *   sc_metric_add(pub, 1, "energy.lng", "energy");
 *
 * Registering the same name again returns the same metric (so callers can
 * register lazily from several places); a different kind or label list
 * under an existing name returns NULL.
 *
 * Bounds: at most SC_METRICS_MAX (128) metrics, SC_METRIC_MAX_LABELS (3)
 * label names per metric, SC_METRIC_MAX_SERIES (1024) label sets per
 * metric, label values cut to 127 bytes, SC_METRIC_MAX_BUCKETS (24)
 * histogram buckets. Past SC_METRIC_MAX_SERIES, updates for new label sets
 * go to one overflow series whose every label is "_other" and
 * sectorcast_metrics_series_dropped_total counts them, so a flood of
 * channel or agency names can never grow memory without bound.
 *
 * Updating a NULL metric is a no-op (a failed registration never crashes
 * the pipeline).
 */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stddef.h>

#define SC_METRICS_MAX 128
#define SC_METRIC_MAX_LABELS 3
#define SC_METRIC_MAX_SERIES 1024
#define SC_METRIC_MAX_BUCKETS 24
#define SC_METRIC_LABEL_MAX 128

typedef struct sc_metric sc_metric_t;

typedef enum {
    SC_METRIC_COUNTER = 0,
    SC_METRIC_GAUGE,
    SC_METRIC_HISTOGRAM,
} sc_metric_kind_t;

/* `labels`: comma-separated label names ("channel,plugin"), or NULL/"" for
 * none. Names must match [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':').
 * NULL when the name, labels or bounds are invalid or the registry is full. */
sc_metric_t *sc_metric_counter(const char *name, const char *help,
                               const char *labels);
sc_metric_t *sc_metric_gauge(const char *name, const char *help,
                             const char *labels);
/* `bounds`: strictly increasing upper bounds (the +Inf bucket is implied),
 * 1..SC_METRIC_MAX_BUCKETS of them. */
sc_metric_t *sc_metric_histogram(const char *name, const char *help,
                                 const char *labels, const double *bounds,
                                 size_t n_bounds);

/* The variadic arguments are the label values (const char *), exactly as
 * many as the metric has label names; a NULL value is rendered as "". */
void sc_metric_add(sc_metric_t *m, double v, ...);     /* counter, gauge */
void sc_metric_set(sc_metric_t *m, double v, ...);     /* gauge */
void sc_metric_observe(sc_metric_t *m, double v, ...); /* histogram */
/* Current value of one series (counter/gauge), or the observation count
 * of a histogram series; 0 if that label set was never seen. */
double sc_metric_value(sc_metric_t *m, ...);

/* Drop every series of a gauge (for gauges rebuilt at each collection,
 * e.g. per-plugin state after a plugin was removed). */
void sc_metric_clear(sc_metric_t *m);

/* Called at the start of each sc_metrics_render(), from the rendering
 * thread, so gauges computed from snapshots (journal size, sink lag) are
 * fresh. At most 16 hooks; returns -1 when full. */
typedef void (*sc_metrics_collect_fn)(void *ud);
int sc_metrics_on_collect(sc_metrics_collect_fn fn, void *ud);
void sc_metrics_off_collect(sc_metrics_collect_fn fn, void *ud);

/* The whole registry in the text exposition format; malloc'd, caller
 * frees. NULL only when out of memory. */
char *sc_metrics_render(void);

/* Forget every metric (tests only: pointers handed out become invalid). */
void sc_metrics_reset(void);

#endif
