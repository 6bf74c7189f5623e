/*
 * loy_evaluate: steps 6 and 7 of a batch (DESIGN.md) for one evaluation of
 * one customer, after an event or at a silence check's due time: score the
 * customer at event time (model scores, RFM against the population), then
 * decide (loy_decide's rules, cooldowns, holdout) and put the trigger, with
 * the customer's recommendations, encoded in the batch's outbox and
 * counted in the daily KPIs. No Kafka, no Redis: the parts it uses are the
 * batch's model, codec, recommender, population and aggregates.
 */
#ifndef LOY_EVALUATE_H
#define LOY_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "loy_batch.h"

/* Scores t's customer and runs the rules: after event ev at the customer's
 * own event time, or (ev NULL) for the check due at due_ms, at that time
 * (never the batch's clock, or two runs of the same input would score
 * differently). 0, or -1 with errstr. */
int loy_evaluate(loy_batch_t *b, loy_touched_t *t, const loy_event_t *ev,
                 int64_t due_ms, char *errstr, size_t errstr_size);

/* Scores t's customer at now: P(alive), churn, expected purchases, CLV,
 * then the RFM scores (the model's cut points, or ranks in the in-memory
 * population after moving the customer's own bins). scored_ms = now. */
void loy_evaluate_score(loy_batch_t *b, loy_touched_t *t, int64_t now);

/* Runs the reward rules on t's customer as scored at now, after event ev
 * or (ev NULL) for its silence check (cause: t's partition and timer_due).
 * A trigger fired is appended to b's outbox, encoded, with the customer's
 * current recommendations, and counted under the rule's KPI. 0 (whether
 * or not a rule fired), or -1 with errstr. */
int loy_evaluate_decide(loy_batch_t *b, loy_touched_t *t, const loy_event_t *ev,
                        int64_t now, char *errstr, size_t errstr_size);

#endif
