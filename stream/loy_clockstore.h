/*
 * loy_clockstore: event time kept in Redis (<ns>:clock, docs/redis-keys.md)
 * for loy_clock. After each batch the owned partitions' newest applied
 * event times that moved are saved; after an assignment (and every few
 * seconds while nothing arrives) they are read back, so newly owned
 * partitions start where a previous owner (or this process before a
 * restart) left them and due timers fire without waiting for new traffic,
 * and an idle process follows the newest time the whole group applied.
 */
#ifndef LOY_CLOCKSTORE_H
#define LOY_CLOCKSTORE_H

#include "../config/loy_config.h"
#include "../state/loy_store.h"
#include "loy_clock.h"

typedef struct loy_clockstore loy_clockstore_t;

/* For clock (borrowed), counting only the input topics of conf (borrowed);
 * both must outlive it. NULL on no memory. Free with
 * loy_clockstore_destroy() (NULL ok). */
loy_clockstore_t *loy_clockstore_create(loy_clock_t *clock,
                                        const loy_config_t *conf);
void loy_clockstore_destroy(loy_clockstore_t *cs);

/* Partitions were assigned: read the times back at the next restore. */
void loy_clockstore_assigned(loy_clockstore_t *cs);
/* Partitions were revoked: the clock's partitions move, so the next save
 * writes them all. */
void loy_clockstore_revoked(loy_clockstore_t *cs);

/* Reads the saved times into the clock when a read back is due, or when
 * idle (the batch brought no message) and the last read is a few seconds
 * old. A failed read is logged and tried again next time. */
void loy_clockstore_restore(loy_clockstore_t *cs, loy_store_t *store, int idle);
/* Saves the owned partitions' newest times that moved since their last
 * save (failures logged): as they were at the last loy_clockstore_mark()
 * when there was one since the last save. */
void loy_clockstore_save(loy_clockstore_t *cs, loy_store_t *store);
/* Remembers the partitions' times now: a batch is written while the next
 * one is already polled, and what is saved must not run ahead of what was
 * written (a restart would fire checks before events they precede). */
void loy_clockstore_mark(loy_clockstore_t *cs);
/* Forgets the mark: the batch it was for was not written. */
void loy_clockstore_unmark(loy_clockstore_t *cs);

#endif
