/*
 * loy_codec: event encoding and decoding.
 *
 * Input: Avro binary with Confluent framing (magic byte 0, 4-byte big-endian
 * schema id, Avro datum) or a JSON object (first non-blank byte '{'), so
 * people can produce with kcat. Output: reward triggers in Avro with the
 * same framing. Schemas are the files config/{purchase,browse,
 * reward_trigger}.avsc, compiled in (the build generates gen/loy_schemas.h
 * from them). Field by field, with the dead-letter reasons: docs/events.md.
 *
 * A codec keeps its Avro values and buffers and reuses them: one per thread.
 */
#ifndef LOY_CODEC_H
#define LOY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "../features/loy_event.h"

#define LOY_RECS_MAX 20

/* Confluent schema ids used in the framing. Without a registry these are
 * fixed by config (defaults below); decoding accepts the purchase and browse
 * ids and rejects any other. */
typedef struct loy_codec_ids {
        int32_t purchase;
        int32_t browse;
        int32_t trigger;
} loy_codec_ids_t;

#define LOY_SCHEMA_ID_PURCHASE 1
#define LOY_SCHEMA_ID_BROWSE 2
#define LOY_SCHEMA_ID_TRIGGER 3

typedef struct loy_trigger_rec {
        char item[LOY_SKU_MAX + 1];
        double score;
} loy_trigger_rec_t;

/* The reward-trigger record (output). Strings are borrowed by the encoder. */
typedef struct loy_trigger {
        const char *trigger_id;
        const char *customer_id;
        const char *rule;
        const char *reward_kind;
        double reward_value;
        const char *reward_currency;
        int64_t reward_expiry_ms; /* absolute, event time */
        int holdout;
        /* the scores that fired it */
        double p_alive, churn_prob, exp_purchases, clv, monetary;
        int64_t frequency;
        int r_score, f_score, m_score;
        double loyalty_score;
        const char *segment;
        const loy_trigger_rec_t *recs;
        int nrecs;
        /* cause: an event (topic, partition, offset, event id) or a timer */
        const char *cause_kind;  /* "event" or "timer" */
        const char *cause_topic; /* NULL for timers */
        int32_t cause_partition;
        int64_t cause_offset;
        const char *cause_event_id; /* NULL for timers */
        int64_t event_time_ms;
        int64_t emit_time_ms;
        const char *model_version;
} loy_trigger_t;

typedef struct loy_codec loy_codec_t;

/* NULL with errstr on failure (a schema that does not parse). ids may be
 * NULL for the defaults. Free with loy_codec_destroy(). */
loy_codec_t *loy_codec_create(const loy_codec_ids_t *ids, char *errstr,
                              size_t errstr_size);
void loy_codec_destroy(loy_codec_t *codec);

/* Decodes one message into ev (reset first) and validates it. expect is the
 * kind the topic carries (0 = either; JSON may name it with "type").
 * Returns 0, or with the dead-letter reason in errstr: LOY_CODEC_ERR_DECODE
 * when the bytes are not an event, LOY_CODEC_ERR_INVALID when the event
 * breaks a rule of docs/events.md. now_ms is the wall clock used to reject
 * timestamps from the future. */
#define LOY_CODEC_ERR_DECODE (-1)
#define LOY_CODEC_ERR_INVALID (-2)
int loy_codec_decode(loy_codec_t *codec, const void *buf, size_t len,
                     loy_event_kind_t expect, int64_t now_ms, loy_event_t *ev,
                     char *errstr, size_t errstr_size);

/* A control message on an input topic carries this Kafka header; the one
 * operation is forget (loyaltyctl forget and expire): a JSON object
 * {"customer_id": "<id>", "forget_ms": <ms>} in the customer's partition;
 * "customer_key" instead of customer_id names the customer as Redis keys
 * it (its pseudonym), and "if_silent": true erases it only when nothing
 * newer than forget_ms was applied. docs/privacy.md. */
#define LOY_CODEC_OP_HEADER "loyaltyd-op"
#define LOY_CODEC_OP_FORGET "forget"

/* Decodes a forget request into ev (kind LOY_EV_FORGET, ts_ms 0) and
 * validates it; returns as loy_codec_decode. */
int loy_codec_decode_forget(const void *buf, size_t len, int64_t now_ms,
                            loy_event_t *ev, char *errstr, size_t errstr_size);
/* The value of a forget request (ev: kind LOY_EV_FORGET, customer_id,
 * forget_ms, forget_by_key, forget_if_silent), NUL-terminated, into buf.
 * Its length, or -1 when it does not fit or does not validate (errstr). */
int loy_codec_encode_forget(const loy_event_t *ev, char *buf, size_t size,
                            char *errstr, size_t errstr_size);

/* Encodes ev (purchase or browse) as framed Avro. The returned buffer is
 * owned by the codec and valid until its next encode call; *lenp gets its
 * length. NULL with errstr on failure. */
const void *loy_codec_encode_event(loy_codec_t *codec, const loy_event_t *ev,
                                   size_t *lenp, char *errstr,
                                   size_t errstr_size);

/* Encodes a trigger as framed Avro; buffer as for encode_event. */
const void *loy_codec_encode_trigger(loy_codec_t *codec, const loy_trigger_t *t,
                                     size_t *lenp, char *errstr,
                                     size_t errstr_size);

/* Decodes a framed trigger back to JSON text (for tests, loyaltyctl and
 * people reading the topic). Returns a malloc'ed string the caller frees,
 * or NULL with errstr. */
char *loy_codec_trigger_to_json(loy_codec_t *codec, const void *buf, size_t len,
                                char *errstr, size_t errstr_size);

#endif
