/* loy_logreg: SGD steps by hand, batch ML on data with a known optimum,
 * a separable toy set, standardisation. */
#include <CUnit/Basic.h>
#include <math.h>
#include <string.h>

#include "loy_logreg.h"
#include "tu.h"

static void test_init(void) {
        loy_logreg_t lr;
        char err[128];
        CU_ASSERT_EQUAL(loy_logreg_init(&lr, 0, err, sizeof(err)), -1);
        CU_ASSERT_STRING_EQUAL(err, "logistic regression: dim 0 not in 1..64");
        CU_ASSERT_EQUAL(loy_logreg_init(&lr, 65, err, sizeof(err)), -1);
        CU_ASSERT_EQUAL(loy_logreg_init(&lr, 3, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(lr.scale[2], 1);
        {
                const double x[3] = {5, -7, 9};
                CU_ASSERT_EQUAL(loy_logreg_predict(&lr, x), 0.5);
        }
}

static void test_sgd(void) {
        loy_logreg_t lr;
        const double x[1] = {2};
        double p;
        char err[128];

        CU_ASSERT_FATAL(loy_logreg_init(&lr, 1, err, sizeof(err)) == 0);
        /* p = 0.5, g = p - 1 = -0.5: w = 0.5 * 0.5 * 2, b = 0.5 * 0.5 */
        loy_logreg_update(&lr, x, 1, 0.5, 0);
        CU_ASSERT_DOUBLE_EQUAL(lr.w[0], 0.5, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(lr.bias, 0.25, 1e-15);
        /* logit 0.25 + 0.5 * 2 = 1.25; now y = 0 and l2 = 0.1 */
        p = 1 / (1 + exp(-1.25));
        CU_ASSERT_DOUBLE_EQUAL(loy_logreg_logit(&lr, x), 1.25, 1e-15);
        loy_logreg_update(&lr, x, 0, 0.5, 0.1);
        CU_ASSERT_DOUBLE_EQUAL(lr.w[0], 0.5 - 0.5 * (p * 2 + 0.1 * 0.5), 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(lr.bias, 0.25 - 0.5 * p, 1e-15);
        CU_ASSERT_EQUAL(lr.updates, 2);
        /* no overflow at huge logits */
        lr.bias = 1e6;
        CU_ASSERT_EQUAL(loy_logreg_predict(&lr, x), 1);
        lr.bias = -1e6;
        CU_ASSERT_EQUAL(loy_logreg_predict(&lr, x), 0);
}

/* x = +1: 3 of 4 buy; x = -1: 1 of 4. ML: logit(3/4) = ln 3 at +1 and
 * -ln 3 at -1, so w = ln 3, b = 0 (x is already mean 0, sd 1). */
static void test_batch(void) {
        const double X[8] = {1, 1, 1, 1, -1, -1, -1, -1};
        const int y[8] = {1, 1, 1, 0, 1, 0, 0, 0};
        loy_logreg_t lr;
        char err[128];

        CU_ASSERT_FATAL(loy_logreg_init(&lr, 1, err, sizeof(err)) == 0);
        CU_ASSERT_EQUAL(loy_logreg_train(&lr, X, y, 8, 0, err, sizeof(err)), 0);
        CU_ASSERT_DOUBLE_EQUAL(lr.mean[0], 0, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(lr.scale[0], 1, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(lr.w[0], log(3), 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(lr.bias, 0, 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(loy_logreg_predict(&lr, X), 0.75, 1e-6);
        /* mean log loss at the optimum: -(3 ln .75 + ln .25) / 4 */
        CU_ASSERT_DOUBLE_EQUAL(loy_logreg_log_loss(&lr, X, y, 8),
                               -(3 * log(0.75) + log(0.25)) / 4, 1e-9);
        CU_ASSERT_EQUAL(loy_logreg_train(&lr, X, y, 0, 0, err, sizeof(err)),
                        -1);
        CU_ASSERT_STRING_EQUAL(err, "logistic regression: no rows");
}

/* Two features, classes split by x0 + x1 > 10: with a little L2 every
 * point is on the right side and the weights stay finite. */
static void test_separable(void) {
        const double X[16] = {1, 2, 2, 1, 3, 3, 4, 2, 8, 7, 9, 9, 7, 8, 10, 6};
        const int y[8] = {0, 0, 0, 0, 1, 1, 1, 1};
        loy_logreg_t lr;
        char err[128];

        CU_ASSERT_FATAL(loy_logreg_init(&lr, 2, err, sizeof(err)) == 0);
        CU_ASSERT_EQUAL(loy_logreg_train(&lr, X, y, 8, 0.01, err, sizeof(err)),
                        0);
        for (int i = 0; i < 8; i++) {
                double p = loy_logreg_predict(&lr, X + 2 * i);
                CU_ASSERT(y[i] ? p > 0.5 : p < 0.5);
        }
        CU_ASSERT(lr.w[0] > 0 && lr.w[1] > 0);
        CU_ASSERT(isfinite(lr.w[0]) && isfinite(lr.bias));
        /* standardisation: column 0 = 1,2,3,4,8,9,7,10: mean 5.5, squared
         * deviations 2 (20.25 + 12.25 + 6.25 + 2.25) = 82 */
        CU_ASSERT_DOUBLE_EQUAL(lr.mean[0], 5.5, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(lr.scale[0], sqrt(82.0 / 8), 1e-12);
        {
                double bad[2] = {1, NAN};
                int yy[1] = {1};
                CU_ASSERT_EQUAL(
                    loy_logreg_train(&lr, bad, yy, 1, 0.01, err, sizeof(err)),
                    -1);
                CU_ASSERT_STRING_EQUAL(err, "logistic regression: row 0 "
                                            "feature 1 is not finite");
        }
}

/* Online SGD on the same separable set from zero weights (fixed
 * standardisation) ends up classifying it too. */
static void test_online(void) {
        const double X[8] = {1, 2, 3, 4, 7, 8, 9, 10};
        const int y[8] = {0, 0, 0, 0, 1, 1, 1, 1};
        loy_logreg_t lr;
        char err[128];

        CU_ASSERT_FATAL(loy_logreg_init(&lr, 1, err, sizeof(err)) == 0);
        loy_logreg_standardise(&lr, X, 8);
        for (int e = 0; e < 50; e++)
                for (int i = 0; i < 8; i++)
                        loy_logreg_update(&lr, X + i, y[i], 0.1, 1e-3);
        for (int i = 0; i < 8; i++)
                CU_ASSERT(y[i] ? loy_logreg_predict(&lr, X + i) > 0.5
                               : loy_logreg_predict(&lr, X + i) < 0.5);
        CU_ASSERT_EQUAL(lr.updates, 400);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("logreg", NULL, NULL);
        CU_add_test(s, "init", test_init);
        CU_add_test(s, "SGD steps by hand", test_sgd);
        CU_add_test(s, "batch ML: known optimum", test_batch);
        CU_add_test(s, "separable with L2", test_separable);
        CU_add_test(s, "online SGD", test_online);
        return tu_cunit_run();
}
