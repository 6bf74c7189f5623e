/*
 * loy_collect: steps 1 and 2 of a batch (DESIGN.md): consume up to
 * batch_max messages or batch_ms, decode them into events (what does not
 * decode or validate is dead-lettered with its reason), and order the
 * events for applying. Also the ways a batch is given back to Kafka
 * unprocessed: messages of revoked partitions dropped, or the whole batch
 * rewound to be read again.
 *
 * The consumer is the processor's (borrowed); the messages polled become
 * the batch's (released by loy_batch_drop()).
 */
#ifndef LOY_COLLECT_H
#define LOY_COLLECT_H

#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "loy_batch.h"

/* Polls into b->msgs up to batch_max messages, waiting at most batch_ms
 * (or until *running drops). Once it holds a message it takes only what is
 * already waiting in the local queue; without wait, only that from the
 * start. Partition ends and message arrivals tell the event clock which
 * partitions have data left. Returns 0, or -1 on a fatal consumer
 * error. */
int loy_collect_poll(loy_batch_t *b, rd_kafka_t *consumer, int wait,
                     volatile sig_atomic_t *running);

/* After a revocation during the poll: releases the messages of partitions
 * the consumer no longer owns (their new owner processes them). */
void loy_collect_drop_revoked(loy_batch_t *b, rd_kafka_t *consumer);

/* Decodes every message into b->events (each one counted in events_in,
 * observed by the clock); bad ones go to the dead-letter topic.
 *
 * With a browse topic, a customer's purchase and browse events must be
 * applied in one order whatever the batching (docs/guarantees.md): the
 * two topics' partitions of one number are merged by event time, which
 * needs the next event of both. When one of them has no event left in the
 * batch but data still to read (loy_clock_has_backlog), the other one's
 * remaining messages are held back: kept for the next batch (b->carry, up
 * to batch_max / 2), beyond that released and their partition sought back
 * to them on consumer (which may be NULL in tests). Held messages are not
 * counted, applied, dead-lettered or committed in this batch. */
void loy_collect_decode(loy_batch_t *b, rd_kafka_t *consumer);

/* Fills b->order: a merge by event time of the partitions' runs, each run
 * kept in offset order; at equal times purchases first, then by partition.
 * No I/O. */
void loy_collect_merge_order(loy_batch_t *b);

/* Seeks every partition of the batch (and of the messages held back) back
 * to its first message and drops both: they are consumed again (partitions
 * no longer owned are left to their new owner). next, when not NULL, is
 * the batch polled after b: dropped too, its partitions sought back to the
 * earliest message of the two. */
void loy_collect_rewind(loy_batch_t *b, loy_batch_t *next,
                        rd_kafka_t *consumer);

#endif
