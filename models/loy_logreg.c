/* loy_logreg: see loy_logreg.h. */
#include "loy_logreg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>

int loy_logreg_init(loy_logreg_t *lr, size_t dim, char *errstr,
                    size_t errstr_size) {
        if (dim == 0 || dim > LOY_LOGREG_DIM_MAX) {
                snprintf(errstr, errstr_size,
                         "logistic regression: dim %zu not in 1..%d", dim,
                         LOY_LOGREG_DIM_MAX);
                return -1;
        }
        memset(lr, 0, sizeof(*lr));
        lr->dim = dim;
        for (size_t i = 0; i < dim; i++)
                lr->scale[i] = 1;
        return 0;
}

void loy_logreg_standardise(loy_logreg_t *lr, const double *X, size_t n) {
        for (size_t j = 0; j < lr->dim; j++) {
                double mean = 0, m2 = 0;
                /* Welford: stable for large, nearly constant columns */
                for (size_t i = 0; i < n; i++) {
                        double v = X[i * lr->dim + j], d = v - mean;
                        mean += d / (double)(i + 1);
                        m2 += d * (v - mean);
                }
                lr->mean[j] = n ? mean : 0;
                lr->scale[j] = n && m2 > 0 ? sqrt(m2 / (double)n) : 1;
        }
}

double loy_logreg_logit(const loy_logreg_t *lr, const double *x) {
        double s = lr->bias;
        for (size_t j = 0; j < lr->dim; j++)
                s += lr->w[j] * (x[j] - lr->mean[j]) / lr->scale[j];
        return s;
}

static double sigmoid(double l) {
        if (l >= 0)
                return 1 / (1 + exp(-l));
        return exp(l) / (1 + exp(l));
}

double loy_logreg_predict(const loy_logreg_t *lr, const double *x) {
        return sigmoid(loy_logreg_logit(lr, x));
}

void loy_logreg_update(loy_logreg_t *lr, const double *x, int y, double eta,
                       double l2) {
        double g = loy_logreg_predict(lr, x) - (y ? 1 : 0);

        for (size_t j = 0; j < lr->dim; j++) {
                double z = (x[j] - lr->mean[j]) / lr->scale[j];
                lr->w[j] -= eta * (g * z + l2 * lr->w[j]);
        }
        lr->bias -= eta * g;
        lr->updates++;
}

/* log(1 + e^l) without overflow */
static double softplus(double l) {
        return l > 0 ? l + log1p(exp(-l)) : log1p(exp(l));
}

struct batch {
        loy_logreg_t *lr;
        const double *X;
        const int *y;
        size_t n;
        double l2;
};

/* Mean log loss + l2/2 |w|^2 at v = (w, b), gradient into df. */
static double loss(const gsl_vector *v, void *vp, gsl_vector *df) {
        struct batch *bt = vp;
        loy_logreg_t *lr = bt->lr;
        size_t d = lr->dim;
        double f = 0, gb = 0, gw[LOY_LOGREG_DIM_MAX];

        for (size_t j = 0; j < d; j++) {
                lr->w[j] = gsl_vector_get(v, j);
                gw[j] = 0;
        }
        lr->bias = gsl_vector_get(v, d);
        for (size_t i = 0; i < bt->n; i++) {
                const double *x = bt->X + i * d;
                double l = loy_logreg_logit(lr, x);
                /* -log p(y) = softplus(l) - y l */
                f += softplus(l) - (bt->y[i] ? l : 0);
                if (df) {
                        double g = sigmoid(l) - (bt->y[i] ? 1 : 0);
                        for (size_t j = 0; j < d; j++)
                                gw[j] +=
                                    g * (x[j] - lr->mean[j]) / lr->scale[j];
                        gb += g;
                }
        }
        f /= (double)bt->n;
        for (size_t j = 0; j < d; j++)
                f += bt->l2 / 2 * lr->w[j] * lr->w[j];
        if (df) {
                for (size_t j = 0; j < d; j++)
                        gsl_vector_set(
                            df, j, gw[j] / (double)bt->n + bt->l2 * lr->w[j]);
                gsl_vector_set(df, d, gb / (double)bt->n);
        }
        return f;
}

static double loss_f(const gsl_vector *v, void *vp) {
        return loss(v, vp, NULL);
}

static void loss_df(const gsl_vector *v, void *vp, gsl_vector *df) {
        loss(v, vp, df);
}

static void loss_fdf(const gsl_vector *v, void *vp, double *f, gsl_vector *df) {
        *f = loss(v, vp, df);
}

int loy_logreg_train(loy_logreg_t *lr, const double *X, const int *y, size_t n,
                     double l2, char *errstr, size_t errstr_size) {
        struct batch bt = {lr, X, y, n, l2 > 0 ? l2 : 0};
        size_t d = lr->dim;
        gsl_multimin_function_fdf fn = {loss_f, loss_df, loss_fdf, d + 1, &bt};
        gsl_multimin_fdfminimizer *s = NULL;
        gsl_vector *v = NULL;
        gsl_error_handler_t *old;
        int status = GSL_CONTINUE, conv = 0, rc = -1;

        if (!n) {
                snprintf(errstr, errstr_size, "logistic regression: no rows");
                return -1;
        }
        for (size_t i = 0; i < n * d; i++)
                if (!isfinite(X[i])) {
                        snprintf(errstr, errstr_size,
                                 "logistic regression: row %zu feature %zu "
                                 "is not finite",
                                 i / d, i % d);
                        return -1;
                }
        loy_logreg_standardise(lr, X, n);
        v = gsl_vector_calloc(d + 1);
        s = gsl_multimin_fdfminimizer_alloc(
            gsl_multimin_fdfminimizer_vector_bfgs2, d + 1);
        if (!v || !s) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        old = gsl_set_error_handler_off();
        gsl_multimin_fdfminimizer_set(s, &fn, v, 0.1, 0.1);
        for (int it = 0; it < 5000 && status == GSL_CONTINUE; it++) {
                status = gsl_multimin_fdfminimizer_iterate(s);
                if (status == GSL_ENOPROG || status == GSL_ENOPROGJ) {
                        conv = gsl_multimin_test_gradient(s->gradient, 1e-6) ==
                               GSL_SUCCESS;
                        break;
                }
                if (status)
                        break;
                status = gsl_multimin_test_gradient(s->gradient, 1e-10);
                conv = status == GSL_SUCCESS;
        }
        gsl_set_error_handler(old);
        /* leave the model at the minimiser's best point */
        loss(s->x, &bt, NULL);
        if (!conv) {
                snprintf(errstr, errstr_size,
                         "logistic regression did not converge (separable "
                         "data needs l2 > 0)");
                goto out;
        }
        rc = 0;
out:
        gsl_multimin_fdfminimizer_free(s);
        gsl_vector_free(v);
        return rc;
}

double loy_logreg_log_loss(const loy_logreg_t *lr, const double *X,
                           const int *y, size_t n) {
        double s = 0;
        for (size_t i = 0; i < n; i++) {
                double p = loy_logreg_predict(lr, X + i * lr->dim);
                p = fmin(fmax(p, 1e-15), 1 - 1e-15);
                s -= y[i] ? log(p) : log(1 - p);
        }
        return n ? s / (double)n : 0;
}
