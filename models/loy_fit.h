/*
 * loy_fit: maximum-likelihood fitting of the loy_model parameters from
 * customer summaries (BG/NBD or MBG/NBD purchase model, Gamma-Gamma spend).
 *
 * Pure: the caller builds the summaries (loyaltyctl fit reads a CSV or the
 * live Redis state); nothing here reads files.
 *
 * How: customers with identical (x, t_x, T) are merged into one weighted
 * row (with calendar data in weeks most of them are duplicates), the
 * x-only terms (log-gamma, log-beta, digamma) are computed once per
 * distinct x, and the log-likelihood is maximised with its analytic
 * gradient by GSL's BFGS (gsl_multimin_fdfminimizer_vector_bfgs2) over the
 * logs of the parameters, so they stay positive.
 *
 * The ridge: on some data (UCI Online Retail is one) the purchase model's
 * likelihood has no interior maximum -- it keeps climbing as a and b grow
 * without bound (dropout becomes the same for everybody and vanishes) or
 * as a -> 0 (most customers never drop out). A plain fit then returns
 * parameters that only reflect where the optimiser gave up. loy_fit
 * detects that (a or b outside [1e-4, 1e4], or no convergence) and, in
 * LOY_FIT_PRIOR_AUTO mode, refits with weak priors on the dropout
 * parameters: log a, log b ~ Normal(0, prior_sd^2) (penalised likelihood,
 * i.e. the MAP estimate in log space; the same idea as PyMC-Marketing's
 * weakly informative priors). The report says which happened.
 */
#ifndef LOY_FIT_H
#define LOY_FIT_H

#include <stddef.h>

#include "loy_model.h"

/* One customer's calibration summary, in the model's time unit. */
typedef struct loy_fit_cust {
        double x;          /* repeat purchases (purchase days - 1) */
        double t_x;        /* last purchase, since the first */
        double T;          /* end of calibration, since the first */
        double mean_value; /* mean value of the x repeat purchases */
        double monetary;   /* net spend, for the R/F/M cut points */
} loy_fit_cust_t;

/* Log-likelihood of the purchase model (variant v) with parameters
 * p = {r, alpha, a, b} over n customers. -inf for invalid parameters. */
double loy_fit_ll(loy_variant_t v, const double p[4], const loy_fit_cust_t *c,
                  size_t n);

/* The same and its gradient d LL / d p[i] into grad (NULL-able). */
double loy_fit_ll_grad(loy_variant_t v, const double p[4],
                       const loy_fit_cust_t *c, size_t n, double grad[4]);

/* Gamma-Gamma log-likelihood with p = {p, q, gamma}, over the customers
 * with x > 0 and mean_value > 0. -inf for invalid parameters. */
double loy_fit_gg_ll(const double p[3], const loy_fit_cust_t *c, size_t n);

typedef enum {
        LOY_FIT_PRIOR_NONE = 0,  /* plain ML; the ridge is an error */
        LOY_FIT_PRIOR_AUTO = 1,  /* plain ML, weak priors if on the ridge */
        LOY_FIT_PRIOR_ALWAYS = 2 /* always the penalised fit */
} loy_fit_prior_t;

typedef struct loy_fit_opts {
        loy_fit_prior_t prior;
        double prior_sd; /* sd of log a, log b; <= 0 means 2 */
} loy_fit_opts_t;

/* What a fit did; filled on success and (as far as known) on failure. */
typedef struct loy_fit_report {
        double ll;        /* log-likelihood at the parameters */
        double ll_ml;     /* best plain log-likelihood found; above
                           * ll when the ridge forced the priors */
        int converged;    /* gradient test met */
        int ridge;        /* plain ML ran off to a boundary */
        int penalised;    /* parameters are the penalised fit */
        int iterations;   /* BFGS iterations, all passes */
        size_t customers; /* rows used */
        size_t unique;    /* distinct (x, t_x, T) among them */
        double ml_p[4];   /* where plain ML stopped */
        char note[256];   /* one line for people and model files */
} loy_fit_report_t;

/* Fits r, alpha, a, b of variant m->variant into m (other fields are left
 * alone). opts NULL = LOY_FIT_PRIOR_AUTO, prior_sd 2; rep NULL-able.
 * Returns 0, or -1 with errstr (no customers, a non-finite or negative
 * summary, no convergence, or the ridge with LOY_FIT_PRIOR_NONE, or r or
 * alpha running off: nobody repeats). m is only written on success. */
int loy_fit_purchases_ex(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                         const loy_fit_opts_t *opts, loy_fit_report_t *rep,
                         char *errstr, size_t errstr_size);

/* Plain maximum likelihood (LOY_FIT_PRIOR_NONE): the ridge is an error.
 * The maximised log-likelihood goes to *ll (NULL-able). */
int loy_fit_purchases(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                      double *ll, char *errstr, size_t errstr_size);

/* Fits gg_p, gg_q, gg_gamma into m and sets has_gg. Same conventions as
 * loy_fit_purchases; q <= 1 (no finite mean spend) is an error. */
int loy_fit_spend(loy_model_t *m, const loy_fit_cust_t *c, size_t n, double *ll,
                  char *errstr, size_t errstr_size);

#endif
