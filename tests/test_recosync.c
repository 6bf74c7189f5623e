/*
 * loy_recosync against a real redis-server: two processes' local models
 * send their co-occurrence increments to Redis and rebuild the shared
 * neighbour lists from the sum; without a model nothing happens.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_recosync.h"
#include "tu.h"

#define T0 1291190400000LL

static int has_nbr(loy_reco_t *r, const char *sku, const char *nbr) {
        loy_reco_rec_t nb[LOY_RECO_K_MAX];
        int n = loy_reco_nbrs(r, sku, nb, LOY_RECO_K_MAX);
        for (int i = 0; i < n; i++)
                if (!strcmp(nb[i].sku, nbr))
                        return 1;
        return 0;
}

static void test_share(void) {
        tu_redis_t r;
        loy_reco_conf_t rc;
        loy_reco_t *r1, *r2;
        loy_recosync_t *s1, *s2, *none;
        loy_store_t *store;
        char err[256], *v, *n1;
        const char *ab[] = {"A", "B"}, *ac[] = {"A", "C"};
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&r, 0), 0);
        store =
            loy_store_create("127.0.0.1", r.port, NULL, 500, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(store);
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(store, err, sizeof(err)), 0);
        loy_reco_conf_default(&rc);
        rc.track_pending = 1;
        r1 = loy_reco_create(&rc, err, sizeof(err));
        r2 = loy_reco_create(&rc, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r2);
        s1 = loy_recosync_create(r1, 3600 * 1000, 100);
        s2 = loy_recosync_create(r2, 3600 * 1000, 100);
        none = loy_recosync_create(NULL, 0, 100);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(none);
        for (int i = 0; i < 3; i++) {
                CU_ASSERT_EQUAL(loy_reco_learn_basket(r1, ab, NULL, 2, T0, 1),
                                0);
                CU_ASSERT_EQUAL(loy_reco_learn_basket(r2, ac, NULL, 2, T0, 1),
                                0);
        }
        CU_ASSERT(!has_nbr(r2, "A", "B"));
        loy_recosync_run(s1, store, T0, 1);
        CU_ASSERT(loy_recosync_flushed(s1) > 0);
        CU_ASSERT(loy_recosync_refreshed(s1) > 0);
        /* the shared counts, which every process adds to */
        n1 = tu_redis_cli(&r, "HGET loy:i:n A");
        CU_ASSERT_PTR_NOT_NULL_FATAL(n1);
        loy_recosync_run(s2, store, T0, 1);
        CU_ASSERT(loy_recosync_flushed(s2) > 0);
        CU_ASSERT(has_nbr(r2, "A", "C"));
        /* the sum of both: A counted in both processes' baskets */
        v = tu_redis_cli(&r, "HGET loy:i:n A");
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT(atof(v) > 1.5 * atof(n1));
        free(v);
        free(n1);
        loy_recosync_run(none, store, T0, 1);
        CU_ASSERT_EQUAL(loy_recosync_flushed(none), 0);
        loy_recosync_destroy(none);
        loy_recosync_destroy(s2);
        loy_recosync_destroy(s1);
        loy_reco_destroy(r2);
        loy_reco_destroy(r1);
        loy_store_destroy(store);
        tu_redis_stop(&r);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"two processes, one model", test_share},
        };
        return tu_cunit_main("loy_recosync", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
