/* loy_config: see loy_config.h. */
#include "loy_config.h"

#include "../state/loy_rconn.h"
#include "../stream/loy_codec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONF_FIELD(f) LOY_CM_FIELD(loy_config_t, f)
#define CONF_KEY(...) LOY_CM_KEY(loy_config_t, __VA_ARGS__)
#define STR_(x) #x
#define STR(x) STR_(x)

/* The daemon's own keys, one table per section; the modules' tables
 * (loy_feat_conf_map, loy_reco_conf_map, loy_rule_map) join them below. */
static const loy_confmap_t input_keys[] = {
    CONF_KEY("topic.purchase", LOY_CM_STR, topic_purchase, "purchases", 0, 0,
             "topic of purchase events (Avro or JSON)"),
    CONF_KEY("topic.browse", LOY_CM_STR, topic_browse, "browse", 0, 0,
             "topic of browse events; empty to not subscribe"),
    CONF_KEY(
        "group.id", LOY_CM_STR, group_id, "loyaltyd", 0, 0,
        "Kafka consumer group; processes in one group share the partitions"),
    CONF_KEY("batch.max", LOY_CM_INT, batch_max, "1000", 1, 100000,
             "messages per batch at most"),
    CONF_KEY(
        "batch.ms", LOY_CM_INT, batch_ms, "100", 1, 60000,
        "longest wait (ms) for a batch; once it has a message it takes only "
        "what is already waiting"),
    CONF_KEY(
        "pipeline", LOY_CM_BOOL, pipeline, "yes", 0, 0,
        "apply the next batch while Redis writes this one (no: one batch at "
        "a time; docs/guarantees.md)"),
    {0},
};

static const loy_confmap_t output_keys[] = {
    CONF_KEY("topic.triggers", LOY_CM_STR, topic_triggers, "reward-triggers", 0,
             0, "topic of reward-trigger records (Avro)"),
    CONF_KEY(
        "topic.deadletter", LOY_CM_STR, topic_deadletter, "loyaltyd-deadletter",
        0, 0,
        "bad input goes here, bytes intact, reason in header 'loy.reason'"),
    {0},
};

static const loy_confmap_t redis_keys[] = {
    CONF_KEY("host", LOY_CM_STR, redis_host, "127.0.0.1", 0, 0, "Redis host"),
    CONF_KEY("port", LOY_CM_INT, redis_port, "6379", 1, 65535, "Redis port"),
    CONF_KEY("namespace", LOY_CM_STR, redis_ns, "loy", 0, 0,
             "prefix of every key, so several shops can share one Redis"),
    CONF_KEY("user", LOY_CM_STR, redis_user, "", 0, 0,
             "ACL user (Redis 6+; AUTH user password; docs/redis-keys.md "
             "\"Access\"); empty: the default user"),
    CONF_KEY("password", LOY_CM_STR, redis_password, "", 0, 0,
             "password (AUTH); empty: none. Better kept out of this file: "
             "redis.password.file"),
    CONF_KEY("password.file", LOY_CM_STR, redis_password_file, "", 0, 0,
             "file whose first line is the password (relative to this config "
             "file's directory)"),
    CONF_KEY("db", LOY_CM_INT, redis_db, "0", 0, 1000000,
             "database number (SELECT; a Redis Cluster has only 0)"),
    CONF_KEY("connect.timeout.ms", LOY_CM_INT, redis_connect_timeout_ms, "5000",
             10, 600000, "connect timeout"),
    CONF_KEY("timeout.ms", LOY_CM_INT, redis_timeout_ms, "5000", 10, 600000,
             "command timeout: longest wait for a reply"),
    CONF_KEY("cache.customers", LOY_CM_INT, cache_customers, "100000", 16,
             100000000, "customers kept in the local cache (bounds memory)"),
    CONF_KEY("backoff.max.ms", LOY_CM_INT, backoff_max_ms, "5000", 10, 600000,
             "reconnect backoff ceiling"),
    {0},
};

static const loy_confmap_t privacy_keys[] = {
    CONF_KEY(
        "pseudonymize", LOY_CM_BOOL, pseudonymize, "no", 0, 0,
        "yes: every customer id is replaced by a keyed pseudonym (HMAC-SHA256) "
        "as it is decoded, so Redis, triggers and logs never hold it"),
    CONF_KEY(
        "key.file", LOY_CM_STR, pseudonym_key_file, "", 0, 0,
        "file whose first line is the pseudonym key (relative to this config "
        "file; make one with: openssl rand -hex 32 > pseudonym.key; keep it "
        "secret and never change it: the pseudonyms change)"),
    CONF_KEY(
        "expire.days", LOY_CM_INT, expire_days, "0", 0, 36500,
        "loyaltyctl expire erases customers silent longer than this many days "
        "of event time (0: never; examples/systemd/ runs it daily)"),
    {0},
};

static const loy_confmap_t http_keys[] = {
    CONF_KEY(
        "listen", LOY_CM_STR, http_listen, "", 0, 0,
        "host:port of /metrics, /healthz and /readyz (empty: none; port 0: "
        "any free one, logged)"),
    CONF_KEY("stall.ms", LOY_CM_INT, http_stall_ms, "60000", 1000, 86400000,
             "/healthz answers 503 once the processor loop has been "
             "silent this long"),
    {0},
};

static const loy_confmap_t clock_keys[] = {
    CONF_KEY("lateness.ms", LOY_CM_INT, lateness_ms, "0", 0, 86400000,
             "allowed lateness: the clock runs this far behind the watermark"),
    CONF_KEY(
        "idle.ms", LOY_CM_INT, idle_ms, "30000", 1, 86400000,
        "a partition silent this long (wall clock) stops holding the clock"),
    {0},
};

static const loy_confmap_t scoring_keys[] = {
    CONF_KEY("model", LOY_CM_STR, model_path, "model.default", 0, 0,
             "model file (relative to this config file's directory)"),
    CONF_KEY("horizon.days", LOY_CM_DBL, horizon_days, "90", 1, 3650,
             "horizon of expected purchases and CLV"),
    CONF_KEY("margin", LOY_CM_DBL, margin, "0.3", 0, 1,
             "profit margin applied to expected revenue for CLV"),
    CONF_KEY("discount.monthly", LOY_CM_DBL, discount_monthly, "-1", -1, 1,
             "monthly discount rate of CLV; -1 keeps the model file's"),
    CONF_KEY("weight.recency", LOY_CM_DBL, rfm_weights[0], "0.3", 0, 1,
             "loyalty score weight of R"),
    CONF_KEY("weight.frequency", LOY_CM_DBL, rfm_weights[1], "0.3", 0, 1,
             "loyalty score weight of F"),
    CONF_KEY("weight.monetary", LOY_CM_DBL, rfm_weights[2], "0.4", 0, 1,
             "loyalty score weight of M"),
    {0},
};

static const loy_confmap_t timers_keys[] = {
    CONF_KEY("first.days", LOY_CM_DBL, timer_first_days, "30", 0.01, 3650,
             "re-score a silent customer this long after the last purchase"),
    CONF_KEY("every.days", LOY_CM_DBL, timer_every_days, "30", 0.01, 3650,
             "then again every ..."),
    CONF_KEY("max.days", LOY_CM_DBL, timer_max_days, "365", 0, 36500,
             "stop checking after this much silence"),
    CONF_KEY(
        "batch", LOY_CM_INT, timer_batch, "1000", 1, 1000000,
        "timers fired per batch at most (the rest wait for the next batch)"),
    {0},
};

static const loy_confmap_t reco_keys[] = {
    CONF_KEY("enabled", LOY_CM_BOOL, reco_enabled, "yes", 0, 0,
             "item-to-item recommendations in the stream and in triggers"),
    CONF_KEY("top_n", LOY_CM_INT, reco_top_n, "10", 1, 20,
             "recommended items per customer (Redis) and per trigger"),
    CONF_KEY("flush.ms", LOY_CM_INT, reco_flush_ms, "1000", 0, 600000,
             "co-occurrence increments go to Redis at least this often"),
    CONF_KEY("refresh.items", LOY_CM_INT, reco_refresh_items, "200", 0, 100000,
             "items whose neighbour lists are rebuilt from Redis per flush"),
    {0},
};

static const loy_confmap_t avro_keys[] = {
    CONF_KEY("schema.purchase", LOY_CM_INT, schema_purchase,
             STR(LOY_SCHEMA_ID_PURCHASE), 0, 2147483647,
             "Confluent schema id of purchase events"),
    CONF_KEY("schema.browse", LOY_CM_INT, schema_browse,
             STR(LOY_SCHEMA_ID_BROWSE), 0, 2147483647,
             "Confluent schema id of browse events"),
    CONF_KEY("schema.trigger", LOY_CM_INT, schema_trigger,
             STR(LOY_SCHEMA_ID_TRIGGER), 0, 2147483647,
             "Confluent schema id written on reward triggers"),
    {0},
};

static const loy_config_section_t sections[] = {
    {"input",
     "where events come from, and how they are batched",
     {input_keys},
     {0}},
    {"output", "where reward triggers and bad input go", {output_keys}, {0}},
    {"redis", "the state store (docs/redis-keys.md)", {redis_keys}, {0}},
    {"privacy",
     "customer ids as keyed pseudonyms, and erasure of silent customers "
     "(docs/privacy.md)",
     {privacy_keys},
     {0}},
    {"http",
     "Prometheus /metrics, /healthz and /readyz (docs/operations.md); keep "
     "it on loopback and put a reverse proxy in front to reach it from "
     "elsewhere",
     {http_keys},
     {0}},
    {"clock",
     "event time: lateness and idle partitions (docs/guarantees.md)",
     {clock_keys},
     {0}},
    {"features",
     "a customer's rolling features (docs/models.md)",
     {loy_feat_conf_map},
     {offsetof(loy_config_t, feat)}},
    {"scoring",
     "churn, CLV and loyalty scores (docs/models.md)",
     {scoring_keys},
     {0}},
    {"timers",
     "re-scoring of silent customers, so churn rules can fire",
     {timers_keys},
     {0}},
    {"reco",
     "item-to-item recommendations (docs/recommendations.md)",
     {reco_keys, loy_reco_conf_map},
     {0, offsetof(loy_config_t, reco)}},
    {"avro",
     "Confluent framing of the Avro records (docs/events.md)",
     {avro_keys},
     {0}},
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

static const loy_config_section_t *section_find(const char *name) {
        for (size_t i = 0; i < NSECTIONS; i++)
                if (!strcmp(sections[i].name, name))
                        return &sections[i];
        return NULL;
}

/* The row of key in section sec, and the struct it is stored in. */
static const loy_confmap_t *row_find(const loy_config_section_t *sec,
                                     loy_config_t *conf, const char *key,
                                     void **base) {
        for (int m = 0; m < 2 && sec->maps[m]; m++) {
                const loy_confmap_t *row = loy_confmap_find(sec->maps[m], key);
                if (row) {
                        *base = (char *)conf + sec->bases[m];
                        return row;
                }
        }
        return NULL;
}

int loy_config_error(char *errstr, size_t errstr_size, const char *file,
                     int line, const char *key, const char *fmt, ...) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (line > 0)
                snprintf(errstr, errstr_size, "%s:%d: %s: %s", file, line, key,
                         msg);
        else
                snprintf(errstr, errstr_size, "%s: %s: %s", file, key, msg);
        return -1;
}

static char *trim(char *s) {
        char *e;
        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static int set_row(void *base, const loy_confmap_t *row, const char *value,
                   const char *file, int line, const char *key, char *errstr,
                   size_t errstr_size) {
        char why[200];
        if (loy_confmap_set(row, base, value, why, sizeof(why)))
                return loy_config_error(errstr, errstr_size, file, line, key,
                                        "%s", why);
        return 0;
}

void loy_config_defaults(loy_config_t *conf) {
        char why[200];
        memset(conf, 0, sizeof(*conf));
        /* the modules' defaults include what no key sets */
        loy_feat_conf_default(&conf->feat);
        loy_reco_conf_default(&conf->reco);
        /* cannot fail: test_config loads the reference, every default */
        for (size_t i = 0; i < NSECTIONS; i++)
                for (int m = 0; m < 2 && sections[i].maps[m]; m++)
                        (void)loy_confmap_defaults(sections[i].maps[m],
                                                   (char *)conf +
                                                       sections[i].bases[m],
                                                   why, sizeof(why));
#ifdef LOY_SOURCE_DIR
        /* without a config file, the model shipped in the source tree */
        snprintf(conf->model_path, sizeof(conf->model_path),
                 "%s/config/model.default", LOY_SOURCE_DIR);
#endif
}

void loy_config_free(loy_config_t *conf) {
        for (int i = 0; i < conf->nkafka; i++) {
                free(conf->kafka_keys[i]);
                free(conf->kafka_vals[i]);
        }
        conf->nkafka = 0;
        explicit_bzero(conf->redis_password, sizeof(conf->redis_password));
}

static int set_kafka(loy_config_t *conf, const char *key, const char *value,
                     const char *file, int line, char *errstr,
                     size_t errstr_size) {
        int i;
        char *v;
        for (i = 0; i < conf->nkafka; i++)
                if (!strcmp(conf->kafka_keys[i], key))
                        break;
        if (i == LOY_KAFKA_PROPS_MAX)
                return loy_config_error(errstr, errstr_size, file, line, key,
                                        "more than %d kafka properties",
                                        LOY_KAFKA_PROPS_MAX);
        v = strdup(value);
        if (!v)
                return loy_config_error(errstr, errstr_size, file, line, key,
                                        "out of memory");
        if (i == conf->nkafka) {
                conf->kafka_keys[i] = strdup(key);
                if (!conf->kafka_keys[i]) {
                        free(v);
                        return loy_config_error(errstr, errstr_size, file, line,
                                                key, "out of memory");
                }
                conf->nkafka++;
        } else {
                free(conf->kafka_vals[i]);
        }
        conf->kafka_vals[i] = v;
        return 0;
}

static loy_rule_t *rule_get(loy_config_t *conf, const char *name,
                            const char *file, int line, char *errstr,
                            size_t errstr_size) {
        loy_rules_t *rules = &conf->rules;
        for (int i = 0; i < rules->n; i++)
                if (!strcmp(rules->rule[i].name, name))
                        return &rules->rule[i];
        if (!*name || strlen(name) > LOY_RULE_NAME_MAX) {
                loy_config_error(errstr, errstr_size, file, line, "rule",
                                 "rule name must be 1 to %d characters",
                                 LOY_RULE_NAME_MAX);
                return NULL;
        }
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
                        loy_config_error(
                            errstr, errstr_size, file, line, name,
                            "rule names use letters, digits, _ and -");
                        return NULL;
                }
        if (rules->n == LOY_RULES_MAX) {
                loy_config_error(errstr, errstr_size, file, line, name,
                                 "more than %d rules", LOY_RULES_MAX);
                return NULL;
        }
        loy_rule_init(&rules->rule[rules->n], name);
        return &rules->rule[rules->n++];
}

static int set_rule_key(loy_config_t *conf, const char *rule_name,
                        const char *key, const char *value, const char *file,
                        int line, char *errstr, size_t errstr_size) {
        loy_rule_t *r =
            rule_get(conf, rule_name, file, line, errstr, errstr_size);
        const loy_confmap_t *row;
        if (!r)
                return -1;
        row = loy_confmap_find(loy_rule_map, key);
        if (!row)
                return loy_config_error(errstr, errstr_size, file, line, key,
                                        "unknown key in [rule %s]", rule_name);
        return set_row(r, row, value, file, line, key, errstr, errstr_size);
}

/* section is "input", "kafka" or "rule <name>". */
static int set_key(loy_config_t *conf, const char *section, const char *key,
                   const char *value, const char *file, int line, char *errstr,
                   size_t errstr_size) {
        const loy_config_section_t *sec;
        const loy_confmap_t *row;
        void *base;
        if (!strcmp(section, "kafka"))
                return set_kafka(conf, key, value, file, line, errstr,
                                 errstr_size);
        if (!strncmp(section, "rule ", 5))
                return set_rule_key(conf, section + 5, key, value, file, line,
                                    errstr, errstr_size);
        sec = section_find(section);
        row = sec ? row_find(sec, conf, key, &base) : NULL;
        if (!row)
                return loy_config_error(errstr, errstr_size, file, line, key,
                                        "unknown key in [%s]", section);
        return set_row(base, row, value, file, line, key, errstr, errstr_size);
}

static int known_section(const char *s) {
        return !strcmp(s, "kafka") || !strncmp(s, "rule ", 5) ||
               section_find(s);
}

/* Cross-field checks that no single key can make. */
static int check(loy_config_t *conf, const char *file, char *errstr,
                 size_t errstr_size) {
        double w =
            conf->rfm_weights[0] + conf->rfm_weights[1] + conf->rfm_weights[2];
        if (w <= 0)
                return loy_config_error(errstr, errstr_size, file, 0,
                                        "scoring.weight.*",
                                        "weights must not all be 0");
        if (!conf->topic_purchase[0] && !conf->topic_browse[0])
                return loy_config_error(errstr, errstr_size, file, 0,
                                        "input.topic.*", "no input topic");
        if (!conf->topic_triggers[0] || !conf->topic_deadletter[0])
                return loy_config_error(errstr, errstr_size, file, 0,
                                        "output.topic.*",
                                        "output topics must be set");
        if (conf->pseudonymize && !conf->pseudonym_key_file[0])
                return loy_config_error(
                    errstr, errstr_size, file, 0, "privacy.key.file",
                    "privacy.pseudonymize = yes needs a key file");
        if (conf->redis_password[0] && conf->redis_password_file[0])
                return loy_config_error(
                    errstr, errstr_size, file, 0, "redis.password",
                    "set redis.password or redis.password.file, "
                    "not both");
        for (int i = 0; i < conf->rules.n; i++)
                if (conf->rules.rule[i].nterms == 0)
                        return loy_config_error(errstr, errstr_size, file, 0,
                                                conf->rules.rule[i].name,
                                                "rule has no 'when' condition");
        loy_rules_sort(&conf->rules);
        return 0;
}

/* Makes a relative path a file gave (value, of key) relative to that
 * file's folder. */
static int resolve_path(char *value, size_t size, const char *path,
                        const char *key, char *errstr, size_t errstr_size) {
        const char *slash = strrchr(path, '/');
        char buf[1024];
        int n;
        if (!value[0] || value[0] == '/' || !slash)
                return 0;
        n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)(slash - path), path,
                     value);
        if (n < 0 || (size_t)n >= sizeof(buf) || (size_t)n >= size)
                return loy_config_error(errstr, errstr_size, path, 0, key,
                                        "path too long");
        memcpy(value, buf, (size_t)n + 1);
        return 0;
}

/* Parses fp (left open: the caller closes it); path names it in
 * messages and anchors a relative model path. */
static int load_fp(loy_config_t *conf, FILE *fp, const char *path, char *errstr,
                   size_t errstr_size) {
        char linebuf[2048];
        char section[64] = "";
        int model_set = 0, secret_set = 0, key_set = 0;
        int lineno = 0;

        while (fgets(linebuf, sizeof(linebuf), fp)) {
                char *line, *eq, *key, *value, *hash;
                lineno++;
                if (!strchr(linebuf, '\n') && !feof(fp)) {
                        return loy_config_error(
                            errstr, errstr_size, path, lineno, "line",
                            "longer than %zu characters", sizeof(linebuf) - 2);
                }
                hash = strchr(linebuf, '#');
                if (hash)
                        *hash = '\0';
                line = trim(linebuf);
                if (!*line)
                        continue;
                if (*line == '[') {
                        char *end = strchr(line, ']');
                        char *name;
                        if (!end || end[1]) {
                                return loy_config_error(errstr, errstr_size,
                                                        path, lineno, line,
                                                        "malformed section");
                        }
                        *end = '\0';
                        name = trim(line + 1);
                        if (!known_section(name) ||
                            strlen(name) >= sizeof(section)) {
                                return loy_config_error(errstr, errstr_size,
                                                        path, lineno, name,
                                                        "unknown section");
                        }
                        snprintf(section, sizeof(section), "%s", name);
                        /* an empty [rule x] must not vanish silently: make
                         * it now, so a bad name or a missing 'when' is
                         * reported */
                        if (!strncmp(section, "rule ", 5) &&
                            !rule_get(conf, section + 5, path, lineno, errstr,
                                      errstr_size)) {
                                return -1;
                        }
                        continue;
                }
                eq = strchr(line, '=');
                if (!eq) {
                        return loy_config_error(errstr, errstr_size, path,
                                                lineno, line,
                                                "expected key = value");
                }
                *eq = '\0';
                key = trim(line);
                value = trim(eq + 1);
                if (!*key) {
                        return loy_config_error(errstr, errstr_size, path,
                                                lineno, "=",
                                                "expected key = value");
                }
                if (!section[0]) {
                        return loy_config_error(errstr, errstr_size, path,
                                                lineno, key,
                                                "key outside any [section]");
                }
                if (set_key(conf, section, key, value, path, lineno, errstr,
                            errstr_size) == -1) {
                        return -1;
                }
                if (!strcmp(section, "scoring") && !strcmp(key, "model"))
                        model_set = 1;
                if (!strcmp(section, "redis") && !strcmp(key, "password.file"))
                        secret_set = 1;
                if (!strcmp(section, "privacy") && !strcmp(key, "key.file"))
                        key_set = 1;
        }
        if (ferror(fp))
                return loy_config_error(errstr, errstr_size, path, lineno,
                                        "file", "read error");
        /* only a path this file gave is relative to this file */
        if (model_set &&
            resolve_path(conf->model_path, sizeof(conf->model_path), path,
                         "scoring.model", errstr, errstr_size) == -1)
                return -1;
        if (secret_set &&
            resolve_path(conf->redis_password_file,
                         sizeof(conf->redis_password_file), path,
                         "redis.password.file", errstr, errstr_size) == -1)
                return -1;
        if (key_set &&
            resolve_path(conf->pseudonym_key_file,
                         sizeof(conf->pseudonym_key_file), path,
                         "privacy.key.file", errstr, errstr_size) == -1)
                return -1;
        return check(conf, path, errstr, errstr_size);
}

int loy_config_load(loy_config_t *conf, const char *path, char *errstr,
                    size_t errstr_size) {
        FILE *fp = fopen(path, "r");
        int rc;

        if (!fp)
                return loy_config_error(errstr, errstr_size, path, 0, "file",
                                        "%s", strerror(errno));
        rc = load_fp(conf, fp, path, errstr, errstr_size);
        fclose(fp);
        return rc;
}

int loy_config_load_buffer(loy_config_t *conf, const char *name,
                           const char *buf, size_t len, char *errstr,
                           size_t errstr_size) {
        FILE *fp;
        int rc;

        /* a read-only stream over the caller's bytes: the very code path
         * of a file, NUL bytes and a missing last newline included */
        fp = fmemopen((void *)(uintptr_t)(len ? buf : ""), len, "r");
        if (!fp)
                return loy_config_error(errstr, errstr_size, name, 0, "file",
                                        "%s", strerror(errno));
        rc = load_fp(conf, fp, name, errstr, errstr_size);
        fclose(fp);
        return rc;
}

int loy_config_set(loy_config_t *conf, const char *origin,
                   const char *dotted_key, const char *value, char *errstr,
                   size_t errstr_size) {
        char section[64];
        const char *dot = strchr(dotted_key, '.');
        if (!dot || (size_t)(dot - dotted_key) >= sizeof(section))
                return loy_config_error(errstr, errstr_size, origin, 0,
                                        dotted_key, "expected section.key");
        if (!strncmp(dotted_key, "rule.", 5)) {
                const char *dot2 = strchr(dot + 1, '.');
                if (!dot2 || (size_t)(dot2 - dot) >= sizeof(section) - 5)
                        return loy_config_error(errstr, errstr_size, origin, 0,
                                                dotted_key,
                                                "expected rule.<name>.key");
                snprintf(section, sizeof(section), "rule %.*s",
                         (int)(dot2 - dot - 1), dot + 1);
                dot = dot2;
        } else {
                snprintf(section, sizeof(section), "%.*s",
                         (int)(dot - dotted_key), dotted_key);
                if (!known_section(section))
                        return loy_config_error(errstr, errstr_size, origin, 0,
                                                dotted_key, "unknown section");
        }
        if (!dot[1])
                return loy_config_error(errstr, errstr_size, origin, 0,
                                        dotted_key, "expected section.key");
        if (set_key(conf, section, dot + 1, value, origin, 0, errstr,
                    errstr_size) == -1)
                return -1;
        /* the whole config is checked once all keys are set
         * (loy_config_check), so rule keys may come in any order */
        return 0;
}

int loy_config_check(loy_config_t *conf, const char *origin, char *errstr,
                     size_t errstr_size) {
        return check(conf, origin, errstr, errstr_size);
}

const loy_config_section_t *loy_config_sections(size_t *n) {
        *n = NSECTIONS;
        return sections;
}

int loy_config_redis_opts(const loy_config_t *conf, loy_rconn_opts_t *o,
                          char *password, size_t password_size, char *errstr,
                          size_t errstr_size) {
        memset(o, 0, sizeof(*o));
        o->user = conf->redis_user;
        o->db = conf->redis_db;
        o->connect_timeout_ms = conf->redis_connect_timeout_ms;
        o->command_timeout_ms = conf->redis_timeout_ms;
        o->password = conf->redis_password;
        if (conf->redis_password_file[0]) {
                if (loy_config_read_secret(conf->redis_password_file,
                                           "redis.password.file", password,
                                           password_size, errstr, errstr_size))
                        return -1;
                o->password = password;
        }
        return 0;
}

int loy_config_read_secret(const char *path, const char *key, char *buf,
                           size_t size, char *errstr, size_t errstr_size) {
        FILE *fp = fopen(path, "r");
        size_t n;
        if (!fp)
                return loy_config_error(errstr, errstr_size, path, 0, key, "%s",
                                        strerror(errno));
        if (!fgets(buf, (int)size, fp))
                buf[0] = '\0';
        fclose(fp);
        n = strcspn(buf, "\r\n");
        if (!buf[n] && n + 1 >= size) {
                explicit_bzero(buf, size);
                return loy_config_error(errstr, errstr_size, path, 1, key,
                                        "secret longer than %zu bytes",
                                        size - 2);
        }
        buf[n] = '\0';
        if (!n)
                return loy_config_error(errstr, errstr_size, path, 1, key,
                                        "the first line is empty");
        return 0;
}
