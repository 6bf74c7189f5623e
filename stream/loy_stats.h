/*
 * loy_stats: the processor's stats in <ns>:stats (docs/redis-keys.md),
 * published after every batch: counters as increments since the last
 * publish that landed (several processes add up), gauges set (batch
 * latency and its percentiles over the last LOY_STATS_LAT_RING batches,
 * events/s, event clock, consumer lag, cache and recommender sizes).
 */
#ifndef LOY_STATS_H
#define LOY_STATS_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "../models/loy_reco.h"
#include "../state/loy_cluster.h"
#include "../state/loy_store.h"
#include "loy_proc.h"

#define LOY_STATS_LAT_RING 1024 /* batch latencies kept for percentiles */

typedef struct loy_stats loy_stats_t;

/* What the stats show besides the processor's counters. */
typedef struct loy_stats_extra {
        int64_t reco_flushed;   /* increments sent to the shared model */
        int64_t reco_refreshed; /* neighbour lists rebuilt */
        int64_t reco_skipped;   /* pair increments not sent */
        int64_t lag;            /* loy_stats_lag */
        int64_t cache_customers;
        int64_t first_batch_ms;     /* wall clock of the first batch */
        loy_reco_stats_t reco;      /* zero without a recommender */
        loy_cluster_stats_t router; /* the store's (loy_store_router_stats) */
} loy_stats_extra_t;

/* NULL on no memory. Free with loy_stats_destroy() (NULL ok). */
loy_stats_t *loy_stats_create(void);
void loy_stats_destroy(loy_stats_t *s);

/* A batch took ms (wall time, for the percentiles). */
void loy_stats_batch(loy_stats_t *s, double ms);

/* Writes the stats to the store: the counters of st (and x's) that moved
 * since the last publish that succeeded, as increments; the gauges, with
 * batch_ms as the last batch's latency. A failed write is not an error:
 * its increments go with the next one. */
void loy_stats_publish(loy_stats_t *s, loy_store_t *store,
                       const loy_proc_stats_t *st, const loy_stats_extra_t *x,
                       double batch_ms);

/* The q-quantile (0..1) of sorted[0 .. n-1], nearest rank; 0 when n is 0. */
double loy_stats_percentile(const double *sorted, int n, double q);

/* Messages behind the partitions' high watermarks for the consumer's
 * assignment (borrowed; positions as it knows them, no broker call). */
int64_t loy_stats_lag(rd_kafka_t *consumer);

#endif
