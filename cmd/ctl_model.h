/*
 * ctl_model: transaction data for loyaltyctl fit, eval and bench-model.
 *
 * A data file (stream/loy_source) is read once into one compact record per
 * purchase or return event; ctl_data_summarise() then builds every
 * customer's calibration summary (x, t_x, T, values) at any cutoff day and
 * counts what they did in the holdout after it.
 */
#ifndef CTL_MODEL_H
#define CTL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "loy_fit.h"
#include "loy_source.h"

typedef struct ctl_tx {
        uint32_t cust; /* index into ids */
        int32_t day;   /* UTC day number (days since 1970-01-01) */
        double t_days; /* exact event time in days since 1970 */
        double value;  /* net value: < 0 for a return */
} ctl_tx_t;

typedef struct ctl_data {
        char **ids; /* owned, ncust of them */
        size_t ncust;
        ctl_tx_t *tx; /* owned, in time order */
        size_t ntx;
        loy_source_stats_t stats;
        loy_source_format_t format;
        double read_seconds;
} ctl_data_t;

/* Reads path (format fmt, LOY_SRC_AUTO to detect). 0 or -1 with errstr. */
int ctl_data_load(ctl_data_t *d, const char *path, loy_source_format_t fmt,
                  char *errstr, size_t errstr_size);
void ctl_data_free(ctl_data_t *d);

/* One customer's summary at a cutoff, in days. */
typedef struct ctl_sum {
        double x;           /* repeat transactions up to the cutoff */
        double t_x, T;      /* days since the first transaction */
        double gross;       /* purchase value up to the cutoff */
        double first_value; /* value of the first transaction (day) */
        double returned;    /* value returned up to the cutoff, >= 0 */
        double hold_n;      /* transactions in the holdout */
        double hold_value;  /* net value in the holdout */
        int in_cohort;      /* first purchase on or before the cutoff */
} ctl_sum_t;

/*
 * Summaries of every customer (d->ncust of them, into s) with the
 * calibration ending on day cutoff (inclusive; T = cutoff - first day)
 * and the holdout on days cutoff+1 .. cutoff+holdout_days. merge: one
 * transaction per customer and UTC day (same-day purchases merged, the
 * protocol of FHL 2005; times in whole days), else every purchase event
 * is a transaction at its exact time. Returns customers in the cohort.
 */
size_t ctl_data_summarise(const ctl_data_t *d, int32_t cutoff,
                          int32_t holdout_days, int merge, ctl_sum_t *s);

/* Fitter input in the time unit (days per unit): one row per cohort
 * customer, into fc (capacity d->ncust); idx[k] = customer of row k
 * (NULL-able). Returns the rows. The mean value is net of refunds
 * (loy_model_net_mean_value). */
size_t ctl_fit_rows(const ctl_sum_t *s, size_t n, double unit_days,
                    loy_fit_cust_t *fc, size_t *idx);

/* "YYYY-MM-DD" -> day number; -1 on a malformed date. */
int ctl_parse_day(const char *s, int32_t *day);
/* day number -> "YYYY-MM-DD" (buf >= 11 bytes). */
void ctl_format_day(int32_t day, char *buf, size_t size);
double ctl_mono_seconds(void);

#endif
