/*
 * fuzz_decode: libFuzzer target of the event decoders (loy_codec_decode:
 * Avro with Confluent framing, and JSON), of the encoders and of the
 * trigger path.
 *
 * Every input is decoded as "either kind", as purchase and as browse.
 * When it decodes, the event is encoded again (loy_codec_encode_event),
 * decoded again and compared field by field: the round trip must give the
 * same event, and encoding that one must give the same bytes. A trigger
 * built from the event is encoded and read back as JSON. The input is also
 * read as a framed trigger (loy_codec_trigger_to_json), and as a forget
 * request (loy_codec_decode_forget), which must encode and decode back to
 * the same request. The codec reuses
 * its Avro values: after decoding a large purchase and a browse event in
 * between, the input must decode to the same event again (nothing left
 * over from the previous message). Any mismatch aborts, so libFuzzer keeps
 * the input.
 *
 * Build: scripts/fuzz.sh (cmake -DLOY_FUZZ=ON with clang, build-fuzz/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "loy_codec.h"
#include "loy_event.h"
#include "fuzz.h"

/* Timestamps are validated against a wall clock: a fixed one keeps every
 * run of an input the same (2023-11-14). */
#define NOW_MS 1700000000000LL

static loy_codec_t *codec;
static loy_event_t ev, ev2, ev3;
static unsigned char *enc1;
static size_t enc1_cap;
/* framed messages that fill every field: decoded between two decodes of
 * the input to dirty the codec's reused values */
static unsigned char *dirty[2];
static size_t dirty_len[2];

/* Bit-exact, so -0.0 and 0.0 differ and a NaN equals itself. */
static int same_double(double a, double b) {
        return !memcmp(&a, &b, sizeof(a));
}

#define SAME_STR(f)                                                            \
        CHECK(!strcmp(a->f, b->f), "field " #f ": '%s' became '%s'", a->f, b->f)

static void check_same_event(const loy_event_t *a, const loy_event_t *b) {
        CHECK(a->kind == b->kind, "kind %d became %d", (int)a->kind,
              (int)b->kind);
        SAME_STR(event_id);
        SAME_STR(customer_id);
        CHECK(a->ts_ms == b->ts_ms, "ts %lld became %lld", (long long)a->ts_ms,
              (long long)b->ts_ms);
        SAME_STR(order_id);
        SAME_STR(currency);
        SAME_STR(channel);
        CHECK(a->nlines == b->nlines, "%d lines became %d", a->nlines,
              b->nlines);
        for (int i = 0; i < a->nlines; i++) {
                const loy_line_t *x = &a->lines[i], *y = &b->lines[i];
                CHECK(!strcmp(x->sku, y->sku), "line %d sku", i);
                CHECK(!strcmp(x->category, y->category), "line %d category", i);
                CHECK(x->quantity == y->quantity, "line %d quantity", i);
                CHECK(same_double(x->unit_price, y->unit_price),
                      "line %d unit_price %.17g became %.17g", i, x->unit_price,
                      y->unit_price);
        }
        SAME_STR(session_id);
        CHECK(a->action == b->action, "action %d became %d", (int)a->action,
              (int)b->action);
        SAME_STR(sku);
        SAME_STR(category);
        SAME_STR(query);
}

/* A trigger carrying the event's strings: it must encode, and read back
 * as JSON it must name the same trigger and customer. */
static void check_trigger(const loy_event_t *e) {
        loy_trigger_rec_t recs[LOY_RECS_MAX];
        loy_trigger_t t;
        const void *out;
        char err[512], *json;
        size_t len;
        int nrecs = 0;
        json_t *root;
        json_error_t jerr;

        memset(&t, 0, sizeof(t));
        for (int i = 0; i < e->nlines && nrecs < LOY_RECS_MAX; i++) {
                snprintf(recs[nrecs].item, sizeof(recs[nrecs].item), "%s",
                         e->lines[i].sku);
                recs[nrecs++].score = e->lines[i].unit_price;
        }
        if (e->kind == LOY_EV_BROWSE && e->sku[0]) {
                snprintf(recs[0].item, sizeof(recs[0].item), "%s", e->sku);
                recs[0].score = 1;
                nrecs = 1;
        }
        t.trigger_id = e->event_id;
        t.customer_id = e->customer_id;
        t.rule = e->order_id[0] ? e->order_id : "fuzz";
        t.reward_kind = "coupon";
        t.reward_value = e->nlines ? e->lines[0].unit_price : 10;
        t.reward_currency = e->currency;
        t.reward_expiry_ms = e->ts_ms + 30LL * 86400000;
        t.holdout = e->ts_ms & 1;
        t.p_alive = 0.5;
        t.churn_prob = 0.5;
        t.frequency = e->nlines;
        t.segment = e->category;
        t.recs = recs;
        t.nrecs = nrecs;
        t.cause_kind = (e->ts_ms & 2) ? "timer" : "event";
        t.cause_topic = (e->ts_ms & 2) ? NULL : "purchases";
        t.cause_event_id = (e->ts_ms & 2) ? NULL : e->event_id;
        t.cause_offset = e->ts_ms;
        t.event_time_ms = e->ts_ms;
        t.emit_time_ms = NOW_MS;
        t.model_version = e->session_id;

        out = loy_codec_encode_trigger(codec, &t, &len, err, sizeof(err));
        CHECK(out, "trigger of a valid event does not encode: %s", err);
        json = loy_codec_trigger_to_json(codec, out, len, err, sizeof(err));
        CHECK(json, "encoded trigger does not read back: %s", err);
        root = json_loads(json, 0, &jerr);
        CHECK(root, "trigger JSON does not parse: %s: %s", jerr.text, json);
        CHECK(!strcmp(json_string_value(json_object_get(root, "trigger_id")),
                      e->event_id),
              "trigger_id in %s", json);
        CHECK(!strcmp(json_string_value(json_object_get(root, "customer_id")),
                      e->customer_id),
              "customer_id in %s", json);
        json_decref(root);
        free(json);
}

static void round_trip(const loy_event_t *e) {
        const void *out;
        char err[512];
        size_t len, len2;

        out = loy_codec_encode_event(codec, e, &len, err, sizeof(err));
        CHECK(out, "decoded event does not encode: %s", err);
        if (len > enc1_cap) {
                unsigned char *nb = realloc(enc1, len);
                CHECK(nb, "out of memory");
                enc1 = nb;
                enc1_cap = len;
        }
        memcpy(enc1, out, len);
        CHECK(loy_codec_decode(codec, enc1, len, e->kind, NOW_MS, &ev2, err,
                               sizeof(err)) == 0,
              "re-encoded event does not decode: %s", err);
        check_same_event(e, &ev2);
        out = loy_codec_encode_event(codec, &ev2, &len2, err, sizeof(err));
        CHECK(out, "second encode failed: %s", err);
        CHECK(len2 == len && !memcmp(out, enc1, len),
              "encoding is not a fixed point (%zu vs %zu bytes)", len, len2);
        check_trigger(e);
}

static void cleanup(void) {
        loy_codec_destroy(codec);
        loy_event_free(&ev);
        loy_event_free(&ev2);
        loy_event_free(&ev3);
        free(enc1);
        free(dirty[0]);
        free(dirty[1]);
}

static void keep_encoded(const loy_event_t *e, int slot) {
        char err[512];
        const void *out = loy_codec_encode_event(codec, e, &dirty_len[slot],
                                                 err, sizeof(err));
        CHECK(out, "canned event does not encode: %s", err);
        dirty[slot] = malloc(dirty_len[slot]);
        CHECK(dirty[slot], "out of memory");
        memcpy(dirty[slot], out, dirty_len[slot]);
}

/* A purchase of 4 lines and a search, every string at its longest (more
 * lines would cost more than the rest of an execution: 40 take 200 us) */
static void make_dirty(void) {
        loy_event_t e = {0};
        char err[512];

        loy_event_reset(&e);
        e.kind = LOY_EV_PURCHASE;
        memset(e.event_id, 'e', LOY_ID_MAX);
        memset(e.customer_id, 'c', LOY_ID_MAX);
        memset(e.order_id, 'o', LOY_ID_MAX);
        memcpy(e.currency, "GBPGBPG", 7);
        memset(e.channel, 'w', LOY_ID_MAX);
        e.ts_ms = NOW_MS - 1000;
        for (int i = 0; i < 4; i++) {
                loy_line_t *l = loy_event_add_line(&e);
                CHECK(l, "out of memory");
                memset(l->sku, 'a' + i % 26, LOY_SKU_MAX);
                memset(l->category, 'A' + i % 26, LOY_SKU_MAX);
                l->quantity = i + 1;
                l->unit_price = i + 0.25;
        }
        keep_encoded(&e, 0);
        loy_event_reset(&e);
        e.kind = LOY_EV_BROWSE;
        memset(e.event_id, 'f', LOY_ID_MAX);
        memset(e.customer_id, 'd', LOY_ID_MAX);
        memset(e.session_id, 's', LOY_ID_MAX);
        memset(e.sku, 'k', LOY_SKU_MAX);
        memset(e.category, 'g', LOY_SKU_MAX);
        memset(e.query, 'q', LOY_QUERY_MAX);
        e.ts_ms = NOW_MS - 1000;
        e.action = LOY_ACT_SEARCH;
        keep_encoded(&e, 1);
        for (int k = 0; k < 2; k++)
                CHECK(loy_codec_decode(codec, dirty[k], dirty_len[k], 0, NOW_MS,
                                       &ev3, err, sizeof(err)) == 0,
                      "canned event %d does not decode: %s", k, err);
        loy_event_free(&e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char err[512];
        (void)argc;
        (void)argv;
        codec = loy_codec_create(NULL, err, sizeof(err));
        if (!codec) {
                fprintf(stderr, "fuzz_decode: %s\n", err);
                abort();
        }
        /* the leak check at exit then sees only real leaks */
        atexit(cleanup);
        make_dirty();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const loy_event_kind_t kinds[] = {
            0,
            LOY_EV_PURCHASE,
            LOY_EV_BROWSE,
        };
        char err[512], *json;

        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
                err[0] = '\0';
                if (loy_codec_decode(codec, data, size, kinds[k], NOW_MS, &ev,
                                     err, sizeof(err)) == 0) {
                        CHECK(!kinds[k] || ev.kind == kinds[k],
                              "asked for kind %d, got %d", (int)kinds[k],
                              (int)ev.kind);
                        round_trip(&ev);
                        /* again after another message: same event */
                        (void)loy_codec_decode(
                            codec, dirty[ev.kind == LOY_EV_BROWSE],
                            dirty_len[ev.kind == LOY_EV_BROWSE], 0, NOW_MS,
                            &ev3, err, sizeof(err));
                        CHECK(loy_codec_decode(codec, data, size, kinds[k],
                                               NOW_MS, &ev3, err,
                                               sizeof(err)) == 0,
                              "decodes once, not twice: %s", err);
                        check_same_event(&ev, &ev3);
                } else {
                        char why[512];
                        int rc =
                            loy_codec_decode(codec, data, size, kinds[k],
                                             NOW_MS, &ev3, err, sizeof(err));
                        CHECK(rc == LOY_CODEC_ERR_DECODE ||
                                  rc == LOY_CODEC_ERR_INVALID,
                              "rejected with code %d", rc);
                        CHECK(err[0], "rejected without a reason");
                        if (!kinds[k])
                                continue;
                        /* and again after a message of the kind asked
                         * for, alike */
                        memcpy(why, err, sizeof(why));
                        (void)loy_codec_decode(
                            codec, dirty[kinds[k] == LOY_EV_BROWSE],
                            dirty_len[kinds[k] == LOY_EV_BROWSE], 0, NOW_MS,
                            &ev3, err, sizeof(err));
                        CHECK(loy_codec_decode(codec, data, size, kinds[k],
                                               NOW_MS, &ev3, err,
                                               sizeof(err)) == rc &&
                                  !strcmp(err, why),
                              "rejected once ('%s'), then '%s'", why, err);
                }
        }
        /* the same bytes as a forget request (a loyaltyd-op header) */
        err[0] = '\0';
        {
                int rc = loy_codec_decode_forget(data, size, NOW_MS, &ev, err,
                                                 sizeof(err));
                char val[512];
                int n;
                CHECK(rc == 0 || ((rc == LOY_CODEC_ERR_DECODE ||
                                   rc == LOY_CODEC_ERR_INVALID) &&
                                  err[0]),
                      "forget rejected with code %d, reason '%s'", rc, err);
                if (rc == 0) {
                        n = loy_codec_encode_forget(&ev, val, sizeof(val), err,
                                                    sizeof(err));
                        CHECK(n > 0, "a valid forget does not encode: %s", err);
                        CHECK(loy_codec_decode_forget(val, (size_t)n, NOW_MS,
                                                      &ev3, err,
                                                      sizeof(err)) == 0,
                              "forget round trip refused: %s", err);
                        CHECK(!strcmp(ev.customer_id, ev3.customer_id) &&
                                  ev.forget_ms == ev3.forget_ms &&
                                  ev.forget_by_key == ev3.forget_by_key &&
                                  ev.forget_if_silent == ev3.forget_if_silent,
                              "forget round trip changed the request");
                }
        }
        /* the same bytes as a framed trigger (loyaltyctl triggers) */
        err[0] = '\0';
        json = loy_codec_trigger_to_json(codec, data, size, err, sizeof(err));
        CHECK(json || err[0], "trigger rejected without a reason");
        free(json);
        return 0;
}
