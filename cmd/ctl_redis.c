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

int ctl_redis_start(ctl_redis_t *r, const char *dir, char *errstr,
                    size_t errstr_size) {
        char port[16];
        pid_t pid;
        r->port = ctl_free_port();
        if (r->port < 0) {
                snprintf(errstr, errstr_size, "no free port");
                return -1;
        }
        snprintf(port, sizeof(port), "%d", r->port);
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
                execlp("redis-server", "redis-server", "--port", port,
                       "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                       "--appendonly", "no", (char *)NULL);
                _exit(127);
        }
        r->pid = pid;
        for (int i = 0; i < 200; i++) {
                struct timeval tv = {0, 200000};
                redisContext *c = redisConnectWithTimeout("127.0.0.1",
                                                          r->port, tv);
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

void ctl_redis_stop(ctl_redis_t *r) {
        if (r->pid <= 0)
                return;
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
}
