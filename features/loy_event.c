/* loy_event: see loy_event.h. */
#include "loy_event.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

static const char *const action_names[LOY_ACT__COUNT] = {
    "view", "add_to_cart", "remove_from_cart", "search", "wishlist",
};

void loy_event_reset(loy_event_t *ev) {
        loy_line_t *lines = ev->lines;
        int cap = ev->lines_cap;
        memset(ev, 0, sizeof(*ev));
        ev->lines = lines;
        ev->lines_cap = cap;
}

void loy_event_free(loy_event_t *ev) {
        free(ev->lines);
        ev->lines = NULL;
        ev->lines_cap = 0;
        ev->nlines = 0;
}

loy_line_t *loy_event_add_line(loy_event_t *ev) {
        loy_line_t *line;
        if (ev->nlines >= LOY_LINES_MAX)
                return NULL;
        if (ev->nlines == ev->lines_cap) {
                int cap = ev->lines_cap ? ev->lines_cap * 2 : 16;
                loy_line_t *nl;
                if (cap > LOY_LINES_MAX)
                        cap = LOY_LINES_MAX;
                nl = realloc(ev->lines, (size_t)cap * sizeof(*nl));
                if (!nl)
                        return NULL;
                ev->lines = nl;
                ev->lines_cap = cap;
        }
        line = &ev->lines[ev->nlines++];
        memset(line, 0, sizeof(*line));
        return line;
}

double loy_event_net_value(const loy_event_t *ev) {
        double sum = 0;
        for (int i = 0; i < ev->nlines; i++)
                sum += (double)ev->lines[i].quantity * ev->lines[i].unit_price;
        return sum;
}

loy_purchase_kind_t loy_event_purchase_kind(const loy_event_t *ev) {
        double net = loy_event_net_value(ev);
        if (net > 0)
                return LOY_PURCHASE_ORDER;
        if (net < 0)
                return LOY_PURCHASE_RETURN;
        for (int i = 0; i < ev->nlines; i++)
                if (ev->lines[i].quantity < 0)
                        return LOY_PURCHASE_RETURN;
        return LOY_PURCHASE_NONE;
}

int loy_utf8_valid(const void *data, size_t n) {
        const unsigned char *s = data;
        size_t i = 0;
        while (i < n) {
                unsigned char c = s[i];
                size_t len;
                uint32_t cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        cp = c & 0x07;
                } else {
                        return 0;
                }
                if (n - i < len)
                        return 0;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return 0;
                i += len;
        }
        return 1;
}

const char *loy_browse_action_name(loy_browse_action_t a) {
        if ((int)a < 0 || a >= LOY_ACT__COUNT)
                return "unknown";
        return action_names[a];
}

int loy_browse_action_parse(const char *name) {
        for (int i = 0; i < LOY_ACT__COUNT; i++)
                if (!strcmp(name, action_names[i]))
                        return i;
        /* the spelling people type on the command line */
        if (!strcmp(name, "add-to-cart"))
                return LOY_ACT_ADD_TO_CART;
        if (!strcmp(name, "remove-from-cart"))
                return LOY_ACT_REMOVE_FROM_CART;
        return -1;
}

/* Ids are printable, non-empty and without spaces, so they can be used in
 * Redis key names and shown in tools as they are. */
static int bad_id(const char *what, const char *id, int required, char *errstr,
                  size_t errstr_size) {
        size_t n = strlen(id);
        if (n == 0) {
                if (!required)
                        return 0;
                snprintf(errstr, errstr_size, "%s is missing or empty", what);
                return 1;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)id[i];
                if (ch <= ' ' || ch == 0x7f) {
                        snprintf(errstr, errstr_size,
                                 "%s has a blank or control character", what);
                        return 1;
                }
        }
        return 0;
}

/* A sku may hold blanks ("BANK CHARGES" in Online Retail) but no control
 * character: the recommendation history stores it in tab- and
 * newline-separated lines, where a tab in a sku would cut the customer's
 * history on its next load. */
static int bad_sku(const char *sku, char *what, char *errstr,
                   size_t errstr_size) {
        for (const char *p = sku; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch < ' ' || ch == 0x7f) {
                        snprintf(errstr, errstr_size,
                                 "%s has a control character (0x%02x)", what,
                                 ch);
                        return 1;
                }
        }
        return 0;
}

#define LOY_TS_MIN_MS 631152000000LL /* 1990-01-01 */

/* A time a tool or producer wrote: after 1990 and at most a day ahead. */
static int bad_time(const char *what, int64_t ms, int64_t now_ms, char *errstr,
                    size_t errstr_size) {
        if (ms < LOY_TS_MIN_MS) {
                snprintf(errstr, errstr_size,
                         "%s %lld ms is before 1990 (seconds instead "
                         "of milliseconds?)",
                         what, (long long)ms);
                return 1;
        }
        if (now_ms > 0 && ms > now_ms + 86400000LL) {
                snprintf(errstr, errstr_size,
                         "%s %lld ms is more than a day in the future", what,
                         (long long)ms);
                return 1;
        }
        return 0;
}

int loy_event_validate(const loy_event_t *ev, int64_t now_ms, char *errstr,
                       size_t errstr_size) {
        if (ev->kind == LOY_EV_FORGET)
                return bad_id("customer_id", ev->customer_id, 1, errstr,
                              errstr_size) ||
                               bad_time("forget_ms", ev->forget_ms, now_ms,
                                        errstr, errstr_size)
                           ? -1
                           : 0;
        if (ev->kind != LOY_EV_PURCHASE && ev->kind != LOY_EV_BROWSE) {
                snprintf(errstr, errstr_size, "unknown event kind %d",
                         (int)ev->kind);
                return -1;
        }
        if (bad_id("event_id", ev->event_id, 1, errstr, errstr_size) ||
            bad_id("customer_id", ev->customer_id, 1, errstr, errstr_size))
                return -1;
        if (bad_time("timestamp", ev->ts_ms, now_ms, errstr, errstr_size))
                return -1;
        if (ev->kind == LOY_EV_BROWSE) {
                if (bad_id("session_id", ev->session_id, 0, errstr,
                           errstr_size))
                        return -1;
                if ((int)ev->action < 0 || ev->action >= LOY_ACT__COUNT) {
                        snprintf(errstr, errstr_size, "unknown browse action");
                        return -1;
                }
                if (ev->action != LOY_ACT_SEARCH && !ev->sku[0]) {
                        snprintf(errstr, errstr_size,
                                 "browse action %s needs a sku",
                                 loy_browse_action_name(ev->action));
                        return -1;
                }
                if (bad_sku(ev->sku, "sku", errstr, errstr_size))
                        return -1;
                return 0;
        }
        if (bad_id("order_id", ev->order_id, 1, errstr, errstr_size))
                return -1;
        if (ev->nlines < 1) {
                snprintf(errstr, errstr_size, "purchase has no lines");
                return -1;
        }
        for (int i = 0; i < ev->nlines; i++) {
                const loy_line_t *l = &ev->lines[i];
                char what[32];
                if (!l->sku[0]) {
                        snprintf(errstr, errstr_size, "line %d has no sku", i);
                        return -1;
                }
                snprintf(what, sizeof(what), "line %d sku", i);
                if (bad_sku(l->sku, what, errstr, errstr_size))
                        return -1;
                if (!isfinite(l->unit_price) || l->unit_price < 0 ||
                    l->unit_price > 1e9) {
                        snprintf(errstr, errstr_size,
                                 "line %d unit_price %g is not a finite "
                                 "amount in [0, 1e9]",
                                 i, l->unit_price);
                        return -1;
                }
                if (l->quantity == 0) {
                        snprintf(errstr, errstr_size, "line %d has quantity 0",
                                 i);
                        return -1;
                }
        }
        return 0;
}
