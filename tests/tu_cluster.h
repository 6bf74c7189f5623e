/*
 * Test utilities: a throw-away Redis Cluster of real redis-server
 * processes (cluster-enabled, no replicas, no persistence) on free loopback
 * ports, built with `redis-cli --cluster create`; and a CUnit runner that
 * also fails when a suite's set-up failed.
 */
#ifndef TU_CLUSTER_H
#define TU_CLUSTER_H

#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#define TU_CLUSTER_MAX 6

typedef struct tu_cluster_node {
        pid_t pid; /* 0 while not running */
        int port;
        int bus;       /* cluster bus port (--cluster-port) */
        char dir[300]; /* its working dir: nodes.conf, log */
        char id[48];   /* CLUSTER MYID */
} tu_cluster_node_t;

typedef struct tu_cluster {
        int n;
        char dir[256];   /* temp dir holding one dir per node */
        char seeds[512]; /* "127.0.0.1:p1,127.0.0.1:p2,..." */
        tu_cluster_node_t node[TU_CLUSTER_MAX];
} tu_cluster_t;

/* 0 when redis-server and redis-cli are on PATH; else -1 with a message
 * on stderr (tests fail, they never skip). */
int tu_cluster_tools(void);

/* Starts n (3..TU_CLUSTER_MAX) masters, joins them with redis-cli
 * --cluster create (slots split evenly in node order) and waits until every
 * node says cluster_state:ok. 0, or -1 (printed; everything stopped). */
int tu_cluster_start(tu_cluster_t *c, int n);
/* Stops every node and removes the temp dir. */
void tu_cluster_stop(tu_cluster_t *c);
/* Sends sig to node i and reaps it. */
void tu_cluster_kill(tu_cluster_t *c, int i, int sig);
/* Starts node i again (same port, dir and nodes.conf). 0 or -1. */
int tu_cluster_restart(tu_cluster_t *c, int i);
/* Waits until every running node's CLUSTER INFO says cluster_state:<state>
 * ("ok", "fail"). 0, or -1 after timeout_ms. */
int tu_cluster_wait_state(const tu_cluster_t *c, const char *state,
                          int timeout_ms);

/* A new blocking connection to node i (2 s timeout), or NULL. The caller
 * frees it with redisFree. */
redisContext *tu_cluster_connect(const tu_cluster_t *c, int i);
/* Index of the node that node `asker`'s CLUSTER SLOTS gives slot to, or
 * -1. */
int tu_cluster_owner(const tu_cluster_t *c, int asker, unsigned slot);

/* Moves slot from node `from` to node `to` the way redis-cli --cluster
 * reshard does, in steps the caller can interleave with traffic:
 *   tu_cluster_migrate_begin: SETSLOT IMPORTING on `to`, MIGRATING on
 *                             `from`;
 *   tu_cluster_migrate_keys:  MIGRATEs up to max keys of the slot (0: all);
 *                             returns how many moved, or -1;
 *   tu_cluster_migrate_end:   SETSLOT NODE <to> on `to`, `from`, then every
 *                             other node.
 * tu_cluster_migrate moves the n keys given (lens NULL: NUL-terminated)
 * with one MIGRATE ... KEYS.
 * 0 or -1 (printed). */
int tu_cluster_migrate_begin(const tu_cluster_t *c, unsigned slot, int from,
                             int to);
int tu_cluster_migrate_keys(const tu_cluster_t *c, unsigned slot, int from,
                            int to, int max);
int tu_cluster_migrate_end(const tu_cluster_t *c, unsigned slot, int from,
                           int to);
int tu_cluster_migrate(const tu_cluster_t *c, int from, int to,
                       const char *const *keys, const size_t *lens, int n);

/* Like tu_cunit_run (tu.h), and a suite whose initialisation failed counts
 * as a failure too (CUnit's own counters leave it out). */
int tu_cluster_cunit_run(void);

#endif
