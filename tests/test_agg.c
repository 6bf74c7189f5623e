/*
 * loy_agg without Kafka or Redis: which items the aggregates already hold,
 * what a batch sums, and the fences it writes. The crash these fences are
 * for is replayed by hand: a batch's aggregates "land" (their fence values
 * are what a fresh process reads back), its customers do not, and the redo
 * must sum only what is new.
 */
#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

#include "../stream/loy_agg.h"

#define DAY0 1709596800000LL /* 2024-03-05 */

static const char *T[] = {"purchases", "purchases", "browse"};
static const int32_t P[] = {0, 1, 0};

/* What Redis would hold after writing b: field -> value. */
typedef struct held {
        char field[64][64];
        char value[64][4096];
        int n;
} held_t;

static void land(held_t *h, const loy_batch_agg_t *b) {
        for (int i = 0; b && i < b->nfence; i++) {
                int j;
                for (j = 0; j < h->n; j++)
                        if (!strcmp(h->field[j], b->fence[i].field))
                                break;
                if (j == h->n) {
                        CU_ASSERT_FATAL(h->n < 64);
                        h->n++;
                }
                snprintf(h->field[j], sizeof(h->field[j]), "%s",
                         b->fence[i].field);
                snprintf(h->value[j], sizeof(h->value[j]), "%s",
                         b->fence[i].value);
        }
}

/* A process that starts: reads the fences of its three partitions. */
static loy_agg_t *start(const held_t *h) {
        loy_agg_t *a = loy_agg_new();
        const char *const *fields;
        char *vals[16];
        char err[256];
        int nf = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_EQUAL_FATAL(loy_agg_fence_fields(a, T, P, 3, &fields, &nf),
                              0);
        /* o: per topic and partition, f: and v: per partition number */
        CU_ASSERT_EQUAL_FATAL(nf, 7);
        CU_ASSERT_STRING_EQUAL(fields[0], "o:purchases:0");
        CU_ASSERT_STRING_EQUAL(fields[2], "o:browse:0");
        CU_ASSERT_STRING_EQUAL(fields[3], "f:0");
        CU_ASSERT_STRING_EQUAL(fields[4], "v:0");
        CU_ASSERT_STRING_EQUAL(fields[5], "f:1");
        CU_ASSERT_STRING_EQUAL(fields[6], "v:1");
        for (int i = 0; i < nf; i++) {
                vals[i] = NULL;
                for (int j = 0; h && j < h->n; j++)
                        if (!strcmp(h->field[j], fields[i]))
                                vals[i] = (char *)h->value[j];
        }
        CU_ASSERT_FALSE(loy_agg_fences_known(a));
        CU_ASSERT_EQUAL_FATAL(loy_agg_fence_load(a, vals, err, sizeof(err)), 0);
        CU_ASSERT_TRUE(loy_agg_fences_known(a));
        return a;
}

static int64_t kpi_of(const loy_batch_agg_t *b, const char *field) {
        int64_t v = 0;
        for (int i = 0; b && i < b->nkpi; i++)
                if (!strcmp(b->kpi[i].field, field))
                        v += b->kpi[i].delta;
        return v;
}

static const loy_agg_fence_t *fence_of(const loy_batch_agg_t *b,
                                       const char *field) {
        for (int i = 0; b && i < b->nfence; i++)
                if (!strcmp(b->fence[i].field, field))
                        return &b->fence[i];
        return NULL;
}

/* One purchase at offset off of purchases/0, and its KPI. */
static void purchase(loy_agg_t *a, int64_t off) {
        loy_agg_on_event(a, "purchases", 0, off);
        CU_ASSERT_EQUAL(loy_agg_kpi(a, DAY0 + off, "purchases", 1), 0);
}

static void test_batch_and_redo(void) {
        static held_t h;
        const loy_batch_agg_t *b;
        const loy_agg_fence_t *f;
        loy_agg_t *a;

        memset(&h, 0, sizeof(h));
        a = start(NULL);
        loy_agg_begin(a);
        for (int i = 0; i < 10; i++)
                purchase(a, i);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "c7", DAY0 + 5, 0), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(kpi_of(b, "purchases"), 10);
        /* one KPI entry per day and field, days by their UTC start */
        CU_ASSERT_EQUAL(b->nkpi, 1);
        CU_ASSERT_EQUAL(b->kpi[0].day_ms, DAY0);
        f = fence_of(b, "o:purchases:0");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_TRUE(f->check);
        CU_ASSERT_PTR_NULL(f->expect); /* none yet */
        CU_ASSERT_STRING_EQUAL(f->value, "9");
        CU_ASSERT_PTR_NULL(fence_of(b, "o:purchases:1")); /* nothing read */
        f = fence_of(b, "f:0");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_FALSE(f->check);
        CU_ASSERT_STRING_EQUAL(f->value, "1709596800005 c7\n");
        /* The aggregates land; the process dies before its customers. */
        land(&h, b);
        loy_agg_destroy(a);

        /* The redo reads 0..14 and fires c7 again (its hash did not move
         * on), plus a check of its own: only what is new is summed. */
        a = start(&h);
        loy_agg_begin(a);
        for (int i = 0; i < 15; i++) {
                purchase(a, i);
                CU_ASSERT_EQUAL(loy_agg_held(a), i <= 9);
        }
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "c7", DAY0 + 5, 0), 1);
        CU_ASSERT_EQUAL(loy_agg_kpi(a, DAY0, "triggers:x", 1), 0);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "c8", DAY0 + 6, 0), 0);
        CU_ASSERT_EQUAL(loy_agg_kpi(a, DAY0, "triggers:x", 1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(kpi_of(b, "purchases"), 5);
        CU_ASSERT_EQUAL(kpi_of(b, "triggers:x"), 1);
        f = fence_of(b, "o:purchases:0");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_STRING_EQUAL(f->expect, "9");
        CU_ASSERT_STRING_EQUAL(f->value, "14");
        /* c7 fired again in this batch: listed again until its customer
         * is written */
        CU_ASSERT_STRING_EQUAL(fence_of(b, "f:0")->value,
                               "1709596800005 c7\n1709596800006 c8\n");
        land(&h, b);
        loy_agg_written(a);

        /* Next batch, same process: fences as written, nothing held. */
        loy_agg_begin(a);
        purchase(a, 15);
        CU_ASSERT_EQUAL(loy_agg_held(a), 0);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "c7", DAY0 + 5, 0), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "o:purchases:0")->expect, "14");
        CU_ASSERT_EQUAL(kpi_of(b, "purchases"), 1);

        /* A batch of events all held: nothing to write. */
        loy_agg_destroy(a);
        a = start(&h);
        loy_agg_begin(a);
        purchase(a, 3);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NULL(b);
        loy_agg_destroy(a);
}

/* A check of a failed batch that the redo does not reach yet (its clock is
 * behind) stays listed when the partition's list is rewritten, or a second
 * crash would count it twice. */
static void test_pending_kept(void) {
        static held_t h;
        const loy_batch_agg_t *b;
        loy_agg_t *a;

        memset(&h, 0, sizeof(h));
        a = start(NULL);
        loy_agg_begin(a);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "old", DAY0 + 9, 1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        land(&h, b);
        loy_agg_destroy(a);

        a = start(&h);
        loy_agg_begin(a);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "new", DAY0 + 1, 1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "f:1")->value,
                               "1709596800001 new\n1709596800009 old\n");
        land(&h, b);
        loy_agg_written(a);
        loy_agg_destroy(a);

        a = start(&h);
        loy_agg_begin(a);
        CU_ASSERT_EQUAL(loy_agg_on_fire(a, "old", DAY0 + 9, 1), 1);
        loy_agg_destroy(a);
}

static int64_t count_of(const loy_batch_agg_t *b, int dim, int field) {
        int64_t v = 0;
        for (int i = 0; b && i < b->ncount; i++)
                if (b->count[i].dim == dim && b->count[i].field == field)
                        v += b->count[i].delta;
        return v;
}

static loy_agg_counted_t vec(int seg, int r, int f, int m, int l) {
        loy_agg_counted_t v = {seg, {r, f, m, l}};
        return v;
}

/* The crash between a batch's counts and its customers, replayed by hand:
 * the redo scores a customer differently (the population moved), and its
 * move must start where the counts hold it, not where its hash does. */
static void test_counts_redo(void) {
        static held_t h;
        const loy_batch_agg_t *b;
        loy_agg_t *a;
        loy_agg_counted_t none = vec(-1, -1, -1, -1, -1);
        loy_agg_counted_t a1 = vec(LOY_SEG_NEW, 1900, 0, 300, 30);
        loy_agg_counted_t a2 = vec(LOY_SEG_POTENTIAL, 1900, 0, 300, 31);
        loy_agg_counted_t b0 = vec(LOY_SEG_LOST, 1700, 64, 400, 20);
        loy_agg_counted_t b1 = vec(LOY_SEG_AT_RISK, 1800, 101, 420, 25);
        loy_agg_counted_t b2 = vec(LOY_SEG_LOYAL, 1850, 128, 430, 35);
        loy_agg_counted_t v;

        memset(&h, 0, sizeof(h));
        a = start(NULL);
        loy_agg_begin(a);
        v = none;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "ca", &v), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &none, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cb", 0, &b0, &b1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_NEW), 1);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_LOST), -1);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_AT_RISK), 1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_RECENCY, 1900), 1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_RECENCY, 1700), -1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_FREQUENCY, 0), 1);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "1 1900 0 300 30 ca\n"
                               "6 1800 101 420 25 cb\n");
        CU_ASSERT_FALSE(fence_of(b, "v:0")->check);
        CU_ASSERT_PTR_NULL(fence_of(b, "v:1"));
        /* The counts land; the process dies before its customers. */
        land(&h, b);
        loy_agg_destroy(a);

        /* The redo reaches ca only, and scores it otherwise: its move
         * starts from a1 (listed), not from its hash (new to Redis). */
        a = start(&h);
        loy_agg_begin(a);
        v = none;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "ca", &v), 1);
        CU_ASSERT_EQUAL(v.seg, LOY_SEG_NEW);
        CU_ASSERT_EQUAL(v.bins[LOY_DIM_LOYALTY], 30);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &v, &a2), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_NEW), -1);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_POTENTIAL), 1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_LOYALTY, 30), -1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_LOYALTY, 31), 1);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_RECENCY, 1900), 0);
        /* cb's hash still waits for its batch: it stays listed */
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "4 1900 0 300 31 ca\n"
                               "6 1800 101 420 25 cb\n");
        land(&h, b);
        loy_agg_written(a);

        /* Next batch, same process: cb again, from what the counts hold;
         * ca is settled and drops out of the list. */
        loy_agg_begin(a);
        v = b0;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "cb", &v), 1);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cb", 0, &v, &b2), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_AT_RISK), -1);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_LOST), 0);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_LOYAL), 1);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "3 1850 128 430 35 cb\n");
        land(&h, b);
        loy_agg_written(a);
        loy_agg_destroy(a);

        /* A listed customer whose hash holds what the list says is settled
         * by being read: nothing to write (a replay writes nothing), and
         * the next list written there leaves it out. */
        a = start(&h);
        loy_agg_begin(a);
        v = b2;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "cb", &v), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NULL(b);
        loy_agg_written(a);
        loy_agg_begin(a);
        v = none;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "cb", &v), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cc", 0, &none, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "1 1900 0 300 30 cc\n");
        loy_agg_destroy(a);
}

/* The redo scores a listed customer exactly as the list says: nothing
 * moves, but until its hash lands the list must keep naming it, or a
 * second crash before the hash makes the next redo count it again from
 * its hash (seen as a customer counted twice as new). */
static void test_counts_redo_unmoved(void) {
        static held_t h;
        const loy_batch_agg_t *b;
        loy_agg_t *a;
        loy_agg_counted_t none = vec(-1, -1, -1, -1, -1);
        loy_agg_counted_t a1 = vec(LOY_SEG_NEW, 1900, 0, 300, 30);
        loy_agg_counted_t b0 = vec(LOY_SEG_LOST, 1700, 64, 400, 20);
        loy_agg_counted_t b1 = vec(LOY_SEG_AT_RISK, 1800, 101, 420, 25);
        loy_agg_counted_t b2 = vec(LOY_SEG_LOYAL, 1850, 128, 430, 35);
        loy_agg_counted_t v;

        memset(&h, 0, sizeof(h));
        a = start(NULL);
        loy_agg_begin(a);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &none, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        land(&h, b); /* then the process dies before ca's hash */
        loy_agg_destroy(a);

        /* First redo: ca scored as listed; cb, in the same list, moves */
        a = start(&h);
        loy_agg_begin(a);
        v = none;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "ca", &v), 1);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &v, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cb", 0, &b0, &b1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_NEW), 0);
        CU_ASSERT_EQUAL(count_of(b, LOY_DIM_RECENCY, 1900), 0);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "1 1900 0 300 30 ca\n"
                               "6 1800 101 420 25 cb\n");
        land(&h, b); /* and it dies again before the hashes */
        loy_agg_destroy(a);

        /* Second redo: ca still starts from the list, not from nothing */
        a = start(&h);
        loy_agg_begin(a);
        v = none;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "ca", &v), 1);
        CU_ASSERT_EQUAL(v.seg, LOY_SEG_NEW);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &v, &a1), 0);
        v = b0;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "cb", &v), 1);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cb", 0, &v, &b2), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_NEW), 0);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_AT_RISK), -1);
        CU_ASSERT_EQUAL(count_of(b, -1, LOY_SEG_LOYAL), 1);
        land(&h, b);
        loy_agg_written(a);

        /* ca's hash landed: read back equal, it settles and drops out
         * (cb, not in this batch, stays) */
        loy_agg_destroy(a);
        a = start(&h);
        loy_agg_begin(a);
        v = a1;
        CU_ASSERT_EQUAL(loy_agg_counted_get(a, "ca", &v), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "ca", 0, &a1, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_cust(a, "cc", 0, &none, &a1), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_STRING_EQUAL(fence_of(b, "v:0")->value,
                               "1 1900 0 300 30 cc\n"
                               "3 1850 128 430 35 cb\n");
        loy_agg_destroy(a);
}

/* A fence that does not parse is an error, not a silent zero. */
/* With an owner, a batch that writes proves it owns every partition it
 * holds; the partitions Kafka assigned are listed to be taken over once. */
static void test_owner(void) {
        const loy_batch_agg_t *b;
        const loy_agg_fence_t *f;
        const char *const *own;
        char field[LOY_OWNER_FIELD_MAX];
        int n = -1;
        loy_agg_t *a = start(NULL);

        loy_agg_owner_field("purchases", 12, field, sizeof(field));
        CU_ASSERT_STRING_EQUAL(field, "own:purchases:12");
        /* no owner: no checks */
        loy_agg_begin(a);
        purchase(a, 1);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NULL(fence_of(b, "own:purchases:0"));

        CU_ASSERT_EQUAL(loy_agg_set_owner(a, "proc-a"), 0);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        for (int i = 0; i < 3; i++) {
                loy_agg_owner_field(T[i], P[i], field, sizeof(field));
                f = fence_of(b, field);
                CU_ASSERT_PTR_NOT_NULL_FATAL(f);
                CU_ASSERT_TRUE(f->check);
                CU_ASSERT_STRING_EQUAL(f->expect, "proc-a");
                CU_ASSERT_STRING_EQUAL(f->value, "proc-a");
        }
        /* a batch with nothing to write checks nothing either */
        loy_agg_begin(a);
        CU_ASSERT_EQUAL(loy_agg_build(a, &b), 0);
        CU_ASSERT_PTR_NULL(b);

        /* assigned: browse/0 and a partition this process does not load */
        CU_ASSERT_EQUAL(loy_agg_takeover_fields(a, &own, &n), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(loy_agg_take_over(a, "browse", 0), 0);
        CU_ASSERT_EQUAL(loy_agg_take_over(a, "browse", 0), 0);
        CU_ASSERT_EQUAL(loy_agg_take_over(a, "purchases", 7), 0);
        CU_ASSERT_EQUAL(loy_agg_takeover_fields(a, &own, &n), 0);
        CU_ASSERT_EQUAL_FATAL(n, 1);
        CU_ASSERT_STRING_EQUAL(own[0], "own:browse:0");
        /* not done (Redis down): still listed */
        CU_ASSERT_EQUAL(loy_agg_takeover_fields(a, &own, &n), 0);
        CU_ASSERT_EQUAL(n, 1);
        loy_agg_takeover_done(a);
        CU_ASSERT_EQUAL(loy_agg_takeover_fields(a, &own, &n), 0);
        CU_ASSERT_EQUAL(n, 0);
        loy_agg_destroy(a);
}

static void test_bad_fence(void) {
        loy_agg_t *a = loy_agg_new();
        const char *const *fields;
        char *vals[7] = {"12x", NULL, NULL, NULL, NULL, NULL, NULL};
        char err[256] = "";
        int nf;
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_EQUAL(loy_agg_fence_fields(a, T, P, 3, &fields, &nf), 0);
        CU_ASSERT_EQUAL(loy_agg_fence_load(a, vals, err, sizeof(err)), -1);
        CU_ASSERT_TRUE(strstr(err, "o:purchases:0") != NULL);
        CU_ASSERT_FALSE(loy_agg_fences_known(a));
        vals[0] = NULL;
        vals[3] = "17 c1\nnot a line";
        CU_ASSERT_EQUAL(loy_agg_fence_load(a, vals, err, sizeof(err)), -1);
        CU_ASSERT_TRUE(strstr(err, "f:0") != NULL);
        vals[3] = NULL;
        vals[4] = "3 1 2 3 4 c1\n3 1 2 c2\n"; /* a bin missing */
        CU_ASSERT_EQUAL(loy_agg_fence_load(a, vals, err, sizeof(err)), -1);
        CU_ASSERT_TRUE(strstr(err, "v:0") != NULL);
        vals[4] = "99 1 2 3 4 c1\n"; /* no such segment */
        CU_ASSERT_EQUAL(loy_agg_fence_load(a, vals, err, sizeof(err)), -1);
        loy_agg_destroy(a);
}

int main(void) {
        CU_pSuite su;
        unsigned fails;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        su = CU_add_suite("agg", NULL, NULL);
        CU_add_test(su, "batch sums and the redo after a crash",
                    test_batch_and_redo);
        CU_add_test(su, "checks owed by a failed batch stay listed",
                    test_pending_kept);
        CU_add_test(su, "count moves and the redo after a crash",
                    test_counts_redo);
        CU_add_test(su,
                    "a listed customer the redo does not move stays "
                    "listed until its hash lands",
                    test_counts_redo_unmoved);
        CU_add_test(su, "a fence that does not parse", test_bad_fence);
        CU_add_test(su, "owner checks and partitions to take over", test_owner);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        fails = CU_get_number_of_failures();
        CU_cleanup_registry();
        return fails ? 1 : 0;
}
