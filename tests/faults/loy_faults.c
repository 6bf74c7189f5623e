/*
 * loy_faults: the fault suite. Drives the real loyaltyd binary against a
 * real redis-server and librdkafka's mock cluster hosted in this process,
 * breaks things on a seeded schedule, and compares the end state with an
 * undisturbed reference run of the same input. docs/faults.md.
 *
 *   loy_faults [--quick] [--seed N] [--iterations N] [--events N]
 *              [--bin PATH] [--data PATH] [--keep] [SCENARIO ...]
 *
 * Scenarios: clean2 kill9 redis kafka hostile (default: all). Exit status 0
 * when every scenario passed, 1 when an invariant broke, 2 on a setup
 * error.
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fx.h"
#include "hostile/hostile.h"
#include "loy_codec.h"
#include "loy_hash.h"
#include "loy_cluster.h"
#include "loy_store.h"

#ifndef LOY_FAULTS_BUILD_DIR
#define LOY_FAULTS_BUILD_DIR "build"
#endif

#define NS "loy"
#define NPARTS 8
#define GROUP "loy-faults"
#define C_SHOW_MAX 40

static const char *const IN_TOPICS[] = {"purchases", "browse"};

static struct {
        int quick;
        uint64_t seed;
        int iterations; /* 0: the scenario's default */
        int events;     /* 0: quick 2000, full all */
        const char *bin;
        const char *data;
        const char *conf;
        char logdir[256];
        int keep;
        int settle_s;
} opt;

/* The undisturbed run everything is compared with. */
static struct {
        int done, ok;
        fx_data_t data;
        fx_snap_t snap;
        fx_ids_t ids;
        double events; /* orders + returns over customers */
        int64_t ms;
} ref;

/* ------------------------------------------------------------ plumbing */

static int make_topics(tu_kafka_t *k) {
        return tu_kafka_topic(k, "purchases", NPARTS) ||
               tu_kafka_topic(k, "browse", NPARTS) ||
               tu_kafka_topic(k, "reward-triggers", 4) ||
               tu_kafka_topic(k, "loyaltyd-deadletter", 4);
}

/* Cluster, Redis and the loyaltyd settings of one scenario. */
static int env_open(fx_env_t *e, fx_result_t *res, const char *tag, int brokers,
                    int aof, const char *const *redis_args) {
        memset(e, 0, sizeof(*e));
        e->res = res;
        e->tag = tag;
        e->bin = opt.bin;
        e->conf = opt.conf;
        e->logdir = opt.logdir;
        e->group = GROUP;
        e->kafka = tu_kafka_start(brokers);
        e->redis = calloc(1, sizeof(*e->redis));
        if (!e->kafka || !e->redis || make_topics(e->kafka))
                return -1;
        if (tu_redis_start_args(e->redis, aof, redis_args) != 0) {
                fprintf(stderr, "loy_faults: redis-server did not start\n");
                return -1;
        }
        /* short sessions: a killed member is noticed in 3 s */
        fx_env_x(e, "kafka.session.timeout.ms=3000");
        fx_env_x(e, "kafka.heartbeat.interval.ms=500");
        /* a request to a mock broker that was taken down or slowed can
         * hang until socket.timeout.ms (60 s by default) before librdkafka
         * gives up on it and retries: longer than a scenario's settle
         * time, though nothing is lost (measured: a produce stuck 69 s) */
        fx_env_x(e, "kafka.socket.timeout.ms=10000");
        /* LOY_FAULTS_X="kafka.debug=cgrp ...": more -X for every loyaltyd
         * of the run, to replay a failure with more in its logs */
        if (getenv("LOY_FAULTS_X")) {
                char xs[1024], *save = NULL;
                snprintf(xs, sizeof(xs), "%s", getenv("LOY_FAULTS_X"));
                for (char *x = strtok_r(xs, " ", &save); x;
                     x = strtok_r(NULL, " ", &save))
                        fx_env_x(e, "%s", x);
        }
        return 0;
}

static void env_close(fx_env_t *e) {
        fx_data_close();
        for (int i = 0; i < FX_PROCS_MAX; i++)
                if (e->procs[i].pid > 0)
                        fx_kill9(e, i);
        if (e->redis) {
                if (e->redis->pid <= 0 && e->redis->dir[0])
                        tu_redis_restart(e->redis); /* so stop cleans up */
                tu_redis_stop(e->redis);
                free(e->redis);
        }
        tu_kafka_stop(e->kafka);
        for (int i = 0; i < e->nxargs; i++)
                free((void *)e->xargs[i]);
        memset(e, 0, sizeof(*e));
}

static int settle(fx_env_t *e, int timeout_s, int restart) {
        return fx_settle(e, IN_TOPICS, 2, NPARTS, NS, 1500, timeout_s * 1000,
                         restart);
}

static uint64_t scenario_seed(const char *name) {
        uint64_t h = loy_hash64_update(opt.seed, name, strlen(name));
        return h & 0xffffffffffffULL; /* short enough to type */
}

/* Fields that are pure counts or sums of a customer's events (or the
 * offsets fencing them): a lost or double-counted event changes one. */
static int counting_field(const char *f) {
        static const char *const names[] = {"orders",
                                            "returns",
                                            "frequency",
                                            "gross_value",
                                            "return_value",
                                            "first_purchase_ms",
                                            "last_purchase_ms",
                                            "first_day_value",
                                            "views",
                                            "carts",
                                            "cart_removes",
                                            "searches",
                                            "wishlists",
                                            "last_event_ms",
                                            "last_browse_ms",
                                            NULL};
        if (!strncmp(f, "off:", 4))
                return 1;
        for (int i = 0; names[i]; i++)
                if (!strcmp(f, names[i]))
                        return 1;
        return 0;
}

/* KPI fields counting events; triggers:* and holdout:* count rule
 * decisions, compared through the trigger ids instead. */
static int kpi_field(const char *f) {
        return strcmp(f, "repurchase_rate") && strncmp(f, "triggers:", 9) &&
               strncmp(f, "holdout:", 8);
}

static int num_equal(const char *a, const char *b) {
        double x = atof(a), y = atof(b), m;
        if (!strcmp(a, b))
                return 1;
        m = x < 0 ? -x : x;
        if ((y < 0 ? -y : y) > m)
                m = y < 0 ? -y : y;
        return (x - y < 0 ? y - x : x - y) <= 1e-9 * (m > 1 ? m : 1);
}

/* The exactly-once invariant on its own: per-customer counts, sums and
 * applied offsets, and the daily KPI counts and sums (numbers compared
 * within 1e-9 relative: a sum's last digits depend on the batch
 * boundaries). Returns the number of differences. */
static int check_counting(const fx_snap_t *ref_s, const fx_snap_t *got,
                          fx_result_t *res) {
        char cpre[32], kpre[32];
        int i = 0, j = 0, nd = 0, shown = 0;
        snprintf(cpre, sizeof(cpre), "%s:c:{", NS);
        snprintf(kpre, sizeof(kpre), "%s:" LOY_KEY_KPI, NS);
        while (i < ref_s->n || j < got->n) {
                int c = i == ref_s->n ? 1
                        : j == got->n ? -1
                                      : strcmp(ref_s->e[i].k, got->e[j].k);
                const fx_ent_t *e = c <= 0 ? &ref_s->e[i] : &got->e[j];
                const char *tab = strchr(e->k, '\t');
                const char *f = tab ? tab + 1 : "";
                int relevant =
                    tab && e->type == 'h' &&
                    ((!strncmp(e->k, cpre, strlen(cpre)) && tab[-1] == '}' &&
                      counting_field(f)) ||
                     (!strncmp(e->k, kpre, strlen(kpre)) && kpi_field(f)));
                if (relevant &&
                    (c != 0 || !num_equal(ref_s->e[i].v, got->e[j].v))) {
                        if (shown++ < 12)
                                printf("    count   %.*s %s: ref=%s got=%s\n",
                                       (int)(tab - e->k), e->k, f,
                                       c <= 0 ? ref_s->e[i].v : "(none)",
                                       c >= 0 ? got->e[j].v : "(none)");
                        nd++;
                }
                if (c <= 0)
                        i++;
                if (c >= 0)
                        j++;
        }
        if (nd)
                fx_fail(res,
                        "exactly-once broken: %d per-customer counts, "
                        "sums, offsets or KPI counts differ from the "
                        "reference",
                        nd);
        else
                printf("  exactly-once: every per-customer count, sum and "
                       "offset and every KPI event count and sum equal to "
                       "the reference\n");
        return nd;
}

/* loy:{agg}:seg must count the customers by their segment_name. */
static int check_seg(const fx_snap_t *s, fx_result_t *res) {
        char cpre[32], seg[32];
        struct {
                char name[32];
                long hash, count;
        } t[16];
        int nt = 0, bad = 0;
        snprintf(cpre, sizeof(cpre), "%s:c:{", NS);
        snprintf(seg, sizeof(seg), "%s:" LOY_KEY_SEG "\t", NS);
        memset(t, 0, sizeof(t));
        for (int i = 0; i < s->n; i++) {
                const char *k = s->e[i].k, *tab = strchr(k, '\t'), *name;
                int from_hash;
                if (!tab)
                        continue;
                from_hash = !strncmp(k, cpre, strlen(cpre)) && tab[-1] == '}' &&
                            !strcmp(tab + 1, "segment_name");
                if (!from_hash && strncmp(k, seg, strlen(seg)))
                        continue;
                name = from_hash ? s->e[i].v : tab + 1;
                int j;
                for (j = 0; j < nt; j++)
                        if (!strcmp(t[j].name, name))
                                break;
                if (j == nt) {
                        if (nt == 16)
                                continue;
                        snprintf(t[nt++].name, sizeof(t[0].name), "%s", name);
                }
                if (from_hash)
                        t[j].hash++;
                else
                        t[j].count += atol(s->e[i].v);
        }
        for (int j = 0; j < nt; j++)
                if (t[j].hash != t[j].count) {
                        if (!bad++)
                                printf("  %s:" LOY_KEY_SEG " vs customers' "
                                       "segment_name (seg count / "
                                       "customers):\n",
                                       NS);
                        printf("    %-16s %ld / %ld\n", t[j].name, t[j].count,
                               t[j].hash);
                }
        if (bad)
                fx_fail(res,
                        "%s:" LOY_KEY_SEG " disagrees with the "
                        "customer hashes in %d segments",
                        NS, bad);
        return bad;
}

/* Silent customers are not forgotten: once everything is consumed and the
 * processes idle, no timer may stay due at or before the event-time clock
 * they published (loy:stats clock_ms). Returns the number overdue. */
static int check_timers(const fx_snap_t *s, const fx_env_t *e, const char *who,
                        fx_result_t *res) {
        char pre[32];
        double clock = fx_env_stat(e, NS, "clock_ms");
        int overdue = 0, total = 0;
        const char *ex = NULL;
        snprintf(pre, sizeof(pre), "%s:timers:", NS);
        for (int i = 0; i < s->n; i++) {
                if (s->e[i].type != 'z' || strncmp(s->e[i].k, pre, strlen(pre)))
                        continue;
                total++;
                if (atof(s->e[i].v) <= clock) {
                        if (!overdue)
                                ex = s->e[i].k;
                        overdue++;
                }
        }
        if (overdue) {
                printf("  %s: %d of %d timers due at or before clock_ms "
                       "%.0f are still waiting (e.g. %s)\n",
                       who, overdue, total, clock, ex);
                if (res)
                        fx_fail(res, "%d due timers not fired once settled",
                                overdue);
        }
        return overdue;
}

/* Stops every process (clean exits checked), then compares the state and
 * the trigger ids with the reference. */
static void compare_with_ref(fx_env_t *e, fx_result_t *res) {
        fx_snap_t got;
        fx_ids_t ids;
        long outbox;
        int nd;

        fx_term_all(e);
        if (fx_env_snap(e, NS, &got) != 0) {
                fx_fail(res, "could not read the final state from Redis");
                return;
        }
        printf("  state: %d keys, %d entries (reference %d keys, %d "
               "entries); events counted %.0f (reference %.0f)\n",
               got.keys, got.n, ref.snap.keys, ref.snap.n,
               fx_snap_sum(&got, NS, "orders") +
                   fx_snap_sum(&got, NS, "returns"),
               ref.events);
        check_counting(&ref.snap, &got, res);
        check_seg(&got, res);
        check_timers(&got, e, "this run", res);
        nd = fx_snap_diff(&ref.snap, &got, NS, 12);
        if (nd)
                fx_fail(res, "%d state entries differ from the reference", nd);
        outbox = fx_env_outbox(e, NS);
        if (outbox != 0)
                fx_fail(res, "outbox not empty at the end: %ld", outbox);
        fx_snap_free(&got);
        if (fx_ids_read(e->kafka, "reward-triggers", &ids) != 0) {
                fx_fail(res, "could not read the trigger topic");
                return;
        }
        if (fx_ids_compare(&ref.ids, &ids, 10))
                fx_fail(res, "trigger ids differ from the reference");
        fx_ids_free(&ids);
}

/* ----------------------------------------------------------- reference */

/* One undisturbed run of the data slice, shared by every scenario. */
static int reference(void) {
        fx_result_t res = {"reference", 0, 0, fx_now_ms()};
        fx_env_t e;
        const char *path = opt.data;
        if (ref.done)
                return ref.ok ? 0 : -1;
        ref.done = 1;
        if (fx_data_load(&ref.data, path, opt.events) != 0)
                return -1;
        printf("reference: %d messages of %s (%d purchases, %d returns, "
               "%d forget requests)\n",
               ref.data.n, path, ref.data.purchases, ref.data.returns,
               ref.data.forgets);
        fflush(stdout);
        if (env_open(&e, &res, "reference", 1, 0, NULL) != 0 ||
            fx_data_produce(e.kafka, "purchases", &ref.data, 0, ref.data.n) !=
                0) {
                env_close(&e);
                return -1;
        }
        fx_spawn(&e, 0);
        if (settle(&e, opt.settle_s * 2, 0) == 0 &&
            fx_term(&e, 0, 30000) == 0 &&
            fx_snap_take(e.redis->port, NS, &ref.snap) == 0 &&
            fx_ids_read(e.kafka, "reward-triggers", &ref.ids) == 0) {
                check_timers(&ref.snap, &e, "reference", NULL);
                ref.events = fx_snap_sum(&ref.snap, NS, "orders") +
                             fx_snap_sum(&ref.snap, NS, "returns");
                ref.ok = res.fails == 0;
        }
        ref.ms = fx_now_ms() - res.t0_ms;
        printf("reference: %s in %.1f s: %d keys, %d entries, %.0f events "
               "counted of %d, %d trigger ids\n",
               ref.ok ? "done" : "FAILED", ref.ms / 1000.0, ref.snap.keys,
               ref.snap.n, ref.events, ref.data.n, ref.ids.n);
        if (ref.ok && ref.events != ref.data.n)
                printf("  note: the reference itself counted %.0f of %d "
                       "events (compare with the data set's own checks)\n",
                       ref.events, ref.data.n);
        fflush(stdout);
        env_close(&e);
        return ref.ok ? 0 : -1;
}

/* -------------------------------------------------------------- clean2 */

/* A second undisturbed run: anything that differs here depends on wall
 * time or scheduling, not on faults. */
static void sc_clean2(fx_result_t *res) {
        fx_env_t e;
        if (env_open(&e, res, "clean2", 1, 0, NULL) != 0 ||
            fx_data_produce(e.kafka, "purchases", &ref.data, 0, ref.data.n) !=
                0) {
                fx_fail(res, "setup failed");
                env_close(&e);
                return;
        }
        fx_spawn(&e, 0);
        settle(&e, opt.settle_s, 0);
        compare_with_ref(&e, res);
        env_close(&e);
}

/* --------------------------------------------------------------- kill9 */

enum { K_START, K_MIDBATCH, K_SIGTERM, K_TIMER, K_AGG_TWICE, K__COUNT };
static const char *const kmode[] = {"right-after-start", "mid-batch",
                                    "during-SIGTERM", "timer-burst",
                                    "after-aggregates-twice"};

/* Slot 0 restarted with a failpoint that kills it once its first batch's
 * aggregates landed, before its customers. 1 when it died there, 0 when
 * it got no batch to die in (it is left running). */
static int die_after_aggregates(fx_env_t *e) {
        int64_t end = fx_now_ms() + (opt.quick ? 8000 : 15000);
        e->procs[0].failpoint = "kill-after-aggregates:1";
        fx_spawn(e, 0);
        e->procs[0].failpoint = NULL;
        /* the SIGKILL is the failpoint's, so ours */
        e->procs[0].killed = 1;
        while (fx_now_ms() < end) {
                fx_reap(e, 0);
                if (!fx_alive(e, 0))
                        return 1;
                fx_sleep_ms(10);
        }
        return 0;
}

/* Two crashes between a batch's aggregates and its customers, the redo
 * bigger than the batch it redoes: a few events of the slice first, then
 * the rest. The redo scores the first batch's customers as the crashed
 * batch did (their moves are already counted) and others anew, and must
 * keep the former listed until their hashes land. */
static void agg_twice(fx_env_t *e, int k, int *produced, int to) {
        int first = *produced + 40 < to ? *produced + 40 : to, died;
        if (*produced < first &&
            fx_data_produce(e->kafka, "purchases", &ref.data, *produced,
                            first) == 0)
                *produced = first;
        died = die_after_aggregates(e);
        if (*produced < to && fx_data_produce(e->kafka, "purchases", &ref.data,
                                              *produced, to) == 0)
                *produced = to;
        if (died)
                died += die_after_aggregates(e);
        if (died < 2)
                printf("  kill %d: %s: died there %d of 2 times (no batch "
                       "with aggregates to die in)\n",
                       k, kmode[K_AGG_TWICE], died);
        fx_kill9(e, 0);
}

/* Waits until stats field grows past base (or timeout); 0 when it did. */
static int wait_stat_growth(fx_env_t *e, const char *field, double base,
                            int timeout_ms) {
        int64_t end = fx_now_ms() + timeout_ms;
        while (fx_now_ms() < end) {
                if (fx_stat(e->redis->port, NS, field) > base)
                        return 0;
                if (!fx_alive(e, 0))
                        return -1;
                fx_sleep_ms(5);
        }
        return -1;
}

static void sc_kill9(fx_result_t *res, fx_rng_t *rng) {
        fx_env_t e;
        int kills = opt.iterations ? opt.iterations : opt.quick ? 4 : 100;
        int n = ref.data.n, produced = 0, done[K__COUNT] = {0};
        int chunk = (n + kills - 1) / kills;
        if (env_open(&e, res, "kill9", 1, 0, NULL) != 0) {
                fx_fail(res, "setup failed");
                env_close(&e);
                return;
        }
        printf("  %d kills, %d events fed in slices of %d\n", kills, n, chunk);
        for (int k = 0; k < kills; k++) {
                int mode = (int)fx_rng_range(rng, 0, K__COUNT - 1);
                int to = produced + chunk;
                double in0, t0;
                if (to > n)
                        to = n;
                /* the quick run has few kills: one is always this one */
                if (k == kills / 2)
                        mode = K_AGG_TWICE;
                if (mode == K_AGG_TWICE) {
                        agg_twice(&e, k, &produced, to);
                        done[mode]++;
                        continue;
                }
                if (produced < to &&
                    fx_data_produce(e.kafka, "purchases", &ref.data, produced,
                                    to) == 0)
                        produced = to;
                in0 = fx_stat(e.redis->port, NS, "events_in");
                t0 = fx_stat(e.redis->port, NS, "timers_fired");
                fx_spawn(&e, 0);
                switch (mode) {
                case K_START:
                        fx_sleep_ms((int)fx_rng_range(rng, 0, 2500));
                        break;
                case K_MIDBATCH:
                        wait_stat_growth(&e, "events_in", in0,
                                         opt.quick ? 6000 : 15000);
                        fx_sleep_ms((int)fx_rng_range(rng, 0, 150));
                        break;
                case K_TIMER:
                        if (wait_stat_growth(&e, "timers_fired", t0,
                                             opt.quick ? 4000 : 15000) == 0)
                                fx_sleep_ms((int)fx_rng_range(rng, 0, 20));
                        break;
                case K_SIGTERM: {
                        int delay = (int)fx_rng_range(rng, 0, 400), st;
                        wait_stat_growth(&e, "events_in", in0,
                                         opt.quick ? 6000 : 15000);
                        if (!fx_alive(&e, 0))
                                break;
                        e.procs[0].termed = 1;
                        kill(e.procs[0].pid, SIGTERM);
                        for (int t = 0; t < delay; t += 5) {
                                if (waitpid(e.procs[0].pid, &st, WNOHANG) ==
                                    e.procs[0].pid) {
                                        e.procs[0].pid = 0;
                                        if (!WIFEXITED(st) ||
                                            WEXITSTATUS(st) != 0) {
                                                e.crashes++;
                                                fx_fail(res,
                                                        "loyaltyd #%d "
                                                        "exit after SIGTERM: "
                                                        "status 0x%x",
                                                        e.procs[0].seq, st);
                                        }
                                        break;
                                }
                                fx_sleep_ms(5);
                        }
                        break;
                }
                }
                fx_kill9(&e, 0);
                done[mode]++;
        }
        printf("  kills:");
        for (int m = 0; m < K__COUNT; m++)
                printf(" %d %s", done[m], kmode[m]);
        printf("\n");
        if (produced < n)
                fx_data_produce(e.kafka, "purchases", &ref.data, produced, n);
        fx_spawn(&e, 0);
        settle(&e, opt.settle_s, 0);
        compare_with_ref(&e, res);
        env_close(&e);
}

/* --------------------------------------------------------------- redis */

enum { R_KILL, R_OOM, R_READONLY, R_MISCONF, R_SLOW };
static const char *const rname[] = {"kill-9", "OOM", "READONLY", "MISCONF",
                                    "DEBUG SLEEP"};
static const char *const redis_debug_args[] = {
    "--enable-debug-command", "local", "--enable-protected-configs", "local",
    NULL};

/* A write from outside during a window: did the window take effect? */
static void probe_write(fx_env_t *e, const char *want) {
        char *r = fx_redis(e->redis->port, "SET loy-faults-probe 1");
        if (!r || !strstr(r, want))
                printf("    (window check: a write answered '%.60s', "
                       "expected %s)\n",
                       r ? r : "(no answer)", want);
        free(r);
}

/* The next slice of events goes in while the fault is on. */
static void feed(fx_env_t *e, int *produced, int to) {
        if (fx_data_produce(e->kafka, "purchases", &ref.data, *produced, to) ==
            0)
                *produced = to;
        else
                fx_fail(e->res, "could not produce events %d..%d", *produced,
                        to);
}

static void redis_fault(fx_env_t *e, int kind, fx_rng_t *rng, int *produced,
                        int to) {
        int port = e->redis->port;
        int ms = (int)fx_rng_range(rng, opt.quick ? 1000 : 1500,
                                   opt.quick ? 1500 : 4000);
        int64_t t0 = fx_now_ms();
        char *r;
        switch (kind) {
        case R_KILL:
                tu_redis_kill(e->redis, SIGKILL);
                feed(e, produced, to);
                fx_sleep_ms((int)fx_rng_range(rng, 100, 2000));
                if (tu_redis_restart_args(e->redis, redis_debug_args) != 0)
                        fx_fail(e->res, "redis-server did not come back");
                return;
        case R_OOM:
                free(fx_redis(port, "CONFIG SET maxmemory 1"));
                probe_write(e, "OOM");
                feed(e, produced, to);
                fx_sleep_ms(ms - (int)(fx_now_ms() - t0));
                free(fx_redis(port, "CONFIG SET maxmemory 0"));
                return;
        case R_READONLY:
                /* a replica of nobody: writes answer READONLY */
                free(fx_redis(port, "REPLICAOF 127.0.0.1 1"));
                probe_write(e, "READONLY");
                feed(e, produced, to);
                fx_sleep_ms(ms - (int)(fx_now_ms() - t0));
                free(fx_redis(port, "REPLICAOF NO ONE"));
                return;
        case R_MISCONF: {
                char dir[300], *d0;
                snprintf(dir, sizeof(dir), "%s/gone", e->redis->dir);
                mkdir(dir, 0755);
                d0 = fx_redis(port, "CONFIG SET dir %s", dir);
                free(d0);
                rmdir(dir); /* the snapshot cannot be written any more */
                free(fx_redis(port, "CONFIG SET save %s", "3600 1"));
                free(fx_redis(port, "BGSAVE"));
                fx_sleep_ms(300);
                probe_write(e, "MISCONF");
                feed(e, produced, to);
                fx_sleep_ms(ms - (int)(fx_now_ms() - t0));
                free(fx_redis(port, "CONFIG SET dir %s", e->redis->dir));
                free(fx_redis(port, "BGSAVE"));
                for (int i = 0; i < 100; i++) {
                        r = fx_redis(port, "INFO persistence");
                        if (r && strstr(r, "rdb_last_bgsave_status:ok") &&
                            strstr(r, "rdb_bgsave_in_progress:0")) {
                                free(r);
                                break;
                        }
                        free(r);
                        fx_sleep_ms(50);
                }
                free(fx_redis(port, "CONFIG SET save %s", ""));
                return;
        }
        case R_SLOW:
                feed(e, produced, to);
                fx_sleep_ms((int)fx_rng_range(rng, 0, 100));
                r = fx_redis(port, "DEBUG SLEEP 2");
                if (!r || strncmp(r, "OK", 2))
                        printf("    (DEBUG SLEEP answered '%.60s')\n",
                               r ? r : "(no answer)");
                free(r);
                return;
        }
}

static void sc_redis(fx_result_t *res, fx_rng_t *rng) {
        fx_env_t e;
        int kills = opt.iterations ? opt.iterations : opt.quick ? 1 : 10;
        int slows = opt.quick ? 1 : 3;
        int nf = kills + 3 + slows, *plan = malloc((size_t)nf * sizeof(int));
        int n = ref.data.n, produced = 0, chunk;
        int64_t t_end;
        if (!plan || env_open(&e, res, "redis", 1, 1, redis_debug_args)) {
                fx_fail(res, "setup failed");
                free(plan);
                env_close(&e);
                return;
        }
        for (int i = 0; i < nf; i++)
                plan[i] = i < kills       ? R_KILL
                          : i < kills + 3 ? R_OOM + (i - kills)
                                          : R_SLOW;
        for (int i = nf - 1; i > 0; i--) {
                int j = (int)fx_rng_range(rng, 0, i), t = plan[i];
                plan[i] = plan[j];
                plan[j] = t;
        }
        chunk = (n + nf) / (nf + 1);
        fx_spawn(&e, 0);
        for (int i = 0; i < nf; i++) {
                int to = produced + chunk > n ? n : produced + chunk;
                fx_sleep_ms(
                    (int)fx_rng_range(rng, 200, opt.quick ? 500 : 1000));
                printf("  fault %d/%d: %s\n", i + 1, nf, rname[plan[i]]);
                fflush(stdout);
                redis_fault(&e, plan[i], rng, &produced, to);
                fx_reap(&e, 1);
        }
        fx_data_produce(e.kafka, "purchases", &ref.data, produced, n);
        t_end = fx_now_ms();
        /* no restart: processing must resume by itself */
        if (settle(&e, opt.settle_s, 0) == 0)
                printf("  resumed and caught up %.1f s after the last "
                       "fault\n",
                       (fx_now_ms() - t_end) / 1000.0);
        compare_with_ref(&e, res);
        free(plan);
        env_close(&e);
}

/* --------------------------------------------------------------- kafka */

enum {
        F_BROKER,
        F_FETCH,
        F_PRODUCE,
        F_COMMIT,
        F_RTT,
        F_ADD,
        F_KILL,
        F_FREEZE,
        F_THAW_TERM,
        F_FREEZE_AGG,
        F__COUNT
};
static const char *const fname[] = {
    "broker down/up",
    "Fetch errors",
    "Produce errors",
    "OffsetCommit errors",
    "RTT",
    "member added",
    "member kill -9",
    "member frozen (SIGSTOP)",
    "member frozen, SIGTERM as it wakes",
    "member frozen between its aggregates and its customers"};

static int frozen_after_agg; /* F_FREEZE_AGG faults that hit their moment */

/* 1 once process pid is stopped (state T in /proc), 0 after timeout_ms. */
static int wait_stopped(pid_t pid, int timeout_ms) {
        int64_t until = fx_now_ms() + timeout_ms;
        while (fx_now_ms() < until) {
                char path[64], buf[512], *rp;
                FILE *f;
                size_t n;
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
                if (!(f = fopen(path, "r")))
                        return 0;
                n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = '\0';
                /* "pid (comm) S ...": the state follows the last ')' */
                rp = strrchr(buf, ')');
                if (rp && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't'))
                        return 1;
                fx_sleep_ms(20);
        }
        return 0;
}

static int pick_alive(fx_env_t *e, fx_rng_t *rng) {
        int alive[FX_PROCS_MAX], n = 0;
        for (int i = 0; i < 3; i++)
                if (fx_alive(e, i) && !e->procs[i].stopped)
                        alive[n++] = i;
        return n ? alive[fx_rng_range(rng, 0, n - 1)] : -1;
}

/* Enqueues the next slice without waiting for its delivery (a broker may
 * be down right now); kafka_fault flushes after the fault. */
static void enqueue(fx_env_t *e, int *produced, int to) {
        if (*produced < to && fx_data_enqueue(e->kafka, "purchases", &ref.data,
                                              *produced, to) == 0)
                *produced = to;
}

static void kafka_fault(fx_env_t *e, int kind, fx_rng_t *rng, int *produced,
                        int to) {
        rd_kafka_mock_cluster_t *mc = tu_kafka_mock(e->kafka);
        int ms = (int)fx_rng_range(rng, opt.quick ? 1000 : 1500,
                                   opt.quick ? 1500 : 4000);
        int32_t b = (int32_t)fx_rng_range(rng, 1, 3);
        int slot;
        int64_t t0 = fx_now_ms();
        switch (kind) {
        case F_BROKER:
                printf("    broker %d down for %d ms\n", (int)b, ms);
                rd_kafka_mock_broker_set_down(mc, b);
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                rd_kafka_mock_broker_set_up(mc, b);
                break;
        case F_FETCH:
                rd_kafka_mock_push_request_errors(
                    mc, 1 /* Fetch */, 6,
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                break;
        case F_PRODUCE:
                rd_kafka_mock_push_request_errors(
                    mc, 0 /* Produce */, 5,
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                break;
        case F_COMMIT:
                rd_kafka_mock_push_request_errors(
                    mc, 8 /* OffsetCommit */, 5,
                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                    RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                    RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                break;
        case F_RTT: {
                int rtt = (int)fx_rng_range(rng, 200, 1000);
                printf("    broker %d RTT %d ms for %d ms\n", (int)b, rtt, ms);
                rd_kafka_mock_broker_set_rtt(mc, b, rtt);
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                rd_kafka_mock_broker_set_rtt(mc, b, 0);
                break;
        }
        case F_ADD:
                for (slot = 0; slot < 3 && fx_alive(e, slot); slot++)
                        ;
                if (slot < 3) {
                        printf("    member in slot %d added\n", slot);
                        fx_spawn(e, slot);
                }
                enqueue(e, produced, to);
                fx_sleep_ms(ms);
                break;
        case F_KILL:
                slot = pick_alive(e, rng);
                if (slot >= 0) {
                        printf("    member in slot %d killed\n", slot);
                        fx_kill9(e, slot);
                        enqueue(e, produced, to);
                        fx_sleep_ms((int)fx_rng_range(rng, 200, 2000));
                        fx_spawn(e, slot);
                }
                break;
        case F_FREEZE:
                slot = pick_alive(e, rng);
                if (slot >= 0) {
                        int fr = 3000 +
                                 (int)fx_rng_range(rng, opt.quick ? 500 : 1000,
                                                   opt.quick ? 1000 : 3000);
                        printf("    member in slot %d frozen for %d ms\n", slot,
                               fr);
                        kill(e->procs[slot].pid, SIGSTOP);
                        e->procs[slot].stopped = 1;
                        enqueue(e, produced, to);
                        fx_sleep_ms(fr);
                        kill(e->procs[slot].pid, SIGCONT);
                        e->procs[slot].stopped = 0;
                }
                break;
        case F_FREEZE_AGG:
                /* The worst moment to freeze (issue 8): the batch's
                 * aggregates are in, its customers not sent. The member
                 * restarted with LOY_FAILPOINT stops itself there; the
                 * other one takes its partitions over and writes the same
                 * customers; woken up, it must not overwrite them. */
                slot = pick_alive(e, rng);
                if (slot >= 0) {
                        char fp[64];
                        int k = (int)fx_rng_range(rng, 1, 2);
                        /* past the session timeout (3 s) and the
                         * rebalance that gives its partitions to the
                         * other member, which then writes them */
                        int fr = 3000 + (int)fx_rng_range(rng, 5000, 7000);
                        snprintf(fp, sizeof(fp), "stop-after-aggregates:%d", k);
                        fx_term(e, slot, 30000);
                        e->procs[slot].failpoint = fp;
                        fx_spawn(e, slot);
                        e->procs[slot].failpoint = NULL;
                        /* the slice once the member has partitions: sent
                         * before, the other member may read all of it and
                         * leave this one no batch to stop in */
                        if (!fx_log_wait(e, slot, "proc: assigned ", 20000))
                                printf("    member in slot %d got no "
                                       "partitions within 20 s\n",
                                       slot);
                        enqueue(e, produced, to);
                        if (!wait_stopped(e->procs[slot].pid, 30000)) {
                                printf("    member in slot %d did not reach "
                                       "batch %d; restarted without the "
                                       "failpoint\n",
                                       slot, k);
                                /* still armed, it would stop itself
                                 * during a later fault (seed 105897542:
                                 * under fault 10's SIGTERM, which it then
                                 * never saw) */
                                fx_term(e, slot, 30000);
                                fx_spawn(e, slot);
                                break;
                        }
                        e->procs[slot].stopped = 1;
                        frozen_after_agg++;
                        printf("    member in slot %d stopped itself after "
                               "the aggregates of batch %d; woken after "
                               "%d ms\n",
                               slot, k, fr);
                        fx_sleep_ms(fr);
                        kill(e->procs[slot].pid, SIGCONT);
                        e->procs[slot].stopped = 0;
                }
                break;
        case F_THAW_TERM:
                /* Woken past the session timeout, the member finds itself
                 * out of the group ("Unknown member" on its commits) while
                 * its assignment is being taken away; stopped right then,
                 * it must still exit cleanly (librdkafka 2.0.2 asserted in
                 * rd_kafka_consumer_close here: docs/faults.md). */
                slot = pick_alive(e, rng);
                if (slot >= 0) {
                        int fr = 3500 + (int)fx_rng_range(rng, 0, 1500);
                        /* SIGTERM while it finds out it is no longer in
                         * the group: right away, or while its commits
                         * fail and it rejoins */
                        int after = (int)fx_rng_range(rng, 0, 400);
                        printf("    member in slot %d frozen for %d ms, "
                               "SIGTERM %d ms after it wakes\n",
                               slot, fr, after);
                        kill(e->procs[slot].pid, SIGSTOP);
                        e->procs[slot].stopped = 1;
                        enqueue(e, produced, to);
                        fx_sleep_ms(fr);
                        kill(e->procs[slot].pid, SIGCONT);
                        e->procs[slot].stopped = 0;
                        fx_sleep_ms(after);
                        fx_term(e, slot, 30000);
                        fx_spawn(e, slot);
                }
                break;
        }
        enqueue(e, produced, to); /* when the fault found no member */
        /* the delivery of the slice, after the fault */
        if (fx_data_flush(e->kafka, 120000) != 0)
                fx_fail(e->res, "events %d..%d not all delivered", *produced,
                        to);
        (void)t0;
}

/* Three brokers, two loyaltyd in one group. 0, or -1 (reported, closed). */
static int group_open(fx_env_t *e, fx_result_t *res, const char *tag) {
        if (env_open(e, res, tag, 3, 0, NULL) != 0) {
                fx_fail(res, "setup failed");
                env_close(e);
                return -1;
        }
        fx_spawn(e, 0);
        fx_spawn(e, 1);
        return 0;
}

static void sc_kafka(fx_result_t *res, fx_rng_t *rng) {
        fx_env_t e;
        int rounds = opt.iterations ? opt.iterations
                     : opt.quick    ? F__COUNT
                                    : 3 * F__COUNT;
        int n = ref.data.n, produced = 0, chunk = (n + rounds) / (rounds + 1);
        int64_t t_end;
        if (group_open(&e, res, "kafka"))
                return;
        for (int i = 0; i < rounds; i++) {
                /* every kind once per F__COUNT rounds, in a seeded order */
                static int order[F__COUNT];
                int to = produced + chunk > n ? n : produced + chunk;
                if (i % F__COUNT == 0) {
                        for (int j = 0; j < F__COUNT; j++)
                                order[j] = j;
                        for (int j = F__COUNT - 1; j > 0; j--) {
                                int r = (int)fx_rng_range(rng, 0, j);
                                int t = order[j];
                                order[j] = order[r];
                                order[r] = t;
                        }
                }
                fx_sleep_ms(
                    (int)fx_rng_range(rng, 200, opt.quick ? 500 : 1000));
                printf("  fault %d/%d: %s\n", i + 1, rounds,
                       fname[order[i % F__COUNT]]);
                fflush(stdout);
                kafka_fault(&e, order[i % F__COUNT], rng, &produced, to);
                fx_reap(&e, 1);
        }
        rd_kafka_mock_clear_request_errors(tu_kafka_mock(e.kafka), 0);
        rd_kafka_mock_clear_request_errors(tu_kafka_mock(e.kafka), 1);
        rd_kafka_mock_clear_request_errors(tu_kafka_mock(e.kafka), 8);
        if (fx_data_produce(e.kafka, "purchases", &ref.data, produced, n))
                fx_fail(res, "could not produce the last slice");
        t_end = fx_now_ms();
        /* librdkafka's own recovery (rebalances, 30 s request timeouts)
         * takes tens of seconds: give it a minute even in quick mode */
        if (settle(&e, opt.settle_s > 60 ? opt.settle_s : 60, 1) == 0)
                printf("  caught up %.1f s after the last fault\n",
                       (fx_now_ms() - t_end) / 1000.0);
        {
                double closed = fx_env_stat(&e, NS, "owner_conns_closed");
                printf("  members stopped between aggregates and customers: "
                       "%d; connections of a frozen owner closed: %.0f\n",
                       frozen_after_agg, closed);
                /* the fault must have hit its moment, and the take-over
                 * must have found the frozen member to close */
                /* the quick subset's slices are small: the restarted
                 * member may get no batch of its own before the next
                 * fault; the full suite (3 tries) must hit it */
                if (rounds >= F__COUNT && !frozen_after_agg) {
                        if (opt.quick)
                                printf("  note: the freeze between aggregates "
                                       "and customers did not hit its "
                                       "moment this run\n");
                        else
                                fx_fail(res, "no member stopped between its "
                                             "aggregates and its customers");
                }
                if (frozen_after_agg && closed < 1)
                        fx_fail(res,
                                "a member was frozen with its "
                                "aggregates in, but no take-over closed its "
                                "connections");
        }
        compare_with_ref(&e, res);
        env_close(&e);
}

/* Issue 8's break 8 on its own: the member frozen past its session
 * timeout and stopped as it wakes, again and again (the kafka scenario has
 * it once among ten kinds; the old close path failed about one such fault
 * in five, so a single one catches it only sometimes). */
static void sc_thaw(fx_result_t *res, fx_rng_t *rng) {
        fx_env_t e;
        int rounds = opt.iterations ? opt.iterations : opt.quick ? 8 : 24;
        int n = ref.data.n, produced = 0, chunk = (n + rounds) / (rounds + 1);
        if (group_open(&e, res, "thaw"))
                return;
        for (int i = 0; i < rounds; i++) {
                int to = produced + chunk > n ? n : produced + chunk;
                fx_sleep_ms((int)fx_rng_range(rng, 500, 1500));
                printf("  fault %d/%d: %s\n", i + 1, rounds,
                       fname[F_THAW_TERM]);
                fflush(stdout);
                kafka_fault(&e, F_THAW_TERM, rng, &produced, to);
                fx_reap(&e, 1);
        }
        if (fx_data_produce(e.kafka, "purchases", &ref.data, produced, n))
                fx_fail(res, "could not produce the last slice");
        settle(&e, opt.settle_s > 60 ? opt.settle_s : 60, 1);
        compare_with_ref(&e, res);
        env_close(&e);
}

/* ------------------------------------------------------------- hostile */

/* Our own producer: the tu one keeps librdkafka's 1,000,000-byte default,
 * and the corpus needs every message's partition and offset. */
static void hx_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op) {
        hx_msg_t *hm = m->_private;
        (void)rk;
        (void)op;
        if (!hm)
                return;
        hm->delivered = m->err ? -1 : 1;
        hm->partition = m->partition;
        hm->offset = m->offset;
}

static int hx_produce(tu_kafka_t *k, hx_corpus_t *c, fx_result_t *res) {
        char errstr[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        int failed = 0;
        rd_kafka_conf_set(conf, "bootstrap.servers", tu_kafka_bootstraps(k),
                          errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "message.max.bytes", "4194304", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr));
        rd_kafka_conf_set_dr_msg_cb(conf, hx_dr);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "loy_faults: producer: %s\n", errstr);
                return -1;
        }
        for (int i = 0; i < c->n; i++) {
                hx_msg_t *m = &c->m[i];
                rd_kafka_resp_err_t err;
                do {
                        err = rd_kafka_producev(
                            rk, RD_KAFKA_V_TOPIC(IN_TOPICS[m->topic]),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(m->key, m->key ? m->klen : 0),
                            RD_KAFKA_V_VALUE(m->val, m->len),
                            RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
                        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                rd_kafka_poll(rk, 50);
                } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                if (err) {
                        m->delivered = -1;
                        printf("    (could not produce a %zu-byte %s: %s)\n",
                               m->len, m->cls, rd_kafka_err2str(err));
                }
        }
        rd_kafka_flush(rk, 30000);
        for (int i = 0; i < c->n; i++)
                if (c->m[i].delivered != 1) {
                        failed++;
                        if (c->m[i].delivered == 0)
                                c->m[i].delivered = -1;
                }
        rd_kafka_destroy(rk);
        if (failed)
                printf("  note: %d messages not accepted by the mock broker "
                       "(left out of the checks)\n",
                       failed);
        (void)res;
        return 0;
}

struct dl_ctx {
        hx_corpus_t *c;
        int *dl; /* per message */
        char **reason;
        int unknown, noreason, changed, truncated, total;
};

static const char *hdr(const char *h, const char *name, char *buf,
                       size_t size) {
        char pat[64];
        const char *p, *e;
        snprintf(pat, sizeof(pat), "%s=", name);
        for (p = h; (p = strstr(p, pat)); p++)
                if (p == h || p[-1] == ';')
                        break;
        if (!p)
                return NULL;
        p += strlen(pat);
        e = strstr(p, ";loy.");
        if (!e)
                e = p + strlen(p);
        snprintf(buf, size, "%.*s", (int)(e - p), p);
        return buf;
}

static void on_dl(const char *key, const void *val, size_t len,
                  const char *headers, int32_t partition, int64_t offset,
                  void *opaque) {
        struct dl_ctx *d = opaque;
        char t[128], p[32], o[32], reason[512];
        int found = -1;
        (void)key;
        (void)partition;
        (void)offset;
        d->total++;
        if (hdr(headers, "loy.topic", t, sizeof(t)) &&
            hdr(headers, "loy.partition", p, sizeof(p)) &&
            hdr(headers, "loy.offset", o, sizeof(o))) {
                for (int i = 0; i < d->c->n; i++) {
                        hx_msg_t *m = &d->c->m[i];
                        if (m->delivered == 1 &&
                            !strcmp(IN_TOPICS[m->topic], t) &&
                            m->partition == atoi(p) && m->offset == atoll(o)) {
                                found = i;
                                break;
                        }
                }
        }
        if (found < 0) {
                d->unknown++;
                return;
        }
        d->dl[found]++;
        if (!hdr(headers, "loy.reason", reason, sizeof(reason)) || !reason[0])
                d->noreason++;
        else if (!d->reason[found])
                d->reason[found] = strdup(reason);
        /* bytes intact, or a prefix of them with loy.truncated naming the
         * original size: a message too large to send again whole */
        if (hdr(headers, "loy.truncated", t, sizeof(t))) {
                if (len > d->c->m[found].len ||
                    (size_t)atoll(t) != d->c->m[found].len ||
                    (len && memcmp(val, d->c->m[found].val, len)))
                        d->changed++;
                else
                        d->truncated++;
        } else if (len != d->c->m[found].len ||
                   (len && memcmp(val, d->c->m[found].val, len))) {
                d->changed++;
        }
}

static void sc_hostile(fx_result_t *res, fx_rng_t *rng) {
        static const size_t big_quick[] = {1048576, 0};
        static const size_t big_full[] = {1000001, 1048576, 1048576 + 4096,
                                          2 * 1048576, 0};
        int nbad = opt.iterations ? opt.iterations : opt.quick ? 120 : 1500;
        int ngood = nbad;
        hx_corpus_t c;
        fx_env_t e;
        char err[256];
        loy_codec_t *codec = loy_codec_create(NULL, err, sizeof(err));
        struct dl_ctx d = {0};
        int expect_dl = 0, expect_applied = 0, bad_missed = 0, bad_twice = 0;
        int good_dl = 0, ambig_wrong = 0, cust_wrong = 0, shown = 0;
        int bad_unread = 0;
        int64_t total = 0;
        loy_event_t ev;
        fx_snap_t s;

        memset(&ev, 0, sizeof(ev));
        if (hx_generate(&c, fx_rng_next(rng), ngood, nbad,
                        opt.quick ? big_quick : big_full) != 0 ||
            !codec || env_open(&e, res, "hostile", 1, 0, NULL) != 0) {
                fx_fail(res, "setup failed");
                env_close(&e);
                return;
        }
        printf("  corpus: %d messages: %d good, %d bad, %d ambiguous "
               "(mutations judged by the decoder)\n",
               c.n, c.good, c.bad, c.ambig);
        fx_spawn(&e, 0);
        hx_produce(e.kafka, &c, res);
        settle(&e, opt.settle_s, 0);
        if (!fx_alive(&e, 0))
                fx_fail(res, "loyaltyd is not running at the end");

        /* verdicts: ambiguous ones by the decoder */
        for (int i = 0; i < c.n; i++) {
                hx_msg_t *m = &c.m[i];
                if (m->delivered != 1)
                        continue;
                total++;
                if (m->verdict == HX_AMBIG)
                        m->verdict =
                            loy_codec_decode(codec, m->val, m->len,
                                             m->topic ? LOY_EV_BROWSE
                                                      : LOY_EV_PURCHASE,
                                             (int64_t)time(NULL) * 1000, &ev,
                                             err, sizeof(err)) == 0
                                ? HX_AMBIG
                                : HX_BAD;
                if (m->verdict == HX_BAD)
                        expect_dl++;
                else
                        expect_applied++;
        }
        d.c = &c;
        d.dl = calloc((size_t)c.n, sizeof(int));
        d.reason = calloc((size_t)c.n, sizeof(char *));
        tu_kafka_consume_all(e.kafka, "loyaltyd-deadletter", 1000, on_dl, &d);
        for (int i = 0; i < c.n; i++) {
                hx_msg_t *m = &c.m[i];
                if (m->delivered != 1)
                        continue;
                if (m->verdict == HX_BAD && d.dl[i] == 0) {
                        int64_t cm = fx_committed(
                            e.kafka, GROUP, IN_TOPICS[m->topic], m->partition);
                        int behind = cm >= 0 && m->offset > cm;
                        if (behind)
                                bad_unread++;
                        if (bad_missed++ < 12)
                                printf(
                                    "    not dead-lettered: #%d %s, %zu "
                                    "bytes, %s[%d]@%lld%s\n",
                                    i, m->cls, m->len, IN_TOPICS[m->topic],
                                    (int)m->partition, (long long)m->offset,
                                    behind
                                        ? " (behind the partition's "
                                          "committed offset: never processed)"
                                    : cm == m->offset
                                        ? " (the partition is stuck here)"
                                        : " (consumed and passed as valid)");
                } else if (m->verdict == HX_BAD && d.dl[i] > 1) {
                        if (bad_twice++ < 8)
                                printf("    dead-lettered %d times: #%d %s, "
                                       "%s[%d]@%lld\n",
                                       d.dl[i], i, m->cls, IN_TOPICS[m->topic],
                                       (int)m->partition, (long long)m->offset);
                } else if (m->verdict == HX_GOOD && d.dl[i]) {
                        if (good_dl++ < 10)
                                printf("    good event dead-lettered: #%d "
                                       "%s: %s\n",
                                       i, m->cls,
                                       d.reason[i] ? d.reason[i] : "?");
                } else if (m->verdict == HX_AMBIG && d.dl[i]) {
                        if (ambig_wrong++ < 10)
                                printf("    decodable mutation "
                                       "dead-lettered: #%d %s: %s\n",
                                       i, m->cls,
                                       d.reason[i] ? d.reason[i] : "?");
                }
        }
        /* per class: expected dead letters, and what happened to them */
        printf("  %-22s %6s %6s %6s %6s %6s %6s\n", "class", "msgs", "bad",
               "dl=1", "dl>1", "passed", "unread");
        for (int i = 0; i < c.n; i++) {
                int seen = 0, nm = 0, nb = 0, d1 = 0, d2 = 0, pass = 0;
                int unread = 0;
                for (int j = 0; j < i && !seen; j++)
                        seen = c.m[j].cls == c.m[i].cls;
                if (seen)
                        continue;
                for (int j = i; j < c.n; j++) {
                        hx_msg_t *m = &c.m[j];
                        int64_t cm;
                        if (m->cls != c.m[i].cls || m->delivered != 1)
                                continue;
                        nm++;
                        if (m->verdict != HX_BAD)
                                continue;
                        nb++;
                        if (d.dl[j] == 1) {
                                d1++;
                        } else if (d.dl[j] > 1) {
                                d2++;
                        } else {
                                cm = fx_committed(e.kafka, GROUP,
                                                  IN_TOPICS[m->topic],
                                                  m->partition);
                                if (cm >= 0 && m->offset >= cm)
                                        unread++;
                                else
                                        pass++;
                        }
                }
                printf("  %-22s %6d %6d %6d %6d %6d %6d\n", c.m[i].cls, nm, nb,
                       d1, d2, pass, unread);
        }
        printf("  (bad: expected dead-lettered; passed: consumed, not "
               "dead-lettered; unread: at or past the committed offset)\n");
        /* the reasons seen, one example per class */
        for (int i = 0; i < c.n && shown < C_SHOW_MAX; i++) {
                hx_msg_t *m = &c.m[i];
                int seen = 0;
                if (!d.reason[i])
                        continue;
                for (int j = 0; j < i; j++)
                        if (d.reason[j] && c.m[j].cls == m->cls)
                                seen = 1;
                if (!seen) {
                        printf("    %-22s -> %.90s\n", m->cls, d.reason[i]);
                        shown++;
                }
        }
        printf("  dead letters: %d read (expected %d), %d without a reason, "
               "%d with changed bytes, %d cut to fit (loy.truncated), %d of "
               "unknown origin\n",
               d.total, expect_dl, d.noreason, d.changed, d.truncated,
               d.unknown);
        if (bad_missed)
                fx_fail(res,
                        "%d bad messages not dead-lettered (%d of them "
                        "behind a stuck partition position)",
                        bad_missed, bad_unread);
        if (bad_twice)
                fx_fail(res, "%d bad messages dead-lettered more than once",
                        bad_twice);
        if (good_dl)
                fx_fail(res, "%d good events dead-lettered", good_dl);
        if (ambig_wrong)
                fx_fail(res, "%d decodable mutations dead-lettered",
                        ambig_wrong);
        if (d.noreason || d.changed || d.unknown)
                fx_fail(res,
                        "dead letters without reason / changed / of "
                        "unknown origin: %d / %d / %d",
                        d.noreason, d.changed, d.unknown);

        /* every good event applied, per test customer */
        if (fx_snap_take(e.redis->port, NS, &s) == 0) {
                static const char *const bf[5] = {
                    "views", "carts", "cart_removes", "searches", "wishlists"};
                for (int i = 0; i < HX_CUSTOMERS; i++) {
                        char key[128];
                        double want[6], got[6];
                        want[0] = c.purchases[i];
                        for (int a = 0; a < 5; a++)
                                want[a + 1] = c.browse[i][a];
                        snprintf(key, sizeof(key), "%s:c:{%s}", NS,
                                 hx_customer(i));
                        for (int f = 0; f < 6; f++) {
                                char k2[200];
                                got[f] = 0;
                                snprintf(k2, sizeof(k2), "%s\t%s", key,
                                         f == 0 ? "orders" : bf[f - 1]);
                                for (int j = 0; j < s.n; j++)
                                        if (!strcmp(s.e[j].k, k2))
                                                got[f] = atof(s.e[j].v);
                                if (got[f] != want[f] && cust_wrong++ < 10)
                                        printf("    %s %s: want %.0f got "
                                               "%.0f\n",
                                               key,
                                               f == 0 ? "orders" : bf[f - 1],
                                               want[f], got[f]);
                        }
                }
                fx_snap_free(&s);
        }
        if (cust_wrong)
                fx_fail(res, "%d per-customer counts of good events wrong",
                        cust_wrong);
        {
                double in = fx_stat(e.redis->port, NS, "events_in");
                double ap = fx_stat(e.redis->port, NS, "events_applied");
                double dl = fx_stat(e.redis->port, NS, "dead_lettered");
                printf("  stats: events_in %.0f (produced %lld), "
                       "events_applied %.0f (expected %d), dead_lettered "
                       "%.0f (expected %d)\n",
                       in, (long long)total, ap, expect_applied, dl, expect_dl);
                if (in != (double)total || ap != expect_applied ||
                    dl != expect_dl || in != ap + dl)
                        fx_fail(res,
                                "in = applied + dead-lettered does not "
                                "hold: %.0f != %.0f + %.0f (produced %lld)",
                                in, ap, dl, (long long)total);
        }
        fx_term_all(&e);
        for (int i = 0; i < c.n; i++)
                free(d.reason[i]);
        free(d.reason);
        free(d.dl);
        loy_event_free(&ev);
        loy_codec_destroy(codec);
        hx_free(&c);
        env_close(&e);
}

/* ---------------------------------------------------------------- main */

/* ------------------------------------------------------------- cluster */

/* Two loyaltyd processes on a 3-master Redis Cluster while slots move
 * under them: the aggregates' slot and a few customers' slots are
 * migrated the way redis-cli --cluster reshard does (IMPORTING/MIGRATING,
 * MIGRATE, SETSLOT NODE) between batches of input, so writes meet ASK,
 * TRYAGAIN and MOVED. The state read from every master and the trigger
 * ids must equal the single-server reference. */
#define CLUSTER_MOVES 4

static void sc_cluster(fx_result_t *res, fx_rng_t *rng) {
        fx_env_t e;
        tu_cluster_t c;
        unsigned slot[CLUSTER_MOVES];
        int from[CLUSTER_MOVES], to[CLUSTER_MOVES], nmove = 0;
        int produced = 0, n = ref.data.n, started = 0, ncust = 0;
        int keys_moved = 0;
        char key[160];

        if (env_open(&e, res, "cluster", 1, 0, NULL) != 0 ||
            tu_cluster_tools() != 0 || tu_cluster_start(&c, 3) != 0) {
                fx_fail(res, "setup failed");
                env_close(&e);
                return;
        }
        started = 1;
        e.cluster = &c;
        /* the aggregates' slot, then customers of the reference */
        snprintf(key, sizeof(key), "%s:" LOY_KEY_SEG, NS);
        slot[nmove++] = loy_cluster_slot(key, strlen(key));
        for (int i = 0; i < ref.snap.n; i++)
                ncust += !strncmp(ref.snap.e[i].k, NS ":c:{", strlen(NS) + 4);
        while (nmove < CLUSTER_MOVES && ncust > 0) {
                int pick = (int)fx_rng_range(rng, 0, ncust - 1), seen = 0;
                for (int i = 0; i < ref.snap.n; i++) {
                        const char *k = ref.snap.e[i].k, *tab;
                        if (strncmp(k, NS ":c:{", strlen(NS) + 4) ||
                            seen++ != pick)
                                continue;
                        tab = strchr(k, '\t');
                        slot[nmove] = loy_cluster_slot(
                            k, tab ? (size_t)(tab - k) : strlen(k));
                        break;
                }
                nmove++;
        }
        for (int m = 0; m < nmove; m++) {
                from[m] = tu_cluster_owner(&c, 0, slot[m]);
                to[m] = (from[m] + 1 + (int)fx_rng_range(rng, 0, 1)) % c.n;
                printf("  slot %u: master %d -> %d\n", slot[m], from[m], to[m]);
        }
        fflush(stdout);

        fx_spawn(&e, 0);
        fx_spawn(&e, 1);
        feed(&e, &produced, n / 4);
        /* the slots move once the group has joined and the aggregates
         * exist: keys are moved under traffic, not before it */
        for (int t = 0; t < 300 && fx_env_stat(&e, NS, "events_in") < n / 4;
             t++)
                fx_sleep_ms(100);
        for (int m = 0; m < nmove; m++)
                if (tu_cluster_migrate_begin(&c, slot[m], from[m], to[m]))
                        fx_fail(res, "slot %u: migration did not begin",
                                slot[m]);
        /* a few keys at a time between slices of input: writes meet ASK
         * for keys already moved, TRYAGAIN for a script whose keys are
         * split */
        for (int step = 1; step <= 8; step++) {
                feed(&e, &produced, n / 4 + step * n / 16);
                for (int m = 0; m < nmove; m++) {
                        int k = tu_cluster_migrate_keys(&c, slot[m], from[m],
                                                        to[m], 3);
                        if (k < 0)
                                fx_fail(res, "slot %u: MIGRATE failed",
                                        slot[m]);
                        keys_moved += k > 0 ? k : 0;
                }
                fx_sleep_ms(150);
        }
        printf("  %d keys migrated while input was fed\n", keys_moved);
        for (int m = 0; m < nmove; m++)
                if (tu_cluster_migrate_keys(&c, slot[m], from[m], to[m], 0) <
                        0 ||
                    tu_cluster_migrate_end(&c, slot[m], from[m], to[m]))
                        fx_fail(res, "slot %u: migration did not end", slot[m]);
        /* the rest meets MOVED until the processes read the map again */
        feed(&e, &produced, n);
        settle(&e, opt.settle_s, 1);
        {
                double moved = fx_env_stat(&e, NS, "redis_moved"),
                       ask = fx_env_stat(&e, NS, "redis_ask"),
                       refused = fx_env_stat(&e, NS, "redis_refused"),
                       failed = fx_env_stat(&e, NS, "redis_failures");
                printf("  loyaltyd followed %.0f MOVED and %.0f ASK; %.0f "
                       "command groups refused (TRYAGAIN), %.0f batches "
                       "done again\n",
                       moved, ask, refused, failed);
                /* the slots moved under traffic, or the scenario tested
                 * nothing */
                if (moved < 1)
                        fx_fail(res, "no MOVED reached loyaltyd");
                if (ask + refused < 1)
                        fx_fail(res, "no ASK or TRYAGAIN reached loyaltyd");
        }
        for (int m = 0; m < nmove; m++)
                if (tu_cluster_owner(&c, 0, slot[m]) != to[m])
                        fx_fail(res, "slot %u is not on master %d", slot[m],
                                to[m]);
        compare_with_ref(&e, res);
        e.cluster = NULL;
        if (started)
                tu_cluster_stop(&c);
        env_close(&e);
}

typedef struct scenario {
        const char *name;
        void (*run)(fx_result_t *res, fx_rng_t *rng);
        int needs_ref;
} scenario_t;

static void run_clean2(fx_result_t *res, fx_rng_t *rng) {
        (void)rng;
        sc_clean2(res);
}

static const scenario_t scenarios[] = {
    {"clean2", run_clean2, 1},  {"kill9", sc_kill9, 1},
    {"redis", sc_redis, 1},     {"kafka", sc_kafka, 1},
    {"hostile", sc_hostile, 0}, {"cluster", sc_cluster, 1},
    {"thaw", sc_thaw, 1},
};
#define NSCEN ((int)(sizeof(scenarios) / sizeof(scenarios[0])))

static void usage(FILE *fp) {
        fprintf(fp, "usage: loy_faults [--quick] [--seed N] [--iterations N] "
                    "[--events N]\n"
                    "                  [--bin PATH] [--data PATH] [--keep] "
                    "[SCENARIO ...]\n"
                    "scenarios: clean2 kill9 redis kafka hostile cluster thaw "
                    "(default: "
                    "all)\n");
}

int main(int argc, char **argv) {
        static const struct option lo[] = {
            {"quick", no_argument, NULL, 'q'},
            {"seed", required_argument, NULL, 's'},
            {"iterations", required_argument, NULL, 'i'},
            {"events", required_argument, NULL, 'e'},
            {"bin", required_argument, NULL, 'b'},
            {"data", required_argument, NULL, 'd'},
            {"keep", no_argument, NULL, 'k'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        int c, want[NSCEN] = {0}, any = 0, failed = 0, seeded = 0;
        int64_t t0 = fx_now_ms();
        static char bin[1024], data[1024], conf[1024];
        char cmd[512];

        setvbuf(stdout, NULL, _IOLBF, 0);
        while ((c = getopt_long(argc, argv, "qs:i:e:b:d:kh", lo, NULL)) != -1)
                switch (c) {
                case 'q':
                        opt.quick = 1;
                        break;
                case 's':
                        opt.seed = strtoull(optarg, NULL, 0);
                        seeded = 1;
                        break;
                case 'i':
                        opt.iterations = atoi(optarg);
                        break;
                case 'e':
                        opt.events = atoi(optarg);
                        break;
                case 'b':
                        opt.bin = optarg;
                        break;
                case 'd':
                        opt.data = optarg;
                        break;
                case 'k':
                        opt.keep = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        for (int i = optind; i < argc; i++) {
                int j;
                for (j = 0; j < NSCEN; j++)
                        if (!strcmp(argv[i], scenarios[j].name))
                                break;
                if (j == NSCEN) {
                        fprintf(stderr, "loy_faults: unknown scenario %s\n",
                                argv[i]);
                        usage(stderr);
                        return 2;
                }
                want[j] = any = 1;
        }
        if (!any) /* --quick leaves out clean2 and thaw unless named */
                for (int j = 0; j < NSCEN; j++)
                        want[j] = !(opt.quick &&
                                    (!strcmp(scenarios[j].name, "clean2") ||
                                     !strcmp(scenarios[j].name, "thaw")));
        if (!seeded) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                opt.seed = ((uint64_t)ts.tv_sec * 1000003u ^
                            (uint64_t)ts.tv_nsec ^ (uint64_t)getpid()) %
                           1000000000u;
        }
        if (!opt.bin) {
                snprintf(bin, sizeof(bin), "%s/loyaltyd",
                         getenv("LOY_BUILD_DIR") ? getenv("LOY_BUILD_DIR")
                                                 : LOY_FAULTS_BUILD_DIR);
                opt.bin = bin;
        }
        if (!opt.data) {
                snprintf(data, sizeof(data), "%s",
                         tu_src_path("../shared/data/online_retail.csv.gz"));
                opt.data = data;
        }
        snprintf(conf, sizeof(conf), "%s",
                 tu_src_path("tests/data/faults.conf"));
        opt.conf = conf;
        if (!opt.events && opt.quick)
                opt.events = 2000;
        opt.settle_s = opt.quick ? 20 : 180;
        if (access(opt.bin, X_OK) != 0) {
                fprintf(stderr,
                        "loy_faults: %s is not executable (build "
                        "first)\n",
                        opt.bin);
                return 2;
        }
        snprintf(opt.logdir, sizeof(opt.logdir), "/tmp/loy-faults-%ld",
                 (long)getpid());
        mkdir(opt.logdir, 0755);
        printf("loy_faults: seed %llu%s, binary %s, logs in %s\n",
               (unsigned long long)opt.seed, opt.quick ? ", quick" : "",
               opt.bin, opt.logdir);

        for (int j = 0; j < NSCEN; j++) {
                fx_result_t res;
                fx_rng_t rng;
                int64_t ms;
                if (!want[j])
                        continue;
                if (scenarios[j].needs_ref && reference() != 0) {
                        printf("FAIL %-8s (no reference run: setup or the "
                               "undisturbed run failed)\n",
                               scenarios[j].name);
                        failed++;
                        continue;
                }
                res.name = scenarios[j].name;
                res.seed = scenario_seed(res.name);
                res.fails = 0;
                res.t0_ms = fx_now_ms();
                fx_rng_seed(&rng, res.seed);
                printf("--- %s (seed %llu, scenario rng %llu)\n", res.name,
                       (unsigned long long)opt.seed,
                       (unsigned long long)res.seed);
                scenarios[j].run(&res, &rng);
                ms = fx_now_ms() - res.t0_ms;
                {
                        char extra[128] = "";
                        if (opt.iterations)
                                snprintf(extra, sizeof(extra),
                                         "--iterations %d ", opt.iterations);
                        if (opt.events && !opt.quick)
                                snprintf(extra + strlen(extra),
                                         sizeof(extra) - strlen(extra),
                                         "--events %d ", opt.events);
                        printf("%s %-8s %6.1f s  replay: %s %s%s--seed %llu "
                               "%s\n",
                               res.fails ? "FAIL" : "PASS", res.name,
                               ms / 1000.0, argv[0],
                               opt.quick ? "--quick " : "", extra,
                               (unsigned long long)opt.seed, res.name);
                }
                if (res.fails)
                        failed++;
        }
        printf("loy_faults: %d scenario(s) failed, %.1f s in all, seed %llu\n",
               failed, (fx_now_ms() - t0) / 1000.0,
               (unsigned long long)opt.seed);
        if (!opt.keep && !failed) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", opt.logdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "loy_faults: could not remove %s\n",
                                opt.logdir);
        }
        fx_data_free(&ref.data);
        fx_snap_free(&ref.snap);
        fx_ids_free(&ref.ids);
        return failed ? 1 : 0;
}
