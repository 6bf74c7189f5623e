/* loyaltyctl config: the config reference from the settings tables, as a
 * config file (every key at its default, or filled in from a short
 * config of one's own) or as Markdown. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "loy_confdoc.h"

void ctl_config_usage(FILE *fp) {
        fprintf(fp, "usage: loyaltyctl config [-t FILE | --markdown]\n"
                    "  every config key with its meaning, as a config file "
                    "at the defaults\n"
                    "  -t FILE     with FILE's values and rules filled in: a "
                    "short config\n"
                    "              becomes a documented one (make config "
                    "writes the shipped\n"
                    "              config/loyaltyd.conf from "
                    "config/loyaltyd.conf.in)\n"
                    "  --markdown  as Markdown (docs/configuration.md)\n");
}

int ctl_config_main(int argc, char **argv) {
        static const struct option longopts[] = {
            {"markdown", no_argument, NULL, 'm'},
            {"template", required_argument, NULL, 't'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *template_path = NULL;
        int markdown = 0, opt;
        char err[512];

        while ((opt = getopt_long(argc, argv, "t:h", longopts, NULL)) != -1) {
                switch (opt) {
                case 'm':
                        markdown = 1;
                        break;
                case 't':
                        template_path = optarg;
                        break;
                case 'h':
                        ctl_config_usage(stdout);
                        return 0;
                default:
                        ctl_config_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc || (markdown && template_path)) {
                fprintf(stderr, "config: %s\n",
                        optind != argc
                            ? "unexpected argument"
                            : "-t and --markdown exclude each other");
                ctl_config_usage(stderr);
                return 2;
        }
        if (markdown)
                loy_confdoc_markdown(stdout);
        else if (!template_path)
                loy_confdoc_reference(stdout);
        else if (loy_confdoc_filled(stdout, template_path, err, sizeof(err))) {
                fprintf(stderr, "config: %s\n", err);
                return 1;
        }
        if (fflush(stdout) || ferror(stdout)) {
                perror("config: stdout");
                return 1;
        }
        return 0;
}
