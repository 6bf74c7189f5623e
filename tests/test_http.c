/*
 * loy_http and loy_metrics: the endpoint answers what the processor
 * published, health follows the loop's beat, readiness what it was told;
 * the exposition text is well formed (names, labels escaped, cumulative
 * histogram buckets).
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loy_http.h"
#include "loy_metrics.h"
#include "tu.h"

static void test_endpoints(void) {
        char err[256], *body;
        loy_http_t *h = loy_http_start("127.0.0.1:0", 1000, err, sizeof(err));
        int port;
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        port = loy_http_port(h);
        CU_ASSERT_TRUE(port > 0);

        /* before the first publish: not ready, no metrics, but alive */
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/metrics", NULL), 503);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/readyz", &body), 503);
        CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "starting") : NULL);
        free(body);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", NULL), 200);

        CU_ASSERT_EQUAL(loy_http_publish(h, "loyaltyd_x 1\n", 13), 0);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/metrics", &body), 200);
        CU_ASSERT_STRING_EQUAL(body ? body : "", "loyaltyd_x 1\n");
        free(body);
        loy_http_set_ready(h, 0, "redis not answering: connection refused");
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/readyz", &body), 503);
        CU_ASSERT_STRING_EQUAL(body ? body : "",
                               "redis not answering: connection refused\n");
        free(body);
        loy_http_set_ready(h, 1, NULL);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/readyz", &body), 200);
        CU_ASSERT_STRING_EQUAL(body ? body : "", "ready\n");
        free(body);

        CU_ASSERT_EQUAL(tu_http(port, "GET", "/", NULL), 404);
        CU_ASSERT_EQUAL(tu_http(port, "POST", "/metrics", NULL), 405);
        CU_ASSERT_EQUAL(tu_http(port, "HEAD", "/healthz", NULL), 200);

        /* the loop silent past stall_ms: unhealthy until it beats again */
        usleep(1300 * 1000);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", &body), 503);
        CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "stalled") : NULL);
        free(body);
        loy_http_beat(h);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", NULL), 200);
        loy_http_stop(h);
        CU_ASSERT_EQUAL(tu_http(port, "GET", "/healthz", NULL), -1);
}

static void test_bad_listen(void) {
        char err[256], spec[64];
        loy_http_t *h, *h2;
        CU_ASSERT_PTR_NULL(loy_http_start("9464", 1000, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "want host:port"));
        CU_ASSERT_PTR_NULL(loy_http_start("no-such-host.invalid:9464", 1000,
                                          err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "no-such-host.invalid"));
        /* a port taken: named, not a crash */
        h = loy_http_start("127.0.0.1:0", 1000, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        snprintf(spec, sizeof(spec), "127.0.0.1:%d", loy_http_port(h));
        h2 = loy_http_start(spec, 1000, err, sizeof(err));
        CU_ASSERT_PTR_NULL(h2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, spec));
        loy_http_stop(h2);
        loy_http_stop(h);
        /* IPv6 loopback in brackets */
        h = loy_http_start("[::1]:0", 1000, err, sizeof(err));
        if (!h)
                printf("\n    (no IPv6 loopback here: %s)\n", err);
        loy_http_stop(h);
}

/* The value of the line that starts with series ("name{labels}"), or -1. */
static double series(const char *text, const char *name) {
        size_t n = strlen(name);
        for (const char *l = text; l && *l;) {
                if (!strncmp(l, name, n) && l[n] == ' ')
                        return atof(l + n + 1);
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        return -1;
}

static void test_render(void) {
        loy_metrics_t *m = loy_metrics_create();
        loy_proc_stats_t st;
        loy_stats_extra_t x;
        loy_rules_t rules;
        loy_metrics_part_t parts[2];
        loy_metrics_in_t in;
        const char *text;
        size_t len;
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        memset(&st, 0, sizeof(st));
        memset(&x, 0, sizeof(x));
        memset(&rules, 0, sizeof(rules));
        memset(parts, 0, sizeof(parts));
        memset(&in, 0, sizeof(in));
        st.events_in = 12;
        st.events_applied = 9;
        st.dead_by_class[LOY_DEAD_DECODE] = 2;
        st.dead_by_class[LOY_DEAD_INVALID] = 1;
        rules.n = 2;
        snprintf(rules.rule[0].name, sizeof(rules.rule[0].name), "winback");
        snprintf(rules.rule[1].name, sizeof(rules.rule[1].name), "odd\"na\\me");
        st.triggers_by_rule[0][0] = 5;
        st.triggers_by_rule[0][1] = 1;
        st.triggers_by_rule[1][0] = 7;
        x.router.io_errors = 3;
        snprintf(parts[0].topic, sizeof(parts[0].topic), "purchases");
        parts[0].partition = 0;
        parts[0].lag = 40;
        snprintf(parts[1].topic, sizeof(parts[1].topic), "purchases");
        parts[1].partition = 1;
        parts[1].lag = -1;
        in.st = &st;
        in.x = &x;
        in.rules = &rules;
        in.parts = parts;
        in.nparts = 2;
        in.redis_up = 1;
        in.ready = 1;
        in.model_version = "2011-12-09-default";
        in.model_mtime_s = 1000;
        in.now_s = 4600;
        loy_metrics_batch(m, 3);     /* 0.003 s */
        loy_metrics_batch(m, 40);    /* 0.04 s */
        loy_metrics_batch(m, 90000); /* past the last bucket */
        CU_ASSERT_EQUAL_FATAL(loy_metrics_render(m, &in, &text, &len), 0);
        CU_ASSERT_EQUAL(strlen(text), len);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_events_in_total"), 12);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_events_applied_total"), 9);
        CU_ASSERT_EQUAL(
            series(text, "loyaltyd_dead_letters_total{reason=\"decode\"}"), 2);
        CU_ASSERT_EQUAL(
            series(text, "loyaltyd_dead_letters_total{reason=\"invalid\"}"), 1);
        CU_ASSERT_EQUAL(
            series(text, "loyaltyd_dead_letters_total{reason=\"apply\"}"), 0);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_triggers_total{rule=\"winback\","
                                     "group=\"reward\"}"),
                        5);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_triggers_total{rule=\"winback\","
                                     "group=\"holdout\"}"),
                        1);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_triggers_total{rule=\"odd\\\"na"
                                     "\\\\me\",group=\"reward\"}"),
                        7);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_batch_duration_seconds_bucket"
                                     "{le=\"0.005\"}"),
                        1);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_batch_duration_seconds_bucket"
                                     "{le=\"0.05\"}"),
                        2);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_batch_duration_seconds_bucket"
                                     "{le=\"30\"}"),
                        2);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_batch_duration_seconds_bucket"
                                     "{le=\"+Inf\"}"),
                        3);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_batch_duration_seconds_count"),
                        3);
        CU_ASSERT_DOUBLE_EQUAL(
            series(text, "loyaltyd_batch_duration_seconds_sum"), 90.043, 1e-9);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_consumer_lag_messages{topic="
                                     "\"purchases\",partition=\"0\"}"),
                        40);
        /* a lag not known yet is left out, not shown as 0 */
        CU_ASSERT_PTR_NULL(strstr(text, "partition=\"1\""));
        CU_ASSERT_EQUAL(series(text, "loyaltyd_partitions_assigned"), 2);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_redis_errors_total{kind="
                                     "\"connection\"}"),
                        3);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_model_info{version="
                                     "\"2011-12-09-default\"}"),
                        1);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_model_age_seconds"), 3600);
        CU_ASSERT_EQUAL(series(text, "loyaltyd_ready"), 1);
        /* every series has its TYPE line, and only once */
        CU_ASSERT_PTR_NOT_NULL(
            strstr(text, "# TYPE loyaltyd_batch_duration_seconds histogram\n"));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(text, "# TYPE loyaltyd_dead_letters_total counter\n"));
        CU_ASSERT_PTR_NULL(strstr(strstr(text, "# TYPE loyaltyd_ready ") + 1,
                                  "# TYPE loyaltyd_ready "));
        /* and Prometheus's own linter takes it (promtool: scripts/bootstrap.sh)
         */
        {
                char path[] = "/tmp/loy-metrics-XXXXXX", cmd[256];
                int fd = mkstemp(path);
                FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
                CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
                fwrite(text, 1, len, fp);
                fclose(fp);
                snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
                CU_ASSERT_EQUAL(system(cmd), 0);
                unlink(path);
        }
        loy_metrics_destroy(m);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"/metrics /healthz /readyz answer what they were given",
             test_endpoints},
            {"a listen address that does not work is named", test_bad_listen},
            {"the exposition text", test_render},
        };
        return tu_cunit_main("http", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
