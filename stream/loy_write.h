/*
 * loy_write: step 8 of a batch (DESIGN.md). Builds, from what the batch did
 * to its customers, one loy_cust_write_t per customer something happened
 * to (a replayed event changes nothing, not even derived fields), their
 * counts' moves and the batch's aggregates (loy_agg), the outbox entries,
 * and hands it all to the store in one loy_store_write_batch -- unless the
 * batch was held so long that its partitions may have moved to another
 * process.
 */
#ifndef LOY_WRITE_H
#define LOY_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "loy_batch.h"

/* loy_write_batch: not written, held past the session timeout since its
 * poll (b->stale_ms); read it again. Apart from the store's codes. */
#define LOY_WRITE_STALE 1

/* Fills b->entries from the outbox and b->writes (*nwrites of them) from
 * the touched customers, moves their counts in the aggregates and builds
 * these (*agg as loy_agg_build: NULL when there is nothing to add).
 * LOY_STORE_OK, or LOY_STORE_ERR with errstr (out of memory). */
int loy_write_build(loy_batch_t *b, int *nwrites, const loy_batch_agg_t **agg,
                    char *errstr, size_t errstr_size);

/* loy_write_build, then the store's write at clock_ms: LOY_STORE_OK (also
 * when there was nothing to write), LOY_WRITE_STALE, or the store's
 * error code, with errstr. */
int loy_write_batch(loy_batch_t *b, int64_t clock_ms, char *errstr,
                    size_t errstr_size);
/* loy_write_batch up to the customers sent (loy_store_write_batch_send):
 * *sent 1 when their replies are still to be read with
 * loy_store_write_recv(b->store). */
int loy_write_batch_send(loy_batch_t *b, int64_t clock_ms, int *sent,
                         char *errstr, size_t errstr_size);

#endif
