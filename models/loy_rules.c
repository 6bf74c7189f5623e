/* loy_rules: see loy_rules.h. */
#include "loy_rules.h"

#include "../features/loy_hash.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* second trigger-id pass: any constant that differs from 0 does */
#define TRIGGER_SEED2 0x9e3779b97f4a7c15ULL

/* Hash of "a|b" or "a|b|c" without building the string. */
static uint64_t hash_parts(uint64_t seed, const char *a, const char *b,
                           const char *c) {
        uint64_t h = LOY_HASH_OFFSET ^ seed;
        h = loy_hash64_update(h, a, strlen(a));
        h = loy_hash64_update(h, "|", 1);
        h = loy_hash64_update(h, b, strlen(b));
        if (c) {
                h = loy_hash64_update(h, "|", 1);
                h = loy_hash64_update(h, c, strlen(c));
        }
        return h;
}

static int parse_when(void *rule, const char *value, char *why,
                      size_t why_size) {
        return loy_rule_parse_when(rule, value, why, why_size);
}

#define RULE_FIELD(f) LOY_CM_FIELD(loy_rule_t, f)
#define RULE_KEY(...) LOY_CM_KEY(loy_rule_t, __VA_ARGS__)

static const char *const rule_on_names[] = {NULL, "event", "timer", "any"};

const loy_confmap_t loy_rule_map[] = {
    {"when", LOY_CM_PARSE, RULE_FIELD(terms), "", 0, 0,
     "condition: <field> <op> <number> [and ...] (required)", NULL, parse_when},
    {"on", LOY_CM_ENUM, RULE_FIELD(on), "any", 0, 4,
     "when the rule is evaluated: after an event, when a silence timer fires, "
     "or both",
     rule_on_names, NULL},
    RULE_KEY("purchase_only", LOY_CM_BOOL, purchase_only, "no", 0, 0,
             "on events, only purchases (not browse) can fire it"),
    RULE_KEY("reward.kind", LOY_CM_STR, reward_kind, "coupon", 0, 0,
             "coupon, points, tier, ..."),
    RULE_KEY("reward.value", LOY_CM_DBL, reward_value, "10", 0, 1e9,
             "amount (percent for coupons, points for points)"),
    RULE_KEY("reward.currency", LOY_CM_STR, reward_currency, "", 0, 0,
             "currency of a money reward; empty for percent"),
    RULE_KEY("reward.expiry.days", LOY_CM_DBL, reward_expiry_days, "30", 0,
             3650,
             "reward valid this long after the trigger (event time); a "
             "purchase within it counts as the trigger's conversion"),
    RULE_KEY("cooldown.days", LOY_CM_DBL, cooldown_days, "30", 0, 36500,
             "never fire twice for one customer within this"),
    RULE_KEY("priority", LOY_CM_INT, priority, "0", -1000, 1000,
             "higher first; one reward per evaluation"),
    RULE_KEY(
        "holdout.pct", LOY_CM_DBL, holdout_pct, "0", 0, 100,
        "share of customers kept as control group (trigger flagged holdout)"),
    {0},
};

void loy_rule_init(loy_rule_t *r, const char *name) {
        char why[160];
        memset(r, 0, sizeof(*r));
        snprintf(r->name, sizeof(r->name), "%s", name ? name : "");
        /* cannot fail: test_config applies every table */
        (void)loy_confmap_defaults(loy_rule_map, r, why, sizeof(why));
}

/* ------------------------------------------------------------------ */
/* Condition parser                                                     */
/* ------------------------------------------------------------------ */

static const char *skip_ws(const char *p) {
        while (isspace((unsigned char)*p))
                p++;
        return p;
}

static int is_ident(int ch) {
        return isalnum(ch) || ch == '_';
}

/* Copies the token [s, e) into buf (truncated) for messages. */
static void token(char *buf, size_t size, const char *s, const char *e) {
        size_t n = (size_t)(e - s);
        if (n >= size)
                n = size - 1;
        memcpy(buf, s, n);
        buf[n] = '\0';
}

static int parse_op(const char **pp, loy_op_t *op) {
        const char *p = *pp;
        if (p[0] == '<' && p[1] == '=') {
                *op = LOY_OP_LE;
                p += 2;
        } else if (p[0] == '>' && p[1] == '=') {
                *op = LOY_OP_GE;
                p += 2;
        } else if (p[0] == '=' && p[1] == '=') {
                *op = LOY_OP_EQ;
                p += 2;
        } else if (p[0] == '!' && p[1] == '=') {
                *op = LOY_OP_NE;
                p += 2;
        } else if (p[0] == '<') {
                *op = LOY_OP_LT;
                p++;
        } else if (p[0] == '>') {
                *op = LOY_OP_GT;
                p++;
        } else {
                return -1;
        }
        *pp = p;
        return 0;
}

int loy_rule_parse_when(loy_rule_t *r, const char *text, char *errstr,
                        size_t errstr_size) {
        loy_rule_term_t terms[LOY_RULE_TERMS_MAX];
        const char *p = skip_ws(text ? text : "");
        char name[64], num[64];
        int n = 0;

        if (!*p) {
                snprintf(errstr, errstr_size, "empty condition");
                return -1;
        }
        for (;;) {
                const char *s = p;
                const loy_field_t *f;
                char *end;
                double v;
                loy_op_t op;

                while (is_ident((unsigned char)*p))
                        p++;
                if (p == s) {
                        token(name, sizeof(name), s, s + strcspn(s, " \t"));
                        if (*s)
                                snprintf(errstr, errstr_size,
                                         "expected a field name at '%s'", name);
                        else
                                snprintf(errstr, errstr_size,
                                         "expected a field name after 'and'");
                        return -1;
                }
                token(name, sizeof(name), s, p);
                f = loy_feat_field_find(name);
                if (!f) {
                        snprintf(errstr, errstr_size, "unknown field '%s'",
                                 name);
                        return -1;
                }
                p = skip_ws(p);
                if (parse_op(&p, &op) == -1) {
                        snprintf(errstr, errstr_size,
                                 "expected an operator after '%s'", name);
                        return -1;
                }
                p = skip_ws(p);
                s = p;
                while (*p && !isspace((unsigned char)*p))
                        p++;
                token(num, sizeof(num), s, p);
                if (!*num) {
                        snprintf(errstr, errstr_size,
                                 "expected a number after '%s'", name);
                        return -1;
                }
                errno = 0;
                v = strtod(num, &end);
                if (end == num || *end || errno == ERANGE || !isfinite(v) ||
                    (size_t)(p - s) >= sizeof(num)) {
                        snprintf(errstr, errstr_size, "'%s' is not a number",
                                 num);
                        return -1;
                }
                if (n == LOY_RULE_TERMS_MAX) {
                        snprintf(errstr, errstr_size, "too many terms (max %d)",
                                 LOY_RULE_TERMS_MAX);
                        return -1;
                }
                terms[n].field = f;
                terms[n].op = op;
                terms[n].value = v;
                n++;
                p = skip_ws(p);
                if (!*p)
                        break;
                if (strncasecmp(p, "and", 3) ||
                    (p[3] && !isspace((unsigned char)p[3]))) {
                        s = p;
                        while (*p && !isspace((unsigned char)*p))
                                p++;
                        token(name, sizeof(name), s, p);
                        snprintf(errstr, errstr_size,
                                 "expected 'and' instead of '%s'", name);
                        return -1;
                }
                p = skip_ws(p + 3);
        }
        memcpy(r->terms, terms, sizeof(terms[0]) * (size_t)n);
        r->nterms = n;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                           */
/* ------------------------------------------------------------------ */

void loy_rules_sort(loy_rules_t *rules) {
        /* insertion sort: stable, and n <= LOY_RULES_MAX */
        for (int i = 1; i < rules->n; i++) {
                loy_rule_t tmp = rules->rule[i];
                int j = i;
                while (j > 0 && rules->rule[j - 1].priority < tmp.priority) {
                        rules->rule[j] = rules->rule[j - 1];
                        j--;
                }
                rules->rule[j] = tmp;
        }
}

static int term_holds(double v, loy_op_t op, double w) {
        if (isnan(v)) /* an undefined score never fires a reward */
                return 0;
        switch (op) {
        case LOY_OP_LT:
                return v < w;
        case LOY_OP_LE:
                return v <= w;
        case LOY_OP_GT:
                return v > w;
        case LOY_OP_GE:
                return v >= w;
        case LOY_OP_EQ:
                return v == w;
        case LOY_OP_NE:
                return v != w;
        }
        return 0;
}

int loy_rule_matches(const loy_rule_t *r, const loy_cust_t *c, int64_t now_ms,
                     const loy_feat_conf_t *fconf) {
        for (int i = 0; i < r->nterms; i++) {
                const loy_rule_term_t *t = &r->terms[i];
                double v = loy_feat_field_number(c, t->field, now_ms, fconf);
                if (!term_holds(v, t->op, t->value))
                        return 0;
        }
        return 1;
}

static int cooled_down(const loy_rule_t *r, const loy_cust_t *c,
                       int64_t now_ms) {
        char slot[LOY_SLOT_NAME_MAX];
        int64_t last;

        snprintf(slot, sizeof(slot), "cool:%s", r->name);
        last = loy_feat_slot_get(c, slot, INT64_MIN);
        if (last == INT64_MIN)
                return 1;
        /* a late event (now before the last firing) must not fire again */
        if (now_ms < last)
                return 0;
        return (double)(now_ms - last) >=
               r->cooldown_days * (double)LOY_MS_PER_DAY;
}

int loy_rules_pick(const loy_rules_t *rules, const loy_cust_t *c,
                   loy_rule_on_t kind, int is_purchase, int64_t now_ms,
                   const loy_feat_conf_t *fconf) {
        int best = -1;

        /* highest priority wins, ties by position: the same answer as the
         * first match of a sorted list, and right for an unsorted one */
        for (int i = 0; i < rules->n; i++) {
                const loy_rule_t *r = &rules->rule[i];
                if (best >= 0 && r->priority <= rules->rule[best].priority)
                        continue;
                if (!(r->on & kind))
                        continue;
                /* purchase_only restricts event evaluations; a timer is
                 * never a purchase and is not affected */
                if (kind == LOY_ON_EVENT && r->purchase_only && !is_purchase)
                        continue;
                if (!loy_rule_matches(r, c, now_ms, fconf))
                        continue;
                if (!cooled_down(r, c, now_ms))
                        continue;
                best = i;
        }
        return best;
}

int64_t loy_rule_conversion_ms(const loy_rule_t *r) {
        double days = r->reward_expiry_days > 0 ? r->reward_expiry_days : 30;
        return (int64_t)(days * LOY_MS_PER_DAY);
}

int loy_rule_in_holdout(const loy_rule_t *r, const char *cid) {
        uint64_t h = hash_parts(0, r->name, cid ? cid : "", NULL);
        return (double)(h % 10000) < r->holdout_pct * 100;
}

void loy_trigger_id(const char *rule, const char *cid, const char *cause,
                    char *buf) {
        const char *ru = rule ? rule : "", *cu = cid ? cid : "";
        const char *ca = cause ? cause : "";
        uint64_t h1 = hash_parts(0, ru, cu, ca);
        uint64_t h2 = hash_parts(TRIGGER_SEED2, ru, cu, ca);

        snprintf(buf, 33, "%016llx%016llx", (unsigned long long)h1,
                 (unsigned long long)h2);
}
