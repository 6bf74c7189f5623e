/*
 * loy_pack: the engine's packed copy of a customer, and its chunks.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../features/loy_pack.h"
#include "../features/loy_rfm.h"
#include "tu.h"

/* Every stored field set to a value of its own, so a field swapped or lost
 * in the layout shows. */
static void full(loy_cust_t *c) {
        int k = 0;
        loy_feat_init(c, "cust-1");
        for (const loy_field_t *f = loy_feat_fields; f->name; f++, k++) {
                char *at = (char *)c + f->offset;
                switch (f->type) {
                case LOY_FT_I64: {
                        int64_t v = (k % 3 == 0) ? -1700000000000LL - k
                                                 : 1700000000000LL + k;
                        memcpy(at, &v, sizeof(v));
                        break;
                }
                case LOY_FT_INT: {
                        int v = k % 2; /* within every enum's range */
                        memcpy(at, &v, sizeof(v));
                        break;
                }
                case LOY_FT_DBL: {
                        double v = k * 0.1 + 1.0 / 3.0;
                        memcpy(at, &v, sizeof(v));
                        break;
                }
                default:
                        break;
                }
        }
        c->segment = LOY_SEG_CANT_LOSE;
        c->tier = 2;
        c->loyalty_group = 3;
        snprintf(c->recent_views[0], sizeof(c->recent_views[0]), "sku,9");
        snprintf(c->recent_views[1], sizeof(c->recent_views[1]), "%s",
                 "x234567890123456789012345678901234567890123456789012345678901"
                 "234");
        CU_ASSERT_EQUAL(loy_feat_slot_set(c, "off:purchases:7", 123456789), 0);
        CU_ASSERT_EQUAL(loy_feat_slot_set(c, "cool:welcome", -5), 0);
        /* a full window of event keys, the extremes among them */
        for (int i = 0; i < LOY_RECENT_EVENTS; i++)
                loy_feat_event_note(c, i == 3   ? 0
                                       : i == 4 ? UINT64_MAX
                                                : loy_feat_event_key("e") + i);
}

static void same(const loy_cust_t *a, const loy_cust_t *b) {
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                char x[LOY_FIELD_TEXT_MAX], y[LOY_FIELD_TEXT_MAX];
                if (f->type == LOY_FT_DERIVED)
                        continue;
                CU_ASSERT_TRUE(
                    loy_feat_field_format(a, f, 0, NULL, x, sizeof(x)) >= 0);
                CU_ASSERT_TRUE(
                    loy_feat_field_format(b, f, 0, NULL, y, sizeof(y)) >= 0);
                if (strcmp(x, y))
                        fprintf(stderr, "\n  %s: %s != %s\n", f->name, x, y);
                CU_ASSERT_STRING_EQUAL(x, y);
        }
        CU_ASSERT_EQUAL(a->nslots, b->nslots);
        for (int i = 0; i < a->nslots && i < b->nslots; i++) {
                CU_ASSERT_STRING_EQUAL(a->slots[i].name, b->slots[i].name);
                CU_ASSERT_EQUAL(a->slots[i].value, b->slots[i].value);
        }
}

static void test_round_trip(void) {
        static loy_cust_t a, b;
        unsigned char buf[LOY_PACK_MAX];
        int n;

        full(&a);
        n = loy_pack_cust(&a, buf, sizeof(buf));
        CU_ASSERT_TRUE_FATAL(n > 0);
        /* compact: far below the ~50 readable fields (~1.6 KB in Redis) */
        CU_ASSERT_TRUE(n < 600);
        loy_feat_init(&b, "cust-1");
        CU_ASSERT_EQUAL_FATAL(loy_pack_unpack(&b, buf, (size_t)n), 0);
        same(&a, &b);
        /* bit for bit, and the same input gives the same bytes */
        CU_ASSERT_EQUAL(memcmp(&a.gross_value, &b.gross_value, sizeof(double)),
                        0);
        {
                unsigned char again[LOY_PACK_MAX];
                CU_ASSERT_EQUAL(loy_pack_cust(&b, again, sizeof(again)), n);
                CU_ASSERT_EQUAL(memcmp(buf, again, (size_t)n), 0);
        }
        /* a buffer too small is refused, not overrun */
        CU_ASSERT_EQUAL(loy_pack_cust(&a, buf, (size_t)n - 1), -1);
        /* an empty customer packs small */
        loy_feat_init(&b, "e");
        n = loy_pack_cust(&b, buf, sizeof(buf));
        CU_ASSERT_TRUE(n > 0 && n < 200);
}

static void test_damaged(void) {
        static loy_cust_t a, b;
        unsigned char buf[LOY_PACK_MAX];
        int n;

        full(&a);
        n = loy_pack_cust(&a, buf, sizeof(buf));
        CU_ASSERT_TRUE_FATAL(n > 10);
        /* every truncation is refused */
        for (int len = 0; len < n; len++) {
                loy_feat_init(&b, "cust-1");
                CU_ASSERT_EQUAL(loy_pack_unpack(&b, buf, (size_t)len), -1);
        }
        /* another version */
        buf[0] = LOY_PACK_VERSION + 1;
        CU_ASSERT_EQUAL(loy_pack_unpack(&b, buf, (size_t)n), -1);
        buf[0] = LOY_PACK_VERSION;
        /* bytes after the length it gives are not its own: ignored */
        buf[n] = 0x55;
        loy_feat_init(&b, "cust-1");
        CU_ASSERT_EQUAL(loy_pack_unpack(&b, buf, (size_t)n + 1), 0);
        same(&a, &b);
        /* a segment out of range cannot index past the names */
        a.segment = LOY_SEG__COUNT;
        n = loy_pack_cust(&a, buf, sizeof(buf));
        loy_feat_init(&b, "cust-1");
        CU_ASSERT_EQUAL(loy_pack_unpack(&b, buf, (size_t)n), -1);
}

/* The chunks as the hash holds them: in order, a shorter state leaving a
 * longer one's last chunk behind, and a hash without chunks read field by
 * field. */
static void test_chunks(void) {
        static loy_cust_t a, b;
        unsigned char buf[LOY_PACK_MAX];
        const char *names[16], *vals[16], *bad;
        char nm[16][8];
        size_t lens[16];
        int n, nch;

        CU_ASSERT_EQUAL(loy_pack_chunk_of("e0"), 0);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("e12"), 12);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("e"), -1);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("e01"), -1);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("e64"), -1);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("events"), -1);
        CU_ASSERT_EQUAL(loy_pack_chunk_of("orders"), -1);
        loy_pack_chunk_name(3, nm[0]);
        CU_ASSERT_STRING_EQUAL(nm[0], "e3");

        full(&a);
        n = loy_pack_cust(&a, buf, sizeof(buf));
        nch = (n + LOY_PACK_CHUNK - 1) / LOY_PACK_CHUNK;
        CU_ASSERT_TRUE_FATAL(nch >= 2 && nch < 14);
        /* reversed, with view fields between: order does not matter */
        for (int i = 0; i < nch; i++) {
                int k = nch - 1 - i;
                loy_pack_chunk_name(k, nm[i]);
                names[i] = nm[i];
                vals[i] = (const char *)buf + k * LOY_PACK_CHUNK;
                lens[i] = (size_t)(n - k * LOY_PACK_CHUNK < LOY_PACK_CHUNK
                                       ? n - k * LOY_PACK_CHUNK
                                       : LOY_PACK_CHUNK);
        }
        names[nch] = "orders";
        vals[nch] = "junk"; /* the view is not read */
        lens[nch] = 4;
        /* a stale chunk after the last one */
        loy_pack_chunk_name(nch, nm[nch + 1]);
        names[nch + 1] = nm[nch + 1];
        vals[nch + 1] = "stale";
        lens[nch + 1] = 5;
        loy_feat_init(&b, "cust-1");
        CU_ASSERT_EQUAL_FATAL(
            loy_pack_from_hash(&b, names, vals, lens, (size_t)nch + 2, &bad),
            0);
        same(&a, &b);
        /* the last chunk missing: refused, naming the state */
        loy_feat_init(&b, "cust-1");
        CU_ASSERT_EQUAL(loy_pack_from_hash(&b, names + 1, vals + 1, lens + 1,
                                           (size_t)nch - 1, &bad),
                        -1);
        CU_ASSERT_STRING_EQUAL(bad, "e0");
        /* a chunk longer than a chunk can be */
        lens[0] = LOY_PACK_CHUNK + 1;
        CU_ASSERT_EQUAL(loy_pack_from_hash(&b, names, vals, lens, 1, &bad), -1);

        /* no chunks: the readable fields, as an older version wrote them */
        {
                const char *on[] = {"orders", "gross_value", "off:p:1"};
                const char *ov[] = {"7", "12.5", "42"};
                size_t ol[] = {1, 4, 2};
                loy_feat_init(&b, "old");
                CU_ASSERT_EQUAL(loy_pack_from_hash(&b, on, ov, ol, 3, &bad), 0);
                CU_ASSERT_EQUAL(b.orders, 7);
                CU_ASSERT_DOUBLE_EQUAL(b.gross_value, 12.5, 0);
                CU_ASSERT_EQUAL(loy_feat_slot_get(&b, "off:p:1", -1), 42);
                ov[0] = "seven";
                CU_ASSERT_EQUAL(loy_pack_from_hash(&b, on, ov, ol, 3, &bad),
                                -1);
                CU_ASSERT_STRING_EQUAL(bad, "orders");
        }
}

int main(void) {
        CU_pSuite su;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        su = CU_add_suite("pack", NULL, NULL);
        CU_add_test(su, "round trip, bit for bit", test_round_trip);
        CU_add_test(su, "damaged strings are refused", test_damaged);
        CU_add_test(su, "chunks, stale chunks, hashes without them",
                    test_chunks);
        return tu_cunit_run();
}
