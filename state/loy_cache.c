/* loy_cache: see loy_cache.h. Chained hash + intrusive LRU list. */
#include "loy_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
        loy_cust_t cust;
        struct entry *hnext;           /* hash chain */
        struct entry *prev, *next;     /* LRU: head = most recent */
        uint64_t hash;
} entry_t;

struct loy_cache {
        entry_t **buckets;
        size_t nbuckets;               /* power of two */
        size_t n, capacity;
        entry_t *head, *tail;
};

static uint64_t hash_str(const char *s) {
        uint64_t h = 1469598103934665603ULL;
        while (*s) {
                h ^= (unsigned char)*s++;
                h *= 1099511628211ULL;
        }
        return h;
}

loy_cache_t *loy_cache_create(size_t capacity) {
        loy_cache_t *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->capacity = capacity ? capacity : 1;
        c->nbuckets = 16;
        while (c->nbuckets < c->capacity * 2)
                c->nbuckets *= 2;
        c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
        if (!c->buckets) {
                free(c);
                return NULL;
        }
        return c;
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

static entry_t *lookup(loy_cache_t *c, const char *cid, uint64_t h,
                       entry_t ***slotp) {
        entry_t **slot = &c->buckets[h & (c->nbuckets - 1)];
        for (; *slot; slot = &(*slot)->hnext)
                if ((*slot)->hash == h && !strcmp((*slot)->cust.id, cid)) {
                        if (slotp)
                                *slotp = slot;
                        return *slot;
                }
        return NULL;
}

static void drop(loy_cache_t *c, entry_t **slot) {
        entry_t *e = *slot;
        *slot = e->hnext;
        lru_unlink(c, e);
        free(e);
        c->n--;
}

loy_cust_t *loy_cache_get(loy_cache_t *c, const char *cid) {
        entry_t *e = lookup(c, cid, hash_str(cid), NULL);
        if (!e)
                return NULL;
        lru_unlink(c, e);
        lru_push_front(c, e);
        return &e->cust;
}

loy_cust_t *loy_cache_put(loy_cache_t *c, const char *cid, int *is_new) {
        uint64_t h = hash_str(cid);
        entry_t *e = lookup(c, cid, h, NULL);
        *is_new = 0;
        if (e) {
                lru_unlink(c, e);
                lru_push_front(c, e);
                return &e->cust;
        }
        e = malloc(sizeof(*e));
        if (!e)
                return NULL;
        loy_feat_init(&e->cust, cid);
        e->hash = h;
        e->hnext = c->buckets[h & (c->nbuckets - 1)];
        c->buckets[h & (c->nbuckets - 1)] = e;
        lru_push_front(c, e);
        c->n++;
        *is_new = 1;
        return &e->cust;
}

void loy_cache_remove(loy_cache_t *c, const char *cid) {
        entry_t **slot;
        if (lookup(c, cid, hash_str(cid), &slot))
                drop(c, slot);
}

void loy_cache_trim(loy_cache_t *c) {
        while (c->n > c->capacity && c->tail) {
                entry_t **slot;
                entry_t *victim = c->tail;
                if (!lookup(c, victim->cust.id, victim->hash, &slot))
                        break; /* cannot happen: every listed entry is hashed */
                drop(c, slot);
        }
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
