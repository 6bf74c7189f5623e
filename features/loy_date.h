/*
 * loy_date: proleptic Gregorian dates as days since 1970-01-01, by
 * Howard Hinnant's algorithms: exact for any int64 day, without gmtime's
 * range, time zone or locale.
 */
#ifndef LOY_DATE_H
#define LOY_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31, not checked). */
int64_t loy_date_to_days(int64_t y, int m, int d);

/* The date of days since 1970-01-01. */
void loy_date_from_days(int64_t days, int64_t *y, int *m, int *d);

/* "yyyy-mm-dd" of days since 1970-01-01 into buf. */
void loy_date_format(int64_t days, char *buf, size_t size);

#endif
