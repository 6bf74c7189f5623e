/* loy_collect: see loy_collect.h. */
#include "loy_collect.h"

#include <string.h>

#include "loy_log.h"
#include "loy_time.h"

#define DLQ_REASON_MAX 256

static loy_event_kind_t topic_kind(const loy_batch_t *b, const char *topic) {
        if (!strcmp(topic, b->conf->topic_purchase))
                return LOY_EV_PURCHASE;
        if (!strcmp(topic, b->conf->topic_browse))
                return LOY_EV_BROWSE;
        return 0;
}

/* Polls up to batch_max messages, waiting at most batch_ms. Once it holds
 * a message it takes only what is already waiting in the local queue: a
 * busy stream still fills whole batches (librdkafka prefetches), while a
 * quiet one does not hold an event back for the rest of batch_ms.
 * Returns -1 on a fatal consumer error. */
int loy_collect_poll(loy_batch_t *b, rd_kafka_t *consumer,
                     volatile sig_atomic_t *running) {
        double deadline = loy_time_mono_ms() + b->conf->batch_ms;
        while (b->nmsgs < b->conf->batch_max && *running) {
                double left = deadline - loy_time_mono_ms();
                rd_kafka_message_t *m;
                if (left <= 0)
                        break;
                m = rd_kafka_consumer_poll(consumer,
                                           b->nmsgs ? 0 : (int)left + 1);
                if (!m) {
                        if (b->nmsgs)
                                break;
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt) {
                        loy_clock_backlog(b->clock,
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
                loy_clock_backlog(b->clock, rd_kafka_topic_name(m->rkt),
                                  m->partition, 1);
                b->msgs[b->nmsgs++] = m;
        }
        return 0;
}

/* Decodes the batch; bad messages go to the dead-letter topic. */
void loy_collect_decode(loy_batch_t *b) {
        int64_t now = loy_time_wall_ms();
        for (int i = 0; i < b->nmsgs; i++) {
                rd_kafka_message_t *m = b->msgs[i];
                const char *topic = rd_kafka_topic_name(m->rkt);
                loy_event_t *ev = &b->events[b->nevents];
                char why[DLQ_REASON_MAX];
                b->stats->events_in++;
                if (loy_codec_decode(b->codec, m->payload, m->len,
                                     topic_kind(b, topic), now, ev, why,
                                     sizeof(why)) == 0) {
                        ev->topic = topic;
                        ev->partition = m->partition;
                        ev->offset = m->offset;
                        b->event_msg[b->nevents++] = i;
                        loy_clock_observe(b->clock, topic, m->partition,
                                          ev->ts_ms, now);
                        continue;
                }
                loy_batch_dead_letter(b, i, why);
        }
}

/* Seeks every partition of the batch back to its first message and drops
 * the batch: it will be consumed again (partitions no longer owned are
 * left to their new owner). */
void loy_collect_rewind(loy_batch_t *b, rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(8);
        rd_kafka_error_t *error;
        for (int i = 0; i < b->nmsgs; i++) {
                const rd_kafka_message_t *m = b->msgs[i];
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
        error = list->cnt ? rd_kafka_seek_partitions(consumer, list, 5000)
                          : NULL;
        if (error) {
                LOY_WARN("proc", "rewind: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        rd_kafka_topic_partition_list_destroy(list);
        loy_batch_drop(b);
}

/* After a revocation during the poll, drops the messages of partitions this
 * process no longer owns: their new owner processes them. */
void loy_collect_drop_revoked(loy_batch_t *b, rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int w = 0;
        if (rd_kafka_assignment(consumer, &asg) || !asg)
                return;
        for (int i = 0; i < b->nmsgs; i++) {
                rd_kafka_message_t *m = b->msgs[i];
                if (rd_kafka_topic_partition_list_find(
                        asg, rd_kafka_topic_name(m->rkt), m->partition))
                        b->msgs[w++] = m;
                else
                        rd_kafka_message_destroy(m);
        }
        if (w < b->nmsgs)
                LOY_INFO("proc", "dropped %d messages of revoked partitions",
                         b->nmsgs - w);
        b->nmsgs = w;
        rd_kafka_topic_partition_list_destroy(asg);
}

/* Orders the batch for applying: a merge by event time of the partitions'
 * runs, each run kept in offset order (like Kafka Streams picking the
 * partition with the oldest head record). Sorting by time alone would
 * reorder a partition whose timestamps go backwards, and the offset fence
 * would then drop the earlier offset. */
void loy_collect_merge_order(loy_batch_t *b) {
        int ngroups = 0;
        int *next = b->group_of; /* reused: next event of the same run */
        int *head = b->group_head;
        int tail[64], gcount = 0;
        /* runs are few (assigned partitions), so linear scans are cheap */
        const char *gtopic[64];
        int32_t gpart[64];
        for (int i = 0; i < b->nevents; i++)
                next[i] = -1;
        for (int i = 0; i < b->nevents; i++) {
                const loy_event_t *ev = &b->events[i];
                int g;
                for (g = 0; g < ngroups; g++)
                        if (gpart[g] == ev->partition && gtopic[g] == ev->topic)
                                break;
                if (g == ngroups) {
                        if (ngroups == 64) {
                                /* more runs than we merge: keep arrival
                                 * order, which is offset order per run */
                                for (int k = 0; k < b->nevents; k++)
                                        b->order[k] = k;
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
        while (gcount < b->nevents) {
                int best = -1;
                for (int g = 0; g < ngroups; g++)
                        if (head[g] >= 0 &&
                            (best < 0 || b->events[head[g]].ts_ms <
                                             b->events[head[best]].ts_ms))
                                best = g;
                b->order[gcount++] = head[best];
                head[best] = next[head[best]];
        }
}
