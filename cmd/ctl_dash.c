/*
 * loyaltyctl dashboard: the shop owner's page (docs/dashboard.md). A web
 * page and the JSON it draws, read from Redis on every request the way an
 * ops dashboard reads it: daily KPIs (the days set lists them, so no SCAN),
 * customers per segment, the at-risk and top-value boards, triggers per
 * rule and the processor's stats. It writes nothing, so it can run
 * anywhere that reaches Redis, beside loyaltyd or not. Keys are read one
 * command at a time and a MOVED reply is followed, so it reads a Redis
 * Cluster too.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "ctl.h"
#include "dashboard_html.h"
#include "loy_config.h"
#include "loy_http.h"
#include "loy_rfm.h"
#include "loy_store.h"
#include "loy_time.h"

#define DAYS_DEFAULT 90
#define DAYS_MAX 3660
#define BOARD_N 10

typedef struct dash {
        loy_config_t conf;
        redisContext *rc; /* the node last answering; NULL: none */
        int days;
} dash_t;

void ctl_dashboard_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl dashboard [-c FILE] [-X SECTION.KEY=VALUE]"
                "... [-l HOST:PORT]\n"
                "                            [-d DAYS] [-o FILE]\n"
                "  serves the shop owner's page, read from loyaltyd's Redis: "
                "revenue,\n"
                "  purchases, new vs repeat customers and repurchase rate per "
                "day, customers\n"
                "  per segment, the at-risk and top-value boards, triggers "
                "per rule and\n"
                "  the processor's health. Open http://HOST:PORT/ "
                "(JSON: /api/summary)\n"
                "  -c FILE   loyaltyd's config (its [redis] section)\n"
                "  -X K=V    one setting, e.g. -X redis.port=6380\n"
                "  -l ADDR   where to listen (default 127.0.0.1:8090; port "
                "0: any free one)\n"
                "  -d DAYS   days charted (default %d, at most %d; "
                "?days=N per request)\n"
                "  -o FILE   write the JSON once to FILE (- : standard "
                "output) and exit\n",
                DAYS_DEFAULT, DAYS_MAX);
}

static void set_key(const dash_t *d, const char *suffix, char *key,
                    size_t size) {
        snprintf(key, size, "%s:%s", d->conf.redis_ns, suffix);
}

/* One command of argc argv, on the node that holds its key (argv[1]):
 * the reply (caller frees), or NULL with why in err. */
static redisReply *command(dash_t *d, int argc, const char **argv, char *err,
                           size_t size) {
        for (int hop = 0; hop < 4; hop++) {
                redisReply *r;
                if (!d->rc &&
                    !(d->rc = ctl_redis_connect(&d->conf, "dashboard"))) {
                        snprintf(err, size,
                                 "cannot connect to Redis at "
                                 "%s:%d",
                                 d->conf.redis_host, d->conf.redis_port);
                        return NULL;
                }
                r = redisCommandArgv(d->rc, argc, argv, NULL);
                if (!r) {
                        snprintf(err, size, "redis: %s", d->rc->errstr);
                        redisFree(d->rc);
                        d->rc = NULL;
                        return NULL;
                }
                if (r->type == REDIS_REPLY_ERROR &&
                    !strncmp(r->str, "MOVED ", 6)) {
                        /* "MOVED <slot> <host>:<port>" */
                        const char *addr = strchr(r->str + 6, ' ');
                        const char *colon = addr ? strrchr(addr, ':') : NULL;
                        if (!colon || colon - addr - 1 <= 0 ||
                            (size_t)(colon - addr - 1) >=
                                sizeof(d->conf.redis_host)) {
                                snprintf(err, size, "redis: %s", r->str);
                                freeReplyObject(r);
                                return NULL;
                        }
                        snprintf(d->conf.redis_host, sizeof(d->conf.redis_host),
                                 "%.*s", (int)(colon - addr - 1), addr + 1);
                        d->conf.redis_port = atoi(colon + 1);
                        freeReplyObject(r);
                        redisFree(d->rc);
                        d->rc = NULL;
                        continue;
                }
                if (r->type == REDIS_REPLY_ERROR) {
                        snprintf(err, size, "redis %s %s: %s", argv[0], argv[1],
                                 r->str);
                        freeReplyObject(r);
                        return NULL;
                }
                return r;
        }
        snprintf(err, size, "redis: redirected too often");
        return NULL;
}

/* A number as JSON: an integer when it is one (counts), else a real. */
static json_t *number(const char *s) {
        char *end;
        double v;
        long long i = strtoll(s, &end, 10);
        if (*s && !*end)
                return json_integer(i);
        v = strtod(s, &end);
        if (*s && !*end)
                return json_real(v);
        return json_string(s);
}

/* Adds the pairs of a hash reply to obj as numbers. */
static int hash_into(json_t *obj, const redisReply *r) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
                return -1;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
                if (json_object_set_new(obj, r->element[i]->str,
                                        number(r->element[i + 1]->str)))
                        return -1;
        return 0;
}

/* The last n KPI days, oldest first, with each day's rule counts summed
 * into rules ({"<rule>": {"triggers": n, "holdout": n, "converted": n,
 * "holdout_converted": n}}). */
static json_t *read_days(dash_t *d, int n, json_t *rules, char *err,
                         size_t size) {
        char key[256], stop[24];
        const char *zr[] = {"ZREVRANGE", key, "0", stop};
        json_t *days = json_array();
        redisReply *list;
        if (!days)
                return NULL;
        set_key(d, LOY_KEY_KPI_DAYS, key, sizeof(key));
        snprintf(stop, sizeof(stop), "%d", n - 1);
        if (!(list = command(d, 4, zr, err, size))) {
                json_decref(days);
                return NULL;
        }
        for (size_t j = list->elements; j-- > 0;) {
                char kkey[256];
                const char *hg[] = {"HGETALL", kkey};
                const char *day = list->element[j]->str;
                json_t *o = json_object();
                redisReply *h;
                snprintf(kkey, sizeof(kkey), "%s:" LOY_KEY_KPI "%s",
                         d->conf.redis_ns, day);
                if (!o || !(h = command(d, 2, hg, err, size))) {
                        json_decref(o);
                        goto fail;
                }
                json_object_set_new(o, "day", json_string(day));
                for (size_t i = 0; i + 1 < h->elements; i += 2) {
                        const char *f = h->element[i]->str;
                        const char *v = h->element[i + 1]->str;
                        static const char *const kinds[] = {
                            "triggers", "holdout", "converted",
                            "holdout_converted"};
                        const char *kind = NULL;
                        for (size_t k = 0; k < 4; k++) {
                                size_t kl = strlen(kinds[k]);
                                if (!strncmp(f, kinds[k], kl) && f[kl] == ':')
                                        kind = kinds[k];
                        }
                        if (kind) {
                                const char *rule = strchr(f, ':') + 1;
                                json_t *r = json_object_get(rules, rule);
                                json_int_t had;
                                if (!r) {
                                        r = json_pack(
                                            "{s:I,s:I,s:I,s:I}", "triggers",
                                            (json_int_t)0, "holdout",
                                            (json_int_t)0, "converted",
                                            (json_int_t)0, "holdout_converted",
                                            (json_int_t)0);
                                        json_object_set_new(rules, rule, r);
                                }
                                had = json_integer_value(
                                    json_object_get(r, kind));
                                json_object_set_new(
                                    r, kind,
                                    json_integer(had + strtoll(v, NULL, 10)));
                        } else {
                                json_object_set_new(o, f, number(v));
                        }
                }
                freeReplyObject(h);
                json_array_append_new(days, o);
        }
        freeReplyObject(list);
        return days;
fail:
        freeReplyObject(list);
        json_decref(days);
        return NULL;
}

static json_t *read_board(dash_t *d, const char *suffix, const char *score,
                          char *err, size_t size) {
        char key[256], stop[24];
        const char *zr[] = {"ZREVRANGE", key, "0", stop, "WITHSCORES"};
        json_t *board = json_array();
        redisReply *r;
        set_key(d, suffix, key, sizeof(key));
        snprintf(stop, sizeof(stop), "%d", BOARD_N - 1);
        if (!board || !(r = command(d, 5, zr, err, size))) {
                json_decref(board);
                return NULL;
        }
        for (size_t i = 0; i + 1 < r->elements; i += 2)
                json_array_append_new(
                    board,
                    json_pack("{s:s,s:f}", "customer", r->element[i]->str,
                              score, strtod(r->element[i + 1]->str, NULL)));
        freeReplyObject(r);
        return board;
}

static json_t *read_hash(dash_t *d, const char *suffix, char *err,
                         size_t size) {
        char key[256];
        const char *hg[] = {"HGETALL", key};
        json_t *o = json_object();
        redisReply *r;
        set_key(d, suffix, key, sizeof(key));
        if (!o || !(r = command(d, 2, hg, err, size))) {
                json_decref(o);
                return NULL;
        }
        if (hash_into(o, r)) {
                snprintf(err, size, "redis HGETALL %s: not a hash", key);
                json_decref(o);
                o = NULL;
        }
        freeReplyObject(r);
        return o;
}

/* Everything the page shows, as one JSON document. NULL with err. */
static json_t *summary(dash_t *d, int ndays, char *err, size_t size) {
        json_t *doc = json_object(), *rules = json_object(), *seg_counts,
               *segs = json_array(), *v;
        if (!doc || !rules || !segs)
                goto fail;
        json_object_set_new(doc, "namespace", json_string(d->conf.redis_ns));
        json_object_set_new(doc, "generated_ms",
                            json_integer((json_int_t)loy_time_wall_ms()));
        if (!(v = read_days(d, ndays, rules, err, size)))
                goto fail;
        json_object_set_new(doc, "days", v);
        json_object_set_new(doc, "rules", rules);
        rules = NULL;
        if (!(seg_counts = read_hash(d, LOY_KEY_SEG, err, size)))
                goto fail;
        /* every segment, in the model's order, zero when none */
        for (int s = 0; s < LOY_SEG__COUNT; s++) {
                const char *name = loy_segment_name(s);
                json_t *c = json_object_get(seg_counts, name);
                json_array_append_new(
                    segs,
                    json_pack("{s:s,s:I}", "segment", name, "customers",
                              (json_int_t)(c ? json_integer_value(c) : 0)));
        }
        json_decref(seg_counts);
        json_object_set_new(doc, "segments", segs);
        segs = NULL;
        if (!(v = read_board(d, LOY_KEY_RANK_CHURN, "churn_prob", err, size)))
                goto fail;
        json_object_set_new(doc, "at_risk", v);
        if (!(v = read_board(d, LOY_KEY_RANK_CLV, "clv", err, size)))
                goto fail;
        json_object_set_new(doc, "top_value", v);
        if (!(v = read_hash(d, LOY_KEY_STATS, err, size)))
                goto fail;
        json_object_set_new(doc, "health", v);
        return doc;
fail:
        if (!err[0])
                snprintf(err, size, "out of memory");
        json_decref(doc);
        json_decref(rules);
        json_decref(segs);
        return NULL;
}

static int parse_days(const char *s, int *days) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < 1 || v > DAYS_MAX)
                return -1;
        *days = (int)v;
        return 0;
}

static int on_page(void *opaque, const char *path, loy_http_req_t *req,
                   const char **type, char **body, size_t *len) {
        dash_t *d = opaque;
        char err[512] = "";
        json_t *doc;
        int ndays = d->days;
        const char *arg;
        if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
                *type = "text/html; charset=utf-8";
                *len = sizeof(ctl_dashboard_html) - 1;
                if ((*body = malloc(*len)))
                        memcpy(*body, ctl_dashboard_html, *len);
                return 200;
        }
        if (strcmp(path, "/api/summary"))
                return 0;
        arg = loy_http_arg(req, "days");
        if (arg && parse_days(arg, &ndays)) {
                *body = strdup("days: want a whole number of days, 1 to "
                               "3660\n");
                *len = *body ? strlen(*body) : 0;
                return 400;
        }
        if (!(doc = summary(d, ndays, err, sizeof(err)))) {
                /* the page says so, and tries again on its next refresh */
                json_t *e = json_pack("{s:s}", "error", err);
                *body = e ? json_dumps(e, 0) : NULL;
                json_decref(e);
                *type = "application/json";
                *len = *body ? strlen(*body) : 0;
                return 503;
        }
        *type = "application/json";
        *body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
        *len = *body ? strlen(*body) : 0;
        json_decref(doc);
        return 200;
}

static volatile sig_atomic_t running = 1;
static void on_signal(int sig) {
        (void)sig;
        running = 0;
}

int ctl_dashboard_main(int argc, char **argv) {
        dash_t d = {.days = DAYS_DEFAULT};
        const char *listen = "127.0.0.1:8090", *once = NULL;
        loy_http_t *h = NULL;
        char err[512] = "";
        int opt, status = 1;
        loy_config_defaults(&d.conf);
        optind = 1;
        while ((opt = getopt(argc, argv, "c:X:l:d:o:h")) != -1) {
                if (opt == 'h') {
                        ctl_dashboard_usage(stdout);
                        loy_config_free(&d.conf);
                        return 0;
                } else if (opt == 'l') {
                        listen = optarg;
                } else if (opt == 'd') {
                        if (parse_days(optarg, &d.days)) {
                                fprintf(stderr,
                                        "dashboard: -d %s: want 1 "
                                        "to %d days\n",
                                        optarg, DAYS_MAX);
                                goto usage;
                        }
                } else if (opt == 'o') {
                        once = optarg;
                } else if (opt == '?' || opt == ':' ||
                           (opt != 'c' && opt != 'X') ||
                           ctl_setting(&d.conf, "dashboard", opt, optarg)) {
                        goto usage;
                }
        }
        if (optind != argc)
                goto usage;
        if (once) {
                json_t *doc = summary(&d, d.days, err, sizeof(err));
                FILE *fp = strcmp(once, "-") ? fopen(once, "w") : stdout;
                if (!doc) {
                        fprintf(stderr, "dashboard: %s\n", err);
                } else if (!fp) {
                        fprintf(stderr, "dashboard: %s: cannot write\n", once);
                } else {
                        status = json_dumpf(doc, fp,
                                            JSON_INDENT(2) |
                                                JSON_REAL_PRECISION(12)) ||
                                 fputc('\n', fp) == EOF;
                        if (fp != stdout && fclose(fp))
                                status = 1;
                }
                json_decref(doc);
                goto out;
        }
        if (!(h = loy_http_start(listen, 60000, err, sizeof(err)))) {
                fprintf(stderr, "dashboard: %s\n", err);
                goto out;
        }
        loy_http_set_page(h, on_page, &d);
        loy_http_set_ready(h, 1, NULL);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        printf("dashboard: http://%.*s:%d/ (Redis %s:%d, namespace %s)\n",
               (int)(strrchr(listen, ':') - listen), listen, loy_http_port(h),
               d.conf.redis_host, d.conf.redis_port, d.conf.redis_ns);
        fflush(stdout);
        while (running) {
                loy_http_beat(h);
                usleep(200 * 1000);
        }
        status = 0;
out:
        loy_http_stop(h);
        if (d.rc)
                redisFree(d.rc);
        loy_config_free(&d.conf);
        return status;
usage:
        ctl_dashboard_usage(stderr);
        loy_config_free(&d.conf);
        return 2;
}
