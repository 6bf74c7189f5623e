/*
 * Redis over TLS, the documented way (docs/redis-keys.md "Access"):
 * hiredis 0.14 speaks no TLS, so a stunnel client on loopback carries the
 * store's plain connection to a redis-server that listens on a TLS port
 * only, and checks the server's certificate. A certificate for another
 * name is refused.
 */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "loy_feat.h"
#include "loy_rconn.h"
#include "loy_store.h"
#include "tu.h"

static char dir[] = "/tmp/loy_tls_XXXXXX";
static pid_t redis_pid;
static int tls_port;

static pid_t spawn(const char *const *argv) {
        pid_t pid = fork();
        if (pid == 0) {
                freopen("/dev/null", "w", stdout);
                freopen("/dev/null", "w", stderr);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        return pid;
}

static void stop(pid_t pid) {
        if (pid > 0) {
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
        }
}

/* redis-cli over TLS to the server: its trimmed output (malloc'd). */
static char *tls_cli(const char *args) {
        char cmd[1024], buf[4096] = "";
        FILE *p;
        size_t n;
        snprintf(cmd, sizeof(cmd),
                 "redis-cli --tls --cacert %s/ca.pem -p %d "
                 "--no-auth-warning -a tls-pw %s 2>&1",
                 dir, tls_port, args);
        if (!(p = popen(cmd, "r")))
                return NULL;
        n = fread(buf, 1, sizeof(buf) - 1, p);
        pclose(p);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = '\0';
        return strdup(buf);
}

/* A stunnel client: plain on 127.0.0.1:*port, TLS to the server,
 * certificate checked against the CA and host. */
static pid_t start_stunnel(const char *name, const char *host, int *port) {
        char conf[600], path[600];
        const char *argv[] = {"stunnel", path, NULL};
        FILE *fp;
        pid_t pid;
        *port = tu_free_port();
        snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
        snprintf(conf, sizeof(conf),
                 "foreground = yes\npid =\n[redis]\nclient = yes\n"
                 "accept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                 "CAfile = %s/ca.pem\nverifyChain = yes\ncheckHost = %s\n",
                 *port, tls_port, dir, host);
        if (!(fp = fopen(path, "w")))
                return -1;
        fputs(conf, fp);
        fclose(fp);
        pid = spawn(argv);
        /* up when it accepts */
        for (int i = 0; i < 200; i++) {
                redisContext *c = redisConnect("127.0.0.1", *port);
                int ok = c && !c->err;
                if (c)
                        redisFree(c);
                if (ok)
                        return pid;
                usleep(25000);
        }
        stop(pid);
        return -1;
}

static int suite_init(void) {
        char cmd[1024], port[16], cert[600], key[600], ca[600], *pong = NULL;
        const char *argv[] = {"redis-server",
                              "--port",
                              "0",
                              "--tls-port",
                              port,
                              "--bind",
                              "127.0.0.1",
                              "--tls-cert-file",
                              cert,
                              "--tls-key-file",
                              key,
                              "--tls-ca-cert-file",
                              ca,
                              "--tls-auth-clients",
                              "no",
                              "--requirepass",
                              "tls-pw",
                              "--save",
                              "",
                              "--dir",
                              dir,
                              NULL};
        if (!mkdtemp(dir))
                return -1;
        /* a CA, and a server certificate for localhost signed by it */
        snprintf(cmd, sizeof(cmd),
                 "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
                 "-subj /CN=loy-test-ca -keyout ca.key -out ca.pem && "
                 "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost "
                 "-keyout server.key -out server.csr && "
                 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                 "-CAcreateserial -days 2 -out server.pem "
                 "-extfile <(printf 'subjectAltName=DNS:localhost')",
                 dir);
        {
                char sh[1200];
                snprintf(sh, sizeof(sh), "bash -c \"%s\" >/dev/null 2>&1", cmd);
                if (system(sh) != 0) {
                        fprintf(stderr, "openssl failed\n");
                        return -1;
                }
        }
        snprintf(cert, sizeof(cert), "%s/server.pem", dir);
        snprintf(key, sizeof(key), "%s/server.key", dir);
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        tls_port = tu_free_port();
        snprintf(port, sizeof(port), "%d", tls_port);
        redis_pid = spawn(argv);
        for (int i = 0; i < 200; i++) {
                free(pong);
                pong = tls_cli("PING");
                if (pong && !strcmp(pong, "PONG"))
                        break;
                usleep(25000);
        }
        if (!pong || strcmp(pong, "PONG")) {
                fprintf(stderr, "redis-server with TLS did not answer: %s\n",
                        pong ? pong : "");
                free(pong);
                return -1;
        }
        free(pong);
        return 0;
}

static int suite_clean(void) {
        char cmd[700];
        stop(redis_pid);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_through_stunnel(void) {
        loy_rconn_opts_t o = {NULL, "tls-pw", 0, 2000, 2000};
        loy_feat_conf_t fc;
        loy_cust_t c;
        loy_cust_write_t w;
        loy_store_t *s;
        char e[512], *v;
        int port;
        pid_t tunnel = start_stunnel("good", "localhost", &port);
        CU_ASSERT_FATAL(tunnel > 0);
        loy_feat_conf_default(&fc);
        s = loy_store_create("127.0.0.1", port, NULL, 2000, e, sizeof(e));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_OK);
        if (!loy_store_is_connected(s))
                fprintf(stderr, "\n  connect: %s\n", e);
        loy_feat_init(&c, "tls1");
        c.orders = 3;
        c.last_event_ms = c.last_purchase_ms = 1709640000000LL;
        memset(&w, 0, sizeof(w));
        w.cust = &c;
        CU_ASSERT_EQUAL(
            loy_store_write(s, &w, 1, c.last_event_ms, &fc, e, sizeof(e)),
            LOY_STORE_OK);
        /* read on the TLS port itself: the only way in */
        v = tls_cli("HGET loy:c:{tls1} orders");
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_STRING_EQUAL(v, "3");
        free(v);
        loy_store_destroy(s);
        stop(tunnel);
}

static void test_wrong_certificate_name(void) {
        loy_rconn_opts_t o = {NULL, "tls-pw", 0, 1000, 1000};
        loy_store_t *s;
        char e[512];
        int port;
        pid_t tunnel = start_stunnel("bad", "not-this.example", &port);
        CU_ASSERT_FATAL(tunnel > 0);
        s = loy_store_create("127.0.0.1", port, NULL, 1000, e, sizeof(e));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_store_set_conn(s, &o, e, sizeof(e)), 0);
        CU_ASSERT_EQUAL(loy_store_connect(s, e, sizeof(e)), LOY_STORE_ERR_IO);
        loy_store_destroy(s);
        stop(tunnel);
}

int main(void) {
        CU_pSuite su;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        su = CU_add_suite("redis over TLS (stunnel)", suite_init, suite_clean);
        if (!su ||
            !CU_add_test(su, "the store through a stunnel client",
                         test_through_stunnel) ||
            !CU_add_test(su, "a certificate for another name is refused",
                         test_wrong_certificate_name))
                return 1;
        return tu_cunit_run();
}
