/*
 * loy_confdoc: the config file's documentation, written from the settings
 * tables (loy_config_sections(), loy_rule_map), so that no default or doc
 * is written by hand twice.
 *
 * Three outputs: the reference config (every key at its default:
 * `loyaltyd --help-config`), a config filled in from a short template (the
 * shipped config/loyaltyd.conf comes from config/loyaltyd.conf.in), and
 * the Markdown reference docs/configuration.md. `make config` regenerates
 * the two files; test_config fails when they are stale.
 */
#ifndef LOY_CONFDOC_H
#define LOY_CONFDOC_H

#include <stddef.h>
#include <stdio.h>

/* Every key with its doc and default, as a config file that loads. */
void loy_confdoc_reference(FILE *fp);

/* Every key with its doc, from a template: a config file whose header
 * (lines before the first section) is copied, whose keys in the tables'
 * sections give the values (the comment lines directly above a key go
 * with it; every other key is written commented out, at its default), and
 * whose [kafka] and [rule ...] sections, which come last, are copied as
 * they are. 0, or -1 with "file:line: key: message" when the template
 * does not load or breaks these rules. */
int loy_confdoc_filled(FILE *fp, const char *template_path, char *errstr,
                       size_t errstr_size);

/* The reference as Markdown: one table per section. */
void loy_confdoc_markdown(FILE *fp);

#endif
