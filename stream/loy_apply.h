/*
 * loy_apply: steps 4 and 5 of a batch (DESIGN.md): the batch's events
 * applied to their customers in the merged order, each skipped when the
 * customer's offset fence for its partition already holds it; the daily
 * KPIs of each event; and the silence checks due before each event and at
 * the batch's clock fired, each at its own due time. Every event and every
 * check is scored and decided (loy_evaluate). No Kafka: an event that
 * cannot be applied is dead-lettered through the batch.
 */
#ifndef LOY_APPLY_H
#define LOY_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "loy_batch.h"

/* Applies b's events in b->order to the customers loy_load_batch touched.
 * 0, or -1 with errstr (out of memory, a trigger that does not encode). */
int loy_apply_events(loy_batch_t *b, char *errstr, size_t errstr_size);

/* Then fires, for every touched customer who has bought, the checks due up
 * to what the clock at clock_ms allows on the customer's partition; a
 * fired timer of a customer who never bought is dropped. 0 or -1 with
 * errstr. */
int loy_apply_due(loy_batch_t *b, int64_t clock_ms, char *errstr,
                  size_t errstr_size);

/* The customer's next silence check after now: timer.first.days after the
 * last purchase, then every timer.every.days, until timer.max.days of
 * silence; 0 for none. */
int64_t loy_apply_next_check(const loy_config_t *conf, const loy_cust_t *c,
                             int64_t now);

#endif
