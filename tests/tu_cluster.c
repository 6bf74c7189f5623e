/* Throw-away Redis Cluster for tests (see tu_cluster.h). */
#include "tu_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tu.h"

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int on_path(const char *name) {
        const char *path = getenv("PATH");
        char buf[1024];
        while (path && *path) {
                const char *end = strchr(path, ':');
                size_t n = end ? (size_t)(end - path) : strlen(path);
                snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
                if (n && access(buf, X_OK) == 0)
                        return 1;
                path = end ? end + 1 : NULL;
        }
        return 0;
}

int tu_cluster_tools(void) {
        int ok = 1;
        const char *tools[] = {"redis-server", "redis-cli"};
        for (int i = 0; i < 2; i++)
                if (!on_path(tools[i])) {
                        fprintf(stderr,
                                "tu_cluster: %s not found on PATH "
                                "(install redis-server; these tests do "
                                "not skip)\n",
                                tools[i]);
                        ok = 0;
                }
        return ok ? 0 : -1;
}

redisContext *tu_cluster_connect(const tu_cluster_t *c, int i) {
        struct timeval tv = {2, 0};
        redisContext *ctx =
            redisConnectWithTimeout("127.0.0.1", c->node[i].port, tv);
        if (!ctx)
                return NULL;
        if (ctx->err || redisSetTimeout(ctx, tv) != REDIS_OK) {
                redisFree(ctx);
                return NULL;
        }
        return ctx;
}

/* Runs one command on node i; the reply (caller frees) or NULL. */
static redisReply *cmd(const tu_cluster_t *c, int i, const char *fmt, ...) {
        redisContext *ctx = tu_cluster_connect(c, i);
        redisReply *r;
        va_list ap;
        if (!ctx)
                return NULL;
        va_start(ap, fmt);
        r = redisvCommand(ctx, fmt, ap);
        va_end(ap);
        redisFree(ctx);
        return r;
}

/* 1 when node i answers cmd with +OK. */
static int cmd_ok(redisReply *r) {
        int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
        if (r && !ok)
                fprintf(stderr, "tu_cluster: %s\n",
                        r->type == REDIS_REPLY_ERROR ? r->str : "?");
        if (r)
                freeReplyObject(r);
        return ok;
}

static int spawn(tu_cluster_t *c, int i) {
        tu_cluster_node_t *n = &c->node[i];
        char port[16], bus[16], log[400];
        pid_t pid;
        snprintf(port, sizeof(port), "%d", n->port);
        snprintf(bus, sizeof(bus), "%d", n->bus);
        snprintf(log, sizeof(log), "%s/log", n->dir);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execlp("redis-server", "redis-server", "--port", port, "--bind",
                       "127.0.0.1", "--dir", n->dir, "--cluster-enabled", "yes",
                       "--cluster-config-file", "nodes.conf", "--cluster-port",
                       bus, "--cluster-node-timeout", "3000", "--save", "",
                       "--appendonly", "no", "--daemonize", "no", (char *)NULL);
                _exit(127);
        }
        n->pid = pid;
        for (int k = 0; k < 400; k++) {
                redisReply *r = cmd(c, i, "PING");
                int ok = r && r->type == REDIS_REPLY_STATUS;
                if (r)
                        freeReplyObject(r);
                if (ok)
                        return 0;
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        n->pid = 0;
                        break;
                }
                sleep_ms(25);
        }
        fprintf(stderr,
                "tu_cluster: node on port %d did not start (see "
                "%s)\n",
                n->port, log);
        return -1;
}

int tu_cluster_wait_state(const tu_cluster_t *c, const char *state,
                          int timeout_ms) {
        char want[64];
        long long end = now_ms() + timeout_ms;
        snprintf(want, sizeof(want), "cluster_state:%s\r", state);
        for (;;) {
                int all = 1;
                for (int i = 0; i < c->n && all; i++) {
                        redisReply *r;
                        if (!c->node[i].pid)
                                continue;
                        r = cmd(c, i, "CLUSTER INFO");
                        all = r && r->type == REDIS_REPLY_STRING &&
                              strstr(r->str, want);
                        if (r)
                                freeReplyObject(r);
                }
                if (all)
                        return 0;
                if (now_ms() > end)
                        return -1;
                sleep_ms(50);
        }
}

int tu_cluster_start(tu_cluster_t *c, int n) {
        char line[2048], log[300];
        size_t len;
        int rc;
        memset(c, 0, sizeof(*c));
        if (n < 3 || n > TU_CLUSTER_MAX || tu_cluster_tools())
                return -1;
        snprintf(c->dir, sizeof(c->dir), "/tmp/loy-tu-cluster-XXXXXX");
        if (!mkdtemp(c->dir))
                return -1;
        c->n = n;
        for (int i = 0; i < n; i++) {
                tu_cluster_node_t *nd = &c->node[i];
                /* Two distinct free ports: clients and the cluster bus. */
                do {
                        nd->port = tu_free_port();
                        nd->bus = tu_free_port();
                } while (nd->port > 0 && nd->port == nd->bus);
                if (nd->port < 0 || nd->bus < 0)
                        goto fail;
                snprintf(nd->dir, sizeof(nd->dir), "%s/%d", c->dir, nd->port);
                if (mkdir(nd->dir, 0755) || spawn(c, i))
                        goto fail;
        }
        len =
            (size_t)snprintf(line, sizeof(line), "redis-cli --cluster create");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(line + len, sizeof(line) - len,
                                        " 127.0.0.1:%d", c->node[i].port);
        snprintf(log, sizeof(log), "%s/create.log", c->dir);
        snprintf(line + len, sizeof(line) - len,
                 " --cluster-replicas 0 --cluster-yes >'%s' 2>&1", log);
        rc = system(line);
        if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
                fprintf(stderr,
                        "tu_cluster: redis-cli --cluster create "
                        "failed (see %s)\n",
                        log);
                goto fail;
        }
        if (tu_cluster_wait_state(c, "ok", 30000)) {
                fprintf(stderr, "tu_cluster: cluster_state never ok\n");
                goto fail;
        }
        len = 0;
        for (int i = 0; i < n; i++) {
                redisReply *r = cmd(c, i, "CLUSTER MYID");
                if (!r || r->type != REDIS_REPLY_STRING ||
                    r->len >= sizeof(c->node[i].id)) {
                        if (r)
                                freeReplyObject(r);
                        goto fail;
                }
                memcpy(c->node[i].id, r->str, r->len + 1);
                freeReplyObject(r);
                len += (size_t)snprintf(c->seeds + len, sizeof(c->seeds) - len,
                                        "%s127.0.0.1:%d", i ? "," : "",
                                        c->node[i].port);
        }
        return 0;
fail:
        tu_cluster_stop(c);
        return -1;
}

void tu_cluster_kill(tu_cluster_t *c, int i, int sig) {
        if (c->node[i].pid <= 0)
                return;
        kill(c->node[i].pid, sig);
        waitpid(c->node[i].pid, NULL, 0);
        c->node[i].pid = 0;
}

int tu_cluster_restart(tu_cluster_t *c, int i) {
        return spawn(c, i);
}

void tu_cluster_stop(tu_cluster_t *c) {
        char line[300];
        for (int i = 0; i < c->n; i++)
                tu_cluster_kill(c, i, SIGTERM);
        if (c->dir[0]) {
                snprintf(line, sizeof(line), "rm -rf '%s'", c->dir);
                if (system(line) != 0)
                        fprintf(stderr, "tu_cluster: could not remove %s\n",
                                c->dir);
                c->dir[0] = '\0';
        }
        c->n = 0;
}

int tu_cluster_owner(const tu_cluster_t *c, int asker, unsigned slot) {
        redisReply *r = cmd(c, asker, "CLUSTER SLOTS");
        int owner = -1;
        for (size_t k = 0;
             r && r->type == REDIS_REPLY_ARRAY && k < r->elements && owner < 0;
             k++) {
                redisReply *e = r->element[k];
                if (e->elements < 3 ||
                    (long long)slot < e->element[0]->integer ||
                    (long long)slot > e->element[1]->integer)
                        continue;
                for (int i = 0; i < c->n; i++)
                        if (e->element[2]->element[1]->integer ==
                            c->node[i].port)
                                owner = i;
        }
        if (r)
                freeReplyObject(r);
        return owner;
}

int tu_cluster_migrate_begin(const tu_cluster_t *c, unsigned slot, int from,
                             int to) {
        if (!cmd_ok(cmd(c, to, "CLUSTER SETSLOT %u IMPORTING %s", slot,
                        c->node[from].id)) ||
            !cmd_ok(cmd(c, from, "CLUSTER SETSLOT %u MIGRATING %s", slot,
                        c->node[to].id)))
                return -1;
        return 0;
}

int tu_cluster_migrate(const tu_cluster_t *c, int from, int to,
                       const char *const *keys, const size_t *lens, int n) {
        redisContext *ctx;
        const char **argv;
        size_t *argl;
        char port[16];
        int argc = 0, ok;
        redisReply *r;
        if (n <= 0)
                return 0;
        ctx = tu_cluster_connect(c, from);
        argv = malloc(sizeof(*argv) * (size_t)(n + 7));
        argl = malloc(sizeof(*argl) * (size_t)(n + 7));
        if (!ctx || !argv || !argl) {
                if (ctx)
                        redisFree(ctx);
                free(argv);
                free(argl);
                return -1;
        }
        snprintf(port, sizeof(port), "%d", c->node[to].port);
#define ARG(s, l) (argv[argc] = (s), argl[argc++] = (l))
        ARG("MIGRATE", 7);
        ARG("127.0.0.1", 9);
        ARG(port, strlen(port));
        ARG("", 0);
        ARG("0", 1);
        ARG("5000", 4);
        ARG("KEYS", 4);
        for (int k = 0; k < n; k++)
                ARG(keys[k], lens ? lens[k] : strlen(keys[k]));
#undef ARG
        r = redisCommandArgv(ctx, argc, argv, argl);
        /* OK, or NOKEY when none of the keys was there */
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
                fprintf(stderr, "tu_cluster: MIGRATE: %s\n",
                        r && r->str ? r->str : "no reply");
        if (r)
                freeReplyObject(r);
        redisFree(ctx);
        free(argv);
        free(argl);
        return ok ? 0 : -1;
}

int tu_cluster_migrate_keys(const tu_cluster_t *c, unsigned slot, int from,
                            int to, int max) {
        int moved = 0;
        while (!max || moved < max) {
                int want = max && max - moved < 100 ? max - moved : 100;
                redisReply *keys = NULL;
                const char *kv[100];
                size_t kl[100];
                redisContext *ctx = tu_cluster_connect(c, from);
                int rc;
                if (ctx) {
                        keys = redisCommand(ctx, "CLUSTER GETKEYSINSLOT %u %d",
                                            slot, want);
                        redisFree(ctx);
                }
                if (!keys || keys->type != REDIS_REPLY_ARRAY) {
                        if (keys)
                                freeReplyObject(keys);
                        return -1;
                }
                if (!keys->elements) {
                        freeReplyObject(keys);
                        break;
                }
                for (size_t k = 0; k < keys->elements && k < 100; k++) {
                        kv[k] = keys->element[k]->str;
                        kl[k] = keys->element[k]->len;
                }
                rc = tu_cluster_migrate(c, from, to, kv, kl,
                                        (int)keys->elements);
                moved += (int)keys->elements;
                freeReplyObject(keys);
                if (rc)
                        return -1;
        }
        return moved;
}

int tu_cluster_migrate_end(const tu_cluster_t *c, unsigned slot, int from,
                           int to) {
        if (!cmd_ok(cmd(c, to, "CLUSTER SETSLOT %u NODE %s", slot,
                        c->node[to].id)) ||
            !cmd_ok(cmd(c, from, "CLUSTER SETSLOT %u NODE %s", slot,
                        c->node[to].id)))
                return -1;
        for (int i = 0; i < c->n; i++)
                if (i != from && i != to && c->node[i].pid &&
                    !cmd_ok(cmd(c, i, "CLUSTER SETSLOT %u NODE %s", slot,
                                c->node[to].id)))
                        return -1;
        return 0;
}

int tu_cluster_cunit_run(void) {
        unsigned failed;
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                 CU_get_number_of_suites_failed();
        CU_cleanup_registry();
        return failed ? 1 : CU_get_error();
}
