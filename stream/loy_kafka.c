/* loy_kafka: see loy_kafka.h. */
#include "loy_kafka.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_log.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
        (void)rk;
        loy_log(level <= 3   ? LOY_LOG_ERROR
                : level <= 4 ? LOY_LOG_WARN
                : level <= 6 ? LOY_LOG_INFO
                             : LOY_LOG_DEBUG,
                "kafka", "%s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
        (void)rk;
        (void)opaque;
        /* transport errors recover by themselves; fatal ones do not */
        if (err == RD_KAFKA_RESP_ERR__FATAL)
                LOY_ERROR("kafka", "fatal: %s", reason);
        else
                LOY_WARN("kafka", "%s: %s",
                         rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int set(rd_kafka_conf_t *kc, const char *key, const char *val,
               char *errstr, size_t errstr_size) {
        char why[256];
        if (rd_kafka_conf_set(kc, key, val, why, sizeof(why)) !=
            RD_KAFKA_CONF_OK) {
                snprintf(errstr, errstr_size, "kafka.%s: %s", key, why);
                return -1;
        }
        return 0;
}

/* Our defaults first, then the user's [kafka] properties over them. */
static rd_kafka_conf_t *base_conf(const loy_config_t *conf, int producer,
                                  char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        if (set(kc, "client.id", "loyaltyd", errstr, errstr_size) == -1)
                goto fail;
        if (set(kc, "log_level", "4", errstr, errstr_size) == -1)
                goto fail;
        /* no duplicates or reordering from the producer's own retries; the
         * user's [kafka] keys below may still override these */
        if (producer &&
            (set(kc, "enable.idempotence", "true", errstr, errstr_size) ||
             set(kc, "linger.ms", "5", errstr, errstr_size)))
                goto fail;
        /* librdkafka's 500 ms default makes a quiet partition's next event
         * wait for the broker's timeout: an event-to-trigger latency of
         * half a second at moderate rates. A busy stream fills fetches
         * long before either limit. */
        if (!producer &&
            set(kc, "fetch.wait.max.ms", "10", errstr, errstr_size))
                goto fail;
        for (int i = 0; i < conf->nkafka; i++) {
                const char *k = conf->kafka_keys[i];
                /* consumer-only keys would make the producer complain */
                if (producer &&
                    (!strcmp(k, "group.id") || !strncmp(k, "auto.", 5) ||
                     !strncmp(k, "enable.auto", 11) ||
                     !strncmp(k, "session.", 8)))
                        continue;
                if (set(kc, k, conf->kafka_vals[i], errstr, errstr_size) == -1)
                        goto fail;
        }
        rd_kafka_conf_set_log_cb(kc, log_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        return kc;
fail:
        rd_kafka_conf_destroy(kc);
        return NULL;
}

rd_kafka_t *loy_kafka_consumer_new(
    const loy_config_t *conf,
    void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                         rd_kafka_topic_partition_list_t *, void *),
    void *opaque, char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *kc = base_conf(conf, 0, errstr, errstr_size);
        rd_kafka_t *rk;
        if (!kc)
                return NULL;
        if (set(kc, "group.id", conf->group_id, errstr, errstr_size) ||
            set(kc, "enable.auto.offset.store", "false", errstr, errstr_size) ||
            set(kc, "auto.offset.reset", "earliest", errstr, errstr_size) ||
            /* the event clock must know when a partition is read to its
             * end: only then may it stop holding the clock back */
            set(kc, "enable.partition.eof", "true", errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        /* user overrides of the two above */
        for (int i = 0; i < conf->nkafka; i++)
                if (!strcmp(conf->kafka_keys[i], "auto.offset.reset") &&
                    set(kc, conf->kafka_keys[i], conf->kafka_vals[i], errstr,
                        errstr_size)) {
                        rd_kafka_conf_destroy(kc);
                        return NULL;
                }
        if (rebalance_cb)
                rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rd_kafka_conf_set_opaque(kc, opaque);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

rd_kafka_t *loy_kafka_producer_new(
    const loy_config_t *conf,
    void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
    void *opaque, char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *kc = base_conf(conf, 1, errstr, errstr_size);
        rd_kafka_t *rk;
        if (!kc)
                return NULL;
        if (dr_cb)
                rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
        rd_kafka_conf_set_opaque(kc, opaque);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
        if (!rk)
                rd_kafka_conf_destroy(kc);
        return rk;
}

#define QUEUE_FULL_RETRIES 100

int loy_kafka_produce(rd_kafka_t *producer, const char *topic, const char *key,
                      size_t key_len, const void *val, size_t len,
                      void *msg_opaque, char *errstr, size_t errstr_size) {
        for (int attempt = 0;; attempt++) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_KEY(key, key_len),
                    RD_KAFKA_V_VALUE((void *)val, len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
                if (!err)
                        return 0;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                    attempt == QUEUE_FULL_RETRIES) {
                        snprintf(errstr, errstr_size, "produce to %s: %s",
                                 topic, rd_kafka_err2str(err));
                        return -1;
                }
                rd_kafka_poll(producer, 100);
        }
}

/* Room left for key and value under the producer's message.max.bytes:
 * librdkafka counts the record's framing (under 100 bytes for v2 records)
 * and the headers against it. */
static size_t room_for(rd_kafka_t *producer, size_t headers_len) {
        char v[32];
        size_t vlen = sizeof(v);
        long max = 1000000;
        const size_t framing = 512;
        if (rd_kafka_conf_get(rd_kafka_conf(producer), "message.max.bytes", v,
                              &vlen) == RD_KAFKA_CONF_OK)
                max = atol(v);
        if (max <= 0 || (size_t)max <= framing + headers_len)
                return 0;
        return (size_t)max - framing - headers_len;
}

int loy_kafka_deadletter(rd_kafka_t *producer, const char *topic,
                         const rd_kafka_message_t *msg, const char *reason,
                         size_t max_bytes, void *msg_opaque, char *errstr,
                         size_t errstr_size) {
        char part[16], off[24], cut[48];
        const char *src = rd_kafka_topic_name(msg->rkt);
        size_t hlen, room, klen = msg->key_len, vlen = msg->len;
        snprintf(part, sizeof(part), "%" PRId32, msg->partition);
        snprintf(off, sizeof(off), "%" PRId64, msg->offset);
        hlen = strlen(reason) + strlen(src) + strlen(part) + strlen(off) +
               sizeof(cut) + 64;
        room = room_for(producer, hlen);
        if (max_bytes && max_bytes < room)
                room = max_bytes;
        cut[0] = '\0';
        if (klen + vlen > room) {
                /* the key says whose it was: keep it unless it is the key
                 * that does not fit */
                if (klen > room / 2)
                        klen = room / 2;
                vlen = klen + vlen > room ? room - klen : vlen;
                snprintf(cut, sizeof(cut), "%zu,%zu", msg->len, msg->key_len);
        }
        for (int attempt = 0;; attempt++) {
                rd_kafka_headers_t *hdrs = rd_kafka_headers_new(5);
                rd_kafka_resp_err_t err;
                rd_kafka_header_add(hdrs, "loy.reason", -1, reason, -1);
                rd_kafka_header_add(hdrs, "loy.topic", -1, src, -1);
                rd_kafka_header_add(hdrs, "loy.partition", -1, part, -1);
                rd_kafka_header_add(hdrs, "loy.offset", -1, off, -1);
                if (cut[0])
                        rd_kafka_header_add(hdrs, "loy.truncated", -1, cut, -1);
                err = rd_kafka_producev(
                    producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_KEY(msg->key, klen),
                    RD_KAFKA_V_VALUE(msg->payload, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg_opaque),
                    RD_KAFKA_V_END);
                if (!err)
                        return 0; /* headers now owned by the message */
                rd_kafka_headers_destroy(hdrs);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                    attempt == QUEUE_FULL_RETRIES) {
                        snprintf(errstr, errstr_size, "dead-letter to %s: %s",
                                 topic, rd_kafka_err2str(err));
                        return -1;
                }
                rd_kafka_poll(producer, 100);
        }
}
