/*
 * loy_store against a real redis-server: round trips through the field
 * table, the exact public key layout (checked with redis-cli), timers,
 * outbox, stats, namespaces, errors, connection loss and a large pipeline.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "loy_feat.h"
#include "loy_rfm.h"
#include "loy_store.h"
#include "loy_cluster.h"
#include "loy_rconn.h"
#include "tu.h"
#include "tu_cluster.h"

static tu_redis_t R;
static loy_store_t *S;
static loy_feat_conf_t FC;
static char E[512];

/* 2024-03-05T12:00:00Z */
#define T0 1709640000000LL
#define DAY LOY_MS_PER_DAY

/* ------------------------------------------------------------- helpers */

static int suite_init(void) {
        if (tu_redis_start(&R, 0))
                return -1;
        loy_feat_conf_default(&FC);
        S = loy_store_create("127.0.0.1", R.port, NULL, 2000, E, sizeof(E));
        return S ? 0 : -1;
}

static int suite_clean(void) {
        loy_store_destroy(S);
        tu_redis_stop(&R);
        return 0;
}

/* The same tests on a 3-master Redis Cluster: R is its first master (the
 * store's seed; redis-cli follows redirections). */
static tu_cluster_t C;
static int on_cluster;

static int cluster_init(void) {
        if (tu_cluster_tools() || tu_cluster_start(&C, 3))
                return -1;
        on_cluster = 1;
        memset(&R, 0, sizeof(R));
        R.port = C.node[0].port;
        R.cluster = 1;
        S = loy_store_create("127.0.0.1", R.port, NULL, 2000, E, sizeof(E));
        return S && loy_store_connect(S, E, sizeof(E)) == LOY_STORE_OK ? 0 : -1;
}

static int cluster_clean(void) {
        loy_store_destroy(S);
        S = NULL;
        tu_cluster_stop(&C);
        on_cluster = 0;
        return 0;
}

/* The server that holds key: R, or its slot's master. */
static tu_redis_t holder(const char *key) {
        tu_redis_t at = R;
        if (on_cluster) {
                int i =
                    tu_cluster_owner(&C, 0, loy_cluster_slot(key, strlen(key)));
                at.port = C.node[i < 0 ? 0 : i].port;
        }
        return at;
}

static void flush(void) {
        if (!on_cluster) {
                free(tu_redis_cli(&R, "FLUSHALL"));
                return;
        }
        for (int i = 0; i < C.n; i++) {
                tu_redis_t node = {.port = C.node[i].port};
                free(tu_redis_cli(&node, "FLUSHALL"));
        }
}

/* Asserts that redis-cli prints exactly want for args. */
#define CLI_EQ(r, args, want)                                                  \
        do {                                                                   \
                char *out_ = tu_redis_cli((r), (args));                        \
                CU_ASSERT_PTR_NOT_NULL_FATAL(out_);                            \
                if (strcmp(out_, (want)))                                      \
                        fprintf(stderr, "\n  %s -> \"%s\", want \"%s\"\n",     \
                                (args), out_, (want));                         \
                CU_ASSERT_STRING_EQUAL(out_, (want));                          \
                free(out_);                                                    \
        } while (0)

/* A buyer: bought on 3 days, 3 orders, scored. */
static void buyer(loy_cust_t *c, const char *id) {
        loy_feat_init(c, id);
        c->first_purchase_ms = T0 - 30 * DAY;
        c->last_purchase_ms = T0 - 2 * DAY;
        c->orders = 3;
        c->purchase_days = 3;
        c->gross_value = 150.5;
        c->first_day_value = 40.25;
        c->returns = 1;
        c->return_value = 10.5;
        c->ipt_mean_days = 14;
        c->ipt_m2 = 8;
        c->dec_purchases = 2.5;
        c->dec_spend = 120.75;
        c->dec_ref_ms = T0 - 2 * DAY;
        c->points = 140;
        c->tier = 1;
        c->views = 12;
        c->carts = 4;
        c->cart_removes = 1;
        c->searches = 5;
        c->wishlists = 2;
        c->sessions = 6;
        c->last_browse_ms = T0 - DAY;
        c->last_event_ms = T0 - DAY;
        c->p_alive = 0.875;
        c->churn_prob = 0.25;
        c->exp_purchases = 1.5;
        c->clv = 123.5;
        c->r_score = 4;
        c->f_score = 3;
        c->m_score = 5;
        c->loyalty_score = 4.1;
        c->loyalty_group = 2;
        c->segment = LOY_SEG_NEW;
        c->scored_ms = T0 - DAY;
        c->next_check_ms = 0;
}

static void wr_init(loy_cust_write_t *w, const loy_cust_t *c) {
        memset(w, 0, sizeof(*w));
        w->cust = c;
}

/* Batch aggregates (large: one, zeroed for each use). */
static loy_batch_agg_t AGG;

static loy_batch_agg_t *agg_zero(void) {
        memset(&AGG, 0, sizeof(AGG));
        return &AGG;
}

static int write_agg(const loy_batch_agg_t *agg) {
        int rc = loy_store_write_batch(S, NULL, 0, agg, NULL, 0, T0, &FC, E,
                                       sizeof(E));
        if (rc)
                fprintf(stderr, "\n  write_batch: %s\n", E);
        return rc;
}

static int write1(const loy_cust_write_t *w) {
        int rc = loy_store_write(S, w, 1, T0, &FC, E, sizeof(E));
        if (rc)
                fprintf(stderr, "\n  write: %s\n", E);
        return rc;
}

/* As the store writes it: derived fields at the customer's scoring time
 * (not the batch clock T0 given to the write). */
static void fmt(const loy_cust_t *c, const loy_field_t *f, char *buf,
                size_t size) {
        int n = loy_feat_field_format(c, f, c->scored_ms ? c->scored_ms : T0,
                                      &FC, buf, size);
        CU_ASSERT_TRUE(n >= 0);
        if (n < 0)
                buf[0] = '\0';
}

/* ------------------------------------------------------------- connect */

static void test_create_args(void) {
        loy_store_t *s;
        CU_ASSERT_PTR_NULL(
            loy_store_create(NULL, 6379, NULL, 100, E, sizeof(E)));
        CU_ASSERT_PTR_NULL(loy_store_create("", 6379, NULL, 100, E, sizeof(E)));
        CU_ASSERT_PTR_NULL(
            loy_store_create("127.0.0.1", 0, NULL, 100, E, sizeof(E)));
        CU_ASSERT_PTR_NULL(
            loy_store_create("127.0.0.1", 70000, NULL, 100, E, sizeof(E)));
        CU_ASSERT_PTR_NULL(
            loy_store_create("127.0.0.1", 6379, "a{b}", 100, E, sizeof(E)));
        CU_ASSERT_TRUE(strstr(E, "namespace") != NULL);
        CU_ASSERT_PTR_NULL(
            loy_store_create("127.0.0.1", 6379, "loy", -1, E, sizeof(E)));

        s = loy_store_create("127.0.0.1", R.port, NULL, 0, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_TRUE(loy_store_is_connected(s));
        CU_ASSERT_STRING_EQUAL(loy_store_ns(s), "loy");
        CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_OK);
        loy_store_destroy(s);
}

static void test_server_down(void) {
        tu_redis_t dead;
        loy_store_t *s;
        loy_cust_t c;
        loy_cust_write_t w;
        char **ids = NULL;
        int n = -1;

        /* A port that had a server a moment ago and has none now. */
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&dead, 0), 0);
        tu_redis_kill(&dead, SIGKILL);
        s = loy_store_create("127.0.0.1", dead.port, "x", 200, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_FALSE(loy_store_is_connected(s));
        E[0] = '\0';
        CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_ERR_IO);
        CU_ASSERT_TRUE(E[0] != '\0');

        buyer(&c, "1");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL(loy_store_write(s, &w, 1, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR_IO);
        CU_ASSERT_TRUE(strstr(E, "not connected") != NULL);
        CU_ASSERT_EQUAL(
            loy_store_timers_due(s, 0, T0, 10, &ids, &n, E, sizeof(E)),
            LOY_STORE_ERR_IO);
        CU_ASSERT_PTR_NULL(ids);
        CU_ASSERT_EQUAL(n, 0);

        /* The same store comes up once a server listens there. */
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&dead), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_OK);
        CU_ASSERT_TRUE(loy_store_is_connected(s));
        CU_ASSERT_EQUAL(loy_store_write(s, &w, 1, T0, &FC, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&dead, "HGET x:c:{1} orders", "3");
        loy_store_destroy(s);
        tu_redis_stop(&dead);
}

/* ---------------------------------------------------------- round trip */

static void test_round_trip(void) {
        loy_cust_t a, b;
        loy_cust_t *pb = &b;
        loy_cust_write_t w;
        int found = -1, nf = 0;
        char fa[4096], fb[4096];

        flush();
        buyer(&a, "42");
        snprintf(a.recent_views[0], sizeof(a.recent_views[0]), "sku-2");
        snprintf(a.recent_views[1], sizeof(a.recent_views[1]), "sku-1");
        a.ipt_n = 2;
        CU_ASSERT_EQUAL(loy_feat_slot_set(&a, "off:purchases:0", 17), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_set(&a, "cool:winback", T0 - 5 * DAY), 0);
        wr_init(&w, &a);
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);

        loy_feat_init(&b, "42");
        CU_ASSERT_EQUAL_FATAL(loy_store_load(S, &pb, 1, &found, E, sizeof(E)),
                              LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        /* Every field of the table, derived ones too (they are computed
         * from stored ones at the same now_ms). */
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                fmt(&a, f, fa, sizeof(fa));
                fmt(&b, f, fb, sizeof(fb));
                if (strcmp(fa, fb))
                        fprintf(stderr, "\n  field %s: \"%s\" != \"%s\"\n",
                                f->name, fa, fb);
                CU_ASSERT_STRING_EQUAL(fa, fb);
                nf++;
        }
        CU_ASSERT_TRUE(nf > 0);
        CU_ASSERT_EQUAL(b.orders, 3);
        CU_ASSERT_EQUAL(b.first_purchase_ms, T0 - 30 * DAY);
        CU_ASSERT_DOUBLE_EQUAL(b.churn_prob, 0.25, 0);
        CU_ASSERT_EQUAL(b.segment, LOY_SEG_NEW);
        CU_ASSERT_EQUAL(b.nslots, 2);
        CU_ASSERT_STRING_EQUAL(b.recent_views[0], "sku-2");
        CU_ASSERT_STRING_EQUAL(b.recent_views[1], "sku-1");
        CU_ASSERT_EQUAL(b.ipt_n, 2);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&b, "off:purchases:0", -1), 17);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&b, "cool:winback", -1),
                        T0 - 5 * DAY);

        /* The public hash, as a dashboard sees it. */
        CLI_EQ(&R, "HGET loy:c:{42} orders", "3");
        CLI_EQ(&R, "HGET loy:c:{42} first_purchase_ms", "1707048000000");
        CLI_EQ(&R, "HGET loy:c:{42} off:purchases:0", "17");
        CLI_EQ(&R, "HGET loy:c:{42} churn_prob", "0.25");
        /* derived at the customer's scored_ms = T0 - 1 day (not the
         * write's clock T0): last order 1 day before it */
        CLI_EQ(&R, "HGET loy:c:{42} recency_days", "1");
        CLI_EQ(&R, "HGET loy:c:{42} monetary", "140"); /* net of returns */
        CLI_EQ(&R, "HGET loy:c:{42} segment_name", "new");
        CLI_EQ(&R, "HGET loy:c:{42} tier_name", "silver");
        CLI_EQ(&R, "HGET loy:c:{42} cool:winback", "1709208000000");
        /* The rest only in the packed field: the view, its slots and e. */
        CLI_EQ(&R, "HEXISTS loy:c:{42} gross_value", "0");
        CLI_EQ(&R, "HEXISTS loy:c:{42} recent_views", "0");
        {
                char want[16];
                int nview = 0;
                for (const loy_field_t *f = loy_feat_fields; f->name; f++)
                        nview += f->view;
                CU_ASSERT_TRUE(nview > 10 && nview < nf / 2);
                /* the view, 2 slots and the packed state's chunks */
                snprintf(want, sizeof(want), "%d", nview + 2 + 4);
                CLI_EQ(&R, "HLEN loy:c:{42}", want);
                CLI_EQ(&R, "OBJECT ENCODING loy:c:{42}", "listpack");
        }

        /* A second write sends the packed field and only the view's
         * fields that changed. */
        {
                tu_redis_t at = holder("loy:c:{42}");
                loy_shadow_t sh;
                char *st;
                free(tu_redis_cli(&at, "CONFIG RESETSTAT"));
                loy_store_shadow_take(&sh, &b, &FC);
                b.orders = 4;
                wr_init(&w, &b);
                w.shadow = &sh;
                CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
                CLI_EQ(&R, "HGET loy:c:{42} orders", "4");
                st = tu_redis_cli(&at, "INFO commandstats");
                CU_ASSERT_PTR_NOT_NULL_FATAL(st);
                CU_ASSERT_TRUE(strstr(st, "cmdstat_hset:calls=1,") != NULL);
                free(st);
        }
}

/* A hash written before the packed field existed (or by hand) is read
 * field by field; a packed field that does not unpack is an error naming
 * the customer. */
static void test_load_legacy(void) {
        loy_cust_t x;
        loy_cust_t *px = &x;
        int found = -1;

        flush();
        free(tu_redis_cli(&R, "HSET loy:c:{old} orders 5 frequency 2 "
                              "gross_value 80.25 last_purchase_ms "
                              "1707048000000 last_event_ms 1707048000000 "
                              "recent_views a,b off:purchases:1 9"));
        loy_feat_init(&x, "old");
        CU_ASSERT_EQUAL_FATAL(loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                              LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        CU_ASSERT_EQUAL(x.orders, 5);
        CU_ASSERT_EQUAL(x.purchase_days, 2);
        CU_ASSERT_DOUBLE_EQUAL(x.gross_value, 80.25, 0);
        CU_ASSERT_STRING_EQUAL(x.recent_views[1], "b");
        CU_ASSERT_EQUAL(loy_feat_slot_get(&x, "off:purchases:1", -1), 9);

        free(tu_redis_cli(&R, "HSET loy:c:{old} e0 junk"));
        loy_feat_init(&x, "old");
        E[0] = '\0';
        CU_ASSERT_EQUAL(loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_TRUE(strstr(E, "customer old: ") != NULL);

        /* A state longer than the chunks a load fetches first (every slot
         * used, long names): read whole, the same customer. */
        {
                static loy_cust_t a;
                loy_cust_write_t w;
                char name[LOY_SLOT_NAME_MAX];
                buyer(&a, "long");
                for (int i = a.nslots; i < LOY_SLOTS_MAX; i++) {
                        snprintf(name, sizeof(name),
                                 "cool:a_rule_with_a_"
                                 "rather_long_name_to_fill_the_slot_%02d",
                                 i);
                        CU_ASSERT_EQUAL(loy_feat_slot_set(&a, name, i), 0);
                }
                wr_init(&w, &a);
                CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
                CLI_EQ(&R, "HEXISTS loy:c:{long} e8", "1");
                loy_feat_init(&x, "long");
                CU_ASSERT_EQUAL_FATAL(
                    loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                    LOY_STORE_OK);
                CU_ASSERT_EQUAL(found, 1);
                CU_ASSERT_EQUAL(x.nslots, LOY_SLOTS_MAX);
                CU_ASSERT_EQUAL(loy_feat_slot_get(&x, name, -1),
                                LOY_SLOTS_MAX - 1);
                CU_ASSERT_EQUAL(x.orders, a.orders);
        }
}

static void test_load_missing(void) {
        loy_cust_t a, x, y;
        loy_cust_t *p[3] = {&x, &y, NULL};
        loy_cust_t z;
        loy_cust_write_t w;
        int found[3] = {-1, -1, -1};

        flush();
        buyer(&a, "7");
        wr_init(&w, &a);
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        loy_feat_init(&x, "nobody");
        loy_feat_init(&y, "7");
        loy_feat_init(&z, "also-nobody");
        p[2] = &z;
        CU_ASSERT_EQUAL(loy_store_load(S, p, 3, found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found[0], 0);
        CU_ASSERT_EQUAL(found[1], 1);
        CU_ASSERT_EQUAL(found[2], 0);
        CU_ASSERT_EQUAL(x.orders, 0);
        CU_ASSERT_EQUAL(x.first_purchase_ms, 0);
        CU_ASSERT_EQUAL(y.orders, 3);
        /* found may be NULL; n 0 is a no-op. */
        CU_ASSERT_EQUAL(loy_store_load(S, p, 3, NULL, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_load(S, p, 0, found, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "EXISTS loy:c:{nobody}", "0");
}

/* --------------------------------------------------- aggregates, ranks */

static void test_ranks(void) {
        loy_cust_t c, browser;
        loy_cust_write_t w;
        loy_shadow_t sh;

        flush();
        buyer(&c, "42");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:rank:churn 42", "0.25");
        CLI_EQ(&R, "ZSCORE loy:rank:clv 42", "123.5");

        /* Buys again: both boards follow. */
        c.churn_prob = 0.125;
        c.clv = 300;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:rank:churn 42", "0.125");
        CLI_EQ(&R, "ZSCORE loy:rank:clv 42", "300");
        CLI_EQ(&R, "ZCARD loy:rank:churn", "1");

        /* With a shadow, a score that did not change is not sent again:
         * a board entry removed by hand stays removed until it moves. */
        memset(&sh, 0, sizeof(sh));
        w.shadow = &sh;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        free(tu_redis_cli(&R, "ZREM loy:rank:clv 42"));
        c.churn_prob = 0.5;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:rank:churn 42", "0.5");
        CLI_EQ(&R, "ZSCORE loy:rank:clv 42", "");
        c.clv = 301;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:rank:clv 42", "301");

        /* A browse-only customer is not ranked. */
        loy_feat_init(&browser, "b1");
        browser.views = 3;
        browser.last_event_ms = T0;
        browser.segment = LOY_SEG_NONE;
        wr_init(&w, &browser);
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:rank:churn b1", "");
        CLI_EQ(&R, "ZCARD loy:rank:clv", "1");
}

/* Segment and histogram counts move in the batch's script, field by
 * field, beside its KPIs; a customer's own write touches none of them. */
static void test_seg_hist(void) {
        loy_batch_agg_t *a = agg_zero();
        loy_count_delta_t mv[4] = {
            {-1, LOY_SEG_NEW, -1},
            {-1, LOY_SEG_LOYAL, 2},
            {LOY_DIM_RECENCY, 1900, 1},
            {LOY_DIM_MONETARY, 0, 0}, /* zero: not sent */
        };
        loy_kpi_delta_t k = {T0, "purchases", 1};
        loy_cust_t c;
        loy_cust_write_t w;
        char cmd[256];

        flush();
        a->count = mv;
        a->ncount = 4;
        a->kpi = &k;
        a->nkpi = 1;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        /* the documented names: segment names, bins as numbers */
        CLI_EQ(&R, "HGETALL loy:{agg}:seg", "new\n-1\nloyal\n2");
        snprintf(cmd, sizeof(cmd), "HGETALL loy:{agg}:hist:%s",
                 loy_dim_name(LOY_DIM_RECENCY));
        CLI_EQ(&R, cmd, "1900\n1");
        snprintf(cmd, sizeof(cmd), "EXISTS loy:{agg}:hist:%s",
                 loy_dim_name(LOY_DIM_MONETARY));
        CLI_EQ(&R, cmd, "0");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 purchases", "1");

        /* Moves only: an emptied field keeps its 0. */
        mv[1].delta = -2;
        a->ncount = 2;
        a->nkpi = 0;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGETALL loy:{agg}:seg", "new\n-2\nloyal\n0");

        /* A customer's write moves no count, whatever its segment. */
        buyer(&c, "42");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "HGETALL loy:{agg}:seg", "new\n-2\nloyal\n0");

        /* Out of range: refused before anything is sent. */
        mv[0].field = LOY_SEG__COUNT;
        CU_ASSERT_EQUAL(write_agg(a), LOY_STORE_ERR);
        mv[0].field = LOY_SEG_NEW;
        mv[0].dim = LOY_DIM__COUNT;
        CU_ASSERT_EQUAL(write_agg(a), LOY_STORE_ERR);
        CLI_EQ(&R, "HGETALL loy:{agg}:seg", "new\n-2\nloyal\n0");
}

/* The fences: checked before anything is written, then moved; a fence
 * that moved behind this process's back refuses the whole batch. */
static void test_agg_fence(void) {
        loy_batch_agg_t *a = agg_zero();
        loy_agg_fence_t f[2] = {
            {"o:purchases:3", 1, NULL, "41"},
            {"f:3", 0, NULL, "1709596800000 42\n"},
        };
        loy_kpi_delta_t k = {T0, "purchases", 1};
        loy_outbox_entry_t ob = {"t-z", "zombie", 6};
        loy_cust_t c;
        loy_cust_write_t w;
        const char *fields[3] = {"o:purchases:3", "f:3", "o:purchases:4"};
        char *vals[3];

        flush();
        a->kpi = &k;
        a->nkpi = 1;
        a->fence = f;
        a->nfence = 2;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:fence o:purchases:3", "41");
        CU_ASSERT_EQUAL_FATAL(
            loy_store_fence_get(S, fields, 3, vals, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_STRING_EQUAL(vals[0], "41");
        CU_ASSERT_STRING_EQUAL(vals[1], "1709596800000 42\n");
        CU_ASSERT_PTR_NULL(vals[2]);
        free(vals[0]);
        free(vals[1]);

        /* Someone else moved it to 50: this process still expects 41 ...
         * nothing of its batch is written, not even its outbox or its
         * customers. */
        free(tu_redis_cli(&R, "HSET loy:{agg}:fence o:purchases:3 50"));
        f[0].expect = "41";
        f[0].value = "60";
        buyer(&c, "z");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL(
            loy_store_write_batch(S, &ob, 1, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_ERR_FENCED);
        CU_ASSERT_TRUE(strstr(E, "o:purchases:3") != NULL);
        CLI_EQ(&R, "HGET loy:{agg}:fence o:purchases:3", "50");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 purchases", "1");
        CLI_EQ(&R, "EXISTS loy:c:{z}", "0");
        CLI_EQ(&R, "EXISTS loy:outbox", "0");
        CLI_EQ(&R, "EXISTS loy:{agg}:seg", "0");

        /* ... a field that must not exist yet, and does: refused too. */
        f[0].expect = NULL;
        CU_ASSERT_EQUAL(write_agg(a), LOY_STORE_ERR_FENCED);

        /* The expected value: written, with everything else. */
        f[0].expect = "50";
        CU_ASSERT_EQUAL(
            loy_store_write_batch(S, &ob, 1, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:fence o:purchases:3", "60");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 purchases", "2");
        CLI_EQ(&R, "HGET loy:c:{z} orders", "3");
        CLI_EQ(&R, "HGET loy:outbox t-z", "zombie");

        /* An empty value removes a field. */
        f[1].value = "";
        a->nfence = 2;
        f[0].expect = "60";
        CU_ASSERT_EQUAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HEXISTS loy:{agg}:fence f:3", "0");
}

/* The new owner of partition purchases/3, while the old one is stopped
 * between its batch's aggregates and its customers: takes the partition
 * over and writes customer z as it has it (orders 9). */
typedef struct new_owner {
        int called, closed, rc_take, rc_write;
} new_owner_t;

static void new_owner_writes(loy_store_t *old, void *opaque) {
        new_owner_t *no = opaque;
        const char *own[1] = {"own:purchases:3"};
        loy_agg_fence_t f[2] = {
            {"o:purchases:3", 1, "42", "43"},
            {"own:purchases:3", 1, "proc-b", "proc-b"},
        };
        loy_batch_agg_t a;
        loy_cust_t c;
        loy_cust_write_t w;
        char err[512];
        loy_store_t *b =
            loy_store_create("127.0.0.1", R.port, NULL, 2000, err, sizeof(err));
        (void)old;
        no->called++;
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(loy_store_set_owner(b, "proc-b", err, sizeof(err)),
                        LOY_STORE_OK);
        no->rc_take =
            loy_store_take_over(b, own, 1, &no->closed, err, sizeof(err));
        memset(&a, 0, sizeof(a));
        a.fence = f;
        a.nfence = 2;
        buyer(&c, "z");
        c.orders = 9;
        wr_init(&w, &c);
        no->rc_write = loy_store_write_batch(b, NULL, 0, &a, &w, 1, T0, &FC,
                                             err, sizeof(err));
        if (no->rc_write)
                fprintf(stderr, "\n  new owner: %s\n", err);
        loy_store_destroy(b);
}

/* issue 8: a process stopped after its batch's aggregates were accepted,
 * whose partition another process took over and wrote meanwhile, must not
 * overwrite that customer when it wakes up. */
static void test_take_over(void) {
        const char *own[1] = {"own:purchases:3"};
        loy_agg_fence_t f[2] = {
            {"o:purchases:3", 1, NULL, "41"},
            {"own:purchases:3", 1, "proc-a", "proc-a"},
        };
        loy_batch_agg_t *a = agg_zero();
        new_owner_t no = {0};
        loy_store_t *sa;
        loy_cust_t c;
        loy_cust_write_t w;
        tu_redis_t hz = holder("loy:c:{z}");
        char *name;
        int closed = -1;

        flush();
        sa = loy_store_create("127.0.0.1", R.port, NULL, 2000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
        CU_ASSERT_EQUAL(loy_store_take_over(sa, own, 1, &closed, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_EQUAL_FATAL(loy_store_set_owner(sa, "proc-a", E, sizeof(E)),
                              LOY_STORE_OK);
        /* its connections carry the name, also the one opened at create */
        name = tu_redis_cli(&R, "CLIENT LIST TYPE normal");
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_TRUE(strstr(name, "name=proc-a ") != NULL);
        free(name);
        CU_ASSERT_EQUAL_FATAL(
            loy_store_take_over(sa, own, 1, &closed, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL(closed, 0);
        CLI_EQ(&R, "HGET loy:{agg}:fence own:purchases:3", "proc-a");

        /* A writes z once, as the owner */
        a->fence = f;
        a->nfence = 2;
        buyer(&c, "z");
        c.orders = 3;
        wr_init(&w, &c);
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_batch(sa, NULL, 0, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_OK);
        CLI_EQ(&hz, "HGET loy:c:{z} orders", "3");

        /* A's next batch stops after its aggregates; B takes over and
         * writes z; A's customers must not land when it goes on. */
        f[0].expect = "41";
        f[0].value = "42";
        c.orders = 4;
        loy_store_set_after_agg_hook(sa, new_owner_writes, &no);
        CU_ASSERT_EQUAL(
            loy_store_write_batch(sa, NULL, 0, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_ERR_IO);
        loy_store_set_after_agg_hook(sa, NULL, NULL);
        CU_ASSERT_EQUAL(no.called, 1);
        CU_ASSERT_EQUAL(no.rc_take, LOY_STORE_OK);
        CU_ASSERT_EQUAL(no.rc_write, LOY_STORE_OK);
        CU_ASSERT_TRUE(no.closed >= 1);
        CLI_EQ(&hz, "HGET loy:c:{z} orders", "9");
        CLI_EQ(&R, "HGET loy:{agg}:fence own:purchases:3", "proc-b");

        /* A done again, as loyaltyd does after a lost connection: refused
         * whole, the owner changed */
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(sa, E, sizeof(E)),
                              LOY_STORE_OK);
        f[0].expect = "43";
        f[0].value = "44";
        CU_ASSERT_EQUAL(
            loy_store_write_batch(sa, NULL, 0, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_ERR_FENCED);
        CU_ASSERT_TRUE(strstr(E, "own:purchases:3") != NULL);
        CLI_EQ(&hz, "HGET loy:c:{z} orders", "9");
        CLI_EQ(&R, "HGET loy:{agg}:fence o:purchases:3", "43");

        /* A gives back what it no longer has: B's field stays */
        CU_ASSERT_EQUAL(loy_store_release(sa, own, 1, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:fence own:purchases:3", "proc-b");
        CU_ASSERT_EQUAL_FATAL(loy_store_set_owner(sa, "proc-b", E, sizeof(E)),
                              LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_release(sa, own, 1, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "HEXISTS loy:{agg}:fence own:purchases:3", "0");
        loy_store_destroy(sa);
}

static void test_load_hist(void) {
        loy_rfm_t *rfm = loy_rfm_create();
        char cmd[128];

        CU_ASSERT_PTR_NOT_NULL_FATAL(rfm);
        flush();
        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                snprintf(cmd, sizeof(cmd), "HSET loy:{agg}:hist:%s 1 2 3 1",
                         loy_dim_name((loy_dim_t)d));
                free(tu_redis_cli(&R, cmd));
        }
        /* A count that Redis does not have must not survive the load. */
        loy_rfm_set(rfm, LOY_DIM_RECENCY, 5, 1000);
        CU_ASSERT_EQUAL(loy_store_load_hist(S, rfm, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_RECENCY), 3);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_FREQUENCY), 3);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_MONETARY), 3);

        /* Counts come from Redis, not from what this process wrote. */
        snprintf(cmd, sizeof(cmd), "HSET loy:{agg}:hist:%s 7 40",
                 loy_dim_name(LOY_DIM_MONETARY));
        free(tu_redis_cli(&R, cmd));
        CU_ASSERT_EQUAL(loy_store_load_hist(S, rfm, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_MONETARY), 43);

        /* A bin outside the histogram is an error and changes nothing. */
        snprintf(cmd, sizeof(cmd), "HSET loy:{agg}:hist:%s 99999 1",
                 loy_dim_name(LOY_DIM_FREQUENCY));
        free(tu_redis_cli(&R, cmd));
        CU_ASSERT_EQUAL(loy_store_load_hist(S, rfm, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_EQUAL(loy_rfm_total(rfm, LOY_DIM_MONETARY), 43);
        loy_rfm_destroy(rfm);
}

/* ------------------------------------------------------------------ KPI */

static void test_kpi(void) {
        loy_batch_agg_t *a = agg_zero();
        loy_kpi_delta_t k1[] = {
            {T0 + 12 * 3600000LL - 1, "purchases", 1}, /* 23:59:59.999 */
            {T0, "revenue_micros", 12500000},
            {T0, "triggers:winback", 1},
            {T0 + 12 * 3600000LL, "purchases", 1}, /* next day */
            {-1, "purchases", 1},                  /* 1969-12-31 */
        };
        loy_kpi_delta_t k2[] = {
            {T0, "purchases", 1},
            {T0, "revenue_micros", 10000000},
            {T0, "return_value_micros", -2250000},
        };

        flush();
        a->kpi = k1;
        a->nkpi = 5;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        a->kpi = k2;
        a->nkpi = 3;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 purchases", "2");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 revenue", "22.5");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 triggers:winback", "1");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 return_value", "-2.25");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-06 purchases", "1");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:1969-12-31 purchases", "1");
        CLI_EQ(&R,
               "EXISTS loy:{agg}:kpi:1969-12-31 loy:{agg}:kpi:2024-03-05 "
               "loy:{agg}:kpi:2024-03-06",
               "3");
        /* the key only routes the script to the aggregates' node */
        CLI_EQ(&R,
               "EVAL \"return #redis.call('KEYS', 'loy:{agg}:kpi:*')\" "
               "1 loy:{agg}:kpi:x",
               "3");
}

/* Days close in order, once each, as their hashes stand; a late event
 * for a closed day changes its hash but not the closed entry. */
static void test_kpi_close(void) {
        loy_batch_agg_t *a = agg_zero();
        tu_redis_t at = holder("loy:{agg}:kpi_days");
        loy_kpi_delta_t k1[] = {
            {T0 - DAY, "purchases", 2}, /* 2024-03-04 */
            {T0 - DAY, "revenue_micros", 1500000},
            {T0, "purchases", 1},       /* 2024-03-05 */
            {T0 + DAY, "purchases", 4}, /* 2024-03-06 */
        };
        loy_kpi_delta_t late = {T0 - DAY, "purchases", 1};
        int n = -1;

        flush();
        a->kpi = k1;
        a->nkpi = 4;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&at, "ZRANGE loy:{agg}:kpi_days 0 -1 WITHSCORES",
               "2024-03-04\n19786\n2024-03-05\n19787\n2024-03-06\n19788");
        /* the clock in 2024-03-06, at most one a call */
        CU_ASSERT_EQUAL(loy_store_kpi_close(S, T0 + DAY, 1, &n, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 1);
        CU_ASSERT_EQUAL(loy_store_kpi_close(S, T0 + DAY, 5, &n, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 1);
        CU_ASSERT_EQUAL(loy_store_kpi_close(S, T0 + DAY, 5, &n, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 0);
        CLI_EQ(&at, "XRANGE loy:{agg}:kpi_closed - +",
               "1709510400000-1\nday\n2024-03-04\npurchases\n2\n"
               "repurchase_rate\n0.0000\nrevenue\n1.5\nrevenue_micros\n"
               "1500000\n"
               "1709596800000-1\nday\n2024-03-05\npurchases\n1\n"
               "repurchase_rate\n0.0000");
        /* late: the hash moves, the closed day does not, nor is it
         * closed again */
        a->kpi = &late;
        a->nkpi = 1;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&at, "HGET loy:{agg}:kpi:2024-03-04 purchases", "3");
        CU_ASSERT_EQUAL(
            loy_store_kpi_close(S, T0 + 2 * DAY, 5, &n, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 1);
        CLI_EQ(&at, "XLEN loy:{agg}:kpi_closed", "3");
        CLI_EQ(&at, "XREVRANGE loy:{agg}:kpi_closed + - COUNT 1",
               "1709683200000-1\nday\n2024-03-06\npurchases\n4\n"
               "repurchase_rate\n0.0000");
        CLI_EQ(&at, "XRANGE loy:{agg}:kpi_closed - + COUNT 1",
               "1709510400000-1\nday\n2024-03-04\npurchases\n2\n"
               "repurchase_rate\n0.0000\nrevenue\n1.5\nrevenue_micros\n"
               "1500000");
        CU_ASSERT_EQUAL(loy_store_kpi_close(S, T0, 0, &n, E, sizeof(E)),
                        LOY_STORE_ERR);
}

/* loyaltyctl dashboard reads what the store wrote; on a cluster, asked at
 * a node that does not hold the aggregates, it follows MOVED. */
static void test_dashboard_reads(void) {
        loy_batch_agg_t *a = agg_zero();
        loy_kpi_delta_t k[] = {{T0 - DAY, "purchases", 2},
                               {T0, "purchases", 5},
                               {T0, "triggers:winback", 3}};
        loy_count_delta_t seg = {-1, LOY_SEG_CHAMPION, 7};
        char cmd[1024], path[512];
        json_t *doc, *days;
        int port = R.port;

        if (on_cluster) {
                unsigned slot = loy_cluster_slot("loy:{agg}:kpi_days", 18);
                for (int i = 0; i < C.n; i++)
                        if (tu_cluster_owner(&C, 0, slot) != i)
                                port = C.node[i].port;
        }
        flush();
        a->kpi = k;
        a->nkpi = 3;
        a->count = &seg;
        a->ncount = 1;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        snprintf(path, sizeof(path), "%s", tu_build_path("dashboard.json"));
        snprintf(cmd, sizeof(cmd), "%s dashboard -X redis.port=%d -o %s",
                 tu_build_path("loyaltyctl"), port, path);
        CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
        doc = json_load_file(path, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        days = json_object_get(doc, "days");
        CU_ASSERT_EQUAL(json_array_size(days), 2);
        CU_ASSERT_STRING_EQUAL(
            json_string_value(json_object_get(json_array_get(days, 1), "day")),
            "2024-03-05");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                            json_array_get(days, 1), "purchases")),
                        5);
        CU_ASSERT_EQUAL(
            json_integer_value(json_object_get(
                json_object_get(json_object_get(doc, "rules"), "winback"),
                "triggers")),
            3);
        for (size_t i = 0;
             i < json_array_size(json_object_get(doc, "segments")); i++) {
                json_t *g = json_array_get(json_object_get(doc, "segments"), i);
                if (!strcmp(json_string_value(json_object_get(g, "segment")),
                            loy_segment_name(LOY_SEG_CHAMPION)))
                        CU_ASSERT_EQUAL(
                            json_integer_value(json_object_get(g, "customers")),
                            7);
        }
        json_decref(doc);
}

/* Which Redis error replies are "not now" (waited out) and which are about
 * the command or the data (a customer's state that will not load). */
static void test_refusals(void) {
        static const char *const wait[] = {
            "OOM command not allowed when used memory > 'maxmemory'.",
            "READONLY You can't write against a read only replica.",
            ("MISCONF Redis is configured to save RDB snapshots, but it's "
             "currently unable to persist to disk."),
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down",
            "NOREPLICAS Not enough good replicas to write."};
        static const char *const fail[] = {
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR value is not a valid float",
            "EXECABORT Transaction discarded",
            "OOMX",
            "",
            "MOVED 3999 127.0.0.1:6381"};
        for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
                CU_ASSERT_EQUAL(loy_store_is_refusal(wait[i]), 1);
        for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++)
                CU_ASSERT_EQUAL(loy_store_is_refusal(fail[i]), 0);
        CU_ASSERT_EQUAL(loy_store_is_refusal(NULL), 0);
}

/* Regression: the repurchase rate used to be recomputed by a separate
 * call after the batch write, so a crash in between left it stale for
 * good (the redo is fenced). It now changes in the script that moves the
 * day's counters. */
static void test_kpi_rate_in_write(void) {
        loy_batch_agg_t *a = agg_zero();
        loy_kpi_delta_t k1[] = {{T0, "purchases", 1}, {T0, "new_customers", 1}};
        loy_kpi_delta_t k2[] = {{T0, "purchases", 1},
                                {T0, "repeat_purchases", 1},
                                {T0, "revenue_micros", 12340000},
                                {T0, "returns", 1},
                                {T0, "return_value_micros", 1000001}};
        flush();
        a->kpi = k1;
        a->nkpi = 2;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 repurchase_rate", "0.0000");
        a->kpi = k2;
        a->nkpi = 5;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 repurchase_rate", "0.5000");
        /* money: exact integer sums, readable text derived from them */
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 revenue_micros", "12340000");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 revenue", "12.34");
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 return_value", "1.000001");
        a->kpi = k2 + 2;
        a->nkpi = 1;
        CU_ASSERT_EQUAL_FATAL(write_agg(a), LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 revenue", "24.68");
}

/* --------------------------------------------------------------- timers */

static void test_timers(void) {
        loy_cust_t c[4];
        loy_cust_write_t w[4];
        const char *id[4] = {"a", "b", "c", "d"};
        int64_t due[4] = {T0 + 300, T0 + 100, T0 + 200, T0 + 500};
        char **ids = NULL;
        int n = -1;

        flush();
        for (int i = 0; i < 4; i++) {
                buyer(&c[i], id[i]);
                c[i].next_check_ms = due[i];
                wr_init(&w[i], &c[i]);
                w[i].partition = 3;
        }
        CU_ASSERT_EQUAL_FATAL(loy_store_write(S, w, 4, T0, &FC, E, sizeof(E)),
                              LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:timers:3 b", "1709640000100");

        CU_ASSERT_EQUAL(
            loy_store_timers_due(S, 3, T0 + 300, 10, &ids, &n, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL_FATAL(n, 3);
        CU_ASSERT_STRING_EQUAL(ids[0], "b");
        CU_ASSERT_STRING_EQUAL(ids[1], "c");
        CU_ASSERT_STRING_EQUAL(ids[2], "a");
        loy_store_free_ids(ids, n);

        CU_ASSERT_EQUAL(
            loy_store_timers_due(S, 3, T0 + 1000, 2, &ids, &n, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL_FATAL(n, 2);
        CU_ASSERT_STRING_EQUAL(ids[0], "b");
        CU_ASSERT_STRING_EQUAL(ids[1], "c");
        loy_store_free_ids(ids, n);

        CU_ASSERT_EQUAL(
            loy_store_timers_due(S, 3, T0 + 99, 10, &ids, &n, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 0);
        loy_store_free_ids(ids, n);
        CU_ASSERT_EQUAL(
            loy_store_timers_due(S, 4, T0 + 1000, 10, &ids, &n, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL(n, 0);
        loy_store_free_ids(ids, n);

        /* Cleared timer: ZREM. */
        w[1].old_timer_ms = due[1];
        c[1].next_check_ms = 0;
        CU_ASSERT_EQUAL_FATAL(write1(&w[1]), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:timers:3 b", "");
        CLI_EQ(&R, "ZCARD loy:timers:3", "3");

        /* Moved timer. */
        w[0].old_timer_ms = due[0];
        c[0].next_check_ms = T0 + 50;
        CU_ASSERT_EQUAL_FATAL(write1(&w[0]), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:timers:3 a", "1709640000050");

        /* Unchanged timer: not written (the score set behind our back
         * stays). */
        free(tu_redis_cli(&R, "ZADD loy:timers:3 7 c"));
        w[2].old_timer_ms = due[2];
        CU_ASSERT_EQUAL_FATAL(write1(&w[2]), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:timers:3 c", "7");
}

/* --------------------------------------------------------------- outbox */

typedef struct seen {
        int calls;
        int stop_after;
        int bin_ok;
        char ids[2000][16];
} seen_t;

static int outbox_cb(const char *trigger_id, const void *payload, size_t len,
                     void *opaque) {
        seen_t *s = opaque;
        if (!strcmp(trigger_id, "t-bin"))
                s->bin_ok = len == 6 && !memcmp(payload, "\0\001ab\0c", 6);
        if (s->calls < 2000)
                snprintf(s->ids[s->calls], sizeof(s->ids[0]), "%s", trigger_id);
        s->calls++;
        return s->stop_after && s->calls >= s->stop_after;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_outbox(void) {
        loy_cust_t c;
        loy_cust_write_t w;
        loy_outbox_entry_t ob[2] = {
            {"t-bin", "\0\001ab\0c", 6},
            {"t-2", "hello", 5},
        };
        const char *ack[2] = {"t-bin", "t-2"};
        seen_t *seen = calloc(1, sizeof(*seen));

        CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
        flush();
        buyer(&c, "o");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_batch(S, ob, 2, NULL, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_OK);
        CLI_EQ(&R, "HSTRLEN loy:outbox t-bin", "6");
        CLI_EQ(&R, "--no-raw HGET loy:outbox t-bin", "\"\\x00\\x01ab\\x00c\"");
        CLI_EQ(&R, "HGET loy:outbox t-2", "hello");

        CU_ASSERT_EQUAL(loy_store_outbox_scan(S, outbox_cb, seen, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(seen->calls, 2);
        CU_ASSERT_TRUE(seen->bin_ok);

        CU_ASSERT_EQUAL(loy_store_outbox_ack(S, ack, 0, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "HLEN loy:outbox", "2");
        CU_ASSERT_EQUAL(loy_store_outbox_ack(S, ack, 2, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "HLEN loy:outbox", "0");

        /* Enough entries for several HSCAN pages (hashtable encoding). */
        free(tu_redis_cli(&R, "EVAL \"for i=1,1200 do redis.call('HSET', "
                              "KEYS[1], string.format('t%04d', i), 'p') end "
                              "return 1\" 1 loy:outbox"));
        CLI_EQ(&R, "HLEN loy:outbox", "1200");
        memset(seen, 0, sizeof(*seen));
        CU_ASSERT_EQUAL(loy_store_outbox_scan(S, outbox_cb, seen, E, sizeof(E)),
                        LOY_STORE_OK);
        /* HSCAN may repeat an entry, never miss one. */
        CU_ASSERT_TRUE_FATAL(seen->calls >= 1200 && seen->calls <= 2000);
        qsort(seen->ids, (size_t)seen->calls, sizeof(seen->ids[0]), cmp_str);
        {
                int distinct = 0;
                for (int i = 0; i < seen->calls; i++)
                        if (i == 0 || strcmp(seen->ids[i], seen->ids[i - 1]))
                                distinct++;
                CU_ASSERT_EQUAL(distinct, 1200);
                CU_ASSERT_STRING_EQUAL(seen->ids[0], "t0001");
                CU_ASSERT_STRING_EQUAL(seen->ids[seen->calls - 1], "t1200");
        }

        /* The callback stops the scan. */
        memset(seen, 0, sizeof(*seen));
        seen->stop_after = 3;
        CU_ASSERT_EQUAL(loy_store_outbox_scan(S, outbox_cb, seen, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(seen->calls, 3);
        free(seen);
}

/* ---------------------------------------------------------------- stats */

static void test_stats(void) {
        const char *inc[] = {"events_in", "dead_lettered", "batches"};
        double d1[] = {5, 1, 1};
        double d2[] = {7, 0, 1};
        const char *set[] = {"batch_ms_last", "clock_ms", "lag",
                             "events_per_s"};
        double v[] = {12.5, 1709640000123.0, 3, 0.1};

        flush();
        CU_ASSERT_EQUAL(loy_store_stats(S, inc, d1, 3, set, v, 4, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(
            loy_store_stats(S, inc, d2, 3, NULL, NULL, 0, E, sizeof(E)),
            LOY_STORE_OK);
        CLI_EQ(&R, "HGET loy:stats events_in", "12");
        CLI_EQ(&R, "HGET loy:stats dead_lettered", "1");
        CLI_EQ(&R, "HGET loy:stats batches", "2");
        CLI_EQ(&R, "HGET loy:stats batch_ms_last", "12.5");
        CLI_EQ(&R, "HGET loy:stats clock_ms", "1709640000123");
        CLI_EQ(&R, "HGET loy:stats lag", "3");
        CLI_EQ(&R, "HGET loy:stats events_per_s", "0.1");
        CU_ASSERT_EQUAL(
            loy_store_stats(S, NULL, NULL, 0, NULL, NULL, 0, E, sizeof(E)),
            LOY_STORE_OK);
        v[0] = NAN;
        CU_ASSERT_EQUAL(
            loy_store_stats(S, NULL, NULL, 0, set, v, 1, E, sizeof(E)),
            LOY_STORE_ERR);
        CLI_EQ(&R, "HGET loy:stats batch_ms_last", "12.5");
}

/* -------------------------------------------------- namespace, hgetall */

typedef struct kv {
        char text[8192];
} kv_t;

static void kv_cb(const char *field, const char *value, void *opaque) {
        kv_t *kv = opaque;
        size_t l = strlen(kv->text);
        snprintf(kv->text + l, sizeof(kv->text) - l, "%s=%s;", field, value);
}

static void test_namespace(void) {
        loy_store_t *s2;
        loy_cust_t c, b;
        loy_cust_t *pb = &b;
        loy_cust_write_t w;
        loy_kpi_delta_t k = {T0, "purchases", 1};
        loy_outbox_entry_t ob = {"t1", "x", 1};
        loy_batch_agg_t *a = agg_zero();
        int found = -1;
        kv_t kv = {""};

        flush();
        s2 = loy_store_create("127.0.0.1", R.port, "shop2", 1000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
        CU_ASSERT_STRING_EQUAL(loy_store_ns(s2), "shop2");
        buyer(&c, "7");
        c.next_check_ms = T0 + 1;
        wr_init(&w, &c);
        a->kpi = &k;
        a->nkpi = 1;
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_batch(s2, &ob, 1, a, &w, 1, T0, &FC, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_stats(s2, (const char *[]){"events_in"},
                                        (double[]){1}, 1, NULL, NULL, 0, E,
                                        sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&R, "HGET shop2:c:{7} orders", "3");
        /* Every key this store wrote carries the namespace. */
        {
                char *keys = tu_redis_cli(&R, "KEYS '*'");
                char *save = NULL;
                int nkeys = 0;
                CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
                for (char *t = strtok_r(keys, "\n", &save); t;
                     t = strtok_r(NULL, "\n", &save)) {
                        CU_ASSERT_EQUAL(strncmp(t, "shop2:", 6), 0);
                        nkeys++;
                }
                /* c, 2 ranks, kpi, aggfence, timers, outbox, stats */
                CU_ASSERT_TRUE(nkeys >= 7);
                free(keys);
        }
        CLI_EQ(&R, "EXISTS loy:c:{7}", "0");
        CLI_EQ(&R, "HGET shop2:{agg}:kpi:2024-03-05 purchases", "1");
        CLI_EQ(&R, "ZSCORE shop2:timers:0 7", "1709640000001");
        CLI_EQ(&R, "HGET shop2:outbox t1", "x");
        CLI_EQ(&R, "HGET shop2:stats events_in", "1");

        /* The default-namespace store does not see it. */
        loy_feat_init(&b, "7");
        CU_ASSERT_EQUAL(loy_store_load(S, &pb, 1, &found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 0);
        CU_ASSERT_EQUAL(loy_store_load(s2, &pb, 1, &found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);

        CU_ASSERT_EQUAL(
            loy_store_hgetall(s2, "shop2:outbox", kv_cb, &kv, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_STRING_EQUAL(kv.text, "t1=x;");
        kv.text[0] = '\0';
        CU_ASSERT_EQUAL(
            loy_store_hgetall(s2, "shop2:stats", kv_cb, &kv, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_STRING_EQUAL(kv.text, "events_in=1;");
        kv.text[0] = '\0';
        CU_ASSERT_EQUAL(
            loy_store_hgetall(s2, "nothing-here", kv_cb, &kv, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_STRING_EQUAL(kv.text, "");
        loy_store_destroy(s2);
}

/* --------------------------------------------------------------- errors */

static void test_errors(void) {
        loy_cust_t c[2];
        loy_cust_write_t w[2];
        char cmd[128];
        kv_t kv = {""};

        flush();
        buyer(&c[0], "good");
        buyer(&c[1], "bad");
        wr_init(&w[0], &c[0]);
        wr_init(&w[1], &c[1]);

        /* NaN would poison the ranks: the whole batch is refused before
         * anything is sent, and the connection stays usable. */
        c[1].clv = NAN;
        CU_ASSERT_EQUAL(loy_store_write(S, w, 2, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_TRUE(strstr(E, "bad") != NULL);
        CU_ASSERT_TRUE(loy_store_is_connected(S));
        CLI_EQ(&R, "EXISTS loy:c:{good}", "0");
        c[1].clv = 10;

        c[1].segment = 99;
        CU_ASSERT_EQUAL(loy_store_write(S, w, 2, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR);
        c[1].segment = LOY_SEG_NEW;

        /* A board that is not a sorted set: the error names it (no
         * customer is to blame), the customers are applied and replies
         * stay in step. */
        free(tu_redis_cli(&R, "SET loy:rank:clv oops"));
        E[0] = '\0';
        CU_ASSERT_EQUAL(loy_store_write(S, w, 2, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_TRUE(strstr(E, "loy:rank:clv") != NULL);
        CU_ASSERT_TRUE(strstr(E, "WRONGTYPE") != NULL);
        CU_ASSERT_TRUE(strstr(E, "customer") == NULL);
        CLI_EQ(&R, "HGET loy:c:{bad} orders", "3");
        free(tu_redis_cli(&R, "DEL loy:rank:clv loy:c:{bad}"));

        /* A customer's own key that is not a hash: the error names the
         * customer (so loyaltyd can quarantine it); the other customer is
         * applied. */
        free(tu_redis_cli(&R, "DEL loy:c:{good}"));
        free(tu_redis_cli(&R, "SET loy:c:{bad} oops"));
        E[0] = '\0';
        CU_ASSERT_EQUAL(loy_store_write(S, w, 2, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_TRUE(strstr(E, "customer bad: ") != NULL);
        CU_ASSERT_TRUE(strstr(E, "WRONGTYPE") != NULL);
        CU_ASSERT_TRUE(loy_store_is_connected(S));
        CLI_EQ(&R, "HGET loy:c:{good} orders", "3");
        CU_ASSERT_EQUAL(
            loy_store_hgetall(S, "loy:c:{good}", kv_cb, &kv, E, sizeof(E)),
            LOY_STORE_OK);
        CU_ASSERT_TRUE(strstr(kv.text, "orders=3;") != NULL);

        /* A hash without the packed field whose fields do not parse. */
        free(tu_redis_cli(&R, "DEL loy:rank:clv loy:c:{good}"));
        snprintf(cmd, sizeof(cmd),
                 "HSET loy:c:{good} orders lots last_event_ms 1");
        free(tu_redis_cli(&R, cmd));
        {
                loy_cust_t x;
                loy_cust_t *px = &x;
                int found = -1;
                loy_feat_init(&x, "good");
                CU_ASSERT_EQUAL(loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                                LOY_STORE_ERR);
                CU_ASSERT_TRUE(strstr(E, "orders") != NULL);
        }
        /* Replies are still in step afterwards. */
        free(tu_redis_cli(&R, "DEL loy:c:{bad}"));
        CU_ASSERT_EQUAL(write1(&w[1]), LOY_STORE_OK);
}

/* ------------------------------------------------------ connection loss */

#define LOSS_N 5000

/* A hiredis connection to port as user (NULL: AUTH password only). */
static redisContext *authed(int port, const char *user, const char *pass,
                            int db) {
        loy_rconn_opts_t o = {user, pass, db, 1000, 1000};
        char why[256];
        redisContext *c =
            loy_rconn_open("127.0.0.1", port, &o, NULL, why, sizeof(why));
        if (!c)
                fprintf(stderr, "\n  authed: %s\n", why);
        return c;
}

static long long int_reply(redisContext *c, const char *cmd) {
        redisReply *r = redisCommand(c, cmd);
        long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r)
                freeReplyObject(r);
        return v;
}

/* A Redis with a password and an ACL user: every way the credentials or
 * the database can be wrong is LOY_STORE_ERR_AUTH at once, with the
 * server's reason and never the password; right ones reach the data, in
 * the database asked for. A user the ACL lets connect but not write gets
 * the same code from the connect after the refused write, not a retry
 * loop or a quarantine. */
static void test_credentials(void) {
        tu_redis_t a;
        loy_store_t *s;
        loy_rconn_opts_t o;
        loy_cust_t c;
        loy_cust_write_t w;
        redisContext *rc;
        char e[512];
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&a, 0), 0);
        free(tu_redis_cli(&a, "ACL SETUSER writer on '>w-pass' '~*' '&*' "
                              "'+@all'"));
        free(tu_redis_cli(&a, "ACL SETUSER reader on '>r-pass' '~*' '&*' "
                              "'+@all' '-@write'"));
        free(tu_redis_cli(&a, "CONFIG SET requirepass 'default-pass'"));
        s = loy_store_create("127.0.0.1", a.port, NULL, 1000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);

        /* none given */
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_ERR_AUTH);
        CU_ASSERT_PTR_NOT_NULL(strstr(e, "NOAUTH"));

        /* wrong ones, and a user without a password */
        {
                static const struct {
                        const char *user, *pass, *why;
                } bad[] = {{NULL, "not-it", "WRONGPASS"},
                           {"writer", "not-it", "WRONGPASS"},
                           {"nobody", "w-pass", "WRONGPASS"},
                           {"writer", NULL, "without a password"}};
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        memset(&o, 0, sizeof(o));
                        o.user = bad[i].user;
                        o.password = bad[i].pass;
                        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)),
                                        0);
                        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)),
                                        LOY_STORE_ERR_AUTH);
                        CU_ASSERT_PTR_NOT_NULL(strstr(e, bad[i].why));
                        CU_ASSERT_PTR_NULL(strstr(e, "not-it"));
                        CU_ASSERT_PTR_NULL(strstr(e, "w-pass"));
                }
        }

        /* a database the server does not have */
        memset(&o, 0, sizeof(o));
        o.password = "default-pass";
        o.db = 16;
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_ERR_AUTH);
        CU_ASSERT_PTR_NOT_NULL(strstr(e, "SELECT 16"));

        /* the password of the default user, database 3: the customer is
         * there and not in 0 */
        o.db = 3;
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_OK);
        buyer(&c, "cred1");
        wr_init(&w, &c);
        CU_ASSERT_EQUAL(loy_store_write(s, &w, 1, T0, &FC, e, sizeof(e)),
                        LOY_STORE_OK);
        rc = authed(a.port, NULL, "default-pass", 3);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rc);
        CU_ASSERT_EQUAL(int_reply(rc, "EXISTS loy:c:{cred1}"), 1);
        redisFree(rc);
        rc = authed(a.port, NULL, "default-pass", 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rc);
        CU_ASSERT_EQUAL(int_reply(rc, "EXISTS loy:c:{cred1}"), 0);
        redisFree(rc);

        /* an ACL user */
        o.user = "writer";
        o.password = "w-pass";
        o.db = 0;
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_write(s, &w, 1, T0, &FC, e, sizeof(e)),
                        LOY_STORE_OK);
        rc = authed(a.port, "writer", "w-pass", 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rc);
        CU_ASSERT_EQUAL(int_reply(rc, "EXISTS loy:c:{cred1}"), 1);
        redisFree(rc);

        /* one that may connect and read, not write */
        o.user = "reader";
        o.password = "r-pass";
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_OK);
        c.orders = 4;
        CU_ASSERT_EQUAL(loy_store_write(s, &w, 1, T0, &FC, e, sizeof(e)),
                        LOY_STORE_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(e, "NOPERM"));
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_ERR_AUTH);
        CU_ASSERT_PTR_NOT_NULL(strstr(e, "NOPERM"));
        loy_store_destroy(s);
        tu_redis_stop(&a);
}

/* A database other than 0: a redis-server has 16, a Redis Cluster only
 * database 0, and says so (a configuration error). */
static void test_database(void) {
        loy_store_t *s =
            loy_store_create("127.0.0.1", R.port, NULL, 1000, E, sizeof(E));
        loy_rconn_opts_t o = {NULL, NULL, 1, 0, 0};
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, E, sizeof(E)), 0);
        if (on_cluster) {
                CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)),
                                LOY_STORE_ERR_AUTH);
                CU_ASSERT_PTR_NOT_NULL(strstr(E, "SELECT 1"));
        } else {
                CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)),
                                LOY_STORE_OK);
        }
        loy_store_destroy(s);
}

static void test_connection_loss(void) {
        static loy_cust_write_t wl[LOSS_N];
        tu_redis_t a;
        loy_store_t *s;
        loy_cust_t c1, c2, b;
        loy_cust_t *pb = &b;
        loy_cust_write_t w1, w2;
        loy_outbox_entry_t ob = {"t-1", "payload", 7};
        int found = -1;

        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&a, 1), 0);
        s = loy_store_create("127.0.0.1", a.port, NULL, 1000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        buyer(&c1, "1");
        c1.next_check_ms = T0 + DAY;
        wr_init(&w1, &c1);
        CU_ASSERT_EQUAL_FATAL(loy_store_write_batch(s, &ob, 1, NULL, &w1, 1, T0,
                                                    &FC, E, sizeof(E)),
                              LOY_STORE_OK);

        tu_redis_kill(&a, SIGKILL);
        /* Writing to the dead server must not raise SIGPIPE (this test
         * program does not ignore it): a batch of several MiB takes more
         * than one write(2), and the ones after the peer's RST fail with
         * EPIPE. */
        buyer(&c2, "2");
        wr_init(&w2, &c2);
        for (int i = 0; i < LOSS_N; i++)
                wl[i] = w2;
        CU_ASSERT_EQUAL(loy_store_write(s, wl, LOSS_N, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR_IO);
        CU_ASSERT_FALSE(loy_store_is_connected(s));
        CU_ASSERT_EQUAL(loy_store_write(s, &w2, 1, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR_IO);
        CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_ERR_IO);

        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&a), 0);
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_write(s, &w2, 1, T0, &FC, E, sizeof(E)),
                        LOY_STORE_OK);
        CLI_EQ(&a, "HGET loy:c:{1} orders", "3");
        CLI_EQ(&a, "HGET loy:c:{2} orders", "3");
        CLI_EQ(&a, "ZSCORE loy:timers:0 1", "1709726400000");
        CLI_EQ(&a, "HGET loy:outbox t-1", "payload");
        loy_feat_init(&b, "1");
        CU_ASSERT_EQUAL(loy_store_load(s, &pb, 1, &found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        CU_ASSERT_EQUAL(b.next_check_ms, T0 + DAY);

        /* A stale context (server restarted behind a connected store) is
         * replaced by loy_store_connect. */
        tu_redis_kill(&a, SIGKILL);
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&a), 0);
        CU_ASSERT_TRUE(loy_store_is_connected(s));
        CU_ASSERT_EQUAL(loy_store_connect(s, E, sizeof(E)), LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_load(s, &pb, 1, &found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        loy_store_destroy(s);
        tu_redis_stop(&a);
}

/* ------------------------------------------------ write in two halves */

static void test_write_split(void) {
        tu_redis_t a;
        loy_store_t *s;
        loy_cust_t c[2], x;
        loy_cust_t *px = &x;
        loy_cust_write_t w[2];
        char **ids = NULL;
        int n = -1, found = -1;

        flush();
        buyer(&c[0], "s0");
        buyer(&c[1], "s1");
        wr_init(&w[0], &c[0]);
        wr_init(&w[1], &c[1]);
        CU_ASSERT_EQUAL(loy_store_write_recv(S, E, sizeof(E)), LOY_STORE_ERR);
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_send(S, w, 2, T0, &FC, E, sizeof(E)), LOY_STORE_OK);
        /* Sent, not waited for: Redis has it before _recv is called. */
        for (int i = 0; i < 100; i++) {
                char *o = tu_redis_cli(&R, "EXISTS loy:c:{s1}");
                int ok = o && !strcmp(o, "1");
                free(o);
                if (ok)
                        break;
        }
        CLI_EQ(&R, "HGET loy:c:{s1} orders", "3");
        /* Nothing else may go on the connection before the replies. */
        loy_feat_init(&x, "s0");
        CU_ASSERT_EQUAL(loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_TRUE(strstr(E, "in flight") != NULL);
        CU_ASSERT_EQUAL(
            loy_store_timers_due(S, 0, T0, 5, &ids, &n, E, sizeof(E)),
            LOY_STORE_ERR);
        CU_ASSERT_EQUAL(loy_store_write_send(S, w, 2, T0, &FC, E, sizeof(E)),
                        LOY_STORE_ERR);
        CU_ASSERT_EQUAL(loy_store_connect(S, E, sizeof(E)), LOY_STORE_ERR);
        CU_ASSERT_EQUAL(loy_store_write_recv(S, E, sizeof(E)), LOY_STORE_OK);
        CU_ASSERT_EQUAL(loy_store_write_recv(S, E, sizeof(E)), LOY_STORE_ERR);
        CU_ASSERT_EQUAL(loy_store_load(S, &px, 1, &found, E, sizeof(E)),
                        LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        CU_ASSERT_EQUAL(x.orders, 3);

        /* The server dies with a batch in flight: _recv reports it. The
         * server is stopped first so it cannot answer before it dies. */
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&a, 0), 0);
        s = loy_store_create("127.0.0.1", a.port, NULL, 1000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        kill(a.pid, SIGSTOP);
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_send(s, w, 2, T0, &FC, E, sizeof(E)), LOY_STORE_OK);
        tu_redis_kill(&a, SIGKILL);
        CU_ASSERT_EQUAL(loy_store_write_recv(s, E, sizeof(E)),
                        LOY_STORE_ERR_IO);
        CU_ASSERT_FALSE(loy_store_is_connected(s));
        CU_ASSERT_EQUAL(loy_store_write_recv(s, E, sizeof(E)),
                        LOY_STORE_ERR_IO);
        loy_store_destroy(s);
        tu_redis_stop(&a);
}

/* ------------------------------------------------------- big pipeline */

#define BIG 10000

static void test_big_pipeline(void) {
        loy_cust_t *c = calloc(BIG, sizeof(*c));
        loy_cust_t **p = calloc(BIG, sizeof(*p));
        loy_cust_write_t *w = calloc(BIG, sizeof(*w));
        loy_kpi_delta_t k = {T0, "purchases", BIG};
        loy_batch_agg_t *a = agg_zero();
        int *found = calloc(BIG, sizeof(*found));
        int nfound = 0, ok = 1;
        char want[32];

        CU_ASSERT_TRUE_FATAL(c && p && w && found);
        flush();
        for (int i = 0; i < BIG; i++) {
                char id[16];
                snprintf(id, sizeof(id), "c%d", i);
                buyer(&c[i], id);
                c[i].orders = i;
                c[i].churn_prob = (double)i / BIG;
                c[i].next_check_ms = T0 + i;
                wr_init(&w[i], &c[i]);
        }
        a->kpi = &k;
        a->nkpi = 1;
        CU_ASSERT_EQUAL_FATAL(
            loy_store_write_batch(S, NULL, 0, a, w, BIG, T0, &FC, E, sizeof(E)),
            LOY_STORE_OK);
        snprintf(want, sizeof(want), "%d", BIG);
        CLI_EQ(&R, "ZCARD loy:rank:churn", want);
        CLI_EQ(&R, "ZCARD loy:timers:0", want);
        CLI_EQ(&R, "HGET loy:{agg}:kpi:2024-03-05 purchases", want);
        CLI_EQ(&R, "HGET loy:c:{c9999} orders", "9999");
        CLI_EQ(&R, "ZREVRANGE loy:rank:churn 0 0", "c9999");

        for (int i = 0; i < BIG; i++) {
                char id[16];
                snprintf(id, sizeof(id), "c%d", i);
                loy_feat_init(&c[i], id);
                p[i] = &c[i];
        }
        CU_ASSERT_EQUAL(loy_store_load(S, p, BIG, found, E, sizeof(E)),
                        LOY_STORE_OK);
        for (int i = 0; i < BIG; i++) {
                nfound += found[i];
                ok &= c[i].orders == i;
        }
        CU_ASSERT_EQUAL(nfound, BIG);
        CU_ASSERT_TRUE(ok);
        free(c);
        free(p);
        free(w);
        free(found);
}

/* loyaltyctl forget, as the store sees it: the hash is replaced by the
 * record of the erasure, the recommendations, the boards and the timer
 * entry lose the customer, and the record loads back as that. */
static void test_erase(void) {
        loy_cust_t c, back, *pb = &back;
        loy_cust_write_t w;
        const char *items[2] = {"85123A", "22633"};
        const double scores[2] = {0.75, 0.5};
        char *v;
        int found = 0;

        flush();
        buyer(&c, "42");
        c.next_check_ms = T0 + 500;
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "off:purchases:3", 7), 0);
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "cool:0", T0), 0);
        wr_init(&w, &c);
        w.partition = 3;
        w.hist_text = "85123A 1709640000000 1 1\n";
        w.recs_set = 1;
        w.nrecs = 2;
        w.rec_items = items;
        w.rec_scores = scores;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "ZSCORE loy:timers:3 42", "1709640000500");
        CLI_EQ(&R, "ZCARD loy:c:{42}:recs", "2");
        CLI_EQ(&R, "EXISTS loy:c:{42}:rh", "1");
        CLI_EQ(&R, "ZSCORE loy:rank:churn 42", "0.25");
        free(tu_redis_cli(&R, "HSET loy:c:{42} note by-hand"));

        loy_feat_forget(&c, T0 - DAY);
        CU_ASSERT_EQUAL_FATAL(loy_feat_slot_set(&c, "off:purchases:3", 8), 0);
        wr_init(&w, &c);
        w.partition = 3;
        w.old_timer_ms = T0 + 500;
        w.erase = 1;
        CU_ASSERT_EQUAL_FATAL(write1(&w), LOY_STORE_OK);
        CLI_EQ(&R, "EXISTS loy:c:{42}:rh", "0");
        CLI_EQ(&R, "EXISTS loy:c:{42}:recs", "0");
        CLI_EQ(&R, "ZSCORE loy:rank:churn 42", "");
        CLI_EQ(&R, "ZSCORE loy:rank:clv 42", "");
        CLI_EQ(&R, "ZSCORE loy:timers:3 42", "");
        CLI_EQ(&R, "HGET loy:c:{42} forgotten_ms", "1709553600000");
        CLI_EQ(&R, "HGET loy:c:{42} off:purchases:3", "8");
        /* nothing else of the customer, not even a field added by hand */
        CLI_EQ(&R, "HGET loy:c:{42} orders", "");
        CLI_EQ(&R, "HGET loy:c:{42} note", "");
        CLI_EQ(&R, "HGET loy:c:{42} cool:0", "");
        v = tu_redis_cli(&R, "HKEYS loy:c:{42}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_PTR_NULL(strstr(v, "last_event_ms"));
        free(v);

        loy_feat_init(&back, "42");
        CU_ASSERT_EQUAL_FATAL(loy_store_load(S, &pb, 1, &found, E, sizeof(E)),
                              LOY_STORE_OK);
        CU_ASSERT_EQUAL(found, 1);
        CU_ASSERT_EQUAL(back.forgotten_ms, T0 - DAY);
        CU_ASSERT_TRUE(loy_feat_is_forgotten(&back));
        CU_ASSERT_EQUAL(back.orders, 0);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&back, "off:purchases:3", -1), 8);
        CU_ASSERT_EQUAL(loy_feat_slot_get(&back, "cool:0", -1), -1);
}

int main(void) {
        CU_pSuite su;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        /* cluster 1: also run on the cluster (the others need one server:
         * its stats, its restart, its namespace-wide commands) */
        static const struct {
                const char *name;
                void (*fn)(void);
                int cluster;
        } tests[] = {
            {"create arguments", test_create_args, 0},
            {"server down", test_server_down, 0},
            {"round trip", test_round_trip, 1},
            {"load missing", test_load_missing, 1},
            {"load a hash without the packed field", test_load_legacy, 1},
            {"ranks", test_ranks, 1},
            {"an erased customer's write", test_erase, 1},
            {"segment and histogram counts", test_seg_hist, 1},
            {"aggregate fences", test_agg_fence, 1},
            {"a frozen owner's late write is refused", test_take_over, 1},
            {"load histograms", test_load_hist, 1},
            {"KPI", test_kpi, 1},
            {"KPI days closed in order, once", test_kpi_close, 1},
            {"loyaltyctl dashboard reads it", test_dashboard_reads, 1},
            {"KPI rate in the same write", test_kpi_rate_in_write, 1},
            {"refusals are told from errors", test_refusals, 0},
            {"timers", test_timers, 1},
            {"outbox", test_outbox, 1},
            {"stats", test_stats, 1},
            {"namespace and hgetall", test_namespace, 0},
            {"errors", test_errors, 0},
            {"connection loss", test_connection_loss, 0},
            {"credentials, ACL users, databases", test_credentials, 0},
            {"database other than 0", test_database, 1},
            {"write in two halves", test_write_split, 1},
            {"10,000 customers in one write", test_big_pipeline, 1},
        };
        const size_t ntests = sizeof(tests) / sizeof(tests[0]);
        su = CU_add_suite("store", suite_init, suite_clean);
        if (!su)
                return CU_get_error();
        for (size_t i = 0; i < ntests; i++)
                CU_add_test(su, tests[i].name, tests[i].fn);
        su = CU_add_suite("store on a 3-master cluster", cluster_init,
                          cluster_clean);
        if (!su)
                return CU_get_error();
        for (size_t i = 0; i < ntests; i++)
                if (tests[i].cluster)
                        CU_add_test(su, tests[i].name, tests[i].fn);
        return tu_cluster_cunit_run();
}
