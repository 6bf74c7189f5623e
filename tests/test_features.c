/* Unit tests of features/loy_feat: event arithmetic, derived values, the
 * field table and slots. Expected values are worked out by hand in the
 * comments. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "loy_date.h"
#include "loy_feat.h"
#include "loy_rfm.h"
#include "tu.h"

#define DAY LOY_MS_PER_DAY
#define HOUR (3600000LL)
#define MIN (60000LL)
/* 2020-01-01T00:00:00Z, the start of a UTC day */
#define B 1577836800000LL

static loy_feat_conf_t conf;

#define ASSERT_NEAR(a, b)                                                      \
        CU_ASSERT(fabs((double)(a) - (double)(b)) <=                           \
                  1e-9 * (1 + fabs((double)(b))))

static void purchase(loy_cust_t *c, int64_t ts, int n, const int *qty,
                     const double *price) {
        loy_event_t ev;

        memset(&ev, 0, sizeof(ev));
        ev.kind = LOY_EV_PURCHASE;
        ev.ts_ms = ts;
        snprintf(ev.event_id, sizeof(ev.event_id), "e%lld", (long long)ts);
        snprintf(ev.customer_id, sizeof(ev.customer_id), "%s", c->id);
        snprintf(ev.order_id, sizeof(ev.order_id), "o%lld", (long long)ts);
        for (int i = 0; i < n; i++) {
                loy_line_t *l = loy_event_add_line(&ev);
                CU_ASSERT_PTR_NOT_NULL_FATAL(l);
                snprintf(l->sku, sizeof(l->sku), "sku%d", i);
                l->quantity = qty[i];
                l->unit_price = price[i];
        }
        CU_ASSERT_EQUAL(loy_event_validate(&ev, 0, NULL, 0), 0);
        loy_feat_apply(c, &ev, &conf);
        loy_event_free(&ev);
}

static void buy1(loy_cust_t *c, int64_t ts, int qty, double price) {
        purchase(c, ts, 1, &qty, &price);
}

static void browse(loy_cust_t *c, int64_t ts, loy_browse_action_t a,
                   const char *sku) {
        loy_event_t ev;

        memset(&ev, 0, sizeof(ev));
        ev.kind = LOY_EV_BROWSE;
        ev.ts_ms = ts;
        ev.action = a;
        snprintf(ev.event_id, sizeof(ev.event_id), "b%lld", (long long)ts);
        snprintf(ev.customer_id, sizeof(ev.customer_id), "%s", c->id);
        snprintf(ev.sku, sizeof(ev.sku), "%s", sku);
        loy_feat_apply(c, &ev, &conf);
}

/* Civil dates: known days, both sides of the epoch, every day of 1600 to
 * 2400 there and back, and the text form. */
static void test_dates(void) {
        char buf[16];
        int64_t y;
        int m, d;
        CU_ASSERT_EQUAL(loy_date_to_days(1970, 1, 1), 0);
        CU_ASSERT_EQUAL(loy_date_to_days(1969, 12, 31), -1);
        CU_ASSERT_EQUAL(loy_date_to_days(2000, 3, 1), 11017);
        CU_ASSERT_EQUAL(loy_date_to_days(2010, 12, 1), 14944);
        for (int64_t day = loy_date_to_days(1600, 1, 1);
             day <= loy_date_to_days(2400, 12, 31); day++) {
                loy_date_from_days(day, &y, &m, &d);
                if (loy_date_to_days(y, m, d) != day) {
                        CU_FAIL("round trip");
                        break;
                }
        }
        loy_date_from_days(-1, &y, &m, &d);
        CU_ASSERT(y == 1969 && m == 12 && d == 31);
        loy_date_format(loy_date_to_days(2024, 2, 29), buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "2024-02-29");
        loy_date_format(loy_date_to_days(2023, 3, 1) - 1, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "2023-02-28");
}

static void test_conf_default(void) {
        loy_feat_conf_t d;
        loy_feat_conf_default(&d);
        CU_ASSERT_EQUAL(d.purchase_half_life_days, 90);
        CU_ASSERT_EQUAL(d.spend_half_life_days, 90);
        CU_ASSERT_EQUAL(d.browse_session_gap_min, 30);
        CU_ASSERT_EQUAL(d.points_per_unit, 1.0);
        CU_ASSERT_EQUAL(d.tier_silver_points, 500);
        CU_ASSERT_EQUAL(d.tier_gold_points, 2000);
}

static void test_init(void) {
        loy_cust_t c;
        char longid[200];

        memset(longid, 'x', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        memset(&c, 0x5a, sizeof(c));
        loy_feat_init(&c, longid);
        CU_ASSERT_EQUAL(strlen(c.id), LOY_ID_MAX);
        CU_ASSERT_EQUAL(c.orders, 0);
        CU_ASSERT_EQUAL(c.nslots, 0);
        CU_ASSERT_EQUAL(c.recent_views[0][0], '\0');
        loy_feat_init(&c, "c1");
        CU_ASSERT_STRING_EQUAL(c.id, "c1");
}

/*
 * The sequence (B = 2020-01-01 00:00 UTC):
 *  1 B+10h        2 x 50 = 100   first order
 *  2 B+15h        1 x 30 =  30   same day: first_day_value 130
 *  3 B+2d+15h     4 x 25 = 100   new day, gap 2.0 days
 *  4 B+3d        -1 x 30 = -30   return
 *  5 B+6d+3h      1 x 400 = 400  new day, gap 3.5 days; points 600 silver
 *  6 B+1d+12h     1 x 20 =  20   late, a day in between: no gap
 *  7 B-1d+6h      1 x 10 =  10   late, before the first: new first day
 *  8 B+7d         +1 x 5, -1 x 50 = -45  mostly returned
 *  9 B+8d        -2 x 50 = -100  return: points 485, back to bronze
 */
static void test_purchase_sequence(void) {
        loy_cust_t c;

        loy_feat_init(&c, "c1");
        buy1(&c, B + 10 * HOUR, 2, 50.0);
        CU_ASSERT_EQUAL(c.orders, 1);
        CU_ASSERT_EQUAL(c.purchase_days, 1);
        CU_ASSERT_EQUAL(c.first_purchase_ms, B + 10 * HOUR);
        CU_ASSERT_EQUAL(c.last_purchase_ms, B + 10 * HOUR);
        CU_ASSERT_EQUAL(c.gross_value, 100.0);
        CU_ASSERT_EQUAL(c.first_day_value, 100.0);
        CU_ASSERT_EQUAL(c.points, 100.0);
        CU_ASSERT_EQUAL(c.tier, 0);
        CU_ASSERT_EQUAL(c.dec_purchases, 1.0);
        CU_ASSERT_EQUAL(c.dec_spend, 100.0);
        CU_ASSERT_EQUAL(c.dec_ref_ms, B + 10 * HOUR);

        buy1(&c, B + 15 * HOUR, 1, 30.0);
        CU_ASSERT_EQUAL(c.orders, 2);
        CU_ASSERT_EQUAL(c.purchase_days, 1);
        CU_ASSERT_EQUAL(c.first_day_value, 130.0);
        CU_ASSERT_EQUAL(c.last_purchase_ms, B + 15 * HOUR);
        CU_ASSERT_EQUAL(c.ipt_n, 0);

        buy1(&c, B + 2 * DAY + 15 * HOUR, 4, 25.0);
        CU_ASSERT_EQUAL(c.orders, 3);
        CU_ASSERT_EQUAL(c.purchase_days, 2);
        CU_ASSERT_EQUAL(c.first_day_value, 130.0);
        CU_ASSERT_EQUAL(c.ipt_n, 1);
        CU_ASSERT_EQUAL(c.ipt_mean_days, 2.0);
        CU_ASSERT_EQUAL(c.ipt_m2, 0.0);

        buy1(&c, B + 3 * DAY, -1, 30.0);
        CU_ASSERT_EQUAL(c.orders, 3);
        CU_ASSERT_EQUAL(c.returns, 1);
        CU_ASSERT_EQUAL(c.return_value, 30.0);
        CU_ASSERT_EQUAL(c.gross_value, 230.0);
        CU_ASSERT_EQUAL(c.points, 200.0);
        CU_ASSERT_EQUAL(c.purchase_days, 2);
        CU_ASSERT_EQUAL(c.last_purchase_ms, B + 2 * DAY + 15 * HOUR);
        CU_ASSERT_EQUAL(c.last_event_ms, B + 3 * DAY);
        /* returns do not touch the decayed order counters */
        CU_ASSERT_EQUAL(c.dec_ref_ms, B + 2 * DAY + 15 * HOUR);

        buy1(&c, B + 6 * DAY + 3 * HOUR, 1, 400.0);
        CU_ASSERT_EQUAL(c.purchase_days, 3);
        CU_ASSERT_EQUAL(c.ipt_n, 2);
        CU_ASSERT_EQUAL(c.ipt_mean_days, 2.75);
        CU_ASSERT_EQUAL(c.ipt_m2, 1.125); /* 0.75^2 + 0.75^2 */
        CU_ASSERT_EQUAL(c.points, 600.0);
        CU_ASSERT_EQUAL(c.tier, 1);

        buy1(&c, B + 1 * DAY + 12 * HOUR, 1, 20.0);
        CU_ASSERT_EQUAL(c.orders, 5);
        CU_ASSERT_EQUAL(c.gross_value, 650.0);
        CU_ASSERT_EQUAL(c.purchase_days, 4);
        CU_ASSERT_EQUAL(c.ipt_n, 2);
        CU_ASSERT_EQUAL(c.ipt_mean_days, 2.75);
        CU_ASSERT_EQUAL(c.ipt_m2, 1.125);
        CU_ASSERT_EQUAL(c.last_purchase_ms, B + 6 * DAY + 3 * HOUR);
        CU_ASSERT_EQUAL(c.first_purchase_ms, B + 10 * HOUR);
        CU_ASSERT_EQUAL(c.first_day_value, 130.0);
        CU_ASSERT_EQUAL(c.last_event_ms, B + 6 * DAY + 3 * HOUR);

        buy1(&c, B - DAY + 6 * HOUR, 1, 10.0);
        CU_ASSERT_EQUAL(c.orders, 6);
        CU_ASSERT_EQUAL(c.gross_value, 660.0);
        CU_ASSERT_EQUAL(c.purchase_days, 5);
        CU_ASSERT_EQUAL(c.first_purchase_ms, B - DAY + 6 * HOUR);
        CU_ASSERT_EQUAL(c.first_day_value, 10.0);
        CU_ASSERT_EQUAL(c.ipt_n, 2);
        CU_ASSERT_EQUAL(c.points, 630.0);

        {
                int q[2] = {1, -1};
                double p[2] = {5.0, 50.0};
                purchase(&c, B + 7 * DAY, 2, q, p);
        }
        CU_ASSERT_EQUAL(c.orders, 6);
        CU_ASSERT_EQUAL(c.returns, 2);
        CU_ASSERT_EQUAL(c.return_value, 75.0);
        CU_ASSERT_EQUAL(c.points, 585.0);
        CU_ASSERT_EQUAL(c.tier, 1);

        buy1(&c, B + 8 * DAY, -2, 50.0);
        CU_ASSERT_EQUAL(c.returns, 3);
        CU_ASSERT_EQUAL(c.return_value, 175.0);
        CU_ASSERT_EQUAL(c.points, 485.0);
        CU_ASSERT_EQUAL(c.tier, 0);
        CU_ASSERT_EQUAL(c.last_event_ms, B + 8 * DAY);
        CU_ASSERT_EQUAL(c.last_purchase_ms, B + 6 * DAY + 3 * HOUR);

        /* derived at now = B+10d+3h */
        int64_t now = B + 10 * DAY + 3 * HOUR;
        CU_ASSERT_EQUAL(loy_feat_recency_days(&c, now), 4.0);
        CU_ASSERT_EQUAL(loy_feat_age_days(&c, now), 10.875); /* 11d-3h */
        CU_ASSERT_EQUAL(loy_feat_tx_days(&c), 6.875);        /* 7d-3h */
        CU_ASSERT_EQUAL(loy_feat_repeats(&c), 4);
        CU_ASSERT_EQUAL(loy_feat_monetary(&c), 485.0);
        CU_ASSERT_EQUAL(loy_feat_aov(&c), 110.0);               /* 660/6 */
        CU_ASSERT_EQUAL(loy_feat_mean_repeat_value(&c), 162.5); /* 650/4 */
        CU_ASSERT_EQUAL(loy_feat_ipt_var_days(&c), 1.125);
        /* never negative when the clock is behind the last purchase */
        CU_ASSERT_EQUAL(loy_feat_recency_days(&c, B), 0.0);

        /* decayed order count: each order weighted 2^-(age/90d) at the
         * reference time, which is the newest order */
        {
                const int64_t t[6] = {
                    B + 10 * HOUR,           B + 15 * HOUR,
                    B + 2 * DAY + 15 * HOUR, B + 6 * DAY + 3 * HOUR,
                    B + DAY + 12 * HOUR,     B - DAY + 6 * HOUR};
                const double v[6] = {100, 30, 100, 400, 20, 10};
                double np = 0, sp = 0;
                int64_t ref = B + 6 * DAY + 3 * HOUR;
                for (int i = 0; i < 6; i++) {
                        double w =
                            pow(2.0, -(double)(ref - t[i]) / (90.0 * DAY));
                        np += w;
                        sp += v[i] * w;
                }
                CU_ASSERT_EQUAL(c.dec_ref_ms, ref);
                ASSERT_NEAR(c.dec_purchases, np);
                ASSERT_NEAR(c.dec_spend, sp);
        }
}

static void test_zero_value_and_points_floor(void) {
        loy_cust_t c;

        loy_feat_init(&c, "c2");
        buy1(&c, B, 1, 0.0); /* a free order: nothing counts */
        CU_ASSERT_EQUAL(c.orders, 0);
        CU_ASSERT_EQUAL(c.returns, 0);
        CU_ASSERT_EQUAL(c.first_purchase_ms, 0);
        CU_ASSERT_EQUAL(c.last_event_ms, B);
        {
                int q[2] = {1, -1}; /* an even exchange is a return */
                double p[2] = {20.0, 20.0};
                purchase(&c, B + HOUR, 2, q, p);
        }
        CU_ASSERT_EQUAL(c.returns, 1);
        CU_ASSERT_EQUAL(c.return_value, 0.0);
        CU_ASSERT_EQUAL(c.orders, 0);

        buy1(&c, B + 2 * HOUR, 1, 10.0);
        buy1(&c, B + 3 * HOUR, -5, 10.0);
        CU_ASSERT_EQUAL(c.points, 0.0);
        CU_ASSERT_EQUAL(c.return_value, 50.0);
        CU_ASSERT_EQUAL(loy_feat_monetary(&c), -40.0);
        CU_ASSERT_EQUAL(loy_feat_aov(&c), 10.0);
        CU_ASSERT_EQUAL(loy_feat_repeats(&c), 0);
        CU_ASSERT_EQUAL(loy_feat_mean_repeat_value(&c), 0.0);
        CU_ASSERT_EQUAL(loy_feat_ipt_var_days(&c), 0.0);

        /* gold at 2000 points, with 2 points per unit */
        conf.points_per_unit = 2.0;
        buy1(&c, B + 4 * HOUR, 1, 1000.0);
        CU_ASSERT_EQUAL(c.points, 2000.0);
        CU_ASSERT_EQUAL(c.tier, 2);
        loy_feat_conf_default(&conf);

        /* never bought: derived values are 0 */
        loy_feat_init(&c, "c3");
        CU_ASSERT_EQUAL(loy_feat_recency_days(&c, B), 0.0);
        CU_ASSERT_EQUAL(loy_feat_age_days(&c, B), 0.0);
        CU_ASSERT_EQUAL(loy_feat_tx_days(&c), 0.0);
        CU_ASSERT_EQUAL(loy_feat_aov(&c), 0.0);
        CU_ASSERT_EQUAL(loy_feat_dec_purchases(&c, B, &conf), 0.0);
}

static void test_decay(void) {
        loy_cust_t c;

        loy_feat_init(&c, "d");
        buy1(&c, B, 1, 100.0);
        /* exactly one half-life later: exactly half */
        CU_ASSERT_EQUAL(loy_feat_dec_purchases(&c, B + 90 * DAY, &conf), 0.5);
        CU_ASSERT_EQUAL(loy_feat_dec_spend(&c, B + 90 * DAY, &conf), 50.0);
        /* not grown when asked about the past */
        CU_ASSERT_EQUAL(loy_feat_dec_purchases(&c, B - DAY, &conf), 1.0);

        buy1(&c, B + 90 * DAY, 1, 20.0);
        CU_ASSERT_EQUAL(c.dec_purchases, 1.5);
        CU_ASSERT_EQUAL(c.dec_spend, 70.0);
        CU_ASSERT_EQUAL(c.dec_ref_ms, B + 90 * DAY);

        /* a late order, one half-life older than the reference, adds
         * half its weight and leaves the reference alone */
        buy1(&c, B, 1, 40.0);
        CU_ASSERT_EQUAL(c.dec_purchases, 2.0);
        CU_ASSERT_EQUAL(c.dec_spend, 90.0);
        CU_ASSERT_EQUAL(c.dec_ref_ms, B + 90 * DAY);

        /* two half-lives on: a quarter */
        CU_ASSERT_EQUAL(loy_feat_dec_purchases(&c, B + 270 * DAY, &conf), 0.5);
        CU_ASSERT_EQUAL(loy_feat_dec_spend(&c, B + 270 * DAY, &conf), 22.5);
        /* the derived fields give the same */
        CU_ASSERT_EQUAL(
            loy_feat_field_number(&c, loy_feat_field_find("dec_spend_now"),
                                  B + 270 * DAY, &conf),
            22.5);

        /* separate half-lives: spend at 45 days quarters in 90 days */
        conf.spend_half_life_days = 45;
        loy_feat_init(&c, "d2");
        buy1(&c, B, 1, 100.0);
        buy1(&c, B + 90 * DAY, 1, 10.0);
        CU_ASSERT_EQUAL(c.dec_spend, 35.0);
        CU_ASSERT_EQUAL(c.dec_purchases, 1.5);
        loy_feat_conf_default(&conf);
}

/* Welford against a direct two-pass mean and sample variance. */
static void test_welford(void) {
        static const int day[8] = {0, 1, 4, 5, 9, 16, 17, 30};
        static const int hour[8] = {10, 3, 22, 8, 12, 0, 23, 5};
        double gaps[7], mean = 0, var = 0;
        int64_t t[8];
        loy_cust_t c;

        loy_feat_init(&c, "w");
        for (int i = 0; i < 8; i++) {
                t[i] = B + day[i] * DAY + hour[i] * HOUR + 1234 * (i + 1);
                buy1(&c, t[i], 1, 10.0 + i);
        }
        for (int i = 0; i < 7; i++) {
                gaps[i] = (double)(t[i + 1] - t[i]) / (double)DAY;
                mean += gaps[i];
        }
        mean /= 7;
        for (int i = 0; i < 7; i++)
                var += (gaps[i] - mean) * (gaps[i] - mean);
        var /= 6;
        CU_ASSERT_EQUAL(c.purchase_days, 8);
        CU_ASSERT_EQUAL(c.ipt_n, 7);
        ASSERT_NEAR(c.ipt_mean_days, mean);
        ASSERT_NEAR(loy_feat_ipt_var_days(&c), var);
        /* mean gap is also (last - first) / gaps */
        ASSERT_NEAR(c.ipt_mean_days, loy_feat_tx_days(&c) / 7);
        CU_ASSERT_EQUAL(loy_feat_repeats(&c), 7);
        /* mean repeat value: (11 + ... + 17) / 7 = 14 */
        ASSERT_NEAR(loy_feat_mean_repeat_value(&c), 14.0);
}

static void test_browse(void) {
        loy_cust_t c;

        loy_feat_init(&c, "b");
        browse(&c, B, LOY_ACT_VIEW, "A");
        CU_ASSERT_EQUAL(c.views, 1);
        CU_ASSERT_EQUAL(c.sessions, 1);
        browse(&c, B + 10 * MIN, LOY_ACT_VIEW, "B");
        browse(&c, B + 20 * MIN, LOY_ACT_ADD_TO_CART, "B");
        /* exactly the gap after the last event: still the same session */
        browse(&c, B + 50 * MIN, LOY_ACT_VIEW, "A");
        CU_ASSERT_EQUAL(c.sessions, 1);
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "A");
        CU_ASSERT_STRING_EQUAL(c.recent_views[1], "B");
        CU_ASSERT_STRING_EQUAL(c.recent_views[2], "");
        /* 31 minutes of silence: a new session */
        browse(&c, B + 81 * MIN, LOY_ACT_SEARCH, "");
        CU_ASSERT_EQUAL(c.sessions, 2);
        browse(&c, B + 90 * MIN, LOY_ACT_WISHLIST, "C");
        browse(&c, B + 100 * MIN, LOY_ACT_REMOVE_FROM_CART, "B");
        CU_ASSERT_EQUAL(c.views, 3);
        CU_ASSERT_EQUAL(c.carts, 1);
        CU_ASSERT_EQUAL(c.cart_removes, 1);
        CU_ASSERT_EQUAL(c.searches, 1);
        CU_ASSERT_EQUAL(c.wishlists, 1);
        CU_ASSERT_EQUAL(c.sessions, 2);

        browse(&c, B + 5 * HOUR, LOY_ACT_VIEW, "C");
        browse(&c, B + 5 * HOUR + 1 * MIN, LOY_ACT_VIEW, "D");
        browse(&c, B + 5 * HOUR + 2 * MIN, LOY_ACT_VIEW, "E");
        browse(&c, B + 5 * HOUR + 3 * MIN, LOY_ACT_VIEW, "F");
        CU_ASSERT_EQUAL(c.sessions, 3);
        CU_ASSERT_EQUAL(c.views, 7);
        /* six distinct skus, five kept: B (oldest) fell off */
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "F");
        CU_ASSERT_STRING_EQUAL(c.recent_views[1], "E");
        CU_ASSERT_STRING_EQUAL(c.recent_views[2], "D");
        CU_ASSERT_STRING_EQUAL(c.recent_views[3], "C");
        CU_ASSERT_STRING_EQUAL(c.recent_views[4], "A");

        /* a late view: counted, no new session, no clock going back */
        browse(&c, B + 1 * HOUR, LOY_ACT_VIEW, "E");
        CU_ASSERT_EQUAL(c.views, 8);
        CU_ASSERT_EQUAL(c.sessions, 3);
        CU_ASSERT_EQUAL(c.last_browse_ms, B + 5 * HOUR + 3 * MIN);
        CU_ASSERT_EQUAL(c.last_event_ms, B + 5 * HOUR + 3 * MIN);
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "E");
        CU_ASSERT_STRING_EQUAL(c.recent_views[1], "F");
        CU_ASSERT_STRING_EQUAL(c.recent_views[2], "D");
        CU_ASSERT_STRING_EQUAL(c.recent_views[3], "C");
        CU_ASSERT_STRING_EQUAL(c.recent_views[4], "A");
        /* the last one moved to the front */
        browse(&c, B + 6 * HOUR, LOY_ACT_VIEW, "A");
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "A");
        CU_ASSERT_STRING_EQUAL(c.recent_views[4], "C");
        CU_ASSERT_EQUAL(c.sessions, 4);

        /* browsing is not buying */
        CU_ASSERT_EQUAL(c.orders, 0);
        CU_ASSERT_EQUAL(c.first_purchase_ms, 0);
        buy1(&c, B + 7 * HOUR, 1, 5.0);
        CU_ASSERT_EQUAL(c.sessions, 4);
        CU_ASSERT_EQUAL(c.last_browse_ms, B + 6 * HOUR);
        CU_ASSERT_EQUAL(c.last_event_ms, B + 7 * HOUR);
}

/* ------------------------------------------------------------------ */
/* Field table                                                         */
/* ------------------------------------------------------------------ */

static void fill(loy_cust_t *c) {
        loy_feat_init(c, "full");
        c->first_purchase_ms = 1577836800123LL;
        c->last_purchase_ms = 1609459200456LL;
        c->orders = 17;
        c->purchase_days = 11;
        c->gross_value = 1234.56;
        c->first_day_value = 0.1;
        c->returns = 3;
        c->return_value = 99.99;
        c->ipt_mean_days = 2.0 / 3.0;
        c->ipt_m2 = 12345.6789012345;
        c->ipt_n = 9;
        c->dec_purchases = 3.14159265358979;
        c->dec_spend = 98765432.1;
        c->dec_ref_ms = 1609459200456LL;
        c->points = 1134.57;
        c->tier = 2;
        c->views = 101;
        c->carts = 21;
        c->cart_removes = 4;
        c->searches = 33;
        c->wishlists = 5;
        c->sessions = 19;
        c->last_browse_ms = 1609459300789LL;
        snprintf(c->recent_views[0], LOY_SKU_MAX + 1, "plain");
        snprintf(c->recent_views[1], LOY_SKU_MAX + 1, "with,comma");
        snprintf(c->recent_views[2], LOY_SKU_MAX + 1, "100%%,pct%%2C");
        snprintf(c->recent_views[3], LOY_SKU_MAX + 1, "x");
        memset(c->recent_views[4], 'z', LOY_SKU_MAX);
        c->recent_views[4][LOY_SKU_MAX] = '\0';
        c->last_event_ms = 1609459300790LL;
        c->p_alive = 0.123456789012;
        c->churn_prob = 1e-7;
        c->exp_purchases = 2.5;
        c->clv = 4567.891;
        c->r_score = 3;
        c->f_score = 5;
        c->m_score = 4;
        c->loyalty_score = 4.0;
        c->loyalty_group = 3;
        c->segment = LOY_SEG_LOYAL;
        c->scored_ms = 1609459300791LL;
        c->next_check_ms = 1612137600000LL;
        CU_ASSERT_EQUAL(loy_feat_slot_set(c, "off:purchases:3", 4242), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_set(c, "cool:winback", 1600000000000LL),
                        0);
        loy_feat_event_note(c, loy_feat_event_key("or-536365"));
        loy_feat_event_note(c, loy_feat_event_key("or-536366"));
}

/* Every member of loy_cust_t except id and the slots is in the table. */
static void test_field_coverage(void) {
        static const size_t members[] = {
            offsetof(loy_cust_t, first_purchase_ms),
            offsetof(loy_cust_t, last_purchase_ms),
            offsetof(loy_cust_t, orders),
            offsetof(loy_cust_t, purchase_days),
            offsetof(loy_cust_t, gross_value),
            offsetof(loy_cust_t, first_day_value),
            offsetof(loy_cust_t, returns),
            offsetof(loy_cust_t, return_value),
            offsetof(loy_cust_t, ipt_mean_days),
            offsetof(loy_cust_t, ipt_m2),
            offsetof(loy_cust_t, ipt_n),
            offsetof(loy_cust_t, dec_purchases),
            offsetof(loy_cust_t, dec_spend),
            offsetof(loy_cust_t, dec_ref_ms),
            offsetof(loy_cust_t, points),
            offsetof(loy_cust_t, tier),
            offsetof(loy_cust_t, views),
            offsetof(loy_cust_t, carts),
            offsetof(loy_cust_t, cart_removes),
            offsetof(loy_cust_t, searches),
            offsetof(loy_cust_t, wishlists),
            offsetof(loy_cust_t, sessions),
            offsetof(loy_cust_t, last_browse_ms),
            offsetof(loy_cust_t, recent_views),
            offsetof(loy_cust_t, last_event_ms),
            offsetof(loy_cust_t, p_alive),
            offsetof(loy_cust_t, churn_prob),
            offsetof(loy_cust_t, exp_purchases),
            offsetof(loy_cust_t, clv),
            offsetof(loy_cust_t, r_score),
            offsetof(loy_cust_t, f_score),
            offsetof(loy_cust_t, m_score),
            offsetof(loy_cust_t, loyalty_score),
            offsetof(loy_cust_t, loyalty_group),
            offsetof(loy_cust_t, segment),
            offsetof(loy_cust_t, scored_ms),
            offsetof(loy_cust_t, next_check_ms),
            offsetof(loy_cust_t, recent_events),
            offsetof(loy_cust_t, forgotten_ms),
        };
        size_t nm = sizeof(members) / sizeof(members[0]);
        int stored = 0, derived = 0;

        for (size_t i = 0; i < nm; i++) {
                int found = 0;
                for (const loy_field_t *f = loy_feat_fields; f->name; f++)
                        if (f->type != LOY_FT_DERIVED &&
                            f->offset == members[i])
                                found++;
                CU_ASSERT_EQUAL(found, 1);
        }
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                if (f->type == LOY_FT_DERIVED)
                        derived++;
                else
                        stored++;
                CU_ASSERT_PTR_NOT_NULL(f->unit);
                CU_ASSERT_PTR_NOT_NULL(f->doc);
                /* names are Redis hash fields: no blanks, no slot prefix */
                CU_ASSERT_PTR_NULL(strpbrk(f->name, " :\t"));
        }
        CU_ASSERT_EQUAL(stored, (int)nm);
        CU_ASSERT_EQUAL(derived, 13);
}

static void test_field_find(void) {
        int n = 0;

        for (const loy_field_t *f = loy_feat_fields; f->name; f++, n++)
                CU_ASSERT_PTR_EQUAL(loy_feat_field_find(f->name), f);
        CU_ASSERT_EQUAL(n, 52);
        CU_ASSERT_PTR_NULL(loy_feat_field_find("nope"));
        CU_ASSERT_PTR_NULL(loy_feat_field_find(""));
        CU_ASSERT_PTR_NULL(loy_feat_field_find("recency"));
        CU_ASSERT_PTR_NULL(loy_feat_field_find("zzz"));
        CU_ASSERT_PTR_NULL(loy_feat_field_find("A"));
        CU_ASSERT_EQUAL(loy_feat_field_find("frequency")->offset,
                        offsetof(loy_cust_t, purchase_days));
        CU_ASSERT_EQUAL(loy_feat_field_find("recent_views")->type, LOY_FT_STR);
        CU_ASSERT_EQUAL(loy_feat_field_find("T_days")->type, LOY_FT_DERIVED);
}

/* One definition of an order and a return for features and KPIs; a
 * zero-value order is neither (the KPI used to count it as a return). */
static void test_purchase_kind(void) {
        static const struct {
                int n;
                int qty[2];
                double price[2];
                loy_purchase_kind_t want;
        } cases[] = {
            {1, {2, 0}, {5, 0}, LOY_PURCHASE_ORDER},
            {1, {-1, 0}, {5, 0}, LOY_PURCHASE_RETURN},
            {1, {3, 0}, {0, 0}, LOY_PURCHASE_NONE},    /* free sample */
            {2, {1, -1}, {5, 5}, LOY_PURCHASE_RETURN}, /* an exchange */
        };
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                loy_event_t ev;
                loy_cust_t c;
                memset(&ev, 0, sizeof(ev));
                ev.kind = LOY_EV_PURCHASE;
                for (int i = 0; i < cases[k].n; i++) {
                        loy_line_t *l = loy_event_add_line(&ev);
                        CU_ASSERT_PTR_NOT_NULL_FATAL(l);
                        l->quantity = cases[k].qty[i];
                        l->unit_price = cases[k].price[i];
                }
                CU_ASSERT_EQUAL(loy_event_purchase_kind(&ev), cases[k].want);
                loy_event_free(&ev);
                /* the features count exactly what the kind says */
                loy_feat_init(&c, "k");
                purchase(&c, 1600000000000LL, cases[k].n, cases[k].qty,
                         cases[k].price);
                CU_ASSERT_EQUAL(c.orders, cases[k].want == LOY_PURCHASE_ORDER);
                CU_ASSERT_EQUAL(c.returns,
                                cases[k].want == LOY_PURCHASE_RETURN);
        }
}

/* Numbers are stored as the shortest text that reads back exactly, without
 * snprintf for the usual amounts; a seeded sweep over many magnitudes. */
static void test_fmt_double(void) {
        static const struct {
                double v;
                const char *want;
        } cases[] = {
            {0, "0"},
            {-0.0, "0"},
            {3, "3"},
            {-42, "-42"},
            {0.1, "0.1"},
            {12.34, "12.34"},
            {-3.25, "-3.25"},
            {150.5, "150.5"},
            {1e-7, "0.0000001"},
            {2.0 / 3, "0.6666666666666666"},
            {1e300, "1e+300"},
            {9007199254740993.0, "9007199254740992"},
            {123456.789, "123456.789"},
            {0.07, "0.07"},
        };
        char buf[64], ref[64];
        uint64_t x = 88172645463325252ULL; /* xorshift64, fixed seed */
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CU_ASSERT(loy_fmt_double(buf, sizeof(buf), cases[i].v) > 0);
                if (strcmp(buf, cases[i].want))
                        printf("\n%.17g: got %s want %s\n", cases[i].v, buf,
                               cases[i].want);
                CU_ASSERT_STRING_EQUAL(buf, cases[i].want);
        }
        for (int i = 0; i < 200000; i++) {
                double v;
                int n;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* mantissa and a decimal exponent between -12 and +12 */
                v = (double)(x >> 11) / 9007199254740992.0 *
                    pow(10, (int)(x % 25) - 12);
                if (i % 3 == 0)
                        v = round(v * 100) / 100; /* money */
                if (i % 7 == 0)
                        v = -v;
                /* exactly the room the text needs (the store's buffers
                 * are 40 bytes): fits, and one byte less does not */
                n = loy_fmt_double(buf, sizeof(buf), v);
                CU_ASSERT_FATAL(n > 0 && (size_t)n == strlen(buf));
                if (loy_fmt_double(ref, (size_t)n + 1, v) != n ||
                    strcmp(ref, buf) ||
                    loy_fmt_double(ref, (size_t)n, v) != -1) {
                        printf("\n%.17g -> %s: not in %d bytes\n", v, buf,
                               n + 1);
                        CU_FAIL_FATAL("needs more room than its length");
                }
                if (strtod(buf, NULL) != v) {
                        printf("\n%.17g -> %s\n", v, buf);
                        CU_FAIL_FATAL("does not read back");
                }
                /* never longer than %.17g plus a leading "0.000" */
                snprintf(ref, sizeof(ref), "%.17g", v);
                CU_ASSERT(strlen(buf) <= strlen(ref) + 12);
        }
        CU_ASSERT_EQUAL(loy_fmt_double(buf, 3, 12.34), -1);
        /* floats (recommendation weights): read back through a double */
        CU_ASSERT(loy_fmt_float(buf, sizeof(buf), 0.25f) > 0);
        CU_ASSERT_STRING_EQUAL(buf, "0.25");
        CU_ASSERT(loy_fmt_float(buf, sizeof(buf), 0.7f) > 0);
        CU_ASSERT_STRING_EQUAL(buf, "0.7");
        for (int i = 0; i < 200000; i++) {
                float f;
                int n;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f = (float)((double)(x >> 40) / 16777216.0 *
                            pow(10, (int)(x % 13) - 6));
                n = loy_fmt_float(buf, sizeof(buf), f);
                CU_ASSERT_FATAL(n > 0 && (size_t)n == strlen(buf));
                if ((float)strtod(buf, NULL) != f) {
                        printf("\n%.9g -> %s\n", (double)f, buf);
                        CU_FAIL_FATAL("float does not read back");
                }
                snprintf(ref, sizeof(ref), "%.9g", (double)f);
                CU_ASSERT(strlen(buf) <= strlen(ref) + 7);
        }
        CU_ASSERT_EQUAL(loy_fmt_float(buf, 3, 12.25f), -1);
        CU_ASSERT_EQUAL(loy_fmt_i64(buf, sizeof(buf), INT64_MIN), 20);
        CU_ASSERT_STRING_EQUAL(buf, "-9223372036854775808");
        CU_ASSERT_EQUAL(loy_fmt_i64(buf, 3, 1234), -1);
}

static void test_field_roundtrip(void) {
        loy_cust_t a, b;
        char buf[512];
        int64_t now = 1612137600000LL;

        fill(&a);
        loy_feat_init(&b, "full");
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                int n =
                    loy_feat_field_format(&a, f, now, &conf, buf, sizeof(buf));
                CU_ASSERT_FATAL(n >= 0);
                CU_ASSERT_EQUAL((size_t)n, strlen(buf));
                /* readable: no exponent for these values but churn_prob */
                if (f->type == LOY_FT_DBL &&
                    f->offset != offsetof(loy_cust_t, churn_prob))
                        CU_ASSERT_PTR_NULL(strpbrk(buf, "eE"));
                /* value need not be NUL-terminated */
                buf[n] = '#';
                CU_ASSERT_EQUAL(
                    loy_feat_field_parse(&b, f->name, buf, (size_t)n), 0);
        }
        for (int i = 0; i < a.nslots; i++) {
                int n = snprintf(buf, sizeof(buf), "%lld",
                                 (long long)a.slots[i].value);
                CU_ASSERT_EQUAL(
                    loy_feat_field_parse(&b, a.slots[i].name, buf, (size_t)n),
                    0);
        }
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                double x, y;
                if (f->type == LOY_FT_STR || f->type == LOY_FT_KEYS)
                        continue;
                x = loy_feat_field_number(&a, f, now, &conf);
                y = loy_feat_field_number(&b, f, now, &conf);
                /* exactly: with 10 significant digits a customer reloaded
                 * from Redis used to drift from the one in memory */
                if (!(x == y || (isnan(x) && isnan(y))))
                        printf("\n%s: %.17g != %.17g\n", f->name, x, y);
                CU_ASSERT(x == y || (isnan(x) && isnan(y)));
        }
        for (int i = 0; i < LOY_RECENT_VIEWS; i++)
                CU_ASSERT_STRING_EQUAL(a.recent_views[i], b.recent_views[i]);
        CU_ASSERT_EQUAL(b.recent_events.n, a.recent_events.n);
        CU_ASSERT_EQUAL(memcmp(b.recent_events.key, a.recent_events.key,
                               sizeof(a.recent_events.key)),
                        0);
        CU_ASSERT_EQUAL(b.nslots, 2);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&b, "off:purchases:3", -1), 4242);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&b, "cool:winback", -1),
                        1600000000000LL);
        CU_ASSERT_STRING_EQUAL(b.id, "full");
}

static const char *fmt(const loy_cust_t *c, const char *name, int64_t now) {
        static char buf[512];
        const loy_field_t *f = loy_feat_field_find(name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        if (loy_feat_field_format(c, f, now, &conf, buf, sizeof(buf)) < 0)
                return "(error)";
        return buf;
}

static void test_field_format(void) {
        loy_cust_t c;
        /* first 2020-01-01 00:00:00.123, last 2021-01-01 00:00:00.456 */
        int64_t now = 1609459200456LL + 10 * DAY;
        const loy_field_t *f;
        char small[4];

        fill(&c);
        CU_ASSERT_STRING_EQUAL(fmt(&c, "orders", now), "17");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "frequency", now), "11");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "gross_value", now), "1234.56");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "first_day_value", now), "0.1");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "dec_spend", now), "98765432.1");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "ipt_mean_days", now),
                               "0.6666666666666666");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "first_purchase_ms", now),
                               "1577836800123");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "tier", now), "2");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "tier_name", now), "gold");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "segment", now), "3");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "segment_name", now), "loyal");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "loyalty_group", now), "3");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "loyalty_group_name", now), "very_high");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "recency_days", now), "10");
        /* 366 days (2020 is a leap year) plus 0.333 s */
        CU_ASSERT_STRING_EQUAL(fmt(&c, "t_x_days", now), "366.00000385416666");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "x", now), "10");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "monetary", now), "1134.57");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "aov", now), "72.62117647058824");
        /* (1234.56 - 0.1) / 10 */
        CU_ASSERT_STRING_EQUAL(fmt(&c, "mean_repeat_value", now), "123.446");
        /* 12345.6789012345 / 8 */
        CU_ASSERT_STRING_EQUAL(fmt(&c, "ipt_var_days", now),
                               "1543.2098626543125");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "recent_views", now),
                               "plain,with%2Ccomma,100%25%2Cpct%252C,x,"
                               "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                               "zzzzzzzzzzzzzzzzzzzz");
        /* no -0 on dashboards */
        c.clv = -0.0;
        CU_ASSERT_STRING_EQUAL(fmt(&c, "clv", now), "0");

        /* numbers for rule conditions */
        f = loy_feat_field_find("segment_name");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf),
                        LOY_SEG_LOYAL);
        f = loy_feat_field_find("tier_name");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf), 2);
        f = loy_feat_field_find("loyalty_group_name");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf), 3);
        f = loy_feat_field_find("recency_days");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf), 10.0);
        f = loy_feat_field_find("x");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf), 10.0);
        f = loy_feat_field_find("frequency");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, &conf), 11.0);
        f = loy_feat_field_find("recent_views");
        CU_ASSERT(isnan(loy_feat_field_number(&c, f, now, &conf)));
        /* conf NULL means the defaults */
        f = loy_feat_field_find("dec_purchases_now");
        CU_ASSERT_EQUAL(loy_feat_field_number(&c, f, now, NULL),
                        loy_feat_dec_purchases(&c, now, &conf));

        /* too small a buffer */
        f = loy_feat_field_find("first_purchase_ms");
        CU_ASSERT_EQUAL(
            loy_feat_field_format(&c, f, now, &conf, small, sizeof(small)), -1);
        f = loy_feat_field_find("recent_views");
        CU_ASSERT_EQUAL(
            loy_feat_field_format(&c, f, now, &conf, small, sizeof(small)), -1);
        f = loy_feat_field_find("segment_name");
        CU_ASSERT_EQUAL(
            loy_feat_field_format(&c, f, now, &conf, small, sizeof(small)), -1);
        f = loy_feat_field_find("tier");
        CU_ASSERT_EQUAL(
            loy_feat_field_format(&c, f, now, &conf, small, sizeof(small)), 1);
        CU_ASSERT_STRING_EQUAL(small, "2");

        /* the longest text there is fits LOY_FIELD_TEXT_MAX */
        {
                char big[LOY_FIELD_TEXT_MAX];
                loy_cust_t w;
                loy_feat_init(&w, "w");
                for (int i = 0; i < LOY_RECENT_VIEWS; i++) {
                        memset(w.recent_views[i], ',', LOY_SKU_MAX);
                        w.recent_views[i][LOY_SKU_MAX - 1] = (char)('a' + i);
                }
                f = loy_feat_field_find("recent_views");
                CU_ASSERT_EQUAL(
                    loy_feat_field_format(&w, f, now, &conf, big, sizeof(big)),
                    LOY_RECENT_VIEWS * (3 * LOY_SKU_MAX - 2) +
                        LOY_RECENT_VIEWS - 1);
                loy_feat_init(&c, "e");
                CU_ASSERT_EQUAL(
                    loy_feat_field_parse(&c, "recent_views", big, strlen(big)),
                    0);
                for (int i = 0; i < LOY_RECENT_VIEWS; i++)
                        CU_ASSERT_STRING_EQUAL(c.recent_views[i],
                                               w.recent_views[i]);
                c.clv = -1.2345678901234e300;
                f = loy_feat_field_find("clv");
                CU_ASSERT(loy_feat_field_format(&c, f, now, &conf, big,
                                                sizeof(big)) > 0);
        }

        /* no views: empty text, parsed back to no views */
        loy_feat_init(&c, "e");
        CU_ASSERT_STRING_EQUAL(fmt(&c, "recent_views", now), "");
        snprintf(c.recent_views[0], LOY_SKU_MAX + 1, "old");
        CU_ASSERT_EQUAL(loy_feat_field_parse(&c, "recent_views", "", 0), 0);
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "");
}

static int parse(loy_cust_t *c, const char *name, const char *v) {
        return loy_feat_field_parse(c, name, v, strlen(v));
}

static void test_field_parse(void) {
        loy_cust_t c;

        loy_feat_init(&c, "p");
        CU_ASSERT_EQUAL(parse(&c, "orders", "42"), 0);
        CU_ASSERT_EQUAL(c.orders, 42);
        CU_ASSERT_EQUAL(parse(&c, "orders", "42x"), -1);
        CU_ASSERT_EQUAL(parse(&c, "orders", ""), -1);
        CU_ASSERT_EQUAL(parse(&c, "orders", "4.5"), -1);
        CU_ASSERT_EQUAL(parse(&c, "orders", "99999999999999999999"), -1);
        CU_ASSERT_EQUAL(c.orders, 42);
        CU_ASSERT_EQUAL(parse(&c, "clv", "12.5"), 0);
        CU_ASSERT_EQUAL(c.clv, 12.5);
        CU_ASSERT_EQUAL(parse(&c, "clv", "abc"), -1);
        CU_ASSERT_EQUAL(parse(&c, "clv", "1e999"), -1);
        CU_ASSERT_EQUAL(parse(&c, "r_score", "99999999999"), -1);
        CU_ASSERT_EQUAL(parse(&c, "r_score", "4"), 0);
        CU_ASSERT_EQUAL(c.r_score, 4);
        /* names typed by hand are understood */
        CU_ASSERT_EQUAL(parse(&c, "segment", "at_risk"), 0);
        CU_ASSERT_EQUAL(c.segment, LOY_SEG_AT_RISK);
        CU_ASSERT_EQUAL(parse(&c, "tier", "silver"), 0);
        CU_ASSERT_EQUAL(c.tier, 1);
        CU_ASSERT_EQUAL(parse(&c, "loyalty_group", "medium"), 0);
        CU_ASSERT_EQUAL(c.loyalty_group, 1);
        CU_ASSERT_EQUAL(parse(&c, "segment", "vip"), -1);
        CU_ASSERT_EQUAL(parse(&c, "r_score", "high"), -1);
        /* derived and unknown fields are ignored */
        CU_ASSERT_EQUAL(parse(&c, "recency_days", "garbage"), 0);
        CU_ASSERT_EQUAL(parse(&c, "segment_name", "lost"), 0);
        CU_ASSERT_EQUAL(c.segment, LOY_SEG_AT_RISK);
        CU_ASSERT_EQUAL(parse(&c, "from_the_future", "1"), 0);
        /* slots */
        CU_ASSERT_EQUAL(parse(&c, "off:t:0", "17"), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:t:0", -1), 17);
        CU_ASSERT_EQUAL(parse(&c, "off:t:0", "18"), 0);
        CU_ASSERT_EQUAL(c.nslots, 1);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:t:0", -1), 18);
        CU_ASSERT_EQUAL(parse(&c, "cool:x", "y"), -1);
        CU_ASSERT_EQUAL(c.nslots, 1);
        /* recent views: malformed escapes, too long skus, extra entries */
        CU_ASSERT_EQUAL(parse(&c, "recent_views", "a%2"), -1);
        CU_ASSERT_EQUAL(parse(&c, "recent_views", "a%zz"), -1);
        CU_ASSERT_EQUAL(parse(&c, "recent_views", "a%00"), -1);
        {
                char big[LOY_SKU_MAX + 2];
                memset(big, 'q', sizeof(big) - 1);
                big[sizeof(big) - 1] = '\0';
                CU_ASSERT_EQUAL(parse(&c, "recent_views", big), -1);
        }
        CU_ASSERT_EQUAL(parse(&c, "recent_views", "a,b,,c,d,e,f,g"), 0);
        CU_ASSERT_STRING_EQUAL(c.recent_views[0], "a");
        CU_ASSERT_STRING_EQUAL(c.recent_views[2], "c");
        CU_ASSERT_STRING_EQUAL(c.recent_views[4], "e");
}

/* The event ids a customer applied last: the same id is seen while it is
 * among the last LOY_RECENT_EVENTS, forgotten after; the window reads
 * back from its text, and bad text is refused. */
/* An erasure keeps the id, the offset fences and the later erasure time,
 * nothing else; the events it covers are those up to that time. */
static void test_forget(void) {
        static loy_cust_t c;
        loy_event_t ev;
        loy_feat_init(&c, "c9");
        c.orders = 4;
        c.first_purchase_ms = 1000;
        c.last_event_ms = 5000;
        c.clv = 12.5;
        snprintf(c.recent_views[0], sizeof(c.recent_views[0]), "85123A");
        loy_feat_event_note(&c, loy_feat_event_key("e1"));
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "off:purchases:1", 40), 0);
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "cool:2", 4000), 0);
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "off:browse:1", 9), 0);
        CU_ASSERT_FALSE(loy_feat_is_forgotten(&c));
        loy_feat_forget(&c, 6000);
        CU_ASSERT_STRING_EQUAL(c.id, "c9");
        CU_ASSERT_EQUAL(c.orders, 0);
        CU_ASSERT_EQUAL(c.first_purchase_ms, 0);
        CU_ASSERT_EQUAL(c.clv, 0);
        CU_ASSERT_EQUAL(c.recent_views[0][0], '\0');
        CU_ASSERT_EQUAL(c.recent_events.n, 0);
        CU_ASSERT_EQUAL(c.nslots, 2);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:purchases:1", -1), 40);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:browse:1", -1), 9);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "cool:2", -1), -1);
        CU_ASSERT_EQUAL(c.forgotten_ms, 6000);
        CU_ASSERT_TRUE(loy_feat_is_forgotten(&c));
        /* an earlier erasure request arriving late moves nothing back */
        loy_feat_forget(&c, 3000);
        CU_ASSERT_EQUAL(c.forgotten_ms, 6000);

        memset(&ev, 0, sizeof(ev));
        ev.kind = LOY_EV_PURCHASE;
        ev.ts_ms = 6000;
        CU_ASSERT_TRUE(loy_feat_forget_covers(&c, &ev));
        ev.ts_ms = 6001;
        CU_ASSERT_FALSE(loy_feat_forget_covers(&c, &ev));
        ev.kind = LOY_EV_FORGET;
        ev.ts_ms = 0;
        CU_ASSERT_FALSE(loy_feat_forget_covers(&c, &ev));
        /* a purchase after it: a customer again */
        c.last_event_ms = 7000;
        CU_ASSERT_FALSE(loy_feat_is_forgotten(&c));
}

static void test_event_window(void) {
        static loy_cust_t c, d;
        char buf[LOY_FIELD_TEXT_MAX], id[32];
        const loy_field_t *f = loy_feat_field_find("recent_event_keys");
        uint64_t k0 = loy_feat_event_key("or-536365");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(f->view, 0);
        /* FNV-1a 64 of "a", the published test vector */
        CU_ASSERT_EQUAL(loy_feat_event_key("a"), 0xaf63dc4c8601ec8cULL);
        CU_ASSERT_NOT_EQUAL(k0, loy_feat_event_key("or-536366"));
        loy_feat_init(&c, "c1");
        CU_ASSERT_FALSE(loy_feat_event_seen(&c, k0));
        loy_feat_event_note(&c, k0);
        CU_ASSERT_TRUE(loy_feat_event_seen(&c, k0));
        for (int i = 1; i < LOY_RECENT_EVENTS; i++) {
                snprintf(id, sizeof(id), "ev-%d", i);
                loy_feat_event_note(&c, loy_feat_event_key(id));
        }
        CU_ASSERT_EQUAL(c.recent_events.n, LOY_RECENT_EVENTS);
        CU_ASSERT_TRUE(loy_feat_event_seen(&c, k0)); /* the oldest */
        loy_feat_event_note(&c, loy_feat_event_key("ev-new"));
        CU_ASSERT_FALSE(loy_feat_event_seen(&c, k0)); /* pushed out */
        CU_ASSERT_EQUAL(c.recent_events.n, LOY_RECENT_EVENTS);
        CU_ASSERT_EQUAL(c.recent_events.key[0], loy_feat_event_key("ev-new"));

        CU_ASSERT(loy_feat_field_format(&c, f, 0, NULL, buf, sizeof(buf)) ==
                  LOY_RECENT_EVENTS * 17 - 1);
        loy_feat_init(&d, "c1");
        CU_ASSERT_EQUAL(loy_feat_field_parse(&d, f->name, buf, strlen(buf)), 0);
        CU_ASSERT_EQUAL(
            memcmp(&d.recent_events, &c.recent_events, sizeof(c.recent_events)),
            0);
        CU_ASSERT_EQUAL(loy_feat_field_parse(&d, f->name, "", 0), 0);
        CU_ASSERT_EQUAL(d.recent_events.n, 0);
        static const char *const bad[] = {"12",
                                          "00000000000000zz",
                                          "0000000000000000,",
                                          ",0000000000000000",
                                          "0000000000000000000",
                                          "0000000000000000,,0000000000000001"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                CU_ASSERT_EQUAL(
                    loy_feat_field_parse(&d, f->name, bad[i], strlen(bad[i])),
                    -1);
        /* more keys than the window holds */
        strcat(buf, ",0000000000000001");
        CU_ASSERT_EQUAL(loy_feat_field_parse(&d, f->name, buf, strlen(buf)),
                        -1);
}

static void test_slots(void) {
        loy_cust_t c;
        char name[LOY_SLOT_NAME_MAX + 8];

        loy_feat_init(&c, "s");
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "cool:a", -7), -7);
        for (int i = 0; i < LOY_SLOTS_MAX; i++) {
                snprintf(name, sizeof(name), "off:topic:%d", i);
                CU_ASSERT_EQUAL(loy_feat_slot_set(&c, name, 100 + i), 0);
        }
        CU_ASSERT_EQUAL(c.nslots, LOY_SLOTS_MAX);
        /* full: a new name fails, an existing one can still change */
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, "cool:winback", 1), -1);
        CU_ASSERT_EQUAL(loy_feat_field_parse(&c, "cool:winback", "1", 1), -1);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "cool:winback", -1), -1);
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, "off:topic:5", 555), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:topic:5", -1), 555);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, "off:topic:15", -1), 115);
        CU_ASSERT_EQUAL(c.nslots, LOY_SLOTS_MAX);

        /* names are never truncated */
        loy_feat_init(&c, "s");
        memset(name, 'n', LOY_SLOT_NAME_MAX);
        name[LOY_SLOT_NAME_MAX] = '\0';
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, name, 1), -1);
        name[LOY_SLOT_NAME_MAX - 1] = '\0';
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, name, 1), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&c, name, 0), 1);
        CU_ASSERT_EQUAL(loy_feat_slot_set(&c, "", 1), -1);
}

int main(void) {
        CU_pSuite s;

        loy_feat_conf_default(&conf);
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("features", NULL, NULL);
        if (!s || !CU_add_test(s, "conf defaults", test_conf_default) ||
            !CU_add_test(s, "civil dates", test_dates) ||
            !CU_add_test(s, "init", test_init) ||
            !CU_add_test(s, "purchase sequence", test_purchase_sequence) ||
            !CU_add_test(s, "zero value, points floor",
                         test_zero_value_and_points_floor) ||
            !CU_add_test(s, "decay", test_decay) ||
            !CU_add_test(s, "welford", test_welford) ||
            !CU_add_test(s, "browse", test_browse) ||
            !CU_add_test(s, "field coverage", test_field_coverage) ||
            !CU_add_test(s, "field find", test_field_find) ||
            !CU_add_test(s, "purchase kind", test_purchase_kind) ||
            !CU_add_test(s, "number format", test_fmt_double) ||
            !CU_add_test(s, "field round trip", test_field_roundtrip) ||
            !CU_add_test(s, "field format", test_field_format) ||
            !CU_add_test(s, "field parse", test_field_parse) ||
            !CU_add_test(s, "slots", test_slots) ||
            !CU_add_test(s, "event id window", test_event_window) ||
            !CU_add_test(s, "forget", test_forget)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
