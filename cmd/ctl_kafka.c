/* loyaltyctl kafka: the embedded Kafka of the demo on its own, for trying
 * loyaltyd, kcat and replay on a machine without a broker. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"

static volatile sig_atomic_t running = 1;
static void on_signal(int sig) {
        (void)sig;
        running = 0;
}

void ctl_kafka_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl kafka [-p PARTITIONS]\n"
                    "  librdkafka's mock cluster (the Kafka protocol on a free "
                    "loopback port)\n"
                    "  with loyaltyd's topics, until Ctrl-C; prints its "
                    "bootstrap address\n"
                    "  -p  partitions of purchases and browse (8)\n");
}

int ctl_kafka_main(int argc, char **argv) {
        ctl_kafka_t kafka = {0};
        char err[512];
        int partitions = 8, opt;
        while ((opt = getopt(argc, argv, "p:h")) != -1) {
                switch (opt) {
                case 'p':
                        partitions = atoi(optarg);
                        if (partitions < 1 || partitions > 1000) {
                                fprintf(stderr,
                                        "kafka: -p %s: partitions "
                                        "must be 1..1000\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        ctl_kafka_usage(stdout);
                        return 0;
                default:
                        ctl_kafka_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "kafka: unexpected argument \"%s\"\n",
                        argv[optind]);
                ctl_kafka_usage(stderr);
                return 2;
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (ctl_kafka_start(&kafka, partitions, err, sizeof(err)) == -1) {
                fprintf(stderr, "kafka: %s\n", err);
                ctl_kafka_stop(&kafka);
                return 1;
        }
        /* the address first and alone on its line: scripts read it */
        printf("%s\n", kafka.bootstraps);
        fprintf(stderr,
                "kafka: mock cluster at %s: purchases and browse (%d "
                "partitions), reward-triggers, loyaltyd-deadletter; "
                "Ctrl-C stops it (its messages are kept in memory only)\n",
                kafka.bootstraps, partitions);
        fflush(stdout);
        while (running)
                ctl_sleep_ms(200);
        ctl_kafka_stop(&kafka);
        return 0;
}
