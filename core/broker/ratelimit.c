/*
 * ratelimit.c - see ratelimit.h.
 *
 * The table is a small fixed array searched linearly: max_sources is a
 * few hundred at most, and a flood is exactly when a lookup must not
 * allocate. Slot 0 is the overflow bucket shared by sources that find no
 * slot.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#define OVERFLOW_NAME "(other sources)"

static int64_t (*clock_fn)(void) = sc_mono_ms;

void sc_ratelimit_set_clock(int64_t (*now_ms)(void))
{
    clock_fn = now_ms ? now_ms : sc_mono_ms;
}

typedef struct rl_entry {
    char source[SC_RATELIMIT_SOURCE_MAX + 1];
    bool used;
    double tokens;
    int64_t refill_ms;     /* tokens were computed at this time */
    uint64_t suppressed;   /* since the last summary */
    int64_t since_ms;      /* first suppressed line since the last summary */
} rl_entry_t;

struct sc_ratelimit {
    pthread_mutex_t mu;
    char who[32];
    double per_sec;
    double burst;
    size_t n;              /* slots, including the overflow slot 0 */
    rl_entry_t *e;
    uint64_t written, suppressed;
    int64_t next_flush_ms; /* earliest time a summary may be due */
};

sc_ratelimit_t *sc_ratelimit_new(const char *who, double per_sec,
                                 unsigned burst, size_t max_sources)
{
    if (per_sec <= 0 || burst < 1 || max_sources < 1)
        return NULL;
    sc_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    if (!(rl->e = calloc(max_sources + 1, sizeof *rl->e))) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    snprintf(rl->who, sizeof rl->who, "%s", who ? who : "core");
    rl->per_sec = per_sec;
    rl->burst = burst;
    rl->n = max_sources + 1;
    snprintf(rl->e[0].source, sizeof rl->e[0].source, "%s", OVERFLOW_NAME);
    rl->e[0].used = true;
    rl->e[0].tokens = burst;
    rl->e[0].refill_ms = clock_fn();
    rl->next_flush_ms = INT64_MAX;
    return rl;
}

static void refill(sc_ratelimit_t *rl, rl_entry_t *e, int64_t now)
{
    if (now > e->refill_ms) {
        e->tokens += (double)(now - e->refill_ms) * rl->per_sec / 1000.0;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
        e->refill_ms = now;
    }
}

static void summary(sc_ratelimit_t *rl, rl_entry_t *e, int64_t now)
{
    long secs = (long)((now - e->since_ms + 999) / 1000);
    sc_log(SC_L_WARN, rl->who,
           "%llu similar line(s) from %s suppressed in %ld s",
           (unsigned long long)e->suppressed, e->source, secs < 1 ? 1 : secs);
    e->suppressed = 0;
    e->since_ms = 0;
}

static int flush_locked(sc_ratelimit_t *rl, int64_t now, bool all)
{
    if (!all && now < rl->next_flush_ms)
        return 0;
    int written = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < rl->n; i++) {
        rl_entry_t *e = &rl->e[i];
        if (!e->used || e->suppressed == 0)
            continue;
        if (all || now - e->since_ms >= SC_RATELIMIT_SUMMARY_MS) {
            summary(rl, e, now);
            written++;
        } else if (e->since_ms + SC_RATELIMIT_SUMMARY_MS < next) {
            next = e->since_ms + SC_RATELIMIT_SUMMARY_MS;
        }
    }
    rl->next_flush_ms = next;
    return written;
}

/* The source's slot: found, a free or idle one taken, or the overflow. */
static rl_entry_t *slot_for(sc_ratelimit_t *rl, const char *source,
                            int64_t now)
{
    char name[SC_RATELIMIT_SOURCE_MAX + 1];
    snprintf(name, sizeof name, "%s", source ? source : "?");
    rl_entry_t *free_slot = NULL;
    for (size_t i = 1; i < rl->n; i++) {
        rl_entry_t *e = &rl->e[i];
        if (e->used && strcmp(e->source, name) == 0)
            return e;
        if (!free_slot && !e->used)
            free_slot = e;
    }
    if (!free_slot) {
        /* reuse an entry that would be back to a full bucket and has
         * nothing left to report: forgetting it changes nothing */
        for (size_t i = 1; i < rl->n && !free_slot; i++) {
            rl_entry_t *e = &rl->e[i];
            refill(rl, e, now);
            if (e->suppressed == 0 && e->tokens >= rl->burst)
                free_slot = e;
        }
    }
    if (!free_slot)
        return &rl->e[0];
    memset(free_slot, 0, sizeof *free_slot);
    snprintf(free_slot->source, sizeof free_slot->source, "%s", name);
    free_slot->used = true;
    free_slot->tokens = rl->burst;
    free_slot->refill_ms = now;
    return free_slot;
}

bool sc_ratelimit_log(sc_ratelimit_t *rl, const char *source,
                      sc_level_t level, const char *fmt, ...)
{
    if (!rl)
        return false;
    pthread_mutex_lock(&rl->mu);
    int64_t now = clock_fn();
    flush_locked(rl, now, false);
    rl_entry_t *e = slot_for(rl, source, now);
    refill(rl, e, now);
    bool ok = e->tokens >= 1.0;
    if (ok) {
        e->tokens -= 1.0;
        rl->written++;
    } else {
        if (e->suppressed++ == 0) {
            e->since_ms = now;
            if (now + SC_RATELIMIT_SUMMARY_MS < rl->next_flush_ms)
                rl->next_flush_ms = now + SC_RATELIMIT_SUMMARY_MS;
        }
        rl->suppressed++;
    }
    pthread_mutex_unlock(&rl->mu);
    if (ok) {
        va_list ap;
        va_start(ap, fmt);
        sc_logv(level, rl->who, fmt, ap);
        va_end(ap);
    }
    return ok;
}

int sc_ratelimit_flush(sc_ratelimit_t *rl)
{
    if (!rl)
        return 0;
    pthread_mutex_lock(&rl->mu);
    int n = flush_locked(rl, clock_fn(), false);
    pthread_mutex_unlock(&rl->mu);
    return n;
}

uint64_t sc_ratelimit_written(const sc_ratelimit_t *rl)
{
    return rl ? rl->written : 0;
}

uint64_t sc_ratelimit_suppressed(const sc_ratelimit_t *rl)
{
    return rl ? rl->suppressed : 0;
}

void sc_ratelimit_destroy(sc_ratelimit_t **rl_p)
{
    if (!rl_p || !*rl_p)
        return;
    sc_ratelimit_t *rl = *rl_p;
    pthread_mutex_lock(&rl->mu);
    flush_locked(rl, clock_fn(), true);
    pthread_mutex_unlock(&rl->mu);
    pthread_mutex_destroy(&rl->mu);
    free(rl->e);
    free(rl);
    *rl_p = NULL;
}
