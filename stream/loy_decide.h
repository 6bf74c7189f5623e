/*
 * loy_decide: step 7 of a batch, the reward decision for one evaluation of
 * one customer (after an event, or at a silence check's due time). Picks
 * the rule that fires (priority, cooldown, purchase_only, holdout), records
 * its cooldown on the customer, and fills the trigger record with its
 * deterministic id, reward, scores and cause. No Kafka, no Redis: the
 * processor encodes the record, puts it in the outbox and counts it.
 */
#ifndef LOY_DECIDE_H
#define LOY_DECIDE_H

#include <stdint.h>

#include "../features/loy_feat.h"
#include "../models/loy_rules.h"
#include "loy_codec.h"

/* What caused the evaluation: an event (topic, partition, offset, event
 * id, its time) or a silence check (partition and due time; topic and
 * event_id NULL, offset -1). Strings are borrowed. */
typedef struct loy_cause {
        const char *topic;
        int32_t partition;
        int64_t offset;
        const char *event_id;
        int64_t time_ms;
        int purchase; /* the event is a purchase */
} loy_cause_t;

/* A trigger decided: rule is its index in the rules; trigger points into
 * this struct, the customer, the rules and the cause (all must outlive its
 * use); recs are left empty for the caller (nrecs 0). */
typedef struct loy_decision {
        int rule;
        char trigger_id[33];
        char cause_text[300];
        loy_trigger_t trigger;
} loy_decision_t;

/* Decides for customer c, scored at now (event time), at emit_ms (wall
 * clock, only written into the record). Returns 1 with d filled and c's
 * cooldown slot for the rule set to now; 0 when no rule fires (or the one
 * that would has no free slot to record its cooldown: it would fire again
 * on every event). */
int loy_decide(const loy_rules_t *rules, const loy_feat_conf_t *fconf,
               loy_cust_t *c, const loy_cause_t *cause, int64_t now,
               int64_t emit_ms, const char *model_version, loy_decision_t *d);

#endif
