/* A private redis-server for the demo (loyaltyctl). */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_rconn.h"

int ctl_free_port(void) {
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

/* redis-server on a free port with the extra arguments (NULL-terminated,
 * at most 8), waited for until it answers. */
static int start_server(ctl_redis_t *r, const char *dir,
                        const char *const *extra, char *errstr,
                        size_t errstr_size) {
        char port[16];
        const char *argv[24];
        int argc = 0;
        pid_t pid;
        r->port = ctl_free_port();
        if (r->port < 0) {
                snprintf(errstr, errstr_size, "no free port");
                return -1;
        }
        snprintf(port, sizeof(port), "%d", r->port);
        argv[argc++] = "redis-server";
        argv[argc++] = "--port";
        argv[argc++] = port;
        argv[argc++] = "--bind";
        argv[argc++] = "127.0.0.1";
        argv[argc++] = "--dir";
        argv[argc++] = dir;
        argv[argc++] = "--save";
        argv[argc++] = "";
        argv[argc++] = "--appendonly";
        argv[argc++] = "no";
        for (int i = 0; extra && extra[i] && argc < 23; i++)
                argv[argc++] = extra[i];
        argv[argc] = NULL;
        pid = fork();
        if (pid < 0) {
                snprintf(errstr, errstr_size, "fork failed");
                return -1;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                if (devnull >= 0) {
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                execvp("redis-server", (char *const *)argv);
                _exit(127);
        }
        r->pid = pid;
        for (int i = 0; i < 200; i++) {
                struct timeval tv = {0, 200000};
                redisContext *c =
                    redisConnectWithTimeout("127.0.0.1", r->port, tv);
                int ok = c && !c->err;
                if (c)
                        redisFree(c);
                if (ok)
                        return 0;
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        snprintf(errstr, errstr_size,
                                 "redis-server did not start (is it "
                                 "installed? scripts/bootstrap.sh)");
                        r->pid = 0;
                        return -1;
                }
                ctl_sleep_ms(25);
        }
        snprintf(errstr, errstr_size, "redis-server did not answer");
        ctl_redis_stop(r);
        return -1;
}

int ctl_redis_start(ctl_redis_t *r, const char *dir, char *errstr,
                    size_t errstr_size) {
        return start_server(r, dir, NULL, errstr, errstr_size);
}

/* 1 when the node on port says cluster_state:ok. */
static int cluster_ok(int port) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *rep;
        int ok = 0;
        if (!c || c->err) {
                if (c)
                        redisFree(c);
                return 0;
        }
        rep = redisCommand(c, "CLUSTER INFO");
        ok = rep && rep->type == REDIS_REPLY_STRING &&
             strstr(rep->str, "cluster_state:ok") != NULL;
        if (rep)
                freeReplyObject(rep);
        redisFree(c);
        return ok;
}

int ctl_redis_cluster_start(ctl_redis_t *nodes, int n, const char *dir,
                            char *errstr, size_t errstr_size) {
        char addr[CTL_CLUSTER_MAX][32], conf[CTL_CLUSTER_MAX][300];
        char bus[CTL_CLUSTER_MAX][16];
        const char *argv[8 + CTL_CLUSTER_MAX];
        int argc = 0, status = -1;
        pid_t pid;
        if (n < 3 || n > CTL_CLUSTER_MAX) {
                snprintf(errstr, errstr_size, "a cluster needs 3..%d masters",
                         CTL_CLUSTER_MAX);
                return -1;
        }
        memset(nodes, 0, sizeof(*nodes) * (size_t)n);
        for (int i = 0; i < n; i++) {
                const char *extra[7];
                int b = ctl_free_port();
                snprintf(conf[i], sizeof(conf[i]), "%s/nodes-%d.conf", dir, i);
                extra[0] = "--cluster-enabled";
                extra[1] = "yes";
                extra[2] = "--cluster-config-file";
                extra[3] = conf[i];
                extra[4] = "--cluster-port";
                extra[5] = bus[i];
                extra[6] = NULL;
                snprintf(bus[i], sizeof(bus[i]), "%d", b);
                if (b < 0 ||
                    start_server(&nodes[i], dir, extra, errstr, errstr_size))
                        goto fail;
                snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d",
                         nodes[i].port);
        }
        argv[argc++] = "redis-cli";
        argv[argc++] = "--cluster";
        argv[argc++] = "create";
        for (int i = 0; i < n; i++)
                argv[argc++] = addr[i];
        argv[argc++] = "--cluster-yes";
        argv[argc] = NULL;
        pid = fork();
        if (pid < 0) {
                snprintf(errstr, errstr_size, "fork failed");
                goto fail;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                if (devnull >= 0) {
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                execvp("redis-cli", (char *const *)argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
                snprintf(errstr, errstr_size,
                         "redis-cli --cluster create "
                         "failed (status %d)",
                         status);
                goto fail;
        }
        for (int t = 0; t < 400; t++) {
                int ok = 1;
                for (int i = 0; i < n && ok; i++)
                        ok = cluster_ok(nodes[i].port);
                if (ok)
                        return 0;
                ctl_sleep_ms(50);
        }
        snprintf(errstr, errstr_size,
                 "the cluster did not reach "
                 "cluster_state:ok in 20 s");
fail:
        for (int i = 0; i < n; i++)
                ctl_redis_stop(&nodes[i]);
        return -1;
}

void ctl_redis_stop(ctl_redis_t *r) {
        if (r->pid <= 0)
                return;
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
}

int ctl_setting(loy_config_t *conf, const char *tool, int opt,
                const char *arg) {
        static const struct {
                int opt;
                const char *key;
        } flags[] = {
            {'H', "redis.host"}, {'p', "redis.port"}, {'n', "redis.namespace"}};
        char err[512];
        int rc = -1;
        if (opt == 'c') {
                rc = loy_config_load(conf, arg, err, sizeof(err));
        } else if (opt == 'X') {
                char kv[1024], *eq;
                snprintf(kv, sizeof(kv), "%s", arg);
                if (!(eq = strchr(kv, '='))) {
                        fprintf(stderr,
                                "%s: -X %s: expected "
                                "section.key=value\n",
                                tool, arg);
                        return -1;
                }
                *eq = '\0';
                rc = loy_config_set(conf, "-X", kv, eq + 1, err, sizeof(err));
        } else {
                for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
                        if (flags[i].opt == opt)
                                rc = loy_config_set(conf, "-", flags[i].key,
                                                    arg, err, sizeof(err));
        }
        if (rc)
                fprintf(stderr, "%s: %s\n", tool, err);
        return rc ? -1 : 0;
}

redisContext *ctl_redis_connect(loy_config_t *conf, const char *tool) {
        loy_rconn_opts_t o;
        char password[sizeof(conf->redis_password)], err[768];
        redisContext *c = NULL;
        if (loy_config_check(conf, "-X", err, sizeof(err)) ||
            loy_config_redis_opts(conf, &o, password, sizeof(password), err,
                                  sizeof(err))) {
                fprintf(stderr, "%s: %s\n", tool, err);
        } else if (!(c = loy_rconn_open(conf->redis_host, conf->redis_port, &o,
                                        NULL, err, sizeof(err)))) {
                fprintf(stderr, "%s: redis %s\n", tool, err);
        }
        explicit_bzero(password, sizeof(password));
        return c;
}

int ctl_kafka_prop(loy_config_t *conf, const char *tool, const char *kv) {
        char key[512], err[512];
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
                fprintf(stderr, "%s: -X %s: expected property=value\n", tool,
                        kv);
                return -1;
        }
        snprintf(key, sizeof(key), "kafka.%.*s", (int)(eq - kv), kv);
        if (loy_config_set(conf, "-X", key, eq + 1, err, sizeof(err))) {
                fprintf(stderr, "%s: %s\n", tool, err);
                return -1;
        }
        return 0;
}

void ctl_kafka_brokers(loy_config_t *conf, const char *brokers) {
        char err[256];
        if (!brokers) {
                for (int i = 0; i < conf->nkafka; i++)
                        if (!strcmp(conf->kafka_keys[i], "bootstrap.servers"))
                                return;
                brokers = "localhost:9092";
        }
        loy_config_set(conf, "-b", "kafka.bootstrap.servers", brokers, err,
                       sizeof(err));
}
