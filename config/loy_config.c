/* loy_config: see loy_config.h. */
#include "loy_config.h"

#include "../state/loy_rconn.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CT_STR, CT_INT, CT_DBL, CT_BOOL, CT_ENUM_ON } cfg_type_t;

/* One row per key: the table is the parser, the validator and the docs. */
typedef struct cfg_key {
        const char *section;
        const char *name;
        cfg_type_t type;
        size_t offset;
        size_t size; /* string buffer size */
        const char *def;
        double min, max;
        const char *doc;
} cfg_key_t;

#define C_OFF(f) offsetof(loy_config_t, f), sizeof(((loy_config_t *)0)->f)
#define R_OFF(f) offsetof(loy_rule_t, f), sizeof(((loy_rule_t *)0)->f)

static const cfg_key_t conf_keys[] = {
    {"input", "topic.purchase", CT_STR, C_OFF(topic_purchase), "purchases", 0,
     0, "topic of purchase events (Avro or JSON)"},
    {"input", "topic.browse", CT_STR, C_OFF(topic_browse), "browse", 0, 0,
     "topic of browse events; empty to not subscribe"},
    {"input", "group.id", CT_STR, C_OFF(group_id), "loyaltyd", 0, 0,
     "Kafka consumer group; processes in one group share the partitions"},
    {"input", "batch.max", CT_INT, C_OFF(batch_max), "1000", 1, 100000,
     "messages per batch at most"},
    {"input", "batch.ms", CT_INT, C_OFF(batch_ms), "100", 1, 60000,
     "longest wait (ms) for a batch; once it has a message it takes only "
     "what is already waiting"},
    {"input", "pipeline", CT_BOOL, C_OFF(pipeline), "yes", 0, 0,
     "apply the next batch while Redis writes this one (no: one batch at "
     "a time; docs/guarantees.md)"},
    {"output", "topic.triggers", CT_STR, C_OFF(topic_triggers),
     "reward-triggers", 0, 0, "topic of reward-trigger records (Avro)"},
    {"output", "topic.deadletter", CT_STR, C_OFF(topic_deadletter),
     "loyaltyd-deadletter", 0, 0,
     "bad input goes here, bytes intact, reason in header 'loy.reason'"},
    {"redis", "host", CT_STR, C_OFF(redis_host), "127.0.0.1", 0, 0,
     "Redis host"},
    {"redis", "port", CT_INT, C_OFF(redis_port), "6379", 1, 65535,
     "Redis port"},
    {"redis", "namespace", CT_STR, C_OFF(redis_ns), "loy", 0, 0,
     "prefix of every key, so several shops can share one Redis"},
    {"redis", "user", CT_STR, C_OFF(redis_user), "", 0, 0,
     "ACL user (Redis 6+; AUTH user password); empty: the default user"},
    {"redis", "password", CT_STR, C_OFF(redis_password), "", 0, 0,
     "password (AUTH); empty: none. Better kept out of this file: "
     "redis.password.file"},
    {"redis", "password.file", CT_STR, C_OFF(redis_password_file), "", 0, 0,
     "file whose first line is the password (relative to this config "
     "file's directory)"},
    {"redis", "db", CT_INT, C_OFF(redis_db), "0", 0, 1000000,
     "database number (SELECT; a Redis Cluster has only 0)"},
    {"redis", "connect.timeout.ms", CT_INT, C_OFF(redis_connect_timeout_ms),
     "5000", 10, 600000, "connect timeout"},
    {"redis", "timeout.ms", CT_INT, C_OFF(redis_timeout_ms), "5000", 10, 600000,
     "command timeout: longest wait for a reply"},
    {"redis", "cache.customers", CT_INT, C_OFF(cache_customers), "100000", 16,
     100000000, "customers kept in the local cache (bounds memory)"},
    {"redis", "backoff.max.ms", CT_INT, C_OFF(backoff_max_ms), "5000", 10,
     600000, "reconnect backoff ceiling"},
    {"privacy", "pseudonymize", CT_BOOL, C_OFF(pseudonymize), "no", 0, 0,
     "yes: every customer id is replaced by a keyed pseudonym (HMAC-SHA256) "
     "as it is decoded, so Redis, triggers and logs never hold it"},
    {"privacy", "key.file", CT_STR, C_OFF(pseudonym_key_file), "", 0, 0,
     "file whose first line is the pseudonym key (relative to this config "
     "file; keep it secret and never change it: the pseudonyms change)"},
    {"privacy", "expire.days", CT_INT, C_OFF(expire_days), "0", 0, 36500,
     "loyaltyctl expire erases customers silent longer than this many days "
     "of event time (0: never)"},
    {"http", "listen", CT_STR, C_OFF(http_listen), "", 0, 0,
     "host:port of /metrics, /healthz and /readyz (empty: none; port 0: "
     "any free one, logged)"},
    {"http", "stall.ms", CT_INT, C_OFF(http_stall_ms), "60000", 1000, 86400000,
     "/healthz answers 503 once the processor loop has been "
     "silent this long"},
    {"clock", "lateness.ms", CT_INT, C_OFF(lateness_ms), "0", 0, 86400000,
     "allowed lateness: the clock runs this far behind the watermark"},
    {"clock", "idle.ms", CT_INT, C_OFF(idle_ms), "30000", 1, 86400000,
     "a partition silent this long (wall clock) stops holding the clock"},
    {"features", "purchase.half_life.days", CT_DBL,
     C_OFF(feat.purchase_half_life_days), "90", 0.01, 36500,
     "half-life of the decayed order counter"},
    {"features", "spend.half_life.days", CT_DBL,
     C_OFF(feat.spend_half_life_days), "90", 0.01, 36500,
     "half-life of the decayed spend counter"},
    {"features", "session.gap.min", CT_DBL, C_OFF(feat.browse_session_gap_min),
     "30", 0.1, 10080, "browse events further apart start a new session"},
    {"features", "points.per.unit", CT_DBL, C_OFF(feat.points_per_unit), "1", 0,
     1e6, "loyalty points per currency unit spent"},
    {"features", "tier.silver.points", CT_DBL, C_OFF(feat.tier_silver_points),
     "500", 0, 1e12, "points for silver"},
    {"features", "tier.gold.points", CT_DBL, C_OFF(feat.tier_gold_points),
     "2000", 0, 1e12, "points for gold"},
    {"scoring", "model", CT_STR, C_OFF(model_path), "model.default", 0, 0,
     "model file (relative to this config file's directory)"},
    {"scoring", "horizon.days", CT_DBL, C_OFF(horizon_days), "90", 1, 3650,
     "horizon of expected purchases and CLV"},
    {"scoring", "margin", CT_DBL, C_OFF(margin), "0.3", 0, 1,
     "profit margin applied to expected revenue for CLV"},
    {"scoring", "discount.monthly", CT_DBL, C_OFF(discount_monthly), "-1", -1,
     1, "monthly discount rate of CLV; -1 keeps the model file's"},
    {"scoring", "weight.recency", CT_DBL, C_OFF(rfm_weights[0]), "0.3", 0, 1,
     "loyalty score weight of R"},
    {"scoring", "weight.frequency", CT_DBL, C_OFF(rfm_weights[1]), "0.3", 0, 1,
     "loyalty score weight of F"},
    {"scoring", "weight.monetary", CT_DBL, C_OFF(rfm_weights[2]), "0.4", 0, 1,
     "loyalty score weight of M"},
    {"timers", "first.days", CT_DBL, C_OFF(timer_first_days), "30", 0.01, 3650,
     "re-score a silent customer this long after the last purchase"},
    {"timers", "every.days", CT_DBL, C_OFF(timer_every_days), "30", 0.01, 3650,
     "then again every ..."},
    {"timers", "max.days", CT_DBL, C_OFF(timer_max_days), "365", 0, 36500,
     "stop checking after this much silence"},
    {"timers", "batch", CT_INT, C_OFF(timer_batch), "1000", 1, 1000000,
     "timers fired per batch at most (the rest wait for the next batch)"},
    {"reco", "enabled", CT_BOOL, C_OFF(reco_enabled), "yes", 0, 0,
     "item-to-item recommendations in the stream and in triggers"},
    {"reco", "top_n", CT_INT, C_OFF(reco_top_n), "10", 1, 20,
     "recommended items per customer (Redis) and per trigger"},
    {"reco", "flush.ms", CT_INT, C_OFF(reco_flush_ms), "1000", 0, 600000,
     "co-occurrence increments go to Redis at least this often"},
    {"reco", "refresh.items", CT_INT, C_OFF(reco_refresh_items), "200", 0,
     100000, "items whose neighbour lists are rebuilt from Redis per flush"},
    {"reco", "mem.mb", CT_INT, C_OFF(reco_mem_mb), "64", 1, 65536,
     "memory bound of the local model"},
    {"reco", "half_life.days", CT_DBL, C_OFF(reco.half_life_days), "30", 0,
     36500, "decay of co-occurrence counts"},
    {"reco", "top_k", CT_INT, C_OFF(reco.top_k), "20", 1, LOY_RECO_K_MAX,
     "neighbours kept per item"},
    {"reco", "max_basket", CT_INT, C_OFF(reco.max_basket), "20", 1, 4096,
     "distinct items of a basket paired (bounds work per purchase)"},
    {"reco", "weight.browse", CT_DBL, C_OFF(reco.w_browse), "0.2", 0, 100,
     "pair weight of a browse session (a basket weighs reco.weight.purchase)"},
    {"reco", "weight.purchase", CT_DBL, C_OFF(reco.w_purchase), "1", 0, 100,
     "pair weight of a basket"},
    {"reco", "include_bought", CT_BOOL, C_OFF(reco.include_bought), "yes", 0, 0,
     "recommend items the customer bought before (retail re-buys)"},
    {"avro", "schema.purchase", CT_INT, C_OFF(schema_purchase), "1", 0,
     2147483647, "Confluent schema id of purchase events"},
    {"avro", "schema.browse", CT_INT, C_OFF(schema_browse), "2", 0, 2147483647,
     "Confluent schema id of browse events"},
    {"avro", "schema.trigger", CT_INT, C_OFF(schema_trigger), "3", 0,
     2147483647, "Confluent schema id written on reward triggers"},
};

static const cfg_key_t rule_keys[] = {
    {"rule", "when", CT_STR, 0, 0, "", 0, 0,
     "condition: <field> <op> <number> [and ...]"},
    {"rule", "on", CT_ENUM_ON, R_OFF(on), "any", 0, 0,
     "event | timer | any: when the rule is evaluated"},
    {"rule", "purchase_only", CT_BOOL, R_OFF(purchase_only), "no", 0, 0,
     "on events, only purchases (not browse) can fire it"},
    {"rule", "reward.kind", CT_STR, R_OFF(reward_kind), "coupon", 0, 0,
     "coupon, points, tier, ..."},
    {"rule", "reward.value", CT_DBL, R_OFF(reward_value), "10", 0, 1e9,
     "amount (percent for coupons, points for points)"},
    {"rule", "reward.currency", CT_STR, R_OFF(reward_currency), "", 0, 0,
     "currency of a money reward; empty for percent"},
    {"rule", "reward.expiry.days", CT_DBL, R_OFF(reward_expiry_days), "30", 0,
     3650, "reward valid this long after the trigger (event time)"},
    {"rule", "cooldown.days", CT_DBL, R_OFF(cooldown_days), "30", 0, 36500,
     "never fire twice for one customer within this"},
    {"rule", "priority", CT_INT, R_OFF(priority), "0", -1000, 1000,
     "higher first; one reward per evaluation"},
    {"rule", "holdout.pct", CT_DBL, R_OFF(holdout_pct), "0", 0, 100,
     "share of customers kept as control group (trigger flagged holdout)"},
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

static int fail(char *errstr, size_t errstr_size, const char *file, int line,
                const char *key, const char *fmt, ...) {
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

/* Stores one typed value at base+k->offset. */
static int set_value(void *base, const cfg_key_t *k, const char *value,
                     const char *file, int line, const char *key, char *errstr,
                     size_t errstr_size) {
        char *p = (char *)base + k->offset;
        char *end;
        double d;

        switch (k->type) {
        case CT_STR:
                if (strlen(value) >= k->size)
                        return fail(errstr, errstr_size, file, line, key,
                                    "longer than %zu characters", k->size - 1);
                /* strings reach the Avro triggers (rule reward kind and
                 * currency) and Kafka or Redis names: UTF-8, or readers
                 * rewrite them */
                if (!loy_utf8_valid(value, strlen(value)))
                        return fail(errstr, errstr_size, file, line, key,
                                    "not valid UTF-8");
                memcpy(p, value, strlen(value) + 1);
                return 0;
        case CT_BOOL:
                if (!strcmp(value, "yes") || !strcmp(value, "true") ||
                    !strcmp(value, "1"))
                        *(int *)p = 1;
                else if (!strcmp(value, "no") || !strcmp(value, "false") ||
                         !strcmp(value, "0"))
                        *(int *)p = 0;
                else
                        return fail(errstr, errstr_size, file, line, key,
                                    "'%s' is not yes/no", value);
                return 0;
        case CT_ENUM_ON:
                if (!strcmp(value, "event"))
                        *(loy_rule_on_t *)p = LOY_ON_EVENT;
                else if (!strcmp(value, "timer"))
                        *(loy_rule_on_t *)p = LOY_ON_TIMER;
                else if (!strcmp(value, "any"))
                        *(loy_rule_on_t *)p = LOY_ON_ANY;
                else
                        return fail(errstr, errstr_size, file, line, key,
                                    "'%s' is not event, timer or any", value);
                return 0;
        case CT_INT:
        case CT_DBL:
                errno = 0;
                d = strtod(value, &end);
                /* trailing blanks are fine, but value is the caller's
                 * (maybe read-only) string: skip them, never cut them */
                while (isspace((unsigned char)*end))
                        end++;
                if (end == value || *end || errno || !isfinite(d))
                        return fail(errstr, errstr_size, file, line, key,
                                    "'%s' is not a number", value);
                if (k->type == CT_INT && d != floor(d))
                        return fail(errstr, errstr_size, file, line, key,
                                    "'%s' is not a whole number", value);
                if (d < k->min || d > k->max)
                        return fail(errstr, errstr_size, file, line, key,
                                    "%s is out of range [%.15g, %.15g]", value,
                                    k->min, k->max);
                if (k->type == CT_INT)
                        *(int *)p = (int)d;
                else
                        *(double *)p = d;
                return 0;
        }
        return -1;
}

void loy_config_defaults(loy_config_t *conf) {
        char err[64];
        memset(conf, 0, sizeof(*conf));
        /* knobs the table does not list keep the model's own defaults */
        loy_reco_conf_default(&conf->reco);
        for (size_t i = 0; i < NKEYS(conf_keys); i++)
                set_value(conf, &conf_keys[i], conf_keys[i].def, "defaults", 0,
                          conf_keys[i].name, err, sizeof(err));
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
                return fail(errstr, errstr_size, file, line, key,
                            "more than %d kafka properties",
                            LOY_KAFKA_PROPS_MAX);
        v = strdup(value);
        if (!v)
                return fail(errstr, errstr_size, file, line, key,
                            "out of memory");
        if (i == conf->nkafka) {
                conf->kafka_keys[i] = strdup(key);
                if (!conf->kafka_keys[i]) {
                        free(v);
                        return fail(errstr, errstr_size, file, line, key,
                                    "out of memory");
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
                fail(errstr, errstr_size, file, line, "rule",
                     "rule name must be 1 to %d characters", LOY_RULE_NAME_MAX);
                return NULL;
        }
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
                        fail(errstr, errstr_size, file, line, name,
                             "rule names use letters, digits, _ and -");
                        return NULL;
                }
        if (rules->n == LOY_RULES_MAX) {
                fail(errstr, errstr_size, file, line, name,
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
        char why[200];
        if (!r)
                return -1;
        if (!strcmp(key, "when")) {
                if (loy_rule_parse_when(r, value, why, sizeof(why)) == -1)
                        return fail(errstr, errstr_size, file, line, key, "%s",
                                    why);
                return 0;
        }
        for (size_t i = 0; i < NKEYS(rule_keys); i++)
                if (!strcmp(rule_keys[i].name, key))
                        return set_value(r, &rule_keys[i], value, file, line,
                                         key, errstr, errstr_size);
        return fail(errstr, errstr_size, file, line, key,
                    "unknown key in [rule %s]", rule_name);
}

/* section is "input", "kafka" or "rule <name>". */
static int set_key(loy_config_t *conf, const char *section, const char *key,
                   const char *value, const char *file, int line, char *errstr,
                   size_t errstr_size) {
        if (!strcmp(section, "kafka"))
                return set_kafka(conf, key, value, file, line, errstr,
                                 errstr_size);
        if (!strncmp(section, "rule ", 5))
                return set_rule_key(conf, section + 5, key, value, file, line,
                                    errstr, errstr_size);
        for (size_t i = 0; i < NKEYS(conf_keys); i++)
                if (!strcmp(conf_keys[i].section, section) &&
                    !strcmp(conf_keys[i].name, key))
                        return set_value(conf, &conf_keys[i], value, file, line,
                                         key, errstr, errstr_size);
        return fail(errstr, errstr_size, file, line, key, "unknown key in [%s]",
                    section);
}

static int known_section(const char *s) {
        if (!strcmp(s, "kafka") || !strncmp(s, "rule ", 5))
                return 1;
        for (size_t i = 0; i < NKEYS(conf_keys); i++)
                if (!strcmp(conf_keys[i].section, s))
                        return 1;
        return 0;
}

/* Cross-field checks that no single key can make. */
static int check(loy_config_t *conf, const char *file, char *errstr,
                 size_t errstr_size) {
        double w =
            conf->rfm_weights[0] + conf->rfm_weights[1] + conf->rfm_weights[2];
        if (w <= 0)
                return fail(errstr, errstr_size, file, 0, "scoring.weight.*",
                            "weights must not all be 0");
        if (!conf->topic_purchase[0] && !conf->topic_browse[0])
                return fail(errstr, errstr_size, file, 0, "input.topic.*",
                            "no input topic");
        if (!conf->topic_triggers[0] || !conf->topic_deadletter[0])
                return fail(errstr, errstr_size, file, 0, "output.topic.*",
                            "output topics must be set");
        if (conf->pseudonymize && !conf->pseudonym_key_file[0])
                return fail(errstr, errstr_size, file, 0, "privacy.key.file",
                            "privacy.pseudonymize = yes needs a key file");
        if (conf->redis_password[0] && conf->redis_password_file[0])
                return fail(errstr, errstr_size, file, 0, "redis.password",
                            "set redis.password or redis.password.file, "
                            "not both");
        for (int i = 0; i < conf->rules.n; i++)
                if (conf->rules.rule[i].nterms == 0)
                        return fail(errstr, errstr_size, file, 0,
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
                return fail(errstr, errstr_size, path, 0, key, "path too long");
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
                        return fail(errstr, errstr_size, path, lineno, "line",
                                    "longer than %zu characters",
                                    sizeof(linebuf) - 2);
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
                                return fail(errstr, errstr_size, path, lineno,
                                            line, "malformed section");
                        }
                        *end = '\0';
                        name = trim(line + 1);
                        if (!known_section(name) ||
                            strlen(name) >= sizeof(section)) {
                                return fail(errstr, errstr_size, path, lineno,
                                            name, "unknown section");
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
                        return fail(errstr, errstr_size, path, lineno, line,
                                    "expected key = value");
                }
                *eq = '\0';
                key = trim(line);
                value = trim(eq + 1);
                if (!*key) {
                        return fail(errstr, errstr_size, path, lineno, "=",
                                    "expected key = value");
                }
                if (!section[0]) {
                        return fail(errstr, errstr_size, path, lineno, key,
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
                return fail(errstr, errstr_size, path, lineno, "file",
                            "read error");
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
                return fail(errstr, errstr_size, path, 0, "file", "%s",
                            strerror(errno));
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
                return fail(errstr, errstr_size, name, 0, "file", "%s",
                            strerror(errno));
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
                return fail(errstr, errstr_size, origin, 0, dotted_key,
                            "expected section.key");
        if (!strncmp(dotted_key, "rule.", 5)) {
                const char *dot2 = strchr(dot + 1, '.');
                if (!dot2 || (size_t)(dot2 - dot) >= sizeof(section) - 5)
                        return fail(errstr, errstr_size, origin, 0, dotted_key,
                                    "expected rule.<name>.key");
                snprintf(section, sizeof(section), "rule %.*s",
                         (int)(dot2 - dot - 1), dot + 1);
                dot = dot2;
        } else {
                snprintf(section, sizeof(section), "%.*s",
                         (int)(dot - dotted_key), dotted_key);
                if (!known_section(section))
                        return fail(errstr, errstr_size, origin, 0, dotted_key,
                                    "unknown section");
        }
        if (!dot[1])
                return fail(errstr, errstr_size, origin, 0, dotted_key,
                            "expected section.key");
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

void loy_config_print_reference(FILE *fp) {
        const char *section = "";
        fprintf(fp, "# loyaltyd configuration: every key, its default and "
                    "meaning.\n");
        for (size_t i = 0; i < NKEYS(conf_keys); i++) {
                const cfg_key_t *k = &conf_keys[i];
                if (strcmp(section, k->section)) {
                        section = k->section;
                        fprintf(fp, "\n[%s]\n", section);
                }
                fprintf(fp, "# %s\n%s = %s\n", k->doc, k->name, k->def);
        }
        fprintf(fp, "\n[kafka]\n# any librdkafka property, passed through, "
                    "e.g.\n# bootstrap.servers = localhost:9092\n");
        /* commented out too: "<name>" is no valid name, and an empty rule
         * section is an error */
        fprintf(fp, "\n# [rule <name>]   # one section per reward rule\n");
        for (size_t i = 0; i < NKEYS(rule_keys); i++)
                fprintf(fp, "# %s\n# %s = %s\n", rule_keys[i].doc,
                        rule_keys[i].name, rule_keys[i].def);
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
                return fail(errstr, errstr_size, path, 0, key, "%s",
                            strerror(errno));
        if (!fgets(buf, (int)size, fp))
                buf[0] = '\0';
        fclose(fp);
        n = strcspn(buf, "\r\n");
        if (!buf[n] && n + 1 >= size) {
                explicit_bzero(buf, size);
                return fail(errstr, errstr_size, path, 1, key,
                            "secret longer than %zu bytes", size - 2);
        }
        buf[n] = '\0';
        if (!n)
                return fail(errstr, errstr_size, path, 1, key,
                            "the first line is empty");
        return 0;
}
