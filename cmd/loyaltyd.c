/*
 * loyaltyd: the daemon. Reads purchase and browse events from Kafka, keeps
 * customer state in Redis, emits reward triggers. See README.md.
 *
 *   loyaltyd [-c loyaltyd.conf] [-X section.key=value ...] [-v|-q]
 *   loyaltyd --help-config     every key, default and meaning
 *
 * SIGINT/SIGTERM: finish the batch, deliver triggers, commit, exit.
 * SIGHUP: reload the model file (a bad one is refused; the old one stays).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loy_confdoc.h"
#include "loy_config.h"
#include "loy_log.h"
#include "loy_model.h"
#include "loy_proc.h"
#include "loy_pseudo.h"

static volatile sig_atomic_t running = 1;
static volatile sig_atomic_t reload = 0;

static void on_stop(int sig) {
        (void)sig;
        running = 0;
}

static void on_hup(int sig) {
        (void)sig;
        reload = 1;
}

/*
 * LOY_FAILPOINT (for the fault suite, not for production), at the moment
 * the aggregates of the process's N-th batch were accepted and before that
 * batch's customers are sent:
 *   stop-after-aggregates:N  it stops itself (SIGSTOP) and goes on where it
 *       stopped on SIGCONT: the moment a frozen process is most dangerous
 *       to its partitions' next owner;
 *   kill-after-aggregates:N  it dies (SIGKILL): the crash a redo must
 *       repair, at will instead of by chance.
 */
static const char *const failpoint_names[] = {"stop-after-aggregates:",
                                              "kill-after-aggregates:"};
static int failpoint_signal;
static long failpoint_at, failpoint_seen;

static void failpoint_hook(loy_store_t *s, void *opaque) {
        (void)s;
        (void)opaque;
        if (++failpoint_seen == failpoint_at) {
                LOY_WARN("loyaltyd",
                         "LOY_FAILPOINT: %s after the "
                         "aggregates of batch %ld",
                         failpoint_signal == SIGKILL ? "dying" : "stopping",
                         failpoint_seen);
                raise(failpoint_signal);
        }
}

static int failpoint_set(loy_proc_t *p, char *err, size_t size) {
        const char *fp = getenv("LOY_FAILPOINT");
        const char *num = NULL;
        char *end;
        if (!fp || !*fp)
                return 0;
        for (int i = 0; i < 2 && !num; i++) {
                size_t n = strlen(failpoint_names[i]);
                if (!strncmp(fp, failpoint_names[i], n)) {
                        num = fp + n;
                        failpoint_signal = i ? SIGKILL : SIGSTOP;
                }
        }
        if (!num) {
                snprintf(err, size,
                         "LOY_FAILPOINT \"%s\": want "
                         "stop-after-aggregates:N or kill-after-aggregates:N",
                         fp);
                return -1;
        }
        errno = 0;
        failpoint_at = strtol(num, &end, 10);
        if (errno || *end || failpoint_at < 1) {
                snprintf(err, size,
                         "LOY_FAILPOINT \"%s\": N must be a "
                         "positive integer",
                         fp);
                return -1;
        }
        loy_proc_set_after_agg_hook(p, failpoint_hook, NULL);
        return 0;
}

static void usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyd [-c FILE] [-X section.key=value]... "
                "[-v|-q]\n"
                "       loyaltyd [-c FILE] [-X ...] --check\n"
                "       loyaltyd --help-config\n\n"
                "  -c FILE   config file (default: built-in defaults; see "
                "config/loyaltyd.conf)\n"
                "  -X k=v    set one key, e.g. -X redis.port=6380 or\n"
                "            -X kafka.bootstrap.servers=host:9092\n"
                "  -v, -q    more / less logging\n"
                "  --check   check the config and the model file, then exit "
                "(0: fine)\n");
}

/* --check: what a start would refuse before it talks to anyone (the
 * config, the model file, the pseudonym key); 0 when fine, 2 as for a bad
 * config. */
static int check_config(const loy_config_t *conf) {
        loy_model_t m;
        loy_pseudo_t *p;
        char err[768];
        if (loy_model_load(&m, conf->model_path, err, sizeof(err)) == -1) {
                fprintf(stderr, "loyaltyd: scoring.model: %s\n", err);
                return 2;
        }
        p = loy_pseudo_from_config(conf, err, sizeof(err));
        if (!p && err[0]) {
                fprintf(stderr, "loyaltyd: %s\n", err);
                return 2;
        }
        loy_pseudo_destroy(p);
        printf("loyaltyd: config ok: model %s (%s), %d rules, consuming %s%s%s "
               "as group %s, Redis %s:%d namespace %s, http %s, ids %s\n",
               m.version, conf->model_path, conf->rules.n, conf->topic_purchase,
               conf->topic_browse[0] ? ", " : "", conf->topic_browse,
               conf->group_id, conf->redis_host, conf->redis_port,
               conf->redis_ns, conf->http_listen[0] ? conf->http_listen : "off",
               conf->pseudonymize ? "pseudonymized" : "as sent");
        return 0;
}

int main(int argc, char **argv) {
        loy_config_t conf;
        loy_proc_t *p;
        char err[512];
        struct sigaction sa;
        int rc, check_only = 0;

        loy_config_defaults(&conf);
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!strcmp(a, "--help-config")) {
                        loy_confdoc_reference(stdout);
                        return 0;
                } else if (!strcmp(a, "--check")) {
                        check_only = 1;
                } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        usage(stdout);
                        return 0;
                } else if (!strcmp(a, "-c") && i + 1 < argc) {
                        if (loy_config_load(&conf, argv[++i], err,
                                            sizeof(err)) == -1) {
                                fprintf(stderr, "loyaltyd: %s\n", err);
                                loy_config_free(&conf);
                                return 2;
                        }
                } else if (!strcmp(a, "-X") && i + 1 < argc) {
                        char kv[1024];
                        char *eq;
                        snprintf(kv, sizeof(kv), "%s", argv[++i]);
                        eq = strchr(kv, '=');
                        if (!eq) {
                                fprintf(stderr,
                                        "loyaltyd: -X %s: expected "
                                        "section.key=value\n",
                                        kv);
                                loy_config_free(&conf);
                                return 2;
                        }
                        *eq = '\0';
                        if (loy_config_set(&conf, "-X", kv, eq + 1, err,
                                           sizeof(err)) == -1) {
                                fprintf(stderr, "loyaltyd: %s\n", err);
                                loy_config_free(&conf);
                                return 2;
                        }
                } else if (!strcmp(a, "-v")) {
                        loy_log_set_level(LOY_LOG_DEBUG);
                } else if (!strcmp(a, "-q")) {
                        loy_log_set_level(LOY_LOG_WARN);
                } else {
                        usage(stderr);
                        loy_config_free(&conf);
                        return 2;
                }
        }

        if (loy_config_check(&conf, "-X", err, sizeof(err)) == -1) {
                fprintf(stderr, "loyaltyd: %s\n", err);
                loy_config_free(&conf);
                return 2;
        }
        if (check_only) {
                rc = check_config(&conf);
                loy_config_free(&conf);
                return rc;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_handler = on_hup;
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        p = loy_proc_create(&conf, err, sizeof(err));
        if (!p || failpoint_set(p, err, sizeof(err))) {
                fprintf(stderr, "loyaltyd: %s\n", err);
                loy_proc_destroy(p);
                loy_config_free(&conf);
                return p ? 2 : 1;
        }
        LOY_INFO("loyaltyd", "consuming %s%s%s as group %s",
                 conf.topic_purchase, conf.topic_browse[0] ? ", " : "",
                 conf.topic_browse, conf.group_id);
        rc = loy_proc_run(p, &running, &reload);
        {
                const loy_proc_stats_t *st = loy_proc_stats(p);
                LOY_INFO(
                    "loyaltyd",
                    "stopping: %lld events in, %lld "
                    "applied, %lld duplicates skipped, %lld "
                    "dead-lettered, %lld triggers",
                    (long long)st->events_in, (long long)st->events_applied,
                    (long long)st->events_skipped_dup,
                    (long long)st->dead_lettered, (long long)st->triggers_out);
        }
        loy_proc_destroy(p);
        loy_config_free(&conf);
        return rc == 0 ? 0 : 1;
}
