/* loy_stats: see loy_stats.h. */
#include "loy_stats.h"
#include "loy_time.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NINCR 25 /* counters added to <ns>:stats */

struct loy_stats {
        double lat_ms[LOY_STATS_LAT_RING];
        int nlat;
        int64_t pending[NINCR]; /* counters as last published */
};

loy_stats_t *loy_stats_create(void) {
        return calloc(1, sizeof(loy_stats_t));
}

void loy_stats_destroy(loy_stats_t *s) {
        free(s);
}

void loy_stats_batch(loy_stats_t *s, double ms) {
        s->lat_ms[s->nlat++ % LOY_STATS_LAT_RING] = ms;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

double loy_stats_percentile(const double *sorted, int n, double q) {
        int i;
        if (!n)
                return 0;
        i = (int)ceil(q * n) - 1;
        return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int64_t loy_stats_lag(rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int64_t lag = 0;
        if (rd_kafka_assignment(consumer, &asg) || !asg)
                return 0;
        rd_kafka_position(consumer, asg);
        for (int i = 0; i < asg->cnt; i++) {
                int64_t lo, hi;
                if (rd_kafka_get_watermark_offsets(
                        consumer, asg->elems[i].topic, asg->elems[i].partition,
                        &lo, &hi) ||
                    hi < 0 || asg->elems[i].offset < 0)
                        continue;
                if (hi > asg->elems[i].offset)
                        lag += hi - asg->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(asg);
        return lag;
}

void loy_stats_publish(loy_stats_t *s, loy_store_t *store,
                       const loy_proc_stats_t *st, const loy_stats_extra_t *x,
                       double batch_ms) {
        static const char *const incr_names[] = {"events_in",
                                                 "events_applied",
                                                 "events_skipped_dup",
                                                 "dead_lettered",
                                                 "triggers_out",
                                                 "timers_fired",
                                                 "batches",
                                                 "redis_failures",
                                                 "reco_increments",
                                                 "reco_lists_rebuilt",
                                                 "batches_fenced",
                                                 "redis_moved",
                                                 "redis_ask",
                                                 "redis_map_reads",
                                                 "redis_connects",
                                                 "redis_conn_lost",
                                                 "redis_refused",
                                                 "reco_increments_skipped",
                                                 "owner_conns_closed",
                                                 "batches_overlapped",
                                                 "events_duplicate_id",
                                                 "customers_forgotten",
                                                 "events_forgotten",
                                                 "expiries_outdated",
                                                 "conversions_untracked"};
        const int64_t now_vals[NINCR] = {st->events_in,
                                         st->events_applied,
                                         st->events_skipped_dup,
                                         st->dead_lettered,
                                         st->triggers_out,
                                         st->timers_fired,
                                         st->batches,
                                         st->redis_failures,
                                         x->reco_flushed,
                                         x->reco_refreshed,
                                         st->batches_fenced,
                                         (int64_t)x->router.moved,
                                         (int64_t)x->router.ask,
                                         (int64_t)x->router.refreshes,
                                         (int64_t)x->router.connects,
                                         (int64_t)x->router.io_errors,
                                         (int64_t)x->router.refused,
                                         x->reco_skipped,
                                         st->owner_conns_closed,
                                         st->batches_overlapped,
                                         st->events_duplicate_id,
                                         st->customers_forgotten,
                                         st->events_forgotten,
                                         st->expiries_outdated,
                                         st->conversions_untracked};
        _Static_assert(sizeof(incr_names) / sizeof(incr_names[0]) == NINCR,
                       "one name per counter");
        const char *set_names[] = {"batch_ms_last",   "batch_ms_p50",
                                   "batch_ms_p99",    "events_per_s",
                                   "clock_ms",        "lag",
                                   "cache_customers", "first_batch_wall_ms",
                                   "reco_items",      "reco_pairs",
                                   "reco_bytes",      "last_batch_wall_ms"};
        double incr[NINCR], set[12], sorted[LOY_STATS_LAT_RING];
        int n = s->nlat < LOY_STATS_LAT_RING ? s->nlat : LOY_STATS_LAT_RING;
        char err[256];
        for (int i = 0; i < NINCR; i++)
                incr[i] = (double)(now_vals[i] - s->pending[i]);
        memcpy(sorted, s->lat_ms, (size_t)n * sizeof(double));
        qsort(sorted, (size_t)n, sizeof(double), cmp_double);
        set[0] = batch_ms;
        set[1] = loy_stats_percentile(sorted, n, 0.50);
        set[2] = loy_stats_percentile(sorted, n, 0.99);
        set[3] = st->busy_s > 0 ? (double)st->events_in / st->busy_s : 0;
        set[4] = (double)st->clock_ms;
        set[5] = (double)x->lag;
        set[6] = (double)x->cache_customers;
        set[7] = (double)x->first_batch_ms;
        set[8] = (double)x->reco.items;
        set[9] = (double)x->reco.pairs;
        set[10] = (double)x->reco.bytes;
        set[11] = (double)loy_time_wall_ms();
        if (loy_store_stats(store, incr_names, incr, NINCR, set_names, set, 12,
                            err, sizeof(err)) == 0)
                memcpy(s->pending, now_vals, sizeof(now_vals));
}
