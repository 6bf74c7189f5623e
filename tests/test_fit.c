/*
 * loy_fit: reproduces the published CDNOW figures on the 1/10 sample
 * (Fader, Hardie & Lee 2005: r = 0.243, alpha = 4.414, a = 0.793,
 * b = 2.426, LL = -9582.4; Fader & Hardie 2013 Gamma-Gamma: p = 6.25,
 * q = 3.74, gamma = 15.44). The summaries are built here from
 * ../shared/data/cdnow_sample.txt: weeks, calibration to 1997-09-30,
 * same-day purchases merged.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_date.h"
#include "loy_fit.h"
#include "tu.h"

#define MAXC 3000

static loy_fit_cust_t cust[MAXC];
static size_t ncust;

static int load_cdnow(void) {
        const char *path = tu_src_path("../shared/data/cdnow_sample.txt");
        long end = loy_date_to_days(1997, 9, 30);
        char id[32], prev_id[32] = "";
        long date, first = 0, last = 0, day, prev_day = -1;
        int cds;
        double dollars, day_value = 0, rep_sum = 0;
        int days = 0;
        FILE *f = fopen(path, "r");

        if (!f) {
                fprintf(stderr, "cannot open %s\n", path);
                return -1;
        }
        ncust = 0;
        /* rows are grouped by customer and sorted by date */
        for (;;) {
                int got =
                    fscanf(f, "%31s %*s %ld %d %lf", id, &date, &cds, &dollars);
                int flush = got != 4 || strcmp(id, prev_id) != 0;

                if (flush && prev_id[0]) {
                        loy_fit_cust_t *c = &cust[ncust++];
                        if (days > 1)
                                rep_sum += day_value;
                        c->x = days - 1;
                        c->t_x = (last - first) / 7.0;
                        c->T = (end - first) / 7.0;
                        c->mean_value = days > 1 ? rep_sum / (days - 1) : 0;
                        if (ncust == MAXC)
                                break;
                }
                if (got != 4)
                        break;
                day = loy_date_to_days(date / 10000, date / 100 % 100,
                                       date % 100);
                if (flush) {
                        snprintf(prev_id, sizeof(prev_id), "%s", id);
                        first = last = prev_day = day;
                        days = 1;
                        day_value = dollars;
                        rep_sum = 0;
                        continue;
                }
                if (day > end)
                        continue;
                if (day != prev_day) {
                        if (days > 1)
                                rep_sum += day_value;
                        days++;
                        day_value = 0;
                        last = prev_day = day;
                }
                day_value += dollars;
        }
        fclose(f);
        return 0;
}

static void test_summaries(void) {
        double sx = 0;
        size_t rep = 0;
        CU_ASSERT_FATAL(load_cdnow() == 0);
        CU_ASSERT_EQUAL(ncust, 2357);
        for (size_t i = 0; i < ncust; i++) {
                sx += cust[i].x;
                rep += cust[i].x > 0;
        }
        /* FHL (2005): 1,411 of the 2,357 made no repeat purchase; the
         * note on Gamma-Gamma uses the other 946 */
        CU_ASSERT_EQUAL(rep, 946);
        CU_ASSERT_EQUAL(sx, 2457);
        /* customer 1: bought 1997-01-01, 01-18, 08-02 (12-12 is after
         * the calibration) */
        CU_ASSERT_EQUAL(cust[0].x, 2);
        CU_ASSERT_DOUBLE_EQUAL(cust[0].t_x, 213 / 7.0, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(cust[0].T, 272 / 7.0, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(cust[0].mean_value, (29.73 + 14.96) / 2, 1e-12);
}

static void test_fit_bgnbd(void) {
        loy_model_t m;
        double ll, p[4] = {0.243, 4.414, 0.793, 2.426};
        char err[256];

        memset(&m, 0, sizeof(m));
        m.variant = LOY_VARIANT_BGNBD;
        CU_ASSERT_FATAL(ncust == 2357);
        CU_ASSERT_EQUAL(
            loy_fit_purchases(&m, cust, ncust, &ll, err, sizeof(err)), 0);
        CU_ASSERT_DOUBLE_EQUAL(m.r, 0.243, 0.0005);
        CU_ASSERT_DOUBLE_EQUAL(m.alpha, 4.414, 0.0005);
        CU_ASSERT_DOUBLE_EQUAL(m.a, 0.793, 0.0005);
        CU_ASSERT_DOUBLE_EQUAL(m.b, 2.426, 0.0005);
        CU_ASSERT_DOUBLE_EQUAL(ll, -9582.4, 0.05);
        /* the published (rounded) parameters are no better */
        CU_ASSERT(loy_fit_ll(LOY_VARIANT_BGNBD, p, cust, ncust) <= ll);
        CU_ASSERT_DOUBLE_EQUAL(loy_fit_ll(LOY_VARIANT_BGNBD, p, cust, ncust),
                               -9582.4, 0.05);
}

static void test_fit_mbgnbd(void) {
        loy_model_t m, bg;
        double ll, llbg;
        char err[256];

        memset(&m, 0, sizeof(m));
        m.variant = LOY_VARIANT_MBGNBD;
        bg = m;
        bg.variant = LOY_VARIANT_BGNBD;
        CU_ASSERT_EQUAL(
            loy_fit_purchases(&m, cust, ncust, &ll, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(
            loy_fit_purchases(&bg, cust, ncust, &llbg, err, sizeof(err)), 0);
        /* a maximum: every one-step move in any parameter is worse */
        for (int i = 0; i < 4; i++)
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                        double p[4] = {m.r, m.alpha, m.a, m.b};
                        p[i] *= 1 + sgn * 1e-3;
                        CU_ASSERT(loy_fit_ll(LOY_VARIANT_MBGNBD, p, cust,
                                             ncust) < ll);
                }
        CU_ASSERT(isfinite(ll));
        CU_ASSERT(fabs(ll - llbg) < 5); /* both describe CDNOW well */
        CU_ASSERT(m.r > 0 && m.alpha > 0 && m.a > 0 && m.b > 0);
}

static void test_fit_gg(void) {
        loy_model_t m;
        double ll, pp[3] = {6.25, 3.74, 15.44};
        char err[256];

        memset(&m, 0, sizeof(m));
        CU_ASSERT_EQUAL(loy_fit_spend(&m, cust, ncust, &ll, err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(m.has_gg, 1);
        CU_ASSERT_DOUBLE_EQUAL(m.gg_p, 6.25, 0.005);
        CU_ASSERT_DOUBLE_EQUAL(m.gg_q, 3.74, 0.005);
        CU_ASSERT_DOUBLE_EQUAL(m.gg_gamma, 15.44, 0.005);
        CU_ASSERT(loy_fit_gg_ll(pp, cust, ncust) <= ll);
}

static void test_fit_errors(void) {
        loy_model_t m;
        loy_fit_cust_t one = {0, 0, 10, 0, 0};
        double bad[4] = {1, -1, 1, 1};
        char err[256];

        memset(&m, 0, sizeof(m));
        CU_ASSERT_EQUAL(loy_fit_purchases(&m, cust, 0, NULL, err, sizeof(err)),
                        -1);
        CU_ASSERT_STRING_EQUAL(err, "no customers to fit");
        CU_ASSERT_EQUAL(loy_fit_spend(&m, &one, 1, NULL, err, sizeof(err)), -1);
        CU_ASSERT_STRING_EQUAL(err, "no repeat customers with a spend to fit");
        CU_ASSERT_EQUAL(m.has_gg, 0);
        CU_ASSERT(isinf(loy_fit_ll(LOY_VARIANT_BGNBD, bad, cust, ncust)));
        /* nobody ever repeats: the likelihood runs off to r -> 0 */
        CU_ASSERT_EQUAL(loy_fit_purchases(&m, &one, 1, NULL, err, sizeof(err)),
                        -1);
}

/* The analytic gradient against central differences (both variants). */
static void test_gradient(void) {
        const double p[4] = {0.3, 5, 0.7, 2.2};
        for (int v = 0; v < 2; v++) {
                double g[4];
                double ll = loy_fit_ll_grad(v, p, cust, ncust, g);
                CU_ASSERT_DOUBLE_EQUAL(ll, loy_fit_ll(v, p, cust, ncust), 1e-9);
                for (int i = 0; i < 4; i++) {
                        double hi[4], lo[4], h = 1e-6 * p[i], num;
                        memcpy(hi, p, sizeof(hi));
                        memcpy(lo, p, sizeof(lo));
                        hi[i] += h;
                        lo[i] -= h;
                        num = (loy_fit_ll(v, hi, cust, ncust) -
                               loy_fit_ll(v, lo, cust, ncust)) /
                              (2 * h);
                        CU_ASSERT(fabs(num - g[i]) <=
                                  1e-5 * fmax(1, fabs(g[i])));
                }
        }
}

/* Merging identical summaries changes nothing: the sample twice has twice
 * the log-likelihood, and customer order does not matter. */
static void test_duplicates(void) {
        static loy_fit_cust_t two[2 * MAXC];
        const double p[4] = {0.243, 4.414, 0.793, 2.426};
        double one = loy_fit_ll(LOY_VARIANT_BGNBD, p, cust, ncust);
        for (size_t i = 0; i < ncust; i++) {
                two[i] = cust[ncust - 1 - i];
                two[ncust + i] = cust[i];
        }
        CU_ASSERT_DOUBLE_EQUAL(loy_fit_ll(LOY_VARIANT_BGNBD, p, two, 2 * ncust),
                               2 * one, 1e-6);
}

/* The ridge: customers who all kept buying to the very end (t_x = T)
 * give no evidence of dropout; the likelihood rises as a -> 0. */
static void test_ridge(void) {
        static loy_fit_cust_t r[200];
        loy_model_t m;
        loy_fit_report_t rep;
        loy_fit_opts_t none = {LOY_FIT_PRIOR_NONE, 2};
        loy_fit_opts_t aut = {LOY_FIT_PRIOR_AUTO, 2};
        char err[256];

        for (int i = 0; i < 200; i++) {
                r[i].x = i % 7;
                r[i].T = 20 + i % 13;
                r[i].t_x = r[i].x > 0 ? r[i].T : 0;
        }
        memset(&m, 0, sizeof(m));
        m.variant = LOY_VARIANT_MBGNBD;
        CU_ASSERT_EQUAL(
            loy_fit_purchases_ex(&m, r, 200, &none, &rep, err, sizeof(err)),
            -1);
        CU_ASSERT(!strncmp(err, "no interior maximum", 19));
        CU_ASSERT_EQUAL(rep.ridge, 1);
        CU_ASSERT_EQUAL(m.r, 0); /* untouched on failure */
        CU_ASSERT_EQUAL(
            loy_fit_purchases_ex(&m, r, 200, &aut, &rep, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(rep.ridge, 1);
        CU_ASSERT_EQUAL(rep.penalised, 1);
        CU_ASSERT_EQUAL(rep.converged, 1);
        CU_ASSERT(m.a > 1e-4 && m.a < 1e4 && m.b > 1e-4 && m.b < 1e4);
        CU_ASSERT(rep.ll <= rep.ll_ml);
        CU_ASSERT(!strncmp(rep.note, "ML has no interior maximum", 26));
        CU_ASSERT_EQUAL(rep.customers, 200);
        CU_ASSERT_EQUAL(rep.unique, 7 * 13); /* lcm(7, 13) = 91 */
        {
                double p[4] = {m.r, m.alpha, m.a, m.b};
                CU_ASSERT_DOUBLE_EQUAL(loy_fit_ll(m.variant, p, r, 200), rep.ll,
                                       1e-9);
        }
}

/* On CDNOW the auto mode is plain ML; the always-prior fit moves a
 * little and costs some likelihood. */
static void test_auto_prior(void) {
        loy_model_t m, pm;
        loy_fit_report_t rep;
        loy_fit_opts_t always = {LOY_FIT_PRIOR_ALWAYS, 2};
        char err[256];

        memset(&m, 0, sizeof(m));
        pm = m;
        CU_ASSERT_EQUAL(
            loy_fit_purchases_ex(&m, cust, ncust, NULL, &rep, err, sizeof(err)),
            0);
        CU_ASSERT_EQUAL(rep.ridge, 0);
        CU_ASSERT_EQUAL(rep.penalised, 0);
        CU_ASSERT_DOUBLE_EQUAL(m.a, 0.793, 0.0005);
        CU_ASSERT_DOUBLE_EQUAL(rep.ll, -9582.4, 0.05);
        CU_ASSERT_STRING_EQUAL(rep.note, "maximum likelihood, converged");
        CU_ASSERT_EQUAL(rep.unique, 1016);
        CU_ASSERT_EQUAL(loy_fit_purchases_ex(&pm, cust, ncust, &always, &rep,
                                             err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(rep.penalised, 1);
        CU_ASSERT(rep.ll < -9582.4 && rep.ll > -9583.5);
}

static void test_bad_summary(void) {
        loy_model_t m;
        loy_fit_cust_t bad[2] = {{1, 5, 3, 0, 0}, {0, 0, 1, 0, 0}};
        char err[256];
        memset(&m, 0, sizeof(m));
        CU_ASSERT_EQUAL(loy_fit_purchases(&m, bad, 2, NULL, err, sizeof(err)),
                        -1);
        CU_ASSERT_STRING_EQUAL(err, "customer 0: need 0 <= t_x <= T and "
                                    "x >= 0 (got x=1 t_x=5 T=3)");
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("fit", NULL, NULL);
        CU_add_test(s, "CDNOW summaries", test_summaries);
        CU_add_test(s, "BG/NBD reproduces FHL 2005", test_fit_bgnbd);
        CU_add_test(s, "MBG/NBD maximum", test_fit_mbgnbd);
        CU_add_test(s, "Gamma-Gamma reproduces Fader & Hardie 2013",
                    test_fit_gg);
        CU_add_test(s, "errors", test_fit_errors);
        CU_add_test(s, "analytic gradient", test_gradient);
        CU_add_test(s, "identical summaries merged", test_duplicates);
        CU_add_test(s, "ridge detected, weak priors", test_ridge);
        CU_add_test(s, "auto and always priors on CDNOW", test_auto_prior);
        CU_add_test(s, "bad summary", test_bad_summary);
        return tu_cunit_run();
}
