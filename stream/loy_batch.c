/* loy_batch: see loy_batch.h. */
#include "loy_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_hash.h"
#include "loy_log.h"

int loy_batch_init(loy_batch_t *b, const loy_config_t *conf, char *errstr,
                   size_t errstr_size) {
        int per_batch = conf->batch_max + conf->timer_batch;
        memset(b, 0, sizeof(*b));
        b->conf = conf;
        b->msgs = calloc((size_t)conf->batch_max, sizeof(*b->msgs));
        b->carry = calloc((size_t)conf->batch_max, sizeof(*b->carry));
        b->bad_why = calloc((size_t)conf->batch_max, sizeof(*b->bad_why));
        b->bad_class = calloc((size_t)conf->batch_max, 1);
        b->events = calloc((size_t)conf->batch_max, sizeof(*b->events));
        b->event_msg = calloc((size_t)conf->batch_max, sizeof(int));
        b->order = calloc((size_t)conf->batch_max, sizeof(int));
        b->group_of = calloc((size_t)conf->batch_max, sizeof(int));
        b->group_head = calloc((size_t)conf->batch_max, sizeof(int));
        b->touched_cap = per_batch;
        b->touched = calloc((size_t)per_batch, sizeof(*b->touched));
        b->writes = calloc((size_t)per_batch, sizeof(*b->writes));
        b->index_size = 16;
        while (b->index_size < (size_t)per_batch * 2)
                b->index_size *= 2;
        b->index = malloc(b->index_size * sizeof(int));
        if (!b->msgs || !b->carry || !b->bad_why || !b->bad_class ||
            !b->events || !b->event_msg || !b->order || !b->group_of ||
            !b->group_head || !b->touched || !b->writes || !b->index) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        for (int i = 0; i < conf->rules.n; i++)
                loy_batch_name_rule(b, i);
        return 0;
}

void loy_batch_name_rule(loy_batch_t *b, int rule) {
        static const char *const kpi[4] = {"triggers", "holdout", "converted",
                                           "holdout_converted"};
        for (int k = 0; k < 4; k++)
                snprintf(b->names[rule][k], sizeof(b->names[rule][k]), "%s:%s",
                         kpi[k], b->conf->rules.rule[rule].name);
}

void loy_batch_free(loy_batch_t *b) {
        if (b->events)
                for (int i = 0; i < b->conf->batch_max; i++)
                        loy_event_free(&b->events[i]);
        free(b->events);
        free(b->event_msg);
        free(b->order);
        free(b->group_of);
        free(b->group_head);
        free(b->msgs);
        free(b->carry);
        free(b->bad_why);
        free(b->bad_class);
        for (int i = 0; b->touched && i < b->ntouched; i++)
                free(b->touched[i].hist_text);
        free(b->touched);
        free(b->writes);
        free(b->index);
        free(b->outbox);
        free(b->entries);
        free(b->timer_ids);
        free(b->timer_part);
        free(b->timer_due);
        memset(b, 0, sizeof(*b));
}

void loy_batch_drop_carry(loy_batch_t *b) {
        for (int i = 0; i < b->ncarry; i++)
                rd_kafka_message_destroy(b->carry[i]);
        b->ncarry = 0;
}

void loy_batch_drop_timers(loy_batch_t *b) {
        for (int i = 0; i < b->ntimers; i++)
                free(b->timer_ids[i]);
        b->ntimers = 0;
}

void loy_batch_drop(loy_batch_t *b) {
        for (int i = 0; i < b->nmsgs; i++)
                rd_kafka_message_destroy(b->msgs[i]);
        if (b->dlq)
                loy_dlq_reset(b->dlq, b->nmsgs);
        b->nmsgs = 0;
        b->nevents = 0;
        loy_batch_drop_timers(b);
        for (int i = 0; i < b->noutbox; i++)
                free(b->outbox[i].payload);
        b->noutbox = 0;
}

void loy_batch_restart(loy_batch_t *b) {
        for (int i = 0; i < b->ntouched; i++) {
                free(b->touched[i].hist_text);
                b->touched[i].hist_text = NULL;
        }
        memset(b->index, 0xff, b->index_size * sizeof(int));
        b->ntouched = 0;
        for (int i = 0; i < b->noutbox; i++)
                free(b->outbox[i].payload);
        b->noutbox = 0;
}

loy_touched_t *loy_batch_touch(loy_batch_t *b, const char *cid, char *errstr,
                               size_t errstr_size) {
        size_t mask = b->index_size - 1;
        size_t i = loy_hash64(cid, strlen(cid), 0) & mask;
        loy_touched_t *t;
        int is_new;
        for (; b->index[i] != -1; i = (i + 1) & mask)
                if (!strcmp(b->touched[b->index[i]].c->id, cid))
                        return &b->touched[b->index[i]];
        if (b->ntouched == b->touched_cap) {
                snprintf(errstr, errstr_size, "batch holds too many customers");
                return NULL;
        }
        t = &b->touched[b->ntouched];
        memset(t, 0, sizeof(*t));
        t->c = loy_cache_put(b->cache, cid, &is_new);
        if (!t->c) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        t->need_load = is_new;
        t->existed = !is_new;
        t->partition = -1;
        t->event_partition = -1;
        b->index[i] = b->ntouched++;
        return t;
}

loy_outbox_rec_t *loy_batch_outbox_add(loy_batch_t *b) {
        if (b->noutbox == b->outbox_cap) {
                int cap = b->outbox_cap ? b->outbox_cap * 2 : 64;
                loy_outbox_rec_t *no =
                    realloc(b->outbox, (size_t)cap * sizeof(*no));
                loy_outbox_entry_t *ne;
                if (!no)
                        return NULL;
                b->outbox = no;
                ne = realloc(b->entries, (size_t)cap * sizeof(*ne));
                if (!ne)
                        return NULL;
                b->entries = ne;
                b->outbox_cap = cap;
        }
        memset(&b->outbox[b->noutbox], 0, sizeof(b->outbox[0]));
        return &b->outbox[b->noutbox++];
}

void loy_batch_dead_letter(loy_batch_t *b, int i, loy_dead_class_t cls,
                           const char *why) {
        if (loy_dlq_send(b->dlq, i, b->msgs[i], why)) {
                b->stats->dead_lettered++;
                b->stats->dead_by_class[cls]++;
        }
}

void loy_batch_dead_event(loy_batch_t *b, int i, loy_dead_class_t cls,
                          const char *why) {
        loy_batch_dead_letter(b, b->event_msg[i], cls, why);
}

int loy_batch_quarantined(const loy_batch_t *b, const char *cid) {
        for (int i = 0; i < b->nquarantine; i++)
                if (!strcmp(b->quarantine[i], cid))
                        return 1;
        return 0;
}

int loy_batch_quarantine_from(loy_batch_t *b, const char *err) {
        const char *id = strncmp(err, "customer ", 9) ? NULL : err + 9;
        const char *end = id ? strstr(id, ": ") : NULL;
        size_t n;
        if (!end || end == id || b->nquarantine == LOY_BATCH_QUARANTINE_MAX)
                return -1;
        n = (size_t)(end - id);
        if (n > LOY_ID_MAX)
                return -1;
        memcpy(b->quarantine[b->nquarantine], id, n);
        b->quarantine[b->nquarantine][n] = '\0';
        LOY_ERROR("proc",
                  "customer %s quarantined: its events go to the "
                  "dead-letter topic until its Redis state is repaired and "
                  "loyaltyd restarted (%s)",
                  b->quarantine[b->nquarantine], err);
        b->nquarantine++;
        return 0;
}
