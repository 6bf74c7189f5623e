/*
 * fuzz_config: libFuzzer target of the config parser.
 *
 * The input is a config file's text, optionally followed by a line "%%"
 * and then one "section.key=value" override per line, as loyaltyd's
 * -X options give them (loy_config_set, then loy_config_check). It must
 * never crash; every refusal must come with a message that names where the
 * error is; an accepted config must hold what the parser promises (strings
 * terminated inside their buffers, counts inside their bounds, every rule
 * with a condition). Accepted rules are evaluated once on a new customer,
 * and each one's trigger must encode and read back as JSON (what the coupon
 * service and loyaltyctl see), so a rule's strings must be UTF-8.
 *
 * Build: scripts/fuzz.sh (cmake -DLOY_FUZZ=ON with clang, build-fuzz/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_codec.h"
#include "loy_config.h"
#include "loy_feat.h"
#include "loy_rules.h"
#include "fuzz.h"

/* a folder in the name, so a relative scoring.model gets resolved */
#define NAME "etc/fuzz.conf"
#define ORIGIN "-X"

#define TERMINATED(buf)                                                        \
        CHECK(memchr((buf), '\0', sizeof(buf)) != NULL,                        \
              #buf " is not terminated")

static void check_refusal(const char *err, const char *origin) {
        CHECK(err[0], "refused without a message");
        CHECK(!strncmp(err, origin, strlen(origin)) &&
                  err[strlen(origin)] == ':',
              "message does not start with '%s:': %s", origin, err);
}

static loy_codec_t *codec;

/* A trigger of rule r: encodes, and reads back with r's strings. */
static void check_trigger(const loy_rule_t *r) {
        loy_trigger_t t;
        const void *out;
        size_t len;
        char err[512], *json;

        memset(&t, 0, sizeof(t));
        t.trigger_id = "t1";
        t.customer_id = "c1";
        t.rule = r->name;
        t.reward_kind = r->reward_kind;
        t.reward_value = r->reward_value;
        t.reward_currency = r->reward_currency;
        t.segment = "new";
        t.cause_kind = "timer";
        t.model_version = "m1";
        out = loy_codec_encode_trigger(codec, &t, &len, err, sizeof(err));
        CHECK(out, "rule %s: trigger does not encode: %s", r->name, err);
        json = loy_codec_trigger_to_json(codec, out, len, err, sizeof(err));
        CHECK(json, "rule %s: trigger does not read back: %s", r->name, err);
        free(json);
}

static void check_accepted(const loy_config_t *c) {
        loy_cust_t cust;

        TERMINATED(c->topic_purchase);
        TERMINATED(c->topic_browse);
        TERMINATED(c->group_id);
        TERMINATED(c->topic_triggers);
        TERMINATED(c->topic_deadletter);
        TERMINATED(c->redis_host);
        TERMINATED(c->redis_ns);
        TERMINATED(c->model_path);
        CHECK(c->nkafka >= 0 && c->nkafka <= LOY_KAFKA_PROPS_MAX,
              "%d kafka properties", c->nkafka);
        for (int i = 0; i < c->nkafka; i++)
                CHECK(c->kafka_keys[i] && c->kafka_vals[i],
                      "kafka property %d is NULL", i);
        CHECK(c->rules.n >= 0 && c->rules.n <= LOY_RULES_MAX, "%d rules",
              c->rules.n);
        CHECK(c->topic_purchase[0] || c->topic_browse[0], "no input topic");
        CHECK(c->redis_port >= 1 && c->redis_port <= 65535, "redis port %d",
              c->redis_port);
        CHECK(c->batch_max >= 1, "batch.max %d", c->batch_max);
        for (int i = 0; i < c->rules.n; i++) {
                const loy_rule_t *r = &c->rules.rule[i];
                TERMINATED(r->name);
                TERMINATED(r->reward_kind);
                TERMINATED(r->reward_currency);
                CHECK(r->name[0], "rule %d has no name", i);
                CHECK(r->nterms >= 1 && r->nterms <= LOY_RULE_TERMS_MAX,
                      "rule %s has %d terms", r->name, r->nterms);
                for (int t = 0; t < r->nterms; t++)
                        CHECK(r->terms[t].field, "rule %s term %d", r->name, t);
                if (i > 0)
                        CHECK(c->rules.rule[i - 1].priority >= r->priority,
                              "rules not sorted by priority");
                check_trigger(r);
        }
        loy_feat_init(&cust, "c1");
        (void)loy_rules_pick(&c->rules, &cust, LOY_ON_EVENT, 1, 1700000000000LL,
                             &c->feat);
        (void)loy_rules_pick(&c->rules, &cust, LOY_ON_TIMER, 0, 1700000000000LL,
                             &c->feat);
}

/* The start of the line "%%" that ends the file part, or NULL. */
static const uint8_t *find_split(const uint8_t *data, size_t size) {
        for (size_t i = 0; i + 2 <= size; i++)
                if ((i == 0 || data[i - 1] == '\n') && data[i] == '%' &&
                    data[i + 1] == '%' &&
                    (i + 2 == size || data[i + 2] == '\n'))
                        return data + i;
        return NULL;
}

static void cleanup(void) {
        loy_codec_destroy(codec);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char err[512];
        (void)argc;
        (void)argv;
        codec = loy_codec_create(NULL, err, sizeof(err));
        if (!codec) {
                fprintf(stderr, "fuzz_config: %s\n", err);
                abort();
        }
        atexit(cleanup);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static loy_config_t conf;
        const uint8_t *split = find_split(data, size);
        size_t flen = split ? (size_t)(split - data) : size;
        char err[1024];
        int rc;

        loy_config_defaults(&conf);
        err[0] = '\0';
        rc = loy_config_load_buffer(&conf, NAME, (const char *)data, flen, err,
                                    sizeof(err));
        if (rc) {
                CHECK(rc == -1, "returned %d", rc);
                check_refusal(err, NAME);
                loy_config_free(&conf);
                return 0;
        }
        check_accepted(&conf);
        if (split) {
                const char *p = (const char *)split + 2;
                const char *end = (const char *)data + size;
                char line[4096];

                while (p < end) {
                        const char *nl = memchr(p, '\n', (size_t)(end - p));
                        size_t n = (size_t)((nl ? nl : end) - p);
                        char *eq;

                        if (n >= sizeof(line))
                                n = sizeof(line) - 1;
                        memcpy(line, p, n);
                        line[n] = '\0';
                        p = nl ? nl + 1 : end;
                        if (!line[0])
                                continue;
                        /* loyaltyd: -X key=value, split at the first '=' */
                        eq = strchr(line, '=');
                        if (!eq)
                                continue;
                        *eq = '\0';
                        err[0] = '\0';
                        rc = loy_config_set(&conf, ORIGIN, line, eq + 1, err,
                                            sizeof(err));
                        if (rc) {
                                CHECK(rc == -1, "set returned %d", rc);
                                check_refusal(err, ORIGIN);
                                loy_config_free(&conf);
                                return 0;
                        }
                }
                err[0] = '\0';
                rc = loy_config_check(&conf, ORIGIN, err, sizeof(err));
                if (rc) {
                        CHECK(rc == -1, "check returned %d", rc);
                        check_refusal(err, ORIGIN);
                        loy_config_free(&conf);
                        return 0;
                }
                check_accepted(&conf);
        }
        loy_config_free(&conf);
        return 0;
}
