/*
 * loyaltyctl demo: the embedded default. Starts librdkafka's mock Kafka
 * cluster (in this process, real protocol on loopback) and a private
 * redis-server, runs the real loyaltyd binary against them, replays the
 * whole Online Retail file, and prints what happened.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_http.h"
#include "loy_kafka.h"
#include "loy_store.h"

#define PARTITIONS 8

static volatile int demo_running = 1;

static void on_int(int sig) {
        (void)sig;
        demo_running = 0;
}

typedef struct demo {
        char dir[256];
        ctl_redis_t redis;
        ctl_kafka_t kafka;
        pid_t loyaltyd;
        int http_port; /* loyaltyd's /metrics /healthz /readyz */
        redisContext *rc;
} demo_t;

static long long stat_ll(redisContext *c, const char *field) {
        redisReply *r = redisCommand(c, "HGET loy:stats %s", field);
        long long v = 0;
        if (r && r->type == REDIS_REPLY_STRING)
                v = atoll(r->str);
        if (r)
                freeReplyObject(r);
        return v;
}

static double stat_d(redisContext *c, const char *field) {
        redisReply *r = redisCommand(c, "HGET loy:stats %s", field);
        double v = 0;
        if (r && r->type == REDIS_REPLY_STRING)
                v = atof(r->str);
        if (r)
                freeReplyObject(r);
        return v;
}

/* Extra -X settings for loyaltyd, from the demo's own -X. */
static const char *extra_x[8];
static int nextra_x;

/* Waits until loyaltyd's /readyz says ready (partitions assigned, Redis
 * answering), up to timeout_ms; its seconds, or -1 (not ready, or it
 * died). */
static double wait_ready(const demo_t *d, int timeout_ms) {
        int64_t t0 = ctl_wall_ms();
        while (ctl_wall_ms() - t0 < timeout_ms && demo_running) {
                if (waitpid(d->loyaltyd, NULL, WNOHANG) == d->loyaltyd)
                        return -1;
                if (loy_http_request(d->http_port, "GET", "/readyz", 1000,
                                     NULL) == 200)
                        return (double)(ctl_wall_ms() - t0) / 1e3;
                ctl_sleep_ms(100);
        }
        return -1;
}

static pid_t spawn_loyaltyd(const demo_t *d, const char *conf_path) {
        char log[300], xb[300], xr[64], xh[64];
        const char *xs[CTL_SPAWN_X_MAX];
        int n = 0;
        snprintf(log, sizeof(log), "%s/loyaltyd.log", d->dir);
        snprintf(xb, sizeof(xb), "kafka.bootstrap.servers=%s",
                 d->kafka.bootstraps);
        snprintf(xr, sizeof(xr), "redis.port=%d", d->redis.port);
        snprintf(xh, sizeof(xh), "http.listen=127.0.0.1:%d", d->http_port);
        xs[n++] = xb;
        xs[n++] = xr;
        xs[n++] = xh;
        xs[n++] = "clock.idle.ms=2000";
        for (int i = 0; i < nextra_x; i++)
                xs[n++] = extra_x[i];
        return ctl_loyaltyd_spawn(NULL, conf_path, log, xs, n);
}

typedef struct tally {
        char name[64];
        long long n, holdout;
} tally_t;

static void tally_add(tally_t *t, int *nt, int max, const char *name,
                      int holdout) {
        int i;
        for (i = 0; i < *nt; i++)
                if (!strcmp(t[i].name, name))
                        break;
        if (i == *nt) {
                if (*nt == max)
                        return;
                snprintf(t[i].name, sizeof(t[i].name), "%s", name);
                t[i].n = t[i].holdout = 0;
                (*nt)++;
        }
        t[i].n++;
        t[i].holdout += holdout;
}

/* Reads a whole topic from the beginning with a plain assignment (no group
 * join). For triggers, tallies rules; for dead letters, reasons. */
static long long read_topic(const demo_t *d, const char *topic, int partitions,
                            int triggers, tally_t *t, int *nt, int max,
                            loy_codec_t *codec) {
        char err[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_t *rk;
        long long n = 0;
        int eof = 0;
        rd_kafka_conf_set(kc, "bootstrap.servers", d->kafka.bootstraps, err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "group.id", "loyaltyctl-demo", err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.partition.eof", "true", err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        rd_kafka_poll_set_consumer(rk);
        parts = rd_kafka_topic_partition_list_new(partitions);
        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        for (int idle = 0; eof < partitions && idle < 50;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eof++;
                } else if (!m->err && triggers) {
                        char *js = loy_codec_trigger_to_json(
                            codec, m->payload, m->len, err, sizeof(err));
                        json_t *root = js ? json_loads(js, 0, NULL) : NULL;
                        json_t *rule = json_object_get(root, "rule");
                        json_t *hold = json_object_get(root, "holdout");
                        tally_add(t, nt, max,
                                  json_is_string(rule) ? json_string_value(rule)
                                                       : "(undecodable)",
                                  json_is_true(hold));
                        json_decref(root);
                        free(js);
                        n++;
                } else if (!m->err) {
                        const void *val = NULL;
                        size_t sz = 0;
                        rd_kafka_headers_t *h = NULL;
                        char reason[64] = "(no reason)";
                        if (!rd_kafka_message_headers(m, &h) &&
                            !rd_kafka_header_get_last(h, "loy.reason", &val,
                                                      &sz))
                                snprintf(reason, sizeof(reason), "%.*s",
                                         (int)(sz < 60 ? sz : 60),
                                         (const char *)val);
                        /* group reasons by their first words */
                        {
                                char *digit = strpbrk(reason, "0123456789");
                                if (digit)
                                        strcpy(digit, "N...");
                        }
                        tally_add(t, nt, max, reason, 0);
                        n++;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

typedef struct risk {
        char id[LOY_ID_MAX + 1];
        double churn, monetary, clv;
        long long freq;
        char segment[32];
} risk_t;

static int cmp_risk(const void *a, const void *b) {
        double x = ((const risk_t *)a)->monetary * ((const risk_t *)a)->churn;
        double y = ((const risk_t *)b)->monetary * ((const risk_t *)b)->churn;
        return x < y ? 1 : x > y ? -1 : 0;
}

/* Valuable customers most likely lost: churn_prob >= 0.5, by spend at risk
 * (monetary x churn_prob). Pipelined HMGETs. */
static void print_at_risk(redisContext *c) {
        redisReply *ids = redisCommand(
            c, "ZREVRANGEBYSCORE loy:rank:churn +inf 0.5 LIMIT 0 5000");
        risk_t *rs;
        size_t n;
        if (!ids || ids->type != REDIS_REPLY_ARRAY || !ids->elements) {
                printf("  (none above churn probability 0.5)\n");
                if (ids)
                        freeReplyObject(ids);
                return;
        }
        n = ids->elements;
        rs = calloc(n, sizeof(*rs));
        if (!rs) {
                freeReplyObject(ids);
                return;
        }
        for (size_t i = 0; i < n; i++)
                redisAppendCommand(c,
                                   "HMGET loy:c:{%s} churn_prob monetary "
                                   "clv frequency segment_name",
                                   ids->element[i]->str);
        for (size_t i = 0; i < n; i++) {
                redisReply *r = NULL;
                snprintf(rs[i].id, sizeof(rs[i].id), "%s",
                         ids->element[i]->str);
                if (redisGetReply(c, (void **)&r) == REDIS_OK && r &&
                    r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
                    r->element[4]->type == REDIS_REPLY_STRING) {
                        rs[i].churn = atof(r->element[0]->str);
                        rs[i].monetary = atof(r->element[1]->str);
                        rs[i].clv = atof(r->element[2]->str);
                        rs[i].freq = atoll(r->element[3]->str);
                        snprintf(rs[i].segment, sizeof(rs[i].segment), "%s",
                                 r->element[4]->str);
                }
                if (r)
                        freeReplyObject(r);
        }
        qsort(rs, n, sizeof(*rs), cmp_risk);
        printf("  %-10s %8s %10s %6s %9s  %s\n", "customer", "churn", "spent",
               "days", "clv", "segment");
        for (size_t i = 0; i < n && i < 10; i++)
                printf("  %-10s %8.3f %10.2f %6lld %9.2f  %s\n", rs[i].id,
                       rs[i].churn, rs[i].monetary, rs[i].freq, rs[i].clv,
                       rs[i].segment);
        printf("  (%zu customers have churn probability >= 0.5)\n", n);
        free(rs);
        freeReplyObject(ids);
}

static void print_hash(redisContext *c, const char *key, const char *indent) {
        redisReply *r = redisCommand(c, "HGETALL %s", key);
        if (r && r->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i + 1 < r->elements; i += 2) {
                        const char *v = r->element[i + 1]->str;
                        /* HINCRBYFLOAT sums print with 17 digits */
                        if (strchr(v, '.') && strlen(v) > 12)
                                printf("%s%-26s %.2f\n", indent,
                                       r->element[i]->str, atof(v));
                        else
                                printf("%s%-26s %s\n", indent,
                                       r->element[i]->str, v);
                }
        if (r)
                freeReplyObject(r);
}

/* A KPI field summed over every day (the demo's namespace is "loy"). */
static long long kpi_total(redisContext *c, const char *kind,
                           const char *rule) {
        long long sum = 0;
        redisReply *r = redisCommand(
            c, "EVAL %s 1 loy:" LOY_KEY_KPI_DAYS " loy:" LOY_KEY_KPI " %s:%s",
            "local s = 0 "
            "for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do "
            "s = s + (tonumber(redis.call('HGET', ARGV[1] .. d, ARGV[2])) "
            "or 0) end return s",
            kind, rule);
        if (r && r->type == REDIS_REPLY_INTEGER)
                sum = r->integer;
        if (r)
                freeReplyObject(r);
        return sum;
}

static void teardown(demo_t *d) {
        char cmd[300];
        if (d->loyaltyd > 0) {
                kill(d->loyaltyd, SIGTERM);
                waitpid(d->loyaltyd, NULL, 0);
                d->loyaltyd = 0;
        }
        if (d->rc)
                redisFree(d->rc);
        d->rc = NULL;
        ctl_redis_stop(&d->redis);
        ctl_kafka_stop(&d->kafka);
        if (d->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "demo: could not remove %s\n", d->dir);
        }
}

void ctl_demo_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl demo [-d DATA] [-c CONFIG] [-n LIMIT] "
                    "[-k] [-X k=v]...\n"
                    "  -k  keep Kafka, Redis and loyaltyd running afterwards "
                    "(Ctrl-C stops)\n"
                    "  -X  a loyaltyd setting, e.g. -X reco.enabled=no\n");
}

int ctl_demo_main(int argc, char **argv) {
        const char *data =
            LOY_SOURCE_DIR "/../shared/data/online_retail.csv.gz";
        const char *conf_path = LOY_SOURCE_DIR "/config/loyaltyd.conf";
        int keep = 0, opt, rc = 1;
        int64_t limit = 0;
        demo_t d;
        char err[512];
        loy_source_t *src = NULL;
        loy_codec_t *codec = NULL;
        rd_kafka_t *producer = NULL;
        loy_config_t conf;
        int64_t produced, t0, t_done = 0;
        double replay_s;
        struct timeval tv = {2, 0};
        tally_t rules[32], reasons[32];
        int nrules = 0, nreasons = 0;
        long long ntrig, ndead, peak_kb = 0;

        while ((opt = getopt(argc, argv, "d:c:n:kX:")) != -1) {
                switch (opt) {
                case 'X':
                        if (nextra_x < 8)
                                extra_x[nextra_x++] = optarg;
                        break;
                case 'd':
                        data = optarg;
                        break;
                case 'c':
                        conf_path = optarg;
                        break;
                case 'n':
                        limit = atoll(optarg);
                        break;
                case 'k':
                        keep = 1;
                        break;
                default:
                        ctl_demo_usage(stderr);
                        return 2;
                }
        }
        memset(&d, 0, sizeof(d));
        loy_config_defaults(&conf);
        signal(SIGINT, on_int);
        signal(SIGTERM, on_int);
        signal(SIGPIPE, SIG_IGN);

        printf("loyaltyd demo\n");
        src = loy_source_open(data, LOY_SRC_AUTO, err, sizeof(err));
        if (!src) {
                fprintf(stderr, "demo: %s\n", err);
                goto out;
        }
        {
                const loy_source_stats_t *st = loy_source_stats(src);
                printf("  data      %s\n            %" PRId64
                       " rows -> %" PRId64 " purchase events (%" PRId64
                       " returns), %" PRId64 " customers; %" PRId64
                       " rows without a "
                       "customer id skipped\n",
                       data, st->rows, st->events, st->returns, st->customers,
                       st->skipped_no_customer);
        }
        snprintf(d.dir, sizeof(d.dir), "/tmp/loyaltyd-demo-XXXXXX");
        if (!mkdtemp(d.dir)) {
                d.dir[0] = '\0';
                fprintf(stderr, "demo: mkdtemp failed\n");
                goto out;
        }
        if (ctl_redis_start(&d.redis, d.dir, err, sizeof(err)) == -1 ||
            ctl_kafka_start(&d.kafka, PARTITIONS, err, sizeof(err)) == -1) {
                fprintf(stderr, "demo: %s\n", err);
                goto out;
        }
        d.rc = redisConnectWithTimeout("127.0.0.1", d.redis.port, tv);
        if (!d.rc || d.rc->err) {
                fprintf(stderr, "demo: redis connect failed\n");
                goto out;
        }
        printf("  kafka     librdkafka mock cluster at %s (%d partitions)\n"
               "  redis     private redis-server on 127.0.0.1:%d (%s)\n",
               d.kafka.bootstraps, PARTITIONS, d.redis.port, d.dir);
        d.http_port = ctl_free_port();
        d.loyaltyd = spawn_loyaltyd(&d, conf_path);
        if (d.loyaltyd <= 0) {
                fprintf(stderr, "demo: could not start loyaltyd\n");
                goto out;
        }
        printf("  loyaltyd  pid %d, config %s, log %s/loyaltyd.log\n"
               "            http://127.0.0.1:%d/metrics (and /healthz, "
               "/readyz)\n",
               (int)d.loyaltyd, conf_path, d.dir, d.http_port);
        fflush(stdout);

        loy_config_set(&conf, "demo", "kafka.bootstrap.servers",
                       d.kafka.bootstraps, err, sizeof(err));
        codec = loy_codec_create(NULL, err, sizeof(err));
        producer =
            codec ? loy_kafka_producer_new(&conf, NULL, NULL, err, sizeof(err))
                  : NULL;
        if (!producer) {
                fprintf(stderr, "demo: %s\n", err);
                goto out;
        }
        /* loyaltyd consumes while we produce: the mock cluster keeps only a
         * few MiB per partition (DESIGN.md, known traps) */
        t0 = ctl_wall_ms();
        produced = ctl_replay(producer, codec, src, "purchases", 0, limit,
                              &demo_running, err, sizeof(err));
        if (produced < 0 || rd_kafka_flush(producer, 60000)) {
                fprintf(stderr, "demo: replay: %s\n",
                        produced < 0 ? err : "undelivered messages");
                goto out;
        }
        /* bad input, on purpose, to show the dead-letter path */
        {
                static const char *const bad[] = {
                    "this is not an event",
                    "{\"event_id\":\"demo-bad-1\",\"ts\":1323419400000,"
                    "\"order_id\":\"x\",\"lines\":[{\"sku\":\"A\","
                    "\"quantity\":1,\"unit_price\":1}]}",
                    "{\"event_id\":\"demo-bad-2\",\"customer_id\":"
                    "\"12346\",\"ts\":1323419400000,\"order_id\":"
                    "\"x\",\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
                    "\"unit_price\":-11062.06}]}"};
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                        if (loy_kafka_produce(producer, "purchases", "demo", 4,
                                              bad[i], strlen(bad[i]), NULL, err,
                                              sizeof(err)) == 0)
                                produced++;
                rd_kafka_flush(producer, 10000);
                printf("  (and 3 malformed messages, sent on purpose to show "
                       "the dead-letter path)\n");
        }
        replay_s = (double)(ctl_wall_ms() - t0) / 1e3;
        printf("\nreplayed %" PRId64 " events in %.1f s; waiting for "
               "loyaltyd to catch up ...\n",
               produced, replay_s);
        fflush(stdout);
        {
                long long last_timers = -1;
                int stable = 0;
                while (demo_running) {
                        long long in = stat_ll(d.rc, "events_in");
                        long long timers = stat_ll(d.rc, "timers_fired");
                        int status;
                        if (waitpid(d.loyaltyd, &status, WNOHANG) ==
                            d.loyaltyd) {
                                d.loyaltyd = 0;
                                fprintf(stderr,
                                        "demo: loyaltyd exited; see "
                                        "%s/loyaltyd.log\n",
                                        d.dir);
                                keep = 1; /* leave the log to read */
                                goto out;
                        }
                        if (in >= produced && !t_done)
                                t_done = ctl_wall_ms();
                        /* then let the silence timers catch up with the
                         * clock once every partition has gone idle */
                        if (t_done && timers == last_timers)
                                stable++;
                        else
                                stable = 0;
                        last_timers = timers;
                        if (stable >= 6)
                                break;
                        ctl_sleep_ms(500);
                }
        }
        if (!demo_running)
                goto out;
        peak_kb = ctl_peak_rss_kb(d.loyaltyd);
        kill(d.loyaltyd, SIGTERM);
        waitpid(d.loyaltyd, NULL, 0);
        d.loyaltyd = 0;

        ntrig =
            read_topic(&d, "reward-triggers", 4, 1, rules, &nrules, 32, codec);
        ndead = read_topic(&d, "loyaltyd-deadletter", 2, 0, reasons, &nreasons,
                           32, codec);
        printf("\n== events\n");
        printf("  consumed           %lld\n", stat_ll(d.rc, "events_in"));
        printf("  applied            %lld\n", stat_ll(d.rc, "events_applied"));
        printf("  duplicates skipped %lld\n",
               stat_ll(d.rc, "events_skipped_dup"));
        printf("  dead-lettered      %lld (topic loyaltyd-deadletter: %lld)"
               "\n",
               stat_ll(d.rc, "dead_lettered"), ndead);
        for (int i = 0; i < nreasons; i++)
                printf("    %5lld  %s\n", reasons[i].n, reasons[i].name);
        printf("  silence timers     %lld fired\n",
               stat_ll(d.rc, "timers_fired"));
        {
                /* from loyaltyd's first batch: the consumer-group join
                 * (~3 s on the mock cluster) is not processing time */
                double first = stat_d(d.rc, "first_batch_wall_ms");
                double s = first > 0 ? ((double)t_done - first) / 1e3
                                     : (double)(t_done - t0) / 1e3;
                printf("  throughput         %.0f events/s wall (first batch "
                       "to caught up, %.1f s); %.0f events/s of loyaltyd "
                       "busy time\n",
                       (double)produced / (s > 0 ? s : 1), s,
                       stat_d(d.rc, "events_per_s"));
        }
        printf("  batch latency      p50 %.1f ms, p99 %.1f ms (batches of up "
               "to 1000 events)\n",
               stat_d(d.rc, "batch_ms_p50"), stat_d(d.rc, "batch_ms_p99"));
        printf("  loyaltyd memory    %.1f MiB peak RSS\n", peak_kb / 1024.0);
        printf("\n== customers per segment (loy:{agg}:seg)\n");
        print_hash(d.rc, "loy:{agg}:seg", "  ");
        printf("\n== reward triggers on topic reward-triggers: %lld\n", ntrig);
        for (int i = 0; i < nrules; i++) {
                long long trig = kpi_total(d.rc, "triggers", rules[i].name),
                          conv = kpi_total(d.rc, "converted", rules[i].name),
                          hold = kpi_total(d.rc, "holdout", rules[i].name),
                          hconv = kpi_total(d.rc, "holdout_converted",
                                            rules[i].name);
                printf("  %-18s %6lld  (%lld in the holdout group); bought "
                       "while the reward was valid: %.1f%% (holdout: ",
                       rules[i].name, rules[i].n, rules[i].holdout,
                       trig ? 100.0 * (double)conv / (double)trig : 0.0);
                if (hold)
                        printf("%.1f%%)\n",
                               100.0 * (double)hconv / (double)hold);
                else
                        printf("none)\n");
        }
        printf("\n== most valuable customers at risk (loy:rank:churn)\n");
        print_at_risk(d.rc);
        {
                redisReply *r = redisCommand(
                    d.rc, "ZREVRANGE loy:c:{17850}:recs 0 4 WITHSCORES");
                if (r && r->type == REDIS_REPLY_ARRAY && r->elements) {
                        printf("\n== recommended next items for customer "
                               "17850 (loy:c:{17850}:recs)\n");
                        for (size_t i = 0; i + 1 < r->elements; i += 2)
                                printf("  %-10s %.3f\n", r->element[i]->str,
                                       atof(r->element[i + 1]->str));
                }
                if (r)
                        freeReplyObject(r);
        }
        printf("\n== last day's KPIs (loy:{agg}:kpi:2011-12-09)\n");
        print_hash(d.rc, "loy:{agg}:kpi:2011-12-09", "  ");
        rc = 0;
        printf("\n== keep exploring\n"
               "  loyaltyctl demo -k        keeps Kafka, Redis and loyaltyd "
               "running after the summary, then:\n"
               "  redis-cli -p PORT HGETALL 'loy:c:{17850}'\n"
               "  redis-cli -p PORT ZREVRANGE loy:rank:clv 0 9 WITHSCORES\n"
               "  build/loyaltyctl inspect -p PORT 17850\n"
               "  build/loyaltyctl triggers -b BOOTSTRAP\n"
               "  kcat -b BOOTSTRAP -L\n"
               "  curl -s METRICS | grep -v '^#'   (docs/operations.md)\n"
               "  build/loyaltyctl dashboard -X redis.port=PORT   then open "
               "http://127.0.0.1:8090/ (docs/dashboard.md)\n"
               "  docs/redis-keys.md and docs/events.md explain every key "
               "and field.\n");
        if (keep) {
                char xb[300], xr[64];
                snprintf(xb, sizeof(xb), "%s", d.kafka.bootstraps);
                snprintf(xr, sizeof(xr), "%d", d.redis.port);
                double ready;
                d.loyaltyd = spawn_loyaltyd(&d, conf_path);
                printf("\nloyaltyd pid %d started again; waiting until it "
                       "is ready (/readyz) ...\n",
                       (int)d.loyaltyd);
                fflush(stdout);
                /* the group waits for the member that left to time out */
                ready = wait_ready(&d, 120000);
                if (ready < 0)
                        printf("not ready after 120 s; see %s/loyaltyd.log\n",
                               d.dir);
                printf("\nrunning%s: PORT=%s BOOTSTRAP=%s METRICS="
                       "http://127.0.0.1:%d/metrics (loyaltyd pid %d). "
                       "Ctrl-C to stop.\n",
                       ready < 0 ? " (not ready yet)" : ", ready", xr, xb,
                       d.http_port, (int)d.loyaltyd);
                fflush(stdout);
                while (demo_running)
                        ctl_sleep_ms(200);
                keep = 0;
        }
out:
        if (producer)
                rd_kafka_destroy(producer);
        if (codec)
                loy_codec_destroy(codec);
        loy_source_close(src);
        loy_config_free(&conf);
        if (keep && d.dir[0]) {
                /* loyaltyd died: keep its log */
                if (d.rc)
                        redisFree(d.rc);
                d.rc = NULL;
                ctl_redis_stop(&d.redis);
                ctl_kafka_stop(&d.kafka);
                return rc;
        }
        teardown(&d);
        return rc;
}
