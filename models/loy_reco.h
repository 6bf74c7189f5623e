/*
 * loy_reco: incremental item-to-item recommender (pure: no Kafka, no Redis).
 *
 * What it learns, event by event:
 *   n(a)    decayed weight of item a's occurrences (baskets and viewed
 *           items); it is also the item's popularity;
 *   c(a,b)  decayed co-occurrence of a and b: w_purchase per basket holding
 *           both, w_browse per browse session in which both were seen
 *           within session_window views of each other.
 * Decay is exponential with half_life_days, applied lazily: every count is
 * stored at the model's reference time, and one global scale factor turns
 * it into "now". Because all counts decay at the same rate the cosine below
 * does not move with time alone, only with new evidence.
 *
 *   sim(a,b) = c / sqrt(n(a) n(b)) * c / (c + shrink)     (c, n "now")
 *
 * The shrink factor keeps one-off pairs of rare items (cosine 1) from
 * outranking well-supported ones. Each item keeps the top_k neighbours by
 * sim. Sims are cached in the list: an item's whole list is recomputed
 * each time the item is seen (O(top_k)), and an entry each time its pair
 * is; in between an entry can lag behind the growth of its neighbour's n.
 *
 * A customer's recent items live in a small caller-owned loy_reco_hist_t
 * (embed it in the customer's cached state). Their weights decay with
 * hist_half_life_days and depend on the event kind (purchase, view, cart,
 * wishlist). The score of a candidate j is
 *
 *   score(j) = sum over history items h of  w(h) * S(h, j)
 *              + pop_weight * n(j) / n(most popular item)
 *
 * with S(h, j) = sim(h, j) for a neighbour and S(h, h) = repeat_weight for
 * an item the customer bought; only items reached through the history are
 * candidates. Retail customers re-buy, and of their past items they re-buy
 * the popular ones: this blend of repeat-buy, popularity and neighbours is
 * what beats both baselines on Online Retail (docs/recommendations.md).
 * With include_bought = 0 bought items are never recommended.
 * When fewer than N candidates score, the list is filled with the most
 * popular items of the customer's recent categories, then globally.
 *
 * Bounded work: a basket contributes at most max_basket distinct items
 * (max_basket^2/2 pairs, each O(top_k)); a view pairs with at most
 * session_window items; scoring touches hist_size * (top_k + 1) entries.
 *
 * Bounded memory: mem_limit bytes, by the model's own accounting of every
 * table it allocates. Pairs get pair_mem_frac of it; when their table is
 * full the rarest pairs (lowest decayed count) are pruned. Items, their
 * neighbour lists and the pending increments share the rest; when full,
 * the least popular items are evicted with their pairs and lists (an item
 * with undrained increments is never evicted). Evicted ids are reused
 * under a new generation, so stale references in histories are ignored.
 *
 * Sharing through Redis (done by the caller): with track_pending on, every
 * increment of n(a) and c(a,b) is also added to a pending list as a
 * double at the fixed scale epoch_ms, i.e. delta = w * 2^((t - epoch)/h),
 * the same for every process, so plain HINCRBYFLOAT / ZINCRBY sums
 * increments of several processes into one model. The caller reads the
 * list (loy_reco_pending_*), writes it, and clears it once written.
 * Neighbour lists computed from the shared counts (loy_reco_sim() is the
 * formula) come back through loy_reco_set_nbrs().
 *
 * Not thread-safe: one model per thread (or a lock around it).
 */
#ifndef LOY_RECO_H
#define LOY_RECO_H

#include <stddef.h>
#include <stdint.h>

#include "../config/loy_confmap.h"
#include "../features/loy_event.h"

#define LOY_RECO_K_MAX 64     /* top_k upper bound */
#define LOY_RECO_HIST_MAX 128 /* hist_size upper bound */
#define LOY_RECO_SESS_MAX 16  /* session_window upper bound */
#define LOY_RECO_N_MAX 100    /* recommendations per call */
#define LOY_RECO_EXCLUDE_MAX 512

typedef struct loy_reco_conf {
        double half_life_days;      /* decay of n and c; 0 = none */
        double hist_half_life_days; /* decay of history weights; 0 = none */
        double w_purchase;          /* pair weight per basket */
        double w_browse;            /* pair weight per browse session */
        double w_hist_purchase;     /* history weight of a bought item */
        double w_hist_action[LOY_ACT__COUNT]; /* ... of a browse action */
        double repeat_weight;                 /* S(h, h) of a bought item */
        double pop_weight;    /* + pop_weight * n(j) / n(top item)
                                 for every scored candidate */
        double shrink;        /* support shrinkage of sim */
        double min_pair;      /* pairs below this are always pruned */
        int top_k;            /* neighbours kept per item */
        int max_basket;       /* distinct items taken per basket */
        int session_window;   /* views a view is paired with */
        int hist_size;        /* items in a customer history */
        int include_bought;   /* recommend already bought items */
        int pop_k;            /* popular items kept (global, per
                                 category) for the fallback */
        size_t mem_limit;     /* bytes, whole model */
        double pair_mem_frac; /* share of mem_limit for pairs */
        int track_pending;    /* keep increments for a Redis flush */
        int pending_max;      /* pending entries at most */
        int64_t epoch_ms;     /* scale reference of pending deltas */
        /* Stock codes that are not products (fees, postage, vouchers),
         * comma separated, case-insensitive; "x*" matches a prefix. */
        char exclude[LOY_RECO_EXCLUDE_MAX];
} loy_reco_conf_t;

/* Online Retail's non-product stock codes, the default exclude list. */
#define LOY_RECO_EXCLUDE_DEFAULT                                               \
        "POST,DOT,M,C2,D,S,B,CRUK,PADS,BANK CHARGES,AMAZONFEE,gift_*"

/* One item of a customer's history. weight is at ts_ms (decayed lazily). */
typedef struct loy_reco_hist_item {
        uint32_t item;   /* model item id ... */
        uint32_t gen;    /* ... valid while the item has this gen */
        int64_t ts_ms;   /* last event on the item */
        float weight;    /* event-kind weights, decayed to ts_ms */
        uint16_t bought; /* purchases of the item (saturating) */
        uint16_t pad;
} loy_reco_hist_item_t;

/*
 * A customer's recent items and current browse session. Plain data owned
 * by the caller, zero-initialised (or loy_reco_hist_init()) before use;
 * no pointers, so it can be copied or cached as is. Item ids are only
 * meaningful to the model that wrote them: to persist a history across
 * processes use loy_reco_hist_format() / loy_reco_hist_parse().
 */
typedef struct loy_reco_hist {
        int n;
        loy_reco_hist_item_t it[LOY_RECO_HIST_MAX];
        uint64_t sess_hash; /* hash of the current session id */
        int sess_n;         /* items in the session window (ring) */
        int sess_pos;
        uint32_t sess_item[LOY_RECO_SESS_MAX];
        uint32_t sess_gen[LOY_RECO_SESS_MAX];
} loy_reco_hist_t;

typedef enum {
        LOY_RECO_SRC_NBR = 0, /* neighbours (and repeat) score */
        LOY_RECO_SRC_CAT_POP, /* popular in the customer's categories */
        LOY_RECO_SRC_POP,     /* globally popular */
} loy_reco_src_t;

/* A recommendation. sku points into the model: valid until the next call
 * that learns (it may evict items) or loy_reco_destroy(). */
typedef struct loy_reco_rec {
        const char *sku;
        double score; /* 0 for fallback items */
        loy_reco_src_t src;
} loy_reco_rec_t;

/* An increment for the shared model: c(a,b) += delta, or n(a) += delta
 * when b is NULL. a < b in the model's item order (not alphabetical):
 * write both directions if the Redis layout is per item. Strings point
 * into the model and stay valid until loy_reco_pending_clear(). */
typedef struct loy_reco_incr {
        const char *a;
        const char *b;
        double delta; /* at scale epoch_ms */
} loy_reco_incr_t;

typedef struct loy_reco_stats {
        int64_t items;          /* items alive */
        int64_t pairs;          /* co-occurrence pairs alive */
        int64_t nbr_lists;      /* items holding a neighbour list */
        int64_t pending;        /* pending increments */
        int64_t baskets, views; /* learned so far */
        int64_t lines_skipped;  /* excluded codes, returns, over max */
        int64_t pair_prunes, pairs_pruned;
        int64_t item_evictions, items_evicted;
        int64_t pending_dropped; /* increments lost: pending list full */
        size_t bytes;            /* the model's own accounting */
        size_t bytes_peak;
} loy_reco_stats_t;

typedef struct loy_reco loy_reco_t;

/* The [reco] settings of the model: names, defaults, bounds, docs. */
extern const loy_confmap_t loy_reco_conf_map[];

/* Every knob from loy_reco_conf_map's defaults (docs/configuration.md);
 * no pending increments, epoch 2010-01-01. */
void loy_reco_conf_default(loy_reco_conf_t *conf);

/* Creates a model (conf is copied; NULL = defaults). NULL with errstr on a
 * value out of loy_reco_conf_map's bounds
 * or when memory runs out. Free with loy_reco_destroy(). */
loy_reco_t *loy_reco_create(const loy_reco_conf_t *conf, char *errstr,
                            size_t errstr_size);

/* NULL is accepted. */
void loy_reco_destroy(loy_reco_t *r);

const loy_reco_conf_t *loy_reco_conf(const loy_reco_t *r);

/* Whether sku is a product (not in the exclude list, not empty). */
int loy_reco_is_product(const loy_reco_t *r, const char *sku);

/* The similarity formula, for callers that compute neighbour lists from
 * shared counts (all three at one common scale). */
double loy_reco_sim(const loy_reco_conf_t *conf, double c_ab, double n_a,
                    double n_b);

void loy_reco_hist_init(loy_reco_hist_t *h);

/*
 * Learns one event and updates the customer's history h (NULL: learn the
 * co-occurrence only). A purchase is one basket: its product lines with a
 * positive quantity, distinct items, the first max_basket of them. Returns
 * and excluded codes teach nothing. A browse event with a sku is a view
 * (or cart, wishlist ...) in session ev->session_id: it is paired with the
 * session window kept in h (needs h). Returns 0, or -1 if memory could not
 * be found even after pruning (the event is then partly learned).
 */
int loy_reco_observe(loy_reco_t *r, loy_reco_hist_t *h, const loy_event_t *ev);

/*
 * The lower-level pieces of loy_reco_observe().
 *
 * learn_basket: n += w and c += w over the distinct products of skus[0..n)
 * (cats[i] may be NULL or ""; cats itself may be NULL), at time ts_ms.
 * hist_add: adds weight w for sku at ts_ms to h (bought: a purchase);
 * the item is interned if new. 0 or -1.
 */
int loy_reco_learn_basket(loy_reco_t *r, const char *const *skus,
                          const char *const *cats, int n, int64_t ts_ms,
                          double w);
int loy_reco_hist_add(loy_reco_t *r, loy_reco_hist_t *h, const char *sku,
                      const char *cat, int64_t ts_ms, double w, int bought);

/*
 * The customer's top n (<= LOY_RECO_N_MAX) items at now_ms, best first,
 * into out. Returns how many were written (fewer than n only when the
 * model knows fewer items). Reads the model, writes nothing but a scratch
 * table: O(hist_size * top_k + n * pop_k).
 */
int loy_reco_recommend(loy_reco_t *r, const loy_reco_hist_t *h, int64_t now_ms,
                       loy_reco_rec_t *out, int n);

/* Item neighbours as the model holds them, best first: up to n of them
 * into out (score = sim). -1 if sku is unknown, else the count. */
int loy_reco_nbrs(const loy_reco_t *r, const char *sku, loy_reco_rec_t *out,
                  int n);

/* Decayed count n(sku) and c(a,b) at time now_ms (0 when unknown). */
double loy_reco_count(const loy_reco_t *r, const char *sku, int64_t now_ms);
double loy_reco_pair(const loy_reco_t *r, const char *a, const char *b,
                     int64_t now_ms);

/*
 * Replaces sku's neighbour list with the n given (skus, sims), e.g. read
 * from loy:i:<sku>:nbrs. The top_k best are kept; unknown skus are
 * interned. Local evidence keeps updating the list afterwards. 0 or -1.
 */
int loy_reco_set_nbrs(loy_reco_t *r, const char *sku,
                      const char *const *nbr_skus, const double *sims, int n);

/* Pending increments (track_pending): how many, and the i-th. */
size_t loy_reco_pending_count(const loy_reco_t *r);
void loy_reco_pending_get(const loy_reco_t *r, size_t i, loy_reco_incr_t *out);
/* Whether pending increment i is an item count, or a pair one of whose
 * items holds the other in its neighbour list (by id: no string work). */
int loy_reco_pending_in_nbrs(const loy_reco_t *r, size_t i);
/* Forgets every pending increment (call once they are written). */
void loy_reco_pending_clear(loy_reco_t *r);

/* A stage of pending increments: those made after _begin are withdrawn
 * from the pending list by _abort (the list is as it was at _begin) and
 * kept by _commit. A processor stages each attempt at a batch, so a batch
 * done again after a failed write adds its increments to the shared model
 * once. Only the pending list is staged: the local counts keep what an
 * aborted attempt learned until the shared counts replace them.
 *
 * Two stages may be open at once (the next batch applied while one is
 * written): _begin opens a newer one (with two open, it aborts both
 * first), _commit keeps the oldest open one's increments, _abort
 * withdraws every open stage's. No-ops without track_pending. */
void loy_reco_stage_begin(loy_reco_t *r);
void loy_reco_stage_commit(loy_reco_t *r);
void loy_reco_stage_abort(loy_reco_t *r);
/* 1 while a stage is open: the pending list then holds increments that
 * may still be withdrawn, and must not be written (and cleared). */
int loy_reco_staging(const loy_reco_t *r);

/*
 * History as text, "sku ts_ms weight bought" per item separated by '\n'
 * (for a Redis field). format returns the length written (truncated at
 * whole items to fit size), parse 0 or -1 on a malformed line (h is then
 * empty). Items are interned by parse.
 */
size_t loy_reco_hist_format(const loy_reco_t *r, const loy_reco_hist_t *h,
                            char *buf, size_t size);
int loy_reco_hist_parse(loy_reco_t *r, loy_reco_hist_t *h, const char *text);

void loy_reco_stats(const loy_reco_t *r, loy_reco_stats_t *st);

/* Prunes pairs below min_pair and rebases the counts now (normally done
 * by itself when needed). */
void loy_reco_maintain(loy_reco_t *r, int64_t now_ms);

#endif
