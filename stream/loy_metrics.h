/*
 * loy_metrics: loyaltyd's Prometheus text exposition (format 0.0.4), the
 * body of GET /metrics (loy_http). Every name is listed, with its meaning,
 * in docs/operations.md. Rendered on the processor's thread from its own
 * counters, so nothing here is shared; the batch latency histogram is kept
 * here.
 */
#ifndef LOY_METRICS_H
#define LOY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "../models/loy_rules.h"
#include "loy_proc.h"
#include "loy_stats.h"

typedef struct loy_metrics loy_metrics_t;

/* An input partition of the assignment. */
typedef struct loy_metrics_part {
        char topic[256];
        int32_t partition;
        int64_t lag; /* messages behind the high watermark; -1:
                      * not known yet */
} loy_metrics_part_t;

/* What a rendering shows besides the processor's counters. */
typedef struct loy_metrics_in {
        const loy_proc_stats_t *st;
        const loy_stats_extra_t *x;
        const loy_rules_t *rules;
        const loy_metrics_part_t *parts;
        int nparts;
        int redis_up; /* the last Redis call answered */
        int ready;    /* as /readyz says */
        const char *model_version;
        double model_mtime_s;  /* of the model file loaded (unix s) */
        double model_loaded_s; /* when it was loaded (unix s) */
        double start_s;        /* when the process started (unix s) */
        double now_s;
} loy_metrics_in_t;

/* NULL on no memory. Free with loy_metrics_destroy() (NULL ok). */
loy_metrics_t *loy_metrics_create(void);
void loy_metrics_destroy(loy_metrics_t *m);

/* A batch took ms (wall time): into the latency histogram. */
void loy_metrics_batch(loy_metrics_t *m, double ms);

/* The consumer's assignment with each partition's lag (positions and
 * watermarks as the consumer knows them, no broker call): *parts owned by
 * m, valid until the next call. -1 out of memory. */
int loy_metrics_parts(loy_metrics_t *m, rd_kafka_t *consumer,
                      const loy_metrics_part_t **parts, int *n);

/* Renders the text into a buffer owned by m (valid until the next call):
 * *text, *len. -1 out of memory. */
int loy_metrics_render(loy_metrics_t *m, const loy_metrics_in_t *in,
                       const char **text, size_t *len);

#endif
