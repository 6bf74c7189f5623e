/* Processes and the embedded Kafka shared by loyaltyctl demo and bench. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

int ctl_kafka_start(ctl_kafka_t *k, int partitions, char *errstr,
                    size_t errstr_size) {
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        const struct {
                const char *name;
                int parts;
        } topics[] = {{"purchases", partitions},
                      {"browse", partitions},
                      {"reward-triggers", 4},
                      {"loyaltyd-deadletter", 2}};
        rd_kafka_conf_set(kc, "log_level", "3", errstr, errstr_size);
        k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
        if (!k->rk) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        k->mock = rd_kafka_mock_cluster_new(k->rk, 1);
        if (!k->mock) {
                snprintf(errstr, errstr_size, "mock cluster did not start");
                return -1;
        }
        snprintf(k->bootstraps, sizeof(k->bootstraps), "%s",
                 rd_kafka_mock_cluster_bootstraps(k->mock));
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                if (rd_kafka_mock_topic_create(k->mock, topics[i].name,
                                               topics[i].parts, 1)) {
                        snprintf(errstr, errstr_size, "topic %s",
                                 topics[i].name);
                        return -1;
                }
        return 0;
}

void ctl_kafka_stop(ctl_kafka_t *k) {
        if (k->mock)
                rd_kafka_mock_cluster_destroy(k->mock);
        k->mock = NULL;
        if (k->rk)
                rd_kafka_destroy(k->rk);
        k->rk = NULL;
}

pid_t ctl_loyaltyd_spawn(const char *bin_path, const char *conf_path,
                         const char *log_path, const char *const *xs, int nxs) {
        char self[PATH_MAX], bin[PATH_MAX + 16];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        pid_t pid;
        char *slash;
        if (n <= 0 || nxs > CTL_SPAWN_X_MAX)
                return -1;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash)
                *slash = '\0';
        if (bin_path)
                snprintf(bin, sizeof(bin), "%s", bin_path);
        else
                snprintf(bin, sizeof(bin), "%s/loyaltyd", self);
        pid = fork();
        if (pid == 0) {
                const char *argv[6 + 2 * CTL_SPAWN_X_MAX];
                int a = 0;
                if (!freopen(log_path, "w", stderr))
                        _exit(126);
                argv[a++] = "loyaltyd";
                argv[a++] = "-c";
                argv[a++] = conf_path;
                /* several at once, beside whatever else runs here: any
                 * free port (logged); the caller's -X comes after */
                argv[a++] = "-X";
                argv[a++] = "http.listen=127.0.0.1:0";
                for (int i = 0; i < nxs; i++) {
                        argv[a++] = "-X";
                        argv[a++] = xs[i];
                }
                argv[a] = NULL;
                execv(bin, (char *const *)argv);
                _exit(127);
        }
        return pid;
}

long long ctl_peak_rss_kb(pid_t pid) {
        char path[64], line[256];
        long long kb = 0;
        FILE *fp;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        fp = fopen(path, "r");
        if (!fp)
                return 0;
        while (fgets(line, sizeof(line), fp))
                if (!strncmp(line, "VmHWM:", 6))
                        kb = atoll(line + 6);
        fclose(fp);
        return kb;
}
