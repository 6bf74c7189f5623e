/*
 * loy_cluster against real servers: the slot function against CLUSTER
 * KEYSLOT, a 3-master cluster (10,000-unit pipelines, transactions, a slot
 * migration under traffic with ASK and MOVED, a node killed), a single
 * non-cluster redis-server, and a cluster nobody answers for.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>

#include "loy_cluster.h"
#include "tu.h"
#include "tu_cluster.h"

static tu_cluster_t C;
static char E[512];

/* ------------------------------------------------------------- helpers */

/* RESP being built for one unit. */
typedef struct rbuf {
        char *p;
        size_t len, cap;
        int ncmd;
} rbuf_t;

static void rb_raw(rbuf_t *b, const void *s, size_t n) {
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 256;
                while (cap < b->len + n)
                        cap *= 2;
                b->p = realloc(b->p, cap);
                if (!b->p)
                        abort();
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

/* Appends one command: NULL-terminated arguments. */
static void rb_cmd(rbuf_t *b, const char *arg, ...) {
        const char *args[32];
        char hdr[32];
        int n = 0;
        va_list ap;
        va_start(ap, arg);
        for (const char *a = arg; a && n < 32; a = va_arg(ap, const char *))
                args[n++] = a;
        va_end(ap);
        rb_raw(b, hdr, (size_t)snprintf(hdr, sizeof(hdr), "*%d\r\n", n));
        for (int i = 0; i < n; i++) {
                size_t l = strlen(args[i]);
                rb_raw(b, hdr,
                       (size_t)snprintf(hdr, sizeof(hdr), "$%zu\r\n", l));
                rb_raw(b, args[i], l);
                rb_raw(b, "\r\n", 2);
        }
        b->ncmd++;
}

/* Adds b as one unit in the slot of key, and empties b. */
static int add_unit(loy_cluster_pipe_t *p, const char *key, rbuf_t *b) {
        int rc = loy_cluster_pipe_add(p, loy_cluster_slot(key, strlen(key)),
                                      b->p, b->len, b->ncmd, E, sizeof(E));
        if (rc)
                fprintf(stderr, "\n  add: %s\n", E);
        b->len = 0;
        b->ncmd = 0;
        return rc;
}

static const redisReply *reply(loy_cluster_pipe_t *p, size_t unit, int i) {
        int n = 0;
        struct redisReply *const *r = loy_cluster_pipe_replies(p, unit, &n);
        return r && i < n ? r[i] : NULL;
}

static int is_int(const redisReply *r, long long v) {
        return r && r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

static int is_status(const redisReply *r, const char *s) {
        return r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, s);
}

/* HGET key field on node i as a number; -1 when missing, -2 when the node
 * does not hold the key's slot (or on error). */
static long long node_hget(int i, const char *key, const char *field) {
        redisContext *ctx = tu_cluster_connect(&C, i);
        redisReply *r;
        long long v = -2;
        if (!ctx)
                return -2;
        r = redisCommand(ctx, "HGET %s %s", key, field);
        if (r && r->type == REDIS_REPLY_STRING)
                v = atoll(r->str);
        else if (r && r->type == REDIS_REPLY_NIL)
                v = -1;
        if (r)
                freeReplyObject(r);
        redisFree(ctx);
        return v;
}

static int node_of_slot(loy_cluster_t *cl, unsigned slot) {
        char addr[64], want[64];
        if (loy_cluster_node_of(cl, slot, addr, sizeof(addr)))
                return -1;
        for (int i = 0; i < C.n; i++) {
                snprintf(want, sizeof(want), "127.0.0.1:%d", C.node[i].port);
                if (!strcmp(addr, want))
                        return i;
        }
        return -1;
}

/* --------------------------------------------------- slot (no server) */

static unsigned slot_of(const char *k) {
        return loy_cluster_slot(k, strlen(k));
}

static void test_slot_vectors(void) {
        /* CRC16/XMODEM check value of "123456789" is 0x31C3. */
        CU_ASSERT_EQUAL(slot_of("123456789"), 0x31C3u & 16383u);
        CU_ASSERT_EQUAL(slot_of(""), 0u);
        CU_ASSERT_EQUAL(slot_of("foo"), 12182u);
        CU_ASSERT_EQUAL(slot_of("bar"), 5061u);
        /* The cluster spec's hash tag examples. */
        CU_ASSERT_EQUAL(slot_of("{user1000}.following"), slot_of("user1000"));
        CU_ASSERT_EQUAL(slot_of("{user1000}.followers"), slot_of("user1000"));
        CU_ASSERT_EQUAL(slot_of("foo{}{bar}"),
                        loy_cluster_slot("foo{}{bar}", 10));
        CU_ASSERT_NOT_EQUAL(slot_of("foo{}{bar}"), slot_of("bar"));
        CU_ASSERT_EQUAL(slot_of("foo{{bar}}zap"), slot_of("{bar"));
        CU_ASSERT_EQUAL(slot_of("foo{bar}{zap}"), slot_of("bar"));
        CU_ASSERT_EQUAL(slot_of("loy:c:{42}"), slot_of("42"));
        CU_ASSERT_EQUAL(slot_of("loy:c:{42}:recs"), slot_of("loy:c:{42}"));
        /* Bytes after a NUL count. */
        CU_ASSERT_NOT_EQUAL(loy_cluster_slot("a\0b", 3),
                            loy_cluster_slot("a\0c", 3));
        for (int i = 0; i < 1000; i++) {
                char k[32];
                snprintf(k, sizeof(k), "key:%d", i);
                CU_ASSERT(slot_of(k) < LOY_CLUSTER_SLOTS);
        }
}

/* ------------------------------------------------- cluster (3 masters) */

static int cluster_init(void) {
        if (tu_cluster_start(&C, 3)) {
                fprintf(stderr, "\n  cannot start a 3-master cluster\n");
                return -1;
        }
        return 0;
}

static int cluster_clean(void) {
        tu_cluster_stop(&C);
        return 0;
}

static loy_cluster_t *router(void) {
        loy_cluster_t *cl = loy_cluster_create(C.seeds, 2000, E, sizeof(E));
        if (!cl)
                fprintf(stderr, "\n  create: %s\n", E);
        return cl;
}

/* Keys that exercise the hash tag rules, then random ones. */
#define NKEYS 4000
static void test_keyslot_server(void) {
        static const char *const special[] = {"loy:c:{42}",
                                              "loy:c:{42}:recs",
                                              "{}",
                                              "{a}{b}",
                                              "a{}b{c}",
                                              "{}{a}",
                                              "{",
                                              "}",
                                              "}{",
                                              "{{a}}",
                                              "a{b",
                                              "a}b{",
                                              "{a",
                                              "a}",
                                              "{}}",
                                              "{{}}",
                                              "x{}",
                                              "x{ }y",
                                              "{\xff}",
                                              "",
                                              "foo{}{bar}",
                                              "foo{{bar}}zap",
                                              "foo{bar}{zap}",
                                              "{user1000}.following",
                                              "loy:i:sku-1:nbrs",
                                              "loy:{agg}:kpi:2024-03-05"};
        const int nspecial = (int)(sizeof(special) / sizeof(*special));
        static char keys[NKEYS][24];
        static size_t lens[NKEYS];
        redisContext *ctx = tu_cluster_connect(&C, 0);
        unsigned seed = 12345;
        int bad = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        for (int i = 0; i < NKEYS; i++) {
                if (i < nspecial) {
                        lens[i] = strlen(special[i]);
                        memcpy(keys[i], special[i], lens[i]);
                        continue;
                }
                /* Random bytes, NULs and braces often. */
                lens[i] = (size_t)(i % 23);
                for (size_t k = 0; k < lens[i]; k++) {
                        seed = seed * 1103515245u + 12345u;
                        switch ((seed >> 16) % 8) {
                        case 0:
                                keys[i][k] = '{';
                                break;
                        case 1:
                                keys[i][k] = '}';
                                break;
                        case 2:
                                keys[i][k] = '\0';
                                break;
                        default:
                                keys[i][k] = (char)(seed >> 8);
                                break;
                        }
                }
        }
        for (int i = 0; i < NKEYS; i++)
                redisAppendCommand(ctx, "CLUSTER KEYSLOT %b", keys[i], lens[i]);
        for (int i = 0; i < NKEYS; i++) {
                void *v = NULL;
                redisReply *r;
                CU_ASSERT_EQUAL_FATAL(redisGetReply(ctx, &v), REDIS_OK);
                r = v;
                CU_ASSERT_EQUAL(r->type, REDIS_REPLY_INTEGER);
                if (r->integer !=
                    (long long)loy_cluster_slot(keys[i], lens[i])) {
                        if (bad++ < 5)
                                fprintf(stderr,
                                        "\n  key %d (%zu bytes): "
                                        "server %lld, ours %u\n",
                                        i, lens[i], r->integer,
                                        loy_cluster_slot(keys[i], lens[i]));
                }
                freeReplyObject(r);
        }
        CU_ASSERT_EQUAL(bad, 0);
        redisFree(ctx);
}

static void test_create_args(void) {
        static const char *const bad[] = {
            "",           " ",         "host",
            "host:",      ":6379",     "host:0",
            "host:65536", "host:12x",  "a:1,,b:2",
            "a:1,",       ",a:1",      "[::1:6379",
            "[::1]",      "[::1]6379", "host:99999999999999999999"};
        char seeds[600];
        loy_cluster_t *cl;
        CU_ASSERT_PTR_NULL(loy_cluster_create(NULL, 0, E, sizeof(E)));
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                E[0] = '\0';
                cl = loy_cluster_create(bad[i], 0, E, sizeof(E));
                if (cl)
                        fprintf(stderr, "\n  seeds \"%s\" accepted\n", bad[i]);
                CU_ASSERT_PTR_NULL(cl);
                CU_ASSERT(E[0] != '\0');
                loy_cluster_destroy(cl);
        }
        CU_ASSERT_PTR_NULL(loy_cluster_create(C.seeds, -1, E, sizeof(E)));
        /* A dead seed first: the next one gives the map. */
        snprintf(seeds, sizeof(seeds), "127.0.0.1:1, 127.0.0.1:%d",
                 C.node[1].port);
        cl = loy_cluster_create(seeds, 0, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), 1);
        CU_ASSERT_EQUAL(loy_cluster_refresh(cl, E, sizeof(E)), LOY_CLUSTER_OK);
        loy_cluster_destroy(cl);
        loy_cluster_destroy(NULL);
        /* Many seeds (the node table grows), only the last one alive:
         * 127.0.0.k is loopback too, where nothing listens on that port. */
        {
                static char many[100 * 24];
                size_t len = 0;
                for (int k = 2; k <= 100; k++)
                        len += (size_t)snprintf(many + len, sizeof(many) - len,
                                                "127.0.0.%d:%d,", k,
                                                C.node[0].port);
                snprintf(many + len, sizeof(many) - len, "127.0.0.1:%d",
                         C.node[0].port);
                cl = loy_cluster_create(many, 0, E, sizeof(E));
                CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
                CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), 1);
                loy_cluster_destroy(cl);
        }
}

static void test_map(void) {
        loy_cluster_t *cl = router();
        loy_cluster_stats_t st;
        int per_node[TU_CLUSTER_MAX] = {0}, bad = 0;
        char addr[8];
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), 1);
        for (unsigned s = 0; s < LOY_CLUSTER_SLOTS; s++) {
                int n = node_of_slot(cl, s);
                if (n < 0)
                        bad++;
                else
                        per_node[n]++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        for (int i = 0; i < 3; i++)
                CU_ASSERT(per_node[i] > 5000);
        for (unsigned s = 0; s < LOY_CLUSTER_SLOTS; s += 997)
                CU_ASSERT_EQUAL(node_of_slot(cl, s),
                                tu_cluster_owner(&C, 2, s));
        CU_ASSERT_EQUAL(
            loy_cluster_node_of(cl, LOY_CLUSTER_SLOTS, addr, sizeof(addr)), -1);
        CU_ASSERT_EQUAL(loy_cluster_node_of(cl, 0, addr, 4), -1);
        loy_cluster_stats(cl, &st);
        CU_ASSERT_EQUAL(st.refreshes, 1u);
        CU_ASSERT_EQUAL(st.moved, 0u);
        loy_cluster_destroy(cl);
}

/* 10,000 units (HSET and HINCRBY) over 2,500 customers on every node. */
#define BIG 10000
#define BIG_CUST 2500
static void test_big_pipeline(void) {
        loy_cluster_t *cl = router();
        loy_cluster_pipe_t *p;
        loy_cluster_stats_t st;
        rbuf_t b = {0};
        int bad = 0, found[TU_CLUSTER_MAX] = {0}, nowhere = 0, twice = 0;
        static int where[BIG_CUST];
        memset(where, 0, sizeof(where));
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        for (int i = 0; i < BIG; i++) {
                char key[32], f[16], v[16];
                snprintf(key, sizeof(key), "loy:c:{c%d}", i % BIG_CUST);
                if ((i / BIG_CUST) % 2 == 0) {
                        snprintf(f, sizeof(f), "f%d", i);
                        snprintf(v, sizeof(v), "%d", i);
                        rb_cmd(&b, "HSET", key, f, v, NULL);
                } else {
                        rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
                }
                CU_ASSERT_EQUAL_FATAL(add_unit(p, key, &b), LOY_CLUSTER_OK);
        }
        CU_ASSERT_EQUAL(loy_cluster_pipe_units(p), (size_t)BIG);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        for (int i = 0; i < BIG; i++) {
                /* HSET of a new field: 1; HINCRBY: the count so far */
                long long want =
                    (i / BIG_CUST) % 2 == 0 ? 1 : i / (2 * BIG_CUST) + 1;
                int n = 0;
                loy_cluster_pipe_replies(p, (size_t)i, &n);
                if (loy_cluster_pipe_status(p, (size_t)i) != LOY_CLUSTER_OK ||
                    n != 1 || !is_int(reply(p, (size_t)i, 0), want))
                        bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        loy_cluster_stats(cl, &st);
        CU_ASSERT_EQUAL(st.moved + st.ask, 0u);
        CU_ASSERT_EQUAL(st.connects, 3u);

        /* Straight from each node (pipelined HGET n, HLEN): every customer
         * on exactly one node, with n = 2 and three fields; every node
         * holds some. */
        for (int i = 0; i < 3; i++) {
                redisContext *ctx = tu_cluster_connect(&C, i);
                CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
                for (int c = 0; c < BIG_CUST; c++) {
                        redisAppendCommand(ctx, "HGET loy:c:{c%d} n", c);
                        redisAppendCommand(ctx, "HLEN loy:c:{c%d}", c);
                }
                for (int c = 0; c < BIG_CUST; c++) {
                        void *v1 = NULL, *v2 = NULL;
                        redisReply *n, *l;
                        CU_ASSERT_EQUAL_FATAL(redisGetReply(ctx, &v1),
                                              REDIS_OK);
                        CU_ASSERT_EQUAL_FATAL(redisGetReply(ctx, &v2),
                                              REDIS_OK);
                        n = v1;
                        l = v2;
                        if (n->type == REDIS_REPLY_ERROR) {
                                /* MOVED: not this node's */
                                if (strncmp(n->str, "MOVED ", 6) ||
                                    l->type != REDIS_REPLY_ERROR)
                                        bad++;
                        } else {
                                where[c]++;
                                found[i]++;
                                if (n->type != REDIS_REPLY_STRING ||
                                    strcmp(n->str, "2") || !is_int(l, 3))
                                        bad++;
                        }
                        freeReplyObject(n);
                        freeReplyObject(l);
                }
                redisFree(ctx);
        }
        for (int c = 0; c < BIG_CUST; c++) {
                nowhere += where[c] == 0;
                twice += where[c] > 1;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(nowhere, 0);
        CU_ASSERT_EQUAL(twice, 0);
        for (int i = 0; i < 3; i++)
                CU_ASSERT(found[i] > BIG_CUST / 5);
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* MULTI/EXEC units of one slot, units mixing lone commands and a
 * transaction, ordinary error replies, and what add refuses. */
static void test_multi(void) {
        loy_cluster_t *cl = router();
        loy_cluster_pipe_t *p;
        rbuf_t b = {0};
        int bad = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        for (int round = 1; round <= 2; round++) {
                for (int j = 0; j < 300; j++) {
                        char a[32], bk[32];
                        snprintf(a, sizeof(a), "{t%d}:a", j);
                        snprintf(bk, sizeof(bk), "{t%d}:b", j);
                        rb_cmd(&b, "MULTI", NULL);
                        rb_cmd(&b, "HINCRBY", a, "n", "1", NULL);
                        rb_cmd(&b, "HINCRBY", bk, "n", "2", NULL);
                        rb_cmd(&b, "EXEC", NULL);
                        CU_ASSERT_EQUAL_FATAL(add_unit(p, a, &b), 0);
                }
                CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                                      LOY_CLUSTER_OK);
                for (size_t u = 0; u < 300; u++) {
                        const redisReply *x = reply(p, u, 3);
                        int n = 0;
                        loy_cluster_pipe_replies(p, u, &n);
                        if (n != 4 || !is_status(reply(p, u, 0), "OK") ||
                            !is_status(reply(p, u, 1), "QUEUED") ||
                            !is_status(reply(p, u, 2), "QUEUED") || !x ||
                            x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
                            !is_int(x->element[0], round) ||
                            !is_int(x->element[1], 2 * round))
                                bad++;
                }
                CU_ASSERT_EQUAL(bad, 0);
                /* Sent: no more adds, no second send until reset. */
                CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                                LOY_CLUSTER_ERR);
                rb_cmd(&b, "PING", NULL);
                CU_ASSERT_EQUAL(
                    loy_cluster_pipe_add(p, 0, b.p, b.len, 1, E, sizeof(E)),
                    LOY_CLUSTER_ERR);
                b.len = 0;
                b.ncmd = 0;
                loy_cluster_pipe_reset(p);
        }
        for (int j = 0; j < 300; j += 37) {
                char a[32];
                int owner;
                snprintf(a, sizeof(a), "{t%d}:b", j);
                owner = tu_cluster_owner(&C, 0, slot_of(a));
                CU_ASSERT_EQUAL(node_hget(owner, a, "n"), 4);
        }

        /* Lone, transaction, lone in one unit; a WRONGTYPE; a DISCARD. */
        rb_cmd(&b, "HSET", "{mx}:k", "f", "v", NULL);
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "HINCRBY", "{mx}:k", "n", "5", NULL);
        rb_cmd(&b, "EXEC", NULL);
        rb_cmd(&b, "HGET", "{mx}:k", "n", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "{mx}:k", &b), 0);
        rb_cmd(&b, "SET", "{mx}:s", "x", NULL);
        rb_cmd(&b, "HINCRBY", "{mx}:s", "n", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "{mx}:s", &b), 0);
        rb_cmd(&b, "multi", NULL);
        rb_cmd(&b, "HINCRBY", "{mx}:d", "n", "1", NULL);
        rb_cmd(&b, "discard", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "{mx}:d", &b), 0);
        rb_cmd(&b, "EXISTS", "{mx}:d", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "{mx}:d", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        for (size_t u = 0; u < 4; u++)
                CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, u), LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, 4), LOY_CLUSTER_ERR);
        CU_ASSERT_PTR_NULL(loy_cluster_pipe_replies(p, 4, NULL));
        CU_ASSERT(is_int(reply(p, 0, 0), 1));
        CU_ASSERT(is_status(reply(p, 0, 1), "OK"));
        CU_ASSERT(is_status(reply(p, 0, 2), "QUEUED"));
        CU_ASSERT(reply(p, 0, 3) && reply(p, 0, 3)->type == REDIS_REPLY_ARRAY);
        CU_ASSERT(reply(p, 0, 4) &&
                  reply(p, 0, 4)->type == REDIS_REPLY_STRING &&
                  !strcmp(reply(p, 0, 4)->str, "5"));
        CU_ASSERT(is_status(reply(p, 1, 0), "OK"));
        CU_ASSERT(reply(p, 1, 1) && reply(p, 1, 1)->type == REDIS_REPLY_ERROR &&
                  !strncmp(reply(p, 1, 1)->str, "WRONGTYPE", 9));
        CU_ASSERT(is_status(reply(p, 2, 2), "OK"));
        CU_ASSERT(is_int(reply(p, 3, 0), 0));
        loy_cluster_pipe_reset(p);

        /* What add refuses leaves the pipe as it was. */
        {
                static const struct {
                        const char *resp;
                        int n;
                } bad_units[] = {
                    {"PING\r\n", 1},
                    {"*1\r\n$4\r\nPIN", 1},
                    {"*1\r\n$4\r\nPINGG\r\n", 1},
                    {"*1\r\n$4\r\nPING\n\n", 1},
                    {"*0\r\n", 0},
                    {"*1\r\n:4\r\nPING\r\n", 1},
                    {"*1\r\n$99999999999999999999999\r\nPING\r\n", 1},
                    {"*1\r\n$4\r\nPING\r\n", 2},
                    {"*1\r\n$4\r\nPING\r\n", -1},
                    {"*1\r\n$5\r\nMULTI\r\n", 1},
                    {"*1\r\n$4\r\nEXEC\r\n", 1},
                    {"*1\r\n$7\r\nDISCARD\r\n", 1},
                    {"*1\r\n$5\r\nMULTI\r\n*1\r\n$5\r\nmulti\r\n"
                     "*1\r\n$4\r\nEXEC\r\n",
                     3},
                };
                for (size_t i = 0; i < sizeof(bad_units) / sizeof(*bad_units);
                     i++) {
                        int rc = loy_cluster_pipe_add(
                            p, 0, bad_units[i].resp, strlen(bad_units[i].resp),
                            bad_units[i].n, E, sizeof(E));
                        if (rc != LOY_CLUSTER_ERR)
                                fprintf(stderr, "\n  bad unit %zu accepted\n",
                                        i);
                        CU_ASSERT_EQUAL(rc, LOY_CLUSTER_ERR);
                }
                CU_ASSERT_EQUAL(loy_cluster_pipe_add(p, LOY_CLUSTER_SLOTS,
                                                     "*1\r\n$4\r\nPING\r\n", 14,
                                                     1, E, sizeof(E)),
                                LOY_CLUSTER_ERR);
                CU_ASSERT_EQUAL(
                    loy_cluster_pipe_add(p, 0, NULL, 0, 0, E, sizeof(E)),
                    LOY_CLUSTER_ERR);
                CU_ASSERT_EQUAL(loy_cluster_pipe_units(p), 0u);
                /* An empty pipe executes. */
                CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                                LOY_CLUSTER_OK);
                loy_cluster_pipe_reset(p);
        }

        /* A unit given a slot its keys are not in: refused, not applied
         * on the wrong node, not looped on. */
        {
                unsigned s1 = slot_of("{ws}"), s2 = s1;
                int o1 = node_of_slot(cl, s1);
                while (node_of_slot(cl, s2) == o1)
                        s2 = (s2 + 1000) % LOY_CLUSTER_SLOTS;
                rb_cmd(&b, "HINCRBY", "{ws}", "n", "1", NULL);
                CU_ASSERT_EQUAL_FATAL(
                    loy_cluster_pipe_add(p, s2, b.p, b.len, 1, E, sizeof(E)),
                    LOY_CLUSTER_OK);
                b.len = 0;
                b.ncmd = 0;
                CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                                LOY_CLUSTER_ERR);
                CU_ASSERT_PTR_NOT_NULL(strstr(E, "slot"));
                CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, 0), LOY_CLUSTER_ERR);
                CU_ASSERT_EQUAL(node_hget(o1, "{ws}", "n"), -1);
                CU_ASSERT_EQUAL(node_of_slot(cl, s1), o1);
        }
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* A whole pipeline cut into units by its keys: lone commands, an EVAL by
 * its first key, a MULTI block by its first keyed command, PING anywhere;
 * every write lands on the node of its key. */
static void test_add_cmds(void) {
        loy_cluster_t *cl = router();
        loy_cluster_pipe_t *p;
        rbuf_t b = {0};
        size_t nu = 0;
        int bad = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        rb_cmd(&b, "PING", NULL);
        for (int i = 0; i < 300; i++) {
                char key[32];
                snprintf(key, sizeof(key), "ac:%d", i);
                rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
        }
        rb_cmd(&b, "EVAL",
               "redis.call('HINCRBY', KEYS[1], 'n', 1) "
               "return redis.call('HINCRBY', KEYS[2], 'n', 1)",
               "2", "{ev}:a", "{ev}:b", NULL);
        rb_cmd(&b, "EVAL", "return 5", "0", NULL);
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "HINCRBY", "{tx}:a", "n", "1", NULL);
        rb_cmd(&b, "HINCRBY", "{tx}:b", "n", "2", NULL);
        rb_cmd(&b, "EXEC", NULL);
        CU_ASSERT_EQUAL_FATAL(
            loy_cluster_pipe_add_cmds(p, b.p, b.len, &nu, E, sizeof(E)),
            LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(nu, 1 + 300 + 2 + 1);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        CU_ASSERT(is_status(reply(p, 0, 0), "PONG"));
        for (int i = 0; i < 300; i++) {
                char key[32];
                snprintf(key, sizeof(key), "ac:%d", i);
                if (!is_int(reply(p, 1 + (size_t)i, 0), 1) ||
                    node_hget(
                        node_of_slot(cl, loy_cluster_slot(key, strlen(key))),
                        key, "n") != 1)
                        bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(is_int(reply(p, 301, 0), 1));
        CU_ASSERT(is_int(reply(p, 302, 0), 5));
        CU_ASSERT(is_status(reply(p, 303, 0), "OK"));
        CU_ASSERT_EQUAL(reply(p, 303, 3)->type, REDIS_REPLY_ARRAY);
        CU_ASSERT_EQUAL(
            node_hget(node_of_slot(cl, slot_of("{tx}")), "{tx}:b", "n"), 2);
        CU_ASSERT_EQUAL(
            node_hget(node_of_slot(cl, slot_of("{ev}")), "{ev}:a", "n"), 1);
        /* Taken replies are the caller's; the pipe gives them once. */
        {
                redisReply *r = loy_cluster_pipe_take(p, 302, 0);
                CU_ASSERT(is_int(r, 5));
                CU_ASSERT_PTR_NULL(loy_cluster_pipe_take(p, 302, 0));
                CU_ASSERT_PTR_NULL(loy_cluster_pipe_take(p, 302, 1));
                freeReplyObject(r);
        }
        /* Bad bytes and an open MULTI are refused. */
        loy_cluster_pipe_reset(p);
        CU_ASSERT_EQUAL(loy_cluster_pipe_add_cmds(p, "*1\r\n$4\r\nPIN", 12,
                                                  NULL, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        b.len = 0;
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "HINCRBY", "x", "n", "1", NULL);
        CU_ASSERT_EQUAL(
            loy_cluster_pipe_add_cmds(p, b.p, b.len, &nu, E, sizeof(E)),
            LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(nu, 0);
        b.len = 0;
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "EXEC", NULL);
        CU_ASSERT_EQUAL(
            loy_cluster_pipe_add_cmds(p, b.p, b.len, NULL, E, sizeof(E)),
            LOY_CLUSTER_ERR);
        b.len = 0;
        rb_cmd(&b, "PING", NULL);
        rb_cmd(&b, "EXEC", NULL);
        CU_ASSERT_EQUAL(
            loy_cluster_pipe_add_cmds(p, b.p, b.len, &nu, E, sizeof(E)),
            LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(nu, 1); /* the PING before it stays added */
        CU_ASSERT_EQUAL(loy_cluster_pipe_units(p), 1);
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* One pipe in flight while the next is built; a pipe given up in flight. */
static void test_split(void) {
        loy_cluster_t *cl = router();
        loy_cluster_pipe_t *p1, *p2, *p3;
        rbuf_t b = {0};
        int bad = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        p1 = loy_cluster_pipe_create(cl, E, sizeof(E));
        p2 = loy_cluster_pipe_create(cl, E, sizeof(E));
        p3 = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_FATAL(p1 && p2 && p3);
        CU_ASSERT_EQUAL(loy_cluster_pipe_recv(p1, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        for (int i = 0; i < 3000; i++) {
                char key[32];
                snprintf(key, sizeof(key), "{sp%d}", i % 100);
                rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
                CU_ASSERT_EQUAL_FATAL(add_unit(p1, key, &b), 0);
        }
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_send(p1, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        /* Built while p1 is in flight; sent only after it. */
        for (int i = 0; i < 3000; i++) {
                char key[32];
                snprintf(key, sizeof(key), "{sp%d}", i % 100);
                rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
                CU_ASSERT_EQUAL_FATAL(add_unit(p2, key, &b), 0);
        }
        CU_ASSERT_EQUAL(loy_cluster_pipe_send(p2, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(loy_cluster_pipe_recv(p2, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(loy_cluster_refresh(cl, E, sizeof(E)), LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(loy_cluster_pipe_send(p1, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_recv(p1, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p2, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        for (size_t u = 0; u < 3000; u++) {
                if (!is_int(reply(p1, u, 0), (long long)(u / 100 + 1)) ||
                    !is_int(reply(p2, u, 0), (long long)(u / 100 + 31)))
                        bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);

        /* Given up in flight: its connections are dropped, so the next
         * pipe does not read its replies. */
        rb_cmd(&b, "HINCRBY", "{gone}", "n", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p3, "{gone}", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_send(p3, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        loy_cluster_pipe_reset(p3);
        loy_cluster_pipe_reset(p1);
        rb_cmd(&b, "HINCRBY", "{gone}", "m", "7", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p1, "{gone}", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p1, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        CU_ASSERT(is_int(reply(p1, 0, 0), 7));
        /* And destroyed in flight. */
        rb_cmd(&b, "HINCRBY", "{gone}", "n", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p3, "{gone}", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_send(p3, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        loy_cluster_pipe_destroy(p3);
        loy_cluster_pipe_reset(p1);
        rb_cmd(&b, "HINCRBY", "{gone}", "m", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p1, "{gone}", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p1, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        CU_ASSERT(is_int(reply(p1, 0, 0), 8));
        loy_cluster_pipe_destroy(p1);
        loy_cluster_pipe_destroy(p2);
        loy_cluster_destroy(cl);
        free(b.p);
}

/*
 * A slot moved from one master to another under a stream of pipelines, the
 * way redis-cli --cluster reshard moves it: IMPORTING / MIGRATING, MIGRATE
 * in steps, SETSLOT NODE on every node. Every unit is a HINCRBY (lone, or
 * two keys of the slot in one MULTI/EXEC); units refused (TRYAGAIN while a
 * transaction's keys are split between the nodes) are sent again in the
 * next pipeline, as a caller backs off. At the end every counter holds
 * exactly the increments that were reported done.
 */
#define MIG_KEYS 200
#define MIG_OTHER 60
#define MIG_JOBS 1000

enum { J_LONE, J_TXN, J_PAIR, J_NEW, J_OTHER };
typedef struct job {
        int kind;
        int a, b;
} job_t;

typedef struct mig {
        loy_cluster_t *cl;
        loy_cluster_pipe_t *p;
        rbuf_t b;
        long long cnt[MIG_KEYS];
        long long newcnt[16];
        long long other[MIG_OTHER];
        job_t retry[MIG_JOBS];
        int nretry;
        int refused;
} mig_t;

static void mig_key(char *buf, size_t size, int j) {
        snprintf(buf, size, "{mig}:k%d", j);
}

static void job_unit(mig_t *m, const job_t *j) {
        char a[32], bk[32];
        switch (j->kind) {
        case J_LONE:
                mig_key(a, sizeof(a), j->a);
                rb_cmd(&m->b, "HINCRBY", a, "n", "1", NULL);
                break;
        case J_TXN:
                mig_key(a, sizeof(a), j->a);
                mig_key(bk, sizeof(bk), j->b);
                rb_cmd(&m->b, "MULTI", NULL);
                rb_cmd(&m->b, "HINCRBY", a, "n", "1", NULL);
                rb_cmd(&m->b, "HINCRBY", bk, "n", "1", NULL);
                rb_cmd(&m->b, "EXEC", NULL);
                break;
        case J_PAIR:
                /* Two lone commands in one unit: when only one is
                 * redirected, only that one may be sent again. */
                mig_key(a, sizeof(a), j->a);
                mig_key(bk, sizeof(bk), j->b);
                rb_cmd(&m->b, "HINCRBY", a, "n", "1", NULL);
                rb_cmd(&m->b, "HINCRBY", bk, "n", "1", NULL);
                break;
        case J_NEW:
                snprintf(a, sizeof(a), "{mig}:new%d", j->a);
                rb_cmd(&m->b, "HINCRBY", a, "n", "1", NULL);
                break;
        default:
                snprintf(a, sizeof(a), "{o%d}", j->a);
                rb_cmd(&m->b, "HINCRBY", a, "n", "1", NULL);
                break;
        }
        snprintf(a, sizeof(a), j->kind == J_OTHER ? "{o%d}" : "{mig}", j->a);
        CU_ASSERT_EQUAL_FATAL(add_unit(m->p, a, &m->b), 0);
}

/* Builds one pipeline: retried jobs first, then every key of the slot
 * once, 50 two-key transactions (keys 2k, 2k+1 below 100), 50 units of two
 * lone commands (keys 2k, 2k+1 from 100 on), one new key and keys on other
 * slots. between: called after the send, before the replies are
 * read (NULL: exec). */
static void mig_stream(mig_t *m, int phase, void (*between)(void)) {
        job_t jobs[MIG_JOBS];
        int n = 0, rc;
        for (int i = 0; i < m->nretry; i++)
                jobs[n++] = m->retry[i];
        m->nretry = 0;
        for (int j = 0; j < MIG_KEYS; j++)
                jobs[n++] = (job_t){J_LONE, j, 0};
        for (int k = 0; k < 50; k++)
                jobs[n++] = (job_t){J_TXN, 2 * k, 2 * k + 1};
        for (int k = 50; k < 100; k++) /* either one redirected first */
                jobs[n++] = k < 75 ? (job_t){J_PAIR, 2 * k, 2 * k + 1}
                                   : (job_t){J_PAIR, 2 * k + 1, 2 * k};
        jobs[n++] = (job_t){J_NEW, phase, 0};
        for (int o = 0; o < MIG_OTHER; o++)
                jobs[n++] = (job_t){J_OTHER, o, 0};
        loy_cluster_pipe_reset(m->p);
        for (int i = 0; i < n; i++)
                job_unit(m, &jobs[i]);
        if (between) {
                CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_send(m->p, E, sizeof(E)),
                                      0);
                between();
                rc = loy_cluster_pipe_recv(m->p, E, sizeof(E));
        } else {
                rc = loy_cluster_pipe_exec(m->p, E, sizeof(E));
        }
        if (rc != LOY_CLUSTER_OK && rc != LOY_CLUSTER_ERR_BUSY)
                fprintf(stderr, "\n  phase %d: %d %s\n", phase, rc, E);
        CU_ASSERT(rc == LOY_CLUSTER_OK || rc == LOY_CLUSTER_ERR_BUSY);
        for (int i = 0; i < n; i++) {
                int st = loy_cluster_pipe_status(m->p, (size_t)i);
                const job_t *j = &jobs[i];
                if (st == LOY_CLUSTER_ERR_BUSY) {
                        CU_ASSERT_FATAL(m->nretry < MIG_JOBS);
                        m->retry[m->nretry++] = *j;
                        m->refused++;
                        continue;
                }
                CU_ASSERT_EQUAL(st, LOY_CLUSTER_OK);
                if (st != LOY_CLUSTER_OK)
                        continue;
                if (j->kind == J_TXN) {
                        const redisReply *x = reply(m->p, (size_t)i, 3);
                        CU_ASSERT(x && x->type == REDIS_REPLY_ARRAY &&
                                  x->elements == 2);
                        m->cnt[j->a]++;
                        m->cnt[j->b]++;
                } else if (j->kind == J_PAIR) {
                        CU_ASSERT(reply(m->p, (size_t)i, 0) &&
                                  reply(m->p, (size_t)i, 0)->type ==
                                      REDIS_REPLY_INTEGER);
                        CU_ASSERT(reply(m->p, (size_t)i, 1) &&
                                  reply(m->p, (size_t)i, 1)->type ==
                                      REDIS_REPLY_INTEGER);
                        m->cnt[j->a]++;
                        m->cnt[j->b]++;
                } else {
                        const redisReply *x = reply(m->p, (size_t)i, 0);
                        CU_ASSERT(x && x->type == REDIS_REPLY_INTEGER);
                        if (j->kind == J_LONE)
                                m->cnt[j->a]++;
                        else if (j->kind == J_NEW)
                                m->newcnt[j->a]++;
                        else
                                m->other[j->a]++;
                }
        }
}

static int MIG_SRC, MIG_DST;
static unsigned MIG_SLOT;

/* Odd keys 1..49 leave while a pipeline's replies are unread. */
static void migrate_some_odd(void) {
        char keys[25][32];
        const char *kv[25];
        for (int i = 0; i < 25; i++) {
                mig_key(keys[i], sizeof(keys[i]), 2 * i + 1);
                kv[i] = keys[i];
        }
        CU_ASSERT_EQUAL(tu_cluster_migrate(&C, MIG_SRC, MIG_DST, kv, NULL, 25),
                        0);
}

static void test_migration(void) {
        static mig_t m;
        loy_cluster_stats_t st0, st;
        char keys[MIG_KEYS / 2][32];
        const char *kv[MIG_KEYS / 2];
        memset(&m, 0, sizeof(m));
        MIG_SLOT = slot_of("{mig}");
        m.cl = router();
        CU_ASSERT_PTR_NOT_NULL_FATAL(m.cl);
        m.p = loy_cluster_pipe_create(m.cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(m.p);
        MIG_SRC = node_of_slot(m.cl, MIG_SLOT);
        CU_ASSERT_FATAL(MIG_SRC >= 0);
        CU_ASSERT_EQUAL_FATAL(MIG_SRC, tu_cluster_owner(&C, 0, MIG_SLOT));
        MIG_DST = (MIG_SRC + 1) % 3;

        /* Before: nothing is redirected. */
        mig_stream(&m, 0, NULL);
        mig_stream(&m, 1, NULL);
        loy_cluster_stats(m.cl, &st0);
        CU_ASSERT_EQUAL(st0.ask + st0.moved, 0u);
        CU_ASSERT_EQUAL(m.nretry, 0);

        /* Open: keys still on the source are served there; a new key is
         * asked for on the target. */
        CU_ASSERT_EQUAL_FATAL(
            tu_cluster_migrate_begin(&C, MIG_SLOT, MIG_SRC, MIG_DST), 0);
        mig_stream(&m, 2, NULL);
        loy_cluster_stats(m.cl, &st);
        CU_ASSERT(st.ask > st0.ask);
        CU_ASSERT_EQUAL(st.moved, 0u);

        /* Even keys moved: ASK for them; transactions whose keys are now
         * split are refused (TRYAGAIN) and come back later. */
        for (int i = 0; i < MIG_KEYS / 2; i++) {
                mig_key(keys[i], sizeof(keys[i]), 2 * i);
                kv[i] = keys[i];
        }
        CU_ASSERT_EQUAL_FATAL(
            tu_cluster_migrate(&C, MIG_SRC, MIG_DST, kv, NULL, MIG_KEYS / 2),
            0);
        mig_stream(&m, 3, NULL);
        CU_ASSERT(m.nretry > 0);
        CU_ASSERT(m.refused > 0);
        mig_stream(&m, 4, migrate_some_odd);

        /* Every key moved: all ASK, the transactions go through. */
        CU_ASSERT_FATAL(
            tu_cluster_migrate_keys(&C, MIG_SLOT, MIG_SRC, MIG_DST, 0) >= 0);
        loy_cluster_stats(m.cl, &st0);
        mig_stream(&m, 5, NULL);
        loy_cluster_stats(m.cl, &st);
        CU_ASSERT(st.ask > st0.ask);
        CU_ASSERT_EQUAL(m.nretry, 0);
        CU_ASSERT_EQUAL(st.moved, 0u);
        CU_ASSERT_EQUAL(node_of_slot(m.cl, MIG_SLOT), MIG_SRC);

        /* Closed: the source answers MOVED, the map follows. */
        CU_ASSERT_EQUAL_FATAL(
            tu_cluster_migrate_end(&C, MIG_SLOT, MIG_SRC, MIG_DST), 0);
        st0 = st;
        mig_stream(&m, 6, NULL);
        loy_cluster_stats(m.cl, &st);
        CU_ASSERT(st.moved > 0);
        CU_ASSERT(st.refreshes > st0.refreshes);
        CU_ASSERT_EQUAL(node_of_slot(m.cl, MIG_SLOT), MIG_DST);
        /* After: no redirection any more. */
        st0 = st;
        mig_stream(&m, 7, NULL);
        loy_cluster_stats(m.cl, &st);
        CU_ASSERT_EQUAL(st.moved, st0.moved);
        CU_ASSERT_EQUAL(st.ask, st0.ask);
        CU_ASSERT_EQUAL(m.nretry, 0);

        /* Exactly once: every counter on the target, none on the source. */
        {
                int bad = 0;
                redisContext *ctx = tu_cluster_connect(&C, MIG_SRC);
                redisReply *r;
                CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
                r = redisCommand(ctx, "CLUSTER COUNTKEYSINSLOT %u", MIG_SLOT);
                CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER &&
                          r->integer == 0);
                if (r)
                        freeReplyObject(r);
                redisFree(ctx);
                for (int j = 0; j < MIG_KEYS; j++) {
                        char k[32];
                        mig_key(k, sizeof(k), j);
                        if (m.cnt[j] != 16 ||
                            node_hget(MIG_DST, k, "n") != m.cnt[j]) {
                                if (bad++ < 5)
                                        fprintf(stderr,
                                                "\n  %s: %lld on "
                                                "the target, %lld done\n",
                                                k, node_hget(MIG_DST, k, "n"),
                                                m.cnt[j]);
                        }
                }
                for (int ph = 0; ph < 8; ph++) {
                        char k[32];
                        snprintf(k, sizeof(k), "{mig}:new%d", ph);
                        if (m.newcnt[ph] != 1 ||
                            node_hget(MIG_DST, k, "n") != 1)
                                bad++;
                }
                for (int o = 0; o < MIG_OTHER; o++) {
                        char k[32];
                        snprintf(k, sizeof(k), "{o%d}", o);
                        if (node_hget(tu_cluster_owner(&C, 0, slot_of(k)), k,
                                      "n") != 8)
                                bad++;
                }
                CU_ASSERT_EQUAL(bad, 0);
        }
        loy_cluster_stats(m.cl, &st);
        if (getenv("LOY_TEST_VERBOSE"))
                fprintf(stderr,
                        "\n  ask %llu moved %llu refreshes %llu "
                        "refused %d\n",
                        (unsigned long long)st.ask,
                        (unsigned long long)st.moved,
                        (unsigned long long)st.refreshes, m.refused);
        loy_cluster_pipe_destroy(m.p);
        loy_cluster_destroy(m.cl);
        free(m.b.p);
}

/* A master killed: its units fail with an I/O error and the others go
 * through; once the cluster notices, the others are refused
 * (CLUSTERDOWN); once it is back, everything goes through on a new
 * connection. Last in the suite. */
static void test_node_down(void) {
        loy_cluster_t *cl = router();
        loy_cluster_pipe_t *p;
        loy_cluster_stats_t st0, st;
        rbuf_t b = {0};
        const int victim = 2, N = 300;
        int owner[300];
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        for (int round = 0; round < 5; round++) {
                int io = 0, ok = 0, busy = 0, wrong = 0, rc;
                loy_cluster_pipe_reset(p);
                for (int i = 0; i < N; i++) {
                        char key[32];
                        snprintf(key, sizeof(key), "{d%d}", i);
                        owner[i] = node_of_slot(cl, slot_of(key));
                        rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
                        CU_ASSERT_EQUAL_FATAL(add_unit(p, key, &b), 0);
                }
                if (round == 1)
                        tu_cluster_kill(&C, victim, SIGKILL);
                if (round == 3) {
                        CU_ASSERT_EQUAL_FATAL(
                            tu_cluster_wait_state(&C, "fail", 30000), 0);
                }
                if (round == 4) {
                        CU_ASSERT_EQUAL_FATAL(tu_cluster_restart(&C, victim),
                                              0);
                        CU_ASSERT_EQUAL_FATAL(
                            tu_cluster_wait_state(&C, "ok", 60000), 0);
                }
                loy_cluster_stats(cl, &st0);
                rc = loy_cluster_pipe_exec(p, E, sizeof(E));
                loy_cluster_stats(cl, &st);
                for (int i = 0; i < N; i++) {
                        int s = loy_cluster_pipe_status(p, (size_t)i);
                        io += s == LOY_CLUSTER_ERR_IO;
                        ok += s == LOY_CLUSTER_OK;
                        busy += s == LOY_CLUSTER_ERR_BUSY;
                        /* The dead node's units fail with an I/O error,
                         * and only those. */
                        if (round >= 1 && round <= 3 &&
                            (owner[i] == victim) != (s == LOY_CLUSTER_ERR_IO))
                                wrong++;
                }
                CU_ASSERT_EQUAL(wrong, 0);
                switch (round) {
                case 0:
                case 4:
                        if (rc)
                                fprintf(stderr, "\n  round %d: %s\n", round, E);
                        CU_ASSERT_EQUAL(rc, LOY_CLUSTER_OK);
                        CU_ASSERT_EQUAL(ok, N);
                        if (round == 4)
                                CU_ASSERT(st.connects > st0.connects);
                        break;
                case 1:
                case 2:
                        CU_ASSERT_EQUAL(rc, LOY_CLUSTER_ERR_IO);
                        CU_ASSERT_PTR_NOT_NULL(strstr(E, "i/o"));
                        CU_ASSERT(io > 0 && io < N);
                        CU_ASSERT(st.io_errors > st0.io_errors);
                        /* Before the cluster marks it failed, the rest
                         * goes through (or is refused, if it already
                         * did). */
                        CU_ASSERT_EQUAL(ok + busy + io, N);
                        break;
                case 3:
                        CU_ASSERT_EQUAL(rc, LOY_CLUSTER_ERR_IO);
                        CU_ASSERT(io > 0);
                        CU_ASSERT_EQUAL(busy, N - io);
                        CU_ASSERT(st.refused >= st0.refused + (uint64_t)busy);
                        break;
                }
        }
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* ------------------------------------------- a single redis-server */

static tu_redis_t R;

/* One SET per master's key, so the pipe needs every master. */
static int set_everywhere(loy_cluster_pipe_t *p) {
        rbuf_t b = {0};
        int rc = 0;
        loy_cluster_pipe_reset(p);
        for (int k = 0; k < 30 && !rc; k++) {
                char key[32];
                snprintf(key, sizeof(key), "named:%d", k);
                rb_cmd(&b, "SET", key, "1", NULL);
                rc = add_unit(p, key, &b);
        }
        free(b.p);
        return rc ? rc : loy_cluster_pipe_exec(p, E, sizeof(E));
}

/* What a process whose partitions went to another one must not do: write
 * on connections opened after the new owner closed its old ones. */
static void test_named_guard(void) {
        loy_cluster_t *a = router(), *b = router();
        loy_cluster_pipe_t *p;
        loy_cluster_stats_t st0, st1;
        char longname[200];
        int killed = -1;
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        p = loy_cluster_pipe_create(a, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        CU_ASSERT_EQUAL(loy_cluster_set_name(a, "", E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(loy_cluster_set_name(a, "two words", E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL(loy_cluster_set_name(a, longname, E, sizeof(E)),
                        LOY_CLUSTER_ERR);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_set_name(a, "proc-a", E, sizeof(E)),
                              LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(loy_cluster_guard_begin(a, E, sizeof(E)),
                        LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(set_everywhere(p), LOY_CLUSTER_OK);

        /* another router closes them, on every master, and no other */
        CU_ASSERT_EQUAL(
            loy_cluster_kill_named(b, "nobody", &killed, E, sizeof(E)),
            LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(killed, 0);
        CU_ASSERT_EQUAL(
            loy_cluster_kill_named(b, "proc-a", &killed, E, sizeof(E)),
            LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(killed, C.n);

        /* guarded: not opened again, every unit fails */
        loy_cluster_stats(a, &st0);
        CU_ASSERT_EQUAL(set_everywhere(p), LOY_CLUSTER_ERR_IO);
        CU_ASSERT_TRUE(strstr(E, "guarded") != NULL);
        for (size_t u = 0; u < loy_cluster_pipe_units(p); u++)
                CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, u),
                                LOY_CLUSTER_ERR_IO);
        loy_cluster_stats(a, &st1);
        CU_ASSERT_EQUAL(st1.connects, st0.connects);

        /* unguarded: opened again, with the name */
        loy_cluster_guard_end(a);
        CU_ASSERT_EQUAL(set_everywhere(p), LOY_CLUSTER_OK);
        loy_cluster_stats(a, &st1);
        CU_ASSERT_EQUAL(st1.connects, st0.connects + (uint64_t)C.n);
        CU_ASSERT_EQUAL(
            loy_cluster_kill_named(b, "proc-a", &killed, E, sizeof(E)),
            LOY_CLUSTER_OK);
        CU_ASSERT_EQUAL(killed, C.n);
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(a);
        loy_cluster_destroy(b);
}

static int single_init(void) {
        if (tu_cluster_tools() || tu_redis_start(&R, 0)) {
                fprintf(stderr, "\n  cannot start redis-server\n");
                return -1;
        }
        return 0;
}

static int single_clean(void) {
        tu_redis_stop(&R);
        return 0;
}

static void test_single(void) {
        char seeds[64];
        loy_cluster_t *cl;
        loy_cluster_pipe_t *p;
        rbuf_t b = {0};
        int bad = 0;
        snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", R.port);
        cl = loy_cluster_create(seeds, 1000, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), 0);
        CU_ASSERT_EQUAL(node_of_slot(cl, 0), -1); /* not a cluster node */
        {
                char addr[64];
                CU_ASSERT_EQUAL(
                    loy_cluster_node_of(cl, 16383, addr, sizeof(addr)), 0);
                CU_ASSERT_STRING_EQUAL(addr, seeds);
        }
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        for (int i = 0; i < 5000; i++) {
                char key[32];
                snprintf(key, sizeof(key), "k%d", i % 1000);
                rb_cmd(&b, "HINCRBY", key, "n", "1", NULL);
                CU_ASSERT_EQUAL_FATAL(add_unit(p, key, &b), 0);
        }
        /* Keys of several slots in one transaction: fine on one server. */
        rb_cmd(&b, "MULTI", NULL);
        rb_cmd(&b, "HINCRBY", "a", "n", "1", NULL);
        rb_cmd(&b, "HINCRBY", "b", "n", "1", NULL);
        rb_cmd(&b, "EXEC", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "a", &b), 0);
        CU_ASSERT_EQUAL_FATAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                              LOY_CLUSTER_OK);
        for (size_t u = 0; u < 5000; u++)
                if (!is_int(reply(p, u, 0), (long long)(u / 1000 + 1)))
                        bad++;
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(reply(p, 5000, 3) &&
                  reply(p, 5000, 3)->type == REDIS_REPLY_ARRAY);
        {
                char *v = tu_redis_cli(&R, "HGET k999 n");
                CU_ASSERT_STRING_EQUAL(v, "5");
                free(v);
                v = tu_redis_cli(&R, "HGET b n");
                CU_ASSERT_STRING_EQUAL(v, "1");
                free(v);
        }
        /* The server dies: I/O error; it comes back: a new connection. */
        tu_redis_kill(&R, SIGKILL);
        loy_cluster_pipe_reset(p);
        rb_cmd(&b, "HINCRBY", "k1", "n", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "k1", &b), 0);
        CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                        LOY_CLUSTER_ERR_IO);
        CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, 0), LOY_CLUSTER_ERR_IO);
        CU_ASSERT_EQUAL_FATAL(tu_redis_restart(&R), 0);
        loy_cluster_pipe_reset(p);
        rb_cmd(&b, "HINCRBY", "k1", "n", "1", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "k1", &b), 0);
        CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)), LOY_CLUSTER_OK);
        CU_ASSERT(is_int(reply(p, 0, 0), 1)); /* no persistence */
        CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), 0);
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* Nobody answers: create works, everything else is an I/O error. */
static void test_unreachable(void) {
        loy_cluster_t *cl =
            loy_cluster_create("127.0.0.1:1", 500, E, sizeof(E));
        loy_cluster_pipe_t *p;
        rbuf_t b = {0};
        char addr[64];
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        CU_ASSERT_EQUAL(loy_cluster_is_cluster(cl), -1);
        CU_ASSERT_EQUAL(loy_cluster_node_of(cl, 0, addr, sizeof(addr)), -1);
        CU_ASSERT_EQUAL(loy_cluster_refresh(cl, E, sizeof(E)),
                        LOY_CLUSTER_ERR_IO);
        p = loy_cluster_pipe_create(cl, E, sizeof(E));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        rb_cmd(&b, "PING", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "x", &b), 0);
        rb_cmd(&b, "PING", NULL);
        CU_ASSERT_EQUAL_FATAL(add_unit(p, "y", &b), 0);
        CU_ASSERT_EQUAL(loy_cluster_pipe_exec(p, E, sizeof(E)),
                        LOY_CLUSTER_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(E, "127.0.0.1:1: Connection refused"));
        CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, 0), LOY_CLUSTER_ERR_IO);
        CU_ASSERT_EQUAL(loy_cluster_pipe_status(p, 1), LOY_CLUSTER_ERR_IO);
        CU_ASSERT_PTR_NULL(reply(p, 0, 0));
        loy_cluster_pipe_destroy(p);
        loy_cluster_destroy(cl);
        free(b.p);
}

/* ------------------------------------------------------------------ main */

int main(void) {
        CU_pSuite su;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        su = CU_add_suite("slot", NULL, NULL);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "CRC16 and hash tags", test_slot_vectors);
        su = CU_add_suite("cluster", cluster_init, cluster_clean);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "slot = CLUSTER KEYSLOT", test_keyslot_server);
        CU_add_test(su, "create arguments", test_create_args);
        CU_add_test(su, "slot map", test_map);
        CU_add_test(su, "10,000 units on 3 masters", test_big_pipeline);
        CU_add_test(su, "MULTI/EXEC units", test_multi);
        CU_add_test(su, "send, build the next, receive", test_split);
        CU_add_test(su, "a pipeline cut into units by its keys", test_add_cmds);
        CU_add_test(su, "slot migration under traffic", test_migration);
        CU_add_test(su, "a master killed and restarted", test_node_down);
        CU_add_test(su,
                    "named connections closed, not reopened while "
                    "guarded",
                    test_named_guard);
        su = CU_add_suite("single", single_init, single_clean);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "one plain redis-server", test_single);
        su = CU_add_suite("unreachable", NULL, NULL);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "nobody answers", test_unreachable);
        return tu_cluster_cunit_run();
}
