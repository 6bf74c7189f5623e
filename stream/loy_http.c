/* loy_http: see loy_http.h. */
#include "loy_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "loy_time.h"

#define WHY_MAX 256

struct loy_http {
        struct MHD_Daemon *daemon;
        int port;
        int stall_ms;
        _Atomic int64_t beat_ms; /* loy_time_mono_ms of the last beat */
        pthread_mutex_t lock;    /* guards what follows */
        char *metrics;
        size_t metrics_len;
        int ready;
        char why[WHY_MAX];
        loy_http_page_fn *page; /* set before any request, or NULL */
        void *page_opaque;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              const char *type, const char *body, size_t len) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            len, (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result rc;
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        rc = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return rc;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status,
                            const char *body) {
        return answer(conn, status, "text/plain; charset=utf-8", body,
                      strlen(body));
}

static enum MHD_Result on_metrics(loy_http_t *h, struct MHD_Connection *conn) {
        enum MHD_Result rc;
        pthread_mutex_lock(&h->lock);
        if (h->metrics)
                rc = answer(conn, MHD_HTTP_OK,
                            "text/plain; version=0.0.4; charset=utf-8",
                            h->metrics, h->metrics_len);
        else
                rc = text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "no metrics yet: the processor is starting\n");
        pthread_mutex_unlock(&h->lock);
        return rc;
}

static enum MHD_Result on_healthz(loy_http_t *h, struct MHD_Connection *conn) {
        int64_t silent = (int64_t)loy_time_mono_ms() - atomic_load(&h->beat_ms);
        char body[128];
        if (silent <= h->stall_ms)
                return text(conn, MHD_HTTP_OK, "ok\n");
        snprintf(body, sizeof(body),
                 "stalled: the processor loop has been silent for %lld ms "
                 "(http.stall.ms = %d)\n",
                 (long long)silent, h->stall_ms);
        return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result on_readyz(loy_http_t *h, struct MHD_Connection *conn) {
        char body[WHY_MAX + 16];
        int ready;
        pthread_mutex_lock(&h->lock);
        ready = h->ready;
        snprintf(body, sizeof(body), "%s\n", ready ? "ready" : h->why);
        pthread_mutex_unlock(&h->lock);
        return text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                    body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **state) {
        loy_http_t *h = cls;
        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)state;
        if (strcmp(method, MHD_HTTP_METHOD_GET) &&
            strcmp(method, MHD_HTTP_METHOD_HEAD))
                return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "only GET and HEAD\n");
        if (!strcmp(url, "/metrics"))
                return on_metrics(h, conn);
        if (!strcmp(url, "/healthz"))
                return on_healthz(h, conn);
        if (!strcmp(url, "/readyz"))
                return on_readyz(h, conn);
        if (h->page) {
                char *body = NULL;
                const char *type = "text/plain; charset=utf-8";
                size_t len = 0;
                int status =
                    h->page(h->page_opaque, url, (loy_http_req_t *)conn, &type,
                            &body, &len);
                if (status > 0) {
                        enum MHD_Result rc =
                            body ? answer(conn, (unsigned)status, type, body,
                                          len)
                                 : text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "out of memory\n");
                        free(body);
                        return rc;
                }
        }
        return text(conn, MHD_HTTP_NOT_FOUND,
                    "not found: /metrics, /healthz or /readyz\n");
}

/* "host:port" or "[v6]:port" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss,
                        int *v6, char *errstr, size_t errstr_size) {
        char host[128];
        const char *whole = listen;
        const char *colon = strrchr(listen, ':');
        const char *port;
        struct addrinfo hints, *res = NULL;
        size_t hl;
        int rc;
        if (!colon || colon == listen || !colon[1]) {
                snprintf(errstr, errstr_size,
                         "http.listen \"%s\": want "
                         "host:port",
                         listen);
                return -1;
        }
        port = colon + 1;
        hl = (size_t)(colon - listen);
        if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
                listen++;
                hl -= 2;
        }
        if (hl >= sizeof(host)) {
                snprintf(errstr, errstr_size, "http.listen: host too long");
                return -1;
        }
        memcpy(host, listen, hl);
        host[hl] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        rc = getaddrinfo(host, port, &hints, &res);
        if (rc || !res) {
                snprintf(errstr, errstr_size, "http.listen \"%s\": %s", whole,
                         rc ? gai_strerror(rc) : "no address");
                if (res)
                        freeaddrinfo(res);
                return -1;
        }
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *v6 = res->ai_family == AF_INET6;
        freeaddrinfo(res);
        return 0;
}

loy_http_t *loy_http_start(const char *listen, int stall_ms, char *errstr,
                           size_t errstr_size) {
        struct sockaddr_storage ss;
        const union MHD_DaemonInfo *info;
        loy_http_t *h;
        int v6 = 0;
        if (parse_listen(listen, &ss, &v6, errstr, errstr_size))
                return NULL;
        h = calloc(1, sizeof(*h));
        if (!h) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (pthread_mutex_init(&h->lock, NULL)) {
                free(h);
                snprintf(errstr, errstr_size, "http: mutex");
                return NULL;
        }
        h->stall_ms = stall_ms;
        atomic_store(&h->beat_ms, (int64_t)loy_time_mono_ms());
        snprintf(h->why, sizeof(h->why), "starting");
        /* a scrape is small: few connections, short timeouts, so a slow
         * client cannot hold the endpoint */
        h->daemon = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                (v6 ? MHD_USE_IPv6 : 0),
            0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
        if (!h->daemon) {
                snprintf(errstr, errstr_size,
                         "http.listen \"%s\": cannot "
                         "listen there (address in use, or not this "
                         "machine's)",
                         listen);
                pthread_mutex_destroy(&h->lock);
                free(h);
                return NULL;
        }
        info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        h->port = info ? info->port : 0;
        return h;
}

void loy_http_stop(loy_http_t *h) {
        if (!h)
                return;
        MHD_stop_daemon(h->daemon);
        pthread_mutex_destroy(&h->lock);
        free(h->metrics);
        free(h);
}

const char *loy_http_arg(loy_http_req_t *req, const char *name) {
        return MHD_lookup_connection_value((struct MHD_Connection *)req,
                                           MHD_GET_ARGUMENT_KIND, name);
}

void loy_http_set_page(loy_http_t *h, loy_http_page_fn *fn, void *opaque) {
        h->page = fn;
        h->page_opaque = opaque;
}

int loy_http_port(const loy_http_t *h) {
        return h->port;
}

void loy_http_beat(loy_http_t *h) {
        atomic_store(&h->beat_ms, (int64_t)loy_time_mono_ms());
}

int loy_http_publish(loy_http_t *h, const char *text, size_t len) {
        char *copy = malloc(len + 1);
        char *old;
        if (!copy)
                return -1;
        memcpy(copy, text, len);
        copy[len] = '\0';
        pthread_mutex_lock(&h->lock);
        old = h->metrics;
        h->metrics = copy;
        h->metrics_len = len;
        pthread_mutex_unlock(&h->lock);
        free(old);
        return 0;
}

void loy_http_set_ready(loy_http_t *h, int ready, const char *why) {
        pthread_mutex_lock(&h->lock);
        h->ready = ready;
        snprintf(h->why, sizeof(h->why), "%s", ready ? "" : why);
        pthread_mutex_unlock(&h->lock);
}

int loy_http_request(int port, const char *method, const char *path,
                     int timeout_ms, char **body) {
        struct sockaddr_in a;
        struct timeval tv;
        char req[512];
        char *buf = NULL;
        size_t len = 0, cap = 0;
        int fd, status = -1, n;
        const char *sep;
        if (body)
                *body = NULL;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return -1;
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     "\r\n",
                     method, path);
        if (n < 0 || (size_t)n >= sizeof(req) ||
            connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
            write(fd, req, (size_t)n) != n) {
                close(fd);
                return -1;
        }
        for (;;) {
                ssize_t r;
                if (len + 4096 + 1 > cap) {
                        size_t ncap = cap ? cap * 2 : 8192;
                        char *nb = realloc(buf, ncap);
                        if (!nb)
                                break;
                        buf = nb;
                        cap = ncap;
                }
                r = read(fd, buf + len, cap - len - 1);
                if (r <= 0)
                        break;
                len += (size_t)r;
        }
        close(fd);
        if (!buf)
                return -1;
        buf[len] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                status = -1;
        sep = strstr(buf, "\r\n\r\n");
        if (body && sep)
                *body = strdup(sep + 4);
        free(buf);
        return status;
}
