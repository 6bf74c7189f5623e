/*
 * loy_reco: incremental item-to-item recommender. See loy_reco.h.
 *
 * Tables (all open addressing with linear probing and backward-shift
 * deletion, so pruning needs no tombstones and no second table):
 *   items   array of item_t indexed by id; dead ids chained in a free list
 *   ihash   sku -> id + 1
 *   pairs   (a < b) -> c, 12 bytes a pair
 *   pool    neighbour blocks of top_k entries, one per item that has one
 *   cats    category name -> list of its pop_k most popular items
 *   pend    pending increments: dense array + hash index
 * Memory is counted as capacity * entry size of each table (plus the
 * malloc'ed long skus and category names), which is what gets allocated.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loy_reco.h"

#include "../features/loy_feat.h"
#include "../features/loy_hash.h"

#define NONE UINT32_MAX
#define MS_PER_DAY 86400000.0
#define SKU_INLINE 16
#define CATS_MAX 65536
/* counts at the reference time grow as 2^(age / half-life): rebase well
 * before floats (2^127) overflow */
#define REBASE_HALF_LIVES 40.0
#define HBUCKETS 1024 /* log2 histogram: 4 buckets an octave */

typedef struct item {
        union {
                char in[SKU_INLINE];
                char *p;
        } sku;
        uint32_t gen;
        int32_t cat;  /* -1: none */
        float n;      /* at the reference time */
        uint32_t blk; /* neighbour block + 1; free-list link */
        uint8_t alive;
        uint8_t longsku;
        uint8_t pending;
        uint8_t nnbr;
        uint8_t ext; /* list came from loy_reco_set_nbrs() */
} item_t;

typedef struct nbr {
        uint32_t id;
        float sim;
} nbr_t;

typedef struct pair {
        uint32_t a, b; /* a == NONE: empty slot */
        float c;
} pair_t;

/* stages open at once: a batch applied while the one before is written */
#define STAGES_MAX 2

typedef struct pend {
        uint32_t a, b; /* b == NONE: n(a) */
        double d;
        uint32_t gen; /* stage that saved its old d, if any */
} pend_t;

typedef struct undo {
        uint32_t k; /* pend entry from before the stage */
        double d;   /* its value then */
} undo_t;

typedef struct cat {
        char *name;
        uint32_t *pop; /* pop_k item ids */
        int npop;
} cat_t;

typedef struct excl {
        const char *s;
        size_t len;
        int prefix;
} excl_t;

struct loy_reco {
        loy_reco_conf_t conf;
        double hl_ms; /* half-life in ms, 0: no decay */
        double hist_hl_ms;
        int64_t ref_ms; /* reference time of the stored counts */
        int ref_set;

        excl_t excl[LOY_RECO_EXCLUDE_MAX / 2];
        int nexcl;
        char excl_buf[LOY_RECO_EXCLUDE_MAX];

        item_t *items;
        uint32_t items_cap, items_used, items_alive, free_head;
        uint32_t *ihash; /* id + 1, 0 empty */
        uint32_t ihash_cap;
        size_t long_bytes;

        nbr_t *pool;
        uint32_t pool_cap, pool_used, pool_free, pool_live;

        pair_t *pairs;
        uint32_t pairs_cap, pairs_max_cap;
        uint64_t npairs;

        cat_t *cats;
        uint32_t ncats, cats_cap;
        uint32_t *chash; /* cat index + 1 */
        uint32_t chash_cap;
        size_t cat_bytes;
        uint32_t *gpop; /* global pop_k */
        int ngpop;

        pend_t *pend;
        uint32_t *phash;
        uint32_t npend, phash_cap;
        /* Stages (loy_reco_stage_begin), at most STAGES_MAX open, oldest
         * first: entries from a stage's mark on are its own (or a newer
         * one's), and undo[undo0 ..] holds what it changed of older ones.
         * staging, stage_gen and stage_mark are the newest stage's. */
        int staging;
        uint32_t stage_gen, stage_mark, nundo;
        undo_t *undo;
        struct {
                uint32_t gen, mark, undo0;
        } stages[STAGES_MAX];
        int nstages;

        /* scoring scratch */
        uint32_t *sc_id;
        float *sc_score;
        uint8_t *sc_flag;
        uint32_t *sc_touched;
        uint32_t sc_cap, sc_ntouched;

        size_t fixed_bytes, pair_budget, rest_budget;
        loy_reco_stats_t st;
};

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static uint64_t hash_str(const char *s) {
        uint64_t h = loy_hash64_str(s);
        return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}

static uint64_t hash_pair(uint32_t a, uint32_t b) {
        return mix64(((uint64_t)a << 32) | b);
}

static const char *item_sku(const item_t *it) {
        return it->longsku ? it->sku.p : it->sku.in;
}

static double decay(double hl_ms, double dt_ms) {
        if (hl_ms <= 0 || dt_ms <= 0)
                return 1.0;
        return exp2(-dt_ms / hl_ms);
}

/* Factor turning a value at time t into the reference scale. */
static double scale_at(const loy_reco_t *r, int64_t t) {
        if (r->hl_ms <= 0)
                return 1.0;
        return exp2((double)(t - r->ref_ms) / r->hl_ms);
}

static double epoch_scale(const loy_reco_t *r, int64_t t) {
        if (r->hl_ms <= 0)
                return 1.0;
        return exp2((double)(t - r->conf.epoch_ms) / r->hl_ms);
}

static int hbucket(double x) {
        int b;
        if (!(x > 0))
                return 0;
        b = (int)floor(log2(x) * 4.0) + HBUCKETS / 2;
        return b < 0 ? 0 : b >= HBUCKETS ? HBUCKETS - 1 : b;
}

static uint32_t pow2_at_least(uint64_t x) {
        uint32_t c = 16;
        while (c < x)
                c <<= 1;
        return c;
}

static size_t item_bytes(uint32_t cap) {
        return (size_t)cap * sizeof(item_t) + (size_t)cap * 2 * 4;
}

static size_t pool_bytes(const loy_reco_t *r, uint32_t cap) {
        return (size_t)cap * (size_t)r->conf.top_k * sizeof(nbr_t);
}

static size_t rest_used(const loy_reco_t *r) {
        return item_bytes(r->items_cap) + r->long_bytes +
               pool_bytes(r, r->pool_cap) + r->cat_bytes;
}

static void update_bytes(loy_reco_t *r, size_t transient) {
        size_t b = r->fixed_bytes + (size_t)r->pairs_cap * sizeof(pair_t) +
                   rest_used(r);
        r->st.bytes = b;
        if (b + transient > r->st.bytes_peak)
                r->st.bytes_peak = b + transient;
}

/* ------------------------------------------------------------------------
 * Config
 * ------------------------------------------------------------------------ */

#define RECO_FIELD(f) LOY_CM_FIELD(loy_reco_conf_t, f)
#define RECO_KEY(...) LOY_CM_KEY(loy_reco_conf_t, __VA_ARGS__)

/* Tuned on a validation month of Online Retail (docs/recommendations.md),
 * except max_basket, which bounds the work of one purchase: 20 distinct
 * items make 190 pairs, 50 would make 1,225 for 0.3 % more HR@10. */
const loy_confmap_t loy_reco_conf_map[] = {
    RECO_KEY("half_life.days", LOY_CM_DBL, half_life_days, "30", 0, 36500,
             "decay of co-occurrence counts (0: none)"),
    RECO_KEY("history.half_life.days", LOY_CM_DBL, hist_half_life_days, "365",
             0, 36500, "decay of a customer's history weights (0: none)"),
    RECO_KEY("top_k", LOY_CM_INT, top_k, "20", 1, LOY_RECO_K_MAX,
             "neighbours kept per item"),
    RECO_KEY("max_basket", LOY_CM_INT, max_basket, "20", 1, LOY_LINES_MAX,
             "distinct items of a basket paired (bounds work per purchase)"),
    RECO_KEY("session_window", LOY_CM_INT, session_window, "8", 0,
             LOY_RECO_SESS_MAX,
             "earlier views of a session a view is paired with"),
    RECO_KEY("weight.purchase", LOY_CM_DBL, w_purchase, "1", 0, 100,
             "pair weight of a basket"),
    RECO_KEY("weight.browse", LOY_CM_DBL, w_browse, "0.3", 0, 100,
             "pair weight of a browse session"),
    RECO_KEY("weight.history.purchase", LOY_CM_DBL, w_hist_purchase, "1", 0,
             100, "history weight of a bought item"),
    RECO_KEY("weight.history.view", LOY_CM_DBL, w_hist_action[LOY_ACT_VIEW],
             "0.2", 0, 100, "history weight of a viewed item"),
    RECO_KEY("weight.history.add_to_cart", LOY_CM_DBL,
             w_hist_action[LOY_ACT_ADD_TO_CART], "0.5", 0, 100,
             "history weight of an item added to the cart"),
    RECO_KEY("weight.history.remove_from_cart", LOY_CM_DBL,
             w_hist_action[LOY_ACT_REMOVE_FROM_CART], "0", 0, 100,
             "history weight of an item taken out of the cart"),
    RECO_KEY("weight.history.search", LOY_CM_DBL, w_hist_action[LOY_ACT_SEARCH],
             "0", 0, 100, "history weight of a searched item"),
    RECO_KEY("weight.history.wishlist", LOY_CM_DBL,
             w_hist_action[LOY_ACT_WISHLIST], "0.4", 0, 100,
             "history weight of a wishlisted item"),
    RECO_KEY(
        "weight.repeat", LOY_CM_DBL, repeat_weight, "20", 0, 1000,
        "self-similarity of a bought item: how strongly re-buys are suggested"),
    RECO_KEY("weight.popularity", LOY_CM_DBL, pop_weight, "30", 0, 1000,
             "popularity term added to every candidate: weight * n(item) / "
             "n(top item)"),
    RECO_KEY("shrink", LOY_CM_DBL, shrink, "1", 0, 1000,
             "support shrinkage of the similarity of rare pairs"),
    RECO_KEY("min_pair", LOY_CM_DBL, min_pair, "0.01", 0, 1e6,
             "pairs whose decayed count falls below this are dropped"),
    RECO_KEY("history.size", LOY_CM_INT, hist_size, "128", 1, LOY_RECO_HIST_MAX,
             "items kept in a customer's history"),
    RECO_KEY("include_bought", LOY_CM_BOOL, include_bought, "yes", 0, 0,
             "recommend items the customer bought before (retail re-buys)"),
    RECO_KEY("popular.k", LOY_CM_INT, pop_k, "20", 1, LOY_RECO_N_MAX,
             "popular items kept, overall and per category, as the fallback"),
    RECO_KEY("mem.mb", LOY_CM_MIB, mem_limit, "64", 1, 65536,
             "memory bound of the local model"),
    RECO_KEY("pairs.mem_share", LOY_CM_DBL, pair_mem_frac, "0.5", 0.1, 0.9,
             "share of mem.mb for item pairs"),
    RECO_KEY("pending.max", LOY_CM_INT, pending_max, "262144", 1024, 1 << 26,
             "increments waiting for the next Redis flush at most"),
    RECO_KEY("exclude", LOY_CM_STR, exclude, LOY_RECO_EXCLUDE_DEFAULT, 0, 0,
             "stock codes that are no products (fees, postage, vouchers): "
             "comma separated, case-insensitive, x* matches a prefix"),
    {0},
};

void loy_reco_conf_default(loy_reco_conf_t *c) {
        char why[160];
        memset(c, 0, sizeof(*c));
        /* not settings: the stream turns these on for its own model */
        c->track_pending = 0;
        c->epoch_ms = 1262304000000LL; /* 2010-01-01T00:00:00Z */
        /* cannot fail: test_config applies every table */
        (void)loy_confmap_defaults(loy_reco_conf_map, c, why, sizeof(why));
}

static int bad(char *errstr, size_t size, const char *what) {
        snprintf(errstr, size, "reco: %s", what);
        return -1;
}

static int conf_check(const loy_reco_conf_t *c, char *e, size_t es) {
        char why[200];
        if (loy_confmap_check(loy_reco_conf_map, c, why, sizeof(why)))
                return bad(e, es, why);
        if (!memchr(c->exclude, 0, sizeof(c->exclude)))
                return bad(e, es, "exclude list not terminated");
        return 0;
}

static void parse_exclude(loy_reco_t *r) {
        char *s, *tok, *save = NULL;

        memcpy(r->excl_buf, r->conf.exclude, sizeof(r->excl_buf));
        s = r->excl_buf;
        for (tok = strtok_r(s, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
                size_t len;
                while (isspace((unsigned char)*tok))
                        tok++;
                len = strlen(tok);
                while (len && isspace((unsigned char)tok[len - 1]))
                        tok[--len] = 0;
                if (!len)
                        continue;
                r->excl[r->nexcl].prefix = tok[len - 1] == '*';
                if (r->excl[r->nexcl].prefix)
                        tok[--len] = 0;
                r->excl[r->nexcl].s = tok;
                r->excl[r->nexcl].len = len;
                r->nexcl++;
        }
}

int loy_reco_is_product(const loy_reco_t *r, const char *sku) {
        size_t len = strlen(sku);

        if (!len)
                return 0;
        for (int i = 0; i < r->nexcl; i++) {
                const excl_t *x = &r->excl[i];
                if (x->prefix ? len >= x->len && !strncasecmp(sku, x->s, x->len)
                              : len == x->len && !strcasecmp(sku, x->s))
                        return 0;
        }
        return 1;
}

double loy_reco_sim(const loy_reco_conf_t *conf, double c, double na,
                    double nb) {
        if (!(c > 0 && na > 0 && nb > 0))
                return 0;
        return c / sqrt(na * nb) * (c / (c + conf->shrink));
}

/* ------------------------------------------------------------------------
 * Create / destroy
 * ------------------------------------------------------------------------ */

loy_reco_t *loy_reco_create(const loy_reco_conf_t *conf, char *errstr,
                            size_t errstr_size) {
        loy_reco_conf_t def;
        loy_reco_t *r;
        size_t avail;

        if (!conf) {
                loy_reco_conf_default(&def);
                conf = &def;
        }
        if (conf_check(conf, errstr, errstr_size))
                return NULL;
        r = calloc(1, sizeof(*r));
        if (!r)
                goto oom;
        r->conf = *conf;
        r->hl_ms = conf->half_life_days * MS_PER_DAY;
        r->hist_hl_ms = conf->hist_half_life_days * MS_PER_DAY;
        r->free_head = NONE;
        r->pool_free = NONE;
        parse_exclude(r);

        r->sc_cap = pow2_at_least((uint64_t)LOY_RECO_HIST_MAX *
                                      (LOY_RECO_K_MAX + 1) * 2 +
                                  4 * LOY_RECO_N_MAX);
        r->sc_id = malloc(r->sc_cap * sizeof(*r->sc_id));
        r->sc_score = malloc(r->sc_cap * sizeof(*r->sc_score));
        r->sc_flag = malloc(r->sc_cap);
        r->sc_touched = malloc(r->sc_cap * sizeof(*r->sc_touched));
        r->gpop = malloc(conf->pop_k * sizeof(*r->gpop));
        if (!r->sc_id || !r->sc_score || !r->sc_flag || !r->sc_touched ||
            !r->gpop)
                goto oom;
        memset(r->sc_id, 0xff, r->sc_cap * sizeof(*r->sc_id));
        r->fixed_bytes = sizeof(*r) + (size_t)r->sc_cap * 13 +
                         conf->pop_k * sizeof(*r->gpop);
        if (conf->track_pending) {
                r->phash_cap = pow2_at_least(conf->pending_max * 2);
                r->pend = malloc(conf->pending_max * sizeof(*r->pend));
                r->phash = calloc(r->phash_cap, sizeof(*r->phash));
                /* each open stage saves an older entry once */
                r->undo = malloc(2 * conf->pending_max * sizeof(*r->undo));
                if (!r->pend || !r->phash || !r->undo)
                        goto oom;
                r->fixed_bytes += conf->pending_max * (sizeof(*r->pend) +
                                                       2 * sizeof(*r->undo)) +
                                  (size_t)r->phash_cap * 4;
        }
        if (r->fixed_bytes + (256u << 10) > conf->mem_limit) {
                snprintf(errstr, errstr_size,
                         "reco: mem_limit %zu too small (fixed part %zu)",
                         conf->mem_limit, r->fixed_bytes);
                loy_reco_destroy(r);
                return NULL;
        }
        avail = conf->mem_limit - r->fixed_bytes;
        r->pair_budget = (size_t)(avail * conf->pair_mem_frac);
        r->rest_budget = avail - r->pair_budget;
        /* a doubling needs the old and the new table at once */
        r->pairs_max_cap = 16;
        while ((size_t)r->pairs_max_cap * 3 * sizeof(pair_t) <= r->pair_budget)
                r->pairs_max_cap <<= 1;
        r->pairs_cap = r->pairs_max_cap < 4096 ? r->pairs_max_cap : 4096;
        r->pairs = malloc(r->pairs_cap * sizeof(*r->pairs));
        if (!r->pairs)
                goto oom;
        for (uint32_t i = 0; i < r->pairs_cap; i++)
                r->pairs[i].a = NONE;
        update_bytes(r, 0);
        return r;
oom:
        loy_reco_destroy(r);
        snprintf(errstr, errstr_size, "reco: out of memory");
        return NULL;
}

void loy_reco_destroy(loy_reco_t *r) {
        if (!r)
                return;
        for (uint32_t i = 0; i < r->items_used; i++)
                if (r->items[i].alive && r->items[i].longsku)
                        free(r->items[i].sku.p);
        for (uint32_t i = 0; i < r->ncats; i++) {
                free(r->cats[i].name);
                free(r->cats[i].pop);
        }
        free(r->cats);
        free(r->chash);
        free(r->items);
        free(r->ihash);
        free(r->pool);
        free(r->pairs);
        free(r->pend);
        free(r->undo);
        free(r->phash);
        free(r->sc_id);
        free(r->sc_score);
        free(r->sc_flag);
        free(r->sc_touched);
        free(r->gpop);
        free(r);
}

const loy_reco_conf_t *loy_reco_conf(const loy_reco_t *r) {
        return &r->conf;
}

/* ------------------------------------------------------------------------
 * Item interning
 * ------------------------------------------------------------------------ */

static uint32_t item_find(const loy_reco_t *r, const char *sku) {
        uint32_t mask, i, v;

        if (!r->ihash_cap)
                return NONE;
        mask = r->ihash_cap - 1;
        for (i = (uint32_t)hash_str(sku) & mask; (v = r->ihash[i]);
             i = (i + 1) & mask)
                if (!strcmp(item_sku(&r->items[v - 1]), sku))
                        return v - 1;
        return NONE;
}

static void ihash_put(loy_reco_t *r, uint32_t id) {
        uint32_t mask = r->ihash_cap - 1;
        uint32_t i = (uint32_t)hash_str(item_sku(&r->items[id])) & mask;
        while (r->ihash[i])
                i = (i + 1) & mask;
        r->ihash[i] = id + 1;
}

static void ihash_del(loy_reco_t *r, uint32_t id) {
        uint32_t mask = r->ihash_cap - 1, i, j, k;

        i = (uint32_t)hash_str(item_sku(&r->items[id])) & mask;
        while (r->ihash[i] != id + 1)
                i = (i + 1) & mask;
        /* backward shift: pull later entries of the cluster into the hole
         * when their home slot is not between the hole and them */
        for (j = i;;) {
                r->ihash[i] = 0;
                for (;;) {
                        j = (j + 1) & mask;
                        if (!r->ihash[j])
                                return;
                        k = (uint32_t)hash_str(
                                item_sku(&r->items[r->ihash[j] - 1])) &
                            mask;
                        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                                continue;
                        break;
                }
                r->ihash[i] = r->ihash[j];
                i = j;
        }
}

/* Room for `need` more items: grow within the budget. 0 or -1. */
static int items_grow(loy_reco_t *r, uint32_t need) {
        uint32_t ncap, free_ids = r->items_cap - r->items_used;
        item_t *ni;
        uint32_t *nh;

        for (uint32_t f = r->free_head; f != NONE && free_ids < need;
             f = r->items[f].blk)
                free_ids++;
        if (free_ids >= need)
                return 0;
        ncap = r->items_cap ? r->items_cap : 256;
        while (ncap - r->items_alive < need + ncap / 4)
                ncap *= 2;
        if (ncap > (1u << 30))
                return -1;
        if (rest_used(r) + item_bytes(ncap) > r->rest_budget)
                return -1;
        ni = realloc(r->items, ncap * sizeof(*ni));
        if (!ni)
                return -1;
        r->items = ni;
        nh = calloc((size_t)ncap * 2, sizeof(*nh));
        if (!nh)
                return -1;
        update_bytes(r, item_bytes(ncap));
        free(r->ihash);
        r->ihash = nh;
        r->ihash_cap = ncap * 2;
        r->items_cap = ncap;
        for (uint32_t id = 0; id < r->items_used; id++)
                if (r->items[id].alive)
                        ihash_put(r, id);
        update_bytes(r, 0);
        return 0;
}

static int pool_grow(loy_reco_t *r, uint32_t need) {
        uint32_t ncap, avail = r->pool_cap - r->pool_used;
        nbr_t *np;

        for (uint32_t f = r->pool_free; f != NONE && avail < need;
             f = r->pool[(size_t)f * r->conf.top_k].id)
                avail++;
        if (avail >= need)
                return 0;
        ncap = r->pool_cap ? r->pool_cap * 2 : 256;
        while (ncap - r->pool_live < need)
                ncap *= 2;
        if (rest_used(r) + pool_bytes(r, ncap) > r->rest_budget)
                return -1;
        np = realloc(r->pool, pool_bytes(r, ncap));
        if (!np)
                return -1;
        update_bytes(r, pool_bytes(r, ncap) - pool_bytes(r, r->pool_cap));
        r->pool = np;
        r->pool_cap = ncap;
        update_bytes(r, 0);
        return 0;
}

static void evict_items(loy_reco_t *r, uint32_t want_items,
                        uint32_t want_blocks);

/* Makes sure `items` new items and `blocks` neighbour blocks fit. */
static int ensure_rest(loy_reco_t *r, uint32_t items, uint32_t blocks) {
        if (!items_grow(r, items) && !pool_grow(r, blocks))
                return 0;
        evict_items(r, items, blocks);
        if (!items_grow(r, items) && !pool_grow(r, blocks))
                return 0;
        return -1;
}

static int32_t cat_intern(loy_reco_t *r, const char *name);

/* Interns sku (room must have been ensured). */
static uint32_t item_intern(loy_reco_t *r, const char *sku, const char *cat) {
        uint32_t id = item_find(r, sku);
        item_t *it;
        size_t len;

        if (id == NONE) {
                if (r->free_head != NONE) {
                        id = r->free_head;
                        r->free_head = r->items[id].blk;
                } else {
                        if (r->items_used >= r->items_cap)
                                return NONE;
                        id = r->items_used++;
                        r->items[id].gen = 0;
                }
                it = &r->items[id];
                len = strlen(sku);
                it->longsku = len >= SKU_INLINE;
                if (it->longsku) {
                        it->sku.p = strdup(sku);
                        if (!it->sku.p) {
                                it->blk = r->free_head;
                                r->free_head = id;
                                return NONE;
                        }
                        r->long_bytes += len + 1 + 16;
                } else {
                        memcpy(it->sku.in, sku, len + 1);
                }
                it->cat = -1;
                it->n = 0;
                it->blk = 0;
                it->alive = 1;
                it->pending = 0;
                it->nnbr = 0;
                it->ext = 0;
                r->items_alive++;
                ihash_put(r, id);
        }
        if (cat && *cat) {
                int32_t c = cat_intern(r, cat);
                if (c >= 0)
                        r->items[id].cat = c;
        }
        return id;
}

/* ------------------------------------------------------------------------
 * Popularity lists (ids only: values are read live, and they all decay
 * alike, so the order of a list never goes stale)
 * ------------------------------------------------------------------------ */

static void pop_touch(loy_reco_t *r, uint32_t *list, int *n, uint32_t id) {
        int i, min = -1;

        for (i = 0; i < *n; i++) {
                if (list[i] == id)
                        return;
                if (min < 0 || r->items[list[i]].n < r->items[list[min]].n)
                        min = i;
        }
        if (*n < r->conf.pop_k)
                list[(*n)++] = id;
        else if (r->items[id].n > r->items[list[min]].n)
                list[min] = id;
}

static int32_t cat_intern(loy_reco_t *r, const char *name) {
        uint32_t mask, i, v, ncap;
        cat_t *c;

        if (r->chash_cap) {
                mask = r->chash_cap - 1;
                for (i = (uint32_t)hash_str(name) & mask; (v = r->chash[i]);
                     i = (i + 1) & mask)
                        if (!strcmp(r->cats[v - 1].name, name))
                                return (int32_t)(v - 1);
        }
        if (r->ncats >= CATS_MAX)
                return -1;
        if (r->ncats >= r->cats_cap) {
                cat_t *nc;
                uint32_t *nh;
                size_t grow;
                ncap = r->cats_cap ? r->cats_cap * 2 : 64;
                grow = ncap * (sizeof(cat_t) + 8);
                if (rest_used(r) + grow > r->rest_budget)
                        return -1;
                nc = realloc(r->cats, ncap * sizeof(*nc));
                if (!nc)
                        return -1;
                r->cats = nc;
                nh = calloc((size_t)ncap * 2, sizeof(*nh));
                if (!nh)
                        return -1;
                free(r->chash);
                r->chash = nh;
                r->chash_cap = ncap * 2;
                r->cat_bytes += (ncap - r->cats_cap) * (sizeof(cat_t) + 8);
                r->cats_cap = ncap;
                mask = r->chash_cap - 1;
                for (v = 0; v < r->ncats; v++) {
                        i = (uint32_t)hash_str(r->cats[v].name) & mask;
                        while (r->chash[i])
                                i = (i + 1) & mask;
                        r->chash[i] = v + 1;
                }
        }
        if (rest_used(r) + strlen(name) + 17 + r->conf.pop_k * 4 >
            r->rest_budget)
                return -1;
        c = &r->cats[r->ncats];
        c->name = strdup(name);
        c->pop = malloc(r->conf.pop_k * sizeof(*c->pop));
        c->npop = 0;
        if (!c->name || !c->pop) {
                free(c->name);
                free(c->pop);
                return -1;
        }
        r->cat_bytes += strlen(name) + 17 + r->conf.pop_k * 4;
        mask = r->chash_cap - 1;
        i = (uint32_t)hash_str(name) & mask;
        while (r->chash[i])
                i = (i + 1) & mask;
        r->chash[i] = r->ncats + 1;
        return (int32_t)r->ncats++;
}

/* ------------------------------------------------------------------------
 * Neighbour lists
 * ------------------------------------------------------------------------ */

static nbr_t *nbr_list(const loy_reco_t *r, const item_t *it) {
        return it->blk ? &r->pool[(size_t)(it->blk - 1) * r->conf.top_k] : NULL;
}

static int nbr_alloc(loy_reco_t *r, item_t *it) {
        uint32_t b;

        if (r->pool_free != NONE) {
                b = r->pool_free;
                r->pool_free = r->pool[(size_t)b * r->conf.top_k].id;
        } else if (r->pool_used < r->pool_cap) {
                b = r->pool_used++;
        } else {
                return -1;
        }
        it->blk = b + 1;
        it->nnbr = 0;
        r->pool_live++;
        return 0;
}

static void nbr_free(loy_reco_t *r, item_t *it) {
        uint32_t b;

        if (!it->blk)
                return;
        b = it->blk - 1;
        r->pool[(size_t)b * r->conf.top_k].id = r->pool_free;
        r->pool_free = b;
        it->blk = 0;
        it->nnbr = 0;
        r->pool_live--;
}

/* Sets sim(a -> b) in a's list: replaces the weakest when full. */
static void nbr_upsert(loy_reco_t *r, uint32_t a, uint32_t b, float sim) {
        item_t *it = &r->items[a];
        nbr_t *l;
        int i, min = 0;

        if (!it->blk && nbr_alloc(r, it))
                return;
        l = nbr_list(r, it);
        for (i = 0; i < it->nnbr; i++) {
                if (l[i].id == b) {
                        l[i].sim = sim;
                        return;
                }
                if (l[i].sim < l[min].sim)
                        min = i;
        }
        if (it->nnbr < r->conf.top_k) {
                l[it->nnbr].id = b;
                l[it->nnbr++].sim = sim;
        } else if (sim > l[min].sim) {
                l[min].id = b;
                l[min].sim = sim;
        }
}

/* ------------------------------------------------------------------------
 * Pairs
 * ------------------------------------------------------------------------ */

/* The slot of pair (a, b): its own, or the empty one it would take. */
static uint32_t pair_slot(const loy_reco_t *r, uint32_t *a, uint32_t *b) {
        uint32_t mask = r->pairs_cap - 1, i;

        if (*a > *b) {
                uint32_t t = *a;
                *a = *b;
                *b = t;
        }
        for (i = (uint32_t)hash_pair(*a, *b) & mask; r->pairs[i].a != NONE;
             i = (i + 1) & mask)
                if (r->pairs[i].a == *a && r->pairs[i].b == *b)
                        break;
        return i;
}

static pair_t *pair_find(const loy_reco_t *r, uint32_t a, uint32_t b) {
        uint32_t i = pair_slot(r, &a, &b);
        return r->pairs[i].a == NONE ? NULL : &r->pairs[i];
}

static pair_t *pair_get(loy_reco_t *r, uint32_t a, uint32_t b) {
        uint32_t i = pair_slot(r, &a, &b);

        if (r->pairs[i].a != NONE)
                return &r->pairs[i];
        r->pairs[i].a = a;
        r->pairs[i].b = b;
        r->pairs[i].c = 0;
        r->npairs++;
        return &r->pairs[i];
}

static int pairs_resize(loy_reco_t *r, uint32_t ncap) {
        pair_t *np = malloc((size_t)ncap * sizeof(*np)), *old = r->pairs;
        uint32_t ocap = r->pairs_cap, mask = ncap - 1;

        if (!np)
                return -1;
        update_bytes(r, (size_t)ncap * sizeof(*np));
        for (uint32_t i = 0; i < ncap; i++)
                np[i].a = NONE;
        for (uint32_t j = 0; j < ocap; j++) {
                uint32_t i;
                if (old[j].a == NONE)
                        continue;
                i = (uint32_t)hash_pair(old[j].a, old[j].b) & mask;
                while (np[i].a != NONE)
                        i = (i + 1) & mask;
                np[i] = old[j];
        }
        free(old);
        r->pairs = np;
        r->pairs_cap = ncap;
        update_bytes(r, 0);
        return 0;
}

/*
 * Removes every pair for which drop() holds, in place. The sweep starts
 * just after an empty slot so no cluster wraps around its start; after a
 * backward shift the same slot is examined again.
 */
static uint64_t pairs_filter(loy_reco_t *r,
                             int (*drop)(const loy_reco_t *, const pair_t *,
                                         double),
                             double arg) {
        uint32_t mask = r->pairs_cap - 1, start = 0, steps, i, j, k;
        uint64_t removed = 0;

        while (r->pairs[start].a != NONE)
                start = (start + 1) & mask;
        for (steps = 0, i = (start + 1) & mask; steps < r->pairs_cap;) {
                if (r->pairs[i].a == NONE || !drop(r, &r->pairs[i], arg)) {
                        i = (i + 1) & mask;
                        steps++;
                        continue;
                }
                removed++;
                r->npairs--;
                /* backward-shift delete at i; re-examine i after */
                {
                        uint32_t hole = i;
                        j = i;
                        for (;;) {
                                r->pairs[hole].a = NONE;
                                for (;;) {
                                        j = (j + 1) & mask;
                                        if (r->pairs[j].a == NONE)
                                                goto done;
                                        k = (uint32_t)hash_pair(r->pairs[j].a,
                                                                r->pairs[j].b) &
                                            mask;
                                        if (hole <= j ? (hole < k && k <= j)
                                                      : (hole < k || k <= j))
                                                continue;
                                        break;
                                }
                                r->pairs[hole] = r->pairs[j];
                                hole = j;
                        }
                }
        done:;
        }
        return removed;
}

static int drop_below(const loy_reco_t *r, const pair_t *p, double thr) {
        (void)r;
        return p->c < thr;
}

static int drop_dead(const loy_reco_t *r, const pair_t *p, double unused) {
        (void)unused;
        return !r->items[p->a].alive || !r->items[p->b].alive;
}

/* Drops the rarest pairs until at most half the table is used. */
static void prune_pairs(loy_reco_t *r, int64_t now_ms) {
        static const double keep_frac = 0.5;
        uint64_t hist[HBUCKETS] = {0}, target, cum = 0;
        double thr = r->conf.min_pair * scale_at(r, now_ms);
        int b;

        for (uint32_t i = 0; i < r->pairs_cap; i++)
                if (r->pairs[i].a != NONE)
                        hist[hbucket(r->pairs[i].c)]++;
        target = r->npairs - (uint64_t)(r->pairs_cap * keep_frac);
        if (r->npairs > (uint64_t)(r->pairs_cap * keep_frac)) {
                for (b = 0; b < HBUCKETS; b++) {
                        cum += hist[b];
                        if (cum >= target)
                                break;
                }
                /* everything in buckets 0..b goes */
                double t = exp2((double)(b + 1 - HBUCKETS / 2) / 4.0);
                if (t > thr)
                        thr = t;
        }
        r->st.pair_prunes++;
        r->st.pairs_pruned += (int64_t)pairs_filter(r, drop_below, thr);
}

/* Room for `need` more pairs: grow within the budget, else prune. */
static int ensure_pairs(loy_reco_t *r, uint64_t need, int64_t now_ms) {
        while (r->npairs + need > (uint64_t)r->pairs_cap * 3 / 4) {
                if (r->pairs_cap < r->pairs_max_cap) {
                        if (pairs_resize(r, r->pairs_cap * 2))
                                return -1;
                        continue;
                }
                prune_pairs(r, now_ms);
                if (r->npairs + need > (uint64_t)r->pairs_cap * 3 / 4)
                        return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * Eviction of items
 * ------------------------------------------------------------------------ */

static void list_sweep(loy_reco_t *r, uint32_t *list, int *n) {
        int j = 0;
        for (int i = 0; i < *n; i++)
                if (r->items[list[i]].alive)
                        list[j++] = list[i];
        *n = j;
}

/*
 * Evicts the least popular items (never one with pending increments) so
 * that a quarter of the item table and of the neighbour pool is free
 * beyond the room asked for, then drops what pointed at them.
 */
static void evict_items(loy_reco_t *r, uint32_t want_items,
                        uint32_t want_blocks) {
        uint64_t hi[HBUCKETS] = {0}, hb[HBUCKETS] = {0};
        uint64_t need_i, need_b, ci = 0, cb = 0;
        int b, bi = -1, bb = -1;
        uint32_t removed = 0;

        if (!r->items_cap)
                return;
        need_i =
            r->items_alive + want_items + r->items_cap / 4 > r->items_cap
                ? r->items_alive + want_items + r->items_cap / 4 - r->items_cap
                : 0;
        need_b =
            r->pool_live + want_blocks + r->pool_cap / 4 > r->pool_cap
                ? r->pool_live + want_blocks + r->pool_cap / 4 - r->pool_cap
                : 0;
        for (uint32_t id = 0; id < r->items_used; id++) {
                const item_t *it = &r->items[id];
                if (!it->alive || it->pending)
                        continue;
                hi[hbucket(it->n)]++;
                if (it->blk)
                        hb[hbucket(it->n)]++;
        }
        for (b = 0; b < HBUCKETS && (bi < 0 || bb < 0); b++) {
                ci += hi[b];
                cb += hb[b];
                if (bi < 0 && ci >= need_i)
                        bi = b;
                if (bb < 0 && cb >= need_b)
                        bb = b;
        }
        if (bi < 0)
                bi = HBUCKETS - 1;
        if (bb < 0)
                bb = HBUCKETS - 1;
        if (!need_i && !need_b)
                return;
        b = bi > bb ? bi : bb;
        for (uint32_t id = 0; id < r->items_used; id++) {
                item_t *it = &r->items[id];
                if (!it->alive || it->pending || hbucket(it->n) > b)
                        continue;
                ihash_del(r, id);
                if (it->longsku) {
                        r->long_bytes -= strlen(it->sku.p) + 1 + 16;
                        free(it->sku.p);
                        it->longsku = 0;
                }
                nbr_free(r, it);
                it->alive = 0;
                it->gen++;
                it->blk = r->free_head;
                r->free_head = id;
                r->items_alive--;
                removed++;
        }
        if (!removed)
                return;
        r->st.item_evictions++;
        r->st.items_evicted += removed;
        pairs_filter(r, drop_dead, 0);
        for (uint32_t id = 0; id < r->items_used; id++) {
                item_t *it = &r->items[id];
                nbr_t *l;
                int j = 0;
                if (!it->alive || !it->blk)
                        continue;
                l = nbr_list(r, it);
                for (int i = 0; i < it->nnbr; i++)
                        if (r->items[l[i].id].alive)
                                l[j++] = l[i];
                it->nnbr = (uint8_t)j;
        }
        list_sweep(r, r->gpop, &r->ngpop);
        for (uint32_t c = 0; c < r->ncats; c++)
                list_sweep(r, r->cats[c].pop, &r->cats[c].npop);
        update_bytes(r, 0);
}

/* ------------------------------------------------------------------------
 * Pending increments
 * ------------------------------------------------------------------------ */

static void pend_add(loy_reco_t *r, uint32_t a, uint32_t b, double d) {
        uint32_t mask, i, v;

        if (!r->conf.track_pending)
                return;
        mask = r->phash_cap - 1;
        for (i = (uint32_t)hash_pair(a, b) & mask; (v = r->phash[i]);
             i = (i + 1) & mask)
                if (r->pend[v - 1].a == a && r->pend[v - 1].b == b) {
                        pend_t *pe = &r->pend[v - 1];
                        if (r->staging && v - 1 < r->stage_mark &&
                            pe->gen != r->stage_gen) {
                                r->undo[r->nundo].k = v - 1;
                                r->undo[r->nundo++].d = pe->d;
                                pe->gen = r->stage_gen;
                        }
                        pe->d += d;
                        return;
                }
        if (r->npend >= (uint32_t)r->conf.pending_max) {
                r->st.pending_dropped++;
                return;
        }
        r->pend[r->npend].a = a;
        r->pend[r->npend].b = b;
        r->pend[r->npend].d = d;
        r->pend[r->npend].gen = r->stage_gen;
        r->phash[i] = ++r->npend;
        r->items[a].pending = 1;
        if (b != NONE)
                r->items[b].pending = 1;
}

size_t loy_reco_pending_count(const loy_reco_t *r) {
        return r->npend;
}

void loy_reco_pending_get(const loy_reco_t *r, size_t i, loy_reco_incr_t *out) {
        const pend_t *p = &r->pend[i];
        out->a = item_sku(&r->items[p->a]);
        out->b = p->b == NONE ? NULL : item_sku(&r->items[p->b]);
        out->delta = p->d;
}

static int has_nbr(const loy_reco_t *r, uint32_t a, uint32_t b) {
        const item_t *it = &r->items[a];
        const nbr_t *l = nbr_list(r, it);
        for (int i = 0; i < it->nnbr; i++)
                if (l[i].id == b)
                        return 1;
        return 0;
}

int loy_reco_pending_in_nbrs(const loy_reco_t *r, size_t i) {
        const pend_t *p = &r->pend[i];
        if (p->b == NONE)
                return 1;
        return has_nbr(r, p->a, p->b) || has_nbr(r, p->b, p->a);
}

void loy_reco_pending_clear(loy_reco_t *r) {
        uint32_t mask = r->phash_cap - 1;

        for (uint32_t k = 0; k < r->npend; k++) {
                const pend_t *p = &r->pend[k];
                uint32_t i = (uint32_t)hash_pair(p->a, p->b) & mask;
                while (r->phash[i] != k + 1)
                        i = (i + 1) & mask;
                r->phash[i] = 0;
                r->items[p->a].pending = 0;
                if (p->b != NONE)
                        r->items[p->b].pending = 0;
        }
        /* the probe above does not stop at slots emptied before it: an
         * entry is always found, and at the end the index is all zeros */
        r->npend = 0;
        /* what was written is no stage's to withdraw */
        r->nstages = 0;
        r->stage_mark = 0;
        r->nundo = 0;
        r->staging = 0;
}

/* The newest open stage is the one pend_add() saves for. */
static void stage_top(loy_reco_t *r) {
        r->staging = r->nstages > 0;
        if (r->nstages) {
                r->stage_gen = r->stages[r->nstages - 1].gen;
                r->stage_mark = r->stages[r->nstages - 1].mark;
        } else {
                r->stage_mark = 0;
                r->nundo = 0;
        }
}

void loy_reco_stage_begin(loy_reco_t *r) {
        if (!r->conf.track_pending)
                return;
        if (r->nstages == STAGES_MAX)
                loy_reco_stage_abort(r);
        /* 0 is never a stage, so entries made outside one never match */
        if (++r->stage_gen == 0)
                r->stage_gen = 1;
        r->stages[r->nstages].gen = r->stage_gen;
        r->stages[r->nstages].mark = r->npend;
        r->stages[r->nstages].undo0 = r->nundo;
        r->nstages++;
        stage_top(r);
}

void loy_reco_stage_commit(loy_reco_t *r) {
        if (!r->nstages)
                return;
        if (r->nstages == 2) {
                /* the older stage's saved values are no longer needed */
                uint32_t u0 = r->stages[1].undo0;
                memmove(r->undo, r->undo + u0,
                        (r->nundo - u0) * sizeof(*r->undo));
                r->nundo -= u0;
                r->stages[0] = r->stages[1];
                r->stages[0].undo0 = 0;
        }
        r->nstages--;
        stage_top(r);
}

int loy_reco_staging(const loy_reco_t *r) {
        return r->nstages > 0;
}

void loy_reco_stage_abort(loy_reco_t *r) {
        uint32_t mask = r->phash_cap - 1, mark;
        if (!r->nstages)
                return;
        /* newest saved values first: an entry both stages changed gets
         * the older stage's copy last */
        for (uint32_t u = r->nundo; u-- > 0;)
                r->pend[r->undo[u].k].d = r->undo[u].d;
        mark = r->stages[0].mark;
        r->nstages = 0;
        stage_top(r);
        if (r->npend == mark)
                return;
        /* The stages' own entries go. Linear probing cannot delete in
         * place, so the index is built again from the older entries, and
         * so are the items' pending marks (an item keeps its mark while an
         * older entry names it). Rare: a batch that failed. */
        for (uint32_t k = mark; k < r->npend; k++) {
                r->items[r->pend[k].a].pending = 0;
                if (r->pend[k].b != NONE)
                        r->items[r->pend[k].b].pending = 0;
        }
        r->npend = mark;
        memset(r->phash, 0, r->phash_cap * sizeof(*r->phash));
        for (uint32_t k = 0; k < r->npend; k++) {
                const pend_t *p = &r->pend[k];
                uint32_t i = (uint32_t)hash_pair(p->a, p->b) & mask;
                while (r->phash[i])
                        i = (i + 1) & mask;
                r->phash[i] = k + 1;
                r->items[p->a].pending = 1;
                if (p->b != NONE)
                        r->items[p->b].pending = 1;
        }
}

/* ------------------------------------------------------------------------
 * Learning
 * ------------------------------------------------------------------------ */

static void rebase(loy_reco_t *r, int64_t now_ms) {
        double f = scale_at(r, now_ms);

        if (!r->ref_set) {
                r->ref_ms = now_ms;
                r->ref_set = 1;
                return;
        }
        if (r->hl_ms <= 0)
                return;
        f = 1.0 / f;
        for (uint32_t id = 0; id < r->items_used; id++)
                if (r->items[id].alive)
                        r->items[id].n = (float)(r->items[id].n * f);
        for (uint32_t i = 0; i < r->pairs_cap; i++)
                if (r->pairs[i].a != NONE)
                        r->pairs[i].c = (float)(r->pairs[i].c * f);
        r->ref_ms = now_ms;
}

static void maybe_rebase(loy_reco_t *r, int64_t t) {
        if (!r->ref_set || (r->hl_ms > 0 && (double)(t - r->ref_ms) >
                                                REBASE_HALF_LIVES * r->hl_ms))
                rebase(r, t);
}

void loy_reco_maintain(loy_reco_t *r, int64_t now_ms) {
        if (!r->ref_set)
                return;
        rebase(r, now_ms);
        r->st.pairs_pruned += (int64_t)pairs_filter(
            r, drop_below, r->conf.min_pair * scale_at(r, now_ms));
        update_bytes(r, 0);
}

/*
 * Recomputes the sims of id's list from the local counts. n(id) just
 * changed, so every entry moved; O(top_k). Entries of other items that
 * point at id catch up when those items are seen or their pair is. A list
 * read from the shared model is left alone.
 */
static void refresh_list(loy_reco_t *r, uint32_t id, double g) {
        item_t *it = &r->items[id];
        nbr_t *l = nbr_list(r, it);

        if (!l || it->ext)
                return;
        for (int i = 0; i < it->nnbr; i++) {
                const pair_t *p = pair_find(r, id, l[i].id);
                if (p)
                        l[i].sim =
                            (float)loy_reco_sim(&r->conf, p->c / g, it->n / g,
                                                r->items[l[i].id].n / g);
        }
}

/* n(id) += w at ts (g = scale at ts). */
static void count_item(loy_reco_t *r, uint32_t id, double w, double g,
                       double ge) {
        item_t *it = &r->items[id];

        it->n = (float)(it->n + w * g);
        refresh_list(r, id, g);
        pop_touch(r, r->gpop, &r->ngpop, id);
        if (it->cat >= 0)
                pop_touch(r, r->cats[it->cat].pop, &r->cats[it->cat].npop, id);
        pend_add(r, id, NONE, w * ge);
}

static void count_pair(loy_reco_t *r, uint32_t a, uint32_t b, double w,
                       double g, double ge) {
        pair_t *p = pair_get(r, a, b);
        double c, sim;

        p->c = (float)(p->c + w * g);
        c = p->c / g;
        sim = loy_reco_sim(&r->conf, c, r->items[a].n / g, r->items[b].n / g);
        nbr_upsert(r, a, b, (float)sim);
        nbr_upsert(r, b, a, (float)sim);
        pend_add(r, p->a, p->b, w * ge);
}

int loy_reco_learn_basket(loy_reco_t *r, const char *const *skus,
                          const char *const *cats, int n, int64_t ts_ms,
                          double w) {
        uint32_t ids[LOY_LINES_MAX];
        int m = 0, i, j, rc = 0;
        double g, ge;

        for (i = 0; i < n && m < r->conf.max_basket; i++)
                if (loy_reco_is_product(r, skus[i]))
                        m++;
        if (!m)
                return 0;
        maybe_rebase(r, ts_ms);
        if (ensure_rest(r, (uint32_t)m, (uint32_t)m) ||
            ensure_pairs(r, (uint64_t)m * (m - 1) / 2, ts_ms))
                rc = -1;
        g = scale_at(r, ts_ms);
        ge = epoch_scale(r, ts_ms);
        m = 0;
        for (i = 0; i < n && m < r->conf.max_basket; i++) {
                uint32_t id;
                if (!loy_reco_is_product(r, skus[i]))
                        continue;
                id = item_intern(r, skus[i], cats ? cats[i] : NULL);
                if (id == NONE) {
                        rc = -1;
                        continue;
                }
                for (j = 0; j < m && ids[j] != id; j++)
                        ;
                if (j == m)
                        ids[m++] = id;
        }
        for (i = 0; i < m; i++)
                count_item(r, ids[i], w, g, ge);
        if (r->npairs + (uint64_t)m * (m - 1) / 2 <=
            (uint64_t)r->pairs_cap * 3 / 4)
                for (i = 0; i < m; i++)
                        for (j = i + 1; j < m; j++)
                                count_pair(r, ids[i], ids[j], w, g, ge);
        r->st.baskets++;
        update_bytes(r, 0);
        return rc;
}

static void hist_put(const loy_reco_t *r, loy_reco_hist_t *h, uint32_t id,
                     int64_t ts, double w, int bought) {
        const item_t *it = &r->items[id];
        loy_reco_hist_item_t *e = NULL;
        int i, victim = -1;
        double vw = 0;

        for (i = 0; i < h->n && !e; i++)
                if (h->it[i].item == id && h->it[i].gen == it->gen)
                        e = &h->it[i];
        if (!e) {
                if (h->n < r->conf.hist_size) {
                        victim = h->n++;
                } else {
                        /* dead entries first, then the weakest now */
                        for (i = 0; i < h->n; i++) {
                                const loy_reco_hist_item_t *x = &h->it[i];
                                double xw;
                                if (x->item >= r->items_used ||
                                    !r->items[x->item].alive ||
                                    r->items[x->item].gen != x->gen) {
                                        victim = i;
                                        break;
                                }
                                xw = x->weight * decay(r->hist_hl_ms,
                                                       (double)(ts - x->ts_ms));
                                if (victim < 0 || xw < vw) {
                                        victim = i;
                                        vw = xw;
                                }
                        }
                }
                e = &h->it[victim];
                e->item = id;
                e->gen = it->gen;
                e->ts_ms = ts;
                e->weight = (float)w;
                e->bought = bought ? 1 : 0;
                e->pad = 0;
                return;
        }
        if (ts >= e->ts_ms) {
                e->weight = (float)(e->weight * decay(r->hist_hl_ms,
                                                      (double)(ts - e->ts_ms)) +
                                    w);
                e->ts_ms = ts;
        } else {
                e->weight =
                    (float)(e->weight +
                            w * decay(r->hist_hl_ms, (double)(e->ts_ms - ts)));
        }
        if (bought && e->bought < UINT16_MAX)
                e->bought++;
}

void loy_reco_hist_init(loy_reco_hist_t *h) {
        memset(h, 0, sizeof(*h));
}

int loy_reco_hist_add(loy_reco_t *r, loy_reco_hist_t *h, const char *sku,
                      const char *cat, int64_t ts_ms, double w, int bought) {
        uint32_t id;

        if (!loy_reco_is_product(r, sku))
                return 0;
        maybe_rebase(r, ts_ms);
        if (ensure_rest(r, 1, 0))
                return -1;
        id = item_intern(r, sku, cat);
        if (id == NONE)
                return -1;
        hist_put(r, h, id, ts_ms, w, bought);
        update_bytes(r, 0);
        return 0;
}

static int observe_view(loy_reco_t *r, loy_reco_hist_t *h,
                        const loy_event_t *ev) {
        int sw = r->conf.session_window, i, seen = 0, rc = 0;
        double w = r->conf.w_hist_action[ev->action], g, ge;
        uint64_t sh;
        uint32_t id;

        if (!loy_reco_is_product(r, ev->sku) || w <= 0)
                return 0;
        maybe_rebase(r, ev->ts_ms);
        if (ensure_rest(r, 1, (uint32_t)sw + 1) ||
            ensure_pairs(r, (uint64_t)sw, ev->ts_ms))
                rc = -1;
        id = item_intern(r, ev->sku, ev->category);
        if (id == NONE)
                return -1;
        sh = hash_str(ev->session_id) | 1;
        if (sh != h->sess_hash) {
                h->sess_hash = sh;
                h->sess_n = 0;
                h->sess_pos = 0;
        }
        for (i = 0; i < h->sess_n; i++)
                if (h->sess_item[i] == id && h->sess_gen[i] == r->items[id].gen)
                        seen = 1;
        if (!seen && sw > 0 && r->conf.w_browse > 0) {
                g = scale_at(r, ev->ts_ms);
                ge = epoch_scale(r, ev->ts_ms);
                count_item(r, id, r->conf.w_browse, g, ge);
                for (i = 0; i < h->sess_n; i++) {
                        uint32_t u = h->sess_item[i];
                        if (u >= r->items_used || !r->items[u].alive ||
                            r->items[u].gen != h->sess_gen[i] || u == id)
                                continue;
                        if (r->npairs + 1 > (uint64_t)r->pairs_cap * 3 / 4)
                                break;
                        count_pair(r, u, id, r->conf.w_browse, g, ge);
                }
                h->sess_item[h->sess_pos] = id;
                h->sess_gen[h->sess_pos] = r->items[id].gen;
                h->sess_pos = (h->sess_pos + 1) % sw;
                if (h->sess_n < sw)
                        h->sess_n++;
        }
        hist_put(r, h, id, ev->ts_ms, w, 0);
        r->st.views++;
        update_bytes(r, 0);
        return rc;
}

int loy_reco_observe(loy_reco_t *r, loy_reco_hist_t *h, const loy_event_t *ev) {
        const char *skus[LOY_LINES_MAX], *cats[LOY_LINES_MAX];
        int n = 0, rc;

        if (ev->kind == LOY_EV_BROWSE)
                return h && ev->sku[0] ? observe_view(r, h, ev) : 0;
        if (ev->kind != LOY_EV_PURCHASE)
                return 0;
        for (int i = 0; i < ev->nlines; i++) {
                const loy_line_t *l = &ev->lines[i];
                int j;
                if (l->quantity <= 0 || !loy_reco_is_product(r, l->sku)) {
                        r->st.lines_skipped++;
                        continue;
                }
                /* an item on two lines is still one purchase of it; the
                 * scan is bounded by max_basket */
                for (j = 0;
                     j < n && j < r->conf.max_basket && strcmp(skus[j], l->sku);
                     j++)
                        ;
                if (j < n && j < r->conf.max_basket)
                        continue;
                skus[n] = l->sku;
                cats[n++] = l->category;
        }
        if (n > r->conf.max_basket)
                r->st.lines_skipped += n - r->conf.max_basket;
        rc = loy_reco_learn_basket(r, skus, cats, n, ev->ts_ms,
                                   r->conf.w_purchase);
        if (h)
                for (int i = 0; i < n; i++)
                        if (loy_reco_hist_add(r, h, skus[i], cats[i], ev->ts_ms,
                                              r->conf.w_hist_purchase, 1))
                                rc = -1;
        return rc;
}

int loy_reco_set_nbrs(loy_reco_t *r, const char *sku,
                      const char *const *nbr_skus, const double *sims, int n) {
        uint32_t id, nid;
        item_t *it;
        int rc = 0;

        if (n < 0 || n > LOY_LINES_MAX)
                return -1;
        if (ensure_rest(r, (uint32_t)n + 1, 1))
                return -1;
        id = item_intern(r, sku, NULL);
        if (id == NONE)
                return -1;
        it = &r->items[id];
        if (!it->blk && nbr_alloc(r, it))
                return -1;
        it->nnbr = 0;
        it->ext = 1;
        for (int i = 0; i < n; i++) {
                if (!(sims[i] > 0) || !strcmp(nbr_skus[i], sku))
                        continue;
                nid = item_intern(r, nbr_skus[i], NULL);
                if (nid == NONE) {
                        rc = -1;
                        continue;
                }
                nbr_upsert(r, id, nid, (float)sims[i]);
        }
        update_bytes(r, 0);
        return rc;
}

/* ------------------------------------------------------------------------
 * Scoring
 * ------------------------------------------------------------------------ */

enum { SC_EXCLUDED = 1, SC_USED = 2 };

static uint32_t sc_slot(loy_reco_t *r, uint32_t id) {
        uint32_t mask = r->sc_cap - 1;
        uint32_t i = (uint32_t)mix64(id) & mask;

        while (r->sc_id[i] != NONE && r->sc_id[i] != id)
                i = (i + 1) & mask;
        if (r->sc_id[i] == NONE) {
                r->sc_id[i] = id;
                r->sc_score[i] = 0;
                r->sc_flag[i] = 0;
                r->sc_touched[r->sc_ntouched++] = i;
        }
        return i;
}

static void sc_clear(loy_reco_t *r) {
        for (uint32_t k = 0; k < r->sc_ntouched; k++)
                r->sc_id[r->sc_touched[k]] = NONE;
        r->sc_ntouched = 0;
}

static int rec_better(const loy_reco_rec_t *a, const loy_reco_rec_t *b) {
        if (a->score != b->score)
                return a->score > b->score;
        return strcmp(a->sku, b->sku) < 0;
}

/* Appends the items of list (best n first) not used yet. */
static int fill_from(loy_reco_t *r, const uint32_t *list, int nl,
                     loy_reco_rec_t *out, int k, int n, loy_reco_src_t src) {
        uint32_t tmp[LOY_RECO_N_MAX];
        int i, j;

        memcpy(tmp, list, nl * sizeof(*tmp));
        /* insertion sort by popularity, sku to break ties */
        for (i = 1; i < nl; i++) {
                uint32_t x = tmp[i];
                for (j = i; j > 0; j--) {
                        const item_t *p = &r->items[tmp[j - 1]];
                        const item_t *q = &r->items[x];
                        if (p->n > q->n ||
                            (p->n == q->n &&
                             strcmp(item_sku(p), item_sku(q)) < 0))
                                break;
                        tmp[j] = tmp[j - 1];
                }
                tmp[j] = x;
        }
        for (i = 0; i < nl && k < n; i++) {
                uint32_t s = sc_slot(r, tmp[i]);
                if (r->sc_flag[s] & (SC_EXCLUDED | SC_USED))
                        continue;
                r->sc_flag[s] |= SC_USED;
                out[k].sku = item_sku(&r->items[tmp[i]]);
                out[k].score = 0;
                out[k++].src = src;
        }
        return k;
}

int loy_reco_recommend(loy_reco_t *r, const loy_reco_hist_t *h, int64_t now_ms,
                       loy_reco_rec_t *out, int n) {
        int k = 0, i, j, hn;
        int32_t cats[LOY_RECO_HIST_MAX];
        int ncats = 0;
        int order[LOY_RECO_HIST_MAX];
        uint32_t oslot[LOY_RECO_N_MAX];

        if (n > LOY_RECO_N_MAX)
                n = LOY_RECO_N_MAX;
        if (n <= 0)
                return 0;
        hn = h ? h->n : 0;
        if (hn > LOY_RECO_HIST_MAX)
                hn = LOY_RECO_HIST_MAX;
        for (i = 0; i < hn; i++) {
                const loy_reco_hist_item_t *e = &h->it[i];
                if (e->item >= r->items_used || !r->items[e->item].alive ||
                    r->items[e->item].gen != e->gen || !e->bought ||
                    r->conf.include_bought)
                        continue;
                r->sc_flag[sc_slot(r, e->item)] |= SC_EXCLUDED;
        }
        for (i = 0; i < hn; i++) {
                const loy_reco_hist_item_t *e = &h->it[i];
                const item_t *it;
                const nbr_t *l;
                double w;
                uint32_t s;
                if (e->item >= r->items_used)
                        continue;
                it = &r->items[e->item];
                if (!it->alive || it->gen != e->gen)
                        continue;
                w = e->weight *
                    decay(r->hist_hl_ms, (double)(now_ms - e->ts_ms));
                if (e->bought && r->conf.include_bought &&
                    r->conf.repeat_weight > 0) {
                        s = sc_slot(r, e->item);
                        r->sc_score[s] += (float)(w * r->conf.repeat_weight);
                }
                l = nbr_list(r, it);
                for (j = 0; j < it->nnbr; j++) {
                        s = sc_slot(r, l[j].id);
                        r->sc_score[s] += (float)(w * l[j].sim);
                }
        }
        /* popularity breaks near-ties: of two items bought as often, the
         * one most people buy is the likelier repeat */
        if (r->conf.pop_weight > 0 && r->ngpop) {
                float top = 0;
                for (i = 0; i < r->ngpop; i++)
                        if (r->items[r->gpop[i]].n > top)
                                top = r->items[r->gpop[i]].n;
                for (uint32_t t = 0; t < r->sc_ntouched && top > 0; t++) {
                        uint32_t s = r->sc_touched[t];
                        r->sc_score[s] +=
                            (float)(r->conf.pop_weight *
                                    r->items[r->sc_id[s]].n / top);
                }
        }
        /* top n of the accumulated candidates */
        for (uint32_t t = 0; t < r->sc_ntouched; t++) {
                uint32_t s = r->sc_touched[t];
                loy_reco_rec_t c;
                if (r->sc_flag[s] & SC_EXCLUDED || !(r->sc_score[s] > 0))
                        continue;
                c.sku = item_sku(&r->items[r->sc_id[s]]);
                c.score = r->sc_score[s];
                c.src = LOY_RECO_SRC_NBR;
                if (k == n && !rec_better(&c, &out[n - 1]))
                        continue;
                j = k < n ? k++ : n - 1;
                for (; j > 0 && rec_better(&c, &out[j - 1]); j--) {
                        out[j] = out[j - 1];
                        oslot[j] = oslot[j - 1];
                }
                out[j] = c;
                oslot[j] = s;
        }
        for (i = 0; i < k; i++)
                r->sc_flag[oslot[i]] |= SC_USED;
        if (k < n) {
                /* categories of the most recent history items first */
                for (i = 0; i < hn; i++)
                        order[i] = i;
                for (i = 1; i < hn; i++) {
                        int x = order[i];
                        for (j = i; j > 0 &&
                                    h->it[order[j - 1]].ts_ms < h->it[x].ts_ms;
                             j--)
                                order[j] = order[j - 1];
                        order[j] = x;
                }
                for (i = 0; i < hn && k < n; i++) {
                        const loy_reco_hist_item_t *e = &h->it[order[i]];
                        int32_t c;
                        if (e->item >= r->items_used ||
                            !r->items[e->item].alive ||
                            r->items[e->item].gen != e->gen)
                                continue;
                        c = r->items[e->item].cat;
                        if (c < 0)
                                continue;
                        for (j = 0; j < ncats && cats[j] != c; j++)
                                ;
                        if (j < ncats)
                                continue;
                        cats[ncats++] = c;
                        k = fill_from(r, r->cats[c].pop, r->cats[c].npop, out,
                                      k, n, LOY_RECO_SRC_CAT_POP);
                }
                k = fill_from(r, r->gpop, r->ngpop, out, k, n,
                              LOY_RECO_SRC_POP);
        }
        sc_clear(r);
        return k;
}

int loy_reco_nbrs(const loy_reco_t *r, const char *sku, loy_reco_rec_t *out,
                  int n) {
        uint32_t id = item_find(r, sku);
        const item_t *it;
        const nbr_t *l;
        int k = 0, j;

        if (id == NONE)
                return -1;
        it = &r->items[id];
        l = nbr_list(r, it);
        for (int i = 0; i < it->nnbr; i++) {
                loy_reco_rec_t c;
                c.sku = item_sku(&r->items[l[i].id]);
                c.score = l[i].sim;
                c.src = LOY_RECO_SRC_NBR;
                if (k == n && (n == 0 || !rec_better(&c, &out[n - 1])))
                        continue;
                j = k < n ? k++ : n - 1;
                for (; j > 0 && rec_better(&c, &out[j - 1]); j--)
                        out[j] = out[j - 1];
                out[j] = c;
        }
        return k;
}

double loy_reco_count(const loy_reco_t *r, const char *sku, int64_t now_ms) {
        uint32_t id = item_find(r, sku);
        return id == NONE ? 0 : r->items[id].n / scale_at(r, now_ms);
}

double loy_reco_pair(const loy_reco_t *r, const char *a, const char *b,
                     int64_t now_ms) {
        uint32_t ia = item_find(r, a), ib = item_find(r, b);
        const pair_t *p;

        if (ia == NONE || ib == NONE || ia == ib)
                return 0;
        p = pair_find(r, ia, ib);
        return p ? p->c / scale_at(r, now_ms) : 0;
}

/* ------------------------------------------------------------------------
 * History as text
 * ------------------------------------------------------------------------ */

size_t loy_reco_hist_format(const loy_reco_t *r, const loy_reco_hist_t *h,
                            char *buf, size_t size) {
        size_t len = 0;

        if (size)
                buf[0] = 0;
        for (int i = 0; i < h->n && i < LOY_RECO_HIST_MAX; i++) {
                const loy_reco_hist_item_t *e = &h->it[i];
                int w;
                if (e->item >= r->items_used || !r->items[e->item].alive ||
                    r->items[e->item].gen != e->gen)
                        continue;
                /* "sku\tts\tweight\tbought\n" by hand: snprintf of the
                 * weight was a tenth of the processor's CPU on real
                 * baskets */
                {
                        char line[LOY_SKU_MAX + 80];
                        const char *sku = item_sku(&r->items[e->item]);
                        size_t sl = strlen(sku), at;
                        if (sl > LOY_SKU_MAX)
                                continue;
                        memcpy(line, sku, sl);
                        at = sl;
                        line[at++] = '\t';
                        w = loy_fmt_i64(line + at, sizeof(line) - at, e->ts_ms);
                        at += w > 0 ? (size_t)w : 0;
                        line[at++] = '\t';
                        w = loy_fmt_float(line + at, sizeof(line) - at,
                                          e->weight);
                        at += w > 0 ? (size_t)w : 0;
                        line[at++] = '\t';
                        w = loy_fmt_i64(line + at, sizeof(line) - at,
                                        e->bought);
                        at += w > 0 ? (size_t)w : 0;
                        line[at++] = '\n';
                        if (at >= size - len) {
                                if (size)
                                        buf[len] = 0;
                                break;
                        }
                        memcpy(buf + len, line, at);
                        len += at;
                        buf[len] = 0;
                }
        }
        return len;
}

int loy_reco_hist_parse(loy_reco_t *r, loy_reco_hist_t *h, const char *text) {
        const char *p = text;

        loy_reco_hist_init(h);
        while (*p) {
                char sku[LOY_SKU_MAX + 1];
                const char *tab = strchr(p, '\t'), *nl;
                char *end;
                int64_t ts;
                double w;
                unsigned long b;
                uint32_t id;
                if (!tab || (size_t)(tab - p) > LOY_SKU_MAX || tab == p)
                        goto bad;
                memcpy(sku, p, (size_t)(tab - p));
                sku[tab - p] = 0;
                ts = strtoll(tab + 1, &end, 10);
                if (*end != '\t')
                        goto bad;
                w = strtod(end + 1, &end);
                if (*end != '\t' || !isfinite(w) || w < 0)
                        goto bad;
                b = strtoul(end + 1, &end, 10);
                if (*end != '\n' && *end)
                        goto bad;
                nl = end;
                if (h->n < r->conf.hist_size && loy_reco_is_product(r, sku)) {
                        if (ensure_rest(r, 1, 0))
                                goto bad;
                        id = item_intern(r, sku, NULL);
                        if (id == NONE)
                                goto bad;
                        h->it[h->n].item = id;
                        h->it[h->n].gen = r->items[id].gen;
                        h->it[h->n].ts_ms = ts;
                        h->it[h->n].weight = (float)w;
                        h->it[h->n].bought =
                            (uint16_t)(b > UINT16_MAX ? UINT16_MAX : b);
                        h->it[h->n++].pad = 0;
                }
                p = *nl ? nl + 1 : nl;
        }
        update_bytes(r, 0);
        return 0;
bad:
        loy_reco_hist_init(h);
        return -1;
}

void loy_reco_stats(const loy_reco_t *r, loy_reco_stats_t *st) {
        *st = r->st;
        st->items = r->items_alive;
        st->pairs = (int64_t)r->npairs;
        st->nbr_lists = r->pool_live;
        st->pending = r->npend;
}
