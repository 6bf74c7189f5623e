/* loyaltyctl's subcommands share these (cmd/ only). */
#ifndef LOY_CTL_H
#define LOY_CTL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "loy_codec.h"
#include "loy_source.h"

int ctl_replay_main(int argc, char **argv);
int ctl_inspect_main(int argc, char **argv);
int ctl_triggers_main(int argc, char **argv);
int ctl_fields_main(int argc, char **argv);
int ctl_demo_main(int argc, char **argv);
int ctl_reco_eval_main(int argc, char **argv);
int ctl_reco_bench_main(int argc, char **argv);
int ctl_fit_main(int argc, char **argv);
int ctl_eval_main(int argc, char **argv);
int ctl_bench_model_main(int argc, char **argv);
int ctl_bench_main(int argc, char **argv);
int ctl_pseudonym_main(int argc, char **argv);
int ctl_forget_main(int argc, char **argv);
int ctl_expire_main(int argc, char **argv);
int ctl_dashboard_main(int argc, char **argv);
int ctl_kafka_main(int argc, char **argv);
int ctl_config_main(int argc, char **argv);
/* Each command's options, for -h and for a mistake. */
void ctl_demo_usage(FILE *fp);
void ctl_replay_usage(FILE *fp);
void ctl_inspect_usage(FILE *fp);
void ctl_triggers_usage(FILE *fp);
void ctl_fields_usage(FILE *fp);
void ctl_reco_eval_usage(FILE *fp);
void ctl_reco_bench_usage(FILE *fp);
void ctl_fit_usage(FILE *fp);
void ctl_eval_usage(FILE *fp);
void ctl_bench_model_usage(FILE *fp);
void ctl_bench_usage(FILE *fp);
void ctl_pseudonym_usage(FILE *fp);
void ctl_forget_usage(FILE *fp);
void ctl_expire_usage(FILE *fp);
void ctl_dashboard_usage(FILE *fp);
void ctl_kafka_usage(FILE *fp);
void ctl_config_usage(FILE *fp);

/* The id Redis and the triggers hold for customer id: its pseudonym when
 * conf pseudonymizes (docs/privacy.md), else id itself. -1 (said on
 * stderr, as tool) when the key cannot be read. */
struct loy_config;
int ctl_customer_key(const struct loy_config *conf, const char *tool,
                     const char *id, char *out, size_t size);

/* Produces every event of src (Avro, key = customer id) to topic. speed 0
 * = as fast as possible, else event-time gaps are divided by speed. Stops
 * early when *running drops to 0 or after limit events (0 = all). Returns
 * the number produced, or -1 with errstr. */
int64_t ctl_replay(rd_kafka_t *producer, loy_codec_t *codec, loy_source_t *src,
                   const char *topic, double speed, int64_t limit,
                   volatile int *running, char *errstr, size_t errstr_size);

/* A private redis-server on a free loopback port in dir. */
typedef struct ctl_redis {
        pid_t pid;
        int port;
} ctl_redis_t;
int ctl_redis_start(ctl_redis_t *r, const char *dir, char *errstr,
                    size_t errstr_size);
void ctl_redis_stop(ctl_redis_t *r);
/* A Redis Cluster of n (3..CTL_CLUSTER_MAX) cluster-enabled redis-servers
 * on free ports, no replicas, joined by redis-cli --cluster create and
 * waited for until every node says cluster_state:ok. Stop each node with
 * ctl_redis_stop. 0, or -1 with errstr (every node stopped). */
#define CTL_CLUSTER_MAX 8
int ctl_redis_cluster_start(ctl_redis_t *nodes, int n, const char *dir,
                            char *errstr, size_t errstr_size);

/* librdkafka's mock cluster hosted in this process, with the topics
 * loyaltyd uses: purchases and browse with `partitions` partitions,
 * reward-triggers (4) and loyaltyd-deadletter (2). On failure the caller
 * still calls ctl_kafka_stop(). */
typedef struct ctl_kafka {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mock;
        char bootstraps[256];
} ctl_kafka_t;
int ctl_kafka_start(ctl_kafka_t *k, int partitions, char *errstr,
                    size_t errstr_size);
void ctl_kafka_stop(ctl_kafka_t *k);

/* Starts bin_path (NULL: the loyaltyd binary next to this executable)
 * with -c conf_path and one -X per xs entry (at most CTL_SPAWN_X_MAX),
 * stderr to log_path.
 * Returns its pid, or -1. */
#define CTL_SPAWN_X_MAX 24
pid_t ctl_loyaltyd_spawn(const char *bin_path, const char *conf_path,
                         const char *log_path, const char *const *xs, int nxs);

/* A tool's settings, as loyaltyd reads them: opt 'c' loads a config
 * file, 'X' sets "section.key=value", 'H', 'p', 'n' set redis.host,
 * redis.port, redis.namespace. 0, or -1 with the error printed as
 * "tool: file:line: key: message". */
struct loy_config;
int ctl_setting(struct loy_config *conf, const char *tool, int opt,
                const char *arg);
/* A connection to conf's Redis with its credentials, database and
 * timeouts (state/loy_rconn), or NULL with the reason printed. */
struct redisContext;
struct redisContext *ctl_redis_connect(struct loy_config *conf,
                                       const char *tool);

/* "-X property=value" of a Kafka tool: a librdkafka property (the kafka.
 * prefix is implied). 0, or -1 with the error printed. */
int ctl_kafka_prop(struct loy_config *conf, const char *tool, const char *kv);
/* bootstrap.servers: brokers when given (-b), else what -X set, else
 * localhost:9092. */
void ctl_kafka_brokers(struct loy_config *conf, const char *brokers);

/* VmHWM of a process, in KiB (0 when unknown). */
long long ctl_peak_rss_kb(pid_t pid);

/* A free TCP port on 127.0.0.1, or -1. */
int ctl_free_port(void);
int64_t ctl_wall_ms(void);
void ctl_sleep_ms(int ms);

#endif
