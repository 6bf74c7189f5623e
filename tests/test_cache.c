/*
 * loy_cache: put/get, exact LRU eviction order, recency refresh, the
 * capacity overshoot until trim, remove, clear, pointer stability, and
 * 100k random operations checked against a plain array model.
 */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "loy_cache.h"
#include "loy_feat.h"
#include "tu.h"

/* Exactly the ids of want[] (and nothing else of pool[]) are cached.
 * Probing with get refreshes recency: callers check last. */
static void expect_members(loy_cache_t *c, const char *const *pool, int np,
                           const char *const *want, int nw) {
        CU_ASSERT_EQUAL(loy_cache_size(c), (size_t)nw);
        for (int i = 0; i < np; i++) {
                int in = 0;
                loy_cust_t *cu;
                for (int j = 0; j < nw; j++)
                        if (!strcmp(pool[i], want[j]))
                                in = 1;
                cu = loy_cache_get(c, pool[i]);
                CU_ASSERT_EQUAL(cu != NULL, in);
                if ((cu != NULL) != in)
                        fprintf(stderr, "\n%s: %s\n", pool[i],
                                in ? "missing" : "should be gone");
                if (cu)
                        CU_ASSERT_STRING_EQUAL(cu->id, pool[i]);
        }
}

static void test_put_get(void) {
        loy_cache_t *c = loy_cache_create(4);
        loy_cust_t *a, *b, *x;
        int is_new = -1;

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 0);
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "a"));

        a = loy_cache_put(c, "a", &is_new);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_EQUAL(is_new, 1);
        CU_ASSERT_STRING_EQUAL(a->id, "a");
        CU_ASSERT_EQUAL(a->orders, 0);
        CU_ASSERT_EQUAL(a->nslots, 0);
        CU_ASSERT_EQUAL(a->last_event_ms, 0);
        a->orders = 5;
        a->gross_value = 12.5;

        b = loy_cache_put(c, "b", &is_new);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(is_new, 1);
        CU_ASSERT_PTR_NOT_EQUAL(a, b);
        CU_ASSERT_EQUAL(b->orders, 0);
        CU_ASSERT_EQUAL(loy_cache_size(c), 2);

        /* existing: same slot, data kept */
        is_new = -1;
        x = loy_cache_put(c, "a", &is_new);
        CU_ASSERT_PTR_EQUAL(x, a);
        CU_ASSERT_EQUAL(is_new, 0);
        CU_ASSERT_EQUAL(x->orders, 5);
        CU_ASSERT_EQUAL(x->gross_value, 12.5);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "a"), a);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "b"), b);
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "A"));
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "ab"));
        CU_ASSERT_PTR_NULL(loy_cache_get(c, ""));
        CU_ASSERT_EQUAL(loy_cache_size(c), 2);

        /* is_new may be NULL; the empty id is an id like any other */
        x = loy_cache_put(c, "", NULL);
        CU_ASSERT_PTR_NOT_NULL(x);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, ""), x);
        CU_ASSERT_PTR_EQUAL(loy_cache_put(c, "a", NULL), a);
        CU_ASSERT_EQUAL(loy_cache_size(c), 3);

        /* a trim under the capacity evicts nothing */
        loy_cache_trim(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 3);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "a"), a);
        loy_cache_destroy(c);
        loy_cache_destroy(NULL);
}

static void test_lru_trim(void) {
        static const char *const pool[] = {"a", "b", "c", "d", "e"};
        static const char *const keep[] = {"c", "d", "e"};
        loy_cache_t *c = loy_cache_create(3);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int i = 0; i < 5; i++)
                CU_ASSERT_PTR_NOT_NULL(loy_cache_put(c, pool[i], NULL));
        /* over the capacity until trim */
        CU_ASSERT_EQUAL(loy_cache_size(c), 5);
        loy_cache_trim(c);
        /* the two least recently used go: a, then b */
        expect_members(c, pool, 5, keep, 3);
        loy_cache_destroy(c);

        /* capacity 1 keeps the most recent only */
        c = loy_cache_create(1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        loy_cache_put(c, "a", NULL);
        loy_cache_put(c, "b", NULL);
        loy_cache_get(c, "a");
        loy_cache_trim(c);
        {
                static const char *const one[] = {"a"};
                expect_members(c, pool, 5, one, 1);
        }
        loy_cache_destroy(c);

        /* capacity 0 behaves as 1 */
        c = loy_cache_create(0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        loy_cache_put(c, "a", NULL);
        loy_cache_put(c, "b", NULL);
        loy_cache_trim(c);
        {
                static const char *const one[] = {"b"};
                expect_members(c, pool, 5, one, 1);
        }
        loy_cache_destroy(c);
}

static void test_recency(void) {
        static const char *const pool[] = {"a", "b", "c", "d", "e", "f"};
        loy_cache_t *c = loy_cache_create(3);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        loy_cache_put(c, "a", NULL);
        loy_cache_put(c, "b", NULL);
        loy_cache_put(c, "c", NULL);
        /* order (old -> new): a b c; get a: b c a */
        CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, "a"));
        loy_cache_put(c, "d", NULL); /* b c a d */
        loy_cache_trim(c);           /* c a d */
        /* a miss changes nothing */
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "b"));
        /* put of an existing one refreshes it too */
        loy_cache_put(c, "c", NULL); /* a d c */
        loy_cache_put(c, "e", NULL); /* a d c e */
        loy_cache_put(c, "f", NULL); /* a d c e f */
        loy_cache_trim(c);           /* c e f */
        {
                static const char *const keep[] = {"c", "e", "f"};
                expect_members(c, pool, 6, keep, 3);
        }
        /* expect_members probed a..f in order: now c e f */
        loy_cache_put(c, "a", NULL); /* c e f a */
        loy_cache_trim(c);           /* e f a */
        {
                static const char *const keep[] = {"a", "e", "f"};
                expect_members(c, pool, 6, keep, 3);
        }
        loy_cache_destroy(c);
}

/* A batch may hold more customers than the capacity; each keeps its own
 * slot until the trim, which keeps the newest. */
static void test_overshoot(void) {
        char id[16];
        loy_cust_t *p[10];
        loy_cache_t *c = loy_cache_create(2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int i = 0; i < 10; i++) {
                int is_new = 0;
                snprintf(id, sizeof(id), "c%d", i);
                p[i] = loy_cache_put(c, id, &is_new);
                CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
                CU_ASSERT_EQUAL(is_new, 1);
                p[i]->orders = 100 + i;
        }
        CU_ASSERT_EQUAL(loy_cache_size(c), 10);
        for (int i = 0; i < 10; i++) {
                snprintf(id, sizeof(id), "c%d", i);
                CU_ASSERT_EQUAL(p[i]->orders, 100 + i);
                CU_ASSERT_STRING_EQUAL(p[i]->id, id);
                for (int j = 0; j < i; j++)
                        CU_ASSERT_PTR_NOT_EQUAL(p[i], p[j]);
        }
        /* get refreshed c0..c9 in that order: c8 and c9 stay */
        for (int i = 0; i < 10; i++) {
                snprintf(id, sizeof(id), "c%d", i);
                CU_ASSERT_PTR_EQUAL(loy_cache_get(c, id), p[i]);
        }
        loy_cache_trim(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 2);
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "c7"));
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "c8"), p[8]);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "c9"), p[9]);
        CU_ASSERT_EQUAL(p[8]->orders, 108);
        CU_ASSERT_EQUAL(p[9]->orders, 109);
        loy_cache_destroy(c);
}

static void test_remove(void) {
        static const char *const pool[] = {"a", "b", "c", "d", "e"};
        loy_cache_t *c = loy_cache_create(2);
        int is_new = 0;
        loy_cust_t *x;
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int i = 0; i < 4; i++)
                loy_cache_put(c, pool[i], NULL); /* a b c d */
        loy_cache_remove(c, "b");                /* middle: a c d */
        CU_ASSERT_EQUAL(loy_cache_size(c), 3);
        loy_cache_remove(c, "d");  /* newest: a c */
        loy_cache_remove(c, "zz"); /* absent: no-op */
        loy_cache_remove(c, "b");  /* twice: no-op */
        CU_ASSERT_EQUAL(loy_cache_size(c), 2);
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "b"));
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "d"));
        loy_cache_put(c, "e", NULL); /* a c e */
        loy_cache_trim(c);           /* c e */
        {
                static const char *const keep[] = {"c", "e"};
                expect_members(c, pool, 5, keep, 2);
        }
        /* c e: remove the oldest, then the only one */
        loy_cache_remove(c, "c");
        loy_cache_remove(c, "e");
        CU_ASSERT_EQUAL(loy_cache_size(c), 0);
        loy_cache_trim(c);
        /* a removed id comes back new */
        x = loy_cache_put(c, "b", &is_new);
        CU_ASSERT_PTR_NOT_NULL(x);
        CU_ASSERT_EQUAL(is_new, 1);
        CU_ASSERT_EQUAL(loy_cache_size(c), 1);
        loy_cache_destroy(c);
}

static void test_clear(void) {
        char id[16];
        int is_new = 0;
        loy_cust_t *x;
        loy_cache_t *c = loy_cache_create(8);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int i = 0; i < 50; i++) {
                snprintf(id, sizeof(id), "%d", i);
                loy_cache_put(c, id, NULL)->orders = i;
        }
        loy_cache_clear(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 0);
        for (int i = 0; i < 50; i++) {
                snprintf(id, sizeof(id), "%d", i);
                CU_ASSERT_PTR_NULL(loy_cache_get(c, id));
        }
        loy_cache_clear(c);
        /* usable afterwards, entries start over */
        x = loy_cache_put(c, "7", &is_new);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_EQUAL(is_new, 1);
        CU_ASSERT_EQUAL(x->orders, 0);
        loy_cache_put(c, "8", NULL);
        loy_cache_trim(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 2);
        loy_cache_destroy(c);
}

/* A customer pointer survives any number of puts (table growth) and gets
 * until the trim. */
static void test_pointer_stable(void) {
        char id[32];
        loy_cust_t *keep, *mid = NULL;
        loy_cache_t *c = loy_cache_create(4);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        keep = loy_cache_put(c, "keep", NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
        keep->orders = 42;
        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof(id), "cust-%d", i);
                CU_ASSERT_PTR_NOT_NULL_FATAL(loy_cache_put(c, id, NULL));
                if (i == 10000)
                        mid = loy_cache_get(c, id);
        }
        CU_ASSERT_EQUAL(loy_cache_size(c), 20001);
        /* written through the old pointer, seen through a new lookup */
        keep->orders++;
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "keep"), keep);
        CU_ASSERT_EQUAL(keep->orders, 43);
        CU_ASSERT_STRING_EQUAL(keep->id, "keep");
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, "cust-10000"), mid);
        for (int i = 0; i < 20000; i += 997) {
                snprintf(id, sizeof(id), "cust-%d", i);
                CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, id));
        }
        loy_cache_trim(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 4);
        /* recency: cust-19940 (i = 20*997) last probed, then cust-18943,
         * cust-17946, cust-16949 */
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "keep"));
        CU_ASSERT_PTR_NULL(loy_cache_get(c, "cust-19999"));
        CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, "cust-19940"));
        CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, "cust-18943"));
        CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, "cust-17946"));
        CU_ASSERT_PTR_NOT_NULL(loy_cache_get(c, "cust-16949"));
        loy_cache_destroy(c);
}

/* Ids longer than LOY_ID_MAX are stored cut, like loy_feat_init cuts them:
 * the long and the cut id name the same one customer. */
static void test_long_id(void) {
        char longid[LOY_ID_MAX + 40], cut[LOY_ID_MAX + 1];
        loy_cust_t *x;
        int is_new = 0;
        loy_cache_t *c = loy_cache_create(4);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (size_t i = 0; i < sizeof(longid) - 1; i++)
                longid[i] = (char)('a' + i % 26);
        longid[sizeof(longid) - 1] = '\0';
        memcpy(cut, longid, LOY_ID_MAX);
        cut[LOY_ID_MAX] = '\0';

        x = loy_cache_put(c, longid, &is_new);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_EQUAL(is_new, 1);
        CU_ASSERT_STRING_EQUAL(x->id, cut);
        CU_ASSERT_PTR_EQUAL(loy_cache_put(c, longid, &is_new), x);
        CU_ASSERT_EQUAL(is_new, 0);
        CU_ASSERT_EQUAL(loy_cache_size(c), 1);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, longid), x);
        CU_ASSERT_PTR_EQUAL(loy_cache_get(c, cut), x);
        /* one character shorter is another customer */
        cut[LOY_ID_MAX - 1] = '\0';
        CU_ASSERT_PTR_NULL(loy_cache_get(c, cut));
        loy_cache_remove(c, longid);
        CU_ASSERT_EQUAL(loy_cache_size(c), 0);
        loy_cache_destroy(c);
}

/* The configured maximum bound does not cost memory up front. */
static void test_huge_capacity(void) {
        loy_cache_t *c = loy_cache_create(100000000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_PTR_NOT_NULL(loy_cache_put(c, "x", NULL));
        loy_cache_trim(c);
        CU_ASSERT_EQUAL(loy_cache_size(c), 1);
        loy_cache_destroy(c);
}

/* ------------------------------------------------------------------ */
/* Random operations against a model: an array with a use stamp.       */
/* ------------------------------------------------------------------ */

#define POOL 400
#define CAP 64

typedef struct {
        int present;
        uint64_t stamp; /* last use */
        int64_t mark;   /* what we wrote into the customer */
} model_t;

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static size_t model_size(const model_t *m) {
        size_t n = 0;
        for (int i = 0; i < POOL; i++)
                n += (size_t)m[i].present;
        return n;
}

static void model_trim(model_t *m) {
        while (model_size(m) > CAP) {
                int old = -1;
                for (int i = 0; i < POOL; i++)
                        if (m[i].present &&
                            (old == -1 || m[i].stamp < m[old].stamp))
                                old = i;
                m[old].present = 0;
        }
}

static void test_random(void) {
        static model_t m[POOL];
        loy_cache_t *c = loy_cache_create(CAP);
        uint64_t now = 0;
        int64_t next_mark = 1;
        int bad = 0;
        char id[32];

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        memset(m, 0, sizeof(m));
        for (int op = 0; op < 100000 && bad < 5; op++) {
                uint64_t r = rnd();
                int k = (int)((r >> 8) % POOL);
                unsigned what = (unsigned)(r % 100);
                loy_cust_t *cu;
                int is_new = -1;

                snprintf(id, sizeof(id), "id%d", k);
                if (what < 40) { /* put */
                        cu = loy_cache_put(c, id, &is_new);
                        if (!cu || is_new != !m[k].present ||
                            strcmp(cu->id, id) ||
                            (m[k].present && cu->orders != m[k].mark) ||
                            (!m[k].present && cu->orders != 0)) {
                                bad++;
                                fprintf(stderr, "\nop %d put %s\n", op, id);
                        }
                        if (cu && !m[k].present) {
                                m[k].mark = next_mark++;
                                cu->orders = m[k].mark;
                        }
                        m[k].present = 1;
                        m[k].stamp = ++now;
                } else if (what < 80) { /* get */
                        cu = loy_cache_get(c, id);
                        if ((cu != NULL) != m[k].present ||
                            (cu && cu->orders != m[k].mark)) {
                                bad++;
                                fprintf(stderr, "\nop %d get %s\n", op, id);
                        }
                        if (cu)
                                m[k].stamp = ++now;
                } else if (what < 90) { /* remove */
                        loy_cache_remove(c, id);
                        m[k].present = 0;
                } else if (what < 99) { /* trim */
                        loy_cache_trim(c);
                        model_trim(m);
                } else if (rnd() % 20 == 0) { /* clear, rarely */
                        loy_cache_clear(c);
                        for (int i = 0; i < POOL; i++)
                                m[i].present = 0;
                }
                if (loy_cache_size(c) != model_size(m)) {
                        bad++;
                        fprintf(stderr, "\nop %d: size %zu, model %zu\n", op,
                                loy_cache_size(c), model_size(m));
                }
                /* now and then every member, as a get (the model follows
                 * the recency it gives) */
                if (op % 5000 == 4999) {
                        for (int i = 0; i < POOL; i++) {
                                snprintf(id, sizeof(id), "id%d", i);
                                cu = loy_cache_get(c, id);
                                if ((cu != NULL) != m[i].present ||
                                    (cu && cu->orders != m[i].mark))
                                        bad++;
                                if (cu)
                                        m[i].stamp = ++now;
                        }
                }
        }
        CU_ASSERT_EQUAL(bad, 0);
        loy_cache_destroy(c);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("cache", NULL, NULL);
        if (!s || !CU_add_test(s, "put and get", test_put_get) ||
            !CU_add_test(s, "LRU trim order", test_lru_trim) ||
            !CU_add_test(s, "get and put refresh recency", test_recency) ||
            !CU_add_test(s, "over capacity until trim", test_overshoot) ||
            !CU_add_test(s, "remove", test_remove) ||
            !CU_add_test(s, "clear", test_clear) ||
            !CU_add_test(s, "pointers stable until trim",
                         test_pointer_stable) ||
            !CU_add_test(s, "long ids", test_long_id) ||
            !CU_add_test(s, "huge capacity", test_huge_capacity) ||
            !CU_add_test(s, "100k random operations vs model", test_random)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
