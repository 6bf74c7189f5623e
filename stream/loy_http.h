/*
 * loy_http: loyaltyd's HTTP endpoint (docs/operations.md), on a thread of
 * libmicrohttpd's own:
 *   GET /metrics  the Prometheus text the processor last published;
 *   GET /healthz  200 while the processor loop beats, 503 once it has been
 *                 silent for stall_ms (stuck: a supervisor may restart it);
 *   GET /readyz   200 once the processor says it is ready (partitions
 *                 assigned and Redis answering), 503 with its reason.
 * The processor never waits on a scrape: it publishes a copy (at most once
 * a second) and the server answers from it under a mutex.
 */
#ifndef LOY_HTTP_H
#define LOY_HTTP_H

#include <stddef.h>

typedef struct loy_http loy_http_t;

/* Listens on listen ("host:port", "[v6addr]:port"; port 0: any free one).
 * NULL with errstr (naming the address) when it cannot. Stop with
 * loy_http_stop(). */
loy_http_t *loy_http_start(const char *listen, int stall_ms, char *errstr,
                           size_t errstr_size);
/* Stops the server (scrapes in progress are finished) and frees it. NULL
 * ok. */
void loy_http_stop(loy_http_t *h);

/* More pages (loyaltyctl dashboard): fn answers any GET path but the three
 * above, on the server's thread, one request at a time. It returns the
 * status with *body malloc'd (NULL: out of memory), *len its length and
 * *type set when not plain text; or 0 for "not found". Set it before the
 * first request. */
typedef struct loy_http_req loy_http_req_t;
typedef int(loy_http_page_fn)(void *opaque, const char *path,
                              loy_http_req_t *req, const char **type,
                              char **body, size_t *len);
void loy_http_set_page(loy_http_t *h, loy_http_page_fn *fn, void *opaque);
/* A query argument of the request a page answers (NULL: not given). */
const char *loy_http_arg(loy_http_req_t *req, const char *name);

/* The port it listens on (the chosen one for port 0). */
int loy_http_port(const loy_http_t *h);

/* The processor loop is alive (cheap: an atomic store). */
void loy_http_beat(loy_http_t *h);
/* Replaces what /metrics answers (copied). -1 out of memory: the old text
 * stays. */
int loy_http_publish(loy_http_t *h, const char *text, size_t len);
/* What /readyz answers: ready, or not with why (copied, cut to fit). */
void loy_http_set_ready(loy_http_t *h, int ready, const char *why);

/* A client for the same endpoint (loyaltyctl, the tests): an HTTP/1.0
 * request to 127.0.0.1:port, timeout_ms for each read. Returns the status
 * code, -1 without an answer; *body (malloc'd, NUL ended; body NULL: not
 * wanted) the body. */
int loy_http_request(int port, const char *method, const char *path,
                     int timeout_ms, char **body);

#endif
