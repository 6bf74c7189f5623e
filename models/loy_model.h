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
 *
 * Pure: only the model file is read; no Kafka or Redis.
 */
#ifndef LOY_MODEL_H
#define LOY_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
        LOY_VARIANT_BGNBD = 0,   /* Fader, Hardie & Lee 2005 */
        LOY_VARIANT_MBGNBD = 1,  /* Batislam, Denizel & Filiztekin 2007 */
} loy_variant_t;

typedef struct loy_model {
        char version[64];
        loy_variant_t variant;
        double unit_days;        /* 1 for days, 7 for weeks */
        double r, alpha, a, b;   /* BG/NBD family parameters */
        int has_gg;              /* Gamma-Gamma parameters present */
        double gg_p, gg_q, gg_gamma;
} loy_model_t;

/* Customer summary in the model's time unit. */
typedef struct loy_model_input {
        double x;        /* repeat purchases */
        double t_x;      /* time of the last purchase since the first */
        double T;        /* time since the first purchase */
        double mean_value;   /* mean repeat transaction value (0 = none) */
        double aov;          /* average order value, fallback for spend */
} loy_model_input_t;

typedef struct loy_model_scores {
        double p_alive;
        double churn_prob;       /* 1 - p_alive */
        double exp_purchases;    /* expected purchases within the horizon */
        double exp_value;        /* expected value of one order */
        double clv;              /* exp_purchases * exp_value * margin */
} loy_model_scores_t;

/* Loads and validates a model file. Returns 0, or -1 with "file:line: key:
 * message" in errstr; *m is only written on success. */
int loy_model_load(loy_model_t *m, const char *path,
                   char *errstr, size_t errstr_size);

/* Checks parameters are finite and positive. 0 or -1 with errstr. */
int loy_model_validate(const loy_model_t *m, char *errstr, size_t errstr_size);

/* Probability that the customer is still active. Always in [0, 1]. */
double loy_model_p_alive(const loy_model_t *m, const loy_model_input_t *in);

/* Expected purchases in the next `horizon` time units (closed form,
 * numerically safe for large x, T and b). Always finite and >= 0. */
double loy_model_expected_purchases(const loy_model_t *m,
                                    const loy_model_input_t *in,
                                    double horizon);

/* All scores at once. horizon_days is converted to the model's unit. */
void loy_model_score(const loy_model_t *m, const loy_model_input_t *in,
                     double horizon_days, double margin,
                     loy_model_scores_t *out);

#endif
