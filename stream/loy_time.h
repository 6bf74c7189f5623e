/*
 * loy_time: the two clocks the processor's stages read (wall clock for
 * what is stored or compared across processes, monotonic for durations)
 * and a sleep. Event time is loy_clock's, not these.
 */
#ifndef LOY_TIME_H
#define LOY_TIME_H

#include <stdint.h>

/* Wall clock, ms since the epoch. */
int64_t loy_time_wall_ms(void);
/* Monotonic clock, ms (fractional), for durations only. */
double loy_time_mono_ms(void);
/* Sleeps ms milliseconds (a signal may cut it short). */
void loy_time_sleep_ms(int ms);

#endif
