/* loyaltyctl replay: real transaction files into Kafka as purchase events. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_kafka.h"

int64_t ctl_wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

int64_t ctl_replay(rd_kafka_t *producer, loy_codec_t *codec, loy_source_t *src,
                   const char *topic, double speed, int64_t limit,
                   volatile int *running, char *errstr, size_t errstr_size) {
        loy_event_t ev;
        int64_t n = 0, first_ts = 0, started = ctl_wall_ms();
        int64_t next_progress = started + 10000;
        int rc;
        memset(&ev, 0, sizeof(ev));
        while ((!running || *running) && (!limit || n < limit) &&
               (rc = loy_source_next(src, &ev)) != 0) {
                const void *buf;
                size_t len;
                if (rc < 0)
                        continue; /* counted by the source */
                if (speed > 0) {
                        int64_t due;
                        if (!first_ts)
                                first_ts = ev.ts_ms;
                        due = started +
                              (int64_t)((double)(ev.ts_ms - first_ts) / speed);
                        while (ctl_wall_ms() < due && (!running || *running)) {
                                rd_kafka_poll(producer, 0);
                                ctl_sleep_ms((int)(due - ctl_wall_ms() > 100
                                                       ? 100
                                                       : due - ctl_wall_ms()));
                        }
                        /* a paced replay runs for minutes: say where it is */
                        if (ctl_wall_ms() >= next_progress) {
                                time_t secs = (time_t)(ev.ts_ms / 1000);
                                struct tm tm;
                                char day[32];
                                gmtime_r(&secs, &tm);
                                strftime(day, sizeof(day), "%Y-%m-%d", &tm);
                                fprintf(stderr,
                                        "replay: %" PRId64 " events "
                                        "so far, event time %s\n",
                                        n, day);
                                next_progress += 10000;
                        }
                }
                buf = loy_codec_encode_event(codec, &ev, &len, errstr,
                                             errstr_size);
                if (!buf ||
                    loy_kafka_produce(producer, topic, ev.customer_id,
                                      strlen(ev.customer_id), buf, len, NULL,
                                      errstr, errstr_size) == -1) {
                        loy_event_free(&ev);
                        return -1;
                }
                rd_kafka_poll(producer, 0);
                n++;
        }
        loy_event_free(&ev);
        return n;
}

static volatile int replay_running = 1;

static void on_int(int sig) {
        (void)sig;
        replay_running = 0;
}

void ctl_replay_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl replay [-b BROKERS] [-t TOPIC] "
                    "[-f FORMAT] [-s SPEED] [-n LIMIT] FILE\n"
                    "  FILE      online_retail.csv.gz, cdnow_master.txt.gz, "
                    "cdnow_sample.txt, or customer_id,timestamp,amount CSV\n"
                    "  -b        bootstrap servers (default localhost:9092, or "
                    "-X bootstrap.servers)\n"
                    "  -t        topic (default purchases)\n"
                    "  -f        auto|online_retail|cdnow_master|cdnow_sample|"
                    "generic\n"
                    "  -s        time compression: 0 = as fast as possible "
                    "(default), 86400 = a day a second\n"
                    "  -n        stop after LIMIT events\n"
                    "  -X k=v    any librdkafka producer property, e.g. -X "
                    "security.protocol=SASL_SSL\n");
}

int ctl_replay_main(int argc, char **argv) {
        const char *brokers = NULL, *topic = "purchases";
        loy_source_format_t fmt = LOY_SRC_AUTO;
        double speed = 0;
        int64_t limit = 0, n, t0;
        loy_config_t conf;
        loy_codec_t *codec;
        loy_source_t *src;
        rd_kafka_t *producer;
        char err[512];
        int opt, rc = 1;

        loy_config_defaults(&conf);
        while ((opt = getopt(argc, argv, "b:t:f:s:n:X:")) != -1) {
                switch (opt) {
                case 'b':
                        brokers = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 'f':
                        fmt = loy_source_format_parse(optarg);
                        if (fmt == LOY_SRC_UNKNOWN) {
                                fprintf(stderr, "replay: unknown format %s\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 's':
                        speed = atof(optarg);
                        break;
                case 'n':
                        limit = atoll(optarg);
                        break;
                case 'X':
                        if (ctl_kafka_prop(&conf, "replay", optarg)) {
                                loy_config_free(&conf);
                                return 2;
                        }
                        break;
                default:
                        ctl_replay_usage(stderr);
                        loy_config_free(&conf);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                ctl_replay_usage(stderr);
                loy_config_free(&conf);
                return 2;
        }
        ctl_kafka_brokers(&conf, brokers);
        src = loy_source_open(argv[optind], fmt, err, sizeof(err));
        if (!src) {
                fprintf(stderr, "replay: %s\n", err);
                loy_config_free(&conf);
                return 1;
        }
        codec = loy_codec_create(NULL, err, sizeof(err));
        producer =
            codec ? loy_kafka_producer_new(&conf, NULL, NULL, err, sizeof(err))
                  : NULL;
        if (!producer) {
                fprintf(stderr, "replay: %s\n", err);
                goto out;
        }
        signal(SIGINT, on_int);
        t0 = ctl_wall_ms();
        n = ctl_replay(producer, codec, src, topic, speed, limit,
                       &replay_running, err, sizeof(err));
        if (n < 0) {
                fprintf(stderr, "replay: %s\n", err);
        } else {
                const loy_source_stats_t *st = loy_source_stats(src);
                if (rd_kafka_flush(producer, 60000)) {
                        fprintf(stderr, "replay: %d messages undelivered\n",
                                rd_kafka_outq_len(producer));
                } else {
                        double s = (double)(ctl_wall_ms() - t0) / 1e3;
                        printf("replayed %" PRId64 " events (%" PRId64
                               " purchases, %" PRId64 " returns, %" PRId64
                               " customers) to %s in %.1f s; skipped %" PRId64
                               " rows without customer, %" PRId64 " bad rows\n",
                               n, st->purchases, st->returns, st->customers,
                               topic, s, st->skipped_no_customer,
                               st->skipped_bad);
                        rc = 0;
                }
        }
out:
        if (producer)
                rd_kafka_destroy(producer);
        if (codec)
                loy_codec_destroy(codec);
        loy_source_close(src);
        loy_config_free(&conf);
        return rc;
}
