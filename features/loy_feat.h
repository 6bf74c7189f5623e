/*
 * loy_feat: one customer's rolling features, updated event by event.
 *
 * Pure arithmetic: no I/O. The state store turns a loy_cust_t into the Redis
 * hash loy:c:{<cid>} and back through the field table below, so the table is
 * the single description of that public hash (docs/redis-keys.md lists it).
 */
#ifndef LOY_FEAT_H
#define LOY_FEAT_H

#include <stddef.h>
#include <stdint.h>

#include "../config/loy_confmap.h"
#include "loy_event.h"

#define LOY_RECENT_VIEWS 5 /* last viewed skus kept per customer */
/* Event ids remembered per customer: the same event_id again (a producer
 * that retried, a copy on another offset) within the last this many of
 * the customer's events is not applied twice. */
#define LOY_RECENT_EVENTS 16
#define LOY_SLOTS_MAX 16 /* named int64 slots (offsets, cooldowns) */
#define LOY_SLOT_NAME_MAX 96

#define LOY_MS_PER_DAY 86400000LL

/* Half-lives of the decayed counters, in days (<= 0: no decay). */
typedef struct loy_feat_conf {
        double purchase_half_life_days;
        double spend_half_life_days;
        double browse_session_gap_min; /* a new browse session after this */
        double points_per_unit;        /* loyalty points per unit spent */
        double tier_silver_points;
        double tier_gold_points;
} loy_feat_conf_t;

/* The [features] settings: names, defaults, bounds, docs. */
extern const loy_confmap_t loy_feat_conf_map[];

/* Every field from loy_feat_conf_map's defaults. */
void loy_feat_conf_default(loy_feat_conf_t *conf);

/* A named int64 kept in the customer hash under its own field name:
 * "off:<topic>:<partition>" (last applied offset) and "cool:<rule>" (last
 * time a rule fired, ms). */
typedef struct loy_slot {
        char name[LOY_SLOT_NAME_MAX];
        int64_t value;
} loy_slot_t;

/* Keys (loy_feat_event_key) of the event ids applied last, newest first. */
typedef struct loy_event_keys {
        uint64_t key[LOY_RECENT_EVENTS];
        int n;
} loy_event_keys_t;

typedef struct loy_cust {
        char id[LOY_ID_MAX + 1];

        /* purchases (net of returns where it says so) */
        int64_t first_purchase_ms; /* 0 = never bought */
        int64_t last_purchase_ms;
        int64_t orders;         /* purchase events with a positive value */
        int64_t purchase_days;  /* distinct UTC days with an order */
        double gross_value;     /* sum of positive order values */
        double first_day_value; /* value bought on the first day */
        int64_t returns;        /* return events */
        double return_value;    /* value given back, >= 0 */
        double ipt_mean_days;   /* mean gap between purchase days */
        double ipt_m2;          /* Welford sum of squares of the gaps */
        int64_t ipt_n;          /* gaps in the mean: out-of-order
                                 * purchases add a day but no gap */
        double dec_purchases;   /* decayed order count at dec_ref_ms */
        double dec_spend;       /* decayed spend at dec_ref_ms */
        int64_t dec_ref_ms;
        double points;
        int tier; /* 0 bronze, 1 silver, 2 gold */

        /* browse */
        int64_t views, carts, cart_removes, searches, wishlists;
        int64_t sessions;
        int64_t last_browse_ms;
        char recent_views[LOY_RECENT_VIEWS][LOY_SKU_MAX + 1]; /* newest first */

        int64_t last_event_ms; /* newest event time applied */

        /* scores, written by the scorer */
        double p_alive;
        double churn_prob;
        double exp_purchases; /* over the configured horizon */
        double clv;
        int r_score, f_score, m_score; /* 1..5, 0 = not scored */
        double loyalty_score;
        int loyalty_group;     /* 0 low .. 3 very high */
        int segment;           /* loy_segment_t from loy_rfm.h */
        int64_t scored_ms;     /* event time of the last scoring */
        int64_t next_check_ms; /* timer due time, 0 = none */

        loy_event_keys_t recent_events;
        /* erased (loyaltyctl forget) up to this event time; 0: never */
        int64_t forgotten_ms;

        loy_slot_t slots[LOY_SLOTS_MAX];
        int nslots;
} loy_cust_t;

/* Empties a customer and sets its id (truncated to LOY_ID_MAX). */
void loy_feat_init(loy_cust_t *c, const char *id);

/* Applies one validated event. Purchases with a negative net value are
 * returns: they lower spend and count as returns, not as orders (a zero net
 * value is a return only when some line is negative, an exchange; a free
 * order is neither). Events older than the newest one applied still count
 * but never move last_*_ms backwards; an out-of-order purchase on a new day
 * adds a purchase day but no inter-purchase gap (its neighbours are not
 * known). Only orders feed the decayed counters. */
void loy_feat_apply(loy_cust_t *c, const loy_event_t *ev,
                    const loy_feat_conf_t *conf);

/* An event id's key: 64-bit FNV-1a (collisions among a customer's last
 * LOY_RECENT_EVENTS ids are ~1e-17 likely). */
uint64_t loy_feat_event_key(const char *event_id);
/* 1 when c applied an event with this key among its last
 * LOY_RECENT_EVENTS. */
int loy_feat_event_seen(const loy_cust_t *c, uint64_t key);
/* Remembers key as the newest (the oldest beyond the window goes). */
void loy_feat_event_note(loy_cust_t *c, uint64_t key);

/* Erases everything c knows of the customer up to forget_ms: every
 * feature, score, cooldown and event key. What stays is the id, the
 * offset fences ("off:" slots, so a redo skips what it already erased) and
 * forgotten_ms (the later of the two erasures). */
void loy_feat_forget(loy_cust_t *c, int64_t forget_ms);
/* 1 when c is only the record of an erasure: nothing applied since. */
int loy_feat_is_forgotten(const loy_cust_t *c);
/* 1 when ev is one of the customer's events that an erasure covers. */
int loy_feat_forget_covers(const loy_cust_t *c, const loy_event_t *ev);

/* Derived values at event time now_ms. */
double loy_feat_recency_days(const loy_cust_t *c, int64_t now_ms);
double loy_feat_age_days(const loy_cust_t *c, int64_t now_ms); /* T */
double loy_feat_tx_days(const loy_cust_t *c);                  /* t_x */
int64_t loy_feat_repeats(const loy_cust_t *c); /* x = purchase_days-1 */
double loy_feat_monetary(const loy_cust_t *c); /* net spend */
double loy_feat_aov(const loy_cust_t *c);
double loy_feat_mean_repeat_value(const loy_cust_t *c);
double loy_feat_ipt_var_days(const loy_cust_t *c);
/* Decayed counters brought forward to now_ms (not stored). */
double loy_feat_dec_purchases(const loy_cust_t *c, int64_t now_ms,
                              const loy_feat_conf_t *conf);
double loy_feat_dec_spend(const loy_cust_t *c, int64_t now_ms,
                          const loy_feat_conf_t *conf);
const char *loy_feat_tier_name(int tier);

/* Named slots. get returns def when absent; set returns -1 when full or
 * when the name is empty or too long (never truncated: two names must not
 * collide). */
int64_t loy_feat_slot_get(const loy_cust_t *c, const char *name, int64_t def);
int loy_feat_slot_set(loy_cust_t *c, const char *name, int64_t value);

/*
 * Field table: how each stored field is named in the Redis hash and where it
 * lives in loy_cust_t. LOY_FT_DERIVED fields are computed when written
 * (recency_days, aov ...) and ignored when read.
 */
typedef enum {
        LOY_FT_I64,
        LOY_FT_INT,
        LOY_FT_DBL,
        LOY_FT_DERIVED,
        LOY_FT_STR,  /* recent_views: comma-separated skus, newest first;
                      * ',' and '%' in a sku are written %2C and %25 */
        LOY_FT_KEYS, /* recent_event_keys: comma-separated 16-digit hex
                      * keys, newest first */
} loy_field_type_t;

typedef struct loy_field {
        const char *name;
        loy_field_type_t type;
        size_t offset;    /* into loy_cust_t; for DERIVED an
                           * internal id */
        const char *unit; /* for docs: "ms", "days", "count" ... */
        const char *doc;
        /* 1: also written to the hash as readable text, for dashboards
         * (every stored field is in the packed engine field, loy_pack) */
        int view;
} loy_field_t;

/* NULL-terminated. */
extern const loy_field_t loy_feat_fields[];

/* A buffer this big holds any formatted field (recent_views with every
 * character escaped is the longest). */
#define LOY_FIELD_TEXT_MAX 1024

/* Formats field f of c at event time now_ms as readable text: integers as
 * integers, doubles as the shortest text that reads back exactly (parse
 * gives the same customer back), the *_name fields as names (segment,
 * loyalty_group and tier themselves are stored as numbers). conf may be
 * NULL (defaults). Returns the length written, or -1 when it does not
 * fit. */
int loy_feat_field_format(const loy_cust_t *c, const loy_field_t *f,
                          int64_t now_ms, const loy_feat_conf_t *conf,
                          char *buf, size_t size);
/* The same with doubles rounded to 10 significant digits (parse gives them
 * back within 1e-9 relative): the readable fields of the customer hash,
 * for people and dashboards (the engine reads the packed state). */
int loy_feat_field_format_view(const loy_cust_t *c, const loy_field_t *f,
                               int64_t now_ms, const loy_feat_conf_t *conf,
                               char *buf, size_t size);

/* Numeric value of field f (segment, group, tier as their numbers, also
 * for the *_name fields); NAN for recent_views. conf may be NULL. */
double loy_feat_field_number(const loy_cust_t *c, const loy_field_t *f,
                             int64_t now_ms, const loy_feat_conf_t *conf);

/* Field by name, or NULL. */
const loy_field_t *loy_feat_field_find(const char *name);

/* Parses a stored field by name into c. Unknown and derived names are
 * ignored (so older and newer versions can share a hash); slot names
 * ("off:", "cool:") land in the slots. value need not be NUL-terminated.
 * Returns 0, or -1 for a malformed value or a slot that does not fit (full,
 * or name longer than LOY_SLOT_NAME_MAX - 1). */
int loy_feat_field_parse(loy_cust_t *c, const char *name, const char *value,
                         size_t value_len);

/* Formats a finite v as the shortest decimal that reads back as exactly v
 * (integers without a fraction, -0 as 0). Returns the length, or -1 when
 * it does not fit in size. */
int loy_fmt_double(char *buf, size_t size, double v);
/* The same for a float: the shortest decimal whose double, rounded to
 * float, is v. */
int loy_fmt_float(char *buf, size_t size, float v);
/* v in decimal; the length, or -1 when it does not fit in size. */
int loy_fmt_i64(char *buf, size_t size, int64_t v);

#endif
