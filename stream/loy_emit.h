/*
 * loy_emit: steps 9 and 10 of a batch (DESIGN.md), after its write landed.
 * The outbox's triggers are produced (idempotent producer, key = customer
 * id); each delivery report that confirms one queues its id, and the
 * queued ids are removed from the outbox in Redis (loy_emit_ack). A
 * trigger that was not delivered stays in the outbox and is sent again,
 * same id and key, by the next outbox scan (loy_emit_resend). Then the
 * batch's offsets are stored for the consumer's commit.
 *
 * The emitter holds no Kafka handle: producer and consumer are passed in
 * (borrowed). Not thread-safe: delivery reports must be served
 * (rd_kafka_poll) by the thread that calls the rest.
 */
#ifndef LOY_EMIT_H
#define LOY_EMIT_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "loy_batch.h"

typedef struct loy_emit loy_emit_t;

/* Triggers go to topic (borrowed, must outlive it); codec (borrowed)
 * reads the customer back from a re-sent trigger; stats (borrowed) counts
 * triggers_out and triggers_acked. NULL on no memory. */
loy_emit_t *loy_emit_create(const char *topic, loy_codec_t *codec,
                            loy_proc_stats_t *stats);
/* Frees the ids still queued (NULL ok). */
void loy_emit_destroy(loy_emit_t *e);

/* Produces b's outbox through producer. A trigger the producer refuses
 * stays in the outbox (Redis has it) and marks the emitter failed. */
void loy_emit_batch(loy_emit_t *e, rd_kafka_t *producer, const loy_batch_t *b);

/* A delivery report of a trigger: m->_private is its id (malloc'ed by this
 * module; taken over here). Delivered: queued for loy_emit_ack. Failed: the
 * emitter is marked failed, the outbox keeps the trigger. */
void loy_emit_delivered(loy_emit_t *e, const rd_kafka_message_t *m);

/* Removes the delivered triggers from the outbox in Redis and forgets
 * them (ids the store could not remove are sent again later, same ids). */
void loy_emit_ack(loy_emit_t *e, loy_store_t *store);

/* Re-sends every trigger the outbox in Redis holds, keyed by the customer
 * it was first sent for. 0 when all went to the producer: the emitter is
 * no longer failed. -1 with errstr ("producer refused", or the store's
 * error): it stays failed. */
int loy_emit_resend(loy_emit_t *e, rd_kafka_t *producer, loy_store_t *store,
                    char *errstr, size_t errstr_size);

/* 1 since a trigger was not delivered (or refused), until a resend went
 * through. */
int loy_emit_failed(const loy_emit_t *e);

/* A write of b failed: its triggers may be in the outbox with their
 * customers written, so that no redo makes them again (the customers'
 * offsets skip those events). Their ids are kept until
 * loy_emit_suspects_send. -1 out of memory. */
int loy_emit_suspect(loy_emit_t *e, const loy_batch_t *b);
/* After a batch b was written and emitted: sends those kept ids that the
 * outbox holds and b did not send itself (one HMGET), then forgets them.
 * Kept when Redis fails: tried again after the next batch. */
void loy_emit_suspects_send(loy_emit_t *e, rd_kafka_t *producer,
                            loy_store_t *store, const loy_batch_t *b);

/* Stores, for the consumer's next commit, the offset after the last
 * message of each partition in b. */
void loy_emit_store_offsets(const loy_batch_t *b, rd_kafka_t *consumer);

#endif
