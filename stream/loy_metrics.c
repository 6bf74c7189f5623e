/* loy_metrics: see loy_metrics.h. */
#include "loy_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Batch latency buckets (seconds): a batch is tens of ms when healthy,
 * seconds when Redis or Kafka is struggling. */
static const double bucket_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,   1,    2.5,   5,    10,  30};
#define NBUCKETS ((int)(sizeof(bucket_s) / sizeof(bucket_s[0])))

/* The names of loy_dead_class_t, in its order. */
static const char *const dead_class_name[LOY_DEAD__COUNT] = {
    "decode", "invalid", "apply"};

struct loy_metrics {
        uint64_t bucket[NBUCKETS]; /* not cumulative; summed at render */
        uint64_t count;
        double sum_s;
        char *buf;
        size_t len, cap;
        int oom;
        loy_metrics_part_t *parts;
        int parts_cap;
};

loy_metrics_t *loy_metrics_create(void) {
        return calloc(1, sizeof(loy_metrics_t));
}

void loy_metrics_destroy(loy_metrics_t *m) {
        if (!m)
                return;
        free(m->buf);
        free(m->parts);
        free(m);
}

void loy_metrics_batch(loy_metrics_t *m, double ms) {
        double s = ms / 1e3;
        m->count++;
        m->sum_s += s;
        for (int i = 0; i < NBUCKETS; i++)
                if (s <= bucket_s[i]) {
                        m->bucket[i]++;
                        return;
                }
}

int loy_metrics_parts(loy_metrics_t *m, rd_kafka_t *consumer,
                      const loy_metrics_part_t **parts, int *n) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        *parts = m->parts;
        *n = 0;
        if (rd_kafka_assignment(consumer, &asg) || !asg)
                return 0;
        if (asg->cnt > m->parts_cap) {
                loy_metrics_part_t *np =
                    realloc(m->parts, sizeof(*np) * (size_t)asg->cnt);
                if (!np) {
                        rd_kafka_topic_partition_list_destroy(asg);
                        return -1;
                }
                m->parts = np;
                m->parts_cap = asg->cnt;
        }
        rd_kafka_position(consumer, asg);
        for (int i = 0; i < asg->cnt; i++) {
                loy_metrics_part_t *q = &m->parts[i];
                int64_t lo, hi;
                snprintf(q->topic, sizeof(q->topic), "%s", asg->elems[i].topic);
                q->partition = asg->elems[i].partition;
                q->lag = -1;
                if (!rd_kafka_get_watermark_offsets(
                        consumer, asg->elems[i].topic, asg->elems[i].partition,
                        &lo, &hi) &&
                    hi >= 0 && asg->elems[i].offset >= 0)
                        q->lag = hi > asg->elems[i].offset
                                     ? hi - asg->elems[i].offset
                                     : 0;
        }
        *parts = m->parts;
        *n = asg->cnt;
        rd_kafka_topic_partition_list_destroy(asg);
        return 0;
}

static void put(loy_metrics_t *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(loy_metrics_t *m, const char *fmt, ...) {
        va_list ap;
        int n;
        if (m->oom)
                return;
        for (;;) {
                size_t room = m->cap - m->len;
                va_start(ap, fmt);
                n = vsnprintf(m->buf ? m->buf + m->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        m->oom = 1;
                        return;
                }
                if ((size_t)n < room) {
                        m->len += (size_t)n;
                        return;
                }
                {
                        size_t cap = m->cap ? m->cap * 2 : 8192;
                        char *nb;
                        while (cap - m->len <= (size_t)n)
                                cap *= 2;
                        nb = realloc(m->buf, cap);
                        if (!nb) {
                                m->oom = 1;
                                return;
                        }
                        m->buf = nb;
                        m->cap = cap;
                }
        }
}

/* A label value as the exposition format wants it: \, " and newline
 * escaped (rule and topic names are the user's). */
static void put_label(loy_metrics_t *m, const char *v) {
        for (; *v; v++) {
                if (*v == '\\')
                        put(m, "\\\\");
                else if (*v == '"')
                        put(m, "\\\"");
                else if (*v == '\n')
                        put(m, "\\n");
                else
                        put(m, "%c", *v);
        }
}

static void head(loy_metrics_t *m, const char *name, const char *type,
                 const char *help) {
        put(m, "# HELP loyaltyd_%s %s\n# TYPE loyaltyd_%s %s\n", name, help,
            name, type);
}

static void counter(loy_metrics_t *m, const char *name, const char *help,
                    int64_t v) {
        head(m, name, "counter", help);
        put(m, "loyaltyd_%s %" PRId64 "\n", name, v);
}

static void gauge(loy_metrics_t *m, const char *name, const char *help,
                  double v) {
        head(m, name, "gauge", help);
        put(m, "loyaltyd_%s %.17g\n", name, v);
}

static void render_events(loy_metrics_t *m, const loy_proc_stats_t *st) {
        counter(m, "events_in_total", "Input messages consumed.",
                st->events_in);
        counter(m, "events_applied_total", "Events applied to their customers.",
                st->events_applied);
        head(m, "events_duplicate_total", "counter",
             "Events not applied again: by=\"offset\" at or below their "
             "customer's applied offset (replays, redos), by=\"event_id\" "
             "an event_id among the customer's last ones (a producer's "
             "retry).");
        put(m, "loyaltyd_events_duplicate_total{by=\"offset\"} %" PRId64 "\n",
            st->events_skipped_dup);
        put(m, "loyaltyd_events_duplicate_total{by=\"event_id\"} %" PRId64 "\n",
            st->events_duplicate_id);
        counter(m, "customers_forgotten_total",
                "Forget requests applied (loyaltyctl forget).",
                st->customers_forgotten);
        counter(m, "events_forgotten_total",
                "Events dropped because an erasure of their customer "
                "covers them.",
                st->events_forgotten);
        counter(m, "expiries_outdated_total",
                "Expiries not applied: the customer came back after "
                "loyaltyctl expire chose it.",
                st->expiries_outdated);
        counter(m, "conversions_untracked_total",
                "Purchases in a trigger's conversion window not counted: "
                "the customer had no free slot to remember the conversion.",
                st->conversions_untracked);
        head(m, "dead_letters_total", "counter",
             "Messages dead-lettered, by reason class.");
        for (int c = 0; c < LOY_DEAD__COUNT; c++)
                put(m,
                    "loyaltyd_dead_letters_total{reason=\"%s\"} %" PRId64 "\n",
                    dead_class_name[c], st->dead_by_class[c]);
        counter(m, "timers_fired_total", "Silence checks fired.",
                st->timers_fired);
}

static void render_triggers(loy_metrics_t *m, const loy_metrics_in_t *in) {
        head(m, "triggers_total", "counter",
             "Triggers written, by rule; group=\"holdout\": the control "
             "group (emitted with holdout = true).");
        for (int r = 0; r < in->rules->n; r++)
                for (int g = 0; g < 2; g++) {
                        put(m, "loyaltyd_triggers_total{rule=\"");
                        put_label(m, in->rules->rule[r].name);
                        put(m, "\",group=\"%s\"} %" PRId64 "\n",
                            g ? "holdout" : "reward",
                            in->st->triggers_by_rule[r][g]);
                }
        counter(m, "triggers_delivered_total", "Triggers Kafka confirmed.",
                in->st->triggers_acked);
}

static void render_batches(loy_metrics_t *m, const loy_proc_stats_t *st) {
        uint64_t cum = 0;
        counter(m, "batches_total", "Batches written.", st->batches);
        counter(m, "batches_fenced_total",
                "Batches refused because another process owns the "
                "partitions.",
                st->batches_fenced);
        head(m, "batch_duration_seconds", "histogram",
             "Wall time of a batch, from poll to offsets stored.");
        for (int i = 0; i < NBUCKETS; i++) {
                cum += m->bucket[i];
                put(m,
                    "loyaltyd_batch_duration_seconds_bucket{le=\"%g\"} %" PRIu64
                    "\n",
                    bucket_s[i], cum);
        }
        put(m,
            "loyaltyd_batch_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
            m->count);
        put(m, "loyaltyd_batch_duration_seconds_sum %.17g\n", m->sum_s);
        put(m, "loyaltyd_batch_duration_seconds_count %" PRIu64 "\n", m->count);
        counter(m, "busy_seconds_total",
                "Wall time spent on batches (overlaps counted once).",
                (int64_t)st->busy_s);
}

static void render_kafka(loy_metrics_t *m, const loy_metrics_in_t *in) {
        gauge(m, "partitions_assigned", "Input partitions assigned.",
              in->nparts);
        head(m, "consumer_lag_messages", "gauge",
             "Messages behind the partition's high watermark.");
        for (int i = 0; i < in->nparts; i++) {
                if (in->parts[i].lag < 0)
                        continue;
                put(m, "loyaltyd_consumer_lag_messages{topic=\"");
                put_label(m, in->parts[i].topic);
                put(m, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                    in->parts[i].partition, in->parts[i].lag);
        }
        gauge(m, "event_clock_seconds", "The event-time clock (unix seconds).",
              (double)in->st->clock_ms / 1e3);
}

static void render_redis(loy_metrics_t *m, const loy_metrics_in_t *in) {
        const loy_cluster_stats_t *r = &in->x->router;
        gauge(m, "redis_up", "1 when the last Redis call answered.",
              in->redis_up);
        head(m, "redis_errors_total", "counter",
             "Redis failures, by kind: batch (a batch write failed and was "
             "done again), connection (a connection failed or was lost), "
             "refused (OOM, READONLY, MISCONF, BUSY ...).");
        put(m, "loyaltyd_redis_errors_total{kind=\"batch\"} %" PRId64 "\n",
            in->st->redis_failures);
        put(m, "loyaltyd_redis_errors_total{kind=\"connection\"} %" PRIu64 "\n",
            r->io_errors);
        put(m, "loyaltyd_redis_errors_total{kind=\"refused\"} %" PRIu64 "\n",
            r->refused);
        counter(m, "redis_connects_total", "Redis connections opened.",
                (int64_t)r->connects);
        counter(m, "redis_redirects_total",
                "Redis Cluster MOVED and ASK replies followed.",
                (int64_t)(r->moved + r->ask));
}

static void render_model(loy_metrics_t *m, const loy_metrics_in_t *in) {
        head(m, "model_info", "gauge",
             "The model file loaded (its version "
             "line).");
        put(m, "loyaltyd_model_info{version=\"");
        put_label(m, in->model_version);
        put(m, "\"} 1\n");
        gauge(m, "model_file_mtime_seconds",
              "Modification time of the model file loaded (unix seconds).",
              in->model_mtime_s);
        gauge(m, "model_age_seconds",
              "Seconds since the model file loaded was written (alert when "
              "the fit is stale).",
              in->now_s - in->model_mtime_s);
        gauge(m, "model_loaded_seconds",
              "When the model was loaded (unix seconds).", in->model_loaded_s);
}

int loy_metrics_render(loy_metrics_t *m, const loy_metrics_in_t *in,
                       const char **text, size_t *len) {
        m->len = 0;
        m->oom = 0;
        gauge(m, "ready", "1 when /readyz answers 200.", in->ready);
        gauge(m, "start_time_seconds",
              "When the process started (unix seconds).", in->start_s);
        render_events(m, in->st);
        render_triggers(m, in);
        render_batches(m, in->st);
        render_kafka(m, in);
        render_redis(m, in);
        render_model(m, in);
        gauge(m, "cache_customers", "Customers in the local cache.",
              (double)in->x->cache_customers);
        gauge(m, "reco_items", "Items the recommender knows.",
              (double)in->x->reco.items);
        gauge(m, "reco_bytes", "Memory of the recommender model.",
              (double)in->x->reco.bytes);
        if (m->oom)
                return -1;
        *text = m->buf;
        *len = m->len;
        return 0;
}
