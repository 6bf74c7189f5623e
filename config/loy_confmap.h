/*
 * loy_confmap: a module's settings as one declarative table, the way
 * Fluent Bit's flb_config_map describes a plugin's.
 *
 * A row names a key, its type, its default (written as it would be in a
 * config file), its bounds and its doc, and where the value lives in the
 * module's struct. The row is the only place that default is written: the
 * module's *_default() function applies its table, loy_config parses,
 * checks and documents every key from the tables, and the shipped
 * config/loyaltyd.conf and docs/configuration.md are generated from them.
 *
 * Pure (no I/O), so that features/ and models/ can declare their tables.
 * A table ends with a row whose name is NULL ({0}).
 */
#ifndef LOY_CONFMAP_H
#define LOY_CONFMAP_H

#include <stddef.h>

typedef enum {
        LOY_CM_STR,   /* char[size], valid UTF-8 */
        LOY_CM_INT,   /* int, a whole number in [min, max] */
        LOY_CM_DBL,   /* double in [min, max] */
        LOY_CM_BOOL,  /* int 0/1 from yes/no, true/false, 1/0 */
        LOY_CM_ENUM,  /* int-sized enum, one of max choices */
        LOY_CM_MIB,   /* size_t bytes, written as whole MiB in [min, max] */
        LOY_CM_PARSE, /* parse() stores it; no default */
} loy_cm_type_t;

typedef struct loy_confmap {
        const char *name; /* within its section: "half_life.days" */
        loy_cm_type_t type;
        size_t offset; /* into the module's struct */
        size_t size;   /* of the field */
        const char *def;
        double min, max;
        const char *doc;
        /* LOY_CM_ENUM: max names, choices[i] for value i; a NULL entry is
         * a value with no name */
        const char *const *choices;
        /* LOY_CM_PARSE: 0, or -1 with the reason in why */
        int (*parse)(void *base, const char *value, char *why, size_t why_size);
} loy_confmap_t;

/* The offset and size columns of a row for field f of struct type T. */
#define LOY_CM_FIELD(T, f) offsetof(T, f), sizeof(((T *)0)->f)

/* A row for field f of struct type T; ENUM and PARSE rows spell out their
 * last two columns. A table ends with {0}. */
#define LOY_CM_KEY(T, name, type, f, def, min, max, doc)                       \
        {                                                                      \
                (name), (type), LOY_CM_FIELD(T, f), (def), (min), (max),       \
                    (doc), NULL, NULL                                          \
        }

/* The row named name, or NULL. */
const loy_confmap_t *loy_confmap_find(const loy_confmap_t *map,
                                      const char *name);

/* Stores value (text as in a config file) into base. 0, or -1 with the
 * reason ("'x' is not a number", "... is out of range [1, 64]") in why;
 * base is unchanged then. */
int loy_confmap_set(const loy_confmap_t *row, void *base, const char *value,
                    char *why, size_t why_size);

/* Applies every row's default to base. 0, or -1 with "<key>: <reason>"
 * when a default does not parse (a bug in the table; the config tests
 * apply every table). */
int loy_confmap_defaults(const loy_confmap_t *map, void *base, char *why,
                         size_t why_size);

/* Checks that every numeric field of base lies within its row's bounds,
 * for structs filled in code rather than parsed. 0, or -1 with
 * "<key> = <value> is out of range [min, max]" in why. */
int loy_confmap_check(const loy_confmap_t *map, const void *base, char *why,
                      size_t why_size);

/* The row's type as a word for docs: "string", "integer", "number",
 * "yes/no", "event|timer|any", "MiB", "condition". */
const char *loy_confmap_type_name(const loy_confmap_t *row, char *buf,
                                  size_t size);

#endif
