/* loy_pack: see loy_pack.h. */
#include "loy_pack.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "loy_rfm.h"

typedef struct wbuf {
        unsigned char *p;
        size_t len, size;
        int full;
} wbuf_t;

static void put(wbuf_t *w, const void *src, size_t n) {
        if (w->full || n > w->size - w->len) {
                w->full = 1;
                return;
        }
        memcpy(w->p + w->len, src, n);
        w->len += n;
}

static void put_uvar(wbuf_t *w, uint64_t v) {
        unsigned char b[10];
        size_t n = 0;
        do {
                b[n] = (unsigned char)(v & 0x7f);
                v >>= 7;
                if (v)
                        b[n] |= 0x80;
                n++;
        } while (v);
        put(w, b, n);
}

static void put_svar(wbuf_t *w, int64_t v) {
        put_uvar(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_u64(wbuf_t *w, uint64_t u) {
        unsigned char b[8];
        for (int i = 0; i < 8; i++)
                b[i] = (unsigned char)(u >> (8 * i));
        put(w, b, 8);
}

static void put_dbl(wbuf_t *w, double d) {
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        put_u64(w, u);
}

#define AT_C(c, f, type) ((const type *)((const char *)(c) + (f)->offset))
#define AT(c, f, type) ((type *)((char *)(c) + (f)->offset))

/* The body: slots, then fields. */
static void put_body(wbuf_t *w0, const loy_cust_t *c) {
        wbuf_t w = *w0;
        uint64_t nfields = 0;

        put_uvar(&w, (uint64_t)c->nslots);
        for (int i = 0; i < c->nslots; i++) {
                size_t n = strlen(c->slots[i].name);
                put_uvar(&w, n);
                put(&w, c->slots[i].name, n);
                put_svar(&w, c->slots[i].value);
        }
        for (const loy_field_t *f = loy_feat_fields; f->name; f++)
                nfields += f->type != LOY_FT_DERIVED;
        put_uvar(&w, nfields);
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                switch (f->type) {
                case LOY_FT_I64:
                        put_svar(&w, *AT_C(c, f, int64_t));
                        break;
                case LOY_FT_INT:
                        put_svar(&w, *AT_C(c, f, int));
                        break;
                case LOY_FT_DBL:
                        put_dbl(&w, *AT_C(c, f, double));
                        break;
                case LOY_FT_STR: {
                        int nv = 0;
                        while (nv < LOY_RECENT_VIEWS && c->recent_views[nv][0])
                                nv++;
                        put_uvar(&w, (uint64_t)nv);
                        for (int i = 0; i < nv; i++) {
                                size_t n = strlen(c->recent_views[i]);
                                put_uvar(&w, n);
                                put(&w, c->recent_views[i], n);
                        }
                        break;
                }
                case LOY_FT_KEYS: {
                        const loy_event_keys_t *k =
                            AT_C(c, f, loy_event_keys_t);
                        put_uvar(&w, (uint64_t)k->n);
                        for (int i = 0; i < k->n; i++)
                                put_u64(&w, k->key[i]);
                        break;
                }
                case LOY_FT_DERIVED:
                        break;
                }
        }
        *w0 = w;
}

int loy_pack_cust(const loy_cust_t *c, unsigned char *buf, size_t size) {
        unsigned char body[LOY_PACK_MAX];
        wbuf_t b = {body, 0, sizeof(body), 0};
        wbuf_t w = {buf, 0, size, 0};
        unsigned char version = LOY_PACK_VERSION;
        put_body(&b, c);
        if (b.full)
                return -1;
        put(&w, &version, 1);
        put_uvar(&w, b.len);
        put(&w, body, b.len);
        return w.full || w.len > (size_t)LOY_PACK_CHUNK * LOY_PACK_CHUNKS_MAX
                   ? -1
                   : (int)w.len;
}

void loy_pack_chunk_name(int i, char *name) {
        snprintf(name, 8, "e%d", i);
}

int loy_pack_chunk_of(const char *name) {
        int i = 0;
        if (name[0] != 'e' || !name[1] || (name[1] == '0' && name[2]))
                return -1;
        for (const char *q = name + 1; *q; q++) {
                if (*q < '0' || *q > '9' || i >= LOY_PACK_CHUNKS_MAX)
                        return -1;
                i = i * 10 + (*q - '0');
        }
        return i < LOY_PACK_CHUNKS_MAX ? i : -1;
}

typedef struct rbuf {
        const unsigned char *p;
        size_t len, at;
        int bad;
} rbuf_t;

static const unsigned char *take(rbuf_t *r, size_t n) {
        const unsigned char *q;
        if (r->bad || n > r->len - r->at) {
                r->bad = 1;
                return NULL;
        }
        q = r->p + r->at;
        r->at += n;
        return q;
}

static uint64_t get_uvar(rbuf_t *r) {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                const unsigned char *b = take(r, 1);
                if (!b)
                        return 0;
                v |= (uint64_t)(*b & 0x7f) << shift;
                if (!(*b & 0x80))
                        return v;
        }
        r->bad = 1;
        return 0;
}

static int64_t get_svar(rbuf_t *r) {
        uint64_t u = get_uvar(r);
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static uint64_t get_u64(rbuf_t *r) {
        const unsigned char *b = take(r, 8);
        uint64_t u = 0;
        if (!b)
                return 0;
        for (int i = 0; i < 8; i++)
                u |= (uint64_t)b[i] << (8 * i);
        return u;
}

static double get_dbl(rbuf_t *r) {
        uint64_t u = get_u64(r);
        double d;
        memcpy(&d, &u, sizeof(d));
        return d;
}

static int get_keys(rbuf_t *r, loy_event_keys_t *k) {
        uint64_t n = get_uvar(r);
        if (n > LOY_RECENT_EVENTS)
                return -1;
        k->n = (int)n;
        for (int i = 0; i < k->n; i++)
                k->key[i] = get_u64(r);
        return r->bad ? -1 : 0;
}

/* An int field's value within what the engine can hold; the small enums
 * within their range, so a damaged string cannot index past a table. */
static int int_ok(const loy_field_t *f, int64_t v) {
        if (v < INT32_MIN || v > INT32_MAX)
                return 0;
        if (f->offset == offsetof(loy_cust_t, segment))
                return v >= 0 && v < LOY_SEG__COUNT;
        if (f->offset == offsetof(loy_cust_t, tier))
                return v >= 0 && v <= 2;
        if (f->offset == offsetof(loy_cust_t, loyalty_group))
                return v >= 0 && v <= 3;
        return 1;
}

static int get_views(rbuf_t *r, loy_cust_t *c) {
        uint64_t nv = get_uvar(r);
        if (nv > LOY_RECENT_VIEWS)
                return -1;
        for (uint64_t i = 0; i < nv; i++) {
                uint64_t n = get_uvar(r);
                const unsigned char *s;
                if (n == 0 || n > LOY_SKU_MAX || !(s = take(r, (size_t)n)) ||
                    memchr(s, '\0', (size_t)n))
                        return -1;
                memcpy(c->recent_views[i], s, (size_t)n);
                c->recent_views[i][n] = '\0';
        }
        return r->bad ? -1 : 0;
}

long loy_pack_length(const void *buf, size_t len) {
        rbuf_t r = {buf, len, 0, 0};
        const unsigned char *v = take(&r, 1);
        uint64_t body;
        if (!v || *v != LOY_PACK_VERSION)
                return -1;
        body = get_uvar(&r);
        if (r.bad || body > (uint64_t)LOY_PACK_CHUNK * LOY_PACK_CHUNKS_MAX)
                return -1;
        return (long)(r.at + body);
}

int loy_pack_unpack(loy_cust_t *c, const void *buf, size_t len) {
        rbuf_t r = {buf, len, 0, 0};
        const unsigned char *v = take(&r, 1);
        uint64_t body, nslots, nfields, k = 0;

        if (!v || *v != LOY_PACK_VERSION)
                return -1;
        body = get_uvar(&r);
        if (r.bad || body > len - r.at)
                return -1;
        r.len = r.at + (size_t)body;
        nslots = get_uvar(&r);
        if (nslots > LOY_SLOTS_MAX)
                return -1;
        for (uint64_t i = 0; i < nslots; i++) {
                uint64_t n = get_uvar(&r);
                const unsigned char *name;
                char tmp[LOY_SLOT_NAME_MAX];
                int64_t value;
                if (n == 0 || n >= LOY_SLOT_NAME_MAX ||
                    !(name = take(&r, (size_t)n)) ||
                    memchr(name, '\0', (size_t)n))
                        return -1;
                memcpy(tmp, name, (size_t)n);
                tmp[n] = '\0';
                value = get_svar(&r);
                if (r.bad || loy_feat_slot_set(c, tmp, value))
                        return -1;
        }
        nfields = get_uvar(&r);
        for (const loy_field_t *f = loy_feat_fields;
             f->name && k < nfields && !r.bad; f++) {
                int64_t x;
                switch (f->type) {
                case LOY_FT_I64:
                        *AT(c, f, int64_t) = get_svar(&r);
                        break;
                case LOY_FT_INT:
                        x = get_svar(&r);
                        if (!int_ok(f, x))
                                return -1;
                        *AT(c, f, int) = (int)x;
                        break;
                case LOY_FT_DBL:
                        *AT(c, f, double) = get_dbl(&r);
                        break;
                case LOY_FT_STR:
                        if (get_views(&r, c))
                                return -1;
                        break;
                case LOY_FT_KEYS:
                        if (get_keys(&r, AT(c, f, loy_event_keys_t)))
                                return -1;
                        break;
                case LOY_FT_DERIVED:
                        continue;
                }
                k++;
        }
        if (r.bad)
                return -1;
        /* k < nfields: a newer version's fields follow, left alone;
         * otherwise nothing may follow */
        return k == nfields && r.at != r.len ? -1 : 0;
}

int loy_pack_from_hash(loy_cust_t *c, const char *const *fields,
                       const char *const *values, const size_t *lens, size_t n,
                       const char **bad) {
        int chunk[LOY_PACK_CHUNKS_MAX];
        int have = 0;
        *bad = NULL;
        for (int i = 0; i < LOY_PACK_CHUNKS_MAX; i++)
                chunk[i] = -1;
        for (size_t i = 0; i < n; i++) {
                int k = loy_pack_chunk_of(fields[i]);
                if (k >= 0 && lens[i] <= LOY_PACK_CHUNK) {
                        chunk[k] = (int)i;
                        have = 1;
                } else if (k >= 0) {
                        *bad = fields[i];
                        return -1;
                }
        }
        if (have) {
                unsigned char buf[LOY_PACK_CHUNK * LOY_PACK_CHUNKS_MAX];
                size_t len = 0;
                /* the chunks in order, up to the first one missing; the
                 * length inside says how much of it is the string */
                for (int k = 0; k < LOY_PACK_CHUNKS_MAX && chunk[k] >= 0; k++) {
                        memcpy(buf + len, values[chunk[k]], lens[chunk[k]]);
                        len += lens[chunk[k]];
                }
                if (loy_pack_unpack(c, buf, len)) {
                        *bad = "e0";
                        return -1;
                }
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                if (loy_feat_field_parse(c, fields[i], values[i], lens[i])) {
                        *bad = fields[i];
                        return -1;
                }
        return 0;
}
