/*
 * The loyaltyctl binary as a user runs it: every command answers -h and
 * --help with its options on stdout (exit 0), no command is an error, and
 * the tools that read Redis reach one that wants an ACL user and a
 * password, given as loyaltyd takes them (-X, -c FILE).
 */
#include <CUnit/Basic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tu.h"

/* Commands the listing must have at least; every command it lists is
 * checked, so a new one is without being added here. */
static const char *const known[] = {
    "demo",       "replay", "inspect",   "triggers",    "fields", "reco-eval",
    "reco-bench", "fit",    "eval",      "bench-model", "bench",  "pseudonym",
    "forget",     "expire", "dashboard", "kafka",       "config"};

/* Runs loyaltyctl with args (a shell word list); its exit status, stdout
 * and stderr into out/err (malloc'd, the caller frees). */
static int run(const char *args, char **out, char **err) {
        char cmd[2048], opath[] = "/tmp/loy_ctl_out_XXXXXX",
                        epath[] = "/tmp/loy_ctl_err_XXXXXX";
        int ofd = mkstemp(opath), efd = mkstemp(epath), st;
        char *bufs[2] = {NULL, NULL};
        const char *paths[2] = {opath, epath};
        if (ofd < 0 || efd < 0)
                return -1;
        close(ofd);
        close(efd);
        snprintf(cmd, sizeof(cmd), "%s %s >%s 2>%s",
                 tu_build_path("loyaltyctl"), args, opath, epath);
        st = system(cmd);
        for (int i = 0; i < 2; i++) {
                FILE *fp = fopen(paths[i], "r");
                size_t n = 0;
                bufs[i] = calloc(1, 65536);
                if (fp && bufs[i])
                        n = fread(bufs[i], 1, 65535, fp);
                if (bufs[i])
                        bufs[i][n] = '\0';
                if (fp)
                        fclose(fp);
                unlink(paths[i]);
        }
        *out = bufs[0];
        *err = bufs[1];
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command names of `loyaltyctl --help`: its lines "  name  help". */
static size_t listed_commands(char names[][32], size_t max) {
        char *out, *err, *line, *save = NULL;
        size_t n = 0;
        if (run("--help", &out, &err) != 0 || !out) {
                free(out);
                free(err);
                return 0;
        }
        for (line = strtok_r(out, "\n", &save); line && n < max;
             line = strtok_r(NULL, "\n", &save))
                if (line[0] == ' ' && line[1] == ' ' && line[2] != ' ' &&
                    sscanf(line, "%31s", names[n]) == 1)
                        n++;
        free(out);
        free(err);
        return n;
}

static void test_help(void) {
        char *out, *err, args[64], want[64], commands[64][32];
        size_t n = listed_commands(commands, 64);
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
                int found = 0;
                for (size_t i = 0; i < n; i++)
                        found |= !strcmp(commands[i], known[k]);
                CU_ASSERT(found);
                if (!found)
                        fprintf(stderr, "\n  --help does not list %s\n",
                                known[k]);
        }
        for (size_t i = 0; i < n; i++) {
                for (int h = 0; h < 2; h++) {
                        snprintf(args, sizeof(args), "%.31s %s", commands[i],
                                 h ? "--help" : "-h");
                        snprintf(want, sizeof(want), "usage: loyaltyctl %.31s",
                                 commands[i]);
                        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
                        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
                        CU_ASSERT_EQUAL(strncmp(out, want, strlen(want)), 0);
                        if (strncmp(out, want, strlen(want)))
                                fprintf(stderr, "\n  %s: \"%.80s\"\n", args,
                                        out);
                        CU_ASSERT_STRING_EQUAL(err, "");
                        free(out);
                        free(err);
                }
        }
        CU_ASSERT_EQUAL(run("", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "usage: loyaltyctl COMMAND"));
        free(out);
        free(err);
        CU_ASSERT_EQUAL(run("--help", &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: loyaltyctl COMMAND"));
        free(out);
        free(err);
        CU_ASSERT_EQUAL(run("no-such-command", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown command"));
        free(out);
        free(err);
}

/* inspect against a Redis whose default user has a password and which
 * has an ACL user for loyaltyd; a customer hash written by redis-cli in
 * the packed layout's fallback (readable fields of an older version). */
static void test_inspect_acl(void) {
        tu_redis_t r;
        char dir[] = "/tmp/loy_ctl_XXXXXX", pw[600], conf[600];
        char args[2048], *out, *err;
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&r, 0), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        free(tu_redis_cli(&r, "HSET 'shop:c:{c42}' orders 3 frequency 2 "
                              "last_purchase_ms 1709640000000 "
                              "last_event_ms 1709640000000 "
                              "first_purchase_ms 1707048000000"));
        free(tu_redis_cli(&r, "ACL SETUSER dash on '>dash-pw' '~shop:*' "
                              "'+@read' '+ping'"));
        free(tu_redis_cli(&r, "CONFIG SET requirepass 'default-pw'"));
        snprintf(pw, sizeof(pw), "%s/redis.pw", dir);
        CU_ASSERT_EQUAL_FATAL(tu_write_file(pw, "dash-pw\n"), 0);
        snprintf(conf, sizeof(conf), "%s/loyaltyd.conf", dir);
        CU_ASSERT_EQUAL_FATAL(
            tu_write_file(conf,
                          "[redis]\nport = %d\nnamespace = shop\n"
                          "user = dash\npassword.file = redis.pw\n",
                          r.port),
            0);

        /* no credentials: the server's reason, exit 1 */
        snprintf(args, sizeof(args), "inspect -p %d -n shop c42", r.port);
        CU_ASSERT_EQUAL(run(args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "NOAUTH"));
        free(out);
        free(err);
        /* wrong ones: the reason, not the password */
        snprintf(args, sizeof(args),
                 "inspect -p %d -n shop -X redis.user="
                 "dash -X redis.password=bad-pw c42",
                 r.port);
        CU_ASSERT_EQUAL(run(args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "WRONGPASS"));
        CU_ASSERT_PTR_NULL(strstr(err, "bad-pw"));
        free(out);
        free(err);
        /* the config file: its [redis] section, the password file next
         * to it */
        snprintf(args, sizeof(args), "inspect -c %s c42", conf);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "customer c42"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "(2024-03-05 12:00:00 UTC)"));
        if (!strstr(out, "customer c42"))
                fprintf(stderr, "\n  inspect: %s%s\n", out, err);
        free(out);
        free(err);
        /* the same with -X only */
        snprintf(args, sizeof(args),
                 "inspect -p %d -n shop -X redis.user="
                 "dash -X redis.password.file=%s c42",
                 r.port, pw);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "customer c42"));
        free(out);
        free(err);
        /* fit reads the same Redis the same way */
        snprintf(args, sizeof(args),
                 "fit -R 127.0.0.1:%d -n shop -X "
                 "redis.user=dash -X redis.password=nope -o -",
                 r.port);
        CU_ASSERT_EQUAL(run(args, &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "WRONGPASS"));
        free(out);
        free(err);
        snprintf(args, sizeof(args), "fit -R 127.0.0.1:%d -C %s -o -", r.port,
                 conf);
        run(args, &out, &err);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "read 1 customers from redis"));
        if (!strstr(out, "read 1 customers"))
                fprintf(stderr, "\n  fit: %s%s\n", out, err);
        free(out);
        free(err);
        unlink(pw);
        unlink(conf);
        rmdir(dir);
        tu_redis_stop(&r);
}

static void count_msg(const char *key, const void *val, size_t len,
                      const char *headers, int32_t partition, int64_t offset,
                      void *opaque) {
        (void)key, (void)val, (void)len, (void)headers, (void)partition,
            (void)offset;
        ++*(int *)opaque;
}

/* replay's -X reaches librdkafka: the brokers from -X bootstrap.servers
 * (not the -b default over it), a property librdkafka does not know
 * refused with its name. */
/* `loyaltyctl kafka` as the README uses it: its address on the first line
 * of stdout, loyaltyd's topics with -p partitions, reachable by replay and
 * kcat, exit 0 on SIGTERM; wrong arguments exit 2. */
static void test_kafka(void) {
        int fds[2], st = -1, n = 0;
        char addr[256] = "", args[1024], *out, *err;
        char path[] = "/tmp/loy_ctl_csv_XXXXXX";
        int fd = mkstemp(path);
        FILE *fp;
        pid_t pid;
        CU_ASSERT_FATAL(fd >= 0);
        fp = fdopen(fd, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("customer_id,timestamp,amount\n"
              "c1,2024-03-05,10.5\nc2,2024-03-06,20\nc3,2024-03-07,5\n",
              fp);
        fclose(fp);
        CU_ASSERT_FATAL(pipe(fds) == 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                dup2(fds[1], 1);
                if (devnull >= 0)
                        dup2(devnull, 2); /* its banner: not for the log */
                close(fds[0]);
                close(fds[1]);
                execl(tu_build_path("loyaltyctl"), "loyaltyctl", "kafka", "-p",
                      "3", (char *)NULL);
                _exit(127);
        }
        close(fds[1]);
        fp = fdopen(fds[0], "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        CU_ASSERT_PTR_NOT_NULL(fgets(addr, sizeof(addr), fp));
        addr[strcspn(addr, "\n")] = '\0';
        CU_ASSERT_EQUAL(strncmp(addr, "127.0.0.1:", 10), 0);

        snprintf(args, sizeof(args), "replay -b %s -t purchases %s", addr,
                 path);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "replayed 3 events"));
        free(out);
        free(err);
        {
                char cmd[1024], line[256];
                FILE *kc;
                snprintf(cmd, sizeof(cmd),
                         "kcat -b %s -L -t purchases "
                         "2>&1 && kcat -b %s -t purchases -C -e -q -f "
                         "'key %%k\\n' 2>&1",
                         addr, addr);
                kc = popen(cmd, "r");
                CU_ASSERT_PTR_NOT_NULL_FATAL(kc);
                while (fgets(line, sizeof(line), kc)) {
                        if (strstr(line, "with 3 partitions"))
                                n += 100;
                        else if (!strcmp(line, "key c1\n") ||
                                 !strcmp(line, "key c2\n") ||
                                 !strcmp(line, "key c3\n"))
                                n++;
                }
                CU_ASSERT_EQUAL(pclose(kc), 0);
                /* the topic with its 3 partitions, and 3 messages */
                CU_ASSERT_EQUAL(n, 103);
                if (n != 103)
                        fprintf(stderr, "\n  kafka: %d\n", n);
        }
        kill(pid, SIGTERM);
        CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        fclose(fp);
        unlink(path);

        CU_ASSERT_EQUAL(run("kafka -p 0", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "partitions must be 1..1000"));
        free(out);
        free(err);
        CU_ASSERT_EQUAL(run("kafka extra", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "unexpected argument"));
        free(out);
        free(err);
}

static void test_replay_kafka_props(void) {
        tu_kafka_t *k = tu_kafka_start(1);
        char path[] = "/tmp/loy_ctl_csv_XXXXXX", args[1024], *out, *err;
        int fd = mkstemp(path), n = 0;
        FILE *fp;
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_FATAL(fd >= 0);
        fp = fdopen(fd, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs("customer_id,timestamp,amount\n"
              "c1,2024-03-05,10.5\nc2,2024-03-06,20\nc1,2024-03-07,5\n",
              fp);
        fclose(fp);
        CU_ASSERT_EQUAL(tu_kafka_topic(k, "ctlin", 1), 0);
        snprintf(args, sizeof(args),
                 "replay -t ctlin -X bootstrap.servers=%s "
                 "-X client.id=ctl-test %s",
                 tu_kafka_bootstraps(k), path);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "replayed 3 events"));
        free(out);
        free(err);
        CU_ASSERT_EQUAL(tu_kafka_consume_all(k, "ctlin", 500, count_msg, &n),
                        3);
        CU_ASSERT_EQUAL(n, 3);
        snprintf(args, sizeof(args),
                 "replay -t ctlin -X bootstrap.servers=%s "
                 "-X no.such.property=1 %s",
                 tu_kafka_bootstraps(k), path);
        CU_ASSERT_NOT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "no.such.property"));
        free(out);
        free(err);
        unlink(path);
        tu_kafka_stop(k);
}

/* pseudonym prints what loyaltyd stores for a shop's ids, and inspect
 * given a config that pseudonymizes finds the customer by its own id. */
static void test_pseudonym(void) {
        tu_redis_t r;
        char dir[] = "/tmp/loy_ctl_XXXXXX", key[600], conf[600];
        char args[2048], *out, *err;
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&r, 0), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(key, sizeof(key), "%s/pseudonym.key", dir);
        CU_ASSERT_EQUAL_FATAL(
            tu_write_file(key, "0123456789abcdef0123456789abcdef\n"), 0);
        snprintf(conf, sizeof(conf), "%s/loyaltyd.conf", dir);
        CU_ASSERT_EQUAL_FATAL(tu_write_file(conf,
                                            "[redis]\nport = %d\n[privacy]\n"
                                            "pseudonymize = yes\nkey.file = "
                                            "pseudonym.key\n",
                                            r.port),
                              0);
        snprintf(args, sizeof(args), "pseudonym -c %s 17850 12346", conf);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(
            strstr(out, "17850\t3611394a44c6460d6b3d57b38e3a210e\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "12346\t"));
        free(out);
        free(err);
        /* ids on standard input, one per line */
        snprintf(args, sizeof(args), "pseudonym -c %s < /dev/null", conf);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_STRING_EQUAL(out, "");
        free(out);
        free(err);
        /* a config that does not pseudonymize: said, exit 2 */
        CU_ASSERT_EQUAL(run("pseudonym 17850", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not yes"));
        free(out);
        free(err);

        free(tu_redis_cli(&r, "HSET 'loy:c:{3611394a44c6460d6b3d57b38e3a210e}'"
                              " orders 3 frequency 2"));
        snprintf(args, sizeof(args), "inspect -c %s 17850", conf);
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "customer 17850"));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(out, "loy:c:{3611394a44c6460d6b3d57b38e3a210e}"));
        free(out);
        free(err);
        unlink(key);
        unlink(conf);
        rmdir(dir);
        tu_redis_stop(&r);
}

/* config: what make config runs, and its mistakes. */
static void test_config(void) {
        char args[1024], *out, *err, *want;
        size_t len = 0;
        FILE *fp;
        int ch;

        /* --markdown is docs/configuration.md, byte for byte */
        CU_ASSERT_EQUAL(run("config --markdown", &out, &err), 0);
        fp = fopen(tu_src_path("docs/configuration.md"), "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        {
                FILE *mem = open_memstream(&want, &len);
                CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
                while ((ch = fgetc(fp)) != EOF)
                        fputc(ch, mem);
                fclose(mem);
        }
        fclose(fp);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_STRING_EQUAL(out, want);
        free(want);
        free(out);
        free(err);

        /* -t fills the template in: the shipped values, the rules */
        snprintf(args, sizeof(args), "config -t %s",
                 tu_src_path("config/loyaltyd.conf.in"));
        CU_ASSERT_EQUAL(run(args, &out, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\ncache.customers = 20000\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n# max_basket = 20\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n[rule gold_tier]\n"));
        free(out);
        free(err);

        /* a bad template: file, line and key; no output */
        CU_ASSERT_EQUAL(run("config -t /nonexistent.conf", &out, &err), 1);
        CU_ASSERT_PTR_NOT_NULL(
            strstr(err, "config: /nonexistent.conf: file: No such file"));
        CU_ASSERT_STRING_EQUAL(out, "");
        free(out);
        free(err);
        CU_ASSERT_EQUAL(run("config -t x --markdown", &out, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "exclude each other"));
        free(out);
        free(err);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"every command answers -h and --help", test_help},
            {"inspect and fit with an ACL user and a password file",
             test_inspect_acl},
            {"replay takes librdkafka properties", test_replay_kafka_props},
            {"kafka: the embedded Kafka alone, reached by replay and kcat",
             test_kafka},
            {"pseudonym, and inspect by the shop's own id", test_pseudonym},
            {"config: the reference, filled in and as Markdown", test_config},
        };
        return tu_cunit_main("loyaltyctl", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
