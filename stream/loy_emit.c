/* loy_emit: see loy_emit.h. */
#include "loy_emit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "loy_kafka.h"
#include "loy_log.h"

struct loy_emit {
        const char *topic;
        loy_codec_t *codec;
        loy_proc_stats_t *stats;
        /* delivered trigger ids waiting for their outbox HDEL */
        char **acked;
        int nacked, acked_cap;
        int dr_failed;
        int resend_failed; /* an outbox re-send was refused */
        /* trigger ids of failed writes (loy_emit_suspect) */
        char **suspect;
        int nsuspect, suspect_cap;
};

loy_emit_t *loy_emit_create(const char *topic, loy_codec_t *codec,
                            loy_proc_stats_t *stats) {
        loy_emit_t *e = calloc(1, sizeof(*e));
        if (!e)
                return NULL;
        e->topic = topic;
        e->codec = codec;
        e->stats = stats;
        return e;
}

void loy_emit_destroy(loy_emit_t *e) {
        if (!e)
                return;
        for (int i = 0; i < e->nacked; i++)
                free(e->acked[i]);
        free(e->acked);
        for (int i = 0; i < e->nsuspect; i++)
                free(e->suspect[i]);
        free(e->suspect);
        free(e);
}

int loy_emit_failed(const loy_emit_t *e) {
        return e->dr_failed;
}

void loy_emit_batch(loy_emit_t *e, rd_kafka_t *producer, const loy_batch_t *b) {
        char err[256];
        for (int i = 0; i < b->noutbox; i++) {
                const loy_outbox_rec_t *o = &b->outbox[i];
                const loy_cust_t *c = b->touched[o->touched].c;
                char *id = strdup(o->trigger_id);
                if (!id || loy_kafka_produce(producer, e->topic, c->id,
                                             strlen(c->id), o->payload, o->len,
                                             id, err, sizeof(err)) == -1) {
                        /* the outbox has it: re-sent by the next scan */
                        LOY_ERROR("proc", "trigger %s: %s", o->trigger_id,
                                  id ? err : "out of memory");
                        free(id);
                        e->dr_failed = 1;
                }
        }
        e->stats->triggers_out += b->noutbox;
        for (int i = 0; i < b->noutbox; i++)
                e->stats->triggers_by_rule[b->outbox[i].rule]
                                          [b->outbox[i].holdout]++;
}

void loy_emit_delivered(loy_emit_t *e, const rd_kafka_message_t *m) {
        char *id = m->_private;
        if (!id)
                return;
        if (m->err) {
                /* stays in the outbox; re-sent on the next outbox scan */
                LOY_ERROR("proc", "trigger %s not delivered: %s", id,
                          rd_kafka_err2str(m->err));
                e->dr_failed = 1;
                free(id);
                return;
        }
        if (e->nacked == e->acked_cap) {
                int cap = e->acked_cap ? e->acked_cap * 2 : 256;
                char **na = realloc(e->acked, (size_t)cap * sizeof(*na));
                if (!na) {
                        free(id); /* outbox keeps it: re-sent, same id */
                        return;
                }
                e->acked = na;
                e->acked_cap = cap;
        }
        e->acked[e->nacked++] = id;
        e->stats->triggers_acked++;
}

void loy_emit_ack(loy_emit_t *e, loy_store_t *store) {
        char err[256];
        if (!e->nacked)
                return;
        if (loy_store_outbox_ack(store, (const char *const *)e->acked,
                                 e->nacked, err, sizeof(err)) != 0) {
                /* kept, and tried again after the next batch (or at the
                 * next start, sent again with the same ids) */
                LOY_WARN("proc", "outbox ack of %d triggers: %s", e->nacked,
                         err);
                return;
        }
        for (int i = 0; i < e->nacked; i++)
                free(e->acked[i]);
        e->nacked = 0;
}

/* The customer id inside a framed trigger, into cid ("" when it does not
 * decode): a re-sent trigger keeps the message key (the customer) it was
 * first sent with, so it lands on the same partition of the trigger topic
 * and keyed consumers see it in order. */
static void trigger_customer(loy_emit_t *e, const void *payload, size_t len,
                             char *cid, size_t size) {
        char err[256];
        char *text =
            loy_codec_trigger_to_json(e->codec, payload, len, err, sizeof(err));
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        const char *v = json_string_value(json_object_get(o, "customer_id"));
        snprintf(cid, size, "%s", v ? v : "");
        json_decref(o);
        free(text);
}

typedef struct resend_ctx {
        loy_emit_t *e;
        rd_kafka_t *producer;
} resend_ctx_t;

static int resend_cb(const char *id, const void *payload, size_t len,
                     void *opaque) {
        const resend_ctx_t *x = opaque;
        loy_emit_t *e = x->e;
        char err[256], cid[LOY_ID_MAX + 1];
        char *copy = strdup(id);
        if (!copy)
                return -1;
        trigger_customer(e, payload, len, cid, sizeof(cid));
        if (loy_kafka_produce(x->producer, e->topic, cid[0] ? cid : NULL,
                              strlen(cid), payload, len, copy, err,
                              sizeof(err)) == -1) {
                free(copy);
                LOY_ERROR("proc", "outbox re-send: %s", err);
                e->resend_failed = 1;
                return -1;
        }
        return 0;
}

int loy_emit_resend(loy_emit_t *e, rd_kafka_t *producer, loy_store_t *store,
                    char *errstr, size_t errstr_size) {
        resend_ctx_t x = {e, producer};
        int rc;
        e->resend_failed = 0;
        rc = loy_store_outbox_scan(store, resend_cb, &x, errstr, errstr_size);
        if (rc == 0 && !e->resend_failed) {
                e->dr_failed = 0;
                return 0;
        }
        if (e->resend_failed)
                snprintf(errstr, errstr_size, "producer refused");
        /* triggers stay in the outbox; sent again by a later scan */
        e->dr_failed = 1;
        return -1;
}

void loy_emit_store_offsets(const loy_batch_t *b, rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        if (!b->nmsgs)
                return;
        list = rd_kafka_topic_partition_list_new(8);
        for (int i = 0; i < b->nmsgs; i++) {
                const rd_kafka_message_t *m = b->msgs[i];
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_find(
                        list, rd_kafka_topic_name(m->rkt), m->partition);
                if (!tp)
                        tp = rd_kafka_topic_partition_list_add(
                            list, rd_kafka_topic_name(m->rkt), m->partition);
                if (m->offset + 1 > tp->offset)
                        tp->offset = m->offset + 1;
        }
        err = rd_kafka_offsets_store(consumer, list);
        if (err)
                LOY_DEBUG("proc", "offsets store: %s (partitions moved)",
                          rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(list);
}

int loy_emit_suspect(loy_emit_t *e, const loy_batch_t *b) {
        for (int k = 0; k < b->noutbox; k++) {
                const char *id = b->outbox[k].trigger_id;
                int seen = 0;
                for (int i = 0; i < e->nsuspect && !seen; i++)
                        seen = !strcmp(e->suspect[i], id);
                if (seen)
                        continue;
                if (e->nsuspect == e->suspect_cap) {
                        int cap = e->suspect_cap ? e->suspect_cap * 2 : 64;
                        char **ns =
                            realloc(e->suspect, sizeof(*ns) * (size_t)cap);
                        if (!ns)
                                return -1;
                        e->suspect = ns;
                        e->suspect_cap = cap;
                }
                if (!(e->suspect[e->nsuspect] = strdup(id)))
                        return -1;
                e->nsuspect++;
        }
        return 0;
}

void loy_emit_suspects_send(loy_emit_t *e, rd_kafka_t *producer,
                            loy_store_t *store, const loy_batch_t *b) {
        resend_ctx_t x = {e, producer};
        char err[256];
        int w = 0, n;
        if (!e->nsuspect)
                return;
        /* the batch just written made these again and sent them */
        for (int i = 0; i < e->nsuspect; i++) {
                int mine = 0;
                for (int k = 0; k < b->noutbox && !mine; k++)
                        mine = !strcmp(b->outbox[k].trigger_id, e->suspect[i]);
                if (mine)
                        free(e->suspect[i]);
                else
                        e->suspect[w++] = e->suspect[i];
        }
        e->nsuspect = n = w;
        if (!n)
                return;
        e->resend_failed = 0;
        if (loy_store_outbox_get(store, (const char *const *)e->suspect, n,
                                 resend_cb, &x, err, sizeof(err)) != 0) {
                LOY_WARN("proc",
                         "re-send of %d triggers of failed writes: "
                         "%s",
                         n, err);
                return;
        }
        if (e->resend_failed)
                e->dr_failed = 1; /* the full scan sends them */
        for (int i = 0; i < n; i++)
                free(e->suspect[i]);
        e->nsuspect = 0;
}
