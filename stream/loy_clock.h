/*
 * loy_clock: event time, as DESIGN.md step 5 defines it. Like Flink's
 * watermark and Kafka Streams' stream time: the minimum, over the partitions
 * this process owns, of the newest event time seen there, minus the allowed
 * lateness. A partition that has been silent (wall clock) for idle_ms stops
 * holding the clock back -- unless it is known to have data still to read
 * (loy_clock_backlog): a partition that is merely slow to deliver must not
 * let the clock jump over its events, or two runs of the same input end
 * differently. A partition that has not delivered anything yet holds the
 * clock until it too has been idle that long. When every partition is idle
 * nothing holds the clock: it moves to the newest event seen anywhere (here,
 * or by the group: loy_clock_global), so where a replay ends depends neither
 * on which partition fell silent last nor on how many processes share them.
 * The clock never goes backwards. No Kafka types: partitions are (topic,
 * partition) pairs.
 */
#ifndef LOY_CLOCK_H
#define LOY_CLOCK_H

#include <stdint.h>

typedef struct loy_clock loy_clock_t;

/* NULL on no memory. Free with loy_clock_destroy(). */
loy_clock_t *loy_clock_create(int64_t lateness_ms, int64_t idle_ms);
void loy_clock_destroy(loy_clock_t *clk);

/* Ownership changes (rebalance). wall_ms is the wall clock now. */
int loy_clock_assign(loy_clock_t *clk, const char *topic, int32_t partition,
                     int64_t wall_ms);
void loy_clock_revoke(loy_clock_t *clk, const char *topic, int32_t partition);
void loy_clock_revoke_all(loy_clock_t *clk);

/* An event of ts_ms arrived on (topic, partition) at wall_ms. ts_ms <= 0
 * means a message without a time (dead letter): it keeps a partition that
 * already has a time active, but does not end the wait for a first time. */
void loy_clock_observe(loy_clock_t *clk, const char *topic, int32_t partition,
                       int64_t ts_ms, int64_t wall_ms);

/* Events from ts_ms on of (topic, partition) will be read again (their
 * batch was rewound): the partition has data to read, and its newest time
 * goes back below ts_ms, so the checks of its customers stop before the
 * events they must follow. The clock itself does not go back. */
void loy_clock_unobserve(loy_clock_t *clk, const char *topic, int32_t partition,
                         int64_t ts_ms);

/* Whether (topic, partition) is known to have unread data: set it on
 * assignment and on every message, clear it when the consumer reports the
 * partition's end. A partition never told is taken as caught up. */
void loy_clock_backlog(loy_clock_t *clk, const char *topic, int32_t partition,
                       int backlog);

/* 1 when (topic, partition) is owned and known to have unread data. */
int loy_clock_has_backlog(const loy_clock_t *clk, const char *topic,
                          int32_t partition);

/* The newest event time of an owned partition as a previous owner left it
 * (kept in Redis), so a restarted process fires due timers without new
 * traffic. Only raises the partition's newest time; it does not make the
 * partition active. Ignored for a partition not owned. */
void loy_clock_restore(loy_clock_t *clk, const char *topic, int32_t partition,
                       int64_t newest_ts);

/* The newest event time applied anywhere in the group (all partitions, by
 * every process: loy:clock). Used only when every owned partition is idle,
 * so that where event time ends does not depend on how many processes
 * share the partitions. Only raises it. */
void loy_clock_global(loy_clock_t *clk, int64_t newest_ts);

/* The i-th owned partition (0 <= i < loy_clock_owned) and its newest event
 * time (0: none yet). The topic string belongs to the clock. */
void loy_clock_part(const loy_clock_t *clk, int i, const char **topic,
                    int32_t *partition, int64_t *newest_ts);

/* How far silence checks of customers on (topic, partition) may fire at
 * clock clock_ms: the clock itself, except while the partition still has
 * unread data, when it stops at the newest event applied there -- events
 * a crash or a rebalance hands over again must come before the checks
 * they precede. */
int64_t loy_clock_timer_limit(const loy_clock_t *clk, const char *topic,
                              int32_t partition, int64_t clock_ms);

/* Recomputes and returns the clock at wall_ms: 0 while nothing is known. */
int64_t loy_clock_advance(loy_clock_t *clk, int64_t wall_ms);
int64_t loy_clock_now(const loy_clock_t *clk);

/* Number of owned partitions. */
int loy_clock_owned(const loy_clock_t *clk);

#endif
