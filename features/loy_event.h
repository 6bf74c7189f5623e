/*
 * loy_event: the decoded form of an input event (purchase or browse).
 *
 * Codecs in stream/ fill it, features/ consume it. It is reused from message
 * to message so the hot path does not allocate: loy_event_reset() keeps the
 * line buffer, loy_event_free() releases it.
 */
#ifndef LOY_EVENT_H
#define LOY_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define LOY_ID_MAX 64      /* customer, event, order, session ids (bytes) */
#define LOY_SKU_MAX 64     /* sku and category (bytes) */
#define LOY_QUERY_MAX 256  /* search query (bytes) */
#define LOY_LINES_MAX 4096 /* lines in one purchase */

typedef enum {
        LOY_EV_PURCHASE = 1,
        LOY_EV_BROWSE = 2,
        /* an erasure request (loyaltyctl forget): not an event of the
         * customer's, but it travels in the customer's partition so that
         * the one process that writes the customer applies it, in order */
        LOY_EV_FORGET = 3,
} loy_event_kind_t;

typedef enum {
        LOY_ACT_VIEW = 0,
        LOY_ACT_ADD_TO_CART,
        LOY_ACT_REMOVE_FROM_CART,
        LOY_ACT_SEARCH,
        LOY_ACT_WISHLIST,
        LOY_ACT__COUNT
} loy_browse_action_t;

typedef struct loy_line {
        char sku[LOY_SKU_MAX + 1];
        char category[LOY_SKU_MAX + 1];
        int32_t quantity;  /* negative for a returned line */
        double unit_price; /* >= 0, in the event's currency */
} loy_line_t;

typedef struct loy_event {
        loy_event_kind_t kind;
        char event_id[LOY_ID_MAX + 1];
        char customer_id[LOY_ID_MAX + 1];
        int64_t ts_ms; /* event time, ms since the epoch */

        /* purchase */
        char order_id[LOY_ID_MAX + 1];
        char currency[8];
        char channel[LOY_ID_MAX + 1];
        loy_line_t *lines; /* owned, capacity lines_cap */
        int nlines;
        int lines_cap;

        /* browse */
        char session_id[LOY_ID_MAX + 1];
        loy_browse_action_t action;
        char sku[LOY_SKU_MAX + 1];
        char category[LOY_SKU_MAX + 1];
        char query[LOY_QUERY_MAX + 1];

        /* forget: the customer's events up to this time are erased, and
         * dropped when they come again (ts_ms is 0: a request moves no
         * clock and orders before the events of its batch) */
        int64_t forget_ms;
        int forget_by_key;    /* customer_id is what Redis keys (a
                               * pseudonym already), not the shop's id */
        int forget_if_silent; /* only if nothing newer than forget_ms
                               * was applied (an expiry) */

        /* where it came from; topic is borrowed, not owned */
        const char *topic;
        int32_t partition;
        int64_t offset;
} loy_event_t;

/* Zeroes the event; keeps (and owns) the line buffer for reuse. */
void loy_event_reset(loy_event_t *ev);

/* Frees the line buffer. The struct itself belongs to the caller. */
void loy_event_free(loy_event_t *ev);

/* Appends a zeroed line, growing the buffer. NULL when LOY_LINES_MAX is
 * reached or memory runs out. */
loy_line_t *loy_event_add_line(loy_event_t *ev);

/* Sum of quantity * unit_price over the lines: negative for a return. */
double loy_event_net_value(const loy_event_t *ev);

/* What a purchase event is, the one definition features, KPIs and the
 * fitter share: an order when its net value is positive; a return when it
 * is negative, or zero with a line of negative quantity (an exchange);
 * otherwise (a zero-value order: a free sample, an adjustment) neither. */
typedef enum {
        LOY_PURCHASE_NONE = 0,
        LOY_PURCHASE_ORDER,
        LOY_PURCHASE_RETURN,
} loy_purchase_kind_t;
loy_purchase_kind_t loy_event_purchase_kind(const loy_event_t *ev);

/* Whether data[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), the rule jansson applies: ids and
 * names must be, or Avro and JSON readers of the triggers choke on them. */
int loy_utf8_valid(const void *data, size_t n);

const char *loy_browse_action_name(loy_browse_action_t a);
/* -1 when the name is unknown. */
int loy_browse_action_parse(const char *name);

/* Validates the fields every consumer relies on. Returns 0, or -1 with a
 * human-readable reason in errstr (it becomes the dead-letter reason).
 * now_ms bounds the timestamp: not before 1990, not more than a day ahead. */
int loy_event_validate(const loy_event_t *ev, int64_t now_ms, char *errstr,
                       size_t errstr_size);

#endif
