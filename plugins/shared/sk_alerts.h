/*
 * sk_alerts.h - supply-chain early warnings: alert rules over indicator
 * series, their state, and the CAP 1.2 messages they publish.
 *
 * Owns: reading the structured `alert_rules` setting (a list of groups,
 * whose shape, types, operators and CAP values the host checks against
 * the table in sk_sector.c) and the checks only the plugin can make
 * (series ids, levels ever further and more severe, the clear band, one
 * rule per series), reported with setting_problem() at the field's line;
 * the state machine of each rule (levels, hysteresis, consecutive
 * observations), the alert state kept durable in the plugin state
 * ("alert/<series>"), and the CAP 1.2 fields of the alert.raised /
 * alert.updated / alert.cleared messages. Never reads files, never calls
 * publish(): messages go to an sk_emit_fn, as in sk_known.
 *
 * A rule (docs/sectors.md has the full reference):
 *
 *   alert_rules = (
 *     { indicator = "lng_inventory_days"; op = "<"; threshold = 10.0;
 *       severity = "Severe";
 *       escalate = ( { threshold = 7.0; severity = "Extreme"; } );
 *       clear = 12.0; category = "Infra"; },
 *     { indicator = "chip_lead_time_weeks"; op = ">"; threshold = 20.0;
 *       severity = "Moderate"; consecutive = 2; }
 *   );
 *
 * Each rule also has a canonical one-line text used in messages and logs:
 *   "lng_inventory_days < 10 Severe < 7 Extreme clear 12 category Infra"
 */
#ifndef SK_ALERTS_H
#define SK_ALERTS_H

#include <stddef.h>
#include "sk.h"
#include "sk_known.h"
#include "sk_register.h"
#include "sk_store.h"

typedef struct sk_rules sk_rules_t;

/* CAP 1.2 value sets, NULL-terminated, and the rule operators. */
extern const char *const sk_cap_severity[];
extern const char *const sk_cap_urgency[];
extern const char *const sk_cap_certainty[];
extern const char *const sk_cap_category[];
extern const char *const sk_rule_ops[];

/* Read the `alert_rules` setting through the host's getters (in check()
 * or init()). Every problem is reported with api->setting_problem (logged
 * on a host without it) and counted in *problems; then NULL. NULL with
 * *problems == 0: out of memory. Not set: no rules. */
sk_rules_t *sk_rules_read(sc_host_t *host, const sc_host_api_t *api,
                          int *problems);
void sk_rules_destroy(sk_rules_t **self_p);

/* Number of rules; the series and the canonical text of rule i. */
size_t sk_rules_count(const sk_rules_t *r);
const char *sk_rules_series(const sk_rules_t *r, size_t i);
const char *sk_rules_text(const sk_rules_t *r, size_t i);

/* Non-zero if `sender` can be a CAP sender: 1..255 bytes, no whitespace,
 * comma, '<' or '&'. */
int sk_cap_sender_valid(const char *sender);

typedef struct sk_alerts sk_alerts_t;

/* Alerts of `rules` (stolen, also on failure) for `sector`, mirrored to
 * `store`. `instance` names this plugin instance in CAP identifiers;
 * `sender` is the CAP sender. NULL if out of memory. */
sk_alerts_t *sk_alerts_new(const sk_sector_t *sector, sk_rules_t *rules,
                           sk_store_t *store, const char *instance,
                           const char *sender);
void sk_alerts_destroy(sk_alerts_t **self_p);

/* Load the alert states from the store. Returns the number loaded or -1
 * (logged; every rule then starts normal). */
long sk_alerts_load(sk_alerts_t *a, const sk_log_t *lg);

/* Is `channel` granted? Asked before a rule publishes anything. */
typedef int (*sk_granted_fn)(void *ctx, const char *channel);

/* Feed each rule the observations of its series in `view` that are newer
 * than the last one it saw, in date order, and emit the messages of its
 * transitions. A message that is not SK_SENT stops its rule at that
 * observation (state unchanged from there on; the rule continues at the
 * next apply), and sets *retry. Returns the number of messages sent. */
long sk_alerts_apply(sk_alerts_t *a, const sk_entry_t *const *view,
                     size_t n, sk_emit_fn emit, sk_granted_fn granted,
                     void *ctx, const sk_log_t *lg, int *retry);

#endif
