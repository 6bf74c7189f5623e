/*
 * loy_batch: what the stages of one batch share. Internal to stream/ (the
 * processor and its stage modules), not an API of the engine.
 *
 * The processor (loy_proc) owns one batch and hands it to each stage in
 * the order of DESIGN.md's "one batch": loy_collect fills msgs, events and
 * their apply order; loy_load touches the customers and loads the missing
 * ones; loy_apply applies the events and fires due checks, each scored and
 * decided by loy_evaluate into the outbox; loy_write hands customers,
 * outbox and aggregates to the store; loy_emit sends the outbox to Kafka
 * and stores the offsets.
 *
 * The parts (codec, store, cache, model ...) are the processor's: the
 * batch borrows them, and they must outlive it. The arrays are the
 * batch's: loy_batch_init() allocates them, loy_batch_free() frees them.
 * Kafka appears only as the messages of the batch: no stage that takes a
 * batch needs a consumer or a producer unless its signature says so.
 */
#ifndef LOY_BATCH_H
#define LOY_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "../config/loy_config.h"
#include "../features/loy_rfm.h"
#include "../models/loy_model.h"
#include "../models/loy_reco.h"
#include "../state/loy_cache.h"
#include "../state/loy_store.h"
#include "loy_agg.h"
#include "loy_clock.h"
#include "loy_codec.h"
#include "loy_dlq.h"
#include "loy_proc.h"

/* customers whose Redis state fails every write, at most */
#define LOY_BATCH_QUARANTINE_MAX 64

/* Kept beside each cached customer (the loy_cache ext of every customer
 * in the batch's cache). */
typedef struct loy_cust_ext {
        loy_shadow_t shadow; /* what its hash holds */
        loy_reco_hist_t hist;
} loy_cust_ext_t;

/* A customer the batch touches. */
typedef struct loy_touched {
        loy_cust_t *c; /* in the cache */
        int need_load;
        int existed; /* known to Redis (or the cache) */
        /* where the segment and histogram counts hold it before the
         * batch */
        loy_agg_counted_t counted;
        int cur_bins[LOY_DIM__COUNT]; /* as the in-memory population has it */
        int64_t old_timer;
        int by_event, by_purchase, by_timer;
        int fired;               /* a silence check was scored */
        int32_t partition;       /* of its purchase topic */
        int32_t event_partition; /* of any of its events, or -1 */
        int64_t timer_due;       /* score of the fired entry */
        int32_t fired_partition;
        int reco_dirty;  /* its history learned an event */
        int erased;      /* a forget request applied: what
                          * Redis holds goes first */
        char *hist_text; /* owned, for the write */
        int nrecs;
        const char *rec_ptr[LOY_RECS_MAX];
        double rec_score[LOY_RECS_MAX];
        char rec_sku[LOY_RECS_MAX][LOY_SKU_MAX + 1];
} loy_touched_t;

/* A trigger of the batch, encoded, for the outbox and then Kafka. */
typedef struct loy_outbox_rec {
        int touched; /* index of its customer */
        int rule;    /* of conf.rules */
        int holdout;
        char trigger_id[33];
        void *payload; /* owned */
        size_t len;
} loy_outbox_rec_t;

typedef struct loy_batch {
        /* borrowed from the processor */
        const loy_config_t *conf;
        const loy_model_t *model;
        loy_codec_t *codec;
        loy_store_t *store;
        loy_cache_t *cache;
        loy_rfm_t *rfm;
        loy_clock_t *clock;
        loy_reco_t *reco;                /* NULL when reco.enabled = no */
        loy_agg_t *agg;                  /* the batch's sums and fences */
        const struct loy_pseudo *pseudo; /* NULL: ids kept as they come */
        loy_dlq_t *dlq;                  /* dead letters of the batch */
        loy_proc_stats_t *stats;

        /* the messages, decoded, in apply order */
        rd_kafka_message_t **msgs; /* owned references */
        int nmsgs;
        /* Messages held back for the next batch (loy_collect_decode):
         * owned, at most batch_max / 2, in poll order. */
        rd_kafka_message_t **carry;
        int ncarry;
        int ncarried;               /* of msgs, from the carry */
        char **bad_why;             /* decode scratch, per message */
        unsigned char *bad_class;   /* and its loy_dead_class_t */
        loy_event_t *events;        /* decoded, batch_max of them */
        int *event_msg;             /* event -> its message */
        int *order;                 /* events in apply order */
        int *group_of, *group_head; /* merge scratch, per event */
        int nevents;
        /* due timers this batch (ids owned) */
        char **timer_ids;
        int32_t *timer_part;
        int64_t *timer_due;
        int ntimers, timers_cap;
        /* the customers it touches */
        loy_touched_t *touched;
        int ntouched, touched_cap;
        int *index; /* open addressing: cid -> touched */
        size_t index_size;
        /* what it writes */
        loy_outbox_rec_t *outbox;
        int noutbox, outbox_cap;
        loy_cust_write_t *writes;
        loy_outbox_entry_t *entries;
        /* KPI fields per rule: "triggers:<r>", "holdout:<r>",
         * "converted:<r>", "holdout_converted:<r>" */
        char names[LOY_RULES_MAX][4][64];

        /* customers whose Redis state makes every write fail: their events
         * are dead-lettered instead of blocking the partition */
        char quarantine[LOY_BATCH_QUARANTINE_MAX][LOY_ID_MAX + 1];
        int nquarantine;

        int64_t takeover_closed; /* a previous owner's connections
                                  * closed (loy_load) */
        int64_t clock_ms;        /* event clock it is applied at */
        double t0_ms;            /* when it was polled (stats) */
        int agg_done;            /* its aggregates are in Redis */
        double polled_ms;        /* when the batch was collected */
        double stale_ms;         /* a batch older is not written */
} loy_batch_t;

/* Releases the messages held back for the next batch. */
void loy_batch_drop_carry(loy_batch_t *b);

/* Allocates the arrays for conf's batch_max messages and timer_batch
 * timers (conf borrowed: must outlive b); the parts are left NULL for the
 * caller to set. 0, or -1 with errstr ("out of memory"); free with
 * loy_batch_free() either way. */
int loy_batch_init(loy_batch_t *b, const loy_config_t *conf, char *errstr,
                   size_t errstr_size);
/* Frees the arrays (the messages must have been dropped first); not the
 * parts. */
void loy_batch_free(loy_batch_t *b);
/* Fills the KPI field names (b->names) of rule `rule` of b->conf. */
void loy_batch_name_rule(loy_batch_t *b, int rule);

/* The batch is done (or given up): its messages are released, dead-letter
 * slots, timers and outbox forgotten. */
void loy_batch_drop(loy_batch_t *b);
/* Frees the due timers only (their fetch failed). */
void loy_batch_drop_timers(loy_batch_t *b);
/* An attempt at the batch starts (again): no customer touched yet, no
 * trigger in the outbox. Also before the first loy_batch_touch(). */
void loy_batch_restart(loy_batch_t *b);

/* The batch's entry for customer cid, put into the cache (need_load set)
 * when it is not there. NULL with errstr when the batch holds touched_cap
 * customers already, or out of memory. */
loy_touched_t *loy_batch_touch(loy_batch_t *b, const char *cid, char *errstr,
                               size_t errstr_size);

/* A new zeroed outbox record (and room for its store entry); NULL out of
 * memory. */
loy_outbox_rec_t *loy_batch_outbox_add(loy_batch_t *b);

/* Dead-letters message i of the batch for reason why (once, whatever the
 * redos), and counts it under its class. */
void loy_batch_dead_letter(loy_batch_t *b, int i, loy_dead_class_t cls,
                           const char *why);
/* Dead-letters the message of event i. */
void loy_batch_dead_event(loy_batch_t *b, int i, loy_dead_class_t cls,
                          const char *why);

/* 1 when customer cid is quarantined. */
int loy_batch_quarantined(const loy_batch_t *b, const char *cid);
/* Store errors name the customer ("customer <id>: ..."; ids hold no
 * blanks). Adds it to the quarantine; 0, or -1 when no customer is named
 * (or the quarantine is full). */
int loy_batch_quarantine_from(loy_batch_t *b, const char *err);

#endif
