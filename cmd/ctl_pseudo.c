/*
 * loyaltyctl pseudonym: the pseudonyms loyaltyd gives customer ids under
 * [privacy] pseudonymize = yes (docs/privacy.md), so a shop can match
 * triggers and Redis keys to its own customers; and the id inspect looks
 * up.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "loy_config.h"
#include "loy_pseudo.h"

void ctl_pseudonym_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl pseudonym -c FILE [-X privacy.KEY=VALUE]... "
                "[CUSTOMER_ID]...\n"
                "  prints \"<id>\\t<pseudonym>\" per id (from the arguments, "
                "else one per\n"
                "  line of standard input), with the key of the config's "
                "[privacy] section\n"
                "  -c FILE   loyaltyd's config (privacy.pseudonymize = yes, "
                "privacy.key.file)\n"
                "  -X K=V    one setting, e.g. -X privacy.key.file=/etc/"
                "loyaltyd/pseudonym.key\n");
}

int ctl_customer_key(const loy_config_t *conf, const char *tool, const char *id,
                     char *out, size_t size) {
        char err[768], pseudonym[LOY_PSEUDO_LEN + 1];
        loy_pseudo_t *p = loy_pseudo_from_config(conf, err, sizeof(err));
        if (!p && err[0]) {
                fprintf(stderr, "%s: %s\n", tool, err);
                return -1;
        }
        if (!p) {
                snprintf(out, size, "%s", id);
                return 0;
        }
        if (loy_pseudo_of(p, id, pseudonym)) {
                fprintf(stderr, "%s: pseudonym failed\n", tool);
                loy_pseudo_destroy(p);
                return -1;
        }
        snprintf(out, size, "%s", pseudonym);
        loy_pseudo_destroy(p);
        return 0;
}

static int print_one(const loy_pseudo_t *p, const char *id) {
        char pseudonym[LOY_PSEUDO_LEN + 1];
        if (loy_pseudo_of(p, id, pseudonym)) {
                fprintf(stderr, "pseudonym: failed for %s\n", id);
                return -1;
        }
        printf("%s\t%s\n", id, pseudonym);
        return 0;
}

int ctl_pseudonym_main(int argc, char **argv) {
        loy_config_t conf;
        loy_pseudo_t *p;
        char err[768], line[1024];
        int opt, rc = 0;
        loy_config_defaults(&conf);
        optind = 1;
        while ((opt = getopt(argc, argv, "c:X:h")) != -1) {
                if (opt == 'h') {
                        ctl_pseudonym_usage(stdout);
                        loy_config_free(&conf);
                        return 0;
                }
                if (opt == '?' || (opt != 'c' && opt != 'X') ||
                    ctl_setting(&conf, "pseudonym", opt, optarg)) {
                        ctl_pseudonym_usage(stderr);
                        loy_config_free(&conf);
                        return 2;
                }
        }
        p = loy_pseudo_from_config(&conf, err, sizeof(err));
        if (!p) {
                fprintf(stderr, "pseudonym: %s\n",
                        err[0] ? err
                               : "privacy.pseudonymize is not yes in "
                                 "this config: ids are kept as they "
                                 "are");
                loy_config_free(&conf);
                return err[0] ? 1 : 2;
        }
        if (optind < argc) {
                for (int i = optind; i < argc && !rc; i++)
                        rc = print_one(p, argv[i]);
        } else {
                while (!rc && fgets(line, sizeof(line), stdin)) {
                        line[strcspn(line, "\r\n")] = '\0';
                        if (line[0])
                                rc = print_one(p, line);
                }
        }
        loy_pseudo_destroy(p);
        loy_config_free(&conf);
        return rc ? 1 : 0;
}
