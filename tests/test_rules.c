/*
 * loy_rules: condition parsing and its errors, matching, priority,
 * cooldown, evaluation kinds, purchase_only, holdout share, trigger ids and
 * the FNV-1a hash (published test vectors).
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loy_feat.h"
#include "loy_hash.h"
#include "loy_rules.h"
#include "tu.h"

#define DAY LOY_MS_PER_DAY
#define NOW (1700000000000LL)

static void expect_parse_error(const char *text, const char *want) {
        loy_rule_t r;
        char err[256] = "";
        loy_rule_init(&r, "x");
        CU_ASSERT_EQUAL(loy_rule_parse_when(&r, text, err, sizeof(err)), -1);
        CU_ASSERT_STRING_EQUAL(err, want);
        if (strcmp(err, want))
                fprintf(stderr, "\n got '%s'\nwant '%s'\n", err, want);
        CU_ASSERT_EQUAL(r.nterms, 0);
}

static void test_init(void) {
        loy_rule_t r;
        loy_rule_init(&r, "winback");
        CU_ASSERT_STRING_EQUAL(r.name, "winback");
        CU_ASSERT_EQUAL(r.on, LOY_ON_ANY);
        CU_ASSERT_EQUAL(r.cooldown_days, 30);
        CU_ASSERT_EQUAL(r.priority, 0);
        CU_ASSERT_EQUAL(r.holdout_pct, 0);
        CU_ASSERT_STRING_EQUAL(r.reward_kind, "coupon");
        CU_ASSERT_EQUAL(r.reward_value, 10);
        CU_ASSERT_STRING_EQUAL(r.reward_currency, "");
        CU_ASSERT_EQUAL(r.nterms, 0);
        CU_ASSERT_EQUAL(r.purchase_only, 0);
        /* names longer than LOY_RULE_NAME_MAX are cut */
        loy_rule_init(&r, "0123456789012345678901234567890123456789");
        CU_ASSERT_EQUAL(strlen(r.name), LOY_RULE_NAME_MAX);
}

static void test_parse_ok(void) {
        loy_rule_t r;
        char err[256];

        loy_rule_init(&r, "x");
        CU_ASSERT_EQUAL(
            loy_rule_parse_when(
                &r,
                "churn_prob >= 0.6 and clv>200 AND orders != 3  and "
                "points<=-1.5e2 and tier == 2 and p_alive < 1",
                err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL_FATAL(r.nterms, 6);
        CU_ASSERT_PTR_EQUAL(r.terms[0].field,
                            loy_feat_field_find("churn_prob"));
        CU_ASSERT_EQUAL(r.terms[0].op, LOY_OP_GE);
        CU_ASSERT_EQUAL(r.terms[0].value, 0.6);
        CU_ASSERT_STRING_EQUAL(r.terms[1].field->name, "clv");
        CU_ASSERT_EQUAL(r.terms[1].op, LOY_OP_GT);
        CU_ASSERT_EQUAL(r.terms[1].value, 200);
        CU_ASSERT_EQUAL(r.terms[2].op, LOY_OP_NE);
        CU_ASSERT_EQUAL(r.terms[3].op, LOY_OP_LE);
        CU_ASSERT_EQUAL(r.terms[3].value, -150);
        CU_ASSERT_EQUAL(r.terms[4].op, LOY_OP_EQ);
        CU_ASSERT_EQUAL(r.terms[5].op, LOY_OP_LT);

        /* a new condition replaces the old one */
        CU_ASSERT_EQUAL(
            loy_rule_parse_when(&r, "  clv > 1  ", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(r.nterms, 1);
        CU_ASSERT_EQUAL(
            loy_rule_parse_when(
                &r,
                "clv>1 and clv>2 and clv>3 and clv>4 and clv>5 and clv>6 "
                "and clv>7 and clv>8",
                err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(r.nterms, 8);
}

static void test_parse_errors(void) {
        expect_parse_error("foo > 1", "unknown field 'foo'");
        expect_parse_error("churn_prob > 0.5 and bar < 2",
                           "unknown field 'bar'");
        expect_parse_error("churn_prob 0.6", "expected an operator after "
                                             "'churn_prob'");
        expect_parse_error("churn_prob => 0.6", "expected an operator after "
                                                "'churn_prob'");
        expect_parse_error("churn_prob >= abc", "'abc' is not a number");
        expect_parse_error("clv > 1.5.2", "'1.5.2' is not a number");
        expect_parse_error("clv > inf", "'inf' is not a number");
        expect_parse_error("clv > 1e999", "'1e999' is not a number");
        expect_parse_error("clv >", "expected a number after 'clv'");
        expect_parse_error("clv>1 and clv>2 and clv>3 and clv>4 and clv>5 "
                           "and clv>6 and clv>7 and clv>8 and clv>9",
                           "too many terms (max 8)");
        expect_parse_error("", "empty condition");
        expect_parse_error("   ", "empty condition");
        expect_parse_error("clv > 1 or clv < 0", "expected 'and' instead of "
                                                 "'or'");
        expect_parse_error("clv > 1 and", "expected a field name after 'and'");
        expect_parse_error("clv > 1 and ", "expected a field name after 'and'");
        expect_parse_error("clv > 1 andy", "expected 'and' instead of "
                                           "'andy'");
        expect_parse_error("clv > 1 and > 2", "expected a field name at '>'");
}

static void cust(loy_cust_t *c, double churn, double clv, int64_t orders) {
        loy_feat_init(c, "c1");
        c->churn_prob = churn;
        c->clv = clv;
        c->orders = orders;
}

static loy_rule_t rule(const char *name, const char *when, int prio) {
        loy_rule_t r;
        char err[256];
        loy_rule_init(&r, name);
        r.priority = prio;
        CU_ASSERT_EQUAL(loy_rule_parse_when(&r, when, err, sizeof(err)), 0);
        return r;
}

static void test_matches(void) {
        loy_feat_conf_t fc;
        loy_cust_t c;
        loy_rule_t r = rule("r", "churn_prob >= 0.6 and clv > 100", 0);
        loy_rule_t e = rule("e", "orders == 3", 0);
        loy_rule_t ne = rule("ne", "orders != 3", 0);
        loy_rule_t lt = rule("lt", "clv < 100", 0);
        loy_rule_t le = rule("le", "clv <= 100", 0);

        loy_feat_conf_default(&fc);
        cust(&c, 0.6, 100.5, 3);
        CU_ASSERT_EQUAL(loy_rule_matches(&r, &c, NOW, &fc), 1);
        CU_ASSERT_EQUAL(loy_rule_matches(&e, &c, NOW, &fc), 1);
        CU_ASSERT_EQUAL(loy_rule_matches(&ne, &c, NOW, &fc), 0);
        c.churn_prob = 0.5999;
        CU_ASSERT_EQUAL(loy_rule_matches(&r, &c, NOW, &fc), 0);
        c.churn_prob = 0.9;
        c.clv = 100;
        CU_ASSERT_EQUAL(loy_rule_matches(&r, &c, NOW, &fc), 0);
        CU_ASSERT_EQUAL(loy_rule_matches(&lt, &c, NOW, &fc), 0);
        CU_ASSERT_EQUAL(loy_rule_matches(&le, &c, NOW, &fc), 1);
        /* an undefined score fires nothing */
        c.clv = NAN;
        CU_ASSERT_EQUAL(loy_rule_matches(&le, &c, NOW, &fc), 0);
        CU_ASSERT_EQUAL(loy_rule_matches(&lt, &c, NOW, &fc), 0);
        /* no condition: always */
        loy_rule_init(&r, "always");
        CU_ASSERT_EQUAL(loy_rule_matches(&r, &c, NOW, &fc), 1);
}

static void test_sort(void) {
        loy_rules_t rs;
        const char *want[] = {"b", "d", "a", "c", "f", "e"};
        rs.n = 6;
        rs.rule[0] = rule("a", "clv > 0", 1);
        rs.rule[1] = rule("b", "clv > 0", 5);
        rs.rule[2] = rule("c", "clv > 0", 1);
        rs.rule[3] = rule("d", "clv > 0", 5);
        rs.rule[4] = rule("e", "clv > 0", -3);
        rs.rule[5] = rule("f", "clv > 0", 0);
        loy_rules_sort(&rs);
        for (int i = 0; i < 6; i++)
                CU_ASSERT_STRING_EQUAL(rs.rule[i].name, want[i]);
}

static void test_pick_priority(void) {
        loy_feat_conf_t fc;
        loy_cust_t c;
        loy_rules_t rs;

        loy_feat_conf_default(&fc);
        rs.n = 3;
        rs.rule[0] = rule("low", "churn_prob > 0.5", 1);
        rs.rule[1] = rule("high", "churn_prob > 0.8", 9);
        rs.rule[2] = rule("mid", "churn_prob > 0.5", 5);
        cust(&c, 0.9, 0, 1);
        /* unsorted input still gives the highest priority */
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
        loy_rules_sort(&rs);
        CU_ASSERT_STRING_EQUAL(rs.rule[0].name, "high");
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 0);
        c.churn_prob = 0.7;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
        CU_ASSERT_STRING_EQUAL(rs.rule[1].name, "mid");
        c.churn_prob = 0.1;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), -1);
        /* equal priorities: the first listed wins */
        rs.rule[1].priority = 1;
        c.churn_prob = 0.7;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
}

static void test_pick_cooldown(void) {
        loy_feat_conf_t fc;
        loy_cust_t c;
        loy_rules_t rs;

        loy_feat_conf_default(&fc);
        rs.n = 2;
        rs.rule[0] = rule("vip", "clv > 100", 5);
        rs.rule[1] = rule("any", "clv > 0", 0);
        rs.rule[0].cooldown_days = 7;
        cust(&c, 0, 500, 1);
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, "cool:vip", NOW), 0);
        /* within the cooldown the next rule gets its turn */
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
        CU_ASSERT_EQUAL(
            loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW + 7 * DAY - 1, &fc),
            1);
        CU_ASSERT_EQUAL(
            loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW + 7 * DAY, &fc), 0);
        /* a late event, before the last firing, does not fire again */
        CU_ASSERT_EQUAL(
            loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW - 30 * DAY, &fc), 1);
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, "cool:any", NOW), 0);
        CU_ASSERT_EQUAL(
            loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW + DAY, &fc), -1);
        /* cooldown 0: fires every time */
        rs.rule[1].cooldown_days = 0;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
}

static void test_pick_kinds(void) {
        loy_feat_conf_t fc;
        loy_cust_t c;
        loy_rules_t rs;

        loy_feat_conf_default(&fc);
        rs.n = 3;
        rs.rule[0] = rule("timer", "churn_prob > 0.5", 9);
        rs.rule[0].on = LOY_ON_TIMER;
        rs.rule[1] = rule("buy", "churn_prob > 0.5", 5);
        rs.rule[1].on = LOY_ON_EVENT;
        rs.rule[1].purchase_only = 1;
        rs.rule[2] = rule("event", "churn_prob > 0.5", 1);
        rs.rule[2].on = LOY_ON_EVENT;
        cust(&c, 0.9, 0, 1);
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_TIMER, 0, NOW, &fc), 0);
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 1, NOW, &fc), 1);
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 0, NOW, &fc), 2);
        rs.n = 2;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 0, NOW, &fc), -1);
        /* on = any serves both; purchase_only only restricts events */
        rs.rule[1].on = LOY_ON_ANY;
        rs.rule[0].on = LOY_ON_EVENT;
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_TIMER, 0, NOW, &fc), 1);
        CU_ASSERT_EQUAL(loy_rules_pick(&rs, &c, LOY_ON_EVENT, 0, NOW, &fc), 0);
}

static void test_holdout(void) {
        loy_rule_t r;
        char cid[32];
        const double pcts[] = {0, 10, 50, 12.5, 100};

        loy_rule_init(&r, "winback");
        for (size_t k = 0; k < sizeof(pcts) / sizeof(pcts[0]); k++) {
                int n = 0;
                r.holdout_pct = pcts[k];
                for (int i = 0; i < 100000; i++) {
                        snprintf(cid, sizeof(cid), "%d", 10000 + i);
                        n += loy_rule_in_holdout(&r, cid);
                }
                /* binomial sd at 50 % is 158: 5 sd */
                CU_ASSERT(fabs(n - pcts[k] * 1000) <= 800);
                if (pcts[k] == 0)
                        CU_ASSERT_EQUAL(n, 0);
                if (pcts[k] == 100)
                        CU_ASSERT_EQUAL(n, 100000);
        }
        /* stable: the same answer every time, from "<rule>|<cid>" */
        r.holdout_pct = 50;
        CU_ASSERT_EQUAL(
            loy_rule_in_holdout(&r, "17850"),
            (int)(loy_hash64("winback|17850", 13, 0) % 10000 < 5000));
        CU_ASSERT_EQUAL(loy_rule_in_holdout(&r, "17850"),
                        loy_rule_in_holdout(&r, "17850"));
}

static void test_fnv(void) {
        /* FNV-1a 64 test vectors (Fowler/Noll/Vo reference code) */
        CU_ASSERT_EQUAL(loy_hash64("", 0, 0), 0xcbf29ce484222325ULL);
        CU_ASSERT_EQUAL(loy_hash64("a", 1, 0), 0xaf63dc4c8601ec8cULL);
        CU_ASSERT_EQUAL(loy_hash64("foobar", 6, 0), 0x85944171f73967e8ULL);
        /* the seed is xored into the offset basis */
        CU_ASSERT_EQUAL(loy_hash64("", 0, 0xcbf29ce484222325ULL), 0);
        CU_ASSERT_NOT_EQUAL(loy_hash64("a", 1, 1), loy_hash64("a", 1, 0));
}

static void test_trigger_id(void) {
        char a[33], b[33], c[33];

        memset(a, 'x', sizeof(a));
        loy_trigger_id("winback", "17850", "purchases:3:1234", a);
        CU_ASSERT_EQUAL(strlen(a), 32);
        CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), 32);
        loy_trigger_id("winback", "17850", "purchases:3:1234", b);
        CU_ASSERT_STRING_EQUAL(a, b);
        /* first half: plain FNV-1a 64 of "rule|cid|cause" */
        snprintf(c, sizeof(c), "%016llx",
                 (unsigned long long)loy_hash64("winback|17850|"
                                                "purchases:3:1234",
                                                30, 0));
        CU_ASSERT_EQUAL(strncmp(a, c, 16), 0);
        /* the two halves are different hashes */
        CU_ASSERT_NOT_EQUAL(strncmp(a, a + 16, 16), 0);
        loy_trigger_id("winback", "17850", "purchases:3:1235", b);
        CU_ASSERT_STRING_NOT_EQUAL(a, b);
        loy_trigger_id("winback", "17851", "purchases:3:1234", b);
        CU_ASSERT_STRING_NOT_EQUAL(a, b);
        loy_trigger_id("vip", "17850", "purchases:3:1234", b);
        CU_ASSERT_STRING_NOT_EQUAL(a, b);
        /* the separator keeps "ab|c" and "a|bc" apart */
        loy_trigger_id("ab", "c", "t", b);
        loy_trigger_id("a", "bc", "t", c);
        CU_ASSERT_STRING_NOT_EQUAL(b, c);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("rules", NULL, NULL);
        CU_add_test(s, "init defaults", test_init);
        CU_add_test(s, "parse ok", test_parse_ok);
        CU_add_test(s, "parse errors", test_parse_errors);
        CU_add_test(s, "matches", test_matches);
        CU_add_test(s, "sort stable by priority", test_sort);
        CU_add_test(s, "pick by priority", test_pick_priority);
        CU_add_test(s, "pick cooldown", test_pick_cooldown);
        CU_add_test(s, "pick on-kinds and purchase_only", test_pick_kinds);
        CU_add_test(s, "holdout share", test_holdout);
        CU_add_test(s, "FNV-1a vectors", test_fnv);
        CU_add_test(s, "trigger id", test_trigger_id);
        return tu_cunit_run();
}
