/*
 * loy_decide: the reward decision for one evaluation, without Kafka or
 * Redis: which rule fires, its cooldown, the deterministic trigger id, the
 * cause and the times of the record.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "loy_decide.h"
#include "loy_feat.h"
#include "loy_rules.h"
#include "tu.h"

#define DAY LOY_MS_PER_DAY
#define T0 1291190400000LL

static loy_rules_t rules;

static void add_rule(const char *name, const char *when, loy_rule_on_t on,
                     int priority, double cooldown_days, int purchase_only) {
        loy_rule_t *r = &rules.rule[rules.n++];
        char err[256];
        loy_rule_init(r, name);
        CU_ASSERT_EQUAL_FATAL(loy_rule_parse_when(r, when, err, sizeof(err)),
                              0);
        r->on = on;
        r->priority = priority;
        r->cooldown_days = cooldown_days;
        r->purchase_only = purchase_only;
        r->reward_value = 15;
        r->reward_expiry_days = 30;
}

static void setup(void) {
        memset(&rules, 0, sizeof(rules));
        add_rule("second", "frequency == 1 and orders >= 1", LOY_ON_EVENT, 5,
                 365, 1);
        add_rule("silent", "recency_days >= 30", LOY_ON_TIMER, 10, 90, 0);
}

static void buyer(loy_cust_t *c) {
        loy_feat_init(c, "c9");
        c->first_purchase_ms = c->last_purchase_ms = T0;
        c->orders = 1;
        c->purchase_days = 1;
        c->gross_value = 40;
        c->last_event_ms = T0;
}

static void test_event(void) {
        loy_cust_t c;
        loy_decision_t d;
        loy_cause_t cause = {"purchases", 3, 41, "e1", T0, 1};
        char want[33];
        setup();
        buyer(&c);
        CU_ASSERT_EQUAL_FATAL(
            loy_decide(&rules, NULL, &c, &cause, T0 + 5, T0 + 99, "m1", &d), 1);
        CU_ASSERT_EQUAL(d.rule, 0);
        loy_trigger_id("second", "c9", "purchases:3:41", want);
        CU_ASSERT_STRING_EQUAL(d.trigger_id, want);
        CU_ASSERT_STRING_EQUAL(d.trigger.trigger_id, want);
        CU_ASSERT_STRING_EQUAL(d.trigger.cause_kind, "event");
        CU_ASSERT_STRING_EQUAL(d.trigger.cause_topic, "purchases");
        CU_ASSERT_EQUAL(d.trigger.cause_partition, 3);
        CU_ASSERT_EQUAL(d.trigger.cause_offset, 41);
        CU_ASSERT_STRING_EQUAL(d.trigger.cause_event_id, "e1");
        /* the cause's time, not the scoring time */
        CU_ASSERT_EQUAL(d.trigger.event_time_ms, T0);
        CU_ASSERT_EQUAL(d.trigger.reward_expiry_ms, T0 + 30 * DAY);
        CU_ASSERT_EQUAL(d.trigger.emit_time_ms, T0 + 99);
        CU_ASSERT_STRING_EQUAL(d.trigger.model_version, "m1");
        CU_ASSERT_EQUAL(d.trigger.reward_value, 15);
        CU_ASSERT_EQUAL(d.trigger.nrecs, 0);
        /* its cooldown is on the customer, at the scoring time */
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "cool:second", -1), T0 + 5);
        /* in cooldown: nothing the next time */
        CU_ASSERT_EQUAL(
            loy_decide(&rules, NULL, &c, &cause, T0 + 6, T0, "m1", &d), 0);
}

static void test_kinds(void) {
        loy_cust_t c;
        loy_decision_t d;
        loy_cause_t browse = {"browse", 3, 7, "b1", T0, 0};
        loy_cause_t timer = {NULL, 3, -1, NULL, T0 + 30 * DAY, 0};
        char want[64], id[33];
        setup();
        buyer(&c);
        /* purchase_only: a browse event does not fire it */
        CU_ASSERT_EQUAL(loy_decide(&rules, NULL, &c, &browse, T0, T0, "m", &d),
                        0);
        /* a timer rule at the check's due time; its cause names it */
        c.scored_ms = T0 + 30 * DAY;
        CU_ASSERT_EQUAL_FATAL(
            loy_decide(&rules, NULL, &c, &timer, T0 + 30 * DAY, T0, "m", &d),
            1);
        CU_ASSERT_EQUAL(d.rule, 1);
        CU_ASSERT_STRING_EQUAL(d.trigger.cause_kind, "timer");
        CU_ASSERT_PTR_NULL(d.trigger.cause_topic);
        CU_ASSERT_EQUAL(d.trigger.cause_offset, -1);
        CU_ASSERT_EQUAL(d.trigger.event_time_ms, T0 + 30 * DAY);
        snprintf(want, sizeof(want), "timer:3:%lld", T0 + 30 * DAY);
        CU_ASSERT_STRING_EQUAL(d.cause_text, want);
        loy_trigger_id("silent", "c9", want, id);
        CU_ASSERT_STRING_EQUAL(d.trigger_id, id);
}

/* A rule whose cooldown cannot be recorded (every slot taken) does not
 * fire: it would fire again on every event. */
static void test_no_slot(void) {
        loy_cust_t c;
        loy_decision_t d;
        loy_cause_t cause = {"purchases", 0, 1, "e", T0, 1};
        setup();
        buyer(&c);
        for (int i = 0; i < LOY_SLOTS_MAX; i++) {
                char name[32];
                snprintf(name, sizeof(name), "off:t%d:0", i);
                CU_ASSERT_EQUAL(loy_feat_slot_set(&c, name, i), 0);
        }
        CU_ASSERT_EQUAL(loy_decide(&rules, NULL, &c, &cause, T0, T0, "m", &d),
                        0);
        CU_ASSERT_EQUAL(c.nslots, LOY_SLOTS_MAX);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("decide", NULL, NULL);
        if (!s || !CU_add_test(s, "event trigger", test_event) ||
            !CU_add_test(s, "browse, timer", test_kinds) ||
            !CU_add_test(s, "no slot for the cooldown", test_no_slot)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
