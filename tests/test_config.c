/*
 * loy_config: defaults, the shipped config/loyaltyd.conf, every error
 * message ("file:line: key: message"), command-line settings, the [kafka]
 * pass-through and the reference output (--help-config) read back.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loy_confdoc.h"
#include "loy_config.h"
#include "loy_feat.h"
#include "loy_rconn.h"
#include "tu.h"

/* path of the last temp config written */
static char tmp_path[64];

static int write_tmp(const char *text) {
        FILE *fp;
        int fd;
        snprintf(tmp_path, sizeof(tmp_path), "/tmp/loy_conf_XXXXXX");
        fd = mkstemp(tmp_path);
        if (fd == -1)
                return -1;
        fp = fdopen(fd, "w");
        if (!fp) {
                close(fd);
                unlink(tmp_path);
                return -1;
        }
        fputs(text, fp);
        fclose(fp);
        return 0;
}

/* Loads text as a config file on top of conf; the file is removed after. */
static int load_text(loy_config_t *conf, const char *text, char *err,
                     size_t err_size) {
        int rc;
        if (write_tmp(text) == -1)
                return -2;
        rc = loy_config_load(conf, tmp_path, err, err_size);
        unlink(tmp_path);
        return rc;
}

static void check_str(const char *got, const char *want) {
        CU_ASSERT_STRING_EQUAL(got, want);
        if (strcmp(got, want))
                fprintf(stderr, "\n got '%s'\nwant '%s'\n", got, want);
}

/* Loading text fails with "<tmpfile><suffix>". */
static void expect_load_error(const char *text, const char *suffix) {
        loy_config_t c;
        char err[512] = "", want[512];
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(load_text(&c, text, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s%s", tmp_path, suffix);
        check_str(err, want);
        loy_config_free(&c);
}

static void expect_set_error(loy_config_t *c, const char *key,
                             const char *value, const char *want) {
        char err[512] = "";
        CU_ASSERT_EQUAL(loy_config_set(c, "-X", key, value, err, sizeof(err)),
                        -1);
        check_str(err, want);
}

static const loy_rule_t *rule_by_name(const loy_config_t *c, const char *name) {
        for (int i = 0; i < c->rules.n; i++)
                if (!strcmp(c->rules.rule[i].name, name))
                        return &c->rules.rule[i];
        return NULL;
}

static void test_defaults(void) {
        loy_config_t c;
        char want[1024];

        loy_config_defaults(&c);
        check_str(c.topic_purchase, "purchases");
        check_str(c.topic_browse, "browse");
        check_str(c.group_id, "loyaltyd");
        CU_ASSERT_EQUAL(c.batch_max, 1000);
        CU_ASSERT_EQUAL(c.batch_ms, 100);
        check_str(c.topic_triggers, "reward-triggers");
        check_str(c.topic_deadletter, "loyaltyd-deadletter");
        check_str(c.redis_host, "127.0.0.1");
        CU_ASSERT_EQUAL(c.redis_port, 6379);
        check_str(c.redis_ns, "loy");
        CU_ASSERT_EQUAL(c.redis_timeout_ms, 5000);
        CU_ASSERT_EQUAL(c.cache_customers, 100000);
        CU_ASSERT_EQUAL(c.backoff_max_ms, 5000);
        CU_ASSERT_EQUAL(c.lateness_ms, 0);
        CU_ASSERT_EQUAL(c.idle_ms, 30000);
        CU_ASSERT_EQUAL(c.feat.purchase_half_life_days, 90);
        CU_ASSERT_EQUAL(c.feat.spend_half_life_days, 90);
        CU_ASSERT_EQUAL(c.feat.browse_session_gap_min, 30);
        CU_ASSERT_EQUAL(c.feat.points_per_unit, 1);
        CU_ASSERT_EQUAL(c.feat.tier_silver_points, 500);
        CU_ASSERT_EQUAL(c.feat.tier_gold_points, 2000);
        /* without a config file: the model shipped in the source tree */
        snprintf(want, sizeof(want), "%s/config/model.default", LOY_SOURCE_DIR);
        check_str(c.model_path, want);
        CU_ASSERT_EQUAL(c.horizon_days, 90);
        CU_ASSERT_EQUAL(c.margin, 0.3);
        CU_ASSERT_EQUAL(c.rfm_weights[0], 0.3);
        CU_ASSERT_EQUAL(c.rfm_weights[1], 0.3);
        CU_ASSERT_EQUAL(c.rfm_weights[2], 0.4);
        CU_ASSERT_EQUAL(c.timer_first_days, 30);
        CU_ASSERT_EQUAL(c.timer_every_days, 30);
        CU_ASSERT_EQUAL(c.timer_max_days, 365);
        CU_ASSERT_EQUAL(c.timer_batch, 1000);
        CU_ASSERT_EQUAL(c.schema_purchase, 1);
        CU_ASSERT_EQUAL(c.schema_browse, 2);
        CU_ASSERT_EQUAL(c.schema_trigger, 3);
        CU_ASSERT_EQUAL(c.nkafka, 0);
        CU_ASSERT_EQUAL(c.rules.n, 0);
        loy_config_free(&c);
}

static void check_term(const loy_rule_term_t *t, const char *field, loy_op_t op,
                       double value) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(t->field);
        check_str(t->field->name, field);
        CU_ASSERT_EQUAL(t->op, op);
        CU_ASSERT_EQUAL(t->value, value);
}

static void test_load_shipped(void) {
        loy_config_t c;
        char err[512] = "", path[1024], want[1024];
        const loy_rule_t *r;
        FILE *fp;

        snprintf(path, sizeof(path), "%s", tu_src_path("config/loyaltyd.conf"));
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL_FATAL(loy_config_load(&c, path, err, sizeof(err)), 0);

        /* values the file changes from the defaults */
        CU_ASSERT_EQUAL(c.cache_customers, 20000);
        CU_ASSERT_EQUAL(c.idle_ms, 5000);
        /* and some it repeats */
        check_str(c.topic_browse, "browse");
        CU_ASSERT_EQUAL(c.redis_port, 6379);
        CU_ASSERT_EQUAL(c.rfm_weights[2], 0.4);

        /* model = model.default, relative to the file's folder */
        snprintf(want, sizeof(want), "%s", tu_src_path("config/model.default"));
        check_str(c.model_path, want);
        fp = fopen(c.model_path, "r");
        CU_ASSERT_PTR_NOT_NULL(fp);
        if (fp)
                fclose(fp);

        CU_ASSERT_EQUAL_FATAL(c.nkafka, 1);
        check_str(c.kafka_keys[0], "bootstrap.servers");
        check_str(c.kafka_vals[0], "localhost:9092");

        /* sorted by priority, highest first */
        CU_ASSERT_EQUAL_FATAL(c.rules.n, 3);
        check_str(c.rules.rule[0].name, "gold_tier");
        check_str(c.rules.rule[1].name, "winback");
        check_str(c.rules.rule[2].name, "second_purchase");

        r = &c.rules.rule[0];
        CU_ASSERT_EQUAL_FATAL(r->nterms, 1);
        check_term(&r->terms[0], "tier", LOY_OP_GE, 2);
        CU_ASSERT_EQUAL(r->on, LOY_ON_EVENT);
        CU_ASSERT_EQUAL(r->purchase_only, 1);
        check_str(r->reward_kind, "points");
        CU_ASSERT_EQUAL(r->reward_value, 500);
        check_str(r->reward_currency, "");
        CU_ASSERT_EQUAL(r->reward_expiry_days, 30); /* default */
        CU_ASSERT_EQUAL(r->cooldown_days, 3650);
        CU_ASSERT_EQUAL(r->priority, 20);
        CU_ASSERT_EQUAL(r->holdout_pct, 0);

        r = &c.rules.rule[1];
        CU_ASSERT_EQUAL_FATAL(r->nterms, 3);
        check_term(&r->terms[0], "churn_prob", LOY_OP_GE, 0.5);
        check_term(&r->terms[1], "frequency", LOY_OP_GE, 2);
        check_term(&r->terms[2], "monetary", LOY_OP_GE, 250);
        CU_ASSERT_EQUAL(r->on, LOY_ON_ANY);
        CU_ASSERT_EQUAL(r->purchase_only, 0);
        check_str(r->reward_kind, "coupon");
        CU_ASSERT_EQUAL(r->reward_value, 15);
        CU_ASSERT_EQUAL(r->reward_expiry_days, 30);
        CU_ASSERT_EQUAL(r->cooldown_days, 90);
        CU_ASSERT_EQUAL(r->priority, 10);
        CU_ASSERT_EQUAL(r->holdout_pct, 10);

        r = &c.rules.rule[2];
        CU_ASSERT_EQUAL_FATAL(r->nterms, 2);
        check_term(&r->terms[0], "frequency", LOY_OP_EQ, 1);
        check_term(&r->terms[1], "orders", LOY_OP_GE, 1);
        CU_ASSERT_EQUAL(r->on, LOY_ON_EVENT);
        CU_ASSERT_EQUAL(r->purchase_only, 1);
        check_str(r->reward_kind, "coupon");
        CU_ASSERT_EQUAL(r->reward_value, 10);
        CU_ASSERT_EQUAL(r->reward_expiry_days, 45);
        CU_ASSERT_EQUAL(r->cooldown_days, 365);
        CU_ASSERT_EQUAL(r->priority, 5);
        CU_ASSERT_EQUAL(r->holdout_pct, 0);
        loy_config_free(&c);
}

/* Comments, blanks, CRLF, loading on top of earlier values, a rule split
 * over two sections. */
static void test_load_syntax(void) {
        loy_config_t c;
        char err[512] = "";
        const loy_rule_t *r;

        loy_config_defaults(&c);
        CU_ASSERT_EQUAL_FATAL(
            load_text(&c,
                      "  # comment\r\n"
                      "\r\n"
                      "[ input ]\r\n"
                      "  batch.max   =   7   # trailing comment\r\n"
                      "topic.browse =\r\n"
                      "[rule a]\n"
                      "when = orders>=2\n"
                      "[redis]\n"
                      "namespace = shop1\n"
                      "[rule a]\n"
                      "priority = -3\n"
                      "on = timer\n"
                      "purchase_only = true\n"
                      "reward.currency = EUR\n",
                      err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.batch_max, 7);
        check_str(c.topic_browse, "");
        check_str(c.redis_ns, "shop1");
        CU_ASSERT_EQUAL_FATAL(c.rules.n, 1);
        r = &c.rules.rule[0];
        check_str(r->name, "a");
        CU_ASSERT_EQUAL_FATAL(r->nterms, 1);
        check_term(&r->terms[0], "orders", LOY_OP_GE, 2);
        CU_ASSERT_EQUAL(r->priority, -3);
        CU_ASSERT_EQUAL(r->on, LOY_ON_TIMER);
        CU_ASSERT_EQUAL(r->purchase_only, 1);
        check_str(r->reward_currency, "EUR");

        /* a second file changes only what it names */
        CU_ASSERT_EQUAL_FATAL(
            load_text(&c,
                      "[input]\nbatch.ms = 250\n"
                      "[rule b]\nwhen = clv > 100\npriority = 4\n"
                      "[rule a]\npurchase_only = no\n",
                      err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.batch_max, 7);
        CU_ASSERT_EQUAL(c.batch_ms, 250);
        check_str(c.redis_ns, "shop1");
        CU_ASSERT_EQUAL_FATAL(c.rules.n, 2);
        check_str(c.rules.rule[0].name, "b"); /* 4 before -3 */
        check_str(c.rules.rule[1].name, "a");
        r = rule_by_name(&c, "a");
        CU_ASSERT_EQUAL(r->purchase_only, 0);
        CU_ASSERT_EQUAL(r->priority, -3);
        CU_ASSERT_EQUAL(r->nterms, 1);

        /* numbers: exponent, sign, whole-valued double for an int */
        CU_ASSERT_EQUAL(
            load_text(&c,
                      "[input]\nbatch.max = 1e3\n[scoring]\nmargin = .25\n"
                      "[clock]\nlateness.ms = 2000.0\n",
                      err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.batch_max, 1000);
        CU_ASSERT_EQUAL(c.margin, 0.25);
        CU_ASSERT_EQUAL(c.lateness_ms, 2000);

        /* bounds are inclusive */
        CU_ASSERT_EQUAL(
            load_text(&c,
                      "[avro]\nschema.trigger = 2147483647\n"
                      "[redis]\ncache.customers = 16\nport = 65535\n",
                      err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.schema_trigger, 2147483647);
        CU_ASSERT_EQUAL(c.cache_customers, 16);
        CU_ASSERT_EQUAL(c.redis_port, 65535);
        loy_config_free(&c);
}

/* The Redis credentials: a password file relative to the config file,
 * read by loy_config_redis_opts (first line, without its line end), and
 * the errors of each way it can be wrong. */
static void test_redis_secret(void) {
        loy_config_t c;
        loy_rconn_opts_t o;
        char err[512] = "", want[700], dir[] = "/tmp/loy_secret_XXXXXX";
        char path[600], secret[600], pw[64];
        FILE *fp;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/x.conf", dir);
        snprintf(secret, sizeof(secret), "%s/redis.pw", dir);
        fp = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("[redis]\nuser = loyaltyd\npassword.file = redis.pw\n"
              "db = 3\nconnect.timeout.ms = 700\ntimeout.ms = 900\n",
              fp);
        fclose(fp);
        fp = fopen(secret, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("s3cret pass\r\nsecond line\n", fp);
        fclose(fp);

        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(loy_config_load(&c, path, err, sizeof(err)), 0);
        check_str(c.redis_password_file, secret);
        CU_ASSERT_EQUAL(
            loy_config_redis_opts(&c, &o, pw, sizeof(pw), err, sizeof(err)), 0);
        check_str(o.password, "s3cret pass");
        check_str(o.user, "loyaltyd");
        CU_ASSERT_EQUAL(o.db, 3);
        CU_ASSERT_EQUAL(o.connect_timeout_ms, 700);
        CU_ASSERT_EQUAL(o.command_timeout_ms, 900);

        /* an empty first line is no password */
        fp = fopen(secret, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("\nx\n", fp);
        fclose(fp);
        CU_ASSERT_EQUAL(
            loy_config_redis_opts(&c, &o, pw, sizeof(pw), err, sizeof(err)),
            -1);
        snprintf(want, sizeof(want),
                 "%s:1: redis.password.file: the first "
                 "line is empty",
                 secret);
        check_str(err, want);

        /* one that does not fit is not cut */
        fp = fopen(secret, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        for (int i = 0; i < 80; i++)
                fputc('p', fp);
        fclose(fp);
        CU_ASSERT_EQUAL(
            loy_config_redis_opts(&c, &o, pw, sizeof(pw), err, sizeof(err)),
            -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "secret longer than 62 bytes"));

        unlink(secret);
        CU_ASSERT_EQUAL(
            loy_config_redis_opts(&c, &o, pw, sizeof(pw), err, sizeof(err)),
            -1);
        snprintf(want, sizeof(want),
                 "%s: redis.password.file: No such file "
                 "or directory",
                 secret);
        check_str(err, want);

        /* a password in the file itself, and both at once */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "redis.password.file", "", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "redis.password", "inline",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&c, "-X", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(
            loy_config_redis_opts(&c, &o, pw, sizeof(pw), err, sizeof(err)), 0);
        check_str(o.password, "inline");
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "redis.password.file", "f",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&c, "-X", err, sizeof(err)), -1);
        check_str(err, "-X: redis.password: set redis.password or "
                       "redis.password.file, not both");
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "redis.db", "-1", err, sizeof(err)), -1);
        unlink(path);
        rmdir(dir);
        loy_config_free(&c);
}

static void test_model_path(void) {
        loy_config_t c;
        char err[512] = "", want[600], dir[] = "/tmp/loy_confdir_XXXXXX";
        char path[600];
        FILE *fp;

        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(
            load_text(&c, "[scoring]\nmodel = m.bin\n", err, sizeof(err)), 0);
        check_str(c.model_path, "/tmp/m.bin");

        CU_ASSERT_EQUAL(load_text(&c, "[scoring]\nmodel = /opt/x/m.bin\n", err,
                                  sizeof(err)),
                        0);
        check_str(c.model_path, "/opt/x/m.bin");

        /* a file that does not name the model leaves it alone */
        snprintf(c.model_path, sizeof(c.model_path), "keep.bin");
        CU_ASSERT_EQUAL(
            load_text(&c, "[input]\nbatch.max = 5\n", err, sizeof(err)), 0);
        check_str(c.model_path, "keep.bin");

        /* the same relative name as the current value is still this
         * file's relative path */
        snprintf(c.model_path, sizeof(c.model_path), "model.default");
        CU_ASSERT_EQUAL(load_text(&c, "[scoring]\nmodel = model.default\n", err,
                                  sizeof(err)),
                        0);
        check_str(c.model_path, "/tmp/model.default");

        /* a sub folder of a folder */
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/x.conf", dir);
        fp = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("[scoring]\nmodel = sub/m.bin\n", fp);
        fclose(fp);
        CU_ASSERT_EQUAL(loy_config_load(&c, path, err, sizeof(err)), 0);
        snprintf(want, sizeof(want), "%s/sub/m.bin", dir);
        check_str(c.model_path, want);
        unlink(path);
        rmdir(dir);
        loy_config_free(&c);
}

static void test_load_errors(void) {
        char text[400];
        loy_config_t c;
        char err[512] = "";

        expect_load_error("[input]\nfoo = 1\n",
                          ":2: foo: unknown key in [input]");
        expect_load_error("[input]\n[nope]\nbatch.max = 1\n",
                          ":2: nope: unknown section");
        expect_load_error("[rule]\n", ":1: rule: unknown section");
        expect_load_error("\n[input\n", ":2: [input: malformed section");
        expect_load_error("[input] x\n", ":1: [input] x: malformed section");
        expect_load_error("# hello\nbatch.max = 5\n",
                          ":2: batch.max: key outside any [section]");
        expect_load_error("[input]\nbatch.max\n",
                          ":2: batch.max: expected key = value");
        expect_load_error("[kafka]\n = x\n", ":2: =: expected key = value");

        /* numbers */
        expect_load_error("[input]\nbatch.max = 12abc\n",
                          ":2: batch.max: '12abc' is not a number");
        expect_load_error("[input]\nbatch.max =\n",
                          ":2: batch.max: '' is not a number");
        expect_load_error("[scoring]\nmargin = nan\n",
                          ":2: margin: 'nan' is not a number");
        expect_load_error("[scoring]\nmargin = 1e999\n",
                          ":2: margin: '1e999' is not a number");
        expect_load_error("[input]\nbatch.max = 1.5\n",
                          ":2: batch.max: '1.5' is not a whole number");
        expect_load_error("[input]\nbatch.max = 0\n",
                          ":2: batch.max: 0 is out of range [1, 100000]");
        expect_load_error("[redis]\nport = 65536\n",
                          ":2: port: 65536 is out of range [1, 65535]");
        /* bounds printed in full, not rounded by %g */
        expect_load_error("[redis]\ncache.customers = 15\n",
                          ":2: cache.customers: 15 is out of range "
                          "[16, 100000000]");
        expect_load_error("[avro]\nschema.trigger = 2147483648\n",
                          ":2: schema.trigger: 2147483648 is out of range "
                          "[0, 2147483647]");
        expect_load_error("[scoring]\nmargin = -0.5\n",
                          ":2: margin: -0.5 is out of range [0, 1]");
        expect_load_error("[features]\nsession.gap.min = 0.05\n",
                          ":2: session.gap.min: 0.05 is out of range "
                          "[0.1, 10080]");
        expect_load_error("[rule r]\nwhen = orders >= 1\npriority = 1001\n",
                          ":3: priority: 1001 is out of range "
                          "[-1000, 1000]");

        /* bool, enum */
        expect_load_error("[rule r]\nwhen = orders >= 1\n"
                          "purchase_only = maybe\n",
                          ":3: purchase_only: 'maybe' is not yes/no");
        expect_load_error("[rule r]\nwhen = orders >= 1\non = Event\n",
                          ":3: on: 'Event' is not one of event|timer|any");

        /* strings: 127 characters fit topic.purchase[128], 128 do not */
        memset(text, 0, sizeof(text));
        strcpy(text, "[input]\ntopic.purchase = ");
        memset(text + strlen(text), 't', 127);
        strcat(text, "\n");
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(load_text(&c, text, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(strlen(c.topic_purchase), 127);
        loy_config_free(&c);
        text[strlen(text) - 1] = 't';
        strcat(text, "\n");
        expect_load_error(text, ":2: topic.purchase: longer than 127 "
                                "characters");
        expect_load_error("[rule r]\nwhen = orders >= 1\n"
                          "reward.currency = EURODOLLAR\n",
                          ":3: reward.currency: longer than 7 characters");

        /* rules */
        expect_load_error("[rule r]\nwhen = bogus >= 1\n",
                          ":2: when: unknown field 'bogus'");
        expect_load_error("[rule r]\nwhen = orders >= 1\nfoo = 2\n",
                          ":3: foo: unknown key in [rule r]");
        expect_load_error("[rule r]\npriority = 3\n[input]\nbatch.max = 9\n",
                          ": r: rule has no 'when' condition");
        /* an empty rule section is a rule without a condition */
        expect_load_error("[rule quiet]\n# nothing yet\n",
                          ": quiet: rule has no 'when' condition");
        expect_load_error("[input]\n[rule bad!name]\nwhen = orders >= 1\n",
                          ":2: bad!name: rule names use letters, digits, _ "
                          "and -");
        /* reported even when the section has no keys */
        expect_load_error("[rule a.b]\n",
                          ":1: a.b: rule names use letters, digits, _ and -");
        snprintf(text, sizeof(text), "[rule %s]\nwhen = orders >= 1\n",
                 "r23456789012345678901234567890123"); /* 33 */
        expect_load_error(text, ":1: rule: rule name must be 1 to 32 "
                                "characters");

        /* cross-field checks name no line */
        expect_load_error("[scoring]\nweight.recency = 0\n"
                          "weight.frequency = 0\nweight.monetary = 0\n",
                          ": scoring.weight.*: weights must not all be 0");
        expect_load_error("[input]\ntopic.purchase =\ntopic.browse =\n",
                          ": input.topic.*: no input topic");
        expect_load_error("[output]\ntopic.deadletter =\n",
                          ": output.topic.*: output topics must be set");

        /* a missing file */
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(
            loy_config_load(&c, "/tmp/loy_no_such.conf", err, sizeof(err)), -1);
        check_str(err, "/tmp/loy_no_such.conf: file: No such file or "
                       "directory");
        loy_config_free(&c);
}

static void test_set(void) {
        loy_config_t c;
        char err[512] = "";
        const loy_rule_t *r;

        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "redis.port", "6380", err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.redis_port, 6380);
        /* trailing blanks in a read-only string literal: parsed, not cut */
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "redis.port", "6381 ", err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(c.redis_port, 6381);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "input.topic.purchase",
                                       "orders", err, sizeof(err)),
                        0);
        check_str(c.topic_purchase, "orders");
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "features.tier.gold.points",
                                       "2500.5", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(c.feat.tier_gold_points, 2500.5);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "scoring.model", "rel.bin",
                                       err, sizeof(err)),
                        0);
        check_str(c.model_path, "rel.bin"); /* relative to the cwd */

        /* kafka pass-through: everything after "kafka." is the property */
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "kafka.foo", "bar", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "kafka.bootstrap.servers",
                                       "h:9092", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL_FATAL(c.nkafka, 2);
        check_str(c.kafka_keys[0], "foo");
        check_str(c.kafka_vals[0], "bar");
        check_str(c.kafka_keys[1], "bootstrap.servers");
        check_str(c.kafka_vals[1], "h:9092");

        /* rules */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.x.when",
                                       "orders >= 3 and clv > 50", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "rule.x.priority", "7", err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.x.reward.kind", "points",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "rule.x.on", "timer", err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL_FATAL(c.rules.n, 1);
        r = &c.rules.rule[0];
        check_str(r->name, "x");
        CU_ASSERT_EQUAL_FATAL(r->nterms, 2);
        check_term(&r->terms[0], "orders", LOY_OP_GE, 3);
        check_term(&r->terms[1], "clv", LOY_OP_GT, 50);
        CU_ASSERT_EQUAL(r->priority, 7);
        check_str(r->reward_kind, "points");
        CU_ASSERT_EQUAL(r->on, LOY_ON_TIMER);
        /* a second rule of higher priority sorts first */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.z-2.when", "tier >= 1",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.z-2.priority", "9", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL_FATAL(c.rules.n, 2);
        /* sorted by the check after the last set */
        CU_ASSERT_EQUAL(loy_config_check(&c, "-X", err, sizeof(err)), 0);
        check_str(c.rules.rule[0].name, "z-2");
        check_str(c.rules.rule[1].name, "x");
        /* replacing a condition replaces all its terms */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.x.when", "points > 1",
                                       err, sizeof(err)),
                        0);
        r = rule_by_name(&c, "x");
        CU_ASSERT_EQUAL_FATAL(r->nterms, 1);
        check_term(&r->terms[0], "points", LOY_OP_GT, 1);

        /* errors carry the origin and no line */
        expect_set_error(&c, "noperiod", "1",
                         "-X: noperiod: expected "
                         "section.key");
        expect_set_error(&c, "bogus.key", "1",
                         "-X: bogus.key: unknown "
                         "section");
        expect_set_error(&c, "redis.nope", "1",
                         "-X: nope: unknown key in "
                         "[redis]");
        expect_set_error(&c, "redis.port", "x",
                         "-X: port: 'x' is not a "
                         "number");
        /* junk then blanks, in a read-only literal: reported, not cut */
        expect_set_error(&c, "redis.port", "1 x ",
                         "-X: port: '1 x ' is not "
                         "a number");
        expect_set_error(&c, "redis.port", "0",
                         "-X: port: 0 is out of "
                         "range [1, 65535]");
        expect_set_error(&c, "kafka.", "x",
                         "-X: kafka.: expected "
                         "section.key");
        expect_set_error(&c, "rule.x", "1",
                         "-X: rule.x: expected "
                         "rule.<name>.key");
        expect_set_error(&c, "rule.x.when", "nope > 1",
                         "-X: when: unknown field 'nope'");
        expect_set_error(&c, "rule.x.bad", "1",
                         "-X: bad: unknown key in "
                         "[rule x]");
        expect_set_error(&c, "rule.b@d.when", "orders > 1",
                         "-X: b@d: rule names use letters, digits, _ and -");
        /* a rule is complete only with a condition: keys may come in any
         * order, the check after the last one says so */
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "rule.y.priority", "1", err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(loy_config_check(&c, "-X", err, sizeof(err)), -1);
        check_str(err, "-X: y: rule has no 'when' condition");
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.y.when", "orders > 2",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&c, "-X", err, sizeof(err)), 0);
        /* failed sets left the good values alone */
        CU_ASSERT_EQUAL(c.redis_port, 6381);
        loy_config_free(&c);
        CU_ASSERT_EQUAL(c.nkafka, 0);
}

static void test_kafka_props(void) {
        loy_config_t c;
        char err[512] = "", key[32];

        loy_config_defaults(&c);
        CU_ASSERT_EQUAL_FATAL(load_text(&c,
                                        "[kafka]\n"
                                        "bootstrap.servers = a:1\n"
                                        "client.id = me\n"
                                        "bootstrap.servers = b:2\n"
                                        "sasl.jaas.config = x=y z=w\n",
                                        err, sizeof(err)),
                              0);
        CU_ASSERT_EQUAL_FATAL(c.nkafka, 3);
        check_str(c.kafka_keys[0], "bootstrap.servers");
        check_str(c.kafka_vals[0], "b:2");
        check_str(c.kafka_keys[1], "client.id");
        check_str(c.kafka_vals[1], "me");
        check_str(c.kafka_keys[2], "sasl.jaas.config");
        check_str(c.kafka_vals[2], "x=y z=w");
        /* the command line replaces (the old value is freed: ASan) */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "kafka.bootstrap.servers",
                                       "c:3", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(c.nkafka, 3);
        check_str(c.kafka_vals[0], "c:3");
        loy_config_free(&c);
        CU_ASSERT_EQUAL(c.nkafka, 0);

        /* at most LOY_KAFKA_PROPS_MAX distinct properties */
        loy_config_defaults(&c);
        for (int i = 0; i < LOY_KAFKA_PROPS_MAX; i++) {
                snprintf(key, sizeof(key), "kafka.p%d", i);
                CU_ASSERT_EQUAL(
                    loy_config_set(&c, "-X", key, "v", err, sizeof(err)), 0);
        }
        CU_ASSERT_EQUAL(c.nkafka, LOY_KAFKA_PROPS_MAX);
        expect_set_error(&c, "kafka.one.more", "v",
                         "-X: one.more: more than 64 kafka properties");
        /* an existing one can still be replaced when full */
        CU_ASSERT_EQUAL(
            loy_config_set(&c, "-X", "kafka.p63", "w", err, sizeof(err)), 0);
        check_str(c.kafka_vals[63], "w");
        CU_ASSERT_EQUAL(c.nkafka, LOY_KAFKA_PROPS_MAX);
        loy_config_free(&c);
}

/* How often "key = default" (prefix: "" or "# ") stands in section sec of
 * text; sec NULL: anywhere. */
static int count_key_line(const char *text, const char *sec, const char *prefix,
                          const loy_confmap_t *row) {
        char want[1024], section[64] = "";
        const char *p = text;
        int n = 0;
        snprintf(want, sizeof(want), "%s%s =%s%s", prefix, row->name,
                 row->def[0] ? " " : "", row->def);
        while (*p) {
                size_t len = strcspn(p, "\n");
                if (p[0] == '[')
                        snprintf(section, sizeof(section), "%.*s",
                                 (int)strcspn(p + 1, "]"), p + 1);
                else if (len == strlen(want) && !strncmp(p, want, len) &&
                         (!sec || !strcmp(section, sec)))
                        n++;
                p += len;
                if (*p)
                        p++;
        }
        return n;
}

static void test_reference(void) {
        loy_config_t def, c;
        char err[512] = "", *text = NULL;
        size_t len = 0, nsec, nrows = 0;
        const loy_config_section_t *sec = loy_config_sections(&nsec);
        FILE *mem;
        int fd, nkeys = 0;

        mem = open_memstream(&text, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
        loy_confdoc_reference(mem);
        fclose(mem);

        /* every row of every table, once, in its section, at its default */
        for (size_t i = 0; i < nsec; i++)
                for (int m = 0; m < 2 && sec[i].maps[m]; m++)
                        for (const loy_confmap_t *row = sec[i].maps[m];
                             row->name; row++, nrows++) {
                                int n =
                                    count_key_line(text, sec[i].name, "", row);
                                CU_ASSERT_EQUAL(n, 1);
                                if (n != 1)
                                        fprintf(stderr, "\n[%s] %s: %d times\n",
                                                sec[i].name, row->name, n);
                        }
        for (const loy_confmap_t *row = loy_rule_map; row->name; row++)
                CU_ASSERT_EQUAL(count_key_line(text, NULL, "# ", row), 1);
        /* and nothing else */
        for (const char *p = text; *p; p += strcspn(p, "\n"), p += !!*p)
                if (*p != '#' && *p != '[' && *p != '\n')
                        nkeys++;
        CU_ASSERT_EQUAL((size_t)nkeys, nrows);
        /* the modules' tables are in it: a key of each */
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nmax_basket = 20\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\ntier.gold.points = 2000\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nschema.trigger = 3\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n[kafka]\n"));

        /* read back as it is: the defaults, model relative to its folder */
        snprintf(tmp_path, sizeof(tmp_path), "/tmp/loy_conf_XXXXXX");
        fd = mkstemp(tmp_path);
        CU_ASSERT_FATAL(fd != -1);
        CU_ASSERT_EQUAL((size_t)write(fd, text, len), len);
        close(fd);
        loy_config_defaults(&def);
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(loy_config_load(&c, tmp_path, err, sizeof(err)), 0);
        if (*err)
                fprintf(stderr, "\n%s\n", err);
        unlink(tmp_path);
        check_str(c.model_path, "/tmp/model.default");
        /* same bytes everywhere else */
        memset(c.model_path, 0, sizeof(c.model_path));
        memset(def.model_path, 0, sizeof(def.model_path));
        CU_ASSERT_EQUAL(memcmp(&c, &def, sizeof(c)), 0);
        CU_ASSERT_EQUAL(c.nkafka, 0);
        CU_ASSERT_EQUAL(c.rules.n, 0);
        loy_config_free(&c);
        loy_config_free(&def);
        free(text);
}

/* Regression (fuzz_config): a rule's reward.kind "c\x01\x18p\xcbon" was
 * accepted, and its triggers could not be read back as JSON ("avro:
 * Cannot allocate JSON string"): string values must be UTF-8. */
static void test_utf8(void) {
        loy_config_t c;
        char err[512] = "";

        expect_load_error("[rule winback]\nwhen = clv > 1\n"
                          "reward.kind = c\x01\x18p\xcbon\n",
                          ":3: reward.kind: not valid UTF-8");
        expect_load_error("[redis]\nnamespace = loy\xc0\xaf\n",
                          ":2: namespace: not valid UTF-8");
        expect_load_error("[rule a]\nwhen = clv > 1\n"
                          "reward.currency = \xed\xa0\x80\n",
                          ":3: reward.currency: not valid UTF-8");
        loy_config_defaults(&c);
        expect_set_error(&c, "rule.x.reward.kind", "coupon\xff",
                         "-X: reward.kind: not valid UTF-8");
        /* real UTF-8 is fine */
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.x.reward.kind",
                                       "bon-d'achat-\xc3\xa9t\xc3\xa9", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&c, "-X", "rule.x.reward.currency",
                                       "\xe2\x82\xac", err, sizeof(err)),
                        0);
        loy_config_free(&c);
}

/* loy_config_load_buffer (for fuzz_config): the shipped file from memory
 * gives what the file gives; errors name the buffer; no NUL needed at the
 * end. */
static void test_load_buffer(void) {
        loy_config_t a, b;
        char err[512] = "", path[1024], *text;
        long n;
        FILE *fp;

        snprintf(path, sizeof(path), "%s", tu_src_path("config/loyaltyd.conf"));
        fp = fopen(path, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fseek(fp, 0, SEEK_END);
        n = ftell(fp);
        rewind(fp);
        text = malloc((size_t)n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_EQUAL_FATAL(fread(text, 1, (size_t)n, fp), (size_t)n);
        fclose(fp);

        loy_config_defaults(&a);
        loy_config_defaults(&b);
        CU_ASSERT_EQUAL_FATAL(loy_config_load(&a, path, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(
            loy_config_load_buffer(&b, path, text, (size_t)n, err, sizeof(err)),
            0);
        check_str(b.model_path, a.model_path);
        check_str(b.topic_purchase, a.topic_purchase);
        CU_ASSERT_EQUAL(b.cache_customers, a.cache_customers);
        CU_ASSERT_EQUAL(b.rules.n, a.rules.n);
        for (int i = 0; i < a.rules.n && i < b.rules.n; i++)
                check_str(b.rules.rule[i].name, a.rules.rule[i].name);
        CU_ASSERT_EQUAL_FATAL(b.nkafka, a.nkafka);
        for (int i = 0; i < a.nkafka; i++) {
                check_str(b.kafka_keys[i], a.kafka_keys[i]);
                check_str(b.kafka_vals[i], a.kafka_vals[i]);
        }
        loy_config_free(&a);
        loy_config_free(&b);
        free(text);

        /* no newline at the end, and no NUL: only len bytes are read */
        loy_config_defaults(&b);
        CU_ASSERT_EQUAL(loy_config_load_buffer(&b, "mem.conf",
                                               "[input]\nbatch.max = 7XYZ", 21,
                                               err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(b.batch_max, 7);
        CU_ASSERT_EQUAL(loy_config_load_buffer(&b, "mem.conf",
                                               "[input]\nbatch.max = 0", 21,
                                               err, sizeof(err)),
                        -1);
        check_str(err, "mem.conf:2: batch.max: 0 is out of range [1, 100000]");
        /* an empty buffer is an empty file: the defaults stand */
        CU_ASSERT_EQUAL(
            loy_config_load_buffer(&b, "mem.conf", NULL, 0, err, sizeof(err)),
            0);
        loy_config_free(&b);
}

/* The whole of file path (malloc'd, NUL-terminated), or NULL. */
static char *slurp(const char *path, size_t *len) {
        FILE *fp = fopen(path, "r");
        char *buf = NULL;
        size_t size = 0;
        FILE *mem;
        int ch;
        if (!fp)
                return NULL;
        mem = open_memstream(&buf, &size);
        if (!mem) {
                fclose(fp);
                return NULL;
        }
        while ((ch = fgetc(fp)) != EOF)
                fputc(ch, mem);
        fclose(fp);
        fclose(mem);
        *len = size;
        return buf;
}

/* The first line where got and the file differ, said on stderr. */
static void same_as_file(const char *got, size_t got_len, const char *rel) {
        size_t len = 0, line = 1;
        char *want = slurp(tu_src_path(rel), &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        CU_ASSERT(len == got_len && !memcmp(want, got, len));
        for (size_t i = 0; i < len && i < got_len; i++) {
                if (want[i] != got[i]) {
                        fprintf(stderr,
                                "\n%s:%zu differs from what the tables "
                                "generate: make config regenerates it\n",
                                rel, line);
                        break;
                }
                line += want[i] == '\n';
        }
        if (len != got_len)
                fprintf(stderr,
                        "\n%s: %zu bytes, the tables make %zu: make "
                        "config regenerates it\n",
                        rel, len, got_len);
        free(want);
}

static void test_generated_files(void) {
        char err[512] = "", *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
        CU_ASSERT_EQUAL(
            loy_confdoc_filled(mem, tu_src_path("config/loyaltyd.conf.in"), err,
                               sizeof(err)),
            0);
        fclose(mem);
        if (*err)
                fprintf(stderr, "\n%s\n", err);
        same_as_file(text, len, "config/loyaltyd.conf");
        free(text);

        text = NULL;
        mem = open_memstream(&text, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
        loy_confdoc_markdown(mem);
        fclose(mem);
        same_as_file(text, len, "docs/configuration.md");
        /* every key of every table is documented there */
        for (const loy_confmap_t *row = loy_reco_conf_map; row->name; row++) {
                char cell[128];
                snprintf(cell, sizeof(cell), "| `%s` |", row->name);
                CU_ASSERT_PTR_NOT_NULL(strstr(text, cell));
        }
        free(text);
}

/* A template filled in: its values set, every other key commented out at
 * its default, its comments kept with their key, the rules copied. */
static void test_filled(void) {
        char err[512] = "", *text = NULL;
        size_t len = 0;
        loy_config_t c, def;
        FILE *mem;
        CU_ASSERT_EQUAL_FATAL(
            write_tmp("# my shop\n\n[reco]\n# few items\nmax_basket = 7\n"
                      "[input]\nbatch.max = 10   # small\n"
                      "[kafka]\nbootstrap.servers = b:9092\n"
                      "# the one rule\n[rule r]\nwhen = orders >= 1\n"),
            0);
        mem = open_memstream(&text, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
        CU_ASSERT_EQUAL(loy_confdoc_filled(mem, tmp_path, err, sizeof(err)), 0);
        fclose(mem);
        unlink(tmp_path);
        CU_ASSERT(!strncmp(text, "# my shop\n\n[input]\n", 19));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n# few items\nmax_basket = 7\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "; default 20)\n# few items\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nbatch.max = 10   # small\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n# top_k = 20\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(
            text, "\n[kafka]\nbootstrap.servers = b:9092\n# the one rule\n"
                  "[rule r]\nwhen = orders >= 1\n"));
        /* [input] comes first, as in the tables, not as in the template */
        CU_ASSERT(strstr(text, "[input]") < strstr(text, "[reco]"));

        /* and it loads to what the template says */
        CU_ASSERT_EQUAL_FATAL(write_tmp(text), 0);
        loy_config_defaults(&c);
        CU_ASSERT_EQUAL(loy_config_load(&c, tmp_path, err, sizeof(err)), 0);
        unlink(tmp_path);
        loy_config_defaults(&def);
        CU_ASSERT_EQUAL(c.reco.max_basket, 7);
        CU_ASSERT_EQUAL(c.batch_max, 10);
        CU_ASSERT_EQUAL(c.reco.top_k, def.reco.top_k);
        CU_ASSERT_EQUAL(c.rules.n, 1);
        loy_config_free(&c);
        free(text);
}

/* What a template must not do, with file, line and key. */
static void expect_filled_error(const char *tmpl, const char *suffix) {
        char err[512] = "";
        FILE *null = fopen("/dev/null", "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(null);
        CU_ASSERT_EQUAL_FATAL(write_tmp(tmpl), 0);
        CU_ASSERT_EQUAL(loy_confdoc_filled(null, tmp_path, err, sizeof(err)),
                        -1);
        fclose(null);
        unlink(tmp_path);
        CU_ASSERT(strlen(err) >= strlen(suffix) &&
                  !strcmp(err + strlen(err) - strlen(suffix), suffix));
        CU_ASSERT(!strncmp(err, tmp_path, strlen(tmp_path)));
        if (strlen(err) < strlen(suffix) ||
            strcmp(err + strlen(err) - strlen(suffix), suffix))
                fprintf(stderr, "\n got '%s'\nwant '...%s'\n", err, suffix);
}

static void test_filled_errors(void) {
        expect_filled_error("[redis]\nport = 0\n",
                            ":2: port: 0 is out of range [1, 65535]");
        expect_filled_error("[redis]\nport = 7000\n# loose\n\n[input]\n",
                            ":3: comment: in a table section a comment must "
                            "sit right above its key (every key's doc comes "
                            "from the tables)");
        expect_filled_error("[kafka]\na = b\n[redis]\nport = 1\n",
                            ":3: [redis]: sections with keys of their own "
                            "come before [kafka] and the rules");
}

/* The table type itself: types, bounds, enums, MiB, checks. */
typedef struct cm_test {
        int n, e;
        double d;
        size_t bytes;
        char s[4];
} cm_test_t;

static void test_confmap(void) {
        cm_test_t v = {0};
        static const char *const names[] = {"zero", NULL, "two"};
        const loy_confmap_t map[] = {
            {"n", LOY_CM_INT, offsetof(cm_test_t, n), sizeof(int), "3", -5, 5,
             "an int", NULL, NULL},
            {"e", LOY_CM_ENUM, offsetof(cm_test_t, e), sizeof(int), "two", 0, 3,
             "an enum", names, NULL},
            {"d", LOY_CM_DBL, offsetof(cm_test_t, d), sizeof(double), "0.5", 0,
             1, "a double", NULL, NULL},
            {"m", LOY_CM_MIB, offsetof(cm_test_t, bytes), sizeof(size_t), "2",
             1, 8, "MiB", NULL, NULL},
            {"s", LOY_CM_STR, offsetof(cm_test_t, s), 4, "abc", 0, 0,
             "a string", NULL, NULL},
            {0},
        };
        char why[200], names_buf[64];
        CU_ASSERT_EQUAL(loy_confmap_defaults(map, &v, why, sizeof(why)), 0);
        CU_ASSERT_EQUAL(v.n, 3);
        CU_ASSERT_EQUAL(v.e, 2);
        CU_ASSERT_EQUAL(v.d, 0.5);
        CU_ASSERT_EQUAL(v.bytes, 2u << 20);
        CU_ASSERT_STRING_EQUAL(v.s, "abc");
        CU_ASSERT_PTR_EQUAL(loy_confmap_find(map, "m"), &map[3]);
        CU_ASSERT_PTR_NULL(loy_confmap_find(map, "x"));

        CU_ASSERT_EQUAL(loy_confmap_set(&map[0], &v, "-6", why, sizeof(why)),
                        -1);
        check_str(why, "-6 is out of range [-5, 5]");
        CU_ASSERT_EQUAL(loy_confmap_set(&map[0], &v, "1.5", why, sizeof(why)),
                        -1);
        check_str(why, "'1.5' is not a whole number");
        CU_ASSERT_EQUAL(loy_confmap_set(&map[1], &v, "zero", why, sizeof(why)),
                        0);
        CU_ASSERT_EQUAL(v.e, 0);
        /* a value without a name cannot be written */
        CU_ASSERT_EQUAL(loy_confmap_set(&map[1], &v, "", why, sizeof(why)), -1);
        check_str(why, "'' is not one of zero|two");
        check_str(loy_confmap_type_name(&map[1], names_buf, sizeof(names_buf)),
                  "zero|two");
        CU_ASSERT_EQUAL(loy_confmap_set(&map[3], &v, "8", why, sizeof(why)), 0);
        CU_ASSERT_EQUAL(v.bytes, 8u << 20);
        CU_ASSERT_EQUAL(loy_confmap_set(&map[4], &v, "abcd", why, sizeof(why)),
                        -1);
        check_str(why, "longer than 3 characters");
        CU_ASSERT_STRING_EQUAL(v.s, "abc");
        CU_ASSERT_EQUAL(loy_confmap_set(&map[2], &v, "nan", why, sizeof(why)),
                        -1);

        /* a struct filled in code is checked against the same bounds */
        CU_ASSERT_EQUAL(loy_confmap_check(map, &v, why, sizeof(why)), 0);
        v.d = 1.5;
        CU_ASSERT_EQUAL(loy_confmap_check(map, &v, why, sizeof(why)), -1);
        check_str(why, "d = 1.5 is out of range [0, 1]");
        v.d = NAN;
        CU_ASSERT_EQUAL(loy_confmap_check(map, &v, why, sizeof(why)), -1);
        v.d = 0;
        v.bytes = 1000;
        CU_ASSERT_EQUAL(loy_confmap_check(map, &v, why, sizeof(why)), -1);
}

/* The modules' defaults are their tables': what loy_config and reco-eval
 * use is what the reference documents. */
static void test_module_defaults(void) {
        loy_reco_conf_t rc;
        loy_feat_conf_t fc;
        loy_rule_t r;
        char why[200];
        loy_reco_conf_default(&rc);
        CU_ASSERT_EQUAL(rc.max_basket, 20);
        CU_ASSERT_EQUAL(rc.w_browse, 0.3);
        CU_ASSERT_EQUAL(rc.mem_limit, 64u << 20);
        CU_ASSERT_EQUAL(
            loy_confmap_check(loy_reco_conf_map, &rc, why, sizeof(why)), 0);
        loy_feat_conf_default(&fc);
        CU_ASSERT_EQUAL(fc.tier_gold_points, 2000);
        loy_rule_init(&r, "x");
        CU_ASSERT_EQUAL(r.on, LOY_ON_ANY);
        CU_ASSERT_EQUAL(r.cooldown_days, 30);
        CU_ASSERT_STRING_EQUAL(r.reward_kind, "coupon");
        CU_ASSERT_EQUAL(r.nterms, 0);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("config", NULL, NULL);
        if (!s || !CU_add_test(s, "defaults", test_defaults) ||
            !CU_add_test(s, "load shipped loyaltyd.conf", test_load_shipped) ||
            !CU_add_test(s, "syntax and layering", test_load_syntax) ||
            !CU_add_test(s, "model path", test_model_path) ||
            !CU_add_test(s, "redis credentials", test_redis_secret) ||
            !CU_add_test(s, "load errors", test_load_errors) ||
            !CU_add_test(s, "set", test_set) ||
            !CU_add_test(s, "kafka properties", test_kafka_props) ||
            !CU_add_test(s, "reference reads back", test_reference) ||
            !CU_add_test(s, "load from a buffer", test_load_buffer) ||
            !CU_add_test(s, "strings are UTF-8", test_utf8) ||
            !CU_add_test(s, "shipped config and docs are generated",
                         test_generated_files) ||
            !CU_add_test(s, "a template filled in", test_filled) ||
            !CU_add_test(s, "template errors", test_filled_errors) ||
            !CU_add_test(s, "settings tables", test_confmap) ||
            !CU_add_test(s, "module defaults", test_module_defaults)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
