/*
 * A batch (loy_batch.h) of real parts without Kafka: the shipped config
 * and model, a codec, a cache, the population, the clock, the aggregates
 * and, when a redis-server port is given, a store on it. Events are
 * decoded from JSON by the real codec. For the stage modules' tests.
 */
#ifndef TU_BATCH_H
#define TU_BATCH_H

#include <stdint.h>

#include "loy_batch.h"

typedef struct tu_batch {
        loy_config_t conf;
        loy_model_t model;
        loy_proc_stats_t stats;
        loy_batch_t b;
} tu_batch_t;

/* Sets t up (redis_port 0: no store; reco: with a recommender). Rules are
 * left empty for the test to add (tu_batch_rule). 0 or -1 (printed). */
int tu_batch_init(tu_batch_t *t, int redis_port, int reco);
void tu_batch_free(tu_batch_t *t);

/* Adds a rule "name" (reward 15, expiry 30 days, holdout 0) firing on
 * events (on_timer 0) or on silence checks when `when` holds. 0 or -1. */
int tu_batch_rule(tu_batch_t *t, const char *name, const char *when,
                  int on_timer);

/* Appends a purchase of one line (sku, quantity 1, price) by cid at ts on
 * (purchase topic, partition, offset), decoded by the codec, in arrival
 * order (b->order follows). Returns the event or NULL. */
loy_event_t *tu_batch_purchase(tu_batch_t *t, const char *eid, const char *cid,
                               int64_t ts, const char *sku, double price,
                               int32_t partition, int64_t offset);

/* A new attempt at the batch (loy_batch_restart) and one more for the
 * next batch: events, timers and outbox emptied. */
void tu_batch_next(tu_batch_t *t);

#endif
