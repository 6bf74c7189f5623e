/* loy_feat: see loy_feat.h. */
#include "loy_feat.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_hash.h"
#include "loy_rfm.h"

#define FEAT_FIELD(f) LOY_CM_FIELD(loy_feat_conf_t, f)
#define FEAT_KEY(...) LOY_CM_KEY(loy_feat_conf_t, __VA_ARGS__)

const loy_confmap_t loy_feat_conf_map[] = {
    FEAT_KEY("purchase.half_life.days", LOY_CM_DBL, purchase_half_life_days,
             "90", 0.01, 36500, "half-life of the decayed order counter"),
    FEAT_KEY("spend.half_life.days", LOY_CM_DBL, spend_half_life_days, "90",
             0.01, 36500, "half-life of the decayed spend counter"),
    FEAT_KEY("session.gap.min", LOY_CM_DBL, browse_session_gap_min, "30", 0.1,
             10080, "browse events further apart start a new session"),
    FEAT_KEY("points.per.unit", LOY_CM_DBL, points_per_unit, "1", 0, 1e6,
             "loyalty points per currency unit spent"),
    FEAT_KEY("tier.silver.points", LOY_CM_DBL, tier_silver_points, "500", 0,
             1e12, "points for silver"),
    FEAT_KEY("tier.gold.points", LOY_CM_DBL, tier_gold_points, "2000", 0, 1e12,
             "points for gold"),
    {0},
};

void loy_feat_conf_default(loy_feat_conf_t *conf) {
        char why[160];
        memset(conf, 0, sizeof(*conf));
        /* cannot fail: test_config applies every table */
        (void)loy_confmap_defaults(loy_feat_conf_map, conf, why, sizeof(why));
}

static const loy_feat_conf_t *conf_or_default(const loy_feat_conf_t *conf,
                                              loy_feat_conf_t *tmp) {
        if (conf)
                return conf;
        loy_feat_conf_default(tmp);
        return tmp;
}

void loy_feat_init(loy_cust_t *c, const char *id) {
        size_t n = id ? strnlen(id, LOY_ID_MAX) : 0;
        memset(c, 0, sizeof(*c));
        memcpy(c->id, id ? id : "", n);
        c->id[n] = '\0';
}

void loy_feat_forget(loy_cust_t *c, int64_t forget_ms) {
        loy_cust_t keep = *c;
        loy_feat_init(c, keep.id);
        c->forgotten_ms =
            keep.forgotten_ms > forget_ms ? keep.forgotten_ms : forget_ms;
        /* cooldowns (cool:) tell when the customer was rewarded: erased */
        for (int i = 0; i < keep.nslots; i++)
                if (!strncmp(keep.slots[i].name, "off:", 4))
                        c->slots[c->nslots++] = keep.slots[i];
}

int loy_feat_is_forgotten(const loy_cust_t *c) {
        return c->forgotten_ms > 0 && c->last_event_ms == 0;
}

int loy_feat_forget_covers(const loy_cust_t *c, const loy_event_t *ev) {
        return ev->kind != LOY_EV_FORGET && ev->ts_ms <= c->forgotten_ms;
}

/* ------------------------------------------------------------------ */
/* Event arithmetic                                                    */
/* ------------------------------------------------------------------ */

/* UTC day index; floor so that times before 1970 would still be right. */
static int64_t utc_day(int64_t ms) {
        int64_t d = ms / LOY_MS_PER_DAY;
        if (ms % LOY_MS_PER_DAY < 0)
                d--;
        return d;
}

/* 2^(-dt/hl): the weight of something dt ms old. hl <= 0 keeps no decay. */
static double decay(int64_t dt_ms, double half_life_days) {
        if (!(half_life_days > 0) || dt_ms == 0)
                return 1.0;
        return exp2(-(double)dt_ms / (half_life_days * (double)LOY_MS_PER_DAY));
}

static int tier_of(double points, const loy_feat_conf_t *conf) {
        if (points >= conf->tier_gold_points)
                return 2;
        if (points >= conf->tier_silver_points)
                return 1;
        return 0;
}

static void decayed_add(loy_cust_t *c, int64_t t, double spend,
                        const loy_feat_conf_t *conf) {
        if (c->dec_ref_ms == 0) {
                c->dec_purchases = 1;
                c->dec_spend = spend;
                c->dec_ref_ms = t;
        } else if (t >= c->dec_ref_ms) {
                int64_t dt = t - c->dec_ref_ms;
                c->dec_purchases =
                    c->dec_purchases *
                        decay(dt, conf->purchase_half_life_days) +
                    1;
                c->dec_spend =
                    c->dec_spend * decay(dt, conf->spend_half_life_days) +
                    spend;
                c->dec_ref_ms = t;
        } else {
                /* A late event: its weight is what it would have decayed
                 * to by the reference time. */
                int64_t dt = c->dec_ref_ms - t;
                c->dec_purchases += decay(dt, conf->purchase_half_life_days);
                c->dec_spend += spend * decay(dt, conf->spend_half_life_days);
        }
}

static void welford_add(loy_cust_t *c, double gap_days) {
        double delta;
        c->ipt_n++;
        delta = gap_days - c->ipt_mean_days;
        c->ipt_mean_days += delta / (double)c->ipt_n;
        c->ipt_m2 += delta * (gap_days - c->ipt_mean_days);
}

static void apply_order(loy_cust_t *c, int64_t t, double net,
                        const loy_feat_conf_t *conf) {
        int64_t day = utc_day(t);

        c->orders++;
        c->gross_value += net;
        c->points += net * conf->points_per_unit;
        c->tier = tier_of(c->points, conf);
        decayed_add(c, t, net, conf);

        if (c->first_purchase_ms == 0 || c->purchase_days == 0) {
                c->first_purchase_ms = t;
                c->last_purchase_ms = t;
                c->purchase_days = 1;
                c->first_day_value += net;
                return;
        }

        int64_t fday = utc_day(c->first_purchase_ms);
        int64_t lday = utc_day(c->last_purchase_ms);

        if (t >= c->last_purchase_ms) {
                if (day == lday) {
                        if (lday == fday)
                                c->first_day_value += net;
                } else {
                        c->purchase_days++;
                        welford_add(c, (double)(t - c->last_purchase_ms) /
                                           (double)LOY_MS_PER_DAY);
                }
                c->last_purchase_ms = t;
                return;
        }

        /* Out of order. The days between first and last are not stored,
         * so a day other than those two is taken as new, and no gap is
         * recorded: splitting an unknown gap in two would corrupt the
         * statistics. */
        if (day == fday) {
                c->first_day_value += net;
        } else if (day < fday) {
                /* A new first day: what was bought on the old one becomes
                 * repeat value. */
                c->purchase_days++;
                c->first_day_value = net;
        } else if (day != lday) {
                c->purchase_days++;
        }
        if (t < c->first_purchase_ms)
                c->first_purchase_ms = t;
}

static void apply_return(loy_cust_t *c, double net,
                         const loy_feat_conf_t *conf) {
        double value = -net;

        c->returns++;
        c->return_value += value;
        c->points -= value * conf->points_per_unit;
        if (c->points < 0)
                c->points = 0;
        c->tier = tier_of(c->points, conf);
}

static void push_recent_view(loy_cust_t *c, const char *sku) {
        int i;

        if (!sku[0])
                return;
        for (i = 0; i < LOY_RECENT_VIEWS - 1; i++)
                if (!strncmp(c->recent_views[i], sku, LOY_SKU_MAX))
                        break;
        /* i is now its old place, or the last one (dropped or itself). */
        memmove(c->recent_views[1], c->recent_views[0],
                (size_t)i * sizeof(c->recent_views[0]));
        size_t n = strnlen(sku, LOY_SKU_MAX);
        memcpy(c->recent_views[0], sku, n);
        c->recent_views[0][n] = '\0';
}

static void apply_browse(loy_cust_t *c, const loy_event_t *ev,
                         const loy_feat_conf_t *conf) {
        int64_t gap_ms = (int64_t)(conf->browse_session_gap_min * 60000.0);

        switch (ev->action) {
        case LOY_ACT_VIEW:
                c->views++;
                push_recent_view(c, ev->sku);
                break;
        case LOY_ACT_ADD_TO_CART:
                c->carts++;
                break;
        case LOY_ACT_REMOVE_FROM_CART:
                c->cart_removes++;
                break;
        case LOY_ACT_SEARCH:
                c->searches++;
                break;
        case LOY_ACT_WISHLIST:
                c->wishlists++;
                break;
        default:
                return; /* validation rejects these */
        }
        /* Session ids are not stored (they cost a field per customer and
         * differ between front ends): a silence longer than the gap opens
         * a new session. */
        if (c->last_browse_ms == 0 || ev->ts_ms - c->last_browse_ms > gap_ms)
                c->sessions++;
        if (ev->ts_ms > c->last_browse_ms)
                c->last_browse_ms = ev->ts_ms;
}

void loy_feat_apply(loy_cust_t *c, const loy_event_t *ev,
                    const loy_feat_conf_t *conf) {
        loy_feat_conf_t tmp;

        conf = conf_or_default(conf, &tmp);
        if (ev->kind == LOY_EV_PURCHASE) {
                double net = loy_event_net_value(ev);
                switch (loy_event_purchase_kind(ev)) {
                case LOY_PURCHASE_ORDER:
                        apply_order(c, ev->ts_ms, net, conf);
                        break;
                case LOY_PURCHASE_RETURN:
                        apply_return(c, net, conf);
                        break;
                case LOY_PURCHASE_NONE:
                        break;
                }
        } else if (ev->kind == LOY_EV_BROWSE) {
                apply_browse(c, ev, conf);
        } else {
                return;
        }
        if (ev->ts_ms > c->last_event_ms)
                c->last_event_ms = ev->ts_ms;
}

/* ------------------------------------------------------------------ */
/* Derived values                                                      */
/* ------------------------------------------------------------------ */

static double days_between(int64_t from, int64_t to) {
        if (to <= from)
                return 0;
        return (double)(to - from) / (double)LOY_MS_PER_DAY;
}

double loy_feat_recency_days(const loy_cust_t *c, int64_t now_ms) {
        if (c->first_purchase_ms == 0)
                return 0;
        return days_between(c->last_purchase_ms, now_ms);
}

double loy_feat_age_days(const loy_cust_t *c, int64_t now_ms) {
        if (c->first_purchase_ms == 0)
                return 0;
        return days_between(c->first_purchase_ms, now_ms);
}

double loy_feat_tx_days(const loy_cust_t *c) {
        if (c->first_purchase_ms == 0)
                return 0;
        return days_between(c->first_purchase_ms, c->last_purchase_ms);
}

int64_t loy_feat_repeats(const loy_cust_t *c) {
        return c->purchase_days > 1 ? c->purchase_days - 1 : 0;
}

double loy_feat_monetary(const loy_cust_t *c) {
        return c->gross_value - c->return_value;
}

double loy_feat_aov(const loy_cust_t *c) {
        return c->orders > 0 ? c->gross_value / (double)c->orders : 0;
}

double loy_feat_mean_repeat_value(const loy_cust_t *c) {
        int64_t x = loy_feat_repeats(c);
        if (x <= 0)
                return 0;
        return (c->gross_value - c->first_day_value) / (double)x;
}

double loy_feat_ipt_var_days(const loy_cust_t *c) {
        if (c->ipt_n < 2)
                return 0;
        return c->ipt_m2 / (double)(c->ipt_n - 1);
}

double loy_feat_dec_purchases(const loy_cust_t *c, int64_t now_ms,
                              const loy_feat_conf_t *conf) {
        loy_feat_conf_t tmp;

        conf = conf_or_default(conf, &tmp);
        if (c->dec_ref_ms == 0 || now_ms <= c->dec_ref_ms)
                return c->dec_purchases;
        return c->dec_purchases *
               decay(now_ms - c->dec_ref_ms, conf->purchase_half_life_days);
}

double loy_feat_dec_spend(const loy_cust_t *c, int64_t now_ms,
                          const loy_feat_conf_t *conf) {
        loy_feat_conf_t tmp;

        conf = conf_or_default(conf, &tmp);
        if (c->dec_ref_ms == 0 || now_ms <= c->dec_ref_ms)
                return c->dec_spend;
        return c->dec_spend *
               decay(now_ms - c->dec_ref_ms, conf->spend_half_life_days);
}

const char *loy_feat_tier_name(int tier) {
        static const char *const names[] = {"bronze", "silver", "gold"};
        if (tier < 0 || tier > 2)
                return "unknown";
        return names[tier];
}

static int tier_parse(const char *name) {
        for (int i = 0; i < 3; i++)
                if (!strcmp(name, loy_feat_tier_name(i)))
                        return i;
        return -1;
}

/* ------------------------------------------------------------------ */
/* Slots                                                               */
/* ------------------------------------------------------------------ */

static loy_slot_t *slot_find(const loy_cust_t *c, const char *name) {
        for (int i = 0; i < c->nslots && i < LOY_SLOTS_MAX; i++)
                if (!strcmp(c->slots[i].name, name))
                        return (loy_slot_t *)&c->slots[i];
        return NULL;
}

uint64_t loy_feat_event_key(const char *event_id) {
        return loy_hash64_str(event_id);
}

int loy_feat_event_seen(const loy_cust_t *c, uint64_t key) {
        for (int i = 0; i < c->recent_events.n; i++)
                if (c->recent_events.key[i] == key)
                        return 1;
        return 0;
}

void loy_feat_event_note(loy_cust_t *c, uint64_t key) {
        loy_event_keys_t *k = &c->recent_events;
        int n = k->n < LOY_RECENT_EVENTS ? k->n : LOY_RECENT_EVENTS - 1;
        memmove(&k->key[1], &k->key[0], (size_t)n * sizeof(k->key[0]));
        k->key[0] = key;
        k->n = n + 1;
}

int64_t loy_feat_slot_get(const loy_cust_t *c, const char *name, int64_t def) {
        const loy_slot_t *s = slot_find(c, name);
        return s ? s->value : def;
}

int loy_feat_slot_set(loy_cust_t *c, const char *name, int64_t value) {
        size_t n = strlen(name);
        loy_slot_t *s;

        if (n == 0 || n >= LOY_SLOT_NAME_MAX)
                return -1;
        s = slot_find(c, name);
        if (!s) {
                if (c->nslots >= LOY_SLOTS_MAX)
                        return -1;
                s = &c->slots[c->nslots++];
                memcpy(s->name, name, n + 1);
        }
        s->value = value;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Field table                                                         */
/* ------------------------------------------------------------------ */

/* Ids of the derived fields, kept in their offset member. */
enum {
        D_RECENCY,
        D_T,
        D_TX,
        D_X,
        D_MONETARY,
        D_AOV,
        D_MEAN_REPEAT,
        D_IPT_VAR,
        D_DEC_PURCHASES,
        D_DEC_SPEND,
        D_TIER_NAME,
        D_SEGMENT_NAME,
        D_GROUP_NAME,
};

/* Table rows, so that the name index below survives reordering. */
enum {
        F_FIRST_PURCHASE_MS,
        F_LAST_PURCHASE_MS,
        F_ORDERS,
        F_FREQUENCY,
        F_GROSS_VALUE,
        F_FIRST_DAY_VALUE,
        F_RETURNS,
        F_RETURN_VALUE,
        F_IPT_MEAN_DAYS,
        F_IPT_M2,
        F_IPT_N,
        F_DEC_PURCHASES,
        F_DEC_SPEND,
        F_DEC_REF_MS,
        F_POINTS,
        F_TIER,
        F_VIEWS,
        F_CARTS,
        F_CART_REMOVES,
        F_SEARCHES,
        F_WISHLISTS,
        F_SESSIONS,
        F_LAST_BROWSE_MS,
        F_RECENT_VIEWS,
        F_LAST_EVENT_MS,
        F_P_ALIVE,
        F_CHURN_PROB,
        F_EXP_PURCHASES,
        F_CLV,
        F_R_SCORE,
        F_F_SCORE,
        F_M_SCORE,
        F_LOYALTY_SCORE,
        F_LOYALTY_GROUP,
        F_SEGMENT,
        F_SCORED_MS,
        F_NEXT_CHECK_MS,
        F_RECENCY_DAYS,
        F_T_DAYS,
        F_T_X_DAYS,
        F_X,
        F_MONETARY,
        F_AOV,
        F_MEAN_REPEAT_VALUE,
        F_IPT_VAR_DAYS,
        F_DEC_PURCHASES_NOW,
        F_DEC_SPEND_NOW,
        F_TIER_NAME,
        F_SEGMENT_NAME,
        F_LOYALTY_GROUP_NAME,
        /* stored fields added later go here: the packed state keeps the
         * table order */
        F_RECENT_EVENT_KEYS,
        F_FORGOTTEN_MS,
        F__COUNT
};

#define FLD(id, nm, ty, member, un, dc)                                        \
        [id] = {nm, ty, offsetof(loy_cust_t, member), un, dc, 0}
#define DER(id, nm, did, un, dc) [id] = {nm, LOY_FT_DERIVED, did, un, dc, 0}
/* the same, also in the hash's readable view */
#define FLDV(id, nm, ty, member, un, dc)                                       \
        [id] = {nm, ty, offsetof(loy_cust_t, member), un, dc, 1}
#define DERV(id, nm, did, un, dc) [id] = {nm, LOY_FT_DERIVED, did, un, dc, 1}

const loy_field_t loy_feat_fields[F__COUNT + 1] = {
    FLDV(F_FIRST_PURCHASE_MS, "first_purchase_ms", LOY_FT_I64,
         first_purchase_ms, "ms", "time of the first order (0: none)"),
    FLDV(F_LAST_PURCHASE_MS, "last_purchase_ms", LOY_FT_I64, last_purchase_ms,
         "ms", "time of the newest order"),
    FLDV(F_ORDERS, "orders", LOY_FT_I64, orders, "count",
         "purchase events with a positive net value"),
    FLDV(F_FREQUENCY, "frequency", LOY_FT_I64, purchase_days, "days",
         "distinct UTC days with an order"),
    FLD(F_GROSS_VALUE, "gross_value", LOY_FT_DBL, gross_value, "currency",
        "sum of order values"),
    FLD(F_FIRST_DAY_VALUE, "first_day_value", LOY_FT_DBL, first_day_value,
        "currency", "value ordered on the first day"),
    FLDV(F_RETURNS, "returns", LOY_FT_I64, returns, "count", "return events"),
    FLD(F_RETURN_VALUE, "return_value", LOY_FT_DBL, return_value, "currency",
        "value given back"),
    FLD(F_IPT_MEAN_DAYS, "ipt_mean_days", LOY_FT_DBL, ipt_mean_days, "days",
        "mean gap between purchase days"),
    FLD(F_IPT_M2, "ipt_m2", LOY_FT_DBL, ipt_m2, "days^2",
        "Welford sum of squared deviations of the gaps"),
    FLD(F_IPT_N, "ipt_n", LOY_FT_I64, ipt_n, "count", "gaps in ipt_mean_days"),
    FLD(F_DEC_PURCHASES, "dec_purchases", LOY_FT_DBL, dec_purchases, "count",
        "decayed order count at dec_ref_ms"),
    FLD(F_DEC_SPEND, "dec_spend", LOY_FT_DBL, dec_spend, "currency",
        "decayed spend at dec_ref_ms"),
    FLD(F_DEC_REF_MS, "dec_ref_ms", LOY_FT_I64, dec_ref_ms, "ms",
        "reference time of the decayed counters"),
    FLDV(F_POINTS, "points", LOY_FT_DBL, points, "points",
         "loyalty points balance"),
    FLD(F_TIER, "tier", LOY_FT_INT, tier, "0..2", "0 bronze, 1 silver, 2 gold"),
    FLD(F_VIEWS, "views", LOY_FT_I64, views, "count", "product views"),
    FLD(F_CARTS, "carts", LOY_FT_I64, carts, "count", "adds to cart"),
    FLD(F_CART_REMOVES, "cart_removes", LOY_FT_I64, cart_removes, "count",
        "removals from cart"),
    FLD(F_SEARCHES, "searches", LOY_FT_I64, searches, "count", "searches"),
    FLD(F_WISHLISTS, "wishlists", LOY_FT_I64, wishlists, "count",
        "adds to wishlist"),
    FLD(F_SESSIONS, "sessions", LOY_FT_I64, sessions, "count",
        "browse sessions (split by silence)"),
    FLD(F_LAST_BROWSE_MS, "last_browse_ms", LOY_FT_I64, last_browse_ms, "ms",
        "time of the newest browse event"),
    FLD(F_RECENT_VIEWS, "recent_views", LOY_FT_STR, recent_views, "skus",
        "last viewed skus, comma-separated, newest first"),
    FLDV(F_LAST_EVENT_MS, "last_event_ms", LOY_FT_I64, last_event_ms, "ms",
         "time of the newest event applied"),
    FLDV(F_P_ALIVE, "p_alive", LOY_FT_DBL, p_alive, "probability",
         "probability the customer is still active"),
    FLDV(F_CHURN_PROB, "churn_prob", LOY_FT_DBL, churn_prob, "probability",
         "churn probability"),
    FLDV(F_EXP_PURCHASES, "exp_purchases", LOY_FT_DBL, exp_purchases, "count",
         "expected purchases over the horizon"),
    FLDV(F_CLV, "clv", LOY_FT_DBL, clv, "currency", "customer lifetime value"),
    FLDV(F_R_SCORE, "r_score", LOY_FT_INT, r_score, "1..5",
         "recency score (0: not scored)"),
    FLDV(F_F_SCORE, "f_score", LOY_FT_INT, f_score, "1..5", "frequency score"),
    FLDV(F_M_SCORE, "m_score", LOY_FT_INT, m_score, "1..5", "monetary score"),
    FLD(F_LOYALTY_SCORE, "loyalty_score", LOY_FT_DBL, loyalty_score, "1..5",
        "weighted mean of the R, F, M scores"),
    FLD(F_LOYALTY_GROUP, "loyalty_group", LOY_FT_INT, loyalty_group, "0..3",
        "0 low, 1 medium, 2 high, 3 very high"),
    FLD(F_SEGMENT, "segment", LOY_FT_INT, segment, "id",
        "RFM segment number (segment_name has its name)"),
    FLD(F_SCORED_MS, "scored_ms", LOY_FT_I64, scored_ms, "ms",
        "event time of the last scoring"),
    FLDV(F_NEXT_CHECK_MS, "next_check_ms", LOY_FT_I64, next_check_ms, "ms",
         "due time of the silence timer (0: none)"),
    DERV(F_RECENCY_DAYS, "recency_days", D_RECENCY, "days",
         "days since the last order"),
    DER(F_T_DAYS, "T_days", D_T, "days", "days since the first order"),
    DER(F_T_X_DAYS, "t_x_days", D_TX, "days",
        "days from the first to the last order"),
    DER(F_X, "x", D_X, "count", "repeat purchase days"),
    DERV(F_MONETARY, "monetary", D_MONETARY, "currency",
         "net spend (gross minus returns)"),
    DERV(F_AOV, "aov", D_AOV, "currency", "average order value"),
    DER(F_MEAN_REPEAT_VALUE, "mean_repeat_value", D_MEAN_REPEAT, "currency",
        "mean value per repeat purchase day"),
    DER(F_IPT_VAR_DAYS, "ipt_var_days", D_IPT_VAR, "days^2",
        "sample variance of the gaps between purchase days"),
    DER(F_DEC_PURCHASES_NOW, "dec_purchases_now", D_DEC_PURCHASES, "count",
        "decayed order count now"),
    DER(F_DEC_SPEND_NOW, "dec_spend_now", D_DEC_SPEND, "currency",
        "decayed spend now"),
    DERV(F_TIER_NAME, "tier_name", D_TIER_NAME, "name",
         "bronze, silver or gold"),
    DERV(F_SEGMENT_NAME, "segment_name", D_SEGMENT_NAME, "name", "RFM segment"),
    DER(F_LOYALTY_GROUP_NAME, "loyalty_group_name", D_GROUP_NAME, "name",
        "low, medium, high or very_high"),
    FLD(F_RECENT_EVENT_KEYS, "recent_event_keys", LOY_FT_KEYS, recent_events,
        "keys",
        "keys of the last 16 event ids applied, newest first: the same "
        "event_id again is not applied twice"),
    FLD(F_FORGOTTEN_MS, "forgotten_ms", LOY_FT_I64, forgotten_ms, "ms",
        "erased by loyaltyctl forget up to this time: its events up to "
        "it are dropped (0: never)"),
    [F__COUNT] = {NULL, 0, 0, NULL, NULL, 0},
};

/* Rows by name in strcmp order, for a binary search: loads parse every
 * field of every customer. test_features checks the order. */
static const unsigned char by_name[F__COUNT] = {
    F_T_DAYS,
    F_AOV,
    F_CART_REMOVES,
    F_CARTS,
    F_CHURN_PROB,
    F_CLV,
    F_DEC_PURCHASES,
    F_DEC_PURCHASES_NOW,
    F_DEC_REF_MS,
    F_DEC_SPEND,
    F_DEC_SPEND_NOW,
    F_EXP_PURCHASES,
    F_F_SCORE,
    F_FIRST_DAY_VALUE,
    F_FIRST_PURCHASE_MS,
    F_FORGOTTEN_MS,
    F_FREQUENCY,
    F_GROSS_VALUE,
    F_IPT_M2,
    F_IPT_MEAN_DAYS,
    F_IPT_N,
    F_IPT_VAR_DAYS,
    F_LAST_BROWSE_MS,
    F_LAST_EVENT_MS,
    F_LAST_PURCHASE_MS,
    F_LOYALTY_GROUP,
    F_LOYALTY_GROUP_NAME,
    F_LOYALTY_SCORE,
    F_M_SCORE,
    F_MEAN_REPEAT_VALUE,
    F_MONETARY,
    F_NEXT_CHECK_MS,
    F_ORDERS,
    F_P_ALIVE,
    F_POINTS,
    F_R_SCORE,
    F_RECENCY_DAYS,
    F_RECENT_EVENT_KEYS,
    F_RECENT_VIEWS,
    F_RETURN_VALUE,
    F_RETURNS,
    F_SCORED_MS,
    F_SEARCHES,
    F_SEGMENT,
    F_SEGMENT_NAME,
    F_SESSIONS,
    F_T_X_DAYS,
    F_TIER,
    F_TIER_NAME,
    F_VIEWS,
    F_WISHLISTS,
    F_X,
};

_Static_assert(sizeof(by_name) == F__COUNT, "by_name covers every row");

const loy_field_t *loy_feat_field_find(const char *name) {
        int lo = 0, hi = F__COUNT - 1;

        while (lo <= hi) {
                int mid = lo + (hi - lo) / 2;
                const loy_field_t *f = &loy_feat_fields[by_name[mid]];
                int cmp = strcmp(name, f->name);
                if (cmp == 0)
                        return f;
                if (cmp < 0)
                        hi = mid - 1;
                else
                        lo = mid + 1;
        }
        return NULL;
}

#define AT(c, f, type) ((type *)((char *)(c) + (f)->offset))
#define AT_C(c, f, type) ((const type *)((const char *)(c) + (f)->offset))

static double derived(const loy_cust_t *c, size_t id, int64_t now,
                      const loy_feat_conf_t *conf) {
        switch (id) {
        case D_RECENCY:
                return loy_feat_recency_days(c, now);
        case D_T:
                return loy_feat_age_days(c, now);
        case D_TX:
                return loy_feat_tx_days(c);
        case D_X:
                return (double)loy_feat_repeats(c);
        case D_MONETARY:
                return loy_feat_monetary(c);
        case D_AOV:
                return loy_feat_aov(c);
        case D_MEAN_REPEAT:
                return loy_feat_mean_repeat_value(c);
        case D_IPT_VAR:
                return loy_feat_ipt_var_days(c);
        case D_DEC_PURCHASES:
                return loy_feat_dec_purchases(c, now, conf);
        case D_DEC_SPEND:
                return loy_feat_dec_spend(c, now, conf);
        case D_TIER_NAME:
                return c->tier;
        case D_SEGMENT_NAME:
                return c->segment;
        case D_GROUP_NAME:
                return c->loyalty_group;
        }
        return NAN;
}

double loy_feat_field_number(const loy_cust_t *c, const loy_field_t *f,
                             int64_t now_ms, const loy_feat_conf_t *conf) {
        switch (f->type) {
        case LOY_FT_I64:
                return (double)*AT_C(c, f, int64_t);
        case LOY_FT_INT:
                return *AT_C(c, f, int);
        case LOY_FT_DBL:
                return *AT_C(c, f, double);
        case LOY_FT_DERIVED:
                return derived(c, f->offset, now_ms, conf);
        case LOY_FT_STR:
        case LOY_FT_KEYS:
                break;
        }
        return NAN;
}

static int fit(int n, size_t size) {
        return n < 0 || (size_t)n >= size ? -1 : n;
}

int loy_fmt_i64(char *buf, size_t size, int64_t v) {
        char tmp[24];
        char *q = tmp + sizeof(tmp);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        size_t n;
        do {
                *--q = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--q = '-';
        n = (size_t)(tmp + sizeof(tmp) - q);
        if (n >= size)
                return -1;
        memcpy(buf, q, n);
        buf[n] = '\0';
        return (int)n;
}

/* r / 10^k written out, r exact (|r| < 2^53), 1 <= k <= 22. */
static int fmt_fixed(char *buf, size_t size, int64_t r, int k) {
        char digits[40];
        int n = loy_fmt_i64(digits, sizeof(digits), r < 0 ? -r : r);
        size_t len = 0;
        /* sign, the digits or "0." and k of them, the NUL */
        if (n < 0 || size < (size_t)(r < 0) +
                                (n <= k ? (size_t)k + 2 : (size_t)n + 1) + 1)
                return -1;
        if (r < 0)
                buf[len++] = '-';
        if (n <= k) {
                buf[len++] = '0';
                buf[len++] = '.';
                memset(buf + len, '0', (size_t)(k - n));
                len += (size_t)(k - n);
                memcpy(buf + len, digits, (size_t)n);
                len += (size_t)n;
        } else {
                memcpy(buf + len, digits, (size_t)(n - k));
                len += (size_t)(n - k);
                buf[len++] = '.';
                memcpy(buf + len, digits + n - k, (size_t)k);
                len += (size_t)k;
        }
        /* k was the first that reads back: no trailing zero to drop */
        buf[len] = '\0';
        return (int)len;
}

int loy_fmt_float(char *buf, size_t size, float v) {
        static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4,
                                       1e5, 1e6, 1e7, 1e8, 1e9};
        double d = v == 0 ? 0 : (double)v;
        int n;
        if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
                return loy_fmt_i64(buf, size, (int64_t)d);
        /* as loy_fmt_double, to float precision: the reader parses a
         * double and rounds it to float, which is what is checked */
        for (int k = 1; isfinite(d) && k <= 9; k++) {
                double scaled = d * pow10[k], r;
                if (fabs(scaled) >= 9007199254740992.0)
                        break;
                r = nearbyint(scaled);
                if ((float)(r / pow10[k]) == v)
                        return fmt_fixed(buf, size, (int64_t)r, k);
        }
        n = snprintf(buf, size, "%.9g", d);
        return fit(n, size);
}

int loy_fmt_double(char *buf, size_t size, double v) {
        static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                       1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                       1e18, 1e19, 1e20, 1e21, 1e22};
        char tmp[40];
        int n;
        /* -0 reads badly on a dashboard. */
        if (v == 0)
                v = 0;
        /* integers as integers, so counts stay readable */
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
                return loy_fmt_i64(buf, size, (int64_t)v);
        /* The fewest decimals k whose r / 10^k reads back as v. IEEE
         * division is correctly rounded, as strtod is, so fl(r / 10^k) == v
         * is exactly "the text reads back as v"; no snprintf on the hot
         * path for the money amounts and ratios most fields hold. */
        for (int k = 1; k <= 22; k++) {
                double scaled = v * pow10[k];
                double r;
                if (fabs(scaled) >= 9007199254740992.0)
                        break;
                r = nearbyint(scaled);
                if (r / pow10[k] == v)
                        return fmt_fixed(buf, size, (int64_t)r, k);
        }
        /* The loop tried every fixed-point text of up to ~15.9 significant
         * digits, so in the usual range what is left needs 17 (scores,
         * CLV): one snprintf. Magnitudes that need an exponent are rare:
         * the shortest of %.15g .. %.17g that reads back. */
        if (fabs(v) >= 1e-7 && fabs(v) < 9007199254740992.0) {
                n = snprintf(tmp, sizeof(tmp), "%.17g", v);
        } else {
                n = snprintf(tmp, sizeof(tmp), "%.15g", v);
                if (strtod(tmp, NULL) != v)
                        n = snprintf(tmp, sizeof(tmp), "%.16g", v);
                if (strtod(tmp, NULL) != v)
                        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
        }
        if (n < 0 || (size_t)n >= size)
                return -1;
        memcpy(buf, tmp, (size_t)n + 1);
        return n;
}

static int format_double(double v, char *buf, size_t size) {
        return loy_fmt_double(buf, size, v);
}

/* The readable view's doubles: 10 significant digits. The engine reads
 * its exact state from the packed field, so this text is for people; and a
 * 10-digit value takes loy_fmt_double's fixed-point path instead of a
 * 17-digit snprintf (most of a customer write's formatting time). */
static int format_double10(double v, char *buf, size_t size) {
        static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                       1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                       1e18, 1e19, 1e20, 1e21, 1e22};
        double a = fabs(v);
        int e = 0;
        if (!isfinite(v) || a == 0 || a >= 1e22 || a < 1e-12)
                return loy_fmt_double(buf, size, v);
        /* e: the decimal exponent of v's first digit */
        if (a >= 1) {
                while (e < 22 && a >= pow10[e + 1])
                        e++;
        } else {
                while (e > -12 && a < 1 / pow10[-e])
                        e--;
        }
        if (e <= 9) {
                double scale = pow10[9 - e];
                v = nearbyint(v * scale) / scale;
        } else {
                double scale = pow10[e - 9];
                v = nearbyint(v / scale) * scale;
        }
        return loy_fmt_double(buf, size, v);
}

/* Comma-separated, newest first; ',' and '%' escaped so any sku survives. */
static int format_keys(const loy_cust_t *c, char *buf, size_t size) {
        size_t len = 0;
        if (!size)
                return -1;
        buf[0] = '\0';
        for (int i = 0; i < c->recent_events.n; i++) {
                int n = snprintf(buf + len, size - len, "%s%016" PRIx64,
                                 i ? "," : "", c->recent_events.key[i]);
                if (n < 0 || (size_t)n >= size - len)
                        return -1;
                len += (size_t)n;
        }
        return (int)len;
}

static int format_views(const loy_cust_t *c, char *buf, size_t size) {
        size_t n = 0;

        if (size == 0)
                return -1;
        for (int i = 0; i < LOY_RECENT_VIEWS && c->recent_views[i][0]; i++) {
                const char *s = c->recent_views[i];
                if (i > 0) {
                        if (n + 1 >= size)
                                return -1;
                        buf[n++] = ',';
                }
                for (size_t k = 0; k < LOY_SKU_MAX && s[k]; k++) {
                        const char *esc = s[k] == ','   ? "%2C"
                                          : s[k] == '%' ? "%25"
                                                        : NULL;
                        size_t len = esc ? 3 : 1;
                        if (n + len >= size)
                                return -1;
                        if (esc)
                                memcpy(buf + n, esc, 3);
                        else
                                buf[n] = s[k];
                        n += len;
                }
        }
        buf[n] = '\0';
        return (int)n;
}

static const char *name_of(const loy_cust_t *c, size_t id) {
        if (id == D_TIER_NAME)
                return loy_feat_tier_name(c->tier);
        if (id == D_SEGMENT_NAME)
                return loy_segment_name(c->segment);
        return loy_loyalty_group_name(c->loyalty_group);
}

static int field_format(const loy_cust_t *c, const loy_field_t *f,
                        int64_t now_ms, const loy_feat_conf_t *conf, char *buf,
                        size_t size, int view) {
        int (*fmt_dbl)(double, char *, size_t) =
            view ? format_double10 : format_double;
        switch (f->type) {
        case LOY_FT_I64:
                return loy_fmt_i64(buf, size, *AT_C(c, f, int64_t));
        case LOY_FT_INT:
                return loy_fmt_i64(buf, size, *AT_C(c, f, int));
        case LOY_FT_DBL:
                return fmt_dbl(*AT_C(c, f, double), buf, size);
        case LOY_FT_STR:
                return format_views(c, buf, size);
        case LOY_FT_KEYS:
                return format_keys(c, buf, size);
        case LOY_FT_DERIVED:
                break;
        }
        switch (f->offset) {
        case D_X:
                return loy_fmt_i64(buf, size, loy_feat_repeats(c));
        case D_TIER_NAME:
        case D_SEGMENT_NAME:
        case D_GROUP_NAME:
                return fit(snprintf(buf, size, "%s", name_of(c, f->offset)),
                           size);
        default:
                return fmt_dbl(derived(c, f->offset, now_ms, conf), buf, size);
        }
}

int loy_feat_field_format(const loy_cust_t *c, const loy_field_t *f,
                          int64_t now_ms, const loy_feat_conf_t *conf,
                          char *buf, size_t size) {
        return field_format(c, f, now_ms, conf, buf, size, 0);
}

int loy_feat_field_format_view(const loy_cust_t *c, const loy_field_t *f,
                               int64_t now_ms, const loy_feat_conf_t *conf,
                               char *buf, size_t size) {
        return field_format(c, f, now_ms, conf, buf, size, 1);
}

/* Copies a counted value into a NUL-terminated buffer; -1 if too long. */
static int copy_value(const char *value, size_t len, char *buf, size_t size) {
        if (len == 0 || len >= size)
                return -1;
        memcpy(buf, value, len);
        buf[len] = '\0';
        return 0;
}

static int parse_i64(const char *value, size_t len, int64_t *out) {
        char buf[32], *end;
        long long v;

        if (copy_value(value, len, buf, sizeof(buf)) < 0)
                return -1;
        errno = 0;
        v = strtoll(buf, &end, 10);
        if (errno || *end || end == buf)
                return -1;
        *out = v;
        return 0;
}

static int parse_double(const char *value, size_t len, double *out) {
        char buf[64], *end;
        double v;

        if (copy_value(value, len, buf, sizeof(buf)) < 0)
                return -1;
        errno = 0;
        v = strtod(buf, &end);
        /* ERANGE on underflow still gives a usable tiny value */
        if (*end || end == buf || (errno == ERANGE && isinf(v)))
                return -1;
        *out = v;
        return 0;
}

/* segment, loyalty_group and tier are numbers, but a name typed by hand
 * with redis-cli is understood too. */
static int parse_int_field(const loy_field_t *f, const char *value, size_t len,
                           int *out) {
        int64_t v;
        char buf[32];
        int named;

        if (parse_i64(value, len, &v) == 0) {
                if (v < -2147483647LL - 1 || v > 2147483647LL)
                        return -1;
                *out = (int)v;
                return 0;
        }
        if (copy_value(value, len, buf, sizeof(buf)) < 0)
                return -1;
        if (f->offset == offsetof(loy_cust_t, segment))
                named = loy_segment_parse(buf);
        else if (f->offset == offsetof(loy_cust_t, loyalty_group))
                named = loy_loyalty_group_parse(buf);
        else if (f->offset == offsetof(loy_cust_t, tier))
                named = tier_parse(buf);
        else
                named = -1;
        if (named < 0)
                return -1;
        *out = named;
        return 0;
}

static int unhex(int ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

static int parse_keys(loy_cust_t *c, const char *value, size_t len) {
        loy_event_keys_t k = {{0}, 0};
        size_t at = 0;
        while (at < len) {
                uint64_t v = 0;
                size_t d = 0;
                if (k.n == LOY_RECENT_EVENTS)
                        return -1;
                for (; at < len && value[at] != ','; at++, d++) {
                        char ch = value[at];
                        int x = ch >= '0' && ch <= '9'   ? ch - '0'
                                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                                         : -1;
                        if (x < 0 || d >= 16)
                                return -1;
                        v = v << 4 | (uint64_t)x;
                }
                if (d != 16)
                        return -1;
                k.key[k.n++] = v;
                if (at < len && ++at == len)
                        return -1; /* a trailing comma */
        }
        c->recent_events = k;
        return 0;
}

static int parse_views(loy_cust_t *c, const char *value, size_t len) {
        char views[LOY_RECENT_VIEWS][LOY_SKU_MAX + 1];
        int nv = 0;
        size_t i = 0;

        memset(views, 0, sizeof(views));
        while (i < len) {
                char sku[LOY_SKU_MAX + 1];
                size_t n = 0;
                for (; i < len && value[i] != ','; i++) {
                        int ch = (unsigned char)value[i];
                        if (ch == '%') {
                                int hi, lo;
                                if (i + 2 >= len)
                                        return -1;
                                hi = unhex(value[i + 1]);
                                lo = unhex(value[i + 2]);
                                if (hi < 0 || lo < 0)
                                        return -1;
                                ch = hi * 16 + lo;
                                i += 2;
                        }
                        if (ch == 0 || n >= LOY_SKU_MAX)
                                return -1;
                        sku[n++] = (char)ch;
                }
                i++; /* the comma */
                sku[n] = '\0';
                /* Extra entries come from a build keeping more: drop them. */
                if (n > 0 && nv < LOY_RECENT_VIEWS)
                        memcpy(views[nv++], sku, n + 1);
        }
        memcpy(c->recent_views, views, sizeof(views));
        return 0;
}

int loy_feat_field_parse(loy_cust_t *c, const char *name, const char *value,
                         size_t value_len) {
        const loy_field_t *f;

        if (!strncmp(name, "off:", 4) || !strncmp(name, "cool:", 5) ||
            !strncmp(name, "conv:", 5)) {
                int64_t v;
                if (parse_i64(value, value_len, &v) < 0)
                        return -1;
                return loy_feat_slot_set(c, name, v);
        }
        f = loy_feat_field_find(name);
        if (!f)
                return 0;
        switch (f->type) {
        case LOY_FT_I64:
                return parse_i64(value, value_len, AT(c, f, int64_t));
        case LOY_FT_INT:
                return parse_int_field(f, value, value_len, AT(c, f, int));
        case LOY_FT_DBL:
                return parse_double(value, value_len, AT(c, f, double));
        case LOY_FT_STR:
                return parse_views(c, value, value_len);
        case LOY_FT_KEYS:
                return parse_keys(c, value, value_len);
        case LOY_FT_DERIVED:
                break;
        }
        return 0;
}
