/*
 * kill -9 of the real loyaltyd binary in the middle of a stream, again and
 * again: once it has caught up, every event counted exactly once and exactly
 * the triggers of an undisturbed run came out (same ids; duplicates only
 * with the same id).
 */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "loy_codec.h"
#include "loy_store.h"
#include "tu.h"

static tu_redis_t redis;
static tu_kafka_t *kafka;

static pid_t spawn(const char *ns, const char *suffix, const char *group) {
        char a[8][256];
        pid_t pid;
        snprintf(a[0], sizeof(a[0]), "kafka.bootstrap.servers=%s",
                 tu_kafka_bootstraps(kafka));
        snprintf(a[1], sizeof(a[1]), "redis.port=%d", redis.port);
        snprintf(a[2], sizeof(a[2]), "redis.namespace=%s", ns);
        snprintf(a[3], sizeof(a[3]), "input.topic.purchase=purchases-%s",
                 suffix);
        snprintf(a[4], sizeof(a[4]), "output.topic.triggers=triggers-%s",
                 suffix);
        snprintf(a[5], sizeof(a[5]), "input.group.id=%s", group);
        snprintf(a[6], sizeof(a[6]), "%s", tu_build_path("loyaltyd"));
        snprintf(a[7], sizeof(a[7]), "%s",
                 tu_src_path("tests/data/crash.conf"));
        pid = fork();
        if (pid == 0) {
                execl(a[6], "loyaltyd", "-q", "-c", a[7], "-X", a[0], "-X",
                      a[1], "-X", a[2], "-X", a[3], "-X", a[4], "-X", a[5],
                      "-X", "kafka.session.timeout.ms=6000", "-X",
                      "input.batch.max=50", (char *)NULL);
                _exit(127);
        }
        return pid;
}

/* Sum of a numeric field over the hashes matching <ns>:<pattern>. */
static double hash_sum(const char *ns, const char *kind, const char *field) {
        char args[512];
        char *v;
        double d;
        snprintf(args, sizeof(args),
                 "EVAL \"local s = 0 for _, k in ipairs(redis.call('KEYS', "
                 "'%s:%s')) do s = s + tonumber(redis.call('HGET', k, "
                 "'%s') or 0) end return tostring(s)\" 0",
                 ns, kind, field);
        v = tu_redis_cli(&redis, args);
        d = v ? atof(v) : -1;
        free(v);
        return d;
}

static double lua_sum(const char *ns, const char *field) {
        return hash_sum(ns, "c:{*}", field); /* hashes, not :rh or :recs */
}

static double kpi_sum(const char *ns, const char *field) {
        return hash_sum(ns, LOY_KEY_KPI "*", field);
}

static int64_t produce_file(const char *topic) {
        int64_t n = tu_produce_file(
            kafka, topic, tu_src_path("tests/data/online_retail_head300.csv"),
            0, 0);
        CU_ASSERT_FATAL(n > 0);
        return n;
}

/* One entry per trigger: "rule|customer|partition|offset|trigger_id". The
 * two runs read different topics, so their ids differ; what must agree is
 * what fired, for which event. */
typedef struct ids {
        char (*id)[160];
        int n, cap;
} ids_t;

static void on_trigger(const char *key, const void *val, size_t len,
                       const char *headers, int32_t partition, int64_t offset,
                       void *opaque) {
        ids_t *ids = opaque;
        char err[256];
        loy_codec_t *codec = loy_codec_create(NULL, err, sizeof(err));
        char *json =
            codec ? loy_codec_trigger_to_json(codec, val, len, err, sizeof(err))
                  : NULL;
        json_t *t = json ? json_loads(json, 0, NULL) : NULL;
        json_t *cause = json_object_get(t, "cause");
        (void)key;
        (void)headers;
        (void)partition;
        (void)offset;
        if (t && ids->n < ids->cap) {
                snprintf(ids->id[ids->n], sizeof(ids->id[0]),
                         "%s|%s|%lld|%lld|%s",
                         json_string_value(json_object_get(t, "rule")),
                         json_string_value(json_object_get(t, "customer_id")),
                         (long long)json_integer_value(
                             json_object_get(cause, "partition")),
                         (long long)json_integer_value(
                             json_object_get(cause, "offset")),
                         json_string_value(json_object_get(t, "trigger_id")));
                ids->n++;
        }
        json_decref(t);
        free(json);
        if (codec)
                loy_codec_destroy(codec);
}

static int cmp_id(const void *a, const void *b) {
        return strcmp(a, b);
}

/* Distinct ids, sorted. */
static void distinct(ids_t *ids) {
        int w = 0;
        qsort(ids->id, (size_t)ids->n, sizeof(ids->id[0]), cmp_id);
        for (int i = 0; i < ids->n; i++)
                if (!w || strcmp(ids->id[w - 1], ids->id[i]))
                        memmove(ids->id[w++], ids->id[i], sizeof(ids->id[0]));
        ids->n = w;
}

static int wait_sum(const char *ns, double want, int seconds) {
        for (int i = 0; i < seconds * 10; i++) {
                if (lua_sum(ns, "orders") + lua_sum(ns, "returns") >= want)
                        return 0;
                usleep(100000);
        }
        return -1;
}

static void test_kill9(void) {
        int64_t n;
        pid_t pid;
        ids_t ref = {0}, got = {0};
        int dups;

        tu_kafka_topic(kafka, "purchases-ref", 4);
        tu_kafka_topic(kafka, "triggers-ref", 2);
        tu_kafka_topic(kafka, "purchases-crash", 4);
        tu_kafka_topic(kafka, "triggers-crash", 2);
        n = produce_file("purchases-ref");
        CU_ASSERT_EQUAL(produce_file("purchases-crash"), n);

        /* the undisturbed run */
        pid = spawn("ref", "ref", "g-ref");
        CU_ASSERT_EQUAL(wait_sum("ref", (double)n, 60), 0);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);

        /* the same input, killed three times on the way */
        for (int round = 0; round < 3; round++) {
                double before = lua_sum("crash", "orders");
                pid = spawn("crash", "crash", "g-crash");
                /* let it get somewhere, then pull the plug */
                for (int i = 0; i < 200 && lua_sum("crash", "orders") <
                                               before + 15 + 10 * round;
                     i++)
                        usleep(50000);
                usleep((useconds_t)(rand() % 200) * 1000);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        pid = spawn("crash", "crash", "g-crash");
        CU_ASSERT_EQUAL(wait_sum("crash", (double)n, 60), 0);
        usleep(500000);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);

        /* every event exactly once, per customer and in the day KPIs */
        CU_ASSERT_DOUBLE_EQUAL(lua_sum("crash", "orders") +
                                   lua_sum("crash", "returns"),
                               (double)n, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(lua_sum("crash", "monetary"),
                               lua_sum("ref", "monetary"), 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(kpi_sum("crash", "purchases") +
                                   kpi_sum("crash", "returns"),
                               (double)n, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(kpi_sum("crash", "revenue"),
                               kpi_sum("ref", "revenue"), 1e-6);

        /* the same triggers, by id; a re-sent one keeps its id */
        ref.cap = got.cap = 4096;
        ref.id = calloc((size_t)ref.cap, sizeof(*ref.id));
        got.id = calloc((size_t)got.cap, sizeof(*got.id));
        CU_ASSERT_FATAL(ref.id && got.id);
        tu_kafka_consume_all(kafka, "triggers-ref", 500, on_trigger, &ref);
        tu_kafka_consume_all(kafka, "triggers-crash", 500, on_trigger, &got);
        dups = got.n;
        CU_ASSERT(ref.n > 0);
        distinct(&ref);
        distinct(&got);
        dups -= got.n;
        printf("\n  %d triggers, %d re-sent with the same id\n", got.n, dups);
        CU_ASSERT_EQUAL(got.n, ref.n);
        /* the same rule fired for the same event; a different id for the
         * same cause would sort next to it and break the count above */
        for (int i = 0; i < ref.n && i < got.n; i++)
                CU_ASSERT_EQUAL(
                    strncmp(got.id[i], ref.id[i],
                            (size_t)(strrchr(ref.id[i], '|') - ref.id[i])),
                    0);
        free(ref.id);
        free(got.id);
}

int main(void) {
        CU_pSuite s;
        int rc;
        srand((unsigned)getpid());
        if (tu_redis_start(&redis, 0) != 0)
                return 1;
        kafka = tu_kafka_start(1);
        if (!kafka) {
                tu_redis_stop(&redis);
                return 1;
        }
        CU_initialize_registry();
        s = CU_add_suite("crash", NULL, NULL);
        CU_add_test(s, "kill -9 loyaltyd mid-stream", test_kill9);
        rc = tu_cunit_run();
        tu_kafka_stop(kafka);
        tu_redis_stop(&redis);
        return rc;
}
