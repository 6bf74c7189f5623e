/*
 * loyaltyctl eval: how well the customer-value model predicts, on real data
 * with a calibration / holdout split, against simple baselines; writes a
 * Markdown report with gnuplot PNG plots.
 *
 * Protocol: customers whose first purchase is on or before the calibration
 * end; the model is fitted on the calibration period only. Label: any
 * purchase in the holdout. Baselines: recency alone (days since the last
 * purchase, fewer = better) and a logistic regression on RFM features
 * trained inside the calibration period (features at calibration end -
 * holdout length, label = a purchase in the last holdout-length days of
 * the calibration), then applied to the features at the calibration end.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ctl.h"
#include "ctl_model.h"
#include "loy_eval.h"
#include "loy_fit.h"
#include "loy_logreg.h"
#include "loy_model.h"

#define NFEAT 4
#define NFREQ 8 /* x = 0..6 and 7+ */
#define NHIST 20

struct res {
        const char *path, *outdir;
        char cal[16], end[16];
        int32_t hdays;
        size_t n, ntrain, buyers;
        loy_model_t m, bg;
        loy_fit_report_t rep, bgrep;
        double auc_e, auc_pa, auc_bg, auc_rec, auc_lr, auc_freq;
        double pred_tot, act_tot, mae, mae_bg, mae_lr_base;
        double lr_w[NFEAT], lr_b, lr_loss;
        /* per frequency group */
        double fg_n[NFREQ], fg_act[NFREQ], fg_pred[NFREQ], fg_bg[NFREQ];
        /* CLV deciles */
        double dec_n[10], dec_clv[10], dec_act[10], dec_pa[10];
        /* P(alive) histogram */
        double h_buy[NHIST], h_not[NHIST];
        double clv_tot, act_val_tot;
};

/* RFM features of a summary (days). */
static void features(const ctl_sum_t *s, double *f) {
        double net = s->gross - s->returned;
        f[0] = s->T - s->t_x;                         /* recency */
        f[1] = log1p(s->x);                           /* frequency */
        f[2] = log1p(net > 0 ? net / (s->x + 1) : 0); /* monetary */
        f[3] = s->T;                                  /* age */
}

static int write_file(const char *dir, const char *name, const char *text) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        if (!f || fputs(text, f) < 0) {
                fprintf(stderr, "eval: %s: %s\n", path, strerror(errno));
                if (f)
                        fclose(f);
                return -1;
        }
        return fclose(f) ? -1 : 0;
}

static FILE *open_out(const char *dir, const char *name) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        if (!f)
                fprintf(stderr, "eval: %s: %s\n", path, strerror(errno));
        return f;
}

static int mkdirs(const char *dir) {
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s", dir);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) && errno != EEXIST)
                                return -1;
                        *p = '/';
                }
        return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

static const char *gp_script =
    "set terminal pngcairo size 900,560 font 'DejaVu Sans,11'\n"
    "set grid ytics lc rgb '#dddddd'\n"
    "set key top left\n"
    "set output 'freq.png'\n"
    "set title 'Holdout purchases per customer by calibration "
    "frequency'\n"
    "set xlabel 'repeat purchase days in the calibration period (x)'\n"
    "set ylabel 'purchase days in the holdout, mean per customer'\n"
    "set xtics ('0' 0, '1' 1, '2' 2, '3' 3, '4' 4, '5' 5, '6' 6, "
    "'7+' 7)\n"
    "plot 'freq.dat' u 1:3 w lp lw 2 pt 7 lc rgb '#222222' t 'actual',"
    " '' u 1:4 w lp lw 2 pt 5 lc rgb '#d62728' t 'MBG/NBD "
    "(fitted)', '' u 1:5 w lp lw 2 dt 2 pt 4 lc rgb '#1f77b4' t "
    "'BG/NBD (fitted)'\n"
    "set output 'palive.png'\n"
    "set title 'P(alive) at the calibration end, by holdout outcome'\n"
    "set xlabel 'P(alive)'\n"
    "set ylabel 'customers'\n"
    "set xtics auto\n"
    "set xrange [0:1]\n"
    "set logscale y\n"
    "set yrange [0.8:*]\n"
    "set style fill solid 0.8 border -1\n"
    "set boxwidth 0.02\n"
    "plot 'palive.dat' u ($1-0.011):($3>0?$3:0.8) w boxes lc rgb "
    "'#999999' t 'no purchase in the holdout', '' u ($1+0.011):"
    "($2>0?$2:0.8) w boxes lc rgb '#2ca02c' t 'bought in the "
    "holdout'\n"
    "unset logscale y\n"
    "set yrange [*:*]\n"
    "set xrange [*:*]\n"
    "set output 'clv.png'\n"
    "set title 'Predicted value vs actual holdout spend, by predicted "
    "CLV decile'\n"
    "set xlabel 'decile of predicted holdout value (1 = top 10 %)'\n"
    "set ylabel 'GBP per customer (holdout)'\n"
    "set xtics 1\n"
    "set logscale y\n"
    "set boxwidth 0.35\n"
    "set style fill solid 0.8 border -1\n"
    "set key top right\n"
    "plot 'clv.dat' u ($1-0.18):3 w boxes lc rgb '#d62728' t "
    "'predicted (exp. purchases x Gamma-Gamma value)', '' u "
    "($1+0.18):(($4>1)?$4:1) w boxes lc rgb '#222222' t 'actual net "
    "spend'\n";

static int run_gnuplot(const char *dir) {
        char cmd[1200];
        int st;
        snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot plots.gp", dir);
        st = system(cmd);
        if (st != 0) {
                fprintf(stderr,
                        "eval: gnuplot failed (status %d): is "
                        "gnuplot-nox installed? The .dat files and "
                        "plots.gp are in %s\n",
                        st, dir);
                return -1;
        }
        return 0;
}

static void write_report(const struct res *r, FILE *f) {
        const loy_model_t *m = &r->m;
        fprintf(f,
                "# loyaltyd model evaluation: %s\n\n"
                "Generated by `loyaltyctl eval -c %s -e %s` (the data file: "
                "`%s`).\n\n"
                "**Protocol.** Customers whose first purchase is on or "
                "before the calibration end %s: %zu. The models are "
                "fitted on the calibration period only; the holdout is the "
                "next %d days (to %s). Same-day purchases are one "
                "transaction (purchase days, as in FHL 2005); returns are "
                "netted (docs/models.md). Label: at least one purchase in "
                "the holdout (%zu customers, %.1f %%).\n\n",
                r->path, r->cal, r->end, r->path, r->cal, r->n, r->hdays,
                r->end, r->buyers, 100.0 * (double)r->buyers / (double)r->n);
        fprintf(f,
                "## Fitted model (calibration period, days)\n\n"
                "| model | r | alpha | a | b | LL | note |\n"
                "|---|---|---|---|---|---|---|\n"
                "| MBG/NBD | %.4f | %.3f | %.4f | %.4f | %.2f | %s |\n"
                "| BG/NBD | %.4f | %.3f | %.4f | %.4f | %.2f | %s |\n\n"
                "Gamma-Gamma: p = %.4f, q = %.4f, gamma = %.3f (population "
                "mean order %.2f GBP).\n\n",
                m->r, m->alpha, m->a, m->b, r->rep.ll, r->rep.note, r->bg.r,
                r->bg.alpha, r->bg.a, r->bg.b, r->bgrep.ll, r->bgrep.note,
                m->gg_p, m->gg_q, m->gg_gamma,
                m->gg_gamma * m->gg_p / (m->gg_q - 1));
        fprintf(f,
                "## Who buys again in the holdout? (AUC)\n\n"
                "| score | AUC |\n|---|---|\n"
                "| MBG/NBD expected purchases in the holdout | **%.4f** |\n"
                "| MBG/NBD P(alive) | %.4f |\n"
                "| BG/NBD expected purchases | %.4f |\n"
                "| logistic regression on RFM (recency, log frequency, log "
                "monetary, age), trained in the calibration period on %zu "
                "customers | %.4f |\n"
                "| recency only (days since the last purchase) | %.4f |\n"
                "| frequency only (x) | %.4f |\n\n",
                r->auc_e, r->auc_pa, r->auc_bg, r->ntrain, r->auc_lr,
                r->auc_rec, r->auc_freq);
        fprintf(f,
                "## How many purchases?\n\n"
                "Predicted (MBG/NBD conditional expectation over %d days) "
                "vs actual purchase days in the holdout: **%.0f predicted, "
                "%.0f actual** (%+.1f %%). Mean absolute error per "
                "customer: **%.3f** (BG/NBD %.3f; predicting the "
                "calibration rate x / T x %d days: %.3f).\n\n"
                "| x in calibration | customers | actual mean | MBG/NBD "
                "mean | BG/NBD mean |\n|---|---|---|---|---|\n",
                r->hdays, r->pred_tot, r->act_tot,
                100 * (r->pred_tot - r->act_tot) / r->act_tot, r->mae,
                r->mae_bg, r->hdays, r->mae_lr_base);
        for (int g = 0; g < NFREQ; g++)
                fprintf(f, "| %s%d | %.0f | %.3f | %.3f | %.3f |\n",
                        g == NFREQ - 1 ? ">= " : "", g, r->fg_n[g],
                        r->fg_act[g], r->fg_pred[g], r->fg_bg[g]);
        fprintf(f, "\n![calibration vs holdout by frequency](freq.png)\n\n");
        fprintf(f,
                "## P(alive)\n\n"
                "Customers per P(alive) bin of 0.05 (log scale), split by "
                "whether they bought in the holdout. AUC of P(alive) "
                "%.4f.\n\n![P(alive) histogram](palive.png)\n\n"
                "## Customer value by decile\n\n"
                "Customers ranked by predicted holdout value (expected "
                "purchases x Gamma-Gamma expected order value, no "
                "discount, margin 1) and compared with what they really "
                "spent in the holdout (net of returns). Total predicted "
                "%.0f GBP, actual %.0f GBP.\n\n"
                "| decile | customers | mean P(alive) | predicted GBP | "
                "actual GBP |\n|---|---|---|---|---|\n",
                r->auc_pa, r->clv_tot, r->act_val_tot);
        for (int g = 0; g < 10; g++)
                fprintf(f, "| %d | %.0f | %.3f | %.1f | %.1f |\n", g + 1,
                        r->dec_n[g], r->dec_pa[g], r->dec_clv[g],
                        r->dec_act[g]);
        fprintf(f, "\n![CLV deciles](clv.png)\n\n"
                   "Files: `freq.dat`, `palive.dat`, `clv.dat` (the plotted "
                   "numbers), `plots.gp` (gnuplot script).\n");
}

void ctl_eval_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl eval [-c CAL_END] [-e HOLDOUT_END] [-o "
                    "DIR] [FILE]\n"
                    "  FILE  transactions (default ../shared/data/"
                    "online_retail.csv.gz)\n"
                    "  -c    calibration end, inclusive (2011-09-09)\n"
                    "  -e    holdout end, inclusive (2011-12-09)\n"
                    "  -o    report directory (build/report)\n");
}

int ctl_eval_main(int argc, char **argv) {
        const char *path =
            LOY_SOURCE_DIR "/../shared/data/online_retail.csv.gz";
        const char *cal = "2011-09-09", *end = "2011-12-09";
        const char *outdir = "build/report";
        ctl_data_t d;
        ctl_sum_t *s = NULL, *tr = NULL;
        loy_fit_cust_t *fc = NULL;
        size_t *idx = NULL;
        double *e = NULL, *pa = NULL, *ebg = NULL, *rec = NULL, *lr = NULL;
        double *act = NULL, *fr = NULL, *clv = NULL, *X = NULL, *base = NULL;
        int *lab = NULL, *ylr = NULL, *grp = NULL;
        int32_t c, hend;
        int opt, rc = 1;
        char err[512];
        struct res r;
        loy_logreg_t model;
        loy_fit_opts_t fo = {LOY_FIT_PRIOR_AUTO, 2};
        FILE *f;

        memset(&r, 0, sizeof(r));
        memset(&d, 0, sizeof(d));
        optind = 1;
        while ((opt = getopt(argc, argv, "c:e:o:s:h")) != -1) {
                switch (opt) {
                case 's':
                        fo.prior_sd = atof(optarg);
                        break;
                case 'c':
                        cal = optarg;
                        break;
                case 'e':
                        end = optarg;
                        break;
                case 'o':
                        outdir = optarg;
                        break;
                default:
                        goto usage;
                }
        }
        if (optind < argc - 1)
                goto usage;
        if (optind == argc - 1)
                path = argv[optind];
        if (ctl_parse_day(cal, &c) || ctl_parse_day(end, &hend) || hend <= c) {
                fprintf(stderr, "eval: want -c DATE < -e DATE, YYYY-MM-DD\n");
                return 2;
        }
        r.path = path;
        r.outdir = outdir;
        snprintf(r.cal, sizeof(r.cal), "%s", cal);
        snprintf(r.end, sizeof(r.end), "%s", end);
        r.hdays = hend - c;
        if (ctl_data_load(&d, path, LOY_SRC_AUTO, err, sizeof(err))) {
                fprintf(stderr, "eval: %s\n", err);
                return 1;
        }
        s = calloc(d.ncust + 1, sizeof(*s));
        tr = calloc(d.ncust + 1, sizeof(*tr));
        fc = calloc(d.ncust + 1, sizeof(*fc));
        idx = calloc(d.ncust + 1, sizeof(*idx));
        e = calloc(d.ncust + 1, sizeof(double));
        pa = calloc(d.ncust + 1, sizeof(double));
        ebg = calloc(d.ncust + 1, sizeof(double));
        rec = calloc(d.ncust + 1, sizeof(double));
        lr = calloc(d.ncust + 1, sizeof(double));
        act = calloc(d.ncust + 1, sizeof(double));
        fr = calloc(d.ncust + 1, sizeof(double));
        clv = calloc(d.ncust + 1, sizeof(double));
        base = calloc(d.ncust + 1, sizeof(double));
        X = calloc((d.ncust + 1) * NFEAT, sizeof(double));
        lab = calloc(d.ncust + 1, sizeof(int));
        ylr = calloc(d.ncust + 1, sizeof(int));
        grp = calloc(d.ncust + 1, sizeof(int));
        if (!s || !tr || !fc || !idx || !e || !pa || !ebg || !rec || !lr ||
            !act || !fr || !clv || !base || !X || !lab || !ylr || !grp) {
                fprintf(stderr, "eval: out of memory\n");
                goto out;
        }

        /* the model, fitted on the calibration period */
        ctl_data_summarise(&d, c, r.hdays, 1, s);
        r.n = ctl_fit_rows(s, d.ncust, 1, fc, idx);
        r.m.variant = LOY_VARIANT_MBGNBD;
        r.bg.variant = LOY_VARIANT_BGNBD;
        if (loy_fit_purchases_ex(&r.m, fc, r.n, &fo, &r.rep, err,
                                 sizeof(err)) ||
            loy_fit_purchases_ex(&r.bg, fc, r.n, &fo, &r.bgrep, err,
                                 sizeof(err)) ||
            loy_fit_spend(&r.m, fc, r.n, NULL, err, sizeof(err))) {
                fprintf(stderr, "eval: fit: %s\n", err);
                goto out;
        }
        r.m.unit_days = r.bg.unit_days = 1;
        snprintf(r.m.version, sizeof(r.m.version), "eval");
        snprintf(r.bg.version, sizeof(r.bg.version), "eval-bg");

        /* the logistic-regression baseline, trained inside calibration */
        {
                size_t k = 0;
                ctl_data_summarise(&d, c - r.hdays, r.hdays, 1, tr);
                for (size_t i = 0; i < d.ncust; i++) {
                        if (!tr[i].in_cohort)
                                continue;
                        features(&tr[i], X + k * NFEAT);
                        ylr[k++] = tr[i].hold_n > 0;
                }
                r.ntrain = k;
                if (loy_logreg_init(&model, NFEAT, err, sizeof(err)) ||
                    loy_logreg_train(&model, X, ylr, k, 1e-4, err,
                                     sizeof(err))) {
                        fprintf(stderr, "eval: logistic regression: %s\n", err);
                        goto out;
                }
                r.lr_loss = loy_logreg_log_loss(&model, X, ylr, k);
        }

        for (size_t k = 0; k < r.n; k++) {
                const ctl_sum_t *si = &s[idx[k]];
                loy_model_input_t in = {fc[k].x, fc[k].t_x, fc[k].T,
                                        fc[k].mean_value,
                                        si->gross / (si->x + 1)};
                loy_model_scores_t sc;
                double fx[NFEAT];

                loy_model_score(&r.m, &in, r.hdays, 1, &sc);
                e[k] = sc.exp_purchases;
                pa[k] = sc.p_alive;
                clv[k] = sc.clv;
                ebg[k] = loy_model_expected_purchases(&r.bg, &in, r.hdays);
                rec[k] = -(fc[k].T - fc[k].t_x);
                fr[k] = fc[k].x;
                features(si, fx);
                lr[k] = loy_logreg_predict(&model, fx);
                act[k] = si->hold_n;
                lab[k] = si->hold_n > 0;
                base[k] = fc[k].T > 0 ? fc[k].x / fc[k].T * r.hdays : 0;
                r.buyers += (size_t)lab[k];
                r.pred_tot += e[k];
                r.act_tot += act[k];
                r.clv_tot += clv[k];
                r.act_val_tot += si->hold_value;
                {
                        int g = fc[k].x < NFREQ - 1 ? (int)fc[k].x : NFREQ - 1;
                        int h = (int)(pa[k] * NHIST);
                        r.fg_n[g]++;
                        r.fg_act[g] += act[k];
                        r.fg_pred[g] += e[k];
                        r.fg_bg[g] += ebg[k];
                        if (h >= NHIST)
                                h = NHIST - 1;
                        if (lab[k])
                                r.h_buy[h]++;
                        else
                                r.h_not[h]++;
                }
        }
        for (int g = 0; g < NFREQ; g++)
                if (r.fg_n[g] > 0) {
                        r.fg_act[g] /= r.fg_n[g];
                        r.fg_pred[g] /= r.fg_n[g];
                        r.fg_bg[g] /= r.fg_n[g];
                }
        r.auc_e = loy_eval_auc(e, lab, r.n);
        r.auc_pa = loy_eval_auc(pa, lab, r.n);
        r.auc_bg = loy_eval_auc(ebg, lab, r.n);
        r.auc_rec = loy_eval_auc(rec, lab, r.n);
        r.auc_lr = loy_eval_auc(lr, lab, r.n);
        r.auc_freq = loy_eval_auc(fr, lab, r.n);
        r.mae = loy_eval_mae(e, act, r.n);
        r.mae_bg = loy_eval_mae(ebg, act, r.n);
        r.mae_lr_base = loy_eval_mae(base, act, r.n);
        if (loy_eval_rank_groups(clv, r.n, 10, grp)) {
                fprintf(stderr, "eval: out of memory\n");
                goto out;
        }
        for (size_t k = 0; k < r.n; k++) {
                r.dec_n[grp[k]]++;
                r.dec_clv[grp[k]] += clv[k];
                r.dec_act[grp[k]] += s[idx[k]].hold_value;
                r.dec_pa[grp[k]] += pa[k];
        }
        for (int g = 0; g < 10; g++)
                if (r.dec_n[g] > 0) {
                        r.dec_clv[g] /= r.dec_n[g];
                        r.dec_act[g] /= r.dec_n[g];
                        r.dec_pa[g] /= r.dec_n[g];
                }

        printf("%s: calibration to %s, holdout %d days to %s, %zu "
               "customers, %zu bought in the holdout\n",
               path, cal, r.hdays, end, r.n, r.buyers);
        printf("MBG/NBD r=%.4f alpha=%.3f a=%.4f b=%.4f (%s)\n", r.m.r,
               r.m.alpha, r.m.a, r.m.b, r.rep.note);
        printf("AUC  expected purchases %.4f  P(alive) %.4f  BG/NBD %.4f  "
               "logistic RFM %.4f  recency %.4f  frequency %.4f\n",
               r.auc_e, r.auc_pa, r.auc_bg, r.auc_lr, r.auc_rec, r.auc_freq);
        printf("holdout purchases: predicted %.1f, actual %.0f; MAE %.4f "
               "(BG/NBD %.4f, naive rate %.4f)\n",
               r.pred_tot, r.act_tot, r.mae, r.mae_bg, r.mae_lr_base);

        if (mkdirs(outdir)) {
                fprintf(stderr, "eval: %s: %s\n", outdir, strerror(errno));
                goto out;
        }
        if (!(f = open_out(outdir, "freq.dat")))
                goto out;
        fprintf(f, "# x customers actual mbgnbd bgnbd\n");
        for (int g = 0; g < NFREQ; g++)
                fprintf(f, "%d %.0f %.5f %.5f %.5f\n", g, r.fg_n[g],
                        r.fg_act[g], r.fg_pred[g], r.fg_bg[g]);
        fclose(f);
        if (!(f = open_out(outdir, "palive.dat")))
                goto out;
        fprintf(f, "# bin_centre bought not_bought\n");
        for (int h = 0; h < NHIST; h++)
                fprintf(f, "%.3f %.0f %.0f\n", (h + 0.5) / NHIST, r.h_buy[h],
                        r.h_not[h]);
        fclose(f);
        if (!(f = open_out(outdir, "clv.dat")))
                goto out;
        fprintf(f, "# decile customers predicted actual mean_p_alive\n");
        for (int g = 0; g < 10; g++)
                fprintf(f, "%d %.0f %.3f %.3f %.4f\n", g + 1, r.dec_n[g],
                        r.dec_clv[g], r.dec_act[g], r.dec_pa[g]);
        fclose(f);
        if (write_file(outdir, "plots.gp", gp_script) || run_gnuplot(outdir))
                goto out;
        if (!(f = open_out(outdir, "report.md")))
                goto out;
        write_report(&r, f);
        if (fclose(f)) {
                fprintf(stderr, "eval: %s/report.md: write error\n", outdir);
                goto out;
        }
        printf("report: %s/report.md (freq.png, palive.png, clv.png)\n",
               outdir);
        rc = 0;
out:
        free(s);
        free(tr);
        free(fc);
        free(idx);
        free(e);
        free(pa);
        free(ebg);
        free(rec);
        free(lr);
        free(act);
        free(fr);
        free(clv);
        free(base);
        free(X);
        free(lab);
        free(ylr);
        free(grp);
        ctl_data_free(&d);
        return rc;
usage:
        ctl_eval_usage(stderr);
        return 2;
}
