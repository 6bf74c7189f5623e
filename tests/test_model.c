/*
 * loy_model: model file parsing and validation, P(alive) and expected
 * purchases against independent high-precision values, extreme inputs,
 * Gamma-Gamma spend and the combined scores.
 *
 * Reference values were computed with mpmath at 40 digits from the
 * published closed forms (FHL 2005 eq. (10) with mpmath's hyp2f1,
 * Batislam et al. 2007), cross-checked against a direct series of the
 * expectation; none of them comes from the code under test.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loy_model.h"
#include "tu.h"

#define ASSERT_REL(v, ref, tol) CU_ASSERT(fabs((v) - (ref)) <= (tol)*fabs(ref))

/* Writes text to a fresh temp file; path must hold 64 bytes. */
static void write_tmp(char *path, const char *text) {
        int fd;
        FILE *f;
        strcpy(path, "/tmp/test_model_XXXXXX");
        fd = mkstemp(path);
        CU_ASSERT_FATAL(fd >= 0);
        f = fdopen(fd, "w");
        CU_ASSERT_FATAL(f != NULL);
        fputs(text, f);
        fclose(f);
}

/* Loads text as a model file; returns the rc and leaves the message with
 * the temp path replaced by "F" in msg. */
static int load_text(loy_model_t *m, const char *text, char *msg, size_t size) {
        char path[64], err[512];
        int rc;
        size_t plen;

        write_tmp(path, text);
        err[0] = '\0';
        rc = loy_model_load(m, path, err, sizeof(err));
        unlink(path);
        plen = strlen(path);
        if (!strncmp(err, path, plen))
                snprintf(msg, size, "F%s", err + plen);
        else
                snprintf(msg, size, "%s", err);
        return rc;
}

static const char *good = "# comment\n"
                          "\n"
                          "version = v7\n"
                          "variant = bgnbd   # trailing comment\n"
                          "time_unit = weeks\n"
                          "  r = 0.243\n"
                          "alpha=4.414\n"
                          "a = 0.793\n"
                          "b = 2.426\n"
                          "log_likelihood = -9582.4\n"
                          "fitted_at = 2024-01-01T00:00:00Z\n"
                          "customers = 2357\n"
                          "calibration_end = 1997-09-30\n"
                          "note = FHL 2005 CDNOW\n";

static void test_load_ok(void) {
        loy_model_t m;
        char msg[512];

        memset(&m, 0, sizeof(m));
        CU_ASSERT_EQUAL(load_text(&m, good, msg, sizeof(msg)), 0);
        CU_ASSERT_STRING_EQUAL(m.version, "v7");
        CU_ASSERT_EQUAL(m.variant, LOY_VARIANT_BGNBD);
        CU_ASSERT_EQUAL(m.unit_days, 7);
        CU_ASSERT_EQUAL(m.r, 0.243);
        CU_ASSERT_EQUAL(m.alpha, 4.414);
        CU_ASSERT_EQUAL(m.a, 0.793);
        CU_ASSERT_EQUAL(m.b, 2.426);
        CU_ASSERT_EQUAL(m.has_gg, 0);
}

static void test_load_default(void) {
        loy_model_t m;
        char err[512] = "";
        int rc = loy_model_load(&m, tu_src_path("config/model.default"), err,
                                sizeof(err));
        CU_ASSERT_EQUAL(rc, 0);
        if (rc)
                fprintf(stderr, "%s\n", err);
        CU_ASSERT_STRING_EQUAL(m.version, "default-1");
        CU_ASSERT_EQUAL(m.variant, LOY_VARIANT_MBGNBD);
        CU_ASSERT_EQUAL(m.unit_days, 1);
        CU_ASSERT_EQUAL(m.has_gg, 1);
        CU_ASSERT(m.gg_q > 1);
}

/* loy_model_load_buffer (for fuzz_model): the same model as the file;
 * errors name the buffer and carry the line. */
static void test_load_buffer(void) {
        static const char text[] =
            "version = mem-1\nvariant = bgnbd\ntime_unit = weeks\n"
            "r = 0.243\nalpha = 4.414\na = 0.793\nb = 2.426";
        loy_model_t m;
        char err[512] = "";

        memset(&m, 0, sizeof(m));
        /* no newline at the end, no NUL: only the given bytes count */
        CU_ASSERT_EQUAL_FATAL(loy_model_load_buffer(&m, "mem.model", text,
                                                    sizeof(text) - 1, err,
                                                    sizeof(err)),
                              0);
        CU_ASSERT_STRING_EQUAL(m.version, "mem-1");
        CU_ASSERT_EQUAL(m.variant, LOY_VARIANT_BGNBD);
        CU_ASSERT_EQUAL(m.unit_days, 7);
        CU_ASSERT_EQUAL(m.b, 2.426);
        CU_ASSERT_EQUAL(loy_model_load_buffer(&m, "mem.model", text,
                                              sizeof(text) - 3, err,
                                              sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(m.b, 2.4);
        /* cut inside "weeks" */
        CU_ASSERT_EQUAL(
            loy_model_load_buffer(&m, "mem.model", text, 47, err, sizeof(err)),
            -1);
        CU_ASSERT_STRING_EQUAL(err, "mem.model:3: time_unit: must be days or "
                                    "weeks");
        CU_ASSERT_EQUAL(
            loy_model_load_buffer(&m, "mem.model", NULL, 0, err, sizeof(err)),
            -1);
        CU_ASSERT_STRING_EQUAL(err, "mem.model: version: missing");
}

static void expect_error(const char *text, const char *want) {
        loy_model_t m;
        char msg[512];
        memset(&m, 0x5a, sizeof(m));
        CU_ASSERT_EQUAL(load_text(&m, text, msg, sizeof(msg)), -1);
        CU_ASSERT_STRING_EQUAL(msg, want);
        if (strcmp(msg, want))
                fprintf(stderr, "\n got '%s'\nwant '%s'\n", msg, want);
        /* untouched on failure */
        CU_ASSERT_EQUAL(((unsigned char *)&m)[0], 0x5a);
}

static void test_load_errors(void) {
        const char *base = "version = x\nvariant = mbgnbd\ntime_unit = days\n"
                           "r = 1\nalpha = 2\na = 3\nb = 4\n";
        char text[1024];

        snprintf(text, sizeof(text), "%sfoo = 1\n", base);
        expect_error(text, "F:8: foo: unknown key");
        expect_error("version = x\n\n# c\nr = 1.5x\n", "F:4: r: not a number");
        expect_error("alpha = \n", "F:1: alpha: not a number");
        expect_error("b = nan\n", "F:1: b: not a number");
        expect_error("version = x\nvariant = mbgnbd\ntime_unit = days\n"
                     "r = 1\nalpha = 2\na = 3\n",
                     "F: b: missing");
        expect_error("version = x\nvariant = mbgnbd\ntime_unit = days\n"
                     "alpha = 2\na = 3\nb = 4\n",
                     "F: r: missing");
        expect_error("variant = pareto\n",
                     "F:1: variant: must be bgnbd or mbgnbd");
        expect_error("time_unit = months\n",
                     "F:1: time_unit: must be days or weeks");
        expect_error("r = 1\nr = 2\n", "F:2: r: duplicate key");
        expect_error("just words\n", "F:1: just words: expected key = value");
        snprintf(text, sizeof(text), "%sgg_p = 1\ngg_gamma = 2\n", base);
        expect_error(text, "F: gg_q: missing");
        /* R/F/M cut points: four numbers each, all three keys, ordered */
        snprintf(text, sizeof(text), "%srfm_frequency = 2 3 4\n", base);
        expect_error(text, "F:8: rfm_frequency: want four numbers");
        snprintf(text, sizeof(text), "%srfm_frequency = 2 3 4 5 6\n", base);
        expect_error(text, "F:8: rfm_frequency: want four numbers");
        snprintf(text, sizeof(text), "%srfm_frequency = 2 3 4 x\n", base);
        expect_error(text, "F:8: rfm_frequency: want four numbers");
        snprintf(text, sizeof(text),
                 "%srfm_frequency = 2 3 4 5\n"
                 "rfm_monetary = 1 2 3 4\n",
                 base);
        expect_error(text, "F: rfm_recency_days: missing");
        snprintf(text, sizeof(text),
                 "%srfm_recency_days = 90 180 30 7\n"
                 "rfm_frequency = 2 3 4 5\nrfm_monetary = 1 2 3 4\n",
                 base);
        expect_error(text, "F: rfm_recency_days: cut points must be finite, "
                           "recency ones not increasing, the others not "
                           "decreasing");
        snprintf(text, sizeof(text),
                 "%srfm_recency_days = 180 90 30 7\n"
                 "rfm_frequency = 2 3 4 5\nrfm_monetary = 1 2 9 4\n",
                 base);
        expect_error(text, "F: rfm_monetary: cut points must be finite, "
                           "recency ones not increasing, the others not "
                           "decreasing");
        {
                loy_model_t m;
                char msg[512];
                snprintf(text, sizeof(text),
                         "%srfm_recency_days = 180 90 30 "
                         "7.5\nrfm_frequency = 2 2 3 1e15\n"
                         "rfm_monetary = 10 100 1000 10000\n",
                         base);
                CU_ASSERT_EQUAL_FATAL(load_text(&m, text, msg, sizeof(msg)), 0);
                CU_ASSERT_TRUE(m.rfm.set);
                CU_ASSERT_EQUAL(m.rfm.recency_days[3], 7.5);
                CU_ASSERT_EQUAL(m.rfm.frequency[3], 1e15);
                CU_ASSERT_EQUAL(m.rfm.monetary[0], 10);
                CU_ASSERT_EQUAL(load_text(&m, base, msg, sizeof(msg)), 0);
                CU_ASSERT_FALSE(m.rfm.set);
        }
        snprintf(text, sizeof(text), "%sgg_p = 1\ngg_q = 0.5\ngg_gamma = 2\n",
                 base);
        expect_error(text, "F: gg_q: must be > 1 (mean spend is infinite)");
        expect_error("version = x\nvariant = mbgnbd\ntime_unit = days\n"
                     "r = 1\nalpha = -2\na = 3\nb = 4\n",
                     "F: alpha: must be finite and > 0");
        expect_error("version = x\nvariant = mbgnbd\ntime_unit = days\n"
                     "r = 1\nalpha = 2\na = 0\nb = 4\n",
                     "F: a: must be finite and > 0");
        {
                loy_model_t m;
                char err[256];
                CU_ASSERT_EQUAL(
                    loy_model_load(&m, "/nonexistent/model", err, sizeof(err)),
                    -1);
                CU_ASSERT_STRING_EQUAL(err, "/nonexistent/model: "
                                            "No such file or directory");
        }
}

static void test_validate(void) {
        loy_model_t m;
        char err[256];
        memset(&m, 0, sizeof(m));
        strcpy(m.version, "v");
        m.variant = LOY_VARIANT_MBGNBD;
        m.unit_days = 1;
        m.r = 1;
        m.alpha = 2;
        m.a = 3;
        m.b = 4;
        CU_ASSERT_EQUAL(loy_model_validate(&m, err, sizeof(err)), 0);
        m.b = INFINITY;
        CU_ASSERT_EQUAL(loy_model_validate(&m, err, sizeof(err)), -1);
        CU_ASSERT_STRING_EQUAL(err, "b: must be finite and > 0");
        m.b = 4;
        m.unit_days = 30;
        CU_ASSERT_EQUAL(loy_model_validate(&m, err, sizeof(err)), -1);
        m.unit_days = 7;
        m.has_gg = 1; /* gg parameters still 0 */
        CU_ASSERT_EQUAL(loy_model_validate(&m, err, sizeof(err)), -1);
        CU_ASSERT_STRING_EQUAL(err, "gg_p: must be finite and > 0");
}

static loy_model_t model(loy_variant_t v, double r, double alpha, double a,
                         double b) {
        loy_model_t m;
        memset(&m, 0, sizeof(m));
        strcpy(m.version, "t");
        m.variant = v;
        m.unit_days = 1;
        m.r = r;
        m.alpha = alpha;
        m.a = a;
        m.b = b;
        return m;
}

static loy_model_input_t input(double x, double tx, double T) {
        loy_model_input_t in = {x, tx, T, 0, 0};
        return in;
}

/* FHL (2005) CDNOW parameters, weeks: the customer with x = 2,
 * t_x = 30.43, T = 38.86 has E[X(39)] = 1.226 in the paper's note. */
static void test_cdnow_bgnbd(void) {
        loy_model_t m = model(LOY_VARIANT_BGNBD, 0.243, 4.414, 0.793, 2.426);
        loy_model_input_t in = input(2, 30.43, 38.86);
        double e = loy_model_expected_purchases(&m, &in, 39);

        CU_ASSERT_DOUBLE_EQUAL(e, 1.226, 0.0005);
        ASSERT_REL(e, 1.2260281747671444631, 1e-12);
        ASSERT_REL(loy_model_p_alive(&m, &in), 0.72657857008067291192, 1e-13);
        in = input(0, 0, 38.86);
        CU_ASSERT_EQUAL(loy_model_p_alive(&m, &in), 1);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 39),
                   0.19509805201126263750, 1e-12);
}

static void test_cdnow_mbgnbd(void) {
        loy_model_t m = model(LOY_VARIANT_MBGNBD, 0.243, 4.414, 0.793, 2.426);
        loy_model_input_t in = input(2, 30.43, 38.86);

        ASSERT_REL(loy_model_p_alive(&m, &in), 0.77441924262364616627, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 39),
                   1.3404974284912132345, 1e-12);
        /* one-time buyer: BG/NBD says alive for sure, MBG/NBD does not */
        in = input(0, 0, 38.86);
        ASSERT_REL(loy_model_p_alive(&m, &in), 0.63725333796489528171, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 39),
                   0.12746138254566130159, 1e-12);
}

/* a < 1, a = 1 (where the closed form's 1/(a-1) is 0/0) and a large x. */
static void test_small_a(void) {
        loy_model_t mb = model(LOY_VARIANT_MBGNBD, 0.8, 60, 0.1, 1.5);
        loy_model_t bg = model(LOY_VARIANT_BGNBD, 0.8, 60, 0.1, 1.5);
        loy_model_input_t in = input(3, 100, 300);

        ASSERT_REL(loy_model_p_alive(&mb, &in), 0.67373516359050303653, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&mb, &in, 365),
                   2.5084532606787781280, 1e-12);
        in = input(0, 0, 300);
        ASSERT_REL(loy_model_expected_purchases(&bg, &in, 365),
                   0.77698688588672816925, 1e-12);
        in = input(3000, 1990, 2000);
        ASSERT_REL(loy_model_p_alive(&bg, &in), 0.013475132385189764016, 1e-12);
        ASSERT_REL(loy_model_expected_purchases(&bg, &in, 52),
                   1.0194424355753854422, 1e-12);

        bg.a = 1;
        mb.a = 1;
        in = input(3, 100, 300);
        ASSERT_REL(loy_model_p_alive(&bg, &in), 0.13838464542385828833, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&bg, &in, 365),
                   0.38273340644589062361, 1e-12);
        in = input(0, 0, 300);
        ASSERT_REL(loy_model_p_alive(&mb, &in), 0.26348319420261534013, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&mb, &in, 365),
                   0.17362570323527252102, 1e-12);
}

/* Inputs where the literal formula overflows or cancels: huge b, tiny or
 * huge alpha, thousands of repeats, decades of history. */
static void test_extreme_values(void) {
        loy_model_t m = model(LOY_VARIANT_MBGNBD, 2, 1e6, 3, 1e4);
        loy_model_input_t in = input(5000, 14000, 14600);

        ASSERT_REL(loy_model_p_alive(&m, &in), 0.99615950146632760943, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 365),
                   1.7922246107714294361, 1e-12);
        /* prior rate r/alpha = 800 a day: needs the integral route */
        m = model(LOY_VARIANT_MBGNBD, 0.8, 1e-3, 0.5, 1e4);
        in = input(0, 0, 0);
        ASSERT_REL(loy_model_p_alive(&m, &in), 0.99995000249987500625, 1e-13);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 365),
                   76372.101672937420, 1e-9);
        m = model(LOY_VARIANT_BGNBD, 0.5, 1e-3, 1.7, 0.3);
        ASSERT_REL(loy_model_expected_purchases(&m, &in, 52),
                   1.4168549286144831, 1e-9);
}

static void test_extreme_matrix(void) {
        const double rs[] = {0.05, 0.8, 20};
        const double alphas[] = {1e-3, 1, 60, 1e6};
        const double as[] = {0.01, 0.5, 1, 3, 200};
        const double bs[] = {0.05, 1.5, 1e4};
        const double xs[][3] = {
            {0, 0, 0},         {0, 0, 14000},        {1, 0.5, 1},
            {5, 20, 400},      {3000, 13990, 14000}, {9000, 2000, 2000},
            {5000, 10, 14000},
        };
        const double hs[] = {0, 1e-6, 1, 7, 30, 90, 365, 730, 3650};
        int bad = 0;

        for (int v = 0; v < 2; v++)
                for (size_t i = 0; i < 3; i++)
                        for (size_t j = 0; j < 4; j++)
                                for (size_t k = 0; k < 5; k++)
                                        for (size_t l = 0; l < 3; l++)
                                                for (size_t c = 0;
                                                     c <
                                                     sizeof(xs) / sizeof(xs[0]);
                                                     c++) {
                                                        loy_model_t m = model(
                                                            v, rs[i], alphas[j],
                                                            as[k], bs[l]);
                                                        loy_model_input_t in =
                                                            input(xs[c][0],
                                                                  xs[c][1],
                                                                  xs[c][2]);
                                                        double
                                                            pa =
                                                                loy_model_p_alive(
                                                                    &m, &in),
                                                            prev = 0;

                                                        if (!(pa >= 0 &&
                                                              pa <= 1))
                                                                bad++;
                                                        for (size_t h = 0;
                                                             h <
                                                             sizeof(hs) /
                                                                 sizeof(hs[0]);
                                                             h++) {
                                                                double e =
                                                                    loy_model_expected_purchases(
                                                                        &m, &in,
                                                                        hs[h]);
                                                                if (!isfinite(
                                                                        e) ||
                                                                    e < 0 ||
                                                                    e < prev) {
                                                                        if (bad++ <
                                                                            5)
                                                                                fprintf(
                                                                                    stderr,
                                                                                    "\nv%d r=%g al=%g "
                                                                                    "a=%g b=%g x=%g h=%g: %g "
                                                                                    "(prev %g)\n",
                                                                                    v,
                                                                                    rs[i],
                                                                                    alphas
                                                                                        [j],
                                                                                    as[k],
                                                                                    bs[l],
                                                                                    xs[c]
                                                                                      [0],
                                                                                    hs[h],
                                                                                    e,
                                                                                    prev);
                                                                }
                                                                prev = e;
                                                        }
                                                }
        CU_ASSERT_EQUAL(bad, 0);
}

static void test_bad_inputs(void) {
        loy_model_t m = model(LOY_VARIANT_BGNBD, 0.243, 4.414, 0.793, 2.426);
        loy_model_input_t in = input(2, 30.43, 38.86);
        loy_model_input_t nanin = input(NAN, NAN, NAN);

        CU_ASSERT_EQUAL(loy_model_expected_purchases(&m, &in, 0), 0);
        CU_ASSERT_EQUAL(loy_model_expected_purchases(&m, &in, -5), 0);
        CU_ASSERT_EQUAL(loy_model_expected_purchases(&m, &in, NAN), 0);
        /* garbage summary is read as a brand-new customer */
        CU_ASSERT_EQUAL(loy_model_p_alive(&m, &nanin), 1);
        CU_ASSERT(isfinite(loy_model_expected_purchases(&m, &nanin, 39)));
        /* t_x beyond T is clamped to T: last purchase just now */
        in = input(2, 50, 38.86);
        ASSERT_REL(loy_model_p_alive(&m, &in), 1 / (1 + 0.793 / 3.426), 1e-14);
}

static void test_gamma_gamma(void) {
        loy_model_t m = model(LOY_VARIANT_BGNBD, 0.243, 4.414, 0.793, 2.426);
        loy_model_input_t in = input(3, 20, 30);
        loy_model_scores_t s;

        m.unit_days = 7;
        m.has_gg = 1;
        m.gg_p = 6.25;
        m.gg_q = 3.74;
        m.gg_gamma = 15.44;
        in.mean_value = 40;
        in.aov = 99;
        /* (gamma + m x) p / (p x + q - 1) = 135.44 * 6.25 / 21.49 */
        loy_model_score(&m, &in, 7 * 39, 0.25, &s);
        ASSERT_REL(s.exp_value, 846.5 / 21.49, 1e-14);
        ASSERT_REL(s.p_alive, loy_model_p_alive(&m, &in), 1e-15);
        ASSERT_REL(s.churn_prob, 1 - s.p_alive, 1e-15);
        ASSERT_REL(s.exp_purchases, loy_model_expected_purchases(&m, &in, 39),
                   1e-15);
        ASSERT_REL(s.clv, s.exp_purchases * 846.5 / 21.49 * 0.25, 1e-14);

        /* no repeat yet: population mean gamma p / (q - 1) */
        in.x = 0;
        loy_model_score(&m, &in, 7, 1, &s);
        ASSERT_REL(s.exp_value, 96.5 / 2.74, 1e-14);
        in.x = 3;
        in.mean_value = 0;
        loy_model_score(&m, &in, 7, 1, &s);
        ASSERT_REL(s.exp_value, 96.5 / 2.74, 1e-14);

        /* no spend model: the customer's own mean, else the AOV */
        m.has_gg = 0;
        loy_model_score(&m, &in, 7, 1, &s);
        CU_ASSERT_EQUAL(s.exp_value, 99);
        in.mean_value = 40;
        loy_model_score(&m, &in, 7, 1, &s);
        CU_ASSERT_EQUAL(s.exp_value, 40);
}

/* The CDNOW customer through loy_model_score: 39 weeks = 273 days. */
static void test_score_units(void) {
        loy_model_t m = model(LOY_VARIANT_BGNBD, 0.243, 4.414, 0.793, 2.426);
        loy_model_input_t in = input(2, 30.43, 38.86);
        loy_model_scores_t s;

        m.unit_days = 7;
        in.aov = 20;
        loy_model_score(&m, &in, 273, 0.5, &s);
        ASSERT_REL(s.exp_purchases, 1.2260281747671444631, 1e-12);
        ASSERT_REL(s.churn_prob, 1 - 0.72657857008067291192, 1e-12);
        ASSERT_REL(s.clv, 1.2260281747671444631 * 20 * 0.5, 1e-12);
}

/* Month by month through the public undiscounted expectation: an
 * independent route to the one-pass discounted sum. */
static double disc_by_months(const loy_model_t *m, const loy_model_input_t *in,
                             double hdays) {
        double month = 365.25 / 12, prev = 0, sum = 0;
        int k_max = (int)ceil(hdays / month);
        for (int k = 1; k <= k_max; k++) {
                double t = fmin(k * month, hdays) / m->unit_days;
                double e = loy_model_expected_purchases(m, in, t);
                sum += (e - prev) * pow(1 + m->discount_monthly, -k);
                prev = e;
        }
        return sum;
}

static void test_discount(void) {
        loy_model_t m = model(LOY_VARIANT_MBGNBD, 0.83, 69, 0.05, 1.5);
        loy_model_input_t in = input(4, 200, 300);
        loy_model_scores_t s, s0;
        const double xs[][3] = {
            {0, 0, 10}, {4, 200, 300}, {60, 360, 365}, {3000, 13990, 14000}};

        /* no discount: the plain expectation */
        CU_ASSERT_EQUAL(loy_model_discounted_purchases(&m, &in, 365),
                        loy_model_expected_purchases(&m, &in, 365));
        m.discount_monthly = 0.01;
        for (int v = 0; v < 2; v++)
                for (size_t c = 0; c < 4; c++) {
                        loy_model_input_t i2 =
                            input(xs[c][0], xs[c][1], xs[c][2]);
                        double hs[] = {10, 365, 730, 3653 * 2 /* fallback */};
                        m.variant = v;
                        for (int h = 0; h < 4; h++) {
                                double d = loy_model_discounted_purchases(
                                    &m, &i2, hs[h]);
                                ASSERT_REL(d, disc_by_months(&m, &i2, hs[h]),
                                           1e-10);
                                CU_ASSERT(d <= loy_model_expected_purchases(
                                                   &m, &i2, hs[h]));
                        }
                }
        /* one month: a single weight 1/1.01 */
        m.variant = LOY_VARIANT_MBGNBD;
        ASSERT_REL(loy_model_discounted_purchases(&m, &in, 30),
                   loy_model_expected_purchases(&m, &in, 30) / 1.01, 1e-13);
        /* score: CLV discounted, exp_purchases not */
        m.has_gg = 1;
        m.gg_p = 6.25;
        m.gg_q = 3.74;
        m.gg_gamma = 15.44;
        in.mean_value = 40;
        loy_model_score(&m, &in, 365, 0.3, &s);
        ASSERT_REL(s.exp_purchases, loy_model_expected_purchases(&m, &in, 365),
                   1e-13);
        ASSERT_REL(s.clv, disc_by_months(&m, &in, 365) * s.exp_value * 0.3,
                   1e-10);
        m.discount_monthly = 0;
        loy_model_score(&m, &in, 365, 0.3, &s0);
        CU_ASSERT(s.clv < s0.clv);
        /* the one-pass sum shares the series: equal to rounding */
        ASSERT_REL(s.exp_purchases, s0.exp_purchases, 1e-13);
        /* weeks: the horizon is still in days */
        m.unit_days = 7;
        m.discount_monthly = 0.02;
        in = input(2, 30.43, 38.86);
        ASSERT_REL(loy_model_discounted_purchases(&m, &in, 273),
                   disc_by_months(&m, &in, 273), 1e-10);
}

static void test_discount_extreme(void) {
        const double as[] = {0.01, 0.5, 3, 200};
        const double alphas[] = {1e-3, 60, 1e6};
        const double xs[][3] = {{0, 0, 0},
                                {9000, 2000, 2000},
                                {5000, 10, 14000},
                                {3000, 13990, 14000}};
        int bad = 0;
        for (size_t i = 0; i < 4; i++)
                for (size_t j = 0; j < 3; j++)
                        for (size_t c = 0; c < 4; c++) {
                                loy_model_t m = model(LOY_VARIANT_MBGNBD, 0.8,
                                                      alphas[j], as[i], 1.5);
                                loy_model_input_t in =
                                    input(xs[c][0], xs[c][1], xs[c][2]);
                                loy_model_scores_t s;
                                m.discount_monthly = 0.05;
                                loy_model_score(&m, &in, 3650, 1, &s);
                                if (!isfinite(s.clv) || s.clv < 0 ||
                                    s.clv > s.exp_purchases * s.exp_value *
                                                (1 + 1e-12))
                                        bad++;
                        }
        CU_ASSERT_EQUAL(bad, 0);
}

static void test_net_mean(void) {
        /* repeat value 300 - 100 = 200 over 2 repeats, 60 of 300 returned:
         * 200 * 0.8 / 2 */
        CU_ASSERT_DOUBLE_EQUAL(loy_model_net_mean_value(300, 100, 60, 2), 80,
                               1e-12);
        CU_ASSERT_DOUBLE_EQUAL(loy_model_net_mean_value(300, 100, 0, 2), 100,
                               1e-12);
        CU_ASSERT_EQUAL(loy_model_net_mean_value(300, 100, 300, 2), 0);
        CU_ASSERT_EQUAL(loy_model_net_mean_value(300, 100, 999, 2), 0);
        CU_ASSERT_EQUAL(loy_model_net_mean_value(300, 100, 60, 0), 0);
        CU_ASSERT_EQUAL(loy_model_net_mean_value(100, 100, 0, 1), 0);
        CU_ASSERT_EQUAL(loy_model_net_mean_value(NAN, 100, 0, 1), 0);
}

static void test_load_discount(void) {
        const char *base = "version = x\nvariant = mbgnbd\ntime_unit = days\n"
                           "r = 1\nalpha = 2\na = 3\nb = 4\n";
        char text[1024], msg[512];
        loy_model_t m;

        CU_ASSERT_EQUAL(load_text(&m, base, msg, sizeof(msg)), 0);
        CU_ASSERT_EQUAL(m.discount_monthly, 0);
        snprintf(text, sizeof(text),
                 "%sdiscount_monthly = 0.015\n"
                 "format = 1\nsource = x.csv\nridge = no\n"
                 "ml_stopped_at = r 1 alpha 2 a 3 b 4\n",
                 base);
        CU_ASSERT_EQUAL(load_text(&m, text, msg, sizeof(msg)), 0);
        CU_ASSERT_EQUAL(m.discount_monthly, 0.015);
        snprintf(text, sizeof(text), "%sdiscount_monthly = -0.1\n", base);
        expect_error(text, "F: discount_monthly: must be in [0, 1]");
}

/* Files in dir whose name contains ".tmp.": leftovers of a write. */
static int tmp_files(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;
        if (!d)
                return -1;
        while ((e = readdir(d)))
                n += strstr(e->d_name, ".tmp.") != NULL;
        closedir(d);
        return n;
}

static void test_write(void) {
        char dir[] = "/tmp/test_model_w_XXXXXX", path[128], err[512];
        loy_model_t m = model(LOY_VARIANT_BGNBD, 0.2425, 4.4136, 0.7929,
                              2.4259),
                    back, bad;
        FILE *f;

        CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/model", dir);
        m.r = 1.0 / 3; /* needs all 17 digits */
        m.unit_days = 7;
        m.has_gg = 1;
        m.gg_p = 6.25;
        m.gg_q = 3.74;
        m.gg_gamma = 15.44;
        m.discount_monthly = 0.01;
        m.rfm.set = 1;
        for (int k = 0; k < 4; k++) {
                m.rfm.recency_days[k] = 400.0 / (k + 1) + 1.0 / 3;
                m.rfm.frequency[k] = k + 1;
                m.rfm.monetary[k] = 10.5 * (k + 1);
        }
        strcpy(m.version, "fit-1");
        CU_ASSERT_EQUAL(loy_model_write(&m, "customers = 2357\nnote = ok", path,
                                        err, sizeof(err)),
                        0);
        memset(&back, 0, sizeof(back));
        CU_ASSERT_EQUAL(loy_model_load(&back, path, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(memcmp(&back, &m, sizeof(m)), 0);
        CU_ASSERT_EQUAL(tmp_files(dir), 0);

        /* a bad model is refused and the old file stays */
        bad = m;
        bad.alpha = -1;
        CU_ASSERT_EQUAL(loy_model_write(&bad, NULL, path, err, sizeof(err)),
                        -1);
        CU_ASSERT(strstr(err, "alpha: must be finite and > 0") != NULL);
        /* info the loader would refuse: not written either */
        CU_ASSERT_EQUAL(
            loy_model_write(&m, "bogus = 1\n", path, err, sizeof(err)), -1);
        CU_ASSERT(strstr(err, "bogus: unknown key") != NULL);
        CU_ASSERT_EQUAL(tmp_files(dir), 0);
        memset(&back, 0, sizeof(back));
        CU_ASSERT_EQUAL(loy_model_load(&back, path, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(memcmp(&back, &m, sizeof(m)), 0);

        /* replaced, not appended: no Gamma-Gamma any more */
        m.has_gg = 0;
        m.discount_monthly = 0;
        memset(&m.rfm, 0, sizeof(m.rfm));
        CU_ASSERT_EQUAL(loy_model_write(&m, NULL, path, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(loy_model_load(&back, path, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(back.has_gg, 0);
        CU_ASSERT_EQUAL(back.gg_p, 0);
        CU_ASSERT_EQUAL(back.discount_monthly, 0);

        /* a directory that does not exist */
        CU_ASSERT_EQUAL(loy_model_write(&m, NULL, "/nonexistent/dir/model", err,
                                        sizeof(err)),
                        -1);
        CU_ASSERT(strstr(err, "No such file or directory") != NULL);
        f = fopen(path, "r");
        CU_ASSERT(f != NULL);
        if (f)
                fclose(f);
        unlink(path);
        CU_ASSERT_EQUAL(rmdir(dir), 0);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("model", NULL, NULL);
        CU_add_test(s, "load ok", test_load_ok);
        CU_add_test(s, "load config/model.default", test_load_default);
        CU_add_test(s, "load errors with file:line", test_load_errors);
        CU_add_test(s, "validate", test_validate);
        CU_add_test(s, "CDNOW BG/NBD (FHL 2005)", test_cdnow_bgnbd);
        CU_add_test(s, "CDNOW MBG/NBD", test_cdnow_mbgnbd);
        CU_add_test(s, "a < 1 and a = 1, large x", test_small_a);
        CU_add_test(s, "extreme values", test_extreme_values);
        CU_add_test(s, "extreme matrix finite, >= 0, monotone",
                    test_extreme_matrix);
        CU_add_test(s, "bad inputs", test_bad_inputs);
        CU_add_test(s, "Gamma-Gamma", test_gamma_gamma);
        CU_add_test(s, "score units", test_score_units);
        CU_add_test(s, "discounted CLV", test_discount);
        CU_add_test(s, "discounted CLV, extreme inputs", test_discount_extreme);
        CU_add_test(s, "refunds netted", test_net_mean);
        CU_add_test(s, "discount_monthly and info keys", test_load_discount);
        CU_add_test(s, "atomic write, round trip", test_write);
        CU_add_test(s, "load from a buffer", test_load_buffer);
        return tu_cunit_run();
}
