/*
 * End-to-end: events into librdkafka's mock Kafka cluster, the processor
 * (the same code loyaltyd runs, in a thread), a real redis-server; then the
 * exact Redis fields and trigger records that come out.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "loy_codec.h"
#include "loy_config.h"
#include "loy_feat.h"
#include "loy_log.h"
#include "loy_proc.h"
#include "loy_rules.h"
#include "loy_source.h"
#include "loy_time.h"
#include "tu.h"

#define DAY 86400000LL
#define T0 1291190400000LL /* 2010-12-01T08:00:00Z */

static tu_redis_t redis;
static tu_kafka_t *kafka;
static int topic_seq;

typedef struct runner {
        pthread_t th;
        loy_proc_t *proc;
        volatile sig_atomic_t running, reload;
        int rc;
        volatile int done; /* loy_proc_run returned */
} runner_t;

static void *run_thread(void *arg) {
        runner_t *r = arg;
        r->rc = loy_proc_run(r->proc, &r->running, &r->reload);
        r->done = 1;
        return NULL;
}

/* A config on fresh topic names (one set per test), the shipped rules. */
static void make_conf(loy_config_t *conf, const char *group) {
        char err[512], v[64];
        int n = ++topic_seq;
        loy_config_defaults(conf);
        CU_ASSERT_EQUAL_FATAL(
            loy_config_load(conf, tu_src_path("config/loyaltyd.conf"), err,
                            sizeof(err)),
            0);
        snprintf(conf->topic_purchase, sizeof(conf->topic_purchase),
                 "purchases%d", n);
        snprintf(conf->topic_browse, sizeof(conf->topic_browse), "browse%d", n);
        snprintf(conf->topic_triggers, sizeof(conf->topic_triggers),
                 "triggers%d", n);
        snprintf(conf->topic_deadletter, sizeof(conf->topic_deadletter),
                 "dead%d", n);
        snprintf(conf->group_id, sizeof(conf->group_id), "%s", group);
        /* several processors at once: no fixed port (test_metrics_http
         * asks for one) */
        conf->http_listen[0] = '\0';
        snprintf(v, sizeof(v), "%d", redis.port);
        CU_ASSERT_EQUAL(
            loy_config_set(conf, "test", "redis.port", v, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(loy_config_set(conf, "test", "kafka.bootstrap.servers",
                                       tu_kafka_bootstraps(kafka), err,
                                       sizeof(err)),
                        0);
        /* the mock coordinator holds a re-join for session.timeout - 1 s */
        loy_config_set(conf, "test", "kafka.session.timeout.ms", "6000", err,
                       sizeof(err));
        conf->batch_ms = 50;
        conf->idle_ms = 300;
        conf->redis_timeout_ms = 500;
        conf->backoff_max_ms = 200;
        tu_kafka_topic(kafka, conf->topic_purchase, 2);
        tu_kafka_topic(kafka, conf->topic_browse, 2);
        tu_kafka_topic(kafka, conf->topic_triggers, 1);
        tu_kafka_topic(kafka, conf->topic_deadletter, 1);
}

/* Runs a processor on conf in a thread; fn, when set, after each batch's
 * aggregates (loy_proc_set_after_agg_hook). */
static void start_hooked(runner_t *r, const loy_config_t *conf,
                         loy_store_hook_fn *fn, void *opaque) {
        char err[512];
        memset(r, 0, sizeof(*r));
        r->running = 1;
        r->proc = loy_proc_create(conf, err, sizeof(err));
        if (!r->proc)
                fprintf(stderr, "proc: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->proc);
        if (fn)
                loy_proc_set_after_agg_hook(r->proc, fn, opaque);
        pthread_create(&r->th, NULL, run_thread, r);
}

static void start(runner_t *r, const loy_config_t *conf) {
        start_hooked(r, conf, NULL, NULL);
}

static void stop(runner_t *r) {
        r->running = 0;
        pthread_join(r->th, NULL);
        CU_ASSERT_EQUAL(r->rc, 0);
        loy_proc_destroy(r->proc);
}

static long long stat_of(const char *field) {
        char args[128];
        char *v;
        long long n;
        snprintf(args, sizeof(args), "HGET loy:stats %s", field);
        v = tu_redis_cli(&redis, args);
        n = v ? atoll(v) : 0;
        free(v);
        return n;
}

/* Waits (up to 30 s) until the processor has consumed n messages. */
static int wait_consumed(const runner_t *r, long long n) {
        for (int i = 0; i < 600; i++) {
                if (loy_proc_stats(r->proc)->events_in >= n &&
                    loy_proc_stats(r->proc)->batches > 0 &&
                    stat_of("events_in") >= n)
                        return 0;
                usleep(50000);
        }
        return -1;
}

/* As the engine has it (a customer's packed field decoded). */
static char *hget(const char *key, const char *field) {
        return tu_redis_field(&redis, key, field);
}

#define ASSERT_FIELD(key, field, expect)                                       \
        do {                                                                   \
                char *v_ = hget(key, field);                                   \
                CU_ASSERT_PTR_NOT_NULL(v_);                                    \
                if (v_ && strcmp(v_, expect))                                  \
                        fprintf(stderr, "%s %s: got '%s' want '%s'\n", key,    \
                                field, v_, expect);                            \
                CU_ASSERT_STRING_EQUAL(v_ ? v_ : "", expect);                  \
                free(v_);                                                      \
        } while (0)

static void json_purchase(char *buf, size_t size, const char *eid,
                          const char *cid, long long ts, const char *lines) {
        snprintf(buf, size,
                 "{\"event_id\":\"%s\",\"customer_id\":\"%s\",\"ts\":%lld,"
                 "\"order_id\":\"o-%s\",\"lines\":[%s]}",
                 eid, cid, ts, eid, lines);
}

/* Collected trigger records, decoded to JSON. */
#define SEEN_MAX 1024

typedef struct seen {
        char *json[SEEN_MAX];
        char key[SEEN_MAX][64];
        int n;
        int more; /* beyond SEEN_MAX */
        loy_codec_t *codec;
} seen_t;

static void on_trigger(const char *key, const void *val, size_t len,
                       const char *headers, int32_t partition, int64_t offset,
                       void *opaque) {
        seen_t *s = opaque;
        char err[256];
        (void)headers;
        (void)partition;
        (void)offset;
        if (s->n == SEEN_MAX) {
                s->more++;
                return;
        }
        snprintf(s->key[s->n], sizeof(s->key[0]), "%s", key ? key : "");
        s->json[s->n] =
            loy_codec_trigger_to_json(s->codec, val, len, err, sizeof(err));
        s->n++;
}

static void seen_free(seen_t *s) {
        for (int i = 0; i < s->n; i++)
                free(s->json[i]);
        loy_codec_destroy(s->codec);
}

static void collect_triggers(const char *topic, seen_t *s) {
        char err[256];
        memset(s, 0, sizeof(*s));
        s->codec = loy_codec_create(NULL, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s->codec);
        tu_kafka_consume_all(kafka, topic, 500, on_trigger, s);
}

static const char *jstr(json_t *o, const char *path1, const char *path2) {
        json_t *v = json_object_get(o, path1);
        if (path2)
                v = json_object_get(v, path2);
        /* Avro JSON wraps union branches: {"string": "..."} */
        if (json_is_object(v) && json_object_get(v, "string"))
                v = json_object_get(v, "string");
        return json_is_string(v) ? json_string_value(v) : "";
}

static double jnum(json_t *o, const char *path1, const char *path2) {
        json_t *v = json_object_get(o, path1);
        if (path2)
                v = json_object_get(v, path2);
        return json_number_value(v);
}

/* One customer's purchases, a same-day order, a return and a view: every
 * feature field and the one trigger are exactly as worked out by hand. */
static void test_exact_state_and_trigger(void) {
        loy_config_t conf;
        runner_t r;
        char msg[512], expect_id[33], cause[256];
        seen_t seen;
        json_t *t;
        const char *key = "loy:c:{c1}";

        make_conf(&conf, "exact");
        /* day 0: 2 x 10 + 1 x 5 = 25 */
        json_purchase(msg, sizeof(msg), "e1", "c1", T0,
                      "{\"sku\":\"A\",\"quantity\":2,\"unit_price\":10},"
                      "{\"sku\":\"B\",\"quantity\":1,\"unit_price\":5}");
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c1", msg, strlen(msg));
        /* day 10: 10, and 6 later that day (one purchase day) */
        json_purchase(msg, sizeof(msg), "e2", "c1", T0 + 10 * DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":10}");
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c1", msg, strlen(msg));
        json_purchase(msg, sizeof(msg), "e3", "c1", T0 + 10 * DAY + 3600000,
                      "{\"sku\":\"C\",\"quantity\":3,\"unit_price\":2}");
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c1", msg, strlen(msg));
        /* day 20: returns one A */
        json_purchase(msg, sizeof(msg), "e4", "c1", T0 + 20 * DAY,
                      "{\"sku\":\"A\",\"quantity\":-1,\"unit_price\":10}");
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c1", msg, strlen(msg));

        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 4), 0);
        /* The view is produced after the purchases are applied, when the
         * browse partition was read to its end: a late event, applied when
         * it comes (docs/guarantees.md). */
        snprintf(msg, sizeof(msg),
                 "{\"event_id\":\"b1\",\"customer_id\":\"c1\",\"ts\":%lld,"
                 "\"session_id\":\"s1\",\"action\":\"view\",\"sku\":\"D\"}",
                 T0 + 21 * DAY);
        tu_kafka_produce(kafka, conf.topic_browse, 1, "c1", msg, strlen(msg));
        CU_ASSERT_EQUAL(wait_consumed(&r, 5), 0);
        stop(&r);

        ASSERT_FIELD(key, "orders", "3");
        ASSERT_FIELD(key, "frequency", "2");
        ASSERT_FIELD(key, "gross_value", "41");
        ASSERT_FIELD(key, "first_day_value", "25");
        ASSERT_FIELD(key, "returns", "1");
        ASSERT_FIELD(key, "return_value", "10");
        ASSERT_FIELD(key, "monetary", "31");
        ASSERT_FIELD(key, "mean_repeat_value", "16");
        ASSERT_FIELD(key, "ipt_mean_days", "10");
        ASSERT_FIELD(key, "first_purchase_ms", "1291190400000");
        /* day 10, one hour later: the same purchase day */
        ASSERT_FIELD(key, "last_purchase_ms", "1292058000000");
        ASSERT_FIELD(key, "last_event_ms", "1293004800000"); /* day 21 */
        ASSERT_FIELD(key, "points", "31");
        ASSERT_FIELD(key, "views", "1");
        ASSERT_FIELD(key, "recent_views", "D");
        ASSERT_FIELD(key, "x", "1");
        ASSERT_FIELD(key, "t_x_days", "10.041666666666666");
        ASSERT_FIELD(key, "off:purchases1:1", "3");
        ASSERT_FIELD(key, "off:browse1:1", "0");
        ASSERT_FIELD(key, "cool:second_purchase", "1291190400000");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-01", "purchases", "1");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-01", "new_customers", "1");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-01", "revenue", "25");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-01", "triggers:second_purchase",
                     "1");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-11", "purchases", "2");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-11", "repeat_purchases", "2");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-11", "repurchase_rate", "1.0000");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-01", "repurchase_rate", "0.0000");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-21", "returns", "1");
        ASSERT_FIELD("loy:{agg}:kpi:2010-12-21", "return_value", "10");
        ASSERT_FIELD("loy:stats", "events_in", "5");
        {
                /* P(alive) from the shipped model is a probability, churn
                 * its complement */
                char *pa = hget(key, "p_alive"), *cp = hget(key, "churn_prob");
                CU_ASSERT(pa && cp && fabs(atof(pa) + atof(cp) - 1) < 1e-9);
                CU_ASSERT(pa && atof(pa) > 0 && atof(pa) <= 1);
                free(pa);
                free(cp);
        }

        /* The second_purchase rule fires on the first order only (it is in
         * cooldown afterwards); its id is a function of rule, customer and
         * cause. */
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT_EQUAL(seen.n, 1);
        if (seen.n == 1) {
                CU_ASSERT_STRING_EQUAL(seen.key[0], "c1");
                t = json_loads(seen.json[0], 0, NULL);
                CU_ASSERT_PTR_NOT_NULL_FATAL(t);
                snprintf(cause, sizeof(cause), "%s:1:0", conf.topic_purchase);
                loy_trigger_id("second_purchase", "c1", cause, expect_id);
                CU_ASSERT_STRING_EQUAL(jstr(t, "trigger_id", NULL), expect_id);
                CU_ASSERT_STRING_EQUAL(jstr(t, "rule", NULL),
                                       "second_purchase");
                CU_ASSERT_STRING_EQUAL(jstr(t, "customer_id", NULL), "c1");
                CU_ASSERT_STRING_EQUAL(jstr(t, "reward", "kind"), "coupon");
                CU_ASSERT_DOUBLE_EQUAL(jnum(t, "reward", "value"), 10, 1e-9);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                                    json_object_get(t, "reward"), "expiry_ts")),
                                T0 + 45 * DAY);
                CU_ASSERT_STRING_EQUAL(jstr(t, "cause", "topic"),
                                       conf.topic_purchase);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                                    json_object_get(t, "cause"), "offset")),
                                0);
                CU_ASSERT_STRING_EQUAL(jstr(t, "cause", "event_id"), "e1");
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                                    json_object_get(t, "scores"), "frequency")),
                                1);
                CU_ASSERT_DOUBLE_EQUAL(jnum(t, "scores", "monetary"), 25, 1e-9);
                CU_ASSERT_STRING_EQUAL(jstr(t, "model_version", NULL),
                                       "default-1");
                /* when e1 fired the model knew e1's items; "B" is on the
                 * non-product list (Online Retail's bank-charge code) */
                {
                        json_t *recs = json_object_get(t, "recommendations");
                        CU_ASSERT_EQUAL(json_array_size(recs), 1);
                        CU_ASSERT_STRING_EQUAL(
                            jstr(json_array_get(recs, 0), "item", NULL), "A");
                }
                CU_ASSERT_EQUAL(
                    json_integer_value(json_object_get(t, "event_time")), T0);
                json_decref(t);
        }
        /* the customer's current top items: the products it met (B and
         * D are non-product codes) */
        {
                char *n = tu_redis_cli(&redis, "ZRANGE loy:c:{c1}:recs 0 -1");
                CU_ASSERT(n && (!strcmp(n, "A\nC") || !strcmp(n, "C\nA")));
                free(n);
        }
        /* delivered, so the outbox is empty again */
        {
                char *n = tu_redis_cli(&redis, "HLEN loy:outbox");
                CU_ASSERT_STRING_EQUAL(n ? n : "", "0");
                free(n);
        }
        seen_free(&seen);
        loy_config_free(&conf);
}

/* Dumps every key but loy:stats as sorted text, to compare states. */
static char *dump_state(void) {
        return tu_redis_cli(
            &redis,
            "--no-raw EVAL \"local out = {} "
            "for _, k in ipairs(redis.call('KEYS', '*')) do "
            "if k ~= 'loy:stats' then "
            "local t = redis.call('TYPE', k)['ok'] "
            "local v = t == 'hash' and redis.call('HGETALL', k) or "
            "t == 'string' and {redis.call('GET', k)} or "
            "t == 'stream' and {} or "
            "redis.call('ZRANGE', k, 0, -1, 'WITHSCORES') "
            "if t == 'stream' then "
            "for _, e in ipairs(redis.call('XRANGE', k, '-', '+')) do "
            "table.insert(v, e[1] .. '{' .. table.concat(e[2], ',') .. '}') "
            "end end "
            "table.insert(out, k .. '=' .. table.concat(v, ',')) end end "
            "table.sort(out) return table.concat(out, '\\n')\" 0");
}

/* dump_state() of what must not depend on the batching: hash fields
 * sorted, zero counts of the histograms left out (a bin that emptied);
 * without the recommendations and the shared item model (at-least-once,
 * their scores depend on when the model was flushed: docs/guarantees.md)
 * and the aggregate fence (where the last batches moved their customers:
 * bookkeeping of the batches themselves); without the closed KPI days
 * (snapshots: this input has events later than the clock, which move a
 * day's hash after the day may have closed, depending on the batching). */
static char *dump_comparable(void) {
        return tu_redis_cli(
            &redis,
            "--no-raw EVAL \"local out = {} "
            "for _, k in ipairs(redis.call('KEYS', '*')) do "
            "if k ~= 'loy:stats' and k ~= 'loy:{agg}:fence' and "
            "k ~= 'loy:{agg}:kpi_closed' and "
            "not k:find(':recs$') and not k:find('^loy:i:') then "
            "local t = redis.call('TYPE', k)['ok'] local v "
            "if t == 'hash' then "
            "local h = redis.call('HGETALL', k) local p = {} "
            "for i = 1, #h, 2 do "
            "if not (k:find('^loy:{agg}:hist') and h[i + 1] == '0') then "
            "table.insert(p, h[i] .. ':' .. h[i + 1]) end end "
            "table.sort(p) v = p "
            "elseif t == 'string' then v = {redis.call('GET', k)} "
            "elseif t == 'stream' then v = {} "
            "for _, e in ipairs(redis.call('XRANGE', k, '-', '+')) do "
            "table.insert(v, e[1] .. '{' .. table.concat(e[2], ',') .. '}') "
            "end "
            "else v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES') end "
            "table.insert(out, k .. '=' .. table.concat(v, ',')) end end "
            "table.sort(out) return table.concat(out, '\\n')\" 0");
}

static int64_t produce_file(const char *topic, const char *path, int skip,
                            int limit) {
        int64_t n = tu_produce_file(kafka, topic, path, skip, limit);
        CU_ASSERT_FATAL(n >= 0);
        return n;
}

/* Replaying the same topic from the beginning (a new consumer group) skips
 * every event: the state is byte-for-byte the same, no second trigger. */
static void test_replay_changes_nothing(void) {
        loy_config_t conf;
        runner_t r;
        char *before, *after;
        seen_t s1, s2;
        int64_t n;

        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "replay-a");
        n = produce_file(conf.topic_purchase,
                         tu_src_path("tests/data/online_retail_head300.csv"), 0,
                         0);
        CU_ASSERT(n > 10);
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, n), 0);
        stop(&r);
        collect_triggers(conf.topic_triggers, &s1);
        CU_ASSERT(s1.n > 0);
        before = dump_state();

        snprintf(conf.group_id, sizeof(conf.group_id), "replay-b");
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, n), 0);
        CU_ASSERT_EQUAL(loy_proc_stats(r.proc)->events_skipped_dup, n);
        CU_ASSERT_EQUAL(loy_proc_stats(r.proc)->events_applied, 0);
        stop(&r);
        after = dump_state();
        CU_ASSERT_PTR_NOT_NULL(before);
        CU_ASSERT(before && strlen(before) > 1000);
        if (before && after && strcmp(before, after)) {
                FILE *fb = fopen("/tmp/replay_before.txt", "w");
                FILE *fa = fopen("/tmp/replay_after.txt", "w");
                if (fb) {
                        fputs(before, fb);
                        fclose(fb);
                }
                if (fa) {
                        fputs(after, fa);
                        fclose(fa);
                }
        }
        CU_ASSERT_STRING_EQUAL(before ? before : "x", after ? after : "y");
        collect_triggers(conf.topic_triggers, &s2);
        CU_ASSERT_EQUAL(s2.n, s1.n);
        free(before);
        free(after);
        seen_free(&s1);
        seen_free(&s2);
        loy_config_free(&conf);
}

/* A producer that retried: the same event_id again on another offset and
 * partition, once in the same run and once after a restart (the window is
 * in the customer's packed state), is applied once; a new id is. */
static void test_same_event_id_again(void) {
        loy_config_t conf;
        runner_t r;
        char e1[512], e2[512];
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "eid-again");
        json_purchase(e1, sizeof(e1), "retry-1", "c77", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":4}");
        json_purchase(e2, sizeof(e2), "retry-2", "c77", T0 + 1000,
                      "{\"sku\":\"B\",\"quantity\":1,\"unit_price\":6}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "c77", e1, strlen(e1));
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c77", e1, strlen(e1));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        stop(&r);
        ASSERT_FIELD("loy:c:{c77}", "orders", "1");
        ASSERT_FIELD("loy:c:{c77}", "gross_value", "4");

        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c77", e1, strlen(e1));
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "c77", e2, strlen(e2));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        CU_ASSERT_EQUAL(loy_proc_stats(r.proc)->events_duplicate_id, 1);
        CU_ASSERT_EQUAL(loy_proc_stats(r.proc)->events_applied, 1);
        stop(&r);
        ASSERT_FIELD("loy:c:{c77}", "orders", "2");
        ASSERT_FIELD("loy:c:{c77}", "gross_value", "10");
        ASSERT_FIELD("loy:stats", "events_duplicate_id", "2");
        loy_config_free(&conf);
}

/* The segment counts as the customer hashes have them ("name=count" lines,
 * sorted), and as loy:{agg}:seg has them (zeros left out). */
static char *seg_recount(void) {
        return tu_redis_cli(
            &redis, "EVAL \"local n = {} "
                    "for _, k in ipairs(redis.call('KEYS', 'loy:c:{*}')) do "
                    "local s = redis.call('HGET', k, 'segment_name') "
                    "if s then n[s] = (n[s] or 0) + 1 end end "
                    "local out = {} for s, v in pairs(n) do "
                    "table.insert(out, s .. '=' .. v) end "
                    "table.sort(out) return table.concat(out, ' ')\" 0");
}

static char *seg_counts(void) {
        return tu_redis_cli(
            &redis,
            "EVAL \"local h = redis.call('HGETALL', 'loy:{agg}:seg') "
            "local out = {} for i = 1, #h, 2 do if h[i + 1] ~= '0' then "
            "table.insert(out, h[i] .. '=' .. h[i + 1]) end end "
            "table.sort(out) return table.concat(out, ' ')\" 0");
}

#define ASSERT_CLI(args, expect)                                               \
        do {                                                                   \
                char *v_ = tu_redis_cli(&redis, args);                         \
                CU_ASSERT_PTR_NOT_NULL(v_);                                    \
                if (v_ && strcmp(v_, expect))                                  \
                        fprintf(stderr, "%s: got '%s' want '%s'\n", args, v_,  \
                                expect);                                       \
                CU_ASSERT_STRING_EQUAL(v_ ? v_ : "", expect);                  \
                free(v_);                                                      \
        } while (0)

static void assert_counts_agree(void) {
        char *want = seg_recount(), *got = seg_counts();
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        if (strcmp(want, got))
                fprintf(stderr, "seg: hashes %s, counts %s\n", want, got);
        CU_ASSERT_STRING_EQUAL(got, want);
        free(want);
        free(got);
}

/* loyaltyctl forget, as a shop runs it while loyaltyd runs: the customer
 * is erased everywhere and counted out; its old events, read again or
 * produced again, do not bring it back; a purchase after the erasure
 * starts a new customer. */
static void test_forget(void) {
        loy_config_t conf;
        runner_t r;
        char cmd[1024], msg[512], *out;
        int64_t n, at_ms;
        int st;
        FILE *fp;

        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "forget-a");
        n = produce_file(conf.topic_purchase,
                         tu_src_path("tests/data/online_retail_head300.csv"), 0,
                         0);
        start(&r, &conf);
        CU_ASSERT_EQUAL_FATAL(wait_consumed(&r, n), 0);
        ASSERT_FIELD("loy:c:{17850}", "orders", "7");
        ASSERT_CLI("EXISTS loy:c:{17850}:rh", "1");
        ASSERT_CLI("EXISTS loy:c:{17850}:recs", "1");
        ASSERT_CLI("EVAL \"return redis.call('ZSCORE', 'loy:rank:churn', "
                   "'17850') and 1 or 0\" 0",
                   "1");
        ASSERT_CLI("EVAL \"return (redis.call('ZSCORE', 'loy:timers:0', "
                   "'17850') or redis.call('ZSCORE', 'loy:timers:1', "
                   "'17850')) and 1 or 0\" 0",
                   "1");
        assert_counts_agree();

        /* the real tool, its request through Kafka to this processor */
        at_ms = loy_time_wall_ms();
        snprintf(cmd, sizeof(cmd),
                 "%s forget -X kafka.bootstrap.servers=%s -X redis.port=%d "
                 "-X input.topic.purchase=%s -T %lld -w 30 17850 "
                 ">/tmp/loy_forget_out.txt 2>&1",
                 tu_build_path("loyaltyctl"), tu_kafka_bootstraps(kafka),
                 redis.port, conf.topic_purchase, (long long)at_ms);
        st = system(cmd);
        fp = fopen("/tmp/loy_forget_out.txt", "r");
        out = calloc(1, 4096);
        if (fp && out)
                CU_ASSERT(fread(out, 1, 4095, fp) > 0);
        if (fp)
                fclose(fp);
        if (st)
                fprintf(stderr, "forget: %s", out ? out : "");
        CU_ASSERT_EQUAL(st, 0);
        CU_ASSERT(out && strstr(out, "forgotten 17850"));
        free(out);
        CU_ASSERT_EQUAL(wait_consumed(&r, n + 1), 0);
        stop(&r);

        snprintf(msg, sizeof(msg), "%lld", (long long)at_ms);
        ASSERT_CLI("HGET loy:c:{17850} forgotten_ms", msg);
        ASSERT_CLI("HGET loy:c:{17850} orders", "");
        ASSERT_CLI("HGET loy:c:{17850} segment_name", "");
        ASSERT_CLI("EXISTS loy:c:{17850}:rh", "0");
        ASSERT_CLI("EXISTS loy:c:{17850}:recs", "0");
        ASSERT_CLI("EVAL \"return (redis.call('ZSCORE', 'loy:rank:churn', "
                   "'17850') or redis.call('ZSCORE', 'loy:rank:clv', "
                   "'17850') or redis.call('ZSCORE', 'loy:timers:0', "
                   "'17850') or redis.call('ZSCORE', 'loy:timers:1', "
                   "'17850')) and 1 or 0\" 0",
                   "0");
        ASSERT_CLI("HLEN loy:outbox", "0");
        ASSERT_FIELD("loy:stats", "customers_forgotten", "1");
        assert_counts_agree();

        /* a new group reads everything again: skipped by the fences the
         * record kept; then an old order of 17850's produced again (a new
         * offset) is dropped, and one after the erasure is a new start */
        snprintf(conf.group_id, sizeof(conf.group_id), "forget-b");
        json_purchase(msg, sizeof(msg), "again-1", "17850", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":4}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "17850", msg,
                         strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, n + 2), 0);
        stop(&r);
        ASSERT_FIELD("loy:stats", "events_forgotten", "1");
        ASSERT_CLI("HGET loy:c:{17850} orders", "");
        start(&r, &conf);
        json_purchase(msg, sizeof(msg), "after-1", "17850", at_ms + 1000,
                      "{\"sku\":\"B\",\"quantity\":1,\"unit_price\":6}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "17850", msg,
                         strlen(msg));
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        stop(&r);
        ASSERT_FIELD("loy:c:{17850}", "orders", "1");
        ASSERT_FIELD("loy:c:{17850}", "gross_value", "6");
        snprintf(msg, sizeof(msg), "%lld", (long long)at_ms);
        ASSERT_FIELD("loy:c:{17850}", "forgotten_ms", msg);
        ASSERT_CLI("EVAL \"return redis.call('ZSCORE', 'loy:rank:churn', "
                   "'17850') and 1 or 0\" 0",
                   "1");
        assert_counts_agree();
        loy_config_free(&conf);
}

/* "18,532": numbers as the page prints them (en-US grouping). */
static void grouped(long long v, char *out, size_t size) {
        char digits[32];
        size_t n, o = 0;
        snprintf(digits, sizeof(digits), "%lld", v);
        n = strlen(digits);
        for (size_t i = 0; i < n && o + 2 < size; i++) {
                if (i && (n - i) % 3 == 0)
                        out[o++] = ',';
                out[o++] = digits[i];
        }
        out[o] = '\0';
}

/* A dashboard process: its pid from the shell, its port from the URL it
 * prints. */
typedef struct dash_proc {
        FILE *out;
        pid_t pid;
        int port;
} dash_proc_t;

static int dash_start(dash_proc_t *d, int redis_port) {
        char cmd[1024], line[512];
        memset(d, 0, sizeof(*d));
        snprintf(cmd, sizeof(cmd),
                 "sh -c 'echo $$; exec %s dashboard -X redis.port=%d "
                 "-l 127.0.0.1:0 -d 400' 2>/dev/null",
                 tu_build_path("loyaltyctl"), redis_port);
        if (!(d->out = popen(cmd, "r")))
                return -1;
        if (!fgets(line, sizeof(line), d->out))
                return -1;
        d->pid = (pid_t)atoi(line);
        if (!fgets(line, sizeof(line), d->out) ||
            sscanf(line, "dashboard: http://127.0.0.1:%d/", &d->port) != 1)
                return -1;
        return 0;
}

static void dash_stop(dash_proc_t *d) {
        if (d->pid > 0)
                kill(d->pid, SIGTERM);
        if (d->out)
                pclose(d->out);
}

/* What headless Chromium renders of url (its DOM after the scripts ran),
 * with a screenshot to png when not NULL. NULL when it cannot run. */
static char *chromium(const char *url, const char *png) {
        char cmd[2048];
        FILE *fp;
        char *dom = NULL;
        size_t n = 0, cap = 0;
        int c;
        if (png) {
                snprintf(cmd, sizeof(cmd),
                         "chromium --headless --no-sandbox --disable-gpu "
                         "--hide-scrollbars --window-size=1280,1500 "
                         "--virtual-time-budget=5000 --screenshot=%s '%s' "
                         ">/dev/null 2>&1",
                         png, url);
                if (system(cmd) != 0)
                        return NULL;
        }
        snprintf(cmd, sizeof(cmd),
                 "chromium --headless --no-sandbox --disable-gpu "
                 "--virtual-time-budget=5000 --dump-dom '%s' 2>/dev/null",
                 url);
        if (!(fp = popen(cmd, "r")))
                return NULL;
        while ((c = fgetc(fp)) != EOF) {
                if (n + 2 > cap) {
                        char *g = realloc(dom, cap = cap ? 2 * cap : 65536);
                        if (!g)
                                break;
                        dom = g;
                }
                dom[n++] = (char)c;
        }
        if (dom)
                dom[n] = '\0';
        if (pclose(fp) != 0) {
                free(dom);
                return NULL;
        }
        return dom;
}

/* Every panel of the shipped Grafana dashboard reads a key loyaltyd wrote,
 * of the type its command reads, and charts fields the key holds. */
static void check_grafana_dashboard(void) {
        json_t *g = json_load_file(
            tu_src_path("examples/grafana/loyaltyd.json"), 0, NULL);
        json_t *panel;
        size_t i;
        int checked = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        json_array_foreach(json_object_get(g, "panels"), i, panel) {
                json_t *t =
                    json_array_get(json_object_get(panel, "targets"), 0);
                const char *cmd =
                    json_string_value(json_object_get(t, "command"));
                const char *key =
                    json_string_value(json_object_get(t, "keyName"));
                json_t *names = json_object_get(
                    json_object_get(
                        json_object_get(
                            json_array_get(
                                json_object_get(panel, "transformations"), 0),
                            "options"),
                        "include"),
                    "names");
                json_t *name;
                size_t j;
                char q[256], *type;
                CU_ASSERT_PTR_NOT_NULL_FATAL(cmd);
                CU_ASSERT_PTR_NOT_NULL_FATAL(key);
                snprintf(q, sizeof(q), "TYPE %s", key);
                type = tu_redis_cli(&redis, q);
                if (!type || strcmp(type, !strcmp(cmd, "xrange")    ? "stream"
                                          : !strcmp(cmd, "hgetall") ? "hash"
                                                                    : "?"))
                        fprintf(stderr, "grafana: %s %s is a %s\n", cmd, key,
                                type ? type : "(none)");
                CU_ASSERT_STRING_EQUAL(type ? type : "",
                                       !strcmp(cmd, "xrange")    ? "stream"
                                       : !strcmp(cmd, "hgetall") ? "hash"
                                                                 : "?");
                free(type);
                json_array_foreach(names, j, name) {
                        const char *f = json_string_value(name);
                        char *has;
                        if (!f || !strcmp(f, "$time"))
                                continue;
                        /* the newest closed day holds the field */
                        snprintf(q, sizeof(q),
                                 "EVAL \"local e = redis.call('XREVRANGE', "
                                 "KEYS[1], '+', '-', 'COUNT', 1)[1][2] "
                                 "for i = 1, #e, 2 do if e[i] == ARGV[1] then "
                                 "return 1 end end return 0\" 1 %s %s",
                                 key, f);
                        has = tu_redis_cli(&redis, q);
                        if (!has || strcmp(has, "1"))
                                fprintf(stderr, "grafana: %s has no %s\n", key,
                                        f);
                        CU_ASSERT_STRING_EQUAL(has ? has : "", "1");
                        free(has);
                }
                checked++;
        }
        CU_ASSERT(checked >= 5);
        json_decref(g);
}

/* The KPI days closed (*closed) against the days before the one that
 * stays open (*before: the day of the clock, or of the earliest silence
 * check due by it that has not fired). 0 when they are the same number
 * and every check due by the clock has fired: between two batches of
 * checks the numbers agree too, on a day that is still to move. */
static int closed_days(long long *closed, long long *before) {
        char q[160], *v;
        long long bound, clock;
        v = tu_redis_cli(&redis, "HGET loy:stats clock_ms");
        bound = clock = v ? atoll(v) : 0;
        free(v);
        for (int p = 0; p < 2; p++) {
                snprintf(q, sizeof(q),
                         "ZRANGEBYSCORE loy:timers:%d -inf %lld WITHSCORES "
                         "LIMIT 0 1",
                         p, bound);
                v = tu_redis_cli(&redis, q);
                if (v && strchr(v, '\n') && atoll(strchr(v, '\n') + 1) < bound)
                        bound = atoll(strchr(v, '\n') + 1);
                free(v);
        }
        snprintf(q, sizeof(q),
                 "EVAL \"return redis.call('ZCOUNT', KEYS[1], '-inf', "
                 "'(%lld')\" 1 loy:{agg}:kpi_days",
                 bound / DAY);
        v = tu_redis_cli(&redis, q);
        *before = v ? atoll(v) : -1;
        free(v);
        v = tu_redis_cli(&redis, "XLEN loy:{agg}:kpi_closed");
        *closed = v ? atoll(v) : -2;
        free(v);
        return *closed == *before && bound == clock ? 0 : -1;
}

/* 20,000 orders of the real file (a year): every KPI day is indexed, every day
 * before the clock's is closed into the stream exactly as its hash stands (the
 * input is in time order: nothing late), and loyaltyctl dashboard shows
 * what Redis holds, as JSON and as the page a browser renders. */
static void test_dashboard(void) {
        loy_config_t conf;
        runner_t r;
        dash_proc_t d;
        char *body = NULL, *dom, *days_list, url[128], want[96], num[32],
             png[1024];
        long long closed = 0, open_from = 0;
        json_t *doc = NULL, *days;
        long long purchases = 0;
        int64_t n;
        int ndays = 0;

        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "dashboard");
        n = produce_file(conf.topic_purchase,
                         tu_src_path("../shared/data/online_retail.csv.gz"), 0,
                         20000);
        CU_ASSERT_EQUAL_FATAL(n, 20000);
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, n), 0);

        /* closed: every day before the clock's, or before the earliest
         * silence check still to fire (a batch fires a bounded number; the
         * processor keeps at it while idle) */
        for (int i = 0; i < 600 && closed_days(&closed, &open_from) != 0; i++)
                usleep(100000);
        stop(&r);
        CU_ASSERT_EQUAL(closed_days(&closed, &open_from), 0);
        CU_ASSERT(closed >= 200);

        /* the index holds every day there is a hash for */
        days_list = tu_redis_cli(&redis, "ZRANGE loy:{agg}:kpi_days 0 -1");
        CU_ASSERT_PTR_NOT_NULL_FATAL(days_list);
        for (char *l = days_list; *l;
             l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
                ndays++;
        CU_ASSERT(ndays > closed);
        ASSERT_CLI("EVAL \"return #redis.call('KEYS', 'loy:{agg}:kpi:*')\" 0",
                   (snprintf(num, sizeof(num), "%d", ndays), num));
        ASSERT_CLI("EVAL \"local bad = 0 "
                   "for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', "
                   "'+')) do "
                   "local f = e[2] local h = redis.call('HGETALL', "
                   "'loy:{agg}:kpi:' .. f[2]) "
                   "if #h + 2 ~= #f then bad = bad + 1 end "
                   "for i = 3, #f, 2 do "
                   "if redis.call('HGET', 'loy:{agg}:kpi:' .. f[2], f[i]) ~= "
                   "f[i + 1] then bad = bad + 1 end end "
                   "if tonumber(string.match(e[1], '^%d+')) ~= "
                   "86400000 * redis.call('ZSCORE', 'loy:{agg}:kpi_days', "
                   "f[2]) then bad = bad + 1 end end "
                   "return bad\" 1 loy:{agg}:kpi_closed",
                   "0");
        free(days_list);

        check_grafana_dashboard();

        /* the JSON: the days as the hashes hold them, the boards, the
         * health */
        CU_ASSERT_EQUAL_FATAL(dash_start(&d, redis.port), 0);
        CU_ASSERT_EQUAL(tu_http(d.port, "GET", "/api/summary", &body), 200);
        doc = body ? json_loads(body, 0, NULL) : NULL;
        CU_ASSERT_PTR_NOT_NULL(doc);
        days = json_object_get(doc, "days");
        CU_ASSERT_EQUAL(json_array_size(days), (size_t)ndays);
        for (size_t i = 0; i < json_array_size(days); i++) {
                json_t *day = json_array_get(days, i);
                char key[64];
                char *v;
                snprintf(key, sizeof(key), "HGET loy:{agg}:kpi:%s purchases",
                         json_string_value(json_object_get(day, "day")));
                v = tu_redis_cli(&redis, key);
                CU_ASSERT_EQUAL(
                    json_integer_value(json_object_get(day, "purchases")),
                    v && *v ? atoll(v) : 0);
                purchases += v ? atoll(v) : 0;
                free(v);
                if (i) /* oldest first */
                        CU_ASSERT(
                            strcmp(json_string_value(json_object_get(
                                       json_array_get(days, i - 1), "day")),
                                   json_string_value(
                                       json_object_get(day, "day"))) < 0);
        }
        CU_ASSERT(purchases > 100);
        CU_ASSERT(json_integer_value(json_object_get(
                      json_object_get(doc, "health"), "events_in")) == n);
        {
                char *top = tu_redis_cli(&redis, "ZREVRANGE loy:rank:clv 0 0");
                json_t *first =
                    json_array_get(json_object_get(doc, "top_value"), 0);
                CU_ASSERT_PTR_NOT_NULL(first);
                const char *cust =
                    json_string_value(json_object_get(first, "customer"));
                CU_ASSERT_STRING_EQUAL(cust ? cust : "", top ? top : "x");
                free(top);
        }
        CU_ASSERT_EQUAL(json_array_size(json_object_get(doc, "segments")),
                        (size_t)LOY_SEG__COUNT);
        /* per rule: what the days' hashes sum to; a conversion is of a
         * trigger counted before it, so never more than the triggers */
        {
                static const char *const kinds[] = {
                    "triggers", "holdout", "converted", "holdout_converted"};
                const char *rule;
                json_t *counts;
                long long converted = 0;
                json_object_foreach(json_object_get(doc, "rules"), rule,
                                    counts) {
                        long long v[4];
                        for (int k = 0; k < 4; k++) {
                                char cmd[512], *got;
                                snprintf(cmd, sizeof(cmd),
                                         "EVAL \"local s = 0 for _, d in "
                                         "ipairs(redis.call('ZRANGE', "
                                         "KEYS[1], 0, -1)) do s = s + "
                                         "(tonumber(redis.call('HGET', "
                                         "'loy:{agg}:kpi:' .. d, ARGV[1])) "
                                         "or 0) end return s\" 1 "
                                         "loy:{agg}:kpi_days %s:%s",
                                         kinds[k], rule);
                                got = tu_redis_cli(&redis, cmd);
                                v[k] = json_integer_value(
                                    json_object_get(counts, kinds[k]));
                                CU_ASSERT_EQUAL(v[k], got ? atoll(got) : -1);
                                free(got);
                        }
                        CU_ASSERT(v[2] <= v[0] && v[3] <= v[1]);
                        converted += v[2];
                }
                CU_ASSERT(converted > 0);
        }
        json_decref(doc);
        free(body);
        body = NULL;
        CU_ASSERT_EQUAL(tu_http(d.port, "GET", "/api/summary?days=2", &body),
                        200);
        doc = body ? json_loads(body, 0, NULL) : NULL;
        CU_ASSERT_EQUAL(json_array_size(json_object_get(doc, "days")), 2);
        json_decref(doc);
        free(body);
        CU_ASSERT_EQUAL(tu_http(d.port, "GET", "/api/summary?days=x", NULL),
                        400);
        CU_ASSERT_EQUAL(tu_http(d.port, "GET", "/nothing", NULL), 404);

        /* the page, as a browser renders it */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/?days=400", d.port);
        snprintf(png, sizeof(png), "%s", tu_build_path("dashboard.png"));
        dom = chromium(url, png);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-loaded=\"1\""));
        grouped(purchases, num, sizeof(num));
        snprintf(want, sizeof(want), "id=\"total-purchases\">%s<", num);
        if (!strstr(dom, want))
                fprintf(stderr, "dashboard: no %s in the page\n", want);
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, want));
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<rect")); /* bars drawn */
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, ">champion<"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, ">holdout converted<"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, ">second_purchase<"));
        free(dom);
        {
                FILE *fp = fopen(png, "rb");
                unsigned char sig[8] = {0};
                CU_ASSERT_PTR_NOT_NULL(fp);
                if (fp) {
                        CU_ASSERT_EQUAL(fread(sig, 1, 8, fp), 8);
                        fseek(fp, 0, SEEK_END);
                        CU_ASSERT(ftell(fp) > 20000);
                        fclose(fp);
                }
                CU_ASSERT(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8));
        }
        dash_stop(&d);

        /* Redis unreachable: the API says why, the page shows it */
        CU_ASSERT_EQUAL_FATAL(dash_start(&d, tu_free_port()), 0);
        body = NULL;
        CU_ASSERT_EQUAL(tu_http(d.port, "GET", "/api/summary", &body), 503);
        CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "\"error\"") : NULL);
        free(body);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", d.port);
        dom = chromium(url, NULL);
        CU_ASSERT_PTR_NOT_NULL(dom ? strstr(dom, "data-loaded=\"error\"")
                                   : NULL);
        CU_ASSERT_PTR_NOT_NULL(dom ? strstr(dom, "cannot read") : NULL);
        free(dom);
        dash_stop(&d);
        loy_config_free(&conf);
}

/* Runs loyaltyctl with args; its exit status, its output in out. */
static int ctl(const char *args, char *out, size_t size) {
        char cmd[1536];
        FILE *fp;
        size_t n = 0;
        int st;
        snprintf(cmd, sizeof(cmd), "%s %s >/tmp/loy_pipe_ctl.txt 2>&1",
                 tu_build_path("loyaltyctl"), args);
        st = system(cmd);
        fp = fopen("/tmp/loy_pipe_ctl.txt", "r");
        if (fp) {
                n = fread(out, 1, size - 1, fp);
                fclose(fp);
        }
        out[n] = '\0';
        return st;
}

/* loyaltyctl expire: a customer silent too long is erased; one with an
 * event since the expiry was decided (still waiting in Kafka) is not. */
static void test_expire(void) {
        loy_config_t conf;
        runner_t r;
        char msg[512], args[1024], out[4096];
        const char *line = "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":5}";
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "expire");
        json_purchase(msg, sizeof(msg), "old-1", "old", T0, line);
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "old", msg,
                         strlen(msg));
        json_purchase(msg, sizeof(msg), "back-1", "back", T0, line);
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "back", msg,
                         strlen(msg));
        json_purchase(msg, sizeof(msg), "new-1", "new", T0 + 400 * DAY, line);
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "new", msg,
                         strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL_FATAL(wait_consumed(&r, 3), 0);
        stop(&r);
        /* comes back while loyaltyd is stopped: not applied yet when
         * expire looks */
        json_purchase(msg, sizeof(msg), "back-2", "back", T0 + 401 * DAY, line);
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "back", msg,
                         strlen(msg));
        snprintf(args, sizeof(args),
                 "expire -X kafka.bootstrap.servers=%s -X redis.port=%d "
                 "-X input.topic.purchase=%s -X privacy.expire.days=365",
                 tu_kafka_bootstraps(kafka), redis.port, conf.topic_purchase);
        {
                char dry[1100];
                snprintf(dry, sizeof(dry), "%s -n", args);
                CU_ASSERT_EQUAL(ctl(dry, out, sizeof(out)), 0);
                CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 of 3 customers silent "
                                                   "for more than 365 days"));
        }
        CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 0);
        if (!strstr(out, "requested 2 erasures"))
                fprintf(stderr, "expire: %s", out);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "requested 2 erasures"));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 3), 0);
        stop(&r);
        ASSERT_FIELD("loy:stats", "customers_forgotten", "1");
        ASSERT_FIELD("loy:stats", "expiries_outdated", "1");
        snprintf(msg, sizeof(msg), "%lld", (long long)T0);
        ASSERT_CLI("HGET loy:c:{old} forgotten_ms", msg);
        ASSERT_CLI("HGET loy:c:{old} orders", "");
        ASSERT_FIELD("loy:c:{back}", "orders", "2");
        ASSERT_FIELD("loy:c:{new}", "orders", "1");
        assert_counts_agree();
        /* the record is not a customer to expire again */
        CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 of 3 customers"));
        loy_config_free(&conf);
}

/* [privacy] pseudonymize: the raw customer id is nowhere in Redis nor in
 * the triggers; its pseudonym (loyaltyctl pseudonym) is the customer. */
static void test_pseudonymized(void) {
        static const char *const pseudonym = "3611394a44c6460d6b3d57b38e3a210e";
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        char msg[512], err[256], key_path[] = "/tmp/loy-pseudo-key-XXXXXX";
        char hash[80], *state;
        int fd = mkstemp(key_path);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(write(fd, "0123456789abcdef0123456789abcdef\n", 33),
                        33);
        close(fd);
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "pseudo");
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "privacy.pseudonymize",
                                       "yes", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "privacy.key.file",
                                       key_path, err, sizeof(err)),
                        0);
        json_purchase(msg, sizeof(msg), "p-1", "17850", T0,
                      "{\"sku\":\"A\",\"quantity\":2,\"unit_price\":3}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "17850", msg,
                         strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        stop(&r);
        snprintf(hash, sizeof(hash), "loy:c:{%s}", pseudonym);
        ASSERT_FIELD(hash, "orders", "1");
        ASSERT_FIELD(hash, "gross_value", "6");
        state = dump_state();
        CU_ASSERT_PTR_NOT_NULL_FATAL(state);
        CU_ASSERT_PTR_NOT_NULL(strstr(state, pseudonym));
        CU_ASSERT_PTR_NULL(strstr(state, "17850"));
        free(state);
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT_EQUAL(seen.n, 1);
        for (int i = 0; i < seen.n; i++) {
                CU_ASSERT_STRING_EQUAL(seen.key[i], pseudonym);
                CU_ASSERT_PTR_NOT_NULL(
                    seen.json[i] ? strstr(seen.json[i], pseudonym) : NULL);
                CU_ASSERT_PTR_NULL(seen.json[i] ? strstr(seen.json[i], "17850")
                                                : "");
        }
        seen_free(&seen);
        unlink(key_path);
        loy_config_free(&conf);
}

/* Called once a batch's aggregates are in, before its customers are
 * sent: every third time, Redis holds writes back for a while (reads go
 * on), so the batch is still being written while the next one is loaded. */
static void pause_writes(loy_store_t *s, void *opaque) {
        int *calls = opaque;
        (void)s;
        if (++*calls % 3 == 0)
                free(tu_redis_cli(&redis, "CLIENT PAUSE 150 WRITE"));
}

/* A batch applied while the one before it is written (input.pipeline)
 * ends as one batch at a time does: the same state and the same
 * triggers. Small batches, so most of them overlap, and Redis's writes
 * held back at times after a batch's aggregates, so the next batch's
 * loads run while its customers wait: one of them read from Redis
 * instead of the cache would be read stale. */
static void test_pipelined_same_state(void) {
        loy_config_t conf;
        runner_t r;
        char *state[2];
        seen_t seen[2];
        int64_t n, overlapped = 0;
        char topic[2][sizeof(conf.topic_triggers)];

        make_conf(&conf, "pipe-0");
        n = produce_file(conf.topic_purchase,
                         tu_src_path("../shared/data/online_retail.csv.gz"), 0,
                         600);
        CU_ASSERT_EQUAL(n, 600);
        /* and a few customers buying again and again, so most batches
         * share customers with the one before */
        for (int i = 0; i < 400; i++) {
                char msg[512], eid[32], cid[16], line[96];
                snprintf(eid, sizeof(eid), "rep%d", i);
                snprintf(cid, sizeof(cid), "r%d", i % 8);
                snprintf(line, sizeof(line),
                         "{\"sku\":\"S%d\",\"quantity\":%d,"
                         "\"unit_price\":%d.5}",
                         i % 13, 1 + i % 3, 2 + i % 7);
                json_purchase(msg, sizeof(msg), eid, cid,
                              1291200000000LL + i * 600000LL, line);
                CU_ASSERT_EQUAL(tu_kafka_produce(kafka, conf.topic_purchase,
                                                 (i % 8) % 2, cid, msg,
                                                 strlen(msg)),
                                0);
        }
        n += 400;
        snprintf(topic[0], sizeof(topic[0]), "%s", conf.topic_triggers);
        snprintf(topic[1], sizeof(topic[1]), "%.100s-pipelined",
                 conf.topic_triggers);
        tu_kafka_topic(kafka, topic[1], 1);
        conf.batch_max = 7;
        for (int run = 0; run < 2; run++) {
                free(tu_redis_cli(&redis, "FLUSHALL"));
                conf.pipeline = run;
                snprintf(conf.group_id, sizeof(conf.group_id), "pipe-%d", run);
                snprintf(conf.topic_triggers, sizeof(conf.topic_triggers), "%s",
                         topic[run]);
                int calls = 0;
                start_hooked(&r, &conf, pause_writes, &calls);
                CU_ASSERT_EQUAL(wait_consumed(&r, n), 0);
                /* the checks that fire once the partitions went idle */
                usleep(1000000);
                if (run)
                        overlapped = loy_proc_stats(r.proc)->batches_overlapped;
                else
                        CU_ASSERT_EQUAL(
                            loy_proc_stats(r.proc)->batches_overlapped, 0);
                stop(&r);
                state[run] = dump_comparable();
                collect_triggers(topic[run], &seen[run]);
        }
        /* many of the ~90 batches went while another was written */
        CU_ASSERT(overlapped > 10);
        CU_ASSERT_PTR_NOT_NULL(state[0]);
        CU_ASSERT(state[0] && strlen(state[0]) > 1000);
        if (state[0] && state[1] && strcmp(state[0], state[1])) {
                FILE *f0 = fopen("/tmp/pipe_one_at_a_time.txt", "w");
                FILE *f1 = fopen("/tmp/pipe_pipelined.txt", "w");
                if (f0) {
                        fputs(state[0], f0);
                        fclose(f0);
                }
                if (f1) {
                        fputs(state[1], f1);
                        fclose(f1);
                }
        }
        CU_ASSERT_STRING_EQUAL(state[0] ? state[0] : "x",
                               state[1] ? state[1] : "y");
        CU_ASSERT(seen[0].n > 0);
        CU_ASSERT_EQUAL(seen[0].more + seen[1].more, 0);
        CU_ASSERT_EQUAL(seen[0].n, seen[1].n);
        for (int i = 0; i < seen[0].n && i < seen[1].n; i++) {
                json_t *a = json_loads(seen[0].json[i], 0, NULL);
                int found = 0;
                for (int j = 0; a && j < seen[1].n && !found; j++) {
                        json_t *b = json_loads(seen[1].json[j], 0, NULL);
                        found = b && !strcmp(jstr(a, "trigger_id", NULL),
                                             jstr(b, "trigger_id", NULL));
                        json_decref(b);
                }
                CU_ASSERT(found);
                json_decref(a);
        }
        free(state[0]);
        free(state[1]);
        seen_free(&seen[0]);
        seen_free(&seen[1]);
        loy_config_free(&conf);
}

typedef struct dead {
        int n;
        char reason[8][256];
        char payload[8][256];
} dead_t;

static void on_dead(const char *key, const void *val, size_t len,
                    const char *headers, int32_t partition, int64_t offset,
                    void *opaque) {
        dead_t *d = opaque;
        (void)key;
        (void)partition;
        (void)offset;
        if (d->n == 8)
                return;
        snprintf(d->reason[d->n], sizeof(d->reason[0]), "%s", headers);
        snprintf(d->payload[d->n], sizeof(d->payload[0]), "%.*s",
                 (int)(len < 255 ? len : 255), (const char *)val);
        d->n++;
}

/* Malformed Avro, malformed JSON, a missing field, an oversized id: each
 * lands on the dead-letter topic, bytes intact, with its reason; the good
 * event behind them is applied. */
/* Bad input both the dead-letter and the metrics tests send: bytes that
 * are not an event, and an event without its customer. */
static const char bad_avro[] = "\0\0\0\0\1\x99\x99";
static const char *const missing =
    "{\"event_id\":\"m1\",\"ts\":1291190400000,\"order_id\":\"o\","
    "\"lines\":[{\"sku\":\"A\",\"quantity\":1,\"unit_price\":1}]}";

static void test_dead_letters(void) {
        loy_config_t conf;
        runner_t r;
        dead_t dead;
        char good[512], longid[100];
        const char *bad_json = "{\"event_id\": \"x\", ";
        char oversized[512];

        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "dead");
        memset(longid, 'x', 65);
        longid[65] = '\0';
        json_purchase(oversized, sizeof(oversized), "o1", longid, T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":1}");
        json_purchase(good, sizeof(good), "g1", "c9", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":7}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "k", bad_avro,
                         sizeof(bad_avro) - 1);
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "k", bad_json,
                         strlen(bad_json));
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "k", missing,
                         strlen(missing));
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "k", oversized,
                         strlen(oversized));
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "c9", good,
                         strlen(good));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 5), 0);
        stop(&r);
        ASSERT_FIELD("loy:c:{c9}", "gross_value", "7");
        ASSERT_FIELD("loy:stats", "dead_lettered", "4");

        memset(&dead, 0, sizeof(dead));
        tu_kafka_consume_all(kafka, conf.topic_deadletter, 500, on_dead, &dead);
        CU_ASSERT_EQUAL_FATAL(dead.n, 4);
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[0], "loy.reason=avro"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[1], "loy.reason=json"));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(dead.reason[2], "missing field 'customer_id'"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[3], "longer than 64"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[3], "loy.offset=3"));
        CU_ASSERT_STRING_EQUAL(dead.payload[1], bad_json);
        CU_ASSERT_STRING_EQUAL(dead.payload[2], missing);
        loy_config_free(&conf);
}

/* The value of the series (a whole "name{labels}") in a /metrics text,
 * or -1; with prefix set, the sum of every series starting with name. */
static double metric(const char *text, const char *name, int prefix) {
        size_t n = strlen(name);
        double sum = -1;
        for (const char *l = text; l && *l;) {
                if (!strncmp(l, name, n) && (prefix || l[n] == ' ')) {
                        const char *v = strchr(l, ' ');
                        sum = (sum < 0 ? 0 : sum) + (v ? atof(v + 1) : 0);
                        if (!prefix)
                                return sum;
                }
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        return sum;
}

/* Polls path until it answers want (and, when set, its body holds text);
 * up to 30 s. 0 when it did. */
static int wait_http(int port, const char *path, int want, const char *text) {
        for (int i = 0; i < 300; i++) {
                char *body = NULL;
                int st = tu_http(port, "GET", path, &body);
                int ok = st == want && (!text || (body && strstr(body, text)));
                free(body);
                if (ok)
                        return 0;
                usleep(100000);
        }
        return -1;
}

/* The HTTP endpoint of a running processor: ready once it has partitions
 * and Redis; /metrics counts what went in, what was dead-lettered by
 * reason and the triggers by rule as they came out; Redis killed, it is
 * not ready (but alive) until Redis is back. */
static void test_metrics_http(void) {
        /* decodes, but its time is in seconds: invalid, not undecodable */
        const char *seconds = "{\"event_id\":\"s1\",\"customer_id\":\"c1\","
                              "\"ts\":1291190400,\"order_id\":\"o\","
                              "\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
                              "\"unit_price\":1}]}";
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        char *body = NULL, err[256];
        int port;
        int64_t n;
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "metrics");
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "http.listen",
                                       "127.0.0.1:0", err, sizeof(err)),
                        0);
        start(&r, &conf);
        port = loy_proc_http_port(r.proc);
        CU_ASSERT_FATAL(port > 0);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", NULL), 200);
        CU_ASSERT_EQUAL(wait_http(port, "/readyz", 200, "ready"), 0);

        n = produce_file(conf.topic_purchase,
                         tu_src_path("tests/data/online_retail_head300.csv"), 0,
                         0);
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "k", bad_avro,
                         sizeof(bad_avro) - 1);
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "k", missing,
                         strlen(missing));
        tu_kafka_produce(kafka, conf.topic_purchase, 1, "c1", seconds,
                         strlen(seconds));
        n += 3;
        CU_ASSERT_EQUAL(wait_consumed(&r, n), 0);
        CU_ASSERT_EQUAL(wait_http(port, "/metrics", 200, "\n"), 0);
        /* rendered at most once a second: wait for a rendering after the
         * last batch was written (events_in moves when it is decoded) */
        for (int i = 0; i < 100; i++) {
                const loy_proc_stats_t *st = loy_proc_stats(r.proc);
                free(body);
                body = NULL;
                tu_http(port, "GET", "/metrics", &body);
                if (body && st->events_applied + st->dead_lettered == n &&
                    st->triggers_acked == st->triggers_out &&
                    metric(body, "loyaltyd_events_in_total", 0) == (double)n &&
                    metric(body, "loyaltyd_events_applied_total", 0) ==
                        (double)st->events_applied &&
                    metric(body, "loyaltyd_triggers_total{", 1) ==
                        (double)st->triggers_out)
                        break;
                usleep(100000);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(body);
        CU_ASSERT_EQUAL(metric(body, "loyaltyd_events_in_total", 0), (double)n);
        CU_ASSERT_EQUAL(metric(body, "loyaltyd_events_applied_total", 0),
                        (double)loy_proc_stats(r.proc)->events_applied);
        CU_ASSERT_EQUAL(metric(body,
                               "loyaltyd_dead_letters_total{reason="
                               "\"decode\"}",
                               0),
                        2);
        CU_ASSERT_EQUAL(metric(body,
                               "loyaltyd_dead_letters_total{reason="
                               "\"invalid\"}",
                               0),
                        1);
        /* purchases and browse, two each */
        CU_ASSERT_EQUAL(metric(body, "loyaltyd_partitions_assigned", 0), 4);
        CU_ASSERT(metric(body, "loyaltyd_batch_duration_seconds_count", 0) >=
                  1);
        CU_ASSERT(metric(body, "loyaltyd_consumer_lag_messages{", 1) >= 0);
        CU_ASSERT_EQUAL(metric(body, "loyaltyd_redis_up", 0), 1);
        CU_ASSERT_EQUAL(metric(body,
                               "loyaltyd_model_info{version="
                               "\"default-1\"}",
                               0),
                        1);
        /* the triggers by rule add up to what came out */
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT(seen.n > 0);
        CU_ASSERT_EQUAL(metric(body, "loyaltyd_triggers_total{", 1),
                        (double)seen.n);
        seen_free(&seen);
        free(body);

        tu_redis_kill(&redis, SIGKILL);
        CU_ASSERT_EQUAL(wait_http(port, "/readyz", 503, "redis not answering"),
                        0);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", NULL), 200);
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&redis), 0);
        CU_ASSERT_EQUAL(wait_http(port, "/readyz", 200, "ready"), 0);
        stop(&r);
        loy_config_free(&conf);
}

/* Sums a numeric customer field over every customer hash. */
static double sum_field(const char *field) {
        char args[512];
        char *v;
        double d;
        snprintf(args, sizeof(args),
                 "EVAL \"local s = 0 for _, k in ipairs(redis.call('KEYS', "
                 "'loy:c:{*}')) do s = s + tonumber(redis.call('HGET', k, "
                 "'%s') or 0) end return tostring(s)\" 0",
                 field);
        v = tu_redis_cli(&redis, args);
        d = v ? atof(v) : -1;
        free(v);
        return d;
}

/* Redis killed (kill -9, durable AOF) in the middle of a stream and started
 * again: once it is back every event counts exactly once. */
static void test_redis_restart(void) {
        loy_config_t conf;
        runner_t r;
        int64_t n1, n2;
        char file[1024];
        snprintf(file, sizeof(file), "%s",
                 tu_src_path("tests/data/online_retail_head300.csv"));
        tu_redis_stop(&redis);
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&redis, 1), 0);
        make_conf(&conf, "restart");
        n1 = produce_file(conf.topic_purchase, file, 0, 10);
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, n1), 0);
        tu_redis_kill(&redis, SIGKILL);
        n2 = produce_file(conf.topic_purchase, file, 10, 0);
        usleep(1500000); /* the processor meets the dead server */
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&redis), 0);
        for (int i = 0; i < 600 && sum_field("orders") + sum_field("returns") <
                                       (double)(n1 + n2);
             i++)
                usleep(50000);
        stop(&r);
        /* every event once: orders + returns over customers = events */
        CU_ASSERT_DOUBLE_EQUAL(sum_field("orders") + sum_field("returns"),
                               (double)(n1 + n2), 1e-9);
        loy_config_free(&conf);
}

static void write_model(const char *path, const char *version,
                        const char *r_value) {
        char *text = NULL;
        size_t len = 0;
        FILE *in = fopen(tu_src_path("config/model.default"), "r");
        FILE *out;
        char line[512];
        CU_ASSERT_PTR_NOT_NULL_FATAL(in);
        out = open_memstream(&text, &len);
        while (fgets(line, sizeof(line), in)) {
                if (!strncmp(line, "version", 7))
                        fprintf(out, "version = %s\n", version);
                else if (!strncmp(line, "r ", 2) || !strncmp(line, "r=", 2))
                        fprintf(out, "r = %s\n", r_value);
                else
                        fputs(line, out);
        }
        fclose(in);
        fclose(out);
        out = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        fputs(text, out);
        fclose(out);
        free(text);
}

static void produce_first_order(const loy_config_t *conf, const char *cid) {
        char msg[512], eid[64];
        snprintf(eid, sizeof(eid), "first-%s", cid);
        json_purchase(msg, sizeof(msg), eid, cid, T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":3}");
        tu_kafka_produce(kafka, conf->topic_purchase, 0, cid, msg, strlen(msg));
}

/* The model file is re-read when it changes: a bad one is refused and the
 * old model keeps scoring; a good one is used from then on, and each
 * trigger names the model version that scored it. */
static void test_model_reload(void) {
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        char path[] = "/tmp/loy-model-XXXXXX";
        int fd = mkstemp(path);
        const char *want[3] = {"default-1", "default-1", "v2"};
        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        write_model(path, "default-1", "0.83");
        make_conf(&conf, "reload");
        snprintf(conf.model_path, sizeof(conf.model_path), "%s", path);
        start(&r, &conf);
        produce_first_order(&conf, "m1");
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        write_model(path, "broken", "not-a-number");
        usleep(1600000);
        produce_first_order(&conf, "m2");
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        write_model(path, "v2", "0.9");
        usleep(1600000);
        produce_first_order(&conf, "m3");
        CU_ASSERT_EQUAL(wait_consumed(&r, 3), 0);
        stop(&r);
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT_EQUAL(seen.n, 3);
        for (int i = 0; i < seen.n && i < 3; i++) {
                json_t *t = json_loads(seen.json[i], 0, NULL);
                CU_ASSERT_STRING_EQUAL(jstr(t, "model_version", NULL), want[i]);
                json_decref(t);
        }
        seen_free(&seen);
        unlink(path);
        loy_config_free(&conf);
}

/* A silent customer is re-scored by its timer as event time moves on
 * (driven by another customer's events), and a timer-only rule fires for it
 * once, with a timer as its cause. */
static void test_silence_timer(void) {
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        char msg[512], err[256];
        static const int days[] = {40, 70, 100};
        int timer_triggers = 0;

        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "timers");
        conf.rules.n = 0; /* only the rule under test */
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "rule.silent.when",
                                       "recency_days >= 60", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "rule.silent.on", "timer",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test",
                                       "rule.silent.cooldown.days", "1000", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&conf, "test", err, sizeof(err)), 0);
        json_purchase(msg, sizeof(msg), "t1a", "t1", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":300}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "t1", msg, strlen(msg));
        json_purchase(msg, sizeof(msg), "t1b", "t1", T0 + 5 * DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":300}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "t1", msg, strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        /* first check 30 days after the last purchase */
        ASSERT_FIELD("loy:c:{t1}", "next_check_ms", "1294214400000");
        for (int i = 0; i < 3; i++) {
                char eid[16];
                snprintf(eid, sizeof(eid), "t2-%d", i);
                json_purchase(msg, sizeof(msg), eid, "t2", T0 + days[i] * DAY,
                              "{\"sku\":\"B\",\"quantity\":1,"
                              "\"unit_price\":1}");
                tu_kafka_produce(kafka, conf.topic_purchase, 0, "t2", msg,
                                 strlen(msg));
                CU_ASSERT_EQUAL(wait_consumed(&r, 3 + i), 0);
                usleep(800000); /* idle partitions stop holding the clock */
        }
        stop(&r);
        CU_ASSERT(stat_of("timers_fired") >= 2);
        collect_triggers(conf.topic_triggers, &seen);
        for (int i = 0; i < seen.n; i++) {
                json_t *t = json_loads(seen.json[i], 0, NULL);
                CU_ASSERT_STRING_EQUAL(jstr(t, "customer_id", NULL), "t1");
                CU_ASSERT_STRING_EQUAL(jstr(t, "rule", NULL), "silent");
                CU_ASSERT_STRING_EQUAL(jstr(t, "cause", "kind"), "timer");
                timer_triggers++;
                json_decref(t);
        }
        CU_ASSERT_EQUAL(timer_triggers, 1);
        /* checks go on every 30 days: 35, 65, 95, 125 ... */
        {
                char *v = hget("loy:c:{t1}", "next_check_ms");
                long long next = v ? atoll(v) : 0;
                CU_ASSERT(next > T0 + 100 * DAY);
                CU_ASSERT_EQUAL((next - (T0 + 5 * DAY)) % (30 * DAY), 0);
                free(v);
        }
        seen_free(&seen);
        loy_config_free(&conf);
}

/* Regression: after a restart the event clock used to start at 0 and move
 * only with new messages, so due silence checks waited for traffic that
 * might never come. Each partition's applied event time is kept in
 * loy:clock and read back: with nothing new to read, the check due 30 days
 * after t3's purchase fires at its own due time, and its trigger says so. */
static void test_timer_after_restart(void) {
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        char msg[512], err[256], when[32];
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "restart-timer");
        conf.rules.n = 0;
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "rule.silent.when",
                                       "recency_days >= 30", err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "rule.silent.on", "timer",
                                       err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&conf, "test", err, sizeof(err)), 0);
        json_purchase(msg, sizeof(msg), "r3a", "t3", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":30}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "t3", msg, strlen(msg));
        json_purchase(msg, sizeof(msg), "r4a", "t4", T0 + 40 * DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":30}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "t4", msg, strlen(msg));
        /* first run: the empty partitions never go idle, the clock stays */
        conf.idle_ms = 3600000;
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        usleep(500000);
        stop(&r);
        CU_ASSERT_EQUAL(stat_of("timers_fired"), 0);
        snprintf(when, sizeof(when), "%lld", T0 + 40 * DAY);
        snprintf(msg, sizeof(msg), "%s:0", conf.topic_purchase);
        ASSERT_FIELD("loy:clock", msg, when);
        /* second run: nothing new to read */
        conf.idle_ms = 300;
        start(&r, &conf);
        for (int i = 0; i < 200 && stat_of("timers_fired") < 1; i++)
                usleep(50000);
        stop(&r);
        CU_ASSERT_EQUAL(stat_of("timers_fired"), 1);
        snprintf(when, sizeof(when), "%lld", T0 + 60 * DAY);
        ASSERT_FIELD("loy:c:{t3}", "next_check_ms", when);
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT_EQUAL(seen.n, 1);
        if (seen.n == 1) {
                json_t *t = json_loads(seen.json[0], 0, NULL);
                CU_ASSERT_STRING_EQUAL(jstr(t, "customer_id", NULL), "t3");
                CU_ASSERT_STRING_EQUAL(jstr(t, "cause", "kind"), "timer");
                CU_ASSERT_EQUAL((long long)jnum(t, "event_time", NULL),
                                T0 + 30 * DAY);
                json_decref(t);
        }
        seen_free(&seen);
        loy_config_free(&conf);
}

/* Regression: a timer entry the customer's hash does not know about (a
 * customer Redis no longer has) fires once and is removed, not on every
 * batch forever; no empty customer hash is created for it. */
static void test_ghost_timer(void) {
        loy_config_t conf;
        runner_t r;
        char msg[512], args[128];
        char *v;
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "ghost");
        snprintf(args, sizeof(args), "ZADD loy:timers:0 %lld ghost", T0);
        free(tu_redis_cli(&redis, args));
        json_purchase(msg, sizeof(msg), "g1", "c2", T0 + 5 * DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":3}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "c2", msg, strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        usleep(1500000); /* many batch loops with the clock past the entry */
        stop(&r);
        CU_ASSERT(loy_proc_stats(r.proc) != NULL);
        CU_ASSERT(stat_of("timers_fired") <= 1);
        v = tu_redis_cli(&redis, "ZSCORE loy:timers:0 ghost");
        CU_ASSERT_STRING_EQUAL(v ? v : "x", "");
        free(v);
        v = tu_redis_cli(&redis, "EXISTS loy:c:{ghost}");
        CU_ASSERT_STRING_EQUAL(v ? v : "x", "0");
        free(v);
        loy_config_free(&conf);
}

/* Regression: a customer whose hash cannot be loaded (a field edited to
 * junk) no longer stops the whole stream: after two failed attempts it is
 * quarantined, its events are dead-lettered with a "state:" reason, and
 * the other customers of the batch are written. */
static void test_quarantine(void) {
        loy_config_t conf;
        runner_t r;
        dead_t dead;
        char msg[512];
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "quarantine");
        conf.backoff_max_ms = 50;
        free(tu_redis_cli(&redis, "HSET loy:c:{bad} orders abc "
                                  "last_event_ms 1"));
        json_purchase(msg, sizeof(msg), "q1", "bad", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":3}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "bad", msg,
                         strlen(msg));
        json_purchase(msg, sizeof(msg), "q2", "good", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":4}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "good", msg,
                         strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 2), 0);
        stop(&r);
        ASSERT_FIELD("loy:c:{good}", "gross_value", "4");
        {
                /* left for repair, as it was */
                char *v = tu_redis_cli(&redis, "HGET loy:c:{bad} orders");
                CU_ASSERT_STRING_EQUAL(v ? v : "", "abc");
                free(v);
        }
        memset(&dead, 0, sizeof(dead));
        tu_kafka_consume_all(kafka, conf.topic_deadletter, 500, on_dead, &dead);
        CU_ASSERT_EQUAL_FATAL(dead.n, 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[0], "loy.reason=state:"));
        CU_ASSERT_PTR_NOT_NULL(strstr(dead.payload[0], "\"q1\""));
        loy_config_free(&conf);
}

/* A fatal librdkafka error, here the broker refusing the idempotent
 * producer an id as a missing IdempotentWrite ACL does, stops the
 * processor with -1 instead of letting it run on with nothing going out;
 * started again, it does what came meanwhile, once. */
static void test_kafka_fatal(void) {
        loy_config_t conf;
        runner_t r;
        make_conf(&conf, "fatal");
        produce_first_order(&conf, "fatal1");
        rd_kafka_mock_push_request_errors(
            tu_kafka_mock(kafka), 22 /* InitProducerId */, 1,
            RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
        start(&r, &conf);
        for (int i = 0; i < 400 && !r.done; i++)
                usleep(50000);
        CU_ASSERT(r.done);
        r.running = 0;
        pthread_join(r.th, NULL);
        CU_ASSERT_EQUAL(r.rc, -1);
        loy_proc_destroy(r.proc);

        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        stop(&r);
        ASSERT_FIELD("loy:c:{fatal1}", "orders", "1");
        loy_config_free(&conf);
}

/* Regression: a message Kafka accepted (1 MiB) but the processor's
 * producer may not re-send whole used to block every partition: its dead
 * letter failed, the batch was read again forever, and every retry sent
 * the batch's earlier dead letters once more. Now it is dead-lettered cut
 * to size, with header loy.truncated, exactly once, and the stream goes
 * on. */
static void test_huge_dead_letter(void) {
        loy_config_t conf;
        runner_t r;
        dead_t dead;
        char msg[512];
        size_t big = 1048000;
        char *huge = malloc(big);
        CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "huge");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "h0", "not json", 8);
        memset(huge, 'x', big);
        memcpy(huge, "{\"pad\":\"", 8);
        memcpy(huge + big - 2, "\"}", 2);
        CU_ASSERT_EQUAL_FATAL(
            tu_kafka_produce(kafka, conf.topic_purchase, 0, "h1", huge, big),
            0);
        json_purchase(msg, sizeof(msg), "h2", "h2", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":7}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "h2", msg, strlen(msg));
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 3), 0);
        for (int i = 0; i < 100 && loy_proc_stats(r.proc)->events_applied < 1;
             i++)
                usleep(50000);
        stop(&r);
        ASSERT_FIELD("loy:c:{h2}", "gross_value", "7");
        memset(&dead, 0, sizeof(dead));
        tu_kafka_consume_all(kafka, conf.topic_deadletter, 500, on_dead, &dead);
        CU_ASSERT_EQUAL(dead.n, 2);
        if (dead.n == 2) {
                char want[64];
                CU_ASSERT_PTR_NULL(strstr(dead.reason[0], "loy.truncated"));
                snprintf(want, sizeof(want), "loy.truncated=%zu,2", big);
                CU_ASSERT_PTR_NOT_NULL(strstr(dead.reason[1], want));
                CU_ASSERT_PTR_NOT_NULL(strstr(dead.payload[1], "{\"pad\":"));
        }
        free(huge);
        loy_config_free(&conf);
}

/* Regression: a trigger left in the outbox by a crash (written, delivery
 * never confirmed) is sent again at start-up with its customer as the
 * message key, like the first time; it used to go out without a key. */
static void test_outbox_resend_key(void) {
        loy_config_t conf;
        runner_t r;
        seen_t seen;
        loy_trigger_t tr;
        loy_codec_t *codec;
        redisContext *rc;
        redisReply *rep;
        const void *buf;
        size_t len;
        char err[256];
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "resend");
        codec = loy_codec_create(NULL, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(codec);
        memset(&tr, 0, sizeof(tr));
        tr.trigger_id = "0123456789abcdef0123456789abcdef";
        tr.customer_id = "c-resend";
        tr.rule = "winback";
        tr.reward_kind = "coupon";
        tr.reward_currency = "";
        tr.segment = "at_risk";
        tr.cause_kind = "timer";
        tr.cause_offset = -1;
        tr.event_time_ms = T0;
        tr.emit_time_ms = T0;
        tr.model_version = "test";
        buf = loy_codec_encode_trigger(codec, &tr, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        rc = redisConnect("127.0.0.1", redis.port);
        CU_ASSERT_FATAL(rc && !rc->err);
        rep =
            redisCommand(rc, "HSET loy:outbox %s %b", tr.trigger_id, buf, len);
        CU_ASSERT_PTR_NOT_NULL(rep);
        freeReplyObject(rep);
        redisFree(rc);
        loy_codec_destroy(codec);
        start(&r, &conf);
        for (int i = 0; i < 200; i++) {
                char *n = tu_redis_cli(&redis, "HLEN loy:outbox");
                int left = n ? atoi(n) : 1;
                free(n);
                if (!left)
                        break;
                usleep(50000);
        }
        stop(&r);
        collect_triggers(conf.topic_triggers, &seen);
        CU_ASSERT_EQUAL(seen.n, 1);
        if (seen.n == 1)
                CU_ASSERT_STRING_EQUAL(seen.key[0], "c-resend");
        seen_free(&seen);
        loy_config_free(&conf);
}

/* Waits (up to 20 s) until the processor has seen n more failed writes. */
static int wait_failures(const runner_t *r, int64_t n) {
        for (int i = 0; i < 400; i++) {
                if (loy_proc_stats(r->proc)->redis_failures >= n)
                        return 0;
                usleep(50000);
        }
        return -1;
}

/* Regression: a Redis that refuses writes for a while (maxmemory reached
 * under noeviction, a replica's READONLY, MISCONF after a failed save) is
 * waited out. It used to be taken for broken customer state: the customer
 * was quarantined and its events dead-lettered until a restart. */
static void test_redis_refusal(void) {
        loy_config_t conf;
        runner_t r;
        dead_t dead;
        char msg[512];
        int64_t base;
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&conf, "refusal");
        conf.backoff_max_ms = 50;
        start(&r, &conf);
        /* first a customer written normally, so the group has joined */
        json_purchase(msg, sizeof(msg), "f0", "ref0", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":2}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "ref0", msg,
                         strlen(msg));
        CU_ASSERT_EQUAL_FATAL(wait_consumed(&r, 1), 0);

        /* OOM: maxmemory far below what is used, nothing may be evicted */
        free(tu_redis_cli(&redis, "CONFIG SET maxmemory-policy noeviction"));
        free(tu_redis_cli(&redis, "CONFIG SET maxmemory 1"));
        base = loy_proc_stats(r.proc)->redis_failures;
        json_purchase(msg, sizeof(msg), "f1", "ref1", T0 + DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":3}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "ref1", msg,
                         strlen(msg));
        CU_ASSERT_EQUAL(wait_failures(&r, base + 4), 0);
        free(tu_redis_cli(&redis, "CONFIG SET maxmemory 0"));

        /* READONLY: a replica of a master that is not there */
        /* port 1: nothing listens there, the replica never syncs */
        free(tu_redis_cli(&redis, "REPLICAOF 127.0.0.1 1"));
        base = loy_proc_stats(r.proc)->redis_failures;
        json_purchase(msg, sizeof(msg), "f2", "ref2", T0 + 2 * DAY,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":4}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "ref2", msg,
                         strlen(msg));
        CU_ASSERT_EQUAL(wait_failures(&r, base + 4), 0);
        free(tu_redis_cli(&redis, "REPLICAOF NO ONE"));

        CU_ASSERT_EQUAL(wait_consumed(&r, 3), 0);
        for (int i = 0; i < 200 && loy_proc_stats(r.proc)->events_applied < 3;
             i++)
                usleep(50000);
        stop(&r);
        ASSERT_FIELD("loy:c:{ref1}", "gross_value", "3");
        ASSERT_FIELD("loy:c:{ref2}", "gross_value", "4");
        memset(&dead, 0, sizeof(dead));
        tu_kafka_consume_all(kafka, conf.topic_deadletter, 500, on_dead, &dead);
        CU_ASSERT_EQUAL(dead.n, 0);
        loy_config_free(&conf);
}

/* loyaltyd as an ACL user whose password is in a file: wrong credentials
 * stop the processor at once with the server's reason (not a retry loop
 * that looks like an outage); right ones apply the events over
 * connections of that user. */
static void test_redis_acl_user(void) {
        loy_config_t conf;
        runner_t r;
        char msg[512], err[512], pwfile[] = "/tmp/loy_pw_XXXXXX", *v;
        int fd;
        double t0;
        free(tu_redis_cli(&redis, "FLUSHALL"));
        /* the ACL docs/redis-keys.md "Access" recommends, word for word */
        free(tu_redis_cli(&redis, "ACL SETUSER loyd on '>right-pw' 'resetkeys' "
                                  "'~loy:*' 'resetchannels' '-@all' "
                                  "'+@read' '+@write' '+@scripting' "
                                  "'+@transaction' '+@connection' "
                                  "'-@dangerous' '+client|setname' "
                                  "'+client|list' '+client|kill' "
                                  "'+cluster|slots'"));
        fd = mkstemp(pwfile);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(write(fd, "right-pw\n", 9), 9);
        close(fd);

        make_conf(&conf, "acl");
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "redis.user", "loyd", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "redis.password",
                                       "wrong-pw", err, sizeof(err)),
                        0);
        json_purchase(msg, sizeof(msg), "acl0", "acl0", T0,
                      "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":2}");
        tu_kafka_produce(kafka, conf.topic_purchase, 0, "acl0", msg,
                         strlen(msg));
        t0 = loy_time_mono_ms();
        start(&r, &conf);
        pthread_join(r.th, NULL);
        CU_ASSERT_EQUAL(r.rc, -1);
        CU_ASSERT(loy_time_mono_ms() - t0 < 15000);
        loy_proc_destroy(r.proc);
        v = tu_redis_cli(&redis, "EXISTS loy:c:{acl0}");
        CU_ASSERT_STRING_EQUAL(v, "0");
        free(v);

        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "redis.password", "", err,
                                       sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_set(&conf, "test", "redis.password.file",
                                       pwfile, err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(loy_config_check(&conf, "test", err, sizeof(err)), 0);
        start(&r, &conf);
        CU_ASSERT_EQUAL(wait_consumed(&r, 1), 0);
        v = tu_redis_cli(&redis, "CLIENT LIST");
        CU_ASSERT(v && strstr(v, "user=loyd"));
        free(v);
        stop(&r);
        ASSERT_FIELD("loy:c:{acl0}", "gross_value", "2");
        free(tu_redis_cli(&redis, "ACL DELUSER loyd"));
        unlink(pwfile);
        loy_config_free(&conf);
}

/* Item counts of a namespace's shared model, "sku=count" sorted. */
static char *item_counts(const char *ns) {
        char args[512];
        snprintf(args, sizeof(args),
                 "EVAL \"local t = redis.call('HGETALL', '%s:i:n') "
                 "local out = {} for i = 1, #t, 2 do table.insert(out, "
                 "t[i] .. '=' .. string.format('%%.6g', tonumber(t[i + 1]))) "
                 "end table.sort(out) return table.concat(out, ',')\" 0",
                 ns);
        return tu_redis_cli(&redis, args);
}

/* Two processes in one consumer group build one recommender model: the
 * item counts in Redis are those one process alone builds from the same
 * events, and both processes published neighbour lists. */
static void test_two_processes_one_model(void) {
        loy_config_t one, two;
        runner_t r1, r2;
        int64_t n;
        char *a, *b, *lists;
        const char *file = "tests/data/online_retail_head300.csv";
        char path[1024];
        snprintf(path, sizeof(path), "%s", tu_src_path(file));
        free(tu_redis_cli(&redis, "FLUSHALL"));
        make_conf(&one, "reco-one"); /* its topics have 2 partitions */
        snprintf(one.redis_ns, sizeof(one.redis_ns), "one");
        n = produce_file(one.topic_purchase, path, 0, 0);
        start(&r1, &one);
        for (int i = 0; i < 600 && loy_proc_stats(r1.proc)->events_in < n; i++)
                usleep(50000);
        stop(&r1);

        make_conf(&two, "reco-two");
        snprintf(two.redis_ns, sizeof(two.redis_ns), "two");
        snprintf(two.topic_purchase, sizeof(two.topic_purchase), "%s",
                 one.topic_purchase);
        start(&r1, &two);
        start(&r2, &two);
        /* a rebalance may hand a partition over before its offsets were
         * committed: the new owner reads those messages again and skips
         * them, so count what was applied, not what was read */
        for (int i = 0;
             i < 900 && loy_proc_stats(r1.proc)->events_applied +
                                loy_proc_stats(r2.proc)->events_applied <
                            n;
             i++)
                usleep(50000);
        r1.running = r2.running = 0;
        pthread_join(r1.th, NULL);
        pthread_join(r2.th, NULL);
        printf("\n  events applied: %lld + %lld\n",
               (long long)loy_proc_stats(r1.proc)->events_applied,
               (long long)loy_proc_stats(r2.proc)->events_applied);
        CU_ASSERT(loy_proc_stats(r1.proc)->events_applied > 0);
        CU_ASSERT(loy_proc_stats(r2.proc)->events_applied > 0);
        CU_ASSERT_EQUAL(loy_proc_stats(r1.proc)->events_applied +
                            loy_proc_stats(r2.proc)->events_applied,
                        n);
        loy_proc_destroy(r1.proc);
        loy_proc_destroy(r2.proc);
        a = item_counts("one");
        b = item_counts("two");
        CU_ASSERT(a && strlen(a) > 100);
        CU_ASSERT_STRING_EQUAL(a ? a : "x", b ? b : "y");
        lists = tu_redis_cli(&redis, "EVAL \"return #redis.call('KEYS', "
                                     "'two:i:*:nbrs')\" 0");
        CU_ASSERT(lists && atoi(lists) > 10);
        free(a);
        free(b);
        free(lists);
        loy_config_free(&one);
        loy_config_free(&two);
}

/* One customer's purchase and browse events, produced before either run:
 * a view at 1 h, the first order at 1.5 h, a second view at 2 h. */
static void produce_order_input(const loy_config_t *conf, int ncust) {
        char msg[512], cid[16], eid[16];
        for (int i = 0; i < ncust; i++) {
                int32_t part = i % 2;
                snprintf(cid, sizeof(cid), "o%d", i);
                for (int v = 0; v < 2; v++) {
                        snprintf(msg, sizeof(msg),
                                 "{\"event_id\":\"b%d-%d\",\"customer_id\":"
                                 "\"%s\",\"ts\":%lld,\"session_id\":\"s\","
                                 "\"action\":\"view\",\"sku\":\"A\"}",
                                 i, v, cid, T0 + (v ? 7200000 : 3600000));
                        tu_kafka_produce(kafka, conf->topic_browse, part, cid,
                                         msg, strlen(msg));
                }
                snprintf(eid, sizeof(eid), "p%d", i);
                json_purchase(msg, sizeof(msg), eid, cid, T0 + 5400000,
                              "{\"sku\":\"A\",\"quantity\":1,"
                              "\"unit_price\":10}");
                tu_kafka_produce(kafka, conf->topic_purchase, part, cid, msg,
                                 strlen(msg));
        }
}

/* A rule that needs both topics: fires on the event that first makes a
 * buyer a viewer of two items. */
static void add_engaged_rule(loy_config_t *conf) {
        static const char *const kv[][2] = {
            {"rule.engaged.when", "views >= 2 and orders >= 1"},
            {"rule.engaged.on", "event"},
            {"rule.engaged.reward.kind", "points"},
            {"rule.engaged.reward.value", "5"},
            {"rule.engaged.cooldown.days", "3650"},
            {"rule.engaged.priority", "30"}};
        char err[512];
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
                int rc = loy_config_set(conf, "test", kv[i][0], kv[i][1], err,
                                        sizeof(err));
                if (rc)
                        fprintf(stderr, "%s: %s\n", kv[i][0], err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
        }
}

/*
 * issue 8: a customer's purchase and browse events are applied in event
 * time order whatever the batching. The second run reads the purchase
 * partitions from a broker 1.5 s slower than the browse ones, so every
 * view arrives (and would be applied) before the order between them: the
 * rule would then fire on the order, with another trigger id.
 */
static void test_browse_order(void) {
        enum { NCUST = 8 };
        tu_kafka_t *shared = kafka;
        loy_config_t conf[2];
        runner_t r;
        seen_t seen;
        char err[256];
        kafka = tu_kafka_start(2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(kafka);
        make_conf(&conf[0], "order-0");
        add_engaged_rule(&conf[0]);
        /* customers of their own: other tests share the Redis */
        CU_ASSERT_EQUAL(loy_config_set(&conf[0], "test", "redis.namespace",
                                       "order0", err, sizeof(err)),
                        0);
        {
                rd_kafka_mock_cluster_t *mc = tu_kafka_mock(kafka);
                for (int32_t p = 0; p < 2; p++) {
                        rd_kafka_mock_partition_set_leader(
                            mc, conf[0].topic_purchase, p, 2);
                        rd_kafka_mock_partition_set_leader(
                            mc, conf[0].topic_browse, p, 1);
                }
        }
        produce_order_input(&conf[0], NCUST);
        for (int run = 0; run < 2; run++) {
                loy_config_t *c = &conf[run];
                if (run == 1) {
                        /* the same topics, read again into a fresh
                         * namespace, its triggers on a topic of its own */
                        make_conf(c, "order-1");
                        add_engaged_rule(c);
                        snprintf(c->topic_purchase, sizeof(c->topic_purchase),
                                 "%s", conf[0].topic_purchase);
                        snprintf(c->topic_browse, sizeof(c->topic_browse), "%s",
                                 conf[0].topic_browse);
                        CU_ASSERT_EQUAL(
                            loy_config_set(c, "test", "redis.namespace",
                                           "order1", err, sizeof(err)),
                            0);
                        rd_kafka_mock_broker_set_rtt(tu_kafka_mock(kafka), 2,
                                                     1500);
                }
                start(&r, c);
                for (int i = 0;
                     i < 600 && loy_proc_stats(r.proc)->events_in < 3 * NCUST;
                     i++)
                        usleep(50000);
                CU_ASSERT_EQUAL(loy_proc_stats(r.proc)->events_in, 3 * NCUST);
                usleep(500000);
                stop(&r);
                collect_triggers(c->topic_triggers, &seen);
                {
                        int engaged = 0;
                        for (int i = 0; i < seen.n; i++) {
                                json_t *t = json_loads(seen.json[i], 0, NULL);
                                char cause[sizeof(c->topic_browse) + 32],
                                    want[33];
                                const char *cid = seen.key[i];
                                if (!t ||
                                    strcmp(jstr(t, "rule", NULL), "engaged")) {
                                        json_decref(t);
                                        continue;
                                }
                                engaged++;
                                /* caused by the second view: offset 1 or
                                 * 3 ... of the customer's browse partition */
                                snprintf(cause, sizeof(cause), "%s:%d:%d",
                                         c->topic_browse, atoi(cid + 1) % 2,
                                         2 * (atoi(cid + 1) / 2) + 1);
                                loy_trigger_id("engaged", cid, cause, want);
                                if (strcmp(jstr(t, "trigger_id", NULL), want))
                                        fprintf(stderr,
                                                "run %d %s: want "
                                                "cause %s, got %s\n",
                                                run, cid, cause, seen.json[i]);
                                CU_ASSERT_STRING_EQUAL(
                                    jstr(t, "trigger_id", NULL), want);
                                json_decref(t);
                        }
                        CU_ASSERT_EQUAL(engaged, NCUST);
                }
                seen_free(&seen);
        }
        rd_kafka_mock_broker_set_rtt(tu_kafka_mock(kafka), 2, 0);
        loy_config_free(&conf[0]);
        loy_config_free(&conf[1]);
        tu_kafka_stop(kafka);
        kafka = shared;
}

int main(void) {
        CU_pSuite s;
        int rc;
        loy_log_set_level(LOY_LOG_WARN);
        if (tu_redis_start(&redis, 0) != 0) {
                fprintf(stderr, "redis-server did not start\n");
                return 1;
        }
        kafka = tu_kafka_start(1);
        if (!kafka) {
                tu_redis_stop(&redis);
                return 1;
        }
        CU_initialize_registry();
        s = CU_add_suite("pipeline", NULL, NULL);
        CU_add_test(s, "exact state and trigger", test_exact_state_and_trigger);
        CU_add_test(s,
                    "browse and purchases in one order, whatever the "
                    "batching",
                    test_browse_order);
        CU_add_test(s, "replay changes nothing", test_replay_changes_nothing);
        CU_add_test(s,
                    "KPI days closed and the owner's dashboard in a "
                    "browser",
                    test_dashboard);
        CU_add_test(s,
                    "the same event_id again is applied once, across a "
                    "restart",
                    test_same_event_id_again);
        CU_add_test(s,
                    "loyaltyctl forget: erased everywhere, counted out, "
                    "not brought back",
                    test_forget);
        CU_add_test(s,
                    "loyaltyctl expire: the silent go, who came back "
                    "stays",
                    test_expire);
        CU_add_test(s, "pseudonymized ids: the raw id nowhere",
                    test_pseudonymized);
        CU_add_test(s, "pipelined batches end as one at a time",
                    test_pipelined_same_state);
        CU_add_test(s, "dead letters", test_dead_letters);
        CU_add_test(s, "metrics, health and readiness over HTTP",
                    test_metrics_http);
        CU_add_test(s, "a 1 MiB message is dead-lettered cut, once",
                    test_huge_dead_letter);
        CU_add_test(s, "model file reload", test_model_reload);
        CU_add_test(s, "silence timer", test_silence_timer);
        CU_add_test(s, "ghost timer fires once", test_ghost_timer);
        CU_add_test(s, "due timers fire after a restart",
                    test_timer_after_restart);
        CU_add_test(s, "quarantine of broken state", test_quarantine);
        CU_add_test(s, "a fatal Kafka error stops it; nothing lost",
                    test_kafka_fatal);
        CU_add_test(s, "redis refusals are waited out", test_redis_refusal);
        CU_add_test(s, "an ACL user with a password file", test_redis_acl_user);
        CU_add_test(s, "outbox re-send keeps the key", test_outbox_resend_key);
        CU_add_test(s, "two processes, one recommender model",
                    test_two_processes_one_model);
        CU_add_test(s, "redis killed and restarted", test_redis_restart);
        rc = tu_cunit_run();
        tu_kafka_stop(kafka);
        tu_redis_stop(&redis);
        return rc;
}
