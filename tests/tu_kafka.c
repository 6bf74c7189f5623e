/* librdkafka's mock Kafka cluster for tests (see tu.h). */
#include "tu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

struct tu_kafka {
        rd_kafka_t *host; /* owns the mock cluster */
        rd_kafka_mock_cluster_t *mc;
        char *bootstraps;
        rd_kafka_t *prod; /* a real client of the cluster */
        int inflight;     /* async messages without a report */
        int failed;       /* async failures since last flush */
};

/* Per-message opaque of a synchronous produce. */
struct tu_dr {
        int done;
        rd_kafka_resp_err_t err;
};

static int group_seq;

/* ---------------------------------------------------------------- helpers */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set before any handle exists: log_cb runs on librdkafka's threads. */
static int log_max_level = LOG_WARNING;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
        if (level <= log_max_level)
                fprintf(stderr, "tu_kafka: %s: %s: %s\n", rd_kafka_name(rk),
                        fac, buf);
}

/* A conf with our logger and the given key/value pairs (NULL-terminated).
 * NULL on error (printed: this is test scaffolding). */
static rd_kafka_conf_t *new_conf(const char *k1, ...) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[256];
        const char *key, *val;
        va_list ap;

        if (!conf)
                return NULL;
        rd_kafka_conf_set_log_cb(conf, log_cb);
        va_start(ap, k1);
        for (key = k1; key; key = va_arg(ap, const char *)) {
                val = va_arg(ap, const char *);
                if (rd_kafka_conf_set(conf, key, val, errstr, sizeof(errstr)) !=
                    RD_KAFKA_CONF_OK) {
                        fprintf(stderr, "tu_kafka: %s=%s: %s\n", key, val,
                                errstr);
                        va_end(ap);
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        }
        va_end(ap);
        return conf;
}

/* rd_kafka_new that frees conf on failure too. */
static rd_kafka_t *new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
        char errstr[256];
        rd_kafka_t *rk;

        if (!conf)
                return NULL;
        rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "tu_kafka: rd_kafka_new: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        tu_kafka_t *k = opaque;
        struct tu_dr *dr = m->_private;

        (void)rk;
        if (dr) {
                dr->err = m->err;
                dr->done = 1;
                return;
        }
        k->inflight--;
        if (m->err) {
                k->failed++;
                fprintf(stderr, "tu_kafka: delivery to %s [%d] failed: %s\n",
                        rd_kafka_topic_name(m->rkt), (int)m->partition,
                        rd_kafka_err2str(m->err));
        }
}

/* Enqueues with a bounded retry on a full queue. */
static int produce(tu_kafka_t *k, const char *topic, int32_t partition,
                   const char *key, const void *val, size_t len,
                   const char *hname, const char *hval, struct tu_dr *dr) {
        rd_kafka_resp_err_t err;
        rd_kafka_headers_t *hdrs = NULL;

        for (int tries = 0; tries < 100; tries++) {
                if (hname) {
                        hdrs = rd_kafka_headers_new(1);
                        if (!hdrs)
                                return -1;
                        rd_kafka_header_add(hdrs, hname, -1, hval,
                                            hval ? -1 : 0);
                }
                /* RD_KAFKA_V_HEADERS only takes ownership on success. */
                err = rd_kafka_producev(
                    k->prod, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                                       : partition),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                    RD_KAFKA_V_VALUE((void *)val, len),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(dr),
                    RD_KAFKA_V_END);
                if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                        if (!dr)
                                k->inflight++;
                        return 0;
                }
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                hdrs = NULL;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(k->prod, 100);
        }
        fprintf(stderr, "tu_kafka: produce to %s: %s\n", topic,
                rd_kafka_err2str(err));
        return -1;
}

/* ---------------------------------------------------------- cluster setup */

tu_kafka_t *tu_kafka_start(int brokers) {
        tu_kafka_t *k = calloc(1, sizeof(*k));
        rd_kafka_conf_t *conf;
        char nb[16];
        const char *bs;

        const char *lvl = getenv("TU_KAFKA_LOG_LEVEL");

        if (!k)
                return NULL;
        log_max_level = lvl ? atoi(lvl) : LOG_WARNING;
        snprintf(nb, sizeof(nb), "%d", brokers > 0 ? brokers : 1);
        /* The hosting handle bootstraps to its own cluster rather than to
         * nothing, which would log a warning. */
        k->host = new_handle(RD_KAFKA_PRODUCER,
                             new_conf("test.mock.num.brokers", nb, "client.id",
                                      "tu-mock-host", NULL));
        if (!k->host)
                goto fail;
        k->mc = rd_kafka_handle_mock_cluster(k->host);
        bs = k->mc ? rd_kafka_mock_cluster_bootstraps(k->mc) : NULL;
        if (!bs || !(k->bootstraps = strdup(bs)))
                goto fail;

        conf =
            new_conf("bootstrap.servers", k->bootstraps, "client.id",
                     "tu-producer", "enable.idempotence", "true", "linger.ms",
                     "2", "message.timeout.ms", "10000",
                     /* as large as a broker allows (1 MiB), not librdkafka's
                      * smaller default, so tests can send what Kafka takes */
                     "message.max.bytes", "1048588", NULL);
        if (!conf)
                goto fail;
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, k);
        k->prod = new_handle(RD_KAFKA_PRODUCER, conf);
        if (!k->prod)
                goto fail;
        return k;
fail:
        tu_kafka_stop(k);
        return NULL;
}

const char *tu_kafka_bootstraps(const tu_kafka_t *k) {
        return k->bootstraps;
}

struct rd_kafka_mock_cluster_s *tu_kafka_mock(tu_kafka_t *k) {
        return k->mc;
}

int tu_kafka_topic(tu_kafka_t *k, const char *topic, int partitions) {
        rd_kafka_resp_err_t err;

        err = rd_kafka_mock_topic_create(k->mc, topic, partitions, 1);
        if (err) {
                fprintf(stderr, "tu_kafka: create %s: %s\n", topic,
                        rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

void tu_kafka_stop(tu_kafka_t *k) {
        if (!k)
                return;
        if (k->prod) {
                if (k->inflight > 0)
                        rd_kafka_flush(k->prod, 5000);
                rd_kafka_destroy(k->prod);
        }
        /* Last: destroying the host tears the cluster down. */
        if (k->host)
                rd_kafka_destroy(k->host);
        free(k->bootstraps);
        free(k);
}

/* ---------------------------------------------------------------- produce */

int tu_kafka_produce_hdr(tu_kafka_t *k, const char *topic, int32_t partition,
                         const char *key, const void *val, size_t len,
                         const char *hname, const char *hval) {
        struct tu_dr dr = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
        int64_t deadline;

        if (produce(k, topic, partition, key, val, len, hname, hval, &dr))
                return -1;
        /* message.timeout.ms bounds the wait; the margin covers the
         * report's trip through the queue. */
        deadline = now_ms() + 15000;
        while (!dr.done && now_ms() < deadline)
                rd_kafka_poll(k->prod, 20);
        if (!dr.done) {
                /* dr lives on this stack: the report must not outlive it. */
                rd_kafka_purge(k->prod, RD_KAFKA_PURGE_F_QUEUE |
                                            RD_KAFKA_PURGE_F_INFLIGHT);
                while (!dr.done)
                        rd_kafka_poll(k->prod, 100);
                fprintf(stderr, "tu_kafka: no delivery report for %s\n", topic);
                return -1;
        }
        if (dr.err) {
                fprintf(stderr, "tu_kafka: delivery to %s failed: %s\n", topic,
                        rd_kafka_err2str(dr.err));
                return -1;
        }
        return 0;
}

int tu_kafka_produce(tu_kafka_t *k, const char *topic, int32_t partition,
                     const char *key, const void *val, size_t len) {
        return tu_kafka_produce_hdr(k, topic, partition, key, val, len, NULL,
                                    NULL);
}

int tu_kafka_produce_async(tu_kafka_t *k, const char *topic, int32_t partition,
                           const char *key, const void *val, size_t len) {
        return produce(k, topic, partition, key, val, len, NULL, NULL, NULL);
}

int tu_kafka_flush(tu_kafka_t *k, int timeout_ms) {
        int failed;

        rd_kafka_flush(k->prod, timeout_ms);
        rd_kafka_poll(k->prod, 0);
        failed = k->failed;
        k->failed = 0;
        if (k->inflight > 0) {
                fprintf(stderr, "tu_kafka: %d messages still in flight\n",
                        k->inflight);
                return -1;
        }
        return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- consume */

/* "name=value;name=value" into *buf (grown as needed). */
static int headers_text(const rd_kafka_message_t *m, char **buf, size_t *cap) {
        rd_kafka_headers_t *hdrs;
        const char *name;
        const void *v;
        size_t vlen, len = 0;

        if (!*buf) {
                *cap = 256;
                if (!(*buf = malloc(*cap)))
                        return -1;
        }
        (*buf)[0] = '\0';
        if (rd_kafka_message_headers(m, &hdrs))
                return 0;
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &v, &vlen);
             i++) {
                size_t need = len + (i ? 1 : 0) + strlen(name) + 1 + vlen + 1;
                if (need > *cap) {
                        char *nb = realloc(*buf, need * 2);
                        if (!nb)
                                return -1;
                        *buf = nb;
                        *cap = need * 2;
                }
                if (i)
                        (*buf)[len++] = ';';
                memcpy(*buf + len, name, strlen(name));
                len += strlen(name);
                (*buf)[len++] = '=';
                if (vlen)
                        memcpy(*buf + len, v, vlen);
                len += vlen;
                (*buf)[len] = '\0';
        }
        return 0;
}

/* Number of partitions of topic as the cluster reports it, or -1. */
static int topic_partitions(rd_kafka_t *rk, const char *topic) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        int n = -1;

        if (!rkt)
                return -1;
        err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        if (err)
                fprintf(stderr, "tu_kafka: metadata for %s: %s\n", topic,
                        rd_kafka_err2str(err));
        else if (md->topic_cnt != 1 || md->topics[0].err)
                fprintf(stderr, "tu_kafka: topic %s: %s\n", topic,
                        md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                      : "not in metadata");
        else
                n = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return n;
}

/* Has every partition we own reached its end since its last message? */
static int all_at_eof(rd_kafka_t *rk, const char *eof, int nparts,
                      int grouped) {
        rd_kafka_topic_partition_list_t *a = NULL;
        int ok = 1;

        if (!grouped) {
                for (int p = 0; p < nparts; p++)
                        if (!eof[p])
                                return 0;
                return 1;
        }
        if (rd_kafka_assignment(rk, &a))
                return 0;
        if (a->cnt == 0)
                ok = 0;
        for (int i = 0; i < a->cnt && ok; i++) {
                int32_t p = a->elems[i].partition;
                if (p < 0 || p >= nparts || !eof[p])
                        ok = 0;
        }
        rd_kafka_topic_partition_list_destroy(a);
        return ok;
}

/* Polls rk until it owns partitions, all at their end, and nothing arrived
 * for idle_ms. Returns the count or -1. */
static int consume_loop(rd_kafka_t *rk, const char *topic, int nparts,
                        int grouped, int idle_ms, tu_msg_cb_t *cb,
                        void *opaque) {
        char *eof = calloc((size_t)nparts, 1);
        char *key = NULL, *hbuf = NULL;
        size_t key_cap = 0, hcap = 0;
        int64_t last = now_ms(), start = last;
        int count = 0, assigned = !grouped;

        if (!eof)
                return -1;
        for (;;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                int64_t now = now_ms();

                if (!m) {
                        if (!assigned) {
                                rd_kafka_topic_partition_list_t *a;
                                if (!rd_kafka_assignment(rk, &a)) {
                                        assigned = a->cnt > 0;
                                        rd_kafka_topic_partition_list_destroy(
                                            a);
                                }
                                if (assigned) {
                                        last = now;
                                } else if (now - start > 30000) {
                                        fprintf(stderr,
                                                "tu_kafka: no "
                                                "assignment for %s\n",
                                                topic);
                                        count = -1;
                                        break;
                                }
                                continue;
                        }
                        /* A cluster that never answers must not hang the
                         * test: give up on the ends after 10 s more. */
                        if (now - last >= idle_ms &&
                            (all_at_eof(rk, eof, nparts, grouped) ||
                             now - last >= idle_ms + 10000))
                                break;
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        if (m->partition >= 0 && m->partition < nparts)
                                eof[m->partition] = 1;
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->err) {
                        /* Transient (a broker went down, a rebalance);
                         * librdkafka recovers on its own. */
                        fprintf(stderr, "tu_kafka: consume %s: %s\n", topic,
                                rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->partition >= 0 && m->partition < nparts)
                        eof[m->partition] = 0;
                last = now;
                count++;
                if (cb) {
                        int bad = 0;
                        if (m->key && m->key_len + 1 > key_cap) {
                                char *nb = realloc(key, m->key_len + 1);
                                if (nb) {
                                        key = nb;
                                        key_cap = m->key_len + 1;
                                } else {
                                        bad = 1;
                                }
                        }
                        if (!bad && m->key) {
                                memcpy(key, m->key, m->key_len);
                                key[m->key_len] = '\0';
                        }
                        if (bad || headers_text(m, &hbuf, &hcap)) {
                                rd_kafka_message_destroy(m);
                                count = -1;
                                break;
                        }
                        cb(m->key ? key : NULL, m->payload, m->len, hbuf,
                           m->partition, m->offset, opaque);
                }
                rd_kafka_message_destroy(m);
        }
        free(eof);
        free(key);
        free(hbuf);
        return count;
}

/* The short session: once a group's last member has left, the mock
 * coordinator holds the next JoinGroup for session.timeout.ms - 1 s (44 s
 * with the default), so a test that restarts a member would stall. */
static rd_kafka_t *consumer(tu_kafka_t *k, const char *group) {
        return new_handle(
            RD_KAFKA_CONSUMER,
            new_conf("bootstrap.servers", k->bootstraps, "group.id", group,
                     "client.id", "tu-consumer", "auto.offset.reset",
                     "earliest", "enable.auto.commit", "false",
                     "enable.partition.eof", "true", "fetch.wait.max.ms", "100",
                     "session.timeout.ms", "3000", "heartbeat.interval.ms",
                     "500", NULL));
}

int tu_kafka_consume_all(tu_kafka_t *k, const char *topic, int idle_ms,
                         tu_msg_cb_t *cb, void *opaque) {
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_resp_err_t err;
        char group[64];
        rd_kafka_t *rk;
        int n, count = -1;

        snprintf(group, sizeof(group), "tu-%ld-%d", (long)getpid(),
                 ++group_seq);
        rk = consumer(k, group);
        if (!rk)
                return -1;
        n = topic_partitions(rk, topic);
        if (n <= 0)
                goto out;
        parts = rd_kafka_topic_partition_list_new(n);
        if (!parts)
                goto out;
        for (int p = 0; p < n; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        err = rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                fprintf(stderr, "tu_kafka: assign %s: %s\n", topic,
                        rd_kafka_err2str(err));
                goto out;
        }
        count = consume_loop(rk, topic, n, 0, idle_ms, cb, opaque);
out:
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return count;
}

int tu_kafka_consume_group(tu_kafka_t *k, const char *topic, const char *group,
                           int idle_ms, tu_msg_cb_t *cb, void *opaque) {
        rd_kafka_topic_partition_list_t *sub;
        rd_kafka_resp_err_t err;
        rd_kafka_t *rk;
        int n, count = -1;

        rk = consumer(k, group);
        if (!rk)
                return -1;
        n = topic_partitions(rk, topic);
        if (n <= 0)
                goto out;
        sub = rd_kafka_topic_partition_list_new(1);
        if (!sub)
                goto out;
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
                fprintf(stderr, "tu_kafka: subscribe %s: %s\n", topic,
                        rd_kafka_err2str(err));
                goto out;
        }
        count = consume_loop(rk, topic, n, 1, idle_ms, cb, opaque);
        if (count < 0)
                goto out;
        err = rd_kafka_commit(rk, NULL, 0);
        /* Nothing consumed means nothing to commit, which is fine. */
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                fprintf(stderr, "tu_kafka: commit %s: %s\n", group,
                        rd_kafka_err2str(err));
                count = -1;
        }
out:
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return count;
}

int64_t tu_kafka_committed(tu_kafka_t *k, const char *group, const char *topic,
                           int32_t partition) {
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_resp_err_t err;
        rd_kafka_t *rk;
        int64_t off = -1;

        rk = consumer(k, group);
        if (!rk)
                return -1;
        parts = rd_kafka_topic_partition_list_new(1);
        if (parts) {
                rd_kafka_topic_partition_list_add(parts, topic, partition);
                err = rd_kafka_committed(rk, parts, 10000);
                if (err || parts->elems[0].err)
                        fprintf(
                            stderr, "tu_kafka: committed %s: %s\n", group,
                            rd_kafka_err2str(err ? err : parts->elems[0].err));
                else
                        off = parts->elems[0].offset;
                rd_kafka_topic_partition_list_destroy(parts);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return off;
}
