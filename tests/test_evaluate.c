/*
 * loy_evaluate: scoring and the reward decision of one customer after an
 * event or at a silence check, without Kafka or Redis: the trigger lands
 * in the batch's outbox encoded (its id deterministic, its customer and
 * rule inside), is counted in the KPIs, and a cooldown holds the next one.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_decide.h"
#include "loy_evaluate.h"
#include "tu.h"
#include "tu_batch.h"

#define DAY LOY_MS_PER_DAY
#define T0 1291190400000LL

static void buyer(loy_cust_t *c) {
        c->first_purchase_ms = c->last_purchase_ms = T0;
        c->orders = 1;
        c->purchase_days = 1;
        c->gross_value = 40;
        c->last_event_ms = T0;
}

static int kpi_of(loy_batch_t *b, const char *field) {
        const loy_batch_agg_t *agg;
        int64_t n = 0;
        if (loy_agg_build(b->agg, &agg) || !agg)
                return 0;
        for (int i = 0; i < agg->nkpi; i++)
                if (!strcmp(agg->kpi[i].field, field))
                        n += agg->kpi[i].delta;
        return (int)n;
}

static void test_decide_event(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        loy_touched_t *t;
        const loy_event_t *ev;
        char err[256], cause[300], want[33], *json;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        CU_ASSERT_EQUAL_FATAL(tu_batch_rule(&T, "welcome", "orders >= 1", 0),
                              0);
        T.conf.rules.rule[0].cooldown_days = 30;
        t = loy_batch_touch(b, "c1", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        buyer(t->c);
        ev = tu_batch_purchase(&T, "e1", "c1", T0, "A", 40, 3, 41);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_EQUAL(loy_evaluate_decide(b, t, ev, T0, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(b->noutbox, 1);
        CU_ASSERT_EQUAL(b->outbox[0].touched, 0);
        snprintf(cause, sizeof(cause), "%s:3:41", T.conf.topic_purchase);
        loy_trigger_id("welcome", "c1", cause, want);
        CU_ASSERT_STRING_EQUAL(b->outbox[0].trigger_id, want);
        json = loy_codec_trigger_to_json(b->codec, b->outbox[0].payload,
                                         b->outbox[0].len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(json);
        CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"c1\""));
        CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"welcome\""));
        CU_ASSERT_PTR_NOT_NULL(strstr(json, want));
        free(json);
        CU_ASSERT_EQUAL(kpi_of(b, "triggers:welcome"), 1);
        CU_ASSERT_EQUAL(loy_feat_slot_get(t->c, "cool:welcome", -1), T0);
        /* in cooldown: nothing more */
        CU_ASSERT_EQUAL(
            loy_evaluate_decide(b, t, ev, T0 + DAY, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(b->noutbox, 1);
        tu_batch_free(&T);
}

static void test_evaluate_timer(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        loy_touched_t *t;
        char err[256], cause[64], want[33];
        int64_t due = T0 + 40 * DAY;
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        CU_ASSERT_EQUAL_FATAL(
            tu_batch_rule(&T, "silent", "recency_days >= 30", 1), 0);
        t = loy_batch_touch(b, "c2", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        buyer(t->c);
        /* an event does not fire a timer rule */
        CU_ASSERT_EQUAL(
            loy_evaluate(b, t,
                         tu_batch_purchase(&T, "e1", "c2", T0, "A", 40, 2, 9),
                         0, err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(b->noutbox, 0);
        /* the check: scored at its due time, not the last event's */
        t->partition = 2;
        t->timer_due = due;
        CU_ASSERT_EQUAL(loy_evaluate(b, t, NULL, due, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(t->c->scored_ms, due);
        CU_ASSERT_EQUAL_FATAL(b->noutbox, 1);
        snprintf(cause, sizeof(cause), "timer:2:%lld", (long long)due);
        loy_trigger_id("silent", "c2", cause, want);
        CU_ASSERT_STRING_EQUAL(b->outbox[0].trigger_id, want);
        tu_batch_free(&T);
}

static void test_score(void) {
        tu_batch_t T;
        loy_batch_t *b = &T.b;
        loy_touched_t *t;
        char err[256];
        CU_ASSERT_EQUAL_FATAL(tu_batch_init(&T, 0, 0), 0);
        t = loy_batch_touch(b, "c3", err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        /* no purchase yet: no segment, no scores */
        loy_evaluate_score(b, t, T0);
        CU_ASSERT_EQUAL(t->c->scored_ms, T0);
        CU_ASSERT_EQUAL(t->c->segment, LOY_SEG_NONE);
        buyer(t->c);
        loy_evaluate_score(b, t, T0 + 10 * DAY);
        CU_ASSERT_EQUAL(t->c->scored_ms, T0 + 10 * DAY);
        CU_ASSERT(t->c->p_alive > 0 && t->c->p_alive <= 1);
        CU_ASSERT(t->c->churn_prob >= 0 && t->c->churn_prob <= 1);
        CU_ASSERT(t->c->clv >= 0);
        /* later, the same customer is less likely alive */
        {
                double p = t->c->p_alive;
                loy_evaluate_score(b, t, T0 + 300 * DAY);
                CU_ASSERT(t->c->p_alive <= p);
        }
        tu_batch_free(&T);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("loy_evaluate", NULL, NULL);
        if (!s || !CU_add_test(s, "decide after an event", test_decide_event) ||
            !CU_add_test(s, "a silence check", test_evaluate_timer) ||
            !CU_add_test(s, "score", test_score)) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}
