/*
 * loyaltyctl bench: the real loyaltyd measured from outside.
 *
 * Each run starts a private redis-server, hosts librdkafka's mock cluster in
 * this process, spawns the loyaltyd binary next to loyaltyctl against them
 * and produces a workload while loyaltyd consumes it. The figures come from
 * where an operator would read them: loy:stats (events, batch latency, first
 * batch), /proc/<pid> (loyaltyd CPU and peak RSS), Redis INFO (CPU, commands,
 * bytes in, memory). docs/bench.md explains every figure.
 *
 * Throughput phase: produce as fast as loyaltyd takes it, but never more than
 * a bounded lead ahead of what it has finished: the mock cluster keeps only
 * ~5 MiB per partition and silently drops older data (DESIGN.md, known
 * traps). At the end applied + dead-lettered + skipped must equal produced.
 *
 * Latency phase (--latency): a fixed offered rate, each event's time = the
 * wall clock at produce; the reward-trigger topic is consumed here and each
 * trigger is matched to its cause event (cause.event_id) for produce-to-
 * trigger-received latency.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_cluster.h"
#include "loy_kafka.h"
#include "loy_store.h"

#define W1_START_MS 1293840000000LL /* 2011-01-01T00:00:00Z */
#define W1_STEP_MS 3000
#define W1_ITEMS 1000
#define POLL_MS 10     /* loy:stats polling period */
#define STALL_S 60     /* no progress for this long: fail */
#define SETTLE_MS 1200 /* after caught up: over-counting, reco flush */
/* The checks that fire once every partition is idle (clock.idle.ms of
 * silence, 5 s in the shipped config) come after "caught up": the counts
 * are read once timers and triggers have not moved for this long. */
#define QUIET_MS 6000
#define QUIET_MAX_MS 30000
#define LEAD_BYTES_PER_PART (2 << 20) /* well below the mock's ~5 MiB */
#define CMDS_MAX 256
#define VARIANTS 2

static volatile sig_atomic_t bench_running = 1;

static void on_int(int sig) {
        (void)sig;
        bench_running = 0;
}

/* ------------------------------------------------------------------ */
/* options                                                              */
/* ------------------------------------------------------------------ */

typedef struct bench_opts {
        int workload; /* 1 or 2 */
        int64_t n, customers;
        uint64_t seed;
        int copies; /* W2: -K */
        const char *data, *conf_path;
        int partitions, runs;
        int reco_mask; /* 1 = on, 2 = off */
        int64_t window;
        int latency;
        double rate, latency_s;
        int timeout_s;
        int json;
        int masters;     /* 0: one redis-server; else a cluster */
        const char *bin; /* loyaltyd; NULL: beside loyaltyctl */
        const char *xs[CTL_SPAWN_X_MAX - 4];
        int nxs;
} bench_opts_t;

void ctl_bench_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl bench [options]\n"
                "  -w, --workload W1|W2  W1: generated purchases (default); "
                "W2: the Online\n"
                "                        Retail file replicated K times\n"
                "  -n N            W1 events (default 500000)\n"
                "  -c C            W1 customers, drawn uniformly (default "
                "100000)\n"
                "  --seed S        W1 PRNG seed (default 1; printed)\n"
                "  -K K            W2 copies of the file (default 90)\n"
                "  --data FILE     W2 file (default "
                "../shared/data/online_retail.csv.gz)\n"
                "  --config FILE   loyaltyd config (default "
                "config/loyaltyd.conf)\n"
                "  -p, --partitions P  input topic partitions (default 8)\n"
                "  --runs R        runs per variant, fresh Redis and "
                "namespace each (default 3)\n"
                "  --reco on|off|both  variants with reco.enabled=yes/no "
                "(default both)\n"
                "  --window N      most events produced ahead of what "
                "loyaltyd finished\n"
                "                  (default 20000; also capped at 2 MiB a "
                "partition)\n"
                "  --latency       also measure event-to-trigger latency at a "
                "fixed rate\n"
                "  --rate R        offered events/s of the latency phase "
                "(default: half the\n"
                "                  median throughput of the variant)\n"
                "  --latency-s S   seconds of offered load (default 15)\n"
                "  --timeout S     limit of each phase of a run (default "
                "300)\n"
                "  --json          JSON instead of the table (progress goes "
                "to stderr)\n"
                "  --cluster N     a Redis Cluster of N masters (3..8) "
                "instead of one\n"
                "                  redis-server; loyaltyd is given the "
                "first as its seed\n"
                "  --bin PATH      the loyaltyd binary to measure (default: "
                "the one beside\n"
                "                  loyaltyctl), e.g. a build of another "
                "commit\n"
                "  -X k=v          a loyaltyd setting for every run, e.g. -X "
                "input.batch.max=2000\n"
                "  -h, --help      this help\n");
}

/* 0, 1 for -h, -1 with errstr. */
static int parse_opts(bench_opts_t *o, int argc, char **argv, char *errstr,
                      size_t errstr_size) {
        static const struct option longs[] = {
            {"workload", required_argument, NULL, 'w'},
            {"seed", required_argument, NULL, 1},
            {"data", required_argument, NULL, 2},
            {"config", required_argument, NULL, 3},
            {"partitions", required_argument, NULL, 'p'},
            {"runs", required_argument, NULL, 4},
            {"reco", required_argument, NULL, 5},
            {"window", required_argument, NULL, 6},
            {"latency", no_argument, NULL, 7},
            {"rate", required_argument, NULL, 8},
            {"latency-s", required_argument, NULL, 9},
            {"timeout", required_argument, NULL, 10},
            {"json", no_argument, NULL, 11},
            {"cluster", required_argument, NULL, 12},
            {"bin", required_argument, NULL, 13},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        int opt;
        memset(o, 0, sizeof(*o));
        o->workload = 1;
        o->n = 500000;
        o->customers = 100000;
        o->seed = 1;
        o->copies = 90;
        o->data = LOY_SOURCE_DIR "/../shared/data/online_retail.csv.gz";
        o->conf_path = LOY_SOURCE_DIR "/config/loyaltyd.conf";
        o->partitions = 8;
        o->runs = 3;
        o->reco_mask = 3;
        o->window = 20000;
        o->latency_s = 15;
        o->timeout_s = 300;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "w:n:c:K:p:X:h", longs, NULL)) !=
               -1) {
                switch (opt) {
                case 'w':
                        if (!strcmp(optarg, "W1") || !strcmp(optarg, "w1"))
                                o->workload = 1;
                        else if (!strcmp(optarg, "W2") || !strcmp(optarg, "w2"))
                                o->workload = 2;
                        else
                                goto bad;
                        break;
                case 'n':
                        o->n = atoll(optarg);
                        break;
                case 'c':
                        o->customers = atoll(optarg);
                        break;
                case 'K':
                        o->copies = atoi(optarg);
                        break;
                case 'p':
                        o->partitions = atoi(optarg);
                        break;
                case 1:
                        o->seed = strtoull(optarg, NULL, 10);
                        break;
                case 2:
                        o->data = optarg;
                        break;
                case 3:
                        o->conf_path = optarg;
                        break;
                case 4:
                        o->runs = atoi(optarg);
                        break;
                case 5:
                        o->reco_mask = !strcmp(optarg, "on")     ? 1
                                       : !strcmp(optarg, "off")  ? 2
                                       : !strcmp(optarg, "both") ? 3
                                                                 : 0;
                        if (!o->reco_mask)
                                goto bad;
                        break;
                case 6:
                        o->window = atoll(optarg);
                        break;
                case 7:
                        o->latency = 1;
                        break;
                case 8:
                        o->rate = atof(optarg);
                        break;
                case 9:
                        o->latency_s = atof(optarg);
                        break;
                case 10:
                        o->timeout_s = atoi(optarg);
                        break;
                case 11:
                        o->json = 1;
                        break;
                case 13:
                        o->bin = optarg;
                        break;
                case 12:
                        o->masters = atoi(optarg);
                        if (o->masters < 3 || o->masters > CTL_CLUSTER_MAX)
                                goto bad;
                        break;
                case 'X':
                        if (!strchr(optarg, '=') ||
                            o->nxs == (int)(sizeof(o->xs) / sizeof(o->xs[0])))
                                goto bad;
                        o->xs[o->nxs++] = optarg;
                        break;
                case 'h':
                        return 1;
                default:
                        snprintf(errstr, errstr_size, "bad option (see -h)");
                        return -1;
                }
        }
        if (optind != argc) {
                snprintf(errstr, errstr_size, "unexpected argument %s",
                         argv[optind]);
                return -1;
        }
        if (o->n <= 0 || o->customers <= 0 || o->copies <= 0 ||
            o->partitions <= 0 || o->partitions > 1024 || o->runs <= 0 ||
            o->runs > 100 || o->window <= 0 || o->rate < 0 ||
            o->latency_s <= 0 || o->timeout_s <= 0) {
                snprintf(errstr, errstr_size,
                         "a count, size or time is out "
                         "of range (see -h)");
                return -1;
        }
        return 0;
bad:
        snprintf(errstr, errstr_size, "bad value '%s' (see -h)", optarg);
        return -1;
}

/* ------------------------------------------------------------------ */
/* workloads                                                            */
/* ------------------------------------------------------------------ */

/* splitmix64: tiny, seedable, and the same sequence on every machine */
static uint64_t rng_next(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n) {
        return rng_next(s) % n; /* bias < n / 2^64: irrelevant here */
}

typedef struct gen {
        const bench_opts_t *o;
        uint64_t rng;
        int64_t i; /* events handed out */
        loy_event_t ev;
        /* W2 */
        loy_source_t *src;
        int k; /* copy of the current source event */
        int have;
        char cid0[LOY_ID_MAX + 1], eid0[LOY_ID_MAX + 1], oid0[LOY_ID_MAX + 1];
        /* distinct customers seen (W1), one bit each */
        uint8_t *seen;
        int64_t distinct;
} gen_t;

static int gen_init(gen_t *g, const bench_opts_t *o, loy_source_t *src,
                    char *errstr, size_t errstr_size) {
        memset(g, 0, sizeof(*g));
        g->o = o;
        g->rng = o->seed;
        g->src = src;
        if (src) {
                loy_source_rewind(src);
                return 0;
        }
        g->seen = calloc((size_t)(o->customers + 7) / 8, 1);
        if (!g->seen) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static void gen_free(gen_t *g) {
        loy_event_free(&g->ev);
        free(g->seen);
        g->seen = NULL;
}

/* Copies src into a LOY_ID_MAX buffer; -1 when it does not fit. */
static int id_fmt(char *dst, const char *fmt, ...) {
        va_list ap;
        int n;
        va_start(ap, fmt);
        n = vsnprintf(dst, LOY_ID_MAX + 1, fmt, ap);
        va_end(ap);
        return n < 0 || n > LOY_ID_MAX ? -1 : 0;
}

/* The next event of the workload in g->ev: 1, 0 at the end, -1 with
 * errstr. */
static int gen_next(gen_t *g, char *errstr, size_t errstr_size) {
        loy_event_t *ev = &g->ev;
        if (!g->src) {
                uint64_t cust, cents;
                loy_line_t *l;
                if (g->i >= g->o->n)
                        return 0;
                cust = rng_below(&g->rng, (uint64_t)g->o->customers);
                cents = 500 + rng_below(&g->rng, 19500); /* 5.00..199.99 */
                loy_event_reset(ev);
                ev->kind = LOY_EV_PURCHASE;
                snprintf(ev->event_id, sizeof(ev->event_id), "w1-%" PRId64,
                         g->i);
                snprintf(ev->customer_id, sizeof(ev->customer_id), "c%" PRIu64,
                         cust);
                snprintf(ev->order_id, sizeof(ev->order_id), "o%" PRId64, g->i);
                ev->ts_ms = W1_START_MS + g->i * W1_STEP_MS;
                snprintf(ev->currency, sizeof(ev->currency), "GBP");
                snprintf(ev->channel, sizeof(ev->channel), "web");
                l = loy_event_add_line(ev);
                if (!l) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                snprintf(l->sku, sizeof(l->sku), "sku-%" PRIu64,
                         rng_below(&g->rng, W1_ITEMS));
                l->quantity = 1;
                l->unit_price = (double)cents / 100.0;
                if (!(g->seen[cust / 8] & (1u << (cust % 8)))) {
                        g->seen[cust / 8] |= (uint8_t)(1u << (cust % 8));
                        g->distinct++;
                }
                g->i++;
                return 1;
        }
        /* W2: every source event K times in a row (copy k's ids prefixed
         * with k), so the merged stream stays in event-time order */
        if (!g->have || g->k == g->o->copies) {
                int rc;
                while ((rc = loy_source_next(g->src, ev)) == -1)
                        ;
                if (rc == 0)
                        return 0;
                snprintf(g->cid0, sizeof(g->cid0), "%s", ev->customer_id);
                snprintf(g->eid0, sizeof(g->eid0), "%s", ev->event_id);
                snprintf(g->oid0, sizeof(g->oid0), "%s", ev->order_id);
                g->have = 1;
                g->k = 0;
        }
        if (id_fmt(ev->customer_id, "%d-%s", g->k, g->cid0) ||
            id_fmt(ev->event_id, "%d-%s", g->k, g->eid0) ||
            id_fmt(ev->order_id, "%d-%s", g->k, g->oid0)) {
                snprintf(errstr, errstr_size,
                         "W2: id of event %s too long "
                         "with its copy prefix",
                         g->eid0);
                return -1;
        }
        g->k++;
        g->i++;
        return 1;
}

/* ------------------------------------------------------------------ */
/* one run's environment: Redis, Kafka, loyaltyd, producer              */
/* ------------------------------------------------------------------ */

typedef struct own_cmd {
        const char *name;
        long long calls;
} own_cmd_t;

typedef struct env {
        char dir[256];
        char ns[32];
        /* one redis-server, or a cluster's masters (node 0 is the seed) */
        ctl_redis_t redis[CTL_CLUSTER_MAX];
        redisContext *rc[CTL_CLUSTER_MAX];
        int nredis;
        loy_cluster_t *map; /* which node holds a key (a cluster) */
        ctl_kafka_t kafka;
        pid_t ld;
        rd_kafka_t *producer;
        loy_codec_t *codec;
        long long dr_ok, dr_failed;
        /* our own commands, subtracted from Redis' counts */
        own_cmd_t own[4];
        long long own_bytes;
        int keep_dir;
} env_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        env_t *e = opaque;
        (void)rk;
        if (m->err)
                e->dr_failed++;
        else
                e->dr_ok++;
}

/* Sends one command to node and reads its reply, counting its bytes and
 * calls as ours. NULL on a connection error or timeout. */
static redisReply *own_command_on(env_t *e, int node, int which,
                                  const char *fmt, va_list ap) {
        char *cmd = NULL;
        long long len;
        redisReply *r = NULL;
        len = redisvFormatCommand(&cmd, fmt, ap);
        if (len < 0)
                return NULL;
        e->own_bytes += len;
        e->own[which].calls++;
        if (redisAppendFormattedCommand(e->rc[node], cmd, (size_t)len) !=
                REDIS_OK ||
            redisGetReply(e->rc[node], (void **)&r) != REDIS_OK)
                r = NULL;
        redisFreeCommand(cmd);
        return r;
}

/* The node that holds key: its slot's master in a cluster. */
static int node_of_key(const env_t *e, const char *key) {
        char addr[64];
        int port;
        if (!e->map ||
            loy_cluster_node_of(e->map, loy_cluster_slot(key, strlen(key)),
                                addr, sizeof(addr)))
                return 0;
        port = atoi(strrchr(addr, ':') + 1);
        for (int i = 0; i < e->nredis; i++)
                if (e->redis[i].port == port)
                        return i;
        return 0;
}

/* own_command_on the node that holds key. */
static redisReply *own_command(env_t *e, int which, const char *key,
                               const char *fmt, ...) {
        va_list ap;
        redisReply *r;
        va_start(ap, fmt);
        r = own_command_on(e, node_of_key(e, key), which, fmt, ap);
        va_end(ap);
        return r;
}

static redisReply *own_command_node(env_t *e, int node, int which,
                                    const char *fmt, ...) {
        va_list ap;
        redisReply *r;
        va_start(ap, fmt);
        r = own_command_on(e, node, which, fmt, ap);
        va_end(ap);
        return r;
}

enum { OWN_HMGET, OWN_INFO, OWN_HVALS, OWN_OTHER };

static void env_stop_loyaltyd(env_t *e) {
        int status;
        if (e->ld <= 0)
                return;
        kill(e->ld, SIGTERM);
        /* it drains and commits on SIGTERM; do not wait for ever */
        for (int i = 0; i < 300; i++) {
                if (waitpid(e->ld, &status, WNOHANG) == e->ld) {
                        e->ld = 0;
                        return;
                }
                ctl_sleep_ms(50);
        }
        fprintf(stderr, "bench: loyaltyd did not stop in 15 s: killed\n");
        kill(e->ld, SIGKILL);
        waitpid(e->ld, &status, 0);
        e->ld = 0;
}

static void env_stop(env_t *e) {
        char cmd[300];
        env_stop_loyaltyd(e);
        if (e->producer)
                rd_kafka_destroy(e->producer);
        e->producer = NULL;
        for (int i = 0; i < e->nredis; i++) {
                if (e->rc[i])
                        redisFree(e->rc[i]);
                e->rc[i] = NULL;
                ctl_redis_stop(&e->redis[i]);
        }
        e->nredis = 0;
        loy_cluster_destroy(e->map);
        e->map = NULL;
        ctl_kafka_stop(&e->kafka);
        if (e->codec)
                loy_codec_destroy(e->codec);
        e->codec = NULL;
        if (e->dir[0] && !e->keep_dir) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "bench: could not remove %s\n", e->dir);
        } else if (e->dir[0]) {
                fprintf(stderr, "bench: kept %s (loyaltyd.log)\n", e->dir);
        }
        e->dir[0] = '\0';
}

/* Everything but loyaltyd (env_spawn starts it, so the caller can take its
 * snapshots first). On failure the caller still calls env_stop(). */
static int env_start(env_t *e, const bench_opts_t *o, int run_id, char *errstr,
                     size_t errstr_size) {
        struct timeval tv = {5, 0};
        loy_config_t conf;
        int rc;
        memset(e, 0, sizeof(*e));
        e->own[OWN_HMGET].name = "hmget";
        e->own[OWN_INFO].name = "info";
        e->own[OWN_HVALS].name = "hvals";
        e->own[OWN_OTHER].name = "";
        snprintf(e->ns, sizeof(e->ns), "bench%d", run_id);
        snprintf(e->dir, sizeof(e->dir), "/tmp/loyaltyd-bench-XXXXXX");
        if (!mkdtemp(e->dir)) {
                e->dir[0] = '\0';
                snprintf(errstr, errstr_size, "mkdtemp: %s", strerror(errno));
                return -1;
        }
        if (o->masters
                ? ctl_redis_cluster_start(e->redis, o->masters, e->dir, errstr,
                                          errstr_size)
                : ctl_redis_start(&e->redis[0], e->dir, errstr, errstr_size))
                return -1;
        e->nredis = o->masters ? o->masters : 1;
        if (ctl_kafka_start(&e->kafka, o->partitions, errstr, errstr_size))
                return -1;
        for (int i = 0; i < e->nredis; i++) {
                e->rc[i] =
                    redisConnectWithTimeout("127.0.0.1", e->redis[i].port, tv);
                if (!e->rc[i] || e->rc[i]->err ||
                    redisSetTimeout(e->rc[i], tv) != REDIS_OK) {
                        snprintf(errstr, errstr_size, "redis connect failed");
                        return -1;
                }
        }
        if (o->masters) {
                char seed[32];
                snprintf(seed, sizeof(seed), "127.0.0.1:%d", e->redis[0].port);
                e->map = loy_cluster_create(seed, 5000, errstr, errstr_size);
                if (!e->map || loy_cluster_refresh(e->map, errstr, errstr_size))
                        return -1;
        }
        e->codec = loy_codec_create(NULL, errstr, errstr_size);
        if (!e->codec)
                return -1;
        loy_config_defaults(&conf);
        rc = loy_config_set(&conf, "bench", "kafka.bootstrap.servers",
                            e->kafka.bootstraps, errstr, errstr_size);
        if (rc == 0)
                e->producer = loy_kafka_producer_new(&conf, on_delivery, e,
                                                     errstr, errstr_size);
        loy_config_free(&conf);
        return e->producer ? 0 : -1;
}

static int env_spawn(env_t *e, const bench_opts_t *o, int reco, char *errstr,
                     size_t errstr_size) {
        char log[300], xb[300], xr[64], xn[64];
        const char *xs[CTL_SPAWN_X_MAX];
        int n = 0;
        snprintf(log, sizeof(log), "%s/loyaltyd.log", e->dir);
        snprintf(xb, sizeof(xb), "kafka.bootstrap.servers=%s",
                 e->kafka.bootstraps);
        snprintf(xr, sizeof(xr), "redis.port=%d", e->redis[0].port);
        snprintf(xn, sizeof(xn), "redis.namespace=%s", e->ns);
        xs[n++] = xb;
        xs[n++] = xr;
        xs[n++] = xn;
        xs[n++] = reco ? "reco.enabled=yes" : "reco.enabled=no";
        for (int i = 0; i < o->nxs; i++)
                xs[n++] = o->xs[i];
        e->ld = ctl_loyaltyd_spawn(o->bin, o->conf_path, log, xs, n);
        if (e->ld <= 0) {
                e->ld = 0;
                snprintf(errstr, errstr_size, "could not start loyaltyd");
                return -1;
        }
        return 0;
}

/* -1 with errstr when loyaltyd is gone (its log is kept). */
static int env_check_alive(env_t *e, char *errstr, size_t errstr_size) {
        int status;
        if (e->ld > 0 && waitpid(e->ld, &status, WNOHANG) == e->ld) {
                e->ld = 0;
                e->keep_dir = 1;
                snprintf(errstr, errstr_size,
                         "loyaltyd died (%s %d); see "
                         "%s/loyaltyd.log",
                         WIFSIGNALED(status) ? "signal" : "exit status",
                         WIFSIGNALED(status) ? WTERMSIG(status)
                                             : WEXITSTATUS(status),
                         e->dir);
                return -1;
        }
        return 0;
}

/* loy:stats, as far as the bench reads it */
typedef struct lstats {
        double in, applied, dead, skipped, first_wall_ms, triggers, p50, p99;
        double timers;
} lstats_t;

static int read_stats(env_t *e, lstats_t *s, char *errstr, size_t errstr_size) {
        char key[64];
        redisReply *r;
        snprintf(key, sizeof(key), "%s:stats", e->ns);
        r = own_command(e, OWN_HMGET, key,
                        "HMGET %s:stats events_in events_applied "
                        "dead_lettered events_skipped_dup first_batch_wall_ms "
                        "triggers_out batch_ms_p50 batch_ms_p99 timers_fired",
                        e->ns);
        double v[9] = {0};
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 9) {
                snprintf(errstr, errstr_size, "redis: HMGET %s:stats failed",
                         e->ns);
                if (r)
                        freeReplyObject(r);
                return -1;
        }
        for (int i = 0; i < 9; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING)
                        v[i] = strtod(r->element[i]->str, NULL);
        freeReplyObject(r);
        s->in = v[0];
        s->applied = v[1];
        s->dead = v[2];
        s->skipped = v[3];
        s->first_wall_ms = v[4];
        s->triggers = v[5];
        s->p50 = v[6];
        s->p99 = v[7];
        s->timers = v[8];
        return 0;
}

static double stats_done(const lstats_t *s) {
        return s->applied + s->dead + s->skipped;
}

/* ------------------------------------------------------------------ */
/* snapshots: Redis INFO, /proc                                         */
/* ------------------------------------------------------------------ */

typedef struct cmdstat {
        char name[48];
        double calls, usec;
} cmdstat_t;

typedef struct rinfo {
        double cpu_s, net_in, used_memory;
        int ncmds;
        cmdstat_t cmds[CMDS_MAX];
} rinfo_t;

static double info_field(const char *text, const char *name) {
        size_t n = strlen(name);
        for (const char *p = text; p && *p;) {
                if (!strncmp(p, name, n) && p[n] == ':')
                        return strtod(p + n + 1, NULL);
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return 0;
}

/* INFO of every node, summed (a command's calls and time per name). */
static int read_info(env_t *e, rinfo_t *ri, char *errstr, size_t errstr_size) {
        memset(ri, 0, sizeof(*ri));
        for (int node = 0; node < e->nredis; node++) {
                redisReply *r = own_command_node(
                    e, node, OWN_INFO, "INFO cpu stats memory commandstats");
                const char *p;
                if (!r || r->type != REDIS_REPLY_STRING) {
                        snprintf(errstr, errstr_size, "redis: INFO failed");
                        if (r)
                                freeReplyObject(r);
                        return -1;
                }
                ri->cpu_s += info_field(r->str, "used_cpu_sys") +
                             info_field(r->str, "used_cpu_user");
                ri->net_in += info_field(r->str, "total_net_input_bytes");
                ri->used_memory += info_field(r->str, "used_memory");
                for (p = r->str; p && *p;
                     p = strchr(p, '\n'), p = p ? p + 1 : p) {
                        const char *colon, *c, *u;
                        cmdstat_t *cs = NULL;
                        char name[48];
                        size_t len;
                        if (strncmp(p, "cmdstat_", 8))
                                continue;
                        colon = strchr(p, ':');
                        c = colon ? strstr(colon, "calls=") : NULL;
                        u = colon ? strstr(colon, "usec=") : NULL;
                        if (!c || !u)
                                continue;
                        len = (size_t)(colon - p - 8);
                        if (len >= sizeof(name))
                                len = sizeof(name) - 1;
                        memcpy(name, p + 8, len);
                        name[len] = '\0';
                        for (int i = 0; i < ri->ncmds && !cs; i++)
                                if (!strcmp(ri->cmds[i].name, name))
                                        cs = &ri->cmds[i];
                        if (!cs) {
                                if (ri->ncmds == CMDS_MAX)
                                        continue;
                                cs = &ri->cmds[ri->ncmds++];
                                snprintf(cs->name, sizeof(cs->name), "%s",
                                         name);
                        }
                        cs->calls += strtod(c + 6, NULL);
                        cs->usec += strtod(u + 5, NULL);
                }
                freeReplyObject(r);
        }
        return 0;
}

static const cmdstat_t *find_cmd(const rinfo_t *ri, const char *name) {
        for (int i = 0; i < ri->ncmds; i++)
                if (!strcmp(ri->cmds[i].name, name))
                        return &ri->cmds[i];
        return NULL;
}

/* utime + stime of a process, in seconds; -1 when it is gone */
static double proc_cpu_s(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long long ut = 0, st = 0;
        FILE *fp;
        size_t n;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fp = fopen(path, "r");
        if (!fp)
                return -1;
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        /* the command name may hold blanks: fields count from the ')' */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                         "%llu %llu",
                         &ut, &st) != 2)
                return -1;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ------------------------------------------------------------------ */
/* figures                                                              */
/* ------------------------------------------------------------------ */

enum {
        M_EPS,
        M_SECS,
        M_LD_CPU,
        M_REDIS_CPU,
        M_BENCH_CPU,
        M_CMDS,
        M_BYTES,
        M_P50,
        M_P99,
        M_RSS,
        M_MEM_CUST,
        M_CUSTOMERS,
        M_TRIGGERS,
        M_PRODUCED,
        M_APPLIED,
        M_DEAD,
        M_SKIPPED,
        M_IN,
        M_TIMERS,
        M__COUNT
};

static const struct {
        const char *key, *label, *fmt;
} metric[M__COUNT] = {
    [M_EPS] = {"events_per_s", "events/s (first batch to caught up)", "%.0f"},
    [M_SECS] = {"seconds", "seconds (first batch to caught up)", "%.1f"},
    [M_LD_CPU] = {"loyaltyd_cpu_us_per_event", "loyaltyd CPU us/event", "%.1f"},
    [M_REDIS_CPU] = {"redis_cpu_us_per_event", "redis-server CPU us/event",
                     "%.1f"},
    [M_BENCH_CPU] = {"bench_cpu_us_per_event", "bench+mock Kafka CPU us/event",
                     "%.1f"},
    [M_CMDS] = {"redis_cmds_per_event", "Redis commands/event", "%.2f"},
    [M_BYTES] = {"redis_bytes_in_per_event", "Redis bytes in/event", "%.0f"},
    [M_P50] = {"batch_ms_p50", "batch latency p50 ms", "%.1f"},
    [M_P99] = {"batch_ms_p99", "batch latency p99 ms", "%.1f"},
    [M_RSS] = {"loyaltyd_peak_rss_mib", "loyaltyd peak RSS MiB", "%.1f"},
    [M_MEM_CUST] = {"redis_bytes_per_customer",
                    "Redis used_memory bytes/customer", "%.0f"},
    [M_CUSTOMERS] = {"customers", "customers (sum of loy:{agg}:seg)", "%.0f"},
    [M_TRIGGERS] = {"triggers_out", "triggers out", "%.0f"},
    [M_PRODUCED] = {"produced", "events produced", "%.0f"},
    [M_APPLIED] = {"applied", "events applied", "%.0f"},
    [M_DEAD] = {"dead_lettered", "events dead-lettered", "%.0f"},
    [M_SKIPPED] = {"skipped_dup", "events skipped (dup)", "%.0f"},
    [M_IN] = {"events_in", "events consumed (events_in)", "%.0f"},
    [M_TIMERS] = {"timers_fired", "silence timers fired", "%.0f"},
};

enum {
        L_OFFERED,
        L_ACHIEVED,
        L_EVENTS,
        L_MATCHED,
        L_P50,
        L_P99,
        L_MAX,
        L_EMIT_P50,
        L_EMIT_P99,
        L_DUPS,
        L__COUNT
};

static const struct {
        const char *key, *label, *fmt;
} lmetric[L__COUNT] = {
    [L_OFFERED] = {"offered_rate", "offered events/s", "%.0f"},
    [L_ACHIEVED] = {"produced_rate", "produced events/s", "%.0f"},
    [L_EVENTS] = {"events", "measured events", "%.0f"},
    [L_MATCHED] = {"triggers_matched", "triggers matched to an event", "%.0f"},
    [L_P50] = {"latency_ms_p50", "produce-to-trigger p50 ms", "%.1f"},
    [L_P99] = {"latency_ms_p99", "produce-to-trigger p99 ms", "%.1f"},
    [L_MAX] = {"latency_ms_max", "produce-to-trigger max ms", "%.1f"},
    [L_EMIT_P50] = {"emit_ms_p50", "  of which produce-to-emit_time p50",
                    "%.1f"},
    [L_EMIT_P99] = {"emit_ms_p99", "  of which produce-to-emit_time p99",
                    "%.1f"},
    [L_DUPS] = {"trigger_duplicates", "triggers received twice", "%.0f"},
};

typedef struct variant {
        int reco;
        double m[100][M__COUNT];
        double l[100][L__COUNT];
        cmdstat_t top[CMDS_MAX]; /* summed over the runs */
        int ntop;
        double top_events;
        int warn_customers;
        double expected_customers;
} variant_t;

static int cmp_dbl(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
        double s[100];
        memcpy(s, v, (size_t)n * sizeof(double));
        qsort(s, (size_t)n, sizeof(double), cmp_dbl);
        return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double column_median(const double (*rows)[M__COUNT], int n, int col) {
        double v[100];
        for (int i = 0; i < n; i++)
                v[i] = rows[i][col];
        return median(v, n);
}

static double lcolumn_median(const double (*rows)[L__COUNT], int n, int col) {
        double v[100];
        for (int i = 0; i < n; i++)
                v[i] = rows[i][col];
        return median(v, n);
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *sorted, size_t n, double p) {
        size_t i;
        if (!n)
                return 0;
        i = (size_t)ceil(p / 100.0 * (double)n);
        return sorted[i ? i - 1 : 0];
}

static void add_top(variant_t *v, const rinfo_t *a, const rinfo_t *b,
                    const env_t *e) {
        for (int i = 0; i < b->ncmds; i++) {
                const cmdstat_t *was = find_cmd(a, b->cmds[i].name);
                double calls = b->cmds[i].calls - (was ? was->calls : 0);
                double usec = b->cmds[i].usec - (was ? was->usec : 0);
                int j;
                for (int k = 0; k < 3; k++)
                        if (!strcmp(b->cmds[i].name, e->own[k].name))
                                calls -= (double)e->own[k].calls;
                for (j = 0; j < v->ntop; j++)
                        if (!strcmp(v->top[j].name, b->cmds[i].name))
                                break;
                if (j == v->ntop) {
                        if (v->ntop == CMDS_MAX)
                                continue;
                        v->top[j] = b->cmds[i];
                        v->top[j].calls = v->top[j].usec = 0;
                        v->ntop++;
                }
                v->top[j].calls += calls;
                v->top[j].usec += usec;
        }
}

static int cmp_usec(const void *a, const void *b) {
        double x = ((const cmdstat_t *)a)->usec;
        double y = ((const cmdstat_t *)b)->usec;
        return x < y ? 1 : x > y ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* throughput phase                                                     */
/* ------------------------------------------------------------------ */

static void progress(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fflush(stderr);
}

static int produce_event(env_t *e, const loy_event_t *ev, size_t *bytes,
                         char *errstr, size_t errstr_size) {
        size_t len;
        const void *buf =
            loy_codec_encode_event(e->codec, ev, &len, errstr, errstr_size);
        if (!buf || loy_kafka_produce(e->producer, "purchases", ev->customer_id,
                                      strlen(ev->customer_id), buf, len, NULL,
                                      errstr, errstr_size) == -1)
                return -1;
        *bytes += len;
        return 0;
}

/* Waits for every delivery report: -1 with errstr if one failed. */
static int flush_producer(env_t *e, long long produced, char *errstr,
                          size_t errstr_size) {
        if (rd_kafka_flush(e->producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(errstr, errstr_size,
                         "%d messages not delivered to "
                         "Kafka in 30 s",
                         rd_kafka_outq_len(e->producer));
                return -1;
        }
        if (e->dr_failed || e->dr_ok != produced) {
                snprintf(errstr, errstr_size,
                         "Kafka delivery: %lld ok, %lld "
                         "failed, %lld produced",
                         e->dr_ok, e->dr_failed, produced);
                return -1;
        }
        return 0;
}

/* The counts must balance: -1 with errstr when they do not. */
static int check_counts(const lstats_t *s, long long produced, char *errstr,
                        size_t errstr_size) {
        if ((long long)llround(stats_done(s)) != produced) {
                snprintf(errstr, errstr_size,
                         "counts disagree: produced %lld"
                         ", applied %.0f + dead-lettered %.0f + skipped %.0f"
                         " = %.0f",
                         produced, s->applied, s->dead, s->skipped,
                         stats_done(s));
                return -1;
        }
        return 0;
}

static int seg_sum(env_t *e, double *sum, char *errstr, size_t errstr_size) {
        char key[64];
        redisReply *r;
        snprintf(key, sizeof(key), "%s:" LOY_KEY_SEG, e->ns);
        r = own_command(e, OWN_HVALS, key, "HVALS %s", key);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
                snprintf(errstr, errstr_size, "redis: HVALS %s failed", key);
                if (r)
                        freeReplyObject(r);
                return -1;
        }
        *sum = 0;
        for (size_t i = 0; i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING)
                        *sum += strtod(r->element[i]->str, NULL);
        freeReplyObject(r);
        return 0;
}

static int run_throughput(const bench_opts_t *o, loy_source_t *src,
                          variant_t *v, int run, int run_id, double *m,
                          char *errstr, size_t errstr_size) {
        env_t e;
        gen_t g;
        lstats_t st;
        rinfo_t ri0, ri1;
        double ld0, ld1, self0, self1, t_caught = 0, mem_after;
        int64_t produced = 0, t_start, t_last_progress, t_poll = 0;
        double last_done = -1;
        size_t bytes = 0;
        int rc = -1, done_producing = 0;
        long long own_calls[3], own_bytes;

        memset(&st, 0, sizeof(st));
        memset(&e, 0, sizeof(e));
        if (gen_init(&g, o, src, errstr, errstr_size))
                return -1;
        if (env_start(&e, o, run_id, errstr, errstr_size))
                goto out;
        if (read_info(&e, &ri0, errstr, errstr_size))
                goto out;
        /* from here on, our own commands are subtracted */
        for (int k = 0; k < 3; k++)
                e.own[k].calls = 0;
        e.own_bytes = 0;
        /* INFO counts itself after it ran */
        e.own[OWN_INFO].calls = e.nredis;
        self0 = self_cpu_s();
        if (env_spawn(&e, o, v->reco, errstr, errstr_size))
                goto out;
        ld0 = proc_cpu_s(e.ld);
        progress("  run %d (reco %s, namespace %s, redis :%d, loyaltyd pid "
                 "%d): ",
                 run + 1, v->reco ? "on" : "off", e.ns, e.redis[0].port,
                 (int)e.ld);
        t_start = t_last_progress = ctl_wall_ms();
        while (1) {
                int64_t now = ctl_wall_ms();
                int64_t lead_max = o->window;
                int produced_now = 0;
                if (!bench_running) {
                        snprintf(errstr, errstr_size, "interrupted");
                        goto out;
                }
                if (env_check_alive(&e, errstr, errstr_size))
                        goto out;
                if (now - t_poll >= POLL_MS) {
                        if (read_stats(&e, &st, errstr, errstr_size))
                                goto out;
                        t_poll = now;
                        if (stats_done(&st) != last_done) {
                                last_done = stats_done(&st);
                                t_last_progress = now;
                        }
                }
                if (done_producing && stats_done(&st) >= (double)produced) {
                        t_caught = (double)ctl_wall_ms();
                        break;
                }
                if (now - t_last_progress > STALL_S * 1000) {
                        snprintf(errstr, errstr_size,
                                 "loyaltyd made no "
                                 "progress for %d s (%.0f of %" PRId64
                                 " events done)",
                                 STALL_S, stats_done(&st), produced);
                        goto out;
                }
                if (now - t_start > (int64_t)o->timeout_s * 1000) {
                        snprintf(errstr, errstr_size,
                                 "timeout after %d s "
                                 "(%.0f of %" PRId64 " events done)",
                                 o->timeout_s, stats_done(&st), produced);
                        goto out;
                }
                /* bounded lead: in events, and in bytes per partition */
                if (produced > 0) {
                        double avg = (double)bytes / (double)produced;
                        int64_t by_bytes =
                            (int64_t)((double)LEAD_BYTES_PER_PART *
                                      o->partitions / avg);
                        if (by_bytes < lead_max)
                                lead_max = by_bytes;
                }
                while (!done_producing && produced_now < 1000 &&
                       produced - (int64_t)stats_done(&st) < lead_max) {
                        int r = gen_next(&g, errstr, errstr_size);
                        if (r < 0)
                                goto out;
                        if (r == 0) {
                                done_producing = 1;
                                break;
                        }
                        if (produce_event(&e, &g.ev, &bytes, errstr,
                                          errstr_size))
                                goto out;
                        produced++;
                        produced_now++;
                }
                rd_kafka_poll(e.producer, 0);
                if (!produced_now)
                        ctl_sleep_ms(2);
        }
        if (read_info(&e, &ri1, errstr, errstr_size))
                goto out;
        for (int k = 0; k < 3; k++)
                own_calls[k] = e.own[k].calls - (k == OWN_INFO ? e.nredis : 0);
        own_bytes = e.own_bytes;
        ld1 = proc_cpu_s(e.ld);
        self1 = self_cpu_s();
        m[M_RSS] = (double)ctl_peak_rss_kb(e.ld) / 1024.0;
        if (flush_producer(&e, produced, errstr, errstr_size))
                goto out;
        /* over-counting would show up after "caught up"; the reco flush
         * (reco.flush.ms) lands in used_memory */
        ctl_sleep_ms(SETTLE_MS);
        if (env_check_alive(&e, errstr, errstr_size) ||
            read_stats(&e, &st, errstr, errstr_size))
                goto out;
        {
                int64_t t0 = ctl_wall_ms(), moved = t0;
                double timers = st.timers, triggers = st.triggers;
                while (ctl_wall_ms() - moved < QUIET_MS &&
                       ctl_wall_ms() - t0 < QUIET_MAX_MS) {
                        ctl_sleep_ms(500);
                        if (env_check_alive(&e, errstr, errstr_size) ||
                            read_stats(&e, &st, errstr, errstr_size))
                                goto out;
                        if (st.timers != timers || st.triggers != triggers) {
                                timers = st.timers;
                                triggers = st.triggers;
                                moved = ctl_wall_ms();
                        }
                }
        }
        m[M_PRODUCED] = (double)produced;
        m[M_APPLIED] = st.applied;
        m[M_DEAD] = st.dead;
        m[M_SKIPPED] = st.skipped;
        m[M_IN] = st.in;
        m[M_TIMERS] = st.timers;
        if (check_counts(&st, produced, errstr, errstr_size)) {
                e.keep_dir = 1;
                goto out;
        }
        if (st.first_wall_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "loy:stats has no "
                         "first_batch_wall_ms");
                goto out;
        }
        m[M_SECS] = (t_caught - st.first_wall_ms) / 1e3;
        m[M_EPS] = (double)produced / (m[M_SECS] > 0 ? m[M_SECS] : 1e-3);
        if (ld0 < 0 || ld1 < 0) {
                snprintf(errstr, errstr_size, "cannot read /proc/%d/stat",
                         (int)e.ld);
                goto out;
        }
        m[M_LD_CPU] = (ld1 - ld0) * 1e6 / (double)produced;
        m[M_REDIS_CPU] = (ri1.cpu_s - ri0.cpu_s) * 1e6 / (double)produced;
        m[M_BENCH_CPU] = (self1 - self0) * 1e6 / (double)produced;
        {
                double calls = 0;
                for (int i = 0; i < ri1.ncmds; i++) {
                        const cmdstat_t *was = find_cmd(&ri0, ri1.cmds[i].name);
                        calls += ri1.cmds[i].calls - (was ? was->calls : 0);
                }
                for (int k = 0; k < 3; k++)
                        calls -= (double)own_calls[k];
                m[M_CMDS] = calls / (double)produced;
                /* add_top subtracts e.own: make it the same window */
                for (int k = 0; k < 3; k++)
                        e.own[k].calls = own_calls[k];
                add_top(v, &ri0, &ri1, &e);
                v->top_events += (double)produced;
        }
        m[M_BYTES] =
            (ri1.net_in - ri0.net_in - (double)own_bytes) / (double)produced;
        m[M_P50] = st.p50;
        m[M_P99] = st.p99;
        m[M_TRIGGERS] = st.triggers;
        if (seg_sum(&e, &m[M_CUSTOMERS], errstr, errstr_size) ||
            read_info(&e, &ri1, errstr, errstr_size))
                goto out;
        mem_after = ri1.used_memory;
        m[M_MEM_CUST] = m[M_CUSTOMERS] > 0
                            ? (mem_after - ri0.used_memory) / m[M_CUSTOMERS]
                            : 0;
        v->expected_customers =
            src ? (double)loy_source_stats(src)->customers * o->copies
                : (double)g.distinct;
        if (fabs(m[M_CUSTOMERS] - v->expected_customers) > 0.5)
                v->warn_customers = 1;
        progress("%.0f events/s, %.0f events in %.1f s, loyaltyd %.1f us/ev, "
                 "redis %.1f us/ev\n",
                 m[M_EPS], (double)produced, m[M_SECS], m[M_LD_CPU],
                 m[M_REDIS_CPU]);
        rc = 0;
out:
        if (rc)
                progress("FAILED\n");
        env_stop(&e);
        gen_free(&g);
        return rc;
}

/* ------------------------------------------------------------------ */
/* latency phase                                                        */
/* ------------------------------------------------------------------ */

static rd_kafka_t *trigger_consumer(const env_t *e, char *errstr,
                                    size_t errstr_size) {
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_t *rk;
        /* a plain assignment: no group join; short fetch waits so the
         * broker does not hold triggers back (fetch.wait.max.ms 500) */
        if (rd_kafka_conf_set(kc, "bootstrap.servers", e->kafka.bootstraps,
                              errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "group.id", "loyaltyctl-bench", errstr,
                              errstr_size) ||
            rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              errstr_size) ||
            rd_kafka_conf_set(kc, "fetch.wait.max.ms", "5", errstr,
                              errstr_size) ||
            rd_kafka_conf_set(kc, "log_level", "3", errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        parts = rd_kafka_topic_partition_list_new(4);
        for (int p = 0; p < 4; p++)
                rd_kafka_topic_partition_list_add(parts, "reward-triggers", p)
                    ->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (rd_kafka_assign(rk, parts)) {
                snprintf(errstr, errstr_size, "assign reward-triggers");
                rd_kafka_topic_partition_list_destroy(parts);
                rd_kafka_destroy(rk);
                return NULL;
        }
        rd_kafka_topic_partition_list_destroy(parts);
        return rk;
}

typedef struct lat_state {
        double *sent_us;  /* produce time of measured event i */
        int64_t *sent_ms; /* its wall clock = its event time */
        double *lat_ms;   /* latency of matched events */
        double *emit_ms;  /* trigger emit_time - event time */
        uint8_t *matched;
        int64_t nsent, nmatched, dups, other;
        int64_t last_trigger_ms;
} lat_state_t;

/* cause.event_id of a trigger as JSON: a plain string, or an Avro union
 * {"string": "..."} */
static const char *cause_event_id(json_t *root) {
        json_t *id =
            json_object_get(json_object_get(root, "cause"), "event_id");
        if (json_is_object(id))
                id = json_object_get(id, "string");
        return json_is_string(id) ? json_string_value(id) : NULL;
}

static void drain_triggers(rd_kafka_t *rk, env_t *e, lat_state_t *ls) {
        rd_kafka_message_t *m;
        char err[256];
        while ((m = rd_kafka_consumer_poll(rk, 0)) != NULL) {
                double now = mono_us();
                if (!m->err) {
                        char *js = loy_codec_trigger_to_json(
                            e->codec, m->payload, m->len, err, sizeof(err));
                        json_t *root = js ? json_loads(js, 0, NULL) : NULL;
                        const char *id = root ? cause_event_id(root) : NULL;
                        char *end;
                        long long i = -1;
                        if (id && id[0] == 'L') {
                                i = strtoll(id + 1, &end, 10);
                                if (*end)
                                        i = -1;
                        }
                        if (i >= 0 && i < ls->nsent) {
                                if (ls->matched[i]) {
                                        ls->dups++;
                                } else {
                                        ls->matched[i] = 1;
                                        json_t *et =
                                            json_object_get(root, "emit_time");
                                        ls->emit_ms[ls->nmatched] =
                                            json_is_integer(et)
                                                ? (double)(json_integer_value(
                                                               et) -
                                                           ls->sent_ms[i])
                                                : NAN;
                                        ls->lat_ms[ls->nmatched++] =
                                            (now - ls->sent_us[i]) / 1e3;
                                }
                        } else {
                                ls->other++; /* timers, warm-up events */
                        }
                        ls->last_trigger_ms = ctl_wall_ms();
                        json_decref(root);
                        free(js);
                }
                rd_kafka_message_destroy(m);
        }
}

static int run_latency(const bench_opts_t *o, loy_source_t *src, variant_t *v,
                       double rate, int run, int run_id, double *l,
                       char *errstr, size_t errstr_size) {
        env_t e;
        gen_t g;
        lstats_t st;
        lat_state_t ls;
        rd_kafka_t *tc = NULL;
        int64_t nmax = (int64_t)(rate * o->latency_s) + 1;
        int64_t produced = 0, t0, t_end, t_poll = 0, t_start, warm = 0;
        size_t bytes = 0;
        double t0_us;
        int rc = -1;

        memset(&ls, 0, sizeof(ls));
        memset(&st, 0, sizeof(st));
        memset(&e, 0, sizeof(e));
        if (gen_init(&g, o, src, errstr, errstr_size))
                return -1;
        ls.sent_us = calloc((size_t)nmax, sizeof(double));
        ls.lat_ms = calloc((size_t)nmax, sizeof(double));
        ls.emit_ms = calloc((size_t)nmax, sizeof(double));
        ls.sent_ms = calloc((size_t)nmax, sizeof(int64_t));
        ls.matched = calloc((size_t)nmax, 1);
        if (!ls.sent_us || !ls.lat_ms || !ls.matched || !ls.emit_ms ||
            !ls.sent_ms) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if (env_start(&e, o, run_id, errstr, errstr_size))
                goto out;
        tc = trigger_consumer(&e, errstr, errstr_size);
        if (!tc || env_spawn(&e, o, v->reco, errstr, errstr_size))
                goto out;
        progress("  latency run %d (reco %s, %.0f events/s offered for %.0f "
                 "s): ",
                 run + 1, v->reco ? "on" : "off", rate, o->latency_s);
        /* warm-up: a trickle until loyaltyd has joined the group (~3 s on
         * the mock cluster), which is not latency of the processor */
        t_start = ctl_wall_ms();
        while (st.first_wall_ms <= 0) {
                int r;
                if (!bench_running) {
                        snprintf(errstr, errstr_size, "interrupted");
                        goto out;
                }
                if (env_check_alive(&e, errstr, errstr_size) ||
                    read_stats(&e, &st, errstr, errstr_size))
                        goto out;
                if (ctl_wall_ms() - t_start > 60000) {
                        snprintf(errstr, errstr_size,
                                 "loyaltyd did not "
                                 "start consuming in 60 s");
                        goto out;
                }
                r = gen_next(&g, errstr, errstr_size);
                if (r <= 0) {
                        if (!r)
                                snprintf(errstr, errstr_size,
                                         "workload too "
                                         "small for the latency phase");
                        goto out;
                }
                snprintf(g.ev.event_id, sizeof(g.ev.event_id), "warm-%" PRId64,
                         warm++);
                g.ev.ts_ms = ctl_wall_ms();
                if (produce_event(&e, &g.ev, &bytes, errstr, errstr_size))
                        goto out;
                produced++;
                rd_kafka_poll(e.producer, 0);
                drain_triggers(tc, &e, &ls);
                ctl_sleep_ms(200);
        }
        for (int64_t until = ctl_wall_ms() + 1000; ctl_wall_ms() < until;) {
                drain_triggers(tc, &e, &ls);
                rd_kafka_poll(e.producer, 0);
                ctl_sleep_ms(5);
        }
        /* offered load: event i is due at t0 + i / rate */
        t0 = ctl_wall_ms();
        t0_us = mono_us();
        while (ls.nsent < nmax) {
                double due_us = t0_us + (double)ls.nsent * 1e6 / rate;
                int64_t now = ctl_wall_ms();
                if (!bench_running) {
                        snprintf(errstr, errstr_size, "interrupted");
                        goto out;
                }
                if (now - t_poll >= 200) {
                        if (env_check_alive(&e, errstr, errstr_size) ||
                            read_stats(&e, &st, errstr, errstr_size))
                                goto out;
                        t_poll = now;
                }
                if (now - t0 > (int64_t)o->timeout_s * 1000) {
                        snprintf(errstr, errstr_size, "timeout producing");
                        goto out;
                }
                while (ls.nsent < nmax && mono_us() >= due_us) {
                        int r = gen_next(&g, errstr, errstr_size);
                        if (r < 0)
                                goto out;
                        if (r == 0) {
                                nmax = ls.nsent; /* workload exhausted */
                                break;
                        }
                        snprintf(g.ev.event_id, sizeof(g.ev.event_id),
                                 "L%" PRId64, ls.nsent);
                        g.ev.ts_ms = ctl_wall_ms();
                        ls.sent_ms[ls.nsent] = g.ev.ts_ms;
                        ls.sent_us[ls.nsent] = mono_us();
                        if (produce_event(&e, &g.ev, &bytes, errstr,
                                          errstr_size))
                                goto out;
                        ls.nsent++;
                        produced++;
                        due_us = t0_us + (double)ls.nsent * 1e6 / rate;
                }
                rd_kafka_poll(e.producer, 0);
                drain_triggers(tc, &e, &ls);
                ctl_sleep_ms(1);
        }
        t_end = ctl_wall_ms();
        l[L_OFFERED] = rate;
        l[L_ACHIEVED] =
            (double)ls.nsent * 1e3 / (double)(t_end > t0 ? t_end - t0 : 1);
        if (flush_producer(&e, produced, errstr, errstr_size))
                goto out;
        /* the rest: loyaltyd catches up, then triggers stop arriving */
        t_start = ctl_wall_ms();
        ls.last_trigger_ms = ctl_wall_ms();
        while (1) {
                int64_t now = ctl_wall_ms();
                if (!bench_running) {
                        snprintf(errstr, errstr_size, "interrupted");
                        goto out;
                }
                if (env_check_alive(&e, errstr, errstr_size) ||
                    read_stats(&e, &st, errstr, errstr_size))
                        goto out;
                drain_triggers(tc, &e, &ls);
                if (stats_done(&st) >= (double)produced &&
                    now - ls.last_trigger_ms > 1500)
                        break;
                if (now - t_start > 60000) {
                        snprintf(errstr, errstr_size,
                                 "loyaltyd did not catch "
                                 "up within 60 s after the offered load "
                                 "(%.0f of %" PRId64 " done)",
                                 stats_done(&st), produced);
                        goto out;
                }
                ctl_sleep_ms(10);
        }
        if (check_counts(&st, produced, errstr, errstr_size)) {
                e.keep_dir = 1;
                goto out;
        }
        if (!ls.nmatched) {
                snprintf(errstr, errstr_size,
                         "no trigger could be matched to "
                         "a measured event");
                goto out;
        }
        qsort(ls.lat_ms, (size_t)ls.nmatched, sizeof(double), cmp_dbl);
        l[L_EVENTS] = (double)ls.nsent;
        l[L_MATCHED] = (double)ls.nmatched;
        l[L_P50] = pct(ls.lat_ms, (size_t)ls.nmatched, 50);
        l[L_P99] = pct(ls.lat_ms, (size_t)ls.nmatched, 99);
        l[L_MAX] = ls.lat_ms[ls.nmatched - 1];
        qsort(ls.emit_ms, (size_t)ls.nmatched, sizeof(double), cmp_dbl);
        l[L_EMIT_P50] = pct(ls.emit_ms, (size_t)ls.nmatched, 50);
        l[L_EMIT_P99] = pct(ls.emit_ms, (size_t)ls.nmatched, 99);
        l[L_DUPS] = (double)ls.dups;
        progress("%" PRId64 " triggers matched, p50 %.1f ms, p99 %.1f ms\n",
                 ls.nmatched, l[L_P50], l[L_P99]);
        rc = 0;
out:
        if (rc)
                progress("FAILED\n");
        if (tc) {
                rd_kafka_consumer_close(tc);
                rd_kafka_destroy(tc);
        }
        env_stop(&e);
        gen_free(&g);
        free(ls.sent_us);
        free(ls.lat_ms);
        free(ls.emit_ms);
        free(ls.sent_ms);
        free(ls.matched);
        return rc;
}

/* ------------------------------------------------------------------ */
/* output                                                               */
/* ------------------------------------------------------------------ */

static void print_row(const char *label, const char *fmt, double med,
                      const double *vals, int n, int stride) {
        char buf[64];
        printf("  %-36s ", label);
        snprintf(buf, sizeof(buf), fmt, med);
        printf("%12s  ", buf);
        for (int i = 0; i < n; i++) {
                snprintf(buf, sizeof(buf), fmt, vals[i * stride]);
                printf("%s%s", i ? " " : "", buf);
        }
        printf("\n");
}

static void print_table(const bench_opts_t *o, variant_t *vs, int nv) {
        for (int j = 0; j < nv; j++) {
                variant_t *v = &vs[j];
                printf("\n== reco %s: %d run%s (median, then every run)\n",
                       v->reco ? "on" : "off", o->runs, o->runs > 1 ? "s" : "");
                for (int k = 0; k < M__COUNT; k++)
                        print_row(metric[k].label, metric[k].fmt,
                                  column_median((const double(*)[M__COUNT])v->m,
                                                o->runs, k),
                                  &v->m[0][k], o->runs, M__COUNT);
                if (v->warn_customers)
                        printf("  WARNING: %.0f distinct customers were "
                               "produced; loy:{agg}:seg counts differ\n",
                               v->expected_customers);
                qsort(v->top, (size_t)v->ntop, sizeof(v->top[0]), cmp_usec);
                printf("  top Redis commands by time (all runs):\n"
                       "    %-20s %12s %12s %10s\n",
                       "command", "calls/event", "usec/event", "usec/call");
                for (int i = 0; i < v->ntop && i < 5; i++)
                        printf("    %-20s %12.3f %12.2f %10.2f\n",
                               v->top[i].name, v->top[i].calls / v->top_events,
                               v->top[i].usec / v->top_events,
                               v->top[i].calls > 0
                                   ? v->top[i].usec / v->top[i].calls
                                   : 0);
                if (o->latency) {
                        printf("  event-to-trigger latency:\n");
                        for (int k = 0; k < L__COUNT; k++)
                                print_row(lmetric[k].label, lmetric[k].fmt,
                                          lcolumn_median(
                                              (const double(*)[L__COUNT])v->l,
                                              o->runs, k),
                                          &v->l[0][k], o->runs, L__COUNT);
                }
        }
}

static json_t *figures_json(const double *row, int count, int is_latency) {
        json_t *obj = json_object();
        for (int k = 0; k < count; k++)
                json_object_set_new(obj,
                                    is_latency ? lmetric[k].key : metric[k].key,
                                    json_real(row[k]));
        return obj;
}

static int print_json(const bench_opts_t *o, const char *workload_desc,
                      variant_t *vs, int nv) {
        json_t *root = json_object(), *arr = json_array();
        char *txt;
        json_object_set_new(root, "workload", json_string(workload_desc));
        json_object_set_new(root, "redis_masters",
                            json_integer(o->masters ? o->masters : 1));
        json_object_set_new(root, "redis_cluster",
                            json_boolean(o->masters > 0));
        json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
        json_object_set_new(root, "partitions", json_integer(o->partitions));
        json_object_set_new(root, "runs", json_integer(o->runs));
        for (int j = 0; j < nv; j++) {
                variant_t *v = &vs[j];
                json_t *vo = json_object(), *runs = json_array();
                json_t *med = json_object(), *top = json_array();
                for (int i = 0; i < o->runs; i++)
                        json_array_append_new(
                            runs, figures_json(v->m[i], M__COUNT, 0));
                for (int k = 0; k < M__COUNT; k++)
                        json_object_set_new(
                            med, metric[k].key,
                            json_real(column_median(
                                (const double(*)[M__COUNT])v->m, o->runs, k)));
                qsort(v->top, (size_t)v->ntop, sizeof(v->top[0]), cmp_usec);
                for (int i = 0; i < v->ntop && i < 5; i++)
                        json_array_append_new(
                            top, json_pack("{s:s,s:f,s:f}", "command",
                                           v->top[i].name, "calls_per_event",
                                           v->top[i].calls / v->top_events,
                                           "usec_per_event",
                                           v->top[i].usec / v->top_events));
                json_object_set_new(vo, "reco",
                                    json_string(v->reco ? "on" : "off"));
                json_object_set_new(vo, "median", med);
                json_object_set_new(vo, "runs", runs);
                json_object_set_new(vo, "top_commands", top);
                json_object_set_new(vo, "customers_match",
                                    json_boolean(!v->warn_customers));
                if (o->latency) {
                        json_t *lm = json_object(), *lr = json_array();
                        for (int k = 0; k < L__COUNT; k++)
                                json_object_set_new(
                                    lm, lmetric[k].key,
                                    json_real(lcolumn_median(
                                        (const double(*)[L__COUNT])v->l,
                                        o->runs, k)));
                        for (int i = 0; i < o->runs; i++)
                                json_array_append_new(
                                    lr, figures_json(v->l[i], L__COUNT, 1));
                        json_object_set_new(vo, "latency_median", lm);
                        json_object_set_new(vo, "latency_runs", lr);
                }
                json_array_append_new(arr, vo);
        }
        json_object_set_new(root, "variants", arr);
        txt = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(root);
        if (!txt)
                return -1;
        printf("%s\n", txt);
        free(txt);
        return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                 */
/* ------------------------------------------------------------------ */

static void cpu_model(char *buf, size_t size) {
        char line[256];
        FILE *fp = fopen("/proc/cpuinfo", "r");
        snprintf(buf, size, "unknown");
        if (!fp)
                return;
        while (fgets(line, sizeof(line), fp))
                if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                        snprintf(buf, size, "%s", strchr(line, ':') + 2);
                        buf[strcspn(buf, "\n")] = '\0';
                        break;
                }
        fclose(fp);
}

int ctl_bench_main(int argc, char **argv) {
        bench_opts_t o;
        char err[512], desc[512], cpu[128];
        loy_source_t *src = NULL;
        variant_t *vs = NULL;
        int nv = 0, rc = 1, run_id = 0, prc;
        struct sigaction sa;

        prc = parse_opts(&o, argc, argv, err, sizeof(err));
        if (prc == 1) {
                ctl_bench_usage(stdout);
                return 0;
        }
        if (prc == -1) {
                fprintf(stderr, "bench: %s\n", err);
                ctl_bench_usage(stderr);
                return 2;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_int;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (o.workload == 2) {
                src = loy_source_open(o.data, LOY_SRC_AUTO, err, sizeof(err));
                if (!src) {
                        fprintf(stderr, "bench: %s\n", err);
                        return 1;
                }
                snprintf(desc, sizeof(desc),
                         "W2: %s x %d copies = %" PRId64 " events, %" PRId64
                         " customers",
                         o.data, o.copies,
                         loy_source_stats(src)->events * o.copies,
                         loy_source_stats(src)->customers * o.copies);
        } else {
                snprintf(desc, sizeof(desc),
                         "W1: %" PRId64 " purchases over "
                         "%" PRId64 " customers, seed %" PRIu64,
                         o.n, o.customers, o.seed);
        }
        vs = calloc(VARIANTS, sizeof(*vs));
        if (!vs) {
                fprintf(stderr, "bench: out of memory\n");
                loy_source_close(src);
                return 1;
        }
        if (o.reco_mask & 1)
                vs[nv++].reco = 1;
        if (o.reco_mask & 2)
                vs[nv++].reco = 0;
        cpu_model(cpu, sizeof(cpu));
        if (!o.json) {
                printf("loyaltyctl bench\n  workload   %s\n  kafka      "
                       "librdkafka %s mock cluster, %d input partitions\n"
                       "  loyaltyd   config %s",
                       desc, rd_kafka_version_str(), o.partitions, o.conf_path);
                for (int i = 0; i < o.nxs; i++)
                        printf(" -X %s", o.xs[i]);
                if (o.masters)
                        printf("\n  redis      a Redis Cluster of %d "
                               "masters, no replicas",
                               o.masters);
                else
                        printf("\n  redis      one redis-server");
                printf("\n  machine    %ld cores, %s\n",
                       sysconf(_SC_NPROCESSORS_ONLN), cpu);
                fflush(stdout);
        }
        progress("bench: %s\n", desc);
        for (int j = 0; j < nv; j++) {
                for (int i = 0; i < o.runs; i++)
                        if (run_throughput(&o, src, &vs[j], i, ++run_id,
                                           vs[j].m[i], err, sizeof(err)))
                                goto fail;
                if (o.latency) {
                        double rate =
                            o.rate > 0 ? o.rate
                                       : column_median(
                                             (const double(*)[M__COUNT])vs[j].m,
                                             o.runs, M_EPS) /
                                             2;
                        for (int i = 0; i < o.runs; i++)
                                if (run_latency(&o, src, &vs[j], rate, i,
                                                ++run_id, vs[j].l[i], err,
                                                sizeof(err)))
                                        goto fail;
                }
        }
        if (o.json ? print_json(&o, desc, vs, nv)
                   : (print_table(&o, vs, nv), 0)) {
                fprintf(stderr, "bench: JSON output failed\n");
                goto out;
        }
        rc = 0;
        goto out;
fail:
        /* Ctrl-C reaches loyaltyd and redis-server too (same process
         * group): whatever broke first, the cause is the interruption */
        fprintf(stderr, "bench: FAILED: %s\n",
                bench_running ? err : "interrupted");
out:
        free(vs);
        loy_source_close(src);
        return rc;
}
