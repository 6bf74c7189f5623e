/* loy_log: see loy_log.h. */
#include "loy_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static loy_log_level_t max_level = LOY_LOG_INFO;

void loy_log_set_level(loy_log_level_t level) {
        max_level = level;
}

loy_log_level_t loy_log_get_level(void) {
        return max_level;
}

int loy_log_level_parse(const char *name) {
        if (!strcmp(name, "error"))
                return LOY_LOG_ERROR;
        if (!strcmp(name, "warn"))
                return LOY_LOG_WARN;
        if (!strcmp(name, "info"))
                return LOY_LOG_INFO;
        if (!strcmp(name, "debug"))
                return LOY_LOG_DEBUG;
        return -1;
}

static const char *level_name(loy_log_level_t level) {
        switch (level) {
        case LOY_LOG_ERROR:
                return "ERROR";
        case LOY_LOG_WARN:
                return "WARN ";
        case LOY_LOG_INFO:
                return "INFO ";
        default:
                return "DEBUG";
        }
}

void loy_log(loy_log_level_t level, const char *module, const char *fmt, ...) {
        char line[1024];
        char stamp[32];
        struct timespec ts;
        struct tm tm;
        va_list ap;
        int n;

        if (level > max_level)
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s: ", stamp,
                     ts.tv_nsec / 1000000, level_name(level), module);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof(line))
                vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        /* one write per line so concurrent processes do not interleave */
        fprintf(stderr, "%s\n", line);
}
