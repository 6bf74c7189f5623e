/*
 * loy_kafka: librdkafka set-up shared by loyaltyd and loyaltyctl: clients
 * built from the config ([kafka] properties pass straight through), the
 * log callback routed into loy_log, and dead-lettering.
 */
#ifndef LOY_KAFKA_H
#define LOY_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "../config/loy_config.h"

/* Consumer of conf's group; offsets are stored by the application after
 * each successful Redis write and committed by librdkafka (and on close).
 * It reports each partition's end (RD_KAFKA_RESP_ERR__PARTITION_EOF).
 * rebalance_cb may be NULL; opaque is passed to it. NULL with errstr. */
rd_kafka_t *loy_kafka_consumer_new(
    const loy_config_t *conf,
    void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                         rd_kafka_topic_partition_list_t *, void *),
    void *opaque, char *errstr, size_t errstr_size);

/* Idempotent producer (acks=all, no reordering, no duplicates from
 * retries). dr_cb may be NULL. NULL with errstr. */
rd_kafka_t *loy_kafka_producer_new(
    const loy_config_t *conf,
    void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
    void *opaque, char *errstr, size_t errstr_size);

/* Produces msg's key and value, bytes intact, to topic with headers
 * loy.reason, loy.topic, loy.partition, loy.offset. msg_opaque reaches the
 * delivery report.
 * A message that Kafka allowed to be consumed can be larger than this
 * producer may send (librdkafka's message.max.bytes default, 1,000,000, is
 * below the broker's 1 MiB), so the record is cut to fit the producer's
 * limit, or max_bytes when smaller and not 0 (a broker that refused it as
 * too large): value first, then key. A cut record carries header
 * loy.truncated = "<value bytes>,<key bytes>" of the original. Retries a full
 * queue a bounded number of times. 0 or -1 with errstr. */
int loy_kafka_deadletter(rd_kafka_t *producer, const char *topic,
                         const rd_kafka_message_t *msg, const char *reason,
                         size_t max_bytes, void *msg_opaque, char *errstr,
                         size_t errstr_size);

/* Produces with retries on a full queue (polling in between): 0 or -1. */
int loy_kafka_produce(rd_kafka_t *producer, const char *topic, const char *key,
                      size_t key_len, const void *val, size_t len,
                      void *msg_opaque, char *errstr, size_t errstr_size);

#endif
