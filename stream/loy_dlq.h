/*
 * loy_dlq: the dead-letter stage of a batch. A message that does not decode
 * or validate, or that the processor cannot apply, is copied to the
 * dead-letter topic with its reason (loy_kafka_deadletter: bytes intact, or
 * cut to fit with loy.truncated), once per message whatever the redos of
 * the batch. Before the batch's offsets are committed every dead letter
 * must be confirmed by Kafka; one that is not is sent again on its own
 * (smaller when a broker refused it as too large), so no bad message is
 * lost and none is sent twice.
 *
 * Slots are the positions of the messages in the batch (0 .. capacity-1).
 * The producer's delivery reports reach loy_dlq_delivered() through the
 * message opaque; loy_dlq_owns() tells a dead letter's opaque from others.
 */
#ifndef LOY_DLQ_H
#define LOY_DLQ_H

#include <signal.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

typedef struct loy_dlq loy_dlq_t;

/* For batches of up to capacity messages, sent to topic (copied) through
 * producer (borrowed; must outlive the stage). NULL on no memory. Free
 * with loy_dlq_destroy() after the producer has been flushed. */
loy_dlq_t *loy_dlq_create(rd_kafka_t *producer, const char *topic, int capacity,
                          int backoff_max_ms);
void loy_dlq_destroy(loy_dlq_t *d);

/* Dead-letters msg (borrowed until the batch is reset), the message in
 * slot i, for reason why. Returns 1 when it was sent now, 0 when slot i
 * was dead-lettered already in this batch. A producer that refuses it
 * locally does not fail the call: loy_dlq_deliver() sends it again. */
int loy_dlq_send(loy_dlq_t *d, int i, const rd_kafka_message_t *msg,
                 const char *why);

/* Whether slot i was dead-lettered in this batch. */
int loy_dlq_is_dead(const loy_dlq_t *d, int i);

/* 1 when opaque is one of this stage's delivery-report opaques. */
int loy_dlq_owns(const loy_dlq_t *d, const void *opaque);

/* A delivery report for one of this stage's messages (m->_private). */
void loy_dlq_delivered(loy_dlq_t *d, const rd_kafka_message_t *m);

/* Waits until every dead letter of the batch (msgs[0 .. n-1], borrowed)
 * is confirmed, re-sending failed ones with back-off. 0, or -1 when
 * *running dropped first (after a short grace for those on their way):
 * the batch must then not be committed. */
int loy_dlq_deliver(loy_dlq_t *d, rd_kafka_message_t *const *msgs, int n,
                    volatile sig_atomic_t *running);

/* Forgets the batch's n slots (a new batch starts). */
void loy_dlq_reset(loy_dlq_t *d, int n);

#endif
