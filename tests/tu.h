/*
 * Test utilities: a throw-away redis-server on a free loopback port, and
 * librdkafka's mock Kafka cluster. Real servers, real protocols.
 */
#ifndef LOY_TU_H
#define LOY_TU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tu_redis {
        pid_t pid;
        int port;
        char dir[256]; /* temp dir holding its data files */
        int aof;       /* appendonly with fsync always */
        int cluster;   /* a cluster node: redis-cli follows MOVED (-c) */
} tu_redis_t;

/* A loopback port nobody listens on now (the kernel's choice), or -1. */
int tu_free_port(void);

/* Starts redis-server (aof: durable AOF so kill -9 loses nothing) and waits
 * until it answers PING. 0 or -1. */
int tu_redis_start(tu_redis_t *r, int aof);
/* Sends sig (SIGKILL to simulate a crash, SIGTERM to stop) and reaps it. */
void tu_redis_kill(tu_redis_t *r, int sig);
/* Starts it again on the same port and directory. */
int tu_redis_restart(tu_redis_t *r);
/* Like tu_redis_start / tu_redis_restart with more redis-server arguments
 * (NULL-terminated, e.g. {"--enable-debug-command", "local", NULL}); the
 * restart needs them again. 0 or -1. */
int tu_redis_start_args(tu_redis_t *r, int aof, const char *const *extra);
int tu_redis_restart_args(tu_redis_t *r, const char *const *extra);
/* Stops it and removes its directory. */
void tu_redis_stop(tu_redis_t *r);

/* Runs a redis-cli command line against r and returns its trimmed stdout
 * (malloc'ed; caller frees), e.g. tu_redis_cli(r, "HGET loy:c:{1} orders"). */
char *tu_redis_cli(const tu_redis_t *r, const char *args);

/* One field of a hash: for a customer hash (<ns>:c:{<cid>}) as the engine
 * reads it (its packed field decoded; derived fields at its scoring time;
 * "off:..."/"cool:..." slots), for any other key its HGET. malloc'ed text
 * (caller frees), NULL when the key or field is absent. */
char *tu_redis_field(const tu_redis_t *r, const char *key, const char *field);

/* Mock Kafka cluster (rdkafka_mock.h) hosted by a private producer handle.
 * Topics are created with the given partitions. librdkafka logs of warning
 * level or worse go to stderr (TU_KAFKA_LOG_LEVEL=7 in the environment
 * shows everything). Trap: the mock cluster keeps only ~5 MiB per partition
 * and silently drops older data, so consume large volumes while producing.
 * Not thread-safe: use one tu_kafka_t from one thread. */
typedef struct tu_kafka tu_kafka_t;
/* brokers: broker count (ids 1..brokers). NULL on error (printed). */
tu_kafka_t *tu_kafka_start(int brokers);
const char *tu_kafka_bootstraps(const tu_kafka_t *k);
int tu_kafka_topic(tu_kafka_t *k, const char *topic, int partitions);
/* Produces one message (key may be NULL) and waits for delivery. 0 or -1.
 * partition -1 lets the partitioner pick from the key. */
int tu_kafka_produce(tu_kafka_t *k, const char *topic, int32_t partition,
                     const char *key, const void *val, size_t len);
/* Consumes every message of topic from the beginning until every partition
 * has reached its end and no message arrived for idle_ms. Calls cb for each
 * (key is NUL-terminated or NULL; key, val and headers are only valid during
 * the call); returns the count or -1. Headers are passed as
 * "name=value;name=value" text ("" when there are none). A fresh group id
 * and a direct assignment of all partitions: no group join, no commit.
 * A partition that never reports its end (leader down) stops the wait
 * 10 s after the last message. */
typedef void(tu_msg_cb_t)(const char *key, const void *val, size_t len,
                          const char *headers, int32_t partition,
                          int64_t offset, void *opaque);
int tu_kafka_consume_all(tu_kafka_t *k, const char *topic, int idle_ms,
                         tu_msg_cb_t *cb, void *opaque);
/* Flushes and stops the producer, then the mock cluster; NULL ok. */
void tu_kafka_stop(tu_kafka_t *k);

/* Like tu_kafka_produce, with one header hname=hval (hname NULL: none). */
int tu_kafka_produce_hdr(tu_kafka_t *k, const char *topic, int32_t partition,
                         const char *key, const void *val, size_t len,
                         const char *hname, const char *hval);
/* Produce-many: enqueues one message without waiting (val is copied) ...
 * 0 or -1 (queue still full after ~10 s of retrying) ... */
int tu_kafka_produce_async(tu_kafka_t *k, const char *topic, int32_t partition,
                           const char *key, const void *val, size_t len);
/* ... then waits for every enqueued message's delivery report. 0 when all
 * were delivered; -1 when any failed since the last flush or timeout_ms
 * passed first. */
int tu_kafka_flush(tu_kafka_t *k, int timeout_ms);

/* Consumes topic in consumer group `group` (subscribe, so it pays the mock
 * cluster's ~3 s group join), from the group's committed offsets (earliest
 * when none), until every assigned partition has reached its end and no
 * message arrived for idle_ms; then commits the positions synchronously and
 * leaves the group. Returns the count or -1 (no assignment within 30 s,
 * commit failed). Members use session.timeout.ms=3000 because the mock
 * coordinator holds the next join after a group's last member left for
 * session.timeout.ms - 1 s: a second call on the same group takes ~2 s. */
int tu_kafka_consume_group(tu_kafka_t *k, const char *topic, const char *group,
                           int idle_ms, tu_msg_cb_t *cb, void *opaque);
/* Committed offset of group on topic/partition (the next offset to read),
 * -1001 (RD_KAFKA_OFFSET_INVALID) when none, -1 on error. */
int64_t tu_kafka_committed(tu_kafka_t *k, const char *group, const char *topic,
                           int32_t partition);

/* The mock cluster, for fault injection with rdkafka_mock.h
 * (rd_kafka_mock_broker_set_down, rd_kafka_mock_push_request_errors ...).
 * Owned by k. */
struct rd_kafka_mock_cluster_s *tu_kafka_mock(tu_kafka_t *k);

/* Produces the events of a real data file (loy_source, Avro, key =
 * customer id), skipping the first skip, at most limit (0 = all), and
 * waits for delivery. Returns the number produced or -1. */
int64_t tu_produce_file(tu_kafka_t *k, const char *topic, const char *path,
                        int skip, int limit);

/* Writes a file (printf format); 0 or -1. */
int tu_write_file(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An HTTP/1.0 request to 127.0.0.1:port (method "GET", "POST" ...):
 * returns the status code (-1: no answer), *body the body (malloc'd, NUL
 * ended; NULL ok to skip). */
int tu_http(int port, const char *method, const char *path, char **body);

/* Path of a file under the source tree (LOY_SOURCE_DIR) or the build tree
 * (LOY_BUILD_DIR); static buffer. */
const char *tu_src_path(const char *rel);
const char *tu_build_path(const char *rel);

/* Runs the CUnit suites registered by the caller, prints the summary and
 * returns the process exit code (0 when nothing failed). */
int tu_cunit_run(void);

/* A program of one suite without set-up: registers the n tests under
 * suite and runs them (tu_cunit_run). */
typedef struct tu_test {
        const char *name;
        void (*fn)(void);
} tu_test_t;
int tu_cunit_main(const char *suite, const tu_test_t *tests, int n);
/* The same with a set-up and a clean-up (CUnit's suite init and cleanup:
 * 0 = fine; a set-up that fails runs none of the tests and fails the
 * program). */
int tu_cunit_suite(const char *suite, int (*init)(void), int (*clean)(void),
                   const tu_test_t *tests, int n);

#endif
