/* The mock Kafka cluster helpers themselves: what goes in comes out. */
#include "tu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static tu_kafka_t *k;

static int suite_init(void) {
        k = tu_kafka_start(3);
        return k ? 0 : -1;
}

static int suite_clean(void) {
        tu_kafka_stop(k);
        k = NULL;
        return 0;
}

/* ------------------------------------------------------------ collectors */

#define MAXMSG 512

struct got {
        int n;
        char key[MAXMSG][32];
        int has_key[MAXMSG];
        char val[MAXMSG][64];
        char hdrs[MAXMSG][64];
        int32_t part[MAXMSG];
        int64_t off[MAXMSG];
};

static void collect(const char *key, const void *val, size_t len,
                    const char *headers, int32_t partition, int64_t offset,
                    void *opaque) {
        struct got *g = opaque;
        int i = g->n++;

        if (i >= MAXMSG)
                return;
        g->has_key[i] = key != NULL;
        snprintf(g->key[i], sizeof(g->key[i]), "%s", key ? key : "");
        snprintf(g->val[i], sizeof(g->val[i]), "%.*s", (int)len,
                 (const char *)val);
        snprintf(g->hdrs[i], sizeof(g->hdrs[i]), "%s", headers);
        g->part[i] = partition;
        g->off[i] = offset;
}

static int find_val(const struct got *g, const char *val) {
        for (int i = 0; i < g->n && i < MAXMSG; i++)
                if (!strcmp(g->val[i], val))
                        return i;
        return -1;
}

/* ----------------------------------------------------------------- tests */

/* 20 keys, two messages each, partitioner picks: every message back once,
 * both messages of a key in one partition in produce order, offsets dense
 * from 0 in every partition. */
static void test_keys_roundtrip(void) {
        static struct got g;
        char key[16], val[32];
        int per_part[4] = {0, 0, 0, 0}, parts_used = 0;
        int64_t max_off[4] = {-1, -1, -1, -1};

        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.keys", 4) == 0);
        for (int r = 0; r < 2; r++)
                for (int i = 0; i < 20; i++) {
                        snprintf(key, sizeof(key), "c%d", i);
                        snprintf(val, sizeof(val), "v%d-%c", i, 'a' + r);
                        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.keys", -1, key,
                                                         val,
                                                         strlen(val)) == 0);
                }
        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(tu_kafka_consume_all(k, "tuk.keys", 300, collect, &g),
                        40);
        CU_ASSERT_EQUAL_FATAL(g.n, 40);
        for (int i = 0; i < 20; i++) {
                int a, b;
                snprintf(val, sizeof(val), "v%d-a", i);
                a = find_val(&g, val);
                snprintf(val, sizeof(val), "v%d-b", i);
                b = find_val(&g, val);
                CU_ASSERT_FATAL(a >= 0 && b >= 0);
                snprintf(key, sizeof(key), "c%d", i);
                CU_ASSERT_STRING_EQUAL(g.key[a], key);
                CU_ASSERT_STRING_EQUAL(g.key[b], key);
                CU_ASSERT_EQUAL(g.part[a], g.part[b]);
                CU_ASSERT(g.off[a] < g.off[b]);
                CU_ASSERT_STRING_EQUAL(g.hdrs[a], "");
        }
        for (int i = 0; i < 40; i++) {
                CU_ASSERT_FATAL(g.part[i] >= 0 && g.part[i] < 4);
                per_part[g.part[i]]++;
                if (g.off[i] > max_off[g.part[i]])
                        max_off[g.part[i]] = g.off[i];
        }
        for (int p = 0; p < 4; p++) {
                CU_ASSERT_EQUAL(max_off[p] + 1, per_part[p]);
                parts_used += per_part[p] > 0;
        }
        /* 20 keys hashed over 4 partitions do not all land in one. */
        CU_ASSERT(parts_used > 1);
}

/* A header comes back as "name=value"; no key comes back as NULL; an
 * explicit partition is honoured. */
static void test_headers_and_partition(void) {
        static struct got g;
        int h, p;

        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.hdr", 2) == 0);
        CU_ASSERT_FATAL(tu_kafka_produce_hdr(k, "tuk.hdr", 1, "c7", "bad", 3,
                                             "reason", "not avro") == 0);
        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.hdr", 0, NULL, "plain", 5) ==
                        0);
        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(tu_kafka_consume_all(k, "tuk.hdr", 300, collect, &g),
                        2);
        h = find_val(&g, "bad");
        p = find_val(&g, "plain");
        CU_ASSERT_FATAL(h >= 0 && p >= 0);
        CU_ASSERT_STRING_EQUAL(g.hdrs[h], "reason=not avro");
        CU_ASSERT_EQUAL(g.part[h], 1);
        CU_ASSERT_EQUAL(g.off[h], 0);
        CU_ASSERT(g.has_key[h]);
        CU_ASSERT_STRING_EQUAL(g.key[h], "c7");
        CU_ASSERT_STRING_EQUAL(g.hdrs[p], "");
        CU_ASSERT_EQUAL(g.part[p], 0);
        CU_ASSERT_FALSE(g.has_key[p]);
}

/* A delivery error is reported as -1, and the producer keeps working. */
static void test_delivery_error(void) {
        static struct got g;

        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.err", 4) == 0);
        CU_ASSERT_EQUAL(tu_kafka_produce(k, "tuk.err", 9, "x", "lost", 4), -1);
        CU_ASSERT_EQUAL(tu_kafka_produce(k, "tuk.err", 3, "x", "kept", 4), 0);
        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(tu_kafka_consume_all(k, "tuk.err", 300, collect, &g),
                        1);
        CU_ASSERT_STRING_EQUAL(g.val[0], "kept");
        CU_ASSERT_EQUAL(g.part[0], 3);
}

/* Produce-many without waiting per message, then one flush. */
static void test_async_many(void) {
        static struct got g;
        char val[32];
        long sum = 0;

        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.many", 4) == 0);
        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.fail", 1) == 0);
        for (int i = 1; i <= 300; i++) {
                snprintf(val, sizeof(val), "%d", i);
                CU_ASSERT_FATAL(tu_kafka_produce_async(k, "tuk.many", -1, val,
                                                       val, strlen(val)) == 0);
        }
        CU_ASSERT_EQUAL(tu_kafka_flush(k, 10000), 0);
        /* A failed async delivery makes the flush fail, once. The error
         * is permanent, so the producer does not retry it. */
        rd_kafka_mock_push_request_errors(tu_kafka_mock(k), 0 /* Produce */, 1,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
        CU_ASSERT_FATAL(tu_kafka_produce_async(k, "tuk.fail", 0, "x", "x", 1) ==
                        0);
        CU_ASSERT_EQUAL(tu_kafka_flush(k, 10000), -1);
        CU_ASSERT_EQUAL(tu_kafka_flush(k, 10000), 0);
        CU_ASSERT_EQUAL(tu_kafka_produce(k, "tuk.fail", 0, "y", "y", 1), 0);

        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(tu_kafka_consume_all(k, "tuk.many", 300, collect, &g),
                        300);
        for (int i = 0; i < g.n && i < MAXMSG; i++)
                sum += atol(g.val[i]);
        CU_ASSERT_EQUAL(sum, 300L * 301 / 2);
}

/* A consumer group commits where it stopped and the next member of the
 * group resumes there. */
static void test_group_commit(void) {
        static struct got g;

        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.grp", 2) == 0);
        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.grp", 0, "a", "g1", 2) == 0);
        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.grp", 1, "b", "g2", 2) == 0);
        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.grp", 1, "b", "g3", 2) == 0);
        CU_ASSERT_EQUAL(tu_kafka_committed(k, "tuk-g", "tuk.grp", 0), -1001);

        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(
            tu_kafka_consume_group(k, "tuk.grp", "tuk-g", 200, collect, &g), 3);
        CU_ASSERT_EQUAL(tu_kafka_committed(k, "tuk-g", "tuk.grp", 0), 1);
        CU_ASSERT_EQUAL(tu_kafka_committed(k, "tuk-g", "tuk.grp", 1), 2);

        CU_ASSERT_FATAL(tu_kafka_produce(k, "tuk.grp", 0, "a", "g4", 2) == 0);
        memset(&g, 0, sizeof(g));
        CU_ASSERT_EQUAL(
            tu_kafka_consume_group(k, "tuk.grp", "tuk-g", 200, collect, &g), 1);
        CU_ASSERT_STRING_EQUAL(g.val[0], "g4");
        CU_ASSERT_EQUAL(g.off[0], 1);
        CU_ASSERT_EQUAL(tu_kafka_committed(k, "tuk-g", "tuk.grp", 0), 2);
}

static int on_path(const char *bin) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", bin);
        return system(cmd) == 0;
}

/* An external, real Kafka client sees the mock cluster's topic. */
static void test_external_client(void) {
        const char *bin = on_path("kcat")       ? "kcat"
                          : on_path("kafkacat") ? "kafkacat"
                                                : NULL;
        char cmd[512], line[512], want[128];
        int topic_line = 0, partitions = 0;
        FILE *p;

        if (!bin) {
                printf("\n  neither kcat nor kafkacat on PATH: external "
                       "client check skipped ");
                return;
        }
        CU_ASSERT_FATAL(tu_kafka_topic(k, "tuk.ext", 4) == 0);
        snprintf(cmd, sizeof(cmd),
                 "timeout 20 %s -b %s -L -t tuk.ext -m 10 "
                 "2>&1",
                 bin, tu_kafka_bootstraps(k));
        snprintf(want, sizeof(want), "topic \"tuk.ext\" with 4 partitions:");
        p = popen(cmd, "r");
        CU_ASSERT_FATAL(p != NULL);
        while (fgets(line, sizeof(line), p)) {
                int id;
                if (strstr(line, want))
                        topic_line = 1;
                if (sscanf(line, " partition %d,", &id) == 1 && id >= 0 &&
                    id < 4)
                        partitions++;
        }
        CU_ASSERT_EQUAL(pclose(p), 0);
        CU_ASSERT(topic_line);
        CU_ASSERT_EQUAL(partitions, 4);
}

int main(void) {
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("tu_kafka", suite_init, suite_clean);
        if (!s || !CU_add_test(s, "keys_roundtrip", test_keys_roundtrip) ||
            !CU_add_test(s, "headers_and_partition",
                         test_headers_and_partition) ||
            !CU_add_test(s, "delivery_error", test_delivery_error) ||
            !CU_add_test(s, "async_many", test_async_many) ||
            !CU_add_test(s, "group_commit", test_group_commit) ||
            !CU_add_test(s, "external_client", test_external_client)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
