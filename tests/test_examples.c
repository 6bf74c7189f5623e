/*
 * The programs of examples/ as an integrator runs them, end to end against
 * the real loyaltyd binary, a real redis-server and the mock Kafka
 * cluster: produce_purchase sends two orders of one customer, read_scores
 * reads what loyaltyd made of them, consume_triggers prints the two
 * triggers they fired and commits its group's offsets. Their errors are
 * checked too. A broken example fails here.
 */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "loy_rules.h"
#include "tu.h"

#define T0 1291190400000LL /* 2010-12-01 00:00 UTC */
#define DAY 86400000LL
#define CID "c-ex1"
#define GROUP "example-test"

static tu_redis_t redis;
static tu_kafka_t *kafka;
static pid_t loyaltyd = -1;
static char dir[] = "/tmp/loy_examples_XXXXXX";
/* where produce_purchase said each order went: "purchases:<p>:<offset>" */
static char cause[2][64];

/* A whole file as a string (malloc'd), "" when it cannot be read. */
static char *slurp(const char *path) {
        FILE *fp = fopen(path, "r");
        char *buf = calloc(1, 1 << 16);
        if (fp && buf)
                buf[fread(buf, 1, (1 << 16) - 1, fp)] = '\0';
        if (fp)
                fclose(fp);
        return buf;
}

/* Runs build/examples/<prog> with args (shell words); its exit status,
 * stdout and stderr (malloc'd; the caller frees). */
static int example(const char *prog, const char *args, char **out, char **err) {
        char cmd[4096], opath[300], epath[300];
        int st;
        snprintf(opath, sizeof(opath), "%s/out", dir);
        snprintf(epath, sizeof(epath), "%s/err", dir);
        snprintf(cmd, sizeof(cmd), "%s/%s %s >%s 2>%s",
                 tu_build_path("examples"), prog, args, opath, epath);
        st = system(cmd);
        *out = slurp(opath);
        *err = slurp(epath);
        if (!*out || !*err)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Redis, Kafka and a ready loyaltyd; 0 or -1. */
static int start_all(void) {
        static const char *const progs[] = {
            "examples/produce_purchase", "examples/read_scores",
            "examples/consume_triggers", "loyaltyd"};
        char conf[300], log[300];
        int http = tu_free_port();
        for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
                if (access(tu_build_path(progs[i]), X_OK)) {
                        fprintf(stderr, "\n  %s is not built\n",
                                tu_build_path(progs[i]));
                        return -1;
                }
        }
        if (!mkdtemp(dir) || tu_redis_start(&redis, 0) || http < 0 ||
            !(kafka = tu_kafka_start(1)))
                return -1;
        /* loyaltyd's default topic names: the examples' defaults */
        if (tu_kafka_topic(kafka, "purchases", 2) ||
            tu_kafka_topic(kafka, "reward-triggers", 2) ||
            tu_kafka_topic(kafka, "loyaltyd-deadletter", 1))
                return -1;
        snprintf(conf, sizeof(conf), "%s/loyaltyd.conf", dir);
        snprintf(log, sizeof(log), "%s/loyaltyd.log", dir);
        if (tu_write_file(conf,
                          "[input]\ntopic.browse =\nbatch.ms = 50\n"
                          "[clock]\nidle.ms = 300\n"
                          "[redis]\nport = %d\n"
                          "[kafka]\nbootstrap.servers = %s\n"
                          "[http]\nlisten = 127.0.0.1:%d\n"
                          "[scoring]\nmodel = %s\n"
                          "[rule second_purchase]\n"
                          "when = frequency == 1 and orders >= 1\n"
                          "on = event\npurchase_only = yes\n"
                          "reward.kind = coupon\nreward.value = 10\n"
                          "reward.expiry.days = 45\ncooldown.days = 365\n"
                          "[rule gold_tier]\nwhen = tier >= 2\n"
                          "on = event\npurchase_only = yes\n"
                          "reward.kind = points\nreward.value = 500\n"
                          "cooldown.days = 3650\npriority = 20\n",
                          redis.port, tu_kafka_bootstraps(kafka), http,
                          tu_src_path("config/model.default")))
                return -1;
        loyaltyd = fork();
        if (loyaltyd == 0) {
                if (!freopen(log, "w", stderr))
                        _exit(127);
                execl(tu_build_path("loyaltyd"), "loyaltyd", "-c", conf,
                      (char *)NULL);
                _exit(127);
        }
        if (loyaltyd < 0)
                return -1;
        /* ready: partitions assigned (the group join), Redis answering */
        for (int i = 0; i < 300; i++) {
                if (tu_http(http, "GET", "/readyz", NULL) == 200)
                        return 0;
                if (waitpid(loyaltyd, NULL, WNOHANG) == loyaltyd)
                        break;
                usleep(100000);
        }
        {
                char *text = slurp(log);
                fprintf(stderr, "\n  loyaltyd not ready; its log:\n%s\n",
                        text ? text : "");
                free(text);
        }
        return -1;
}

static int suite_clean(void) {
        char cmd[400];
        if (loyaltyd > 0) {
                kill(loyaltyd, SIGTERM);
                waitpid(loyaltyd, NULL, 0);
        }
        tu_kafka_stop(kafka);
        tu_redis_stop(&redis);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* A set-up that fails stops what it started: CUnit cleans up only after
 * a set-up that succeeded. */
static int suite_init(void) {
        if (start_all() == 0)
                return 0;
        suite_clean();
        return -1;
}

static void test_help(void) {
        static const char *const progs[] = {"produce_purchase", "read_scores",
                                            "consume_triggers"};
        char *out, *err, want[64];
        for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
                snprintf(want, sizeof(want), "usage: %s", progs[i]);
                CU_ASSERT_EQUAL(example(progs[i], "--help", &out, &err), 0);
                CU_ASSERT_EQUAL(strncmp(out, want, strlen(want)), 0);
                CU_ASSERT_STRING_EQUAL(err, "");
                free(out);
                free(err);
                /* an option it does not know */
                CU_ASSERT_EQUAL(example(progs[i], "-Z", &out, &err), 2);
                CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
                free(out);
                free(err);
        }
}

/* Two orders nine days apart: the first fires second_purchase (the
 * coupon for a second order), the second takes the points to 2025, gold
 * tier, and fires gold_tier. */
static void test_produce(void) {
        static const char *const lines[2] = {"85123A:2:12.5", "22633:1:2000"};
        char args[1024], *out, *err, *v = NULL;
        int p;
        long long off;
        for (int i = 0; i < 2; i++) {
                snprintf(args, sizeof(args),
                         "-b %s -e ex-%d -o o-%d -T %lld " CID " %s",
                         tu_kafka_bootstraps(kafka), i + 1, i + 1,
                         T0 + 9 * DAY * i, lines[i]);
                CU_ASSERT_EQUAL(example("produce_purchase", args, &out, &err),
                                0);
                CU_ASSERT_EQUAL(sscanf(out,
                                       "delivered to purchases [%d] at "
                                       "offset %lld",
                                       &p, &off),
                                2);
                snprintf(cause[i], sizeof(cause[i]), "purchases:%d:%lld", p,
                         off);
                if (strncmp(out, "delivered", 9))
                        fprintf(stderr, "\n  produce_purchase: %s%s\n", out,
                                err);
                free(out);
                free(err);
        }
        /* one customer, one partition, in order */
        CU_ASSERT_EQUAL(strncmp(cause[0], cause[1], strlen("purchases:0")), 0);
        for (int i = 0; i < 300; i++) {
                free(v);
                v = tu_redis_cli(&redis, "HGET 'loy:c:{" CID "}' orders");
                if (v && !strcmp(v, "2"))
                        break;
                usleep(100000);
        }
        CU_ASSERT_STRING_EQUAL(v, "2");
        free(v);
}

static void test_read_scores(void) {
        char args[256], *out, *err;
        json_t *j, *f;
        snprintf(args, sizeof(args), "-p %d " CID, redis.port);
        CU_ASSERT_EQUAL(example("read_scores", args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\norders 2\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nfrequency 2\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nmonetary 2025\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\naov 1012.5\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\npoints 2025\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\ntier_name gold\n"));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(out, "first_purchase_ms 1291190400000\n"));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(out, "\nlast_purchase_ms 1291968000000\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\ncool:gold_tier 1291968000000\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nchurn_prob 0."));
        CU_ASSERT_PTR_NULL(strstr(out, "\ne0 ")); /* packed: binary */
        if (!strstr(out, "\nmonetary 2025\n"))
                fprintf(stderr, "\n  read_scores: %s%s\n", out, err);
        free(out);
        free(err);

        /* JSON: valid, numbers as numbers, names as strings */
        snprintf(args, sizeof(args), "-j -p %d -n loy " CID, redis.port);
        CU_ASSERT_EQUAL(example("read_scores", args, &out, &err), 0);
        j = json_loads(out, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        f = json_object_get(j, "fields");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "key")),
                               "loy:c:{" CID "}");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "orders")), 2);
        CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(f, "aov")),
                               1012.5, 1e-9);
        CU_ASSERT_STRING_EQUAL(
            json_string_value(json_object_get(f, "tier_name")), "gold");
        CU_ASSERT(json_is_array(json_object_get(j, "recs")));
        CU_ASSERT_PTR_NULL(json_object_get(f, "e0"));
        json_decref(j);
        free(out);
        free(err);

        /* not there: said, exit 1; in another namespace neither */
        snprintf(args, sizeof(args), "-p %d nobody", redis.port);
        CU_ASSERT_EQUAL(example("read_scores", args, &out, &err), 1);
        CU_ASSERT_STRING_EQUAL(out, "");
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "customer nobody: not found"));
        free(out);
        free(err);
        snprintf(args, sizeof(args), "-p %d -n shop2 " CID, redis.port);
        CU_ASSERT_EQUAL(example("read_scores", args, &out, &err), 1);
        free(out);
        free(err);
}

static void test_consume_triggers(void) {
        char args[512], want[512], id[33], *out, *err, *second;
        long long committed = 0;
        snprintf(args, sizeof(args), "-b %s -g " GROUP " -n 2 -w 20000",
                 tu_kafka_bootstraps(kafka));
        CU_ASSERT_EQUAL(example("consume_triggers", args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "2 triggers, 0 bad records"));
        second = strchr(out, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(second);
        second++;
        CU_ASSERT_PTR_NOT_NULL(strchr(second, '\n'));
        /* the first order's coupon, no holdout in this rule */
        snprintf(want, sizeof(want),
                 "customer=" CID " rule=second_purchase reward=coupon "
                 "value=10 currency= expiry_ts=%lld holdout=false ",
                 T0 + 45 * DAY);
        CU_ASSERT_EQUAL(strncmp(out, want, strlen(want)), 0);
        snprintf(want, sizeof(want), " cause=event:%s event_id=ex-1 ",
                 cause[0]);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
        loy_trigger_id("second_purchase", CID, cause[0], id);
        snprintf(want, sizeof(want), " trigger_id=%s ", id);
        CU_ASSERT(strstr(out, want) && strstr(out, want) < second);
        /* the second order's points */
        snprintf(want, sizeof(want),
                 "customer=" CID " rule=gold_tier reward=points value=500 ");
        CU_ASSERT_EQUAL(strncmp(second, want, strlen(want)), 0);
        snprintf(want, sizeof(want), " cause=event:%s event_id=ex-2 ",
                 cause[1]);
        CU_ASSERT_PTR_NOT_NULL(strstr(second, want));
        CU_ASSERT_PTR_NOT_NULL(strstr(second, " model=default-1 "));
        if (strncmp(out, "customer=", 9))
                fprintf(stderr, "\n  consume_triggers: %s%s\n", out, err);
        free(out);
        free(err);
        /* its group's offsets: past both triggers */
        for (int p = 0; p < 2; p++) {
                int64_t o =
                    tu_kafka_committed(kafka, GROUP, "reward-triggers", p);
                committed += o > 0 ? o : 0;
        }
        CU_ASSERT_EQUAL(committed, 2);

        /* what is not a trigger is said, and the exit status tells */
        CU_ASSERT_EQUAL(
            tu_kafka_produce(kafka, "reward-triggers", 0, CID, "not avro", 8),
            0);
        CU_ASSERT_EQUAL(tu_kafka_produce(kafka, "reward-triggers", 0, CID,
                                         "\0\0\0\0\x09\x02", 6),
                        0);
        snprintf(args, sizeof(args), "-b %s -g example-bad -n 4 -w 20000",
                 tu_kafka_bootstraps(kafka));
        CU_ASSERT_EQUAL(example("consume_triggers", args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, ": not Confluent-framed\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, ": schema id 9, not 3\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "2 triggers, 2 bad records"));
        second = strchr(out, '\n');
        CU_ASSERT(second && strchr(second + 1, '\n') &&
                  !strchr(strchr(second + 1, '\n') + 1, '\n'));
        free(out);
        free(err);
}

/* What goes wrong says what it is. */
static void test_errors(void) {
        char args[512], *out, *err;
        int port = tu_free_port();
        CU_ASSERT_EQUAL(example("produce_purchase", "c1 A1:none:2", &out, &err),
                        2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "A1:none:2: not SKU:QTY:PRICE"));
        free(out);
        free(err);
        CU_ASSERT_EQUAL(example("produce_purchase",
                                "-s /nonexistent.avsc c1 "
                                "A1:1:2",
                                &out, &err),
                        1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent.avsc: No such file"));
        free(out);
        free(err);
        /* nobody on the port: the delivery fails within the timeout */
        snprintf(args, sizeof(args),
                 "-b 127.0.0.1:%d -X message.timeout.ms=1000 c1 A1:1:2", port);
        CU_ASSERT_EQUAL(example("produce_purchase", args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "delivery to purchases on "));
        CU_ASSERT_STRING_EQUAL(out, "");
        free(out);
        free(err);
        snprintf(args, sizeof(args), "-p %d c1", port);
        CU_ASSERT_EQUAL(example("read_scores", args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "Connection refused"));
        free(out);
        free(err);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"every example answers --help and refuses bad options", test_help},
            {"produce_purchase: two orders loyaltyd applies", test_produce},
            {"read_scores: the customer's fields, as text and JSON",
             test_read_scores},
            {"consume_triggers: the triggers they fired, offsets committed",
             test_consume_triggers},
            {"the examples' errors", test_errors},
        };
        return tu_cunit_suite("examples", suite_init, suite_clean, tests,
                              (int)(sizeof(tests) / sizeof(tests[0])));
}
