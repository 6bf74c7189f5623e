/*
 * loy_config: loyaltyd's configuration file.
 *
 * INI-like text: "[section]" lines, "key = value" lines, '#' comments.
 * Sections: input, output, redis, clock, features, scoring, timers, avro,
 * kafka (every key passes straight to librdkafka) and one "[rule <name>]"
 * per reward rule. Declarative tables (loy_confmap.h: the daemon's own in
 * loy_config.c, the modules' in features/ and models/) give every key its
 * type, default, bounds and doc; they drive parsing and defaults here, and
 * the reference, the shipped config/loyaltyd.conf and docs/configuration.md
 * (loy_confdoc.h). Unknown keys are errors, reported as "file:line: key:
 * message".
 */
#ifndef LOY_CONFIG_H
#define LOY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "../features/loy_feat.h"
#include "loy_confmap.h"
#include "../models/loy_reco.h"
#include "../models/loy_rules.h"

#define LOY_KAFKA_PROPS_MAX 64

typedef struct loy_config {
        /* input */
        char topic_purchase[128];
        char topic_browse[128];
        char group_id[128];
        int batch_max; /* messages per batch */
        int batch_ms;  /* longest wait to fill a batch */
        int pipeline;  /* next batch applied while one is written */

        /* output */
        char topic_triggers[128];
        char topic_deadletter[128];

        /* redis */
        char redis_host[128];
        int redis_port;
        char redis_ns[32];
        char redis_user[128];
        char redis_password[512];
        char redis_password_file[512];
        int redis_db;
        int redis_connect_timeout_ms;
        int redis_timeout_ms; /* each reply wait */
        int cache_customers;  /* local cache bound (customers) */
        int backoff_max_ms;   /* reconnect backoff ceiling */

        /* privacy: customer ids as keyed pseudonyms (docs/privacy.md) */
        int pseudonymize;
        char pseudonym_key_file[512];
        int expire_days; /* loyaltyctl expire; 0: never */

        /* http: /metrics, /healthz, /readyz (docs/operations.md) */
        char http_listen[128]; /* host:port; empty: no endpoint */
        int http_stall_ms;     /* /healthz fails when the loop is silent */

        /* clock */
        int lateness_ms; /* allowed lateness behind the watermark */
        int idle_ms;     /* idle partition stops holding the clock */

        /* features, scoring */
        loy_feat_conf_t feat;
        char model_path[512];
        double horizon_days;
        double margin;
        double discount_monthly; /* CLV discount rate; < 0: model file's */
        double rfm_weights[3];   /* R, F, M */

        /* timers: re-score silent customers */
        double timer_first_days; /* first check after the last purchase */
        double timer_every_days; /* then every ... */
        double timer_max_days;   /* until silent this long */
        int timer_batch;         /* timers fired per batch at most */

        /* recommendations */
        int reco_enabled;
        int reco_top_n;         /* items per customer and trigger */
        int reco_flush_ms;      /* increments to Redis at least this often */
        int reco_refresh_items; /* neighbour lists re-read per flush */
        loy_reco_conf_t reco;   /* model knobs */

        /* avro framing */
        int schema_purchase, schema_browse, schema_trigger;

        /* [kafka] pass-through */
        char *kafka_keys[LOY_KAFKA_PROPS_MAX];
        char *kafka_vals[LOY_KAFKA_PROPS_MAX];
        int nkafka;

        loy_rules_t rules;
} loy_config_t;

/* Fills defaults (no rules, no kafka properties). */
void loy_config_defaults(loy_config_t *conf);

/* Reads path on top of the current values. 0, or -1 with "file:line: key:
 * message" in errstr. Relative model paths are resolved against the config
 * file's directory. */
int loy_config_load(loy_config_t *conf, const char *path, char *errstr,
                    size_t errstr_size);

/* As loy_config_load(), from len bytes at buf (borrowed; need not end in
 * a NUL) instead of a file; name stands for the file name in messages and
 * anchors a relative model path. For tests and fuzzing. */
int loy_config_load_buffer(loy_config_t *conf, const char *name,
                           const char *buf, size_t len, char *errstr,
                           size_t errstr_size);

/* Sets one "section.key" (or "kafka.<prop>", "rule.<name>.<key>") from the
 * command line; same errors, with "<origin>" as the file name. Call
 * loy_config_check() after the last one. */
int loy_config_set(loy_config_t *conf, const char *origin,
                   const char *dotted_key, const char *value, char *errstr,
                   size_t errstr_size);

/* Cross-key checks (a rule without a condition, no input topic ...) and
 * rule sorting, after the last loy_config_set(). loy_config_load() does it
 * itself. 0 or -1 with "origin: key: message". */
int loy_config_check(loy_config_t *conf, const char *origin, char *errstr,
                     size_t errstr_size);

/* "file:line: key: message" (without ":line" when line is 0) into
 * errstr; returns -1, so that an error return is one statement. */
int loy_config_error(char *errstr, size_t errstr_size, const char *file,
                     int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Frees the kafka property strings. */
void loy_config_free(loy_config_t *conf);

/* The first line of a secret file (without its line end) into buf: 0, or
 * -1 with "file:line: key: message" (key names the setting that pointed
 * there) when it cannot be read, is empty or does not fit. */
int loy_config_read_secret(const char *path, const char *key, char *buf,
                           size_t size, char *errstr, size_t errstr_size);

/* How to open a connection to the configured Redis (state/loy_rconn.h):
 * o points into conf, and into password (the caller's buffer) when the
 * password comes from redis.password.file, read here. 0, or -1 with
 * "file:line: key: message". */
struct loy_rconn_opts;
int loy_config_redis_opts(const loy_config_t *conf, struct loy_rconn_opts *o,
                          char *password, size_t password_size, char *errstr,
                          size_t errstr_size);

/* A section of the file and the tables of its keys, in file order (the
 * rules' keys are loy_rule_map; [kafka] has no table). */
typedef struct loy_config_section {
        const char *name;
        const char *doc;
        /* each table and the offset of its struct in loy_config_t */
        const loy_confmap_t *maps[2];
        size_t bases[2];
} loy_config_section_t;

const loy_config_section_t *loy_config_sections(size_t *n);

#endif
