/*
 * loy_cluster: slot-aware routing to a Redis Cluster (see loy_cluster.h and
 * docs/cluster.md).
 *
 * A pipe keeps the bytes of its units one after another in one buffer.
 * Each unit is cut at add time into "parts": a lone command, or a
 * MULTI ... EXEC (or DISCARD) block. A part is what a node executes or
 * refuses as a whole, so it is what gets re-sent after a redirection, and
 * nothing smaller or larger: re-sending a whole unit of two lone commands
 * after the second was redirected would apply the first one twice.
 *
 * Execution is in rounds. A round gives every pending part a node (the
 * slot map's, or the target of an ASK it got), appends the parts to each
 * node's hiredis output buffer in unit order, writes every node, then
 * reads every node's replies in the same order. A part that got MOVED or
 * ASK stays pending for the next round (at most LOY_CLUSTER_MAX_REDIRECTS
 * times), so the rounds end. After a round that saw MOVED the map is read
 * again once (CLUSTER SLOTS), first from the node the MOVED named.
 *
 * The per-round send lists live in the router's node table (one pipe is in
 * flight per router), indices into the pipe's send array.
 */
#include "loy_cluster.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "loy_rconn.h"
#include "loy_sigpipe.h"

#define DEFAULT_TIMEOUT_MS 2000
#define NODES_MAX 4096
#define NO_NODE 0xffffu
#define NONE UINT32_MAX
#define WHY_MAX 256

/* ------------------------------------------------------------- slots */

/* CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the
 * checksum the cluster spec names; table generated from the polynomial. */
static const uint16_t crc16_tab[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108,
    0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210,
    0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6, 0x9339, 0x8318, 0xb37b,
    0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee,
    0xf5cf, 0xc5ac, 0xd58d, 0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6,
    0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d,
    0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5,
    0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc,
    0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a, 0x6ca6, 0x7c87, 0x4ce4,
    0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13,
    0x2e32, 0x1e51, 0x0e70, 0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a,
    0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e,
    0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1,
    0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb,
    0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d, 0x34e2, 0x24c3, 0x14a0,
    0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657,
    0x7676, 0x4615, 0x5634, 0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9,
    0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882,
    0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e,
    0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07,
    0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1, 0xef1f, 0xff3e, 0xcf5d,
    0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static unsigned crc16(const unsigned char *p, size_t n) {
        unsigned crc = 0;
        while (n--)
                crc = ((crc << 8) ^ crc16_tab[((crc >> 8) ^ *p++) & 0xff]) &
                      0xffff;
        return crc;
}

unsigned loy_cluster_slot(const char *key, size_t len) {
        const unsigned char *k = (const unsigned char *)key;
        size_t s, e;
        for (s = 0; s < len && k[s] != '{'; s++)
                ;
        if (s < len) {
                for (e = s + 1; e < len && k[e] != '}'; e++)
                        ;
                /* Only a closed, non-empty first tag counts. */
                if (e < len && e > s + 1)
                        return crc16(k + s + 1, e - s - 1) &
                               (LOY_CLUSTER_SLOTS - 1);
        }
        return crc16(k, len) & (LOY_CLUSTER_SLOTS - 1);
}

/* ------------------------------------------------------------- types */

typedef struct node {
        char *host;
        int port;
        redisContext *ctx; /* NULL until used, and after an error */
        int seed;
        /* This round's sends (indices into the pipe's sends), in order. */
        uint32_t head, tail;
        uint32_t mark; /* first send not on the connection yet */
        int failed;    /* this round's sends are lost */
} node_t;

struct loy_cluster {
        node_t *nodes;
        int nnodes, nodes_cap;
        uint16_t owner[LOY_CLUSTER_SLOTS];   /* node index or NO_NODE */
        uint16_t scratch[LOY_CLUSTER_SLOTS]; /* map being read */
        int mode;  /* -1 unknown, 0 single server, 1 cluster */
        int stale; /* read the map before the next send */
        /* how connections are opened: timeouts, AUTH, SELECT */
        char *user, *password;
        int db, connect_ms, command_ms;
        loy_cluster_pipe_t *inflight;
        loy_cluster_stats_t st;
        char map_err[WHY_MAX]; /* why the last map read failed */
        char *name;            /* CLIENT SETNAME of every connection */
        int guarded;           /* no connection is opened meanwhile */
};

enum { P_PENDING, P_DONE, P_IO, P_BUSY, P_ERR };
enum { PIPE_BUILDING, PIPE_INFLIGHT, PIPE_DONE };

typedef struct part {
        size_t off, len; /* its bytes in the pipe's buf */
        uint32_t unit;
        uint32_t rep, nrep; /* its replies in the pipe's rep */
        uint32_t ask;       /* node of an ASK to follow once, or NONE */
        int redirects;
        int state;
} part_t;

typedef struct unit {
        uint32_t part0, nparts;
        uint32_t rep0, nrep;
        unsigned slot;
        int status;
} unit_t;

typedef struct send {
        uint32_t part;
        uint32_t next; /* next send to the same node, or NONE */
        int asking;
} send_t;

struct loy_cluster_pipe {
        loy_cluster_t *cl;
        int state;
        char *buf;
        size_t len, cap;
        unit_t *units;
        size_t nunits, units_cap;
        part_t *parts;
        size_t nparts, parts_cap;
        redisReply **rep;
        size_t nrep, rep_cap;
        send_t *sends;
        size_t nsends, sends_cap;
        size_t pushed;     /* parts sent before the pipe (push) */
        int moved;         /* this round followed a MOVED */
        uint32_t moved_to; /* the node it named */
        /* The first failure of each kind, for errstr. */
        char why_io[WHY_MAX], why_err[WHY_MAX], why_busy[WHY_MAX];
};

/* ------------------------------------------------------------ errors */

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

/* SIGPIPE from a dead server is held off around the I/O (loy_sigpipe). */

/* Grows *arr (elements of size el) to hold at least need. 0 or -1. */
static int grow(void **arr, size_t *cap, size_t need, size_t el) {
        size_t c = *cap ? *cap : 64;
        void *na;
        if (need <= *cap)
                return 0;
        while (c < need) {
                if (c > SIZE_MAX / 2 / el)
                        return -1;
                c *= 2;
        }
        na = realloc(*arr, c * el);
        if (!na)
                return -1;
        *arr = na;
        *cap = c;
        return 0;
}

/* ------------------------------------------------------------- nodes */

/* Index of host:port in the table, added when new; -1 when the table is
 * full or out of memory. */
static int node_get(loy_cluster_t *cl, const char *host, int port) {
        node_t *n;
        size_t cap;
        for (int i = 0; i < cl->nnodes; i++)
                if (cl->nodes[i].port == port &&
                    !strcmp(cl->nodes[i].host, host))
                        return i;
        if (cl->nnodes >= NODES_MAX)
                return -1;
        cap = (size_t)cl->nodes_cap;
        if (grow((void **)&cl->nodes, &cap, (size_t)cl->nnodes + 1,
                 sizeof(*cl->nodes)))
                return -1;
        cl->nodes_cap = (int)cap;
        n = &cl->nodes[cl->nnodes];
        memset(n, 0, sizeof(*n));
        n->host = strdup(host);
        if (!n->host)
                return -1;
        n->port = port;
        n->head = n->tail = NONE;
        return cl->nnodes++;
}

static void node_addr(const node_t *n, char *buf, size_t size) {
        if (strchr(n->host, ':'))
                snprintf(buf, size, "[%s]:%d", n->host, n->port);
        else
                snprintf(buf, size, "%s:%d", n->host, n->port);
}

static void node_drop(loy_cluster_t *cl, int i) {
        if (cl->nodes[i].ctx) {
                redisFree(cl->nodes[i].ctx);
                cl->nodes[i].ctx = NULL;
        }
}

/*
 * An idle connection the node closed (restart, its `timeout`) would fail
 * the next round only after the commands were written; one non-blocking
 * peek finds it first, so it is opened again instead. Unread bytes would
 * put every later reply out of step: that connection is dropped too.
 */
static int node_idle_ok(const node_t *n) {
        char c;
        ssize_t r = recv(n->ctx->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* CLIENT SETNAME on a new connection. 0, or -1 with why. */
static int name_conn(redisContext *c, const char *name, char *why, size_t size,
                     const char *addr) {
        redisReply *r = redisCommand(c, "CLIENT SETNAME %s", name);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
                seterr(why, size, "%s: CLIENT SETNAME: %s", addr,
                       !r ? (c->errstr[0] ? c->errstr : "no reply")
                       : r->type == REDIS_REPLY_ERROR ? r->str
                                                      : "bad reply");
        if (r)
                freeReplyObject(r);
        return ok ? 0 : -1;
}

/* Connects node i if it has no usable connection. 0, or -1 with why.
 * Guarded (loy_cluster_guard_begin), a connection that is gone is not
 * opened again. */
static int node_connect(loy_cluster_t *cl, int i, char *why, size_t size) {
        node_t *n = &cl->nodes[i];
        loy_rconn_opts_t o = {cl->user, cl->password, cl->db, cl->connect_ms,
                              cl->command_ms};
        redisContext *c;
        char addr[300];
        int rc;
        if (n->ctx && node_idle_ok(n))
                return 0;
        node_drop(cl, i);
        node_addr(n, addr, sizeof(addr));
        if (cl->guarded) {
                seterr(why, size,
                       "%s: connection lost during a guarded "
                       "write, not opened again",
                       addr);
                cl->st.io_errors++;
                return LOY_CLUSTER_ERR_IO;
        }
        if (!(c = loy_rconn_open(n->host, n->port, &o, &rc, why, size))) {
                cl->st.io_errors++;
                return rc == LOY_RCONN_ERR_AUTH ? LOY_CLUSTER_ERR_AUTH
                                                : LOY_CLUSTER_ERR_IO;
        }
        if (cl->name && name_conn(c, cl->name, why, size, addr)) {
                redisFree(c);
                cl->st.io_errors++;
                return LOY_CLUSTER_ERR_IO;
        }
        n->ctx = c;
        cl->st.connects++;
        return 0;
}

/* "...: <hiredis reason>" for a connection that just failed, then drops
 * it. */
static void node_lost(loy_cluster_t *cl, int i, char *why, size_t size) {
        node_t *n = &cl->nodes[i];
        char addr[300];
        node_addr(n, addr, sizeof(addr));
        seterr(why, size, "%s: %s", addr,
               n->ctx && n->ctx->errstr[0] ? n->ctx->errstr
                                           : "connection lost");
        node_drop(cl, i);
        cl->st.io_errors++;
        /* A node that went away may have handed its slots over. */
        cl->stale = 1;
}

/* ---------------------------------------------------------- slot map */

/* A node's address from CLUSTER SLOTS: an unknown endpoint (NULL, "" or
 * "?") means the host that was asked. */
static const char *endpoint(const redisReply *r, const char *asked) {
        if (r->type == REDIS_REPLY_STRING && r->len > 0 && strcmp(r->str, "?"))
                return r->str;
        return asked;
}

/* Installs the map in r, CLUSTER SLOTS's reply from node i. */
static int apply_slots(loy_cluster_t *cl, int i, const redisReply *r, char *why,
                       size_t size) {
        char addr[300];
        node_addr(&cl->nodes[i], addr, sizeof(addr));
        if (r->type == REDIS_REPLY_ERROR) {
                if (r->str && strstr(r->str, "cluster support disabled")) {
                        for (int s = 0; s < LOY_CLUSTER_SLOTS; s++)
                                cl->owner[s] = (uint16_t)i;
                        cl->mode = 0;
                        return LOY_CLUSTER_OK;
                }
                seterr(why, size, "%s: CLUSTER SLOTS: %s", addr,
                       r->str ? r->str : "error");
                return loy_rconn_is_auth_error(r->str) ? LOY_CLUSTER_ERR_AUTH
                                                       : LOY_CLUSTER_ERR;
        }
        if (r->type != REDIS_REPLY_ARRAY)
                goto bad;
        for (int s = 0; s < LOY_CLUSTER_SLOTS; s++)
                cl->scratch[s] = NO_NODE;
        for (size_t k = 0; k < r->elements; k++) {
                const redisReply *e = r->element[k], *m;
                int n;
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
                    e->element[0]->type != REDIS_REPLY_INTEGER ||
                    e->element[1]->type != REDIS_REPLY_INTEGER)
                        goto bad;
                m = e->element[2];
                if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
                    m->element[1]->type != REDIS_REPLY_INTEGER)
                        goto bad;
                if (e->element[0]->integer < 0 ||
                    e->element[1]->integer >= LOY_CLUSTER_SLOTS ||
                    e->element[0]->integer > e->element[1]->integer ||
                    m->element[1]->integer < 1 ||
                    m->element[1]->integer > 65535)
                        goto bad;
                n = node_get(cl, endpoint(m->element[0], cl->nodes[i].host),
                             (int)m->element[1]->integer);
                if (n < 0) {
                        seterr(why, size,
                               "%s: CLUSTER SLOTS: too many "
                               "nodes, or out of memory",
                               addr);
                        return LOY_CLUSTER_ERR;
                }
                for (long long s = e->element[0]->integer;
                     s <= e->element[1]->integer; s++)
                        cl->scratch[s] = (uint16_t)n;
        }
        memcpy(cl->owner, cl->scratch, sizeof(cl->owner));
        cl->mode = 1;
        return LOY_CLUSTER_OK;
bad:
        seterr(why, size, "%s: CLUSTER SLOTS: unexpected reply", addr);
        return LOY_CLUSTER_ERR;
}

/* CLUSTER SLOTS on node i. */
static int refresh_from(loy_cluster_t *cl, int i, char *why, size_t size) {
        static const char cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
        void *v = NULL;
        int rc;
        if ((rc = node_connect(cl, i, why, size)))
                return rc;
        if (redisAppendFormattedCommand(cl->nodes[i].ctx, cmd,
                                        sizeof(cmd) - 1) != REDIS_OK ||
            redisGetReply(cl->nodes[i].ctx, &v) != REDIS_OK || !v) {
                if (v)
                        freeReplyObject(v);
                node_lost(cl, i, why, size);
                return LOY_CLUSTER_ERR_IO;
        }
        rc = apply_slots(cl, i, v, why, size);
        freeReplyObject(v);
        return rc;
}

/* Reads the map from hint (a node index, or -1), then the nodes connected
 * now, then the others, each asked once, until one gives it. */
static int refresh(loy_cluster_t *cl, int hint, char *errstr, size_t size) {
        char why[WHY_MAX] = "no node to ask", auth_why[WHY_MAX];
        unsigned char tried[NODES_MAX / 8] = {0};
        unsigned char conn[NODES_MAX / 8] = {0};
        int rc, any_err = 0, any_auth = 0, nn = cl->nnodes;
        for (int i = 0; i < nn; i++)
                if (cl->nodes[i].ctx)
                        conn[i / 8] |= (unsigned char)(1u << (i % 8));
        for (int pass = 0; pass < 3; pass++) {
                for (int i = 0; i < nn; i++) {
                        int c = (conn[i / 8] >> (i % 8)) & 1;
                        if ((tried[i / 8] >> (i % 8)) & 1)
                                continue;
                        if ((pass == 0 && i != hint) || (pass == 1 && !c))
                                continue;
                        tried[i / 8] |= (unsigned char)(1u << (i % 8));
                        rc = refresh_from(cl, i, why, sizeof(why));
                        if (rc == LOY_CLUSTER_OK) {
                                cl->stale = 0;
                                cl->st.refreshes++;
                                return LOY_CLUSTER_OK;
                        }
                        any_err |= rc == LOY_CLUSTER_ERR;
                        if (rc == LOY_CLUSTER_ERR_AUTH && !any_auth) {
                                /* the refusal is the news, not the nodes
                                 * asked after it */
                                any_auth = 1;
                                snprintf(auth_why, sizeof(auth_why), "%s", why);
                        }
                }
        }
        if (any_auth)
                snprintf(why, sizeof(why), "%s", auth_why);
        snprintf(cl->map_err, sizeof(cl->map_err), "%s", why);
        if (any_auth)
                seterr(errstr, size, "%s", why);
        else
                seterr(errstr, size, "slot map: %s", why);
        return any_auth  ? LOY_CLUSTER_ERR_AUTH
               : any_err ? LOY_CLUSTER_ERR
                         : LOY_CLUSTER_ERR_IO;
}

/* ------------------------------------------------------------ router */

/* Adds the seeds in s to the table. 0, or -1 with errstr. */
static int parse_seeds(loy_cluster_t *cl, const char *s, char *errstr,
                       size_t size) {
        int nseeds = 0;
        if (!s) {
                seterr(errstr, size, "cluster: no seeds");
                return -1;
        }
        while (*s) {
                char host[256];
                const char *end = strchr(s, ','), *colon, *h0, *h1;
                size_t tl, hl;
                long port = 0;
                while (*s == ' ')
                        s++;
                if (!end)
                        end = s + strlen(s);
                tl = (size_t)(end - s);
                while (tl && s[tl - 1] == ' ')
                        tl--;
                if (!tl)
                        goto bad;
                if (s[0] == '[') {
                        const char *rb = memchr(s, ']', tl);
                        if (!rb || rb + 1 >= s + tl || rb[1] != ':')
                                goto bad;
                        h0 = s + 1;
                        h1 = rb;
                        colon = rb + 1;
                } else {
                        colon = NULL;
                        for (const char *c = s; c < s + tl; c++)
                                if (*c == ':')
                                        colon = c;
                        if (!colon)
                                goto bad;
                        h0 = s;
                        h1 = colon;
                }
                hl = (size_t)(h1 - h0);
                if (!hl || hl >= sizeof(host) || colon + 1 >= s + tl)
                        goto bad;
                for (const char *c = colon + 1; c < s + tl; c++) {
                        if (*c < '0' || *c > '9' || port > 65535)
                                goto bad;
                        port = port * 10 + (*c - '0');
                }
                if (port < 1 || port > 65535)
                        goto bad;
                memcpy(host, h0, hl);
                host[hl] = '\0';
                {
                        int i = node_get(cl, host, (int)port);
                        if (i < 0) {
                                seterr(errstr, size,
                                       "cluster: out of "
                                       "memory");
                                return -1;
                        }
                        cl->nodes[i].seed = 1;
                }
                nseeds++;
                s = *end ? end + 1 : end;
                if (*end && !*s)
                        goto bad; /* trailing comma */
                continue;
        bad:
                seterr(errstr, size,
                       "cluster: seed %d: want host:port in "
                       "\"host:port[,host:port...]\"",
                       nseeds + 1);
                return -1;
        }
        if (!nseeds) {
                seterr(errstr, size, "cluster: no seeds");
                return -1;
        }
        return 0;
}

loy_cluster_t *loy_cluster_create(const char *seeds, int timeout_ms,
                                  char *errstr, size_t errstr_size) {
        loy_cluster_t *cl;
        loy_sigpipe_t g;
        if (timeout_ms < 0) {
                seterr(errstr, errstr_size, "cluster: timeout_ms %d < 0",
                       timeout_ms);
                return NULL;
        }
        cl = calloc(1, sizeof(*cl));
        if (!cl) {
                seterr(errstr, errstr_size, "cluster: out of memory");
                return NULL;
        }
        if (!timeout_ms)
                timeout_ms = DEFAULT_TIMEOUT_MS;
        cl->connect_ms = cl->command_ms = timeout_ms;
        cl->mode = -1;
        cl->stale = 1;
        for (int s = 0; s < LOY_CLUSTER_SLOTS; s++)
                cl->owner[s] = NO_NODE;
        if (parse_seeds(cl, seeds, errstr, errstr_size)) {
                loy_cluster_destroy(cl);
                return NULL;
        }
        /* Unreachable now is not an error: the next send asks again. */
        loy_sigpipe_block(&g);
        refresh(cl, -1, NULL, 0);
        loy_sigpipe_restore(&g);
        return cl;
}

/* A password is not left behind in freed memory (explicit_bzero: a
 * memset before free may be optimised away). */
static void wipe_free(char *secret) {
        if (secret) {
                explicit_bzero(secret, strlen(secret));
                free(secret);
        }
}

void loy_cluster_destroy(loy_cluster_t *cl) {
        if (!cl)
                return;
        for (int i = 0; i < cl->nnodes; i++) {
                node_drop(cl, i);
                free(cl->nodes[i].host);
        }
        free(cl->nodes);
        free(cl->name);
        free(cl->user);
        wipe_free(cl->password);
        free(cl);
}

/* ------------------------------------------------- names and guards */

int loy_cluster_set_name(loy_cluster_t *cl, const char *name, char *errstr,
                         size_t size) {
        char *copy = NULL;
        loy_sigpipe_t g;
        if (name) {
                if (!*name || strlen(name) > 128) {
                        seterr(errstr, size,
                               "cluster: client name must be "
                               "1..128 characters");
                        return LOY_CLUSTER_ERR;
                }
                for (const char *c = name; *c; c++)
                        if (*c < '!' || *c > '~') {
                                seterr(errstr, size,
                                       "cluster: client name "
                                       "\"%s\": printable characters "
                                       "without blanks only",
                                       name);
                                return LOY_CLUSTER_ERR;
                        }
                if (!(copy = strdup(name))) {
                        seterr(errstr, size, "cluster: out of memory");
                        return LOY_CLUSTER_ERR;
                }
        }
        if (cl->inflight) {
                free(copy);
                seterr(errstr, size, "cluster: a pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        free(cl->name);
        cl->name = copy;
        /* The open connections are named now; one that fails is dropped
         * (opened again, with the name, when next used). */
        loy_sigpipe_block(&g);
        for (int i = 0; i < cl->nnodes; i++) {
                char addr[300], why[WHY_MAX];
                if (!cl->nodes[i].ctx)
                        continue;
                node_addr(&cl->nodes[i], addr, sizeof(addr));
                if (name_conn(cl->nodes[i].ctx, copy ? copy : "", why,
                              sizeof(why), addr))
                        node_lost(cl, i, why, sizeof(why));
        }
        loy_sigpipe_restore(&g);
        return LOY_CLUSTER_OK;
}

int loy_cluster_set_conn(loy_cluster_t *cl, const loy_rconn_opts_t *o,
                         char *errstr, size_t size) {
        char *user = NULL, *password = NULL;
        if (cl->inflight) {
                seterr(errstr, size, "cluster: a pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        if (o->db < 0 || o->connect_timeout_ms < 0 ||
            o->command_timeout_ms < 0) {
                seterr(errstr, size,
                       "cluster: negative database or "
                       "timeout");
                return LOY_CLUSTER_ERR;
        }
        if ((o->user && *o->user && !(user = strdup(o->user))) ||
            (o->password && *o->password &&
             !(password = strdup(o->password)))) {
                free(user);
                seterr(errstr, size, "cluster: out of memory");
                return LOY_CLUSTER_ERR;
        }
        free(cl->user);
        wipe_free(cl->password);
        cl->user = user;
        cl->password = password;
        cl->db = o->db;
        if (o->connect_timeout_ms)
                cl->connect_ms = o->connect_timeout_ms;
        if (o->command_timeout_ms)
                cl->command_ms = o->command_timeout_ms;
        /* connections opened before are not authenticated this way: they
         * are opened again when next used, and the map read again */
        for (int i = 0; i < cl->nnodes; i++)
                node_drop(cl, i);
        cl->stale = 1;
        return LOY_CLUSTER_OK;
}

/* The node indices that serve a slot, each once; returns how many. */
static int masters(const loy_cluster_t *cl, int *out, int max) {
        unsigned char seen[NODES_MAX / 8] = {0};
        int n = 0;
        for (int s = 0; s < LOY_CLUSTER_SLOTS && n < max; s++) {
                unsigned o = cl->owner[s];
                if (o == NO_NODE || ((seen[o / 8] >> (o % 8)) & 1))
                        continue;
                seen[o / 8] |= (unsigned char)(1u << (o % 8));
                out[n++] = (int)o;
        }
        return n;
}

/* The masters of the map, read again first if it may have moved; 0 with
 * errstr when there is none. */
static int masters_now(loy_cluster_t *cl, int *m, char *errstr, size_t size) {
        int nm;
        if (cl->stale)
                refresh(cl, -1, NULL, 0);
        nm = masters(cl, m, NODES_MAX);
        if (!nm)
                seterr(errstr, size, "cluster: no slot map: %s", cl->map_err);
        return nm;
}

int loy_cluster_guard_begin(loy_cluster_t *cl, char *errstr, size_t size) {
        int m[NODES_MAX], nm, rc = LOY_CLUSTER_OK;
        loy_sigpipe_t g;
        char why[WHY_MAX];
        if (cl->inflight) {
                seterr(errstr, size, "cluster: a pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        loy_sigpipe_block(&g);
        nm = masters_now(cl, m, errstr, size);
        if (!nm)
                rc = LOY_CLUSTER_ERR_IO;
        for (int k = 0; k < nm && rc == LOY_CLUSTER_OK; k++)
                if (node_connect(cl, m[k], why, sizeof(why))) {
                        seterr(errstr, size, "cluster: %s", why);
                        cl->stale = 1;
                        rc = LOY_CLUSTER_ERR_IO;
                }
        loy_sigpipe_restore(&g);
        if (rc == LOY_CLUSTER_OK)
                cl->guarded = 1;
        return rc;
}

void loy_cluster_guard_end(loy_cluster_t *cl) {
        cl->guarded = 0;
}

/* The ids of node i's clients called name, from CLIENT LIST's lines
 * ("id=7 addr=... name=... ..."). Returns how many, -1 on a bad reply. */
static int named_ids(const char *list, const char *name, long long *ids,
                     int max) {
        size_t nl = strlen(name);
        int n = 0;
        for (const char *line = list; line && *line;) {
                const char *end = strchr(line, '\n');
                const char *f = line;
                long long id = -1;
                int match = 0;
                if (!end)
                        end = line + strlen(line);
                while (f < end) {
                        const char *sp = memchr(f, ' ', (size_t)(end - f));
                        const char *fe = sp ? sp : end;
                        if (fe - f > 3 && !strncmp(f, "id=", 3))
                                id = strtoll(f + 3, NULL, 10);
                        else if ((size_t)(fe - f) == 5 + nl &&
                                 !strncmp(f, "name=", 5) &&
                                 !strncmp(f + 5, name, nl))
                                match = 1;
                        f = fe + 1;
                }
                if (match && id >= 0 && n < max)
                        ids[n++] = id;
                line = *end ? end + 1 : end;
        }
        return n;
}

int loy_cluster_kill_named(loy_cluster_t *cl, const char *name, int *nkilled,
                           char *errstr, size_t size) {
        int m[NODES_MAX], nm, rc = LOY_CLUSTER_OK;
        loy_sigpipe_t g;
        char why[WHY_MAX], addr[300];
        if (nkilled)
                *nkilled = 0;
        if (!name || !*name || strchr(name, ' ')) {
                seterr(errstr, size, "cluster: bad client name");
                return LOY_CLUSTER_ERR;
        }
        if (cl->inflight) {
                seterr(errstr, size, "cluster: a pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        loy_sigpipe_block(&g);
        nm = masters_now(cl, m, errstr, size);
        if (!nm)
                rc = LOY_CLUSTER_ERR_IO;
        for (int k = 0; k < nm && rc == LOY_CLUSTER_OK; k++) {
                redisContext *c;
                redisReply *r;
                long long ids[256];
                int nids;
                if (node_connect(cl, m[k], why, sizeof(why))) {
                        seterr(errstr, size, "cluster: %s", why);
                        rc = LOY_CLUSTER_ERR_IO;
                        break;
                }
                c = cl->nodes[m[k]].ctx;
                node_addr(&cl->nodes[m[k]], addr, sizeof(addr));
                r = redisCommand(c, "CLIENT LIST TYPE normal");
                if (!r) {
                        node_lost(cl, m[k], why, sizeof(why));
                        seterr(errstr, size, "cluster: %s", why);
                        rc = LOY_CLUSTER_ERR_IO;
                        break;
                }
                nids = r->type == REDIS_REPLY_STRING
                           ? named_ids(r->str, name, ids, 256)
                           : -1;
                if (nids < 0)
                        seterr(
                            errstr, size, "cluster: %s: CLIENT LIST: %s", addr,
                            r->type == REDIS_REPLY_ERROR ? r->str
                                                         : "unexpected reply");
                freeReplyObject(r);
                if (nids < 0) {
                        rc = LOY_CLUSTER_ERR;
                        break;
                }
                for (int j = 0; j < nids; j++) {
                        r = redisCommand(c, "CLIENT KILL ID %lld", ids[j]);
                        if (!r) {
                                node_lost(cl, m[k], why, sizeof(why));
                                seterr(errstr, size, "cluster: %s", why);
                                rc = LOY_CLUSTER_ERR_IO;
                                break;
                        }
                        /* 0: gone by itself meanwhile */
                        if (r->type == REDIS_REPLY_INTEGER && nkilled)
                                *nkilled += (int)r->integer;
                        freeReplyObject(r);
                }
        }
        loy_sigpipe_restore(&g);
        return rc;
}

int loy_cluster_refresh(loy_cluster_t *cl, char *errstr, size_t size) {
        loy_sigpipe_t g;
        int rc;
        if (cl->inflight) {
                seterr(errstr, size, "cluster: a pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        loy_sigpipe_block(&g);
        rc = refresh(cl, -1, errstr, size);
        loy_sigpipe_restore(&g);
        return rc;
}

int loy_cluster_is_cluster(const loy_cluster_t *cl) {
        return cl->mode;
}

int loy_cluster_node_of(const loy_cluster_t *cl, unsigned slot, char *addr,
                        size_t size) {
        char buf[300];
        if (slot >= LOY_CLUSTER_SLOTS || cl->owner[slot] == NO_NODE)
                return -1;
        node_addr(&cl->nodes[cl->owner[slot]], buf, sizeof(buf));
        if (strlen(buf) >= size)
                return -1;
        memcpy(addr, buf, strlen(buf) + 1);
        return 0;
}

void loy_cluster_stats(const loy_cluster_t *cl, loy_cluster_stats_t *st) {
        *st = cl->st;
}

/* -------------------------------------------------------------- pipe */

loy_cluster_pipe_t *loy_cluster_pipe_create(loy_cluster_t *cl, char *errstr,
                                            size_t size) {
        loy_cluster_pipe_t *p = calloc(1, sizeof(*p));
        if (!p) {
                seterr(errstr, size, "cluster: out of memory");
                return NULL;
        }
        p->cl = cl;
        p->state = PIPE_BUILDING;
        return p;
}

/* Forgets a pipe in flight: the replies of its sends are still coming on
 * the connections it used, so those connections are closed. */
static void abandon(loy_cluster_pipe_t *p) {
        loy_cluster_t *cl = p->cl;
        if ((p->state != PIPE_INFLIGHT && !p->pushed) || cl->inflight != p)
                return;
        for (int i = 0; i < cl->nnodes; i++)
                if (cl->nodes[i].head != NONE) {
                        node_drop(cl, i);
                        cl->nodes[i].head = cl->nodes[i].tail = NONE;
                }
        cl->inflight = NULL;
}

void loy_cluster_pipe_reset(loy_cluster_pipe_t *p) {
        abandon(p);
        for (size_t i = 0; i < p->nrep; i++)
                if (p->rep[i])
                        freeReplyObject(p->rep[i]);
        p->len = p->nunits = p->nparts = p->nrep = p->nsends = 0;
        p->pushed = 0;
        p->why_io[0] = p->why_err[0] = p->why_busy[0] = '\0';
        p->moved = 0;
        p->state = PIPE_BUILDING;
}

void loy_cluster_pipe_destroy(loy_cluster_pipe_t *p) {
        if (!p)
                return;
        loy_cluster_pipe_reset(p);
        free(p->buf);
        free(p->units);
        free(p->parts);
        free(p->rep);
        free(p->sends);
        free(p);
}

size_t loy_cluster_pipe_units(const loy_cluster_pipe_t *p) {
        return p->nunits;
}

/* "<type><decimal>\r\n" at *pos. 0, or -1 when it is not there. */
static int scan_num(const char *b, size_t len, size_t *pos, char type,
                    size_t *out) {
        size_t i = *pos + 1, v = 0;
        if (*pos >= len || b[*pos] != type)
                return -1;
        for (; i < len && b[i] >= '0' && b[i] <= '9'; i++) {
                if (v > len)
                        return -1; /* longer than the unit itself */
                v = v * 10 + (size_t)(b[i] - '0');
        }
        if (i == *pos + 1 || len - i < 2 || b[i] != '\r' || b[i + 1] != '\n')
                return -1;
        *pos = i + 2;
        *out = v;
        return 0;
}

enum { CMD_OTHER, CMD_MULTI, CMD_EXEC, CMD_DISCARD };

static int cmd_kind(const char *name, size_t n) {
        if (n == 5 && !strncasecmp(name, "MULTI", 5))
                return CMD_MULTI;
        if (n == 4 && !strncasecmp(name, "EXEC", 4))
                return CMD_EXEC;
        if (n == 7 && !strncasecmp(name, "DISCARD", 7))
                return CMD_DISCARD;
        return CMD_OTHER;
}

/* One RESP command (an array of bulk strings) at *pos; *kind from its
 * name. 0 or -1. */
static int scan_cmd(const char *b, size_t len, size_t *pos, int *kind) {
        size_t argc, n;
        if (scan_num(b, len, pos, '*', &argc) || argc == 0)
                return -1;
        for (size_t a = 0; a < argc; a++) {
                if (scan_num(b, len, pos, '$', &n) || n > len - *pos ||
                    len - *pos - n < 2)
                        return -1;
                if (a == 0)
                        *kind = cmd_kind(b + *pos, n);
                *pos += n;
                if (b[*pos] != '\r' || b[*pos + 1] != '\n')
                        return -1;
                *pos += 2;
        }
        return 0;
}

static int push_part(loy_cluster_pipe_t *p, size_t off, size_t len,
                     uint32_t rep, uint32_t nrep) {
        part_t *pt;
        if (grow((void **)&p->parts, &p->parts_cap, p->nparts + 1,
                 sizeof(*p->parts)))
                return -1;
        pt = &p->parts[p->nparts++];
        memset(pt, 0, sizeof(*pt));
        pt->off = off;
        pt->len = len;
        pt->unit = (uint32_t)p->nunits;
        pt->rep = rep;
        pt->nrep = nrep;
        pt->ask = NONE;
        pt->state = P_PENDING;
        return 0;
}

/* A unit of one part already scanned (a lone command, or one MULTI ...
 * EXEC block of ncmd commands): no second pass over its bytes. */
static int add_one_part(loy_cluster_pipe_t *p, unsigned slot, const char *b,
                        size_t len, size_t ncmd, char *errstr, size_t size) {
        uint32_t rep0 = (uint32_t)p->nrep;
        size_t saved_parts = p->nparts;
        unit_t *u;
        if (p->nunits >= UINT32_MAX - 1 || p->nrep + ncmd >= UINT32_MAX) {
                seterr(errstr, size, "cluster: pipe too large");
                return LOY_CLUSTER_ERR;
        }
        if (push_part(p, p->len, len, rep0, (uint32_t)ncmd) ||
            grow((void **)&p->buf, &p->cap, p->len + len, 1) ||
            grow((void **)&p->units, &p->units_cap, p->nunits + 1,
                 sizeof(*p->units)) ||
            grow((void **)&p->rep, &p->rep_cap, p->nrep + ncmd,
                 sizeof(*p->rep))) {
                p->nparts = saved_parts;
                seterr(errstr, size, "cluster: out of memory");
                return LOY_CLUSTER_ERR;
        }
        memcpy(p->buf + p->len, b, len);
        p->len += len;
        for (size_t i = 0; i < ncmd; i++)
                p->rep[p->nrep + i] = NULL;
        p->nrep += ncmd;
        u = &p->units[p->nunits++];
        u->part0 = (uint32_t)saved_parts;
        u->nparts = 1;
        u->rep0 = rep0;
        u->nrep = (uint32_t)ncmd;
        u->slot = slot;
        u->status = LOY_CLUSTER_ERR;
        return LOY_CLUSTER_OK;
}

int loy_cluster_pipe_add(loy_cluster_pipe_t *p, unsigned slot, const void *resp,
                         size_t len, int nreplies, char *errstr, size_t size) {
        const char *b = resp;
        size_t pos = 0, saved_parts = p->nparts, ncmd = 0, txn_off = 0;
        size_t txn_cmd = 0, boff = p->len;
        uint32_t rep0 = (uint32_t)p->nrep;
        int in_txn = 0;
        const char *what;
        unit_t *u;
        if (p->state != PIPE_BUILDING) {
                seterr(errstr, size,
                       "cluster: pipe already sent; reset it "
                       "first");
                return LOY_CLUSTER_ERR;
        }
        if (slot >= LOY_CLUSTER_SLOTS) {
                seterr(errstr, size, "cluster: slot %u out of range", slot);
                return LOY_CLUSTER_ERR;
        }
        if (!b || !len) {
                seterr(errstr, size, "cluster: empty unit");
                return LOY_CLUSTER_ERR;
        }
        if (p->nunits >= UINT32_MAX - 1 || p->nrep + len / 4 >= UINT32_MAX) {
                seterr(errstr, size, "cluster: pipe too large");
                return LOY_CLUSTER_ERR;
        }
        while (pos < len) {
                size_t start = pos;
                int kind = CMD_OTHER;
                if (scan_cmd(b, len, &pos, &kind)) {
                        what = "not RESP arrays of bulk strings";
                        goto bad;
                }
                ncmd++;
                if (in_txn) {
                        if (kind == CMD_MULTI) {
                                what = "MULTI inside MULTI";
                                goto bad;
                        }
                        if (kind != CMD_EXEC && kind != CMD_DISCARD)
                                continue;
                        in_txn = 0;
                        if (push_part(p, boff + txn_off, pos - txn_off,
                                      rep0 + (uint32_t)txn_cmd,
                                      (uint32_t)(ncmd - txn_cmd)))
                                goto oom;
                } else if (kind == CMD_MULTI) {
                        in_txn = 1;
                        txn_off = start;
                        txn_cmd = ncmd - 1;
                } else if (kind != CMD_OTHER) {
                        what = "EXEC or DISCARD without MULTI";
                        goto bad;
                } else if (push_part(p, boff + start, pos - start,
                                     rep0 + (uint32_t)(ncmd - 1), 1)) {
                        goto oom;
                }
        }
        if (in_txn) {
                what = "MULTI without EXEC";
                goto bad;
        }
        if (nreplies < 0 || (size_t)nreplies != ncmd) {
                seterr(errstr, size,
                       "cluster: unit %zu holds %zu "
                       "commands, not %d",
                       p->nunits, ncmd, nreplies);
                p->nparts = saved_parts;
                return LOY_CLUSTER_ERR;
        }
        if (grow((void **)&p->buf, &p->cap, p->len + len, 1) ||
            grow((void **)&p->units, &p->units_cap, p->nunits + 1,
                 sizeof(*p->units)) ||
            grow((void **)&p->rep, &p->rep_cap, p->nrep + ncmd,
                 sizeof(*p->rep)))
                goto oom;
        memcpy(p->buf + p->len, b, len);
        p->len += len;
        for (size_t i = 0; i < ncmd; i++)
                p->rep[p->nrep + i] = NULL;
        p->nrep += ncmd;
        u = &p->units[p->nunits++];
        u->part0 = (uint32_t)saved_parts;
        u->nparts = (uint32_t)(p->nparts - saved_parts);
        u->rep0 = rep0;
        u->nrep = (uint32_t)ncmd;
        u->slot = slot;
        u->status = LOY_CLUSTER_ERR;
        return LOY_CLUSTER_OK;
bad:
        seterr(errstr, size, "cluster: unit %zu: %s", p->nunits, what);
        p->nparts = saved_parts;
        return LOY_CLUSTER_ERR;
oom:
        seterr(errstr, size, "cluster: out of memory");
        p->nparts = saved_parts;
        return LOY_CLUSTER_ERR;
}

/* The key a command's slot is taken from: its first argument, or for EVAL
 * and EVALSHA its first key (none when numkeys is 0). Commands without
 * arguments (PING, MULTI, EXEC ...) and the few server commands below have
 * none. *key NULL when there is none. -1 for bytes that are not a
 * command. */
static int cmd_key(const char *b, size_t len, size_t pos, const char **key,
                   size_t *klen) {
        static const char *const keyless[] = {"SCRIPT", "INFO", "CLUSTER",
                                              "CONFIG", "ECHO", NULL};
        const char *arg[4];
        size_t alen[4], argc, n;
        *key = NULL;
        *klen = 0;
        if (scan_num(b, len, &pos, '*', &argc) || argc == 0)
                return -1;
        for (size_t a = 0; a < argc && a < 4; a++) {
                if (scan_num(b, len, &pos, '$', &n) || n > len - pos)
                        return -1;
                arg[a] = b + pos;
                alen[a] = n;
                pos += n + 2;
        }
        if (argc < 2)
                return 0;
        for (int i = 0; keyless[i]; i++)
                if (alen[0] == strlen(keyless[i]) &&
                    !strncasecmp(arg[0], keyless[i], alen[0]))
                        return 0;
        if ((alen[0] == 4 && !strncasecmp(arg[0], "EVAL", 4)) ||
            (alen[0] == 7 && !strncasecmp(arg[0], "EVALSHA", 7))) {
                if (argc < 4 || (alen[2] == 1 && arg[2][0] == '0'))
                        return 0;
                *key = arg[3];
                *klen = alen[3];
                return 0;
        }
        *key = arg[1];
        *klen = alen[1];
        return 0;
}

int loy_cluster_pipe_add_cmds(loy_cluster_pipe_t *p, const void *resp,
                              size_t len, size_t *nunits, char *errstr,
                              size_t size) {
        const char *b = resp;
        size_t pos = 0, start = 0, ncmd = 0, added = 0;
        int in_txn = 0, have_slot = 0;
        unsigned slot = 0;
        if (nunits)
                *nunits = 0;
        if (p->state != PIPE_BUILDING) {
                seterr(errstr, size,
                       "cluster: pipe already sent; reset it "
                       "first");
                return LOY_CLUSTER_ERR;
        }
        while (pos < len) {
                size_t cmd_at = pos, klen;
                const char *key;
                int kind = CMD_OTHER;
                if (scan_cmd(b, len, &pos, &kind) ||
                    cmd_key(b, len, cmd_at, &key, &klen)) {
                        seterr(errstr, size,
                               "cluster: not RESP arrays of "
                               "bulk strings at byte %zu",
                               cmd_at);
                        return LOY_CLUSTER_ERR;
                }
                ncmd++;
                if (key && !have_slot) {
                        slot = loy_cluster_slot(key, klen);
                        have_slot = 1;
                }
                if (kind == CMD_MULTI) {
                        if (in_txn) {
                                seterr(errstr, size,
                                       "cluster: MULTI inside "
                                       "MULTI");
                                return LOY_CLUSTER_ERR;
                        }
                        in_txn = 1;
                        continue;
                }
                if (in_txn && kind != CMD_EXEC && kind != CMD_DISCARD)
                        continue;
                if (!in_txn && kind != CMD_OTHER) {
                        seterr(errstr, size,
                               "cluster: EXEC or DISCARD "
                               "without MULTI");
                        return LOY_CLUSTER_ERR;
                }
                /* a lone command, or the EXEC that closes a block */
                in_txn = 0;
                if (add_one_part(p, slot, b + start, pos - start, ncmd, errstr,
                                 size))
                        return LOY_CLUSTER_ERR;
                added++;
                if (nunits)
                        *nunits = added;
                start = pos;
                ncmd = 0;
                have_slot = 0;
                slot = 0;
        }
        if (in_txn) {
                seterr(errstr, size, "cluster: MULTI without EXEC");
                return LOY_CLUSTER_ERR;
        }
        return LOY_CLUSTER_OK;
}

/* ------------------------------------------------------------ rounds */

static void fail_part(loy_cluster_pipe_t *p, part_t *pt, int state,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Marks a part failed; the first failure of each kind is kept for
 * errstr. */
static void fail_part(loy_cluster_pipe_t *p, part_t *pt, int state,
                      const char *fmt, ...) {
        char *why = state == P_IO    ? p->why_io
                    : state == P_ERR ? p->why_err
                                     : p->why_busy;
        va_list ap;
        int n;
        pt->state = state;
        if (why[0])
                return;
        n = snprintf(why, WHY_MAX, "unit %u (slot %u): ", pt->unit,
                     p->units[pt->unit].slot);
        if (n < 0 || n >= WHY_MAX)
                return;
        va_start(ap, fmt);
        vsnprintf(why + n, WHY_MAX - (size_t)n, fmt, ap);
        va_end(ap);
}

/* Fails node i's sends from s on (its connection is gone). */
static void fail_sends(loy_cluster_pipe_t *p, int i, uint32_t s,
                       const char *why) {
        for (; s != NONE; s = p->sends[s].next)
                fail_part(p, &p->parts[p->sends[s].part], P_IO, "%s", why);
        p->cl->nodes[i].failed = 1;
}

static int add_send(loy_cluster_pipe_t *p, int i, uint32_t part, int asking) {
        node_t *n = &p->cl->nodes[i];
        send_t *s;
        if (grow((void **)&p->sends, &p->sends_cap, p->nsends + 1,
                 sizeof(*p->sends)))
                return -1;
        s = &p->sends[p->nsends];
        s->part = part;
        s->next = NONE;
        s->asking = asking;
        if (n->tail == NONE)
                n->head = (uint32_t)p->nsends;
        else
                p->sends[n->tail].next = (uint32_t)p->nsends;
        if (n->mark == NONE)
                n->mark = (uint32_t)p->nsends;
        n->tail = (uint32_t)p->nsends++;
        return 0;
}

/* A round of sends starts: no node has any. */
static void round_begin(loy_cluster_pipe_t *p) {
        loy_cluster_t *cl = p->cl;
        for (int i = 0; i < cl->nnodes; i++) {
                cl->nodes[i].head = cl->nodes[i].tail = NONE;
                cl->nodes[i].mark = NONE;
                cl->nodes[i].failed = 0;
        }
        p->nsends = 0;
}

/* Sends the pending parts from part `from` on: appended to their nodes'
 * connections after what the round sent them already, then every node
 * written. A part that cannot be sent fails here. */
static void round_push(loy_cluster_pipe_t *p, size_t from) {
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        loy_cluster_t *cl = p->cl;
        char why[WHY_MAX];
        for (size_t k = from; k < p->nparts; k++) {
                part_t *pt = &p->parts[k];
                unsigned n;
                int ask;
                if (pt->state != P_PENDING)
                        continue;
                ask = pt->ask != NONE;
                n = ask ? pt->ask : cl->owner[p->units[pt->unit].slot];
                pt->ask = NONE; /* an ASK is followed once */
                if (n == NO_NODE) {
                        if (cl->mode < 0)
                                fail_part(p, pt, P_IO, "no slot map: %s",
                                          cl->map_err);
                        else
                                fail_part(p, pt, P_BUSY,
                                          "slot not served "
                                          "by any node");
                } else if (add_send(p, (int)n, (uint32_t)k, ask)) {
                        fail_part(p, pt, P_ERR, "out of memory");
                }
        }
        for (int i = 0; i < cl->nnodes; i++) {
                node_t *n = &cl->nodes[i];
                uint32_t from_send = n->mark;
                if (from_send == NONE)
                        continue;
                n->mark = NONE;
                if (n->failed) {
                        /* its connection went with the round's earlier
                         * sends: a new one would take their replies */
                        fail_sends(p, i, from_send,
                                   "connection lost "
                                   "earlier in this pipe");
                        continue;
                }
                /* a connection with earlier sends of the round has
                 * their replies waiting: in use, not idle */
                if (from_send == n->head &&
                    node_connect(cl, i, why, sizeof(why))) {
                        fail_sends(p, i, n->head, why);
                        cl->stale = 1;
                        continue;
                }
                /* Parts next to each other in the pipe's buffer go in one
                 * append: one per part grew hiredis' output buffer by
                 * hundreds of reallocations a batch. */
                {
                        size_t run_off = 0, run_len = 0;
                        int lost = 0;
                        for (uint32_t s = from_send; !lost;
                             s = p->sends[s].next) {
                                const part_t *pt =
                                    s == NONE ? NULL
                                              : &p->parts[p->sends[s].part];
                                int joins = pt && run_len &&
                                            !p->sends[s].asking &&
                                            pt->off == run_off + run_len;
                                if (joins) {
                                        run_len += pt->len;
                                        continue;
                                }
                                if (run_len && redisAppendFormattedCommand(
                                                   n->ctx, p->buf + run_off,
                                                   run_len) != REDIS_OK)
                                        lost = 1;
                                if (!pt || lost)
                                        break;
                                if (p->sends[s].asking &&
                                    redisAppendFormattedCommand(
                                        n->ctx, asking, sizeof(asking) - 1) !=
                                        REDIS_OK)
                                        lost = 1;
                                run_off = pt->off;
                                run_len = pt->len;
                        }
                        if (lost) {
                                node_lost(cl, i, why, sizeof(why));
                                fail_sends(p, i, n->head, why);
                        }
                }
        }
        /* Every node written before any is read: they work meanwhile. */
        for (int i = 0; i < cl->nnodes; i++) {
                node_t *n = &cl->nodes[i];
                int done = 0;
                if (n->head == NONE || n->failed)
                        continue;
                while (!done) {
                        if (redisBufferWrite(n->ctx, &done) != REDIS_OK) {
                                node_lost(cl, i, why, sizeof(why));
                                fail_sends(p, i, n->head, why);
                                break;
                        }
                }
        }
}

/* Sends every pending part, as a new round. */
static void round_send(loy_cluster_pipe_t *p) {
        round_begin(p);
        round_push(p, 0);
}

/* "MOVED <slot> <host>:<port>" (or ASK) after the word: slot, host (into
 * host, empty when the node did not say) and port. 0 or -1. */
static int parse_redirect(const char *s, unsigned *slot, char *host,
                          size_t hsize, int *port) {
        const char *sp = strchr(s, ' '), *addr, *colon;
        char *end;
        unsigned long v;
        long pv;
        size_t hl;
        if (!sp)
                return -1;
        errno = 0;
        v = strtoul(sp + 1, &end, 10);
        if (errno || end == sp + 1 || *end != ' ' || v >= LOY_CLUSTER_SLOTS)
                return -1;
        addr = end + 1;
        colon = strrchr(addr, ':');
        if (!colon)
                return -1;
        pv = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || pv < 1 || pv > 65535)
                return -1;
        hl = (size_t)(colon - addr);
        if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
                addr++;
                hl -= 2;
        }
        if (hl >= hsize)
                return -1;
        memcpy(host, addr, hl);
        host[hl] = '\0';
        *slot = (unsigned)v;
        *port = (int)pv;
        return 0;
}

static int error_is(const redisReply *r, const char *word) {
        size_t n = strlen(word);
        return r && r->type == REDIS_REPLY_ERROR && r->str && r->len > n &&
               !strncmp(r->str, word, n) && r->str[n] == ' ';
}

/* Judges a part's replies, read from node i: done, refused, or redirected
 * (pending again). Only top-level replies count: the results inside an
 * EXEC's array were executed. */
static void judge(loy_cluster_pipe_t *p, part_t *pt, int i) {
        loy_cluster_t *cl = p->cl;
        const redisReply *moved = NULL, *ask = NULL, *busy = NULL, *r;
        const unit_t *u = &p->units[pt->unit];
        char host[256];
        unsigned slot;
        int port, n;
        for (uint32_t k = 0; k < pt->nrep; k++) {
                r = p->rep[pt->rep + k];
                if (!moved && error_is(r, "MOVED"))
                        moved = r;
                else if (!ask && error_is(r, "ASK"))
                        ask = r;
                else if (!busy && (error_is(r, "TRYAGAIN") ||
                                   error_is(r, "CLUSTERDOWN")))
                        busy = r;
        }
        if (!moved && !ask) {
                if (busy)
                        fail_part(p, pt, P_BUSY, "%s", busy->str);
                else
                        pt->state = P_DONE;
                return;
        }
        r = moved ? moved : ask;
        if (parse_redirect(r->str, &slot, host, sizeof(host), &port)) {
                fail_part(p, pt, P_ERR, "bad redirection: %s", r->str);
                return;
        }
        if (slot != u->slot) {
                fail_part(p, pt, P_ERR, "its keys are in slot %u (%s)", slot,
                          r->str);
                return;
        }
        if (++pt->redirects > LOY_CLUSTER_MAX_REDIRECTS) {
                fail_part(p, pt, P_ERR,
                          "more than %d redirections (last: "
                          "%s)",
                          LOY_CLUSTER_MAX_REDIRECTS, r->str);
                return;
        }
        /* A node that does not know its address leaves the host out. */
        n = node_get(cl, host[0] ? host : cl->nodes[i].host, port);
        if (n < 0) {
                fail_part(p, pt, P_ERR, "too many nodes, or out of memory");
                return;
        }
        if (moved) {
                cl->owner[slot] = (uint16_t)n;
                cl->st.moved++;
                p->moved = 1;
                p->moved_to = (uint32_t)n;
        } else {
                pt->ask = (uint32_t)n;
                cl->st.ask++;
        }
        pt->state = P_PENDING;
}

/* Next reply on node i into *r. 0, or -1 (connection dropped, why). */
static int read_reply(loy_cluster_t *cl, int i, redisReply **r, char *why,
                      size_t size) {
        void *v = NULL;
        if (redisGetReply(cl->nodes[i].ctx, &v) != REDIS_OK || !v) {
                if (v)
                        freeReplyObject(v);
                node_lost(cl, i, why, size);
                return -1;
        }
        *r = v;
        return 0;
}

/* Reads every node's replies for this round's sends. */
static void round_read(loy_cluster_pipe_t *p) {
        loy_cluster_t *cl = p->cl;
        char why[WHY_MAX];
        p->moved = 0;
        /* By index: judge() may add nodes, and so move the table. */
        for (int i = 0; i < cl->nnodes; i++) {
                if (cl->nodes[i].head == NONE || cl->nodes[i].failed)
                        continue;
                for (uint32_t s = cl->nodes[i].head; s != NONE;
                     s = p->sends[s].next) {
                        part_t *pt = &p->parts[p->sends[s].part];
                        redisReply *r = NULL;
                        uint32_t k;
                        if (p->sends[s].asking) {
                                if (read_reply(cl, i, &r, why, sizeof(why)))
                                        goto lost;
                                freeReplyObject(r);
                        }
                        for (k = 0; k < pt->nrep; k++) {
                                redisReply **slot = &p->rep[pt->rep + k];
                                if (*slot) { /* an earlier redirect */
                                        freeReplyObject(*slot);
                                        *slot = NULL;
                                }
                                if (read_reply(cl, i, slot, why, sizeof(why)))
                                        goto lost;
                        }
                        judge(p, pt, i);
                        continue;
                lost:
                        fail_sends(p, i, s, why);
                        break;
                }
                cl->nodes[i].head = cl->nodes[i].tail = NONE;
        }
}

/* Sends what was added since the last push; the first one starts the
 * round (and the pipe's time in flight). sent: the pipe is complete. */
static int push(loy_cluster_pipe_t *p, int sent, char *errstr, size_t size) {
        loy_cluster_t *cl = p->cl;
        loy_sigpipe_t g;
        if (p->state != PIPE_BUILDING) {
                seterr(errstr, size,
                       "cluster: pipe already sent; reset it "
                       "first");
                return LOY_CLUSTER_ERR;
        }
        if (cl->inflight && cl->inflight != p) {
                seterr(errstr, size, "cluster: another pipe is in flight");
                return LOY_CLUSTER_ERR;
        }
        loy_sigpipe_block(&g);
        if (!p->pushed) {
                /* A failed refresh keeps the old map (or none: the parts
                 * fail). */
                if (cl->stale && p->nparts)
                        refresh(cl, -1, NULL, 0);
                round_begin(p);
        }
        if (sent)
                p->state = PIPE_INFLIGHT;
        cl->inflight = p;
        round_push(p, p->pushed);
        p->pushed = p->nparts;
        loy_sigpipe_restore(&g);
        return LOY_CLUSTER_OK;
}

int loy_cluster_pipe_send(loy_cluster_pipe_t *p, char *errstr, size_t size) {
        return push(p, 1, errstr, size);
}

int loy_cluster_pipe_push(loy_cluster_pipe_t *p, char *errstr, size_t size) {
        if (p->state == PIPE_BUILDING && p->pushed == p->nparts)
                return LOY_CLUSTER_OK;
        return push(p, 0, errstr, size);
}

/* Each unit's status from its parts; the pipe's result with errstr. */
static int finish(loy_cluster_pipe_t *p, char *errstr, size_t size) {
        size_t nio = 0, nerr = 0, nbusy = 0;
        for (size_t k = 0; k < p->nunits; k++) {
                unit_t *u = &p->units[k];
                int io = 0, err = 0, busy = 0;
                for (uint32_t j = 0; j < u->nparts; j++) {
                        int st = p->parts[u->part0 + j].state;
                        io |= st == P_IO;
                        err |= st == P_ERR;
                        busy |= st == P_BUSY;
                }
                u->status = io     ? LOY_CLUSTER_ERR_IO
                            : err  ? LOY_CLUSTER_ERR
                            : busy ? LOY_CLUSTER_ERR_BUSY
                                   : LOY_CLUSTER_OK;
                nio += io != 0;
                nerr += !io && err;
                nbusy += !io && !err && busy;
        }
        p->cl->st.refused += nbusy;
        if (!nio && !nerr && !nbusy)
                return LOY_CLUSTER_OK;
        seterr(errstr, size,
               "cluster: %zu of %zu units failed (%zu i/o, "
               "%zu errors, %zu refused); first: %s",
               nio + nerr + nbusy, p->nunits, nio, nerr, nbusy,
               nio    ? p->why_io
               : nerr ? p->why_err
                      : p->why_busy);
        return nio    ? LOY_CLUSTER_ERR_IO
               : nerr ? LOY_CLUSTER_ERR
                      : LOY_CLUSTER_ERR_BUSY;
}

int loy_cluster_pipe_recv(loy_cluster_pipe_t *p, char *errstr, size_t size) {
        loy_cluster_t *cl = p->cl;
        loy_sigpipe_t g;
        int rc;
        if (p->state != PIPE_INFLIGHT || cl->inflight != p) {
                seterr(errstr, size, "cluster: pipe not sent");
                return LOY_CLUSTER_ERR;
        }
        loy_sigpipe_block(&g);
        for (;;) {
                int pending = 0;
                round_read(p);
                for (size_t k = 0; k < p->nparts && !pending; k++)
                        pending = p->parts[k].state == P_PENDING;
                if (!pending)
                        break;
                /* Redirected parts left: the map first, if it moved. */
                if (p->moved)
                        refresh(cl, (int)p->moved_to, NULL, 0);
                round_send(p);
        }
        loy_sigpipe_restore(&g);
        cl->inflight = NULL;
        p->state = PIPE_DONE;
        rc = finish(p, errstr, size);
        return rc;
}

int loy_cluster_pipe_exec(loy_cluster_pipe_t *p, char *errstr, size_t size) {
        int rc = loy_cluster_pipe_send(p, errstr, size);
        if (rc != LOY_CLUSTER_OK)
                return rc;
        return loy_cluster_pipe_recv(p, errstr, size);
}

int loy_cluster_pipe_status(const loy_cluster_pipe_t *p, size_t unit) {
        if (p->state != PIPE_DONE || unit >= p->nunits)
                return LOY_CLUSTER_ERR;
        return p->units[unit].status;
}

struct redisReply *const *loy_cluster_pipe_replies(const loy_cluster_pipe_t *p,
                                                   size_t unit, int *n) {
        if (p->state != PIPE_DONE || unit >= p->nunits) {
                if (n)
                        *n = 0;
                return NULL;
        }
        if (n)
                *n = (int)p->units[unit].nrep;
        return (struct redisReply *const *)&p->rep[p->units[unit].rep0];
}

struct redisReply *loy_cluster_pipe_take(loy_cluster_pipe_t *p, size_t unit,
                                         int i) {
        redisReply *r;
        if (p->state != PIPE_DONE || unit >= p->nunits || i < 0 ||
            (uint32_t)i >= p->units[unit].nrep)
                return NULL;
        r = p->rep[p->units[unit].rep0 + (uint32_t)i];
        p->rep[p->units[unit].rep0 + (uint32_t)i] = NULL;
        return r;
}
