/*
 * sk.h - the sector kit: code common to the sector plugins (energy,
 * semis_ai, defense_shipbuilding). This header says what a sector is; the
 * kit does the rest.
 *
 * A sector plugin is its schema and its channel mapping: one static
 * sk_sector_t handed to sk_sector_init() (sk_sector.h). The kit owns the
 * register directory (sk_register.c), the schema checks common to every
 * sector plus the sector's own members (sk_schema.c), what was already
 * published and the diff into events (sk_known.c), the durable plugin
 * state (sk_store.c), the supply-chain alert rules and their CAP messages
 * (sk_alerts.c) and the plugin's loop (sk_sector.c).
 *
 * plugins/shared/ is not a plugin: the SConstruct builds it into a static
 * archive that each plugin links, and nothing here is exported from a
 * plugin's .so (the build uses -fvisibility=hidden).
 */
#ifndef SK_H
#define SK_H

#include <stddef.h>
#include <sectorcast/plugin.h>

/* Where the kit logs to: the host's log under the instance's name. */
typedef struct sk_log {
    sc_host_t *host;
    const sc_host_api_t *api;
} sk_log_t;

#define SK_LOG(lg, level, ...) \
    ((lg)->api->log((lg)->host, (level), __VA_ARGS__))

/* The kinds of register entries. Tasks and standards are published as
 * they change; indicator series feed the alert rules. */
typedef enum sk_kind {
    SK_TASK = 0,
    SK_STANDARD = 1,
    SK_INDICATOR = 2
} sk_kind_t;

#define SK_KINDS 3
/* The kinds that are published entry by entry (tasks, standards). */
#define SK_ENTRY_KINDS 2

/* Longest entry id and series id, in bytes. */
#define SK_ID_MAX 64
/* Room for a channel name and its NUL. */
#define SK_CHANNEL_BUF 128

/* Type of a sector-specific member of an entry. */
typedef enum sk_ftype {
    SK_F_STRING = 1,  /* non-empty string */
    SK_F_ENUM = 2,    /* one of `values` */
    SK_F_STRINGS = 3, /* array of non-empty strings */
    SK_F_ENUMS = 4,   /* array of `values`, each at most once */
    SK_F_DATE = 5,    /* "YYYY-MM-DD" that exists in the calendar */
    SK_F_NUMBER = 6   /* JSON number */
} sk_ftype_t;

/* Which kinds of entries a member belongs to (a bit set). */
#define SK_FOR_TASK (1u << SK_TASK)
#define SK_FOR_STANDARD (1u << SK_STANDARD)
#define SK_FOR_INDICATOR (1u << SK_INDICATOR)

/* A member a sector adds to the common schema. */
typedef struct sk_field {
    const char *name;
    unsigned kinds;            /* SK_FOR_* */
    sk_ftype_t type;
    int required;
    const char *const *values; /* SK_F_ENUM(S): NULL-terminated list */
} sk_field_t;

#define SK_FIELDS_END { NULL, 0u, (sk_ftype_t)0, 0, NULL }

/* A sector: what differs between the sector plugins. */
typedef struct sk_sector {
    const char *name;              /* "semis_ai": the sector, for logs */
    const char *const *subsectors; /* NULL-terminated: "semis", "ai" */
    /* Channel of each kind of entry, with '*' standing for the entry's
     * subsector: "*.tasks", "energy.*.standards". The SK_INDICATOR slot
     * is the channel of alerts raised from that subsector's series. */
    const char *channels[SK_KINDS];
    const char *const *tracks;     /* allowed task "track" values;
                                      NULL = any non-empty string */
    const sk_field_t *fields;      /* sector members, ended by
                                      SK_FIELDS_END; may be NULL */
} sk_sector_t;

#endif
