/* loy_rfm: see loy_rfm.h. */
#include "loy_rfm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOY_EPOCH_1990_MS 631152000000LL /* 1990-01-01, a Monday */
#define LOY_MS_PER_WEEK (7 * LOY_MS_PER_DAY)
#define LOG_BINS_PER_DOUBLING 64.0

/* One histogram: plain counts for O(1) reads of a bin, and a Fenwick tree
 * over them for O(log bins) counts below a bin. Every scored customer asks
 * four such ranks. */
typedef struct hist {
        int64_t count[LOY_HIST_BINS];
        int64_t tree[LOY_HIST_BINS + 1]; /* 1-based */
        int64_t total;
} hist_t;

struct loy_rfm {
        hist_t h[LOY_DIM__COUNT];
};

loy_rfm_t *loy_rfm_create(void) {
        return calloc(1, sizeof(loy_rfm_t));
}

void loy_rfm_destroy(loy_rfm_t *rfm) {
        free(rfm);
}

static int valid_dim(loy_dim_t dim) {
        return (int)dim >= 0 && dim < LOY_DIM__COUNT;
}

static int valid_bin(int bin) {
        return bin >= 0 && bin < LOY_HIST_BINS;
}

static void hist_add(hist_t *h, int bin, int64_t delta) {
        h->count[bin] += delta;
        h->total += delta;
        for (int i = bin + 1; i <= LOY_HIST_BINS; i += i & -i)
                h->tree[i] += delta;
}

/* Customers in bins [0, bin). */
static int64_t hist_below(const hist_t *h, int bin) {
        int64_t s = 0;
        for (int i = bin; i > 0; i -= i & -i)
                s += h->tree[i];
        return s;
}

static int clamp_bin(double v) {
        if (!(v > 0)) /* also NaN */
                return 0;
        if (v >= LOY_HIST_BINS - 1)
                return LOY_HIST_BINS - 1;
        return (int)v;
}

/* floor(64 log2(1 + v)): monotone, one bin per value for small counts. */
static int log_bin(double v) {
        if (!(v > 0))
                return 0;
        return clamp_bin(floor(LOG_BINS_PER_DOUBLING * log2(1.0 + v)));
}

int loy_rfm_bin(const loy_cust_t *c, loy_dim_t dim) {
        switch (dim) {
        case LOY_DIM_RECENCY: {
                int64_t d = c->last_purchase_ms - LOY_EPOCH_1990_MS;
                if (c->first_purchase_ms == 0)
                        return -1;
                if (d < 0)
                        return 0;
                return clamp_bin((double)(d / LOY_MS_PER_WEEK));
        }
        case LOY_DIM_FREQUENCY:
                if (c->first_purchase_ms == 0)
                        return -1;
                return log_bin((double)c->purchase_days);
        case LOY_DIM_MONETARY:
                if (c->first_purchase_ms == 0)
                        return -1;
                return log_bin(loy_feat_monetary(c));
        case LOY_DIM_LOYALTY:
                if (c->r_score == 0)
                        return -1;
                return clamp_bin(round(c->loyalty_score * 10));
        default:
                return -1;
        }
}

void loy_rfm_move(loy_rfm_t *rfm, loy_dim_t dim, int old_bin, int new_bin) {
        if (!valid_dim(dim) || old_bin == new_bin)
                return;
        if (valid_bin(old_bin))
                hist_add(&rfm->h[dim], old_bin, -1);
        if (valid_bin(new_bin))
                hist_add(&rfm->h[dim], new_bin, 1);
}

void loy_rfm_set(loy_rfm_t *rfm, loy_dim_t dim, int bin, int64_t count) {
        hist_t *h;

        if (!valid_dim(dim) || !valid_bin(bin))
                return;
        h = &rfm->h[dim];
        hist_add(h, bin, count - h->count[bin]);
}

void loy_rfm_clear(loy_rfm_t *rfm) {
        memset(rfm, 0, sizeof(*rfm));
}

int64_t loy_rfm_total(const loy_rfm_t *rfm, loy_dim_t dim) {
        return valid_dim(dim) ? rfm->h[dim].total : 0;
}

int64_t loy_rfm_count(const loy_rfm_t *rfm, loy_dim_t dim, int bin) {
        if (!valid_dim(dim) || !valid_bin(bin))
                return 0;
        return rfm->h[dim].count[bin];
}

int64_t loy_rfm_below(const loy_rfm_t *rfm, loy_dim_t dim, int bin) {
        if (!valid_dim(dim) || bin <= 0)
                return 0;
        if (bin > LOY_HIST_BINS)
                bin = LOY_HIST_BINS;
        return hist_below(&rfm->h[dim], bin);
}

/* floor(k * (below + in/2) / total) in integers, clamped to 0..k-1: exact,
 * so a customer on a quantile boundary lands the same way every time.
 * Counts are clamped at 0 because a histogram loaded from a Redis that
 * lost writes may hold a negative bin. */
static int rank_bucket(int64_t below, int64_t in, int64_t total, int k) {
        int64_t b;

        if (below < 0)
                below = 0;
        if (in < 0)
                in = 0;
        if (total < below + in)
                total = below + in;
        if (total <= 0)
                return -1;
        b = (int64_t)k * (2 * below + in) / (2 * total);
        if (b < 0)
                b = 0;
        if (b > k - 1)
                b = k - 1;
        return (int)b;
}

int loy_rfm_bin_score(const loy_rfm_t *rfm, loy_dim_t dim, int bin) {
        int b;

        if (!valid_dim(dim) || !valid_bin(bin))
                return 0;
        b = rank_bucket(loy_rfm_below(rfm, dim, bin),
                        loy_rfm_count(rfm, dim, bin), loy_rfm_total(rfm, dim),
                        5);
        return b < 0 ? 3 : b + 1;
}

int loy_rfm_segment(int64_t purchase_days, int r, int f, int m) {
        if (purchase_days <= 0)
                return LOY_SEG_NONE;
        if (purchase_days == 1) {
                if (r >= 4)
                        return LOY_SEG_NEW;
                if (r == 3)
                        return LOY_SEG_NEEDS_ATTENTION;
                return r == 2 ? LOY_SEG_HIBERNATING : LOY_SEG_LOST;
        }
        if (r >= 4)
                return f >= 4 ? LOY_SEG_CHAMPION : LOY_SEG_POTENTIAL;
        if (r == 3)
                return f >= 4 ? LOY_SEG_LOYAL : LOY_SEG_NEEDS_ATTENTION;
        if (f >= 5 || (f == 4 && m >= 5))
                return LOY_SEG_CANT_LOSE;
        if (f >= 3)
                return LOY_SEG_AT_RISK;
        return r == 2 ? LOY_SEG_HIBERNATING : LOY_SEG_LOST;
}

/* The weighted mean of the R, F, M scores, normalised as loy_rfm_score says. */
static double weighted(const loy_cust_t *c, const double w[3]) {
        double wr = 1, wf = 1, wm = 1, sum;
        if (w) {
                wr = w[0] > 0 ? w[0] : 0;
                wf = w[1] > 0 ? w[1] : 0;
                wm = w[2] > 0 ? w[2] : 0;
        }
        sum = wr + wf + wm;
        if (!(sum > 0) || !isfinite(sum)) {
                wr = wf = wm = 1;
                sum = 3;
        }
        return (wr * c->r_score + wf * c->f_score + wm * c->m_score) / sum;
}

/* A customer who never bought: no scores, segment none. */
static void unscored(loy_cust_t *c) {
        c->r_score = c->f_score = c->m_score = 0;
        c->loyalty_score = 0;
        c->loyalty_group = 0;
        c->segment = LOY_SEG_NONE;
}

static int group_from_cut_points(double score) {
        if (score < 2)
                return 0;
        if (score < 3)
                return 1;
        if (score < 4)
                return 2;
        return 3;
}

void loy_rfm_score(const loy_rfm_t *rfm, loy_cust_t *c, const double w[3]) {
        int old_bin = loy_rfm_bin(c, LOY_DIM_LOYALTY);
        int new_bin, b;
        int64_t below, in, others;

        if (c->first_purchase_ms == 0) {
                unscored(c);
                return;
        }
        c->r_score = loy_rfm_bin_score(rfm, LOY_DIM_RECENCY,
                                       loy_rfm_bin(c, LOY_DIM_RECENCY));
        c->f_score = loy_rfm_bin_score(rfm, LOY_DIM_FREQUENCY,
                                       loy_rfm_bin(c, LOY_DIM_FREQUENCY));
        c->m_score = loy_rfm_bin_score(rfm, LOY_DIM_MONETARY,
                                       loy_rfm_bin(c, LOY_DIM_MONETARY));

        c->loyalty_score = weighted(c, w);

        /* Rank as if c had already left its old loyalty bin for the new
         * one, which the caller does next. */
        new_bin = loy_rfm_bin(c, LOY_DIM_LOYALTY);
        below = loy_rfm_below(rfm, LOY_DIM_LOYALTY, new_bin);
        in = loy_rfm_count(rfm, LOY_DIM_LOYALTY, new_bin);
        others = loy_rfm_total(rfm, LOY_DIM_LOYALTY);
        if (old_bin >= 0) {
                others--;
                if (old_bin < new_bin)
                        below--;
                else if (old_bin == new_bin)
                        in--;
        }
        b = others > 0 ? rank_bucket(below, in + 1, others + 1, 4) : -1;
        c->loyalty_group = b < 0 ? group_from_cut_points(c->loyalty_score) : b;

        c->segment = loy_rfm_segment(c->purchase_days, c->r_score, c->f_score,
                                     c->m_score);
}

static int score_at_least(double v, const double cut[4]) {
        int s = 1;
        for (int k = 0; k < 4; k++)
                s += v >= cut[k];
        return s;
}

static int score_at_most(double v, const double cut[4]) {
        int s = 1;
        for (int k = 0; k < 4; k++)
                s += v <= cut[k];
        return s;
}

void loy_rfm_score_cuts(const loy_rfm_cuts_t *cuts, loy_cust_t *c,
                        const double w[3], int64_t now_ms) {
        if (c->first_purchase_ms == 0) {
                unscored(c);
                return;
        }
        c->r_score =
            score_at_most(loy_feat_recency_days(c, now_ms), cuts->recency_days);
        c->f_score = score_at_least((double)c->purchase_days, cuts->frequency);
        c->m_score = score_at_least(loy_feat_monetary(c), cuts->monetary);
        c->loyalty_score = weighted(c, w);
        c->loyalty_group = group_from_cut_points(c->loyalty_score);
        c->segment = loy_rfm_segment(c->purchase_days, c->r_score, c->f_score,
                                     c->m_score);
}

static int cmp_dbl(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* Cuts "at least" over sorted values v[0..n): the smallest value whose
 * midpoint-rank score reaches k + 2 (rank_bucket's formula). */
static void fit_dim(double *v, size_t n, double cut[4], double none) {
        qsort(v, n, sizeof(*v), cmp_dbl);
        for (int k = 0; k < 4; k++)
                cut[k] = none;
        for (size_t i = 0; i < n;) {
                size_t j = i;
                int score;
                while (j < n && v[j] == v[i])
                        j++;
                score =
                    rank_bucket((int64_t)i, (int64_t)(j - i), (int64_t)n, 5) +
                    1;
                for (int k = 0; k < 4; k++)
                        if (score >= k + 2 && cut[k] == none)
                                cut[k] = v[i];
                i = j;
        }
}

int loy_rfm_fit_cuts(const double *recency_days, const double *frequency,
                     const double *monetary, size_t n, loy_rfm_cuts_t *out) {
        double *v;
        if (n == 0 || !(v = malloc(n * sizeof(*v))))
                return -1;
        /* recency ranks the other way: fewer days is better */
        for (size_t i = 0; i < n; i++)
                v[i] = -recency_days[i];
        fit_dim(v, n, out->recency_days, 1e15);
        for (int k = 0; k < 4; k++)
                out->recency_days[k] = -out->recency_days[k];
        memcpy(v, frequency, n * sizeof(*v));
        fit_dim(v, n, out->frequency, 1e15);
        memcpy(v, monetary, n * sizeof(*v));
        fit_dim(v, n, out->monetary, 1e15);
        free(v);
        out->set = 1;
        return 0;
}

int loy_rfm_cuts_check(const loy_rfm_cuts_t *cuts, const char **what) {
        const double *d[3] = {cuts->recency_days, cuts->frequency,
                              cuts->monetary};
        static const char *const names[3] = {"recency_days", "frequency",
                                             "monetary"};
        for (int i = 0; i < 3; i++)
                for (int k = 0; k < 4; k++)
                        if (!isfinite(d[i][k]) ||
                            (k && (i == 0 ? d[i][k] > d[i][k - 1]
                                          : d[i][k] < d[i][k - 1]))) {
                                *what = names[i];
                                return -1;
                        }
        return 0;
}

static const char *const seg_names[LOY_SEG__COUNT] = {
    "none",    "new",       "champion",
    "loyal",   "potential", "needs_attention",
    "at_risk", "cant_lose", "hibernating",
    "lost",
};

static const char *const group_names[4] = {
    "low",
    "medium",
    "high",
    "very_high",
};

static const char *const dim_names[LOY_DIM__COUNT] = {
    "recency",
    "frequency",
    "monetary",
    "loyalty",
};

const char *loy_segment_name(int seg) {
        if (seg < 0 || seg >= LOY_SEG__COUNT)
                return "unknown";
        return seg_names[seg];
}

const char *loy_loyalty_group_name(int group) {
        if (group < 0 || group > 3)
                return "unknown";
        return group_names[group];
}

const char *loy_dim_name(loy_dim_t dim) {
        if (!valid_dim(dim))
                return "unknown";
        return dim_names[dim];
}

int loy_segment_parse(const char *name) {
        for (int i = 0; i < LOY_SEG__COUNT; i++)
                if (!strcmp(name, seg_names[i]))
                        return i;
        return -1;
}

int loy_loyalty_group_parse(const char *name) {
        for (int i = 0; i < 4; i++)
                if (!strcmp(name, group_names[i]))
                        return i;
        return -1;
}
