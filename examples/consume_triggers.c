/*
 * consume_triggers: read loyaltyd's reward triggers, the way a coupon or
 * messaging service does.
 *
 * Shows: a librdkafka consumer in a consumer group (it starts at the
 * beginning the first time, then where the group left off), unframing
 * Confluent-framed Avro (magic byte 0, 4-byte big-endian schema id) and
 * decoding the loyaltyd.RewardTrigger record with the Avro C API from the
 * schema file (config/reward_trigger.avsc), and committing each record's
 * offset once it is handled: after a crash, records since the last commit
 * come again. A trigger may come twice, always with the same trigger_id:
 * de-duplicate on it. holdout=true means the customer is in the rule's
 * control group: record it, do NOT send the reward. Only librdkafka,
 * avro-c and libc.
 *
 *   consume_triggers -b localhost:9092 -w 5000     # until 5 s of silence
 *   consume_triggers -b localhost:9092 -n 1        # the next trigger
 *
 * One line per trigger on stdout. Exit 0 after -n records, -w ms without
 * one, or Ctrl-C; 1 on a Kafka error or a record that does not decode; 2
 * on wrong arguments. Build: cc consume_triggers.c $(pkg-config --cflags
 * --libs rdkafka avro-c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#ifndef EXAMPLE_SCHEMA_DIR /* the build sets it to the source's config/ */
#define EXAMPLE_SCHEMA_DIR "."
#endif

static volatile sig_atomic_t running = 1;

static void on_signal(int sig) {
        (void)sig;
        running = 0; /* a flag, no work, in a signal handler */
}

static void usage(FILE *fp) {
        fprintf(fp,
                "usage: consume_triggers [-b BROKERS] [-t TOPIC] [-g GROUP] "
                "[-s SCHEMA] [-i ID]\n"
                "         [-n MAX] [-w IDLE_MS] [-X k=v]...\n"
                "  -b  bootstrap servers (localhost:9092)\n"
                "  -t  topic (reward-triggers)\n"
                "  -g  consumer group (example-triggers)\n"
                "  -s  trigger schema (%s/reward_trigger.avsc)\n"
                "  -i  schema id expected in the framing (3: loyaltyd's "
                "avro.schema.trigger)\n"
                "  -n  stop after MAX triggers (0: no limit)\n"
                "  -w  stop after IDLE_MS without a trigger, counted from the "
                "assignment\n"
                "      (0: never)\n"
                "  -X  a librdkafka consumer property\n",
                EXAMPLE_SCHEMA_DIR);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Partitions assigned to this member now. */
static int assigned(rd_kafka_t *rk) {
        rd_kafka_topic_partition_list_t *a;
        int n = 0;
        if (rd_kafka_assignment(rk, &a) == 0) {
                n = a->cnt;
                rd_kafka_topic_partition_list_destroy(a);
        }
        return n;
}

/* A schema file's text (malloc'd; a schema is small), or NULL. */
static char *read_file(const char *path) {
        FILE *fp = fopen(path, "r");
        char *buf = fp ? calloc(1, 1 << 16) : NULL;
        if (buf && !fread(buf, 1, (1 << 16) - 1, fp)) {
                errno = ferror(fp) ? EIO : ENODATA; /* empty */
                free(buf);
                buf = NULL;
        }
        if (fp)
                fclose(fp);
        return buf;
}

/* The field at a dotted path ("reward.kind"); a union ["null", T] gives
 * its branch. 0, or -1 when there is none. */
static int at(avro_value_t *rec, const char *path, avro_value_t *out) {
        avro_value_t cur = *rec, next;
        char name[64];
        while (*path) {
                size_t n = strcspn(path, ".");
                if (n >= sizeof(name))
                        return -1;
                memcpy(name, path, n);
                name[n] = '\0';
                if (avro_value_get_by_name(&cur, name, &next, NULL))
                        return -1;
                cur = next;
                path += n + (path[n] == '.');
        }
        if (avro_value_get_type(&cur) == AVRO_UNION &&
            avro_value_get_current_branch(&cur, &next) == 0)
                cur = next;
        *out = cur;
        return 0;
}

static const char *str(avro_value_t *rec, const char *path) {
        avro_value_t v;
        const char *s;
        size_t size;
        int idx;
        if (at(rec, path, &v))
                return "?";
        if (avro_value_get_type(&v) == AVRO_NULL)
                return "";
        if (avro_value_get_type(&v) == AVRO_ENUM)
                return avro_value_get_enum(&v, &idx)
                           ? "?"
                           : avro_schema_enum_get(avro_value_get_schema(&v),
                                                  idx);
        return avro_value_get_string(&v, &s, &size) ? "?" : s;
}

static double dbl(avro_value_t *rec, const char *path) {
        avro_value_t v;
        double d = 0;
        if (at(rec, path, &v) == 0)
                avro_value_get_double(&v, &d);
        return d;
}

/* A long, an int or a boolean as a number. */
static long long lng(avro_value_t *rec, const char *path) {
        avro_value_t v;
        int64_t l = 0;
        int32_t i = 0;
        int b = 0;
        if (at(rec, path, &v))
                return 0;
        switch (avro_value_get_type(&v)) {
        case AVRO_INT64:
                avro_value_get_long(&v, &l);
                return (long long)l;
        case AVRO_INT32:
                avro_value_get_int(&v, &i);
                return i;
        case AVRO_BOOLEAN:
                avro_value_get_boolean(&v, &b);
                return b;
        default:
                return 0;
        }
}

/* One trigger, "key=value" words. The message's bytes: 0, id, datum. */
static int print_trigger(const rd_kafka_message_t *m, avro_value_t *rec,
                         int32_t want_id) {
        const unsigned char *p = m->payload;
        avro_reader_t r;
        avro_value_t recs, item;
        size_t nrecs = 0;
        int32_t id;
        int bad;
        if (m->len < 5 || p[0] != 0) {
                fprintf(stderr, "offset %lld: not Confluent-framed\n",
                        (long long)m->offset);
                return -1;
        }
        id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 8 | p[4]);
        if (id != want_id) {
                fprintf(stderr, "offset %lld: schema id %d, not %d\n",
                        (long long)m->offset, (int)id, (int)want_id);
                return -1;
        }
        if (!(r = avro_reader_memory((const char *)p + 5,
                                     (int64_t)(m->len - 5))))
                return -1;
        avro_value_reset(rec);
        bad = avro_value_read(r, rec);
        avro_reader_free(r);
        if (bad) {
                fprintf(stderr, "offset %lld: %s\n", (long long)m->offset,
                        avro_strerror());
                return -1;
        }
        printf("customer=%s rule=%s reward=%s value=%g currency=%s "
               "expiry_ts=%lld holdout=%s segment=%s churn_prob=%.4f "
               "clv=%.2f cause=%s:%s:%lld:%lld event_id=%s event_time=%lld "
               "model=%s trigger_id=%s recs=",
               str(rec, "customer_id"), str(rec, "rule"),
               str(rec, "reward.kind"), dbl(rec, "reward.value"),
               str(rec, "reward.currency"), lng(rec, "reward.expiry_ts"),
               lng(rec, "holdout") ? "true" : "false",
               str(rec, "scores.segment"), dbl(rec, "scores.churn_prob"),
               dbl(rec, "scores.clv"), str(rec, "cause.kind"),
               str(rec, "cause.topic"), lng(rec, "cause.partition"),
               lng(rec, "cause.offset"), str(rec, "cause.event_id"),
               lng(rec, "event_time"), str(rec, "model_version"),
               str(rec, "trigger_id"));
        if (at(rec, "recommendations", &recs) == 0)
                avro_value_get_size(&recs, &nrecs);
        for (size_t i = 0; i < nrecs; i++)
                if (avro_value_get_by_index(&recs, i, &item, NULL) == 0)
                        printf("%s%s", i ? "," : "", str(&item, "item"));
        printf("\n");
        return fflush(stdout) ? -1 : 0;
}

int main(int argc, char **argv) {
        const char *brokers = "localhost:9092", *topic = "reward-triggers";
        const char *group = "example-triggers";
        static const struct option help[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        char schema_path[4096], errstr[512];
        long long max = 0, n = 0, idle_ms = 0, want_id = 3;
        int64_t last = -1;
        char *json = NULL;
        avro_schema_t schema = NULL;
        avro_value_iface_t *iface = NULL;
        avro_value_t rec;
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk = NULL;
        rd_kafka_topic_partition_list_t *sub = NULL;
        rd_kafka_resp_err_t err;
        int opt, rc = 1, have_rec = 0, failed = 0;
        long long bad = 0;

        if (!kc) {
                fprintf(stderr, "out of memory\n");
                return 1;
        }
        snprintf(schema_path, sizeof(schema_path), "%s/reward_trigger.avsc",
                 EXAMPLE_SCHEMA_DIR);
        /* commit only what was handled; the first time, from the start */
        if (rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", errstr,
                              sizeof(errstr))) {
                fprintf(stderr, "kafka: %s\n", errstr);
                goto out;
        }
        while ((opt = getopt_long(argc, argv, "b:t:g:s:i:n:w:X:h", help,
                                  NULL)) != -1) {
                char *eq;
                switch (opt) {
                case 'b':
                        brokers = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 'g':
                        group = optarg;
                        break;
                case 's':
                        snprintf(schema_path, sizeof(schema_path), "%s",
                                 optarg);
                        break;
                case 'i':
                        want_id = atoll(optarg);
                        break;
                case 'n':
                        max = atoll(optarg);
                        break;
                case 'w':
                        idle_ms = atoll(optarg);
                        break;
                case 'X':
                        if (!(eq = strchr(optarg, '='))) {
                                fprintf(stderr, "-X %s: not k=v\n", optarg);
                                goto usage;
                        }
                        *eq = '\0';
                        if (rd_kafka_conf_set(kc, optarg, eq + 1, errstr,
                                              sizeof(errstr))) {
                                fprintf(stderr, "-X %s: %s\n", optarg, errstr);
                                goto usage;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        rc = 0;
                        goto out;
                default:
                        goto usage;
                }
        }
        if (optind != argc || max < 0 || idle_ms < 0 || want_id < 0 ||
            want_id > INT32_MAX)
                goto usage;

        if (!(json = read_file(schema_path))) {
                fprintf(stderr, "%s: %s\n", schema_path, strerror(errno));
                goto out;
        }
        if (avro_schema_from_json_length(json, strlen(json), &schema) ||
            !(iface = avro_generic_class_from_schema(schema)) ||
            avro_generic_value_new(iface, &rec)) {
                fprintf(stderr, "%s: %s\n", schema_path, avro_strerror());
                goto out;
        }
        have_rec = 1;

        if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "group.id", group, errstr, sizeof(errstr))) {
                fprintf(stderr, "kafka: %s\n", errstr);
                goto out;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr,
                                sizeof(errstr)))) {
                fprintf(stderr, "kafka: %s\n", errstr);
                goto out;
        }
        kc = NULL; /* rd_kafka_new took it */
        rd_kafka_poll_set_consumer(rk);
        if (!(sub = rd_kafka_topic_partition_list_new(1)))
                goto out;
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        if ((err = rd_kafka_subscribe(rk, sub))) {
                fprintf(stderr, "subscribe %s: %s\n", topic,
                        rd_kafka_err2str(err));
                goto out;
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        while (running && (!max || n < max)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                /* the group join takes a few seconds: -w counts from the
                 * assignment on */
                if (last < 0 && assigned(rk))
                        last = now_ms();
                if (!m) {
                        if (idle_ms && last >= 0 && now_ms() - last > idle_ms)
                                break;
                        continue;
                }
                if (m->err) {
                        /* librdkafka retries what it can; a fatal error or
                         * a topic that does not exist ends the run */
                        fprintf(stderr, "kafka: %s\n",
                                rd_kafka_message_errstr(m));
                        if (m->err == RD_KAFKA_RESP_ERR__FATAL ||
                            m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                                failed = 1;
                                running = 0;
                        }
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (print_trigger(m, &rec, (int32_t)want_id))
                        bad++; /* a real service dead-letters it */
                /* handled: commit it (asynchronously; the last one is
                 * committed synchronously below) */
                rd_kafka_commit_message(rk, m, 1);
                rd_kafka_message_destroy(m);
                n++;
                last = now_ms();
        }
        /* commit what was consumed, then leave the group cleanly */
        err = rd_kafka_commit(rk, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                fprintf(stderr, "commit: %s\n", rd_kafka_err2str(err));
                failed = 1;
        }
        rc = failed || bad;
        fprintf(stderr, "%lld triggers, %lld bad records\n", n - bad, bad);
        goto out;
usage:
        usage(stderr);
        rc = 2;
out:
        if (sub)
                rd_kafka_topic_partition_list_destroy(sub);
        if (rk) {
                /* librdkafka 2.0 can assert in close while an assignment
                 * is in progress: unsubscribe and drain first */
                rd_kafka_unsubscribe(rk);
                for (int i = 0; i < 100 && assigned(rk); i++) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10);
                        if (m)
                                rd_kafka_message_destroy(m);
                }
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
        }
        if (kc)
                rd_kafka_conf_destroy(kc);
        if (have_rec)
                avro_value_decref(&rec);
        if (iface)
                avro_value_iface_decref(iface);
        if (schema)
                avro_schema_decref(schema);
        free(json);
        return rc;
}
