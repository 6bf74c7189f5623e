/* The fault suite's machinery (see fx.h). */
#include "fx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "loy_codec.h"
#include "loy_hash.h"
#include "loy_pack.h"
#include "loy_store.h"
#include "loy_source.h"

/* ------------------------------------------------------------------ rng */

void fx_rng_seed(fx_rng_t *r, uint64_t seed) {
        r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;
        for (int i = 0; i < 4; i++)
                fx_rng_next(r);
}

uint64_t fx_rng_next(fx_rng_t *r) { /* splitmix64 */
        uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

int64_t fx_rng_range(fx_rng_t *r, int64_t lo, int64_t hi) {
        if (hi <= lo)
                return lo;
        return lo + (int64_t)(fx_rng_next(r) % (uint64_t)(hi - lo + 1));
}

int64_t fx_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fx_sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        if (ms > 0)
                while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                        ;
}

/* --------------------------------------------------------------- result */

void fx_fail(fx_result_t *res, const char *fmt, ...) {
        va_list ap;
        printf("  FAIL: ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        if (res)
                res->fails++;
}

void fx_note(const char *fmt, ...) {
        va_list ap;
        printf("  ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

/* -------------------------------------------------------------- dataset */

/* Appends a forget request for ev's customer, up to ev's time. */
static int add_forget(fx_data_t *d, int *cap, const loy_event_t *ev) {
        loy_event_t f;
        char val[256], err[256];
        fx_msg_t *m;
        int len;
        memset(&f, 0, sizeof(f));
        f.kind = LOY_EV_FORGET;
        snprintf(f.customer_id, sizeof(f.customer_id), "%s", ev->customer_id);
        f.forget_ms = ev->ts_ms;
        len = loy_codec_encode_forget(&f, val, sizeof(val), err, sizeof(err));
        if (len < 0) {
                fprintf(stderr, "fx: forget: %s\n", err);
                return -1;
        }
        if (d->n == *cap) {
                fx_msg_t *nm;
                *cap = *cap ? *cap * 2 : 4096;
                nm = realloc(d->m, (size_t)*cap * sizeof(*nm));
                if (!nm)
                        return -1;
                d->m = nm;
        }
        m = &d->m[d->n];
        m->key = strdup(ev->customer_id);
        m->val = malloc((size_t)len);
        m->len = (size_t)len;
        m->forget = 1;
        if (!m->key || !m->val) {
                free(m->key);
                free(m->val);
                return -1;
        }
        memcpy(m->val, val, (size_t)len);
        d->n++;
        d->forgets++;
        return 0;
}

int fx_data_load(fx_data_t *d, const char *path, int limit) {
        char err[256];
        loy_source_t *src =
            loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        loy_codec_t *codec = loy_codec_create(NULL, err, sizeof(err));
        loy_event_t ev;
        int cap = 0, rc = 0;

        memset(d, 0, sizeof(*d));
        if (!src || !codec) {
                fprintf(stderr, "fx: %s: %s\n", path, err);
                loy_source_close(src);
                if (codec)
                        loy_codec_destroy(codec);
                return -1;
        }
        memset(&ev, 0, sizeof(ev));
        while ((!limit || d->n < limit) && loy_source_next(src, &ev) == 1) {
                size_t len;
                const void *buf =
                    loy_codec_encode_event(codec, &ev, &len, err, sizeof(err));
                fx_msg_t *m;
                if (!buf) {
                        fprintf(stderr, "fx: encode: %s\n", err);
                        rc = -1;
                        break;
                }
                if (d->n == cap) {
                        fx_msg_t *nm;
                        cap = cap ? cap * 2 : 4096;
                        nm = realloc(d->m, (size_t)cap * sizeof(*nm));
                        if (!nm) {
                                rc = -1;
                                break;
                        }
                        d->m = nm;
                }
                m = &d->m[d->n];
                m->forget = 0;
                m->key = strdup(ev.customer_id);
                m->val = malloc(len);
                m->len = len;
                if (!m->key || !m->val) {
                        free(m->key);
                        free(m->val);
                        rc = -1;
                        break;
                }
                memcpy(m->val, buf, len);
                d->n++;
                if (loy_event_net_value(&ev) < 0)
                        d->returns++;
                else
                        d->purchases++;
                if ((d->purchases + d->returns) % FX_FORGET_EVERY == 0 &&
                    add_forget(d, &cap, &ev) != 0) {
                        rc = -1;
                        break;
                }
        }
        loy_event_free(&ev);
        loy_codec_destroy(codec);
        loy_source_close(src);
        if (rc)
                fx_data_free(d);
        return rc;
}

void fx_data_free(fx_data_t *d) {
        for (int i = 0; i < d->n; i++) {
                free(d->m[i].key);
                free(d->m[i].val);
        }
        free(d->m);
        memset(d, 0, sizeof(*d));
}

/* The suite's input producer: tu_kafka's gives up on a message after 10 s
 * (message.timeout.ms), which a broker outage exceeds, and an input event
 * the suite loses would be blamed on loyaltyd. This one never times out a
 * message, is idempotent (order kept, so offsets are those of every other
 * run) and uses the same default partitioner as tu_kafka's. One at a time,
 * for the cluster it was made for. */
static struct {
        rd_kafka_t *rk;
        char bs[256];
        int inflight, failed;
} prod;

static void prod_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op) {
        (void)rk;
        (void)op;
        prod.inflight--;
        if (m->err) {
                prod.failed++;
                fprintf(stderr, "fx: input delivery to %s [%d] failed: %s\n",
                        rd_kafka_topic_name(m->rkt), (int)m->partition,
                        rd_kafka_err2str(m->err));
        }
}

static rd_kafka_t *prod_for(tu_kafka_t *k) {
        char errstr[256];
        rd_kafka_conf_t *conf;
        if (prod.rk && !strcmp(prod.bs, tu_kafka_bootstraps(k)))
                return prod.rk;
        if (prod.rk) {
                rd_kafka_flush(prod.rk, 10000);
                rd_kafka_destroy(prod.rk);
        }
        memset(&prod, 0, sizeof(prod));
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", tu_kafka_bootstraps(k),
                              errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "message.timeout.ms", "0", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "linger.ms", "2", errstr, sizeof(errstr)) ||
            /* a request lost to a downed broker is retried after 3 s,
             * not after the 30-60 s defaults */
            rd_kafka_conf_set(conf, "request.timeout.ms", "3000", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "socket.timeout.ms", "3000", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr))) {
                fprintf(stderr, "fx: producer conf: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, prod_dr);
        prod.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!prod.rk) {
                fprintf(stderr, "fx: producer: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        snprintf(prod.bs, sizeof(prod.bs), "%s", tu_kafka_bootstraps(k));
        return prod.rk;
}

int fx_data_enqueue(tu_kafka_t *k, const char *topic, const fx_data_t *d,
                    int from, int to) {
        rd_kafka_t *rk = prod_for(k);
        if (!rk)
                return -1;
        if (to > d->n)
                to = d->n;
        for (int i = from; i < to; i++) {
                rd_kafka_resp_err_t err;
                do {
                        /* NULL: no headers; else the message owns them
                         * once it is queued */
                        rd_kafka_headers_t *h = NULL;
                        if (d->m[i].forget) {
                                h = rd_kafka_headers_new(1);
                                if (!h)
                                        return -1;
                                rd_kafka_header_add(h, LOY_CODEC_OP_HEADER, -1,
                                                    LOY_CODEC_OP_FORGET, -1);
                        }
                        err = rd_kafka_producev(
                            rk, RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(d->m[i].key, strlen(d->m[i].key)),
                            RD_KAFKA_V_VALUE(d->m[i].val, d->m[i].len),
                            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                        if (err && h)
                                rd_kafka_headers_destroy(h);
                        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                rd_kafka_poll(rk, 50);
                } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                if (err) {
                        fprintf(stderr, "fx: produce: %s\n",
                                rd_kafka_err2str(err));
                        return -1;
                }
                prod.inflight++;
        }
        rd_kafka_poll(rk, 0);
        return 0;
}

int fx_data_flush(tu_kafka_t *k, int timeout_ms) {
        rd_kafka_t *rk = prod_for(k);
        int failed;
        if (!rk)
                return -1;
        rd_kafka_flush(rk, timeout_ms);
        rd_kafka_poll(rk, 0);
        failed = prod.failed;
        prod.failed = 0;
        if (prod.inflight > 0) {
                fprintf(stderr, "fx: %d input messages still in flight\n",
                        prod.inflight);
                return -1;
        }
        return failed ? -1 : 0;
}

void fx_data_close(void) {
        if (prod.rk) {
                rd_kafka_flush(prod.rk, 10000);
                rd_kafka_destroy(prod.rk);
        }
        memset(&prod, 0, sizeof(prod));
}

int fx_data_produce(tu_kafka_t *k, const char *topic, const fx_data_t *d,
                    int from, int to) {
        if (fx_data_enqueue(k, topic, d, from, to) != 0)
                return -1;
        return fx_data_flush(k, 120000);
}

/* ------------------------------------------------------------ processes */

void fx_env_x(fx_env_t *e, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        if (e->nxargs == FX_XARGS_MAX)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        e->xargs[e->nxargs] = strdup(buf);
        if (e->xargs[e->nxargs])
                e->nxargs++;
}

static void log_path(const fx_env_t *e, int seq, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s-%03d.log", e->logdir, e->tag, seq);
}

int fx_spawn(fx_env_t *e, int i) {
        char a[4][512];
        const char *argv[9 + 2 * FX_XARGS_MAX];
        char logf[600];
        int argc = 0;
        pid_t pid;

        snprintf(a[0], sizeof(a[0]), "kafka.bootstrap.servers=%s",
                 tu_kafka_bootstraps(e->kafka));
        /* a cluster's first master is the seed; loyaltyd finds the rest */
        snprintf(a[1], sizeof(a[1]), "redis.port=%d",
                 e->cluster ? e->cluster->node[0].port : e->redis->port);
        snprintf(a[2], sizeof(a[2]), "input.group.id=%s", e->group);
        argv[argc++] = e->bin;
        argv[argc++] = "-c";
        argv[argc++] = e->conf;
        for (int j = 0; j < 3; j++) {
                argv[argc++] = "-X";
                argv[argc++] = a[j];
        }
        for (int j = 0; j < e->nxargs; j++) {
                argv[argc++] = "-X";
                argv[argc++] = e->xargs[j];
        }
        /* LOY_FAULTS_VERBOSE=1: debug lines in every loyaltyd's log */
        if (getenv("LOY_FAULTS_VERBOSE"))
                argv[argc++] = "-v";
        argv[argc] = NULL;
        e->procs[i].seq = ++e->spawns;
        log_path(e, e->procs[i].seq, logf, sizeof(logf));
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                /* no stray daemons when the suite itself dies */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                        close(fd);
                }
                if (e->procs[i].failpoint)
                        setenv("LOY_FAILPOINT", e->procs[i].failpoint, 1);
                else
                        unsetenv("LOY_FAILPOINT");
                execv(e->bin, (char *const *)argv);
                _exit(127);
        }
        e->procs[i].pid = pid;
        e->procs[i].killed = 0;
        e->procs[i].termed = 0;
        e->procs[i].stopped = 0;
        return 0;
}

int fx_log_wait(const fx_env_t *e, int i, const char *text, int timeout_ms) {
        int64_t until = fx_now_ms() + timeout_ms;
        char logf[600];
        log_path(e, e->procs[i].seq, logf, sizeof(logf));
        while (fx_now_ms() < until && fx_alive(e, i)) {
                FILE *f = fopen(logf, "r");
                char line[1024];
                int found = 0;
                while (f && !found && fgets(line, sizeof(line), f))
                        found = strstr(line, text) != NULL;
                if (f)
                        fclose(f);
                if (found)
                        return 1;
                fx_sleep_ms(50);
        }
        return 0;
}

int fx_alive(const fx_env_t *e, int i) {
        return e->procs[i].pid > 0;
}

/* Last lines of a spawn's log, indented, for a crash report. */
static void print_log_tail(const fx_env_t *e, int seq, int lines) {
        char logf[600], cmd[800];
        log_path(e, seq, logf, sizeof(logf));
        printf("    log %s, last lines:\n", logf);
        fflush(stdout);
        snprintf(cmd, sizeof(cmd), "tail -n %d '%s' | sed 's/^/      /'", lines,
                 logf);
        if (system(cmd) != 0)
                printf("      (no log)\n");
        fflush(stdout);
}

static void describe_status(int st, char *buf, size_t size) {
        if (WIFSIGNALED(st))
                snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(st),
                         strsignal(WTERMSIG(st)),
                         WCOREDUMP(st) ? ", core dumped" : "");
        else if (WIFEXITED(st))
                snprintf(buf, size, "exit status %d", WEXITSTATUS(st));
        else
                snprintf(buf, size, "status 0x%x", st);
}

/* A process exited: was it us? */
static void on_exit_status(fx_env_t *e, int i, int st) {
        fx_proc_t *p = &e->procs[i];
        char why[128];
        /* a SIGKILL we sent, or a clean exit after our SIGTERM (it may
         * finish just before the kill -9 that was to interrupt it) */
        int ours = (p->killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
                   (p->termed && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        p->pid = 0;
        if (ours)
                return;
        describe_status(st, why, sizeof(why));
        e->crashes++;
        fx_fail(e->res, "loyaltyd #%d (slot %d) ended on its own: %s", p->seq,
                i, why);
        print_log_tail(e, p->seq, 6);
}

void fx_kill9(fx_env_t *e, int i) {
        fx_proc_t *p = &e->procs[i];
        int st;
        if (p->pid <= 0)
                return;
        /* Did it die on its own before our signal? */
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                on_exit_status(e, i, st);
                return;
        }
        p->killed = 1;
        kill(p->pid, SIGKILL);
        if (p->stopped)
                kill(p->pid, SIGCONT);
        if (waitpid(p->pid, &st, 0) == p->pid)
                on_exit_status(e, i, st);
        p->pid = 0;
}

int fx_term(fx_env_t *e, int i, int timeout_ms) {
        fx_proc_t *p = &e->procs[i];
        int64_t end = fx_now_ms() + timeout_ms;
        int st;
        char why[128];
        if (p->pid <= 0)
                return -1;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                on_exit_status(e, i, st);
                return -1;
        }
        if (p->stopped) {
                kill(p->pid, SIGCONT);
                p->stopped = 0;
        }
        kill(p->pid, SIGTERM);
        while (fx_now_ms() < end) {
                pid_t w = waitpid(p->pid, &st, WNOHANG);
                if (w == p->pid) {
                        p->pid = 0;
                        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                                return 0;
                        describe_status(st, why, sizeof(why));
                        e->crashes++;
                        fx_fail(e->res, "loyaltyd #%d (slot %d) SIGTERM: %s",
                                p->seq, i, why);
                        print_log_tail(e, p->seq, 6);
                        return -1;
                }
                fx_sleep_ms(20);
        }
        fx_fail(e->res,
                "loyaltyd #%d (slot %d) did not stop within %d ms of "
                "SIGTERM (SIGKILLed)",
                p->seq, i, timeout_ms);
        print_log_tail(e, p->seq, 6);
        p->killed = 1;
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        p->pid = 0;
        return -1;
}

int fx_reap(fx_env_t *e, int restart) {
        int found = 0, st;
        for (int i = 0; i < FX_PROCS_MAX; i++) {
                fx_proc_t *p = &e->procs[i];
                if (p->pid <= 0)
                        continue;
                if (waitpid(p->pid, &st, WNOHANG) != p->pid)
                        continue;
                on_exit_status(e, i, st);
                found++;
                if (restart)
                        fx_spawn(e, i);
        }
        return found;
}

void fx_term_all(fx_env_t *e) {
        for (int i = 0; i < FX_PROCS_MAX; i++)
                if (e->procs[i].pid > 0)
                        fx_term(e, i, 30000);
}

/* ---------------------------------------------------------------- kafka */

/* One probe handle, kept for the (cluster, group) it was made for. */
static struct {
        rd_kafka_t *rk;
        char key[512];
} probe;

static rd_kafka_t *probe_for(tu_kafka_t *k, const char *group) {
        char key[512], errstr[256];
        rd_kafka_conf_t *conf;
        snprintf(key, sizeof(key), "%s|%s", tu_kafka_bootstraps(k), group);
        if (probe.rk && !strcmp(probe.key, key))
                return probe.rk;
        if (probe.rk)
                rd_kafka_destroy(probe.rk);
        probe.rk = NULL;
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", tu_kafka_bootstraps(k),
                              errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", group, errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr))) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        probe.rk =
            rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!probe.rk) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        snprintf(probe.key, sizeof(probe.key), "%s", key);
        return probe.rk;
}

int64_t fx_group_lag(tu_kafka_t *k, const char *group,
                     const char *const *topics, int ntopics, int nparts,
                     char *stuck, size_t stuck_size) {
        rd_kafka_t *rk = probe_for(k, group);
        rd_kafka_topic_partition_list_t *l;
        int64_t lag = 0;
        if (!rk)
                return -1;
        if (stuck && stuck_size)
                stuck[0] = '\0';
        l = rd_kafka_topic_partition_list_new(ntopics * nparts);
        for (int t = 0; t < ntopics; t++)
                for (int p = 0; p < nparts; p++)
                        rd_kafka_topic_partition_list_add(l, topics[t], p);
        if (rd_kafka_committed(rk, l, 5000)) {
                rd_kafka_topic_partition_list_destroy(l);
                return -1;
        }
        for (int i = 0; i < l->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &l->elems[i];
                int64_t lo, hi, c = tp->offset < 0 ? 0 : tp->offset;
                if (rd_kafka_query_watermark_offsets(
                        rk, tp->topic, tp->partition, &lo, &hi, 5000)) {
                        lag = -1;
                        break;
                }
                if (hi > c) {
                        if (stuck && stuck_size && !stuck[0])
                                snprintf(stuck, stuck_size,
                                         "%s[%d] committed %lld of %lld",
                                         tp->topic, (int)tp->partition,
                                         (long long)c, (long long)hi);
                        lag += hi - c;
                }
        }
        rd_kafka_topic_partition_list_destroy(l);
        return lag;
}

int64_t fx_committed(tu_kafka_t *k, const char *group, const char *topic,
                     int32_t partition) {
        rd_kafka_t *rk = probe_for(k, group);
        rd_kafka_topic_partition_list_t *l;
        int64_t off = -1;
        if (!rk)
                return -1;
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition);
        if (!rd_kafka_committed(rk, l, 5000) && !l->elems[0].err)
                off = l->elems[0].offset < 0 ? 0 : l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        return off;
}

struct ids_ctx {
        fx_ids_t *ids;
        loy_codec_t *codec;
};

static void on_trigger(const char *key, const void *val, size_t len,
                       const char *headers, int32_t partition, int64_t offset,
                       void *opaque) {
        struct ids_ctx *c = opaque;
        fx_ids_t *ids = c->ids;
        char err[256];
        char *json =
            loy_codec_trigger_to_json(c->codec, val, len, err, sizeof(err));
        json_t *t = json ? json_loads(json, 0, NULL) : NULL;
        const char *tid = json_string_value(json_object_get(t, "trigger_id"));
        char id[256];
        (void)key;
        (void)headers;
        (void)partition;
        (void)offset;
        ids->total++;
        /* "id rule/cause-kind": compared on the id only */
        if (tid)
                snprintf(id, sizeof(id), "%s %s/%s", tid,
                         json_string_value(json_object_get(t, "rule"))
                             ? json_string_value(json_object_get(t, "rule"))
                             : "?",
                         json_string_value(json_object_get(
                             json_object_get(t, "cause"), "kind"))
                             ? json_string_value(json_object_get(
                                   json_object_get(t, "cause"), "kind"))
                             : "?");
        if (!tid) {
                ids->undecodable++;
        } else {
                if (ids->n == ids->cap) {
                        char **nb;
                        ids->cap = ids->cap ? ids->cap * 2 : 1024;
                        nb = realloc(ids->id, (size_t)ids->cap * sizeof(*nb));
                        if (nb)
                                ids->id = nb;
                }
                if (ids->n < ids->cap)
                        ids->id[ids->n++] = strdup(id);
        }
        json_decref(t);
        free(json);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int id_cmp(const char *a, const char *b);

int fx_ids_read(tu_kafka_t *k, const char *topic, fx_ids_t *ids) {
        char err[256];
        struct ids_ctx c = {ids, loy_codec_create(NULL, err, sizeof(err))};
        int n, w = 0;
        memset(ids, 0, sizeof(*ids));
        if (!c.codec)
                return -1;
        n = tu_kafka_consume_all(k, topic, 1000, on_trigger, &c);
        loy_codec_destroy(c.codec);
        if (n < 0)
                return -1;
        qsort(ids->id, (size_t)ids->n, sizeof(*ids->id), cmp_str);
        for (int i = 0; i < ids->n; i++) {
                if (w && !id_cmp(ids->id[w - 1], ids->id[i])) {
                        free(ids->id[i]);
                        continue;
                }
                ids->id[w++] = ids->id[i];
        }
        ids->n = w;
        return 0;
}

void fx_ids_free(fx_ids_t *ids) {
        for (int i = 0; i < ids->n; i++)
                free(ids->id[i]);
        free(ids->id);
        memset(ids, 0, sizeof(*ids));
}

/* strcmp of the id parts ("id rule/kind"). */
static int id_cmp(const char *a, const char *b) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        int c = strncmp(a, b, la < lb ? la : lb);
        return c ? c : (la > lb) - (la < lb);
}

/* Tally of "rule/kind" for missing or extra ids. */
static void tally(char (*t)[64], int *nt, int *cnt, const char *id) {
        const char *k = strchr(id, ' ');
        int i;
        k = k ? k + 1 : "?";
        for (i = 0; i < *nt; i++)
                if (!strcmp(t[i], k))
                        break;
        if (i == *nt) {
                if (*nt == 16)
                        return;
                snprintf(t[(*nt)++], 64, "%s", k);
                cnt[i] = 0;
        }
        cnt[i]++;
}

int fx_ids_compare(const fx_ids_t *ref, const fx_ids_t *got, int max) {
        int i = 0, j = 0, missing = 0, extra = 0;
        char tm[16][64], te[16][64];
        int cm[16], ce[16], ntm = 0, nte = 0;
        while (i < ref->n || j < got->n) {
                int c = i == ref->n   ? 1
                        : j == got->n ? -1
                                      : id_cmp(ref->id[i], got->id[j]);
                if (c < 0)
                        tally(tm, &ntm, cm, ref->id[i]);
                else if (c > 0)
                        tally(te, &nte, ce, got->id[j]);
                if (c == 0) {
                        i++;
                        j++;
                } else if (c < 0) {
                        if (missing++ < max)
                                printf("    trigger missing: %s\n", ref->id[i]);
                        i++;
                } else {
                        if (extra++ < max)
                                printf("    trigger extra:   %s\n", got->id[j]);
                        j++;
                }
        }
        printf("  triggers: reference %d distinct, this run %d distinct "
               "(%d messages, %d re-sent with the same id, %d undecodable); "
               "missing %d, extra %d\n",
               ref->n, got->n, got->total,
               got->total - got->n - got->undecodable, got->undecodable,
               missing, extra);
        for (int k = 0; k < ntm; k++)
                printf("    missing by rule/cause: %-24s %d\n", tm[k], cm[k]);
        for (int k = 0; k < nte; k++)
                printf("    extra by rule/cause:   %-24s %d\n", te[k], ce[k]);
        return missing + extra;
}

/* ---------------------------------------------------------------- redis */

const char *const fx_snap_skip[][2] = {
    {"stats", "processor counters count re-deliveries by design and its "
              "gauges are wall-clock (latency, events/s, lag)"},
    {"outbox", "transient by design; checked on its own: must be empty "
               "once settled"},
    {LOY_KEY_FENCE, "internal: lists the silence checks of the last batch "
                    "that fired any, which depend on how events were "
                    "batched; what it fences is checked by exactly-once"},
    {NULL, NULL},
};

static int skipped(const char *ns, const char *key) {
        size_t nl = strlen(ns);
        if (strncmp(key, ns, nl) || key[nl] != ':')
                return 1;
        for (int i = 0; fx_snap_skip[i][0]; i++)
                if (!strcmp(key + nl + 1, fx_snap_skip[i][0]))
                        return 1;
        return 0;
}

static redisContext *connect_port(int port) {
        struct timeval tv = {10, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (!c || c->err) {
                if (c)
                        redisFree(c);
                return NULL;
        }
        redisSetTimeout(c, tv);
        return c;
}

static char *reply_text(const redisReply *r) {
        char buf[64];
        switch (r->type) {
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
        case REDIS_REPLY_ERROR:
                return strndup(r->str, r->len);
        case REDIS_REPLY_INTEGER:
                snprintf(buf, sizeof(buf), "%lld", r->integer);
                return strdup(buf);
        case REDIS_REPLY_ARRAY: {
                size_t len = 0;
                char *out = malloc(1), *t;
                out[0] = '\0';
                for (size_t i = 0; i < r->elements; i++) {
                        t = reply_text(r->element[i]);
                        out = realloc(out, len + strlen(t) + 2);
                        memcpy(out + len, t, strlen(t));
                        len += strlen(t);
                        out[len++] = '\n';
                        out[len] = '\0';
                        free(t);
                }
                return out;
        }
        default:
                return strdup("");
        }
}

char *fx_redis(int port, const char *fmt, ...) {
        redisContext *c = connect_port(port);
        redisReply *r;
        char *out;
        va_list ap;
        if (!c)
                return NULL;
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
        out = r ? reply_text(r) : NULL;
        if (r)
                freeReplyObject(r);
        redisFree(c);
        return out;
}

double fx_stat(int port, const char *ns, const char *field) {
        char *v = fx_redis(port, "HGET %s:stats %s", ns, field);
        double d = v ? atof(v) : -1;
        free(v);
        return d;
}

static int snap_add(fx_snap_t *s, const char *key, const char *sub,
                    size_t sublen, const char *val, size_t vlen, char type) {
        fx_ent_t *e;
        size_t kl = strlen(key);
        if (s->n == s->cap) {
                fx_ent_t *ne;
                s->cap = s->cap ? s->cap * 2 : 4096;
                ne = realloc(s->e, (size_t)s->cap * sizeof(*ne));
                if (!ne)
                        return -1;
                s->e = ne;
        }
        e = &s->e[s->n];
        e->k = malloc(kl + 1 + sublen + 1);
        e->v = malloc(vlen + 1);
        if (!e->k || !e->v) {
                free(e->k);
                free(e->v);
                return -1;
        }
        memcpy(e->k, key, kl);
        e->k[kl] = '\t';
        memcpy(e->k + kl + 1, sub, sublen);
        e->k[kl + 1 + sublen] = '\0';
        memcpy(e->v, val, vlen);
        e->v[vlen] = '\0';
        e->type = type;
        s->n++;
        return 0;
}

/* A customer hash with the engine's packed state: compared as the engine
 * holds it, every field of the table (derived ones at its scoring time)
 * and every slot, decoded from the chunks; the readable view is a function
 * of them. 1 when it was one (entries added), 0 when not, -1 on error. */
static int snap_customer(fx_snap_t *s, const char *key, const redisReply *r) {
        loy_cust_t *c = calloc(1, sizeof(*c));
        const char *bad, *id = strchr(key, '{');
        int chunked = 0, rc = -1;
        char buf[LOY_FIELD_TEXT_MAX];
        if (!c || !id)
                goto out;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
                chunked |= loy_pack_chunk_of(r->element[i]->str) >= 0;
        rc = 0;
        /* without chunks, or damaged: compared raw, so it shows */
        if (!chunked)
                goto out;
        loy_feat_init(c, id + 1);
        if (loy_store_cust_from_reply(r, c, &bad))
                goto out;
        for (const loy_field_t *f = loy_feat_fields; f->name && rc == 0; f++) {
                /* the record of an erasure is its time and its fences: no
                 * customer (in no segment, no bin) */
                if (loy_feat_is_forgotten(c) && strcmp(f->name, "forgotten_ms"))
                        continue;
                int len = loy_feat_field_format(c, f, c->scored_ms, NULL, buf,
                                                sizeof(buf));
                if (len < 0 || snap_add(s, key, f->name, strlen(f->name), buf,
                                        (size_t)len, 'h'))
                        rc = -1;
        }
        for (int i = 0; i < c->nslots && rc == 0; i++) {
                int len = loy_fmt_i64(buf, sizeof(buf), c->slots[i].value);
                if (len < 0 ||
                    snap_add(s, key, c->slots[i].name, strlen(c->slots[i].name),
                             buf, (size_t)len, 'h'))
                        rc = -1;
        }
        if (rc == 0)
                rc = 1;
out:
        free(c);
        return rc;
}

/* <ns>:{agg}:seg and <ns>:{agg}:hist:<dim>: customers per segment or
 * bin. */
static int is_count_key(const char *key, const char *ns) {
        size_t n = strlen(ns);
        return !strncmp(key, ns, n) && key[n] == ':' &&
               (!strcmp(key + n + 1, LOY_KEY_SEG) ||
                !strncmp(key + n + 1, LOY_KEY_HIST, strlen(LOY_KEY_HIST)));
}

static int cmp_ent(const void *a, const void *b) {
        return strcmp(((const fx_ent_t *)a)->k, ((const fx_ent_t *)b)->k);
}

/* Adds the keys of ns:* that the server on port holds (a cluster node:
 * the keys of its slots) to s, unsorted. */
static int snap_node(int port, const char *ns, fx_snap_t *s) {
        redisContext *c = connect_port(port);
        char cursor[32] = "0", pat[128];
        char **keys = NULL;
        int nkeys = 0, cap = 0, rc = 0;
        redisReply *r;

        if (!c)
                return -1;
        snprintf(pat, sizeof(pat), "%s:*", ns);
        do {
                r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
                if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                        if (r)
                                freeReplyObject(r);
                        rc = -1;
                        goto out;
                }
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                for (size_t i = 0; i < r->element[1]->elements; i++) {
                        const char *k = r->element[1]->element[i]->str;
                        if (skipped(ns, k))
                                continue;
                        if (nkeys == cap) {
                                cap = cap ? cap * 2 : 1024;
                                keys =
                                    realloc(keys, (size_t)cap * sizeof(*keys));
                        }
                        keys[nkeys++] = strdup(k);
                }
                freeReplyObject(r);
        } while (strcmp(cursor, "0"));
        /* SCAN may return a key twice */
        qsort(keys, (size_t)nkeys, sizeof(*keys), cmp_str);
        {
                int w = 0;
                for (int i = 0; i < nkeys; i++) {
                        if (w && !strcmp(keys[w - 1], keys[i])) {
                                free(keys[i]);
                                continue;
                        }
                        keys[w++] = keys[i];
                }
                nkeys = w;
        }
        /* one pipeline of TYPE, then one of the reads */
        for (int i = 0; i < nkeys; i++)
                redisAppendCommand(c, "TYPE %s", keys[i]);
        {
                char *types = malloc((size_t)nkeys + 1);
                for (int i = 0; i < nkeys; i++) {
                        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                                free(types);
                                rc = -1;
                                goto out;
                        }
                        types[i] = !strcmp(r->str, "hash")     ? 'h'
                                   : !strcmp(r->str, "zset")   ? 'z'
                                   : !strcmp(r->str, "string") ? 's'
                                   : !strcmp(r->str, "set")    ? 'S'
                                   : !strcmp(r->str, "list")   ? 'l'
                                                               : '-';
                        freeReplyObject(r);
                        switch (types[i]) {
                        case 'h':
                                redisAppendCommand(c, "HGETALL %s", keys[i]);
                                break;
                        case 'z':
                                redisAppendCommand(
                                    c, "ZRANGE %s 0 -1 WITHSCORES", keys[i]);
                                break;
                        case 's':
                                redisAppendCommand(c, "GET %s", keys[i]);
                                break;
                        case 'S':
                                redisAppendCommand(c, "SMEMBERS %s", keys[i]);
                                break;
                        case 'l':
                                redisAppendCommand(c, "LRANGE %s 0 -1",
                                                   keys[i]);
                                break;
                        default:
                                redisAppendCommand(c, "EXISTS %s", keys[i]);
                        }
                }
                for (int i = 0; i < nkeys; i++) {
                        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                                free(types);
                                rc = -1;
                                goto out;
                        }
                        if (r->type == REDIS_REPLY_STRING && types[i] == 's') {
                                snap_add(s, keys[i], "", 0, r->str, r->len,
                                         's');
                        } else if (r->type == REDIS_REPLY_ARRAY &&
                                   types[i] == 'h' &&
                                   snap_customer(s, keys[i], r) == 1) {
                                /* decoded */
                        } else if (r->type == REDIS_REPLY_ARRAY &&
                                   (types[i] == 'h' || types[i] == 'z')) {
                                int counts = types[i] == 'h' &&
                                             is_count_key(keys[i], ns);
                                for (size_t j = 0; j + 1 < r->elements; j += 2)
                                        /* a count back at 0 keeps its
                                         * field; one never moved has
                                         * none: the same population */
                                        if (!counts ||
                                            strcmp(r->element[j + 1]->str, "0"))
                                                snap_add(s, keys[i],
                                                         r->element[j]->str,
                                                         r->element[j]->len,
                                                         r->element[j + 1]->str,
                                                         r->element[j + 1]->len,
                                                         types[i]);
                        } else if (r->type == REDIS_REPLY_ARRAY) {
                                for (size_t j = 0; j < r->elements; j++) {
                                        char idx[32];
                                        snprintf(idx, sizeof(idx), "%zu", j);
                                        if (types[i] == 'S')
                                                snap_add(s, keys[i],
                                                         r->element[j]->str,
                                                         r->element[j]->len,
                                                         "1", 1, 'S');
                                        else
                                                snap_add(s, keys[i], idx,
                                                         strlen(idx),
                                                         r->element[j]->str,
                                                         r->element[j]->len,
                                                         'l');
                                }
                        }
                        freeReplyObject(r);
                }
                free(types);
        }
        s->keys += nkeys;
out:
        for (int i = 0; i < nkeys; i++)
                free(keys[i]);
        free(keys);
        redisFree(c);
        return rc;
}

int fx_snap_take_nodes(const int *ports, int n, const char *ns, fx_snap_t *s) {
        memset(s, 0, sizeof(*s));
        for (int i = 0; i < n; i++)
                if (snap_node(ports[i], ns, s)) {
                        fx_snap_free(s);
                        return -1;
                }
        qsort(s->e, (size_t)s->n, sizeof(*s->e), cmp_ent);
        return 0;
}

int fx_snap_take(int port, const char *ns, fx_snap_t *s) {
        return fx_snap_take_nodes(&port, 1, ns, s);
}

/* The servers of e's state: its redis-server, or its cluster's masters. */
static int env_ports(const fx_env_t *e, int *ports) {
        if (!e->cluster) {
                ports[0] = e->redis->port;
                return 1;
        }
        for (int i = 0; i < e->cluster->n; i++)
                ports[i] = e->cluster->node[i].port;
        return e->cluster->n;
}

int fx_env_snap(const fx_env_t *e, const char *ns, fx_snap_t *s) {
        int ports[TU_CLUSTER_MAX];
        return fx_snap_take_nodes(ports, env_ports(e, ports), ns, s);
}

double fx_env_stat(const fx_env_t *e, const char *ns, const char *field) {
        int ports[TU_CLUSTER_MAX], n = env_ports(e, ports);
        for (int i = 0; i < n; i++) {
                char *v = fx_redis(ports[i], "HGET %s:stats %s", ns, field);
                int num = v && ((v[0] >= '0' && v[0] <= '9') || v[0] == '-');
                double d = num ? atof(v) : 0;
                free(v);
                if (num)
                        return d;
        }
        return 0;
}

long fx_env_outbox(const fx_env_t *e, const char *ns) {
        int ports[TU_CLUSTER_MAX], n = env_ports(e, ports);
        long sum = 0;
        for (int i = 0; i < n; i++) {
                /* a node without the key's slot answers MOVED: not a
                 * number, and not its entries */
                char *v = fx_redis(ports[i], "HLEN %s:outbox", ns);
                if (!v)
                        return -1;
                if (v[0] >= '0' && v[0] <= '9')
                        sum += atol(v);
                free(v);
        }
        return sum;
}

void fx_snap_free(fx_snap_t *s) {
        for (int i = 0; i < s->n; i++) {
                free(s->e[i].k);
                free(s->e[i].v);
        }
        free(s->e);
        memset(s, 0, sizeof(*s));
}

uint64_t fx_snap_digest(const fx_snap_t *s) {
        uint64_t h = LOY_HASH_OFFSET;
        for (int i = 0; i < s->n; i++) {
                h = loy_hash64_update(h, s->e[i].k, strlen(s->e[i].k));
                h = loy_hash64_update(h, "\xff", 1);
                h = loy_hash64_update(h, s->e[i].v, strlen(s->e[i].v));
                h = loy_hash64_update(h, "\xfe", 1);
        }
        return h;
}

double fx_snap_sum(const fx_snap_t *s, const char *ns, const char *field) {
        char pre[80];
        size_t pl, fl = strlen(field);
        double sum = 0;
        snprintf(pre, sizeof(pre), "%s:c:{", ns);
        pl = strlen(pre);
        for (int i = 0; i < s->n; i++) {
                const char *k = s->e[i].k, *tab;
                if (s->e[i].type != 'h' || strncmp(k, pre, pl))
                        continue;
                tab = strchr(k, '\t');
                /* the customer hash itself, not :recs / :rh */
                if (!tab || tab[-1] != '}' || strcmp(tab + 1, field) ||
                    strlen(tab + 1) != fl)
                        continue;
                sum += atof(s->e[i].v);
        }
        return sum;
}

/* "c:{*} field", "kpi:* field", "rank:churn (members)" ... for counting. */
static void kind_of(const fx_ent_t *e, const char *ns, char *buf, size_t size) {
        const char *k = e->k + strlen(ns) + 1, *tab = strchr(e->k, '\t');
        char kind[128];
        size_t n = 0;
        int in_tag = 0;
        if (!tab) {
                snprintf(buf, size, "%s", e->k);
                return;
        }
        if (!strncmp(k, "{agg}:", 6)) /* the aggregates' slot tag */
                k += 6;
        /* replace the customer id, the day, the partition, the sku by * */
        for (const char *p = k; p < tab && n + 2 < sizeof(kind); p++) {
                if (*p == '{') {
                        kind[n++] = '{';
                        kind[n++] = '*';
                        in_tag = 1;
                } else if (*p == '}') {
                        in_tag = 0;
                        kind[n++] = '}';
                } else if (!in_tag) {
                        kind[n++] = *p;
                }
        }
        kind[n] = '\0';
        if (!strncmp(kind, "kpi:", 4))
                snprintf(kind, sizeof(kind), "kpi:*");
        else if (!strncmp(kind, "timers:", 7))
                snprintf(kind, sizeof(kind), "timers:*");
        else if (!strncmp(kind, "i:", 2)) {
                const char *last = strrchr(kind, ':');
                char tmp[128];
                snprintf(tmp, sizeof(tmp), "i:*%s",
                         last && last > kind + 1 ? last : "");
                snprintf(kind, sizeof(kind), "%s", tmp);
        }
        if (e->type == 'h' && strncmp(kind, "i:", 2) &&
            strncmp(kind, "hist:", 5))
                snprintf(buf, size, "%s %s", kind, tab + 1);
        else
                snprintf(buf, size, "%s (entries)", kind);
}

typedef struct kcount {
        char kind[200];
        int missing, extra, differ;
        char ex[320]; /* one example: key field ref got */
} kcount_t;

/* Keys and fields compared but not failed: see fx_snap_soft. */
static int soft_kind(const char *kind) {
        for (int i = 0; fx_snap_soft[i][0]; i++)
                if (!strncmp(kind, fx_snap_soft[i][0],
                             strlen(fx_snap_soft[i][0])))
                        return 1;
        return 0;
}

const char *const fx_snap_soft[][2] = {
    {"i:*", "the shared item model: each process flushes its "
            "co-occurrence increments about once a second of wall "
            "time, only for pairs in its local neighbour lists at that "
            "moment (docs/redis-keys.md), so its counts depend on "
            "timing"},
    {"c:{*}:recs", "top-N items scored from those neighbour lists"},
    /* The R/F/M scores, loyalty and segments are compared strictly:
     * the default model's cut points make them a function of each
     * customer alone (docs/models.md). */
    {NULL, NULL},
};

static void count_kind(kcount_t *kc, int *nk, int cap, const char *kind,
                       int what, const fx_ent_t *e, const char *rv,
                       const char *gv) {
        int i;
        for (i = 0; i < *nk; i++)
                if (!strcmp(kc[i].kind, kind))
                        break;
        if (i == *nk) {
                const char *tab = strchr(e->k, '\t');
                if (*nk == cap)
                        return;
                memset(&kc[i], 0, sizeof(kc[i]));
                snprintf(kc[i].kind, sizeof(kc[i].kind), "%s", kind);
                snprintf(kc[i].ex, sizeof(kc[i].ex),
                         "%.*s %s: ref=%.50s "
                         "got=%.50s",
                         tab ? (int)(tab - e->k) : 80, e->k, tab ? tab + 1 : "",
                         rv, gv);
                for (char *p = kc[i].ex; *p; p++)
                        if (*p == '\n' || *p == '\r' || *p == '\t')
                                *p = ' ';
                (*nk)++;
        }
        if (what < 0)
                kc[i].missing++;
        else if (what > 0)
                kc[i].extra++;
        else
                kc[i].differ++;
}

static void print_ent(const char *tag, const fx_ent_t *e, const char *ref,
                      const char *got) {
        const char *tab = strchr(e->k, '\t');
        int kl = tab ? (int)(tab - e->k) : (int)strlen(e->k);
        char r[64], g[64];
        snprintf(r, sizeof(r), "%s", ref);
        snprintf(g, sizeof(g), "%s", got);
        for (char *p = r; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        for (char *p = g; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        printf("    %-7s %.*s %s: ref=%s got=%s\n", tag, kl, e->k,
               tab ? tab + 1 : "", r, g);
}

int fx_snap_diff(const fx_snap_t *ref, const fx_snap_t *got, const char *ns,
                 int max) {
        enum { KC_MAX = 256 };
        kcount_t *kc = calloc(KC_MAX, sizeof(*kc));
        int nk = 0, i = 0, j = 0, hard = 0, soft = 0;
        char kind[200];
        if (!kc)
                return -1;
        while (i < ref->n || j < got->n) {
                int c = i == ref->n   ? 1
                        : j == got->n ? -1
                                      : strcmp(ref->e[i].k, got->e[j].k);
                const fx_ent_t *e = c <= 0 ? &ref->e[i] : &got->e[j];
                const char *rv = c <= 0 ? ref->e[i].v : "(none)";
                const char *gv = c >= 0 ? got->e[j].v : "(none)";
                if (c == 0 && !strcmp(rv, gv)) {
                        i++;
                        j++;
                        continue;
                }
                kind_of(e, ns, kind, sizeof(kind));
                if (soft_kind(kind)) {
                        soft++;
                } else if (hard++ < max) {
                        print_ent(c == 0  ? "differ"
                                  : c < 0 ? "missing"
                                          : "extra",
                                  e, rv, gv);
                }
                count_kind(kc, &nk, KC_MAX, kind, c, e, rv, gv);
                if (c <= 0)
                        i++;
                if (c >= 0)
                        j++;
        }
        if (hard + soft) {
                printf("  state differences by key kind and field "
                       "(missing / extra / different value; an example):\n");
                for (int k = 0; k < nk; k++)
                        printf("    %-28s %5d / %5d / %5d%s  e.g. %s\n",
                               kc[k].kind, kc[k].missing, kc[k].extra,
                               kc[k].differ,
                               soft_kind(kc[k].kind) ? " (not failed, see "
                                                       "docs/faults.md)"
                                                     : "",
                               kc[k].ex);
        }
        free(kc);
        return hard;
}

/* -------------------------------------------------------------- settle */

int fx_settle(fx_env_t *e, const char *const *topics, int ntopics, int nparts,
              const char *ns, int quiet_ms, int timeout_ms, int restart) {
        int64_t end = fx_now_ms() + timeout_ms, since = 0;
        uint64_t last = 0;
        char stuck[256] = "";
        int64_t lag = -1;
        long outbox = -1;
        while (fx_now_ms() < end) {
                fx_snap_t s;
                uint64_t d;
                fx_reap(e, restart);
                lag = fx_group_lag(e->kafka, e->group, topics, ntopics, nparts,
                                   stuck, sizeof(stuck));
                outbox = fx_env_outbox(e, ns);
                if (lag == 0 && outbox == 0 && fx_env_snap(e, ns, &s) == 0) {
                        d = fx_snap_digest(&s);
                        fx_snap_free(&s);
                        if (d != last || !since) {
                                last = d;
                                since = fx_now_ms();
                        } else if (fx_now_ms() - since >= quiet_ms) {
                                return 0;
                        }
                } else {
                        since = 0;
                }
                fx_sleep_ms(250);
        }
        fx_fail(e->res, "not settled within %d s: lag %lld%s%s, outbox %ld%s",
                timeout_ms / 1000, (long long)lag, stuck[0] ? ", first: " : "",
                stuck, outbox,
                lag == 0 && outbox == 0 ? ", state still changing" : "");
        return -1;
}
