/* Unit tests of features/loy_rfm: bins, Fenwick ranks, quintile scores,
 * loyalty groups and the segment map. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "loy_rfm.h"
#include "tu.h"

#define DAY LOY_MS_PER_DAY
#define WEEK (7 * DAY)
#define E1990 631152000000LL /* 1990-01-01T00:00:00Z */

/* Customer k of a test population, built from its fields directly. */
static void mk(loy_cust_t *c, int64_t last_ms, int64_t days, double spend) {
        loy_feat_init(c, "c");
        if (days <= 0)
                return;
        c->first_purchase_ms = last_ms - (days - 1) * DAY;
        c->last_purchase_ms = last_ms;
        c->purchase_days = days;
        c->orders = days;
        c->gross_value = spend;
}

static void add_rfm(loy_rfm_t *rfm, const loy_cust_t *c) {
        for (int d = LOY_DIM_RECENCY; d <= LOY_DIM_MONETARY; d++)
                loy_rfm_move(rfm, (loy_dim_t)d, -1,
                             loy_rfm_bin(c, (loy_dim_t)d));
}

/* Scores c and then moves its loyalty bin, as the processor does. */
static void score(loy_rfm_t *rfm, loy_cust_t *c, const double *w) {
        int old = loy_rfm_bin(c, LOY_DIM_LOYALTY);
        loy_rfm_score(rfm, c, w);
        loy_rfm_move(rfm, LOY_DIM_LOYALTY, old,
                     loy_rfm_bin(c, LOY_DIM_LOYALTY));
}

static void test_bins(void) {
        loy_cust_t c;
        int prev;

        loy_feat_init(&c, "n");
        for (int d = 0; d < LOY_DIM__COUNT; d++)
                CU_ASSERT_EQUAL(loy_rfm_bin(&c, (loy_dim_t)d), -1);

        /* recency: whole weeks since 1990-01-01 */
        mk(&c, E1990 + 100 * WEEK + 3 * DAY, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_RECENCY), 100);
        mk(&c, E1990 + 100 * WEEK - 1, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_RECENCY), 99);
        /* 2020-01-01 is day 10957 after 1990-01-01: week 1565 */
        mk(&c, 1577836800000LL, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_RECENCY), 1565);
        mk(&c, E1990 - DAY, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_RECENCY), 0);
        mk(&c, E1990 + 5000 * WEEK, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_RECENCY), LOY_HIST_BINS - 1);

        /* frequency: floor(64 log2(1 + days)) */
        mk(&c, E1990, 1, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_FREQUENCY), 64);
        mk(&c, E1990 + 10 * DAY, 2, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_FREQUENCY), 101);
        mk(&c, E1990 + 10 * DAY, 3, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_FREQUENCY), 128);
        mk(&c, E1990 + 10 * DAY, 7, 10);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_FREQUENCY), 192);

        /* monetary: the same on net spend, 0 for nothing or less */
        mk(&c, E1990, 1, 0);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_MONETARY), 0);
        c.return_value = 50;
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_MONETARY), 0);
        mk(&c, E1990, 1, 3);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_MONETARY), 128);
        mk(&c, E1990, 1, 1e6);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_MONETARY), 1275);
        mk(&c, E1990, 1, 1e300);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_MONETARY), LOY_HIST_BINS - 1);

        /* monotone */
        prev = -1;
        for (int64_t d = 1; d <= 200000; d += 1 + d / 50) {
                int b;
                mk(&c, E1990 + 300000 * DAY, d, 0);
                b = loy_rfm_bin(&c, LOY_DIM_FREQUENCY);
                CU_ASSERT_FATAL(b >= prev);
                if (d < 90)
                        CU_ASSERT_FATAL(b > prev);
                prev = b;
        }
        prev = -1;
        for (double v = 0; v < 1e9; v = v * 1.01 + 0.01) {
                int b;
                mk(&c, E1990, 1, v);
                b = loy_rfm_bin(&c, LOY_DIM_MONETARY);
                CU_ASSERT_FATAL(b >= prev);
                prev = b;
        }

        /* loyalty: tenths of the score, only once scored */
        mk(&c, E1990, 1, 10);
        c.loyalty_score = 10.0 / 3.0;
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_LOYALTY), -1);
        c.r_score = 4;
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_LOYALTY), 33);
        c.loyalty_score = 3.75;
        CU_ASSERT_EQUAL(loy_rfm_bin(&c, LOY_DIM_LOYALTY), 38);
}

/* Small deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void test_fenwick(void) {
        static int64_t brute[LOY_DIM__COUNT][LOY_HIST_BINS];
        loy_rfm_t *rfm = loy_rfm_create();

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        memset(brute, 0, sizeof(brute));
        for (int step = 0; step < 20000; step++) {
                loy_dim_t d = (loy_dim_t)(rng() % LOY_DIM__COUNT);
                /* a narrow range half of the time, for collisions */
                int span = (rng() & 1) ? 40 : LOY_HIST_BINS + 1;
                int ob = (int)(rng() % (uint64_t)span) - 1;
                int nb = (int)(rng() % (uint64_t)span) - 1;
                if (rng() % 50 == 0) {
                        int64_t v = (int64_t)(rng() % 1000);
                        if (nb >= 0) {
                                loy_rfm_set(rfm, d, nb, v);
                                brute[d][nb] = v;
                        }
                } else {
                        loy_rfm_move(rfm, d, ob, nb);
                        if (ob >= 0 && ob != nb)
                                brute[d][ob]--;
                        if (nb >= 0 && ob != nb)
                                brute[d][nb]++;
                }
                if (step % 97 == 0) {
                        int q = (int)(rng() % (LOY_HIST_BINS + 1));
                        int64_t below = 0, total = 0;
                        for (int i = 0; i < LOY_HIST_BINS; i++) {
                                if (i < q)
                                        below += brute[d][i];
                                total += brute[d][i];
                        }
                        CU_ASSERT_EQUAL_FATAL(loy_rfm_below(rfm, d, q), below);
                        CU_ASSERT_EQUAL_FATAL(loy_rfm_total(rfm, d), total);
                        if (q < LOY_HIST_BINS)
                                CU_ASSERT_EQUAL_FATAL(loy_rfm_count(rfm, d, q),
                                                      brute[d][q]);
                        CU_ASSERT_EQUAL_FATAL(
                            loy_rfm_below(rfm, d, LOY_HIST_BINS), total);
                }
        }
        /* every bin, every dimension at the end */
        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                int64_t below = 0;
                for (int i = 0; i < LOY_HIST_BINS; i++) {
                        CU_ASSERT_EQUAL_FATAL(
                            loy_rfm_below(rfm, (loy_dim_t)d, i), below);
                        CU_ASSERT_EQUAL_FATAL(
                            loy_rfm_count(rfm, (loy_dim_t)d, i), brute[d][i]);
                        below += brute[d][i];
                }
        }
        /* out-of-range bins are ignored */
        loy_rfm_move(rfm, LOY_DIM_RECENCY, LOY_HIST_BINS, -5);
        loy_rfm_set(rfm, LOY_DIM_RECENCY, LOY_HIST_BINS, 9);
        CU_ASSERT_EQUAL(loy_rfm_count(rfm, LOY_DIM_RECENCY, -1), 0);
        loy_rfm_clear(rfm);
        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                CU_ASSERT_EQUAL(loy_rfm_total(rfm, (loy_dim_t)d), 0);
                CU_ASSERT_EQUAL(loy_rfm_below(rfm, (loy_dim_t)d, LOY_HIST_BINS),
                                0);
        }
        loy_rfm_destroy(rfm);
}

/*
 * Ten customers, k = 1..10: last purchase in week k, purchase_days 11 - k
 * (so F runs the other way), net spend 10 k. With one customer per bin the
 * midpoint rank of the k-th is (k - 0.5) / 10, so the scores are
 * 1 1 2 2 3 3 4 4 5 5.
 */
static void test_quintiles(void) {
        static const int q[10] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
        /* segments by the map, with purchase_days 10 .. 1 */
        static const int seg[10] = {
            LOY_SEG_CANT_LOSE,
            LOY_SEG_CANT_LOSE, /* R1 F5 */
            LOY_SEG_AT_RISK,
            LOY_SEG_AT_RISK, /* R2 F4 M2 */
            LOY_SEG_NEEDS_ATTENTION,
            LOY_SEG_NEEDS_ATTENTION, /* R3 F3 */
            LOY_SEG_POTENTIAL,
            LOY_SEG_POTENTIAL, /* R4 F2 */
            LOY_SEG_POTENTIAL, /* R5 F1, 2 days */
            LOY_SEG_NEW,       /* R5, 1 day */
        };
        /* loyalty (R+F+M)/3 in tenths: 23 23 27 27 30 30 33 33 37 37;
         * group floor(4 (below + 1) / 10): 0.4 1.2 2.0 2.8 3.6 */
        static const int group[10] = {0, 0, 1, 1, 2, 2, 2, 2, 3, 3};
        loy_rfm_t *rfm = loy_rfm_create();
        loy_cust_t c[10];

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        for (int k = 1; k <= 10; k++) {
                mk(&c[k - 1], E1990 + (1000 + k) * WEEK, 11 - k, 10.0 * k);
                add_rfm(rfm, &c[k - 1]);
        }
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_MONETARY), 10);
        for (int pass = 0; pass < 3; pass++) {
                for (int i = 0; i < 10; i++) {
                        score(rfm, &c[i], NULL);
                        CU_ASSERT_EQUAL(c[i].r_score, q[i]);
                        CU_ASSERT_EQUAL(c[i].f_score, q[9 - i]);
                        CU_ASSERT_EQUAL(c[i].m_score, q[i]);
                        CU_ASSERT_EQUAL(c[i].segment, seg[i]);
                        CU_ASSERT(fabs(c[i].loyalty_score -
                                       (q[i] + q[9 - i] + q[i]) / 3.0) < 1e-12);
                        if (pass > 0)
                                CU_ASSERT_EQUAL(c[i].loyalty_group, group[i]);
                }
                CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_LOYALTY), 10);
        }
        CU_ASSERT_EQUAL(loy_rfm_count(rfm, LOY_DIM_LOYALTY, 23), 2);
        CU_ASSERT_EQUAL(loy_rfm_count(rfm, LOY_DIM_LOYALTY, 37), 2);

        /* weights: R counts double; (2*1 + 5 + 1) / 4 = 2 */
        {
                const double w[3] = {2, 1, 1};
                const double w2[3] = {4, 2, 2};
                const double wr[3] = {1, -1, 0};
                loy_cust_t t = c[0];
                loy_rfm_score(rfm, &t, w);
                CU_ASSERT_EQUAL(t.loyalty_score, 2.0);
                loy_rfm_score(rfm, &t, w2);
                CU_ASSERT_EQUAL(t.loyalty_score, 2.0);
                t = c[6];
                loy_rfm_score(rfm, &t, wr); /* negative counts as 0 */
                CU_ASSERT_EQUAL(t.loyalty_score, 4.0);
        }

        /* ties: a customer in the same bin as c[4] (week 1005) ranks
         * (4 + 2/2) / 11 -> 1 + floor(25/11) = 3 */
        {
                loy_cust_t t;
                mk(&t, E1990 + 1005 * WEEK + DAY, 6, 50);
                add_rfm(rfm, &t);
                loy_rfm_score(rfm, &t, NULL);
                CU_ASSERT_EQUAL(t.r_score, 3);
        }
        loy_rfm_destroy(rfm);
}

static void test_small_populations(void) {
        loy_rfm_t *rfm = loy_rfm_create();
        loy_cust_t c, d, n, t;

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        /* nobody counted: 3s, and the group from the cut points */
        mk(&c, E1990 + 1500 * WEEK, 2, 100);
        t = c;
        loy_rfm_score(rfm, &t, NULL);
        CU_ASSERT_EQUAL(t.r_score, 3);
        CU_ASSERT_EQUAL(t.f_score, 3);
        CU_ASSERT_EQUAL(t.m_score, 3);
        CU_ASSERT_EQUAL(t.loyalty_score, 3.0);
        CU_ASSERT_EQUAL(t.loyalty_group, 2); /* 3 <= score < 4: high */
        CU_ASSERT_EQUAL(t.segment, LOY_SEG_NEEDS_ATTENTION);

        /* a population of one: midpoint rank 0.5 -> 3 */
        add_rfm(rfm, &c);
        score(rfm, &c, NULL);
        CU_ASSERT_EQUAL(c.r_score, 3);
        CU_ASSERT_EQUAL(c.loyalty_group, 2);
        CU_ASSERT_EQUAL(loy_rfm_count(rfm, LOY_DIM_LOYALTY, 30), 1);
        /* rescoring the one does not count it twice */
        score(rfm, &c, NULL);
        CU_ASSERT_EQUAL(c.loyalty_group, 2);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_LOYALTY), 1);

        /* four in one bin: all (0 + 4/2) / 4 = 0.5 -> 3 */
        for (int i = 0; i < 3; i++)
                add_rfm(rfm, &c);
        loy_rfm_score(rfm, &c, NULL);
        CU_ASSERT_EQUAL(c.r_score, 3);
        CU_ASSERT_EQUAL(c.m_score, 3);

        /* one more above those four: (4 + 1/2) / 5 -> 1 + floor(4.5) */
        mk(&d, E1990 + 1600 * WEEK, 9, 5000);
        add_rfm(rfm, &d);
        score(rfm, &d, NULL);
        CU_ASSERT_EQUAL(d.r_score, 5);
        CU_ASSERT_EQUAL(d.f_score, 5);
        CU_ASSERT_EQUAL(d.m_score, 5);
        CU_ASSERT_EQUAL(d.segment, LOY_SEG_CHAMPION);
        /* loyalty: c alone at 30, d at 50: (1 + 1/2) / 2 -> floor(3.0) */
        CU_ASSERT_EQUAL(d.loyalty_group, 3);
        /* the four now rank (0 + 4/2) / 5 -> 1 + floor(2.0) = 3, and c
         * against d in loyalty: (0 + 1/2) / 2 -> floor(1.0) = medium */
        loy_rfm_score(rfm, &c, NULL);
        CU_ASSERT_EQUAL(c.r_score, 3);
        CU_ASSERT_EQUAL(c.loyalty_group, 1);
        /* a weaker one at the bottom: (0 + 1/2) / 6 -> 1 */
        mk(&t, E1990 + 1400 * WEEK, 1, 1);
        add_rfm(rfm, &t);
        loy_rfm_score(rfm, &t, NULL);
        CU_ASSERT_EQUAL(t.r_score, 1);
        CU_ASSERT_EQUAL(t.f_score, 1);
        CU_ASSERT_EQUAL(t.m_score, 1);
        CU_ASSERT_EQUAL(t.segment, LOY_SEG_LOST);
        CU_ASSERT_EQUAL(t.loyalty_group, 0);

        /* never bought: zeros, no bins, segment none */
        loy_feat_init(&n, "n");
        n.r_score = 4; /* stale */
        loy_rfm_score(rfm, &n, NULL);
        CU_ASSERT_EQUAL(n.r_score, 0);
        CU_ASSERT_EQUAL(n.f_score, 0);
        CU_ASSERT_EQUAL(n.m_score, 0);
        CU_ASSERT_EQUAL(n.loyalty_score, 0.0);
        CU_ASSERT_EQUAL(n.segment, LOY_SEG_NONE);
        CU_ASSERT_EQUAL(loy_rfm_bin(&n, LOY_DIM_LOYALTY), -1);
        CU_ASSERT_EQUAL(loy_rfm_bin_score(rfm, LOY_DIM_RECENCY, -1), 0);
        loy_rfm_destroy(rfm);
}

/* Loyalty groups from the cut points 2, 3, 4 when nobody else is in the
 * loyalty histogram, then from quartiles. */
static void test_loyalty_groups(void) {
        const double only_r[3] = {1, 0, 0};
        loy_rfm_t *rfm = loy_rfm_create();
        loy_cust_t c[10];

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        for (int k = 1; k <= 10; k++) {
                mk(&c[k - 1], E1990 + (1000 + k) * WEEK, 11 - k, 10.0 * k);
                add_rfm(rfm, &c[k - 1]);
        }
        /* loyalty histogram empty: score R only */
        loy_rfm_score(rfm, &c[0], only_r); /* R 1 */
        CU_ASSERT_EQUAL(c[0].loyalty_score, 1.0);
        CU_ASSERT_EQUAL(c[0].loyalty_group, 0);
        loy_rfm_score(rfm, &c[2], only_r); /* R 2 */
        CU_ASSERT_EQUAL(c[2].loyalty_group, 1);
        loy_rfm_score(rfm, &c[4], only_r); /* R 3 */
        CU_ASSERT_EQUAL(c[4].loyalty_group, 2);
        loy_rfm_score(rfm, &c[6], only_r); /* R 4 */
        CU_ASSERT_EQUAL(c[6].loyalty_group, 3);
        loy_rfm_score(rfm, &c[9], only_r); /* R 5 */
        CU_ASSERT_EQUAL(c[9].loyalty_group, 3);
        /* equal weights: 7/3 -> 1, 11/3 -> 2 */
        loy_rfm_score(rfm, &c[0], NULL);
        CU_ASSERT_EQUAL(c[0].loyalty_group, 1);
        loy_rfm_score(rfm, &c[9], NULL);
        CU_ASSERT_EQUAL(c[9].loyalty_group, 2);

        /* quartiles: eight others at 10, 20, 30, 40 (two each) */
        loy_rfm_clear(rfm);
        for (int i = 0; i < 8; i++)
                loy_rfm_move(rfm, LOY_DIM_LOYALTY, -1, 10 + 10 * (i / 2));
        for (int i = 0; i < 10; i++)
                add_rfm(rfm, &c[i]);
        /* c[9] new at 37: (6 + 0.5) / 9 -> floor(2.89) = 2 */
        loy_feat_init(&c[9], "x");
        mk(&c[9], E1990 + 1010 * WEEK, 1, 100);
        loy_rfm_score(rfm, &c[9], NULL);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c[9], LOY_DIM_LOYALTY), 37);
        CU_ASSERT_EQUAL(c[9].loyalty_group, 2);
        /* moved there, it is not counted twice: same answer */
        loy_rfm_move(rfm, LOY_DIM_LOYALTY, -1, 37);
        loy_rfm_score(rfm, &c[9], NULL);
        CU_ASSERT_EQUAL(c[9].loyalty_group, 2);
        /* c[0] is one of the two at 10 and moves to 23: without it, one
         * at 10 and two at 20 are below, so (3 + 1/2) / 9 -> floor(1.56) */
        c[0].r_score = 1;
        c[0].loyalty_score = 1.0; /* bin 10 */
        loy_rfm_score(rfm, &c[0], NULL);
        CU_ASSERT_EQUAL(loy_rfm_bin(&c[0], LOY_DIM_LOYALTY), 23);
        CU_ASSERT_EQUAL(c[0].loyalty_group, 1);
        loy_rfm_destroy(rfm);
}

static void test_segments(void) {
        static const struct {
                int64_t days;
                int r, f, m, seg;
        } cases[] = {
            {0, 5, 5, 5, LOY_SEG_NONE},
            {1, 5, 1, 1, LOY_SEG_NEW},
            {1, 4, 5, 5, LOY_SEG_NEW},
            {1, 3, 3, 3, LOY_SEG_NEEDS_ATTENTION},
            {1, 2, 5, 5, LOY_SEG_HIBERNATING},
            {1, 1, 5, 5, LOY_SEG_LOST},
            {2, 4, 4, 1, LOY_SEG_CHAMPION},
            {9, 5, 5, 5, LOY_SEG_CHAMPION},
            {2, 4, 3, 5, LOY_SEG_POTENTIAL},
            {2, 5, 1, 1, LOY_SEG_POTENTIAL},
            {3, 3, 4, 1, LOY_SEG_LOYAL},
            {3, 3, 5, 5, LOY_SEG_LOYAL},
            {3, 3, 3, 5, LOY_SEG_NEEDS_ATTENTION},
            {3, 3, 1, 1, LOY_SEG_NEEDS_ATTENTION},
            {5, 2, 5, 1, LOY_SEG_CANT_LOSE},
            {5, 1, 5, 5, LOY_SEG_CANT_LOSE},
            {5, 1, 4, 5, LOY_SEG_CANT_LOSE},
            {5, 2, 4, 4, LOY_SEG_AT_RISK},
            {5, 1, 3, 5, LOY_SEG_AT_RISK},
            {5, 2, 3, 1, LOY_SEG_AT_RISK},
            {2, 2, 2, 5, LOY_SEG_HIBERNATING},
            {2, 2, 1, 1, LOY_SEG_HIBERNATING},
            {2, 1, 2, 5, LOY_SEG_LOST},
            {2, 1, 1, 1, LOY_SEG_LOST},
        };
        int seen[LOY_SEG__COUNT] = {0};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int s = loy_rfm_segment(cases[i].days, cases[i].r, cases[i].f,
                                        cases[i].m);
                CU_ASSERT_EQUAL(s, cases[i].seg);
                seen[cases[i].seg]++;
        }
        for (int s = 0; s < LOY_SEG__COUNT; s++)
                CU_ASSERT(seen[s] > 0);
        /* total: every score combination of a buyer has a segment, and
         * the counts over the 125 combinations are as in the table */
        {
                int n2[LOY_SEG__COUNT] = {0}, n1[LOY_SEG__COUNT] = {0};
                for (int r = 1; r <= 5; r++)
                        for (int f = 1; f <= 5; f++)
                                for (int m = 1; m <= 5; m++) {
                                        int a = loy_rfm_segment(2, r, f, m);
                                        int b = loy_rfm_segment(1, r, f, m);
                                        CU_ASSERT_FATAL(a > 0 &&
                                                        a < LOY_SEG__COUNT);
                                        CU_ASSERT_FATAL(b > 0 &&
                                                        b < LOY_SEG__COUNT);
                                        n2[a]++;
                                        n1[b]++;
                                }
                CU_ASSERT_EQUAL(n2[LOY_SEG_CHAMPION], 20); /* 2 x 2 x 5 */
                CU_ASSERT_EQUAL(n2[LOY_SEG_POTENTIAL], 30);
                CU_ASSERT_EQUAL(n2[LOY_SEG_LOYAL], 10);
                CU_ASSERT_EQUAL(n2[LOY_SEG_NEEDS_ATTENTION], 15);
                CU_ASSERT_EQUAL(n2[LOY_SEG_CANT_LOSE], 12); /* 2x(5+1) */
                CU_ASSERT_EQUAL(n2[LOY_SEG_AT_RISK], 18);   /* 2x(5+4) */
                CU_ASSERT_EQUAL(n2[LOY_SEG_HIBERNATING], 10);
                CU_ASSERT_EQUAL(n2[LOY_SEG_LOST], 10);
                CU_ASSERT_EQUAL(n2[LOY_SEG_NEW], 0);
                CU_ASSERT_EQUAL(n1[LOY_SEG_NEW], 50);
                CU_ASSERT_EQUAL(n1[LOY_SEG_NEEDS_ATTENTION], 25);
                CU_ASSERT_EQUAL(n1[LOY_SEG_HIBERNATING], 25);
                CU_ASSERT_EQUAL(n1[LOY_SEG_LOST], 25);
        }
}

/* Cut points fitted on a population score each of its customers as the
 * live ranks against exactly that population do; then a score depends on
 * the customer alone, whatever else has been applied. */
static void test_cut_points(void) {
        static loy_cust_t c[10];
        double rec[10], fr[10], mo[10];
        int64_t now = E1990 + 1011 * WEEK;
        loy_rfm_t *rfm = loy_rfm_create();
        loy_rfm_cuts_t cuts;
        const char *what;

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        for (int k = 1; k <= 10; k++) {
                loy_cust_t *x = &c[k - 1];
                mk(x, E1990 + (1000 + k) * WEEK, 11 - k, 10.0 * k);
                add_rfm(rfm, x);
                rec[k - 1] = loy_feat_recency_days(x, now);
                fr[k - 1] = (double)x->purchase_days;
                mo[k - 1] = loy_feat_monetary(x);
        }
        CU_ASSERT_EQUAL_FATAL(loy_rfm_fit_cuts(rec, fr, mo, 10, &cuts), 0);
        CU_ASSERT_TRUE(cuts.set);
        CU_ASSERT_EQUAL(loy_rfm_cuts_check(&cuts, &what), 0);
        /* quintiles of ten: two customers per score */
        CU_ASSERT_EQUAL(cuts.monetary[0], 30);
        CU_ASSERT_EQUAL(cuts.monetary[3], 90);
        CU_ASSERT_EQUAL(cuts.frequency[0], 3);
        CU_ASSERT_EQUAL(cuts.recency_days[3], 7 * 2);
        for (int i = 0; i < 10; i++) {
                loy_cust_t a = c[i], b = c[i];
                loy_rfm_score(rfm, &a, NULL);
                loy_rfm_score_cuts(&cuts, &b, NULL, now);
                CU_ASSERT_EQUAL(a.r_score, b.r_score);
                CU_ASSERT_EQUAL(a.f_score, b.f_score);
                CU_ASSERT_EQUAL(a.m_score, b.m_score);
                CU_ASSERT_EQUAL(a.segment, b.segment);
                CU_ASSERT_EQUAL(a.loyalty_score, b.loyalty_score);
        }
        /* the loyalty group from the fixed cut points 2, 3, 4 */
        {
                loy_cust_t b = c[0]; /* R1 F5 M1: 7/3 */
                loy_rfm_score_cuts(&cuts, &b, NULL, now);
                CU_ASSERT_EQUAL(b.loyalty_group, 1);
                b = c[9]; /* R5 F1 M5: 11/3 */
                loy_rfm_score_cuts(&cuts, &b, NULL, now);
                CU_ASSERT_EQUAL(b.loyalty_group, 2);
        }
        /* the same customer later: only its own recency moves its R */
        {
                loy_cust_t b = c[9];
                loy_rfm_score_cuts(&cuts, &b, NULL, now + 400 * DAY);
                CU_ASSERT_EQUAL(b.r_score, 1);
                CU_ASSERT_EQUAL(b.m_score, 5);
                CU_ASSERT_EQUAL(b.segment, LOY_SEG_LOST);
        }
        /* never bought: no scores */
        {
                loy_cust_t b;
                loy_feat_init(&b, "b");
                loy_rfm_score_cuts(&cuts, &b, NULL, now);
                CU_ASSERT_EQUAL(b.r_score, 0);
                CU_ASSERT_EQUAL(b.segment, LOY_SEG_NONE);
        }
        /* a score nobody reached: a cut nobody passes */
        {
                double one[3] = {5, 5, 5};
                loy_rfm_cuts_t k1;
                CU_ASSERT_EQUAL(loy_rfm_fit_cuts(one, one, one, 3, &k1), 0);
                CU_ASSERT_EQUAL(k1.frequency[0], 5); /* all score 3 */
                CU_ASSERT_EQUAL(k1.frequency[1], 5);
                CU_ASSERT_TRUE(k1.frequency[2] > 1e14);
                CU_ASSERT_TRUE(k1.recency_days[2] < -1e14);
                CU_ASSERT_EQUAL(loy_rfm_cuts_check(&k1, &what), 0);
                CU_ASSERT_EQUAL(loy_rfm_fit_cuts(one, one, one, 0, &k1), -1);
        }
        /* out of order: refused, naming the dimension */
        cuts.monetary[2] = cuts.monetary[3] + 1;
        CU_ASSERT_EQUAL(loy_rfm_cuts_check(&cuts, &what), -1);
        CU_ASSERT_STRING_EQUAL(what, "monetary");
        loy_rfm_destroy(rfm);
}

static void test_names(void) {
        static const char *const segs[] = {
            "none",    "new",       "champion",
            "loyal",   "potential", "needs_attention",
            "at_risk", "cant_lose", "hibernating",
            "lost",
        };
        for (int i = 0; i < LOY_SEG__COUNT; i++) {
                CU_ASSERT_STRING_EQUAL(loy_segment_name(i), segs[i]);
                CU_ASSERT_EQUAL(loy_segment_parse(segs[i]), i);
        }
        CU_ASSERT_STRING_EQUAL(loy_segment_name(LOY_SEG__COUNT), "unknown");
        CU_ASSERT_STRING_EQUAL(loy_segment_name(-1), "unknown");
        CU_ASSERT_EQUAL(loy_segment_parse("vip"), -1);
        CU_ASSERT_STRING_EQUAL(loy_loyalty_group_name(0), "low");
        CU_ASSERT_STRING_EQUAL(loy_loyalty_group_name(3), "very_high");
        CU_ASSERT_STRING_EQUAL(loy_loyalty_group_name(4), "unknown");
        CU_ASSERT_EQUAL(loy_loyalty_group_parse("high"), 2);
        CU_ASSERT_STRING_EQUAL(loy_dim_name(LOY_DIM_RECENCY), "recency");
        CU_ASSERT_STRING_EQUAL(loy_dim_name(LOY_DIM_LOYALTY), "loyalty");
        CU_ASSERT_STRING_EQUAL(loy_dim_name(LOY_DIM__COUNT), "unknown");
        CU_ASSERT_STRING_EQUAL(loy_feat_tier_name(1), "silver");
}

int main(void) {
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("rfm", NULL, NULL);
        if (!s || !CU_add_test(s, "bins", test_bins) ||
            !CU_add_test(s, "fenwick vs brute force", test_fenwick) ||
            !CU_add_test(s, "quintiles of ten", test_quintiles) ||
            !CU_add_test(s, "small populations", test_small_populations) ||
            !CU_add_test(s, "loyalty groups", test_loyalty_groups) ||
            !CU_add_test(s, "segments", test_segments) ||
            !CU_add_test(s, "cut points", test_cut_points) ||
            !CU_add_test(s, "names", test_names)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
