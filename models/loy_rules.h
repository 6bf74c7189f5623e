/*
 * loy_rules: the reward policy. Rules come from the config file; each has a
 * condition over customer fields and scores, a reward, a cooldown, a
 * priority and a holdout percentage. Pure: no I/O.
 *
 * Condition syntax (one line): terms joined by "and"; a term is
 *   <field> <op> <number>     op: < <= > >= == !=
 * where <field> is any name of loy_feat_fields (churn_prob, clv, frequency,
 * monetary, recency_days ...). Example:
 *   when = churn_prob >= 0.6 and monetary >= 200 and frequency >= 2
 */
#ifndef LOY_RULES_H
#define LOY_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "../features/loy_feat.h"

#define LOY_RULES_MAX 16
#define LOY_RULE_NAME_MAX 32
#define LOY_RULE_TERMS_MAX 8

typedef enum {
        LOY_ON_EVENT = 1, /* evaluated after an event */
        LOY_ON_TIMER = 2, /* evaluated when a silence timer fires */
        LOY_ON_ANY = 3,
} loy_rule_on_t;

typedef enum {
        LOY_OP_LT,
        LOY_OP_LE,
        LOY_OP_GT,
        LOY_OP_GE,
        LOY_OP_EQ,
        LOY_OP_NE
} loy_op_t;

typedef struct loy_rule_term {
        const loy_field_t *field;
        loy_op_t op;
        double value;
} loy_rule_term_t;

typedef struct loy_rule {
        char name[LOY_RULE_NAME_MAX + 1];
        loy_rule_term_t terms[LOY_RULE_TERMS_MAX];
        int nterms;
        loy_rule_on_t on;
        int purchase_only;    /* on events: only purchases trigger it */
        char reward_kind[32]; /* coupon, points, tier ... */
        double reward_value;
        char reward_currency[8];
        double reward_expiry_days;
        double cooldown_days;
        int priority;       /* higher first; one reward per evaluation */
        double holdout_pct; /* 0..100: share kept as control group */
} loy_rule_t;

typedef struct loy_rules {
        loy_rule_t rule[LOY_RULES_MAX];
        int n;
} loy_rules_t;

/* Parses a condition into r->terms. 0, or -1 with the reason in errstr. */
int loy_rule_parse_when(loy_rule_t *r, const char *text, char *errstr,
                        size_t errstr_size);

/* The keys of a [rule <name>] section: names, defaults, bounds, docs. */
extern const loy_confmap_t loy_rule_map[];

/* A new rule named name, every key at loy_rule_map's default, no
 * condition yet. */
void loy_rule_init(loy_rule_t *r, const char *name);

/* Sorts rules by priority (highest first), stable. */
void loy_rules_sort(loy_rules_t *rules);

/* Whether rule r's condition holds for c now (cooldown not considered). */
int loy_rule_matches(const loy_rule_t *r, const loy_cust_t *c, int64_t now_ms,
                     const loy_feat_conf_t *fconf);

/* Picks the first rule (by priority) that applies for this evaluation kind
 * (LOY_ON_EVENT or LOY_ON_TIMER), matches, and whose cooldown (slot
 * "cool:<name>" in c) has passed. Returns its index or -1. */
int loy_rules_pick(const loy_rules_t *rules, const loy_cust_t *c,
                   loy_rule_on_t kind, int is_purchase, int64_t now_ms,
                   const loy_feat_conf_t *fconf);

/* How long after rule r fires a purchase counts as its conversion: while
 * the reward is valid (reward.expiry.days), or 30 days for a reward that
 * does not expire. In ms of event time. */
int64_t loy_rule_conversion_ms(const loy_rule_t *r);

/* Whether customer cid is in rule r's holdout group: a stable hash of
 * (rule, customer) below holdout_pct. */
int loy_rule_in_holdout(const loy_rule_t *r, const char *cid);

/* Deterministic trigger id: 32 hex characters from (rule, customer, cause).
 * buf must hold 33 bytes. */
void loy_trigger_id(const char *rule, const char *cid, const char *cause,
                    char *buf);

#endif
