/* loy_clockstore: see loy_clockstore.h. */
#include "loy_clockstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_log.h"
#include "loy_time.h"

#define CLOCK_READ_MS 2000 /* the group's event time, while idle */

struct loy_clockstore {
        loy_clock_t *clock;
        const loy_config_t *conf;
        int clock_restore; /* partitions' times to read back */
        int64_t last_clock_read_ms;
        int64_t *clock_saved; /* per clock partition, last saved */
        int clock_saved_cap;
        /* loy_clockstore_mark: the partitions' times when the batch to
         * save was polled (nmark -1: none, save the clock as it is) */
        int64_t *mark;
        int nmark, mark_cap;
};

loy_clockstore_t *loy_clockstore_create(loy_clock_t *clock,
                                        const loy_config_t *conf) {
        loy_clockstore_t *cs = calloc(1, sizeof(*cs));
        if (!cs)
                return NULL;
        cs->clock = clock;
        cs->conf = conf;
        cs->nmark = -1;
        return cs;
}

void loy_clockstore_destroy(loy_clockstore_t *cs) {
        if (!cs)
                return;
        free(cs->clock_saved);
        free(cs->mark);
        free(cs);
}

void loy_clockstore_assigned(loy_clockstore_t *cs) {
        cs->clock_restore = 1;
}

void loy_clockstore_revoked(loy_clockstore_t *cs) {
        if (cs->clock_saved)
                memset(cs->clock_saved, 0,
                       (size_t)cs->clock_saved_cap * sizeof(*cs->clock_saved));
}

static void on_clock_field(const char *field, const char *value, void *opaque) {
        loy_clockstore_t *cs = opaque;
        const char *colon = strrchr(field, ':');
        char topic[256];
        size_t n;
        int64_t ts = atoll(value);
        if (!colon || (n = (size_t)(colon - field)) >= sizeof(topic))
                return;
        memcpy(topic, field, n);
        topic[n] = '\0';
        /* only the input topics' partitions count */
        if (strcmp(topic, cs->conf->topic_purchase) &&
            strcmp(topic, cs->conf->topic_browse))
                return;
        loy_clock_restore(cs->clock, topic, (int32_t)atol(colon + 1), ts);
        loy_clock_global(cs->clock, ts);
}

/* Gives newly owned partitions the event time a previous owner (or this
 * process before a restart) had applied there, so due timers fire without
 * waiting for new traffic; and, every few seconds while nothing arrives,
 * the newest time the whole group applied. */
void loy_clockstore_restore(loy_clockstore_t *cs, loy_store_t *store,
                            int idle) {
        char err[256];
        if (idle && loy_time_wall_ms() - cs->last_clock_read_ms > CLOCK_READ_MS)
                cs->clock_restore = 1;
        if (!cs->clock_restore)
                return;
        cs->last_clock_read_ms = loy_time_wall_ms();
        if (loy_store_clock_load(store, on_clock_field, cs, err, sizeof(err)) !=
            0) {
                LOY_WARN("proc", "event clock not restored yet: %s", err);
                return;
        }
        cs->clock_restore = 0;
}

void loy_clockstore_mark(loy_clockstore_t *cs) {
        int n = loy_clock_owned(cs->clock);
        if (n > cs->mark_cap) {
                int64_t *nm = realloc(cs->mark, (size_t)n * sizeof(*nm));
                if (!nm) {
                        /* the next save then writes the newer times: a
                         * restart may fire checks a little early */
                        cs->nmark = -1;
                        return;
                }
                cs->mark = nm;
                cs->mark_cap = n;
        }
        for (int i = 0; i < n; i++) {
                const char *topic;
                int32_t part;
                loy_clock_part(cs->clock, i, &topic, &part, &cs->mark[i]);
        }
        cs->nmark = n;
}

void loy_clockstore_unmark(loy_clockstore_t *cs) {
        cs->nmark = -1;
}

/* Saves the partitions' newest applied event times that moved (as marked,
 * when marked). */
void loy_clockstore_save(loy_clockstore_t *cs, loy_store_t *store) {
        int n = loy_clock_owned(cs->clock), k = 0;
        int marked = cs->nmark >= 0;
        if (marked && cs->nmark < n)
                n = cs->nmark;
        cs->nmark = -1;
        char names[64][300];
        const char *ptr[64];
        int64_t ts[64];
        char err[256];
        if (n > cs->clock_saved_cap) {
                int64_t *ns = realloc(cs->clock_saved, (size_t)n * sizeof(*ns));
                if (!ns)
                        return;
                memset(ns + cs->clock_saved_cap, 0,
                       (size_t)(n - cs->clock_saved_cap) * sizeof(*ns));
                cs->clock_saved = ns;
                cs->clock_saved_cap = n;
        }
        for (int i = 0; i < n; i++) {
                const char *topic;
                int32_t part;
                int64_t newest;
                loy_clock_part(cs->clock, i, &topic, &part, &newest);
                if (marked)
                        newest = cs->mark[i];
                /* slots move with rebalances: a stale entry only costs one
                 * extra field in the next save */
                if (newest <= 0 || newest == cs->clock_saved[i])
                        continue;
                snprintf(names[k], sizeof(names[k]), "%s:%" PRId32, topic,
                         part);
                ptr[k] = names[k];
                ts[k] = newest;
                cs->clock_saved[i] = newest;
                if (++k == 64) {
                        if (loy_store_clock_save(store, ptr, ts, k, err,
                                                 sizeof(err)))
                                LOY_WARN("proc", "event clock: %s", err);
                        k = 0;
                }
        }
        if (k && loy_store_clock_save(store, ptr, ts, k, err, sizeof(err)))
                LOY_WARN("proc", "event clock: %s", err);
}
