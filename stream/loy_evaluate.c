/* loy_evaluate: see loy_evaluate.h. */
#include "loy_evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_decide.h"
#include "loy_time.h"

void loy_evaluate_score(loy_batch_t *b, loy_touched_t *t, int64_t now) {
        loy_cust_t *c = t->c;
        loy_model_input_t in;
        loy_model_scores_t s;
        double unit = b->model->unit_days;
        c->scored_ms = now;
        if (c->first_purchase_ms == 0) {
                c->segment = LOY_SEG_NONE;
                return;
        }
        in.x = (double)loy_feat_repeats(c);
        in.t_x = loy_feat_tx_days(c) / unit;
        in.T = loy_feat_age_days(c, now) / unit;
        /* refunds netted the way the spend model was fitted */
        in.mean_value = loy_model_net_mean_value(
            c->gross_value, c->first_day_value, c->return_value, in.x);
        in.aov = loy_feat_aov(c);
        loy_model_score(b->model, &in, b->conf->horizon_days, b->conf->margin,
                        &s);
        c->p_alive = s.p_alive;
        c->churn_prob = s.churn_prob;
        c->exp_purchases = s.exp_purchases;
        c->clv = s.clv;
        if (b->model->rfm.set) {
                /* cut points of the model: a function of the customer
                 * alone, so every run scores it alike */
                loy_rfm_score_cuts(&b->model->rfm, c, b->conf->rfm_weights,
                                   now);
                return;
        }
        /* the customer's own move first, so it is ranked among the
         * population as it now stands */
        for (int d = LOY_DIM_RECENCY; d <= LOY_DIM_MONETARY; d++) {
                int bin = loy_rfm_bin(c, (loy_dim_t)d);
                loy_rfm_move(b->rfm, (loy_dim_t)d, t->cur_bins[d], bin);
                t->cur_bins[d] = bin;
        }
        loy_rfm_score(b->rfm, c, b->conf->rfm_weights);
        {
                int bin = loy_rfm_bin(c, LOY_DIM_LOYALTY);
                loy_rfm_move(b->rfm, LOY_DIM_LOYALTY,
                             t->cur_bins[LOY_DIM_LOYALTY], bin);
                t->cur_bins[LOY_DIM_LOYALTY] = bin;
        }
}

/* Runs the reward rules for one evaluation: after event ev, or (ev NULL)
 * for the customer's silence check; a trigger goes to the outbox. */
int loy_evaluate_decide(loy_batch_t *b, loy_touched_t *t, const loy_event_t *ev,
                        int64_t now, char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        loy_trigger_rec_t trecs[LOY_RECS_MAX];
        loy_decision_t d;
        loy_cause_t cause;
        loy_outbox_rec_t *ob;
        const void *buf;
        size_t len;
        int ti = (int)(t - b->touched);
        memset(&cause, 0, sizeof(cause));
        if (ev) {
                cause.topic = ev->topic;
                cause.partition = ev->partition;
                cause.offset = ev->offset;
                cause.event_id = ev->event_id;
                cause.time_ms = ev->ts_ms;
                cause.purchase = ev->kind == LOY_EV_PURCHASE;
        } else {
                cause.partition = t->partition;
                cause.offset = -1;
                cause.time_ms = t->timer_due;
        }
        if (!loy_decide(&b->conf->rules, &b->conf->feat, c, &cause, now,
                        loy_time_wall_ms(), b->model->version, &d))
                return 0;
        if (b->reco) {
                loy_cust_ext_t *x = loy_cache_ext(c);
                loy_reco_rec_t rr[LOY_RECS_MAX];
                int n = loy_reco_recommend(b->reco, &x->hist, now, rr,
                                           b->conf->reco_top_n);
                for (int i = 0; i < n; i++) {
                        snprintf(trecs[i].item, sizeof(trecs[i].item), "%s",
                                 rr[i].sku);
                        trecs[i].score = rr[i].score;
                }
                d.trigger.recs = trecs;
                d.trigger.nrecs = n > 0 ? n : 0;
        }
        ob = loy_batch_outbox_add(b);
        if (!ob) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        snprintf(ob->trigger_id, sizeof(ob->trigger_id), "%s", d.trigger_id);
        buf = loy_codec_encode_trigger(b->codec, &d.trigger, &len, errstr,
                                       errstr_size);
        if (!buf) {
                b->noutbox--;
                return -1;
        }
        ob->payload = malloc(len);
        if (!ob->payload) {
                b->noutbox--;
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        memcpy(ob->payload, buf, len);
        ob->len = len;
        ob->touched = ti;
        ob->rule = d.rule;
        ob->holdout = d.trigger.holdout ? 1 : 0;
        if (loy_agg_kpi(b->agg, d.trigger.event_time_ms,
                        b->names[d.rule][d.trigger.holdout ? 1 : 0], 1)) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

/* Scores the customer at event time and runs the rules: after each event
 * (so a rule sees every step, not only the batch's last), or for a timer
 * due at due_ms. */
int loy_evaluate(loy_batch_t *b, loy_touched_t *t, const loy_event_t *ev,
                 int64_t due_ms, char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        /* after an event: the customer's own event time (the clock may lag
         * behind it); for a timer: its due time, never the batch's clock,
         * or two runs of the same input would score differently */
        int64_t now = ev                          ? c->last_event_ms
                      : due_ms > c->last_event_ms ? due_ms
                                                  : c->last_event_ms;
        loy_evaluate_score(b, t, now);
        return loy_evaluate_decide(b, t, ev, now, errstr, errstr_size);
}
