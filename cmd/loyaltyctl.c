/*
 * loyaltyctl: ops and data tools over the loyaltyd libraries.
 *
 *   loyaltyctl demo      the embedded default: mock Kafka + private Redis +
 *                        loyaltyd + the whole Online Retail file, summary
 *   loyaltyctl replay    real transaction files -> Avro purchase events
 *   loyaltyctl inspect   one customer's state and scores, from Redis
 *   loyaltyctl triggers  the reward-trigger topic as JSON lines
 *   loyaltyctl fields    the customer hash's fields (Markdown table)
 *   loyaltyctl bench     the real loyaltyd measured from outside
 *   loyaltyctl pseudonym customer ids as [privacy] pseudonymizes them
 *   loyaltyctl forget    erase customers (through loyaltyd, in order)
 *   loyaltyctl expire    erase customers silent for [privacy] expire.days
 *   loyaltyctl kafka     the demo's embedded Kafka alone, until Ctrl-C
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const struct {
        const char *name;
        int (*main)(int, char **);
        void (*usage)(FILE *);
        const char *help;
} commands[] = {
    {"demo", ctl_demo_main, ctl_demo_usage,
     "run everything on embedded defaults"},
    {"replay", ctl_replay_main, ctl_replay_usage,
     "produce a real data file as events"},
    {"inspect", ctl_inspect_main, ctl_inspect_usage,
     "show one customer from Redis"},
    {"triggers", ctl_triggers_main, ctl_triggers_usage,
     "print reward triggers as JSON"},
    {"fields", ctl_fields_main, ctl_fields_usage,
     "list the customer hash fields"},
    {"reco-eval", ctl_reco_eval_main, ctl_reco_eval_usage,
     "evaluate the recommender (HR@10)"},
    {"reco-bench", ctl_reco_bench_main, ctl_reco_bench_usage,
     "recommender events/s and memory"},
    {"fit", ctl_fit_main, ctl_fit_usage, "fit the customer-value model (ML)"},
    {"eval", ctl_eval_main, ctl_eval_usage,
     "evaluate the model on a holdout, report"},
    {"bench-model", ctl_bench_model_main, ctl_bench_model_usage,
     "scoring cost and fit time"},
    {"bench", ctl_bench_main, ctl_bench_usage,
     "loyaltyd events/s, CPU, Redis cost, latency"},
    {"pseudonym", ctl_pseudonym_main, ctl_pseudonym_usage,
     "customer ids as loyaltyd pseudonymizes them"},
    {"forget", ctl_forget_main, ctl_forget_usage,
     "erase customers everywhere, for good"},
    {"expire", ctl_expire_main, ctl_expire_usage,
     "erase customers silent for expire.days"},
    {"dashboard", ctl_dashboard_main, ctl_dashboard_usage,
     "the shop owner's web page (KPIs, segments)"},
    {"kafka", ctl_kafka_main, ctl_kafka_usage,
     "an embedded Kafka with loyaltyd's topics"},
    {"config", ctl_config_main, ctl_config_usage,
     "the config reference: every key, its default and meaning"},
};

static int is_help(const char *a) {
        return !strcmp(a, "-h") || !strcmp(a, "--help");
}

int main(int argc, char **argv) {
        size_t n = sizeof(commands) / sizeof(commands[0]);
        int help = argc == 2 && is_help(argv[1]);
        FILE *fp = help ? stdout : stderr;
        if (argc >= 2 && !help) {
                for (size_t i = 0; i < n; i++) {
                        if (strcmp(argv[1], commands[i].name))
                                continue;
                        /* the same answer from every command, whatever
                         * its own option letters */
                        if (argc >= 3 && is_help(argv[2])) {
                                commands[i].usage(stdout);
                                return 0;
                        }
                        return commands[i].main(argc - 1, argv + 1);
                }
                fprintf(stderr, "loyaltyctl: unknown command \"%s\"\n\n",
                        argv[1]);
        }
        fprintf(fp, "usage: loyaltyctl COMMAND [options]\n\n");
        for (size_t i = 0; i < n; i++)
                fprintf(fp, "  %-11s %s\n", commands[i].name, commands[i].help);
        fprintf(fp, "\nloyaltyctl COMMAND -h for a command's options\n");
        return help ? 0 : 2;
}
