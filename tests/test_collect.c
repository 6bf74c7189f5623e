/*
 * loy_collect: the apply order of a batch, without Kafka: partitions'
 * runs merged by event time, each run kept in offset order even where its
 * timestamps go backwards.
 */
#include <CUnit/Basic.h>
#include <string.h>

#include "loy_collect.h"
#include "tu.h"
#include "tu_batch.h"

#define T0 1291190400000LL

static void test_merge(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        /* partition 0: t=10, 30, 20 (backwards); partition 1: t=5, 25 */
        static const struct { int part; int off; int64_t ts; } in[] = {
            {0, 100, 10}, {1, 7, 5}, {0, 101, 30}, {1, 8, 25}, {0, 102, 20}};
        static const int want[] = {1, 0, 3, 2, 4};
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        for (int i = 0; i < 5; i++)
                CU_ASSERT_PTR_NOT_NULL_FATAL(tu_batch_purchase(
                    &T, "e", "c1", T0 + in[i].ts, "A", 1, in[i].part,
                    in[i].off));
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

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_collect", NULL, NULL);
        if (!s || !CU_add_test(s, "merge by time, offsets kept", test_merge) ||
            !CU_add_test(s, "runs per topic and partition",
                         test_merge_topics)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
