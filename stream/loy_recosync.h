/*
 * loy_recosync: the shared recommender model (docs/recommendations.md).
 * The local model's co-occurrence increments go to Redis every
 * reco.flush.ms (only pairs that stand in a local neighbour list); then
 * the neighbour lists of the items of that flush are rebuilt from the
 * counts all processes added up and taken back into the local model:
 * several processes, one model.
 */
#ifndef LOY_RECOSYNC_H
#define LOY_RECOSYNC_H

#include <stdint.h>

#include "../models/loy_reco.h"
#include "../state/loy_store.h"

typedef struct loy_recosync loy_recosync_t;

/* For model reco (borrowed; NULL: every call does nothing), flushing every
 * flush_ms and rebuilding at most refresh_items lists a flush. NULL on no
 * memory. Free with loy_recosync_destroy() (NULL ok). */
loy_recosync_t *loy_recosync_create(loy_reco_t *reco, int flush_ms,
                                    int refresh_items);
void loy_recosync_destroy(loy_recosync_t *s);

/* Flushes and refreshes through store when flush_ms has passed since the
 * last flush (wall clock), or now with force; counts are decayed to event
 * time clock_ms. A flush that fails keeps the increments for the next one
 * (logged, not returned); so does one while an attempt is staged. */
void loy_recosync_run(loy_recosync_t *s, loy_store_t *store, int64_t clock_ms,
                      int force);
/* 1 when the next loy_recosync_run() would flush (flush_ms passed). It
 * flushes nothing while the model has a stage open (loy_reco_staging):
 * the processor then lets one batch go alone now and again. */
int loy_recosync_due(const loy_recosync_t *s);

/* Increments sent, neighbour lists rebuilt, and pair increments left out
 * (pairs in no local neighbour list at flush time), since creation. */
int64_t loy_recosync_flushed(const loy_recosync_t *s);
int64_t loy_recosync_refreshed(const loy_recosync_t *s);
int64_t loy_recosync_skipped(const loy_recosync_t *s);

#endif
