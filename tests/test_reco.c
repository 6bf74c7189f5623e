/*
 * Unit tests of models/loy_reco on small baskets worked out by hand:
 * co-occurrence counts, decay, cosine, neighbour lists, pruning, scoring,
 * cold start, pending increments for Redis, history text, memory limit.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "loy_event.h"
#include "loy_reco.h"
#include "tu.h"

#define DAY 86400000LL
#define T0 1291161600000LL /* 2010-12-01T00:00:00Z */
#define EPS 1e-5

static char err[256];

/* Defaults, except that the test items A, B, C, D ... are products ("B",
 * "D", "M", "S" are Online Retail fee codes in the default list). */
static void conf_test(loy_reco_conf_t *c) {
        loy_reco_conf_default(c);
        snprintf(c->exclude, sizeof(c->exclude), "POST,gift_*");
}

/* No decay, plain cosine: counts are integers and sims square roots. */
static loy_reco_t *mk(double half_life, double shrink, int top_k) {
        loy_reco_conf_t c;
        loy_reco_t *r;

        conf_test(&c);
        c.half_life_days = half_life;
        c.hist_half_life_days = 0;
        c.shrink = shrink;
        c.top_k = top_k;
        c.repeat_weight = 2;
        c.pop_weight = 0;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        return r;
}

static void basket(loy_reco_t *r, int64_t ts, const char *a, const char *b,
                   const char *c) {
        const char *s[3] = {a, b, c};
        int n = c ? 3 : b ? 2 : 1;
        CU_ASSERT_EQUAL(loy_reco_learn_basket(r, s, NULL, n, ts, 1.0), 0);
}

/* The sim of sku's neighbour nbr as held in sku's list, -1 if absent. */
static double nbr_sim(loy_reco_t *r, const char *sku, const char *nbr) {
        loy_reco_rec_t out[LOY_RECO_K_MAX];
        int n = loy_reco_nbrs(r, sku, out, LOY_RECO_K_MAX);
        for (int i = 0; i < n; i++)
                if (!strcmp(out[i].sku, nbr))
                        return out[i].score;
        return -1;
}

static void test_cooccurrence(void) {
        loy_reco_t *r = mk(0, 0, 20);
        loy_event_t ev = {0};
        static const struct {
                const char *sku;
                int qty;
        } lines[] = {{"A", 1},  {"POST", 1},         {"B", 2}, {"A", 5},
                     {"E", -1}, {"gift_0001_20", 1}, {"C", 1}};

        basket(r, T0, "A", "B", "C");
        basket(r, T0, "A", "B", NULL);
        basket(r, T0, "B", "C", "D");
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "B", T0), 3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "C", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "D", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "B", "A", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "C", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "B", "C", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "B", "D", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "C", "D", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "D", T0), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "A", T0), 0, EPS);

        /* an invoice: A twice counts once, postage, a voucher and a
         * returned line teach nothing */
        ev.kind = LOY_EV_PURCHASE;
        ev.ts_ms = T0;
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                loy_line_t *l = loy_event_add_line(&ev);
                CU_ASSERT_PTR_NOT_NULL_FATAL(l);
                strcpy(l->sku, lines[i].sku);
                l->quantity = lines[i].qty;
                l->unit_price = 1;
        }
        CU_ASSERT_EQUAL(loy_reco_observe(r, NULL, &ev), 0);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0), 3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "B", T0), 4, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "C", T0), 3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0), 3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "C", T0), 2, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "E", T0), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "POST", T0), 0, EPS);
        CU_ASSERT_FALSE(loy_reco_is_product(r, "post"));
        CU_ASSERT_FALSE(loy_reco_is_product(r, "gift_0001_50"));
        CU_ASSERT_FALSE(loy_reco_is_product(r, ""));
        CU_ASSERT_TRUE(loy_reco_is_product(r, "B"));
        {
                /* the default list: Online Retail's fees and vouchers */
                loy_reco_t *d = loy_reco_create(NULL, err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL_FATAL(d);
                CU_ASSERT_FALSE(loy_reco_is_product(d, "BANK CHARGES"));
                CU_ASSERT_FALSE(loy_reco_is_product(d, "m"));
                CU_ASSERT_FALSE(loy_reco_is_product(d, "DOT"));
                CU_ASSERT_FALSE(loy_reco_is_product(d, "AMAZONFEE"));
                CU_ASSERT_FALSE(loy_reco_is_product(d, "gift_0001_10"));
                CU_ASSERT_TRUE(loy_reco_is_product(d, "DOTS"));
                CU_ASSERT_TRUE(loy_reco_is_product(d, "85123A"));
                CU_ASSERT_TRUE(loy_reco_is_product(d, "DCGSSGIRL"));
                loy_reco_destroy(d);
        }
        {
                loy_reco_stats_t st;
                loy_reco_stats(r, &st);
                CU_ASSERT_EQUAL(st.items, 4);
                CU_ASSERT_EQUAL(st.pairs, 5);
                CU_ASSERT_EQUAL(st.baskets, 4);
                CU_ASSERT_EQUAL(st.lines_skipped, 3);
        }
        loy_event_free(&ev);
        loy_reco_destroy(r);
}

static void test_max_basket(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        const char *s[4] = {"A", "B", "C", "D"};

        conf_test(&c);
        c.half_life_days = 0;
        c.max_basket = 2;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(loy_reco_learn_basket(r, s, NULL, 4, T0, 1), 0);
        /* only the first two: one pair */
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "C", T0), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "C", T0), 0, EPS);
        loy_reco_destroy(r);
}

static void test_decay(void) {
        loy_reco_t *r = mk(10, 0, 20);

        basket(r, T0, "A", "B", NULL);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0), 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0 + 10 * DAY), 0.5,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0 + 20 * DAY), 0.25,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0 + 5 * DAY), sqrt(0.5),
                               EPS);
        basket(r, T0 + 10 * DAY, "A", "B", "C");
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0 + 10 * DAY), 1.5,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0 + 20 * DAY), 0.75,
                               EPS);
        /* decay alone does not move a cosine: A-B is 1.5/sqrt(1.5*1.5) */
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "B"), 1, EPS);
        loy_reco_destroy(r);

        /* a year with a one-day half-life: the counts are rebased (2^365
         * would overflow a float) and stay exact */
        r = mk(1, 0, 20);
        basket(r, T0, "A", "B", NULL);
        for (int d = 50; d <= 350; d += 50)
                basket(r, T0 + d * DAY, "X", "Y", NULL);
        basket(r, T0 + 365 * DAY, "A", "B", NULL);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0 + 365 * DAY), 1,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "X", T0 + 351 * DAY), 0.5,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0 + 366 * DAY), 0.5,
                               EPS);
        loy_reco_destroy(r);
}

static void test_normalisation(void) {
        loy_reco_conf_t c;
        loy_reco_t *r = mk(0, 0, 20);

        conf_test(&c);
        c.shrink = 0;
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_sim(&c, 2, 2, 3), 2 / sqrt(6), EPS);
        c.shrink = 1;
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_sim(&c, 2, 2, 3), 2 / sqrt(6) * 2 / 3,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_sim(&c, 0, 2, 3), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_sim(&c, 1, 0, 3), 0, EPS);

        /* the baskets of test_cooccurrence in an order where A's and
         * B's lists are recomputed last (each list is refreshed whenever
         * its item is seen) */
        basket(r, T0, "A", "B", "C");
        basket(r, T0, "B", "C", "D");
        basket(r, T0, "A", "B", NULL);
        /* n: A 2, B 3, C 2, D 1; c: AB 2, AC 1, BC 2, BD 1, CD 1 */
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "B"), 2 / sqrt(6), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "C"), 1 / sqrt(4), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "B", "A"), 2 / sqrt(6), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "B", "C"), 2 / sqrt(6), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "B", "D"), 1 / sqrt(3), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "D"), -1, EPS);
        /* C was last seen when n(B) was 2: its entry for B lags (2/sqrt(4))
         * until C is seen again */
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "C", "B"), 2 / sqrt(4), EPS);
        basket(r, T0, "C", NULL, NULL);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "C", "B"), 2 / sqrt(9), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "C", "A"), 1 / sqrt(6), EPS);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "C", "D"), 1 / sqrt(3), EPS);
        {
                /* best first, ties by sku */
                loy_reco_rec_t out[4];
                CU_ASSERT_EQUAL(loy_reco_nbrs(r, "B", out, 4), 3);
                CU_ASSERT_STRING_EQUAL(out[0].sku, "A");
                CU_ASSERT_STRING_EQUAL(out[1].sku, "C");
                CU_ASSERT_STRING_EQUAL(out[2].sku, "D");
                CU_ASSERT_EQUAL(loy_reco_nbrs(r, "B", out, 1), 1);
                CU_ASSERT_STRING_EQUAL(out[0].sku, "A");
                CU_ASSERT_EQUAL(loy_reco_nbrs(r, "nope", out, 4), -1);
        }
        loy_reco_destroy(r);
}

static void test_top_k(void) {
        loy_reco_t *r = mk(0, 0, 2);
        loy_reco_rec_t out[4];

        /* A with D once, C twice, B three times; see the steps in
         * docs/recommendations.md: D is pushed out by B */
        basket(r, T0, "A", "D", NULL);
        basket(r, T0, "A", "C", NULL);
        basket(r, T0, "A", "C", NULL);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "D"), 1 / sqrt(3), EPS);
        basket(r, T0, "A", "B", NULL);
        /* B's 1/sqrt(4*1) = 0.5 does not beat D's refreshed 1/sqrt(4) */
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "B"), -1, EPS);
        basket(r, T0, "A", "B", NULL);
        basket(r, T0, "A", "B", NULL);
        CU_ASSERT_EQUAL(loy_reco_nbrs(r, "A", out, 4), 2);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "B");
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 3 / sqrt(18), EPS);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "C");
        CU_ASSERT_DOUBLE_EQUAL(out[1].score, 2 / sqrt(12), EPS);
        /* D only knows A from when n(A) was 1 */
        CU_ASSERT_EQUAL(loy_reco_nbrs(r, "D", out, 4), 1);
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 1, EPS);
        loy_reco_destroy(r);
}

static void test_pruning(void) {
        loy_reco_conf_t c;
        loy_reco_stats_t st;
        loy_reco_t *r;

        conf_test(&c);
        c.half_life_days = 10;
        c.min_pair = 0.3;
        c.shrink = 0;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        basket(r, T0, "X", "Y", NULL);
        basket(r, T0 + 20 * DAY, "A", "B", NULL);
        basket(r, T0 + 20 * DAY, "A", "B", NULL);
        loy_reco_stats(r, &st);
        CU_ASSERT_EQUAL(st.pairs, 2);
        /* at day 30: X-Y is 2^-3 = 0.125 < 0.3, A-B 2 * 2^-1 = 1 */
        loy_reco_maintain(r, T0 + 30 * DAY);
        loy_reco_stats(r, &st);
        CU_ASSERT_EQUAL(st.pairs, 1);
        CU_ASSERT_EQUAL(st.pairs_pruned, 1);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "X", "Y", T0 + 30 * DAY), 0,
                               EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0 + 30 * DAY), 1,
                               EPS);
        /* counts were rebased to day 30 without changing them */
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0 + 40 * DAY), 0.5, EPS);
        /* the neighbour list keeps what it learned */
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "X", "Y"), 1, EPS);
        /* X-Y again starts from scratch: 1, not 1.125 */
        basket(r, T0 + 30 * DAY, "X", "Y", NULL);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "X", "Y", T0 + 30 * DAY), 1,
                               EPS);
        loy_reco_destroy(r);
}

/* Model of the scoring tests: {A,B} twice then {B,C}, no decay, cosine.
 * n: A 2, B 3, C 1; lists: A: B 1 (A not seen since n(B) was 2),
 * B: A 2/sqrt(6), C 1/sqrt(3); C: B 1/sqrt(3). */
static loy_reco_t *mk_scoring(int include_bought, double pop_weight) {
        loy_reco_conf_t c;
        loy_reco_t *r;

        conf_test(&c);
        c.half_life_days = 0;
        c.hist_half_life_days = 1;
        c.shrink = 0;
        c.repeat_weight = 2;
        c.pop_weight = pop_weight;
        c.include_bought = include_bought;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        basket(r, T0, "A", "B", NULL);
        basket(r, T0, "A", "B", NULL);
        basket(r, T0, "B", "C", NULL);
        return r;
}

static void test_scoring(void) {
        loy_reco_t *r = mk_scoring(1, 0);
        loy_reco_hist_t h;
        loy_reco_rec_t out[5];
        const double sb = 1.0 + 0.5 / sqrt(3);

        loy_reco_hist_init(&h);
        /* bought A (weight 1), viewed C (weight 0.5) */
        CU_ASSERT_EQUAL(loy_reco_hist_add(r, &h, "A", NULL, T0, 1, 1), 0);
        CU_ASSERT_EQUAL(loy_reco_hist_add(r, &h, "C", NULL, T0, 0.5, 0), 0);
        CU_ASSERT_EQUAL(h.n, 2);
        /* A: repeat 2 * 1; B: 1 * sim(A,B) 1 + 0.5 * sim(C,B) 1/sqrt(3);
         * C is no neighbour and was not bought: filled by popularity */
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0, out, 5), 3);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "A");
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 2, EPS);
        CU_ASSERT_EQUAL(out[0].src, LOY_RECO_SRC_NBR);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "B");
        CU_ASSERT_DOUBLE_EQUAL(out[1].score, sb, EPS);
        CU_ASSERT_STRING_EQUAL(out[2].sku, "C");
        CU_ASSERT_DOUBLE_EQUAL(out[2].score, 0, EPS);
        CU_ASSERT_EQUAL(out[2].src, LOY_RECO_SRC_POP);
        /* a day later (history half-life one day) every score halves */
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0 + DAY, out, 2), 2);
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 1, EPS);
        CU_ASSERT_DOUBLE_EQUAL(out[1].score, sb / 2, EPS);
        /* a second purchase of A half a day later: 1 * 2^-0.5 + 1 */
        CU_ASSERT_EQUAL(loy_reco_hist_add(r, &h, "A", NULL, T0 + DAY / 2, 1, 1),
                        0);
        CU_ASSERT_EQUAL(h.n, 2);
        CU_ASSERT_EQUAL(h.it[0].bought, 2);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0 + DAY / 2, out, 1), 1);
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 2 * (1 + sqrt(0.5)), EPS);
        loy_reco_destroy(r);

        /* bought items excluded, also from the fill */
        r = mk_scoring(0, 0);
        loy_reco_hist_init(&h);
        loy_reco_hist_add(r, &h, "A", NULL, T0, 1, 1);
        loy_reco_hist_add(r, &h, "C", NULL, T0, 0.5, 0);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0, out, 5), 2);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "B");
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, sb, EPS);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "C");
        CU_ASSERT_EQUAL(out[1].src, LOY_RECO_SRC_POP);
        loy_reco_destroy(r);

        /* popularity term: + n(j) / n(B) for every candidate */
        r = mk_scoring(1, 1);
        loy_reco_hist_init(&h);
        loy_reco_hist_add(r, &h, "A", NULL, T0, 1, 1);
        loy_reco_hist_add(r, &h, "C", NULL, T0, 0.5, 0);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0, out, 2), 2);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "A");
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 2 + 2.0 / 3, EPS);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "B");
        CU_ASSERT_DOUBLE_EQUAL(out[1].score, sb + 1, EPS);
        loy_reco_destroy(r);
}

static void test_history_bound(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        loy_reco_hist_t h;

        conf_test(&c);
        c.hist_size = 3;
        c.hist_half_life_days = 0;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        loy_reco_hist_init(&h);
        /* weights 3, 1, 2, then D (1.5) pushes out the weakest, B */
        loy_reco_hist_add(r, &h, "A", NULL, T0, 3, 1);
        loy_reco_hist_add(r, &h, "B", NULL, T0, 1, 1);
        loy_reco_hist_add(r, &h, "C", NULL, T0, 2, 1);
        loy_reco_hist_add(r, &h, "D", NULL, T0, 1.5, 1);
        CU_ASSERT_EQUAL(h.n, 3);
        for (int i = 0; i < h.n; i++) {
                char buf[256];
                loy_reco_hist_t one = h;
                one.n = 1;
                one.it[0] = h.it[i];
                loy_reco_hist_format(r, &one, buf, sizeof(buf));
                CU_ASSERT_NOT_EQUAL(buf[0], 'B');
        }
        loy_reco_destroy(r);
}

static void test_cold_start(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        loy_reco_hist_t h;
        loy_reco_rec_t out[6];
        const char *s1[2] = {"X1", "X2"}, *c1[2] = {"toys", "toys"};
        const char *s2[2] = {"X2", "Y1"}, *c2[2] = {"toys", "home"};
        const char *s3[2] = {"Y1", "Y2"}, *c3[2] = {"home", "home"};

        conf_test(&c);
        c.half_life_days = 0;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        /* n: X1 1, X2 2, Y1 3, Y2 2 */
        loy_reco_learn_basket(r, s1, c1, 2, T0, 1);
        loy_reco_learn_basket(r, s2, c2, 2, T0, 1);
        loy_reco_learn_basket(r, s3, c3, 2, T0, 1);
        loy_reco_learn_basket(r, s3, c3, 2, T0, 1);
        /* nobody: global popularity, ties by sku */
        loy_reco_hist_init(&h);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0, out, 6), 4);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "Y1");
        CU_ASSERT_STRING_EQUAL(out[1].sku, "X2");
        CU_ASSERT_STRING_EQUAL(out[2].sku, "Y2");
        CU_ASSERT_STRING_EQUAL(out[3].sku, "X1");
        CU_ASSERT_EQUAL(out[3].src, LOY_RECO_SRC_POP);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, NULL, T0, out, 2), 2);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "X2");
        /* a customer who only viewed a new toy Z: toys first */
        CU_ASSERT_EQUAL(loy_reco_hist_add(r, &h, "Z", "toys", T0, 0.2, 0), 0);
        CU_ASSERT_EQUAL(loy_reco_recommend(r, &h, T0, out, 6), 4);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "X2");
        CU_ASSERT_EQUAL(out[0].src, LOY_RECO_SRC_CAT_POP);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "X1");
        CU_ASSERT_EQUAL(out[1].src, LOY_RECO_SRC_CAT_POP);
        CU_ASSERT_STRING_EQUAL(out[2].sku, "Y1");
        CU_ASSERT_EQUAL(out[2].src, LOY_RECO_SRC_POP);
        CU_ASSERT_STRING_EQUAL(out[3].sku, "Y2");
        loy_reco_destroy(r);
}

static void test_browse_session(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        loy_reco_hist_t h;
        loy_event_t ev = {0};
        static const char *const views[] = {"A", "B", "A", "C"};

        conf_test(&c);
        c.half_life_days = 0;
        c.hist_half_life_days = 0;
        c.session_window = 2;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        loy_reco_hist_init(&h);
        ev.kind = LOY_EV_BROWSE;
        ev.action = LOY_ACT_VIEW;
        ev.ts_ms = T0;
        strcpy(ev.session_id, "s1");
        /* A, B, A again (no new evidence), C: window 2 holds A, B */
        for (int i = 0; i < 4; i++) {
                strcpy(ev.sku, views[i]);
                CU_ASSERT_EQUAL(loy_reco_observe(r, &h, &ev), 0);
        }
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0), 0.3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "B", T0), 0.3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "C", T0), 0.3, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "B", "C", T0), 0.3, EPS);
        /* window of 2 after C: B, C; D pairs with them, not with A */
        strcpy(ev.sku, "D");
        loy_reco_observe(r, &h, &ev);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "D", T0), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "C", "D", T0), 0.3, EPS);
        /* a new session forgets the window */
        strcpy(ev.session_id, "s2");
        strcpy(ev.sku, "A");
        loy_reco_observe(r, &h, &ev);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_pair(r, "A", "D", T0), 0, EPS);
        CU_ASSERT_DOUBLE_EQUAL(loy_reco_count(r, "A", T0), 0.6, EPS);
        /* history: views weigh 0.2 each, A viewed three times; a removal
         * from the cart is no signal at all */
        ev.action = LOY_ACT_REMOVE_FROM_CART;
        strcpy(ev.sku, "E");
        loy_reco_observe(r, &h, &ev);
        CU_ASSERT_EQUAL(h.n, 4);
        CU_ASSERT_DOUBLE_EQUAL(h.it[0].weight, 0.6, EPS);
        CU_ASSERT_EQUAL(h.it[0].bought, 0);
        loy_reco_destroy(r);
}

static int cmp_line(const void *a, const void *b) {
        return strcmp(a, b);
}

/* The pending list as text "a b delta" per entry, sorted: to compare. */
static void pending_text(loy_reco_t *r, char *buf, size_t size) {
        char lines[64][96];
        size_t n = loy_reco_pending_count(r), len = 0;
        loy_reco_incr_t in;
        CU_ASSERT_FATAL(n <= 64);
        for (size_t i = 0; i < n; i++) {
                loy_reco_pending_get(r, i, &in);
                snprintf(lines[i], sizeof(lines[i]), "%s %s %.17g", in.a,
                         in.b ? in.b : "-", in.delta);
        }
        qsort(lines, n, sizeof(lines[0]), cmp_line);
        buf[0] = '\0';
        for (size_t i = 0; i < n && len < size; i++)
                len +=
                    (size_t)snprintf(buf + len, size - len, "%s\n", lines[i]);
}

/* A batch done again after a failed write: its staged increments are
 * withdrawn, exactly, so the shared model gets them once. */
static void test_pending_stage(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        char before[4096], after[4096], once[4096];

        conf_test(&c);
        c.track_pending = 1;
        c.pending_max = 1024;
        c.epoch_ms = T0 - 10 * DAY;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        basket(r, T0, "A", "B", NULL);
        pending_text(r, before, sizeof(before));

        /* an attempt that merges into old entries and adds new ones */
        loy_reco_stage_begin(r);
        basket(r, T0 + DAY, "A", "B", "C");
        basket(r, T0 + DAY, "D", "E", NULL);
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 9);
        loy_reco_stage_abort(r);
        pending_text(r, after, sizeof(after));
        CU_ASSERT_STRING_EQUAL(after, before);
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 3);

        /* the redo, committed: as if the batch had been done once */
        loy_reco_stage_begin(r);
        basket(r, T0 + DAY, "A", "B", "C");
        basket(r, T0 + DAY, "D", "E", NULL);
        loy_reco_stage_commit(r);
        pending_text(r, after, sizeof(after));
        loy_reco_destroy(r);

        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        basket(r, T0, "A", "B", NULL);
        basket(r, T0 + DAY, "A", "B", "C");
        basket(r, T0 + DAY, "D", "E", NULL);
        pending_text(r, once, sizeof(once));
        CU_ASSERT_STRING_EQUAL(after, once);

        /* Two stages at once (a batch applied while the one before it
         * is written): the older committed, the newer aborted leaves what
         * the older added, also where the newer changed the older's
         * entries; the index still finds every entry after a rebuild. */
        loy_reco_stage_begin(r);
        basket(r, T0 + 2 * DAY, "F", "G", NULL);
        pending_text(r, before, sizeof(before));
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 12);
        CU_ASSERT_TRUE(loy_reco_staging(r));
        loy_reco_stage_begin(r);
        basket(r, T0 + DAY, "A", "B", NULL);
        basket(r, T0 + 2 * DAY, "F", "G", "H");
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 15);
        loy_reco_stage_commit(r);
        CU_ASSERT_TRUE(loy_reco_staging(r));
        loy_reco_stage_abort(r);
        CU_ASSERT_FALSE(loy_reco_staging(r));
        pending_text(r, after, sizeof(after));
        CU_ASSERT_STRING_EQUAL(after, before);
        basket(r, T0 + 2 * DAY, "F", "G", NULL);
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 12);

        /* both aborted: as before the older one */
        pending_text(r, before, sizeof(before));
        loy_reco_stage_begin(r);
        basket(r, T0 + 3 * DAY, "A", "X", NULL);
        loy_reco_stage_begin(r);
        basket(r, T0 + 3 * DAY, "A", "X", "Y");
        loy_reco_stage_abort(r);
        pending_text(r, after, sizeof(after));
        CU_ASSERT_STRING_EQUAL(after, before);
        /* a third begin aborts the two open ones */
        loy_reco_stage_begin(r);
        basket(r, T0 + 3 * DAY, "A", "X", NULL);
        loy_reco_stage_begin(r);
        basket(r, T0 + 3 * DAY, "B", "Y", NULL);
        loy_reco_stage_begin(r);
        loy_reco_stage_commit(r);
        pending_text(r, after, sizeof(after));
        CU_ASSERT_STRING_EQUAL(after, before);
        loy_reco_destroy(r);
}

static void test_pending(void) {
        loy_reco_conf_t c;
        loy_reco_t *r;
        loy_reco_incr_t in;
        double n_a = 0, n_b = 0, n_c = 0, ab = 0, ac = 0, bc = 0;
        int other = 0;

        conf_test(&c);
        c.half_life_days = 10;
        c.track_pending = 1;
        c.pending_max = 1024;
        c.epoch_ms = T0 - 10 * DAY;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        /* at epoch scale: day 0 is worth 2, day 10 is worth 4 */
        basket(r, T0, "A", "B", NULL);
        basket(r, T0 + 10 * DAY, "A", "B", "C");
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 6);
        for (size_t i = 0; i < loy_reco_pending_count(r); i++) {
                loy_reco_pending_get(r, i, &in);
                if (!in.b) {
                        if (!strcmp(in.a, "A"))
                                n_a += in.delta;
                        else if (!strcmp(in.a, "B"))
                                n_b += in.delta;
                        else if (!strcmp(in.a, "C"))
                                n_c += in.delta;
                        else
                                other++;
                        continue;
                }
                /* one entry per unordered pair */
                if ((!strcmp(in.a, "A") && !strcmp(in.b, "B")) ||
                    (!strcmp(in.a, "B") && !strcmp(in.b, "A")))
                        ab += in.delta;
                else if ((!strcmp(in.a, "A") && !strcmp(in.b, "C")) ||
                         (!strcmp(in.a, "C") && !strcmp(in.b, "A")))
                        ac += in.delta;
                else if ((!strcmp(in.a, "B") && !strcmp(in.b, "C")) ||
                         (!strcmp(in.a, "C") && !strcmp(in.b, "B")))
                        bc += in.delta;
                else
                        other++;
        }
        CU_ASSERT_DOUBLE_EQUAL(n_a, 6, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(n_b, 6, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(n_c, 4, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(ab, 6, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(ac, 4, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(bc, 4, 1e-9);
        CU_ASSERT_EQUAL(other, 0);
        loy_reco_pending_clear(r);
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 0);
        basket(r, T0 + 10 * DAY, "B", "C", NULL);
        CU_ASSERT_EQUAL(loy_reco_pending_count(r), 3);
        loy_reco_pending_get(r, 2, &in);
        CU_ASSERT_PTR_NOT_NULL(in.b);
        CU_ASSERT_DOUBLE_EQUAL(in.delta, 4, 1e-9);
        loy_reco_destroy(r);

        /* a full list drops increments and counts them */
        c.pending_max = 1024;
        c.half_life_days = 0;
        c.max_basket = 50;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        {
                const char *s[50];
                char names[50][8];
                loy_reco_stats_t st;
                for (int i = 0; i < 50; i++) {
                        snprintf(names[i], sizeof(names[i]), "I%d", i);
                        s[i] = names[i];
                }
                /* 50 items + 1225 pairs > 1024 */
                loy_reco_learn_basket(r, s, NULL, 50, T0, 1);
                loy_reco_stats(r, &st);
                CU_ASSERT_EQUAL(loy_reco_pending_count(r), 1024);
                CU_ASSERT_EQUAL(st.pending_dropped, 50 + 1225 - 1024);
        }
        loy_reco_destroy(r);
}

static void test_set_nbrs(void) {
        loy_reco_t *r = mk(0, 0, 2);
        const char *nb[4] = {"Q", "B", "A", "C"};
        const double sims[4] = {0.1, 0.9, 0.7, 0.8};
        loy_reco_rec_t out[4];

        /* A's own entry is ignored; the best two stay */
        CU_ASSERT_EQUAL(loy_reco_set_nbrs(r, "A", nb, sims, 4), 0);
        CU_ASSERT_EQUAL(loy_reco_nbrs(r, "A", out, 4), 2);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "B");
        CU_ASSERT_DOUBLE_EQUAL(out[0].score, 0.9, EPS);
        CU_ASSERT_STRING_EQUAL(out[1].sku, "C");
        CU_ASSERT_DOUBLE_EQUAL(out[1].score, 0.8, EPS);
        /* seeing A does not overwrite the shared sims with local ones */
        basket(r, T0, "A", NULL, NULL);
        CU_ASSERT_DOUBLE_EQUAL(nbr_sim(r, "A", "B"), 0.9, EPS);
        /* Q was interned: a customer who bought Q is scored */
        CU_ASSERT_EQUAL(loy_reco_nbrs(r, "Q", out, 4), 0);
        loy_reco_destroy(r);
}

static void test_hist_text(void) {
        loy_reco_t *r = mk(0, 0, 20);
        loy_reco_hist_t h, back;
        char buf[512];
        size_t n;

        loy_reco_hist_init(&h);
        loy_reco_hist_add(r, &h, "85123A", NULL, T0, 1, 1);
        loy_reco_hist_add(r, &h, "22423", NULL, T0 + 1000, 0.25, 0);
        n = loy_reco_hist_format(r, &h, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "85123A\t1291161600000\t1\t1\n"
                                    "22423\t1291161601000\t0.25\t0\n");
        CU_ASSERT_EQUAL(n, strlen(buf));
        CU_ASSERT_EQUAL(loy_reco_hist_parse(r, &back, buf), 0);
        CU_ASSERT_EQUAL(back.n, 2);
        CU_ASSERT_EQUAL(memcmp(back.it, h.it, 2 * sizeof(h.it[0])), 0);
        /* truncated at a whole item */
        n = loy_reco_hist_format(r, &h, buf, 30);
        CU_ASSERT_STRING_EQUAL(buf, "85123A\t1291161600000\t1\t1\n");
        CU_ASSERT_EQUAL(loy_reco_hist_parse(r, &back, "85123A\tx\t1\t1\n"), -1);
        CU_ASSERT_EQUAL(back.n, 0);
        CU_ASSERT_EQUAL(loy_reco_hist_parse(r, &back, "A\t1\t-1\t0"), -1);
        loy_reco_destroy(r);
}

/* xorshift, for a reproducible stream of baskets */
static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)(rng % n);
}

static void test_memory_limit(void) {
        loy_reco_conf_t c;
        loy_reco_stats_t st;
        loy_reco_t *r;
        loy_reco_rec_t out[2];
        char names[8][16];
        const char *s[8];

        conf_test(&c);
        c.mem_limit = 1u << 20;
        c.half_life_days = 30;
        r = loy_reco_create(&c, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        for (int b = 0; b < 40000; b++) {
                int n = 8;
                if (b % 10 == 0) {
                        /* a pair bought together all the time */
                        strcpy(names[0], "HOT1");
                        strcpy(names[1], "HOT2");
                        n = 2;
                } else {
                        /* first few items (so pairs overflow and are
                         * pruned), then many (so items are evicted) */
                        for (int j = 0; j < 8; j++)
                                snprintf(names[j], sizeof(names[j]), "R%u",
                                         rnd(b < 20000 ? 600 : 200000));
                }
                for (int j = 0; j < n; j++)
                        s[j] = names[j];
                CU_ASSERT_EQUAL_FATAL(
                    loy_reco_learn_basket(r, s, NULL, n,
                                          T0 + (int64_t)b * 60000, 1),
                    0);
                if (b == 19999) {
                        loy_reco_stats(r, &st);
                        CU_ASSERT(st.pair_prunes > 0);
                        CU_ASSERT_EQUAL(st.item_evictions, 0);
                        CU_ASSERT_EQUAL(st.items, 602);
                }
        }
        loy_reco_stats(r, &st);
        CU_ASSERT(st.bytes <= c.mem_limit);
        CU_ASSERT(st.bytes_peak <= c.mem_limit);
        CU_ASSERT(st.pair_prunes > 0);
        CU_ASSERT(st.item_evictions > 0);
        CU_ASSERT(st.items < 200000);
        CU_ASSERT_EQUAL(loy_reco_nbrs(r, "HOT1", out, 1), 1);
        CU_ASSERT_STRING_EQUAL(out[0].sku, "HOT2");
        CU_ASSERT(loy_reco_pair(r, "HOT1", "HOT2", T0) > 3000);
        loy_reco_destroy(r);

        /* a limit too small for the fixed part is refused */
        c.mem_limit = 1u << 20;
        c.track_pending = 1;
        c.pending_max = 1u << 20;
        CU_ASSERT_PTR_NULL(loy_reco_create(&c, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "mem_limit"));
}

static void test_conf(void) {
        loy_reco_conf_t c;

        conf_test(&c);
        c.top_k = 0;
        CU_ASSERT_PTR_NULL(loy_reco_create(&c, err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err, "reco: top_k = 0 is out of range [1, 64]");
        conf_test(&c);
        c.w_browse = NAN;
        CU_ASSERT_PTR_NULL(loy_reco_create(&c, err, sizeof(err)));
        conf_test(&c);
        c.mem_limit = 1000;
        CU_ASSERT_PTR_NULL(loy_reco_create(&c, err, sizeof(err)));
        loy_reco_destroy(NULL);
}

int main(void) {
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("reco", NULL, NULL);
        if (!s || !CU_add_test(s, "co-occurrence counts", test_cooccurrence) ||
            !CU_add_test(s, "basket cap", test_max_basket) ||
            !CU_add_test(s, "decay and rebase", test_decay) ||
            !CU_add_test(s, "cosine", test_normalisation) ||
            !CU_add_test(s, "top-k", test_top_k) ||
            !CU_add_test(s, "pruning", test_pruning) ||
            !CU_add_test(s, "scoring", test_scoring) ||
            !CU_add_test(s, "history bound", test_history_bound) ||
            !CU_add_test(s, "cold start", test_cold_start) ||
            !CU_add_test(s, "browse sessions", test_browse_session) ||
            !CU_add_test(s, "pending increments", test_pending) ||
            !CU_add_test(s, "pending increments staged per attempt",
                         test_pending_stage) ||
            !CU_add_test(s, "neighbours from redis", test_set_nbrs) ||
            !CU_add_test(s, "history as text", test_hist_text) ||
            !CU_add_test(s, "memory limit", test_memory_limit) ||
            !CU_add_test(s, "config", test_conf)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
