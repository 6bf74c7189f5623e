/*
 * loy_log: the one logger. Levels, a module tag, lines on stderr:
 *   2026-11-23T11:00:00.123Z WARN  store: redis down: Connection refused
 * Library code logs through here, never printf; librdkafka's log callback
 * is routed here too (loy_kafka.c).
 */
#ifndef LOY_LOG_H
#define LOY_LOG_H

typedef enum {
        LOY_LOG_ERROR = 3,
        LOY_LOG_WARN = 4,
        LOY_LOG_INFO = 6,
        LOY_LOG_DEBUG = 7,
} loy_log_level_t;

/* Lines above this level are dropped. Default LOY_LOG_INFO. */
void loy_log_set_level(loy_log_level_t level);
loy_log_level_t loy_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; -1 when unknown. */
int loy_log_level_parse(const char *name);

void loy_log(loy_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOY_ERROR(mod, ...) loy_log(LOY_LOG_ERROR, mod, __VA_ARGS__)
#define LOY_WARN(mod, ...) loy_log(LOY_LOG_WARN, mod, __VA_ARGS__)
#define LOY_INFO(mod, ...) loy_log(LOY_LOG_INFO, mod, __VA_ARGS__)
#define LOY_DEBUG(mod, ...) loy_log(LOY_LOG_DEBUG, mod, __VA_ARGS__)

#endif
