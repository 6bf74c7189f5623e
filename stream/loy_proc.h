/*
 * loy_proc: the processor, the batch loop of DESIGN.md ("Data flow: one
 * batch"): consume, decode (bad input dead-lettered), load the batch's
 * customers in one pipeline, apply events in offset order (skipping what a
 * customer has already applied), advance event time and fire due timers,
 * score, decide rewards, write each customer atomically, emit triggers from
 * the outbox, store offsets.
 */
#ifndef LOY_PROC_H
#define LOY_PROC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/loy_config.h"
#include "../state/loy_store.h"

typedef struct loy_proc loy_proc_t;

/* Why a message was dead-lettered, as /metrics counts them. */
typedef enum loy_dead_class {
        LOY_DEAD_DECODE,  /* the bytes are not an event */
        LOY_DEAD_INVALID, /* an event that breaks docs/events.md */
        LOY_DEAD_APPLY,   /* valid, but its customer's state refuses
                           * it (quarantined, unusable) */
        LOY_DEAD__COUNT
} loy_dead_class_t;

/* Counters since start (also mirrored into <ns>:stats). */
typedef struct loy_proc_stats {
        int64_t events_in; /* messages consumed */
        int64_t events_applied;
        int64_t events_skipped_dup;    /* at or below a customer's offset */
        int64_t events_duplicate_id;   /* an event_id the customer applied
                                        * among its last LOY_RECENT_EVENTS */
        int64_t customers_forgotten;   /* forget requests applied */
        int64_t events_forgotten;      /* dropped: an erasure covers them */
        int64_t expiries_outdated;     /* not applied: the customer came back
                                        * after the expiry was decided */
        int64_t conversions_untracked; /* purchases that would convert a
                                        * trigger, on a customer with no
                                        * free slot to remember it */
        int64_t dead_lettered;
        int64_t dead_by_class[LOY_DEAD__COUNT];
        int64_t triggers_out; /* triggers written to the outbox */
        /* of those, per rule of conf.rules: [r][0] rewards, [r][1]
         * holdouts (the control group: emitted with holdout = true) */
        int64_t triggers_by_rule[LOY_RULES_MAX][2];
        int64_t triggers_acked; /* delivered to Kafka */
        int64_t timers_fired;
        int64_t batches;
        int64_t redis_failures;
        int64_t batches_fenced;     /* refused: another process wrote */
        int64_t owner_conns_closed; /* of a frozen previous owner */
        int64_t batches_overlapped; /* applied while the one before was
                                     * written */
        int64_t clock_ms;
        double busy_s; /* wall time spent on batches */
} loy_proc_stats_t;

/* Builds every part from conf (copied). Redis may be down at start: the
 * processor waits for it before consuming. NULL with errstr on a bad model
 * file or Kafka configuration. Free with loy_proc_destroy(). */
loy_proc_t *loy_proc_create(const loy_config_t *conf, char *errstr,
                            size_t errstr_size);

/* Fault injection: fn runs once each batch's aggregates were accepted,
 * before its customers are sent (loy_store_set_after_agg_hook). */
void loy_proc_set_after_agg_hook(loy_proc_t *p, loy_store_hook_fn *fn,
                                 void *opaque);

/* Runs batches until *running becomes 0, then drains: triggers delivered,
 * offsets committed. *reload set to 1 asks for a model reload (SIGHUP); it
 * is reset. Returns 0, or -1 when it stopped on an error no retry mends:
 * a fatal Kafka error (rd_kafka_fatal_error) or Redis refusing the
 * credentials, said in the log. */
int loy_proc_run(loy_proc_t *p, volatile sig_atomic_t *running,
                 volatile sig_atomic_t *reload);

/* Re-reads the model file; on error the old model stays. 0 or -1. */
int loy_proc_reload_model(loy_proc_t *p, char *errstr, size_t errstr_size);

const loy_proc_stats_t *loy_proc_stats(const loy_proc_t *p);

/* The port of its HTTP endpoint (http.listen), 0 without one. */
int loy_proc_http_port(const loy_proc_t *p);

/* Closes the consumer (commit, leave group) and frees everything. */
void loy_proc_destroy(loy_proc_t *p);

#endif
