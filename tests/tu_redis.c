/* Throw-away redis-server for tests (see tu.h). */
#include "tu.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>

#include "../state/loy_store.h"

int tu_free_port(void) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int port = -1;
        if (fd < 0)
                return -1;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* extra: more redis-server arguments (NULL-terminated), or NULL. */
static int spawn_with(tu_redis_t *r, const char *const *extra) {
        char port[16];
        const char *argv[64];
        int argc = 0;
        pid_t pid;
        snprintf(port, sizeof(port), "%d", r->port);
        argv[argc++] = "redis-server";
        argv[argc++] = "--port";
        argv[argc++] = port;
        argv[argc++] = "--bind";
        argv[argc++] = "127.0.0.1";
        argv[argc++] = "--dir";
        argv[argc++] = r->dir;
        argv[argc++] = "--save";
        argv[argc++] = "";
        argv[argc++] = "--appendonly";
        argv[argc++] = r->aof ? "yes" : "no";
        argv[argc++] = "--appendfsync";
        argv[argc++] = "always";
        argv[argc++] = "--daemonize";
        argv[argc++] = "no";
        for (int i = 0; extra && extra[i] && argc < 63; i++)
                argv[argc++] = extra[i];
        argv[argc] = NULL;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int devnull = open("/dev/null", 1);
                if (devnull >= 0) {
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                execvp("redis-server", (char *const *)argv);
                _exit(127);
        }
        r->pid = pid;
        for (int i = 0; i < 200; i++) {
                char *pong = tu_redis_cli(r, "PING");
                int ok = pong && !strcmp(pong, "PONG");
                free(pong);
                if (ok)
                        return 0;
                sleep_ms(25);
        }
        return -1;
}

static int spawn(tu_redis_t *r) {
        return spawn_with(r, NULL);
}

int tu_redis_start_args(tu_redis_t *r, int aof, const char *const *extra) {
        memset(r, 0, sizeof(*r));
        snprintf(r->dir, sizeof(r->dir), "/tmp/loy-tu-redis-XXXXXX");
        if (!mkdtemp(r->dir))
                return -1;
        r->aof = aof;
        r->port = tu_free_port();
        if (r->port < 0)
                return -1;
        return spawn_with(r, extra);
}

int tu_redis_restart_args(tu_redis_t *r, const char *const *extra) {
        return spawn_with(r, extra);
}

int tu_redis_start(tu_redis_t *r, int aof) {
        memset(r, 0, sizeof(*r));
        snprintf(r->dir, sizeof(r->dir), "/tmp/loy-tu-redis-XXXXXX");
        if (!mkdtemp(r->dir))
                return -1;
        r->aof = aof;
        r->port = tu_free_port();
        if (r->port < 0)
                return -1;
        return spawn(r);
}

void tu_redis_kill(tu_redis_t *r, int sig) {
        if (r->pid <= 0)
                return;
        kill(r->pid, sig);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
}

int tu_redis_restart(tu_redis_t *r) {
        return spawn(r);
}

void tu_redis_stop(tu_redis_t *r) {
        char cmd[300];
        tu_redis_kill(r, SIGTERM);
        if (r->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "tu: could not remove %s\n", r->dir);
                r->dir[0] = '\0';
        }
}

char *tu_redis_cli(const tu_redis_t *r, const char *args) {
        char cmd[4096];
        char *out = NULL;
        size_t len = 0, cap = 0;
        char buf[4096];
        size_t n;
        FILE *p;
        snprintf(cmd, sizeof(cmd), "redis-cli%s -p %d %s 2>/dev/null",
                 r->cluster ? " -c" : "", r->port, args);
        p = popen(cmd, "r");
        if (!p)
                return NULL;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
                if (len + n + 1 > cap) {
                        char *nb;
                        cap = (len + n + 1) * 2;
                        nb = realloc(out, cap);
                        if (!nb) {
                                free(out);
                                pclose(p);
                                return NULL;
                        }
                        out = nb;
                }
                memcpy(out + len, buf, n);
                len += n;
        }
        pclose(p);
        if (!out)
                return strdup("");
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
                len--;
        out[len] = '\0';
        return out;
}

const char *tu_src_path(const char *rel) {
        static char buf[1024];
        const char *d = getenv("LOY_SOURCE_DIR");
        snprintf(buf, sizeof(buf), "%s/%s", d ? d : LOY_SOURCE_DIR, rel);
        return buf;
}

const char *tu_build_path(const char *rel) {
        static char buf[1024];
        const char *d = getenv("LOY_BUILD_DIR");
        snprintf(buf, sizeof(buf), "%s/%s", d ? d : ".", rel);
        return buf;
}

/* TU_ONLY=text: only the tests whose name holds text run (a developer's
 * shortcut; never set in CI, and said loudly when set). */
static void only_some(void) {
        const char *only = getenv("TU_ONLY");
        int kept = 0, all = 0;
        if (!only || !*only)
                return;
        for (CU_pSuite s = CU_get_registry()->pSuite; s; s = s->pNext)
                for (CU_pTest t = s->pTest; t; t = t->pNext) {
                        int keep = strstr(t->pName, only) != NULL;
                        CU_set_test_active(t, keep ? CU_TRUE : CU_FALSE);
                        kept += keep;
                        all++;
                }
        CU_set_fail_on_inactive(CU_FALSE);
        fprintf(stderr, "TU_ONLY=%s: %d of %d tests run\n", only, kept, all);
}

int tu_cunit_run(void) {
        unsigned failed;
        only_some();
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        /* a suite whose set-up failed (no redis-server, say) runs none of
         * its tests, and CUnit does not count that as a failure */
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                 CU_get_number_of_suites_failed();
        CU_cleanup_registry();
        return failed ? 1 : CU_get_error();
}

int tu_cunit_main(const char *suite, const tu_test_t *tests, int n) {
        return tu_cunit_suite(suite, NULL, NULL, tests, n);
}

int tu_cunit_suite(const char *suite, int (*init)(void), int (*clean)(void),
                   const tu_test_t *tests, int n) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite(suite, init, clean);
        for (int i = 0; s && i < n; i++)
                if (!CU_add_test(s, tests[i].name, tests[i].fn))
                        s = NULL;
        if (!s) {
                CU_cleanup_registry();
                return 1;
        }
        return tu_cunit_run();
}

/* "<ns>:c:{<cid>}" itself, not its :recs or :rh. */
static int is_customer_key(const char *key) {
        const char *b = strstr(key, ":c:{");
        size_t n = strlen(key);
        return b && n > 0 && key[n - 1] == '}' && !strchr(b + 4, '}')[1];
}

static char *customer_field(redisContext *c, const char *key,
                            const char *field) {
        redisReply *r = redisCommand(c, "HGETALL %s", key);
        loy_cust_t *cu = calloc(1, sizeof(*cu));
        const char *bad;
        char *out = NULL;
        char buf[LOY_FIELD_TEXT_MAX];
        if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements || !cu)
                goto done;
        loy_feat_init(cu, strchr(key, '{') + 1);
        if (loy_store_cust_from_reply(r, cu, &bad)) {
                fprintf(stderr, "tu_redis_field: %s: bad field %s\n", key, bad);
                goto done;
        }
        if (!strncmp(field, "off:", 4) || !strncmp(field, "cool:", 5)) {
                int64_t v = loy_feat_slot_get(cu, field, INT64_MIN);
                if (v != INT64_MIN && loy_fmt_i64(buf, sizeof(buf), v) >= 0)
                        out = strdup(buf);
        } else {
                const loy_field_t *f = loy_feat_field_find(field);
                int64_t at = cu->scored_ms ? cu->scored_ms : cu->last_event_ms;
                if (f && loy_feat_field_format(cu, f, at, NULL, buf,
                                               sizeof(buf)) >= 0)
                        out = strdup(buf);
        }
done:
        free(cu);
        if (r)
                freeReplyObject(r);
        return out;
}

char *tu_redis_field(const tu_redis_t *r, const char *key, const char *field) {
        redisContext *c = redisConnect("127.0.0.1", r->port);
        char *out = NULL;
        if (!c || c->err) {
                fprintf(stderr, "tu_redis_field: cannot connect to :%d\n",
                        r->port);
        } else if (is_customer_key(key)) {
                out = customer_field(c, key, field);
        } else {
                redisReply *x = redisCommand(c, "HGET %s %s", key, field);
                if (x && x->type == REDIS_REPLY_STRING)
                        out = strdup(x->str);
                if (x)
                        freeReplyObject(x);
        }
        if (c)
                redisFree(c);
        return out;
}
