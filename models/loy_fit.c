/* loy_fit: see loy_fit.h. */
#include "loy_fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_psi.h>

/* Dropout parameters outside this range mean the optimiser is walking the
 * ridge (or towards the a -> 0 boundary), not sitting at a maximum. */
#define RIDGE_LO 1e-4
#define RIDGE_HI 1e4
/* Beyond e^LOG_STOP a parameter is certainly running off: stop there. */
#define LOG_STOP 23.0
#define MAX_ITER 2000

/* A distinct (x, t_x, T) and how many customers share it. */
struct row {
        double x, tx, T, w;
};

/* ------------------------------------------------------------------ */
/* Purchase-model likelihood                                            */
/* ------------------------------------------------------------------ */

/* Terms that only depend on x (one per distinct x: rows are sorted). */
struct xterm {
        double lg;     /* lgamma(r + x) - lgamma(r) + l2 */
        double dr;     /* psi(r + x) - psi(r) */
        double da, db; /* d l2 / da, d l2 / db */
        double lgone;  /* log a - log(den), -inf when no dropout possible */
        double den;
};

static void x_terms(loy_variant_t v, const double p[4], double x, int want_grad,
                    struct xterm *t) {
        double r = p[0], a = p[2], b = p[3];
        /* BG flips the dropout coin after each repeat (FHL 2005 eq. 6);
         * MBG also after the first purchase (Batislam et al. 2007) */
        double xb = v == LOY_VARIANT_MBGNBD ? x + 1 : x;

        t->lg = gsl_sf_lngamma(r + x) - gsl_sf_lngamma(r) +
                gsl_sf_lnbeta(a, b + xb) - gsl_sf_lnbeta(a, b);
        t->den = v == LOY_VARIANT_MBGNBD ? b + x : b + x - 1;
        t->lgone = (v == LOY_VARIANT_MBGNBD || x > 0) && t->den > 0
                       ? log(a) - log(t->den)
                       : -INFINITY;
        if (!want_grad)
                return;
        t->dr = x > 0 ? gsl_sf_psi(r + x) - gsl_sf_psi(r) : 0;
        t->da = xb > 0 ? gsl_sf_psi(a + b) - gsl_sf_psi(a + b + xb) : 0;
        /* d/db [lnB(a, b+xb) - lnB(a, b)]
         *   = psi(b+xb) - psi(a+b+xb) - psi(b) + psi(a+b) */
        t->db = xb > 0 ? gsl_sf_psi(b + xb) - gsl_sf_psi(b) + t->da : 0;
}

static double rows_ll(loy_variant_t v, const double p[4], const struct row *g,
                      size_t n, double grad[4]) {
        double r = p[0], alpha = p[1], a = p[2];
        double la = log(alpha), ll = 0, d[4] = {0, 0, 0, 0};
        struct xterm t = {0, 0, 0, 0, 0, 0};
        double cur_x = NAN;

        for (int i = 0; i < 4; i++)
                if (!isfinite(p[i]) || p[i] <= 0)
                        return -INFINITY;
        for (size_t i = 0; i < n; i++) {
                double x = g[i].x, w = g[i].w;
                double lT = log(alpha + g[i].T), ltx = log(alpha + g[i].tx);
                double A = -(r + x) * lT, G, L, wA, wG;

                if (!(x == cur_x)) {
                        x_terms(v, p, x, grad != NULL, &t);
                        cur_x = x;
                }
                G = t.lgone - (r + x) * ltx;
                if (G > A) {
                        L = G + log1p(exp(A - G));
                } else {
                        L = A + log1p(exp(G - A));
                }
                ll += w * (t.lg + r * la + L);
                if (!grad)
                        continue;
                wA = exp(A - L);
                wG = G == -INFINITY ? 0 : exp(G - L);
                d[0] += w * (t.dr + la - wA * lT - wG * ltx);
                d[1] += w * (r / alpha - (r + x) * (wA / (alpha + g[i].T) +
                                                    wG / (alpha + g[i].tx)));
                d[2] += w * (t.da + wG / a);
                d[3] += w * (t.db - (wG > 0 ? wG / t.den : 0));
        }
        if (!isfinite(ll))
                return -INFINITY;
        if (grad)
                memcpy(grad, d, sizeof(d));
        return ll;
}

static int cmp_row(const void *pa, const void *pb) {
        const struct row *a = pa, *b = pb;
        if (a->x != b->x)
                return a->x < b->x ? -1 : 1;
        if (a->tx != b->tx)
                return a->tx < b->tx ? -1 : 1;
        if (a->T != b->T)
                return a->T < b->T ? -1 : 1;
        return 0;
}

/* Sorted, merged copy of the summaries. NULL with errstr on bad input. */
static struct row *make_rows(const loy_fit_cust_t *c, size_t n, size_t *nu,
                             char *errstr, size_t errstr_size) {
        struct row *g;
        size_t k = 0;

        if (!n) {
                snprintf(errstr, errstr_size, "no customers to fit");
                return NULL;
        }
        g = malloc(n * sizeof(*g));
        if (!g) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                if (!isfinite(c[i].x) || !isfinite(c[i].t_x) ||
                    !isfinite(c[i].T) || c[i].x < 0 || c[i].t_x < 0 ||
                    c[i].T < c[i].t_x) {
                        snprintf(errstr, errstr_size,
                                 "customer %zu: need 0 <= t_x <= T and "
                                 "x >= 0 (got x=%g t_x=%g T=%g)",
                                 i, c[i].x, c[i].t_x, c[i].T);
                        free(g);
                        return NULL;
                }
                g[i].x = c[i].x;
                g[i].tx = c[i].x > 0 ? c[i].t_x : 0;
                g[i].T = c[i].T;
                g[i].w = 1;
        }
        qsort(g, n, sizeof(*g), cmp_row);
        for (size_t i = 0; i < n; i++) {
                if (k && !cmp_row(&g[k - 1], &g[i]))
                        g[k - 1].w += 1;
                else
                        g[k++] = g[i];
        }
        *nu = k;
        return g;
}

double loy_fit_ll_grad(loy_variant_t v, const double p[4],
                       const loy_fit_cust_t *c, size_t n, double grad[4]) {
        char err[128];
        size_t nu;
        struct row *g;
        double ll;

        for (int i = 0; i < 4; i++)
                if (!isfinite(p[i]) || p[i] <= 0)
                        return -INFINITY;
        g = make_rows(c, n, &nu, err, sizeof(err));
        if (!g)
                return n ? -INFINITY : 0;
        ll = rows_ll(v, p, g, nu, grad);
        free(g);
        return ll;
}

double loy_fit_ll(loy_variant_t v, const double p[4], const loy_fit_cust_t *c,
                  size_t n) {
        return loy_fit_ll_grad(v, p, c, n, NULL);
}

/* ------------------------------------------------------------------ */
/* Gamma-Gamma likelihood                                               */
/* ------------------------------------------------------------------ */

struct spend {
        double x, m;
};

static double spend_ll(const double p[3], const struct spend *s, size_t n,
                       double grad[3]) {
        double gp = p[0], q = p[1], g = p[2];
        double ll = 0, d[3] = {0, 0, 0};
        double lgq, psiq, lg = log(g);

        for (int i = 0; i < 3; i++)
                if (!isfinite(p[i]) || p[i] <= 0)
                        return -INFINITY;
        lgq = gsl_sf_lngamma(q);
        psiq = grad ? gsl_sf_psi(q) : 0;
        for (size_t i = 0; i < n; i++) {
                double x = s[i].x, m = s[i].m, px = gp * x;
                double lgm = log(g + m * x), lm = log(m), lx = log(x);
                /* Fader & Hardie (2013) eq. (4): density of the mean of x
                 * gamma-distributed values with a gamma-distributed scale */
                ll += gsl_sf_lngamma(px + q) - gsl_sf_lngamma(px) - lgq +
                      q * lg + (px - 1) * lm + px * lx - (px + q) * lgm;
                if (!grad)
                        continue;
                {
                        double ps = gsl_sf_psi(px + q);
                        d[0] += x * (ps - gsl_sf_psi(px) + lm + lx - lgm);
                        d[1] += ps - psiq + lg - lgm;
                        d[2] += q / g - (px + q) / (g + m * x);
                }
        }
        if (!isfinite(ll))
                return -INFINITY;
        if (grad)
                memcpy(grad, d, sizeof(d));
        return ll;
}

static struct spend *make_spend(const loy_fit_cust_t *c, size_t n, size_t *k) {
        struct spend *s = malloc((n ? n : 1) * sizeof(*s));
        *k = 0;
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (c[i].x > 0 && c[i].mean_value > 0 && isfinite(c[i].x) &&
                    isfinite(c[i].mean_value)) {
                        s[*k].x = c[i].x;
                        s[*k].m = c[i].mean_value;
                        (*k)++;
                }
        return s;
}

double loy_fit_gg_ll(const double p[3], const loy_fit_cust_t *c, size_t n) {
        size_t k;
        struct spend *s = make_spend(c, n, &k);
        double ll;
        if (!s)
                return -INFINITY;
        ll = spend_ll(p, s, k, NULL);
        free(s);
        return ll;
}

/* ------------------------------------------------------------------ */
/* BFGS on log-parameters                                               */
/* ------------------------------------------------------------------ */

struct ctx {
        int kind; /* 0 purchases, 1 spend */
        loy_variant_t v;
        const struct row *g;
        const struct spend *s;
        size_t n;
        double scale;    /* 1 / customers: an O(1) objective */
        double prior_sd; /* > 0: penalise log a, log b */
        double fix_a;    /* > 0: a held there (profile) */
        int dim;
};

/* Objective: -(LL + log prior) / customers, as a function of log p. */
static double objective(const gsl_vector *lp, struct ctx *cx, gsl_vector *df) {
        double p[4], gr[4], ll;

        for (int i = 0; i < cx->dim; i++) {
                double e = gsl_vector_get(lp, i);
                if (!(fabs(e) < 700))
                        return GSL_POSINF;
                p[i] = exp(e);
        }
        if (cx->fix_a > 0)
                p[2] = cx->fix_a;
        ll = cx->kind ? spend_ll(p, cx->s, cx->n, df ? gr : NULL)
                      : rows_ll(cx->v, p, cx->g, cx->n, df ? gr : NULL);
        if (!isfinite(ll))
                return GSL_POSINF;
        if (df) {
                for (int i = 0; i < cx->dim; i++)
                        gr[i] *= p[i]; /* d/d log p */
                if (cx->fix_a > 0)
                        gr[2] = 0;
        }
        if (cx->prior_sd > 0) {
                double v2 = cx->prior_sd * cx->prior_sd;
                for (int i = 2; i < 4; i++) {
                        double lpi = gsl_vector_get(lp, i);
                        ll -= lpi * lpi / (2 * v2);
                        if (df)
                                gr[i] -= lpi / v2;
                }
        }
        if (df)
                for (int i = 0; i < cx->dim; i++)
                        gsl_vector_set(df, i, -gr[i] * cx->scale);
        return -ll * cx->scale;
}

static double obj_f(const gsl_vector *lp, void *vp) {
        return objective(lp, vp, NULL);
}

static void obj_df(const gsl_vector *lp, void *vp, gsl_vector *df) {
        objective(lp, vp, df);
}

static void obj_fdf(const gsl_vector *lp, void *vp, double *f, gsl_vector *df) {
        *f = objective(lp, vp, df);
}

/*
 * Minimises from p (dim values, replaced by where it stopped). Returns 1
 * when the gradient test was met, 0 when it stopped otherwise (no
 * progress, a parameter running off), -1 on allocation failure.
 */
static int minimise(struct ctx *cx, double *p, int *iters, double *fval) {
        gsl_multimin_function_fdf f = {obj_f, obj_df, obj_fdf, (size_t)cx->dim,
                                       cx};
        gsl_multimin_fdfminimizer *s;
        gsl_vector *x = gsl_vector_alloc((size_t)cx->dim);
        gsl_error_handler_t *old;
        int conv = 0, status = GSL_CONTINUE, it;

        s = gsl_multimin_fdfminimizer_alloc(
            gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)cx->dim);
        if (!x || !s) {
                gsl_vector_free(x);
                gsl_multimin_fdfminimizer_free(s);
                return -1;
        }
        old = gsl_set_error_handler_off();
        for (int i = 0; i < cx->dim; i++)
                gsl_vector_set(x, i, log(p[i]));
        if (!isfinite(obj_f(x, cx)) ||
            gsl_multimin_fdfminimizer_set(s, &f, x, 0.1, 0.1)) {
                gsl_set_error_handler(old);
                gsl_vector_free(x);
                gsl_multimin_fdfminimizer_free(s);
                *fval = GSL_POSINF;
                return 0;
        }
        for (it = 0; it < MAX_ITER && status == GSL_CONTINUE; it++) {
                int off = 0;
                status = gsl_multimin_fdfminimizer_iterate(s);
                for (int i = 0; i < cx->dim; i++)
                        off |= fabs(gsl_vector_get(s->x, i)) > LOG_STOP;
                if (off)
                        break;
                if (status == GSL_ENOPROG || status == GSL_ENOPROGJ) {
                        /* the line search cannot improve: fine if we
                         * are at the maximum to the objective's noise */
                        conv = gsl_multimin_test_gradient(s->gradient, 1e-5) ==
                               GSL_SUCCESS;
                        break;
                }
                if (status)
                        break;
                status = gsl_multimin_test_gradient(s->gradient, 1e-9);
                if (status == GSL_SUCCESS)
                        conv = 1;
        }
        gsl_set_error_handler(old);
        *iters += it;
        for (int i = 0; i < cx->dim; i++)
                p[i] = exp(gsl_vector_get(s->x, i));
        *fval = s->f;
        gsl_vector_free(x);
        gsl_multimin_fdfminimizer_free(s);
        return conv;
}

static int on_ridge(const double p[4]) {
        for (int i = 2; i < 4; i++)
                if (p[i] < RIDGE_LO || p[i] > RIDGE_HI)
                        return 1;
        return 0;
}

/*
 * Is the maximum at p really identified? The profile likelihood with a
 * held 1000 times smaller (towards "nobody drops out") and 1000 times
 * larger (with b following: the a, b -> infinity ridge), the other three
 * parameters re-fitted. If either is within the 95 % likelihood-ratio
 * bound (1.92) of the maximum, the data cannot tell a from the boundary:
 * the optimum found is one point of a flat ridge, not an estimate.
 */
static int profile_flat(struct ctx *cx, const double p[4], double ll,
                        int *iters, double *at) {
        static const double mult[2] = {1e-3, 1e3};
        for (int k = 0; k < 2; k++) {
                double q[4] = {p[0], p[1], p[2], p[3]}, f;
                struct ctx pc = *cx;
                pc.fix_a = p[2] * mult[k];
                q[2] = pc.fix_a;
                if (k == 1)
                        q[3] = p[3] * mult[k];
                if (minimise(&pc, q, iters, &f) < 0)
                        return -1;
                if (isfinite(f) && -f / pc.scale > ll - 1.92) {
                        *at = pc.fix_a;
                        return 1;
                }
        }
        return 0;
}

int loy_fit_purchases_ex(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                         const loy_fit_opts_t *opts, loy_fit_report_t *rep,
                         char *errstr, size_t errstr_size) {
        loy_fit_opts_t o = {LOY_FIT_PRIOR_AUTO, 2};
        loy_fit_report_t r;
        struct ctx cx;
        struct row *g;
        size_t nu;
        double p[4], meanT = 0, f;
        int conv, rc = -1;

        if (opts)
                o = *opts;
        if (!(o.prior_sd > 0))
                o.prior_sd = 2;
        memset(&r, 0, sizeof(r));
        r.customers = n;
        g = make_rows(c, n, &nu, errstr, errstr_size);
        if (!g)
                goto out;
        r.unique = nu;
        for (size_t i = 0; i < nu; i++)
                meanT += g[i].T * g[i].w / (double)n;
        memset(&cx, 0, sizeof(cx));
        cx.v = m->variant;
        cx.g = g;
        cx.n = nu;
        cx.scale = 1.0 / (double)n;
        cx.dim = 4;

        /* alpha is a time scale: start it at the mean age */
        p[0] = 1;
        p[1] = meanT > 0 ? meanT : 1;
        p[2] = 1;
        p[3] = 1;
        if (o.prior != LOY_FIT_PRIOR_ALWAYS) {
                conv = minimise(&cx, p, &r.iterations, &f);
                if (conv < 0)
                        goto nomem;
                r.ll_ml = -f / cx.scale;
                memcpy(r.ml_p, p, sizeof(p));
                r.converged = conv;
                r.ridge = !conv || on_ridge(p);
                if (!r.ridge) {
                        double at = 0;
                        int fl =
                            profile_flat(&cx, p, r.ll_ml, &r.iterations, &at);
                        if (fl < 0)
                                goto nomem;
                        r.ridge = fl;
                }
                if (p[0] < 1e-6 || p[1] < 1e-6 || p[0] > 1e8 || p[1] > 1e8) {
                        snprintf(errstr, errstr_size,
                                 "r or alpha ran off (r=%g alpha=%g): the "
                                 "data do not identify the purchase rate "
                                 "(does anybody repeat?)",
                                 p[0], p[1]);
                        goto out;
                }
                if (!r.ridge) {
                        r.ll = r.ll_ml;
                        snprintf(r.note, sizeof(r.note),
                                 "maximum likelihood, converged");
                        goto done;
                }
                if (o.prior == LOY_FIT_PRIOR_NONE) {
                        snprintf(errstr, errstr_size,
                                 "no interior maximum: the likelihood "
                                 "climbs along a ridge (stopped at a=%g "
                                 "b=%g, %s); refit with weak priors",
                                 p[2], p[3],
                                 conv ? "converged there" : "no convergence");
                        goto out;
                }
                p[0] = 1;
                p[1] = meanT > 0 ? meanT : 1;
                p[2] = 1;
                p[3] = 1;
        }
        cx.prior_sd = o.prior_sd;
        conv = minimise(&cx, p, &r.iterations, &f);
        if (conv < 0)
                goto nomem;
        r.converged = conv;
        r.penalised = 1;
        r.ll = rows_ll(cx.v, p, g, nu, NULL);
        if (o.prior == LOY_FIT_PRIOR_ALWAYS) {
                r.ll_ml = r.ll;
                memcpy(r.ml_p, p, sizeof(p));
        }
        if (!conv || on_ridge(p) || p[0] < 1e-6 || p[1] < 1e-6) {
                snprintf(errstr, errstr_size,
                         "penalised fit did not converge (r=%g alpha=%g "
                         "a=%g b=%g)",
                         p[0], p[1], p[2], p[3]);
                goto out;
        }
        if (r.ridge)
                snprintf(r.note, sizeof(r.note),
                         "ML has no interior maximum (ridge: a=%.3g b=%.3g,"
                         " LL %.1f); weak priors log a, log b ~ N(0, %g^2)"
                         " cost %.1f in LL",
                         r.ml_p[2], r.ml_p[3], r.ll_ml, o.prior_sd,
                         r.ll_ml - r.ll);
        else
                snprintf(r.note, sizeof(r.note),
                         "penalised ML, weak priors log a, log b ~ "
                         "N(0, %g^2)",
                         o.prior_sd);
done:
        m->r = p[0];
        m->alpha = p[1];
        m->a = p[2];
        m->b = p[3];
        rc = 0;
        goto out;
nomem:
        snprintf(errstr, errstr_size, "out of memory");
out:
        free(g);
        if (rep)
                *rep = r;
        return rc;
}

int loy_fit_purchases(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                      double *ll, char *errstr, size_t errstr_size) {
        loy_fit_opts_t o = {LOY_FIT_PRIOR_NONE, 2};
        loy_fit_report_t r;
        int rc = loy_fit_purchases_ex(m, c, n, &o, &r, errstr, errstr_size);
        if (!rc && ll)
                *ll = r.ll;
        return rc;
}

int loy_fit_spend(loy_model_t *m, const loy_fit_cust_t *c, size_t n, double *ll,
                  char *errstr, size_t errstr_size) {
        struct ctx cx;
        struct spend *s;
        size_t k;
        double p[3] = {1, 2, 1}, mean = 0, f;
        int it = 0, conv, rc = -1;

        s = make_spend(c, n, &k);
        if (!s) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (!k) {
                snprintf(errstr, errstr_size,
                         "no repeat customers with a spend to fit");
                goto out;
        }
        for (size_t i = 0; i < k; i++)
                mean += s[i].m / (double)k;
        memset(&cx, 0, sizeof(cx));
        cx.kind = 1;
        cx.s = s;
        cx.n = k;
        cx.scale = 1.0 / (double)k;
        cx.dim = 3;
        /* gamma is a money scale: start from the mean spend */
        p[2] = mean;
        conv = minimise(&cx, p, &it, &f);
        if (conv < 0) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if (!conv) {
                snprintf(errstr, errstr_size,
                         "Gamma-Gamma did not converge (p=%g q=%g "
                         "gamma=%g)",
                         p[0], p[1], p[2]);
                goto out;
        }
        if (p[1] <= 1) {
                snprintf(errstr, errstr_size,
                         "Gamma-Gamma q=%g <= 1: the mean spend is "
                         "infinite (a few huge orders?)",
                         p[1]);
                goto out;
        }
        m->gg_p = p[0];
        m->gg_q = p[1];
        m->gg_gamma = p[2];
        m->has_gg = 1;
        if (ll)
                *ll = -f / cx.scale;
        rc = 0;
out:
        free(s);
        return rc;
}
