/*
 * loyaltyctl forget and expire: erase customers (a shop's answer to an
 * erasure request; customers silent for longer than [privacy] expire.days).
 *
 * Neither deletes anything itself: a tool that deleted keys would race the
 * loyaltyd process that caches and rewrites them. Each erasure is a
 * control message into the customer's own partition of the purchase
 * topic, so the one process that writes the customer applies it in order
 * with the customer's events, exactly once (offset fences), and counts it
 * out of the segment and histogram counts in the same batch. The request
 * names the customer as Redis keys it (its pseudonym under [privacy]
 * pseudonymize), so the raw id travels no further. docs/privacy.md.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "loy_codec.h"
#include "loy_config.h"
#include "loy_kafka.h"
#include "loy_pseudo.h"
#include "loy_time.h"

#define FORGET_MAX 1024 /* ids per forget call */
#define SCAN_COUNT 1000 /* keys per SCAN step of expire */
#define KEY_MAX (LOY_ID_MAX + 1)

/* One erasure to request. */
typedef struct request {
        char kafka_key[KEY_MAX]; /* the shop's id, or the Redis key */
        loy_event_t ev;          /* kind LOY_EV_FORGET, by key */
        int32_t partition;       /* RD_KAFKA_PARTITION_UA: partitioner */
} request_t;

void ctl_forget_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl forget [-c FILE] [-X SECTION.KEY=VALUE]... "
                "[-b BROKERS] [-T MS]\n"
                "                         [-w SECONDS] CUSTOMER_ID...\n"
                "  erases each customer everywhere loyaltyd keeps it (hash, "
                "recommendations,\n"
                "  ranks, segment and histogram counts, timer) and keeps a "
                "record so that\n"
                "  its events up to the erasure time are dropped if they "
                "come again\n"
                "  -c FILE   loyaltyd's config: its Kafka, purchase topic, "
                "Redis and [privacy]\n"
                "  -X K=V    one setting, e.g. -X redis.port=6380\n"
                "  -b        bootstrap servers (default: the config's, else "
                "localhost:9092)\n"
                "  -T MS     erasure time, ms since the epoch (default: now); "
                "events of the\n"
                "            customer up to it are erased, later ones start "
                "a new customer\n"
                "  -w SEC    wait up to SEC seconds for loyaltyd to apply it "
                "(default 60;\n"
                "            0: send and return)\n");
}

void ctl_expire_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl expire [-c FILE] [-X SECTION.KEY=VALUE]... "
                "[-b BROKERS] [-d DAYS] [-n]\n"
                "  erases (as forget does) every customer whose newest event "
                "is more than\n"
                "  DAYS days older than the newest event time loyaltyd "
                "applied; a customer\n"
                "  with an event since is left alone. Run it daily "
                "(examples/systemd/).\n"
                "  -c FILE   loyaltyd's config ([privacy] expire.days, "
                "Kafka, Redis)\n"
                "  -X K=V    one setting, e.g. -X privacy.expire.days=730\n"
                "  -b        bootstrap servers\n"
                "  -d DAYS   instead of privacy.expire.days\n"
                "  -n        only count and list them, request nothing\n");
}

/* The partition number of one of the hash's offset fences ("off:<topic>:
 * <p>"): the partition of the customer's events, which the request must
 * reach; the topics are co-partitioned, so any topic's number will do.
 * RD_KAFKA_PARTITION_UA when the customer has none. */
static int32_t partition_of(redisContext *rc, const char *ns, const char *key) {
        redisReply *r = redisCommand(rc, "HKEYS %s:c:{%s}", ns, key);
        int32_t part = RD_KAFKA_PARTITION_UA;
        for (size_t i = 0;
             r && r->type == REDIS_REPLY_ARRAY && i < r->elements && part < 0;
             i++) {
                const char *f = r->element[i]->str, *colon;
                if (!f || strncmp(f, "off:", 4) || !(colon = strrchr(f, ':')))
                        continue;
                part = (int32_t)atoi(colon + 1);
        }
        if (r)
                freeReplyObject(r);
        return part;
}

/* Produces the requests; 0, or -1 (said on stderr). */
static int send_requests(loy_config_t *conf, const char *tool,
                         const request_t *q, int n) {
        char err[512], value[256];
        rd_kafka_t *producer =
            loy_kafka_producer_new(conf, NULL, NULL, err, sizeof(err));
        int rc = 0;
        if (!producer) {
                fprintf(stderr, "%s: %s\n", tool, err);
                return -1;
        }
        for (int i = 0; i < n && !rc; i++) {
                rd_kafka_resp_err_t e;
                int len = loy_codec_encode_forget(
                    &q[i].ev, value, sizeof(value), err, sizeof(err));
                if (len < 0) {
                        fprintf(stderr, "%s: %s: %s\n", tool, q[i].kafka_key,
                                err);
                        rc = -1;
                        break;
                }
                while (
                    (e = rd_kafka_producev(
                         producer, RD_KAFKA_V_TOPIC(conf->topic_purchase),
                         RD_KAFKA_V_PARTITION(q[i].partition),
                         RD_KAFKA_V_KEY(q[i].kafka_key, strlen(q[i].kafka_key)),
                         RD_KAFKA_V_VALUE(value, (size_t)len),
                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                         RD_KAFKA_V_HEADER(
                             LOY_CODEC_OP_HEADER, LOY_CODEC_OP_FORGET,
                             (ssize_t)strlen(LOY_CODEC_OP_FORGET)),
                         RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(producer, 100);
                if (e) {
                        fprintf(stderr, "%s: %s: %s\n", tool, q[i].kafka_key,
                                rd_kafka_err2str(e));
                        rc = -1;
                }
                rd_kafka_poll(producer, 0);
        }
        if (rd_kafka_flush(producer, 30000) || rd_kafka_outq_len(producer)) {
                fprintf(stderr,
                        "%s: %d requests undelivered to %s (is Kafka "
                        "reachable?)\n",
                        tool, rd_kafka_outq_len(producer),
                        conf->topic_purchase);
                rc = -1;
        }
        rd_kafka_destroy(producer);
        return rc;
}

/* 1 once Redis holds the record of the erasure of key up to at_ms. */
static int applied(redisContext *rc, const char *ns, const char *key,
                   int64_t at_ms) {
        redisReply *r =
            redisCommand(rc, "HGET %s:c:{%s} forgotten_ms", ns, key);
        int done = r && r->type == REDIS_REPLY_STRING &&
                   strtoll(r->str, NULL, 10) >= at_ms;
        if (r)
                freeReplyObject(r);
        return done;
}

/* Waits until every request is applied; the number still pending. */
static int wait_applied(redisContext *rc, const loy_config_t *conf, char **ids,
                        const request_t *q, int n, int wait_s) {
        char *done = calloc((size_t)n, 1);
        int64_t until = ctl_wall_ms() + (int64_t)wait_s * 1000;
        int pending = n;
        if (!done) {
                fprintf(stderr, "forget: out of memory\n");
                return n;
        }
        for (;;) {
                for (int i = 0; i < n; i++)
                        if (!done[i] &&
                            applied(rc, conf->redis_ns, q[i].ev.customer_id,
                                    q[i].ev.forget_ms)) {
                                done[i] = 1;
                                pending--;
                                printf("forgotten %s (record: %s:c:{%s})\n",
                                       ids[i], conf->redis_ns,
                                       q[i].ev.customer_id);
                        }
                if (!pending || ctl_wall_ms() >= until)
                        break;
                ctl_sleep_ms(200);
        }
        for (int i = 0; i < n; i++)
                if (!done[i])
                        fprintf(stderr,
                                "forget: %s: requested, not applied "
                                "within %d s (is loyaltyd running and "
                                "consuming %s?)\n",
                                ids[i], wait_s, conf->topic_purchase);
        free(done);
        return pending;
}

/* -c, -X, -b of both commands. 0, or -1 (said). */
static int common_opt(loy_config_t *conf, const char *tool, int opt,
                      const char **brokers) {
        if (opt == 'b') {
                *brokers = optarg;
                return 0;
        }
        if (opt == 'c' || opt == 'X')
                return ctl_setting(conf, tool, opt, optarg);
        return -1;
}

static int64_t parse_num(const char *tool, int opt, const char *arg,
                         int64_t lo) {
        char *end;
        long long v = strtoll(arg, &end, 10);
        if (*end || end == arg || v < lo) {
                fprintf(stderr,
                        "%s: -%c %s: expected a whole number >= %" PRId64 "\n",
                        tool, opt, arg, lo);
                return -1;
        }
        return v;
}

int ctl_forget_main(int argc, char **argv) {
        const char *brokers = NULL;
        loy_config_t conf;
        request_t *q = NULL;
        redisContext *rc = NULL;
        int64_t at_ms = 0;
        int wait_s = 60, opt, n, status = 1;
        loy_config_defaults(&conf);
        optind = 1;
        while ((opt = getopt(argc, argv, "c:X:b:T:w:h")) != -1) {
                if (opt == 'h') {
                        ctl_forget_usage(stdout);
                        loy_config_free(&conf);
                        return 0;
                }
                if (opt == 'T') {
                        if ((at_ms = parse_num("forget", 'T', optarg, 1)) < 0)
                                goto usage;
                } else if (opt == 'w') {
                        int64_t w = parse_num("forget", 'w', optarg, 0);
                        if (w < 0 || w > 86400)
                                goto usage;
                        wait_s = (int)w;
                } else if (common_opt(&conf, "forget", opt, &brokers)) {
                        goto usage;
                }
        }
        n = argc - optind;
        if (n < 1 || n > FORGET_MAX) {
                if (n > FORGET_MAX)
                        fprintf(stderr, "forget: at most %d ids per call\n",
                                FORGET_MAX);
                goto usage;
        }
        if (!at_ms)
                at_ms = ctl_wall_ms();
        ctl_kafka_brokers(&conf, brokers);
        q = calloc((size_t)n, sizeof(*q));
        rc = q ? ctl_redis_connect(&conf, "forget") : NULL;
        if (!q)
                fprintf(stderr, "forget: out of memory\n");
        if (!rc)
                goto out;
        for (int i = 0; i < n; i++) {
                char **ids = argv + optind;
                if (strlen(ids[i]) >= KEY_MAX) {
                        fprintf(stderr, "forget: %s: longer than %d bytes\n",
                                ids[i], LOY_ID_MAX);
                        goto out;
                }
                snprintf(q[i].kafka_key, sizeof(q[i].kafka_key), "%s", ids[i]);
                q[i].ev.kind = LOY_EV_FORGET;
                q[i].ev.forget_by_key = 1;
                q[i].ev.forget_ms = at_ms;
                if (ctl_customer_key(&conf, "forget", ids[i],
                                     q[i].ev.customer_id,
                                     sizeof(q[i].ev.customer_id)))
                        goto out;
                /* where its events are; a customer Redis does not know goes
                 * where the producers' partitioner (-X kafka.partitioner)
                 * would put its events */
                q[i].partition =
                    partition_of(rc, conf.redis_ns, q[i].ev.customer_id);
        }
        if (send_requests(&conf, "forget", q, n))
                goto out;
        printf("requested the erasure of %d customer%s up to %" PRId64
               " on %s\n",
               n, n == 1 ? "" : "s", at_ms, conf.topic_purchase);
        status =
            wait_s == 0 || !wait_applied(rc, &conf, argv + optind, q, n, wait_s)
                ? 0
                : 1;
out:
        if (rc)
                redisFree(rc);
        free(q);
        loy_config_free(&conf);
        return status;
usage:
        ctl_forget_usage(stderr);
        loy_config_free(&conf);
        return 2;
}

/* The newest event time loyaltyd applied on any partition (<ns>:clock),
 * 0 when none. */
static int64_t clock_of(redisContext *rc, const char *ns) {
        redisReply *r = redisCommand(rc, "HVALS %s:clock", ns);
        int64_t newest = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
             i++) {
                int64_t v = r->element[i]->str
                                ? strtoll(r->element[i]->str, NULL, 10)
                                : 0;
                if (v > newest)
                        newest = v;
        }
        if (r)
                freeReplyObject(r);
        return newest;
}

/* Customers of one SCAN step silent since before cutoff_ms, appended to
 * *q (grown); -1 out of memory or on a Redis error (said). */
static int collect_silent(redisContext *rc, const loy_config_t *conf,
                          redisReply *keys, int64_t cutoff_ms, request_t **q,
                          int *n, int *cap) {
        size_t plen = strlen(conf->redis_ns) + 4; /* "<ns>:c:{" */
        for (size_t i = 0; i < keys->elements; i++)
                redisAppendCommand(rc, "HGET %s last_event_ms",
                                   keys->element[i]->str);
        for (size_t i = 0; i < keys->elements; i++) {
                redisReply *r;
                const char *k = keys->element[i]->str;
                size_t klen = strlen(k);
                int64_t last;
                request_t *x;
                if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
                        fprintf(stderr, "expire: %s\n", rc->errstr);
                        return -1;
                }
                last = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                     : 0;
                freeReplyObject(r);
                /* a record of an erasure has no last_event_ms */
                if (last <= 0 || last > cutoff_ms || klen <= plen + 1 ||
                    klen - plen - 1 >= KEY_MAX)
                        continue;
                if (*n == *cap) {
                        int ncap = *cap ? *cap * 2 : 1024;
                        request_t *g = realloc(*q, sizeof(*g) * (size_t)ncap);
                        if (!g) {
                                fprintf(stderr, "expire: out of memory\n");
                                return -1;
                        }
                        *q = g;
                        *cap = ncap;
                }
                x = &(*q)[(*n)++];
                memset(x, 0, sizeof(*x));
                memcpy(x->ev.customer_id, k + plen, klen - plen - 1);
                snprintf(x->kafka_key, sizeof(x->kafka_key), "%s",
                         x->ev.customer_id);
                x->ev.kind = LOY_EV_FORGET;
                x->ev.forget_by_key = 1;
                x->ev.forget_if_silent = 1;
                /* its events up to the newest: one that came meanwhile
                 * keeps it (if_silent) */
                x->ev.forget_ms = last;
        }
        return 0;
}

int ctl_expire_main(int argc, char **argv) {
        const char *brokers = NULL;
        loy_config_t conf;
        request_t *q = NULL;
        redisContext *rc = NULL;
        redisReply *r = NULL;
        char cursor[32] = "0", pattern[128];
        int64_t days = -1, newest, cutoff;
        int opt, n = 0, cap = 0, dry = 0, status = 1, nscanned = 0;
        loy_config_defaults(&conf);
        optind = 1;
        while ((opt = getopt(argc, argv, "c:X:b:d:nh")) != -1) {
                if (opt == 'h') {
                        ctl_expire_usage(stdout);
                        loy_config_free(&conf);
                        return 0;
                }
                if (opt == 'd') {
                        if ((days = parse_num("expire", 'd', optarg, 1)) < 0)
                                goto usage;
                } else if (opt == 'n') {
                        dry = 1;
                } else if (common_opt(&conf, "expire", opt, &brokers)) {
                        goto usage;
                }
        }
        if (optind != argc)
                goto usage;
        if (days < 0)
                days = conf.expire_days;
        if (days <= 0) {
                fprintf(stderr, "expire: no expiry: set [privacy] "
                                "expire.days in the config or give -d DAYS\n");
                loy_config_free(&conf);
                return 2;
        }
        ctl_kafka_brokers(&conf, brokers);
        if (!(rc = ctl_redis_connect(&conf, "expire")))
                goto out;
        newest = clock_of(rc, conf.redis_ns);
        if (!newest) {
                printf("expire: no event applied yet (%s:clock is empty): "
                       "nothing to expire\n",
                       conf.redis_ns);
                status = 0;
                goto out;
        }
        cutoff = newest - days * LOY_MS_PER_DAY;
        snprintf(pattern, sizeof(pattern), "%s:c:{*}", conf.redis_ns);
        do {
                r = redisCommand(rc, "SCAN %s MATCH %s COUNT %d", cursor,
                                 pattern, SCAN_COUNT);
                if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                        fprintf(stderr, "expire: SCAN: %s\n",
                                r && r->str ? r->str : rc->errstr);
                        goto out;
                }
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                nscanned += (int)r->element[1]->elements;
                if (collect_silent(rc, &conf, r->element[1], cutoff, &q, &n,
                                   &cap))
                        goto out;
                freeReplyObject(r);
                r = NULL;
        } while (strcmp(cursor, "0"));
        for (int i = 0; i < n; i++)
                q[i].partition =
                    partition_of(rc, conf.redis_ns, q[i].ev.customer_id);
        printf("%d of %d customers silent for more than %" PRId64
               " days before %" PRId64 " (the newest event time applied)\n",
               n, nscanned, days, newest);
        if (dry) {
                for (int i = 0; i < n && i < 20; i++)
                        printf("  %s (last event %" PRId64 ")\n",
                               q[i].ev.customer_id, q[i].ev.forget_ms);
                status = 0;
                goto out;
        }
        if (n && send_requests(&conf, "expire", q, n))
                goto out;
        printf("requested %d erasures on %s; loyaltyd applies them in "
               "order (loyaltyd_customers_forgotten_total)\n",
               n, conf.topic_purchase);
        status = 0;
out:
        if (r)
                freeReplyObject(r);
        if (rc)
                redisFree(rc);
        free(q);
        loy_config_free(&conf);
        return status;
usage:
        ctl_expire_usage(stderr);
        loy_config_free(&conf);
        return 2;
}
