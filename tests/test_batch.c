/*
 * loy_batch: the touched-customer index (one entry per customer, a real
 * cache behind it, a bound), the outbox growing, the quarantine parsed
 * from store errors, and a restart forgetting the attempt.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "tu.h"
#include "tu_batch.h"

static void test_touch(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        loy_touched_t *t1, *t2;
        char err[256], id[16];
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        t1 = loy_batch_touch(b, "c1", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
        CU_ASSERT_EQUAL(t1->need_load, 1);
        CU_ASSERT_EQUAL(t1->existed, 0);
        CU_ASSERT_EQUAL(t1->partition, -1);
        CU_ASSERT_EQUAL(t1->event_partition, -1);
        CU_ASSERT_STRING_EQUAL(t1->c->id, "c1");
        t2 = loy_batch_touch(b, "c2", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
        CU_ASSERT_PTR_NOT_EQUAL(t1, t2);
        /* the same customer: the same entry */
        CU_ASSERT_PTR_EQUAL(loy_batch_touch(b, "c1", err, sizeof(err)), t1);
        CU_ASSERT_EQUAL(b->ntouched, 2);
        /* the next attempt finds it in the cache: nothing to load */
        loy_batch_restart(b);
        CU_ASSERT_EQUAL(b->ntouched, 0);
        t1 = loy_batch_touch(b, "c1", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
        CU_ASSERT_EQUAL(t1->need_load, 0);
        CU_ASSERT_EQUAL(t1->existed, 1);
        /* no more than touched_cap customers */
        for (int i = 1; i < b->touched_cap; i++) {
                snprintf(id, sizeof(id), "x%d", i);
                CU_ASSERT_PTR_NOT_NULL(
                    loy_batch_touch(b, id, err, sizeof(err)));
        }
        CU_ASSERT_PTR_NULL(
            loy_batch_touch(b, "one-too-many", err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err, "batch holds too many customers");
        tu_batch_free(&T);
}

static void test_outbox(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        for (int i = 0; i < 200; i++) {
                loy_outbox_rec_t *o = loy_batch_outbox_add(b);
                CU_ASSERT_PTR_NOT_NULL_FATAL(o);
                CU_ASSERT_PTR_NULL(o->payload);
                o->payload = strdup("x");
                o->len = 1;
        }
        CU_ASSERT_EQUAL(b->noutbox, 200);
        CU_ASSERT(b->outbox_cap >= 200);
        /* a restart frees the attempt's triggers */
        loy_batch_restart(b);
        CU_ASSERT_EQUAL(b->noutbox, 0);
        tu_batch_free(&T);
}

static void test_quarantine(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[128];
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        CU_ASSERT_EQUAL(loy_batch_quarantine_from(b, "connection lost"), -1);
        CU_ASSERT_EQUAL(loy_batch_quarantine_from(b, "customer : x"), -1);
        CU_ASSERT_EQUAL(loy_batch_quarantine_from(b, "customer c7"), -1);
        CU_ASSERT_EQUAL(b->nquarantine, 0);
        CU_ASSERT_EQUAL(
            loy_batch_quarantine_from(b, "customer c7: WRONGTYPE Operation"),
            0);
        CU_ASSERT_EQUAL(b->nquarantine, 1);
        CU_ASSERT(loy_batch_quarantined(b, "c7"));
        CU_ASSERT(!loy_batch_quarantined(b, "c"));
        CU_ASSERT(!loy_batch_quarantined(b, "c77"));
        /* bounded */
        for (int i = 1; i < LOY_BATCH_QUARANTINE_MAX; i++) {
                snprintf(err, sizeof(err), "customer q%d: bad", i);
                CU_ASSERT_EQUAL(loy_batch_quarantine_from(b, err), 0);
        }
        CU_ASSERT_EQUAL(loy_batch_quarantine_from(b, "customer z: bad"), -1);
        CU_ASSERT(!loy_batch_quarantined(b, "z"));
        tu_batch_free(&T);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_batch", NULL, NULL);
        if (!s || !CU_add_test(s, "touched customers", test_touch) ||
            !CU_add_test(s, "outbox", test_outbox) ||
            !CU_add_test(s, "quarantine", test_quarantine)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
