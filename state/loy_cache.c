/* loy_cache: see loy_cache.h. Chained hash + intrusive LRU list. */
#include "loy_cache.h"

#include "../features/loy_hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
        loy_cust_t cust;           /* first: a customer is its entry */
        struct entry *hnext;       /* hash chain */
        struct entry *prev, *next; /* LRU: head = most recent */
        uint64_t hash;
        max_align_t ext[]; /* ext_size bytes for the caller */
} entry_t;

struct loy_cache {
        size_t ext_size;
        entry_t **buckets;
        size_t nbuckets; /* power of two */
        size_t n, capacity;
        entry_t *head, *tail;
};

/* Keys are ids as loy_feat_init stores them: at most LOY_ID_MAX bytes, so
 * a longer id finds the customer it was stored as. */
static uint64_t hash_id(const char *s) {
        return loy_hash64(s, strnlen(s, LOY_ID_MAX), 0);
}

loy_cache_t *loy_cache_create(size_t capacity) {
        return loy_cache_create_ext(capacity, 0);
}

loy_cache_t *loy_cache_create_ext(size_t capacity, size_t ext_size) {
        loy_cache_t *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->ext_size = ext_size;
        c->capacity = capacity ? capacity : 1;
        /* grows with the entries, not sized by the capacity up front: a
         * huge configured bound must not cost memory before it is used */
        c->nbuckets = 16;
        c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
        if (!c->buckets) {
                free(c);
                return NULL;
        }
        return c;
}

/* Doubles the table when it is fuller than one entry per bucket; a batch
 * may put far more than the capacity. Failing to grow only costs speed. */
static void maybe_grow(loy_cache_t *c) {
        size_t nb = c->nbuckets * 2;
        entry_t **b;
        if (c->n <= c->nbuckets || nb < c->nbuckets)
                return;
        b = calloc(nb, sizeof(*b));
        if (!b)
                return;
        for (size_t i = 0; i < c->nbuckets; i++) {
                entry_t *e = c->buckets[i];
                while (e) {
                        entry_t *next = e->hnext;
                        e->hnext = b[e->hash & (nb - 1)];
                        b[e->hash & (nb - 1)] = e;
                        e = next;
                }
        }
        free(c->buckets);
        c->buckets = b;
        c->nbuckets = nb;
}

static void lru_unlink(loy_cache_t *c, entry_t *e) {
        if (e->prev)
                e->prev->next = e->next;
        else
                c->head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                c->tail = e->prev;
        e->prev = e->next = NULL;
}

static void lru_push_front(loy_cache_t *c, entry_t *e) {
        e->prev = NULL;
        e->next = c->head;
        if (c->head)
                c->head->prev = e;
        c->head = e;
        if (!c->tail)
                c->tail = e;
}

static entry_t *lookup(loy_cache_t *c, const char *cid, uint64_t h) {
        entry_t *e = c->buckets[h & (c->nbuckets - 1)];
        for (; e; e = e->hnext)
                if (e->hash == h && !strncmp(e->cust.id, cid, LOY_ID_MAX))
                        return e;
        return NULL;
}

/* Unhashes, unlinks and frees e. */
static void drop(loy_cache_t *c, entry_t *e) {
        entry_t **slot = &c->buckets[e->hash & (c->nbuckets - 1)];
        while (*slot != e)
                slot = &(*slot)->hnext;
        *slot = e->hnext;
        lru_unlink(c, e);
        free(e);
        c->n--;
}

loy_cust_t *loy_cache_get(loy_cache_t *c, const char *cid) {
        entry_t *e = lookup(c, cid, hash_id(cid));
        if (!e)
                return NULL;
        lru_unlink(c, e);
        lru_push_front(c, e);
        return &e->cust;
}

loy_cust_t *loy_cache_put(loy_cache_t *c, const char *cid, int *is_new) {
        uint64_t h = hash_id(cid);
        entry_t *e = lookup(c, cid, h);
        if (is_new)
                *is_new = 0;
        if (e) {
                lru_unlink(c, e);
                lru_push_front(c, e);
                return &e->cust;
        }
        e = malloc(sizeof(*e) + c->ext_size);
        if (!e)
                return NULL;
        memset(e->ext, 0, c->ext_size);
        loy_feat_init(&e->cust, cid);
        e->hash = h;
        e->hnext = c->buckets[h & (c->nbuckets - 1)];
        c->buckets[h & (c->nbuckets - 1)] = e;
        lru_push_front(c, e);
        c->n++;
        maybe_grow(c);
        if (is_new)
                *is_new = 1;
        return &e->cust;
}

void loy_cache_remove(loy_cache_t *c, const char *cid) {
        entry_t *e = lookup(c, cid, hash_id(cid));
        if (e)
                drop(c, e);
}

void loy_cache_trim(loy_cache_t *c) {
        while (c->n > c->capacity && c->tail)
                drop(c, c->tail);
}

void loy_cache_clear(loy_cache_t *c) {
        entry_t *e = c->head;
        while (e) {
                entry_t *next = e->next;
                free(e);
                e = next;
        }
        memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
        c->head = c->tail = NULL;
        c->n = 0;
}

size_t loy_cache_size(const loy_cache_t *c) {
        return c->n;
}

void loy_cache_destroy(loy_cache_t *c) {
        if (!c)
                return;
        loy_cache_clear(c);
        free(c->buckets);
        free(c);
}

void *loy_cache_ext(loy_cust_t *cust) {
        return ((entry_t *)(void *)cust)->ext;
}
