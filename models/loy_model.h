/*
 * loy_model: the customer-value model (BG/NBD family + spend) and scoring.
 *
 * A model file is plain "key = value" text (see config/model.default):
 *
 *   version = 2011-12-09-default
 *   variant = mbgnbd          # bgnbd | mbgnbd
 *   time_unit = days          # days | weeks
 *   r = 0.8  alpha = 80  a = 0.2  b = 2.5     (one per line)
 *   gg_p = 6.25  gg_q = 3.74  gg_gamma = 15.44 (optional Gamma-Gamma)
 *   discount_monthly = 0.01   # optional CLV discount rate a month (0)
 *
 * plus descriptive keys the fitter writes and the loader accepts and
 * ignores (format, fitted_at, log_likelihood, customers, note, ...; the
 * list is model_keys[] in loy_model.c).
 *
 * Pure: only the model file is read; no Kafka or Redis.
 */
#ifndef LOY_MODEL_H
#define LOY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../features/loy_rfm.h"

typedef enum {
        LOY_VARIANT_BGNBD = 0,  /* Fader, Hardie & Lee 2005 */
        LOY_VARIANT_MBGNBD = 1, /* Batislam, Denizel & Filiztekin 2007 */
} loy_variant_t;

typedef struct loy_model {
        char version[64];
        loy_variant_t variant;
        double unit_days;      /* 1 for days, 7 for weeks */
        double r, alpha, a, b; /* BG/NBD family parameters */
        int has_gg;            /* Gamma-Gamma parameters present */
        double gg_p, gg_q, gg_gamma;
        double discount_monthly; /* CLV discount a month, >= 0; 0 = none */
        /* R/F/M cut points (keys rfm_recency_days, rfm_frequency,
         * rfm_monetary: four numbers each, all three or none); without
         * them scores rank against the live population */
        loy_rfm_cuts_t rfm;
} loy_model_t;

/* Customer summary in the model's time unit. */
typedef struct loy_model_input {
        double x;          /* repeat purchases */
        double t_x;        /* time of the last purchase since the first */
        double T;          /* time since the first purchase */
        double mean_value; /* mean repeat transaction value (0 = none) */
        double aov;        /* average order value, fallback for spend */
} loy_model_input_t;

typedef struct loy_model_scores {
        double p_alive;
        double churn_prob;    /* 1 - p_alive */
        double exp_purchases; /* expected purchases within the horizon */
        double exp_value;     /* expected value of one order */
        double clv;           /* discounted expected purchases *
                               * exp_value * margin (see below) */
} loy_model_scores_t;

/* Loads and validates a model file. Returns 0, or -1 with "file:line: key:
 * message" in errstr; *m is only written on success. */
int loy_model_load(loy_model_t *m, const char *path, char *errstr,
                   size_t errstr_size);

/* As loy_model_load(), from len bytes at buf (borrowed; need not end in a
 * NUL) instead of a file; name stands for the file name in messages. For
 * tests and fuzzing. */
int loy_model_load_buffer(loy_model_t *m, const char *name, const char *buf,
                          size_t len, char *errstr, size_t errstr_size);

/* Checks parameters are finite and positive. 0 or -1 with errstr. */
int loy_model_validate(const loy_model_t *m, char *errstr, size_t errstr_size);

/* Probability that the customer is still active. Always in [0, 1]. */
double loy_model_p_alive(const loy_model_t *m, const loy_model_input_t *in);

/* Expected purchases in the next `horizon` time units (closed form,
 * numerically safe for large x, T and b). Always finite and >= 0. */
double loy_model_expected_purchases(const loy_model_t *m,
                                    const loy_model_input_t *in,
                                    double horizon);

/* Expected purchases in the next horizon_days, each month's share
 * discounted by (1 + m->discount_monthly)^-k for month k = 1, 2, ...
 * (months of 365.25 / 12 days; the last one may be partial). Equals
 * loy_model_expected_purchases() when the discount is 0. */
double loy_model_discounted_purchases(const loy_model_t *m,
                                      const loy_model_input_t *in,
                                      double horizon_days);

/* All scores at once. horizon_days is converted to the model's unit.
 * clv = loy_model_discounted_purchases() * exp_value * margin. */
void loy_model_score(const loy_model_t *m, const loy_model_input_t *in,
                     double horizon_days, double margin,
                     loy_model_scores_t *out);

/*
 * Mean repeat-order value net of refunds, for the Gamma-Gamma model (which
 * needs positive values): the customer's returns are spread over all their
 * purchases in proportion to value, so the repeat purchases keep the share
 * (1 - return_value / gross_value) of their gross value (never below 0).
 * gross_value, first_day_value and return_value are the customer fields of
 * loy_feat.h; x is the number of repeat purchase days. 0 when x <= 0.
 */
double loy_model_net_mean_value(double gross_value, double first_day_value,
                                double return_value, double x);

/*
 * Writes m as a model file at path, atomically: a temporary file in the
 * same directory, fsync, checked by loading it back, then rename(2) over
 * path, so a reader (loyaltyd on SIGHUP) sees the old file or the new one,
 * never half of one. info (NULL-able) is appended as it is: "key = value"
 * lines with keys the loader accepts. Returns 0, or -1 with errstr (the
 * old file is then untouched and no temporary file is left).
 */
int loy_model_write(const loy_model_t *m, const char *info, const char *path,
                    char *errstr, size_t errstr_size);

#endif
