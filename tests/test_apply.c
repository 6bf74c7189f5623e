/*
 * loy_apply: events applied in order with the offset fence (a replay
 * changes nothing), the daily KPIs of an order, the next silence check, and
 * due checks fired at the clock, each at its own due time. Without Kafka
 * or Redis: customers new to the cache start empty.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "loy_apply.h"
#include "loy_clock.h"
#include "tu.h"
#include "tu_batch.h"

#define DAY LOY_MS_PER_DAY
#define T0 1291190400000LL

static void test_next_check(void) {
        loy_config_t conf;
        loy_cust_t c;
        int64_t first, every, max;
        loy_config_defaults(&conf);
        conf.timer_first_days = 30;
        conf.timer_every_days = 10;
        conf.timer_max_days = 60;
        first = 30 * DAY;
        every = 10 * DAY;
        max = 60 * DAY;
        loy_feat_init(&c, "c1");
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0), 0);
        c.first_purchase_ms = c.last_purchase_ms = T0;
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0), T0 + first);
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0 + first),
                        T0 + first + every);
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0 + first + 1),
                        T0 + first + every);
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0 + max), 0);
        conf.timer_every_days = 0;
        CU_ASSERT_EQUAL(loy_apply_next_check(&conf, &c, T0), 0);
}

static void test_events(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[256], slot[300];
        const loy_batch_agg_t *agg;
        int64_t purchases = 0, fresh = 0, repeat = 0;
        loy_cust_t *c;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 0, 5);
        tu_batch_purchase(&T, "e2", "c2", T0 + 1000, "B", 7, 1, 3);
        tu_batch_purchase(&T, "e3", "c1", T0 + DAY, "B", 20, 0, 6);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.events_applied, 3);
        CU_ASSERT_EQUAL(b->ntouched, 2);
        c = b->touched[0].c;
        CU_ASSERT_STRING_EQUAL(c->id, "c1");
        CU_ASSERT_EQUAL(c->orders, 2);
        CU_ASSERT_EQUAL(c->last_purchase_ms, T0 + DAY);
        CU_ASSERT(b->touched[0].by_event && b->touched[0].by_purchase);
        CU_ASSERT_EQUAL(b->touched[0].partition, 0);
        /* the next check counts from the last purchase */
        CU_ASSERT_EQUAL(c->next_check_ms,
                        loy_apply_next_check(&T.conf, c, T0 + DAY));
        snprintf(slot, sizeof(slot), "off:%s:0", T.conf.topic_purchase);
        CU_ASSERT_EQUAL(loy_feat_slot_get(c, slot, -1), 6);
        CU_ASSERT_EQUAL_FATAL(loy_agg_build(b->agg, &agg), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(agg);
        for (int i = 0; i < agg->nkpi; i++) {
                if (!strcmp(agg->kpi[i].field, "purchases"))
                        purchases += agg->kpi[i].delta;
                if (!strcmp(agg->kpi[i].field, "new_customers"))
                        fresh += agg->kpi[i].delta;
                if (!strcmp(agg->kpi[i].field, "repeat_purchases"))
                        repeat += agg->kpi[i].delta;
        }
        CU_ASSERT_EQUAL(purchases, 3);
        CU_ASSERT_EQUAL(fresh, 2);
        CU_ASSERT_EQUAL(repeat, 1);
        /* the same offsets again (a redo, a replay): skipped */
        tu_batch_next(&T);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 0, 5);
        tu_batch_purchase(&T, "e3", "c1", T0 + DAY, "B", 20, 0, 6);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.events_skipped_dup, 2);
        CU_ASSERT_EQUAL(T.stats.events_applied, 3);
        CU_ASSERT_EQUAL(b->touched[0].c->orders, 2);
        CU_ASSERT_EQUAL(b->touched[0].by_event, 0);
        /* the same event_id on new offsets (a producer that retried, on
         * either partition): not applied again, nor summed in the KPIs;
         * a new id is */
        tu_batch_next(&T);
        tu_batch_purchase(&T, "e3", "c1", T0 + DAY, "B", 20, 0, 9);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 1, 4);
        tu_batch_purchase(&T, "e4", "c1", T0 + 2 * DAY, "C", 5, 0, 10);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.events_duplicate_id, 2);
        CU_ASSERT_EQUAL(T.stats.events_applied, 4);
        CU_ASSERT_EQUAL(b->touched[0].c->orders, 3);
        CU_ASSERT_EQUAL(b->touched[0].c->recent_events.n, 3);
        CU_ASSERT_EQUAL_FATAL(loy_agg_build(b->agg, &agg), 0);
        purchases = 0;
        for (int i = 0; agg && i < agg->nkpi; i++)
                if (!strcmp(agg->kpi[i].field, "purchases"))
                        purchases += agg->kpi[i].delta;
        CU_ASSERT_EQUAL(purchases, 1);
        tu_batch_free(&T);
}

static void test_due(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[256];
        loy_touched_t *t;
        int64_t first;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        CU_ASSERT_EQUAL_FATAL(
            tu_batch_rule(&T, "silent", "recency_days >= 1", 1), 0);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 0, 5);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        t = &b->touched[0];
        first = t->c->next_check_ms;
        CU_ASSERT_FATAL(first > T0);
        /* the clock not there yet: nothing fires */
        CU_ASSERT_EQUAL(loy_apply_due(b, first - 1, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.timers_fired, 0);
        CU_ASSERT_EQUAL(t->fired, 0);
        /* past it: the check fires at its due time, the next is set */
        CU_ASSERT_EQUAL(loy_apply_due(b, first, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.timers_fired, 1);
        CU_ASSERT_EQUAL(t->fired, 1);
        CU_ASSERT_EQUAL(t->timer_due, first);
        CU_ASSERT_EQUAL(t->c->scored_ms, first);
        CU_ASSERT_EQUAL(t->c->next_check_ms,
                        loy_apply_next_check(&T.conf, t->c, first));
        CU_ASSERT_EQUAL(b->noutbox, 1);
        /* a timer of a customer who never bought is dropped */
        t = loy_batch_touch(b, "ghost", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        t->by_timer = 1;
        t->c->next_check_ms = T0;
        CU_ASSERT_EQUAL(loy_apply_due(b, first, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(t->c->next_check_ms, 0);
        CU_ASSERT_EQUAL(T.stats.timers_fired, 1);
        tu_batch_free(&T);
}

/*
 * Regression (fault suite, thaw scenario, seed 591411403): a customer whose
 * events in the batch were all applied before (a redo after a take-over
 * skips them) had no partition, so its checks fired up to the batch's
 * clock -- past its own partition's events still to be read, which the
 * undisturbed run applies first (an extra winback, another trigger id).
 */
static void test_due_after_skipped_events(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[256];
        loy_touched_t *t;
        int64_t first, clock_ms;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        CU_ASSERT_EQUAL_FATAL(
            tu_batch_rule(&T, "silent", "recency_days >= 1", 1), 0);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 3, 5);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        first = b->touched[0].c->next_check_ms;
        CU_ASSERT_FATAL(first > T0);
        /* partition 3 applied up to T0, more to read; another partition
         * has moved the clock far past the check */
        clock_ms = first + 100 * DAY;
        CU_ASSERT_EQUAL(loy_clock_assign(b->clock, T.conf.topic_purchase, 3, 0),
                        0);
        loy_clock_observe(b->clock, T.conf.topic_purchase, 3, T0, 0);
        loy_clock_backlog(b->clock, T.conf.topic_purchase, 3, 1);
        tu_batch_next(&T);
        tu_batch_purchase(&T, "e1", "c1", T0, "A", 10, 3, 5);
        CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.events_skipped_dup, 1);
        t = &b->touched[0];
        /* also where the aggregates list the customer's count moves and
         * fired checks for a redo (it was -1: a list nobody reads) */
        CU_ASSERT_EQUAL(t->event_partition, 3);
        CU_ASSERT_EQUAL(loy_apply_due(b, clock_ms, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(T.stats.timers_fired, 0);
        CU_ASSERT_EQUAL(t->fired, 0);
        CU_ASSERT_EQUAL(t->c->next_check_ms, first);
        /* once the partition is read to its end, the clock decides */
        loy_clock_backlog(b->clock, T.conf.topic_purchase, 3, 0);
        CU_ASSERT_EQUAL(loy_apply_due(b, clock_ms, err, sizeof(err)), 0);
        CU_ASSERT(T.stats.timers_fired >= 1);
        CU_ASSERT_EQUAL(t->timer_due > 0 && t->fired, 1);
        CU_ASSERT_EQUAL(t->partition, 3); /* its check in f:3 */
        tu_batch_free(&T);
}

/* The batch's sum of KPI field f. */
static int64_t kpi_sum(loy_batch_t *b, const char *f) {
        const loy_batch_agg_t *agg;
        int64_t sum = 0;
        if (loy_agg_build(b->agg, &agg) != 0)
                return -1;
        for (int i = 0; agg && i < agg->nkpi; i++)
                if (!strcmp(agg->kpi[i].field, f))
                        sum += agg->kpi[i].delta;
        return sum;
}

/* A purchase within 30 days (the reward's expiry) after a trigger
 * converts it, once; later purchases, or one after the window, do not; a
 * trigger fired again converts again; the control group's are counted
 * apart. */
static void test_conversions(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        char err[256];
        for (int holdout = 0; holdout < 2; holdout++) {
                const char *conv =
                    holdout ? "holdout_converted:buyer" : "converted:buyer";
                const char *other =
                    holdout ? "converted:buyer" : "holdout_converted:buyer";
                CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
                CU_ASSERT_EQUAL_FATAL(
                    tu_batch_rule(&T, "buyer", "orders >= 1", 0), 0);
                T.conf.rules.rule[0].holdout_pct = holdout ? 100 : 0;
                /* c1: fires on its first order, converted by the second */
                tu_batch_purchase(&T, "a1", "c1", T0, "A", 10, 0, 1);
                tu_batch_purchase(&T, "a2", "c1", T0 + DAY, "A", 10, 0, 2);
                tu_batch_purchase(&T, "a3", "c1", T0 + 2 * DAY, "A", 10, 0, 3);
                /* c2: its second order comes after the window (and fires
                 * the rule again: cooldown 30 days), the third converts
                 * that second trigger */
                tu_batch_purchase(&T, "b1", "c2", T0, "A", 10, 1, 1);
                tu_batch_purchase(&T, "b2", "c2", T0 + 31 * DAY, "A", 10, 1, 2);
                tu_batch_purchase(&T, "b3", "c2", T0 + 40 * DAY, "A", 10, 1, 3);
                CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
                CU_ASSERT_EQUAL(
                    kpi_sum(b, holdout ? "holdout:buyer" : "triggers:buyer"),
                    3);
                CU_ASSERT_EQUAL(kpi_sum(b, conv), 2);
                CU_ASSERT_EQUAL(kpi_sum(b, other), 0);
                CU_ASSERT_EQUAL(T.stats.conversions_untracked, 0);
                /* a later batch: the conversion is remembered with the
                 * customer, not counted again */
                tu_batch_next(&T);
                tu_batch_purchase(&T, "a4", "c1", T0 + 3 * DAY, "A", 10, 0, 4);
                CU_ASSERT_EQUAL(loy_apply_events(b, err, sizeof(err)), 0);
                CU_ASSERT_EQUAL(kpi_sum(b, conv), 0);
                CU_ASSERT_EQUAL(kpi_sum(b, "purchases"), 1);
                tu_batch_free(&T);
        }
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_apply", NULL, NULL);
        if (!s || !CU_add_test(s, "next silence check", test_next_check) ||
            !CU_add_test(s, "events, fences, KPIs", test_events) ||
            !CU_add_test(s, "due checks", test_due) ||
            !CU_add_test(s,
                         "checks of a customer whose events were "
                         "applied before",
                         test_due_after_skipped_events) ||
            !CU_add_test(s, "conversions of triggers, treated and control",
                         test_conversions)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
