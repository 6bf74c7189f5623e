/*
 * loy_load: step 3 of a batch (DESIGN.md), what must be in memory before
 * events are applied: every customer the batch's events and due timers
 * touch (those not in the cache read in one pipelined round trip, their
 * recommendation histories in one more), the silence checks now due on the
 * owned partitions, and the aggregates' fences.
 *
 * Store errors are returned as the store's codes (LOY_STORE_ERR ...), with
 * errstr filled.
 */
#ifndef LOY_LOAD_H
#define LOY_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "loy_batch.h"

/* Touches the customer of every event and every due timer (quarantined
 * ones left out; timers set by_timer, their partition and due time), then
 * loads those the cache did not have and notes where the counts hold each
 * of them. LOY_STORE_OK or an error code. */
int loy_load_batch(loy_batch_t *b, char *errstr, size_t errstr_size);
/* loy_load_batch in two steps, so the events can be applied before the due
 * timers are known: the events' customers, then (after loy_apply_events)
 * the timers'. The touched order, and so the write, is the same. */
int loy_load_events(loy_batch_t *b, char *errstr, size_t errstr_size);
int loy_load_due(loy_batch_t *b, char *errstr, size_t errstr_size);

/* The silence checks due at or before clock_ms (each partition's own limit,
 * loy_clock_timer_limit) on the purchase partitions the consumer (borrowed)
 * is assigned, at most timer_batch, appended to b's timers. 0, or -1 with
 * errstr (the timers already fetched stay: loy_batch_drop_timers()). */
int loy_load_timers(loy_batch_t *b, rd_kafka_t *consumer, int64_t clock_ms,
                    char *errstr, size_t errstr_size);

/* Reads back what the aggregates hold for the partitions the consumer is
 * assigned (after an assignment, or a write that may have landed in
 * part), and keeps of the loaded checks only those still owed. On an error
 * the fences stay unknown. LOY_STORE_OK or an error code. */
int loy_load_fences(loy_batch_t *b, rd_kafka_t *consumer, char *errstr,
                    size_t errstr_size);

#endif
