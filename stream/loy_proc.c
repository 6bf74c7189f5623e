/* loy_proc: see loy_proc.h. */
#include "loy_proc.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "../features/loy_rfm.h"
#include "../models/loy_model.h"
#include "../models/loy_reco.h"
#include "../models/loy_rules.h"
#include "../state/loy_cache.h"
#include "../state/loy_store.h"
#include "loy_agg.h"
#include "loy_clock.h"
#include "loy_codec.h"
#include "loy_decide.h"
#include "loy_dlq.h"
#include "loy_kafka.h"
#include "loy_log.h"

#define LAT_RING 1024          /* batch latencies kept for percentiles */
#define HIST_REFRESH_MS 10000  /* re-read the shared population this often */
#define QUARANTINE_MAX 64
#define CLOCK_READ_MS 2000     /* the group's event time, while idle */
#define BATCH_STALE 1          /* run_batch: not written, read it again */

#define DLQ_REASON_MAX 256
#define NINCR 11               /* counters added to <ns>:stats */

#define HIST_TEXT_MAX (LOY_RECO_HIST_MAX * (LOY_SKU_MAX + 64))

/* Kept beside each cached customer (loy_cache ext). */
typedef struct cust_ext {
        loy_shadow_t shadow;            /* what its hash holds */
        loy_reco_hist_t hist;
} cust_ext_t;

/* A customer the batch touches. */
typedef struct touched {
        loy_cust_t *c;                  /* in the cache */
        int need_load;
        int existed;                    /* known to Redis (or the cache) */
        /* where the segment and histogram counts hold it before the
         * batch */
        loy_agg_counted_t counted;
        int cur_bins[LOY_DIM__COUNT];   /* as the in-memory population has it */
        int64_t old_timer;
        int by_event, by_purchase, by_timer;
        int fired;                      /* a silence check was scored */
        int32_t partition;              /* of its purchase topic */
        int32_t event_partition;        /* of any of its events, or -1 */
        int64_t timer_due;              /* score of the fired entry */
        int32_t fired_partition;
        int reco_dirty;                 /* its history learned an event */
        char *hist_text;                /* owned, for the write */
        int nrecs;
        const char *rec_ptr[LOY_RECS_MAX];
        double rec_score[LOY_RECS_MAX];
        char rec_sku[LOY_RECS_MAX][LOY_SKU_MAX + 1];
} touched_t;

typedef struct outbox_rec {
        int touched;
        char trigger_id[33];
        void *payload;                  /* owned */
        size_t len;
} outbox_rec_t;

struct loy_proc {
        loy_config_t conf;
        loy_model_t model;
        loy_codec_t *codec;
        loy_store_t *store;
        loy_cache_t *cache;
        loy_rfm_t *rfm;
        loy_clock_t *clock;
        loy_reco_t *reco;               /* NULL when reco.enabled = no */
        loy_reco_incr_t *incr;          /* flush scratch */
        size_t incr_cap;
        int64_t last_reco_flush_ms;
        int64_t reco_flushed, reco_refreshed, reco_skipped;
        rd_kafka_t *consumer;
        rd_kafka_t *producer;

        /* the batch */
        rd_kafka_message_t **msgs;
        int nmsgs;
        loy_event_t *events;            /* decoded, batch_max of them */
        int *event_msg;                 /* event -> its message */
        int *order;                     /* events in apply order */
        int *group_of, *group_head;     /* merge scratch, per event */
        int nevents;
        char **timer_ids;               /* due timers this batch */
        int32_t *timer_part;
        int64_t *timer_due;
        int ntimers, timers_cap;
        touched_t *touched;
        int ntouched, touched_cap;
        int *index;                     /* open addressing: cid -> touched */
        size_t index_size;
        loy_agg_t *agg;                 /* the batch's sums and fences */
        outbox_rec_t *outbox;
        int noutbox, outbox_cap;
        loy_cust_write_t *writes;
        loy_outbox_entry_t *entries;
        char names[LOY_RULES_MAX][2][48]; /* "triggers:<r>", "holdout:<r>" */

        /* delivered trigger ids waiting for their outbox HDEL */
        char **acked;
        int nacked, acked_cap;
        int dr_failed;
        int resend_failed;              /* an outbox re-send was refused */
        int revoked;                    /* partitions revoked during poll */
        loy_dlq_t *dlq;                 /* dead letters of the batch */
        /* customers whose Redis state makes every write fail: their events
         * are dead-lettered instead of blocking the partition */
        char quarantine[QUARANTINE_MAX][LOY_ID_MAX + 1];
        int nquarantine;
        int need_refresh;               /* population and outbox re-read */
        int clock_restore;              /* partitions' times to read back */
        int64_t last_clock_read_ms;
        double polled_ms;               /* when the batch was collected */
        double stale_ms;                /* a batch older is not written */
        int64_t *clock_saved;           /* per clock partition, last saved */
        int clock_saved_cap;

        int64_t last_hist_ms;
        int64_t last_model_check_ms;
        int64_t last_scan_ms;           /* of the outbox */
        int64_t first_batch_ms;         /* wall clock of the first batch */
        struct timespec model_mtime;    /* of the model file last loaded */
        double lat_ms[LAT_RING];
        int nlat;
        int64_t started_ms;
        loy_proc_stats_t stats;
        int64_t pending_stats[NINCR];
};

static int64_t wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static struct timespec mtime_of(const char *path) {
        struct stat st;
        struct timespec none = {0, 0};
        return stat(path, &st) == 0 ? st.st_mtim : none;
}

static uint64_t hash_str(const char *s) {
        return loy_hash64(s, strlen(s), 0);
}

/* ------------------------------------------------------------------ */
/* Kafka callbacks                                                      */
/* ------------------------------------------------------------------ */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        loy_proc_t *p = opaque;
        int64_t now = wall_ms();
        int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk),
                                  "COOPERATIVE");
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                for (int i = 0; i < parts->cnt; i++) {
                        loy_clock_assign(p->clock, parts->elems[i].topic,
                                         parts->elems[i].partition, now);
                        /* unread data until the consumer says otherwise */
                        loy_clock_backlog(p->clock, parts->elems[i].topic,
                                          parts->elems[i].partition, 1);
                }
                /* where event time stood is read back from Redis by the
                 * loop (not here: the store may be busy) */
                p->clock_restore = 1;
                /* and what the aggregates hold of them */
                loy_agg_fences_forget(p->agg);
                LOY_INFO("proc", "assigned %d partitions", parts->cnt);
                if (cooperative)
                        rd_kafka_error_destroy(
                            rd_kafka_incremental_assign(rk, parts));
                else
                        rd_kafka_assign(rk, parts);
                return;
        }
        /* Revoked: commit what was stored, and forget cached customers: the
         * next owner of their partitions may change them. Messages of these
         * partitions already polled into the batch are dropped unprocessed
         * (the new owner reads them). */
        rd_kafka_commit(rk, NULL, 0);
        for (int i = 0; i < parts->cnt; i++)
                loy_clock_revoke(p->clock, parts->elems[i].topic,
                                 parts->elems[i].partition);
        loy_cache_clear(p->cache);
        p->revoked = 1;
        /* the clock's partitions move: save them all again */
        if (p->clock_saved)
                memset(p->clock_saved, 0,
                       (size_t)p->clock_saved_cap * sizeof(*p->clock_saved));
        LOY_INFO("proc", "revoked %d partitions", parts->cnt);
        if (cooperative)
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
                rd_kafka_assign(rk, NULL);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        loy_proc_t *p = opaque;
        char *id = m->_private;
        (void)rk;
        if (p->dlq && loy_dlq_owns(p->dlq, id)) {
                loy_dlq_delivered(p->dlq, m);
                return;
        }
        if (!id)
                return;
        if (m->err) {
                /* stays in the outbox; re-sent on the next outbox scan */
                LOY_ERROR("proc", "trigger %s not delivered: %s", id,
                          rd_kafka_err2str(m->err));
                p->dr_failed = 1;
                free(id);
                return;
        }
        if (p->nacked == p->acked_cap) {
                int cap = p->acked_cap ? p->acked_cap * 2 : 256;
                char **na = realloc(p->acked, (size_t)cap * sizeof(*na));
                if (!na) {
                        free(id); /* outbox keeps it: re-sent, same id */
                        return;
                }
                p->acked = na;
                p->acked_cap = cap;
        }
        p->acked[p->nacked++] = id;
        p->stats.triggers_acked++;
}

/* ------------------------------------------------------------------ */
/* create / destroy                                                     */
/* ------------------------------------------------------------------ */

static int subscribe(loy_proc_t *p, char *errstr, size_t errstr_size) {
        rd_kafka_topic_partition_list_t *topics =
            rd_kafka_topic_partition_list_new(2);
        rd_kafka_resp_err_t err;
        if (p->conf.topic_purchase[0])
                rd_kafka_topic_partition_list_add(
                    topics, p->conf.topic_purchase, RD_KAFKA_PARTITION_UA);
        if (p->conf.topic_browse[0])
                rd_kafka_topic_partition_list_add(
                    topics, p->conf.topic_browse, RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(p->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

loy_proc_t *loy_proc_create(const loy_config_t *conf, char *errstr,
                            size_t errstr_size) {
        loy_proc_t *p = calloc(1, sizeof(*p));
        loy_codec_ids_t ids;
        int per_batch;
        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->conf = *conf;
        /* the kafka strings stay owned by the caller's conf */
        if (loy_model_load(&p->model, conf->model_path, errstr,
                           errstr_size) == -1)
                goto fail;
        if (conf->discount_monthly >= 0)
                p->model.discount_monthly = conf->discount_monthly;
        ids.purchase = conf->schema_purchase;
        ids.browse = conf->schema_browse;
        ids.trigger = conf->schema_trigger;
        p->codec = loy_codec_create(&ids, errstr, errstr_size);
        if (!p->codec)
                goto fail;
        p->store = loy_store_create(conf->redis_host, conf->redis_port,
                                    conf->redis_ns, conf->redis_timeout_ms,
                                    errstr, errstr_size);
        if (!p->store)
                goto fail;
        if (conf->reco_enabled) {
                loy_reco_conf_t rc = conf->reco;
                rc.mem_limit = (size_t)conf->reco_mem_mb << 20;
                rc.track_pending = 1;
                p->reco = loy_reco_create(&rc, errstr, errstr_size);
                if (!p->reco)
                        goto fail;
        }
        p->cache = loy_cache_create_ext((size_t)conf->cache_customers,
                                        sizeof(cust_ext_t));
        p->rfm = loy_rfm_create();
        p->clock = loy_clock_create(conf->lateness_ms, conf->idle_ms);
        per_batch = conf->batch_max + conf->timer_batch;
        p->msgs = calloc((size_t)conf->batch_max, sizeof(*p->msgs));
        p->events = calloc((size_t)conf->batch_max, sizeof(*p->events));
        p->event_msg = calloc((size_t)conf->batch_max, sizeof(int));
        p->order = calloc((size_t)conf->batch_max, sizeof(int));
        p->group_of = calloc((size_t)conf->batch_max, sizeof(int));
        p->group_head = calloc((size_t)conf->batch_max, sizeof(int));
        p->touched_cap = per_batch;
        p->touched = calloc((size_t)per_batch, sizeof(*p->touched));
        p->writes = calloc((size_t)per_batch, sizeof(*p->writes));
        p->index_size = 16;
        while (p->index_size < (size_t)per_batch * 2)
                p->index_size *= 2;
        p->index = malloc(p->index_size * sizeof(int));
        p->agg = loy_agg_new();
        if (!p->agg || !p->cache || !p->rfm || !p->clock || !p->msgs || !p->events ||
            !p->event_msg || !p->order || !p->group_of || !p->group_head ||
            !p->touched || !p->writes || !p->index) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        for (int i = 0; i < conf->rules.n; i++) {
                snprintf(p->names[i][0], sizeof(p->names[i][0]),
                         "triggers:%s", conf->rules.rule[i].name);
                snprintf(p->names[i][1], sizeof(p->names[i][1]),
                         "holdout:%s", conf->rules.rule[i].name);
        }
        p->consumer = loy_kafka_consumer_new(conf, rebalance_cb, p, errstr,
                                             errstr_size);
        if (!p->consumer)
                goto fail;
        p->producer = loy_kafka_producer_new(conf, dr_cb, p, errstr,
                                             errstr_size);
        if (!p->producer)
                goto fail;
        p->dlq = loy_dlq_create(p->producer, conf->topic_deadletter,
                                conf->batch_max, conf->backoff_max_ms);
        if (!p->dlq) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (subscribe(p, errstr, errstr_size) == -1)
                goto fail;
        p->started_ms = wall_ms();
        p->need_refresh = 1;
        /* A process stopped (SIGSTOP, a long GC-like stall, a frozen VM)
         * for longer than the session timeout has been dropped from the
         * group and its partitions handed over: writing a batch it held
         * through that would overwrite the new owner's work. */
        p->stale_ms = 45000; /* librdkafka's default */
        for (int i = 0; i < conf->nkafka; i++)
                if (!strcmp(conf->kafka_keys[i], "session.timeout.ms"))
                        p->stale_ms = atof(conf->kafka_vals[i]);
        p->model_mtime = mtime_of(conf->model_path);
        LOY_INFO("proc", "model %s (%s, r=%g alpha=%g a=%g b=%g)",
                 p->model.version,
                 p->model.variant == LOY_VARIANT_MBGNBD ? "mbgnbd" : "bgnbd",
                 p->model.r, p->model.alpha, p->model.a, p->model.b);
        return p;
fail:
        loy_proc_destroy(p);
        return NULL;
}

static void free_batch(loy_proc_t *p) {
        for (int i = 0; i < p->nmsgs; i++)
                rd_kafka_message_destroy(p->msgs[i]);
        if (p->dlq)
                loy_dlq_reset(p->dlq, p->nmsgs);
        p->nmsgs = 0;
        p->nevents = 0;
        for (int i = 0; i < p->ntimers; i++)
                free(p->timer_ids[i]);
        p->ntimers = 0;
        for (int i = 0; i < p->noutbox; i++)
                free(p->outbox[i].payload);
        p->noutbox = 0;
}

static void ack_delivered(loy_proc_t *p) {
        char err[256];
        if (!p->nacked)
                return;
        if (loy_store_outbox_ack(p->store, (const char *const *)p->acked,
                                 p->nacked, err, sizeof(err)) != 0) {
                /* they stay in the outbox and are sent again, same ids */
                LOY_WARN("proc", "outbox ack: %s", err);
        }
        for (int i = 0; i < p->nacked; i++)
                free(p->acked[i]);
        p->nacked = 0;
}

/* librdkafka 2.0.2 asserts in rd_kafka_consumer_close when an assignment
 * is still being changed (after "Unknown member" commit failures of a
 * rebalance): leave the group first and serve the queue until the
 * revocation has gone through, then close. */
static void close_consumer(loy_proc_t *p) {
        double deadline = mono_ms() + 10000;
        rd_kafka_unsubscribe(p->consumer);
        while (mono_ms() < deadline) {
                rd_kafka_topic_partition_list_t *asg = NULL;
                rd_kafka_message_t *m;
                int owned = 1;
                if (!rd_kafka_assignment(p->consumer, &asg) && asg) {
                        owned = asg->cnt > 0;
                        rd_kafka_topic_partition_list_destroy(asg);
                }
                if (!owned && !rd_kafka_assignment_lost(p->consumer))
                        break;
                m = rd_kafka_consumer_poll(p->consumer, 100);
                if (m)
                        rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(p->consumer);
}

void loy_proc_destroy(loy_proc_t *p) {
        if (!p)
                return;
        /* messages hold references the consumer waits for on destroy */
        free_batch(p);
        if (p->consumer) {
                close_consumer(p);
                rd_kafka_destroy(p->consumer);
        }
        if (p->producer) {
                rd_kafka_flush(p->producer, 10000);
                rd_kafka_poll(p->producer, 0);
                if (p->store)
                        ack_delivered(p);
                rd_kafka_destroy(p->producer);
        }
        for (int i = 0; i < p->nacked; i++)
                free(p->acked[i]);
        free(p->acked);
        if (p->events)
                for (int i = 0; i < p->conf.batch_max; i++)
                        loy_event_free(&p->events[i]);
        free(p->events);
        free(p->event_msg);
        free(p->order);
        free(p->group_of);
        free(p->group_head);
        loy_dlq_destroy(p->dlq);
        free(p->msgs);
        for (int i = 0; p->touched && i < p->ntouched; i++)
                free(p->touched[i].hist_text);
        free(p->touched);
        free(p->writes);
        free(p->index);
        loy_agg_destroy(p->agg);
        free(p->clock_saved);
        free(p->outbox);
        free(p->entries);
        free(p->timer_ids);
        free(p->timer_part);
        free(p->timer_due);
        loy_clock_destroy(p->clock);
        loy_reco_destroy(p->reco);
        free(p->incr);
        if (p->rfm)
                loy_rfm_destroy(p->rfm);
        if (p->cache)
                loy_cache_destroy(p->cache);
        if (p->store)
                loy_store_destroy(p->store);
        if (p->codec)
                loy_codec_destroy(p->codec);
        free(p);
}

int loy_proc_reload_model(loy_proc_t *p, char *errstr, size_t errstr_size) {
        loy_model_t m;
        /* remembered even when refused: a bad file is reported once */
        p->model_mtime = mtime_of(p->conf.model_path);
        if (loy_model_load(&m, p->conf.model_path, errstr, errstr_size) ==
            -1)
                return -1;
        if (p->conf.discount_monthly >= 0)
                m.discount_monthly = p->conf.discount_monthly;
        p->model = m;
        LOY_INFO("proc", "model reloaded: %s", m.version);
        return 0;
}

const loy_proc_stats_t *loy_proc_stats(const loy_proc_t *p) {
        return &p->stats;
}

/* ------------------------------------------------------------------ */
/* the batch: touched customers                                         */
/* ------------------------------------------------------------------ */

static void index_reset(loy_proc_t *p) {
        for (int i = 0; i < p->ntouched; i++) {
                free(p->touched[i].hist_text);
                p->touched[i].hist_text = NULL;
        }
        memset(p->index, 0xff, p->index_size * sizeof(int));
        p->ntouched = 0;
}

static touched_t *touch(loy_proc_t *p, const char *cid, char *errstr,
                        size_t errstr_size) {
        size_t mask = p->index_size - 1;
        size_t i = hash_str(cid) & mask;
        touched_t *t;
        int is_new;
        for (; p->index[i] != -1; i = (i + 1) & mask)
                if (!strcmp(p->touched[p->index[i]].c->id, cid))
                        return &p->touched[p->index[i]];
        if (p->ntouched == p->touched_cap) {
                snprintf(errstr, errstr_size, "batch holds too many customers");
                return NULL;
        }
        t = &p->touched[p->ntouched];
        memset(t, 0, sizeof(*t));
        t->c = loy_cache_put(p->cache, cid, &is_new);
        if (!t->c) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        t->need_load = is_new;
        t->existed = !is_new;
        t->partition = -1;
        t->event_partition = -1;
        p->index[i] = p->ntouched++;
        return t;
}

/* Adds an integer delta to a daily KPI (counts, money in micro-units),
 * unless the aggregates already hold the current item. */
static int kpi_add(loy_proc_t *p, int64_t day_ms, const char *field,
                   int64_t delta) {
        return loy_agg_kpi(p->agg, day_ms, field, delta);
}

/* Money in millionths of the currency unit, for exact daily sums (event
 * values are validated to at most 1e9 per line). */
static int64_t micros(double amount) {
        return (int64_t)llround(amount * 1e6);
}

static outbox_rec_t *outbox_add(loy_proc_t *p) {
        if (p->noutbox == p->outbox_cap) {
                int cap = p->outbox_cap ? p->outbox_cap * 2 : 64;
                outbox_rec_t *no = realloc(p->outbox,
                                           (size_t)cap * sizeof(*no));
                loy_outbox_entry_t *ne;
                if (!no)
                        return NULL;
                p->outbox = no;
                ne = realloc(p->entries, (size_t)cap * sizeof(*ne));
                if (!ne)
                        return NULL;
                p->entries = ne;
                p->outbox_cap = cap;
        }
        memset(&p->outbox[p->noutbox], 0, sizeof(p->outbox[0]));
        return &p->outbox[p->noutbox++];
}

/* ------------------------------------------------------------------ */
/* collecting and decoding                                              */
/* ------------------------------------------------------------------ */

static loy_event_kind_t topic_kind(const loy_proc_t *p, const char *topic) {
        if (!strcmp(topic, p->conf.topic_purchase))
                return LOY_EV_PURCHASE;
        if (!strcmp(topic, p->conf.topic_browse))
                return LOY_EV_BROWSE;
        return 0;
}

/* Polls up to batch_max messages, waiting at most batch_ms. Once it holds
 * a message it takes only what is already waiting in the local queue: a
 * busy stream still fills whole batches (librdkafka prefetches), while a
 * quiet one does not hold an event back for the rest of batch_ms.
 * Returns -1 on a fatal consumer error. */
static int collect(loy_proc_t *p, volatile sig_atomic_t *running) {
        double deadline = mono_ms() + p->conf.batch_ms;
        while (p->nmsgs < p->conf.batch_max && *running) {
                double left = deadline - mono_ms();
                rd_kafka_message_t *m;
                if (left <= 0)
                        break;
                m = rd_kafka_consumer_poll(p->consumer,
                                           p->nmsgs ? 0 : (int)left + 1);
                if (!m) {
                        if (p->nmsgs)
                                break;
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt) {
                        loy_clock_backlog(p->clock,
                                          rd_kafka_topic_name(m->rkt),
                                          m->partition, 0);
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->err) {
                        if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                                LOY_ERROR("proc", "consumer: %s",
                                          rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                return -1;
                        }
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                LOY_WARN("proc", "consumer: %s",
                                         rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                loy_clock_backlog(p->clock, rd_kafka_topic_name(m->rkt),
                                  m->partition, 1);
                p->msgs[p->nmsgs++] = m;
        }
        return 0;
}

static void on_clock_field(const char *field, const char *value,
                           void *opaque) {
        loy_proc_t *p = opaque;
        const char *colon = strrchr(field, ':');
        char topic[256];
        size_t n;
        int64_t ts = atoll(value);
        if (!colon || (n = (size_t)(colon - field)) >= sizeof(topic))
                return;
        memcpy(topic, field, n);
        topic[n] = '\0';
        /* only the input topics' partitions count */
        if (strcmp(topic, p->conf.topic_purchase) &&
            strcmp(topic, p->conf.topic_browse))
                return;
        loy_clock_restore(p->clock, topic, (int32_t)atol(colon + 1), ts);
        loy_clock_global(p->clock, ts);
}

/* Gives newly owned partitions the event time a previous owner (or this
 * process before a restart) had applied there, so due timers fire without
 * waiting for new traffic; and, every few seconds while nothing arrives,
 * the newest time the whole group applied. */
static void restore_clock(loy_proc_t *p) {
        char err[256];
        if (!p->nmsgs && wall_ms() - p->last_clock_read_ms > CLOCK_READ_MS)
                p->clock_restore = 1;
        if (!p->clock_restore)
                return;
        p->last_clock_read_ms = wall_ms();
        if (loy_store_clock_load(p->store, on_clock_field, p, err,
                                 sizeof(err)) != 0) {
                LOY_WARN("proc", "event clock not restored yet: %s", err);
                return;
        }
        p->clock_restore = 0;
}

/* Saves the partitions' newest applied event times that moved. */
static void save_clock(loy_proc_t *p) {
        int n = loy_clock_owned(p->clock), k = 0;
        char names[64][300];
        const char *ptr[64];
        int64_t ts[64];
        char err[256];
        if (n > p->clock_saved_cap) {
                int64_t *ns = realloc(p->clock_saved,
                                      (size_t)n * sizeof(*ns));
                if (!ns)
                        return;
                memset(ns + p->clock_saved_cap, 0,
                       (size_t)(n - p->clock_saved_cap) * sizeof(*ns));
                p->clock_saved = ns;
                p->clock_saved_cap = n;
        }
        for (int i = 0; i < n; i++) {
                const char *topic;
                int32_t part;
                int64_t newest;
                loy_clock_part(p->clock, i, &topic, &part, &newest);
                /* slots move with rebalances: a stale entry only costs one
                 * extra field in the next save */
                if (newest <= 0 || newest == p->clock_saved[i])
                        continue;
                snprintf(names[k], sizeof(names[k]), "%s:%" PRId32, topic,
                         part);
                ptr[k] = names[k];
                ts[k] = newest;
                p->clock_saved[i] = newest;
                if (++k == 64) {
                        if (loy_store_clock_save(p->store, ptr, ts, k, err,
                                                 sizeof(err)))
                                LOY_WARN("proc", "event clock: %s", err);
                        k = 0;
                }
        }
        if (k && loy_store_clock_save(p->store, ptr, ts, k, err, sizeof(err)))
                LOY_WARN("proc", "event clock: %s", err);
}

/* Dead-letters message i of the batch (once, whatever the redos). */
static void send_dead(loy_proc_t *p, int i, const char *why) {
        if (loy_dlq_send(p->dlq, i, p->msgs[i], why))
                p->stats.dead_lettered++;
}

/* Dead-letters event i of the batch. */
static void dead_letter_event(loy_proc_t *p, int i, const char *why) {
        send_dead(p, p->event_msg[i], why);
}

/* Decodes the batch; bad messages go to the dead-letter topic. */
static void decode(loy_proc_t *p) {
        int64_t now = wall_ms();
        for (int i = 0; i < p->nmsgs; i++) {
                rd_kafka_message_t *m = p->msgs[i];
                const char *topic = rd_kafka_topic_name(m->rkt);
                loy_event_t *ev = &p->events[p->nevents];
                char why[DLQ_REASON_MAX];
                p->stats.events_in++;
                if (loy_codec_decode(p->codec, m->payload, m->len,
                                     topic_kind(p, topic), now, ev, why,
                                     sizeof(why)) == 0) {
                        ev->topic = topic;
                        ev->partition = m->partition;
                        ev->offset = m->offset;
                        p->event_msg[p->nevents++] = i;
                        loy_clock_observe(p->clock, topic, m->partition,
                                          ev->ts_ms, now);
                        continue;
                }
                send_dead(p, i, why);
        }
}

/* Seeks every partition of the batch back to its first message and drops
 * the batch: it will be consumed again (partitions no longer owned are
 * left to their new owner). */
static void rewind_batch(loy_proc_t *p) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(8);
        rd_kafka_error_t *error;
        for (int i = 0; i < p->nmsgs; i++) {
                const rd_kafka_message_t *m = p->msgs[i];
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_find(
                        list, rd_kafka_topic_name(m->rkt), m->partition);
                if (!tp) {
                        tp = rd_kafka_topic_partition_list_add(
                            list, rd_kafka_topic_name(m->rkt), m->partition);
                        tp->offset = m->offset;
                } else if (m->offset < tp->offset) {
                        tp->offset = m->offset;
                }
        }
        error = list->cnt ? rd_kafka_seek_partitions(p->consumer, list, 5000)
                          : NULL;
        if (error) {
                LOY_WARN("proc", "rewind: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        rd_kafka_topic_partition_list_destroy(list);
        free_batch(p);
}

/* After a revocation during the poll, drops the messages of partitions this
 * process no longer owns: their new owner processes them. */
static void drop_revoked(loy_proc_t *p) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int w = 0;
        p->revoked = 0;
        if (rd_kafka_assignment(p->consumer, &asg) || !asg)
                return;
        for (int i = 0; i < p->nmsgs; i++) {
                rd_kafka_message_t *m = p->msgs[i];
                if (rd_kafka_topic_partition_list_find(
                        asg, rd_kafka_topic_name(m->rkt), m->partition))
                        p->msgs[w++] = m;
                else
                        rd_kafka_message_destroy(m);
        }
        if (w < p->nmsgs)
                LOY_INFO("proc", "dropped %d messages of revoked partitions",
                         p->nmsgs - w);
        p->nmsgs = w;
        rd_kafka_topic_partition_list_destroy(asg);
}

static int quarantined(const loy_proc_t *p, const char *cid) {
        for (int i = 0; i < p->nquarantine; i++)
                if (!strcmp(p->quarantine[i], cid))
                        return 1;
        return 0;
}

/* Store errors name the customer ("customer <id>: ..."; ids hold no
 * blanks). Adds it to the quarantine; 0, or -1 when no customer is named. */
static int quarantine_from(loy_proc_t *p, const char *err) {
        const char *id = strncmp(err, "customer ", 9) ? NULL : err + 9;
        const char *end = id ? strstr(id, ": ") : NULL;
        size_t n;
        if (!end || end == id || p->nquarantine == QUARANTINE_MAX)
                return -1;
        n = (size_t)(end - id);
        if (n > LOY_ID_MAX)
                return -1;
        memcpy(p->quarantine[p->nquarantine], id, n);
        p->quarantine[p->nquarantine][n] = '\0';
        LOY_ERROR("proc", "customer %s quarantined: its events go to the "
                  "dead-letter topic until its Redis state is repaired and "
                  "loyaltyd restarted (%s)", p->quarantine[p->nquarantine],
                  err);
        p->nquarantine++;
        return 0;
}

/* Orders the batch for applying: a merge by event time of the partitions'
 * runs, each run kept in offset order (like Kafka Streams picking the
 * partition with the oldest head record). Sorting by time alone would
 * reorder a partition whose timestamps go backwards, and the offset fence
 * would then drop the earlier offset. */
static void merge_order(loy_proc_t *p) {
        int ngroups = 0;
        int *next = p->group_of; /* reused: next event of the same run */
        int *head = p->group_head;
        int tail[64], gcount = 0;
        /* runs are few (assigned partitions), so linear scans are cheap */
        const char *gtopic[64];
        int32_t gpart[64];
        for (int i = 0; i < p->nevents; i++)
                next[i] = -1;
        for (int i = 0; i < p->nevents; i++) {
                const loy_event_t *ev = &p->events[i];
                int g;
                for (g = 0; g < ngroups; g++)
                        if (gpart[g] == ev->partition && gtopic[g] == ev->topic)
                                break;
                if (g == ngroups) {
                        if (ngroups == 64) {
                                /* more runs than we merge: keep arrival
                                 * order, which is offset order per run */
                                for (int k = 0; k < p->nevents; k++)
                                        p->order[k] = k;
                                return;
                        }
                        gtopic[g] = ev->topic;
                        gpart[g] = ev->partition;
                        head[g] = i;
                        tail[g] = i;
                        ngroups++;
                } else {
                        next[tail[g]] = i;
                        tail[g] = i;
                }
        }
        while (gcount < p->nevents) {
                int best = -1;
                for (int g = 0; g < ngroups; g++)
                        if (head[g] >= 0 &&
                            (best < 0 || p->events[head[g]].ts_ms <
                                             p->events[head[best]].ts_ms))
                                best = g;
                p->order[gcount++] = head[best];
                head[best] = next[head[best]];
        }
}

static int fetch_timers(loy_proc_t *p, int64_t clock_ms, char *errstr,
                        size_t errstr_size) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int left = p->conf.timer_batch;
        if (clock_ms <= 0 || !p->conf.topic_purchase[0])
                return 0;
        if (rd_kafka_assignment(p->consumer, &asg) || !asg)
                return 0;
        for (int i = 0; i < asg->cnt && left > 0; i++) {
                char **ids = NULL;
                int64_t *due = NULL;
                int n = 0;
                if (strcmp(asg->elems[i].topic, p->conf.topic_purchase))
                        continue;
                if (loy_store_timers_due_at(p->store, asg->elems[i].partition,
                                            loy_clock_timer_limit(
                                                p->clock,
                                                p->conf.topic_purchase,
                                                asg->elems[i].partition,
                                                clock_ms),
                                            left, &ids, &due, &n,
                                            errstr, errstr_size) != 0) {
                        rd_kafka_topic_partition_list_destroy(asg);
                        return -1;
                }
                if (p->ntimers + n > p->timers_cap) {
                        int cap = p->ntimers + n + 64;
                        char **ni = realloc(p->timer_ids,
                                            (size_t)cap * sizeof(*ni));
                        int32_t *np;
                        int64_t *nd;
                        if (ni)
                                p->timer_ids = ni;
                        np = realloc(p->timer_part, (size_t)cap * sizeof(*np));
                        if (np)
                                p->timer_part = np;
                        nd = realloc(p->timer_due, (size_t)cap * sizeof(*nd));
                        if (nd)
                                p->timer_due = nd;
                        if (!ni || !np || !nd) {
                                loy_store_free_ids(ids, n);
                                free(due);
                                rd_kafka_topic_partition_list_destroy(asg);
                                snprintf(errstr, errstr_size,
                                         "out of memory");
                                return -1;
                        }
                        p->timers_cap = cap;
                }
                for (int k = 0; k < n; k++) {
                        p->timer_ids[p->ntimers] = ids[k];
                        p->timer_part[p->ntimers] = asg->elems[i].partition;
                        p->timer_due[p->ntimers++] = due[k];
                }
                free(ids); /* the strings moved to timer_ids */
                free(due);
                left -= n;
        }
        rd_kafka_topic_partition_list_destroy(asg);
        return 0;
}

/* ------------------------------------------------------------------ */
/* load, apply, score, decide, write                                    */
/* ------------------------------------------------------------------ */

/* Where the counts hold the customer: as its hash says, unless a failed
 * batch moved its counts without writing its hash (the aggregate fences
 * list it). */
static void snapshot(loy_proc_t *p, touched_t *t) {
        const loy_cust_t *c = t->c;
        loy_agg_counted_of(c, t->existed, &t->counted);
        loy_agg_counted_get(p->agg, c->id, &t->counted);
        memcpy(t->cur_bins, t->counted.bins, sizeof(t->cur_bins));
        t->old_timer = c->next_check_ms;
}

/* The recommendation histories of customers just loaded: one more
 * pipeline (a history is a string key of its own, not a hash field, so
 * dashboards reading the hash do not pay for it). */
static int load_histories(loy_proc_t *p, loy_cust_t *const *custs, int n,
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
        rc = loy_store_get_texts(p->store, ":rh", ids, n, texts, errstr,
                                 errstr_size);
        for (int i = 0; rc == 0 && i < n; i++) {
                cust_ext_t *x = loy_cache_ext(custs[i]);
                loy_reco_hist_init(&x->hist);
                /* a history that does not parse only costs this
                 * customer's recommendations their past */
                if (texts[i] &&
                    loy_reco_hist_parse(p->reco, &x->hist, texts[i]) == -1)
                        LOY_WARN("proc", "customer %s: history unreadable, "
                                 "starting afresh", custs[i]->id);
        }
        for (int i = 0; rc == 0 && i < n; i++)
                free(texts[i]);
out:
        free(ids);
        free(texts);
        return rc;
}

/* One pipelined round trip for every touched customer not in the cache. */
static int load(loy_proc_t *p, char *errstr, size_t errstr_size) {
        loy_cust_t **custs;
        int *found;
        int *which;
        int n = 0, rc = 0;
        custs = malloc((size_t)p->ntouched * sizeof(*custs));
        found = malloc((size_t)p->ntouched * sizeof(*found));
        which = malloc((size_t)p->ntouched * sizeof(*which));
        if (!custs || !found || !which) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = LOY_STORE_ERR;
                goto out;
        }
        for (int i = 0; i < p->ntouched; i++)
                if (p->touched[i].need_load) {
                        which[n] = i;
                        custs[n++] = p->touched[i].c;
                }
        if (n)
                rc = loy_store_load(p->store, custs, n, found, errstr,
                                    errstr_size);
        if (rc == 0 && n && p->reco)
                rc = load_histories(p, custs, n, errstr, errstr_size);
        for (int k = 0; rc == 0 && k < n; k++) {
                cust_ext_t *x = loy_cache_ext(custs[k]);
                p->touched[which[k]].existed = found[k];
                if (found[k])
                        loy_store_shadow_take(&x->shadow, custs[k],
                                              &p->conf.feat);
                else
                        x->shadow.valid = 0;
        }
        for (int i = 0; rc == 0 && i < p->ntouched; i++)
                snapshot(p, &p->touched[i]);
out:
        free(custs);
        free(found);
        free(which);
        return rc;
}

static int evaluate(loy_proc_t *p, touched_t *t, const loy_event_t *ev,
                    int64_t due_ms, char *errstr, size_t errstr_size);
static int64_t next_check(const loy_config_t *conf, const loy_cust_t *c,
                          int64_t now);

/* Fires the customer's silence checks due at or before upto, each scored
 * and decided at its own due time: whether a check fires before or after
 * the customer's next event then depends on event time alone, not on when
 * the clock happened to pass it. part is the timer's partition when the
 * batch does not know it yet (purchase and browse topics are
 * co-partitioned, so the numbers agree). */
static int fire_due(loy_proc_t *p, touched_t *t, int64_t upto, int32_t part,
                    char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        while (c->first_purchase_ms && c->next_check_ms > 0 &&
               c->next_check_ms <= upto) {
                int64_t due = c->next_check_ms;
                if (t->partition < 0)
                        t->partition = part;
                t->timer_due = due;
                t->fired = 1;
                p->stats.timers_fired++;
                if (loy_agg_on_fire(p->agg, c->id, due, t->partition) ==
                    -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                if (evaluate(p, t, NULL, due, errstr, errstr_size) == -1)
                        return -1;
                c->next_check_ms = next_check(&p->conf, c, due);
        }
        return 0;
}

static int apply_events(loy_proc_t *p, char *errstr, size_t errstr_size) {
        char slot[LOY_SLOT_NAME_MAX];
        for (int i = 0; i < p->nevents; i++) {
                int idx = p->order[i];
                const loy_event_t *ev = &p->events[idx];
                touched_t *t;
                loy_cust_t *c;
                int was_buyer, n;
                if (quarantined(p, ev->customer_id)) {
                        dead_letter_event(p, idx, "state: this customer's "
                                          "Redis state fails every write");
                        continue;
                }
                t = touch(p, ev->customer_id, errstr, errstr_size);
                if (!t)
                        return -1;
                c = t->c;
                n = snprintf(slot, sizeof(slot), "off:%s:%" PRId32,
                             ev->topic, ev->partition);
                if (n < 0 || (size_t)n >= sizeof(slot)) {
                        dead_letter_event(p, idx, "topic name too long to "
                                          "fence replays");
                        continue;
                }
                if (ev->offset <= loy_feat_slot_get(c, slot, -1)) {
                        p->stats.events_skipped_dup++;
                        continue;
                }
                /* without its fence an event could count twice on replay */
                if (loy_feat_slot_get(c, slot, INT64_MIN) == INT64_MIN &&
                    c->nslots >= LOY_SLOTS_MAX) {
                        dead_letter_event(p, idx, "state: customer has no "
                                          "free offset slot (events on too "
                                          "many partitions)");
                        continue;
                }
                t->event_partition = ev->partition;
                if (fire_due(p, t, ev->ts_ms, ev->partition, errstr,
                             errstr_size) == -1)
                        return -1;
                loy_agg_on_event(p->agg, ev->topic, ev->partition,
                                 ev->offset);
                was_buyer = c->orders > 0;
                loy_feat_apply(c, ev, &p->conf.feat);
                loy_feat_slot_set(c, slot, ev->offset);
                if (p->reco) {
                        cust_ext_t *x = loy_cache_ext(c);
                        /* -1: memory could not be found even by pruning;
                         * the event is partly learned, nothing else lost */
                        if (loy_reco_observe(p->reco, &x->hist, ev) == -1)
                                LOY_DEBUG("proc", "reco: event %s partly "
                                          "learned", ev->event_id);
                        t->reco_dirty = 1;
                }
                p->stats.events_applied++;
                t->by_event = 1;
                if (ev->kind == LOY_EV_BROWSE) {
                        if (kpi_add(p, ev->ts_ms, "browse_events", 1))
                                goto nomem;
                        if (evaluate(p, t, ev, 0, errstr, errstr_size) == -1)
                                return -1;
                        continue;
                }
                t->by_purchase = 1;
                if (!strcmp(ev->topic, p->conf.topic_purchase))
                        t->partition = ev->partition;
                {
                        double net = loy_event_net_value(ev);
                        loy_purchase_kind_t kind =
                            loy_event_purchase_kind(ev);
                        int rc = 0;
                        if (kind == LOY_PURCHASE_ORDER) {
                                rc = kpi_add(p, ev->ts_ms, "purchases", 1) ||
                                     kpi_add(p, ev->ts_ms,
                                             "revenue_micros",
                                             micros(net)) ||
                                     kpi_add(p, ev->ts_ms,
                                             was_buyer ? "repeat_purchases"
                                                       : "new_customers",
                                             1);
                        } else if (kind == LOY_PURCHASE_RETURN) {
                                rc = kpi_add(p, ev->ts_ms, "returns", 1) ||
                                     kpi_add(p, ev->ts_ms,
                                             "return_value_micros",
                                             micros(-net));
                        }
                        if (rc)
                                goto nomem;
                }
                if (evaluate(p, t, ev, 0, errstr, errstr_size) == -1)
                        return -1;
                /* the next silence check counts from this purchase */
                if (t->partition >= 0)
                        c->next_check_ms = next_check(&p->conf, c,
                                                      c->scored_ms);
        }
        return 0;
nomem:
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
}

static void score(loy_proc_t *p, touched_t *t, int64_t now) {
        loy_cust_t *c = t->c;
        loy_model_input_t in;
        loy_model_scores_t s;
        double unit = p->model.unit_days;
        c->scored_ms = now;
        if (c->first_purchase_ms == 0) {
                c->segment = LOY_SEG_NONE;
                return;
        }
        in.x = (double)loy_feat_repeats(c);
        in.t_x = loy_feat_tx_days(c) / unit;
        in.T = loy_feat_age_days(c, now) / unit;
        /* refunds netted the way the spend model was fitted */
        in.mean_value = loy_model_net_mean_value(c->gross_value,
                                                 c->first_day_value,
                                                 c->return_value, in.x);
        in.aov = loy_feat_aov(c);
        loy_model_score(&p->model, &in, p->conf.horizon_days, p->conf.margin,
                        &s);
        c->p_alive = s.p_alive;
        c->churn_prob = s.churn_prob;
        c->exp_purchases = s.exp_purchases;
        c->clv = s.clv;
        if (p->model.rfm.set) {
                /* cut points of the model: a function of the customer
                 * alone, so every run scores it alike */
                loy_rfm_score_cuts(&p->model.rfm, c, p->conf.rfm_weights,
                                   now);
                return;
        }
        /* the customer's own move first, so it is ranked among the
         * population as it now stands */
        for (int d = LOY_DIM_RECENCY; d <= LOY_DIM_MONETARY; d++) {
                int bin = loy_rfm_bin(c, (loy_dim_t)d);
                loy_rfm_move(p->rfm, (loy_dim_t)d, t->cur_bins[d], bin);
                t->cur_bins[d] = bin;
        }
        loy_rfm_score(p->rfm, c, p->conf.rfm_weights);
        {
                int bin = loy_rfm_bin(c, LOY_DIM_LOYALTY);
                loy_rfm_move(p->rfm, LOY_DIM_LOYALTY,
                             t->cur_bins[LOY_DIM_LOYALTY], bin);
                t->cur_bins[LOY_DIM_LOYALTY] = bin;
        }
}

/* Next silence check: first.days after the last purchase, then every
 * every.days, until max.days of silence. */
static int64_t next_check(const loy_config_t *conf, const loy_cust_t *c,
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

/* Runs the reward rules for one evaluation: after event ev, or (ev NULL)
 * for the customer's silence check; a trigger goes to the outbox. */
static int decide(loy_proc_t *p, touched_t *t, const loy_event_t *ev,
                  int64_t now, char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        loy_trigger_rec_t trecs[LOY_RECS_MAX];
        loy_decision_t d;
        loy_cause_t cause;
        outbox_rec_t *ob;
        const void *buf;
        size_t len;
        int ti = (int)(t - p->touched);
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
        if (!loy_decide(&p->conf.rules, &p->conf.feat, c, &cause, now,
                        wall_ms(), p->model.version, &d))
                return 0;
        if (p->reco) {
                cust_ext_t *x = loy_cache_ext(c);
                loy_reco_rec_t rr[LOY_RECS_MAX];
                int n = loy_reco_recommend(p->reco, &x->hist, now, rr,
                                           p->conf.reco_top_n);
                for (int i = 0; i < n; i++) {
                        snprintf(trecs[i].item, sizeof(trecs[i].item), "%s",
                                 rr[i].sku);
                        trecs[i].score = rr[i].score;
                }
                d.trigger.recs = trecs;
                d.trigger.nrecs = n > 0 ? n : 0;
        }
        ob = outbox_add(p);
        if (!ob) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        snprintf(ob->trigger_id, sizeof(ob->trigger_id), "%s", d.trigger_id);
        buf = loy_codec_encode_trigger(p->codec, &d.trigger, &len, errstr,
                                       errstr_size);
        if (!buf) {
                p->noutbox--;
                return -1;
        }
        ob->payload = malloc(len);
        if (!ob->payload) {
                p->noutbox--;
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        memcpy(ob->payload, buf, len);
        ob->len = len;
        ob->touched = ti;
        if (kpi_add(p, d.trigger.event_time_ms,
                    p->names[d.rule][d.trigger.holdout ? 1 : 0], 1)) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

/* Scores the customer at event time and runs the rules: after each event
 * (so a rule sees every step, not only the batch's last), or for a timer
 * due at due_ms. */
static int evaluate(loy_proc_t *p, touched_t *t, const loy_event_t *ev,
                    int64_t due_ms, char *errstr, size_t errstr_size) {
        loy_cust_t *c = t->c;
        /* after an event: the customer's own event time (the clock may lag
         * behind it); for a timer: its due time, never the batch's clock,
         * or two runs of the same input would score differently */
        int64_t now = ev ? c->last_event_ms
                         : due_ms > c->last_event_ms ? due_ms
                                                     : c->last_event_ms;
        score(p, t, now);
        return decide(p, t, ev, now, errstr, errstr_size);
}

/* The batch's outbox entries, as the store takes them. */
static void list_outbox(loy_proc_t *p) {
        for (int k = 0; k < p->noutbox; k++) {
                loy_outbox_entry_t *e = &p->entries[k];
                e->trigger_id = p->outbox[k].trigger_id;
                e->payload = p->outbox[k].payload;
                e->len = p->outbox[k].len;
        }
}

/* The customer's history as text and its current top N, for its write
 * (items copied: the model's strings move as it learns). */
static int reco_prepare(loy_proc_t *p, touched_t *t, char *errstr,
                        size_t errstr_size) {
        cust_ext_t *x = loy_cache_ext(t->c);
        loy_reco_rec_t rr[LOY_RECS_MAX];
        int n;
        if (!t->hist_text) {
                t->hist_text = malloc(HIST_TEXT_MAX);
                if (!t->hist_text) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
        }
        loy_reco_hist_format(p->reco, &x->hist, t->hist_text, HIST_TEXT_MAX);
        n = loy_reco_recommend(p->reco, &x->hist, t->c->last_event_ms, rr,
                               p->conf.reco_top_n);
        t->nrecs = n > 0 ? n : 0;
        for (int i = 0; i < t->nrecs; i++) {
                snprintf(t->rec_sku[i], sizeof(t->rec_sku[i]), "%s",
                         rr[i].sku);
                t->rec_ptr[i] = t->rec_sku[i];
                t->rec_score[i] = rr[i].score;
        }
        return 0;
}

/* Keeps of the loaded checks only those their customers still owe: the
 * lists are rewritten with the owed ones, and would otherwise grow with
 * every failed write. */
static int settle_owed(loy_proc_t *p, char *errstr, size_t errstr_size) {
        int n = loy_agg_owed_count(p->agg), rc;
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
                loy_agg_owed_get(p->agg, i, &ids[i], &due[i]);
        rc = loy_store_hget_custs(p->store, "next_check_ms", ids, n, vals,
                                  errstr, errstr_size);
        for (int i = 0; rc == 0 && i < n; i++) {
                /* a hash not written yet, or not past the check: the
                 * check moves it past its due time (or to 0) */
                long long v = vals[i] ? strtoll(vals[i], NULL, 10) : 1;
                owed[i] = v > 0 && v <= due[i];
                free(vals[i]);
        }
        if (rc == 0)
                loy_agg_owed_settle(p->agg, owed);
out:
        free(ids);
        free(vals);
        free(owed);
        free(due);
        return rc;
}

/* Reads back what the aggregates hold for the partitions this process
 * owns (after an assignment, or a write that may have landed in part). */
static int load_fences(loy_proc_t *p, char *errstr, size_t errstr_size) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        const char **topics = NULL;
        int32_t *parts = NULL;
        const char *const *fields;
        char **values = NULL;
        int n = 0, nf = 0, rc = LOY_STORE_ERR;
        if (rd_kafka_assignment(p->consumer, &asg) == 0 && asg)
                n = asg->cnt;
        topics = calloc((size_t)n + 1, sizeof(*topics));
        parts = calloc((size_t)n + 1, sizeof(*parts));
        for (int i = 0; topics && parts && i < n; i++) {
                topics[i] = asg->elems[i].topic;
                parts[i] = asg->elems[i].partition;
        }
        if (!topics || !parts ||
            loy_agg_fence_fields(p->agg, topics, parts, n, &fields, &nf) ||
            !(values = calloc((size_t)nf + 1, sizeof(*values)))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        rc = loy_store_fence_get(p->store, fields, nf, values, errstr,
                                 errstr_size);
        if (rc == 0 && loy_agg_fence_load(p->agg, values, errstr,
                                          errstr_size))
                rc = LOY_STORE_ERR;
        if (rc == 0)
                rc = settle_owed(p, errstr, errstr_size);
        if (rc)
                loy_agg_fences_forget(p->agg);
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

static int run_batch(loy_proc_t *p, int64_t clock_ms, char *errstr,
                     size_t errstr_size) {
        const loy_batch_agg_t *agg;
        int rc, nwrites;
        index_reset(p);
        for (int i = 0; i < p->noutbox; i++)
                free(p->outbox[i].payload);
        p->noutbox = 0;
        if (!loy_agg_fences_known(p->agg) &&
            (rc = load_fences(p, errstr, errstr_size)))
                return rc;
        loy_agg_begin(p->agg);
        for (int i = 0; i < p->nmsgs; i++)
                loy_agg_note_offset(p->agg,
                                    rd_kafka_topic_name(p->msgs[i]->rkt),
                                    p->msgs[i]->partition,
                                    p->msgs[i]->offset);
        /* touch everyone first so one pipeline loads them all */
        for (int i = 0; i < p->nevents; i++)
                if (!quarantined(p, p->events[i].customer_id) &&
                    !touch(p, p->events[i].customer_id, errstr, errstr_size))
                        return LOY_STORE_ERR;
        for (int i = 0; i < p->ntimers; i++) {
                touched_t *t;
                if (quarantined(p, p->timer_ids[i]))
                        continue;
                t = touch(p, p->timer_ids[i], errstr, errstr_size);
                if (!t)
                        return LOY_STORE_ERR;
                t->by_timer = 1;
                t->partition = p->timer_part[i];
                t->fired_partition = p->timer_part[i];
                t->timer_due = p->timer_due[i];
        }
        rc = load(p, errstr, errstr_size);
        if (rc)
                return rc;
        if (apply_events(p, errstr, errstr_size) == -1)
                return LOY_STORE_ERR;
        for (int i = 0; i < p->ntouched; i++) {
                touched_t *t = &p->touched[i];
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
                            p->clock, p->conf.topic_purchase, part,
                            clock_ms);
                        if (fire_due(p, t, upto, part, errstr,
                                     errstr_size) == -1)
                                return LOY_STORE_ERR;
                }
        }
        list_outbox(p);
        /* only customers something happened to are written: a replayed
         * event changes nothing, not even derived fields; a check that
         * fired did (the aggregates count it) */
        nwrites = 0;
        for (int i = 0; i < p->ntouched; i++) {
                touched_t *t = &p->touched[i];
                loy_cust_write_t *w = &p->writes[nwrites];
                if (!t->by_event && !t->by_timer && !t->fired)
                        continue;
                nwrites++;
                w->cust = t->c;
                w->shadow = &((cust_ext_t *)loy_cache_ext(t->c))->shadow;
                w->partition = t->partition;
                w->old_timer_ms = t->partition >= 0 ? t->old_timer
                                                    : t->c->next_check_ms;
                w->timer_fired = t->by_timer;
                w->fired_partition = t->fired_partition;
                w->timer_only = t->by_timer && !t->existed && !t->by_event;
                if (!w->timer_only) {
                        loy_agg_counted_t now;
                        loy_agg_counted_of(t->c, 1, &now);
                        if (loy_agg_cust(p->agg, t->c->id,
                                         t->partition >= 0
                                             ? t->partition
                                             : t->event_partition,
                                         &t->counted, &now) == -1) {
                                snprintf(errstr, errstr_size,
                                         "out of memory");
                                return LOY_STORE_ERR;
                        }
                }
                w->hist_text = NULL;
                w->recs_set = 0;
                if (p->reco && t->reco_dirty &&
                    reco_prepare(p, t, errstr, errstr_size) == -1)
                        return LOY_STORE_ERR;
                if (t->hist_text) {
                        w->hist_text = t->hist_text;
                        w->recs_set = 1;
                        w->nrecs = t->nrecs;
                        w->rec_items = t->rec_ptr;
                        w->rec_scores = t->rec_score;
                }
        }
        if (loy_agg_build(p->agg, &agg) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                return LOY_STORE_ERR;
        }
        if (!nwrites && !agg && !p->noutbox)
                return LOY_STORE_OK;
        if (mono_ms() - p->polled_ms > p->stale_ms) {
                snprintf(errstr, errstr_size, "batch held %.0f ms since its "
                         "poll, longer than the group's session timeout: "
                         "its partitions may belong to another process now",
                         mono_ms() - p->polled_ms);
                return BATCH_STALE;
        }
        return loy_store_write_batch(p->store, p->entries, p->noutbox, agg,
                                     p->writes, nwrites, clock_ms,
                                     &p->conf.feat, errstr, errstr_size);
}

/* ------------------------------------------------------------------ */
/* after a successful write: emit, store offsets, stats                 */
/* ------------------------------------------------------------------ */

static void emit(loy_proc_t *p) {
        char err[256];
        for (int i = 0; i < p->noutbox; i++) {
                outbox_rec_t *o = &p->outbox[i];
                const loy_cust_t *c = p->touched[o->touched].c;
                char *id = strdup(o->trigger_id);
                if (!id || loy_kafka_produce(p->producer,
                                             p->conf.topic_triggers, c->id,
                                             strlen(c->id), o->payload,
                                             o->len, id, err,
                                             sizeof(err)) == -1) {
                        /* the outbox has it: re-sent by the next scan */
                        LOY_ERROR("proc", "trigger %s: %s", o->trigger_id,
                                  id ? err : "out of memory");
                        free(id);
                        p->dr_failed = 1;
                }
        }
        p->stats.triggers_out += p->noutbox;
}

/* ------------------------------------------------------------------ */
/* the shared recommender model                                         */
/* ------------------------------------------------------------------ */

typedef struct refresh_ctx {
        loy_proc_t *p;
        double scale;   /* shared counts (epoch scale) -> event time now */
} refresh_ctx_t;

static double reco_sim(void *opaque, double c_ab, double n_a, double n_b) {
        const refresh_ctx_t *x = opaque;
        return loy_reco_sim(loy_reco_conf(x->p->reco), c_ab * x->scale,
                            n_a * x->scale, n_b * x->scale);
}

static void reco_set(void *opaque, const char *sku, const char *const *nbrs,
                     const double *sims, int n) {
        const refresh_ctx_t *x = opaque;
        loy_reco_set_nbrs(x->p->reco, sku, nbrs, sims, n);
}

/* Sends the local co-occurrence increments to Redis (every reco.flush.ms,
 * or now with force), then rebuilds the neighbour lists of items seen
 * since from the counts all processes added up, and takes them back into
 * the local model: several processes, one model. */
static void reco_flush(loy_proc_t *p, int64_t clock_ms, int force) {
        const loy_reco_conf_t *rc;
        size_t n, nsend;
        int k = 0, max = p->conf.reco_refresh_items;
        char (*names)[LOY_SKU_MAX + 1] = NULL;
        const char **ptrs = NULL;
        refresh_ctx_t ctx;
        char err[256];
        if (!p->reco || (!force && wall_ms() - p->last_reco_flush_ms <
                                       p->conf.reco_flush_ms))
                return;
        p->last_reco_flush_ms = wall_ms();
        n = loy_reco_pending_count(p->reco);
        if (!n)
                return;
        if (n > p->incr_cap) {
                loy_reco_incr_t *ni = realloc(p->incr, n * sizeof(*ni));
                if (!ni)
                        return; /* kept pending: tried again next time */
                p->incr = ni;
                p->incr_cap = n;
        }
        {
                /* Only pairs that stand in a neighbour list here are
                 * shared: a pair outside every local top-k is most
                 * unlikely to make the shared one, and sending every
                 * pair costs Redis several times the rest of the work
                 * (measured: 3.1M ZINCRBY for the Online Retail replay). */
                size_t w = 0;
                for (size_t i = 0; i < n; i++)
                        if (loy_reco_pending_in_nbrs(p->reco, i))
                                loy_reco_pending_get(p->reco, i,
                                                     &p->incr[w++]);
                p->reco_skipped += (int64_t)(n - w);
                nsend = w;
        }
        if (loy_store_reco_flush(p->store, p->incr, nsend, err,
                                 sizeof(err))) {
                LOY_WARN("proc", "reco flush: %s (kept for the next one)",
                         err);
                return;
        }
        p->reco_flushed += (int64_t)nsend;
        /* the items of this flush, copied: clearing frees their strings */
        if (max > 0) {
                names = malloc((size_t)max * sizeof(*names));
                ptrs = malloc((size_t)max * sizeof(*ptrs));
        }
        for (size_t i = 0; names && ptrs && i < nsend && k < max; i++)
                if (!p->incr[i].b) {
                        snprintf(names[k], sizeof(names[k]), "%s",
                                 p->incr[i].a);
                        ptrs[k] = names[k];
                        k++;
                }
        loy_reco_pending_clear(p->reco);
        rc = loy_reco_conf(p->reco);
        ctx.p = p;
        ctx.scale = rc->half_life_days > 0
                        ? pow(2, -(double)(clock_ms - rc->epoch_ms) /
                                     (rc->half_life_days * LOY_MS_PER_DAY))
                        : 1;
        if (k) {
                /* each item's local neighbours are its candidates (copied:
                 * taking lists back moves the model's strings) */
                int kk = rc->top_k;
                char (*cn)[LOY_SKU_MAX + 1] =
                    malloc((size_t)k * (size_t)kk * sizeof(*cn));
                const char **cp = calloc((size_t)k * (size_t)kk,
                                         sizeof(*cp));
                if (cn && cp) {
                        for (int i = 0; i < k; i++) {
                                loy_reco_rec_t nb[LOY_RECO_K_MAX];
                                int m = loy_reco_nbrs(p->reco, ptrs[i], nb,
                                                      kk);
                                for (int j = 0; j < m; j++) {
                                        snprintf(cn[i * kk + j],
                                                 sizeof(cn[0]), "%s",
                                                 nb[j].sku);
                                        cp[i * kk + j] = cn[i * kk + j];
                                }
                        }
                        if (loy_store_reco_refresh(p->store, ptrs, k, cp, kk,
                                                   kk, reco_sim, reco_set,
                                                   &ctx, err, sizeof(err)))
                                LOY_WARN("proc", "reco refresh: %s", err);
                        else
                                p->reco_refreshed += k;
                }
                free(cn);
                free(cp);
        }
        free(names);
        free(ptrs);
}

static void store_offsets(loy_proc_t *p) {
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        if (!p->nmsgs)
                return;
        list = rd_kafka_topic_partition_list_new(8);
        for (int i = 0; i < p->nmsgs; i++) {
                const rd_kafka_message_t *m = p->msgs[i];
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_find(
                        list, rd_kafka_topic_name(m->rkt), m->partition);
                if (!tp)
                        tp = rd_kafka_topic_partition_list_add(
                            list, rd_kafka_topic_name(m->rkt), m->partition);
                if (m->offset + 1 > tp->offset)
                        tp->offset = m->offset + 1;
        }
        err = rd_kafka_offsets_store(p->consumer, list);
        if (err)
                LOY_DEBUG("proc", "offsets store: %s (partitions moved)",
                          rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(list);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double q) {
        int i;
        if (!n)
                return 0;
        i = (int)ceil(q * n) - 1;
        return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int64_t consumer_lag(loy_proc_t *p) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int64_t lag = 0;
        if (rd_kafka_assignment(p->consumer, &asg) || !asg)
                return 0;
        rd_kafka_position(p->consumer, asg);
        for (int i = 0; i < asg->cnt; i++) {
                int64_t lo, hi;
                if (rd_kafka_get_watermark_offsets(
                        p->consumer, asg->elems[i].topic,
                        asg->elems[i].partition, &lo, &hi) ||
                    hi < 0 || asg->elems[i].offset < 0)
                        continue;
                if (hi > asg->elems[i].offset)
                        lag += hi - asg->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(asg);
        return lag;
}


static void publish_stats(loy_proc_t *p, double batch_ms) {
        static const char *const incr_names[] = {
            "events_in", "events_applied", "events_skipped_dup",
            "dead_lettered", "triggers_out", "timers_fired", "batches",
            "redis_failures", "reco_increments", "reco_lists_rebuilt",
            "batches_fenced"};
        const int64_t now_vals[NINCR] = {
            p->stats.events_in, p->stats.events_applied,
            p->stats.events_skipped_dup, p->stats.dead_lettered,
            p->stats.triggers_out, p->stats.timers_fired, p->stats.batches,
            p->stats.redis_failures, p->reco_flushed, p->reco_refreshed,
            p->stats.batches_fenced};
        const char *set_names[] = {"batch_ms_last", "batch_ms_p50",
                                   "batch_ms_p99", "events_per_s", "clock_ms",
                                   "lag", "cache_customers",
                                   "first_batch_wall_ms", "reco_items",
                                   "reco_pairs", "reco_bytes"};
        double incr[NINCR], set[11], sorted[LAT_RING];
        loy_reco_stats_t rs;
        int n = p->nlat < LAT_RING ? p->nlat : LAT_RING;
        char err[256];
        memset(&rs, 0, sizeof(rs));
        if (p->reco)
                loy_reco_stats(p->reco, &rs);
        for (int i = 0; i < NINCR; i++)
                incr[i] = (double)(now_vals[i] - p->pending_stats[i]);
        memcpy(sorted, p->lat_ms, (size_t)n * sizeof(double));
        qsort(sorted, (size_t)n, sizeof(double), cmp_double);
        set[0] = batch_ms;
        set[1] = percentile(sorted, n, 0.50);
        set[2] = percentile(sorted, n, 0.99);
        set[3] = p->stats.busy_s > 0
                     ? (double)p->stats.events_in / p->stats.busy_s
                     : 0;
        set[4] = (double)p->stats.clock_ms;
        set[5] = (double)consumer_lag(p);
        set[6] = (double)loy_cache_size(p->cache);
        set[7] = (double)p->first_batch_ms;
        set[8] = (double)rs.items;
        set[9] = (double)rs.pairs;
        set[10] = (double)rs.bytes;
        if (loy_store_stats(p->store, incr_names, incr, NINCR, set_names, set,
                            11,
                            err, sizeof(err)) == 0)
                memcpy(p->pending_stats, now_vals, sizeof(now_vals));
}

/* ------------------------------------------------------------------ */
/* the loop                                                             */
/* ------------------------------------------------------------------ */

/* The customer id inside a framed trigger, into cid ("" when it does not
 * decode): a re-sent trigger keeps the message key (the customer) it was
 * first sent with, so it lands on the same partition of the trigger topic
 * and keyed consumers see it in order. */
static void trigger_customer(loy_proc_t *p, const void *payload, size_t len,
                             char *cid, size_t size) {
        char err[256];
        char *text = loy_codec_trigger_to_json(p->codec, payload, len, err,
                                               sizeof(err));
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        const char *v = json_string_value(json_object_get(o, "customer_id"));
        snprintf(cid, size, "%s", v ? v : "");
        json_decref(o);
        free(text);
}

static int resend_cb(const char *id, const void *payload, size_t len,
                     void *opaque) {
        loy_proc_t *p = opaque;
        char err[256], cid[LOY_ID_MAX + 1];
        char *copy = strdup(id);
        if (!copy)
                return -1;
        trigger_customer(p, payload, len, cid, sizeof(cid));
        if (loy_kafka_produce(p->producer, p->conf.topic_triggers,
                              cid[0] ? cid : NULL, strlen(cid), payload, len,
                              copy, err, sizeof(err)) == -1) {
                free(copy);
                LOY_ERROR("proc", "outbox re-send: %s", err);
                p->resend_failed = 1;
                return -1;
        }
        return 0;
}

/* Connects to Redis, backing off while it is down; on success refreshes
 * the population and re-sends the outbox. 0 when usable. */
static int ensure_redis(loy_proc_t *p, volatile sig_atomic_t *running) {
        int backoff = 50;
        char err[256];
        int was_down = !loy_store_is_connected(p->store);
        while (*running) {
                if (loy_store_connect(p->store, err, sizeof(err)) == 0) {
                        if (!was_down && !p->need_refresh &&
                            (!p->dr_failed ||
                             wall_ms() - p->last_scan_ms < 5000))
                                return 0;
                        p->last_scan_ms = wall_ms();
                        /* a population that does not load only makes ranks
                         * approximate for a while: not worth stopping for */
                        if (loy_store_load_hist(p->store, p->rfm, err,
                                                sizeof(err)) == 0)
                                p->last_hist_ms = wall_ms();
                        else
                                LOY_WARN("proc", "population: %s", err);
                        p->resend_failed = 0;
                        if (loy_store_outbox_scan(p->store, resend_cb, p, err,
                                                  sizeof(err)) == 0 &&
                            !p->resend_failed) {
                                p->dr_failed = 0;
                                p->need_refresh = 0;
                                if (was_down)
                                        LOY_INFO("proc", "redis %s:%d ready",
                                                 p->conf.redis_host,
                                                 p->conf.redis_port);
                                return 0;
                        }
                        LOY_WARN("proc", "outbox re-send incomplete: %s",
                                 p->resend_failed ? "producer refused" : err);
                        /* triggers stay in the outbox; try again later
                         * rather than stall the stream */
                        p->dr_failed = 1;
                        p->need_refresh = 0;
                        return 0;
                }
                if (!was_down || backoff == 50)
                        LOY_WARN("proc", "redis unavailable (%s); retrying",
                                 err);
                was_down = 1;
                /* keep the producer's delivery reports flowing */
                rd_kafka_poll(p->producer, 0);
                sleep_ms(backoff);
                backoff = backoff * 2 > p->conf.backoff_max_ms
                              ? p->conf.backoff_max_ms
                              : backoff * 2;
        }
        return -1;
}

int loy_proc_run(loy_proc_t *p, volatile sig_atomic_t *running,
                 volatile sig_atomic_t *reload) {
        char err[512], last_err[512];
        int rc = 0, wrc, busy_backoff;
        while (*running) {
                double t0;
                int64_t clock_ms;
                if (wall_ms() - p->last_model_check_ms > 1000) {
                        struct timespec mt = mtime_of(p->conf.model_path);
                        p->last_model_check_ms = wall_ms();
                        if (mt.tv_sec != p->model_mtime.tv_sec ||
                            mt.tv_nsec != p->model_mtime.tv_nsec) {
                                LOY_INFO("proc", "model file changed");
                                *reload = 1;
                        }
                }
                if (*reload) {
                        *reload = 0;
                        if (loy_proc_reload_model(p, err, sizeof(err)) == -1)
                                LOY_ERROR("proc", "model reload refused, "
                                          "keeping %s: %s",
                                          p->model.version, err);
                }
                if (ensure_redis(p, running) == -1)
                        break;
                if (wall_ms() - p->last_hist_ms > HIST_REFRESH_MS) {
                        if (loy_store_load_hist(p->store, p->rfm, err,
                                                sizeof(err)) == 0)
                                p->last_hist_ms = wall_ms();
                }
                if (collect(p, running) == -1) {
                        rc = -1;
                        break;
                }
                if (p->revoked)
                        drop_revoked(p);
                t0 = p->polled_ms = mono_ms();
                rd_kafka_poll(p->producer, 0);
                ack_delivered(p);
                decode(p);
                merge_order(p);
                restore_clock(p);
                clock_ms = loy_clock_advance(p->clock, wall_ms());
                p->stats.clock_ms = clock_ms;
                if (fetch_timers(p, clock_ms, err, sizeof(err)) == -1) {
                        LOY_WARN("proc", "timers: %s", err);
                        for (int i = 0; i < p->ntimers; i++)
                                free(p->timer_ids[i]);
                        p->ntimers = 0;
                }
                if (!p->nmsgs && !p->ntimers) {
                        loy_cache_trim(p->cache);
                        continue;
                }
                if (!p->first_batch_ms)
                        p->first_batch_ms = wall_ms();
                wrc = -1;
                last_err[0] = '\0';
                busy_backoff = 50;
                while (*running) {
                        wrc = run_batch(p, clock_ms, err, sizeof(err));
                        if (wrc == 0 || wrc == BATCH_STALE)
                                break;
                        /* the aggregates may have landed without the
                         * customers: what they hold is read back */
                        loy_agg_fences_forget(p->agg);
                        if (wrc == LOY_STORE_ERR_FENCED)
                                break;
                        /* The cache holds changes Redis may not have: forget
                         * them, reconnect, and do the batch again; offsets
                         * already written make the redo skip what landed. */
                        p->stats.redis_failures++;
                        LOY_WARN("proc", "batch write failed: %s", err);
                        loy_cache_clear(p->cache);
                        p->need_refresh = 1;
                        if (wrc == LOY_STORE_ERR_BUSY) {
                                /* OOM, READONLY, MISCONF ...: the server's
                                 * state, not the customer's; wait it out */
                                sleep_ms(busy_backoff);
                                busy_backoff = busy_backoff * 2 >
                                                       p->conf.backoff_max_ms
                                                   ? p->conf.backoff_max_ms
                                                   : busy_backoff * 2;
                        } else if (wrc == LOY_STORE_ERR) {
                                /* the same customer failing twice is its
                                 * state, not the connection */
                                if (!strcmp(err, last_err) &&
                                    quarantine_from(p, err) == 0)
                                        continue;
                                snprintf(last_err, sizeof(last_err), "%s",
                                         err);
                                sleep_ms(p->conf.backoff_max_ms);
                        }
                        if (ensure_redis(p, running) == -1)
                                break;
                        /* waiting for Redis is not being stopped: the
                         * consumer's heartbeats went on meanwhile */
                        p->polled_ms = mono_ms();
                }
                if (wrc == LOY_STORE_ERR_FENCED) {
                        /* another process wrote these partitions: they
                         * are no longer this one's (the group will say so
                         * on the next poll), or this one was frozen */
                        p->stats.batches_fenced++;
                        wrc = BATCH_STALE;
                }
                if (wrc == BATCH_STALE) {
                        /* not written and not committed: whoever owns the
                         * partitions now reads it (this process too, after
                         * the rewind, if they are still its own) */
                        LOY_WARN("proc", "%s; batch dropped", err);
                        loy_cache_clear(p->cache);
                        p->need_refresh = 1;
                        rewind_batch(p);
                        continue;
                }
                if (wrc != 0) {
                        /* not written: nothing stored, nothing committed */
                        free_batch(p);
                        break;
                }
                loy_agg_written(p->agg);
                emit(p);
                reco_flush(p, clock_ms, 0);
                if (loy_dlq_deliver(p->dlq, p->msgs, p->nmsgs, running) ==
                    -1) {
                        /* not committed: read again on the next start */
                        free_batch(p);
                        break;
                }
                store_offsets(p);
                save_clock(p);
                free_batch(p);
                loy_cache_trim(p->cache);
                p->stats.batches++;
                {
                        double ms = mono_ms() - t0;
                        p->stats.busy_s += ms / 1e3;
                        p->lat_ms[p->nlat++ % LAT_RING] = ms;
                        publish_stats(p, ms);
                }
        }
        /* drain: deliver what was emitted, commit what was written */
        if (loy_store_is_connected(p->store))
                reco_flush(p, p->stats.clock_ms, 1);
        rd_kafka_flush(p->producer, 10000);
        rd_kafka_poll(p->producer, 0);
        if (loy_store_is_connected(p->store))
                ack_delivered(p);
        rd_kafka_commit(p->consumer, NULL, 0);
        return rc;
}
