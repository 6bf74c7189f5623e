/* loy_confdoc: see loy_confdoc.h. */
#include "loy_confdoc.h"

#include "loy_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 78 /* columns of a generated comment line */

/* text as '#' comment lines, broken at blanks. */
static void comment(FILE *fp, const char *text) {
        const size_t room = WIDTH - 2;
        const char *p = text;
        while (*p) {
                size_t n = strlen(p);
                if (n > room) {
                        size_t cut = room;
                        while (cut > 0 && p[cut] != ' ')
                                cut--;
                        /* one word longer than a line stays whole */
                        if (cut == 0)
                                for (cut = room; p[cut] && p[cut] != ' ';)
                                        cut++;
                        n = cut;
                }
                fprintf(fp, "# %.*s\n", (int)n, p);
                p += n;
                while (*p == ' ')
                        p++;
        }
}

/* "integer, 1..100000" and the like; empty for text. */
static void hint(const loy_confmap_t *row, char *buf, size_t size) {
        char names[128];
        const char *type = loy_confmap_type_name(row, names, sizeof(names));
        switch (row->type) {
        case LOY_CM_INT:
        case LOY_CM_DBL:
        case LOY_CM_MIB:
                snprintf(buf, size, "%s, %.15g..%.15g", type, row->min,
                         row->max);
                return;
        case LOY_CM_STR:
        case LOY_CM_PARSE:
                buf[0] = '\0';
                return;
        case LOY_CM_BOOL:
        case LOY_CM_ENUM:
                break;
        }
        snprintf(buf, size, "%s", type);
}

/* The doc of a row as comment lines, with its type, range and, when the
 * key line below does not show it, its default. */
static void row_doc(FILE *fp, const loy_confmap_t *row, int with_default) {
        char h[160], text[1024];
        size_t n;
        hint(row, h, sizeof(h));
        n = (size_t)snprintf(text, sizeof(text), "%s", row->doc);
        if (h[0] || with_default)
                snprintf(text + n, sizeof(text) - n, " (%s%s%s%s)", h,
                         h[0] && with_default ? "; " : "",
                         with_default ? "default " : "",
                         with_default ? (row->def[0] ? row->def : "empty")
                                      : "");
        comment(fp, text);
}

/* "key = default", commented out or not. */
static void row_default(FILE *fp, const loy_confmap_t *row, int commented) {
        fprintf(fp, "%s%s =%s%s\n", commented ? "# " : "", row->name,
                row->def[0] ? " " : "", row->def);
}

static void kafka_and_rules(FILE *fp) {
        fprintf(fp, "\n[kafka]\n");
        comment(fp, "any librdkafka property, passed through, e.g.");
        fprintf(fp, "# bootstrap.servers = localhost:9092\n");
        /* commented out: "<name>" is no valid name, and an empty rule
         * section is an error */
        fprintf(fp, "\n# [rule <name>]   # one section per reward rule\n");
        for (const loy_confmap_t *row = loy_rule_map; row->name; row++) {
                fprintf(fp, "#\n");
                row_doc(fp, row, 0);
                row_default(fp, row, 1);
        }
}

void loy_confdoc_reference(FILE *fp) {
        size_t n;
        const loy_config_section_t *sec = loy_config_sections(&n);
        fprintf(fp, "# loyaltyd configuration: every key, its meaning and "
                    "default.\n");
        for (size_t i = 0; i < n; i++) {
                fprintf(fp, "\n[%s]\n", sec[i].name);
                comment(fp, sec[i].doc);
                for (int m = 0; m < 2 && sec[i].maps[m]; m++)
                        for (const loy_confmap_t *row = sec[i].maps[m];
                             row->name; row++) {
                                fprintf(fp, "\n");
                                row_doc(fp, row, 0);
                                row_default(fp, row, 0);
                        }
        }
        kafka_and_rules(fp);
}

/* ------------------------------------------------------------------------
 * A config filled in from a template
 * ------------------------------------------------------------------------ */

typedef enum { L_BLANK, L_COMMENT, L_KEY, L_SECTION } line_kind_t;

typedef struct tline {
        char *text; /* without its line end */
        line_kind_t kind;
        int sec;      /* L_SECTION: index in sections, -1: kafka or a rule */
        int in_sec;   /* L_KEY: the section it is in */
        char key[64]; /* L_KEY */
} tline_t;

typedef struct tmpl {
        tline_t *line;
        size_t n, cap;
} tmpl_t;

static void tmpl_free(tmpl_t *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->line[i].text);
        free(t->line);
}

static const char *skip_blanks(const char *s) {
        while (isspace((unsigned char)*s))
                s++;
        return s;
}

/* Kind, section and key of one line the loader has accepted. */
static void classify(tline_t *l, int *cur_sec) {
        const char *s = skip_blanks(l->text);
        l->sec = -1;
        l->in_sec = *cur_sec;
        if (!*s) {
                l->kind = L_BLANK;
        } else if (*s == '#') {
                l->kind = L_COMMENT;
        } else if (*s == '[') {
                size_t n, count;
                const loy_config_section_t *sec = loy_config_sections(&count);
                s = skip_blanks(s + 1);
                n = strcspn(s, " \t]");
                l->kind = L_SECTION;
                for (size_t i = 0; i < count; i++)
                        if (strlen(sec[i].name) == n &&
                            !strncmp(sec[i].name, s, n))
                                l->sec = (int)i;
                *cur_sec = l->sec;
        } else {
                size_t n = strcspn(s, " \t=");
                l->kind = L_KEY;
                snprintf(l->key, sizeof(l->key), "%.*s", (int)n, s);
        }
}

static int tmpl_read(tmpl_t *t, const char *path, char *errstr,
                     size_t errstr_size) {
        FILE *in = fopen(path, "r");
        char *buf = NULL;
        size_t bufsize = 0;
        ssize_t len;
        int cur_sec = -1;

        if (!in)
                return loy_config_error(errstr, errstr_size, path, 0, "file",
                                        "%s", strerror(errno));
        while ((len = getline(&buf, &bufsize, in)) >= 0) {
                tline_t *l;
                if (t->n == t->cap) {
                        size_t cap = t->cap ? t->cap * 2 : 64;
                        tline_t *grown = realloc(t->line, cap * sizeof(*grown));
                        if (!grown)
                                break;
                        t->line = grown;
                        t->cap = cap;
                }
                l = &t->line[t->n];
                while (len > 0 &&
                       (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                        buf[--len] = '\0';
                l->text = strdup(buf);
                if (!l->text)
                        break;
                t->n++;
                classify(l, &cur_sec);
        }
        free(buf);
        if (!feof(in)) {
                fclose(in);
                return loy_config_error(
                    errstr, errstr_size, path, (int)t->n + 1, "file", "%s",
                    errno ? strerror(errno) : "out of memory");
        }
        fclose(in);
        return 0;
}

/* The first line of the copied tail: the first [kafka] or [rule] section,
 * with the comments and blank lines right above it. */
static size_t tail_start(const tmpl_t *t) {
        size_t i = 0;
        while (i < t->n &&
               !(t->line[i].kind == L_SECTION && t->line[i].sec < 0))
                i++;
        while (i > 0 && (t->line[i - 1].kind == L_BLANK ||
                         t->line[i - 1].kind == L_COMMENT))
                i--;
        return i;
}

/* The template's rules for the part between header and tail. */
static int tmpl_check(const tmpl_t *t, size_t head, size_t tail,
                      const char *path, char *errstr, size_t errstr_size) {
        for (size_t i = head; i < tail; i++) {
                size_t j = i;
                if (t->line[i].kind != L_COMMENT)
                        continue;
                while (j < tail && t->line[j].kind == L_COMMENT)
                        j++;
                if (j == tail || t->line[j].kind != L_KEY)
                        return loy_config_error(
                            errstr, errstr_size, path, (int)i + 1, "comment",
                            "in a table section a comment must sit "
                            "right above its key (every key's doc "
                            "comes from the tables)");
        }
        for (size_t i = tail; i < t->n; i++)
                if (t->line[i].kind == L_SECTION && t->line[i].sec >= 0)
                        return loy_config_error(
                            errstr, errstr_size, path, (int)i + 1,
                            t->line[i].text,
                            "sections with keys of their own come "
                            "before [kafka] and the rules");
        return 0;
}

/* The last line of [sec] that sets key, or 0 (line 0 is never a key: the
 * header comes first). */
static size_t tmpl_find(const tmpl_t *t, size_t head, size_t tail, int sec,
                        const char *key) {
        size_t found = 0;
        for (size_t i = head; i < tail; i++)
                if (t->line[i].kind == L_KEY && t->line[i].in_sec == sec &&
                    !strcmp(t->line[i].key, key))
                        found = i;
        return found;
}

int loy_confdoc_filled(FILE *fp, const char *template_path, char *errstr,
                       size_t errstr_size) {
        loy_config_t *conf = malloc(sizeof(*conf));
        tmpl_t t = {0};
        size_t head = 0, hdr, tail, count;
        const loy_config_section_t *sec = loy_config_sections(&count);
        int rc;

        if (!conf)
                return loy_config_error(errstr, errstr_size, template_path, 0,
                                        "file", "out of memory");
        /* the loader's checks first, so a bad template is reported the way
         * a bad config is */
        loy_config_defaults(conf);
        rc = loy_config_load(conf, template_path, errstr, errstr_size);
        loy_config_free(conf);
        free(conf);
        if (rc || tmpl_read(&t, template_path, errstr, errstr_size)) {
                tmpl_free(&t);
                return -1;
        }
        while (head < t.n && t.line[head].kind != L_SECTION)
                head++;
        tail = tail_start(&t);
        if (tail < head)
                tail = head;
        if (tmpl_check(&t, head, tail, template_path, errstr, errstr_size)) {
                tmpl_free(&t);
                return -1;
        }
        /* the header without its trailing blank lines: every section
         * starts with one */
        hdr = head;
        while (hdr > 0 && t.line[hdr - 1].kind == L_BLANK)
                hdr--;
        for (size_t i = 0; i < hdr; i++)
                fprintf(fp, "%s\n", t.line[i].text);
        for (size_t s = 0; s < count; s++) {
                fprintf(fp, "\n[%s]\n", sec[s].name);
                comment(fp, sec[s].doc);
                for (int m = 0; m < 2 && sec[s].maps[m]; m++)
                        for (const loy_confmap_t *row = sec[s].maps[m];
                             row->name; row++) {
                                size_t at = tmpl_find(&t, head, tail, (int)s,
                                                      row->name);
                                size_t c = at;
                                fprintf(fp, "\n");
                                row_doc(fp, row, at > 0);
                                if (!at) {
                                        row_default(fp, row, 1);
                                        continue;
                                }
                                while (c > head &&
                                       t.line[c - 1].kind == L_COMMENT)
                                        c--;
                                for (; c <= at; c++)
                                        fprintf(fp, "%s\n", t.line[c].text);
                        }
        }
        if (tail < t.n && t.line[tail].kind != L_BLANK)
                fprintf(fp, "\n");
        for (size_t i = tail; i < t.n; i++)
                fprintf(fp, "%s\n", t.line[i].text);
        tmpl_free(&t);
        return 0;
}

/* ------------------------------------------------------------------------
 * Markdown
 * ------------------------------------------------------------------------ */

/* s in a table cell: '|' escaped. */
static void md_cell(FILE *fp, const char *s) {
        for (; *s; s++) {
                if (*s == '|')
                        fputc('\\', fp);
                fputc(*s, fp);
        }
}

static void md_row(FILE *fp, const loy_confmap_t *row) {
        char h[160];
        hint(row, h, sizeof(h));
        fprintf(fp, "| `%s` | ", row->name);
        md_cell(fp, h[0] ? h : loy_confmap_type_name(row, h, sizeof(h)));
        fprintf(fp, " | ");
        if (row->def[0]) {
                fprintf(fp, "`");
                md_cell(fp, row->def);
                fprintf(fp, "`");
        }
        fprintf(fp, " | ");
        md_cell(fp, row->doc);
        fprintf(fp, " |\n");
}

static void md_table_head(FILE *fp) {
        fprintf(fp, "| key | type | default | meaning |\n"
                    "|---|---|---|---|\n");
}

void loy_confdoc_markdown(FILE *fp) {
        size_t n;
        const loy_config_section_t *sec = loy_config_sections(&n);
        fprintf(fp,
                "# Configuration reference\n\n"
                "<!-- Generated from the settings tables in the code by\n"
                "     `build/loyaltyctl config --markdown` (`make config`);\n"
                "     test_config fails when it is stale. Edit the tables, "
                "not this file. -->\n\n"
                "loyaltyd reads one config file (`loyaltyd -c FILE`): "
                "`[section]` lines,\n"
                "`key = value` lines and `#` comments. Any key can also be "
                "set on the\n"
                "command line: `-X section.key=value`. An unknown key, a "
                "value of the\n"
                "wrong type or out of its range is an error that names the "
                "file, line\n"
                "and key. The shipped `config/loyaltyd.conf` lists every key "
                "with its\n"
                "doc; `loyaltyd --help-config` prints them all at their "
                "defaults.\n");
        for (size_t i = 0; i < n; i++) {
                fprintf(fp, "\n## [%s]\n\n%c%s.\n\n", sec[i].name,
                        toupper((unsigned char)sec[i].doc[0]), sec[i].doc + 1);
                md_table_head(fp);
                for (int m = 0; m < 2 && sec[i].maps[m]; m++)
                        for (const loy_confmap_t *row = sec[i].maps[m];
                             row->name; row++)
                                md_row(fp, row);
        }
        fprintf(fp,
                "\n## [kafka]\n\n"
                "Any librdkafka property (librdkafka's CONFIGURATION.md), "
                "passed through\n"
                "as it is, e.g. `bootstrap.servers = localhost:9092`.\n"
                "\n## [rule <name>]\n\n"
                "One section per reward rule, at most %d; a name has 1 to %d "
                "letters,\n"
                "digits, `_` or `-`. Evaluated after each event and when a "
                "silence\n"
                "timer fires; the highest priority rule that matches and is "
                "out of\n"
                "cooldown fires (docs/guarantees.md).\n\n",
                LOY_RULES_MAX, LOY_RULE_NAME_MAX);
        md_table_head(fp);
        for (const loy_confmap_t *row = loy_rule_map; row->name; row++)
                md_row(fp, row);
}
