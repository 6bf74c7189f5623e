/* loy_source: see loy_source.h. */
#include "loy_source.h"

#include "../features/loy_date.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define SRC_CHUNK (256 * 1024)     /* read buffer */
#define SRC_RECORD_MAX (64 * 1024) /* a longer record is malformed */
#define SRC_FIELDS_MAX 32

/* ------------------------------------------------------------------------
 * Interned strings: a file repeats a few thousand skus, customers and
 * countries hundreds of thousands of times, so rows hold 32-bit ids.
 * ------------------------------------------------------------------------ */

typedef struct strpool {
        char *chars; /* NUL-terminated strings back to back */
        size_t len, cap;
        uint32_t *offs;   /* id -> offset in chars */
        uint32_t *hashes; /* id -> hash, so growing needs no rehash */
        uint32_t n, ncap;
        uint32_t *slots; /* open addressing: id + 1, 0 = empty */
        uint32_t nslots;
} strpool_t;

static uint32_t str_hash(const char *s, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 16777619u;
        }
        return h;
}

static int pool_grow_slots(strpool_t *p) {
        uint32_t ns = p->nslots ? p->nslots * 2 : 256;
        uint32_t *sl = calloc(ns, sizeof(*sl));
        if (!sl)
                return -1;
        for (uint32_t i = 0; i < p->n; i++) {
                uint32_t h = p->hashes[i] & (ns - 1);
                while (sl[h])
                        h = (h + 1) & (ns - 1);
                sl[h] = i + 1;
        }
        free(p->slots);
        p->slots = sl;
        p->nslots = ns;
        return 0;
}

/* Finds or adds s[0..n) and returns its id in *id. 0 or -1 (no memory). */
static int pool_intern(strpool_t *p, const char *s, size_t n, uint32_t *id) {
        uint32_t hash = str_hash(s, n), h;

        if (((size_t)p->n + 1) * 2 > p->nslots && pool_grow_slots(p))
                return -1;
        h = hash & (p->nslots - 1);
        while (p->slots[h]) {
                uint32_t i = p->slots[h] - 1;
                const char *t = p->chars + p->offs[i];
                if (p->hashes[i] == hash && !memcmp(t, s, n) && !t[n]) {
                        *id = i;
                        return 0;
                }
                h = (h + 1) & (p->nslots - 1);
        }
        if (p->len + n + 1 > p->cap) {
                size_t cap = p->cap ? p->cap * 2 : 4096;
                char *c;
                while (cap < p->len + n + 1)
                        cap *= 2;
                if (cap > UINT32_MAX)
                        return -1;
                c = realloc(p->chars, cap);
                if (!c)
                        return -1;
                p->chars = c;
                p->cap = cap;
        }
        if (p->n == p->ncap) {
                uint32_t cap = p->ncap ? p->ncap * 2 : 256;
                uint32_t *o = realloc(p->offs, cap * sizeof(*o));
                uint32_t *hs;
                if (!o)
                        return -1;
                p->offs = o;
                hs = realloc(p->hashes, cap * sizeof(*hs));
                if (!hs)
                        return -1;
                p->hashes = hs;
                p->ncap = cap;
        }
        memcpy(p->chars + p->len, s, n);
        p->chars[p->len + n] = '\0';
        p->offs[p->n] = (uint32_t)p->len;
        p->hashes[p->n] = hash;
        p->len += n + 1;
        p->slots[h] = p->n + 1;
        *id = p->n++;
        return 0;
}

static const char *pool_str(const strpool_t *p, uint32_t id) {
        return p->chars + p->offs[id];
}

static void pool_free(strpool_t *p) {
        free(p->chars);
        free(p->offs);
        free(p->hashes);
        free(p->slots);
        memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------------------
 * The loaded file
 * ------------------------------------------------------------------------ */

typedef struct src_line {
        uint32_t ev;  /* owning event, before the events are sorted */
        uint32_t sku; /* id in skus */
        uint32_t cat; /* id in skus ("" for every format today) */
        int32_t qty;
        double price;
} src_line_t;

typedef struct src_ev {
        int64_t ts_ms;
        uint32_t cust;  /* id in custs */
        uint32_t order; /* id in orders, or the line number (CDNOW,
                         * generic) */
        uint32_t chan;  /* id in chans */
        uint32_t first; /* lines[first .. first + nlines) */
        uint32_t nlines;
        uint32_t seq; /* order of first appearance: ties in time */
        uint8_t is_return;
} src_ev_t;

struct loy_source {
        loy_source_format_t fmt;
        strpool_t skus, custs, orders, chans;
        src_ev_t *evs;
        size_t nev, evcap;
        src_line_t *lines;
        size_t nlines, linecap;
        size_t next;
        uint32_t sku_cd, sku_item;
        uint32_t empty; /* "": id 0 in both skus and chans */
        loy_source_stats_t st;
};

static src_ev_t *src_add_event(loy_source_t *src) {
        src_ev_t *e;
        if (src->nev == src->evcap) {
                size_t cap = src->evcap ? src->evcap * 2 : 1024;
                src_ev_t *ne = realloc(src->evs, cap * sizeof(*ne));
                if (!ne)
                        return NULL;
                src->evs = ne;
                src->evcap = cap;
        }
        if (src->nev >= UINT32_MAX)
                return NULL;
        e = &src->evs[src->nev];
        memset(e, 0, sizeof(*e));
        e->seq = (uint32_t)src->nev++;
        return e;
}

static src_line_t *src_add_line(loy_source_t *src) {
        if (src->nlines == src->linecap) {
                size_t cap = src->linecap ? src->linecap * 2 : 4096;
                src_line_t *nl = realloc(src->lines, cap * sizeof(*nl));
                if (!nl)
                        return NULL;
                src->lines = nl;
                src->linecap = cap;
        }
        if (src->nlines >= UINT32_MAX)
                return NULL;
        return &src->lines[src->nlines++];
}

/* ------------------------------------------------------------------------
 * Record reader: gzip or plain text, RFC 4180 CSV or whitespace-separated.
 * A record is found whole in the buffer first (quoted fields may hold
 * newlines), then split in place, so fields point into the buffer until the
 * next call.
 * ------------------------------------------------------------------------ */

typedef struct reader {
        gzFile gz;
        const char *path;
        char *buf;
        size_t len, pos, cap;
        int eof;
        int64_t lineno; /* line number of the next record */
} reader_t;

static int rd_fill(reader_t *r, char *errstr, size_t errstr_size) {
        int n, zerr;
        const char *msg;

        if (r->pos) {
                memmove(r->buf, r->buf + r->pos, r->len - r->pos);
                r->len -= r->pos;
                r->pos = 0;
        }
        if (r->eof)
                return 0;
        /* one spare byte: the last field's terminator may land at len */
        n = gzread(r->gz, r->buf + r->len, (unsigned)(r->cap - r->len - 1));
        if (n < 0) {
                msg = gzerror(r->gz, &zerr);
                snprintf(errstr, errstr_size, "%s: read error: %s", r->path,
                         zerr == Z_ERRNO ? strerror(errno) : msg);
                return -1;
        }
        if (n == 0) {
                /* a truncated gzip file ends without an error from gzread */
                msg = gzerror(r->gz, &zerr);
                if (zerr != Z_OK && zerr != Z_STREAM_END) {
                        snprintf(errstr, errstr_size, "%s: read error: %s",
                                 r->path, msg);
                        return -1;
                }
                r->eof = 1;
        }
        r->len += (size_t)n;
        return n;
}

/* The state machine of csv_split(), only looking for the record's end.
 * 1 with *end at its '\n', 0 when the buffer ends first. */
static int csv_scan(const char *b, size_t i, size_t len, size_t *end) {
        int st = 0; /* 0 field start, 1 unquoted, 2 quoted, 3 '"' in quoted */

        for (; i < len; i++) {
                char c = b[i];
                switch (st) {
                case 0:
                case 1:
                        if (c == '\n') {
                                *end = i;
                                return 1;
                        }
                        if (c == ',')
                                st = 0;
                        else if (c == '"' && st == 0)
                                st = 2;
                        else
                                st = 1;
                        break;
                case 2:
                        if (c == '"')
                                st = 3;
                        break;
                default:
                        if (c == '"')
                                st = 2;
                        else if (c == ',')
                                st = 0;
                        else if (c == '\n') {
                                *end = i;
                                return 1;
                        } else
                                st = 1;
                        break;
                }
        }
        return 0;
}

/* Splits s[0..e) in place; "" is a quote inside a quoted field, text after
 * a closing quote is kept. Returns the field count or -1 (too many). */
static int csv_split(char *s, char *e, char **f, int maxf) {
        char *w = s, *r = s;
        int nf = 0;

        for (;;) {
                if (nf == maxf)
                        return -1;
                f[nf++] = w;
                if (r < e && *r == '"') {
                        r++;
                        while (r < e) {
                                if (*r == '"') {
                                        if (r + 1 < e && r[1] == '"') {
                                                *w++ = '"';
                                                r += 2;
                                                continue;
                                        }
                                        r++;
                                        break;
                                }
                                *w++ = *r++;
                        }
                }
                while (r < e && *r != ',')
                        *w++ = *r++;
                *w++ = '\0';
                if (r >= e)
                        return nf;
                r++;
        }
}

static int is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

static int ws_split(char *s, char *e, char **f, int maxf) {
        char *r = s;
        int nf = 0;

        for (;;) {
                while (r < e && is_blank(*r))
                        r++;
                if (r >= e)
                        return nf;
                if (nf == maxf)
                        return -1;
                f[nf++] = r;
                while (r < e && !is_blank(*r))
                        r++;
                *r = '\0';
                if (r < e)
                        r++;
        }
}

enum { RD_END = 0, RD_OK = 1, RD_ERR = -1, RD_BAD = 2 };

/* Reads the next record into f / *nf; *line is its first line's number.
 * RD_OK, RD_END, RD_ERR (errstr set) or RD_BAD: a record too long or with
 * too many fields, already skipped. Blank lines give *nf == 0. */
static int rd_record(reader_t *r, int csv, char **f, int *nf, int64_t *line,
                     char *errstr, size_t errstr_size) {
        size_t end;
        char *s, *e;
        int found;

        for (;;) {
                if (csv)
                        found = csv_scan(r->buf, r->pos, r->len, &end);
                else {
                        char *nl =
                            memchr(r->buf + r->pos, '\n', r->len - r->pos);
                        found = nl != NULL;
                        if (nl)
                                end = (size_t)(nl - r->buf);
                }
                if (found)
                        break;
                if (r->len - r->pos > SRC_RECORD_MAX) {
                        /* Runaway quote or binary junk: drop one raw line
                         * so the rest of the file still reads. */
                        *line = r->lineno++;
                        for (;;) {
                                char *nl = memchr(r->buf + r->pos, '\n',
                                                  r->len - r->pos);
                                if (nl) {
                                        r->pos = (size_t)(nl - r->buf) + 1;
                                        return RD_BAD;
                                }
                                r->pos = r->len;
                                if (rd_fill(r, errstr, errstr_size) < 0)
                                        return RD_ERR;
                                if (r->eof && r->len == 0)
                                        return RD_BAD;
                        }
                }
                if (r->eof) {
                        if (r->pos == r->len)
                                return RD_END;
                        end = r->len; /* last line without a newline */
                        break;
                }
                if (rd_fill(r, errstr, errstr_size) < 0)
                        return RD_ERR;
        }

        s = r->buf + r->pos;
        e = r->buf + end;
        *line = r->lineno++;
        if (csv) {
                for (char *p = memchr(s, '\n', (size_t)(e - s)); p;
                     p = memchr(p + 1, '\n', (size_t)(e - p - 1)))
                        r->lineno++;
        }
        r->pos = end < r->len ? end + 1 : r->len;
        if (e > s && e[-1] == '\r')
                e--;
        if (e == s) {
                *nf = 0;
                return RD_OK;
        }
        *nf = csv ? csv_split(s, e, f, SRC_FIELDS_MAX)
                  : ws_split(s, e, f, SRC_FIELDS_MAX);
        return *nf < 0 ? RD_BAD : RD_OK;
}

/* ------------------------------------------------------------------------
 * Field parsing
 * ------------------------------------------------------------------------ */

static char *trim(char *s) {
        size_t n;
        while (*s == ' ' || *s == '\t')
                s++;
        n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                s[--n] = '\0';
        return s;
}

static int parse_double(const char *s, double *v) {
        char *end;
        if (!*s)
                return -1;
        errno = 0;
        *v = strtod(s, &end);
        while (*end == ' ')
                end++;
        if (*end || errno == ERANGE || !isfinite(*v))
                return -1;
        return 0;
}

static int parse_i64(const char *s, int64_t *v) {
        char *end;
        if (!*s)
                return -1;
        errno = 0;
        *v = strtoll(s, &end, 10);
        while (*end == ' ')
                end++;
        return *end || errno == ERANGE ? -1 : 0;
}

static int parse_i32(const char *s, int32_t *v) {
        int64_t x;
        if (parse_i64(s, &x) || x < INT32_MIN || x > INT32_MAX)
                return -1;
        *v = (int32_t)x;
        return 0;
}

static int days_in_month(int y, int m) {
        static const int dm[12] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return m == 2 ? 28 + leap : dm[m - 1];
}

/* Reads minn..maxn digits. */
static int digits(const char **p, int minn, int maxn, int *v) {
        int n = 0, x = 0;
        while (n < maxn && **p >= '0' && **p <= '9') {
                x = x * 10 + (**p - '0');
                (*p)++;
                n++;
        }
        *v = x;
        return n >= minn ? 0 : -1;
}

static int civil_ms(int y, int mo, int d, int h, int mi, int s, int64_t *ms) {
        if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
            h > 23 || mi > 59 || s > 59)
                return -1;
        *ms = (loy_date_to_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) *
              1000;
        return 0;
}

/* "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" (or 'T', optional 'Z'), and the
 * spreadsheet export "M/D/YYYY H:MM[:SS]", all taken as UTC. */
static int parse_datetime(const char *s, int64_t *ms) {
        const char *p = s;
        int y, mo, d, h = 0, mi = 0, sec = 0;

        if (digits(&p, 1, 4, &y))
                return -1;
        if (*p == '-' && p - s == 4) {
                p++;
                if (digits(&p, 1, 2, &mo) || *p++ != '-' ||
                    digits(&p, 1, 2, &d))
                        return -1;
        } else if (*p == '/') {
                mo = y;
                p++;
                if (digits(&p, 1, 2, &d) || *p++ != '/' || digits(&p, 4, 4, &y))
                        return -1;
        } else
                return -1;
        if (*p == ' ' || *p == 'T') {
                p++;
                if (digits(&p, 1, 2, &h) || *p++ != ':' ||
                    digits(&p, 2, 2, &mi))
                        return -1;
                if (*p == ':') {
                        p++;
                        if (digits(&p, 2, 2, &sec))
                                return -1;
                }
        }
        if (*p == 'Z')
                p++;
        if (*p)
                return -1;
        return civil_ms(y, mo, d, h, mi, sec, ms);
}

static int parse_yyyymmdd(const char *s, int64_t *ms) {
        const char *p = s;
        int v;
        if (digits(&p, 8, 8, &v) || *p)
                return -1;
        return civil_ms(v / 10000, v / 100 % 100, v % 100, 0, 0, 0, ms);
}

static int is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------------
 * Online Retail
 * ------------------------------------------------------------------------ */

enum {
        OR_INV,
        OR_SKU,
        OR_QTY,
        OR_DATE,
        OR_PRICE,
        OR_CUST,
        OR_COUNTRY,
        OR__COLS
};

static const char *const or_names[OR__COLS][2] = {
    {"InvoiceNo", "Invoice"}, {"StockCode", NULL},
    {"Quantity", NULL},       {"InvoiceDate", NULL},
    {"UnitPrice", "Price"},   {"CustomerID", "Customer ID"},
    {"Country", NULL},
};

/* Column positions from a header row; 1 if it was one, 0 if not, -1 when
 * it is a header missing a needed column. */
static int or_header(char **f, int nf, int *col, char *errstr,
                     size_t errstr_size) {
        for (int c = 0; c < OR__COLS; c++)
                col[c] = -1;
        for (int i = 0; i < nf; i++) {
                const char *name = trim(f[i]);
                for (int c = 0; c < OR__COLS; c++)
                        for (int a = 0; a < 2; a++)
                                if (or_names[c][a] &&
                                    !strcasecmp(name, or_names[c][a])) {
                                        col[c] = i;
                                }
        }
        if (col[OR_INV] < 0 && col[OR_SKU] < 0)
                return 0;
        for (int c = 0; c < OR__COLS; c++)
                if (col[c] < 0) {
                        snprintf(errstr, errstr_size,
                                 "Online Retail header has no %s column",
                                 or_names[c][0]);
                        return -1;
                }
        return 1;
}

typedef struct or_state {
        int col[OR__COLS];
        int ncols;
        int32_t *inv_ev; /* orders id -> event, -1 unseen, -2 guest */
        size_t inv_cap;
} or_state_t;

static int or_track(or_state_t *o, uint32_t id) {
        if (id >= o->inv_cap) {
                size_t cap = o->inv_cap ? o->inv_cap * 2 : 4096;
                int32_t *n;
                while (cap <= id)
                        cap *= 2;
                n = realloc(o->inv_ev, cap * sizeof(*n));
                if (!n)
                        return -1;
                for (size_t i = o->inv_cap; i < cap; i++)
                        n[i] = -1;
                o->inv_ev = n;
                o->inv_cap = cap;
        }
        return 0;
}

/* "17850.0" -> "17850": the spreadsheet wrote ids as floats. */
static void strip_zero_fraction(char *s) {
        char *dot = strchr(s, '.');
        if (!dot || dot == s)
                return;
        for (const char *p = dot + 1; *p; p++)
                if (*p != '0')
                        return;
        *dot = '\0';
}

/* One data row. 0 (row counted), -1 no memory. */
static int or_row(loy_source_t *src, or_state_t *o, char **f, int nf) {
        loy_source_stats_t *st = &src->st;
        char *inv, *sku, *cust, *country;
        int32_t qty;
        double price;
        int64_t ts;
        uint32_t inv_id, id;
        src_ev_t *e;
        src_line_t *l;

        st->rows++;
        if (nf != o->ncols) {
                st->skipped_bad++;
                return 0;
        }
        inv = trim(f[o->col[OR_INV]]);
        cust = trim(f[o->col[OR_CUST]]);
        if (!*cust) {
                st->skipped_no_customer++;
                if (*inv && strlen(inv) <= LOY_ID_MAX - 3) {
                        if (pool_intern(&src->orders, inv, strlen(inv),
                                        &inv_id) ||
                            or_track(o, inv_id))
                                return -1;
                        if (o->inv_ev[inv_id] == -1)
                                o->inv_ev[inv_id] = -2;
                }
                return 0;
        }
        strip_zero_fraction(cust);
        sku = trim(f[o->col[OR_SKU]]);
        country = trim(f[o->col[OR_COUNTRY]]);
        if (!*inv || strlen(inv) > LOY_ID_MAX - 3 || !*sku ||
            strlen(sku) > LOY_SKU_MAX || strlen(cust) > LOY_ID_MAX ||
            strlen(country) > LOY_ID_MAX ||
            parse_i32(f[o->col[OR_QTY]], &qty) ||
            parse_double(f[o->col[OR_PRICE]], &price) ||
            parse_datetime(trim(f[o->col[OR_DATE]]), &ts)) {
                st->skipped_bad++;
                return 0;
        }
        if (pool_intern(&src->orders, inv, strlen(inv), &inv_id) ||
            or_track(o, inv_id))
                return -1;
        if (o->inv_ev[inv_id] < 0) {
                e = src_add_event(src);
                if (!e)
                        return -1;
                o->inv_ev[inv_id] = (int32_t)(src->nev - 1);
                e->ts_ms = ts;
                e->order = inv_id;
                e->is_return = inv[0] == 'C';
                if (pool_intern(&src->custs, cust, strlen(cust), &id))
                        return -1;
                e->cust = id;
                if (pool_intern(&src->chans, country, strlen(country), &id))
                        return -1;
                e->chan = id;
        } else {
                /* an invoice spanning a minute boundary starts at its
                 * first minute */
                e = &src->evs[o->inv_ev[inv_id]];
                if (ts < e->ts_ms)
                        e->ts_ms = ts;
        }
        if (pool_intern(&src->skus, sku, strlen(sku), &id))
                return -1;
        l = src_add_line(src);
        if (!l)
                return -1;
        l->ev = (uint32_t)o->inv_ev[inv_id];
        l->sku = id;
        l->cat = src->empty;
        l->qty = qty;
        l->price = price;
        return 0;
}

/* ------------------------------------------------------------------------
 * CDNOW and generic: one event of one line per row
 * ------------------------------------------------------------------------ */

static int one_line_event(loy_source_t *src, const char *cust, int64_t ts,
                          uint32_t order, uint32_t sku, int32_t qty,
                          double price, int is_return) {
        uint32_t id;
        src_ev_t *e;
        src_line_t *l;

        if (pool_intern(&src->custs, cust, strlen(cust), &id))
                return -1;
        e = src_add_event(src);
        if (!e)
                return -1;
        e->ts_ms = ts;
        e->cust = id;
        e->order = order;
        e->chan = src->empty;
        e->is_return = (uint8_t)is_return;
        l = src_add_line(src);
        if (!l)
                return -1;
        l->ev = (uint32_t)(src->nev - 1);
        l->sku = sku;
        l->cat = src->empty;
        l->qty = qty;
        l->price = price;
        return 0;
}

static int cdnow_row(loy_source_t *src, char **f, int nf, int64_t line) {
        int sample = src->fmt == LOY_SRC_CDNOW_SAMPLE;
        int want = sample ? 5 : 4;
        loy_source_stats_t *st = &src->st;
        char id[LOY_ID_MAX + 16];
        int32_t cds;
        double dollars;
        int64_t ts;
        int n;

        if (nf == 0 || !is_digit(f[0][0]))
                return 0; /* blank or a header */
        st->rows++;
        if (nf != want || parse_yyyymmdd(f[want - 3], &ts) ||
            parse_i32(f[want - 2], &cds) || cds <= 0 ||
            parse_double(f[want - 1], &dollars) || dollars < 0 ||
            line > UINT32_MAX) {
                st->skipped_bad++;
                return 0;
        }
        n = snprintf(id, sizeof(id), "cd-%s-%s-%lld", f[0], f[want - 3],
                     (long long)line);
        if (n < 0 || n > LOY_ID_MAX || strlen(f[0]) > LOY_ID_MAX) {
                st->skipped_bad++;
                return 0;
        }
        return one_line_event(src, f[0], ts, (uint32_t)line, src->sku_cd, cds,
                              dollars / cds, 0);
}

static int parse_generic_ts(const char *s, int64_t *ms) {
        const char *p = s + (*s == '-');
        if (!*p)
                return -1;
        while (is_digit(*p))
                p++;
        if (!*p)
                return parse_i64(s, ms);
        return parse_datetime(s, ms);
}

static int generic_row(loy_source_t *src, char **f, int nf, int64_t line,
                       int first) {
        loy_source_stats_t *st = &src->st;
        char *cust, *ts_s, *amt_s;
        int64_t ts;
        double amount;

        if (nf == 0 || (nf == 1 && !*trim(f[0])))
                return 0;
        cust = nf > 0 ? trim(f[0]) : NULL;
        ts_s = nf > 1 ? trim(f[1]) : NULL;
        amt_s = nf > 2 ? trim(f[2]) : NULL;
        if (first && nf == 3 && parse_double(amt_s, &amount))
                return 0; /* the optional header */
        st->rows++;
        if (nf != 3 || parse_generic_ts(ts_s, &ts) ||
            parse_double(amt_s, &amount) || strlen(cust) > LOY_ID_MAX ||
            line > UINT32_MAX) {
                st->skipped_bad++;
                return 0;
        }
        if (!*cust) {
                st->skipped_no_customer++;
                return 0;
        }
        if (amount < 0)
                return one_line_event(src, cust, ts, (uint32_t)line,
                                      src->sku_item, -1, -amount, 1);
        return one_line_event(src, cust, ts, (uint32_t)line, src->sku_item, 1,
                              amount, 0);
}

/* ------------------------------------------------------------------------
 * Open: detect, load, group, sort
 * ------------------------------------------------------------------------ */

static int is_csv(loy_source_format_t f) {
        return f == LOY_SRC_ONLINE_RETAIL || f == LOY_SRC_GENERIC;
}

/* From the first non-blank line in the buffer. */
static loy_source_format_t detect(const reader_t *r) {
        const char *p = r->buf + r->pos, *end = r->buf + r->len, *nl;
        char line[4096], *f[SRC_FIELDS_MAX];
        size_t n;
        int nf;

        while (p < end && (*p == '\n' || is_blank(*p)))
                p++;
        if (p == end)
                return LOY_SRC_UNKNOWN;
        nl = memchr(p, '\n', (size_t)(end - p));
        n = (size_t)((nl ? nl : end) - p);
        if (n >= sizeof(line))
                n = sizeof(line) - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        if (strchr(line, ',')) {
                nf = csv_split(line, line + n, f, SRC_FIELDS_MAX);
                if (nf == 8 || strstr(line, "InvoiceNo") ||
                    strstr(line, "StockCode"))
                        return LOY_SRC_ONLINE_RETAIL;
                return LOY_SRC_GENERIC;
        }
        nf = ws_split(line, line + n, f, SRC_FIELDS_MAX);
        if (nf == 4)
                return LOY_SRC_CDNOW_MASTER;
        if (nf == 5)
                return LOY_SRC_CDNOW_SAMPLE;
        return LOY_SRC_UNKNOWN;
}

static int cmp_ev(const void *a, const void *b) {
        const src_ev_t *x = a, *y = b;
        if (x->ts_ms != y->ts_ms)
                return x->ts_ms < y->ts_ms ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Makes each event's lines contiguous (a stable counting sort, so lines
 * keep their file order), drops events too big for one loy_event_t, sorts
 * the events by time and fills the totals. */
static int finish(loy_source_t *src) {
        loy_source_stats_t *st = &src->st;
        src_line_t *sorted;
        uint32_t *pos;
        uint8_t *seen;
        size_t kept = 0;

        pos = calloc(src->nev + 1, sizeof(*pos));
        if (!pos)
                return -1;
        for (size_t i = 0; i < src->nlines; i++)
                src->evs[src->lines[i].ev].nlines++;
        for (size_t i = 0; i < src->nev; i++) {
                src->evs[i].first = pos[i];
                pos[i + 1] = pos[i] + src->evs[i].nlines;
        }
        sorted = malloc((src->nlines ? src->nlines : 1) * sizeof(*sorted));
        if (!sorted) {
                free(pos);
                return -1;
        }
        for (size_t i = 0; i < src->nlines; i++)
                sorted[pos[src->lines[i].ev]++] = src->lines[i];
        free(pos);
        free(src->lines);
        src->lines = sorted;
        src->linecap = src->nlines;

        seen = calloc(src->custs.n + 1, 1);
        if (!seen)
                return -1;
        for (size_t i = 0; i < src->nev; i++) {
                src_ev_t *e = &src->evs[i];
                if (e->nlines > LOY_LINES_MAX) {
                        st->skipped_bad += e->nlines;
                        continue;
                }
                src->evs[kept++] = *e;
                st->lines += e->nlines;
                if (e->is_return)
                        st->returns++;
                else
                        st->purchases++;
                if (!seen[e->cust]) {
                        seen[e->cust] = 1;
                        st->customers++;
                }
        }
        free(seen);
        src->nev = kept;
        st->events = (int64_t)kept;
        if (kept)
                qsort(src->evs, kept, sizeof(*src->evs), cmp_ev);
        if (kept) {
                st->first_ts_ms = src->evs[0].ts_ms;
                st->last_ts_ms = src->evs[kept - 1].ts_ms;
        }
        return 0;
}

static int load(loy_source_t *src, reader_t *r, char *errstr,
                size_t errstr_size) {
        char *f[SRC_FIELDS_MAX];
        int nf, rc, first = 1, csv = is_csv(src->fmt);
        int64_t line;
        or_state_t o;

        memset(&o, 0, sizeof(o));
        for (int c = 0; c < OR__COLS; c++)
                o.col[c] = c < OR_QTY ? c : c + 1; /* Description is 2 */
        o.ncols = 8;

        for (;;) {
                rc = rd_record(r, csv, f, &nf, &line, errstr, errstr_size);
                if (rc == RD_END)
                        break;
                if (rc == RD_ERR)
                        goto fail;
                if (rc == RD_BAD) {
                        src->st.rows++;
                        src->st.skipped_bad++;
                        first = 0;
                        continue;
                }
                switch (src->fmt) {
                case LOY_SRC_ONLINE_RETAIL:
                        if (nf == 0 || (nf == 1 && !*trim(f[0])))
                                continue;
                        if (first) {
                                first = 0;
                                rc = or_header(f, nf, o.col, errstr,
                                               errstr_size);
                                if (rc < 0)
                                        goto fail;
                                if (rc > 0) {
                                        o.ncols = nf;
                                        continue;
                                }
                                for (int c = 0; c < OR__COLS; c++)
                                        o.col[c] = c < OR_QTY ? c : c + 1;
                        }
                        rc = or_row(src, &o, f, nf);
                        break;
                case LOY_SRC_GENERIC:
                        rc = generic_row(src, f, nf, line, first);
                        if (nf > 0)
                                first = 0;
                        break;
                default:
                        rc = cdnow_row(src, f, nf, line);
                        break;
                }
                if (rc < 0) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto fail;
                }
        }
        if (src->fmt == LOY_SRC_ONLINE_RETAIL) {
                for (uint32_t i = 0; i < src->orders.n; i++)
                        if (o.inv_ev[i] == -2)
                                src->st.skipped_invoices++;
        }
        free(o.inv_ev);
        if (finish(src)) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
fail:
        free(o.inv_ev);
        return -1;
}

loy_source_t *loy_source_open(const char *path, loy_source_format_t fmt,
                              char *errstr, size_t errstr_size) {
        loy_source_t *src;
        reader_t r;
        int rc;

        if ((int)fmt < LOY_SRC_AUTO || fmt > LOY_SRC_GENERIC) {
                snprintf(errstr, errstr_size, "unknown source format %d",
                         (int)fmt);
                return NULL;
        }
        src = calloc(1, sizeof(*src));
        if (!src) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        memset(&r, 0, sizeof(r));
        r.path = path;
        r.lineno = 1;
        r.cap = SRC_CHUNK;
        r.buf = malloc(r.cap);
        if (!r.buf || pool_intern(&src->skus, "", 0, &src->empty) ||
            pool_intern(&src->skus, "cd", 2, &src->sku_cd) ||
            pool_intern(&src->skus, "item", 4, &src->sku_item) ||
            pool_intern(&src->chans, "", 0, &src->empty)) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        errno = 0;
        r.gz = gzopen(path, "rb");
        if (!r.gz) {
                snprintf(errstr, errstr_size, "%s: %s", path,
                         errno ? strerror(errno) : "cannot open");
                goto fail;
        }
        gzbuffer(r.gz, 128 * 1024);
        if (rd_fill(&r, errstr, errstr_size) < 0)
                goto fail;
        if (r.len >= 3 && !memcmp(r.buf, "\xef\xbb\xbf", 3))
                r.pos = 3; /* a spreadsheet's UTF-8 byte order mark */
        if (fmt == LOY_SRC_AUTO) {
                fmt = detect(&r);
                if (fmt == LOY_SRC_UNKNOWN) {
                        snprintf(errstr, errstr_size,
                                 "%s: cannot tell the format from the "
                                 "first line; name it",
                                 path);
                        goto fail;
                }
        }
        src->fmt = fmt;
        rc = load(src, &r, errstr, errstr_size);
        gzclose(r.gz);
        r.gz = NULL;
        free(r.buf);
        if (rc) {
                loy_source_close(src);
                return NULL;
        }
        return src;
fail:
        if (r.gz)
                gzclose(r.gz);
        free(r.buf);
        loy_source_close(src);
        return NULL;
}

static void copy_str(char *dst, size_t size, const char *s) {
        size_t n = strlen(s);
        if (n >= size)
                n = size - 1;
        memcpy(dst, s, n);
        dst[n] = '\0';
}

int loy_source_next(loy_source_t *src, loy_event_t *ev) {
        const src_ev_t *e;
        char id[160]; /* lengths were checked at load: never truncated */
        int64_t y;
        int m, d;

        if (src->next >= src->nev)
                return 0;
        e = &src->evs[src->next++];
        loy_event_reset(ev);
        ev->kind = LOY_EV_PURCHASE;
        ev->ts_ms = e->ts_ms;
        copy_str(ev->customer_id, sizeof(ev->customer_id),
                 pool_str(&src->custs, e->cust));
        copy_str(ev->channel, sizeof(ev->channel),
                 pool_str(&src->chans, e->chan));
        switch (src->fmt) {
        case LOY_SRC_ONLINE_RETAIL:
                copy_str(ev->order_id, sizeof(ev->order_id),
                         pool_str(&src->orders, e->order));
                snprintf(id, sizeof(id), "or-%s", ev->order_id);
                copy_str(ev->event_id, sizeof(ev->event_id), id);
                copy_str(ev->currency, sizeof(ev->currency), "GBP");
                break;
        case LOY_SRC_GENERIC:
                snprintf(ev->event_id, sizeof(ev->event_id), "gen-%u",
                         (unsigned)e->order);
                copy_str(ev->order_id, sizeof(ev->order_id), ev->event_id);
                break;
        default:
                loy_date_from_days(e->ts_ms / 86400000, &y, &m, &d);
                snprintf(id, sizeof(id), "cd-%s-%04d%02d%02d-%u",
                         ev->customer_id, (int)y, m, d, (unsigned)e->order);
                copy_str(ev->event_id, sizeof(ev->event_id), id);
                copy_str(ev->order_id, sizeof(ev->order_id), ev->event_id);
                copy_str(ev->currency, sizeof(ev->currency), "USD");
                break;
        }
        for (uint32_t i = 0; i < e->nlines; i++) {
                const src_line_t *sl = &src->lines[e->first + i];
                loy_line_t *l = loy_event_add_line(ev);
                if (!l)
                        return -1;
                copy_str(l->sku, sizeof(l->sku), pool_str(&src->skus, sl->sku));
                copy_str(l->category, sizeof(l->category),
                         pool_str(&src->skus, sl->cat));
                l->quantity = sl->qty;
                l->unit_price = sl->price;
        }
        return 1;
}

void loy_source_rewind(loy_source_t *src) {
        src->next = 0;
}

loy_source_format_t loy_source_format(const loy_source_t *src) {
        return src->fmt;
}

const loy_source_stats_t *loy_source_stats(const loy_source_t *src) {
        return &src->st;
}

static const char *const format_names[] = {
    "auto", "online_retail", "cdnow_master", "cdnow_sample", "generic",
};

const char *loy_source_format_name(loy_source_format_t f) {
        if ((int)f < 0 || f > LOY_SRC_GENERIC)
                return "unknown";
        return format_names[f];
}

loy_source_format_t loy_source_format_parse(const char *name) {
        if (!name)
                return LOY_SRC_UNKNOWN;
        for (int i = 0; i <= LOY_SRC_GENERIC; i++)
                if (!strcmp(name, format_names[i]))
                        return (loy_source_format_t)i;
        return LOY_SRC_UNKNOWN;
}

void loy_source_close(loy_source_t *src) {
        if (!src)
                return;
        pool_free(&src->skus);
        pool_free(&src->custs);
        pool_free(&src->orders);
        pool_free(&src->chans);
        free(src->evs);
        free(src->lines);
        free(src);
}
