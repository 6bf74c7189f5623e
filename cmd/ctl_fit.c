/*
 * loyaltyctl fit: maximum-likelihood fit of the customer-value model from a
 * transactions file or from the live per-customer statistics in Redis,
 * written as a versioned model file (atomically) that loyaltyd loads.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "ctl_model.h"
#include "loy_fit.h"
#include "loy_model.h"
#include "loy_config.h"
#include "loy_store.h"

#define DAY_MS 86400000LL

void ctl_fit_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl fit [options] FILE\n"
                "       loyaltyctl fit [options] -R HOST:PORT\n"
                "  FILE      online_retail.csv.gz, cdnow_master.txt.gz, "
                "cdnow_sample.txt,\n"
                "            or customer_id,timestamp,amount CSV\n"
                "  -f FMT    auto|online_retail|cdnow_master|cdnow_sample|"
                "generic (auto)\n"
                "  -R H:P    read the customers from loyaltyd's Redis "
                "(SCAN <ns>:c:{*})\n"
                "  -n NS     Redis key namespace (loy)\n"
                "  -C FILE   Redis settings from this loyaltyd config "
                "(user, password.file, db ...)\n"
                "  -X K=V    one Redis setting, e.g. -X redis.password.file="
                "PATH\n"
                "  -c DATE   calibration end YYYY-MM-DD, inclusive (the "
                "last event's day)\n"
                "  -u UNIT   days|weeks (days)\n"
                "  -S        do not merge same-day purchases (merged by "
                "default)\n"
                "  -v VAR    mbgnbd|bgnbd (mbgnbd)\n"
                "  -P PRIOR  auto|none|always: weak priors on a, b when the "
                "likelihood\n"
                "            has no interior maximum (auto)\n"
                "  -s SD     sd of those priors on log a, log b (2)\n"
                "  -d RATE   discount_monthly written to the model (0)\n"
                "  -V NAME   model version (fit-<date>-<variant>)\n"
                "  -o PATH   output model file (model.fitted); - = print "
                "only\n");
}

/* Reads every customer hash of namespace ns: rows into *out (malloc'd).
 * cutoff_day < 0: the newest last purchase's day. */
static int read_redis(loy_config_t *conf, int32_t *cutoff_day, double unit_days,
                      loy_fit_cust_t **out, size_t *nout, size_t *skipped) {
        char cursor[32] = "0", pattern[128];
        const char *ns = conf->redis_ns;
        redisContext *c;
        double *raw = NULL; /* 6 per customer */
        size_t n = 0, cap = 0;
        int rc = -1;
        int64_t max_last = 0;
        loy_cust_t cust;

        if (!(c = ctl_redis_connect(conf, "fit")))
                return -1;
        /* the customer hashes, not their :rh and :recs keys */
        snprintf(pattern, sizeof(pattern), "%s:c:{*}", ns);
        do {
                redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000",
                                             cursor, pattern);
                redisReply *keys;
                if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                        fprintf(stderr, "fit: SCAN: %s\n",
                                r && r->str ? r->str : c->errstr);
                        if (r)
                                freeReplyObject(r);
                        goto out;
                }
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                keys = r->element[1];
                /* one pipelined HGETALL per key of the page: the engine's
                 * packed state holds what the readable view does not */
                for (size_t i = 0; i < keys->elements; i++) {
                        const char *argv[2] = {"HGETALL",
                                               keys->element[i]->str};
                        size_t lens[2] = {7, keys->element[i]->len};
                        redisAppendCommandArgv(c, 2, argv, lens);
                }
                for (size_t i = 0; i < keys->elements; i++) {
                        redisReply *h = NULL;
                        const char *bad, *id;
                        double v[6];
                        if (redisGetReply(c, (void **)&h) != REDIS_OK || !h) {
                                fprintf(stderr, "fit: HGETALL: %s\n",
                                        c->errstr);
                                freeReplyObject(r);
                                goto out;
                        }
                        id = strchr(keys->element[i]->str, '{');
                        loy_feat_init(&cust, id ? id + 1 : "");
                        if (loy_store_cust_from_reply(h, &cust, &bad)) {
                                fprintf(stderr,
                                        "fit: %s: field %s does not "
                                        "read, skipped\n",
                                        keys->element[i]->str, bad);
                                freeReplyObject(h);
                                continue;
                        }
                        freeReplyObject(h);
                        v[0] = (double)cust.purchase_days;
                        v[1] = (double)cust.first_purchase_ms;
                        v[2] = (double)cust.last_purchase_ms;
                        v[3] = cust.gross_value;
                        v[4] = cust.first_day_value;
                        v[5] = cust.return_value;
                        if (n == cap) {
                                size_t nc = cap ? 2 * cap : 4096;
                                double *nr =
                                    realloc(raw, nc * 6 * sizeof(*raw));
                                if (!nr) {
                                        fprintf(stderr, "fit: out of memory\n");
                                        freeReplyObject(r);
                                        goto out;
                                }
                                raw = nr;
                                cap = nc;
                        }
                        memcpy(raw + 6 * n++, v, sizeof(v));
                        if ((int64_t)v[2] > max_last)
                                max_last = (int64_t)v[2];
                }
                freeReplyObject(r);
        } while (strcmp(cursor, "0"));

        if (*cutoff_day < 0)
                *cutoff_day = (int32_t)(max_last / DAY_MS);
        *out = malloc((n ? n : 1) * sizeof(**out));
        if (!*out) {
                fprintf(stderr, "fit: out of memory\n");
                goto out;
        }
        *nout = 0;
        *skipped = 0;
        for (size_t i = 0; i < n; i++) {
                const double *v = raw + 6 * i;
                int32_t fd = (int32_t)((int64_t)v[1] / DAY_MS);
                int32_t ld = (int32_t)((int64_t)v[2] / DAY_MS);
                loy_fit_cust_t *fc = &(*out)[*nout];
                /* frequency counts purchase days (the stream merges same-day
                 * purchases): x = frequency - 1 */
                if (v[0] < 1 || v[1] <= 0 || fd > *cutoff_day || ld < fd) {
                        (*skipped)++;
                        continue;
                }
                fc->x = v[0] - 1;
                fc->t_x = fc->x > 0 ? (double)(ld - fd) / unit_days : 0;
                fc->T = (double)(*cutoff_day - fd) / unit_days;
                if (fc->T < fc->t_x)
                        fc->T = fc->t_x;
                fc->mean_value =
                    loy_model_net_mean_value(v[3], v[4], v[5], fc->x);
                fc->monetary = v[3] - v[5];
                (*nout)++;
        }
        rc = 0;
out:
        free(raw);
        redisFree(c);
        return rc;
}

/* R/F/M cut points from the fitted customers as they stood at the
 * calibration end: recency T - t_x, purchase days x + 1, net spend. */
static int fit_rfm(loy_model_t *m, const loy_fit_cust_t *fc, size_t n,
                   double unit_days) {
        double *r = malloc((n + 1) * sizeof(*r));
        double *f = malloc((n + 1) * sizeof(*f));
        double *mo = malloc((n + 1) * sizeof(*mo));
        int rc = -1;
        if (r && f && mo) {
                for (size_t i = 0; i < n; i++) {
                        r[i] = (fc[i].T - fc[i].t_x) * unit_days;
                        f[i] = fc[i].x + 1;
                        mo[i] = fc[i].monetary;
                }
                rc = loy_rfm_fit_cuts(r, f, mo, n, &m->rfm);
        }
        free(r);
        free(f);
        free(mo);
        return rc;
}

static int fit_main(loy_config_t *cf, int argc, char **argv) {
        const char *fmt_name = "auto", *out_path = "model.fitted";
        const char *redis = NULL, *cal = NULL, *version = NULL;
        const char *prior_name = "auto";
        loy_model_t m;
        loy_fit_opts_t fo = {LOY_FIT_PRIOR_AUTO, 2};
        loy_fit_report_t rep;
        loy_fit_cust_t *fc = NULL;
        ctl_data_t d;
        ctl_sum_t *s = NULL;
        size_t n = 0, skipped = 0, repeaters = 0;
        int32_t cutoff = -1;
        int merge = 1, opt, rc = 1, have_data = 0;
        double unit = 1, disc = 0, t0, t_fit, ggll = 0, sx = 0;
        char err[512], info[4096], day[16], fitted_at[32], vbuf[64];
        time_t now = time(NULL);
        struct tm tmv;

        memset(&m, 0, sizeof(m));
        memset(&d, 0, sizeof(d));
        m.variant = LOY_VARIANT_MBGNBD;
        optind = 1;
        while ((opt = getopt(argc, argv, "f:R:n:c:u:Sv:P:s:d:V:o:C:X:h")) !=
               -1) {
                switch (opt) {
                case 'f':
                        fmt_name = optarg;
                        break;
                case 'R': {
                        const char *colon = strrchr(optarg, ':');
                        char host[256];
                        if (!colon || colon == optarg ||
                            (size_t)(colon - optarg) >= sizeof(host)) {
                                fprintf(stderr, "fit: -R wants HOST:PORT\n");
                                goto usage;
                        }
                        snprintf(host, sizeof(host), "%.*s",
                                 (int)(colon - optarg), optarg);
                        if (ctl_setting(cf, "fit", 'H', host) ||
                            ctl_setting(cf, "fit", 'p', colon + 1))
                                goto usage;
                        redis = optarg;
                        break;
                }
                case 'n':
                case 'X':
                        if (ctl_setting(cf, "fit", opt, optarg))
                                goto usage;
                        break;
                case 'C':
                        if (ctl_setting(cf, "fit", 'c', optarg))
                                goto usage;
                        break;
                case 'c':
                        cal = optarg;
                        break;
                case 'u':
                        if (!strcmp(optarg, "days"))
                                unit = 1;
                        else if (!strcmp(optarg, "weeks"))
                                unit = 7;
                        else
                                goto usage;
                        break;
                case 'S':
                        merge = 0;
                        break;
                case 'v':
                        if (!strcmp(optarg, "bgnbd"))
                                m.variant = LOY_VARIANT_BGNBD;
                        else if (!strcmp(optarg, "mbgnbd"))
                                m.variant = LOY_VARIANT_MBGNBD;
                        else
                                goto usage;
                        break;
                case 'P':
                        prior_name = optarg;
                        break;
                case 's':
                        fo.prior_sd = atof(optarg);
                        break;
                case 'd':
                        disc = atof(optarg);
                        break;
                case 'V':
                        version = optarg;
                        break;
                case 'o':
                        out_path = optarg;
                        break;
                default:
                        goto usage;
                }
        }
        if (!strcmp(prior_name, "auto"))
                fo.prior = LOY_FIT_PRIOR_AUTO;
        else if (!strcmp(prior_name, "none"))
                fo.prior = LOY_FIT_PRIOR_NONE;
        else if (!strcmp(prior_name, "always"))
                fo.prior = LOY_FIT_PRIOR_ALWAYS;
        else
                goto usage;
        if ((redis != NULL) == (optind < argc) || optind < argc - 1)
                goto usage;
        if (cal && ctl_parse_day(cal, &cutoff) == -1) {
                fprintf(stderr, "fit: -c %s: want YYYY-MM-DD\n", cal);
                return 2;
        }
        if (redis && !merge) {
                fprintf(stderr, "fit: -S: the stream always merges same-day "
                                "purchases (frequency counts days)\n");
                return 2;
        }

        t0 = ctl_mono_seconds();
        if (redis) {
                if (read_redis(cf, &cutoff, unit, &fc, &n, &skipped) == -1)
                        return 1;
                printf("read %zu customers from redis %s (%s:c:{*}), %zu "
                       "skipped (no purchase or first one after the "
                       "calibration end)\n",
                       n + skipped, redis, cf->redis_ns, skipped);
        } else {
                loy_source_format_t f = loy_source_format_parse(fmt_name);
                if (f == LOY_SRC_UNKNOWN)
                        goto usage;
                if (ctl_data_load(&d, argv[optind], f, err, sizeof(err))) {
                        fprintf(stderr, "fit: %s\n", err);
                        return 1;
                }
                have_data = 1;
                if (cutoff < 0)
                        cutoff = (int32_t)(d.stats.last_ts_ms / DAY_MS);
                s = malloc((d.ncust + 1) * sizeof(*s));
                fc = malloc((d.ncust + 1) * sizeof(*fc));
                if (!s || !fc) {
                        fprintf(stderr, "fit: out of memory\n");
                        goto out;
                }
                ctl_data_summarise(&d, cutoff, 0, merge, s);
                n = ctl_fit_rows(s, d.ncust, unit, fc, NULL);
                printf("read %s (%s): %" PRId64 " events of %zu customers "
                       "in %.2f s\n",
                       argv[optind], loy_source_format_name(d.format),
                       d.stats.events, d.ncust, d.read_seconds);
        }
        ctl_format_day(cutoff, day, sizeof(day));
        for (size_t i = 0; i < n; i++) {
                repeaters += fc[i].x > 0;
                sx += fc[i].x;
        }
        printf("calibration to %s, %s, same-day purchases %s: %zu "
               "customers, %zu with repeat purchases, %.0f repeat "
               "purchases\n",
               day, unit == 7 ? "weeks" : "days",
               merge ? "merged" : "not merged", n, repeaters, sx);

        t_fit = ctl_mono_seconds();
        if (loy_fit_purchases_ex(&m, fc, n, &fo, &rep, err, sizeof(err))) {
                fprintf(stderr, "fit: %s: %s\n",
                        m.variant == LOY_VARIANT_MBGNBD ? "MBG/NBD" : "BG/NBD",
                        err);
                goto out;
        }
        printf("%s: r = %.4f  alpha = %.4f  a = %.4f  b = %.4f  "
               "LL = %.2f  (%zu distinct (x, t_x, T), %d iterations)\n",
               m.variant == LOY_VARIANT_MBGNBD ? "MBG/NBD" : "BG/NBD", m.r,
               m.alpha, m.a, m.b, rep.ll, rep.unique, rep.iterations);
        if (rep.ridge)
                printf("WARNING: the likelihood has no interior maximum "
                       "(dropout is not identified by these data):\n"
                       "         plain ML stopped at a = %.3g, b = %.3g "
                       "(LL %.2f, %s), and moving a 1000x\n"
                       "         towards the boundary costs less than the "
                       "95%% likelihood-ratio bound.\n"
                       "         Refitted with weak priors log a, log b ~ "
                       "N(0, %g^2): LL %.2f above is %.2f lower.\n",
                       rep.ml_p[2], rep.ml_p[3], rep.ll_ml,
                       rep.converged ? "converged on the ridge"
                                     : "did not converge",
                       fo.prior_sd, rep.ll, rep.ll_ml - rep.ll);
        if (loy_fit_spend(&m, fc, n, &ggll, err, sizeof(err)))
                printf("Gamma-Gamma: not fitted: %s (scores fall back to "
                       "each customer's own mean)\n",
                       err);
        else
                printf("Gamma-Gamma: p = %.4f  q = %.4f  gamma = %.4f  "
                       "LL = %.2f  (population mean order %.2f)\n",
                       m.gg_p, m.gg_q, m.gg_gamma, ggll,
                       m.gg_gamma * m.gg_p / (m.gg_q - 1));
        if (fit_rfm(&m, fc, n, unit) == 0)
                printf("R/F/M cut points (a score of at least 2, 3, 4, 5): "
                       "recency <= %g %g %g %g days, frequency >= %g %g %g "
                       "%g days, monetary >= %g %g %g %g\n",
                       m.rfm.recency_days[0], m.rfm.recency_days[1],
                       m.rfm.recency_days[2], m.rfm.recency_days[3],
                       m.rfm.frequency[0], m.rfm.frequency[1],
                       m.rfm.frequency[2], m.rfm.frequency[3],
                       m.rfm.monetary[0], m.rfm.monetary[1], m.rfm.monetary[2],
                       m.rfm.monetary[3]);
        else
                printf("R/F/M cut points: not fitted (no customers or out of "
                       "memory): scores rank against the live population\n");
        t_fit = ctl_mono_seconds() - t_fit;
        printf("fit time %.3f s (total with reading %.3f s)\n", t_fit,
               ctl_mono_seconds() - t0);

        gmtime_r(&now, &tmv);
        strftime(fitted_at, sizeof(fitted_at), "%Y-%m-%dT%H:%M:%SZ", &tmv);
        if (!version) {
                char date[16];
                strftime(date, sizeof(date), "%Y%m%d-%H%M%S", &tmv);
                snprintf(vbuf, sizeof(vbuf), "fit-%s-%s", date,
                         m.variant == LOY_VARIANT_MBGNBD ? "mbgnbd" : "bgnbd");
                version = vbuf;
        }
        snprintf(m.version, sizeof(m.version), "%s", version);
        m.unit_days = unit;
        m.discount_monthly = disc;
        snprintf(info, sizeof(info),
                 "\n# fit summary (ignored by the loader)\n"
                 "format = 1\n"
                 "fitted_at = %s\n"
                 "source = %s\n"
                 "source_format = %s\n"
                 "calibration_end = %s\n"
                 "same_day_merge = %s\n"
                 "customers = %zu\n"
                 "repeat_customers = %zu\n"
                 "repeat_purchases = %.0f\n"
                 "unique_summaries = %zu\n"
                 "log_likelihood = %.4f\n"
                 "converged = %s\n"
                 "ridge = %s\n"
                 "penalised = %s\n"
                 "ml_log_likelihood = %.4f\n"
                 "ml_stopped_at = r %.4g alpha %.4g a %.4g b %.4g\n"
                 "gg_log_likelihood = %.4f\n"
                 "refunds = netted: repeat value x (1 - returned / gross)\n"
                 "fit_seconds = %.3f\n"
                 "note = %s\n",
                 fitted_at, redis ? "redis" : argv[optind],
                 redis ? "redis" : loy_source_format_name(d.format), day,
                 merge ? "yes" : "no", n, repeaters, sx, rep.unique, rep.ll,
                 rep.converged ? "yes" : "no", rep.ridge ? "yes" : "no",
                 rep.penalised ? "yes" : "no", rep.ll_ml, rep.ml_p[0],
                 rep.ml_p[1], rep.ml_p[2], rep.ml_p[3], ggll, t_fit, rep.note);
        /* '#' would start a comment inside a value: keep notes readable */
        for (char *p = info; *p; p++)
                if (*p == '#' && p != info + 1)
                        *p = ' ';
        if (!strcmp(out_path, "-")) {
                printf("(not written: -o -)\n");
                rc = 0;
                goto out;
        }
        if (loy_model_write(&m, info, out_path, err, sizeof(err))) {
                fprintf(stderr, "fit: %s\n", err);
                goto out;
        }
        printf("wrote %s (version %s); loyaltyd loads it on SIGHUP\n", out_path,
               m.version);
        rc = 0;
out:
        free(s);
        free(fc);
        if (have_data)
                ctl_data_free(&d);
        return rc;
usage:
        ctl_fit_usage(stderr);
        return 2;
}

int ctl_fit_main(int argc, char **argv) {
        loy_config_t conf;
        int rc;
        loy_config_defaults(&conf);
        rc = fit_main(&conf, argc, argv);
        loy_config_free(&conf);
        return rc;
}
