/*
 * loy_agg: a batch's aggregates (daily KPIs, segment and histogram
 * counts), summed per batch and written once with a fence of their own
 * (loy_store_write_batch), and the fences that make each event, each
 * silence check and each customer's count move count in them exactly once.
 *
 * Why a fence of their own: a sum is not idempotent, and the batch's
 * aggregates land before its customers (so a customer never gets ahead of
 * the aggregates). A crash in between leaves aggregates that already hold
 * what the customers do not, so the redo applies those events to the
 * customers again but must leave them out of the sums. What is in:
 *   - every event of input partition (topic, p) up to the offset fence
 *     "o:<topic>:<p>";
 *   - every silence check listed in "f:<p>" (the checks of the last batch
 *     that fired any there, plus those of a failed batch not fired again
 *     since): a check is identified by its customer and due time, which a
 *     redo reproduces, since the customer's hash did not move on.
 * Items are accounted one by one (the caller says which item it is on
 * before the item's moves), so a customer whose batch mixes items already
 * counted and new ones is summed right.
 *
 * Counts are not sums of items: a customer's segment is a rank against the
 * population as it stood when the customer was scored, which a redo need
 * not reproduce. So the script that moves a customer's counts also lists
 * where it moved them to ("v:<p>": segment and bins per customer), and a
 * redo starts that customer's move from the list, not from its hash (which
 * may still hold the state from before the failed batch). Then the counts
 * always equal what the customers' hashes say once these are written,
 * whatever the redo computes. An entry goes when its customer's hash is
 * written (or is found to hold the same).
 *
 * The offset fences are also checked when written: each must still hold
 * what this process last wrote, so a member the group gave up on cannot
 * add its stale batch (LOY_STORE_ERR_FENCED).
 *
 * No Kafka here; the caller passes topic names and partitions. Not
 * thread-safe.
 */
#ifndef LOY_AGG_H
#define LOY_AGG_H

#include <stdint.h>

#include "../state/loy_store.h"

typedef struct loy_agg loy_agg_t;

loy_agg_t *loy_agg_new(void);
void loy_agg_destroy(loy_agg_t *a);

/* The fence fields of the given input partitions (offset fences per topic
 * and partition, fire lists per partition number) for loy_store_fence_get:
 * *fields is owned by a, valid until the next call. -1 out of memory. */
int loy_agg_fence_fields(loy_agg_t *a, const char *const *topics,
                         const int32_t *parts, int n,
                         const char *const **fields, int *nfields);
/* Takes the values read for the fields of the last loy_agg_fence_fields
 * (NULL: absent) as what the aggregates hold; values stay the caller's.
 * -1 when a value does not parse (errstr filled). */
int loy_agg_fence_load(loy_agg_t *a, char *const *values, char *errstr,
                       size_t errstr_size);
/* The checks the loaded lists hold: each is still owed to its customer
 * only while the customer's hash is absent or has next_check_ms at or
 * before its due time (a check that reached the hash moved it past, or to
 * 0). The caller reads the
 * hashes and calls loy_agg_owed_settle with owed[i] 1 for those still
 * owed; the others are dropped (they would be written again and again). */
int loy_agg_owed_count(const loy_agg_t *a);
void loy_agg_owed_get(const loy_agg_t *a, int i, const char **cid,
                      int64_t *due_ms);
void loy_agg_owed_settle(loy_agg_t *a, const int *owed);
/* 1 when fences were loaded and no failure since made them doubtful. */
int loy_agg_fences_known(const loy_agg_t *a);
/* After a write that failed: the aggregates may or may not have landed. */
void loy_agg_fences_forget(loy_agg_t *a);

/* Ownership (loy_store_take_over). The owner field of an input
 * partition, in <ns>:{agg}:fence. */
#define LOY_OWNER_FIELD_MAX (LOY_SLOT_NAME_MAX + 10)
void loy_agg_owner_field(const char *topic, int32_t partition, char *buf,
                         size_t size);
/* With an owner set, every batch that writes checks that the owner fields
 * of all the partitions loaded by loy_agg_fence_fields still name it.
 * NULL: no check. -1 out of memory. */
int loy_agg_set_owner(loy_agg_t *a, const char *owner);
/* A partition Kafka assigned to this process: taken over (see _fields)
 * before the fences are next loaded. -1 out of memory. */
int loy_agg_take_over(loy_agg_t *a, const char *topic, int32_t partition);
/* After loy_agg_fence_fields: the owner fields of its partitions that are
 * to be taken over, for loy_store_take_over; *fields is owned by a, valid
 * until the next call. Then loy_agg_takeover_done once they were. -1 out
 * of memory. */
int loy_agg_takeover_fields(loy_agg_t *a, const char *const **fields, int *n);
void loy_agg_takeover_done(loy_agg_t *a);

/* What the segment and histogram counts hold of one customer (-1: it is
 * counted nowhere there). */
typedef struct loy_agg_counted {
        int seg;
        int bins[LOY_DIM__COUNT];
} loy_agg_counted_t;

/* Where customer c counts as its hash (or the cache, which agrees with it)
 * has it; existed 0: a customer new to Redis, counted nowhere. */
void loy_agg_counted_of(const loy_cust_t *c, int existed, loy_agg_counted_t *v);
/* Replaces *v (what cid's hash says) with what the counts hold when the
 * loaded lists name cid: 1 then, else 0. */
int loy_agg_counted_get(loy_agg_t *a, const char *cid, loy_agg_counted_t *v);

/* Starts a batch: sums to zero. */
void loy_agg_begin(loy_agg_t *a);

/* The item being applied. An event: returns 1 when the aggregates already
 * hold it (its moves are then not summed). Every message of the batch
 * (events or not) should be noted, so the fence covers it. */
int loy_agg_on_event(loy_agg_t *a, const char *topic, int32_t partition,
                     int64_t offset);
void loy_agg_note_offset(loy_agg_t *a, const char *topic, int32_t partition,
                         int64_t offset);
/* A silence check of customer cid due at due_ms, accounted under timer
 * partition part: recorded for the fence; returns 1 when already held.
 * -1 out of memory. */
int loy_agg_on_fire(loy_agg_t *a, const char *cid, int64_t due_ms,
                    int32_t part);

/* A KPI delta of the current item (ignored when it is already held). -1
 * out of memory. field must outlive the batch (static names). */
int loy_agg_kpi(loy_agg_t *a, int64_t day_ms, const char *field, int64_t delta);
/* 1 when the current item is already held (the caller may skip work). */
int loy_agg_held(const loy_agg_t *a);

/* A customer the batch writes, in timer partition part: its counts move
 * from *from (as loy_agg_counted_of and _get said before the batch) to
 * *to. -1 out of memory. */
int loy_agg_cust(loy_agg_t *a, const char *cid, int32_t part,
                 const loy_agg_counted_t *from, const loy_agg_counted_t *to);

/* The batch's aggregates and fences for loy_store_write_batch: *out points
 * into a, valid until the next call on a. NULL when there is nothing to
 * write. -1 out of memory. */
int loy_agg_build(loy_agg_t *a, const loy_batch_agg_t **out);
/* The batch was written: its fences are what the aggregates now hold. */
void loy_agg_written(loy_agg_t *a);

#endif
