/* loy_proc: see loy_proc.h. */
#include "loy_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../features/loy_rfm.h"
#include "../models/loy_model.h"
#include "../models/loy_reco.h"
#include "../state/loy_cache.h"
#include "../state/loy_rconn.h"
#include "../state/loy_store.h"
#include "loy_agg.h"
#include "loy_apply.h"
#include "loy_batch.h"
#include "loy_clock.h"
#include "loy_clockstore.h"
#include "loy_codec.h"
#include "loy_collect.h"
#include "loy_dlq.h"
#include "loy_emit.h"
#include "loy_kafka.h"
#include "loy_http.h"
#include "loy_load.h"
#include "loy_log.h"
#include "loy_metrics.h"
#include "loy_pseudo.h"
#include "loy_recosync.h"
#include "loy_stats.h"
#include "loy_time.h"
#include "loy_write.h"

#define HIST_REFRESH_MS 10000 /* re-read the shared population this often */

/* The processor: the parts, owned here, and the batch loop's own state.
 * What a batch's stages share is in b (loy_batch.h), which borrows the
 * parts. */
struct loy_proc {
        loy_config_t conf;
        loy_model_t model;
        loy_codec_t *codec;
        loy_store_t *store;
        loy_cache_t *cache;
        loy_rfm_t *rfm;
        loy_clock_t *clock;
        loy_reco_t *reco; /* NULL when reco.enabled = no */
        loy_agg_t *agg;
        rd_kafka_t *consumer;
        rd_kafka_t *producer;
        loy_dlq_t *dlq;

        /* Two batches: while Redis writes prev, cur is applied (with
         * input.pipeline; docs/DESIGN.md "one batch"). */
        loy_batch_t bat[2];
        loy_batch_t *cur, *prev;
        int prev_state;     /* PREV_* */
        int prev_wrc;       /* PREV_RESULT: its attempt's code */
        char prev_err[512]; /* and its error text */
        loy_dlq_t *dlq2;    /* bat[1]'s dead letters */
        loy_store_t *loads; /* cur's loads while prev is sent */
        volatile sig_atomic_t *running;
        int fatal;                /* a batch could not be finished */
        int refused;              /* Redis refused the credentials */
        int kafka_fatal;          /* librdkafka raised a fatal error */
        unsigned cache_epoch;     /* loy_cache_clear()s so far */
        double busy_until_ms;     /* busy time counted up to here */
        loy_emit_t *emit;         /* triggers out, delivery acks */
        loy_clockstore_t *clocks; /* event time kept in Redis */
        loy_recosync_t *recosync; /* the shared recommender model */
        loy_stats_t *pub;         /* <ns>:stats */
        loy_http_t *http;         /* NULL without http.listen */
        loy_metrics_t *metrics;
        loy_pseudo_t *pseudo;           /* [privacy] pseudonymize */
        double last_render_ms;          /* of /metrics (mono) */
        double start_s, model_loaded_s; /* unix seconds */
        int redis_ok;                   /* the last Redis call answered */
        char redis_err[512];            /* and when not, why */

        int revoked;      /* partitions revoked during poll */
        int need_refresh; /* population re-read */
        int need_resend;  /* the outbox sent again (start) */
        int64_t last_hist_ms;
        int64_t last_model_check_ms;
        int64_t last_scan_ms;        /* of the outbox */
        int64_t first_batch_ms;      /* wall clock of the first batch */
        int64_t kpi_closed_day;      /* KPI days before it are closed */
        struct timespec model_mtime; /* of the model file last loaded */
        loy_proc_stats_t stats;
};

/* What prev holds. */
enum {
        PREV_NONE,    /* nothing */
        PREV_APPLIED, /* applied, not sent */
        PREV_SENT,    /* customers sent, replies not read */
        PREV_RESULT   /* its first attempt failed (prev_wrc) */
};

/* What finishing a batch came to. */
enum { DONE_OK, DONE_REWIND, DONE_FATAL };

static int flush_prev(loy_proc_t *p);

static void clear_cache(loy_proc_t *p) {
        loy_cache_clear(p->cache);
        p->cache_epoch++;
}

static struct timespec mtime_of(const char *path) {
        struct stat st;
        struct timespec none = {0, 0};
        return stat(path, &st) == 0 ? st.st_mtim : none;
}

/* ------------------------------------------------------------------ */
/* Kafka callbacks                                                      */
/* ------------------------------------------------------------------ */

/* Partitions given back are no longer this process's in Redis: their
 * next owner then has no connections of ours to close. Best effort: when
 * it fails, the next owner closes them and this process's next batch is
 * done again on new ones. */
static void release(loy_proc_t *p,
                    const rd_kafka_topic_partition_list_t *parts) {
        char(*names)[LOY_OWNER_FIELD_MAX];
        const char **fields;
        char err[256];
        if (!parts->cnt || !loy_store_is_connected(p->store))
                return;
        names = calloc((size_t)parts->cnt, sizeof(*names));
        fields = calloc((size_t)parts->cnt, sizeof(*fields));
        if (names && fields) {
                for (int i = 0; i < parts->cnt; i++) {
                        loy_agg_owner_field(parts->elems[i].topic,
                                            parts->elems[i].partition, names[i],
                                            sizeof(names[i]));
                        fields[i] = names[i];
                }
                if (loy_store_release(p->store, fields, parts->cnt, err,
                                      sizeof(err)))
                        LOY_WARN("proc", "release of %d partitions: %s",
                                 parts->cnt, err);
        }
        free(names);
        free(fields);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
        loy_proc_t *p = opaque;
        int64_t now = loy_time_wall_ms();
        int cooperative =
            !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        /* A batch applied but not written is written first, by the owner
         * it was read by, and before the partitions it checks change. */
        if (p->prev_state != PREV_NONE && flush_prev(p) == DONE_REWIND &&
            p->cur)
                loy_collect_rewind(p->prev, p->cur, rk);
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
                loy_clockstore_assigned(p->clocks);
                /* and what the aggregates hold of them, once they are
                 * this process's in Redis too */
                for (int i = 0; i < parts->cnt; i++)
                        if (loy_agg_take_over(p->agg, parts->elems[i].topic,
                                              parts->elems[i].partition))
                                LOY_ERROR("proc",
                                          "out of memory: %s [%d] "
                                          "not taken over, its batches "
                                          "will be refused",
                                          parts->elems[i].topic,
                                          (int)parts->elems[i].partition);
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
        release(p, parts);
        for (int i = 0; i < parts->cnt; i++)
                loy_clock_revoke(p->clock, parts->elems[i].topic,
                                 parts->elems[i].partition);
        clear_cache(p);
        p->revoked = 1;
        /* the clock's partitions move: save them all again */
        loy_clockstore_revoked(p->clocks);
        LOY_INFO("proc", "revoked %d partitions", parts->cnt);
        if (cooperative)
                rd_kafka_error_destroy(
                    rd_kafka_incremental_unassign(rk, parts));
        else
                rd_kafka_assign(rk, NULL);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        loy_proc_t *p = opaque;
        (void)rk;
        if (p->dlq && loy_dlq_owns(p->dlq, m->_private)) {
                loy_dlq_delivered(p->dlq, m);
                return;
        }
        if (p->dlq2 && loy_dlq_owns(p->dlq2, m->_private)) {
                loy_dlq_delivered(p->dlq2, m);
                return;
        }
        loy_emit_delivered(p->emit, m);
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
                rd_kafka_topic_partition_list_add(topics, p->conf.topic_browse,
                                                  RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(p->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

/* A name no other process of the group has: host, pid and 32 random
 * bits (a pid is reused after a restart, on another host too). */
static int set_owner(loy_proc_t *p, char *errstr, size_t errstr_size) {
        char host[64] = "host", name[LOY_OWNER_MAX + 1];
        uint32_t rnd = 0;
        if (!p->agg) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (gethostname(host, sizeof(host) - 1) != 0)
                snprintf(host, sizeof(host), "host");
        host[sizeof(host) - 1] = '\0';
        for (char *c = host; *c; c++)
                if (*c < '!' || *c > '~')
                        *c = '_';
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                rnd = (uint32_t)loy_time_mono_ms() ^ (uint32_t)getpid();
        snprintf(name, sizeof(name), "loyaltyd-%s-%ld-%08x", host,
                 (long)getpid(), rnd);
        if (loy_store_set_owner(p->store, name, errstr, errstr_size) ||
            loy_store_set_owner(p->loads, name, errstr, errstr_size))
                return -1;
        if (loy_agg_set_owner(p->agg, name)) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        LOY_INFO("proc", "owner name %s", name);
        return 0;
}

void loy_proc_set_after_agg_hook(loy_proc_t *p, loy_store_hook_fn *fn,
                                 void *opaque) {
        loy_store_set_after_agg_hook(p->store, fn, opaque);
}

loy_proc_t *loy_proc_create(const loy_config_t *conf, char *errstr,
                            size_t errstr_size) {
        loy_proc_t *p = calloc(1, sizeof(*p));
        loy_codec_ids_t ids;
        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->conf = *conf;
        /* the kafka strings stay owned by the caller's conf */
        if (loy_model_load(&p->model, conf->model_path, errstr, errstr_size) ==
            -1)
                goto fail;
        if (conf->discount_monthly >= 0)
                p->model.discount_monthly = conf->discount_monthly;
        ids.purchase = conf->schema_purchase;
        ids.browse = conf->schema_browse;
        ids.trigger = conf->schema_trigger;
        p->codec = loy_codec_create(&ids, errstr, errstr_size);
        if (!p->codec)
                goto fail;
        p->store =
            loy_store_create(conf->redis_host, conf->redis_port, conf->redis_ns,
                             conf->redis_timeout_ms, errstr, errstr_size);
        if (!p->store)
                goto fail;
        p->loads =
            loy_store_create(conf->redis_host, conf->redis_port, conf->redis_ns,
                             conf->redis_timeout_ms, errstr, errstr_size);
        if (!p->loads)
                goto fail;
        {
                loy_rconn_opts_t ro;
                char password[sizeof(conf->redis_password)];
                int bad =
                    loy_config_redis_opts(conf, &ro, password, sizeof(password),
                                          errstr, errstr_size) ||
                    loy_store_set_conn(p->store, &ro, errstr, errstr_size) ||
                    loy_store_set_conn(p->loads, &ro, errstr, errstr_size);
                explicit_bzero(password, sizeof(password));
                if (bad)
                        goto fail;
        }
        if (conf->reco_enabled) {
                loy_reco_conf_t rc = conf->reco;
                rc.track_pending = 1;
                p->reco = loy_reco_create(&rc, errstr, errstr_size);
                if (!p->reco)
                        goto fail;
        }
        p->cache = loy_cache_create_ext((size_t)conf->cache_customers,
                                        sizeof(loy_cust_ext_t));
        p->rfm = loy_rfm_create();
        p->clock = loy_clock_create(conf->lateness_ms, conf->idle_ms);
        if (loy_batch_init(&p->bat[0], &p->conf, errstr, errstr_size) == -1 ||
            loy_batch_init(&p->bat[1], &p->conf, errstr, errstr_size) == -1)
                goto fail;
        p->cur = &p->bat[0];
        p->prev = &p->bat[1];
        p->pseudo = loy_pseudo_from_config(conf, errstr, errstr_size);
        if (!p->pseudo && errstr[0])
                goto fail;
        p->agg = loy_agg_new();
        if (set_owner(p, errstr, errstr_size))
                goto fail;
        p->emit = loy_emit_create(p->conf.topic_triggers, p->codec, &p->stats);
        p->clocks = loy_clockstore_create(p->clock, &p->conf);
        p->recosync = loy_recosync_create(p->reco, conf->reco_flush_ms,
                                          conf->reco_refresh_items);
        p->pub = loy_stats_create();
        if (!p->agg || !p->cache || !p->rfm || !p->clock || !p->emit ||
            !p->clocks || !p->recosync || !p->pub) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        for (int i = 0; i < 2; i++) {
                loy_batch_t *b = &p->bat[i];
                b->model = &p->model;
                b->codec = p->codec;
                b->store = p->store;
                b->cache = p->cache;
                b->rfm = p->rfm;
                b->clock = p->clock;
                b->reco = p->reco;
                b->agg = p->agg;
                b->stats = &p->stats;
                b->pseudo = p->pseudo;
        }
        p->consumer =
            loy_kafka_consumer_new(conf, rebalance_cb, p, errstr, errstr_size);
        if (!p->consumer)
                goto fail;
        p->producer =
            loy_kafka_producer_new(conf, dr_cb, p, errstr, errstr_size);
        if (!p->producer)
                goto fail;
        p->dlq = loy_dlq_create(p->producer, conf->topic_deadletter,
                                conf->batch_max, conf->backoff_max_ms);
        p->dlq2 = loy_dlq_create(p->producer, conf->topic_deadletter,
                                 conf->batch_max, conf->backoff_max_ms);
        if (!p->dlq || !p->dlq2) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        p->bat[0].dlq = p->dlq;
        p->bat[1].dlq = p->dlq2;
        if (subscribe(p, errstr, errstr_size) == -1)
                goto fail;
        p->need_refresh = 1;
        p->need_resend = 1;
        /* A process stopped (SIGSTOP, a long GC-like stall, a frozen VM)
         * for longer than the session timeout has been dropped from the
         * group and its partitions handed over: writing a batch it held
         * through that would overwrite the new owner's work. */
        p->bat[0].stale_ms = 45000; /* librdkafka's default */
        for (int i = 0; i < conf->nkafka; i++)
                if (!strcmp(conf->kafka_keys[i], "session.timeout.ms"))
                        p->bat[0].stale_ms = atof(conf->kafka_vals[i]);
        p->bat[1].stale_ms = p->bat[0].stale_ms;
        p->model_mtime = mtime_of(conf->model_path);
        p->start_s = p->model_loaded_s = (double)loy_time_wall_ms() / 1e3;
        if (conf->http_listen[0]) {
                p->metrics = loy_metrics_create();
                if (!p->metrics) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto fail;
                }
                p->http = loy_http_start(conf->http_listen, conf->http_stall_ms,
                                         errstr, errstr_size);
                if (!p->http)
                        goto fail;
                LOY_INFO("proc",
                         "http: /metrics /healthz /readyz on "
                         "port %d (http.listen %s)",
                         loy_http_port(p->http), conf->http_listen);
        }
        LOY_INFO("proc", "model %s (%s, r=%g alpha=%g a=%g b=%g)",
                 p->model.version,
                 p->model.variant == LOY_VARIANT_MBGNBD ? "mbgnbd" : "bgnbd",
                 p->model.r, p->model.alpha, p->model.a, p->model.b);
        return p;
fail:
        loy_proc_destroy(p);
        return NULL;
}

/* librdkafka 2.0.2 asserts in rd_kafka_consumer_close when an assignment
 * is still being changed (after "Unknown member" commit failures of a
 * rebalance): leave the group first and serve the queue until the
 * revocation has gone through, then close. */
static void close_consumer(loy_proc_t *p) {
        double deadline = loy_time_mono_ms() + 10000;
        rd_kafka_unsubscribe(p->consumer);
        while (loy_time_mono_ms() < deadline) {
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
        p->prev_state = PREV_NONE;
        for (int i = 0; i < 2; i++) {
                loy_batch_drop(&p->bat[i]);
                loy_batch_drop_carry(&p->bat[i]);
        }
        if (p->consumer) {
                close_consumer(p);
                rd_kafka_destroy(p->consumer);
        }
        if (p->producer) {
                rd_kafka_flush(p->producer, 10000);
                rd_kafka_poll(p->producer, 0);
                if (p->store)
                        loy_emit_ack(p->emit, p->store);
                rd_kafka_destroy(p->producer);
        }
        loy_emit_destroy(p->emit);
        loy_batch_free(&p->bat[0]);
        loy_batch_free(&p->bat[1]);
        loy_dlq_destroy(p->dlq);
        loy_dlq_destroy(p->dlq2);
        loy_agg_destroy(p->agg);
        loy_clockstore_destroy(p->clocks);
        loy_recosync_destroy(p->recosync);
        loy_stats_destroy(p->pub);
        loy_http_stop(p->http);
        loy_metrics_destroy(p->metrics);
        loy_pseudo_destroy(p->pseudo);
        loy_clock_destroy(p->clock);
        loy_reco_destroy(p->reco);
        if (p->rfm)
                loy_rfm_destroy(p->rfm);
        if (p->cache)
                loy_cache_destroy(p->cache);
        if (p->store)
                loy_store_destroy(p->store);
        if (p->loads)
                loy_store_destroy(p->loads);
        if (p->codec)
                loy_codec_destroy(p->codec);
        explicit_bzero(p->conf.redis_password, sizeof(p->conf.redis_password));
        free(p);
}

int loy_proc_reload_model(loy_proc_t *p, char *errstr, size_t errstr_size) {
        loy_model_t m;
        /* remembered even when refused: a bad file is reported once */
        p->model_mtime = mtime_of(p->conf.model_path);
        if (loy_model_load(&m, p->conf.model_path, errstr, errstr_size) == -1)
                return -1;
        if (p->conf.discount_monthly >= 0)
                m.discount_monthly = p->conf.discount_monthly;
        p->model = m;
        p->model_loaded_s = (double)loy_time_wall_ms() / 1e3;
        LOY_INFO("proc", "model reloaded: %s", m.version);
        return 0;
}

const loy_proc_stats_t *loy_proc_stats(const loy_proc_t *p) {
        return &p->stats;
}

int loy_proc_http_port(const loy_proc_t *p) {
        return p->http ? loy_http_port(p->http) : 0;
}

/* ------------------------------------------------------------------ */
/* the loop                                                             */
/* ------------------------------------------------------------------ */

/* An attempt at b starts: no customer touched, its aggregates begun
 * (after the fences, when they are not known). */
static int begin_attempt(loy_proc_t *p, loy_batch_t *b, char *errstr,
                         size_t errstr_size) {
        int rc;
        loy_batch_restart(b);
        b->agg_done = 0;
        if (!loy_agg_fences_known(p->agg) &&
            (rc = loy_load_fences(b, p->consumer, errstr, errstr_size)))
                return rc;
        loy_agg_begin(p->agg);
        for (int i = 0; i < b->nmsgs; i++)
                loy_agg_note_offset(p->agg,
                                    rd_kafka_topic_name(b->msgs[i]->rkt),
                                    b->msgs[i]->partition, b->msgs[i]->offset);
        return LOY_STORE_OK;
}

/* The first stages of an attempt: the events' customers loaded (from
 * store) and the events applied. LOY_STORE_OK or an error code (the
 * attempt is then done again whole). */
static int apply_events(loy_proc_t *p, loy_batch_t *b, loy_store_t *store,
                        char *errstr, size_t errstr_size) {
        int rc = begin_attempt(p, b, errstr, errstr_size);
        if (rc)
                return rc;
        b->store = store;
        rc = loy_load_events(b, errstr, errstr_size);
        b->store = p->store;
        if (rc)
                return rc;
        if (loy_apply_events(b, errstr, errstr_size) == -1)
                return LOY_STORE_ERR;
        return LOY_STORE_OK;
}

/* The rest of the attempt's applying: the due checks' customers loaded,
 * the checks fired. */
static int apply_due(loy_batch_t *b, char *errstr, size_t errstr_size) {
        int rc = loy_load_due(b, errstr, errstr_size);
        if (rc)
                return rc;
        if (loy_apply_due(b, b->clock_ms, errstr, errstr_size) == -1)
                return LOY_STORE_ERR;
        return LOY_STORE_OK;
}

/* One attempt at the batch, applied from the start (the customers loaded
 * again) and not written yet. */
static int apply_batch(loy_proc_t *p, loy_batch_t *b, char *errstr,
                       size_t errstr_size) {
        int rc = begin_attempt(p, b, errstr, errstr_size);
        if (rc)
                return rc;
        /* touched all at once, so one pipeline loads them all */
        rc = loy_load_batch(b, errstr, errstr_size);
        if (rc)
                return rc;
        return loy_apply_events(b, errstr, errstr_size) == -1 ||
                       loy_apply_due(b, b->clock_ms, errstr, errstr_size) == -1
                   ? LOY_STORE_ERR
                   : LOY_STORE_OK;
}

/* One whole attempt at writing the batch: LOY_STORE_OK, LOY_WRITE_STALE
 * or the store's code. */
static int run_batch(loy_proc_t *p, loy_batch_t *b, char *errstr,
                     size_t errstr_size) {
        int rc = apply_batch(p, b, errstr, errstr_size);
        if (rc)
                return rc;
        return loy_write_batch(b, b->clock_ms, errstr, errstr_size);
}

/* What the stats and the metrics show besides p->stats (lag only when
 * with_lag: it walks the assignment). */
static void stats_extra(loy_proc_t *p, loy_stats_extra_t *x, int with_lag) {
        memset(x, 0, sizeof(*x));
        if (p->reco)
                loy_reco_stats(p->reco, &x->reco);
        x->reco_flushed = loy_recosync_flushed(p->recosync);
        x->reco_refreshed = loy_recosync_refreshed(p->recosync);
        x->reco_skipped = loy_recosync_skipped(p->recosync);
        if (with_lag)
                x->lag = loy_stats_lag(p->consumer);
        x->cache_customers = (int64_t)loy_cache_size(p->cache);
        x->first_batch_ms = p->first_batch_ms;
        loy_store_router_stats(p->store, &x->router);
        p->stats.owner_conns_closed =
            p->bat[0].takeover_closed + p->bat[1].takeover_closed;
}

static void publish_stats(loy_proc_t *p, double batch_ms) {
        loy_stats_extra_t x;
        stats_extra(p, &x, 1);
        loy_stats_publish(p->pub, p->store, &p->stats, &x, batch_ms);
}

/* What /metrics and /readyz answer, from this thread's counters. */
static void http_render(loy_proc_t *p) {
        loy_stats_extra_t x;
        loy_metrics_in_t in;
        const char *text;
        size_t len;
        char why[600];
        stats_extra(p, &x, 0);
        memset(&in, 0, sizeof(in));
        in.st = &p->stats;
        in.x = &x;
        in.rules = &p->conf.rules;
        if (loy_metrics_parts(p->metrics, p->consumer, &in.parts, &in.nparts))
                in.nparts = 0;
        in.redis_up = p->redis_ok;
        in.ready = in.nparts > 0 && p->redis_ok;
        in.model_version = p->model.version;
        in.model_mtime_s = (double)p->model_mtime.tv_sec +
                           (double)p->model_mtime.tv_nsec / 1e9;
        in.model_loaded_s = p->model_loaded_s;
        in.start_s = p->start_s;
        in.now_s = (double)loy_time_wall_ms() / 1e3;
        if (!p->redis_ok)
                snprintf(why, sizeof(why), "redis not answering: %s",
                         p->redis_err[0] ? p->redis_err
                                         : "not connected "
                                           "yet");
        else
                snprintf(why, sizeof(why),
                         "no partitions assigned "
                         "(joining the consumer group)");
        loy_http_set_ready(p->http, in.ready, why);
        if (loy_metrics_render(p->metrics, &in, &text, &len) ||
            loy_http_publish(p->http, text, len))
                LOY_WARN("proc", "out of memory: /metrics not updated");
}

/* The loop is alive; what the endpoint answers is renewed at most once a
 * second. Called from every loop that can wait long (Redis down, a batch
 * done again). */
static void http_tick(loy_proc_t *p) {
        double now;
        if (!p->http)
                return;
        loy_http_beat(p->http);
        now = loy_time_mono_ms();
        if (now - p->last_render_ms < 1000)
                return;
        p->last_render_ms = now;
        http_render(p);
}

/* Redis answered (ok) or not (err: why). */
static void redis_state(loy_proc_t *p, int ok, const char *err) {
        p->redis_ok = ok;
        if (!ok)
                snprintf(p->redis_err, sizeof(p->redis_err), "%s", err);
}

/* Whether the next batch may be applied while this one is written. */
static int pipelined(const loy_proc_t *p) {
        return p->conf.pipeline;
}

/* Connects to Redis, backing off while it is down; on success refreshes
 * the population when it may have moved. The whole outbox is sent again
 * at start-up (what a previous run left undelivered) and while deliveries
 * fail, not after every failed batch: a failed write's own triggers are
 * sent once a later batch is written (loy_emit_suspect), and acks that
 * did not reach Redis are kept and retried (loy_emit_ack). 0 when
 * usable. */
static int ensure_redis(loy_proc_t *p, volatile sig_atomic_t *running) {
        int backoff = 50;
        char err[256];
        int was_down = !loy_store_is_connected(p->store);
        while (*running) {
                int rc;
                http_tick(p);
                rc = loy_store_connect(p->store, err, sizeof(err));
                redis_state(p, rc == 0, err);
                if (rc == 0) {
                        int resend;
                        /* the second connection only speeds things up:
                         * without it, batches are done one at a time */
                        if (pipelined(p) &&
                            loy_store_connect(p->loads, err, sizeof(err)))
                                LOY_DEBUG("proc", "loads connection: %s", err);
                        resend = p->need_resend ||
                                 (loy_emit_failed(p->emit) &&
                                  loy_time_wall_ms() - p->last_scan_ms >= 5000);
                        if (!was_down && !p->need_refresh && !resend)
                                return 0;
                        if (was_down)
                                LOY_INFO("proc", "redis %s:%d ready",
                                         p->conf.redis_host,
                                         p->conf.redis_port);
                        if (was_down || p->need_refresh) {
                                /* a population that does not load only
                                 * makes ranks approximate for a while: not
                                 * worth stopping for */
                                if (loy_store_load_hist(p->store, p->rfm, err,
                                                        sizeof(err)) == 0)
                                        p->last_hist_ms = loy_time_wall_ms();
                                else
                                        LOY_WARN("proc", "population: %s", err);
                                p->need_refresh = 0;
                        }
                        if (!resend)
                                return 0;
                        p->last_scan_ms = loy_time_wall_ms();
                        if (loy_emit_resend(p->emit, p->producer, p->store, err,
                                            sizeof(err)) == 0)
                                p->need_resend = 0;
                        else
                                /* triggers stay in the outbox; try again
                                 * later rather than stall the stream */
                                LOY_WARN("proc",
                                         "outbox re-send "
                                         "incomplete: %s",
                                         err);
                        return 0;
                }
                if (rc == LOY_STORE_ERR_AUTH) {
                        /* the same settings get the same answer: stop, so
                         * a supervisor shows it (nothing is lost: what
                         * was not written is read again next start) */
                        LOY_ERROR("proc", "%s; stopping", err);
                        p->refused = 1;
                        return -1;
                }
                if (!was_down || backoff == 50)
                        LOY_WARN("proc", "redis unavailable (%s); retrying",
                                 err);
                was_down = 1;
                /* keep the producer's delivery reports flowing */
                rd_kafka_poll(p->producer, 0);
                loy_time_sleep_ms(backoff);
                backoff = backoff * 2 > p->conf.backoff_max_ms
                              ? p->conf.backoff_max_ms
                              : backoff * 2;
        }
        return -1;
}

/* A fatal librdkafka error (the idempotent producer fenced or refused its
 * id, e.g. by a missing IdempotentWrite ACL; a fenced static member) leaves
 * that client unusable for good: stop and say why, rather than run on with
 * nothing going out. Nothing is lost: a written batch's triggers wait in
 * the outbox for the next start, and what was not written is read again. */
static int kafka_fatal(loy_proc_t *p) {
        char why[512];
        const char *who = "producer";
        rd_kafka_resp_err_t err =
            rd_kafka_fatal_error(p->producer, why, sizeof(why));
        if (!err) {
                who = "consumer";
                err = rd_kafka_fatal_error(p->consumer, why, sizeof(why));
        }
        if (!err)
                return 0;
        if (!p->kafka_fatal)
                LOY_ERROR("proc",
                          "fatal Kafka error in the %s: %s: %s; stopping "
                          "(nothing is lost: what was not delivered goes "
                          "out at the next start)",
                          who, rd_kafka_err2name(err), why);
        p->kafka_fatal = 1;
        return 1;
}

static loy_batch_t *other_batch(loy_proc_t *p, const loy_batch_t *b) {
        return b == p->cur ? p->prev : p->cur;
}

/* Does b again until it is written, given up, or no longer this
 * process's to write; wrc is what its first attempt came to. Returns the
 * last attempt's code (errstr its error). */
static int retry_batch(loy_proc_t *p, loy_batch_t *b, int wrc, char *err,
                       size_t errsz) {
        char last_err[512] = "";
        int busy_backoff = 50;
        while (wrc != 0) {
                if (loy_emit_suspect(p->emit, b))
                        LOY_ERROR("proc",
                                  "out of memory: triggers of a "
                                  "failed write are sent at the next start");
                if (wrc == LOY_WRITE_STALE)
                        break;
                http_tick(p);
                /* the aggregates may have landed without the customers:
                 * what they hold is read back */
                loy_agg_fences_forget(p->agg);
                if (wrc == LOY_STORE_ERR_FENCED)
                        break;
                /* The cache holds changes Redis may not have: forget them,
                 * reconnect, and do the batch again; offsets already
                 * written make the redo skip what landed. */
                p->stats.redis_failures++;
                redis_state(p, 0, err);
                LOY_WARN("proc", "batch write failed: %s", err);
                clear_cache(p);
                p->need_refresh = 1;
                if (wrc == LOY_STORE_ERR_BUSY) {
                        /* OOM, READONLY, MISCONF ...: the server's state,
                         * not the customer's; wait it out */
                        loy_time_sleep_ms(busy_backoff);
                        busy_backoff = busy_backoff * 2 > p->conf.backoff_max_ms
                                           ? p->conf.backoff_max_ms
                                           : busy_backoff * 2;
                } else if (wrc == LOY_STORE_ERR) {
                        /* the same customer failing twice is its state,
                         * not the connection */
                        if (!strcmp(err, last_err) &&
                            loy_batch_quarantine_from(b, err) == 0) {
                                loy_batch_t *o = other_batch(p, b);
                                memcpy(o->quarantine, b->quarantine,
                                       sizeof(o->quarantine));
                                o->nquarantine = b->nquarantine;
                                goto again;
                        }
                        snprintf(last_err, sizeof(last_err), "%s", err);
                        loy_time_sleep_ms(p->conf.backoff_max_ms);
                }
                if (ensure_redis(p, p->running) == -1)
                        break;
                /* Waiting for Redis is not being stopped: the consumer's
                 * heartbeats went on meanwhile, for the batch polled
                 * after this one too (it would be dropped as held too
                 * long, and read again). */
                b->polled_ms = loy_time_mono_ms();
                other_batch(p, b)->polled_ms = b->polled_ms;
        again:
                if (!*p->running)
                        break;
                /* What an attempt adds to the shared recommender model
                 * counts once: a failed one is withdrawn, and with it the
                 * next batch's, applied meanwhile (it is done again). */
                if (p->reco) {
                        loy_reco_stage_abort(p->reco);
                        loy_reco_stage_begin(p->reco);
                }
                wrc = run_batch(p, b, err, errsz);
        }
        return wrc;
}

static int64_t day_number(int64_t ms) {
        return ms / LOY_MS_PER_DAY - (ms % LOY_MS_PER_DAY < 0);
}

/* The earliest silence check of this process's partitions still to fire
 * at or before clock_ms (it counts on its own day when it does), else
 * clock_ms. -1 when Redis cannot say. */
static int64_t earliest_unfired(loy_proc_t *p, int64_t clock_ms, char *err,
                                size_t size) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int64_t bound = clock_ms;
        if (!p->conf.topic_purchase[0] ||
            rd_kafka_assignment(p->consumer, &asg) || !asg)
                return bound;
        for (int i = 0; i < asg->cnt && bound >= 0; i++) {
                char **ids = NULL;
                int64_t *due = NULL;
                int n = 0;
                if (strcmp(asg->elems[i].topic, p->conf.topic_purchase))
                        continue;
                if (loy_store_timers_due_at(p->store, asg->elems[i].partition,
                                            bound, 1, &ids, &due, &n, err,
                                            size)) {
                        bound = -1;
                        break;
                }
                if (n > 0 && due[0] < bound)
                        bound = due[0];
                loy_store_free_ids(ids, n);
                free(due);
        }
        rd_kafka_topic_partition_list_destroy(asg);
        return bound;
}

/* Once the clock enters a new day, the KPI days before it are final (a
 * later event for one of them is late beyond the allowed lateness) and go
 * to the closed-days stream, for charts -- unless a silence check due on
 * such a day has not fired yet (a batch fires a bounded number): its
 * trigger counts on its day, which then stays open. A failure is only
 * logged: the next batch tries again, the daily hashes are written
 * regardless. */
static void close_kpi_days(loy_proc_t *p, int64_t clock_ms) {
        char err[512];
        int64_t bound;
        int n = 0, rounds = 0, rc;
        if (clock_ms <= 0 || day_number(clock_ms) <= p->kpi_closed_day)
                return;
        if ((bound = earliest_unfired(p, clock_ms, err, sizeof(err))) < 0) {
                LOY_WARN("proc", "closing KPI days: %s", err);
                return;
        }
        if (day_number(bound) <= p->kpi_closed_day)
                return;
        do {
                rc = loy_store_kpi_close(p->store, bound, 256, &n, err,
                                         sizeof(err));
        } while (rc == LOY_STORE_OK && n == 256 && ++rounds < 64);
        if (rc != LOY_STORE_OK) {
                LOY_WARN("proc", "closing KPI days: %s", err);
                return;
        }
        p->kpi_closed_day = day_number(bound);
}

/* After b was written: its triggers out, its dead letters confirmed, its
 * offsets stored. DONE_OK, or DONE_FATAL when stopped before the dead
 * letters were confirmed (not committed: read again on the next start). */
static int post_write(loy_proc_t *p, loy_batch_t *b) {
        double now, ms;
        if (!b->agg_done)
                loy_agg_written(p->agg);
        loy_emit_batch(p->emit, p->producer, b);
        loy_emit_suspects_send(p->emit, p->producer, p->store, b);
        loy_recosync_run(p->recosync, p->store, b->clock_ms, 0);
        close_kpi_days(p, b->clock_ms);
        if (loy_dlq_deliver(b->dlq, b->msgs, b->nmsgs, p->running) == -1) {
                loy_batch_drop(b);
                return DONE_FATAL;
        }
        loy_emit_store_offsets(b, p->consumer);
        loy_clockstore_save(p->clocks, p->store);
        loy_batch_drop(b);
        p->stats.batches++;
        /* batches overlap: busy time counts each moment once */
        now = loy_time_mono_ms();
        ms = now - b->t0_ms;
        p->stats.busy_s +=
            (now -
             (b->t0_ms > p->busy_until_ms ? b->t0_ms : p->busy_until_ms)) /
            1e3;
        p->busy_until_ms = now;
        loy_stats_batch(p->pub, ms);
        if (p->metrics)
                loy_metrics_batch(p->metrics, ms);
        publish_stats(p, ms);
        return DONE_OK;
}

/* Finishes b, whose first attempt came to wrc (err its error text, 512
 * bytes, reused): done again while that helps, then what it was written
 * for. DONE_REWIND: not this process's to write; the caller seeks it back
 * (with whatever was polled after it) and drops it. */
static int complete(loy_proc_t *p, loy_batch_t *b, int wrc, char *err) {
        wrc = retry_batch(p, b, wrc, err, 512);
        if (p->reco) {
                if (wrc == 0)
                        loy_reco_stage_commit(p->reco);
                else
                        loy_reco_stage_abort(p->reco);
        }
        if (wrc == LOY_STORE_ERR_FENCED) {
                /* another process wrote these partitions: they are no
                 * longer this one's (the group will say so on the next
                 * poll), or this one was frozen */
                p->stats.batches_fenced++;
                wrc = LOY_WRITE_STALE;
        }
        if (wrc == LOY_WRITE_STALE) {
                /* not written and not committed: whoever owns the
                 * partitions now reads it (this process too, after the
                 * rewind, if they are still its own) */
                LOY_WARN("proc", "%s; batch dropped", err);
                clear_cache(p);
                p->need_refresh = 1;
                return DONE_REWIND;
        }
        if (wrc != 0) {
                /* not written: nothing stored, nothing committed */
                loy_batch_drop(b);
                return DONE_FATAL;
        }
        return post_write(p, b);
}

/* Writes prev (sent: reads its replies) and finishes it. A DONE_REWIND
 * leaves its messages in place for loy_collect_rewind(prev, cur). */
static int flush_prev(loy_proc_t *p) {
        char err[512] = "";
        loy_batch_t *b = p->prev;
        int wrc = LOY_STORE_OK, sent = 0, state = p->prev_state, r;
        p->prev_state = PREV_NONE;
        if (state == PREV_NONE)
                return DONE_OK;
        if (state == PREV_APPLIED) {
                wrc = loy_write_batch_send(b, b->clock_ms, &sent, err,
                                           sizeof(err));
                if (wrc == LOY_STORE_OK && sent)
                        wrc = loy_store_write_recv(p->store, err, sizeof(err));
        } else if (state == PREV_SENT) {
                wrc = loy_store_write_recv(p->store, err, sizeof(err));
        } else {
                wrc = p->prev_wrc;
                snprintf(err, sizeof(err), "%s", p->prev_err);
        }
        r = complete(p, b, wrc, err);
        if (r != DONE_OK)
                loy_clockstore_unmark(p->clocks);
        /* in a rebalance callback: the loop stops after the poll */
        if (r == DONE_FATAL)
                p->fatal = 1;
        return r;
}

/* Sends prev's write, so Redis does it while the next batch is polled and
 * applied. 1 when it is on its way (PREV_SENT); 0 when it is done or
 * failed already (PREV_RESULT). */
static int send_prev(loy_proc_t *p) {
        loy_batch_t *b = p->prev;
        int sent = 0;
        int wrc = loy_write_batch_send(b, b->clock_ms, &sent, p->prev_err,
                                       sizeof(p->prev_err));
        if (wrc == LOY_STORE_OK && sent) {
                /* the aggregates are in: the next batch's sums start
                 * from them (a failed customer write forgets the fences) */
                loy_agg_written(p->agg);
                b->agg_done = 1;
                p->prev_state = PREV_SENT;
                return 1;
        }
        p->prev_state = PREV_RESULT;
        p->prev_wrc = wrc;
        return 0;
}

/* cur becomes prev: applied, written by the next round or right away. What
 * it held back for the next batch goes with the next batch's struct. */
static void shift(loy_proc_t *p, int wrc, const char *err) {
        loy_batch_t *done = p->cur;
        loy_batch_t *next = p->prev;
        rd_kafka_message_t **carry = next->carry;
        next->carry = done->carry;
        next->ncarry = done->ncarry;
        done->carry = carry;
        done->ncarry = 0;
        p->prev = done;
        p->cur = next;
        p->prev_state = wrc ? PREV_RESULT : PREV_APPLIED;
        p->prev_wrc = wrc;
        snprintf(p->prev_err, sizeof(p->prev_err), "%s", err);
}

int loy_proc_run(loy_proc_t *p, volatile sig_atomic_t *running,
                 volatile sig_atomic_t *reload) {
        char err[512];
        int rc = 0;
        p->running = running;
        while (*running) {
                loy_batch_t *cur;
                int overlap, wrc, r;
                unsigned epoch;
                http_tick(p);
                if (loy_time_wall_ms() - p->last_model_check_ms > 1000) {
                        struct timespec mt = mtime_of(p->conf.model_path);
                        p->last_model_check_ms = loy_time_wall_ms();
                        if (mt.tv_sec != p->model_mtime.tv_sec ||
                            mt.tv_nsec != p->model_mtime.tv_nsec) {
                                LOY_INFO("proc", "model file changed");
                                *reload = 1;
                        }
                }
                if (*reload) {
                        *reload = 0;
                        if (loy_proc_reload_model(p, err, sizeof(err)) == -1)
                                LOY_ERROR("proc",
                                          "model reload refused, "
                                          "keeping %s: %s",
                                          p->model.version, err);
                }
                /* what is saved of the clock once prev is written: not
                 * the times of the batch polled after it */
                if (p->prev_state != PREV_NONE)
                        loy_clockstore_mark(p->clocks);
                /* with a batch on its way, only what is already there */
                if (loy_collect_poll(p->cur, p->consumer,
                                     p->prev_state == PREV_NONE,
                                     running) == -1) {
                        rc = -1;
                        break;
                }
                if (p->fatal)
                        break;
                if (kafka_fatal(p)) {
                        rc = -1;
                        break;
                }
                cur = p->cur;
                if (p->revoked) {
                        p->revoked = 0;
                        loy_collect_drop_revoked(cur, p->consumer);
                }
                cur->t0_ms = cur->polled_ms = loy_time_mono_ms();
                rd_kafka_poll(p->producer, 0);
                loy_collect_decode(cur, p->consumer);
                loy_collect_merge_order(cur);

                /* Redis writes prev while cur's events are applied, their
                 * customers loaded over the second connection. Not when
                 * the fences or the clock must be read first, and not when
                 * the recommender's increments are due: they are written
                 * when no attempt is staged, so one batch in a while goes
                 * alone. */
                overlap = p->prev_state == PREV_SENT && cur->nmsgs &&
                          loy_agg_fences_known(p->agg) &&
                          loy_store_is_connected(p->loads) &&
                          !loy_recosync_due(p->recosync);
                epoch = p->cache_epoch;
                wrc = -1;
                if (overlap) {
                        /* the event clock is not read before the due
                         * checks, nor Redis's copy of it (read only after
                         * an assignment, or while idle) */
                        cur->clock_ms =
                            loy_clock_advance(p->clock, loy_time_wall_ms());
                        /* prev's customers are the cache's newest: a trim
                         * that leaves room for them keeps them */
                        if (p->prev->ntouched <= p->conf.cache_customers)
                                loy_cache_trim(p->cache);
                        if (p->reco)
                                loy_reco_stage_begin(p->reco);
                        wrc = apply_events(p, cur, p->loads, err, sizeof(err));
                        p->stats.batches_overlapped++;
                }
                if (p->prev_state != PREV_NONE) {
                        r = flush_prev(p);
                        if (r == DONE_FATAL)
                                break;
                        if (r == DONE_REWIND) {
                                loy_collect_rewind(p->prev, cur, p->consumer);
                                continue;
                        }
                        if (overlap && wrc != LOY_STORE_OK &&
                            p->cache_epoch == epoch) {
                                /* customers touched but not loaded, or
                                 * events half applied: from Redis again */
                                LOY_WARN("proc",
                                         "batch applied while the "
                                         "last one was written: %s; done "
                                         "again",
                                         err);
                                clear_cache(p);
                        }
                        /* prev was done again: the cache cur was applied
                         * to is gone */
                        if (p->cache_epoch != epoch)
                                wrc = -1;
                        if (!overlap)
                                /* nothing of cur touched yet */
                                loy_cache_trim(p->cache);
                }
                /* nothing on its way: the store is free */
                if (ensure_redis(p, running) == -1)
                        break;
                if (loy_time_wall_ms() - p->last_hist_ms > HIST_REFRESH_MS) {
                        if (loy_store_load_hist(p->store, p->rfm, err,
                                                sizeof(err)) == 0)
                                p->last_hist_ms = loy_time_wall_ms();
                }
                loy_emit_ack(p->emit, p->store);
                if (!overlap) {
                        loy_clockstore_restore(p->clocks, p->store,
                                               !cur->nmsgs);
                        cur->clock_ms =
                            loy_clock_advance(p->clock, loy_time_wall_ms());
                }
                p->stats.clock_ms = cur->clock_ms;
                if (loy_load_timers(cur, p->consumer, cur->clock_ms, err,
                                    sizeof(err)) == -1) {
                        LOY_WARN("proc", "timers: %s", err);
                        redis_state(p, 0, err);
                        loy_batch_drop_timers(cur);
                }
                if (!cur->nmsgs && !cur->ntimers) {
                        /* idle, nothing in flight: all up to the clock is
                         * written */
                        if (p->prev_state == PREV_NONE)
                                close_kpi_days(p, cur->clock_ms);
                        loy_cache_trim(p->cache);
                        continue;
                }
                if (!p->first_batch_ms)
                        p->first_batch_ms = loy_time_wall_ms();
                if (wrc == LOY_STORE_OK) {
                        wrc = apply_due(cur, err, sizeof(err));
                } else {
                        /* prev is done: what is staged is cur's */
                        if (p->reco) {
                                loy_reco_stage_abort(p->reco);
                                loy_reco_stage_begin(p->reco);
                        }
                        wrc = apply_batch(p, cur, err, sizeof(err));
                }
                shift(p, wrc, err);
                /* on its way now, so Redis writes it while the next batch
                 * is polled and applied */
                if (wrc == LOY_STORE_OK && pipelined(p) && send_prev(p))
                        continue;
                /* one batch at a time */
                r = flush_prev(p);
                if (r == DONE_FATAL)
                        break;
                if (r == DONE_REWIND)
                        loy_collect_rewind(p->prev, p->cur, p->consumer);
                else
                        loy_cache_trim(p->cache);
        }
        /* drain: write what was applied, deliver what was emitted, commit
         * what was written */
        if (p->prev_state != PREV_NONE && flush_prev(p) == DONE_REWIND)
                loy_collect_rewind(p->prev, p->cur, p->consumer);
        if (loy_store_is_connected(p->store))
                loy_recosync_run(p->recosync, p->store, p->stats.clock_ms, 1);
        rd_kafka_flush(p->producer, 10000);
        rd_kafka_poll(p->producer, 0);
        if (loy_store_is_connected(p->store))
                loy_emit_ack(p->emit, p->store);
        rd_kafka_commit(p->consumer, NULL, 0);
        return p->refused ? -1 : rc;
}
