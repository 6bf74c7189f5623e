/*
 * loy_rfm: RFM scores 1..5 against the whole customer population, the
 * weighted loyalty score with its quartile group, and named segments.
 *
 * The population is summarised by fixed-bin histograms (bounded memory
 * whatever the number of customers). Each histogram counts every customer
 * once, in the bin of its current value: when a customer changes, its old
 * bin is decremented and the new one incremented. The state store keeps the
 * same counts in Redis (loy:hist:<dim>), moved by each batch's aggregate
 * script, so all processes share one population and replays change
 * nothing.
 *
 * Recency is ranked by the week of the last purchase (a later week ranks
 * higher), which does not drift as the clock moves.
 *
 * Bins (all monotone in the value, so ranks by bin are ranks by value):
 *   recency    UTC weeks from 1990-01-01 to the last purchase, clamped to
 *              0..4095 (4096 weeks reach 2068; days would stop in 2001)
 *   frequency  floor(64 * log2(1 + purchase_days)), clamped to 0..4095:
 *              one bin per value up to ~90 purchase days, then ~1 % wide
 *   monetary   floor(64 * log2(1 + max(0, net spend))), clamped likewise
 *   loyalty    round(10 * loyalty_score), 10..50
 * A customer that never bought is in no R/F/M bin; one not scored yet
 * (r_score 0) is in no loyalty bin.
 *
 * Scores: with `below` customers in lower bins, `in` in the same bin and
 * `total` in all, the rank is F = (below + in / 2) / total and the score is
 * 1 + floor(5 F), clamped to 1..5 (3 for an empty histogram). The loyalty
 * score is the weighted mean of R, F and M; its group is floor(4 F) on the
 * loyalty histogram (0 low, 1 medium, 2 high, 3 very high), or from fixed
 * cut points 2, 3, 4 on the score when that histogram holds no other
 * customer (a quartile of one says nothing).
 *
 * Segments, from purchase_days and the R, F, M scores; every customer gets
 * exactly one (first matching line wins):
 *
 *   segment          rule
 *   none             never bought
 *   new              one purchase day, R >= 4
 *   needs_attention  one purchase day, R == 3
 *   hibernating      one purchase day, R == 2
 *   lost             one purchase day, R == 1
 *   champion         R >= 4, F >= 4
 *   potential        R >= 4, F <= 3
 *   loyal            R == 3, F >= 4
 *   needs_attention  R == 3, F <= 3
 *   cant_lose        R <= 2, F == 5, or F == 4 and M == 5
 *   at_risk          R <= 2, F >= 3
 *   hibernating      R == 2, F <= 2
 *   lost             R == 1, F <= 2
 *
 * A one-time buyer is never loyal, at risk or "can't lose": there is no
 * habit to lose yet, however high the F rank of one day may be when most
 * customers bought once.
 */
#ifndef LOY_RFM_H
#define LOY_RFM_H

#include <stddef.h>
#include <stdint.h>

#include "loy_feat.h"

typedef enum {
        LOY_DIM_RECENCY = 0, /* bin = last purchase week since 1990 */
        LOY_DIM_FREQUENCY,   /* bin from purchase_days, log-spaced */
        LOY_DIM_MONETARY,    /* bin from net spend, log-spaced */
        LOY_DIM_LOYALTY,     /* bin = loyalty score in tenths (10..50) */
        LOY_DIM__COUNT
} loy_dim_t;

#define LOY_HIST_BINS 4096 /* bins per dimension */

typedef enum {
        LOY_SEG_NONE = 0, /* never bought: browse only */
        LOY_SEG_NEW,
        LOY_SEG_CHAMPION,
        LOY_SEG_LOYAL,
        LOY_SEG_POTENTIAL,
        LOY_SEG_NEEDS_ATTENTION,
        LOY_SEG_AT_RISK,
        LOY_SEG_CANT_LOSE,
        LOY_SEG_HIBERNATING,
        LOY_SEG_LOST,
        LOY_SEG__COUNT
} loy_segment_t;

typedef struct loy_rfm loy_rfm_t;

/* Owned by the caller; free with loy_rfm_destroy(). NULL on no memory. */
loy_rfm_t *loy_rfm_create(void);
void loy_rfm_destroy(loy_rfm_t *rfm);

/* Bin of customer c in dimension dim, or -1 when c is not counted there
 * (never bought; for LOY_DIM_LOYALTY: not scored yet). */
int loy_rfm_bin(const loy_cust_t *c, loy_dim_t dim);

/* Moves one count from old_bin to new_bin (either may be -1 = none). */
void loy_rfm_move(loy_rfm_t *rfm, loy_dim_t dim, int old_bin, int new_bin);
/* Sets a bin's count outright (loading from Redis). */
void loy_rfm_set(loy_rfm_t *rfm, loy_dim_t dim, int bin, int64_t count);
/* Zeroes every count of every dimension. */
void loy_rfm_clear(loy_rfm_t *rfm);
int64_t loy_rfm_total(const loy_rfm_t *rfm, loy_dim_t dim);
/* Count in one bin, and in all bins below it; O(1) and O(log bins). */
int64_t loy_rfm_count(const loy_rfm_t *rfm, loy_dim_t dim, int bin);
int64_t loy_rfm_below(const loy_rfm_t *rfm, loy_dim_t dim, int bin);
/* 1..5 score of bin in dim (3 when the histogram is empty); 0 for bin -1. */
int loy_rfm_bin_score(const loy_rfm_t *rfm, loy_dim_t dim, int bin);

/* Scores c in place: r/f/m_score, loyalty_score, loyalty_group, segment.
 * Weights are R, F, M and are normalised to sum to 1 (negative ones count
 * as 0; all 0 or w NULL: equal weights). Quantiles are taken at the bin
 * midpoint rank, so a population of one scores 3.
 *
 * c must already be counted in its current R/F/M bins (move them first).
 * Its loyalty bin depends on the result, so it is moved afterwards
 * (loy_rfm_bin before and after the call): the group is ranked as if that
 * move had been made, so scoring twice gives the same answer. A customer
 * that never bought gets zeros and LOY_SEG_NONE. */
void loy_rfm_score(const loy_rfm_t *rfm, loy_cust_t *c, const double w[3]);

/*
 * Fixed cut points, fitted on a population once (loyaltyctl fit, into the
 * model file) instead of ranks against the live population. A score is
 * then a function of the customer alone, so the same input gives the same
 * scores and segments whatever the order in which customers are applied,
 * the batching or a redo (docs/guarantees.md). For each of R, F and M, cut
 * k (0..3) is the value a customer needs for a score of at least k + 2:
 * recency in days since the last purchase at scoring time (a score needs
 * at most that many; cuts do not increase), purchase days and net spend (a
 * score needs at least that much; cuts do not decrease). The loyalty group
 * then comes from the fixed cut points 2, 3, 4 on the loyalty score.
 */
typedef struct loy_rfm_cuts {
        int set; /* 0: rank against the live population */
        double recency_days[4];
        double frequency[4];
        double monetary[4];
} loy_rfm_cuts_t;

/* Cut points that give each of n customers (recency in days at the fit's
 * end, purchase days, net spend) the score loy_rfm_score would give it
 * against exactly that population: 1 + floor(5 F) at the midpoint rank F.
 * A score no customer reaches gets a cut no customer can pass. -1 for
 * n == 0 or out of memory. */
int loy_rfm_fit_cuts(const double *recency_days, const double *frequency,
                     const double *monetary, size_t n, loy_rfm_cuts_t *out);

/* 0 when the cuts are ordered as above and finite, else -1 with the
 * dimension's name in *what. */
int loy_rfm_cuts_check(const loy_rfm_cuts_t *cuts, const char **what);

/* As loy_rfm_score, from cut points, at event time now_ms (recency). */
void loy_rfm_score_cuts(const loy_rfm_cuts_t *cuts, loy_cust_t *c,
                        const double w[3], int64_t now_ms);

/* The segment map above; r, f, m are 1..5 scores. */
int loy_rfm_segment(int64_t purchase_days, int r, int f, int m);

/* Names: "none", "new", ... "lost"; "low", "medium", "high", "very_high";
 * "recency", "frequency", "monetary", "loyalty" (the Redis hist keys).
 * "unknown" when out of range. */
const char *loy_segment_name(int seg);
const char *loy_loyalty_group_name(int group);
const char *loy_dim_name(loy_dim_t dim);
/* Inverse of loy_segment_name and loy_loyalty_group_name, -1 if unknown. */
int loy_segment_parse(const char *name);
int loy_loyalty_group_parse(const char *name);

#endif
