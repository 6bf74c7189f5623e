/* loy_eval: AUC, MAE and rank groups on tiny data worked out by hand. */
#include <CUnit/Basic.h>
#include <math.h>

#include "loy_eval.h"
#include "tu.h"

static void test_auc(void) {
        const double s1[] = {0.1, 0.4, 0.35, 0.8};
        const int l1[] = {0, 0, 1, 1};
        /* pairs (pos, neg): (.35,.1) win, (.35,.4) loss, (.8,.1), (.8,.4)
         * wins: 3 of 4 */
        CU_ASSERT_DOUBLE_EQUAL(loy_eval_auc(s1, l1, 4), 0.75, 1e-15);
        {
                const double s[] = {0.5, 0.5, 0.9};
                const int l[] = {0, 1, 1};
                /* (.5,.5) tie = 1/2, (.9,.5) win: 1.5 / 2 */
                CU_ASSERT_DOUBLE_EQUAL(loy_eval_auc(s, l, 3), 0.75, 1e-15);
        }
        {
                const double s[] = {1, 1, 1, 1};
                const int l[] = {0, 1, 0, 1};
                CU_ASSERT_DOUBLE_EQUAL(loy_eval_auc(s, l, 4), 0.5, 1e-15);
        }
        {
                const double s[] = {3, 2, 1};
                const int l[] = {0, 0, 1};  /* perfectly wrong */
                const int l2[] = {1, 0, 0}; /* perfect */
                CU_ASSERT_DOUBLE_EQUAL(loy_eval_auc(s, l, 3), 0, 1e-15);
                CU_ASSERT_DOUBLE_EQUAL(loy_eval_auc(s, l2, 3), 1, 1e-15);
        }
        {
                const double s[] = {1, 2, NAN};
                const int l[] = {0, 1, 1}, one[] = {1, 1, 1};
                CU_ASSERT(isnan(loy_eval_auc(s, l, 3)));
                CU_ASSERT(isnan(loy_eval_auc(s, one, 2)));
                CU_ASSERT(isnan(loy_eval_auc(s, l, 0)));
        }
}

static void test_mae(void) {
        const double p[] = {1, 2, 3}, a[] = {2, 2, 5};
        CU_ASSERT_DOUBLE_EQUAL(loy_eval_mae(p, a, 3), 1, 1e-15);
        CU_ASSERT_EQUAL(loy_eval_mae(p, a, 0), 0);
}

static void test_groups(void) {
        const double k[] = {5, 1, 3, 2, 4};
        const double t[] = {7, 7, 7, 1};
        int g[5];
        CU_ASSERT_EQUAL(loy_eval_rank_groups(k, 5, 2, g), 0);
        /* 3 + 2: {5, 4, 3} then {2, 1} */
        CU_ASSERT_EQUAL(g[0], 0);
        CU_ASSERT_EQUAL(g[4], 0);
        CU_ASSERT_EQUAL(g[2], 0);
        CU_ASSERT_EQUAL(g[3], 1);
        CU_ASSERT_EQUAL(g[1], 1);
        /* ties split by index, stable */
        CU_ASSERT_EQUAL(loy_eval_rank_groups(t, 4, 2, g), 0);
        CU_ASSERT_EQUAL(g[0], 0);
        CU_ASSERT_EQUAL(g[1], 0);
        CU_ASSERT_EQUAL(g[2], 1);
        CU_ASSERT_EQUAL(g[3], 1);
        CU_ASSERT_EQUAL(loy_eval_rank_groups(k, 5, 0, g), -1);
        /* more groups than items: one each, the rest empty */
        CU_ASSERT_EQUAL(loy_eval_rank_groups(k, 5, 10, g), 0);
        CU_ASSERT_EQUAL(g[0], 0);
        CU_ASSERT_EQUAL(g[1], 4);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("eval", NULL, NULL);
        CU_add_test(s, "AUC by hand, ties, degenerate", test_auc);
        CU_add_test(s, "MAE", test_mae);
        CU_add_test(s, "rank groups", test_groups);
        return tu_cunit_run();
}
