/* loy_collect: see loy_collect.h. */
#include "loy_collect.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_log.h"
#include "loy_pseudo.h"
#include "loy_time.h"

#define DLQ_REASON_MAX 256

static loy_event_kind_t topic_kind(const loy_batch_t *b, const char *topic) {
        if (!strcmp(topic, b->conf->topic_purchase))
                return LOY_EV_PURCHASE;
        if (!strcmp(topic, b->conf->topic_browse))
                return LOY_EV_BROWSE;
        return 0;
}

/* Polls up to batch_max messages, waiting at most batch_ms. Once it holds
 * a message it takes only what is already waiting in the local queue: a
 * busy stream still fills whole batches (librdkafka prefetches), while a
 * quiet one does not hold an event back for the rest of batch_ms.
 * Returns -1 on a fatal consumer error. */
int loy_collect_poll(loy_batch_t *b, rd_kafka_t *consumer, int wait,
                     volatile sig_atomic_t *running) {
        double deadline = loy_time_mono_ms() + b->conf->batch_ms;
        /* what the last batch held back comes first, in poll order; it
         * waits for the other topic's partition, so the poll still waits
         * for a new message */
        for (int i = 0; i < b->ncarry; i++)
                b->msgs[b->nmsgs++] = b->carry[i];
        b->ncarried = b->ncarry;
        b->ncarry = 0;
        while (b->nmsgs < b->conf->batch_max && *running) {
                double left = deadline - loy_time_mono_ms();
                int have = b->nmsgs > b->ncarried || !wait;
                rd_kafka_message_t *m;
                if (left <= 0)
                        break;
                m = rd_kafka_consumer_poll(consumer, have ? 0 : (int)left + 1);
                if (!m) {
                        if (have)
                                break;
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt) {
                        loy_clock_backlog(b->clock, rd_kafka_topic_name(m->rkt),
                                          m->partition, 0);
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->err) {
                        if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                                LOY_ERROR("proc", "consumer: %s",
                                          rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                return -1;
                        }
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                LOY_WARN("proc", "consumer: %s",
                                         rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                loy_clock_backlog(b->clock, rd_kafka_topic_name(m->rkt),
                                  m->partition, 1);
                b->msgs[b->nmsgs++] = m;
        }
        return 0;
}

/* The run of one input partition in the batch: its events in offset
 * order (indices into b->events). */
typedef struct run {
        const char *topic;
        int32_t partition;
        int kind;
        int *ev;
        int n;
        int held; /* from this event on, held back; -1 none */
} run_t;

/* Merge order of two events: event time, then purchases before browse
 * events, then partition: the same in every run, whatever the arrival. */
static int ev_before(const loy_event_t *x, const loy_event_t *y) {
        if (x->ts_ms != y->ts_ms)
                return x->ts_ms < y->ts_ms;
        if (x->kind != y->kind)
                return x->kind == LOY_EV_PURCHASE;
        return x->partition < y->partition;
}

/*
 * Where each input partition must stop so that a customer's purchase and
 * browse events are applied in one order whatever the batching: the two
 * topics' partitions of one number are merged by event time, and a merge
 * step needs the head of both. When one of the two has no event left in
 * the batch but data still to read (loy_clock_has_backlog), the other
 * one's remaining events wait for the next batch.
 */
static void find_cuts(loy_batch_t *b, run_t *runs, int nruns) {
        for (int r = 0; r < nruns; r++)
                runs[r].held = -1;
        for (int r = 0; r < nruns; r++) {
                run_t *x = &runs[r], *y = NULL;
                int i = 0, j = 0;
                if (x->kind != LOY_EV_PURCHASE)
                        continue;
                for (int q = 0; q < nruns && !y; q++)
                        if (runs[q].kind == LOY_EV_BROWSE &&
                            runs[q].partition == x->partition)
                                y = &runs[q];
                if (!y) {
                        /* no browse event of this number in the batch */
                        if (x->n && loy_clock_has_backlog(b->clock,
                                                          b->conf->topic_browse,
                                                          x->partition))
                                x->held = 0;
                        continue;
                }
                while (i < x->n && j < y->n) {
                        if (ev_before(&b->events[x->ev[i]],
                                      &b->events[y->ev[j]]))
                                i++;
                        else
                                j++;
                }
                if (i == x->n && j < y->n &&
                    loy_clock_has_backlog(b->clock, x->topic, x->partition))
                        y->held = j;
                else if (j == y->n && i < x->n &&
                         loy_clock_has_backlog(b->clock, y->topic,
                                               y->partition))
                        x->held = i;
        }
        for (int r = 0; r < nruns; r++) {
                run_t *y = &runs[r];
                int paired = 0;
                if (y->kind != LOY_EV_BROWSE || !y->n)
                        continue;
                for (int q = 0; q < nruns && !paired; q++)
                        paired = runs[q].kind == LOY_EV_PURCHASE &&
                                 runs[q].partition == y->partition;
                if (!paired &&
                    loy_clock_has_backlog(b->clock, b->conf->topic_purchase,
                                          y->partition))
                        y->held = 0;
        }
}

static void swap_events(loy_batch_t *b, int x, int y) {
        loy_event_t t = b->events[x];
        int m = b->event_msg[x];
        b->events[x] = b->events[y];
        b->event_msg[x] = b->event_msg[y];
        b->events[y] = t;
        b->event_msg[y] = m;
}

/* Moves the messages of each input from its first held event on (bad ones
 * after it too) to the carry, at most batch_max / 2 of them; the rest are
 * released and their partition sought back to them (read again). Returns
 * how many messages were held back. */
static int hold_back(loy_batch_t *b, rd_kafka_t *consumer, run_t *runs,
                     int nruns) {
        rd_kafka_topic_partition_list_t *seek = NULL;
        int *newidx = b->order; /* scratch until merge_order fills it */
        int w = 0, nheld = 0, nev = 0;
        int64_t *cut_off = NULL;
        for (int r = 0; r < nruns; r++)
                nheld += runs[r].held >= 0;
        if (!nheld)
                return 0;
        nheld = 0;
        cut_off = malloc(sizeof(*cut_off) * (size_t)nruns);
        if (!cut_off) {
                /* holding back is for determinism; without memory for it
                 * the batch goes in whole, in merge order */
                LOY_WARN("proc", "out of memory: nothing held back");
                return 0;
        }
        for (int r = 0; r < nruns; r++) {
                cut_off[r] = runs[r].held >= 0
                                 ? b->events[runs[r].ev[runs[r].held]].offset
                                 : INT64_MAX;
                if (runs[r].held >= 0)
                        LOY_DEBUG("proc",
                                  "%s [%" PRId32 "] waits from "
                                  "offset %" PRId64 " (%d of its events)",
                                  runs[r].topic, runs[r].partition, cut_off[r],
                                  runs[r].n - runs[r].held);
        }
        for (int i = 0; i < b->nmsgs; i++) {
                rd_kafka_message_t *m = b->msgs[i];
                const char *topic = rd_kafka_topic_name(m->rkt);
                int held = 0;
                for (int r = 0; r < nruns && !held; r++)
                        held = runs[r].partition == m->partition &&
                               m->offset >= cut_off[r] &&
                               !strcmp(runs[r].topic, topic);
                if (!held) {
                        newidx[i] = w;
                        b->bad_why[w] = b->bad_why[i];
                        b->bad_class[w] = b->bad_class[i];
                        b->msgs[w++] = m;
                        continue;
                }
                newidx[i] = -1;
                free(b->bad_why[i]);
                b->bad_why[i] = NULL;
                nheld++;
                /* counted again when it is decoded again */
                b->stats->events_in--;
                if (b->ncarry < b->conf->batch_max / 2) {
                        b->carry[b->ncarry++] = m;
                        continue;
                }
                if (!seek)
                        seek = rd_kafka_topic_partition_list_new(4);
                if (seek && !rd_kafka_topic_partition_list_find(seek, topic,
                                                                m->partition))
                        rd_kafka_topic_partition_list_add(seek, topic,
                                                          m->partition)
                            ->offset = m->offset;
                rd_kafka_message_destroy(m);
        }
        b->nmsgs = w;
        for (int k = 0; k < b->nevents; k++) {
                int nm = newidx[b->event_msg[k]];
                if (nm < 0)
                        continue;
                b->event_msg[k] = nm;
                swap_events(b, nev++, k);
        }
        b->nevents = nev;
        if (seek && consumer) {
                rd_kafka_error_t *error =
                    rd_kafka_seek_partitions(consumer, seek, 5000);
                if (error) {
                        LOY_WARN("proc", "hold back: %s",
                                 rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                }
        }
        if (seek)
                rd_kafka_topic_partition_list_destroy(seek);
        free(cut_off);
        return nheld;
}

/* The batch's runs: one per input partition, events in batch order. */
static int runs_of(loy_batch_t *b, run_t **out, int **evbuf) {
        run_t *runs = NULL;
        int nruns = 0, *ev;
        *out = NULL;
        *evbuf = NULL;
        if (!b->nevents)
                return 0;
        runs = calloc((size_t)b->nevents, sizeof(*runs));
        ev = malloc(sizeof(*ev) * (size_t)b->nevents);
        if (!runs || !ev) {
                free(runs);
                free(ev);
                return -1;
        }
        /* first count, then place: each run's events contiguous in ev */
        for (int k = 0; k < b->nevents; k++) {
                const loy_event_t *e = &b->events[k];
                int r;
                for (r = 0; r < nruns; r++)
                        if (runs[r].partition == e->partition &&
                            runs[r].topic == e->topic)
                                break;
                if (r == nruns) {
                        runs[r].topic = e->topic;
                        runs[r].partition = e->partition;
                        /* the topic's kind: a forget request may head a
                         * purchase partition's run */
                        runs[r].kind = topic_kind(b, e->topic);
                        nruns++;
                }
                runs[r].n++;
        }
        for (int r = 0, off = 0; r < nruns; r++) {
                runs[r].ev = ev + off;
                off += runs[r].n;
                runs[r].n = 0;
        }
        for (int k = 0; k < b->nevents; k++) {
                const loy_event_t *e = &b->events[k];
                for (int r = 0; r < nruns; r++)
                        if (runs[r].partition == e->partition &&
                            runs[r].topic == e->topic) {
                                runs[r].ev[runs[r].n++] = k;
                                break;
                        }
        }
        *out = runs;
        *evbuf = ev;
        return nruns;
}

/* The operation a control message names in its header (NULL: none, an
 * event), into op. */
static const char *control_op(rd_kafka_message_t *m, char *op, size_t size) {
        rd_kafka_headers_t *hdrs;
        const void *val;
        size_t n;
        if (rd_kafka_message_headers(m, &hdrs) ||
            rd_kafka_header_get_last(hdrs, LOY_CODEC_OP_HEADER, &val, &n))
                return NULL;
        if (!val)
                n = 0;
        if (n >= size)
                n = size - 1;
        memcpy(op, val ? val : "", n);
        op[n] = '\0';
        return op;
}

/* One message: an event, or a control message (loyaltyctl forget). */
static int decode_one(loy_batch_t *b, rd_kafka_message_t *m, const char *topic,
                      int64_t now, loy_event_t *ev, char *why,
                      size_t why_size) {
        char op[32];
        if (!control_op(m, op, sizeof(op)))
                return loy_codec_decode(b->codec, m->payload, m->len,
                                        topic_kind(b, topic), now, ev, why,
                                        why_size);
        if (strcmp(op, LOY_CODEC_OP_FORGET)) {
                loy_event_reset(ev);
                snprintf(why, why_size,
                         "header %s: unknown operation '%s' "
                         "(known: %s)",
                         LOY_CODEC_OP_HEADER, op, LOY_CODEC_OP_FORGET);
                return LOY_CODEC_ERR_INVALID;
        }
        return loy_codec_decode_forget(m->payload, m->len, now, ev, why,
                                       why_size);
}

/* Decodes the batch, holds back what must wait for the other topic, and
 * dead-letters the bad messages that stay. */
void loy_collect_decode(loy_batch_t *b, rd_kafka_t *consumer) {
        int64_t now = loy_time_wall_ms();
        b->nevents = 0;
        for (int i = 0; i < b->nmsgs; i++) {
                rd_kafka_message_t *m = b->msgs[i];
                const char *topic = rd_kafka_topic_name(m->rkt);
                loy_event_t *ev = &b->events[b->nevents];
                char why[DLQ_REASON_MAX];
                char pseudonym[LOY_PSEUDO_LEN + 1];
                int rc;
                b->stats->events_in++;
                b->bad_why[i] = NULL;
                rc = decode_one(b, m, topic, now, ev, why, sizeof(why));
                /* before anything keeps or logs the id (a request that
                 * names the customer as Redis keys it has its pseudonym
                 * already) */
                if (rc == 0 && b->pseudo &&
                    !(ev->kind == LOY_EV_FORGET && ev->forget_by_key)) {
                        if (loy_pseudo_of(b->pseudo, ev->customer_id,
                                          pseudonym) == -1) {
                                snprintf(why, sizeof(why),
                                         "customer_id: "
                                         "pseudonym failed (out of memory)");
                                rc = LOY_CODEC_ERR_DECODE;
                        } else {
                                memcpy(ev->customer_id, pseudonym,
                                       sizeof(pseudonym));
                        }
                }
                if (rc == 0) {
                        ev->topic = topic;
                        ev->partition = m->partition;
                        ev->offset = m->offset;
                        b->event_msg[b->nevents++] = i;
                        continue;
                }
                b->bad_class[i] = rc == LOY_CODEC_ERR_INVALID ? LOY_DEAD_INVALID
                                                              : LOY_DEAD_DECODE;
                b->bad_why[i] = strdup(why);
                if (!b->bad_why[i])
                        /* the reason is lost, not the dead letter */
                        loy_batch_dead_letter(b, i, b->bad_class[i],
                                              "bad message (reason "
                                              "lost: out of memory)");
        }
        if (b->conf->topic_browse[0] && b->nevents) {
                run_t *runs;
                int *ev;
                int nruns = runs_of(b, &runs, &ev);
                if (nruns > 0) {
                        find_cuts(b, runs, nruns);
                        hold_back(b, consumer, runs, nruns);
                } else if (nruns < 0) {
                        LOY_WARN("proc", "out of memory: nothing held "
                                         "back");
                }
                free(runs);
                free(ev);
        }
        /* only what stays in the batch moves event time: a check of a
         * customer on a partition may fire up to the newest event applied
         * there, never past events that wait for the next batch */
        for (int k = 0; k < b->nevents; k++)
                if (b->events[k].kind != LOY_EV_FORGET)
                        loy_clock_observe(b->clock, b->events[k].topic,
                                          b->events[k].partition,
                                          b->events[k].ts_ms, now);
        for (int i = 0; i < b->nmsgs; i++) {
                if (!b->bad_why[i])
                        continue;
                loy_batch_dead_letter(b, i, b->bad_class[i], b->bad_why[i]);
                free(b->bad_why[i]);
                b->bad_why[i] = NULL;
        }
}

/* Seeks every partition of the batch back to its first message and drops
 * the batch: it will be consumed again (partitions no longer owned are
 * left to their new owner). */
static void add_rewind(rd_kafka_topic_partition_list_t *list,
                       const loy_batch_t *b) {
        /* what was held back is read again too */
        for (int i = 0; i < b->nmsgs + b->ncarry; i++) {
                const rd_kafka_message_t *m =
                    i < b->nmsgs ? b->msgs[i] : b->carry[i - b->nmsgs];
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_find(
                        list, rd_kafka_topic_name(m->rkt), m->partition);
                if (!tp) {
                        tp = rd_kafka_topic_partition_list_add(
                            list, rd_kafka_topic_name(m->rkt), m->partition);
                        tp->offset = m->offset;
                } else if (m->offset < tp->offset) {
                        tp->offset = m->offset;
                }
        }
}

/* The events of a rewound batch moved the clock's partitions: they are
 * read again, so the checks they precede wait for them again. */
static void unobserve(const loy_batch_t *b) {
        for (int k = 0; k < b->nevents; k++)
                if (b->events[k].kind != LOY_EV_FORGET)
                        loy_clock_unobserve(b->clock, b->events[k].topic,
                                            b->events[k].partition,
                                            b->events[k].ts_ms);
}

void loy_collect_rewind(loy_batch_t *b, loy_batch_t *next,
                        rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(8);
        rd_kafka_error_t *error;
        add_rewind(list, b);
        if (next)
                add_rewind(list, next);
        error =
            list->cnt ? rd_kafka_seek_partitions(consumer, list, 5000) : NULL;
        if (error) {
                LOY_WARN("proc", "rewind: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        rd_kafka_topic_partition_list_destroy(list);
        unobserve(b);
        if (next)
                unobserve(next);
        loy_batch_drop(b);
        loy_batch_drop_carry(b);
        if (next) {
                loy_batch_drop(next);
                loy_batch_drop_carry(next);
                next->ncarried = 0;
        }
}

/* Keeps the messages of msgs[0 .. n-1] whose partition is in asg, in
 * order, and releases the others; returns how many are kept. */
static int keep_owned(rd_kafka_message_t **msgs, int n,
                      const rd_kafka_topic_partition_list_t *asg) {
        int w = 0;
        for (int i = 0; i < n; i++) {
                rd_kafka_message_t *m = msgs[i];
                if (rd_kafka_topic_partition_list_find(
                        asg, rd_kafka_topic_name(m->rkt), m->partition))
                        msgs[w++] = m;
                else
                        rd_kafka_message_destroy(m);
        }
        return w;
}

/* After a revocation during the poll, drops the messages of partitions this
 * process no longer owns (held back ones too): their new owner processes
 * them. */
void loy_collect_drop_revoked(loy_batch_t *b, rd_kafka_t *consumer) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        int w, c;
        if (rd_kafka_assignment(consumer, &asg) || !asg)
                return;
        w = keep_owned(b->msgs, b->nmsgs, asg);
        c = keep_owned(b->carry, b->ncarry, asg);
        if (w < b->nmsgs || c < b->ncarry)
                LOY_INFO("proc", "dropped %d messages of revoked partitions",
                         b->nmsgs - w + b->ncarry - c);
        b->nmsgs = w;
        b->ncarry = c;
        rd_kafka_topic_partition_list_destroy(asg);
}

/* Orders the batch for applying: a merge by event time of the partitions'
 * runs, each run kept in offset order (like Kafka Streams picking the
 * partition with the oldest head record). Sorting by time alone would
 * reorder a partition whose timestamps go backwards, and the offset fence
 * would then drop the earlier offset. */
void loy_collect_merge_order(loy_batch_t *b) {
        int ngroups = 0;
        int *next = b->group_of; /* reused: next event of the same run */
        int *head = b->group_head;
        int tail[64], gcount = 0;
        /* runs are few (assigned partitions), so linear scans are cheap */
        const char *gtopic[64];
        int32_t gpart[64];
        for (int i = 0; i < b->nevents; i++)
                next[i] = -1;
        for (int i = 0; i < b->nevents; i++) {
                const loy_event_t *ev = &b->events[i];
                int g;
                for (g = 0; g < ngroups; g++)
                        if (gpart[g] == ev->partition && gtopic[g] == ev->topic)
                                break;
                if (g == ngroups) {
                        if (ngroups == 64) {
                                /* more runs than we merge: keep arrival
                                 * order, which is offset order per run */
                                for (int k = 0; k < b->nevents; k++)
                                        b->order[k] = k;
                                return;
                        }
                        gtopic[g] = ev->topic;
                        gpart[g] = ev->partition;
                        head[g] = i;
                        tail[g] = i;
                        ngroups++;
                } else {
                        next[tail[g]] = i;
                        tail[g] = i;
                }
        }
        while (gcount < b->nevents) {
                int best = -1;
                for (int g = 0; g < ngroups; g++)
                        if (head[g] >= 0 &&
                            (best < 0 || ev_before(&b->events[head[g]],
                                                   &b->events[head[best]])))
                                best = g;
                b->order[gcount++] = head[best];
                head[best] = next[head[best]];
        }
}
