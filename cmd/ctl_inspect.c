/* loyaltyctl inspect, triggers, fields: looking at what loyaltyd made. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_feat.h"
#include "loy_kafka.h"
#include "loy_rconn.h"
#include "loy_store.h"

/* Fields as the engine holds them (decoded from the packed state; the
 * hash's readable view has only some), derived ones at the customer's
 * scoring time. */
static void print_group(const loy_cust_t *c, const char *title,
                        const char *const *fields) {
        int64_t at = c->scored_ms ? c->scored_ms : c->last_event_ms;
        char v[LOY_FIELD_TEXT_MAX];
        printf("%s\n", title);
        for (int i = 0; fields[i]; i++) {
                const loy_field_t *f = loy_feat_field_find(fields[i]);
                size_t len = strlen(fields[i]);
                char when[40] = "";
                long long ms;
                if (!f ||
                    loy_feat_field_format(c, f, at, NULL, v, sizeof(v)) < 0)
                        continue;
                /* event times are epoch ms in Redis; a reader wants a
                 * date beside them */
                ms = atoll(v);
                if (len > 3 && !strcmp(fields[i] + len - 3, "_ms") && ms > 0) {
                        time_t t = (time_t)(ms / 1000);
                        struct tm tm;
                        if (gmtime_r(&t, &tm))
                                strftime(when, sizeof(when),
                                         "   (%Y-%m-%d %H:%M:%S UTC)", &tm);
                }
                printf("  %-20s %s%s\n", fields[i], v, when);
        }
}

/* The customer of an HGETALL reply. -1 with a message when it does not
 * read. */
static int decode(const redisReply *r, loy_cust_t *c, const char *id) {
        const char *bad;
        loy_feat_init(c, id);
        if (loy_store_cust_from_reply(r, c, &bad) == 0)
                return 0;
        fprintf(stderr, "inspect: customer %s: field %s does not read\n", id,
                bad);
        return -1;
}

void ctl_inspect_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl inspect [-c FILE] [-X redis.KEY=VALUE]... "
                "[-H HOST] [-p PORT]\n"
                "                          [-n NAMESPACE] CUSTOMER_ID\n"
                "  -c FILE   take [redis] from this loyaltyd config file "
                "(host, port,\n"
                "            namespace, user, password.file, db ...)\n"
                "  -X K=V    one setting, e.g. -X redis.password.file=/etc/"
                "loyaltyd/redis.pw\n"
                "  -H HOST   redis.host (127.0.0.1)\n"
                "  -p PORT   redis.port (6379)\n"
                "  -n NS     redis.namespace (loy)\n");
}

int ctl_inspect_main(int argc, char **argv) {
        static const char *const scores[] = {"segment_name",
                                             "loyalty_group_name",
                                             "loyalty_score",
                                             "r_score",
                                             "f_score",
                                             "m_score",
                                             "p_alive",
                                             "churn_prob",
                                             "exp_purchases",
                                             "clv",
                                             "tier_name",
                                             "points",
                                             "scored_ms",
                                             "next_check_ms",
                                             NULL};
        static const char *const buying[] = {"first_purchase_ms",
                                             "last_purchase_ms",
                                             "recency_days",
                                             "T_days",
                                             "frequency",
                                             "orders",
                                             "x",
                                             "t_x_days",
                                             "monetary",
                                             "gross_value",
                                             "aov",
                                             "mean_repeat_value",
                                             "returns",
                                             "return_value",
                                             "ipt_mean_days",
                                             "ipt_var_days",
                                             "dec_purchases_now",
                                             "dec_spend_now",
                                             NULL};
        static const char *const browsing[] = {
            "views",          "carts",        "cart_removes",
            "searches",       "wishlists",    "sessions",
            "last_browse_ms", "recent_views", NULL};
        const char *ns;
        int opt, rc = 1;
        redisContext *c;
        redisReply *r;
        loy_cust_t cust;
        loy_config_t conf;
        char id[LOY_ID_MAX + 1];

        loy_config_defaults(&conf);
        optind = 1;
        while ((opt = getopt(argc, argv, "c:X:H:p:n:h")) != -1) {
                if (opt == 'h') {
                        ctl_inspect_usage(stdout);
                        loy_config_free(&conf);
                        return 0;
                }
                if (opt == '?' || ctl_setting(&conf, "inspect", opt, optarg)) {
                        loy_config_free(&conf);
                        goto usage;
                }
        }
        if (optind != argc - 1) {
                loy_config_free(&conf);
                goto usage;
        }
        /* with a config that pseudonymizes, the shop's own id is given
         * and its pseudonym looked up */
        if (ctl_customer_key(&conf, "inspect", argv[optind], id, sizeof(id))) {
                loy_config_free(&conf);
                return 1;
        }
        c = ctl_redis_connect(&conf, "inspect");
        ns = conf.redis_ns;
        if (!c) {
                loy_config_free(&conf);
                return 1;
        }
        r = redisCommand(c, "HGETALL %s:c:{%s}", ns, id);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
                const char *e = r && r->str ? r->str : c->errstr;
                fprintf(stderr, "inspect: %s%s\n", e,
                        loy_rconn_is_auth_error(e)
                            ? " (give redis.user and redis.password.file: "
                              "-c loyaltyd.conf, or -X)"
                            : "");
        } else if (r->elements == 0) {
                fprintf(stderr, "inspect: no customer %s in %s:c:{%s}\n", id,
                        ns, id);
        } else if (decode(r, &cust, id) == 0) {
                printf("customer %s   (redis-cli -p %d HGETALL '%s:c:{%s}')"
                       "\n",
                       argv[optind], conf.redis_port, ns, id);
                print_group(&cust, "scores", scores);
                print_group(&cust, "purchases", buying);
                print_group(&cust, "browsing", browsing);
                printf("applied offsets and cooldowns\n");
                for (int i = 0; i < cust.nslots; i++)
                        printf("  %-20s %" PRId64 "\n", cust.slots[i].name,
                               cust.slots[i].value);
                rc = 0;
        }
        if (r)
                freeReplyObject(r);
        if (rc == 0) {
                r = redisCommand(c, "ZREVRANK %s:rank:churn %s", ns, id);
                if (r && r->type == REDIS_REPLY_INTEGER)
                        printf("rank             #%lld most at risk\n",
                               r->integer + 1);
                if (r)
                        freeReplyObject(r);
                r = redisCommand(c, "ZREVRANK %s:rank:clv %s", ns, id);
                if (r && r->type == REDIS_REPLY_INTEGER)
                        printf("                 #%lld by CLV\n",
                               r->integer + 1);
                if (r)
                        freeReplyObject(r);
        }
        redisFree(c);
        loy_config_free(&conf);
        return rc;
usage:
        ctl_inspect_usage(stderr);
        return 2;
}

static volatile sig_atomic_t trig_running = 1;
static void on_int(int sig) {
        (void)sig;
        trig_running = 0;
}

void ctl_triggers_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl triggers [-b BROKERS] [-t TOPIC] [-w "
                "IDLE_MS] [-n MAX] [-X k=v]...\n"
                "  -b      bootstrap servers (default localhost:9092, or -X "
                "bootstrap.servers)\n"
                "  -t      topic (reward-triggers)\n"
                "  -w      stop after this long without a message (3000 ms; "
                "0: Ctrl-C)\n"
                "  -n      stop after MAX triggers\n"
                "  -X k=v  any librdkafka consumer property, e.g. -X "
                "security.protocol=SASL_SSL\n");
}

void ctl_fields_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl fields\n"
                    "  the customer hash's fields as a Markdown table\n");
}

/* Prints the reward-trigger topic as JSON lines, from the beginning, until
 * nothing arrives for -w ms (or Ctrl-C with -w 0). */
int ctl_triggers_main(int argc, char **argv) {
        const char *brokers = NULL, *topic = "reward-triggers";
        int wait_ms = 3000, opt;
        int64_t n = 0, max = 0, idle_since;
        loy_config_t conf;
        loy_codec_t *codec;
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *sub;
        char err[512];

        loy_config_defaults(&conf);
        while ((opt = getopt(argc, argv, "b:t:w:n:X:")) != -1) {
                switch (opt) {
                case 'X':
                        if (ctl_kafka_prop(&conf, "triggers", optarg)) {
                                loy_config_free(&conf);
                                return 2;
                        }
                        break;
                case 'b':
                        brokers = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 'w':
                        wait_ms = atoi(optarg);
                        break;
                case 'n':
                        max = atoll(optarg);
                        break;
                default:
                        ctl_triggers_usage(stderr);
                        loy_config_free(&conf);
                        return 2;
                }
        }
        ctl_kafka_brokers(&conf, brokers);
        snprintf(conf.group_id, sizeof(conf.group_id), "loyaltyctl-%d",
                 (int)getpid());
        codec = loy_codec_create(NULL, err, sizeof(err));
        rk = codec ? loy_kafka_consumer_new(&conf, NULL, NULL, err, sizeof(err))
                   : NULL;
        if (!rk) {
                fprintf(stderr, "triggers: %s\n", err);
                if (codec)
                        loy_codec_destroy(codec);
                loy_config_free(&conf);
                return 1;
        }
        sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        signal(SIGINT, on_int);
        idle_since = ctl_wall_ms();
        while (trig_running && (!max || n < max)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m) {
                        /* the group join takes a few seconds: count idle
                         * time from the first message on */
                        if (wait_ms && n &&
                            ctl_wall_ms() - idle_since > wait_ms)
                                break;
                        if (wait_ms && !n &&
                            ctl_wall_ms() - idle_since > wait_ms + 10000)
                                break;
                        continue;
                }
                if (!m->err) {
                        char *json = loy_codec_trigger_to_json(
                            codec, m->payload, m->len, err, sizeof(err));
                        if (json) {
                                printf("%s\n", json);
                                free(json);
                        } else {
                                fprintf(stderr, "offset %" PRId64 ": %s\n",
                                        m->offset, err);
                        }
                        n++;
                        idle_since = ctl_wall_ms();
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        loy_codec_destroy(codec);
        loy_config_free(&conf);
        fprintf(stderr, "%" PRId64 " triggers\n", n);
        return 0;
}

/* Prints the customer's fields as a Markdown table: which are in the
 * hash's readable view, and which only in the packed engine state. */
int ctl_fields_main(int argc, char **argv) {
        (void)argc;
        (void)argv;
        printf("| field | type | unit | in the hash | meaning |\n"
               "|---|---|---|---|---|\n");
        for (const loy_field_t *f = loy_feat_fields; f->name; f++)
                printf("| `%s` | %s | %s | %s | %s |\n", f->name,
                       f->type == LOY_FT_DERIVED ? "derived"
                       : f->type == LOY_FT_DBL   ? "number"
                       : f->type == LOY_FT_STR || f->type == LOY_FT_KEYS
                           ? "text"
                           : "integer",
                       f->unit ? f->unit : "",
                       f->view ? "readable" : "packed only",
                       f->doc ? f->doc : "");
        return 0;
}
