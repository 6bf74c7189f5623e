/* loy_clock: see loy_clock.h. */
#include "loy_clock.h"

#include <stdlib.h>
#include <string.h>

typedef struct clock_part {
        char *topic; /* owned; Kafka allows 249 bytes */
        int32_t partition;
        int64_t newest_ts; /* 0 = nothing seen yet */
        int64_t last_wall; /* when it last delivered, or was assigned */
        int backlog;       /* known to have data still to read */
} clock_part_t;

struct loy_clock {
        clock_part_t *parts;
        int n, cap;
        int64_t lateness_ms, idle_ms;
        int64_t now;
        int64_t global_ts; /* newest applied anywhere in the group */
};

loy_clock_t *loy_clock_create(int64_t lateness_ms, int64_t idle_ms) {
        loy_clock_t *clk = calloc(1, sizeof(*clk));
        if (!clk)
                return NULL;
        clk->lateness_ms = lateness_ms;
        clk->idle_ms = idle_ms;
        return clk;
}

void loy_clock_destroy(loy_clock_t *clk) {
        if (!clk)
                return;
        loy_clock_revoke_all(clk);
        free(clk->parts);
        free(clk);
}

static clock_part_t *find(loy_clock_t *clk, const char *topic, int32_t p) {
        for (int i = 0; i < clk->n; i++)
                if (clk->parts[i].partition == p &&
                    !strcmp(clk->parts[i].topic, topic))
                        return &clk->parts[i];
        return NULL;
}

int loy_clock_assign(loy_clock_t *clk, const char *topic, int32_t partition,
                     int64_t wall_ms) {
        clock_part_t *cp = find(clk, topic, partition);
        if (cp)
                return 0;
        if (clk->n == clk->cap) {
                int cap = clk->cap ? clk->cap * 2 : 16;
                clock_part_t *np =
                    realloc(clk->parts, (size_t)cap * sizeof(*np));
                if (!np)
                        return -1;
                clk->parts = np;
                clk->cap = cap;
        }
        cp = &clk->parts[clk->n];
        memset(cp, 0, sizeof(*cp));
        cp->topic = strdup(topic);
        if (!cp->topic)
                return -1;
        clk->n++;
        cp->partition = partition;
        cp->last_wall = wall_ms;
        return 0;
}

void loy_clock_revoke(loy_clock_t *clk, const char *topic, int32_t partition) {
        clock_part_t *cp = find(clk, topic, partition);
        if (!cp)
                return;
        free(cp->topic);
        *cp = clk->parts[--clk->n];
}

void loy_clock_revoke_all(loy_clock_t *clk) {
        for (int i = 0; i < clk->n; i++)
                free(clk->parts[i].topic);
        clk->n = 0;
}

void loy_clock_observe(loy_clock_t *clk, const char *topic, int32_t partition,
                       int64_t ts_ms, int64_t wall_ms) {
        clock_part_t *cp = find(clk, topic, partition);
        if (!cp) {
                /* a message from a partition we were not told about (manual
                 * assignment in tools): own it from now on */
                if (loy_clock_assign(clk, topic, partition, wall_ms) == -1)
                        return;
                cp = find(clk, topic, partition);
        }
        /* A message without a usable time (ts_ms <= 0: the processor
         * reports dead letters so) on a partition that has given no time
         * yet must not keep it "active": it would hold the clock at 0 for
         * as long as bad data keeps coming. */
        if (ts_ms <= 0 && cp->newest_ts == 0)
                return;
        if (ts_ms > cp->newest_ts)
                cp->newest_ts = ts_ms;
        cp->last_wall = wall_ms;
}

void loy_clock_unobserve(loy_clock_t *clk, const char *topic, int32_t partition,
                         int64_t ts_ms) {
        clock_part_t *cp = find(clk, topic, partition);
        if (!cp || ts_ms <= 0)
                return;
        cp->backlog = 1;
        if (cp->newest_ts >= ts_ms)
                cp->newest_ts = ts_ms - 1;
}

void loy_clock_backlog(loy_clock_t *clk, const char *topic, int32_t partition,
                       int backlog) {
        clock_part_t *cp = find(clk, topic, partition);
        if (cp)
                cp->backlog = backlog;
}

int loy_clock_has_backlog(const loy_clock_t *clk, const char *topic,
                          int32_t partition) {
        for (int i = 0; i < clk->n; i++)
                if (clk->parts[i].partition == partition &&
                    !strcmp(clk->parts[i].topic, topic))
                        return clk->parts[i].backlog;
        return 0;
}

void loy_clock_restore(loy_clock_t *clk, const char *topic, int32_t partition,
                       int64_t newest_ts) {
        clock_part_t *cp = find(clk, topic, partition);
        if (cp && newest_ts > cp->newest_ts)
                cp->newest_ts = newest_ts;
}

void loy_clock_global(loy_clock_t *clk, int64_t newest_ts) {
        if (newest_ts > clk->global_ts)
                clk->global_ts = newest_ts;
}

int64_t loy_clock_timer_limit(const loy_clock_t *clk, const char *topic,
                              int32_t partition, int64_t clock_ms) {
        const clock_part_t *cp = NULL;
        for (int i = 0; i < clk->n && !cp; i++)
                if (clk->parts[i].partition == partition &&
                    !strcmp(clk->parts[i].topic, topic))
                        cp = &clk->parts[i];
        if (!cp || !cp->backlog || cp->newest_ts >= clock_ms)
                return clock_ms;
        return cp->newest_ts;
}

void loy_clock_part(const loy_clock_t *clk, int i, const char **topic,
                    int32_t *partition, int64_t *newest_ts) {
        *topic = clk->parts[i].topic;
        *partition = clk->parts[i].partition;
        *newest_ts = clk->parts[i].newest_ts;
}

int64_t loy_clock_advance(loy_clock_t *clk, int64_t wall_ms) {
        int64_t min = INT64_MAX;
        int64_t max_seen = 0;
        int held = 0;
        for (int i = 0; i < clk->n; i++) {
                const clock_part_t *cp = &clk->parts[i];
                int idle =
                    !cp->backlog && wall_ms - cp->last_wall >= clk->idle_ms;
                if (cp->newest_ts > max_seen)
                        max_seen = cp->newest_ts;
                if (idle)
                        continue;
                held = 1;
                if (cp->newest_ts == 0) {
                        /* not heard from yet: it may hold older events */
                        min = 0;
                        continue;
                }
                if (cp->newest_ts < min)
                        min = cp->newest_ts;
        }
        /* all idle: every partition has been read to its end and nothing
         * holds the clock back. Owning none is not "all idle": right after
         * a start or a rebalance the group's time may be ahead of events
         * this process is about to be given again. */
        if (!held && clk->n > 0)
                min = max_seen > clk->global_ts ? max_seen : clk->global_ts;
        if (min != INT64_MAX && min > 0) {
                int64_t t = min - clk->lateness_ms;
                if (t > clk->now)
                        clk->now = t;
        }
        return clk->now;
}

int64_t loy_clock_now(const loy_clock_t *clk) {
        return clk->now;
}

int loy_clock_owned(const loy_clock_t *clk) {
        return clk->n;
}
