/* loy_date: see loy_date.h. */
#include "loy_date.h"

#include <inttypes.h>
#include <stdio.h>

int64_t loy_date_to_days(int64_t y, int m, int d) {
        int64_t era, yoe, doy, doe;
        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

void loy_date_from_days(int64_t days, int64_t *y, int *m, int *d) {
        int64_t z = days + 719468, era, doe, yoe, doy, mp;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y = yoe + era * 400 + (*m <= 2);
}

void loy_date_format(int64_t days, char *buf, size_t size) {
        int64_t y;
        int m, d;
        loy_date_from_days(days, &y, &m, &d);
        snprintf(buf, size, "%04" PRId64 "-%02d-%02d", y, m, d);
}
