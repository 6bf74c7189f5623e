/*
 * loy_load and loy_write against a real redis-server, without Kafka: a
 * batch loaded, applied and written lands in the customer's hash; only
 * customers something happened to are written; a batch held too long is
 * not written; a fresh process loads what was written.
 */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_apply.h"
#include "loy_load.h"
#include "loy_time.h"
#include "loy_write.h"
#include "tu.h"
#include "tu_batch.h"

#define DAY LOY_MS_PER_DAY
#define T0 1291190400000LL

static tu_redis_t R;

static int suite_init(void) {
        return tu_redis_start(&R, 0);
}

static int suite_clean(void) {
        tu_redis_stop(&R);
        return 0;
}

/* One batch through load, apply and write. */
static int run(tu_batch_t *t) {
        char err[512];
        int rc = loy_load_batch(&t->b, err, sizeof(err));
        if (!rc && (loy_apply_events(&t->b, err, sizeof(err)) ||
                    loy_apply_due(&t->b, 0, err, sizeof(err))))
                rc = LOY_STORE_ERR;
        if (!rc)
                rc = loy_write_batch(&t->b, T0 + DAY, err, sizeof(err));
        if (rc)
                fprintf(stderr, "batch: %s\n", err);
        return rc;
}

static void field_eq(const char *key, const char *field, const char *want) {
        char *v = tu_redis_field(&R, key, field);
        CU_ASSERT_PTR_NOT_NULL(v);
        if (v && strcmp(v, want))
                fprintf(stderr, "%s %s: '%s', want '%s'\n", key, field, v,
                        want);
        CU_ASSERT_STRING_EQUAL(v ? v : "", want);
        free(v);
}

static void test_write(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        const loy_batch_agg_t *agg;
        char err[256];
        int n;
        free(tu_redis_cli(&R, "FLUSHALL"));
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, R.port, 0), 0);
        CU_ASSERT_EQUAL_FATAL(tu_batch_rule(&T, "welcome", "orders >= 1", 0),
                              0);
        T.conf.rules.rule[0].cooldown_days = 365;
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 0, 5);
        tu_batch_purchase(&T, "e2", "c1", T0 + DAY, "B", 20, 0, 6);
        tu_batch_purchase(&T, "e3", "c2", T0, "B", 5, 1, 2);
        b->polled_ms = loy_time_mono_ms();
        CU_ASSERT_EQUAL_FATAL(run(&T), LOY_STORE_OK);
        field_eq("loy:c:{c1}", "orders", "2");
        field_eq("loy:c:{c2}", "orders", "1");
        CU_ASSERT_EQUAL(b->noutbox, 2);
        {
                char *v = tu_redis_cli(&R, "HLEN loy:outbox");
                CU_ASSERT_STRING_EQUAL(v ? v : "", "2");
                free(v);
        }
        /* the same events again: nobody changed, nothing to write */
        tu_batch_next(&T);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 0, 5);
        CU_ASSERT_EQUAL(loy_load_batch(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(loy_write_build(b, &n, &agg, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(b->noutbox, 0);
        /* held past the session timeout: not written */
        tu_batch_next(&T);
        tu_batch_purchase(&T, "e4", "c1", T0 + 2 * DAY, "A", 10, 0, 7);
        b->polled_ms = loy_time_mono_ms() - 2 * b->stale_ms;
        CU_ASSERT_EQUAL(run(&T), LOY_WRITE_STALE);
        field_eq("loy:c:{c1}", "orders", "2");
        tu_batch_free(&T);
}

static void test_load(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[256];
        /* what test_write left, read by a process with an empty cache */
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, R.port, 0), 0);
        tu_batch_purchase(&T, "e9", "c1", T0 + 3 * DAY, "A", 10, 0, 9);
        tu_batch_purchase(&T, "e10", "new", T0 + 3 * DAY, "A", 10, 1, 9);
        b->timer_ids = calloc(1, sizeof(char *));
        b->timer_part = calloc(1, sizeof(int32_t));
        b->timer_due = calloc(1, sizeof(int64_t));
        CU_ASSERT_PTR_NOT_NULL_FATAL(b->timer_due);
        b->timer_ids[0] = strdup("c2");
        b->timer_part[0] = 1;
        b->timer_due[0] = T0 + 30 * DAY;
        b->ntimers = b->timers_cap = 1;
        CU_ASSERT_EQUAL_FATAL(loy_load_batch(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(b->ntouched, 3);
        CU_ASSERT_STRING_EQUAL(b->touched[0].c->id, "c1");
        CU_ASSERT_EQUAL(b->touched[0].existed, 1);
        CU_ASSERT_EQUAL(b->touched[0].c->orders, 2);
        CU_ASSERT_EQUAL(b->touched[0].old_timer,
                        b->touched[0].c->next_check_ms);
        CU_ASSERT_EQUAL(b->touched[1].existed, 0);
        CU_ASSERT_EQUAL(b->touched[1].c->orders, 0);
        CU_ASSERT_EQUAL(b->touched[1].counted.seg, -1);
        /* the timer's customer, with its entry */
        CU_ASSERT_STRING_EQUAL(b->touched[2].c->id, "c2");
        CU_ASSERT_EQUAL(b->touched[2].existed, 1);
        CU_ASSERT_EQUAL(b->touched[2].by_timer, 1);
        CU_ASSERT_EQUAL(b->touched[2].partition, 1);
        CU_ASSERT_EQUAL(b->touched[2].timer_due, T0 + 30 * DAY);
        /* Redis down: the store's error */
        tu_redis_kill(&R, SIGKILL);
        tu_batch_next(&T);
        loy_cache_clear(b->cache);
        tu_batch_purchase(&T, "e9", "c1", T0 + 3 * DAY, "A", 10, 0, 9);
        CU_ASSERT_NOT_EQUAL(loy_load_batch(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tu_redis_restart(&R), 0);
        tu_batch_free(&T);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_write, loy_load", suite_init, suite_clean);
        if (!s || !CU_add_test(s, "write a batch", test_write) ||
            !CU_add_test(s, "load it back", test_load)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
