/*
 * loy_store: the Redis state store (see loy_store.h and docs/redis-keys.md).
 *
 * Commands are written as RESP straight into one per-store buffer that is
 * reused from batch to batch (grown geometrically), then handed to the
 * router (state/loy_cluster), which cuts them into single-slot units and
 * sends each to the node that serves its slot: one plain redis-server or
 * the masters of a Redis Cluster, through the same code. Nothing reaches a
 * socket before the first reply is asked for (or a write is sent), so a
 * batch that fails while being built is withdrawn whole by resetting the
 * pipe. Replies are read back in the order the commands were built.
 *
 * Every I/O error marks the store disconnected: the caller reconnects with
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

#include "loy_cluster.h"
#include "loy_rconn.h"
#include "loy_sigpipe.h"

#include "../features/loy_date.h"
#include "../features/loy_hash.h"
#include "../features/loy_pack.h"

#define NS_MAX 64
#define KEY_MAX 160    /* fixed keys: namespace + a short suffix */
#define FIELD_BUF 4096 /* one formatted customer field */
#define DEFAULT_TIMEOUT_MS 2000
#define HSCAN_COUNT "500"
#define PUSH_BYTES (64u << 10) /* a write is sent in pieces this big */

/* Replies a write waits for: k of them (a MULTI/EXEC when tx), about
 * what (a customer id or a key, for messages). */
typedef struct unit {
        const char *what;
        int k;
        int tx;
        int cust; /* what is a customer id */
} unit_t;

enum { PIPE_BUILDING, PIPE_SENT, PIPE_DONE };

struct loy_store {
        loy_cluster_t *cl;
        loy_cluster_pipe_t *pipe;
        int up;         /* 0 until connected, and after an error */
        char addr[300]; /* the seed, for messages */
        /* The pipe's state, and the next reply to hand out. */
        int pstate;
        size_t cur_unit;
        int cur_rep;
        char pipe_err[256]; /* why the pipe's units failed */
        /* A reply that said this connection may not do what it asked
         * (NOAUTH, NOPERM): reported by the next loy_store_connect(). */
        char refused[256];
        char ns[NS_MAX + 1];
        size_t nslen;

        /* Keys that do not depend on a customer, built once. */
        char k_seg[KEY_MAX];
        char k_churn[KEY_MAX];
        char k_clv[KEY_MAX];
        char k_outbox[KEY_MAX];
        char k_stats[KEY_MAX];
        char k_clock[KEY_MAX];
        char k_fence[KEY_MAX];
        char k_kpi_days[KEY_MAX];
        char k_kpi_closed[KEY_MAX];
        char k_hist[LOY_DIM__COUNT][KEY_MAX];

        int nfields;          /* entries of loy_feat_fields */
        int fi_churn, fi_clv; /* their index there (-1: none) */

        /* RESP being built. oom is sticky so the builders need no checks;
         * it is looked at once per command group. */
        char *buf;
        size_t len, cap;
        int oom;

        /* A write sent by loy_store_write_send, replies not read yet:
         * what each group of its replies is. */
        int inflight;
        unit_t *units;
        int nunits, units_cap;

        /* This process's name in the fence's owner fields and on its
         * connections (loy_store_set_owner); "" until set. */
        char owner[LOY_OWNER_MAX + 1];
        loy_store_hook_fn *after_agg;
        void *after_agg_opaque;
};

/* ---------------------------------------------------------------- errors */

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Through a copy: callers pass errstr itself as an argument ("redis %s:
 * %s" around a reason the router wrote there). */
static void seterr(char *errstr, size_t size, const char *fmt, ...) {
        char tmp[1024];
        va_list ap;
        if (!errstr || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        snprintf(errstr, size, "%s", tmp);
}

/* The pipe's replies (and a write in flight, whose caller learns it from
 * loy_store_write_recv) are given up; the router drops the connections
 * that failed and opens them again on the next use. */
static void drop(loy_store_t *s) {
        loy_cluster_pipe_reset(s->pipe);
        s->pstate = PIPE_BUILDING;
        s->up = 0;
        s->inflight = 0;
}

static int not_connected(const loy_store_t *s, char *errstr, size_t size) {
        seterr(errstr, size, "redis %s: not connected", s->addr);
        return LOY_STORE_ERR_IO;
}

/* Connected and not waiting for a write's replies (they come first on the
 * connection, so nothing else may be sent before they are read). */
static int usable(const loy_store_t *s, char *errstr, size_t size) {
        if (!s->up)
                return not_connected(s, errstr, size);
        if (s->inflight) {
                seterr(errstr, size,
                       "redis: a write is in flight; call "
                       "loy_store_write_recv first");
                return LOY_STORE_ERR;
        }
        return LOY_STORE_OK;
}

int loy_store_is_refusal(const char *e) {
        /* The prefixes Redis uses for "not now" (server.c, cluster.c). */
        static const char *const transient[] = {
            "OOM ",      "READONLY ",    "MISCONF ",    "LOADING ",    "BUSY ",
            "TRYAGAIN ", "CLUSTERDOWN ", "MASTERDOWN ", "NOREPLICAS ", NULL};
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

/* Records a failure to reach Redis and drops the pipe. */
static int io_error(loy_store_t *s, const char *why, char *errstr,
                    size_t size) {
        seterr(errstr, size, "redis %s: %s", s->addr,
               why && *why ? why : "connection lost");
        drop(s);
        return LOY_STORE_ERR_IO;
}

/* SIGPIPE from a dead server is held off around the I/O (loy_sigpipe,
 * and inside the router). */

/* Next reply of the pipe, sending and receiving it first when that is
 * still to do; or -1 (pipe dropped, errstr filled). A unit the router
 * could not deliver (connection lost, TRYAGAIN or CLUSTERDOWN while slots
 * move) counts as a lost connection: the caller reconnects, which reads
 * the slot map again, and retries the batch. */
static int get_reply(loy_store_t *s, redisReply **r, char *errstr,
                     size_t size) {
        int n = 0;
        if (s->pstate != PIPE_DONE) {
                s->pipe_err[0] = '\0';
                if (s->pstate == PIPE_BUILDING)
                        (void)loy_cluster_pipe_exec(s->pipe, s->pipe_err,
                                                    sizeof(s->pipe_err));
                else
                        (void)loy_cluster_pipe_recv(s->pipe, s->pipe_err,
                                                    sizeof(s->pipe_err));
                s->pstate = PIPE_DONE;
                s->cur_unit = 0;
                s->cur_rep = 0;
        }
        while (s->cur_unit < loy_cluster_pipe_units(s->pipe) &&
               (loy_cluster_pipe_replies(s->pipe, s->cur_unit, &n),
                s->cur_rep >= n)) {
                s->cur_unit++;
                s->cur_rep = 0;
        }
        if (s->cur_unit >= loy_cluster_pipe_units(s->pipe)) {
                io_error(s, "a reply was asked for that no command awaits",
                         errstr, size);
                return -1;
        }
        if (loy_cluster_pipe_status(s->pipe, s->cur_unit) != LOY_CLUSTER_OK ||
            !(*r = loy_cluster_pipe_take(s->pipe, s->cur_unit, s->cur_rep))) {
                io_error(s, s->pipe_err, errstr, size);
                return -1;
        }
        s->cur_rep++;
        /* Not the data's fault, nor the moment's: no retry or quarantine
         * can help, so it goes up as a lost connection, and the
         * reconnect says what it is. */
        if ((*r)->type == REDIS_REPLY_ERROR &&
            loy_rconn_is_auth_error((*r)->str)) {
                snprintf(s->refused, sizeof(s->refused), "%s", (*r)->str);
                io_error(s, (*r)->str, errstr, size);
                freeReplyObject(*r);
                *r = NULL;
                return -1;
        }
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

/* "<cmd> <key> <args...>". */
static void ab_key_args(loy_store_t *s, const char *cmd, const char *key,
                        const char *const *args, int n) {
        ab_hdr(s, '*', 2 + (size_t)n);
        ab_str(s, cmd);
        ab_str(s, key);
        for (int i = 0; i < n; i++)
                ab_str(s, args[i]);
}

/* Hands the built commands to the router (kept, not sent). The replies
 * of the pipe before, read or not, are dropped first. */
static int ab_flush(loy_store_t *s, char *errstr, size_t size) {
        if (s->oom) {
                ab_reset(s);
                seterr(errstr, size, "out of memory building commands");
                return LOY_STORE_ERR;
        }
        if (s->pstate != PIPE_BUILDING) {
                loy_cluster_pipe_reset(s->pipe);
                s->pstate = PIPE_BUILDING;
        }
        if (s->len && loy_cluster_pipe_add_cmds(s->pipe, s->buf, s->len, NULL,
                                                errstr, size)) {
                ab_reset(s);
                loy_cluster_pipe_reset(s->pipe);
                return LOY_STORE_ERR;
        }
        ab_reset(s);
        return LOY_STORE_OK;
}

/* ------------------------------------------------------- create/connect */

static void fixed_key(const loy_store_t *s, char *dst, const char *suffix) {
        snprintf(dst, KEY_MAX, "%s:%s", s->ns, suffix);
}

/* PING through the pipe: LOY_STORE_OK, or an error that dropped it. */
static int ping(loy_store_t *s, char *errstr, size_t size) {
        redisReply *r = NULL;
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK;
        ab_reset(s);
        ab_hdr(s, '*', 1);
        ab_str(s, "PING");
        if ((rc = ab_flush(s, errstr, size)))
                return rc;
        s->up = 1; /* for the one reply; reset on failure */
        loy_sigpipe_block(&g);
        if (get_reply(s, &r, errstr, size))
                rc = LOY_STORE_ERR_IO;
        loy_sigpipe_restore(&g);
        if (rc)
                return rc;
        if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG")) {
                /* LOADING ...: connected but not usable yet. */
                seterr(errstr, size, "redis %s: PING: %s", s->addr,
                       r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
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
                       "without braces or blanks",
                       ns, NS_MAX);
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
        if (!s) {
                seterr(errstr, errstr_size, "redis: out of memory");
                return NULL;
        }
        snprintf(s->addr, sizeof(s->addr),
                 strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        if (timeout_ms == 0)
                timeout_ms = DEFAULT_TIMEOUT_MS;
        /* A cluster's seed: the router reads the other masters from it. */
        if (!(s->cl = loy_cluster_create(s->addr, timeout_ms, errstr,
                                         errstr_size)) ||
            !(s->pipe = loy_cluster_pipe_create(s->cl, errstr, errstr_size))) {
                loy_store_destroy(s);
                return NULL;
        }
        snprintf(s->ns, sizeof(s->ns), "%s", ns);
        s->nslen = strlen(s->ns);
        fixed_key(s, s->k_seg, LOY_KEY_SEG);
        fixed_key(s, s->k_churn, LOY_KEY_RANK_CHURN);
        fixed_key(s, s->k_clv, LOY_KEY_RANK_CLV);
        fixed_key(s, s->k_outbox, "outbox");
        fixed_key(s, s->k_stats, LOY_KEY_STATS);
        fixed_key(s, s->k_clock, "clock");
        fixed_key(s, s->k_fence, LOY_KEY_FENCE);
        fixed_key(s, s->k_kpi_days, LOY_KEY_KPI_DAYS);
        fixed_key(s, s->k_kpi_closed, LOY_KEY_KPI_CLOSED);
        for (int d = 0; d < LOY_DIM__COUNT; d++) {
                char suffix[64];
                snprintf(suffix, sizeof(suffix), LOY_KEY_HIST "%s",
                         loy_dim_name((loy_dim_t)d));
                fixed_key(s, s->k_hist[d], suffix);
        }
        s->fi_churn = s->fi_clv = -1;
        for (const loy_field_t *f = loy_feat_fields; f->name; f++) {
                if (!strcmp(f->name, "churn_prob"))
                        s->fi_churn = s->nfields;
                else if (!strcmp(f->name, "clv"))
                        s->fi_clv = s->nfields;
                s->nfields++;
        }
        if (s->nfields > LOY_SHADOW_FIELDS) {
                seterr(errstr, errstr_size,
                       "store: %d customer fields, "
                       "LOY_SHADOW_FIELDS is %d",
                       s->nfields, LOY_SHADOW_FIELDS);
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
        loy_cluster_pipe_destroy(s->pipe);
        loy_cluster_destroy(s->cl);
        free(s->buf);
        free(s->units);
        free(s);
}

int loy_store_connect(loy_store_t *s, char *errstr, size_t errstr_size) {
        int had = s->up, rc;
        if (s->inflight) {
                seterr(errstr, errstr_size,
                       "redis: a write is in flight; "
                       "call loy_store_write_recv first");
                return LOY_STORE_ERR;
        }
        if (s->refused[0]) {
                seterr(errstr, errstr_size,
                       "redis %s: %s (check redis.user, "
                       "redis.password and the user's ACL)",
                       s->addr, s->refused);
                s->refused[0] = '\0';
                return LOY_STORE_ERR_AUTH;
        }
        /* Up: a PING says whether it still is (the router follows
         * redirections by itself, so the map is not read every time). */
        if (had && ping(s, errstr, errstr_size) == LOY_STORE_OK)
                return LOY_STORE_OK;
        /* Down, or stale (a server restarted, a master replaced): the map
         * may have moved too; read it again, then a PING on a connection
         * the router opens afresh. */
        rc = loy_cluster_refresh(s->cl, errstr, errstr_size);
        if (rc != LOY_CLUSTER_OK) {
                drop(s);
                return rc == LOY_CLUSTER_ERR_AUTH ? LOY_STORE_ERR_AUTH
                                                  : LOY_STORE_ERR_IO;
        }
        rc = ping(s, errstr, errstr_size);
        if (rc && s->refused[0]) {
                s->refused[0] = '\0';
                return LOY_STORE_ERR_AUTH;
        }
        return rc;
}

int loy_store_set_conn(loy_store_t *s, const loy_rconn_opts_t *o, char *errstr,
                       size_t errstr_size) {
        if (s->inflight) {
                seterr(errstr, errstr_size, "redis: a write is in flight");
                return LOY_STORE_ERR;
        }
        if (loy_cluster_set_conn(s->cl, o, errstr, errstr_size) !=
            LOY_CLUSTER_OK)
                return LOY_STORE_ERR;
        drop(s);
        return LOY_STORE_OK;
}

int loy_store_is_connected(const loy_store_t *s) {
        return s->up;
}

void loy_store_router_stats(const loy_store_t *s, loy_cluster_stats_t *st) {
        loy_cluster_stats(s->cl, st);
}

const char *loy_store_ns(const loy_store_t *s) {
        return s->ns;
}

/* -------------------------------------------------------------- loading */

int loy_store_cust_from_reply(const redisReply *r, loy_cust_t *c,
                              const char **bad) {
        /* a customer hash holds the view, its slots and the chunks */
        enum { MAXF = LOY_PACK_CHUNKS_MAX + LOY_SLOTS_MAX + 128 };
        const char *names[MAXF], *vals[MAXF];
        size_t lens[MAXF], n = 0;
        *bad = "HGETALL";
        if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 ||
            r->elements / 2 > MAXF)
                return -1;
        for (size_t j = 0; j + 1 < r->elements; j += 2) {
                const redisReply *k = r->element[j], *v = r->element[j + 1];
                if (k->type != REDIS_REPLY_STRING ||
                    v->type != REDIS_REPLY_STRING)
                        return -1;
                names[n] = k->str;
                vals[n] = v->str;
                lens[n++] = v->len;
        }
        return loy_pack_from_hash(c, names, vals, lens, n, bad);
}

/* Chunks fetched by a load's HMGET: enough for a customer with a dozen
 * slots; a longer state, or a hash without chunks, is read whole. */
#define LOAD_CHUNKS 6

/* HGETALL of the customers in which[]: a hash written before the packed
 * state existed (or by hand), or a state longer than LOAD_CHUNKS. */
static int load_whole(loy_store_t *s, loy_cust_t *const *custs,
                      const int *which, int n, int *found, char *errstr,
                      size_t size) {
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK;
        ab_reset(s);
        for (int i = 0; i < n; i++) {
                ab_hdr(s, '*', 2);
                ab_str(s, "HGETALL");
                ab_key(s, ":c:{", custs[which[i]]->id, "}");
        }
        if ((rc = ab_flush(s, errstr, size)))
                return rc;
        loy_sigpipe_block(&g);
        for (int i = 0; i < n; i++) {
                loy_cust_t *c = custs[which[i]];
                const char *bad = "?";
                redisReply *r;
                if (get_reply(s, &r, errstr, size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
                if (is_refusal_reply(r)) {
                        seterr(errstr, size, "redis refused: %s", r->str);
                        rc = LOY_STORE_ERR_BUSY;
                } else if (loy_store_cust_from_reply(r, c, &bad)) {
                        if (rc == LOY_STORE_OK)
                                seterr(errstr, size, "customer %s: %s%s", c->id,
                                       r->type == REDIS_REPLY_ERROR
                                           ? "HGETALL: "
                                           : "bad field ",
                                       r->type == REDIS_REPLY_ERROR ? r->str
                                                                    : bad);
                        if (rc != LOY_STORE_ERR_BUSY)
                                rc = LOY_STORE_ERR;
                } else if (found) {
                        found[which[i]] = r->elements > 0;
                }
                freeReplyObject(r);
        }
        loy_sigpipe_restore(&g);
        return rc;
}

/* The packed state from an HMGET reply of the first chunks and
 * last_event_ms: 1 loaded, 0 no such customer, 2 to be read whole, -1 a
 * state that does not unpack. */
static int from_chunks(const redisReply *r, loy_cust_t *c) {
        unsigned char buf[LOAD_CHUNKS * LOY_PACK_CHUNK];
        size_t len = 0;
        long need;
        int k;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != LOAD_CHUNKS + 1)
                return -1;
        if (r->element[0]->type != REDIS_REPLY_STRING)
                /* a hash of the readable fields alone, as older versions
                 * wrote it (they always wrote last_event_ms), or none */
                return r->element[LOAD_CHUNKS]->type == REDIS_REPLY_STRING ? 2
                                                                           : 0;
        for (k = 0;
             k < LOAD_CHUNKS && r->element[k]->type == REDIS_REPLY_STRING &&
             r->element[k]->len <= LOY_PACK_CHUNK;
             k++) {
                memcpy(buf + len, r->element[k]->str, r->element[k]->len);
                len += r->element[k]->len;
        }
        need = loy_pack_length(buf, len);
        if (need > (long)len && k == LOAD_CHUNKS)
                return 2;
        return loy_pack_unpack(c, buf, len) ? -1 : 1;
}

/* One pipelined HMGET per customer: the first chunks of its packed state
 * (and last_event_ms, which tells an older hash from none); the few that
 * need more are read whole in a second round trip. */
int loy_store_load(loy_store_t *s, loy_cust_t *const *custs, int n, int *found,
                   char *errstr, size_t errstr_size) {
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK;
        int *whole = NULL, nwhole = 0;
        int i;

        if (n < 0 || (n > 0 && !custs)) {
                seterr(errstr, errstr_size, "load: bad arguments");
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        if (n == 0)
                return LOY_STORE_OK;
        if (!(whole = malloc(sizeof(*whole) * (size_t)n))) {
                seterr(errstr, errstr_size, "load: out of memory");
                return LOY_STORE_ERR;
        }

        ab_reset(s);
        for (i = 0; i < n; i++) {
                ab_hdr(s, '*', 3 + LOAD_CHUNKS);
                ab_str(s, "HMGET");
                ab_key(s, ":c:{", custs[i]->id, "}");
                for (int k = 0; k < LOAD_CHUNKS; k++) {
                        char name[8];
                        loy_pack_chunk_name(k, name);
                        ab_str(s, name);
                }
                ab_str(s, "last_event_ms");
        }
        if ((rc = ab_flush(s, errstr, errstr_size))) {
                free(whole);
                return rc;
        }

        loy_sigpipe_block(&g);
        for (i = 0; i < n; i++) {
                loy_cust_t *c = custs[i];
                redisReply *r;
                int got;
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
                got = from_chunks(r, c);
                if (got == 2)
                        whole[nwhole++] = i;
                else if (got == 1 && found)
                        found[i] = 1;
                if (got < 0) {
                        if (rc == LOY_STORE_OK)
                                seterr(errstr, errstr_size, "customer %s: %s",
                                       c->id,
                                       r->type == REDIS_REPLY_ERROR
                                           ? r->str
                                           : "bad field e0 (the packed "
                                             "state does not unpack)");
                        if (rc != LOY_STORE_ERR_BUSY)
                                rc = LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        loy_sigpipe_restore(&g);
        if (rc == LOY_STORE_OK && nwhole)
                rc = load_whole(s, custs, whole, nwhole, found, errstr,
                                errstr_size);
        free(whole);
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
        loy_sigpipe_t g;
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
        loy_sigpipe_block(&g);
        for (d = 0; d < LOY_DIM__COUNT; d++)
                if (get_reply(s, &r[d], errstr, errstr_size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
        loy_sigpipe_restore(&g);

        /* Check everything before touching rfm: all or nothing. */
        for (d = 0; rc == LOY_STORE_OK && d < LOY_DIM__COUNT; d++) {
                if (r[d]->type != REDIS_REPLY_ARRAY || r[d]->elements % 2) {
                        seterr(errstr, errstr_size, "HGETALL %s: %s",
                               s->k_hist[d],
                               r[d]->type == REDIS_REPLY_ERROR
                                   ? r[d]->str
                                   : "unexpected reply");
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
                                seterr(errstr, errstr_size, "%s: bad bin %s",
                                       s->k_hist[d],
                                       k->type == REDIS_REPLY_STRING ? k->str
                                                                     : "?");
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

/* "<ns>:{agg}:kpi:yyyy-mm-dd" for the UTC day holding ms. */
static void kpi_key(const loy_store_t *s, int64_t ms, char *dst, size_t size) {
        int64_t days = ms / LOY_MS_PER_DAY;
        char day[32];
        if (ms % LOY_MS_PER_DAY < 0)
                days--;
        loy_date_format(days, day, sizeof(day));
        snprintf(dst, size, "%s:" LOY_KEY_KPI "%s", s->ns, day);
}

static int check_write(const loy_cust_write_t *w, char *errstr, size_t size) {
        const loy_cust_t *c = w->cust;
        if (!c || !c->id[0]) {
                seterr(errstr, size, "write: customer without id");
                return -1;
        }
        if (c->nslots < 0 || c->nslots > LOY_SLOTS_MAX || c->segment < 0 ||
            c->segment >= LOY_SEG__COUNT || w->nrecs < 0 ||
            (w->recs_set && w->nrecs && (!w->rec_items || !w->rec_scores))) {
                seterr(errstr, size, "customer %s: bad write description",
                       c->id);
                return -1;
        }
        if (c->first_purchase_ms > 0 &&
            (!isfinite(c->churn_prob) || !isfinite(c->clv))) {
                seterr(errstr, size,
                       "customer %s: churn_prob or clv is "
                       "not a finite number",
                       c->id);
                return -1;
        }
        return 0;
}

static uint64_t views_hash(const loy_cust_t *c) {
        uint64_t h = LOY_HASH_OFFSET;
        for (int i = 0; i < LOY_RECENT_VIEWS; i++) {
                h = loy_hash64_update(h, c->recent_views[i],
                                      strlen(c->recent_views[i]));
                /* a byte no UTF-8 text holds ends each sku */
                h = loy_hash64_update(h, "\xff", 1);
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

/* What a write does with the customer's timer entries. */
typedef struct timer_ops {
        int add;          /* ZADD <partition> next_check_ms */
        int32_t rem_part; /* ZREM there after the hash; -1: none */
} timer_ops_t;

static timer_ops_t timer_ops(const loy_cust_write_t *w) {
        const loy_cust_t *c = w->cust;
        timer_ops_t op = {0, -1};
        if (w->timer_only) {
                op.rem_part = w->fired_partition;
                return op;
        }
        op.add = c->next_check_ms > 0 &&
                 (w->timer_fired || c->next_check_ms != w->old_timer_ms);
        if (w->timer_fired && !(op.add && w->fired_partition == w->partition))
                /* the ZADD in the same partition moves the entry itself */
                op.rem_part = w->fired_partition;
        else if (!w->timer_fired && c->next_check_ms == 0 &&
                 w->old_timer_ms != 0)
                op.rem_part = w->partition;
        return op;
}

/* A rank score is sent when it may differ from what the board holds. */
static int rank_changed(const loy_store_t *s, const loy_cust_write_t *w,
                        int fi) {
        const loy_shadow_t *sh = w->shadow;
        double v = fi == s->fi_churn ? w->cust->churn_prob : w->cust->clv;
        if (w->timer_only || w->cust->first_purchase_ms <= 0)
                return 0;
        return !sh || !sh->valid || fi < 0 || !same_number(v, sh->num[fi]);
}

/* One customer's hash (with its recommendations): a lone HSET, or
 * MULTI/EXEC when more than the hash changes. Returns the number
 * of replies it yields (0: nothing to send) and sets *tx, or -1. */
static int build_cust(loy_store_t *s, const loy_cust_write_t *w, int64_t now_ms,
                      const loy_feat_conf_t *fconf, int *tx, char *errstr,
                      size_t size) {
        const loy_cust_t *c = w->cust;
        char field[FIELD_BUF];
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
        unsigned char packed[LOY_PACK_MAX];
        int packed_len;
        size_t nsend = 0;
        int k = 0, i, tomb;

        *tx = 0;
        if (w->timer_only)
                return 0;
        tomb = loy_feat_is_forgotten(c);
        /* the view's fields that differ from the hash; all of them when
         * not known */
        i = 0;
        for (const loy_field_t *f = loy_feat_fields; f->name; f++, i++) {
                num[i] = loy_feat_field_number(c, f, at, fconf);
                send[i] = f->view && !tomb &&
                          (full || (f->type == LOY_FT_STR
                                        ? vh != sh->views_hash
                                        : !same_number(num[i], sh->num[i])));
                nsend += send[i];
        }
        for (int j = 0; j < c->nslots; j++) {
                send_slot[j] =
                    full || j >= sh->nslots || sh->slot[j] != c->slots[j].value;
                nsend += send_slot[j];
        }
        nsend += (size_t)tomb; /* forgotten_ms */
        if (w->hist_text || w->recs_set || w->erase) {
                ab_raw(s, "*1\r\n$5\r\nMULTI\r\n", 15);
                *tx = 1;
        }
        if (w->erase) {
                ab_hdr(s, '*', 4);
                ab_str(s, "DEL");
                ab_key(s, ":c:{", c->id, "}");
                ab_key(s, ":c:{", c->id, "}:rh");
                ab_key(s, ":c:{", c->id, "}:recs");
                k++;
        }
        packed_len = loy_pack_cust(c, packed, sizeof(packed));
        if (packed_len < 0) {
                seterr(errstr, size, "customer %s: state does not pack", c->id);
                return -1;
        }
        {
                /* the packed engine state always (a write means it moved),
                 * in chunks that keep the hash a listpack */
                int nchunks =
                    (packed_len + LOY_PACK_CHUNK - 1) / LOY_PACK_CHUNK;
                ab_hdr(s, '*', 2 + 2 * ((size_t)nchunks + nsend));
                ab_str(s, "HSET");
                ab_key(s, ":c:{", c->id, "}");
                for (int ch = 0; ch < nchunks; ch++) {
                        char name[8];
                        int off = ch * LOY_PACK_CHUNK;
                        loy_pack_chunk_name(ch, name);
                        ab_str(s, name);
                        ab_bulk(s, packed + off,
                                (size_t)(packed_len - off < LOY_PACK_CHUNK
                                             ? packed_len - off
                                             : LOY_PACK_CHUNK));
                }
                i = 0;
                for (const loy_field_t *f = loy_feat_fields; f->name;
                     f++, i++) {
                        int n;
                        if (!send[i])
                                continue;
                        n = loy_feat_field_format_view(c, f, at, fconf, field,
                                                       sizeof(field));
                        if (n < 0) {
                                seterr(errstr, size,
                                       "customer %s: field "
                                       "%s does not format",
                                       c->id, f->name);
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
                if (tomb) {
                        ab_str(s, "forgotten_ms");
                        ab_i64(s, c->forgotten_ms);
                }
                k++;
        }
        if (sh && tomb) {
                /* the hash holds none of the view: a later life writes
                 * all of it */
                sh->valid = 0;
        } else if (sh) {
                /* what the hash holds once this write has run; a failed
                 * write makes the caller drop it */
                memcpy(sh->num, num, sizeof(num[0]) * (size_t)s->nfields);
                sh->views_hash = vh;
                sh->nslots = c->nslots;
                for (int j = 0; j < c->nslots; j++)
                        sh->slot[j] = c->slots[j].value;
                sh->valid = 1;
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
                        for (int j = 0; j < w->nrecs; j++) {
                                ab_dbl(s, w->rec_scores[j]);
                                ab_str(s, w->rec_items[j]);
                        }
                        k++;
                }
        }
        if (*tx) {
                ab_raw(s, "*1\r\n$4\r\nEXEC\r\n", 14);
                return k + 2;
        }
        return k;
}

/* A group command over the batch: "<cmd> <key> [score] member ..." for the
 * writes selected by want(); returns 1 when one was built, 0 when none of
 * the writes has a member for it. */
typedef int(member_fn_t)(const loy_store_t *s, const loy_cust_write_t *w,
                         int32_t part, double *score);

static int group_cmd(loy_store_t *s, const char *cmd, const char *key,
                     int with_score, const loy_cust_write_t *w, int n,
                     int32_t part, member_fn_t *want) {
        size_t m = 0;
        double score;
        for (int i = 0; i < n; i++)
                m += (size_t)want(s, &w[i], part, &score);
        if (!m)
                return 0;
        ab_hdr(s, '*', 2 + (with_score ? 2 : 1) * m);
        ab_str(s, cmd);
        ab_str(s, key);
        for (int i = 0; i < n; i++) {
                if (!want(s, &w[i], part, &score))
                        continue;
                if (with_score)
                        ab_dbl(s, score);
                ab_str(s, w[i].cust->id);
        }
        return 1;
}

static int want_timer_add(const loy_store_t *s, const loy_cust_write_t *w,
                          int32_t part, double *score) {
        (void)s;
        *score = (double)w->cust->next_check_ms;
        return w->partition == part && timer_ops(w).add;
}

static int want_timer_rem(const loy_store_t *s, const loy_cust_write_t *w,
                          int32_t part, double *score) {
        (void)s;
        *score = 0;
        return timer_ops(w).rem_part == part;
}

static int want_churn(const loy_store_t *s, const loy_cust_write_t *w,
                      int32_t part, double *score) {
        (void)part;
        *score = w->cust->churn_prob;
        return rank_changed(s, w, s->fi_churn);
}

/* An erased customer leaves the boards, unless it bought again since. */
static int want_rank_rem(const loy_store_t *s, const loy_cust_write_t *w,
                         int32_t part, double *score) {
        (void)s;
        (void)part;
        *score = 0;
        return w->erase && w->cust->first_purchase_ms <= 0;
}

static int want_clv(const loy_store_t *s, const loy_cust_write_t *w,
                    int32_t part, double *score) {
        (void)part;
        *score = w->cust->clv;
        return rank_changed(s, w, s->fi_clv);
}

/* The distinct partitions the writes add (add 1) or remove (add 0) timer
 * entries in; returns their count (at most max). */
static int timer_parts(const loy_cust_write_t *w, int n, int add,
                       int32_t *parts, int max) {
        int np = 0;
        for (int i = 0; i < n; i++) {
                timer_ops_t op = timer_ops(&w[i]);
                int32_t part =
                    add ? (op.add ? w[i].partition : -1) : op.rem_part;
                int seen = 0;
                if (part < 0)
                        continue;
                for (int j = 0; j < np && !seen; j++)
                        seen = parts[j] == part;
                if (!seen && np < max)
                        parts[np++] = part;
        }
        return np;
}

static void timer_key(const loy_store_t *s, int32_t part, char *dst) {
        char num[24];
        fmt_i64(num, part);
        snprintf(dst, KEY_MAX, "%s:timers:%s", s->ns, num);
}

static int reply_is(const redisReply *r, const char *status) {
        return r->type == REDIS_REPLY_STATUS && !strcmp(r->str, status);
}

/* Reads one unit's k replies (a transaction when tx); LOY_STORE_OK, ERR
 * (first one described in errstr when *first), BUSY or ERR_IO. */
static int read_unit(loy_store_t *s, const unit_t *u, int *first, char *errstr,
                     size_t size) {
        const char *what = u->what, *pre = u->cust ? "customer " : "";
        int k = u->k, tx = u->tx;
        int rc = LOY_STORE_OK, refused = 0;
        for (int j = 0; j < k; j++) {
                redisReply *r;
                const char *bad = NULL;
                char why[256];
                if (get_reply(s, &r, errstr, size))
                        return LOY_STORE_ERR_IO;
                if (!tx) {
                        if (r->type == REDIS_REPLY_ERROR)
                                bad = "failed";
                } else if (j == 0) {
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
                                if (r->element[e]->type == REDIS_REPLY_ERROR) {
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
                        seterr(errstr, size, "%s%s: redis refused: %s", pre,
                               what, r->str);
                        *first = 0;
                        refused = 1;
                } else if (bad) {
                        if (*first) {
                                seterr(errstr, size, "%s%s: %s%s%s", pre, what,
                                       bad,
                                       r->type == REDIS_REPLY_ERROR ? ": " : "",
                                       r->type == REDIS_REPLY_ERROR ? r->str
                                                                    : "");
                                *first = 0;
                        }
                        rc = LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        return refused ? LOY_STORE_ERR_BUSY : rc;
}

/* Records one unit of replies to read back in order. */
static int unit_add(loy_store_t *s, const char *what, int k, int tx, int cust) {
        if (s->nunits == s->units_cap) {
                int cap = s->units_cap ? s->units_cap * 2 : 256;
                unit_t *nu = realloc(s->units, sizeof(*nu) * (size_t)cap);
                if (!nu)
                        return -1;
                s->units = nu;
                s->units_cap = cap;
        }
        s->units[s->nunits].what = what;
        s->units[s->nunits].k = k;
        s->units[s->nunits].tx = tx;
        s->units[s->nunits].cust = cust;
        s->nunits++;
        return 0;
}

#define TIMER_PARTS_MAX 1024

static int read_units(loy_store_t *s, char *errstr, size_t errstr_size);

/* The customers' pipeline, after the batch's outbox entries (triggers
 * must be kept before the customers that caused them move on). */
static int send_custs(loy_store_t *s, const loy_outbox_entry_t *outbox,
                      int noutbox, const loy_cust_write_t *w, int n,
                      int64_t now_ms, const loy_feat_conf_t *fconf,
                      char *errstr, size_t errstr_size) {
        int32_t parts[TIMER_PARTS_MAX];
        char key[KEY_MAX];
        int rc, handed = 0, np;
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

        for (i = 0; i < noutbox; i++)
                if (!outbox[i].trigger_id ||
                    (outbox[i].len && !outbox[i].payload)) {
                        seterr(errstr, errstr_size,
                               "write: bad outbox "
                               "entry");
                        return LOY_STORE_ERR;
                }

        ab_reset(s);
        s->nunits = 0;
        /* outbox, timer entries ahead of the hashes, rank scores, hashes,
         * then the entries removed: any prefix of this order is safe to
         * stop at */
        if (noutbox > 0) {
                ab_hdr(s, '*', 2 + 2 * (size_t)noutbox);
                ab_str(s, "HSET");
                ab_str(s, s->k_outbox);
                for (i = 0; i < noutbox; i++) {
                        ab_str(s, outbox[i].trigger_id);
                        ab_bulk(s, outbox[i].payload, outbox[i].len);
                }
                s->oom |= unit_add(s, "outbox", 1, 0, 0);
        }
        np = timer_parts(w, n, 1, parts, TIMER_PARTS_MAX);
        for (int j = 0; j < np; j++) {
                timer_key(s, parts[j], key);
                if (group_cmd(s, "ZADD", key, 1, w, n, parts[j],
                              want_timer_add))
                        s->oom |= unit_add(s, "timers", 1, 0, 0);
        }
        if (group_cmd(s, "ZADD", s->k_churn, 1, w, n, 0, want_churn))
                s->oom |= unit_add(s, s->k_churn, 1, 0, 0);
        if (group_cmd(s, "ZADD", s->k_clv, 1, w, n, 0, want_clv))
                s->oom |= unit_add(s, s->k_clv, 1, 0, 0);
        if (group_cmd(s, "ZREM", s->k_churn, 0, w, n, 0, want_rank_rem))
                s->oom |= unit_add(s, s->k_churn, 1, 0, 0);
        if (group_cmd(s, "ZREM", s->k_clv, 0, w, n, 0, want_rank_rem))
                s->oom |= unit_add(s, s->k_clv, 1, 0, 0);
        /* One connection keeps this order on a single server. The masters
         * of a cluster each keep only their own, so the outbox and the
         * timer entries are known to be in before any customer moves on:
         * one more round trip. */
        if (loy_cluster_is_cluster(s->cl) == 1 && s->nunits) {
                if ((rc = ab_flush(s, errstr, errstr_size)) ||
                    (rc = read_units(s, errstr, errstr_size)))
                        return rc;
                s->nunits = 0;
        }
        for (i = 0; i < n; i++) {
                int tx;
                int k = build_cust(s, &w[i], now_ms, fconf, &tx, errstr,
                                   errstr_size);
                if (k > 0 && unit_add(s, w[i].cust->id, k, tx, 1))
                        s->oom = 1;
                if (k < 0 || s->oom) {
                        if (k >= 0)
                                seterr(errstr, errstr_size,
                                       "write: out of memory");
                        /* Customers already handed over are sent, or
                         * sit unsent in hiredis: dropping the connection
                         * withdraws these, the others are a prefix. */
                        if (handed)
                                drop(s);
                        ab_reset(s);
                        return LOY_STORE_ERR;
                }
                /* Sent in pieces as they are built, so Redis writes the
                 * first customers while the others are formatted (any
                 * prefix of the write is safe to stop at, see above). */
                if (s->len >= PUSH_BYTES) {
                        if ((rc = ab_flush(s, errstr, errstr_size)))
                                return rc;
                        handed = 1;
                        if (loy_cluster_pipe_push(
                                s->pipe, errstr, errstr_size) != LOY_CLUSTER_OK)
                                return io_error(
                                    s, errstr && *errstr ? errstr : NULL,
                                    errstr, errstr_size);
                }
        }
        np = timer_parts(w, n, 0, parts, TIMER_PARTS_MAX);
        for (int j = 0; j < np; j++) {
                timer_key(s, parts[j], key);
                if (group_cmd(s, "ZREM", key, 0, w, n, parts[j],
                              want_timer_rem))
                        s->oom |= unit_add(s, "timers", 1, 0, 0);
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;

        /* Transmit now rather than on the first read, so Redis works on this
         * batch while the caller prepares the next. Redis buffers its
         * replies meanwhile, so not reading them cannot stall it. */
        if (loy_cluster_pipe_send(s->pipe, errstr, errstr_size) !=
            LOY_CLUSTER_OK)
                return io_error(s, errstr && *errstr ? errstr : NULL, errstr,
                                errstr_size);
        s->pstate = PIPE_SENT;
        s->inflight = 1;
        return LOY_STORE_OK;
}

int loy_store_write_send(loy_store_t *s, const loy_cust_write_t *w, int n,
                         int64_t now_ms, const loy_feat_conf_t *fconf,
                         char *errstr, size_t errstr_size) {
        return send_custs(s, NULL, 0, w, n, now_ms, fconf, errstr, errstr_size);
}

int loy_store_write_recv(loy_store_t *s, char *errstr, size_t errstr_size) {
        if (!s->inflight) {
                seterr(errstr, errstr_size, "write: no batch in flight");
                return s->up ? LOY_STORE_ERR
                             : not_connected(s, errstr, errstr_size);
        }
        s->inflight = 0;
        return read_units(s, errstr, errstr_size);
}

/* Reads the replies of the units recorded (s->units). */
static int read_units(loy_store_t *s, char *errstr, size_t errstr_size) {
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK, first = 1;

        loy_sigpipe_block(&g);
        for (int i = 0; i < s->nunits; i++) {
                const unit_t *u = &s->units[i];
                int r = read_unit(s, u, &first, errstr, errstr_size);
                if (r == LOY_STORE_ERR_IO) {
                        rc = r;
                        break;
                }
                /* a refusal wins: the batch is retried whole anyway */
                if (r && rc != LOY_STORE_ERR_BUSY)
                        rc = r;
        }
        loy_sigpipe_restore(&g);
        return rc;
}

int loy_store_write(loy_store_t *s, const loy_cust_write_t *w, int n,
                    int64_t now_ms, const loy_feat_conf_t *fconf, char *errstr,
                    size_t errstr_size) {
        int rc =
            loy_store_write_send(s, w, n, now_ms, fconf, errstr, errstr_size);
        if (rc)
                return rc;
        return loy_store_write_recv(s, errstr, errstr_size);
}

/* Sends what is queued and reads the one reply to it. */
static int roundtrip(loy_store_t *s, redisReply **r, char *errstr,
                     size_t size) {
        loy_sigpipe_t g;
        int rc;
        if ((rc = ab_flush(s, errstr, size)))
                return rc;
        loy_sigpipe_block(&g);
        rc = get_reply(s, r, errstr, size) ? LOY_STORE_ERR_IO : LOY_STORE_OK;
        loy_sigpipe_restore(&g);
        return rc;
}

/* --------------------------------------------------- batch aggregates */

/*
 * A batch's aggregates in one script, so they land all or nothing: the
 * fences are checked first (a script is not rolled back, so nothing is
 * written before every check passed), then set, then the sums added, then
 * each KPI day's derived values recomputed from its counters (a ratio
 * cannot be added to; money is printed from its exact micro-unit sum).
 *
 * Each KPI day moved is also indexed in the days set (score: days since
 * 1970-01-01), so readers list the days without a SCAN, which a cluster
 * cannot do in one call.
 *
 * KEYS: the fence, then the segment and histogram keys moved, then KPI
 * days, then (with KPI days) the days set.
 * ARGV: the index of the first KPI day in KEYS, nfence, then (field,
 * check, expect, value) per fence, then for each key after the first and
 * before the days set: (KPI days only: the day's number,) n, then n
 * (field, delta) pairs.
 */
static const char agg_lua[] =
    "local a = ARGV "
    "local kpi1 = tonumber(a[1]) "
    "local nf = tonumber(a[2]) "
    "local i = 3 "
    "for k = 1, nf do "
    "if a[i + 1] == '1' then "
    "local cur = redis.call('HGET', KEYS[1], a[i]) or '' "
    "if cur ~= a[i + 2] then "
    "return redis.error_reply('FENCED ' .. KEYS[1] .. ' ' .. a[i] .. "
    "' holds \"' .. cur .. '\", this process last wrote \"' .. a[i + 2] .. "
    "'\"') end end "
    "i = i + 4 end "
    "i = 3 "
    "for k = 1, nf do "
    "if a[i + 3] == '' then redis.call('HDEL', KEYS[1], a[i]) "
    "else redis.call('HSET', KEYS[1], a[i], a[i + 3]) end "
    "i = i + 4 end "
    "local last = #KEYS "
    "if kpi1 <= last then last = last - 1 end "
    "for k = 2, last do "
    "if k >= kpi1 then "
    "redis.call('ZADD', KEYS[#KEYS], a[i], string.sub(KEYS[k], -10)) "
    "i = i + 1 end "
    "local n = tonumber(a[i]) i = i + 1 "
    "for j = 1, n do redis.call('HINCRBY', KEYS[k], a[i], a[i + 1]) "
    "i = i + 2 end "
    "if k >= kpi1 then "
    "local key = KEYS[k] "
    "local p = tonumber(redis.call('HGET', key, 'purchases') or '0') "
    "if p > 0 then "
    "local r = tonumber(redis.call('HGET', key, 'repeat_purchases') or '0') "
    "redis.call('HSET', key, 'repurchase_rate', string.format('%.4f', r / p)) "
    "end "
    "for _, f in ipairs({'revenue', 'return_value'}) do "
    "local m = tonumber(redis.call('HGET', key, f .. '_micros') or 'x') "
    "if m then "
    "local neg = m < 0 if neg then m = -m end "
    "local w = math.floor(m / 1000000) "
    "local t = string.format('%d.%06d', w, m - w * 1000000) "
    "t = string.gsub(string.gsub(t, '0+$', ''), '%.$', '') "
    "if neg and t ~= '0' then t = '-' .. t end "
    "redis.call('HSET', key, f, t) end end "
    "end end "
    "return 0";

/* The distinct KPI days of the deltas, in first-seen order. */
static int kpi_days(const loy_kpi_delta_t *kpi, int n, int64_t *days) {
        int nd = 0;
        for (int i = 0; i < n; i++) {
                int64_t d = kpi[i].day_ms / LOY_MS_PER_DAY;
                int seen = 0;
                if (kpi[i].day_ms % LOY_MS_PER_DAY < 0)
                        d--;
                for (int j = 0; j < nd && !seen; j++)
                        seen = days[j] == d;
                if (!seen)
                        days[nd++] = d;
        }
        return nd;
}

static int64_t day_of(int64_t ms) {
        int64_t d = ms / LOY_MS_PER_DAY;
        return ms % LOY_MS_PER_DAY < 0 ? d - 1 : d;
}

/* The count keys the deltas move: -1 (<ns>:{agg}:seg), then each dimension;
 * keys[] gets them in that order, returns how many. */
static int count_keys(const loy_batch_agg_t *agg, int *keys) {
        int nk = 0;
        for (int dim = -1; dim < LOY_DIM__COUNT; dim++) {
                int used = 0;
                for (int i = 0; i < agg->ncount && !used; i++)
                        used = agg->count[i].dim == dim &&
                               agg->count[i].delta != 0;
                if (used)
                        keys[nk++] = dim;
        }
        return nk;
}

static int check_agg(const loy_batch_agg_t *agg, char *errstr, size_t size) {
        for (int i = 0; i < agg->nfence; i++)
                if (!agg->fence[i].field || !agg->fence[i].value) {
                        seterr(errstr, size, "aggregates: bad fence");
                        return -1;
                }
        for (int i = 0; i < agg->nkpi; i++)
                if (!agg->kpi[i].field) {
                        seterr(errstr, size, "aggregates: bad KPI delta");
                        return -1;
                }
        for (int i = 0; i < agg->ncount; i++) {
                const loy_count_delta_t *c = &agg->count[i];
                if (c->dim < -1 || c->dim >= LOY_DIM__COUNT || c->field < 0 ||
                    c->field >= (c->dim < 0 ? LOY_SEG__COUNT : LOY_HIST_BINS)) {
                        seterr(errstr, size, "aggregates: bad count move");
                        return -1;
                }
        }
        return 0;
}

static int build_agg(loy_store_t *s, const loy_batch_agg_t *agg, char *errstr,
                     size_t size) {
        char key[KEY_MAX], f[24];
        int64_t *days = NULL;
        int nd = 0, ck[LOY_DIM__COUNT + 1], nck;
        size_t nargs, nkeys;

        if (check_agg(agg, errstr, size))
                return -1;
        if (agg->nkpi) {
                days = malloc(sizeof(*days) * (size_t)agg->nkpi);
                if (!days) {
                        seterr(errstr, size, "aggregates: out of memory");
                        return -1;
                }
                nd = kpi_days(agg->kpi, agg->nkpi, days);
        }
        nck = count_keys(agg, ck);
        nkeys = 1 + (size_t)nck + (size_t)nd + (nd > 0);
        nargs = 2 + 4 * (size_t)agg->nfence + (size_t)nck + 2 * (size_t)nd +
                2 * (size_t)agg->nkpi;
        for (int i = 0; i < agg->ncount; i++)
                nargs += agg->count[i].delta ? 2 : 0;
        ab_hdr(s, '*', 3 + nkeys + nargs);
        ab_str(s, "EVAL");
        ab_str(s, agg_lua);
        ab_i64(s, (int64_t)nkeys);
        ab_str(s, s->k_fence);
        for (int j = 0; j < nck; j++)
                ab_str(s, ck[j] < 0 ? s->k_seg : s->k_hist[ck[j]]);
        for (int j = 0; j < nd; j++) {
                kpi_key(s, days[j] * LOY_MS_PER_DAY, key, sizeof(key));
                ab_str(s, key);
        }
        if (nd)
                ab_str(s, s->k_kpi_days);
        ab_i64(s, 2 + nck); /* the first KPI day in KEYS */
        ab_i64(s, agg->nfence);
        for (int i = 0; i < agg->nfence; i++) {
                const loy_agg_fence_t *fe = &agg->fence[i];
                ab_str(s, fe->field);
                ab_str(s, fe->check ? "1" : "0");
                ab_str(s, fe->expect ? fe->expect : "");
                ab_str(s, fe->value);
        }
        for (int j = 0; j < nck; j++) {
                int cnt = 0;
                for (int i = 0; i < agg->ncount; i++)
                        cnt += agg->count[i].dim == ck[j] &&
                               agg->count[i].delta != 0;
                ab_i64(s, cnt);
                for (int i = 0; i < agg->ncount; i++) {
                        const loy_count_delta_t *c = &agg->count[i];
                        if (c->dim != ck[j] || !c->delta)
                                continue;
                        if (c->dim < 0) {
                                ab_str(s, loy_segment_name(c->field));
                        } else {
                                fmt_i64(f, c->field);
                                ab_str(s, f);
                        }
                        ab_i64(s, c->delta);
                }
        }
        for (int j = 0; j < nd; j++) {
                int cnt = 0;
                for (int i = 0; i < agg->nkpi; i++)
                        cnt += day_of(agg->kpi[i].day_ms) == days[j];
                ab_i64(s, days[j]);
                ab_i64(s, cnt);
                for (int i = 0; i < agg->nkpi; i++)
                        if (day_of(agg->kpi[i].day_ms) == days[j]) {
                                ab_str(s, agg->kpi[i].field);
                                ab_i64(s, agg->kpi[i].delta);
                        }
        }
        free(days);
        return 0;
}

/*
 * The KPI days closed so far are the stream's entries; the next to close
 * are the indexed days after its last and before the clock's day.
 * KEYS: the days set, the stream. ARGV: the clock's day number, max, the
 * KPI key prefix ("<ns>:{agg}:kpi:"; a key of the same slot).
 */
static const char kpi_close_lua[] =
    "local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1) "
    "local from = '-inf' "
    "if #top > 0 then "
    "from = '(' .. math.floor(tonumber(string.match(top[1][1], '^%d+')) "
    "/ 86400000) end "
    "local days = redis.call('ZRANGEBYSCORE', KEYS[1], from, "
    "'(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2])) "
    "local n = 0 "
    "for j = 1, #days, 2 do "
    "local h = redis.call('HGETALL', ARGV[3] .. days[j]) "
    "local ms = tonumber(days[j + 1]) * 86400000 "
    "if #h > 0 and ms >= 0 then "
    /* fields in name order: the same entry whatever order the batches
     * created them in */
    "local names, f = {}, {} "
    "for i = 1, #h, 2 do names[#names + 1] = h[i] f[h[i]] = h[i + 1] end "
    "table.sort(names) "
    "local e = {'day', days[j]} "
    "for _, k in ipairs(names) do e[#e + 1] = k e[#e + 1] = f[k] end "
    "redis.call('XADD', KEYS[2], string.format('%d-1', ms), unpack(e)) "
    "n = n + 1 end end "
    "return n";

int loy_store_kpi_close(loy_store_t *s, int64_t clock_ms, int max, int *nclosed,
                        char *errstr, size_t errstr_size) {
        char prefix[KEY_MAX];
        redisReply *r = NULL;
        int rc;
        if (nclosed)
                *nclosed = 0;
        if (max < 1 || max > 10000) {
                seterr(errstr, errstr_size, "kpi close: bad max %d", max);
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        snprintf(prefix, sizeof(prefix), "%s:" LOY_KEY_KPI, s->ns);
        ab_reset(s);
        ab_hdr(s, '*', 8);
        ab_str(s, "EVAL");
        ab_str(s, kpi_close_lua);
        ab_i64(s, 2);
        ab_str(s, s->k_kpi_days);
        ab_str(s, s->k_kpi_closed);
        ab_i64(s, day_of(clock_ms));
        ab_i64(s, max);
        ab_str(s, prefix);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type != REDIS_REPLY_INTEGER) {
                seterr(errstr, errstr_size, "kpi close: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
                rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY : LOY_STORE_ERR;
        } else if (nclosed) {
                *nclosed = (int)r->integer;
        }
        freeReplyObject(r);
        return rc;
}

int loy_store_write_batch_send(loy_store_t *s, const loy_outbox_entry_t *outbox,
                               int noutbox, const loy_batch_agg_t *agg,
                               const loy_cust_write_t *w, int n, int64_t now_ms,
                               const loy_feat_conf_t *fconf, int *sent,
                               char *errstr, size_t errstr_size) {
        redisReply *r = NULL;
        int rc;

        *sent = 0;
        if (noutbox < 0 || (noutbox && !outbox) ||
            (agg && (agg->nkpi < 0 || agg->nfence < 0 || agg->ncount < 0 ||
                     (agg->nkpi && !agg->kpi) || (agg->ncount && !agg->count) ||
                     (agg->nfence && !agg->fence)))) {
                seterr(errstr, errstr_size, "write: bad arguments");
                return LOY_STORE_ERR;
        }
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        /* Every part of the write goes over the connections the
         * aggregates went over: a process frozen after its aggregates were
         * accepted, whose partitions went to another one meanwhile, finds
         * them closed by the new owner (loy_store_take_over) and must not
         * write its customers on new ones. Once sent, a closed connection
         * fails the reading of the replies: nothing reconnects before. */
        if (loy_cluster_guard_begin(s->cl, errstr, errstr_size) !=
            LOY_CLUSTER_OK)
                return io_error(s, errstr && *errstr ? errstr : NULL, errstr,
                                errstr_size);
        if (agg) {
                ab_reset(s);
                if (build_agg(s, agg, errstr, errstr_size)) {
                        ab_reset(s);
                        rc = LOY_STORE_ERR;
                        goto out;
                }
                if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                        goto out;
                if (r->type == REDIS_REPLY_ERROR) {
                        seterr(errstr, errstr_size, "aggregates: %s", r->str);
                        rc = !strncmp(r->str, "FENCED ", 7)
                                 ? LOY_STORE_ERR_FENCED
                             : is_refusal_reply(r) ? LOY_STORE_ERR_BUSY
                                                   : LOY_STORE_ERR;
                }
                freeReplyObject(r);
                if (rc)
                        goto out;
                if (s->after_agg)
                        s->after_agg(s, s->after_agg_opaque);
        }
        if (n == 0 && noutbox == 0)
                goto out;
        rc = send_custs(s, outbox, noutbox, w, n, now_ms, fconf, errstr,
                        errstr_size);
        *sent = rc == LOY_STORE_OK;
out:
        loy_cluster_guard_end(s->cl);
        return rc;
}

int loy_store_write_batch(loy_store_t *s, const loy_outbox_entry_t *outbox,
                          int noutbox, const loy_batch_agg_t *agg,
                          const loy_cust_write_t *w, int n, int64_t now_ms,
                          const loy_feat_conf_t *fconf, char *errstr,
                          size_t errstr_size) {
        int sent;
        int rc =
            loy_store_write_batch_send(s, outbox, noutbox, agg, w, n, now_ms,
                                       fconf, &sent, errstr, errstr_size);
        if (rc == LOY_STORE_OK && sent)
                rc = loy_store_write_recv(s, errstr, errstr_size);
        return rc;
}

void loy_store_set_after_agg_hook(loy_store_t *s, loy_store_hook_fn *fn,
                                  void *opaque) {
        s->after_agg = fn;
        s->after_agg_opaque = opaque;
}

/* ---------------------------------------------------------- ownership */

int loy_store_set_owner(loy_store_t *s, const char *owner, char *errstr,
                        size_t errstr_size) {
        if (!owner || !*owner || strlen(owner) > LOY_OWNER_MAX) {
                seterr(errstr, errstr_size, "owner: 1..%d characters",
                       LOY_OWNER_MAX);
                return LOY_STORE_ERR;
        }
        if (s->inflight) {
                seterr(errstr, errstr_size, "owner: a write is in flight");
                return LOY_STORE_ERR;
        }
        if (loy_cluster_set_name(s->cl, owner, errstr, errstr_size) !=
            LOY_CLUSTER_OK)
                return LOY_STORE_ERR;
        snprintf(s->owner, sizeof(s->owner), "%s", owner);
        return LOY_STORE_OK;
}

const char *loy_store_owner(const loy_store_t *s) {
        return s->owner;
}

int loy_store_take_over(loy_store_t *s, const char *const *fields, int n,
                        int *nclosed, char *errstr, size_t errstr_size) {
        char **prev = NULL;
        redisReply *r = NULL;
        int rc;
        *nclosed = 0;
        if (!s->owner[0] || n < 0 || (n && !fields)) {
                seterr(errstr, errstr_size, "take over: %s",
                       s->owner[0] ? "bad arguments" : "no owner set");
                return LOY_STORE_ERR;
        }
        if (n == 0)
                return LOY_STORE_OK;
        if (!(prev = calloc((size_t)n, sizeof(*prev)))) {
                seterr(errstr, errstr_size, "take over: out of memory");
                return LOY_STORE_ERR;
        }
        if ((rc = loy_store_fence_get(s, fields, n, prev, errstr, errstr_size)))
                goto out;
        /* Owner first, then the old owner's connections closed: a batch
         * of the old owner's that reaches Redis after this finds the
         * owner changed (its aggregates are refused), or no connection to
         * send its customers on. */
        ab_reset(s);
        ab_hdr(s, '*', 2 + 2 * (size_t)n);
        ab_str(s, "HSET");
        ab_str(s, s->k_fence);
        for (int i = 0; i < n; i++) {
                ab_str(s, fields[i]);
                ab_str(s, s->owner);
        }
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                goto out;
        if (r->type == REDIS_REPLY_ERROR) {
                seterr(errstr, errstr_size, "take over: HSET %s: %s",
                       s->k_fence, r->str);
                rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY : LOY_STORE_ERR;
                goto out;
        }
        for (int i = 0; i < n; i++) {
                int dup = 0, k = 0;
                if (!prev[i] || !*prev[i] || !strcmp(prev[i], s->owner))
                        continue;
                for (int j = 0; j < i && !dup; j++)
                        dup = prev[j] && !strcmp(prev[j], prev[i]);
                if (dup)
                        continue;
                rc = loy_cluster_kill_named(s->cl, prev[i], &k, errstr,
                                            errstr_size);
                *nclosed += k;
                if (rc != LOY_CLUSTER_OK) {
                        rc =
                            rc == LOY_CLUSTER_ERR_IO
                                ? io_error(s, errstr && *errstr ? errstr : NULL,
                                           errstr, errstr_size)
                                : LOY_STORE_ERR;
                        goto out;
                }
        }
        rc = LOY_STORE_OK;
out:
        if (r)
                freeReplyObject(r);
        for (int i = 0; i < n; i++)
                free(prev[i]);
        free(prev);
        return rc;
}

/* Clears each owner field that still names this process. */
static const char release_lua[] =
    "for i = 1, #ARGV - 1 do "
    "if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[#ARGV] then "
    "redis.call('HDEL', KEYS[1], ARGV[i]) end end "
    "return 0";

int loy_store_release(loy_store_t *s, const char *const *fields, int n,
                      char *errstr, size_t errstr_size) {
        redisReply *r = NULL;
        int rc;
        if (!s->owner[0] || n < 0 || (n && !fields)) {
                seterr(errstr, errstr_size, "release: %s",
                       s->owner[0] ? "bad arguments" : "no owner set");
                return LOY_STORE_ERR;
        }
        if (n == 0)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        ab_hdr(s, '*', 4 + (size_t)n + 1);
        ab_str(s, "EVAL");
        ab_str(s, release_lua);
        ab_str(s, "1");
        ab_str(s, s->k_fence);
        for (int i = 0; i < n; i++)
                ab_str(s, fields[i]);
        ab_str(s, s->owner);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type == REDIS_REPLY_ERROR) {
                seterr(errstr, errstr_size, "release: %s", r->str);
                rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY : LOY_STORE_ERR;
        }
        freeReplyObject(r);
        return rc;
}

int loy_store_fence_get(loy_store_t *s, const char *const *fields, int n,
                        char **values, char *errstr, size_t errstr_size) {
        redisReply *r = NULL;
        int rc;

        if (n < 0 || (n && (!fields || !values))) {
                seterr(errstr, errstr_size, "fence: bad arguments");
                return LOY_STORE_ERR;
        }
        for (int i = 0; i < n; i++)
                values[i] = NULL;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        if (n == 0)
                return LOY_STORE_OK;
        ab_reset(s);
        ab_key_args(s, "HMGET", s->k_fence, fields, n);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) {
                seterr(errstr, errstr_size, "HMGET %s: %s", s->k_fence,
                       r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
                rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY : LOY_STORE_ERR;
                freeReplyObject(r);
                return rc;
        }
        for (int i = 0; i < n && rc == LOY_STORE_OK; i++) {
                const redisReply *v = r->element[i];
                if (v->type != REDIS_REPLY_STRING)
                        continue;
                values[i] = malloc(v->len + 1);
                if (!values[i]) {
                        seterr(errstr, errstr_size, "fence: out of memory");
                        rc = LOY_STORE_ERR;
                        break;
                }
                memcpy(values[i], v->str, v->len);
                values[i][v->len] = '\0';
        }
        freeReplyObject(r);
        if (rc)
                for (int i = 0; i < n; i++) {
                        free(values[i]);
                        values[i] = NULL;
                }
        return rc;
}

/* Reads n replies and checks none is an error. */
static int read_plain(loy_store_t *s, int n, const char *what, char *errstr,
                      size_t size) {
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK;
        loy_sigpipe_block(&g);
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
        loy_sigpipe_restore(&g);
        return rc;
}

/*
 * HINCRBYFLOAT even for integral deltas: HINCRBY fails on a field that ever
 * held a fraction, and Redis prints the float sum without a fraction when it
 * has none, so counts still read "3".
 */
static void hincrbyfloat(loy_store_t *s, const char *key, const char *field,
                         double by) {
        ab_hdr(s, '*', 4);
        ab_str(s, "HINCRBYFLOAT");
        ab_str(s, key);
        ab_str(s, field);
        ab_dbl(s, by);
}

int loy_store_stats(loy_store_t *s, const char *const *incr_fields,
                    const double *incr, int nincr,
                    const char *const *set_fields, const double *set, int nset,
                    char *errstr, size_t errstr_size) {
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
static int timers_due(loy_store_t *s, int32_t partition, int64_t clock_ms,
                      int max, char ***ids, int64_t **due, int *n, char *errstr,
                      size_t errstr_size) {
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
                       r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
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

int loy_store_timers_due_at(loy_store_t *s, int32_t partition, int64_t clock_ms,
                            int max, char ***ids, int64_t **due, int *n,
                            char *errstr, size_t errstr_size) {
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

int loy_store_outbox_get(loy_store_t *s, const char *const *ids, int n,
                         loy_outbox_cb_t *cb, void *opaque, char *errstr,
                         size_t errstr_size) {
        redisReply *r;
        int rc;
        if (n <= 0)
                return LOY_STORE_OK;
        if ((rc = usable(s, errstr, errstr_size)))
                return rc;
        ab_reset(s);
        ab_key_args(s, "HMGET", s->k_outbox, ids, n);
        if ((rc = roundtrip(s, &r, errstr, errstr_size)))
                return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) {
                seterr(errstr, errstr_size, "HMGET %s: %s", s->k_outbox,
                       r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
                freeReplyObject(r);
                return LOY_STORE_ERR;
        }
        for (int i = 0; i < n; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING &&
                    cb(ids[i], r->element[i]->str, r->element[i]->len, opaque))
                        break;
        freeReplyObject(r);
        return LOY_STORE_OK;
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
                        seterr(errstr, errstr_size, "HSCAN %s: %s", s->k_outbox,
                               r->type == REDIS_REPLY_ERROR
                                   ? r->str
                                   : "unexpected reply");
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
        ab_key_args(s, "HDEL", s->k_outbox, ids, n);
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
                       r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
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

/* GET of <ns>:c:{id}<suffix>, or with field HGET of that field. */
static int cust_texts(loy_store_t *s, const char *suffix, const char *field,
                      const char *const *ids, int n, char **texts, char *errstr,
                      size_t errstr_size) {
        char end[64];
        loy_sigpipe_t g;
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
                ab_hdr(s, '*', field ? 3 : 2);
                ab_str(s, field ? "HGET" : "GET");
                ab_key(s, ":c:{", ids[i], end);
                if (field)
                        ab_str(s, field);
        }
        if ((rc = ab_flush(s, errstr, errstr_size)))
                return rc;
        loy_sigpipe_block(&g);
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
                } else if (r->type == REDIS_REPLY_ERROR && rc == LOY_STORE_OK) {
                        seterr(errstr, errstr_size, "customer %s: %s: %s",
                               ids[i], field ? "HGET" : "GET", r->str);
                        rc = is_refusal_reply(r) ? LOY_STORE_ERR_BUSY
                                                 : LOY_STORE_ERR;
                }
                freeReplyObject(r);
        }
        loy_sigpipe_restore(&g);
        if (rc)
                for (int i = 0; i < n; i++) {
                        free(texts[i]);
                        texts[i] = NULL;
                }
        return rc;
}

int loy_store_get_texts(loy_store_t *s, const char *suffix,
                        const char *const *ids, int n, char **texts,
                        char *errstr, size_t errstr_size) {
        return cust_texts(s, suffix, NULL, ids, n, texts, errstr, errstr_size);
}

int loy_store_hget_custs(loy_store_t *s, const char *field,
                         const char *const *ids, int n, char **values,
                         char *errstr, size_t errstr_size) {
        return cust_texts(s, "", field, ids, n, values, errstr, errstr_size);
}

int loy_store_reco_flush(loy_store_t *s, const loy_reco_incr_t *incr, size_t n,
                         char *errstr, size_t errstr_size) {
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
        loy_sigpipe_t g;
        int rc = LOY_STORE_OK;
        loy_sigpipe_block(&g);
        for (int i = 0; i < n; i++)
                if (get_reply(s, &r[i], errstr, size)) {
                        rc = LOY_STORE_ERR_IO;
                        break;
                }
        loy_sigpipe_restore(&g);
        return rc;
}

int loy_store_reco_refresh(loy_store_t *s, const char *const *skus, int n,
                           const char *const *cands, int ncand, int top_k,
                           loy_sim_fn_t *sim, loy_nbrs_cb_t *cb, void *opaque,
                           char *errstr, size_t errstr_size) {
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
                        for (size_t j = 0; j < shared[i]->elements && m < maxc;
                             j++) {
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
                size_t m =
                    counts->type == REDIS_REPLY_ARRAY && counts->elements > 0
                        ? counts->elements - 1
                        : 0;
                double na = m && counts->element[0]->type == REDIS_REPLY_STRING
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
                        for (int j = 0; j < ncand && cands[i * ncand + j]; j++)
                                mine[mm++] = cands[i * ncand + j];
                        if (shared[i]->type == REDIS_REPLY_ARRAY)
                                for (size_t j = 0;
                                     j < shared[i]->elements && mm < maxc;
                                     j++) {
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
                rc = read_plain(s, nset, "reco refresh", errstr, errstr_size);
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
