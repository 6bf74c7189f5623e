/* loy_confmap: see loy_confmap.h. */
#include "loy_confmap.h"

#include "../features/loy_event.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const loy_confmap_t *loy_confmap_find(const loy_confmap_t *map,
                                      const char *name) {
        for (; map->name; map++)
                if (!strcmp(map->name, name))
                        return map;
        return NULL;
}

static int why_fail(char *why, size_t why_size, const char *fmt,
                    const char *value) {
        snprintf(why, why_size, fmt, value);
        return -1;
}

/* value as a number within the row's bounds; whole for INT and MIB. */
static int parse_number(const loy_confmap_t *row, const char *value,
                        double *out, char *why, size_t why_size) {
        char *end;
        double d;
        errno = 0;
        d = strtod(value, &end);
        /* trailing blanks are fine, but value is the caller's (maybe
         * read-only) string: skip them, never cut them */
        while (isspace((unsigned char)*end))
                end++;
        if (end == value || *end || errno || !isfinite(d))
                return why_fail(why, why_size, "'%s' is not a number", value);
        if (row->type != LOY_CM_DBL && d != floor(d))
                return why_fail(why, why_size, "'%s' is not a whole number",
                                value);
        if (d < row->min || d > row->max) {
                snprintf(why, why_size, "%s is out of range [%.15g, %.15g]",
                         value, row->min, row->max);
                return -1;
        }
        *out = d;
        return 0;
}

int loy_confmap_set(const loy_confmap_t *row, void *base, const char *value,
                    char *why, size_t why_size) {
        char *p = (char *)base + row->offset;
        double d;

        switch (row->type) {
        case LOY_CM_STR:
                if (strlen(value) >= row->size) {
                        snprintf(why, why_size, "longer than %zu characters",
                                 row->size - 1);
                        return -1;
                }
                /* strings reach the Avro triggers (rule reward kind and
                 * currency) and Kafka or Redis names: UTF-8, or readers
                 * rewrite them */
                if (!loy_utf8_valid(value, strlen(value)))
                        return why_fail(why, why_size, "not valid UTF-8%s", "");
                memcpy(p, value, strlen(value) + 1);
                return 0;
        case LOY_CM_BOOL:
                if (!strcmp(value, "yes") || !strcmp(value, "true") ||
                    !strcmp(value, "1"))
                        *(int *)p = 1;
                else if (!strcmp(value, "no") || !strcmp(value, "false") ||
                         !strcmp(value, "0"))
                        *(int *)p = 0;
                else
                        return why_fail(why, why_size, "'%s' is not yes/no",
                                        value);
                return 0;
        case LOY_CM_ENUM: {
                char names[128];
                for (int i = 0; i < (int)row->max; i++)
                        if (row->choices[i] &&
                            !strcmp(row->choices[i], value)) {
                                *(int *)p = i;
                                return 0;
                        }
                loy_confmap_type_name(row, names, sizeof(names));
                snprintf(why, why_size, "'%s' is not one of %s", value, names);
                return -1;
        }
        case LOY_CM_INT:
                if (parse_number(row, value, &d, why, why_size))
                        return -1;
                *(int *)p = (int)d;
                return 0;
        case LOY_CM_DBL:
                if (parse_number(row, value, &d, why, why_size))
                        return -1;
                *(double *)p = d;
                return 0;
        case LOY_CM_MIB:
                if (parse_number(row, value, &d, why, why_size))
                        return -1;
                *(size_t *)p = (size_t)d << 20;
                return 0;
        case LOY_CM_PARSE:
                return row->parse(base, value, why, why_size);
        }
        return why_fail(why, why_size, "unknown type of '%s'", row->name);
}

int loy_confmap_defaults(const loy_confmap_t *map, void *base, char *why,
                         size_t why_size) {
        for (; map->name; map++) {
                char reason[200];
                if (map->type == LOY_CM_PARSE)
                        continue;
                if (loy_confmap_set(map, base, map->def, reason,
                                    sizeof(reason))) {
                        snprintf(why, why_size, "%s: %s", map->name, reason);
                        return -1;
                }
        }
        return 0;
}

int loy_confmap_check(const loy_confmap_t *map, const void *base, char *why,
                      size_t why_size) {
        for (; map->name; map++) {
                const char *p = (const char *)base + map->offset;
                double d;
                if (map->type == LOY_CM_INT)
                        d = *(const int *)p;
                else if (map->type == LOY_CM_DBL)
                        d = *(const double *)p;
                else if (map->type == LOY_CM_MIB)
                        d = (double)(*(const size_t *)p) / (1u << 20);
                else
                        continue;
                /* the negation also catches NaN */
                if (!(d >= map->min && d <= map->max)) {
                        snprintf(why, why_size,
                                 "%s = %.15g is out of range [%.15g, %.15g]",
                                 map->name, d, map->min, map->max);
                        return -1;
                }
        }
        return 0;
}

const char *loy_confmap_type_name(const loy_confmap_t *row, char *buf,
                                  size_t size) {
        size_t used = 0;
        switch (row->type) {
        case LOY_CM_STR:
                return "string";
        case LOY_CM_INT:
                return "integer";
        case LOY_CM_DBL:
                return "number";
        case LOY_CM_BOOL:
                return "yes/no";
        case LOY_CM_MIB:
                return "MiB";
        case LOY_CM_PARSE:
                return "text";
        case LOY_CM_ENUM:
                break;
        }
        if (size)
                buf[0] = '\0';
        for (int i = 0; i < (int)row->max; i++) {
                int n;
                if (!row->choices[i])
                        continue;
                n = snprintf(buf + used, size - used, "%s%s", used ? "|" : "",
                             row->choices[i]);
                if (n < 0 || (size_t)n >= size - used)
                        break;
                used += (size_t)n;
        }
        return buf;
}
