/*
 * loy_logreg: logistic regression, P(y = 1 | x) = 1 / (1 + exp(-(b + w.z)))
 * on standardised features z_i = (x_i - mean_i) / scale_i.
 *
 * Two ways to learn, same model: loy_logreg_train() fits a batch by
 * L2-penalised maximum likelihood (GSL BFGS, exact to the optimiser's
 * tolerance; sets the standardisation from the batch first), and
 * loy_logreg_update() takes one online SGD step, for learning in the
 * stream from delayed labels (the standardisation then stays as it is).
 * Pure: no I/O, no allocation after loy_logreg_new().
 */
#ifndef LOY_LOGREG_H
#define LOY_LOGREG_H

#include <stddef.h>

#define LOY_LOGREG_DIM_MAX 64

typedef struct loy_logreg {
        size_t dim;
        double bias;
        double w[LOY_LOGREG_DIM_MAX];
        double mean[LOY_LOGREG_DIM_MAX];  /* standardisation: 0 ... */
        double scale[LOY_LOGREG_DIM_MAX]; /* ... and 1 = none */
        long updates;                     /* online steps taken */
} loy_logreg_t;

/* Zero weights, no standardisation. -1 with errstr when dim is 0 or
 * above LOY_LOGREG_DIM_MAX. */
int loy_logreg_init(loy_logreg_t *lr, size_t dim, char *errstr,
                    size_t errstr_size);

/* Sets mean and scale (population standard deviation; 1 for a constant
 * column) from n rows of X (row-major, n x dim). */
void loy_logreg_standardise(loy_logreg_t *lr, const double *X, size_t n);

/* The linear score b + w.z (log-odds). */
double loy_logreg_logit(const loy_logreg_t *lr, const double *x);

/* P(y = 1 | x), in [0, 1], no overflow for any finite logit. */
double loy_logreg_predict(const loy_logreg_t *lr, const double *x);

/* One SGD step on (x, y) with learning rate eta and L2 penalty l2 (not on
 * the bias): w -= eta * ((p - y) z + l2 w), b -= eta * (p - y). */
void loy_logreg_update(loy_logreg_t *lr, const double *x, int y, double eta,
                       double l2);

/* Batch fit on n rows: standardises from X, then minimises
 * mean log loss + l2/2 |w|^2 from zero weights. Returns 0, or -1 with
 * errstr (no rows, non-finite feature, no convergence, out of memory). */
int loy_logreg_train(loy_logreg_t *lr, const double *X, const int *y, size_t n,
                     double l2, char *errstr, size_t errstr_size);

/* Mean log loss of the model on n rows (probabilities clamped to
 * [1e-15, 1 - 1e-15]). */
double loy_logreg_log_loss(const loy_logreg_t *lr, const double *X,
                           const int *y, size_t n);

#endif
