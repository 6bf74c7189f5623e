/*
 * loyaltyctl bench-model: what the customer-value model costs.
 *
 * 1. Scoring: every Online Retail customer (summaries at the end of the
 *    data, in days) through loy_model_score() -- P(alive), expected
 *    purchases and discounted CLV --, several runs, median per customer,
 *    and per-customer latency percentiles.
 * 2. Fitting: the full CDNOW master (23,570 customers, weeks, calibration
 *    to 1997-09-30 as in FHL 2005): read, summarise, fit BG/NBD, MBG/NBD
 *    and Gamma-Gamma; median of several runs.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_model.h"
#include "loy_fit.h"
#include "loy_model.h"

#define DAY_MS 86400000LL

static int cmp_dbl(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p) {
        size_t i = (size_t)(p / 100 * (double)(n - 1) + 0.5);
        return sorted[i < n ? i : n - 1];
}

static int bench_score(const char *path, const char *model_path, int runs,
                       double horizon, double disc) {
        loy_model_t m;
        ctl_data_t d;
        ctl_sum_t *s = NULL;
        loy_model_input_t *in = NULL;
        double *run_ns = NULL, *lat = NULL, sink = 0;
        size_t n = 0;
        char err[512];
        int rc = 1;

        if (loy_model_load(&m, model_path, err, sizeof(err))) {
                fprintf(stderr, "bench-model: %s\n", err);
                return 1;
        }
        m.discount_monthly = disc;
        if (ctl_data_load(&d, path, LOY_SRC_AUTO, err, sizeof(err))) {
                fprintf(stderr, "bench-model: %s\n", err);
                return 1;
        }
        s = malloc((d.ncust + 1) * sizeof(*s));
        in = malloc((d.ncust + 1) * sizeof(*in));
        run_ns = malloc((size_t)runs * sizeof(*run_ns));
        lat = malloc((d.ncust + 1) * sizeof(*lat));
        if (!s || !in || !run_ns || !lat) {
                fprintf(stderr, "bench-model: out of memory\n");
                goto out;
        }
        ctl_data_summarise(&d, (int32_t)(d.stats.last_ts_ms / DAY_MS), 0, 1, s);
        for (size_t i = 0; i < d.ncust; i++) {
                if (!s[i].in_cohort)
                        continue;
                in[n].x = s[i].x;
                in[n].t_x = s[i].t_x / m.unit_days;
                in[n].T = s[i].T / m.unit_days;
                in[n].mean_value = loy_model_net_mean_value(
                    s[i].gross, s[i].first_value, s[i].returned, s[i].x);
                in[n].aov = s[i].gross / (s[i].x + 1);
                n++;
        }
        printf("scoring: %zu Online Retail customers (%s), model %s (%s, "
               "%s), horizon %g days, discount %g a month, %d runs\n",
               n, path, m.version,
               m.variant == LOY_VARIANT_MBGNBD ? "mbgnbd" : "bgnbd",
               m.unit_days == 7 ? "weeks" : "days", horizon, disc, runs);
        for (int r = 0; r < runs; r++) {
                double t0 = ctl_mono_seconds();
                for (size_t i = 0; i < n; i++) {
                        loy_model_scores_t sc;
                        loy_model_score(&m, &in[i], horizon, 1, &sc);
                        sink += sc.clv + sc.p_alive;
                }
                run_ns[r] = (ctl_mono_seconds() - t0) * 1e9 / (double)n;
        }
        /* one more pass timing each customer: the spread */
        for (size_t i = 0; i < n; i++) {
                loy_model_scores_t sc;
                double t0 = ctl_mono_seconds();
                loy_model_score(&m, &in[i], horizon, 1, &sc);
                lat[i] = (ctl_mono_seconds() - t0) * 1e9;
                sink += sc.clv;
        }
        qsort(run_ns, (size_t)runs, sizeof(*run_ns), cmp_dbl);
        qsort(lat, n, sizeof(*lat), cmp_dbl);
        printf("  per customer: median over runs %.0f ns (min %.0f, max "
               "%.0f) = %.2f M customers/s\n",
               pct(run_ns, (size_t)runs, 50), run_ns[0], run_ns[runs - 1],
               1e3 / pct(run_ns, (size_t)runs, 50));
        printf("  single-customer latency (incl. ~20 ns clock): p50 %.0f "
               "ns  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
               pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99),
               pct(lat, n, 99.9), lat[n - 1]);
        if (!isfinite(sink))
                printf("  (non-finite score seen!)\n");
        rc = 0;
out:
        free(s);
        free(in);
        free(run_ns);
        free(lat);
        ctl_data_free(&d);
        return rc;
}

static int bench_fit(const char *path, int runs) {
        ctl_data_t d;
        ctl_sum_t *s = NULL;
        loy_fit_cust_t *fc = NULL;
        double *t_bg = NULL, *t_mbg = NULL, *t_gg = NULL, *t_sum = NULL;
        int32_t cutoff;
        size_t n = 0;
        char err[512];
        int rc = 1;
        loy_model_t m;
        loy_fit_report_t rep;

        if (ctl_data_load(&d, path, LOY_SRC_AUTO, err, sizeof(err))) {
                fprintf(stderr, "bench-model: %s\n", err);
                return 1;
        }
        ctl_parse_day("1997-09-30", &cutoff);
        s = malloc((d.ncust + 1) * sizeof(*s));
        fc = malloc((d.ncust + 1) * sizeof(*fc));
        t_bg = calloc((size_t)runs, sizeof(double));
        t_mbg = calloc((size_t)runs, sizeof(double));
        t_gg = calloc((size_t)runs, sizeof(double));
        t_sum = calloc((size_t)runs, sizeof(double));
        if (!s || !fc || !t_bg || !t_mbg || !t_gg || !t_sum) {
                fprintf(stderr, "bench-model: out of memory\n");
                goto out;
        }
        printf("fit: %s, %" PRId64 " events of %zu customers read in "
               "%.2f s (%.0f events/s)\n",
               path, d.stats.events, d.ncust, d.read_seconds,
               (double)d.stats.events / d.read_seconds);
        for (int r = 0; r < runs; r++) {
                double t0 = ctl_mono_seconds();
                loy_fit_opts_t o = {LOY_FIT_PRIOR_AUTO, 2};
                ctl_data_summarise(&d, cutoff, 0, 1, s);
                n = ctl_fit_rows(s, d.ncust, 7, fc, NULL);
                t_sum[r] = ctl_mono_seconds() - t0;
                memset(&m, 0, sizeof(m));
                m.variant = LOY_VARIANT_BGNBD;
                t0 = ctl_mono_seconds();
                if (loy_fit_purchases_ex(&m, fc, n, &o, &rep, err,
                                         sizeof(err))) {
                        fprintf(stderr, "bench-model: BG/NBD: %s\n", err);
                        goto out;
                }
                t_bg[r] = ctl_mono_seconds() - t0;
                if (r == 0)
                        printf("  BG/NBD  r = %.4f alpha = %.4f a = %.4f "
                               "b = %.4f LL = %.1f (%zu customers, %zu "
                               "distinct summaries, %d iterations)\n",
                               m.r, m.alpha, m.a, m.b, rep.ll, n, rep.unique,
                               rep.iterations);
                m.variant = LOY_VARIANT_MBGNBD;
                t0 = ctl_mono_seconds();
                if (loy_fit_purchases_ex(&m, fc, n, &o, &rep, err,
                                         sizeof(err))) {
                        fprintf(stderr, "bench-model: MBG/NBD: %s\n", err);
                        goto out;
                }
                t_mbg[r] = ctl_mono_seconds() - t0;
                if (r == 0)
                        printf("  MBG/NBD r = %.4f alpha = %.4f a = %.4f "
                               "b = %.4f LL = %.1f\n",
                               m.r, m.alpha, m.a, m.b, rep.ll);
                t0 = ctl_mono_seconds();
                if (loy_fit_spend(&m, fc, n, NULL, err, sizeof(err))) {
                        fprintf(stderr, "bench-model: Gamma-Gamma: %s\n", err);
                        goto out;
                }
                t_gg[r] = ctl_mono_seconds() - t0;
                if (r == 0)
                        printf("  Gamma-Gamma p = %.4f q = %.4f gamma = "
                               "%.4f\n",
                               m.gg_p, m.gg_q, m.gg_gamma);
        }
        qsort(t_sum, (size_t)runs, sizeof(double), cmp_dbl);
        qsort(t_bg, (size_t)runs, sizeof(double), cmp_dbl);
        qsort(t_mbg, (size_t)runs, sizeof(double), cmp_dbl);
        qsort(t_gg, (size_t)runs, sizeof(double), cmp_dbl);
        printf("  median of %d runs: summarise %.1f ms (%.0f events/s), "
               "BG/NBD %.1f ms, MBG/NBD %.1f ms, Gamma-Gamma %.1f ms "
               "(%.0f customers/s through all three)\n",
               runs, pct(t_sum, (size_t)runs, 50) * 1e3,
               (double)d.ntx / pct(t_sum, (size_t)runs, 50),
               pct(t_bg, (size_t)runs, 50) * 1e3,
               pct(t_mbg, (size_t)runs, 50) * 1e3,
               pct(t_gg, (size_t)runs, 50) * 1e3,
               (double)n /
                   (pct(t_bg, (size_t)runs, 50) + pct(t_mbg, (size_t)runs, 50) +
                    pct(t_gg, (size_t)runs, 50)));
        printf("  total fit on CDNOW master incl. reading the file: %.2f s\n",
               d.read_seconds + pct(t_sum, (size_t)runs, 50) +
                   pct(t_bg, (size_t)runs, 50) + pct(t_mbg, (size_t)runs, 50) +
                   pct(t_gg, (size_t)runs, 50));
        rc = 0;
out:
        free(s);
        free(fc);
        free(t_bg);
        free(t_mbg);
        free(t_gg);
        free(t_sum);
        ctl_data_free(&d);
        return rc;
}

void ctl_bench_model_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl bench-model [-m MODEL] [-r RUNS] [-H "
                "HORIZON_DAYS] [-d DISCOUNT_MONTHLY]\n"
                "       [-R online_retail.csv.gz] [-C cdnow_master.txt.gz]\n"
                "  defaults: config/model.default, 7 runs, 365 days, 0.01, "
                "../shared/data\n");
}

int ctl_bench_model_main(int argc, char **argv) {
        const char *retail =
            LOY_SOURCE_DIR "/../shared/data/online_retail.csv.gz";
        const char *cdnow =
            LOY_SOURCE_DIR "/../shared/data/cdnow_master.txt.gz";
        const char *model = LOY_SOURCE_DIR "/config/model.default";
        double horizon = 365, disc = 0.01;
        int runs = 7, opt, rc = 0;

        optind = 1;
        while ((opt = getopt(argc, argv, "m:r:H:d:R:C:h")) != -1) {
                switch (opt) {
                case 'm':
                        model = optarg;
                        break;
                case 'r':
                        runs = atoi(optarg);
                        break;
                case 'H':
                        horizon = atof(optarg);
                        break;
                case 'd':
                        disc = atof(optarg);
                        break;
                case 'R':
                        retail = optarg;
                        break;
                case 'C':
                        cdnow = optarg;
                        break;
                default:
                        ctl_bench_model_usage(stderr);
                        return 2;
                }
        }
        if (runs < 1)
                runs = 1;
        rc |= bench_score(retail, model, runs, horizon, disc);
        rc |= bench_fit(cdnow, runs);
        return rc;
}
