/* The hostile input corpus (see hostile.h). */
#include "hostile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loy_codec.h"

/* splitmix64: the corpus depends on the seed only */
static uint64_t rnd(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static int rint_(uint64_t *s, int lo, int hi) {
        return lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------- growing buffer */

typedef struct sb {
        char *b;
        size_t n, cap;
} sb_t;

static void sb_put(sb_t *s, const void *p, size_t n) {
        if (s->n + n + 1 > s->cap) {
                size_t cap = (s->n + n + 1) * 2;
                char *nb = realloc(s->b, cap);
                if (!nb)
                        abort(); /* test scaffolding */
                s->b = nb;
                s->cap = cap;
        }
        memcpy(s->b + s->n, p, n);
        s->n += n;
        s->b[s->n] = '\0';
}

static void sb_printf(sb_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *s, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int n;
        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        sb_put(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void sb_repeat(sb_t *s, char c, size_t n) {
        char buf[4096];
        memset(buf, c, sizeof(buf));
        while (n) {
                size_t k = n < sizeof(buf) ? n : sizeof(buf);
                sb_put(s, buf, k);
                n -= k;
        }
}

/* ---------------------------------------------------------------- corpus */

const char *hx_customer(int i) {
        static char buf[32];
        snprintf(buf, sizeof(buf), "hx-good-%d", i);
        return buf;
}

static hx_msg_t *add(hx_corpus_t *c, int topic, int verdict, const char *cls) {
        hx_msg_t *m;
        if (c->n == c->cap) {
                hx_msg_t *nm;
                c->cap = c->cap ? c->cap * 2 : 256;
                nm = realloc(c->m, (size_t)c->cap * sizeof(*nm));
                if (!nm)
                        return NULL;
                c->m = nm;
        }
        m = &c->m[c->n++];
        memset(m, 0, sizeof(*m));
        m->topic = topic;
        m->verdict = verdict;
        m->cls = cls;
        m->cust = -1;
        m->partition = -1;
        m->offset = -1;
        return m;
}

static void set_key(hx_msg_t *m, const char *k, size_t n) {
        m->key = malloc(n + 1);
        memcpy(m->key, k, n);
        m->key[n] = '\0';
        m->klen = n;
}

static void set_val(hx_msg_t *m, const void *v, size_t n) {
        m->val = malloc(n ? n : 1);
        if (n)
                memcpy(m->val, v, n);
        m->len = n;
}

static void take_sb(hx_msg_t *m, sb_t *s) {
        m->val = s->b ? s->b : malloc(1);
        m->len = s->n;
        s->b = NULL;
        s->n = s->cap = 0;
}

/* A valid event of customer cid at time ts (purchase or browse). */
static void make_event(loy_event_t *ev, int browse, const char *cid,
                       const char *eid, int64_t ts, int action, uint64_t *rs) {
        loy_event_reset(ev);
        ev->kind = browse ? LOY_EV_BROWSE : LOY_EV_PURCHASE;
        snprintf(ev->event_id, sizeof(ev->event_id), "%s", eid);
        snprintf(ev->customer_id, sizeof(ev->customer_id), "%s", cid);
        ev->ts_ms = ts;
        if (!browse) {
                int nl = rint_(rs, 1, 4);
                snprintf(ev->order_id, sizeof(ev->order_id), "%s", eid);
                snprintf(ev->currency, sizeof(ev->currency), "GBP");
                snprintf(ev->channel, sizeof(ev->channel), "web");
                for (int i = 0; i < nl; i++) {
                        loy_line_t *l = loy_event_add_line(ev);
                        snprintf(l->sku, sizeof(l->sku), "HX%03d",
                                 rint_(rs, 0, 199));
                        l->quantity = rint_(rs, 1, 6);
                        l->unit_price = rint_(rs, 25, 2000) / 100.0;
                }
        } else {
                snprintf(ev->session_id, sizeof(ev->session_id), "s-%s", cid);
                ev->action = (loy_browse_action_t)action;
                if (action == LOY_ACT_SEARCH)
                        snprintf(ev->query, sizeof(ev->query), "red mug");
                else
                        snprintf(ev->sku, sizeof(ev->sku), "HX%03d",
                                 rint_(rs, 0, 199));
        }
}

static int encode(loy_codec_t *codec, const loy_event_t *ev, sb_t *out) {
        char err[256];
        size_t len;
        const void *b =
            loy_codec_encode_event(codec, ev, &len, err, sizeof(err));
        out->n = 0;
        if (!b)
                return -1;
        sb_put(out, b, len);
        return 0;
}

static void json_event(sb_t *s, int browse, const char *cid, const char *eid,
                       int64_t ts, int action) {
        if (browse)
                sb_printf(s,
                          "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                          "\"session_id\": \"s-%s\", \"ts\": %lld, "
                          "\"action\": \"%s\"%s}",
                          eid, cid, cid, (long long)ts,
                          loy_browse_action_name((loy_browse_action_t)action),
                          action == LOY_ACT_SEARCH ? ", \"query\": \"red mug\""
                                                   : ", \"sku\": \"HX007\"");
        else
                sb_printf(s,
                          "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                          "\"ts\": %lld, \"order_id\": \"%s\", \"currency\": "
                          "\"GBP\", \"channel\": \"web\", \"lines\": "
                          "[{\"sku\": \"HX001\", \"quantity\": 2, "
                          "\"unit_price\": 3.5}]}",
                          eid, cid, (long long)ts, eid);
}

/* The bad classes; each builds one message. */
enum {
        C_RANDOM,
        C_ZERO_GARBAGE,
        C_TRUNC_HEADER,
        C_TRUNC_AVRO,
        C_BITFLIP,
        C_SCHEMA_ID,
        C_CROSS_SCHEMA,
        C_TRAILING,
        C_JSON_TYPE,
        C_JSON_SYNTAX,
        C_JSON_HUGE,
        C_AVRO_NAN,
        C_DEEP,
        C_EMPTY,
        C_TOMBSTONE,
        C_NUL,
        C_CONTROL,
        C_UTF8_JSON,
        C_UTF8_AVRO,
        C_TS,
        C_LONG_ID,
        C_SEMANTIC,
        C__COUNT
};

static const char *const cls_name[C__COUNT] = {
    "random-bytes",
    "zero-garbage",
    "truncated-header",
    "truncated-avro",
    "bitflip-avro",
    "wrong-schema-id",
    "cross-schema-id",
    "trailing-bytes",
    "json-wrong-type",
    "json-syntax",
    "json-nan-huge",
    "avro-nan-huge",
    "deep-nesting",
    "empty-value",
    "tombstone",
    "nul-bytes",
    "control-bytes",
    "invalid-utf8-json",
    "invalid-utf8-avro-id",
    "bad-timestamp",
    "id-too-long",
    "semantic-invalid",
};

static void bad_key(hx_msg_t *m, uint64_t *rs) {
        char k[16];
        switch (rint_(rs, 0, 3)) {
        case 0:
                break; /* no key */
        case 1:
                set_key(m, "", 0);
                break;
        case 2: {
                const char *k = hx_customer(rint_(rs, 0, HX_CUSTOMERS - 1));
                set_key(m, k, strlen(k));
                break;
        }
        default:
                for (int i = 0; i < 8; i++)
                        k[i] = (char)rnd(rs);
                set_key(m, k, 8);
        }
}

static void build_bad(hx_corpus_t *c, loy_codec_t *codec, int cls, int seq,
                      int64_t ts, uint64_t *rs) {
        int topic = rint_(rs, 0, 1);
        int verdict = HX_BAD;
        loy_event_t ev;
        sb_t s = {0}, e = {0};
        char eid[64], cid[64];
        hx_msg_t *m;

        memset(&ev, 0, sizeof(ev));
        snprintf(eid, sizeof(eid), "hx-bad-%d", seq);
        snprintf(cid, sizeof(cid), "hx-mut-%d", seq);
        switch (cls) {
        case C_RANDOM: {
                int n = rint_(rs, 1, 300);
                for (int i = 0; i < n; i++) {
                        char b = (char)rnd(rs);
                        sb_put(&s, &b, 1);
                }
                while (s.b[0] == 0 || s.b[0] == '{' || s.b[0] == ' ' ||
                       s.b[0] == '\t' || s.b[0] == '\n' || s.b[0] == '\r')
                        s.b[0] = (char)rint_(rs, 0x80, 0xff);
                break;
        }
        case C_ZERO_GARBAGE: {
                int n = rint_(rs, 5, 200);
                sb_put(&s, "", 1);
                for (int i = 1; i < n; i++) {
                        char b = (char)rnd(rs);
                        sb_put(&s, &b, 1);
                }
                verdict = HX_AMBIG;
                break;
        }
        case C_TRUNC_HEADER:
                sb_put(&s, "\0\0\0\0", (size_t)rint_(rs, 1, 4));
                break;
        case C_TRUNC_AVRO:
                make_event(&ev, topic, cid, eid, ts, rint_(rs, 0, 4), rs);
                encode(codec, &ev, &e);
                sb_put(&s, e.b, (size_t)rint_(rs, 5, (int)e.n - 1));
                break;
        case C_BITFLIP: {
                int flips = rint_(rs, 1, 8);
                make_event(&ev, topic, cid, eid, ts, rint_(rs, 0, 4), rs);
                encode(codec, &ev, &s);
                for (int i = 0; i < flips; i++) {
                        size_t at = (size_t)rint_(rs, 5, (int)s.n - 1);
                        s.b[at] ^= (char)(1 << rint_(rs, 0, 7));
                }
                verdict = HX_AMBIG;
                break;
        }
        case C_SCHEMA_ID: {
                static const uint32_t ids[] = {0,  3,          7,
                                               99, 0x7fffffff, 0xffffffff};
                uint32_t id = ids[rint_(rs, 0, 5)];
                make_event(&ev, topic, cid, eid, ts, rint_(rs, 0, 4), rs);
                encode(codec, &ev, &s);
                s.b[1] = (char)(id >> 24);
                s.b[2] = (char)(id >> 16);
                s.b[3] = (char)(id >> 8);
                s.b[4] = (char)id;
                break;
        }
        case C_CROSS_SCHEMA:
                /* a purchase on the browse topic and vice versa, each with
                 * its own (correct) schema id */
                make_event(&ev, !topic, cid, eid, ts, rint_(rs, 0, 4), rs);
                encode(codec, &ev, &s);
                break;
        case C_TRAILING: {
                int n = rint_(rs, 1, 10);
                make_event(&ev, topic, cid, eid, ts, rint_(rs, 0, 4), rs);
                encode(codec, &ev, &s);
                for (int i = 0; i < n; i++) {
                        char b = (char)rnd(rs);
                        sb_put(&s, &b, 1);
                }
                break;
        }
        case C_JSON_TYPE: {
                static const char *const t[] = {
                    "{\"event_id\": \"%s\", \"customer_id\": 42, \"ts\": "
                    "%lld, \"order_id\": \"o\", \"lines\": [{\"sku\": "
                    "\"A\", \"quantity\": 1, \"unit_price\": 1}]}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"c\", "
                    "\"ts\": \"%lld\", \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"A\", \"quantity\": 1, \"unit_price\": "
                    "1}]}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"c\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "{\"sku\": \"A\"}}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"c\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"A\", \"quantity\": \"two\", "
                    "\"unit_price\": 1}]}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"c\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"A\", \"quantity\": 1, \"unit_price\": "
                    "true}]}",
                    "{\"event_id\": [\"%s\"], \"customer_id\": \"c\", "
                    "\"ts\": %lld, \"session_id\": \"s\", \"action\": "
                    "\"view\", \"sku\": \"A\"}",
                    "{\"event_id\": \"%s\", \"customer_id\": null, "
                    "\"ts\": %lld, \"session_id\": \"s\", \"action\": "
                    "\"view\", \"sku\": \"A\"}",
                    "[\"%s\", %lld]",
                };
                sb_printf(&s, t[rint_(rs, 0, 7)], eid, (long long)ts);
                break;
        }
        case C_JSON_SYNTAX:
                json_event(&e, topic, cid, eid, ts, rint_(rs, 0, 4));
                sb_put(&s, e.b, (size_t)rint_(rs, 1, (int)e.n - 1));
                break;
        case C_JSON_HUGE: {
                static const char *const t[] = {
                    "\"quantity\": 1, \"unit_price\": 1e400",
                    "\"quantity\": 1, \"unit_price\": NaN",
                    "\"quantity\": 1, \"unit_price\": -1",
                    "\"quantity\": 1, \"unit_price\": 1e300",
                    "\"quantity\": 1, \"unit_price\": Infinity",
                    "\"quantity\": 99999999999, \"unit_price\": 1",
                    "\"quantity\": -99999999999, \"unit_price\": 1",
                };
                sb_printf(&s,
                          "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                          "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                          "[{\"sku\": \"A\", %s}]}",
                          eid, cid, (long long)ts, t[rint_(rs, 0, 6)]);
                topic = 0;
                break;
        }
        case C_AVRO_NAN: {
                static const double v[] = {NAN, INFINITY, -INFINITY, 1e300,
                                           -5.0};
                make_event(&ev, 0, cid, eid, ts, 0, rs);
                ev.lines[rint_(rs, 0, ev.nlines - 1)].unit_price =
                    v[rint_(rs, 0, 4)];
                encode(codec, &ev, &s);
                topic = 0;
                break;
        }
        case C_DEEP: {
                int depth = rint_(rs, 0, 1) ? 100000 : 3000;
                if (rint_(rs, 0, 1)) {
                        sb_printf(&s,
                                  "{\"event_id\": \"%s\", "
                                  "\"customer_id\": ",
                                  eid);
                        sb_repeat(&s, '[', (size_t)depth);
                        sb_repeat(&s, ']', (size_t)depth);
                        sb_printf(&s,
                                  ", \"ts\": %lld, \"session_id\": "
                                  "\"s\", \"action\": \"view\", \"sku\": "
                                  "\"A\"}",
                                  (long long)ts);
                } else {
                        sb_repeat(&s, '[', (size_t)depth);
                        sb_repeat(&s, ']', (size_t)depth);
                        s.b[0] = '{'; /* '{[[[...]]]' : deep and broken */
                }
                break;
        }
        case C_EMPTY:
                set_val(m = add(c, topic, HX_BAD, cls_name[cls]), "", 0);
                bad_key(m, rs);
                c->bad++;
                goto done;
        case C_TOMBSTONE:
                m = add(c, topic, HX_BAD, cls_name[cls]);
                set_key(m, hx_customer(0), strlen(hx_customer(0)));
                c->bad++;
                goto done;
        case C_NUL:
                if (rint_(rs, 0, 1)) {
                        sb_printf(&s,
                                  "{\"event_id\": \"%s\", "
                                  "\"customer_id\": \"ab\\u0000cd\", \"ts\": "
                                  "%lld, \"session_id\": \"s\", \"action\": "
                                  "\"view\", \"sku\": \"A\"}",
                                  eid, (long long)ts);
                } else {
                        json_event(&s, topic, cid, eid, ts, 0);
                        s.b[rint_(rs, 1, (int)s.n - 2)] = '\0';
                }
                break;
        case C_CONTROL:
                if (rint_(rs, 0, 1)) {
                        char bad[16];
                        snprintf(bad, sizeof(bad), "ab%ccd",
                                 (char)rint_(rs, 1, 31));
                        make_event(&ev, topic, bad, eid, ts, 0, rs);
                        encode(codec, &ev, &s);
                } else {
                        json_event(&s, topic, "ab\001cd", eid, ts, 0);
                }
                break;
        case C_UTF8_JSON:
                json_event(&s, topic,
                           "ab\xff\xfe"
                           "cd",
                           eid, ts, 0);
                break;
        case C_UTF8_AVRO:
                make_event(&ev, topic, "hx-\xc3\x28-\xff", eid, ts, 0, rs);
                encode(codec, &ev, &s);
                break;
        case C_TS: {
                time_t now = time(NULL);
                int64_t bad = rint_(rs, 0, 1)
                                  ? (int64_t)now * 1000 + 3 * 86400000LL
                                  : 1291191960LL; /* seconds, not ms */
                make_event(&ev, topic, cid, eid, bad, 0, rs);
                encode(codec, &ev, &s);
                break;
        }
        case C_LONG_ID: {
                sb_printf(&s, "{\"event_id\": \"%s\", \"customer_id\": \"",
                          eid);
                sb_repeat(&s, 'x', (size_t)rint_(rs, 65, 400));
                sb_printf(&s,
                          "\", \"ts\": %lld, \"session_id\": \"s\", "
                          "\"action\": \"view\", \"sku\": \"A\"}",
                          (long long)ts);
                topic = 1;
                break;
        }
        case C_SEMANTIC: {
                static const char *const t[] = {
                    "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": []}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"A\", \"quantity\": 0, \"unit_price\": "
                    "1}]}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"\", \"quantity\": 1, \"unit_price\": "
                    "1}]}",
                    "{\"event_id\": \"\", \"customer_id\": \"%s%s\", "
                    "\"ts\": %lld, \"order_id\": \"o\", \"lines\": "
                    "[{\"sku\": \"A\", \"quantity\": 1, \"unit_price\": "
                    "1}]}",
                };
                static const char *const tb[] = {
                    "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                    "\"ts\": %lld, \"session_id\": \"s\", \"action\": "
                    "\"buy\", \"sku\": \"A\"}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"%s\", "
                    "\"ts\": %lld, \"session_id\": \"s\", \"action\": "
                    "\"view\"}",
                    "{\"event_id\": \"%s\", \"customer_id\": \"c d\", "
                    "\"ts\": %lld%s, \"session_id\": \"s\", \"action\": "
                    "\"view\", \"sku\": \"A\"}",
                };
                int i = rint_(rs, 0, 3);
                if (!topic) {
                        if (i == 3)
                                sb_printf(&s, t[3], "", cid, (long long)ts);
                        else
                                sb_printf(&s, t[i], eid, cid, (long long)ts);
                } else {
                        i %= 3;
                        if (i == 2)
                                sb_printf(&s, tb[2], eid, (long long)ts, "");
                        else
                                sb_printf(&s, tb[i], eid, cid, (long long)ts);
                }
                break;
        }
        }
        m = add(c, topic, verdict, cls_name[cls]);
        take_sb(m, &s);
        bad_key(m, rs);
        if (verdict == HX_AMBIG)
                c->ambig++;
        else
                c->bad++;
done:
        free(s.b);
        free(e.b);
        loy_event_free(&ev);
}

/* A big message: a JSON browse whose customer id is far too long, or
 * random bytes; both must be dead-lettered. */
static void build_big(hx_corpus_t *c, size_t size, int seq, uint64_t *rs) {
        hx_msg_t *m = add(c, seq % 2, HX_BAD,
                          seq % 2 ? "big-random" : "big-json-long-id");
        sb_t s = {0};
        if (seq % 2) {
                sb_repeat(&s, 'Z', size);
                for (size_t i = 0; i < size; i += 7)
                        s.b[i] = (char)(0x80 | (rnd(rs) & 0x7f));
        } else {
                sb_printf(&s,
                          "{\"event_id\": \"hx-big-%d\", "
                          "\"customer_id\": \"",
                          seq);
                sb_repeat(&s, 'x', size > 200 ? size - 200 : 1);
                sb_printf(&s, "\", \"ts\": 1293840000000, \"session_id\": "
                              "\"s\", \"action\": \"view\", \"sku\": \"A\"}");
        }
        take_sb(m, &s);
        set_key(m, hx_customer(seq % HX_CUSTOMERS),
                strlen(hx_customer(seq % HX_CUSTOMERS)));
        c->bad++;
}

int hx_generate(hx_corpus_t *c, uint64_t seed, int ngood, int nbad,
                const size_t *big) {
        char err[256];
        loy_codec_t *codec = loy_codec_create(NULL, err, sizeof(err));
        uint64_t rs = seed ^ 0x686f7374696c65ULL;
        /* slot kinds: -1 good, >= 0 bad class, -2 - i big[i] */
        int nbig = 0, total, *slot;
        int64_t ts = 1293840000000LL; /* 2011-01-01 */
        loy_event_t ev;
        sb_t s = {0};

        memset(c, 0, sizeof(*c));
        if (!codec)
                return -1;
        while (big && big[nbig])
                nbig++;
        total = ngood + nbad + nbig;
        slot = malloc((size_t)total * sizeof(*slot));
        if (!slot) {
                loy_codec_destroy(codec);
                return -1;
        }
        for (int i = 0; i < ngood; i++)
                slot[i] = -1;
        for (int i = 0; i < nbad; i++)
                slot[ngood + i] = i < C__COUNT ? i : (int)(rnd(&rs) % C__COUNT);
        for (int i = 0; i < nbig; i++)
                slot[ngood + nbad + i] = -2 - i;
        for (int i = total - 1; i > 0; i--) {
                int j = (int)(rnd(&rs) % (uint64_t)(i + 1)), t = slot[i];
                slot[i] = slot[j];
                slot[j] = t;
        }
        memset(&ev, 0, sizeof(ev));
        for (int i = 0; i < total; i++) {
                ts += 60000;
                if (slot[i] >= 0) {
                        build_bad(c, codec, slot[i], i, ts, &rs);
                } else if (slot[i] <= -2) {
                        build_big(c, big[-2 - slot[i]], -2 - slot[i], &rs);
                } else {
                        int browse = rint_(&rs, 0, 2) == 0;
                        int cust = rint_(&rs, 0, HX_CUSTOMERS - 1);
                        int action = rint_(&rs, 0, 4);
                        int json = rint_(&rs, 0, 3) == 0;
                        char eid[64];
                        hx_msg_t *m;
                        snprintf(eid, sizeof(eid), "hx-ev-%d", i);
                        s.n = 0;
                        if (json) {
                                json_event(&s, browse, hx_customer(cust), eid,
                                           ts, action);
                        } else {
                                make_event(&ev, browse, hx_customer(cust), eid,
                                           ts, action, &rs);
                                if (encode(codec, &ev, &s))
                                        continue;
                        }
                        m = add(c, browse, HX_GOOD,
                                json ? "good-json" : "good-avro");
                        set_val(m, s.b, s.n);
                        set_key(m, hx_customer(cust),
                                strlen(hx_customer(cust)));
                        m->cust = cust;
                        m->action = browse ? action : -1;
                        if (browse)
                                c->browse[cust][action]++;
                        else
                                c->purchases[cust]++;
                        c->good++;
                }
        }
        free(s.b);
        free(slot);
        loy_event_free(&ev);
        loy_codec_destroy(codec);
        return 0;
}

void hx_free(hx_corpus_t *c) {
        for (int i = 0; i < c->n; i++) {
                free(c->m[i].key);
                free(c->m[i].val);
        }
        free(c->m);
        memset(c, 0, sizeof(*c));
}
