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
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const struct {
        const char *name;
        int (*main)(int, char **);
        const char *help;
} commands[] = {
    {"demo", ctl_demo_main, "run everything on embedded defaults"},
    {"replay", ctl_replay_main, "produce a real data file as events"},
    {"inspect", ctl_inspect_main, "show one customer from Redis"},
    {"triggers", ctl_triggers_main, "print reward triggers as JSON"},
    {"fields", ctl_fields_main, "list the customer hash fields"},
    {"reco-eval", ctl_reco_eval_main, "evaluate the recommender (HR@10)"},
    {"reco-bench", ctl_reco_bench_main, "recommender events/s and memory"},
    {"fit", ctl_fit_main, "fit the customer-value model (ML)"},
    {"eval", ctl_eval_main, "evaluate the model on a holdout, report"},
    {"bench-model", ctl_bench_model_main, "scoring cost and fit time"},
    {"bench", ctl_bench_main, "loyaltyd events/s, CPU, Redis cost, latency"},
};

int main(int argc, char **argv) {
        size_t n = sizeof(commands) / sizeof(commands[0]);
        if (argc >= 2)
                for (size_t i = 0; i < n; i++)
                        if (!strcmp(argv[1], commands[i].name))
                                return commands[i].main(argc - 1, argv + 1);
        fprintf(stderr, "usage: loyaltyctl COMMAND [options]\n\n");
        for (size_t i = 0; i < n; i++)
                fprintf(stderr, "  %-10s %s\n", commands[i].name,
                        commands[i].help);
        fprintf(stderr, "\nloyaltyctl COMMAND -h for a command's options\n");
        return argc >= 2 && strcmp(argv[1], "-h") &&
                       strcmp(argv[1], "--help")
                   ? 2
                   : 0;
}
