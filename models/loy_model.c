/* loy_model: see loy_model.h. */
#include "loy_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_gamma.h>

/* ------------------------------------------------------------------ */
/* Model file                                                           */
/* ------------------------------------------------------------------ */

enum {
        K_VERSION,
        K_VARIANT,
        K_TIME_UNIT,
        K_R,
        K_ALPHA,
        K_A,
        K_B,
        K_GG_P,
        K_GG_Q,
        K_GG_GAMMA,
        K_DISCOUNT,
        K_RFM_R,
        K_RFM_F,
        K_RFM_M,
        K_INFO,
        K__COUNT
};

static const struct {
        const char *name;
        int id;
} model_keys[] = {
    {"version", K_VERSION},
    {"variant", K_VARIANT},
    {"time_unit", K_TIME_UNIT},
    {"r", K_R},
    {"alpha", K_ALPHA},
    {"a", K_A},
    {"b", K_B},
    {"gg_p", K_GG_P},
    {"gg_q", K_GG_Q},
    {"gg_gamma", K_GG_GAMMA},
    {"discount_monthly", K_DISCOUNT},
    {"rfm_recency_days", K_RFM_R},
    {"rfm_frequency", K_RFM_F},
    {"rfm_monetary", K_RFM_M},
    /* written by the fitter for people; accepted and ignored */
    {"log_likelihood", K_INFO},
    {"fitted_at", K_INFO},
    {"customers", K_INFO},
    {"calibration_end", K_INFO},
    {"note", K_INFO},
    {"format", K_INFO},
    {"source", K_INFO},
    {"source_format", K_INFO},
    {"same_day_merge", K_INFO},
    {"unique_summaries", K_INFO},
    {"repeat_customers", K_INFO},
    {"repeat_purchases", K_INFO},
    {"first_purchase", K_INFO},
    {"converged", K_INFO},
    {"ridge", K_INFO},
    {"penalised", K_INFO},
    {"ml_log_likelihood", K_INFO},
    {"ml_stopped_at", K_INFO},
    {"gg_log_likelihood", K_INFO},
    {"gg_customers", K_INFO},
    {"refunds", K_INFO},
    {"fit_seconds", K_INFO},
    {"iterations", K_INFO},
    {"prior", K_INFO},
};

static char *trim(char *s) {
        char *e;
        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                         e[-1] == '\r'))
                *--e = '\0';
        return s;
}

static int parse_number(const char *s, double *out) {
        char *end;
        double v;
        errno = 0;
        v = strtod(s, &end);
        if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
                return -1;
        *out = v;
        return 0;
}

static int load_line(loy_model_t *m, int *seen, const char *path, int lineno,
                     char *line, char *errstr, size_t errstr_size) {
        char *hash = strchr(line, '#');
        char *eq, *key, *val;
        double *dst = NULL;
        int id = -1;

        /* '#' starts a comment anywhere, so "variant = mbgnbd  # ..." works */
        if (hash)
                *hash = '\0';
        key = trim(line);
        if (!*key)
                return 0;
        eq = strchr(key, '=');
        if (!eq) {
                snprintf(errstr, errstr_size, "%s:%d: %s: expected key = value",
                         path, lineno, key);
                return -1;
        }
        *eq = '\0';
        val = trim(eq + 1);
        key = trim(key);
        for (size_t i = 0; i < sizeof(model_keys) / sizeof(model_keys[0]); i++)
                if (!strcmp(model_keys[i].name, key))
                        id = model_keys[i].id;
        if (id < 0) {
                snprintf(errstr, errstr_size, "%s:%d: %s: unknown key", path,
                         lineno, key);
                return -1;
        }
        if (id != K_INFO && seen[id]) {
                snprintf(errstr, errstr_size, "%s:%d: %s: duplicate key", path,
                         lineno, key);
                return -1;
        }
        seen[id] = 1;
        switch (id) {
        case K_INFO:
                return 0;
        case K_VERSION:
                if (!*val || strlen(val) >= sizeof(m->version)) {
                        snprintf(errstr, errstr_size,
                                 "%s:%d: %s: must be 1 to %zu characters", path,
                                 lineno, key, sizeof(m->version) - 1);
                        return -1;
                }
                memcpy(m->version, val, strlen(val) + 1);
                return 0;
        case K_VARIANT:
                if (!strcmp(val, "bgnbd")) {
                        m->variant = LOY_VARIANT_BGNBD;
                } else if (!strcmp(val, "mbgnbd")) {
                        m->variant = LOY_VARIANT_MBGNBD;
                } else {
                        snprintf(errstr, errstr_size,
                                 "%s:%d: %s: must be bgnbd or mbgnbd", path,
                                 lineno, key);
                        return -1;
                }
                return 0;
        case K_TIME_UNIT:
                if (!strcmp(val, "days")) {
                        m->unit_days = 1;
                } else if (!strcmp(val, "weeks")) {
                        m->unit_days = 7;
                } else {
                        snprintf(errstr, errstr_size,
                                 "%s:%d: %s: must be days or weeks", path,
                                 lineno, key);
                        return -1;
                }
                return 0;
        case K_RFM_R:
        case K_RFM_F:
        case K_RFM_M: {
                double *cut = id == K_RFM_R   ? m->rfm.recency_days
                              : id == K_RFM_F ? m->rfm.frequency
                                              : m->rfm.monetary;
                char *q = val;
                for (int k = 0; k < 4; k++) {
                        char *end;
                        errno = 0;
                        cut[k] = strtod(q, &end);
                        if (end == q || errno == ERANGE || !isfinite(cut[k]) ||
                            (*end && *end != ' ' && *end != '\t'))
                                goto bad_cuts;
                        q = end;
                }
                if (*trim(q))
                        goto bad_cuts;
                return 0;
        bad_cuts:
                snprintf(errstr, errstr_size, "%s:%d: %s: want four numbers",
                         path, lineno, key);
                return -1;
        }
        case K_R:
                dst = &m->r;
                break;
        case K_ALPHA:
                dst = &m->alpha;
                break;
        case K_A:
                dst = &m->a;
                break;
        case K_B:
                dst = &m->b;
                break;
        case K_GG_P:
                dst = &m->gg_p;
                break;
        case K_GG_Q:
                dst = &m->gg_q;
                break;
        case K_DISCOUNT:
                dst = &m->discount_monthly;
                break;
        default:
                dst = &m->gg_gamma;
                break;
        }
        if (parse_number(val, dst) == -1) {
                snprintf(errstr, errstr_size, "%s:%d: %s: not a number", path,
                         lineno, key);
                return -1;
        }
        return 0;
}

/* Parses f (left open: the caller closes it); path names it in
 * messages. */
static int load_fp(loy_model_t *m, FILE *f, const char *path, char *errstr,
                   size_t errstr_size) {
        static const int required[] = {K_VERSION, K_VARIANT, K_TIME_UNIT, K_R,
                                       K_ALPHA,   K_A,       K_B};
        static const int gg[] = {K_GG_P, K_GG_Q, K_GG_GAMMA};
        int seen[K__COUNT] = {0};
        char line[1024];
        loy_model_t tmp;
        int lineno = 0, ngg = 0;

        memset(&tmp, 0, sizeof(tmp));
        while (fgets(line, sizeof(line), f)) {
                lineno++;
                if (!strchr(line, '\n') && !feof(f)) {
                        snprintf(errstr, errstr_size, "%s:%d: line too long",
                                 path, lineno);
                        return -1;
                }
                if (load_line(&tmp, seen, path, lineno, line, errstr,
                              errstr_size) == -1)
                        return -1;
        }
        if (ferror(f)) {
                snprintf(errstr, errstr_size, "%s: read error", path);
                return -1;
        }

        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                if (!seen[required[i]])
                        goto missing;
        /* Gamma-Gamma is optional, but all three or none */
        for (size_t i = 0; i < 3; i++)
                ngg += seen[gg[i]];
        if (ngg && ngg < 3)
                for (size_t i = 0; i < 3; i++)
                        if (!seen[gg[i]]) {
                                snprintf(errstr, errstr_size, "%s: %s: missing",
                                         path,
                                         gg[i] == K_GG_P   ? "gg_p"
                                         : gg[i] == K_GG_Q ? "gg_q"
                                                           : "gg_gamma");
                                return -1;
                        }
        tmp.has_gg = ngg == 3;
        {
                int nrfm = seen[K_RFM_R] + seen[K_RFM_F] + seen[K_RFM_M];
                if (nrfm && nrfm < 3) {
                        snprintf(errstr, errstr_size, "%s: %s: missing", path,
                                 !seen[K_RFM_R]   ? "rfm_recency_days"
                                 : !seen[K_RFM_F] ? "rfm_frequency"
                                                  : "rfm_monetary");
                        return -1;
                }
                tmp.rfm.set = nrfm == 3;
        }
        if (loy_model_validate(&tmp, errstr, errstr_size) == -1) {
                char why[256];
                snprintf(why, sizeof(why), "%s", errstr);
                snprintf(errstr, errstr_size, "%s: %s", path, why);
                return -1;
        }
        *m = tmp;
        return 0;

missing:
        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                if (!seen[required[i]]) {
                        for (size_t k = 0;
                             k < sizeof(model_keys) / sizeof(model_keys[0]);
                             k++)
                                if (model_keys[k].id == required[i]) {
                                        snprintf(errstr, errstr_size,
                                                 "%s: %s: missing", path,
                                                 model_keys[k].name);
                                        break;
                                }
                        break;
                }
        return -1;
}

int loy_model_load(loy_model_t *m, const char *path, char *errstr,
                   size_t errstr_size) {
        FILE *f = fopen(path, "r");
        int rc;

        if (!f) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return -1;
        }
        rc = load_fp(m, f, path, errstr, errstr_size);
        fclose(f);
        return rc;
}

int loy_model_load_buffer(loy_model_t *m, const char *name, const char *buf,
                          size_t len, char *errstr, size_t errstr_size) {
        FILE *f;
        int rc;

        /* a read-only stream over the caller's bytes: the very code path
         * of a file */
        f = fmemopen((void *)(uintptr_t)(len ? buf : ""), len, "r");
        if (!f) {
                snprintf(errstr, errstr_size, "%s: %s", name, strerror(errno));
                return -1;
        }
        rc = load_fp(m, f, name, errstr, errstr_size);
        fclose(f);
        return rc;
}

int loy_model_validate(const loy_model_t *m, char *errstr, size_t errstr_size) {
        const struct {
                const char *name;
                double v;
        } p[] = {
            {"r", m->r},
            {"alpha", m->alpha},
            {"a", m->a},
            {"b", m->b},
            {"gg_p", m->gg_p},
            {"gg_q", m->gg_q},
            {"gg_gamma", m->gg_gamma},
        };
        size_t n = m->has_gg ? 7 : 4;

        if (m->variant != LOY_VARIANT_BGNBD &&
            m->variant != LOY_VARIANT_MBGNBD) {
                snprintf(errstr, errstr_size, "variant: unknown");
                return -1;
        }
        if (m->unit_days != 1 && m->unit_days != 7) {
                snprintf(errstr, errstr_size,
                         "time_unit: must be days or weeks");
                return -1;
        }
        for (size_t i = 0; i < n; i++)
                if (!isfinite(p[i].v) || p[i].v <= 0) {
                        snprintf(errstr, errstr_size,
                                 "%s: must be finite and > 0", p[i].name);
                        return -1;
                }
        if (!isfinite(m->discount_monthly) || m->discount_monthly < 0 ||
            m->discount_monthly > 1) {
                snprintf(errstr, errstr_size,
                         "discount_monthly: must be in [0, 1]");
                return -1;
        }
        if (m->rfm.set) {
                const char *what;
                if (loy_rfm_cuts_check(&m->rfm, &what)) {
                        snprintf(errstr, errstr_size,
                                 "rfm_%s: cut points must be finite, "
                                 "recency ones not increasing, the others "
                                 "not decreasing",
                                 what);
                        return -1;
                }
        }
        /* The Gamma-Gamma mean spend gamma*p/(q-1) only exists for q > 1. */
        if (m->has_gg && m->gg_q <= 1) {
                snprintf(errstr, errstr_size,
                         "gg_q: must be > 1 (mean spend is infinite)");
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------ */
/* Scoring                                                              */
/* ------------------------------------------------------------------ */

/* Clamps the summary to what the model can mean: 0 <= t_x <= T, x >= 0. */
static void sanitize(const loy_model_input_t *in, double *x, double *tx,
                     double *T) {
        *x = isfinite(in->x) && in->x > 0 ? in->x : 0;
        *T = isfinite(in->T) && in->T > 0 ? in->T : 0;
        *tx = isfinite(in->t_x) && in->t_x > 0 ? in->t_x : 0;
        if (*tx > *T)
                *tx = *T;
        if (*x == 0)
                *tx = 0;
}

/* 1 / (1 + exp(l)) without overflow. */
static double logistic_neg(double l) {
        if (l > 0) {
                double e = exp(-l);
                return e / (1 + e);
        }
        return 1 / (1 + exp(l));
}

double loy_model_p_alive(const loy_model_t *m, const loy_model_input_t *in) {
        double x, tx, T, den, l;

        sanitize(in, &x, &tx, &T);
        if (m->variant == LOY_VARIANT_BGNBD) {
                /* BG/NBD: nobody drops out before a repeat purchase */
                if (x == 0)
                        return 1;
                den = m->b + x - 1;
        } else {
                den = m->b + x;
        }
        if (den <= 0) /* 0 < x < 1 with b < 1: not a count; be safe */
                den = 1e-300;
        /* log of a/den * ((alpha+T)/(alpha+t_x))^(r+x); log1p keeps the
         * ratio exact when T - t_x is small next to alpha + t_x */
        l = log(m->a) - log(den) +
            (m->r + x) * log1p((T - tx) / (m->alpha + tx));
        return logistic_neg(l);
}

/*
 * Expected purchases of an alive customer in the next t units:
 *
 *   E = sum_{k>=0} P(N(t) >= k+1) * E[(1-p)^k]
 *
 * (the (k+1)-th purchase is made if the Poisson-gamma process N produces
 * it and the customer survived the k coin flips after the previous ones).
 * With lambda ~ Gamma(n, alpha+T), n = r+x, N(t) is negative binomial with
 * P(N = j) = (n)_j / j! (1-z)^n z^j, z = t/(alpha+T+t); with
 * p ~ Beta(a, beta), E[(1-p)^k] = (beta)_k / (a+beta)_k =: c_k. Regrouped
 * by j:
 *
 *   E = sum_{j>=1} P(N = j) * C_j,   C_j = c_0 + ... + c_{j-1}.
 *
 * Every term is positive (no cancellation, unlike the literal
 * 2F1 formula whose two parts nearly cancel for large b, and no (a-1)
 * denominator: a <= 1 is fine), every P(N >= k+1) grows with t (so E is
 * monotone in the horizon), and it equals the closed forms of FHL (2005)
 * eq. (10) and Batislam et al. (2007) term by term; tests check both
 * against an independent high-precision evaluation.
 *
 * The pmf is kept scaled by exp(scale) so n in the thousands, whose
 * (1-z)^n underflows, is safe.
 *
 * For a > 1, C_j tends to C = (a+beta-1)/(a-1) and the deficit has a
 * closed form, D_j = C - C_j = C (beta)_j / (a+beta-1)_j, so also
 *
 *   E = C (1 - P(N = 0)) - sum_{j>=1} P(N = j) D_j.
 *
 * Once most of the mass sits where C_j has saturated, E barely moves with
 * t and the first sum's rounding noise would exceed its true growth; the
 * second form is then exact to rounding of a small correction, which keeps
 * E monotone in t. Sums are compensated (Neumaier).
 */
#define SERIES_MAX_TERMS 4000000.0

struct ksum {
        double s, c;
};

static void ksum_add(struct ksum *k, double v) {
        double t = k->s + v;
        if (fabs(k->s) >= fabs(v))
                k->c += (k->s - t) + v;
        else
                k->c += (v - t) + k->s;
        k->s = t;
}

static void ksum_scale(struct ksum *k, double f) {
        k->s *= f;
        k->c *= f;
}

static double alive_series(double n, double a, double beta, double z) {
        double l0 = n * log1p(-z); /* log P(N = 0) */
        double scale = l0;
        double cinf = a > 1 ? (a + beta - 1) / (a - 1) : INFINITY;
        double pmf = 1, c = 1, C = 0, d = 1;
        struct ksum s1 = {0, 0}, s2 = {0, 0};
        double tot1, tot2;

        for (double j = 1; j < SERIES_MAX_TERMS + 100; j++) {
                double ratio = (n + j - 1) / j * z;
                double rho, tail;

                C += c;
                c *= (beta + j - 1) / (a + beta + j - 1);
                d *= (beta + j - 1) / (a + beta + j - 2);
                pmf *= ratio;
                ksum_add(&s1, pmf * C);
                if (a > 1)
                        ksum_add(&s2, pmf * d);
                if (pmf > 1e200) {
                        pmf *= 1e-200;
                        ksum_scale(&s1, 1e-200);
                        ksum_scale(&s2, 1e-200);
                        scale += 200 * M_LN10;
                }
                /* Remaining terms: the pmf ratio never again exceeds rho
                 * (it falls toward z from above when n > 1, rises toward z
                 * when n < 1) and C grows by at most 1 a step. */
                rho = n > 1 ? (n + j) / (j + 1) * z : z;
                if (rho >= 1 || pmf == 0)
                        continue;
                tail = pmf * rho / (1 - rho) * (C + c + 1 / (1 - rho));
                if (a > 1) /* D_j decreases: the deficit sum's tail */
                        tail = fmax(tail, pmf * rho / (1 - rho) * cinf * d);
                if (tail <= 1e-17 * (s1.s + s1.c))
                        break;
        }
        tot1 = s1.s + s1.c;
        if (tot1 <= 0)
                return 0;
        tot1 = exp(log(tot1) + scale);
        if (!(a > 1))
                return tot1;
        tot2 = s2.s + s2.c;
        tot2 = tot2 > 0 ? cinf * exp(log(tot2) + scale) : 0;
        /* deficit form only when it cancels less than 2:1 */
        if (tot2 < tot1)
                return cinf * -expm1(l0) - tot2;
        return tot1;
}

/*
 * Same expectation as a 1-D integral over the dropout probability,
 * E = E_p[(1 - (1 + p s)^-n) / p], s = t/(alpha+T), written in q = log p
 * so the mass near p = 0 (a < 1) and the narrow peak of a huge beta are
 * both ordinary smooth bumps. Below p0 the integrand is n s p^(a-1) / B to
 * 1e-13 and is integrated in closed form. Only used when the series would
 * need millions of terms (a prior purchase rate r/alpha absurdly high).
 */
struct quad_par {
        double n, a, beta, s, lbeta;
        int deficit; /* integrate E_p[(1 + p s)^-n / p] instead */
};

static double quad_f(double q, void *vp) {
        const struct quad_par *p = vp;
        double e = exp(q);
        /* log(1 - p) from expm1: finite right up to p = 1 */
        double l1p = log(-expm1(q));
        double ld = (p->a - 1) * q + (p->beta - 1) * l1p - p->lbeta;
        double lg = -p->n * log1p(p->s * e);
        if (p->deficit)
                return exp(ld + lg);
        return exp(ld) * -expm1(lg);
}

static double qagp(struct quad_par *par, double q0, double head, int *ok) {
        gsl_function F = {quad_f, par};
        double cand[2] = {-log(par->s), log(par->a / (par->a + par->beta))};
        double pts[4], res = 0, err = 0;
        gsl_integration_workspace *w;
        gsl_error_handler_t *old;
        int npts = 0, rc;

        if (cand[0] > cand[1]) {
                double t = cand[0];
                cand[0] = cand[1];
                cand[1] = t;
        }
        pts[npts++] = q0;
        for (int i = 0; i < 2; i++)
                if (cand[i] > pts[npts - 1] && cand[i] < 0)
                        pts[npts++] = cand[i];
        pts[npts++] = 0;
        *ok = 0;
        w = gsl_integration_workspace_alloc(2000);
        if (!w)
                return 0;
        old = gsl_set_error_handler_off();
        rc = gsl_integration_qagp(&F, pts, (size_t)npts, 0, 1e-13, 2000, w,
                                  &res, &err);
        gsl_set_error_handler(old);
        gsl_integration_workspace_free(w);
        res += head;
        *ok = (!rc || rc == GSL_EROUND) && isfinite(res) && res >= 0;
        return res;
}

static double alive_quad(double n, double a, double beta, double s) {
        struct quad_par par = {n, a, beta, s, gsl_sf_lnbeta(a, beta), 0};
        double big = fmax(fmax((n + 1) * s, beta), 1);
        double p0 = 1e-13 / big, q0 = log(p0);
        double head, res;
        int ok;

        if (a > 1) {
                /* saturated customers (most of the Poisson-gamma mass far
                 * beyond where survival has run out) need the small
                 * deficit from E[1/p] = (a+beta-1)/(a-1), not a sum close
                 * to it; below p0 its integrand is p^(a-2) / B */
                double cinf = (a + beta - 1) / (a - 1);
                par.deficit = 1;
                head = exp((a - 1) * q0 - log(a - 1) - par.lbeta);
                res = qagp(&par, q0, head, &ok);
                if (ok && res < 0.5 * cinf)
                        return cinf - res;
                par.deficit = 0;
        }
        /* below p0 the integrand is n s p^(a-1) / B, integrated in logs */
        head = exp(log(n * s) + a * q0 - log(a) - par.lbeta);
        res = qagp(&par, q0, head, &ok);
        return ok ? res : 0;
}

/* Expected purchases in the next horizon units given alive, for the
 * sanitised summary (x, T). */
static double alive_expected(const loy_model_t *m, double x, double T,
                             double horizon) {
        double n, beta, z, s, e;

        if (!(horizon > 0) || !isfinite(horizon))
                return 0;
        n = m->r + x;
        /* posterior of p given alive: BG flips a coin after each of the x
         * repeats, MBG also after the first purchase */
        beta = m->b + x + (m->variant == LOY_VARIANT_MBGNBD ? 1 : 0);
        s = horizon / (m->alpha + T);
        z = horizon / (m->alpha + T + horizon);
        if (!(z > 0))
                return 0;
        if (z >= 1 || (n * s + 40) / (1 - z) > SERIES_MAX_TERMS)
                e = alive_quad(n, m->a, beta, s);
        else
                e = alive_series(n, m->a, beta, z);
        return isfinite(e) && e > 0 ? e : 0;
}

double loy_model_expected_purchases(const loy_model_t *m,
                                    const loy_model_input_t *in,
                                    double horizon) {
        double x, tx, T, e;

        if (!(horizon > 0) || !isfinite(horizon))
                return 0;
        sanitize(in, &x, &tx, &T);
        e = alive_expected(m, x, T, horizon) * loy_model_p_alive(m, in);
        return isfinite(e) && e > 0 ? e : 0;
}

#define DAYS_PER_MONTH (365.25 / 12)

#define DISC_MONTHS_FAST 120

/*
 * Discounted expected purchases given alive, in one pass over the
 * purchase count j. With E_k = E(t_k) at the month ends and f = 1/(1+d),
 *
 *   sum_k f^k (E_k - E_{k-1}) = sum_k w_k E_k,
 *   w_k = f^k - f^(k+1) (k < K), w_K = f^K     (summation by parts),
 *
 * and E_k = sum_{j>=1} P_k(N = j) C_j (see alive_series), so
 *
 *   = sum_{j>=1} C_j sum_k w_k P_k(N = j):
 *
 * every weight positive (no differences of nearly equal E_k), and the K
 * negative-binomial pmfs share the ratio (n+j-1)/j, so a month costs two
 * multiplications a term instead of a whole series. Returns -1 when the
 * pmfs would underflow at j = 0 or need too many terms: the caller then
 * sums month by month.
 */
static double disc_series(double n, double a, double beta, const double *z,
                          const double *w, int K, double *plain) {
        double pmf[DISC_MONTHS_FAST], c = 1, C = 0;
        double zK = z[K - 1];
        struct ksum sum = {0, 0}, last = {0, 0};

        for (int k = 0; k < K; k++) {
                double l0 = n * log1p(-z[k]);
                if (l0 < -650)
                        return -1;
                pmf[k] = exp(l0);
        }
        for (double j = 1; j < 200000; j++) {
                double ratio = (n + j - 1) / j, S = 0, rho, tail;
                C += c;
                c *= (beta + j - 1) / (a + beta + j - 1);
                for (int k = 0; k < K; k++) {
                        pmf[k] *= ratio * z[k];
                        S += w[k] * pmf[k];
                }
                ksum_add(&sum, S * C);
                /* the whole horizon's pmf: the undiscounted E for free */
                ksum_add(&last, pmf[K - 1] * C);
                rho = n > 1 ? (n + j) / (j + 1) * zK : zK;
                if (rho >= 1 || S == 0)
                        continue;
                tail = (S + pmf[K - 1]) * rho / (1 - rho) *
                       (C + c + 1 / (1 - rho));
                if (tail <= 1e-17 * (sum.s + sum.c)) {
                        *plain = last.s + last.c;
                        return sum.s + sum.c;
                }
        }
        return -1;
}

/* Discounted expected purchases given alive over h units: month k's
 * purchases E(t_k) - E(t_{k-1}) weigh (1 + d)^-k. E is monotone in t
 * (see alive_series), so no month contributes a negative amount. */
static double alive_discounted(const loy_model_t *m, double x, double T,
                               double h, double *plain) {
        double d = m->discount_monthly, month = DAYS_PER_MONTH / m->unit_days;
        double prev = 0, sum = 0, f = 1, k_max, pl = 0;

        if (!(d > 0))
                return alive_expected(m, x, T, h);
        if (!(h > 0) || !isfinite(h))
                return 0;
        /* a 100-year horizon is 1,200 months: beyond that the weight
         * (1 + d)^-k is negligible for any useful d and time is bounded */
        k_max = fmin(ceil(h / month), 1200);
        if (k_max <= DISC_MONTHS_FAST) {
                double z[DISC_MONTHS_FAST], w[DISC_MONTHS_FAST], fk = 1;
                double n = m->r + x,
                       beta = m->b + x + (m->variant == LOY_VARIANT_MBGNBD);
                int K = (int)k_max;
                for (int k = 0; k < K; k++) {
                        double t = k == K - 1 ? h : (k + 1) * month;
                        z[k] = t / (m->alpha + T + t);
                        fk /= 1 + d;
                        w[k] = k == K - 1 ? fk : fk - fk / (1 + d);
                }
                if (z[K - 1] < 1 && z[0] > 0) {
                        double e = disc_series(n, m->a, beta, z, w, K, &pl);
                        /* for a <= 1 alive_series is this very sum; for
                         * a > 1 it may need its deficit form */
                        if (e >= 0) {
                                if (plain && m->a <= 1)
                                        *plain = pl;
                                return e;
                        }
                }
        }
        for (double k = 1; k <= k_max; k++) {
                double t = k == k_max ? fmin(h, k * month) : k * month;
                double e = alive_expected(m, x, T, t);
                f /= 1 + d;
                if (e > prev) {
                        sum += (e - prev) * f;
                        prev = e;
                }
        }
        return sum;
}

double loy_model_discounted_purchases(const loy_model_t *m,
                                      const loy_model_input_t *in,
                                      double horizon_days) {
        double x, tx, T, e;

        if (!(horizon_days > 0) || !isfinite(horizon_days))
                return 0;
        sanitize(in, &x, &tx, &T);
        e = alive_discounted(m, x, T, horizon_days / m->unit_days, NULL) *
            loy_model_p_alive(m, in);
        return isfinite(e) && e > 0 ? e : 0;
}

double loy_model_net_mean_value(double gross_value, double first_day_value,
                                double return_value, double x) {
        double rep, keep;

        if (!(x > 0) || !(gross_value > 0) || !isfinite(gross_value))
                return 0;
        rep = gross_value - (isfinite(first_day_value) ? first_day_value : 0);
        if (!(rep > 0))
                return 0;
        keep = isfinite(return_value) && return_value > 0
                   ? 1 - return_value / gross_value
                   : 1;
        if (!(keep > 0))
                return 0;
        return rep * keep / x;
}

static double expected_value(const loy_model_t *m,
                             const loy_model_input_t *in) {
        double x = isfinite(in->x) && in->x > 0 ? in->x : 0;
        double mv = isfinite(in->mean_value) ? in->mean_value : 0;
        double aov = isfinite(in->aov) && in->aov > 0 ? in->aov : 0;

        if (m->has_gg) {
                /* Fader & Hardie (2013): a credibility-weighted mix of the
                 * population mean and the customer's own mean */
                double pop = m->gg_gamma * m->gg_p / (m->gg_q - 1);
                double den;
                if (x <= 0 || mv <= 0)
                        return pop;
                den = m->gg_p * x + m->gg_q - 1;
                return (m->gg_q - 1) / den * pop + m->gg_p * x / den * mv;
        }
        return mv > 0 ? mv : aov;
}

void loy_model_score(const loy_model_t *m, const loy_model_input_t *in,
                     double horizon_days, double margin,
                     loy_model_scores_t *out) {
        double h = horizon_days / m->unit_days;
        double x, tx, T, pa, e, disc;

        sanitize(in, &x, &tx, &T);
        pa = loy_model_p_alive(m, in);
        if (m->discount_monthly > 0) {
                double plain = -1;
                disc = alive_discounted(m, x, T, h, &plain) * pa;
                disc = isfinite(disc) && disc > 0 ? disc : 0;
                e = plain >= 0 ? plain : alive_expected(m, x, T, h);
                e *= pa;
        } else {
                e = alive_expected(m, x, T, h) * pa;
                disc = -1;
        }
        out->p_alive = pa;
        out->churn_prob = 1 - pa;
        out->exp_purchases = isfinite(e) && e > 0 ? e : 0;
        out->exp_value = expected_value(m, in);
        if (disc < 0)
                disc = out->exp_purchases;
        out->clv = disc * out->exp_value * margin;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

int loy_model_write(const loy_model_t *m, const char *info, const char *path,
                    char *errstr, size_t errstr_size) {
        char *tmp = NULL, why[256];
        loy_model_t back;
        size_t len = strlen(path);
        FILE *f = NULL;
        int fd = -1;

        if (loy_model_validate(m, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "%s: not written: %s", path, why);
                return -1;
        }
        if (strchr(m->version, '#') || strchr(m->version, '\n') ||
            !m->version[0]) {
                snprintf(errstr, errstr_size,
                         "%s: not written: version must be a non-empty "
                         "word without '#'",
                         path);
                return -1;
        }
        tmp = malloc(len + 16);
        if (!tmp) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        /* same directory, so rename(2) is atomic */
        snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
        fd = mkstemp(tmp);
        if (fd < 0 || !(f = fdopen(fd, "w"))) {
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                goto fail;
        }
        fd = -1;
        fprintf(
            f,
            "# loyaltyd customer-value model (models/loy_model.h)\n"
            "version = %s\nvariant = %s\ntime_unit = %s\n"
            "r = %.17g\nalpha = %.17g\na = %.17g\nb = %.17g\n",
            m->version, m->variant == LOY_VARIANT_MBGNBD ? "mbgnbd" : "bgnbd",
            m->unit_days == 7 ? "weeks" : "days", m->r, m->alpha, m->a, m->b);
        if (m->has_gg)
                fprintf(f, "gg_p = %.17g\ngg_q = %.17g\ngg_gamma = %.17g\n",
                        m->gg_p, m->gg_q, m->gg_gamma);
        if (m->discount_monthly > 0)
                fprintf(f, "discount_monthly = %.17g\n", m->discount_monthly);
        if (m->rfm.set) {
                const double *d[3] = {m->rfm.recency_days, m->rfm.frequency,
                                      m->rfm.monetary};
                static const char *const names[3] = {
                    "rfm_recency_days", "rfm_frequency", "rfm_monetary"};
                for (int i = 0; i < 3; i++)
                        fprintf(f, "%s = %.17g %.17g %.17g %.17g\n", names[i],
                                d[i][0], d[i][1], d[i][2], d[i][3]);
        }
        if (info && *info) {
                fputs(info, f);
                if (info[strlen(info) - 1] != '\n')
                        fputc('\n', f);
        }
        if (fflush(f) || fsync(fileno(f))) {
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                goto fail;
        }
        if (fclose(f)) {
                f = NULL;
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                goto fail;
        }
        f = NULL;
        /* what loyaltyd will read must load: check before it is visible */
        if (loy_model_load(&back, tmp, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "not written: %s", why);
                goto fail;
        }
        if (rename(tmp, path)) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                goto fail;
        }
        free(tmp);
        return 0;
fail:
        if (f)
                fclose(f);
        if (fd >= 0)
                close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
}
