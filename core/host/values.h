/*
 * values.h - a plugin setting's value written as text, checked against its
 * declaration (used by the plugin test kit, where a test gives settings as
 * the operator would write them).
 *
 * Owns: parsing text into a typed value with the config file's rules
 * (integers decimal or 0x hex, "010" is 10; true/false; finite floats;
 * PATH resolved against a base directory) and the declared limits (min,
 * max, allowed values). Never: lists, groups (the settings engine).
 */
#ifndef SC_HOST_VALUES_H
#define SC_HOST_VALUES_H

#include <stddef.h>
#include <sectorcast/plugin.h>

#include "host/host.h"

/* Parse `text` as a value of def's type. STRING/PATH text goes to a new
 * *str (also set as v->s). 0, or -1 with why filled. */
int sc_host_value_parse(const sc_setting_def_t *def, const char *text,
                        const char *base_dir, sc_host_value_t *v, char **str,
                        char *why, size_t whylen);
/* Check a parsed value against def's min/max/allowed. 0 or -1 + why. */
int sc_host_value_check(const sc_setting_def_t *def, const sc_host_value_t *v,
                        const char *str, char *why, size_t whylen);

#endif
