/* loy_codec: see loy_codec.h. */
#include "loy_codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "loy_schemas.h"

/* ------------------------------------------------------------------------
 * Field positions. The code addresses record fields by index (no name
 * lookup per message); loy_codec_create() checks every name against the
 * compiled-in schema, so reordering a .avsc fails loudly at start-up.
 * ------------------------------------------------------------------------ */

enum {
        P_EVENT_ID,
        P_CUSTOMER_ID,
        P_TS,
        P_ORDER_ID,
        P_LINES,
        P_CURRENCY,
        P_CHANNEL,
        P__N
};
static const char *const purchase_fields[P__N] = {
    "event_id", "customer_id", "ts", "order_id", "lines", "currency", "channel",
};

enum { L_SKU, L_CATEGORY, L_QUANTITY, L_UNIT_PRICE, L__N };
static const char *const line_fields[L__N] = {
    "sku",
    "category",
    "quantity",
    "unit_price",
};

enum {
        B_EVENT_ID,
        B_CUSTOMER_ID,
        B_SESSION_ID,
        B_TS,
        B_ACTION,
        B_SKU,
        B_CATEGORY,
        B_QUERY,
        B__N
};
static const char *const browse_fields[B__N] = {
    "event_id", "customer_id", "session_id", "ts",
    "action",   "sku",         "category",   "query",
};

enum {
        T_TRIGGER_ID,
        T_CUSTOMER_ID,
        T_RULE,
        T_REWARD,
        T_HOLDOUT,
        T_SCORES,
        T_RECS,
        T_CAUSE,
        T_EVENT_TIME,
        T_EMIT_TIME,
        T_MODEL_VERSION,
        T__N
};
static const char *const trigger_fields[T__N] = {
    "trigger_id",    "customer_id",     "rule",  "reward",     "holdout",
    "scores",        "recommendations", "cause", "event_time", "emit_time",
    "model_version",
};

enum { RW_KIND, RW_VALUE, RW_CURRENCY, RW_EXPIRY, RW__N };
static const char *const reward_fields[RW__N] = {
    "kind",
    "value",
    "currency",
    "expiry_ts",
};

enum {
        S_P_ALIVE,
        S_CHURN,
        S_EXP_PURCH,
        S_CLV,
        S_MONETARY,
        S_FREQ,
        S_R,
        S_F,
        S_M,
        S_LOYALTY,
        S_SEGMENT,
        S__N
};
static const char *const scores_fields[S__N] = {
    "p_alive",       "churn_prob", "expected_purchases",
    "clv",           "monetary",   "frequency",
    "r_score",       "f_score",    "m_score",
    "loyalty_score", "segment",
};

enum { R_ITEM, R_SCORE, R__N };
static const char *const rec_fields[R__N] = {"item", "score"};

enum { C_KIND, C_TOPIC, C_PARTITION, C_OFFSET, C_EVENT_ID, C__N };
static const char *const cause_fields[C__N] = {
    "kind", "topic", "partition", "offset", "event_id",
};

static const char *const cause_kinds[] = {"event", "timer"};

#define CONFLUENT_HDR 5
#define SKIM_DEPTH_MAX 32

typedef struct codec_schema {
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value; /* reused for every message */
        int have_value;
} codec_schema_t;

struct loy_codec {
        loy_codec_ids_t ids;
        codec_schema_t purchase, browse, trigger;
        avro_reader_t reader;
        avro_writer_t writer;
        char *out; /* framed output, reused */
        size_t out_cap;
};

static const char *kind_name(loy_event_kind_t k) {
        return k == LOY_EV_PURCHASE ? "purchase"
               : k == LOY_EV_BROWSE ? "browse"
                                    : "unknown";
}

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...) {
        va_list ap;
        if (errstr && errstr_size) {
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        return -1;
}

/* ------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------ */

static avro_schema_t resolve(avro_schema_t s) {
        while (s && is_avro_link(s))
                s = avro_schema_link_target(s);
        return s;
}

/* The record at path in s must have exactly these fields in this order. */
static int check_record(avro_schema_t s, const char *what,
                        const char *const *names, size_t n, char *errstr,
                        size_t errstr_size) {
        s = resolve(s);
        if (!is_avro_record(s))
                return fail(errstr, errstr_size, "schema %s: not a record",
                            what);
        if (avro_schema_record_size(s) != n)
                return fail(errstr, errstr_size,
                            "schema %s: %zu fields, the codec knows %zu", what,
                            avro_schema_record_size(s), n);
        for (size_t i = 0; i < n; i++) {
                const char *got = avro_schema_record_field_name(s, (int)i);
                if (!got || strcmp(got, names[i]))
                        return fail(errstr, errstr_size,
                                    "schema %s: field %zu is '%s', the "
                                    "codec expects '%s'",
                                    what, i, got ? got : "?", names[i]);
        }
        return 0;
}

static int check_enum(avro_schema_t s, const char *what,
                      const char *const *names, int n, char *errstr,
                      size_t errstr_size) {
        s = resolve(s);
        if (!is_avro_enum(s) || avro_schema_enum_number_of_symbols(s) != n)
                return fail(errstr, errstr_size,
                            "schema %s: not an enum of %d symbols", what, n);
        for (int i = 0; i < n; i++) {
                const char *got = avro_schema_enum_get(s, i);
                if (!got || strcmp(got, names[i]))
                        return fail(errstr, errstr_size,
                                    "schema %s: symbol %d is '%s', the "
                                    "codec expects '%s'",
                                    what, i, got ? got : "?", names[i]);
        }
        return 0;
}

static avro_schema_t field_schema(avro_schema_t rec, int idx) {
        return resolve(
            avro_schema_record_field_get_by_index(resolve(rec), idx));
}

static avro_schema_t array_items(avro_schema_t arr) {
        arr = resolve(arr);
        return is_avro_array(arr) ? resolve(avro_schema_array_items(arr))
                                  : NULL;
}

static int schema_load(codec_schema_t *cs, const char *name, const char *json,
                       size_t len, char *errstr, size_t errstr_size) {
        if (avro_schema_from_json_length(json, len, &cs->schema))
                return fail(errstr, errstr_size, "schema %s: %s", name,
                            avro_strerror());
        cs->iface = avro_generic_class_from_schema(cs->schema);
        if (!cs->iface)
                return fail(errstr, errstr_size, "schema %s: %s", name,
                            avro_strerror());
        if (avro_generic_value_new(cs->iface, &cs->value))
                return fail(errstr, errstr_size, "schema %s: %s", name,
                            avro_strerror());
        cs->have_value = 1;
        return 0;
}

static void schema_unload(codec_schema_t *cs) {
        if (cs->have_value)
                avro_value_decref(&cs->value);
        if (cs->iface)
                avro_value_iface_decref(cs->iface);
        if (cs->schema)
                avro_schema_decref(cs->schema);
        memset(cs, 0, sizeof(*cs));
}

static int check_schemas(loy_codec_t *c, char *errstr, size_t errstr_size) {
        const char *actions[LOY_ACT__COUNT];
        avro_schema_t p = c->purchase.schema, b = c->browse.schema,
                      t = c->trigger.schema;

        for (int i = 0; i < LOY_ACT__COUNT; i++)
                actions[i] = loy_browse_action_name((loy_browse_action_t)i);
        if (check_record(p, "purchase", purchase_fields, P__N, errstr,
                         errstr_size) ||
            check_record(array_items(field_schema(p, P_LINES)),
                         "purchase.lines", line_fields, L__N, errstr,
                         errstr_size) ||
            check_record(b, "browse", browse_fields, B__N, errstr,
                         errstr_size) ||
            check_enum(field_schema(b, B_ACTION), "browse.action", actions,
                       LOY_ACT__COUNT, errstr, errstr_size) ||
            check_record(t, "reward_trigger", trigger_fields, T__N, errstr,
                         errstr_size) ||
            check_record(field_schema(t, T_REWARD), "reward_trigger.reward",
                         reward_fields, RW__N, errstr, errstr_size) ||
            check_record(field_schema(t, T_SCORES), "reward_trigger.scores",
                         scores_fields, S__N, errstr, errstr_size) ||
            check_record(array_items(field_schema(t, T_RECS)),
                         "reward_trigger.recommendations", rec_fields, R__N,
                         errstr, errstr_size) ||
            check_record(field_schema(t, T_CAUSE), "reward_trigger.cause",
                         cause_fields, C__N, errstr, errstr_size) ||
            check_enum(field_schema(field_schema(t, T_CAUSE), C_KIND),
                       "reward_trigger.cause.kind", cause_kinds, 2, errstr,
                       errstr_size))
                return -1;
        return 0;
}

loy_codec_t *loy_codec_create(const loy_codec_ids_t *ids, char *errstr,
                              size_t errstr_size) {
        loy_codec_t *c = calloc(1, sizeof(*c));
        if (!c) {
                fail(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (ids) {
                c->ids = *ids;
        } else {
                c->ids.purchase = LOY_SCHEMA_ID_PURCHASE;
                c->ids.browse = LOY_SCHEMA_ID_BROWSE;
                c->ids.trigger = LOY_SCHEMA_ID_TRIGGER;
        }
        if (c->ids.purchase < 0 || c->ids.browse < 0 || c->ids.trigger < 0 ||
            c->ids.purchase == c->ids.browse ||
            c->ids.purchase == c->ids.trigger ||
            c->ids.browse == c->ids.trigger) {
                fail(errstr, errstr_size,
                     "schema ids must be distinct and >= 0 (purchase %d, "
                     "browse %d, trigger %d)",
                     (int)c->ids.purchase, (int)c->ids.browse,
                     (int)c->ids.trigger);
                goto err;
        }
        if (schema_load(&c->purchase, "purchase", loy_schema_purchase,
                        sizeof(loy_schema_purchase) - 1, errstr, errstr_size) ||
            schema_load(&c->browse, "browse", loy_schema_browse,
                        sizeof(loy_schema_browse) - 1, errstr, errstr_size) ||
            schema_load(
                &c->trigger, "reward_trigger", loy_schema_reward_trigger,
                sizeof(loy_schema_reward_trigger) - 1, errstr, errstr_size) ||
            check_schemas(c, errstr, errstr_size))
                goto err;
        /* Sources and destinations are set per message. */
        c->reader = avro_reader_memory("", 0);
        c->writer = avro_writer_memory("", 0);
        if (!c->reader || !c->writer) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                goto err;
        }
        return c;
err:
        loy_codec_destroy(c);
        return NULL;
}

void loy_codec_destroy(loy_codec_t *c) {
        if (!c)
                return;
        if (c->reader)
                avro_reader_free(c->reader);
        if (c->writer)
                avro_writer_free(c->writer);
        schema_unload(&c->purchase);
        schema_unload(&c->browse);
        schema_unload(&c->trigger);
        free(c->out);
        free(c);
}

/* ------------------------------------------------------------------------
 * Skim: a bounds-checking walk over an Avro datum before avro-c reads it.
 *
 * avro-c 1.11 trusts the bytes: it allocates whatever a string length asks
 * for (a flipped bit can ask for exabytes), negates a block count of
 * INT64_MIN, and accepts enum indexes past the last symbol (which
 * avro_value_to_json then dereferences). This walk rejects all of that
 * without allocating, and measures the datum so trailing bytes are found.
 * ------------------------------------------------------------------------ */

typedef struct skim {
        const uint8_t *p, *end;
        const char *field; /* innermost record field, for messages */
        char *errstr;
        size_t errstr_size;
} skim_t;

static int skim_fail(skim_t *s, const char *what) {
        if (s->field)
                return fail(s->errstr, s->errstr_size, "avro: %s in field '%s'",
                            what, s->field);
        return fail(s->errstr, s->errstr_size, "avro: %s", what);
}

static int skim_long(skim_t *s, int64_t *out) {
        uint64_t v = 0;
        for (int shift = 0; shift < 70; shift += 7) {
                uint8_t b;
                if (s->p >= s->end)
                        return skim_fail(s, "datum truncated");
                b = *s->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        /* zigzag */
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return 0;
                }
        }
        return skim_fail(s, "varint too long");
}

static int skim_bytes(skim_t *s, int64_t n) {
        if (n < 0)
                return skim_fail(s, "negative length");
        if (n > s->end - s->p)
                return skim_fail(s, "datum truncated");
        s->p += n;
        return 0;
}

static int skim_value(skim_t *s, avro_schema_t sc, int depth);

/* Arrays and maps: blocks of items, a negative count carries a byte size. */
static int skim_blocks(skim_t *s, avro_schema_t items, int is_map, int depth) {
        const char *field = s->field;
        for (;;) {
                int64_t count, size;
                s->field = field; /* items may have moved it inward */
                if (skim_long(s, &count))
                        return -1;
                if (count == 0)
                        return 0;
                if (count < 0) {
                        if (count == INT64_MIN)
                                return skim_fail(s, "bad block count");
                        count = -count;
                        if (skim_long(s, &size))
                                return -1;
                        if (size < 0)
                                return skim_fail(s, "negative block size");
                }
                /* Every item of our schemas takes at least one byte, so a
                 * count above the bytes left is garbage; refusing it also
                 * bounds the loop for zero-sized item types. */
                if (count > s->end - s->p)
                        return skim_fail(s, "block count exceeds the datum");
                for (int64_t i = 0; i < count; i++) {
                        if (is_map) {
                                int64_t klen = 0;
                                if (skim_long(s, &klen) || skim_bytes(s, klen))
                                        return -1;
                        }
                        if (skim_value(s, items, depth + 1))
                                return -1;
                }
        }
}

static int skim_value(skim_t *s, avro_schema_t sc, int depth) {
        int64_t v;

        sc = resolve(sc);
        if (!sc)
                return skim_fail(s, "schema has no type");
        if (depth > SKIM_DEPTH_MAX)
                return skim_fail(s, "datum nested too deep");
        switch (avro_typeof(sc)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                if (s->p >= s->end)
                        return skim_fail(s, "datum truncated");
                if (*s->p > 1)
                        return skim_fail(s, "boolean is neither 0 nor 1");
                s->p++;
                return 0;
        case AVRO_INT32:
                if (skim_long(s, &v))
                        return -1;
                if (v < INT32_MIN || v > INT32_MAX)
                        return skim_fail(s, "int out of range");
                return 0;
        case AVRO_INT64:
                return skim_long(s, &v);
        case AVRO_FLOAT:
                return skim_bytes(s, 4);
        case AVRO_DOUBLE:
                return skim_bytes(s, 8);
        case AVRO_STRING:
        case AVRO_BYTES:
                if (skim_long(s, &v))
                        return -1;
                return skim_bytes(s, v);
        case AVRO_FIXED:
                return skim_bytes(s, avro_schema_fixed_size(sc));
        case AVRO_ENUM:
                if (skim_long(s, &v))
                        return -1;
                if (v < 0 || v >= avro_schema_enum_number_of_symbols(sc))
                        return skim_fail(s, "enum index out of range");
                return 0;
        case AVRO_UNION:
                if (skim_long(s, &v))
                        return -1;
                if (v < 0 || (uint64_t)v >= avro_schema_union_size(sc))
                        return skim_fail(s, "union branch out of range");
                return skim_value(s, avro_schema_union_branch(sc, (int)v),
                                  depth + 1);
        case AVRO_ARRAY:
                return skim_blocks(s, avro_schema_array_items(sc), 0, depth);
        case AVRO_MAP:
                return skim_blocks(s, avro_schema_map_values(sc), 1, depth);
        case AVRO_RECORD: {
                size_t n = avro_schema_record_size(sc);
                for (size_t i = 0; i < n; i++) {
                        s->field = avro_schema_record_field_name(sc, (int)i);
                        if (skim_value(s,
                                       avro_schema_record_field_get_by_index(
                                           sc, (int)i),
                                       depth + 1))
                                return -1;
                }
                return 0;
        }
        default:
                return skim_fail(s, "unsupported schema type");
        }
}

/* Reads one datum of cs from buf into cs->value: the whole of buf must be
 * the datum. */
static int avro_decode(loy_codec_t *c, codec_schema_t *cs, const uint8_t *buf,
                       size_t len, char *errstr, size_t errstr_size) {
        skim_t s = {buf, buf + len, NULL, errstr, errstr_size};
        size_t used;

        if (skim_value(&s, cs->schema, 0))
                return -1;
        used = (size_t)(s.p - buf);
        if (used < len)
                return fail(errstr, errstr_size,
                            "%zu trailing byte%s after the Avro datum",
                            len - used, len - used == 1 ? "" : "s");
        avro_reader_memory_set_source(c->reader, (const char *)buf,
                                      (int64_t)len);
        if (avro_value_read(c->reader, &cs->value))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        return 0;
}

/* ------------------------------------------------------------------------
 * Avro value -> loy_event_t
 * ------------------------------------------------------------------------ */

/* Copies n bytes of src into dst[cap]. Too long is an error, never a
 * truncation: two customers must not become one. Avro strings are UTF-8
 * (the spec; JSON input cannot be anything else): an id that is not would
 * reach the trigger topic as bytes a Java or Python consumer rewrites
 * (U+FFFD), and loyaltyctl could not show its triggers. */
static int copy_str(char *dst, size_t cap, const char *src, size_t n,
                    const char *name, char *errstr, size_t errstr_size) {
        if (n >= cap)
                return fail(errstr, errstr_size, "%s longer than %zu bytes",
                            name, cap - 1);
        if (n && memchr(src, '\0', n))
                return fail(errstr, errstr_size, "%s contains a NUL byte",
                            name);
        if (!loy_utf8_valid(src, n))
                return fail(errstr, errstr_size, "%s is not valid UTF-8", name);
        memcpy(dst, src, n);
        dst[n] = '\0';
        return 0;
}

static int av_child(avro_value_t *rec, int idx, avro_value_t *out, char *errstr,
                    size_t errstr_size) {
        if (avro_value_get_by_index(rec, (size_t)idx, out, NULL))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        return 0;
}

static int av_str(avro_value_t *rec, int idx, char *dst, size_t cap,
                  const char *name, char *errstr, size_t errstr_size) {
        avro_value_t f;
        const char *s;
        size_t size;
        if (av_child(rec, idx, &f, errstr, errstr_size))
                return -1;
        if (avro_value_get_string(&f, &s, &size))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        /* size counts the terminating NUL */
        return copy_str(dst, cap, s, size ? size - 1 : 0, name, errstr,
                        errstr_size);
}

static int av_long(avro_value_t *rec, int idx, int64_t *out, char *errstr,
                   size_t errstr_size) {
        avro_value_t f;
        if (av_child(rec, idx, &f, errstr, errstr_size))
                return -1;
        if (avro_value_get_long(&f, out))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        return 0;
}

static int purchase_from_avro(avro_value_t *rec, loy_event_t *ev, char *errstr,
                              size_t errstr_size) {
        avro_value_t lines;
        size_t n;

        ev->kind = LOY_EV_PURCHASE;
        if (av_str(rec, P_EVENT_ID, ev->event_id, sizeof(ev->event_id),
                   "event_id", errstr, errstr_size) ||
            av_str(rec, P_CUSTOMER_ID, ev->customer_id, sizeof(ev->customer_id),
                   "customer_id", errstr, errstr_size) ||
            av_long(rec, P_TS, &ev->ts_ms, errstr, errstr_size) ||
            av_str(rec, P_ORDER_ID, ev->order_id, sizeof(ev->order_id),
                   "order_id", errstr, errstr_size) ||
            av_str(rec, P_CURRENCY, ev->currency, sizeof(ev->currency),
                   "currency", errstr, errstr_size) ||
            av_str(rec, P_CHANNEL, ev->channel, sizeof(ev->channel), "channel",
                   errstr, errstr_size) ||
            av_child(rec, P_LINES, &lines, errstr, errstr_size))
                return -1;
        if (avro_value_get_size(&lines, &n))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        if (n > LOY_LINES_MAX)
                return fail(errstr, errstr_size,
                            "purchase has %zu lines, more than %d", n,
                            LOY_LINES_MAX);
        for (size_t i = 0; i < n; i++) {
                avro_value_t el, f;
                loy_line_t *l = loy_event_add_line(ev);
                char name[48];
                int32_t q;
                double price;

                if (!l)
                        return fail(errstr, errstr_size, "out of memory");
                if (avro_value_get_by_index(&lines, i, &el, NULL))
                        return fail(errstr, errstr_size, "avro: %s",
                                    avro_strerror());
                snprintf(name, sizeof(name), "lines[%zu].sku", i);
                if (av_str(&el, L_SKU, l->sku, sizeof(l->sku), name, errstr,
                           errstr_size))
                        return -1;
                snprintf(name, sizeof(name), "lines[%zu].category", i);
                if (av_str(&el, L_CATEGORY, l->category, sizeof(l->category),
                           name, errstr, errstr_size))
                        return -1;
                if (av_child(&el, L_QUANTITY, &f, errstr, errstr_size))
                        return -1;
                if (avro_value_get_int(&f, &q))
                        return fail(errstr, errstr_size, "avro: %s",
                                    avro_strerror());
                if (av_child(&el, L_UNIT_PRICE, &f, errstr, errstr_size))
                        return -1;
                if (avro_value_get_double(&f, &price))
                        return fail(errstr, errstr_size, "avro: %s",
                                    avro_strerror());
                l->quantity = q;
                l->unit_price = price;
        }
        return 0;
}

static int browse_from_avro(avro_value_t *rec, loy_event_t *ev, char *errstr,
                            size_t errstr_size) {
        avro_value_t f;
        int action;

        ev->kind = LOY_EV_BROWSE;
        if (av_str(rec, B_EVENT_ID, ev->event_id, sizeof(ev->event_id),
                   "event_id", errstr, errstr_size) ||
            av_str(rec, B_CUSTOMER_ID, ev->customer_id, sizeof(ev->customer_id),
                   "customer_id", errstr, errstr_size) ||
            av_str(rec, B_SESSION_ID, ev->session_id, sizeof(ev->session_id),
                   "session_id", errstr, errstr_size) ||
            av_long(rec, B_TS, &ev->ts_ms, errstr, errstr_size) ||
            av_str(rec, B_SKU, ev->sku, sizeof(ev->sku), "sku", errstr,
                   errstr_size) ||
            av_str(rec, B_CATEGORY, ev->category, sizeof(ev->category),
                   "category", errstr, errstr_size) ||
            av_str(rec, B_QUERY, ev->query, sizeof(ev->query), "query", errstr,
                   errstr_size) ||
            av_child(rec, B_ACTION, &f, errstr, errstr_size))
                return -1;
        if (avro_value_get_enum(&f, &action))
                return fail(errstr, errstr_size, "avro: %s", avro_strerror());
        /* the schema's symbols are checked to be in enum order */
        if (action < 0 || action >= LOY_ACT__COUNT)
                return fail(errstr, errstr_size, "unknown browse action");
        ev->action = (loy_browse_action_t)action;
        return 0;
}

static int decode_avro(loy_codec_t *c, const uint8_t *buf, size_t len,
                       loy_event_kind_t expect, loy_event_t *ev, char *errstr,
                       size_t errstr_size) {
        codec_schema_t *cs;
        loy_event_kind_t kind;
        int32_t id;

        if (len < CONFLUENT_HDR)
                return fail(errstr, errstr_size, "truncated Confluent header");
        id = (int32_t)((uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
                       (uint32_t)buf[3] << 8 | (uint32_t)buf[4]);
        if (id == c->ids.purchase) {
                kind = LOY_EV_PURCHASE;
                cs = &c->purchase;
        } else if (id == c->ids.browse) {
                kind = LOY_EV_BROWSE;
                cs = &c->browse;
        } else {
                return fail(errstr, errstr_size, "unknown schema id %" PRId32,
                            id);
        }
        if (expect && kind != expect)
                return fail(errstr, errstr_size,
                            "schema id %" PRId32 " is %s, topic carries %s", id,
                            kind_name(kind), kind_name(expect));
        if (avro_decode(c, cs, buf + CONFLUENT_HDR, len - CONFLUENT_HDR, errstr,
                        errstr_size))
                return -1;
        if (kind == LOY_EV_PURCHASE)
                return purchase_from_avro(&cs->value, ev, errstr, errstr_size);
        return browse_from_avro(&cs->value, ev, errstr, errstr_size);
}

/* ------------------------------------------------------------------------
 * JSON input (for people producing with kcat)
 * ------------------------------------------------------------------------ */

/* A JSON null counts as absent, so optional fields can be written null. */
static json_t *jget(json_t *obj, const char *key) {
        json_t *v = json_object_get(obj, key);
        return json_is_null(v) ? NULL : v;
}

/* path names the field in messages ("customer_id", "lines[2].sku"). */
static int json_str(json_t *obj, const char *key, const char *path,
                    int required, const char *dflt, char *dst, size_t cap,
                    char *errstr, size_t errstr_size) {
        json_t *v = jget(obj, key);
        if (!v) {
                if (required)
                        return fail(errstr, errstr_size, "missing field '%s'",
                                    path);
                return copy_str(dst, cap, dflt, strlen(dflt), path, errstr,
                                errstr_size);
        }
        if (!json_is_string(v))
                return fail(errstr, errstr_size, "field '%s' must be a string",
                            path);
        return copy_str(dst, cap, json_string_value(v), json_string_length(v),
                        path, errstr, errstr_size);
}

static int json_int(json_t *obj, const char *key, const char *path, int64_t lo,
                    int64_t hi, int64_t *out, char *errstr,
                    size_t errstr_size) {
        json_t *v = jget(obj, key);
        if (!v)
                return fail(errstr, errstr_size, "missing field '%s'", path);
        if (!json_is_integer(v))
                return fail(errstr, errstr_size,
                            "field '%s' must be an integer", path);
        *out = (int64_t)json_integer_value(v);
        if (*out < lo || *out > hi)
                return fail(errstr, errstr_size, "field '%s' is out of range",
                            path);
        return 0;
}

static int purchase_from_json(json_t *root, loy_event_t *ev, char *errstr,
                              size_t errstr_size) {
        json_t *lines;
        size_t n;

        ev->kind = LOY_EV_PURCHASE;
        if (json_str(root, "event_id", "event_id", 1, "", ev->event_id,
                     sizeof(ev->event_id), errstr, errstr_size) ||
            json_str(root, "customer_id", "customer_id", 1, "", ev->customer_id,
                     sizeof(ev->customer_id), errstr, errstr_size) ||
            json_int(root, "ts", "ts", INT64_MIN, INT64_MAX, &ev->ts_ms, errstr,
                     errstr_size) ||
            json_str(root, "order_id", "order_id", 1, "", ev->order_id,
                     sizeof(ev->order_id), errstr, errstr_size) ||
            json_str(root, "currency", "currency", 0, "GBP", ev->currency,
                     sizeof(ev->currency), errstr, errstr_size) ||
            json_str(root, "channel", "channel", 0, "web", ev->channel,
                     sizeof(ev->channel), errstr, errstr_size))
                return -1;
        lines = jget(root, "lines");
        if (!lines)
                return fail(errstr, errstr_size, "missing field 'lines'");
        if (!json_is_array(lines))
                return fail(errstr, errstr_size,
                            "field 'lines' must be an array");
        n = json_array_size(lines);
        if (n > LOY_LINES_MAX)
                return fail(errstr, errstr_size,
                            "purchase has %zu lines, more than %d", n,
                            LOY_LINES_MAX);
        for (size_t i = 0; i < n; i++) {
                json_t *jl = json_array_get(lines, i), *price;
                loy_line_t *l;
                char path[40];
                int64_t q = 0;

                if (!json_is_object(jl))
                        return fail(errstr, errstr_size,
                                    "field 'lines[%zu]' must be an object", i);
                l = loy_event_add_line(ev);
                if (!l)
                        return fail(errstr, errstr_size, "out of memory");
                snprintf(path, sizeof(path), "lines[%zu].sku", i);
                if (json_str(jl, "sku", path, 1, "", l->sku, sizeof(l->sku),
                             errstr, errstr_size))
                        return -1;
                snprintf(path, sizeof(path), "lines[%zu].category", i);
                if (json_str(jl, "category", path, 0, "", l->category,
                             sizeof(l->category), errstr, errstr_size))
                        return -1;
                snprintf(path, sizeof(path), "lines[%zu].quantity", i);
                if (json_int(jl, "quantity", path, INT32_MIN, INT32_MAX, &q,
                             errstr, errstr_size))
                        return -1;
                l->quantity = (int32_t)q;
                snprintf(path, sizeof(path), "lines[%zu].unit_price", i);
                price = jget(jl, "unit_price");
                if (!price)
                        return fail(errstr, errstr_size, "missing field '%s'",
                                    path);
                if (!json_is_number(price))
                        return fail(errstr, errstr_size,
                                    "field '%s' must be a number", path);
                l->unit_price = json_number_value(price);
        }
        return 0;
}

static int browse_from_json(json_t *root, loy_event_t *ev, char *errstr,
                            size_t errstr_size) {
        json_t *a;
        int action;

        ev->kind = LOY_EV_BROWSE;
        if (json_str(root, "event_id", "event_id", 1, "", ev->event_id,
                     sizeof(ev->event_id), errstr, errstr_size) ||
            json_str(root, "customer_id", "customer_id", 1, "", ev->customer_id,
                     sizeof(ev->customer_id), errstr, errstr_size) ||
            json_str(root, "session_id", "session_id", 0, "", ev->session_id,
                     sizeof(ev->session_id), errstr, errstr_size) ||
            json_int(root, "ts", "ts", INT64_MIN, INT64_MAX, &ev->ts_ms, errstr,
                     errstr_size) ||
            json_str(root, "sku", "sku", 0, "", ev->sku, sizeof(ev->sku),
                     errstr, errstr_size) ||
            json_str(root, "category", "category", 0, "", ev->category,
                     sizeof(ev->category), errstr, errstr_size) ||
            json_str(root, "query", "query", 0, "", ev->query,
                     sizeof(ev->query), errstr, errstr_size))
                return -1;
        a = jget(root, "action");
        if (!a)
                return fail(errstr, errstr_size, "missing field 'action'");
        if (!json_is_string(a))
                return fail(errstr, errstr_size,
                            "field 'action' must be a string");
        action = loy_browse_action_parse(json_string_value(a));
        if (action < 0)
                return fail(errstr, errstr_size,
                            "unknown browse action '%.40s'",
                            json_string_value(a));
        ev->action = (loy_browse_action_t)action;
        return 0;
}

static int decode_json(const char *buf, size_t len, loy_event_kind_t expect,
                       loy_event_t *ev, char *errstr, size_t errstr_size) {
        json_error_t jerr;
        json_t *root, *type;
        loy_event_kind_t kind = expect;
        int rc = -1;

        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(errstr, errstr_size,
                            "json: %s at line %d column %d", jerr.text,
                            jerr.line, jerr.column);
        if (!json_is_object(root)) {
                fail(errstr, errstr_size, "json: not an object");
                goto out;
        }
        type = jget(root, "type");
        if (type) {
                const char *t = json_string_value(type);
                loy_event_kind_t named;
                if (!t) {
                        fail(errstr, errstr_size,
                             "field 'type' must be a string");
                        goto out;
                }
                if (!strcmp(t, "purchase")) {
                        named = LOY_EV_PURCHASE;
                } else if (!strcmp(t, "browse")) {
                        named = LOY_EV_BROWSE;
                } else {
                        fail(errstr, errstr_size,
                             "field 'type' must be \"purchase\" or "
                             "\"browse\"");
                        goto out;
                }
                if (expect && named != expect) {
                        fail(errstr, errstr_size,
                             "type is %s, topic carries %s", kind_name(named),
                             kind_name(expect));
                        goto out;
                }
                kind = named;
        } else if (!expect) {
                fail(errstr, errstr_size, "missing field 'type'");
                goto out;
        }
        if (kind == LOY_EV_PURCHASE)
                rc = purchase_from_json(root, ev, errstr, errstr_size);
        else
                rc = browse_from_json(root, ev, errstr, errstr_size);
out:
        json_decref(root);
        return rc;
}

int loy_codec_decode(loy_codec_t *c, const void *buf, size_t len,
                     loy_event_kind_t expect, int64_t now_ms, loy_event_t *ev,
                     char *errstr, size_t errstr_size) {
        const uint8_t *b = buf;
        size_t i = 0;
        int rc;

        loy_event_reset(ev);
        if (expect && expect != LOY_EV_PURCHASE && expect != LOY_EV_BROWSE)
                return fail(errstr, errstr_size, "unknown event kind %d",
                            (int)expect);
        if (!buf || len == 0)
                return fail(errstr, errstr_size, "empty message");
        if (b[0] == 0) {
                rc = decode_avro(c, b, len, expect, ev, errstr, errstr_size);
        } else {
                while (i < len && (b[i] == ' ' || b[i] == '\t' ||
                                   b[i] == '\r' || b[i] == '\n'))
                        i++;
                if (i == len || b[i] != '{')
                        return fail(errstr, errstr_size,
                                    "not Avro (magic byte 0) nor JSON");
                rc = decode_json(buf, len, expect, ev, errstr, errstr_size);
        }
        if (rc)
                return LOY_CODEC_ERR_DECODE;
        return loy_event_validate(ev, now_ms, errstr, errstr_size)
                   ? LOY_CODEC_ERR_INVALID
                   : 0;
}

int loy_codec_decode_forget(const void *buf, size_t len, int64_t now_ms,
                            loy_event_t *ev, char *errstr, size_t errstr_size) {
        json_error_t jerr;
        json_t *root;
        int rc;

        loy_event_reset(ev);
        ev->kind = LOY_EV_FORGET;
        if (!buf || len == 0)
                return fail(errstr, errstr_size, "forget: empty message");
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                fail(errstr, errstr_size,
                     "forget: json: %s at line %d "
                     "column %d",
                     jerr.text, jerr.line, jerr.column);
                return LOY_CODEC_ERR_DECODE;
        }
        if (!json_is_object(root)) {
                rc = fail(errstr, errstr_size, "forget: json: not an object");
        } else {
                json_t *silent = jget(root, "if_silent");
                const char *idf = "customer_id";
                ev->forget_by_key = jget(root, "customer_key") != NULL;
                if (ev->forget_by_key)
                        idf = "customer_key";
                rc = (ev->forget_by_key && jget(root, "customer_id"))
                         ? fail(errstr, errstr_size,
                                "forget: give "
                                "customer_id or customer_key, not both")
                         : json_str(root, idf, idf, 1, "", ev->customer_id,
                                    sizeof(ev->customer_id), errstr,
                                    errstr_size) ||
                               json_int(root, "forget_ms", "forget_ms",
                                        INT64_MIN, INT64_MAX, &ev->forget_ms,
                                        errstr, errstr_size);
                if (!rc && silent && !json_is_boolean(silent))
                        rc = fail(errstr, errstr_size,
                                  "field 'if_silent' "
                                  "must be true or false");
                ev->forget_if_silent = json_is_true(silent);
        }
        json_decref(root);
        if (rc)
                return LOY_CODEC_ERR_DECODE;
        return loy_event_validate(ev, now_ms, errstr, errstr_size)
                   ? LOY_CODEC_ERR_INVALID
                   : 0;
}

int loy_codec_encode_forget(const loy_event_t *ev, char *buf, size_t size,
                            char *errstr, size_t errstr_size) {
        json_t *root;
        char *text;
        int n = -1;

        if (!loy_utf8_valid(ev->customer_id, strlen(ev->customer_id)))
                return fail(errstr, errstr_size,
                            "customer_id is not valid UTF-8");
        if (ev->kind != LOY_EV_FORGET ||
            loy_event_validate(ev, 0, errstr, errstr_size))
                return ev->kind != LOY_EV_FORGET ? fail(errstr, errstr_size,
                                                        "not a forget "
                                                        "request")
                                                 : -1;
        root = json_pack(
            "{s:s, s:I}", ev->forget_by_key ? "customer_key" : "customer_id",
            ev->customer_id, "forget_ms", (json_int_t)ev->forget_ms);
        if (root && ev->forget_if_silent &&
            json_object_set_new(root, "if_silent", json_true())) {
                json_decref(root);
                root = NULL;
        }
        text = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        if (!text)
                return fail(errstr, errstr_size, "out of memory");
        if (strlen(text) < size) {
                n = (int)strlen(text);
                memcpy(buf, text, (size_t)n + 1);
        } else {
                fail(errstr, errstr_size,
                     "forget request longer than %zu "
                     "bytes",
                     size - 1);
        }
        free(text);
        return n;
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static int set_str(avro_value_t *rec, int idx, const char *s) {
        avro_value_t f;
        return avro_value_get_by_index(rec, (size_t)idx, &f, NULL) ||
               avro_value_set_string(&f, s ? s : "");
}

static int set_long(avro_value_t *rec, int idx, int64_t v) {
        avro_value_t f;
        return avro_value_get_by_index(rec, (size_t)idx, &f, NULL) ||
               avro_value_set_long(&f, v);
}

static int set_int(avro_value_t *rec, int idx, int32_t v) {
        avro_value_t f;
        return avro_value_get_by_index(rec, (size_t)idx, &f, NULL) ||
               avro_value_set_int(&f, v);
}

static int set_double(avro_value_t *rec, int idx, double v) {
        avro_value_t f;
        return avro_value_get_by_index(rec, (size_t)idx, &f, NULL) ||
               avro_value_set_double(&f, v);
}

/* ["null", "string"]: NULL selects the null branch. */
static int set_opt_str(avro_value_t *rec, int idx, const char *s) {
        avro_value_t f, br;
        if (avro_value_get_by_index(rec, (size_t)idx, &f, NULL))
                return -1;
        if (!s)
                return avro_value_set_branch(&f, 0, &br) ||
                       avro_value_set_null(&br);
        return avro_value_set_branch(&f, 1, &br) ||
               avro_value_set_string(&br, s);
}

/* Writes cs->value with the Confluent header into c->out. */
static const void *frame(loy_codec_t *c, codec_schema_t *cs, int32_t id,
                         size_t *lenp, char *errstr, size_t errstr_size) {
        size_t size, need;

        if (avro_value_sizeof(&cs->value, &size)) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        need = size + CONFLUENT_HDR;
        if (need > c->out_cap) {
                size_t cap = c->out_cap ? c->out_cap : 256;
                char *nb;
                while (cap < need)
                        cap *= 2;
                nb = realloc(c->out, cap);
                if (!nb) {
                        fail(errstr, errstr_size, "out of memory");
                        return NULL;
                }
                c->out = nb;
                c->out_cap = cap;
        }
        c->out[0] = 0;
        c->out[1] = (char)((uint32_t)id >> 24);
        c->out[2] = (char)((uint32_t)id >> 16);
        c->out[3] = (char)((uint32_t)id >> 8);
        c->out[4] = (char)(uint32_t)id;
        avro_writer_memory_set_dest(c->writer, c->out + CONFLUENT_HDR,
                                    (int64_t)size);
        if (avro_value_write(c->writer, &cs->value) ||
            avro_writer_tell(c->writer) != (int64_t)size) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        *lenp = need;
        return c->out;
}

static int purchase_to_avro(avro_value_t *rec, const loy_event_t *ev) {
        avro_value_t lines;

        if (set_str(rec, P_EVENT_ID, ev->event_id) ||
            set_str(rec, P_CUSTOMER_ID, ev->customer_id) ||
            set_long(rec, P_TS, ev->ts_ms) ||
            set_str(rec, P_ORDER_ID, ev->order_id) ||
            set_str(rec, P_CURRENCY, ev->currency) ||
            set_str(rec, P_CHANNEL, ev->channel) ||
            avro_value_get_by_index(rec, P_LINES, &lines, NULL))
                return -1;
        for (int i = 0; i < ev->nlines; i++) {
                const loy_line_t *l = &ev->lines[i];
                avro_value_t el;
                if (avro_value_append(&lines, &el, NULL) ||
                    set_str(&el, L_SKU, l->sku) ||
                    set_str(&el, L_CATEGORY, l->category) ||
                    set_int(&el, L_QUANTITY, l->quantity) ||
                    set_double(&el, L_UNIT_PRICE, l->unit_price))
                        return -1;
        }
        return 0;
}

static int browse_to_avro(avro_value_t *rec, const loy_event_t *ev) {
        avro_value_t f;

        if (set_str(rec, B_EVENT_ID, ev->event_id) ||
            set_str(rec, B_CUSTOMER_ID, ev->customer_id) ||
            set_str(rec, B_SESSION_ID, ev->session_id) ||
            set_long(rec, B_TS, ev->ts_ms) || set_str(rec, B_SKU, ev->sku) ||
            set_str(rec, B_CATEGORY, ev->category) ||
            set_str(rec, B_QUERY, ev->query) ||
            avro_value_get_by_index(rec, B_ACTION, &f, NULL) ||
            avro_value_set_enum(&f, (int)ev->action))
                return -1;
        return 0;
}

const void *loy_codec_encode_event(loy_codec_t *c, const loy_event_t *ev,
                                   size_t *lenp, char *errstr,
                                   size_t errstr_size) {
        codec_schema_t *cs;
        int32_t id;
        int rc;

        if (ev->kind == LOY_EV_PURCHASE) {
                cs = &c->purchase;
                id = c->ids.purchase;
        } else if (ev->kind == LOY_EV_BROWSE) {
                cs = &c->browse;
                id = c->ids.browse;
                if ((int)ev->action < 0 || ev->action >= LOY_ACT__COUNT) {
                        fail(errstr, errstr_size, "unknown browse action %d",
                             (int)ev->action);
                        return NULL;
                }
        } else {
                fail(errstr, errstr_size, "unknown event kind %d",
                     (int)ev->kind);
                return NULL;
        }
        if (ev->nlines < 0 || (ev->nlines > 0 && !ev->lines)) {
                fail(errstr, errstr_size, "bad line count %d", ev->nlines);
                return NULL;
        }
        if (avro_value_reset(&cs->value)) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        if (ev->kind == LOY_EV_PURCHASE)
                rc = purchase_to_avro(&cs->value, ev);
        else
                rc = browse_to_avro(&cs->value, ev);
        if (rc) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        return frame(c, cs, id, lenp, errstr, errstr_size);
}

static int trigger_to_avro(avro_value_t *rec, const loy_trigger_t *t) {
        avro_value_t sub, recs, f;
        int cause = !strcmp(t->cause_kind, "timer") ? 1 : 0;

        if (set_str(rec, T_TRIGGER_ID, t->trigger_id) ||
            set_str(rec, T_CUSTOMER_ID, t->customer_id) ||
            set_str(rec, T_RULE, t->rule) ||
            avro_value_get_by_index(rec, T_HOLDOUT, &f, NULL) ||
            avro_value_set_boolean(&f, t->holdout ? 1 : 0) ||
            set_long(rec, T_EVENT_TIME, t->event_time_ms) ||
            set_long(rec, T_EMIT_TIME, t->emit_time_ms) ||
            set_str(rec, T_MODEL_VERSION, t->model_version))
                return -1;

        if (avro_value_get_by_index(rec, T_REWARD, &sub, NULL) ||
            set_str(&sub, RW_KIND, t->reward_kind) ||
            set_double(&sub, RW_VALUE, t->reward_value) ||
            set_str(&sub, RW_CURRENCY, t->reward_currency) ||
            set_long(&sub, RW_EXPIRY, t->reward_expiry_ms))
                return -1;

        if (avro_value_get_by_index(rec, T_SCORES, &sub, NULL) ||
            set_double(&sub, S_P_ALIVE, t->p_alive) ||
            set_double(&sub, S_CHURN, t->churn_prob) ||
            set_double(&sub, S_EXP_PURCH, t->exp_purchases) ||
            set_double(&sub, S_CLV, t->clv) ||
            set_double(&sub, S_MONETARY, t->monetary) ||
            set_long(&sub, S_FREQ, t->frequency) ||
            set_int(&sub, S_R, t->r_score) || set_int(&sub, S_F, t->f_score) ||
            set_int(&sub, S_M, t->m_score) ||
            set_double(&sub, S_LOYALTY, t->loyalty_score) ||
            set_str(&sub, S_SEGMENT, t->segment))
                return -1;

        if (avro_value_get_by_index(rec, T_RECS, &recs, NULL))
                return -1;
        for (int i = 0; i < t->nrecs; i++) {
                avro_value_t el;
                if (avro_value_append(&recs, &el, NULL) ||
                    set_str(&el, R_ITEM, t->recs[i].item) ||
                    set_double(&el, R_SCORE, t->recs[i].score))
                        return -1;
        }

        if (avro_value_get_by_index(rec, T_CAUSE, &sub, NULL) ||
            avro_value_get_by_index(&sub, C_KIND, &f, NULL) ||
            avro_value_set_enum(&f, cause) ||
            set_opt_str(&sub, C_TOPIC, t->cause_topic) ||
            set_int(&sub, C_PARTITION, t->cause_partition) ||
            set_long(&sub, C_OFFSET, t->cause_offset) ||
            set_opt_str(&sub, C_EVENT_ID, t->cause_event_id))
                return -1;
        return 0;
}

const void *loy_codec_encode_trigger(loy_codec_t *c, const loy_trigger_t *t,
                                     size_t *lenp, char *errstr,
                                     size_t errstr_size) {
        if (!t->trigger_id || !t->trigger_id[0] || !t->customer_id ||
            !t->customer_id[0]) {
                fail(errstr, errstr_size,
                     "trigger needs a trigger_id and a customer_id");
                return NULL;
        }
        if (!t->cause_kind || (strcmp(t->cause_kind, "event") &&
                               strcmp(t->cause_kind, "timer"))) {
                fail(errstr, errstr_size,
                     "trigger cause_kind must be \"event\" or \"timer\"");
                return NULL;
        }
        if (t->nrecs < 0 || (t->nrecs > 0 && !t->recs)) {
                fail(errstr, errstr_size, "bad recommendation count %d",
                     t->nrecs);
                return NULL;
        }
        if (avro_value_reset(&c->trigger.value) ||
            trigger_to_avro(&c->trigger.value, t)) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        return frame(c, &c->trigger, c->ids.trigger, lenp, errstr, errstr_size);
}

char *loy_codec_trigger_to_json(loy_codec_t *c, const void *buf, size_t len,
                                char *errstr, size_t errstr_size) {
        const uint8_t *b = buf;
        char *json = NULL;
        int32_t id;

        if (!buf || len == 0) {
                fail(errstr, errstr_size, "empty message");
                return NULL;
        }
        if (b[0] != 0) {
                fail(errstr, errstr_size, "not Avro (magic byte 0)");
                return NULL;
        }
        if (len < CONFLUENT_HDR) {
                fail(errstr, errstr_size, "truncated Confluent header");
                return NULL;
        }
        id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                       (uint32_t)b[3] << 8 | (uint32_t)b[4]);
        if (id != c->ids.trigger) {
                fail(errstr, errstr_size,
                     "schema id %" PRId32 " is not the trigger schema (%" PRId32
                     ")",
                     id, c->ids.trigger);
                return NULL;
        }
        if (avro_decode(c, &c->trigger, b + CONFLUENT_HDR, len - CONFLUENT_HDR,
                        errstr, errstr_size))
                return NULL;
        if (avro_value_to_json(&c->trigger.value, 1, &json) || !json) {
                fail(errstr, errstr_size, "avro: %s", avro_strerror());
                return NULL;
        }
        return json;
}
