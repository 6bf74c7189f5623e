/*
 * loy_stats against a real redis-server: nearest-rank percentiles, the
 * counters published as increments since the last publish that landed
 * (several processes add up), the gauges set.
 */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_stats.h"
#include "tu.h"

static tu_redis_t R;

static long long stat_of(const char *field) {
        char args[128];
        char *v;
        long long n;
        snprintf(args, sizeof(args), "HGET loy:stats %s", field);
        v = tu_redis_cli(&R, args);
        n = v ? atoll(v) : -1;
        free(v);
        return n;
}

static void test_percentile(void) {
        const double v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        CU_ASSERT_EQUAL(loy_stats_percentile(v, 0, 0.5), 0);
        CU_ASSERT_EQUAL(loy_stats_percentile(v, 10, 0.5), 5);
        CU_ASSERT_EQUAL(loy_stats_percentile(v, 10, 0.99), 10);
        CU_ASSERT_EQUAL(loy_stats_percentile(v, 10, 0), 1);
        CU_ASSERT_EQUAL(loy_stats_percentile(v, 1, 0.99), 1);
}

static void test_publish(void) {
        loy_stats_t *s = loy_stats_create();
        loy_proc_stats_t st;
        loy_stats_extra_t x;
        char err[256];
        loy_store_t *store;
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&R, 0), 0);
        store =
            loy_store_create("127.0.0.1", R.port, NULL, 500, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(store);
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(store, err, sizeof(err)), 0);
        memset(&st, 0, sizeof(st));
        memset(&x, 0, sizeof(x));
        st.events_in = 10;
        st.batches = 1;
        st.busy_s = 0.5;
        st.clock_ms = 1234;
        x.reco_flushed = 3;
        x.cache_customers = 7;
        for (int i = 1; i <= 100; i++)
                loy_stats_batch(s, i);
        loy_stats_publish(s, store, &st, &x, 42);
        CU_ASSERT_EQUAL(stat_of("events_in"), 10);
        CU_ASSERT_EQUAL(stat_of("reco_increments"), 3);
        CU_ASSERT_EQUAL(stat_of("batch_ms_last"), 42);
        CU_ASSERT_EQUAL(stat_of("batch_ms_p50"), 50);
        CU_ASSERT_EQUAL(stat_of("batch_ms_p99"), 99);
        CU_ASSERT_EQUAL(stat_of("events_per_s"), 20);
        CU_ASSERT_EQUAL(stat_of("clock_ms"), 1234);
        CU_ASSERT_EQUAL(stat_of("cache_customers"), 7);
        /* another process's counts add up */
        free(tu_redis_cli(&R, "HINCRBY loy:stats events_in 100"));
        st.events_in = 15;
        loy_stats_publish(s, store, &st, &x, 1);
        CU_ASSERT_EQUAL(stat_of("events_in"), 115);
        /* a publish that did not land goes with the next one */
        tu_redis_kill(&R, SIGKILL);
        st.events_in = 20;
        loy_stats_publish(s, store, &st, &x, 1);
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&R), 0);
        CU_ASSERT_EQUAL(loy_store_connect(store, err, sizeof(err)), 0);
        free(tu_redis_cli(&R, "DEL loy:stats"));
        loy_stats_publish(s, store, &st, &x, 1);
        CU_ASSERT_EQUAL(stat_of("events_in"), 5);
        loy_store_destroy(store);
        loy_stats_destroy(s);
        tu_redis_stop(&R);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"percentiles", test_percentile},
            {"publish", test_publish},
        };
        return tu_cunit_main("loy_stats", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
