/* loy_dlq: see loy_dlq.h. */
#include "loy_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loy_kafka.h"
#include "loy_log.h"

enum { DLQ_NONE = 0, DLQ_SENT, DLQ_DONE, DLQ_FAILED };
#define REASON_MAX 256
#define GRACE_MS 10000 /* for dead letters on their way at shutdown */

struct loy_dlq {
        rd_kafka_t *producer;
        char *topic;
        int capacity;
        int backoff_max_ms;
        /* per slot: the state (its address is the delivery opaque), the
         * size a broker would take (0: the producer's limit), the reason */
        char *state;
        size_t *max;
        char (*reason)[REASON_MAX];
};

static double mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

loy_dlq_t *loy_dlq_create(rd_kafka_t *producer, const char *topic, int capacity,
                          int backoff_max_ms) {
        loy_dlq_t *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->producer = producer;
        d->capacity = capacity;
        d->backoff_max_ms = backoff_max_ms > 0 ? backoff_max_ms : 1000;
        d->topic = strdup(topic);
        d->state = calloc((size_t)capacity, 1);
        d->max = calloc((size_t)capacity, sizeof(*d->max));
        d->reason = calloc((size_t)capacity, sizeof(*d->reason));
        if (!d->topic || !d->state || !d->max || !d->reason) {
                loy_dlq_destroy(d);
                return NULL;
        }
        return d;
}

void loy_dlq_destroy(loy_dlq_t *d) {
        if (!d)
                return;
        free(d->topic);
        free(d->state);
        free(d->max);
        free(d->reason);
        free(d);
}

static void produce(loy_dlq_t *d, int i, const rd_kafka_message_t *msg) {
        char err[256];
        if (loy_kafka_deadletter(d->producer, d->topic, msg, d->reason[i],
                                 d->max[i], &d->state[i], err,
                                 sizeof(err)) == -1) {
                LOY_WARN("dlq", "%s", err);
                d->state[i] = DLQ_FAILED;
                return;
        }
        d->state[i] = DLQ_SENT;
}

int loy_dlq_send(loy_dlq_t *d, int i, const rd_kafka_message_t *msg,
                 const char *why) {
        if (i < 0 || i >= d->capacity || d->state[i] != DLQ_NONE)
                return 0;
        LOY_DEBUG("dlq", "%s [%" PRId32 "] @%" PRId64 ": %s",
                  rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
                  why);
        snprintf(d->reason[i], sizeof(d->reason[i]), "%s", why);
        produce(d, i, msg);
        return 1;
}

int loy_dlq_is_dead(const loy_dlq_t *d, int i) {
        return i >= 0 && i < d->capacity && d->state[i] != DLQ_NONE;
}

int loy_dlq_owns(const loy_dlq_t *d, const void *opaque) {
        const char *o = opaque;
        return o >= d->state && o < d->state + d->capacity;
}

void loy_dlq_delivered(loy_dlq_t *d, const rd_kafka_message_t *m) {
        char *st = m->_private;
        if (!loy_dlq_owns(d, st))
                return;
        if (!m->err) {
                *st = DLQ_DONE;
                return;
        }
        LOY_WARN("dlq", "dead letter not delivered: %s",
                 rd_kafka_err2str(m->err));
        *st = DLQ_FAILED;
        if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
                d->max[st - d->state] = (m->len + m->key_len) / 2;
}

int loy_dlq_deliver(loy_dlq_t *d, rd_kafka_message_t *const *msgs, int n,
                    volatile sig_atomic_t *running) {
        int backoff = 50;
        double give_up = 0;
        if (n > d->capacity)
                n = d->capacity;
        for (;;) {
                int sent = 0, failed = 0;
                rd_kafka_poll(d->producer, 0);
                for (int i = 0; i < n; i++) {
                        sent += d->state[i] == DLQ_SENT;
                        failed += d->state[i] == DLQ_FAILED;
                }
                if (!sent && !failed)
                        return 0;
                if (!*running) {
                        if (!give_up)
                                give_up = mono_ms() + GRACE_MS;
                        if (failed || mono_ms() > give_up)
                                return -1;
                }
                if (sent) {
                        rd_kafka_flush(d->producer, 200);
                        continue;
                }
                LOY_WARN("dlq",
                         "%d dead letters not delivered; sending "
                         "them again",
                         failed);
                sleep_ms(backoff);
                backoff = backoff * 2 > d->backoff_max_ms ? d->backoff_max_ms
                                                          : backoff * 2;
                for (int i = 0; i < n; i++)
                        if (d->state[i] == DLQ_FAILED)
                                produce(d, i, msgs[i]);
        }
}

void loy_dlq_reset(loy_dlq_t *d, int n) {
        if (n > d->capacity)
                n = d->capacity;
        memset(d->state, DLQ_NONE, (size_t)n);
        memset(d->max, 0, (size_t)n * sizeof(*d->max));
}
