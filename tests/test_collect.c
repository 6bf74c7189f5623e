/*
 * loy_collect: the apply order of a batch, without Kafka: partitions'
 * runs merged by event time, each run kept in offset order even where its
 * timestamps go backwards. And, with real messages from the mock cluster,
 * what a batch's events do to event time when they wait or are rewound.
 */
#include <CUnit/Basic.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "loy_clock.h"
#include "loy_collect.h"
#include "tu.h"
#include "tu_batch.h"

#define DAY 86400000LL

#define T0 1291190400000LL

static void test_merge(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        /* partition 0: t=10, 30, 20 (backwards); partition 1: t=5, 25 */
        static const struct {
                int part;
                int off;
                int64_t ts;
        } in[] = {
            {0, 100, 10}, {1, 7, 5}, {0, 101, 30}, {1, 8, 25}, {0, 102, 20}};
        static const int want[] = {1, 0, 3, 2, 4};
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        for (int i = 0; i < 5; i++)
                CU_ASSERT_PTR_NOT_NULL_FATAL(
                    tu_batch_purchase(&T, "e", "c1", T0 + in[i].ts, "A", 1,
                                      in[i].part, in[i].off));
        loy_collect_merge_order(b);
        for (int i = 0; i < 5; i++)
                CU_ASSERT_EQUAL(b->order[i], want[i]);
        tu_batch_free(&T);
}

static void test_merge_topics(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        loy_event_t *ev;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        /* the same partition number of two topics: two runs */
        CU_ASSERT_PTR_NOT_NULL_FATAL(
            tu_batch_purchase(&T, "e1", "c1", T0 + 50, "A", 1, 0, 1));
        ev = tu_batch_purchase(&T, "e2", "c1", T0 + 40, "A", 1, 0, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        ev->topic = T.conf.topic_browse;
        loy_collect_merge_order(b);
        CU_ASSERT_EQUAL(b->order[0], 1);
        CU_ASSERT_EQUAL(b->order[1], 0);
        tu_batch_free(&T);
}

/* The newest event time the clock holds for (topic, partition). */
static int64_t newest_of(const loy_clock_t *clk, const char *topic,
                         int32_t partition) {
        for (int i = 0; i < loy_clock_owned(clk); i++) {
                const char *t;
                int32_t p;
                int64_t ts;
                loy_clock_part(clk, i, &t, &p, &ts);
                if (p == partition && !strcmp(t, topic))
                        return ts;
        }
        return -1;
}

/* A consumer assigned (topic, 0) from the start; polls n messages into
 * b->msgs. */
static rd_kafka_t *poll_into(tu_kafka_t *k, const char *topic, loy_batch_t *b,
                             int n) {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *asg;
        rd_kafka_t *rk;
        rd_kafka_conf_set(conf, "bootstrap.servers", tu_kafka_bootstraps(k),
                          err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", "collect-test", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!rk)
                return NULL;
        rd_kafka_poll_set_consumer(rk);
        asg = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(asg, topic, 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, asg);
        rd_kafka_topic_partition_list_destroy(asg);
        for (int tries = 0; b->nmsgs < n && tries < 200; tries++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                if (m->err) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                b->msgs[b->nmsgs++] = m;
        }
        return rk;
}

/*
 * Regression (fault suite, thaw scenario): the purchases of a partition
 * whose browse partner still had data to read waited for the next batch,
 * but had already moved the partition's event time, so the silence checks
 * of its customers fired past events not applied yet. Only what stays in
 * the batch moves it; a rewound batch moves it back and marks the
 * partition as having data to read.
 */
static void test_event_time_of_waiting_events(void) {
        enum { N = 5 };
        tu_kafka_t *k = tu_kafka_start(1);
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        const char *pt;
        rd_kafka_t *rk;
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        pt = T.conf.topic_purchase;
        tu_kafka_topic(k, pt, 1);
        for (int i = 0; i < N; i++) {
                char json[256];
                int n = snprintf(json, sizeof(json),
                                 "{\"event_id\":\"w%d\",\"customer_id\":"
                                 "\"c%d\",\"ts\":%lld,\"order_id\":\"o%d\","
                                 "\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
                                 "\"unit_price\":5}]}",
                                 i, i, T0 + (i + 1) * DAY, i);
                CU_ASSERT_EQUAL(
                    tu_kafka_produce(k, pt, 0, "c", json, (size_t)n), 0);
        }
        rk = poll_into(k, pt, b, N);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
        CU_ASSERT_EQUAL_FATAL(b->nmsgs, N);
        /* applied up to T0 here; the browse partner has data to read */
        loy_clock_assign(b->clock, pt, 0, 0);
        loy_clock_assign(b->clock, T.conf.topic_browse, 0, 0);
        loy_clock_restore(b->clock, pt, 0, T0);
        loy_clock_backlog(b->clock, pt, 0, 1);
        loy_clock_backlog(b->clock, T.conf.topic_browse, 0, 1);
        loy_collect_decode(b, rk);
        CU_ASSERT_EQUAL(b->nevents, 0);
        CU_ASSERT_EQUAL(b->ncarry, N);
        CU_ASSERT_EQUAL(newest_of(b->clock, pt, 0), T0);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(b->clock, pt, 0, T0 + 90 * DAY),
                        T0);
        /* the partner read to its end: the carried events go in */
        loy_clock_backlog(b->clock, T.conf.topic_browse, 0, 0);
        for (int i = 0; i < b->ncarry; i++)
                b->msgs[i] = b->carry[i];
        b->nmsgs = b->ncarry;
        b->ncarry = 0;
        loy_collect_decode(b, rk);
        CU_ASSERT_EQUAL(b->nevents, N);
        CU_ASSERT_EQUAL(newest_of(b->clock, pt, 0), T0 + N * DAY);
        /* read to its end, then the batch is rewound: read again */
        loy_clock_backlog(b->clock, pt, 0, 0);
        loy_collect_rewind(b, NULL, rk);
        CU_ASSERT_EQUAL(b->nmsgs, 0);
        CU_ASSERT(newest_of(b->clock, pt, 0) < T0 + DAY);
        CU_ASSERT_EQUAL(loy_clock_has_backlog(b->clock, pt, 0), 1);
        CU_ASSERT(loy_clock_timer_limit(b->clock, pt, 0, T0 + 90 * DAY) <
                  T0 + DAY);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        tu_batch_free(&T);
        tu_kafka_stop(k);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_collect", NULL, NULL);
        if (!s || !CU_add_test(s, "merge by time, offsets kept", test_merge) ||
            !CU_add_test(s, "runs per topic and partition",
                         test_merge_topics) ||
            !CU_add_test(s,
                         "event time of events that wait or are read "
                         "again",
                         test_event_time_of_waiting_events)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
