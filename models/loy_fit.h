/*
 * loy_fit: maximum-likelihood fitting of the loy_model parameters from
 * customer summaries (BG/NBD or MBG/NBD purchase model, Gamma-Gamma spend).
 *
 * Pure: the caller builds the summaries (loyaltyctl fit reads a CSV or the
 * live Redis state); nothing here reads files. Nelder-Mead (GSL
 * gsl_multimin) on the logs of the parameters, so they stay positive.
 */
#ifndef LOY_FIT_H
#define LOY_FIT_H

#include <stddef.h>

#include "loy_model.h"

/* One customer's calibration summary, in the model's time unit. */
typedef struct loy_fit_cust {
        double x;            /* repeat purchases (purchase days - 1) */
        double t_x;          /* last purchase, since the first */
        double T;            /* end of calibration, since the first */
        double mean_value;   /* mean value of the x repeat purchases */
} loy_fit_cust_t;

/* Log-likelihood of the purchase model (variant v) with parameters
 * p = {r, alpha, a, b} over n customers. -inf for invalid parameters. */
double loy_fit_ll(loy_variant_t v, const double p[4],
                  const loy_fit_cust_t *c, size_t n);

/* Gamma-Gamma log-likelihood with p = {p, q, gamma}, over the customers
 * with x > 0 and mean_value > 0. -inf for invalid parameters. */
double loy_fit_gg_ll(const double p[3], const loy_fit_cust_t *c, size_t n);

/* Fits r, alpha, a, b of variant m->variant into m (other fields are left
 * alone) and stores the maximised log-likelihood in *ll (NULL-able).
 * Returns 0, or -1 with errstr (no customers, no convergence, parameters
 * running off to infinity along the likelihood's ridge). */
int loy_fit_purchases(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                      double *ll, char *errstr, size_t errstr_size);

/* Fits gg_p, gg_q, gg_gamma into m and sets has_gg. Same conventions. */
int loy_fit_spend(loy_model_t *m, const loy_fit_cust_t *c, size_t n,
                  double *ll, char *errstr, size_t errstr_size);

#endif
