/*
 * produce_purchase: send one purchase event to loyaltyd, the way a shop's
 * checkout would.
 *
 * Shows: building a loyaltyd.Purchase record with the Avro C API from the
 * schema file (config/purchase.avsc), framing it as Confluent's serializers
 * do (magic byte 0, 4-byte big-endian schema id, Avro binary), producing it
 * keyed by customer id with librdkafka's idempotent producer, and waiting
 * for its delivery report. Only librdkafka, avro-c and libc.
 *
 *   produce_purchase -b localhost:9092 17850 85123A:6:2.55 22633:2:1.85
 *
 * Exit 0 once the broker has the message, 1 on a Kafka or Avro error, 2 on
 * wrong arguments. Build: cc produce_purchase.c $(pkg-config --cflags --libs
 * rdkafka avro-c). docs/events.md has every field.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#ifndef EXAMPLE_SCHEMA_DIR /* the build sets it to the source's config/ */
#define EXAMPLE_SCHEMA_DIR "."
#endif

static void usage(FILE *fp) {
        fprintf(fp,
                "usage: produce_purchase [-b BROKERS] [-t TOPIC] [-s SCHEMA] "
                "[-i ID] [-e EVENT_ID]\n"
                "         [-o ORDER_ID] [-T TS_MS] [-C CURRENCY] [-X k=v]... "
                "CUSTOMER SKU:QTY:PRICE...\n"
                "  -b  bootstrap servers (localhost:9092)\n"
                "  -t  topic (purchases)\n"
                "  -s  purchase schema (%s/purchase.avsc)\n"
                "  -i  schema id in the framing (1: loyaltyd's "
                "avro.schema.purchase)\n"
                "  -e  event id (default: customer-ms-pid; reuse it on a "
                "retry)\n"
                "  -o  order id (default: the event id)\n"
                "  -T  event time, ms since the epoch (default: now)\n"
                "  -C  currency (GBP)\n"
                "  -X  a librdkafka producer property, e.g. -X "
                "security.protocol=SSL\n"
                "  SKU:QTY:PRICE  one order line; a negative QTY is a return\n",
                EXAMPLE_SCHEMA_DIR);
}

/* The delivery report: runs in rd_kafka_flush(), on this thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        (void)rk;
        *(rd_kafka_resp_err_t *)opaque = m->err;
        if (!m->err)
                printf("delivered to %s [%d] at offset %lld\n",
                       rd_kafka_topic_name(m->rkt), (int)m->partition,
                       (long long)m->offset);
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

/* Appends one order line "SKU:QTY:PRICE" (split at the last two colons,
 * so a sku may hold one) to the lines array. 0, or -1 when it does not
 * parse. */
static int add_line(avro_value_t *lines, const char *arg) {
        char sku[256], *qty, *price, *end;
        avro_value_t line, f;
        long q;
        double p;
        if (snprintf(sku, sizeof(sku), "%s", arg) >= (int)sizeof(sku) ||
            !(price = strrchr(sku, ':')) || price == sku)
                return -1;
        *price++ = '\0';
        if (!(qty = strrchr(sku, ':')) || qty == sku)
                return -1;
        *qty++ = '\0';
        q = strtol(qty, &end, 10);
        if (*end || end == qty || q == 0 || q < -1000000 || q > 1000000)
                return -1;
        p = strtod(price, &end);
        if (*end || end == price)
                return -1;
        /* a generic value has no defaults: every field is set */
        return avro_value_append(lines, &line, NULL) ||
                       avro_value_get_by_name(&line, "sku", &f, NULL) ||
                       avro_value_set_string(&f, sku) ||
                       avro_value_get_by_name(&line, "category", &f, NULL) ||
                       avro_value_set_string(&f, "") ||
                       avro_value_get_by_name(&line, "quantity", &f, NULL) ||
                       avro_value_set_int(&f, (int32_t)q) ||
                       avro_value_get_by_name(&line, "unit_price", &f, NULL) ||
                       avro_value_set_double(&f, p)
                   ? -1
                   : 0;
}

static int set_str(avro_value_t *rec, const char *name, const char *s) {
        avro_value_t f;
        return avro_value_get_by_name(rec, name, &f, NULL) ||
               avro_value_set_string(&f, s);
}

int main(int argc, char **argv) {
        const char *brokers = "localhost:9092", *topic = "purchases";
        static const struct option help[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        const char *event_id = NULL, *order_id = NULL, *currency = "GBP";
        char schema_path[4096], errstr[512], gen_id[128];
        long schema_id = 1;
        long long ts = -1;
        char *json = NULL, *buf = NULL;
        avro_schema_t schema = NULL;
        avro_value_iface_t *iface = NULL;
        avro_value_t rec, f, lines;
        avro_writer_t w = NULL;
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk = NULL;
        rd_kafka_resp_err_t err, delivered = RD_KAFKA_RESP_ERR__TIMED_OUT;
        size_t size = 0;
        int opt, rc = 1, have_rec = 0;

        if (!kc) {
                fprintf(stderr, "out of memory\n");
                return 1;
        }
        snprintf(schema_path, sizeof(schema_path), "%s/purchase.avsc",
                 EXAMPLE_SCHEMA_DIR);
        /* fail fast on a broker that does not answer (default: 5 min) */
        if (rd_kafka_conf_set(kc, "message.timeout.ms", "10000", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "enable.idempotence", "true", errstr,
                              sizeof(errstr))) {
                fprintf(stderr, "kafka: %s\n", errstr);
                goto out;
        }
        while ((opt = getopt_long(argc, argv, "b:t:s:i:e:o:T:C:X:h", help,
                                  NULL)) != -1) {
                char *eq;
                switch (opt) {
                case 'b':
                        brokers = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 's':
                        snprintf(schema_path, sizeof(schema_path), "%s",
                                 optarg);
                        break;
                case 'i':
                        schema_id = atol(optarg);
                        break;
                case 'e':
                        event_id = optarg;
                        break;
                case 'o':
                        order_id = optarg;
                        break;
                case 'T':
                        ts = atoll(optarg);
                        break;
                case 'C':
                        currency = optarg;
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
        if (argc - optind < 2 || schema_id < 0 || schema_id > INT32_MAX)
                goto usage;
        if (ts < 0) {
                struct timeval tv;
                gettimeofday(&tv, NULL);
                ts = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        }
        if (!event_id) {
                snprintf(gen_id, sizeof(gen_id), "%.64s-%lld-%d", argv[optind],
                         ts, (int)getpid());
                event_id = gen_id;
        }

        /* the record, from the schema file */
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
        if (set_str(&rec, "event_id", event_id) ||
            set_str(&rec, "customer_id", argv[optind]) ||
            avro_value_get_by_name(&rec, "ts", &f, NULL) ||
            avro_value_set_long(&f, ts) ||
            set_str(&rec, "order_id", order_id ? order_id : event_id) ||
            set_str(&rec, "currency", currency) ||
            set_str(&rec, "channel", "web") ||
            avro_value_get_by_name(&rec, "lines", &lines, NULL)) {
                fprintf(stderr, "purchase: %s\n", avro_strerror());
                goto out;
        }
        for (int i = optind + 1; i < argc; i++) {
                if (add_line(&lines, argv[i])) {
                        fprintf(stderr, "%s: not SKU:QTY:PRICE\n", argv[i]);
                        rc = 2;
                        goto out;
                }
        }

        /* Confluent framing: 0, the id big-endian, then the Avro datum */
        if (avro_value_sizeof(&rec, &size) || !(buf = malloc(5 + size)) ||
            !(w = avro_writer_memory(buf + 5, (int64_t)size)) ||
            avro_value_write(w, &rec)) {
                fprintf(stderr, "encode: %s\n",
                        buf ? avro_strerror() : "out of memory");
                goto out;
        }
        buf[0] = 0;
        for (int i = 0; i < 4; i++)
                buf[1 + i] = (char)((uint32_t)schema_id >> (24 - 8 * i));

        if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr,
                              sizeof(errstr))) {
                fprintf(stderr, "%s\n", errstr);
                goto out;
        }
        rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
        rd_kafka_conf_set_opaque(kc, &delivered);
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr,
                                sizeof(errstr)))) {
                fprintf(stderr, "kafka: %s\n", errstr);
                goto out;
        }
        kc = NULL; /* rd_kafka_new took it */
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY(argv[optind], strlen(argv[optind])),
            RD_KAFKA_V_VALUE(buf, 5 + size),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) {
                fprintf(stderr, "produce to %s: %s\n", topic,
                        rd_kafka_err2str(err));
                goto out;
        }
        /* returns once the report came: by message.timeout.ms at the latest */
        rd_kafka_flush(rk, -1);
        if (delivered) {
                fprintf(stderr, "delivery to %s on %s failed: %s\n", topic,
                        brokers, rd_kafka_err2str(delivered));
                goto out;
        }
        rc = 0;
        goto out;
usage:
        usage(stderr);
        rc = 2;
out:
        if (rk)
                rd_kafka_destroy(rk);
        if (kc)
                rd_kafka_conf_destroy(kc);
        if (w)
                avro_writer_free(w);
        free(buf);
        if (have_rec)
                avro_value_decref(&rec);
        if (iface)
                avro_value_iface_decref(iface);
        if (schema)
                avro_schema_decref(schema);
        free(json);
        return rc;
}
