/* loy_apply: see loy_apply.h. */
#include "loy_apply.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_evaluate.h"
#include "loy_log.h"

/* Adds an integer delta to a daily KPI (counts, money in micro-units),
 * unless the aggregates already hold the current item. */
static int kpi_add(loy_batch_t *b, int64_t day_ms, const char *field,
                   int64_t delta) {
        return loy_agg_kpi(b->agg, day_ms, field, delta);
}

/* Money in millionths of the currency unit, for exact daily sums (event
 * values are validated to at most 1e9 per line). */
static int64_t micros(double amount) {
        return (int64_t)llround(amount * 1e6);
}

/* A purchase at ts_ms converts each rule's latest trigger to this customer
 * that fired before it and whose conversion window (loy_rule_conversion_ms)
 * it falls in: once per trigger, remembered in slot "conv:<rule>" (the
 * converted trigger's "cool:" time), counted on the purchase's day as
 * converted:<rule>, or holdout_converted:<rule> for the rule's control
 * group, who got no reward: the gap between the two rates is what the
 * reward adds. A customer with no free slot is not counted (rather than
 * counted again on its next purchase). */
static int count_conversions(loy_batch_t *b, loy_cust_t *c, int64_t ts_ms) {
        const loy_rules_t *rules = &b->conf->rules;
        char cool[LOY_SLOT_NAME_MAX], conv[LOY_SLOT_NAME_MAX];
        for (int i = 0; i < rules->n; i++) {
                const loy_rule_t *r = &rules->rule[i];
                int64_t fired;
                snprintf(cool, sizeof(cool), "cool:%s", r->name);
                fired = loy_feat_slot_get(c, cool, 0);
                if (fired <= 0 || fired >= ts_ms ||
                    ts_ms - fired > loy_rule_conversion_ms(r))
                        continue;
                snprintf(conv, sizeof(conv), "conv:%s", r->name);
                if (loy_feat_slot_get(c, conv, 0) == fired)
                        continue;
                if (loy_feat_slot_set(c, conv, fired) == -1) {
                        b->stats->conversions_untracked++;
                        continue;
                }
                if (kpi_add(b, ts_ms,
                            b->names[i][loy_rule_in_holdout(r, c->id) ? 3 : 2],
                            1))
                        return -1;
        }
        return 0;
}

/* Next silence check: first.days after the last purchase, then every
 * every.days, until max.days of silence. */
int64_t loy_apply_next_check(const loy_config_t *conf, const loy_cust_t *c,
                             int64_t now) {
        int64_t first = (int64_t)(conf->timer_first_days * LOY_MS_PER_DAY);
        int64_t every = (int64_t)(conf->timer_every_days * LOY_MS_PER_DAY);
        int64_t max = (int64_t)(conf->timer_max_days * LOY_MS_PER_DAY);
        int64_t due;
        if (!c->first_purchase_ms || every <= 0)
                return 0;
        due = c->last_purchase_ms + first;
        if (due <= now)
                due += ((now - due) / every + 1) * every;
        return due > c->last_purchase_ms + max ? 0 : due;
}

/* Fires the customer's silence checks due at or before upto, each scored
 * and decided at its own due time: whether a check fires before or after
 * the customer's next event then depends on event time alone, not on when
 * the clock happened to pass it. part is the timer's partition when the
 * batch does not know it yet (purchase and browse topics are
 * co-partitioned, so the numbers agree). */
static int fire_due(loy_batch_t *b, loy_touched_t *t, int64_t upto,
                    int32_t part, char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        while (c->first_purchase_ms && c->next_check_ms > 0 &&
               c->next_check_ms <= upto) {
                int64_t due = c->next_check_ms;
                LOY_DEBUG("apply",
                          "check of %s due %" PRId64 " fires "
                          "(limit %" PRId64 ", partition %" PRId32 ")",
                          c->id, due, upto, part);
                if (t->partition < 0)
                        t->partition = part;
                t->timer_due = due;
                t->fired = 1;
                b->stats->timers_fired++;
                if (loy_agg_on_fire(b->agg, c->id, due, t->partition) == -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                if (loy_evaluate(b, t, NULL, due, errstr, errstr_size) == -1)
                        return -1;
                c->next_check_ms = loy_apply_next_check(b->conf, c, due);
        }
        return 0;
}

/* A forget request: the customer is erased in the batch's copy, so that
 * its write replaces the hash by the record of the erasure (loy_write) and
 * the aggregates count it out. */
static void forget(loy_batch_t *b, loy_touched_t *t, const loy_event_t *ev,
                   const char *slot) {
        loy_cust_t *c = t->c;
        char prefix[LOY_SLOT_NAME_MAX];
        int n = snprintf(prefix, sizeof(prefix),
                         "off:%s:", b->conf->topic_purchase);
        /* its timer entry lives under the partition of its purchases; a
         * request that another partitioner put elsewhere still finds it */
        t->partition = ev->partition;
        for (int i = 0; i < c->nslots && n > 0 && (size_t)n < sizeof(prefix);
             i++)
                if (!strncmp(c->slots[i].name, prefix, (size_t)n)) {
                        t->partition = (int32_t)atoi(c->slots[i].name + n);
                        break;
                }
        if (!b->model->rfm.set)
                for (int d = 0; d < LOY_DIM__COUNT; d++) {
                        loy_rfm_move(b->rfm, (loy_dim_t)d, t->cur_bins[d], -1);
                        t->cur_bins[d] = -1;
                }
        loy_feat_forget(c, ev->forget_ms);
        loy_feat_slot_set(c, slot, ev->offset);
        if (b->reco)
                loy_reco_hist_init(&((loy_cust_ext_t *)loy_cache_ext(c))->hist);
        loy_agg_on_event(b->agg, ev->topic, ev->partition, ev->offset);
        t->erased = 1;
        t->by_event = 1;
        t->reco_dirty = 0;
        b->stats->customers_forgotten++;
        /* not the id: the log would keep whom it erased */
        LOY_INFO("apply",
                 "forget request at %s [%" PRId32 "] offset %" PRId64
                 " applied",
                 ev->topic, ev->partition, ev->offset);
}

int loy_apply_events(loy_batch_t *b, char *errstr, size_t errstr_size) {
        char slot[LOY_SLOT_NAME_MAX];
        for (int i = 0; i < b->nevents; i++) {
                int idx = b->order[i];
                const loy_event_t *ev = &b->events[idx];
                loy_touched_t *t;
                loy_cust_t *c;
                int was_buyer, n;
                uint64_t key;
                if (loy_batch_quarantined(b, ev->customer_id)) {
                        loy_batch_dead_event(b, idx, LOY_DEAD_APPLY,
                                             "state: this customer's Redis "
                                             "state fails every write");
                        continue;
                }
                t = loy_batch_touch(b, ev->customer_id, errstr, errstr_size);
                if (!t)
                        return -1;
                c = t->c;
                /* also for an event skipped below as applied before: its
                 * customer's checks must still stop where its partition
                 * holds events not applied yet (a redo after a take-over
                 * is mostly such events) */
                t->event_partition = ev->partition;
                n = snprintf(slot, sizeof(slot), "off:%s:%" PRId32, ev->topic,
                             ev->partition);
                if (n < 0 || (size_t)n >= sizeof(slot)) {
                        loy_batch_dead_event(b, idx, LOY_DEAD_APPLY,
                                             "topic name too long to fence "
                                             "replays");
                        continue;
                }
                if (ev->offset <= loy_feat_slot_get(c, slot, -1)) {
                        b->stats->events_skipped_dup++;
                        continue;
                }
                /* without its fence an event could count twice on replay */
                if (loy_feat_slot_get(c, slot, INT64_MIN) == INT64_MIN &&
                    c->nslots >= LOY_SLOTS_MAX) {
                        loy_batch_dead_event(b, idx, LOY_DEAD_APPLY,
                                             "state: customer has no free "
                                             "offset slot (events on too "
                                             "many partitions)");
                        continue;
                }
                if (ev->kind == LOY_EV_FORGET) {
                        /* an expiry of a customer who came back since */
                        if (ev->forget_if_silent &&
                            c->last_event_ms > ev->forget_ms)
                                b->stats->expiries_outdated++;
                        else
                                forget(b, t, ev, slot);
                        continue;
                }
                /* erased: a replay must not bring the customer back */
                if (loy_feat_forget_covers(c, ev)) {
                        b->stats->events_forgotten++;
                        continue;
                }
                /* the same event on another offset (a producer's retry, a
                 * copy): applied once, whatever the offsets say */
                key = loy_feat_event_key(ev->event_id);
                if (loy_feat_event_seen(c, key)) {
                        b->stats->events_duplicate_id++;
                        continue;
                }
                if (fire_due(b, t, ev->ts_ms, ev->partition, errstr,
                             errstr_size) == -1)
                        return -1;
                loy_agg_on_event(b->agg, ev->topic, ev->partition, ev->offset);
                was_buyer = c->orders > 0;
                loy_feat_apply(c, ev, &b->conf->feat);
                loy_feat_event_note(c, key);
                loy_feat_slot_set(c, slot, ev->offset);
                if (b->reco) {
                        loy_cust_ext_t *x = loy_cache_ext(c);
                        /* -1: memory could not be found even by pruning;
                         * the event is partly learned, nothing else lost */
                        if (loy_reco_observe(b->reco, &x->hist, ev) == -1)
                                LOY_DEBUG("proc",
                                          "reco: event %s partly "
                                          "learned",
                                          ev->event_id);
                        t->reco_dirty = 1;
                }
                b->stats->events_applied++;
                t->by_event = 1;
                if (ev->kind == LOY_EV_BROWSE) {
                        if (kpi_add(b, ev->ts_ms, "browse_events", 1))
                                goto nomem;
                        if (loy_evaluate(b, t, ev, 0, errstr, errstr_size) ==
                            -1)
                                return -1;
                        continue;
                }
                t->by_purchase = 1;
                if (!strcmp(ev->topic, b->conf->topic_purchase))
                        t->partition = ev->partition;
                {
                        double net = loy_event_net_value(ev);
                        loy_purchase_kind_t kind = loy_event_purchase_kind(ev);
                        int rc = 0;
                        if (kind == LOY_PURCHASE_ORDER) {
                                rc = kpi_add(b, ev->ts_ms, "purchases", 1) ||
                                     kpi_add(b, ev->ts_ms, "revenue_micros",
                                             micros(net)) ||
                                     kpi_add(b, ev->ts_ms,
                                             was_buyer ? "repeat_purchases"
                                                       : "new_customers",
                                             1) ||
                                     count_conversions(b, c, ev->ts_ms);
                        } else if (kind == LOY_PURCHASE_RETURN) {
                                rc =
                                    kpi_add(b, ev->ts_ms, "returns", 1) ||
                                    kpi_add(b, ev->ts_ms, "return_value_micros",
                                            micros(-net));
                        }
                        if (rc)
                                goto nomem;
                }
                if (loy_evaluate(b, t, ev, 0, errstr, errstr_size) == -1)
                        return -1;
                /* the next silence check counts from this purchase */
                if (t->partition >= 0)
                        c->next_check_ms =
                            loy_apply_next_check(b->conf, c, c->scored_ms);
        }
        return 0;
nomem:
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
}

int loy_apply_due(loy_batch_t *b, int64_t clock_ms, char *errstr,
                  size_t errstr_size) {
        for (int i = 0; i < b->ntouched; i++) {
                loy_touched_t *t = &b->touched[i];
                loy_cust_t *c = t->c;
                /* a timer of a customer who never bought (or whom Redis
                 * no longer has): dropped. Otherwise the hash knows better
                 * than the entry that fired (a redo after a partly applied
                 * write, an entry left in another partition): what it says
                 * is due fires, each check at its own due time. */
                if (!c->first_purchase_ms) {
                        if (t->by_timer)
                                c->next_check_ms = 0;
                        continue;
                }
                {
                        int32_t part = t->by_timer ? t->fired_partition
                                                   : t->event_partition;
                        int64_t upto = loy_clock_timer_limit(
                            b->clock, b->conf->topic_purchase, part, clock_ms);
                        if (fire_due(b, t, upto, part, errstr, errstr_size) ==
                            -1)
                                return -1;
                }
        }
        return 0;
}
