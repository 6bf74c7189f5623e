/*
 * loy_clockstore against a real redis-server: the partitions' event times
 * saved after a batch (only those that moved), and read back into a new
 * process's clock on assignment; other topics' entries are ignored.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_clockstore.h"
#include "tu.h"

#define T0 1291190400000LL

static void test_save_restore(void) {
        tu_redis_t r;
        loy_config_t conf;
        loy_store_t *store;
        loy_clock_t *clk, *clk2;
        loy_clockstore_t *cs, *cs2;
        char err[256], args[300], *v;
        const char *topic;
        int32_t part;
        int64_t newest;
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&r, 0), 0);
        loy_config_defaults(&conf);
        store =
            loy_store_create("127.0.0.1", r.port, NULL, 500, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(store);
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(store, err, sizeof(err)), 0);
        clk = loy_clock_create(0, 1000);
        cs = loy_clockstore_create(clk, &conf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
        loy_clock_assign(clk, conf.topic_purchase, 0, 1);
        loy_clock_observe(clk, conf.topic_purchase, 0, T0 + 5, 1);
        loy_clockstore_save(cs, store);
        snprintf(args, sizeof(args), "HGET loy:clock %s:0",
                 conf.topic_purchase);
        v = tu_redis_cli(&r, args);
        CU_ASSERT_STRING_EQUAL(v ? v : "", "1291190400005");
        free(v);
        /* unchanged: not written again */
        free(tu_redis_cli(&r, "DEL loy:clock"));
        loy_clockstore_save(cs, store);
        v = tu_redis_cli(&r, "EXISTS loy:clock");
        CU_ASSERT_STRING_EQUAL(v ? v : "", "0");
        free(v);
        /* after a revocation all are saved again */
        loy_clockstore_revoked(cs);
        loy_clockstore_save(cs, store);
        v = tu_redis_cli(&r, args);
        CU_ASSERT_STRING_EQUAL(v ? v : "", "1291190400005");
        free(v);
        free(tu_redis_cli(&r, "HSET loy:clock elsewhere:0 1291190499999"));
        /* a new owner of the partition starts where it was left */
        clk2 = loy_clock_create(0, 1000);
        cs2 = loy_clockstore_create(clk2, &conf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cs2);
        loy_clock_assign(clk2, conf.topic_purchase, 0, 1);
        loy_clockstore_restore(cs2, store, 0);
        loy_clock_part(clk2, 0, &topic, &part, &newest);
        CU_ASSERT_EQUAL(newest, 0);
        loy_clockstore_assigned(cs2);
        loy_clockstore_restore(cs2, store, 0);
        loy_clock_part(clk2, 0, &topic, &part, &newest);
        CU_ASSERT_EQUAL(part, 0);
        CU_ASSERT_EQUAL(newest, T0 + 5);
        loy_clockstore_destroy(cs2);
        loy_clockstore_destroy(cs);
        loy_clock_destroy(clk2);
        loy_clock_destroy(clk);
        loy_store_destroy(store);
        tu_redis_stop(&r);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"save and restore", test_save_restore},
        };
        return tu_cunit_main("loy_clockstore", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
