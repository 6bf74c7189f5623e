/*
 * loy_clock: event time as DESIGN.md step 5 defines it, driven with
 * explicit wall-clock values (no sleeping). Expected clocks are worked out
 * by hand in the comments.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "loy_clock.h"
#include "tu.h"

#define IDLE 1000 /* idle_ms of most tests */

static void test_empty(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        CU_ASSERT_EQUAL(loy_clock_now(clk), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 0), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1000000), 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 0);
        /* owned partitions that never deliver, even idle ones: no time */
        CU_ASSERT_EQUAL(loy_clock_assign(clk, "t", 0, 0), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 10), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 5000), 0);
        loy_clock_destroy(clk);
        loy_clock_destroy(NULL);
}

/* The minimum over partitions of their newest event, minus lateness. */
static void test_min(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        loy_clock_t *late = loy_clock_create(500, IDLE);
        loy_clock_t *c[2] = {clk, late};
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        CU_ASSERT_PTR_NOT_NULL_FATAL(late);
        for (int i = 0; i < 2; i++) {
                CU_ASSERT_EQUAL(loy_clock_assign(c[i], "t", 0, 0), 0);
                CU_ASSERT_EQUAL(loy_clock_assign(c[i], "t", 1, 0), 0);
                CU_ASSERT_EQUAL(loy_clock_owned(c[i]), 2);
                loy_clock_observe(c[i], "t", 0, 5000, 10);
        }
        /* t/1 has not delivered: it may still hold older events */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 10), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(late, 10), 0);
        for (int i = 0; i < 2; i++)
                loy_clock_observe(c[i], "t", 1, 3000, 20);
        /* min(5000, 3000) */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 20), 3000);
        CU_ASSERT_EQUAL(loy_clock_advance(late, 20), 2500);
        /* out-of-order older events do not lower a partition's newest */
        for (int i = 0; i < 2; i++) {
                loy_clock_observe(c[i], "t", 0, 9000, 30);
                loy_clock_observe(c[i], "t", 0, 1000, 31);
        }
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 31), 3000);
        for (int i = 0; i < 2; i++)
                loy_clock_observe(c[i], "t", 1, 7000, 40);
        /* min(9000, 7000): not the maximum, not the last event */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 40), 7000);
        CU_ASSERT_EQUAL(loy_clock_now(clk), 7000);
        CU_ASSERT_EQUAL(loy_clock_advance(late, 40), 6500);
        CU_ASSERT_EQUAL(loy_clock_now(late), 6500);
        /* advance without news changes nothing */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 41), 7000);
        loy_clock_destroy(clk);
        loy_clock_destroy(late);
}

/* A partition that has not delivered holds the clock until idle_ms after
 * its assignment. */
static void test_hold_until_idle(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        loy_clock_observe(clk, "t", 0, 5000, 100);
        loy_clock_observe(clk, "t", 0, 5000, 900);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 900), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 999), 0); /* 999 < 1000 */
        /* t/1 silent for exactly idle_ms; t/0 heard 100 ms ago */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1000), 5000);

        /* a partition assigned later holds the clock again, from its own
         * assignment: the clock stays, it does not go back to 0 */
        loy_clock_assign(clk, "t", 2, 2000);
        loy_clock_observe(clk, "t", 0, 6000, 2000);
        loy_clock_observe(clk, "t", 0, 6000, 2900);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 2500), 5000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 2999), 5000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 3000), 6000);

        /* assigning an owned partition again is not a new assignment */
        loy_clock_assign(clk, "t", 3, 4000);
        loy_clock_observe(clk, "t", 0, 6500, 4400);
        loy_clock_assign(clk, "t", 3, 4800);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 4);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 4999), 6000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 5000), 6500);
        loy_clock_destroy(clk);
}

/* A partition silent for idle_ms stops holding the clock back; when it
 * speaks again it holds it again (but the clock never goes back). */
static void test_idle_partition(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        loy_clock_observe(clk, "t", 0, 1000, 0);
        loy_clock_observe(clk, "t", 1, 8000, 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 0), 1000);
        loy_clock_observe(clk, "t", 1, 9000, 1499);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 999), 1000);
        /* t/0 silent since wall 0: idle at 1000 */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1500), 9000);
        /* t/0 back with an old event: it holds again, at 2000 < 9000 */
        loy_clock_observe(clk, "t", 0, 2000, 1600);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1600), 9000);
        loy_clock_observe(clk, "t", 1, 12000, 1700);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1700), 9000);
        loy_clock_observe(clk, "t", 0, 9500, 1800);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1800), 9500);
        loy_clock_observe(clk, "t", 0, 15000, 1900);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1900), 12000);
        loy_clock_destroy(clk);
}

/* Everything idle: nothing holds the clock back, it moves to the newest
 * event seen (it used to stop at the minimum, so where a replay ended
 * depended on which partition had fallen silent last). */
static void test_all_idle(void) {
        loy_clock_t *clk = loy_clock_create(100, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        loy_clock_assign(clk, "t", 2, 0);
        loy_clock_observe(clk, "t", 0, 4000, 0);
        loy_clock_observe(clk, "t", 1, 6000, 0);
        /* t/2 never delivers: it holds until idle */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 500), 0);
        /* all three idle at 1000: max(4000, 6000) - 100; t/2 has none */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1000), 5900);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 99999), 5900);
        loy_clock_destroy(clk);
}

/* The clock never goes backwards: not through a rebalance, not through a
 * partition that comes back with old data. */
static void test_monotonic(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        loy_clock_observe(clk, "t", 0, 10000, 0);
        loy_clock_observe(clk, "t", 1, 20000, 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 0), 10000);
        loy_clock_revoke(clk, "t", 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1), 20000);
        /* t/0 comes back with older data */
        loy_clock_assign(clk, "t", 0, 2);
        loy_clock_observe(clk, "t", 0, 5000, 3);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 3), 20000);
        CU_ASSERT_EQUAL(loy_clock_now(clk), 20000);
        /* lose everything: the clock keeps its value */
        loy_clock_revoke_all(clk);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 4), 20000);
        loy_clock_observe(clk, "t", 0, 100, 5);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 5), 20000);
        loy_clock_observe(clk, "t", 0, 25000, 6);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 6), 25000);
        loy_clock_destroy(clk);
}

static void test_revoke(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "a", 0, 0);
        loy_clock_assign(clk, "a", 1, 0);
        loy_clock_assign(clk, "b", 0, 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 3);
        loy_clock_observe(clk, "a", 0, 5000, 10);
        loy_clock_observe(clk, "b", 0, 7000, 10);
        /* a/1 holds */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 10), 0);
        /* not owned: nothing happens */
        loy_clock_revoke(clk, "a", 7);
        loy_clock_revoke(clk, "c", 1);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 3);
        /* the holder leaves: the clock moves at once */
        loy_clock_revoke(clk, "a", 1);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 2);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 11), 5000);
        /* the remaining ones are still told apart (same partition number,
         * other topic) */
        loy_clock_revoke(clk, "a", 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 12), 7000);
        loy_clock_observe(clk, "b", 0, 8000, 13);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 13), 8000);
        loy_clock_destroy(clk);
}

/* Events of a partition nobody assigned (manual assignment in tools): it is
 * adopted as if assigned at that moment. */
static void test_observe_adopts(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_observe(clk, "t", 3, 7000, 50);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 50), 7000);
        /* assigning it afterwards does not make a second one */
        CU_ASSERT_EQUAL(loy_clock_assign(clk, "t", 3, 60), 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        loy_clock_observe(clk, "t", 3, 8000, 70);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 70), 8000);
        /* an adopted partition is an owned one: it holds the minimum */
        loy_clock_observe(clk, "u", 0, 7500, 80);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 2);
        loy_clock_observe(clk, "t", 3, 9000, 90);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 90), 8000);
        loy_clock_observe(clk, "u", 0, 9500, 95);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 95), 9000);
        loy_clock_destroy(clk);
}

/* Dead letters are reported with ts 0. On a partition that has a time they
 * keep it active; on one that never had a time they must not hold the
 * clock at 0 for as long as bad data flows. */
static void test_timeless_messages(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        for (int64_t w = 0; w <= 3000; w += 500) {
                loy_clock_observe(clk, "t", 0, 5000 + w, w);
                loy_clock_observe(clk, "t", 1, 0, w); /* garbage only */
        }
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 999), 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 3000), 8000);
        loy_clock_observe(clk, "t", 1, 7000, 3100); /* a real one now */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 3100), 8000);
        loy_clock_observe(clk, "t", 0, 9000, 3200);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 3200), 8000);
        /* t/1 (newest 7000) keeps sending garbage: still active, but the
         * clock does not go back to 7000 */
        loy_clock_observe(clk, "t", 1, 0, 4000);
        loy_clock_observe(clk, "t", 0, 10000, 4000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 4100), 8000);
        /* t/1 fully silent from 4000: idle at 5000 */
        loy_clock_observe(clk, "t", 0, 11000, 4900);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 4999), 8000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 5000), 11000);
        loy_clock_destroy(clk);

        /* a partition with a time stays active through garbage */
        clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_observe(clk, "t", 0, 5000, 0);
        loy_clock_observe(clk, "t", 1, 9000, 0);
        loy_clock_observe(clk, "t", 1, 9000, 1500);
        loy_clock_observe(clk, "t", 0, 0, 1500);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1500), 5000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 2499), 5000);
        /* both idle at 2500: max(5000, 9000) */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 2500), 9000);
        loy_clock_destroy(clk);
}

/* Regression: a partition with data still to read is never idle, however
 * long it is silent (a slow fetch, a broker away): the clock used to jump
 * over its events to the other topic's time and fire every timer early. */
static void test_backlog_holds(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "purchases", 0, 0);
        loy_clock_assign(clk, "browse", 0, 0);
        loy_clock_backlog(clk, "purchases", 0, 1);
        loy_clock_backlog(clk, "browse", 0, 1);
        loy_clock_observe(clk, "browse", 0, 90000, 10);
        loy_clock_backlog(clk, "browse", 0, 0); /* read to its end */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 50000), 0);
        /* its first events arrive much later by the wall clock */
        loy_clock_observe(clk, "purchases", 0, 3000, 60000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 60000), 3000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 99000), 3000);
        /* read to its end and silent: both idle, the newest event wins */
        loy_clock_backlog(clk, "purchases", 0, 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 60999), 3000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 61000), 90000);
        /* never told about a partition: taken as caught up */
        loy_clock_backlog(clk, "other", 0, 1);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 2);
        loy_clock_destroy(clk);
}

/* A rewound batch's events are read again: the partition has data to
 * read and its newest time goes back below them, so checks stop before
 * them; the clock does not go back. */
static void test_unobserve(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_observe(clk, "t", 0, 4000, 10);
        loy_clock_observe(clk, "t", 0, 9000, 10);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 20), 9000);
        loy_clock_unobserve(clk, "t", 0, 6000);
        CU_ASSERT_EQUAL(loy_clock_has_backlog(clk, "t", 0), 1);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 0, 9000), 5999);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 30), 9000);
        /* a time at or above the newest changes no time */
        loy_clock_unobserve(clk, "t", 0, 7000);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 0, 9000), 5999);
        /* timeless messages and partitions not owned change nothing */
        loy_clock_unobserve(clk, "t", 0, 0);
        loy_clock_unobserve(clk, "t", 5, 100);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 0, 9000), 5999);
        loy_clock_destroy(clk);
}

/* A restarted process gets its partitions' newest times back: with no new
 * traffic at all the clock reaches them once the partitions are idle, so
 * due timers fire (they used to wait for the next message). */
static void test_restore(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        const char *topic;
        int32_t part;
        int64_t ts;
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_assign(clk, "t", 1, 0);
        loy_clock_restore(clk, "t", 0, 7000);
        loy_clock_restore(clk, "t", 1, 5000);
        loy_clock_restore(clk, "t", 9, 99000); /* not owned */
        /* what was applied before counts at once; idle, the newest */
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 500), 5000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1000), 7000);
        /* only ever raises a time */
        loy_clock_restore(clk, "t", 0, 100);
        loy_clock_part(clk, 0, &topic, &part, &ts);
        CU_ASSERT_STRING_EQUAL(topic, "t");
        CU_ASSERT_EQUAL(part, 0);
        CU_ASSERT_EQUAL(ts, 7000);
        loy_clock_part(clk, 1, &topic, &part, &ts);
        CU_ASSERT_EQUAL(part, 1);
        CU_ASSERT_EQUAL(ts, 5000);
        loy_clock_destroy(clk);
}

/* Several processes share the partitions: once all of this process's
 * partitions are idle, the clock reaches the newest time the group applied
 * (loy:clock), as one process owning everything would; before that the
 * group's time changes nothing. */
static void test_global(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_assign(clk, "t", 0, 0);
        loy_clock_observe(clk, "t", 0, 5000, 0);
        loy_clock_global(clk, 9000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 500), 5000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1000), 9000);
        loy_clock_global(clk, 8000); /* only raises */
        loy_clock_global(clk, 9500);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 1001), 9500);
        loy_clock_destroy(clk);
        /* Regression (fault suite, kill9): a restarted process that owns
         * nothing yet must not take the group's time, or a silence check
         * fires before events of its own partitions that a crash left
         * unapplied and that are about to be delivered again. */
        clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        loy_clock_global(clk, 9000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 5000), 0);
        loy_clock_assign(clk, "t", 0, 5000);
        loy_clock_backlog(clk, "t", 0, 1);
        loy_clock_restore(clk, "t", 0, 4000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 9000), 4000);
        loy_clock_backlog(clk, "t", 0, 0);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 9000), 9000);
        /* a partition handed over with unread data: its checks wait for
         * its own events, the clock does not go back */
        loy_clock_assign(clk, "t", 1, 9000);
        loy_clock_backlog(clk, "t", 1, 1);
        loy_clock_restore(clk, "t", 1, 6000);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 9001), 9000);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 1, 9000), 6000);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 0, 9000), 9000);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "u", 0, 9000), 9000);
        loy_clock_observe(clk, "t", 1, 7000, 9002);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 1, 9000), 7000);
        loy_clock_backlog(clk, "t", 1, 0);
        CU_ASSERT_EQUAL(loy_clock_timer_limit(clk, "t", 1, 9000), 9000);
        loy_clock_destroy(clk);
}

/* Kafka topic names go up to 249 characters. */
static void test_long_topic(void) {
        char topic[250], other[250];
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        memset(topic, 'x', 249);
        topic[249] = '\0';
        memcpy(other, topic, sizeof(other));
        other[200] = 'y'; /* differs after the 128th character */
        CU_ASSERT_EQUAL(loy_clock_assign(clk, topic, 0, 0), 0);
        for (int i = 0; i < 10; i++)
                loy_clock_observe(clk, topic, 0, 1000 + i, i);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 10), 1009);
        loy_clock_observe(clk, other, 0, 500, 11);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 2);
        loy_clock_revoke(clk, topic, 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 1);
        loy_clock_revoke(clk, other, 0);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 0);
        loy_clock_destroy(clk);
}

/* Many partitions (the table grows), revoked from the middle. */
static void test_many(void) {
        loy_clock_t *clk = loy_clock_create(0, IDLE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
        for (int p = 0; p < 100; p++)
                CU_ASSERT_EQUAL(loy_clock_assign(clk, "t", p, 0), 0);
        for (int p = 99; p >= 0; p--)
                loy_clock_observe(clk, "t", p, 1000 + p, 10);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 100);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 10), 1000);
        for (int p = 0; p < 50; p += 2)
                loy_clock_revoke(clk, "t", p); /* 0, 2, ..., 48 */
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 75);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 11), 1001);
        for (int p = 1; p < 50; p += 2)
                loy_clock_revoke(clk, "t", p);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 50);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 12), 1050);
        /* every remaining one is still found (no adoption of a copy) */
        for (int p = 50; p < 100; p++)
                loy_clock_observe(clk, "t", p, 3000, 13);
        CU_ASSERT_EQUAL(loy_clock_owned(clk), 50);
        CU_ASSERT_EQUAL(loy_clock_advance(clk, 13), 3000);
        loy_clock_destroy(clk);
}

int main(void) {
        CU_pSuite s;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("clock", NULL, NULL);
        if (!s || !CU_add_test(s, "empty", test_empty) ||
            !CU_add_test(s, "minimum minus lateness", test_min) ||
            !CU_add_test(s, "new partition holds until idle",
                         test_hold_until_idle) ||
            !CU_add_test(s, "idle partition stops holding",
                         test_idle_partition) ||
            !CU_add_test(s, "all idle", test_all_idle) ||
            !CU_add_test(s, "never backwards", test_monotonic) ||
            !CU_add_test(s, "revoke", test_revoke) ||
            !CU_add_test(s, "observe adopts", test_observe_adopts) ||
            !CU_add_test(s, "messages without time", test_timeless_messages) ||
            !CU_add_test(s, "backlog is never idle", test_backlog_holds) ||
            !CU_add_test(s, "events read again", test_unobserve) ||
            !CU_add_test(s, "restored partition times", test_restore) ||
            !CU_add_test(s, "the group's newest time", test_global) ||
            !CU_add_test(s, "long topic names", test_long_topic) ||
            !CU_add_test(s, "many partitions", test_many)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
