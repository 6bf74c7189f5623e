/* loy_write: see loy_write.h. */
#include "loy_write.h"

#include <stdio.h>
#include <stdlib.h>

#include "loy_time.h"

#define HIST_TEXT_MAX (LOY_RECO_HIST_MAX * (LOY_SKU_MAX + 64))

/* The batch's outbox entries, as the store takes them. */
static void list_outbox(loy_batch_t *b) {
        for (int k = 0; k < b->noutbox; k++) {
                loy_outbox_entry_t *e = &b->entries[k];
                e->trigger_id = b->outbox[k].trigger_id;
                e->payload = b->outbox[k].payload;
                e->len = b->outbox[k].len;
        }
}

/* The customer's history as text and its current top N, for its write
 * (items copied: the model's strings move as it learns). */
static int reco_prepare(loy_batch_t *b, loy_touched_t *t, char *errstr,
                        size_t errstr_size) {
        loy_cust_ext_t *x = loy_cache_ext(t->c);
        loy_reco_rec_t rr[LOY_RECS_MAX];
        int n;
        if (!t->hist_text) {
                t->hist_text = malloc(HIST_TEXT_MAX);
                if (!t->hist_text) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
        }
        loy_reco_hist_format(b->reco, &x->hist, t->hist_text, HIST_TEXT_MAX);
        n = loy_reco_recommend(b->reco, &x->hist, t->c->last_event_ms, rr,
                               b->conf->reco_top_n);
        t->nrecs = n > 0 ? n : 0;
        for (int i = 0; i < t->nrecs; i++) {
                snprintf(t->rec_sku[i], sizeof(t->rec_sku[i]), "%s", rr[i].sku);
                t->rec_ptr[i] = t->rec_sku[i];
                t->rec_score[i] = rr[i].score;
        }
        return 0;
}

int loy_write_build(loy_batch_t *b, int *nwrites, const loy_batch_agg_t **agg,
                    char *errstr, size_t errstr_size) {
        int n = 0;
        list_outbox(b);
        /* only customers something happened to are written: a replayed
         * event changes nothing, not even derived fields; a check that
         * fired did (the aggregates count it) */
        for (int i = 0; i < b->ntouched; i++) {
                loy_touched_t *t = &b->touched[i];
                loy_cust_write_t *w = &b->writes[n];
                if (!t->by_event && !t->by_timer && !t->fired)
                        continue;
                n++;
                w->cust = t->c;
                w->shadow = &((loy_cust_ext_t *)loy_cache_ext(t->c))->shadow;
                w->partition = t->partition;
                w->old_timer_ms =
                    t->partition >= 0 ? t->old_timer : t->c->next_check_ms;
                w->timer_fired = t->by_timer;
                w->fired_partition = t->fired_partition;
                w->timer_only = t->by_timer && !t->existed && !t->by_event;
                w->erase = t->erased;
                if (t->erased)
                        /* the hash is rewritten from nothing */
                        w->shadow->valid = 0;
                if (!w->timer_only) {
                        loy_agg_counted_t now;
                        loy_agg_counted_of(t->c, 1, &now);
                        if (loy_agg_cust(b->agg, t->c->id,
                                         t->partition >= 0 ? t->partition
                                                           : t->event_partition,
                                         &t->counted, &now) == -1) {
                                snprintf(errstr, errstr_size, "out of memory");
                                return LOY_STORE_ERR;
                        }
                }
                w->hist_text = NULL;
                w->recs_set = 0;
                if (b->reco && t->reco_dirty &&
                    reco_prepare(b, t, errstr, errstr_size) == -1)
                        return LOY_STORE_ERR;
                if (t->hist_text) {
                        w->hist_text = t->hist_text;
                        w->recs_set = 1;
                        w->nrecs = t->nrecs;
                        w->rec_items = t->rec_ptr;
                        w->rec_scores = t->rec_score;
                }
        }
        *nwrites = n;
        if (loy_agg_build(b->agg, agg) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                return LOY_STORE_ERR;
        }
        return LOY_STORE_OK;
}

int loy_write_batch_send(loy_batch_t *b, int64_t clock_ms, int *sent,
                         char *errstr, size_t errstr_size) {
        const loy_batch_agg_t *agg;
        int rc, nwrites;
        *sent = 0;
        rc = loy_write_build(b, &nwrites, &agg, errstr, errstr_size);
        if (rc)
                return rc;
        if (!nwrites && !agg && !b->noutbox)
                return LOY_STORE_OK;
        if (loy_time_mono_ms() - b->polled_ms > b->stale_ms) {
                snprintf(errstr, errstr_size,
                         "batch held %.0f ms since its "
                         "poll, longer than the group's session timeout: "
                         "its partitions may belong to another process now",
                         loy_time_mono_ms() - b->polled_ms);
                return LOY_WRITE_STALE;
        }
        return loy_store_write_batch_send(
            b->store, b->entries, b->noutbox, agg, b->writes, nwrites, clock_ms,
            &b->conf->feat, sent, errstr, errstr_size);
}

int loy_write_batch(loy_batch_t *b, int64_t clock_ms, char *errstr,
                    size_t errstr_size) {
        int sent;
        int rc = loy_write_batch_send(b, clock_ms, &sent, errstr, errstr_size);
        if (rc == LOY_STORE_OK && sent)
                rc = loy_store_write_recv(b->store, errstr, errstr_size);
        return rc;
}
