/* loy_decide: see loy_decide.h. */
#include "loy_decide.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../features/loy_rfm.h"
#include "loy_log.h"

int loy_decide(const loy_rules_t *rules, const loy_feat_conf_t *fconf,
               loy_cust_t *c, const loy_cause_t *cause, int64_t now,
               int64_t emit_ms, const char *model_version, loy_decision_t *d) {
        loy_rule_on_t kind = cause->topic ? LOY_ON_EVENT : LOY_ON_TIMER;
        loy_trigger_t *tr = &d->trigger;
        const loy_rule_t *r;
        char slot[LOY_SLOT_NAME_MAX];
        int idx = loy_rules_pick(rules, c, kind,
                                 cause->topic && cause->purchase, now, fconf);
        if (idx < 0)
                return 0;
        r = &rules->rule[idx];
        snprintf(slot, sizeof(slot), "cool:%s", r->name);
        if (loy_feat_slot_get(c, slot, INT64_MIN) == INT64_MIN &&
            c->nslots >= LOY_SLOTS_MAX) {
                LOY_WARN("decide", "customer %s: no slot for %s; not fired",
                         c->id, slot);
                return 0;
        }
        memset(d, 0, sizeof(*d));
        d->rule = idx;
        if (cause->topic) {
                snprintf(d->cause_text, sizeof(d->cause_text),
                         "%s:%" PRId32 ":%" PRId64, cause->topic,
                         cause->partition, cause->offset);
                tr->cause_kind = "event";
                tr->cause_topic = cause->topic;
                tr->cause_offset = cause->offset;
                tr->cause_event_id = cause->event_id;
        } else {
                snprintf(d->cause_text, sizeof(d->cause_text),
                         "timer:%" PRId32 ":%" PRId64, cause->partition,
                         cause->time_ms);
                tr->cause_kind = "timer";
                tr->cause_offset = -1;
        }
        tr->cause_partition = cause->partition;
        loy_trigger_id(r->name, c->id, d->cause_text, d->trigger_id);
        tr->trigger_id = d->trigger_id;
        tr->customer_id = c->id;
        tr->rule = r->name;
        tr->reward_kind = r->reward_kind;
        tr->reward_value = r->reward_value;
        tr->reward_currency = r->reward_currency;
        /* the cause's own time: the event, or the check's due time (not
         * the customer's newest event, which may have come from the other
         * topic first) */
        tr->event_time_ms = cause->time_ms;
        tr->reward_expiry_ms =
            cause->time_ms + (int64_t)(r->reward_expiry_days * LOY_MS_PER_DAY);
        tr->holdout = loy_rule_in_holdout(r, c->id);
        tr->p_alive = c->p_alive;
        tr->churn_prob = c->churn_prob;
        tr->exp_purchases = c->exp_purchases;
        tr->clv = c->clv;
        tr->monetary = loy_feat_monetary(c);
        tr->frequency = c->purchase_days;
        tr->r_score = c->r_score;
        tr->f_score = c->f_score;
        tr->m_score = c->m_score;
        tr->loyalty_score = c->loyalty_score;
        tr->segment = loy_segment_name(c->segment);
        tr->emit_time_ms = emit_ms;
        tr->model_version = model_version;
        loy_feat_slot_set(c, slot, now);
        return 1;
}
