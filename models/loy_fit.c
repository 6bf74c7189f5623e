/* loy_fit: see loy_fit.h. */
#include "loy_fit.h"

#include <math.h>
#include <stdio.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_sf_gamma.h>

/* log(e^u + e^v) without overflow */
static double log_add(double u, double v) {
        double m = u > v ? u : v;
        if (m == -INFINITY)
                return m;
        return m + log(exp(u - m) + exp(v - m));
}

double loy_fit_ll(loy_variant_t v, const double p[4],
                  const loy_fit_cust_t *c, size_t n) {
        double r = p[0], alpha = p[1], a = p[2], b = p[3];
        double ll = 0, lbab, lgr;

        for (int i = 0; i < 4; i++)
                if (!isfinite(p[i]) || p[i] <= 0)
                        return -INFINITY;
        lbab = gsl_sf_lnbeta(a, b);
        lgr = gsl_sf_lngamma(r);
        for (size_t i = 0; i < n; i++) {
                double x = c[i].x, tx = c[i].t_x, T = c[i].T;
                double l1 = gsl_sf_lngamma(r + x) - lgr + r * log(alpha);
                double alive = -(r + x) * log(alpha + T);
                double gone, l2;

                if (v == LOY_VARIANT_MBGNBD) {
                        /* Batislam et al. (2007): a coin is also flipped
                         * at the first purchase */
                        l2 = gsl_sf_lnbeta(a, b + x + 1) - lbab;
                        gone = log(a) - log(b + x) -
                               (r + x) * log(alpha + tx);
                } else {
                        /* FHL (2005) eq. (6) */
                        l2 = gsl_sf_lnbeta(a, b + x) - lbab;
                        gone = x > 0 ? log(a) - log(b + x - 1) -
                                               (r + x) * log(alpha + tx)
                                     : -INFINITY;
                }
                ll += l1 + l2 + log_add(alive, gone);
        }
        return isfinite(ll) ? ll : -INFINITY;
}

double loy_fit_gg_ll(const double p[3], const loy_fit_cust_t *c, size_t n) {
        double gp = p[0], q = p[1], g = p[2];
        double ll = 0, lgq;

        for (int i = 0; i < 3; i++)
                if (!isfinite(p[i]) || p[i] <= 0)
                        return -INFINITY;
        lgq = gsl_sf_lngamma(q);
        for (size_t i = 0; i < n; i++) {
                double x = c[i].x, m = c[i].mean_value;
                if (!(x > 0) || !(m > 0))
                        continue;
                /* Fader & Hardie (2013) eq. (4), density of the mean */
                ll += gsl_sf_lngamma(gp * x + q) - gsl_sf_lngamma(gp * x) -
                      lgq + q * log(g) + (gp * x - 1) * log(m) +
                      gp * x * log(x) - (gp * x + q) * log(g + m * x);
        }
        return isfinite(ll) ? ll : -INFINITY;
}

/* ------------------------------------------------------------------ */
/* Nelder-Mead on log-parameters                                       */
/* ------------------------------------------------------------------ */

struct fit_ctx {
        int kind;            /* 0 purchases, 1 spend */
        loy_variant_t v;
        const loy_fit_cust_t *c;
        size_t n;
};

static double neg_ll(const gsl_vector *lp, void *vctx) {
        const struct fit_ctx *ctx = vctx;
        double p[4];
        double ll;

        for (size_t i = 0; i < lp->size; i++) {
                double e = gsl_vector_get(lp, i);
                /* keep the simplex out of overflow land */
                if (!(fabs(e) < 50))
                        return GSL_POSINF;
                p[i] = exp(e);
        }
        ll = ctx->kind ? loy_fit_gg_ll(p, ctx->c, ctx->n)
                       : loy_fit_ll(ctx->v, p, ctx->c, ctx->n);
        return isfinite(ll) ? -ll : GSL_POSINF;
}

/* Minimises from start (dim values, replaced by the optimum). A restart
 * from the optimum guards against the simplex collapsing early, a known
 * weakness of Nelder-Mead. */
static int minimise(struct fit_ctx *ctx, double *start, size_t dim,
                    double *best, char *errstr, size_t errstr_size) {
        const gsl_multimin_fminimizer_type *T =
                gsl_multimin_fminimizer_nmsimplex2;
        gsl_multimin_function f = {neg_ll, dim, ctx};
        gsl_vector *x = gsl_vector_alloc(dim);
        gsl_vector *step = gsl_vector_alloc(dim);
        gsl_multimin_fminimizer *s = gsl_multimin_fminimizer_alloc(T, dim);
        int rc = -1, status = GSL_CONTINUE;

        if (!x || !step || !s) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (int pass = 0; pass < 3; pass++) {
                size_t it;
                for (size_t i = 0; i < dim; i++) {
                        gsl_vector_set(x, i, log(start[i]));
                        gsl_vector_set(step, i, pass ? 0.1 : 0.5);
                }
                if (gsl_multimin_fminimizer_set(s, &f, x, step)) {
                        snprintf(errstr, errstr_size,
                                 "log-likelihood not finite at the start");
                        goto out;
                }
                status = GSL_CONTINUE;
                for (it = 0; it < 20000 && status == GSL_CONTINUE; it++) {
                        if (gsl_multimin_fminimizer_iterate(s))
                                break;
                        status = gsl_multimin_test_size(
                                gsl_multimin_fminimizer_size(s), 1e-10);
                }
                for (size_t i = 0; i < dim; i++)
                        start[i] = exp(gsl_vector_get(s->x, i));
                *best = -s->fval;
        }
        if (status != GSL_SUCCESS || !isfinite(*best)) {
                snprintf(errstr, errstr_size,
                         "maximum likelihood did not converge");
                goto out;
        }
        for (size_t i = 0; i < dim; i++)
                if (start[i] > 1e15 || start[i] < 1e-15) {
                        snprintf(errstr, errstr_size,
                                 "parameter %zu ran off to %g: the data "
                                 "do not identify the model",
                                 i, start[i]);
                        goto out;
                }
        rc = 0;
out:
        gsl_multimin_fminimizer_free(s);
        gsl_vector_free(step);
        gsl_vector_free(x);
        return rc;
}

int loy_fit_purchases(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                      double *ll, char *errstr, size_t errstr_size) {
        struct fit_ctx ctx = {0, m->variant, c, n};
        double p[4] = {1, 1, 1, 1}, best, meanT = 0;

        if (!n) {
                snprintf(errstr, errstr_size, "no customers to fit");
                return -1;
        }
        for (size_t i = 0; i < n; i++)
                meanT += c[i].T / (double)n;
        /* alpha is a time scale: start it at the mean age */
        p[1] = meanT > 0 ? meanT : 1;
        if (minimise(&ctx, p, 4, &best, errstr, errstr_size) == -1)
                return -1;
        m->r = p[0];
        m->alpha = p[1];
        m->a = p[2];
        m->b = p[3];
        if (ll)
                *ll = best;
        return 0;
}

int loy_fit_spend(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                  double *ll, char *errstr, size_t errstr_size) {
        struct fit_ctx ctx = {1, m->variant, c, n};
        double p[3] = {1, 2, 1}, best, mean = 0;
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                if (c[i].x > 0 && c[i].mean_value > 0) {
                        mean += c[i].mean_value;
                        k++;
                }
        if (!k) {
                snprintf(errstr, errstr_size,
                         "no repeat customers with a spend to fit");
                return -1;
        }
        /* gamma is a money scale: start from the mean spend */
        p[2] = mean / (double)k;
        if (minimise(&ctx, p, 3, &best, errstr, errstr_size) == -1)
                return -1;
        m->gg_p = p[0];
        m->gg_q = p[1];
        m->gg_gamma = p[2];
        m->has_gg = 1;
        if (ll)
                *ll = best;
        return 0;
}
