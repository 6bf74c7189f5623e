/* loy_load: see loy_load.h. */
#include "loy_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_log.h"

/* Where the counts hold the customer: as its hash says, unless a failed
 * batch moved its counts without writing its hash (the aggregate fences
 * list it). */
static void snapshot(loy_batch_t *b, loy_touched_t *t) {
        const loy_cust_t *c = t->c;
        loy_agg_counted_of(c, t->existed, &t->counted);
        loy_agg_counted_get(b->agg, c->id, &t->counted);
        memcpy(t->cur_bins, t->counted.bins, sizeof(t->cur_bins));
        t->old_timer = c->next_check_ms;
}

/* The recommendation histories of customers just loaded: one more
 * pipeline (a history is a string key of its own, not a hash field, so
 * dashboards reading the hash do not pay for it). */
static int load_histories(loy_batch_t *b, loy_cust_t *const *custs, int n,
                          char *errstr, size_t errstr_size) {
        const char **ids = malloc((size_t)n * sizeof(*ids));
        char **texts = malloc((size_t)n * sizeof(*texts));
        int rc = LOY_STORE_ERR;
        if (!ids || !texts) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (int i = 0; i < n; i++)
                ids[i] = custs[i]->id;
        rc = loy_store_get_texts(b->store, ":rh", ids, n, texts, errstr,
                                 errstr_size);
        for (int i = 0; rc == 0 && i < n; i++) {
                loy_cust_ext_t *x = loy_cache_ext(custs[i]);
                loy_reco_hist_init(&x->hist);
                /* a history that does not parse only costs this
                 * customer's recommendations their past */
                if (texts[i] &&
                    loy_reco_hist_parse(b->reco, &x->hist, texts[i]) == -1)
                        LOY_WARN("proc",
                                 "customer %s: history unreadable, "
                                 "starting afresh",
                                 custs[i]->id);
        }
        for (int i = 0; rc == 0 && i < n; i++)
                free(texts[i]);
out:
        free(ids);
        free(texts);
        return rc;
}

/* One pipelined round trip for every customer touched from touched[from]
 * on that is not in the cache. */
static int load(loy_batch_t *b, int from, char *errstr, size_t errstr_size) {
        loy_cust_t **custs;
        int *found;
        int *which;
        int n = 0, rc = 0;
        custs = malloc((size_t)b->ntouched * sizeof(*custs));
        found = malloc((size_t)b->ntouched * sizeof(*found));
        which = malloc((size_t)b->ntouched * sizeof(*which));
        if (!custs || !found || !which) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = LOY_STORE_ERR;
                goto out;
        }
        for (int i = from; i < b->ntouched; i++)
                if (b->touched[i].need_load) {
                        which[n] = i;
                        custs[n++] = b->touched[i].c;
                }
        if (n)
                rc = loy_store_load(b->store, custs, n, found, errstr,
                                    errstr_size);
        if (rc == 0 && n && b->reco)
                rc = load_histories(b, custs, n, errstr, errstr_size);
        for (int k = 0; rc == 0 && k < n; k++) {
                loy_cust_ext_t *x = loy_cache_ext(custs[k]);
                b->touched[which[k]].existed = found[k];
                if (found[k])
                        loy_store_shadow_take(&x->shadow, custs[k],
                                              &b->conf->feat);
                else
                        x->shadow.valid = 0;
        }
        for (int i = from; rc == 0 && i < b->ntouched; i++)
                snapshot(b, &b->touched[i]);
out:
        free(custs);
        free(found);
        free(which);
        return rc;
}

static int touch_events(loy_batch_t *b, char *errstr, size_t errstr_size) {
        for (int i = 0; i < b->nevents; i++)
                if (!loy_batch_quarantined(b, b->events[i].customer_id) &&
                    !loy_batch_touch(b, b->events[i].customer_id, errstr,
                                     errstr_size))
                        return LOY_STORE_ERR;
        return 0;
}

/* after_events: the events were applied already; what they set stays as
 * if the timers had been touched first (a purchase's partition, a check
 * that fired at an event). */
static int touch_timers(loy_batch_t *b, int after_events, char *errstr,
                        size_t errstr_size) {
        for (int i = 0; i < b->ntimers; i++) {
                loy_touched_t *t;
                if (loy_batch_quarantined(b, b->timer_ids[i]))
                        continue;
                t = loy_batch_touch(b, b->timer_ids[i], errstr, errstr_size);
                if (!t)
                        return LOY_STORE_ERR;
                t->by_timer = 1;
                if (!after_events || !t->by_purchase)
                        t->partition = b->timer_part[i];
                t->fired_partition = b->timer_part[i];
                if (!after_events || !t->fired)
                        t->timer_due = b->timer_due[i];
        }
        return 0;
}

int loy_load_batch(loy_batch_t *b, char *errstr, size_t errstr_size) {
        /* touch everyone first so one pipeline loads them all */
        if (touch_events(b, errstr, errstr_size) ||
            touch_timers(b, 0, errstr, errstr_size))
                return LOY_STORE_ERR;
        return load(b, 0, errstr, errstr_size);
}

int loy_load_events(loy_batch_t *b, char *errstr, size_t errstr_size) {
        if (touch_events(b, errstr, errstr_size))
                return LOY_STORE_ERR;
        return load(b, 0, errstr, errstr_size);
}

int loy_load_due(loy_batch_t *b, char *errstr, size_t errstr_size) {
        int from = b->ntouched;
        if (touch_timers(b, 1, errstr, errstr_size))
                return LOY_STORE_ERR;
        return load(b, from, errstr, errstr_size);
}

int loy_load_timers(loy_batch_t *b, rd_kafka_t *consumer, int64_t clock_ms,
                    char *errstr, size_t errstr_size) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int left = b->conf->timer_batch;
        if (clock_ms <= 0 || !b->conf->topic_purchase[0])
                return 0;
        if (rd_kafka_assignment(consumer, &asg) || !asg)
                return 0;
        for (int i = 0; i < asg->cnt && left > 0; i++) {
                char **ids = NULL;
                int64_t *due = NULL;
                int n = 0;
                if (strcmp(asg->elems[i].topic, b->conf->topic_purchase))
                        continue;
                if (loy_store_timers_due_at(
                        b->store, asg->elems[i].partition,
                        loy_clock_timer_limit(b->clock, b->conf->topic_purchase,
                                              asg->elems[i].partition,
                                              clock_ms),
                        left, &ids, &due, &n, errstr, errstr_size) != 0) {
                        rd_kafka_topic_partition_list_destroy(asg);
                        return -1;
                }
                if (b->ntimers + n > b->timers_cap) {
                        int cap = b->ntimers + n + 64;
                        char **ni =
                            realloc(b->timer_ids, (size_t)cap * sizeof(*ni));
                        int32_t *np;
                        int64_t *nd;
                        if (ni)
                                b->timer_ids = ni;
                        np = realloc(b->timer_part, (size_t)cap * sizeof(*np));
                        if (np)
                                b->timer_part = np;
                        nd = realloc(b->timer_due, (size_t)cap * sizeof(*nd));
                        if (nd)
                                b->timer_due = nd;
                        if (!ni || !np || !nd) {
                                loy_store_free_ids(ids, n);
                                free(due);
                                rd_kafka_topic_partition_list_destroy(asg);
                                snprintf(errstr, errstr_size, "out of memory");
                                return -1;
                        }
                        b->timers_cap = cap;
                }
                for (int k = 0; k < n; k++) {
                        b->timer_ids[b->ntimers] = ids[k];
                        b->timer_part[b->ntimers] = asg->elems[i].partition;
                        b->timer_due[b->ntimers++] = due[k];
                }
                free(ids); /* the strings moved to timer_ids */
                free(due);
                left -= n;
        }
        rd_kafka_topic_partition_list_destroy(asg);
        return 0;
}

/* Keeps of the loaded checks only those their customers still owe: the
 * lists are rewritten with the owed ones, and would otherwise grow with
 * every failed write. */
static int settle_owed(loy_batch_t *b, char *errstr, size_t errstr_size) {
        int n = loy_agg_owed_count(b->agg), rc;
        const char **ids = calloc((size_t)n + 1, sizeof(*ids));
        char **vals = calloc((size_t)n + 1, sizeof(*vals));
        int *owed = calloc((size_t)n + 1, sizeof(*owed));
        int64_t *due = calloc((size_t)n + 1, sizeof(*due));
        if (!ids || !vals || !owed || !due) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = LOY_STORE_ERR;
                goto out;
        }
        for (int i = 0; i < n; i++)
                loy_agg_owed_get(b->agg, i, &ids[i], &due[i]);
        rc = loy_store_hget_custs(b->store, "next_check_ms", ids, n, vals,
                                  errstr, errstr_size);
        for (int i = 0; rc == 0 && i < n; i++) {
                /* a hash not written yet, or not past the check: the
                 * check moves it past its due time (or to 0) */
                long long v = vals[i] ? strtoll(vals[i], NULL, 10) : 1;
                owed[i] = v > 0 && v <= due[i];
                free(vals[i]);
        }
        if (rc == 0)
                loy_agg_owed_settle(b->agg, owed);
out:
        free(ids);
        free(vals);
        free(owed);
        free(due);
        return rc;
}

/* The partitions Kafka assigned since the last load become this
 * process's in Redis, before anything of theirs is read: a previous owner
 * that is still alive but was dropped from the group (frozen) loses its
 * connections, so it cannot write what it held (loy_store.h). */
static int take_over(loy_batch_t *b, char *errstr, size_t errstr_size) {
        const char *const *own;
        int n, nclosed = 0, rc;
        if (!loy_store_owner(b->store)[0])
                return 0;
        if (loy_agg_takeover_fields(b->agg, &own, &n)) {
                snprintf(errstr, errstr_size, "out of memory");
                return LOY_STORE_ERR;
        }
        rc = loy_store_take_over(b->store, own, n, &nclosed, errstr,
                                 errstr_size);
        if (rc)
                return rc;
        loy_agg_takeover_done(b->agg);
        if (nclosed)
                LOY_WARN("load",
                         "took over %d partitions: closed %d "
                         "connections of their previous owner, which is "
                         "still running but no longer in the group",
                         n, nclosed);
        b->takeover_closed += nclosed;
        return 0;
}

/* Reads back what the aggregates hold for the partitions this process
 * owns (after an assignment, or a write that may have landed in part). */
int loy_load_fences(loy_batch_t *b, rd_kafka_t *consumer, char *errstr,
                    size_t errstr_size) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        const char **topics = NULL;
        int32_t *parts = NULL;
        const char *const *fields;
        char **values = NULL;
        int n = 0, nf = 0, rc = LOY_STORE_ERR;
        if (rd_kafka_assignment(consumer, &asg) == 0 && asg)
                n = asg->cnt;
        topics = calloc((size_t)n + 1, sizeof(*topics));
        parts = calloc((size_t)n + 1, sizeof(*parts));
        for (int i = 0; topics && parts && i < n; i++) {
                topics[i] = asg->elems[i].topic;
                parts[i] = asg->elems[i].partition;
        }
        if (!topics || !parts ||
            loy_agg_fence_fields(b->agg, topics, parts, n, &fields, &nf) ||
            !(values = calloc((size_t)nf + 1, sizeof(*values)))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        rc = take_over(b, errstr, errstr_size);
        if (rc == 0)
                rc = loy_store_fence_get(b->store, fields, nf, values, errstr,
                                         errstr_size);
        if (rc == 0 && loy_agg_fence_load(b->agg, values, errstr, errstr_size))
                rc = LOY_STORE_ERR;
        if (rc == 0)
                rc = settle_owed(b, errstr, errstr_size);
        if (rc)
                loy_agg_fences_forget(b->agg);
        for (int i = 0; values && i < nf; i++)
                free(values[i]);
out:
        free(values);
        free(topics);
        free(parts);
        if (asg)
                rd_kafka_topic_partition_list_destroy(asg);
        return rc;
}
