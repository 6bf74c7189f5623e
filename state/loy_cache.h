/*
 * loy_cache: the bounded local cache of customers (LRU). Redis holds the
 * truth; the cache only saves the load round trip for customers seen
 * recently. It is valid only while this process owns the customers'
 * partitions and every write it made succeeded: the processor clears it on
 * a rebalance and after a failed write.
 */
#ifndef LOY_CACHE_H
#define LOY_CACHE_H

#include <stddef.h>

#include "../features/loy_feat.h"

typedef struct loy_cache loy_cache_t;

/* NULL on no memory. capacity >= 1. Free with loy_cache_destroy(). */
loy_cache_t *loy_cache_create(size_t capacity);
void loy_cache_destroy(loy_cache_t *cache);

/* The same, with ext_size bytes of the caller's own per customer (zeroed
 * when the customer enters the cache, freed with it): state that lives
 * beside the customer, such as its recommendation history. */
loy_cache_t *loy_cache_create_ext(size_t capacity, size_t ext_size);

/* The ext block of a customer returned by this cache. */
void *loy_cache_ext(loy_cust_t *cust);

/* The cached customer (marked most recently used), or NULL. The pointer
 * stays valid until the next loy_cache_trim() or loy_cache_clear(). */
loy_cust_t *loy_cache_get(loy_cache_t *cache, const char *cid);

/* A slot for cid, new (loy_feat_init'ed, *is_new = 1) or existing. May
 * exceed the capacity until the next trim, so every customer of a batch
 * stays valid through the batch. NULL on no memory. is_new may be NULL.
 * Like loy_feat_init, ids are keyed by their first LOY_ID_MAX bytes. */
loy_cust_t *loy_cache_put(loy_cache_t *cache, const char *cid, int *is_new);

/* Removes cid if present. */
void loy_cache_remove(loy_cache_t *cache, const char *cid);

/* Evicts least recently used customers down to the capacity. */
void loy_cache_trim(loy_cache_t *cache);
void loy_cache_clear(loy_cache_t *cache);
size_t loy_cache_size(const loy_cache_t *cache);

#endif
