/*
 * loy_codec: Avro (Confluent framing) and JSON decoding, encoding of events
 * and triggers, and one test per kind of malformed input with the exact
 * dead-letter reason.
 *
 * Events are invoices of the UCI Online Retail set (tests use the first
 * ones of the file: 536365, 536366 and the return C536383).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <jansson.h>

#include "loy_codec.h"
#include "loy_event.h"
#include "tu.h"

/* 2023-11-14: "now" for the validation of timestamps */
#define NOW_MS 1700000000000LL
/* 2010-12-01 08:26:00 UTC, invoice 536365 */
#define TS_536365 1291191960000LL
#define TS_536366 1291192080000LL

static loy_codec_t *codec;
static loy_event_t ev;
static char err[512];

static int suite_init(void) {
        codec = loy_codec_create(NULL, err, sizeof(err));
        return codec ? 0 : -1;
}

static int suite_clean(void) {
        loy_codec_destroy(codec);
        loy_event_free(&ev);
        return 0;
}

/* ------------------------------------------------------------------------
 * A hand-rolled Avro writer, independent of the codec, to build exact
 * expected bytes and malformed messages.
 * ------------------------------------------------------------------------ */

typedef struct bb {
        uint8_t b[4096];
        size_t n;
} bb_t;

static void put_byte(bb_t *bb, uint8_t v) {
        CU_ASSERT_FATAL(bb->n < sizeof(bb->b));
        bb->b[bb->n++] = v;
}

static void put_raw(bb_t *bb, const void *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                put_byte(bb, ((const uint8_t *)p)[i]);
}

static void put_long(bb_t *bb, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        while (z > 0x7f) {
                put_byte(bb, (uint8_t)(z & 0x7f) | 0x80);
                z >>= 7;
        }
        put_byte(bb, (uint8_t)z);
}

static void put_str(bb_t *bb, const char *s) {
        put_long(bb, (int64_t)strlen(s));
        put_raw(bb, s, strlen(s));
}

static void put_double(bb_t *bb, double d) {
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++)
                put_byte(bb, (uint8_t)(u >> (8 * i)));
}

static void put_header(bb_t *bb, uint32_t id) {
        bb->n = 0;
        put_byte(bb, 0);
        put_byte(bb, (uint8_t)(id >> 24));
        put_byte(bb, (uint8_t)(id >> 16));
        put_byte(bb, (uint8_t)(id >> 8));
        put_byte(bb, (uint8_t)id);
}

/* A purchase with one line, every field given. */
static void put_purchase1(bb_t *bb, const char *cid, double price) {
        put_header(bb, 1);
        put_str(bb, "536365");
        put_str(bb, cid);
        put_long(bb, TS_536365);
        put_str(bb, "536365");
        put_long(bb, 1);
        put_str(bb, "85123A");
        put_str(bb, "");
        put_long(bb, 6);
        put_double(bb, price);
        put_long(bb, 0);
        put_str(bb, "GBP");
        put_str(bb, "web");
}

static int decode(const void *buf, size_t len, loy_event_kind_t expect) {
        err[0] = '\0';
        return loy_codec_decode(codec, buf, len, expect, NOW_MS, &ev, err,
                                sizeof(err));
}

static int decode_str(const char *s, loy_event_kind_t expect) {
        return decode(s, strlen(s), expect);
}

#define ASSERT_REJECT_AS(call, code, reason)                                   \
        do {                                                                   \
                CU_ASSERT_EQUAL((call), (code));                               \
                CU_ASSERT_STRING_EQUAL(err, (reason));                         \
                if (strcmp(err, (reason)))                                     \
                        fprintf(stderr, "\n  got reason: %s\n", err);          \
        } while (0)
/* Bytes that are not an event of the schema. */
#define ASSERT_REJECT(call, reason)                                            \
        ASSERT_REJECT_AS(call, LOY_CODEC_ERR_DECODE, reason)
/* An event that decodes but breaks a rule of docs/events.md. */
#define ASSERT_INVALID(call, reason)                                           \
        ASSERT_REJECT_AS(call, LOY_CODEC_ERR_INVALID, reason)

/* Invoice 536365, all 7 lines, plus a returned line so negative
 * quantities travel too. */
static void fill_536365(loy_event_t *e) {
        static const struct {
                const char *sku;
                int q;
                double price;
        } l[] = {
            {"85123A", 6, 2.55}, {"71053", 6, 3.39},   {"84406B", 8, 2.75},
            {"84029G", 6, 3.39}, {"84029E", 6, 3.39},  {"22752", 2, 7.65},
            {"21730", 6, 4.25},  {"35004C", -1, 4.65},
        };
        loy_event_reset(e);
        e->kind = LOY_EV_PURCHASE;
        strcpy(e->event_id, "536365");
        strcpy(e->customer_id, "17850");
        e->ts_ms = TS_536365;
        strcpy(e->order_id, "536365");
        strcpy(e->currency, "GBP");
        strcpy(e->channel, "web");
        for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
                loy_line_t *ln = loy_event_add_line(e);
                CU_ASSERT_PTR_NOT_NULL_FATAL(ln);
                strcpy(ln->sku, l[i].sku);
                strcpy(ln->category, i < 2 ? "home" : "");
                ln->quantity = l[i].q;
                ln->unit_price = l[i].price;
        }
}

static void fill_browse(loy_event_t *e, loy_browse_action_t a) {
        loy_event_reset(e);
        e->kind = LOY_EV_BROWSE;
        strcpy(e->event_id, "b-0001");
        strcpy(e->customer_id, "13047");
        strcpy(e->session_id, "s-42");
        e->ts_ms = TS_536366 + 1000;
        e->action = a;
        if (a != LOY_ACT_SEARCH) {
                strcpy(e->sku, "22633");
                strcpy(e->category, "warmers");
        } else {
                strcpy(e->query, "hand warmer union jack");
        }
}

/* ------------------------------------------------------------------------
 * Round trips and exact bytes
 * ------------------------------------------------------------------------ */

static void test_create_ids(void) {
        loy_codec_ids_t ids = {10, 11, 300};
        loy_codec_ids_t dup = {1, 1, 3};
        loy_codec_t *c;
        loy_event_t e = {0};
        const uint8_t *out;
        size_t len;

        c = loy_codec_create(&dup, err, sizeof(err));
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_STRING_EQUAL(err, "schema ids must be distinct and >= 0 "
                                    "(purchase 1, browse 1, trigger 3)");

        c = loy_codec_create(&ids, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        fill_browse(&e, LOY_ACT_VIEW);
        out = loy_codec_encode_event(c, &e, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_EQUAL(out[0], 0);
        CU_ASSERT_EQUAL(out[1], 0);
        CU_ASSERT_EQUAL(out[2], 0);
        CU_ASSERT_EQUAL(out[3], 0);
        CU_ASSERT_EQUAL(out[4], 11);
        /* the default codec knows nothing of id 11 */
        ASSERT_REJECT(decode(out, len, 0), "unknown schema id 11");
        CU_ASSERT_EQUAL(loy_codec_decode(c, out, len, LOY_EV_BROWSE, NOW_MS, &e,
                                         err, sizeof(err)),
                        0);
        loy_codec_destroy(c);
        loy_event_free(&e);
}

static void test_purchase_wire_bytes(void) {
        loy_event_t e = {0};
        const uint8_t *out;
        size_t len;
        bb_t bb;

        /* invoice 536366: two lines of 6 x 1.85 */
        e.kind = LOY_EV_PURCHASE;
        strcpy(e.event_id, "536366");
        strcpy(e.customer_id, "17850");
        e.ts_ms = TS_536366;
        strcpy(e.order_id, "536366");
        strcpy(e.currency, "GBP");
        strcpy(e.channel, "web");
        strcpy(loy_event_add_line(&e)->sku, "22633");
        strcpy(loy_event_add_line(&e)->sku, "22632");
        e.lines[0].quantity = e.lines[1].quantity = 6;
        e.lines[0].unit_price = e.lines[1].unit_price = 1.85;

        out = loy_codec_encode_event(codec, &e, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);

        put_header(&bb, 1);
        put_str(&bb, "536366");
        put_str(&bb, "17850");
        put_long(&bb, TS_536366);
        put_str(&bb, "536366");
        put_long(&bb, 2);
        put_str(&bb, "22633");
        put_str(&bb, "");
        put_long(&bb, 6);
        put_double(&bb, 1.85);
        put_str(&bb, "22632");
        put_str(&bb, "");
        put_long(&bb, 6);
        put_double(&bb, 1.85);
        put_long(&bb, 0);
        put_str(&bb, "GBP");
        put_str(&bb, "web");
        /* 5 header + 7 + 6 + 6 ts + 7 + 1 + 2 * (6 + 1 + 1 + 8) + 1 + 4 + 4 */
        CU_ASSERT_EQUAL(bb.n, 73);
        CU_ASSERT_EQUAL(len, bb.n);
        CU_ASSERT(len == bb.n && !memcmp(out, bb.b, len));
        /* spot checks of the encoding itself: "536366" has length 6,
         * zigzag 12 */
        CU_ASSERT_EQUAL(bb.b[5], 0x0c);
        CU_ASSERT_EQUAL(bb.b[12], 0x0a);
        loy_event_free(&e);
}

static void test_purchase_roundtrip(void) {
        loy_event_t in = {0};
        const void *out;
        size_t len;

        fill_536365(&in);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_EQUAL_FATAL(decode(out, len, LOY_EV_PURCHASE), 0);
        CU_ASSERT_EQUAL(ev.kind, LOY_EV_PURCHASE);
        CU_ASSERT_STRING_EQUAL(ev.event_id, "536365");
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "17850");
        CU_ASSERT_EQUAL(ev.ts_ms, TS_536365);
        CU_ASSERT_STRING_EQUAL(ev.order_id, "536365");
        CU_ASSERT_STRING_EQUAL(ev.currency, "GBP");
        CU_ASSERT_STRING_EQUAL(ev.channel, "web");
        CU_ASSERT_EQUAL_FATAL(ev.nlines, 8);
        for (int i = 0; i < 8; i++) {
                CU_ASSERT_STRING_EQUAL(ev.lines[i].sku, in.lines[i].sku);
                CU_ASSERT_STRING_EQUAL(ev.lines[i].category,
                                       in.lines[i].category);
                CU_ASSERT_EQUAL(ev.lines[i].quantity, in.lines[i].quantity);
                /* doubles travel bit for bit */
                CU_ASSERT(ev.lines[i].unit_price == in.lines[i].unit_price);
        }
        CU_ASSERT_STRING_EQUAL(ev.lines[0].category, "home");
        CU_ASSERT_EQUAL(ev.lines[7].quantity, -1);
        CU_ASSERT(ev.lines[7].unit_price == 4.65);
        /* 6*2.55 + 6*3.39 + 8*2.75 + 6*3.39 + 6*3.39 + 2*7.65 + 6*4.25
         * - 4.65 = 139.12 - 4.65 */
        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), 134.47, 1e-9);

        /* the same message again into the reused event: no leftovers */
        CU_ASSERT_EQUAL(decode(out, len, 0), 0);
        CU_ASSERT_EQUAL(ev.nlines, 8);
        loy_event_free(&in);
}

static void test_browse_roundtrip(void) {
        for (int a = 0; a < LOY_ACT__COUNT; a++) {
                loy_event_t in = {0};
                const uint8_t *out;
                size_t len;

                fill_browse(&in, (loy_browse_action_t)a);
                out =
                    loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL_FATAL(out);
                CU_ASSERT_EQUAL(out[4], 2);
                CU_ASSERT_EQUAL_FATAL(decode(out, len, LOY_EV_BROWSE), 0);
                CU_ASSERT_EQUAL(ev.kind, LOY_EV_BROWSE);
                CU_ASSERT_STRING_EQUAL(ev.event_id, "b-0001");
                CU_ASSERT_STRING_EQUAL(ev.customer_id, "13047");
                CU_ASSERT_STRING_EQUAL(ev.session_id, "s-42");
                CU_ASSERT_EQUAL(ev.ts_ms, TS_536366 + 1000);
                CU_ASSERT_EQUAL(ev.action, (loy_browse_action_t)a);
                CU_ASSERT_STRING_EQUAL(ev.sku, in.sku);
                CU_ASSERT_STRING_EQUAL(ev.category, in.category);
                CU_ASSERT_STRING_EQUAL(ev.query, in.query);
                CU_ASSERT_EQUAL(ev.nlines, 0);
        }
}

/* Ids of exactly 64 bytes are fine; 65 are rejected, never truncated. */
static void test_id_limits(void) {
        char cid[66];
        bb_t bb;

        memset(cid, 'x', 64);
        cid[64] = '\0';
        put_purchase1(&bb, cid, 2.55);
        CU_ASSERT_EQUAL(decode(bb.b, bb.n, LOY_EV_PURCHASE), 0);
        CU_ASSERT_EQUAL(strlen(ev.customer_id), 64);

        strcpy(cid + 64, "y");
        put_purchase1(&bb, cid, 2.55);
        ASSERT_REJECT(decode(bb.b, bb.n, LOY_EV_PURCHASE),
                      "customer_id longer than 64 bytes");
}

/* ------------------------------------------------------------------------
 * JSON input
 * ------------------------------------------------------------------------ */

static void test_json_purchase(void) {
        const char *j =
            "  \n{\"event_id\": \"536365\", \"customer_id\": \"17850\",\n"
            " \"ts\": 1291191960000, \"order_id\": \"536365\",\n"
            " \"lines\": [{\"sku\": \"85123A\", \"quantity\": 6,"
            " \"unit_price\": 2.55},\n"
            "  {\"sku\": \"22752\", \"category\": \"home\","
            " \"quantity\": -2, \"unit_price\": 7}]}\n";

        CU_ASSERT_EQUAL_FATAL(decode_str(j, LOY_EV_PURCHASE), 0);
        CU_ASSERT_EQUAL(ev.kind, LOY_EV_PURCHASE);
        CU_ASSERT_STRING_EQUAL(ev.event_id, "536365");
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "17850");
        CU_ASSERT_EQUAL(ev.ts_ms, TS_536365);
        CU_ASSERT_STRING_EQUAL(ev.order_id, "536365");
        /* schema defaults */
        CU_ASSERT_STRING_EQUAL(ev.currency, "GBP");
        CU_ASSERT_STRING_EQUAL(ev.channel, "web");
        CU_ASSERT_EQUAL_FATAL(ev.nlines, 2);
        CU_ASSERT_STRING_EQUAL(ev.lines[0].sku, "85123A");
        CU_ASSERT_STRING_EQUAL(ev.lines[0].category, "");
        CU_ASSERT_EQUAL(ev.lines[0].quantity, 6);
        CU_ASSERT(ev.lines[0].unit_price == 2.55);
        CU_ASSERT_STRING_EQUAL(ev.lines[1].sku, "22752");
        CU_ASSERT_STRING_EQUAL(ev.lines[1].category, "home");
        CU_ASSERT_EQUAL(ev.lines[1].quantity, -2);
        /* an integer price is a number too */
        CU_ASSERT(ev.lines[1].unit_price == 7.0);

        /* type names the kind on a mixed topic; currency, channel given */
        CU_ASSERT_EQUAL(decode_str("{\"type\": \"purchase\", \"event_id\":"
                                   " \"e2\", \"customer_id\": \"c1\", \"ts\":"
                                   " 1291191960000, \"order_id\": \"o1\","
                                   " \"currency\": \"EUR\", \"channel\":"
                                   " \"app\", \"lines\": [{\"sku\": \"s\","
                                   " \"quantity\": 1, \"unit_price\": 0}]}",
                                   0),
                        0);
        CU_ASSERT_EQUAL(ev.kind, LOY_EV_PURCHASE);
        CU_ASSERT_STRING_EQUAL(ev.currency, "EUR");
        CU_ASSERT_STRING_EQUAL(ev.channel, "app");
        CU_ASSERT_EQUAL(ev.nlines, 1);
}

static void test_json_browse(void) {
        const char *j = "{\"type\": \"browse\", \"event_id\": \"b1\","
                        " \"customer_id\": \"13047\", \"session_id\": \"s9\","
                        " \"ts\": 1291192081000, \"action\": \"add-to-cart\","
                        " \"sku\": \"22633\", \"category\": null}";

        CU_ASSERT_EQUAL_FATAL(decode_str(j, 0), 0);
        CU_ASSERT_EQUAL(ev.kind, LOY_EV_BROWSE);
        CU_ASSERT_STRING_EQUAL(ev.event_id, "b1");
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "13047");
        CU_ASSERT_STRING_EQUAL(ev.session_id, "s9");
        CU_ASSERT_EQUAL(ev.ts_ms, 1291192081000LL);
        CU_ASSERT_EQUAL(ev.action, LOY_ACT_ADD_TO_CART);
        CU_ASSERT_STRING_EQUAL(ev.sku, "22633");
        CU_ASSERT_STRING_EQUAL(ev.category, "");
        CU_ASSERT_STRING_EQUAL(ev.query, "");

        CU_ASSERT_EQUAL(decode_str("{\"event_id\": \"b2\", \"customer_id\":"
                                   " \"13047\", \"ts\": 1291192081000,"
                                   " \"action\": \"search\", \"query\":"
                                   " \"lantern\"}",
                                   LOY_EV_BROWSE),
                        0);
        CU_ASSERT_EQUAL(ev.action, LOY_ACT_SEARCH);
        CU_ASSERT_STRING_EQUAL(ev.query, "lantern");
        CU_ASSERT_STRING_EQUAL(ev.session_id, "");
        CU_ASSERT_STRING_EQUAL(ev.sku, "");
}

/* ------------------------------------------------------------------------
 * Triggers
 * ------------------------------------------------------------------------ */

static void fill_trigger(loy_trigger_t *t, loy_trigger_rec_t *recs) {
        memset(t, 0, sizeof(*t));
        strcpy(recs[0].item, "22633");
        recs[0].score = 0.75;
        strcpy(recs[1].item, "84029E");
        recs[1].score = 0.5;
        t->trigger_id = "r-winback-17850-536365";
        t->customer_id = "17850";
        t->rule = "winback";
        t->reward_kind = "coupon";
        t->reward_value = 15;
        t->reward_currency = "";
        t->reward_expiry_ms = TS_536365 + 14 * 86400000LL;
        t->holdout = 1;
        t->p_alive = 0.25;
        t->churn_prob = 0.625;
        t->exp_purchases = 1.5;
        t->clv = 412.5;
        t->monetary = 139.12;
        t->frequency = 34;
        t->r_score = 2;
        t->f_score = 5;
        t->m_score = 4;
        t->loyalty_score = 71.5;
        t->segment = "at_risk";
        t->recs = recs;
        t->nrecs = 2;
        t->cause_kind = "event";
        t->cause_topic = "purchases";
        t->cause_partition = 3;
        t->cause_offset = 12345678901LL;
        t->cause_event_id = "536365";
        t->event_time_ms = TS_536365;
        t->emit_time_ms = NOW_MS;
        t->model_version = "bgnbd-2011-12-09.1";
}

static json_t *trigger_json(const loy_trigger_t *t) {
        const uint8_t *out;
        size_t len;
        char *text;
        json_t *j;
        json_error_t jerr;

        out = loy_codec_encode_trigger(codec, t, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_EQUAL(out[0], 0);
        CU_ASSERT_EQUAL(out[4], 3);
        text = loy_codec_trigger_to_json(codec, out, len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_PTR_NULL(strchr(text, '\n')); /* one line */
        j = json_loads(text, 0, &jerr);
        free(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        return j;
}

#define JSTR(j, path) json_string_value(json_object_get((j), (path)))
#define JINT(j, path) json_integer_value(json_object_get((j), (path)))
#define JDBL(j, path) json_number_value(json_object_get((j), (path)))

static void test_trigger_event(void) {
        loy_trigger_t t;
        loy_trigger_rec_t recs[2];
        json_t *j, *o, *a;

        fill_trigger(&t, recs);
        j = trigger_json(&t);
        CU_ASSERT_STRING_EQUAL(JSTR(j, "trigger_id"), "r-winback-17850-536365");
        CU_ASSERT_STRING_EQUAL(JSTR(j, "customer_id"), "17850");
        CU_ASSERT_STRING_EQUAL(JSTR(j, "rule"), "winback");
        CU_ASSERT(json_is_true(json_object_get(j, "holdout")));
        CU_ASSERT_EQUAL(JINT(j, "event_time"), TS_536365);
        CU_ASSERT_EQUAL(JINT(j, "emit_time"), NOW_MS);
        CU_ASSERT_STRING_EQUAL(JSTR(j, "model_version"), "bgnbd-2011-12-09.1");

        o = json_object_get(j, "reward");
        CU_ASSERT_STRING_EQUAL(JSTR(o, "kind"), "coupon");
        CU_ASSERT(JDBL(o, "value") == 15.0);
        CU_ASSERT_STRING_EQUAL(JSTR(o, "currency"), "");
        CU_ASSERT_EQUAL(JINT(o, "expiry_ts"), 1292401560000LL);

        o = json_object_get(j, "scores");
        CU_ASSERT(JDBL(o, "p_alive") == 0.25);
        CU_ASSERT(JDBL(o, "churn_prob") == 0.625);
        CU_ASSERT(JDBL(o, "expected_purchases") == 1.5);
        CU_ASSERT(JDBL(o, "clv") == 412.5);
        CU_ASSERT(JDBL(o, "monetary") == 139.12);
        CU_ASSERT_EQUAL(JINT(o, "frequency"), 34);
        CU_ASSERT_EQUAL(JINT(o, "r_score"), 2);
        CU_ASSERT_EQUAL(JINT(o, "f_score"), 5);
        CU_ASSERT_EQUAL(JINT(o, "m_score"), 4);
        CU_ASSERT(JDBL(o, "loyalty_score") == 71.5);
        CU_ASSERT_STRING_EQUAL(JSTR(o, "segment"), "at_risk");

        a = json_object_get(j, "recommendations");
        CU_ASSERT_EQUAL_FATAL(json_array_size(a), 2);
        CU_ASSERT_STRING_EQUAL(JSTR(json_array_get(a, 0), "item"), "22633");
        CU_ASSERT(JDBL(json_array_get(a, 0), "score") == 0.75);
        CU_ASSERT_STRING_EQUAL(JSTR(json_array_get(a, 1), "item"), "84029E");
        CU_ASSERT(JDBL(json_array_get(a, 1), "score") == 0.5);

        /* Avro's JSON form of a union names the branch */
        o = json_object_get(j, "cause");
        CU_ASSERT_STRING_EQUAL(JSTR(o, "kind"), "event");
        CU_ASSERT_STRING_EQUAL(JSTR(json_object_get(o, "topic"), "string"),
                               "purchases");
        CU_ASSERT_EQUAL(JINT(o, "partition"), 3);
        CU_ASSERT_EQUAL(JINT(o, "offset"), 12345678901LL);
        CU_ASSERT_STRING_EQUAL(JSTR(json_object_get(o, "event_id"), "string"),
                               "536365");
        json_decref(j);
}

static void test_trigger_timer(void) {
        loy_trigger_t t;
        loy_trigger_rec_t recs[2];
        json_t *j, *o;

        fill_trigger(&t, recs);
        t.cause_kind = "timer";
        t.cause_topic = NULL;
        t.cause_event_id = NULL;
        t.cause_offset = -1;
        t.holdout = 0;
        t.nrecs = 0;
        t.recs = NULL;
        j = trigger_json(&t);
        CU_ASSERT(json_is_false(json_object_get(j, "holdout")));
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "recommendations")),
                        0);
        o = json_object_get(j, "cause");
        CU_ASSERT_STRING_EQUAL(JSTR(o, "kind"), "timer");
        CU_ASSERT(json_is_null(json_object_get(o, "topic")));
        CU_ASSERT(json_is_null(json_object_get(o, "event_id")));
        CU_ASSERT_EQUAL(JINT(o, "offset"), -1);
        json_decref(j);

        t.cause_kind = "cron";
        CU_ASSERT_PTR_NULL(loy_codec_encode_trigger(codec, &t, &(size_t){0},
                                                    err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err, "trigger cause_kind must be \"event\" "
                                    "or \"timer\"");
}

static void test_trigger_to_json_rejects(void) {
        loy_event_t in = {0};
        const void *out;
        size_t len;

        fill_browse(&in, LOY_ACT_VIEW);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_PTR_NULL(
            loy_codec_trigger_to_json(codec, out, len, err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err,
                               "schema id 2 is not the trigger schema (3)");
        CU_ASSERT_PTR_NULL(
            loy_codec_trigger_to_json(codec, "{}", 2, err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err, "not Avro (magic byte 0)");
}

/* ------------------------------------------------------------------------
 * Malformed input: each with its exact dead-letter reason
 * ------------------------------------------------------------------------ */

static void test_bad_framing(void) {
        static const uint8_t hdr3[] = {0, 0, 0};
        static const uint8_t id7[] = {0, 0, 0, 0, 7, 0x02, 'x'};
        static const uint8_t big[] = {0, 1, 0, 0, 0};
        static const uint8_t magic1[] = {1, 0, 0, 0, 1, 0};
        loy_event_t in = {0};
        const void *out;
        size_t len;

        ASSERT_REJECT(decode("", 0, 0), "empty message");
        ASSERT_REJECT(decode(NULL, 0, LOY_EV_PURCHASE), "empty message");
        ASSERT_REJECT(decode_str("hello", 0),
                      "not Avro (magic byte 0) nor JSON");
        ASSERT_REJECT(decode_str("  \n ", 0),
                      "not Avro (magic byte 0) nor JSON");
        ASSERT_REJECT(decode_str("[1, 2]", 0),
                      "not Avro (magic byte 0) nor JSON");
        ASSERT_REJECT(decode(magic1, sizeof(magic1), 0),
                      "not Avro (magic byte 0) nor JSON");
        ASSERT_REJECT(decode(hdr3, sizeof(hdr3), 0),
                      "truncated Confluent header");
        ASSERT_REJECT(decode(hdr3, 1, 0), "truncated Confluent header");
        ASSERT_REJECT(decode(id7, sizeof(id7), 0), "unknown schema id 7");
        ASSERT_REJECT(decode(big, sizeof(big), 0),
                      "unknown schema id 16777216");

        fill_browse(&in, LOY_ACT_VIEW);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        ASSERT_REJECT(decode(out, len, LOY_EV_PURCHASE),
                      "schema id 2 is browse, topic carries purchase");
        fill_536365(&in);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        ASSERT_REJECT(decode(out, len, LOY_EV_BROWSE),
                      "schema id 1 is purchase, topic carries browse");
        loy_event_free(&in);
}

static void test_bad_avro_datum(void) {
        uint8_t msg[4096 + 8];
        bb_t bb;
        size_t n;

        put_purchase1(&bb, "17850", 2.55);
        CU_ASSERT_EQUAL_FATAL(decode(bb.b, bb.n, LOY_EV_PURCHASE), 0);
        memcpy(msg, bb.b, bb.n);
        n = bb.n;

        /* the last byte is the final 'b' of channel "web" */
        ASSERT_REJECT(decode(msg, n - 1, LOY_EV_PURCHASE),
                      "avro: datum truncated in field 'channel'");
        /* cut inside the double */
        ASSERT_REJECT(decode(msg, n - 12, LOY_EV_PURCHASE),
                      "avro: datum truncated in field 'unit_price'");
        /* every strict prefix fails, none crashes */
        for (size_t k = 0; k < n; k++)
                CU_ASSERT_EQUAL(decode(msg, k, LOY_EV_PURCHASE), -1);

        msg[n] = 'Z';
        ASSERT_REJECT(decode(msg, n + 1, LOY_EV_PURCHASE),
                      "1 trailing byte after the Avro datum");
        msg[n + 1] = msg[n + 2] = 0;
        ASSERT_REJECT(decode(msg, n + 3, LOY_EV_PURCHASE),
                      "3 trailing bytes after the Avro datum");

        /* a string length of 2^62: rejected before anything allocates it */
        put_header(&bb, 1);
        put_long(&bb, INT64_C(1) << 62);
        put_str(&bb, "rest");
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: datum truncated in field 'event_id'");
        put_header(&bb, 1);
        put_long(&bb, -3);
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: negative length in field 'event_id'");

        /* a block count of INT64_MIN (negation would overflow) */
        put_header(&bb, 1);
        put_str(&bb, "e");
        put_str(&bb, "c");
        put_long(&bb, TS_536365);
        put_str(&bb, "o");
        put_long(&bb, INT64_MIN);
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: bad block count in field 'lines'");
        /* a million lines announced, 3 bytes left */
        put_header(&bb, 1);
        put_str(&bb, "e");
        put_str(&bb, "c");
        put_long(&bb, TS_536365);
        put_str(&bb, "o");
        put_long(&bb, 1000000);
        put_raw(&bb, "abc", 3);
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: block count exceeds the datum in field 'lines'");
        /* an eleven-byte varint */
        put_header(&bb, 1);
        put_str(&bb, "e");
        put_str(&bb, "c");
        put_raw(&bb, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: varint too long in field 'ts'");
        /* quantity 2^31 does not fit an int */
        put_header(&bb, 1);
        put_str(&bb, "e");
        put_str(&bb, "c");
        put_long(&bb, TS_536365);
        put_str(&bb, "o");
        put_long(&bb, 1);
        put_str(&bb, "sku");
        put_str(&bb, "");
        put_long(&bb, INT64_C(1) << 31);
        ASSERT_REJECT(decode(bb.b, bb.n, 0),
                      "avro: int out of range in field 'quantity'");
}

/* JSON prefixes */
#define J_E "{\"event_id\": \"e1\", "
#define J_EC J_E "\"customer_id\": \"c\","

static void test_bad_json(void) {
        ASSERT_REJECT(decode_str("{\"event_id\": \"e1\",", LOY_EV_PURCHASE),
                      "json: string or '}' expected near end of file "
                      "at line 1 column 18");
        ASSERT_REJECT(decode_str("{\"ts\": 1,\n \"ts\": 2}", LOY_EV_PURCHASE),
                      "json: duplicate object key near '\"ts\"' "
                      "at line 2 column 5");
        ASSERT_REJECT(decode_str("{\"a\": 1} x", LOY_EV_PURCHASE),
                      "json: end of file expected near 'x' "
                      "at line 1 column 10");
        ASSERT_REJECT(decode_str("{\"event_id\": \"e1\", \"ts\": 1291191960000,"
                                 " \"order_id\": \"o\", \"lines\": []}",
                                 LOY_EV_PURCHASE),
                      "missing field 'customer_id'");
        ASSERT_REJECT(decode_str(J_E "\"customer_id\": 17850,"
                                     " \"ts\": 1291191960000}",
                                 LOY_EV_PURCHASE),
                      "field 'customer_id' must be a string");
        ASSERT_REJECT(decode_str(J_EC " \"ts\": \"2010-12-01 08:26:00\"}",
                                 LOY_EV_PURCHASE),
                      "field 'ts' must be an integer");
        ASSERT_REJECT(
            decode_str(J_EC " \"ts\": 1291191960000.5}", LOY_EV_BROWSE),
            "field 'ts' must be an integer");
        ASSERT_REJECT(decode_str(J_EC
                                 " \"ts\": 1291191960000, \"order_id\": \"o\","
                                 " \"lines\": [{\"sku\": \"s\", \"quantity\":"
                                 " \"6\", \"unit_price\": 1}]}",
                                 LOY_EV_PURCHASE),
                      "field 'lines[0].quantity' must be an integer");
        ASSERT_REJECT(decode_str(J_EC
                                 " \"ts\": 1291191960000, \"order_id\": \"o\","
                                 " \"lines\": [{\"sku\": \"s\", \"quantity\":"
                                 " 1, \"unit_price\": 1}, {\"sku\": \"t\","
                                 " \"quantity\": 1}]}",
                                 LOY_EV_PURCHASE),
                      "missing field 'lines[1].unit_price'");
        ASSERT_REJECT(decode_str(J_EC
                                 " \"ts\": 1291191960000, \"order_id\": \"o\","
                                 " \"lines\": {}}",
                                 LOY_EV_PURCHASE),
                      "field 'lines' must be an array");
        ASSERT_REJECT(decode_str("{\"event_id\": \"e1\"}", 0),
                      "missing field 'type'");
        ASSERT_REJECT(decode_str("{\"type\": \"refund\"}", 0),
                      "field 'type' must be \"purchase\" or \"browse\"");
        ASSERT_REJECT(decode_str("{\"type\": \"browse\"}", LOY_EV_PURCHASE),
                      "type is browse, topic carries purchase");
}

static void test_bad_values(void) {
        char j[512];
        char cid[70];
        loy_event_t in = {0};
        const void *out;
        size_t len;
        bb_t bb;

        /* 65-byte customer id, JSON (Avro is in test_id_limits) */
        memset(cid, '7', 65);
        cid[65] = '\0';
        snprintf(j, sizeof(j),
                 "{\"event_id\": \"e1\", \"customer_id\":"
                 " \"%s\", \"ts\": 1291191960000, \"action\": \"view\","
                 " \"sku\": \"s\"}",
                 cid);
        ASSERT_REJECT(decode_str(j, LOY_EV_BROWSE),
                      "customer_id longer than 64 bytes");
        cid[64] = '\0';
        snprintf(j, sizeof(j),
                 "{\"event_id\": \"e1\", \"customer_id\":"
                 " \"%s\", \"ts\": 1291191960000, \"action\": \"view\","
                 " \"sku\": \"s\"}",
                 cid);
        CU_ASSERT_EQUAL(decode_str(j, LOY_EV_BROWSE), 0);

        /* a purchase with zero lines, Avro and JSON */
        fill_536365(&in);
        in.nlines = 0;
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        ASSERT_INVALID(decode(out, len, LOY_EV_PURCHASE),
                       "purchase has no lines");
        ASSERT_INVALID(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                  " \"c\", \"ts\": 1291191960000,"
                                  " \"order_id\": \"o\", \"lines\": []}",
                                  LOY_EV_PURCHASE),
                       "purchase has no lines");

        /* unit prices that are not amounts */
        put_purchase1(&bb, "17850", NAN);
        ASSERT_INVALID(decode(bb.b, bb.n, 0), "line 0 unit_price nan is not "
                                              "a finite amount in [0, 1e9]");
        put_purchase1(&bb, "17850", INFINITY);
        ASSERT_INVALID(decode(bb.b, bb.n, 0), "line 0 unit_price inf is not "
                                              "a finite amount in [0, 1e9]");
        put_purchase1(&bb, "17850", -1.5);
        ASSERT_INVALID(decode(bb.b, bb.n, 0), "line 0 unit_price -1.5 is not "
                                              "a finite amount in [0, 1e9]");
        ASSERT_INVALID(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                  " \"c\", \"ts\": 1291191960000,"
                                  " \"order_id\": \"o\", \"lines\": [{\"sku\":"
                                  " \"s\", \"quantity\": 1, \"unit_price\":"
                                  " -0.01}]}",
                                  LOY_EV_PURCHASE),
                       "line 0 unit_price -0.01 is not a finite amount in "
                       "[0, 1e9]");

        /* a sku with a control character would cut the customer's
         * recommendation history (tab-separated lines) on its next load;
         * a blank is fine */
        ASSERT_INVALID(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                  " \"c\", \"ts\": 1291191960000,"
                                  " \"order_id\": \"o\", \"lines\": [{\"sku\":"
                                  " \"A\\tB\", \"quantity\": 1, \"unit_price\":"
                                  " 1}]}",
                                  LOY_EV_PURCHASE),
                       "line 0 sku has a control character (0x09)");
        ASSERT_INVALID(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                  " \"c\", \"ts\": 1291191960000, \"action\":"
                                  " \"view\", \"sku\": \"s\\n1\"}",
                                  LOY_EV_BROWSE),
                       "sku has a control character (0x0a)");
        CU_ASSERT_EQUAL(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                   " \"c\", \"ts\": 1291191960000,"
                                   " \"order_id\": \"o\", \"lines\": [{\"sku\":"
                                   " \"BANK CHARGES\", \"quantity\": 1,"
                                   " \"unit_price\": 1}]}",
                                   LOY_EV_PURCHASE),
                        0);

        /* timestamp in seconds instead of milliseconds */
        fill_536365(&in);
        in.ts_ms = 1291191960;
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        ASSERT_INVALID(decode(out, len, LOY_EV_PURCHASE),
                       "timestamp 1291191960 ms is before 1990 (seconds "
                       "instead of milliseconds?)");
        ASSERT_INVALID(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                  " \"c\", \"ts\": 1291191960, \"action\":"
                                  " \"view\", \"sku\": \"s\"}",
                                  LOY_EV_BROWSE),
                       "timestamp 1291191960 ms is before 1990 (seconds "
                       "instead of milliseconds?)");

        /* unknown browse action: a JSON name, an Avro enum index */
        ASSERT_REJECT(decode_str("{\"event_id\": \"e1\", \"customer_id\":"
                                 " \"c\", \"ts\": 1291191960000, \"action\":"
                                 " \"purchase\", \"sku\": \"s\"}",
                                 LOY_EV_BROWSE),
                      "unknown browse action 'purchase'");
        put_header(&bb, 2);
        put_str(&bb, "e1");
        put_str(&bb, "c");
        put_str(&bb, "");
        put_long(&bb, TS_536365);
        put_long(&bb, 5); /* symbols are 0..4 */
        put_str(&bb, "s");
        put_str(&bb, "");
        put_str(&bb, "");
        ASSERT_REJECT(decode(bb.b, bb.n, LOY_EV_BROWSE),
                      "avro: enum index out of range in field 'action'");
        bb.b[bb.n - 5] = 2 * 4; /* wishlist: the same bytes decode */
        CU_ASSERT_EQUAL(decode(bb.b, bb.n, LOY_EV_BROWSE), 0);
        CU_ASSERT_EQUAL(ev.action, LOY_ACT_WISHLIST);
        loy_event_free(&in);
}

/* Regression (fuzz_decode): Avro strings were copied as bytes, so a
 * customer id that is not UTF-8 was accepted and its triggers could not be
 * read back as JSON ("avro: Cannot allocate JSON string"). */
static void test_utf8(void) {
        static const char *const bad[] = {
            "13\xdc\x34\x37",   /* lead byte 0xdc, then "47" */
            "a\xc3",            /* truncated sequence */
            "\xc0\xaf",         /* overlong '/' */
            "\xe0\x80\xaf",     /* overlong, 3 bytes */
            "\xed\xa0\x80",     /* surrogate U+D800 */
            "\xf4\x90\x80\x80", /* above U+10FFFF */
            "\xff",
        };
        static const char *const good[] = {
            "Zo\xc3\xab",               /* U+00EB */
            "\xe9\xa1\xa7\xe5\xae\xa2", /* two CJK characters */
            "\xf0\x9f\x8e\x81",         /* U+1F381, 4 bytes */
            "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
        };
        loy_trigger_t t = {0};
        const void *out;
        char *json;
        size_t len;
        bb_t bb;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                put_purchase1(&bb, bad[i], 2.55);
                ASSERT_REJECT(decode(bb.b, bb.n, LOY_EV_PURCHASE),
                              "customer_id is not valid UTF-8");
        }
        /* the line's sku too, not only the ids */
        put_purchase1(&bb, "17850", 2.55);
        for (size_t i = 0; i + 6 <= bb.n; i++)
                if (!memcmp(bb.b + i, "85123A", 6))
                        bb.b[i + 2] = 0xdc;
        ASSERT_REJECT(decode(bb.b, bb.n, LOY_EV_PURCHASE),
                      "lines[0].sku is not valid UTF-8");
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                put_purchase1(&bb, good[i], 2.55);
                CU_ASSERT_EQUAL_FATAL(decode(bb.b, bb.n, LOY_EV_PURCHASE), 0);
                CU_ASSERT_STRING_EQUAL(ev.customer_id, good[i]);
                /* and its trigger reads back */
                t.trigger_id = "t1";
                t.customer_id = ev.customer_id;
                t.rule = "r";
                t.reward_kind = "coupon";
                t.reward_currency = "";
                t.segment = "new";
                t.cause_kind = "event";
                t.cause_topic = "purchases";
                t.cause_event_id = ev.event_id;
                t.model_version = "m";
                out =
                    loy_codec_encode_trigger(codec, &t, &len, err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL_FATAL(out);
                json = loy_codec_trigger_to_json(codec, out, len, err,
                                                 sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(json);
                free(json);
        }
}

/* ------------------------------------------------------------------------
 * Random damage never crashes (the sanitizer build makes this meaningful)
 * ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void) {
        /* xorshift64*: deterministic, so a failure reproduces */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void mutate_loop(const uint8_t *orig, size_t n, int is_trigger, int *ok,
                        int *bad) {
        uint8_t buf[8192];

        CU_ASSERT_FATAL(n + 8 <= sizeof(buf));
        for (int iter = 0; iter < 4000; iter++) {
                size_t len = n;
                int flips = 1 + (int)(rng() % 4);
                memcpy(buf, orig, n);
                for (int f = 0; f < flips; f++) {
                        size_t at = rng() % n;
                        if (rng() % 2)
                                buf[at] ^= (uint8_t)(1u << (rng() % 8));
                        else
                                buf[at] = (uint8_t)rng();
                }
                if (iter % 5 == 0)
                        len = rng() % (n + 8); /* cut or extend */
                if (is_trigger) {
                        char *s = loy_codec_trigger_to_json(codec, buf, len,
                                                            err, sizeof(err));
                        if (s)
                                (*ok)++;
                        else
                                (*bad)++;
                        free(s);
                } else {
                        int rc = decode(buf, len, 0);
                        CU_ASSERT(rc == 0 || rc == LOY_CODEC_ERR_DECODE ||
                                  rc == LOY_CODEC_ERR_INVALID);
                        if (rc < 0)
                                CU_ASSERT(err[0] != '\0');
                        if (rc == 0)
                                (*ok)++;
                        else
                                (*bad)++;
                }
        }
}

static void test_fuzz_flips(void) {
        loy_event_t in = {0};
        loy_trigger_t t;
        loy_trigger_rec_t recs[2];
        uint8_t orig[4096];
        const void *out;
        size_t len;
        int ok = 0, bad = 0;
        const char *j = "{\"type\": \"purchase\", \"event_id\": \"536365\","
                        " \"customer_id\": \"17850\", \"ts\": 1291191960000,"
                        " \"order_id\": \"536365\", \"lines\": [{\"sku\":"
                        " \"85123A\", \"quantity\": 6, \"unit_price\":"
                        " 2.55}]}";

        fill_536365(&in);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        memcpy(orig, out, len);
        mutate_loop(orig, len, 0, &ok, &bad);

        fill_browse(&in, LOY_ACT_SEARCH);
        out = loy_codec_encode_event(codec, &in, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        memcpy(orig, out, len);
        mutate_loop(orig, len, 0, &ok, &bad);

        mutate_loop((const uint8_t *)j, strlen(j), 0, &ok, &bad);

        fill_trigger(&t, recs);
        out = loy_codec_encode_trigger(codec, &t, &len, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        memcpy(orig, out, len);
        mutate_loop(orig, len, 1, &ok, &bad);

        /* both outcomes happen: the damage is neither all fatal nor all
         * harmless */
        CU_ASSERT(ok > 100);
        CU_ASSERT(bad > 1000);
        CU_ASSERT_EQUAL(ok + bad, 16000);
        loy_event_free(&in);
}

/* The value loyaltyctl forget sends, and what loyaltyd refuses. */
static void test_forget_requests(void) {
        loy_event_t ev;
        char buf[256];
        int n;
        memset(&ev, 0, sizeof(ev));
        ev.kind = LOY_EV_FORGET;
        snprintf(ev.customer_id, sizeof(ev.customer_id), "17850");
        ev.forget_ms = NOW_MS;
        n = loy_codec_encode_forget(&ev, buf, sizeof(buf), err, sizeof(err));
        CU_ASSERT_FATAL(n > 0);
        CU_ASSERT_STRING_EQUAL(buf, "{\"customer_id\":\"17850\","
                                    "\"forget_ms\":1700000000000}");
        memset(&ev, 0, sizeof(ev));
        CU_ASSERT_EQUAL(loy_codec_decode_forget(buf, (size_t)n, NOW_MS, &ev,
                                                err, sizeof(err)),
                        0);
        CU_ASSERT_EQUAL(ev.kind, LOY_EV_FORGET);
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "17850");
        CU_ASSERT_EQUAL(ev.forget_ms, NOW_MS);
        CU_ASSERT_EQUAL(ev.ts_ms, 0);
        CU_ASSERT_FALSE(ev.forget_by_key);
        CU_ASSERT_FALSE(ev.forget_if_silent);
        CU_ASSERT_EQUAL(loy_codec_encode_forget(&ev, buf, 8, err, sizeof(err)),
                        -1);
        /* as loyaltyctl expire sends it */
        ev.forget_by_key = 1;
        ev.forget_if_silent = 1;
        n = loy_codec_encode_forget(&ev, buf, sizeof(buf), err, sizeof(err));
        CU_ASSERT_FATAL(n > 0);
        CU_ASSERT_STRING_EQUAL(buf, "{\"customer_key\":\"17850\","
                                    "\"forget_ms\":1700000000000,"
                                    "\"if_silent\":true}");
        memset(&ev, 0, sizeof(ev));
        CU_ASSERT_EQUAL(loy_codec_decode_forget(buf, (size_t)n, NOW_MS, &ev,
                                                err, sizeof(err)),
                        0);
        CU_ASSERT_TRUE(ev.forget_by_key);
        CU_ASSERT_TRUE(ev.forget_if_silent);
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "17850");
        snprintf(ev.customer_id, sizeof(ev.customer_id), "a b");
        CU_ASSERT_EQUAL(
            loy_codec_encode_forget(&ev, buf, sizeof(buf), err, sizeof(err)),
            -1);
        CU_ASSERT_STRING_EQUAL(err, "customer_id has a blank or control "
                                    "character");
#define FORGET(s)                                                              \
        loy_codec_decode_forget(s, strlen(s), NOW_MS, &ev, err, sizeof(err))
        ASSERT_REJECT(FORGET("{\"customer_id\": \"1\"}"),
                      "missing field 'forget_ms'");
        ASSERT_REJECT(FORGET("[1]"), "forget: json: not an object");
        ASSERT_REJECT(FORGET("{\"customer_id\": \"1\", \"customer_key\": "
                             "\"1\", \"forget_ms\": 1291190400000}"),
                      "forget: give customer_id or customer_key, not both");
        ASSERT_REJECT(FORGET("{\"customer_key\": \"1\", \"if_silent\": 1, "
                             "\"forget_ms\": 1291190400000}"),
                      "field 'if_silent' must be true or false");
        ASSERT_REJECT(FORGET("{\"forget_ms\": 1}"),
                      "missing field 'customer_id'");
        ASSERT_INVALID(FORGET("{\"customer_id\": \"1\", \"forget_ms\": "
                              "1291190400}"),
                       "forget_ms 1291190400 ms is before 1990 (seconds "
                       "instead of milliseconds?)");
        ASSERT_INVALID(FORGET("{\"customer_id\": \"a\\tb\", "
                              "\"forget_ms\": 1291190400000}"),
                       "customer_id has a blank or control character");
        CU_ASSERT_EQUAL(
            loy_codec_decode_forget("", 0, NOW_MS, &ev, err, sizeof(err)),
            LOY_CODEC_ERR_DECODE);
#undef FORGET
        loy_event_free(&ev);
}

int main(void) {
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("codec", suite_init, suite_clean);
        if (!s)
                return 1;
        CU_add_test(s, "create with custom and duplicate ids", test_create_ids);
        CU_add_test(s, "purchase wire bytes", test_purchase_wire_bytes);
        CU_add_test(s, "purchase round trip", test_purchase_roundtrip);
        CU_add_test(s, "browse round trip, every action",
                    test_browse_roundtrip);
        CU_add_test(s, "id length limits", test_id_limits);
        CU_add_test(s, "JSON purchase", test_json_purchase);
        CU_add_test(s, "JSON browse", test_json_browse);
        CU_add_test(s, "trigger from an event to JSON", test_trigger_event);
        CU_add_test(s, "trigger from a timer to JSON", test_trigger_timer);
        CU_add_test(s, "trigger_to_json rejects", test_trigger_to_json_rejects);
        CU_add_test(s, "bad framing", test_bad_framing);
        CU_add_test(s, "bad Avro datum", test_bad_avro_datum);
        CU_add_test(s, "bad JSON", test_bad_json);
        CU_add_test(s, "bad values", test_bad_values);
        CU_add_test(s, "forget requests", test_forget_requests);
        CU_add_test(s, "strings are UTF-8", test_utf8);
        CU_add_test(s, "random damage never crashes", test_fuzz_flips);
        return tu_cunit_run();
}
