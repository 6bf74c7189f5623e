/*
 * fx: the fault suite's machinery (tests/faults/). Everything a scenario
 * needs to drive the real loyaltyd binary from outside and judge it:
 *
 *   - a seeded RNG (every schedule is a function of the printed seed);
 *   - a data set of encoded events held in memory, produced in slices;
 *   - loyaltyd processes: spawn with -X overrides, kill, SIGTERM with a
 *     checked exit status, and a reaper that tells our kills from crashes;
 *   - a Kafka probe: consumer-group lag (committed vs high watermark);
 *   - a Redis snapshot of a namespace (every key, field, member, score as
 *     text) and a diff that prints both values and counts per field;
 *   - the set of trigger ids on a topic.
 *
 * Test scaffolding: errors are printed, not returned through errstr.
 * Nothing here is thread-safe; the suite runs in one thread.
 */
#ifndef LOY_FX_H
#define LOY_FX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../tu.h"
#include "../tu_cluster.h"

/* ------------------------------------------------------------------ rng */

typedef struct fx_rng {
        uint64_t s;
} fx_rng_t;

void fx_rng_seed(fx_rng_t *r, uint64_t seed);
uint64_t fx_rng_next(fx_rng_t *r);
/* Uniform in [lo, hi] (inclusive). */
int64_t fx_rng_range(fx_rng_t *r, int64_t lo, int64_t hi);

int64_t fx_now_ms(void);
void fx_sleep_ms(int ms);

/* --------------------------------------------------------------- result */

/* One scenario's verdict: fails counts broken checks; notes are printed
 * under the PASS/FAIL line. */
typedef struct fx_result {
        const char *name;
        uint64_t seed;
        int fails;
        int64_t t0_ms;
} fx_result_t;

/* Prints "  FAIL: <msg>" (or "  note: <msg>") and counts the failure. */
void fx_fail(fx_result_t *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fx_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* -------------------------------------------------------------- dataset */

typedef struct fx_msg {
        char *key;
        void *val;
        size_t len;
        int forget; /* a forget request (loyaltyd-op header) */
} fx_msg_t;

/* Every this many events the data holds a forget request for the
 * customer of the last one (loyaltyctl forget's message, erasure time its
 * event time), so every scenario erases customers under its faults and
 * compares the records with the reference's. */
#define FX_FORGET_EVERY 250

typedef struct fx_data {
        fx_msg_t *m;
        int n;
        int purchases; /* positive net value */
        int returns;
        int forgets; /* of the n messages */
} fx_data_t;

/* Loads the first limit events (0 = all) of a data file (loy_source,
 * framed Avro, key = customer id). 0 or -1. */
int fx_data_load(fx_data_t *d, const char *path, int limit);
void fx_data_free(fx_data_t *d);
/* Produces messages [from, to) to topic (partitioner on the key, exactly
 * as tu_produce_file does, so every run sees the same partitions and
 * offsets) and waits for delivery. 0 or -1. */
int fx_data_produce(tu_kafka_t *k, const char *topic, const fx_data_t *d,
                    int from, int to);
/* The same in two steps: enqueue (returns at once, even with a broker
 * down: the suite's producer never times a message out), then wait for
 * every delivery. 0 or -1. fx_data_close() before the cluster stops. */
int fx_data_enqueue(tu_kafka_t *k, const char *topic, const fx_data_t *d,
                    int from, int to);
int fx_data_flush(tu_kafka_t *k, int timeout_ms);
void fx_data_close(void);

/* ------------------------------------------------------------ processes */

#define FX_PROCS_MAX 8
#define FX_XARGS_MAX 24

typedef struct fx_proc {
        pid_t pid;             /* 0: not running */
        int killed;            /* we sent SIGKILL / SIGSTOP games */
        int termed;            /* we sent SIGTERM: exit 0 is ours too */
        int stopped;           /* SIGSTOPped by us */
        int seq;               /* spawn number (log file name) */
        const char *failpoint; /* LOY_FAILPOINT of the next spawn */
} fx_proc_t;

/* Where and how loyaltyd runs for one scenario. */
typedef struct fx_env {
        const char *bin;    /* loyaltyd binary */
        const char *conf;   /* config file */
        const char *logdir; /* one log file per spawn */
        const char *tag;    /* scenario name, in log names */
        tu_kafka_t *kafka;
        tu_redis_t *redis;
        tu_cluster_t *cluster; /* when set, the state lives there */
        const char *group;
        const char *xargs[FX_XARGS_MAX]; /* extra -X values */
        int nxargs;
        fx_proc_t procs[FX_PROCS_MAX];
        int spawns;
        int crashes; /* exits we did not cause */
        fx_result_t *res;
} fx_env_t;

/* Adds one -X section.key=value (copied). */
void fx_env_x(fx_env_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Starts loyaltyd in slot i. 0 or -1. */
int fx_spawn(fx_env_t *e, int i);
/* SIGKILL slot i and reap it (a crash found while reaping is reported). */
void fx_kill9(fx_env_t *e, int i);
/* SIGTERM slot i, wait up to timeout_ms for a clean exit (status 0);
 * anything else (a signal such as SIGABRT, a non-zero status, a hang that
 * needs SIGKILL) is reported as a failure. Returns 0 on a clean exit. */
int fx_term(fx_env_t *e, int i, int timeout_ms);
/* Reaps exited processes without blocking; an exit we did not cause is a
 * crash: reported, counted, and the slot restarted when restart is set.
 * Returns the number of crashes found. */
int fx_reap(fx_env_t *e, int restart);
/* 1 once the log of slot i's current process holds text, 0 after
 * timeout_ms (or when it died). */
int fx_log_wait(const fx_env_t *e, int i, const char *text, int timeout_ms);
/* Is slot i alive (not reaped)? */
int fx_alive(const fx_env_t *e, int i);
/* Stops every slot (fx_term) at the end of a scenario. */
void fx_term_all(fx_env_t *e);

/* ---------------------------------------------------------------- kafka */

/* Sum over topics x partitions of (high watermark - committed offset of
 * group); a partition without a commit counts from 0. -1 when the cluster
 * did not answer. When stuck is not NULL it receives the first lagging
 * partition as "topic[p] committed C of H". */
int64_t fx_group_lag(tu_kafka_t *k, const char *group,
                     const char *const *topics, int ntopics, int nparts,
                     char *stuck, size_t stuck_size);

/* Committed offset of group on topic/partition (0 when none), -1 on
 * error. */
int64_t fx_committed(tu_kafka_t *k, const char *group, const char *topic,
                     int32_t partition);

/* Trigger ids read from a topic: distinct ids (sorted) and the total
 * number of messages (duplicates included). */
typedef struct fx_ids {
        char **id;
        int n, cap;
        int total;
        int undecodable;
} fx_ids_t;

int fx_ids_read(tu_kafka_t *k, const char *topic, fx_ids_t *ids);
void fx_ids_free(fx_ids_t *ids);
/* Compares got with ref: every ref id present, no extra id. Prints up to
 * max missing / extra ids. Returns missing + extra. */
int fx_ids_compare(const fx_ids_t *ref, const fx_ids_t *got, int max);

/* ---------------------------------------------------------------- redis */

/* A namespace flattened to sorted "key<TAB>sub" -> value entries: hash
 * fields, zset members (score as Redis prints it), strings (sub ""),
 * set and list members. Skipped keys are listed in fx_snap_skip(). */
typedef struct fx_ent {
        char *k; /* "key\tsub" */
        char *v;
        char type; /* 'h' hash, 'z' zset, 's' string, 'S' set, 'l' list */
} fx_ent_t;

typedef struct fx_snap {
        fx_ent_t *e;
        int n, cap;
        int keys;
} fx_snap_t;

/* Takes a snapshot of ns:* on port. 0 or -1 (Redis unreachable). */
int fx_snap_take(int port, const char *ns, fx_snap_t *s);
/* The same over the n servers (a cluster's masters), merged. */
int fx_snap_take_nodes(const int *ports, int n, const char *ns, fx_snap_t *s);
/* A snapshot of e's state (its redis-server or its cluster). */
int fx_env_snap(const fx_env_t *e, const char *ns, fx_snap_t *s);
/* A number from e's ns:stats (0 when absent). */
double fx_env_stat(const fx_env_t *e, const char *ns, const char *field);
/* Entries in e's ns:outbox, or -1 when a server does not answer. */
long fx_env_outbox(const fx_env_t *e, const char *ns);
void fx_snap_free(fx_snap_t *s);
/* A hash of the snapshot, to see when the state stopped moving. */
uint64_t fx_snap_digest(const fx_snap_t *s);
/* Sum of one field over customer hashes ns:c:{*}. */
double fx_snap_sum(const fx_snap_t *s, const char *ns, const char *field);
/* Prints the differences got vs ref (first max with both values, then the
 * count per key kind and field with an example). Returns the number of
 * differing entries outside fx_snap_soft. */
int fx_snap_diff(const fx_snap_t *ref, const fx_snap_t *got, const char *ns,
                 int max);
/* The key suffixes (after "ns:") fx_snap_take leaves out, with the reason;
 * NULL-terminated pairs {suffix-or-prefix, why}. */
extern const char *const fx_snap_skip[][2];
/* Key kinds whose differences are printed but not counted by fx_snap_diff
 * (wall-clock or partition-interleaving dependent by design), with the
 * reason; same layout. */
extern const char *const fx_snap_soft[][2];

/* One command on port, reply as text (integer, status, bulk string, error
 * as "ERR ..."); malloc'ed, NULL when Redis is unreachable. printf-style,
 * arguments split on blanks. */
char *fx_redis(int port, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* HGET ns:stats field as a number (0 when absent, -1 unreachable). */
double fx_stat(int port, const char *ns, const char *field);

/* -------------------------------------------------------------- settle */

/* Waits until the group has no lag on the input topics, the outbox is
 * empty and the snapshot has not changed for quiet_ms, or timeout_ms
 * passed. Reaps processes meanwhile (restart when restart is set).
 * Returns 0 when settled; -1 on timeout (the reason is printed). */
int fx_settle(fx_env_t *e, const char *const *topics, int ntopics, int nparts,
              const char *ns, int quiet_ms, int timeout_ms, int restart);

#endif
