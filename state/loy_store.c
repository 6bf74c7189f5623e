/*
 * loy_store: the Redis state store (see loy_store.h and docs/redis-keys.md).
 *
 * Commands are written as RESP straight into one per-store buffer that is
 * reused from batch to batch (grown geometrically), then handed to hiredis
 * with redisAppendFormattedCommand: no argv arrays, no allocation per field.
 * hiredis only buffers on append; nothing reaches the socket before the
 * first redisGetReply, so a batch that fails while being built can still be
 * withdrawn whole by dropping the connection.
 *
 * Every I/O error frees the context: the caller reconnects with
 * loy_store_connect() and retries the batch (after reloading its customers,
 * since some MULTI/EXEC blocks of a failed batch may have been applied).
 */
#include "loy_store.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define NS_MAX 64
#define KEY_MAX 160              /* fixed keys: namespace + a short suffix */
#define FIELD_BUF 4096           /* one formatted customer field */
#define DEFAULT_TIMEOUT_MS 2000
#define HSCAN_COUNT "500"

struct loy_store {
        redisContext *ctx;       /* NULL while disconnected */
        char *host;
        int port;
        struct timeval tv;
        char ns[NS_MAX + 1];
        size_t nslen;

        /* Keys that do not depend on a customer, built once. */
        char k_seg[KEY_MAX];
        char k_churn[KEY_MAX];
        char k_clv[KEY_MAX];
        char k_outbox[KEY_MAX];
        char k_stats[KEY_MAX];
        char k_clock[KEY_MAX];
        char k_hist[LOY_DIM__COUNT][KEY_MAX];

        int nfields;             /* entries of loy_feat_fields */

        /* RESP being built. oom is sticky so the builders need no checks;
         * it is looked at once per command group. */
        char *buf;
        size_t len, cap;
        int oom;

        int *ncmd;               /* commands queued per customer in write */
        int ncmd_cap;

        /* A write sent by loy_store_write_send, replies not read yet. */
        int inflight;
        const loy_cust_write_t *fl_w;
        int fl_n;
};

/* ---------------------------------------------------------------- errors */

static void seterr(char *errstr, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...) {
        va_list ap;
        if (!errstr || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, size, fmt, ap);
        va_end(ap);
}

static void drop(loy_store_t *s) {
        if (s->ctx) {
                redisFree(s->ctx);
                s->ctx = NULL;
        }
        /* Replies of a write in flight are gone with the connection; its
         * caller learns it from loy_store_write_recv. */
        s->inflight = 0;
        s->fl_w = NULL;
}

static int not_connected(const loy_store_t *s, char *errstr, size_t size) {
        seterr(errstr, size, "redis %s:%d: not connected", s->host, s->port);
        return LOY_STORE_ERR_IO;
}

/* Connected and not waiting for a write's replies (they come first on the
 * connection, so nothing else may be sent before they are read). */
static int usable(const loy_store_t *s, char *errstr, size_t size) {
        if (!s->ctx)
                return not_connected(s, errstr, size);
        if (s->inflight) {
                seterr(errstr, size, "redis: a write is in flight; call "
                       "loy_store_write_recv first");
                return LOY_STORE_ERR;
        }
        return LOY_STORE_OK;
}

int loy_store_is_refusal(const char *e) {
        /* The prefixes Redis uses for "not now" (server.c, cluster.c). */
        static const char *const transient[] = {
            "OOM ", "READONLY ", "MISCONF ", "LOADING ", "BUSY ",
            "TRYAGAIN ", "CLUSTERDOWN ", "MASTERDOWN ", "NOREPLICAS ",
            NULL};
        if (!e)
                return 0;
        for (int i = 0; transient[i]; i++)
                if (!strncmp(e, transient[i], strlen(transient[i])))
                        return 1;
        return 0;
}

static int is_refusal_reply(const redisReply *r) {
        return r->type == REDIS_REPLY_ERROR && loy_store_is_refusal(r->str);
}

/* Records an I/O failure and drops the context. */
static int io_error(loy_store_t *s, char *errstr, size_t size) {
        const char *why = "connection lost";
        if (s->ctx && s->ctx->errstr[0])
                why = s->ctx->errstr;
        seterr(errstr, size, "redis %s:%d: %s", s->host, s->port, why);
        drop(s);
        return LOY_STORE_ERR_IO;
}

/*
 * hiredis writes with write(2): a server that died turns the next write into
 * SIGPIPE, whose default action kills the process. A library must not need
 * the application to ignore it, so SIGPIPE is blocked in the calling thread
 * around the I/O and a SIGPIPE raised meanwhile is consumed (EPIPE is then
 * seen as an ordinary I/O error).
 */
typedef struct pipe_guard {
        sigset_t old;
        int was_pending;
} pipe_guard_t;

static void guard_on(pipe_guard_t *g) {
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        sigpending(&pend);
        g->was_pending = sigismember(&pend, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void guard_off(pipe_guard_t *g) {
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        if (!g->was_pending && sigpending(&pend) == 0 &&
            sigismember(&pend, SIGPIPE)) {
                struct timespec zero = {0, 0};
                while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Next reply, or -1 (context dropped, errstr filled). */
static int get_reply(loy_store_t *s, redisReply **r, char *errstr,
                     size_t size) {
        void *v = NULL;
        if (redisGetReply(s->ctx, &v) != REDIS_OK || !v) {
                if (v)
                        freeReplyObject(v);
                io_error(s, errstr, size);
                return -1;
        }
        *r = v;
        return 0;
}

/* ------------------------------------------------------------------ RESP */

static void ab_reset(loy_store_t *s) {
        s->len = 0;
        s->oom = 0;
}

static void ab_raw(loy_store_t *s, const void *p, size_t n) {
        if (s->oom)
                return;
        if (s->len + n > s->cap) {
                size_t cap = s->cap ? s->cap : 16384;
                char *nb;
                while (cap < s->len + n)
                        cap *= 2;
                nb = realloc(s->buf, cap);
                if (!nb) {
                        s->oom = 1;
                        return;
                }
                s->buf = nb;
                s->cap = cap;
        }
        memcpy(s->buf + s->len, p, n);
        s->len += n;
}

/* "<type><n>\r\n" without printf on the hot path. */
static void ab_hdr(loy_store_t *s, char type, size_t n) {
        char tmp[32];
        char *p = tmp + sizeof(tmp);
        *--p = '\n';
        *--p = '\r';
        do {
                *--p = (char)('0' + n % 10);
                n /= 10;
        } while (n);
        *--p = type;
        ab_raw(s, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void ab_bulk(loy_store_t *s, const void *p, size_t n) {
        ab_hdr(s, '$', n);
        ab_raw(s, p, n);
        ab_raw(s, "\r\n", 2);
}

static void ab_str(loy_store_t *s, const char *str) {
        ab_bulk(s, str, strlen(str));
}

/* Writes v in decimal into b (at least 21 bytes); returns the length. */
static int fmt_i64(char *b, int64_t v) {
        return loy_fmt_i64(b, 24, v);
}

static int fmt_dbl(char *b, size_t size, double v) {
        int n = loy_fmt_double(b, size, v);
        return n < 0 ? 0 : n;
}

static void ab_i64(loy_store_t *s, int64_t v) {
        char t[32];
        ab_bulk(s, t, (size_t)fmt_i64(t, v));
}

static void ab_dbl(loy_store_t *s, double v) {
        char t[40];
        ab_bulk(s, t, (size_t)fmt_dbl(t, sizeof(t), v));
}

/* Bulk string "<ns><mid><id><end>" without building it elsewhere first. */
static void ab_key(loy_store_t *s, const char *mid, const char *id,
                   const char *end) {
        size_t lm = strlen(mid), li = strlen(id), le = strlen(end);
        ab_hdr(s, '$', s->nslen + lm + li + le);
        ab_raw(s, s->ns, s->nslen);
        ab_raw(s, mid, lm);
        ab_raw(s, id, li);
        ab_raw(s, end, le);
        ab_raw(s, "\r\n", 2);
}

/* Hands the built commands to hiredis (buffered, not sent). */
static int ab_flush(loy_store_t *s, char *errstr, size_t size) {
        if (s->oom) {
                seterr(errstr, size, "out of memory building commands");
                return LOY_STORE_ERR;
        }
        if (s->len && redisAppendFormattedCommand(s->ctx, s->buf, s->len) !=
                              REDIS_OK)
                return io_error(s, errstr, size);
        ab_reset(s);
        return LOY_STORE_OK;
}

/* ------------------------------------------------------- create/connect */

static void fixed_key(const loy_store_t *s, char *dst, const char *suffix) {
        snprintf(dst, KEY_MAX, "%s:%s", s->ns, suffix);
}

static int do_connect(loy_store_t *s, char *errstr, size_t size) {
        redisContext *c = redisConnectWithTimeout(s->host, s->port, s->tv);
        if (!c) {
                seterr(errstr, size, "redis %s:%d: out of memory", s->host,
                       s->port);
                return -1;
        }
        if (c->err) {
                seterr(errstr, size, "redis %s:%d: %s", s->host, s->port,
                       c->errstr);
                redisFree(c);
                return -1;
        }
        if (redisSetTimeout(c, s->tv) != REDIS_OK) {
                seterr(errstr, size, "redis %s:%d: cannot set timeout: %s",
                       s->host, s->port, c->errstr);
                redisFree(c);
                return -1;
        }
        s->ctx = c;
        return 0;
}

/* PING on the current context: LOY_STORE_OK, or an error that dropped it. */
static int ping(loy_store_t *s, char *errstr, size_t size) {
        static const char cmd[] = "*1\r\n$4\r\nPING\r\n";
        redisReply *r = NULL;
        pipe_guard_t g;
        int rc = LOY_STORE_OK;
        if (redisAppendFormattedCommand(s->ctx, cmd, sizeof(cmd) - 1) !=
            REDIS_OK)
                return io_error(s, errstr, size);
        guard_on(&g);
        if (get_reply(s, &r, errstr, size))
                rc = LOY_STORE_ERR_IO;
        guard_off(&g);
        if (rc)
                return rc;
        if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG")) {
                /* LOADING, NOAUTH ...: connected but not usable yet. */
                seterr(errstr, size, "redis %s:%d: PING: %s", s->host,
                       s->port, r->type == REDIS_REPLY_ERROR ? r->str :
                                                               "bad reply");
                drop(s);
                rc = LOY_STORE_ERR_IO;
        }
        freeReplyObject(r);
        return rc;
}

loy_store_t *loy_store_create(const char *host, int port, const char *ns,
                              int timeout_ms, char *errstr,
                              size_t errstr_size) {
        loy_store_t *s;
        struct addrinfo hints, *ai = NULL;
        int rc;

        if (!host || !*host) {
                seterr(errstr, errstr_size, "redis: no host");
                return NULL;
        }
        if (port <= 0 || port > 65535) {
                seterr(errstr, errstr_size, "redis: bad port %d", port);
                return NULL;
        }
        if (!ns || !*ns)
                ns = "loy";
        if (strlen(ns) > NS_MAX || strpbrk(ns, "{} \t\r\n")) {
                seterr(errstr, errstr_size,
                       "redis: namespace \"%s\" must be 1..%d characters "
                       "without braces or blanks", ns, NS_MAX);
                return NULL;
        }
        if (timeout_ms < 0) {
                seterr(errstr, errstr_size, "redis: bad timeout %d ms",
                       timeout_ms);
                return NULL;
        }
        /* An unresolvable name is a configuration error; a temporary
         * resolver failure is treated like a server that is down. */
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        rc = getaddrinfo(host, NULL, &hints, &ai);
        if (rc == 0)
                freeaddrinfo(ai);
        else if (rc != EAI_AGAIN) {
                seterr(errstr, errstr_size, "redis: host %s: %s", host,
                       gai_strerror(rc));
                return NULL;
        }

        s = calloc(1, sizeof(*s));
        if (!s || !(s->host = strdup(host))) {
                free(s);
                seterr(errstr, errstr_size, "redis: out of memory");
                return NULL;
        }
        s->port = port;
        if (timeout_ms == 0)
                timeout_ms = DEFAULT_TIMEOUT_MS;
        s->tv.tv_sec = timeout_ms / 1000;
        s->tv.tv_usec = (timeout_ms % 1000) * 1000;
        snprintf(s->ns, sizeof(s->ns), "%s", ns);
        s->nslen = strlen(s->ns);
        fixed_key(s, s->k_seg, "seg");
        fixed_key(s, s->k_churn, "rank:churn");
        fixed_key(s, s->k_clv, "rank:clv");
        fixed_key(s, s->k_outbox, "outbox");
        fixed_key(s, s->k_stats, "stats");
        fixed_key(s, s->k_clock, "clock");
        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                char suffix[64];
                snprintf(suffix, sizeof(suffix), "hist:%s",
                         loy_dim_name((loy_dim_t)d));
                fixed_key(s, s->k_hist[d], suffix);
        }
        for (const loy_field_t *f = loy_feat_fields; f->name; f++)
                s->nfields++;
        if (s->nfields > LOY_SHADOW_FIELDS) {
                seterr(errstr, errstr_size, "store: %d customer fields, "
                       "LOY_SHADOW_FIELDS is %d", s->nfields,
                       LOY_SHADOW_FIELDS);
                loy_store_destroy(s);
                return NULL;
        }

        /* Down is not an error: the caller retries loy_store_connect(). */
        (void)loy_store_connect(s, NULL, 0);
        return s;
}

void loy_store_destroy(loy_store_t *s) {
        if (!s)
                return;
        drop(s);
        free(s->host);
        free(s->buf);
        free(s->ncmd);
        free(s);
}

int loy_store_connect(loy_store_t *s, char *errstr, size_t errstr_size) {
        int had = s->ctx != NULL;
        if (s->inflight) {
                seterr(errstr, errstr_size, "redis: a write is in flight; "
                       "call loy_store_write_recv first");
                return LOY_STORE_ERR;
        }
        if (!s->ctx && do_connect(s, errstr, errstr_size))
                return LOY_STORE_ERR_IO;
        if (ping(s, errstr, errstr_size) == LOY_STORE_OK)
                return LOY_STORE_OK;
        /* A context that was up may just be stale (server restarted). */
        if (!had || do_connect(s, errstr, errstr_size))
                return LOY_STORE_ERR_IO;
        return ping(s, errstr, errstr_size);
}

int loy_store_is_connected(const loy_store_t *s) {
        return s->ctx != NULL;
}

const char *loy_store_ns(const loy_store_t *s) {
        return s->ns;
}

/* -------------------------------------------------------------- loading */

int loy_store_load(loy_store_t *s, loy_cust_t *const *custs, int n,
                   int *found, char *errstr, size_t errstr_size) {
        pipe_guard_t g;
        int rc = LOY_STORE_OK;
        int i;

        if (n < 0 || (n > 0 && !custs)) {
                seterr(errstr, errstr_size, "load: bad arguments");
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        if (n == 0)
                return LOY_STORE_OK;

        ab_reset(s);
        for (i = 0; i < n; i++) {
                ab_hdr(s, '*', 2);
                ab_str(s, "HGETALL");
                ab_key(s, ":c:{", custs[i]->id, "}");
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;

        guard_on(&g);
        for (i = 0; i < n; i++) {
                loy_cust_t *c = custs[i];
                redisReply *r;
                if (get_reply(s, &r, errstr, errstr_size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
                if (found)
                        found[i] = 0;
                if (is_refusal_reply(r)) {
                        /* LOADING or BUSY on a read: not this customer */
                        seterr(errstr, errstr_size, "redis refused: %s",
                               r->str);
                        rc = LOY_STORE_ERR_BUSY;
                        freeReplyObject(r);
                        continue;
                }
                if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
                        if (rc == LOY_STORE_OK)
                                seterr(errstr, errstr_size,
                                       "customer %s: HGETALL: %s", c->id,
                                       r->type == REDIS_REPLY_ERROR ?
                                               r->str : "unexpected reply");
                        if (rc != LOY_STORE_ERR_BUSY)
                                rc = LOY_STORE_ERR;
                        freeReplyObject(r);
                        continue;
                }
                for (size_t j = 0; j + 1 < r->elements; j += 2) {
                        redisReply *k = r->element[j], *v = r->element[j + 1];
                        if (k->type != REDIS_REPLY_STRING ||
                            v->type != REDIS_REPLY_STRING ||
                            loy_feat_field_parse(c, k->str, v->str,
                                                 v->len)) {
                                if (rc == LOY_STORE_OK)
                                        seterr(errstr, errstr_size,
                                               "customer %s: bad field %s",
                                               c->id,
                                               k->type == REDIS_REPLY_STRING ?
                                                       k->str : "?");
                                if (rc != LOY_STORE_ERR_BUSY)
                                        rc = LOY_STORE_ERR;
                        }
                }
                if (found)
                        found[i] = r->elements > 0;
                freeReplyObject(r);
        }
        guard_off(&g);
        return rc;
}

static int parse_i64(const char *str, int64_t *v) {
        char *end;
        long long x;
        errno = 0;
        x = strtoll(str, &end, 10);
        if (errno || end == str || *end)
                return -1;
        *v = x;
        return 0;
}

int loy_store_load_hist(loy_store_t *s, loy_rfm_t *rfm, char *errstr,
                        size_t errstr_size) {
        redisReply *r[LOY_DIM__COUNT] = {NULL};
        pipe_guard_t g;
        int rc = LOY_STORE_OK;
        int d;

        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        for (d = 0; d < LOY_DIM__COUNT; d++) {
                ab_hdr(s, '*', 2);
                ab_str(s, "HGETALL");
                ab_str(s, s->k_hist[d]);
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        guard_on(&g);
        for (d = 0; d < LOY_DIM__COUNT; d++)
                if (get_reply(s, &r[d], errstr, errstr_size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
        guard_off(&g);

        /* Check everything before touching rfm: all or nothing. */
        for (d = 0; rc == LOY_STORE_OK && d < LOY_DIM__COUNT; d++) {
                if (r[d]->type != REDIS_REPLY_ARRAY || r[d]->elements % 2) {
                        seterr(errstr, errstr_size, "HGETALL %s: %s",
                               s->k_hist[d],
                               r[d]->type == REDIS_REPLY_ERROR ?
                                       r[d]->str : "unexpected reply");
                        rc = LOY_STORE_ERR;
                        break;
                }
                for (size_t j = 0; j + 1 < r[d]->elements; j += 2) {
                        redisReply *k = r[d]->element[j];
                        redisReply *v = r[d]->element[j + 1];
                        int64_t bin, cnt;
                        if (k->type != REDIS_REPLY_STRING ||
                            v->type != REDIS_REPLY_STRING ||
                            parse_i64(k->str, &bin) ||
                            parse_i64(v->str, &cnt) || bin < 0 ||
                            bin >= LOY_HIST_BINS) {
                                seterr(errstr, errstr_size,
                                       "%s: bad bin %s", s->k_hist[d],
                                       k->type == REDIS_REPLY_STRING ?
                                               k->str : "?");
                                rc = LOY_STORE_ERR;
                                break;
                        }
                }
        }
        if (rc == LOY_STORE_OK) {
                for (d = 0; d < LOY_DIM__COUNT; d++) {
                        for (int b = 0; b < LOY_HIST_BINS; b++)
                                loy_rfm_set(rfm, (loy_dim_t)d, b, 0);
                        for (size_t j = 0; j + 1 < r[d]->elements; j += 2) {
                                int64_t bin = 0, cnt = 0;
                                parse_i64(r[d]->element[j]->str, &bin);
                                parse_i64(r[d]->element[j + 1]->str, &cnt);
                                loy_rfm_set(rfm, (loy_dim_t)d, (int)bin, cnt);
                        }
                }
        }
        for (d = 0; d < LOY_DIM__COUNT; d++)
                if (r[d])
                        freeReplyObject(r[d]);
        return rc;
}

/* -------------------------------------------------------------- writing */

/* Days since the epoch -> civil date (H. Hinnant's algorithm); avoids
 * gmtime's range and locale concerns and is exact for any int64 day. */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d) {
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* "<ns>:kpi:yyyy-mm-dd" for the UTC day holding ms. */
static void kpi_key(const loy_store_t *s, int64_t ms, char *dst,
                    size_t size) {
        int64_t days = ms / LOY_MS_PER_DAY, y;
        unsigned m, d;
        if (ms % LOY_MS_PER_DAY < 0)
                days--;
        civil(days, &y, &m, &d);
        snprintf(dst, size, "%s:kpi:%04lld-%02u-%02u", s->ns, (long long)y,
                 m, d);
}

static int check_write(const loy_cust_write_t *w, char *errstr,
                       size_t size) {
        const loy_cust_t *c = w->cust;
        if (!c || !c->id[0]) {
                seterr(errstr, size, "write: customer without id");
                return -1;
        }
        if (c->nslots < 0 || c->nslots > LOY_SLOTS_MAX ||
            c->segment < 0 || c->segment >= LOY_SEG__COUNT ||
            w->old_seg < -1 || w->old_seg >= LOY_SEG__COUNT ||
            w->nkpi < 0 || (w->nkpi && !w->kpi) || w->noutbox < 0 ||
            w->nrate_days < 0 || (w->nrate_days && !w->rate_days) ||
            (w->noutbox && !w->outbox)) {
                seterr(errstr, size, "customer %s: bad write description",
                       c->id);
                return -1;
        }
        if (c->first_purchase_ms > 0 &&
            (!isfinite(c->churn_prob) || !isfinite(c->clv))) {
                seterr(errstr, size, "customer %s: churn_prob or clv is "
                       "not a finite number", c->id);
                return -1;
        }
        for (int i = 0; i < w->nkpi; i++)
                if (!w->kpi[i].field || !isfinite(w->kpi[i].delta)) {
                        seterr(errstr, size, "customer %s: bad KPI delta %s",
                               c->id, w->kpi[i].field ? w->kpi[i].field :
                                                        "(null)");
                        return -1;
                }
        for (int i = 0; i < w->noutbox; i++)
                if (!w->outbox[i].trigger_id ||
                    (w->outbox[i].len && !w->outbox[i].payload)) {
                        seterr(errstr, size, "customer %s: bad outbox entry",
                               c->id);
                        return -1;
                }
        return 0;
}

static void hincrby(loy_store_t *s, const char *key, const char *field,
                    int64_t by) {
        ab_hdr(s, '*', 4);
        ab_str(s, "HINCRBY");
        ab_str(s, key);
        ab_str(s, field);
        ab_i64(s, by);
}

/*
 * HINCRBYFLOAT even for integral deltas: HINCRBY fails on a field that ever
 * held a fraction ("revenue" after 12.5 then 10), and Redis prints the float
 * sum without a fraction when it has none, so counts still read "3".
 */
static void hincrbyfloat(loy_store_t *s, const char *key, const char *field,
                         double by) {
        ab_hdr(s, '*', 4);
        ab_str(s, "HINCRBYFLOAT");
        ab_str(s, key);
        ab_str(s, field);
        ab_dbl(s, by);
}

static void bin_move(loy_store_t *s, const char *key, int bin, int64_t by) {
        char f[24];
        fmt_i64(f, bin);
        hincrby(s, key, f, by);
}

/* A ratio cannot be HINCRBY'd: it is recomputed from the day's two
 * counters, server-side so concurrent processes cannot interleave. */
static const char kpi_rate_lua[] =
    "local k = KEYS[1] "
    "local p = tonumber(redis.call('HGET', k, 'purchases') or '0') "
    "if p > 0 then "
    "local r = tonumber(redis.call('HGET', k, 'repeat_purchases') or '0') "
    "redis.call('HSET', k, 'repurchase_rate', string.format('%.4f', r / p)) "
    "end "
    /* money from its exact integer sum: whole units and micros apart, so
     * the text is a function of the integer alone */
    "for _, f in ipairs({'revenue', 'return_value'}) do "
    "local m = tonumber(redis.call('HGET', k, f .. '_micros') or 'x') "
    "if m then "
    "local neg = m < 0 if neg then m = -m end "
    "local w = math.floor(m / 1000000) "
    "local t = string.format('%d.%06d', w, m - w * 1000000) "
    "t = string.gsub(string.gsub(t, '0+$', ''), '%.$', '') "
    "if neg and t ~= '0' then t = '-' .. t end "
    "redis.call('HSET', k, f, t) end end "
    "return 0";

/* Appends one customer's MULTI ... EXEC to the buffer; returns the number
 * of commands (MULTI and EXEC included) or -1. */
static void zrem_timer(loy_store_t *s, int32_t partition, const char *id) {
        char part[24];
        fmt_i64(part, partition);
        ab_hdr(s, '*', 3);
        ab_str(s, "ZREM");
        ab_key(s, ":timers:", part, "");
        ab_str(s, id);
}

static uint64_t views_hash(const loy_cust_t *c) {
        uint64_t h = 1469598103934665603ULL;
        for (int i = 0; i < LOY_RECENT_VIEWS; i++) {
                for (const unsigned char *q =
                         (const unsigned char *)c->recent_views[i];
                     *q; q++)
                        h = (h ^ *q) * 1099511628211ULL;
                h = (h ^ 0xffu) * 1099511628211ULL;
        }
        return h;
}

static int same_number(double a, double b) {
        return a == b || (isnan(a) && isnan(b));
}

/* The time derived fields are written at: see loy_store_write. */
static int64_t written_at(const loy_cust_t *c, int64_t now_ms) {
        return c->scored_ms > 0 ? c->scored_ms : now_ms;
}

void loy_store_shadow_take(loy_shadow_t *sh, const loy_cust_t *c,
                           const loy_feat_conf_t *fconf) {
        int64_t at = written_at(c, 0);
        int i = 0;
        for (const loy_field_t *f = loy_feat_fields;
             f->name && i < LOY_SHADOW_FIELDS; f++, i++)
                sh->num[i] = loy_feat_field_number(c, f, at, fconf);
        sh->views_hash = views_hash(c);
        sh->nslots = c->nslots;
        for (int k = 0; k < c->nslots; k++)
                sh->slot[k] = c->slots[k].value;
        sh->valid = 1;
}

static int build_cust(loy_store_t *s, const loy_cust_write_t *w,
                      int64_t now_ms, const loy_feat_conf_t *fconf,
                      char *errstr, size_t size) {
        const loy_cust_t *c = w->cust;
        char field[FIELD_BUF];
        char tkey[KEY_MAX];
        int k = 0;
        /* derived fields (recency_days, T_days ...) as of the customer's
         * own scoring time: the batch's clock differs from run to run, and
         * is 0 right after a start */
        int64_t at = written_at(c, now_ms);
        loy_shadow_t *sh = w->shadow;
        int full = !sh || !sh->valid;
        double num[LOY_SHADOW_FIELDS];
        unsigned char send[LOY_SHADOW_FIELDS];
        unsigned char send_slot[LOY_SLOTS_MAX];
        uint64_t vh = views_hash(c);
        size_t nsend = 0;
        int i;

        ab_raw(s, "*1\r\n$5\r\nMULTI\r\n", 15);
        k++;
        if (w->timer_only) {
                zrem_timer(s, w->fired_partition, c->id);
                ab_raw(s, "*1\r\n$4\r\nEXEC\r\n", 14);
                return k + 2;
        }

        /* what differs from the hash; the whole table when not known */
        i = 0;
        for (const loy_field_t *f = loy_feat_fields; f->name; f++, i++) {
                num[i] = loy_feat_field_number(c, f, at, fconf);
                send[i] = full || (f->type == LOY_FT_STR
                                       ? vh != sh->views_hash
                                       : !same_number(num[i], sh->num[i]));
                nsend += send[i];
        }
        for (int j = 0; j < c->nslots; j++) {
                send_slot[j] = full || j >= sh->nslots ||
                               sh->slot[j] != c->slots[j].value;
                nsend += send_slot[j];
        }
        if (nsend) {
                ab_hdr(s, '*', 2 + 2 * nsend);
                ab_str(s, "HSET");
                ab_key(s, ":c:{", c->id, "}");
                i = 0;
                for (const loy_field_t *f = loy_feat_fields; f->name;
                     f++, i++) {
                        int n;
                        if (!send[i])
                                continue;
                        n = loy_feat_field_format(c, f, at, fconf, field,
                                                  sizeof(field));
                        if (n < 0) {
                                seterr(errstr, size, "customer %s: field "
                                       "%s does not format", c->id, f->name);
                                return -1;
                        }
                        ab_str(s, f->name);
                        ab_bulk(s, field, (size_t)n);
                }
                for (int j = 0; j < c->nslots; j++) {
                        if (!send_slot[j])
                                continue;
                        ab_str(s, c->slots[j].name);
                        ab_i64(s, c->slots[j].value);
                }
                k++;
        }
        if (sh) {
                /* what the hash holds once this transaction has run; a
                 * failed write makes the caller drop it */
                memcpy(sh->num, num, sizeof(num[0]) * (size_t)s->nfields);
                sh->views_hash = vh;
                sh->nslots = c->nslots;
                for (int j = 0; j < c->nslots; j++)
                        sh->slot[j] = c->slots[j].value;
                sh->valid = 1;
        }

        if (w->old_seg != c->segment) {
                if (w->old_seg >= 0) {
                        hincrby(s, s->k_seg, loy_segment_name(w->old_seg),
                                -1);
                        k++;
                }
                hincrby(s, s->k_seg, loy_segment_name(c->segment), 1);
                k++;
        }

        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                int nb = loy_rfm_bin(c, (loy_dim_t)d);
                int ob = w->old_bins[d];
                if (nb == ob)
                        continue;
                if (ob >= 0) {
                        bin_move(s, s->k_hist[d], ob, -1);
                        k++;
                }
                if (nb >= 0) {
                        bin_move(s, s->k_hist[d], nb, 1);
                        k++;
                }
        }

        if (c->first_purchase_ms > 0) {
                ab_hdr(s, '*', 4);
                ab_str(s, "ZADD");
                ab_str(s, s->k_churn);
                ab_dbl(s, c->churn_prob);
                ab_str(s, c->id);
                ab_hdr(s, '*', 4);
                ab_str(s, "ZADD");
                ab_str(s, s->k_clv);
                ab_dbl(s, c->clv);
                ab_str(s, c->id);
                k += 2;
        }

        for (int i = 0; i < w->nkpi; i++) {
                kpi_key(s, w->kpi[i].day_ms, tkey, sizeof(tkey));
                if (w->kpi[i].exact)
                        hincrby(s, tkey, w->kpi[i].field,
                                (int64_t)w->kpi[i].delta);
                else
                        hincrbyfloat(s, tkey, w->kpi[i].field,
                                     w->kpi[i].delta);
                k++;
        }
        for (int i = 0; i < w->nrate_days; i++) {
                kpi_key(s, w->rate_days[i], tkey, sizeof(tkey));
                ab_hdr(s, '*', 4);
                ab_str(s, "EVAL");
                ab_str(s, kpi_rate_lua);
                ab_str(s, "1");
                ab_str(s, tkey);
                k++;
        }

        if (w->timer_fired) {
                zrem_timer(s, w->fired_partition, c->id);
                k++;
        }
        if (c->next_check_ms > 0 &&
            (w->timer_fired || c->next_check_ms != w->old_timer_ms)) {
                char part[24];
                fmt_i64(part, w->partition);
                ab_hdr(s, '*', 4);
                ab_str(s, "ZADD");
                ab_key(s, ":timers:", part, "");
                ab_i64(s, c->next_check_ms);
                ab_str(s, c->id);
                k++;
        } else if (c->next_check_ms == 0 && w->old_timer_ms != 0 &&
                   !(w->timer_fired && w->fired_partition == w->partition)) {
                zrem_timer(s, w->partition, c->id);
                k++;
        }

        if (w->hist_text) {
                ab_hdr(s, '*', 3);
                ab_str(s, "SET");
                ab_key(s, ":c:{", c->id, "}:rh");
                ab_str(s, w->hist_text);
                k++;
        }
        if (w->recs_set) {
                ab_hdr(s, '*', 2);
                ab_str(s, "DEL");
                ab_key(s, ":c:{", c->id, "}:recs");
                k++;
                if (w->nrecs > 0) {
                        ab_hdr(s, '*', 2 + 2 * (size_t)w->nrecs);
                        ab_str(s, "ZADD");
                        ab_key(s, ":c:{", c->id, "}:recs");
                        for (int i = 0; i < w->nrecs; i++) {
                                ab_dbl(s, w->rec_scores[i]);
                                ab_str(s, w->rec_items[i]);
                        }
                        k++;
                }
        }

        if (w->noutbox > 0) {
                ab_hdr(s, '*', 2 + 2 * (size_t)w->noutbox);
                ab_str(s, "HSET");
                ab_str(s, s->k_outbox);
                for (int i = 0; i < w->noutbox; i++) {
                        ab_str(s, w->outbox[i].trigger_id);
                        ab_bulk(s, w->outbox[i].payload, w->outbox[i].len);
                }
                k++;
        }

        ab_raw(s, "*1\r\n$4\r\nEXEC\r\n", 14);
        k++;
        return k;
}

static int reply_is(const redisReply *r, const char *status) {
        return r->type == REDIS_REPLY_STATUS && !strcmp(r->str, status);
}

/* Reads one customer's k replies; LOY_STORE_OK, ERR (first one described in
 * errstr when *first) or ERR_IO. */
static int read_cust(loy_store_t *s, const char *id, int k, int *first,
                     char *errstr, size_t size) {
        int rc = LOY_STORE_OK, refused = 0;
        for (int j = 0; j < k; j++) {
                redisReply *r;
                const char *bad = NULL;
                char why[256];
                if (get_reply(s, &r, errstr, size))
                        return LOY_STORE_ERR_IO;
                if (j == 0) {
                        if (!reply_is(r, "OK"))
                                bad = "MULTI failed";
                } else if (j < k - 1) {
                        if (!reply_is(r, "QUEUED"))
                                bad = "command not queued";
                } else if (r->type == REDIS_REPLY_NIL) {
                        bad = "EXEC aborted";
                } else if (r->type != REDIS_REPLY_ARRAY ||
                           r->elements != (size_t)(k - 2)) {
                        bad = "EXEC failed";
                } else {
                        for (size_t e = 0; e < r->elements; e++)
                                if (r->element[e]->type ==
                                    REDIS_REPLY_ERROR) {
                                        snprintf(why, sizeof(why),
                                                 "command %zu of the "
                                                 "transaction: %s",
                                                 e + 1, r->element[e]->str);
                                        bad = why;
                                        if (is_refusal_reply(r->element[e]))
                                                refused = 1;
                                        break;
                                }
                }
                if (bad && is_refusal_reply(r)) {
                        /* EXECABORT follows; the refusal is what counts */
                        seterr(errstr, size, "customer %s: redis refused: "
                               "%s", id, r->str);
                        *first = 0;
                        refused = 1;
                } else if (bad) {
                        if (*first) {
                                seterr(errstr, size, "customer %s: %s%s%s",
                                       id, bad,
                                       r->type == REDIS_REPLY_ERROR ? ": " :
                                                                      "",
                                       r->type == REDIS_REPLY_ERROR ?
                                               r->str : "");
                                *first = 0;
                        }
                        rc = LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        return refused ? LOY_STORE_ERR_BUSY : rc;
}

int loy_store_write_send(loy_store_t *s, const loy_cust_write_t *w, int n,
                         int64_t now_ms, const loy_feat_conf_t *fconf,
                         char *errstr, size_t errstr_size) {
        pipe_guard_t g;
        int rc, handed = 0, done = 0;
        int i;

        if (n < 0 || (n > 0 && !w)) {
                seterr(errstr, errstr_size, "write: bad arguments");
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        /* Rejected before anything is queued, so a bad customer leaves the
         * whole batch unwritten rather than half of it. */
        for (i = 0; i < n; i++)
                if (check_write(&w[i], errstr, errstr_size))
                        return LOY_STORE_ERR;
        if (n > s->ncmd_cap) {
                int cap = s->ncmd_cap ? s->ncmd_cap : 256;
                int *nc;
                while (cap < n)
                        cap *= 2;
                nc = realloc(s->ncmd, sizeof(*nc) * (size_t)cap);
                if (!nc) {
                        seterr(errstr, errstr_size, "write: out of memory");
                        return LOY_STORE_ERR;
                }
                s->ncmd = nc;
                s->ncmd_cap = cap;
        }

        ab_reset(s);
        for (i = 0; i < n; i++) {
                int k = build_cust(s, &w[i], now_ms, fconf, errstr,
                                   errstr_size);
                if (k < 0 || s->oom) {
                        if (k >= 0)
                                seterr(errstr, errstr_size,
                                       "write: out of memory");
                        /* Customers already handed to hiredis are still
                         * unsent: dropping the connection withdraws them. */
                        if (handed)
                                drop(s);
                        ab_reset(s);
                        return LOY_STORE_ERR;
                }
                s->ncmd[i] = k;
                /* Hand over in ~1 MiB pieces so the buffer stays small. */
                if (s->len >= (1u << 20)) {
                        if ((rc = ab_flush(s, errstr, errstr_size)))
                                return rc;
                        handed = 1;
                }
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;

        /* Transmit now rather than on the first read, so Redis works on this
         * batch while the caller prepares the next. Redis buffers its
         * replies meanwhile, so not reading them cannot stall it. */
        guard_on(&g);
        while (!done)
                if (redisBufferWrite(s->ctx, &done) != REDIS_OK) {
                        rc = io_error(s, errstr, errstr_size);
                        break;
                }
        guard_off(&g);
        if (rc)
                return rc;
        s->fl_w = w;
        s->fl_n = n;
        s->inflight = 1;
        return LOY_STORE_OK;
}

int loy_store_write_recv(loy_store_t *s, char *errstr, size_t errstr_size) {
        const loy_cust_write_t *w = s->fl_w;
        pipe_guard_t g;
        int rc = LOY_STORE_OK, first = 1;

        if (!s->inflight) {
                seterr(errstr, errstr_size, "write: no batch in flight");
                return s->ctx ? LOY_STORE_ERR :
                                not_connected(s, errstr, errstr_size);
        }
        s->inflight = 0;
        s->fl_w = NULL;
        guard_on(&g);
        for (int i = 0; i < s->fl_n; i++) {
                int r = read_cust(s, w[i].cust->id, s->ncmd[i], &first,
                                  errstr, errstr_size);
                if (r == LOY_STORE_ERR_IO) {
                        rc = r;
                        break;
                }
                /* a refusal wins: the batch is retried whole anyway */
                if (r && rc != LOY_STORE_ERR_BUSY)
                        rc = r;
        }
        guard_off(&g);
        return rc;
}

int loy_store_write(loy_store_t *s, const loy_cust_write_t *w, int n,
                    int64_t now_ms, const loy_feat_conf_t *fconf,
                    char *errstr, size_t errstr_size) {
        int rc = loy_store_write_send(s, w, n, now_ms, fconf, errstr,
                                      errstr_size);
        if (rc)
                return rc;
        return loy_store_write_recv(s, errstr, errstr_size);
}

/* Reads n replies and checks none is an error. */
static int read_plain(loy_store_t *s, int n, const char *what, char *errstr,
                      size_t size) {
        pipe_guard_t g;
        int rc = LOY_STORE_OK;
        guard_on(&g);
        for (int i = 0; i < n; i++) {
                redisReply *r;
                if (get_reply(s, &r, errstr, size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
                if (r->type == REDIS_REPLY_ERROR && rc == LOY_STORE_OK) {
                        seterr(errstr, size, "%s: %s", what, r->str);
                        rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY
                                                 : LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        guard_off(&g);
        return rc;
}

int loy_store_stats(loy_store_t *s, const char *const *incr_fields,
                    const double *incr, int nincr,
                    const char *const *set_fields, const double *set,
                    int nset, char *errstr, size_t errstr_size) {
        int rc, ncmd = 0;

        if (nincr < 0 || nset < 0 || (nincr && (!incr_fields || !incr)) ||
            (nset && (!set_fields || !set))) {
                seterr(errstr, errstr_size, "stats: bad arguments");
                return LOY_STORE_ERR;
        }
        for (int i = 0; i < nincr; i++)
                if (!incr_fields[i] || !isfinite(incr[i])) {
                        seterr(errstr, errstr_size, "stats: bad delta %s",
                               incr_fields[i] ? incr_fields[i] : "(null)");
                        return LOY_STORE_ERR;
                }
        for (int i = 0; i < nset; i++)
                if (!set_fields[i] || !isfinite(set[i])) {
                        seterr(errstr, errstr_size, "stats: bad gauge %s",
                               set_fields[i] ? set_fields[i] : "(null)");
                        return LOY_STORE_ERR;
                }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;

        ab_reset(s);
        for (int i = 0; i < nincr; i++) {
                hincrbyfloat(s, s->k_stats, incr_fields[i], incr[i]);
                ncmd++;
        }
        if (nset > 0) {
                ab_hdr(s, '*', 2 + 2 * (size_t)nset);
                ab_str(s, "HSET");
                ab_str(s, s->k_stats);
                for (int i = 0; i < nset; i++) {
                        ab_str(s, set_fields[i]);
                        ab_dbl(s, set[i]);
                }
                ncmd++;
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        return read_plain(s, ncmd, s->k_stats, errstr, errstr_size);
}

/* ---------------------------------------------------- timers and outbox */

/* Sends what is in the buffer as one command and returns its reply. */
static int roundtrip(loy_store_t *s, redisReply **r, char *errstr,
                     size_t size) {
        pipe_guard_t g;
        int rc;
        if ((rc = ab_flush(s, errstr, size)))
                return rc;
        guard_on(&g);
        rc = get_reply(s, r, errstr, size) ? LOY_STORE_ERR_IO : LOY_STORE_OK;
        guard_off(&g);
        return rc;
}

static int timers_due(loy_store_t *s, int32_t partition, int64_t clock_ms,
                      int max, char ***ids, int64_t **due, int *n,
                      char *errstr, size_t errstr_size) {
        redisReply *r;
        char part[24];
        char **out;
        int64_t *when = NULL;
        size_t count, step = due ? 2 : 1;
        int rc;

        *ids = NULL;
        if (due)
                *due = NULL;
        *n = 0;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        if (max <= 0)
                return LOY_STORE_OK;
        fmt_i64(part, partition);
        ab_reset(s);
        ab_hdr(s, '*', due ? 8 : 7);
        ab_str(s, "ZRANGEBYSCORE");
        ab_key(s, ":timers:", part, "");
        ab_str(s, "-inf");
        ab_i64(s, clock_ms);
        if (due)
                ab_str(s, "WITHSCORES");
        ab_str(s, "LIMIT");
        ab_str(s, "0");
        ab_i64(s, max);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements % step) {
                seterr(errstr, errstr_size, "ZRANGEBYSCORE: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str :
                                                      "unexpected reply");
                freeReplyObject(r);
                return LOY_STORE_ERR;
        }
        count = r->elements / step;
        if (count == 0) {
                freeReplyObject(r);
                return LOY_STORE_OK;
        }
        out = calloc(count, sizeof(*out));
        if (due)
                when = calloc(count, sizeof(*when));
        if (!out || (due && !when)) {
                free(out);
                free(when);
                goto oom;
        }
        for (size_t i = 0; i < count; i++) {
                const redisReply *id = r->element[i * step];
                if (id->type != REDIS_REPLY_STRING ||
                    !(out[i] = strdup(id->str))) {
                        loy_store_free_ids(out, (int)i);
                        free(when);
                        goto oom;
                }
                if (due) {
                        const redisReply *sc = r->element[i * step + 1];
                        when[i] = sc->type == REDIS_REPLY_STRING
                                      ? (int64_t)strtod(sc->str, NULL)
                                      : 0;
                }
        }
        *ids = out;
        if (due)
                *due = when;
        *n = (int)count;
        freeReplyObject(r);
        return LOY_STORE_OK;
oom:
        seterr(errstr, errstr_size, "timers: out of memory or bad reply");
        freeReplyObject(r);
        return LOY_STORE_ERR;
}

int loy_store_timers_due(loy_store_t *s, int32_t partition, int64_t clock_ms,
                         int max, char ***ids, int *n, char *errstr,
                         size_t errstr_size) {
        return timers_due(s, partition, clock_ms, max, ids, NULL, n, errstr,
                          errstr_size);
}

int loy_store_timers_due_at(loy_store_t *s, int32_t partition,
                            int64_t clock_ms, int max, char ***ids,
                            int64_t **due, int *n, char *errstr,
                            size_t errstr_size) {
        return timers_due(s, partition, clock_ms, max, ids, due, n, errstr,
                          errstr_size);
}

void loy_store_free_ids(char **ids, int n) {
        if (!ids)
                return;
        for (int i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
}

int loy_store_outbox_scan(loy_store_t *s, loy_outbox_cb_t *cb, void *opaque,
                          char *errstr, size_t errstr_size) {
        char cursor[32] = "0";

        do {
                redisReply *r, *page;
                int rc, stop = 0;
                /* cb may have used the store, and lost it */
                if ((rc = usable(s, errstr, errstr_size)))
                        return rc;
                ab_reset(s);
                ab_hdr(s, '*', 5);
                ab_str(s, "HSCAN");
                ab_str(s, s->k_outbox);
                ab_str(s, cursor);
                ab_str(s, "COUNT");
                ab_str(s, HSCAN_COUNT);
                if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                        return rc;
                if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                    r->element[0]->type != REDIS_REPLY_STRING ||
                    r->element[0]->len >= sizeof(cursor) ||
                    r->element[1]->type != REDIS_REPLY_ARRAY ||
                    r->element[1]->elements % 2) {
                        seterr(errstr, errstr_size, "HSCAN %s: %s",
                               s->k_outbox,
                               r->type == REDIS_REPLY_ERROR ?
                                       r->str : "unexpected reply");
                        freeReplyObject(r);
                        return LOY_STORE_ERR;
                }
                memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
                page = r->element[1];
                for (size_t i = 0; !stop && i + 1 < page->elements; i += 2) {
                        redisReply *k = page->element[i];
                        redisReply *v = page->element[i + 1];
                        if (k->type == REDIS_REPLY_STRING &&
                            v->type == REDIS_REPLY_STRING)
                                stop = cb(k->str, v->str, v->len, opaque);
                }
                freeReplyObject(r);
                if (stop)
                        break;
        } while (strcmp(cursor, "0"));
        return LOY_STORE_OK;
}

int loy_store_outbox_ack(loy_store_t *s, const char *const *ids, int n,
                         char *errstr, size_t errstr_size) {
        int rc;
        if (n <= 0)
                return LOY_STORE_OK;
        if (!ids) {
                seterr(errstr, errstr_size, "outbox ack: no ids");
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        ab_hdr(s, '*', 2 + (size_t)n);
        ab_str(s, "HDEL");
        ab_str(s, s->k_outbox);
        for (int i = 0; i < n; i++)
                ab_str(s, ids[i]);
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        return read_plain(s, 1, "HDEL outbox", errstr, errstr_size);
}

int loy_store_hgetall(loy_store_t *s, const char *key, loy_kv_cb_t *cb,
                      void *opaque, char *errstr, size_t errstr_size) {
        redisReply *r;
        int rc;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        ab_hdr(s, '*', 2);
        ab_str(s, "HGETALL");
        ab_str(s, key);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
                seterr(errstr, errstr_size, "HGETALL %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str :
                                                      "unexpected reply");
                freeReplyObject(r);
                return LOY_STORE_ERR;
        }
        for (size_t i = 0; i + 1 < r->elements; i += 2)
                cb(r->element[i]->str, r->element[i + 1]->str, opaque);
        freeReplyObject(r);
        return LOY_STORE_OK;
}

int loy_store_clock_save(loy_store_t *s, const char *const *parts,
                         const int64_t *newest_ts, int n, char *errstr,
                         size_t errstr_size) {
        int rc;
        if (n <= 0)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        ab_hdr(s, '*', 2 + 2 * (size_t)n);
        ab_str(s, "HSET");
        ab_str(s, s->k_clock);
        for (int i = 0; i < n; i++) {
                ab_str(s, parts[i]);
                ab_i64(s, newest_ts[i]);
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        return read_plain(s, 1, "clock", errstr, errstr_size);
}

int loy_store_clock_load(loy_store_t *s, loy_kv_cb_t *cb, void *opaque,
                         char *errstr, size_t errstr_size) {
        return loy_store_hgetall(s, s->k_clock, cb, opaque, errstr,
                                 errstr_size);
}

/* ------------------------------------------------------------------ */
/* recommendations: customer histories, the shared item model           */
/* ------------------------------------------------------------------ */

int loy_store_get_texts(loy_store_t *s, const char *suffix,
                        const char *const *ids, int n, char **texts,
                        char *errstr, size_t errstr_size) {
        char end[64];
        pipe_guard_t g;
        int rc;
        for (int i = 0; i < n; i++)
                texts[i] = NULL;
        if (n <= 0)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        snprintf(end, sizeof(end), "}%s", suffix);
        ab_reset(s);
        for (int i = 0; i < n; i++) {
                ab_hdr(s, '*', 2);
                ab_str(s, "GET");
                ab_key(s, ":c:{", ids[i], end);
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        guard_on(&g);
        for (int i = 0; i < n; i++) {
                redisReply *r;
                if (get_reply(s, &r, errstr, errstr_size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
                if (r->type == REDIS_REPLY_STRING) {
                        texts[i] = strdup(r->str);
                        if (!texts[i] && rc == LOY_STORE_OK) {
                                seterr(errstr, errstr_size, "out of memory");
                                rc = LOY_STORE_ERR;
                        }
                } else if (r->type == REDIS_REPLY_ERROR &&
                           rc == LOY_STORE_OK) {
                        seterr(errstr, errstr_size, "customer %s: GET: %s",
                               ids[i], r->str);
                        rc = LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        guard_off(&g);
        if (rc)
                for (int i = 0; i < n; i++) {
                        free(texts[i]);
                        texts[i] = NULL;
                }
        return rc;
}

int loy_store_reco_flush(loy_store_t *s, const loy_reco_incr_t *incr,
                         size_t n, char *errstr, size_t errstr_size) {
        int rc, ncmd = 0;
        char key[KEY_MAX];
        if (!n)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        snprintf(key, sizeof(key), "%s:i:n", s->ns);
        ab_reset(s);
        for (size_t i = 0; i < n; i++) {
                if (!incr[i].b) {
                        hincrbyfloat(s, key, incr[i].a, incr[i].delta);
                        ncmd++;
                        continue;
                }
                /* one field per unordered pair, in the hash of the
                 * alphabetically smaller item */
                {
                        int swap = strcmp(incr[i].a, incr[i].b) > 0;
                        char pk[KEY_MAX];
                        snprintf(pk, sizeof(pk), "%s:i:%s:co", s->ns,
                                 swap ? incr[i].b : incr[i].a);
                        hincrbyfloat(s, pk, swap ? incr[i].a : incr[i].b,
                                     incr[i].delta);
                        ncmd++;
                }
        }
        if (s->oom) {
                seterr(errstr, errstr_size, "reco flush: out of memory");
                ab_reset(s);
                return LOY_STORE_ERR;
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        return read_plain(s, ncmd, "reco flush", errstr, errstr_size);
}

typedef struct nbr {
        const char *sku;
        double sim;
        int idx;
} nbr_t;

static int cmp_nbr(const void *a, const void *b) {
        double x = ((const nbr_t *)a)->sim, y = ((const nbr_t *)b)->sim;
        return x < y ? 1 : x > y ? -1 : 0;
}

/* Reads n replies into r[] (NULL-initialised by the caller). */
static int read_replies(loy_store_t *s, redisReply **r, int n, char *errstr,
                        size_t size) {
        pipe_guard_t g;
        int rc = LOY_STORE_OK;
        guard_on(&g);
        for (int i = 0; i < n; i++)
                if (get_reply(s, &r[i], errstr, size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
        guard_off(&g);
        return rc;
}

int loy_store_reco_refresh(loy_store_t *s, const char *const *skus, int n,
                           const char *const *cands, int ncand, int top_k,
                           loy_sim_fn_t *sim, loy_nbrs_cb_t *cb,
                           void *opaque, char *errstr, size_t errstr_size) {
        redisReply **shared = NULL, **rep = NULL;
        nbr_t *nb = NULL;
        const char **names = NULL;
        double *sims = NULL;
        char key[KEY_MAX], pk[KEY_MAX];
        int rc, nset = 0, maxc = ncand + LOY_RECO_K_MAX, nrep = 0;
        if (n <= 0)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        shared = calloc((size_t)n, sizeof(*shared));
        nb = calloc((size_t)maxc, sizeof(*nb));
        names = calloc((size_t)top_k, sizeof(*names));
        sims = calloc((size_t)top_k, sizeof(*sims));
        if (!shared || !nb || !names || !sims) {
                seterr(errstr, errstr_size, "reco refresh: out of memory");
                rc = LOY_STORE_ERR;
                goto out;
        }
        snprintf(key, sizeof(key), "%s:i:n", s->ns);
        /* 1: the shared lists as they stand: candidates found by others */
        ab_reset(s);
        for (int i = 0; i < n; i++) {
                ab_hdr(s, '*', 4);
                ab_str(s, "ZRANGE");
                ab_key(s, ":i:", skus[i], ":nbrs");
                ab_str(s, "0");
                ab_str(s, "-1");
        }
        if ((rc = ab_flush(s, errstr, errstr_size)) ||
            (rc = read_replies(s, shared, n, errstr, errstr_size)))
                goto out;
        /* 2: per item, n(item) and n(candidate) with one HMGET, and each
         * pair count with one HGET */
        rep = calloc((size_t)n * (size_t)(1 + maxc), sizeof(*rep));
        if (!rep) {
                seterr(errstr, errstr_size, "reco refresh: out of memory");
                rc = LOY_STORE_ERR;
                goto out;
        }
        ab_reset(s);
        for (int i = 0; i < n; i++) {
                const char *mine[LOY_RECO_K_MAX * 2 + 64];
                int m = 0;
                for (int j = 0; j < ncand && cands[i * ncand + j]; j++)
                        mine[m++] = cands[i * ncand + j];
                if (shared[i]->type == REDIS_REPLY_ARRAY)
                        for (size_t j = 0; j < shared[i]->elements &&
                                           m < maxc; j++) {
                                const char *b = shared[i]->element[j]->str;
                                int dup = 0;
                                for (int q = 0; q < m && !dup; q++)
                                        dup = !strcmp(mine[q], b);
                                if (!dup)
                                        mine[m++] = b;
                        }
                ab_hdr(s, '*', 3 + (size_t)m);
                ab_str(s, "HMGET");
                ab_str(s, key);
                ab_str(s, skus[i]);
                for (int j = 0; j < m; j++)
                        ab_str(s, mine[j]);
                for (int j = 0; j < m; j++) {
                        int swap = strcmp(skus[i], mine[j]) > 0;
                        snprintf(pk, sizeof(pk), "%s:i:%s:co", s->ns,
                                 swap ? mine[j] : skus[i]);
                        ab_hdr(s, '*', 3);
                        ab_str(s, "HGET");
                        ab_str(s, pk);
                        ab_str(s, swap ? skus[i] : mine[j]);
                }
                nrep += 1 + m;
        }
        if ((rc = ab_flush(s, errstr, errstr_size)) ||
            (rc = read_replies(s, rep, nrep, errstr, errstr_size)))
                goto out;
        /* 3: similarities, the best top_k published and handed back */
        ab_reset(s);
        for (int i = 0, r = 0; i < n; i++) {
                redisReply *counts = rep[r++];
                size_t m = counts->type == REDIS_REPLY_ARRAY &&
                                   counts->elements > 0
                               ? counts->elements - 1
                               : 0;
                double na = m && counts->element[0]->type ==
                                         REDIS_REPLY_STRING
                                ? strtod(counts->element[0]->str, NULL)
                                : 0;
                int k = 0;
                for (size_t j = 0; j < m; j++) {
                        redisReply *nbv = counts->element[j + 1];
                        redisReply *cv = rep[r + (int)j];
                        if (nbv->type != REDIS_REPLY_STRING ||
                            cv->type != REDIS_REPLY_STRING || na <= 0)
                                continue;
                        /* the HMGET echoed the names in order */
                        nb[k].sku = NULL;
                        nb[k].sim = sim(opaque, strtod(cv->str, NULL), na,
                                        strtod(nbv->str, NULL));
                        nb[k].idx = (int)j;
                        if (nb[k].sim > 0 && isfinite(nb[k].sim))
                                k++;
                }
                r += (int)m;
                /* names: rebuild the candidate order used above */
                {
                        const char *mine[LOY_RECO_K_MAX * 2 + 64];
                        int mm = 0;
                        for (int j = 0; j < ncand && cands[i * ncand + j];
                             j++)
                                mine[mm++] = cands[i * ncand + j];
                        if (shared[i]->type == REDIS_REPLY_ARRAY)
                                for (size_t j = 0; j < shared[i]->elements &&
                                                   mm < maxc; j++) {
                                        const char *b =
                                            shared[i]->element[j]->str;
                                        int dup = 0;
                                        for (int q = 0; q < mm && !dup; q++)
                                                dup = !strcmp(mine[q], b);
                                        if (!dup)
                                                mine[mm++] = b;
                                }
                        for (int j = 0; j < k; j++)
                                nb[j].sku = mine[nb[j].idx];
                }
                qsort(nb, (size_t)k, sizeof(*nb), cmp_nbr);
                if (k > top_k)
                        k = top_k;
                for (int j = 0; j < k; j++) {
                        names[j] = nb[j].sku;
                        sims[j] = nb[j].sim;
                }
                ab_hdr(s, '*', 2);
                ab_str(s, "DEL");
                ab_key(s, ":i:", skus[i], ":nbrs");
                nset++;
                if (k > 0) {
                        ab_hdr(s, '*', 2 + 2 * (size_t)k);
                        ab_str(s, "ZADD");
                        ab_key(s, ":i:", skus[i], ":nbrs");
                        for (int j = 0; j < k; j++) {
                                ab_dbl(s, sims[j]);
                                ab_str(s, names[j]);
                        }
                        nset++;
                }
                if (cb)
                        cb(opaque, skus[i], names, sims, k);
        }
        if (nset && (rc = ab_flush(s, errstr, errstr_size)) == 0)
                rc = read_plain(s, nset, "reco refresh", errstr,
                                errstr_size);
out:
        for (int i = 0; shared && i < n; i++)
                if (shared[i])
                        freeReplyObject(shared[i]);
        for (int i = 0; rep && i < nrep; i++)
                if (rep[i])
                        freeReplyObject(rep[i]);
        free(shared);
        free(rep);
        free(nb);
        free(names);
        free(sims);
        return rc;
}
