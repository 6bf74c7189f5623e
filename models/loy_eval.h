/*
 * loy_eval: metrics for scoring models (loyaltyctl eval). Pure.
 */
#ifndef LOY_EVAL_H
#define LOY_EVAL_H

#include <stddef.h>

/*
 * Area under the ROC curve of score for the binary label (nonzero = 1):
 * the probability that a random positive scores above a random negative,
 * ties counting one half (Mann-Whitney U / (n_pos n_neg)). O(n log n).
 * Returns the AUC, or NAN when a class is empty, a score is NaN or memory
 * runs out.
 */
double loy_eval_auc(const double *score, const int *label, size_t n);

/* Mean absolute error of pred against actual; 0 for n = 0. */
double loy_eval_mae(const double *pred, const double *actual, size_t n);

/*
 * Rank groups: group[i] in 0..ngroups-1 by the rank of key[i], group 0
 * holding the highest keys, each group n/ngroups items (the first n %
 * ngroups groups one more); equal keys are split by index (stable).
 * Returns 0, or -1 for ngroups < 1 or out of memory.
 */
int loy_eval_rank_groups(const double *key, size_t n, int ngroups, int *group);

#endif
